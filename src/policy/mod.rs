//! Decide what may leave, before anything is sent: policy rules in CEL (SPEC 7) with the
//! `allow_hosts` / `deny_hosts` shorthand and a remote rule source, the kill switch
//! (lockdown), per-host byte budgets, route path lists (SPEC 8) and the destination guard
//! (`destination`). Each answers with a [`Verdict`]; `pipeline::decide` turns a block into
//! the 403, the POLICY threat and the `egress_block` line.

pub mod cel;
pub mod destination;
mod native;
pub mod remote;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::policy::{PolicySettings, RawRule, RouteSetting, RuleAction};
use crate::config::{Config, HostSet};
use cel::CelRule;
pub use cel::Facts;
use remote::RemoteRules;

/// What policy says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Let through, with a POLICY threat (`warned`) and an `egress_warn` line.
    Warn {
        rule: String,
        reason: String,
    },
    Block {
        rule: String,
        reason: String,
    },
}

/// A compiled rule.
pub struct Rule {
    pub name: String,
    action: RuleAction,
    cel: CelRule,
}

impl Rule {
    pub fn compile(raw: &RawRule) -> Result<Rule, String> {
        Ok(Rule {
            name: raw.name.clone(),
            action: raw.action,
            cel: CelRule::compile(&raw.expr).map_err(|e| format!("rule {:?}: {e}", raw.name))?,
        })
    }
}

/// The active policy: the file's rules (compiled once per load) and, when `policy.source`
/// is set, the rules it serves.
pub struct Policy {
    deny_hosts: Option<HostSet>,
    rules: Vec<Rule>,
    remote: Option<Arc<RemoteRules>>,
    allow_hosts: Option<HostSet>,
    default_deny: bool,
}

impl Policy {
    /// `remote` is the rule source to keep using (across a reload with the same URL, so its
    /// last good rules stay); a new one is made when the URL changed.
    pub fn build(
        settings: &PolicySettings,
        remote: Option<Arc<RemoteRules>>,
    ) -> Result<Policy, String> {
        let hosts = |list: &[String]| -> Result<Option<HostSet>, String> {
            if list.is_empty() {
                Ok(None)
            } else {
                HostSet::new(list).map(Some)
            }
        };
        Ok(Policy {
            deny_hosts: hosts(&settings.deny_hosts)?,
            rules: settings
                .rules
                .iter()
                .map(Rule::compile)
                .collect::<Result<_, _>>()?,
            remote: settings.source.as_ref().map(|url| match remote {
                Some(r) if r.url() == url => r,
                _ => Arc::new(RemoteRules::new(url.clone(), settings.refresh)),
            }),
            allow_hosts: hosts(&settings.allow_hosts)?,
            default_deny: settings.default_deny,
        })
    }

    pub fn remote(&self) -> Option<&Arc<RemoteRules>> {
        self.remote.as_ref()
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
            + self.remote.as_ref().map_or(0, |r| r.rule_count())
            + usize::from(self.deny_hosts.is_some())
            + usize::from(self.allow_hosts.is_some())
    }

    /// True when nothing is configured: the common case costs nothing per request.
    pub fn is_open(&self) -> bool {
        self.deny_hosts.is_none()
            && self.rules.is_empty()
            && self.remote.is_none()
            && !self.default_deny
    }

    /// The first rule that matches decides; none → `policy.default`.
    pub fn decide(&self, facts: &Facts) -> Verdict {
        if self.is_open() {
            return Verdict::Allow;
        }
        if let Some(deny) = &self.deny_hosts
            && deny.matches(&facts.host)
        {
            return Verdict::Block {
                rule: "deny_hosts".into(),
                reason: format!("policy: {} is in policy.deny_hosts", facts.host),
            };
        }
        let eval = cel::Evaluation::new(facts);
        if let Some(verdict) = first_match(&self.rules, &eval) {
            return verdict;
        }
        if let Some(remote) = &self.remote {
            match remote.rules() {
                None => {
                    return Verdict::Block {
                        rule: "policy-source".into(),
                        reason: format!(
                            "policy: no rules have been loaded yet from policy.source {}; everything is blocked until they are",
                            remote.url()
                        ),
                    };
                }
                Some(rules) => {
                    if let Some(verdict) = first_match(&rules, &eval) {
                        return verdict;
                    }
                }
            }
        }
        if let Some(allow) = &self.allow_hosts
            && allow.matches(&facts.host)
        {
            return Verdict::Allow;
        }
        if self.default_deny {
            return Verdict::Block {
                rule: "default".into(),
                reason: format!(
                    "policy: no rule allows {} {} and policy.default is deny",
                    facts.method, facts.host
                ),
            };
        }
        Verdict::Allow
    }
}

