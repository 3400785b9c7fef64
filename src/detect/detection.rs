//! One finding, resolved against the settings: what was found, where, and what to do.

use airlock_scan::{Finding, RuleKind};

use super::detector::{Detector, Direction, Location};
use super::mask::snippet;
use super::secret::Secret;
use crate::config::DetectAction;

/// One finding, resolved against settings: what was found, where, and what to do.
#[derive(Debug, Clone)]
pub struct Detection {
    pub rule: usize,
    pub direction: Direction,
    pub location: Location,
    pub action: DetectAction,
    pub snippet: String,
    /// A credential's value as found (empty for an injection): every record of the
    /// exchange masks it, in every form. Never written anywhere.
    pub secret: Secret,
}

impl Detection {
    /// `finding` in `window` (whose other findings are `others`), travelling `direction`,
    /// found at `location`: with its action, its snippet (masked) and its value.
    pub fn of(
        detector: &Detector,
        window: &[u8],
        finding: &Finding,
        others: &[Finding],
        direction: Direction,
        location: Location,
    ) -> Detection {
        let secret = match detector.rule(finding.rule).kind {
            RuleKind::Secret => Secret(window[finding.start..finding.end].to_vec()),
            RuleKind::Injection => Secret::default(),
        };
        Detection {
            rule: finding.rule,
            direction,
            location,
            action: detector.action(finding.rule, direction),
            snippet: snippet(detector, window, finding, others),
            secret,
        }
    }
}
