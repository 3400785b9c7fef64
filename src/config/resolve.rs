//! `resolve`: host → address overrides, as curl's `--resolve`.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, Copy)]
enum Target {
    Ip(IpAddr),
    Addr(SocketAddr),
}

/// Keys are `host` or `host:port`; values `ip` or `ip:port`. A port in the value replaces
/// the request's port. `host:port` keys win over bare `host` keys.
#[derive(Debug, Clone, Default)]
pub struct ResolveMap {
    by_host_port: HashMap<(String, u16), Target>,
    by_host: HashMap<String, Target>,
}

impl ResolveMap {
    /// Errors carry the offending key so the config error can name `resolve.<key>`.
    pub fn new(raw: BTreeMap<String, String>) -> Result<Self, (String, String)> {
        let mut map = ResolveMap::default();
        for (key, value) in raw {
            let target = parse_target(&value).ok_or_else(|| {
                (
                    key.clone(),
                    format!("expected an IP address or IP:PORT, got {value:?}"),
                )
            })?;
            let lower = key.to_ascii_lowercase();
            match lower.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                    let port: u16 = port.parse().map_err(|_| {
                        (
                            key.clone(),
                            "a key is HOST or HOST:PORT with a numeric port".to_string(),
                        )
                    })?;
                    let host = host.trim_matches(|c| c == '[' || c == ']').to_string();
                    map.by_host_port.insert((host, port), target);
                }
                _ => {
                    map.by_host.insert(lower, target);
                }
            }
        }
        Ok(map)
    }

    pub fn lookup(&self, host: &str, port: u16) -> Option<SocketAddr> {
        if self.by_host_port.is_empty() && self.by_host.is_empty() {
            return None;
        }
        let host = host.to_ascii_lowercase();
        let target = self
            .by_host_port
            .get(&(host.clone(), port))
            .or_else(|| self.by_host.get(&host))?;
        Some(match *target {
            Target::Ip(ip) => SocketAddr::new(ip, port),
            Target::Addr(addr) => addr,
        })
    }
}

fn parse_target(value: &str) -> Option<Target> {
    let v = value.trim();
    if let Ok(addr) = v.parse::<SocketAddr>() {
        return Some(Target::Addr(addr));
    }
    v.trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .ok()
        .map(Target::Ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> ResolveMap {
        ResolveMap::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn port_specific_keys_win_and_value_ports_replace() {
        let m = map(&[
            ("example.test", "127.0.0.1"),
            ("example.test:443", "127.0.0.1:4443"),
            ("v6.test", "[::1]:8080"),
        ]);
        assert_eq!(
            m.lookup("example.test", 80),
            Some("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            m.lookup("EXAMPLE.test", 443),
            Some("127.0.0.1:4443".parse().unwrap())
        );
        assert_eq!(m.lookup("v6.test", 1), Some("[::1]:8080".parse().unwrap()));
        assert_eq!(m.lookup("other.test", 80), None);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = ResolveMap::new([("a.test".to_string(), "nope".to_string())].into()).unwrap_err();
        assert_eq!(err.0, "a.test");
    }
}
