//! `airlock stop`: SIGTERM, up to 5 s to drain, then SIGKILL.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::Failure;
use crate::config::Config;
use crate::instance::{Probe, probe};

const GRACE: Duration = Duration::from_secs(5);

pub fn stop(config: &Config) -> Result<ExitCode, Failure> {
    let (pid, _) = match probe(&config.data_dir) {
        Probe::Stopped => {
            println!(
                "airlock is not running (data directory {})",
                config.data_dir.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Probe::Running { pid, state } => (pid, state),
    };
    if pid == 0 {
        return Err(Failure::runtime(format!(
            "an instance holds {} but its pid is unknown; stop it by hand",
            config.pid_path().display()
        )));
    }
    let target = Pid::from_raw(pid as i32);
    if let Err(e) = kill(target, Signal::SIGTERM) {
        return Err(Failure::runtime(format!(
            "cannot signal airlock (pid {pid}): {e}"
        )));
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if matches!(probe(&config.data_dir), Probe::Stopped) {
            println!("airlock stopped (pid {pid})");
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill(target, Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(200));
    println!(
        "airlock (pid {pid}) did not stop within {} s and was killed",
        GRACE.as_secs()
    );
    Ok(ExitCode::SUCCESS)
}
