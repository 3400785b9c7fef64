//! Cryptocurrency private keys (family `crypto_keys`): WIF keys (`crypto_wif`), BIP-32
//! extended private keys (`crypto_xprv`), and raw Ethereum keys next to a private-key name
//! (`eth_private_key`). Seed phrases are in `bip39.rs`.
//!
//! - WIF: a whole alphanumeric token of 51 characters starting `5` (mainnet) or `9` (testnet),
//!   or 52 starting `K`/`L` (mainnet, compressed) or `c` (testnet, compressed); base58 that
//!   decodes to version 0x80/0xEF, 32 key bytes (then 0x01 when compressed) and a checksum equal
//!   to the first 4 bytes of SHA-256(SHA-256(payload)); the key a valid secp256k1 scalar.
//! - Extended keys: a token of 100–115 characters starting `xprv`, `yprv`, `zprv`, `tprv`,
//!   `uprv`, `vprv`, `Yprv`, `Zprv`, `Uprv` or `Vprv`, base58check of 78 bytes whose version
//!   is that prefix's, with the `00` private-key marker and a valid scalar.
//! - Ethereum: 64 hex digits (optionally `0x`-prefixed) only within 48 bytes after a name
//!   `private key` / `private_key` / `privateKey` / `priv_key` / `privkey` (any case), with at
//!   most an identifier tail (`privateKeyToAccount`, `PRIVATE_KEY_HEX`) and punctuation
//!   (`=`, `:`, quotes, brackets, spaces) between them. A bare 64-hex string is a SHA-256.

use ring::digest::{SHA256, digest};

use super::{Check, Ctx, FamilyFinding, FamilyRule, Side, testvalues};

const B58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

static B58_VALUE: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 58 {
        t[B58[i] as usize] = i as u8;
        i += 1;
    }
    t
};

/// Decodes base58 `s` into exactly `out.len()` bytes (big-endian); false when a character is
/// not base58, the value does not fit, or `s` has leading `1`s (zero bytes: never a version
/// byte of the formats here).
pub(crate) fn base58_decode(s: &[u8], out: &mut [u8]) -> bool {
    out.fill(0);
    if s.first() == Some(&b'1') {
        return false;
    }
    for &c in s {
        let v = B58_VALUE[c as usize];
        if v == 0xFF {
            return false;
        }
        let mut carry = u32::from(v);
        for b in out.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = carry as u8;
            carry >>= 8;
        }
        if carry != 0 {
            return false;
        }
    }
    true
}

