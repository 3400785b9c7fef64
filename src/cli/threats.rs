//! `airlock threats [--limit N] [--json]`

use std::process::ExitCode;

use serde_json::Value;

use super::Failure;
use crate::config::Config;
use crate::record::tail_records;

pub fn threats(config: &Config, limit: usize, as_json: bool) -> Result<ExitCode, Failure> {
    let (lines, torn) = tail_records(&config.audit_file("threats"), limit);
    if let Some(warning) = torn {
        eprintln!("airlock: warning: {warning}");
    }
    if lines.is_empty() && !as_json {
        println!("no threats recorded");
    }
    for line in lines {
        if as_json {
            println!("{line}");
        } else if let Ok(v) = serde_json::from_str::<Value>(&line) {
            println!("{}", one_line(&v));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn one_line(t: &Value) -> String {
    let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
    format!(
        "{}  {:<8} {:<9} {:<24} {} {} {}",
        s("timestamp"),
        s("action"),
        s("threat_type"),
        s("pattern"),
        s("dest"),
        s("method"),
        s("path")
    )
}
