//! `airlock rules [--json]`: the built-in detection catalogue (ids for `disabled_patterns`).

use std::process::ExitCode;

use airlock_scan::RuleKind;

use super::Failure;

pub fn rules(as_json: bool) -> Result<ExitCode, Failure> {
    let catalogue = airlock_scan::Catalogue::builtin();
    for r in &catalogue.rules {
        let kind = match r.kind {
            RuleKind::Secret => "secret",
            RuleKind::Injection => "injection",
        };
        if as_json {
            println!(
                "{}",
                serde_json::json!({
                    "id": r.id,
                    "name": r.name,
                    "family": r.family,
                    "kind": kind,
                    "issuer_hosts": r.issuer_hosts,
                })
            );
        } else {
            println!("{:<32} {:<24} {:<10} {}", r.id, r.family, kind, r.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
