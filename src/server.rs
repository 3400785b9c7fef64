//! Bringing a proxy up and down: lock the data directory, load the CA, open the records,
//! bind, announce (boot line, state file), serve until told to stop, drain, flush.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::instance::{InstanceError, InstanceLock, InstanceState};
use crate::proxy::upstream::Upstreams;
use crate::proxy::{Live, PROXY_LISTENER, ProxyContext, listener};
use crate::record::events::{BootLine, GatewayListen, now_rfc3339};
use crate::record::{RecordError, RecordSink};
use crate::tls::{TlsContext, TlsSetupError};

/// How long in-flight exchanges get to finish once a stop is requested (under `airlock
/// stop`'s 5 s before SIGKILL).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);
const STATE_REFRESH: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(
        "cannot listen on {addr}: {source}; choose another address with --listen or proxy_port"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the policy cannot be loaded: {0}")]
    Policy(String),
    #[error(
        "cannot listen on {addr} for gateway {name:?}: {source}; change its `listen` in the config"
    )]
    GatewayBind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// What stops the proxy.
pub enum Stop {
    /// SIGTERM or SIGINT (`airlock start`).
    Signals,
    /// The caller says when (`airlock run`, once its command exits).
    When(tokio::sync::oneshot::Receiver<()>),
}

pub struct ServeOptions {
    pub print_boot: bool,
    pub ready: Option<std::sync::mpsc::Sender<SocketAddr>>,
    pub stop: Stop,
}

