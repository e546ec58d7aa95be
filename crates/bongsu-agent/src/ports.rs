//! Listening TCP and UDP sockets from `/proc/net/{tcp,tcp6,udp,udp6}`, and watched ports.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{PortProto, PortsConfig};
use crate::metrics::Metrics;
use crate::paths::HostPaths;
use crate::{Error, Result};

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListeningSocket {
    /// `tcp`, `tcp6`, `udp` or `udp6`: the /proc/net file it came from.
    pub proto: String,
    pub address: IpAddr,
    pub port: u16,
    pub inode: u64,
}

/// Parses `/proc/net` address text: `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), each
/// 32-bit word printed in the host's byte order.
fn parse_addr(s: &str) -> Option<(IpAddr, u16)> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |h: &str| u32::from_str_radix(h, 16).ok().map(u32::to_ne_bytes);
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(addr.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// Listening sockets in one /proc/net table: TCP in state LISTEN (0A), UDP unconnected
/// (state 07 with a zero remote address).
pub(crate) fn parse_net_table(proto: &str, text: &str) -> Vec<ListeningSocket> {
    let tcp = proto.starts_with("tcp");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            let (address, port) = parse_addr(f[1])?;
            let (remote, _) = parse_addr(f[2])?;
            let listening = if tcp {
                f[3] == "0A"
            } else {
                f[3] == "07" && remote.is_unspecified()
            };
            listening.then(|| ListeningSocket {
                proto: proto.to_owned(),
                address,
                port,
                inode: f[9].parse().unwrap_or(0),
            })
        })
        .collect()
}

/// All listening sockets of the host; tables that do not exist (no IPv6) are skipped.
pub fn listening_sockets(paths: &HostPaths) -> Result<Vec<ListeningSocket>> {
    let mut out = Vec::new();
    let mut any = false;
    for proto in ["tcp", "tcp6", "udp", "udp6"] {
        let path = paths.proc(&format!("net/{proto}"));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                any = true;
                out.extend(parse_net_table(proto, &text));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::read(path, e)),
        }
    }
    if !any {
        return Err(Error::read(
            paths.proc("net/tcp"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    out.sort();
    out.dedup_by(|a, b| a.proto == b.proto && a.address == b.address && a.port == b.port);
    Ok(out)
}

/// Reports listening sockets and watched ports.
#[derive(Debug, Clone)]
pub struct PortCollector {
    paths: HostPaths,
    config: PortsConfig,
}

impl PortCollector {
    pub fn new(paths: HostPaths, config: PortsConfig) -> Self {
        Self { paths, config }
    }

    pub fn collect(&self, out: &mut Metrics) -> Result<()> {
        let socks = listening_sockets(&self.paths)?;
        if self.config.listening {
            for s in &socks {
                let addr = s.address.to_string();
                let port = s.port.to_string();
                out.gauge(
                    "bongsu_port_listening",
                    "A socket listening on this address and port (1).",
                    &[("proto", &s.proto), ("address", &addr), ("port", &port)],
                    1.0,
                );
            }
        }
        for w in &self.config.watch {
            let prefix = match w.proto {
                PortProto::Tcp => "tcp",
                PortProto::Udp => "udp",
            };
            let up = socks
                .iter()
                .any(|s| s.port == w.port && s.proto.starts_with(prefix));
            let port = w.port.to_string();
            out.gauge(
                "bongsu_port_up",
                "Whether something listens on the watched port (1) or not (0).",
                &[("name", &w.name), ("proto", prefix), ("port", &port)],
                if up { 1.0 } else { 0.0 },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixture_tables() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0 100 0 0 10 0\n\
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0 100 0 0 10 0\n";
        let s = parse_net_table("tcp", tcp);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].address, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(s[0].port, 8080);
        assert_eq!(s[0].inode, 1111);

        let tcp6 = "  sl  local_address                         remote_address                        st\n\
   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3333 1\n";
        let s = parse_net_table("tcp6", tcp6);
        assert_eq!(s[0].address, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(s[0].port, 22);

        let udp = "  sl  local_address rem_address   st\n\
  10: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4444 2\n\
  11: 0100007F:0045 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 5555 2\n";
        let s = parse_net_table("udp", udp);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].port, 68);
        assert_eq!(s[0].address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }
}
