//! The flow tracker: collects what happens to one exchange and turns it into its flow record
//! when the last piece of the exchange (handler, request body, response body) lets go.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::HeaderMap;

use super::exchange::{BlockInfo, Exchange, Side};
use crate::config::LogMode;
use crate::detect::{Detection, Detector, Secret, mask_known, mask_preview};
use crate::record::RecordSink;
use crate::record::events::{
    EgressEvent, FlowAction, FlowRecord, MASK, ScanSummary, masked_headers, now_rfc3339,
};

/// What a threat record needs to know about the exchange it belongs to.
#[derive(Debug, Clone)]
pub struct ThreatContext {
    pub flow_id: String,
    pub protocol: String,
    pub source: String,
    pub dest: String,
    pub host: String,
    pub method: String,
    pub path: String,
    pub status: Option<u16>,
}

/// Collects what happens to one exchange and writes its flow record when dropped — that is,
/// when the handler, the request body and the response body are all finished with it,
/// however they finished (completed, failed, client gone). The record cannot be skipped.
pub struct FlowTracker {
    sink: RecordSink,
    /// Masks credentials in level-2 body previews.
    detector: Option<Arc<Detector>>,
    started: Instant,
    state: Mutex<FlowState>,
}

struct FlowState {
    record: FlowRecord,
    /// Set when detection or policy blocked this exchange (possibly mid-body).
    blocked: Option<BlockInfo>,
    /// For level-2 events: the request path and headers as forwarded.
    path: String,
    forwarded_headers: Option<BTreeMap<String, String>>,
    response_headers: Option<BTreeMap<String, String>>,
    /// Upgraded to WebSocket: threats name `ws`/`wss` as their protocol.
    websocket: bool,
    /// Headers masked wherever this exchange's headers are written.
    masked: Vec<String>,
    /// Credentials airlock itself put in (a route's): masked in every level-2 event.
    known_secrets: Vec<Secret>,
}

impl FlowState {
    fn new(record: FlowRecord, path: String) -> Self {
        FlowState {
            record,
            blocked: None,
            path,
            forwarded_headers: None,
            response_headers: None,
            websocket: false,
            masked: Vec::new(),
            known_secrets: Vec::new(),
        }
    }
}

