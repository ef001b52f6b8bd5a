//! CHECK: compares the live state with `prevResult` — container interface (up), its
//! addresses and routes, the host veth (up) on the bridge, the gateway on the bridge,
//! VLAN filtering and membership (the comparison is `bridge`'s), the MAC spoof check, the
//! IPAM reservation, and the firewall when configured. Silent on success.

use super::{load, runtime, subnets_of};
use crate::error::{Error, Result};
use crate::firewall::{self, NetworkRules};
use crate::ipam_client::IpamClient;
use crate::netns::Netns;
use crate::state::NetState;
use crate::{names, netlink};
use conf::netconf::NetConf;
use conf::result::IpConfig;
use conf::skel::Request;
use conf::CniResult;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::link::InfoKind;
use rtnetlink::Handle;
use std::net::IpAddr;

pub fn check(req: &Request) -> Result<()> {
    let conf = load(req)?;
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        conf::Error::config("\"prevResult\" is missing: CHECK needs the result of the ADD")
    })?;
    let prev = CniResult::from_value(prev)?;
    let att = req.args.attachment();
    let own = own_ips(&prev, &req.args.ifname, &req.args.netns);
    let ours: Vec<IpNetwork> = own.iter().map(|ip| ip.address).collect();
    let gws: Vec<IpAddr> = own.iter().filter_map(|ip| ip.gateway).collect();
    let gateways: Vec<IpAddr> = (super::bridge_gateways(&gws, &ours).into_iter())
        .map(|(g, _)| g)
        .collect();
    let ns = Netns::open(&req.args.netns)?;
    runtime()?.block_on(async {
        let host = netlink::connect_host()?;
        let ctr = netlink::connect_in(&ns)?;
        let ctr_mac = check_container(
            &ctr,
            &req.args.ifname,
            &req.args.netns,
            !conf.disable_container_interface,
            &prev,
            &ours,
        )
        .await?;
        check_host(
            &host,
            &conf,
            &names::host_veth(&conf.name, &att.container_id, &att.ifname),
            &ctr_mac,
            &gateways,
        )
        .await
    })?;
    let ips: Vec<_> = ours.iter().map(|n| n.ip()).collect();
    IpamClient::new(&conf, req)?.check(&att, &ips)?;
    let st = NetState::lock(conf.state_dir(), &conf.name)?;
    if st.get(&att)?.is_none() {
        return Err(Error::Check(format!(
            "attachment {}/{} is not registered in {}",
            att.container_id,
            att.ifname,
            conf.state_dir()
        )));
    }
    check_firewall(&conf, &st, &ours)
}

/// The rules are the network's, built from every subnet it has attachments in (the
/// stamp's), so they are checked as a whole: built from this attachment's subnets
/// alone, the plan would count another range's rules as foreign. Ours are added so
/// that a subnet the rules do not cover is reported.
fn check_firewall(conf: &NetConf, st: &NetState, ours: &[IpNetwork]) -> Result<()> {
    if !(conf.ip_masq || conf.isolate) || ours.is_empty() {
        return Ok(());
    }
    // A corrupt stamp is not this attachment's problem; its own subnets still count.
    let mut subnets = (st.firewall().ok().flatten())
        .map(|s| s.subnets)
        .unwrap_or_default();
    subnets.extend(subnets_of(ours));
    firewall::check(&NetworkRules {
        network: &conf.name,
        subnets: &subnets,
        masquerade: conf.ip_masq,
        isolate: conf.isolate,
    })?;
    Ok(())
}

/// Our container interface's index in prevResult: the sandbox as the runtime spells it
/// now (it may name the netns by another path, /var/run/netns/x for /run/netns/x), else
/// any sandboxed interface of that name — a spelling must not make CHECK skip it, and a
/// host link of the same name (a bridge called like CNI_IFNAME) is not it.
fn own_interface(prev: &CniResult, ifname: &str, netns: &str) -> Option<usize> {
    (prev.interfaces.iter())
        .position(|i| i.name == ifname && i.sandbox == netns)
        .or_else(|| {
            (prev.interfaces.iter()).position(|i| i.name == ifname && !i.sandbox.is_empty())
        })
}

