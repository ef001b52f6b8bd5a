//! Reservation storage: the `Store` trait the allocator works against, and its
//! implementations — the locked on-disk store (`file`) and an in-memory one (`mem`,
//! tests only).
//!
//! Invariants every implementation keeps:
//! - an address is reserved by at most one attachment;
//! - `reserve` and `release` are all-or-nothing: after they return (or after the process
//!   dies inside them and the store is locked again) an attachment holds either all of
//!   its addresses or none;
//! - a record that cannot be parsed is an error (`StoreCorrupt`), never treated as free.
//!
//! Only a value that proves the store is locked implements `Store`, so no code path can
//! mutate without the lock.

pub mod file;
pub mod fsio;
mod journal;
#[cfg(any(test, feature = "testing"))]
pub mod mem;

use crate::Error;
use conf::Attachment;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub use file::{FileStore, LockedStore};

/// This boot's id (`/proc/sys/kernel/random/boot_id`), read once per process: the IPAM
/// store stamps records with it and the plugin stamps its firewall state.
pub fn boot_id() -> Option<&'static str> {
    static ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        Some(id.trim().to_string()).filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// What is known about one reserved address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    #[serde(flatten)]
    pub attachment: Attachment,
    /// Unix seconds of the reservation.
    #[serde(default)]
    pub since: u64,
    /// `/proc/sys/kernel/random/boot_id` when reserved; empty if it was unknown.
    #[serde(default)]
    pub boot: String,
    /// The ifname is a guess: imported from an old host-local record that named only the
    /// container. GC keeps the reservation while any attachment of the container is valid.
    /// Absent unless set, so records stay readable by builds that do not know it.
    #[serde(
        default,
        rename = "ifnameGuessed",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub ifname_guessed: bool,
}

impl Record {
    pub fn new(attachment: Attachment, boot: Option<&str>) -> Record {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Record {
            attachment,
            since,
            boot: boot.unwrap_or_default().to_string(),
            ifname_guessed: false,
        }
    }

    /// True only when both boot ids are known and differ: an unknown id never makes a
    /// reservation reclaimable.
    pub fn from_other_boot(&self, current: Option<&str>) -> bool {
        matches!(current, Some(cur) if !cur.is_empty() && !self.boot.is_empty() && self.boot != cur)
    }
}

/// See `Store::full_stamp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullStamp {
    pub value: String,
    /// Whether the stamp is old enough to be told apart from any later change: a
    /// timestamp-based stamp taken within the file system's timestamp granularity of
    /// the last change could equal the next change's.
    pub settled: bool,
}

/// One entry of a full listing: a readable reservation or the error for an unreadable one.
pub type Listed<T> = Result<T, Error>;

/// What the allocator, CHECK and GC need from storage.
pub trait Store {
    /// Boot id of the running kernel, if known.
    fn current_boot(&self) -> Option<&str>;

    /// Whether `ip` is reserved. This is the allocation hot path: one existence check,
    /// no parsing, independent of how many addresses are reserved.
    fn is_taken(&self, ip: IpAddr) -> Result<bool, Error>;

    /// The reservation of `ip`, parsed.
    fn record(&self, ip: IpAddr) -> Result<Option<Record>, Error>;

    /// The addresses `att` holds (empty when none), looked up directly by attachment.
    fn addresses(&self, att: &Attachment) -> Result<Vec<IpAddr>, Error>;

    /// The record of `att`'s attachment record itself (its boot is that of the ADD that
    /// made it, which may differ from an address record's: see `allocator::reclaimable`).
    /// `None` when `att` has none, or a format-1 one, which carries no record.
    fn attachment_record(&self, att: &Attachment) -> Result<Option<Record>, Error>;

    /// Reserves all of `ips` for `att`, which must hold nothing yet. All or nothing.
    fn reserve(&mut self, att: &Attachment, ips: &[IpAddr]) -> Result<(), Error>;

    /// Releases everything `att` holds and returns it; nothing held is not an error.
    fn release(&mut self, att: &Attachment) -> Result<Vec<IpAddr>, Error>;

    /// The round-robin hint of range set `set`: the address reserved last. A missing or
    /// unreadable hint is `None` (it only decides where the search starts).
    fn cursor(&self, set: usize) -> Option<IpAddr>;

    fn set_cursor(&mut self, set: usize, ip: IpAddr) -> Result<(), Error>;

    /// Every attachment that has an attachment record (GC only: this is a full scan).
    fn attachments(&self) -> Result<Vec<Listed<Attachment>>, Error>;

    /// Every address record (GC, admin: full scan).
    fn reservations(&self) -> Result<Vec<Listed<(IpAddr, Record)>>, Error>;

    /// Removes one address record regardless of attachment records (GC of orphans).
    fn forget_record(&mut self, ip: IpAddr) -> Result<(), Error>;

    /// The state of the reservations as it bears on range set `set`, walked as `key`
    /// describes — taken before a walk, so that any change during it voids what the
    /// walk finds. `None` when it cannot be told (then every call walks).
    fn full_stamp(&self, set: usize, key: &str) -> Option<FullStamp>;

    /// Whether a walk found the set without a free or reclaimable address at `stamp`,
    /// and nothing has changed since. A hint that errs towards `false`.
    fn known_full(&self, stamp: &FullStamp) -> bool;

    /// Remembers that finding. Every release, of any address, forgets it.
    fn mark_full(&mut self, stamp: &FullStamp) -> Result<(), Error>;
}
