//! Listen: the accept loop of the proxy port, the connection limit, and HTTP/1.1 serving
//! shared with intercepted tunnels (with the record for requests too malformed to parse).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::idle::{ConnActivity, IdleIo};
use super::{ProxyContext, handle_proxy_request};
use crate::pipeline::{FlowTracker, ProxyBody};

/// Accepts until shutdown. Each connection runs in its own task on `ctx.tasks`.
pub async fn accept_loop(ctx: Arc<ProxyContext>, listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(ctx.config.limits.max_connections));
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = super::stopping(&mut shutdown) => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = ctx.config.limits.max_connections,
                "connection limit reached (limits.max_connections); refusing a client"
            );
            ctx.tasks.spawn(async move {
                let mut stream = stream;
                let _ = stream
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\nx-airlock-error: connection-limit\r\n\r\n")
                    .await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        ctx.tasks.clone().spawn(async move {
            let activity = ConnActivity::default();
            let io = IdleIo::new(stream, activity.clone(), ctx.config.limits.idle_timeout);
            let svc_ctx = ctx.clone();
            let service = hyper::service::service_fn(move |req| {
                handle_proxy_request(svc_ctx.clone(), peer, req, activity.begin())
            });
            serve_http1(&ctx, TokioIo::new(io), service, peer, "http", None).await;
            drop(permit);
        });
    }
}

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
        _ = super::stopping(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result
        && (e.is_parse() || e.is_parse_too_large() || e.is_parse_status())
    {
        let status = if e.is_parse_too_large() { 431 } else { 400 };
        let tracker = FlowTracker::connection(
            ctx.records.clone(),
            &ctx.listener_name,
            client.ip(),
            None,
            scheme,
            target,
        );
        tracker.fail(
            Some(status),
            format!("malformed request from the client: {e}"),
        );
    }
}
