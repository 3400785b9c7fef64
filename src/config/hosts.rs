//! Host lists with globs (`*.github.com`), as used by `passthrough_hosts` and
//! `http1_only_hosts`.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A compiled set of host globs; matching is case-insensitive and a leading `*.` matches
/// any depth of subdomain but not the bare domain itself.
#[derive(Debug, Clone)]
pub struct HostSet {
    set: GlobSet,
    empty: bool,
}

impl HostSet {
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let p = p.trim().to_ascii_lowercase();
            if p.is_empty() {
                return Err("an empty host pattern matches nothing; remove it".into());
            }
            let glob = GlobBuilder::new(&p)
                .literal_separator(false)
                .build()
                .map_err(|e| format!("invalid host pattern {p:?}: {}", e.kind()))?;
            builder.add(glob);
        }
        let set = builder
            .build()
            .map_err(|e| format!("invalid host patterns: {e}"))?;
        Ok(HostSet {
            set,
            empty: patterns.is_empty(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.empty
    }

    pub fn matches(&self, host: &str) -> bool {
        if self.empty {
            return false;
        }
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            return self.set.is_match(host.to_ascii_lowercase());
        }
        self.set.is_match(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_subdomains_case_insensitively() {
        let set = HostSet::new(&["*.apple.com".into(), "example.test".into()]).unwrap();
        assert!(set.matches("api.apple.com"));
        assert!(set.matches("a.b.APPLE.com"));
        assert!(!set.matches("apple.com"));
        assert!(set.matches("example.test"));
        assert!(!set.matches("example.testing"));
        assert!(!HostSet::new(&[]).unwrap().matches("anything"));
    }
}
