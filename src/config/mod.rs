//! Configuration: the raw file (serde, unknown keys refused) validated once into an immutable
//! [`Config`]. Every key is optional; command-line flags are applied on top by [`Overrides`].

mod access;
mod detect;
mod export;
pub mod gateways;
mod hosts;
mod listen;
pub mod policy;
mod resolve;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use access::{PasswordSource, ProxyAuth, same_secret};
pub use detect::{DetectAction, DetectSettings};
pub use export::{AlertSettings, OtlpSettings, origin as url_origin};
pub use gateways::{GatewayConfig, GatewayRoute, PROXY_LISTENER, PriceSetting, UpstreamBase};
pub use hosts::HostSet;
pub use listen::parse_listen;
use listen::parse_listen_host;
pub use resolve::ResolveMap;

/// A configuration problem, reported with the key path so the user can find it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid YAML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}: key `{key}`: {message}")]
    Key {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("invalid setting `{key}`: {message}")]
    Flag { key: String, message: String },
    #[error(
        "cannot find a home directory for the data directory; set AIRLOCK_HOME or pass --data-dir"
    )]
    NoHome,
}

/// Stderr event verbosity (`log`): 0 off, 1 blocks, 2 full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogMode {
    #[default]
    Off,
    Blocks,
    Full,
}

impl LogMode {
    pub fn name(self) -> &'static str {
        match self {
            LogMode::Off => "off",
            LogMode::Blocks => "blocks",
            LogMode::Full => "full",
        }
    }

    pub fn from_level(level: u64) -> Result<Self, String> {
        match level {
            0 => Ok(LogMode::Off),
            1 => Ok(LogMode::Blocks),
            2 => Ok(LogMode::Full),
            other => Err(format!(
                "must be 0 (off), 1 (blocks) or 2 (full), got {other}"
            )),
        }
    }
}

/// How the JSONL audit files rotate (`log_rotate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogRotate {
    /// `flows.jsonl`, rotated at 10 MB.
    #[default]
    Size,
    /// `flows-YYYY-MM-DD.jsonl`, one file per UTC day.
    Daily,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    on_failure: Option<String>,
}

/// `audit.on_failure`: while the audit log cannot be written (a full disk, lost
/// permissions), `block` refuses new requests with a 503 until it can again; `allow` keeps
/// serving and counts what could not be written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuditOnFailure {
    #[default]
    Block,
    Allow,
}

/// Rotated audit files kept (`log_keep`): the newest `files`, and none older than `days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogKeep {
    pub files: usize,
    pub days: Option<u32>,
}

impl Default for LogKeep {
    fn default() -> Self {
        LogKeep {
            files: 10,
            days: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogKeep {
    files: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    days: Option<Option<u32>>,
}

impl LogKeep {
    fn build(raw: Option<RawLogKeep>) -> Result<LogKeep, (String, String)> {
        let mut keep = LogKeep::default();
        let Some(raw) = raw else {
            return Ok(keep);
        };
        if let Some(files) = raw.files {
            keep.files = files as usize;
        }
        match raw.days {
            Some(Some(0)) => {
                return Err((
                    "log_keep.days".into(),
                    "must be at least 1, or null to keep rotated files whatever their age".into(),
                ));
            }
            Some(days) => keep.days = days,
            None => {}
        }
        Ok(keep)
    }
}

/// Diagnostics verbosity (`log_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiagLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl DiagLevel {
    fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "ERROR" => Ok(Self::Error),
            "WARN" | "WARNING" => Ok(Self::Warn),
            "INFO" => Ok(Self::Info),
            "DEBUG" => Ok(Self::Debug),
            _ => Err(format!(
                "must be one of ERROR, WARN, INFO, DEBUG, got {s:?}"
            )),
        }
    }

