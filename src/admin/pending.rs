//! `/api/pending`: the requests `ask` rules hold, and a person's answer to one
//! (`POST /api/pending/{id}/approve`, `POST /api/pending/{id}/deny`), which `airlock approve`,
//! `airlock deny` and the dashboard send. The routes and the token check are the server's.

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::pipeline::pending::{Decision, PendingError, PendingRequests};

/// The held requests, oldest first.
pub fn list(pending: &PendingRequests) -> Response {
    Json(pending.list()).into_response()
}

/// A person's answer to the held request `id` (the caller checked the bearer token).
pub fn answer(
    pending: &PendingRequests,
    headers: &HeaderMap,
    id: &str,
    decision: Decision,
) -> Response {
    if let Some(origin) = foreign_origin(headers) {
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({
                "error": "forbidden",
                "detail": format!("a page from {origin} cannot decide held requests; use the dashboard on this server or `airlock approve|deny ID`"),
            })),
        )
            .into_response();
    }
    match pending.decide(id, decision) {
        Ok(request) => {
            tracing::info!(id = %request.id, rule = %request.rule, decision = decision.as_str(), "a held request was decided");
            let mut body = serde_json::to_value(&request).unwrap_or_default();
            body["decision"] = decision.as_str().into();
            Json(body).into_response()
        }
        Err(e @ PendingError::Unknown(_)) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "error": "not-found",
                "detail": format!("{e}; GET /api/pending lists the held ones"),
            })),
        )
            .into_response(),
        Err(e @ PendingError::Closed) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"error": "stopping", "detail": e.to_string()})),
        )
            .into_response(),
    }
}

/// The origin of a browser request made by a page of another site, if this is one. An
/// approval lets a request out, so a page elsewhere must not be able to send one (with
/// the same-origin dashboard and command-line clients, nothing here is in the way).
fn foreign_origin(headers: &HeaderMap) -> Option<String> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Some(get("origin").unwrap_or(site).to_string());
    }
    let origin = get("origin")?;
    let host = get(header::HOST.as_str()).unwrap_or("");
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .unwrap_or(origin);
    (!origin_host.eq_ignore_ascii_case(host)).then(|| origin.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_same_origin_pages_and_non_browsers_may_decide() {
        assert_eq!(
            foreign_origin(&headers(&[("host", "127.0.0.1:8889")])),
            None
        );
        assert_eq!(
            foreign_origin(&headers(&[
                ("host", "127.0.0.1:8889"),
                ("origin", "http://127.0.0.1:8889"),
                ("sec-fetch-site", "same-origin"),
            ])),
            None
        );
        assert_eq!(
            foreign_origin(&headers(&[
                ("host", "127.0.0.1:8889"),
                ("origin", "https://evil.example"),
            ])),
            Some("https://evil.example".into())
        );
        assert!(
            foreign_origin(&headers(&[
                ("host", "127.0.0.1:8889"),
                ("sec-fetch-site", "cross-site"),
            ]))
            .is_some()
        );
    }
}
