//! What policy says about one request, and the kill switch's answer.

use crate::config::Config;

/// What policy says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Let through, with a POLICY threat (`warned`) and an `egress_warn` line.
    Warn {
        rule: String,
        reason: String,
    },
    Block {
        rule: String,
        reason: String,
    },
    /// Held until a person approves or denies it; unanswered in time, it is a block.
    Ask {
        rule: String,
    },
}

/// The kill switch: everything but `lockdown_allow` is refused.
pub fn lockdown_verdict(config: &Config, host: &str) -> Verdict {
    if config.lockdown_allow.matches(host) {
        return Verdict::Allow;
    }
    Verdict::Block {
        rule: "lockdown".into(),
        reason: format!(
            "policy: airlock is in lockdown; {host} is not in lockdown_allow (airlock lockdown off to lift it)"
        ),
    }
}
