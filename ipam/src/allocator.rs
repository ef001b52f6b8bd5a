//! Allocation policy, with host-local semantics, over any `Store`.
//!
//! - One address per range set (a dual-stack network has two sets → one IPv4 + one
//!   IPv6). Range sets never overlap (the config layer rejects it), so choices made for
//!   different sets can never collide.
//! - Within a set, addresses are tried in round-robin order from the set's cursor (see
//!   `walk`), each candidate costing one `Store::is_taken`. A sequential fill therefore
//!   costs one probe per ADD however many addresses are taken.
//! - Requested addresses (`runtimeConfig.ips`, `args.cni.ips`, `CNI_ARGS IP=`) must each
//!   fall inside a range of some set and not be a gateway or excluded (code 102); one
//!   held by another attachment is code 101. A set with a requested address uses it.
//! - Everything is chosen first and then reserved with one all-or-nothing
//!   `Store::reserve`, so a failure leaves nothing allocated.
//! - An attachment that already holds addresses gets those back: a retried ADD is safe.
//!   Held since a previous boot, they are re-reserved under this one (the runtime
//!   brought the container back), so they are no longer reclaimable.
//!
//! # Reboots
//!
//! Every record carries the boot id of the kernel that reserved it. A container's netns
//! does not survive a reboot, but a runtime that was down may never send the DEL, so
//! reservations of a previous boot can be stale. They are reclaimed only as a last
//! resort: when a range set has no free address at all, the first previous-boot
//! reservation in round-robin order is released (logged as a warning) and its address
//! reused. Only what is stale goes: the whole attachment when its own attachment record
//! is the previous boot's and lists the address, else just the address record — its
//! attachment may have been added again since, and what it holds now is live (see
//! `reclaimable`). Reservations whose boot id is unknown are never reclaimed. GC, which
//! has the runtime's authoritative list, releases unlisted attachments regardless of
//! boot.

use crate::store::{Record, Store};
use crate::walk::Walk;
use crate::Error;
use conf::ipamconf::{IpamConfig, Range, RangeSet};
use conf::Attachment;
use std::net::IpAddr;

/// Gives `att` one address per range set (or the addresses it already holds).
pub fn assign<S: Store>(
    cfg: &IpamConfig,
    store: &mut S,
    att: &Attachment,
) -> Result<Vec<IpAddr>, Error> {
    let held = store.addresses(att)?;
    if !held.is_empty() {
        if let Some(records) = held_records(store, att, &held)? {
            let held = reuse(cfg, att, held)?;
            let boot = store.current_boot();
            if records.iter().any(|r| r.from_other_boot(boot)) {
                // The runtime re-ADDs a container of a previous boot (Podman keeps its ids
                // across reboots): the reservation is live again and must stop looking
                // reclaimable. Re-reserved under this boot, within the same lock; a crash
                // in between leaves the addresses free and the ADD unanswered.
                store.release(att)?;
                if let Err(e) = store.reserve(att, &held) {
                    log::error!(
                        "container {:?} interface {:?}: released {} to re-reserve them under this boot, \
                         and the re-reservation failed ({e}); a retried ADD allocates afresh",
                        att.container_id,
                        att.ifname,
                        list(&held)
                    );
                    return Err(e);
                }
            }
            return Ok(held);
        }
        // Its addresses were reclaimed after a reboot and now belong to others: drop the
        // stale index (release removes only records naming `att`) and allocate afresh.
        log::warn!(
            "container {:?} interface {:?}: addresses {} were reclaimed; allocating new ones",
            att.container_id,
            att.ifname,
            list(&held)
        );
        store.release(att)?;
    }
    let wanted = requested_per_set(cfg)?;
    let mut picks = Vec::with_capacity(cfg.range_sets.len());
    for (set, want) in wanted.into_iter().enumerate() {
        let ip = match want {
            Some(ip) => claim_requested(&mut *store, att, ip)?,
            None => pick(cfg, store, set)?,
        };
        picks.push(ip);
    }
    store.reserve(att, &picks)?;
    for (set, ip) in picks.iter().enumerate() {
        // The cursor is a hint: failing to move it costs fairness, never correctness.
        if let Err(e) = store.set_cursor(set, *ip) {
            log::warn!("could not update the round-robin hint of range set {set}: {e}");
        }
    }
    Ok(picks)
}

/// The records of the addresses the attachment index lists, if every one is still
/// recorded for `att`. Reads each record, so a corrupt one fails the retry (107) instead
/// of being handed out.
fn held_records<S: Store>(
    store: &S,
    att: &Attachment,
    held: &[IpAddr],
) -> Result<Option<Vec<Record>>, Error> {
    let mut records = Vec::with_capacity(held.len());
    for ip in held {
        match store.record(*ip)? {
            Some(r) if r.attachment == *att => records.push(r),
            _ => return Ok(None),
        }
    }
    Ok(Some(records))
}

