//! STATUS: could an ADD succeed right now? The store must be lockable and writable and
//! every range set must have a free (or reclaimable) address. Any failure is code 50
//! with the underlying reason.

use crate::allocator::{exhausted, find_free, find_stale};
use crate::Error;
use conf::ipamconf::IpamConfig;

pub fn status(cfg: &IpamConfig) -> Result<(), Error> {
    probe(cfg).map_err(|e| match e {
        Error::NotAvailable(_) => e,
        other => Error::NotAvailable(other.to_string()),
    })
}

fn probe(cfg: &IpamConfig) -> Result<(), Error> {
    let store = super::lock(cfg, false)?;
    store.probe_writable()?;
    for set in 0..cfg.range_sets.len() {
        // The stale search reads every record, but only runs on a full set.
        if find_free(cfg, &store, set)?.is_none() && find_stale(cfg, &store, set)?.is_none() {
            return Err(exhausted(cfg, set));
        }
    }
    Ok(())
}
