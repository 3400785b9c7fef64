//! The typed records airlock writes (SPEC 4): flows, stderr events, the boot line.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use http::HeaderMap;
use serde::{Deserialize, Serialize};

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

pub fn now_rfc3339() -> String {
    rfc3339(Utc::now())
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlowAction {
    #[default]
    Allowed,
    Blocked,
    Redacted,
    Warned,
    Tunneled,
    Failed,
}

impl FlowAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FlowAction::Allowed => "allowed",
            FlowAction::Blocked => "blocked",
            FlowAction::Redacted => "redacted",
            FlowAction::Warned => "warned",
            FlowAction::Tunneled => "tunneled",
            FlowAction::Failed => "failed",
        }
    }
}

/// What the scanner looked at for one exchange. Detection arrives with its own capability;
/// until then nothing is scanned and the record says so rather than implying otherwise.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScanSummary {
    pub scanned: bool,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub truncated: bool,
    /// Findings, by rule id (secrets and injections; not credentials presented to their issuer).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub findings: Vec<String>,
    /// Credentials presented to their own issuer in an auth header: normal use, not threats.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub credentials: Vec<PresentedCredential>,
    /// Decoders applied before matching (gzip, json-escaped, base64…).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub decoded: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresentedCredential {
    pub pattern: String,
    pub header: String,
}

/// One line of `logs/flows.jsonl`: a request/response, a blind tunnel, or a failure.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FlowRecord {
    pub timestamp: String,
    pub id: String,
    pub listener: String,
    pub client_ip: String,
    pub method: Option<String>,
    pub url: Option<String>,
    pub scheme: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub status: Option<u16>,
    pub duration_ms: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub action: FlowAction,
    pub reason: Option<String>,
    pub request_headers: BTreeMap<String, String>,
    pub scan: ScanSummary,
    /// The protocol spoken with the client ("HTTP/1.1", "HTTP/2"), absent for tunnels.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub http_version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ThreatType {
    Exfil,
    Secret,
    Injection,
    Policy,
    /// A connection inside a jail that tried to go around the proxy.
    Bypass,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreatAction {
    Blocked,
    Redacted,
    Warned,
    /// A credential arriving from its issuer or in a token endpoint's answer: seen, passed.
    Allowed,
}

/// One line of `logs/threats.jsonl` (SPEC 4). The snippet never holds the secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreatRecord {
    pub timestamp: String,
    pub direction: String,
    pub protocol: String,
    pub threat_type: ThreatType,
    pub pattern: String,
    pub family: String,
    pub snippet: String,
    pub source: String,
    pub dest: String,
    pub action: ThreatAction,
    pub method: String,
    pub path: String,
    /// The flow this threat belongs to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub flow_id: Option<String>,
    /// Where it was found ("request body", "request header x-note", "response body (base64)").
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub location: Option<String>,
    /// BYPASS: the process that tried, where the kernel tells.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub program: Option<String>,
}

/// Stderr event lines (`log` 1 and 2).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event")]
pub enum EgressEvent {
    #[serde(rename = "egress_block")]
    Block {
        timestamp: String,
        id: String,
        reason: String,
        rule: String,
        host: String,
        method: String,
        path: String,
    },
    #[serde(rename = "egress_warn")]
    Warn {
        timestamp: String,
        id: String,
        reason: String,
        rule: String,
        host: String,
        method: String,
        path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        response_status: Option<u16>,
    },
    #[serde(rename = "egress_request")]
    Request {
        timestamp: String,
        id: String,
        host: String,
        method: String,
        path: String,
        headers: BTreeMap<String, String>,
        body: String,
        body_bytes: u64,
        body_truncated: bool,
    },
    #[serde(rename = "egress_response")]
    Response {
        timestamp: String,
        id: String,
        host: String,
        status: u16,
        headers: BTreeMap<String, String>,
        body: String,
        body_bytes: u64,
        body_truncated: bool,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct GatewayListen {
    pub name: String,
    pub listen: String,
}

/// One LLM call (SPEC 9), in `logs/llm.jsonl` and the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LlmRecord {
    pub timestamp: String,
    pub provider: String,
    /// The model the provider reports in its response.
    pub model: Option<String>,
    /// The request path, without the query.
    pub endpoint: String,
    pub stream: bool,
    pub status: Option<u16>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Null for a model the price table does not know: never a guess.
    pub cost_usd: Option<f64>,
    pub latency_ms: f64,
    /// Time to the first generated output, for streams.
    pub ttft_ms: Option<f64>,
    /// The client's address.
    pub source: String,
    /// The model the request asked for.
    pub requested_model: Option<String>,
    /// What the request carried: messages (or contents, input items), tools, and the size
    /// of the system prompt in characters; null when the request did not say.
    pub messages: Option<u64>,
    pub tools: Option<u64>,
    pub system_chars: Option<u64>,
    /// "proxy" or the gateway's name.
    pub listener: String,
    pub flow_id: String,
    /// The conversation this call belongs to (calls sharing their first messages), when
    /// `store.conversations` keeps transcripts.
    #[serde(default)]
    pub session: Option<String>,
}

/// One LLM call as a turn of its session's transcript (the store's `conversations`), every
/// text masked as the other records are. A turn keeps only what the session had not seen:
/// the messages from `messages_from` on, and the system prompt and tools when they are new
/// or changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TurnRecord {
    pub session: String,
    pub timestamp: String,
    pub flow_id: String,
    pub provider: String,
    pub model: Option<String>,
    pub status: Option<u16>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub cost_usd: Option<f64>,
    pub latency_ms: f64,
    pub ttft_ms: Option<f64>,
    pub source: String,
    pub listener: String,
    /// The index in the request's messages of the first one kept here.
    pub messages_from: u64,
    /// How many messages the request carried.
    pub messages_total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    pub messages: Vec<airlock_llm::Message>,
    pub answer: Vec<airlock_llm::Part>,
    /// The request body was larger than what is kept for reading: no messages.
    #[serde(default)]
    pub prompt_unreadable: bool,
}

