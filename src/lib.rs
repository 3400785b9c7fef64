//! airlock: an egress security proxy for AI agents.
//!
//! The path of a request, and the modules along it (imports run one way, from the top of
//! this list down; `scripts/check-layers` checks it):
//!
//! - `cli` — the commands; `jail` — the network namespace `run --jail` puts a command in;
//!   `server` — start, reload, signals, the policy source's fetching;
//! - `proxy` — listen (`listener`, `transparent` and `dns` for a jail), identify (`identify`,
//!   `tunnel`, `gateway`, `socket_owner`), intercept TLS
//!   (`intercept`), forward (`forward`, `upstream`) and the upgrade bridge (`upgrade`,
//!   `websocket`);
//! - `pipeline` — one exchange: its request phase, its response phase, the taps on its
//!   bodies, and `decide`, the one place a request is refused and the refusal written down;
//! - the judges: `detect` (findings and masks) and `policy` (verdicts, routes, budgets, the
//!   destination guard); beside them `record` (flows, threats, LLM calls → JSONL, SQLite,
//!   stderr) and `tls` (the CA, leaf certificates, roots);
//! - `config` — values, validated; it imports nothing above it.

pub mod admin;
pub mod cli;
pub mod config;
pub mod detect;
pub mod diag;
pub mod instance;
pub mod jail;
pub mod pipeline;
pub mod policy;
pub mod proxy;
pub mod record;
pub mod server;
pub mod tls;
