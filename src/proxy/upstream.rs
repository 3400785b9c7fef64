//! Forward: connections to upstream servers. One dialer (with `resolve` overrides and
//! timeouts) serves both the pooled HTTP clients and blind tunnels; upstream TLS is always
//! verified, and a failure is a typed error that becomes a clear 502/504.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::{Config, GatewayRoute, ResolveMap};
use crate::pipeline::ProxyBody;
use crate::policy::destination::DestinationGuard;
use crate::tls::TlsContext;

const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
const POOL_MAX_IDLE_PER_HOST: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("connection to {host}:{port} ({addr}) was refused")]
    Refused {
        host: String,
        port: u16,
        addr: SocketAddr,
    },
    #[error("connection to {host}:{port} timed out after {secs} s")]
    ConnectTimeout { host: String, port: u16, secs: u64 },
    #[error("cannot connect to {host}:{port} ({addr}): {source}")]
    Connect {
        host: String,
        port: u16,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("upstream certificate of {host} was rejected: {reason}")]
    Certificate { host: String, reason: String },
    #[error("TLS handshake with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("invalid upstream address {0:?}")]
    BadAddress(String),
    #[error(
        "{host} resolves to {addr}, a {kind} address: the destination guard refuses it (allow_private lists the ranges that may be reached)"
    )]
    Destination {
        host: String,
        addr: std::net::IpAddr,
        kind: &'static str,
    },
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            UpstreamError::ConnectTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Destination { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_GATEWAY,
        }
    }

    /// The short kind in `X-Airlock-Error` and the flow record's reason prefix.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Resolve { .. } => "upstream-dns",
            UpstreamError::Refused { .. } | UpstreamError::Connect { .. } => "upstream-connect",
            UpstreamError::ConnectTimeout { .. } => "upstream-timeout",
            UpstreamError::Certificate { .. } => "upstream-certificate",
            UpstreamError::Tls { .. } => "upstream-tls",
            UpstreamError::BadAddress(_) => "upstream-address",
            UpstreamError::Destination { .. } => "destination",
        }
    }
}

/// Opens TCP connections to upstreams, honouring `resolve`, the connect timeout and the
/// destination guard.
pub struct Dialer {
    resolve: ResolveMap,
    connect_timeout: Duration,
    /// How long a write to an upstream may wait for it to take a byte (`limits.idle_timeout`).
    stall_timeout: Duration,
    /// `None` for airlock's own fetches (the policy source the operator configured).
    guard: Option<DestinationGuard>,
    /// The gateways' upstreams (`host`, `port` as configured): the operator named them, so
    /// the guard lets them through even on loopback (SPEC 6). Reached through the forward
    /// proxy too, which gives an agent nothing the gateway does not already give it.
    operator_targets: Vec<(String, u16)>,
}

impl Dialer {
    pub fn new(config: &Config) -> Self {
        Dialer {
            resolve: config.resolve.clone(),
            connect_timeout: config.limits.connect_timeout,
            stall_timeout: config.limits.idle_timeout,
            guard: Some(DestinationGuard::new(config.allow_private.clone())),
            operator_targets: config
                .gateways
                .iter()
                .flat_map(|g| match &g.route {
                    GatewayRoute::Target(base) => vec![base],
                    GatewayRoute::Llm(u) => vec![&u.anthropic, &u.openai, &u.google],
                })
                .map(|base| (base.host.clone(), base.port))
                .collect(),
        }
    }

    /// A dialer for airlock's own requests (no destination guard).
    pub fn unguarded(config: &Config) -> Self {
        Dialer {
            guard: None,
            ..Dialer::new(config)
        }
    }

