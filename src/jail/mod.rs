//! `airlock run --jail` (Linux, root or CAP_NET_ADMIN + CAP_SYS_ADMIN): CMD runs in a network
//! namespace of its own whose only way out is airlock.
//!
//! - A veth pair joins the namespace to the host; the namespace's default route is the host
//!   end. IPv6 is off inside.
//! - One nftables table on the host side, for that interface only: TCP to the proxy's port
//!   reaches the proxy; UDP to port 53 reaches airlock's DNS; every other TCP connection is
//!   redirected to the transparent listener (which serves 80 and 443 and records the rest as
//!   BYPASS), every other UDP datagram to the BYPASS catcher; other protocols are dropped and
//!   counted.
//! - CMD joins the namespace with `/etc/resolv.conf` bound over by one naming airlock, drops
//!   to the invoking user (`SUDO_UID`/`SUDO_GID`), and dies with airlock.
//! - Everything is named after airlock's pid (`airlock-<pid>`, `alh<pid>`, `airlock_<pid>`)
//!   and removed when CMD ends; what a killed airlock left is removed by the next start.
//!
//! Without root, `landlock` confines CMD's TCP to airlock's port instead, or, on a kernel
//! without Landlock network rules, `userns` gives CMD a network namespace holding only a link
//! to the proxy.
//!
//! The `ip` and `nft` tools do the set-up: they are what operators read and debug with, and a
//! missing one is a clear error naming its package.

pub mod landlock;
pub mod userns;

use std::ffi::CString;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error(
        "--jail needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) to make a network namespace; run it with sudo"
    )]
    NotPrivileged,
    #[error(
        "--jail needs the `{tool}` tool, which is not installed (Debian/Ubuntu: apt install {package})"
    )]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("--jail: {what} failed: {detail}")]
    Setup { what: String, detail: String },
    #[error("--jail: {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Where the jail's traffic goes on the host (all on loopback).
#[derive(Debug, Clone, Copy)]
pub struct Targets {
    /// The forward proxy.
    pub proxy: SocketAddr,
    /// TCP: the transparent listener; UDP on the same port: the jail's DNS.
    pub transparent: SocketAddr,
    /// UDP other than DNS.
    pub bypass_udp: SocketAddr,
}

/// A live jail; dropping it removes everything it made.
pub struct Jail {
    id: u32,
    /// The host end's address: the jail's gateway, DNS server and proxy address.
    pub gateway: Ipv4Addr,
    netns: File,
    resolv: CString,
    dir: PathBuf,
}

/// Whether this process may build a jail: root, or both capabilities it uses.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0 && caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// The first executable named `name` on the PATH (or in the sbin directories, which a
/// user's PATH often lacks).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn tool(name: &'static str, package: &'static str) -> Result<PathBuf, JailError> {
    find_on_path(name).ok_or(JailError::MissingTool {
        tool: name,
        package,
    })
}

