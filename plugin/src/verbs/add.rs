//! ADD: bridge, veth, VLANs, IPAM, addresses and routes in the container, gateway,
//! forwarding, firewall — and a full rollback if any step fails.

use super::{load, runtime, subnets_of};
use crate::bridge::{self, BridgeSpec};
use crate::error::{Error, Result, EACCES};
use crate::ifreq::IfSock;
use crate::ipam_client::IpamClient;
use crate::names;
use crate::netlink::{self, VethSpec};
use crate::netns::Netns;
use crate::network;
use crate::state::{AttachmentRecord, NetState};
use crate::sysctl;
use conf::netconf::NetConf;
use conf::result::{Interface, IpConfig, Route};
use conf::skel::Request;
use conf::{Attachment, CniResult};
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::link::{InfoKind, LinkMessage};
use rtnetlink::{Handle, LinkBridgePort, LinkUnspec};
use std::net::IpAddr;

/// How long an ADD with `enabledad` waits for duplicate address detection (one probe and
/// a second's wait by default), as the reference waits.
const DAD_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

pub fn add(req: &Request) -> Result<String> {
    let conf = load(req)?;
    super::addable(&conf)?;
    let asked_mac = conf.container_mac(req.args.args.mac.as_deref())?;
    if (conf.ip_masq || conf.isolate) && !crate::ipam_client::ipam_type(&conf).is_empty() {
        // A fresh machine's usual first failure, found before the bridge, its gateway
        // and the forwarding switch change anything on the host. (Without addresses
        // there is no rule to install.)
        crate::firewall::findable()?;
    }
    let ipam = IpamClient::new(&conf, req)?;
    ipam.validate_for_add()?;
    let ns = Netns::open(&req.args.netns)?;
    ns.ensure_not_own()?;
    let rt = runtime()?;
    // Opened before the runtime runs: this thread may enter the container netns only
    // while no task can run on it.
    let ctr = Container::open(&ns, rt.handle())?;
    let result = rt.block_on(async {
        let mut a = Add {
            conf: &conf,
            req,
            ipam: &ipam,
            ns: &ns,
            att: req.args.attachment(),
            host_veth: names::host_veth(&conf.name, &req.args.container_id, &req.args.ifname),
            host_links: IfSock::open()?,
            asked_mac,
            allocated: false,
            veth: false,
            displaced: Default::default(),
        };
        let host = netlink::connect_host()?;
        let out = a.run(&host, &ctr).await;
        if out.is_err() {
            a.rollback(&host).await;
        }
        out
    })?;
    Ok(result.to_json(req.common.version))
}

struct Add<'a> {
    conf: &'a NetConf,
    req: &'a Request,
    ipam: &'a IpamClient<'a>,
    ns: &'a Netns,
    att: Attachment,
    host_veth: String,
    /// Lookups in the host namespace.
    host_links: IfSock,
    /// The container MAC asked for, if any (checked before anything changes).
    asked_mac: Option<[u8; 6]>,
    allocated: bool,
    veth: bool,
    /// Addresses `forceAddress` removed (link, address, prefix), put back by a rollback.
    displaced: std::cell::RefCell<Vec<(u32, IpAddr, u8)>>,
}

