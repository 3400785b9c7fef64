//! `airlock status [--json]`

use std::process::ExitCode;

use serde_json::Value;

use super::Failure;
use crate::admin::status::status_object;
use crate::config::Config;
use crate::instance::{Probe, probe};

pub fn status(config: &Config, as_json: bool) -> Result<ExitCode, Failure> {
    // The running instance's own answer when its admin server is up, so that `status` and
    // the API agree; the same computation locally otherwise.
    let out = from_admin(config).unwrap_or_else(|| status_object(config, None));
    if let (_, Some(warning)) = crate::record::tail_records(&config.audit_file("threats"), 0) {
        eprintln!("airlock: warning: {warning}");
    }
    let running = out["running"].as_bool().unwrap_or(false);
    let pid = out["pid"].as_u64();
    let threats: Vec<Value> = out["last_threats"].as_array().cloned().unwrap_or_default();
    let state = match probe(&config.data_dir) {
        Probe::Running { state, .. } => state,
        Probe::Stopped => None,
    };
    let count = |k: &str| out["counters"][k].as_u64().unwrap_or(0);
    let counters = (
        count("requests"),
        count("blocked"),
        count("failed"),
        count("threats"),
    );
    let uptime = out["uptime_secs"].as_i64();
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
            if let Some(n) = out["pending"].as_u64().filter(|n| *n > 0) {
                println!(
                    "  pending      {n} held by ask rules (see the dashboard; airlock approve ID / airlock deny ID)"
                );
            }
        }
        if out["audit"]["writable"] == Value::Bool(false) {
            println!(
                "  AUDIT LOG    cannot be written: {}",
                out["audit"]["error"].as_str().unwrap_or("?")
            );
        }
        if let Some(lost) = out["audit"]["records_lost"].as_u64().filter(|n| *n > 0) {
            println!("  AUDIT LOG    {lost} records lost while it could not be written");
        }
        if out["store"]["writable"] == Value::Bool(false) {
            println!(
                "  STORE        cannot be written: {} (the JSONL audit files still get every record)",
                out["store"]["error"].as_str().unwrap_or("?")
            );
        }
        if let Some(n) = out["store"]["records_dropped"].as_u64().filter(|n| *n > 0) {
            println!("  store        {n} records not stored (they are in the JSONL audit files)");
        }
        for (key, name) in [("otlp", "export      "), ("alerts", "alerts      ")] {
            let e = &out["export"][key];
            if e.is_object() {
                let n = |k: &str| e[k].as_u64().unwrap_or(0);
                println!(
                    "  {name} {} {}: {} sent, {} dropped, {} failed",
                    if key == "otlp" {
                        "OTLP logs to"
                    } else {
                        "webhook"
                    },
                    e["destination"].as_str().unwrap_or("?"),
                    n("sent"),
                    n("dropped"),
                    n("failed")
                );
            }
        }
        let limit = |k: &str| out["limits"][k].as_u64().unwrap_or(0);
        if out["limits"].is_object() {
            println!(
                "  limits       {} connections, {} KiB request heads; timeouts (s): idle {}, header {}, connect {}, request {}",
                limit("max_connections"),
                limit("header_bytes") / 1024,
                limit("idle_timeout"),
                limit("header_timeout"),
                limit("connect_timeout"),
                limit("request_timeout")
            );
        }
        println!("  data         {}", config.data_dir.display());
    }
    if let Some(n) = out["counters"]["audit_files_deleted"]
        .as_u64()
        .filter(|&n| n > 0)
    {
        println!("  audit logs   {n} rotated file(s) deleted by log_keep");
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

/// `/api/status` of the running instance, when its admin server answers on loopback.
fn from_admin(config: &Config) -> Option<Value> {
    let answer = super::admin_api::call(config, "GET", "/api/status").ok()?;
    (answer.status == 200).then_some(answer.body)
}
