//! The forward proxy: listen → identify (absolute-form URL or CONNECT target) → intercept TLS
//! → forward → record. Requests addressed to airlock itself are answered by [`local`].

pub mod forward;
pub mod gateway;
pub mod idle;
pub mod intercept;
pub mod listener;
pub mod local;
pub mod prefixed;
pub mod splice;
pub mod tunnel;
pub mod upstream;
pub mod websocket;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::pipeline::respond::error_response;
use crate::pipeline::{Exchange, FlowTracker, ProxyBody, Scheme};
use crate::record::RecordSink;
use crate::tls::TlsContext;
use http_body_util::BodyExt;
use idle::InFlight;
use upstream::Upstreams;

/// The name under which airlock answers for itself (hello page, CA download).
pub const LOCAL_HOST: &str = "airlock.local";
pub const PROXY_LISTENER: &str = "proxy";

/// Everything a connection handler needs, shared by all connections.
pub struct ProxyContext {
    /// The configuration airlock started with: listeners, TLS, limits (what a reload cannot
    /// change).
    pub config: Arc<Config>,
    /// What a reload replaces: read once per request with `live()`.
    pub live: Arc<arc_swap::ArcSwap<Live>>,
    /// The kill switch (`airlock lockdown`, SIGUSR1).
    pub lockdown: Arc<std::sync::atomic::AtomicBool>,
    pub budgets: Arc<crate::policy::BudgetLedger>,
    pub tls: Arc<TlsContext>,
    pub upstreams: Upstreams,
    pub records: RecordSink,
    /// The address actually bound (the port is real even with `--listen …:0`).
    pub listen: SocketAddr,
    /// Every connection and tunnel task, so shutdown can wait for them to drain.
    pub tasks: TaskTracker,
    /// Flips to true when the proxy should stop taking new requests.
    pub shutdown: watch::Receiver<bool>,
    pub listener_name: Arc<str>,
    /// Set on a gateway's listener: where its requests go.
    pub gateway: Option<Arc<crate::config::GatewayConfig>>,
    /// The forward proxy's address (for messages on gateway listeners).
    pub proxy_listen: SocketAddr,
    /// LLM prices: the shipped table with the config's `prices` applied.
    pub prices: Arc<airlock_llm::PriceTable>,
}

/// The settings a reload swaps at once: the configuration as last loaded, the detection
/// engines built for it, and its compiled policy. A request reads one snapshot and keeps it,
/// so an exchange in flight finishes under the settings it started with.
pub struct Live {
    pub config: Arc<Config>,
    pub detector: Arc<crate::detect::Detector>,
    pub policy: Arc<crate::policy::Policy>,
    /// When this configuration was loaded (RFC 3339).
    pub loaded_at: String,
}

impl ProxyContext {
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }

    /// The same context for a gateway's listener.
    pub fn for_gateway(
        &self,
        gateway: Arc<crate::config::GatewayConfig>,
        listen: SocketAddr,
    ) -> ProxyContext {
        ProxyContext {
            config: self.config.clone(),
            live: self.live.clone(),
            lockdown: self.lockdown.clone(),
            budgets: self.budgets.clone(),
            tls: self.tls.clone(),
            upstreams: self.upstreams.clone(),
            records: self.records.clone(),
            listen,
            tasks: self.tasks.clone(),
            shutdown: self.shutdown.clone(),
            listener_name: Arc::from(gateway.name.as_str()),
            gateway: Some(gateway),
            proxy_listen: self.proxy_listen,
            prices: self.prices.clone(),
        }
    }

    /// True when `host:port` is this proxy itself (asking it to forward to itself would loop).
    pub fn is_self(&self, host: &str, port: u16) -> bool {
        if host.eq_ignore_ascii_case(LOCAL_HOST) {
            return true;
        }
        if port != self.listen.port() {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                ip == self.listen.ip()
                    || (self.listen.ip().is_unspecified()
                        && (ip.is_loopback() || ip.is_unspecified()))
                    || (self.listen.ip().is_loopback() && ip.is_loopback())
            }
            Err(_) => host.eq_ignore_ascii_case("localhost") && self.listen.ip().is_loopback(),
        }
    }
}

/// The service for connections on the proxy port: CONNECT, absolute-form requests, and
/// requests meant for airlock itself.
pub async fn handle_proxy_request(
    ctx: Arc<ProxyContext>,
    client: SocketAddr,
    req: Request<Incoming>,
    in_flight: InFlight,
) -> Result<Response<ProxyBody>, Infallible> {
    if ctx.gateway.is_some() {
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
        route(ctx, client, req).await,
        in_flight,
    ))
}

async fn route(
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
            let tracker = FlowTracker::connection(
                ctx.records.clone(),
                &ctx.listener_name,
                client.ip(),
                Some(req.method().as_str()),
                other,
                None,
            );
            tracker.fail(Some(400), &reason);
            return error_response(StatusCode::BAD_REQUEST, "bad-request", &reason);
        }
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(scheme.default_port());
    if ctx.is_self(&host, port) {
        return local::respond(&ctx, &req);
    }
    let exchange = Exchange {
        listener: ctx.listener_name.clone(),
        client_ip: client.ip(),
        scheme,
        host,
        port,
    };
    forward::forward(ctx, exchange, req).await
}

/// Resolves once the proxy is shutting down (the watch guard is dropped before returning, so
/// the future stays `Send`).
pub async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Keeps the connection counted as busy until the response body has been sent (or dropped).
pub fn hold_until_body_done(resp: Response<ProxyBody>, in_flight: InFlight) -> Response<ProxyBody> {
    resp.map(|body| {
        body.map_frame(move |frame| {
            let _busy = &in_flight;
            frame
        })
        .boxed()
    })
}