impl<'a> Add<'a> {
    /// Everything on this one thread, the IPAM included: a worker thread that ran the IPAM
    /// (its fsync overlapping the link setup) made no ADD faster on a VM and cost 0.46 ms
    /// more CPU per ADD (thread start and exit, cross-CPU wakeups and TLB shootdowns, each
    /// a trip through the hypervisor), which a batch of concurrent ADDs pays in wall time.
    async fn run(&mut self, host: &Handle, ctr: &Container) -> Result<CniResult> {
        let mut laps = crate::timing::Laps::start("ADD");
        let ifname = &self.req.args.ifname;
        // One lookup of our host veth name serves two cases. A DEL of this attachment may
        // have retired the pair a moment ago, its deletion still pending: finish it now,
        // or its container end would look like a clash. Any other link of that name is a
        // leftover (e.g. of a killed ADD), replaced once the container end is known gone.
        let mut leftover = None;
        if self.host_links.index(&self.host_veth)?.is_some() {
            if let Some(l) = netlink::link_by_name(host, &self.host_veth).await? {
                if netlink::link_group(&l) != Some(names::link_group(&self.conf.name)) {
                    // Not a veth of this network: a name clash (another network's pod, or a
                    // link someone made), never ours to delete.
                    return Err(Error::InterfaceExists(format!(
                        "host link {} exists and is not a veth of network {:?}; it is left alone",
                        self.host_veth, self.conf.name
                    )));
                }
                if netlink::is_retired(&l) {
                    netlink::delete_retired(host, l.header.index, &self.host_veth).await?;
                } else {
                    leftover = Some(l.header.index);
                }
            }
        }
        if ctr.links.index(ifname)?.is_some() && !finish_retired_pair(host, ctr, ifname).await? {
            return Err(Error::InterfaceExists(format!(
                "interface {ifname:?} (CNI_IFNAME) already exists in netns {}",
                self.ns.path()
            )));
        }
        // Parsed before anything changes: nothing may fail once the attachment is registered.
        let prev = self
            .conf
            .prev_result
            .as_ref()
            .map(CniResult::from_value)
            .transpose()?;
        let trunk = self.conf.trunk_vids()?;
        let vlan = self
            .conf
            .vlan
            .filter(|v| *v != 0)
            .and_then(|v| u16::try_from(v).ok());
        // Our own IPAM runs after every check and before any link: a failed or refused
        // ADD never allocates, an exhausted pool leaves nothing to undo. A delegate runs
        // once the container interface is on its port and up, where the reference runs
        // it: dhcp acquires its lease through that interface.
        let early = match self.ipam.is_delegate() {
            true => None,
            false => Some(self.allocate()?),
        };
        laps.lap("IPAM");
        let (br, host_index) = self.bridge_and_veth(host, vlan, &trunk, leftover).await?;
        laps.lap("bridge and veth");
        let port_vlans = bridge::PortVlans {
            vlan,
            trunk: &trunk,
            default_pvid: bridge::default_pvid(&br),
            preserve_default: self.conf.preserve_default_vlan,
        };
        let ctr_mac = self
            .configure_port_of(host, ctr, host_index, &port_vlans)
            .await?;
        let delegated = early.is_none();
        let ipres = match early {
            Some(r) => r,
            None => {
                self.up_for_delegate(ctr).await?;
                self.allocate()?
            }
        };
        let Configured {
            ipres,
            gateways,
            macs,
        } = self.configure_links(ctr, ipres, ctr_mac).await?;
        if delegated {
            self.announce(ctr, &macs[2], &ipres).await?;
        }
        laps.lap("port, container addresses and routes");
        let vlan_gw = self.vlan_gateway(vlan);
        if vlan_gw.is_none() {
            // No DEL removes the bridge's own gateway address, so it is set before the
            // state lock: under the lock its wait for RTNL would make every concurrent
            // ADD of the network queue behind it.
            self.configure_gateway(host, br.header.index, &ipres, &gateways)
                .await?;
        }
        // Held from a VLAN gateway to the registration, so a concurrent DEL of the
        // network's last attachment cannot remove the gateway or firewall under us.
        let st = NetState::lock(self.conf.state_dir(), &self.conf.name)?;
        laps.lap("state lock");
        let res = self
            .attach_locked(&st, host, &br, vlan, ipres, &gateways)
            .await;
        if res.is_err() && st.is_empty().unwrap_or(false) {
            if let Some(v) = vlan_gw {
                if let Err(e) =
                    bridge::delete_vlan_gateway(host, self.conf.bridge_name(), v, &self.conf.name)
                        .await
                {
                    log::error!("rollback: {e}");
                }
            }
        }
        let ipres = res?;
        laps.lap("gateway and state");
        let ours = self.result(macs, ipres);
        match prev {
            Some(prev) => Ok(chain(prev, ours)),
            None => Ok(ours),
        }
    }

