//! The keyword prefilter: every occurrence of every rule keyword in a text, in one pass.
//!
//! A DFA walk is bound by latency, not by work: each byte's transition waits for the
//! previous one's table load. Walking four stretches of the text side by side in one loop
//! gives the CPU four independent chains to overlap, which is most of the speed of the
//! whole scanner on text without candidates. The automaton is aho-corasick's DFA; only
//! the walk is ours, through the crate's public `Automaton` interface.

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind};

/// Texts shorter than this are walked in one stretch (splitting costs a warm-up per lane).
const SPLIT_MIN: usize = 1024;
const LANES: usize = 4;

/// One automaton over every keyword (matched ignoring ASCII case) and, per keyword, the
/// rules carrying it and, for a keyword with upper-case letters, the exact bytes it must
/// have (`AKIA`, `SG.`): one pass over the text, not one per case mode.
pub(crate) struct Keywords {
    dfa: Option<DFA>,
    rules: Vec<Vec<u32>>,
    exact: Vec<Option<Vec<u8>>>,
    /// Longest keyword minus one: how far before its stretch a lane starts walking so that
    /// a keyword ending inside the stretch is seen whole.
    warmup: usize,
}

/// A keyword without upper-case letters matches ignoring case.
pub(crate) fn folds(keyword: &str) -> bool {
    !keyword.bytes().any(|b| b.is_ascii_uppercase())
}

impl Keywords {
    pub(crate) fn build(keywords: &[(String, Vec<u32>)]) -> Keywords {
        if keywords.is_empty() {
            return Keywords {
                dfa: None,
                rules: Vec::new(),
                exact: Vec::new(),
                warmup: 0,
            };
        }
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            // Without a prefilter, start states are not "special": the walk only stops
            // on matches.
            .prefilter(false)
            .start_kind(aho_corasick::StartKind::Unanchored)
            .build(keywords.iter().map(|(k, _)| k.as_bytes()))
            .expect("keywords build");
        Keywords {
            warmup: keywords.iter().map(|(k, _)| k.len()).max().unwrap_or(1) - 1,
            dfa: Some(dfa),
            rules: keywords.iter().map(|(_, r)| r.clone()).collect(),
            exact: keywords
                .iter()
                .map(|(k, _)| (!folds(k)).then(|| k.as_bytes().to_vec()))
                .collect(),
        }
    }

    /// Calls `each(start, end, rules)` for every keyword occurrence, overlapping ones
    /// included, in the order of their ends.
    pub(crate) fn for_each_hit(&self, hay: &[u8], mut each: impl FnMut(usize, usize, &[u32])) {
        let Some(dfa) = &self.dfa else { return };
        let mut expand = |sid: StateID, end: usize| {
            for i in 0..dfa.match_len(sid) {
                let pattern = dfa.match_pattern(sid, i);
                let k = pattern.as_usize();
                let start = end - dfa.pattern_len(pattern);
                if let Some(exact) = &self.exact[k]
                    && &hay[start..end] != exact.as_slice()
                {
                    continue;
                }
                each(start, end, &self.rules[k]);
            }
        };
        let start_sid = dfa.start_state(Anchored::No).expect("unanchored start");
        if hay.len() < SPLIT_MIN {
            walk(dfa, hay, 0, 0, start_sid, &mut expand);
            return;
        }
        // Lane j reports the keywords ending in (bounds[j], bounds[j + 1]], walking from
        // `warmup` bytes earlier so that a keyword straddling its left bound is seen whole.
        // Each lane keeps its match states in order; replaying the lanes one after the
        // other gives every hit in order.
        let stretch = hay.len() / LANES;
        let bound = |j: usize| if j == LANES { hay.len() } else { j * stretch };
        let mut at = [0usize; LANES];
        let mut sid = [start_sid; LANES];
        let mut found: [Vec<(StateID, usize)>; LANES] = Default::default();
        for (j, a) in at.iter_mut().enumerate() {
            *a = bound(j).saturating_sub(self.warmup);
        }
        // All lanes step together for as long as the shortest one has bytes.
        let common = (0..LANES).map(|j| bound(j + 1) - at[j]).min().unwrap_or(0);
        for _ in 0..common {
            for j in 0..LANES {
                let next = dfa.next_state(Anchored::No, sid[j], hay[at[j]]);
                sid[j] = next;
                at[j] += 1;
                if dfa.is_special(next) && at[j] > bound(j) {
                    found[j].push((next, at[j]));
                }
            }
        }
        for j in 0..LANES {
            for &(state, end) in &found[j] {
                expand(state, end);
            }
            walk(
                dfa,
                &hay[..bound(j + 1)],
                at[j],
                bound(j),
                sid[j],
                &mut expand,
            );
        }
    }
}

/// Walks `hay[from..]` from state `sid`, reporting matches that end past `report_after`.
fn walk(
    dfa: &DFA,
    hay: &[u8],
    from: usize,
    report_after: usize,
    mut sid: StateID,
    report: &mut impl FnMut(StateID, usize),
) {
    for (i, &b) in hay.iter().enumerate().skip(from) {
        sid = dfa.next_state(Anchored::No, sid, b);
        if dfa.is_special(sid) && i + 1 > report_after {
            report(sid, i + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(keywords: &[&str], hay: &[u8]) -> Vec<(usize, usize, Vec<u32>)> {
        let list: Vec<(String, Vec<u32>)> = keywords
            .iter()
            .enumerate()
            .map(|(i, k)| (k.to_string(), vec![i as u32]))
            .collect();
        let kw = Keywords::build(&list);
        let mut out = Vec::new();
        kw.for_each_hit(hay, |s, e, r| out.push((s, e, r.to_vec())));
        assert!(out.windows(2).all(|w| w[0].1 <= w[1].1), "in order of ends");
        out.sort();
        out
    }

    /// The reference: every occurrence by brute force.
    fn brute(keywords: &[&str], hay: &[u8]) -> Vec<(usize, usize, Vec<u32>)> {
        let mut out = Vec::new();
        for (i, k) in keywords.iter().enumerate() {
            let k = k.as_bytes();
            for s in 0..hay.len().saturating_sub(k.len() - 1) {
                let w = &hay[s..s + k.len()];
                let same = if folds(std::str::from_utf8(k).unwrap()) {
                    w.eq_ignore_ascii_case(k)
                } else {
                    w == k
                };
                if same {
                    out.push((s, s + k.len(), vec![i as u32]));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn finds_every_occurrence_across_lane_bounds() {
        let keywords = ["sk-", "sk-ant-api03-", "ant", "AKIA", "token", "x"];
        // Long enough to split, with keywords placed on and around every lane bound.
        let mut hay = vec![b'.'; 4099];
        for at in [
            0, 3, 1020, 1021, 1022, 1023, 1024, 2046, 2048, 3070, 3072, 4090,
        ] {
            let piece = b"sk-ant-api03-Token-akia-AKIAx";
            let end = (at + piece.len()).min(hay.len());
            hay[at..end].copy_from_slice(&piece[..end - at]);
        }
        assert_eq!(hits(&keywords, &hay), brute(&keywords, &hay));
        for len in [0, 1, 5, 1023, 1024, 1025, 2000] {
            assert_eq!(
                hits(&keywords, &hay[..len]),
                brute(&keywords, &hay[..len]),
                "len {len}"
            );
        }
    }
}
