//! Detector families that a keyword and regex catalogue cannot express well: values recognised
//! by their arithmetic (Luhn, mod-97, base58check, the BIP-39 checksum) or by their shape in a
//! place (a hostname, a URL path) rather than by a vendor prefix.
//!
//! - [`FamilyScanner`] scans text (bodies, URLs, headers) for payment cards, IBANs and
//!   Bitcoin addresses (`financial`), cryptocurrency private keys and seed phrases (`crypto_keys`), and e-mail
//!   addresses and phone numbers (`pii`). One pass over the bytes: a 256-entry class table
//!   splits the text into alphanumeric tokens, and only tokens of a candidate's shape are looked
//!   at further (`@` is found with `memchr`). Stretches that cannot hold a candidate (most of
//!   prose, code and JSON) are skipped untokenised, from 64-byte masks (`skip.rs`).
//!   [`FamilyStream`] runs it over a stream with carry-over, like [`crate::StreamScanner`].
//! - [`check_hostname`] (`hostname_exfil`) scores the labels of a hostname or DNS name.
//! - [`check_url_path`] (`url_entropy`) looks at the segments and query values of a URL.
//!
//! Published test values (Stripe's test cards, Hardhat's accounts, the BIP-39 test vectors…)
//! are what agents paste into test code: they are not reported unless
//! [`FamilyScanner::report_test_values`] asks for them (see `testvalues.rs`).

mod address;
mod bip39;
mod card;
mod crypto;
#[cfg(test)]
mod differential;
mod encoded;
mod hostname;
mod iban;
mod pii;
mod skip;
mod stream;
mod testvalues;
mod tokens;
mod url_path;

pub use hostname::{HostSignal, HostSignalKind, HostVerdict, check_hostname};
pub use stream::{FamilyStream, FamilyStreamFinding};
pub use url_path::{UrlPart, UrlSignal, UrlSignalKind, UrlVerdict, check_url_path};

pub use bip39::{BIP39_ENGLISH, bip39_word_index};
pub use card::CardNetwork;
pub use crypto::XprvKind;

