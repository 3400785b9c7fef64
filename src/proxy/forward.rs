//! Forwarding one HTTP request upstream and its response back, for every listener: absolute-form
//! proxy requests and requests inside an intercepted tunnel both come through [`forward`].

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::ProxyContext;
use super::splice::splice;
use super::upstream::describe_client_error;
use super::websocket;
use crate::config::DetectAction;
use crate::config::GatewayRoute;
use crate::detect::body::{BodyScan, ScanningBody, record_detections};
use crate::detect::{Detection, Detector, Direction, Location, snippet};
use crate::llm::{LlmCall, RequestTap, ResponseTap};
use crate::pipeline::decide;
use crate::pipeline::respond::{blocked_response, empty_body, error_response};
use crate::pipeline::{Exchange, FlowTracker, MeteredBody, ProxyBody, Side};
use crate::record::events::PresentedCredential;

/// Forwards `req` to the exchange's destination. The flow record is written when the
/// exchange ends, whichever way it ends.
pub async fn forward(
    ctx: Arc<ProxyContext>,
    exchange: Exchange,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    if ctx.is_self(&exchange.host, exchange.port) {
        return super::local::respond(&ctx, &req);
    }
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    // One snapshot of the reloadable settings for the whole exchange.
    let live = ctx.live();
    let detector = live.detector.clone();
    let tracker = FlowTracker::new(
        ctx.records.clone(),
        &exchange,
        req.method().as_str(),
        &path_and_query,
        req.headers(),
        Some(version_name(req.version())),
        Some(detector.clone()),
    );

    let llm_call = llm_provider(&ctx, &exchange, req.uri().path()).and_then(|(provider, strip)| {
        let path = path_and_query
            .strip_prefix(strip)
            .filter(|p| p.starts_with('/'))
            .unwrap_or(&path_and_query);
        LlmCall::start(
            provider,
            req.method().as_str(),
            path,
            tracker.clone(),
            ctx.prices.clone(),
            exchange.client_ip.to_string(),
            exchange.listener.to_string(),
        )
    });

    // Request phase: the destination is the exchange's, whatever the request claims.
    if let Some(claimed) = decide::host_mismatch(&exchange, req.uri(), req.headers()) {
        return decide::block(
            &tracker,
            "policy",
            "host-mismatch",
            format!(
                "request for {claimed} inside a tunnel to {}: refused",
                exchange.authority()
            ),
            "the Host header (or :authority) must name the host the tunnel was opened to".into(),
        );
    }

    // Only WebSocket is bridged: any other upgrade (h2c, say) would become a byte relay that
    // hides every later request, so its headers are dropped and the request goes as HTTP/1.1.
    let wants_upgrade = req.version() <= Version::HTTP_11 && is_websocket_upgrade(req.headers());
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));

    let upstream_uri: Uri = match exchange.url(&path_and_query).parse() {
        Ok(uri) => uri,
        Err(_) => {
            let reason = format!("cannot build an upstream URL for {}", exchange.host);
            tracker.fail(Some(400), &reason);
            return error_response(StatusCode::BAD_REQUEST, "bad-request", &reason);
        }
    };
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers, wants_upgrade);
    // The pooled client writes Host from the URI (the exchange's destination).
    headers.remove(header::HOST);
    if wants_upgrade && (detector.scans_outbound() || detector.scans_inbound()) {
        // Compressed messages (permessage-deflate) could not be scanned: offer none.
        headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }

    // Decide: lockdown, policy, the route's paths, the host's budget.
    let body_size: Option<u64> = if body.is_end_stream() {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    if let Some(refusal) = decide::request(
        &ctx,
        &live,
        &tracker,
        &exchange,
        parts.method.as_str(),
        &path_and_query,
        &headers,
        body_size,
    ) {
        drain_unread(body).await;
        return refusal;
    }
    let route = crate::policy::route_for(&live.config, &exchange.host);

    if detector.scans_outbound() {
        let detections =
            scan_request_head(&detector, &tracker, &exchange, &path_and_query, &headers);
        if let Some(info) = record_detections(&detector, &tracker, &detections) {
            drain_unread(body).await;
            return blocked_response(&info);
        }
    }
    // The route's credential goes in after scanning: the agent never held it, and it is
    // never reported as a leak nor written to a log.
    if let Some(route) = route {
        for name in &route.strip {
            headers.remove(name);
        }
        if let Ok(value) = HeaderValue::from_str(&route.value.0) {
            let mut value = value;
            value.set_sensitive(true);
            headers.insert(route.header.clone(), value);
        }
        tracker.mask_header(route.header.as_str());
        tracker.add_known_secret(&route.value.0);
    }
    if tracker.wants_bodies() {
        tracker.set_forwarded_headers(&headers);
    }

    let mut body = MeteredBody::new(body, tracker.clone(), Side::Request).boxed();
    if detector.scans_outbound() && !body.is_end_stream() {
        let encoding = header_str(&headers, header::CONTENT_ENCODING);
        let redact = detector.settings.outbound_secrets == DetectAction::Redact;
        let scan = BodyScan::new(
            detector.clone(),
            Direction::Outbound,
            encoding.as_deref(),
            redact,
        );
        let decompressing = scan.decompressing();
        let mut scanning = ScanningBody::new(
            body,
            scan,
            detector.clone(),
            tracker.clone(),
            Side::Request,
            redact,
            false,
        );
        // Hold the first max_hold_bytes until scanned: a leak found there sends nothing.
        scanning.prefetch(detector.settings.max_hold_bytes).await;
        if let Some(info) = scanning.blocked() {
            return blocked_response(info);
        }
        if redact {
            headers.remove(header::CONTENT_LENGTH);
            if decompressing {
                headers.remove(header::CONTENT_ENCODING);
            }
            if scanning.ended() {
                headers.insert(
                    header::CONTENT_LENGTH,
                    HeaderValue::from(scanning.ready_len()),
                );
            }
        }
        body = scanning.boxed();
    }

    // A body of unknown length is charged to the host's budget once what was held for
    // scanning has been read; what streams on after that is counted as it goes.
    if body_size.is_none() && crate::policy::BudgetLedger::applies(&live.config, &exchange.host) {
        let read = tracker.request_bytes();
        if let Some(refusal) = decide::budget(&ctx, &live, &tracker, &exchange, read) {
            return refusal;
        }
        body = crate::policy::BudgetTap::new(
            body,
            ctx.budgets.clone(),
            live.config.clone(),
            exchange.host.clone(),
            read,
        )
        .boxed();
    }
    if let Some(call) = &llm_call {
        body = RequestTap::new(body, call.clone()).boxed();
    }

    let mut upstream_req = Request::new(body);
    *upstream_req.method_mut() = parts.method;
    *upstream_req.uri_mut() = upstream_uri;
    // The pooled client picks h1 or h2 per connection; it refuses an h2-versioned request on
    // an h1 connection, and upgrades an h1-versioned one on h2 by itself.
    *upstream_req.version_mut() = Version::HTTP_11;
    *upstream_req.headers_mut() = headers;

    let client = if wants_upgrade || ctx.config.http1_only_hosts.matches(&exchange.host) {
        &ctx.upstreams.h1
    } else {
        &ctx.upstreams.any
    };
    let timeout = ctx.config.limits.request_timeout;
    let mut resp = match tokio::time::timeout(timeout, client.request(upstream_req)).await {
        Err(_) => {
            let reason = format!(
                "upstream {} did not answer within {} s (limits.request_timeout)",
                exchange.authority(),
                timeout.as_secs()
            );
            tracker.fail(Some(504), &reason);
            return error_response(StatusCode::GATEWAY_TIMEOUT, "upstream-timeout", &reason);
        }
        Ok(Err(e)) => {
            // A late find in a streamed request body aborts the upstream request mid-body.
            if let Some(info) = tracker.blocked() {
                tracker.note("the request body was cut off mid-stream: the upstream received an incomplete body");
                return blocked_response(&info);
            }
            let (status, kind, reason) = describe_client_error(&e);
            if kind == "destination" {
                return decide::destination(&tracker, reason);
            }
            tracing::debug!(host = %exchange.host, %reason, "upstream request failed");
            tracker.fail(Some(status.as_u16()), &reason);
            return error_response(status, kind, &reason);
        }
        Ok(Ok(resp)) => resp,
    };
    tracker.set_status(resp.status().as_u16());
    if let Some(call) = &llm_call {
        call.set_status(resp.status().as_u16());
    }
    if let Some(info) = tracker.blocked() {
        // The upstream answered before the rest of the body was refused.
        return blocked_response(&info);
    }

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            let reason = "upstream switched protocols without being asked to";
            tracker.fail(Some(502), reason);
            return error_response(StatusCode::BAD_GATEWAY, "upstream-protocol", reason);
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let idle = ctx.config.limits.idle_timeout;
        let bridge_tracker = tracker.clone();
        let bridge_detector = detector.clone();
        let scan_messages = detector.scans_outbound() || detector.scans_inbound();
        ctx.tasks.spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
                Ok((client_io, upstream_io)) if scan_messages => {
                    bridge_tracker.mark_websocket();
                    websocket::relay(
                        TokioIo::new(client_io),
                        TokioIo::new(upstream_io),
                        bridge_detector,
                        bridge_tracker,
                        idle,
                    )
                    .await;
                }
                Ok((client_io, upstream_io)) => {
                    let (up, down) =
                        splice(TokioIo::new(client_io), TokioIo::new(upstream_io), idle).await;
                    bridge_tracker.add_bytes(Side::Request, up);
                    bridge_tracker.add_bytes(Side::Response, down);
                }
                Err(e) => bridge_tracker.fail(Some(101), format!("protocol upgrade failed: {e}")),
            }
        });
        let (mut parts, _body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, true);
        return Response::from_parts(parts, empty_body());
    }

    // Response phase.
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    if detector.scans_inbound() {
        let detections = scan_response_head(&detector, &mut parts.headers);
        if let Some(info) = record_detections(&detector, &tracker, &detections) {
            return blocked_response(&info);
        }
    }
    if tracker.wants_bodies() {
        tracker.set_response_headers(&parts.headers);
    }
    parts.version = Version::HTTP_11;
    let mut body = MeteredBody::new(body, tracker.clone(), Side::Response).boxed();
    if detector.scans_inbound() && !body.is_end_stream() {
        let encoding = header_str(&parts.headers, header::CONTENT_ENCODING);
        let sse = header_str(&parts.headers, header::CONTENT_TYPE)
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/event-stream"));
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
        );
        let decompressing = scan.decompressing();
        let small = !sse
            && body
                .size_hint()
                .exact()
                .is_some_and(|n| n <= detector.settings.max_hold_bytes as u64);
        let mut scanning = ScanningBody::new(
            body,
            scan,
            detector.clone(),
            tracker.clone(),
            Side::Response,
            redact,
            sse,
        );
        if small {
            // Small enough to scan before the headers leave: a blocked injection becomes a
            // clear error, and the redaction count can go in a header.
            scanning.prefetch(usize::MAX).await;
            if let Some(info) = scanning.blocked() {
                return blocked_response(info);
            }
            if redact {
                if decompressing {
                    parts.headers.remove(header::CONTENT_ENCODING);
                }
                if scanning.ended() {
                    parts.headers.insert(
                        header::CONTENT_LENGTH,
                        HeaderValue::from(scanning.ready_len()),
                    );
                } else {
                    // The upstream broke off: no length that would make the rest look whole.
                    parts.headers.remove(header::CONTENT_LENGTH);
                }
                if scanning.redactions() > 0 {
                    parts
                        .headers
                        .insert(REDACTED_HEADER, HeaderValue::from(scanning.redactions()));
                }
            }
        } else if redact {
            parts.headers.remove(header::CONTENT_LENGTH);
            if decompressing {
                parts.headers.remove(header::CONTENT_ENCODING);
            }
        }
        body = scanning.boxed();
    }
    if let Some(call) = llm_call {
        let sse = header_str(&parts.headers, header::CONTENT_TYPE)
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("text/event-stream"));
        let encoding = header_str(&parts.headers, header::CONTENT_ENCODING);
        body = ResponseTap::new(body, call, detector.clone(), sse, encoding.as_deref()).boxed();
    }
    Response::from_parts(parts, body)
}

