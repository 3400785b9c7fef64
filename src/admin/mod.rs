//! The admin server (`admin.listen`, default 127.0.0.1:8889; `admin: null` turns it off):
//! `/healthz`, `/readyz`, `/metrics` (OpenMetrics text), the JSON API of SPEC 6b
//! (`/api/status`, `/api/flows`, `/api/threats`, `/api/usage`, `/api/pending` and the
//! answers to it), the live
//! records as server-sent events (`/api/events`), and the dashboard at `/` (its page, script
//! and style compiled in). Off loopback every API route needs `Authorization: Bearer
//! <admin.token_env's value>`; the page takes the token from its URL fragment (`#token=…`).

pub mod pending;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use crate::config::Config;
use crate::pipeline::pending::Decision;
use crate::record::RecordSink;
use crate::record::store::{FlowQuery, Store, UsageBy};
use crate::tls::TlsContext;

/// What the handlers read.
pub struct AdminState {
    /// The reloadable settings: a reload's config shows in `/api/status` at once.
    pub live: Arc<arc_swap::ArcSwap<crate::pipeline::live::Live>>,
    pub records: RecordSink,
    pub tls: Arc<TlsContext>,
    /// The bearer token required, when one is configured.
    pub token: Option<String>,
    /// Flips to true when the proxy stops: open event streams end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The requests `ask` rules hold.
    pub pending: Arc<crate::pipeline::pending::PendingRequests>,
}

impl AdminState {
    /// The config the instance runs with now (the last reload's).
    fn config(&self) -> Arc<Config> {
        self.live.load().config.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "admin.token_env names {var}, which is not set or empty: export the bearer token in it, or set admin: null"
    )]
    NoToken { var: String },
}

/// The bearer token of `admin.token_env`, if configured; an unset variable is an error.
pub fn token(config: &Config) -> Result<Option<String>, AdminError> {
    let Some(admin) = &config.admin else {
        return Ok(None);
    };
    let Some(var) = &admin.token_env else {
        return Ok(None);
    };
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_string())),
        _ => Err(AdminError::NoToken { var: var.clone() }),
    }
}

pub fn router(state: Arc<AdminState>) -> Router {
    // Everything but the health checks, the dashboard's static files and the event stream
    // (which also takes the token as a parameter: EventSource sends no headers) needs the
    // admin token, checked once here for all of them.
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/status", get(api_status))
        .route("/api/flows", get(api_flows))
        .route("/api/threats", get(api_threats))
        .route("/api/usage", get(api_usage))
        .route("/api/pending", get(api_pending))
        .route("/api/sessions", get(api_sessions))
        .route("/api/sessions/{id}", get(api_session))
        .route("/api/pending/{id}/approve", post(api_approve))
        .route("/api/pending/{id}/deny", post(api_deny))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ready\n" }))
        .route("/api/events", get(api_events))
        .route("/", get(dashboard_page))
        .route("/dashboard.js", get(dashboard_js))
        .route("/dashboard.css", get(dashboard_css))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .merge(guarded)
        .with_state(state)
}

/// 401 unless the request carries the admin token (when `admin.token_env` sets one).
async fn require_token(
    State(state): State<Arc<AdminState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !authorized(&state, request.headers()) {
        return unauthorized();
    }
    next.run(request).await
}

/// Serves until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let app = router(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(error = %e, "the admin server stopped");
    }
}

fn authorized(state: &AdminState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| crate::config::same_secret(given.trim().as_bytes(), token.as_bytes()))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({"error": "unauthorized", "detail": "send Authorization: Bearer <the token in admin.token_env>"})),
    )
        .into_response()
}

