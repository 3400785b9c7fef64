//! `airlock verify`: proves that airlock is in the path of the environment it runs in. It sends
//! a canary request, over plain HTTP and over HTTPS, the way an agent started from the same
//! environment would: through the proxy its variables name, trusting the CA its variables
//! name. Airlock answers the canary host itself with a block; only both blocks, with
//! airlock's headers, pass. `airlock run` runs the same checks on the environment it gives
//! CMD.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject;

use super::Failure;
use super::clients::CA_VARS;
use crate::config::Config;
use crate::instance::{Probe, probe};
use crate::pipeline::decide::{CANARY_HOST, CANARY_RULE};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const CANARY_PATH: &str = "/airlock-verify";

/// The variables a client started from here would inherit.
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    pub fn current() -> Environment {
        Environment {
            vars: std::env::vars().collect(),
        }
    }

    /// The current environment with `overrides` set (what `airlock run` gives CMD).
    pub fn with(overrides: &[(String, String)]) -> Environment {
        let mut env = Environment::current();
        for (k, v) in overrides {
            env.vars.insert(k.clone(), v.clone());
        }
        env
    }

    /// A variable's value, when set and not empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set, with its value.
    fn first<'a>(&'a self, names: &[&'a str]) -> Option<(&'a str, &'a str)> {
        names.iter().find_map(|n| Some((*n, self.get(n)?)))
    }
}

