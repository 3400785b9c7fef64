//! The JSONL audit files: append-only, chained (see `chain`), rotated by size or by UTC day,
//! the rotated files gzipped and kept as `log_keep` says. Rotation happens only between
//! lines, so a line is never split across files, and each flush hands the kernel whole
//! lines in one write, so a crash leaves at most one torn line at the end.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::chain::{self, FileEnd, GENESIS, Hash, HeadStore};
use super::metrics::Metrics;
use crate::config::LogKeep;

pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// Lines kept queued for another try while a file cannot be written (64 MiB).
const MAX_PENDING: usize = 64 << 20;

/// A failed write after which queued lines were given up (`lost` of them).
#[derive(Debug, thiserror::Error)]
#[error("{source} ({lost} records given up)")]
pub struct WriteFailure {
    pub source: io::Error,
    pub lost: usize,
}

/// The kinds of audit file, each its own chain.
pub const KINDS: [&str; 3] = ["flows", "threats", "llm"];

/// Bytes the chain adds to a line at most (`"chain_prev"` and `"chain"` with their hashes),
/// so that rotation can be decided before the line is chained.
const CHAIN_BYTES: u64 = 2 * (HEX_MEMBER);
const HEX_MEMBER: u64 = 16 + 64;

/// How often retention runs when nothing rotates (for `log_keep.days`).
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Today's date in UTC, as daily files are named.
pub fn utc_day() -> String {
    Utc::now().format("%Y-%m-%d").to_string()
}

/// The daily file of `kind` for `day` in `dir`.
pub fn daily_path(dir: &Path, kind: &str, day: &str) -> PathBuf {
    dir.join(format!("{kind}-{day}.jsonl"))
}

/// How a file rotates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// `<kind>.jsonl`, moved to `<kind>.jsonl.<UTC time>` past this many bytes.
    Size(u64),
    /// `<kind>-YYYY-MM-DD.jsonl`, a new file each UTC day.
    Daily,
}

/// One audit file being written, with its place in the chain.
pub struct RotatingJsonl {
    dir: PathBuf,
    kind: String,
    rotation: Rotation,
    path: PathBuf,
    file: File,
    /// Whole lines not yet handed to the kernel.
    pending: Vec<u8>,
    /// Bytes in the file.
    size: u64,
    /// With daily rotation, the UTC day of the open file.
    day: String,
    /// The hash of the last line chained (pending or written) and its line number.
    prev: Hash,
    line: u64,
    /// The next line names what it continues from (first of a file, or after a start).
    name_prev: bool,
    /// What the file holds: its line count and last hash.
    written: (u64, Hash),
    head: Arc<HeadStore>,
    /// Rotated files to compress and prune (the retention thread).
    keeper: Option<Sender<PathBuf>>,
}

