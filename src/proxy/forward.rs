//! Forward: one HTTP request upstream and its answer back, for every listener (absolute-form
//! proxy requests, requests inside an intercepted tunnel, gateway requests). The pipeline's
//! request phase prepares the request, the pooled client sends it, and the answer goes
//! through the response phase — or, for a WebSocket, over the upgrade bridge.

use std::sync::Arc;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::context::ProxyContext;
use super::upgrade;
use super::upstream::describe_client_error;
use crate::pipeline::request::{self, Forwarding};
use crate::pipeline::response::{self, UpstreamFailure};
use crate::pipeline::{Exchange, ProxyBody};

/// Forwards `req` to the exchange's destination. The flow record is written when the
/// exchange ends, whichever way it ends.
pub async fn forward(
    ctx: Arc<ProxyContext>,
    exchange: Exchange,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    if ctx.is_self(&exchange.host, exchange.port) {
        return super::local::respond(&ctx, &req);
    }
    let (upstream_req, fwd) = match request::phase(&ctx.pipeline, exchange, req).await {
        Ok(prepared) => prepared,
        Err(refusal) => return refusal,
    };
    let resp = match send(&ctx, &fwd, upstream_req).await {
        Ok(resp) => resp,
        Err(failure) => return fwd.failed(failure),
    };
    if let Some(refusal) = fwd.answered(resp.status()) {
        return refusal;
    }
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return upgrade::bridge(&ctx, fwd, resp);
    }
    response::phase(fwd, resp).await
}

/// Sends the request with the pooled client (HTTP/1.1 only where it must be), within
/// `limits.request_timeout` for the answer's head.
async fn send(
    ctx: &ProxyContext,
    fwd: &Forwarding,
    req: Request<ProxyBody>,
) -> Result<Response<Incoming>, UpstreamFailure> {
    let client = if fwd.upgrade.is_some() || ctx.config.http1_only_hosts.matches(&fwd.exchange.host)
    {
        ctx.upstreams.h1()
    } else {
        ctx.upstreams.any()
    };
    let timeout = ctx.config.limits.request_timeout;
    match tokio::time::timeout(timeout, client.request(req)).await {
        Err(_) => Err(UpstreamFailure {
            status: StatusCode::GATEWAY_TIMEOUT,
            kind: "upstream-timeout",
            reason: format!(
                "upstream {} did not answer within {} s (limits.request_timeout)",
                fwd.exchange.authority(),
                timeout.as_secs()
            ),
        }),
        Ok(Err(e)) => {
            let (status, kind, reason) = describe_client_error(&e);
            Err(UpstreamFailure {
                status,
                kind,
                reason,
            })
        }
        Ok(Ok(resp)) => Ok(resp),
    }
}
