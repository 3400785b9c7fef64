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
    /// LLM calls as transcripts: what was asked and answered, tokens, cost, latency and
    /// detections per call (a line per call when `store.conversations` is off)
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
    if let Some(why) = config.store_off() {
        return Err(Failure::runtime(why));
    }
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
        let store = if args.llm { open(&path)? } else { None };
        for ((row, record), value) in rows.iter().zip(&values) {
            after = after.max(*row);
            let turn = match (&store, value) {
                (Some(store), Some(v)) => turn_of(store, v),
                _ => None,
            };
            if args.json {
                match (value, turn) {
                    (Some(v), Some(turn)) => {
                        let mut v = v.clone();
                        if let Some(o) = v.as_object_mut() {
                            o.insert("turn".into(), turn);
                        }
                        println!("{v}");
                    }
                    _ => println!("{record}"),
                }
            } else if let Some(v) = value {
                if args.llm {
                    println!("{}", llm_line(v));
                    if let Some(turn) = turn {
                        print!("{}", transcript(&turn));
                    }
                } else {
                    println!("{}", table.line(v));
                }
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

/// The turn of a call record, with its exchange's threats, when a transcript was kept.
fn turn_of(store: &Store, call: &Value) -> Option<Value> {
    let session = call.get("session")?.as_str()?;
    let flow = call.get("flow_id")?.as_str()?;
    let row = store.turn_of(session, flow).ok()??;
    crate::record::conversations::with_threats(store, std::iter::once(row.as_str()))
        .ok()?
        .pop()
}

/// A turn for a terminal: what this call added to its session, the answer, and what
/// detection found, indented under the call's line.
fn transcript(turn: &Value) -> String {
    let mut out = String::new();
    let s = |k: &str| turn.get(k).and_then(Value::as_str).unwrap_or("");
    let n = |k: &str| turn.get(k).and_then(Value::as_u64).unwrap_or(0);
    out.push_str(&format!(
        "  session {}  messages {}..{}\n",
        s("session"),
        n("messages_from") + 1,
        n("messages_total")
    ));
    if let Some(system) = turn.get("system").and_then(Value::as_str) {
        push_text(&mut out, "system", system);
    }
    if let Some(tools) = turn.get("tools").and_then(Value::as_array) {
        let names: Vec<&str> = tools.iter().filter_map(Value::as_str).collect();
        out.push_str(&format!("  tools: {}\n", names.join(", ")));
    }
    if turn.get("prompt_unreadable").and_then(Value::as_bool) == Some(true) {
        out.push_str("  (the request was too large to keep: no messages)\n");
    }
    for m in turn
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("?");
        push_parts(&mut out, role, m.get("parts"));
    }
    push_parts(&mut out, "answer", turn.get("answer"));
    for t in turn
        .get("threats")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let f = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("-");
        out.push_str(&format!(
            "  ! {} {} {} ({}): {}\n",
            f("threat_type"),
            f("pattern"),
            f("action"),
            f("direction"),
            f("snippet")
        ));
    }
    out
}

fn push_parts(out: &mut String, who: &str, parts: Option<&Value>) {
    for p in parts.and_then(Value::as_array).into_iter().flatten() {
        let kind = p.get("kind").and_then(Value::as_str).unwrap_or("text");
        let text = p.get("text").and_then(Value::as_str).unwrap_or("");
        let label = match (kind, p.get("name").and_then(Value::as_str)) {
            ("text", _) => who.to_string(),
            (k, Some(name)) => format!("{who} {k} {name}"),
            (k, None) => format!("{who} {k}"),
        };
        push_text(out, &label, text);
    }
}

fn push_text(out: &mut String, label: &str, text: &str) {
    let mut lines = text.lines();
    out.push_str(&format!("  {label}: {}\n", lines.next().unwrap_or("")));
    for line in lines {
        out.push_str(&format!("    {line}\n"));
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
