//! The bridge: created when missing, adopted when present, MAC pinned, VLAN filtering
//! switched on whenever the config uses VLANs.

use crate::error::{errno, Error, Result, EEXIST, EOPNOTSUPP};
use crate::netlink::{is_up, link_by_name, link_controller, link_kind, mac_string, set_up};
use rtnetlink::packet_route::link::{
    InfoBridge, InfoData, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkBridge, LinkMessageBuilder, LinkUnspec};

pub struct BridgeSpec<'a> {
    pub name: &'a str,
    pub mtu: Option<u32>,
    pub vlan_filtering: bool,
    pub promisc: bool,
    /// Gateway mode without a VLAN: the network's gateway (if it has addresses) goes on
    /// the bridge, vbridge owns its L3.
    pub gateway: bool,
}

pub const VLAN_FILTERING_MISSING: &str = "the running kernel has no bridge VLAN filtering \
(CONFIG_BRIDGE_VLAN_FILTERING); use a kernel that has it or remove \"vlan\"/\"vlanTrunk\" from the config";

/// Returns the bridge link, creating or adopting it. A bridge vbridge created, or one
/// that carries a network's gateway, takes no router advertisements (see
/// `sysctl::refuse_router_advertisements`); an adopted L2 bridge keeps the host's
/// setting, as it may carry the host's own uplink configured by them.
pub async fn ensure(h: &Handle, s: &BridgeSpec<'_>) -> Result<LinkMessage> {
    let mut created = false;
    let l = match link_by_name(h, s.name).await? {
        Some(l) => adopt(h, s, l).await?,
        None => {
            created = create(h, s).await?;
            let l = link_by_name(h, s.name).await?.ok_or_else(|| {
                Error::Check(format!("bridge {} vanished right after creation", s.name))
            })?;
            if created {
                let mac = pin_mac(h, &l).await?;
                mark_pinned(l.header.index, &mac);
                l
            } else {
                // Another first ADD created it in between: what it made may lack what
                // this config needs (VLAN filtering, promiscuity).
                adopt(h, s, l).await?
            }
        }
    };
    if created || s.gateway {
        crate::sysctl::refuse_router_advertisements(s.name);
    }
    Ok(l)
}

/// `false` when another process created it first.
async fn create(h: &Handle, s: &BridgeSpec<'_>) -> Result<bool> {
    let mut b = LinkBridge::new(s.name);
    if let Some(m) = s.mtu {
        b = b.mtu(m);
    }
    if s.vlan_filtering {
        b = b.vlan_filtering(true);
    }
    if s.promisc {
        b = b.promiscuous(true);
    }
    match h.link().add(b.build()).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(EEXIST) => Ok(false),
        Err(e) if errno(&e) == Some(EOPNOTSUPP) && s.vlan_filtering => {
            Err(Error::KernelFeature(format!(
                "failed to create bridge {}: {VLAN_FILTERING_MISSING}",
                s.name
            )))
        }
        Err(e) => Err(Error::netlink(
            format!("failed to create bridge {}", s.name),
            e,
        )),
    }
}

async fn adopt(h: &Handle, s: &BridgeSpec<'_>, l: LinkMessage) -> Result<LinkMessage> {
    if link_kind(&l) != Some(&InfoKind::Bridge) {
        return Err(Error::WrongLinkKind(format!(
            "link {:?} exists but is not a bridge; set \"bridge\" to another name or remove that link",
            s.name
        )));
    }
    if s.vlan_filtering && !vlan_filtering(&l) {
        enable_vlan_filtering(h, s.name).await?;
    }
    // As the reference, also on a bridge someone else made.
    if s.promisc && !l.header.flags.contains(LinkFlags::Promisc) {
        let msg = LinkUnspec::new_with_index(l.header.index)
            .promiscuous(true)
            .build();
        h.link().change(msg).execute().await.map_err(|e| {
            Error::netlink(format!("failed to make bridge {} promiscuous", s.name), e)
        })?;
    }
    // A bridge whose MAC nobody set takes its lowest port's, so the gateway's MAC would
    // change as pods come and go. The reference pins it on every gateway ADD (each time
    // flushing the bridge's neighbour entries); here once per bridge and boot, noted in
    // /run. (An unpinned bridge whose last port left has no address at all.)
    if s.gateway && !pinned(&l) {
        let mac = pin_mac(h, &l).await?;
        mark_pinned(l.header.index, &mac);
    }
    if !is_up(&l) {
        set_up(h, l.header.index).await?;
    }
    Ok(l)
}

const ZERO_MAC: &str = "00:00:00:00:00:00";

