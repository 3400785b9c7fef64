//! Identify: what a request on the proxy port is — a CONNECT (tunnel), an absolute-form
//! request (forward it), a request for airlock itself (answer it) — and, for a request to
//! forward, its exchange: listener, client, scheme, host, port, decided once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::context::{ProxyContext, hold_until_body_done};
use super::idle::InFlight;
use super::{forward, gateway, local, tunnel};
use crate::pipeline::respond::error_response;
use crate::pipeline::{Exchange, ProxyBody, Scheme};

/// The service for connections on a listener: CONNECT, absolute-form requests, requests
/// meant for airlock itself, and on a gateway's listener, the gateway's requests.
pub async fn handle_request(
    ctx: Arc<ProxyContext>,
    client: SocketAddr,
    req: Request<Incoming>,
    in_flight: InFlight,
) -> Result<Response<ProxyBody>, Infallible> {
    if ctx.gateway().is_some() {
        return Ok(hold_until_body_done(
            gateway::handle(ctx, client, req).await,
            in_flight,
        ));
    }
    if req.method() == http::Method::CONNECT {
        // The tunnel keeps the connection busy for as long as it is open.
        return Ok(tunnel::handle_connect(ctx, client, req, in_flight).await);
    }
    Ok(hold_until_body_done(
        absolute_form(ctx, client, req).await,
        in_flight,
    ))
}

async fn absolute_form(
    ctx: Arc<ProxyContext>,
    client: SocketAddr,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let uri = req.uri();
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        // Origin-form: a browser or curl pointed straight at the proxy port.
        return local::respond(&ctx, &req);
    };
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => {
            let reason = format!("unsupported scheme {other:?}; airlock forwards http and https");
            let tracker =
                ctx.connection_record(client.ip(), Some(req.method().as_str()), other, None);
            tracker.fail(Some(400), &reason);
            return error_response(StatusCode::BAD_REQUEST, "bad-request", &reason);
        }
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(scheme.default_port());
    let exchange = Exchange {
        listener: ctx.listener_name.clone(),
        client_ip: client.ip(),
        scheme,
        host,
        port,
    };
    forward::forward(ctx, exchange, req).await
}
