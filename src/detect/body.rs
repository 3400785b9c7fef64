//! The scanning state of one body (decompression, the raw view, the decoded views,
//! injections): the engine's `BodyScanner` plus what its findings mean here (actions,
//! snippets). The body stream itself is the pipeline's (`pipeline::scanning`).

use std::sync::Arc;

use airlock_scan::body::{BodyScanner, View, ViewFinding};
use airlock_scan::families::{FamilyScanner, FamilyStream};
use airlock_scan::stream::StreamFinding;

use super::{Detection, Detector, Direction, Issuance, Location};
use crate::config::DetectAction;

/// The scanning state of one body: the engine's [`BodyScanner`] plus what its findings mean
/// here (actions, snippets).
pub struct BodyScan {
    detector: Arc<Detector>,
    direction: Direction,
    scanner: BodyScanner,
    /// An answer: where it comes from (credentials from their issuer pass).
    issuance: Option<Issuance>,
    /// A request to a token endpoint: the client's own credentials are presented there.
    login: bool,
    /// The detector families that read text (cards, IBANs, crypto keys, PII), on requests.
    families: Option<FamilyStream>,
    family_scanned: u64,
}

/// What a finding of `rule` leads to in a body travelling `direction`: in an answer, by
/// where it came from; in a login request, the client's own credentials are presented.
fn action_of(
    detector: &Detector,
    issuance: &Option<Issuance>,
    login: bool,
    direction: Direction,
    rule: usize,
) -> DetectAction {
    match issuance {
        Some(issuance) => detector.inbound_action(rule, issuance),
        None if login && detector.login_credential(rule) => DetectAction::Allow,
        None => detector.action(rule, direction),
    }
}

/// What one chunk gave: its decoded bytes (when decompressing), the raw-view findings (for
/// redaction, in decoded-stream offsets), and every detection.
#[derive(Default)]
pub struct ChunkScan {
    pub plain: Option<Vec<u8>>,
    pub raw: Vec<StreamFinding>,
    pub detections: Vec<Detection>,
}

impl BodyScan {
    pub fn new(
        detector: Arc<Detector>,
        direction: Direction,
        content_encoding: Option<&str>,
        redact: bool,
    ) -> Self {
        let inbound = direction == Direction::Inbound;
        Self::scanning(detector, direction, content_encoding, redact, inbound)
    }

    /// A request to another agent (A2A, MCP over HTTP): injections are looked for too, with
    /// `detect.outbound_injection`'s action.
    pub fn agent_message(
        detector: Arc<Detector>,
        content_encoding: Option<&str>,
        redact: bool,
    ) -> Self {
        Self::scanning(
            detector,
            Direction::Outbound,
            content_encoding,
            redact,
            true,
        )
    }

    fn scanning(
        detector: Arc<Detector>,
        direction: Direction,
        content_encoding: Option<&str>,
        redact: bool,
        injections: bool,
    ) -> Self {
        let injections =
            injections.then(|| (detector.injections.clone(), detector.injections_raw.clone()));
        let scanner = BodyScanner::new(
            detector.secrets.clone(),
            injections,
            content_encoding,
            detector.settings.max_scan_bytes,
            redact,
        );
        BodyScan {
            detector,
            direction,
            scanner,
            issuance: None,
            login: false,
            families: None,
            family_scanned: 0,
        }
    }

    /// Runs `families` on the body too (requests: see `Detector::text_families`).
    pub fn with_families(mut self, families: Option<FamilyScanner>) -> Self {
        self.families = families.map(FamilyStream::new);
        self
    }

    /// The body is a request to a token endpoint (see `Detector::login_credential`).
    pub fn login(mut self, login: bool) -> Self {
        self.login = login;
        self
    }

    /// The body is an answer described by `issuance` (see `Detector::inbound_action`).
    pub fn issued(mut self, issuance: Issuance) -> Self {
        self.issuance = Some(issuance);
        self
    }

    /// What a finding of `rule` in this body leads to.
    pub fn action(&self, rule: usize) -> DetectAction {
        action_of(
            &self.detector,
            &self.issuance,
            self.login,
            self.direction,
            rule,
        )
    }

    pub fn decompressing(&self) -> bool {
        self.scanner.decompressing()
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The engine's scanner: counts, carry-over, decode errors.
    pub fn scanner(&self) -> &BodyScanner {
        &self.scanner
    }

    /// Scans the next chunk of the body as it travels (`last` at the end).
    pub fn feed(&mut self, chunk: &[u8], last: bool) -> ChunkScan {
        let mut result = ChunkScan::default();
        let detector = &self.detector;
        let direction = self.direction;
        let issuance = &self.issuance;
        let login = self.login;
        result.plain = self.scanner.feed(chunk, last, &mut |f: ViewFinding<'_>| {
            let location = match f.view {
                View::Raw | View::Normalized | View::InjectionRaw => Location::Body,
                other => Location::DecodedBody(other.name()),
            };
            if let Some(stream) = f.stream {
                result.raw.push(stream);
            }
            let mut d = Detection::of(
                detector,
                f.window,
                &f.local,
                f.neighbours,
                direction,
                location,
            );
            if d.action != DetectAction::Off {
                d.action = action_of(detector, issuance, login, direction, d.rule);
            }
            result.detections.push(d);
        });
        self.scan_families(chunk, last, &mut result);
        result
    }

    /// The families on the (decompressed) bytes, bounded like the rest of the scan. Their
    /// findings are in the same stream offsets as the raw view's, so they can be redacted.
    fn scan_families(&mut self, chunk: &[u8], last: bool, result: &mut ChunkScan) {
        let Some(stream) = &mut self.families else {
            return;
        };
        let text: &[u8] = result.plain.as_deref().unwrap_or(chunk);
        let room = self
            .detector
            .settings
            .max_scan_bytes
            .saturating_sub(self.family_scanned);
        let text = &text[..text.len().min(usize::try_from(room).unwrap_or(usize::MAX))];
        self.family_scanned += text.len() as u64;
        let mut found = Vec::new();
        if last {
            stream.feed_last(text, &mut found);
        } else {
            stream.feed(text, &mut found);
        }
        let (base, window) = stream.window();
        for f in found {
            let (Some(start), Some(end)) = (f.start.checked_sub(base), f.end.checked_sub(base))
            else {
                continue;
            };
            let Some(local) = self
                .detector
                .family_finding(f.rule, start as usize, end as usize)
            else {
                continue;
            };
            result.raw.push(StreamFinding {
                rule: local.rule,
                start: f.start,
                end: f.end,
                match_start: f.start,
                match_end: f.end,
            });
            let mut d = Detection::of(
                &self.detector,
                window,
                &local,
                &[local],
                self.direction,
                Location::Body,
            );
            d.action = action_of(
                &self.detector,
                &self.issuance,
                self.login,
                self.direction,
                local.rule,
            );
            result.detections.push(d);
        }
    }
}
