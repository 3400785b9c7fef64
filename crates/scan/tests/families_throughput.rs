//! Throughput of [`FamilyScanner`] (all text families) on one core, in MB/s, over generated
//! corpora: the candidate-free ones of `examples/scan_throughput.rs` (chat JSON, code, minified
//! JS) and candidate-dense ones (digits everywhere, BIP-39 list words everywhere, e-mail-like
//! text). A timing, not a check: ignored by default. Run in release:
//!
//! ```sh
//! cargo test --release -p airlock-scan --test families_throughput -- --ignored --nocapture
//! ```

use std::time::Instant;

use airlock_scan::families::{
    BIP39_ENGLISH, Family, FamilyScanner, FamilySet, FamilyStream, check_hostname, check_url_path,
};

const TARGET: usize = 8 << 20;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| (b'0' + (self.next() % 10) as u8) as char)
            .collect()
    }
    fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| A[(self.next() % 62) as usize] as char)
            .collect()
    }
}

const WORDS: &[&str] = &[
    "the",
    "function",
    "returns",
    "value",
    "when",
    "called",
    "with",
    "list",
    "of",
    "items",
    "please",
    "refactor",
    "this",
    "module",
    "so",
    "that",
    "it",
    "handles",
    "errors",
    "gracefully",
    "add",
    "tests",
    "for",
    "edge",
    "cases",
    "like",
    "empty",
    "input",
    "and",
    "large",
    "files",
    "explain",
    "why",
    "build",
    "fails",
    "on",
    "linux",
    "compiler",
    "says",
    "type",
    "mismatch",
    "struct",
    "field",
    "vector",
    "iterator",
    "closure",
    "borrow",
    "lifetime",
    "async",
    "await",
];

fn chat(rng: &mut Rng) -> String {
    let mut out = String::with_capacity(TARGET + 4096);
    while out.len() < TARGET {
        out.push_str("{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":4096,\"messages\":[");
        for m in 0..6 {
            if m > 0 {
                out.push(',');
            }
            out.push_str("{\"role\":\"user\",\"content\":\"");
            for line in 0..20 {
                for _ in 0..12 {
                    out.push_str(rng.pick(WORDS));
                    out.push(' ');
                }
                if line % 5 == 4 {
                    out.push_str("\\n```rust\\nfn main() {\\n    let v: Vec<u32> = (0..10).collect();\\n    println!(\\\"{:?}\\\", v);\\n}\\n```\\n");
                } else {
                    out.push_str("\\n");
                }
            }
            out.push_str("\"}");
        }
        out.push_str("]}\n");
    }
    out
}

fn code(rng: &mut Rng) -> String {
    let mut out = String::with_capacity(TARGET + 4096);
    while out.len() < TARGET {
        let name = rng.pick(WORDS);
        out.push_str(&format!(
            "pub fn {name}_{n}(items: &[Item], limit: usize) -> Result<Vec<Item>, Error> {{\n    let mut out = Vec::with_capacity(limit);\n    for item in items.iter().filter(|i| i.{w} > {n}) {{\n        if out.len() >= limit {{ break; }}\n        out.push(item.clone()); // {c1} {c2} {c3}\n    }}\n    Ok(out)\n}}\n\n",
            n = rng.next() % 1000,
            w = rng.pick(WORDS),
            c1 = rng.pick(WORDS),
            c2 = rng.pick(WORDS),
            c3 = rng.pick(WORDS),
        ));
    }
    out
}

fn minjs(rng: &mut Rng) -> String {
    let mut out = String::with_capacity(TARGET + 4096);
    while out.len() < TARGET {
        out.push_str(&format!(
            "function {a}({b},{c}){{var {d}={b}.{e}({c});return {d}&&{d}.length>{n}?{d}.slice(0,{n}):{f}({d},\"{g}\")}};",
            a = rng.alnum(2),
            b = rng.alnum(1).to_lowercase(),
            c = rng.alnum(1).to_lowercase(),
            d = rng.alnum(2).to_lowercase(),
            e = rng.pick(WORDS),
            f = rng.alnum(3),
            g = rng.pick(WORDS),
            n = rng.next() % 100,
        ));
    }
    out
}

/// Numbers everywhere: CSV rows of ids, amounts, timestamps, 16-digit near-cards (wrong Luhn or
/// prefix), grouped numbers, phone-like and IBAN-like tokens, versions and dates.
fn digits(rng: &mut Rng) -> String {
    let mut out = String::with_capacity(TARGET + 4096);
    while out.len() < TARGET {
        let item = match rng.next() % 10 {
            0 => format!("{},", rng.digits(16)),
            1 => format!(
                "{} {} {} {}\n",
                rng.digits(4),
                rng.digits(4),
                rng.digits(4),
                rng.digits(4)
            ),
            2 => format!("17{}.{} ", rng.digits(8), rng.digits(3)),
            3 => format!("+{} ", rng.digits(11)),
            4 => format!("DE{}{} ", rng.digits(2), rng.digits(18)),
            5 => format!(
                "v{}.{}.{} ",
                rng.next() % 20,
                rng.next() % 50,
                rng.next() % 200
            ),
            6 => format!(
                "2024-{:02}-{:02} ",
                rng.next() % 12 + 1,
                rng.next() % 28 + 1
            ),
            7 => format!("{}-{}-{} ", rng.digits(3), rng.digits(3), rng.digits(4)),
            8 => format!("\"amount\":{}.{},", rng.digits(5), rng.digits(2)),
            _ => {
                let n = rng.next() as usize % 12 + 1;
                format!("{} ", rng.digits(n))
            }
        };
        out.push_str(&item);
    }
    out
}

