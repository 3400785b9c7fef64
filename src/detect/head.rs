//! Heads: the URL and headers of a request, the headers of a response. A request's head is
//! scanned whole before anything is sent; a response's secrets are replaced in place when
//! the action is redact.

use std::ops::Range;

use airlock_scan::Finding;
use airlock_scan::families::{FamilyScanner, check_hostname, check_url_path};
use airlock_scan::url;
use http::{HeaderMap, HeaderValue};

use super::{Detection, Detector, Direction, Issuance, Location, masked, token_endpoint};
use crate::config::DetectAction;

/// What the scan of a request's URL and headers found.
#[derive(Debug, Default)]
pub struct RequestHead {
    pub detections: Vec<Detection>,
    /// The path and query with every secret masked, when one was found there (the record
    /// must not carry it either).
    pub masked_url: Option<String>,
    /// The hostname with every secret masked, when one was found in it (a credential or a
    /// card number as a DNS label).
    pub masked_host: Option<String>,
    /// Headers holding a credential that does not belong there: masked wherever the
    /// exchange's headers are written.
    pub flagged_headers: Vec<String>,
    /// Credentials presented to their own issuer (rule id, header): normal use, noted in
    /// the flow record, never a threat.
    pub presented: Vec<(String, String)>,
}

/// At most this much decoded text is made of one URL to scan (a URL is at most the head's
/// size, `limits.header_bytes`; decoding it three times over stays bounded by this).
const URL_VIEW_BYTES: usize = 256 * 1024;

/// The credentials in `text`, and what the text families find there.
fn find(detector: &Detector, families: Option<&FamilyScanner>, text: &[u8]) -> Vec<Finding> {
    let mut found = detector.find_secrets(text);
    if let Some(families) = families {
        let mut more = Vec::new();
        families.scan(text, &mut more);
        found.extend(
            more.iter()
                .filter_map(|f| detector.family_finding(f.rule, f.start, f.end)),
        );
    }
    found
}

/// Scans the URL (raw and percent-decoded) and the headers of a request to `host`, and
/// the hostname itself (`host_as_sent`, its letters' case kept: base64 data is told by it).
pub fn scan_request(
    detector: &Detector,
    host: &str,
    host_as_sent: &str,
    path_and_query: &str,
    headers: &HeaderMap,
) -> RequestHead {
    let mut head = RequestHead::default();
    let families = detector.text_families(false);
    let mut url_found = scan_places(detector, host_as_sent, path_and_query, &mut head);
    // A credential carried as a hostname label (`ghp_….attacker.example`): as a DNS query it
    // leaves even when the request itself is refused.
    let host_found = find(detector, families.as_ref(), host_as_sent.as_bytes());
    if !host_found.is_empty() {
        let mut spans = Vec::new();
        for f in &host_found {
            head.detections.push(Detection::of(
                detector,
                host_as_sent.as_bytes(),
                f,
                &host_found,
                Direction::Outbound,
                Location::Host,
            ));
            let secret = &host_as_sent.as_bytes()[f.start..f.end];
            spans.push((f.start..f.end, masked(detector.rule(f.rule), secret)));
        }
        head.masked_host = Some(mask_spans(host_as_sent, spans).to_ascii_lowercase());
    }
    // The URL as sent, percent-decoded layer by layer, and each segment and query value
    // decoded on its own (percent, base64, hex): a key in `?d=<base64 of it>` is found.
    let views = url::views(path_and_query.as_bytes(), URL_VIEW_BYTES);
    let mut found = url::scan(&detector.secrets, &views);
    if let Some(families) = &families {
        for (index, view) in views.iter().enumerate() {
            let mut more = Vec::new();
            families.scan(&view.text, &mut more);
            for f in more {
                let Some(finding) = detector.family_finding(f.rule, f.start, f.end) else {
                    continue;
                };
                if found.iter().any(|u| u.finding.rule == finding.rule) {
                    continue;
                }
                found.push(url::UrlFinding {
                    view: index,
                    finding,
                    source: view.source_of(f.start, f.end),
                });
            }
        }
    }
    for f in &found {
        let view = &views[f.view];
        let neighbours: Vec<Finding> = found
            .iter()
            .filter(|o| o.view == f.view)
            .map(|o| o.finding)
            .collect();
        head.detections.push(Detection::of(
            detector,
            &view.text,
            &f.finding,
            &neighbours,
            Direction::Outbound,
            Location::Url,
        ));
    }
    url_found.extend(found.iter().map(|f| {
        let view = &views[f.view];
        let secret = &view.text[f.finding.start..f.finding.end];
        (
            f.source.clone(),
            masked(detector.rule(f.finding.rule), secret),
        )
    }));
    if !url_found.is_empty() {
        head.masked_url = Some(mask_spans(path_and_query, url_found));
    }
    for (name, value) in headers {
        let name = name.as_str();
        let login = token_endpoint(host, path_and_query) && name == "authorization";
        let mut found = find(detector, families.as_ref(), value.as_bytes());
        if found.is_empty()
            && let Some(rule) = detector.place_rule("named_credential_header")
            && named_credential(name, value.as_bytes(), host)
        {
            found.push(place_finding(rule, 0, value.len()));
        }
        for f in &found {
            if detector.presented_to_issuer(f.rule, name, host)
                || (login && detector.login_credential(f.rule))
            {
                let presented = (detector.rule(f.rule).id.clone(), name.to_string());
                if !head.presented.contains(&presented) {
                    head.presented.push(presented);
                }
                continue;
            }
            if !head.flagged_headers.iter().any(|h| h == name) {
                head.flagged_headers.push(name.to_string());
            }
            head.detections.push(Detection::of(
                detector,
                value.as_bytes(),
                f,
                &found,
                Direction::Outbound,
                Location::Header(name.to_string()),
            ));
        }
    }
    head
}

