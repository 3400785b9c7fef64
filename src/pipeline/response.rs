//! The response phase of one exchange: the upstream's answer (or its failure) becomes the
//! client's response — its head scanned (secrets redacted in place), its body tapped:
//! metered, scanned (small bodies before the headers leave, so a block is a clear 403 and
//! the redaction count can go in a header), read for an LLM call.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::response::Parts;
use http::{Response, StatusCode, Version};
use http_body::Body;
use http_body_util::BodyExt;

use super::body::{BoxError, ProxyBody, TapBody};
use super::decide;
use super::exchange::Side;
use super::llm::AnswerTap;
use super::meter::Metered;
use super::request::{Forwarding, header_str, strip_hop_by_hop};
use super::respond::{blocked_response, error_response};
use super::scanning::Scanning;
use crate::config::DetectAction;
use crate::detect::{BodyScan, Direction, Issuance, head};

const REDACTED_HEADER: &str = "x-airlock-redacted";

/// Why the upstream gave no response, as the forwarder saw it.
pub struct UpstreamFailure {
    /// What the client is told.
    pub status: StatusCode,
    /// A short stable kind (`upstream-connect`, `upstream-tls`, `destination`, …).
    pub kind: &'static str,
    pub reason: String,
}

impl Forwarding {
    /// The upstream's answer has arrived: the status is recorded; a request refused
    /// mid-body while the upstream answered is still refused.
    pub fn answered(&self, status: StatusCode) -> Option<Response<ProxyBody>> {
        self.tracker.set_status(status.as_u16());
        if let Some(call) = &self.llm {
            call.set_status(status.as_u16());
        }
        self.tracker.blocked().map(|info| blocked_response(&info))
    }

    /// The upstream gave no answer: a refusal decided while the body streamed, the
    /// destination guard's, or a failure with its reason.
    pub fn failed(&self, failure: UpstreamFailure) -> Response<ProxyBody> {
        // A late find in a streamed request body aborts the upstream request mid-body.
        if let Some(info) = self.tracker.blocked() {
            self.tracker.note(
                "the request body was cut off mid-stream: the upstream received an incomplete body",
            );
            return blocked_response(&info);
        }
        if failure.kind == "destination" {
            return decide::destination(&self.tracker, failure.reason);
        }
        tracing::debug!(host = %self.exchange.host, reason = %failure.reason, "upstream request failed");
        self.tracker
            .fail(Some(failure.status.as_u16()), &failure.reason);
        error_response(failure.status, failure.kind, &failure.reason)
    }

    /// The upstream switched protocols without being asked to.
    pub fn unasked_upgrade(&self) -> Response<ProxyBody> {
        let reason = "upstream switched protocols without being asked to";
        self.tracker.fail(Some(502), reason);
        error_response(StatusCode::BAD_GATEWAY, "upstream-protocol", reason)
    }
}

/// The head of a `101 Switching Protocols` answer as the client gets it.
pub fn upgrade_head(mut parts: Parts) -> Response<ProxyBody> {
    strip_hop_by_hop(&mut parts.headers, true);
    Response::from_parts(parts, super::respond::empty_body())
}

/// Runs the response phase on the upstream's answer.
pub async fn phase<B>(fwd: Forwarding, resp: Response<B>) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let detector = fwd.live.detector.clone();
    let tracker = fwd.tracker.clone();
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    let issuance = Issuance::of(
        &fwd.exchange.host,
        &fwd.path_and_query,
        parts.status.as_u16(),
    );
    if detector.scans_inbound() {
        let detections = head::scan_response(&detector, &mut parts.headers, &issuance);
        if let Some(info) = decide::findings(&detector, &tracker, &detections) {
            return blocked_response(&info);
        }
    }
    if tracker.wants_bodies() {
        tracker.set_response_headers(&parts.headers);
    }
    parts.version = Version::HTTP_11;
    let mut body = TapBody::new(body, Metered::new(tracker.clone(), Side::Response)).boxed();
    if detector.scans_inbound() && !body.is_end_stream() {
        body = match scan_body(&fwd, &mut parts, body, issuance).await {
            Ok(body) => body,
            Err(refusal) => return refusal,
        };
    }
    if let Some(call) = fwd.llm {
        let sse = is_sse(&parts);
        let encoding = header_str(&parts.headers, header::CONTENT_ENCODING);
        let tap = AnswerTap::new(call, detector, sse, encoding.as_deref());
        body = TapBody::new(body, tap).boxed();
    }
    Response::from_parts(parts, body)
}

