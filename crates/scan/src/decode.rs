//! Decoders that show the scanner what an agent actually sent: JSON string escapes (a PEM
//! key pasted into a chat message arrives as `-----BEGIN…\n…`), URL percent-encoding (`%2B`,
//! `%2F` inside a token, `%253D` encoded twice), base64 and hex blobs (plain, wrapped every 64
//! or 76 characters, or hex with delimiters), adjacent JSON string values joined (a key sent
//! in pieces), and hard-wrapped lines joined (a token broken every 64 characters).
//!
//! All of them are streaming: an escape, a blob or a value split across two chunks is held
//! until the next chunk completes it, and what is held is bounded. None of them grows its
//! input: every decoding is at most as long as what it decodes, so a decoded view never
//! scans more than the bytes the body scanner let in (`max_scan_bytes`).

use std::borrow::Cow;

use crate::text_runs::{RunBytes, first_run};

/// Undoes JSON string escapes everywhere in the text (outside strings a backslash is rare,
/// and treating it the same costs nothing in accuracy for scanning).
#[derive(Debug, Default)]
pub struct JsonUnescaper {
    pending: Vec<u8>,
    /// Stream offsets of `pending[0]` (or of the next chunk) in the input and in the output.
    consumed: u64,
    produced: u64,
}

/// One escape undone, in stream offsets: the input bytes `raw_start..raw_end` became the
/// output bytes `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escape {
    pub start: u64,
    pub end: u64,
    pub raw_start: u64,
    pub raw_end: u64,
}

impl JsonUnescaper {
    /// True when no escape is waiting for its next chunk.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Decodes `chunk`, appending to `out`. Returns true if anything was unescaped.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> bool {
        self.decode(chunk, out, None)
    }

    /// [`JsonUnescaper::feed`], also appending each escape it undoes to `escapes` (in stream
    /// offsets of input and output), so that a span of the output can be found in the input.
    pub fn feed_mapped(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<u8>,
        escapes: &mut Vec<Escape>,
    ) -> bool {
        self.decode(chunk, out, Some(escapes))
    }

    /// Moves past `chunk` without decoding it (it holds no escape and none is pending).
    pub fn pass(&mut self, chunk: &[u8]) {
        debug_assert!(self.pending.is_empty());
        self.consumed += chunk.len() as u64;
        self.produced += chunk.len() as u64;
    }

    fn decode(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<u8>,
        mut escapes: Option<&mut Vec<Escape>>,
    ) -> bool {
        let input = with_pending(&mut self.pending, chunk);
        let mut changed = false;
        let mut i = 0;
        let out_start = out.len();
        // A block copy may write up to 63 bytes past what is kept (cut back at once).
        out.reserve(input.len() + 64);
        let (consumed, produced) = (self.consumed, self.produced);
        let mut note = |out: &Vec<u8>, before: usize, from: usize, to: usize| {
            if let Some(e) = escapes.as_deref_mut() {
                e.push(Escape {
                    start: produced + (before - out_start) as u64,
                    end: produced + (out.len() - out_start) as u64,
                    raw_start: consumed + from as u64,
                    raw_end: consumed + to as u64,
                });
            }
        };
        while i < input.len() {
            // Copy the run up to the next backslash: 64 bytes at a time, a block with one
            // copied whole and cut back to it. Chat has an escape every line or so, and a
            // search and a copy of variable length per escape (two calls) cost more than
            // the bytes between them.
            let run = if let Some(block) = input.get(i..i + 64) {
                let block: &[u8; 64] = block.try_into().expect("64 bytes");
                let backslashes = crate::text_runs::byte_mask(block, b'\\');
                let kept = out.len();
                out.extend_from_slice(block);
                if backslashes == 0 {
                    i += 64;
                    continue;
                }
                let run = backslashes.trailing_zeros() as usize;
                out.truncate(kept + run);
                run
            } else {
                let Some(run) = memchr::memchr(b'\\', &input[i..]) else {
                    out.extend_from_slice(&input[i..]);
                    break;
                };
                out.extend_from_slice(&input[i..i + run]);
                run
            };
            i += run;
            let b = input[i];
            let Some(&next) = input.get(i + 1) else {
                self.pending.extend_from_slice(&input[i..]);
                break;
            };
            if let Some(c) = simple_escape(next) {
                let before = out.len();
                out.push(c);
                note(out, before, i, i + 2);
                changed = true;
                i += 2;
                continue;
            }
            if next == b'u' {
                if input.len() < i + 6 {
                    self.pending.extend_from_slice(&input[i..]);
                    break;
                }
                if let Some(cp) = hex4(&input[i + 2..i + 6]) {
                    let before = out.len();
                    push_code_point(cp, out);
                    note(out, before, i, i + 6);
                    changed = true;
                    i += 6;
                    continue;
                }
            }
            out.push(b);
            i += 1;
        }
        self.consumed += (input.len() - self.pending.len()) as u64;
        self.produced += (out.len() - out_start) as u64;
        changed
    }
}

fn simple_escape(next: u8) -> Option<u8> {
    Some(match next {
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'b' => 0x08,
        b'f' => 0x0C,
        b'/' => b'/',
        b'\\' => b'\\',
        b'"' => b'"',
        _ => return None,
    })
}

fn push_code_point(cp: u16, out: &mut Vec<u8>) {
    let ch = char::from_u32(u32::from(cp)).unwrap_or('\u{FFFD}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
}

/// The chunk, prefixed by an escape left incomplete by the previous one. Copies only when
/// something was pending (rarely): the common chunk is decoded in place.
fn with_pending<'a>(pending: &mut Vec<u8>, chunk: &'a [u8]) -> Cow<'a, [u8]> {
    if pending.is_empty() {
        return Cow::Borrowed(chunk);
    }
    let mut joined = std::mem::take(pending);
    joined.extend_from_slice(chunk);
    Cow::Owned(joined)
}