impl RotatingJsonl {
    /// Opens (or creates) the current file of `kind` in `dir` and resumes its chain: from the
    /// last whole line when the file still holds what `chain-head.json` names, from the head
    /// otherwise (lines removed while airlock was stopped then show as a break).
    pub fn open(
        dir: &Path,
        kind: &str,
        rotation: Rotation,
        head: Arc<HeadStore>,
        keeper: Option<Sender<PathBuf>>,
    ) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let day = utc_day();
        let path = match rotation {
            Rotation::Size(_) => dir.join(format!("{kind}.jsonl")),
            Rotation::Daily => daily_path(dir, kind, &day),
        };
        let mut bytes = read_or_empty(&path)?;
        let mut end = FileEnd::of(&bytes);
        if end.lines > 0 && end.last.is_none() && !end.torn {
            // Written before the chain existed: set aside whole, so the chain starts in a file
            // of its own.
            let aside = rotated_name(dir, kind);
            fs::rename(&path, &aside)?;
            tracing::warn!(file = %path.display(), moved_to = %aside.display(), "audit file without a chain moved aside");
            bytes.clear();
            end = FileEnd::default();
        }
        let prev = resume_from(dir, kind, &path, &bytes, &end, &head);
        // The audit trail is the operator's alone (its directory is 0700 too).
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)?;
        let end = close_last_line(&path, &mut file, &bytes, end)?;
        let size = file.metadata()?.len();
        for stale in leftovers(dir, kind) {
            let _ = fs::remove_file(stale);
        }
        if let Some(keeper) = &keeper {
            for r in rotated_files(dir, kind, Some(&path)) {
                if !r.compressed {
                    let _ = keeper.send(r.path);
                }
            }
        }
        Ok(RotatingJsonl {
            dir: dir.to_path_buf(),
            kind: kind.to_string(),
            rotation,
            path,
            file,
            pending: Vec::with_capacity(64 * 1024),
            size,
            day,
            prev,
            line: end.lines,
            name_prev: true,
            written: (end.lines, prev),
            head,
            keeper,
        })
    }

    /// The file written now.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Chains and queues one record (`json`: a JSON object's text on one line); it reaches the
    /// file at the next `flush`.
    pub fn write_line(&mut self, json: &str) -> io::Result<()> {
        match self.rotation {
            Rotation::Daily => {
                let today = utc_day();
                if self.day != today {
                    self.switch_day(today)?;
                }
            }
            Rotation::Size(max) => {
                let used = self.size + self.pending.len() as u64;
                if used > 0 && used + json.len() as u64 + 1 + CHAIN_BYTES > max {
                    self.rotate()?;
                }
            }
        }
        let (line, hash) = chain::chain_record(&self.prev, json, self.name_prev);
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        self.prev = hash;
        self.line += 1;
        self.name_prev = false;
        Ok(())
    }

    /// Frees the line buffer a burst grew, when nothing waits in it.
    pub fn release_memory(&mut self) {
        if self.pending.is_empty() {
            self.pending = Vec::new();
        }
    }

    /// Writes the queued lines and moves `chain-head.json` to the last of them.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.save_head()
    }

    /// Writes the queued lines only (the head follows at the next `flush`).
    pub fn write_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        // One write of whole lines: a crash cannot split one line from the next.
        match self.file.write_all(&self.pending) {
            Ok(()) => {
                self.size += self.pending.len() as u64;
                self.written = (self.line, self.prev);
                self.pending.clear();
                Ok(())
            }
            Err(e) => {
                // Take back a partial write, so the next try does not continue a fragment.
                let _ = self.file.set_len(self.size);
                // The lines stay queued (chained as they are) for the next try, while they
                // fit; past that they are given up, counted, and the chain goes on from what
                // the file holds, and says so.
                if self.pending.len() > MAX_PENDING {
                    let lost = self.pending.iter().filter(|b| **b == b'\n').count();
                    (self.line, self.prev) = self.written;
                    self.name_prev = true;
                    self.pending.clear();
                    return Err(io::Error::other(WriteFailure { source: e, lost }));
                }
                Err(e)
            }
        }
    }

    fn file_name(&self) -> String {
        file_name(&self.path)
    }

    fn save_head(&self) -> io::Result<()> {
        let (line, hash) = self.written;
        self.head.set(&self.kind, &self.file_name(), line, &hash)
    }

    /// `<kind>.jsonl` → `<kind>.jsonl.<UTC time>`, gzipped by the retention thread.
    fn rotate(&mut self) -> io::Result<()> {
        self.write_pending()?;
        let rotated = rotated_name(&self.dir, &self.kind);
        fs::rename(&self.path, &rotated)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        self.size = 0;
        self.line = 0;
        self.written = (0, self.prev);
        self.name_prev = true;
        // At once, not at the next flush: a crash now must not leave a head naming a line
        // of a file that has moved.
        self.save_head()?;
        if let Some(keeper) = &self.keeper {
            let _ = keeper.send(rotated);
        }
        Ok(())
    }

    /// A new UTC day: the old file is complete (a line never spans two files).
    fn switch_day(&mut self, today: String) -> io::Result<()> {
        self.write_pending()?;
        let old = std::mem::replace(&mut self.path, daily_path(&self.dir, &self.kind, &today));
        let bytes = read_or_empty(&self.path)?;
        let end = FileEnd::of(&bytes);
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        let end = close_last_line(&self.path, &mut self.file, &bytes, end)?;
        self.size = self.file.metadata()?.len();
        self.day = today;
        self.line = end.lines;
        self.written = (end.lines, self.prev);
        self.name_prev = true;
        self.save_head()?;
        if let Some(keeper) = &self.keeper {
            let _ = keeper.send(old);
        }
        Ok(())
    }
}

