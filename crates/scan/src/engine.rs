//! The matcher: one Aho-Corasick pass over the keywords of a set of rules, then each rule's
//! regex only inside windows around its own keyword hits, then verification.

use std::collections::HashMap;

use rustc_hash::FxHashSet;
use std::sync::{Arc, OnceLock, Weak};

use crate::catalogue::{Catalogue, Rule};
use crate::keywords::{Keywords, folds};
use crate::verify::{is_uuid, looks_like_hash_or_id, shannon_entropy};

/// The proper prefixes of the keywords (`AK`, `sk-an`), looked up by the bytes that end a
/// chunk: a set lookup per possible length instead of comparing every keyword.
struct PartialKeywords {
    /// Prefixes of case-folding keywords, lower-cased.
    folded: FxHashSet<Vec<u8>>,
    /// Prefixes of keywords with upper-case letters, as they are.
    exact: FxHashSet<Vec<u8>>,
    /// Bytes a keyword starts with (both cases for folding ones): most positions are
    /// rejected by this alone.
    first: [bool; 256],
    longest: usize,
}

impl PartialKeywords {
    fn new<'a>(keywords: impl Iterator<Item = &'a str>) -> Self {
        let mut p = PartialKeywords {
            folded: FxHashSet::default(),
            exact: FxHashSet::default(),
            first: [false; 256],
            longest: 0,
        };
        for k in keywords {
            let bytes = k.as_bytes();
            if let Some(&b) = bytes.first() {
                p.first[b as usize] = true;
                if folds(k) {
                    p.first[b.to_ascii_uppercase() as usize] = true;
                }
            }
            for n in 1..bytes.len() {
                if folds(k) {
                    p.folded.insert(bytes[..n].to_ascii_lowercase());
                } else {
                    p.exact.insert(bytes[..n].to_vec());
                }
                p.longest = p.longest.max(n);
            }
        }
        p
    }

    /// Where the longest keyword prefix ending `tail` starts, or `tail.len()`.
    fn start_in(&self, tail: &[u8]) -> usize {
        let len = tail.len();
        // Called on every chunk's end: no allocation unless a prefix is longer than this.
        let mut stack = [0u8; 64];
        let mut heap = Vec::new();
        for n in (1..=self.longest.min(len)).rev() {
            let end = &tail[len - n..];
            if !self.first[end[0] as usize] {
                continue;
            }
            if self.exact.contains(end) {
                return len - n;
            }
            let lower: &mut [u8] = if n <= stack.len() {
                &mut stack[..n]
            } else {
                heap.resize(n, 0);
                &mut heap[..]
            };
            for (l, b) in lower.iter_mut().zip(end) {
                *l = b.to_ascii_lowercase();
            }
            if self.folded.contains(&*lower) {
                return len - n;
            }
        }
        len
    }
}

/// See [`Engine::scan_all`].
const MERGE_GAP: usize = 256;

/// The windows being grown during one scan, per local rule: a table indexed by rule, and
/// the list of rules that have one (most scans touch a few rules of a catalogue of
/// hundreds). Kept per thread, so a scan allocates nothing.
#[derive(Default)]
struct Windows {
    table: Vec<Window>,
    touched: Vec<usize>,
}

/// A window's span, and whether a keyword in it can start a match (see `Rule::word_start`):
/// one that cannot is merged all the same, so that the windows, and what the regex finds
/// in them, stay what they are, but a window of such keywords alone is not searched.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Window {
    lo: usize,
    hi: usize,
    viable: bool,
}

const NO_WINDOW: Window = Window {
    lo: usize::MAX,
    hi: 0,
    viable: false,
};

impl Windows {
    fn reset(&mut self, rules: usize) {
        for &local in &self.touched {
            self.table[local] = NO_WINDOW;
        }
        self.touched.clear();
        if self.table.len() < rules {
            self.table.resize(rules, NO_WINDOW);
        }
    }

