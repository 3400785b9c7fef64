//! `airlock approve ID`, `airlock deny ID`: a person's answer to a request an `ask` policy
//! rule holds, sent to the running instance's admin API.

use std::process::ExitCode;

use super::Failure;
use super::admin_api::{self, AdminCallError};
use crate::config::Config;

pub fn decide(config: &Config, id: &str, approve: bool) -> Result<ExitCode, Failure> {
    let verb = if approve { "approve" } else { "deny" };
    let id = id.trim();
    if id.is_empty() {
        return Err(Failure::usage(format!(
            "airlock {verb} needs the id of a held request (GET /api/pending on the admin server, or the dashboard, lists them)"
        )));
    }
    let path = format!("/api/pending/{}/{verb}", admin_api::path_segment(id));
    let answer = admin_api::call(config, "POST", &path)
        .map_err(|e: AdminCallError| Failure::runtime(format!("cannot {verb} {id}: {e}")))?;
    let body = &answer.body;
    let text = |k: &str| body[k].as_str().unwrap_or("?").to_string();
    match answer.status {
        200 => {
            println!(
                "{} {} {} {} (rule {})",
                text("decision"),
                text("id"),
                text("method"),
                text("url"),
                text("rule")
            );
            Ok(ExitCode::SUCCESS)
        }
        404 => Err(Failure::runtime(format!(
            "no request is held with id {id} (it was decided, it timed out, or its client left); the held ones are listed at http://{addr}/api/pending and on the dashboard at http://{addr}/",
            addr = answer.addr
        ))),
        status => Err(Failure::runtime(format!(
            "the admin server at {} refused to {verb} {id} ({status}): {}",
            answer.addr,
            body["detail"].as_str().unwrap_or("no detail given")
        ))),
    }
}
