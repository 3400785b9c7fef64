//! Bringing a proxy up and down: lock the data directory, load the CA, open the records,
//! build the engines, bind, announce (boot line, state file), serve until told to stop,
//! drain, flush. Reloads (`reload`), signals (`signals`) and the policy source's fetching
//! (`policy_source`) are driven from here.

mod export;
mod lockdown;
mod memory;
mod policy_source;
mod reload;
mod signals;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::config::{Config, GatewayConfig, PROXY_LISTENER};
use crate::instance::{InstanceError, InstanceLock, InstanceState};
use crate::pipeline::live::SettingsError;
use crate::pipeline::{Guards, Live, Pipeline};
use crate::proxy::dns::{self, JailNames};
use crate::proxy::upstream::{Upstreams, internal_client};
use crate::proxy::{ProxyContext, listener, transparent};
use crate::record::events::{BootLine, GatewayListen, now_rfc3339};
use crate::record::{RecordError, RecordSink};
use crate::tls::{TlsContext, TlsSetupError};
use lockdown::lockdown_on;
pub use lockdown::lockdown_path;
pub use memory::reexec_with_allocator_tunables;
use memory::{AfterTick, MemoryReturn};
use reload::{ConfigWatch, log_routes, reload};
pub use signals::Stop;
use signals::{SignalEvent, SignalWaiter};

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
    /// A setting the engines refuse: a config error (exit 2).
    #[error(transparent)]
    Settings(#[from] SettingsError),
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
    #[error(
        "cannot listen on {addr} for the transparent listener: {source}; choose another transparent_port"
    )]
    TransparentBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {addr} for the admin server: {source}; change admin.listen, or set admin: null"
    )]
    AdminBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    #[error("{0}")]
    ProxyAuth(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

pub struct ServeOptions {
    pub print_boot: bool,
    pub ready: Option<std::sync::mpsc::Sender<Bound>>,
    pub stop: Stop,
}

/// The addresses a started proxy really got.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub listen: SocketAddr,
    pub jail: Option<JailPorts>,
}

/// Where a jail's rules send its traffic.
#[derive(Debug, Clone, Copy)]
pub struct JailPorts {
    /// TCP: the transparent listener; UDP on the same port: the jail's DNS.
    pub transparent: SocketAddr,
    /// UDP other than DNS, recorded as BYPASS.
    pub bypass_udp: SocketAddr,
}