/// Makes the file end with a whole line before anything is appended. A last line the chain
/// does not close (torn by a crash mid-write) is moved to `<file>.torn-<UTC time>` and cut
/// off: left in place it would sit in the middle of the file once the next line is
/// written, where every JSON Lines reader (ours, jq) would stumble on it.
fn close_last_line(
    path: &Path,
    file: &mut File,
    bytes: &[u8],
    end: FileEnd,
) -> io::Result<FileEnd> {
    if !end.unterminated {
        return Ok(end);
    }
    if !end.torn {
        // A whole record that only lacks its newline.
        file.write_all(b"\n")?;
        return Ok(end);
    }
    let cut = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let aside = PathBuf::from(format!(
        "{}.torn-{}",
        path.display(),
        Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
    ));
    fs::write(&aside, &bytes[cut..])?;
    file.set_len(cut as u64)?;
    tracing::warn!(
        file = %path.display(),
        line = end.lines,
        bytes = bytes.len() - cut,
        moved_to = %aside.display(),
        "the last line of this audit file was torn by a crash: moved aside, and the chain continues from the line before"
    );
    Ok(FileEnd {
        lines: end.lines - 1,
        unterminated: false,
        torn: false,
        ..end
    })
}

fn read_or_empty(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where the chain of the current file `path` (holding `bytes`) goes on from.
fn resume_from(
    dir: &Path,
    kind: &str,
    path: &Path,
    bytes: &[u8],
    end: &FileEnd,
    head: &HeadStore,
) -> Hash {
    let newest_rotated = || {
        rotated_files(dir, kind, Some(path))
            .last()
            .and_then(|r| chain::read_audit_file(&r.path).ok())
            .and_then(|b| FileEnd::of(&b).last)
    };
    let Some(h) = head.get(kind) else {
        return end.last.or_else(newest_rotated).unwrap_or(GENESIS);
    };
    let Some(hash) = chain::from_hex(h.hash.as_bytes()) else {
        tracing::warn!(
            kind,
            "chain-head.json holds no valid hash; the chain goes on from the files"
        );
        return end.last.or_else(newest_rotated).unwrap_or(GENESIS);
    };
    let current = file_name(path);
    let named: Option<Vec<u8>> = if h.file == current {
        Some(bytes.to_vec())
    } else {
        chain::read_audit_file(&dir.join(&h.file))
            .or_else(|_| chain::read_audit_file(&dir.join(format!("{}.gz", h.file))))
            .ok()
    };
    let holds = match &named {
        Some(b) if b.is_empty() => h.line == 0,
        Some(b) => chain::mentions(b, &hash),
        None => false,
    };
    if holds {
        return end
            .last
            .or_else(|| named.as_deref().and_then(|b| FileEnd::of(b).last))
            .unwrap_or(hash);
    }
    tracing::warn!(
        file = %h.file,
        line = h.line,
        "the audit file no longer holds the line chain-head.json names: lines were removed or edited while airlock was stopped; the chain goes on from the head, so `airlock audit verify` shows the break"
    );
    hash
}

// --------------------------------------------------------------------------- rotated files

/// A rotated audit file of one kind.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub path: PathBuf,
    /// When it stopped being written (its rotation time, or the end of its day).
    pub ends: DateTime<Utc>,
    /// Tells apart two rotations within the same millisecond.
    seq: u32,
    pub compressed: bool,
}

