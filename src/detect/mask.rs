//! What a record may show of a finding: snippets and previews with every credential masked
//! (a secret keeps at most its rule's literal prefix, `sk-ant-api03-[REDACTED]`).

use airlock_scan::{Finding, Rule, RuleKind};
use base64::Engine as _;

use super::detector::Detector;
use super::secret::Secret;

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
    // What the detector families would report is masked too (a card number, a seed phrase).
    if let Some(families) = detector.text_families(true) {
        let mut more = Vec::new();
        families.scan(preview, &mut more);
        found.extend(
            more.iter()
                .filter_map(|f| detector.family_finding(f.rule, f.start, f.end)),
        );
    }
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

/// The shortest value `mask_known` looks for (shorter ones would mask ordinary words).
const MIN_KNOWN: usize = 8;
/// A fragment this long of a known secret, decoded from a token, masks the token.
const FRAGMENT: usize = 12;

/// `text` (a snippet, a URL, a header value, a preview) with every known secret of the
/// exchange masked in whatever form it takes there: as it is, or inside a token (a run
/// between separators) that holds it — or a fragment of it, as at a snippet's cut — once
/// percent-decoded (nested), JSON-unescaped, or decoded from base64 or hex.
pub fn mask_known(text: &str, secrets: &[Secret]) -> String {
    let secrets: Vec<&[u8]> = secrets
        .iter()
        .map(|s| s.0.as_slice())
        .filter(|s| s.len() >= MIN_KNOWN)
        .collect();
    if secrets.is_empty() {
        return text.to_string();
    }
    // The value as it is, or a fragment of it (where a snippet cuts it), even when it
    // spans separators (`root:x:0:0:…`); then each token for the encoded forms.
    let text = mask_plain(text, &secrets);
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let sep = rest.find(is_separator).unwrap_or(rest.len());
        let (token, after) = rest.split_at(sep);
        out.push_str(&mask_token(token, &secrets));
        let next = after.chars().next().map_or(0, char::len_utf8);
        out.push_str(&after[..next]);
        rest = &after[next..];
    }
    out
}

/// `text` with every run of at least `FRAGMENT` bytes that is part of a known secret (or a
/// whole shorter one) replaced by `[REDACTED]`.
fn mask_plain(text: &str, secrets: &[&[u8]]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for secret in secrets {
        let frag = FRAGMENT.min(secret.len());
        // Each pass masks one run; a text holds few.
        for _ in 0..64 {
            let hit = secret
                .windows(frag)
                .enumerate()
                .find_map(|(i, w)| memchr::memmem::find(&bytes, w).map(|p| (i, p)));
            let Some((i, p)) = hit else {
                break;
            };
            // Grow the run both ways while the text goes on as the secret does.
            let (mut start, mut end) = (p, p + frag);
            let (mut si, mut se) = (i, i + frag);
            while start > 0 && si > 0 && bytes[start - 1] == secret[si - 1] {
                start -= 1;
                si -= 1;
            }
            while end < bytes.len() && se < secret.len() && bytes[end] == secret[se] {
                end += 1;
                se += 1;
            }
            bytes.splice(start..end, b"[REDACTED]".iter().copied());
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn is_separator(c: char) -> bool {
    c.is_whitespace() || "\"'`&=,;:<>()[]{}|".contains(c)
}

fn mask_token(token: &str, secrets: &[&[u8]]) -> String {
    if token.len() < MIN_KNOWN.min(FRAGMENT) {
        return token.to_string();
    }
    let mut masked = token.to_string();
    for s in secrets {
        let plain = String::from_utf8_lossy(s);
        if masked.contains(plain.as_ref()) {
            masked = masked.replace(plain.as_ref(), "[REDACTED]");
        }
    }
    if secrets
        .iter()
        .any(|s| decoded_forms(masked.as_bytes()).iter().any(|d| holds(d, s)))
    {
        return "[REDACTED]".to_string();
    }
    masked
}

/// True when `decoded` holds `secret`, or a fragment of it long enough to matter.
fn holds(decoded: &[u8], secret: &[u8]) -> bool {
    if contains(decoded, secret) {
        return true;
    }
    let frag = FRAGMENT.min(secret.len());
    (decoded.len() >= frag && contains(secret, decoded))
        || secret.windows(frag).any(|w| contains(decoded, w))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// The token itself and what it decodes to: percent-encoding (up to three layers, `+` as
/// space), JSON escapes, base64 (standard or URL-safe), hex.
fn decoded_forms(token: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![token.to_vec()];
    let mut current = token.to_vec();
    for _ in 0..3 {
        let mut out = Vec::new();
        let plus: Vec<u8> = current
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        if !airlock_scan::decode::PercentDecoder::default().feed(&plus, &mut out) {
            break;
        }
        forms.push(out.clone());
        current = out;
    }
    let mut json = Vec::new();
    if airlock_scan::decode::JsonUnescaper::default().feed(token, &mut json) {
        forms.push(json);
    }
    let trimmed: Vec<u8> = token.iter().copied().filter(|&b| b != b'=').collect();
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        if let Ok(d) = engine.decode(&trimmed) {
            forms.push(d);
        }
    }
    if token.len().is_multiple_of(2) && token.iter().all(u8::is_ascii_hexdigit) {
        let hex: Vec<u8> = token
            .chunks(2)
            .filter_map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
            .collect();
        forms.push(hex);
    }
    forms
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
    fn known_secrets_are_masked_in_every_form_a_record_can_carry() {
        use base64::Engine as _;
        let secret = "zDhM/UNzq8TyJ+Kd0Xw4pLm2Rv5sEa7bNc1Fg3Hj";
        let known = [Secret(secret.as_bytes().to_vec())];
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
        for text in [
            format!("id=AKIA&secret={secret}&x=1"),
            "id=AKIA&secret=zDhM%2FUNzq8TyJ%2BKd0Xw4pLm2Rv5sEa7bNc1Fg3Hj&x=1".to_string(),
            "secret=zDhM%252FUNzq8TyJ%252BKd0Xw4pLm2Rv5sEa7bNc1Fg3Hj".to_string(),
            "{\"s\":\"zDhM\\/UNzq8TyJ+Kd0Xw4pLm2Rv5sEa7bNc1Fg3Hj\"}".to_string(),
            format!("blob={b64}"),
            format!("blob={hex}"),
            // A snippet cut in the middle of the encoded secret.
            "...&secret=zDhM%2FUNzq8TyJ%2BKd0Xw".to_string(),
        ] {
            let masked = mask_known(&text, &known);
            for form in decoded_forms(masked.as_bytes()) {
                assert!(!holds(&form, secret.as_bytes()), "{text} -> {masked}");
            }
            assert!(masked.contains("[REDACTED]"), "{masked}");
        }
        assert_eq!(
            mask_known("nothing secret here", &known),
            "nothing secret here"
        );
        // Too short to be a credential: left alone rather than masking words.
        assert_eq!(mask_known("abc abc", &[Secret(b"abc".to_vec())]), "abc abc");
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