fn hex4(s: &[u8]) -> Option<u16> {
    let mut v: u16 = 0;
    for &c in s {
        v = v.checked_mul(16)? + u16::from(hex_val(c)?);
    }
    Some(v)
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` sequences. By default a literal `+` stays a `+` (tokens contain it, and a
/// path keeps it); [`PercentDecoder::form`] reads it as a space, as form bodies and query
/// strings mean it.
#[derive(Debug, Default)]
pub struct PercentDecoder {
    pending: Vec<u8>,
    plus_as_space: bool,
    fields: bool,
}

impl PercentDecoder {
    /// Form encoding (`application/x-www-form-urlencoded`, query strings): `+` is a space.
    pub fn form() -> Self {
        PercentDecoder {
            pending: Vec::new(),
            plus_as_space: true,
            fields: false,
        }
    }

    /// A form body (`a=1&b=2`): also shows each field on a line of its own (`&` is a line
    /// break; a literal `&` is `%26` and stays one), as the fields a server reads.
    pub fn set_fields(&mut self, fields: bool) {
        self.fields = fields;
    }

    /// Whether `+` reads as a space.
    pub fn plus_as_space(&self) -> bool {
        self.plus_as_space
    }

    /// True when no escape is waiting for its next chunk.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Decodes `chunk`, appending to `out`. Returns true if anything was decoded.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> bool {
        let input = with_pending(&mut self.pending, chunk);
        let (plus, fields) = (self.plus_as_space, self.fields);
        let (changed, held) = percent_decode_into(&input, plus, fields, true, out);
        self.pending.extend_from_slice(&input[input.len() - held..]);
        changed
    }
}

/// Percent-decodes the whole of `input` once (`+` as a space when `plus_as_space`),
/// appending to `out`; true when anything changed.
pub fn percent_decode(input: &[u8], plus_as_space: bool, out: &mut Vec<u8>) -> bool {
    percent_decode_into(input, plus_as_space, false, false, out).0
}

/// (changed, bytes held back at the end because an escape may continue in the next chunk).
fn percent_decode_into(
    input: &[u8],
    plus_as_space: bool,
    fields: bool,
    streaming: bool,
    out: &mut Vec<u8>,
) -> (bool, usize) {
    let mut changed = false;
    let mut i = 0;
    out.reserve(input.len());
    while i < input.len() {
        // Copy the run up to the next `%` (or `+`, `&`) in one go.
        let next = if fields {
            memchr::memchr3(b'%', b'+', b'&', &input[i..])
        } else if plus_as_space {
            memchr::memchr2(b'%', b'+', &input[i..])
        } else {
            memchr::memchr(b'%', &input[i..])
        };
        let Some(run) = next else {
            out.extend_from_slice(&input[i..]);
            break;
        };
        out.extend_from_slice(&input[i..i + run]);
        i += run;
        let b = input[i];
        if b == b'+' || b == b'&' {
            out.push(if b == b'+' { b' ' } else { b'\n' });
            changed = true;
            i += 1;
            continue;
        }
        if input.len() < i + 3 {
            // `%` or `%X` at the end: complete in the next chunk, or left as it is.
            let tail = &input[i..];
            if streaming && tail[1..].iter().all(|&c| hex_val(c).is_some()) {
                return (changed, tail.len());
            }
            out.extend_from_slice(tail);
            break;
        }
        match (hex_val(input[i + 1]), hex_val(input[i + 2])) {
            (Some(h), Some(l)) => {
                out.push(h << 4 | l);
                changed = true;
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    (changed, 0)
}

/// Where the last percent escape in `hay` starts: a `%` and two hex digits, or a `%` in the
/// last two bytes that the next chunk may complete. A `%` that escapes nothing ("100%
/// sure") is not one.
pub fn last_percent_escape(hay: &[u8]) -> Option<usize> {
    memchr::memrchr_iter(b'%', hay)
        .find(|&i| hay[i + 1..].iter().take(2).all(|&c| hex_val(c).is_some()))
}

/// True when `hay` holds a percent escape (`%` and two hex digits).
pub fn has_percent_escape(hay: &[u8]) -> bool {
    memchr::memchr_iter(b'%', hay).any(|i| {
        hay.len() >= i + 3 && hex_val(hay[i + 1]).is_some() && hex_val(hay[i + 2]).is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_split_across_chunks() {
        let mut d = JsonUnescaper::default();
        let mut out = Vec::new();
        d.feed(br#"{"c":"-----BEGIN KEY-----\"#, &mut out);
        d.feed(br#"nabc\u00"#, &mut out);
        d.feed(br#"41\/x"}"#, &mut out);
        assert_eq!(out, b"{\"c\":\"-----BEGIN KEY-----\nabcA/x\"}");
    }

    /// The block-at-a-time copy undoes what a byte-at-a-time reading undoes, with the same
    /// escapes mapped, whatever the chunks: escapes on and across every block edge.
    #[test]
    fn json_unescaping_by_blocks_is_byte_by_byte() {
        fn reference(input: &[u8]) -> (Vec<u8>, Vec<Escape>) {
            let (mut out, mut map) = (Vec::new(), Vec::new());
            let mut i = 0;
            while i < input.len() {
                let before = out.len() as u64;
                let taken = match (input[i], input.get(i + 1)) {
                    (b'\\', Some(&n)) if simple_escape(n).is_some() => {
                        out.push(simple_escape(n).unwrap());
                        2
                    }
                    (b'\\', Some(b'u')) if input.len() >= i + 6 => match hex4(&input[i + 2..i + 6])
                    {
                        Some(cp) => {
                            push_code_point(cp, &mut out);
                            6
                        }
                        None => {
                            out.push(b'\\');
                            1
                        }
                    },
                    (b, _) => {
                        out.push(b);
                        1
                    }
                };
                if taken > 1 {
                    map.push(Escape {
                        start: before,
                        end: out.len() as u64,
                        raw_start: i as u64,
                        raw_end: (i + taken) as u64,
                    });
                }
                i += taken;
            }
            (out, map)
        }
        let pieces: [&[u8]; 10] = [
            b"\\n",
            b"\\u0041",
            b"\\u00e9",
            b"\\uZZ41",
            b"\\",
            b"\\x",
            b"\\\\",
            b"abcdefghijklmnopqrstuvwxyz0123456789",
            b"a",
            b" \\\"q\\\" ",
        ];
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        for len in [0, 1, 63, 64, 65, 127, 128, 129, 1000, 20_000] {
            let mut input = Vec::new();
            while input.len() < len {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                input.extend_from_slice(pieces[(rng % pieces.len() as u64) as usize]);
            }
            // Nothing left waiting for a next chunk at the end.
            input.extend_from_slice(b"........");
            let expected = reference(&input);
            for chunk in [1, 2, 5, 63, 64, 65, 100, 4096, usize::MAX] {
                let mut d = JsonUnescaper::default();
                let (mut out, mut map) = (Vec::new(), Vec::new());
                for piece in input.chunks(chunk.min(input.len())) {
                    d.feed_mapped(piece, &mut out, &mut map);
                }
                assert!(d.is_idle());
                assert_eq!(
                    (&out, &map),
                    (&expected.0, &expected.1),
                    "len {len} chunk {chunk}"
                );
            }
        }
    }

    #[test]
    fn json_escapes_are_mapped_back_to_their_input() {
        let mut d = JsonUnescaper::default();
        let (mut out, mut map) = (Vec::new(), Vec::new());
        d.pass(b"0123");
        d.feed_mapped(br#"ab\nc\u00"#, &mut out, &mut map);
        d.feed_mapped(br#"41d"#, &mut out, &mut map);
        assert_eq!(out, b"ab\ncAd");
        assert_eq!(
            map,
            vec![
                Escape {
                    start: 6,
                    end: 7,
                    raw_start: 6,
                    raw_end: 8
                },
                Escape {
                    start: 8,
                    end: 9,
                    raw_start: 9,
                    raw_end: 15
                },
            ]
        );
    }

    #[test]
    fn percent_escapes_split_across_chunks() {
        let mut d = PercentDecoder::default();
        let mut out = Vec::new();
        d.feed(b"key=abc%2", &mut out);
        d.feed(b"Bdef%2Fg+h%zz 100%", &mut out);
        d.feed(b" sure", &mut out);
        assert_eq!(out, b"key=abc+def/g+h%zz 100% sure");
        let mut form = PercentDecoder::form();
        out.clear();
        form.feed(b"a=x+y%2B", &mut out);
        form.feed(b"z%", &mut out);
        form.feed(b"3D", &mut out);
        assert_eq!(out, b"a=x y+z=");
    }

    #[test]
    fn percent_escapes_are_told_from_percent_signs() {
        assert_eq!(last_percent_escape(b"a%3Db 100% x"), Some(1));
        assert_eq!(last_percent_escape(b"a%3Db%2"), Some(5));
        assert_eq!(last_percent_escape(b"a%"), Some(1));
        assert_eq!(last_percent_escape(b"100% sure"), None);
        assert!(has_percent_escape(b"x%253D"));
        assert!(!has_percent_escape(b"50% off %zz"));
    }
}

/// Shortest base64 run worth decoding: the shortest credentials are ~20 bytes (28 chars).
const MIN_BASE64_RUN: usize = 24;
/// Shortest hex run worth decoding (16 bytes).
const MIN_HEX_RUN: usize = 32;
/// Fewest pairs of delimited hex (`de:ad:be:ef`) worth decoding (16 bytes).
const MIN_HEX_PAIRS: usize = 16;
/// A run longer than this is decoded in pieces rather than held whole.
const MAX_PENDING_RUN: usize = 1 << 20;
/// Line lengths at which base64 is wrapped (PEM, MIME): a run that ends a line this long
/// goes on after the line break.
const WRAP_LENGTHS: [usize; 2] = [64, 76];

const B64: u8 = 1;
const HEX: u8 = 2;
/// Bytes of delimited hex: hex digits and the delimiters.
const DHEX: u8 = 4;

const fn class_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let mut v = 0;
        if b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'-' || b == b'_' {
            v |= B64;
        }
        if b.is_ascii_hexdigit() {
            v |= HEX | DHEX;
        }
        if b == b':' || b == b'-' || b == b' ' {
            v |= DHEX;
        }
        t[c] = v;
        c += 1;
    }
    t
}
static CLASS: [u8; 256] = class_table();

/// Finds base64 and hex blobs in a stream and decodes them, so that an encoded credential
/// is scanned in the clear. A blob split across chunks is held until it ends; base64
/// wrapped every 64 or 76 characters is one blob; hex with delimiters (`de:ad:be:ef`,
/// `de-ad-be-ef`, `de ad be ef`) is decoded too. A blob that decodes to mostly printable
/// text is passed on; so is one that decodes to a DER private key (the key material of a
/// PEM file without its armour), passed on armoured so the PEM rules see it.
#[derive(Debug, Default)]
pub struct BlobDecoder {
    run: Vec<u8>,
    /// Length of the run's current line (a wrapped blob's lines are 64 or 76 long).
    line: usize,
    /// Inside a line break that may continue the run: 1 after `\r`, 2 in the indentation
    /// after `\n`.
    wrap: u8,
    decoded: Vec<u8>,
    /// A run of delimited-hex bytes left open at the end of the last chunk.
    dhex: Vec<u8>,
    /// The run follows a PEM header line: its key material is in plain sight already.
    armoured: bool,
    /// The last bytes of the previous chunk (for what precedes a run at a chunk's start).
    tail: Vec<u8>,
}

/// Nine in ten bytes printable: decoded text worth scanning, not random binary.
fn mostly_text(bytes: &[u8]) -> bool {
    let printable = bytes
        .iter()
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    !bytes.is_empty() && printable * 10 >= bytes.len() * 9
}

/// What the first bytes of decoded binary say it is, when it is private key material: the
/// PEM label its armour would carry.
fn key_material(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"openssh-key-v1\0") {
        return Some("OPENSSH PRIVATE KEY");
    }
    // DER: a SEQUENCE, then the version INTEGER and what follows it.
    if head.first() != Some(&0x30) {
        return None;
    }
    let body = match *head.get(1)? {
        0x81 => 3,
        0x82 => 4,
        n if n < 0x80 => 2,
        _ => return None,
    };
    match head.get(body..body + 4)? {
        // PKCS#1 (RSA; DSA has the same shape): version 0, then the modulus.
        [0x02, 0x01, 0x00, 0x02] => Some("RSA PRIVATE KEY"),
        // PKCS#8: version 0 or 1, then the algorithm.
        [0x02, 0x01, 0x00 | 0x01, 0x30] => Some("PRIVATE KEY"),
        // SEC 1 (EC): version 1, then the key as an OCTET STRING.
        [0x02, 0x01, 0x01, 0x04] => Some("EC PRIVATE KEY"),
        _ => None,
    }
}

/// `der` armoured as a PEM block with `label`, appended to `out`.
fn armour(label: &str, der: &[u8], out: &mut Vec<u8>) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.extend_from_slice(b"-----BEGIN ");
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"-----\n");
    let mut line = 0;
    for group in der.chunks(3) {
        let n = group.len();
        let v = (u32::from(group[0]) << 16)
            | (u32::from(*group.get(1).unwrap_or(&0)) << 8)
            | u32::from(*group.get(2).unwrap_or(&0));
        for k in 0..4 {
            out.push(if k <= n {
                A[(v >> (18 - 6 * k) & 63) as usize]
            } else {
                b'='
            });
        }
        line += 4;
        if line == 64 {
            out.push(b'\n');
            line = 0;
        }
    }
    if line > 0 {
        out.push(b'\n');
    }
    out.extend_from_slice(b"-----END ");
    out.extend_from_slice(label.as_bytes());
    out.extend_from_slice(b"-----\n");
}

impl BlobDecoder {
    /// Calls `sink` with each decoded blob that ends in (or before) this chunk; `last` ends
    /// the stream.
    pub fn feed(&mut self, chunk: &[u8], last: bool, sink: &mut impl FnMut(&'static str, &[u8])) {
        self.feed_runs(chunk, last, sink);
        self.feed_delimited(chunk, last, sink);
    }

    /// Base64 and plain hex runs.
    fn feed_runs(&mut self, chunk: &[u8], last: bool, sink: &mut impl FnMut(&'static str, &[u8])) {
        let in_alphabet = |b: u8| CLASS[b as usize] & B64 != 0;
        let len = chunk.len();
        let mut i = 0;
        // A run left open by the previous chunk continues here.
        if !self.run.is_empty() {
            i = self.extend(chunk, 0, sink);
            if i == len {
                if last || self.run.len() >= MAX_PENDING_RUN {
                    self.finish_run(sink);
                }
                self.keep_tail(chunk);
                return;
            }
        }
        // A run long enough to matter covers every MIN_RUN-th byte: probe those, and only
        // where a probe lands inside the alphabet look at the run around it. Prose, with a
        // space every few bytes, is crossed almost without reading it.
        const MIN_RUN: usize = if MIN_BASE64_RUN < MIN_HEX_RUN {
            MIN_BASE64_RUN
        } else {
            MIN_HEX_RUN
        };
        while i < len {
            // A run of MIN_RUN alphabet bytes is a run of MIN_RUN bytes from `+` up (no space,
            // line break or common punctuation): most of a text is passed over 64 bytes at a
            // time without one.
            i = match first_run::<MIN_RUN>(&chunk[i..], RunBytes::AtLeast(b'+')) {
                Some(k) => i + k,
                None => i.max(len.saturating_sub(MIN_RUN)),
            };
            let probe = i + MIN_RUN - 1;
            if probe >= len {
                // Too short to judge: keep what may begin a run that goes on next chunk.
                let start = chunk[i..]
                    .iter()
                    .rposition(|&b| !in_alphabet(b))
                    .map_or(i, |p| i + p + 1);
                if start < len {
                    self.armoured = self.after_armour(chunk, start);
                    self.run.extend_from_slice(&chunk[start..]);
                    self.line = len - start;
                }
                break;
            }
            if !in_alphabet(chunk[probe]) {
                i = probe + 1;
                continue;
            }
            let mut start = probe;
            while start > i && in_alphabet(chunk[start - 1]) {
                start -= 1;
            }
            let mut end = probe + 1;
            while end < len && in_alphabet(chunk[end]) {
                end += 1;
            }
            if end == len {
                self.armoured = self.after_armour(chunk, start);
                self.run.extend_from_slice(&chunk[start..]);
                self.line = len - start;
                break;
            }
            if end - start < MIN_RUN && !WRAP_LENGTHS.contains(&(end - start)) {
                // A word: too short to decode.
                i = end + 1;
                continue;
            }
            self.armoured = self.after_armour(chunk, start);
            self.run.extend_from_slice(&chunk[start..end]);
            self.line = end - start;
            i = self.end_of_line_run(chunk, end, sink);
            if self.wrap != 0 {
                // A wrapped blob: it goes on after the line break.
                i = self.extend(chunk, i, sink);
            }
        }
        if last {
            self.finish_run(sink);
        }
        self.keep_tail(chunk);
    }

    /// Keeps the end of `chunk` as what precedes the next chunk.
    fn keep_tail(&mut self, chunk: &[u8]) {
        const TAIL: usize = 16;
        if chunk.len() >= TAIL {
            self.tail.clear();
        }
        self.tail
            .extend_from_slice(&chunk[chunk.len().saturating_sub(TAIL)..]);
        let excess = self.tail.len().saturating_sub(TAIL);
        self.tail.drain(..excess);
    }

    /// Whether a run starting at `chunk[start]` follows a PEM armour line (`-----`, then
    /// only whitespace).
    fn after_armour(&self, chunk: &[u8], start: usize) -> bool {
        let before = &chunk[..start];
        match before.iter().rposition(|b| !b.is_ascii_whitespace()) {
            Some(p) if p >= 4 => before[..=p].ends_with(b"-----"),
            _ => {
                let mut ctx = self.tail.clone();
                ctx.extend_from_slice(before);
                let end = ctx
                    .iter()
                    .rposition(|b| !b.is_ascii_whitespace())
                    .map_or(0, |p| p + 1);
                ctx[..end].ends_with(b"-----")
            }
        }
    }

    /// Goes on with the open run from `chunk[i..]`; returns where the run (and the byte
    /// that ended it) stops, or `chunk.len()` when it is still open.
    fn extend(
        &mut self,
        chunk: &[u8],
        mut i: usize,
        sink: &mut impl FnMut(&'static str, &[u8]),
    ) -> usize {
        let in_alphabet = |b: u8| CLASS[b as usize] & B64 != 0;
        let len = chunk.len();
        loop {
            // Inside a line break of a wrapped blob: `\r\n` or `\n`, then indentation.
            while self.wrap != 0 && i < len {
                let b = chunk[i];
                match (self.wrap, b) {
                    (1, b'\n') => self.wrap = 2,
                    (2, b' ' | b'\t') => {}
                    (2, b) if in_alphabet(b) => {
                        self.wrap = 0;
                        self.line = 0;
                        break;
                    }
                    _ => {
                        self.wrap = 0;
                        self.finish_run(sink);
                        return i;
                    }
                }
                i += 1;
            }
            if i == len {
                return len;
            }
            let end = chunk[i..]
                .iter()
                .position(|&b| !in_alphabet(b))
                .map_or(len, |p| i + p);
            self.run.extend_from_slice(&chunk[i..end]);
            self.line += end - i;
            if end == len {
                return len;
            }
            i = self.end_of_line_run(chunk, end, sink);
            if self.wrap == 0 || i == len {
                return i;
            }
        }
    }

    /// The run stopped at `chunk[end]`: a line break after a full line of a wrapped blob
    /// lets it go on; anything else ends it. Returns where to carry on.
    fn end_of_line_run(
        &mut self,
        chunk: &[u8],
        end: usize,
        sink: &mut impl FnMut(&'static str, &[u8]),
    ) -> usize {
        let b = chunk[end];
        if (b == b'\n' || b == b'\r') && WRAP_LENGTHS.contains(&self.line) {
            self.wrap = if b == b'\r' { 1 } else { 2 };
            return end + 1;
        }
        if self.run.len() >= MIN_BASE64_RUN.min(MIN_HEX_RUN) {
            self.finish_run(sink);
        } else {
            self.run.clear();
        }
        end + 1
    }

    fn finish_run(&mut self, sink: &mut impl FnMut(&'static str, &[u8])) {
        self.wrap = 0;
        self.line = 0;
        if self.run.is_empty() {
            return;
        }
        let run = std::mem::take(&mut self.run);
        if !self.decode_run(&run, sink) && memchr::memchr(b'/', &run).is_some() {
            // A path or URL (`x/upload/<hex>`) is not one blob: its pieces may be.
            for piece in run.split(|&b| b == b'/') {
                self.decode_run(piece, sink);
            }
        }
        self.run = run;
        self.run.clear();
    }

    /// Decodes one run as hex or base64; true when it decoded to something passed on.
    fn decode_run(&mut self, run: &[u8], sink: &mut impl FnMut(&'static str, &[u8])) -> bool {
        // `=` padding ends a run (it is not in the alphabet): decoding needs no padding.
        // Random binary (hashes, images, key material) is the common case: each run is
        // judged by its first bytes before being decoded whole.
        self.decoded.clear();
        if run.len() >= MIN_HEX_RUN
            && run.len().is_multiple_of(2)
            && run.iter().all(|&b| CLASS[b as usize] & HEX != 0)
        {
            let hex = |p: &[u8]| (hex_val(p[0]).unwrap_or(0) << 4) | hex_val(p[1]).unwrap_or(0);
            let mut head = [0u8; MIN_HEX_RUN / 2];
            for (h, p) in head.iter_mut().zip(run.chunks(2)) {
                *h = hex(p);
            }
            let text = mostly_text(&head);
            let key = if text || self.armoured {
                None
            } else {
                key_material(&head)
            };
            if text || key.is_some() {
                self.decoded.extend(run.chunks(2).map(hex));
                return self.pass_on("hex", key, sink);
            }
        } else if run.len() >= MIN_BASE64_RUN {
            decode_base64_into(&run[..MIN_BASE64_RUN], &mut self.decoded);
            let text = mostly_text(&self.decoded);
            let key = if text || self.armoured {
                None
            } else {
                key_material(&self.decoded)
            };
            if text || key.is_some() {
                self.decoded.clear();
                decode_base64_into(run, &mut self.decoded);
                return self.pass_on("base64", key, sink);
            }
        }
        false
    }

    /// Passes the decoded blob on: as it is when it is text, armoured when it is a key.
    fn pass_on(
        &mut self,
        kind: &'static str,
        key: Option<&str>,
        sink: &mut impl FnMut(&'static str, &[u8]),
    ) -> bool {
        match key {
            Some(label) => {
                let mut pem = Vec::with_capacity(self.decoded.len() * 4 / 3 + 80);
                armour(label, &self.decoded, &mut pem);
                sink(kind, &pem);
                true
            }
            None if mostly_text(&self.decoded) => {
                sink(kind, &self.decoded);
                true
            }
            None => false,
        }
    }

    /// Hex with delimiters: runs of hex digits, `:`, `-` and spaces found by the same
    /// probing as the blobs, then read as `hh d hh d …` with one delimiter throughout.
    fn feed_delimited(
        &mut self,
        chunk: &[u8],
        last: bool,
        sink: &mut impl FnMut(&'static str, &[u8]),
    ) {
        let in_alphabet = |b: u8| CLASS[b as usize] & DHEX != 0;
        const MIN_RUN: usize = MIN_HEX_PAIRS * 3 - 1;
        let len = chunk.len();
        let mut i = 0;
        if !self.dhex.is_empty() {
            let end = chunk.iter().position(|&b| !in_alphabet(b)).unwrap_or(len);
            self.dhex.extend_from_slice(&chunk[..end]);
            if end == len && !last && self.dhex.len() < MAX_PENDING_RUN {
                return;
            }
            let run = std::mem::take(&mut self.dhex);
            self.decode_delimited(&run, sink);
            self.dhex = run;
            self.dhex.clear();
            i = end + 1;
        }
        while i < len {
            // The first run of MIN_RUN bytes of delimited hex's alphabet, found 64 bytes at a
            // time; decoding reads its shape.
            let Some(probe) =
                first_run::<MIN_RUN>(&chunk[i..], RunBytes::DelimitedHex).map(|k| i + k)
            else {
                // No run in sight: keep what may begin one that goes on next chunk.
                let start = chunk[i..]
                    .iter()
                    .rposition(|&b| !in_alphabet(b))
                    .map_or(i, |p| i + p + 1);
                if !last && start < len {
                    self.dhex.extend_from_slice(&chunk[start..]);
                } else if last && len - start >= MIN_RUN {
                    self.decode_delimited(&chunk[start..], sink);
                }
                break;
            };
            let start = probe;
            let mut end = probe + MIN_RUN;
            while end < len && in_alphabet(chunk[end]) {
                end += 1;
            }
            if end == len && !last {
                self.dhex.extend_from_slice(&chunk[start..]);
                break;
            }
            if end - start >= MIN_RUN {
                let run = &chunk[start..end];
                self.decode_delimited(run, sink);
            }
            i = end + 1;
        }
    }

    fn decode_delimited(&mut self, run: &[u8], sink: &mut impl FnMut(&'static str, &[u8])) {
        let is_hex = |b: u8| CLASS[b as usize] & HEX != 0;
        let mut i = 0;
        while i + MIN_HEX_PAIRS * 3 - 1 <= run.len() {
            if !(is_hex(run[i]) && is_hex(run[i + 1])) {
                i += 1;
                continue;
            }
            let delim = run[i + 2];
            if is_hex(delim) {
                i += 1;
                continue;
            }
            // `hh` then (`d` `hh`)*, one delimiter throughout.
            let mut end = i + 2;
            while end + 2 < run.len()
                && run[end] == delim
                && is_hex(run[end + 1])
                && is_hex(run[end + 2])
                && run.get(end + 3).is_none_or(|&b| !is_hex(b))
            {
                end += 3;
            }
            let pairs = (end - i).div_ceil(3);
            if pairs >= MIN_HEX_PAIRS {
                self.decoded.clear();
                let mut p = i;
                while p + 1 < end {
                    let h = hex_val(run[p]).unwrap_or(0);
                    let l = hex_val(run[p + 1]).unwrap_or(0);
                    self.decoded.push(h << 4 | l);
                    p += 3;
                }
                let key = key_material(&self.decoded);
                self.pass_on("hex", key, sink);
                i = end;
            } else {
                i += 1;
            }
        }
    }
}

/// Standard or URL-safe base64 without padding; trailing partial groups are dropped.
pub fn decode_base64(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 2);
    decode_base64_into(s, &mut out);
    out
}

/// [`decode_base64`] appending to `out`.
fn decode_base64_into(s: &[u8], out: &mut Vec<u8>) {
    fn val(b: u8) -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    }
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &b in s {
        let Some(v) = val(b) else {
            continue;
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
}

/// The further decodings of an already decoded `text` (a blob's content, a URL component):
/// percent escapes (`+` as a space when `form`), then base64, hex and delimited-hex blobs,
/// each decoded again, to `depth` layers in all. `sink` gets (what was undone, the text);
/// every text is shorter than the one it came from.
pub fn decode_nested(
    text: &[u8],
    form: bool,
    depth: usize,
    sink: &mut dyn FnMut(&'static str, &[u8]),
) {
    if depth == 0 {
        return;
    }
    if has_percent_escape(text) || (form && memchr::memchr(b'+', text).is_some()) {
        let mut out = Vec::new();
        if percent_decode(text, form, &mut out) {
            sink("url-encoded", &out);
            decode_nested(&out, false, depth - 1, sink);
        }
    }
    let mut blobs = Vec::new();
    BlobDecoder::default().feed(text, true, &mut |kind, blob| {
        blobs.push((kind, blob.to_vec()));
    });
    for (kind, blob) in blobs {
        sink(kind, &blob);
        decode_nested(&blob, false, depth - 1, sink);
    }
}

#[cfg(test)]
mod blob_tests {
    use super::*;

    fn blobs(chunks: &[&[u8]]) -> Vec<(String, Vec<u8>)> {
        let mut d = BlobDecoder::default();
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            d.feed(c, i + 1 == chunks.len(), &mut |kind, b| {
                out.push((kind.to_string(), b.to_vec()))
            });
        }
        out
    }

    fn b64(bytes: &[u8]) -> String {
        let mut pem = Vec::new();
        armour("X", bytes, &mut pem);
        let s = String::from_utf8(pem).unwrap();
        s.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    }

    #[test]
    fn finds_base64_and_hex_even_when_split() {
        // base64 of "my key is ghp_4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9eF2hJk"
        let b64 = b"bXkga2V5IGlzIGdocF80ZjlLeDJtUTdwTDFuUjhzVDN2VzZ5WjBhQjVjRDllRjJoSms=";
        let whole = [b"{\"data\":\"".as_slice(), b64, b"\"}"].concat();
        for cut in [1, 5, 20, 40, whole.len() - 3] {
            let got = blobs(&[&whole[..cut], &whole[cut..]]);
            assert_eq!(got.len(), 1, "cut at {cut}");
            assert_eq!(got[0].0, "base64");
            assert_eq!(
                got[0].1,
                b"my key is ghp_4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9eF2hJk"
            );
        }
        let hex = b"6d79206b65792069732067687034663957"; // "my key is ghp4f9W"
        let got = blobs(&[b"x=", hex, b";"]);
        assert_eq!(got[0].0, "hex");
        assert_eq!(got[0].1, b"my key is ghp4f9W");
        assert!(blobs(&[b"short words only, nothing long here"]).is_empty());
    }

    #[test]
    fn wrapped_base64_is_one_blob() {
        let text = b"the key is sk-ant-api03-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA and that was all of it, really";
        let encoded = b64(text);
        for (width, nl, indent) in [(76, "\n", ""), (64, "\r\n", ""), (64, "\n", "    ")] {
            let mut body = format!("data: |\n{indent}");
            for (i, line) in encoded.as_bytes().chunks(width).enumerate() {
                if i > 0 {
                    body.push_str(nl);
                    body.push_str(indent);
                }
                body.push_str(std::str::from_utf8(line).unwrap());
            }
            body.push_str("\nnext: 1\n");
            for cut in [3, 70, 77, 78, 80, body.len() - 1] {
                let got = blobs(&[&body.as_bytes()[..cut], &body.as_bytes()[cut..]]);
                assert_eq!(got.len(), 1, "{width} {nl:?} cut {cut}: {got:?}");
                assert_eq!(got[0].1, text);
            }
        }
    }

    #[test]
    fn delimited_hex_in_any_chunking() {
        let text = b"AKIAZ7PQ4R5ST6UV2WXY and more";
        for delim in [":", "-", " "] {
            let hex: Vec<String> = text.iter().map(|b| format!("{b:02x}")).collect();
            let body = format!("key={} end", hex.join(delim));
            for cut in [1, 10, 40, body.len() - 5] {
                let got = blobs(&[&body.as_bytes()[..cut], &body.as_bytes()[cut..]]);
                assert!(
                    got.iter().any(|(k, b)| k == "hex" && b == text),
                    "{delim:?} cut {cut}: {got:?}"
                );
            }
        }
        // A MAC address or a UUID list is not one.
        assert!(blobs(&[b"de:ad:be:ef:00:11 123e4567-e89b-12d3-a456-426614174000"]).is_empty());
    }

    #[test]
    fn key_material_is_passed_on_armoured() {
        // The start of a PKCS#8 RSA key, then random-looking bytes.
        let mut der = vec![
            0x30, 0x82, 0x04, 0xbd, 0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48,
        ];
        der.extend((0..200u32).map(|i| (i * 97 % 251) as u8));
        let body = format!("{{\"k\":\"{}\"}}", b64(&der));
        let got = blobs(&[body.as_bytes()]);
        assert_eq!(got.len(), 1);
        let pem = String::from_utf8(got[0].1.clone()).unwrap();
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN"),
            "{pem}"
        );
        // A certificate or a public key is not key material.
        let cert = [0x30, 0x82, 0x03, 0x01, 0x30, 0x82, 0x02, 0x01, 0xa0, 0x03];
        assert_eq!(key_material(&cert), None);
    }

    #[test]
    fn hex_in_a_path_is_found_between_slashes() {
        let hex: String = b"ghp_4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9eF2hJk"
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let got = blobs(&[format!("GET https://x.example/upload/{hex} ").as_bytes()]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1, b"ghp_4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9eF2hJk");
    }

    #[test]
    fn nested_decodings_go_three_deep() {
        let mut seen = Vec::new();
        // base64 of "%2541KIA" → "%2541KIA" → "%41KIA" → "AKIA"
        decode_nested(
            b"x=JTI1NDFLSUFBQUFBQUFBQUFBQUFBQUE",
            false,
            3,
            &mut |k, t| seen.push((k, t.to_vec())),
        );
        let kinds: Vec<&str> = seen.iter().map(|s| s.0).collect();
        assert_eq!(kinds, ["base64", "url-encoded", "url-encoded"]);
        assert_eq!(seen[2].1, [b"AKI".as_slice(), &[b'A'; 16]].concat());
    }
}

/// Texts made by joining pieces of a stream (adjacent JSON string values, hard-wrapped
/// lines), and where they were joined: a match that covers no join is one the other views
/// see already. Several independent segments share one buffer, so that one scan covers a
/// chunk's worth of them.
#[derive(Debug, Default)]
pub struct Joined {
    pub text: Vec<u8>,
    /// Spans of `text` put in by joining (a separator), or empty where one was taken out;
    /// in order.
    pub joins: Vec<(usize, usize)>,
    /// Where each segment starts in `text`.
    pub segments: Vec<usize>,
}

/// Put between segments in [`Joined::text`]; a match across it is not reported.
const SEGMENT_SEPARATOR: &[u8] = b"\n\0\n";

impl Joined {
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.joins.clear();
        self.segments.clear();
    }

    /// True when a match over `start..end` takes in a join (or touches one: a `\b` next to
    /// it may hold only because of it), within one segment.
    pub fn crosses(&self, start: usize, end: usize) -> bool {
        let seg = self.segments.partition_point(|&s| s <= start);
        let seg_end = self
            .segments
            .get(seg)
            .map_or(self.text.len(), |&next| next - SEGMENT_SEPARATOR.len());
        if seg == 0 || end > seg_end {
            return false;
        }
        let j = self.joins.partition_point(|&(_, b)| b < start);
        self.joins.get(j).is_some_and(|&(a, _)| a <= end)
    }
}

/// One segment being built: pieces and the joins between them.
#[derive(Debug, Default)]
struct Segment {
    text: Vec<u8>,
    joins: Vec<(usize, usize)>,
    /// Where each piece starts (for keeping the last ones when a segment grows too long).
    pieces: Vec<usize>,
}

impl Segment {
    /// Appends a piece, joined to the previous one by `sep`; an empty piece joins nothing.
    fn push(&mut self, piece: &[u8], sep: &[u8]) {
        if piece.is_empty() {
            return;
        }
        if !self.text.is_empty() {
            let at = self.text.len();
            self.joins.push((at, at + sep.len()));
            self.text.extend_from_slice(sep);
        }
        self.pieces.push(self.text.len());
        self.text.extend_from_slice(piece);
    }

    /// Moves the segment to `out` if it joined anything, and empties it. With `pairs`
    /// (the variant joined without a separator), each two adjacent pieces of a run of three
    /// or more also go as a segment of their own: a key split over two fields between other
    /// values (`"aws", "AKIA…", "…rest", "us-east-1"`) is whole there with nothing glued to
    /// its ends, where the run joined whole reads `awsAKIA…restus-east-1`.
    fn flush(&mut self, out: &mut Joined, pairs: bool) {
        if !self.joins.is_empty() {
            push_segment(out, &self.text, &self.joins);
            if pairs && self.pieces.len() > 2 {
                let end = |k: usize| self.pieces.get(k).map_or(self.text.len(), |&p| p);
                for k in 0..self.pieces.len() - 1 {
                    let (from, mid, to) = (self.pieces[k], self.pieces[k + 1], end(k + 2));
                    push_segment(out, &self.text[from..to], &[(mid - from, mid - from)]);
                }
            }
        }
        self.text.clear();
        self.joins.clear();
        self.pieces.clear();
    }

    /// A segment longer than `cap` goes to `out` and goes on with its last pieces (as many
    /// as fit in `keep` bytes), so that a match across the cut is still seen whole.
    fn bound(&mut self, cap: usize, keep: usize, out: &mut Joined, pairs: bool) {
        if self.text.len() <= cap {
            return;
        }
        let len = self.text.len();
        let from = self
            .pieces
            .iter()
            .copied()
            .find(|&p| len - p <= keep)
            .unwrap_or(len);
        let rest = self.text[from..].to_vec();
        let joins: Vec<(usize, usize)> = self
            .joins
            .iter()
            .filter(|j| j.0 >= from)
            .map(|&(a, b)| (a - from, b - from))
            .collect();
        let pieces: Vec<usize> = self
            .pieces
            .iter()
            .filter(|&&p| p >= from)
            .map(|p| p - from)
            .collect();
        self.flush(out, pairs);
        self.text = rest;
        self.joins = joins;
        self.pieces = pieces;
    }
}

/// Appends one joined segment (`text`, with its `joins`) to `out`.
fn push_segment(out: &mut Joined, text: &[u8], joins: &[(usize, usize)]) {
    if !out.text.is_empty() {
        out.text.extend_from_slice(SEGMENT_SEPARATOR);
    }
    let base = out.text.len();
    out.segments.push(base);
    out.joins
        .extend(joins.iter().map(|&(a, b)| (a + base, b + base)));
    out.text.extend_from_slice(text);
}

/// Longest value joined whole; of a longer one only the token runs at its ends are joined
/// (a key split across values sits at their ends).
const SHORT_VALUE: usize = 256;

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C)
}

/// Joins adjacent JSON string values (`["-----BEGIN…", "MIIE…", …]`, `{"k1":"sk-ant-…",
/// "k2":"…rest"}`) in two ways: as they are (`variants[0]`) and with a line break between
/// them (`variants[1]`). Values are adjacent when only JSON structure and keys come between
/// them. Short values are joined whole; a long one (a chat message) only by the token runs
/// at its ends, so the joined text stays a small part of the body. Streaming: a string
/// split across chunks is followed as it goes, and a long run of values is cut into
/// segments that keep `keep` bytes of the one before.
#[derive(Debug)]
pub struct JsonJoiner {
    keep: usize,
    in_string: bool,
    /// An escape begun in the string and not yet complete (`\`, `\u00`).
    escape: Vec<u8>,
    /// The string's content while it is short.
    value: Vec<u8>,
    long: bool,
    /// A long string's leading token run, and whether it is still growing.
    head: Vec<u8>,
    head_open: bool,
    /// A long string's trailing token run so far.
    tail: Vec<u8>,
    /// A long string's trailing backslashes so far (an odd count escapes a quote).
    backslashes: usize,
    /// A string ended; the next byte that is not blank says if it was a key (`:`).
    pending: bool,
    /// A value was joined and only structure has come since.
    open: bool,
    /// The last value (its tail, if long) while no segment has started: the piece a next
    /// adjacent value joins.
    prev: Vec<u8>,
    segments: [Segment; 2],
    /// What the last chunks joined, one per variant (without and with `\n`).
    pub variants: [Joined; 2],
}

const JOIN_SEPARATORS: [&[u8]; 2] = [b"", b"\n"];

impl JsonJoiner {
    /// `keep`: the longest match of the engine that will scan the joined text.
    pub fn new(keep: usize) -> Self {
        JsonJoiner {
            keep: keep.max(SHORT_VALUE),
            in_string: false,
            escape: Vec::new(),
            value: Vec::new(),
            long: false,
            head: Vec::new(),
            head_open: false,
            tail: Vec::new(),
            backslashes: 0,
            pending: false,
            open: false,
            prev: Vec::new(),
            segments: Default::default(),
            variants: Default::default(),
        }
    }

    /// Reads the next chunk; joined segments that ended are added to `variants` (for the
    /// caller to scan and clear).
    pub fn feed(&mut self, chunk: &[u8], last: bool) {
        let len = chunk.len();
        let mut i = 0;
        while i < len {
            if self.in_string {
                i = self.in_string_bytes(chunk, i);
                continue;
            }
            if self.pending {
                while i < len && is_blank(chunk[i]) {
                    i += 1;
                }
                if i == len {
                    break;
                }
                self.pending = false;
                if chunk[i] == b':' {
                    // It was a key: keys do not separate values.
                    i += 1;
                    continue;
                }
                self.value_done();
            }
            if self.open {
                // Between values only structure keeps them adjacent.
                match chunk[i] {
                    b'"' => self.start_string(),
                    b',' | b'[' | b']' | b'{' | b'}' | b':' => {}
                    b if is_blank(b) => {}
                    _ => self.break_run(),
                }
                i += 1;
            } else {
                match memchr::memchr(b'"', &chunk[i..]) {
                    Some(k) => {
                        i += k + 1;
                        self.start_string();
                    }
                    None => i = len,
                }
            }
        }
        if last {
            if self.pending || self.in_string {
                self.pending = false;
                self.in_string = false;
                self.value_done();
            }
            self.break_run();
        }
    }

    fn start_string(&mut self) {
        self.in_string = true;
        self.escape.clear();
        self.value.clear();
        self.long = false;
        self.head.clear();
        self.head_open = false;
        self.tail.clear();
        self.backslashes = 0;
    }

    /// Reads string bytes from `chunk[i..]`; returns where it stopped.
    fn in_string_bytes(&mut self, chunk: &[u8], mut i: usize) -> usize {
        let len = chunk.len();
        // An escape still being completed.
        while !self.escape.is_empty() && i < len {
            self.escape.push(chunk[i]);
            i += 1;
            let esc = &self.escape;
            let mut out = [0u8; 6];
            let n = if esc[1] != b'u' {
                out[0] = simple_escape(esc[1]).unwrap_or(esc[1]);
                1
            } else if esc.len() == 6 {
                match hex4(&esc[2..6]) {
                    Some(cp) => {
                        let ch = char::from_u32(u32::from(cp)).unwrap_or('\u{FFFD}');
                        ch.encode_utf8(&mut out).len()
                    }
                    None => {
                        out[..5].copy_from_slice(&esc[1..6]);
                        5
                    }
                }
            } else {
                0
            };
            if n > 0 {
                self.escape.clear();
                self.content(&out[..n]);
            }
        }
        if i == len {
            return len;
        }
        if self.long {
            return self.long_string_bytes(chunk, i);
        }
        // Most strings are short (keys, ids): a look at their first bytes finds their end
        // sooner than a search.
        let rest = &chunk[i..];
        let special = |b: &u8| *b == b'"' || *b == b'\\';
        let found = match rest.iter().take(16).position(special) {
            Some(k) => Some(k),
            None if rest.len() <= 16 => None,
            None => memchr::memchr2(b'"', b'\\', &rest[16..]).map(|k| k + 16),
        };
        match found {
            None => {
                self.content(&chunk[i..]);
                len
            }
            Some(k) => {
                self.content(&chunk[i..i + k]);
                if chunk[i + k] == b'"' {
                    self.in_string = false;
                    self.pending = true;
                } else {
                    self.escape.push(b'\\');
                }
                i + k + 1
            }
        }
    }

    /// A long string's bytes from `chunk[i..]`: only its end matters (its closing quote,
    /// the token run before it), and the head run while it grows; escapes are not undone,
    /// a run stops at one. Returns where the string (or the chunk) ends.
    fn long_string_bytes(&mut self, chunk: &[u8], i: usize) -> usize {
        let len = chunk.len();
        let stop = |b: u8| is_blank(b) || b == b'\\' || b == b'"';
        if self.head_open {
            let run = chunk[i..].iter().position(|&b| stop(b));
            let take = run.unwrap_or(len - i).min(self.keep - self.head.len());
            self.head.extend_from_slice(&chunk[i..i + take]);
            self.head_open = run.is_none() && self.head.len() < self.keep;
        }
        // After an odd run of backslashes the chunk starts inside an escape: its letters end
        // the run before them.
        let mut t = i;
        if self.backslashes % 2 == 1 {
            self.tail.clear();
            t = (i + if chunk[i] == b'u' { 5 } else { 1 }).min(len);
        }
        let mut from = i;
        loop {
            let Some(k) = memchr::memchr(b'"', &chunk[from..]) else {
                self.long_tail(&chunk[t..], stop);
                let part = &chunk[i..];
                let trailing = part.iter().rev().take_while(|&&b| b == b'\\').count();
                self.backslashes = if trailing == part.len() {
                    self.backslashes + trailing
                } else {
                    trailing
                };
                return len;
            };
            let q = from + k;
            // A quote after an odd number of backslashes is escaped.
            let mut bs = chunk[i..q]
                .iter()
                .rev()
                .take_while(|&&b| b == b'\\')
                .count();
            if bs == q - i {
                bs += self.backslashes;
            }
            if bs % 2 == 1 {
                from = q + 1;
                continue;
            }
            self.long_tail(&chunk[t.min(q)..q], stop);
            self.backslashes = 0;
            self.in_string = false;
            self.pending = true;
            return q + 1;
        }
    }

    /// The trailing token run after `part`, which follows what came before in the string.
    fn long_tail(&mut self, part: &[u8], stop: impl Fn(u8) -> bool) {
        match part.iter().rposition(|&b| stop(b)) {
            Some(p) => {
                self.tail.clear();
                let mut from = p + 1;
                if part[p] == b'\\' {
                    // An escape starts here (an odd run of backslashes ends at `p`): its
                    // letters are not part of the run.
                    let m = part[..=p].iter().rev().take_while(|&&b| b == b'\\').count();
                    if m % 2 == 1 {
                        from += if part.get(p + 1) == Some(&b'u') { 5 } else { 1 };
                    }
                }
                let run = &part[from.min(part.len())..];
                self.tail
                    .extend_from_slice(&run[run.len().saturating_sub(self.keep)..]);
            }
            None => {
                self.tail.extend_from_slice(part);
                if self.tail.len() > 2 * self.keep {
                    let excess = self.tail.len() - self.keep;
                    self.tail.drain(..excess);
                }
            }
        }
    }

    /// Appends string content (escapes undone).
    fn content(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if !self.long {
            if self.value.len() + bytes.len() <= SHORT_VALUE {
                self.value.extend_from_slice(bytes);
                return;
            }
            // Too long to join whole: from here on only its end runs count.
            self.long = true;
            let value = std::mem::take(&mut self.value);
            let lead = value.iter().position(|&b| is_blank(b));
            self.head
                .extend_from_slice(&value[..lead.unwrap_or(value.len())]);
            self.head_open = lead.is_none();
            self.tail.clear();
            self.extend_tail(&value);
            self.value = value;
            self.value.clear();
        }
        if self.head_open {
            let lead = bytes.iter().position(|&b| is_blank(b));
            let take = lead.unwrap_or(bytes.len()).min(self.keep - self.head.len());
            self.head.extend_from_slice(&bytes[..take]);
            self.head_open = lead.is_none() && self.head.len() < self.keep;
        }
        self.extend_tail(bytes);
    }

    fn extend_tail(&mut self, bytes: &[u8]) {
        match bytes.iter().rposition(|&b| is_blank(b)) {
            Some(p) => {
                self.tail.clear();
                let run = &bytes[p + 1..];
                self.tail
                    .extend_from_slice(&run[run.len().saturating_sub(self.keep)..]);
            }
            None => {
                self.tail.extend_from_slice(bytes);
                if self.tail.len() > 2 * self.keep {
                    let excess = self.tail.len() - self.keep;
                    self.tail.drain(..excess);
                }
            }
        }
    }

    /// The string that ended was a value: it joins the segment. A lone value costs no
    /// copy: it is kept aside (its buffer swapped) until a second one joins it.
    fn value_done(&mut self) {
        let piece: &[u8] = if self.long { &self.head } else { &self.value };
        if self.segments[0].text.is_empty() && self.segments[1].text.is_empty() {
            if self.open && !self.prev.is_empty() && !piece.is_empty() {
                for (seg, sep) in self.segments.iter_mut().zip(JOIN_SEPARATORS) {
                    seg.push(&self.prev, b"");
                    seg.push(piece, sep);
                }
            }
        } else {
            let cap = (4 * self.keep).max(1 << 16);
            for ((seg, sep), out) in self
                .segments
                .iter_mut()
                .zip(JOIN_SEPARATORS)
                .zip(&mut self.variants)
            {
                seg.push(piece, sep);
                if seg.text.len() > cap {
                    seg.bound(cap, self.keep, out, sep.is_empty());
                }
            }
        }
        if self.long {
            // Only its tail joins what follows.
            self.break_run();
            self.prev.clear();
            let from = self.tail.len().saturating_sub(self.keep);
            self.prev.extend_from_slice(&self.tail[from..]);
        } else if self.segments[0].text.is_empty() && !self.value.is_empty() {
            // (An empty value joins nothing and leaves the one before it to join.)
            std::mem::swap(&mut self.prev, &mut self.value);
        }
        self.open = true;
    }

    /// Something other than structure came: the values so far are one segment.
    fn break_run(&mut self) {
        if !self.segments[0].text.is_empty() || !self.segments[1].text.is_empty() {
            for ((seg, out), sep) in self
                .segments
                .iter_mut()
                .zip(&mut self.variants)
                .zip(JOIN_SEPARATORS)
            {
                seg.flush(out, sep.is_empty());
            }
        }
        self.prev.clear();
        self.open = false;
    }
}

/// A byte that may be part of a token (anything printable but a space: base64, vendor
/// formats, a URL with its query).
fn is_token(b: u8) -> bool {
    b.is_ascii_graphic()
}

/// Fewest token bytes that must end a wrapped line: a token cut every 64 or 76 characters
/// fills its lines (or most of the first one), where prose or a list wrapped at 76 columns
/// ends a line with a word.
const MIN_WRAPPED_RUN: usize = 32;

/// Longest line the line views read (a longer one ends a hunk, a block or a wrap).
const LINE_MAX: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Margin {
    None,
    /// In a unified diff hunk: each line's first byte is a marker.
    Hunk,
    /// In a YAML block scalar under a line indented `parent`; its own indentation once its
    /// first line tells.
    Block {
        parent: usize,
        indent: Option<usize>,
    },
}

/// Two views of the text line by line, read in one pass over its line breaks:
///
/// - **unwrapped**: hard-wrapped tokens joined. A line of exactly 64 or 76 characters (after
///   its indentation) that ends in a long token run, followed by a line that starts with a
///   token byte, is a token cut base64-style (`eyJhbGciOi…` in a YAML block, a key wrapped
///   by a mail client); the break and the next line's indentation are taken out.
/// - **dedented**: line margins taken out where a format puts them around content — the
///   marker of each line of a unified diff hunk (the lines after `@@ -… +… @@`), and the
///   indentation of a YAML block scalar (the lines after `key: |`). `.netrc` lines added in
///   a diff (`+machine …`, `+login …`) or an encrypted PEM key in a Helm value then read as
///   they do in the file; a join marks each line's start.
///
/// Only the joined lines are passed on, as segments of [`Joined`]; ordinary text costs a
/// look at each line's length and first and last bytes.
#[derive(Debug)]
pub struct Lines {
    keep: usize,
    /// The current line when it began in an earlier chunk (up to `LINE_MAX` bytes), and
    /// its length.
    line: Vec<u8>,
    line_len: usize,
    /// Unwrapping: a line of wrap length ended (its content kept when no segment is open
    /// yet); the next line's first byte says if it was wrapped.
    wrap_pending: bool,
    wrap_line: Vec<u8>,
    joining: bool,
    wrap_segment: Segment,
    mode: Margin,
    margin_segment: Segment,
    /// Hard-wrapped lines joined, that ended (for the caller to scan and clear).
    pub unwrapped: Joined,
    /// Hunks and blocks without their margins, that ended.
    pub dedented: Joined,
}

impl Lines {
    /// `keep`: the longest match of the engine that will scan the joined text.
    pub fn new(keep: usize) -> Self {
        Lines {
            keep: keep.max(SHORT_VALUE),
            line: Vec::new(),
            line_len: 0,
            wrap_pending: false,
            wrap_line: Vec::new(),
            joining: false,
            wrap_segment: Segment::default(),
            mode: Margin::None,
            margin_segment: Segment::default(),
            unwrapped: Joined::default(),
            dedented: Joined::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8], last: bool) {
        let mut pos = 0;
        // A line carried from the last chunk ends here (or goes on).
        if self.line_len > 0 {
            let Some(nl) = memchr::memchr(b'\n', chunk) else {
                self.carry(chunk);
                if last {
                    self.finish();
                }
                return;
            };
            let mut line = std::mem::take(&mut self.line);
            let room = LINE_MAX.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..nl.min(room)]);
            let n = self.line_len + nl;
            self.read_line(&line, n);
            line.clear();
            self.line = line;
            self.line_len = 0;
            pos = nl + 1;
        }
        // Whole lines: one by one while a wrap, a hunk or a block is open; otherwise from
        // one line that may open one to the next (most text has none).
        let end = memchr::memrchr(b'\n', &chunk[pos..]).map_or(pos, |i| pos + i + 1);
        let mut next = Candidates::default();
        while pos < end {
            let active = self.joining || self.wrap_pending || self.mode != Margin::None;
            let start = if active {
                pos
            } else {
                match next.line_from(chunk, pos, end) {
                    Some(start) => start,
                    None => break,
                }
            };
            let nl = start
                + memchr::memchr(b'\n', &chunk[start..end]).expect("a line ends before `end`");
            self.read_line(&chunk[start..nl], nl - start);
            pos = nl + 1;
        }
        self.carry(&chunk[end..]);
        if last {
            self.finish();
        }
    }

    /// Keeps the start of a line that goes on in the next chunk.
    fn carry(&mut self, part: &[u8]) {
        let room = LINE_MAX.saturating_sub(self.line.len());
        self.line.extend_from_slice(&part[..part.len().min(room)]);
        self.line_len += part.len();
    }

    fn finish(&mut self) {
        if self.line_len > 0 {
            let line = std::mem::take(&mut self.line);
            let n = self.line_len;
            self.read_line(&line, n);
        }
        self.line.clear();
        self.line_len = 0;
        self.end_wrap();
        self.end_margin();
    }

    /// One line, `n` bytes long (`line` holds at most `LINE_MAX` of them), without its
    /// `\n`.
    fn read_line(&mut self, line: &[u8], n: usize) {
        let (line, n) = match line.strip_suffix(b"\r") {
            Some(l) if n == line.len() => (l, n - 1),
            _ => (line, n),
        };
        self.unwrap_line(line, n);
        self.margin_line(line, n);
    }

    fn unwrap_line(&mut self, line: &[u8], n: usize) {
        let idle = !self.joining && !self.wrap_pending;
        if idle
            && (n < WRAP_LENGTHS[0] || (n != 64 && n != 76 && line[0] != b' ' && line[0] != b'\t'))
        {
            // Not of wrap length, and nothing to join: most lines stop here.
            return;
        }
        let indent = line
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let content = &line[indent..];
        if self.wrap_pending {
            self.wrap_pending = false;
            if content.first().is_some_and(|&b| is_token(b)) {
                if !self.joining {
                    self.wrap_segment.push(&self.wrap_line, b"");
                    self.joining = true;
                }
                let at = self.wrap_segment.text.len();
                self.wrap_segment.joins.push((at, at));
                self.wrap_segment.pieces.push(at);
            } else {
                self.end_wrap();
            }
        }
        if self.joining {
            let keep = self.keep;
            self.wrap_segment.text.extend_from_slice(content);
            self.wrap_segment
                .bound(4 * keep, keep, &mut self.unwrapped, false);
        }
        let len = n - indent;
        let wrapped = WRAP_LENGTHS.contains(&len)
            && content
                .iter()
                .rev()
                .take_while(|&&b| is_token(b))
                .take(MIN_WRAPPED_RUN)
                .count()
                == MIN_WRAPPED_RUN;
        if wrapped {
            self.wrap_pending = true;
            if !self.joining {
                self.wrap_line.clear();
                self.wrap_line.extend_from_slice(content);
            }
        } else {
            self.end_wrap();
        }
    }

    fn end_wrap(&mut self) {
        if self.joining {
            self.wrap_segment.flush(&mut self.unwrapped, false);
            self.joining = false;
        }
        self.wrap_pending = false;
    }

    fn margin_line(&mut self, line: &[u8], n: usize) {
        if n > LINE_MAX {
            self.end_margin();
            return;
        }
        match self.mode {
            Margin::None => {
                // Most lines neither start a hunk (`@@`) nor end like a block header.
                let Some(last) = line.iter().rposition(|&b| b != b' ' && b != b'\t') else {
                    return;
                };
                if line[0] != b'@' && !matches!(line[last], b'|' | b'>' | b'-' | b'+' | b'0'..=b'9')
                {
                    return;
                }
            }
            Margin::Hunk => match line.first() {
                Some(b'+' | b'-' | b' ') | None => {
                    self.margin_content(line.get(1..).unwrap_or_default());
                    return;
                }
                _ => self.end_margin(),
            },
            Margin::Block { parent, indent } => {
                let n = line.iter().take_while(|&&b| b == b' ').count();
                if n == line.len() {
                    // A blank line belongs to the block.
                    self.margin_content(b"");
                    return;
                }
                let indent = match indent {
                    Some(i) => i,
                    None if n > parent => {
                        self.mode = Margin::Block {
                            parent,
                            indent: Some(n),
                        };
                        n
                    }
                    None => usize::MAX,
                };
                if n >= indent {
                    self.margin_content(&line[indent..]);
                    return;
                }
                self.end_margin();
            }
        }
        // Does a hunk or a block start here?
        if line.starts_with(b"@@ -") && line[4..].windows(3).any(|w| w == b" @@") {
            self.mode = Margin::Hunk;
        } else if block_header(line) {
            self.mode = Margin::Block {
                parent: line.iter().take_while(|&&b| b == b' ').count(),
                indent: None,
            };
        }
    }

    fn margin_content(&mut self, text: &[u8]) {
        let seg = &mut self.margin_segment;
        if !seg.text.is_empty() {
            seg.text.push(b'\n');
        }
        let at = seg.text.len();
        seg.joins.push((at, at));
        seg.pieces.push(at);
        seg.text.extend_from_slice(text);
        let (cap, keep) = ((4 * self.keep).max(1 << 16), self.keep);
        seg.bound(cap, keep, &mut self.dedented, false);
    }

    fn end_margin(&mut self) {
        self.margin_segment.flush(&mut self.dedented, false);
        self.mode = Margin::None;
    }
}

