//! airlock: an egress security proxy for AI agents.
//!
//! The path of a request: `proxy::listener` (listen) → `proxy` / `proxy::tunnel` (identify)
//! → `proxy::intercept` (TLS) → `proxy::forward` + `proxy::upstream` (forward) →
//! `pipeline` (body metering, responses) → `record` (flows, store, stderr). Detection
//! (`detect`) scans both bodies on the way; `llm` accounts LLM calls and reads their
//! answers; `proxy::gateway` is the entry for reverse-proxy listeners.

mod cli;
mod config;
mod detect;
mod diag;
mod instance;
mod llm;
mod pipeline;
mod policy;
mod proxy;
mod record;
mod server;
mod tls;

fn main() -> std::process::ExitCode {
    cli::main()
}
