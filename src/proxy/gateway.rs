//! Gateways (SPEC 9): reverse-proxy listeners. A request arrives in origin form
//! (`POST /v1/messages`), is given its destination here — by path to an LLM provider, or to
//! the one `target` — and then goes through the same [`forward`](super::forward::forward)
//! as proxied traffic: detection, records, LLM accounting.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;

use super::context::ProxyContext;
use super::forward::forward;
use crate::config::{GatewayRoute, UpstreamBase};
use crate::pipeline::respond::error_response;
use crate::pipeline::{Exchange, ProxyBody, Scheme};

/// The destination of a gateway request, or why there is none.
fn destination<'a>(route: &'a GatewayRoute, path: &str) -> Result<&'a UpstreamBase, String> {
    match route {
        GatewayRoute::Target(base) => Ok(base),
        GatewayRoute::Llm(upstreams) => match airlock_llm::provider_for_gateway_path(path) {
            Some(airlock_llm::Provider::Anthropic) => Ok(&upstreams.anthropic),
            Some(airlock_llm::Provider::OpenAi) => Ok(&upstreams.openai),
            Some(airlock_llm::Provider::Google) => Ok(&upstreams.google),
            None => Err(format!(
                "no LLM provider serves {path}: an llm gateway routes /v1/messages* to Anthropic, \
                 /v1/chat/completions, /v1/completions, /v1/responses*, /v1/embeddings and \
                 /v1/models* to OpenAI, and /v1beta/* to Google"
            )),
        },
    }
}

/// Serves one request on a gateway listener.
pub async fn handle(
    ctx: Arc<ProxyContext>,
    client: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<ProxyBody> {
    let gateway = ctx
        .gateway()
        .cloned()
        .expect("gateway handler on a gateway listener");
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let refuse = |status: StatusCode, kind: &str, reason: String, base: Option<&UpstreamBase>| {
        let tracker = ctx.connection_record(
            client.ip(),
            Some(req.method().as_str()),
            if base.is_some_and(|b| b.https) {
                "https"
            } else {
                "http"
            },
            base.map(|b| (b.host.as_str(), b.port)),
        );
        tracker.fail(Some(status.as_u16()), &reason);
        error_response(status, kind, &reason)
    };
    if req.method() == http::Method::CONNECT {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "bad-request",
            format!(
                "gateway {:?} is a reverse proxy: send requests to it directly (CONNECT is for the forward proxy on {})",
                gateway.name, ctx.proxy_listen
            ),
            None,
        );
    }
    let base = match destination(&gateway.route, req.uri().path()) {
        Ok(base) => base,
        Err(reason) => return refuse(StatusCode::NOT_FOUND, "no-route", reason, None),
    };
    // The request as the upstream should see it: the base URL's path before the client's.
    let upstream_path = format!("{}{}", base.base_path, path_and_query);
    let Ok(uri) = upstream_path.parse::<Uri>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad-request",
            format!("cannot build an upstream path from {path_and_query:?}"),
            Some(base),
        );
    };
    *req.uri_mut() = uri;
    let exchange = Exchange {
        listener: Arc::from(gateway.name.as_str()),
        client_ip: client.ip(),
        scheme: if base.https {
            Scheme::Https
        } else {
            Scheme::Http
        },
        host: base.host.clone(),
        port: base.port,
    };
    // The Host the upstream expects is its own, not the gateway's.
    if let Ok(host) = HeaderValue::from_str(&exchange.authority()) {
        req.headers_mut().insert(header::HOST, host);
    }
    forward(ctx, exchange, req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::gateways::LlmUpstreams;

    fn base(host: &str) -> UpstreamBase {
        UpstreamBase {
            https: true,
            host: host.into(),
            port: 443,
            base_path: String::new(),
        }
    }

    #[test]
    fn llm_routes_follow_the_spec() {
        let route = GatewayRoute::Llm(LlmUpstreams {
            anthropic: base("a"),
            openai: base("o"),
            google: base("g"),
        });
        for (path, host) in [
            ("/v1/messages", "a"),
            ("/v1/messages/count_tokens", "a"),
            ("/v1/chat/completions", "o"),
            ("/v1/completions", "o"),
            ("/v1/responses", "o"),
            ("/v1/embeddings", "o"),
            ("/v1/models", "o"),
            ("/v1beta/models/gemini-2.5-flash:generateContent", "g"),
        ] {
            assert_eq!(destination(&route, path).unwrap().host, host, "{path}");
        }
        assert!(destination(&route, "/admin").is_err());
    }
}
