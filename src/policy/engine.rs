//! The active policy: `deny_hosts`, then the file's rules, then the rules of
//! `policy.source`, then `allow_hosts`, then `policy.default`.

use std::sync::Arc;

use super::Verdict;
use super::cel;
use super::facts::Facts;
use super::remote::RemoteRules;
use super::rule::{Rule, compile_rules, first_match};
use crate::config::HostSet;
use crate::config::policy::PolicySettings;

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
    /// Compiles the rules; an error is (key path, message), such as
    /// (`policy.rules[2]`, `rule "x": does not compile: …`). `remote` is the rule source to
    /// keep using (across a reload with the same URL, so its last good rules stay); a new one
    /// is made when the URL changed.
    pub fn build(
        settings: &PolicySettings,
        remote: Option<Arc<RemoteRules>>,
    ) -> Result<Policy, (String, String)> {
        let hosts = |key: &str, list: &[String]| -> Result<Option<HostSet>, (String, String)> {
            if list.is_empty() {
                Ok(None)
            } else {
                HostSet::new(list)
                    .map(Some)
                    .map_err(|m| (format!("policy.{key}"), m))
            }
        };
        Ok(Policy {
            deny_hosts: hosts("deny_hosts", &settings.deny_hosts)?,
            rules: compile_rules(&settings.rules)
                .map_err(|(i, m)| (format!("policy.rules[{i}]"), m))?,
            remote: settings.source.as_ref().map(|url| match remote {
                Some(r) if r.url() == url => r,
                _ => Arc::new(RemoteRules::new(url.clone(), settings.refresh)),
            }),
            allow_hosts: hosts("allow_hosts", &settings.allow_hosts)?,
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::policy::RawRule;

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

    #[test]
    fn an_ask_rule_asks_in_its_turn() {
        let rules: Vec<RawRule> = serde_json::from_str(
            r#"[{"name": "no-posts", "match": "request.method == \"POST\"", "action": "block"},
                {"name": "ask-bench", "match": "request.host == \"bench.test\"", "action": "ask"}]"#,
        )
        .unwrap();
        let settings = PolicySettings {
            rules,
            ..PolicySettings::default()
        };
        let policy = Policy::build(&settings, None).unwrap();
        assert_eq!(
            policy.decide(&facts()),
            Verdict::Ask {
                rule: "ask-bench".into()
            }
        );
        let mut post = facts();
        post.method = "POST".into();
        assert!(matches!(policy.decide(&post), Verdict::Block { rule, .. } if rule == "no-posts"));
        let mut other = facts();
        other.host = "other.test".into();
        assert_eq!(policy.decide(&other), Verdict::Allow);
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