    async fn bridge_and_veth(
        &mut self,
        host: &Handle,
        vlan: Option<u16>,
        trunk: &[u16],
        leftover: Option<u32>,
    ) -> Result<(LinkMessage, u32)> {
        let br = bridge::ensure(
            host,
            &BridgeSpec {
                name: self.conf.bridge_name(),
                mtu: self.conf.mtu,
                vlan_filtering: vlan.is_some() || !trunk.is_empty(),
                promisc: self.conf.promisc_mode,
                // With a VLAN the gateway is on the VLAN's own link, not the bridge.
                gateway: self.conf.gateway_mode() && vlan.is_none(),
            },
        )
        .await?;
        let host_index = self.create_veth(host, br.header.index, leftover).await?;
        Ok((br, host_index))
    }

    fn allocate(&mut self) -> Result<CniResult> {
        let r = self.ipam.add(&self.att)?;
        self.allocated = true;
        Ok(r)
    }

    /// The bridge port of the host end; returns the container end's MAC, which the
    /// port's spoof check (macspoofchk) lets through.
    async fn configure_port_of(
        &self,
        host: &Handle,
        ctr: &Container,
        host_index: u32,
        port_vlans: &bridge::PortVlans<'_>,
    ) -> Result<String> {
        let ctr_mac = link_mac(&ctr.links, &self.req.args.ifname)?;
        self.configure_port(host, host_index, port_vlans, &ctr_mac)
            .await?;
        Ok(ctr_mac)
    }

    /// The container interface up before a delegated IPAM runs (addresses come later).
    async fn up_for_delegate(&self, ctr: &Container) -> Result<()> {
        let idx = self.container_index(ctr)?;
        netlink::set_container_ipv4_conf(&ctr.nl, idx).await?;
        netlink::set_up(&ctr.nl, idx).await
    }

    /// The link went up before a delegated IPAM gave it addresses, and going up is when
    /// `arp_notify` announces them: a neighbour still holding a previous pod's MAC for a
    /// reused address would lose this pod's traffic until its entry expired. Setting the
    /// link's own MAC again makes the kernel send the gratuitous ARP.
    async fn announce(&self, ctr: &Container, mac: &str, r: &CniResult) -> Result<()> {
        if !r.ips.iter().any(|i| i.address.is_ipv4()) {
            return Ok(());
        }
        let idx = self.container_index(ctr)?;
        let msg = LinkUnspec::new_with_index(idx)
            .address(netlink::parse_mac(mac)?)
            .build();
        ctr.nl.link().change(msg).execute().await.map_err(|e| {
            Error::netlink(
                "failed to announce the container's addresses (gratuitous ARP)",
                e,
            )
        })
    }

    fn container_index(&self, ctr: &Container) -> Result<u32> {
        let ifname = &self.req.args.ifname;
        ctr.links.index(ifname)?.ok_or_else(|| {
            Error::Check(format!(
                "container interface {ifname} vanished after creation"
            ))
        })
    }

    /// The container interface: up, addresses, routes. Returns `ipres` with its gateways
    /// filled in, those gateways, and the bridge's and both ends' MACs (read here, while a
    /// failure still rolls back cleanly).
    async fn configure_links(
        &self,
        ctr: &Container,
        mut ipres: CniResult,
        ctr_mac: String,
    ) -> Result<Configured> {
        let ctr_index = self.container_index(ctr)?;
        let gateways = gateways(self.conf, &mut ipres);
        self.configure_container(&ctr.nl, ctr_index, &ipres, &gateways)
            .await?;
        // The bridge's MAC as it is with our port on it (an unpinned one may have taken
        // the port's).
        let macs = [
            link_mac(&self.host_links, self.conf.bridge_name())?,
            link_mac(&self.host_links, &self.host_veth)?,
            ctr_mac,
        ];
        Ok(Configured {
            ipres,
            gateways,
            macs,
        })
    }

    /// The VID of the network's own VLAN gateway, if it has one.
    fn vlan_gateway(&self, vlan: Option<u16>) -> Option<u16> {
        vlan.filter(|_| self.conf.gateway_mode())
    }

