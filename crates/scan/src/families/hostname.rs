//! Data encoded in hostnames (family `hostname_exfil`): [`check_hostname`] scores a request's
//! destination or a DNS query name.
//!
//! Only labels an attacker's name server would see carry data: the labels left of the
//! registrable domain (`evil.com`, `evil.co.uk`). Names under infrastructure zones whose
//! labels are the provider's own ids (`*.cloudfront.net`, `*.amazonaws.com`,
//! `*.blob.core.windows.net`, `*.vercel.app`, `*.ngrok-free.app`, …: [`INFRASTRUCTURE_ZONES`])
//! pass whole: a query for a name there reaches the provider, not the sender's accomplice.
//! UUID labels and `xn--` (punycode) labels carry no points. Points per signal:
//!
//! | signal | points |
//! |---|---|
//! | a label that decodes to text: hex (≥ 12 chars), base32 (≥ 16), base64url (≥ 16, mixed case) | 3 |
//! | an upper-case label of base32's alphabet with digits (≥ 16 chars): an encoder's output | 3 |
//! | a random-looking label (letters and digits mixed, entropy high for its length) of ≥ 32 chars | 3 |
//! | … of 20–31 chars, or a hex label of a digest's length (32/40/64) | 2 |
//! | … of 12–19 chars | 1 |
//! | ≥ 4 consecutive labels of one length ≥ 6 (data cut into equal chunks) | 3 |
//! | ≥ 3 data-like labels (≥ 8 chars, letters and digits mixed) | 2 |
//! | ≥ 6 labels before the registrable domain (≥ 8: 2 points) | 1 |
//! | a name of ≥ 180 bytes (≥ 230: 2 points; the limit is 253) | 1 |
//!
//! A name with [`HOST_THRESHOLD`] points or more is flagged; [`HostVerdict::explain`] says
//! why in one line.

use super::encoded::{base32_decode, base64_decode, entropy, hex_decode, is_text, is_uuid};

/// Points from which a hostname is flagged.
pub const HOST_THRESHOLD: u32 = 3;

/// Zones whose labels are provider-assigned ids (suffixes, matched on a label boundary).
pub const INFRASTRUCTURE_ZONES: &[&str] = &[
    // AWS (CloudFront, S3, API Gateway, ELB, ECR, Lambda URLs, VPC endpoints, …)
    "cloudfront.net",
    "amazonaws.com",
    "amazonaws.com.cn",
    "on.aws",
    "awsglobalaccelerator.com",
    "elasticbeanstalk.com",
    "awsapprunner.com",
    // Azure
    "core.windows.net",
    "azurefd.net",
    "azureedge.net",
    "azurewebsites.net",
    "azurecr.io",
    "azure-api.net",
    "cloudapp.net",
    "cloudapp.azure.com",
    "azurestaticapps.net",
    "trafficmanager.net",
    // Google
    "googleusercontent.com",
    "googleapis.com",
    "googlevideo.com",
    "gstatic.com",
    "gvt1.com",
    "1e100.net",
    "appspot.com",
    "run.app",
    "cloudfunctions.net",
    "web.app",
    "firebaseapp.com",
    "firebaseio.com",
    "pkg.dev",
    "gcr.io",
    // GitHub, GitLab
    "githubusercontent.com",
    "github.io",
    "githubassets.com",
    "ghcr.io",
    "gitlab.io",
    // Hosting, tunnels, edge platforms
    "vercel.app",
    "vercel-dns.com",
    "now.sh",
    "netlify.app",
    "ngrok-free.app",
    "ngrok-free.dev",
    "ngrok.app",
    "ngrok.io",
    "ngrok.dev",
    "trycloudflare.com",
    "cfargotunnel.com",
    "workers.dev",
    "pages.dev",
    "r2.dev",
    "r2.cloudflarestorage.com",
    "herokuapp.com",
    "herokudns.com",
    "onrender.com",
    "fly.dev",
    "railway.app",
    "supabase.co",
    "supabase.in",
    "deno.dev",
    "modal.run",
    "replit.dev",
    "csb.app",
    "webcontainer.io",
    // CDNs
    "fastly.net",
    "fastlylb.net",
    "akamaiedge.net",
    "akamai.net",
    "akamaized.net",
    "akamaihd.net",
    "edgekey.net",
    "edgesuite.net",
    "b-cdn.net",
    "cdn77.org",
    // Container registries
    "docker.io",
    "quay.io",
];

/// Second-level labels under which a country TLD sells names (`evil.co.uk`).
const SECOND_LEVELS: &[&str] = &[
    "co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go", "mil", "gob", "nic", "ltd",
    "plc", "sch", "gen", "biz", "info",
];

