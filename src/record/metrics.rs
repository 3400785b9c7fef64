//! Prometheus metrics (SPEC 6b), counted from the records themselves as they are handed to
//! the writer: what `/metrics` says and what the audit log holds cannot disagree.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::events::{FlowAction, FlowRecord, LlmRecord, ThreatRecord};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerAction {
    listener: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ThreatLabels {
    threat_type: String,
    pattern: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FamilyLabel {
    family: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SideLabel {
    side: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelKind {
    model: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabel {
    model: String,
}

/// Every metric of one instance.
pub struct Metrics {
    registry: Registry,
    requests: Family<ListenerAction, Counter>,
    threats: Family<ThreatLabels, Counter>,
    detections: Family<FamilyLabel, Counter>,
    bytes: Family<DirectionLabel, Counter>,
    duration: Histogram,
    upstream_errors: Family<KindLabel, Counter>,
    tls_failures: Family<SideLabel, Counter>,
    /// Client connections open now (the listeners count them).
    pub open_connections: Gauge,
    /// The most client connections and tunnels open at once (the proxy's tasks) since the
    /// server last took it (every tick, see `server::memory`): a burst shorter than a tick
    /// still counts.
    pub open_connections_peak: Arc<AtomicUsize>,
    /// Records waiting for the writer.
    pub store_queue: Gauge,
    /// Records the writer could not store (the audit files still hold them).
    pub store_dropped: Counter,
    /// Rotated audit files deleted by `log_keep`.
    pub audit_files_deleted: Counter,
    /// Writes of the audit log that failed (each is retried).
    pub audit_write_failures: Counter,
    /// Audit records given up on after the retry buffer filled (`audit.on_failure: allow`).
    pub audit_records_lost: Counter,
    llm_tokens: Family<ModelKind, Counter>,
    llm_cost: Family<ModelLabel, Counter<f64, AtomicU64>>,
    export_records: Family<ResultLabel, Counter>,
    alerts: Family<ResultLabel, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<ListenerAction, Counter>::default();
        let threats = Family::<ThreatLabels, Counter>::default();
        let detections = Family::<FamilyLabel, Counter>::default();
        let bytes = Family::<DirectionLabel, Counter>::default();
        let duration = Histogram::new([
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ]);
        let upstream_errors = Family::<KindLabel, Counter>::default();
        let tls_failures = Family::<SideLabel, Counter>::default();
        let open_connections = Gauge::default();
        let store_queue = Gauge::default();
        let store_dropped = Counter::default();
        let audit_files_deleted = Counter::default();
        let audit_write_failures = Counter::default();
        let audit_records_lost = Counter::default();
        let llm_tokens = Family::<ModelKind, Counter>::default();
        let llm_cost = Family::<ModelLabel, Counter<f64, AtomicU64>>::default();
        let export_records = Family::<ResultLabel, Counter>::default();
        let alerts = Family::<ResultLabel, Counter>::default();
        registry.register(
            "airlock_requests",
            "Requests, blind tunnels and failed connections, by listener and action",
            requests.clone(),
        );
        registry.register(
            "airlock_threats",
            "Threats recorded, by type and rule",
            threats.clone(),
        );
        registry.register(
            "airlock_detections",
            "Threats recorded, by detector family",
            detections.clone(),
        );
        registry.register(
            "airlock_bytes",
            "Body bytes (tunnels: bytes each way), by direction",
            bytes.clone(),
        );
        registry.register(
            "airlock_request_duration_seconds",
            "Time from a request's start to its record",
            duration.clone(),
        );
        registry.register(
            "airlock_upstream_errors",
            "Requests that failed upstream, by kind",
            upstream_errors.clone(),
        );
        registry.register(
            "airlock_tls_handshake_failures",
            "TLS handshakes that failed, by side (client or upstream)",
            tls_failures.clone(),
        );
        registry.register(
            "airlock_open_connections",
            "Client connections open now",
            open_connections.clone(),
        );
        registry.register(
            "airlock_store_queue_depth",
            "Records waiting to be written",
            store_queue.clone(),
        );
        registry.register(
            "airlock_store_dropped",
            "Records the SQLite store could not take (the JSONL audit files still hold them)",
            store_dropped.clone(),
        );
        registry.register(
            "airlock_audit_files_deleted",
            "Rotated audit files deleted by log_keep (each also a warning in the diagnostics log)",
            audit_files_deleted.clone(),
        );
        registry.register(
            "airlock_audit_write_failures",
            "Writes of the JSONL audit log that failed (a full disk, lost permissions); each is retried",
            audit_write_failures.clone(),
        );
        registry.register(
            "airlock_audit_records_lost",
            "Audit records given up on while the audit log could not be written (audit.on_failure: allow)",
            audit_records_lost.clone(),
        );
        registry.register(
            "airlock_llm_tokens",
            "LLM tokens, by reported model and kind (input, output, cache_read, cache_write)",
            llm_tokens.clone(),
        );
        registry.register(
            "airlock_llm_cost_usd",
            "LLM cost in US dollars, by reported model",
            llm_cost.clone(),
        );
        registry.register(
            "airlock_export_records",
            "Records for the OTLP exporter (export.otlp), by result: sent, dropped (its buffer was full), failed (given up after retries)",
            export_records.clone(),
        );
        registry.register(
            "airlock_alerts",
            "Threat alerts for the webhook (alerts.webhook_url), by result: sent, dropped (its queue was full), failed (given up after retries)",
            alerts.clone(),
        );
        Metrics {
            export_records,
            alerts,
            registry,
            requests,
            threats,
            detections,
            bytes,
            duration,
            upstream_errors,
            tls_failures,
            open_connections,
            open_connections_peak: Arc::default(),
            store_queue,
            store_dropped,
            audit_files_deleted,
            audit_write_failures,
            audit_records_lost,
            llm_tokens,
            llm_cost,
        }
    }

    pub fn flow(&self, f: &FlowRecord) {
        self.requests
            .get_or_create(&ListenerAction {
                listener: f.listener.clone(),
                action: f.action.as_str().to_string(),
            })
            .inc();
        self.bytes
            .get_or_create(&DirectionLabel {
                direction: "request".into(),
            })
            .inc_by(f.request_bytes);
        self.bytes
            .get_or_create(&DirectionLabel {
                direction: "response".into(),
            })
            .inc_by(f.response_bytes);
        self.duration.observe(f.duration_ms / 1000.0);
        if f.action == FlowAction::Failed
            && let Some(reason) = &f.reason
        {
            if reason.starts_with("client TLS handshake")
                || reason.contains("may have rejected airlock's certificate")
            {
                self.tls_failures
                    .get_or_create(&SideLabel {
                        side: "client".into(),
                    })
                    .inc();
            } else if matches!(f.status, Some(502..=504)) {
                let kind = upstream_error_kind(reason);
                if kind == "tls" {
                    self.tls_failures
                        .get_or_create(&SideLabel {
                            side: "upstream".into(),
                        })
                        .inc();
                }
                self.upstream_errors
                    .get_or_create(&KindLabel { kind: kind.into() })
                    .inc();
            }
        }
    }

    pub fn threat(&self, t: &ThreatRecord) {
        let threat_type = serde_json::to_value(t.threat_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.threats
            .get_or_create(&ThreatLabels {
                threat_type,
                pattern: t.pattern.clone(),
            })
            .inc();
        self.detections
            .get_or_create(&FamilyLabel {
                family: t.family.clone(),
            })
            .inc();
    }

    pub fn llm(&self, c: &LlmRecord) {
        let model = c.model.clone().unwrap_or_else(|| "(unknown)".into());
        for (kind, n) in [
            ("input", c.input_tokens),
            ("output", c.output_tokens),
            ("cache_read", c.cache_read_tokens),
            ("cache_write", c.cache_write_tokens),
        ] {
            self.llm_tokens
                .get_or_create(&ModelKind {
                    model: model.clone(),
                    kind: kind.into(),
                })
                .inc_by(n);
        }
        if let Some(cost) = c.cost_usd {
            self.llm_cost
                .get_or_create(&ModelLabel { model })
                .inc_by(cost);
        }
    }

    /// Records handled by the OTLP exporter: `sent`, `dropped` or `failed`.
    pub fn export(&self, result: &str, n: u64) {
        self.export_records
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc_by(n);
    }

    /// Threats handled by the alert webhook: `sent`, `dropped` or `failed`.
    pub fn alert(&self, result: &str, n: u64) {
        self.alerts
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc_by(n);
    }

    /// (sent, dropped, failed) records of the OTLP exporter, for `status`.
    pub fn export_totals(&self) -> (u64, u64, u64) {
        let get = |r: &str| {
            self.export_records
                .get_or_create(&ResultLabel { result: r.into() })
                .get()
        };
        (get("sent"), get("dropped"), get("failed"))
    }

    /// (sent, dropped, failed) threats of the alert webhook, for `status`.
    pub fn alert_totals(&self) -> (u64, u64, u64) {
        let get = |r: &str| {
            self.alerts
                .get_or_create(&ResultLabel { result: r.into() })
                .get()
        };
        (get("sent"), get("dropped"), get("failed"))
    }

    /// Shows the export (or alert) counters at 0 from the start, once the destination is set.
    pub fn announce(&self, otlp: bool, alerts: bool) {
        for result in ["sent", "dropped", "failed"] {
            if otlp {
                self.export(result, 0);
            }
            if alerts {
                self.alert(result, 0);
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.registry);
        out
    }
}

/// An upstream failure's kind, from the reason the flow record gives.
fn upstream_error_kind(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r.contains("timed out") || r.contains("timeout") {
        "timeout"
    } else if r.contains("tls") || r.contains("certificate") {
        "tls"
    } else if r.contains("resolve") || r.contains("dns") || r.contains("lookup") {
        "dns"
    } else if r.contains("refused") || r.contains("connect") || r.contains("unreachable") {
        "connect"
    } else {
        "other"
    }
}
