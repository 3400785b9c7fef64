//! `airlock run [--jail] -- CMD [ARGS…]`: runs CMD with the proxy and CA environment set,
//! through the running instance or, if none runs, a private one for CMD's lifetime.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use super::Failure;
use super::clients;
use super::verify::Environment;
use crate::config::Config;
use crate::instance::{InstanceState, Probe, probe};
use crate::server::{Bound, ServeOptions, Stop, serve};
use crate::tls::CertificateAuthority;

/// Variables pointed at the proxy: the usual four, and the ones that override a client's
/// own configuration file (npmrc, Cargo's config).
const PROXY_VARS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "npm_config_proxy",
    "npm_config_https_proxy",
    "CARGO_HTTP_PROXY",
];
const NO_PROXY: &str = "localhost,127.0.0.1,::1";

pub fn run(
    config: Config,
    verify: bool,
    node_preload: bool,
    program: &str,
    args: &[String],
) -> Result<ExitCode, Failure> {
    let (listen, private) = proxy_for(&config)?;
    let result = (|| {
        ensure_bundle(&config)?;
        let mut env = client_environment(&config, &listen);
        if node_preload {
            let preload = clients::node_preload(&config.data_dir.join("clients"), &env)
                .map_err(|e| Failure::runtime(format!("--node-preload: {e}")))?;
            let options = match std::env::var("NODE_OPTIONS") {
                Ok(own) if !own.trim().is_empty() => format!("{own} {preload}"),
                _ => preload,
            };
            env.push(("NODE_OPTIONS".into(), options));
        }
        if verify {
            let checks = super::verify::check_environment(&Environment::with(&env), &config);
            if let Some(wrong) = super::verify::failures(&checks) {
                return Err(Failure::runtime(format!(
                    "not starting {program:?}: airlock would not be in its path ({wrong}). Fix that, or pass --no-verify to start it anyway"
                )));
            }
        }
        let mut cmd = Command::new(program);
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        let status = cmd
            .status()
            .map_err(|e| Failure::runtime(format!("cannot run {program:?}: {e}")))?;
        Ok(exit_code(status))
    })();
    if let Some(private) = private {
        private.stop();
    }
    result
}

/// The proxy CMD goes through: the instance running on the data directory (its listen
/// address), else a private one on a free port, stopped by the caller.
pub(super) fn proxy_for(config: &Config) -> Result<(String, Option<Private>), Failure> {
    Ok(match running_state(config) {
        Some(state) => (state.listen, None),
        None => {
            let mut private_config = config.clone();
            private_config.listen.set_port(0);
            let (private, bound) = Private::start(private_config)?;
            (bound.listen.to_string(), Some(private))
        }
    })
}

/// CMD's exit status as airlock's: its code, or 128 + the signal that killed it.
pub(super) fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code.clamp(0, 255) as u8),
        (None, Some(sig)) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
        _ => ExitCode::FAILURE,
    }
}

/// The running instance wrote the bundle at its start; make sure it is there regardless.
pub(super) fn ensure_bundle(config: &Config) -> Result<(), Failure> {
    if !config.bundle_path().exists() {
        let ca = CertificateAuthority::load_or_create(&config.ca_dir())
            .map_err(|e| Failure::runtime(e.to_string()))?;
        let system = crate::tls::roots::system_roots(ca.cert_der());
        crate::tls::roots::write_bundle(&config.bundle_path(), &system, ca.cert_pem())
            .map_err(|e| Failure::runtime(e.to_string()))?;
    }
    Ok(())
}

/// A proxy started for CMD's lifetime, on a thread of this process.
pub(super) struct Private {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), crate::server::ServeError>>,
}

impl Private {
    pub(super) fn start(mut config: Config) -> Result<(Private, Bound), Failure> {
        // A private instance lives as long as one command: no admin server (it would take
        // the default address from the instance the user starts later).
        config.admin = None;
        // The command's terminal is the agent's: only warnings and worse from the proxy,
        // unless the config asks for more.
        crate::diag::init(match config.log_level {
            crate::config::DiagLevel::Info => crate::config::DiagLevel::Warn,
            other => other,
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("airlock-proxy".into())
            .spawn(move || {
                serve(
                    config,
                    ServeOptions {
                        print_boot: false,
                        ready: Some(ready_tx),
                        stop: Stop::When(stop_rx),
                    },
                )
            })
            .map_err(|e| Failure::runtime(format!("cannot start the proxy: {e}")))?;
        match ready_rx.recv() {
            Ok(bound) => Ok((
                Private {
                    stop: stop_tx,
                    thread,
                },
                bound,
            )),
            // The proxy thread ended before listening: its error says why.
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(e.into()),
                _ => Err(Failure::runtime("the proxy stopped during start-up")),
            },
        }
    }

    pub(super) fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// The variables CMD gets: proxy and trust for every client airlock knows how to reach.
pub(super) fn client_environment(config: &Config, listen: &str) -> Vec<(String, String)> {
    // With proxy_auth the URL carries the credentials: that is where clients look for them.
    let proxy_url = match config.proxy_auth.as_ref().map(|a| (a, a.password())) {
        Some((auth, Ok(password))) => format!(
            "http://{}:{}@{listen}",
            userinfo_encode(&auth.username),
            userinfo_encode(&password)
        ),
        _ => format!("http://{listen}"),
    };
    let bundle = config.bundle_path().display().to_string();
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| env.push((k.to_string(), v.to_string()));
    for var in PROXY_VARS {
        set(var, &proxy_url);
    }
    set("NO_PROXY", NO_PROXY);
    set("no_proxy", NO_PROXY);
    for var in clients::CA_VARS {
        set(var, &bundle);
    }
    // Node 22.21 and later honour the proxy variables in fetch and https only when asked.
    set("NODE_USE_ENV_PROXY", "1");
    set("AIRLOCK_PROXY", &proxy_url);
    let clients = config.data_dir.join("clients");
    match clients::wgetrc(&clients, &bundle) {
        Ok(path) => set("WGETRC", &path.display().to_string()),
        Err(e) => tracing::warn!(error = %e, "wget will not trust airlock's CA"),
    }
    let java = clients::java_options(&clients, config, listen);
    if !java.is_empty() {
        let options = match std::env::var("JAVA_TOOL_OPTIONS") {
            Ok(own) if !own.trim().is_empty() => format!("{own} {java}"),
            _ => java,
        };
        set("JAVA_TOOL_OPTIONS", &options);
    }
    env
}

/// The state of the instance running on this data directory, if any. An instance that holds
/// the lock but has not written its state yet is given a moment.
pub(super) fn running_state(config: &Config) -> Option<InstanceState> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match probe(&config.data_dir) {
            Probe::Stopped => return None,
            Probe::Running {
                state: Some(state), ..
            } => return Some(state),
            Probe::Running { state: None, .. } if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Probe::Running { .. } => return None,
        }
    }
}

/// Percent-encodes what may not stand as is in a URL's user or password.
fn userinfo_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
