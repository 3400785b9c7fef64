//! The request phase of one exchange: the flow record opens, the destination is checked
//! against what the request claims, lockdown, policy, routes and budgets decide, the head
//! is scanned, a request an `ask` rule matched waits for a person, the route's credential
//! goes in, and the body is tapped — metered, scanned (its first `max_hold_bytes` held until
//! scanned), charged, read for an LLM call. What leaves is the request for the upstream and
//! the [`Forwarding`] the response phase needs.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::{BodyExt, Either};
use hyper::upgrade::OnUpgrade;

use super::body::{BoxError, Outlet, ProxyBody, Tap, TapBody};
use super::decide;
use super::exchange::{Exchange, Side};
use super::live::{Live, Pipeline};
use super::llm::{LlmCall, PromptTap};
use super::meter::{BudgetCharge, Metered};
use super::prompt::PromptRedaction;
use super::respond::{blocked_response, error_response};
use super::scanning::Scanning;
use super::tracker::FlowTracker;
use crate::config::{DetectAction, GatewayRoute};
use crate::detect::{BodyScan, Detector, Direction, head};
use crate::record::events::PresentedCredential;

/// An exchange between its request phase and its response phase.
pub struct Forwarding {
    pub exchange: Exchange,
    /// The request's path and query, as sent.
    pub path_and_query: String,
    pub tracker: Arc<FlowTracker>,
    /// The settings the exchange started with, kept to its end.
    pub live: Arc<Live>,
    pub llm: Option<Arc<LlmCall>>,
    /// The client's side of a WebSocket upgrade, when it asked for one.
    pub upgrade: Option<OnUpgrade>,
}