/// Runs the proxy to completion on its own runtime. Blocks.
pub fn serve(config: Config, opts: ServeOptions) -> Result<(), ServeError> {
    let config = Arc::new(config);
    let lock = InstanceLock::acquire(&config.data_dir)?;
    let tls = Arc::new(TlsContext::new(&config)?);
    let (records, writer) = RecordSink::start(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("airlock")
        .build()
        .map_err(ServeError::Runtime)?;

    let result = runtime.block_on(run(config.clone(), tls, records, &lock, opts));
    // Tasks still running after the drain are dropped here; their flow trackers write the
    // records of whatever they were doing before the writer is closed below.
    runtime.shutdown_timeout(Duration::from_secs(1));
    writer.finish();
    drop(lock);
    result
}

async fn run(
    config: Arc<Config>,
    tls: Arc<TlsContext>,
    records: RecordSink,
    lock: &InstanceLock,
    opts: ServeOptions,
) -> Result<(), ServeError> {
    // Signal handlers go in before the boot line announces us: a SIGTERM sent the moment a
    // supervisor sees the boot line must stop the proxy gracefully, not kill it.
    let mut signals = SignalWaiter::new(opts.stop);
    let tcp = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let listen = tcp.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;

    // Gateways bind before the boot line too: it names the ports they really got.
    let mut gateway_listeners = Vec::new();
    for gateway in &config.gateways {
        let bind_err = |source| ServeError::GatewayBind {
            name: gateway.name.clone(),
            addr: gateway.listen,
            source,
        };
        let tcp = TcpListener::bind(gateway.listen).await.map_err(bind_err)?;
        let bound = tcp.local_addr().map_err(bind_err)?;
        gateway_listeners.push((Arc::new(gateway.clone()), tcp, bound));
    }

    let boot = BootLine {
        event: "boot",
        version: env!("CARGO_PKG_VERSION"),
        listen: listen.to_string(),
        gateways: gateway_listeners
            .iter()
            .map(|(g, _, bound)| GatewayListen {
                name: g.name.clone(),
                listen: bound.to_string(),
            })
            .collect(),
        admin: None,
        mitm: config.enable_mitm,
        log: config.log.name(),
        ca: tls.ca.cert_path().display().to_string(),
        data_dir: config.data_dir.display().to_string(),
    };
    let boot_line = serde_json::to_string(&boot).expect("boot line serializes");
    crate::diag::release(opts.print_boot.then_some(boot_line.as_str()));
    tracing::info!(listen = %listen, data_dir = %config.data_dir.display(), "airlock is listening");

    let started_at = now_rfc3339();
    // Announced at once (the detection engines take a moment to build): `status` right
    // after the boot line finds a running instance.
    lock.write_state(&InstanceState {
        pid: std::process::id(),
        listen: listen.to_string(),
        started_at: started_at.clone(),
        started_unix: chrono::Utc::now().timestamp(),
        config_file: config.source.as_ref().map(|p| p.display().to_string()),
        config_digest: config.digest.clone(),
        config_loaded_at: started_at.clone(),
        mitm: config.enable_mitm,
        lockdown: lockdown_path(&config).exists(),
        requests: 0,
        blocked: 0,
        threats: 0,
        failed: 0,
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let tasks = TaskTracker::new();
    let upstreams = Upstreams::new(&config, &tls);
    let internal = crate::proxy::upstream::internal_client(&config, &tls);
    let policy = crate::policy::Policy::build(&config.policy, None).map_err(ServeError::Policy)?;
    let live = Arc::new(arc_swap::ArcSwap::from_pointee(Live {
        config: config.clone(),
        detector: Arc::new(crate::detect::Detector::new(&config.detect)),
        policy: Arc::new(policy),
        loaded_at: started_at.clone(),
    }));
    let lockdown = Arc::new(AtomicBool::new(lockdown_path(&config).exists()));
    if lockdown.load(Ordering::Relaxed) {
        tracing::warn!(
            "lockdown is on (left on by `airlock lockdown on` or SIGUSR1): only lockdown_allow hosts are reachable"
        );
    }
    keep_remote_fresh(&live.load(), None, &internal, &shutdown_rx, &tasks);
    log_routes(&config);

    let state = |r: &RecordSink| {
        let current = live.load();
        InstanceState {
            pid: std::process::id(),
            listen: listen.to_string(),
            started_at: started_at.clone(),
            started_unix: chrono::Utc::now().timestamp(),
            config_file: config.source.as_ref().map(|p| p.display().to_string()),
            config_digest: current.config.digest.clone(),
            config_loaded_at: current.loaded_at.clone(),
            mitm: config.enable_mitm,
            lockdown: lockdown.load(Ordering::Relaxed),
            requests: r.counters.requests.load(Ordering::Relaxed),
            blocked: r.counters.blocked.load(Ordering::Relaxed),
            threats: r.counters.threats.load(Ordering::Relaxed),
            failed: r.counters.failed.load(Ordering::Relaxed),
        }
    };
    let mut last_state = state(&records);
    lock.write_state(&last_state);
    if let Some(ready) = opts.ready {
        let _ = ready.send(listen);
    }

    let ctx = Arc::new(ProxyContext {
        config: config.clone(),
        live: live.clone(),
        lockdown: lockdown.clone(),
        budgets: Arc::new(crate::policy::BudgetLedger::default()),
        tls,
        upstreams,
        records: records.clone(),
        listen,
        tasks: tasks.clone(),
        shutdown: shutdown_rx.clone(),
        listener_name: Arc::from(PROXY_LISTENER),
        gateway: None,
        proxy_listen: listen,
        prices: Arc::new(airlock_llm::PriceTable::with_overrides(
            config.prices.iter().map(|(model, p)| {
                (
                    model.clone(),
                    airlock_llm::Price {
                        input: p.input,
                        output: p.output,
                        cache_read: p.cache_read,
                        cache_write: p.cache_write,
                    },
                )
            }),
        )),
    });
    let mut accepts = vec![tokio::spawn(listener::accept_loop(ctx.clone(), tcp))];
    for (gateway, tcp, bound) in gateway_listeners {
        let gw_ctx = Arc::new(ctx.for_gateway(gateway, bound));
        accepts.push(tokio::spawn(listener::accept_loop(gw_ctx, tcp)));
    }

    let mut refresh = tokio::time::interval(STATE_REFRESH);
    let mut memory = MemoryReturn::default();
    let mut watched: Option<FileStamp> = None;
    let mut pending: Option<FileStamp> = None;
    loop {
        tokio::select! {
            event = signals.next() => match event {
                SignalEvent::Stop => break,
                SignalEvent::Reload => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    reload(&ctx, &internal, &shutdown_rx, &tasks);
                    watched = Some(FileStamp::of(config.source.as_deref()));
                }
                SignalEvent::Lockdown => {
                    ctx.lockdown.store(true, Ordering::Relaxed);
                    if let Err(e) = std::fs::write(lockdown_path(&config), b"on\n") {
                        tracing::warn!(error = %e, "cannot write the lockdown file; lockdown is on until airlock restarts");
                    }
                    tracing::warn!("SIGUSR1: lockdown is on; only lockdown_allow hosts are reachable (airlock lockdown off lifts it)");
                }
            },
            _ = refresh.tick() => {
                memory.after_tick(tasks.len());
                // A change of the config file reloads it once the file has stayed the same
                // for a tick (an editor's truncate-then-write is not read half written) and
                // its content differs from the active one (also a change made while
                // airlock was starting).
                if let Some(path) = config.source.as_deref() {
                    let now = FileStamp::of(Some(path));
                    if watched.as_ref() != Some(&now) {
                        if pending.as_ref() == Some(&now) {
                            watched = Some(now);
                            pending = None;
                            let changed = std::fs::read(path)
                                .map(|b| crate::config::sha256_hex(&b) != ctx.live().config.digest)
                                .unwrap_or(false);
                            if changed {
                                tracing::info!("the config file changed: reloading it");
                                reload(&ctx, &internal, &shutdown_rx, &tasks);
                            }
                        } else {
                            pending = Some(now);
                        }
                    }
                }
                let now = state(&records);
                if now.requests != last_state.requests
                    || now.failed != last_state.failed
                    || now.threats != last_state.threats
                    || now.config_digest != last_state.config_digest
                    || now.config_loaded_at != last_state.config_loaded_at
                    || now.lockdown != last_state.lockdown
                {
                    lock.write_state(&now);
                    last_state = now;
                }
            }
        }
    }

    tracing::info!("stopping: no new connections; draining open exchanges");
    let _ = shutdown_tx.send(true);
    for accept in accepts {
        let _ = accept.await;
    }
    tasks.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::info!(
            open = tasks.len(),
            "drain timed out; closing the remaining connections"
        );
    }
    lock.write_state(&state(&records));
    Ok(())
}

/// Gives freed memory back to the system after a burst of connections has closed: glibc
/// keeps it in its arenas otherwise (RSS stayed at the peak after 1,000 connections closed;
/// a trim took it back to near idle).
#[derive(Default)]
struct MemoryReturn {
    peak: usize,
}

impl MemoryReturn {
    /// Connections that must have been open for a trim to be worth it.
    const BURST: usize = 64;

    fn after_tick(&mut self, open: usize) {
        self.peak = self.peak.max(open);
        if self.peak >= Self::BURST && open <= self.peak / 4 {
            self.peak = open;
            // It walks the heap for a few milliseconds: not on a worker thread.
            tokio::task::spawn_blocking(|| {
                // SAFETY: malloc_trim only releases free memory of this process's heap.
                unsafe { libc::malloc_trim(0) };
            });
        }
    }
}

/// What a signal asks for.
enum SignalEvent {
    Stop,
    Reload,
    Lockdown,
}

/// SIGTERM/SIGINT stop, SIGHUP reloads the config, SIGUSR1 turns lockdown on. An in-process
/// instance (`airlock run`) stops when told instead.
enum SignalWaiter {
    Signals {
        term: tokio::signal::unix::Signal,
        int: tokio::signal::unix::Signal,
        hup: tokio::signal::unix::Signal,
        usr1: tokio::signal::unix::Signal,
    },
    When(Option<tokio::sync::oneshot::Receiver<()>>),
}

impl SignalWaiter {
    fn new(stop: Stop) -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        match stop {
            Stop::When(rx) => SignalWaiter::When(Some(rx)),
            Stop::Signals => SignalWaiter::Signals {
                term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
                int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
                hup: signal(SignalKind::hangup()).expect("SIGHUP handler"),
                usr1: signal(SignalKind::user_defined1()).expect("SIGUSR1 handler"),
            },
        }
    }

    async fn next(&mut self) -> SignalEvent {
        match self {
            SignalWaiter::When(rx) => {
                match rx.as_mut() {
                    Some(r) => {
                        let _ = r.await;
                        *rx = None;
                    }
                    None => std::future::pending::<()>().await,
                }
                SignalEvent::Stop
            }
            SignalWaiter::Signals {
                term,
                int,
                hup,
                usr1,
            } => tokio::select! {
                _ = term.recv() => SignalEvent::Stop,
                _ = int.recv() => SignalEvent::Stop,
                _ = hup.recv() => SignalEvent::Reload,
                _ = usr1.recv() => SignalEvent::Lockdown,
            },
        }
    }
}

