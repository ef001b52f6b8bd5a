//! vbridge's IPAM: the allocator and crash-safe store behind the `vbridge-ipam` CNI
//! plugin, also called in-process by `vbridge`.
//!
//! Semantics follow the reference `host-local` plugin (config keys, one address per
//! range set, round-robin allocation, gateway skipping, requested addresses) with these
//! differences, all in the direction of safety:
//! - one lock for the whole operation, and multi-file changes are journaled, so a killed
//!   process never leaves a half-reserved attachment (see `store::file`);
//! - O(1) work per ADD/DEL (host-local reads every record on each call);
//! - records carry the boot id, so a full pool can reuse reservations that died with a
//!   previous boot (see `allocator`);
//! - GC and STATUS are implemented; corrupt files are reported, never overwritten;
//! - host-local's own reservations in the same directory are imported once, so the
//!   plugin type can be switched under running containers.
//!
//! Layout: `allocator` (policy) and `walk` (round-robin order) work against the `Store`
//! trait; `store` has the file and in-memory implementations; `ops` holds the verbs;
//! `admin` is the operator's listing.

pub mod admin;
pub mod allocator;
pub mod error;
mod ops;
pub mod store;
pub mod walk;

#[cfg(test)]
mod testutil;

pub use error::Error;
pub use ops::{add, check, del, gc, result, status, store_dir};
