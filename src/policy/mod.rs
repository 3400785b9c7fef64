//! Decide what may leave, before anything is sent: policy rules in CEL (SPEC 7) with the
//! `allow_hosts` / `deny_hosts` shorthand and a remote rule source, the kill switch
//! (lockdown), per-host byte budgets, route path lists (SPEC 8) and the destination guard
//! (`destination`). Each answers with a [`Verdict`]; `pipeline::decide` turns a block into
//! the 403, the POLICY threat and the `egress_block` line. Nothing here knows bodies,
//! trackers or records.

mod budget;
pub mod cel;
pub mod destination;
#[cfg(test)]
mod differential;
mod engine;
mod facts;
mod native;
pub mod remote;
mod routes;
mod rule;
mod verdict;

pub use budget::{BudgetLedger, LlmLedger};
pub use engine::Policy;
pub use facts::Facts;
pub use routes::{route_for, route_path_verdict};
pub use rule::{Rule, compile_rules};
pub use verdict::{Verdict, lockdown_verdict};