/// A retried ADD: hand back what is held, if it still fits the config and the request.
fn reuse(cfg: &IpamConfig, att: &Attachment, held: Vec<IpAddr>) -> Result<Vec<IpAddr>, Error> {
    if let Some(ip) = held.iter().find(|ip| range_of(cfg, **ip).is_none()) {
        return Err(Error::AddressOutOfRange(format!(
            "container {:?} interface {:?} holds {ip}, which is outside the configured ranges (did ipam.ranges \
             change?); DEL the attachment and ADD it again",
            att.container_id, att.ifname
        )));
    }
    if cfg.requested.iter().any(|r| !held.contains(r)) {
        return Err(Error::AlreadyHolds {
            attachment: att.clone(),
            held: list(&held),
            requested: list(&cfg.requested),
        });
    }
    Ok(held)
}

/// The range containing `ip`, if any.
pub fn range_of(cfg: &IpamConfig, ip: IpAddr) -> Option<&Range> {
    cfg.range_sets.iter().flatten().find(|r| r.contains(ip))
}

/// For each range set, the requested address that falls in it, validated.
pub fn requested_per_set(cfg: &IpamConfig) -> Result<Vec<Option<IpAddr>>, Error> {
    let mut wanted: Vec<Option<IpAddr>> = vec![None; cfg.range_sets.len()];
    for &ip in &cfg.requested {
        let set = validate_requested(cfg, ip)?;
        match wanted[set] {
            Some(prev) if prev != ip => {
                return Err(Error::AddressOutOfRange(format!(
                    "requested addresses {prev} and {ip} both fall in range set {set} ({}); request at most one \
                     address per range set",
                    label(&cfg.range_sets[set])
                )))
            }
            _ => wanted[set] = Some(ip),
        }
    }
    Ok(wanted)
}

fn validate_requested(cfg: &IpamConfig, ip: IpAddr) -> Result<usize, Error> {
    let Some(set) = cfg
        .range_sets
        .iter()
        .position(|s| s.iter().any(|r| r.contains(ip)))
    else {
        let all: Vec<String> = cfg.range_sets.iter().map(label).collect();
        return Err(Error::AddressOutOfRange(format!(
            "requested address {ip} is in no configured range ({}); request an address inside ipam.ranges",
            all.join("; ")
        )));
    };
    if cfg.is_gateway(ip) {
        return Err(Error::AddressOutOfRange(format!(
            "requested address {ip} is a gateway address; request another address"
        )));
    }
    if let Some(net) = cfg.exclude.iter().find(|n| n.contains(ip)) {
        return Err(Error::AddressOutOfRange(format!(
            "requested address {ip} is excluded by ipam.exclude {net}; request another address"
        )));
    }
    Ok(set)
}

fn claim_requested<S: Store>(store: &mut S, att: &Attachment, ip: IpAddr) -> Result<IpAddr, Error> {
    match store.record(ip)? {
        None => Ok(ip),
        // A record of this very attachment that its attachment record does not list (an
        // import or a power loss cut it short): dropped, so the reservation made next
        // carries this boot (kept, a full pool could reclaim a live address).
        Some(r) if r.attachment == *att => {
            store.forget_record(ip)?;
            Ok(ip)
        }
        Some(r) => Err(Error::AddressTaken {
            ip,
            holder: r.attachment,
        }),
    }
}

/// A free address of range set `set`, reclaiming a previous boot's reservation only if
/// the set is otherwise full.
pub fn pick<S: Store>(cfg: &IpamConfig, store: &mut S, set: usize) -> Result<IpAddr, Error> {
    match room(cfg, store, set)? {
        Room::Free(ip) => Ok(ip),
        Room::Stale(ip, rec, how) => {
            reclaim(store, ip, &rec, how)?;
            Ok(ip)
        }
        Room::Full => Err(exhausted(cfg, set)),
    }
}

pub fn exhausted(cfg: &IpamConfig, set: usize) -> Error {
    Error::PoolExhausted {
        network: cfg.network.clone(),
        set,
        ranges: label(&cfg.range_sets[set]),
    }
}

/// What range set `set` has to give.
#[derive(Debug)]
pub enum Room {
    Free(IpAddr),
    /// A previous boot's reservation, the set having no free address.
    Stale(IpAddr, Record, Reclaim),
    Full,
}

/// How much of a stale reservation goes (see `reclaimable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reclaim {
    /// The attachment and everything it lists: all of it is the previous boot's.
    Attachment,
    /// Only the address record: its attachment does not list it (anymore).
    Record,
}

