//! The detector families (`airlock_scan::families`): each rule on values generated here with
//! their real arithmetic, in the places agents put them, against the near-misses that real
//! traffic is full of; stream splits; hostnames and URL paths. Failure messages never print a
//! whole secret (`mask`).

use airlock_scan::families::{
    BIP39_ENGLISH, CARRY, Check, Edges, FamilyFinding, FamilyRule, FamilyScanner, FamilySet,
    FamilyStream, bip39_word_index, check_hostname, check_url_path,
};
use ring::digest::{SHA256, digest};

// ---------------------------------------------------------------- helpers

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        for x in &mut b {
            *x = self.next() as u8;
        }
        b
    }
}

/// The first 4 and last 2 characters: enough to tell values apart, never the value.
fn mask(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    if c.len() <= 8 {
        return "*".repeat(c.len());
    }
    format!(
        "{}…{} ({} chars)",
        c[..4].iter().collect::<String>(),
        c[c.len() - 2..].iter().collect::<String>(),
        c.len()
    )
}

fn all() -> FamilyScanner {
    FamilyScanner::new(FamilySet::TEXT)
}

fn scan(text: &str) -> Vec<FamilyFinding> {
    let mut out = Vec::new();
    all().scan(text.as_bytes(), &mut out);
    out
}

fn rules(text: &str) -> Vec<FamilyRule> {
    scan(text).iter().map(|f| f.rule).collect()
}

/// `text` holds `value` once, found by `rule` with exactly its span.
#[track_caller]
fn assert_found(text: &str, value: &str, rule: FamilyRule) {
    let at = text.find(value).expect("value in text");
    let found = scan(text);
    let hit = found
        .iter()
        .any(|f| f.rule == rule && f.start == at && f.end == at + value.len());
    assert!(
        hit,
        "{} not found as {} in a text of {} bytes; found {:?}",
        mask(value),
        rule.id(),
        text.len(),
        found
            .iter()
            .map(|f| (f.rule.id(), f.start, f.end))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        found.iter().filter(|f| f.rule == rule).count(),
        1,
        "{} reported once",
        mask(value)
    );
}

#[track_caller]
fn assert_clean(text: &str) {
    let found = scan(text);
    assert!(
        found.is_empty(),
        "benign text {} flagged: {:?}",
        mask(text),
        found
            .iter()
            .map(|f| (f.rule.id(), mask(&text[f.start..f.end])))
            .collect::<Vec<_>>()
    );
}

fn luhn_complete(body: &str) -> String {
    // The check digit that makes body + d Luhn-valid.
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

fn card(rng: &mut Rng, prefix: &str, len: usize) -> String {
    let mut s = prefix.to_string();
    while s.len() < len - 1 {
        s.push((b'0' + rng.below(10) as u8) as char);
    }
    luhn_complete(&s)
}

fn group(number: &str, shape: &[usize], sep: char) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (i, &g) in shape.iter().enumerate() {
        if i > 0 {
            out.push(sep);
        }
        out.push_str(&number[at..at + g]);
        at += g;
    }
    out
}

fn iban(rng: &mut Rng, country: &str, spec: &str) -> String {
    let mut bban = String::new();
    let mut count = 0;
    for c in spec.bytes() {
        if c.is_ascii_digit() {
            count = count * 10 + usize::from(c - b'0');
            continue;
        }
        for _ in 0..count {
            let ch = match c {
                b'n' => b'0' + rng.below(10) as u8,
                b'a' => b'A' + rng.below(26) as u8,
                _ => b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[rng.below(36) as usize],
            };
            bban.push(ch as char);
        }
        count = 0;
    }
    let rearranged = format!("{bban}{country}00");
    let mut r = 0u32;
    for c in rearranged.bytes() {
        r = if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    format!("{country}{:02}{bban}", 98 - r)
}

fn sha256(b: &[u8]) -> Vec<u8> {
    digest(&SHA256, b).as_ref().to_vec()
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

fn key(rng: &mut Rng) -> [u8; 32] {
    let mut k = rng.bytes::<32>();
    k[0] &= 0x7F; // below the curve order
    k
}

fn wif(k: &[u8; 32], testnet: bool, compressed: bool) -> String {
    let mut p = vec![if testnet { 0xEF } else { 0x80 }];
    p.extend_from_slice(k);
    if compressed {
        p.push(1);
    }
    base58check(&p)
}

fn xprv(rng: &mut Rng, version: [u8; 4]) -> String {
    let mut p = version.to_vec();
    p.push(rng.below(5) as u8); // depth
    p.extend_from_slice(&rng.bytes::<4>()); // parent fingerprint
    p.extend_from_slice(&rng.bytes::<4>()); // child number
    p.extend_from_slice(&rng.bytes::<32>()); // chain code
    p.push(0);
    p.extend_from_slice(&key(rng));
    base58check(&p)
}

fn words() -> Vec<&'static str> {
    BIP39_ENGLISH.split_whitespace().collect()
}

fn mnemonic(entropy: &[u8]) -> Vec<&'static str> {
    let list = words();
    let cs = entropy.len() / 4;
    let mut bits: Vec<bool> = entropy
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1))
        .collect();
    let h = sha256(entropy);
    bits.extend((0..cs).map(|i| h[i / 8] >> (7 - i % 8) & 1 == 1));
    bits.chunks(11)
        .map(|c| list[c.iter().fold(0usize, |a, &b| a * 2 + usize::from(b))])
        .collect()
}

