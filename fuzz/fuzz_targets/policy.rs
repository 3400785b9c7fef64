//! Policy rules as a remote rule source serves them (`{"rules": [...]}`, fetched over the
//! network) and as one CEL expression: parsed, compiled (native fast path and interpreter)
//! and evaluated on a few requests. A bad document or expression must be refused, never
//! crash the proxy; an expression that compiles must evaluate to a verdict.
#![no_main]

use std::time::Duration;

use airlock::config::policy::{PolicySettings, RawRule, RuleAction};
use airlock::policy::remote::RemoteRules;
use airlock::policy::{Facts, Policy};
use airlock_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let body = input.rest();
    if flags & 1 == 0 {
        let remote = RemoteRules::new("http://rules.invalid/".into(), Duration::from_secs(60));
        if remote.apply(body).is_ok() {
            let rules = remote.rules().expect("a document applied");
            assert_eq!(rules.len(), remote.rule_count());
        }
        return;
    }
    let Ok(expr) = std::str::from_utf8(body) else {
        return;
    };
    let rule = RawRule {
        name: "fuzz".into(),
        expr: expr.into(),
        action: RuleAction::Block,
    };
    let settings = PolicySettings {
        rules: vec![rule],
        ..PolicySettings::default()
    };
    let Ok(policy) = Policy::build(&settings, None) else {
        return;
    };
    for f in facts(flags) {
        let _ = policy.decide(&f);
    }
});

fn facts(flags: u8) -> Vec<Facts> {
    let base = Facts {
        method: "POST".into(),
        scheme: "https".into(),
        host: "api.example.com".into(),
        port: 443,
        path: "/v1/items".into(),
        query: "a=1".into(),
        url: "https://api.example.com/v1/items?a=1".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body_size: 2,
        source_ip: "127.0.0.1".into(),
        listener: "proxy".into(),
    };
    let mut other = base.clone();
    other.method = if flags & 2 != 0 { "BREW" } else { "get" }.into();
    other.host = "Gist.GitHub.com.".into();
    other.port = 8443;
    other.body_size = -1;
    other.headers.clear();
    vec![base, other]
}
