//! rtnetlink plumbing on a current-thread tokio runtime.
//!
//! One connection is opened in the host namespace and one bound to the container
//! namespace (opened outside the runtime, see `netns`); both are then driven by the
//! runtime, whose tasks never run in another namespace.

use crate::error::{errno, Error, Result, EADDRNOTAVAIL, EAFNOSUPPORT, EEXIST, ENODEV};
use crate::netns::{in_netns_here, Netns};
use conf::result::Route;
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InetDevConf, InfoData, InfoKind,
    InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{
    RouteAttribute, RouteMessage, RouteMetric, RouteScope, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};
use std::net::IpAddr;

/// A connection in the calling thread's (host) namespace.
pub fn connect_host() -> Result<Handle> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| Error::io("failed to open a netlink socket", e))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A connection bound to `ns`, usable from this (runtime) thread: opened on a short-lived
/// side thread, as the runtime's thread never leaves the host namespace.
pub fn connect_in(ns: &Netns) -> Result<Handle> {
    let rt = tokio::runtime::Handle::current();
    std::thread::scope(|s| {
        s.spawn(|| connect_in_here(ns, &rt, || Ok(())).map(|(h, ())| h))
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the netns thread panicked".into())))
    })
}

/// A connection bound to `ns`, opened outside the runtime (a side thread, or ADD's main
/// thread before it runs the runtime) and driven by the runtime behind `rt`; with
/// whatever else `also` opens in `ns` on the way.
pub fn connect_in_here<T>(
    ns: &Netns,
    rt: &tokio::runtime::Handle,
    also: impl FnOnce() -> Result<T>,
) -> Result<(Handle, T)> {
    let ((conn, handle, _), extra) = in_netns_here(ns, || {
        let _ctx = rt.enter();
        let conn = rtnetlink::new_connection()
            .map_err(|e| Error::io("failed to open a netlink socket in the container netns", e))?;
        Ok((conn, also()?))
    })?;
    rt.spawn(conn);
    Ok((handle, extra))
}

pub async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    match h
        .link()
        .get()
        .match_name(name.to_string())
        // Nobody reads the counters: without them the bridge's message is 1.5 KB, not 1.9.
        .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats])
        .execute()
        .try_next()
        .await
    {
        Ok(l) => Ok(l),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(Error::netlink(format!("failed to look up link {name}"), e)),
    }
}

pub async fn link_by_index(h: &Handle, index: u32) -> Result<Option<LinkMessage>> {
    let get = h
        .link()
        .get()
        .match_index(index)
        .set_filter_mask(AddressFamily::Unspec, vec![LinkExtentMask::SkipStats]);
    match get.execute().try_next().await {
        Ok(l) => Ok(l),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(Error::netlink(
            format!("failed to look up link #{index}"),
            e,
        )),
    }
}

/// Deletes a link by name; a missing link is success (DEL is idempotent).
pub async fn delete_link(h: &Handle, name: &str) -> Result<bool> {
    let Some(l) = link_by_name(h, name).await? else {
        return Ok(false);
    };
    delete_index(h, l.header.index, name).await
}

/// Deletes link `index` (`name` is for the message); a missing link is success.
pub async fn delete_index(h: &Handle, index: u32, name: &str) -> Result<bool> {
    match h.link().del(index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(false),
        Err(e) => Err(Error::netlink(format!("failed to delete link {name}"), e)),
    }
}

pub fn mac_string(l: &LinkMessage) -> String {
    l.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(b) => Some(format_mac(b)),
            _ => None,
        })
        .unwrap_or_default()
}

/// `aa:bb:cc:dd:ee:ff`, as CNI results carry it.
pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Result<Vec<u8>> {
    conf::mac::parse(s).map(|m| m.to_vec()).ok_or_else(|| {
        Error::Conf(conf::Error::config(format!(
            "MAC address {s:?} is invalid: use the form 02:aa:bb:cc:dd:ee"
        )))
    })
}

pub fn link_group(l: &LinkMessage) -> Option<u32> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Group(g) => Some(*g),
        _ => None,
    })
}

pub fn link_kind(l: &LinkMessage) -> Option<&InfoKind> {
    link_infos(l).find_map(|i| match i {
        LinkInfo::Kind(k) => Some(k),
        _ => None,
    })
}

