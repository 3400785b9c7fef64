//! The detector: the built-in catalogue compiled into engines for the configured rules,
//! and what each finding means here (its action by direction, whether a credential was
//! presented to its own issuer).

use std::sync::Arc;

use airlock_scan::catalogue::FamilyDetector;
use airlock_scan::families::{Family, FamilyRule, FamilyScanner, FamilySet};
use airlock_scan::{Catalogue, Engine, Finding, Rule, RuleKind};

use crate::config::{DetectAction, DetectSettings, HostSet};

/// Checks what only the catalogue can judge: every `disabled_patterns` entry names a rule
/// or a family. The error is (key path, message).
pub fn check_settings(settings: &DetectSettings) -> Result<(), (String, String)> {
    if settings.disabled_patterns.is_empty() {
        return Ok(());
    }
    let catalogue = Catalogue::builtin();
    for (i, name) in settings.disabled_patterns.iter().enumerate() {
        if !catalogue.names(name) {
            return Err((
                format!("detect.disabled_patterns[{i}]"),
                format!("no rule or family is called {name:?} (`airlock rules` lists them)"),
            ));
        }
    }
    Ok(())
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
    /// The destination's hostname.
    Host,
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
            Location::Host => format!("{what} hostname"),
            Location::Url => format!("{what} URL"),
            Location::Header(h) => format!("{what} header {h}"),
            Location::Body => what.to_string(),
            Location::DecodedBody(how) => format!("{what} body ({how})"),
        }
    }
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
    /// Per catalogue rule: not switched off by `disabled_patterns` (family rules are
    /// filtered by it after their detectors ran).
    enabled: Arc<Vec<bool>>,
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
        let catalogue = Catalogue::builtin();
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
        // Responses scan for both with one keyword walk: built now, not on the first one.
        secrets.pair_with(&injections);
        let issuers = catalogue
            .rules
            .iter()
            .map(|r| {
                (!r.issuer_hosts.is_empty())
                    .then(|| HostSet::new(&r.issuer_hosts).ok())
                    .flatten()
            })
            .collect();
        let enabled = Arc::new(catalogue.rules.iter().map(enabled).collect());
        Detector {
            catalogue,
            secrets,
            injections,
            injections_raw,
            settings: settings.clone(),
            issuers,
            enabled,
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
            enabled: self.enabled.clone(),
        }
    }

    pub fn rule(&self, index: usize) -> &Rule {
        &self.catalogue.rules[index]
    }

    /// Which finding names a block when several rules fired (lower first): a specific
    /// credential, then an injection, then a catch-all, then a file marker (`cat .env`).
    pub fn specificity(&self, index: usize) -> u8 {
        let rule = self.rule(index);
        match rule.kind {
            RuleKind::Secret if rule.id.ends_with("_ref") => 3,
            RuleKind::Secret if rule.fallback => 2,
            RuleKind::Secret => 0,
            RuleKind::Injection => 1,
        }
    }

    /// The configured action for a finding of `rule` travelling in `direction`.
    pub fn action(&self, rule: usize, direction: Direction) -> DetectAction {
        let r = self.rule(rule);
        if let Some(detector) = r.detector {
            // The families watch what leaves; a credential named by its header is a
            // credential like any other.
            return match (direction, detector) {
                (Direction::Inbound, _) => DetectAction::Off,
                (Direction::Outbound, FamilyDetector::HeaderName) => self.settings.outbound_secrets,
                (Direction::Outbound, _) => self.family_action(&r.family),
            };
        }
        match (r.kind, direction) {
            (RuleKind::Secret, Direction::Outbound) => self.settings.outbound_secrets,
            (RuleKind::Secret, Direction::Inbound) => self.settings.inbound_secrets,
            (RuleKind::Injection, Direction::Inbound) if r.family == "prompt_injection" => {
                self.settings.prompt_injection
            }
            (RuleKind::Injection, Direction::Inbound) => self.settings.inbound_injection,
            (RuleKind::Injection, Direction::Outbound) => self.settings.outbound_injection,
        }
    }

    /// The action for `rule` found in an answer described by `issuance`: a credential from
    /// its issuer, or in a token endpoint's answer, is allowed through (recorded as seen).
    pub fn inbound_action(&self, rule: usize, issuance: &super::Issuance) -> DetectAction {
        let r = self.rule(rule);
        if r.kind == RuleKind::Secret
            && (issuance.token_endpoint || self.issued_by(rule, &issuance.host))
        {
            return DetectAction::Allow;
        }
        self.action(rule, Direction::Inbound)
    }

    /// True for the credentials a client presents to a token endpoint when it logs in: its
    /// own id and secret (HTTP Basic, `client_secret=`, a refresh token or an authorization
    /// code in a generic assignment). A credential with a known issuer sent to another
    /// service's token endpoint is still a leak.
    pub fn login_credential(&self, rule: usize) -> bool {
        let r = self.rule(rule);
        r.kind == RuleKind::Secret && (r.fallback || r.id == "http_basic_auth")
    }

    /// True when `host` is one of `rule`'s issuers. A credential every service issues
    /// (`issuer_hosts: ["*"]`, JWTs) has no particular issuer.
    pub fn issued_by(&self, rule: usize, host: &str) -> bool {
        let named = !self.rule(rule).issuer_hosts.iter().any(|h| h == "*");
        named && matches!(self.issuers.get(rule), Some(Some(hosts)) if hosts.matches(host))
    }

    /// The setting of a detector family (`detect.financial`, …).
    fn family_action(&self, family: &str) -> DetectAction {
        let s = &self.settings;
        match family {
            "financial" => s.financial,
            "crypto_keys" => s.crypto_keys,
            "pii" => s.pii,
            "hostname_exfil" => s.hostname_exfil,
            "url_entropy" => s.url_entropy,
            _ => DetectAction::Off,
        }
    }

    /// The text families to run on a request's content (`pii` only on prompts to LLM
    /// providers), or none.
    pub fn text_families(&self, llm: bool) -> Option<FamilyScanner> {
        let mut set = FamilySet::EMPTY;
        for (family, on) in [
            (
                Family::Financial,
                self.settings.financial != DetectAction::Off,
            ),
            (
                Family::CryptoKeys,
                self.settings.crypto_keys != DetectAction::Off,
            ),
            (Family::Pii, llm && self.settings.pii != DetectAction::Off),
        ] {
            if on {
                set = set.with(family);
            }
        }
        (!set.is_empty()).then(|| FamilyScanner::new(set))
    }

    /// A family finding as an engine finding of its catalogue rule, unless that rule is
    /// switched off.
    pub fn family_finding(&self, rule: FamilyRule, start: usize, end: usize) -> Option<Finding> {
        let index = self.catalogue.index_of(rule.id())?;
        self.enabled[index].then_some(Finding {
            rule: index,
            start,
            end,
            match_start: start,
            match_end: end,
        })
    }

    /// The catalogue index of a place-family rule (`hostname_exfil`, `url_entropy`) when it
    /// is on.
    pub fn place_rule(&self, id: &str) -> Option<usize> {
        let index = self.catalogue.index_of(id)?;
        (self.enabled[index] && self.action(index, Direction::Outbound) != DetectAction::Off)
            .then_some(index)
    }

    /// Whether anything is looked for in what leaves: the credential rules, or a family with
    /// an action of its own (`outbound_secrets: off` leaves `crypto_keys: block` blocking).
    pub fn scans_outbound(&self) -> bool {
        let s = &self.settings;
        (s.outbound_secrets != DetectAction::Off && !self.secrets.is_empty())
            || [
                s.financial,
                s.crypto_keys,
                s.pii,
                s.hostname_exfil,
                s.url_entropy,
                s.outbound_injection,
            ]
            .iter()
            .any(|action| *action != DetectAction::Off)
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