/// A `detect:` key of the configuration (SPEC §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Financial,
    CryptoKeys,
    HostnameExfil,
    UrlEntropy,
    Pii,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Family::Financial,
        Family::CryptoKeys,
        Family::HostnameExfil,
        Family::UrlEntropy,
        Family::Pii,
    ];

    /// The configuration key (`detect.<key>`), also the `family` of threat records.
    pub fn key(self) -> &'static str {
        match self {
            Family::Financial => "financial",
            Family::CryptoKeys => "crypto_keys",
            Family::HostnameExfil => "hostname_exfil",
            Family::UrlEntropy => "url_entropy",
            Family::Pii => "pii",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FamilySet(u8);

impl FamilySet {
    pub const EMPTY: FamilySet = FamilySet(0);
    /// The families [`FamilyScanner`] runs on text.
    pub const TEXT: FamilySet = FamilySet(
        (1 << Family::Financial as u8) | (1 << Family::CryptoKeys as u8) | (1 << Family::Pii as u8),
    );

    pub fn of(families: &[Family]) -> FamilySet {
        FamilySet(families.iter().fold(0, |acc, f| acc | f.bit()))
    }

    pub fn with(self, family: Family) -> FamilySet {
        FamilySet(self.0 | family.bit())
    }

    pub fn contains(self, family: Family) -> bool {
        self.0 & family.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether any of the text families is in the set.
    pub fn has_text(self) -> bool {
        self.0 & FamilySet::TEXT.0 != 0
    }
}

/// The stable rule ids of the text families (the `pattern` of threat records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FamilyRule {
    PaymentCard,
    Iban,
    CryptoAddress,
    CryptoWif,
    CryptoXprv,
    Bip39SeedPhrase,
    EthPrivateKey,
    EmailAddress,
    PhoneNumber,
}

impl FamilyRule {
    pub const ALL: [FamilyRule; 9] = [
        FamilyRule::PaymentCard,
        FamilyRule::Iban,
        FamilyRule::CryptoAddress,
        FamilyRule::CryptoWif,
        FamilyRule::CryptoXprv,
        FamilyRule::Bip39SeedPhrase,
        FamilyRule::EthPrivateKey,
        FamilyRule::EmailAddress,
        FamilyRule::PhoneNumber,
    ];

    pub fn id(self) -> &'static str {
        match self {
            FamilyRule::PaymentCard => "payment_card",
            FamilyRule::Iban => "iban",
            FamilyRule::CryptoAddress => "crypto_address",
            FamilyRule::CryptoWif => "crypto_wif",
            FamilyRule::CryptoXprv => "crypto_xprv",
            FamilyRule::Bip39SeedPhrase => "bip39_seed_phrase",
            FamilyRule::EthPrivateKey => "eth_private_key",
            FamilyRule::EmailAddress => "email_address",
            FamilyRule::PhoneNumber => "phone_number",
        }
    }

    /// A name for people (`airlock rules`, stderr events).
    pub fn name(self) -> &'static str {
        match self {
            FamilyRule::PaymentCard => "payment card number",
            FamilyRule::Iban => "IBAN",
            FamilyRule::CryptoAddress => "cryptocurrency address (Bitcoin)",
            FamilyRule::CryptoWif => "cryptocurrency private key (WIF)",
            FamilyRule::CryptoXprv => "BIP-32 extended private key",
            FamilyRule::Bip39SeedPhrase => "BIP-39 seed phrase",
            FamilyRule::EthPrivateKey => "Ethereum private key",
            FamilyRule::EmailAddress => "e-mail address",
            FamilyRule::PhoneNumber => "phone number",
        }
    }

    pub fn family(self) -> Family {
        match self {
            FamilyRule::PaymentCard | FamilyRule::Iban | FamilyRule::CryptoAddress => {
                Family::Financial
            }
            FamilyRule::CryptoWif
            | FamilyRule::CryptoXprv
            | FamilyRule::Bip39SeedPhrase
            | FamilyRule::EthPrivateKey => Family::CryptoKeys,
            FamilyRule::EmailAddress | FamilyRule::PhoneNumber => Family::Pii,
        }
    }

    pub fn from_id(id: &str) -> Option<FamilyRule> {
        FamilyRule::ALL.into_iter().find(|r| r.id() == id)
    }
}

/// What a finding's verification established (kind-specific).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Luhn-valid, issuer prefix and length of `network`.
    Card { network: CardNetwork, digits: u8 },
    /// Registered length and BBAN format of `country`, mod-97 == 1.
    Iban { country: [u8; 2], length: u8 },
    /// A mainnet Bitcoin address whose checksum holds: base58check (legacy, script) or
    /// bech32/bech32m (`segwit`).
    Address { segwit: bool },
    /// base58check (double SHA-256) with version 0x80 (mainnet) or 0xEF (testnet).
    Wif { testnet: bool, compressed: bool },
    /// base58check with an extended-private-key version and a `00` key marker.
    Xprv { kind: XprvKind },
    /// Every word on the BIP-39 English list, the checksum bits of SHA-256(entropy) match.
    SeedPhrase { words: u8 },
    /// 64 hex digits after a `private_key`-like name, a valid secp256k1 scalar.
    EthKey { prefixed: bool },
    /// `local@domain`: plausible local part, public-looking domain with an alphabetic TLD.
    Email { local_len: u8 },
    /// `digits` digits; `international`: written with `+` and a country code.
    Phone { digits: u8, international: bool },
}

/// A finding of [`FamilyScanner`]: `start..end` is exactly the secret (what a record masks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyFinding {
    pub rule: FamilyRule,
    pub start: usize,
    pub end: usize,
    pub check: Check,
    /// A published test value (only reported with [`FamilyScanner::report_test_values`]).
    pub test_value: bool,
}

/// Where a scanned window sits in its stream: a candidate touching a side that is not the
/// stream's edge cannot be judged yet (its neighbours are unseen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edges {
    /// The window's first byte is the stream's first byte.
    pub starts_stream: bool,
    /// The window's last byte is the stream's last byte.
    pub ends_stream: bool,
}

