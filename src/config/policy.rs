//! `policy` (SPEC 7), `routes` (SPEC 8), `allow_private`, `lockdown_allow` and `budgets`:
//! the raw keys and their validation. CEL expressions are compiled where the policy is built
//! (`policy::Policy::build`), which `airlock config check` runs too.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::hosts::HostSet;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    default: Option<RawDefault>,
    #[serde(default)]
    allow_hosts: Option<Vec<String>>,
    #[serde(default)]
    deny_hosts: Option<Vec<String>>,
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    refresh_secs: Option<u64>,
    #[serde(default)]
    ask_timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawDefault {
    Allow,
    Deny,
}

/// One policy rule as written (in the file or served by `policy.source`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub name: String,
    #[serde(rename = "match")]
    pub expr: String,
    pub action: RuleAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Block,
    Allow,
    Warn,
    /// Hold the request until a person approves or denies it (or `ask_timeout_secs` passes).
    Ask,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    host: String,
    inject: RawInject,
    #[serde(default)]
    strip: Option<Vec<String>>,
    #[serde(default)]
    allow_paths: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInject {
    header: String,
    #[serde(default)]
    value_env: Option<String>,
    #[serde(default)]
    value_file: Option<std::path::PathBuf>,
}

/// A host's request bytes (`host`, `max_request_bytes_per_hour`), or LLM spend for one scope
/// (`source`, `listener` or `total: true`, with any of the `max_llm_*` limits).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBudget {
    host: Option<String>,
    max_request_bytes_per_hour: Option<u64>,
    source: Option<String>,
    listener: Option<String>,
    total: Option<bool>,
    max_llm_cost_usd_per_hour: Option<f64>,
    max_llm_cost_usd_per_day: Option<f64>,
    max_llm_tokens_per_hour: Option<u64>,
    max_llm_tokens_per_day: Option<u64>,
}

/// Whose LLM spend a budget limits.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmScope {
    /// Calls from one client address (`source.ip`).
    Source(IpAddr),
    /// Calls through one listener ("proxy" or a gateway's name).
    Listener(String),
    Total,
}

/// An LLM spend budget: past any of its limits, LLM calls in its scope are refused (429).
#[derive(Debug, Clone, PartialEq)]
pub struct LlmBudget {
    pub scope: LlmScope,
    pub cost_per_hour: Option<f64>,
    pub cost_per_day: Option<f64>,
    pub tokens_per_hour: Option<u64>,
    pub tokens_per_day: Option<u64>,
}

/// `policy`, validated.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    pub default_deny: bool,
    pub allow_hosts: Vec<String>,
    pub deny_hosts: Vec<String>,
    pub rules: Vec<RawRule>,
    pub source: Option<String>,
    pub refresh: Duration,
    /// How long an `ask` rule holds a request for a person's decision before denying it.
    pub ask_timeout: Duration,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            default_deny: false,
            allow_hosts: Vec::new(),
            deny_hosts: Vec::new(),
            rules: Vec::new(),
            source: None,
            refresh: Duration::from_secs(60),
            ask_timeout: Duration::from_secs(DEFAULT_ASK_TIMEOUT_SECS),
        }
    }
}

pub const DEFAULT_ASK_TIMEOUT_SECS: u64 = 60;
/// A held request keeps a client connection open; a day is already far past any client's
/// own patience, so a larger value is a typo, not a wish.
pub const MAX_ASK_TIMEOUT_SECS: u64 = 86_400;

/// A credential value: printed nowhere (its `Debug` is masked).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(pub String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[MASKED]")
    }
}

/// One route (SPEC 8), with its credential already read.
#[derive(Debug, Clone)]
pub struct RouteSetting {
    pub host: String,
    pub hosts: HostSet,
    pub header: http::HeaderName,
    pub value: SecretValue,
    /// Where the value came from (`env ANTHROPIC_API_KEY`), for messages.
    pub origin: String,
    pub strip: Vec<http::HeaderName>,
    pub allow_paths: Option<globset::GlobSet>,
}

#[derive(Debug, Clone)]
pub struct BudgetSetting {
    pub host: String,
    pub max_request_bytes_per_hour: u64,
}

/// A CIDR range: `10.0.0.0/8`, `fd00::/8`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || format!("expected an address or CIDR range such as 10.0.0.0/8, got {s:?}");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

