//! DEL: release whatever the attachment holds. Idempotent: DEL may be repeated, may
//! follow a failed ADD, and may come after a reboot wiped the store.

use crate::store::Store;
use crate::Error;
use conf::ipamconf::IpamConfig;
use conf::Attachment;

pub fn del(cfg: &IpamConfig, att: &Attachment) -> Result<(), Error> {
    let Some(mut store) = super::lock_existing(cfg, true)? else {
        return Ok(());
    };
    let released = store.release(att)?;
    if !released.is_empty() {
        let ips: Vec<String> = released.iter().map(ToString::to_string).collect();
        log::info!(
            "network {}: released {} of {}/{}",
            cfg.network,
            ips.join(", "),
            att.container_id,
            att.ifname
        );
    }
    Ok(())
}