    /// The VLAN gateway (if any), the registration and the firewall.
    async fn attach_locked(
        &self,
        st: &NetState,
        host: &Handle,
        br: &LinkMessage,
        vlan: Option<u16>,
        ipres: CniResult,
        gateways: &[IpAddr],
    ) -> Result<CniResult> {
        // A layer-2 network (no addresses) has no gateway to put on the VLAN's link.
        if let Some(v) = self.vlan_gateway(vlan).filter(|_| !gateways.is_empty()) {
            let gw_link = bridge::ensure_vlan_gateway(
                host,
                br,
                self.conf.bridge_name(),
                v,
                &self.conf.name,
                self.conf.mtu,
            )
            .await?;
            self.configure_gateway(host, gw_link, &ipres, gateways)
                .await?;
        }
        let addrs: Vec<IpNetwork> = ipres.ips.iter().map(|i| i.address).collect();
        let rec = AttachmentRecord {
            host_veth: self.host_veth.clone(),
            bridge: self.conf.bridge_name().to_string(),
            ips: addrs.clone(),
            vlan,
            netns: self.req.args.netns.clone(),
            boot: AttachmentRecord::this_boot(),
        };
        network::attach(st, self.conf, &self.att, &rec, &subnets_of(&addrs))?;
        Ok(ipres)
    }

    async fn create_veth(
        &mut self,
        host: &Handle,
        bridge_index: u32,
        leftover: Option<u32>,
    ) -> Result<u32> {
        let mac = self.asked_mac.map(|m| m.to_vec());
        let spec = VethSpec {
            host_name: &self.host_veth,
            container_name: &self.req.args.ifname,
            netns_fd: self.ns.raw_fd(),
            bridge_index,
            mtu: self.conf.mtu,
            container_mac: mac,
            group: names::link_group(&self.conf.name),
            queues: self.conf.veth_queues(),
        };
        // A host end with our deterministic name can only be a leftover of this same
        // attachment (its container end is gone, checked above): replace it.
        if let Some(index) = leftover {
            if netlink::delete_index(host, index, &self.host_veth).await? {
                log::warn!("removed stale host veth {}", self.host_veth);
            }
        }
        netlink::create_veth(host, &spec).await?;
        self.veth = true;
        self.host_links.index(&self.host_veth)?.ok_or_else(|| {
            Error::Check(format!(
                "host veth {} vanished after creation",
                self.host_veth
            ))
        })
    }

    async fn configure_port(
        &self,
        host: &Handle,
        idx: u32,
        port_vlans: &bridge::PortVlans<'_>,
        ctr_mac: &str,
    ) -> Result<()> {
        // Before the container end goes up: until then the port has no carrier.
        netlink::suppress_ipv6_link_local(host, idx).await?;
        let c = self.conf;
        if c.hairpin_mode || c.port_isolation || c.mac_spoof_chk {
            let mut port = LinkBridgePort::new(idx)
                .hairpin(c.hairpin_mode)
                .isolated(c.port_isolation);
            if c.mac_spoof_chk {
                port = crate::macspoof::lock(port);
            }
            host.link()
                .set_port(port.build())
                .execute()
                .await
                .map_err(|e| {
                    Error::netlink(
                        format!("failed to set bridge port options on {}", self.host_veth),
                        e,
                    )
                })?;
        }
        bridge::configure_port_vlans(host, idx, port_vlans).await?;
        if c.mac_spoof_chk {
            let mac = netlink::parse_mac(ctr_mac)?;
            crate::macspoof::allow(host, idx, &self.host_veth, &mac).await?;
        }
        Ok(())
    }