fn phrase(rng: &mut Rng, words: usize) -> String {
    let entropy: Vec<u8> = (0..words * 4 / 3).map(|_| rng.next() as u8).collect();
    mnemonic(&entropy).join(" ")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------- data

#[test]
fn the_bip39_list_is_the_standard_english_list() {
    let digest = hex(&sha256(BIP39_ENGLISH.as_bytes()));
    assert_eq!(
        digest,
        "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda"
    );
    let w = words();
    assert_eq!(w.len(), 2048);
    assert_eq!((w[0], w[2047]), ("abandon", "zoo"));
    assert_eq!(bip39_word_index(b"zoo"), Some(2047));
}

#[test]
fn mnemonic_helper_matches_the_reference_implementation() {
    // Printed by python-mnemonic 0.21 for entropy bytes 7, 8, 9, …
    let e: Vec<u8> = (7..7 + 16).collect();
    assert_eq!(
        mnemonic(&e).join(" "),
        "alpha doctor dream bid school mandate detail acquire bamboo obvious aim clump"
    );
    let e: Vec<u8> = (7..7 + 32).collect();
    assert_eq!(
        mnemonic(&e).join(" "),
        "alpha doctor dream bid school mandate detail acquire bamboo obvious aim club immense \
         arrive half glory brown valley siege drastic captain must nest supply"
    );
}

// ---------------------------------------------------------------- payment cards

const CARD_SHAPES: &[(&str, usize, &[usize])] = &[
    ("4539", 16, &[4, 4, 4, 4]),
    ("4916", 19, &[4, 4, 4, 4, 3]),
    ("5425", 16, &[4, 4, 4, 4]),
    ("2720", 16, &[4, 4, 4, 4]),
    ("2221", 16, &[4, 4, 4, 4]),
    ("3714", 15, &[4, 6, 5]),
    ("3456", 15, &[4, 6, 5]),
    ("6011", 16, &[4, 4, 4, 4]),
    ("6445", 16, &[4, 4, 4, 4]),
    ("3530", 16, &[4, 4, 4, 4]),
    ("3056", 14, &[4, 6, 4]),
    ("3612", 14, &[4, 6, 4]),
    ("6212", 16, &[4, 4, 4, 4]),
    ("6759", 16, &[4, 4, 4, 4]),
];

#[test]
fn cards_of_every_network_in_every_shape_and_place() {
    let mut rng = Rng(0xC0FFEE);
    for &(prefix, len, shape) in CARD_SHAPES {
        for _ in 0..20 {
            let n = card(&mut rng, prefix, len);
            for value in [n.clone(), group(&n, shape, ' '), group(&n, shape, '-')] {
                for text in [
                    format!("{{\"card_number\":\"{value}\",\"exp\":\"12/28\"}}"),
                    format!("name,card\nAlice,{value}\n"),
                    format!("/collect?card={value}&x=1"),
                    format!("my card is {value}."),
                    value.clone(),
                    format!("card:\t{value}\n"),
                ] {
                    let found = scan(&text);
                    let cards: Vec<_> = found
                        .iter()
                        .filter(|f| f.rule == FamilyRule::PaymentCard)
                        .collect();
                    if cards.is_empty() && found.is_empty() {
                        // A generated number can look made up (a long run of one digit): rare,
                        // and then it is reported as a test value.
                        let mut t = Vec::new();
                        all().report_test_values(true).scan(text.as_bytes(), &mut t);
                        assert!(
                            t.iter().any(|f| f.test_value),
                            "{} missed in {}",
                            mask(&value),
                            mask(&text)
                        );
                        continue;
                    }
                    assert_found(&text, &value, FamilyRule::PaymentCard);
                    let f = cards[0];
                    assert!(
                        matches!(f.check, Check::Card { digits, .. } if usize::from(digits) == len)
                    );
                }
            }
        }
    }
}

#[test]
fn numbers_that_are_not_cards() {
    let mut rng = Rng(7);
    let n = card(&mut rng, "4539", 16);
    let bad_luhn = format!("{}{}", &n[..15], (n.as_bytes()[15] - b'0' + 1) % 10);
    let wrong_prefix = card(&mut rng, "1234", 16);
    let visa15 = card(&mut rng, "4539", 15);
    let amex16 = card(&mut rng, "3714", 16);
    for text in [
        bad_luhn.clone(),
        wrong_prefix,
        visa15,
        amex16,
        format!("{n}7"),                                   // longer digit run
        format!("7{n}"),                                   //
        format!("order 98{n}"),                            //
        format!("id=ORD{n}"),                              // glued to letters
        format!("{n}abc"),                                 //
        format!("deadbeef{n}cafe"),                        // inside hex
        format!("0.{n}"),                                  // a decimal
        format!("v1.2.{n}"),                               // a version
        format!("{n}.5"),                                  //
        format!("+{n}"),                                   // a phone number
        format!("123e4567-e89b-12d3-a456-{n}"),            // UUID-like
        format!("x-{n}-y"),                                //
        format!("/users/{n}/profile"),                     // a path id
        format!("${n}"),                                   //
        format!("1234 {}", group(&n, &[4, 4, 4, 4], ' ')), // a table row
        format!("{} 5678", group(&n, &[4, 4, 4, 4], ' ')),
        group(&n, &[4, 4, 8], ' '),         // not a card's grouping
        group(&n, &[4, 4, 4, 4], '.'),      //
        format!("{}-{}", &n[..8], &n[8..]), //
        "1700000000000000 1712345678901234 9007199254740991".to_string(), // timestamps, max int
        "sha1: 4532015112830366452301511283036645230151".to_string(),
    ] {
        assert!(
            !rules(&text).contains(&FamilyRule::PaymentCard),
            "not a card: {}",
            mask(&text)
        );
    }
}

#[test]
fn published_test_cards_are_test_values() {
    for (value, network) in [
        ("4111 1111 1111 1111", "Visa"),
        ("4242424242424242", "Visa"),
        ("5555-5555-5555-4444", "Mastercard"),
        ("378282246310005", "American Express"),
        ("6011111111111117", "Discover"),
        ("4000 0025 0000 3155", "Visa"),
    ] {
        let text = format!("card = \"{value}\"");
        assert!(
            !rules(&text).contains(&FamilyRule::PaymentCard),
            "{value} is a test card"
        );
        let mut out = Vec::new();
        all()
            .report_test_values(true)
            .scan(text.as_bytes(), &mut out);
        assert_eq!(out.len(), 1, "{value}");
        assert!(out[0].test_value);
        assert_eq!(&text[out[0].start..out[0].end], value);
        let Check::Card { network: n, .. } = out[0].check else {
            panic!("card check");
        };
        assert_eq!(n.name(), network);
    }
}

// ---------------------------------------------------------------- IBAN

#[test]
fn ibans_compact_and_grouped() {
    let mut rng = Rng(99);
    for (cc, spec) in [
        ("DE", "8n10n"),
        ("GB", "4a6n8n"),
        ("FR", "5n5n11c2n"),
        ("NL", "4a10n"),
        ("ES", "4n4n1n1n10n"),
        ("IT", "1a5n5n12c"),
        ("CH", "5n12c"),
        ("NO", "4n6n1n"),
        ("MT", "4a5n18c"),
        ("BE", "3n7n2n"),
    ] {
        for _ in 0..10 {
            let v = iban(&mut rng, cc, spec);
            let grouped: String = v
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(" ");
            for value in [v.clone(), grouped] {
                let text = format!("Please wire it to {value} today.");
                let found = scan(&text);
                if found.is_empty() {
                    // Made-up-looking BBAN (a run of one digit): a test value.
                    continue;
                }
                assert_found(&text, &value, FamilyRule::Iban);
                assert_found(&format!("/collect?iban={value}"), &value, FamilyRule::Iban);
            }
            // Wrong check digits, lower case, glued.
            let mut wrong = v.clone().into_bytes();
            wrong[2] = if wrong[2] == b'9' { b'1' } else { wrong[2] + 1 };
            let wrong = String::from_utf8(wrong).unwrap();
            for text in [
                wrong,
                v.to_lowercase(),
                format!("X{v}"),
                format!("{v}0"),
                format!("{v}-1"),
            ] {
                assert!(!rules(&text).contains(&FamilyRule::Iban), "{}", mask(&text));
            }
        }
    }
    assert_found(
        "IBAN: DE89 3704 0044 0532 0130 00",
        "DE89 3704 0044 0532 0130 00",
        FamilyRule::Iban,
    );
    // Not registered, wrong length, a hex id with a country-like start.
    for text in [
        "US12345678901234567890",
        "DE8937040044053201300",
        "DE12ABCDEF0123456789AB",
        "GB82 WEST 1234 5698 7654 32", // the documented example: made up (a run 98765432)
    ] {
        assert!(!rules(text).contains(&FamilyRule::Iban), "{text}");
    }
}

// ---------------------------------------------------------------- crypto addresses

/// BIP-173 / BIP-350 encoding of a mainnet segwit address (the checksum written out here, so
/// that the scanner's own polymod is checked against a second implementation).
fn segwit_address(version: u8, program: &[u8]) -> String {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    fn polymod(v: &[u8]) -> u32 {
        let generator = [
            0x3b6a57b2u32,
            0x26508e6d,
            0x1ea119fa,
            0x3d4233dd,
            0x2a1462b3,
        ];
        let mut chk = 1u32;
        for &x in v {
            let b = chk >> 25;
            chk = (chk & 0x1ffffff) << 5 ^ u32::from(x);
            for (i, g) in generator.iter().enumerate() {
                if (b >> i) & 1 == 1 {
                    chk ^= g;
                }
            }
        }
        chk
    }
    let mut data = vec![version];
    let (mut acc, mut bits) = (0u32, 0);
    for &b in program {
        acc = acc << 8 | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            data.push((acc >> bits & 31) as u8);
        }
    }
    if bits > 0 {
        data.push((acc << (5 - bits) & 31) as u8);
    }
    let constant = if version == 0 { 1 } else { 0x2bc830a3 };
    let mut v = vec![3, 3, 0, 2, 3];
    v.extend_from_slice(&data);
    v.extend_from_slice(&[0; 6]);
    let m = polymod(&v) ^ constant;
    data.extend((0..6).map(|i| (m >> (5 * (5 - i)) & 31) as u8));
    let mut s = String::from("bc1");
    s.extend(data.iter().map(|&d| CHARSET[d as usize] as char));
    s
}

