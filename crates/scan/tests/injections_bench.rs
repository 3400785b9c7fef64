//! The injection evaluation set (`bench/injections/cases/*.yaml`), scanned the way the proxy
//! scans a response body: one JSON line per case with the rules that fired and those that
//! the context judge (`airlock_scan::context`) dismissed. `bench/injections/run` runs this
//! and reports recall per class and false flags, per half of the set.
//!
//! `INJECTION_BENCH_CASES=DIR` reads another directory of cases.
//! `INJECTION_BENCH_MODE=engine` (default) feeds each body to a [`BodyScanner`] as the proxy
//! does today; `normalised` normalises every body first, which is what the proxy does once
//! it asks [`needs_normalization`] instead of `is_ascii` (HTML character references and
//! JSON `\u` escapes are ASCII, so the engine mode skips them).

use std::path::Path;
use std::sync::Arc;

use airlock_scan::body::{BodyScanner, View};
use airlock_scan::context::{self, Context};
use airlock_scan::normalize::{needs_normalization, normalize_for_injection};
use airlock_scan::{Catalogue, Engine, RuleKind};
use serde::Deserialize;

#[derive(Deserialize)]
struct CaseFile {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    id: String,
    class: String,
    label: String,
    format: String,
    body: String,
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| json_str(s)).collect();
    format!("[{}]", inner.join(","))
}

/// (rule index, window, match start, match end) of every injection finding in `body`.
fn scan(
    cat: &Arc<Catalogue>,
    engines: &(Arc<Engine>, Arc<Engine>, Arc<Engine>),
    body: &[u8],
    normalised: bool,
) -> Vec<(usize, Vec<u8>, usize, usize)> {
    let (none, norm, raw) = engines;
    let mut out = Vec::new();
    if normalised {
        let mut text = Vec::new();
        if needs_normalization(body) {
            normalize_for_injection(body, &mut text);
        } else {
            text.extend_from_slice(body);
        }
        for (engine, hay) in [(norm, &text[..]), (raw, body)] {
            let mut found = Vec::new();
            engine.scan(hay, &mut found);
            for f in found {
                out.push((f.rule, hay.to_vec(), f.match_start, f.match_end));
            }
        }
        return out;
    }
    let mut scanner = BodyScanner::new(
        none.clone(),
        Some((norm.clone(), raw.clone())),
        None,
        u64::MAX,
        true,
    );
    scanner.feed(body, true, &mut |f| {
        if matches!(f.view, View::Normalized | View::InjectionRaw)
            && cat.rules[f.local.rule].kind == RuleKind::Injection
        {
            out.push((
                f.local.rule,
                f.window.to_vec(),
                f.local.match_start,
                f.local.match_end,
            ));
        }
    });
    out
}

#[test]
#[ignore = "the evaluation set: run by bench/injections/run"]
fn injection_bench() {
    let dir = std::env::var_os("INJECTION_BENCH_CASES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/injections/cases")
        });
    let normalised = std::env::var("INJECTION_BENCH_MODE").as_deref() == Ok("normalised");
    let cat = Catalogue::builtin();
    let engines = (
        Arc::new(Engine::new(cat.clone(), |_| false)),
        Arc::new(Engine::new(cat.clone(), |r| {
            r.kind == RuleKind::Injection && !r.raw
        })),
        Arc::new(Engine::new(cat.clone(), |r| {
            r.kind == RuleKind::Injection && r.raw
        })),
    );
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("bench/injections/cases")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut lines = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        let file: CaseFile =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for case in file.cases {
            let mut fired = Vec::new();
            let mut dismissed = Vec::new();
            for (rule, window, start, end) in scan(&cat, &engines, case.body.as_bytes(), normalised)
            {
                let r = &cat.rules[rule];
                let name = format!("{}:{}", r.family, r.id);
                match context::judge(r, &window, start, end) {
                    Context::Addressed => fired.push(name),
                    other => dismissed.push(format!("{name}:{other:?}")),
                }
            }
            fired.sort();
            fired.dedup();
            dismissed.sort();
            dismissed.dedup();
            lines.push(format!(
                "{{\"id\":{},\"class\":{},\"label\":{},\"format\":{},\"fired\":{},\"dismissed\":{}}}",
                json_str(&case.id),
                json_str(&case.class),
                json_str(&case.label),
                json_str(&case.format),
                json_list(&fired),
                json_list(&dismissed)
            ));
        }
    }
    let out = lines.join("\n") + "\n";
    match std::env::var("INJECTION_BENCH_OUT") {
        Ok(path) => std::fs::write(path, out).expect("write results"),
        Err(_) => print!("{out}"),
    }
}