/// The entries of prevResult's `ips` that belong to our container interface.
fn own_ips<'a>(prev: &'a CniResult, ifname: &str, netns: &str) -> Vec<&'a IpConfig> {
    let idx = own_interface(prev, ifname, netns);
    prev.ips
        .iter()
        .filter(|ip| ip.interface.is_none() || ip.interface == idx)
        .collect()
}

/// `up`: whether the interface must be up (not with `disableContainerInterface`).
async fn check_container(
    ctr: &Handle,
    ifname: &str,
    netns: &str,
    up: bool,
    prev: &CniResult,
    ours: &[IpNetwork],
) -> Result<Vec<u8>> {
    let link = netlink::link_by_name(ctr, ifname)
        .await?
        .ok_or_else(|| Error::Check(format!("interface {ifname} is missing from the container")))?;
    if netlink::link_kind(&link) != Some(&InfoKind::Veth) {
        return Err(Error::Check(format!(
            "container interface {ifname} is not a veth"
        )));
    }
    // Down, its addresses and routes are still listed, but nothing flows.
    if up && !netlink::is_up(&link) {
        return Err(Error::Check(format!(
            "container interface {ifname} is down"
        )));
    }
    if let Some(want) = own_interface(prev, ifname, netns)
        .and_then(|i| prev.interfaces.get(i))
        .map(|i| i.mac.to_lowercase())
    {
        let have = netlink::mac_string(&link);
        if !want.is_empty() && want != have {
            return Err(Error::Check(format!(
                "{ifname} has MAC {have}, prevResult says {want}"
            )));
        }
    }
    let addrs = netlink::addresses(ctr, link.header.index).await?;
    for n in ours {
        if !addrs.contains(&(n.ip(), n.prefix())) {
            return Err(Error::Check(format!(
                "address {n} is missing from {ifname}"
            )));
        }
    }
    let mut tables = [None, None];
    for r in &prev.routes {
        let fam = usize::from(r.dst.is_ipv6());
        if tables[fam].is_none() {
            tables[fam] = Some(netlink::routes(ctr, r.dst.is_ipv6()).await?);
        }
        // A table or priority the result names must match; without one (or with 0, which
        // the kernel turns into main / its default metric) any table will do: a chained
        // plugin such as sbr may have moved the route to a table of its own.
        let table = r.table.filter(|t| *t != 0);
        let priority = r.priority.filter(|p| *p != 0);
        // ADD installs the destination's network (a config may keep host bits, as in
        // "10.96.0.1/12"); the kernel reports it so.
        let dst = (r.dst.network(), r.dst.prefix());
        // Our routes go through our interface (another network's route of the same key may
        // sit beside them); prevResult also carries earlier plugins' routes through other
        // interfaces, which are only looked up. A route to our own subnet is the kernel's
        // connected route (ADD keeps it, gateway or not).
        let own_subnet = ours.iter().any(|n| (n.network(), n.prefix()) == dst);
        let gw = r.next_hop();
        let via_ours = match gw {
            Some(g) => ours.iter().any(|n| n.contains(g)),
            None => ours.iter().any(|n| n.is_ipv4() == r.dst.is_ipv4()),
        };
        let through_ours = own_subnet || via_ours;
        let found = tables[fam].iter().flatten().any(|l| {
            (l.dst.network(), l.dst.prefix()) == dst
                && (!through_ours || l.oif == Some(link.header.index))
                && (gw.is_none() || l.gw == gw || (own_subnet && l.gw.is_none()))
                && table.is_none_or(|t| l.table == t)
                && priority.is_none_or(|p| l.priority == Some(p))
        });
        if !found {
            let via = gw.map_or("on-link".to_string(), |g| format!("via {g}"));
            let table = table.map_or(String::new(), |t| format!(", table {t}"));
            let priority = priority.map_or(String::new(), |p| format!(", metric {p}"));
            return Err(Error::Check(format!(
                "route to {} {via}{table}{priority} is missing from {ifname}",
                r.dst
            )));
        }
    }
    netlink::parse_mac(&netlink::mac_string(&link))
}