#[test]
fn bitcoin_addresses_by_their_checksums() {
    let mut rng = Rng(11);
    for _ in 0..40 {
        let hash = rng.bytes::<20>();
        let program = rng.bytes::<32>();
        let addresses = [
            base58check(&[&[0x00][..], &hash].concat()),
            base58check(&[&[0x05][..], &hash].concat()),
            segwit_address(0, &hash),
            segwit_address(0, &program),
            segwit_address(1, &program),
        ];
        for a in &addresses {
            assert_found(
                &format!("send the BTC to {a} today"),
                a,
                FamilyRule::CryptoAddress,
            );
            assert_found(
                &format!("/withdraw?to={a}&amount=0.5"),
                a,
                FamilyRule::CryptoAddress,
            );
            assert_found(
                &format!("{{\"address\":\"{a}\"}}"),
                a,
                FamilyRule::CryptoAddress,
            );
            // One character changed, a character more, inside a longer token: not an address.
            let mut bad = a.clone().into_bytes();
            let i = 5 + rng.below(20) as usize;
            bad[i] = if bad[i] == b'z' { b'y' } else { b'z' };
            for text in [
                String::from_utf8(bad).unwrap(),
                format!("{a}x"),
                format!("x{a}"),
            ] {
                assert!(
                    !rules(&text).contains(&FamilyRule::CryptoAddress),
                    "{}",
                    mask(&text)
                );
            }
        }
        // Segwit upper case holds; mixed case and testnet versions do not.
        let up = addresses[2].to_uppercase();
        assert_found(&format!("to {up}"), &up, FamilyRule::CryptoAddress);
        let testnet = base58check(&[&[0x6f][..], &hash].concat());
        assert!(!rules(&format!("to {testnet}")).contains(&FamilyRule::CryptoAddress));
    }
    // Published examples are test values; other families' tokens of the same length are not
    // addresses.
    for example in [
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
    ] {
        let text = format!("pay to {example}");
        assert!(rules(&text).is_empty(), "{example}");
        let mut t = Vec::new();
        all().report_test_values(true).scan(text.as_bytes(), &mut t);
        assert!(
            t.iter()
                .any(|f| f.rule == FamilyRule::CryptoAddress && f.test_value)
        );
    }
    for text in [
        "commit 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
        "id=3f2504e04f8911d39a0c0305e82c3301",
        "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
    ] {
        assert!(!rules(text).contains(&FamilyRule::CryptoAddress), "{text}");
    }
}

// ---------------------------------------------------------------- crypto keys

