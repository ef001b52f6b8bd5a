//! STATUS: ready when an ADD could succeed — IPAM can allocate, the state dir is
//! writable, and nftables is usable if the config needs it.

use super::load;
use crate::error::{Error, Result};
use crate::ipam_client::IpamClient;
use crate::state::NetState;
use conf::skel::Request;

pub fn status(req: &Request) -> Result<()> {
    let conf = load(req)?;
    super::addable(&conf)?;
    NetState::lock(conf.state_dir(), &conf.name).map_err(|e| {
        Error::NotAvailable(format!("state dir {} is not usable: {e}", conf.state_dir()))
    })?;
    IpamClient::new(&conf, req)?.status()?;
    if conf.ip_masq || conf.isolate {
        crate::firewall::available()?;
    }
    Ok(())
}
