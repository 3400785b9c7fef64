//! Scanner throughput with the whole built-in catalogue on one core, in MB/s, over
//! generated realistic bodies. Run by `bench/scan` (release build); not a timed test.
//!
//! Corpora (deterministic, ~8 MB each):
//! - chat: JSON chat requests (prose and code with \n escapes), no candidates;
//! - code: source code, no candidates;
//! - minjs: minified JavaScript, no candidates;
//! - dense: near-misses everywhere (keyword prefixes with wrong tails, placeholders, hashes,
//!   UUIDs, public keys, random base64 blobs, JSON escapes) — the matcher's worst case.

use std::sync::Arc;
use std::time::Instant;

use airlock_scan::body::BodyScanner;
use airlock_scan::families::{Family, FamilyScanner, FamilySet, FamilyStream};
use airlock_scan::{Catalogue, Engine, RuleKind};

const SECRETS: &str = include_str!("../../../rules/secrets.yaml");
const INJECTIONS: &str = include_str!("../../../rules/injections.yaml");
const TARGET: usize = 8 << 20;
const CHUNK: usize = 64 * 1024;
/// The text families a request body goes through with the default settings.
fn default_families() -> FamilySet {
    match std::env::var("SCAN_FAMILIES").as_deref() {
        Ok("financial") => FamilySet::of(&[Family::Financial]),
        Ok("crypto") => FamilySet::of(&[Family::CryptoKeys]),
        _ => FamilySet::of(&[Family::Financial, Family::CryptoKeys]),
    }
}

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
    fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| A[(self.next() % 62) as usize] as char)
            .collect()
    }
    fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| b"0123456789abcdef"[(self.next() % 16) as usize] as char)
            .collect()
    }
    fn b64(&mut self, n: usize) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        (0..n)
            .map(|_| A[(self.next() % 64) as usize] as char)
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
            out.push_str(if m % 2 == 0 {
                "{\"role\":\"user\",\"content\":\""
            } else {
                "{\"role\":\"assistant\",\"content\":\""
            });
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

fn dense(rng: &mut Rng) -> String {
    let mut out = String::with_capacity(TARGET + 4096);
    while out.len() < TARGET {
        let item = match rng.next() % 16 {
            0 => format!("ghp_{} ", rng.alnum(10)),
            1 => "sk-ant-api03-xxxxxxxxxxxxxxxxxxxxxxxx ".to_string(),
            2 => "password = \"changeme\"\n".to_string(),
            3 => format!("AKIA{} ", rng.alnum(8).to_lowercase()),
            4 => format!("{} ", rng.hex(40)),
            5 => format!(
                "{}-{}-{}-{}-{} ",
                rng.hex(8),
                rng.hex(4),
                rng.hex(4),
                rng.hex(4),
                rng.hex(12)
            ),
            // A digest under a name that is not a secret's (hex under `token` is one).
            6 => format!("\"checksum_token_sha\":\"{}\",", rng.hex(64)),
            7 => format!(
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA{} user@host\n",
                rng.b64(43)
            ),
            8 => format!("\"blob\":\"{}\",", rng.b64(96)),
            9 => "api_key: YOUR_API_KEY\\n".to_string(),
            10 => format!("eyJhbGciOi{} ", rng.alnum(6)),
            11 => "-----BEGIN PUBLIC KEY-----\\nMIIBIjANBgkq\\n-----END PUBLIC KEY-----\\n"
                .to_string(),
            12 => format!("https://example.com/path?x={}&secret=&y=1 ", rng.alnum(12)),
            13 => "curl -sSL https://example.com/file.tar.gz -o file.tar.gz\n".to_string(),
            14 => "sk-proj-... token secret key auth bearer ".to_string(),
            _ => format!("{} ", rng.pick(WORDS)),
        };
        out.push_str(&item);
    }
    out
}

/// Random bytes (a download, an image): nothing to find, nothing text-like.
fn binary(rng: &mut Rng) -> String {
    // Carried in a String for uniformity; the scanners see the bytes.
    let bytes: Vec<u8> = (0..TARGET).map(|_| (rng.next() >> 24) as u8).collect();
    unsafe { String::from_utf8_unchecked(bytes) }
}

