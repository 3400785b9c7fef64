//! Bringing a proxy up and down: lock the data directory, load the CA, open the records,
//! bind, announce (boot line, state file), serve until told to stop, drain, flush.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::instance::{InstanceError, InstanceLock, InstanceState};
use crate::proxy::upstream::Upstreams;
use crate::proxy::{PROXY_LISTENER, ProxyContext, listener};
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
    let stop = StopWaiter::new(opts.stop);
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
    let state = |r: &RecordSink| InstanceState {
        pid: std::process::id(),
        listen: listen.to_string(),
        started_at: started_at.clone(),
        started_unix: chrono::Utc::now().timestamp(),
        config_file: config.source.as_ref().map(|p| p.display().to_string()),
        config_digest: config.digest.clone(),
        config_loaded_at: started_at.clone(),
        mitm: config.enable_mitm,
        requests: r.counters.requests.load(Ordering::Relaxed),
        blocked: r.counters.blocked.load(Ordering::Relaxed),
        threats: r.counters.threats.load(Ordering::Relaxed),
        failed: r.counters.failed.load(Ordering::Relaxed),
    };
    let mut last_state = state(&records);
    lock.write_state(&last_state);
    if let Some(ready) = opts.ready {
        let _ = ready.send(listen);
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let tasks = TaskTracker::new();
    let upstreams = Upstreams::new(&config, &tls);
    let ctx = Arc::new(ProxyContext {
        detector: Arc::new(crate::detect::Detector::new(&config.detect)),
        config: config.clone(),
        tls,
        upstreams,
        records: records.clone(),
        listen,
        tasks: tasks.clone(),
        shutdown: shutdown_rx,
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

    let stop = stop.wait();
    tokio::pin!(stop);
    let mut refresh = tokio::time::interval(STATE_REFRESH);
    let mut memory = MemoryReturn::default();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = refresh.tick() => {
                memory.after_tick(tasks.len());
                let now = state(&records);
                if now.requests != last_state.requests
                    || now.failed != last_state.failed
                    || now.threats != last_state.threats
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

enum StopWaiter {
    Signals {
        term: tokio::signal::unix::Signal,
        int: tokio::signal::unix::Signal,
        hup: tokio::signal::unix::Signal,
    },
    When(tokio::sync::oneshot::Receiver<()>),
}

impl StopWaiter {
    fn new(stop: Stop) -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        match stop {
            Stop::When(rx) => StopWaiter::When(rx),
            Stop::Signals => StopWaiter::Signals {
                term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
                int: signal(SignalKind::interrupt()).expect("SIGINT handler"),
                hup: signal(SignalKind::hangup()).expect("SIGHUP handler"),
            },
        }
    }

    async fn wait(self) {
        match self {
            StopWaiter::When(rx) => {
                let _ = rx.await;
            }
            StopWaiter::Signals {
                mut term,
                mut int,
                mut hup,
            } => loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = int.recv() => return,
                    _ = hup.recv() => {
                        // Without a handler SIGHUP would kill the proxy; live reload is not
                        // implemented yet, so say so instead of pretending.
                        tracing::warn!("SIGHUP received: live reload is not available in this version; restart airlock to apply a new config");
                    }
                }
            },
        }
    }
}