    /// Grows `local`'s window by `lo..hi`; returns the window it closes when `lo..hi` is
    /// too far from it to merge (that one is scanned now).
    fn grow(&mut self, local: usize, lo: usize, hi: usize, viable: bool) -> Option<Window> {
        let window = &mut self.table[local];
        if *window == NO_WINDOW {
            *window = Window { lo, hi, viable };
            self.touched.push(local);
            None
        } else if lo <= window.hi + MERGE_GAP {
            *window = Window {
                lo: window.lo.min(lo),
                hi: window.hi.max(hi),
                viable: window.viable || viable,
            };
            None
        } else {
            Some(std::mem::replace(window, Window { lo, hi, viable }))
        }
    }

    /// The windows still open, by local rule.
    fn open(&self) -> impl Iterator<Item = (usize, Window)> + '_ {
        self.touched.iter().map(|&l| (l, self.table[l]))
    }
}

thread_local! {
    static WINDOWS: std::cell::RefCell<Windows> = std::cell::RefCell::new(Windows::default());
}

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
    /// Every keyword in one automaton, matched ignoring case; a keyword with an upper-case
    /// letter (`AKIA`, `SG.`) is then checked for its exact case (one pass over the text,
    /// not two).
    keywords: Keywords,
    /// Per local rule: how far before a keyword its match can start.
    match_lead: Vec<usize>,
    /// The largest `match_lead`: what a stream must carry when no keyword is in sight.
    carry_lead: usize,
    /// Every proper prefix of every keyword, for spotting one cut off at a chunk's end.
    partials: PartialKeywords,
    /// The keywords and their local rules, for a walk shared with another engine.
    keyword_list: Vec<(String, Vec<u32>)>,
    /// The walk shared with the one other engine asked for (see [`Engine::paired_with`]),
    /// and that engine (held weakly: its allocation, and so its address, stays while this
    /// is kept).
    paired: OnceLock<(Weak<Engine>, Arc<PairedKeywords>)>,
    max_len: usize,
    /// How far a secret can start before its first keyword (a Mailchimp key's `-us` suffix
    /// comes after 32 secret characters).
    secret_lead: usize,
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
        // Family rules are found by their detectors, never by keywords and a pattern.
        let rules: Vec<usize> = (0..catalogue.rules.len())
            .filter(|&i| catalogue.rules[i].detector.is_none() && select(&catalogue.rules[i]))
            .collect();
        let mut by_keyword: HashMap<String, Vec<u32>> = HashMap::new();
        for (local, &global) in rules.iter().enumerate() {
            for kw in &catalogue.rules[global].keywords {
                let entry = by_keyword.entry(kw.clone()).or_default();
                if !entry.contains(&(local as u32)) {
                    entry.push(local as u32);
                }
            }
        }
        let mut keywords: Vec<(String, Vec<u32>)> = by_keyword.into_iter().collect();
        keywords.sort();
        let leads: Vec<(usize, usize)> =
            rules.iter().map(|&i| leads(&catalogue.rules[i])).collect();
        Engine {
            partials: PartialKeywords::new(keywords.iter().map(|(k, _)| k.as_str())),
            keywords: Keywords::build(&keywords),
            keyword_list: keywords.clone(),
            paired: OnceLock::new(),
            max_len: rules
                .iter()
                .map(|&i| catalogue.rules[i].max_len)
                .max()
                .unwrap_or(0),
            secret_lead: leads.iter().map(|l| l.1).max().unwrap_or(0),
            carry_lead: leads.iter().map(|l| l.0).max().unwrap_or(0),
            match_lead: leads.iter().map(|l| l.0).collect(),
            catalogue,
            rules,
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

    /// Where, in the unsent tail of a stream, bytes must be held back because a secret may
    /// still be forming there; `tail.len()` when nothing needs holding. A secret contains a
    /// keyword: hold from the earliest keyword in the tail (or one cut off at its end), back
    /// by the longest lead a secret has before its keyword; before any keyword is seen, a
    /// secret can only be the whitespace-free run at the very end.
    pub fn hold_from(&self, tail: &[u8]) -> usize {
        let len = tail.len();
        let mut anchor = len;
        self.keywords
            .for_each_hit(tail, |start, _, _| anchor = anchor.min(start));
        anchor = anchor.min(self.partial_keyword_at_end(tail));
        let floor = anchor.saturating_sub(self.secret_lead);
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

    /// Appends the verified findings in `hay` to `out`, in no particular order. A fallback
    /// rule's finding is dropped where a specific rule's finding covers the same bytes.
    pub fn scan(&self, hay: &[u8], out: &mut Vec<Finding>) {
        self.scan_with_carry(hay, out, hay.len());
    }

    /// [`Engine::scan`], also returning where a stream must start carrying text into its
    /// next chunk, judged on `hay[tail..]`: a match reaching into the next chunk contains a
    /// keyword, so it starts at most one lead before the earliest keyword in the tail (one
    /// cut off at the end included), or one lead before the end when there is none.
    pub fn scan_with_carry(&self, hay: &[u8], out: &mut Vec<Finding>, tail: usize) -> usize {
        self.scan_hits(Walk(&self.keywords, hay), hay, out, tail)
    }

    /// [`Engine::scan_with_carry`] with the keyword hits found already (by a walk shared
    /// with another engine, [`PairedKeywords::hits`]): (start, end, keyword) in the order of
    /// their ends, as this engine's own walk finds them, `rules` the local rules per keyword.
    pub(crate) fn scan_with_carry_listed(
        &self,
        hay: &[u8],
        out: &mut Vec<Finding>,
        tail: usize,
        hits: &[(usize, usize, u32)],
        rules: &[Vec<u32>],
    ) -> usize {
        self.scan_hits(Listed(hits, rules), hay, out, tail)
    }

    /// Builds now the keyword walk this engine shares with `other` on texts both scan (a
    /// response's secret and injection rules), which a [`crate::body::BodyScanner`] given
    /// both would otherwise build when it is created: at start-up, not on the first
    /// response (some 15 ms for the built-in catalogue). Only the first engine paired
    /// with is shared with.
    pub fn pair_with(&self, other: &Arc<Engine>) {
        let _ = self.paired_with(other);
    }

    /// The walk over the union of this engine's keywords and `other`'s, for texts both scan
    /// (built on first use; `None` for an engine other than the first one asked for).
    pub(crate) fn paired_with(&self, other: &Arc<Engine>) -> Option<Arc<PairedKeywords>> {
        let (partner, pair) = self.paired.get_or_init(|| {
            (
                Arc::downgrade(other),
                Arc::new(PairedKeywords::build(self, other)),
            )
        });
        Weak::ptr_eq(partner, &Arc::downgrade(other)).then(|| pair.clone())
    }

    fn scan_hits(&self, hits: impl Hits, hay: &[u8], out: &mut Vec<Finding>, tail: usize) -> usize {
        let first = out.len();
        let mut anchor = hay.len();
        self.scan_all(hits, hay, out, tail, &mut anchor);
        anchor = anchor
            .min(self.partial_keyword_at_end(&hay[tail.min(hay.len())..]) + tail.min(hay.len()));
        let carry_from = anchor.saturating_sub(self.carry_lead);
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
        carry_from
    }

    /// Start of a keyword prefix that ends `tail` (a keyword cut off by the chunk's end), or
    /// `tail.len()`.
    fn partial_keyword_at_end(&self, tail: &[u8]) -> usize {
        if tail.is_empty() {
            return 0;
        }
        self.partials.start_in(tail)
    }

    /// Windows of one rule closer than this are scanned as one: a regex search has a fixed
    /// cost worth about as many bytes of scanning (text dense with keywords pays it
    /// thousands of times per megabyte).
    fn scan_all(
        &self,
        hits: impl Hits,
        hay: &[u8],
        out: &mut Vec<Finding>,
        tail: usize,
        anchor: &mut usize,
    ) {
        if self.rules.is_empty() || hay.is_empty() {
            return;
        }
        // Per rule, the window being grown: from as far before a keyword as the rule's
        // match can start, to as far past it as the match can reach. Hits come in the
        // order of their ends, so a window closes as soon as a hit starts past it.
        let first = out.len();
        WINDOWS.with_borrow_mut(|windows| {
            windows.reset(self.rules.len());
            hits.each(|start, end, locals| {
                if start >= tail && start < *anchor {
                    *anchor = start;
                }
                for &local in locals {
                    let local = local as usize;
                    let global = self.rules[local];
                    let lo = start.saturating_sub(self.match_lead[local]);
                    // One byte past the longest match, so `\b` sees what follows it.
                    let rule = &self.catalogue.rules[global];
                    let hi = (end + rule.max_len + 1).min(hay.len());
                    let viable = !rule.word_start
                        || start == 0
                        || !(hay[start - 1].is_ascii_alphanumeric() || hay[start - 1] == b'_');
                    if let Some(w) = windows.grow(local, lo, hi, viable)
                        && w.viable
                    {
                        self.scan_window(global, hay, w.lo, w.hi, out);
                    }
                }
            });
            for (local, w) in windows.open() {
                if w.viable {
                    self.scan_window(self.rules[local], hay, w.lo, w.hi, out);
                }
            }
        });
        // A long keyword ending after a short one can open a window reaching back into one
        // already scanned: the same match found twice is one finding.
        if out.len() - first > 1 {
            out[first..].sort_unstable_by_key(|f| (f.rule, f.match_start, f.match_end));
            let mut kept = first + 1;
            for i in first + 1..out.len() {
                if out[i] != out[kept - 1] {
                    out[kept] = out[i];
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
    }

    fn scan_window(&self, global: usize, hay: &[u8], lo: usize, hi: usize, out: &mut Vec<Finding>) {
        let rule = &self.catalogue.rules[global];
        let text = &hay[..hi];
        let mut pos = lo;
        // Searching from `pos` in the whole text keeps the bytes before it as context, so
        // `\b` at the window's start means what it means in the text.
        while pos < hi {
            // The fast engines find a match; the slower capture engines then run only on
            // the matched bytes.
            let Some(m) = rule.regex.get().find_at(text, pos) else {
                break;
            };
            pos = if m.end() > m.start() {
                m.end()
            } else {
                m.start() + 1
            };
            if rule.fallback && !rule.hex_secrets && ends_with_hash_token(m.as_bytes()) {
                continue;
            }
            let Some(caps) = rule.regex.get().captures_at(&text[..m.end()], m.start()) else {
                continue;
            };
            let whole = caps.get(0).expect("group 0");
            let secret = rule.secret_group.and_then(|g| caps.get(g)).unwrap_or(whole);
            let value = secret.as_bytes();
            // Random hex tops out at 4 bits per character (32 characters: about 3.6), below
            // the floor set for base62 values; hex under a secret's name gets a hex floor.
            let hex_value =
                rule.hex_secrets && value.len() >= 32 && value.iter().all(u8::is_ascii_hexdigit);
            if let Some(floor) = rule.entropy
                && shannon_entropy(value) < if hex_value { floor.min(3.2) } else { floor }
            {
                continue;
            }
            if !rule.checksum.holds(value) {
                continue;
            }
            // Catch-alls see `"key": "<sha256>"` everywhere; hashes and ids are not secrets.
            // Under a name that says secret, hex is what secrets are generated as; a UUID is
            // still an id.
            let dropped = if rule.hex_secrets {
                is_uuid(value)
            } else {
                looks_like_hash_or_id(value)
            };
            if rule.fallback && (dropped || title_case_identifier(value)) {
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

/// Where the keyword hits of a scan come from.
trait Hits {
    /// Calls `each(start, end, local rules)` per hit, in the order of their ends.
    fn each(self, each: impl FnMut(usize, usize, &[u32]));
}

/// The engine's own walk over the text.
struct Walk<'a>(&'a Keywords, &'a [u8]);

impl Hits for Walk<'_> {
    #[inline(always)]
    fn each(self, each: impl FnMut(usize, usize, &[u32])) {
        self.0.for_each_hit(self.1, each);
    }
}

/// Hits found by a shared walk: (start, end, keyword), and the local rules per keyword.
struct Listed<'a>(&'a [(usize, usize, u32)], &'a [Vec<u32>]);

impl Hits for Listed<'_> {
    #[inline(always)]
    fn each(self, mut each: impl FnMut(usize, usize, &[u32])) {
        for &(start, end, k) in self.0 {
            each(start, end, &self.1[k as usize]);
        }
    }
}

/// One keyword walk for two engines that scan the same text (the secret rules and the
/// injection rules on a response whose clear text is its normalised text): one automaton
/// over the union of their keywords. Each engine's hits come out as its own walk finds
/// them, in the same order: the automaton reports the keywords ending at a byte longest
/// first (each its own state's, then its suffixes'), and keywords of one length ending at
/// one byte in the order of the sorted list, which both lists keep.
pub(crate) struct PairedKeywords {
    keywords: Keywords,
    /// Per keyword of the union, the local rules of each engine (none where it is not one
    /// of that engine's).
    rules: [Vec<Vec<u32>>; 2],
}

impl PairedKeywords {
    fn build(a: &Engine, b: &Engine) -> PairedKeywords {
        let mut union: std::collections::BTreeMap<&str, [Vec<u32>; 2]> = Default::default();
        for (side, engine) in [a, b].into_iter().enumerate() {
            for (keyword, rules) in &engine.keyword_list {
                union.entry(keyword.as_str()).or_default()[side] = rules.clone();
            }
        }
        let list: Vec<(String, Vec<u32>)> =
            union.keys().map(|k| (k.to_string(), Vec::new())).collect();
        let mut rules: [Vec<Vec<u32>>; 2] = Default::default();
        for [ra, rb] in union.into_values() {
            rules[0].push(ra);
            rules[1].push(rb);
        }
        PairedKeywords {
            keywords: Keywords::build(&list),
            rules,
        }
    }

    /// The local rules per keyword of engine `side` (0: the engine asked, 1: its partner).
    pub(crate) fn rules(&self, side: usize) -> &[Vec<u32>] {
        &self.rules[side]
    }

    /// Walks `hay` once. `hits[side]` gets the hits of engine `side` starting at or after
    /// `from[side]`, shifted by it: what that engine's walk of `hay[from[side]..]` finds.
    pub(crate) fn hits(
        &self,
        hay: &[u8],
        from: [usize; 2],
        hits: &mut [Vec<(usize, usize, u32)>; 2],
    ) {
        self.keywords.for_each_keyword(hay, |start, end, k| {
            for side in 0..2 {
                if start >= from[side] && !self.rules[side][k].is_empty() {
                    hits[side].push((start - from[side], end - from[side], k as u32));
                }
            }
        });
    }
}

/// `Win32_System_Memory`, `Win32_System_LibraryLoader`: capitalised words joined by underscores, a
/// name in code (a Windows API feature listed after `"Win32_Security_Credentials",`), not a
/// secret.
fn title_case_identifier(value: &[u8]) -> bool {
    let mut segments = 0;
    for seg in value.split(|&b| b == b'_') {
        // One or more capitalised words (`System`, `LibraryLoader`), then digits (`Win32`).
        let mut i = 0;
        let mut words = 0;
        while i < seg.len() && seg[i].is_ascii_uppercase() {
            let letters = seg[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_lowercase())
                .count();
            if letters == 0 {
                break;
            }
            i += 1 + letters;
            words += 1;
        }
        let word = words > 0 && seg[i..].iter().all(u8::is_ascii_digit);
        let number = !seg.is_empty() && seg.iter().all(u8::is_ascii_digit);
        if !(word || number) {
            return false;
        }
        segments += 1;
    }
    segments >= 2
}

/// Whether a catch-all's match ends with a hash or an id as its own token (after a quote or
/// whitespace, before at most one closing byte): its secret, which holds no quote or
/// whitespace, is then that token, and `looks_like_hash_or_id` would drop it. Deciding
/// this without the capture engines matters where `"sha": "<hex>"` is everywhere.
fn ends_with_hash_token(m: &[u8]) -> bool {
    let token_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-';
    let end = match m.last() {
        Some(b) if !token_byte(b) => m.len() - 1,
        _ => m.len(),
    };
    let start = m[..end]
        .iter()
        .rposition(|b| !token_byte(b))
        .map_or(0, |i| i + 1);
    start > 0
        && matches!(m[start - 1], b'"' | b'\'' | b' ' | b'\t' | b'\n' | b'\r')
        && looks_like_hash_or_id(&m[start..end])
}

/// The match lead of a rule (how far before its first keyword a match can start), for the
/// tests that check it against generated matches.
pub fn match_lead(rule: &Rule) -> usize {
    leads(rule).0
}

/// (match lead, secret lead) of a rule over its positive examples: the largest distance
/// from a match's start, and from its secret's start, to the first keyword in the match.
/// Keywords usually open a match (vendor prefixes), making both 0.
fn leads(rule: &Rule) -> (usize, usize) {
    let (mut match_lead, mut secret_lead) = (0, 0);
    // A compilation of its own, dropped at the end: measuring the examples at start-up
    // leaves no automaton or matcher cache behind in an idle proxy.
    let regex = rule.regex.fresh();
    for example in &rule.examples.positive {
        let text = example.as_bytes();
        for caps in regex.captures_iter(text) {
            let whole = caps.get(0).expect("group 0");
            let secret = rule.secret_group.and_then(|g| caps.get(g)).unwrap_or(whole);
            let m = &text[whole.start()..whole.end()];
            let first_keyword = rule
                .keywords
                .iter()
                .filter_map(|k| {
                    m.windows(k.len())
                        .position(|w| w.eq_ignore_ascii_case(k.as_bytes()))
                })
                .min();
            if let Some(pos) = first_keyword {
                match_lead = match_lead.max(pos);
                secret_lead = secret_lead.max((whole.start() + pos).saturating_sub(secret.start()));
            }
        }
    }
    // Examples show typical shapes, not every one. A short rule gets its whole length as
    // its lead (always enough); a long one (PEM blocks, JWTs: a keyword at or near the
    // start, a long body after) its measured lead plus a margin.
    const SHORT: usize = 450;
    let lead = match rule.lead {
        Some(known) => known.max(match_lead),
        None if rule.max_len <= SHORT => rule.max_len,
        None => match_lead + 64,
    };
    (lead, secret_lead)
}

#[cfg(test)]
mod tests {
    use super::{PartialKeywords, ends_with_hash_token};
    use crate::{Catalogue, Engine, RuleKind};
    use std::sync::Arc;

    const SECRETS: &str = include_str!("../../../rules/secrets.yaml");
    const INJECTIONS: &str = include_str!("../../../rules/injections.yaml");

    /// Text dense with the keywords of both engines (folding ones in random case), keyword
    /// prefixes, words and every rule's examples.
    fn keyword_soup(cat: &Catalogue, len: usize) -> Vec<u8> {
        let mut pieces: Vec<Vec<u8>> = Vec::new();
        for r in &cat.rules {
            for k in &r.keywords {
                pieces.push(k.as_bytes().to_vec());
                pieces.push(k.to_ascii_uppercase().into_bytes());
                pieces.push(k.as_bytes()[..k.len() - 1].to_vec());
            }
            pieces.extend(r.examples.positive.iter().map(|e| e.as_bytes().to_vec()));
        }
        for w in [" ", "\n", "\n", "x", "async ", "the ", "{\"a\":\""] {
            pieces.push(w.as_bytes().to_vec());
        }
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut text = Vec::new();
        while text.len() < len {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            text.extend_from_slice(&pieces[(rng % pieces.len() as u64) as usize]);
            if rng.is_multiple_of(5) {
                text.push(b' ');
            }
        }
        text
    }

    /// The catalogue and the two engines a response is scanned with (secrets; injections over
    /// normalised text).
    fn secret_and_injection_engines() -> (Arc<Catalogue>, Arc<Engine>, Arc<Engine>) {
        let cat = Arc::new(Catalogue::from_yaml(SECRETS, INJECTIONS).unwrap());
        let a = Arc::new(Engine::new(cat.clone(), |r| r.kind == RuleKind::Secret));
        let b = Arc::new(Engine::new(cat.clone(), |r| {
            r.kind == RuleKind::Injection && !r.raw
        }));
        (cat, a, b)
    }

    /// One walk over the union of two engines' keywords gives each engine the hits of its
    /// own walk, in the same order (ties at one end included), over the text or a suffix.
    #[test]
    fn a_paired_walk_finds_what_each_engine_walk_finds() {
        let (cat, a, b) = secret_and_injection_engines();
        let other = Arc::new(Engine::new(cat.clone(), |r| r.kind == RuleKind::Injection));
        let pair = a.paired_with(&b).expect("the first engine asked");
        assert!(
            a.paired_with(&other).is_none(),
            "only the engine paired first"
        );
        let text = keyword_soup(&cat, 300_000);
        for len in [0, 5, 1000, 1023, 1024, 5000, 300_000] {
            let text = &text[..len.min(text.len())];
            for from in [[0, 0], [0, 7], [13, 0], [0, 300], [200, 0]] {
                if from.iter().any(|&f| f > text.len()) {
                    continue;
                }
                let mut hits: [Vec<(usize, usize, u32)>; 2] = Default::default();
                pair.hits(text, from, &mut hits);
                for (side, engine) in [&a, &b].into_iter().enumerate() {
                    let mut expected = Vec::new();
                    engine
                        .keywords
                        .for_each_hit(&text[from[side]..], |s, e, r| {
                            expected.push((s, e, r.to_vec()))
                        });
                    let got: Vec<_> = hits[side]
                        .iter()
                        .map(|&(s, e, k)| (s, e, pair.rules(side)[k as usize].clone()))
                        .collect();
                    assert!(len < 100_000 || expected.len() > 1000);
                    assert_eq!(got, expected, "len {len} from {from:?} side {side}");
                }
            }
        }
    }

    /// Two stream scanners fed the same chunks with one walk report what each fed alone
    /// reports, and carry the same.
    #[test]
    fn paired_stream_scanners_find_what_each_finds() {
        use crate::stream::{StreamFinding, StreamScanner};
        let (cat, a, b) = secret_and_injection_engines();
        let pair = a.paired_with(&b).unwrap();
        let text = keyword_soup(&cat, 400_000);
        let mut total = 0;
        for chunk in [1000, 4093, 65536] {
            let (mut pa, mut pb) = (StreamScanner::new(a.clone()), StreamScanner::new(b.clone()));
            let (mut sa, mut sb) = (StreamScanner::new(a.clone()), StreamScanner::new(b.clone()));
            for piece in text.chunks(chunk) {
                let (mut x, mut y) = (Vec::<StreamFinding>::new(), Vec::new());
                assert!(StreamScanner::feed_paired(
                    &mut pa,
                    &mut pb,
                    &pair,
                    piece,
                    [&mut x, &mut y]
                ));
                let (mut x2, mut y2) = (Vec::new(), Vec::new());
                sa.feed(piece, &mut x2);
                sb.feed(piece, &mut y2);
                assert_eq!((&x, &y), (&x2, &y2), "chunk {chunk}");
                assert_eq!((pa.carry(), pb.carry()), (sa.carry(), sb.carry()));
                assert_eq!(pa.window(), sa.window());
                assert_eq!(pb.window(), sb.window());
                total += x.len() + y.len();
            }
        }
        assert!(total > 1000, "only {total} findings");
    }

    /// Skipping windows whose keywords all follow a word byte (`Rule::word_start`) finds
    /// what searching them finds, with every rule's examples glued to word bytes or not,
    /// among keyword-laden words (`async ` holds `nc `), at several chunk sizes.
    #[test]
    fn skipping_windows_without_a_word_start_finds_the_same() {
        let pruned = Arc::new(Catalogue::from_yaml(SECRETS, INJECTIONS).unwrap());
        let mut full = Catalogue::from_yaml(SECRETS, INJECTIONS).unwrap();
        assert!(
            full.rules
                .iter()
                .any(|r| r.id == "reverse_shell" && r.word_start),
            "reverse_shell starts at a word boundary"
        );
        for r in &mut full.rules {
            r.word_start = false;
        }
        let full = Arc::new(full);
        let mut pieces: Vec<String> = [
            "async ",
            "nc ",
            "nc.",
            "ncat",
            "netcat",
            " -e /bin/sh ",
            "x",
            "_",
            " ",
            "\n",
            "\n",
            "sync.",
            "abc-",
            "ghp_",
            "sk-",
            "token",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for r in &pruned.rules {
            pieces.extend(r.examples.positive.iter().cloned());
        }
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut text = String::new();
        while text.len() < 400_000 {
            text.push_str(&pieces[(next() % pieces.len() as u64) as usize]);
        }
        let mut checked = 0;
        for kind in [RuleKind::Secret, RuleKind::Injection] {
            let a = Engine::new(pruned.clone(), |r| r.kind == kind);
            let b = Engine::new(full.clone(), |r| r.kind == kind);
            for chunk in [700, 4093, 65536] {
                for piece in text.as_bytes().chunks(chunk) {
                    let (mut x, mut y) = (Vec::new(), Vec::new());
                    let cx = a.scan_with_carry(piece, &mut x, piece.len() / 2);
                    let cy = b.scan_with_carry(piece, &mut y, piece.len() / 2);
                    x.sort_by_key(|f| (f.rule, f.start, f.end, f.match_start, f.match_end));
                    y.sort_by_key(|f| (f.rule, f.start, f.end, f.match_start, f.match_end));
                    assert_eq!(x, y);
                    assert_eq!(cx, cy);
                    checked += x.len();
                }
            }
        }
        assert!(checked > 1000, "only {checked} findings");
    }

    #[test]
    fn a_keyword_cut_off_at_the_end_is_found_by_its_longest_prefix() {
        let p = PartialKeywords::new(["sk-ant-api03-", "AKIA", "ghp_"].into_iter());
        assert_eq!(p.start_in(b"my key is sk-an"), 10);
        assert_eq!(
            p.start_in(b"my key is SK-AN"),
            10,
            "folding keywords ignore case"
        );
        assert_eq!(p.start_in(b"id AK"), 3);
        assert_eq!(p.start_in(b"id ak"), 5, "AKIA keeps its case");
        assert_eq!(p.start_in(b"token gh"), 6);
        assert_eq!(p.start_in(b"nothing here"), 12);
        assert_eq!(p.start_in(b""), 0);
        assert_eq!(
            p.start_in(b"ghp_"),
            4,
            "a whole keyword is not a partial one"
        );
    }

    #[test]
    fn a_hash_token_is_recognised_only_as_a_whole_token() {
        let hex64 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert!(ends_with_hash_token(
            format!("\"token\":\"{hex64}\"").as_bytes()
        ));
        assert!(ends_with_hash_token(format!("token: {hex64}\n").as_bytes()));
        assert!(ends_with_hash_token(
            b"secret = '123e4567-e89b-12d3-a456-426614174000'"
        ));
        // Glued to something else, the secret is not the hash alone.
        assert!(!ends_with_hash_token(format!("token={hex64}").as_bytes()));
        assert!(!ends_with_hash_token(
            format!("password=x:{hex64}").as_bytes()
        ));
        assert!(!ends_with_hash_token(
            format!("\"token\":\"a{hex64}\"").as_bytes()
        ));
        assert!(!ends_with_hash_token(
            b"\"token\":\"sk_live_51Habcdef0123\""
        ));
    }
}