/// Wall time, or with `SCAN_CPU_TIME=1` the time this thread ran on a CPU (from
/// `/proc/thread-self/schedstat`): on a machine shared with other work, the time the scan
/// waited for a CPU is left out, so two builds compare fairly even when the load changes.
/// The kernel counts it in ticks of a few ms: use `SCAN_REPEAT=10` or more.
enum Clock {
    Wall(Instant),
    Cpu(u64),
}

fn cpu_time() -> bool {
    std::env::var("SCAN_CPU_TIME").as_deref() == Ok("1")
}

impl Clock {
    fn cpu_ns() -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    fn start() -> Clock {
        if cpu_time() {
            Clock::Cpu(Clock::cpu_ns().expect("/proc/thread-self/schedstat"))
        } else {
            Clock::Wall(Instant::now())
        }
    }

    fn seconds(&self) -> f64 {
        match self {
            Clock::Wall(t) => t.elapsed().as_secs_f64(),
            Clock::Cpu(ns) => (Clock::cpu_ns().unwrap_or(*ns) - ns) as f64 / 1e9,
        }
    }
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let before = rss_mb();
    let catalogue = Arc::new(Catalogue::from_yaml(SECRETS, INJECTIONS).expect("catalogue"));
    eprintln!("RSS: {:.1} MB after compiling the catalogue", rss_mb());
    let secrets = Arc::new(Engine::new(catalogue.clone(), |r| {
        r.kind == RuleKind::Secret
    }));
    let inj = Arc::new(Engine::new(catalogue.clone(), |r| {
        r.kind == RuleKind::Injection && !r.raw
    }));
    let inj_raw = Arc::new(Engine::new(catalogue.clone(), |r| {
        r.kind == RuleKind::Injection && r.raw
    }));
    // As the proxy does at start-up: the keyword walk responses share between the two.
    secrets.pair_with(&inj);
    eprintln!(
        "RSS: {before:.1} MB before, {:.1} MB with the catalogue and engines built",
        rss_mb()
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let corpora = [
        ("chat (JSON, no candidates)", chat(&mut rng)),
        ("code (no candidates)", code(&mut rng)),
        ("minified JS (no candidates)", minjs(&mut rng)),
        ("dense near-misses", dense(&mut rng)),
        ("random binary", binary(&mut rng)),
    ];
    if std::env::args().any(|a| a == "--memory") {
        let mut sizes: Vec<(f64, String)> = Vec::new();
        for r in &catalogue.rules {
            let before = rss_mb();
            let re = regex::bytes::RegexBuilder::new(&format!(
                "(?-u){}",
                r.regex.as_str().trim_start_matches("(?-u)")
            ))
            .size_limit(4 << 20)
            .build()
            .unwrap();
            let _ = re.find(b"warm up the caches ghp_ sk-ant- password=1 https://a:b@c");
            sizes.push((rss_mb() - before, r.id.clone()));
            std::mem::forget(re);
        }
        sizes.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (mb, id) in sizes.iter().take(15) {
            println!("{mb:6.2} MB  {id}");
        }
        return;
    }
    if std::env::args().any(|a| a == "--components") {
        components(&secrets, &inj, &corpora);
        return;
    }
    if std::env::args().any(|a| a == "--findings") {
        findings(&catalogue, &secrets, &inj, &inj_raw, &corpora);
        return;
    }
    if std::env::args().any(|a| a == "--per-rule") {
        per_rule(&catalogue, &corpora);
        return;
    }
    println!(
        "catalogue: {} rules ({} secret, {} injection); chunk {} KiB; one core",
        catalogue.rules.len(),
        catalogue
            .rules
            .iter()
            .filter(|r| r.kind == RuleKind::Secret)
            .count(),
        catalogue
            .rules
            .iter()
            .filter(|r| r.kind == RuleKind::Injection)
            .count(),
        CHUNK / 1024
    );
    println!("| corpus | MB | request scan MB/s | response scan MB/s | findings |");
    println!("|---|---|---|---|---|");
    // SCAN_ONLY=chat (a corpus name prefix) to profile one corpus.
    let only = std::env::var("SCAN_ONLY").unwrap_or_default();
    // SCAN_DIRECTION=request|response to time one direction; SCAN_REPEAT=N scans N times
    // (best kept), for a profiler to see the scan rather than the set-up.
    let direction = std::env::var("SCAN_DIRECTION").unwrap_or_default();
    let repeat: usize = std::env::var("SCAN_REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for (name, text) in corpora.iter().filter(|(n, _)| n.starts_with(only.as_str())) {
        let bytes = text.as_bytes();
        let mb = bytes.len() as f64 / 1e6;
        let mut results = Vec::new();
        let mut findings = 0;
        for inbound in [false, true] {
            let mut best = f64::MAX;
            let mut total = 0.0;
            let skip = (direction == "request" && inbound) || (direction == "response" && !inbound);
            for _ in 0..if skip { 0 } else { repeat } {
                let mut s = BodyScanner::new(
                    secrets.clone(),
                    inbound.then(|| (inj.clone(), inj_raw.clone())),
                    None,
                    u64::MAX,
                    // Requests are scanned to block (one view); responses to redact.
                    inbound,
                );
                // Requests also go through the text families on by default (financial,
                // crypto_keys), as the proxy runs them.
                let mut families =
                    (!inbound).then(|| FamilyStream::new(FamilyScanner::new(default_families())));
                let mut family_out = Vec::new();
                let mut n = 0usize;
                let t = Clock::start();
                let chunks: Vec<&[u8]> = bytes.chunks(CHUNK).collect();
                for (i, c) in chunks.iter().enumerate() {
                    let last = i + 1 == chunks.len();
                    s.feed(c, last, &mut |_| n += 1);
                    if let Some(f) = &mut families {
                        if last {
                            f.feed_last(c, &mut family_out);
                        } else {
                            f.feed(c, &mut family_out);
                        }
                    }
                }
                n += family_out.len();
                let took = t.seconds();
                best = best.min(took);
                total += took;
                findings = n;
            }
            // CPU time is counted in ticks of a few ms: its mean over the repeats, not the
            // best of them.
            results.push(if cpu_time() {
                mb * repeat as f64 / total
            } else {
                mb / best
            });
        }
        println!(
            "| {name} | {mb:.1} | {:.0} | {:.0} | {findings} |",
            results[0], results[1]
        );
    }
}

/// The ten costliest rules on each corpus (each rule alone, over its first 2 MB), for
/// whoever tunes the catalogue.
fn per_rule(catalogue: &Arc<Catalogue>, corpora: &[(&str, String)]) {
    for (name, text) in corpora {
        let sample = &text.as_bytes()[..text.len().min(2 << 20)];
        let mut costs: Vec<(f64, &str, usize)> = catalogue
            .rules
            .iter()
            .map(|rule| {
                let engine = Engine::new(catalogue.clone(), |r| std::ptr::eq(r, rule));
                let mut out = Vec::new();
                let t = Instant::now();
                for chunk in sample.chunks(CHUNK) {
                    engine.scan(chunk, &mut out);
                }
                (
                    t.elapsed().as_secs_f64() * 1000.0,
                    rule.id.as_str(),
                    out.len(),
                )
            })
            .collect();
        costs.sort_by(|a, b| b.0.total_cmp(&a.0));
        println!("{name}: ms per 2 MB (findings)");
        for (ms, id, n) in costs.iter().take(10) {
            println!("  {ms:9.2}  {id} ({n})");
        }
    }
}

/// MB/s of each stage alone on each corpus: where the time goes.
fn components(secrets: &Arc<Engine>, inj: &Arc<Engine>, corpora: &[(&str, String)]) {
    use airlock_scan::decode::{BlobDecoder, JsonUnescaper};
    use airlock_scan::normalize::normalize_for_injection;
    let time = |f: &mut dyn FnMut()| {
        let t = Clock::start();
        f();
        t.seconds()
    };
    println!(
        "| corpus | secrets engine | json unescape | blob finder | normalise | injection engine | families |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, text) in corpora {
        let b = text.as_bytes();
        let mb = b.len() as f64 / 1e6;
        let mut out = Vec::new();
        let a = time(&mut || {
            for c in b.chunks(CHUNK) {
                secrets.scan(c, &mut out);
            }
        });
        let mut buf = Vec::new();
        let j = time(&mut || {
            let mut d = JsonUnescaper::default();
            for c in b.chunks(CHUNK) {
                buf.clear();
                d.feed(c, &mut buf);
            }
        });
        let bl = time(&mut || {
            let mut d = BlobDecoder::default();
            for c in b.chunks(CHUNK) {
                d.feed(c, false, &mut |_, _| {});
            }
        });
        let n = time(&mut || {
            for c in b.chunks(CHUNK) {
                buf.clear();
                normalize_for_injection(c, &mut buf);
            }
        });
        let mut norm = Vec::new();
        normalize_for_injection(b, &mut norm);
        let ij = time(&mut || {
            for c in norm.chunks(CHUNK) {
                inj.scan(c, &mut out);
            }
        });
        let fam = time(&mut || {
            let mut f = FamilyStream::new(FamilyScanner::new(default_families()));
            let mut found = Vec::new();
            for c in b.chunks(CHUNK) {
                f.feed(c, &mut found);
            }
        });
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
            mb / a,
            mb / j,
            mb / bl,
            mb / n,
            mb / ij,
            mb / fam
        );
    }
}