/// `ctr_mac`: the container interface's, which a spoof-checked port must let through;
/// `gateways`: the container's, which gateway mode puts on the bridge.
async fn check_host(
    host: &Handle,
    conf: &NetConf,
    veth: &str,
    ctr_mac: &[u8],
    gateways: &[IpAddr],
) -> Result<()> {
    let br_name = conf.bridge_name();
    let br = netlink::link_by_name(host, br_name)
        .await?
        .ok_or_else(|| Error::Check(format!("bridge {br_name} is missing")))?;
    if netlink::link_kind(&br) != Some(&InfoKind::Bridge) {
        return Err(Error::Check(format!("{br_name} is not a bridge")));
    }
    let l = netlink::link_by_name(host, veth)
        .await?
        .ok_or_else(|| Error::Check(format!("host veth {veth} is missing")))?;
    if netlink::link_controller(&l) != Some(br.header.index) {
        return Err(Error::Check(format!(
            "host veth {veth} is not attached to bridge {br_name}"
        )));
    }
    if !netlink::is_up(&l) {
        return Err(Error::Check(format!("host veth {veth} is down")));
    }
    let vlan = conf
        .vlan
        .filter(|v| *v != 0)
        .and_then(|v| u16::try_from(v).ok());
    // Without a VLAN the gateway is the bridge's own address (with one, on the VLAN's
    // link, which CHECK leaves to the network).
    if conf.gateway_mode() && vlan.is_none() && !gateways.is_empty() {
        let have = netlink::addresses(host, br.header.index).await?;
        if let Some(g) = gateways.iter().find(|g| !have.iter().any(|(a, _)| a == *g)) {
            return Err(Error::Check(format!(
                "gateway {g} is missing from bridge {br_name}"
            )));
        }
    }
    let trunk = conf.trunk_vids()?;
    if vlan.is_some() || !trunk.is_empty() {
        // Off, the port's VLANs are kept but no longer separate anything.
        if !crate::bridge::vlan_filtering(&br) {
            return Err(Error::Check(format!(
                "bridge {br_name} has VLAN filtering off"
            )));
        }
        let have = crate::bridge::port_vlans(host, l.header.index).await?;
        let want = crate::bridge::PortVlans {
            vlan,
            trunk: &trunk,
            default_pvid: crate::bridge::default_pvid(&br),
            preserve_default: conf.preserve_default_vlan,
        };
        if let Some(m) = crate::bridge::vlan_mismatch(&have, &want) {
            return Err(Error::Check(format!("host veth {veth}: {m}")));
        }
    }
    if conf.mac_spoof_chk {
        let vids: Vec<u16> = crate::bridge::port_vlans(host, l.header.index)
            .await?
            .into_iter()
            .map(|(vid, _, _)| vid)
            .collect();
        crate::macspoof::check(host, &l, veth, ctr_mac, &vids).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses_survive_another_spelling_of_the_netns() {
        let prev: CniResult = serde_json::from_value(serde_json::json!({
            "interfaces": [
                {"name": "cni0"},
                {"name": "vb0123456789ab"},
                {"name": "eth0", "sandbox": "/run/netns/pod"},
            ],
            "ips": [{"interface": 2, "address": "10.0.0.5/24"}],
        }))
        .expect("result");
        for netns in ["/run/netns/pod", "/var/run/netns/pod"] {
            let got = own_ips(&prev, "eth0", netns);
            assert_eq!(got.len(), 1, "{netns}: {got:?}");
        }
        assert!(own_ips(&prev, "net1", "/run/netns/pod").is_empty());
    }
}
