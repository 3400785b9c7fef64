//! The transparent listener (`transparent_port`, Linux): connections a jail's kernel rules
//! redirected to airlock. The original destination comes from connection tracking
//! (`SO_ORIGINAL_DST`). Ports 80 and 443 go into the same interception path as a CONNECT
//! tunnel, the host taken from the TLS SNI or the HTTP Host; any other port, and UDP other
//! than DNS (`catch_udp`), is a BYPASS: refused, recorded with the process that tried.

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::context::{ProxyContext, stopping};
use super::dns::JailNames;
use super::intercept::{Origin, serve_stream};
use super::socket_owner::{Proto, owner_of, udp_original_destination};
use super::splice::splice;
use super::tunnel::open_blind;
use crate::pipeline::{Side, decide};

/// The ports a jail may reach, through interception.
const WEB_PORTS: [u16; 2] = [80, 443];

/// Accepts redirected connections until shutdown.
pub async fn accept_loop(ctx: Arc<ProxyContext>, listener: TcpListener, names: Arc<JailNames>) {
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "transparent listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopping(&mut shutdown) => return,
        };
        let _ = stream.set_nodelay(true);
        ctx.tasks
            .clone()
            .spawn(handle(ctx.clone(), stream, peer, names.clone()));
        ctx.note_open_tasks();
    }
}

async fn handle(
    ctx: Arc<ProxyContext>,
    stream: TcpStream,
    peer: SocketAddr,
    names: Arc<JailNames>,
) {
    let Some(original) = original_destination(&stream) else {
        let tracker = ctx.connection_record(peer.ip(), Some("CONNECT"), "tcp", None);
        tracker.fail(
            None,
            "a connection reached the transparent listener without being redirected to it: refused (it serves only what a jail's rules redirect)",
        );
        return;
    };
    let name = names.name_of(*original.ip());
    let host = name.clone().unwrap_or_else(|| original.ip().to_string());
    if WEB_PORTS.contains(&original.port()) {
        let blind_possible = !ctx.config.enable_mitm || !ctx.config.passthrough_hosts.is_empty();
        if blind_possible
            && let Some(sni) = peek_sni(&stream).await
            && (!ctx.config.enable_mitm || ctx.config.passthrough_hosts.matches(&sni))
        {
            blind(ctx, peer, sni, original.port(), stream).await;
            return;
        }
        serve_stream(ctx, peer, host, original.port(), stream, Origin::Redirected).await;
        return;
    }
    let owner = tokio::task::spawn_blocking(move || owner_of(Proto::Tcp, peer))
        .await
        .ok()
        .flatten();
    let tracker = ctx.connection_record(
        peer.ip(),
        Some("CONNECT"),
        "tcp",
        Some((&host, original.port())),
    );
    decide::bypass(
        &tracker,
        "tcp",
        SocketAddr::V4(original),
        name.as_deref(),
        owner,
    );
    // A reset, not a clean close: the client sees its connection refused at once. (A zero
    // linger does not block on drop, which is what the deprecation warns about.)
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
}

/// A redirected TLS connection airlock must not open (interception off, or a
/// `passthrough_hosts` match): relayed as it is to the host its SNI names, after the same
/// decisions as a blind CONNECT tunnel.
async fn blind(
    ctx: Arc<ProxyContext>,
    peer: SocketAddr,
    host: String,
    port: u16,
    stream: TcpStream,
) {
    let Ok((tracker, upstream)) =
        open_blind(&ctx, peer, &host, port, &http::HeaderMap::new()).await
    else {
        // The refusal is on record; a TLS client cannot be shown a 403.
        return;
    };
    tracker.set_status(200);
    let (up, down) = splice(stream, upstream, ctx.config.limits.idle_timeout).await;
    tracker.add_bytes(Side::Request, up);
    tracker.add_bytes(Side::Response, down);
}