/// A name for a file rotated now: `<kind>.jsonl.<UTC time to the ms>`, never one in use.
fn rotated_name(dir: &Path, kind: &str) -> PathBuf {
    let base = format!("{kind}.jsonl.{}", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
    let mut n = 0u32;
    loop {
        let name = if n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let path = dir.join(&name);
        if !path.exists() && !dir.join(format!("{name}.gz")).exists() {
            return path;
        }
        n += 1;
    }
}

/// When a rotated file of `kind` named `name` (without `.gz`) ends, if it is one.
fn parse_rotated(kind: &str, name: &str) -> Option<(DateTime<Utc>, u32)> {
    if let Some(stamp) = name.strip_prefix(&format!("{kind}.jsonl.")) {
        let (time, seq) = match stamp.split_once("Z-") {
            Some((t, n)) => (format!("{t}Z"), n.parse().ok()?),
            None => (stamp.to_string(), 0),
        };
        let t = NaiveDateTime::parse_from_str(&time, "%Y%m%dT%H%M%S%.3fZ").ok()?;
        return Some((t.and_utc(), seq));
    }
    let day = name
        .strip_prefix(&format!("{kind}-"))?
        .strip_suffix(".jsonl")?;
    let d = NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()?;
    Some((d.succ_opt()?.and_hms_opt(0, 0, 0)?.and_utc(), 0))
}

/// The rotated files of `kind` in `dir`, oldest first (`current`, the file being written, left
/// out). A file whose compression has not finished is listed uncompressed.
pub fn rotated_files(dir: &Path, kind: &str, current: Option<&Path>) -> Vec<Rotated> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Rotated> = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if Some(path.as_path()) == current {
            continue;
        }
        let name = file_name(&path);
        let (base, compressed) = match name.strip_suffix(".gz") {
            Some(b) => (b, true),
            None => (name.as_str(), false),
        };
        if compressed && dir.join(base).exists() {
            continue;
        }
        let parsed = if base == format!("{kind}.jsonl") {
            // The size-rotated name while `log_rotate: daily` writes the daily files: what was
            // written before the switch, a rotated file like any other.
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (DateTime::<Utc>::from(t), 0))
        } else {
            parse_rotated(kind, base)
        };
        if let Some((ends, seq)) = parsed {
            out.push(Rotated {
                path,
                ends,
                seq,
                compressed,
            });
        }
    }
    out.sort_by_key(|a| (a.ends, a.seq));
    out
}

/// Half-written compressed files a crash left behind.
fn leftovers(dir: &Path, kind: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = file_name(p);
            name.ends_with(".gz.tmp")
                && parse_rotated(kind, name.trim_end_matches(".gz.tmp")).is_some()
        })
        .collect()
}

// --------------------------------------------------------------------------- retention

/// Compresses rotated files and removes the oldest as `log_keep` says, on a thread of its
/// own so that the writer never waits for gzip. Every removal is a warning in the diagnostics
/// log, a count in `chain-head.json` (`status`) and in `airlock_audit_files_deleted_total`.
pub struct Keeper {
    pub dir: PathBuf,
    pub keep: LogKeep,
    pub head: Arc<HeadStore>,
    pub metrics: Option<Arc<Metrics>>,
}

impl Keeper {
    /// Starts the thread; rotated files are sent to the returned channel.
    pub fn spawn(self) -> io::Result<Sender<PathBuf>> {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("airlock-log-keep".into())
            .spawn(move || self.run(rx))?;
        Ok(tx)
    }

