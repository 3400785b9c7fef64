//! A jail's DNS: airlock answers every query itself and never asks a real resolver, so a name
//! cannot carry data out (the labels of a query reach nobody but airlock). Each name asked
//! gets an address of its own from 198.18.0.0/15 (RFC 2544's benchmarking range, never
//! routed): the jail's connections to it are redirected to the transparent listener anyway,
//! which takes the host from the TLS SNI or the HTTP Host, and, for anything else, from this
//! table. Every query is a flow record (`method` DNS, `scheme` dns); its name is scanned like
//! a request's host (`hostname_exfil`, credential rules), and a blocked name gets REFUSED.
//!
//! The parser is written here: one question of a standard query is all a stub resolver sends,
//! and a DNS library would bring a resolver we must not use.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

use super::context::{ProxyContext, stopping};
use crate::pipeline::Exchange;
use crate::pipeline::Scheme;

const POOL_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
const POOL_SIZE: u32 = 1 << 17;
/// Answers are short-lived: the table is reused once the pool wraps.
const TTL_SECS: u32 = 5;

/// The names a jail has asked for and the addresses it was given.
#[derive(Default)]
pub struct JailNames {
    inner: Mutex<Names>,
}

#[derive(Default)]
struct Names {
    by_name: HashMap<String, Ipv4Addr>,
    by_ip: HashMap<Ipv4Addr, String>,
    next: u32,
}

impl JailNames {
    /// The address `name` resolves to in the jail (the same one every time, until the pool
    /// wraps).
    pub fn address_for(&self, name: &str) -> Ipv4Addr {
        let mut n = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ip) = n.by_name.get(name) {
            return *ip;
        }
        n.next = n.next % (POOL_SIZE - 1) + 1;
        let ip = Ipv4Addr::from(POOL_BASE + n.next);
        if let Some(old) = n.by_ip.insert(ip, name.to_string()) {
            n.by_name.remove(&old);
        }
        n.by_name.insert(name.to_string(), ip);
        ip
    }

    /// The name an address was given for, if it is one of ours.
    pub fn name_of(&self, ip: Ipv4Addr) -> Option<String> {
        let n = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        n.by_ip.get(&ip).cloned()
    }
}

/// Answers queries on `socket` until shutdown.
pub async fn serve(ctx: Arc<ProxyContext>, socket: UdpSocket, names: Arc<JailNames>) {
    let mut shutdown = ctx.shutdown.clone();
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "jail DNS: receive failed");
                    continue;
                }
            },
            _ = stopping(&mut shutdown) => return,
        };
        if let Some(answer) = answer(&ctx, &names, &buf[..n], peer) {
            let _ = socket.send_to(&answer, peer).await;
        }
    }
}

/// The answer to one datagram (none for one that is not a DNS query at all).
fn answer(
    ctx: &ProxyContext,
    names: &JailNames,
    packet: &[u8],
    peer: SocketAddr,
) -> Option<Vec<u8>> {
    let query = match Query::parse(packet) {
        Ok(q) => q,
        Err(Malformed::NotAQuery) => return None,
        Err(Malformed::Format { id, flags }) => {
            let tracker = ctx.connection_record(peer.ip(), Some("DNS"), "dns", None);
            tracker.fail(None, "jail DNS: a malformed query was answered FORMERR");
            return Some(header_only(id, flags, RCODE_FORMERR));
        }
    };
    let tracker = ctx.connection_record(peer.ip(), Some("DNS"), "dns", Some((&query.name, 53)));
    tracker.answered();
    let exchange = Exchange {
        listener: ctx.listener_name.clone(),
        client_ip: peer.ip(),
        scheme: Scheme::Http,
        host: query.name.clone(),
        port: 53,
    };
    if let Some(block) =
        crate::pipeline::request::scan_name(&ctx.pipeline, &tracker, &exchange, &query.as_sent)
    {
        // The name is not logged: it may carry the secret that got it refused.
        tracing::debug!(reason = %block.reason, "jail DNS: a query was refused");
        return Some(query.reply(RCODE_REFUSED, None));
    }
    let address = (query.qtype == TYPE_A).then(|| names.address_for(&query.name));
    Some(query.reply(RCODE_NOERROR, address))
}

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
const RCODE_NOERROR: u8 = 0;
const RCODE_FORMERR: u8 = 1;
const RCODE_REFUSED: u8 = 5;

/// One standard query with one question.
struct Query<'a> {
    id: u16,
    flags: u16,
    /// The name, lower-cased, without the final dot; bytes outside printable ASCII as `\DDD`.
    name: String,
    /// The same with its letters' case as sent (base64 and tokens are told by it).
    as_sent: String,
    qtype: u16,
    /// The question section as sent (copied into the answer).
    question: &'a [u8],
}

enum Malformed {
    /// Too short for a header, or a response: not ours to answer.
    NotAQuery,
    /// A query we cannot read: FORMERR.
    Format { id: u16, flags: u16 },
}

