//! Who may use the forward proxy and where it may tunnel: `connect_ports` and `proxy_auth`.

use std::path::PathBuf;

use serde::Deserialize;

/// CONNECT targets allowed when the config says nothing (web and its common alternate port).
pub const DEFAULT_CONNECT_PORTS: [u16; 3] = [80, 443, 8443];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxyAuth {
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
}

/// `proxy_auth`: the one user of the forward proxy (`Proxy-Authorization: Basic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAuth {
    pub username: String,
    pub password: PasswordSource,
}

/// Where the password is read, at start (never stored in the config itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
}

impl ProxyAuth {
    /// The password, read now; the error says what is missing and how to fix it.
    pub fn password(&self) -> Result<String, String> {
        let value = match &self.password {
            PasswordSource::Env(var) => std::env::var(var).map_err(|_| {
                format!("proxy_auth.password_env names {var}, which is not set: export it before starting airlock")
            })?,
            PasswordSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "proxy_auth.password_file {}: {e}; write the password there (mode 0600)",
                    path.display()
                )
            })?,
        };
        let value = value.trim_end_matches(['\r', '\n']).to_string();
        if value.is_empty() {
            return Err("proxy_auth: the password is empty".to_string());
        }
        Ok(value)
    }
}

pub(super) fn build_proxy_auth(
    raw: Option<RawProxyAuth>,
    base: &std::path::Path,
) -> Result<Option<ProxyAuth>, (String, String)> {
    let Some(raw) = raw else { return Ok(None) };
    let username = raw
        .username
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ("proxy_auth.username".to_string(), "is required".to_string()))?;
    if username.contains(':') {
        return Err((
            "proxy_auth.username".into(),
            "must not contain ':' (Basic authentication separates user and password with it)"
                .into(),
        ));
    }
    let password = match (raw.password_env, raw.password_file) {
        (Some(var), None) if !var.is_empty() => PasswordSource::Env(var),
        (None, Some(path)) => PasswordSource::File(base.join(path)),
        (Some(_), Some(_)) => {
            return Err((
                "proxy_auth".into(),
                "give password_env or password_file, not both".into(),
            ));
        }
        _ => {
            return Err((
                "proxy_auth".into(),
                "needs password_env (a variable holding the password) or password_file".into(),
            ));
        }
    };
    Ok(Some(ProxyAuth { username, password }))
}

pub(super) fn build_connect_ports(raw: Option<Vec<u16>>) -> Result<Vec<u16>, (String, String)> {
    let ports = raw.unwrap_or_else(|| DEFAULT_CONNECT_PORTS.to_vec());
    if let Some(i) = ports.iter().position(|p| *p == 0) {
        return Err((format!("connect_ports[{i}]"), "0 is not a port".into()));
    }
    Ok(ports)
}

/// Whether a presented credential (a proxy password, an admin token) is the expected one,
/// without telling by its timing where the first difference is.
pub fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len()
        && presented
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
