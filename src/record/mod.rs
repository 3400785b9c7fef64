//! Record: typed events handed through a bounded channel to one writer thread, which appends
//! them to the JSONL audit files, the SQLite store and stderr, then hands what it wrote to the
//! exporters (`export`: OTLP logs, threat webhooks). The request path never touches the disk
//! or the network.

pub mod chain;
pub mod conversations;
pub mod events;
pub mod export;
pub mod jsonl;
pub mod metrics;
pub mod otlp;
pub mod signing;
pub mod store;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel,
};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{Config, LogMode};
use events::{EgressEvent, FlowAction, FlowRecord, LlmRecord, ThreatRecord, TurnRecord};
use export::Outlets;
use jsonl::{Keeper, RotatingJsonl, Rotation};
use otlp::ExportRecord;
use store::Store;

const CHANNEL_CAPACITY: usize = 16 * 1024;
const MAX_BATCH: usize = 1024;
/// Records are written in groups: after the first of a group arrives, the writer collects
/// for up to this long (or until a batch is full) and writes them in one store transaction
/// and one append per file. Writing each wake-up's few records cost a transaction, a WAL
/// page and several write calls per record; senders do not wake a sleeping writer.
const GROUP_WINDOW: Duration = Duration::from_millis(50);
const GROUP_STEP: Duration = Duration::from_millis(10);

enum Message {
    Flow(Box<FlowRecord>),
    Threat(Box<ThreatRecord>),
    Event(Box<EgressEvent>),
    Llm(Box<LlmRecord>, Option<Box<TurnRecord>>),
    Shutdown,
}

/// A record as the live views get it: its JSON line.
#[derive(Debug, Clone)]
pub enum LiveRecord {
    Flow(Arc<str>),
    Threat(Arc<str>),
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
    /// `log` (0, 1, 2): a reload may change it.
    log: Arc<std::sync::atomic::AtomicU8>,
    pub counters: Arc<Counters>,
    /// The Prometheus metrics, counted from the records.
    pub metrics: Arc<metrics::Metrics>,
    /// Flow and threat records as they are recorded, for live views (the dashboard); sent
    /// only while someone listens.
    pub live: tokio::sync::broadcast::Sender<LiveRecord>,
    /// The JSONL files, shared with the writer: when its queue is full, a record is appended
    /// here by its sender instead (the store misses it, and the miss is counted).
    files: Arc<Mutex<Files>>,
    dedup: Arc<Mutex<Dedup>>,
    /// Where written records go next (the OTLP exporter, the alert webhook); swapped by the
    /// server at start, on reload and at stop.
    outlets: Arc<arc_swap::ArcSwap<Outlets>>,
    /// Whether the audit log can be written now (`audit.on_failure` decides what that means
    /// for new requests).
    audit: Arc<WriteHealth>,
    store_health: Arc<WriteHealth>,
}

/// Whether the audit log (or the store) could be written when the writer last tried.
pub struct WriteHealth {
    /// What cannot be written, for the log lines ("the audit log", "the store").
    what: &'static str,
    failing: std::sync::atomic::AtomicBool,
    error: Mutex<String>,
}

impl WriteHealth {
    fn new(what: &'static str) -> Self {
        WriteHealth {
            what,
            failing: Default::default(),
            error: Mutex::default(),
        }
    }