/// Decodes base58 `s` into exactly `out.len()` bytes, leading `1`s standing for leading zero
/// bytes (an address's version 0x00); false when a character is not base58, the value does not
/// fit, or the leading `1`s and zero bytes do not match (not the canonical encoding).
pub(crate) fn base58_decode_padded(s: &[u8], out: &mut [u8]) -> bool {
    let ones = s.iter().take_while(|&&c| c == b'1').count();
    if ones > out.len() {
        return false;
    }
    let (zeros, rest) = out.split_at_mut(ones);
    zeros.fill(0);
    if ones == s.len() {
        return false;
    }
    base58_decode(&s[ones..], rest) && rest.first().is_some_and(|&b| b != 0)
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest(&SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// base58check: the last 4 bytes are the first 4 of SHA-256(SHA-256(the rest)).
fn checksum_holds(data: &[u8]) -> bool {
    let (payload, check) = data.split_at(data.len() - 4);
    sha256(&sha256(payload))[..4] == *check
}

/// The order of secp256k1.
const SECP256K1_N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
    0xBA, 0xAE, 0xDC, 0xE6, 0xAF, 0x48, 0xA0, 0x3B, 0xBF, 0xD2, 0x5E, 0x8C, 0xD0, 0x36, 0x41, 0x41,
];

/// 0 < key < n.
fn valid_scalar(key: &[u8]) -> bool {
    key.iter().any(|&b| b != 0) && key < SECP256K1_N.as_slice()
}

/// A token that starts the window is cut off (unless the window starts the stream).
fn whole_token(ctx: &Ctx, start: usize) -> bool {
    !matches!(ctx.before(start), Side::Unknown)
}

pub(crate) fn wif(ctx: &Ctx, start: usize, end: usize, out: &mut Vec<FamilyFinding>) {
    let t = &ctx.hay[start..end];
    let (compressed, testnet) = match (t.len(), t[0]) {
        (51, b'5') => (false, false),
        (51, b'9') => (false, true),
        (52, b'K' | b'L') => (true, false),
        (52, b'c') => (true, true),
        _ => return,
    };
    if !whole_token(ctx, start) {
        return;
    }
    let mut buf = [0u8; 38];
    let raw = if compressed {
        &mut buf[..]
    } else {
        &mut buf[..37]
    };
    if !base58_decode(t, raw) {
        return;
    }
    let version = if testnet { 0xEF } else { 0x80 };
    if raw[0] != version || (compressed && raw[33] != 0x01) || !checksum_holds(raw) {
        return;
    }
    let key = &raw[1..33];
    if !valid_scalar(key) {
        return;
    }
    let test = testvalues::is_test_key(key);
    ctx.push(
        out,
        FamilyRule::CryptoWif,
        start,
        end,
        Check::Wif {
            testnet,
            compressed,
        },
        test,
    );
}

/// The extended-private-key versions (SLIP-132).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XprvKind {
    Xprv,
    Yprv,
    Zprv,
    Tprv,
    Uprv,
    Vprv,
    /// `Yprv`/`Zprv`/`Uprv`/`Vprv`: multi-signature variants.
    Multisig,
}

const XPRV_VERSIONS: [(&[u8; 4], [u8; 4], XprvKind); 10] = [
    (b"xprv", [0x04, 0x88, 0xAD, 0xE4], XprvKind::Xprv),
    (b"yprv", [0x04, 0x9D, 0x78, 0x78], XprvKind::Yprv),
    (b"zprv", [0x04, 0xB2, 0x43, 0x0C], XprvKind::Zprv),
    (b"tprv", [0x04, 0x35, 0x83, 0x94], XprvKind::Tprv),
    (b"uprv", [0x04, 0x4A, 0x4E, 0x28], XprvKind::Uprv),
    (b"vprv", [0x04, 0x5F, 0x18, 0xBC], XprvKind::Vprv),
    (b"Yprv", [0x02, 0x95, 0xB0, 0x05], XprvKind::Multisig),
    (b"Zprv", [0x02, 0xAA, 0x7A, 0x99], XprvKind::Multisig),
    (b"Uprv", [0x02, 0x42, 0x85, 0xB5], XprvKind::Multisig),
    (b"Vprv", [0x02, 0x57, 0x50, 0x48], XprvKind::Multisig),
];

pub(crate) fn xprv(ctx: &Ctx, start: usize, end: usize, out: &mut Vec<FamilyFinding>) {
    let t = &ctx.hay[start..end];
    let Some(&(_, version, kind)) = XPRV_VERSIONS.iter().find(|(p, _, _)| t.starts_with(*p)) else {
        return;
    };
    if !whole_token(ctx, start) {
        return;
    }
    let mut raw = [0u8; 82];
    if !base58_decode(t, &mut raw) || raw[..4] != version || raw[45] != 0 || !checksum_holds(&raw) {
        return;
    }
    let key = &raw[46..78];
    if !valid_scalar(key) {
        return;
    }
    let test = testvalues::is_test_key(key);
    ctx.push(
        out,
        FamilyRule::CryptoXprv,
        start,
        end,
        Check::Xprv { kind },
        test,
    );
}

/// How far before the key its name may end.
const ETH_CONTEXT: usize = 48;

