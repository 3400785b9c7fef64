//! The body scanner (every decoded view, decompression, redact mode, the scan limit) fed
//! arbitrary bytes in arbitrary chunks: it must not panic, must not scan past
//! `max_scan_bytes`, must report spans inside the windows it hands out, and must keep the
//! decompressed output near the limit when it is not redacting (a bomb stops there).
#![no_main]

use airlock_fuzz::{Input, chunks, engines};
use airlock_scan::body::{BodyScanner, View};
use libfuzzer_sys::fuzz_target;

const ENCODINGS: [Option<&str>; 7] = [
    None,
    Some("gzip"),
    Some("deflate"),
    Some("br"),
    Some("zstd"),
    Some("identity"),
    Some("compress"),
];

/// What one feed of a non-redacting scanner may decompress past the room it had: one input
/// slice (at most 16 KiB, at least 256 bytes) fully expanded. Deflate expands at most ~1032
/// times; zstd and brotli can do far more from a few bytes (RLE blocks, long repeats), so
/// this is generous — a real bomb is gigabytes.
const OVERSHOOT: usize = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let limit = match input.byte() % 4 {
        0 => u64::from(input.u32() % 4096),
        1 => u64::from(input.u32() % (1 << 20)),
        _ => 10 << 20,
    };
    let seed = input.u32();
    let body = input.rest();
    let e = engines();
    let encoding = ENCODINGS[usize::from(flags % 7)];
    let redact = flags & 0x08 != 0;
    let injections = (flags & 0x10 != 0).then(|| (e.injections.clone(), e.injections_raw.clone()));
    let mut scanner = BodyScanner::new(e.secrets.clone(), injections, encoding, limit, redact);
    let pieces = chunks(body, seed);
    let mut findings = 0usize;
    let mut decompressed_total = 0usize;
    let n = pieces.len();
    let mut check = |f: airlock_scan::body::ViewFinding<'_>| {
        findings += 1;
        let l = f.local;
        assert!(
            l.match_start <= l.start && l.start <= l.end && l.end <= l.match_end,
            "{:?} {l:?}",
            f.view
        );
        assert!(
            l.match_end <= f.window.len(),
            "{:?} {l:?} outside a window of {}",
            f.view,
            f.window.len()
        );
        if let Some(s) = f.stream {
            assert!(redact && f.view == View::Raw, "{:?}", f.view);
            assert!(s.start <= s.end);
        }
    };
    for (i, piece) in pieces.iter().enumerate() {
        let room = limit.saturating_sub(scanner.scanned()) as usize;
        let out = scanner.feed(piece, i + 1 == n, &mut check);
        if let Some(out) = &out {
            decompressed_total += out.len();
            if !redact {
                assert!(
                    out.len() <= room.saturating_add(OVERSHOOT),
                    "{} bytes decompressed with {room} bytes of room",
                    out.len()
                );
            }
        }
        assert!(scanner.scanned() <= limit);
    }
    if n == 0 {
        scanner.feed(&[], true, &mut check);
    }
    assert!(scanner.scanned() <= limit);
    if encoding.is_none() || encoding == Some("identity") {
        assert_eq!(scanner.scanned(), (body.len() as u64).min(limit));
        assert_eq!(decompressed_total, 0);
    }
    if scanner.truncated() {
        assert_eq!(scanner.scanned(), limit);
    }
});
