//! Decide: where a request is refused, and the one place a refusal is written down. Every
//! verdict of the pipeline comes through here — the kill switch, policy, a route's paths,
//! budgets ([`request`], [`budget`]), a person's answer to an `ask` rule ([`ask`]), the Host
//! header inside a tunnel ([`tunnel_host`]), the destination guard ([`destination`]),
//! detection's findings ([`findings`]) and bodies that cannot be inspected ([`undecodable`])
//! — and every block is written by [`block`]: the flow's verdict, the threat record, the
//! `egress_block` line, and the 403's content.

use http::{HeaderMap, Response, Uri, header};

use super::body::ProxyBody;
use super::exchange::{BlockInfo, Exchange};
use super::live::{Guards, Live};
use super::pending::Decision;
use super::respond::blocked_response;
use super::tracker::{FlowTracker, ThreatContext};
use crate::config::{AuditOnFailure, DetectAction};
use crate::detect::{Detection, Detector, Direction, Location, mask_known};
use crate::policy::{Facts, Verdict};
use crate::record::events::{
    EgressEvent, FlowAction, PresentedCredential, ThreatAction, ThreatRecord, ThreatType,
    now_rfc3339,
};

/// What a threat record says about a finding or a refusal.
struct Threat<'a> {
    direction: Direction,
    threat_type: ThreatType,
    pattern: &'a str,
    family: &'a str,
    snippet: &'a str,
    location: Option<String>,
}

impl<'a> Threat<'a> {
    /// A refusal by policy, a budget, lockdown or the destination guard (`pattern` is the
    /// rule, `family` the block kind).
    fn policy(rule: &'a str, family: &'a str) -> Self {
        Threat {
            direction: Direction::Outbound,
            threat_type: ThreatType::Policy,
            pattern: rule,
            family,
            snippet: "",
            location: None,
        }
    }
}

/// The one function that writes a block: the flow's verdict, the threat record and the
/// `egress_block` line. Returns what the 403 says.
fn block(
    tracker: &FlowTracker,
    ctx: &ThreatContext,
    threat: Threat<'_>,
    info: BlockInfo,
) -> BlockInfo {
    write_threat(tracker, ctx, &threat, ThreatAction::Blocked);
    tracker.sink().event(EgressEvent::Block {
        timestamp: now_rfc3339(),
        id: ctx.flow_id.clone(),
        reason: info.reason.clone(),
        rule: info.rule.clone(),
        host: ctx.host.clone(),
        method: ctx.method.clone(),
        path: ctx.path.clone(),
    });
    tracker.block(info.clone());
    info
}

/// The one function that writes a warning (a redaction is one too): the threat record,
/// the `egress_warn` line and the flow's action.
fn warn(
    tracker: &FlowTracker,
    ctx: &ThreatContext,
    threat: Threat<'_>,
    action: ThreatAction,
    reason: &str,
) {
    write_threat(tracker, ctx, &threat, action);
    let redacted = action == ThreatAction::Redacted;
    tracker.sink().event(EgressEvent::Warn {
        timestamp: now_rfc3339(),
        id: ctx.flow_id.clone(),
        reason: if redacted {
            format!("{reason} (redacted)")
        } else {
            reason.to_string()
        },
        rule: threat.pattern.to_string(),
        host: ctx.host.clone(),
        method: ctx.method.clone(),
        path: ctx.path.clone(),
        response_status: (threat.direction == Direction::Inbound)
            .then_some(ctx.status)
            .flatten(),
    });
    let flow_action = if redacted {
        FlowAction::Redacted
    } else {
        FlowAction::Warned
    };
    tracker.escalate(flow_action, reason);
}

