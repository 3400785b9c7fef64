//! airlock's detection engine, without I/O: the rule catalogue (`rules/*.yaml`, data with
//! examples), a keyword-prefiltered matcher, a streaming scanner with carry-over so that a
//! secret split across chunks is still found, and the decoders and normalisers that let it
//! see what an agent actually sent.
//!
//! The speed comes from the shape of the search: one Aho-Corasick pass finds the literal
//! keywords every rule carries; each rule's regex then runs only in a window around its
//! keyword's hits, and a match must still pass the rule's entropy floor and checksum.

pub mod body;
pub mod catalogue;
pub mod context;
pub mod decode;
pub mod decompress;
pub mod engine;
pub mod families;
mod keywords;
pub mod normalize;
pub mod stream;
mod text_runs;
pub mod url;
pub mod verify;

pub use catalogue::{Catalogue, CatalogueError, Rule, RuleKind};
pub use engine::{Engine, Finding};
pub use stream::StreamScanner;

/// A small catalogue for unit tests (the built-in one is tested by tests/catalogue.rs).
#[cfg(test)]
pub(crate) mod fixtures {
    pub const SECRETS: &str = r#"
rules:
  - id: github_pat_classic
    name: GitHub token (classic)
    family: vcs_token
    keywords: ["ghp_"]
    pattern: '\b(?P<secret>ghp_[A-Za-z0-9]{36})\b'
    max_len: 40
    entropy: 3.0
  - id: private_key_pem
    name: PEM private key
    family: private_key_pem
    keywords: ["-----begin"]
    pattern: '-----BEGIN (?:RSA |EC )?PRIVATE KEY-----[A-Za-z0-9+/=\s]{20,}-----END (?:RSA |EC )?PRIVATE KEY-----'
    max_len: 4200
"#;
    pub const INJECTIONS: &str = r#"
rules:
  - id: pipe_to_shell
    name: download piped to a shell
    family: pipe_to_shell
    keywords: ["curl", "wget"]
    pattern: '(?:curl|wget)[^|\n]{1,300}\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b'
    max_len: 400
  - id: prompt_injection
    name: prompt injection
    family: prompt_injection
    keywords: ["ignore"]
    pattern: 'ignore\s+(?:all\s+)?(?:previous|prior)\s+instructions'
    max_len: 80
"#;
    pub const TOKEN: &str = "ghp_4f9Kx2mQ7pL1nR8sT3vW6yZ0aB5cD9eF2hJk";
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::fixtures::{INJECTIONS, SECRETS, TOKEN};
    use super::*;
    use crate::stream::StreamFinding;

    fn engine() -> Arc<Engine> {
        let cat = Arc::new(Catalogue::from_yaml(SECRETS, INJECTIONS).unwrap());
        Arc::new(Engine::new(cat, |r| r.kind == RuleKind::Secret))
    }

    #[test]
    fn finds_a_token_on_wire_boundaries() {
        let e = engine();
        for text in [
            format!("a={TOKEN}&b=1"),
            format!("{{\"k\":\"{TOKEN}\"}}"),
            format!("{TOKEN},next"),
            format!("x\n{TOKEN}\n"),
        ] {
            let mut out = Vec::new();
            e.scan(text.as_bytes(), &mut out);
            assert_eq!(out.len(), 1, "{text}");
            assert_eq!(&text.as_bytes()[out[0].start..out[0].end], TOKEN.as_bytes());
        }
        let mut out = Vec::new();
        e.scan(b"ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", &mut out);
        assert!(out.is_empty(), "placeholder fails the entropy floor");
        e.scan(format!("{TOKEN}x").as_bytes(), &mut out);
        assert!(out.is_empty(), "longer word is not this token");
    }

    #[test]
    fn stream_finds_a_split_secret_once() {
        let e = engine();
        let text = format!("{}{TOKEN}{}", "a ".repeat(100), " b".repeat(100));
        for split in [1, 50, 200, 210, 239, 240, 260] {
            let mut s = StreamScanner::new(e.clone());
            let mut out: Vec<StreamFinding> = Vec::new();
            for chunk in text.as_bytes().chunks(split) {
                s.feed(chunk, &mut out);
            }
            assert_eq!(out.len(), 1, "chunk size {split}");
            assert_eq!(out[0].start, 200);
            assert_eq!(out[0].end, 200 + TOKEN.len() as u64);
        }
    }
}
