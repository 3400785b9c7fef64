//! The status object (SPEC 6b): what `/api/status` and `airlock status --json` print.

use serde_json::{Value, json};

use crate::config::Config;
use crate::instance::{Probe, probe};
use crate::record::tail_lines;

/// Running or not, where, since when, the counters since start, the last 5 threats.
/// `live`: the running instance's own counters (requests, blocked, failed, threats), which
/// the admin server has in memory; otherwise they are counted in the store.
pub fn status_object(config: &Config, live: Option<(u64, u64, u64, u64)>) -> Value {
    let threats: Vec<Value> = tail_lines(&config.audit_file("threats"), 5)
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let (running, pid, state) = match probe(&config.data_dir) {
        Probe::Running { pid, state } => (true, Some(pid), state),
        Probe::Stopped => (false, None, None),
    };
    // Live counts from the store (the state file is refreshed only every quarter second).
    let live = live.or_else(|| {
        state
            .as_ref()
            .filter(|_| config.store.enabled)
            .and_then(|s| {
                crate::record::store::Store::open_read_only(&config.store_path())
                    .and_then(|store| store.counts_since(&s.started_at))
                    .ok()
            })
    });
    let counters = match (&state, live) {
        (_, Some((requests, blocked, failed, threats))) => (requests, blocked, failed, threats),
        (Some(s), None) => (s.requests, s.blocked, s.failed, s.threats),
        (None, None) => (0, 0, 0, 0),
    };
    let uptime = state
        .as_ref()
        .map(|s| (chrono::Utc::now().timestamp() - s.started_unix).max(0));
    json!({
        "running": running,
        "pid": pid,
        "listen": state.as_ref().map(|s| s.listen.clone()),
        "admin": state.as_ref().and_then(|s| s.admin.clone()),
        "uptime_secs": uptime,
        "config_digest": state.as_ref().map(|s| s.config_digest.clone()),
        "config_file": state.as_ref().and_then(|s| s.config_file.clone()),
        "config_loaded_at": state.as_ref().map(|s| s.config_loaded_at.clone()),
        "mitm": state.as_ref().map(|s| s.mitm),
        "lockdown": state.as_ref().is_some_and(|s| s.lockdown) || (running && config.lockdown_path().exists()),
        "data_dir": config.data_dir.display().to_string(),
        "counters": {
            "requests": counters.0,
            "blocked": counters.1,
            "failed": counters.2,
            "threats": counters.3,
            // Kept in the log directory, so it counts across restarts.
            "audit_files_deleted": crate::record::chain::ChainHead::load(&config.log_dir)
                .ok()
                .flatten()
                .map_or(0, |h| h.deleted_files),
        },
        "last_threats": threats,
        // The running instance's limits when the admin server answers (its config), else
        // the ones this config would start with.
        "limits": {
            "max_connections": config.limits.max_connections,
            "header_bytes": config.limits.header_bytes,
            "idle_timeout": config.limits.idle_timeout.as_secs(),
            "header_timeout": config.limits.header_timeout.as_secs(),
            "connect_timeout": config.limits.connect_timeout.as_secs(),
            "request_timeout": config.limits.request_timeout.as_secs(),
        },
    })
}