impl Edges {
    /// A whole text.
    pub const WHOLE: Edges = Edges {
        starts_stream: true,
        ends_stream: true,
    };
}

/// The longest span a text finding can have: a seed phrase of 24 words of 8 letters with
/// separators of up to [`bip39::MAX_GAP`] bytes, after up to 3 stray list words (the run
/// that must be seen whole to judge it). E-mail addresses (254) and extended keys (112) are
/// shorter.
pub const MAX_SPAN: usize = bip39::MAX_RUN_BYTES;

/// Bytes after a candidate that must be visible to judge it (a grouped card could go on with
/// another group, a seed phrase with another word): a candidate ending closer than this to the
/// end of a window that does not end the stream is left for the next window.
pub const LOOKAHEAD: usize = 24;

/// What a stream must carry from one chunk into the next so that every candidate still open
/// at a chunk's end is seen whole, with its left neighbour, in the next window:
/// [`MAX_SPAN`] + [`LOOKAHEAD`] + the token before a seed run and its separator.
pub const CARRY: usize = MAX_SPAN + LOOKAHEAD + 2 * bip39::MAX_GAP + 8;

/// The text scanner for the `financial`, `crypto_keys` and `pii` families.
#[derive(Debug, Clone, Copy)]
pub struct FamilyScanner {
    families: FamilySet,
    report_test_values: bool,
    /// Walk every token, skipping nothing (what the skipping is checked against).
    #[cfg(test)]
    every_token: bool,
}

impl FamilyScanner {
    /// A scanner for the text families in `families` (others are ignored).
    pub fn new(families: FamilySet) -> FamilyScanner {
        FamilyScanner {
            families,
            report_test_values: false,
            #[cfg(test)]
            every_token: false,
        }
    }

    /// Also report published test values, marked `test_value: true` (for measurements and
    /// for tests of the detectors themselves).
    pub fn report_test_values(mut self, yes: bool) -> FamilyScanner {
        self.report_test_values = yes;
        self
    }

    pub fn families(&self) -> FamilySet {
        self.families
    }

    /// True when no text family is selected (nothing to scan).
    pub fn is_empty(&self) -> bool {
        !self.families.has_text()
    }

    /// Appends the findings in a whole text to `out`, in order of their start.
    pub fn scan(&self, hay: &[u8], out: &mut Vec<FamilyFinding>) {
        self.scan_window(hay, Edges::WHOLE, out);
    }

    /// Appends the findings in `hay`, a window of a stream placed by `edges`, to `out`, in
    /// order of their start. A candidate whose left neighbour is cut off (it starts at the
    /// window's start, or a seed run reaches back to it) is not reported; one ending within
    /// [`LOOKAHEAD`] bytes of a window end that is not the stream's end is left for the next
    /// window (which must then start at most [`CARRY`] bytes before this one's end).
    pub fn scan_window(&self, hay: &[u8], edges: Edges, out: &mut Vec<FamilyFinding>) {
        #[cfg(test)]
        if self.every_token {
            self.scan_window_as::<false>(hay, edges, out);
            return;
        }
        self.scan_window_as::<true>(hay, edges, out);
    }

    /// This scanner walking every token of every run of text, without skipping what cannot
    /// hold a candidate (`skip.rs`): the reference the skipping is checked against.
    #[cfg(test)]
    pub(crate) fn every_token(mut self) -> FamilyScanner {
        self.every_token = true;
        self
    }

