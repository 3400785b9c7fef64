//! `airlock run --jail -- CMD`: CMD in a network namespace whose only way out is airlock
//! (`crate::jail`), through the running instance when it has a transparent listener, else a
//! private one for CMD's lifetime.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use super::Failure;
use super::run::{Private, client_environment, ensure_bundle, exit_code, proxy_for, running_state};
use crate::config::Config;
use crate::jail::{Jail, Targets, landlock};

pub fn run(
    config: Config,
    verify: bool,
    program: &str,
    args: &[String],
) -> Result<ExitCode, Failure> {
    if !crate::jail::privileged() {
        return unprivileged(config, verify, program, args);
    }
    let (targets, private) = match running_state(&config) {
        Some(state) => {
            let parse = |s: Option<&String>| s.and_then(|s| s.parse::<SocketAddr>().ok());
            match (
                state.listen.parse().ok(),
                parse(state.transparent.as_ref()),
                parse(state.bypass_udp.as_ref()),
            ) {
                (Some(proxy), Some(transparent), Some(bypass_udp)) => (
                    Targets {
                        proxy,
                        transparent,
                        bypass_udp,
                    },
                    None,
                ),
                _ => {
                    return Err(Failure::runtime(format!(
                        "the running airlock (pid {}) has no transparent listener, which a jail needs: add `transparent_port: 8890` to its config and restart it, or stop it so that --jail runs its own",
                        state.pid
                    )));
                }
            }
        }
        None => {
            let mut private_config = config.clone();
            private_config.listen.set_port(0);
            private_config.transparent = Some(SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)));
            let (private, bound) = Private::start(private_config)?;
            let Some(jail) = bound.jail else {
                private.stop();
                return Err(Failure::runtime(
                    "the private proxy started without its transparent listener",
                ));
            };
            (
                Targets {
                    proxy: bound.listen,
                    transparent: jail.transparent,
                    bypass_udp: jail.bypass_udp,
                },
                Some(private),
            )
        }
    };
    let result = jailed(&config, verify, program, args, targets);
    if let Some(private) = private {
        private.stop();
    }
    result
}

fn jailed(
    config: &Config,
    verify: bool,
    program: &str,
    args: &[String],
    targets: Targets,
) -> Result<ExitCode, Failure> {
    ensure_bundle(config)?;
    let jail = Jail::create(targets).map_err(|e| Failure::runtime(e.to_string()))?;
    let user = invoking_user();
    let mut env = client_environment(
        config,
        &format!("{}:{}", jail.gateway, targets.proxy.port()),
    );
    // CMD may run as another user, who cannot read root's data directory: the files the
    // variables name are copied next to the jail's resolv.conf.
    share_files(&mut env, &config.data_dir, jail.dir());
    eprintln!(
        "airlock: jail: {program} runs in network namespace {} as {}; its only way out is airlock (HTTP and HTTPS intercepted, DNS answered by airlock, anything else refused and recorded as bypass)",
        jail.namespace(),
        user.map_or_else(|| "root".to_string(), |(uid, _)| format!("uid {uid}")),
    );
    if verify {
        let exe = std::env::current_exe()
            .map_err(|e| Failure::runtime(format!("cannot find airlock's own binary: {e}")))?;
        let out = jail
            .command(&exe, None)
            .arg("verify")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .map_err(|e| Failure::runtime(format!("cannot run the check in the jail: {e}")))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stdout).replace('\n', "; ");
            return Err(Failure::runtime(format!(
                "not starting {program:?}: inside the jail, airlock is not in the path ({said}). Pass --no-verify to start it anyway"
            )));
        }
    }
    let mut cmd = jail.command(Path::new(program), user);
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::runtime(format!("cannot run {program:?} in the jail: {e}")))?;
    forward_signals(child.id() as i32);
    let status = child.wait();
    forward_signals(0);
    if let Some(dropped) = jail.dropped_packets().filter(|n| *n > 0) {
        eprintln!("airlock: jail: {dropped} packets of other protocols (ICMP, …) were dropped");
    }
    drop(jail);
    let status = status.map_err(|e| Failure::runtime(format!("waiting for {program:?}: {e}")))?;
    Ok(exit_code(status))
}

