//! The identity of one exchange, decided once by the listener and never second-guessed
//! later, and why it was blocked.

use std::net::IpAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// Who asked for what: the listener, the client, and the destination. Inside a TLS tunnel
/// the destination is the CONNECT target, whatever the request's Host header says.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub listener: Arc<str>,
    pub client_ip: IpAddr,
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
}

impl Exchange {
    /// `host[:port]` as it belongs in a URL (IPv6 bracketed, default port omitted).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == self.scheme.default_port() {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            path_and_query
        )
    }
}

/// Why an exchange was blocked, for the 403 and the record.
#[derive(Debug, Clone)]
pub struct BlockInfo {
    /// Lower is more specific; when several rules block, the lowest names the block.
    pub rank: u8,
    /// `credential-leak`, `policy`, `injection` or `destination` (X-Airlock-Block-Reason).
    pub kind: &'static str,
    /// Rule id or policy rule name (X-Airlock-Rule).
    pub rule: String,
    /// One sentence for people: "egress DLP: GitHub token (classic) found in request".
    pub reason: String,
    /// More detail (where it was found), never the secret.
    pub detail: String,
}

/// Which body of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}
