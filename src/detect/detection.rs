//! One finding, resolved against the settings: what was found, where, and what to do.

use airlock_scan::context::{Context, judge};
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
        let rule = detector.rule(finding.rule);
        let secret = match rule.kind {
            RuleKind::Secret => Secret(window[finding.start..finding.end].to_vec()),
            RuleKind::Injection => Secret::default(),
        };
        // An injection quoted in an article about injections, negated, a vendor's own
        // installer, or a command with a placeholder in it is not addressed to the agent.
        let addressed = matches!(
            judge(rule, window, finding.match_start, finding.match_end),
            Context::Addressed
        );
        let action = if addressed {
            detector.action(finding.rule, direction)
        } else {
            tracing::debug!(rule = %rule.id, "injection not addressed to the reader (quoted, explained or documented): not reported");
            DetectAction::Off
        };
        Detection {
            rule: finding.rule,
            direction,
            location,
            // An injection its context dismissed is never recorded, whatever the caller does
            // with the action next: no snippet to build (a page of quoted examples has
            // thousands of them).
            snippet: if addressed {
                snippet(detector, window, finding, others)
            } else {
                String::new()
            },
            action,
            secret,
        }
    }
}
