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
    /// Keywords as bytes (lower case), for spotting one cut off at the end of a chunk.
    keyword_bytes: Vec<Vec<u8>>,
    max_len: usize,
    /// How far a secret can start before its first keyword (from the rules' examples: a
    /// Mailchimp key's `-us` suffix, say, comes after 32 secret characters).
    lead: usize,
}

/// The largest distance from a secret's start to its rule's first keyword, over the rule's
/// positive examples (0 when the secret starts at or after its keyword).
fn secret_lead(rule: &Rule) -> usize {
    let mut lead = 0;
    for example in &rule.examples.positive {
        let text = example.as_bytes();
        for caps in rule.regex.captures_iter(text) {
            let whole = caps.get(0).expect("group 0");
            let secret = rule.secret_group.and_then(|g| caps.get(g)).unwrap_or(whole);
            let m = &text[whole.start()..whole.end()];
            let first_kw = rule
                .keywords
                .iter()
                .filter_map(|k| {
                    m.windows(k.len())
                        .position(|w| w.eq_ignore_ascii_case(k.as_bytes()))
                })
                .min();
            if let Some(pos) = first_kw {
                let kw_at = whole.start() + pos;
                lead = lead.max(kw_at.saturating_sub(secret.start()));
            }
        }
    }
    lead
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
        let lead = rules
            .iter()
            .map(|&i| secret_lead(&catalogue.rules[i]))
            .max()
            .unwrap_or(0);
        Engine {
            catalogue,
            rules,
            keywords,
            keyword_rules,
            keyword_bytes: patterns
                .iter()
                .map(|(_, k)| k.as_bytes().to_vec())
                .collect(),
            max_len,
            lead,
        }
    }

    /// Where, in the unsent tail of a stream, bytes must be held back because a secret may
    /// still be forming there; `tail.len()` when nothing needs holding. A secret contains a
    /// keyword: hold from the earliest keyword in the tail (or one cut off at its end), back
    /// by the longest lead a secret has before its keyword; before any keyword is seen, a
    /// secret can only be the whitespace-free run at the very end.
    pub fn hold_from(&self, tail: &[u8]) -> usize {
        let len = tail.len();
        let mut anchor = len;
        if let Some(hit) = self.keywords.find_overlapping_iter(tail).next() {
            anchor = hit.start();
        }
        for kw in &self.keyword_bytes {
            for k in (1..kw.len()).rev() {
                if k <= len && len - k < anchor && tail[len - k..].eq_ignore_ascii_case(&kw[..k]) {
                    anchor = len - k;
                    break;
                }
            }
        }
        let floor = anchor.saturating_sub(self.lead);
        let after_space = tail[..anchor]
            .iter()
            .rposition(|b| b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        if anchor == len {
            // No keyword yet: only a run that may be the start of a secret is held.
            floor.max(after_space)
        } else {
            // A keyword: hold from it, and from the lead before it unless whitespace ends that.
            floor.max(after_space.min(anchor))
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

    /// Appends the verified findings in `hay` to `out`, in no particular order. A fallback
    /// rule's finding is dropped where a specific rule's finding covers the same bytes.
    pub fn scan(&self, hay: &[u8], out: &mut Vec<Finding>) {
        let first = out.len();
        self.scan_all(hay, out);
        let rules = &self.catalogue.rules;
        if out[first..].iter().any(|f| rules[f.rule].fallback) {
            let specific: Vec<(usize, usize)> = out[first..]
                .iter()
                .filter(|f| !rules[f.rule].fallback)
                .map(|f| (f.match_start, f.match_end))
                .collect();
            let mut i = first;
            while i < out.len() {
                let f = out[i];
                if rules[f.rule].fallback && specific.iter().any(|&(s, e)| f.start < e && s < f.end)
                {
                    out.swap_remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    fn scan_all(&self, hay: &[u8], out: &mut Vec<Finding>) {
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
            // Catch-alls see `"key": "<sha256>"` everywhere; hashes and ids are not secrets.
            if rule.fallback && crate::verify::looks_like_hash_or_id(value) {
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