/// The LLM provider a request goes to, and the gateway base path to take off its path:
/// by path on an `llm` gateway, by host on the forward proxy (the providers' own APIs).
fn llm_provider<'a>(
    ctx: &'a ProxyContext,
    exchange: &Exchange,
    path: &str,
) -> Option<(airlock_llm::Provider, &'a str)> {
    match ctx.gateway.as_deref().map(|g| &g.route) {
        None => airlock_llm::provider_for_host(&exchange.host).map(|p| (p, "")),
        Some(GatewayRoute::Target(_)) => None,
        Some(GatewayRoute::Llm(upstreams)) => {
            // The path as the upstream sees it carries the base path; the provider's
            // routes are read from the client's own path.
            [
                (airlock_llm::Provider::Anthropic, &upstreams.anthropic),
                (airlock_llm::Provider::OpenAi, &upstreams.openai),
                (airlock_llm::Provider::Google, &upstreams.google),
            ]
            .into_iter()
            .find_map(|(p, base)| {
                let rest = path.strip_prefix(base.base_path.as_str())?;
                (airlock_llm::provider_for_gateway_path(rest) == Some(p))
                    .then_some((p, base.base_path.as_str()))
            })
        }
    }
}

const REDACTED_HEADER: &str = "x-airlock-redacted";