/// The first stderr line, always.
#[derive(Debug, Clone, Serialize)]
pub struct BootLine {
    pub event: &'static str,
    pub version: &'static str,
    pub listen: String,
    pub gateways: Vec<GatewayListen>,
    /// The admin API's address; null until the admin server exists.
    pub admin: Option<String>,
    pub mitm: bool,
    pub log: &'static str,
    pub ca: String,
    pub data_dir: String,
    /// The transparent listener (TCP) and jail DNS (UDP), when `transparent_port` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transparent: Option<String>,
}

/// Header names whose values are credentials. Matching is on lower-case names.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-auth-token",
    "x-amz-security-token",
    "cookie",
    "set-cookie",
];

pub const MASK: &str = "[MASKED]";

pub fn is_credential_header(name: &str) -> bool {
    CREDENTIAL_HEADERS.contains(&name)
}

/// Masks a credential header's value, keeping only the auth scheme word (`Bearer`, `Basic`)
/// and, for cookies, the cookie names: enough to read the record, nothing of the secret.
pub fn mask_value(name: &str, value: &str) -> String {
    match name {
        "authorization" | "proxy-authorization" => match value.split_once(' ') {
            Some((scheme, _))
                if scheme.len() <= 16 && scheme.bytes().all(|b| b.is_ascii_alphabetic()) =>
            {
                format!("{scheme} {MASK}")
            }
            _ => MASK.to_string(),
        },
        "cookie" => value
            .split(';')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) => format!("{}={MASK}", k.trim()),
                None => MASK.to_string(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        "set-cookie" => match value.split_once('=') {
            Some((k, _)) => format!("{}={MASK}", k.trim()),
            None => MASK.to_string(),
        },
        _ => MASK.to_string(),
    }
}

/// Headers as a record shows them: lower-case names, repeated headers joined, credentials
/// masked, non-UTF-8 values shown lossily.
pub fn masked_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        let text = String::from_utf8_lossy(value.as_bytes());
        let shown = if is_credential_header(name) {
            mask_value(name, &text)
        } else {
            text.into_owned()
        };
        out.entry(name.to_string())
            .and_modify(|v| {
                v.push_str(if name == "cookie" { "; " } else { ", " });
                v.push_str(&shown);
            })
            .or_insert(shown);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_never_show_their_secret() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer sk-secret-123".parse().unwrap());
        h.insert("x-api-key", "sk-ant-api03-zzz".parse().unwrap());
        h.append("cookie", "session=abc; theme=dark".parse().unwrap());
        h.insert("proxy-authorization", "weird-no-scheme".parse().unwrap());
        h.insert("accept", "*/*".parse().unwrap());
        let m = masked_headers(&h);
        assert_eq!(m["authorization"], "Bearer [MASKED]");
        assert_eq!(m["x-api-key"], "[MASKED]");
        assert_eq!(m["cookie"], "session=[MASKED]; theme=[MASKED]");
        assert_eq!(m["proxy-authorization"], "[MASKED]");
        assert_eq!(m["accept"], "*/*");
        let all = serde_json::to_string(&m).unwrap();
        assert!(!all.contains("secret") && !all.contains("zzz") && !all.contains("abc"));
    }
}