pub(super) fn build_policy(raw: Option<RawPolicy>) -> Result<PolicySettings, (String, String)> {
    let Some(raw) = raw else {
        return Ok(PolicySettings::default());
    };
    let allow_hosts = raw.allow_hosts.unwrap_or_default();
    let deny_hosts = raw.deny_hosts.unwrap_or_default();
    HostSet::new(&allow_hosts).map_err(|m| ("policy.allow_hosts".to_string(), m))?;
    HostSet::new(&deny_hosts).map_err(|m| ("policy.deny_hosts".to_string(), m))?;
    let rules = raw.rules.unwrap_or_default();
    check_rules(&rules).map_err(|(i, m)| (format!("policy.rules[{i}]"), m))?;
    if let Some(source) = &raw.source
        && !(source.starts_with("http://") || source.starts_with("https://"))
    {
        return Err((
            "policy.source".into(),
            format!("expected an http:// or https:// URL, got {source:?}"),
        ));
    }
    let refresh = raw.refresh_secs.unwrap_or(60);
    if refresh == 0 {
        return Err(("policy.refresh_secs".into(), "must be at least 1".into()));
    }
    let ask_timeout = raw.ask_timeout_secs.unwrap_or(DEFAULT_ASK_TIMEOUT_SECS);
    if !(1..=MAX_ASK_TIMEOUT_SECS).contains(&ask_timeout) {
        return Err((
            "policy.ask_timeout_secs".into(),
            format!(
                "must be a whole number of seconds from 1 to {MAX_ASK_TIMEOUT_SECS} (a day), got {ask_timeout}"
            ),
        ));
    }
    Ok(PolicySettings {
        default_deny: raw.default == Some(RawDefault::Deny),
        allow_hosts,
        deny_hosts,
        rules,
        source: raw.source,
        refresh: Duration::from_secs(refresh),
        ask_timeout: Duration::from_secs(ask_timeout),
    })
}

/// Names must be unique and non-empty (the expressions are compiled with the policy).
pub fn check_rules(rules: &[RawRule]) -> Result<(), (usize, String)> {
    let mut seen = std::collections::HashSet::new();
    for (i, rule) in rules.iter().enumerate() {
        if rule.name.trim().is_empty() {
            return Err((i, "a rule needs a name".into()));
        }
        if !seen.insert(rule.name.as_str()) {
            return Err((i, format!("two rules are named {:?}", rule.name)));
        }
    }
    Ok(())
}

