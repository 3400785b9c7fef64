//! The unprivileged jail where Landlock has no network rules: CMD gets a user namespace and a
//! network namespace of its own, holding only a loopback interface. On that loopback, the
//! proxy's port is a link to airlock: a relay inside (`inside`) passes each connection over a
//! Unix socket, which crosses network namespaces because it is a file, to a relay in airlock's
//! process (`Link`) that connects to the proxy. There is no other route: no DNS, no other host,
//! no UDP. A client that ignores the proxy variables fails (and nothing records it: the
//! attempt never leaves the namespace).

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// Whether this kernel lets an unprivileged process make a user and network namespace.
pub fn available() -> bool {
    let mut probe = Command::new("/bin/true");
    // SAFETY: one system call between fork and exec.
    unsafe {
        probe.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    probe.status().is_ok_and(|s| s.success())
}

/// Airlock's end of the link: a Unix socket whose connections are relayed to the proxy.
pub struct Link {
    pub socket: PathBuf,
}

impl Link {
    pub fn start(dir: &Path, proxy: SocketAddr) -> io::Result<Link> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("proxy.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket)?;
        std::thread::Builder::new()
            .name("jail-link".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    if let Ok(tcp) = TcpStream::connect(proxy) {
                        relay(conn, tcp);
                    }
                }
            })?;
        Ok(Link { socket })
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Copies both ways between a Unix and a TCP stream, on two threads, until either side ends.
fn relay(unix: UnixStream, tcp: TcpStream) {
    let (Ok(mut unix_r), Ok(mut tcp_w)) = (unix.try_clone(), tcp.try_clone()) else {
        return;
    };
    let (mut unix_w, mut tcp_r) = (unix, tcp);
    let _ = std::thread::Builder::new().spawn(move || {
        let _ = io::copy(&mut unix_r, &mut tcp_w);
        let _ = tcp_w.shutdown(Shutdown::Write);
    });
    let _ = std::thread::Builder::new().spawn(move || {
        let _ = io::copy(&mut tcp_r, &mut unix_w);
        let _ = unix_w.shutdown(Shutdown::Write);
    });
}

/// A command that runs `exe` (airlock's own binary, whose hidden `jail-inside` command is
/// [`inside`]) in new user and network namespaces, with loopback up and the caller's uid and
/// gid mapped to themselves.
pub fn command(exe: &Path) -> Command {
    // SAFETY: getuid and getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let uid_map = format!("{uid} {uid} 1\n");
    let gid_map = format!("{gid} {gid} 1\n");
    let mut cmd = Command::new(exe);
    // SAFETY: between fork and exec only system calls (unshare, open, write, close, socket,
    // ioctl, prctl) on values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            write_proc(c"/proc/self/setgroups", b"deny")?;
            write_proc(c"/proc/self/uid_map", uid_map.as_bytes())?;
            write_proc(c"/proc/self/gid_map", gid_map.as_bytes())?;
            loopback_up()?;
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

fn write_proc(path: &std::ffi::CStr, content: &[u8]) -> io::Result<()> {
    // SAFETY: open, write and close on a path and a buffer that outlive the calls.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let written = libc::write(fd, content.as_ptr().cast(), content.len());
        libc::close(fd);
        if written < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Brings `lo` up in the current network namespace (no `ip` tool needed, and it happens
/// before exec, while the process still holds its capabilities in the new user namespace).
fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket and two ioctls on a zeroed ifreq naming "lo".
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut rc = libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            rc = libc::ioctl(sock, libc::SIOCSIFFLAGS, &req);
        }
        libc::close(sock);
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Inside the namespaces: listens on 127.0.0.1:`port` (the proxy's port, so the proxy
/// variables need no change), relays each connection to `socket`, and runs CMD.
pub fn inside(socket: &Path, port: u16, program: &str, args: &[String]) -> io::Result<ExitStatus> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let socket = socket.to_path_buf();
    std::thread::Builder::new()
        .name("jail-link".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                if let Ok(unix) = UnixStream::connect(&socket) {
                    relay(unix, conn);
                }
            }
        })?;
    Command::new(program).args(args).status()
}
