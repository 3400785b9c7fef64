//! Decoders that show the scanner what an agent actually sent: JSON string escapes (a PEM
//! key pasted into a chat message arrives as `-----BEGIN…\n…`) and URL percent-encoding
//! (`%2B`, `%2F` inside a token). Both are streaming: an escape split across two chunks is
//! held until the next chunk completes it.

/// Undoes JSON string escapes everywhere in the text (outside strings a backslash is rare,
/// and treating it the same costs nothing in accuracy for scanning).
#[derive(Debug, Default)]
pub struct JsonUnescaper {
    pending: Vec<u8>,
}

impl JsonUnescaper {
    /// True when no escape is waiting for its next chunk.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Decodes `chunk`, appending to `out`. Returns true if anything was unescaped.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> bool {
        let input = with_pending(&mut self.pending, chunk);
        let mut changed = false;
        let mut i = 0;
        out.reserve(input.len());
        while i < input.len() {
            // Copy the run up to the next backslash in one go.
            let Some(run) = memchr::memchr(b'\\', &input[i..]) else {
                out.extend_from_slice(&input[i..]);
                break;
            };
            out.extend_from_slice(&input[i..i + run]);
            i += run;
            let b = input[i];
            let Some(&next) = input.get(i + 1) else {
                self.pending.extend_from_slice(&input[i..]);
                break;
            };
            let simple = match next {
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                b'b' => Some(0x08),
                b'f' => Some(0x0C),
                b'/' => Some(b'/'),
                b'\\' => Some(b'\\'),
                b'"' => Some(b'"'),
                _ => None,
            };
            if let Some(c) = simple {
                out.push(c);
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
                    let ch = char::from_u32(u32::from(cp)).unwrap_or('\u{FFFD}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    changed = true;
                    i += 6;
                    continue;
                }
            }
            out.push(b);
            i += 1;
        }
        changed
    }
}

/// The chunk, prefixed by an escape left incomplete by the previous one. Copies only when
/// something was pending (rarely): the common chunk is decoded in place.
fn with_pending<'a>(pending: &mut Vec<u8>, chunk: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
    if pending.is_empty() {
        return std::borrow::Cow::Borrowed(chunk);
    }
    let mut joined = std::mem::take(pending);
    joined.extend_from_slice(chunk);
    std::borrow::Cow::Owned(joined)
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

/// Decodes `%XX` sequences (a literal `+` stays a `+`: tokens contain it).
#[derive(Debug, Default)]
pub struct PercentDecoder {
    pending: Vec<u8>,
}

impl PercentDecoder {
    /// True when no escape is waiting for its next chunk.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Decodes `chunk`, appending to `out`. Returns true if anything was decoded.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> bool {
        let input = with_pending(&mut self.pending, chunk);
        let mut changed = false;
        let mut i = 0;
        out.reserve(input.len());
        while i < input.len() {
            // Copy the run up to the next `%` in one go.
            let Some(run) = memchr::memchr(b'%', &input[i..]) else {
                out.extend_from_slice(&input[i..]);
                break;
            };
            out.extend_from_slice(&input[i..i + run]);
            i += run;
            let b = input[i];
            if input.len() < i + 3 {
                self.pending.extend_from_slice(&input[i..]);
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
        changed
    }
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

    #[test]
    fn percent_escapes_split_across_chunks() {
        let mut d = PercentDecoder::default();
        let mut out = Vec::new();
        d.feed(b"key=abc%2", &mut out);
        d.feed(b"Bdef%2Fg+h%zz", &mut out);
        assert_eq!(out, b"key=abc+def/g+h%zz");
    }
}

/// Shortest base64 run worth decoding: the shortest credentials are ~20 bytes (28 chars).
const MIN_BASE64_RUN: usize = 24;
/// Shortest hex run worth decoding (16 bytes).
const MIN_HEX_RUN: usize = 32;
/// A run longer than this is decoded in pieces rather than held whole.
const MAX_PENDING_RUN: usize = 1 << 20;

const B64: u8 = 1;
const HEX: u8 = 2;

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
            v |= HEX;
        }
        t[c] = v;
        c += 1;
    }
    t
}
static CLASS: [u8; 256] = class_table();

