//! Intercept: inside a CONNECT tunnel, tell TLS from plain HTTP by the first byte, terminate
//! TLS with a leaf certificate for the host the client asked for, and serve HTTP/1.1 or
//! HTTP/2 (per ALPN) into the same forwarding path as every other request.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_rustls::LazyConfigAcceptor;

use super::context::{ProxyContext, hold_until_body_done, stopping};
use super::forward::forward;
use super::http1::serve_http1;
use super::idle::{ConnActivity, IdleIo};
use super::prefixed::PrefixedStream;
use crate::pipeline::{Exchange, Scheme};

const TLS_HANDSHAKE: u8 = 0x16;

/// HTTP/2 streams a client may have open at once on one intercepted connection.
const H2_MAX_STREAMS: u32 = 200;

/// How a connection reached the interception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A CONNECT tunnel: the client named its destination.
    Connect,
    /// Redirected by the kernel (a jail): the destination is the TLS SNI or the HTTP Host,
    /// else `host`, what the jail's DNS or the original address says.
    Redirected,
}

pub async fn serve_tunnel(
    ctx: Arc<ProxyContext>,
    client: SocketAddr,
    host: String,
    port: u16,
    upgraded: Upgraded,
) {
    serve_stream(
        ctx,
        client,
        host,
        port,
        TokioIo::new(upgraded),
        Origin::Connect,
    )
    .await;
}

/// Serves one client stream bound for `host:port`: TLS is intercepted, plain HTTP served,
/// anything else refused and recorded.
pub async fn serve_stream<S>(
    ctx: Arc<ProxyContext>,
    client: SocketAddr,
    host: String,
    port: u16,
    mut io: S,
    origin: Origin,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut first = vec![0u8; 1024];
    let n = match tokio::time::timeout(ctx.config.limits.idle_timeout, io.read(&mut first)).await {
        Ok(Ok(n)) if n > 0 => n,
        // The client opened a tunnel and went away (or said nothing): nothing was sent.
        _ => return,
    };
    first.truncate(n);
    let starts_tls = first[0] == TLS_HANDSHAKE;
    let starts_http = first[0].is_ascii_uppercase();
    let host = match origin {
        Origin::Redirected if starts_http => http_host(&first).unwrap_or(host),
        _ => host,
    };
    let stream = PrefixedStream::new(Bytes::from(first), io);

    if starts_tls {
        serve_tls(ctx, client, host, port, stream, origin).await;
    } else if starts_http {
        let exchange = Exchange {
            listener: ctx.listener_name.clone(),
            client_ip: client.ip(),
            scheme: Scheme::Http,
            host,
            port,
        };
        serve_http(ctx, exchange, stream, false, ConnActivity::default()).await;
    } else {
        // Fail closed: with interception on, nothing leaves uninspected.
        let tracker =
            ctx.connection_record(client.ip(), Some("CONNECT"), "tcp", Some((&host, port)));
        tracker.fail(
            None,
            match origin {
                Origin::Connect => "the tunnel carried neither TLS nor HTTP, so it cannot be inspected and was closed; add the host to passthrough_hosts to tunnel it blindly",
                Origin::Redirected => "a redirected connection carried neither TLS nor HTTP, so it cannot be inspected and was closed (only HTTP and HTTPS leave a jail)",
            },
        );
    }
}

/// The host of the Host header in the first bytes of an HTTP request, without its port.
fn http_host(first: &[u8]) -> Option<String> {
    let head = std::str::from_utf8(first).ok().or_else(|| {
        // A head cut inside a multi-byte character: what precedes it.
        let valid = std::str::from_utf8(first).err()?.valid_up_to();
        std::str::from_utf8(&first[..valid]).ok()
    })?;
    let value = head
        .split("\r\n")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("host")
                .then(|| value.trim())
        })?;
    let (host, _port) = crate::pipeline::decide::split_host_port(value);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