pub(super) fn build_routes(raw: Vec<RawRoute>) -> Result<Vec<RouteSetting>, (String, String)> {
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("routes[{i}].{field}");
        let hosts = HostSet::new(std::slice::from_ref(&r.host)).map_err(|m| (key("host"), m))?;
        let header =
            http::HeaderName::from_bytes(r.inject.header.trim().as_bytes()).map_err(|_| {
                (
                    key("inject.header"),
                    format!("not a header name: {:?}", r.inject.header),
                )
            })?;
        let (value, origin) = match (&r.inject.value_env, &r.inject.value_file) {
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => {
                    (v.trim().to_string(), format!("environment variable {var}"))
                }
                _ => {
                    return Err((
                        key("inject.value_env"),
                        format!(
                            "the environment variable {var} is not set (or empty); export it before starting airlock"
                        ),
                    ));
                }
            },
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => {
                    (v.trim().to_string(), format!("file {}", path.display()))
                }
                Ok(_) => {
                    return Err((
                        key("inject.value_file"),
                        format!("{} is empty", path.display()),
                    ));
                }
                Err(e) => {
                    return Err((
                        key("inject.value_file"),
                        format!("cannot read {}: {e}", path.display()),
                    ));
                }
            },
            _ => {
                return Err((
                    key("inject"),
                    "give exactly one of value_env or value_file".into(),
                ));
            }
        };
        if http::HeaderValue::from_str(&value).is_err() {
            return Err((
                key("inject"),
                format!("the value from the {origin} is not a valid header value"),
            ));
        }
        let strip = match r.strip {
            Some(list) => list
                .iter()
                .map(|h| {
                    http::HeaderName::from_bytes(h.trim().as_bytes())
                        .map_err(|_| (key("strip"), format!("not a header name: {h:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![http::header::AUTHORIZATION, header.clone()],
        };
        let allow_paths = match r.allow_paths {
            Some(globs) => {
                let mut b = globset::GlobSetBuilder::new();
                for g in &globs {
                    b.add(
                        globset::GlobBuilder::new(g)
                            .literal_separator(false)
                            .build()
                            .map_err(|e| (key("allow_paths"), format!("{g:?}: {e}")))?,
                    );
                }
                Some(b.build().map_err(|e| (key("allow_paths"), e.to_string()))?)
            }
            None => None,
        };
        out.push(RouteSetting {
            host: r.host,
            hosts,
            header,
            value: SecretValue(value),
            origin,
            strip,
            allow_paths,
        });
    }
    Ok(out)
}

pub(super) fn build_budgets(
    raw: Vec<RawBudget>,
) -> Result<(Vec<BudgetSetting>, Vec<LlmBudget>), (String, String)> {
    let mut hosts = Vec::new();
    let mut llm = Vec::new();
    for (i, b) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("budgets[{i}].{k}");
        let any_llm = b.max_llm_cost_usd_per_hour.is_some()
            || b.max_llm_cost_usd_per_day.is_some()
            || b.max_llm_tokens_per_hour.is_some()
            || b.max_llm_tokens_per_day.is_some();
        if let Some(host) = b.host {
            if any_llm || b.source.is_some() || b.listener.is_some() || b.total.is_some() {
                return Err((
                    key("host"),
                    "a budget is either a host's request bytes or an LLM spend limit for a source, a listener or the total, not both".into(),
                ));
            }
            let Some(max) = b.max_request_bytes_per_hour else {
                return Err((
                    key("max_request_bytes_per_hour"),
                    "a host budget needs it".into(),
                ));
            };
            if max == 0 {
                return Err((
                    key("max_request_bytes_per_hour"),
                    "must be greater than 0".into(),
                ));
            }
            hosts.push(BudgetSetting {
                host: host.trim().to_ascii_lowercase(),
                max_request_bytes_per_hour: max,
            });
            continue;
        }
        if b.max_request_bytes_per_hour.is_some() {
            return Err((
                key("host"),
                "max_request_bytes_per_hour needs a host".into(),
            ));
        }
        let scope = match (b.source, b.listener, b.total) {
            (Some(ip), None, None) => LlmScope::Source(
                ip.trim()
                    .parse()
                    .map_err(|_| (key("source"), format!("expected an IP address, got {ip:?}")))?,
            ),
            (None, Some(name), None) => LlmScope::Listener(name),
            (None, None, Some(true)) => LlmScope::Total,
            (None, None, Some(false)) => {
                return Err((key("total"), "only `total: true` means anything".into()));
            }
            (None, None, None) => {
                return Err((
                    key("host"),
                    "a budget needs a host (request bytes) or a scope for LLM spend: source, listener or total: true".into(),
                ));
            }
            _ => {
                return Err((
                    key("source"),
                    "give one scope: source, listener or total: true".into(),
                ));
            }
        };
        if !any_llm {
            return Err((
                key("max_llm_cost_usd_per_hour"),
                "an LLM budget needs at least one of max_llm_cost_usd_per_hour, max_llm_cost_usd_per_day, max_llm_tokens_per_hour, max_llm_tokens_per_day".into(),
            ));
        }
        for (name, v) in [
            ("max_llm_cost_usd_per_hour", b.max_llm_cost_usd_per_hour),
            ("max_llm_cost_usd_per_day", b.max_llm_cost_usd_per_day),
        ] {
            if v.is_some_and(|v| !v.is_finite() || v <= 0.0) {
                return Err((key(name), "must be a positive number of US dollars".into()));
            }
        }
        for (name, v) in [
            ("max_llm_tokens_per_hour", b.max_llm_tokens_per_hour),
            ("max_llm_tokens_per_day", b.max_llm_tokens_per_day),
        ] {
            if v == Some(0) {
                return Err((key(name), "must be greater than 0".into()));
            }
        }
        llm.push(LlmBudget {
            scope,
            cost_per_hour: b.max_llm_cost_usd_per_hour,
            cost_per_day: b.max_llm_cost_usd_per_day,
            tokens_per_hour: b.max_llm_tokens_per_hour,
            tokens_per_day: b.max_llm_tokens_per_day,
        });
    }
    Ok((hosts, llm))
}

pub(super) fn build_cidrs(raw: Vec<String>) -> Result<Vec<Cidr>, (String, String)> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| Cidr::parse(s).map_err(|m| (format!("allow_private[{i}]"), m)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Cidr, RawPolicy, RuleAction, build_policy};

    fn policy(json: &str) -> Result<super::PolicySettings, (String, String)> {
        build_policy(Some(serde_json::from_str::<RawPolicy>(json).unwrap()))
    }

    #[test]
    fn ask_rules_and_their_timeout() {
        let p = policy(
            r#"{"rules": [{"name": "a", "match": "true", "action": "ask"}], "ask_timeout_secs": 5}"#,
        )
        .unwrap();
        assert_eq!(p.rules[0].action, RuleAction::Ask);
        assert_eq!(p.ask_timeout.as_secs(), 5);
        assert_eq!(policy("{}").unwrap().ask_timeout.as_secs(), 60);
        for bad in [0, 86_401] {
            let (key, message) = policy(&format!(r#"{{"ask_timeout_secs": {bad}}}"#)).unwrap_err();
            assert_eq!(key, "policy.ask_timeout_secs");
            assert!(message.contains("1 to 86400"), "{message}");
        }
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(c.contains("127.1.2.3".parse().unwrap()));
        assert!(!c.contains("128.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let c = Cidr::parse("fd00::/8").unwrap();
        assert!(c.contains("fd12::1".parse().unwrap()));
        assert!(
            Cidr::parse("10.0.0.1")
                .unwrap()
                .contains("10.0.0.1".parse().unwrap())
        );
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["10.0.0.0/33", "x/8", "10.0.0.0/"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