/// Runs the proxy to completion on its own runtime. Blocks.
pub fn serve(config: Config, opts: ServeOptions) -> Result<(), ServeError> {
    memory::tune_allocator();
    let config = Arc::new(config);
    // What only the engines can judge is checked before anything is locked or bound.
    crate::pipeline::live::check(&config)?;
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

/// The bound listeners: the proxy's and each gateway's, with the addresses they really got.
struct Listeners {
    proxy: TcpListener,
    listen: SocketAddr,
    gateways: Vec<(Arc<GatewayConfig>, TcpListener, SocketAddr)>,
    jail: Option<JailSockets>,
    admin: Option<(TcpListener, SocketAddr)>,
}

/// The transparent listener, the jail DNS on the same port, and the UDP catcher.
struct JailSockets {
    tcp: TcpListener,
    dns: UdpSocket,
    catcher: UdpSocket,
    ports: JailPorts,
}

async fn bind_jail(addr: SocketAddr, backlog: u32) -> Result<JailSockets, ServeError> {
    let err = |source| ServeError::TransparentBind { addr, source };
    // With port 0 the TCP port is chosen first and the UDP one must match it: a few tries.
    let mut tries = 0;
    let (tcp, dns, bound) = loop {
        let tcp = bind_tcp(addr, backlog).map_err(err)?;
        let bound = tcp.local_addr().map_err(err)?;
        match UdpSocket::bind(bound).await {
            Ok(dns) => break (tcp, dns, bound),
            Err(e) if addr.port() == 0 && tries < 20 => {
                tries += 1;
                tracing::debug!(error = %e, "jail DNS port taken; trying another");
            }
            Err(e) => return Err(err(e)),
        }
    };
    let catcher = UdpSocket::bind(SocketAddr::new(addr.ip(), 0))
        .await
        .map_err(err)?;
    let bypass_udp = catcher.local_addr().map_err(err)?;
    Ok(JailSockets {
        tcp,
        dns,
        catcher,
        ports: JailPorts {
            transparent: bound,
            bypass_udp,
        },
    })
}

/// The listen queue for the client-facing listeners. tokio's `bind` asks for 1,024, so a burst
/// of more new connections than that (a slowloris, or many agents starting at once) saw SYNs
/// dropped and retried a second or three later, before `header_timeout` even began. The kernel
/// caps it at `net.core.somaxconn`.
fn listen_backlog(max_connections: usize) -> u32 {
    max_connections.clamp(1024, 65_535) as u32
}

fn bind_tcp(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As tokio's own bind does: a restart finds the port free though old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

async fn bind(config: &Config) -> Result<Listeners, ServeError> {
    let backlog = listen_backlog(config.limits.max_connections);
    let proxy = bind_tcp(config.listen, backlog).map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let listen = proxy.local_addr().map_err(|source| ServeError::Bind {
        addr: config.listen,
        source,
    })?;
    let mut gateways = Vec::new();
    for gateway in &config.gateways {
        let bind_err = |source| ServeError::GatewayBind {
            name: gateway.name.clone(),
            addr: gateway.listen,
            source,
        };
        let tcp = bind_tcp(gateway.listen, backlog).map_err(bind_err)?;
        let bound = tcp.local_addr().map_err(bind_err)?;
        gateways.push((Arc::new(gateway.clone()), tcp, bound));
    }
    let jail = match config.transparent {
        Some(addr) => Some(bind_jail(addr, backlog).await?),
        None => None,
    };
    let admin = match &config.admin {
        Some(settings) => match TcpListener::bind(settings.listen).await {
            Ok(tcp) => {
                let bound = tcp.local_addr().map_err(|source| ServeError::AdminBind {
                    addr: settings.listen,
                    source,
                })?;
                Some((tcp, bound))
            }
            // The default address taken (another instance on another data directory): this
            // one runs without an admin server rather than not at all.
            Err(e) if !settings.explicit => {
                tracing::warn!(
                    addr = %settings.listen,
                    error = %e,
                    "the admin server's default address is taken: running without it (set admin.listen to another address)"
                );
                None
            }
            Err(source) => {
                return Err(ServeError::AdminBind {
                    addr: settings.listen,
                    source,
                });
            }
        },
        None => None,
    };
    Ok(Listeners {
        proxy,
        listen,
        gateways,
        jail,
        admin,
    })
}

fn boot_line(
    config: &Config,
    tls: &TlsContext,
    listeners: &Listeners,
    jail: Option<JailPorts>,
) -> String {
    let boot = BootLine {
        event: "boot",
        version: env!("CARGO_PKG_VERSION"),
        listen: listeners.listen.to_string(),
        gateways: listeners
            .gateways
            .iter()
            .map(|(g, _, bound)| GatewayListen {
                name: g.name.clone(),
                listen: bound.to_string(),
            })
            .collect(),
        admin: listeners.admin.as_ref().map(|(_, a)| a.to_string()),
        mitm: config.enable_mitm,
        log: config.log.name(),
        ca: tls.ca.cert_path().display().to_string(),
        data_dir: config.data_dir.display().to_string(),
        transparent: jail.map(|j| j.transparent.to_string()),
    };
    serde_json::to_string(&boot).expect("boot line serializes")
}

/// What `status` reads about the running instance (the state file).
struct StateFile<'a> {
    lock: &'a InstanceLock,
    config: &'a Config,
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    jail: Option<JailPorts>,
    started_at: String,
    last: Option<InstanceState>,
}

impl StateFile<'_> {
    fn snapshot(&self, live: Option<&Live>, lockdown: bool, records: &RecordSink) -> InstanceState {
        let counters = &records.counters;
        InstanceState {
            pid: std::process::id(),
            listen: self.listen.to_string(),
            started_at: self.started_at.clone(),
            started_unix: chrono::Utc::now().timestamp(),
            config_file: self.config.source.as_ref().map(|p| p.display().to_string()),
            config_digest: live
                .map_or(&self.config.digest, |l| &l.config.digest)
                .clone(),
            config_loaded_at: live.map_or(&self.started_at, |l| &l.loaded_at).clone(),
            mitm: self.config.enable_mitm,
            lockdown,
            requests: counters.requests.load(Ordering::Relaxed),
            blocked: counters.blocked.load(Ordering::Relaxed),
            threats: counters.threats.load(Ordering::Relaxed),
            failed: counters.failed.load(Ordering::Relaxed),
            admin: self.admin.map(|a| a.to_string()),
            transparent: self.jail.map(|j| j.transparent.to_string()),
            bypass_udp: self.jail.map(|j| j.bypass_udp.to_string()),
        }
    }

    /// Writes the state when something `status` shows has changed.
    fn update(&mut self, now: InstanceState) {
        let changed = self.last.as_ref().is_none_or(|last| {
            now.requests != last.requests
                || now.failed != last.failed
                || now.threats != last.threats
                || now.config_digest != last.config_digest
                || now.config_loaded_at != last.config_loaded_at
                || now.lockdown != last.lockdown
        });
        if changed {
            self.lock.write_state(&now);
            self.last = Some(now);
        }
    }
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
    // Gateways bind before the boot line too: it names the ports they really got.
    let admin_token = crate::admin::token(&config)?;
    let proxy_credential = match &config.proxy_auth {
        Some(auth) => Some(Arc::<[u8]>::from(
            format!(
                "{}:{}",
                auth.username,
                auth.password().map_err(ServeError::ProxyAuth)?
            )
            .into_bytes(),
        )),
        None => None,
    };
    let mut listeners = bind(&config).await?;
    let listen = listeners.listen;
    let jail_sockets = listeners.jail.take();
    let jail_ports = jail_sockets.as_ref().map(|j| j.ports);
    let admin_addr = listeners.admin.as_ref().map(|(_, a)| *a);
    let boot = boot_line(&config, &tls, &listeners, jail_ports);
    crate::diag::release(opts.print_boot.then_some(boot.as_str()));
    tracing::info!(listen = %listen, data_dir = %config.data_dir.display(), "airlock is listening");

    let started_at = now_rfc3339();
    let mut state = StateFile {
        lock,
        config: &config,
        listen,
        admin: admin_addr,
        jail: jail_ports,
        started_at: started_at.clone(),
        last: None,
    };
    let guards = Guards::default();
    guards
        .lockdown
        .store(lockdown_path(&config).exists(), Ordering::Relaxed);
    if !config.llm_budgets.is_empty() {
        seed_llm_spend(&config, &guards.llm_spend);
    }
    // Announced at once (the detection engines take a moment to build): `status` right
    // after the boot line finds a running instance.
    state.update(state.snapshot(None, guards.locked_down(), &records));
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let tasks = TaskTracker::new();
    let internal = internal_client(&config, &tls);
    let live = Live::build(config.clone(), None, started_at)?;
    if guards.locked_down() {
        tracing::warn!(
            "lockdown is on (left on by `airlock lockdown on` or SIGUSR1): only lockdown_allow hosts are reachable"
        );
    }
    policy_source::keep_remote_fresh(&live, None, &internal, &shutdown_rx, &tasks);
    let mut exports = export::Exports::start(&config, &records, &internal);
    log_routes(&config);
    let pipeline = Pipeline {
        live: Arc::new(arc_swap::ArcSwap::from_pointee(live)),
        guards,
        records: records.clone(),
        prices: Arc::new(prices(&config)),
        gateway: None,
        sessions: Arc::default(),
    };
    state.update(state.snapshot(
        Some(&pipeline.live()),
        pipeline.guards.locked_down(),
        &records,
    ));
    if let Some(ready) = opts.ready {
        let _ = ready.send(Bound {
            listen,
            jail: jail_ports,
        });
    }

    let ctx = Arc::new(ProxyContext {
        config: config.clone(),
        pipeline,
        upstreams: Upstreams::new(&config, &tls),
        tls,
        listen,
        tasks: tasks.clone(),
        shutdown: shutdown_rx.clone(),
        listener_name: Arc::from(PROXY_LISTENER),
        proxy_listen: listen,
        proxy_credential,
    });
    if config.proxy_auth.is_some() {
        tracing::info!(listen = %listen, "the proxy requires proxy_auth (Proxy-Authorization: Basic)");
    } else if !listen.ip().is_loopback() {
        tracing::warn!(listen = %listen, "--insecure-open: the proxy is open to anyone who can reach {listen}");
    }
    let mut accepts = accept(&ctx, listeners.proxy, listeners.gateways);
    if let Some((tcp, addr)) = listeners.admin.take() {
        if admin_token.is_some() {
            tracing::info!(admin = %addr, "the admin server requires a bearer token (admin.token_env)");
        }
        let state = Arc::new(crate::admin::AdminState {
            live: ctx.pipeline.live.clone(),
            records: records.clone(),
            tls: ctx.tls.clone(),
            token: admin_token,
            shutdown: shutdown_rx.clone(),
            pending: ctx.pipeline.guards.pending.clone(),
        });
        let mut shutdown = shutdown_rx.clone();
        accepts.push(tokio::spawn(crate::admin::serve(tcp, state, async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        })));
    }
    if let Some(jail) = jail_sockets {
        tracing::info!(
            transparent = %jail.ports.transparent,
            "transparent listener and jail DNS are listening"
        );
        let names = Arc::new(JailNames::default());
        accepts.push(tokio::spawn(transparent::accept_loop(
            ctx.clone(),
            jail.tcp,
            names.clone(),
        )));
        accepts.push(tokio::spawn(dns::serve(
            ctx.clone(),
            jail.dns,
            names.clone(),
        )));
        accepts.push(tokio::spawn(transparent::catch_udp(
            ctx.clone(),
            jail.catcher,
            names,
        )));
    }

    let mut refresh = tokio::time::interval(STATE_REFRESH);
    let mut memory = MemoryReturn::default();
    let mut watch = ConfigWatch::default();
    loop {
        tokio::select! {
            event = signals.next() => match event {
                SignalEvent::Stop => break,
                SignalEvent::Reload => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    reload(&ctx, &internal, &shutdown_rx, &tasks);
                    exports.update(&ctx.pipeline.live().config, &records);
                    watch.loaded(&config);
                }
                SignalEvent::Lockdown => lockdown_on(&ctx, &config),
            },
            _ = refresh.tick() => {
                let peak = ctx.pipeline.records.metrics.open_connections_peak.swap(0, std::sync::atomic::Ordering::Relaxed);
                if memory.after_tick(tasks.len(), peak) == AfterTick::DropIdleUpstreams {
                    tracing::info!("quiet after a burst: closing the idle upstream connections");
                    ctx.upstreams.drop_idle();
                }
                if watch.changed(&ctx.pipeline.live().config) {
                    tracing::info!("the config file changed: reloading it");
                    reload(&ctx, &internal, &shutdown_rx, &tasks);
                    exports.update(&ctx.pipeline.live().config, &records);
                }
                let live = ctx.pipeline.live();
                state.update(state.snapshot(Some(&live), ctx.pipeline.guards.locked_down(), &records));
            }
        }
    }

    tracing::info!("stopping: no new connections; draining open exchanges");
    let _ = shutdown_tx.send(true);
    // Held requests would keep the drain waiting for a person: they are denied now.
    ctx.pipeline.guards.pending.close();
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
    exports.close(&records).await;
    let live = ctx.pipeline.live();
    lock.write_state(&state.snapshot(Some(&live), ctx.pipeline.guards.locked_down(), &records));
    Ok(())
}

