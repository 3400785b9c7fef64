//! NSS key log (the format Wireshark reads) for both TLS sides, for packet-level forensics.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::config::hex;

pub struct KeyLogSink {
    path: PathBuf,
    file: Mutex<File>,
}

impl std::fmt::Debug for KeyLogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLogSink")
            .field("path", &self.path)
            .finish()
    }
}

impl KeyLogSink {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(KeyLogSink {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }
}

impl rustls::KeyLog for KeyLogSink {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = format!("{label} {} {}\n", hex(client_random), hex(secret));
        if let Ok(mut file) = self.file.lock()
            && let Err(e) = file.write_all(line.as_bytes())
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the TLS key log");
        }
    }

    fn will_log(&self, _label: &str) -> bool {
        true
    }
}
