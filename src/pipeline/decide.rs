//! Decide: where a request is refused. Detection's verdicts come through
//! `detect::body::record_detections`; the blocks decided here are about the exchange itself.

use http::{HeaderMap, Response, Uri, header};

use super::{BlockInfo, Exchange, FlowTracker, ProxyBody};
use crate::pipeline::respond::blocked_response;
use crate::record::events::{EgressEvent, ThreatAction, ThreatRecord, ThreatType, now_rfc3339};

/// Blocks with reason `policy` (or `destination`), writing the POLICY threat and the
/// `egress_block` line, and returns the 403.
pub fn block(
    tracker: &FlowTracker,
    kind: &'static str,
    rule: &str,
    reason: String,
    detail: String,
) -> Response<ProxyBody> {
    let ctx = tracker.threat_context();
    let info = BlockInfo {
        rank: 0,
        kind,
        rule: rule.to_string(),
        reason: reason.clone(),
        detail,
    };
    tracker.block(info.clone());
    tracker.sink().threat(ThreatRecord {
        timestamp: now_rfc3339(),
        direction: "outbound".into(),
        protocol: ctx.protocol.clone(),
        threat_type: ThreatType::Policy,
        pattern: rule.to_string(),
        family: kind.to_string(),
        snippet: String::new(),
        source: ctx.source.clone(),
        dest: ctx.dest.clone(),
        action: ThreatAction::Blocked,
        method: ctx.method.clone(),
        path: ctx.path.clone(),
        flow_id: Some(ctx.flow_id.clone()),
        location: None,
    });
    tracker.sink().event(EgressEvent::Block {
        timestamp: now_rfc3339(),
        id: ctx.flow_id,
        reason,
        rule: rule.to_string(),
        host: ctx.host,
        method: ctx.method,
        path: ctx.path,
    });
    blocked_response(&info)
}

/// The host a request claims (its URI authority, else its Host header), when it names one
/// other than the exchange's destination. Inside a tunnel the CONNECT target decides; a
/// disagreeing Host header would otherwise let a request smuggle itself to another virtual
/// host under the tunnel's name.
pub fn host_mismatch(exchange: &Exchange, uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let claimed = match uri.authority() {
        Some(a) => a.as_str().to_string(),
        None => headers.get(header::HOST)?.to_str().ok()?.to_string(),
    };
    let (host, port) = split_host_port(&claimed);
    let host_ok = host.eq_ignore_ascii_case(&exchange.host);
    let port_ok = port.is_none_or(|p| p == exchange.port);
    (!(host_ok && port_ok)).then_some(claimed)
}

fn split_host_port(s: &str) -> (String, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (
            h.to_string(),
            after.strip_prefix(':').and_then(|p| p.parse().ok()),
        );
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().ok()),
        _ => (s.to_string(), None),
    }
}
