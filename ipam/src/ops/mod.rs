//! The library verbs the `plugin` crate calls in-process and the binary calls per CNI
//! verb. Each opens the network's store, takes the lock for the whole operation (one
//! lock across all range sets, unlike host-local's per-set locking), and releases it on
//! return.

mod add;
mod check;
mod del;
mod gc;
mod status;

pub use add::{add, result};
pub use check::check;
pub use del::del;
pub use gc::gc;
pub use status::status;

use crate::store::{FileStore, LockedStore};
use crate::Error;
use conf::ipamconf::IpamConfig;
use std::path::PathBuf;

/// `<dataDir>/<network>`. The name was validated by the CNI layer; it is checked again
/// because it becomes a path and library callers may build configs by hand.
pub fn store_dir(cfg: &IpamConfig) -> Result<PathBuf, Error> {
    if !conf::validate::is_valid_id(&cfg.network) {
        return Err(Error::Conf(conf::Error::config(format!(
            "network name {:?} is invalid: it must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
            cfg.network
        ))));
    }
    Ok(cfg.data_dir.join(&cfg.network))
}

/// The locked store, created if needed (ADD, STATUS).
/// `urgent`: for ADD and DEL, short enough to run at a raised priority (`FileStore::urgent`).
fn lock(cfg: &IpamConfig, urgent: bool) -> Result<LockedStore, Error> {
    let fs = FileStore::open(store_dir(cfg)?);
    if urgent { fs.urgent() } else { fs }.lock()
}

/// The locked store if it exists: DEL, CHECK and GC of a network that never had an ADD
/// (or whose dataDir was on a tmpfs wiped by a reboot) must not create one.
fn lock_existing(cfg: &IpamConfig, urgent: bool) -> Result<Option<LockedStore>, Error> {
    if !FileStore::is_store(&store_dir(cfg)?) {
        return Ok(None);
    }
    lock(cfg, urgent).map(Some)
}
