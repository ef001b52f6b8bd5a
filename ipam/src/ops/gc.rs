//! GC: release every reservation whose attachment the runtime does not list as valid.
//!
//! GC is the one verb that scans: first the attachment records (each invalid attachment
//! is released with the same journaled release as DEL), then the address records, which
//! catches orphans whose attachment record is gone. It keeps going past errors and
//! reports all of them at the end; an attachment whose release failed keeps its address
//! records so the two never disagree more than they already did.
//!
//! One exception to "unlisted means released": a reservation imported from an old
//! host-local record that named only the container got the ifname `eth0` as a guess
//! (`Record::ifname_guessed`); it is kept while the runtime lists any attachment of that
//! container, since the guess may be that attachment under another name.

use crate::store::{Record, Store};
use crate::Error;
use conf::ipamconf::IpamConfig;
use conf::Attachment;
use std::collections::{BTreeSet, HashSet};

pub fn gc(cfg: &IpamConfig, valid: &[Attachment]) -> Result<Vec<Attachment>, Error> {
    let Some(mut store) = super::lock_existing(cfg, false)? else {
        return Ok(Vec::new());
    };
    if let Err(e) = store.clean_tmp() {
        log::warn!("GC: {e}");
    }
    collect(&mut store, valid)
}

pub(crate) fn collect<S: Store>(
    store: &mut S,
    valid: &[Attachment],
) -> Result<Vec<Attachment>, Error> {
    let valid = Valid::new(valid);
    let mut released = BTreeSet::new();
    // Attachments whose release failed or that are kept as guesses: their records stay.
    let mut kept = HashSet::new();
    let mut errors = Vec::new();
    match store.attachments() {
        Ok(list) => {
            for att in list {
                match att {
                    Ok(a) if valid.exact.contains(&a) => {}
                    Ok(a) => match sweep(store, &valid, &a) {
                        Ok(true) => {
                            released.insert(a);
                        }
                        Ok(false) => {
                            kept.insert(a);
                        }
                        Err(e) => {
                            kept.insert(a);
                            errors.push(e);
                        }
                    },
                    Err(e) => errors.push(e),
                }
            }
        }
        Err(e) => errors.push(e),
    }
    match store.reservations() {
        Ok(list) => {
            for rec in list {
                match rec {
                    Ok((_, r)) if valid.keeps(&r) || kept.contains(&r.attachment) => {}
                    Ok((ip, r)) => match store.forget_record(ip) {
                        Ok(()) => {
                            log::warn!(
                                "GC: released orphan record {ip} of {}/{}",
                                r.attachment.container_id,
                                r.attachment.ifname
                            );
                            released.insert(r.attachment);
                        }
                        Err(e) => errors.push(e),
                    },
                    Err(e) => errors.push(e),
                }
            }
        }
        Err(e) => errors.push(e),
    }
    for a in &released {
        log::info!("GC: released {}/{}", a.container_id, a.ifname);
    }
    if errors.is_empty() {
        Ok(released.into_iter().collect())
    } else {
        Err(Error::Gc {
            released: released.len(),
            errors,
        })
    }
}

/// Releases unlisted `att` unless it is kept as a guess; whether it was released.
fn sweep<S: Store>(store: &mut S, valid: &Valid<'_>, att: &Attachment) -> Result<bool, Error> {
    if valid.keeps_guess(store, att)? {
        return Ok(false);
    }
    store.release(att)?;
    Ok(true)
}

/// The runtime's list of valid attachments.
struct Valid<'a> {
    exact: HashSet<&'a Attachment>,
    containers: HashSet<&'a str>,
}

impl<'a> Valid<'a> {
    fn new(valid: &'a [Attachment]) -> Valid<'a> {
        Valid {
            exact: valid.iter().collect(),
            containers: valid.iter().map(|a| a.container_id.as_str()).collect(),
        }
    }

    /// A record whose ifname was guessed at import may be the valid attachment of its
    /// container under another name: kept while the container has any.
    fn keeps(&self, r: &Record) -> bool {
        self.exact.contains(&r.attachment)
            || (r.ifname_guessed && self.containers.contains(r.attachment.container_id.as_str()))
    }

    /// Whether unlisted `att` is kept as a guess. Reads its record only when its container
    /// has a valid attachment.
    fn keeps_guess<S: Store>(&self, store: &S, att: &Attachment) -> Result<bool, Error> {
        if !self.containers.contains(att.container_id.as_str()) {
            return Ok(false);
        }
        // Unlisted, so only a guess can keep it.
        Ok(store
            .attachment_record(att)?
            .is_some_and(|r| r.ifname_guessed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mem::MemStore;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn keeps_exactly_the_listed() {
        let mut st = MemStore::new("b");
        let (a, b, c) = (
            Attachment::new("a", "eth0"),
            Attachment::new("b", "eth0"),
            Attachment::new("a", "eth1"),
        );
        st.reserve(&a, &[ip("10.0.0.2")]).expect("a");
        st.reserve(&b, &[ip("10.0.0.3")]).expect("b");
        st.reserve(&c, &[ip("10.0.0.4")]).expect("c");
        st.plant_orphan(
            ip("10.0.0.9"),
            Record::new(Attachment::new("z", "eth0"), Some("b")),
        );
        let released = collect(&mut st, std::slice::from_ref(&a)).expect("gc");
        assert_eq!(
            released,
            vec![c.clone(), b.clone(), Attachment::new("z", "eth0")]
        );
        assert_eq!(st.addresses(&a).expect("a"), vec![ip("10.0.0.2")]);
        assert_eq!(st.len(), 1);
        assert!(collect(&mut st, &[a]).expect("gc again").is_empty());
        assert_eq!(
            collect(&mut st, &[])
                .expect("empty list means none valid")
                .len(),
            1
        );
        assert!(st.is_empty());
    }

    #[test]
    fn a_guessed_ifname_is_kept_while_its_container_is_valid() {
        let mut st = MemStore::new("b");
        let guess = Record {
            ifname_guessed: true,
            ..Record::new(Attachment::new("old", "eth0"), None)
        };
        st.plant_orphan(ip("10.0.0.9"), guess);
        let net1 = Attachment::new("old", "net1");
        assert!(collect(&mut st, std::slice::from_ref(&net1))
            .expect("gc")
            .is_empty());
        assert_eq!(st.len(), 1);
        collect(&mut st, &[Attachment::new("other", "net1")]).expect("gc");
        assert!(st.is_empty(), "released once the container is gone");
    }
}
