//! `macspoofchk`: frames from a container's host port must carry the container's MAC.
//!
//! The reference plugin execs `nft` twice per ADD for this (two chains and four rules per
//! container in a `bridge nat` table). vbridge uses the bridge's own port lock instead
//! (`IFLA_BRPORT_LOCKED`, Linux 5.18), in three parts set by netlink:
//! - the port is *locked*: the bridge forwards a frame from it only if the frame's source
//!   MAC has an FDB entry pointing at this very port;
//! - the port does not *learn*: a locked port still learns from link-local frames
//!   (01:80:c2:00:00:0X), so one such frame with a forged source would open the lock for
//!   that MAC — and move another container's entry to this port;
//! - the container's MAC gets a *static, sticky* entry: static never ages out, sticky is
//!   never moved by learning on another port (an uplink or an unchecked network sharing
//!   the bridge would otherwise take it over, cutting the container off for good).
//!
//! Removing the port from the bridge (DEL) flushes its entries.

use crate::error::{Error, Result};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoBridgePort, InfoPortData, LinkInfo, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkBridgePort, LinkMessageBuilder};

/// The port options of a spoof-checked port, for the caller's one port-options message.
pub fn lock(port: LinkMessageBuilder<LinkBridgePort>) -> LinkMessageBuilder<LinkBridgePort> {
    port.locked(true).learning(false)
}

/// Lets `mac` through port `port` (already locked, see `lock`). Added after the port's
/// VLANs: an entry added without a VID is installed for VID 0 and for every VLAN the
/// port has, so it holds whether or not the bridge filters VLANs now or later.
pub async fn allow(h: &Handle, port: u32, port_name: &str, mac: &[u8]) -> Result<()> {
    let l = crate::netlink::link_by_index(h, port)
        .await?
        .ok_or_else(|| Error::Check(format!("host veth {port_name} vanished during the ADD")))?;
    // A kernel without port locking ignores the flag: refuse rather than run unchecked.
    if !port_flag(&l, |o| matches!(o, InfoBridgePort::Locked(true))) {
        return Err(Error::KernelFeature(format!(
            "\"macspoofchk\": the running kernel did not lock bridge port {port_name} \
             (bridge port locking needs Linux 5.18 or later)"
        )));
    }
    h.neighbours()
        .add_bridge(port, mac)
        // NUD_NOARP is "static"; NUD_PERMANENT would make it a local entry, which a
        // locked port refuses as a source.
        .state(NeighbourState::Noarp)
        .flags(NeighbourFlags::Controller | NeighbourFlags::Sticky)
        .replace()
        .execute()
        .await
        .map_err(|e| {
            Error::netlink(
                format!("\"macspoofchk\": failed to add the container MAC to port {port_name}"),
                e,
            )
        })
}

/// Whether one of the port's bridge-port options (from its link message) satisfies `is`.
fn port_flag(l: &LinkMessage, is: impl Fn(&InfoBridgePort) -> bool) -> bool {
    crate::netlink::link_infos(l).any(|i| match i {
        LinkInfo::PortData(InfoPortData::BridgePort(opts)) => opts.iter().any(&is),
        _ => false,
    })
}

/// CHECK: the port is locked and does not learn, and `mac` has a static, sticky entry on
/// it for VID 0 and for each of `vids` (the port's VLANs).
pub async fn check(
    h: &Handle,
    port: &LinkMessage,
    port_name: &str,
    mac: &[u8],
    vids: &[u16],
) -> Result<()> {
    let fail = |what: String| Err(Error::Check(format!("\"macspoofchk\": {what}")));
    if !port_flag(port, |o| matches!(o, InfoBridgePort::Locked(true))) {
        return fail(format!("host veth {port_name} is not a locked bridge port"));
    }
    if !port_flag(port, |o| matches!(o, InfoBridgePort::Learning(false))) {
        return fail(format!("bridge port {port_name} learns source MACs"));
    }
    let entries: Vec<NeighbourMessage> = h
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink("failed to list the bridge FDB", e))?;
    let pinned: Vec<u16> = entries
        .iter()
        .filter(|n| {
            n.header.ifindex == port.header.index
                && n.header.state == NeighbourState::Noarp
                && n.header.flags.contains(NeighbourFlags::Sticky)
                && n.attributes.iter().any(
                    |a| matches!(a, NeighbourAttribute::LinkLayerAddress(m) if m.as_slice() == mac),
                )
        })
        .map(|n| {
            n.attributes
                .iter()
                .find_map(|a| match a {
                    NeighbourAttribute::Vlan(v) => Some(*v),
                    _ => None,
                })
                .unwrap_or(0)
        })
        .collect();
    match std::iter::once(0)
        .chain(vids.iter().copied())
        .find(|v| !pinned.contains(v))
    {
        None => Ok(()),
        Some(vid) => fail(format!(
            "port {port_name} has no static sticky FDB entry for the container MAC {} (VID {vid})",
            crate::netlink::format_mac(mac)
        )),
    }
}
