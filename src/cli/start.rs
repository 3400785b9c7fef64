//! `airlock start [--listen] [--no-mitm] [--log] [--detach] [--console] [--insecure-open]`

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use super::Failure;
use crate::config::{Config, Overrides};
use crate::instance::{InstanceLock, read_state};
use crate::server::{ServeOptions, Stop, serve};

const DETACH_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Listen address of the forward proxy (HOST:PORT; port 0 picks a free one)
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Blind CONNECT tunnels: no TLS interception
    #[arg(long)]
    no_mitm: bool,
    /// Stderr events: 0 off, 1 blocks, 2 full
    #[arg(long, value_name = "0|1|2", value_parser = clap::value_parser!(u64).range(0..=2))]
    log: Option<u64>,
    /// Run in the background; returns once the proxy listens
    #[arg(long)]
    detach: bool,
    /// Print one line per request on stdout: time METHOD URL status action
    #[arg(long)]
    console: bool,
    /// Allow a listener other machines can reach without proxy_auth (anyone on the network
    /// can then use the proxy)
    #[arg(long)]
    insecure_open: bool,
}

pub fn start(
    config_file: Option<&Path>,
    base: Overrides,
    args: StartArgs,
) -> Result<ExitCode, Failure> {
    crate::server::reexec_with_allocator_tunables();
    let overrides = Overrides {
        listen: args.listen.clone(),
        no_mitm: args.no_mitm,
        log: args.log,
        console: args.console,
        insecure_open: args.insecure_open,
        ..base
    };
    // Validate everything before binding anything (and before detaching: errors belong to
    // the terminal that asked).
    let config = Config::load(config_file, &overrides)?;
    crate::pipeline::live::check(&config)?;
    if args.detach {
        return detach(&config);
    }
    crate::diag::init(config.log_level);
    if config.transparent.is_some() {
        // An instance that serves jails removes what a killed jail left behind.
        crate::jail::clean_leftovers();
    }
    serve(
        config,
        ServeOptions {
            print_boot: true,
            ready: None,
            stop: Stop::Signals,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Re-runs this command without `--detach` in a new session, its stderr to
/// `<log_dir>/airlock.stderr.log`, and waits until it listens.
fn detach(config: &Config) -> Result<ExitCode, Failure> {
    // The child would fail on the lock too, but this message is clearer and immediate.
    drop(InstanceLock::acquire(&config.data_dir).map_err(|e| Failure::runtime(e.to_string()))?);
    crate::config::restrict_dir(&config.log_dir).map_err(|e| {
        Failure::runtime(format!("cannot create {}: {e}", config.log_dir.display()))
    })?;
    let log_path = config.log_dir.join("airlock.stderr.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Failure::runtime(format!("cannot open {}: {e}", log_path.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::runtime(format!("cannot find the airlock executable: {e}")))?;
    let mut args = Vec::new();
    let mut raw = std::env::args().skip(1);
    while let Some(a) = raw.next() {
        if a == "--data-dir" {
            raw.next();
        } else if a != "--detach" && !a.starts_with("--data-dir=") {
            args.push(a);
        }
    }
    let mut cmd = Command::new(exe);
    cmd.args(&args)
        // The child must see the same data directory even if it came from a relative path.
        .arg("--data-dir")
        .arg(&config.data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::runtime(format!("cannot start airlock in the background: {e}")))?;
    let deadline = Instant::now() + DETACH_WAIT;
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Failure::runtime(e.to_string()))?
        {
            let last = std::fs::read_to_string(&log_path)
                .ok()
                .and_then(|t| {
                    t.lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .map(str::to_string)
                })
                .unwrap_or_default();
            return Err(Failure {
                code: status.code().map(|c| c as u8).unwrap_or(1).max(1),
                message: format!(
                    "airlock exited during start-up ({status}); last line of {}: {last}",
                    log_path.display()
                ),
            });
        }
        // Read the state file rather than probing the lock: a probe takes the lock for an
        // instant and could make the starting child believe another instance runs.
        if let Some(state) = read_state(&config.state_path())
            && state.pid == child.id()
        {
            println!(
                "airlock started in the background (pid {}), listening on {}; logs in {}",
                state.pid,
                state.listen,
                config.log_dir.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() > deadline {
            return Err(Failure::runtime(format!(
                "airlock (pid {}) did not start listening within {} s; see {}",
                child.id(),
                DETACH_WAIT.as_secs(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
