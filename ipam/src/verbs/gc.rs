//! GC: release every attachment the runtime does not list.

use conf::skel::Request;
use ipam::Error;

pub fn run(req: &Request) -> Result<(), Error> {
    let (conf, cfg) = super::load(req)?;
    let valid = conf.gc_keep();
    let released = ipam::gc(&cfg, &valid)?;
    log::info!(
        "GC of network {}: released {} attachment(s)",
        cfg.network,
        released.len()
    );
    Ok(())
}
