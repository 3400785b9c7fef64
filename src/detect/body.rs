//! Bodies under scan. [`BodyScan`] is the scanning state of one body (decompression, the raw
//! view, the decoded views, injections); [`ScanningBody`] wraps a body stream with it:
//! - pass mode: each chunk is scanned before it is forwarded, unchanged; a block ends the
//!   stream with an error (the upstream request is aborted mid-body);
//! - redact mode: the stream is decoded and each secret replaced by `[REDACTED:<rule>]`,
//!   holding back only the carry-over window (for SSE, only an incomplete event).
//!
//! [`ScanningBody::prefetch`] holds the first bytes until scanned (`max_hold_bytes`), so a
//! blocked request sends nothing upstream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use airlock_scan::body::{BodyScanner, View, ViewFinding};
use airlock_scan::stream::StreamFinding;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::{Detection, Detector, Direction, Location, snippet};
use crate::config::DetectAction;
use crate::pipeline::body::BoxError;
use crate::pipeline::{BlockInfo, FlowTracker, ProxyBody, Side};
use crate::record::events::{
    EgressEvent, FlowAction, ThreatAction, ThreatRecord, ThreatType, now_rfc3339,
};

/// The error a blocked body ends with (the upstream or client sees the stream break).
#[derive(Debug, thiserror::Error)]
#[error("blocked by airlock: {0}")]
pub struct BlockedError(pub String);

/// The scanning state of one body: the engine's [`BodyScanner`] plus what its findings mean
/// here (actions, snippets).
pub struct BodyScan {
    detector: Arc<Detector>,
    direction: Direction,
    scanner: BodyScanner,
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
        }
    }

    pub fn decompressing(&self) -> bool {
        self.scanner.decompressing()
    }

    /// Scans the next chunk of the body as it travels (`last` at the end).
    pub fn feed(&mut self, chunk: &[u8], last: bool) -> ChunkScan {
        let mut result = ChunkScan::default();
        let detector = &self.detector;
        let direction = self.direction;
        result.plain = self.scanner.feed(chunk, last, &mut |f: ViewFinding<'_>| {
            let location = match f.view {
                View::Raw | View::Normalized | View::InjectionRaw => Location::Body,
                other => Location::DecodedBody(other.name()),
            };
            if let Some(stream) = f.stream {
                result.raw.push(stream);
            }
            result.detections.push(Detection {
                rule: f.local.rule,
                direction,
                location,
                action: detector.action(f.local.rule, direction),
                snippet: snippet(detector, f.window, &f.local, f.neighbours),
            });
        });
        result
    }
}

/// Turns detections into records (threats, stderr events, the flow's verdict). Returns the
/// first blocking detection, if any.
pub fn record_detections(
    detector: &Detector,
    tracker: &FlowTracker,
    detections: &[Detection],
) -> Option<BlockInfo> {
    let mut block = None;
    if detections.is_empty() {
        return None;
    }
    let ctx = tracker.threat_context();
    for d in detections {
        let rule = detector.rule(d.rule);
        let (threat_type, block_kind) = match (rule.kind, d.direction) {
            (airlock_scan::RuleKind::Secret, Direction::Outbound) => {
                (ThreatType::Exfil, "credential-leak")
            }
            (airlock_scan::RuleKind::Secret, Direction::Inbound) => {
                (ThreatType::Secret, "credential-leak")
            }
            (airlock_scan::RuleKind::Injection, _) => (ThreatType::Injection, "injection"),
        };
        let action = match (d.action, &d.location) {
            // A secret only visible after decoding cannot be replaced in the stream.
            (DetectAction::Redact, Location::DecodedBody(_)) => DetectAction::Warn,
            (a, _) => a,
        };
        let threat_action = match action {
            DetectAction::Block => ThreatAction::Blocked,
            DetectAction::Redact => ThreatAction::Redacted,
            DetectAction::Warn => ThreatAction::Warned,
            DetectAction::Off => continue,
        };
        let verb = match rule.kind {
            airlock_scan::RuleKind::Secret => "egress DLP",
            airlock_scan::RuleKind::Injection => "injection guard",
        };
        let reason = format!(
            "{verb}: {} found in {}",
            rule.name,
            d.location.describe(d.direction)
        );
        tracker.scan(|s| {
            if !s.findings.contains(&rule.id) {
                s.findings.push(rule.id.clone());
            }
        });
        tracker.sink().threat(ThreatRecord {
            timestamp: now_rfc3339(),
            direction: d.direction.as_str().to_string(),
            protocol: ctx.protocol.clone(),
            threat_type,
            pattern: rule.id.clone(),
            family: rule.family.clone(),
            snippet: d.snippet.clone(),
            source: ctx.source.clone(),
            dest: ctx.dest.clone(),
            action: threat_action,
            method: ctx.method.clone(),
            path: ctx.path.clone(),
            flow_id: Some(ctx.flow_id.clone()),
            location: Some(d.location.describe(d.direction)),
        });
        match action {
            DetectAction::Block => {
                tracker.sink().event(EgressEvent::Block {
                    timestamp: now_rfc3339(),
                    id: ctx.flow_id.clone(),
                    reason: reason.clone(),
                    rule: rule.id.clone(),
                    host: ctx.host.clone(),
                    method: ctx.method.clone(),
                    path: ctx.path.clone(),
                });
                let info = BlockInfo {
                    rank: block_rank(rule),
                    kind: block_kind,
                    rule: rule.id.clone(),
                    reason: reason.clone(),
                    detail: format!(
                        "{} ({}) in the {}; the snippet in `airlock threats` shows where, with the value masked",
                        rule.name,
                        rule.family,
                        d.location.describe(d.direction)
                    ),
                };
                tracker.block(info.clone());
                if block
                    .as_ref()
                    .is_none_or(|b: &BlockInfo| info.rank < b.rank)
                {
                    block = Some(info);
                }
            }
            DetectAction::Redact | DetectAction::Warn => {
                tracker.sink().event(EgressEvent::Warn {
                    timestamp: now_rfc3339(),
                    id: ctx.flow_id.clone(),
                    reason: if action == DetectAction::Redact {
                        format!("{reason} (redacted)")
                    } else {
                        reason.clone()
                    },
                    rule: rule.id.clone(),
                    host: ctx.host.clone(),
                    method: ctx.method.clone(),
                    path: ctx.path.clone(),
                    response_status: (d.direction == Direction::Inbound)
                        .then_some(ctx.status)
                        .flatten(),
                });
                let flow_action = if action == DetectAction::Redact {
                    FlowAction::Redacted
                } else {
                    FlowAction::Warned
                };
                tracker.escalate(flow_action, &reason);
            }
            DetectAction::Off => {}
        }
    }
    block
}

