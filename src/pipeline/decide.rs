//! Decide: where a request is refused. Detection's verdicts come through
//! `detect::body::record_detections`; the ones decided here are about the exchange itself:
//! lockdown, policy, a route's paths, budgets ([`request`]), the Host header inside a tunnel,
//! and the destination guard (a 403 from the dialer, turned into a block by `forward`).

use std::sync::atomic::Ordering;

use http::{HeaderMap, Response, Uri, header};

use super::{BlockInfo, Exchange, FlowTracker, ProxyBody};
use crate::pipeline::respond::blocked_response;
use crate::policy::{Facts, Verdict};
use crate::proxy::{Live, ProxyContext};
use crate::record::events::{
    EgressEvent, FlowAction, ThreatAction, ThreatRecord, ThreatType, now_rfc3339,
};

/// The request phase's own verdicts, in order: the kill switch, policy, the route's path
/// list, the host's budget. A block is answered here (403, threat, `egress_block`); a
/// warning is recorded and the request goes on.
#[allow(clippy::too_many_arguments)]
pub fn request(
    ctx: &ProxyContext,
    live: &Live,
    tracker: &FlowTracker,
    exchange: &Exchange,
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body_size: Option<u64>,
) -> Option<Response<ProxyBody>> {
    let mut warning = None;
    let mut verdicts = || -> Verdict {
        if ctx.lockdown.load(Ordering::Relaxed) {
            let v = crate::policy::lockdown_verdict(&live.config, &exchange.host);
            if v != Verdict::Allow {
                return v;
            }
        }
        if !live.policy.is_open() {
            let facts = facts(exchange, method, path_and_query, headers, body_size);
            match live.policy.decide(&facts) {
                Verdict::Allow => {}
                Verdict::Warn { rule, reason } => warning = Some((rule, reason)),
                block => return block,
            }
        }
        if let Some(route) = crate::policy::route_for(&live.config, &exchange.host) {
            let path = path_and_query.split('?').next().unwrap_or("/");
            if let Some(block) = crate::policy::route_path_verdict(route, path) {
                return block;
            }
        }
        // A body of unknown length is charged once it has been read (`forward`).
        match body_size {
            Some(n) => ctx.budgets.charge(&live.config, &exchange.host, n),
            None => Verdict::Allow,
        }
    };
    let verdict = verdicts();
    if let Some((rule, reason)) = warning {
        warn(tracker, &rule, reason);
    }
    match verdict {
        Verdict::Block { rule, reason } => Some(block(
            tracker,
            "policy",
            &rule,
            reason,
            policy_detail(&rule),
        )),
        _ => None,
    }
}

/// The budget check for a body whose length was not known up front: `read` bytes of it
/// have arrived (held for scanning, or all of it).
pub fn budget(
    ctx: &ProxyContext,
    live: &Live,
    tracker: &FlowTracker,
    exchange: &Exchange,
    read: u64,
) -> Option<Response<ProxyBody>> {
    match ctx.budgets.charge(&live.config, &exchange.host, read) {
        Verdict::Block { rule, reason } => {
            let detail = policy_detail(&rule);
            Some(block(tracker, "policy", &rule, reason, detail))
        }
        _ => None,
    }
}

/// The help a policy block's body carries: what to change if the block is wrong.
pub fn policy_detail(rule: &str) -> String {
    if rule == "lockdown" {
        "airlock is in lockdown: only lockdown_allow hosts are reachable; `airlock lockdown off` lifts it".into()
    } else if rule.starts_with("budget:") {
        "the host's budgets entry (max_request_bytes_per_hour) is used up for this hour".into()
    } else if rule.starts_with("route:") {
        "the route for this host lists the paths it may reach (allow_paths)".into()
    } else {
        format!("refused by policy rule {rule}; see policy in the config (or policy.source)")
    }
}

/// What a policy expression sees about a request.
pub fn facts(
    exchange: &Exchange,
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body_size: Option<u64>,
) -> Facts {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (path_and_query.to_string(), String::new()),
    };
    let mut list: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match list.iter_mut().find(|(n, _)| n == name.as_str()) {
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(&value);
            }
            None => list.push((name.as_str().to_string(), value)),
        }
    }
    Facts {
        method: method.to_string(),
        scheme: exchange.scheme.as_str().to_string(),
        host: exchange.host.clone(),
        port: exchange.port,
        path,
        query,
        url: exchange.url(path_and_query),
        headers: list,
        body_size: body_size.map_or(-1, |n| n as i64),
        source_ip: exchange.client_ip.to_string(),
        listener: exchange.listener.to_string(),
    }
}

/// A policy warning: POLICY threat (`warned`), `egress_warn`, flow action `warned`.
pub fn warn(tracker: &FlowTracker, rule: &str, reason: String) {
    let ctx = tracker.threat_context();
    policy_threat(tracker, &ctx, rule, "policy", ThreatAction::Warned);
    tracker.sink().event(EgressEvent::Warn {
        timestamp: now_rfc3339(),
        id: ctx.flow_id,
        reason: reason.clone(),
        rule: rule.to_string(),
        host: ctx.host,
        method: ctx.method,
        path: ctx.path,
        response_status: None,
    });
    tracker.escalate(FlowAction::Warned, &reason);
}

/// The POLICY threat record of a block or warning decided here (`pattern` is the rule).
fn policy_threat(
    tracker: &FlowTracker,
    ctx: &super::exchange::ThreatContext,
    rule: &str,
    family: &str,
    action: ThreatAction,
) {
    tracker.sink().threat(ThreatRecord {
        timestamp: now_rfc3339(),
        direction: "outbound".into(),
        protocol: ctx.protocol.clone(),
        threat_type: ThreatType::Policy,
        pattern: rule.to_string(),
        family: family.to_string(),
        snippet: String::new(),
        source: ctx.source.clone(),
        dest: ctx.dest.clone(),
        action,
        method: ctx.method.clone(),
        path: ctx.path.clone(),
        flow_id: Some(ctx.flow_id.clone()),
        location: None,
    });
}

/// The destination guard's refusal (the dialer found a private address): 403 `destination`.
pub fn destination(tracker: &FlowTracker, reason: String) -> Response<ProxyBody> {
    block(
        tracker,
        "destination",
        "destination-guard",
        reason,
        "loopback, link-local, private and unique-local addresses are refused; allow_private lists the ranges that may be reached".into(),
    )
}

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
    policy_threat(tracker, &ctx, rule, kind, ThreatAction::Blocked);
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