/// The entries of a link's IFLA_LINKINFO (kind, kind data, port kind and port data).
pub fn link_infos(l: &LinkMessage) -> impl Iterator<Item = &LinkInfo> {
    l.attributes
        .iter()
        .filter_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => Some(infos),
            _ => None,
        })
        .flatten()
}

pub fn link_controller(l: &LinkMessage) -> Option<u32> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Controller(i) => Some(*i),
        _ => None,
    })
}

/// For a veth: the peer's ifindex (in the peer's namespace).
pub fn link_peer_index(l: &LinkMessage) -> Option<u32> {
    l.attributes.iter().find_map(|a| match a {
        LinkAttribute::Link(i) => Some(*i),
        _ => None,
    })
}

pub fn is_up(l: &LinkMessage) -> bool {
    l.header.flags.contains(LinkFlags::Up)
}

/// No IPv6 link-local address on link `index` (`addrgenmode none`), asked while the link
/// has no carrier so none is ever made. For a bridge port, which needs no address of its
/// own: every host end would otherwise get one, run DAD on it and send router
/// solicitations and MLD reports into the bridge — kernel work (under RTNL) that lands on
/// the ADDs and DELs that follow. A kernel without IPv6 has nothing to suppress.
pub async fn suppress_ipv6_link_local(h: &Handle, index: u32) -> Result<()> {
    let msg = LinkUnspec::new_with_index(index)
        .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
            vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
        )]))
        .build();
    change_link(h, msg, EAFNOSUPPORT, || {
        format!("failed to turn off IPv6 address generation on link #{index}")
    })
    .await
}

/// The container end's IPv4 settings, in one message. `arp_notify`: a gratuitous ARP for
/// its IPv4 addresses whenever it comes up. A new pod often gets the address of one just
/// deleted, and the host (or a peer) may still hold a reachable neighbour entry naming the
/// old pod's MAC for up to 45 s; unannounced, the new pod is unreachable from there until
/// that entry is re-probed (~5 s). The reference plugin sets it too.
/// `ignore_routes_with_linkdown`: see below.
pub async fn set_container_ipv4_conf(h: &Handle, index: u32) -> Result<()> {
    let mut conf = InetDevConf::default();
    conf.arp_notify = 1;
    // Same message, no extra cost: once a DEL has taken this pair's host end down, its
    // routes (a default route added beside another network's) stop being used at once
    // instead of black-holing until the pair is deleted.
    conf.ignore_routes_with_linkdown = 1;
    let msg = LinkUnspec::new_with_index(index)
        .append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
            AfSpecInet::DevConfRequest(conf),
        ])]))
        .build();
    change_link(h, msg, EAFNOSUPPORT, || {
        format!("failed to set arp_notify and ignore_routes_with_linkdown on link #{index}")
    })
    .await
}

/// RTM_SETLINK `msg`; the errno `tolerated` counts as done.
async fn change_link(
    h: &Handle,
    msg: LinkMessage,
    tolerated: i32,
    what: impl FnOnce() -> String,
) -> Result<()> {
    match h.link().change(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(tolerated) => Ok(()),
        Err(e) => Err(Error::netlink(what(), e)),
    }
}

pub async fn set_up(h: &Handle, index: u32) -> Result<()> {
    h.link()
        .change(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("failed to set link #{index} up"), e))
}

/// The veth of one attachment, created in one request: the host end enslaved to the
/// bridge and up, the container end created directly inside the container namespace
/// (no cross-namespace move, which costs a `synchronize_net`).
pub struct VethSpec<'a> {
    pub host_name: &'a str,
    pub container_name: &'a str,
    pub netns_fd: i32,
    pub bridge_index: u32,
    pub mtu: Option<u32>,
    pub container_mac: Option<Vec<u8>>,
    /// Ownership tag for GC (`names::link_group`).
    pub group: u32,
    /// Rx and tx queues of each end; `None`: the kernel's default.
    pub queues: Option<u32>,
}

