//! Observing and driving a namespace with `ip`, `ping`, `nft` and `sysctl`.

use std::net::Ipv4Addr;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use crate::exec::Output;
use crate::netns::Netns;

/// One link as `ip -j -d link` shows it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Link {
    pub ifname: String,
    /// Bridge (or other master) this link is enslaved to.
    pub master: Option<String>,
    #[serde(default)]
    pub operstate: String,
    pub address: Option<String>,
    pub mtu: Option<u32>,
    #[serde(default)]
    pub linkinfo: Option<LinkInfo>,
    pub num_tx_queues: Option<u32>,
    pub num_rx_queues: Option<u32>,
    /// `UP`, `PROMISC`, ...
    #[serde(default)]
    pub flags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct LinkInfo {
    pub info_kind: Option<String>,
}

impl Link {
    /// (tx, rx) queue counts.
    pub fn queues(&self) -> (Option<u32>, Option<u32>) {
        (self.num_tx_queues, self.num_rx_queues)
    }

    /// "veth", "bridge", ... (None for lo).
    pub fn kind(&self) -> Option<&str> {
        self.linkinfo.as_ref()?.info_kind.as_deref()
    }
}

/// One IPv4 route as `ip -j -4 route` shows it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Route {
    /// "default" or a CIDR / address.
    pub dst: String,
    pub gateway: Option<String>,
    pub dev: Option<String>,
}

/// Runs `cmd` inside `ns` (`ip netns exec`), capturing its output.
pub fn run_in(ns: &Netns, cmd: &[&str]) -> Output {
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .args(cmd)
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    to_output(out)
}

/// Like [`run_in`] but panics unless the command succeeds.
pub fn must_run_in(ns: &Netns, cmd: &[&str]) -> Output {
    let out = run_in(ns, cmd);
    assert!(out.success(), "{cmd:?} in {}: {out}", ns.name());
    out
}

pub(crate) fn to_output(out: std::process::Output) -> Output {
    use std::os::unix::process::ExitStatusExt;
    let signal = out.status.signal();
    Output {
        code: out
            .status
            .code()
            .unwrap_or_else(|| 128 + signal.unwrap_or(0)),
        signal,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `ip -n NS -j ARGS`, parsed.
pub fn ip_json(ns: &Netns, args: &[&str]) -> Value {
    let out = Command::new("ip")
        .args(["-n", ns.name(), "-j"])
        .args(args)
        .output()
        .expect("spawn ip");
    let out = to_output(out);
    assert!(out.success(), "ip {args:?} in {}: {out}", ns.name());
    if out.stdout.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    out.json()
}

/// All links of a namespace.
pub fn links(ns: &Netns) -> Vec<Link> {
    serde_json::from_value(ip_json(ns, &["-d", "link", "show"])).expect("ip -j link schema")
}

/// The named link, if present.
pub fn link(ns: &Netns, ifname: &str) -> Option<Link> {
    links(ns).into_iter().find(|l| l.ifname == ifname)
}

/// Sorted link names of a namespace.
pub fn link_names(ns: &Netns) -> Vec<String> {
    let mut names: Vec<String> = links(ns).into_iter().map(|l| l.ifname).collect();
    names.sort();
    names
}

/// Links enslaved to `bridge`.
pub fn bridge_ports(ns: &Netns, bridge: &str) -> Vec<Link> {
    links(ns)
        .into_iter()
        .filter(|l| l.master.as_deref() == Some(bridge))
        .collect()
}

/// The `addr_info` entries of `ip -j <args>` (e.g. `["-6", "addr", "show", "dev", "eth0"]`).
pub fn addr_infos(ns: &Netns, args: &[&str]) -> Vec<Value> {
    ip_json(ns, args)
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// IPv4 addresses (address, prefix) on one interface.
pub fn addrs(ns: &Netns, ifname: &str) -> Vec<(Ipv4Addr, u8)> {
    addr_infos(ns, &["-4", "addr", "show", "dev", ifname])
        .into_iter()
        .filter_map(|a| {
            Some((
                a["local"].as_str()?.parse().ok()?,
                a["prefixlen"].as_u64()? as u8,
            ))
        })
        .collect()
}

/// IPv4 routes of the main table.
pub fn routes(ns: &Netns) -> Vec<Route> {
    serde_json::from_value(ip_json(ns, &["-4", "route", "show"])).expect("ip -j route schema")
}

/// True if one ICMP echo gets an answer (up to 3 tries of 1 s each: the first may wait for ARP).
pub fn ping(ns: &Netns, addr: Ipv4Addr) -> bool {
    (0..3).any(|_| ping_once(ns, addr))
}

/// One `ping -c 1 -W 1`; for pings that must fail.
pub fn ping_once(ns: &Netns, addr: Ipv4Addr) -> bool {
    run_in(
        ns,
        &["ping", "-n", "-q", "-c", "1", "-W", "1", &addr.to_string()],
    )
    .success()
}

/// nftables tables of a namespace as (family, name).
pub fn nft_tables(ns: &Netns) -> Vec<(String, String)> {
    let out = must_run_in(ns, &["nft", "-j", "list", "tables"]);
    let v = out.json();
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    let tables = items.iter().filter_map(|i| i.get("table"));
    let mut list: Vec<(String, String)> = tables
        .filter_map(|t| {
            Some((
                t["family"].as_str()?.to_string(),
                t["name"].as_str()?.to_string(),
            ))
        })
        .collect();
    list.sort();
    list
}

/// Host veths left after `within`, ignoring `except`. vbridge's DEL takes a port off the
/// bridge at once but deletes the link from a detached process (the kernel needs 10–20 ms
/// for it), so "no veth left" is a condition to wait for.
pub fn veths_after(ns: &Netns, except: &[&str], within: std::time::Duration) -> Vec<String> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let left: Vec<String> = links(ns)
            .into_iter()
            .filter(|l| l.kind() == Some("veth") && !except.contains(&l.ifname.as_str()))
            .map(|l| l.ifname)
            .collect();
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// vbridge removes a network's nftables state `firewallTeardownDelayMs` after its last
/// DEL (from a detached process); waits up to `within` for `table` to be gone.
pub fn nft_table_gone(ns: &Netns, table: &(String, String), within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if !nft_tables(ns).contains(table) {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Sets an IPv4/6 sysctl in the namespace (e.g. `net.ipv4.ip_forward`).
/// A sysctl's value in the namespace.
pub fn sysctl_value(ns: &Netns, key: &str) -> String {
    must_run_in(ns, &["sysctl", "-n", key])
        .stdout
        .trim()
        .to_string()
}

pub fn sysctl(ns: &Netns, key: &str, value: &str) {
    must_run_in(ns, &["sysctl", "-q", "-w", &format!("{key}={value}")]);
}

/// What a bad call must leave untouched: link names and nftables tables.
pub fn snapshot(ns: &Netns) -> (Vec<String>, Vec<(String, String)>) {
    (link_names(ns), nft_tables(ns))
}

/// nftables chains of a namespace as (family, table, chain).
pub fn nft_chains(ns: &Netns) -> Vec<(String, String, String)> {
    let out = must_run_in(ns, &["nft", "-j", "list", "chains"]);
    let v = out.json();
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    let mut list: Vec<(String, String, String)> = items
        .iter()
        .filter_map(|i| i.get("chain"))
        .filter_map(|c| {
            Some((
                c["family"].as_str()?.to_string(),
                c["table"].as_str()?.to_string(),
                c["name"].as_str()?.to_string(),
            ))
        })
        .collect();
    list.sort();
    list
}