    pub fn as_filter(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    proxy_host: Option<String>,
    proxy_port: Option<u16>,
    transparent_port: Option<u16>,
    /// Absent: the default admin server; `null`: none.
    #[serde(default, deserialize_with = "present")]
    admin: Option<Option<RawAdmin>>,
    data_dir: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    log: Option<LogLevelValue>,
    log_level: Option<String>,
    log_rotate: Option<String>,
    log_keep: Option<RawLogKeep>,
    audit: Option<RawAudit>,
    enable_mitm: Option<bool>,
    passthrough_hosts: Option<Vec<String>>,
    http1_only_hosts: Option<Vec<String>>,
    upstream_ca: Option<Vec<PathBuf>>,
    resolve: Option<BTreeMap<String, String>>,
    keylog_file: Option<PathBuf>,
    limits: Option<RawLimits>,
    /// Absent: the default store; `null`: no SQLite store (the JSONL audit files only).
    #[serde(default, deserialize_with = "present")]
    store: Option<Option<RawStore>>,
    max_scan_bytes: Option<u64>,
    max_hold_bytes: Option<u64>,
    dedup_window_secs: Option<u64>,
    detect: Option<detect::RawDetect>,
    gateways: Option<Vec<gateways::RawGateway>>,
    prices: Option<BTreeMap<String, gateways::RawPrice>>,
    prices_file: Option<PathBuf>,
    /// ClawSec-style monitors' flat keys: one `target` gateway on loopback.
    gateway_local_port: Option<u16>,
    gateway_target_port: Option<u16>,
    policy: Option<policy::RawPolicy>,
    routes: Option<Vec<policy::RawRoute>>,
    allow_private: Option<Vec<String>>,
    connect_ports: Option<Vec<u16>>,
    proxy_auth: Option<access::RawProxyAuth>,
    lockdown_allow: Option<Vec<String>>,
    budgets: Option<Vec<policy::RawBudget>>,
    export: Option<export::RawExport>,
    alerts: Option<export::RawAlerts>,
}

/// `log` accepts only an integer: SPEC refuses `true` and `"1"` at parse time.
#[derive(Debug, Clone, Copy)]
struct LogLevelValue(u64);

impl<'de> Deserialize<'de> for LogLevelValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = LogLevelValue;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("the integer 0 (off), 1 (blocks) or 2 (full)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(LogLevelValue(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(LogLevelValue)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
        }
        d.deserialize_u64(Visitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_connections: Option<u32>,
    header_bytes: Option<u32>,
    idle_timeout: Option<u64>,
    header_timeout: Option<u64>,
    connect_timeout: Option<u64>,
    request_timeout: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<String>,
    token_env: Option<String>,
}

/// Tells a key given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The admin server (`admin`): health, metrics, the JSON API and the dashboard.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    /// The variable holding the bearer token the API requires (required off loopback).
    pub token_env: Option<String>,
    /// Written in the config: a port in use is then an error, not a warning.
    pub explicit: bool,
}

/// The admin server's address when the config says nothing.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8889";

fn admin_settings(
    raw: Option<Option<RawAdmin>>,
) -> Result<Option<AdminSettings>, (String, String)> {
    let raw = match raw {
        None => {
            return Ok(Some(AdminSettings {
                listen: DEFAULT_ADMIN.parse().expect("a valid address"),
                token_env: None,
                explicit: false,
            }));
        }
        Some(None) => return Ok(None),
        Some(Some(raw)) => raw,
    };
    let listen = match &raw.listen {
        Some(text) => parse_listen(text).map_err(|m| ("admin.listen".to_string(), m))?,
        None => DEFAULT_ADMIN.parse().expect("a valid address"),
    };
    let token_env = raw.token_env.filter(|v| !v.trim().is_empty());
    if !listen.ip().is_loopback() && token_env.is_none() {
        return Err((
            "admin.token_env".to_string(),
            format!(
                "the admin server on {listen} is reachable from other machines: name a variable holding a bearer token in admin.token_env, or listen on 127.0.0.1"
            ),
        ));
    }
    Ok(Some(AdminSettings {
        listen,
        token_env,
        explicit: raw.listen.is_some(),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    retention_days: Option<u32>,
    max_mb: Option<u64>,
    conversations: Option<bool>,
}

/// Connection limits and timeouts (`limits`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_bytes: usize,
    /// A connection with no traffic either way for this long is closed.
    pub idle_timeout: Duration,
    /// Time allowed for a client to send a complete request head.
    pub header_timeout: Duration,
    /// Time allowed to open a TCP (and TLS) connection upstream.
    pub connect_timeout: Duration,
    /// Time allowed for the upstream to answer with response headers.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_bytes: 64 * 1024,
            idle_timeout: Duration::from_secs(300),
            header_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(600),
        }
    }
}