/// `/run/vbridge/pinned-<netns inode>/<ifindex>`, a symlink whose target is
/// `<boot id>,<MAC>`: this boot pinned that bridge to that MAC (a pinned bridge keeps its
/// address, so once is enough). A note of a namespace or bridge that is gone — inodes and
/// indexes are reused — names another boot or MAC. The tests' and demo's throwaway
/// namespaces take their directory with them.
fn pin_marker(index: u32) -> Option<std::path::PathBuf> {
    Some(format!("/run/vbridge/pinned-{}/{index}", netns_inode()?).into())
}

fn netns_inode() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino())
}

fn pin_note(mac: &str) -> String {
    format!("{},{mac}", ipam::store::boot_id().unwrap_or_default())
}

fn pinned(l: &LinkMessage) -> bool {
    let mac = mac_string(l);
    mac != ZERO_MAC
        && pin_marker(l.header.index)
            .and_then(|p| std::fs::read_link(p).ok())
            .is_some_and(|t| t.as_os_str() == pin_note(&mac).as_str())
}

/// Best effort, but said: without the note every gateway ADD pins again, flushing the
/// bridge's neighbour entries each time.
fn mark_pinned(index: u32, mac: &str) {
    let Some(p) = pin_marker(index) else { return };
    let tmp = p.with_extension(std::process::id().to_string());
    let made = p
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::os::unix::fs::symlink(pin_note(mac), &tmp))
        .and_then(|()| std::fs::rename(&tmp, &p));
    if let Err(e) = made {
        let _ignored = std::fs::remove_file(&tmp);
        log::warn!("cannot note the pinned bridge in {}: {e}", p.display());
    }
}

pub fn vlan_filtering(l: &LinkMessage) -> bool {
    crate::netlink::link_infos(l).any(|i| match i {
        LinkInfo::Data(InfoData::Bridge(opts)) => opts
            .iter()
            .any(|o| matches!(o, InfoBridge::VlanFiltering(true))),
        _ => false,
    })
}

/// Unlike the reference plugin, an adopted bridge gets VLAN filtering too: without it a
/// `vlan` config would silently give an unfiltered port.
async fn enable_vlan_filtering(h: &Handle, name: &str) -> Result<()> {
    let msg = LinkMessageBuilder::<LinkBridge>::new(name)
        .vlan_filtering(true)
        .build();
    match h.link().change(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(EOPNOTSUPP) => Err(Error::KernelFeature(format!(
            "failed to enable VLAN filtering on bridge {name}: {VLAN_FILTERING_MISSING}"
        ))),
        Err(e) => Err(Error::netlink(
            format!("failed to enable VLAN filtering on bridge {name}"),
            e,
        )),
    }
}

/// A bridge takes the lowest MAC of its ports unless its address was set explicitly;
/// pinning it avoids the gateway MAC changing as containers come and go.
/// Returns the MAC pinned.
async fn pin_mac(h: &Handle, l: &LinkMessage) -> Result<String> {
    let mut mac = crate::netlink::parse_mac(&mac_string(l))?;
    if mac_string(l) == ZERO_MAC {
        // An unpinned bridge whose last port left has no address at all: give it one,
        // the same for every ADD racing here (this boot, netns and bridge).
        mac = derived_mac(l);
    }
    let pinned = crate::netlink::format_mac(&mac);
    h.link()
        .change(
            LinkUnspec::new_with_index(l.header.index)
                .address(mac)
                .build(),
        )
        .execute()
        .await
        .map_err(|e| Error::netlink("failed to pin the bridge MAC address", e))?;
    Ok(pinned)
}

/// A locally administered unicast MAC derived from the bridge's name and index, the boot
/// and the netns: what concurrent ADDs agree on without talking to each other.
fn derived_mac(l: &LinkMessage) -> Vec<u8> {
    let name = crate::netlink::link_name(l);
    let index = l.header.index.to_string();
    let boot = ipam::store::boot_id().unwrap_or_default();
    let ns = netns_inode().unwrap_or_default().to_string();
    let h = conf::hash::fnv1a(&[name, &index, boot, &ns]).to_be_bytes();
    let mut mac = h[2..8].to_vec();
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// What a bridge port's VLANs should be.
#[derive(Clone, Copy)]
pub struct PortVlans<'a> {
    /// Access VID: PVID, egress untagged.
    pub vlan: Option<u16>,
    /// Tagged VIDs.
    pub trunk: &'a [u16],
    /// The bridge's `vlan_default_pvid` (0: none), which the kernel makes every new
    /// port's untagged PVID: the "default VLAN" that `preserveDefaultVlan` keeps.
    pub default_pvid: u16,
    pub preserve_default: bool,
}

