//! `policy.source`: rules a fleet shares, pulled over HTTP(S) at start and every
//! `refresh_secs`. A failed pull keeps the last good set; until one has loaded, everything is
//! blocked (see `Policy::decide`). Each change of the active set is logged with its rule
//! count and digest.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::{Request, StatusCode};
use http_body_util::BodyExt;

use super::Rule;
use crate::config::policy::{RawRule, check_rules};
use crate::pipeline::respond::empty_body;
use crate::proxy::upstream::PooledClient;

/// The largest rule document accepted.
const MAX_BYTES: usize = 1 << 20;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    rules: Vec<RawRule>,
}

pub struct RemoteRules {
    url: String,
    refresh: Duration,
    rules: ArcSwapOption<Vec<Rule>>,
    count: AtomicUsize,
    digest: Mutex<Option<String>>,
}

impl RemoteRules {
    pub fn new(url: String, refresh: Duration) -> Self {
        RemoteRules {
            url,
            refresh,
            rules: ArcSwapOption::empty(),
            count: AtomicUsize::new(0),
            digest: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The active set; `None` until one has loaded.
    pub fn rules(&self) -> Option<Arc<Vec<Rule>>> {
        self.rules.load_full()
    }

    pub fn rule_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// One pull. A set that differs from the active one replaces it.
    async fn pull(&self, client: &PooledClient) -> Result<(), String> {
        let request = Request::get(&self.url)
            .header(http::header::ACCEPT, "application/json")
            .body(empty_body())
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(FETCH_TIMEOUT, client.request(request))
            .await
            .map_err(|_| format!("no answer within {} s", FETCH_TIMEOUT.as_secs()))?
            .map_err(|e| crate::proxy::upstream::describe_client_error(&e).2)?;
        if response.status() != StatusCode::OK {
            return Err(format!("the server answered {}", response.status()));
        }
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            http_body_util::Limited::new(response.into_body(), MAX_BYTES).collect(),
        )
        .await
        .map_err(|_| "the body did not arrive in time".to_string())?
        .map_err(|e| format!("cannot read the body: {e}"))?
        .to_bytes();
        let doc: Document = serde_json::from_slice(&body)
            .map_err(|e| format!("not a {{\"rules\": [...]}} document: {e}"))?;
        check_rules(&doc.rules).map_err(|(i, m)| format!("rules[{i}]: {m}"))?;
        let digest = crate::config::sha256_hex(&body);
        {
            let mut current = self.digest.lock().unwrap_or_else(|p| p.into_inner());
            if current.as_deref() == Some(digest.as_str()) {
                return Ok(());
            }
            let compiled: Vec<Rule> = doc
                .rules
                .iter()
                .map(Rule::compile)
                .collect::<Result<_, _>>()?;
            self.count.store(compiled.len(), Ordering::Relaxed);
            self.rules.store(Some(Arc::new(compiled)));
            *current = Some(digest.clone());
        }
        tracing::info!(
            source = %self.url,
            rules = doc.rules.len(),
            digest = %digest,
            "policy rules loaded from policy.source"
        );
        Ok(())
    }
}

/// Pulls `remote` now and every `refresh` until it is no longer in use (a reload dropped
/// it) or airlock stops.
pub async fn keep_fresh(
    remote: Weak<RemoteRules>,
    client: PooledClient,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let Some(rules) = remote.upgrade() else {
            return;
        };
        let refresh = rules.refresh;
        if let Err(e) = rules.pull(&client).await {
            if rules.rules().is_some() {
                tracing::warn!(source = %rules.url, error = %e, "cannot refresh the policy rules; the last good set stays active");
            } else {
                tracing::error!(source = %rules.url, error = %e, "cannot load the policy rules; every request is blocked until they load");
            }
        }
        drop(rules);
        tokio::select! {
            _ = tokio::time::sleep(refresh) => {}
            _ = crate::proxy::stopping(&mut shutdown) => return,
        }
    }
}