impl Limits {
    /// `limits`, validated; an error is (key path, message).
    fn build(raw: Option<RawLimits>) -> Result<Limits, (String, String)> {
        let mut limits = Limits::default();
        let Some(l) = raw else {
            return Ok(limits);
        };

        let positive = |key: &str, v: u64| -> Result<u64, (String, String)> {
            if v == 0 {
                Err((
                    format!("limits.{key}"),
                    "must be greater than 0".to_string(),
                ))
            } else {
                Ok(v)
            }
        };
        if let Some(v) = l.max_connections {
            limits.max_connections = positive("max_connections", v.into())? as usize;
        }
        if let Some(v) = l.header_bytes {
            if v < 1024 {
                return Err((
                    "limits.header_bytes".to_string(),
                    format!("must be at least 1024, got {v}"),
                ));
            }
            limits.header_bytes = v as usize;
        }
        let secs =
            |key: &str, v: Option<u64>, into: &mut Duration| -> Result<(), (String, String)> {
                if let Some(v) = v {
                    *into = Duration::from_secs(positive(key, v)?);
                }
                Ok(())
            };
        secs("idle_timeout", l.idle_timeout, &mut limits.idle_timeout)?;
        secs(
            "header_timeout",
            l.header_timeout,
            &mut limits.header_timeout,
        )?;
        secs(
            "connect_timeout",
            l.connect_timeout,
            &mut limits.connect_timeout,
        )?;
        secs(
            "request_timeout",
            l.request_timeout,
            &mut limits.request_timeout,
        )?;
        Ok(limits)
    }
}

/// SQLite store housekeeping (`store`).
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// False with `store: null`: records go to the JSONL audit files only, and what reads
    /// the store (logs, usage, the API's lists, transcripts) has nothing to show.
    pub enabled: bool,
    pub retention_days: u32,
    pub max_mb: u64,
    /// Keep each LLM call's request and answer text, masked (`store.conversations`).
    pub conversations: bool,
}

/// The validated, immutable configuration every component reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub log_rotate: LogRotate,
    pub log_keep: LogKeep,
    /// What airlock does while the audit log cannot be written (`audit.on_failure`).
    pub audit_on_failure: AuditOnFailure,
    /// The admin server, or none (`admin: null`).
    pub admin: Option<AdminSettings>,
    /// The transparent listener (`transparent_port`, Linux): connections a jail's rules
    /// redirect. Always on loopback: the kernel rules bring the traffic there.
    pub transparent: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    pub log: LogMode,
    pub log_level: DiagLevel,
    pub enable_mitm: bool,
    pub passthrough_hosts: HostSet,
    pub http1_only_hosts: HostSet,
    pub upstream_ca: Vec<PathBuf>,
    pub resolve: ResolveMap,
    pub keylog_file: Option<PathBuf>,
    pub limits: Limits,
    pub store: StoreSettings,
    pub detect: DetectSettings,
    pub gateways: Vec<GatewayConfig>,
    /// `prices` from the file: added to (or replacing) the shipped table and `prices_file`.
    pub prices: Vec<(String, PriceSetting)>,
    /// The prices of `prices_file` (a LiteLLM price map), read at load: between the shipped
    /// table and `prices`.
    pub file_prices: Vec<(String, PriceSetting)>,
    pub policy: policy::PolicySettings,
    pub routes: Vec<policy::RouteSetting>,
    /// Ranges the destination guard lets through.
    pub allow_private: Vec<policy::Cidr>,
    /// Ports a CONNECT may name (`connect_ports`).
    pub connect_ports: Vec<u16>,
    /// The forward proxy's user (`proxy_auth`), if it needs one.
    pub proxy_auth: Option<access::ProxyAuth>,
    /// Hosts still reachable in lockdown.
    pub lockdown_allow: HostSet,
    pub budgets: Vec<policy::BudgetSetting>,
    /// Records exported as OTLP logs (`export.otlp`), when an endpoint is set.
    pub otlp: Option<OtlpSettings>,
    /// Threats POSTed to a webhook (`alerts.webhook_url`).
    pub alerts: Option<AlertSettings>,
    /// LLM spend limits (`budgets` with a source, listener or total scope).
    pub llm_budgets: Vec<policy::LlmBudget>,
    /// The command-line values this was loaded with (a reload applies them again).
    pub overrides: Overrides,
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    /// sha256 of the file's bytes (or of the empty config), shown by `status`.
    pub digest: String,
}

/// Command-line values that take precedence over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub no_mitm: bool,
    pub log: Option<u64>,
    /// `start --console`: a line per request on stdout.
    pub console: bool,
    /// `start --insecure-open`: a non-loopback listener without `proxy_auth`.
    pub insecure_open: bool,
}