impl FlowTracker {
    pub fn new(
        sink: RecordSink,
        exchange: &Exchange,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        http_version: Option<&'static str>,
        detector: Option<Arc<Detector>>,
    ) -> Arc<Self> {
        Arc::new(FlowTracker {
            detector,
            started: Instant::now(),
            state: Mutex::new(FlowState::new(
                FlowRecord {
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
                path_and_query.to_string(),
            )),
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
            detector: None,
            started: Instant::now(),
            state: Mutex::new(FlowState::new(
                FlowRecord {
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
                String::new(),
            )),
            sink,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FlowState> {
        // A panic elsewhere must not cost the audit record: take the data even if poisoned.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The exchange became a WebSocket connection.
    pub fn mark_websocket(&self) {
        self.lock().websocket = true;
    }

    /// Something airlock answered itself (a jail's DNS query): allowed, not a tunnel.
    pub fn answered(&self) {
        let mut s = self.lock();
        if s.record.action == FlowAction::Tunneled {
            s.record.action = FlowAction::Allowed;
        }
    }

    pub fn set_status(&self, status: u16) {
        self.lock().record.status = Some(status);
    }

    /// The exchange failed: no (real) response, or one broken off. `status` is what the
    /// client was told; `None` keeps the status already recorded (a head that already left
    /// before the body broke off).
    pub fn fail(&self, status: Option<u16>, reason: impl Into<String>) {
        let mut s = self.lock();
        s.record.action = FlowAction::Failed;
        if status.is_some() {
            s.record.status = status;
        }
        s.record.reason = Some(reason.into());
    }

    /// A note on an exchange that otherwise went through (a body cut short, say).
    pub fn note(&self, reason: impl Into<String>) {
        let mut s = self.lock();
        if s.record.reason.is_none() {
            s.record.reason = Some(reason.into());
        }
    }

    /// Raises the record's action (allowed < warned < redacted < failed < blocked) and sets
    /// the reason that goes with the highest.
    pub fn escalate(&self, action: FlowAction, reason: &str) {
        fn rank(a: FlowAction) -> u8 {
            match a {
                FlowAction::Allowed | FlowAction::Tunneled => 0,
                FlowAction::Warned => 1,
                FlowAction::Redacted => 2,
                FlowAction::Failed => 3,
                FlowAction::Blocked => 4,
            }
        }
        let mut s = self.lock();
        if rank(action) > rank(s.record.action) {
            s.record.action = action;
            s.record.reason = Some(reason.to_string());
        } else if rank(action) == rank(s.record.action) && s.record.reason.is_none() {
            s.record.reason = Some(reason.to_string());
        }
    }

    pub fn block(&self, info: BlockInfo) {
        let mut s = self.lock();
        if s.blocked.as_ref().is_some_and(|b| b.rank <= info.rank) {
            return;
        }
        s.record.action = FlowAction::Blocked;
        s.record.reason = Some(info.reason.clone());
        // What the client is told, unless a response was already under way.
        if s.record.status.is_none() {
            s.record.status = Some(403);
        }
        s.blocked = Some(info);
    }

    pub fn blocked(&self) -> Option<BlockInfo> {
        self.lock().blocked.clone()
    }

    /// Updates the flow's scan summary.
    pub fn scan(&self, update: impl FnOnce(&mut ScanSummary)) {
        update(&mut self.lock().record.scan);
    }

    /// What a threat record needs to know about this exchange.
    pub fn threat_context(&self) -> ThreatContext {
        let s = self.lock();
        let host = s.record.host.clone().unwrap_or_default();
        let port = s.record.port.unwrap_or(0);
        ThreatContext {
            flow_id: s.record.id.clone(),
            protocol: match (s.websocket, s.record.scheme.as_str()) {
                (true, "https") => "wss".to_string(),
                (true, _) => "ws".to_string(),
                (false, scheme) => scheme.to_string(),
            },
            source: s.record.client_ip.clone(),
            dest: if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            },
            host,
            method: s.record.method.clone().unwrap_or_default(),
            path: s.path.split('?').next().unwrap_or("").to_string(),
            status: s.record.status,
        }
    }

    /// The URL as the flow record will show it (masked where detection or a route asked).
    pub fn url(&self) -> String {
        let s = self.lock();
        let url = s.record.url.clone().unwrap_or_default();
        if s.known_secrets.is_empty() {
            url
        } else {
            mask_known(&url, &s.known_secrets)
        }
    }

    pub fn sink(&self) -> &RecordSink {
        &self.sink
    }

    /// Request body bytes read from the client so far.
    pub fn request_bytes(&self) -> u64 {
        self.lock().record.request_bytes
    }

    pub fn add_bytes(&self, side: Side, n: u64) {
        let mut s = self.lock();
        match side {
            Side::Request => s.record.request_bytes += n,
            Side::Response => s.record.response_bytes += n,
        }
    }

    /// Replaces the recorded URL's path and query with a masked form.
    pub fn mask_url(&self, masked_path_and_query: &str) {
        let mut s = self.lock();
        if let Some(url) = &s.record.url {
            let origin_end = url
                .find("://")
                .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
                .unwrap_or(url.len());
            let masked = format!("{}{masked_path_and_query}", &url[..origin_end]);
            s.record.url = Some(masked);
        }
        s.path = masked_path_and_query.to_string();
    }

    /// Replaces the hostname in the record (and its URL) by one with its secrets masked.
    pub fn mask_host(&self, masked_host: &str) {
        let mut s = self.lock();
        let Some(old) = s.record.host.replace(masked_host.to_string()) else {
            return;
        };
        if let Some(url) = &mut s.record.url {
            *url = url.replacen(old.as_str(), masked_host, 1);
        }
    }

    /// Masks a header a detector flagged, in the record and the level-2 events.
    pub fn mask_header(&self, name: &str) {
        let mut s = self.lock();
        if !s.masked.iter().any(|m| m == name) {
            s.masked.push(name.to_string());
        }
        if let Some(v) = s.record.request_headers.get_mut(name) {
            *v = MASK.to_string();
        }
        if let Some(h) = &mut s.forwarded_headers
            && let Some(v) = h.get_mut(name)
        {
            *v = MASK.to_string();
        }
    }

    /// A credential airlock put in the request: no level-2 event may show it.
    pub fn add_known_secret(&self, secret: &[u8]) {
        let mut s = self.lock();
        if !secret.is_empty() && !s.known_secrets.iter().any(|k| k.0 == secret) {
            s.known_secrets.push(Secret(secret.to_vec()));
        }
    }

    /// The credentials detection found in this exchange: every record of it masks them.
    pub fn note_findings(&self, detections: &[Detection]) {
        for d in detections {
            self.add_known_secret(&d.secret.0);
        }
    }

    /// Every credential this exchange is known to carry (found, or put in by a route).
    pub fn known_secrets(&self) -> Vec<Secret> {
        self.lock().known_secrets.clone()
    }

    pub fn set_forwarded_headers(&self, headers: &HeaderMap) {
        let mut s = self.lock();
        let mut h = masked_headers(headers);
        mask_headers(&mut h, &s.masked, &s.known_secrets);
        s.forwarded_headers = Some(h);
    }

    pub fn set_response_headers(&self, headers: &HeaderMap) {
        let mut s = self.lock();
        let mut h = masked_headers(headers);
        mask_headers(&mut h, &s.masked, &s.known_secrets);
        s.response_headers = Some(h);
    }

    pub fn wants_bodies(&self) -> bool {
        self.sink.log_mode() >= LogMode::Full
    }

    /// `text` as a log may show it: every credential detection finds in it, and every one
    /// this exchange is known to carry, masked (the level-2 body events, the transcripts).
    pub fn mask_text(&self, text: &[u8]) -> String {
        let mut out = match &self.detector {
            Some(d) => mask_preview(d, text),
            None => String::from_utf8_lossy(text).into_owned(),
        };
        let known = self.known_secrets();
        for secret in &known {
            out = out.replace(String::from_utf8_lossy(&secret.0).as_ref(), MASK);
        }
        mask_known(&out, &known)
    }

    /// Level-2 `egress_request` / `egress_response`, once the body is complete.
    pub fn body_event(&self, side: Side, preview: &[u8], total: u64, truncated: bool) {
        let body = self.mask_text(preview);
        let s = self.lock();
        let host = s.record.host.clone().unwrap_or_default();
        let event = match side {
            Side::Request => EgressEvent::Request {
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
            Side::Response => EgressEvent::Response {
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

/// Masks the named headers and any value holding a known credential (in any form).
fn mask_headers(headers: &mut BTreeMap<String, String>, names: &[String], secrets: &[Secret]) {
    for (name, value) in headers.iter_mut() {
        let raw = |s: &Secret| value.as_bytes().windows(s.0.len()).any(|w| w == s.0);
        if names.iter().any(|n| n == name) || secrets.iter().any(|s| !s.0.is_empty() && raw(s)) {
            *value = MASK.to_string();
        } else if !secrets.is_empty() {
            *value = mask_known(value, secrets);
        }
    }
}

impl Drop for FlowTracker {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed().as_secs_f64() * 1000.0;
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut record = std::mem::take(&mut state.record);
        record.duration_ms = (elapsed * 1000.0).round() / 1000.0;
        if !state.known_secrets.is_empty() {
            // A credential found anywhere in the exchange is masked wherever the record
            // could carry it, in whatever form.
            let known = &state.known_secrets;
            record.url = record.url.map(|u| mask_known(&u, known));
            mask_headers(&mut record.request_headers, &state.masked, known);
        }
        self.sink.flow(record);
    }
}
