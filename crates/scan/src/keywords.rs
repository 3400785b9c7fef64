//! The keyword prefilter: every occurrence of every rule keyword in a text, in one pass.
//!
//! A DFA walk is bound by latency, not by work: each byte's transition waits for the
//! previous one's table load. Walking four stretches of the text side by side in one loop
//! gives the CPU four independent chains to overlap, which is most of the speed of the
//! whole scanner on text without candidates. The automaton is aho-corasick's DFA; only
//! the walk is ours, through the crate's public `Automaton` interface.
//!
//! Where the CPU has AVX-512 VBMI, eight stretches are walked side by side: the bytes'
//! classes are looked up 64 at a time by vector permutes beforehand, so that a step of a lane
//! loads its class from one buffer (one pointer for all lanes) and then the table, and eight
//! states fit in registers. Elsewhere, four lanes (each step also loads the byte itself).

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind};

/// Texts shorter than this are walked in one stretch (splitting costs a warm-up per lane).
const SPLIT_MIN: usize = 1024;
const LANES: usize = 4;
/// Lanes of the walk with classes looked up beforehand, and the steps looked up at once.
const WIDE: usize = 8;
const BLOCK: usize = 64;

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
/// `next`, match states last, from `match_from`, a power of two (the rows before it that no
/// state has are never touched, so never resident): a state is a match state when it has a
/// bit at or above `match_from`'s, and several lanes are tested with one OR. Offsets are
/// unsigned, so that a step's address needs no sign extension.
/// The copy is the same automaton (every state reachable from the unanchored start, with
/// its transitions and its matches in the automaton's order): the hits are the same, in the
/// same order. Only the walk's speed changes: a step is one load, an add and a compare, and
/// four lanes' states stay in registers (through the crate's `Automaton` interface the
/// compiler spilled them, and each step paid a bounds check).
struct Table {
    next: Vec<u32>,
    class: [u8; 256],
    start: u32,
    /// The offset of the first match state.
    match_from: u32,
    /// Per match state (its offset less `match_from`, divided by the stride): (keyword, its
    /// length), in the order the automaton reports them.
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
        // Match states last (a stable sort: the start stays the first state).
        let mut order: Vec<usize> = (0..states.len()).collect();
        order.sort_by_key(|&i| dfa.is_match(states[i]));
        let stride = representatives.len() as u32;
        let plain = order
            .iter()
            .take_while(|&&i| !dfa.is_match(states[i]))
            .count();
        let match_from = (plain as u32 * stride).next_power_of_two();
        let offset = |new: usize| {
            if new < plain {
                new as u32 * stride
            } else {
                match_from + (new - plain) as u32 * stride
            }
        };
        let mut renumber = vec![0u32; states.len()];
        for (new, &old) in order.iter().enumerate() {
            renumber[old] = offset(new);
        }
        let size = match_from as usize + (states.len() - plain) * stride as usize;
        let mut next = vec![0u32; size];
        let mut matches = Vec::with_capacity(states.len() - plain);
        for (new, &old) in order.iter().enumerate() {
            let sid = states[old];
            let row = offset(new) as usize;
            for (c, &b) in representatives.iter().enumerate() {
                let to = index[&dfa.next_state(Anchored::No, sid, b)];
                next[row + c] = renumber[to];
            }
            if new >= plain {
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
            start: renumber[0],
            match_from,
            matches,
            stride,
        }
    }

    #[inline(always)]
    fn step(&self, state: u32, byte: u8) -> u32 {
        // SAFETY: as `step_from`.
        unsafe { step_from(self.next.as_ptr(), state, self.class[usize::from(byte)]) }
    }

    #[inline(always)]
    fn is_match(&self, state: u32) -> bool {
        state >= self.match_from
    }

    /// Whether any of `states` is a match state (one OR: `match_from` is a power of two).
    #[inline(always)]
    fn any_match<const L: usize>(&self, states: &[u32; L]) -> bool {
        states.iter().fold(0, |a, &b| a | b) >= self.match_from
    }

    /// The keywords ending where the walk is in `state`, a match state.
    fn matches_of(&self, state: u32) -> &[(u32, u32)] {
        &self.matches[((state - self.match_from) / self.stride) as usize]
    }
}