impl Config {
    pub fn ca_dir(&self) -> PathBuf {
        self.data_dir.join("ca")
    }
    pub fn bundle_path(&self) -> PathBuf {
        self.ca_dir().join("bundle.pem")
    }
    pub fn pid_path(&self) -> PathBuf {
        self.data_dir.join("airlock.pid")
    }
    pub fn state_path(&self) -> PathBuf {
        self.data_dir.join("airlock.state.json")
    }
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("airlock.db")
    }
    /// Why the store cannot answer, when the config turned it off (`store: null`).
    pub fn store_off(&self) -> Option<String> {
        (!self.store.enabled).then(|| {
            format!(
                "the store is off (`store: null` in the config): the records are only in the JSONL files under {}; remove `store: null` to query them here",
                self.log_dir.display()
            )
        })
    }
    /// The JSONL audit file of `kind` (flows, threats, llm) being written now: `<kind>.jsonl`,
    /// or with `log_rotate: daily` today's `<kind>-YYYY-MM-DD.jsonl`.
    pub fn audit_file(&self, kind: &str) -> PathBuf {
        match self.log_rotate {
            LogRotate::Size => self.log_dir.join(format!("{kind}.jsonl")),
            LogRotate::Daily => self.log_dir.join(format!(
                "{kind}-{}.jsonl",
                chrono::Utc::now().format("%Y-%m-%d")
            )),
        }
    }
    /// Where `airlock lockdown on` and SIGUSR1 leave lockdown on (it survives a restart).
    pub fn lockdown_path(&self) -> PathBuf {
        self.data_dir.join("lockdown")
    }

    /// Loads `file` (or the embedded defaults when `None`) and applies `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        match file {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                Config::load_bytes(path, &bytes, overrides)
            }
            None => Config::build(RawConfig::default(), None, sha256_hex(b""), overrides),
        }
    }

    /// [`Config::load`] of bytes already read from `path` (which names the file in errors
    /// and anchors its relative paths). The fuzz target feeds it without touching a disk.
    pub fn load_bytes(
        path: &Path,
        bytes: &[u8],
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let raw = parse_raw(path, bytes)?;
        Config::build(raw, Some(path.to_path_buf()), sha256_hex(bytes), overrides)
    }

    fn build(
        raw: RawConfig,
        source: Option<PathBuf>,
        digest: String,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let path = source
            .clone()
            .unwrap_or_else(|| PathBuf::from("<defaults>"));
        let key_err = |key: &str, message: String| ConfigError::Key {
            path: path.clone(),
            key: key.to_string(),
            message,
        };

        let listen = listen_address(&raw, overrides).map_err(|e| match e {
            ListenError::Key(m) => key_err("proxy_host", m),
            ListenError::Flag(e) => e,
        })?;
        let (data_dir, log_dir) = directories(&raw, overrides)?;

        let log = match overrides.log.or(raw.log.map(|v| v.0)) {
            Some(level) => LogMode::from_level(level).map_err(|m| {
                if overrides.log.is_some() {
                    ConfigError::Flag {
                        key: "--log".into(),
                        message: m,
                    }
                } else {
                    key_err("log", m)
                }
            })?,
            None => LogMode::Off,
        };
        let log_level = match &raw.log_level {
            Some(s) => DiagLevel::parse(s).map_err(|m| key_err("log_level", m))?,
            None => DiagLevel::Info,
        };

        let passthrough_hosts = HostSet::new(raw.passthrough_hosts.as_deref().unwrap_or(&[]))
            .map_err(|m| key_err("passthrough_hosts", m))?;
        let http1_only_hosts = HostSet::new(raw.http1_only_hosts.as_deref().unwrap_or(&[]))
            .map_err(|m| key_err("http1_only_hosts", m))?;

        let upstream_ca = upstream_cas(&raw, source.as_deref(), &key_err)?;
        let resolve = ResolveMap::new(raw.resolve.unwrap_or_default())
            .map_err(|(k, m)| key_err(&format!("resolve.{k}"), m))?;

        let keylog_file = match &raw.keylog_file {
            Some(p) => Some(absolute_from(
                &file_dir(source.as_deref()),
                &expand_home(p)?,
            )),
            None => std::env::var_os("SSLKEYLOGFILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        };

        let limits = Limits::build(raw.limits).map_err(|(k, m)| key_err(&k, m))?;

        let store_enabled = !matches!(raw.store, Some(None));
        let raw_store = raw.store.flatten().unwrap_or_default();
        let store = StoreSettings {
            enabled: store_enabled,
            retention_days: raw_store.retention_days.unwrap_or(30),
            max_mb: raw_store.max_mb.unwrap_or(1024),
            conversations: store_enabled && raw_store.conversations.unwrap_or(true),
        };

        let detect = DetectSettings::build(
            raw.detect,
            raw.max_scan_bytes,
            raw.max_hold_bytes,
            raw.dedup_window_secs,
        )
        .map_err(|(k, m)| key_err(&k, m))?;

        let mut raw_gateways = raw.gateways.unwrap_or_default();
        raw_gateways.extend(
            gateways::clawsec_gateway(raw.gateway_local_port, raw.gateway_target_port)
                .map_err(|(k, m)| key_err(&k, m))?,
        );
        let gateways = gateways::build_gateways(raw_gateways).map_err(|(k, m)| key_err(&k, m))?;
        let prices = gateways::build_prices(raw.prices.unwrap_or_default())
            .map_err(|(k, m)| key_err(&k, m))?;
        let file_prices = match &raw.prices_file {
            Some(p) => {
                let p = absolute_from(&file_dir(source.as_deref()), &expand_home(p)?);
                gateways::load_prices_file(&p).map_err(|m| key_err("prices_file", m))?
            }
            None => Vec::new(),
        };

        let policy = policy::build_policy(raw.policy).map_err(|(k, m)| key_err(&k, m))?;
        let routes = policy::build_routes(raw.routes.unwrap_or_default())
            .map_err(|(k, m)| key_err(&k, m))?;
        let allow_private = policy::build_cidrs(raw.allow_private.unwrap_or_default())
            .map_err(|(k, m)| key_err(&k, m))?;
        let connect_ports =
            access::build_connect_ports(raw.connect_ports).map_err(|(k, m)| key_err(&k, m))?;
        let proxy_auth = access::build_proxy_auth(raw.proxy_auth, &file_dir(source.as_deref()))
            .map_err(|(k, m)| key_err(&k, m))?;
        if !listen.ip().is_loopback() && proxy_auth.is_none() && !overrides.insecure_open {
            return Err(key_err(
                "proxy_auth",
                format!(
                    "the proxy on {listen} is reachable from other machines: set proxy_auth ({{username, password_env}}) so that only your agents can use it, listen on 127.0.0.1, or start with --insecure-open"
                ),
            ));
        }
        let lockdown_allow = HostSet::new(raw.lockdown_allow.as_deref().unwrap_or(&[]))
            .map_err(|m| key_err("lockdown_allow", m))?;
        let (budgets, llm_budgets) = policy::build_budgets(raw.budgets.unwrap_or_default())
            .map_err(|(k, m)| key_err(&k, m))?;
        let otlp = export::build_otlp(raw.export, &|var| std::env::var(var).ok())
            .map_err(|(k, m)| key_err(&k, m))?;
        let alerts = export::build_alerts(raw.alerts).map_err(|(k, m)| key_err(&k, m))?;

        Ok(Config {
            otlp,
            alerts,
            detect,
            gateways,
            prices,
            file_prices,
            policy,
            routes,
            allow_private,
            connect_ports,
            proxy_auth,
            lockdown_allow,
            budgets,
            llm_budgets,
            overrides: overrides.clone(),
            listen,
            log_rotate: match raw.log_rotate.as_deref() {
                None | Some("size") => LogRotate::Size,
                Some("daily") => LogRotate::Daily,
                Some(other) => {
                    return Err(key_err(
                        "log_rotate",
                        format!("must be size or daily, got {other:?}"),
                    ));
                }
            },
            log_keep: LogKeep::build(raw.log_keep).map_err(|(k, m)| key_err(&k, m))?,
            audit_on_failure: match raw.audit.and_then(|a| a.on_failure).as_deref() {
                None | Some("block") => AuditOnFailure::Block,
                Some("allow") => AuditOnFailure::Allow,
                Some(other) => {
                    return Err(key_err(
                        "audit.on_failure",
                        format!("must be block or allow, got {other:?}"),
                    ));
                }
            },
            admin: admin_settings(raw.admin).map_err(|(k, m)| key_err(&k, m))?,
            transparent: raw
                .transparent_port
                .map(|port| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, port))),
            data_dir,
            log_dir,
            log,
            log_level,
            enable_mitm: raw.enable_mitm.unwrap_or(true) && !overrides.no_mitm,
            passthrough_hosts,
            http1_only_hosts,
            upstream_ca,
            resolve,
            keylog_file,
            limits,
            store,
            source,
            digest,
        })
    }
}

