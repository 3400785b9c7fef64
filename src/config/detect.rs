//! `detect`, `max_scan_bytes`, `max_hold_bytes`, `dedup_window_secs`: what detection does
//! with what it finds.

use std::time::Duration;

use serde::Deserialize;

/// What happens to a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectAction {
    Block,
    Redact,
    Warn,
    Off,
    /// Recorded as seen and let through untouched: a credential arriving from its issuer or
    /// in a token endpoint's answer. Not a setting: it follows from where a credential came.
    Allow,
}

impl<'de> Deserialize<'de> for DetectAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = DetectAction;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("one of block, redact, warn, off")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "block" => Ok(DetectAction::Block),
                    "redact" => Ok(DetectAction::Redact),
                    "warn" => Ok(DetectAction::Warn),
                    "off" => Ok(DetectAction::Off),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            // YAML 1.1 parsers read an unquoted `off` as false; it means off here.
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if v {
                    Err(E::invalid_value(serde::de::Unexpected::Bool(v), &self))
                } else {
                    Ok(DetectAction::Off)
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDetect {
    outbound_secrets: Option<DetectAction>,
    llm_prompt_secrets: Option<DetectAction>,
    inbound_secrets: Option<DetectAction>,
    inbound_injection: Option<DetectAction>,
    prompt_injection: Option<DetectAction>,
    outbound_injection: Option<DetectAction>,
    financial: Option<DetectAction>,
    crypto_keys: Option<DetectAction>,
    hostname_exfil: Option<DetectAction>,
    url_entropy: Option<DetectAction>,
    pii: Option<DetectAction>,
    disabled_patterns: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DetectSettings {
    pub outbound_secrets: DetectAction,
    /// Credentials in requests to LLM APIs: `redact` replaces them in the JSON and lets the
    /// request go on (the model never sees them, the session survives).
    pub llm_prompt_secrets: DetectAction,
    pub inbound_secrets: DetectAction,
    pub inbound_injection: DetectAction,
    pub prompt_injection: DetectAction,
    /// Injections in what an agent sends to other agents (A2A, MCP over HTTP: JSON bodies).
    pub outbound_injection: DetectAction,
    /// Payment cards (Luhn), IBANs (mod-97), in requests.
    pub financial: DetectAction,
    /// Cryptocurrency private keys and seed phrases, in requests.
    pub crypto_keys: DetectAction,
    /// Data encoded in the destination's hostname.
    pub hostname_exfil: DetectAction,
    /// Data encoded in URL path segments and query values.
    pub url_entropy: DetectAction,
    /// E-mail addresses and phone numbers, in prompts to LLM providers only.
    pub pii: DetectAction,
    /// Rule ids (or whole families) switched off, in the order written.
    pub disabled_patterns: Vec<String>,
    pub max_scan_bytes: u64,
    pub max_hold_bytes: usize,
    pub dedup_window: Duration,
}

impl Default for DetectSettings {
    fn default() -> Self {
        DetectSettings {
            outbound_secrets: DetectAction::Block,
            llm_prompt_secrets: DetectAction::Redact,
            inbound_secrets: DetectAction::Redact,
            inbound_injection: DetectAction::Warn,
            prompt_injection: DetectAction::Warn,
            outbound_injection: DetectAction::Off,
            financial: DetectAction::Warn,
            crypto_keys: DetectAction::Block,
            hostname_exfil: DetectAction::Warn,
            url_entropy: DetectAction::Warn,
            pii: DetectAction::Off,
            disabled_patterns: Vec::new(),
            max_scan_bytes: 16 * 1024 * 1024,
            max_hold_bytes: 1024 * 1024,
            dedup_window: Duration::from_secs(60),
        }
    }
}

impl DetectSettings {
    /// Errors are (key path, message).
    pub(super) fn build(
        raw: Option<RawDetect>,
        max_scan_bytes: Option<u64>,
        max_hold_bytes: Option<u64>,
        dedup_window_secs: Option<u64>,
    ) -> Result<Self, (String, String)> {
        let mut s = DetectSettings::default();
        if let Some(v) = max_scan_bytes {
            s.max_scan_bytes = v;
        }
        if let Some(v) = max_hold_bytes {
            s.max_hold_bytes = usize::try_from(v)
                .map_err(|_| ("max_hold_bytes".to_string(), "is too large".to_string()))?;
        }
        if let Some(v) = dedup_window_secs {
            s.dedup_window = Duration::from_secs(v);
        }
        let Some(raw) = raw else {
            return Ok(s);
        };
        let injection_only = |key: &str,
                              a: DetectAction|
         -> Result<DetectAction, (String, String)> {
            if a == DetectAction::Redact {
                Err((
                    format!("detect.{key}"),
                    "redact is not available for injections (they are matched on normalised text); use block, warn or off".into(),
                ))
            } else {
                Ok(a)
            }
        };
        if let Some(a) = raw.outbound_secrets {
            s.outbound_secrets = a;
        }
        if let Some(a) = raw.llm_prompt_secrets {
            s.llm_prompt_secrets = a;
        }
        if let Some(a) = raw.inbound_secrets {
            s.inbound_secrets = a;
        }
        if let Some(a) = raw.inbound_injection {
            s.inbound_injection = injection_only("inbound_injection", a)?;
        }
        if let Some(a) = raw.prompt_injection {
            s.prompt_injection = injection_only("prompt_injection", a)?;
        }
        if let Some(a) = raw.outbound_injection {
            s.outbound_injection = injection_only("outbound_injection", a)?;
        }
        // A value found in a URL or a hostname cannot be taken out of it: no redact there.
        let not_redacted = |key: &str, a: DetectAction| -> Result<DetectAction, (String, String)> {
            if a == DetectAction::Redact {
                Err((
                    format!("detect.{key}"),
                    "redact is not available here (the data is in the URL or the hostname itself); use block, warn or off".into(),
                ))
            } else {
                Ok(a)
            }
        };
        if let Some(a) = raw.financial {
            s.financial = a;
        }
        if let Some(a) = raw.crypto_keys {
            s.crypto_keys = a;
        }
        if let Some(a) = raw.pii {
            s.pii = a;
        }
        if let Some(a) = raw.hostname_exfil {
            s.hostname_exfil = not_redacted("hostname_exfil", a)?;
        }
        if let Some(a) = raw.url_entropy {
            s.url_entropy = not_redacted("url_entropy", a)?;
        }
        // Whether each names a rule is checked where the catalogue is loaded
        // (`detect::check_settings`, run by `config check` and at start).
        if let Some(list) = raw.disabled_patterns {
            for name in list {
                if !s.disabled_patterns.contains(&name) {
                    s.disabled_patterns.push(name);
                }
            }
        }
        Ok(s)
    }
}