    fn scan_window_as<const SKIP: bool>(
        &self,
        hay: &[u8],
        edges: Edges,
        out: &mut Vec<FamilyFinding>,
    ) {
        if self.is_empty() || hay.is_empty() {
            return;
        }
        let first = out.len();
        let ctx = Ctx {
            hay,
            edges,
            report_test_values: self.report_test_values,
        };
        let fin = self.families.contains(Family::Financial);
        let crypto = self.families.contains(Family::CryptoKeys);
        let pii = self.families.contains(Family::Pii);
        if pii {
            pii::scan_emails(&ctx, out);
        }
        let mut walk = Walk {
            ctx: &ctx,
            seeds: bip39::SeedRuns::new(&ctx),
            fin,
            crypto,
            pii,
            resume: 0,
        };
        let want = skip::Want {
            digits: fin,
            all_digits: pii,
            long: crypto,
            seeds: crypto,
        };
        let mut scratch = skip::Scratch::default();
        let n = hay.len();
        // Only runs of text can hold a candidate: in a binary body, the rest is skipped.
        tokens::for_each_text_run(hay, tokens::MIN_TEXT_RUN, |a, b| {
            if !SKIP {
                tokens::for_each_token(&hay[a..b], |start, end, bits| {
                    walk.token(a + start, a + end, bits, out);
                });
                return;
            }
            walk.run(a, b, want, &mut scratch, out);
        });
        if crypto {
            walk.seeds.finish(out);
        }
        // Emails came first, the rest in token order.
        out[first..].sort_by_key(|f| (f.start, f.end));
        if !edges.ends_stream {
            let limit = n.saturating_sub(LOOKAHEAD);
            let mut kept = first;
            for k in first..out.len() {
                if out[k].end <= limit {
                    out[kept] = out[k];
                    kept += 1;
                }
            }
            out.truncate(kept);
        }
    }
}

/// The walk over the tokens of one window, in order.
struct Walk<'a, 'h> {
    ctx: &'a Ctx<'h>,
    seeds: bip39::SeedRuns<'a, 'h>,
    fin: bool,
    crypto: bool,
    pii: bool,
    /// Bytes before `resume` were consumed by a number parsed as a whole (a grouped card,
    /// a phone number): their digit tokens are not candidates of their own.
    resume: usize,
}

impl Walk<'_, '_> {
    /// The run of text `a..b` of the window: of it, only what could hold a candidate
    /// (`skip.rs`). Not inlined: the loop over the runs of a binary body stays small.
    #[inline(never)]
    fn run(
        &mut self,
        a: usize,
        b: usize,
        want: skip::Want,
        scratch: &mut skip::Scratch,
        out: &mut Vec<FamilyFinding>,
    ) {
        let hay = self.ctx.hay;
        skip::for_each_range(&hay[a..b], want, scratch, |s, e| {
            let (s, e) = (a + s, a + e);
            tokens::for_each_token(&hay[s..e], |start, end, bits| {
                self.token(s + start, s + end, bits, out);
            });
            // A skipped stretch: where a breaker ends the seed runs.
            if self.crypto {
                self.seeds.other_token(out);
            }
        });
    }

    /// The token `start..end` of the window, holding the classes `bits`.
    #[inline(always)]
    fn token(&mut self, start: usize, end: usize, bits: u8, out: &mut Vec<FamilyFinding>) {
        let ctx = self.ctx;
        let (fin, crypto, pii) = (self.fin, self.crypto, self.pii);
        let len = end - start;
        if crypto {
            let seeds = &mut self.seeds;
            if bits & !(LOWER | LOWER_NON_HEX) == 0 && len <= 9 {
                seeds.word(start, end, out);
            } else if bits & !DIGIT == 0 && len <= 2 {
                // Numbered lists ("1. abandon 2. ability"): part of the separator.
                seeds.number(start, end);
            } else {
                seeds.other_token(out);
            }
            match len {
                51 | 52 => crypto::wif(ctx, start, end, out),
                100..=115 => crypto::xprv(ctx, start, end, out),
                64 | 66 if bits & UPPER_NON_HEX == 0 => crypto::eth(ctx, start, end, out),
                _ => {}
            }
        }
        if start < self.resume {
            return;
        }
        if (fin || pii) && bits == DIGIT {
            let mut consumed = end;
            if fin {
                consumed = consumed.max(card::scan(ctx, start, out));
            }
            if pii {
                consumed = consumed.max(pii::scan_phone(ctx, start, out));
            }
            self.resume = consumed;
        } else if fin && len >= 4 && bits & UPPER != 0 && bits & DIGIT != 0 {
            iban::scan(ctx, start, end, out);
        }
        if fin && matches!(len, 26..=35 | 42 | 62) && bits & DIGIT != 0 {
            address::scan(ctx, start, end, out);
        }
    }
}

