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
    table: Option<Table>,
    rules: Vec<Vec<u32>>,
    exact: Vec<Option<Vec<u8>>>,
    /// Longest keyword minus one: how far before its stretch a lane starts walking so that
    /// a keyword ending inside the stretch is seen whole.
    warmup: usize,
}

/// aho-corasick's DFA copied into a flat table that the walk reads without bounds checks or
/// calls: the next state is `next[state + class[byte]]`, states numbered by their offset in
/// `next`, match states first, so a state is a match state when it is below `match_limit`.
/// The copy is the same automaton (every state reachable from the unanchored start, with
/// its transitions and its matches in the automaton's order): the hits are the same, in the
/// same order. Only the walk's speed changes: a step is one load, an add and a compare, and
/// four lanes' states stay in registers (through the crate's `Automaton` interface the
/// compiler spilled them, and each step paid a bounds check).
struct Table {
    next: Vec<u32>,
    class: [u8; 256],
    start: u32,
    match_limit: u32,
    /// Per match state (its offset divided by the stride): (keyword, its length), in the
    /// order the automaton reports them.
    matches: Vec<Vec<(u32, u32)>>,
    stride: u32,
}

impl Table {
    fn from_dfa(dfa: &DFA) -> Table {
        let start = dfa.start_state(Anchored::No).expect("unanchored start");
        // Every state reachable from the start, in the order found.
        let mut index: rustc_hash::FxHashMap<StateID, usize> = Default::default();
        let mut states = vec![start];
        index.insert(start, 0);
        let mut i = 0;
        while i < states.len() {
            let sid = states[i];
            for b in 0..=255u8 {
                let next = dfa.next_state(Anchored::No, sid, b);
                index.entry(next).or_insert_with(|| {
                    states.push(next);
                    states.len() - 1
                });
            }
            i += 1;
        }
        // Bytes that lead every state to the same place are one class.
        let mut classes: rustc_hash::FxHashMap<Vec<u32>, u8> = Default::default();
        let mut class = [0u8; 256];
        let mut representatives = Vec::new();
        for b in 0..=255u8 {
            let column: Vec<u32> = states
                .iter()
                .map(|&sid| index[&dfa.next_state(Anchored::No, sid, b)] as u32)
                .collect();
            let n = classes.len();
            class[usize::from(b)] = *classes.entry(column).or_insert_with(|| {
                representatives.push(b);
                u8::try_from(n).expect("at most 256 classes")
            });
        }
        // Match states first.
        let mut order: Vec<usize> = (0..states.len()).collect();
        order.sort_by_key(|&i| !dfa.is_match(states[i]));
        let mut renumber = vec![0u32; states.len()];
        for (new, &old) in order.iter().enumerate() {
            renumber[old] = new as u32;
        }
        let stride = representatives.len() as u32;
        let matching = order
            .iter()
            .take_while(|&&i| dfa.is_match(states[i]))
            .count();
        let mut next = vec![0u32; states.len() * stride as usize];
        let mut matches = Vec::with_capacity(matching);
        for (new, &old) in order.iter().enumerate() {
            let sid = states[old];
            for (c, &b) in representatives.iter().enumerate() {
                let to = index[&dfa.next_state(Anchored::No, sid, b)];
                next[new * stride as usize + c] = renumber[to] * stride;
            }
            if new < matching {
                matches.push(
                    (0..dfa.match_len(sid))
                        .map(|m| {
                            let pattern = dfa.match_pattern(sid, m);
                            (pattern.as_u32(), dfa.pattern_len(pattern) as u32)
                        })
                        .collect(),
                );
            }
        }
        Table {
            next,
            class,
            start: renumber[0] * stride,
            match_limit: matching as u32 * stride,
            matches,
            stride,
        }
    }

    #[inline(always)]
    fn step(&self, state: u32, byte: u8) -> u32 {
        let at = state as usize + usize::from(self.class[usize::from(byte)]);
        debug_assert!(at < self.next.len());
        // SAFETY: `state` is a state's offset (the start, or read from `next`, which holds
        // only offsets of states), below `next.len()` by at least the stride, and classes
        // are below the stride.
        unsafe { *self.next.get_unchecked(at) }
    }
}

/// A keyword without upper-case letters matches ignoring case.
pub(crate) fn folds(keyword: &str) -> bool {
    !keyword.bytes().any(|b| b.is_ascii_uppercase())
}