    /// Why it cannot be written, while it cannot.
    pub fn failure(&self) -> Option<String> {
        if !self.failing.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.error.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Says so once when writing starts failing and once when it works again: a full disk
    /// fails every batch, and a log line per batch would bury everything else.
    fn set(&self, error: Option<String>) {
        let was = self.failing.swap(error.is_some(), Ordering::Relaxed);
        match error {
            Some(e) => {
                if !was {
                    tracing::error!(error = %e, "{} cannot be written", self.what);
                }
                *self.error.lock().unwrap_or_else(|p| p.into_inner()) = e;
            }
            None if was => tracing::warn!("{} can be written again", self.what),
            None => {}
        }
    }
}

/// Threats already recorded: (pattern, dest, direction) → when, for `dedup_window_secs`.
struct Dedup {
    window: Duration,
    seen: HashMap<(String, String, String), Instant>,
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
    #[error(transparent)]
    Signing(#[from] signing::SigningError),
}

impl RecordSink {
    pub fn start(config: &Config) -> Result<(RecordSink, RecordWriter), RecordError> {
        let metrics = Arc::new(metrics::Metrics::new());
        let open_error = |source| RecordError::Open {
            path: config.log_dir.display().to_string(),
            source,
        };
        crate::config::restrict_dir(&config.log_dir).map_err(open_error)?;
        let signer = signing::HeadSigner::load_or_create(&config.data_dir)?;
        signer.publish(&config.log_dir).map_err(open_error)?;
        let head = Arc::new(chain::HeadStore::open_signed(&config.log_dir, signer));
        let keeper = Keeper {
            dir: config.log_dir.clone(),
            keep: config.log_keep,
            head: head.clone(),
            metrics: Some(metrics.clone()),
        }
        .spawn()
        .map_err(open_error)?;
        let rotation = match config.log_rotate {
            crate::config::LogRotate::Size => Rotation::Size(jsonl::DEFAULT_MAX_BYTES),
            crate::config::LogRotate::Daily => Rotation::Daily,
        };
        let open = |kind: &str| {
            RotatingJsonl::open(
                &config.log_dir,
                kind,
                rotation,
                head.clone(),
                Some(keeper.clone()),
            )
            .map_err(|source| RecordError::Open {
                path: config.audit_file(kind).display().to_string(),
                source,
            })
        };
        let flows = open("flows")?;
        let threats = open("threats")?;
        let llm = open("llm")?;
        let store = if config.store.enabled {
            let store = Store::open(&config.store_path())?;
            match store.apply_retention(config.store.retention_days) {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "store retention applied"),
                Err(e) => tracing::warn!(error = %e, "store retention failed"),
            }
            Some(store)
        } else {
            None
        };
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        let audit = Arc::new(WriteHealth::new("the audit log"));
        let store_health = Arc::new(WriteHealth::new("the store"));
        let outlets = Arc::new(arc_swap::ArcSwap::from_pointee(Outlets::default()));
        let files = Arc::new(Mutex::new(Files {
            flows,
            threats,
            llm,
        }));
        let thread = std::thread::Builder::new()
            .name("airlock-records".into())
            .spawn({
                let max_mb = config.store.max_mb;
                let metrics = metrics.clone();
                let console = config.overrides.console;
                let files = files.clone();
                let shared = WriterShared {
                    audit: audit.clone(),
                    store: store_health.clone(),
                    outlets: outlets.clone(),
                };
                move || write_loop(rx, &files, store, max_mb, &metrics, &shared, console)
            })
            .map_err(|source| RecordError::Open {
                path: config.audit_file("flows").display().to_string(),
                source,
            })?;
        Ok((
            RecordSink {
                tx: tx.clone(),
                log: Arc::new(std::sync::atomic::AtomicU8::new(log_level(config.log))),
                counters: Arc::new(Counters::default()),
                metrics,
                live: tokio::sync::broadcast::channel(1024).0,
                files,
                audit,
                store_health,
                outlets,
                dedup: Arc::new(Mutex::new(Dedup {
                    window: config.detect.dedup_window,
                    seen: HashMap::new(),
                })),
            },
            RecordWriter {
                tx,
                thread: Some(thread),
            },
        ))
    }

    pub fn log_mode(&self) -> LogMode {
        match self.log.load(Ordering::Relaxed) {
            0 => LogMode::Off,
            1 => LogMode::Blocks,
            _ => LogMode::Full,
        }
    }

    /// A reloaded `log` level.
    pub fn set_log_mode(&self, mode: LogMode) {
        self.log.store(log_level(mode), Ordering::Relaxed);
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
        self.metrics.flow(&flow);
        if self.live.receiver_count() > 0
            && let Ok(json) = serde_json::to_string(&flow)
        {
            let _ = self.live.send(LiveRecord::Flow(Arc::from(json)));
        }
        self.send(Message::Flow(Box::new(flow)));
    }

