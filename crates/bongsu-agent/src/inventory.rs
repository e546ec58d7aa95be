//! Host inventory: OS, kernel, CPU, memory, addresses, packages, users and groups, with a
//! stable hash so the agent sends it only when it changed.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::config::InventoryConfig;
use crate::paths::{read_to_string, HostPaths};
use crate::{Error, Result};

/// What a host is and has. Every list is sorted, so equal hosts serialise equally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Inventory {
    pub hostname: String,
    pub os: OsInfo,
    pub kernel: KernelInfo,
    pub cpu: CpuInfo,
    pub memory_bytes: u64,
    pub addresses: Vec<InterfaceAddress>,
    pub packages: Vec<Package>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
}

/// Fields of `/etc/os-release`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct OsInfo {
    pub id: String,
    pub name: String,
    pub version_id: String,
    pub pretty_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct KernelInfo {
    pub release: String,
    pub version: String,
    pub machine: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct CpuInfo {
    pub model: String,
    pub logical_cpus: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct InterfaceAddress {
    /// Interface name; empty when it cannot be told (an IPv4 address with no matching route).
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// `dpkg` or `rpm`
    pub manager: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

impl Inventory {
    /// Gathers the inventory of the host under `paths`.
    pub fn collect(paths: &HostPaths, config: &InventoryConfig) -> Result<Self> {
        let meminfo = read_to_string(&paths.proc("meminfo"))?;
        let memory_bytes = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024);
        let mut packages = Vec::new();
        if config.packages {
            if let Ok(text) = std::fs::read_to_string(paths.root("var/lib/dpkg/status")) {
                packages.extend(parse_dpkg_status(&text));
            }
            if paths.rootfs == Path::new("/") {
                packages.extend(rpm_packages()?);
            }
            packages.sort();
        }
        let read_opt = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let mut addresses = parse_if_inet6(&read_opt(&paths.proc("net/if_inet6")));
        addresses.extend(ipv4_addresses(
            &read_opt(&paths.proc("net/fib_trie")),
            &read_opt(&paths.proc("net/route")),
        ));
        addresses.sort();
        addresses.dedup();
        let u = rustix::system::uname();
        let uname_str = |c: &std::ffi::CStr| c.to_string_lossy().into_owned();
        let kernel_file = |rel: &str| {
            std::fs::read_to_string(paths.proc(rel))
                .map(|s| s.trim().to_owned())
                .ok()
        };
        Ok(Self {
            hostname: kernel_file("sys/kernel/hostname").unwrap_or_else(|| uname_str(u.nodename())),
            os: parse_os_release(&read_opt(&paths.root("etc/os-release"))),
            kernel: KernelInfo {
                release: kernel_file("sys/kernel/osrelease")
                    .unwrap_or_else(|| uname_str(u.release())),
                version: kernel_file("sys/kernel/version")
                    .unwrap_or_else(|| uname_str(u.version())),
                machine: uname_str(u.machine()),
            },
            cpu: parse_cpuinfo(&read_to_string(&paths.proc("cpuinfo"))?),
            memory_bytes,
            addresses,
            packages,
            users: parse_passwd(&read_opt(&paths.root("etc/passwd"))),
            groups: parse_group(&read_opt(&paths.root("etc/group"))),
        })
    }

    /// Canonical JSON (lists sorted, fields in declaration order).
    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and addresses cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A stable 128-bit hash of the canonical JSON, as 32 hex digits: send the inventory
    /// only when this changes.
    pub fn hash(&self) -> String {
        format!(
            "{:032x}",
            xxhash_rust::xxh3::xxh3_128(self.to_json().as_bytes())
        )
    }
}

pub(crate) fn parse_os_release(text: &str) -> OsInfo {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
            .unwrap_or(v);
        m.insert(k.trim().to_owned(), v.to_owned());
    }
    let get = |k: &str| m.get(k).cloned().unwrap_or_default();
    OsInfo {
        id: get("ID"),
        name: get("NAME"),
        version_id: get("VERSION_ID"),
        pretty_name: get("PRETTY_NAME"),
    }
}

pub(crate) fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut model = String::new();
    let mut n = 0;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim() {
            "processor" => n += 1,
            "model name" | "Model" | "cpu model" if model.is_empty() => model = v.trim().to_owned(),
            _ => {}
        }
    }
    CpuInfo {
        model,
        logical_cpus: n,
    }
}

/// Installed packages from a dpkg status file (stanzas separated by blank lines).
pub(crate) fn parse_dpkg_status(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut name = "";
        let mut version = "";
        let mut arch = "";
        let mut installed = false;
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package:") {
                name = v.trim();
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = v.trim();
            } else if let Some(v) = line.strip_prefix("Architecture:") {
                arch = v.trim();
            } else if let Some(v) = line.strip_prefix("Status:") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if installed && !name.is_empty() {
            out.push(Package {
                name: name.to_owned(),
                version: version.to_owned(),
                arch: arch.to_owned(),
                manager: "dpkg".into(),
            });
        }
    }
    out
}

/// `rpm -qa` (argv, no shell) when an `rpm` binary exists; nothing otherwise.
fn rpm_packages() -> Result<Vec<Package>> {
    let Some(rpm) = ["/usr/bin/rpm", "/bin/rpm"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        return Ok(Vec::new());
    };
    let out = Command::new(rpm)
        .args(["-qa", "--qf", "%{NAME}\t%{VERSION}-%{RELEASE}\t%{ARCH}\n"])
        .output()
        .map_err(|source| Error::Command {
            program: rpm.display().to_string(),
            source,
        })?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some(Package {
                name: f.next()?.to_owned(),
                version: f.next()?.to_owned(),
                arch: f.next()?.to_owned(),
                manager: "rpm".into(),
            })
        })
        .collect())
}