impl PortVlans<'_> {
    fn any(&self) -> bool {
        self.vlan.is_some() || !self.trunk.is_empty()
    }

    /// The bridge's default VLAN, when this port should not carry it.
    fn default_to_remove(&self) -> Option<u16> {
        let d = self.default_pvid;
        (d != 0 && !self.preserve_default && self.vlan != Some(d) && !self.trunk.contains(&d))
            .then_some(d)
    }

    /// Whether the port may keep the bridge's default VLAN as its PVID: a trunk-only port
    /// that preserves it (as the kernel gave it).
    fn default_pvid_kept(&self) -> bool {
        let d = self.default_pvid;
        d != 0 && self.vlan.is_none() && self.preserve_default && !self.trunk.contains(&d)
    }
}

/// The bridge's `vlan_default_pvid` as read when `br` was looked up (the kernel's default,
/// 1, when the attribute is absent).
pub fn default_pvid(br: &LinkMessage) -> u16 {
    crate::netlink::link_infos(br)
        .find_map(|i| match i {
            LinkInfo::Data(InfoData::Bridge(opts)) => opts.iter().find_map(|o| match o {
                InfoBridge::VlanDefaultPvid(v) => Some(*v),
                _ => None,
            }),
            _ => None,
        })
        .unwrap_or(1)
}

/// Makes `port` an access port and/or a trunk as `want` says, removing the bridge's
/// default VLAN unless it is to be preserved (as the reference's `removeDefaultVlan`
/// does; the default PVID is not always 1, e.g. systemd-networkd's `DefaultPVID=`).
pub async fn configure_port_vlans(h: &Handle, port: u32, want: &PortVlans<'_>) -> Result<()> {
    use rtnetlink::packet_route::link::BridgeVlanInfoFlags as F;
    use rtnetlink::LinkBridgeVlan;
    if !want.any() {
        return Ok(());
    }
    // A kernel without VLAN filtering was already reported (105) when the bridge was
    // created or adopted; here EOPNOTSUPP means something else (e.g. not a bridge port).
    let fail = |what: String, e: rtnetlink::Error| Error::netlink(format!("failed to {what}"), e);
    if let Some(d) = want.default_to_remove() {
        let msg = LinkBridgeVlan::new(port).vlan(d, F::empty()).build();
        if let Err(e) = h.link().del_with_message(msg).execute().await {
            // ENOENT: someone removed it already.
            if errno(&e) != Some(crate::error::ENOENT) {
                return Err(fail(format!("remove VLAN {d} from port #{port}"), e));
            }
        }
    }
    let mut msg = LinkBridgeVlan::new(port);
    for (lo, hi) in vid_ranges(want.trunk) {
        msg = if lo == hi {
            msg.vlan(lo, F::empty())
        } else {
            msg.vlan_range_start(lo, F::empty())
                .vlan_range_end(hi, F::empty())
        };
    }
    if let Some(v) = want.vlan {
        msg = msg.vlan(v, F::Pvid | F::Untagged);
    }
    h.link()
        .set(msg.build())
        .execute()
        .await
        .map_err(|e| fail(format!("set VLANs on port #{port}"), e))
}

/// Collapses sorted VIDs into inclusive ranges.
pub fn vid_ranges(vids: &[u16]) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for &v in vids {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(v) => *hi = v,
            _ => out.push((v, v)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(vid_ranges(&[]), vec![]);
        assert_eq!(vid_ranges(&[5]), vec![(5, 5)]);
        assert_eq!(
            vid_ranges(&[1, 2, 3, 7, 9, 10]),
            vec![(1, 3), (7, 7), (9, 10)]
        );
    }
}

/// The interface that holds a VLAN network's gateway address: one end of a host veth
/// pair whose other end is an access port of `vid` on the bridge. Every VLAN network so
/// gets its own L3 gateway, reachable only from its VLAN. Returns the gateway end's index;
/// concurrent first ADDs may race here, which is fine.
pub async fn ensure_vlan_gateway(
    h: &Handle,
    bridge: &LinkMessage,
    bridge_name: &str,
    vid: u16,
    network: &str,
    mtu: Option<u32>,
) -> Result<u32> {
    let (gw, port) = crate::names::vlan_gateway(bridge_name, vid, network);
    let links = ensure_vlan_gateway_port(h, bridge, bridge_name, vid, &gw, &port).await?;
    if let Some(m) = mtu {
        // Both ends, as the containers' veths: a gateway end wider than the ports drops
        // what it routes to them, silently.
        for l in &links {
            set_mtu(h, l, m).await?;
        }
    }
    crate::sysctl::refuse_router_advertisements(&gw);
    Ok(links[0].header.index)
}