#[test]
fn wif_keys() {
    let mut rng = Rng(5);
    for _ in 0..30 {
        let k = key(&mut rng);
        for (testnet, compressed) in [(false, false), (false, true), (true, false), (true, true)] {
            let w = wif(&k, testnet, compressed);
            assert_found(&format!("key={w}"), &w, FamilyRule::CryptoWif);
            assert_found(&format!("{{\"wif\": \"{w}\"}}"), &w, FamilyRule::CryptoWif);
            // One character changed: the checksum fails.
            let mut bad = w.clone().into_bytes();
            let i = 10 + rng.below(30) as usize;
            bad[i] = if bad[i] == b'z' { b'y' } else { b'z' };
            let bad = String::from_utf8(bad).unwrap();
            assert!(rules(&bad).is_empty(), "{}", mask(&bad));
            assert!(rules(&format!("x{w}")).is_empty());
        }
    }
    // The Bitcoin wiki example is a published test key.
    let wiki = "5HueCGU8rMjxEXxiPuD5BDku4MkFqeZyd4dZ1jvhTVqvbTLvyTJ";
    assert!(rules(wiki).is_empty());
    let mut out = Vec::new();
    all()
        .report_test_values(true)
        .scan(wiki.as_bytes(), &mut out);
    assert_eq!(out.len(), 1);
    assert!(out[0].test_value);
}

#[test]
fn extended_private_keys() {
    let mut rng = Rng(77);
    for version in [
        [0x04, 0x88, 0xAD, 0xE4],
        [0x04, 0x35, 0x83, 0x94],
        [0x04, 0xB2, 0x43, 0x0C],
        [0x04, 0x9D, 0x78, 0x78],
    ] {
        for _ in 0..10 {
            let x = xprv(&mut rng, version);
            assert_found(&format!("export XPRV={x}\n"), &x, FamilyRule::CryptoXprv);
        }
    }
    // An xpub is public; a key with a wrong version for its prefix is not a key.
    let mut p = vec![0x04, 0x88, 0xB2, 0x1E, 0];
    p.extend_from_slice(&[0; 8]);
    p.extend_from_slice(&rng.bytes::<32>());
    p.push(2);
    p.extend_from_slice(&rng.bytes::<32>());
    assert!(rules(&base58check(&p)).is_empty());
    // BIP-32 test vector 1's master key: a test value.
    let v1 = "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi";
    assert!(rules(v1).is_empty());
    let mut out = Vec::new();
    all().report_test_values(true).scan(v1.as_bytes(), &mut out);
    assert!(out.len() == 1 && out[0].test_value);
}

#[test]
fn ethereum_keys_need_a_name() {
    let mut rng = Rng(3);
    for _ in 0..20 {
        let h = hex(&key(&mut rng));
        for text in [
            format!("PRIVATE_KEY=0x{h}\n"),
            format!("DEPLOYER_PRIVATE_KEY = \"{h}\""),
            format!("{{\"privateKey\": \"0x{h}\"}}"),
            format!("const account = privateKeyToAccount('0x{h}');"),
            format!("forge create --private-key 0x{h} src/A.sol:A"),
            format!("my eth private key: {h}"),
        ] {
            assert_found(&text, &h, FamilyRule::EthPrivateKey);
        }
        for text in [
            h.clone(),
            format!("sha256: {h}"),
            format!("\"hash\": \"0x{h}\""),
            format!("tx 0x{h} confirmed"),
            format!("private_key_path = \"/etc/key\"\nchecksum = \"{h}\""),
        ] {
            assert!(rules(&text).is_empty(), "{}", mask(&text));
        }
    }
    // Hardhat's first account: every tutorial has it.
    let hardhat = "PRIVATE_KEY=0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    assert!(rules(hardhat).is_empty());
}

// ---------------------------------------------------------------- seed phrases

#[test]
fn seed_phrases_of_every_length_and_layout() {
    let mut rng = Rng(11);
    for n in [12, 15, 18, 21, 24] {
        for _ in 0..20 {
            let p = phrase(&mut rng, n);
            let w: Vec<&str> = p.split(' ').collect();
            let numbered = w
                .iter()
                .enumerate()
                .map(|(i, x)| format!("{}. {x}", i + 1))
                .collect::<Vec<_>>()
                .join("\n");
            let lines = w.join("\n");
            let json = format!("[\n    \"{}\"\n]", w.join("\",\n    \""));
            let escaped = w.join("\\n");
            for (layout, value) in [
                ("spaces", p.clone()),
                ("numbered", numbered),
                ("lines", lines),
                ("json array", json[6..json.len() - 3].to_string()),
                ("escaped", escaped),
            ] {
                let text = match layout {
                    "json array" => json.clone(),
                    "escaped" => format!("{{\"content\":\"my wallet words:\\n{value}\\nthanks\"}}"),
                    _ => format!("Here is my wallet mnemonic:\n{value}\nstore it safely."),
                };
                let found = scan(&text);
                let seeds: Vec<_> = found
                    .iter()
                    .filter(|f| f.rule == FamilyRule::Bip39SeedPhrase)
                    .collect();
                assert_eq!(seeds.len(), 1, "{n} words, {layout}: {}", mask(&value));
                let s = seeds[0];
                let first = w[0];
                let last = w[n - 1];
                assert!(
                    text[s.start..].starts_with(first) && text[..s.end].ends_with(last),
                    "{n} words, {layout}: span"
                );
                assert_eq!(s.check, Check::SeedPhrase { words: n as u8 });
            }
            // One word replaced by another list word: the checksum fails (or, 1 time in
            // 16–256, holds by chance: then it is a valid phrase).
            let mut other = w.clone();
            other[3] = if other[3] == "zoo" { "abandon" } else { "zoo" };
            let bad = other.join(" ");
            let _ = rules(&bad);
        }
    }
}