    async fn configure_container(
        &self,
        ctr: &Handle,
        idx: u32,
        r: &CniResult,
        gws: &[IpAddr],
    ) -> Result<()> {
        if self.conf.disable_container_interface {
            // Left down for whoever takes the link over (e.g. a VM's bridge in the pod);
            // without IPAM there is nothing else to configure.
            return Ok(());
        }
        // DAD would stall the first seconds of IPv6 traffic on a link we just created.
        let nodad = !self.conf.enabledad;
        // Addresses, then up (with arp_notify, so the link announces them as it comes up),
        // then routes: a gateway is only reachable through a link that is up. (Asking for
        // IFF_UP on the peer at creation fails with ENOTCONN.)
        if r.ips.iter().any(|ip| ip.address.is_ipv4()) {
            netlink::set_container_ipv4_conf(ctr, idx).await?;
        }
        for ip in &r.ips {
            let (addr, prefix) = (ip.address.ip(), ip.address.prefix());
            match netlink::add_address(ctr, idx, addr, prefix, nodad).await {
                // IPv6 is off on the link (see `sysctl::enable_ipv6_in`); only then.
                Err(e) if addr.is_ipv6() && e.netlink_errno() == Some(EACCES) => {
                    crate::sysctl::enable_ipv6_in(self.ns, &self.req.args.ifname)?;
                    netlink::add_address(ctr, idx, addr, prefix, nodad).await?;
                }
                done => done?,
            }
        }
        netlink::set_up(ctr, idx).await?;
        if self.conf.enabledad {
            let v6: Vec<IpAddr> = r
                .ips
                .iter()
                .map(|i| i.address.ip())
                .filter(IpAddr::is_ipv6)
                .collect();
            if !v6.is_empty() {
                netlink::settle_ipv6(ctr, idx, &v6, DAD_LIMIT).await?;
            }
        }
        for route in &r.routes {
            // A link- or host-scope route has no next hop: the kernel refuses a gateway there.
            let on_link = route.scope.is_some_and(|s| s >= 253);
            let gw = match route.next_hop() {
                // An on-link gw (0.0.0.0 / ::) is not "use ours".
                None if route.gw.is_some() || on_link => None,
                None => gws
                    .iter()
                    .copied()
                    .find(|g| g.is_ipv4() == route.dst.is_ipv4()),
                given => given,
            };
            netlink::add_route(ctr, idx, route, gw).await?;
        }
        Ok(())
    }

    async fn configure_gateway(
        &self,
        host: &Handle,
        br: u32,
        r: &CniResult,
        gws: &[IpAddr],
    ) -> Result<()> {
        if !self.conf.gateway_mode() {
            return Ok(());
        }
        // The network's gateways as this ADD puts them (two range sets of a family have
        // two): forceAddress removes neither, but does remove one of them with a stale
        // prefix (a subnet that changed size).
        let addrs: Vec<IpNetwork> = r.ips.iter().map(|i| i.address).collect();
        let ours = super::bridge_gateways(gws, &addrs);
        for &(gw, prefix) in &ours {
            if self.conf.force_address {
                let mut removed = Vec::new();
                let done = netlink::remove_conflicting_addresses(
                    host,
                    br,
                    gw,
                    prefix,
                    &ours,
                    &mut removed,
                )
                .await;
                for (ip, p) in removed {
                    log::info!(
                        "forceAddress: removed {ip}/{p} to make way for gateway {gw}/{prefix}"
                    );
                    self.displaced.borrow_mut().push((br, ip, p));
                }
                done?;
            }
            netlink::add_address(host, br, gw, prefix, true).await?;
            if gw.is_ipv4() {
                sysctl::enable_ipv4_forwarding()?;
            } else {
                sysctl::enable_ipv6_forwarding()?;
            }
        }
        Ok(())
    }

    /// `macs`: the bridge's, the host end's, then the container end's.
    fn result(&self, macs: [String; 3], ipres: CniResult) -> CniResult {
        let [br_mac, host_mac, ctr_mac] = macs;
        let dns = match &self.conf.dns {
            Some(d) if !d.is_empty() => d.clone(),
            _ => ipres.dns,
        };
        CniResult {
            interfaces: vec![
                Interface {
                    name: self.conf.bridge_name().into(),
                    mac: br_mac,
                    ..Default::default()
                },
                Interface {
                    name: self.host_veth.clone(),
                    mac: host_mac,
                    ..Default::default()
                },
                Interface {
                    name: self.req.args.ifname.clone(),
                    mac: ctr_mac,
                    sandbox: self.req.args.netns.clone(),
                    ..Default::default()
                },
            ],
            ips: ipres
                .ips
                .into_iter()
                .map(|i| IpConfig {
                    interface: Some(2),
                    ..i
                })
                .collect(),
            routes: ipres.routes,
            dns,
        }
    }