impl Keywords {
    pub(crate) fn build(keywords: &[(String, Vec<u32>)]) -> Keywords {
        if keywords.is_empty() {
            return Keywords {
                table: None,
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
            // The DFA itself is dropped: the table is all the walk needs.
            table: Some(Table::from_dfa(&dfa)),
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
        self.for_each_keyword(hay, |start, end, k| each(start, end, &self.rules[k]));
    }

    /// [`Keywords::for_each_hit`] with the keyword's index in the list built from.
    pub(crate) fn for_each_keyword(&self, hay: &[u8], mut each: impl FnMut(usize, usize, usize)) {
        let Some(table) = &self.table else { return };
        let mut expand = |state: u32, end: usize| {
            for &(k, len) in &table.matches[(state / table.stride) as usize] {
                let k = k as usize;
                let start = end - len as usize;
                if let Some(exact) = &self.exact[k]
                    && &hay[start..end] != exact.as_slice()
                {
                    continue;
                }
                each(start, end, k);
            }
        };
        if hay.len() < SPLIT_MIN {
            walk(table, hay, 0, 0, table.start, &mut expand);
            return;
        }
        // Lane j reports the keywords ending in (bounds[j], bounds[j + 1]], walking from
        // `warmup` bytes earlier so that a keyword straddling its left bound is seen whole.
        // Each lane keeps its match states in order; replaying the lanes one after the
        // other gives every hit in order.
        let stretch = hay.len() / LANES;
        let bound = |j: usize| if j == LANES { hay.len() } else { j * stretch };
        let mut at = [0usize; LANES];
        let mut found: [Vec<(u32, usize)>; LANES] = Default::default();
        for (j, a) in at.iter_mut().enumerate() {
            *a = bound(j).saturating_sub(self.warmup);
        }
        // All lanes step together for as long as the shortest one has bytes.
        let common = (0..LANES).map(|j| bound(j + 1) - at[j]).min().unwrap_or(0);
        let lane = |j: usize| &hay[at[j]..at[j] + common];
        let lanes: [&[u8]; LANES] = std::array::from_fn(lane);
        let mut on_match = |i: usize, states: [u32; LANES]| {
            for (j, state) in states.into_iter().enumerate() {
                let end = at[j] + i + 1;
                if state < table.match_limit && end > bound(j) {
                    found[j].push((state, end));
                }
            }
        };
        let s = walk_lanes(table, lanes, &mut on_match);
        for j in 0..LANES {
            for &(state, end) in &found[j] {
                expand(state, end);
            }
            walk(
                table,
                &hay[..bound(j + 1)],
                at[j] + common,
                bound(j),
                s[j],
                &mut expand,
            );
        }
    }
}

/// Walks four stretches of equal length side by side from the start state, calling
/// `on_match(i, states)` when a lane is in a match state after byte `i`; returns the states.
/// Kept apart from its caller so that the four states, the four stretches and the table stay
/// in registers (otherwise each step waits on a store and a load of its state).
#[inline(never)]
fn walk_lanes(
    table: &Table,
    lanes: [&[u8]; LANES],
    on_match: &mut dyn FnMut(usize, [u32; LANES]),
) -> [u32; LANES] {
    let mut s = [table.start; LANES];
    let limit = table.match_limit;
    let len = lanes.iter().map(|l| l.len()).min().unwrap_or(0);
    let lanes = lanes.map(|l| &l[..len]);
    // Byte `i` of every lane in one step: the lanes cut to one length, the index needs no
    // bounds check.
    #[allow(clippy::needless_range_loop)]
    for i in 0..len {
        for j in 0..LANES {
            s[j] = table.step(s[j], lanes[j][i]);
        }
        if s.iter().fold(u32::MAX, |a, &b| a.min(b)) < limit {
            on_match(i, s);
        }
    }
    s
}

/// Walks `hay[from..]` from `state`, reporting matches that end past `report_after`.
fn walk(
    table: &Table,
    hay: &[u8],
    from: usize,
    report_after: usize,
    mut state: u32,
    report: &mut impl FnMut(u32, usize),
) {
    for (i, &b) in hay.iter().enumerate().skip(from) {
        state = table.step(state, b);
        if state < table.match_limit && i + 1 > report_after {
            report(state, i + 1);
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

    /// The walk of the copied table reports what aho-corasick's own overlapping search
    /// reports, in the same order (ties at one end included), on text dense with keywords
    /// and keyword prefixes, on every lane bound.
    #[test]
    fn the_table_walk_is_the_automaton_walk() {
        let keywords = [
            "sk-",
            "sk-ant-api03-",
            "ant",
            "api",
            "AKIA",
            "akia",
            "token",
            "oke",
            "ken",
            "-----begin",
            "begin",
            "gin",
            "you",
            "ou ",
            "SG.",
            "sg.x",
        ];
        let ac = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(keywords)
            .unwrap();
        let list: Vec<(String, Vec<u32>)> = keywords
            .iter()
            .enumerate()
            .map(|(i, k)| (k.to_string(), vec![i as u32]))
            .collect();
        let kw = Keywords::build(&list);
        let pieces: [&[u8]; 12] = [
            b"sk-ant-api03-",
            b"AKIA",
            b"akia",
            b"TOKEN",
            b"-----BEGIN",
            b"you ",
            b"SG.x",
            b"sk-",
            b"beGIN",
            b" ",
            b"x",
            b"\xff",
        ];
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for len in [0, 3, 100, 1023, 1024, 1025, 4096, 10_000] {
            let mut hay = Vec::new();
            while hay.len() < len {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                hay.extend_from_slice(pieces[(rng % pieces.len() as u64) as usize]);
            }
            hay.truncate(len);
            let mut expected = Vec::new();
            for m in ac.find_overlapping_iter(&hay) {
                let k = m.pattern().as_usize();
                let exact = !folds(keywords[k]);
                if !exact || &hay[m.start()..m.end()] == keywords[k].as_bytes() {
                    expected.push((m.start(), m.end(), k as u32));
                }
            }
            let mut got = Vec::new();
            kw.for_each_hit(&hay, |s, e, r| got.push((s, e, r[0])));
            assert_eq!(got, expected, "len {len}");
        }
    }
}
