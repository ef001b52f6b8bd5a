//! GC: releases everything of this network that belongs to an attachment not in
//! `cni.dev/valid-attachments` (or `cni.dev/attachments`): registered attachments and
//! their host veths, orphan host veths on the bridge (left by a killed ADD), IPAM
//! reservations, and the firewall state once nothing is left. Keeps going on errors.

use super::{load, runtime};
use crate::error::{Error, Result};
use crate::ipam_client::IpamClient;
use crate::state::NetState;
use crate::{names, netlink, network};
use conf::netconf::NetConf;
use conf::skel::Request;
use conf::Attachment;
use rtnetlink::packet_route::link::InfoKind;
use std::collections::HashSet;

pub fn gc(req: &Request) -> Result<()> {
    let conf = load(req)?;
    let valid = conf.gc_keep();
    let mut errs = Vec::new();
    // The IPAM has its own store and lock: its GC runs even when this network's state
    // lock cannot be had.
    let retired = match NetState::lock(conf.state_dir(), &conf.name) {
        Ok(st) => {
            let retired = gc_attachments(&st, &conf, &valid, &mut errs);
            gc_ipam(&conf, req, &valid, &mut errs);
            gc_network(&st, &conf, &mut errs);
            retired
        }
        Err(e) => {
            errs.push(e);
            gc_ipam(&conf, req, &valid, &mut errs);
            Vec::new()
        }
    };
    // After the lock: deleting a link waits 10-20 ms in the kernel, which after a runtime
    // crash, times hundreds of links, would keep every ADD and DEL of the network waiting
    // past their lock timeout. Under the lock they were only retired (down and off the
    // bridge, well under a millisecond each).
    errs.extend(delete_retired(&retired).err());
    Error::from_list(errs)
}

/// Unregisters the attachments `valid` does not list and retires their host veths (and
/// any other host veth of this network no valid attachment owns); returns the retired
/// links. The caller holds the network's lock.
fn gc_attachments(
    st: &NetState,
    conf: &NetConf,
    valid: &[Attachment],
    errs: &mut Vec<Error>,
) -> Vec<(u32, String)> {
    errs.extend(st.clean_tmp().err());
    let stale: Vec<Attachment> = match st.list() {
        Ok(l) => l
            .into_iter()
            .map(|(a, _)| a)
            .filter(|a| !valid.contains(a))
            .collect(),
        Err(e) => {
            errs.push(e);
            vec![]
        }
    };
    let keep: HashSet<String> = valid
        .iter()
        .map(|a| names::host_veth(&conf.name, &a.container_id, &a.ifname))
        .collect();
    let retired = match retire_veths(&conf.name, &stale, &keep) {
        Ok(r) => r,
        Err(e) => {
            errs.push(e);
            Vec::new()
        }
    };
    for a in &stale {
        errs.extend(st.unregister(a).err());
    }
    retired
}

fn gc_ipam(conf: &NetConf, req: &Request, valid: &[Attachment], errs: &mut Vec<Error>) {
    match IpamClient::new(conf, req) {
        Ok(ipam) => errs.extend(ipam.gc(valid).err()),
        Err(e) => errs.push(e),
    }
}

/// The network's firewall and VLAN gateway, once it has no attachment left; each removed
/// even if the other fails. The caller holds the network's lock.
fn gc_network(st: &NetState, conf: &NetConf, errs: &mut Vec<Error>) {
    let unused = match network::remove_now_if_unused(st, conf) {
        Ok(unused) => unused,
        Err(e) => {
            errs.push(e);
            st.is_empty().unwrap_or(false)
        }
    };
    if let (true, Some(v)) = (unused, super::del::vlan_gateway(conf)) {
        let gone = runtime().and_then(|rt| {
            rt.block_on(async {
                let h = netlink::connect_host()?;
                crate::bridge::delete_vlan_gateway(&h, conf.bridge_name(), v, &conf.name).await
            })
        });
        errs.extend(gone.err());
    }
}

/// Retires the veths of `stale` plus every host veth in this network's link group that no
/// valid attachment owns (other networks may share the bridge, one per VLAN: not theirs),
/// and returns them (index, name) for `delete_retired`.
fn retire_veths(
    network: &str,
    stale: &[Attachment],
    keep: &HashSet<String>,
) -> Result<Vec<(u32, String)>> {
    runtime()?.block_on(async {
        let h = netlink::connect_host()?;
        let mut errs = Vec::new();
        let mut doomed: Vec<(u32, String)> = Vec::new();
        for a in stale {
            let name = names::host_veth(network, &a.container_id, &a.ifname);
            match netlink::link_by_name(&h, &name).await {
                Ok(Some(l)) => doomed.push((l.header.index, name)),
                Ok(None) => {}
                Err(e) => errs.push(e),
            }
        }
        // The link group marks this network's host veths, on the bridge or already retired
        // by a DEL whose background deletion did not happen. The group is a 32-bit hash:
        // only links that also look like our host veths are taken.
        match netlink::links_in_group(&h, names::link_group(network)).await {
            Ok(links) => {
                for l in links {
                    let name = netlink::link_name(&l).to_string();
                    if !keep.contains(&name)
                        && names::is_host_veth(&name)
                        && netlink::link_kind(&l) == Some(&InfoKind::Veth)
                        && !doomed.iter().any(|(i, _)| *i == l.header.index)
                    {
                        doomed.push((l.header.index, name));
                    }
                }
            }
            Err(e) => errs.push(e),
        }
        for (index, _) in &doomed {
            errs.extend(netlink::retire(&h, *index).await.err());
        }
        match Error::from_list(errs) {
            Ok(()) => Ok(doomed),
            Err(e) if doomed.is_empty() => Err(e),
            Err(e) => {
                // Keep going: what could be retired is still deleted.
                log::error!("GC: {e}");
                Ok(doomed)
            }
        }
    })
}

/// Deletes links `retire_veths` took out of service, each only if it is still that
/// retired link (a new ADD may have reused a name meanwhile).
fn delete_retired(links: &[(u32, String)]) -> Result<()> {
    if links.is_empty() {
        return Ok(());
    }
    runtime()?.block_on(async {
        let h = netlink::connect_host()?;
        let mut errs = Vec::new();
        for (index, name) in links {
            errs.extend(netlink::delete_retired(&h, *index, name).await.err());
        }
        Error::from_list(errs)
    })
}
