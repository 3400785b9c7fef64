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
use crate::jail::{Jail, Targets, landlock, userns};

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
        let mut check = jail.command(&exe, None);
        check.arg("verify");
        verify_inside(check, &env, program)?;
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

/// Makes the command that runs a program, with its arguments, inside a jail.
type CommandMaker<'a> = dyn Fn(&str, &[String]) -> std::process::Command + 'a;

/// How an unprivileged jail confines CMD.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unprivileged {
    Landlock,
    UserNamespace,
}

/// Without root: Landlock network rules where the kernel has them, else a user and network
/// namespace with only a link to the proxy. `AIRLOCK_JAIL_MODE=landlock|userns` chooses.
fn unprivileged(
    config: Config,
    verify: bool,
    program: &str,
    args: &[String],
) -> Result<ExitCode, Failure> {
    let abi = landlock::abi();
    let offered = if abi == 0 {
        "no Landlock".to_string()
    } else {
        format!("Landlock ABI {abi}")
    };
    let mode = match std::env::var("AIRLOCK_JAIL_MODE").as_deref() {
        Ok("landlock") => Unprivileged::Landlock,
        Ok("userns") => Unprivileged::UserNamespace,
        Ok(other) if !other.is_empty() => {
            return Err(Failure::usage(format!(
                "AIRLOCK_JAIL_MODE={other:?}: use landlock or userns (or leave it unset)"
            )));
        }
        _ if abi >= landlock::NETWORK_ABI => Unprivileged::Landlock,
        _ => Unprivileged::UserNamespace,
    };
    if mode == Unprivileged::Landlock && abi < landlock::NETWORK_ABI {
        return Err(Failure::runtime(format!(
            "the Landlock jail needs Landlock network rules (Linux 6.7 or later, Landlock ABI 4), and this kernel offers {offered}"
        )));
    }
    if mode == Unprivileged::UserNamespace && !userns::available() {
        return Err(Failure::runtime(format!(
            "--jail without root needs Landlock network rules (Linux 6.7 or later, Landlock ABI 4) or unprivileged user namespaces, and this kernel offers neither ({offered}; creating a user and network namespace was refused); run it with sudo for the network-namespace jail"
        )));
    }
    let (listen, private) = proxy_for(&config)?;
    let result = (|| {
        ensure_bundle(&config)?;
        let proxy: SocketAddr = listen.parse().map_err(|_| {
            Failure::runtime(format!("the proxy's address {listen} is not IP:PORT"))
        })?;
        let port = proxy.port();
        let env = client_environment(&config, &format!("127.0.0.1:{port}"));
        let exe = std::env::current_exe()
            .map_err(|e| Failure::runtime(format!("cannot find airlock's own binary: {e}")))?;
        // How each command is started inside: Landlock rules on it, or the namespaces with
        // the link (kept alive for the whole run).
        let rules;
        let link;
        let jailed_command: Box<CommandMaker> = match mode {
            Unprivileged::Landlock => {
                rules = landlock::OnlyPort::new(port).map_err(|e| {
                    Failure::runtime(format!("cannot build the Landlock rules: {e}"))
                })?;
                eprintln!(
                    "airlock: jail (Landlock, unprivileged): {program} may open TCP connections only to port {port} (airlock's proxy) and may not listen; Landlock rules name ports, not hosts, and do not cover UDP, so DNS still works and another host's port {port} is reachable. Run with sudo for the network-namespace jail"
                );
                Box::new(|program: &str, args: &[String]| {
                    let mut cmd = std::process::Command::new(program);
                    cmd.args(args);
                    rules.apply(&mut cmd);
                    cmd
                })
            }
            Unprivileged::UserNamespace => {
                let dir = std::env::temp_dir().join(format!("airlock-jail-{}", std::process::id()));
                link = userns::Link::start(&dir, proxy).map_err(|e| {
                    Failure::runtime(format!("cannot open the jail's link to the proxy: {e}"))
                })?;
                eprintln!(
                    "airlock: jail (user namespace, unprivileged): {program} has a network of its own with only loopback, where port {port} is a link to airlock's proxy; no other host, no DNS, no UDP. Attempts to go around it fail inside and are not recorded. Run with sudo for the network-namespace jail"
                );
                let socket = link.socket.clone();
                let exe = exe.clone();
                Box::new(move |program: &str, args: &[String]| {
                    let mut cmd = userns::command(&exe);
                    cmd.arg("jail-inside")
                        .arg(&socket)
                        .arg(port.to_string())
                        .arg("--")
                        .arg(program)
                        .args(args);
                    cmd
                })
            }
        };
        if verify {
            let check = jailed_command(&exe.display().to_string(), &["verify".to_string()]);
            verify_inside(check, &env, program)?;
        }
        let mut cmd = jailed_command(program, args);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd
            .spawn()
            .map_err(|e| Failure::runtime(format!("cannot run {program:?}: {e}")))?;
        forward_signals(child.id() as i32);
        let status = child.wait();
        forward_signals(0);
        let status =
            status.map_err(|e| Failure::runtime(format!("waiting for {program:?}: {e}")))?;
        if mode == Unprivileged::UserNamespace {
            let _ = std::fs::remove_dir_all(
                std::env::temp_dir().join(format!("airlock-jail-{}", std::process::id())),
            );
        }
        Ok(exit_code(status))
    })();
    if let Some(private) = private {
        private.stop();
    }
    result
}