/// Where the next lines that may open a wrap, a hunk or a block start, found by searches
/// over the whole stretch rather than a look at each line: a hunk header (`@@ -` at a line's
/// start), a block header (`|` or `>`, maybe indicators, at a line's end), a wrapped line
/// (it ends in 32 printable bytes).
/// Each search stops at what it finds, and goes on from there only once the lines read have
/// passed it: each byte is searched once per kind.
#[derive(Default)]
struct Candidates {
    hunk: Option<usize>,
    block: Option<usize>,
    run: Option<usize>,
}

impl Candidates {
    /// The start of the next candidate line in `chunk[pos..end]` (`pos` starts a line and
    /// `end` follows a line break), if any.
    fn line_from(&mut self, chunk: &[u8], pos: usize, end: usize) -> Option<usize> {
        let fresh = |c: Option<usize>| c.filter(|&c| c >= pos);
        let hunk = fresh(self.hunk).unwrap_or_else(|| next_hunk(chunk, pos, end));
        let block = fresh(self.block).unwrap_or_else(|| next_block(chunk, pos, end));
        let run = fresh(self.run).unwrap_or_else(|| next_run(chunk, pos, end));
        (self.hunk, self.block, self.run) = (Some(hunk), Some(block), Some(run));
        let first = hunk.min(block).min(run);
        (first < end).then_some(first)
    }
}

