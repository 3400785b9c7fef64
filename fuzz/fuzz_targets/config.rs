//! The configuration file (YAML, and so JSON) from arbitrary bytes, through everything
//! `Config::load` validates, then the policy it describes compiled (CEL rules) and asked
//! about one request. A bad file must be an error naming what is wrong, never a panic or a
//! hang.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use airlock::config::{Config, Overrides};
use airlock::policy::{Facts, Policy};
use libfuzzer_sys::fuzz_target;

static OVERRIDES: LazyLock<Overrides> = LazyLock::new(|| Overrides {
    // Never the user's own data directory (nothing is created there: load only reads).
    data_dir: Some("/nonexistent/airlock-fuzz/data".into()),
    ..Default::default()
});

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/nonexistent/airlock-fuzz/airlock.yaml");
    let config = match Config::load_bytes(path, data, &OVERRIDES) {
        Ok(c) => c,
        Err(e) => {
            // The message is what a person reads: it must render.
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let digest = config.digest.clone();
    assert_eq!(digest.len(), 64);
    if let Ok(policy) = Policy::build(&config.policy, None) {
        let _ = policy.rule_count();
        let _ = policy.decide(&facts());
    }
    // The same bytes load the same way.
    let again = Config::load_bytes(path, data, &OVERRIDES).expect("loaded once, loads again");
    assert_eq!(again.digest, digest);
});

fn facts() -> Facts {
    Facts {
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
    }
}