/// Runs the request phase. `Err` is the response to give the client at once (a refusal, a
/// request that cannot be forwarded); the exchange's record is written either way.
pub async fn phase<B>(
    pipeline: &Pipeline,
    exchange: Exchange,
    mut req: Request<B>,
) -> Result<(Request<ProxyBody>, Forwarding), Response<ProxyBody>>
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    // One snapshot of the reloadable settings for the whole exchange.
    let live = pipeline.live();
    let detector = live.detector.clone();
    let tracker = FlowTracker::new(
        pipeline.records.clone(),
        &exchange,
        req.method().as_str(),
        &path_and_query,
        req.headers(),
        Some(version_name(req.version())),
        Some(detector.clone()),
    );
    let llm = llm_call(
        pipeline,
        &exchange,
        req.method().as_str(),
        &path_and_query,
        &tracker,
    );

    if let Some(refusal) = decide::tunnel_host(&tracker, &exchange, req.uri(), req.headers()) {
        return Err(refusal);
    }
    let host_as_sent = host_as_sent(&exchange, req.uri(), req.headers());
    // Only WebSocket is bridged: any other upgrade (h2c, say) would become a byte relay that
    // hides every later request, so its headers are dropped and the request goes as HTTP/1.1.
    let wants_upgrade = req.version() <= Version::HTTP_11 && is_websocket_upgrade(req.headers());
    let upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut req));
    let upstream_uri: Uri = match exchange.url(&path_and_query).parse() {
        Ok(uri) => uri,
        Err(_) => {
            let reason = format!("cannot build an upstream URL for {}", exchange.host);
            tracker.fail(Some(400), &reason);
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "bad-request",
                &reason,
            ));
        }
    };
    let (parts, body) = req.into_parts();
    let mut headers = parts.headers;
    upstream_headers(&mut headers, wants_upgrade, &detector);

    let body_size: Option<u64> = if body.is_end_stream() {
        Some(0)
    } else {
        body.size_hint().exact()
    };
    let method = parts.method.as_str();
    let asked = match decide::request(
        &pipeline.guards,
        &live,
        &tracker,
        &exchange,
        method,
        &path_and_query,
        &headers,
        body_size,
    ) {
        decide::Gate::Pass => None,
        decide::Gate::Ask { rule } => Some(rule),
        decide::Gate::Refuse(refusal) => {
            drain_unread(body).await;
            return Err(refusal);
        }
    };
    if let Some(call) = &llm
        && let Some(refusal) = decide::llm_budget(
            &pipeline.guards,
            &live,
            &tracker,
            &exchange,
            call.provider(),
        )
    {
        drain_unread(body).await;
        return Err(refusal);
    }
    if detector.scans_outbound()
        && let Some(info) = scan_head(
            &detector,
            &tracker,
            &exchange,
            &host_as_sent,
            &path_and_query,
            &headers,
        )
    {
        drain_unread(body).await;
        return Err(blocked_response(&info));
    }
    // Held after the head's other checks (nobody is asked about a request they refuse) and
    // before anything goes upstream or the route's credential goes in.
    let body = match asked {
        None => Either::Left(body),
        Some(rule) => {
            // The body is read ahead while it waits, no further than scanning holds anyway:
            // a client that goes away mid-body is seen, and its hold dropped.
            let mut body = TapBody::new(body, ReadAhead);
            let limit = detector.settings.max_hold_bytes;
            let client_gone = async {
                body.fill(limit).await;
                if !body.broke_off() {
                    std::future::pending::<()>().await;
                }
            };
            let refusal = decide::ask(
                &pipeline.guards,
                &live,
                &tracker,
                &exchange,
                &rule,
                body_size,
                client_gone,
            )
            .await;
            if let Some(refusal) = refusal {
                drain_unread(body).await;
                return Err(refusal);
            }
            Either::Right(body)
        }
    };
    inject_route_credential(&live, &tracker, &exchange, &mut headers);
    if tracker.wants_bodies() {
        tracker.set_forwarded_headers(&headers);
    }

    let path = path_and_query.split('?').next().unwrap_or("/");
    let plan = BodyPlan {
        path,
        body_size,
        llm: &llm,
        llm_api: llm_provider(pipeline, &exchange, path).is_some(),
    };
    let body = tap_body(
        pipeline,
        &live,
        &tracker,
        &exchange,
        &mut headers,
        body,
        plan,
    )
    .await?;
    let mut upstream_req = Request::new(body);
    *upstream_req.method_mut() = parts.method;
    *upstream_req.uri_mut() = upstream_uri;
    // The pooled client picks h1 or h2 per connection; it refuses an h2-versioned request on
    // an h1 connection, and upgrades an h1-versioned one on h2 by itself.
    *upstream_req.version_mut() = Version::HTTP_11;
    *upstream_req.headers_mut() = headers;
    Ok((
        upstream_req,
        Forwarding {
            exchange,
            path_and_query,
            tracker,
            live,
            llm,
            upgrade,
        },
    ))
}

/// The destination's name as the client wrote it (letters' case kept), when it names the
/// exchange's destination; else the destination (a gateway's upstream).
fn host_as_sent(exchange: &Exchange, uri: &Uri, headers: &HeaderMap) -> String {
    let written = uri.host().map(str::to_string).or_else(|| {
        let host = headers.get(header::HOST)?.to_str().ok()?;
        Some(decide::split_host_port(host).0)
    });
    match written {
        Some(h)
            if h.trim_matches(['[', ']'])
                .eq_ignore_ascii_case(&exchange.host) =>
        {
            h.trim_matches(['[', ']']).to_string()
        }
        _ => exchange.host.clone(),
    }
}

