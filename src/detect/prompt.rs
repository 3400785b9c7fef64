//! Credentials in a prompt to an LLM API, replaced where they stand: each JSON string of
//! the request is read unescaped, scanned, and every credential in it replaced by
//! `[REDACTED:<rule>]` in the raw JSON, so the document stays valid, the model never sees the
//! secret, and the agent's session goes on (a key pasted once is in every later request of
//! the conversation).

use airlock_scan::RuleKind;

use super::{Detection, Detector, Direction, Location};
use crate::config::DetectAction;

/// A prompt with its credentials replaced, and what was replaced.
pub struct RedactedPrompt {
    pub body: Vec<u8>,
    /// One per replaced credential, with action `redact`.
    pub detections: Vec<Detection>,
}

/// Redacts the credentials in the JSON strings of `body`. `None` when the body is not a
/// JSON document (a prompt is one; anything else is left to the ordinary scan).
pub fn redact_prompt(detector: &Detector, body: &[u8]) -> Option<RedactedPrompt> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if !matches!(first, b'{' | b'[') {
        return None;
    }
    // The families whose setting is redact (`pii: redact`: e-mail addresses in prompts).
    let families = detector.text_families(true);
    let mut out = Vec::with_capacity(body.len());
    let mut detections = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    while i < body.len() {
        if body[i] != b'"' {
            i += 1;
            continue;
        }
        let string = JsonString::read(body, i + 1)?;
        let mut found = detector.find_secrets(&string.text);
        if let Some(families) = &families {
            let mut more = Vec::new();
            families.scan(&string.text, &mut more);
            found.extend(
                more.iter()
                    .filter_map(|f| detector.family_finding(f.rule, f.start, f.end))
                    .filter(|f| {
                        detector.action(f.rule, Direction::Outbound) == DetectAction::Redact
                    }),
            );
        }
        found.sort_by_key(|f| f.start);
        let mut replaced_to = string.raw_start;
        for f in &found {
            let rule = detector.rule(f.rule);
            if rule.kind != RuleKind::Secret {
                continue;
            }
            let (start, end) = string.raw_span(f.start, f.end);
            if start < replaced_to {
                continue;
            }
            out.extend_from_slice(&body[copied..start]);
            out.extend_from_slice(format!("[REDACTED:{}]", rule.id).as_bytes());
            copied = end;
            replaced_to = end;
            let mut d = Detection::of(
                detector,
                &string.text,
                f,
                &found,
                Direction::Outbound,
                Location::Body,
            );
            d.action = DetectAction::Redact;
            detections.push(d);
        }
        i = string.raw_end + 1;
    }
    out.extend_from_slice(&body[copied..]);
    Some(RedactedPrompt {
        body: out,
        detections,
    })
}

/// One JSON string literal: its text unescaped, and where each byte of it came from.
struct JsonString {
    text: Vec<u8>,
    /// Per byte of `text`: the raw offset of the escape (or byte) it came from, and the raw
    /// offset just past it.
    from: Vec<(usize, usize)>,
    /// The raw span of the contents (between the quotes).
    raw_start: usize,
    raw_end: usize,
}

impl JsonString {
    /// Reads the string whose contents start at `start` (just after its opening quote).
    /// `None` when it does not end (the body is not JSON).
    fn read(body: &[u8], start: usize) -> Option<JsonString> {
        let mut text = Vec::new();
        let mut from = Vec::new();
        let mut i = start;
        loop {
            let b = *body.get(i)?;
            match b {
                b'"' => break,
                b'\\' => {
                    let (bytes, len) = unescape(body, i)?;
                    for byte in bytes {
                        text.push(byte);
                        from.push((i, i + len));
                    }
                    i += len;
                }
                _ => {
                    text.push(b);
                    from.push((i, i + 1));
                    i += 1;
                }
            }
        }
        Some(JsonString {
            text,
            from,
            raw_start: start,
            raw_end: i,
        })
    }

    /// The raw span covering the unescaped bytes `start..end`.
    fn raw_span(&self, start: usize, end: usize) -> (usize, usize) {
        (self.from[start].0, self.from[end - 1].1)
    }
}