/// Runs a set-up command; its stderr is the error.
fn run(program: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, JailError> {
    let what = format!(
        "{} {}",
        program.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
        args.join(" ")
    );
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| JailError::Io {
            what: what.clone(),
            source,
        })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(|source| JailError::Io {
        what: what.clone(),
        source,
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(JailError::Setup {
            what,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn names(id: u32) -> (String, String, String, String) {
    (
        format!("airlock-{id}"),
        format!("alh{id}"),
        format!("alj{id}"),
        format!("airlock_{id}"),
    )
}

/// The /30 number `slot` of 10.213.0.0/16: (host end, jail end).
fn addresses(slot: u32) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + (slot % 16384) * 4;
    (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

/// The first /30 from the one `id` points at that no interface of this host uses (two
/// airlocks whose pids are 16384 apart would otherwise share one).
fn free_addresses(ip: &Path, id: u32) -> (Ipv4Addr, Ipv4Addr) {
    let used = run(ip, &["-o", "-4", "addr", "show"], None).unwrap_or_default();
    (0..16384)
        .map(|k| addresses(id + k))
        .find(|(gateway, _)| !used.contains(&format!(" {gateway}/")))
        .unwrap_or_else(|| addresses(id))
}

/// Removes the namespaces, interfaces and tables of jails whose airlock is gone (killed
/// before it could clean up). Quiet when there is nothing, or no permission to look.
pub fn clean_leftovers() {
    let (Some(ip), Some(nft)) = (find_on_path("ip"), find_on_path("nft")) else {
        return;
    };
    if !privileged() {
        return;
    }
    let mut ids: Vec<u32> = Vec::new();
    if let Ok(list) = run(&ip, &["netns", "list"], None) {
        ids.extend(list.lines().filter_map(|l| {
            l.split_whitespace()
                .next()?
                .strip_prefix("airlock-")?
                .parse::<u32>()
                .ok()
        }));
    }
    if let Ok(list) = run(&nft, &["list", "tables"], None) {
        ids.extend(list.lines().filter_map(|l| {
            l.strip_prefix("table ip airlock_")?
                .trim()
                .parse::<u32>()
                .ok()
        }));
    }
    if let Ok(list) = run(&ip, &["-o", "link", "show"], None) {
        ids.extend(list.lines().filter_map(|l| {
            let name = l.split(':').nth(1)?.trim();
            name.split('@')
                .next()?
                .strip_prefix("alh")?
                .parse::<u32>()
                .ok()
        }));
    }
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        if id != std::process::id() && !Path::new(&format!("/proc/{id}")).exists() {
            tracing::warn!(pid = id, "removing the jail a killed airlock left behind");
            teardown(id, &ip, &nft, Some(&jail_dir(id)));
        }
    }
}

/// The jail's own files (outside the data directory, which may be root's alone).
fn jail_dir(id: u32) -> PathBuf {
    std::env::temp_dir().join(format!("airlock-jail-{id}"))
}

fn teardown(id: u32, ip: &Path, nft: &Path, dir: Option<&Path>) {
    let (netns, host_if, _, table) = names(id);
    // The link first: it cuts the namespace off even if something below fails.
    let _ = run(ip, &["link", "del", &host_if], None);
    let _ = run(nft, &["delete", "table", "ip", &table], None);
    let _ = run(ip, &["netns", "del", &netns], None);
    if let Some(dir) = dir {
        let _ = fs::remove_dir_all(dir);
    }
}

impl Jail {
    /// Builds the jail for this process.
    pub fn create(targets: Targets) -> Result<Jail, JailError> {
        if !privileged() {
            return Err(JailError::NotPrivileged);
        }
        let ip = tool("ip", "iproute2")?;
        let nft = tool("nft", "nftables")?;
        clean_leftovers();
        let id = std::process::id();
        let (netns, host_if, jail_if, table) = names(id);
        let (gateway, inside) = free_addresses(&ip, id);
        let dir = jail_dir(id);
        let jail = (|| -> Result<Jail, JailError> {
            run(&ip, &["netns", "add", &netns], None)?;
            run(
                &ip,
                &[
                    "link", "add", &host_if, "type", "veth", "peer", "name", &jail_if, "netns",
                    &netns,
                ],
                None,
            )?;
            run(
                &ip,
                &["addr", "add", &format!("{gateway}/30"), "dev", &host_if],
                None,
            )?;
            run(&ip, &["link", "set", &host_if, "up"], None)?;
            let inns = |args: &[&str]| -> Result<String, JailError> {
                let mut full = vec!["-n", netns.as_str()];
                full.extend_from_slice(args);
                run(&ip, &full, None)
            };
            inns(&["addr", "add", &format!("{inside}/30"), "dev", &jail_if])?;
            inns(&["link", "set", &jail_if, "up"])?;
            inns(&["link", "set", "lo", "up"])?;
            inns(&["route", "add", "default", "via", &gateway.to_string()])?;
            // The host end answers for 127.0.0.1 (where the rules send everything).
            fs::write(
                format!("/proc/sys/net/ipv4/conf/{host_if}/route_localnet"),
                "1",
            )
            .map_err(|source| JailError::Io {
                what: format!("enabling route_localnet on {host_if}"),
                source,
            })?;
            run(
                &nft,
                &["-f", "-"],
                Some(&ruleset(&table, &host_if, gateway, targets)),
            )?;
            let netns_file =
                File::open(format!("/run/netns/{netns}")).map_err(|source| JailError::Io {
                    what: format!("opening /run/netns/{netns}"),
                    source,
                })?;
            fs::create_dir_all(&dir)
                .and_then(|()| {
                    use std::os::unix::fs::PermissionsExt;
                    // CMD may run as another user: it reads the files kept here.
                    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                })
                .map_err(|source| JailError::Io {
                    what: format!("creating {}", dir.display()),
                    source,
                })?;
            let resolv = dir.join("resolv.conf");
            fs::write(
                &resolv,
                format!("# airlock jail: every name is answered by airlock\nnameserver {gateway}\noptions timeout:2 attempts:2\n"),
            )
            .map_err(|source| JailError::Io {
                what: format!("writing {}", resolv.display()),
                source,
            })?;
            Ok(Jail {
                id,
                gateway,
                netns: netns_file,
                resolv: CString::new(resolv.display().to_string()).expect("no NUL in a path"),
                dir: dir.clone(),
            })
        })();
        match jail {
            Ok(jail) => {
                // IPv6 off inside: the rules cover IPv4, so nothing may leave another way.
                let mut disable = jail.command(Path::new("/bin/sh"), None);
                disable
                    .args([
                        "-c",
                        "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null; true",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                let _ = disable.status();
                Ok(jail)
            }
            Err(e) => {
                teardown(id, &ip, &nft, Some(&dir));
                Err(e)
            }
        }
    }

    /// A command that runs inside the jail, as `user` (uid, gid) when given. The caller adds
    /// arguments and environment.
    pub fn command(&self, program: &Path, user: Option<(u32, u32)>) -> Command {
        let mut cmd = Command::new(program);
        let netns = self.netns.as_raw_fd();
        let resolv = self.resolv.clone();
        // SAFETY: between fork and exec only async-signal-safe calls are made (setns,
        // unshare, mount, setgroups, setgid, setuid, prctl, signal), on values prepared
        // before the fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(netns, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Our own view of the mounts, so that resolv.conf is replaced for CMD only.
                if libc::unshare(libc::CLONE_NEWNS) == 0 {
                    let none = c"none";
                    let root = c"/";
                    libc::mount(
                        none.as_ptr(),
                        root.as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    );
                    // Where it cannot be bound, DNS still reaches airlock: the rules send
                    // every UDP query to port 53 there, whatever server it names.
                    libc::mount(
                        resolv.as_ptr(),
                        c"/etc/resolv.conf".as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    );
                }
                if let Some((uid, gid)) = user
                    && (libc::setgroups(0, std::ptr::null()) != 0
                        || libc::setgid(gid) != 0
                        || libc::setuid(uid) != 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                // The jail's way out is this airlock: when it dies, CMD goes too.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGTERM, libc::SIG_DFL);
                Ok(())
            });
        }
        cmd
    }

    /// The network namespace's name (`ip netns exec` takes it).
    pub fn namespace(&self) -> String {
        names(self.id).0
    }

    /// Where the jail's own files are (resolv.conf, the copies CMD reads).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Packets of other protocols the jail sent and the rules dropped.
    pub fn dropped_packets(&self) -> Option<u64> {
        let nft = find_on_path("nft")?;
        let (_, _, _, table) = names(self.id);
        let out = run(&nft, &["list", "counter", "ip", &table, "dropped"], None).ok()?;
        let at = out.find("packets ")? + "packets ".len();
        out[at..].split_whitespace().next()?.parse().ok()
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        if let (Some(ip), Some(nft)) = (find_on_path("ip"), find_on_path("nft")) {
            teardown(self.id, &ip, &nft, Some(&self.dir));
        }
    }
}

/// The host side's rules for one jail.
fn ruleset(table: &str, host_if: &str, gateway: Ipv4Addr, t: Targets) -> String {
    let (proxy, transparent, catcher) = (t.proxy.port(), t.transparent.port(), t.bypass_udp.port());
    format!(
        r#"table ip {table} {{
    counter dropped {{ }}
    chain to_airlock {{
        type nat hook prerouting priority dstnat; policy accept;
        iifname "{host_if}" ip daddr {gateway} tcp dport {proxy} dnat to 127.0.0.1:{proxy}
        iifname "{host_if}" udp dport 53 dnat to 127.0.0.1:{transparent}
        iifname "{host_if}" meta l4proto tcp dnat to 127.0.0.1:{transparent}
        iifname "{host_if}" meta l4proto udp dnat to 127.0.0.1:{catcher}
    }}
    chain only_tcp_udp {{
        type filter hook prerouting priority raw; policy accept;
        iifname "{host_if}" meta l4proto {{ tcp, udp }} accept
        iifname "{host_if}" counter name "dropped" drop
    }}
    chain no_forwarding {{
        type filter hook forward priority filter; policy accept;
        iifname "{host_if}" counter name "dropped" drop
        oifname "{host_if}" drop
    }}
    chain host_input {{
        type filter hook input priority filter; policy accept;
        iifname "{host_if}" ip daddr 127.0.0.1 tcp dport {{ {proxy}, {transparent} }} accept
        iifname "{host_if}" ip daddr 127.0.0.1 udp dport {{ {transparent}, {catcher} }} accept
        iifname "{host_if}" counter name "dropped" drop
    }}
}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_jail_gets_its_own_slash_30() {
        let (gw, inside) = addresses(1234);
        assert_eq!(u32::from(inside) - u32::from(gw), 1);
        assert_eq!(u32::from(gw) % 4, 1);
        assert_ne!(addresses(1235).0, gw);
        let (a, _) = addresses(16383);
        assert!(a.octets()[0] == 10 && a.octets()[1] == 213);
    }

    #[test]
    fn the_ruleset_names_every_target() {
        let t = Targets {
            proxy: "127.0.0.1:8888".parse().unwrap(),
            transparent: "127.0.0.1:9000".parse().unwrap(),
            bypass_udp: "127.0.0.1:9001".parse().unwrap(),
        };
        let r = ruleset("airlock_7", "alh7", Ipv4Addr::new(10, 213, 0, 29), t);
        assert!(r.contains("ip daddr 10.213.0.29 tcp dport 8888 dnat to 127.0.0.1:8888"));
        assert!(r.contains("udp dport 53 dnat to 127.0.0.1:9000"));
        assert!(r.contains("meta l4proto udp dnat to 127.0.0.1:9001"));
    }
}