/// Which canary request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Http,
    Https,
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<6}` aligns the column.
        f.pad(match self {
            Channel::Http => "http",
            Channel::Https => "https",
        })
    }
}

/// The result of one canary request: `ok`, and one sentence saying what was seen or what is
/// wrong and how to fix it.
pub struct Check {
    pub channel: Channel,
    pub ok: bool,
    pub message: String,
}

/// Where to point people when no proxy is configured.
fn suggested_proxy(config: &Config) -> String {
    let listen = match probe(&config.data_dir) {
        Probe::Running {
            state: Some(state), ..
        } => state.listen,
        _ => config.listen.to_string(),
    };
    format!("http://{listen}")
}

/// Both canary checks on `env`.
pub fn check_environment(env: &Environment, config: &Config) -> Vec<Check> {
    [Channel::Http, Channel::Https]
        .into_iter()
        .map(|channel| {
            let (ok, message) = match check_channel(env, config, channel) {
                Ok(seen) => (true, seen),
                Err(wrong) => (false, wrong),
            };
            Check {
                channel,
                ok,
                message,
            }
        })
        .collect()
}

fn proxy_vars(channel: Channel) -> &'static [&'static str] {
    match channel {
        Channel::Http => &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"],
        Channel::Https => &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"],
    }
}

fn check_channel(env: &Environment, config: &Config, channel: Channel) -> Result<String, String> {
    if let Some((var, value)) = env.first(&["no_proxy", "NO_PROXY"])
        && let Some(entry) = exempts_canary(value)
    {
        return Err(format!(
            "{var}={value} exempts {CANARY_HOST} (entry {entry:?}): clients skip the proxy for it, and likely for every host. Remove that entry"
        ));
    }
    let Some((var, value)) = env.first(proxy_vars(channel)) else {
        // No proxy variable: only a transparent set-up (a jail) still catches the traffic.
        return match direct(channel, env, config) {
            Ok(seen) => Ok(format!(
                "{seen}, with no proxy variable set: the traffic is redirected to airlock (transparent)"
            )),
            Err(_) => Err(format!(
                "{} is not set: a client started from here goes direct, around airlock. Run it with `airlock run -- CMD`, or export {}={}",
                proxy_vars(channel)[1],
                proxy_vars(channel)[1],
                suggested_proxy(config)
            )),
        };
    };
    let proxy = ProxyUrl::parse(value).map_err(|why| format!("{var}={value}: {why}"))?;
    let via = format!("{var}={}", proxy.shown());
    let stream = connect(&proxy.addr).map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "nothing is listening at {} ({via}): airlock is not running there. Start it with `airlock start`, or use `airlock run -- CMD`, which starts one",
            proxy.addr
        ),
        _ => format!("cannot reach the proxy {} ({via}): {e}", proxy.addr),
    })?;
    match channel {
        Channel::Http => {
            let head = exchange(
                stream,
                &format!(
                    "GET http://{CANARY_HOST}{CANARY_PATH} HTTP/1.1\r\nHost: {CANARY_HOST}\r\n{}User-Agent: airlock-verify\r\nConnection: close\r\n\r\n",
                    proxy.authorization()
                ),
            )
            .map_err(|e| format!("the proxy {} ({via}) broke off: {e}", proxy.addr))?;
            judge(&head, &via).map(|()| format!("the canary was blocked by airlock ({via})"))
        }
        Channel::Https => {
            let mut stream = stream;
            let head = exchange(
                &mut stream,
                &format!(
                    "CONNECT {CANARY_HOST}:443 HTTP/1.1\r\nHost: {CANARY_HOST}:443\r\n{}User-Agent: airlock-verify\r\n\r\n",
                    proxy.authorization()
                ),
            )
            .map_err(|e| format!("the proxy {} ({via}) broke off: {e}", proxy.addr))?;
            if head.status == 403 {
                // Interception off (or the host passed through): airlock refuses the tunnel
                // itself, so the CA is never presented.
                return judge(&head, &via).map(|()| {
                    format!(
                        "the canary tunnel was refused by airlock ({via}); interception is off, so the CA was not needed"
                    )
                });
            }
            if head.status != 200 {
                return Err(format!(
                    "the proxy {} ({via}) answered the CONNECT with {} and no airlock headers: it is not airlock",
                    proxy.addr, head.status
                ));
            }
            tls_canary(stream, env, config, &via)
        }
    }
}

/// The TLS half of the HTTPS check: the handshake trusting what the environment trusts, then
/// the canary request inside.
fn tls_canary(
    stream: TcpStream,
    env: &Environment,
    config: &Config,
    via: &str,
) -> Result<String, String> {
    let (roots, trust) = trusted_roots(env)?;
    let mut store = rustls::RootCertStore::empty();
    store.add_parsable_certificates(roots);
    let tls_config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(store)
        .with_no_client_auth();
    let name = ServerName::try_from(CANARY_HOST).expect("a valid DNS name");
    let conn = rustls::ClientConnection::new(Arc::new(tls_config), name)
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let mut tls = rustls::StreamOwned::new(conn, stream);
    let untrusted = |e: &dyn fmt::Display| {
        format!(
            "the certificate airlock presented is not trusted here ({e}): {trust} does not hold airlock's CA {}. `airlock run -- CMD` points SSL_CERT_FILE and the other CA variables at {}; see `airlock ca`",
            config.ca_dir().join("airlock-ca.pem").display(),
            config.bundle_path().display()
        )
    };
    let head = match exchange(
        &mut tls,
        &format!(
            "GET {CANARY_PATH} HTTP/1.1\r\nHost: {CANARY_HOST}\r\nUser-Agent: airlock-verify\r\nConnection: close\r\n\r\n"
        ),
    ) {
        Ok(head) => head,
        Err(e) => {
            let tls_error = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>());
            return Err(match tls_error {
                Some(rustls::Error::InvalidCertificate(_)) => untrusted(&e),
                _ => format!("the TLS session through {via} failed: {e}"),
            });
        }
    };
    judge(&head, via)?;
    // Clients read their own CA variables: each one set must hold the CA too.
    let ca = tls
        .conn
        .peer_certificates()
        .and_then(|chain| chain.last())
        .map(|c| c.clone().into_owned());
    if let Some(ca) = ca {
        // SSL_CERT_FILE was this check's own handshake.
        for var in CA_VARS.iter().filter(|v| **v != "SSL_CERT_FILE") {
            let Some(path) = env.get(var) else { continue };
            if !file_holds(Path::new(path), &ca) {
                return Err(format!(
                    "{var}={path} does not hold airlock's CA: the clients that read {var} will refuse airlock's certificates. Point it at {}",
                    config.bundle_path().display()
                ));
            }
        }
    }
    Ok(format!(
        "the canary was blocked by airlock inside TLS ({via}); its certificate is trusted ({trust})"
    ))
}

/// The roots a client of this environment trusts (`SSL_CERT_FILE`, else the system's), and
/// where they come from.
fn trusted_roots(env: &Environment) -> Result<(Vec<CertificateDer<'static>>, String), String> {
    if let Some(path) = env.get("SSL_CERT_FILE") {
        let certs = read_pem_certs(Path::new(path))
            .map_err(|e| format!("SSL_CERT_FILE={path} cannot be read: {e}"))?;
        return Ok((certs, format!("SSL_CERT_FILE={path}")));
    }
    let loaded = rustls_native_certs::load_native_certs();
    Ok((
        loaded.certs,
        "SSL_CERT_FILE is not set, so the system's store".to_string(),
    ))
}

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{e:?}"))?
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err("it holds no PEM certificate".into());
    }
    Ok(certs)
}

fn file_holds(path: &Path, cert: &CertificateDer<'_>) -> bool {
    read_pem_certs(path).is_ok_and(|certs| certs.iter().any(|c| c.as_ref() == cert.as_ref()))
}

/// The entry of a NO_PROXY list that covers the canary host, if any.
fn exempts_canary(list: &str) -> Option<String> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .find(|entry| {
            let suffix = entry.trim_start_matches("*.").trim_start_matches('.');
            *entry == "*" || CANARY_HOST == suffix || CANARY_HOST.ends_with(&format!(".{suffix}"))
        })
        .map(str::to_string)
}

/// A request straight to the canary host, as a client with no proxy variable sends it: it
/// reaches airlock only when something redirects it (a jail's transparent listener).
fn direct(channel: Channel, env: &Environment, config: &Config) -> Result<String, String> {
    let port = if channel == Channel::Http { 80 } else { 443 };
    let addr = (CANARY_HOST, port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok();
    stream.set_write_timeout(Some(IO_TIMEOUT)).ok();
    let via = "no proxy variable".to_string();
    match channel {
        Channel::Http => {
            let head = exchange(
                stream,
                &format!(
                    "GET {CANARY_PATH} HTTP/1.1\r\nHost: {CANARY_HOST}\r\nUser-Agent: airlock-verify\r\nConnection: close\r\n\r\n"
                ),
            )
            .map_err(|e| e.to_string())?;
            judge(&head, &via).map(|()| "the canary was blocked by airlock".to_string())
        }
        Channel::Https => tls_canary(stream, env, config, &via),
    }
}

/// A proxy URL from a variable: `http://[user:pass@]host:port` or `host:port`.
struct ProxyUrl {
    addr: String,
    credentials: Option<String>,
}

