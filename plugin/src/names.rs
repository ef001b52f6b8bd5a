//! Deterministic names, so DEL and GC find what ADD made without the container netns.

use conf::hash::fnv1a;

/// Host end of the veth of (network, container, ifname): `vb` + 12 hex digits (14 bytes,
/// within IFNAMSIZ). 48 bits make a collision on one host vanishingly unlikely, and ADD
/// reports one as "interface exists" rather than sharing the link.
pub fn host_veth(network: &str, container_id: &str, ifname: &str) -> String {
    format!(
        "vb{:012x}",
        fnv1a(&[network, container_id, ifname]) & 0xffff_ffff_ffff
    )
}

/// Whether `name` has the shape of a `host_veth` name (`vb` + 12 hex digits).
pub fn is_host_veth(name: &str) -> bool {
    name.len() == 14
        && name.starts_with("vb")
        && name[2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The link group ADD puts host veths of `network` in. It is set in the creating request
/// (an alias would not be: the kernel ignores IFLA_IFALIAS there), so GC can tell this
/// network's ports from other networks' on a shared bridge even when a killed ADD wrote
/// no record. Never 0, the kernel's default group.
pub fn link_group(network: &str) -> u32 {
    let h = fnv1a(&["vbridge-group", network]);
    ((h as u32) ^ ((h >> 32) as u32)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_short() {
        let a = host_veth("net", "ctr", "eth0");
        // Pinned: DEL and GC of pods made by earlier builds find their veths by it.
        assert_eq!(a, "vb507e6182c4bc");
        assert_eq!(a.len(), 14);
        assert_ne!(a, host_veth("net", "ctr", "eth1"));
        assert_ne!(a, host_veth("net2", "ctr", "eth0"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(host_veth("n", "ab", "c"), host_veth("n", "a", "bc"));
        assert!(is_host_veth(&a));
        let (gw, port) = vlan_gateway("cni0", 100, "net");
        for other in ["eth0", "vbABCDEF012345", "vb0123456789a", &gw, &port] {
            assert!(!is_host_veth(other), "{other}");
        }
    }

    #[test]
    fn groups() {
        assert_ne!(link_group("a"), 0);
        assert_eq!(link_group("net-1"), link_group("net-1"));
        assert_ne!(link_group("net-1"), link_group("net-2"));
    }
}

/// The host-side veth pair that carries a VLAN network's gateway address:
/// (`vbg…`, the L3 end holding the address; `vbp…`, its bridge port, an access port of
/// the VID). `g`/`p` are not hex digits, so these never collide with `host_veth` names.
/// One pair per network, not per (bridge, VID): two networks on one VLAN of one bridge
/// would otherwise share it under separate locks, and the last DEL of either would take
/// the other's gateway away.
pub fn vlan_gateway(bridge: &str, vid: u16, network: &str) -> (String, String) {
    let h = fnv1a(&[bridge, &vid.to_string(), network]) & 0xfff_ffff_ffff;
    (format!("vbg{h:011x}"), format!("vbp{h:011x}"))
}

#[cfg(test)]
mod vlan_tests {
    use super::*;

    #[test]
    fn vlan_gateway_names() {
        let (g, p) = vlan_gateway("cni0", 100, "net");
        assert_eq!((g.len(), p.len()), (14, 14));
        assert_ne!(
            vlan_gateway("cni0", 100, "net"),
            vlan_gateway("cni0", 200, "net")
        );
        assert_ne!(
            vlan_gateway("cni0", 100, "net"),
            vlan_gateway("cni1", 100, "net")
        );
        assert_ne!(
            vlan_gateway("cni0", 100, "net"),
            vlan_gateway("cni0", 100, "net2")
        );
    }
}