fn failed(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(serde_json::json!({"error": "store", "detail": e.to_string()})),
    )
        .into_response()
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let mut text = state.records.metrics.encode();
    let (hits, misses) = state.tls.leaf_cache.stats();
    for (name, help, value) in [
        (
            "airlock_leaf_cache_hits",
            "Intercepted TLS sessions served a cached leaf certificate",
            hits,
        ),
        (
            "airlock_leaf_cache_misses",
            "Leaf certificates issued (cache misses)",
            misses,
        ),
    ] {
        text.push_str(&format!(
            "# HELP {name} {help}.\n# TYPE {name} counter\n{name}_total {value}\n"
        ));
    }
    text.push_str("# EOF\n");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn api_status(State(state): State<Arc<AdminState>>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &state.records.counters;
    let live = (
        c.requests.load(Relaxed),
        c.blocked.load(Relaxed),
        c.failed.load(Relaxed),
        c.threats.load(Relaxed),
    );
    let config = state.config();
    let mut object = status::status_object(&config, Some(live));
    object["pending"] = Value::from(state.pending.len());
    object["ca_fingerprint"] = Value::String(ca_fingerprint(&state.tls));
    let metrics = &state.records.metrics;
    object["audit"] = serde_json::json!({
        "writable": state.records.audit_failure().is_none(),
        "error": state.records.audit_failure(),
        "write_failures": metrics.audit_write_failures.get(),
        "records_lost": metrics.audit_records_lost.get(),
    });
    object["store"] = serde_json::json!({
        "enabled": config.store.enabled,
        "writable": state.records.store_failure().is_none(),
        "error": state.records.store_failure(),
        "records_dropped": metrics.store_dropped.get(),
    });
    // Where records and alerts go (origins only: a path may hold a token), and how it goes.
    let totals = |(sent, dropped, failed): (u64, u64, u64), destination: String| serde_json::json!({"destination": destination, "sent": sent, "dropped": dropped, "failed": failed});
    object["export"] = serde_json::json!({
        "otlp": config.otlp.as_ref().map(|o| {
            totals(metrics.export_totals(), crate::config::url_origin(&o.logs_url))
        }),
        "alerts": config.alerts.as_ref().map(|a| {
            totals(metrics.alert_totals(), crate::config::url_origin(&a.webhook_url))
        }),
    });
    Json(object).into_response()
}

#[derive(Debug, Deserialize)]
struct FlowParams {
    limit: Option<usize>,
    host: Option<String>,
    action: Option<String>,
    method: Option<String>,
    status: Option<u16>,
    listener: Option<String>,
}

/// Newest first (SPEC 6b).
async fn api_flows(State(state): State<Arc<AdminState>>, Query(p): Query<FlowParams>) -> Response {
    let query = FlowQuery {
        since: None,
        host_glob: p.host.map(|h| h.to_ascii_lowercase()),
        method: p.method.map(|m| m.to_ascii_uppercase()),
        status: p.status,
        action: p.action,
        listener: p.listener,
    };
    let limit = p.limit.unwrap_or(100).min(10_000);
    match from_store(&state, move |s| s.flows(&query, 0, limit)).await {
        Ok(rows) => Json(newest_first(rows)).into_response(),
        Err(failure) => failure,
    }
}

#[derive(Debug, Deserialize)]
struct LimitParams {
    limit: Option<usize>,
}

async fn api_threats(
    State(state): State<Arc<AdminState>>,
    Query(p): Query<LimitParams>,
) -> Response {
    let limit = p.limit.unwrap_or(100).min(10_000);
    let lines = crate::record::tail_lines(&state.config().audit_file("threats"), limit);
    let mut out: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    out.reverse();
    Json(out).into_response()
}

#[derive(Debug, Deserialize)]
struct UsageParams {
    by: Option<String>,
}

async fn api_usage(State(state): State<Arc<AdminState>>, Query(p): Query<UsageParams>) -> Response {
    let by = match p.by.as_deref().unwrap_or("model") {
        "model" => UsageBy::Model,
        "day" => UsageBy::Day,
        "provider" => UsageBy::Provider,
        other => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": "bad-request", "detail": format!("by must be model, day or provider, got {other:?}")})),
            )
                .into_response();
        }
    };
    match from_store(&state, move |s| s.usage(None, by)).await {
        Ok(lines) => Json(lines).into_response(),
        Err(failure) => failure,
    }
}

#[derive(Debug, Deserialize)]
struct SessionParams {
    limit: Option<usize>,
}

/// LLM conversations, the most recently active first.
async fn api_sessions(
    State(state): State<Arc<AdminState>>,
    Query(p): Query<SessionParams>,
) -> Response {
    let limit = p.limit.unwrap_or(50).min(1000);
    match from_store(&state, move |s| s.sessions(None, limit)).await {
        Ok(rows) => Json(rows).into_response(),
        Err(failure) => failure,
    }
}

/// One conversation's transcript: its turns, oldest first, with their detections.
async fn api_session(
    State(state): State<Arc<AdminState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let view = from_store(&state, move |s| {
        crate::record::conversations::session_view(s, &id)
    })
    .await;
    match view {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "not-found", "detail": "no such session"})),
        )
            .into_response(),
        Err(failure) => failure,
    }
}

