//! Small decoders for the place-based families (hostname labels, URL segments): strict hex,
//! base32 and base64 (standard and URL-safe), and the test that decoded bytes are text.

pub(crate) fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Even-length hex, either case (not mixed within the value).
pub(crate) fn hex_decode(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    let upper = s.iter().any(|b| (b'A'..=b'F').contains(b));
    let lower = s.iter().any(|b| (b'a'..=b'f').contains(b));
    if upper && lower {
        return None;
    }
    s.chunks_exact(2)
        .map(|p| Some((hex_value(p[0])? << 4) | hex_value(p[1])?))
        .collect()
}

/// RFC 4648 base32 (`A-Z2-7`, either case, optional `=` padding).
pub(crate) fn base32_decode(s: &[u8]) -> Option<Vec<u8>> {
    let s = trim_padding(s);
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn trim_padding(s: &[u8]) -> &[u8] {
    let mut end = s.len();
    while end > 0 && s[end - 1] == b'=' {
        end -= 1;
    }
    &s[..end]
}

/// Base64, standard (`+/`) or URL-safe (`-_`) alphabet (not both), padding optional.
pub(crate) fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let s = trim_padding(s);
    let std = s.iter().any(|&b| b == b'+' || b == b'/');
    let url = s.iter().any(|&b| b == b'-' || b == b'_');
    if std && url || s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Printable ASCII (and tab, CR, LF) with some letters or digits: what encoded text, a
/// credential or a file's contents decode to, and what random bytes almost never are (each
/// byte is printable with probability 0.37).
pub(crate) fn is_text(b: &[u8]) -> bool {
    !b.is_empty()
        && b.iter()
            .all(|&c| (0x20..0x7F).contains(&c) || matches!(c, b'\t' | b'\n' | b'\r'))
        && b.iter().filter(|c| c.is_ascii_alphanumeric()).count() * 2 >= b.len()
}

/// Magic numbers of compressed data (gzip, zlib, zstd, bzip2, xz).
pub(crate) fn compressed_format(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(&[0x1F, 0x8B]) {
        Some("gzip")
    } else if b.len() >= 2 && b[0] == 0x78 && matches!(b[1], 0x01 | 0x5E | 0x9C | 0xDA) {
        Some("zlib")
    } else if b.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        Some("zstd")
    } else if b.starts_with(b"BZh") {
        Some("bzip2")
    } else if b.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else {
        None
    }
}

/// Shannon entropy in bits per character.
pub(crate) fn entropy(s: &[u8]) -> f64 {
    crate::verify::shannon_entropy(s)
}

pub(crate) use crate::verify::is_uuid;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoders() {
        assert_eq!(hex_decode(b"4a6f686e").unwrap(), b"John");
        assert!(hex_decode(b"4A6f").is_none());
        assert_eq!(base32_decode(b"JBSWY3DP").unwrap(), b"Hello");
        assert_eq!(base32_decode(b"jbswy3dp").unwrap(), b"Hello");
        assert_eq!(
            base64_decode(b"c2VjcmV0X3Rva2VuXzEyMzQ1Njc4OTA").unwrap(),
            b"secret_token_1234567890"
        );
        assert_eq!(base64_decode(b"QUtJQQ==").unwrap(), b"AKIA");
        assert!(base64_decode(b"ab+c_d").is_none());
        assert!(is_text(b"postgres://user:pass@db"));
        assert!(!is_text(&[0xDE, 0xAD, 0x41, 0x42]));
        assert!(!is_text(b"!!!!!!"));
    }
}