    /// Level-2 events; dropped here when `log` is below full so callers need not check.
    pub fn event(&self, event: EgressEvent) {
        let level = match event {
            EgressEvent::Block { .. } | EgressEvent::Warn { .. } => LogMode::Blocks,
            _ => LogMode::Full,
        };
        if self.log_mode() >= level {
            self.send(Message::Event(Box::new(event)));
        }
    }

    /// Where written records are handed next (the exporters): replaces the previous ones,
    /// whose tasks finish what they hold once their channels close.
    pub fn set_outlets(&self, outlets: Outlets) {
        self.outlets.store(Arc::new(outlets));
    }

    /// Why the audit log cannot be written, while it cannot (a full disk, lost permissions).
    pub fn audit_failure(&self) -> Option<String> {
        self.audit.failure()
    }

    /// Why the store cannot be written, while it cannot: the records still reach the JSONL
    /// audit files, which stay the whole record (the store is their index).
    pub fn store_failure(&self) -> Option<String> {
        self.store_health.failure()
    }

    /// An LLM call's record, and its turn of a conversation when transcripts are kept.
    pub fn llm(&self, record: LlmRecord, turn: Option<TurnRecord>) {
        self.metrics.llm(&record);
        self.send(Message::Llm(Box::new(record), turn.map(Box::new)));
    }

    /// Records a threat unless the same (pattern, dest, direction) was recorded within the
    /// dedup window. Returns whether it was written.
    pub fn threat(&self, threat: ThreatRecord) -> bool {
        {
            let mut dedup = self.dedup.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let window = dedup.window;
            if dedup.seen.len() > 10_000 {
                dedup.seen.retain(|_, at| now.duration_since(*at) < window);
            }
            let key = (
                threat.pattern.clone(),
                threat.dest.clone(),
                threat.direction.clone(),
            );
            if let Some(at) = dedup.seen.get(&key)
                && now.duration_since(*at) < window
            {
                return false;
            }
            dedup.seen.insert(key, now);
        }
        self.counters.threats.fetch_add(1, Ordering::Relaxed);
        self.metrics.threat(&threat);
        if self.live.receiver_count() > 0
            && let Ok(json) = serde_json::to_string(&threat)
        {
            let _ = self.live.send(LiveRecord::Threat(Arc::from(json)));
        }
        self.send(Message::Threat(Box::new(threat)));
        true
    }

    fn send(&self, msg: Message) {
        self.metrics.store_queue.inc();
        // A full queue means the store is slower than the traffic. The request path does not
        // wait for it: the record goes straight to its audit file, and the store's miss is
        // counted (`airlock_store_dropped_total`).
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) => {
                self.metrics.store_queue.dec();
                self.overflow(msg);
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("the record writer has stopped; a record was lost");
            }
        }
    }
}

impl RecordSink {
    /// A record the writer's queue had no room for: appended to its JSONL file here.
    fn overflow(&self, msg: Message) {
        let (line, file) = match &msg {
            Message::Flow(f) => (serde_json::to_string(f), 0),
            Message::Threat(t) => (serde_json::to_string(t), 1),
            Message::Llm(r, _) => (serde_json::to_string(r), 2),
            Message::Event(e) => {
                if let Ok(line) = serde_json::to_string(e) {
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{line}");
                }
                return;
            }
            Message::Shutdown => return,
        };
        let Ok(line) = line else { return };
        self.metrics.store_dropped.inc();
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let target = match file {
            0 => &mut files.flows,
            1 => &mut files.threats,
            _ => &mut files.llm,
        };
        // The lines only: the writer's next batch moves the chain head (one rename per
        // batch, not per record, when the queue is already too slow).
        if let Err(e) = target
            .write_line(&line)
            .and_then(|()| target.write_pending())
        {
            tracing::error!(error = %e, "cannot append a record to the audit log");
        }
        drop(files);
        if let Some(record) = exported(msg) {
            self.outlets.load().offer(record, &self.metrics);
        }
    }
}

/// The part of a written record the exporters take.
fn exported(msg: Message) -> Option<ExportRecord> {
    match msg {
        Message::Flow(f) => Some(ExportRecord::Flow(f)),
        Message::Threat(t) => Some(ExportRecord::Threat(t)),
        Message::Llm(r, _) => Some(ExportRecord::Llm(r)),
        Message::Event(_) | Message::Shutdown => None,
    }
}