/// Where `airlock lockdown on` and SIGUSR1 leave lockdown on (it survives a restart).
pub fn lockdown_path(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("lockdown")
}

/// A file's modification time and length: a change means it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp(Option<(std::time::SystemTime, u64)>);

impl FileStamp {
    fn of(path: Option<&std::path::Path>) -> FileStamp {
        FileStamp(
            path.and_then(|p| std::fs::metadata(p).ok())
                .and_then(|m| Some((m.modified().ok()?, m.len()))),
        )
    }
}

/// Reloads the config file: policy, routes, detection, `log`, lockdown. A file that does not
/// load, or whose policy does not compile, is refused and the running settings stay. Open
/// connections and exchanges in flight keep the settings they started with.
fn reload(
    ctx: &Arc<ProxyContext>,
    internal: &crate::proxy::upstream::PooledClient,
    shutdown: &watch::Receiver<bool>,
    tasks: &TaskTracker,
) {
    let old = ctx.live();
    ctx.lockdown
        .store(lockdown_path(&old.config).exists(), Ordering::Relaxed);
    let config = match Config::load(old.config.source.as_deref(), &old.config.overrides) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(error = %e, "the new config is refused; the running settings stay");
            return;
        }
    };
    let policy = match crate::policy::Policy::build(&config.policy, old.policy.remote().cloned()) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            tracing::error!(error = %e, "the new policy is refused; the running settings stay");
            return;
        }
    };
    if config.digest == old.config.digest {
        return;
    }
    let restart_only = restart_only_changes(&old.config, &config);
    if !restart_only.is_empty() {
        tracing::warn!(
            keys = %restart_only.join(", "),
            "these settings changed but apply only after a restart"
        );
    }
    let detector = if config.detect == old.config.detect {
        old.detector.clone()
    } else {
        Arc::new(old.detector.with_settings(&config.detect))
    };
    ctx.records.set_log_mode(config.log);
    let live = Live {
        config: config.clone(),
        detector,
        policy,
        loaded_at: now_rfc3339(),
    };
    keep_remote_fresh(&live, Some(&old), internal, shutdown, tasks);
    log_routes(&config);
    tracing::info!(
        digest = %config.digest,
        rules = live.policy.rule_count(),
        routes = config.routes.len(),
        "configuration reloaded"
    );
    ctx.live.store(Arc::new(live));
}