/// Every finding, one line each (corpus, direction, view, rule, span in the stream or in its
/// window, the secret's bytes), over the corpora, the corpora with every catalogue example
/// sown through them, and each catalogue example alone: the output of two builds is compared
/// to show that a change to the scanner finds exactly what it found before.
fn findings(
    catalogue: &Arc<Catalogue>,
    secrets: &Arc<Engine>,
    inj: &Arc<Engine>,
    inj_raw: &Arc<Engine>,
    corpora: &[(&str, String)],
) {
    let mut examples: Vec<&str> = Vec::new();
    for r in &catalogue.rules {
        examples.extend(r.examples.positive.iter().map(String::as_str));
        examples.extend(r.examples.negative.iter().map(String::as_str));
    }
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, text) in corpora {
        bodies.push((name.to_string(), text.as_bytes().to_vec()));
        // The corpus with an example every ~3 KB, each inserted whole at a line or a space.
        let mut sown = Vec::with_capacity(text.len() * 2);
        for (i, chunk) in text.as_bytes().chunks(3000).enumerate() {
            sown.extend_from_slice(chunk);
            if i % 2 == 0 {
                sown.extend_from_slice(b" ");
            }
            sown.extend_from_slice(examples[i % examples.len()].as_bytes());
            sown.extend_from_slice(if i % 3 == 0 { b"\\n" } else { b" " });
        }
        bodies.push((format!("{name} + examples"), sown));
    }
    for (i, e) in examples.iter().enumerate() {
        bodies.push((format!("example {i}"), e.as_bytes().to_vec()));
    }
    for (name, body) in &bodies {
        for inbound in [false, true] {
            for chunk in [CHUNK, 4093] {
                if chunk != CHUNK && body.len() > 1 << 20 && name.ends_with("candidates)") {
                    continue;
                }
                let mut s = BodyScanner::new(
                    secrets.clone(),
                    inbound.then(|| (inj.clone(), inj_raw.clone())),
                    None,
                    u64::MAX,
                    inbound,
                );
                let pieces: Vec<&[u8]> = body.chunks(chunk).collect();
                for (i, c) in pieces.iter().enumerate() {
                    s.feed(c, i + 1 == pieces.len(), &mut |f| {
                        let secret = &f.window[f.local.start..f.local.end];
                        println!(
                            "{name} | {} | chunk {chunk} | {} | {} | {:?} | {:?} | {}",
                            if inbound { "response" } else { "request" },
                            f.view.name(),
                            catalogue.rules[f.local.rule].id,
                            f.stream
                                .map(|s| (s.start, s.end, s.match_start, s.match_end)),
                            (
                                f.local.start,
                                f.local.end,
                                f.local.match_start,
                                f.local.match_end
                            ),
                            String::from_utf8_lossy(secret).escape_debug()
                        );
                    });
                }
            }
        }
    }
}