/// Finds base64 and hex blobs in a stream and decodes them, so that an encoded credential
/// is scanned in the clear. A blob split across chunks is held until it ends.
#[derive(Debug, Default)]
pub struct BlobDecoder {
    run: Vec<u8>,
    decoded: Vec<u8>,
}

/// Nine in ten bytes printable: decoded text worth scanning, not random binary.
fn mostly_text(bytes: &[u8]) -> bool {
    let printable = bytes
        .iter()
        .filter(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    !bytes.is_empty() && printable * 10 >= bytes.len() * 9
}

impl BlobDecoder {
    /// Calls `sink` with each decoded blob that ends in (or before) this chunk; `last` ends
    /// the stream.
    pub fn feed(&mut self, chunk: &[u8], last: bool, sink: &mut impl FnMut(&'static str, &[u8])) {
        let in_alphabet = |b: u8| CLASS[b as usize] != 0;
        let len = chunk.len();
        let mut i = 0;
        // A run left open by the previous chunk continues here.
        if !self.run.is_empty() {
            let end = chunk.iter().position(|&b| !in_alphabet(b)).unwrap_or(len);
            self.run.extend_from_slice(&chunk[..end]);
            if end == len {
                if last || self.run.len() >= MAX_PENDING_RUN {
                    self.finish_run(sink);
                }
                return;
            }
            self.finish_run(sink);
            i = end + 1;
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
            let probe = i + MIN_RUN - 1;
            if probe >= len {
                // Too short to judge: keep what may begin a run that goes on next chunk.
                let start = chunk[i..]
                    .iter()
                    .rposition(|&b| !in_alphabet(b))
                    .map_or(i, |p| i + p + 1);
                self.run.extend_from_slice(&chunk[start..]);
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
                self.run.extend_from_slice(&chunk[start..]);
                break;
            }
            if end - start >= MIN_RUN {
                self.run.extend_from_slice(&chunk[start..end]);
                self.finish_run(sink);
            }
            i = end + 1;
        }
        if last {
            self.finish_run(sink);
        }
    }

    fn finish_run(&mut self, sink: &mut impl FnMut(&'static str, &[u8])) {
        if self.run.is_empty() {
            return;
        }
        let run = std::mem::take(&mut self.run);
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
            if mostly_text(&head) {
                self.decoded.extend(run.chunks(2).map(hex));
                if mostly_text(&self.decoded) {
                    sink("hex", &self.decoded);
                }
            }
        } else if run.len() >= MIN_BASE64_RUN {
            let mut head = Vec::new();
            std::mem::swap(&mut head, &mut self.decoded);
            decode_base64_into(&run[..MIN_BASE64_RUN], &mut head);
            if mostly_text(&head) {
                head.clear();
                decode_base64_into(&run, &mut head);
                if mostly_text(&head) {
                    sink("base64", &head);
                }
            }
            self.decoded = head;
        }
        self.run = run;
        self.run.clear();
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

    #[test]
    fn finds_base64_and_hex_even_when_split() {
        // base64 of "my key is ghp_4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9eF2hJk"
        let b64 = b"bXkga2V5IGlzIGdocF80ZjlLeDJtUTdwTDFuUjhzVDN2VzZ5WjBhQjVjRDllRjJoSms=";
        let whole = [b"{\"data\":\"".as_slice(), b64, b"\"}"].concat();
        let got = blobs(&[&whole[..20], &whole[20..]]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "base64");
        assert_eq!(
            got[0].1,
            b"my key is ghp_4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9eF2hJk"
        );
        let hex = b"6d79206b65792069732067687034663957"; // "my key is ghp4f9W"
        let got = blobs(&[b"x=", hex, b";"]);
        assert_eq!(got[0].0, "hex");
        assert_eq!(got[0].1, b"my key is ghp4f9W");
        assert!(blobs(&[b"short words only, nothing long here"]).is_empty());
    }
}
