//! GC: releases everything of this network that belongs to an attachment not in
//! `cni.dev/valid-attachments` (or `cni.dev/attachments`): registered attachments and
//! their host veths, orphan host veths on the bridge (left by a killed ADD), IPAM
//! reservations, and the firewall state once nothing is left. Keeps going on errors.

use super::{load, runtime};
use crate::error::{Error, Result};
use crate::ipam_client::IpamClient;
use crate::state::NetState;
use crate::{names, netlink, network};
use conf::skel::Request;
use conf::Attachment;
use std::collections::HashSet;

pub fn gc(req: &Request) -> Result<()> {
    let conf = load(req)?;
    let valid = conf.gc_valid_attachments().ok_or_else(|| {
        conf::Error::config("GC needs \"cni.dev/valid-attachments\" (the attachments to keep)")
    })?;
    let keep: HashSet<String> = valid
        .iter()
        .map(|a| names::host_veth(&conf.name, &a.container_id, &a.ifname))
        .collect();
    let mut errs = Vec::new();

    let st = NetState::lock(conf.state_dir(), &conf.name)?;
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
    if let Err(e) = delete_veths(&conf.name, &stale, &keep) {
        errs.push(e);
    }
    for a in &stale {
        errs.extend(st.unregister(a).err());
    }
    match IpamClient::new(&conf, req) {
        Ok(ipam) => errs.extend(ipam.gc(&valid).err()),
        Err(e) => errs.push(e),
    }
    match network::remove_now_if_unused(&st, &conf) {
        Ok(true) => {
            if let Some(v) = super::del::vlan_gateway(&conf) {
                let gone = runtime().and_then(|rt| {
                    rt.block_on(async {
                        let h = netlink::connect_host()?;
                        crate::bridge::delete_vlan_gateway(&h, conf.bridge_name(), v, &conf.name)
                            .await
                    })
                });
                errs.extend(gone.err());
            }
        }
        Ok(false) => {}
        Err(e) => errs.push(e),
    }
    Error::from_list(errs)
}

/// Deletes the veths of `stale` plus every link in this network's link group that no valid
/// attachment owns (other networks may share the bridge, one per VLAN: not theirs).
fn delete_veths(network: &str, stale: &[Attachment], keep: &HashSet<String>) -> Result<()> {
    runtime()?.block_on(async {
        let h = netlink::connect_host()?;
        let mut errs = Vec::new();
        for a in stale {
            errs.extend(
                netlink::delete_link(&h, &names::host_veth(network, &a.container_id, &a.ifname))
                    .await
                    .err(),
            );
        }
        // The link group marks this network's host veths, on the bridge or already retired
        // by a DEL whose background deletion did not happen.
        for l in netlink::links_in_group(&h, names::link_group(network)).await? {
            let name = netlink::link_name(&l).to_string();
            if !keep.contains(&name) {
                errs.extend(netlink::delete_link(&h, &name).await.err());
            }
        }
        Error::from_list(errs)
    })
}
