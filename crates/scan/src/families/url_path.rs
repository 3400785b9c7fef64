//! Data encoded in URL paths and query values (family `url_entropy`): [`check_url_path`].
//!
//! Each path segment and query value is percent-decoded and cut into tokens of the base64
//! alphabets (`A-Za-z0-9+/=-_`; `.`, `~`, `:`, `,` and the rest separate). A token is flagged
//! when it carries data:
//!
//! - **encoded text**: base64/base64url (≥ 16 chars, both letter cases, ≥ 12 bytes decoded),
//!   hex (≥ 16 chars) or upper-case base32 (≥ 16 chars) that decodes to printable text
//!   (random bytes are printable with probability 0.37 each: a random id of 12 bytes decodes to
//!   text once in 150,000). Text that is a URL (image proxies, `gid://…`) or a Relay-style
//!   `Type:123` id is not data;
//! - **compressed data**: base64 of gzip/zlib/zstd/bzip2/xz (≥ 16 bytes);
//! - **a random blob**: ≥ 48 characters of one alphabet (base64 with ≥ 10 % upper case, ≥ 10 %
//!   lower case and ≥ 5 % digits at ≥ 4.2 bits per char, or hex at ≥ 3.5 bits per char) that is not a digest (hex of 32/40/48/
//!   56/64/96/128 chars, base64 of 16/20/28/32/48/64 bytes). Opaque ids are shorter: Google
//!   Docs/Drive ids (33–44), Firebase (20), nanoid (21), ULID (26), KSUID (27).
//!
//! - **nesting deeper than airlock decodes**: a value percent-encoded more than
//!   [`DECODE_DEPTH`] times (`%25252541`) hides what it holds from every scanner, so it is
//!   flagged whatever it holds.
//!
//! Expected there, never flagged: JWTs (the catalogue's `jwt` rule judges tokens, with issuer
//! binding); the OAuth/SAML round-trip values `state`, `code`, `nonce`, `SAMLRequest`,
//! `SAMLResponse`, `RelayState`, CloudFront's `Policy`, pagination cursors (`cursor`, `after`,
//! `page_token`, `continuation`…) and presigning credentials (`X-Amz-Credential`,
//! `X-Amz-Security-Token`, …); signatures (`X-Amz-Signature`, `X-Goog-Signature`, `sig`,
//! `Signature`, `hmac`, `hash`, `integrity`…) are exempt from the random-blob test only (a
//! signature is random; text under that name is still data). Content-addressed paths pass: hex
//! digests (also fanned out as `ab/cd/<rest>` in package and Git object stores), `sha256-…`/
//! `sha512-…` SRI forms, `sha256:<hex>` digests, UUIDs, and cache-busting fingerprints
//! (`app.3f9a2b1c.js`, `chunk-AB12CD34.js`: far below the lengths above).

use super::encoded::{
    base32_decode, base64_decode, compressed_format, entropy, hex_decode, is_text, is_uuid,
};

