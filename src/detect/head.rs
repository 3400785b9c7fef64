//! Heads: the URL and headers of a request, the headers of a response. A request's head is
//! scanned whole before anything is sent; a response's secrets are replaced in place when
//! the action is redact.

use airlock_scan::Finding;
use airlock_scan::families::{FamilyScanner, check_hostname, check_url_path};
use http::{HeaderMap, HeaderValue};

use super::{Detection, Detector, Direction, Issuance, Location, mask_found, token_endpoint};
use crate::config::DetectAction;

/// What the scan of a request's URL and headers found.
#[derive(Debug, Default)]
pub struct RequestHead {
    pub detections: Vec<Detection>,
    /// The path and query with every secret masked, when one was found there (the record
    /// must not carry it either).
    pub masked_url: Option<String>,
    /// Headers holding a credential that does not belong there: masked wherever the
    /// exchange's headers are written.
    pub flagged_headers: Vec<String>,
    /// Credentials presented to their own issuer (rule id, header): normal use, noted in
    /// the flow record, never a threat.
    pub presented: Vec<(String, String)>,
}

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
    scan_places(detector, host_as_sent, path_and_query, &mut head);
    let mut seen: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut url_views = vec![path_and_query.as_bytes().to_vec()];
    let mut decoded = Vec::new();
    if airlock_scan::decode::PercentDecoder::default().feed(path_and_query.as_bytes(), &mut decoded)
    {
        url_views.push(decoded);
    }
    for view in &url_views {
        let found = find(detector, families.as_ref(), view);
        if !found.is_empty() {
            head.masked_url = Some(mask_found(detector, view, &found));
        }
        for f in &found {
            let secret = view[f.start..f.end].to_vec();
            if seen.iter().any(|(r, s)| *r == f.rule && *s == secret) {
                continue;
            }
            seen.push((f.rule, secret));
            head.detections.push(Detection::of(
                detector,
                view,
                f,
                &found,
                Direction::Outbound,
                Location::Url,
            ));
        }
    }
    for (name, value) in headers {
        let name = name.as_str();
        let login = token_endpoint(host, path_and_query) && name == "authorization";
        let found = find(detector, families.as_ref(), value.as_bytes());
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
fn scan_places(detector: &Detector, host: &str, path_and_query: &str, head: &mut RequestHead) {
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
        if !found.is_empty() {
            head.masked_url = Some(mask_found(detector, path_and_query.as_bytes(), &found));
        }
        for f in &found {
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
