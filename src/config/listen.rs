//! Listen addresses: `HOST:PORT` as the flags and the file write them.

use std::net::{IpAddr, SocketAddr};

pub fn parse_listen_host(host: &str) -> Result<IpAddr, String> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::from([127, 0, 0, 1]));
    }
    host.trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| format!("expected an IP address such as 127.0.0.1, got {host:?}"))
}

/// `HOST:PORT` for `--listen`; `localhost` is accepted for the host.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("expected HOST:PORT such as 127.0.0.1:8888, got {s:?}"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("expected HOST:PORT such as 127.0.0.1:8888, got {s:?}"))?;
    Ok(SocketAddr::new(parse_listen_host(host)?, port))
}