/// How much of a refused request's body is read (and dropped) so that the client, still
/// sending, gets to read the 403 instead of a reset connection.
const DRAIN_BYTES: usize = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops what the client is still sending of a refused request (bounded in size
/// and time); nothing of it goes anywhere.
async fn drain_unread(mut body: Incoming) {
    let drain = async {
        let mut read = 0usize;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    read += f.data_ref().map_or(0, |d| d.len());
                    if read > DRAIN_BYTES {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Scans response headers; secrets are replaced in place when the action is redact.
fn scan_response_head(detector: &Detector, headers: &mut HeaderMap) -> Vec<Detection> {
    let mut detections = Vec::new();
    for (name, value) in headers.iter_mut() {
        let found = detector.find_secrets(value.as_bytes());
        if found.is_empty() {
            continue;
        }
        let mut redacted = Vec::with_capacity(value.len());
        let mut pos = 0;
        for f in &found {
            let action = detector.action(f.rule, Direction::Inbound);
            detections.push(Detection {
                rule: f.rule,
                direction: Direction::Inbound,
                location: Location::Header(name.as_str().to_string()),
                action,
                snippet: snippet(detector, value.as_bytes(), f, &found),
            });
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

/// Scans the URL and the headers. A credential in an auth header sent to its own issuer is
/// normal use: noted in the flow record, never a threat.
fn scan_request_head(
    detector: &Detector,
    tracker: &FlowTracker,
    exchange: &Exchange,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Vec<Detection> {
    tracker.scan(|s| s.scanned = true);
    let mut detections = Vec::new();
    let mut seen: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut url_views = vec![path_and_query.as_bytes().to_vec()];
    let mut decoded = Vec::new();
    if airlock_scan::decode::PercentDecoder::default().feed(path_and_query.as_bytes(), &mut decoded)
    {
        url_views.push(decoded);
    }
    for view in &url_views {
        let found = detector.find_secrets(view);
        if !found.is_empty() {
            // The recorded URL must not carry the secret either.
            tracker.mask_url(&crate::detect::mask_found(detector, view, &found));
        }
        for f in &found {
            let secret = view[f.start..f.end].to_vec();
            if seen.iter().any(|(r, s)| *r == f.rule && *s == secret) {
                continue;
            }
            seen.push((f.rule, secret));
            detections.push(Detection {
                rule: f.rule,
                direction: Direction::Outbound,
                location: Location::Url,
                action: detector.action(f.rule, Direction::Outbound),
                snippet: snippet(detector, view, f, &found),
            });
        }
    }
    for (name, value) in headers {
        let name = name.as_str();
        let found = detector.find_secrets(value.as_bytes());
        for f in &found {
            if detector.presented_to_issuer(f.rule, name, &exchange.host) {
                let pattern = detector.rule(f.rule).id.clone();
                tracker.scan(|s| {
                    let c = PresentedCredential {
                        pattern,
                        header: name.to_string(),
                    };
                    if !s.credentials.contains(&c) {
                        s.credentials.push(c);
                    }
                });
                continue;
            }
            tracker.mask_header(name);
            detections.push(Detection {
                rule: f.rule,
                direction: Direction::Outbound,
                location: Location::Header(name.to_string()),
                action: detector.action(f.rule, Direction::Outbound),
                snippet: snippet(detector, value.as_bytes(), f, &found),
            });
        }
    }
    detections
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
}

pub fn version_name(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Removes the headers that belong to one connection, not to the message (RFC 9110 7.6.1),
/// plus the proxy's own credentials. `upgrade` keeps `Upgrade` and `Connection: upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        if !(upgrade && name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    for name in [
        header::PROXY_AUTHORIZATION,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        HeaderName::from_static("proxy-connection"),
        HeaderName::from_static("keep-alive"),
    ] {
        headers.remove(name);
    }
    // `te: trailers` is the one TE value h2 allows, and gRPC needs it.
    if headers
        .get(header::TE)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    {
        headers.remove(header::TE);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-private".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("proxy-authorization", "Basic abc".parse().unwrap());
        h.insert("te", "gzip".parse().unwrap());
        h.insert("x-keep", "yes".parse().unwrap());
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));

        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["te"], "trailers");
    }
}
