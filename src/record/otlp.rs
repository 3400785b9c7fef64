//! Records as OTLP log records (`export.otlp`): the protobuf messages of the official schema
//! (`opentelemetry-proto`'s prost types), one `ExportLogsServiceRequest` per batch.
//!
//! Each log record's body is the record's JSON line, exactly as in `logs/*.jsonl` (masked):
//! a collector forwarding to Loki, ClickHouse or Elasticsearch keeps the same document the
//! files and `airlock logs --json` show, so queries written for one work on the other. The
//! attributes carry what a backend indexes, under the OpenTelemetry semantic-convention
//! names where one exists (`http.request.method`, `url.full`, `server.address`,
//! `gen_ai.usage.input_tokens`…) and `airlock.*` for the rest.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::events::{FlowAction, FlowRecord, LlmRecord, ThreatAction, ThreatRecord};

/// A record handed to the exporter.
#[derive(Debug, Clone)]
pub enum ExportRecord {
    Flow(Box<FlowRecord>),
    Threat(Box<ThreatRecord>),
    Llm(Box<LlmRecord>),
}

/// Who is exporting: the OTLP resource.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    /// Stable for one host and data directory (what a fleet calls one instance).
    pub instance_id: String,
    pub host_name: String,
    pub version: String,
}

/// The instrumentation scope every record is exported under.
pub const SCOPE_NAME: &str = "airlock";

fn text(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn double(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

fn boolean(key: &str, value: bool) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::BoolValue(value)),
        }),
        ..Default::default()
    }
}

fn resource(info: &ResourceInfo) -> Resource {
    Resource {
        attributes: vec![
            text("service.name", "airlock"),
            text("service.version", info.version.clone()),
            text("service.instance.id", info.instance_id.clone()),
            text("host.name", info.host_name.clone()),
        ],
        ..Default::default()
    }
}

/// Nanoseconds since the epoch of an RFC 3339 timestamp (0, "unknown", when it does not parse).
fn unix_nanos(timestamp: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(timestamp)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// `host:port` (or `[v6]:port`) into its parts.
fn split_dest(dest: &str) -> (&str, Option<u16>) {
    match dest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => (
            host.trim_start_matches('[').trim_end_matches(']'),
            port.parse().ok(),
        ),
        _ => (dest, None),
    }
}

/// The semantic conventions' `gen_ai.provider.name` for a provider airlock knows.
fn gen_ai_provider(provider: &str) -> &str {
    match provider {
        "google" | "gemini" => "gcp.gemini",
        other => other,
    }
}

fn severity(n: SeverityNumber) -> (i32, String) {
    let text = match n {
        SeverityNumber::Error => "ERROR",
        SeverityNumber::Warn => "WARN",
        _ => "INFO",
    };
    (n as i32, text.to_string())
}

/// One record as an OTLP log record. `observed` is when the exporter took it (ns).
pub fn log_record(record: &ExportRecord, observed: u64) -> LogRecord {
    let (json, timestamp, event, level, attributes) = match record {
        ExportRecord::Flow(f) => (
            serde_json::to_string(f),
            &f.timestamp,
            "airlock.flow",
            match f.action {
                FlowAction::Allowed | FlowAction::Tunneled => SeverityNumber::Info,
                FlowAction::Failed => SeverityNumber::Error,
                _ => SeverityNumber::Warn,
            },
            flow_attributes(f),
        ),
        ExportRecord::Threat(t) => (
            serde_json::to_string(t),
            &t.timestamp,
            "airlock.threat",
            match t.action {
                ThreatAction::Allowed => SeverityNumber::Info,
                _ => SeverityNumber::Warn,
            },
            threat_attributes(t),
        ),
        ExportRecord::Llm(c) => (
            serde_json::to_string(c),
            &c.timestamp,
            "airlock.llm_call",
            match c.status {
                Some(s) if s >= 400 => SeverityNumber::Warn,
                _ => SeverityNumber::Info,
            },
            llm_attributes(c),
        ),
    };
    let (severity_number, severity_text) = severity(level);
    LogRecord {
        time_unix_nano: unix_nanos(timestamp),
        observed_time_unix_nano: observed,
        severity_number,
        severity_text,
        body: Some(AnyValue {
            value: Some(Value::StringValue(json.unwrap_or_default())),
        }),
        attributes,
        event_name: event.to_string(),
        ..Default::default()
    }
}

