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
    if let Some(refusal) = check_proxy_auth(&ctx, client, &req) {
        return Ok(refusal);
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

/// `proxy_auth`: a request to forward (or a CONNECT) without the right `Proxy-Authorization:
/// Basic` gets 407 with `Proxy-Authenticate`, and a flow record. Requests for airlock itself
/// (origin-form: the hello page, the CA) need none; requests inside a tunnel were
/// authenticated by its CONNECT.
fn check_proxy_auth(
    ctx: &ProxyContext,
    client: SocketAddr,
    req: &Request<Incoming>,
) -> Option<Response<ProxyBody>> {
    let expected = ctx.proxy_credential.as_ref()?;
    let uri = req.uri();
    if req.method() != http::Method::CONNECT && uri.scheme().is_none() {
        return None;
    }
    let presented = req
        .headers()
        .get_all(http::header::PROXY_AUTHORIZATION)
        .iter()
        .filter_map(|v| basic_credential(v.as_bytes()))
        .collect::<Vec<_>>();
    if presented
        .iter()
        .any(|p| crate::config::same_secret(p, expected))
    {
        return None;
    }
    let reason = if presented.is_empty() {
        "proxy authentication required: send Proxy-Authorization: Basic with the proxy_auth user (http://USER:PASSWORD@HOST:PORT as the proxy URL)"
    } else {
        "wrong proxy credentials: check the user and password of proxy_auth"
    };
    let host = uri.host().map(|h| {
        (
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            uri.port_u16()
                .unwrap_or(if uri.scheme_str() == Some("https") {
                    443
                } else {
                    80
                }),
        )
    });
    let scheme = match (req.method() == http::Method::CONNECT, uri.scheme_str()) {
        (true, _) => "tcp",
        (false, Some(s)) => s,
        (false, None) => "http",
    };
    let tracker = ctx.connection_record(
        client.ip(),
        Some(req.method().as_str()),
        scheme,
        host.as_ref().map(|(h, p)| (h.as_str(), *p)),
    );
    tracker.set_status(407);
    tracker.escalate(crate::record::events::FlowAction::Blocked, reason);
    let mut response = error_response(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        "proxy-auth",
        reason,
    );
    response.headers_mut().insert(
        http::header::PROXY_AUTHENTICATE,
        http::HeaderValue::from_static("Basic realm=\"airlock\""),
    );
    Some(response)
}

/// The `user:password` bytes of a `Basic` credential.
fn basic_credential(value: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()
}
