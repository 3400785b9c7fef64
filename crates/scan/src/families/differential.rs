//! Differential tests of the skipping walk (`skip.rs`): [`FamilyScanner::scan_window`] must
//! find exactly what the walk of every token finds ([`FamilyScanner::every_token`]), on random
//! and adversarial texts (seed phrases in every layout, the same broken in every way a breaker
//! can break them, list words, prose, numbers, cards, IBANs, keys, JSON escapes, binary bytes),
//! for every selection of families, in windows with every kind of edge and in streams of small
//! chunks, with the AVX-512 VBMI, AVX2 and baseline masks.

use proptest::prelude::*;

use super::crypto::sha256;
use super::{
    BIP39_ENGLISH, Edges, Family, FamilyFinding, FamilyRule, FamilyScanner, FamilySet,
    FamilyStream, FamilyStreamFinding,
};
use crate::text_runs::Paths;

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn list() -> Vec<&'static str> {
    BIP39_ENGLISH.split_whitespace().collect()
}

/// The phrase of `entropy` (16 to 32 bytes, a multiple of 4), checksum included.
fn mnemonic(entropy: &[u8]) -> Vec<&'static str> {
    let list = list();
    let mut bits: Vec<bool> = entropy
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1))
        .collect();
    let h = sha256(entropy);
    bits.extend((0..entropy.len() / 4).map(|i| h[i / 8] >> (7 - i % 8) & 1 == 1));
    bits.chunks(11)
        .map(|c| list[c.iter().fold(0usize, |a, &b| a * 2 + usize::from(b))])
        .collect()
}