#[test]
fn a_phrase_among_stray_list_words_is_covered() {
    // "phrase", "please" and "keep" are list words: the run is the phrase plus strays. The
    // reported span covers the phrase (and, when a longer window passes its checksum by chance,
    // the strays too: never less than the phrase).
    let mut rng = Rng(31);
    for _ in 0..50 {
        let p = phrase(&mut rng, 12);
        let numbered = p
            .split(' ')
            .enumerate()
            .map(|(i, x)| format!("{}. {x}", i + 1))
            .collect::<Vec<_>>()
            .join("\n");
        for value in [p.clone(), numbered] {
            let text = format!("Here is my recovery phrase:\n{value}\nplease keep it.");
            // The span starts at the first word (after a list number).
            let at =
                text.find(&value).unwrap() + value.find(|c: char| c.is_ascii_lowercase()).unwrap();
            let found = scan(&text);
            assert_eq!(found.len(), 1, "{}", mask(&value));
            assert!(
                found[0].start <= at && found[0].end >= text.find(&value).unwrap() + value.len(),
                "found {}..{}, phrase {}..{} in {} bytes",
                found[0].start,
                found[0].end,
                at,
                at + value.len(),
                text.len()
            );
        }
    }
}

#[test]
fn word_runs_that_are_not_seed_phrases() {
    let list = words();
    // The list itself, one per line, in a JSON array, 12 per line.
    assert!(rules(BIP39_ENGLISH).is_empty());
    let arr = format!("[\"{}\"]", list.join("\", \""));
    assert!(rules(&arr).is_empty());
    let rows: Vec<String> = list.chunks(12).map(|c| c.join(" ")).collect();
    assert!(rules(&rows.join("\n")).is_empty());
    // Prose made of list words is rare, and a checksum fails 15 times in 16: count.
    let mut rng = Rng(1234);
    let mut false_hits = 0;
    for _ in 0..2000 {
        let w: Vec<&str> = (0..12).map(|_| list[rng.below(2048) as usize]).collect();
        let text = format!("The {} of it.", w.join(" "));
        false_hits += rules(&text).len();
    }
    // About 2000/16 would pass the checksum: these are valid phrases by construction.
    assert!((60..200).contains(&false_hits), "{false_hits}");
    // 30 random list words: a word list, not judged (its lines are).
    let w: Vec<&str> = (0..30).map(|_| list[rng.below(2048) as usize]).collect();
    assert!(rules(&w.join(" ")).is_empty());
    // Prose.
    assert_clean(
        "please refactor this module so that it handles errors gracefully and add tests for \
         edge cases like empty input and large files, then explain why the build fails on linux",
    );
    // Published test phrases.
    for p in [
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
        "test test test test test test test test test test test junk",
        "legal winner thank year wave sausage worth useful legal winner thank yellow",
        "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
    ] {
        assert!(rules(p).is_empty(), "{p}");
        let mut out = Vec::new();
        all().report_test_values(true).scan(p.as_bytes(), &mut out);
        assert!(out.len() == 1 && out[0].test_value, "{p}");
    }
}

// ---------------------------------------------------------------- PII

#[test]
fn email_addresses() {
    for (text, email) in [
        (
            "Contact jane.doe@acme-corp.io about it.",
            "jane.doe@acme-corp.io",
        ),
        (
            "{\"email\":\"j.smith+tag@mail.example-co.uk\"}",
            "j.smith+tag@mail.example-co.uk",
        ),
        (
            "Signed-off-by: Ann Lee <ann.lee@kernel.org>",
            "ann.lee@kernel.org",
        ),
        ("mailto:bob@company.de", "bob@company.de"),
        ("send to maria_garcia@gmail.com.", "maria_garcia@gmail.com"),
    ] {
        assert_found(text, email, FamilyRule::EmailAddress);
    }
    for text in [
        "user@example.com",
        "jane@example.org",
        "a@b.example",
        "john@test",
        "git@github.com:owner/repo.git",
        "ssh://git@gitlab.com/x.git",
        "noreply@github.com",
        "12345+octocat@users.noreply.github.com",
        "support@stripe.com",
        "icon@2x.png",
        "lodash@4.17.21",
        "https://user:pass@host.company.com/path",
        "ubuntu@ip-10-0-0-1.ec2.internal",
        "@types/node",
        "foo@bar",
        "a@b.c",
        "you@yourdomain.com",
        "image@sha256:abcdef",
    ] {
        assert!(!rules(text).contains(&FamilyRule::EmailAddress), "{text}");
    }
}

#[test]
fn phone_numbers() {
    for (text, phone) in [
        ("call +1 415 867 5309 now", "+1 415 867 5309"),
        ("tel: +14158675309", "+14158675309"),
        ("+44 20 7946 0958", "+44 20 7946 0958"),
        ("+33 1 42 68 53 00", "+33 1 42 68 53 00"),
        ("+1 (415) 867-5309", "+1 (415) 867-5309"),
        ("+44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
        ("phone: (415) 867-5309.", "(415) 867-5309"),
        ("415-867-5309", "415-867-5309"),
        ("415.867.5309", "415.867.5309"),
        ("Tel. 020 7946 0958", "020 7946 0958"),
        ("06 48 27 91 35", "06 48 27 91 35"),
        ("phone=+4915172938460&x", "+4915172938460"),
    ] {
        assert_found(text, phone, FamilyRule::PhoneNumber);
    }
    for text in [
        "2024-01-15",
        "2024-01-15 10:30:00",
        "192.168.100.200",
        "version 10.12.345.6789",
        "order 123456789012",
        "4158675309",
        "415 555 2671",
        "(415) 555-0123",
        "+1",
        "+12345",
        "ISBN 978-3-16-148410-0",
        "12:30:45",
        "x = 0.123456789",
        "1.5e+10",
        "@@ -12,7 +12,8 @@",
        "id=0612345678",
        "+1234567890123456789",
        "0x0612345678",
    ] {
        assert!(!rules(text).contains(&FamilyRule::PhoneNumber), "{text}");
    }
}

#[test]
fn families_are_selected() {
    let text = "card 4539 1488 0343 6467 mail jane@acme-corp.io";
    let mut out = Vec::new();
    FamilyScanner::new(FamilySet::EMPTY.with(airlock_scan::families::Family::Financial))
        .scan(text.as_bytes(), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].rule, FamilyRule::PaymentCard);
    assert_eq!(out[0].rule.family().key(), "financial");
}

// ---------------------------------------------------------------- streaming

