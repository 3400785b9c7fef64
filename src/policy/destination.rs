//! The destination guard: airlock refuses to connect to loopback, link-local (the cloud
//! metadata address among them), private and unique-local addresses unless `allow_private`
//! names them. It is checked on the addresses a name resolved to (or `resolve` mapped it
//! to), right before connecting, so a public name pointing at a private address is caught.

use std::net::IpAddr;

use crate::config::policy::Cidr;

#[derive(Debug, Clone, Default)]
pub struct DestinationGuard {
    allow: Vec<Cidr>,
}

impl DestinationGuard {
    pub fn new(allow: Vec<Cidr>) -> Self {
        DestinationGuard { allow }
    }

    /// Why `ip` may not be connected to, or `None` when it may.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        // ::ffff:127.0.0.1 is 127.0.0.1.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let kind = classify(ip)?;
        if self.allow.iter().any(|c| c.contains(ip)) {
            return None;
        }
        Some(kind)
    }
}

/// The kind of non-public address `ip` is, if it is one.
fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_link_local() {
                Some("link-local (cloud metadata lives here)")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("carrier-grade NAT")
            } else if v4.is_broadcast() || v4.is_multicast() {
                Some("broadcast or multicast")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if first & 0xfe00 == 0xfc00 {
                Some("unique-local")
            } else if v6.is_multicast() {
                Some("multicast")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_refused_unless_allowed() {
        let guard = DestinationGuard::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(guard.refusal(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "2606:4700::1111", "93.184.216.34"] {
            assert!(guard.refusal(ip.parse().unwrap()).is_none(), "{ip}");
        }
        let guard = DestinationGuard::new(vec![Cidr::parse("127.0.0.0/8").unwrap()]);
        assert!(guard.refusal("127.0.0.1".parse().unwrap()).is_none());
        assert!(guard.refusal("::ffff:127.0.0.1".parse().unwrap()).is_none());
        assert!(guard.refusal("169.254.169.254".parse().unwrap()).is_some());
    }
}