    /// Best effort: every undo step runs even if an earlier one fails.
    async fn rollback(&self, host: &Handle) {
        if self.veth {
            if let Err(e) = netlink::delete_link(host, &self.host_veth).await {
                log::error!("rollback: {e}");
            }
        }
        if self.allocated {
            if let Err(e) = self.ipam.del(&self.att) {
                log::error!("rollback: failed to release the address: {e}");
            }
        }
        for (link, ip, prefix) in self.displaced.take() {
            if let Err(e) = netlink::add_address(host, link, ip, prefix, true).await {
                log::error!("rollback: failed to restore {ip}/{prefix} (forceAddress): {e}");
            }
        }
    }
}

fn link_mac(links: &IfSock, name: &str) -> Result<String> {
    links
        .mac(name)?
        .ok_or_else(|| Error::Check(format!("link {name} vanished during the ADD")))
}

/// What `configure_links` established.
struct Configured {
    ipres: CniResult,
    gateways: Vec<IpAddr>,
    /// The bridge's MAC, the host end's, then the container end's.
    macs: [String; 3],
}

/// The netlink connection and the lookup socket in the container netns.
struct Container {
    nl: Handle,
    links: IfSock,
}

impl Container {
    fn open(ns: &Netns, rt: &tokio::runtime::Handle) -> Result<Container> {
        let (nl, links) = netlink::connect_in_here(ns, rt, IfSock::open)?;
        Ok(Container { nl, links })
    }
}

/// The spec asks a plugin given a `prevResult` on ADD to pass it on, modified: ours is
/// appended (interface indexes shifted past the previous ones), and our DNS, if any,
/// replaces the previous.
fn chain(prev: CniResult, ours: CniResult) -> CniResult {
    let offset = prev.interfaces.len();
    let mut out = prev;
    out.interfaces.extend(ours.interfaces);
    out.ips.extend(ours.ips.into_iter().map(|i| IpConfig {
        interface: i.interface.map(|n| n + offset),
        ..i
    }));
    out.routes.extend(ours.routes);
    if !ours.dns.is_empty() {
        out.dns = ours.dns;
    }
    out
}

/// Whether `ifname` in the container was the end of a pair some DEL retired a moment ago
/// (its host end down, off the bridge, deletion pending in a detached process) — and is
/// gone now: the ADD of another network that reuses the interface name right after that
/// DEL finishes the deletion instead of failing with 103. Only a pair whose host end is
/// ours by name and whose ends name each other counts.
async fn finish_retired_pair(host: &Handle, ctr: &Container, ifname: &str) -> Result<bool> {
    let Some(inner) = netlink::link_by_name(&ctr.nl, ifname).await? else {
        return Ok(true);
    };
    let Some(peer) = netlink::link_peer_index(&inner) else {
        return Ok(false);
    };
    let Some(outer) = netlink::link_by_index(host, peer).await? else {
        return Ok(false);
    };
    let name = netlink::link_name(&outer).to_string();
    let veths = [&inner, &outer]
        .iter()
        .all(|l| netlink::link_kind(l) == Some(&InfoKind::Veth));
    let pair = veths && netlink::link_peer_index(&outer) == Some(inner.header.index);
    if !(pair && names::is_host_veth(&name) && netlink::is_retired(&outer)) {
        return Ok(false);
    }
    netlink::delete_retired(host, peer, &name).await?;
    Ok(ctr.links.index(ifname)?.is_none())
}

