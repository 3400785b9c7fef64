//! Append-only JSON Lines files with size-based rotation. Rotation happens only between
//! lines, so a line is never split across files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_KEEP: usize = 3;

pub struct RotatingJsonl {
    path: PathBuf,
    out: BufWriter<File>,
    size: u64,
    max_bytes: u64,
    keep: usize,
    /// `log_rotate: daily`: (directory, kind, the UTC day of the open file); a new file
    /// `<kind>-YYYY-MM-DD.jsonl` each day, never rotated by size.
    daily: Option<(PathBuf, String, String)>,
}

/// Today's date in UTC, as daily files are named.
pub fn utc_day() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

/// The daily file of `kind` for `day` in `dir`.
pub fn daily_path(dir: &Path, kind: &str, day: &str) -> PathBuf {
    dir.join(format!("{kind}-{day}.jsonl"))
}

impl RotatingJsonl {
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        // The audit trail is the operator's alone (its directory is 0700 too).
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingJsonl {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(64 * 1024, file),
            size,
            max_bytes,
            keep,
            daily: None,
        })
    }

    /// `log_rotate: daily`: `<dir>/<kind>-YYYY-MM-DD.jsonl`, a new file each UTC day.
    pub fn open_daily(dir: &Path, kind: &str) -> io::Result<Self> {
        let day = utc_day();
        let mut file = RotatingJsonl::open(&daily_path(dir, kind, &day), u64::MAX, 0)?;
        file.daily = Some((dir.to_path_buf(), kind.to_string(), day));
        Ok(file)
    }

    /// Appends one line (`line` must not contain a newline; one is added).
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if let Some((dir, kind, day)) = &self.daily {
            let today = utc_day();
            if *day != today {
                // A new day: the old file is complete (a line never spans two files).
                let next = RotatingJsonl::open_daily(dir, kind)?;
                self.out.flush()?;
                *self = next;
            }
        }
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        self.size += len;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// `flows.jsonl` → `flows.jsonl.1` → … → `flows.jsonl.<keep>`, the oldest dropped.
    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 0 {
            fs::remove_file(&self.path)?;
        } else {
            let _ = fs::remove_file(numbered(self.keep));
            for n in (1..self.keep).rev() {
                let from = numbered(n);
                if from.exists() {
                    fs::rename(&from, numbered(n + 1))?;
                }
            }
            fs::rename(&self.path, numbered(1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::with_capacity(64 * 1024, file);
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_between_lines_and_keeps_n_files() {
        let dir = std::env::temp_dir().join(format!("airlock-jsonl-{}", uuid::Uuid::now_v7()));
        let path = dir.join("flows.jsonl");
        let mut w = RotatingJsonl::open(&path, 100, 2).unwrap();
        for i in 0..20 {
            w.write_line(format!("{{\"n\":{:3},\"pad\":\"xxxxxxxxxxxxxxxx\"}}", i).as_bytes())
                .unwrap();
        }
        w.flush().unwrap();
        let mut lines = Vec::new();
        for p in [
            dir.join("flows.jsonl.2"),
            dir.join("flows.jsonl.1"),
            path.clone(),
        ] {
            let text = fs::read_to_string(&p).unwrap();
            assert!(
                text.len() as u64 <= 100,
                "{} is {} bytes",
                p.display(),
                text.len()
            );
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                lines.push(v["n"].as_u64().unwrap());
            }
        }
        assert!(!dir.join("flows.jsonl.3").exists());
        // The newest lines survive, in order, none split.
        let expected: Vec<u64> = ((20 - lines.len() as u64)..20).collect();
        assert_eq!(lines, expected);
        fs::remove_dir_all(&dir).unwrap();
    }
}