fn luhn_complete(body: &str) -> String {
    let mut sum = 0;
    for (i, c) in body.bytes().rev().enumerate() {
        let mut v = u32::from(c - b'0');
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn base58check(payload: &[u8]) -> String {
    const A: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    let mut data = payload.to_vec();
    data.extend_from_slice(&sha256(&sha256(payload))[..4]);
    let mut digits: Vec<u8> = Vec::new();
    for &byte in &data {
        let mut carry = u32::from(byte);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let zeros = data.iter().take_while(|&&b| b == 0).count();
    let mut s = "1".repeat(zeros);
    s.extend(digits.iter().rev().map(|&d| A[d as usize] as char));
    s
}

/// A German IBAN (18 digits of BBAN) with its check digits.
fn iban(rng: &mut Rng) -> String {
    let bban: String = (0..18)
        .map(|_| (b'0' + rng.below(10) as u8) as char)
        .collect();
    let rearranged = format!("{bban}DE00");
    let mut r = 0u32;
    for c in rearranged.bytes() {
        r = if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    format!("DE{:02}{bban}", 98 - r)
}

fn group(s: &str, every: usize, sep: &str) -> String {
    s.as_bytes()
        .chunks(every)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(sep)
}

/// Words of prose around the lengths and cases that matter to seed runs.
const PROSE: &[&str] = &[
    "a",
    "an",
    "to",
    "of",
    "is",
    "it",
    "the",
    "and",
    "please",
    "refactor",
    "function",
    "something",
    "gracefully",
    "international",
    "abandoned",
    "The",
    "Bitcoin",
    "JSON",
    "wallet",
    "phrase",
    "recovery",
    "words",
    "here",
    "my",
    "seed",
    "keep",
    "safe",
    "zoo",
    "abandon",
    "about",
    "x",
    "ok",
    "nine",
    "ninetynine",
];

/// Separators: allowed gaps, list numbers, JSON escapes, and gaps that are too long.
const SEPARATORS: &[&str] = &[
    " ",
    " ",
    " ",
    "\n",
    "\r\n",
    "\t",
    ", ",
    "\", \"",
    "\",\n    \"",
    "\\n",
    " \\n",
    "\\n\\n",
    "\\t",
    "\\r\\n",
    "1. ",
    " 2. ",
    "\n12) ",
    " 99 ",
    " 100 ",
    "- ",
    "* ",
    "#",
    "|",
    "[",
    "]",
    "; ",
    ": ",
    " (",
    ") ",
    "'",
    "\\",
    "\\\"",
    "            ",
    "             ",
    "  \n  \n  ",
    "...",
    " -- ",
    "\\u00e9",
    "\n1.\t",
];

/// Bytes that break a seed run wherever they are.
const BREAKERS: &[&str] = &[
    "!", "$", "%", "&", "+", "/", "<", "=", ">", "?", "@", "^", "_", "`", "{", "}", "~",
];

/// A phrase of a random length in a random layout.
fn phrase(rng: &mut Rng) -> Vec<String> {
    let n = [12, 15, 18, 21, 24][rng.below(5)];
    let words = mnemonic(&rng.bytes(n * 4 / 3));
    // Now and then a published test phrase (a test value).
    let words = if rng.below(8) == 0 {
        let mut w = vec!["abandon"; 11];
        w.push("about");
        w
    } else {
        words
    };
    words.iter().map(|w| w.to_string()).collect()
}

fn layout(rng: &mut Rng, words: &[String]) -> String {
    match rng.below(8) {
        0 => words.join(" "),
        1 => words.join("\n"),
        2 => words
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{}. {w}", i + 1))
            .collect::<Vec<_>>()
            .join("\n"),
        3 => format!("[\n    \"{}\"\n]", words.join("\",\n    \"")),
        4 => words.join("\\n"),
        5 => words.join(", "),
        6 => words
            .iter()
            .enumerate()
            .map(|(i, w)| format!("{}) {w}", i + 1))
            .collect::<Vec<_>>()
            .join("  "),
        _ => {
            // A random separator between each pair.
            let mut s = String::new();
            for (i, w) in words.iter().enumerate() {
                if i > 0 {
                    s.push_str(rng.pick(&[
                        " ",
                        "\n",
                        "\\n",
                        ", ",
                        "  ",
                        "\t",
                        " - ",
                        // The longest gap (12 bytes), and one byte more.
                        "\",\n        \"",
                        "\",\n         \"",
                        "\\n\\n",
                        " \\t\\r\\n ",
                    ]));
                }
                s.push_str(w);
            }
            s
        }
    }
}

/// One piece of text of kind `kind`, drawn with `seed`.
fn fragment(kind: u8, seed: u64) -> Vec<u8> {
    let rng = &mut Rng::new(seed);
    let list = list();
    let s: String = match kind % 20 {
        0 | 1 => list[rng.below(2048)].to_string(),
        2 | 3 => {
            let words = phrase(rng);
            layout(rng, &words)
        }
        4 => {
            // A phrase with something inside it that may or may not break it.
            let mut words = phrase(rng);
            let at = rng.below(words.len() + 1);
            let what = match rng.below(6) {
                0 => rng.pick(PROSE).to_string(),
                1 => rng.pick(BREAKERS).to_string(),
                2 => rng.pick(SEPARATORS).to_string(),
                3 => (rng.next() % 10_000).to_string(),
                4 => list[rng.below(2048)].to_uppercase(),
                _ => format!("{}{}", list[rng.below(2048)], rng.below(10)),
            };
            words.insert(at, what);
            layout(rng, &words)
        }
        5 if seed.is_multiple_of(2) => {
            // A phrase whose gaps are random strings of gap bytes (and, now and then, of a
            // byte that is not one), around the longest gap.
            const GAP: &[u8] = b" \t\r\n,\"'.)(-:;#[]|*\\0123456789nt!_/{";
            let words = phrase(rng);
            let mut s = String::new();
            for (i, w) in words.iter().enumerate() {
                if i > 0 {
                    let n = 1 + rng.below(14);
                    let pool = if rng.below(10) == 0 {
                        GAP.len()
                    } else {
                        GAP.len() - 4
                    };
                    s.extend((0..n).map(|_| GAP[rng.below(pool)] as char));
                }
                s.push_str(w);
            }
            s
        }
        5 => (0..1 + rng.below(30))
            .map(|_| list[rng.below(2048)])
            .collect::<Vec<_>>()
            .join(rng.pick(&[" ", "\n", "\\n", ", "])),
        6 | 7 => rng.pick(PROSE).to_string(),
        8 | 9 => rng.pick(SEPARATORS).to_string(),
        10 => rng.pick(BREAKERS).to_string(),
        11 => {
            let digits = 1 + rng.below(20);
            (0..digits)
                .map(|_| (b'0' + rng.below(10) as u8) as char)
                .collect()
        }
        12 => {
            let prefix = rng.pick(&["4539", "5425", "3714", "6011", "4"]);
            let len = if prefix == "3714" { 15 } else { 16 };
            let mut body = prefix.to_string();
            while body.len() < len - 1 {
                body.push((b'0' + rng.below(10) as u8) as char);
            }
            let card = luhn_complete(&body);
            match rng.below(3) {
                0 => card,
                1 => group(&card, 4, " "),
                _ => group(&card, 4, "-"),
            }
        }
        13 => {
            let iban = iban(rng);
            if rng.below(2) == 0 {
                iban
            } else {
                group(&iban, 4, " ")
            }
        }
        14 => match rng.below(3) {
            0 => base58check(&[&[0u8][..], &rng.bytes(20)].concat()),
            1 => {
                let mut key = rng.bytes(32);
                key[0] &= 0x7F;
                let mut p = vec![0x80];
                p.extend_from_slice(&key);
                if rng.below(2) == 0 {
                    p.push(1);
                }
                base58check(&p)
            }
            _ => {
                let mut p = vec![0x04, 0x88, 0xAD, 0xE4, 1];
                p.extend_from_slice(&rng.bytes(8));
                p.extend_from_slice(&rng.bytes(32));
                p.push(0);
                let mut key = rng.bytes(32);
                key[0] &= 0x7F;
                p.extend_from_slice(&key);
                base58check(&p)
            }
        },
        15 => {
            let mut key = rng.bytes(32);
            key[0] &= 0x7F;
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            let name = rng.pick(&[
                "PRIVATE_KEY=0x",
                "private key: ",
                "\"privateKey\": \"0x",
                "",
            ]);
            format!("{name}{hex}")
        }
        16 => rng
            .pick(&[
                "jane.doe@acme-corp.io",
                "+44 20 7946 0958",
                "(415) 867-5309",
                "+49 30 12345678",
                "call 212-867-5309 now",
                "bob@example.com",
            ])
            .to_string(),
        17 => {
            // Binary and control bytes: they end runs of text.
            let n = 1 + rng.below(3);
            let mut b = rng.bytes(n);
            for x in &mut b {
                *x |= 0x80;
            }
            if rng.below(3) == 0 {
                b = vec![[0x01, 0x7F, 0x0B, 0x00][rng.below(4)]];
            }
            return b;
        }
        18 => {
            // A long token: letters and digits, or letters alone.
            let n = 8 + rng.below(120);
            let alphabet: &[u8] = if rng.below(2) == 0 {
                b"abcdefghijklmnopqrstuvwxyz"
            } else {
                b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz123456789"
            };
            (0..n)
                .map(|_| alphabet[rng.below(alphabet.len())] as char)
                .collect()
        }
        _ => {
            // A lower-case token of any length.
            let n = 1 + rng.below(12);
            (0..n)
                .map(|_| (b'a' + rng.below(26) as u8) as char)
                .collect()
        }
    };
    s.into_bytes()
}

/// The text of a list of fragments, each followed by a separator or not.
fn text(parts: &[(u8, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(kind, seed) in parts {
        out.extend_from_slice(&fragment(kind, seed));
        match seed >> 60 {
            0..=8 => out.push(b' '),
            9 | 10 => out.extend_from_slice(b"\\n"),
            11 => out.push(b'\n'),
            _ => {}
        }
    }
    out
}

fn scanners() -> Vec<FamilyScanner> {
    let mut out = Vec::new();
    for families in [
        FamilySet::TEXT,
        FamilySet::of(&[Family::Financial, Family::CryptoKeys]),
        FamilySet::of(&[Family::Financial]),
        FamilySet::of(&[Family::CryptoKeys]),
        FamilySet::of(&[Family::Pii]),
        FamilySet::of(&[Family::CryptoKeys, Family::Pii]),
    ] {
        for test_values in [false, true] {
            out.push(FamilyScanner::new(families).report_test_values(test_values));
        }
    }
    out
}

fn window(s: FamilyScanner, hay: &[u8], edges: Edges) -> Vec<FamilyFinding> {
    let mut out = Vec::new();
    s.scan_window(hay, edges, &mut out);
    out
}

/// Both walks on `hay` (whole, and as windows with each kind of edge), with both sets of
/// masks: the same findings. Returns how many there were.
fn same_findings(hay: &[u8], cut: usize) -> usize {
    let mut found = 0;
    for paths in Paths::ALL {
        paths.force();
        for s in scanners() {
            let reference = s.every_token();
            let whole = window(reference, hay, Edges::WHOLE);
            assert_eq!(window(s, hay, Edges::WHOLE), whole, "{s:?} {paths:?}");
            found += whole.len();
            // A window cut out of the middle of a stream.
            let lo = cut.min(hay.len());
            let hi = hay.len() - cut.min(hay.len() - lo);
            for starts_stream in [false, true] {
                for ends_stream in [false, true] {
                    let edges = Edges {
                        starts_stream,
                        ends_stream,
                    };
                    let part = &hay[lo..hi];
                    assert_eq!(
                        window(s, part, edges),
                        window(reference, part, edges),
                        "{s:?} {edges:?} {paths:?}"
                    );
                }
            }
        }
    }
    Paths::Native.force();
    found
}

fn stream(s: FamilyScanner, hay: &[u8], chunk: usize) -> Vec<FamilyStreamFinding> {
    let mut st = FamilyStream::new(s);
    let mut out = Vec::new();
    for c in hay.chunks(chunk) {
        st.feed(c, &mut out);
    }
    st.finish(&mut out);
    out
}

fn parts() -> impl Strategy<Value = Vec<(u8, u64)>> {
    prop::collection::vec((0u8..20, any::<u64>()), 0..80)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn skipping_finds_what_every_token_finds(parts in parts(), cut in 0usize..200) {
        same_findings(&text(&parts), cut);
    }

    #[test]
    fn skipping_finds_what_every_token_finds_in_streams(
        parts in parts(),
        chunk in 1usize..300,
    ) {
        let hay = text(&parts);
        for s in [
            FamilyScanner::new(FamilySet::TEXT),
            FamilyScanner::new(FamilySet::of(&[Family::CryptoKeys])).report_test_values(true),
        ] {
            prop_assert_eq!(stream(s, &hay, chunk), stream(s.every_token(), &hay, chunk));
        }
    }

    #[test]
    fn skipping_on_arbitrary_bytes(hay in prop::collection::vec(any::<u8>(), 0..600)) {
        same_findings(&hay, 3);
    }
}

/// The same on many texts made of seed phrases and what breaks them: the comparison is not
/// vacuous (every rule is found in them, seed phrases hundreds of times).
#[test]
fn skipping_finds_every_rule_the_same() {
    let mut rng = Rng::new(0x5EED);
    let mut by_rule = std::collections::BTreeMap::new();
    for round in 0..100 {
        let parts: Vec<(u8, u64)> = (0..1 + rng.below(60))
            .map(|_| {
                // Half of the fragments are phrases, broken or not.
                let kind = if rng.below(2) == 0 {
                    [2, 3, 4][rng.below(3)]
                } else {
                    rng.below(20) as u8
                };
                (kind, rng.next())
            })
            .collect();
        let hay = text(&parts);
        same_findings(&hay, round % 150);
        let s = FamilyScanner::new(FamilySet::TEXT).report_test_values(true);
        for f in window(s, &hay, Edges::WHOLE) {
            *by_rule.entry(f.rule).or_insert(0usize) += 1;
        }
        let chunk = 1 + rng.below(400);
        assert_eq!(stream(s, &hay, chunk), stream(s.every_token(), &hay, chunk));
    }
    eprintln!("findings by rule: {by_rule:?}");
    for rule in [
        FamilyRule::PaymentCard,
        FamilyRule::Iban,
        FamilyRule::CryptoAddress,
        FamilyRule::CryptoWif,
        FamilyRule::CryptoXprv,
        FamilyRule::EthPrivateKey,
        FamilyRule::EmailAddress,
        FamilyRule::PhoneNumber,
    ] {
        assert!(
            by_rule.get(&rule).copied().unwrap_or(0) > 5,
            "{rule:?}: {by_rule:?}"
        );
    }
    assert!(by_rule[&FamilyRule::Bip39SeedPhrase] > 200, "{by_rule:?}");
}

/// Texts of the throughput corpora's kind (prose of list words and others, JSON escapes, code)
/// at every offset of a 64-byte block.
#[test]
fn skipping_on_chat_like_text_at_every_offset() {
    let mut rng = Rng::new(7);
    let words: Vec<&str> = "the function returns value when called with list of items please \
        refactor this module so that it handles errors gracefully add tests for edge cases like \
        empty input and large files explain why build fails on linux compiler says type \
        mismatch struct field vector iterator closure borrow lifetime async await"
        .split(' ')
        .collect();
    let list = list();
    let mut body = String::from("{\"messages\":[{\"role\":\"user\",\"content\":\"");
    for line in 0..36 {
        for _ in 0..12 {
            if rng.below(3) == 0 {
                body.push_str(list[rng.below(2048)]);
            } else {
                body.push_str(rng.pick(&words));
            }
            body.push(' ');
        }
        if line % 7 == 3 {
            body.push_str(&layout(&mut rng, &phrase(&mut Rng::new(line))));
        }
        body.push_str(if line % 5 == 4 {
            "\\n```rust\\nfn main() {\\n    let v: Vec<u32> = (0..10).collect();\\n}\\n```\\n"
        } else {
            "\\n"
        });
    }
    body.push_str("\"}]}");
    for offset in 0..64 {
        let hay = format!("{}{body}", " ".repeat(offset));
        same_findings(hay.as_bytes(), offset * 7);
    }
}