#[test]
fn stream_finds_every_value_once_on_every_split() {
    let mut rng = Rng(42);
    let k = key(&mut rng);
    let values = [
        (
            FamilyRule::PaymentCard,
            group(&card(&mut rng, "4539", 16), &[4, 4, 4, 4], ' '),
        ),
        (FamilyRule::Iban, iban(&mut rng, "DE", "8n10n")),
        (FamilyRule::CryptoWif, wif(&k, false, true)),
        (
            FamilyRule::CryptoXprv,
            xprv(&mut rng, [0x04, 0x88, 0xAD, 0xE4]),
        ),
        (
            FamilyRule::Bip39SeedPhrase,
            phrase(&mut rng, 24).replace(' ', ",\n          "),
        ),
        (
            FamilyRule::EmailAddress,
            "jane.doe@acme-corp.io".to_string(),
        ),
        (FamilyRule::PhoneNumber, "+44 20 7946 0958".to_string()),
    ];
    for (rule, value) in &values {
        let pre = "lorem ipsum dolor sit amet; ".repeat(40);
        let text = format!("{pre}{value} and more text after it.\n");
        let at = pre.len();
        let mut whole = Vec::new();
        all().scan(text.as_bytes(), &mut whole);
        assert_eq!(whole.len(), 1, "{} whole", rule.id());
        for chunk in [1, 3, 17, 64, 300, CARRY - 1, CARRY + 1, 4096] {
            let mut s = FamilyStream::new(all());
            let mut out = Vec::new();
            for c in text.as_bytes().chunks(chunk) {
                s.feed(c, &mut out);
            }
            s.finish(&mut out);
            assert_eq!(out.len(), 1, "{} in chunks of {chunk}", rule.id());
            assert_eq!(out[0].rule, *rule);
            assert_eq!(
                out[0].start,
                at as u64,
                "{} in chunks of {chunk}",
                rule.id()
            );
            assert_eq!(out[0].end, (at + value.len()) as u64);
        }
    }
}

#[test]
fn a_window_does_not_judge_what_it_cannot_see() {
    let mut rng = Rng(8);
    let n = card(&mut rng, "4539", 16);
    // The window starts inside a longer number: its tail is not a card.
    let mut out = Vec::new();
    all().scan_window(
        n.as_bytes(),
        Edges {
            starts_stream: false,
            ends_stream: true,
        },
        &mut out,
    );
    assert!(out.is_empty());
    // The window ends right after it: more digits may follow.
    all().scan_window(
        format!("card {n}").as_bytes(),
        Edges {
            starts_stream: true,
            ends_stream: false,
        },
        &mut out,
    );
    assert!(out.is_empty());
}

// ---------------------------------------------------------------- hostnames

#[test]
fn hostnames_carrying_data_are_flagged() {
    for host in [
        // agent-egress-bench hostname_exfiltration cases and url-entropy-subdomain-007
        "7365637265745f6170695f6b65795f3132333435.exfil.evil.com",
        "c2VjcmV0X3Rva2VuXzEyMzQ1Njc4OTA.exfil.evil.com",
        "ghp-xxxx.yyyyzzzz.aaaabbbb.ccccdddd.exfil.evil.com",
        "a1b2c3d4.e5f6a7b8.c9d0e1f2.a3b4c5d6.e7f8a9b0.c1d2e3f4.a5b6c7d8.e9f0a1b2.c3d4e5f6.a7b8c9d0.exfil.evil.com",
        "4150494b4559.313233343536.JBSWY3DP.EHPK3PXP.exfil.evil.com",
        "706f7374677265733a2f2f757365723a70617373406462.exfil.evil.com",
        "4a6f686e446f65.53656372657431.exfil.evil.example.com",
        // base32 of text, long random labels, dnscat-style chains
        "onxw2zlunbsxg5dfoqqhi2dfebzwk4tdojsxi.t.attacker.net",
        "k3j5h2l6m7n8p9q2r4s5t6v7w8x9y2z3a4b5c6d7.data.evil.co.uk",
        "x7kp2mq9vr4sl8nw1by6ct3fa0jh5de2.x7kp2mq9vr4sl8nw.evil.com",
        // base32 as encoders write it (upper case), of text and of a key's bytes
        "JBSWY3DPEHPK3PXP.exfil.evil.com",
        "KRUGS4ZANFZSAYJAONSWG4TFOQ.t.evil.com",
        "7QK4WBXVZ2L3YFUA5M6D.data.attacker.net",
        // lower-case base32 of binary with a single digit (one label in fifty)
        "iflvgx2tivbverkuhxnuocdvfmhrkrfygxaoo.c2.evil.test",
    ] {
        let v = check_hostname(host);
        assert!(v.flagged, "{}", v.explain(host));
    }
}

#[test]
fn infrastructure_names_pass() {
    for host in [
        "d1a2b3c4d5e6f7.cloudfront.net",
        "abcd1234ef.execute-api.us-east-1.amazonaws.com",
        "my-bucket-7f3a9c2e1b.s3.amazonaws.com",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        "stg4f9a2b7c1d3e5f6a.blob.core.windows.net",
        "myapp-h7f3a9c2e1b4d5.z01.azurefd.net",
        "lh3.googleusercontent.com",
        "objects.githubusercontent.com",
        "my-app-git-feature-x-team-3f9a2b.vercel.app",
        "a1b2-203-0-113-7.ngrok-free.app",
        "abcdefghijklmnopqrst.supabase.co",
        "e1234.dscb.akamaiedge.net",
        "r4---sn-4g5e6nzz.googlevideo.com",
        "global.ssl.fastly.net",
        "api.anthropic.com",
        "www.google.com",
        "cdnjs.cloudflare.com",
        "docs.github.com",
        "login.microsoftonline.com",
        "ip-10-0-0-1.ec2.internal",
        "my-service.my-namespace.svc.cluster.local",
        "123e4567-e89b-12d3-a456-426614174000.tunnel.example.net",
        "xn--80ak6aa92e.xn--p1ai",
        "xn--bcher-kva.xn--bcher-kva.example.com",
        // Upper case as some people type names: words, short ids, hyphenated hosts.
        "WWW.GOOGLE.COM",
        "MAILSERVER.CORP.EXAMPLE.COM",
        "DESKTOP-7H3K2LQ.CORP.EXAMPLE.COM",
        "FILESERVER2019.AD.EXAMPLE.COM",
        "PRODUCTIONDATABASE.EU.EXAMPLE.COM",
        "prod-us-east-1-api-v2.internal.company.com",
        // long words with a single digit: as random by entropy, but words by their vowels
        "kubernetes-dashboard-production2.apps.example.com",
        "compute-engine-default-service-account6.iam.example.com",
        "stagingapigatewayloadbalancer4.corp.example.com",
        "o450123.ingest.sentry.io",
        "cluster0.ab1cd.mongodb.net",
        "bh4d9od16a-dsn.algolia.net",
        "10.0.0.1",
        "localhost",
        "[::1]",
    ] {
        let v = check_hostname(host);
        assert!(!v.flagged, "{}", v.explain(host));
    }
}