fn log_level(mode: LogMode) -> u8 {
    match mode {
        LogMode::Off => 0,
        LogMode::Blocks => 1,
        LogMode::Full => 2,
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

/// How often queued audit lines are tried again while the audit log cannot be written.
const AUDIT_RETRY: Duration = Duration::from_secs(1);

/// Flows written between two checks of the store's size.
const SIZE_CHECK_EVERY: u64 = 10_000;
/// Quiet time after which the writer gives back the memory a burst grew.
const RELEASE_AFTER: Duration = Duration::from_secs(2);

struct Files {
    flows: RotatingJsonl,
    threats: RotatingJsonl,
    llm: RotatingJsonl,
}

impl Files {
    fn release_memory(&mut self) {
        self.flows.release_memory();
        self.threats.release_memory();
        self.llm.release_memory();
    }
}

/// What the writer thread shares with others: whether its two destinations take what it
/// writes, and the exporters it hands records to after.
struct WriterShared {
    audit: Arc<WriteHealth>,
    store: Arc<WriteHealth>,
    outlets: Arc<arc_swap::ArcSwap<Outlets>>,
}

fn write_loop(
    rx: Receiver<Message>,
    files: &Mutex<Files>,
    mut store: Option<Store>,
    max_mb: u64,
    metrics: &metrics::Metrics,
    shared: &WriterShared,
    console: bool,
) {
    let audit = &*shared.audit;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    let mut released = false;
    let mut since_check = SIZE_CHECK_EVERY;
    while !stopping {
        if since_check >= SIZE_CHECK_EVERY {
            since_check = 0;
            if let Some(store) = &store
                && let Err(e) = store.enforce_size(max_mb)
            {
                tracing::warn!(error = %e, "cannot apply store.max_mb");
            }
        }
        // While the audit log cannot be written, what is queued is tried again every second,
        // traffic or not: writing works again as soon as the disk does.
        let failing = audit.failing.load(Ordering::Relaxed);
        let next = if failing {
            rx.recv_timeout(AUDIT_RETRY)
        } else if !released {
            rx.recv_timeout(RELEASE_AFTER)
        } else {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        match next {
            Ok(Message::Shutdown) | Err(RecvTimeoutError::Disconnected) => stopping = true,
            Ok(m) => {
                batch.push(m);
                released = false;
            }
            Err(RecvTimeoutError::Timeout) if failing => {
                write_files(files, &[], &[], &[], &[], metrics, audit);
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {
                // Quiet: what a burst grew (SQLite's page cache, the batch and line
                // buffers) goes back, for the allocator to return to the system.
                batch = Vec::new();
                if let Some(store) = &store {
                    store.release_memory();
                }
                files
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .release_memory();
                released = true;
                continue;
            }
        }
        let deadline = Instant::now() + GROUP_WINDOW;
        loop {
            stopping |= drain(&rx, &mut batch);
            if stopping || batch.len() >= MAX_BATCH || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(GROUP_STEP);
        }
        since_check += batch.len() as u64;
        metrics.store_queue.dec_by(batch.len() as i64);
        if console {
            print_console(&batch);
        }
        write_batch(&mut batch, files, store.as_mut(), metrics, shared);
    }
    // Anything sent after the shutdown request (tasks dropped while the runtime stopped).
    while let Ok(m) = rx.try_recv() {
        if !matches!(m, Message::Shutdown) {
            batch.push(m);
        }
    }
    write_batch(&mut batch, files, store.as_mut(), metrics, shared);
}

/// `start --console`: one line per request, `time METHOD URL status action`.
fn print_console(batch: &[Message]) {
    let mut out = std::io::stdout().lock();
    for msg in batch {
        if let Message::Flow(f) = msg {
            let status = f.status.map_or("-".to_string(), |s| s.to_string());
            let _ = writeln!(
                out,
                "{} {} {} {} {}",
                f.timestamp,
                f.method.as_deref().unwrap_or("-"),
                f.url.as_deref().unwrap_or("-"),
                status,
                f.action.as_str()
            );
        }
    }
    let _ = out.flush();
}

/// The start of a session's first user message, for the list of sessions.
fn session_title(turn: &TurnRecord) -> Option<String> {
    if turn.messages_from != 0 {
        return None;
    }
    let text = turn
        .messages
        .iter()
        .filter(|m| m.role == "user")
        .flat_map(|m| m.parts.iter())
        .find(|p| p.kind == "text" && !p.text.trim().is_empty())?;
    Some(text.text.trim().chars().take(120).collect())
}

/// Moves what is queued into `batch` (up to a full batch); true when a shutdown was asked.
fn drain(rx: &Receiver<Message>, batch: &mut Vec<Message>) -> bool {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(Message::Shutdown) => return true,
            Ok(m) => batch.push(m),
            Err(TryRecvError::Empty) => return false,
            Err(TryRecvError::Disconnected) => return true,
        }
    }
    false
}

fn write_batch(
    batch: &mut Vec<Message>,
    files: &Mutex<Files>,
    store: Option<&mut Store>,
    metrics: &metrics::Metrics,
    shared: &WriterShared,
) {
    if batch.is_empty() {
        return;
    }
    let mut flows: Vec<(&FlowRecord, String)> = Vec::new();
    let mut threats: Vec<(&ThreatRecord, String)> = Vec::new();
    let mut events: Vec<u8> = Vec::new();
    let mut llm: Vec<(&LlmRecord, String)> = Vec::new();
    let mut turns: Vec<(&TurnRecord, String, Option<String>)> = Vec::new();
    for msg in batch.iter() {
        match msg {
            Message::Flow(f) => {
                flows.push((f, serde_json::to_string(f).expect("flow records serialize")))
            }
            Message::Threat(t) => threats.push((
                t,
                serde_json::to_string(t).expect("threat records serialize"),
            )),
            Message::Llm(r, turn) => {
                llm.push((r, serde_json::to_string(r).expect("llm records serialize")));
                if let Some(t) = turn {
                    let json = serde_json::to_string(t).expect("turn records serialize");
                    turns.push((t, json, session_title(t)));
                }
            }
            Message::Event(e) => {
                serde_json::to_writer(&mut events, e).expect("events serialize");
                events.push(b'\n');
            }
            Message::Shutdown => {}
        }
    }
    // The store first: whatever a reader finds in a JSONL file is already counted there.
    if let Some(store) = store {
        insert_batch(
            store,
            &flows,
            &threats,
            &llm,
            &turns,
            metrics,
            &shared.store,
        );
    }
    write_files(
        files,
        &flows,
        &threats,
        &llm,
        &events,
        metrics,
        &shared.audit,
    );
    // Written: now (never before) the exporters may have them. A record's box moves on,
    // nothing is copied.
    let outlets = shared.outlets.load();
    for msg in batch.drain(..) {
        if let Some(record) = exported(msg) {
            outlets.offer(record, metrics);
        }
    }
}

type Lines<'a, T> = [(&'a T, String)];

