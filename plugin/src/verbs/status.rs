//! STATUS: ready when an ADD could succeed — IPAM can allocate, the state dir is
//! writable, and nftables is usable if the config needs it.

use super::load;
use crate::error::{Error, Result};
use crate::ipam_client::IpamClient;
use crate::state::NetState;
use conf::skel::Request;
use conf::{CniError, ErrorCode};

pub fn status(req: &Request) -> Result<()> {
    let conf = load(req)?;
    let not_available =
        |what: String| Error::Delegate(CniError::new(ErrorCode::NotAvailable, what));
    NetState::lock(conf.state_dir(), &conf.name)
        .map_err(|e| not_available(format!("state dir {} is not usable: {e}", conf.state_dir())))?;
    IpamClient::new(&conf, req)?.status()?;
    if conf.ip_masq || conf.isolate {
        crate::firewall::available()?;
    }
    Ok(())
}
