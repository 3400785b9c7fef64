//! CONNECT: either a blind tunnel (interception off, or a `passthrough_hosts` match), logged
//! as host:port with byte counts, or the entry to TLS interception.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::context::{LOCAL_HOST, ProxyContext};
use super::idle::InFlight;
use super::intercept;
use super::splice::splice;
use super::upstream::UpstreamError;
use crate::pipeline::decide;
use crate::pipeline::respond::{empty_body, error_response};
use crate::pipeline::{Exchange, FlowTracker, ProxyBody, Scheme, Side};
use tokio::net::TcpStream;

pub async fn handle_connect(
    ctx: Arc<ProxyContext>,
    client: SocketAddr,
    req: Request<Incoming>,
    in_flight: InFlight,
) -> Response<ProxyBody> {
    let target = req
        .uri()
        .authority()
        .and_then(|a| Some((a.host().to_string(), a.port_u16()?)));
    let Some((host, port)) = target else {
        let reason = format!(
            "CONNECT needs a HOST:PORT target, got {:?}",
            req.uri().to_string()
        );
        let tracker = ctx.connection_record(client.ip(), Some("CONNECT"), "tcp", None);
        tracker.fail(Some(400), &reason);
        return error_response(StatusCode::BAD_REQUEST, "bad-request", &reason);
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();

    if ctx.is_self(&host, port) && !host.eq_ignore_ascii_case(LOCAL_HOST) {
        let reason =
            format!("refusing to CONNECT to airlock's own listener {host}:{port} (it would loop)");
        let tracker =
            ctx.connection_record(client.ip(), Some("CONNECT"), "tcp", Some((&host, port)));
        tracker.fail(Some(400), &reason);
        return error_response(StatusCode::BAD_REQUEST, "loop", &reason);
    }

    let blind = !ctx.config.enable_mitm || ctx.config.passthrough_hosts.matches(&host);
    if blind {
        return blind_tunnel(ctx, client, host, port, req, in_flight).await;
    }

    // Intercept: answer 200 now and dial per request inside the tunnel, through the shared
    // upstream pool. A dead upstream then shows as a 502 with its reason on the request.
    let tasks = ctx.tasks.clone();
    tasks.spawn(async move {
        let _busy = in_flight;
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => intercept::serve_tunnel(ctx, client, host, port, upgraded).await,
            Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
        }
    });
    Response::new(empty_body())
}

async fn blind_tunnel(
    ctx: Arc<ProxyContext>,
    client: SocketAddr,
    host: String,
    port: u16,
    req: Request<Incoming>,
    in_flight: InFlight,
) -> Response<ProxyBody> {
    let (tracker, upstream) = match open_blind(&ctx, client, &host, port, req.headers()).await {
        Ok(pair) => pair,
        Err(refusal) => return refusal,
    };
    tracker.set_status(200);
    let idle = ctx.config.limits.idle_timeout;
    ctx.tasks.spawn(async move {
        let _busy = in_flight;
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let (up, down) = splice(TokioIo::new(upgraded), upstream, idle).await;
                tracker.add_bytes(Side::Request, up);
                tracker.add_bytes(Side::Response, down);
            }
            Err(e) => tracker.fail(Some(200), format!("CONNECT upgrade failed: {e}")),
        }
    });
    Response::new(empty_body())
}

/// The decisions and the dial of a blind tunnel to `host:port`: nothing inside it can be
/// seen, so lockdown and policy decide on the host now, and an unreachable upstream is an
/// answer before any byte is relayed. The refusal is the response to give.
pub async fn open_blind(
    ctx: &ProxyContext,
    client: SocketAddr,
    host: &str,
    port: u16,
    headers: &http::HeaderMap,
) -> Result<(Arc<FlowTracker>, TcpStream), Response<ProxyBody>> {
    let tracker = ctx.connection_record(client.ip(), Some("CONNECT"), "tcp", Some((host, port)));
    let live = ctx.pipeline.live();
    let exchange = Exchange {
        listener: ctx.listener_name.clone(),
        client_ip: client.ip(),
        scheme: Scheme::Https,
        host: host.to_string(),
        port,
    };
    let guards = &ctx.pipeline.guards;
    match decide::request(
        guards, &live, &tracker, &exchange, "CONNECT", "", headers, None,
    ) {
        decide::Gate::Pass => {}
        decide::Gate::Refuse(refusal) => return Err(refusal),
        decide::Gate::Ask { rule } => {
            if let Some(refusal) = decide::ask(
                guards,
                &live,
                &tracker,
                &exchange,
                &rule,
                None,
                std::future::pending(),
            )
            .await
            {
                return Err(refusal);
            }
        }
    }
    match ctx.upstreams.dialer.dial(host, port).await {
        Ok(stream) => Ok((tracker, stream)),
        Err(e @ UpstreamError::Destination { .. }) => {
            Err(decide::destination(&tracker, e.to_string()))
        }
        Err(e) => {
            tracker.fail(Some(e.status().as_u16()), e.to_string());
            Err(error_response(e.status(), e.kind(), &e.to_string()))
        }
    }
}
