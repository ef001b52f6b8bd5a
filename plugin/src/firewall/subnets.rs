//! Subnet lists as the interval sets need them (pure, unit tested).
//!
//! Two prefixes either nest or are disjoint, and nft refuses an element that overlaps
//! one of the set's or of the same command, so every list that becomes set elements
//! must hold no subnet inside another. A network meets nested subnets when its subnet
//! is resized while pods of the old size still run.

use ipnetwork::IpNetwork;

/// `net` without host bits; `None` if it cannot be expressed (never for a valid prefix).
fn normalized(net: &IpNetwork) -> Option<IpNetwork> {
    IpNetwork::new(net.network(), net.prefix()).ok()
}

/// Whether `outer` contains `inner` (equal included); false across families.
fn contains(outer: &IpNetwork, inner: &IpNetwork) -> bool {
    outer.prefix() <= inner.prefix() && outer.contains(inner.network())
}

/// Whether every subnet of `want` lies inside one of `have`.
pub(crate) fn covers(have: &[IpNetwork], want: &[IpNetwork]) -> bool {
    want.iter().all(|w| have.iter().any(|h| contains(h, w)))
}

fn distinct(nets: &[IpNetwork]) -> Vec<IpNetwork> {
    let mut out: Vec<IpNetwork> = Vec::with_capacity(nets.len());
    for n in nets.iter().filter_map(normalized) {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The outermost subnets: what the rules and set elements must cover. Order is kept,
/// so the same input always yields the same rule order (CHECK compares it).
pub(crate) fn collapse(nets: &[IpNetwork]) -> Vec<IpNetwork> {
    let all = distinct(nets);
    let outer = |n: &IpNetwork| !all.iter().any(|o| o != n && contains(o, n));
    all.iter().copied().filter(outer).collect()
}

/// Subnets from their text, for the firewall's tests.
#[cfg(test)]
pub(super) fn nets(list: &[&str]) -> Vec<IpNetwork> {
    list.iter()
        .map(|s| s.parse().expect("test subnet"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_drops_contained_subnets_and_keeps_order() {
        let got = collapse(&nets(&[
            "10.2.0.0/24",
            "10.1.0.0/24",
            "10.1.0.7/23",
            "fd00::/64",
            "fd00::/48",
            "10.2.0.0/24",
        ]));
        assert_eq!(got, nets(&["10.2.0.0/24", "10.1.0.0/23", "fd00::/48"]));
    }

    #[test]
    fn disjoint_and_cross_family_subnets_stay() {
        let list = nets(&["10.1.0.0/24", "10.1.1.0/24", "::/0", "192.168.0.0/16"]);
        assert_eq!(collapse(&list), list);
    }

    #[test]
    fn covers_by_containment() {
        let have = nets(&["10.1.0.0/23", "fd00::/64"]);
        assert!(covers(&have, &nets(&["10.1.1.0/24", "fd00::/64"])));
        assert!(!covers(&have, &nets(&["10.1.0.0/22"])));
        assert!(!covers(&have, &nets(&["10.2.0.0/24"])));
        assert!(covers(&have, &[]));
    }
}