fn write_threat(
    tracker: &FlowTracker,
    ctx: &ThreatContext,
    threat: &Threat<'_>,
    action: ThreatAction,
) {
    // Every credential the exchange is known to carry is masked, in every form, also
    // those found by another view or another detection than this one.
    let known = tracker.known_secrets();
    tracker.sink().threat(ThreatRecord {
        timestamp: now_rfc3339(),
        direction: threat.direction.as_str().to_string(),
        protocol: ctx.protocol.clone(),
        threat_type: threat.threat_type,
        pattern: threat.pattern.to_string(),
        family: threat.family.to_string(),
        snippet: truncate_chars(&mask_known(threat.snippet, &known), SNIPPET_CHARS),
        source: ctx.source.clone(),
        dest: ctx.dest.clone(),
        action,
        method: ctx.method.clone(),
        path: mask_known(&ctx.path, &known),
        flow_id: Some(ctx.flow_id.clone()),
        location: threat.location.clone(),
        pid: None,
        program: None,
    });
}

/// A connection from a jail that went around the proxy (a port other than 80 and 443, UDP
/// other than DNS): refused by the transparent listener, written as a BYPASS threat and a
/// failed flow. `dest` is `ip:port`; `name` the host the jail's DNS gave that address for.
pub fn bypass(
    tracker: &FlowTracker,
    protocol: &str,
    dest: std::net::SocketAddr,
    name: Option<&str>,
    process: Option<(u32, String)>,
) {
    let ctx = tracker.threat_context();
    let named = name.map(|n| format!(" ({n})")).unwrap_or_default();
    let who = process
        .as_ref()
        .map(|(pid, program)| format!(" by {program} (pid {pid})"))
        .unwrap_or_default();
    let reason = format!(
        "jail: {} connection to {dest}{named}{who} outside the proxy refused: only HTTP and HTTPS (ports 80, 443) and DNS leave a jail",
        protocol.to_ascii_uppercase()
    );
    tracker.sink().threat(ThreatRecord {
        timestamp: now_rfc3339(),
        direction: Direction::Outbound.as_str().to_string(),
        protocol: protocol.to_string(),
        threat_type: ThreatType::Bypass,
        pattern: "bypass".to_string(),
        family: "bypass".to_string(),
        snippet: reason.clone(),
        source: ctx.source.clone(),
        dest: dest.to_string(),
        action: ThreatAction::Blocked,
        method: ctx.method.clone(),
        path: String::new(),
        flow_id: Some(ctx.flow_id.clone()),
        location: None,
        pid: process.as_ref().map(|(pid, _)| *pid),
        program: process.map(|(_, program)| program),
    });
    tracker.sink().event(EgressEvent::Block {
        timestamp: now_rfc3339(),
        id: ctx.flow_id.clone(),
        reason: reason.clone(),
        rule: "bypass".to_string(),
        host: name.map_or_else(|| dest.ip().to_string(), str::to_string),
        method: ctx.method.clone(),
        path: String::new(),
    });
    tracker.block(BlockInfo {
        rank: 0,
        kind: "destination",
        rule: "bypass".to_string(),
        reason,
        detail: String::new(),
    });
}

/// The most a threat's snippet shows (SPEC 4).
const SNIPPET_CHARS: usize = 200;

fn truncate_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Refuses with reason `policy` or `destination`: writes the block and returns the 403.
pub fn refuse(
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
        reason,
        detail,
    };
    blocked_response(&block(tracker, &ctx, Threat::policy(rule, kind), info))
}

/// `audit.on_failure: block`: while the audit log cannot be written, nothing goes out that
/// could not be recorded. A 503 the client can read, with the cause (its record is queued
/// for when writing works again).
fn audit_unavailable(tracker: &FlowTracker, error: &str) -> Response<ProxyBody> {
    let reason = format!(
        "the audit log cannot be written ({error}); airlock refuses new requests until it can (audit.on_failure: block): free space or fix the log directory's permissions"
    );
    tracker.set_status(503);
    tracker.escalate(crate::record::events::FlowAction::Blocked, &reason);
    let mut response = super::respond::error_response(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "audit-unavailable",
        &reason,
    );
    response.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("5"),
    );
    response
}