/// The start of the line holding `at` (no earlier than `pos`).
fn line_start(chunk: &[u8], pos: usize, at: usize) -> usize {
    memchr::memrchr(b'\n', &chunk[pos..at]).map_or(pos, |i| pos + i + 1)
}

fn next_hunk(chunk: &[u8], pos: usize, end: usize) -> usize {
    static HUNK: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    if chunk[pos..end].starts_with(b"@@ -") {
        return pos;
    }
    HUNK.get_or_init(|| memchr::memmem::Finder::new(b"\n@@ -"))
        .find(&chunk[pos..end])
        .map_or(usize::MAX, |i| pos + i + 1)
}

/// The next line that opens a literal block scalar (`key: |`, `- |-`): found by its `|` (a
/// folded scalar, `>`, folds its lines into one anyway, and `>` is everywhere in code).
fn next_block(chunk: &[u8], pos: usize, end: usize) -> usize {
    for h in memchr::memchr_iter(b'|', &chunk[pos..end]) {
        let mut i = pos + h + 1;
        while i < end && matches!(chunk[i], b'-' | b'+' | b'0'..=b'9') {
            i += 1;
        }
        while i < end && matches!(chunk[i], b' ' | b'\t' | b'\r') {
            i += 1;
        }
        if i < end && chunk[i] == b'\n' {
            let start = line_start(chunk, pos, pos + h);
            if block_header(&chunk[start..i]) {
                return start;
            }
        }
    }
    usize::MAX
}

