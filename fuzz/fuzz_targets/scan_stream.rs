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
        assert_eq!(
            got.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
            want.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
            "chunked scan differs from the whole (feed_last: {last_variant}); chunks {chunking:?}"
        );
        for (g, w) in got.iter().zip(&want) {
            // Known and harmless: a PEM key's optional `-----END … KEY-----` line cut by a
            // chunk boundary is reported without it (the key itself is whole; the longer
            // match with the same start is then a repeat). Any other difference is a bug.
            let footer = g.2 < w.2 && text[g.2 as usize..w.2 as usize].starts_with(b"-----END");
            assert!(
                g.2 == w.2 || footer,
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
