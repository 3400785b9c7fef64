//! The scanning tap: a body under detection, beside the meter.
//! - pass mode: each chunk is scanned before it is forwarded, unchanged; a block ends the
//!   stream with an error (the upstream request is aborted mid-body);
//! - redact mode: the stream is decoded and each secret replaced by `[REDACTED:<rule>]`,
//!   holding back only the carry-over window (for SSE, only an incomplete event).
//!
//! `TapBody::fill` holds the first bytes until scanned (`max_hold_bytes`), so a blocked
//! request sends nothing upstream.

use std::sync::Arc;

use bytes::Bytes;

use super::body::{BlockedError, BoxError, Outlet, Tap};
use super::decide;
use super::exchange::{BlockInfo, Side};
use super::tracker::FlowTracker;
use crate::config::DetectAction;
use crate::detect::{BodyScan, ChunkScan, Detector};

/// A secret span still to be replaced: (start, end, (specificity, rule id)), in decoded
/// stream offsets.
type Pending = (u64, u64, (u8, String));

pub struct Scanning {
    scan: BodyScan,
    detector: Arc<Detector>,
    tracker: Arc<FlowTracker>,
    side: Side,
    redact: bool,
    sse: bool,
    /// Redact mode: decoded bytes not yet let out, starting at stream offset `out_base`.
    held: Vec<u8>,
    held_base: u64,
    pending: Vec<Pending>,
    redactions: u64,
    ended: bool,
    /// Redact mode: nothing leaves before the end (a small body read whole before its
    /// headers go out), so nothing is held back chunk by chunk.
    whole: bool,
    blocked: Option<BlockInfo>,
    /// Decoded bytes per compressed byte in the last chunk (see `Tap::input_slice`).
    last_ratio: usize,
}

impl Scanning {
    pub fn new(
        scan: BodyScan,
        detector: Arc<Detector>,
        tracker: Arc<FlowTracker>,
        side: Side,
        redact: bool,
        sse: bool,
    ) -> Self {
        Scanning {
            scan,
            detector,
            tracker,
            side,
            redact,
            sse,
            held: Vec::new(),
            held_base: 0,
            pending: Vec::new(),
            redactions: 0,
            ended: false,
            whole: false,
            blocked: None,
            last_ratio: 1032,
        }
    }

    /// The body will be read whole before any of it leaves.
    pub fn hold_whole(&mut self) {
        self.whole = true;
    }

    /// The body read so far was too long to hold whole after all (decoded, it outgrew the
    /// hold): it streams from here on.
    pub fn stream_on(&mut self) {
        self.whole = false;
    }

    pub fn blocked(&self) -> Option<&BlockInfo> {
        self.blocked.as_ref()
    }

    pub fn redactions(&self) -> u64 {
        self.redactions
    }

