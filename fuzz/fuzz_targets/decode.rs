//! The decoders of `airlock_scan::decode` on arbitrary bytes in arbitrary chunks: percent
//! decoding, JSON unescaping (with its map back to the bytes as sent), base64 and hex blobs,
//! nested decoding, JSON value joining and line unwrapping. None may panic; none may grow
//! its input (beyond the armour a DER key is wrapped in); the streaming ones must give the
//! same output whatever the chunking.
#![no_main]

use airlock_fuzz::{Input, chunks};
use airlock_scan::decode::{
    BlobDecoder, Joined, JsonJoiner, JsonUnescaper, Lines, PercentDecoder, decode_base64,
    decode_nested, has_percent_escape, last_percent_escape, percent_decode,
};
use libfuzzer_sys::fuzz_target;

/// A blob may be DER key material passed on armoured as PEM: base64 again (4/3 of the DER,
/// which is 3/4 of its base64 or 1/2 of its hex), a line break every 64 characters, and a
/// header and footer line.
fn armoured_bound(len: usize) -> usize {
    len + len / 32 + 128
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let seed = input.u32();
    let text = input.rest();
    let pieces = chunks(text, seed);
    percent(text, &pieces, flags & 1 != 0, flags & 2 != 0);
    json(text, &pieces);
    blobs(text, &pieces);
    nested(text, flags & 1 != 0);
    joiners(&pieces, flags & 4 != 0);

    let b = decode_base64(text);
    assert!(b.len() <= text.len() * 3 / 4);
    if let Some(i) = last_percent_escape(text) {
        assert_eq!(text[i], b'%');
    }
    let _ = has_percent_escape(text);
});

fn percent(text: &[u8], pieces: &[&[u8]], plus: bool, fields: bool) {
    let mut whole = Vec::new();
    percent_decode(text, plus, &mut whole);
    assert!(whole.len() <= text.len());

    let make = || {
        let mut d = if plus {
            PercentDecoder::form()
        } else {
            PercentDecoder::default()
        };
        d.set_fields(fields);
        d
    };
    let mut one = make();
    let mut once = Vec::new();
    one.feed(text, &mut once);
    let mut d = make();
    let mut chunked = Vec::new();
    for p in pieces {
        d.feed(p, &mut chunked);
    }
    assert_eq!(chunked, once, "percent decoding depends on the chunking");
    assert_eq!(d.is_idle(), one.is_idle());
    assert!(chunked.len() <= text.len());
    if !fields && d.is_idle() {
        assert_eq!(
            chunked, whole,
            "streaming and whole percent decoding differ"
        );
    }
}

fn json(text: &[u8], pieces: &[&[u8]]) {
    let mut whole = Vec::new();
    let mut w = JsonUnescaper::default();
    w.feed(text, &mut whole);
    assert!(whole.len() <= text.len());

    let mut d = JsonUnescaper::default();
    let mut out = Vec::new();
    let mut escapes = Vec::new();
    for p in pieces {
        d.feed_mapped(p, &mut out, &mut escapes);
    }
    assert_eq!(out, whole, "JSON unescaping depends on the chunking");
    assert_eq!(d.is_idle(), w.is_idle());
    // Between the escapes undone, the output is the input as it was: the map a redactor
    // follows back to the bytes as sent.
    let (mut at, mut raw_at) = (0u64, 0u64);
    for e in &escapes {
        assert!(e.start >= at && e.raw_start >= raw_at, "{e:?} out of order");
        assert!(e.start <= e.end && e.raw_start < e.raw_end, "{e:?}");
        assert_eq!(
            e.start - at,
            e.raw_start - raw_at,
            "{e:?}: a gap changed length"
        );
        assert_eq!(
            out[at as usize..e.start as usize],
            text[raw_at as usize..e.raw_start as usize]
        );
        assert!(e.end - e.start <= e.raw_end - e.raw_start, "{e:?} grew");
        (at, raw_at) = (e.end, e.raw_end);
    }
    let rest = out.len() as u64 - at;
    assert!(raw_at + rest <= text.len() as u64);
    assert_eq!(
        out[at as usize..],
        text[raw_at as usize..(raw_at + rest) as usize]
    );
}

fn blobs(text: &[u8], pieces: &[&[u8]]) {
    let collect = |pieces: &[&[u8]]| {
        let mut d = BlobDecoder::default();
        let mut got: Vec<(&'static str, Vec<u8>)> = Vec::new();
        let n = pieces.len();
        for (i, p) in pieces.iter().enumerate() {
            d.feed(p, i + 1 == n, &mut |kind, blob| {
                got.push((kind, blob.to_vec()))
            });
        }
        if n == 0 {
            d.feed(&[], true, &mut |kind, blob| got.push((kind, blob.to_vec())));
        }
        got
    };
    let mut whole = collect(&[text]);
    for (kind, blob) in &whole {
        assert!(
            blob.len() <= armoured_bound(text.len()),
            "{kind} blob of {} bytes from {} bytes",
            blob.len(),
            text.len()
        );
    }
    let mut chunked = collect(pieces);
    whole.sort();
    chunked.sort();
    assert_eq!(
        chunked,
        whole,
        "blobs depend on the chunking; chunks {:?}",
        pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
    );
}

fn nested(text: &[u8], form: bool) {
    let mut total = 0usize;
    decode_nested(text, form, 3, &mut |_, decoded| {
        assert!(decoded.len() <= armoured_bound(text.len()));
        total += decoded.len();
    });
    // Three layers, each no longer than the one above it.
    assert!(total <= 3 * armoured_bound(armoured_bound(armoured_bound(text.len()))) * 8);
}

fn joiners(pieces: &[&[u8]], last_empty: bool) {
    // `keep` is the scanning engine's longest match: a short one, and the PEM rule's.
    let keep = if last_empty { 64 } else { 4200 };
    let mut j = JsonJoiner::new(keep);
    let mut l = Lines::new(keep);
    let n = pieces.len();
    let mut step = |p: &[u8], last: bool| {
        j.feed(p, last);
        l.feed(p, last);
        for v in j.variants.iter_mut() {
            check_joined(v);
        }
        check_joined(&mut l.unwrapped);
        check_joined(&mut l.dedented);
    };
    for (i, p) in pieces.iter().enumerate() {
        step(p, i + 1 == n && !last_empty);
    }
    if n == 0 || last_empty {
        step(&[], true);
    }
}

/// A joined text's bookkeeping is inside it and in order; the caller then clears it.
fn check_joined(j: &mut Joined) {
    let len = j.text.len();
    assert!(
        j.segments.windows(2).all(|w| w[0] < w[1]),
        "{:?}",
        j.segments
    );
    assert!(j.segments.iter().all(|&s| s <= len));
    assert!(
        j.joins.iter().all(|&(a, b)| a <= b && b <= len),
        "{:?}",
        j.joins
    );
    assert!(
        j.joins.windows(2).all(|w| w[0].1 <= w[1].0),
        "{:?}",
        j.joins
    );
    for (a, b) in [(0, len), (len / 2, len), (0, len / 3)] {
        let _ = j.crosses(a, b);
    }
    j.clear();
}