/// The SNI of the ClientHello at the start of `stream`, read without consuming it.
async fn peek_sni(stream: &TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 16 * 1024];
    // A ClientHello may arrive in pieces: look again while it is incomplete, briefly.
    for _ in 0..50 {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        match client_hello_sni(&buf[..n]) {
            Hello::Complete(sni) => return sni,
            Hello::Partial if n < buf.len() => tokio::time::sleep(Duration::from_millis(20)).await,
            _ => return None,
        }
    }
    None
}

/// What the first bytes of a connection say about its ClientHello.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// A whole ClientHello, and its SNI (lower-case) if it names one.
    Complete(Option<String>),
    /// The start of a ClientHello: more bytes are needed.
    Partial,
    /// Not TLS, or a ClientHello rustls refuses.
    Invalid,
}

/// Reads the ClientHello at the start of `bytes` (public for the fuzz targets: these are a
/// stranger's first bytes).
pub fn client_hello_sni(bytes: &[u8]) -> Hello {
    let mut acceptor = rustls::server::Acceptor::default();
    let mut rest = bytes;
    if acceptor.read_tls(&mut rest).is_err() {
        return Hello::Invalid;
    }
    match acceptor.accept() {
        Ok(Some(hello)) => Hello::Complete(
            hello
                .client_hello()
                .server_name()
                .map(str::to_ascii_lowercase),
        ),
        Ok(None) => Hello::Partial,
        Err(_) => Hello::Invalid,
    }
}

/// Receives the UDP a jail sends anywhere but DNS, and records each destination as a BYPASS
/// (at most once a second per source and destination, so a flood is one line per second).
pub async fn catch_udp(ctx: Arc<ProxyContext>, socket: UdpSocket, names: Arc<JailNames>) {
    let mut shutdown = ctx.shutdown.clone();
    let local_port = socket.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut buf = vec![0u8; 2048];
    let mut recent: Vec<((SocketAddr, Option<SocketAddr>), Instant)> = Vec::new();
    loop {
        let peer = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((_, peer)) => peer,
                Err(_) => continue,
            },
            _ = stopping(&mut shutdown) => return,
        };
        let (dest, owner) = tokio::task::spawn_blocking(move || {
            (
                udp_original_destination(peer, local_port),
                owner_of(Proto::Udp, peer),
            )
        })
        .await
        .unwrap_or((None, None));
        recent.retain(|(_, at)| at.elapsed() < Duration::from_secs(1));
        if recent.iter().any(|(key, _)| *key == (peer, dest)) {
            continue;
        }
        recent.push(((peer, dest), Instant::now()));
        let dest = dest.unwrap_or(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0));
        let name = match dest.ip() {
            IpAddr::V4(ip) => names.name_of(ip),
            IpAddr::V6(_) => None,
        };
        let shown = name.clone().unwrap_or_else(|| dest.ip().to_string());
        let tracker =
            ctx.connection_record(peer.ip(), Some("UDP"), "udp", Some((&shown, dest.port())));
        decide::bypass(&tracker, "udp", dest, name.as_deref(), owner);
    }
}

/// Where the client meant to go, before the kernel redirected it here.
fn original_destination(stream: &TcpStream) -> Option<SocketAddrV4> {
    // SAFETY: a getsockopt on a socket we own, into a sockaddr_in of the size we pass.
    unsafe {
        let mut addr: libc::sockaddr_in = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_IP,
            libc::SO_ORIGINAL_DST,
            (&mut addr as *mut libc::sockaddr_in).cast(),
            &mut len,
        );
        if rc != 0 || i32::from(addr.sin_family) != libc::AF_INET {
            return None;
        }
        let ip = u32::from_be(addr.sin_addr.s_addr);
        let port = u16::from_be(addr.sin_port);
        let original = SocketAddrV4::new(ip.into(), port);
        // Without a redirect, the "original" destination is the listener itself.
        let local = stream.local_addr().ok()?;
        (SocketAddr::V4(original) != local).then_some(original)
    }
}