/// Where in the URL a signal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlPart {
    /// The `index`-th path segment (0 = the first after `/`).
    Path { index: usize },
    /// The value of the query parameter whose name is at `name_start..name_end`.
    Query { name_start: usize, name_end: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlSignalKind {
    /// Decodes (`encoding`: "base64", "hex", "base32") to `bytes` bytes of text.
    EncodedText {
        encoding: &'static str,
        bytes: usize,
    },
    /// base64 of compressed data (`format`: "gzip", "zlib", …).
    Compressed { format: &'static str },
    /// A random blob of `len` characters (`alphabet`: "base64", "hex").
    RandomBlob { alphabet: &'static str, len: usize },
    /// Percent-encoded `depth` times, deeper than [`DECODE_DEPTH`]: what is inside was never
    /// looked at, so it is treated as hidden.
    NestedEncoding { depth: usize },
}

/// How many rounds of percent-decoding airlock's scanners apply (the `decode` stage's nesting
/// limit). Values encoded deeper are flagged rather than trusted.
pub const DECODE_DEPTH: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlSignal {
    pub kind: UrlSignalKind,
    pub part: UrlPart,
    /// The raw (percent-encoded) span of the segment or value in the input: what a record
    /// masks.
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlVerdict {
    pub signals: Vec<UrlSignal>,
}

impl UrlVerdict {
    pub fn flagged(&self) -> bool {
        !self.signals.is_empty()
    }

    /// One line per URL; `mask` shows at most the first 8 characters of each flagged value.
    pub fn explain(&self, path_and_query: &str, mask: bool) -> String {
        use std::fmt::Write;
        let mut line = String::from(if self.flagged() { "flag" } else { "pass" });
        for (i, s) in self.signals.iter().enumerate() {
            let raw = path_and_query.get(s.start..s.end).unwrap_or("");
            let shown = if mask {
                let cut = raw.char_indices().nth(8).map_or(raw.len(), |(i, _)| i);
                format!("{}…", &raw[..cut])
            } else {
                raw.to_string()
            };
            let place = match s.part {
                UrlPart::Path { index } => format!("path segment {index}"),
                UrlPart::Query {
                    name_start,
                    name_end,
                } => format!(
                    "query {}",
                    path_and_query.get(name_start..name_end).unwrap_or("")
                ),
            };
            let what = match s.kind {
                UrlSignalKind::EncodedText { encoding, bytes } => {
                    format!("{encoding} of {bytes} bytes of text")
                }
                UrlSignalKind::Compressed { format } => format!("base64 of {format} data"),
                UrlSignalKind::RandomBlob { alphabet, len } => {
                    format!("random {alphabet} blob of {len} chars")
                }
                UrlSignalKind::NestedEncoding { depth } => {
                    format!("percent-encoded {depth} times (decoded to depth {DECODE_DEPTH})")
                }
            };
            let _ = write!(
                line,
                "{} {place} '{shown}': {what}",
                if i == 0 { ":" } else { ";" }
            );
        }
        line
    }
}

/// Query parameters whose values are expected to be encoded data.
const EXPECTED_ENCODED: &[&str] = &[
    "state",
    "code",
    "nonce",
    "relaystate",
    "samlrequest",
    "samlresponse",
    "sigalg",
    "id_token_hint",
    "client_assertion",
    "request",
    "policy",
    "key-pair-id",
    "cursor",
    "after",
    "before",
    "next",
    "next_cursor",
    "nextcursor",
    "start_cursor",
    "page_token",
    "pagetoken",
    "next_page_token",
    "nextpagetoken",
    "continuation",
    "continuation_token",
    "continuationtoken",
    "pagination_token",
    "marker",
    "x-amz-security-token",
    "x-amz-credential",
    "x-goog-credential",
    "googleaccessid",
];

/// Query parameters whose values are expected to be random (signatures, digests).
const EXPECTED_RANDOM: &[&str] = &[
    "sig",
    "signature",
    "x-amz-signature",
    "x-goog-signature",
    "hmac",
    "hash",
    "checksum",
    "digest",
    "integrity",
    "etag",
    "sha",
    "sha1",
    "sha256",
    "sha512",
    "md5",
];

fn named(name: &[u8], list: &[&str]) -> bool {
    list.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

fn percent_decode(raw: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && i + 2 < raw.len()
            && let (Some(h), Some(l)) = (
                super::encoded::hex_value(raw[i + 1]),
                super::encoded::hex_value(raw[i + 2]),
            )
        {
            out.push((h << 4) | l);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
}

fn has_escape(v: &[u8]) -> bool {
    v.windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

/// The nesting depth of percent-encoding in `raw` when it exceeds [`DECODE_DEPTH`]
/// (`%25252541` is `A` encoded 4 times). Legitimate nesting (a URL inside a redirect URL
/// inside a login URL) stays within 3; deeper is an encoder run on purpose.
fn nested_beyond_decoding(raw: &[u8]) -> Option<usize> {
    // Deeper nesting needs `%25` escapes at every level but the last.
    if !raw.windows(3).any(|w| w.eq_ignore_ascii_case(b"%25")) {
        return None;
    }
    let mut cur = raw.to_vec();
    let mut next = Vec::new();
    for round in 1..=8 {
        percent_decode(&cur, &mut next);
        std::mem::swap(&mut cur, &mut next);
        if !has_escape(&cur) {
            return (round > DECODE_DEPTH).then_some(round);
        }
    }
    Some(9)
}

fn looks_like_jwt(v: &[u8]) -> bool {
    let parts: Vec<&[u8]> = v.split(|&b| b == b'.').collect();
    parts.len() == 3
        && parts[0].starts_with(b"eyJ")
        && parts[..2].iter().all(|p| {
            p.len() >= 4
                && p.iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A web address or a path (an image proxy's target, Shopify's `gid://` ids), with no
/// credentials in it (`postgres://user:pass@db` is data).
fn looks_like_url(text: &[u8]) -> bool {
    let starts = |p: &[u8]| text.len() >= p.len() && text[..p.len()].eq_ignore_ascii_case(p);
    (starts(b"http://")
        || starts(b"https://")
        || starts(b"gid://")
        || starts(b"/")
        || starts(b"www."))
        && !text.contains(&b'@')
}

/// `Type:123` / `Package-123` (Relay-style global ids) or `04:User1` / `010:Repository123`
/// (GitHub node ids).
fn opaque_id_text(text: &[u8]) -> bool {
    let Some(colon) = text.iter().position(|&b| b == b':' || b == b'-') else {
        return false;
    };
    let (left, right) = (&text[..colon], &text[colon + 1..]);
    if left.is_empty() || right.is_empty() || text.len() > 64 {
        return false;
    }
    let type_name = left[0].is_ascii_uppercase() && left.iter().all(u8::is_ascii_alphanumeric);
    if type_name && right.iter().all(u8::is_ascii_digit) {
        return true;
    }
    let letters = right.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    left.len() <= 3
        && left.iter().all(u8::is_ascii_digit)
        && letters > 0
        && right[0].is_ascii_uppercase()
        && right[letters..].iter().all(u8::is_ascii_digit)
        && letters < right.len()
}

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
}

const HEX_DIGEST_LENGTHS: [usize; 7] = [32, 40, 48, 56, 64, 96, 128];
const DIGEST_BYTES: [usize; 6] = [16, 20, 28, 32, 48, 64];

/// Judges one token; `expect_random`: a signature's place (no random-blob signal).
fn judge_token(tok: &[u8], expect_random: bool, fanned_out: usize) -> Option<UrlSignalKind> {
    let mut tok = tok;
    // SRI and prefixed digests: `sha512-<base64>`.
    for p in [&b"sha1-"[..], b"sha256-", b"sha384-", b"sha512-"] {
        if tok.len() > p.len() && tok[..p.len()].eq_ignore_ascii_case(p) {
            tok = &tok[p.len()..];
        }
    }
    let len = tok.len();
    if len < 16 {
        return None;
    }
    let hex = tok.iter().all(u8::is_ascii_hexdigit);
    if hex {
        if let Some(d) = hex_decode(tok)
            && is_text(&d)
            && !looks_like_url(&d)
        {
            return Some(UrlSignalKind::EncodedText {
                encoding: "hex",
                bytes: d.len(),
            });
        }
        let digest =
            HEX_DIGEST_LENGTHS.contains(&len) || HEX_DIGEST_LENGTHS.contains(&(len + fanned_out));
        if len >= 48 && !digest && !expect_random && entropy(tok) >= 3.5 {
            return Some(UrlSignalKind::RandomBlob {
                alphabet: "hex",
                len,
            });
        }
        return None;
    }
    if is_uuid(tok) {
        return None;
    }
    let upper = tok.iter().any(u8::is_ascii_uppercase);
    let lower = tok.iter().any(u8::is_ascii_lowercase);
    let digit = tok.iter().any(u8::is_ascii_digit);
    if upper
        && !lower
        && tok
            .iter()
            .all(|&b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b) || b == b'=')
        && let Some(d) = base32_decode(tok)
        && d.len() >= 10
        && is_text(&d)
        && !looks_like_url(&d)
    {
        return Some(UrlSignalKind::EncodedText {
            encoding: "base32",
            bytes: d.len(),
        });
    }
    if !(upper && lower) {
        return None;
    }
    let decoded = base64_decode(tok)?;
    if decoded.len() >= 12 && is_text(&decoded) {
        if looks_like_url(&decoded) || opaque_id_text(&decoded) {
            return None;
        }
        return Some(UrlSignalKind::EncodedText {
            encoding: "base64",
            bytes: decoded.len(),
        });
    }
    if decoded.len() >= 16
        && let Some(format) = compressed_format(&decoded)
    {
        return Some(UrlSignalKind::Compressed { format });
    }
    let trimmed = tok.iter().filter(|&&b| b != b'=').count();
    // Random base64 is about 40 % upper case, 40 % lower case, 16 % digits; a slug of words
    // and ids (`name_words-like-this-6963242628536487936-trAp`) is nearly all lower case.
    let share = |f: fn(&u8) -> bool| tok.iter().filter(|b| f(b)).count() * 100 / len;
    if trimmed >= 48
        && share(u8::is_ascii_uppercase) >= 10
        && share(u8::is_ascii_lowercase) >= 10
        && share(u8::is_ascii_digit) >= 5
        && digit
        && !expect_random
        && !DIGEST_BYTES.contains(&decoded.len())
        && entropy(tok) >= 4.2
    {
        return Some(UrlSignalKind::RandomBlob {
            alphabet: "base64",
            len: trimmed,
        });
    }
    None
}

/// Judges a decoded segment or value: the first signal of its tokens.
fn judge_value(value: &[u8], expect_random: bool, fanned_out: usize) -> Option<UrlSignalKind> {
    if looks_like_jwt(value) {
        return None;
    }
    value
        .split(|&b| !token_byte(b))
        .find_map(|tok| judge_token(tok, expect_random, fanned_out))
}

/// Looks at the path segments and query values of `path_and_query` (`/a/b?x=1`; a full URL's
/// scheme and authority, and a fragment, are skipped).
pub fn check_url_path(path_and_query: &str) -> UrlVerdict {
    let raw = path_and_query.as_bytes();
    let mut from = 0;
    if let Some(p) = path_and_query.find("://")
        && path_and_query[..p].bytes().all(|b| b.is_ascii_alphabetic())
    {
        from = raw[p + 3..]
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .map_or(raw.len(), |i| p + 3 + i);
    }
    let to = raw[from..]
        .iter()
        .position(|&b| b == b'#')
        .map_or(raw.len(), |i| from + i);
    let q = raw[from..to]
        .iter()
        .position(|&b| b == b'?')
        .map_or(to, |i| from + i);
    let mut v = UrlVerdict::default();
    let mut buf = Vec::new();
    // Path segments, with the lengths of the 2-hex-char segments before each (fan-out).
    let mut index = 0;
    let mut fan = 0usize;
    let mut s = from;
    while s < q {
        let e = raw[s..q]
            .iter()
            .position(|&b| b == b'/')
            .map_or(q, |i| s + i);
        if e > s {
            let seg = &raw[s..e];
            percent_decode(seg, &mut buf);
            let nested =
                nested_beyond_decoding(seg).map(|depth| UrlSignalKind::NestedEncoding { depth });
            if let Some(kind) = nested.or_else(|| judge_value(&buf, false, fan)) {
                v.signals.push(UrlSignal {
                    kind,
                    part: UrlPart::Path { index },
                    start: s,
                    end: e,
                });
            }
            fan = if seg.len() == 2 && seg.iter().all(u8::is_ascii_hexdigit) {
                fan + 2
            } else {
                0
            };
            index += 1;
        }
        s = e + 1;
    }
    // Query.
    let mut s = q + 1;
    while s < to {
        let e = raw[s..to]
            .iter()
            .position(|&b| b == b'&' || b == b';')
            .map_or(to, |i| s + i);
        let item = &raw[s..e];
        let (name, value_start) = match item.iter().position(|&b| b == b'=') {
            Some(eq) => (&item[..eq], s + eq + 1),
            None => (&item[..0], s),
        };
        let nested = (value_start < e)
            .then(|| nested_beyond_decoding(&raw[value_start..e]))
            .flatten()
            .map(|depth| UrlSignalKind::NestedEncoding { depth });
        let judged = if nested.is_some() || named(name, EXPECTED_ENCODED) || value_start >= e {
            nested
        } else {
            percent_decode(&raw[value_start..e], &mut buf);
            judge_value(&buf, named(name, EXPECTED_RANDOM), 0)
        };
        if let Some(kind) = judged {
            v.signals.push(UrlSignal {
                kind,
                part: UrlPart::Query {
                    name_start: s,
                    name_end: s + name.len(),
                },
                start: value_start,
                end: e,
            });
        }
        s = e + 1;
    }
    v
}
