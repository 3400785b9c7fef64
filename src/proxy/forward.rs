//! Forwarding one HTTP request upstream and its response back, for every listener: absolute-form
//! proxy requests and requests inside an intercepted tunnel both come through [`forward`].

use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::ProxyContext;
use super::splice::splice;
use super::upstream::describe_client_error;
use crate::pipeline::respond::{empty_body, error_response};
use crate::pipeline::{Exchange, FlowTracker, MeteredBody, ProxyBody, Side};

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
    let tracker = FlowTracker::new(
        ctx.records.clone(),
        &exchange,
        req.method().as_str(),
        &path_and_query,
        req.headers(),
        Some(version_name(req.version())),
    );

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
    // The destination is the exchange's, decided once; the client's Host header (or h2
    // :authority) never redirects a request. The pooled client writes Host from the URI.
    headers.remove(header::HOST);
    if tracker.wants_bodies() {
        tracker.set_forwarded_headers(&headers);
    }

    let body = MeteredBody::new(body, tracker.clone(), Side::Request).boxed();
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
            let (status, kind, reason) = describe_client_error(&e);
            tracing::debug!(host = %exchange.host, %reason, "upstream request failed");
            tracker.fail(Some(status.as_u16()), &reason);
            return error_response(status, kind, &reason);
        }
        Ok(Ok(resp)) => resp,
    };
    tracker.set_status(resp.status().as_u16());

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = client_upgrade else {
            let reason = "upstream switched protocols without being asked to";
            tracker.fail(Some(502), reason);
            return error_response(StatusCode::BAD_GATEWAY, "upstream-protocol", reason);
        };
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        let idle = ctx.config.limits.idle_timeout;
        let bridge_tracker = tracker.clone();
        ctx.tasks.spawn(async move {
            match tokio::try_join!(client_upgrade, upstream_upgrade) {
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

    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    if tracker.wants_bodies() {
        tracker.set_response_headers(&parts.headers);
    }
    parts.version = Version::HTTP_11;
    let body = MeteredBody::new(body, tracker, Side::Response).boxed();
    Response::from_parts(parts, body)
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