/// Writes a batch to the store. What it cannot take (a full disk, a broken file) is counted
/// in `airlock_store_dropped_total` and shown in `status`; the JSONL audit files still get it.
fn insert_batch(
    store: &mut Store,
    flows: &Lines<'_, FlowRecord>,
    threats: &Lines<'_, ThreatRecord>,
    llm: &Lines<'_, LlmRecord>,
    turns: &[(&TurnRecord, String, Option<String>)],
    metrics: &metrics::Metrics,
    health: &WriteHealth,
) {
    let mut failure: Option<String> = None;
    let mut dropped = |n: usize, what: &str, e: store::StoreError| {
        metrics.store_dropped.inc_by(n as u64);
        failure.get_or_insert_with(|| format!("{n} {what} not stored: {e}"));
    };
    if !flows.is_empty() {
        let refs: Vec<(&FlowRecord, &str)> = flows.iter().map(|(f, j)| (*f, j.as_str())).collect();
        if let Err(e) = store.insert_flows(&refs) {
            dropped(refs.len(), "flows", e);
        }
    }
    if !threats.is_empty() {
        let refs: Vec<(&ThreatRecord, &str)> =
            threats.iter().map(|(t, j)| (*t, j.as_str())).collect();
        if let Err(e) = store.insert_threats(&refs) {
            dropped(refs.len(), "threats", e);
        }
    }
    if !llm.is_empty() {
        let refs: Vec<(&LlmRecord, &str)> = llm.iter().map(|(r, j)| (*r, j.as_str())).collect();
        if let Err(e) = store.insert_llm(&refs) {
            dropped(refs.len(), "LLM calls", e);
        }
    }
    if !turns.is_empty() {
        let refs: Vec<(&TurnRecord, &str, Option<String>)> = turns
            .iter()
            .map(|(t, j, title)| (*t, j.as_str(), title.clone()))
            .collect();
        if let Err(e) = store.insert_turns(&refs) {
            dropped(refs.len(), "conversation turns", e);
        }
    }
    health.set(failure);
}

