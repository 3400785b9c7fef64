//! The running instance of a data directory: an exclusive lock on `airlock.pid` (so a second
//! `start` is refused) and `airlock.state.json`, which tells `status`, `stop` and `run` where
//! the instance listens and how it is doing.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error(
        "airlock is already running on data directory {data_dir} (pid {pid}); stop it with `airlock stop`, or pass another --data-dir"
    )]
    AlreadyRunning { data_dir: PathBuf, pid: String },
    #[error("cannot use {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Held for the life of the running instance; dropping it releases the lock.
pub struct InstanceLock {
    _lock: Flock<File>,
    pid_path: PathBuf,
    state_path: PathBuf,
}

impl InstanceLock {
    pub fn acquire(data_dir: &Path) -> Result<Self, InstanceError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| InstanceError::Io { path, source }
        };
        crate::config::restrict_dir(data_dir).map_err(io(data_dir))?;
        let pid_path = data_dir.join("airlock.pid");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&pid_path)
            .map_err(io(&pid_path))?;
        // A few tries: `status` or `run` probing the lock holds it for an instant.
        let mut file = file;
        let mut tries = 0;
        let mut lock = loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => break lock,
                Err((f, _)) if tries < 5 => {
                    tries += 1;
                    file = f;
                    std::thread::sleep(std::time::Duration::from_millis(40));
                }
                Err((mut f, _)) => {
                    let mut pid = String::new();
                    let _ = f.read_to_string(&mut pid);
                    return Err(InstanceError::AlreadyRunning {
                        data_dir: data_dir.to_path_buf(),
                        pid: pid.trim().to_string(),
                    });
                }
            }
        };
        lock.set_len(0).map_err(io(&pid_path))?;
        lock.seek(SeekFrom::Start(0)).map_err(io(&pid_path))?;
        writeln!(lock, "{}", std::process::id()).map_err(io(&pid_path))?;
        lock.flush().map_err(io(&pid_path))?;
        Ok(InstanceLock {
            _lock: lock,
            pid_path,
            state_path: data_dir.join("airlock.state.json"),
        })
    }

    /// Replaces the state file atomically (readers never see half of it).
    pub fn write_state(&self, state: &InstanceState) {
        let tmp = self.state_path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(state).expect("state serializes");
        if let Err(e) = fs::write(&tmp, json).and_then(|_| fs::rename(&tmp, &self.state_path)) {
            tracing::warn!(path = %self.state_path.display(), error = %e, "cannot write the state file");
        }
    }
}

impl Drop for InstanceLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.state_path);
        let _ = fs::remove_file(&self.pid_path);
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstanceState {
    pub pid: u32,
    pub listen: String,
    pub started_at: String,
    pub started_unix: i64,
    pub config_file: Option<String>,
    pub config_digest: String,
    pub config_loaded_at: String,
    pub mitm: bool,
    #[serde(default)]
    pub lockdown: bool,
    pub requests: u64,
    pub blocked: u64,
    pub threats: u64,
    pub failed: u64,
    /// The admin server's address, when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// The transparent listener (TCP) and the jail DNS (UDP, same port), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparent: Option<String>,
    /// Where a jail's other UDP is sent to be recorded as BYPASS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bypass_udp: Option<String>,
}

/// What is known about an instance without taking its lock for long.
// One value per command, never stored: boxing the state would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Probe {
    Running {
        pid: u32,
        state: Option<InstanceState>,
    },
    Stopped,
}

/// Running means: somebody holds the lock on `airlock.pid`.
pub fn probe(data_dir: &Path) -> Probe {
    let pid_path = data_dir.join("airlock.pid");
    let Ok(file) = OpenOptions::new().read(true).write(true).open(&pid_path) else {
        return Probe::Stopped;
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(_released_on_drop) => Probe::Stopped,
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let state = read_state(&data_dir.join("airlock.state.json"));
            let pid = pid
                .trim()
                .parse()
                .ok()
                .or(state.as_ref().map(|s| s.pid))
                .unwrap_or(0);
            Probe::Running { pid, state }
        }
    }
}

pub fn read_state(path: &Path) -> Option<InstanceState> {
    fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}
