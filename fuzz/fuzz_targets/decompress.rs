//! The Content-Encoding decoders (gzip, deflate zlib or raw, br, zstd) fed arbitrary bytes,
//! or the input compressed first (valid streams, cut into chunks the way they arrive). In
//! any chunking a stream must decode to what it decodes to whole, an error must be an
//! error whatever the chunking, and decoding must not panic. Output is drawn the way the
//! body scanner draws it when not redacting: small input slices, stopping once a budget is
//! reached, so one slice's expansion is what is measured.
#![no_main]

use std::io::Write;

use airlock_fuzz::{Input, chunks};
use airlock_scan::decompress::Decompressor;
use libfuzzer_sys::fuzz_target;

const ENCODINGS: [&str; 4] = ["gzip", "deflate", "br", "zstd"];
/// The body scanner's smallest decompression slice.
const SLICE: usize = 256;
/// Stop drawing output here (the body scanner's room).
const BUDGET: usize = 1 << 20;
/// What one slice of at most 256 bytes may expand to. Deflate expands at most ~1032 times
/// (264 KiB); zstd and brotli blocks can repeat a byte much further from a few bytes.
const SLICE_EXPANSION: usize = 32 << 20;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let seed = input.u32();
    let plain = input.rest();
    let encoding = ENCODINGS[usize::from(flags % 4)];
    let compressed = if flags & 0x80 != 0 {
        compress(encoding, flags, plain)
    } else {
        None
    };
    let stream: &[u8] = compressed.as_deref().unwrap_or(plain);
    let valid = compressed.is_some();

    let whole = decode(encoding, &[stream]);
    let pieces = chunks(stream, seed);
    let chunked = decode(encoding, &pieces);
    if valid {
        let (out, result) = &whole;
        assert!(result.is_ok(), "{encoding}: {result:?}");
        assert_eq!(out.as_slice(), plain, "{encoding} does not round-trip");
    }
    match (&whole, &chunked) {
        ((a, Ok(false)), (b, Ok(false))) => assert!(
            a == b,
            "{encoding}: {} bytes whole, {} in chunks {:?}",
            a.len(),
            b.len(),
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
        ),
        ((_, Ok(_)), (_, Ok(_))) | ((_, Err(_)), (_, Err(_))) => {}
        // Stopping at the budget may come before the data that is corrupt.
        ((_, Ok(true)), (_, Err(_))) | ((_, Err(_)), (_, Ok(true))) => {}
        (a, b) => panic!(
            "{encoding}: whole {:?}, chunked {:?} (chunks {:?})",
            a.1,
            b.1,
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>()
        ),
    }
});

/// (output, Ok(stopped at the budget) or the error).
fn decode(encoding: &str, pieces: &[&[u8]]) -> (Vec<u8>, Result<bool, String>) {
    let mut d = Decompressor::for_encoding(encoding).unwrap().unwrap();
    assert_eq!(d.name(), encoding);
    let mut out = Vec::new();
    let n = pieces.len();
    if n == 0 {
        let r = d.feed(&[], true, &mut out).map(|()| false);
        return (out, r.map_err(|e| e.to_string()));
    }
    for (i, piece) in pieces.iter().enumerate() {
        let mut slices = piece.chunks(SLICE).peekable();
        if slices.peek().is_none() {
            if let Err(e) = d.feed(piece, i + 1 == n, &mut out) {
                return (out, Err(e.to_string()));
            }
        }
        while let Some(slice) = slices.next() {
            let before = out.len();
            let last = i + 1 == n && slices.peek().is_none();
            if let Err(e) = d.feed(slice, last, &mut out) {
                return (out, Err(e.to_string()));
            }
            assert!(
                out.len() - before <= SLICE_EXPANSION,
                "{encoding}: {} bytes from a slice of {}",
                out.len() - before,
                slice.len()
            );
            if out.len() >= BUDGET {
                return (out, Ok(true));
            }
        }
    }
    (out, Ok(false))
}

fn compress(encoding: &str, flags: u8, plain: &[u8]) -> Option<Vec<u8>> {
    let level = flate2::Compression::new(u32::from(flags >> 4 & 7) + 1);
    Some(match encoding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(plain).ok()?;
            e.finish().ok()?
        }
        "deflate" if flags & 0x40 != 0 => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
            e.write_all(plain).ok()?;
            e.finish().ok()?
        }
        "deflate" => {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), level);
            e.write_all(plain).ok()?;
            e.finish().ok()?
        }
        "zstd" => {
            ruzstd::encoding::compress_to_vec(plain, ruzstd::encoding::CompressionLevel::Fastest)
        }
        // No brotli encoder in the tree: br sees raw bytes only.
        _ => return None,
    })
}