pub async fn create_veth(h: &Handle, s: &VethSpec<'_>) -> Result<()> {
    let mut peer = LinkUnspec::new_with_name(s.container_name).setns_by_fd(s.netns_fd);
    let mut host = LinkVeth::new(s.host_name, s.container_name)
        .controller(s.bridge_index)
        .link_group(s.group)
        .up();
    if let Some(m) = s.mtu {
        peer = peer.mtu(m);
        host = host.mtu(m);
    }
    if let Some(mac) = &s.container_mac {
        peer = peer.address(mac.clone());
    }
    if let Some(q) = s.queues {
        let attrs = || [LinkAttribute::NumTxQueues(q), LinkAttribute::NumRxQueues(q)];
        for a in attrs() {
            peer = peer.append_extra_attribute(a);
        }
        for a in attrs() {
            host = host.append_extra_attribute(a);
        }
    }
    let msg = host
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
        .build();
    match h.link().add(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(EEXIST) => Err(Error::InterfaceExists(format!(
            "failed to create veth {} / {}: an interface of that name already exists",
            s.host_name, s.container_name
        ))),
        Err(e) => Err(Error::netlink(
            format!("failed to create veth {}", s.host_name),
            e,
        )),
    }
}

/// Adds an address; an identical address already present is success (concurrent ADDs
/// race to put the gateway on the bridge).
pub async fn add_address(
    h: &Handle,
    index: u32,
    ip: IpAddr,
    prefix: u8,
    nodad: bool,
) -> Result<()> {
    let mut req = h.address().add(index, ip, prefix);
    if nodad && ip.is_ipv6() {
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
        Err(e) => Err(Error::netlink(
            format!("failed to add address {ip}/{prefix} to link #{index}"),
            e,
        )),
    }
}

pub async fn addresses(h: &Handle, index: u32) -> Result<Vec<(IpAddr, u8)>> {
    Ok(address_messages(h, index)
        .await?
        .iter()
        .filter_map(address_of)
        .collect())
}

async fn address_messages(h: &Handle, index: u32) -> Result<Vec<AddressMessage>> {
    h.address()
        .get()
        .set_link_index_filter(index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink(format!("failed to list addresses of link #{index}"), e))
}

/// With `enabledad`: waits until none of the IPv6 `addrs` on link `index` is tentative any
/// more, as the reference does, so the ADD returns addresses the pod can bind. A failed
/// detection, or one still running after `limit` (1–2 s with the kernel's defaults), is
/// an error.
pub async fn settle_ipv6(
    h: &Handle,
    index: u32,
    addrs: &[IpAddr],
    limit: std::time::Duration,
) -> Result<()> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let mut tentative = None;
        for m in address_messages(h, index).await? {
            let Some((ip, _)) = address_of(&m).filter(|(ip, _)| addrs.contains(ip)) else {
                continue;
            };
            let flags = m
                .attributes
                .iter()
                .find_map(|a| match a {
                    AddressAttribute::Flags(f) => Some(*f),
                    _ => None,
                })
                .unwrap_or_else(|| {
                    AddressFlags::from_bits_retain(u32::from(m.header.flags.bits()))
                });
            if flags.contains(AddressFlags::Dadfailed) {
                return Err(Error::DuplicateAddress(format!(
                    "IPv6 duplicate address detection found {ip} in use on the network"
                )));
            }
            if flags.contains(AddressFlags::Tentative) {
                tentative = Some(ip);
            }
        }
        let Some(ip) = tentative else {
            return Ok(());
        };
        if std::time::Instant::now() >= deadline {
            return Err(Error::DuplicateAddress(format!(
                "IPv6 duplicate address detection of {ip} did not finish within {} s",
                limit.as_secs()
            )));
        }
        // The runtime has no timer (nothing else needs one); this future is the only one
        // waiting, and the netlink connection has nothing to do meanwhile.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn address_of(m: &AddressMessage) -> Option<(IpAddr, u8)> {
    m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some((*ip, m.header.prefix_len)),
        _ => None,
    })
}