pub(crate) fn parse_passwd(text: &str) -> Vec<User> {
    let mut v: Vec<User> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(User {
                name: f[0].to_owned(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_owned(),
                shell: f[6].to_owned(),
            })
        })
        .collect();
    v.sort();
    v
}

pub(crate) fn parse_group(text: &str) -> Vec<Group> {
    let mut v: Vec<Group> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let mut members: Vec<String> = f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            members.sort();
            Some(Group {
                name: f[0].to_owned(),
                gid: f[2].parse().ok()?,
                members,
            })
        })
        .collect();
    v.sort();
    v
}

/// IPv6 addresses from `/proc/net/if_inet6`: address, index, prefix, scope, flags, name.
pub(crate) fn parse_if_inet6(text: &str) -> Vec<InterfaceAddress> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || f[0].len() != 32 {
                return None;
            }
            let v = u128::from_str_radix(f[0], 16).ok()?;
            Some(InterfaceAddress {
                interface: f[5].to_owned(),
                address: IpAddr::V6(Ipv6Addr::from(v)),
                prefix_len: u8::from_str_radix(f[2], 16).ok()?,
            })
        })
        .collect()
}

/// Local IPv4 addresses: the `/32 host LOCAL` leaves of `/proc/net/fib_trie`, each given
/// the interface and prefix of the most specific `/proc/net/route` entry containing it.
pub(crate) fn ipv4_addresses(fib_trie: &str, route: &str) -> Vec<InterfaceAddress> {
    // (interface, network, mask) with network and mask as host-order integers.
    let routes: Vec<(String, u32, u32)> = route
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let dest = u32::from_str_radix(f[1], 16).ok()?;
            let mask = u32::from_str_radix(f[7], 16).ok()?;
            let net = u32::from_be_bytes(dest.to_ne_bytes());
            let mask = u32::from_be_bytes(mask.to_ne_bytes());
            (mask != 0).then(|| (f[0].to_owned(), net, mask))
        })
        .collect();
    let mut out = Vec::new();
    let mut last_ip: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start_matches([' ', '|', '-', '+']).trim();
        if let Ok(ip) = t.parse::<Ipv4Addr>() {
            last_ip = Some(ip);
        } else if t.starts_with("/32 host LOCAL") {
            let Some(ip) = last_ip else { continue };
            let n = u32::from(ip);
            let best = routes
                .iter()
                .filter(|(_, net, mask)| n & mask == *net)
                .max_by_key(|(_, _, mask)| mask.count_ones());
            let (interface, prefix_len) = match best {
                Some((iface, _, mask)) => (iface.clone(), mask.count_ones() as u8),
                None if ip.is_loopback() => ("lo".to_owned(), 8),
                None => (String::new(), 32),
            };
            out.push(InterfaceAddress {
                interface,
                address: IpAddr::V4(ip),
                prefix_len,
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixture_files() {
        let os = parse_os_release("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n");
        assert_eq!(os.id, "debian");
        assert_eq!(os.version_id, "12");
        assert_eq!(os.pretty_name, "Debian GNU/Linux 12 (bookworm)");

        let cpu = parse_cpuinfo(
            "processor\t: 0\nmodel name\t: Fancy CPU\n\nprocessor\t: 1\nmodel name\t: Fancy CPU\n",
        );
        assert_eq!((cpu.model.as_str(), cpu.logical_cpus), ("Fancy CPU", 2));

        let pk = parse_dpkg_status("Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\nDescription: x\n continued\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n\n");
        assert_eq!(pk.len(), 1);
        assert_eq!(
            (
                pk[0].name.as_str(),
                pk[0].version.as_str(),
                pk[0].arch.as_str()
            ),
            ("a", "1.0", "amd64")
        );

        let users = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbad line\nbob:x:1000:1000::/home/bob:/bin/sh\n",
        );
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].name, "bob");
        let groups = parse_group("adm:x:4:syslog,bob\nusers:x:100:\n");
        assert_eq!(groups[0].members, ["bob", "syslog"]);
        assert!(groups[1].members.is_empty());

        let v6 = parse_if_inet6("00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000000000000000001 02 40 20 80     eth0\n");
        assert_eq!(v6[0].address, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(v6[1].prefix_len, 64);
        assert_eq!(v6[1].interface, "eth0");
    }

    #[test]
    fn ipv4_from_fib_trie_and_routes() {
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 10.0.2.0/24 2 0 2\n        |-- 10.0.2.0\n           /24 link UNICAST\n        |-- 10.0.2.15\n           /32 host LOCAL\n  |-- 127.0.0.1\n     /32 host LOCAL\nLocal:\n        |-- 10.0.2.15\n           /32 host LOCAL\n";
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\neth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let a = ipv4_addresses(fib, route);
        assert_eq!(a.len(), 2);
        let eth = a.iter().find(|x| x.interface == "eth0").unwrap();
        assert_eq!(eth.address, "10.0.2.15".parse::<IpAddr>().unwrap());
        assert_eq!(eth.prefix_len, 24);
        assert!(a.iter().any(|x| x.interface == "lo" && x.prefix_len == 8));
    }

    #[test]
    fn hash_is_stable_and_sensitive() {
        let a = Inventory {
            hostname: "h".into(),
            ..Default::default()
        };
        let b = a.clone();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 32);
        let mut c = a.clone();
        c.memory_bytes = 1;
        assert_ne!(a.hash(), c.hash());
    }
}