/// The state after `state` on a byte of class `class`, `next` being [`Table::next`]'s.
///
/// SAFETY: `state` is a state of the table (its start, or read from it, which holds only
/// states): its offset plus a class is within the table, as classes are below the stride.
#[inline(always)]
unsafe fn step_from(next: *const u32, state: u32, class: u8) -> u32 {
    unsafe { *next.add(state as usize + class as usize) }
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
            for &(k, len) in table.matches_of(state) {
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
        #[cfg(target_arch = "x86_64")]
        if crate::text_runs::vbmi() {
            self.walk_split::<WIDE>(table, hay, &mut expand, |lanes, on_match| {
                // SAFETY: `vbmi()` saw the features `walk_wide` is compiled for.
                unsafe { walk_wide(table, lanes, on_match) }
            });
            return;
        }
        self.walk_split::<LANES>(table, hay, &mut expand, |lanes, on_match| {
            walk_lanes(table, lanes, on_match)
        });
    }

    /// Walks `hay` in `L` stretches side by side (`walk_side_by_side` walks as many steps as
    /// it chooses, at most the shortest lane's length, and returns the states and the steps),
    /// the rest of each stretch alone, and reports the hits in order.
    fn walk_split<const L: usize>(
        &self,
        table: &Table,
        hay: &[u8],
        expand: &mut impl FnMut(u32, usize),
        walk_side_by_side: impl FnOnce([&[u8]; L], &mut dyn FnMut(usize, [u32; L])) -> ([u32; L], usize),
    ) {
        // Lane j reports the keywords ending in (bounds[j], bounds[j + 1]], walking from
        // `warmup` bytes earlier so that a keyword straddling its left bound is seen whole.
        // Each lane keeps its match states in order; replaying the lanes one after the
        // other gives every hit in order.
        let stretch = hay.len() / L;
        let bound = |j: usize| if j == L { hay.len() } else { j * stretch };
        let mut at = [0usize; L];
        let mut found: [Vec<(u32, usize)>; L] = std::array::from_fn(|_| Vec::new());
        for (j, a) in at.iter_mut().enumerate() {
            *a = bound(j).saturating_sub(self.warmup);
        }
        // All lanes step together for as long as the shortest one has bytes.
        let common = (0..L).map(|j| bound(j + 1) - at[j]).min().unwrap_or(0);
        let lanes: [&[u8]; L] = std::array::from_fn(|j| &hay[at[j]..at[j] + common]);
        let mut on_match = |i: usize, states: [u32; L]| {
            for (j, state) in states.into_iter().enumerate() {
                let end = at[j] + i + 1;
                if table.is_match(state) && end > bound(j) {
                    found[j].push((state, end));
                }
            }
        };
        let (s, walked) = walk_side_by_side(lanes, &mut on_match);
        for j in 0..L {
            for &(state, end) in &found[j] {
                expand(state, end);
            }
            walk(
                table,
                &hay[..bound(j + 1)],
                at[j] + walked,
                bound(j),
                s[j],
                expand,
            );
        }
    }
}

/// Walks four stretches of equal length side by side from the start state, calling
/// `on_match(i, states)` when a lane is in a match state after byte `i`; returns the states
/// and the bytes walked (all of them).
/// Kept apart from its caller so that the four states, the four stretches and the table stay
/// in registers (otherwise each step waits on a store and a load of its state).
#[inline(never)]
fn walk_lanes(
    table: &Table,
    lanes: [&[u8]; LANES],
    on_match: &mut dyn FnMut(usize, [u32; LANES]),
) -> ([u32; LANES], usize) {
    let mut s = [table.start; LANES];
    let len = lanes.iter().map(|l| l.len()).min().unwrap_or(0);
    let lanes = lanes.map(|l| &l[..len]);
    // Byte `i` of every lane in one step: the lanes cut to one length, the index needs no
    // bounds check.
    #[allow(clippy::needless_range_loop)]
    for i in 0..len {
        for j in 0..LANES {
            s[j] = table.step(s[j], lanes[j][i]);
        }
        if table.any_match(&s) {
            on_match(i, s);
        }
    }
    (s, len)
}

