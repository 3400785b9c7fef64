//! `airlock lockdown on|off`: the kill switch. `on` leaves a marker in the data directory
//! and sends SIGUSR1 (every request except to `lockdown_allow` hosts is refused at once);
//! `off` removes it and sends SIGHUP (the instance re-reads it). The marker also keeps a
//! restarted instance in lockdown.

use std::process::ExitCode;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Failure;
use crate::config::Config;
use crate::instance::{Probe, probe};
use crate::server::lockdown_path;

pub fn lockdown(config: &Config, state: &str) -> Result<ExitCode, Failure> {
    let on = match state {
        "on" => true,
        "off" => false,
        other => {
            return Err(Failure::usage(format!(
                "airlock lockdown takes on or off, got {other:?}"
            )));
        }
    };
    let path = lockdown_path(config);
    let written = if on {
        std::fs::create_dir_all(&config.data_dir).and_then(|_| std::fs::write(&path, b"on\n"))
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    written.map_err(|e| {
        Failure::runtime(format!(
            "cannot {} {}: {e}",
            if on { "write" } else { "remove" },
            path.display()
        ))
    })?;
    let signal = if on { Signal::SIGUSR1 } else { Signal::SIGHUP };
    match probe(&config.data_dir) {
        Probe::Running { pid, .. } if pid != 0 => {
            kill(Pid::from_raw(pid as i32), signal)
                .map_err(|e| Failure::runtime(format!("cannot signal airlock (pid {pid}): {e}")))?;
            // The instance applies it on its next turn (`off` through a reload, which rebuilds
            // the detection engines: seconds on a loaded machine); wait until it says so.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            let mut applied = false;
            while !applied && std::time::Instant::now() < deadline {
                applied = crate::instance::read_state(&config.state_path())
                    .is_some_and(|s| s.lockdown == on);
                if !applied {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            if !applied {
                return Err(Failure::runtime(format!(
                    "asked airlock (pid {pid}) to turn lockdown {}, and it has not said it did within 15 s; check `airlock status`",
                    if on { "on" } else { "off" }
                )));
            }
            println!(
                "lockdown {} (pid {pid}){}",
                if on { "on" } else { "off" },
                if on {
                    ": only lockdown_allow hosts are reachable"
                } else {
                    ""
                }
            );
        }
        _ => println!(
            "airlock is not running; lockdown is {} for its next start",
            if on { "on" } else { "off" }
        ),
    }
    Ok(ExitCode::SUCCESS)
}
