//! DEL: best effort and idempotent. Everything is found by the attachment's key, never
//! by reading the container netns, so DEL works with the netns gone or `CNI_NETNS` empty,
//! twice in a row, or after a failed ADD. Every step runs; failures are reported together.

use super::{load, runtime};
use crate::error::{Error, Result};
use crate::ipam_client::IpamClient;
use crate::{names, netlink, network};
use conf::skel::Request;

pub fn del(req: &Request) -> Result<()> {
    let conf = load(req)?;
    let att = req.args.attachment();
    let mut errs = Vec::new();

    let host_veth = names::host_veth(&conf.name, &att.container_id, &att.ifname);
    // Deleting the host end removes the container end with it.
    let link = runtime().and_then(|rt| {
        rt.block_on(async {
            let h = netlink::connect_host()?;
            netlink::delete_link(&h, &host_veth).await
        })
    });
    if let Err(e) = link {
        errs.push(e);
    }
    match IpamClient::new(&conf, req) {
        Ok(ipam) => errs.extend(ipam.del(&att).err()),
        Err(e) => errs.push(e),
    }
    if let Err(e) = network::detach(&conf, &att) {
        errs.push(e);
    }
    for e in &errs {
        log::error!("DEL {}/{}: {e}", att.container_id, att.ifname);
    }
    Error::from_list(errs)
}