fn flow_attributes(f: &FlowRecord) -> Vec<KeyValue> {
    let mut a = vec![
        text("airlock.record", "flow"),
        text("airlock.flow.id", f.id.clone()),
        text("airlock.listener", f.listener.clone()),
        text("airlock.action", f.action.as_str()),
        text("client.address", f.client_ip.clone()),
        text("url.scheme", f.scheme.clone()),
        double("airlock.duration_ms", f.duration_ms),
        int("http.request.body.size", f.request_bytes as i64),
        int("http.response.body.size", f.response_bytes as i64),
    ];
    if let Some(m) = &f.method {
        a.push(text("http.request.method", m.clone()));
    }
    if let Some(u) = &f.url {
        a.push(text("url.full", u.clone()));
    }
    if let Some(h) = &f.host {
        a.push(text("server.address", h.clone()));
    }
    if let Some(p) = f.port {
        a.push(int("server.port", p.into()));
    }
    if let Some(s) = f.status {
        a.push(int("http.response.status_code", s.into()));
    }
    if let Some(r) = &f.reason {
        a.push(text("airlock.reason", r.clone()));
    }
    if let Some(ua) = f.request_headers.get("user-agent") {
        a.push(text("user_agent.original", ua.clone()));
    }
    if let Some(v) = &f.http_version {
        a.push(text(
            "network.protocol.version",
            v.trim_start_matches("HTTP/").to_string(),
        ));
    }
    if !f.scan.findings.is_empty() {
        a.push(text("airlock.findings", f.scan.findings.join(",")));
    }
    a
}