/// Which block a response names when several rules fired: a specific credential first, then
/// an injection, then a catch-all, then a file marker (`cat .env`).
fn block_rank(rule: &airlock_scan::Rule) -> u8 {
    match rule.kind {
        airlock_scan::RuleKind::Secret if rule.id.ends_with("_ref") => 3,
        airlock_scan::RuleKind::Secret if rule.fallback => 2,
        airlock_scan::RuleKind::Secret => 0,
        airlock_scan::RuleKind::Injection => 1,
    }
}

/// A body stream under scan (see the module docs).
pub struct ScanningBody {
    inner: ProxyBody,
    scan: BodyScan,
    detector: Arc<Detector>,
    tracker: Arc<FlowTracker>,
    side: Side,
    redact: bool,
    sse: bool,
    /// Redact mode: decoded bytes not yet sent, starting at stream offset `out_base`.
    out: Vec<u8>,
    out_base: u64,
    /// Redact mode: secret spans still to replace, (start, end, (rank, rule id)).
    pending: Vec<(u64, u64, (u8, String))>,
    redactions: u64,
    ready: VecDeque<Frame<Bytes>>,
    ready_bytes: usize,
    ended: bool,
    blocked: Option<BlockInfo>,
    /// The inner body failed; delivered after what was already read.
    failed: Option<BoxError>,
}

impl ScanningBody {
    pub fn new(
        inner: ProxyBody,
        scan: BodyScan,
        detector: Arc<Detector>,
        tracker: Arc<FlowTracker>,
        side: Side,
        redact: bool,
        sse: bool,
    ) -> Self {
        ScanningBody {
            inner,
            scan,
            detector,
            tracker,
            side,
            redact,
            sse,
            out: Vec::new(),
            out_base: 0,
            pending: Vec::new(),
            redactions: 0,
            ready: VecDeque::new(),
            ready_bytes: 0,
            ended: false,
            blocked: None,
            failed: None,
        }
    }

    pub fn blocked(&self) -> Option<&BlockInfo> {
        self.blocked.as_ref()
    }

    /// The whole body was read, cleanly, during `prefetch`.
    pub fn ended(&self) -> bool {
        self.ended && self.out.is_empty() && self.failed.is_none()
    }

    pub fn redactions(&self) -> u64 {
        self.redactions
    }

    /// Bytes ready to go out (after prefetching a whole body, its new length).
    pub fn ready_len(&self) -> usize {
        self.ready_bytes
    }

