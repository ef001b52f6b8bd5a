//! `macspoofchk`: frames from a container's host port must carry the container's MAC.
//!
//! The reference plugin execs `nft` twice per ADD for this (two chains and four rules per
//! container in a `bridge nat` table). vbridge uses the bridge's own port lock instead
//! (`IFLA_BRPORT_LOCKED`, Linux 5.18): a locked port forwards only frames whose source
//! MAC has an FDB entry pointing at that very port, and the container's MAC gets a static
//! one. One flag and one FDB entry per ADD, both netlink; removing the port from the
//! bridge (DEL) flushes the entry.

use crate::error::{Error, Result};
use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoBridgePort, InfoPortData, LinkInfo, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::Handle;

/// Lets `mac` through port `port` (locked by the caller together with its other port
/// options). Added after the port's VLANs: an entry added without a VID is installed for
/// VID 0 and for every VLAN the port has, so it holds whether or not the bridge filters
/// VLANs now or later.
pub async fn allow(h: &Handle, port: u32, port_name: &str, mac: &[u8]) -> Result<()> {
    let l = crate::netlink::link_by_index(h, port)
        .await?
        .ok_or_else(|| Error::Check(format!("host veth {port_name} vanished during the ADD")))?;
    // A kernel without port locking ignores the flag: refuse rather than run unchecked.
    if !is_locked(&l) {
        return Err(Error::KernelFeature(format!(
            "\"macspoofchk\": the running kernel did not lock bridge port {port_name} \
             (bridge port locking needs Linux 5.18 or later)"
        )));
    }
    h.neighbours()
        .add_bridge(port, mac)
        // Static (NUD_NOARP): never ages out. NUD_PERMANENT would make it a local
        // entry, which a locked port refuses as a source.
        .state(NeighbourState::Noarp)
        .flags(NeighbourFlags::Controller)
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

/// The port's `locked` flag, from the bridge-port data of its link message.
pub fn is_locked(l: &LinkMessage) -> bool {
    crate::netlink::link_infos(l).any(|i| match i {
        LinkInfo::PortData(InfoPortData::BridgePort(opts)) => opts
            .iter()
            .any(|o| matches!(o, InfoBridgePort::Locked(true))),
        _ => false,
    })
}

/// CHECK: the port is locked and `mac` has a static entry on it.
pub async fn check(h: &Handle, port: &LinkMessage, port_name: &str, mac: &[u8]) -> Result<()> {
    if !is_locked(port) {
        return Err(Error::Check(format!(
            "\"macspoofchk\": host veth {port_name} is not a locked bridge port"
        )));
    }
    let entries: Vec<NeighbourMessage> = h
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink("failed to list the bridge FDB", e))?;
    let allowed = entries.iter().any(|n| {
        n.header.ifindex == port.header.index
            && n.header.state == NeighbourState::Noarp
            && n.attributes.iter().any(
                |a| matches!(a, NeighbourAttribute::LinkLayerAddress(m) if m.as_slice() == mac),
            )
    });
    if allowed {
        Ok(())
    } else {
        Err(Error::Check(format!(
            "\"macspoofchk\": port {port_name} has no static FDB entry for the container MAC {}",
            crate::netlink::format_mac(mac)
        )))
    }
}
