//! Bridge VLAN state as `bridge -j vlan show` and `ip -j -d link` report it, and a probe of
//! the running kernel's VLAN support.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::ip::{ip_json, must_run_in, run_in};
use crate::netns::Netns;

/// One VID of a bridge port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortVlan {
    pub vid: u16,
    /// The port's PVID: untagged ingress lands in this VLAN.
    pub pvid: bool,
    /// Egress untagged.
    pub untagged: bool,
}

/// The VIDs of `dev` (a bridge port, or the bridge itself), sorted; empty when it has none.
pub fn port_vlans(ns: &Netns, dev: &str) -> Vec<PortVlan> {
    port_vlans_all(ns).remove(dev).unwrap_or_default()
}

/// The VIDs of every port of every bridge in `ns`, by port name.
pub fn port_vlans_all(ns: &Netns) -> BTreeMap<String, Vec<PortVlan>> {
    let out = must_run_in(ns, &["bridge", "-j", "vlan", "show"]);
    if out.stdout.trim().is_empty() {
        return BTreeMap::new();
    }
    parse_vlan_show(&out.json())
}

/// Parses `bridge -j vlan show`: `[{"ifname": "p", "vlans": [{"vlan": 1, "vlanEnd": 3,
/// "flags": ["PVID", "Egress Untagged"]}]}]` (ranges only with `-c`; both are accepted).
pub fn parse_vlan_show(v: &Value) -> BTreeMap<String, Vec<PortVlan>> {
    let mut map: BTreeMap<String, Vec<PortVlan>> = BTreeMap::new();
    for port in v.as_array().into_iter().flatten() {
        let Some(name) = port["ifname"].as_str() else {
            continue;
        };
        let entry = map.entry(name.to_string()).or_default();
        for vl in port["vlans"].as_array().into_iter().flatten() {
            let Some(lo) = vl["vlan"].as_u64() else {
                continue;
            };
            let hi = vl["vlanEnd"].as_u64().unwrap_or(lo);
            let flags: Vec<&str> = vl["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for vid in lo..=hi {
                entry.push(PortVlan {
                    vid: u16::try_from(vid).unwrap_or(u16::MAX),
                    pvid: flags.contains(&"PVID"),
                    untagged: flags.contains(&"Egress Untagged"),
                });
            }
        }
        entry.sort_by_key(|p| p.vid);
    }
    map
}

/// Just the VIDs of `dev`.
pub fn vids(ns: &Netns, dev: &str) -> Vec<u16> {
    port_vlans(ns, dev).iter().map(|p| p.vid).collect()
}

/// `Some(true/false)` for a bridge's `vlan_filtering`; `None` when `dev` is missing or no bridge.
pub fn vlan_filtering(ns: &Netns, dev: &str) -> Option<bool> {
    let v = ip_json(ns, &["-d", "link", "show"]);
    let link = v
        .as_array()?
        .iter()
        .find(|l| l["ifname"].as_str() == Some(dev))?;
    let data = &link["linkinfo"]["info_data"];
    if link["linkinfo"]["info_kind"].as_str() != Some("bridge") {
        return None;
    }
    Some(data["vlan_filtering"].as_u64().unwrap_or(0) == 1)
}

/// What the running kernel offers for VLANs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelVlan {
    /// `ip link add ... type bridge vlan_filtering 1` works (CONFIG_BRIDGE_VLAN_FILTERING).
    pub filtering: bool,
    /// `ip link add link X ... type vlan id N` works (CONFIG_VLAN_8021Q).
    pub dot1q: bool,
}

impl KernelVlan {
    /// Both: what the VLAN suite needs.
    pub fn complete(&self) -> bool {
        self.filtering && self.dot1q
    }
}

/// Probes the running kernel in a throwaway netns, as `scripts/kernel-has-vlan` does: a
/// bridge created with `vlan_filtering 1` that reads back as filtering, and an 802.1Q
/// sub-interface of a veth (dummy links may be missing).
pub fn kernel_vlan() -> KernelVlan {
    let ns = Netns::new();
    let ok = |cmd: &[&str]| run_in(&ns, cmd).success();
    let filtering = ok(&[
        "ip",
        "link",
        "add",
        "vbtprobe0",
        "type",
        "bridge",
        "vlan_filtering",
        "1",
    ]) && vlan_filtering(&ns, "vbtprobe0") == Some(true);
    let dot1q = ok(&[
        "ip",
        "link",
        "add",
        "vbtprobe1",
        "type",
        "veth",
        "peer",
        "name",
        "vbtprobe2",
    ]) && ok(&[
        "ip",
        "link",
        "add",
        "link",
        "vbtprobe1",
        "name",
        "vbtprobe1.7",
        "type",
        "vlan",
        "id",
        "7",
    ]);
    KernelVlan { filtering, dot1q }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_single_vids_and_ranges() {
        let v = json!([
            {"ifname": "br0", "vlans": [{"vlan": 1, "flags": ["PVID", "Egress Untagged"]}]},
            {"ifname": "p1", "vlans": [
                {"vlan": 100, "flags": ["PVID", "Egress Untagged"]},
                {"vlan": 200, "vlanEnd": 202}
            ]},
            {"ifname": "p2"}
        ]);
        let m = parse_vlan_show(&v);
        assert_eq!(
            m["br0"],
            [PortVlan {
                vid: 1,
                pvid: true,
                untagged: true
            }]
        );
        let vids: Vec<u16> = m["p1"].iter().map(|p| p.vid).collect();
        assert_eq!(vids, [100, 200, 201, 202]);
        assert!(m["p1"][0].pvid && m["p1"][0].untagged);
        assert!(!m["p1"][1].pvid && !m["p1"][1].untagged);
        assert!(m["p2"].is_empty());
    }
}