    /// The addresses `host` may be connected to, after the destination guard.
    async fn guarded_addresses(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, UpstreamError> {
        let addrs = self.addresses(host, port).await?;
        let Some(guard) = &self.guard else {
            return Ok(addrs);
        };
        if self
            .operator_targets
            .iter()
            .any(|(h, p)| *p == port && h.eq_ignore_ascii_case(host))
        {
            return Ok(addrs);
        }
        let mut refused = None;
        let allowed: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| match guard.refusal(a.ip()) {
                None => true,
                Some(kind) => {
                    refused.get_or_insert((a.ip(), kind));
                    false
                }
            })
            .collect();
        match (allowed.is_empty(), refused) {
            (true, Some((addr, kind))) => Err(UpstreamError::Destination {
                host: host.to_string(),
                addr,
                kind,
            }),
            _ => Ok(allowed),
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    pub async fn addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, UpstreamError> {
        if let Some(addr) = self.resolve.lookup(host, port) {
            return Ok(vec![addr]);
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let lookup =
            tokio::time::timeout(self.connect_timeout, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| UpstreamError::Resolve {
                    host: host.to_string(),
                    reason: format!("no answer within {} s", self.connect_timeout.as_secs()),
                })?
                .map_err(|e| UpstreamError::Resolve {
                    host: host.to_string(),
                    reason: e.to_string(),
                })?;
        let addrs: Vec<SocketAddr> = lookup.collect();
        if addrs.is_empty() {
            return Err(UpstreamError::Resolve {
                host: host.to_string(),
                reason: "no addresses".into(),
            });
        }
        Ok(addrs)
    }

    /// Tries each address in turn within one overall connect timeout.
    pub async fn dial(&self, host: &str, port: u16) -> Result<TcpStream, UpstreamError> {
        let addrs = self.guarded_addresses(host, port).await?;
        let attempt = async {
            let mut last = None;
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => {
                        let _ = stream.set_nodelay(true);
                        return Ok(stream);
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        last = Some(UpstreamError::Refused {
                            host: host.to_string(),
                            port,
                            addr,
                        });
                    }
                    Err(source) => {
                        last = Some(UpstreamError::Connect {
                            host: host.to_string(),
                            port,
                            addr,
                            source,
                        });
                    }
                }
            }
            Err(last.expect("at least one address"))
        };
        tokio::time::timeout(self.connect_timeout, attempt)
            .await
            .map_err(|_| UpstreamError::ConnectTimeout {
                host: host.to_string(),
                port,
                secs: self.connect_timeout.as_secs(),
            })?
    }
}

/// A connection to an upstream, plain or TLS. A write the upstream takes no byte of for
/// the stall timeout fails: an upstream that stops reading would otherwise hold the
/// connection, the request body and the client's connection behind it for good (the pooled
/// client flushes what it buffered before it closes a connection it gave up on).
pub struct UpstreamIo {
    stream: Stream,
    stall_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl UpstreamIo {
    fn new(stream: Stream, stall_timeout: Duration) -> Self {
        UpstreamIo {
            stream,
            stall_timeout,
            stalled: None,
        }
    }

    /// A write that is still pending after the stall timeout becomes an error.
    fn guard<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let timeout = self.stall_timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.stalled = None;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the upstream took no byte for {} s (limits.idle_timeout)",
                timeout.as_secs()
            ),
        )))
    }
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        match &self.stream {
            Stream::Plain(_) => Connected::new(),
            Stream::Tls(tls) => {
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    Connected::new().negotiated_h2()
                } else {
                    Connected::new()
                }
            }
        }
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        this.guard(cx, r)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        this.guard(cx, r)
    }
    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        };
        this.guard(cx, r)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = match &mut this.stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        };
        this.guard(cx, r)
    }
}

/// The connector the pooled clients use: dial, then TLS for `https` URIs.
#[derive(Clone)]
pub struct UpstreamConnector {
    dialer: Arc<Dialer>,
    tls: Arc<ClientConfig>,
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = TokioIo<UpstreamIo>;
    type Error = UpstreamError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, UpstreamError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let dialer = self.dialer.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or_else(|| UpstreamError::BadAddress(uri.to_string()))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let https = uri.scheme_str() == Some("https");
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let tcp = dialer.dial(&host, port).await?;
            if !https {
                return Ok(TokioIo::new(UpstreamIo::new(
                    Stream::Plain(tcp),
                    dialer.stall_timeout,
                )));
            }
            let name = ServerName::try_from(host.clone())
                .map_err(|_| UpstreamError::BadAddress(host.clone()))?;
            let handshake = TlsConnector::from(tls).connect(name, tcp);
            let stream = tokio::time::timeout(dialer.connect_timeout(), handshake)
                .await
                .map_err(|_| UpstreamError::ConnectTimeout {
                    host: host.clone(),
                    port,
                    secs: dialer.connect_timeout().as_secs(),
                })?
                .map_err(|e| classify_tls_error(&host, e))?;
            Ok(TokioIo::new(UpstreamIo::new(
                Stream::Tls(Box::new(stream)),
                dialer.stall_timeout,
            )))
        })
    }
}

