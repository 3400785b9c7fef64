//! What every connection handler of a listener shares.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::Response;
use http_body_util::BodyExt;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::idle::InFlight;
use super::upstream::Upstreams;
use crate::config::{Config, GatewayConfig};
use crate::pipeline::{FlowTracker, Pipeline, ProxyBody};
use crate::tls::TlsContext;

/// The name under which airlock answers for itself (hello page, CA download).
pub const LOCAL_HOST: &str = "airlock.local";

/// Everything a connection handler needs, shared by all connections of one listener.
pub struct ProxyContext {
    /// The configuration airlock started with: listeners, TLS, limits (what a reload cannot
    /// change). What a reload swaps is in `pipeline.live`.
    pub config: Arc<Config>,
    /// What every exchange runs through.
    pub pipeline: Pipeline,
    pub tls: Arc<TlsContext>,
    pub upstreams: Upstreams,
    /// The address actually bound (the port is real even with `--listen …:0`).
    pub listen: SocketAddr,
    /// Every connection and tunnel task, so shutdown can wait for them to drain.
    pub tasks: TaskTracker,
    /// Flips to true when the proxy should stop taking new requests.
    pub shutdown: watch::Receiver<bool>,
    pub listener_name: Arc<str>,
    /// The forward proxy's address (for messages on gateway listeners).
    pub proxy_listen: SocketAddr,
    /// `user:password` a client must present in `Proxy-Authorization: Basic` (`proxy_auth`);
    /// none on gateway listeners, which are reverse proxies.
    pub proxy_credential: Option<Arc<[u8]>>,
}

impl ProxyContext {
    /// Notes how many client connections and tunnels are open now (their tasks), for the
    /// server's look at bursts between two of its ticks. A tunnel outlives the connection
    /// task that answered its CONNECT, so the connections alone undercount.
    pub fn note_open_tasks(&self) {
        self.pipeline
            .records
            .metrics
            .open_connections_peak
            .fetch_max(self.tasks.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// The gateway this listener serves, if it is one.
    pub fn gateway(&self) -> Option<&Arc<GatewayConfig>> {
        self.pipeline.gateway.as_ref()
    }

    /// The same context for a gateway's listener.
    pub fn for_gateway(&self, gateway: Arc<GatewayConfig>, listen: SocketAddr) -> ProxyContext {
        ProxyContext {
            config: self.config.clone(),
            pipeline: Pipeline {
                gateway: Some(gateway.clone()),
                ..self.pipeline.clone()
            },
            tls: self.tls.clone(),
            upstreams: self.upstreams.clone(),
            listen,
            tasks: self.tasks.clone(),
            shutdown: self.shutdown.clone(),
            listener_name: Arc::from(gateway.name.as_str()),
            proxy_listen: self.proxy_listen,
            proxy_credential: None,
        }
    }

    /// The record of something on this listener that is not an HTTP request: a blind
    /// tunnel, a failed CONNECT, a client TLS handshake failure, a malformed request.
    pub fn connection_record(
        &self,
        client_ip: IpAddr,
        method: Option<&str>,
        scheme: &str,
        host: Option<(&str, u16)>,
    ) -> Arc<FlowTracker> {
        FlowTracker::connection(
            self.pipeline.records.clone(),
            &self.listener_name,
            client_ip,
            method,
            scheme,
            host,
        )
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
