//! The text families (cards, IBANs, crypto keys and seed phrases, PII) over a stream cut into
//! any chunks: they must not panic, must report each finding once with a span inside what was
//! fed, and must find in the stream whatever they find in the whole body at once, away from
//! the chunks' edges' reach (a finding the whole body has is found at its offset, unless a
//! chunk boundary fell within `CARRY` of it, where the stream may see it whole only later).
//! The planning that skips what cannot hold a candidate (`families/skip.rs`) works on runs of
//! text in 64-byte blocks: long inputs reach its every pass.
#![no_main]

use std::collections::BTreeSet;

use airlock_fuzz::{Input, chunks};
use airlock_scan::families::{CARRY, Family, FamilyScanner, FamilySet, FamilyStream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let pick = input.byte();
    let seed = input.u32();
    let text = input.rest();
    let text_families = [Family::Financial, Family::CryptoKeys, Family::Pii];
    let chosen: Vec<Family> = text_families
        .iter()
        .enumerate()
        .filter(|&(i, _)| pick >> i & 1 == 1)
        .map(|(_, &f)| f)
        .collect();
    let families = if chosen.is_empty() {
        FamilySet::of(&text_families)
    } else {
        FamilySet::of(&chosen)
    };
    let scanner = || FamilyScanner::new(families).report_test_values(pick & 0x08 != 0);

    // The whole body in one window.
    let mut whole = Vec::new();
    let mut s = FamilyStream::new(scanner());
    s.feed_last(text, &mut whole);
    let whole: BTreeSet<(u64, u64)> = whole.iter().map(|f| (f.start, f.end)).collect();

    let pieces = chunks(text, seed);
    let mut s = FamilyStream::new(scanner());
    let mut out = Vec::new();
    let mut edges = Vec::new();
    let mut fed = 0u64;
    for (i, piece) in pieces.iter().enumerate() {
        if i + 1 == pieces.len() {
            s.feed_last(piece, &mut out);
        } else {
            s.feed(piece, &mut out);
        }
        fed += piece.len() as u64;
        edges.push(fed);
        assert_eq!(s.position(), fed);
    }
    if pieces.is_empty() {
        s.finish(&mut out);
    }
    let mut seen = BTreeSet::new();
    for f in &out {
        assert!(f.start < f.end && f.end <= fed, "{f:?} outside 0..{fed}");
        assert!(seen.insert((f.rule, f.start)), "{f:?} reported twice");
    }
    let streamed: BTreeSet<(u64, u64)> = out.iter().map(|f| (f.start, f.end)).collect();
    let near_an_edge = |&(start, end): &(u64, u64)| {
        edges
            .iter()
            .any(|&e| e + CARRY as u64 >= start && e <= end + CARRY as u64)
    };
    for f in whole.iter().filter(|f| !near_an_edge(f)) {
        assert!(
            streamed.contains(f),
            "{f:?} found in the whole body, not in the stream"
        );
    }
});