/// The first free address of range set `set` in round-robin order, else the first
/// previous-boot reservation. Finding the set full takes a walk of the whole set (and a
/// read of every record); the store remembers the finding until something is released,
/// so that every further ADD or STATUS on an exhausted pool — a runtime retrying pods
/// keeps sending them — costs one probe instead of that walk under the lock.
pub fn room<S: Store>(cfg: &IpamConfig, store: &mut S, set: usize) -> Result<Room, Error> {
    let mut walk = Walk::after(&cfg.range_sets, set, &cfg.exclude, store.cursor(set));
    // After a sequential fill the first candidate is free: no look at the marker then.
    if let Some(first) = walk.next() {
        if !store.is_taken(first)? {
            return Ok(Room::Free(first));
        }
    }
    let stamp = store.full_stamp(set, &walk_key(cfg, set));
    if stamp.as_ref().is_some_and(|s| store.known_full(s)) {
        return Ok(Room::Full);
    }
    for ip in walk {
        if !store.is_taken(ip)? {
            return Ok(Room::Free(ip));
        }
    }
    if let Some((ip, rec, how)) = find_stale(cfg, store, set)? {
        return Ok(Room::Stale(ip, rec, how));
    }
    // Only a hint: without it the next call walks again.
    if let Some(s) = stamp.filter(|s| s.settled) {
        if let Err(e) = store.mark_full(&s) {
            log::warn!("could not remember that range set {set} is full: {e}");
        }
    }
    Ok(Room::Full)
}

/// Identifies what a walk of range set `set` covers — its ranges, the gateways of every
/// set (the walk skips them all), the exclusions — so that a full set found under one
/// config says nothing about another (a widened range, a dropped exclusion). Stable
/// across builds (`conf::hash`).
pub fn walk_key(cfg: &IpamConfig, set: usize) -> String {
    let ends = cfg.range_sets[set]
        .iter()
        .flat_map(|r| [r.start.to_string(), r.end.to_string()]);
    let gateways = (cfg.range_sets.iter().flatten())
        .map(|r| r.gateway.map(|g| g.to_string()).unwrap_or_default());
    let parts: Vec<String> = ends
        .chain(["gateways".to_string()])
        .chain(gateways)
        .chain(["exclude".to_string()])
        .chain(cfg.exclude.iter().map(ToString::to_string))
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    format!("{:016x}", conf::hash::fnv1a(&parts))
}

/// The first reclaimable reservation from a previous boot in round-robin order. Reads
/// every record of the set: only ever called when the set is full.
fn find_stale<S: Store>(
    cfg: &IpamConfig,
    store: &S,
    set: usize,
) -> Result<Option<(IpAddr, Record, Reclaim)>, Error> {
    let Some(boot) = store.current_boot() else {
        return Ok(None);
    };
    for ip in Walk::after(&cfg.range_sets, set, &cfg.exclude, store.cursor(set)) {
        let Some(rec) = store.record(ip)?.filter(|r| r.from_other_boot(Some(boot))) else {
            continue;
        };
        if let Some(how) = reclaimable(store, ip, &rec)? {
            return Ok(Some((ip, rec, how)));
        }
    }
    Ok(None)
}

/// What of a previous boot's record of `ip` is stale. The record's boot alone does not
/// say: a DEL cut short by a power loss can leave the record behind while its attachment
/// is added again this boot with another address, and releasing the attachment would
/// free that live address for a second container. So the attachment goes only if its
/// own record is a previous boot's and lists `ip`; if it lists `ip` under this (or an
/// unknown) boot, `ip` is live and not reclaimable at all.
fn reclaimable<S: Store>(store: &S, ip: IpAddr, rec: &Record) -> Result<Option<Reclaim>, Error> {
    if !store.addresses(&rec.attachment)?.contains(&ip) {
        return Ok(Some(Reclaim::Record));
    }
    match store.attachment_record(&rec.attachment)? {
        Some(own) if !own.from_other_boot(store.current_boot()) => Ok(None),
        // A format-1 attachment record has no boot; the address records written with it
        // speak for it.
        _ => Ok(Some(Reclaim::Attachment)),
    }
}

fn reclaim<S: Store>(store: &mut S, ip: IpAddr, rec: &Record, how: Reclaim) -> Result<(), Error> {
    log::warn!(
        "range full: reclaiming {ip} from container {:?} interface {:?}, reserved during previous boot {} \
         (its network namespace died with that boot){}",
        rec.attachment.container_id,
        rec.attachment.ifname,
        rec.boot,
        match how {
            Reclaim::Attachment => "",
            Reclaim::Record => "; the attachment no longer lists it, so it keeps what it holds",
        }
    );
    if how == Reclaim::Attachment {
        store.release(&rec.attachment)?;
    }
    // A record its attachment record does not list survives `release`: it goes alone.
    if store.is_taken(ip)? {
        store.forget_record(ip)?;
    }
    Ok(())
}

/// `10.0.0.2-10.0.0.254, 10.1.0.2-10.1.0.254`, for messages.
pub fn label(set: &RangeSet) -> String {
    set.iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
