//! `airlock status [--json]`

use std::process::ExitCode;

use serde_json::{Value, json};

use super::Failure;
use crate::config::Config;
use crate::instance::{Probe, probe};
use crate::record::tail_lines;

pub fn status(config: &Config, as_json: bool) -> Result<ExitCode, Failure> {
    let threats: Vec<Value> = tail_lines(&config.log_dir.join("threats.jsonl"), 5)
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let (running, pid, state) = match probe(&config.data_dir) {
        Probe::Running { pid, state } => (true, Some(pid), state),
        Probe::Stopped => (false, None, None),
    };
    // Live counts from the store (the state file is refreshed only every quarter second).
    let live = state.as_ref().and_then(|s| {
        crate::record::store::Store::open_read_only(&config.store_path())
            .and_then(|store| store.counts_since(&s.started_at))
            .ok()
    });
    let counters = match (&state, live) {
        (_, Some((requests, blocked, failed, threats))) => (requests, blocked, failed, threats),
        (Some(s), None) => (s.requests, s.blocked, s.failed, s.threats),
        (None, None) => (0, 0, 0, 0),
    };
    let uptime = state
        .as_ref()
        .map(|s| (chrono::Utc::now().timestamp() - s.started_unix).max(0));
    let out = json!({
        "running": running,
        "pid": pid,
        "listen": state.as_ref().map(|s| s.listen.clone()),
        "uptime_secs": uptime,
        "config_digest": state.as_ref().map(|s| s.config_digest.clone()),
        "config_file": state.as_ref().and_then(|s| s.config_file.clone()),
        "config_loaded_at": state.as_ref().map(|s| s.config_loaded_at.clone()),
        "mitm": state.as_ref().map(|s| s.mitm),
        "lockdown": state.as_ref().is_some_and(|s| s.lockdown) || (running && crate::server::lockdown_path(config).exists()),
        "data_dir": config.data_dir.display().to_string(),
        "counters": {
            "requests": counters.0,
            "blocked": counters.1,
            "failed": counters.2,
            "threats": counters.3,
        },
        "last_threats": threats,
    });
    if as_json {
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    if !running {
        println!(
            "airlock is stopped (data directory {})",
            config.data_dir.display()
        );
    } else {
        println!("airlock is running");
        println!("  pid          {}", pid.unwrap_or(0));
        if let Some(s) = &state {
            println!("  listen       {}", s.listen);
            println!("  uptime       {}", human_duration(uptime.unwrap_or(0)));
            println!(
                "  interception {}",
                if s.mitm { "on" } else { "off (blind tunnels)" }
            );
            println!(
                "  config       {} (sha256 {}, loaded {})",
                s.config_file.as_deref().unwrap_or("built-in defaults"),
                &s.config_digest[..12.min(s.config_digest.len())],
                s.config_loaded_at
            );
            if s.lockdown {
                println!(
                    "  LOCKDOWN     on: only lockdown_allow hosts are reachable (airlock lockdown off)"
                );
            }
            println!(
                "  requests     {} ({} blocked, {} failed), {} threats",
                counters.0, counters.1, counters.2, counters.3
            );
        }
        println!("  data         {}", config.data_dir.display());
    }
    if threats.is_empty() {
        println!("  no threats recorded");
    } else {
        println!("  last threats:");
        for t in &threats {
            println!("    {}", super::threats::one_line(t));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn human_duration(secs: i64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h {m}m")
    } else if h > 0 {
        format!("{h}h {m}m {s}s")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}
