//! Cryptocurrency addresses (family `financial`, rule `crypto_address`): where a payment or a
//! drained wallet is to go, and which wallets a user holds. Like an IBAN, an address is an
//! account number, public by nature but not something an agent sends to a stranger unseen.
//! Recognised by their checksums, so that random tokens of the same shape never pass:
//!
//! - Bitcoin legacy (P2PKH, `1…`) and script (P2SH, `3…`) addresses: a whole token of 26–35
//!   base58 characters whose base58check payload is version 0x00 / 0x05 and a 20-byte hash
//!   (the 4-byte double-SHA-256 checksum leaves one random token in 2^32).
//! - Bitcoin segwit addresses (BIP-173 bech32 for witness version 0, BIP-350 bech32m for 1–16):
//!   `bc1` + version + program, 42 or 62 characters, all lower or all upper case, whose
//!   30-bit checksum holds.
//!
//! Testnet addresses (`m…`, `n…`, `2…`, `tb1…`) hold nothing of value and are not reported;
//! the BIPs' and the Bitcoin wiki's example addresses are test values (`testvalues.rs`).

use super::crypto::{base58_decode_padded, sha256};
use super::{Check, Ctx, FamilyFinding, FamilyRule, Side, testvalues};

/// A whole token `hay[start..end]` that may be an address (cheap checks first).
pub(crate) fn scan(ctx: &Ctx, start: usize, end: usize, out: &mut Vec<FamilyFinding>) {
    let t = &ctx.hay[start..end];
    let segwit = match (t.len(), t[0]) {
        (26..=35, b'1' | b'3') => false,
        (42 | 62, b'b' | b'B') => true,
        _ => return,
    };
    if matches!(ctx.before(start), Side::Unknown) {
        return;
    }
    let valid = if segwit {
        segwit_valid(t)
    } else {
        base58_valid(t)
    };
    if !valid {
        return;
    }
    let test = testvalues::is_test_address(t);
    ctx.push(
        out,
        FamilyRule::CryptoAddress,
        start,
        end,
        Check::Address { segwit },
        test,
    );
}

fn base58_valid(t: &[u8]) -> bool {
    let mut raw = [0u8; 25];
    if !base58_decode_padded(t, &mut raw) {
        return false;
    }
    let version_ok = matches!((t[0], raw[0]), (b'1', 0x00) | (b'3', 0x05));
    version_ok && sha256(&sha256(&raw[..21]))[..4] == raw[21..]
}

const BECH32: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn segwit_valid(t: &[u8]) -> bool {
    let lower = t.iter().all(|b| !b.is_ascii_uppercase());
    let upper = t.iter().all(|b| !b.is_ascii_lowercase());
    if !(lower || upper) || !t[..3].eq_ignore_ascii_case(b"bc1") {
        return false;
    }
    let mut data = [0u8; 59];
    let chars = &t[3..];
    for (slot, c) in data.iter_mut().zip(chars) {
        match BECH32.iter().position(|b| *b == c.to_ascii_lowercase()) {
            Some(v) => *slot = v as u8,
            None => return false,
        }
    }
    let data = &data[..chars.len()];
    let version = data[0];
    // A 20-byte program (42 characters) exists only in version 0; 62 characters hold 32 bytes.
    if version > 16 || (t.len() == 42 && version != 0) {
        return false;
    }
    let hrp = [b'b', b'c'];
    let expanded = hrp
        .iter()
        .map(|c| c >> 5)
        .chain([0])
        .chain(hrp.iter().map(|c| c & 31));
    let constant = if version == 0 { 1 } else { 0x2bc8_30a3 };
    polymod(expanded.chain(data.iter().copied())) == constant
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_of_known_addresses() {
        // The genesis block's coinbase address, a P2SH address, segwit v0 and v1.
        assert!(base58_valid(b"1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"));
        assert!(base58_valid(b"3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"));
        assert!(segwit_valid(b"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"));
        assert!(segwit_valid(b"BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4"));
        assert!(segwit_valid(
            b"bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
        ));
        // One character changed, a version for the wrong checksum, mixed case.
        assert!(!base58_valid(b"1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb"));
        assert!(!base58_valid(b"3A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"));
        assert!(!segwit_valid(b"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"));
        assert!(!segwit_valid(b"bc1qw508D6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"));
        assert!(!segwit_valid(
            b"bc1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"
        ));
    }
}
