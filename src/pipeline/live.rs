//! The state every exchange shares: the settings a reload swaps at once ([`Live`]: the
//! configuration, its detection engines and compiled policy), the guards that outlive a
//! reload ([`Guards`]: the kill switch, the budget ledger, the requests held by `ask` rules), and the handle a listener holds
//! to run exchanges through the pipeline ([`Pipeline`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;

use crate::config::{Config, GatewayConfig};
use crate::detect::{Detector, check_settings};
use crate::policy::{BudgetLedger, Policy};
use crate::record::RecordSink;

/// A setting only an engine can judge (a CEL rule that does not compile, a disabled
/// pattern no rule is called), named by its key like every other config error.
#[derive(Debug, thiserror::Error)]
#[error("config file {}: key `{key}`: {message}", file.display())]
pub struct SettingsError {
    pub file: PathBuf,
    pub key: String,
    pub message: String,
}

impl SettingsError {
    fn new(config: &Config, (key, message): (String, String)) -> Self {
        SettingsError {
            file: config
                .source
                .clone()
                .unwrap_or_else(|| PathBuf::from("<defaults>")),
            key,
            message,
        }
    }
}

/// Checks what the engines judge, without building the detection engines (what `airlock
/// config check` runs after loading the file).
pub fn check(config: &Config) -> Result<(), SettingsError> {
    check_settings(&config.detect).map_err(|e| SettingsError::new(config, e))?;
    Policy::build(&config.policy, None).map_err(|e| SettingsError::new(config, e))?;
    Ok(())
}

/// The settings a reload swaps at once. A request reads one snapshot and keeps it, so an
/// exchange in flight finishes under the settings it started with.
pub struct Live {
    pub config: Arc<Config>,
    pub detector: Arc<Detector>,
    /// The detector for the bodies of requests to LLM APIs: credentials there take
    /// `llm_prompt_secrets`' action (warn, block, off). Under `redact` the prompt tap rewrites
    /// them first, and what it could not read (a prompt past `max_scan_bytes`) falls to
    /// `outbound_secrets`: fail closed.
    pub prompt_detector: Arc<Detector>,
    pub policy: Arc<Policy>,
    /// When this configuration was loaded (RFC 3339).
    pub loaded_at: String,
}

impl Live {
    /// Builds the engines for `config`, reusing what `previous` built when its settings are
    /// the same (the detection engines compile the whole catalogue; the policy source keeps
    /// its last good rules across a reload with the same URL).
    pub fn build(
        config: Arc<Config>,
        previous: Option<&Live>,
        loaded_at: String,
    ) -> Result<Live, SettingsError> {
        check_settings(&config.detect).map_err(|e| SettingsError::new(&config, e))?;
        let remote = previous.and_then(|p| p.policy.remote().cloned());
        let policy =
            Policy::build(&config.policy, remote).map_err(|e| SettingsError::new(&config, e))?;
        let detector = match previous {
            Some(p) if p.config.detect == config.detect => p.detector.clone(),
            Some(p) => Arc::new(p.detector.with_settings(&config.detect)),
            None => Arc::new(Detector::new(&config.detect)),
        };
        let prompt_detector = match config.detect.llm_prompt_secrets {
            crate::config::DetectAction::Redact => detector.clone(),
            action => {
                let mut settings = config.detect.clone();
                settings.outbound_secrets = action;
                Arc::new(detector.with_settings(&settings))
            }
        };
        Ok(Live {
            config,
            detector,
            prompt_detector,
            policy: Arc::new(policy),
            loaded_at,
        })
    }
}

/// What decides before anything is sent and outlives a reload.
#[derive(Clone, Default)]
pub struct Guards {
    /// The kill switch (`airlock lockdown`, SIGUSR1).
    pub lockdown: Arc<AtomicBool>,
    pub budgets: Arc<BudgetLedger>,
    /// LLM spend, for the LLM `budgets`.
    pub llm_spend: Arc<crate::policy::LlmLedger>,
    /// Requests held by `ask` rules, waiting for a person.
    pub pending: Arc<super::pending::PendingRequests>,
}

impl Guards {
    pub fn locked_down(&self) -> bool {
        self.lockdown.load(Ordering::Relaxed)
    }
}

/// What a listener hands the pipeline for each exchange. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub live: Arc<ArcSwap<Live>>,
    pub guards: Guards,
    pub records: RecordSink,
    /// LLM prices: the shipped table with the config's `prices` applied.
    pub prices: Arc<airlock_llm::PriceTable>,
    /// Set on a gateway's listener: its route tells which LLM provider a path goes to.
    pub gateway: Option<Arc<GatewayConfig>>,
    /// The LLM conversations seen lately, for their transcripts.
    pub sessions: Arc<super::conversation::Sessions>,
}

impl Pipeline {
    /// One snapshot of the reloadable settings.
    pub fn live(&self) -> Arc<Live> {
        self.live.load_full()
    }
}