fn next_run(chunk: &[u8], pos: usize, end: usize) -> usize {
    // A wrapped line ends in MIN_WRAPPED_RUN printable bytes: a run of bytes from `!` up.
    match first_run::<MIN_WRAPPED_RUN>(&chunk[pos..end], RunBytes::AtLeast(b'!')) {
        Some(k) => line_start(chunk, pos, pos + k),
        None => usize::MAX,
    }
}

/// A YAML line that opens a block scalar: `key: |`, `- >-`, `key: |2+` (a key or a list
/// item, then `|` or `>`, and chomping and indentation indicators).
fn block_header(line: &[u8]) -> bool {
    let end = line.trim_ascii_end();
    let indicators = end
        .iter()
        .rev()
        .take_while(|b| matches!(b, b'-' | b'+' | b'0'..=b'9'))
        .count();
    let Some((&style, rest)) = end[..end.len() - indicators].split_last() else {
        return false;
    };
    if style != b'|' && style != b'>' {
        return false;
    }
    let rest = rest.trim_ascii_end();
    rest.ends_with(b":") || rest.trim_ascii() == b"-" || rest.ends_with(b" -")
}

#[cfg(test)]
mod join_tests {
    use super::*;

    fn segments(j: &Joined) -> Vec<String> {
        let mut out = Vec::new();
        for (k, &s) in j.segments.iter().enumerate() {
            let end = j
                .segments
                .get(k + 1)
                .map_or(j.text.len(), |&n| n - SEGMENT_SEPARATOR.len());
            out.push(String::from_utf8_lossy(&j.text[s..end]).into_owned());
        }
        out
    }