/// The places data can be smuggled in besides the content: the hostname's labels
/// (`hostname_exfil`) and the URL's path segments and query values (`url_entropy`).
fn scan_places(
    detector: &Detector,
    host: &str,
    path_and_query: &str,
    head: &mut RequestHead,
) -> Vec<(Range<usize>, String)> {
    let mut masks = Vec::new();
    if let Some(rule) = detector.place_rule("hostname_exfil") {
        let verdict = check_hostname(host);
        if verdict.flagged {
            let start = verdict.signals.iter().map(|s| s.start).min().unwrap_or(0);
            let end = verdict
                .signals
                .iter()
                .map(|s| s.end)
                .max()
                .unwrap_or(host.len());
            let finding = place_finding(rule, start, end);
            head.detections.push(Detection::of(
                detector,
                host.as_bytes(),
                &finding,
                &[finding],
                Direction::Outbound,
                Location::Host,
            ));
        }
    }
    if let Some(rule) = detector.place_rule("url_entropy") {
        let verdict = check_url_path(path_and_query);
        let found: Vec<Finding> = verdict
            .signals
            .iter()
            .map(|s| place_finding(rule, s.start, s.end))
            .collect();
        for f in &found {
            masks.push((f.start..f.end, "[REDACTED]".to_string()));
            head.detections.push(Detection::of(
                detector,
                path_and_query.as_bytes(),
                f,
                &found,
                Direction::Outbound,
                Location::Url,
            ));
        }
    }
    masks
}

/// `text` with each span replaced (overlapping ones once, by the first to start).
fn mask_spans(text: &str, mut spans: Vec<(Range<usize>, String)>) -> String {
    spans.sort_by_key(|(r, _)| (r.start, std::cmp::Reverse(r.end)));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    for (range, replacement) in spans {
        if range.end <= pos || range.start > bytes.len() {
            continue;
        }
        let start = range.start.max(pos);
        out.extend_from_slice(&bytes[pos..start]);
        if start == range.start {
            out.extend_from_slice(replacement.as_bytes());
        }
        pos = range.end.min(bytes.len());
    }
    out.extend_from_slice(&bytes[pos.min(bytes.len())..]);
    String::from_utf8_lossy(&out).into_owned()
}

/// Vendors and stores a header name can name; a header naming one sent to another host's
/// API carries that vendor's credential to a third party.
const NAMED: &[&str] = &[
    "aws",
    "amazon",
    "azure",
    "gcp",
    "google",
    "heroku",
    "twilio",
    "github",
    "gitlab",
    "slack",
    "stripe",
    "openai",
    "anthropic",
    "sendgrid",
    "mailgun",
    "datadog",
    "sentry",
    "vercel",
    "netlify",
    "cloudflare",
    "digitalocean",
    "supabase",
    "firebase",
    "npm",
    "docker",
    "database",
    "db",
    "postgres",
    "mysql",
    "mongo",
    "redis",
    "rabbitmq",
    "amqp",
];
/// What makes a header name a credential's: `…-Token`, `…-Secret-…`, `…-Password`, `…-Key`,
/// `…-Url` of a store.
const CREDENTIAL_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "key",
    "credential",
    "credentials",
    "dsn",
    "url",
    "connection",
    "pat",
];
/// Header names that carry a per-request value, not a standing credential.
const NOT_CREDENTIALS: &[&str] = &[
    "csrf",
    "xsrf",
    "sec",
    "websocket",
    "idempotency",
    "request",
    "trace",
    "nonce",
    "cache",
    "content",
    "checksum",
    "sha256",
    "signature",
    "date",
    "algorithm",
];