fn is_sse(parts: &Parts) -> bool {
    header_str(&parts.headers, header::CONTENT_TYPE)
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/event-stream"))
}

/// Taps the response body with the scanner. A body small enough is read and scanned
/// before the headers leave.
async fn scan_body(
    fwd: &Forwarding,
    parts: &mut Parts,
    body: ProxyBody,
    issuance: Issuance,
) -> Result<ProxyBody, Response<ProxyBody>> {
    let detector = &fwd.live.detector;
    let encoding = header_str(&parts.headers, header::CONTENT_ENCODING);
    let sse = is_sse(parts);
    // Redaction rewrites the body: possible for identity bodies and for those airlock can
    // decode (it then sends them decoded).
    let decodable = encoding
        .as_deref()
        .is_none_or(|e| airlock_scan::decompress::Decompressor::for_encoding(e).is_ok());
    let redact = detector.settings.inbound_secrets == DetectAction::Redact && decodable;
    let scan = BodyScan::new(
        detector.clone(),
        Direction::Inbound,
        encoding.as_deref(),
        redact,
    )
    .issued(issuance);
    let decompressing = scan.decompressing();
    let small = !sse
        && body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= detector.settings.max_hold_bytes as u64);
    let tap = Scanning::new(
        scan,
        detector.clone(),
        fwd.tracker.clone(),
        Side::Response,
        redact,
        sse,
    );
    let mut scanning = TapBody::new(body, tap);
    if small {
        // Small enough to scan before the headers leave: a blocked injection becomes a
        // clear error, and the redaction count can go in a header.
        scanning.tap_mut().hold_whole();
        // Nothing has left yet: an upstream that stalls or breaks off inside the body gets
        // the client a clear error, not a silence or a connection closed without a word.
        let timeout = fwd.live.config.limits.request_timeout;
        // A compressed body may decode to far more than it weighs: past the hold it streams.
        let hold = detector.settings.max_hold_bytes.saturating_add(1);
        if tokio::time::timeout(timeout, scanning.fill(hold))
            .await
            .is_err()
        {
            let reason = format!(
                "upstream {} did not finish its answer within {} s (limits.request_timeout)",
                fwd.exchange.authority(),
                timeout.as_secs()
            );
            fwd.tracker.fail(Some(504), &reason);
            return Err(error_response(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream-timeout",
                &reason,
            ));
        }
        if let Some(info) = scanning.tap().blocked() {
            return Err(blocked_response(info));
        }
        if scanning.broke_off() {
            // The meter recorded the failure and how far the body got.
            fwd.tracker.set_status(502);
            return Err(error_response(
                StatusCode::BAD_GATEWAY,
                "upstream-reset",
                &format!(
                    "upstream {} broke off its answer before the end",
                    fwd.exchange.authority()
                ),
            ));
        }
        let complete = scanning.complete();
        if !complete {
            // Decoded, it outgrew the hold: it streams from here on.
            scanning.tap_mut().stream_on();
        }
        if redact {
            if decompressing {
                parts.headers.remove(header::CONTENT_ENCODING);
            }
            if complete {
                parts.headers.insert(
                    header::CONTENT_LENGTH,
                    HeaderValue::from(scanning.ready_len()),
                );
                let redactions = scanning.tap().redactions();
                if redactions > 0 {
                    parts
                        .headers
                        .insert(REDACTED_HEADER, HeaderValue::from(redactions));
                }
            } else {
                // Its decoded length is not known yet.
                parts.headers.remove(header::CONTENT_LENGTH);
            }
        }
    } else if redact {
        parts.headers.remove(header::CONTENT_LENGTH);
        if decompressing {
            parts.headers.remove(header::CONTENT_ENCODING);
        }
    }
    Ok(scanning.boxed())
}