/// The escape at `at` (a backslash): the bytes it stands for and its raw length.
fn unescape(body: &[u8], at: usize) -> Option<(Vec<u8>, usize)> {
    let c = *body.get(at + 1)?;
    let simple = match c {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        b'/' => Some(b'/'),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        _ => None,
    };
    if let Some(b) = simple {
        return Some((vec![b], 2));
    }
    if c != b'u' {
        return None;
    }
    let unit = |at: usize| -> Option<u32> {
        let hex = std::str::from_utf8(body.get(at..at + 4)?).ok()?;
        u32::from_str_radix(hex, 16).ok()
    };
    let high = unit(at + 2)?;
    let (code, len) = if (0xD800..0xDC00).contains(&high)
        && body.get(at + 6..at + 8) == Some(b"\\u")
        && let Some(low) = unit(at + 8).filter(|l| (0xDC00..0xE000).contains(l))
    {
        (0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00), 12)
    } else {
        (high, 6)
    };
    let ch = char::from_u32(code).unwrap_or('\u{FFFD}');
    let mut buf = [0u8; 4];
    Some((ch.encode_utf8(&mut buf).as_bytes().to_vec(), len))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, OnceLock};

    use super::*;
    use crate::config::DetectSettings;

    const GITHUB: &str = "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";

    fn detector() -> Arc<Detector> {
        static DETECTOR: OnceLock<Arc<Detector>> = OnceLock::new();
        DETECTOR
            .get_or_init(|| Arc::new(Detector::new(&DetectSettings::default())))
            .clone()
    }

    fn redact(body: &str) -> (String, Vec<String>) {
        let d = detector();
        let r = redact_prompt(&d, body.as_bytes()).expect("a JSON prompt");
        let rules = r
            .detections
            .iter()
            .map(|x| d.rule(x.rule).id.clone())
            .collect();
        (String::from_utf8(r.body).unwrap(), rules)
    }

    #[test]
    fn a_key_in_a_message_is_replaced_and_the_json_stays_valid() {
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"my token is {GITHUB}, use it"}}]}}"#
        );
        let (out, rules) = redact(&body);
        assert_eq!(rules, ["github_pat_classic"]);
        assert!(!out.contains(GITHUB), "{out}");
        assert!(
            out.contains("my token is [REDACTED:github_pat_classic], use it"),
            "{out}"
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["model"], "m");
    }

    #[test]
    fn an_escaped_pem_key_is_replaced_whole() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq98fWPb0pqSNQvK4V4bPw0yj5W6+hLRd7o0VQVvB5xA1r2\nQmR1sT9nE3kXjY8dL6hA0pZ4cW2vB7uN1oK3iS5tF9gH2jD4lM6qP8rT0vX2zY4b\n-----END RSA PRIVATE KEY-----";
        let body = serde_json::json!({"messages": [{"role": "user", "content": format!("key:\n{pem}\nthanks")}]})
            .to_string();
        assert!(body.contains("\\n"), "the PEM's newlines are JSON escapes");
        let (out, rules) = redact(&body);
        assert!(rules.iter().any(|r| r.contains("private_key")), "{rules:?}");
        assert!(!out.contains("MIIEpAIBAAKCAQEA"), "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let content = v["messages"][0]["content"].as_str().unwrap();
        assert!(
            content.starts_with("key:\n[REDACTED:") && content.ends_with("]\nthanks"),
            "{content}"
        );
    }

    #[test]
    fn unicode_escapes_map_back_to_their_raw_bytes() {
        // The key's first letter written as \u0067 ("g").
        let body = format!(r#"{{"content":"caf\u00e9 \u0067{} ok"}}"#, &GITHUB[1..]);
        let (out, rules) = redact(&body);
        assert_eq!(rules, ["github_pat_classic"]);
        assert_eq!(
            out,
            r#"{"content":"caf\u00e9 [REDACTED:github_pat_classic] ok"}"#
        );
    }

    #[test]
    fn what_is_not_json_is_left_to_the_ordinary_scan() {
        let d = detector();
        assert!(redact_prompt(&d, format!("token={GITHUB}").as_bytes()).is_none());
        assert!(redact_prompt(&d, b"{\"unterminated").is_none());
        let (out, rules) = redact(r#"{"a":"nothing here"}"#);
        assert!(rules.is_empty());
        assert_eq!(out, r#"{"a":"nothing here"}"#);
    }
}
