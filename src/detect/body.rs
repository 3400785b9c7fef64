//! The scanning state of one body (decompression, the raw view, the decoded views,
//! injections): the engine's `BodyScanner` plus what its findings mean here (actions,
//! snippets). The body stream itself is the pipeline's (`pipeline::scanning`).

use std::sync::Arc;

use airlock_scan::body::{BodyScanner, View, ViewFinding};
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
        let injections = (direction == Direction::Inbound)
            .then(|| (detector.injections.clone(), detector.injections_raw.clone()));
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
        }
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
        match &self.issuance {
            Some(issuance) => self.detector.inbound_action(rule, issuance),
            None if self.login && self.detector.login_credential(rule) => DetectAction::Allow,
            None => self.detector.action(rule, self.direction),
        }
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
        let issuance = self.issuance.as_ref();
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
            if let Some(issuance) = issuance {
                d.action = detector.inbound_action(d.rule, issuance);
            } else if login && detector.login_credential(d.rule) {
                d.action = DetectAction::Allow;
            }
            result.detections.push(d);
        });
        result
    }
}