/// `forceAddress`, as the reference does it: before `ip/prefix` goes on link `index`, every
/// other IPv4 address of the link (for an IPv4 `ip`), or every IPv6 address whose subnet
/// overlaps `ip`'s (for an IPv6 one), is removed — so a network whose subnet changed does
/// not keep its old gateway, and its old route, on the bridge. Adds to `removed` what
/// this call removed — also when it then fails, so a rollback can put back exactly that.
pub async fn remove_conflicting_addresses(
    h: &Handle,
    index: u32,
    ip: IpAddr,
    prefix: u8,
    keep: &[(IpAddr, u8)],
    removed: &mut Vec<(IpAddr, u8)>,
) -> Result<()> {
    for m in address_messages(h, index).await? {
        let Some(have) = address_of(&m) else {
            continue;
        };
        if have == (ip, prefix) || keep.contains(&have) || !conflicts(have, (ip, prefix)) {
            continue;
        }
        match h.address().del(m).execute().await {
            Ok(()) => removed.push(have),
            // A concurrent ADD of the network removed it first: not ours to put back.
            Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => {}
            Err(e) => {
                return Err(Error::netlink(
                    format!(
                        "forceAddress: failed to remove {}/{} from link #{index}",
                        have.0, have.1
                    ),
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// Whether address `have` must give way to the gateway `want` under `forceAddress`.
fn conflicts(have: (IpAddr, u8), want: (IpAddr, u8)) -> bool {
    let net = |(ip, p): (IpAddr, u8)| ipnetwork::IpNetwork::new(ip, p).ok();
    match (have.0, want.0) {
        (IpAddr::V4(_), IpAddr::V4(_)) => true,
        (IpAddr::V6(_), IpAddr::V6(_)) => match (net(have), net(want)) {
            (Some(a), Some(b)) => a.contains(want.0) || b.contains(have.0),
            _ => false,
        },
        _ => false,
    }
}

/// Adds `route` through `index` via `gw` (the route's own or the family's gateway), with
/// the CNI 1.1 route options it carries (priority, table, scope, mtu, advmss). When the
/// kernel already has a route for the same destination, table and metric: one that leads
/// the same way (or the kernel's route to a connected subnet) is kept as it is; another
/// one via a gateway — a container on two networks that both want its default route
/// (Podman with two networks, Multus) — gets ours beside it, as the reference's
/// non-exclusive add does (IPv4: ours first; IPv6: a multipath route when both are
/// gateway routes not learnt from router advertisements, else a second route after it);
/// an on-link route of another interface is refused (109), ours would take its traffic.
pub async fn add_route(h: &Handle, index: u32, route: &Route, gw: Option<IpAddr>) -> Result<()> {
    let dst = route.dst;
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.network(), dst.prefix())
        .map_err(|e| {
            Error::Conf(conf::Error::config(format!(
                "invalid route destination {dst}: {e:?}"
            )))
        })?
        .output_interface(index);
    if let Some(g) = gw {
        b = b.gateway(g).map_err(|e| {
            Error::Conf(conf::Error::config(format!(
                "route to {dst}: invalid gateway {g}: {e:?}"
            )))
        })?;
    }
    if let Some(p) = route.priority {
        b = b.priority(p);
    }
    if let Some(t) = route.table {
        b = b.table_id(t);
    }
    if let Some(s) = route.scope {
        b = b.scope(RouteScope::from(s));
    }
    let mut msg = b.build();
    let metrics: Vec<RouteMetric> = [
        route.mtu.map(RouteMetric::Mtu),
        route.advmss.map(RouteMetric::Advmss),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !metrics.is_empty() {
        msg.attributes.push(RouteAttribute::Metrics(metrics));
    }
    let again = msg.clone();
    match h.route().add(msg).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(EEXIST) => match existing_route(h, index, route, gw).await? {
            Existing::Same => Ok(()),
            Existing::OtherGateway => {
                log::info!(
                    "route {dst} via {gw:?}: the container has another route there; adding beside it"
                );
                add_beside(h, again).await.map_err(|e| {
                    Error::netlink(
                        format!("failed to add route {dst} via {gw:?} beside the existing one"),
                        e,
                    )
                })
            }
            Existing::OnLink => Err(Error::netlink(
                format!(
                    "failed to add route {dst} via {gw:?}: {dst} is on-link through another \
                     interface of the container, and this route would take that traffic"
                ),
                e,
            )),
        },
        Err(e) => Err(Error::netlink(
            format!("failed to add route {dst} via {gw:?}"),
            e,
        )),
    }
}

/// RTM_NEWROUTE without NLM_F_EXCL (rtnetlink's request always sets it): the kernel adds
/// the route next to a different one of the same key; an identical one is EEXIST, fine.
async fn add_beside(h: &Handle, msg: RouteMessage) -> std::result::Result<(), rtnetlink::Error> {
    use futures_util::StreamExt;
    use rtnetlink::packet_core::{
        NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST,
    };
    use rtnetlink::packet_route::RouteNetlinkMessage;
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewRoute(msg));
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE;
    let mut replies = h.clone().request(req)?;
    while let Some(m) = replies.next().await {
        if let NetlinkPayload::Error(e) = m.payload {
            let err = rtnetlink::Error::NetlinkError(e);
            if errno(&err) != Some(EEXIST) {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// What made the kernel answer EEXIST for `route`.
enum Existing {
    /// A route of the same key through `index` via the same gateway, or the kernel's own
    /// route to this link's connected subnet (a config listing its own subnet).
    Same,
    /// A route of the same key via a gateway, through another interface or gateway: ours
    /// goes beside it, as with the reference.
    OtherGateway,
    /// An on-link route of another interface: ours would take its traffic.
    OnLink,
}

async fn existing_route(
    h: &Handle,
    index: u32,
    route: &Route,
    gw: Option<IpAddr>,
) -> Result<Existing> {
    const RT_TABLE_MAIN: u32 = 254;
    let table = route.table.filter(|t| *t != 0).unwrap_or(RT_TABLE_MAIN);
    // The kernel's default metric: none for IPv4, 1024 for IPv6.
    let v6 = route.dst.is_ipv6();
    let metric = route
        .priority
        .filter(|p| *p != 0)
        .unwrap_or(if v6 { 1024 } else { 0 });
    let dst = (route.dst.network(), route.dst.prefix());
    let live = routes(h, v6).await?;
    let same_key: Vec<&LiveRoute> = live
        .iter()
        .filter(|l| {
            (l.dst.network(), l.dst.prefix()) == dst
                && l.table == table
                && l.priority.unwrap_or(0) == metric
        })
        .collect();
    if same_key
        .iter()
        .any(|l| l.oif == Some(index) && (l.gw == gw || l.gw.is_none()))
    {
        return Ok(Existing::Same);
    }
    // Only plain on-link routes of another interface; a blackhole, an unreachable route
    // or one via a gateway gets ours beside it, as with the reference.
    let on_link_elsewhere =
        |l: &&LiveRoute| l.unicast && l.gw.is_none() && l.oif.is_some_and(|o| o != index);
    if !same_key.is_empty() && same_key.iter().all(on_link_elsewhere) {
        return Ok(Existing::OnLink);
    }
    Ok(Existing::OtherGateway)
}

/// One installed route, as CHECK compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRoute {
    pub dst: ipnetwork::IpNetwork,
    pub gw: Option<IpAddr>,
    pub oif: Option<u32>,
    /// A plain route (not blackhole, unreachable, local, ...).
    pub unicast: bool,
    pub table: u32,
    pub priority: Option<u32>,
}

/// All routes of one family, every table.
pub async fn routes(h: &Handle, v6: bool) -> Result<Vec<LiveRoute>> {
    let mut q = RouteMessageBuilder::<IpAddr>::new().build();
    q.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    // RT_TABLE_UNSPEC: no table filter, routes of every table.
    q.header.table = 0;
    let msgs: Vec<RouteMessage> = h
        .route()
        .get(q)
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink("failed to list routes", e))?;
    let zero = if v6 {
        IpAddr::V6(0.into())
    } else {
        IpAddr::V4(0.into())
    };
    let mut out = Vec::with_capacity(msgs.len());
    for m in &msgs {
        let mut dst = zero;
        let mut r = LiveRoute {
            dst: ipnetwork::IpNetwork::from(zero),
            gw: None,
            oif: None,
            unicast: m.header.kind == RouteType::Unicast,
            table: u32::from(m.header.table),
            priority: None,
        };
        let mut hops = Vec::new();
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(d) => dst = route_addr(d).unwrap_or(zero),
                RouteAttribute::Gateway(g) => r.gw = route_addr(g),
                RouteAttribute::Oif(i) => r.oif = Some(*i),
                RouteAttribute::Table(t) => r.table = *t,
                RouteAttribute::Priority(p) => r.priority = Some(*p),
                RouteAttribute::MultiPath(nh) => hops.extend(nh.iter()),
                _ => {}
            }
        }
        r.dst = ipnetwork::IpNetwork::new(dst, m.header.destination_prefix_length)
            .unwrap_or_else(|_| ipnetwork::IpNetwork::from(zero));
        if hops.is_empty() {
            out.push(r);
            continue;
        }
        // A multipath route (IPv6 routes added beside each other): one entry per next hop.
        for hop in hops {
            let gw = hop.attributes.iter().find_map(|a| match a {
                RouteAttribute::Gateway(g) => route_addr(g),
                _ => None,
            });
            out.push(LiveRoute {
                gw,
                oif: Some(hop.interface_index),
                ..r.clone()
            });
        }
    }
    Ok(out)
}

fn route_addr(a: &rtnetlink::packet_route::route::RouteAddress) -> Option<IpAddr> {
    use rtnetlink::packet_route::route::RouteAddress;
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Links in link group `group` (GC of orphan host veths, enslaved or retired).
pub async fn links_in_group(h: &Handle, group: u32) -> Result<Vec<LinkMessage>> {
    let all: Vec<LinkMessage> = h
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(|e| Error::netlink("failed to list links", e))?;
    Ok(all
        .into_iter()
        .filter(|l| link_group(l) == Some(group))
        .collect())
}

/// Takes a link out of service at once — down and off its bridge, which costs well under
/// a millisecond — so its deletion (10–20 ms of RCU waits in the kernel) can happen later.
pub async fn retire(h: &Handle, index: u32) -> Result<()> {
    let msg = LinkUnspec::new_with_index(index)
        .down()
        .nocontroller()
        .build();
    change_link(h, msg, ENODEV, || {
        format!("failed to take link #{index} down")
    })
    .await
}

/// Down and without a master: taken out of service by `retire`.
pub fn is_retired(l: &LinkMessage) -> bool {
    !is_up(l) && link_controller(l).is_none()
}

/// Deletes link `index` only if it is still the retired `name` (down, no master): a new
/// link may have taken the name meanwhile, and indexes are not reused soon.
pub async fn delete_retired(h: &Handle, index: u32, name: &str) -> Result<()> {
    let Some(l) = link_by_index(h, index).await? else {
        return Ok(());
    };
    if link_name(&l) != name || !is_retired(&l) {
        return Ok(());
    }
    delete_index(h, index, name).await.map(|_| ())
}

pub fn link_name(l: &LinkMessage) -> &str {
    l.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.as_str()),
            _ => None,
        })
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forms themselves are `conf::mac`'s; here only the error's code.
    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:aa:bb:cc:dd:0e").expect("mac")[5], 0x0e);
        let e = parse_mac("2:a:b:c:d:e").expect_err("short groups");
        assert_eq!(e.code(), conf::ErrorCode::InvalidConfig);
    }
}

#[cfg(test)]
mod force_address_tests {
    use super::conflicts;

    fn a(s: &str, p: u8) -> (std::net::IpAddr, u8) {
        (s.parse().expect("test address"), p)
    }

    #[test]
    fn any_other_ipv4_address_gives_way() {
        assert!(conflicts(a("10.1.0.1", 24), a("10.2.0.1", 24)));
        assert!(conflicts(a("10.1.0.1", 16), a("10.1.0.1", 24)));
    }

    #[test]
    fn only_overlapping_ipv6_addresses_give_way() {
        assert!(conflicts(a("fd00:1::1", 64), a("fd00:1::2", 64)));
        assert!(conflicts(a("fd00::1", 48), a("fd00:0:0:5::1", 64)));
        assert!(!conflicts(a("fd00:2::1", 64), a("fd00:1::1", 64)));
        assert!(!conflicts(a("fe80::1", 64), a("fd00:1::1", 64)));
    }

    #[test]
    fn families_never_conflict() {
        assert!(!conflicts(a("10.1.0.1", 24), a("fd00:1::1", 64)));
        assert!(!conflicts(a("fd00:1::1", 64), a("10.1.0.1", 24)));
    }
}
