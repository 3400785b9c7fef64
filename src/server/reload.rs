//! Reloading the config file (SIGHUP, or a change of the file on disk): policy, routes,
//! detection, `log`, lockdown. A file that does not load, or whose engines refuse it, is
//! refused and the running settings stay. Open connections and exchanges in flight keep
//! the settings they started with.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use super::lockdown::lockdown_path;
use super::policy_source::keep_remote_fresh;
use crate::config::Config;
use crate::pipeline::Live;
use crate::proxy::ProxyContext;
use crate::proxy::upstream::PooledClient;
use crate::record::events::now_rfc3339;

pub fn reload(
    ctx: &Arc<ProxyContext>,
    internal: &PooledClient,
    shutdown: &watch::Receiver<bool>,
    tasks: &TaskTracker,
) {
    let pipeline = &ctx.pipeline;
    let old = pipeline.live();
    pipeline
        .guards
        .lockdown
        .store(lockdown_path(&old.config).exists(), Ordering::Relaxed);
    let config = match Config::load(old.config.source.as_deref(), &old.config.overrides) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(error = %e, "the new config is refused; the running settings stay");
            return;
        }
    };
    if config.digest == old.config.digest {
        return;
    }
    let live = match Live::build(config.clone(), Some(&old), now_rfc3339()) {
        Ok(live) => live,
        Err(e) => {
            tracing::error!(error = %e, "the new config is refused; the running settings stay");
            return;
        }
    };
    let restart_only = restart_only_changes(&old.config, &config);
    if !restart_only.is_empty() {
        tracing::warn!(
            keys = %restart_only.join(", "),
            "these settings changed but apply only after a restart"
        );
    }
    pipeline.records.set_log_mode(config.log);
    keep_remote_fresh(&live, Some(&old), internal, shutdown, tasks);
    log_routes(&config);
    tracing::info!(
        digest = %config.digest,
        rules = live.policy.rule_count(),
        routes = config.routes.len(),
        "configuration reloaded"
    );
    pipeline.live.store(Arc::new(live));
}

/// Says which credentials the routes inject (where from, never the value).
pub fn log_routes(config: &Config) {
    for route in &config.routes {
        tracing::info!(host = %route.host, header = %route.header, from = %route.origin, "route injects a credential");
    }
}

/// Keys a running instance cannot change (its listeners, TLS, dialer).
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.listen != new.listen {
        keys.push("proxy_host/proxy_port");
    }
    if old.enable_mitm != new.enable_mitm {
        keys.push("enable_mitm");
    }
    if old.data_dir != new.data_dir || old.log_dir != new.log_dir {
        keys.push("data_dir/log_dir");
    }
    if old.log_rotate != new.log_rotate || old.log_keep != new.log_keep {
        keys.push("log_rotate/log_keep");
    }
    if old.upstream_ca != new.upstream_ca {
        keys.push("upstream_ca");
    }
    if old.allow_private != new.allow_private {
        keys.push("allow_private");
    }
    if old.gateways.len() != new.gateways.len()
        || old
            .gateways
            .iter()
            .zip(&new.gateways)
            .any(|(a, b)| a.name != b.name || a.listen != b.listen)
    {
        keys.push("gateways");
    }
    if old.prices != new.prices || old.file_prices != new.file_prices {
        keys.push("prices/prices_file");
    }
    keys
}

/// A file's modification time and length: a change means it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp(Option<(std::time::SystemTime, u64)>);

impl FileStamp {
    fn of(path: Option<&std::path::Path>) -> FileStamp {
        FileStamp(
            path.and_then(|p| std::fs::metadata(p).ok())
                .and_then(|m| Some((m.modified().ok()?, m.len()))),
        )
    }
}

/// Watches the config file for changes. A change counts once the file has stayed the same
/// for a tick (an editor's truncate-then-write is not read half written) and its content
/// differs from the active one (also a change made while airlock was starting).
#[derive(Default)]
pub struct ConfigWatch {
    seen: Option<FileStamp>,
    pending: Option<FileStamp>,
}

impl ConfigWatch {
    /// The file was just (re)loaded: its current state is the one seen.
    pub fn loaded(&mut self, config: &Config) {
        self.seen = Some(FileStamp::of(config.source.as_deref()));
    }

    /// True when the file changed since the last tick settled and now holds new content.
    pub fn changed(&mut self, active: &Config) -> bool {
        let Some(path) = active.source.as_deref() else {
            return false;
        };
        let now = FileStamp::of(Some(path));
        if self.seen.as_ref() == Some(&now) {
            return false;
        }
        if self.pending.as_ref() != Some(&now) {
            self.pending = Some(now);
            return false;
        }
        self.seen = Some(now);
        self.pending = None;
        std::fs::read(path)
            .map(|b| crate::config::sha256_hex(&b) != active.digest)
            .unwrap_or(false)
    }
}