fn write_files(
    files: &Mutex<Files>,
    flows: &Lines<'_, FlowRecord>,
    threats: &Lines<'_, ThreatRecord>,
    llm: &Lines<'_, LlmRecord>,
    events: &[u8],
    metrics: &metrics::Metrics,
    audit: &WriteHealth,
) {
    let mut files = files.lock().unwrap_or_else(|p| p.into_inner());
    let mut failure = None;
    let Files {
        flows: flows_file,
        threats: threats_file,
        llm: llm_file,
    } = &mut *files;
    // Each file gets its batch in one write, then its chain head (a no-op when it has not
    // moved; it also catches up on lines the overflow path appended).
    let sets: [(&mut RotatingJsonl, Vec<&str>); 3] = [
        (llm_file, llm.iter().map(|(_, j)| j.as_str()).collect()),
        (
            threats_file,
            threats.iter().map(|(_, j)| j.as_str()).collect(),
        ),
        (flows_file, flows.iter().map(|(_, j)| j.as_str()).collect()),
    ];
    for (file, lines) in sets {
        let mut failed = |e: std::io::Error, file: &RotatingJsonl| {
            metrics.audit_write_failures.inc();
            if let Some(lost) = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<jsonl::WriteFailure>())
            {
                metrics.audit_records_lost.inc_by(lost.lost as u64);
            }
            failure.get_or_insert_with(|| format!("cannot write {}: {e}", file.path().display()));
        };
        for json in lines {
            if let Err(e) = file.write_line(json) {
                failed(e, file);
            }
        }
        if let Err(e) = file.flush() {
            failed(e, file);
        }
    }
    audit.set(failure);
    drop(files);
    if !events.is_empty() {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(events);
        let _ = err.flush();
    }
}

/// Reads the last `n` JSON lines of a file (for `status`, `threats` and the API), oldest
/// first. A torn last line (a crash mid-write) is skipped with a warning.
pub fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    let (lines, torn) = tail_records(path, n);
    if let Some(warning) = torn {
        tracing::warn!("{warning}");
    }
    lines
}