/// Says which credentials the routes inject (where from, never the value).
fn log_routes(config: &Config) {
    for route in &config.routes {
        tracing::info!(host = %route.host, header = %route.header, from = %route.origin, "route injects a credential");
    }
}

/// Keys a running instance cannot change (its listeners, TLS, dialer).
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.listen != new.listen {
        keys.push("proxy_host/proxy_port");
    }
    if old.enable_mitm != new.enable_mitm {
        keys.push("enable_mitm");
    }
    if old.data_dir != new.data_dir || old.log_dir != new.log_dir {
        keys.push("data_dir/log_dir");
    }
    if old.upstream_ca != new.upstream_ca {
        keys.push("upstream_ca");
    }
    if old.allow_private != new.allow_private {
        keys.push("allow_private");
    }
    if old.gateways.len() != new.gateways.len()
        || old
            .gateways
            .iter()
            .zip(&new.gateways)
            .any(|(a, b)| a.name != b.name || a.listen != b.listen)
    {
        keys.push("gateways");
    }
    keys
}

/// Starts pulling the policy source of `live` unless `previous` already did (same source).
fn keep_remote_fresh(
    live: &Live,
    previous: Option<&Live>,
    internal: &crate::proxy::upstream::PooledClient,
    shutdown: &watch::Receiver<bool>,
    tasks: &TaskTracker,
) {
    let Some(remote) = live.policy.remote() else {
        return;
    };
    if let Some(prev) = previous.and_then(|p| p.policy.remote())
        && Arc::ptr_eq(prev, remote)
    {
        return;
    }
    tasks.spawn(crate::policy::remote::keep_fresh(
        Arc::downgrade(remote),
        internal.clone(),
        shutdown.clone(),
    ));
}
