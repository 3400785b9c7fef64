//! Listen: the accept loop of a listener (the proxy port, a gateway's) and the connection
//! limit.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::context::{ProxyContext, stopping};
use super::http1::serve_http1;
use super::identify::handle_request;
use super::idle::{ConnActivity, IdleIo};

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
            _ = stopping(&mut shutdown) => return,
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
        let open = ctx.pipeline.records.metrics.open_connections.clone();
        open.inc();
        let conn_ctx = ctx.clone();
        ctx.tasks.spawn(async move {
            let _counted = OpenConnection(open);
            let activity = ConnActivity::default();
            let io = IdleIo::new(
                stream,
                activity.clone(),
                conn_ctx.config.limits.idle_timeout,
            );
            let svc_ctx = conn_ctx.clone();
            let service = hyper::service::service_fn(move |req| {
                handle_request(svc_ctx.clone(), peer, req, activity.begin())
            });
            serve_http1(&conn_ctx, TokioIo::new(io), service, peer, "http", None).await;
            drop(permit);
        });
        ctx.note_open_tasks();
    }
}

/// Counts a client connection as open until it is dropped.
struct OpenConnection(prometheus_client::metrics::gauge::Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
