//! One compiled policy rule, a list of them, and the first-match order they decide in.

use super::Verdict;
use super::cel::{CelRule, Evaluation};
use crate::config::policy::{RawRule, RuleAction};

/// A compiled rule.
pub struct Rule {
    pub name: String,
    action: RuleAction,
    cel: CelRule,
}

impl Rule {
    pub fn compile(raw: &RawRule) -> Result<Rule, String> {
        Ok(Rule {
            name: raw.name.clone(),
            action: raw.action,
            cel: CelRule::compile(&raw.expr).map_err(|e| format!("rule {:?}: {e}", raw.name))?,
        })
    }
}

/// Compiles rules in order; an error names the first bad one by its index.
pub fn compile_rules(rules: &[RawRule]) -> Result<Vec<Rule>, (usize, String)> {
    crate::config::policy::check_rules(rules)?;
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| Rule::compile(r).map_err(|m| (i, m)))
        .collect()
}

pub(super) fn first_match(rules: &[Rule], eval: &Evaluation<'_>) -> Option<Verdict> {
    for rule in rules {
        match rule.cel.matches(eval) {
            Ok(false) => continue,
            Ok(true) => {
                return Some(match rule.action {
                    RuleAction::Allow => Verdict::Allow,
                    RuleAction::Warn => Verdict::Warn {
                        rule: rule.name.clone(),
                        reason: format!("policy: rule {} matched (warn)", rule.name),
                    },
                    RuleAction::Ask => Verdict::Ask {
                        rule: rule.name.clone(),
                    },
                    RuleAction::Block => Verdict::Block {
                        rule: rule.name.clone(),
                        reason: format!("policy: rule {} blocks this request", rule.name),
                    },
                });
            }
            // Fail closed: a rule that cannot say no says no.
            Err(e) => {
                return Some(Verdict::Block {
                    rule: format!("{}:error", rule.name),
                    reason: format!(
                        "policy: rule {} could not be evaluated ({e}); blocked",
                        rule.name
                    ),
                });
            }
        }
    }
    None
}
