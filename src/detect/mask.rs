//! What a record may show of a finding: snippets and previews with every credential masked
//! (a secret keeps at most its rule's literal prefix, `sk-ant-api03-[REDACTED]`).

use airlock_scan::{Finding, Rule, RuleKind};

use super::Detector;

/// Up to 200 characters of context around `finding` in `text`, with every finding inside it
/// masked. A secret keeps at most its rule's literal prefix (`sk-ant-api03-[REDACTED]`),
/// which names the kind of key and nothing of the key.
pub fn snippet(detector: &Detector, text: &[u8], finding: &Finding, others: &[Finding]) -> String {
    const WIDTH: usize = 200;
    let context = (WIDTH / 2).saturating_sub(20);
    let lo = finding.match_start.saturating_sub(context);
    let hi = (finding.match_end + context).min(text.len());
    // Credentials are masked; an injection is shown as it arrived (it is the evidence).
    let mut masks: Vec<&Finding> = others
        .iter()
        .chain(std::iter::once(finding))
        .filter(|f| f.start < hi && f.end > lo)
        .filter(|f| detector.rule(f.rule).kind == RuleKind::Secret)
        .collect();
    masks.sort_by_key(|f| f.start);
    let mut out: Vec<u8> = Vec::with_capacity(WIDTH);
    let mut pos = lo;
    for f in masks {
        let start = f.start.max(lo);
        if start < pos {
            continue;
        }
        out.extend_from_slice(&text[pos..start]);
        out.extend_from_slice(masked(detector.rule(f.rule), &text[f.start..f.end]).as_bytes());
        pos = f.end.min(hi).max(start);
    }
    if pos < hi {
        out.extend_from_slice(&text[pos..hi]);
    }
    let mut s: String = String::from_utf8_lossy(&out)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    // Belt and braces: the secret itself may never be in a snippet, whatever the windowing did.
    let secret = String::from_utf8_lossy(&text[finding.start..finding.end]).into_owned();
    if !secret.is_empty() && detector.rule(finding.rule).kind == RuleKind::Secret {
        s = s.replace(&secret, "[REDACTED]");
    }
    if s.chars().count() > WIDTH {
        s = s.chars().take(WIDTH).collect();
    }
    s
}

/// The masked form of one secret: the rule's keyword prefix, if the secret starts with it.
pub fn masked(rule: &Rule, secret: &[u8]) -> String {
    let prefix = rule
        .keywords
        .iter()
        .filter(|k| {
            secret.len() > k.len() + 8 && secret[..k.len()].eq_ignore_ascii_case(k.as_bytes())
        })
        .max_by_key(|k| k.len());
    match prefix {
        Some(p) => format!("{}[REDACTED]", String::from_utf8_lossy(&secret[..p.len()])),
        None => "[REDACTED]".to_string(),
    }
}

/// A body preview for the level-2 events with every credential masked. When a credential
/// is only visible after decoding (escaped, encoded), the preview is withheld entirely:
/// its masked form could not be shown without decoding the body for the log.
pub fn mask_preview(detector: &Detector, preview: &[u8]) -> String {
    let mut found = detector.find_secrets(preview);
    let mut hidden = false;
    let mut json = Vec::new();
    airlock_scan::decode::JsonUnescaper::default().feed(preview, &mut json);
    let mut pct = Vec::new();
    airlock_scan::decode::PercentDecoder::default().feed(preview, &mut pct);
    for view in [&json, &pct] {
        for f in detector.find_secrets(view) {
            let secret = &view[f.start..f.end];
            if !found.iter().any(|r| &preview[r.start..r.end] == secret) {
                hidden = true;
            }
        }
    }
    airlock_scan::decode::BlobDecoder::default().feed(preview, true, &mut |_, blob| {
        if !detector.find_secrets(blob).is_empty() {
            hidden = true;
        }
    });
    if hidden {
        return "[body withheld: it holds a credential in encoded form]".to_string();
    }
    found.sort_by_key(|f| f.start);
    mask_found(detector, preview, &found)
}