/// The request's headers as the upstream gets them: without the hop-by-hop ones, without
/// Host (the pooled client writes it from the URI, the exchange's destination), and without
/// WebSocket extensions when messages are scanned (compressed ones could not be read).
fn upstream_headers(headers: &mut HeaderMap, upgrade: bool, detector: &Detector) {
    strip_hop_by_hop(headers, upgrade);
    headers.remove(header::HOST);
    if upgrade && (detector.scans_outbound() || detector.scans_inbound()) {
        headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
}

/// The LLM provider this request goes to, and the gateway base path to take off its path:
/// by path on an `llm` gateway, by host on the forward proxy (the providers' own APIs).
fn llm_provider<'a>(
    pipeline: &'a Pipeline,
    exchange: &Exchange,
    path: &str,
) -> Option<(airlock_llm::Provider, &'a str)> {
    match pipeline.gateway.as_deref().map(|g| &g.route) {
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

/// The LLM call this request is, if it is one worth a record.
fn llm_call(
    pipeline: &Pipeline,
    exchange: &Exchange,
    method: &str,
    path_and_query: &str,
    tracker: &Arc<FlowTracker>,
) -> Option<Arc<LlmCall>> {
    let path = path_and_query.split('?').next().unwrap_or("/");
    let (provider, strip) = llm_provider(pipeline, exchange, path)?;
    let path = path_and_query
        .strip_prefix(strip)
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path_and_query);
    LlmCall::start(
        provider,
        method,
        path,
        tracker.clone(),
        pipeline,
        exchange.client_ip.to_string(),
        exchange.listener.to_string(),
    )
}

/// A name a jail asked its DNS for (`as_sent`: its letters' case kept), scanned like a
/// request's host (`hostname_exfil`, the credential rules): the block, if it is refused.
pub fn scan_name(
    pipeline: &Pipeline,
    tracker: &FlowTracker,
    exchange: &Exchange,
    as_sent: &str,
) -> Option<super::exchange::BlockInfo> {
    let live = pipeline.live();
    let detector = &live.detector;
    if !detector.scans_outbound() {
        return None;
    }
    scan_head(detector, tracker, exchange, as_sent, "/", &HeaderMap::new())
}

/// Scans the URL and headers; records what was found. Returns the block, if one applies.
fn scan_head(
    detector: &Detector,
    tracker: &FlowTracker,
    exchange: &Exchange,
    host_as_sent: &str,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Option<super::exchange::BlockInfo> {
    let found = head::scan_request(
        detector,
        &exchange.host,
        host_as_sent,
        path_and_query,
        headers,
    );
    tracker.scan(|s| {
        s.scanned = true;
        for (pattern, header) in found.presented {
            let c = PresentedCredential { pattern, header };
            if !s.credentials.contains(&c) {
                s.credentials.push(c);
            }
        }
    });
    if let Some(masked) = &found.masked_url {
        tracker.mask_url(masked);
    }
    if let Some(masked) = &found.masked_host {
        tracker.mask_host(masked);
    }
    for name in &found.flagged_headers {
        tracker.mask_header(name);
    }
    decide::findings(detector, tracker, &found.detections)
}

/// The route's credential goes in after scanning: the agent never held it, and it is never
/// reported as a leak nor written to a log.
fn inject_route_credential(
    live: &Live,
    tracker: &FlowTracker,
    exchange: &Exchange,
    headers: &mut HeaderMap,
) {
    let Some(route) = crate::policy::route_for(&live.config, &exchange.host) else {
        return;
    };
    for name in &route.strip {
        headers.remove(name);
    }
    if let Ok(mut value) = HeaderValue::from_str(&route.value.0) {
        value.set_sensitive(true);
        headers.insert(route.header.clone(), value);
    }
    tracker.mask_header(route.header.as_str());
    tracker.add_known_secret(route.value.0.as_bytes());
}

/// What the body's taps need to know about the request.
struct BodyPlan<'a> {
    /// The path, without the query.
    path: &'a str,
    /// The body's length when known up front.
    body_size: Option<u64>,
    llm: &'a Option<Arc<LlmCall>>,
    /// The request goes to an LLM API (its prompt's credentials can be redacted).
    llm_api: bool,
}

/// The request body with its taps: metered; scanned, with its first `max_hold_bytes` read
/// and scanned before anything is sent; charged to the host's budget; read for an LLM call.
#[allow(clippy::too_many_arguments)]
async fn tap_body<B>(
    pipeline: &Pipeline,
    live: &Live,
    tracker: &Arc<FlowTracker>,
    exchange: &Exchange,
    headers: &mut HeaderMap,
    body: B,
    plan: BodyPlan<'_>,
) -> Result<ProxyBody, Response<ProxyBody>>
where
    B: Body<Data = Bytes> + Send + Sync + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let detector = if plan.llm_api {
        &live.prompt_detector
    } else {
        &live.detector
    };
    let mut body = TapBody::new(body, Metered::new(tracker.clone(), Side::Request)).boxed();
    if plan.llm_api
        && detector.settings.llm_prompt_secrets == DetectAction::Redact
        && !body.is_end_stream()
        && !headers.contains_key(header::CONTENT_ENCODING)
    {
        // Read whole and rewritten before it goes: its length is known again after.
        let limit = usize::try_from(detector.settings.max_scan_bytes).unwrap_or(usize::MAX);
        let tap = PromptRedaction::new(detector.clone(), tracker.clone(), limit);
        let mut prompt = TapBody::new(body, tap);
        prompt.fill(limit.saturating_add(1)).await;
        headers.remove(header::CONTENT_LENGTH);
        if prompt.complete() {
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(prompt.ready_len()),
            );
        }
        body = prompt.boxed();
    }
    if detector.scans_outbound() && !body.is_end_stream() {
        let encoding = header_str(headers, header::CONTENT_ENCODING);
        let redact = detector.settings.outbound_secrets == DetectAction::Redact;
        // A JSON message to another agent (A2A, MCP over HTTP) is read for injections when
        // `detect.outbound_injection` asks for it.
        let to_agent = detector.settings.outbound_injection != DetectAction::Off
            && header_str(headers, header::CONTENT_TYPE)
                .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
        let scan = if to_agent {
            BodyScan::agent_message(detector.clone(), encoding.as_deref(), redact)
        } else {
            BodyScan::new(
                detector.clone(),
                Direction::Outbound,
                encoding.as_deref(),
                redact,
            )
        }
        .login(crate::detect::token_endpoint(&exchange.host, plan.path))
        .with_families(detector.text_families(plan.llm_api));
        let decompressing = scan.decompressing();
        let tap = Scanning::new(
            scan,
            detector.clone(),
            tracker.clone(),
            Side::Request,
            redact,
            false,
        );
        let mut scanning = TapBody::new(body, tap);
        // Hold the first max_hold_bytes until scanned: a leak found there sends nothing.
        scanning.fill(detector.settings.max_hold_bytes).await;
        if let Some(info) = scanning.tap().blocked() {
            return Err(blocked_response(info));
        }
        if redact {
            headers.remove(header::CONTENT_LENGTH);
            if decompressing {
                headers.remove(header::CONTENT_ENCODING);
            }
            if scanning.complete() {
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
    if plan.body_size.is_none()
        && crate::policy::BudgetLedger::applies(&live.config, &exchange.host)
    {
        let read = tracker.request_bytes();
        if let Some(refusal) = decide::budget(&pipeline.guards, live, tracker, exchange, read) {
            return Err(refusal);
        }
        let charge = BudgetCharge::new(
            pipeline.guards.budgets.clone(),
            live.config.clone(),
            exchange.host.clone(),
            read,
        );
        body = TapBody::new(body, charge).boxed();
    }
    if let Some(call) = plan.llm {
        body = TapBody::new(body, PromptTap::new(call.clone())).boxed();
    }
    Ok(body)
}

/// A held request's body, read ahead as it arrives and passed on unchanged.
struct ReadAhead;

impl Tap for ReadAhead {
    fn on_data(&mut self, data: Bytes, out: &mut Outlet) {
        out.push(data);
    }
}

/// How much of a request refused before its body was read is read (and dropped) before the
/// 403 goes, so that the client, still sending, gets to read it instead of a reset.
const DRAIN_BYTES: u64 = 1 << 20;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and drops what the client is still sending of a refused request (bounded in size
/// and time); nothing of it goes anywhere.
async fn drain_unread<B>(body: B)
where
    B: Body<Data = Bytes> + Unpin,
{
    super::body::drain(body, DRAIN_BYTES, DRAIN_TIME).await;
}

pub fn header_str(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
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
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
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