fn first_match(rules: &[Rule], eval: &cel::Evaluation<'_>) -> Option<Verdict> {
    for rule in rules {
        match rule.cel.matches(eval) {
            Ok(false) => continue,
            Ok(true) => {
                return Some(match rule.action {
                    RuleAction::Allow => Verdict::Allow,
                    RuleAction::Warn => Verdict::Warn {
                        rule: rule.name.clone(),
                        reason: format!("policy: rule {} matched (warn)", rule.name),
                    },
                    RuleAction::Block => Verdict::Block {
                        rule: rule.name.clone(),
                        reason: format!("policy: rule {} blocks this request", rule.name),
                    },
                });
            }
            // Fail closed: a rule that cannot say no says no.
            Err(e) => {
                return Some(Verdict::Block {
                    rule: format!("{}:error", rule.name),
                    reason: format!(
                        "policy: rule {} could not be evaluated ({e}); blocked",
                        rule.name
                    ),
                });
            }
        }
    }
    None
}

/// The kill switch: everything but `lockdown_allow` is refused.
pub fn lockdown_verdict(config: &Config, host: &str) -> Verdict {
    if config.lockdown_allow.matches(host) {
        return Verdict::Allow;
    }
    Verdict::Block {
        rule: "lockdown".into(),
        reason: format!(
            "policy: airlock is in lockdown; {host} is not in lockdown_allow (airlock lockdown off to lift it)"
        ),
    }
}

/// The route for `host`, if one applies.
pub fn route_for<'a>(config: &'a Config, host: &str) -> Option<&'a RouteSetting> {
    config.routes.iter().find(|r| r.hosts.matches(host))
}

/// A route's path list: `None` when the path may go.
pub fn route_path_verdict(route: &RouteSetting, path: &str) -> Option<Verdict> {
    let allow = route.allow_paths.as_ref()?;
    if allow.is_match(path) {
        return None;
    }
    Some(Verdict::Block {
        rule: format!("route:{}", route.host),
        reason: format!(
            "policy: {path} is not in the allow_paths of the route for {}",
            route.host
        ),
    })
}

/// Request bytes sent per host in the last hour, for `budgets`.
#[derive(Default)]
pub struct BudgetLedger {
    sent: Mutex<HashMap<String, VecDeque<(Instant, u64)>>>,
}

const BUDGET_WINDOW: Duration = Duration::from_secs(3600);

impl BudgetLedger {
    /// Counts `bytes` towards `host` unless that would pass its budget, which blocks.
    pub fn charge(&self, config: &Config, host: &str, bytes: u64) -> Verdict {
        let Some(budget) = config.budgets.iter().find(|b| b.host == host) else {
            return Verdict::Allow;
        };
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let entries = sent.entry(host.to_string()).or_default();
        let now = Instant::now();
        while entries
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > BUDGET_WINDOW)
        {
            entries.pop_front();
        }
        let used: u64 = entries.iter().map(|(_, n)| n).sum();
        if used + bytes > budget.max_request_bytes_per_hour {
            return Verdict::Block {
                rule: format!("budget:{host}"),
                reason: format!(
                    "policy: the request budget for {host} ({} bytes per hour) would be exceeded: {used} sent in the last hour, this request {bytes}",
                    budget.max_request_bytes_per_hour
                ),
            };
        }
        entries.push_back((now, bytes));
        Verdict::Allow
    }

    /// Counts bytes that already left (the rest of a long body): no verdict, they are gone.
    pub fn add(&self, config: &Config, host: &str, bytes: u64) {
        if bytes == 0 || !config.budgets.iter().any(|b| b.host == host) {
            return;
        }
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.entry(host.to_string())
            .or_default()
            .push_back((Instant::now(), bytes));
    }

    pub fn applies(config: &Config, host: &str) -> bool {
        config.budgets.iter().any(|b| b.host == host)
    }
}

