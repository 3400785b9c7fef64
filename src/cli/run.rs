//! `airlock run [--jail] -- CMD [ARGS…]`: runs CMD with the proxy and CA environment set,
//! through the running instance or, if none runs, a private one for CMD's lifetime.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use super::Failure;
use crate::config::Config;
use crate::instance::{Probe, probe};
use crate::server::{ServeOptions, Stop, serve};
use crate::tls::CertificateAuthority;

/// Variables pointed at the bundle (system roots + airlock CA).
const CA_VARS: &[&str] = &[
    "SSL_CERT_FILE",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "AWS_CA_BUNDLE",
];
const NO_PROXY: &str = "localhost,127.0.0.1,::1";

pub fn run(config: Config, jail: bool, command: Vec<String>) -> Result<ExitCode, Failure> {
    if jail {
        return Err(Failure::usage(
            "--jail is not available in this version; run without it (the proxy variables are still set)",
        ));
    }
    let (program, args) = command
        .split_first()
        .ok_or_else(|| Failure::usage("run needs a command: airlock run -- CMD [ARGS…]"))?;

    let mut private = None;
    let listen = match running_listen(&config) {
        Some(listen) => listen,
        None => {
            // The command's terminal is the agent's: only warnings and worse from the proxy,
            // unless the config asks for more.
            crate::diag::init(match config.log_level {
                crate::config::DiagLevel::Info => crate::config::DiagLevel::Warn,
                other => other,
            });
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
            let mut private_config = config.clone();
            private_config.listen.set_port(0);
            let thread = std::thread::Builder::new()
                .name("airlock-proxy".into())
                .spawn(move || {
                    serve(
                        private_config,
                        ServeOptions {
                            print_boot: false,
                            ready: Some(ready_tx),
                            stop: Stop::When(stop_rx),
                        },
                    )
                })
                .map_err(|e| Failure::runtime(format!("cannot start the proxy: {e}")))?;
            match ready_rx.recv() {
                Ok(addr) => {
                    private = Some((stop_tx, thread));
                    addr.to_string()
                }
                Err(_) => {
                    // The proxy thread ended before listening: its error says why.
                    return match thread.join() {
                        Ok(Err(e)) => Err(e.into()),
                        _ => Err(Failure::runtime("the proxy stopped during start-up")),
                    };
                }
            }
        }
    };

    // The running instance wrote the bundle at its start; make sure it is there regardless.
    if !config.bundle_path().exists() {
        let ca = CertificateAuthority::load_or_create(&config.ca_dir())
            .map_err(|e| Failure::runtime(e.to_string()))?;
        let system = crate::tls::roots::system_roots(ca.cert_der());
        crate::tls::roots::write_bundle(&config.bundle_path(), &system, ca.cert_pem())
            .map_err(|e| Failure::runtime(e.to_string()))?;
    }

    let proxy_url = format!("http://{listen}");
    let bundle = config.bundle_path();
    let mut cmd = Command::new(program);
    cmd.args(args);
    for var in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        cmd.env(var, &proxy_url);
    }
    cmd.env("NO_PROXY", NO_PROXY).env("no_proxy", NO_PROXY);
    for var in CA_VARS {
        cmd.env(var, &bundle);
    }
    cmd.env("AIRLOCK_PROXY", &proxy_url);

    let status = cmd.status();
    if let Some((stop_tx, thread)) = private {
        let _ = stop_tx.send(());
        let _ = thread.join();
    }
    let status = status.map_err(|e| Failure::runtime(format!("cannot run {program:?}: {e}")))?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code.clamp(0, 255) as u8),
        (None, Some(sig)) => ExitCode::from((128 + sig).clamp(0, 255) as u8),
        _ => ExitCode::FAILURE,
    })
}

/// The listen address of the instance running on this data directory, if any. An instance
/// that holds the lock but has not written its state yet is given a moment.
fn running_listen(config: &Config) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match probe(&config.data_dir) {
            Probe::Stopped => return None,
            Probe::Running {
                state: Some(state), ..
            } => return Some(state.listen),
            Probe::Running { state: None, .. } if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Probe::Running { .. } => return None,
        }
    }
}
