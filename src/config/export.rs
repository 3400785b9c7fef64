//! `export.otlp` (records as OTLP logs to a collector) and `alerts.webhook_url` (a POST per
//! threat). Both name places that may hold secrets (a collector's API key in a header, a Slack
//! webhook's token in its path): their `Debug` and every message here show neither.

use std::collections::BTreeMap;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::uri::{Scheme, Uri};
use serde::Deserialize;

/// The OTLP/HTTP path of the logs signal, appended to the base endpoint.
pub const OTLP_LOGS_PATH: &str = "/v1/logs";
/// The standard OpenTelemetry variables, used when `export.otlp` is present without them.
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const OTLP_HEADERS_ENV: &str = "OTEL_EXPORTER_OTLP_HEADERS";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExport {
    #[serde(default, deserialize_with = "super::present")]
    otlp: Option<Option<RawOtlp>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOtlp {
    endpoint: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    interval_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    webhook_url: Option<String>,
}

/// Where and how records are exported as OTLP logs.
#[derive(Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// `<endpoint>/v1/logs`.
    pub logs_url: Uri,
    /// Sent with every export (a collector's API key): never logged.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A batch is sent at the latest this long after its first record.
    pub interval: Duration,
}

impl std::fmt::Debug for OtlpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSettings")
            .field("logs_url", &origin(&self.logs_url))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("interval", &self.interval)
            .finish()
    }
}

/// Where threats are POSTed (`alerts.webhook_url`).
#[derive(Clone, PartialEq, Eq)]
pub struct AlertSettings {
    /// A webhook URL often carries its token in the path: shown only as its origin.
    pub webhook_url: Uri,
}

impl std::fmt::Debug for AlertSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertSettings")
            .field("webhook_url", &origin(&self.webhook_url))
            .finish()
    }
}

/// `scheme://host:port` of a URL: what a log line may say about where it sends, without the
/// path, query or user info, which may hold a token.
pub fn origin(url: &Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("http");
    let host = url.host().unwrap_or("?");
    match url.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// An http:// or https:// URL with a host and no user info; the message never repeats the
/// value (it may hold a token).
fn parse_http_url(text: &str) -> Result<Uri, String> {
    let uri: Uri = text.trim().parse().map_err(|_| {
        "is not a valid URL: write it as http://HOST[:PORT][/PATH] or https://…".to_string()
    })?;
    match uri.scheme() {
        Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => {}
        _ => {
            return Err(
                "must be an http:// or https:// URL (OTLP over HTTP, webhooks over HTTP)".into(),
            );
        }
    }
    let Some(authority) = uri.authority() else {
        return Err("must name a host, as in https://collector.example.com:4318".into());
    };
    if authority.as_str().contains('@') {
        return Err(
            "must not carry a user name or password: put the credential in a header instead".into(),
        );
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("must name a host, as in https://collector.example.com:4318".into());
    }
    Ok(uri)
}

/// `<base>/v1/logs`, as the OTLP exporters build it from `OTEL_EXPORTER_OTLP_ENDPOINT`.
fn logs_url(base: &Uri) -> Result<Uri, String> {
    if base.query().is_some() {
        return Err("must not have a query string: give the collector's base URL".into());
    }
    let path = base.path().trim_end_matches('/');
    let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
    let scheme = base.scheme_str().unwrap_or("http");
    format!("{scheme}://{authority}{path}{OTLP_LOGS_PATH}")
        .parse()
        .map_err(|_| "is not a valid URL once /v1/logs is appended".to_string())
}

fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| "is not a valid HTTP header name".to_string())?;
    let mut value = HeaderValue::from_str(value.trim()).map_err(|_| {
        "has a value that is not a valid HTTP header value (control characters or non-ASCII)"
            .to_string()
    })?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// `OTEL_EXPORTER_OTLP_HEADERS`: `k1=v1,k2=v2`, values percent-encoded (W3C baggage style).