/// `airlock jail-inside SOCKET PORT -- CMD`: the unprivileged jail's inner half.
pub fn inside(socket: &Path, port: u16, command: &[String]) -> Result<ExitCode, Failure> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| Failure::usage("jail-inside needs a command"))?;
    let status = userns::inside(socket, port, program, args)
        .map_err(|e| Failure::runtime(format!("jail: cannot run {program:?}: {e}")))?;
    Ok(exit_code(status))
}

/// Runs `airlock verify` (`check`, already set to run inside the jail) with CMD's
/// environment; its failure is the refusal to start CMD.
fn verify_inside(
    mut check: std::process::Command,
    env: &[(String, String)],
    program: &str,
) -> Result<(), Failure> {
    let out = check
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| Failure::runtime(format!("cannot run the check in the jail: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stdout).replace('\n', "; ");
    Err(Failure::runtime(format!(
        "not starting {program:?}: inside the jail, airlock is not in the path ({said}{}). Pass --no-verify to start it anyway",
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// The user who ran `sudo airlock run --jail`, to run CMD as.
fn invoking_user() -> Option<(u32, u32)> {
    let uid: u32 = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let gid: u32 = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    (uid != 0).then_some((uid, gid))
}

/// Copies every file under `data_dir` that a variable names into `shared` (readable by all:
/// certificates and settings, no secret), points the variables there, and points the copies'
/// own contents there too (a wgetrc names the bundle).
fn share_files(env: &mut [(String, String)], data_dir: &Path, shared: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut copied: Vec<(String, String)> = Vec::new();
    for (_, value) in env.iter() {
        // Paths stand alone, after `=` (-Dx=PATH) or inside quotes ("-Dx=PATH").
        for word in value.split([' ', '=', '"']) {
            let path = Path::new(word);
            if !path.starts_with(data_dir)
                || !path.is_file()
                || copied.iter().any(|(from, _)| from == word)
            {
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
    let repoint = |text: &str| -> String {
        copied.iter().fold(text.to_string(), |t, (from, to)| {
            t.replace(from.as_str(), to)
        })
    };
    for (_, value) in env.iter_mut() {
        *value = repoint(value);
    }
    for (_, to) in &copied {
        // Text settings only; a trust store is binary and names nothing.
        if let Ok(text) = fs::read_to_string(to) {
            let moved = repoint(&text);
            if moved != text {
                let _ = fs::write(to, moved);
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