/// The host `airlock verify` asks for. `.invalid` never resolves (RFC 6761), so a request
/// that reaches it was answered by airlock, and one that went around airlock fails.
pub const CANARY_HOST: &str = "canary.airlock.invalid";
/// The rule a canary block names (X-Airlock-Rule).
pub const CANARY_RULE: &str = "canary";

/// The canary's answer: a block with airlock's headers, in every mode (lockdown, policy
/// source down, interception off). It is a flow record, not a threat: nobody leaked anything.
fn canary(tracker: &FlowTracker) -> Response<ProxyBody> {
    let info = BlockInfo {
        rank: 0,
        kind: "policy",
        rule: CANARY_RULE.to_string(),
        reason: format!("canary: requests to {CANARY_HOST} are always answered by airlock"),
        detail: "airlock is in the path (this is what `airlock verify` checks)".to_string(),
    };
    tracker.block(info.clone());
    blocked_response(&info)
}

/// What the request phase's own verdicts say about a request head.
#[must_use]
pub enum Gate {
    /// Nothing here refuses it (a warning, if any, is written).
    Pass,
    /// Refused: the 403 to give (the block is written).
    Refuse(Response<ProxyBody>),
    /// An `ask` rule matched: once the rest of the head's checks pass, the caller holds the
    /// request for a person's decision ([`ask`]). The host's budget is charged only then.
    Ask { rule: String },
}

/// The request phase's own verdicts, in order: the canary, the kill switch, policy, the
/// route's path list, the host's budget. A block is answered here; a warning is recorded and
/// the request goes on; an `ask` comes back to the caller to hold.
#[allow(clippy::too_many_arguments)]
pub fn request(
    guards: &Guards,
    live: &Live,
    tracker: &FlowTracker,
    exchange: &Exchange,
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body_size: Option<u64>,
) -> Gate {
    if exchange.host == CANARY_HOST {
        return Gate::Refuse(canary(tracker));
    }
    if live.config.audit_on_failure == AuditOnFailure::Block
        && let Some(error) = tracker.sink().audit_failure()
    {
        return Gate::Refuse(audit_unavailable(tracker, &error));
    }
    let mut warning = None;
    let mut asked = None;
    let mut verdicts = || -> Verdict {
        if guards.locked_down() {
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
                // Nobody is asked about a request a later check refuses anyway.
                Verdict::Ask { rule } => asked = Some(rule),
                block => return block,
            }
        }
        if let Some(route) = crate::policy::route_for(&live.config, &exchange.host) {
            let path = path_and_query.split('?').next().unwrap_or("/");
            if let Some(block) = crate::policy::route_path_verdict(route, path) {
                return block;
            }
        }
        if asked.is_some() {
            return Verdict::Allow;
        }
        // A body of unknown length is charged once it has been read (`budget`).
        match body_size {
            Some(n) => guards.budgets.charge(&live.config, &exchange.host, n),
            None => Verdict::Allow,
        }
    };
    let verdict = verdicts();
    if let Some((rule, reason)) = warning {
        let ctx = tracker.threat_context();
        warn(
            tracker,
            &ctx,
            Threat::policy(&rule, "policy"),
            ThreatAction::Warned,
            &reason,
        );
    }
    match (verdict, asked) {
        (Verdict::Block { rule, reason }, _) => Gate::Refuse(refuse(
            tracker,
            "policy",
            &rule,
            reason,
            policy_detail(&rule),
        )),
        (_, Some(rule)) => Gate::Ask { rule },
        _ => Gate::Pass,
    }
}

/// How a held request ended without an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotApproved {
    Denied,
    TimedOut,
    Stopping,
}

