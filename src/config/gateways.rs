//! `gateways` (reverse-proxy listeners, SPEC 9) and `prices` (LLM cost per model).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    name: String,
    listen: String,
    #[serde(default)]
    kind: Option<RawKind>,
    #[serde(default)]
    upstreams: Option<RawUpstreams>,
    #[serde(default)]
    target: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Llm,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstreams {
    anthropic: Option<String>,
    openai: Option<String>,
    google: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrice {
    input: f64,
    output: f64,
    #[serde(default)]
    cache_read: Option<f64>,
    #[serde(default)]
    cache_write: Option<f64>,
}

/// The listener name of the forward proxy in records (`listener`); gateways have their own.
pub const PROXY_LISTENER: &str = "proxy";

/// Where a gateway sends requests: scheme, host, port and a path prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamBase {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Prepended to the request's path (`https://host/openai` → `/openai/v1/...`); no
    /// trailing slash.
    pub base_path: String,
}

impl UpstreamBase {
    pub fn parse(url: &str) -> Result<UpstreamBase, String> {
        let bad = || format!("expected an http:// or https:// URL, got {url:?}");
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            return Err(bad());
        }
        let uri: http::uri::Authority = authority.parse().map_err(|_| bad())?;
        let host = uri
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(UpstreamBase {
            https,
            host,
            port,
            base_path: path.trim_end_matches('/').to_string(),
        })
    }
}

/// The upstreams of an LLM gateway, one per provider.
#[derive(Debug, Clone)]
pub struct LlmUpstreams {
    pub anthropic: UpstreamBase,
    pub openai: UpstreamBase,
    pub google: UpstreamBase,
}

#[derive(Debug, Clone)]
pub enum GatewayRoute {
    /// Routes by path to the provider (SPEC 9).
    Llm(LlmUpstreams),
    /// Everything to one service, WebSockets included.
    Target(UpstreamBase),
}

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub name: String,
    pub listen: SocketAddr,
    pub route: GatewayRoute,
}

/// A model's price in USD per million tokens (`prices`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceSetting {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

/// Validates `gateways`; errors name the key (`gateways[1].target`).
pub(super) fn build_gateways(raw: Vec<RawGateway>) -> Result<Vec<GatewayConfig>, (String, String)> {
    let mut out: Vec<GatewayConfig> = Vec::new();
    for (i, g) in raw.into_iter().enumerate() {
        let key = |field: &str| {
            if field.is_empty() {
                format!("gateways[{i}]")
            } else {
                format!("gateways[{i}].{field}")
            }
        };
        if g.name.is_empty()
            || !g
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err((
                key("name"),
                format!(
                    "a gateway name is letters, digits, '-' and '_', got {:?}",
                    g.name
                ),
            ));
        }
        if g.name == PROXY_LISTENER {
            return Err((
                key("name"),
                "\"proxy\" names the forward proxy in the records; choose another name".into(),
            ));
        }
        if out.iter().any(|o| o.name == g.name) {
            return Err((key("name"), format!("two gateways are named {:?}", g.name)));
        }
        let listen = super::listen::parse_listen(&g.listen).map_err(|m| (key("listen"), m))?;
        let route = match (g.kind, g.target, g.upstreams) {
            (Some(RawKind::Llm), None, upstreams) => {
                let pick = |given: Option<String>, default: &str, provider: &str| {
                    let url = given.unwrap_or_else(|| default.to_string());
                    UpstreamBase::parse(&url)
                        .map_err(|m| (key(&format!("upstreams.{provider}")), m))
                };
                let u = upstreams.unwrap_or(RawUpstreams {
                    anthropic: None,
                    openai: None,
                    google: None,
                });
                GatewayRoute::Llm(LlmUpstreams {
                    anthropic: pick(u.anthropic, "https://api.anthropic.com", "anthropic")?,
                    openai: pick(u.openai, "https://api.openai.com", "openai")?,
                    google: pick(
                        u.google,
                        "https://generativelanguage.googleapis.com",
                        "google",
                    )?,
                })
            }
            (None, Some(target), None) => {
                GatewayRoute::Target(UpstreamBase::parse(&target).map_err(|m| (key("target"), m))?)
            }
            (None, Some(_), Some(_)) => {
                return Err((
                    key("upstreams"),
                    "`upstreams` belongs to `kind: llm`; a `target` gateway has one URL".into(),
                ));
            }
            (Some(_), Some(_), _) => {
                return Err((
                    key(""),
                    "give either `kind: llm` or `target: <url>`, not both".into(),
                ));
            }
            (None, None, _) => {
                return Err((
                    key(""),
                    "needs `kind: llm` (route by path to the LLM providers) or `target: <url>` (forward everything to one service)".into(),
                ));
            }
        };
        out.push(GatewayConfig {
            name: g.name,
            listen,
            route,
        });
    }
    Ok(out)
}