/// Where a private-key name ends in `before` if only an identifier tail and punctuation
/// separate it from the end (the key).
fn names_a_private_key(before: &[u8]) -> bool {
    // Walk back over punctuation, then over an identifier tail, then expect the name.
    let mut i = before.len();
    let mut punct = 0;
    while i > 0
        && matches!(
            before[i - 1],
            b' ' | b'\t' | b'"' | b'\'' | b'`' | b':' | b'=' | b'(' | b')' | b',' | b'[' | b'{'
        )
    {
        i -= 1;
        punct += 1;
        if punct > 8 {
            return false;
        }
    }
    // Try every split of the identifier run: name, then a tail of at most 16 bytes.
    let ident_end = i;
    let mut j = i;
    while j > 0 && (before[j - 1].is_ascii_alphanumeric() || matches!(before[j - 1], b'_' | b'-')) {
        j -= 1;
    }
    // A `--private-key` flag, `private key:` in prose: the name may hold one space too.
    let run_start = if j >= 8 && before[j - 1] == b' ' {
        let mut k = j - 1;
        while k > 0 && before[k - 1].is_ascii_alphabetic() {
            k -= 1;
        }
        k
    } else {
        j
    };
    let run = &before[run_start..ident_end];
    let mut lower = [0u8; ETH_CONTEXT];
    let n = run.len().min(ETH_CONTEXT);
    for (l, b) in lower.iter_mut().zip(run) {
        *l = b.to_ascii_lowercase();
    }
    let run = &lower[..n];
    // The name ends 0..=16 bytes before the run's end.
    for tail in 0..=16.min(n) {
        let head = &run[..n - tail];
        for name in [
            &b"privatekey"[..],
            b"private_key",
            b"private-key",
            b"private key",
            b"privkey",
            b"priv_key",
            b"priv-key",
        ] {
            if head.ends_with(name) {
                return true;
            }
        }
    }
    false
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

pub(crate) fn eth(ctx: &Ctx, start: usize, end: usize, out: &mut Vec<FamilyFinding>) {
    let hay = ctx.hay;
    let t = &hay[start..end];
    let (prefixed, hex) = if t.len() == 66 {
        if t[0] != b'0' || t[1] != b'x' {
            return;
        }
        (true, &t[2..])
    } else {
        (false, t)
    };
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) || !whole_token(ctx, start) {
        return;
    }
    if !names_a_private_key(&hay[start.saturating_sub(ETH_CONTEXT)..start]) {
        return;
    }
    let mut key = [0u8; 32];
    for (k, pair) in key.iter_mut().zip(hex.chunks_exact(2)) {
        *k = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
    }
    if !valid_scalar(&key) {
        return;
    }
    let test = testvalues::is_test_key(&key);
    let key_start = end - 64;
    ctx.push(
        out,
        FamilyRule::EthPrivateKey,
        key_start,
        end,
        Check::EthKey { prefixed },
        test,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58_round_trip_of_a_known_wif() {
        let mut raw = [0u8; 37];
        assert!(base58_decode(
            b"5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4dZ1jvhTVqvbTLvyTJ",
            &mut raw
        ));
        assert_eq!(raw[0], 0x80);
        assert_eq!(raw[1..5], [0x0C, 0x28, 0xFC, 0xA3]);
        assert!(checksum_holds(&raw));
    }

    #[test]
    fn private_key_names() {
        for ok in [
            "PRIVATE_KEY=",
            "\"privateKey\": \"",
            "privateKeyToAccount('",
            "--private-key ",
            "private key: ",
            "WALLET_PRIVATE_KEY_HEX = \"",
            "privkey ",
        ] {
            assert!(names_a_private_key(ok.as_bytes()), "{ok}");
        }
        for no in [
            "sha256 = \"",
            "commit ",
            "private_key_path = \"/tmp/x\" hash=",
            "privateKey.publicKey.toHexStringWithSomeVeryLongTail(",
        ] {
            assert!(!names_a_private_key(no.as_bytes()), "{no}");
        }
    }
}