/// Holds a request an `ask` rule matched until a person approves or denies it, or
/// `policy.ask_timeout_secs` passes. Approved, it goes on as if allowed (lockdown, switched
/// on meanwhile, still refuses it; its budget is charged now); anything else is a policy
/// block naming the rule, denied by a person or by the clock. Only this exchange waits.
/// `client_gone` resolves when the client went away (the hold is dropped then).
pub async fn ask(
    guards: &Guards,
    live: &Live,
    tracker: &FlowTracker,
    exchange: &Exchange,
    rule: &str,
    body_size: Option<u64>,
    client_gone: impl std::future::Future<Output = ()>,
) -> Option<Response<ProxyBody>> {
    let ctx = tracker.threat_context();
    let timeout = live.config.policy.ask_timeout;
    let started = std::time::Instant::now();
    let outcome = match guards
        .pending
        .hold(&ctx.method, &tracker.url(), rule, now_rfc3339())
    {
        Err(_) => Err(NotApproved::Stopping),
        Ok(mut hold) => {
            let held = hold.request();
            tracing::info!(
                id = %held.id,
                rule,
                method = %held.method,
                url = %held.url,
                "request held for a decision: `airlock approve {}` or `airlock deny {}` (or the dashboard) within {} s",
                held.id,
                held.id,
                timeout.as_secs(),
            );
            let mut waiting = Waiting {
                tracker,
                rule,
                over: false,
            };
            let answer = tokio::select! {
                answer = tokio::time::timeout(timeout, hold.answer()) => answer,
                // Nobody to answer: the hold goes, and `waiting` marks the flow.
                () = client_gone => {
                    drop(hold);
                    drop(waiting);
                    return Some(super::respond::error_response(
                        http::StatusCode::BAD_REQUEST,
                        "client-gone",
                        "the client went away while the request was held",
                    ));
                }
            };
            waiting.over = true;
            match answer {
                Ok(Some(Decision::Approved)) => Ok(()),
                Ok(Some(Decision::Denied)) => Err(NotApproved::Denied),
                Ok(None) => Err(NotApproved::Stopping),
                Err(_) => Err(NotApproved::TimedOut),
            }
        }
    };
    let waited = started.elapsed().as_secs_f64();
    let secs = timeout.as_secs();
    let (reason, snippet) = match outcome {
        Ok(()) => {
            if guards.locked_down() {
                let v = crate::policy::lockdown_verdict(&live.config, &exchange.host);
                if let Verdict::Block { rule, reason } = v {
                    let detail = policy_detail(&rule);
                    return Some(refuse(tracker, "policy", &rule, reason, detail));
                }
            }
            if let Some(n) = body_size
                && let Verdict::Block { rule, reason } =
                    guards.budgets.charge(&live.config, &exchange.host, n)
            {
                let detail = policy_detail(&rule);
                return Some(refuse(tracker, "policy", &rule, reason, detail));
            }
            tracker.note(format!(
                "policy: rule {rule} held this request; approved by a person after {waited:.1} s"
            ));
            return None;
        }
        Err(NotApproved::Denied) => (
            format!("policy: rule {rule} held this request for a decision; a person denied it"),
            format!("denied by a person after {waited:.1} s"),
        ),
        Err(NotApproved::TimedOut) => (
            format!(
                "policy: rule {rule} held this request for a decision; none came within {secs} s (policy.ask_timeout_secs), so it is denied"
            ),
            format!("denied: nobody decided within {secs} s (policy.ask_timeout_secs)"),
        ),
        Err(NotApproved::Stopping) => (
            format!(
                "policy: rule {rule} held this request for a decision; airlock stopped before one came"
            ),
            "denied: airlock stopped while the request was held".to_string(),
        ),
    };
    let info = BlockInfo {
        rank: 0,
        kind: "policy",
        rule: rule.to_string(),
        reason,
        detail: format!(
            "rule {rule} asks a person about requests like this one: while one is held (up to policy.ask_timeout_secs), `airlock approve ID` or the dashboard lets it through"
        ),
    };
    let threat = Threat {
        snippet: &snippet,
        ..Threat::policy(rule, "policy")
    };
    Some(blocked_response(&block(tracker, &ctx, threat, info)))
}

