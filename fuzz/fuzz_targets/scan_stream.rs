//! The streaming scanner against the whole-text scan: a body cut into any chunks must give
//! the findings the whole body gives (a secret split across chunks found once, at its
//! offset in the stream), with spans inside the text and no longer than the engine's
//! longest match (the carry-over a stream keeps).
#![no_main]

use std::collections::BTreeSet;

use airlock_fuzz::{Input, chunks, engines};
use airlock_scan::stream::StreamFinding;
use airlock_scan::{Finding, StreamScanner};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let pick = input.byte();
    let seed = input.u32();
    let text = input.rest();
    let e = engines();
    let engine = match pick % 3 {
        0 => &e.secrets,
        1 => &e.injections,
        _ => &e.injections_raw,
    };

    let mut whole = Vec::new();
    engine.scan(text, &mut whole);
    for f in &whole {
        check_span(f, text.len(), engine.max_len());
    }
    let want: BTreeSet<(usize, u64, u64)> = whole
        .iter()
        .map(|f| (f.rule, f.start as u64, f.end as u64))
        .collect();
    let pieces = chunks(text, seed);
    // feed … finish, and feed … feed_last: both ends of a stream.
    for last_variant in [false, true] {
        let mut s = StreamScanner::new(engine.clone());
        let mut out: Vec<StreamFinding> = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            if last_variant && i + 1 == pieces.len() {
                s.feed_last(piece, &mut out);
            } else {
                s.feed(piece, &mut out);
            }
            assert!(s.carry().len() <= s.overlap());
        }
        if !last_variant || pieces.is_empty() {
            s.finish(&mut out);
        }
        let got: BTreeSet<(usize, u64, u64)> =
            out.iter().map(|f| (f.rule, f.start, f.end)).collect();
        assert_eq!(got.len(), out.len(), "a finding reported twice: {out:?}");
        let chunking = pieces.iter().map(|p| p.len()).collect::<Vec<_>>();
        // Known, and judged harmless: a fallback rule's finding that the whole text drops
        // (a specific rule's match covers it) may be reported by a chunk that holds too
        // little of the specific match for it to match yet. More is reported, never less.
        let rules = &engine.catalogue().rules;
        let got: BTreeSet<(usize, u64, u64)> = got
            .into_iter()
            .filter(|g| want.iter().any(|w| (w.0, w.1) == (g.0, g.1)) || !rules[g.0].fallback)
            .collect();
        assert_eq!(
            got.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
            want.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
            "chunked scan differs from the whole (feed_last: {last_variant}); chunks {chunking:?}"
        );
        // Known, and judged harmless: where a chunk ends inside a longer match, the shorter
        // match the regex settles for without the rest (a PEM key without its optional
        // `-----END …-----` line, `you must` without the `run` that follows) is reported
        // then, and the longer one, with the same rule and start, is a repeat. So an end
        // may fall short, but only with a chunk boundary inside the whole match's tail.
        let mut bounds = Vec::new();
        let mut at = 0u64;
        for p in &pieces {
            at += p.len() as u64;
            bounds.push(at);
        }
        for (g, w) in got.iter().zip(&want) {
            let cut_inside = bounds.iter().any(|&b| g.2 < b && b < w.2);
            assert!(
                g.2 == w.2 || (g.2 < w.2 && cut_inside),
                "chunked {g:?}, whole {w:?} (feed_last: {last_variant}); chunks {chunking:?}"
            );
        }
    }

    // How much of an unsent tail a redactor holds back is a position inside it.
    let tail = &text[text.len().saturating_sub(engine.max_len())..];
    assert!(engine.hold_from(tail) <= tail.len());
});

fn check_span(f: &Finding, len: usize, max_len: usize) {
    assert!(
        f.match_start <= f.start && f.start <= f.end && f.end <= f.match_end && f.match_end <= len,
        "{f:?} in {len} bytes"
    );
    assert!(
        f.match_end - f.match_start <= max_len,
        "{f:?} longer than max_len {max_len}"
    );
}
