//! One call to the running instance's admin API: found through its state file, over
//! loopback HTTP/1.1, with the bearer token of `admin.token_env` when the config names one.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::config::Config;
use crate::instance::{Probe, probe};

/// How long the admin server gets to connect and answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read: the API's answers here are a few kilobytes.
const MAX_ANSWER_BYTES: u64 = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AdminCallError {
    #[error(
        "airlock is not running on data directory {}: nothing is held; start it with `airlock start` (or pass the --data-dir / --config it runs with)",
        data_dir.display()
    )]
    NotRunning { data_dir: PathBuf },
    #[error(
        "the running airlock (pid {pid}) has no admin server (admin: null in its config), which this goes through; set admin.listen (default 127.0.0.1:8889) and restart it"
    )]
    NoAdmin { pid: u32 },
    #[error(
        "cannot reach the admin server of the running airlock at {addr}: {source}; check `airlock status`"
    )]
    Unreachable {
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "the admin server at {addr} sent an answer that is not HTTP JSON; check `airlock status`"
    )]
    BadAnswer { addr: SocketAddr },
    #[error("the admin server at {addr} refused the request without its bearer token: {fix}")]
    Unauthorized { addr: SocketAddr, fix: String },
}

/// An answer from the admin API.
pub struct AdminAnswer {
    pub addr: SocketAddr,
    pub status: u16,
    pub body: Value,
}

/// Sends `method path` (no body) to the running instance's admin server.
pub fn call(config: &Config, method: &str, path: &str) -> Result<AdminAnswer, AdminCallError> {
    let (pid, state) = match probe(&config.data_dir) {
        Probe::Running { pid, state } => (pid, state),
        Probe::Stopped => {
            return Err(AdminCallError::NotRunning {
                data_dir: config.data_dir.clone(),
            });
        }
    };
    let admin = state
        .and_then(|s| s.admin)
        .ok_or(AdminCallError::NoAdmin { pid })?;
    let unreachable = |source| AdminCallError::Unreachable {
        addr: admin.clone(),
        source,
    };
    let addr: SocketAddr = admin.parse().map_err(|_| {
        unreachable(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the state file names no address",
        ))
    })?;
    let mut conn =
        std::net::TcpStream::connect_timeout(&addr, ADMIN_TIMEOUT).map_err(unreachable)?;
    conn.set_read_timeout(Some(ADMIN_TIMEOUT))
        .and_then(|_| conn.set_write_timeout(Some(ADMIN_TIMEOUT)))
        .map_err(unreachable)?;
    let token = crate::admin::token(config).ok().flatten();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        conn,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .map_err(unreachable)?;
    let mut response = Vec::new();
    conn.take(MAX_ANSWER_BYTES)
        .read_to_end(&mut response)
        .map_err(unreachable)?;
    let response = String::from_utf8_lossy(&response);
    let bad = || AdminCallError::BadAnswer { addr };
    let (head, body) = response.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status: u16 = head
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(bad)?;
    if status == 401 {
        let fix = match config.admin.as_ref().and_then(|a| a.token_env.as_deref()) {
            Some(var) => format!(
                "export {var} (admin.token_env) with the token the running instance was started with"
            ),
            None => "set admin.token_env in the config this command reads (--config or AIRLOCK_CONFIG) and export that variable with the token".to_string(),
        };
        return Err(AdminCallError::Unauthorized { addr, fix });
    }
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(bad)?
    } else {
        body.to_string()
    };
    let body = serde_json::from_str(&body).map_err(|_| bad())?;
    Ok(AdminAnswer { addr, status, body })
}

/// The payload of a chunked body.
fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// An id as a path segment: anything but letters, digits, `-` and `_` is escaped.
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_and_path_segments() {
        assert_eq!(
            dechunk("4\r\n[1,2\r\n2\r\n,3\r\n1\r\n]\r\n0\r\n\r\n").as_deref(),
            Some("[1,2,3]")
        );
        assert_eq!(dechunk("zz\r\n"), None);
        assert_eq!(path_segment("3f9a-_x"), "3f9a-_x");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
