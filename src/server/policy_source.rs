//! Fetching `policy.source` (the policy keeps the rules; the server owns the HTTP client):
//! at start and every `refresh_secs`, until the source is no longer in use (a reload dropped
//! it) or airlock stops. A failed pull keeps the last good set; each change of the active
//! set is logged with its rule count and digest.

use std::sync::{Arc, Weak};
use std::time::Duration;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::pipeline::Live;
use crate::pipeline::respond::empty_body;
use crate::policy::remote::{Applied, MAX_DOCUMENT_BYTES, RemoteRules};
use crate::proxy::context::stopping;
use crate::proxy::upstream::{PooledClient, describe_client_error};

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts pulling the policy source of `live` unless `previous` already did (same source).
pub fn keep_remote_fresh(
    live: &Live,
    previous: Option<&Live>,
    client: &PooledClient,
    shutdown: &watch::Receiver<bool>,
    tasks: &TaskTracker,
) {
    let Some(remote) = live.policy.remote() else {
        return;
    };
    if let Some(prev) = previous.and_then(|p| p.policy.remote())
        && Arc::ptr_eq(prev, remote)
    {
        return;
    }
    tasks.spawn(keep_fresh(
        Arc::downgrade(remote),
        client.clone(),
        shutdown.clone(),
    ));
}

async fn keep_fresh(
    remote: Weak<RemoteRules>,
    client: PooledClient,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let Some(rules) = remote.upgrade() else {
            return;
        };
        let refresh = rules.refresh();
        match pull(&rules, &client).await {
            Ok(Applied::Unchanged) => {}
            Ok(Applied::Replaced {
                rules: count,
                digest,
            }) => tracing::info!(
                source = %rules.url(),
                rules = count,
                digest = %digest,
                "policy rules loaded from policy.source"
            ),
            Err(e) if rules.rules().is_some() => tracing::warn!(
                source = %rules.url(),
                error = %e,
                "cannot refresh the policy rules; the last good set stays active"
            ),
            Err(e) => tracing::error!(
                source = %rules.url(),
                error = %e,
                "cannot load the policy rules; every request is blocked until they load"
            ),
        }
        drop(rules);
        tokio::select! {
            _ = tokio::time::sleep(refresh) => {}
            _ = stopping(&mut shutdown) => return,
        }
    }
}

/// One pull, applied to the rules.
async fn pull(rules: &RemoteRules, client: &PooledClient) -> Result<Applied, String> {
    let request = Request::get(rules.url())
        .header(http::header::ACCEPT, "application/json")
        .body(empty_body())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(FETCH_TIMEOUT, client.request(request))
        .await
        .map_err(|_| format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))?
        .map_err(|e| describe_client_error(&e).2)?;
    if response.status() != StatusCode::OK {
        return Err(format!("the server answered {}", response.status()));
    }
    let body = tokio::time::timeout(
        FETCH_TIMEOUT,
        http_body_util::Limited::new(response.into_body(), MAX_DOCUMENT_BYTES).collect(),
    )
    .await
    .map_err(|_| "the body did not arrive in time".to_string())?
    .map_err(|e| format!("cannot read the body: {e}"))?
    .to_bytes();
    rules.apply(&body)
}