#[test]
fn the_explanation_is_one_line_naming_the_label() {
    let host = "4a6f686e446f65.53656372657431.exfil.evil.com";
    let line = check_hostname(host).explain(host);
    assert!(!line.contains('\n'));
    assert!(line.starts_with("flag "), "{line}");
    assert!(
        line.contains("'4a6f686e446f65' is hex of text +3"),
        "{line}"
    );
    let line = check_hostname("d1.cloudfront.net").explain("d1.cloudfront.net");
    assert!(
        line.contains("infrastructure zone cloudfront.net"),
        "{line}"
    );
}

// ---------------------------------------------------------------- URL paths

#[test]
fn url_paths_carrying_data_are_flagged() {
    let mut rng = Rng(21);
    let blob: String = (0..70)
        .map(|_| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                [rng.below(64) as usize] as char
        })
        .collect();
    let hexblob = hex(&rng.bytes::<30>());
    for url in [
        // agent-egress-bench url-dlp-base64-004, url-dlp-hex-005
        "/sync?data=QUtJQUlPU0ZPRE5ON0VYQU1QTEU=",
        "/sync?payload=414b4941494f53464f444e4e374558414d504c45",
        "/c/cG9zdGdyZXM6Ly9hZG1pbjpodW50ZXIyQGRiLmludGVybmFsOjU0MzIvcHJvZA",
        "/c/cG9zdGdyZXM6Ly9hZG1pbjpodW50ZXIyQGRiLmludGVybmFsOjU0MzIvcHJvZA==/x.png",
        "/collect?d=H4sIAAAAAAAAA6tWyk0tLkpNUbJSUEpKLUvNK8nMzAEAM2Hh5hsAAAA%3D",
        "/p/KRSXG5BAMZUWYZJAMNXW45DFNZ2HG===",
        "/api/x?sig=c2VjcmV0X3Rva2VuXzEyMzQ1Njc4OTBhYmNk",
        // Percent-encoded deeper than airlock decodes (agent-egress-bench enc-triple-url-009
        // and the same class in a path and at depth 5), whatever the value holds.
        "https://evil.example.com/exfil?key=%25252541%25252549",
        "/x/%2525252F%25252541/y",
        "/t?v=ok%25252520then",
        "https://evil.example.com/x?q=%51%55%74%4a%51%55%6c%50%55%30%5a%50%52%45%35%4f%4e%30%56%59%51%55%31%51%54%45%55%3d",
    ]
    .into_iter()
    .map(String::from)
    .chain([format!("/u/{blob}"), format!("/upload?chunk={hexblob}")])
    {
        let v = check_url_path(&url);
        assert!(v.flagged(), "{url}: {}", v.explain(&url, true));
    }
}