/// A request header whose name says which credential it carries, with a value that looks
/// like one, to a host the name does not point to (an `X-Twilio-Auth-Token` to a paste site).
fn named_credential(name: &str, value: &[u8], host: &str) -> bool {
    let words: Vec<&str> = name.split(['-', '_']).filter(|w| !w.is_empty()).collect();
    if words.iter().any(|w| NOT_CREDENTIALS.contains(w))
        || !words.iter().any(|w| CREDENTIAL_WORDS.contains(w))
    {
        return false;
    }
    let vendor = words.iter().find(|w| NAMED.contains(w));
    let explicit = words.iter().any(|w| {
        matches!(
            *w,
            "secret" | "password" | "passwd" | "credential" | "credentials"
        )
    });
    match vendor {
        // To the vendor's own hosts it is the header's normal use.
        Some(v) if host.split('.').any(|label| label.contains(v)) => return false,
        Some(_) => {}
        None if !explicit => return false,
        None => {}
    }
    looks_like_credential(value)
}

/// A value with the length and variety of a credential, not a placeholder or a word.
fn looks_like_credential(value: &[u8]) -> bool {
    let v = value.trim_ascii();
    if v.len() < 16 || v.len() > 4096 {
        return false;
    }
    if v.contains(&b'{')
        || v.contains(&b'<')
        || v.windows(4).any(|w| w.eq_ignore_ascii_case(b"xxxx"))
    {
        return false;
    }
    // A connection string with a password in it.
    if let Some(at) = v.iter().position(|&b| b == b'@')
        && v.windows(3).any(|w| w == b"://")
        && v[..at].iter().filter(|&&b| b == b':').count() >= 2
    {
        return true;
    }
    let distinct = {
        let mut seen = [false; 256];
        v.iter()
            .filter(|&&b| !std::mem::replace(&mut seen[b as usize], true))
            .count()
    };
    distinct >= 10 && airlock_scan::verify::shannon_entropy(v) >= 3.0
}

fn place_finding(rule: usize, start: usize, end: usize) -> Finding {
    Finding {
        rule,
        start,
        end,
        match_start: start,
        match_end: end,
    }
}

/// Scans the headers of an answer described by `issuance`; secrets are replaced in place
/// when the action is redact.
pub fn scan_response(
    detector: &Detector,
    headers: &mut HeaderMap,
    issuance: &Issuance,
) -> Vec<Detection> {
    let mut detections = Vec::new();
    for (name, value) in headers.iter_mut() {
        let found = detector.find_secrets(value.as_bytes());
        if found.is_empty() {
            continue;
        }
        let mut redacted = Vec::with_capacity(value.len());
        let mut pos = 0;
        for f in &found {
            let mut d = Detection::of(
                detector,
                value.as_bytes(),
                f,
                &found,
                Direction::Inbound,
                Location::Header(name.as_str().to_string()),
            );
            d.action = detector.inbound_action(f.rule, issuance);
            let action = d.action;
            detections.push(d);
            if action == DetectAction::Redact && f.start >= pos {
                redacted.extend_from_slice(&value.as_bytes()[pos..f.start]);
                redacted.extend_from_slice(
                    format!("[REDACTED:{}]", detector.rule(f.rule).id).as_bytes(),
                );
                pos = f.end;
            }
        }
        if pos > 0 {
            redacted.extend_from_slice(&value.as_bytes()[pos..]);
            if let Ok(v) = HeaderValue::from_bytes(&redacted) {
                *value = v;
            }
        }
    }
    detections
}

#[cfg(test)]
mod tests {
    use super::named_credential;

    const HEX32: &[u8] = b"9f8e7d6c5b4a39281706f5e4d3c2b1a0";

    #[test]
    fn a_header_named_for_a_credential_is_one_on_its_way_to_a_third_party() {
        let uuid = b"2f6b1c9e-8d4a-4b7e-9c3f-5a1d7e0b6c42";
        for (name, value) in [
            ("x-twilio-auth-token", HEX32),
            (
                "x-aws-secret-access-key",
                b"wJ9r/Kd0Xw4pLm2Rv5sEa7bNc1Fg3HjzDhMUNq8T".as_slice(),
            ),
            ("x-heroku-api-key", uuid.as_slice()),
            (
                "x-database-url",
                b"postgres://app:s3cr3t-pass@db.internal:5432/prod".as_slice(),
            ),
            ("x-client-secret", HEX32),
        ] {
            assert!(named_credential(name, value, "paste.example.com"), "{name}");
        }
    }

    #[test]
    fn ordinary_headers_and_the_vendors_own_hosts_pass() {
        assert!(!named_credential(
            "x-twilio-auth-token",
            HEX32,
            "api.twilio.com"
        ));
        for name in [
            "x-api-key",
            "sec-websocket-key",
            "x-csrf-token",
            "x-amz-security-token",
            "x-request-id",
        ] {
            assert!(
                !named_credential(name, HEX32, "paste.example.com"),
                "{name}"
            );
        }
        for value in [
            b"${TWILIO_TOKEN}".as_slice(),
            b"<your token here>",
            b"short",
            b"aaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(!named_credential(
                "x-twilio-auth-token",
                value,
                "paste.example.com"
            ));
        }
    }
}