/// The directory of the config file: relative paths in it are relative to it.
fn file_dir(source: Option<&Path>) -> PathBuf {
    source
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `upstream_ca`: each path must be a readable file.
fn upstream_cas(
    raw: &RawConfig,
    source: Option<&Path>,
    key_err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Vec<PathBuf>, ConfigError> {
    let base = file_dir(source);
    let mut out = Vec::new();
    for (i, p) in raw.upstream_ca.iter().flatten().enumerate() {
        let p = absolute_from(&base, &expand_home(p)?);
        if !p.is_file() {
            return Err(key_err(
                &format!("upstream_ca[{i}]"),
                format!("{} is not a readable file", p.display()),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

/// Why the listen address is refused: a key of the file, or the `--listen` flag.
enum ListenError {
    Key(String),
    Flag(ConfigError),
}

/// `proxy_host`:`proxy_port`, unless `--listen` says otherwise.
fn listen_address(raw: &RawConfig, overrides: &Overrides) -> Result<SocketAddr, ListenError> {
    let host = raw.proxy_host.as_deref().unwrap_or("127.0.0.1");
    let ip = parse_listen_host(host).map_err(ListenError::Key)?;
    match &overrides.listen {
        Some(flag) => parse_listen(flag).map_err(|message| {
            ListenError::Flag(ConfigError::Flag {
                key: "--listen".into(),
                message,
            })
        }),
        None => Ok(SocketAddr::new(ip, raw.proxy_port.unwrap_or(8888))),
    }
}

/// The data directory (flag > AIRLOCK_HOME > file > XDG default) and the log directory.
fn directories(raw: &RawConfig, overrides: &Overrides) -> Result<(PathBuf, PathBuf), ConfigError> {
    let data_dir = match (&overrides.data_dir, std::env::var_os("AIRLOCK_HOME")) {
        (Some(dir), _) => expand_home(dir)?,
        (None, Some(env)) if !env.is_empty() => expand_home(Path::new(&env))?,
        _ => match &raw.data_dir {
            Some(dir) => expand_home(dir)?,
            None => default_data_dir()?,
        },
    };
    let data_dir = absolute(&data_dir);
    let log_dir = match &raw.log_dir {
        Some(dir) => absolute(&expand_home(dir)?),
        None => data_dir.join("logs"),
    };
    Ok((data_dir, log_dir))
}

/// YAML (and so JSON) into the raw structs, with the failing key's path in the error.
fn parse_raw(path: &Path, bytes: &[u8]) -> Result<RawConfig, ConfigError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: "the file is not UTF-8 text".into(),
    })?;
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    // Two steps so that serde_path_to_error can name the key: YAML → a generic tree → our
    // structs. serde-saphyr bounds alias expansion, so an alias bomb is an error, not a hang.
    let tree: serde_json::Value =
        serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        })?;
    if tree.is_null() {
        return Ok(RawConfig::default());
    }
    if !tree.is_object() {
        return Err(ConfigError::Syntax {
            path: path.to_path_buf(),
            message: "the top level must be a mapping of keys to values".into(),
        });
    }
    serde_path_to_error::deserialize(tree).map_err(|e| {
        let key = e.path().to_string();
        let inner = one_line(&e.into_inner().to_string());
        let (key, message) = explain_serde_error(&key, &inner);
        ConfigError::Key {
            path: path.to_path_buf(),
            key,
            message,
        }
    })
}

/// serde_path_to_error's path already ends in an unknown field's name; serde's message
/// ("unknown field `x`, expected one of …") is reworded to list the known keys.
fn explain_serde_error(path: &str, message: &str) -> (String, String) {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some(end) = rest.find('`')
    {
        let allowed = rest[end + 1..]
            .trim_start_matches(", ")
            .replace("expected one of ", "known keys: ");
        return (path.to_string(), format!("unknown key ({allowed})"));
    }
    (path.to_string(), message.to_string())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    hex(digest.as_ref())
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn expand_home(p: &Path) -> Result<PathBuf, ConfigError> {
    match p.strip_prefix("~") {
        Ok(rest) => Ok(home_dir().ok_or(ConfigError::NoHome)?.join(rest)),
        Err(_) => Ok(p.to_path_buf()),
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn default_data_dir() -> Result<PathBuf, ConfigError> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("airlock"));
    }
    Ok(home_dir()
        .ok_or(ConfigError::NoHome)?
        .join(".local/share/airlock"))
}

fn absolute(p: &Path) -> PathBuf {
    absolute_from(
        &std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        p,
    )
}

/// Relative paths in a config file are relative to the file, so a config can travel with
/// the files it names.
fn absolute_from(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else if base.as_os_str().is_empty() {
        absolute(p)
    } else {
        absolute(&base.join(p))
    }
}

/// Makes a directory of airlock's private (mode 0700), creating it if need be: the CA key,
/// the audit logs and the store are in it. A looser mode left by an older version is
/// tightened, and said.
pub fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !dir.exists() {
        return std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        tracing::info!(dir = %dir.display(), from = format!("{mode:04o}"), "restricted to mode 0700");
    }
    Ok(())
}

/// Replaces `path` with `bytes`, mode 0600, through a temporary file and a rename: a reader
/// finds the old content or the new, never half of it (the audit chain head, its public key).
pub fn replace_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?
        .write_all(bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("airlock-cfg-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("airlock.yaml");
        std::fs::write(&file, text).unwrap();
        let overrides = Overrides {
            data_dir: Some(dir.join("data")),
            ..Default::default()
        };
        let result = Config::load(Some(&file), &overrides);
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    fn key_of(err: ConfigError) -> String {
        match err {
            ConfigError::Key { key, .. } => key,
            other => panic!("expected a key error, got {other}"),
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = load_str("").unwrap();
        assert_eq!(c.listen, "127.0.0.1:8888".parse().unwrap());
        assert!(c.enable_mitm);
        assert_eq!(c.log, LogMode::Off);
    }

    #[test]
    fn json_is_accepted() {
        let c = load_str(r#"{"proxy_port": 9999, "log": 2, "enable_mitm": false}"#).unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.log, LogMode::Full);
        assert!(!c.enable_mitm);
    }

    #[test]
    fn unknown_keys_are_named() {
        assert_eq!(key_of(load_str("nonsense: 1").unwrap_err()), "nonsense");
        assert_eq!(
            key_of(load_str("limits:\n  bogus: 3").unwrap_err()),
            "limits.bogus"
        );
    }

    #[test]
    fn wrong_types_are_named() {
        assert_eq!(key_of(load_str("log: true").unwrap_err()), "log");
        assert_eq!(key_of(load_str("log: '1'").unwrap_err()), "log");
        assert_eq!(key_of(load_str("log: 3").unwrap_err()), "log");
        assert_eq!(key_of(load_str("proxy_port: x").unwrap_err()), "proxy_port");
        assert_eq!(
            key_of(load_str("enable_mitm: 1").unwrap_err()),
            "enable_mitm"
        );
        assert_eq!(
            key_of(load_str("limits: {connect_timeout: 0}").unwrap_err()),
            "limits.connect_timeout"
        );
    }

    #[test]
    fn log_keep_is_checked() {
        assert_eq!(load_str("").unwrap().log_keep, LogKeep::default());
        let k = load_str("log_keep: {files: 3, days: 7}").unwrap().log_keep;
        assert_eq!((k.files, k.days), (3, Some(7)));
        assert_eq!(
            load_str("log_keep: {days: null}").unwrap().log_keep.days,
            None
        );
        for (text, key) in [
            ("log_keep: {files: '3'}", "log_keep.files"),
            ("log_keep: {files: -1}", "log_keep.files"),
            ("log_keep: {files: true}", "log_keep.files"),
            ("log_keep: {days: 0}", "log_keep.days"),
            ("log_keep: {days: 1.5}", "log_keep.days"),
            ("log_keep: {count: 3}", "log_keep.count"),
            ("log_keep: 3", "log_keep"),
        ] {
            assert_eq!(key_of(load_str(text).unwrap_err()), key, "{text}");
        }
    }

    #[test]
    fn admin_settings() {
        let default = load_str("{}").unwrap().admin.unwrap();
        assert_eq!(default.listen.to_string(), DEFAULT_ADMIN);
        assert!(!default.explicit);
        assert!(load_str("admin: null").unwrap().admin.is_none());
        let set = load_str("admin: {listen: 127.0.0.1:9999}")
            .unwrap()
            .admin
            .unwrap();
        assert!(set.explicit && set.listen.port() == 9999);
        assert_eq!(
            key_of(load_str("admin: {listen: 0.0.0.0:9999}").unwrap_err()),
            "admin.token_env"
        );
        assert!(load_str("admin: {listen: 0.0.0.0:9999, token_env: T}").is_ok());
        assert_eq!(
            key_of(load_str("admin: {port: 1}").unwrap_err()),
            "admin.port"
        );
    }

    #[test]
    fn later_capabilities_keys_are_refused_until_they_exist() {
        assert_eq!(key_of(load_str("exporters: {}").unwrap_err()), "exporters");
    }

    #[test]
    fn export_and_alerts() {
        let c = load_str("{}").unwrap();
        assert!(c.otlp.is_none() && c.alerts.is_none());
        let c = load_str(
            "export: {otlp: {endpoint: 'http://127.0.0.1:4318', headers: {authorization: Bearer k}, interval_secs: 2}}\nalerts: {webhook_url: 'https://hooks.example/x'}",
        )
        .unwrap();
        let otlp = c.otlp.unwrap();
        assert_eq!(otlp.logs_url.to_string(), "http://127.0.0.1:4318/v1/logs");
        assert_eq!(otlp.interval, Duration::from_secs(2));
        assert!(c.alerts.is_some());
        assert_eq!(
            key_of(load_str("export: {otlp: {endpoint: 'tcp://x:1'}}").unwrap_err()),
            "export.otlp.endpoint"
        );
        assert_eq!(
            key_of(
                load_str("export: {otlp: {endpoint: 'http://x', interval_secs: 0}}").unwrap_err()
            ),
            "export.otlp.interval_secs"
        );
        assert_eq!(
            key_of(load_str("export: {otlp: {endpoint: 'http://x', header: {}}}").unwrap_err()),
            "export.otlp.header"
        );
        assert_eq!(
            key_of(load_str("alerts: {webhook_url: 'nope'}").unwrap_err()),
            "alerts.webhook_url"
        );
        assert!(
            load_str("export: {otlp: {endpoint: null}}\nalerts: {webhook_url: null}")
                .unwrap()
                .otlp
                .is_none()
        );
    }

    #[test]
    fn connect_ports_and_proxy_auth() {
        assert_eq!(load_str("{}").unwrap().connect_ports, vec![80, 443, 8443]);
        assert_eq!(
            load_str("connect_ports: [443, 22]").unwrap().connect_ports,
            vec![443, 22]
        );
        assert_eq!(
            key_of(load_str("connect_ports: [443, 0]").unwrap_err()),
            "connect_ports[1]"
        );
        assert_eq!(
            key_of(load_str("connect_ports: 443").unwrap_err()),
            "connect_ports"
        );
        let auth = load_str("proxy_auth: {username: agent, password_env: AIRLOCK_PW}")
            .unwrap()
            .proxy_auth
            .unwrap();
        assert_eq!(auth.username, "agent");
        for (text, key) in [
            ("proxy_auth: {username: agent}", "proxy_auth"),
            ("proxy_auth: {password_env: X}", "proxy_auth.username"),
            (
                "proxy_auth: {username: 'a:b', password_env: X}",
                "proxy_auth.username",
            ),
            (
                "proxy_auth: {username: a, password_env: X, password_file: f}",
                "proxy_auth",
            ),
            (
                "proxy_auth: {username: a, password: x}",
                "proxy_auth.password",
            ),
            ("proxy_host: 0.0.0.0", "proxy_auth"),
        ] {
            assert_eq!(key_of(load_str(text).unwrap_err()), key, "{text}");
        }
        assert!(
            load_str("{proxy_host: 0.0.0.0, proxy_auth: {username: a, password_env: X}}").is_ok()
        );
    }

    #[test]
    fn resolve_values_are_checked() {
        let err = load_str("resolve: {example.test: not-an-ip}").unwrap_err();
        assert_eq!(key_of(err), "resolve.example.test");
        let c = load_str("resolve: {example.test: '127.0.0.1:4443'}").unwrap();
        assert_eq!(
            c.resolve.lookup("example.test", 443),
            Some("127.0.0.1:4443".parse().unwrap())
        );
    }

    #[test]
    fn alias_bomb_is_an_error_not_a_hang() {
        let bomb = "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n";
        assert!(load_str(bomb).is_err());
    }
}
