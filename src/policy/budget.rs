//! `budgets`: request bytes per host per hour. The ledger is charged before a request goes
//! (a request that would pass the budget is blocked) and for what streams on after that.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Verdict;
use crate::config::Config;

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