/// The gateway of each address: IPAM's, else (in gateway mode) the subnet's first
/// address, as the reference does; all of them go on the bridge (two range sets of one
/// family have two). Adds the default routes `isDefaultGateway` asks for, via the first
/// gateway of each family, which is also the family's gateway for routes without one.
fn gateways(conf: &NetConf, r: &mut CniResult) -> Vec<IpAddr> {
    let mut gws: Vec<IpAddr> = Vec::new();
    for ip in r.ips.iter_mut() {
        if ip.gateway.is_none() && conf.gateway_mode() {
            ip.gateway =
                conf::ipamconf::next_ip(ip.address.network()).filter(|g| *g != ip.address.ip());
        }
        if let Some(g) = ip.gateway.filter(|g| !gws.contains(g)) {
            gws.push(g);
        }
    }
    if conf.is_default_gateway {
        let firsts = [
            gws.iter().find(|g| g.is_ipv4()),
            gws.iter().find(|g| g.is_ipv6()),
        ];
        for gw in firsts.into_iter().flatten() {
            let dst = if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
            let Ok(dst) = dst.parse::<IpNetwork>() else {
                continue;
            };
            if !r.routes.iter().any(|rt| rt.dst == dst) {
                r.routes.push(Route::new(dst, Some(*gw)));
            }
        }
    }
    gws
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> NetConf {
        let (_, c, _) = NetConf::parse(json.as_bytes()).expect("config");
        c
    }

    fn ipres(addrs: &[(&str, Option<&str>)]) -> CniResult {
        CniResult {
            ips: addrs
                .iter()
                .map(|(a, g)| IpConfig {
                    interface: None,
                    address: a.parse().expect("cidr"),
                    gateway: g.map(|g| g.parse().expect("ip")),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn every_gateway_goes_on_the_bridge_one_default_route_per_family() {
        let c =
            conf(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","isDefaultGateway":true}"#);
        let mut r = ipres(&[("10.0.0.5/24", None), ("10.1.0.5/24", None)]);
        let gws = gateways(&c, &mut r);
        let gws: Vec<String> = gws.iter().map(ToString::to_string).collect();
        assert_eq!(gws, ["10.0.0.1", "10.1.0.1"]);
        assert_eq!(r.routes.len(), 1);
        assert_eq!(
            r.routes[0].gw.map(|g| g.to_string()).as_deref(),
            Some("10.0.0.1")
        );
    }

    #[test]
    fn default_routes_per_family() {
        let c =
            conf(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","isDefaultGateway":true}"#);
        let mut r = ipres(&[
            ("10.0.0.5/24", Some("10.0.0.1")),
            ("fd00::5/64", Some("fd00::1")),
        ]);
        let gws = gateways(&c, &mut r);
        assert_eq!(gws.len(), 2);
        let dsts: Vec<String> = r.routes.iter().map(|r| r.dst.to_string()).collect();
        assert_eq!(dsts, ["0.0.0.0/0", "::/0"]);
    }

    #[test]
    fn gateway_computed_in_gateway_mode_only() {
        let gw = conf(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","isGateway":true}"#);
        let mut r = ipres(&[("10.0.0.5/24", None)]);
        assert_eq!(
            gateways(&gw, &mut r),
            vec!["10.0.0.1".parse::<IpAddr>().expect("ip")]
        );
        assert!(r.routes.is_empty(), "isGateway alone adds no default route");
        let plain = conf(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge"}"#);
        let mut r = ipres(&[("10.0.0.5/24", None)]);
        assert!(gateways(&plain, &mut r).is_empty());
    }

    #[test]
    fn prev_result_is_passed_on_with_ours_appended() {
        let prev = CniResult {
            interfaces: vec![Interface {
                name: "tap0".into(),
                ..Default::default()
            }],
            ips: ipres(&[("192.0.2.5/24", None)]).ips,
            ..Default::default()
        };
        let mut ours = ipres(&[("10.0.0.5/24", Some("10.0.0.1"))]);
        ours.interfaces = vec![
            Interface::default(),
            Interface::default(),
            Interface::default(),
        ];
        ours.ips[0].interface = Some(2);
        let out = chain(prev, ours);
        assert_eq!(out.interfaces.len(), 4);
        assert_eq!(out.interfaces[0].name, "tap0");
        assert_eq!(out.ips.len(), 2);
        assert_eq!(
            out.ips[1].interface,
            Some(3),
            "index shifted past the previous interfaces"
        );
    }

    #[test]
    fn ipam_default_route_is_not_duplicated() {
        let c =
            conf(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","isDefaultGateway":true}"#);
        let mut r = ipres(&[("10.0.0.5/24", Some("10.0.0.1"))]);
        r.routes
            .push(Route::new("0.0.0.0/0".parse().expect("net"), None));
        gateways(&c, &mut r);
        assert_eq!(r.routes.len(), 1);
    }
}
