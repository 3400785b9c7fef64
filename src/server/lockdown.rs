//! The kill switch's file: lockdown left on by `airlock lockdown on` or SIGUSR1 stays on
//! across a restart.

use std::sync::atomic::Ordering;

use crate::config::Config;
use crate::proxy::ProxyContext;

/// SIGUSR1: the kill switch, kept on across a restart by its file.
pub fn lockdown_on(ctx: &ProxyContext, config: &Config) {
    ctx.pipeline.guards.lockdown.store(true, Ordering::Relaxed);
    if let Err(e) = std::fs::write(lockdown_path(config), b"on\n") {
        tracing::warn!(error = %e, "cannot write the lockdown file; lockdown is on until airlock restarts");
    }
    tracing::warn!(
        "SIGUSR1: lockdown is on; only lockdown_allow hosts are reachable (airlock lockdown off lifts it)"
    );
}

/// Where `airlock lockdown on` and SIGUSR1 leave lockdown on (it survives a restart).
pub fn lockdown_path(config: &Config) -> std::path::PathBuf {
    config.lockdown_path()
}