    fn join(body: &str, cut: usize) -> [Vec<String>; 2] {
        let mut j = JsonJoiner::new(300);
        j.feed(&body.as_bytes()[..cut], false);
        j.feed(&body.as_bytes()[cut..], true);
        [segments(&j.variants[0]), segments(&j.variants[1])]
    }

    #[test]
    fn adjacent_values_are_joined_in_any_chunking() {
        let body = r#"{"k1":"sk-ant-api03-AAAA","k2":"BB\u0042B", "n": 5, "x": ["-----BEGIN X-----", "MIIE", "-----END X-----"]}"#;
        for cut in 0..body.len() {
            let [plain, lines] = join(body, cut);
            assert_eq!(
                plain,
                [
                    "sk-ant-api03-AAAABBBB",
                    "-----BEGIN X-----MIIE-----END X-----",
                    "-----BEGIN X-----MIIE",
                    "MIIE-----END X-----",
                ],
                "cut {cut}"
            );
            assert_eq!(
                lines,
                [
                    "sk-ant-api03-AAAA\nBBBB",
                    "-----BEGIN X-----\nMIIE\n-----END X-----"
                ]
            );
        }
    }

    #[test]
    fn long_values_join_by_their_end_runs() {
        let long = r#"lorem ipsum \"quoted\" \\ back\\slash "#.repeat(20);
        let body = format!(
            r#"[{{"role":"user","content":"{long}\ntail-run"}}, {{"c":"next part"}}, "x\\"]"#
        );
        for cut in 0..body.len() {
            let [plain, _] = join(&body, cut);
            assert_eq!(
                plain,
                [
                    "userlorem",
                    "tail-runnext partx\\",
                    "tail-runnext part",
                    "next partx\\"
                ],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn a_value_split_over_two_fields_between_others_is_whole_in_a_pair() {
        let body = r#"{"provider":"aws","access_key":"AKIAQ3EGUZD4","key_suffix":"NSUZ7V2X","region":"us-east-1"}"#;
        for cut in 0..body.len() {
            let [plain, _] = join(body, cut);
            assert!(
                plain.iter().any(|s| s == "AKIAQ3EGUZD4NSUZ7V2X"),
                "cut {cut}: {plain:?}"
            );
        }
    }

    #[test]
    fn crossing_a_join_is_told_apart() {
        let mut j = JsonJoiner::new(300);
        j.feed(br#"["abc","def"], 1, ["ghi","jkl"]"#, true);
        let v = &j.variants[0];
        assert_eq!(v.text, b"abcdef\n\0\nghijkl");
        assert!(v.crosses(0, 6));
        assert!(v.crosses(3, 6), "touching the join");
        assert!(!v.crosses(4, 6));
        assert!(!v.crosses(0, 2));
        assert!(!v.crosses(2, 11), "across segments");
        assert!(v.crosses(9, 15));
    }

    #[test]
    fn margins_come_off_diff_hunks_and_yaml_blocks() {
        let body = "diff --git a/.netrc b/.netrc\n--- a/.netrc\n+++ b/.netrc\n@@ -0,0 +1,3 @@\n+machine x.example\n+  login me\n+  password s3cret99\ndiff --git a/v.yaml b/v.yaml\nkey: |\n    -----BEGIN X-----\n    Proc-Type: 4\n\n    AAAA\nnext: 1\n| a | b |\n| c | d |\n";
        for cut in 0..body.len() {
            let mut m = Lines::new(300);
            m.feed(&body.as_bytes()[..cut], false);
            m.feed(&body.as_bytes()[cut..], true);
            assert_eq!(
                segments(&m.dedented),
                [
                    "machine x.example\n  login me\n  password s3cret99",
                    "-----BEGIN X-----\nProc-Type: 4\n\nAAAA"
                ],
                "cut {cut}"
            );
        }
        assert!(block_header(b"  value: |"));
        assert!(block_header(b"- >-"));
        assert!(block_header(b"k: |2+"));
        assert!(!block_header(b"| a | b |"));
        assert!(!block_header(b"let f = a ||"));
    }

    #[test]
    fn hard_wrapped_tokens_are_joined() {
        let token: String = (0..150)
            .map(|i| b"ABCDEFGHabcdefgh0123456789"[i % 26] as char)
            .collect();
        for (width, indent, nl) in [(64, "", "\n"), (76, "  ", "\r\n")] {
            let line = format!("token: {token}");
            let mut body = String::from("prose first\n");
            for (k, piece) in line.as_bytes().chunks(width).enumerate() {
                if k > 0 {
                    body.push_str(nl);
                }
                body.push_str(indent);
                body.push_str(std::str::from_utf8(piece).unwrap());
            }
            body.push_str("\nafter\n");
            for cut in [1, 20, 70, 80, 90, body.len() - 2] {
                let mut u = Lines::new(300);
                u.feed(&body.as_bytes()[..cut], false);
                u.feed(&body.as_bytes()[cut..], true);
                assert_eq!(
                    segments(&u.unwrapped),
                    std::slice::from_ref(&line),
                    "{width} cut {cut}"
                );
            }
        }
        // Prose wrapped at 76, or a list whose line ends in a short token, is left alone.
        let mut u = Lines::new(300);
        let prose = format!(
            "{}word\n{}\n{}api_key: YOUR_API_KEY\nc356ecd9-d7a0-3fcc\n",
            "x ".repeat(36),
            "next line",
            "y".repeat(43)
        );
        u.feed(prose.as_bytes(), true);
        assert!(u.unwrapped.is_empty());
    }
}