fn threat_attributes(t: &ThreatRecord) -> Vec<KeyValue> {
    let action = serde_json::to_value(t.action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let threat_type = serde_json::to_value(t.threat_type)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let (host, port) = split_dest(&t.dest);
    let mut a = vec![
        text("airlock.record", "threat"),
        text("airlock.action", action),
        text("airlock.threat.type", threat_type),
        text("airlock.threat.pattern", t.pattern.clone()),
        text("airlock.threat.family", t.family.clone()),
        text("airlock.threat.direction", t.direction.clone()),
        text("airlock.threat.dest", t.dest.clone()),
        text("airlock.threat.snippet", t.snippet.clone()),
        text("airlock.protocol", t.protocol.clone()),
        text("client.address", t.source.clone()),
        text("server.address", host.to_string()),
        text("http.request.method", t.method.clone()),
        text("url.path", t.path.clone()),
    ];
    if let Some(p) = port {
        a.push(int("server.port", p.into()));
    }
    if let Some(id) = &t.flow_id {
        a.push(text("airlock.flow.id", id.clone()));
    }
    if let Some(l) = &t.location {
        a.push(text("airlock.threat.location", l.clone()));
    }
    if let Some(pid) = t.pid {
        a.push(int("process.pid", pid.into()));
    }
    if let Some(p) = &t.program {
        a.push(text("process.executable.name", p.clone()));
    }
    a
}

fn llm_attributes(c: &LlmRecord) -> Vec<KeyValue> {
    let provider = gen_ai_provider(&c.provider);
    let mut a = vec![
        text("airlock.record", "llm"),
        text("gen_ai.provider.name", provider),
        // The older name, which many backends still query.
        text("gen_ai.system", provider),
        int("gen_ai.usage.input_tokens", c.input_tokens as i64),
        int("gen_ai.usage.output_tokens", c.output_tokens as i64),
        int("airlock.llm.cache_read_tokens", c.cache_read_tokens as i64),
        int(
            "airlock.llm.cache_write_tokens",
            c.cache_write_tokens as i64,
        ),
        boolean("airlock.llm.stream", c.stream),
        double("airlock.llm.latency_ms", c.latency_ms),
        text("url.path", c.endpoint.clone()),
        text("client.address", c.source.clone()),
        text("airlock.listener", c.listener.clone()),
        text("airlock.flow.id", c.flow_id.clone()),
    ];
    if let Some(m) = &c.requested_model {
        a.push(text("gen_ai.request.model", m.clone()));
    }
    if let Some(m) = &c.model {
        a.push(text("gen_ai.response.model", m.clone()));
    }
    if let Some(s) = c.status {
        a.push(int("http.response.status_code", s.into()));
    }
    if let Some(cost) = c.cost_usd {
        a.push(double("airlock.llm.cost_usd", cost));
    }
    if let Some(t) = c.ttft_ms {
        a.push(double("airlock.llm.ttft_ms", t));
    }
    if let Some(s) = &c.session {
        a.push(text("gen_ai.conversation.id", s.clone()));
    }
    a
}

/// One export request for a batch of records.
pub fn export_request(
    info: &ResourceInfo,
    records: &[ExportRecord],
    observed: u64,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource(info)),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_string(),
                    version: info.version.clone(),
                    ..Default::default()
                }),
                log_records: records.iter().map(|r| log_record(r, observed)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The protobuf bytes of a batch.
pub fn encode(info: &ResourceInfo, records: &[ExportRecord], observed: u64) -> Vec<u8> {
    prost::Message::encode_to_vec(&export_request(info, records, observed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::events::ThreatType;

    fn info() -> ResourceInfo {
        ResourceInfo {
            instance_id: "id-1".into(),
            host_name: "box".into(),
            version: "0.1.0".into(),
        }
    }

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a Value> {
        r.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn s(v: Option<&Value>) -> &str {
        match v {
            Some(Value::StringValue(s)) => s,
            other => panic!("not a string: {other:?}"),
        }
    }

    fn i(v: Option<&Value>) -> i64 {
        match v {
            Some(Value::IntValue(n)) => *n,
            other => panic!("not an int: {other:?}"),
        }
    }

    #[test]
    fn a_flow_maps_to_http_semantic_conventions() {
        let flow = FlowRecord {
            timestamp: "2026-02-19T13:41:59.587248+00:00".into(),
            id: "f1".into(),
            listener: "proxy".into(),
            client_ip: "127.0.0.1".into(),
            method: Some("POST".into()),
            url: Some("https://api.example.com/v1?x=1".into()),
            scheme: "https".into(),
            host: Some("api.example.com".into()),
            port: Some(443),
            status: Some(403),
            action: FlowAction::Blocked,
            reason: Some("egress DLP".into()),
            ..Default::default()
        };
        let r = log_record(&ExportRecord::Flow(Box::new(flow.clone())), 7);
        assert_eq!(s(attr(&r, "airlock.record")), "flow");
        assert_eq!(s(attr(&r, "http.request.method")), "POST");
        assert_eq!(s(attr(&r, "url.full")), "https://api.example.com/v1?x=1");
        assert_eq!(s(attr(&r, "server.address")), "api.example.com");
        assert_eq!(i(attr(&r, "server.port")), 443);
        assert_eq!(i(attr(&r, "http.response.status_code")), 403);
        assert_eq!(s(attr(&r, "client.address")), "127.0.0.1");
        assert_eq!(s(attr(&r, "airlock.action")), "blocked");
        assert_eq!(r.event_name, "airlock.flow");
        assert_eq!(r.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(r.time_unix_nano, 1_771_508_519_587_248_000);
        assert_eq!(r.observed_time_unix_nano, 7);
        // The body is the record's JSON line.
        let Some(Value::StringValue(body)) = r.body.as_ref().and_then(|b| b.value.as_ref()) else {
            panic!("no string body");
        };
        assert_eq!(body, &serde_json::to_string(&flow).unwrap());
    }

    #[test]
    fn a_threat_splits_its_dest_and_keeps_the_masked_snippet() {
        let t = ThreatRecord {
            timestamp: "2026-02-19T13:41:59+00:00".into(),
            direction: "outbound".into(),
            protocol: "https".into(),
            threat_type: ThreatType::Exfil,
            pattern: "github_pat_classic".into(),
            family: "vcs_token".into(),
            snippet: "token ghp_[REDACTED]".into(),
            source: "127.0.0.1".into(),
            dest: "[::1]:8443".into(),
            action: ThreatAction::Blocked,
            method: "POST".into(),
            path: "/gists".into(),
            flow_id: Some("f1".into()),
            location: None,
            pid: None,
            program: None,
        };
        let r = log_record(&ExportRecord::Threat(Box::new(t)), 0);
        assert_eq!(s(attr(&r, "airlock.record")), "threat");
        assert_eq!(s(attr(&r, "airlock.threat.type")), "EXFIL");
        assert_eq!(s(attr(&r, "airlock.threat.pattern")), "github_pat_classic");
        assert_eq!(s(attr(&r, "airlock.action")), "blocked");
        assert_eq!(s(attr(&r, "server.address")), "::1");
        assert_eq!(i(attr(&r, "server.port")), 8443);
        assert_eq!(
            s(attr(&r, "airlock.threat.snippet")),
            "token ghp_[REDACTED]"
        );
        assert_eq!(r.event_name, "airlock.threat");
    }

    #[test]
    fn an_llm_call_maps_to_gen_ai_conventions() {
        let c = LlmRecord {
            timestamp: "2026-02-19T13:41:59+00:00".into(),
            provider: "google".into(),
            model: Some("gemini-2.5-pro-001".into()),
            endpoint: "/v1beta/models/gemini-2.5-pro:generateContent".into(),
            stream: false,
            status: Some(200),
            input_tokens: 12,
            output_tokens: 34,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: Some(0.5),
            latency_ms: 10.0,
            ttft_ms: None,
            source: "127.0.0.1".into(),
            requested_model: Some("gemini-2.5-pro".into()),
            messages: None,
            tools: None,
            system_chars: None,
            listener: "llm".into(),
            flow_id: "f2".into(),
            session: None,
        };
        let r = log_record(&ExportRecord::Llm(Box::new(c)), 0);
        assert_eq!(s(attr(&r, "airlock.record")), "llm");
        assert_eq!(s(attr(&r, "gen_ai.provider.name")), "gcp.gemini");
        assert_eq!(s(attr(&r, "gen_ai.request.model")), "gemini-2.5-pro");
        assert_eq!(s(attr(&r, "gen_ai.response.model")), "gemini-2.5-pro-001");
        assert_eq!(i(attr(&r, "gen_ai.usage.input_tokens")), 12);
        assert_eq!(i(attr(&r, "gen_ai.usage.output_tokens")), 34);
        assert_eq!(r.event_name, "airlock.llm_call");
    }

    #[test]
    fn a_batch_decodes_with_its_resource() {
        let records = vec![ExportRecord::Flow(Box::default()); 3];
        let bytes = encode(&info(), &records, 1);
        let back: ExportLogsServiceRequest = prost::Message::decode(bytes.as_slice()).unwrap();
        let rl = &back.resource_logs[0];
        let res = rl.resource.as_ref().unwrap();
        let get = |k: &str| {
            res.attributes
                .iter()
                .find(|kv| kv.key == k)
                .and_then(|kv| kv.value.as_ref()?.value.clone())
        };
        assert_eq!(
            get("service.name"),
            Some(Value::StringValue("airlock".into()))
        );
        assert_eq!(get("host.name"), Some(Value::StringValue("box".into())));
        assert_eq!(
            get("service.instance.id"),
            Some(Value::StringValue("id-1".into()))
        );
        assert_eq!(rl.scope_logs[0].log_records.len(), 3);
        assert_eq!(rl.scope_logs[0].scope.as_ref().unwrap().name, "airlock");
    }
}