/// Sets `l`'s MTU unless it has it already (as read when `l` was looked up).
async fn set_mtu(h: &Handle, l: &LinkMessage, mtu: u32) -> Result<()> {
    if l.attributes.contains(&LinkAttribute::Mtu(mtu)) {
        return Ok(());
    }
    let msg = LinkUnspec::new_with_index(l.header.index).mtu(mtu).build();
    h.link().change(msg).execute().await.map_err(|e| {
        Error::netlink(
            format!("failed to set the MTU of link #{} to {mtu}", l.header.index),
            e,
        )
    })
}

/// A VLAN gateway's port: an access port of `vid` only.
fn gateway_port(bridge: &LinkMessage, vid: u16) -> PortVlans<'static> {
    PortVlans {
        vlan: Some(vid),
        trunk: &[],
        default_pvid: default_pvid(bridge),
        preserve_default: false,
    }
}

/// The pair in place: (gateway end, bridge port), as looked up.
async fn ensure_vlan_gateway_port(
    h: &Handle,
    bridge: &LinkMessage,
    bridge_name: &str,
    vid: u16,
    gw: &str,
    port: &str,
) -> Result<[LinkMessage; 2]> {
    if let Some(l) = link_by_name(h, gw).await? {
        // A killed ADD (or a bridge re-created since) can leave the pair without its port
        // on the bridge, or the port without its VLAN: only a port in place counts, and
        // its VLAN is set again (idempotent; two messages, on VLAN gateway networks only).
        if let Some(p) = link_by_name(h, port).await? {
            if link_controller(&p) == Some(bridge.header.index) && is_up(&p) {
                configure_port_vlans(h, p.header.index, &gateway_port(bridge, vid)).await?;
                return Ok([l, p]);
            }
        }
    } else {
        create_vlan_gateway_pair(h, gw, port, vid).await?;
    }
    let port_link = link_by_name(h, port)
        .await?
        .ok_or_else(|| Error::Check(format!("VLAN gateway port {port} vanished after creation")))?;
    let attach = LinkUnspec::new_with_index(port_link.header.index)
        .controller(bridge.header.index)
        .up()
        .build();
    h.link().change(attach).execute().await.map_err(|e| {
        Error::netlink(
            format!("failed to attach VLAN gateway port {port} to {bridge_name}"),
            e,
        )
    })?;
    configure_port_vlans(h, port_link.header.index, &gateway_port(bridge, vid)).await?;
    let l = link_by_name(h, gw)
        .await?
        .ok_or_else(|| Error::Check(format!("VLAN gateway link {gw} vanished after creation")))?;
    Ok([l, port_link])
}

/// The pair, the gateway end up. The peer's flags and master are not applied at creation
/// (IFF_UP there even fails with ENOTCONN), so the caller attaches the port.
async fn create_vlan_gateway_pair(h: &Handle, gw: &str, port: &str, vid: u16) -> Result<()> {
    let peer = LinkUnspec::new_with_name(port).build();
    let msg = rtnetlink::LinkVeth::new(gw, port)
        .up()
        .set_info_data(InfoData::Veth(
            rtnetlink::packet_route::link::InfoVeth::Peer(peer),
        ))
        .build();
    match h.link().add(msg).execute().await {
        Ok(()) => Ok(()),
        // A concurrent first ADD of the network made it.
        Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
        Err(e) => Err(Error::netlink(
            format!("failed to create VLAN {vid} gateway link {gw}"),
            e,
        )),
    }
}

pub async fn delete_vlan_gateway(
    h: &Handle,
    bridge_name: &str,
    vid: u16,
    network: &str,
) -> Result<()> {
    let (gw, _) = crate::names::vlan_gateway(bridge_name, vid, network);
    crate::netlink::delete_link(h, &gw).await.map(|_| ())
}