/// [`walk_lanes`] with eight lanes, in blocks of 64 steps: first the classes of the block's
/// bytes of every lane (64 at a time, by byte permutes of the class table), then the steps.
/// Returns the states and the bytes walked (whole blocks; the callers walk the rest).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn walk_wide(
    table: &Table,
    lanes: [&[u8]; WIDE],
    on_match: &mut dyn FnMut(usize, [u32; WIDE]),
) -> ([u32; WIDE], usize) {
    use std::arch::x86_64::{
        __m512i, _mm512_loadu_si512, _mm512_mask_blend_epi8, _mm512_movepi8_mask,
        _mm512_permutex2var_epi8, _mm512_storeu_si512,
    };
    #[repr(align(64))]
    struct Classes([u8; WIDE * BLOCK]);
    let len = lanes.iter().map(|l| l.len()).min().unwrap_or(0) / BLOCK * BLOCK;
    let class = |k: usize| {
        // SAFETY: the class table has 256 bytes, so the 64 read at 64 * k (k < 4) are in it.
        unsafe { _mm512_loadu_si512(table.class.as_ptr().add(64 * k).cast::<__m512i>()) }
    };
    let (c0, c1, c2, c3) = (class(0), class(1), class(2), class(3));
    let mut classes = Classes([0; WIDE * BLOCK]);
    let next = table.next.as_ptr();
    let mut s = [table.start; WIDE];
    let mut i0 = 0;
    while i0 < len {
        for (j, lane) in lanes.iter().enumerate() {
            // SAFETY: `i0 + BLOCK <= len`, at most the lane's length.
            let v = unsafe { _mm512_loadu_si512(lane.as_ptr().add(i0).cast::<__m512i>()) };
            // The low 7 bits pick one of 128 classes, the top bit which half of the table.
            let low = _mm512_permutex2var_epi8(c0, v, c1);
            let high = _mm512_permutex2var_epi8(c2, v, c3);
            let cls = _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), low, high);
            // SAFETY: lane j's classes go to bytes 64 * j .. 64 * (j + 1) of the buffer.
            unsafe {
                _mm512_storeu_si512(classes.0.as_mut_ptr().add(BLOCK * j).cast::<__m512i>(), cls)
            };
        }
        for i in 0..BLOCK {
            // The lanes by index, unrolled: the eight states stay in registers (seen in the
            // disassembly).
            #[allow(clippy::needless_range_loop)]
            for j in 0..WIDE {
                let c = classes.0[BLOCK * j + i];
                // SAFETY: `s[j]` is the start or a state read from the table.
                s[j] = unsafe { step_from(next, s[j], c) };
            }
            if table.any_match(&s) {
                on_match(i0 + i, s);
            }
        }
        i0 += BLOCK;
    }
    (s, len)
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
        if table.is_match(state) && i + 1 > report_after {
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
        // The four-lane walk (the eight-lane one where the CPU has it) finds the same.
        crate::text_runs::Paths::Baseline.force();
        let mut four = Vec::new();
        kw.for_each_hit(hay, |s, e, r| four.push((s, e, r.to_vec())));
        crate::text_runs::Paths::Native.force();
        assert_eq!(out, four, "both walks");
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
        // (Four lanes: bounds at multiples of 1,024; eight: of 512, with blocks of 64 steps.)
        for at in [
            0, 3, 60, 63, 64, 500, 510, 511, 512, 575, 576, 1020, 1021, 1022, 1023, 1024, 1535,
            1536, 2046, 2048, 2559, 2560, 3070, 3072, 3583, 3584, 4090,
        ] {
            let piece = b"sk-ant-api03-Token-akia-AKIAx";
            let end = (at + piece.len()).min(hay.len());
            hay[at..end].copy_from_slice(&piece[..end - at]);
        }
        assert_eq!(hits(&keywords, &hay), brute(&keywords, &hay));
        for len in [0, 1, 5, 1023, 1024, 1025, 1535, 2000, 4098] {
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
        for len in [0, 3, 100, 1023, 1024, 1025, 4095, 4096, 10_000, 65_536] {
            let mut hay = Vec::new();
            while hay.len() < len {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                if rng.is_multiple_of(5) {
                    // Any byte: the classes of all 256 (the upper half is a table of its own
                    // in the eight-lane walk).
                    hay.push((rng >> 40) as u8);
                } else {
                    hay.extend_from_slice(pieces[(rng % pieces.len() as u64) as usize]);
                }
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
            for four_lanes in [false, true] {
                if four_lanes {
                    crate::text_runs::Paths::Baseline.force();
                }
                let mut got = Vec::new();
                kw.for_each_hit(&hay, |s, e, r| got.push((s, e, r[0])));
                crate::text_runs::Paths::Native.force();
                assert_eq!(got, expected, "len {len}, four lanes {four_lanes}");
            }
        }
    }
}