/// Charges a host's budget for the bytes of a body past those already charged, as they go.
pub struct BudgetTap {
    inner: crate::pipeline::ProxyBody,
    ledger: Arc<BudgetLedger>,
    config: Arc<Config>,
    host: String,
    /// Bytes still covered by the first charge.
    prepaid: u64,
}

impl BudgetTap {
    pub fn new(
        inner: crate::pipeline::ProxyBody,
        ledger: Arc<BudgetLedger>,
        config: Arc<Config>,
        host: String,
        prepaid: u64,
    ) -> Self {
        BudgetTap {
            inner,
            ledger,
            config,
            host,
            prepaid,
        }
    }
}

impl http_body::Body for BudgetTap {
    type Data = bytes::Bytes;
    type Error = crate::pipeline::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            let covered = n.min(self.prepaid);
            self.prepaid -= covered;
            let this = &*self;
            this.ledger.add(&this.config, &this.host, n - covered);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 50 rules of `bench/policy`, none of which matches: every request is evaluated
    /// against all of them (the worst case of a policy that allows by default).
    fn bench_policy() -> Policy {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../bench/data/policy-50.json")).unwrap();
        let rules: Vec<RawRule> = serde_json::from_value(doc["policy"]["rules"].clone()).unwrap();
        let settings = PolicySettings {
            rules,
            ..PolicySettings::default()
        };
        Policy::build(&settings, None).unwrap()
    }

    fn facts() -> Facts {
        Facts {
            method: "GET".into(),
            scheme: "https".into(),
            host: "bench.test".into(),
            port: 443,
            path: "/hello".into(),
            query: String::new(),
            url: "https://bench.test/hello".into(),
            headers: vec![
                ("accept".into(), "*/*".into()),
                ("user-agent".into(), "oha/1.4".into()),
            ],
            body_size: 0,
            source_ip: "127.0.0.1".into(),
            listener: "proxy".into(),
        }
    }

    #[test]
    fn the_bench_policy_allows_the_bench_request() {
        assert_eq!(bench_policy().decide(&facts()), Verdict::Allow);
        let mut f = facts();
        f.host = "exfil-7.example.net".into();
        assert!(
            matches!(bench_policy().decide(&f), Verdict::Block { rule, .. } if rule == "deny-host-7")
        );
    }

    /// Per-request evaluation time of the 50 rules (run by `bench/policy`, in release):
    /// `cargo test --release -- --ignored --nocapture policy_evaluation_time`.
    #[test]
    #[ignore = "a timing, run by bench/policy"]
    fn policy_evaluation_time() {
        let policy = bench_policy();
        let f = facts();
        let n = 200_000;
        for _ in 0..1000 {
            std::hint::black_box(policy.decide(&f));
        }
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(policy.decide(std::hint::black_box(&f)));
        }
        let per = t.elapsed().as_secs_f64() / f64::from(n) * 1e6;
        println!("policy evaluation, 50 rules, none matching: {per:.2} us per request");
        // The same on two threads at once (the proxy's workers share the compiled rules).
        let policy = std::sync::Arc::new(policy);
        let t = Instant::now();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let policy = policy.clone();
                let f = f.clone();
                std::thread::spawn(move || {
                    for _ in 0..n {
                        std::hint::black_box(policy.decide(std::hint::black_box(&f)));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let per = t.elapsed().as_secs_f64() / f64::from(n) * 1e6;
        println!("the same on two threads at once: {per:.2} us per request per thread");
    }
}
