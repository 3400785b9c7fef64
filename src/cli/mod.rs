//! The command line (SPEC 2): one file per command; this one parses and dispatches.

mod admin_api;
mod audit;
mod ca;
mod clients;
mod completions;
mod config_check;
mod decide;
mod doctor;
mod failure;
mod jailed;
mod lockdown;
mod logs;
mod rules;
mod run;
mod start;
mod status;
mod stop;
mod threats;
mod usage;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{Config, Overrides};
pub use failure::Failure;

#[derive(Debug, Parser)]
#[command(
    name = "airlock",
    // SPEC 2: `airlock X.Y.Z (git <rev>)`; build.rs finds the revision.
    version = concat!(env!("CARGO_PKG_VERSION"), " (git ", env!("AIRLOCK_GIT_REV"), ")"),
    about = "Egress security proxy for AI agents: see, scan and control everything they send",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Config file (YAML or JSON)
    #[arg(long, global = true, env = "AIRLOCK_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (CA, logs, store); also AIRLOCK_HOME
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy (foreground; Ctrl-C or SIGTERM stop it gracefully)
    Start(start::StartArgs),
    /// Stop the running instance
    Stop,
    /// Show whether airlock runs, where, and what it has seen
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Let a request held by an `ask` policy rule go on (ids: the dashboard, or /api/pending)
    Approve {
        /// The held request's id
        id: String,
    },
    /// Refuse a request held by an `ask` policy rule (its client gets 403, reason policy)
    Deny {
        /// The held request's id
        id: String,
    },
    /// Show the latest threats
    Threats {
        /// How many (newest last)
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The kill switch: block all egress except lockdown_allow hosts (on), or lift it (off)
    Lockdown {
        #[arg(value_name = "on|off")]
        state: String,
    },
    /// Flows from the store, filtered (works while the proxy runs; --follow streams new ones)
    Logs(logs::LogsArgs),
    /// LLM tokens and cost, summed per model, day or provider
    Usage {
        /// Only calls newer than this (30s, 15m, 24h, 7d)
        #[arg(long, value_name = "DUR")]
        since: Option<String>,
        /// Group by model, day or provider
        #[arg(long, default_value = "model", value_name = "model|day|provider")]
        by: String,
        #[arg(long)]
        json: bool,
    },
    /// Where the CA certificate is and how to trust it
    Ca {
        /// Print only the certificate's path
        #[arg(long, conflicts_with = "pem")]
        path: bool,
        /// Print the certificate (PEM)
        #[arg(long)]
        pem: bool,
        /// Add the CA to an NSS database, which Chromium on Linux trusts (default
        /// ~/.pki/nssdb; needs certutil, Debian package libnss3-tools)
        #[arg(long, value_name = "DIR", num_args = 0..=1, conflicts_with_all = ["path", "pem"])]
        nss: Option<Option<PathBuf>>,
    },
    /// Run a command with the proxy and CA environment set
    Run {
        /// Isolate the command in a network namespace (Linux)
        #[arg(long)]
        jail: bool,
        /// Start CMD even when the check that airlock is in its path fails
        #[arg(long)]
        no_verify: bool,
        /// Make Node's fetch use the proxy on Node versions that ignore NODE_USE_ENV_PROXY
        /// (before 22.21): a preload installing undici's EnvHttpProxyAgent (npm fetches
        /// undici once, through airlock)
        #[arg(long, conflicts_with = "jail")]
        node_preload: bool,
        /// The command and its arguments
        #[arg(
            trailing_var_arg = true,
            required = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Prove that airlock is in the path: a canary request over HTTP and HTTPS, sent the way
    /// a client started from this environment would send it, must be blocked by airlock
    Verify,
    /// Try each common client installed here through airlock and print which work and the
    /// fix for those that do not (exit 1 when any fails)
    Doctor,
    /// Inside an unprivileged jail's namespaces (started by `run --jail`): relay the proxy
    /// port to airlock and run CMD
    #[command(hide = true)]
    JailInside {
        socket: PathBuf,
        port: u16,
        #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// List the built-in detection rules (ids usable in detect.disabled_patterns)
    Rules {
        #[arg(long)]
        json: bool,
    },
    /// Work with config files
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Tamper evidence of the JSONL audit files
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print a shell completion script (bash: `source <(airlock completions bash)`)
    Completions {
        #[arg(value_enum)]
        shell: completions::Shell,
    },
    /// Print the man page (roff): `airlock man | man -l -`
    Man,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain of the audit files: all of the log directory (oldest first, up
    /// to logs/chain-head.json), or the FILEs given, in that order. Exit 1 naming the first
    /// edited, removed, reordered or truncated line
    Verify {
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Also require chain-head.json to be signed by this Ed25519 key (the PEM of
        /// logs/chain-head.pub, kept apart from the logs, or its 64 hex digits)
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file; prints the first error with its key path (exit 2)
    Check { file: PathBuf },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(f) => {
            let message: String = f.message.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("airlock: error: {message}");
            ExitCode::from(f.code)
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    let base = Overrides {
        data_dir: cli.data_dir.clone(),
        ..Default::default()
    };
    // Commands that print and exit behave like other Unix tools in a pipeline: `airlock
    // status | head` ends quietly when `head` has read enough. (Rust ignores SIGPIPE; the
    // proxy itself keeps ignoring it, a closed client socket is an error there, not a death.)
    if !matches!(cli.command, Command::Start(_) | Command::Run { .. }) {
        // SAFETY: restoring the default disposition of one signal at start-up, before any
        // thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.command {
        Command::Start(args) => start::start(cli.config.as_deref(), base, args),
        Command::Stop => stop::stop(&load(&cli.config, &base)?),
        Command::Status { json } => status::status(&load(&cli.config, &base)?, json),
        Command::Threats { limit, json } => {
            threats::threats(&load(&cli.config, &base)?, limit, json)
        }
        Command::Approve { id } => decide::decide(&load(&cli.config, &base)?, &id, true),
        Command::Deny { id } => decide::decide(&load(&cli.config, &base)?, &id, false),
        Command::Lockdown { state } => lockdown::lockdown(&load(&cli.config, &base)?, &state),
        Command::Usage { since, by, json } => {
            usage::usage(&load(&cli.config, &base)?, since.as_deref(), &by, json)
        }
        Command::Ca { path, pem, nss } => {
            let config = load(&cli.config, &base)?;
            match nss {
                Some(dir) => ca::add_to_nss(&config, dir),
                None => ca::ca(&config, path, pem),
            }
        }
        Command::Run {
            jail,
            no_verify,
            node_preload,
            command,
        } => {
            let config = load(&cli.config, &base)?;
            let (program, args) = command
                .split_first()
                .ok_or_else(|| Failure::usage("run needs a command: airlock run -- CMD [ARGS…]"))?;
            if jail {
                jailed::run(config, !no_verify, program, args)
            } else {
                run::run(config, !no_verify, node_preload, program, args)
            }
        }
        Command::Verify => verify::verify(&load(&cli.config, &base)?),
        Command::Doctor => doctor::doctor(&load(&cli.config, &base)?),
        Command::Logs(args) => logs::logs(&load(&cli.config, &base)?, &args),
        Command::JailInside {
            socket,
            port,
            command,
        } => jailed::inside(&socket, port, &command),
        Command::Rules { json } => rules::rules(json),
        Command::Completions { shell } => completions::completions(Cli::command(), shell),
        Command::Man => completions::man(Cli::command()),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config_check::check(&file, &base),
        Command::Audit {
            command: AuditCommand::Verify { files, public_key },
        } => audit::verify(&load(&cli.config, &base)?, &files, public_key.as_deref()),
    }
}

fn load(file: &Option<PathBuf>, overrides: &Overrides) -> Result<Config, Failure> {
    Ok(Config::load(file.as_deref(), overrides)?)
}
