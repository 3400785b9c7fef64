//! Identify, for a jail's refused connections: which process owns the other end of a socket,
//! and where a redirected UDP datagram was going. Linux `/proc` only; each answer is best
//! effort (a process may have exited, `/proc` may be hidden), and `None` says "unknown".

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

/// Which socket table to look in.
#[derive(Debug, Clone, Copy)]
pub enum Proto {
    Tcp,
    Udp,
}

/// The pid and program name of the process whose socket is bound to `local` (the client's
/// address as airlock sees it), searching every network namespace on the machine.
pub fn owner_of(proto: Proto, local: SocketAddr) -> Option<(u32, String)> {
    let SocketAddr::V4(local) = local else {
        return None;
    };
    let wanted = proc_net_address(local);
    let table = match proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    };
    let pids: Vec<u32> = fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    // One read of the socket table per network namespace.
    let mut seen_namespaces = Vec::new();
    for &pid in &pids {
        let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        if seen_namespaces.contains(&ns) {
            continue;
        }
        seen_namespaces.push(ns.clone());
        let Ok(sockets) = fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        // A UDP socket that sends without connecting is listed by its port alone
        // (0.0.0.0:port): it counts in the namespace that holds the sender's address.
        let inode = inode_of(&sockets, &wanted).or_else(|| {
            let unbound = proc_net_address(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, local.port()));
            inode_of(&sockets, &unbound).filter(|_| holds_address(pid, *local.ip()))
        });
        let Some(inode) = inode else {
            continue;
        };
        let link = format!("socket:[{inode}]");
        for &candidate in &pids {
            if fs::read_link(format!("/proc/{candidate}/ns/net"))
                .ok()
                .as_ref()
                != Some(&ns)
            {
                continue;
            }
            let Ok(fds) = fs::read_dir(format!("/proc/{candidate}/fd")) else {
                continue;
            };
            let owns = fds
                .filter_map(Result::ok)
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == link.as_str()));
            if owns {
                let program = fs::read_to_string(format!("/proc/{candidate}/comm"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_default();
                return Some((candidate, program));
            }
        }
    }
    None
}

/// Whether `ip` is a local address of the network namespace of `pid` (its routing table's
/// `/32 host LOCAL` entries).
fn holds_address(pid: u32, ip: Ipv4Addr) -> bool {
    let Ok(trie) = fs::read_to_string(format!("/proc/{pid}/net/fib_trie")) else {
        return false;
    };
    let wanted = ip.to_string();
    let lines: Vec<&str> = trie.lines().collect();
    lines.windows(2).any(|w| {
        w[0].trim().trim_start_matches("|-- ") == wanted && w[1].contains("/32 host LOCAL")
    })
}

/// `0200C80A:1F90`: how `/proc/net/tcp` writes 10.200.0.2:8080 (the address as the
/// machine's little-endian word, the port in hex).
fn proc_net_address(addr: SocketAddrV4) -> String {
    let word = u32::from_le_bytes(addr.ip().octets());
    format!("{word:08X}:{:04X}", addr.port())
}

/// The inode of the socket whose local address is `wanted` in a `/proc/net/{tcp,udp}` table.
fn inode_of(table: &str, wanted: &str) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&wanted))
            .then(|| fields.get(9)?.parse().ok())
            .flatten()
    })
}

/// Where a UDP datagram from `peer`, redirected to airlock's `local` port, was going: its
/// original destination, from the connection tracking table.
pub fn udp_original_destination(peer: SocketAddr, local_port: u16) -> Option<SocketAddr> {
    let table = fs::read_to_string("/proc/net/nf_conntrack").ok()?;
    original_in_conntrack(&table, peer, local_port)
}

fn original_in_conntrack(table: &str, peer: SocketAddr, local_port: u16) -> Option<SocketAddr> {
    let (peer_ip, peer_port) = (peer.ip().to_string(), peer.port().to_string());
    let local_port = local_port.to_string();
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(2) != Some(&"udp") {
            continue;
        }
        let values = |key: &str| -> Vec<&str> {
            fields
                .iter()
                .filter_map(|f| f.strip_prefix(key))
                .collect::<Vec<_>>()
        };
        let (src, dst, sport, dport) = (
            values("src="),
            values("dst="),
            values("sport="),
            values("dport="),
        );
        // The original tuple first, the reply tuple second (from airlock's port).
        if src.len() == 2
            && dst.len() == 2
            && sport.len() == 2
            && dport.len() == 2
            && src[0] == peer_ip
            && sport[0] == peer_port
            && sport[1] == local_port
        {
            let ip: Ipv4Addr = dst[0].parse().ok()?;
            let port: u16 = dport[0].parse().ok()?;
            return Some(SocketAddr::new(IpAddr::V4(ip), port));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses() {
        let a: SocketAddrV4 = "10.200.0.2:8080".parse().unwrap();
        assert_eq!(proc_net_address(a), "0200C80A:1F90");
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0200C80A:1F90 0100007F:0050 01 00000000:00000000 00:00000000 00000000     0        0 123456 1 0000000000000000 20 4 30 10 -1\n";
        assert_eq!(inode_of(table, "0200C80A:1F90"), Some(123456));
        assert_eq!(inode_of(table, "0200C80A:1F91"), None);
    }

    #[test]
    fn local_addresses_from_the_routing_trie() {
        // This process's own namespace holds 127.0.0.1 as a local address.
        assert!(holds_address(std::process::id(), Ipv4Addr::LOCALHOST));
        assert!(!holds_address(
            std::process::id(),
            Ipv4Addr::new(192, 0, 2, 77)
        ));
    }

    #[test]
    fn conntrack_lines() {
        let table = "ipv4     2 udp      17 29 src=10.200.0.2 dst=1.2.3.4 sport=45000 dport=9999 [UNREPLIED] src=127.0.0.1 dst=10.200.0.2 sport=40001 dport=45000 mark=0 zone=0 use=2\n";
        let peer: SocketAddr = "10.200.0.2:45000".parse().unwrap();
        assert_eq!(
            original_in_conntrack(table, peer, 40001),
            Some("1.2.3.4:9999".parse().unwrap())
        );
        assert_eq!(original_in_conntrack(table, peer, 40002), None);
    }
}
