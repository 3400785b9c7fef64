//! Host names and addresses as they arrive: `host[:port]` splitting (a Host header, a
//! CONNECT target, an :authority), host globs, listen addresses, CIDRs, and the SNI read
//! from the first bytes of a redirected TLS connection (rustls parses the ClientHello;
//! this covers airlock's use of it: a prefix of a hello is never read differently).
#![no_main]

use airlock::config::policy::Cidr;
use airlock::config::{HostSet, parse_listen};
use airlock::pipeline::decide::split_host_port;
use airlock::proxy::transparent::{Hello, client_hello_sni};
use airlock_fuzz::Input;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let cut = input.u32() as usize;
    let rest = input.rest();
    sni(rest, cut);
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    split(first);
    let _ = parse_listen(first);
    if let Ok(c) = Cidr::parse(first) {
        let _ = c.contains(std::net::Ipv4Addr::LOCALHOST.into());
        let _ = c.contains(std::net::Ipv6Addr::LOCALHOST.into());
    }
    let patterns: Vec<String> = lines.map(str::to_string).collect();
    if let Ok(set) = HostSet::new(&patterns) {
        let m = set.matches(first);
        assert_eq!(
            m,
            set.matches(&first.to_ascii_uppercase()),
            "{first:?} {patterns:?}"
        );
        assert_eq!(
            m,
            set.matches(&first.to_ascii_lowercase()),
            "{first:?} {patterns:?}"
        );
        assert!(!set.is_empty() || !m);
    }
});

fn split(s: &str) {
    let (host, port) = split_host_port(s);
    if let Some(p) = port {
        // A port is read only off the end, after the last colon.
        let tail = s.rsplit_once(':').map(|(_, t)| t);
        assert_eq!(
            tail.and_then(|t| t.parse().ok()),
            Some(p),
            "{s:?} → {host:?}"
        );
    }
    if !s.contains(':') && !s.starts_with('[') {
        assert_eq!((host.as_str(), port), (s, None));
    }
    // What is split is what a host and port are joined into.
    if !host.contains(':') && !host.starts_with('[') && !host.is_empty() {
        for p in [0u16, 443, 65535] {
            assert_eq!(
                split_host_port(&format!("{host}:{p}")),
                (host.clone(), Some(p)),
                "{host:?}"
            );
        }
    }
    if !host.contains(']') {
        assert_eq!(
            split_host_port(&format!("[{host}]:8443")),
            (host.clone(), Some(8443))
        );
    }
}

fn sni(bytes: &[u8], cut: usize) {
    let whole = client_hello_sni(bytes);
    if let Hello::Complete(Some(name)) = &whole {
        assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name:?}");
    }
    if bytes.is_empty() {
        return;
    }
    let prefix = client_hello_sni(&bytes[..cut % bytes.len()]);
    match (&whole, &prefix) {
        (_, Hello::Partial) => {}
        (a, b) if a == b => {}
        (a, b) => panic!("a prefix reads as {b:?}, the whole as {a:?}"),
    }
}