    /// Scans the end of the body (`last`: its last chunk, if it came with one).
    fn finish(&mut self, last: Option<Bytes>, out: &mut Outlet) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let chunk = self.scan.feed(last.as_deref().unwrap_or(&[]), true);
        self.after_scan(chunk, last, out);
        if self.side == Side::Request
            && self.blocked.is_none()
            && let Some(e) = self.scan.scanner().decode_error().map(str::to_string)
        {
            let info = decide::undecodable(&self.tracker, &e);
            self.refuse(info, out);
        }
        self.update_summary();
    }

    fn refuse(&mut self, info: BlockInfo, out: &mut Outlet) {
        // Nothing more leaves once a block is decided; what was held is dropped.
        out.abort(Box::new(BlockedError(info.reason.clone())));
        self.blocked = Some(info);
    }

    fn update_summary(&self) {
        let scanner = self.scan.scanner();
        let (scanned, truncated) = (scanner.scanned(), scanner.truncated());
        let side = self.side;
        self.tracker.scan(|s| {
            s.scanned = true;
            match side {
                Side::Request => s.request_bytes = scanned,
                Side::Response => s.response_bytes = scanned,
            }
            s.truncated |= truncated;
            for k in scanner.decoded() {
                if !s.decoded.iter().any(|d| d == k) {
                    s.decoded.push(k.to_string());
                }
            }
        });
    }

    fn after_scan(&mut self, chunk: ChunkScan, original: Option<Bytes>, out: &mut Outlet) {
        self.update_summary();
        if let Some(info) = decide::findings(&self.detector, &self.tracker, &chunk.detections)
            && self.blocked.as_ref().is_none_or(|b| info.rank < b.rank)
        {
            self.refuse(info, out);
        }
        if self.blocked.is_some() {
            return;
        }
        if !self.redact {
            if let Some(orig) = original {
                out.push(orig);
            }
            return;
        }
        let decoded: &[u8] = match (&chunk.plain, &original) {
            (Some(plain), _) => plain,
            (None, Some(orig)) => orig,
            (None, None) => &[],
        };
        self.held.extend_from_slice(decoded);
        for f in &chunk.raw {
            if self.scan.action(f.rule) != DetectAction::Redact {
                continue;
            }
            let rule = self.detector.rule(f.rule);
            let (mut start, mut end, mut label) = (
                f.start,
                f.end,
                (self.detector.specificity(f.rule), rule.id.clone()),
            );
            // Overlapping finds (a vendor key inside a generic assignment) are one
            // redaction, named after the most specific rule.
            self.pending.retain(|(s, e, l)| {
                let overlaps = *s < end && start < *e;
                if overlaps {
                    start = start.min(*s);
                    end = end.max(*e);
                    if l.0 < label.0 {
                        label = l.clone();
                    }
                }
                !overlaps
            });
            self.pending.push((start, end, label));
        }
        self.emit(self.ended, out);
    }

    /// Redact mode: lets out what may leave, with secrets replaced. Holds back the
    /// carry-over window (a secret may still be completing), except at the end, on `all`,
    /// and for SSE where complete events always go.
    fn emit(&mut self, all: bool, out: &mut Outlet) {
        if !self.redact || self.held.is_empty() || self.blocked.is_some() || (self.whole && !all) {
            return;
        }
        let mut len = if all {
            self.held.len()
        } else {
            // Only what may still become a secret stays behind (a cut-off keyword, a key
            // half received); a finished line of text goes out at once.
            let scanner = self.scan.scanner();
            let window = self.held.len().saturating_sub(scanner.overlap());
            window + scanner.hold_from(&self.held[window..])
        };
        if self.sse
            && !all
            && let Some(boundary) = last_event_end(&self.held)
        {
            len = len.max(boundary);
        }
        // Never cut through a secret still to be replaced.
        let cut = self.held_base + len as u64;
        for (start, end, _) in &self.pending {
            if *start < cut && *end > cut && !all {
                len = (start.saturating_sub(self.held_base)) as usize;
            }
        }
        if len == 0 {
            return;
        }
        let end_abs = self.held_base + len as u64;
        let mut piece = Vec::with_capacity(len + 32);
        let mut pos = self.held_base;
        self.pending.sort_by_key(|p| p.0);
        let mut keep = Vec::new();
        for (start, end, (rank, id)) in std::mem::take(&mut self.pending) {
            if start >= end_abs {
                keep.push((start, end, (rank, id)));
                continue;
            }
            let s = start.max(pos);
            if s > pos {
                piece.extend_from_slice(
                    &self.held[(pos - self.held_base) as usize..(s - self.held_base) as usize],
                );
            }
            if end > pos {
                piece.extend_from_slice(format!("[REDACTED:{id}]").as_bytes());
                self.redactions += 1;
                pos = end.min(end_abs).max(pos);
            }
        }
        if pos < end_abs {
            piece.extend_from_slice(&self.held[(pos - self.held_base) as usize..len]);
        }
        self.pending = keep;
        self.held.drain(..len);
        self.held_base = end_abs;
        out.push(Bytes::from(piece));
    }
}

/// A decoding (redacting) scan is handed as much compressed input at once as decodes to
/// about this much, at the ratio the last slice had (before any, deflate's worst: ~1032).
const DECODE_TARGET: usize = 1 << 20;
const SLICE_MIN: usize = 256;
const SLICE_MAX: usize = 8 * 1024;

impl Tap for Scanning {
    fn input_slice(&self) -> Option<usize> {
        if !(self.redact && self.scan.decompressing()) {
            return None;
        }
        let ratio = self.last_ratio.max(1);
        Some((DECODE_TARGET / ratio).clamp(SLICE_MIN, SLICE_MAX))
    }

    fn on_data(&mut self, data: Bytes, out: &mut Outlet) {
        let chunk = self.scan.feed(&data, false);
        if let Some(plain) = &chunk.plain
            && !data.is_empty()
        {
            self.last_ratio = plain.len().div_ceil(data.len());
        }
        self.after_scan(chunk, Some(data), out);
    }

    fn on_end(&mut self, out: &mut Outlet) {
        self.finish(None, out);
        self.emit(true, out);
    }

    fn on_last(&mut self, data: Bytes, out: &mut Outlet) {
        self.finish(Some(data), out);
        self.emit(true, out);
    }

    fn on_error(&mut self, _error: &BoxError, out: &mut Outlet) {
        // What was read goes out before the break, so the reader sees where it broke, once
        // the scan has confirmed what the carry-over held.
        if !std::mem::replace(&mut self.ended, true) {
            let chunk = self.scan.feed(&[], true);
            self.after_scan(chunk, None, out);
            self.update_summary();
        }
        self.emit(true, out);
    }

    fn held(&self) -> usize {
        self.held.len()
    }

    fn keeps_length(&self) -> bool {
        !self.redact
    }

    fn ends_with_inner(&self) -> bool {
        // The end of the body is scanned too (a secret touching the last chunk's end is
        // confirmed there): the reader must ask for it.
        false
    }
}

/// End of the last complete SSE event (after its blank line), if any.
fn last_event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).rposition(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf
        .windows(4)
        .rposition(|w| w == b"\r\n\r\n")
        .map(|i| i + 4);
    lf.max(crlf)
}

#[cfg(test)]
mod tests {
    use super::last_event_end;

    #[test]
    fn sse_events_end_after_their_blank_line() {
        assert_eq!(last_event_end(b"data: a\n\ndata: b"), Some(9));
        assert_eq!(last_event_end(b"data: a\r\n\r\n"), Some(11));
        assert_eq!(last_event_end(b"data: a\n"), None);
    }
}
