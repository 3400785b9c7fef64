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
    /// Decodes `chunk`, appending to `out`. Returns true if anything was unescaped.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> bool {
        let mut input = std::mem::take(&mut self.pending);
        input.extend_from_slice(chunk);
        let mut changed = false;
        let mut i = 0;
        out.reserve(input.len());
        while i < input.len() {
            let b = input[i];
            if b != b'\\' {
                out.push(b);
                i += 1;
                continue;
            }
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
    /// Decodes `chunk`, appending to `out`. Returns true if anything was decoded.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> bool {
        let mut input = std::mem::take(&mut self.pending);
        input.extend_from_slice(chunk);
        let mut changed = false;
        let mut i = 0;
        out.reserve(input.len());
        while i < input.len() {
            let b = input[i];
            if b != b'%' {
                out.push(b);
                i += 1;
                continue;
            }
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
