//! `airlock usage [--since DUR] [--by model|day|provider] [--json]`: LLM tokens and cost
//! from the store.

use std::process::ExitCode;

use super::Failure;
use crate::config::Config;
use crate::record::events::rfc3339;
use crate::record::store::{Store, UsageBy};

pub fn usage(
    config: &Config,
    since: Option<&str>,
    by: &str,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let by = match by {
        "model" => UsageBy::Model,
        "day" => UsageBy::Day,
        "provider" => UsageBy::Provider,
        other => {
            return Err(Failure::usage(format!(
                "--by must be model, day or provider, got {other:?}"
            )));
        }
    };
    let since = match since {
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
    if let Some(why) = config.store_off() {
        return Err(Failure::runtime(why));
    }
    let path = config.store_path();
    let lines = if path.exists() {
        let store = Store::open_read_only(&path).map_err(|e| Failure::runtime(e.to_string()))?;
        store
            .usage(since.as_deref(), by)
            .map_err(|e| Failure::runtime(e.to_string()))?
    } else {
        Vec::new()
    };
    if as_json {
        for line in &lines {
            println!(
                "{}",
                serde_json::to_string(line).expect("usage lines serialize")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if lines.is_empty() {
        println!("no LLM calls recorded");
        return Ok(ExitCode::SUCCESS);
    }
    let heading = match by {
        UsageBy::Model => "model",
        UsageBy::Day => "day",
        UsageBy::Provider => "provider",
    };
    let width = lines
        .iter()
        .map(|l| l.key.len())
        .chain([heading.len()])
        .max()
        .unwrap_or(8);
    println!(
        "{heading:<width$}  {:>6}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12}",
        "calls", "input", "output", "cache read", "cache write", "cost USD"
    );
    for l in &lines {
        println!(
            "{:<width$}  {:>6}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12.6}",
            l.key,
            l.calls,
            l.input_tokens,
            l.output_tokens,
            l.cache_read_tokens,
            l.cache_write_tokens,
            l.cost_usd
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `90s`, `15m`, `24h`, `7d`, `2w` (a bare number is seconds).
pub(super) fn parse_duration(text: &str) -> Option<chrono::Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        "w" => n.checked_mul(604_800)?,
        _ => return None,
    };
    chrono::Duration::try_seconds(secs)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap().num_seconds(), 2);
        assert_eq!(parse_duration("1m").unwrap().num_seconds(), 60);
        assert_eq!(parse_duration("1h").unwrap().num_seconds(), 3600);
        assert_eq!(parse_duration("7d").unwrap().num_seconds(), 604_800);
        assert_eq!(parse_duration("45").unwrap().num_seconds(), 45);
        assert!(parse_duration("1y").is_none());
        assert!(parse_duration("h").is_none());
    }
}