/// Without root: Landlock network rules, where the kernel has them.
fn unprivileged(
    config: Config,
    verify: bool,
    program: &str,
    args: &[String],
) -> Result<ExitCode, Failure> {
    let abi = landlock::abi();
    if abi < landlock::NETWORK_ABI {
        let offered = if abi == 0 {
            "no Landlock".to_string()
        } else {
            format!("Landlock ABI {abi}")
        };
        return Err(Failure::runtime(format!(
            "--jail without root needs Landlock network rules (Linux 6.7 or later, Landlock ABI 4), and this kernel offers {offered}; run it with sudo for the network-namespace jail (the unprivileged user-namespace mode is not built yet)"
        )));
    }
    let (listen, private) = proxy_for(&config)?;
    let result = (|| {
        ensure_bundle(&config)?;
        let port = listen
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .ok_or_else(|| Failure::runtime(format!("the proxy's address {listen} has no port")))?;
        let rules = landlock::OnlyPort::new(port)
            .map_err(|e| Failure::runtime(format!("cannot build the Landlock rules: {e}")))?;
        eprintln!(
            "airlock: jail (Landlock, unprivileged): {program} may open TCP connections only to port {port} (airlock's proxy) and may not listen; Landlock rules name ports, not hosts, and do not cover UDP, so DNS still works and another host's port {port} is reachable. Run with sudo for the network-namespace jail"
        );
        let env = client_environment(&config, &listen);
        if verify {
            let exe = std::env::current_exe()
                .map_err(|e| Failure::runtime(format!("cannot find airlock's own binary: {e}")))?;
            let mut check = std::process::Command::new(exe);
            check.arg("verify").envs(env.iter().map(|(k, v)| (k, v)));
            rules.apply(&mut check);
            let out = check
                .output()
                .map_err(|e| Failure::runtime(format!("cannot run the check in the jail: {e}")))?;
            if !out.status.success() {
                let said = String::from_utf8_lossy(&out.stdout).replace('\n', "; ");
                return Err(Failure::runtime(format!(
                    "not starting {program:?}: inside the jail, airlock is not in the path ({said}). Pass --no-verify to start it anyway"
                )));
            }
        }
        let mut cmd = std::process::Command::new(program);
        cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
        rules.apply(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| Failure::runtime(format!("cannot run {program:?}: {e}")))?;
        forward_signals(child.id() as i32);
        let status = child.wait();
        forward_signals(0);
        let status =
            status.map_err(|e| Failure::runtime(format!("waiting for {program:?}: {e}")))?;
        Ok(exit_code(status))
    })();
    if let Some(private) = private {
        private.stop();
    }
    result
}

/// The user who ran `sudo airlock run --jail`, to run CMD as.
fn invoking_user() -> Option<(u32, u32)> {
    let uid: u32 = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let gid: u32 = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    (uid != 0).then_some((uid, gid))
}

/// Copies every file under `data_dir` that a variable names into `shared` (readable by all:
/// certificates and settings, no secret) and points the variables there.
fn share_files(env: &mut [(String, String)], data_dir: &Path, shared: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut copied: Vec<(String, String)> = Vec::new();
    for (_, value) in env.iter() {
        for word in value.split([' ', '=']) {
            let path = Path::new(word);
            if !path.starts_with(data_dir) || !path.is_file() {
                continue;
            }
            if copied.iter().any(|(from, _)| from == word) {
                continue;
            }
            let Some(name) = path.file_name() else {
                continue;
            };
            let to = shared.join(name);
            if fs::copy(path, &to).is_ok() {
                let _ = fs::set_permissions(&to, fs::Permissions::from_mode(0o644));
                copied.push((word.to_string(), to.display().to_string()));
            }
        }
    }
    for (_, value) in env.iter_mut() {
        for (from, to) in &copied {
            if value.contains(from.as_str()) {
                *value = value.replace(from.as_str(), to);
            }
        }
    }
}

/// The pid SIGTERM and SIGHUP are passed on to (0: none).
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn pass_on(signal: libc::c_int) {
    let child = CHILD.load(Ordering::Relaxed);
    if child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe {
            libc::kill(child, signal);
        }
    }
}

/// While CMD runs, airlock outlives the signals meant for the pair, so that it can take the
/// jail down afterwards: Ctrl-C reaches CMD from the terminal already, SIGTERM and SIGHUP are
/// passed on.
fn forward_signals(child: i32) {
    CHILD.store(child, Ordering::Relaxed);
    // SAFETY: installing handlers that only read an atomic and call kill.
    unsafe {
        if child > 0 {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGTERM, pass_on as *const () as libc::sighandler_t);
            libc::signal(libc::SIGHUP, pass_on as *const () as libc::sighandler_t);
        } else {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
        }
    }
}
