//! The unprivileged jail: Landlock network rules (Linux 6.7+, ABI 4) let CMD open TCP
//! connections to airlock's port alone and listen on none. Any user may do this to its own
//! children; no namespace, no root.
//!
//! Landlock rules name ports, not addresses, and cover TCP only: CMD could still reach
//! another host on airlock's port number, and UDP (DNS) is not confined. The start line says
//! so. The three system calls are made here rather than through a crate because the last one
//! must run between fork and exec, where only async-signal-safe calls belong: the ruleset is
//! built in the parent, the child only enforces it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

const SYS_CREATE_RULESET: libc::c_long = 444;
const SYS_ADD_RULE: libc::c_long = 445;
const SYS_RESTRICT_SELF: libc::c_long = 446;
const CREATE_RULESET_VERSION: u32 = 1;
const RULE_NET_PORT: libc::c_int = 2;
const ACCESS_NET_BIND_TCP: u64 = 1;
const ACCESS_NET_CONNECT_TCP: u64 = 2;
/// The first ABI with network rules.
pub const NETWORK_ABI: i64 = 4;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
}

#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

/// The Landlock ABI this kernel offers (0 when Landlock is off or absent).
pub fn abi() -> i64 {
    // SAFETY: the version query takes no pointer.
    let v = unsafe {
        libc::syscall(
            SYS_CREATE_RULESET,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

/// A ruleset allowing TCP connects to one port, and no TCP listening.
pub struct OnlyPort {
    ruleset: OwnedFd,
    pub port: u16,
}

impl OnlyPort {
    pub fn new(port: u16) -> io::Result<OnlyPort> {
        let attr = RulesetAttr {
            handled_access_fs: 0,
            handled_access_net: ACCESS_NET_BIND_TCP | ACCESS_NET_CONNECT_TCP,
        };
        // SAFETY: a pointer to a live struct and its size.
        let fd = unsafe {
            libc::syscall(
                SYS_CREATE_RULESET,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor to us.
        let ruleset = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let rule = NetPortAttr {
            allowed_access: ACCESS_NET_CONNECT_TCP,
            port: u64::from(port),
        };
        // SAFETY: a live ruleset descriptor and a pointer to a live rule.
        let rc = unsafe {
            libc::syscall(
                SYS_ADD_RULE,
                ruleset.as_raw_fd(),
                RULE_NET_PORT,
                &rule as *const NetPortAttr,
                0u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OnlyPort { ruleset, port })
    }

    /// Makes `cmd` enforce the ruleset on itself before it executes.
    pub fn apply(&self, cmd: &mut Command) {
        let fd = self.ruleset.as_raw_fd();
        // SAFETY: prctl and a system call on a descriptor inherited through fork.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::syscall(SYS_RESTRICT_SELF, fd, 0u32) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}
