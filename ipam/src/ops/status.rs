//! STATUS: could an ADD succeed right now? The store must be lockable and writable and
//! every range set must have a free (or reclaimable) address. Any failure is code 50
//! with the underlying reason.

use crate::allocator::{exhausted, room, Room};
use crate::Error;
use conf::ipamconf::IpamConfig;

pub fn status(cfg: &IpamConfig) -> Result<(), Error> {
    // A config an ADD would refuse is that error (7), not "unavailable".
    cfg.validate_for_status()?;
    cfg.dns()?;
    probe(cfg).map_err(|e| match e {
        Error::NotAvailable(_) => e,
        other => Error::NotAvailable(other.to_string()),
    })
}

fn probe(cfg: &IpamConfig) -> Result<(), Error> {
    let mut store = super::lock(cfg, false)?;
    store.probe_writable()?;
    for set in 0..cfg.range_sets.len() {
        if let Room::Full = room(cfg, &mut store, set)? {
            return Err(exhausted(cfg, set));
        }
    }
    Ok(())
}
