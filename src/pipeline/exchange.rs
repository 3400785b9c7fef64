//! The identity of one exchange (decided once, never second-guessed later) and the flow
//! tracker that turns it into a record when the last piece of the exchange finishes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::HeaderMap;

use crate::record::RecordSink;
use crate::record::events::{
    EgressEvent, FlowAction, FlowRecord, ScanSummary, masked_headers, now_rfc3339,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Who asked for what: the listener, the client, and the destination. Inside a TLS tunnel
/// the destination is the CONNECT target, whatever the request's Host header says.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub listener: Arc<str>,
    pub client_ip: IpAddr,
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

impl Exchange {
    /// `host[:port]` as it belongs in a URL (IPv6 bracketed, default port omitted).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            path_and_query
        )
    }
}

/// Which body of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// Collects what happens to one exchange and writes its flow record when dropped — that is,
/// when the handler, the request body and the response body are all finished with it,
/// however they finished (completed, failed, client gone). The record cannot be skipped.
pub struct FlowTracker {
    sink: RecordSink,
    started: Instant,
    state: Mutex<FlowState>,
}

struct FlowState {
    record: FlowRecord,
    /// For level-2 events: the request path and headers as forwarded.
    path: String,
    forwarded_headers: Option<BTreeMap<String, String>>,
    response_headers: Option<BTreeMap<String, String>>,
}

impl FlowTracker {
    pub fn new(
        sink: RecordSink,
        exchange: &Exchange,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        http_version: Option<&'static str>,
    ) -> Arc<Self> {
        Arc::new(FlowTracker {
            started: Instant::now(),
            state: Mutex::new(FlowState {
                record: FlowRecord {
                    timestamp: now_rfc3339(),
                    id: uuid::Uuid::now_v7().to_string(),
                    listener: exchange.listener.to_string(),
                    client_ip: exchange.client_ip.to_string(),
                    method: Some(method.to_string()),
                    url: Some(exchange.url(path_and_query)),
                    scheme: exchange.scheme.as_str().to_string(),
                    host: Some(exchange.host.clone()),
                    port: Some(exchange.port),
                    status: None,
                    duration_ms: 0.0,
                    request_bytes: 0,
                    response_bytes: 0,
                    action: FlowAction::Allowed,
                    reason: None,
                    request_headers: masked_headers(headers),
                    scan: ScanSummary::default(),
                    http_version: http_version.map(str::to_string),
                },
                path: path_and_query.to_string(),
                forwarded_headers: None,
                response_headers: None,
            }),
            sink,
        })
    }

    /// A tracker for something that is not an HTTP request: a blind tunnel, a failed CONNECT,
    /// a client TLS handshake failure, a malformed request.
    pub fn connection(
        sink: RecordSink,
        listener: &str,
        client_ip: IpAddr,
        method: Option<&str>,
        scheme: &str,
        host: Option<(&str, u16)>,
    ) -> Arc<Self> {
        Arc::new(FlowTracker {
            started: Instant::now(),
            state: Mutex::new(FlowState {
                record: FlowRecord {
                    timestamp: now_rfc3339(),
                    id: uuid::Uuid::now_v7().to_string(),
                    listener: listener.to_string(),
                    client_ip: client_ip.to_string(),
                    method: method.map(str::to_string),
                    url: host.map(|(h, p)| {
                        if h.contains(':') {
                            format!("[{h}]:{p}")
                        } else {
                            format!("{h}:{p}")
                        }
                    }),
                    scheme: scheme.to_string(),
                    host: host.map(|(h, _)| h.to_string()),
                    port: host.map(|(_, p)| p),
                    status: None,
                    duration_ms: 0.0,
                    request_bytes: 0,
                    response_bytes: 0,
                    action: FlowAction::Tunneled,
                    reason: None,
                    request_headers: BTreeMap::new(),
                    scan: ScanSummary::default(),
                    http_version: None,
                },
                path: String::new(),
                forwarded_headers: None,
                response_headers: None,
            }),
            sink,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FlowState> {
        // A panic elsewhere must not cost the audit record: take the data even if poisoned.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_status(&self, status: u16) {
        self.lock().record.status = Some(status);
    }

    /// The exchange failed: no (real) response. `status` is what the client was told.
    pub fn fail(&self, status: Option<u16>, reason: impl Into<String>) {
        let mut s = self.lock();
        s.record.action = FlowAction::Failed;
        s.record.status = status;
        s.record.reason = Some(reason.into());
    }

    /// A note on an exchange that otherwise went through (a body cut short, say).
    pub fn note(&self, reason: impl Into<String>) {
        let mut s = self.lock();
        if s.record.reason.is_none() {
            s.record.reason = Some(reason.into());
        }
    }

    pub fn add_bytes(&self, side: Side, n: u64) {
        let mut s = self.lock();
        match side {
            Side::Request => s.record.request_bytes += n,
            Side::Response => s.record.response_bytes += n,
        }
    }

    pub fn set_forwarded_headers(&self, headers: &HeaderMap) {
        self.lock().forwarded_headers = Some(masked_headers(headers));
    }

    pub fn set_response_headers(&self, headers: &HeaderMap) {
        self.lock().response_headers = Some(masked_headers(headers));
    }

    pub fn wants_bodies(&self) -> bool {
        self.sink.log_mode() >= crate::config::LogMode::Full
    }

    /// Level-2 `egress_request` / `egress_response`, once the body is complete.
    pub fn body_event(&self, side: Side, preview: &[u8], total: u64, truncated: bool) {
        let s = self.lock();
        let host = s.record.host.clone().unwrap_or_default();
        let body = String::from_utf8_lossy(preview).into_owned();
        let event = match side {
            Side::Request => EgressEvent::EgressRequest {
                timestamp: now_rfc3339(),
                id: s.record.id.clone(),
                host,
                method: s.record.method.clone().unwrap_or_default(),
                path: s.path.clone(),
                headers: s.forwarded_headers.clone().unwrap_or_default(),
                body,
                body_bytes: total,
                body_truncated: truncated,
            },
            Side::Response => EgressEvent::EgressResponse {
                timestamp: now_rfc3339(),
                id: s.record.id.clone(),
                host,
                status: s.record.status.unwrap_or(0),
                headers: s.response_headers.clone().unwrap_or_default(),
                body,
                body_bytes: total,
                body_truncated: truncated,
            },
        };
        drop(s);
        self.sink.event(event);
    }
}

impl Drop for FlowTracker {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed().as_secs_f64() * 1000.0;
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut record = state.record.clone();
        record.duration_ms = (elapsed * 1000.0).round() / 1000.0;
        self.sink.flow(record);
    }
}