fn env_headers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err("must be a list of name=value pairs separated by commas".into());
        };
        out.push((k.trim().to_string(), percent_decode(v.trim())));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `export`, validated; `env` reads a variable (the process environment, or a test's). An error
/// is (key path, message).
pub fn build_otlp(
    raw: Option<RawExport>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<OtlpSettings>, (String, String)> {
    // No `export`, no `export.otlp`, or `otlp: null`: off.
    let Some(raw) = raw.and_then(|r| r.otlp).flatten() else {
        return Ok(None);
    };
    let (endpoint, endpoint_key) = match raw.endpoint.filter(|e| !e.trim().is_empty()) {
        Some(e) => (e, "export.otlp.endpoint".to_string()),
        None => match env(OTLP_ENDPOINT_ENV).filter(|e| !e.trim().is_empty()) {
            Some(e) => (e, OTLP_ENDPOINT_ENV.to_string()),
            // `export: {otlp: {endpoint: null}}`, the documented default: off.
            None => return Ok(None),
        },
    };
    let base = parse_http_url(&endpoint).map_err(|m| (endpoint_key.clone(), m))?;
    let logs_url = logs_url(&base).map_err(|m| (endpoint_key, m))?;

    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    if let Some(text) = env(OTLP_HEADERS_ENV) {
        for (k, v) in env_headers(&text).map_err(|m| (OTLP_HEADERS_ENV.to_string(), m))? {
            headers.push(header(&k, &v).map_err(|m| (format!("{OTLP_HEADERS_ENV} ({k})"), m))?);
        }
    }
    // The file's headers win over the environment's.
    for (k, v) in raw.headers.unwrap_or_default() {
        let (name, value) = header(&k, &v).map_err(|m| (format!("export.otlp.headers.{k}"), m))?;
        headers.retain(|(n, _)| *n != name);
        headers.push((name, value));
    }
    let interval = match raw.interval_secs {
        None => Duration::from_secs(5),
        Some(0) => {
            return Err((
                "export.otlp.interval_secs".into(),
                "must be at least 1 (seconds between two exports)".into(),
            ));
        }
        Some(n) if n > 3600 => {
            return Err((
                "export.otlp.interval_secs".into(),
                format!("must be at most 3600, got {n}"),
            ));
        }
        Some(n) => Duration::from_secs(n),
    };
    Ok(Some(OtlpSettings {
        logs_url,
        headers,
        interval,
    }))
}

/// `alerts`, validated. An error is (key path, message).
pub fn build_alerts(raw: Option<RawAlerts>) -> Result<Option<AlertSettings>, (String, String)> {
    let Some(url) = raw
        .and_then(|r| r.webhook_url)
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    let webhook_url = parse_http_url(&url).map_err(|m| ("alerts.webhook_url".to_string(), m))?;
    Ok(Some(AlertSettings { webhook_url }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otlp(
        yaml_endpoint: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Option<OtlpSettings>, (String, String)> {
        let raw = RawExport {
            otlp: Some(Some(RawOtlp {
                endpoint: yaml_endpoint.map(str::to_string),
                headers: Some(BTreeMap::from([(
                    "authorization".to_string(),
                    "Bearer from-file".to_string(),
                )])),
                interval_secs: None,
            })),
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        build_otlp(Some(raw), &move |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn the_logs_path_is_appended_to_the_base_endpoint() {
        for (base, want) in [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/logs"),
            ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/logs"),
            (
                "https://otel.example.com/otlp",
                "https://otel.example.com/otlp/v1/logs",
            ),
        ] {
            let s = otlp(Some(base), &[]).unwrap().unwrap();
            assert_eq!(s.logs_url.to_string(), want);
        }
    }

    #[test]
    fn bad_endpoints_are_refused_without_repeating_them() {
        for bad in [
            "ftp://x",
            "collector:4318",
            "http://user:secret-pw@host",
            "not a url",
            "http://h/?q=1",
        ] {
            let (key, msg) = otlp(Some(bad), &[]).unwrap_err();
            assert_eq!(key, "export.otlp.endpoint", "{bad}");
            assert!(!msg.contains("secret-pw"), "{msg}");
        }
    }

    #[test]
    fn the_environment_is_a_fallback_and_the_file_headers_win() {
        assert!(otlp(None, &[]).unwrap().is_none());
        let s = otlp(
            None,
            &[
                (OTLP_ENDPOINT_ENV, "http://env-collector:4318"),
                (
                    OTLP_HEADERS_ENV,
                    "authorization=Bearer%20env,x-tenant=a%2Cb",
                ),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.logs_url.to_string(), "http://env-collector:4318/v1/logs");
        let get = |n: &str| {
            s.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(get("authorization").as_deref(), Some("Bearer from-file"));
        assert_eq!(get("x-tenant").as_deref(), Some("a,b"));
        assert!(s.headers.iter().all(|(_, v)| v.is_sensitive()));
        let (key, _) = otlp(None, &[(OTLP_ENDPOINT_ENV, "nope")]).unwrap_err();
        assert_eq!(key, OTLP_ENDPOINT_ENV);
    }

    #[test]
    fn debug_shows_neither_header_values_nor_webhook_paths() {
        let s = otlp(Some("https://c.example/"), &[]).unwrap().unwrap();
        let a = build_alerts(Some(RawAlerts {
            webhook_url: Some("https://hooks.example/services/T0/B0/tok3n".into()),
        }))
        .unwrap()
        .unwrap();
        let shown = format!("{s:?} {a:?}");
        assert!(
            !shown.contains("from-file") && !shown.contains("tok3n"),
            "{shown}"
        );
        assert!(shown.contains("authorization") && shown.contains("hooks.example"));
    }
}
