//! HTTP/1.1 on one client connection (with upgrades: CONNECT, WebSocket), shared by the
//! listeners and by intercepted tunnels, with the record for requests too malformed to parse.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioTimer;

use super::context::{ProxyContext, stopping};
use crate::pipeline::ProxyBody;

/// Serves HTTP/1.1 (with upgrades: CONNECT, WebSocket) on one connection until it closes or
/// the proxy shuts down. A request hyper cannot parse (garbage, an oversized head) gets
/// hyper's 400/431 and a failed flow record here.
pub async fn serve_http1<I, S>(
    ctx: &ProxyContext,
    io: I,
    service: S,
    client: SocketAddr,
    scheme: &str,
    target: Option<(&str, u16)>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<Incoming>,
            Response = Response<ProxyBody>,
            Error = Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.config.limits.header_timeout)
        .max_header_size(ctx.config.limits.header_bytes);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let mut shutdown = ctx.shutdown.clone();
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stopping(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result
        && (e.is_parse() || e.is_parse_too_large() || e.is_parse_status())
    {
        let status = if e.is_parse_too_large() { 431 } else { 400 };
        let tracker = ctx.connection_record(client.ip(), None, scheme, target);
        tracker.fail(
            Some(status),
            format!("malformed request from the client: {e}"),
        );
    }
}
