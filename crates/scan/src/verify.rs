//! Checks a candidate must pass after its pattern matched: an entropy floor (rejects
//! `xxxxxxxx` placeholders) and vendor checksums (rejects random strings of the right shape).

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let len = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

/// A hex digest of a common length (MD5, SHA-1, SHA-256, SHA-512) or a UUID.
pub fn looks_like_hash_or_id(value: &[u8]) -> bool {
    let v = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    let hex = |s: &[u8]| s.iter().all(u8::is_ascii_hexdigit);
    if matches!(v.len(), 32 | 40 | 64 | 128) && hex(v) {
        return true;
    }
    is_uuid(v)
}

/// `8-4-4-4-12` hex.
pub fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    None,
    /// GitHub's token format: the last 6 characters are the base62 CRC32 of the rest of the
    /// token body after the prefix (`ghp_` + 30 random + 6 checksum).
    GithubCrc32,
    /// npm's granular tokens use the same scheme.
    NpmCrc32,
    /// HTTP Basic credentials: base64 of printable `user:password`.
    BasicAuth,
}

impl Checksum {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" | "" => Some(Checksum::None),
            "github_crc32" => Some(Checksum::GithubCrc32),
            "npm_crc32" => Some(Checksum::NpmCrc32),
            "basic_auth" => Some(Checksum::BasicAuth),
            _ => None,
        }
    }

    pub fn holds(self, token: &[u8]) -> bool {
        match self {
            Checksum::None => true,
            Checksum::GithubCrc32 | Checksum::NpmCrc32 => crc32_base62_suffix_holds(token),
            Checksum::BasicAuth => {
                let raw = crate::decode::decode_base64(token);
                raw.len() > 2
                    && raw[1..].contains(&b':')
                    && raw.iter().all(|b| (32..127).contains(b))
            }
        }
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `<prefix>_<body><6 base62 chars of crc32(body)>`; the prefix ends at the last `_`.
fn crc32_base62_suffix_holds(token: &[u8]) -> bool {
    let Some(us) = token.iter().rposition(|&b| b == b'_') else {
        return false;
    };
    let rest = &token[us + 1..];
    if rest.len() <= 6 {
        return false;
    }
    let (body, check) = rest.split_at(rest.len() - 6);
    let mut n = crc32fast::hash(body);
    let mut expected = [b'0'; 6];
    for slot in expected.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    expected == check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_separates_placeholders_from_keys() {
        assert!(shannon_entropy(b"xxxxxxxxxxxxxxxxxxxx") < 0.1);
        assert!(shannon_entropy(b"4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9eF") > 4.0);
    }

    #[test]
    fn github_checksum() {
        let body = b"4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9";
        let mut n = crc32fast::hash(body);
        let mut check = [b'0'; 6];
        for slot in check.iter_mut().rev() {
            *slot = BASE62[(n % 62) as usize];
            n /= 62;
        }
        let token = [b"ghp_".as_slice(), body, &check].concat();
        assert!(Checksum::GithubCrc32.holds(&token));
        let mut bad = token.clone();
        bad[10] ^= 1;
        assert!(!Checksum::GithubCrc32.holds(&bad));
    }
}