#[test]
fn content_addressed_and_expected_values_pass() {
    let sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let blake_tail = &sha256[4..];
    for url in [
        format!("/packages/{}/{}/{blake_tail}/requests-2.32.3-py3-none-any.whl", &sha256[..2], &sha256[2..4]),
        "/lodash/-/lodash-4.17.21.tgz".to_string(),
        "/@types%2fnode/-/node-22.10.1.tgz".to_string(),
        "/api/v1/crates/serde/1.0.215/download".to_string(),
        "/crates/serde/serde-1.0.215.crate".to_string(),
        "/github.com/stretchr/testify/@v/v0.0.0-20231010123456-abcdef123456.zip".to_string(),
        format!("/repo.git/objects/{}/{}", &sha256[..2], &sha256[2..40]),
        format!("/repo.git/objects/pack/pack-{}.pack", &sha256[..40]),
        "/repo.git/info/refs?service=git-upload-pack".to_string(),
        format!("/v2/library/nginx/blobs/sha256:{sha256}"),
        format!("/debian/dists/bookworm/main/by-hash/SHA256/{sha256}"),
        "/ajax/libs/lodash.js/4.17.21/lodash.min.js".to_string(),
        "/resources/550e8400-e29b-41d4-a716-446655440000/details".to_string(),
        "/static/js/app.3f9a2b1c.js".to_string(),
        "/assets/chunk-AB12CD34.js".to_string(),
        "/_next/static/chunks/main-a1b2c3d4e5f6a7b8c9d0.js".to_string(),
        "/assets/index-BfE3zq9X.css".to_string(),
        "/npm/bootstrap@5.3.3/dist/css/bootstrap.min.css?integrity=sha384-QWTKZyjpPEjISv5WaRU9OFeRpok6YctnYmDr5pNlyT2bRjXh0JMhjY6hW%2BALEwIH".to_string(),
        // Presigned URLs.
        format!(
            "/bucket/key.tar.gz?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr%2F%2F%2F%2F%2F%2F%2F%2F%2F%2FwEaCXVzLWVhc3QtMSJHMEUCIQDk8fExampleTokenValueThatIsLongAndRandomLooking1234567890abcdefABCDEF&X-Amz-Signature={sha256}"
        ),
        format!(
            "/b/o.bin?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=sa%40proj.iam.gserviceaccount.com%2F20240101%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20240101T000000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature={}",
            hex(&[7u8; 256]).replace("07", "a5").chars().enumerate().map(|(i, c)| if i % 3 == 0 { '4' } else { c }).collect::<String>()
        ),
        "/container/blob.bin?sv=2022-11-02&ss=b&srt=o&sp=r&se=2024-01-01T00:00:00Z&st=2023-12-31T00:00:00Z&spr=https&sig=Zx8kq2%2BvN3mP9rT4wY7bA1cD5eF6gH0jK2lM3nO4pQ%3D".to_string(),
        "/file.zip?Expires=1700000000&Policy=eyJTdGF0ZW1lbnQiOlt7IlJlc291cmNlIjoiaHR0cHM6Ly9kMTExMTExYWJjZGVmOC5jbG91ZGZyb250Lm5ldC8qIn1dfQ__&Signature=Nql641NHEUkUaXQHZINK1FZ~SYeUSoBJMxjdgqrzIdzV2gyEXPDNv0pYdWJkflDKJ3xIu7lbwRpSkG98NBlgPi4ZJpRRnVX4kXAJK6tdNx6FucDB7OVqzcxkxHsGFd8VCG1BkC-Afh9~lOCMIYHIaiOB6~5jt9w2EOwi6sIIqrg_&Key-Pair-Id=K2JCJMDEHXQW5F".to_string(),
        // OAuth round trips, cursors.
        "/callback?code=4/0AX4XfWh8Jk2mQ9vR4sL8nW1bY6cT3fA0jH5dE&state=eyJyZXR1cm5UbyI6Ii9kYXNoYm9hcmQiLCJub25jZSI6ImFiYzEyMyJ9".to_string(),
        "/authorize?response_type=code&client_id=abc&state=eyJhbGciOiJIUzI1NiJ9.eyJyZXR1cm4iOiIvIn0.c2lnbmF0dXJlc2lnbmF0dXJl".to_string(),
        "/api/conversations.list?cursor=dXNlcjpVMDYxTkZUVDI%3D&limit=200".to_string(),
        "/v1/items?after=eyJpZCI6MTIzNDU2LCJ0cyI6MTcwMDAwMDAwMH0".to_string(),
        "/saml/acs?SAMLRequest=fZJNT8MwDIbvSPyHKPeuSdeNEa2VJo0PJOG0CQ8bWD0&RelayState=%2Fhome".to_string(),
        // Ids.
        "/v1/documents/1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms:batchUpdate".to_string(),
        "/drive/v3/files/1a2B3c4D5e6F7g8H9i0JkLmNoPqRsTuVw".to_string(),
        "/shop/products/Z2lkOi8vc2hvcGlmeS9Qcm9kdWN0LzEyMzQ1Njc4OQ".to_string(),
        "/graphql/node/MDEwOlJlcG9zaXRvcnkxMjk2MjY5".to_string(),
        "/upload?format=png&data=iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk".to_string(),
        "/repos/golang/go/issues?state=open&page=2&per_page=30&sort=updated".to_string(),
        "/search?q=how+to+fix+%22permission+denied%22+error+in+golang+test&hl=en&num=10".to_string(),
        "/camo/1f2e3d4c5b6a79880f1e2d3c4b5a69788796a5b4/68747470733a2f2f696d672e736869656c64732e696f2f62616467652f6275696c642d70617373696e672d677265656e2e737667".to_string(),
        "/api/x7Kp2mQ9vR4sL8nW1bY6cT3fA0jH5dE/status".to_string(),
        // Nesting within the decode depth: a return URL inside a redirect inside a login URL.
        "/login?next=%2Fauth%3Fredirect%3Dhttps%253A%252F%252Fapp.example.com%252Fcb%253Fq%253Da%252520b".to_string(),
        "/files/report%2520final%2525.pdf".to_string(),
        "/search?q=100%25%20natural%2525".to_string(),
    ] {
        let v = check_url_path(&url);
        assert!(!v.flagged(), "{url}: {}", v.explain(&url, true));
    }
}

#[test]
fn url_signals_span_the_raw_value() {
    let url = "/sync?data=QUtJQUlPU0ZPRE5ON0VYQU1QTEU%3D&x=1";
    let v = check_url_path(url);
    assert_eq!(v.signals.len(), 1);
    let s = v.signals[0];
    assert_eq!(&url[s.start..s.end], "QUtJQUlPU0ZPRE5ON0VYQU1QTEU%3D");
    let line = v.explain(url, true);
    assert!(!line.contains("QUtJQUlPU0ZPRE5ON0VYQU1QTEU"), "{line}");
    assert!(line.contains("query data"), "{line}");
}

#[test]
fn url_checks_hold_on_arbitrary_input() {
    // Random paths and queries rich in the bytes the checks parse: never a panic, and a
    // nesting signal exactly when percent-decoding takes more than three rounds.
    fn rounds(raw: &str) -> usize {
        let mut cur = raw.as_bytes().to_vec();
        for round in 1..=9 {
            let mut next = Vec::with_capacity(cur.len());
            let mut i = 0;
            let mut changed = false;
            while i < cur.len() {
                let hex = |b: u8| (b as char).to_digit(16);
                if cur[i] == b'%'
                    && i + 2 < cur.len()
                    && let (Some(h), Some(l)) = (hex(cur[i + 1]), hex(cur[i + 2]))
                {
                    next.push((h * 16 + l) as u8);
                    i += 3;
                    changed = true;
                } else {
                    next.push(cur[i]);
                    i += 1;
                }
            }
            if !changed {
                return round - 1;
            }
            cur = next;
        }
        9
    }
    let mut rng = Rng(99);
    let pieces = [
        "%25", "25", "%", "%41", "41", "%2F", "/", "?", "=", "&", ";", "#", "a", "Z", "9", "-",
        ".", "~", "+",
    ];
    let mut nested = 0;
    for _ in 0..20_000 {
        let len = rng.below(30) as usize;
        let s: String = (0..len)
            .map(|_| pieces[rng.below(pieces.len() as u64) as usize])
            .collect();
        let url = format!("/p/{s}");
        let v = check_url_path(&url);
        let _ = v.explain(&url, true);
        let _ = check_hostname(&s.replace(['/', '?', '%', '&', '=', ';', '#', '+', '~'], "."));
        for sig in &v.signals {
            assert!(sig.start <= sig.end && sig.end <= url.len(), "{url}");
            if let airlock_scan::families::UrlSignalKind::NestedEncoding { .. } = sig.kind {
                let value = &url[sig.start..sig.end];
                assert!(
                    rounds(value) > 3,
                    "{url}: {value} nests {} rounds",
                    rounds(value)
                );
                nested += 1;
            }
        }
    }
    assert!(
        nested > 0,
        "no input nested deep enough: the check above never ran"
    );
}