    /// Reads and scans up to `limit` bytes (or the whole body) before anything is sent.
    pub async fn prefetch(&mut self, limit: usize) {
        std::future::poll_fn(|cx| {
            while !self.ended && self.blocked.is_none() && self.ready_bytes + self.out.len() < limit
            {
                match Pin::new(&mut self.inner).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => self.ingest(frame),
                    Poll::Ready(Some(Err(e))) => {
                        // Delivered after what was read, so the client sees the break.
                        self.emit(true);
                        self.failed = Some(e);
                        return Poll::Ready(());
                    }
                    Poll::Ready(None) => self.finish(),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Ready(())
        })
        .await;
        if self.ended {
            self.emit(true);
        }
    }

    fn ingest(&mut self, frame: Frame<Bytes>) {
        let frame = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                // Trailers: whatever is held goes first.
                self.emit(true);
                self.push_ready(frame);
                return;
            }
        };
        let chunk = self.scan.feed(&frame, false);
        self.after_scan(chunk, Some(frame));
    }

    fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        let chunk = self.scan.feed(&[], true);
        self.after_scan(chunk, None);
        if self.side == Side::Request
            && let Some(e) = self.scan.scanner.decode_error().map(str::to_string)
            && self.blocked.is_none()
        {
            let info = BlockInfo {
                rank: 0,
                kind: "credential-leak",
                rule: "undecodable-body".into(),
                reason: format!("egress DLP: the request body cannot be decoded for scanning ({e})"),
                detail: "airlock blocks what it cannot inspect; send the body uncompressed or with gzip, deflate, br or zstd".into(),
            };
            self.tracker.block(info.clone());
            self.blocked = Some(info);
        }
        self.update_summary();
    }

    fn update_summary(&self) {
        let scanner = &self.scan.scanner;
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

    fn after_scan(&mut self, chunk: ChunkScan, original: Option<Bytes>) {
        self.update_summary();
        if let Some(info) = record_detections(&self.detector, &self.tracker, &chunk.detections)
            && self.blocked.as_ref().is_none_or(|b| info.rank < b.rank)
        {
            self.blocked = Some(info);
        }
        if self.redact {
            let decoded: &[u8] = match (&chunk.plain, &original) {
                (Some(plain), _) => plain,
                (None, Some(orig)) => orig,
                (None, None) => &[],
            };
            self.out.extend_from_slice(decoded);
            for f in &chunk.raw {
                if self.detector.action(f.rule, self.scan.direction) != DetectAction::Redact {
                    continue;
                }
                let rule = self.detector.rule(f.rule);
                let (mut start, mut end, mut label) =
                    (f.start, f.end, (block_rank(rule), rule.id.clone()));
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
            self.emit(self.ended);
        } else if let Some(orig) = original
            && !orig.is_empty()
        {
            self.push_ready(Frame::data(orig));
        }
    }

    fn push_ready(&mut self, frame: Frame<Bytes>) {
        if let Some(d) = frame.data_ref() {
            self.ready_bytes += d.len();
        }
        self.ready.push_back(frame);
    }

    /// Redact mode: moves what may leave from `out` to `ready`, with secrets replaced.
    /// Holds back the carry-over window (a secret may still be completing), except at the
    /// end, on `all`, and for SSE where complete events always go.
    fn emit(&mut self, all: bool) {
        if !self.redact || self.out.is_empty() {
            return;
        }
        let mut len = if all {
            self.out.len()
        } else {
            // Only what may still become a secret stays behind (a cut-off keyword, a key
            // half received); a finished line of text goes out at once.
            let window = self.out.len().saturating_sub(self.scan.scanner.overlap());
            window + self.scan.scanner.hold_from(&self.out[window..])
        };
        if self.sse
            && !all
            && let Some(boundary) = last_event_end(&self.out)
        {
            len = len.max(boundary);
        }
        // Never cut through a secret still to be replaced.
        let cut = self.out_base + len as u64;
        for (start, end, _) in &self.pending {
            if *start < cut && *end > cut && !all {
                len = (start.saturating_sub(self.out_base)) as usize;
            }
        }
        if len == 0 {
            return;
        }
        let end_abs = self.out_base + len as u64;
        let mut piece = Vec::with_capacity(len + 32);
        let mut pos = self.out_base;
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
                    &self.out[(pos - self.out_base) as usize..(s - self.out_base) as usize],
                );
            }
            if end > pos {
                piece.extend_from_slice(format!("[REDACTED:{id}]").as_bytes());
                self.redactions += 1;
                pos = end.min(end_abs).max(pos);
            }
        }
        if pos < end_abs {
            piece.extend_from_slice(&self.out[(pos - self.out_base) as usize..len]);
        }
        self.pending = keep;
        self.out.drain(..len);
        self.out_base = end_abs;
        if !piece.is_empty() {
            self.push_ready(Frame::data(Bytes::from(piece)));
        }
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

impl Body for ScanningBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(info) = &this.blocked {
                // Nothing more leaves once a block is decided; what was held is dropped.
                this.ready.clear();
                return Poll::Ready(Some(Err(Box::new(BlockedError(info.reason.clone())))));
            }
            if let Some(frame) = this.ready.pop_front() {
                if let Some(d) = frame.data_ref() {
                    this.ready_bytes -= d.len();
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            if let Some(e) = this.failed.take() {
                this.ended = true;
                return Poll::Ready(Some(Err(e)));
            }
            if this.ended {
                if !this.out.is_empty() {
                    this.emit(true);
                    continue;
                }
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => this.ingest(frame),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    this.finish();
                    this.emit(true);
                }
                // Redaction holds back only the carry-over window (a secret may still be
                // completing in the next chunk); SSE never holds a complete event.
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.ready.is_empty() && self.out.is_empty() && self.blocked.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        if self.redact {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}