/// Marks the flow when its client leaves while the request is held (the exchange's future
/// is dropped mid-wait; the pending entry goes with its `Hold`).
struct Waiting<'a> {
    tracker: &'a FlowTracker,
    rule: &'a str,
    over: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.over {
            self.tracker.fail(
                None,
                format!(
                    "the client left while policy rule {} held the request for a decision",
                    self.rule
                ),
            );
        }
    }
}

/// The LLM spend budgets, before an LLM call goes upstream: past a limit the call is refused
/// with the provider's own error (429, so its SDK reports a rate limit) and a POLICY threat
/// (rule `budget:llm`).
pub fn llm_budget(
    guards: &Guards,
    live: &Live,
    tracker: &FlowTracker,
    exchange: &Exchange,
    provider: airlock_llm::Provider,
) -> Option<Response<ProxyBody>> {
    let reason = guards.llm_spend.check(
        &live.config.llm_budgets,
        exchange.client_ip,
        &exchange.listener,
    )?;
    let ctx = tracker.threat_context();
    let info = block(
        tracker,
        &ctx,
        Threat::policy(LLM_BUDGET_RULE, "policy"),
        BlockInfo {
            rank: 0,
            kind: "policy",
            rule: LLM_BUDGET_RULE.to_string(),
            reason: format!("policy: {reason}"),
            detail: "an LLM spend limit in `budgets`".to_string(),
        },
    );
    tracker.set_status(429);
    Some(super::respond::llm_limit_response(provider, &info))
}

/// The rule an LLM budget block names.
pub const LLM_BUDGET_RULE: &str = "budget:llm";

