//! The one place a failure in the data path becomes a response to the client: a status, our
//! headers, and a JSON body with the reason (never internals, never a secret).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full};

use super::body::ProxyBody;
use super::exchange::BlockInfo;

pub const ERROR_HEADER: &str = "x-airlock-error";

pub fn empty_body() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

pub fn full_body(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A response that airlock itself makes, with `error` a short stable kind
/// (`upstream-tls`, `upstream-connect`, …) and `reason` one readable sentence.
pub fn error_response(status: StatusCode, error: &str, reason: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "error": error, "reason": reason });
    let mut resp = Response::new(full_body(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(error) {
        h.insert(ERROR_HEADER, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub const BLOCK_REASON_HEADER: &str = "x-airlock-block-reason";
pub const RULE_HEADER: &str = "x-airlock-rule";

/// The 403 of SPEC 5: `X-Airlock-Block-Reason`, `X-Airlock-Rule`, and a JSON body with the
/// reason and rule that never contains the secret.
pub fn blocked_response(info: &BlockInfo) -> Response<ProxyBody> {
    let body = serde_json::json!({
        "error": "blocked",
        "reason": info.reason,
        "rule": info.rule,
        "detail": info.detail,
    });
    block_response(StatusCode::FORBIDDEN, body, info)
}

/// A JSON refusal with airlock's block headers (the block's kind and rule).
fn block_response(
    status: StatusCode,
    body: serde_json::Value,
    info: &BlockInfo,
) -> Response<ProxyBody> {
    let mut resp = Response::new(full_body(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(BLOCK_REASON_HEADER, HeaderValue::from_static(info.kind));
    if let Ok(v) = HeaderValue::from_str(&info.rule) {
        h.insert(RULE_HEADER, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A refused LLM call in its provider's own error shape, status 429 (what the SDKs report as
/// a rate limit), with airlock's block headers.
pub fn llm_limit_response(
    provider: airlock_llm::Provider,
    info: &BlockInfo,
) -> Response<ProxyBody> {
    let message = format!("airlock: {}", info.reason);
    let body = match provider {
        airlock_llm::Provider::Anthropic => serde_json::json!({
            "type": "error",
            "error": {"type": "rate_limit_error", "message": message},
        }),
        airlock_llm::Provider::OpenAi => serde_json::json!({
            "error": {"message": message, "type": "insufficient_quota", "param": null, "code": "insufficient_quota"},
        }),
        airlock_llm::Provider::Google => serde_json::json!({
            "error": {"code": 429, "message": message, "status": "RESOURCE_EXHAUSTED"},
        }),
    };
    block_response(StatusCode::TOO_MANY_REQUESTS, body, info)
}
