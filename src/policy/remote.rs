//! `policy.source`: rules a fleet shares, served as `{"rules": [...]}`. This file keeps the
//! active set and turns a fetched document into it; the fetching (at start and every
//! `refresh_secs`, with the internal HTTP client) is the server's. A failed pull keeps the
//! last good set; until one has loaded, everything is blocked (see `Policy::decide`).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::rule::{Rule, compile_rules};
use crate::config::policy::RawRule;

/// The largest rule document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    rules: Vec<RawRule>,
}

pub struct RemoteRules {
    url: String,
    refresh: Duration,
    rules: ArcSwapOption<Vec<Rule>>,
    count: AtomicUsize,
    digest: Mutex<Option<String>>,
}

/// What a fetched document did to the active set.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The same document as the active one.
    Unchanged,
    /// A new set is active: its rule count and digest.
    Replaced { rules: usize, digest: String },
}

impl RemoteRules {
    pub fn new(url: String, refresh: Duration) -> Self {
        RemoteRules {
            url,
            refresh,
            rules: ArcSwapOption::empty(),
            count: AtomicUsize::new(0),
            digest: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    /// The active set; `None` until one has loaded.
    pub fn rules(&self) -> Option<Arc<Vec<Rule>>> {
        self.rules.load_full()
    }

    pub fn rule_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Parses and compiles a fetched document; a set that differs from the active one
    /// replaces it. A bad document changes nothing.
    pub fn apply(&self, body: &[u8]) -> Result<Applied, String> {
        let digest = crate::config::sha256_hex(body);
        let mut current = self.digest.lock().unwrap_or_else(|p| p.into_inner());
        if current.as_deref() == Some(digest.as_str()) {
            return Ok(Applied::Unchanged);
        }
        let doc: Document = serde_json::from_slice(body)
            .map_err(|e| format!("not a {{\"rules\": [...]}} document: {e}"))?;
        let compiled = compile_rules(&doc.rules).map_err(|(i, m)| format!("rules[{i}]: {m}"))?;
        let rules = compiled.len();
        self.count.store(rules, Ordering::Relaxed);
        self.rules.store(Some(Arc::new(compiled)));
        *current = Some(digest.clone());
        Ok(Applied::Replaced { rules, digest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_replaces_the_set_once_and_a_bad_one_changes_nothing() {
        let remote = RemoteRules::new("http://x/".into(), Duration::from_secs(1));
        assert!(remote.rules().is_none());
        let doc = br#"{"rules":[{"name":"r","match":"request.host == \"a\"","action":"block"}]}"#;
        assert!(matches!(
            remote.apply(doc),
            Ok(Applied::Replaced { rules: 1, .. })
        ));
        assert_eq!(remote.apply(doc), Ok(Applied::Unchanged));
        let err = remote
            .apply(br#"{"rules":[{"name":"r","match":"request.host ==","action":"block"}]}"#)
            .unwrap_err();
        assert!(err.starts_with("rules[0]: rule \"r\""), "{err}");
        assert!(remote.apply(b"[]").is_err());
        assert_eq!(remote.rule_count(), 1);
    }
}