/// The VLANs of bridge port `port`: (VID, is PVID, egress untagged).
pub async fn port_vlans(h: &Handle, port: u32) -> Result<Vec<(u16, bool, bool)>> {
    use futures_util::TryStreamExt;
    use rtnetlink::packet_route::link::{AfSpecBridge, BridgeVlanInfoFlags as F, LinkExtentMask};
    use rtnetlink::packet_route::AddressFamily;
    let links: Vec<LinkMessage> = h
        .link()
        .get()
        .set_filter_mask(AddressFamily::Bridge, vec![LinkExtentMask::Brvlan])
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink("failed to list bridge port VLANs", e))?;
    let mut out = Vec::new();
    for l in links.iter().filter(|l| l.header.index == port) {
        for a in &l.attributes {
            if let LinkAttribute::AfSpecBridge(specs) = a {
                for s in specs {
                    if let AfSpecBridge::VlanInfo(v) = s {
                        out.push((
                            v.vid,
                            v.flags.contains(F::Pvid),
                            v.flags.contains(F::Untagged),
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// What CHECK expects of a port's VLANs; returns the first difference.
pub fn vlan_mismatch(have: &[(u16, bool, bool)], want: &PortVlans<'_>) -> Option<String> {
    if !want.any() {
        return None;
    }
    let vlan = want.vlan;
    if let Some(v) = vlan {
        if !have.contains(&(v, true, true)) {
            return Some(format!(
                "VLAN {v} is not the untagged PVID of the port (has {have:?})"
            ));
        }
    }
    let kept = want.default_pvid_kept().then_some(want.default_pvid);
    if let Some((p, _, _)) = have
        .iter()
        .find(|(vid, pvid, _)| *pvid && Some(*vid) != vlan && Some(*vid) != kept)
    {
        return Some(format!("port PVID is {p}, expected {vlan:?}"));
    }
    for t in want.trunk {
        if !have.iter().any(|(vid, _, untagged)| vid == t && !untagged) {
            return Some(format!("trunk VLAN {t} is not a tagged member of the port"));
        }
    }
    if let Some(d) = want.default_to_remove() {
        if have.iter().any(|(vid, _, _)| *vid == d) {
            return Some(format!(
                "the bridge's default VLAN {d} is still on the port (preserveDefaultVlan is false)"
            ));
        }
    }
    None
}

#[cfg(test)]
mod vlan_check_tests {
    use super::{vlan_mismatch, PortVlans};

    fn want(vlan: Option<u16>, trunk: &[u16], default_pvid: u16, preserve: bool) -> PortVlans<'_> {
        PortVlans {
            vlan,
            trunk,
            default_pvid,
            preserve_default: preserve,
        }
    }

    #[test]
    fn access_port() {
        let w = want(Some(100), &[], 1, false);
        assert!(vlan_mismatch(&[(100, true, true)], &w).is_none());
        assert!(vlan_mismatch(&[(300, true, true), (100, false, true)], &w).is_some());
        assert!(vlan_mismatch(&[(100, true, true), (1, false, true)], &w).is_some());
        let kept = want(Some(100), &[], 1, true);
        assert!(vlan_mismatch(&[(100, true, true), (1, false, true)], &kept).is_none());
    }

    #[test]
    fn trunk_port() {
        let w = want(None, &[10, 20], 1, false);
        assert!(vlan_mismatch(&[(10, false, false), (20, false, false)], &w).is_none());
        assert!(vlan_mismatch(&[(10, false, false)], &w).is_some());
        assert!(vlan_mismatch(&[(10, false, true), (20, false, false)], &w).is_some());
        assert!(vlan_mismatch(&[], &want(None, &[], 1, false)).is_none());
    }

    /// A trunk-only port that preserves the default VLAN keeps it as its untagged PVID, as
    /// the kernel gave it; any other PVID is still wrong.
    #[test]
    fn trunk_port_preserving_the_default_vlan() {
        let w = want(None, &[10], 1, true);
        assert!(vlan_mismatch(&[(1, true, true), (10, false, false)], &w).is_none());
        assert!(vlan_mismatch(&[(10, false, false)], &w).is_none());
        assert!(vlan_mismatch(&[(5, true, true), (10, false, false)], &w).is_some());
        let removed = want(None, &[10], 1, false);
        assert!(vlan_mismatch(&[(1, true, true), (10, false, false)], &removed).is_some());
    }

    /// The bridge's default PVID need not be 1: that VID is the one that must go.
    #[test]
    fn default_vlan_other_than_1() {
        let w = want(Some(100), &[], 7, false);
        assert!(vlan_mismatch(&[(100, true, true), (7, false, true)], &w).is_some());
        assert!(vlan_mismatch(&[(100, true, true), (1, false, true)], &w).is_none());
        assert_eq!(w.default_to_remove(), Some(7));
        assert_eq!(want(Some(100), &[], 0, false).default_to_remove(), None);
        assert_eq!(want(Some(7), &[], 7, false).default_to_remove(), None);
        assert_eq!(want(None, &[7], 7, false).default_to_remove(), None);
    }
}
