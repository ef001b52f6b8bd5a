//! DEL: best effort and idempotent. Everything is found by the attachment's key, never
//! by reading the container netns, so DEL works with the netns gone or `CNI_NETNS` empty,
//! twice in a row, or after a failed ADD. Every step runs; failures are reported together.

use super::{load, runtime};
use crate::error::{Error, Result};
use crate::ipam_client::IpamClient;
use crate::state::NetState;
use crate::{bridge, names, netlink, network};
use conf::skel::Request;

pub fn del(req: &Request) -> Result<()> {
    let mut laps = crate::timing::Laps::start("DEL");
    let conf = load(req)?;
    let att = req.args.attachment();
    let host_veth = names::host_veth(&conf.name, &att.container_id, &att.ifname);
    let mut errs = Vec::new();
    let rt = runtime()?;
    rt.block_on(async {
        let h = match netlink::connect_host() {
            Ok(h) => Some(h),
            Err(e) => {
                errs.push(e);
                None
            }
        };
        if let Some(h) = &h {
            errs.extend(retire_veth(h, &host_veth, &conf.name).await.err());
        }
        laps.lap("veth");
        match IpamClient::new(&conf, req) {
            Ok(ipam) => errs.extend(ipam.del(&att).err()),
            Err(e) => errs.push(e),
        }
        laps.lap("ipam");
        let last = NetState::lock(conf.state_dir(), &conf.name).and_then(|st| {
            let last = network::detach(&st, &conf, &att)?;
            Ok((st, last))
        });
        match last {
            Ok((_st, true)) => {
                if let (Some(h), Some(v)) = (&h, vlan_gateway(&conf)) {
                    errs.extend(
                        bridge::delete_vlan_gateway(h, conf.bridge_name(), v, &conf.name)
                            .await
                            .err(),
                    );
                }
            }
            Ok((_, false)) => {}
            Err(e) => errs.push(e),
        }
        laps.lap("state");
    });
    for e in &errs {
        log::error!("DEL {}/{}: {e}", att.container_id, att.ifname);
    }
    Error::from_list(errs)
}

/// Takes the host veth off the bridge at once and leaves its deletion, which waits
/// 10–20 ms on the kernel's RCU, to a detached `vbridge __unlink` (deleting the host end
/// removes the container end too; so does the runtime deleting the netns). If that
/// process never runs, GC finds the retired link by its link group.
async fn retire_veth(h: &rtnetlink::Handle, name: &str, network: &str) -> Result<()> {
    let Some(l) = netlink::link_by_name(h, name).await? else {
        return Ok(());
    };
    if netlink::link_group(&l) != Some(names::link_group(network)) {
        log::warn!("host link {name} is not a veth of network {network:?}: left alone");
        return Ok(());
    }
    let index = l.header.index;
    netlink::retire(h, index).await?;
    if spawn_unlink(index, name).is_err() {
        // Could not hand it off: delete it here, just slower.
        return netlink::delete_retired(h, index, name).await;
    }
    Ok(())
}

fn spawn_unlink(index: u32, name: &str) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    // No stdio: a runtime reading our stdout must see EOF when we exit. Spawned from the
    // thread in the host netns, which the child inherits.
    Command::new("/proc/self/exe")
        .args(["__unlink", &index.to_string(), name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(|_| ())
}

/// `vbridge __unlink INDEX NAME`: the deferred half of DEL.
pub fn unlink(index: u32, name: &str) -> Result<()> {
    runtime()?.block_on(async {
        let h = netlink::connect_host()?;
        netlink::delete_retired(&h, index, name).await
    })
}

/// The VID whose gateway link this network owns, if any.
pub(crate) fn vlan_gateway(conf: &conf::netconf::NetConf) -> Option<u16> {
    conf.vlan
        .filter(|v| *v != 0 && conf.gateway_mode())
        .and_then(|v| u16::try_from(v).ok())
}