/// `tail_lines`, with the warning about a torn last line for the caller to show.
pub fn tail_records(path: &Path, n: usize) -> (Vec<String>, Option<String>) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (Vec::new(), None);
    };
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut torn = None;
    // Without its newline a last line may still be being written, or was cut by a crash:
    // only one that does not parse is left out.
    if !text.ends_with('\n')
        && let Some(last) = lines.last()
        && serde_json::from_str::<serde::de::IgnoredAny>(last).is_err()
    {
        torn = Some(format!(
            "{}: skipped a torn last line ({} bytes without a newline: a crash or a write in progress)",
            path.display(),
            last.len()
        ));
        lines.pop();
    }
    let lines = lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect();
    (lines, torn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;

    /// The store's write ceiling (issue 12): flows a second the writer thread stores, JSONL
    /// files included, with producers as fast as they go; and SQLite's insert alone. Run by
    /// hand in release: `cargo test --release -q -- --ignored --nocapture store_write_ceiling`.
    #[test]
    #[ignore]
    fn store_write_ceiling() {
        const N: usize = 300_000;
        let dir = std::env::temp_dir().join(format!("airlock-ceiling-{}", uuid::Uuid::now_v7()));
        let overrides = Overrides {
            data_dir: Some(dir.clone()),
            ..Default::default()
        };
        let config = Config::load(None, &overrides).unwrap();
        let flow = |i: usize| {
            let mut headers = std::collections::BTreeMap::new();
            headers.insert("host".to_string(), "api.example.com".to_string());
            headers.insert("user-agent".to_string(), "python-requests/2.32".to_string());
            headers.insert("accept".to_string(), "*/*".to_string());
            FlowRecord {
                timestamp: events::now_rfc3339(),
                id: uuid::Uuid::now_v7().to_string(),
                listener: "proxy".into(),
                method: Some("GET".into()),
                url: Some(format!("https://api.example.com/v1/items/{i}?page=2")),
                host: Some("api.example.com".into()),
                status: Some(200),
                request_headers: headers,
                ..Default::default()
            }
        };
        let (sink, writer) = RecordSink::start(&config).unwrap();
        let started = Instant::now();
        std::thread::scope(|s| {
            for t in 0..2 {
                let sink = sink.clone();
                s.spawn(move || {
                    for i in 0..N / 2 {
                        sink.flow(flow(t * N + i));
                    }
                });
            }
        });
        writer.finish();
        let elapsed = started.elapsed().as_secs_f64();
        let dropped = sink
            .metrics
            .encode()
            .lines()
            .find(|l| l.starts_with("airlock_store_dropped_total "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0) as usize;
        let stored = N - dropped;
        println!(
            "store write ceiling: 2 threads sent {N} flows as fast as they could, for {elapsed:.2} s; the writer stored {stored} in SQLite + JSONL ({:.0} flows/s), the {dropped} that found its queue full went to the JSONL files directly (counted as store drops)",
            stored as f64 / elapsed
        );

        let mut store = Store::open(&dir.join("ceiling.db")).unwrap();
        let flows: Vec<FlowRecord> = (0..N).map(flow).collect();
        let lines: Vec<String> = flows
            .iter()
            .map(|f| serde_json::to_string(f).unwrap())
            .collect();
        let started = Instant::now();
        for (chunk, json) in flows.chunks(MAX_BATCH).zip(lines.chunks(MAX_BATCH)) {
            let refs: Vec<(&FlowRecord, &str)> = chunk
                .iter()
                .zip(json)
                .map(|(f, j)| (f, j.as_str()))
                .collect();
            store.insert_flows(&refs).unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "store write ceiling: SQLite insert alone, batches of {MAX_BATCH}: {:.0} flows/s",
            N as f64 / elapsed
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_record_the_queue_has_no_room_for_still_reaches_its_audit_file() {
        let dir = std::env::temp_dir().join(format!("airlock-overflow-{}", uuid::Uuid::now_v7()));
        let overrides = Overrides {
            data_dir: Some(dir.clone()),
            ..Default::default()
        };
        let config = Config::load(None, &overrides).unwrap();
        let (sink, writer) = RecordSink::start(&config).unwrap();
        let flow = FlowRecord {
            url: Some("https://overflow.example/".into()),
            ..Default::default()
        };
        sink.overflow(Message::Flow(Box::new(flow)));
        let text = std::fs::read_to_string(config.log_dir.join("flows.jsonl")).unwrap();
        assert!(text.contains("overflow.example"), "{text}");
        assert!(
            sink.metrics
                .encode()
                .contains("airlock_store_dropped_total 1")
        );
        // The writer's next line continues the chain the overflow path extended.
        sink.flow(FlowRecord {
            url: Some("https://queued.example/".into()),
            ..Default::default()
        });
        writer.finish();
        let bytes = std::fs::read(config.log_dir.join("flows.jsonl")).unwrap();
        let head = chain::ChainHead::load(&config.log_dir).unwrap().unwrap();
        assert_eq!(head.kinds["flows"].line, 2);
        let check = chain::HeadCheck {
            source: 0,
            line: 2,
            hash: chain::from_hex(head.kinds["flows"].hash.as_bytes()).unwrap(),
        };
        let sources = [chain::Source {
            name: "flows.jsonl".into(),
            bytes,
        }];
        let start = chain::Start::OneOf(vec![chain::GENESIS]);
        let reports = chain::verify(&sources, &start, Some(&check)).unwrap();
        assert_eq!(reports[0].lines, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
