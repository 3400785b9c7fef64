//! The matcher: one Aho-Corasick pass over the keywords of a set of rules, then each rule's
//! regex only inside windows around its own keyword hits, then verification.

use std::collections::HashMap;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

use crate::catalogue::{Catalogue, Rule};
use crate::verify::shannon_entropy;

/// A verified match. `start..end` is the secret (the `secret` group, or the whole match);
/// `match_start..match_end` the whole match. Offsets are into the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// Index of the rule in the catalogue.
    pub rule: usize,
    pub start: usize,
    pub end: usize,
    pub match_start: usize,
    pub match_end: usize,
}

/// A compiled matcher over a subset of the catalogue's rules.
pub struct Engine {
    catalogue: Arc<Catalogue>,
    /// Catalogue indices of the rules this engine runs.
    rules: Vec<usize>,
    keywords: AhoCorasick,
    /// For each keyword, the (local) rules that carry it.
    keyword_rules: Vec<Vec<u32>>,
    max_len: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.len())
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl Engine {
    /// An engine running the rules `select` accepts.
    pub fn new(catalogue: Arc<Catalogue>, select: impl Fn(&Rule) -> bool) -> Engine {
        let rules: Vec<usize> = (0..catalogue.rules.len())
            .filter(|&i| select(&catalogue.rules[i]))
            .collect();
        let mut keyword_index: HashMap<String, usize> = HashMap::new();
        let mut keyword_rules: Vec<Vec<u32>> = Vec::new();
        for (local, &global) in rules.iter().enumerate() {
            for kw in &catalogue.rules[global].keywords {
                let idx = *keyword_index.entry(kw.clone()).or_insert_with(|| {
                    keyword_rules.push(Vec::new());
                    keyword_rules.len() - 1
                });
                if !keyword_rules[idx].contains(&(local as u32)) {
                    keyword_rules[idx].push(local as u32);
                }
            }
        }
        let mut patterns: Vec<(usize, String)> =
            keyword_index.into_iter().map(|(k, i)| (i, k)).collect();
        patterns.sort();
        // A DFA: the fastest kind, worth its build time and memory past ~100 patterns.
        let keywords = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(patterns.iter().map(|(_, k)| k.as_bytes()))
            .expect("keywords build");
        let max_len = rules
            .iter()
            .map(|&i| catalogue.rules[i].max_len)
            .max()
            .unwrap_or(0);
        Engine {
            catalogue,
            rules,
            keywords,
            keyword_rules,
            max_len,
        }
    }

    pub fn catalogue(&self) -> &Arc<Catalogue> {
        &self.catalogue
    }

    /// The longest match any rule can produce: the carry-over a streaming scan needs.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Appends the verified findings in `hay` to `out`, in no particular order.
    pub fn scan(&self, hay: &[u8], out: &mut Vec<Finding>) {
        if self.rules.is_empty() || hay.is_empty() {
            return;
        }
        // (local rule, window start, window end) for every keyword hit.
        let mut windows: Vec<(u32, usize, usize)> = Vec::new();
        for hit in self.keywords.find_overlapping_iter(hay) {
            for &local in &self.keyword_rules[hit.pattern().as_usize()] {
                let max_len = self.catalogue.rules[self.rules[local as usize]].max_len;
                windows.push((
                    local,
                    hit.start().saturating_sub(max_len),
                    // One byte past the longest match, so `\b` sees what follows it.
                    (hit.end() + max_len + 1).min(hay.len()),
                ));
            }
        }
        if windows.is_empty() {
            return;
        }
        windows.sort_unstable();
        let mut i = 0;
        while i < windows.len() {
            let (local, lo, mut hi) = windows[i];
            let mut j = i + 1;
            while j < windows.len() && windows[j].0 == local && windows[j].1 <= hi {
                hi = hi.max(windows[j].2);
                j += 1;
            }
            self.scan_window(self.rules[local as usize], hay, lo, hi, out);
            i = j;
        }
    }

    fn scan_window(&self, global: usize, hay: &[u8], lo: usize, hi: usize, out: &mut Vec<Finding>) {
        let rule = &self.catalogue.rules[global];
        let text = &hay[..hi];
        let mut pos = lo;
        // `captures_at` keeps the bytes before `lo` as context, so `\b` at the window's
        // start means what it means in the whole text.
        while pos < hi {
            let Some(caps) = rule.regex.captures_at(text, pos) else {
                break;
            };
            let whole = caps.get(0).expect("group 0");
            pos = if whole.end() > whole.start() {
                whole.end()
            } else {
                whole.start() + 1
            };
            let secret = rule.secret_group.and_then(|g| caps.get(g)).unwrap_or(whole);
            let value = secret.as_bytes();
            if let Some(floor) = rule.entropy
                && shannon_entropy(value) < floor
            {
                continue;
            }
            if !rule.checksum.holds(value) {
                continue;
            }
            out.push(Finding {
                rule: global,
                start: secret.start(),
                end: secret.end(),
                match_start: whole.start(),
                match_end: whole.end(),
            });
        }
    }
}