/// The budget check for a body whose length was not known up front: `read` bytes of it
/// have arrived (held for scanning, or all of it).
pub fn budget(
    guards: &Guards,
    live: &Live,
    tracker: &FlowTracker,
    exchange: &Exchange,
    read: u64,
) -> Option<Response<ProxyBody>> {
    match guards.budgets.charge(&live.config, &exchange.host, read) {
        Verdict::Block { rule, reason } => {
            let detail = policy_detail(&rule);
            Some(refuse(tracker, "policy", &rule, reason, detail))
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

/// The destination guard's refusal (the dialer found a private address): 403 `destination`.
pub fn destination(tracker: &FlowTracker, reason: String) -> Response<ProxyBody> {
    refuse(
        tracker,
        "destination",
        "destination-guard",
        reason,
        "loopback, link-local, private and unique-local addresses are refused; allow_private lists the ranges that may be reached".into(),
    )
}

/// A CONNECT to a port `connect_ports` does not list: 403 `destination`, rule `connect_ports`.
pub fn connect_port(
    tracker: &FlowTracker,
    host: &str,
    port: u16,
    allowed: &[u16],
) -> Response<ProxyBody> {
    let list: Vec<String> = allowed.iter().map(u16::to_string).collect();
    refuse(
        tracker,
        "destination",
        "connect_ports",
        format!("CONNECT to {host}:{port}: port {port} is not in connect_ports"),
        format!(
            "tunnels may go to ports {} only; add {port} to connect_ports to allow it",
            list.join(", ")
        ),
    )
}

/// Inside a tunnel the CONNECT target is the destination: a request whose URI authority or
/// Host header names another host is refused (it would otherwise smuggle itself to another
/// virtual host under the tunnel's name).
pub fn tunnel_host(
    tracker: &FlowTracker,
    exchange: &Exchange,
    uri: &Uri,
    headers: &HeaderMap,
) -> Option<Response<ProxyBody>> {
    let claimed = host_mismatch(exchange, uri, headers)?;
    Some(refuse(
        tracker,
        "policy",
        "host-mismatch",
        format!(
            "request for {claimed} inside a tunnel to {}: refused",
            exchange.authority()
        ),
        "the Host header (or :authority) must name the host the tunnel was opened to".into(),
    ))
}

/// The host a request claims (its URI authority, else its Host header), when it names one
/// other than the exchange's destination.
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

/// `host[:port]` or `[v6][:port]`; a bare IPv6 address has no port.
pub fn split_host_port(s: &str) -> (String, Option<u16>) {
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

/// Detection's findings: each becomes a threat record and, by its action, a block, a
/// redaction or a warning. Returns the block that names the refusal (the most specific
/// finding), if any finding blocks.
pub fn findings(
    detector: &Detector,
    tracker: &FlowTracker,
    detections: &[Detection],
) -> Option<BlockInfo> {
    if detections.is_empty() {
        return None;
    }
    tracker.note_findings(detections);
    let ctx = tracker.threat_context();
    let mut named: Option<BlockInfo> = None;
    for d in detections {
        let rule = detector.rule(d.rule);
        let secret = rule.kind == airlock_scan::RuleKind::Secret;
        let (threat_type, block_kind, verb) = match (secret, d.direction) {
            (true, Direction::Outbound) => (ThreatType::Exfil, "credential-leak", "egress DLP"),
            (true, Direction::Inbound) => (ThreatType::Secret, "credential-leak", "egress DLP"),
            (false, _) => (ThreatType::Injection, "injection", "injection guard"),
        };
        let action = match (d.action, &d.location) {
            // A secret only visible after decoding cannot be replaced in the stream.
            (DetectAction::Redact, Location::DecodedBody(_)) => DetectAction::Warn,
            (a, _) => a,
        };
        if action == DetectAction::Off {
            continue;
        }
        let location = d.location.describe(d.direction);
        let reason = format!("{verb}: {} found in {location}", rule.name);
        let presented = action == DetectAction::Allow && d.direction == Direction::Outbound;
        tracker.scan(|s| {
            if !presented && !s.findings.contains(&rule.id) {
                s.findings.push(rule.id.clone());
            }
        });
        let threat = Threat {
            direction: d.direction,
            threat_type,
            pattern: &rule.id,
            family: &rule.family,
            snippet: &d.snippet,
            location: Some(location.clone()),
        };
        match action {
            DetectAction::Block => {
                let info = BlockInfo {
                    rank: detector.specificity(d.rule),
                    kind: block_kind,
                    rule: rule.id.clone(),
                    reason,
                    detail: format!(
                        "{} ({}) in the {location}; the snippet in `airlock threats` shows where, with the value masked",
                        rule.name, rule.family
                    ),
                };
                let info = block(tracker, &ctx, threat, info);
                if named.as_ref().is_none_or(|b| info.rank < b.rank) {
                    named = Some(info);
                }
            }
            DetectAction::Redact => warn(tracker, &ctx, threat, ThreatAction::Redacted, &reason),
            DetectAction::Warn => warn(tracker, &ctx, threat, ThreatAction::Warned, &reason),
            // A login: a credential arriving is recorded as seen (a SECRET threat, `allowed`);
            // one the client presents to a token endpoint is noted in the flow record, like
            // a key presented to its issuer. No event; the flow stays allowed.
            DetectAction::Allow if d.direction == Direction::Inbound => {
                write_threat(tracker, &ctx, &threat, ThreatAction::Allowed)
            }
            DetectAction::Allow => tracker.scan(|s| {
                let c = PresentedCredential {
                    pattern: rule.id.clone(),
                    header: location.clone(),
                };
                if !s.credentials.contains(&c) {
                    s.credentials.push(c);
                }
            }),
            DetectAction::Off => {}
        }
    }
    named
}

/// A request body airlock cannot decode to inspect is refused: it blocks what it cannot see.
pub fn undecodable(tracker: &FlowTracker, error: &str) -> BlockInfo {
    let ctx = tracker.threat_context();
    let rule = "undecodable-body";
    let info = BlockInfo {
        rank: 0,
        kind: "credential-leak",
        rule: rule.into(),
        reason: format!("egress DLP: the request body cannot be decoded for scanning ({error})"),
        detail: "airlock blocks what it cannot inspect; send the body uncompressed or with gzip, deflate, br or zstd".into(),
    };
    let threat = Threat {
        direction: Direction::Outbound,
        threat_type: ThreatType::Exfil,
        pattern: rule,
        family: "undecodable_body",
        snippet: "",
        location: Some("request body".into()),
    };
    block(tracker, &ctx, threat, info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::exchange::Scheme;

    fn exchange(host: &str, port: u16) -> Exchange {
        Exchange {
            listener: "proxy".into(),
            client_ip: "127.0.0.1".parse().unwrap(),
            scheme: Scheme::Https,
            host: host.into(),
            port,
        }
    }

    fn host_header(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, value.parse().unwrap());
        h
    }

    #[test]
    fn split_host_port_reads_names_addresses_and_brackets() {
        assert_eq!(split_host_port("example.com"), ("example.com".into(), None));
        assert_eq!(
            split_host_port("example.com:8443"),
            ("example.com".into(), Some(8443))
        );
        assert_eq!(split_host_port("[::1]:443"), ("::1".into(), Some(443)));
        assert_eq!(split_host_port("[::1]"), ("::1".into(), None));
        // A bare IPv6 address: its colons are not a port.
        assert_eq!(split_host_port("::1"), ("::1".into(), None));
        assert_eq!(
            split_host_port("example.com:x"),
            ("example.com".into(), None)
        );
    }

    #[test]
    fn the_tunnel_target_decides_the_host() {
        let ex = exchange("api.example.com", 443);
        let origin: Uri = "/v1".parse().unwrap();
        assert_eq!(
            host_mismatch(&ex, &origin, &host_header("api.example.com")),
            None
        );
        assert_eq!(
            host_mismatch(&ex, &origin, &host_header("API.Example.com:443")),
            None
        );
        assert_eq!(
            host_mismatch(&ex, &origin, &host_header("evil.example.net")),
            Some("evil.example.net".into())
        );
        assert_eq!(
            host_mismatch(&ex, &origin, &host_header("api.example.com:8443")),
            Some("api.example.com:8443".into())
        );
        // An absolute URI's authority wins over the Host header.
        let absolute: Uri = "https://evil.example.net/v1".parse().unwrap();
        assert!(host_mismatch(&ex, &absolute, &host_header("api.example.com")).is_some());
        // No Host at all (HTTP/1.0 style): nothing is claimed.
        assert_eq!(host_mismatch(&ex, &origin, &HeaderMap::new()), None);
        let v6 = exchange("::1", 8443);
        assert_eq!(
            host_mismatch(&v6, &origin, &host_header("[::1]:8443")),
            None
        );
    }

    #[test]
    fn facts_join_repeated_headers_and_split_the_query() {
        let mut h = HeaderMap::new();
        h.append("x-a", "1".parse().unwrap());
        h.append("x-a", "2".parse().unwrap());
        let f = facts(&exchange("h.test", 8443), "POST", "/p?q=1", &h, None);
        assert_eq!(f.path, "/p");
        assert_eq!(f.query, "q=1");
        assert_eq!(f.url, "https://h.test:8443/p?q=1");
        assert_eq!(f.headers, vec![("x-a".to_string(), "1, 2".to_string())]);
        assert_eq!(f.body_size, -1);
    }

    #[test]
    fn a_policy_block_explains_how_to_lift_it() {
        assert!(policy_detail("lockdown").contains("airlock lockdown off"));
        assert!(policy_detail("budget:x.test").contains("max_request_bytes_per_hour"));
        assert!(policy_detail("route:x.test").contains("allow_paths"));
        assert!(policy_detail("no-gists").contains("no-gists"));
    }
}