/// The gateway that ClawSec-style configs describe with two flat keys: everything arriving
/// on `127.0.0.1:<gateway_local_port>` goes to `http://127.0.0.1:<gateway_target_port>`.
/// Named `gateway` in records. Both keys or neither.
pub(super) fn clawsec_gateway(
    local: Option<u16>,
    target: Option<u16>,
) -> Result<Option<RawGateway>, (String, String)> {
    match (local, target) {
        (None, None) => Ok(None),
        (Some(local), Some(target)) => Ok(Some(RawGateway {
            name: "gateway".into(),
            listen: format!("127.0.0.1:{local}"),
            kind: None,
            upstreams: None,
            target: Some(format!("http://127.0.0.1:{target}")),
        })),
        (Some(_), None) => Err((
            "gateway_target_port".into(),
            "gateway_local_port needs gateway_target_port (the local port the gateway forwards to)"
                .into(),
        )),
        (None, Some(_)) => Err((
            "gateway_local_port".into(),
            "gateway_target_port needs gateway_local_port (the port the gateway listens on)".into(),
        )),
    }
}

/// Reads `prices_file`, a LiteLLM `model_prices_and_context_window.json`.
pub(super) fn load_prices_file(path: &Path) -> Result<Vec<(String, PriceSetting)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let prices = airlock_llm::litellm_prices(&text).map_err(|e| {
        format!(
            "{} is not a LiteLLM price map ({{\"model\": {{\"input_cost_per_token\": …}}}}): {e}",
            path.display()
        )
    })?;
    Ok(prices
        .into_iter()
        .map(|(model, p)| {
            (
                model,
                PriceSetting {
                    input: p.input,
                    output: p.output,
                    cache_read: p.cache_read,
                    cache_write: p.cache_write,
                },
            )
        })
        .collect())
}

/// Validates `prices`: non-negative finite numbers.
pub(super) fn build_prices(
    raw: BTreeMap<String, RawPrice>,
) -> Result<Vec<(String, PriceSetting)>, (String, String)> {
    let mut out = Vec::new();
    for (model, p) in raw {
        let price = PriceSetting {
            input: p.input,
            output: p.output,
            cache_read: p.cache_read.unwrap_or(0.0),
            cache_write: p.cache_write.unwrap_or(0.0),
        };
        for (field, v) in [
            ("input", price.input),
            ("output", price.output),
            ("cache_read", price.cache_read),
            ("cache_write", price.cache_write),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err((
                    format!("prices.{model}.{field}"),
                    format!("a price is a non-negative number of USD per million tokens, got {v}"),
                ));
            }
        }
        if model.is_empty() {
            return Err(("prices".into(), "a model name cannot be empty".into()));
        }
        out.push((model, price));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls() {
        let u = UpstreamBase::parse("https://api.openai.com").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port),
            (true, "api.openai.com", 443)
        );
        assert_eq!(u.base_path, "");
        let u = UpstreamBase::parse("http://127.0.0.1:8080/proxy/v1/").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port),
            (false, "127.0.0.1", 8080)
        );
        assert_eq!(u.base_path, "/proxy/v1");
        for bad in [
            "ftp://x",
            "127.0.0.1:80",
            "http://",
            "http://u:p@host",
            "http://h/?q",
        ] {
            assert!(UpstreamBase::parse(bad).is_err(), "{bad}");
        }
    }
}
