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
    // Authority-form is host:port alone: a userinfo (`user@host`) is not a target.
    let target = req
        .uri()
        .authority()
        .filter(|a| !a.as_str().contains('@'))
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

    if !host_is_well_formed(&host) {
        let reason = format!(
            "CONNECT target {:?} is not a host name or an IP address",
            truncate(&host, 80)
        );
        let tracker = ctx.connection_record(client.ip(), Some("CONNECT"), "tcp", None);
        tracker.fail(Some(400), &reason);
        return error_response(StatusCode::BAD_REQUEST, "bad-request", &reason);
    }
    if !ctx.config.connect_ports.contains(&port) && host != decide::CANARY_HOST {
        let tracker =
            ctx.connection_record(client.ip(), Some("CONNECT"), "tcp", Some((&host, port)));
        return decide::connect_port(&tracker, &host, port, &ctx.config.connect_ports);
    }

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
    let ctx_for_peak = ctx.clone();
    tasks.spawn(async move {
        let _busy = in_flight;
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => intercept::serve_tunnel(ctx, client, host, port, upgraded).await,
            Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
        }
    });
    ctx_for_peak.note_open_tasks();
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
    ctx.note_open_tasks();
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

/// A DNS name (labels of letters, digits, `-` and `_`, 1 to 63 long, 253 in all) or an IP
/// address: what a CONNECT may name.
fn host_is_well_formed(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::host_is_well_formed;

    #[test]
    fn connect_targets_must_be_names_or_addresses() {
        for ok in [
            "example.com",
            "a-b.example.com.",
            "10.0.0.1",
            "::1",
            "xn--bcher-kva.example",
            "_dmarc.example.com",
        ] {
            assert!(host_is_well_formed(ok), "{ok}");
        }
        let long_label = "a".repeat(64);
        let long_name = ["abcdefghij"; 26].join(".");
        for bad in [
            "",
            "a..b",
            "a b",
            "exa%mple.com",
            long_label.as_str(),
            long_name.as_str(),
            "ex@mple.com",
        ] {
            assert!(!host_is_well_formed(bad), "{bad}");
        }
    }
}
