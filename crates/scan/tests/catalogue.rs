//! The built-in catalogue, reviewed like code: every rule's positive examples are found by
//! the engine exactly as it runs in the proxy (keyword prefilter, windows, entropy floor,
//! checksum), its negatives are not, and no rule fires on the hard negatives.

use std::sync::Arc;

use airlock_scan::normalize::normalize_for_injection;
use airlock_scan::{Catalogue, Engine, RuleKind};

const SECRETS: &str = include_str!("../../../rules/secrets.yaml");
const INJECTIONS: &str = include_str!("../../../rules/injections.yaml");

fn catalogue() -> Arc<Catalogue> {
    Arc::new(Catalogue::from_yaml(SECRETS, INJECTIONS).expect("the catalogue loads"))
}

/// What the proxy would find in `text` for rules of `kind` (injections on normalised text).
fn found(cat: &Arc<Catalogue>, text: &str, kind: RuleKind) -> Vec<usize> {
    let mut out = Vec::new();
    match kind {
        RuleKind::Secret => {
            let e = Engine::new(cat.clone(), |r| r.kind == RuleKind::Secret);
            e.scan(text.as_bytes(), &mut out);
        }
        RuleKind::Injection => {
            let mut norm = Vec::new();
            normalize_for_injection(text.as_bytes(), &mut norm);
            Engine::new(cat.clone(), |r| r.kind == RuleKind::Injection && !r.raw)
                .scan(&norm, &mut out);
            Engine::new(cat.clone(), |r| r.kind == RuleKind::Injection && r.raw)
                .scan(text.as_bytes(), &mut out);
        }
    }
    out.into_iter().map(|f| f.rule).collect()
}

/// What rule `index` alone finds in `text` (so a catch-all is tested on its own examples).
fn found_by(cat: &Arc<Catalogue>, text: &str, index: usize) -> bool {
    let rule = &cat.rules[index];
    let engine = Engine::new(cat.clone(), |r| std::ptr::eq(r, rule));
    let mut out = Vec::new();
    if rule.kind == RuleKind::Injection && !rule.raw {
        let mut norm = Vec::new();
        normalize_for_injection(text.as_bytes(), &mut norm);
        engine.scan(&norm, &mut out);
    } else {
        engine.scan(text.as_bytes(), &mut out);
    }
    out.iter().any(|f| f.rule == index)
}

#[test]
fn every_rule_finds_its_positives_and_not_its_negatives() {
    let cat = catalogue();
    let mut failures = Vec::new();
    for (i, rule) in cat.rules.iter().enumerate() {
        if rule.examples.positive.is_empty() || rule.examples.negative.is_empty() {
            failures.push(format!("{}: needs positive and negative examples", rule.id));
        }
        for p in &rule.examples.positive {
            if !found_by(&cat, p, i) {
                failures.push(format!("{}: positive not found: {p:?}", rule.id));
            }
        }
        for n in &rule.examples.negative {
            if found_by(&cat, n, i) {
                failures.push(format!("{}: negative fired: {n:?}", rule.id));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn hard_negatives_fire_nothing() {
    let cat = catalogue();
    let hard = [
        "id: 123e4567-e89b-12d3-a456-426614174000",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "md5 d41d8cd98f00b204e9800998ecf8427e",
        "data: dGhpcyBpcyBqdXN0IHNvbWUgcmFuZG9tIGJhc2U2NCB0ZXh0IG9mIGEga2V5IGxlbmd0aA==",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "export OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "Authorization: Bearer YOUR_API_KEY",
        "token: <your-token>",
        "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "rm -rf ./build",
        "rm -rf node_modules && npm ci",
    ];
    let mut failures = Vec::new();
    for text in hard {
        for kind in [RuleKind::Secret, RuleKind::Injection] {
            for i in found(&cat, text, kind) {
                failures.push(format!("{} fired on {text:?}", cat.rules[i].id));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_catalogue_covers_what_the_issue_names() {
    let cat = catalogue();
    let secrets = cat
        .rules
        .iter()
        .filter(|r| r.kind == RuleKind::Secret)
        .count();
    assert!(secrets >= 80, "only {secrets} credential rules");
    for family in [
        "ai_api_key",
        "aws_access_key",
        "private_key_pem",
        "ssh_key_file",
        "unix_sensitive",
        "dotenv_file",
        "vcs_token",
        "pipe_to_shell",
        "shell_exec",
        "reverse_shell",
        "destructive_rm",
        "ssh_key_inject",
        "prompt_injection",
    ] {
        assert!(
            cat.rules.iter().any(|r| r.family == family),
            "no rule in family {family}"
        );
    }
}

#[test]
fn a_specific_rule_silences_the_catch_all_on_the_same_bytes() {
    let cat = catalogue();
    let gh = cat
        .rules
        .iter()
        .position(|r| r.id == "github_pat_classic")
        .expect("rule");
    let token = cat.rules[gh]
        .examples
        .positive
        .iter()
        .find_map(|p| {
            let start = p.find("ghp_")?;
            Some(p[start..start + 40].to_string())
        })
        .expect("a ghp_ example");
    let text = format!("GITHUB_TOKEN={token}\n");
    let found = found(&cat, &text, RuleKind::Secret);
    assert_eq!(
        found,
        vec![gh],
        "{:?}",
        found.iter().map(|&i| &cat.rules[i].id).collect::<Vec<_>>()
    );
}