fn classify_tls_error(host: &str, e: io::Error) -> UpstreamError {
    use rustls::CertificateError as C;
    if let Some(rustls::Error::InvalidCertificate(cert)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        let reason = match cert {
            C::UnknownIssuer => "it is signed by an authority airlock does not trust (for a private server, add its CA to upstream_ca)".to_string(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                format!("it is not valid for the name {host}")
            }
            C::Expired | C::ExpiredContext { .. } => "it has expired".to_string(),
            C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".to_string(),
            C::Revoked => "it has been revoked".to_string(),
            C::BadSignature => "its signature is invalid".to_string(),
            other => format!("{other:?}"),
        };
        return UpstreamError::Certificate {
            host: host.to_string(),
            reason,
        };
    }
    UpstreamError::Tls {
        host: host.to_string(),
        reason: e.to_string(),
    }
}

pub type PooledClient = Client<UpstreamConnector, ProxyBody>;

/// The pooled upstream clients, shared by all client connections: keep-alive and h2
/// multiplexing to upstreams survive across the agents' own short-lived connections.
#[derive(Clone)]
pub struct Upstreams {
    clients: Arc<arc_swap::ArcSwap<Clients>>,
    tls_any: Arc<ClientConfig>,
    tls_h1: Arc<ClientConfig>,
    pub dialer: Arc<Dialer>,
}

struct Clients {
    /// Offers h2 to TLS upstreams.
    any: PooledClient,
    /// HTTP/1.1 only: WebSocket upgrades and `http1_only_hosts`.
    h1: PooledClient,
}

/// A client for airlock's own requests (the policy source): verified TLS, `resolve`, no
/// destination guard, no pool to speak of.
pub fn internal_client(config: &Config, tls: &TlsContext) -> PooledClient {
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build(UpstreamConnector {
            dialer: Arc::new(Dialer::unguarded(config)),
            tls: tls.upstream_h1.clone(),
        })
}

impl Upstreams {
    pub fn new(config: &Config, tls: &TlsContext) -> Self {
        let dialer = Arc::new(Dialer::new(config));
        let (tls_any, tls_h1) = (tls.upstream_any.clone(), tls.upstream_h1.clone());
        Upstreams {
            clients: Arc::new(arc_swap::ArcSwap::from_pointee(Clients::new(
                &dialer, &tls_any, &tls_h1,
            ))),
            tls_any,
            tls_h1,
            dialer,
        }
    }

    /// The client that offers h2 to TLS upstreams.
    pub fn any(&self) -> PooledClient {
        self.clients.load().any.clone()
    }

    /// The HTTP/1.1-only client (WebSocket upgrades, `http1_only_hosts`).
    pub fn h1(&self) -> PooledClient {
        self.clients.load().h1.clone()
    }

    /// Closes the idle pooled connections by starting new, empty pools. The server does it
    /// when no client connection has been open for a while: 64 idle TLS connections per
    /// host would otherwise hold their buffers for the 90 s of `POOL_IDLE_TIMEOUT` after a
    /// burst. Requests in flight keep the old pool until they end; their connections then
    /// close.
    pub fn drop_idle(&self) {
        self.clients.store(Arc::new(Clients::new(
            &self.dialer,
            &self.tls_any,
            &self.tls_h1,
        )));
    }
}

impl Clients {
    fn new(dialer: &Arc<Dialer>, tls_any: &Arc<ClientConfig>, tls_h1: &Arc<ClientConfig>) -> Self {
        let build = |tls: &Arc<ClientConfig>| {
            Client::builder(TokioExecutor::new())
                .timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
                .build(UpstreamConnector {
                    dialer: dialer.clone(),
                    tls: tls.clone(),
                })
        };
        Clients {
            any: build(tls_any),
            h1: build(tls_h1),
        }
    }
}

/// Turns a pooled-client error into (status, kind, reason) for the client and the record.
pub fn describe_client_error(
    e: &hyper_util::client::legacy::Error,
) -> (StatusCode, &'static str, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(up) = s.downcast_ref::<UpstreamError>() {
            return (up.status(), up.kind(), up.to_string());
        }
        source = s.source();
    }
    let mut reason = e.to_string();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    (
        StatusCode::BAD_GATEWAY,
        "upstream-protocol",
        format!("upstream exchange failed: {reason}"),
    )
}
