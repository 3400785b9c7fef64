//! Record: typed events handed through a bounded channel to one writer thread, which appends
//! them to the JSONL audit files, the SQLite store and stderr. The request path never
//! touches the disk.

pub mod events;
pub mod jsonl;
pub mod store;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use crate::config::{Config, LogMode};
use events::{EgressEvent, FlowAction, FlowRecord};
use jsonl::RotatingJsonl;
use store::Store;

const CHANNEL_CAPACITY: usize = 16 * 1024;
const MAX_BATCH: usize = 1024;

enum Message {
    Flow(Box<FlowRecord>),
    Event(Box<EgressEvent>),
    Shutdown,
}

/// Running totals shown by `status`.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub blocked: AtomicU64,
    pub threats: AtomicU64,
    pub failed: AtomicU64,
}

/// The handle every component records through. Cheap to clone.
#[derive(Clone)]
pub struct RecordSink {
    tx: SyncSender<Message>,
    log: LogMode,
    pub counters: Arc<Counters>,
}

pub struct RecordWriter {
    tx: SyncSender<Message>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot open the audit log {path}: {source}; check that the log directory is writable")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

impl RecordSink {
    pub fn start(config: &Config) -> Result<(RecordSink, RecordWriter), RecordError> {
        let flows_path = config.log_dir.join("flows.jsonl");
        let flows = RotatingJsonl::open(&flows_path, jsonl::DEFAULT_MAX_BYTES, jsonl::DEFAULT_KEEP)
            .map_err(|source| RecordError::Open {
                path: flows_path.display().to_string(),
                source,
            })?;
        let store = Store::open(&config.store_path())?;
        match store.apply_retention(config.store.retention_days) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "store retention applied"),
            Err(e) => tracing::warn!(error = %e, "store retention failed"),
        }
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("airlock-records".into())
            .spawn({
                let max_mb = config.store.max_mb;
                move || write_loop(rx, flows, store, max_mb)
            })
            .map_err(|source| RecordError::Open {
                path: flows_path.display().to_string(),
                source,
            })?;
        Ok((
            RecordSink {
                tx: tx.clone(),
                log: config.log,
                counters: Arc::new(Counters::default()),
            },
            RecordWriter {
                tx,
                thread: Some(thread),
            },
        ))
    }

    pub fn log_mode(&self) -> LogMode {
        self.log
    }

    pub fn flow(&self, flow: FlowRecord) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        match flow.action {
            FlowAction::Blocked => {
                self.counters.blocked.fetch_add(1, Ordering::Relaxed);
            }
            FlowAction::Failed => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        self.send(Message::Flow(Box::new(flow)));
    }

    /// Level-2 events; dropped here when `log` is below full so callers need not check.
    pub fn event(&self, event: EgressEvent) {
        if self.log >= LogMode::Full {
            self.send(Message::Event(Box::new(event)));
        }
    }

    fn send(&self, msg: Message) {
        // A full channel means the disk is slower than the traffic: wait for it (back-pressure)
        // rather than lose an audit record.
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) => {
                let _ = self.tx.send(msg);
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("the record writer has stopped; a record was lost");
            }
        }
    }
}

impl RecordWriter {
    /// Writes everything queued so far and stops the writer thread.
    pub fn finish(mut self) {
        let _ = self.tx.send(Message::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Flows written between two checks of the store's size.
const SIZE_CHECK_EVERY: u64 = 10_000;

fn write_loop(rx: Receiver<Message>, mut flows: RotatingJsonl, mut store: Store, max_mb: u64) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    let mut since_check = SIZE_CHECK_EVERY;
    while !stopping {
        if since_check >= SIZE_CHECK_EVERY {
            since_check = 0;
            if let Err(e) = store.enforce_size(max_mb) {
                tracing::warn!(error = %e, "cannot apply store.max_mb");
            }
        }
        match rx.recv() {
            Ok(Message::Shutdown) | Err(_) => stopping = true,
            Ok(m) => batch.push(m),
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Message::Shutdown) => {
                    stopping = true;
                    break;
                }
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        since_check += batch.len() as u64;
        write_batch(&mut batch, &mut flows, &mut store);
    }
    // Anything sent after the shutdown request (tasks dropped while the runtime stopped).
    while let Ok(m) = rx.try_recv() {
        if !matches!(m, Message::Shutdown) {
            batch.push(m);
        }
    }
    write_batch(&mut batch, &mut flows, &mut store);
}

fn write_batch(batch: &mut Vec<Message>, flows: &mut RotatingJsonl, store: &mut Store) {
    if batch.is_empty() {
        return;
    }
    let mut stored: Vec<(Box<FlowRecord>, String)> = Vec::new();
    let stderr = std::io::stderr();
    let mut err_out = stderr.lock();
    for msg in batch.drain(..) {
        match msg {
            Message::Flow(f) => {
                let json = serde_json::to_string(&f).expect("flow records serialize");
                if let Err(e) = flows.write_line(json.as_bytes()) {
                    tracing::error!(error = %e, "cannot append to flows.jsonl");
                }
                stored.push((f, json));
            }
            Message::Event(e) => {
                let mut line = serde_json::to_vec(&e).expect("events serialize");
                line.push(b'\n');
                let _ = err_out.write_all(&line);
            }
            Message::Shutdown => {}
        }
    }
    drop(err_out);
    if let Err(e) = flows.flush() {
        tracing::error!(error = %e, "cannot write flows.jsonl");
    }
    if !stored.is_empty() {
        let refs: Vec<(&FlowRecord, &str)> =
            stored.iter().map(|(f, j)| (&**f, j.as_str())).collect();
        if let Err(e) = store.insert_flows(&refs) {
            tracing::error!(error = %e, "cannot write flows to the store");
        }
    }
}

/// Reads the last `n` JSON lines of a file (for `status` and `threats`), oldest first.
pub fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}
