//! Decide, detection part: the built-in catalogue compiled into engines, what each finding
//! means for this exchange (block, redact, warn, or a credential presented to its own issuer),
//! and the snippet a threat record may show (never the secret).

pub mod body;

use std::sync::{Arc, OnceLock};

use airlock_scan::{Catalogue, Engine, Finding, Rule, RuleKind};

use crate::config::{DetectAction, DetectSettings, HostSet};

const SECRETS_YAML: &str = include_str!("../../rules/secrets.yaml");
const INJECTIONS_YAML: &str = include_str!("../../rules/injections.yaml");

/// The catalogue compiled into the binary. Its examples are checked by unit tests, so a
/// failure to load it is a build defect, not a user error.
pub fn builtin_catalogue() -> Arc<Catalogue> {
    static CATALOGUE: OnceLock<Arc<Catalogue>> = OnceLock::new();
    CATALOGUE
        .get_or_init(|| {
            Arc::new(
                Catalogue::from_yaml(SECRETS_YAML, INJECTIONS_YAML)
                    .unwrap_or_else(|e| panic!("the built-in rule catalogue is broken: {e}")),
            )
        })
        .clone()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Where in the exchange a finding was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Url,
    Header(String),
    Body,
    /// Found only after decoding (`json-escaped`, `url-encoded`, `base64`, `hex`).
    DecodedBody(&'static str),
}

impl Location {
    pub fn describe(&self, direction: Direction) -> String {
        let what = match direction {
            Direction::Outbound => "request",
            Direction::Inbound => "response",
        };
        match self {
            Location::Url => format!("{what} URL"),
            Location::Header(h) => format!("{what} header {h}"),
            Location::Body => what.to_string(),
            Location::DecodedBody(how) => format!("{what} body ({how})"),
        }
    }
}

/// One finding, resolved against settings: what was found, where, and what to do.
#[derive(Debug, Clone)]
pub struct Detection {
    pub rule: usize,
    pub direction: Direction,
    pub location: Location,
    pub action: DetectAction,
    pub snippet: String,
}

/// The engines and the settings they run with.
pub struct Detector {
    pub catalogue: Arc<Catalogue>,
    /// Credentials, on raw (decoded, decompressed) text.
    pub secrets: Arc<Engine>,
    /// Injections, on normalised text.
    pub injections: Arc<Engine>,
    /// Injections that must see raw bytes (zero-width characters).
    pub injections_raw: Arc<Engine>,
    pub settings: DetectSettings,
    /// Per catalogue rule: the hosts where presenting it in an auth header is normal use.
    issuers: Vec<Option<HostSet>>,
}

/// Headers in which credentials are presented to their issuers.
pub const AUTH_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-auth-token",
    "private-token",
];

impl Detector {
    pub fn new(settings: &DetectSettings) -> Self {
        let catalogue = builtin_catalogue();
        let enabled = |r: &Rule| {
            !settings.disabled_patterns.contains(&r.id)
                && !settings.disabled_patterns.contains(&r.family)
        };
        let secrets = Arc::new(Engine::new(catalogue.clone(), |r| {
            r.kind == RuleKind::Secret && enabled(r)
        }));
        let injections = Arc::new(Engine::new(catalogue.clone(), |r| {
            r.kind == RuleKind::Injection && !r.raw && enabled(r)
        }));
        let injections_raw = Arc::new(Engine::new(catalogue.clone(), |r| {
            r.kind == RuleKind::Injection && r.raw && enabled(r)
        }));
        let issuers = catalogue
            .rules
            .iter()
            .map(|r| {
                (!r.issuer_hosts.is_empty())
                    .then(|| HostSet::new(&r.issuer_hosts).ok())
                    .flatten()
            })
            .collect();
        Detector {
            catalogue,
            secrets,
            injections,
            injections_raw,
            settings: settings.clone(),
            issuers,
        }
    }

    /// This detector with new settings: the engines are kept when the same rules are on
    /// (building them compiles the whole catalogue).
    pub fn with_settings(&self, settings: &DetectSettings) -> Detector {
        if settings.disabled_patterns != self.settings.disabled_patterns {
            return Detector::new(settings);
        }
        Detector {
            catalogue: self.catalogue.clone(),
            secrets: self.secrets.clone(),
            injections: self.injections.clone(),
            injections_raw: self.injections_raw.clone(),
            settings: settings.clone(),
            issuers: self.issuers.clone(),
        }
    }

    pub fn rule(&self, index: usize) -> &Rule {
        &self.catalogue.rules[index]
    }

    /// The configured action for a finding of `rule` travelling in `direction`.
    pub fn action(&self, rule: usize, direction: Direction) -> DetectAction {
        let r = self.rule(rule);
        match (r.kind, direction) {
            (RuleKind::Secret, Direction::Outbound) => self.settings.outbound_secrets,
            (RuleKind::Secret, Direction::Inbound) => self.settings.inbound_secrets,
            (RuleKind::Injection, Direction::Inbound) if r.family == "prompt_injection" => {
                self.settings.prompt_injection
            }
            (RuleKind::Injection, Direction::Inbound) => self.settings.inbound_injection,
            (RuleKind::Injection, Direction::Outbound) => DetectAction::Off,
        }
    }

    pub fn scans_outbound(&self) -> bool {
        self.settings.outbound_secrets != DetectAction::Off && !self.secrets.is_empty()
    }

    pub fn scans_inbound(&self) -> bool {
        self.settings.inbound_secrets != DetectAction::Off
            || self.settings.inbound_injection != DetectAction::Off
            || self.settings.prompt_injection != DetectAction::Off
    }

    /// True when `rule`'s credential presented in `header` to `host` is the credential's
    /// normal use (an Anthropic key in x-api-key to api.anthropic.com).
    pub fn presented_to_issuer(&self, rule: usize, header: &str, host: &str) -> bool {
        let Some(Some(hosts)) = self.issuers.get(rule) else {
            return false;
        };
        let r = self.rule(rule);
        let header_ok = if r.auth_headers.is_empty() {
            AUTH_HEADERS.contains(&header)
        } else {
            r.auth_headers.iter().any(|h| h == header)
        };
        header_ok && hosts.matches(host)
    }

    /// Secrets in `text` (a URL or a header value), as engine findings.
    pub fn find_secrets(&self, text: &[u8]) -> Vec<Finding> {
        let mut out = Vec::new();
        self.secrets.scan(text, &mut out);
        out
    }
}

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
