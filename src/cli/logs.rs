//! `airlock logs [--since DUR] [--host GLOB] [--method M] [--status N] [--action A]
//! [--listener L] [--limit N] [--json] [--follow] [--llm]`: flows from the store, which an
//! instance may be writing at the same time (it is read-only here).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::Failure;
use super::usage::parse_duration;
use crate::config::Config;
use crate::record::events::rfc3339;
use crate::record::store::{FlowQuery, Store};

/// How often `--follow` looks for new records.
const FOLLOW_EVERY: Duration = Duration::from_millis(300);

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// Only flows newer than this (30s, 15m, 24h, 7d)
    #[arg(long, value_name = "DUR")]
    since: Option<String>,
    /// Only this host; globs like *.github.com
    #[arg(long, value_name = "GLOB")]
    host: Option<String>,
    /// Only this method (GET, POST, CONNECT, DNS…)
    #[arg(long, value_name = "M")]
    method: Option<String>,
    /// Only this response status
    #[arg(long, value_name = "N")]
    status: Option<u16>,
    /// Only this action: allowed, blocked, redacted, warned, tunneled, failed
    #[arg(long, value_name = "A")]
    action: Option<String>,
    /// Only this listener ("proxy" or a gateway's name)
    #[arg(long, value_name = "L")]
    listener: Option<String>,
    /// How many (the newest, printed oldest first)
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
    /// One JSON record per line, as in logs/flows.jsonl
    #[arg(long)]
    json: bool,
    /// Keep printing new records as they are stored (Ctrl-C ends)
    #[arg(long)]
    follow: bool,
    /// LLM calls (provider, model, tokens, cost, latency) instead of flows
    #[arg(long)]
    llm: bool,
}

const ACTIONS: [&str; 6] = [
    "allowed", "blocked", "redacted", "warned", "tunneled", "failed",
];

pub fn logs(config: &Config, args: &LogsArgs) -> Result<ExitCode, Failure> {
    let since = match &args.since {
        Some(text) => {
            let span = parse_duration(text).ok_or_else(|| {
                Failure::usage(format!(
                    "--since takes a duration such as 30s, 15m, 24h or 7d, got {text:?}"
                ))
            })?;
            Some(rfc3339(chrono::Utc::now() - span))
        }
        None => None,
    };
    if let Some(action) = &args.action
        && !ACTIONS.contains(&action.as_str())
    {
        return Err(Failure::usage(format!(
            "--action must be one of {}, got {action:?}",
            ACTIONS.join(", ")
        )));
    }
    if args.limit == 0 {
        return Err(Failure::usage("--limit must be at least 1"));
    }
    let query = FlowQuery {
        since: since.clone(),
        host_glob: args.host.as_ref().map(|h| h.to_ascii_lowercase()),
        method: args.method.as_ref().map(|m| m.to_ascii_uppercase()),
        status: args.status,
        action: args.action.clone(),
        listener: args.listener.clone(),
    };
    let path = config.store_path();
    let mut table = Table::default();
    let mut after = 0i64;
    let mut first = true;
    loop {
        let rows = match open(&path)? {
            Some(store) => {
                let limit = if first { args.limit } else { usize::MAX };
                let found = if args.llm {
                    store.llm_calls(since.as_deref(), after, limit)
                } else {
                    store.flows(&query, after, limit)
                };
                found.map_err(|e| Failure::runtime(e.to_string()))?
            }
            None => Vec::new(),
        };
        if first && rows.is_empty() && !args.json && !args.follow {
            println!(
                "no {} recorded{}",
                if args.llm { "LLM calls" } else { "flows" },
                if since.is_some() || args.host.is_some() || args.method.is_some() {
                    " that match"
                } else {
                    ""
                }
            );
        }
        let values: Vec<Option<Value>> = rows
            .iter()
            .map(|(_, record)| serde_json::from_str(record).ok())
            .collect();
        // The batch's widths first, so that it prints aligned.
        for v in values.iter().flatten() {
            table.cells(v);
        }
        for ((row, record), value) in rows.iter().zip(&values) {
            after = after.max(*row);
            if args.json {
                println!("{record}");
            } else if let Some(v) = value {
                let line = if args.llm { llm_line(v) } else { table.line(v) };
                println!("{line}");
            }
        }
        first = false;
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(FOLLOW_EVERY);
    }
}

/// The store, if one exists yet (an instance creates it at its first start).
fn open(path: &Path) -> Result<Option<Store>, Failure> {
    if !path.exists() {
        return Ok(None);
    }
    Store::open_read_only(path)
        .map(Some)
        .map_err(|e| Failure::runtime(e.to_string()))
}

/// Aligned columns; widths only grow, so a followed table stays aligned.
#[derive(Default)]
struct Table {
    widths: [usize; 5],
}

impl Table {
    /// The record's aligned cells (listener, method, status, action, duration), widening the
    /// columns to fit them.
    fn cells(&mut self, f: &Value) -> [String; 5] {
        let s = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        let status = f
            .get("status")
            .and_then(Value::as_u64)
            .map_or("-".to_string(), |n| n.to_string());
        let ms = f
            .get("duration_ms")
            .and_then(Value::as_f64)
            .map_or("-".to_string(), |ms| format!("{ms:.0}ms"));
        let cells = [s("listener"), s("method"), status, s("action"), ms];
        for (w, c) in self.widths.iter_mut().zip(&cells) {
            *w = (*w).max(c.chars().count());
        }
        cells
    }

    fn line(&mut self, f: &Value) -> String {
        let s = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        let cells = self.cells(f);
        let when = s("timestamp")
            .replace('T', " ")
            .chars()
            .take(19)
            .collect::<String>();
        let mut line = when;
        for (i, c) in cells.iter().enumerate() {
            line.push_str("  ");
            // Numbers to the right, words to the left.
            if i == 2 || i == 4 {
                line.push_str(&format!("{c:>w$}", w = self.widths[i]));
            } else {
                line.push_str(&format!("{c:<w$}", w = self.widths[i]));
            }
        }
        line.push_str("  ");
        line.push_str(&s("url"));
        if let Some(reason) = f.get("reason").and_then(Value::as_str)
            && !reason.is_empty()
        {
            line.push_str("  (");
            line.push_str(&reason.chars().take(120).collect::<String>());
            line.push(')');
        }
        line
    }
}

fn llm_line(c: &Value) -> String {
    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
    let n = |k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cost = c
        .get("cost_usd")
        .and_then(Value::as_f64)
        .map_or("cost ?".to_string(), |v| format!("${v:.4}"));
    let latency = c
        .get("latency_ms")
        .and_then(Value::as_f64)
        .map_or("-".to_string(), |v| format!("{v:.0}ms"));
    format!(
        "{}  {:<9} {:<32} in {:>7}  out {:>6}  cache {:>6}/{:<6} {:>10}  {:>7}",
        s("timestamp")
            .replace('T', " ")
            .chars()
            .take(19)
            .collect::<String>(),
        s("provider"),
        s("model"),
        n("input_tokens"),
        n("output_tokens"),
        n("cache_read_tokens"),
        n("cache_write_tokens"),
        cost,
        latency
    )
}