/// What a signal saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSignalKind {
    /// The label decodes (`encoding`: "hex", "base32", "base64url") to printable text.
    EncodedText { encoding: &'static str },
    /// A random-looking label of `len` characters (letters and digits mixed).
    RandomLabel { len: usize },
    /// A hex label of a digest's length.
    DigestLabel { len: usize },
    /// `labels` consecutive labels of one length.
    EqualChunks { labels: usize, len: usize },
    /// `labels` data-like labels in the name.
    DataChain { labels: usize },
    /// `labels` labels before the registrable domain.
    Deep { labels: usize },
    /// The name is `len` bytes long.
    LongName { len: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSignal {
    pub kind: HostSignalKind,
    /// The byte span in the hostname the signal is about (a label, or the labels it spans).
    pub start: usize,
    pub end: usize,
    pub points: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostVerdict {
    pub score: u32,
    pub flagged: bool,
    /// The infrastructure zone that passed the name.
    pub zone: Option<&'static str>,
    pub signals: Vec<HostSignal>,
}

impl HostVerdict {
    /// One line: the verdict, the score and each signal with the label it is about (labels
    /// are shown in full: the caller masks the line like any record field if needed).
    pub fn explain(&self, host: &str) -> String {
        use std::fmt::Write;
        let mut line = String::new();
        if let Some(zone) = self.zone {
            let _ = write!(line, "pass {host}: infrastructure zone {zone}");
            return line;
        }
        let _ = write!(
            line,
            "{} {host}: {} point{} (flagged at {HOST_THRESHOLD})",
            if self.flagged { "flag" } else { "pass" },
            self.score,
            if self.score == 1 { "" } else { "s" }
        );
        for (i, s) in self.signals.iter().enumerate() {
            let part = host.get(s.start..s.end).unwrap_or("");
            let what = match s.kind {
                HostSignalKind::EncodedText { encoding } => {
                    format!("'{part}' is {encoding} of text")
                }
                HostSignalKind::RandomLabel { len } => format!("'{part}' random label of {len}"),
                HostSignalKind::DigestLabel { len } => {
                    format!("'{part}' hex digest-length label of {len}")
                }
                HostSignalKind::EqualChunks { labels, len } => {
                    format!("{labels} labels of {len} chars '{part}'")
                }
                HostSignalKind::DataChain { labels } => format!("{labels} data-like labels"),
                HostSignalKind::Deep { labels } => format!("{labels} subdomain labels"),
                HostSignalKind::LongName { len } => format!("name of {len} bytes"),
            };
            let _ = write!(
                line,
                "{} {what} +{}",
                if i == 0 { ":" } else { ";" },
                s.points
            );
        }
        line
    }
}

fn ends_with_label(host: &str, zone: &str) -> bool {
    let (h, z) = (host.as_bytes(), zone.as_bytes());
    h.len() >= z.len()
        && h[h.len() - z.len()..].eq_ignore_ascii_case(z)
        && (h.len() == z.len() || h[h.len() - z.len() - 1] == b'.')
}

/// Whether `label` is hex or base36-like with letters and digits mixed and an entropy that
/// random data of its length has; `min_len` after removing hyphens.
fn random_looking(label: &[u8], min_len: usize) -> bool {
    let mut buf = [0u8; 63];
    let mut n = 0;
    for &b in label {
        if b != b'-' {
            buf[n] = b.to_ascii_lowercase();
            n += 1;
        }
    }
    let s = &buf[..n];
    if n < min_len || !s.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let digits = s.iter().filter(|b| b.is_ascii_digit()).count();
    let letters = n - digits;
    // Base32 has only six digits in 32 characters: a long label of it has a single digit
    // one time in fifty. Words have a vowel in every two or three letters, encoded bytes
    // one in five (`kubernetes-dashboard-production2` is words).
    let vowels = s.iter().filter(|b| b"aeiou".contains(b)).count();
    let one_digit_data = digits == 1 && n >= 24 && vowels * 4 <= letters;
    if (digits < 2 && !one_digit_data) || letters < 2 {
        return false;
    }
    // Random text of n characters over a big enough alphabet reaches about log2(n) bits per
    // character; hyphenated words and `ip-10-0-0-1` stay well below.
    let floor = match n {
        0..=11 => 2.9,
        12..=15 => 3.1,
        16..=23 => 3.4,
        _ => 3.7,
    };
    entropy(s) >= floor
}

/// The text signal of a label, if it decodes to text.
fn encoded_text(label: &[u8]) -> Option<&'static str> {
    if label.len() >= 12
        && label.iter().all(u8::is_ascii_hexdigit)
        && hex_decode(label).is_some_and(|d| is_text(&d))
    {
        return Some("hex");
    }
    if label.len() >= 16 {
        let b32 = label
            .iter()
            .all(|&b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b));
        let has_digit = label.iter().any(u8::is_ascii_digit);
        if b32 && has_digit && base32_decode(label).is_some_and(|d| is_text(&d)) {
            return Some("base32");
        }
        let upper = label.iter().any(u8::is_ascii_uppercase);
        let lower = label.iter().any(u8::is_ascii_lowercase);
        // Resolvers and clients write names in lower case; RFC 4648 base32 encoders write
        // upper case. A long upper-case label of base32's alphabet, digits included, is an
        // encoder's output whatever it decodes to (a key's bytes are not text).
        if b32 && has_digit && upper && !lower {
            return Some("base32");
        }
        if upper && lower && base64_decode(label).is_some_and(|d| d.len() >= 12 && is_text(&d)) {
            return Some("base64url");
        }
    }
    None
}

fn is_ip(host: &str) -> bool {
    host.contains(':') || host.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Scores `host` (a hostname as sent, without port; a trailing dot is allowed). Case is
/// kept: base64url labels are only recognised as sent, so pass the name before lower-casing.
pub fn check_hostname(host: &str) -> HostVerdict {
    let host = host.strip_suffix('.').unwrap_or(host);
    let mut v = HostVerdict::default();
    if host.is_empty() || is_ip(host) || host.starts_with('[') {
        return v;
    }
    if let Some(zone) = INFRASTRUCTURE_ZONES
        .iter()
        .find(|z| ends_with_label(host, z))
    {
        v.zone = Some(zone);
        return v;
    }
    // Label spans.
    let mut labels: Vec<(usize, usize)> = Vec::with_capacity(8);
    let mut s = 0;
    for (i, b) in host.bytes().enumerate() {
        if b == b'.' {
            labels.push((s, i));
            s = i + 1;
        }
    }
    labels.push((s, host.len()));
    let k = labels.len();
    if k < 3 {
        return v;
    }
    let second = &host[labels[k - 2].0..labels[k - 2].1];
    let tld_len = labels[k - 1].1 - labels[k - 1].0;
    let registrable =
        if tld_len == 2 && SECOND_LEVELS.iter().any(|l| second.eq_ignore_ascii_case(l)) {
            3
        } else {
            2
        };
    if k <= registrable {
        return v;
    }
    let subs = &labels[..k - registrable];
    let bytes = host.as_bytes();
    let mut data_like = 0;
    for &(a, b) in subs {
        let label = &bytes[a..b];
        if label.len() >= 4 && label[..4].eq_ignore_ascii_case(b"xn--") || is_uuid(label) {
            continue;
        }
        if random_looking(label, 8) || label.len() >= 8 && encoded_text(label).is_some() {
            data_like += 1;
        }
        if let Some(encoding) = encoded_text(label) {
            v.signals.push(HostSignal {
                kind: HostSignalKind::EncodedText { encoding },
                start: a,
                end: b,
                points: 3,
            });
            continue;
        }
        let len = label.len();
        if matches!(len, 32 | 40 | 64) && label.iter().all(u8::is_ascii_hexdigit) {
            v.signals.push(HostSignal {
                kind: HostSignalKind::DigestLabel { len },
                start: a,
                end: b,
                points: 2,
            });
            continue;
        }
        if random_looking(label, 12) {
            let points = match len {
                32.. => 3,
                20..=31 => 2,
                _ => 1,
            };
            v.signals.push(HostSignal {
                kind: HostSignalKind::RandomLabel { len },
                start: a,
                end: b,
                points,
            });
        }
    }
    // Equal chunks.
    let mut i = 0;
    while i < subs.len() {
        let len = subs[i].1 - subs[i].0;
        let mut j = i + 1;
        while j < subs.len() && subs[j].1 - subs[j].0 == len {
            j += 1;
        }
        if len >= 6 && j - i >= 4 {
            v.signals.push(HostSignal {
                kind: HostSignalKind::EqualChunks { labels: j - i, len },
                start: subs[i].0,
                end: subs[j - 1].1,
                points: 3,
            });
        }
        i = j;
    }
    if data_like >= 3 {
        v.signals.push(HostSignal {
            kind: HostSignalKind::DataChain { labels: data_like },
            start: subs[0].0,
            end: subs[subs.len() - 1].1,
            points: 2,
        });
    }
    if subs.len() >= 6 {
        v.signals.push(HostSignal {
            kind: HostSignalKind::Deep { labels: subs.len() },
            start: subs[0].0,
            end: subs[subs.len() - 1].1,
            points: if subs.len() >= 8 { 2 } else { 1 },
        });
    }
    if host.len() >= 180 {
        v.signals.push(HostSignal {
            kind: HostSignalKind::LongName { len: host.len() },
            start: 0,
            end: host.len(),
            points: if host.len() >= 230 { 2 } else { 1 },
        });
    }
    v.score = v.signals.iter().map(|s| s.points).sum();
    v.flagged = v.score >= HOST_THRESHOLD;
    v
}