/// Requests held by `ask` rules.
async fn api_pending(State(state): State<Arc<AdminState>>) -> Response {
    pending::list(&state.pending)
}

async fn api_approve(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    pending::answer(&state.pending, &headers, &id, Decision::Approved)
}

async fn api_deny(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    pending::answer(&state.pending, &headers, &id, Decision::Denied)
}

/// Runs `query` on the store off the async workers. No store yet (or `store: null`) answers
/// as an empty store does (`T::default()`); a failure is the API's 500.
async fn from_store<T, Q>(state: &AdminState, query: Q) -> Result<T, Response>
where
    T: Default + Send + 'static,
    Q: FnOnce(&Store) -> Result<T, crate::record::store::StoreError> + Send + 'static,
{
    let config = state.config();
    let result = tokio::task::spawn_blocking(move || match read_store(&config)? {
        Some(store) => query(&store).map_err(|e| e.to_string()),
        None => Ok(T::default()),
    })
    .await;
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(failed(e)),
        Err(e) => Err(failed(e)),
    }
}

fn read_store(config: &Config) -> Result<Option<Store>, String> {
    let path = config.store_path();
    if !config.store.enabled || !path.exists() {
        return Ok(None);
    }
    Store::open_read_only(&path)
        .map(Some)
        .map_err(|e| e.to_string())
}

fn newest_first(rows: Vec<(i64, String)>) -> Vec<Value> {
    rows.into_iter()
        .rev()
        .filter_map(|(_, record)| serde_json::from_str(&record).ok())
        .collect()
}

/// The address the admin server should bind, when it is on.
pub fn address(config: &Config) -> Option<SocketAddr> {
    config.admin.as_ref().map(|a| a.listen)
}

/// The CA certificate's SHA-256, as `AB:CD:…`.
fn ca_fingerprint(tls: &TlsContext) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, tls.ca.cert_der().as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The dashboard's page and assets, compiled in: no CDN, nothing fetched from elsewhere.
const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");
/// Only this server's own script, style and API: the page works offline and nothing
/// injected into a record (a hostile URL, a snippet) can run as code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn dashboard_page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

async fn dashboard_js() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn dashboard_css() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[derive(Debug, Deserialize)]
struct EventParams {
    /// EventSource cannot send headers: the token may come as a parameter here.
    access_token: Option<String>,
}

/// Flow and threat records as they are recorded (server-sent events `flow` and `threat`,
/// each the record's JSON line), and the list of held requests each time it changes
/// (`pending`, the JSON array of `/api/pending`).
async fn api_events(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(p): Query<EventParams>,
) -> Response {
    let by_param = match (&state.token, &p.access_token) {
        (Some(token), Some(given)) => {
            crate::config::same_secret(given.as_bytes(), token.as_bytes())
        }
        _ => false,
    };
    if !by_param && !authorized(&state, &headers) {
        return unauthorized();
    }
    use crate::record::LiveRecord;
    use axum::response::sse::{Event, KeepAlive, Sse};
    let receiver = state.records.live.subscribe();
    let shutdown = state.shutdown.clone();
    let held = (state.pending.clone(), state.pending.subscribe());
    let stream = futures_util::stream::unfold(
        (receiver, shutdown, held),
        |(mut rx, mut stop, mut held)| async move {
            loop {
                let next = tokio::select! {
                    r = rx.recv() => Some(r),
                    changed = held.1.changed() => match changed {
                        Ok(()) => None,
                        Err(_) => return None,
                    },
                    _ = stop.wait_for(|s| *s) => return None,
                };
                let Some(next) = next else {
                    let list = serde_json::to_string(&held.0.list()).unwrap_or_default();
                    let event = Event::default().event("pending").data(list);
                    return Some((Ok(event), (rx, stop, held)));
                };
                match next {
                    Ok(record) => {
                        let event = match record {
                            LiveRecord::Flow(json) => Event::default().event("flow").data(&*json),
                            LiveRecord::Threat(json) => {
                                Event::default().event("threat").data(&*json)
                            }
                        };
                        return Some((Ok::<_, std::convert::Infallible>(event), (rx, stop, held)));
                    }
                    // A slow reader skips what it missed rather than holding the proxy back.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