    fn run(self, rx: Receiver<PathBuf>) {
        self.retain_all();
        loop {
            match rx.recv_timeout(RETENTION_EVERY) {
                Ok(path) => {
                    self.compress(&path);
                    // Retention after the queue is drained: a file waiting to be compressed is
                    // not counted yet.
                    let mut more = Vec::new();
                    while let Ok(p) = rx.try_recv() {
                        more.push(p);
                    }
                    for p in &more {
                        self.compress(p);
                    }
                    self.retain_all();
                }
                Err(RecvTimeoutError::Timeout) => self.retain_all(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// `X` → `X.gz` (through `X.gz.tmp`, so a crash never leaves half a `.gz`), then `X` goes.
    pub fn compress(&self, path: &Path) {
        if !path.exists() {
            return;
        }
        let gz = PathBuf::from(format!("{}.gz", path.display()));
        let tmp = PathBuf::from(format!("{}.gz.tmp", path.display()));
        let result = (|| -> io::Result<()> {
            let mut input = File::open(path)?;
            let out = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            io::copy(&mut input, &mut enc)?;
            enc.finish()?.sync_all()?;
            fs::rename(&tmp, &gz)?;
            fs::remove_file(path)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            tracing::error!(file = %path.display(), error = %e, "cannot compress a rotated audit file; it is kept uncompressed");
        }
    }

    pub fn retain_all(&self) {
        for kind in KINDS {
            self.retain(kind);
        }
    }

    /// Removes the oldest compressed files of `kind` beyond `log_keep.files`, and those older
    /// than `log_keep.days`.
    fn retain(&self, kind: &str) {
        let files: Vec<Rotated> = rotated_files(&self.dir, kind, None)
            .into_iter()
            .filter(|r| r.compressed)
            .collect();
        let over = files.len().saturating_sub(self.keep.files);
        let cutoff = self
            .keep
            .days
            .map(|d| Utc::now() - chrono::Duration::days(i64::from(d)));
        for (i, r) in files.iter().enumerate() {
            let reason = if i < over {
                format!("log_keep.files is {}", self.keep.files)
            } else if cutoff.is_some_and(|c| r.ends < c) {
                format!("older than log_keep.days ({})", self.keep.days.unwrap_or(0))
            } else {
                // Oldest first: the rest are newer.
                break;
            };
            let last = chain::read_audit_file(&r.path)
                .ok()
                .and_then(|b| FileEnd::of(&b).last);
            if let Err(e) = fs::remove_file(&r.path) {
                tracing::error!(file = %r.path.display(), error = %e, "cannot delete a rotated audit file");
                break;
            }
            tracing::warn!(file = %r.path.display(), reason = %reason, "deleted a rotated audit file");
            if let Some(m) = &self.metrics {
                m.audit_files_deleted.inc();
            }
            if let Err(e) = self.head.pruned(kind, &file_name(&r.path), last.as_ref()) {
                tracing::error!(error = %e, "cannot record the deletion in chain-head.json");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::chain::{Source, Start, verify};

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("airlock-{tag}-{}", uuid::Uuid::now_v7()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn record(i: usize) -> String {
        format!("{{\"n\":{i},\"pad\":\"xxxxxxxxxxxxxxxx\"}}")
    }

    /// The files of `kind` as `audit verify` reads them, oldest first.
    fn sources(dir: &Path, kind: &str) -> Vec<Source> {
        let current = dir.join(format!("{kind}.jsonl"));
        let mut paths: Vec<PathBuf> = rotated_files(dir, kind, Some(&current))
            .into_iter()
            .map(|r| r.path)
            .collect();
        paths.push(current);
        paths
            .iter()
            .map(|p| Source {
                name: file_name(p),
                bytes: chain::read_audit_file(p).unwrap(),
            })
            .collect()
    }

    fn numbers(sources: &[Source]) -> Vec<u64> {
        sources
            .iter()
            .flat_map(|s| chain::split_lines(&s.bytes).0)
            .map(|l| {
                serde_json::from_slice::<serde_json::Value>(l).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn rotates_between_lines_compresses_and_keeps_n_files_with_the_chain_across() {
        let dir = temp_dir("jsonl");
        let head = Arc::new(HeadStore::open(&dir));
        let keeper = Keeper {
            dir: dir.clone(),
            keep: LogKeep {
                files: 2,
                days: None,
            },
            head: head.clone(),
            metrics: None,
        };
        let (tx, rx) = channel();
        let mut w = RotatingJsonl::open(&dir, "flows", Rotation::Size(400), head.clone(), Some(tx))
            .unwrap();
        for i in 0..20 {
            w.write_line(&record(i)).unwrap();
            w.flush().unwrap();
        }
        drop(w);
        while let Ok(p) = rx.try_recv() {
            keeper.compress(&p);
        }
        keeper.retain_all();
        let rotated = rotated_files(&dir, "flows", Some(&dir.join("flows.jsonl")));
        assert_eq!(rotated.len(), 2, "{rotated:?}");
        assert!(rotated.iter().all(|r| r.compressed));
        let files = sources(&dir, "flows");
        for s in &files {
            assert!(
                s.bytes.len() <= 400,
                "{} is {} bytes",
                s.name,
                s.bytes.len()
            );
        }
        // The newest lines survive, in order, none split.
        let lines = numbers(&files);
        let expected: Vec<u64> = ((20 - lines.len() as u64)..20).collect();
        assert_eq!(lines, expected);
        // The chain runs through the files kept, from the end of the last one removed.
        let h = chain::ChainHead::load(&dir).unwrap().unwrap();
        assert!(h.deleted_files > 0);
        let pruned = chain::from_hex(h.kinds["flows"].pruned.as_ref().unwrap().hash.as_bytes());
        let start = Start::OneOf(vec![GENESIS, pruned.unwrap()]);
        let reports = verify(&files, &start, None).unwrap();
        assert_eq!(
            reports.iter().map(|r| r.lines).sum::<u64>(),
            lines.len() as u64
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_restart_continues_the_chain_and_sets_a_torn_line_aside() {
        let dir = temp_dir("resume");
        let head = Arc::new(HeadStore::open(&dir));
        let mut w = RotatingJsonl::open(
            &dir,
            "flows",
            Rotation::Size(DEFAULT_MAX_BYTES),
            head.clone(),
            None,
        )
        .unwrap();
        w.write_line(&record(1)).unwrap();
        w.write_line(&record(2)).unwrap();
        w.flush().unwrap();
        drop(w);
        // A crash in the middle of the next write.
        let path = dir.join("flows.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"n\":3,\"pa").unwrap();
        drop(f);
        let head = Arc::new(HeadStore::open(&dir));
        let mut w =
            RotatingJsonl::open(&dir, "flows", Rotation::Size(DEFAULT_MAX_BYTES), head, None)
                .unwrap();
        w.write_line(&record(4)).unwrap();
        w.flush().unwrap();
        let files = sources(&dir, "flows");
        let reports = verify(&files, &Start::OneOf(vec![GENESIS]), None).unwrap();
        assert_eq!(reports[0].lines, 3);
        assert!(reports[0].warnings.is_empty(), "{reports:?}");
        let aside: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| file_name(p).starts_with("flows.jsonl.torn-"))
            .collect();
        assert_eq!(fs::read(&aside[0]).unwrap(), b"{\"n\":3,\"pa");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lines_removed_while_stopped_stay_visible_after_a_restart() {
        let dir = temp_dir("cut");
        let head = Arc::new(HeadStore::open(&dir));
        let mut w =
            RotatingJsonl::open(&dir, "flows", Rotation::Size(DEFAULT_MAX_BYTES), head, None)
                .unwrap();
        for i in 0..5 {
            w.write_line(&record(i)).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        let path = dir.join("flows.jsonl");
        let text = fs::read_to_string(&path).unwrap();
        let kept: String = text.lines().take(3).map(|l| format!("{l}\n")).collect();
        fs::write(&path, kept).unwrap();
        let head = Arc::new(HeadStore::open(&dir));
        let mut w =
            RotatingJsonl::open(&dir, "flows", Rotation::Size(DEFAULT_MAX_BYTES), head, None)
                .unwrap();
        w.write_line(&record(9)).unwrap();
        w.flush().unwrap();
        let err = verify(&sources(&dir, "flows"), &Start::OneOf(vec![GENESIS]), None).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotated_names_sort_by_time_then_sequence() {
        let t = |s: &str| parse_rotated("flows", s);
        assert!(
            t("flows.jsonl.20260219T134159.587Z").unwrap()
                < t("flows.jsonl.20260219T134159.587Z-1").unwrap()
        );
        assert!(
            t("flows.jsonl.20260219T134159.587Z-2").unwrap()
                < t("flows.jsonl.20260219T134159.587Z-10").unwrap()
        );
        assert!(
            t("flows-2026-02-18.jsonl").unwrap() < t("flows.jsonl.20260219T000000.001Z").unwrap()
        );
        assert!(t("threats.jsonl.20260219T134159.587Z").is_none());
        assert!(t("flows.jsonl").is_none());
    }
}