/// `text` with each of `found` (sorted or not) replaced by its masked form.
pub fn mask_found(detector: &Detector, text: &[u8], found: &[Finding]) -> String {
    let mut found: Vec<&Finding> = found.iter().collect();
    found.sort_by_key(|f| f.start);
    let mut out = Vec::with_capacity(text.len());
    let mut pos = 0;
    for f in found {
        if f.start < pos {
            continue;
        }
        out.extend_from_slice(&text[pos..f.start]);
        out.extend_from_slice(masked(detector.rule(f.rule), &text[f.start..f.end]).as_bytes());
        pos = f.end;
    }
    out.extend_from_slice(&text[pos..]);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, OnceLock};

    use super::*;
    use crate::config::DetectSettings;

    const GITHUB: &str = "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";
    const ANTHROPIC: &str = "sk-ant-api03-FwryXUsePtm9jrbh6GWGd9lX5qQx6yXdQBYHShp6rbIaDWet28QTmryPeBsTVZnr-nMJ8gmqWhRNnWNTnIxf-BkpP7oYhAA";

    fn detector() -> Arc<Detector> {
        static DETECTOR: OnceLock<Arc<Detector>> = OnceLock::new();
        DETECTOR
            .get_or_init(|| Arc::new(Detector::new(&DetectSettings::default())))
            .clone()
    }

    fn finding_for<'a>(d: &Detector, found: &'a [Finding], id: &str) -> &'a Finding {
        found
            .iter()
            .find(|f| d.rule(f.rule).id == id)
            .unwrap_or_else(|| panic!("no {id} finding in {found:?}"))
    }

    #[test]
    fn a_snippet_keeps_the_key_kind_and_masks_every_secret_in_it() {
        let d = detector();
        let text = format!("{{\"note\":\"gh {GITHUB} and claude {ANTHROPIC} end\"}}");
        let found = d.find_secrets(text.as_bytes());
        for id in ["github_pat_classic", "anthropic_api_key"] {
            let f = finding_for(&d, &found, id);
            let s = snippet(&d, text.as_bytes(), f, &found);
            assert!(!s.contains(GITHUB) && !s.contains(&GITHUB[4..20]), "{s}");
            assert!(
                !s.contains(ANTHROPIC) && !s.contains(&ANTHROPIC[13..40]),
                "{s}"
            );
            assert!(s.contains("ghp_[REDACTED]"), "{s}");
            assert!(s.contains("sk-ant-api03-[REDACTED]"), "{s}");
            assert!(s.chars().count() <= 200);
        }
    }

    #[test]
    fn a_snippet_is_short_and_free_of_control_characters() {
        let d = detector();
        let text = format!("{}\n\t{GITHUB}\r\n{}", "a".repeat(500), "b".repeat(500));
        let found = d.find_secrets(text.as_bytes());
        let s = snippet(&d, text.as_bytes(), &found[0], &found);
        assert!(s.chars().count() <= 200, "{}", s.len());
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert!(s.contains("ghp_[REDACTED]"));
    }

    #[test]
    fn masking_keeps_at_most_the_rules_literal_prefix() {
        let d = detector();
        let found = d.find_secrets(GITHUB.as_bytes());
        let rule = d.rule(found[0].rule);
        assert_eq!(masked(rule, GITHUB.as_bytes()), "ghp_[REDACTED]");
        // A value that does not start with a keyword keeps nothing.
        assert_eq!(masked(rule, b"zzzzzzzzzzzzzzzzzzzzzzzzzzzz"), "[REDACTED]");
        let text = format!("a={GITHUB}&b={GITHUB}");
        let found = d.find_secrets(text.as_bytes());
        assert_eq!(
            mask_found(&d, text.as_bytes(), &found),
            "a=ghp_[REDACTED]&b=ghp_[REDACTED]"
        );
    }

    #[test]
    fn a_preview_with_a_secret_only_visible_decoded_is_withheld() {
        let d = detector();
        let plain = format!("{{\"k\":\"{GITHUB}\"}}");
        assert_eq!(
            mask_preview(&d, plain.as_bytes()),
            "{\"k\":\"ghp_[REDACTED]\"}"
        );
        let encoded = format!("k=ghp%5F{}", &GITHUB[4..]);
        let preview = mask_preview(&d, encoded.as_bytes());
        assert!(preview.starts_with("[body withheld"), "{preview}");
        assert_eq!(mask_preview(&d, b"nothing here"), "nothing here");
    }
}