/// BIP-39 list words everywhere (sentences of 5–20 list words): the seed detector's worst
/// case (every word looked up, checksums tried).
fn list_words(rng: &mut Rng) -> String {
    let list: Vec<&str> = BIP39_ENGLISH.split_whitespace().collect();
    let mut out = String::with_capacity(TARGET + 4096);
    while out.len() < TARGET {
        let n = 5 + rng.next() % 16;
        for _ in 0..n {
            out.push_str(rng.pick(&list));
            out.push(' ');
        }
        out.push_str("and the ");
    }
    out
}

/// Addresses and at-signs: emails, `@scope/pkg`, `pkg@1.2.3`, `git@host:`.
fn at_signs(rng: &mut Rng) -> String {
    let mut out = String::with_capacity(TARGET + 4096);
    while out.len() < TARGET {
        let item = match rng.next() % 4 {
            0 => format!(
                "{}.{}@{}.com ",
                rng.pick(WORDS),
                rng.pick(WORDS),
                rng.pick(WORDS)
            ),
            1 => format!("@types/{} ", rng.pick(WORDS)),
            2 => format!(
                "{}@{}.{}.{} ",
                rng.pick(WORDS),
                rng.next() % 10,
                rng.next() % 10,
                rng.next() % 10
            ),
            _ => "git@github.com:owner/repo.git ".to_string(),
        };
        out.push_str(&item);
        out.push_str(rng.pick(WORDS));
        out.push(' ');
    }
    out
}

fn mbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

#[test]
#[ignore = "timing: run in release with --ignored --nocapture"]
fn family_scanner_throughput() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let corpora = [
        ("chat (JSON, no candidates)", chat(&mut rng)),
        ("code (no candidates)", code(&mut rng)),
        ("minified JS (no candidates)", minjs(&mut rng)),
        ("digit-dense", digits(&mut rng)),
        ("BIP-39 list words", list_words(&mut rng)),
        ("e-mail dense", at_signs(&mut rng)),
    ];
    let configs = [
        ("all text families", FamilySet::TEXT),
        ("financial", FamilySet::EMPTY.with(Family::Financial)),
        ("crypto_keys", FamilySet::EMPTY.with(Family::CryptoKeys)),
        ("pii", FamilySet::EMPTY.with(Family::Pii)),
    ];
    println!("| corpus | families | MB/s | findings |");
    println!("|---|---|---|---|");
    for (name, text) in &corpora {
        for (cname, set) in configs {
            let scanner = FamilyScanner::new(set);
            let mut best = f64::MAX;
            let mut found = 0;
            for _ in 0..3 {
                let t = Instant::now();
                let mut stream = FamilyStream::new(scanner);
                let mut out = Vec::new();
                for chunk in text.as_bytes().chunks(64 * 1024) {
                    stream.feed(chunk, &mut out);
                }
                stream.finish(&mut out);
                best = best.min(t.elapsed().as_secs_f64());
                found = out.len();
            }
            println!(
                "| {name} | {cname} | {:.0} | {found} |",
                mbps(text.len(), best)
            );
        }
    }
    // The place-based families: per call.
    let hosts = [
        "api.anthropic.com",
        "d1a2b3c4d5e6f7.cloudfront.net",
        "7365637265745f6170695f6b65795f3132333435.exfil.evil.com",
        "a1b2c3d4.e5f6a7b8.c9d0e1f2.a3b4c5d6.exfil.evil.com",
    ];
    let t = Instant::now();
    let mut flagged = 0;
    for _ in 0..100_000 {
        for h in hosts {
            flagged += usize::from(check_hostname(h).flagged);
        }
    }
    println!(
        "check_hostname: {:.2} µs per name ({flagged} flagged)",
        t.elapsed().as_secs_f64() * 1e6 / 400_000.0
    );
    let urls = [
        "/v1/messages",
        "/repos/golang/go/issues?state=open&page=2&per_page=30&sort=updated",
        "/packages/9f/86/d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08/x-1.0-py3-none-any.whl",
        "/sync?data=QUtJQUlPU0ZPRE5ON0VYQU1QTEU=",
    ];
    let t = Instant::now();
    let mut flagged = 0;
    for _ in 0..100_000 {
        for u in urls {
            flagged += usize::from(check_url_path(u).flagged());
        }
    }
    println!(
        "check_url_path: {:.2} µs per URL ({flagged} flagged)",
        t.elapsed().as_secs_f64() * 1e6 / 400_000.0
    );
}
