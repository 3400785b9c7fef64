//! `budgets`: request bytes per host per hour. The ledger is charged before a request goes
//! (a request that would pass the budget is blocked) and for what streams on after that.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::net::IpAddr;

use super::Verdict;
use crate::config::Config;
use crate::config::policy::{LlmBudget, LlmScope};

/// Request bytes sent per host in the last hour, for `budgets`.
#[derive(Default)]
pub struct BudgetLedger {
    sent: Mutex<HashMap<String, VecDeque<(Instant, u64)>>>,
}

const BUDGET_WINDOW: Duration = Duration::from_secs(3600);

impl BudgetLedger {
    /// Counts `bytes` towards `host` unless that would pass its budget, which blocks.
    pub fn charge(&self, config: &Config, host: &str, bytes: u64) -> Verdict {
        let Some(budget) = config.budgets.iter().find(|b| b.host == host) else {
            return Verdict::Allow;
        };
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let entries = sent.entry(host.to_string()).or_default();
        let now = Instant::now();
        while entries
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > BUDGET_WINDOW)
        {
            entries.pop_front();
        }
        let used: u64 = entries.iter().map(|(_, n)| n).sum();
        if used + bytes > budget.max_request_bytes_per_hour {
            return Verdict::Block {
                rule: format!("budget:{host}"),
                reason: format!(
                    "policy: the request budget for {host} ({} bytes per hour) would be exceeded: {used} sent in the last hour, this request {bytes}",
                    budget.max_request_bytes_per_hour
                ),
            };
        }
        entries.push_back((now, bytes));
        Verdict::Allow
    }

    /// Counts bytes that already left (the rest of a long body): no verdict, they are gone.
    pub fn add(&self, config: &Config, host: &str, bytes: u64) {
        if bytes == 0 || !config.budgets.iter().any(|b| b.host == host) {
            return;
        }
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.entry(host.to_string())
            .or_default()
            .push_back((Instant::now(), bytes));
    }

    pub fn applies(config: &Config, host: &str) -> bool {
        config.budgets.iter().any(|b| b.host == host)
    }
}

/// LLM spend in the last day, per call: when, from which source, through which listener,
/// what it cost and how many tokens it used. Checked before an LLM call goes upstream.
#[derive(Default)]
pub struct LlmLedger {
    calls: Mutex<VecDeque<SpentCall>>,
}

struct SpentCall {
    at: Instant,
    source: IpAddr,
    listener: String,
    cost: f64,
    tokens: u64,
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

impl LlmLedger {
    /// A finished call's spend.
    pub fn record(&self, source: IpAddr, listener: &str, cost: f64, tokens: u64) {
        self.record_ago(Duration::ZERO, source, listener, cost, tokens);
    }

    /// A call's spend `ago` before now (calls from the store, at start: a restart does not
    /// forgive the day's spend).
    pub fn record_ago(
        &self,
        ago: Duration,
        source: IpAddr,
        listener: &str,
        cost: f64,
        tokens: u64,
    ) {
        let Some(at) = Instant::now().checked_sub(ago) else {
            return;
        };
        if ago > DAY {
            return;
        }
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while calls
            .front()
            .is_some_and(|c| now.duration_since(c.at) > DAY)
        {
            calls.pop_front();
        }
        // Kept in time order: an older call goes before the newer ones.
        let index = calls.partition_point(|c| c.at <= at);
        calls.insert(
            index,
            SpentCall {
                at,
                source,
                listener: listener.to_string(),
                cost,
                tokens,
            },
        );
    }

    /// The first budget a new call from `source` through `listener` would break, with what
    /// it says.
    pub fn check(&self, budgets: &[LlmBudget], source: IpAddr, listener: &str) -> Option<String> {
        if budgets.is_empty() {
            return None;
        }
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for b in budgets {
            let applies = |c: &SpentCall| match &b.scope {
                LlmScope::Source(ip) => c.source == *ip,
                LlmScope::Listener(name) => c.listener == *name,
                LlmScope::Total => true,
            };
            let in_scope = match &b.scope {
                LlmScope::Source(ip) => *ip == source,
                LlmScope::Listener(name) => name == listener,
                LlmScope::Total => true,
            };
            if !in_scope {
                continue;
            }
            let sum = |window: Duration| {
                calls
                    .iter()
                    .filter(|c| now.duration_since(c.at) <= window && applies(c))
                    .fold((0.0, 0u64), |(cost, tokens), c| {
                        (cost + c.cost, tokens + c.tokens)
                    })
            };
            let (hour_cost, hour_tokens) = sum(HOUR);
            let (day_cost, day_tokens) = sum(DAY);
            let scope = match &b.scope {
                LlmScope::Source(ip) => format!("source {ip}"),
                LlmScope::Listener(name) => format!("listener {name}"),
                LlmScope::Total => "all LLM calls".to_string(),
            };
            let over = [
                b.cost_per_hour
                    .filter(|max| hour_cost >= *max)
                    .map(|max| format!("${hour_cost:.4} spent in the last hour (limit ${max})")),
                b.cost_per_day
                    .filter(|max| day_cost >= *max)
                    .map(|max| format!("${day_cost:.4} spent in the last day (limit ${max})")),
                b.tokens_per_hour
                    .filter(|max| hour_tokens >= *max)
                    .map(|max| format!("{hour_tokens} tokens in the last hour (limit {max})")),
                b.tokens_per_day
                    .filter(|max| day_tokens >= *max)
                    .map(|max| format!("{day_tokens} tokens in the last day (limit {max})")),
            ]
            .into_iter()
            .flatten()
            .next();
            if let Some(over) = over {
                return Some(format!("LLM budget for {scope} reached: {over}"));
            }
        }
        None
    }
}