/// The window being scanned, and how to read its neighbours.
pub(crate) struct Ctx<'a> {
    pub hay: &'a [u8],
    pub edges: Edges,
    pub report_test_values: bool,
}

/// A neighbour of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The start or end of the stream.
    Edge,
    Byte(u8),
    /// Beyond the window, not the stream's edge: unseen.
    Unknown,
}

impl Ctx<'_> {
    /// The byte before `i`.
    pub fn before(&self, i: usize) -> Side {
        if i == 0 {
            if self.edges.starts_stream {
                Side::Edge
            } else {
                Side::Unknown
            }
        } else {
            Side::Byte(self.hay[i - 1])
        }
    }

    /// The byte at `i` (after a candidate ending at `i`).
    pub fn at(&self, i: usize) -> Side {
        match self.hay.get(i) {
            Some(&b) => Side::Byte(b),
            None if self.edges.ends_stream => Side::Edge,
            None => Side::Unknown,
        }
    }

    /// Pushes a finding, or drops it as a test value.
    pub fn push(
        &self,
        out: &mut Vec<FamilyFinding>,
        rule: FamilyRule,
        start: usize,
        end: usize,
        check: Check,
        test_value: bool,
    ) {
        if test_value && !self.report_test_values {
            return;
        }
        out.push(FamilyFinding {
            rule,
            start,
            end,
            check,
            test_value,
        });
    }
}

pub(crate) const DIGIT: u8 = 1;
pub(crate) const UPPER: u8 = 2;
pub(crate) const LOWER: u8 = 4;
/// Upper-case letters past `F`: not hex.
const UPPER_NON_HEX: u8 = 8;
/// Lower-case letters past `f`: not hex.
pub(crate) const LOWER_NON_HEX: u8 = 16;

/// Byte classes of the tokeniser: 0 for every byte that is not an ASCII letter or digit.
pub(crate) static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_digit() {
            DIGIT
        } else if c.is_ascii_uppercase() {
            if c > b'F' {
                UPPER | UPPER_NON_HEX
            } else {
                UPPER
            }
        } else if c.is_ascii_lowercase() {
            if c > b'f' {
                LOWER | LOWER_NON_HEX
            } else {
                LOWER
            }
        } else {
            0
        };
        b += 1;
    }
    t
};

pub(crate) fn is_alnum(b: u8) -> bool {
    CLASS[b as usize] != 0
}

/// A value whose characters are mostly one character, or a short pattern repeated, or a long
/// ascending/descending run (`4111111111111111`, `4242424242424242`, `…123456789…`): made up
/// for an example, not issued.
pub(crate) fn looks_made_up(v: &[u8]) -> bool {
    if v.len() < 6 {
        return false;
    }
    let mut counts = [0u16; 256];
    for &b in v {
        counts[b as usize] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(0) as usize;
    if top * 16 >= 9 * v.len() {
        return true;
    }
    // The last character may be a check digit that breaks the pattern.
    let body = &v[..v.len() - 1];
    if (1..=4).any(|p| body.len() >= 3 * p && (p..body.len()).all(|i| body[i] == body[i - p])) {
        return true;
    }
    let mut run = 1;
    let mut dir = 0i16;
    for w in v.windows(2) {
        let d = w[1] as i16 - w[0] as i16;
        if (d == 1 || d == -1) && (run == 1 || d == dir) {
            run += 1;
            dir = d;
        } else if d == 1 || d == -1 {
            run = 2;
            dir = d;
        } else {
            run = 1;
        }
        if run >= 7 {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_values() {
        assert!(looks_made_up(b"4111111111111111"));
        assert!(looks_made_up(b"4242424242424242"));
        assert!(looks_made_up(b"5105105105105100"));
        assert!(looks_made_up(b"4012888888881881"));
        assert!(looks_made_up(b"12345678901234"));
        assert!(!looks_made_up(b"4539148803436467"));
        assert!(!looks_made_up(b"5425233430109903"));
    }

    #[test]
    fn rule_ids_round_trip() {
        for r in FamilyRule::ALL {
            assert_eq!(FamilyRule::from_id(r.id()), Some(r));
        }
    }
}