impl ProxyUrl {
    fn parse(value: &str) -> Result<ProxyUrl, String> {
        let rest = match value.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "a {scheme}:// proxy is not airlock (airlock is an http:// proxy)"
                ));
            }
            None => value,
        };
        let authority = rest.split('/').next().unwrap_or(rest);
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c.to_string()), h),
            None => (None, authority),
        };
        if hostport.is_empty() {
            return Err("names no host".into());
        }
        let has_port = match hostport.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => hostport.contains(':'),
        };
        let addr = if has_port {
            hostport.to_string()
        } else {
            format!("{hostport}:80")
        };
        Ok(ProxyUrl { addr, credentials })
    }

    /// The URL without its password, for messages.
    fn shown(&self) -> String {
        match &self.credentials {
            Some(c) => format!(
                "http://{}:***@{}",
                c.split(':').next().unwrap_or(""),
                self.addr
            ),
            None => format!("http://{}", self.addr),
        }
    }

    fn authorization(&self) -> String {
        match &self.credentials {
            Some(c) => format!(
                "Proxy-Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(percent_decode(c))
            ),
            None => String::new(),
        }
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{addr} has no address"));
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A response's status line and headers (names lower-cased).
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Writes `request` and reads the response head (byte by byte: what follows the head, a
/// tunnel's TLS, must stay unread).
fn exchange<S: Read + Write>(mut stream: S, request: &str) -> io::Result<Head> {
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 {
            return Err(io::Error::other("the response head is over 64 KiB"));
        }
        match stream.read(&mut byte)? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the connection closed before a response",
                ));
            }
            _ => head.push(byte[0]),
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other("not an HTTP response"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Head { status, headers })
}

/// Whether the canary's answer is airlock's block.
fn judge(head: &Head, via: &str) -> Result<(), String> {
    let rule = head.header("x-airlock-rule");
    if head.status == 403 && rule == Some(CANARY_RULE) {
        return Ok(());
    }
    if head.header("x-airlock-block-reason").is_some() {
        return Err(format!(
            "airlock answered ({via}) but blocked the canary by rule {:?}, not as a canary: it is an older airlock; upgrade it",
            rule.unwrap_or("")
        ));
    }
    Err(format!(
        "the answer ({via}) was {} without airlock's headers: the traffic did not go through airlock",
        head.status
    ))
}

/// `airlock verify`.
pub fn verify(config: &Config) -> Result<ExitCode, Failure> {
    let checks = check_environment(&Environment::current(), config);
    for c in &checks {
        println!(
            "{:<6}{:<6}{}",
            c.channel,
            if c.ok { "ok" } else { "FAIL" },
            c.message
        );
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        println!("airlock is in the path.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "airlock is NOT in the path: {failed} of {} checks failed.",
            checks.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Used by `run`: the failures of the checks on CMD's environment, as one line.
pub fn failures(checks: &[Check]) -> Option<String> {
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.channel, c.message))
        .collect();
    (!failed.is_empty()).then(|| failed.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_entries_that_cover_the_canary() {
        assert_eq!(exempts_canary("localhost,127.0.0.1"), None);
        assert_eq!(exempts_canary("localhost, *"), Some("*".into()));
        assert_eq!(exempts_canary(".invalid"), Some(".invalid".into()));
        assert_eq!(
            exempts_canary("airlock.invalid"),
            Some("airlock.invalid".into())
        );
        assert_eq!(
            exempts_canary("*.airlock.invalid"),
            Some("*.airlock.invalid".into())
        );
        assert_eq!(exempts_canary("lock.invalid"), None);
    }

    #[test]
    fn proxy_urls() {
        let p = ProxyUrl::parse("http://127.0.0.1:8888").unwrap();
        assert_eq!(p.addr, "127.0.0.1:8888");
        assert_eq!(p.authorization(), "");
        let p = ProxyUrl::parse("127.0.0.1:8888/").unwrap();
        assert_eq!(p.addr, "127.0.0.1:8888");
        let p = ProxyUrl::parse("http://me:s%40cret@proxy.local:3128").unwrap();
        assert_eq!(p.addr, "proxy.local:3128");
        assert_eq!(p.shown(), "http://me:***@proxy.local:3128");
        assert_eq!(
            p.authorization(),
            format!(
                "Proxy-Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode("me:s@cret")
            )
        );
        assert_eq!(
            ProxyUrl::parse("http://proxy.local").unwrap().addr,
            "proxy.local:80"
        );
        assert!(ProxyUrl::parse("socks5://127.0.0.1:1080").is_err());
    }
}