async fn serve_tls<S>(
    ctx: Arc<ProxyContext>,
    client: SocketAddr,
    host: String,
    port: u16,
    stream: S,
    origin: Origin,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake_failed = |host: &str, reason: String| {
        let tracker =
            ctx.connection_record(client.ip(), Some("CONNECT"), "https", Some((host, port)));
        tracker.fail(None, reason);
    };
    let timeout = ctx.config.limits.header_timeout;
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match tokio::time::timeout(timeout, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(e)) => return handshake_failed(&host, format!("client TLS handshake failed: {e}")),
        Err(_) => {
            return handshake_failed(
                &host,
                format!(
                    "client sent no complete TLS ClientHello within {} s",
                    timeout.as_secs()
                ),
            );
        }
    };
    // The certificate names what the client will check: its SNI, or the CONNECT target when
    // it sent none (IP addresses). Routing and records stay on the CONNECT target, except
    // for a redirected connection, whose only statement of its destination is the SNI.
    let sni = start
        .client_hello()
        .server_name()
        .map(str::to_ascii_lowercase);
    let cert_host = sni.clone().unwrap_or_else(|| host.clone());
    // A redirected connection's destination is the name the client asked for.
    let host = match (origin, sni) {
        (Origin::Redirected, Some(sni)) => sni,
        _ => host,
    };
    let http1_only = ctx.config.http1_only_hosts.matches(&host);
    let server_config = match ctx.tls.leaf_cache.server_config(&cert_host, http1_only) {
        Ok(c) => c,
        Err(e) => return handshake_failed(&host, e.to_string()),
    };
    let tls = match tokio::time::timeout(timeout, start.into_stream(server_config)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            return handshake_failed(
                &host,
                format!(
                    "client TLS handshake failed: {e} (a client that pins certificates or does not trust the airlock CA rejects interception; add the host to passthrough_hosts to tunnel it)"
                ),
            );
        }
        Err(_) => {
            return handshake_failed(
                &host,
                format!(
                    "client TLS handshake did not finish within {} s",
                    timeout.as_secs()
                ),
            );
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let exchange = Exchange {
        listener: ctx.listener_name.clone(),
        client_ip: client.ip(),
        scheme: Scheme::Https,
        host: host.clone(),
        port,
    };
    let activity = ConnActivity::default();
    serve_http(ctx.clone(), exchange, tls, h2, activity.clone()).await;
    if !activity.received_any() {
        // What a client that checks the certificate after the handshake does when it does
        // not trust it (wget with GnuTLS): without this record it would leave no trace.
        let tracker =
            ctx.connection_record(client.ip(), Some("CONNECT"), "https", Some((&host, port)));
        tracker.fail(
            None,
            "the client closed the TLS session without sending a request: it may have rejected airlock's certificate (does it trust the airlock CA? see `airlock ca`, or run it with `airlock run`)",
        );
    }
}

/// Serves HTTP on a tunnel's inner stream: every request goes to the tunnel's destination.
async fn serve_http<S>(
    ctx: Arc<ProxyContext>,
    exchange: Exchange,
    stream: S,
    h2: bool,
    activity: ConnActivity,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = SocketAddr::new(exchange.client_ip, 0);
    let scheme = exchange.scheme.as_str();
    let target = (exchange.host.clone(), exchange.port);
    let stream = IdleIo::new(stream, activity.clone(), ctx.config.limits.idle_timeout);
    let svc_ctx = ctx.clone();
    let service = hyper::service::service_fn(move |req| {
        let ctx = svc_ctx.clone();
        let exchange = exchange.clone();
        let in_flight = activity.begin();
        async move {
            let resp = forward(ctx, exchange, req).await;
            Ok::<_, std::convert::Infallible>(hold_until_body_done(resp, in_flight))
        }
    });
    if !h2 {
        let target = Some((target.0.as_str(), target.1));
        serve_http1(&ctx, TokioIo::new(stream), service, client, scheme, target).await;
        return;
    }
    // Set here on purpose rather than left to defaults that may move between releases: the
    // floods HTTP/2 allows are bounded by these. A client resetting streams faster than they
    // are accepted (rapid reset) gets GOAWAY after 20; one making airlock reset streams (bad
    // frames) after 1,024; a header block, CONTINUATION frames included, is capped like an
    // HTTP/1.1 head; streams at once are capped per connection.
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_header_list_size(ctx.config.limits.header_bytes as u32)
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut shutdown = ctx.shutdown.clone();
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopping(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