/// Starts the accept loops: the proxy's, and one per gateway with its own context.
fn accept(
    ctx: &Arc<ProxyContext>,
    proxy: TcpListener,
    gateways: Vec<(Arc<GatewayConfig>, TcpListener, SocketAddr)>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut accepts = vec![tokio::spawn(listener::accept_loop(ctx.clone(), proxy))];
    for (gateway, tcp, bound) in gateways {
        let gw_ctx = Arc::new(ctx.for_gateway(gateway, bound));
        accepts.push(tokio::spawn(listener::accept_loop(gw_ctx, tcp)));
    }
    accepts
}

/// LLM prices: the shipped table, then `prices_file`, then the config's `prices` on top.
fn prices(config: &Config) -> airlock_llm::PriceTable {
    let price = |p: &crate::config::PriceSetting| airlock_llm::Price {
        input: p.input,
        output: p.output,
        cache_read: p.cache_read,
        cache_write: p.cache_write,
    };
    airlock_llm::PriceTable::with_overrides(
        config
            .file_prices
            .iter()
            .chain(&config.prices)
            .map(|(model, p)| (model.clone(), price(p))),
    )
}

/// The last day's LLM calls from the store, into the spend ledger of the LLM budgets.
fn seed_llm_spend(config: &Config, ledger: &crate::policy::LlmLedger) {
    if !config.store.enabled {
        tracing::info!("the store is off: the LLM budgets start from zero");
        return;
    }
    let path = config.store_path();
    let since = crate::record::events::rfc3339(chrono::Utc::now() - chrono::Duration::days(1));
    let calls = match crate::record::store::Store::open_read_only(&path)
        .and_then(|s| s.llm_calls(Some(&since), 0, usize::MAX))
    {
        Ok(calls) => calls,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the day's LLM calls: the LLM budgets start from zero");
            return;
        }
    };
    let now = chrono::Utc::now();
    for (_, record) in calls {
        let Ok(call) = serde_json::from_str::<crate::record::events::LlmRecord>(&record) else {
            continue;
        };
        let (Ok(at), Ok(source)) = (
            chrono::DateTime::parse_from_rfc3339(&call.timestamp),
            call.source.parse(),
        ) else {
            continue;
        };
        let ago = (now - at.with_timezone(&chrono::Utc))
            .to_std()
            .unwrap_or_default();
        let tokens = call.input_tokens
            + call.output_tokens
            + call.cache_read_tokens
            + call.cache_write_tokens;
        ledger.record_ago(
            ago,
            source,
            &call.listener,
            call.cost_usd.unwrap_or(0.0),
            tokens,
        );
    }
}