impl<'a> Query<'a> {
    fn parse(p: &'a [u8]) -> Result<Query<'a>, Malformed> {
        if p.len() < 12 {
            return Err(Malformed::NotAQuery);
        }
        let id = u16::from_be_bytes([p[0], p[1]]);
        let flags = u16::from_be_bytes([p[2], p[3]]);
        if flags & 0x8000 != 0 {
            return Err(Malformed::NotAQuery);
        }
        let bad = Malformed::Format { id, flags };
        let qdcount = u16::from_be_bytes([p[4], p[5]]);
        let opcode = (flags >> 11) & 0xF;
        if qdcount != 1 || opcode != 0 {
            return Err(bad);
        }
        let mut at = 12;
        let mut as_sent = String::new();
        loop {
            let Some(&len) = p.get(at) else {
                return Err(bad);
            };
            at += 1;
            if len == 0 {
                break;
            }
            // Compression pointers and extended label types have no place in a question.
            if len > 63 || at + len as usize > p.len() {
                return Err(bad);
            }
            if !as_sent.is_empty() {
                as_sent.push('.');
            }
            for &b in &p[at..at + len as usize] {
                match b {
                    b'.' | b'\\' => as_sent.push_str(&format!("\\{b:03}")),
                    0x21..=0x7e => as_sent.push(b as char),
                    _ => as_sent.push_str(&format!("\\{b:03}")),
                }
            }
            at += len as usize;
            if as_sent.len() > 1024 {
                return Err(bad);
            }
        }
        if at + 4 > p.len() {
            return Err(bad);
        }
        let qtype = u16::from_be_bytes([p[at], p[at + 1]]);
        let qclass = u16::from_be_bytes([p[at + 2], p[at + 3]]);
        if qclass != CLASS_IN || as_sent.is_empty() {
            return Err(bad);
        }
        Ok(Query {
            id,
            flags,
            name: as_sent.to_ascii_lowercase(),
            as_sent,
            qtype,
            question: &p[12..at + 4],
        })
    }

    fn reply(&self, rcode: u8, address: Option<Ipv4Addr>) -> Vec<u8> {
        let mut out = header_only(self.id, self.flags, rcode);
        out[5] = 1; // QDCOUNT
        out[7] = u8::from(address.is_some()); // ANCOUNT
        out.extend_from_slice(self.question);
        if let Some(ip) = address {
            out.extend_from_slice(&[0xC0, 12]); // the name: a pointer to the question's
            out.extend_from_slice(&TYPE_A.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&TTL_SECS.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&ip.octets());
        }
        out
    }
}

/// A response header with no sections: QR and RA set, RD copied, AA set (airlock is the
/// authority for everything a jail asks).
fn header_only(id: u16, query_flags: u16, rcode: u8) -> Vec<u8> {
    let flags: u16 = 0x8000 | 0x0400 | (query_flags & 0x0100) | 0x0080 | u16::from(rcode);
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            p.push(label.len() as u8);
            p.extend_from_slice(label.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&CLASS_IN.to_be_bytes());
        p
    }

    #[test]
    fn a_query_gets_an_address_of_its_own() {
        let p = query("Example.COM", TYPE_A);
        let q = Query::parse(&p).ok().unwrap();
        assert_eq!(q.name, "example.com");
        let names = JailNames::default();
        let ip = names.address_for(&q.name);
        assert_eq!(names.address_for("example.com"), ip);
        assert_ne!(names.address_for("other.example"), ip);
        assert_eq!(names.name_of(ip).as_deref(), Some("example.com"));
        let r = q.reply(RCODE_NOERROR, Some(ip));
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0F, 0, "NOERROR");
        assert_eq!(r[2] & 0x80, 0x80, "a response");
        assert_eq!((r[5], r[7]), (1, 1), "one question, one answer");
        assert_eq!(&r[r.len() - 4..], &ip.octets());
        assert!(ip.octets()[0] == 198 && (ip.octets()[1] & 0xFE) == 18);
    }

    #[test]
    fn malformed_and_foreign_packets() {
        assert!(matches!(
            Query::parse(&[1, 2, 3]),
            Err(Malformed::NotAQuery)
        ));
        let mut response = query("a.b", TYPE_A);
        response[2] |= 0x80;
        assert!(matches!(Query::parse(&response), Err(Malformed::NotAQuery)));
        let mut pointer = query("a.b", TYPE_A);
        pointer[12] = 0xC0;
        assert!(matches!(
            Query::parse(&pointer),
            Err(Malformed::Format { .. })
        ));
        let truncated = &query("example.com", TYPE_A)[..20];
        assert!(matches!(
            Query::parse(truncated),
            Err(Malformed::Format { .. })
        ));
    }

    #[test]
    fn odd_bytes_in_labels_are_escaped() {
        let mut p = query("x.y", TYPE_A);
        p[13] = 0x01;
        let q = Query::parse(&p).ok().unwrap();
        assert_eq!(q.name, "\\001.y");
    }

    #[test]
    fn the_pool_wraps_and_forgets_the_oldest() {
        let names = JailNames::default();
        let first = names.address_for("first.example");
        for i in 0..POOL_SIZE {
            names.address_for(&format!("n{i}.example"));
        }
        assert_ne!(names.name_of(first).as_deref(), Some("first.example"));
    }
}
