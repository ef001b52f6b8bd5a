//! GC: release every reservation whose attachment the runtime does not list as valid.
//!
//! GC is the one verb that scans: first the attachment records (each invalid attachment
//! is released with the same journaled release as DEL), then the address records, which
//! catches orphans whose attachment record is gone. It keeps going past errors and
//! reports all of them at the end; an attachment whose release failed keeps its address
//! records so the two never disagree more than they already did.

use crate::store::Store;
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
    let valid: HashSet<&Attachment> = valid.iter().collect();
    let mut released = BTreeSet::new();
    let mut failed = HashSet::new();
    let mut errors = Vec::new();
    match store.attachments() {
        Ok(list) => {
            for att in list {
                match att {
                    Ok(a) if valid.contains(&a) => {}
                    Ok(a) => match store.release(&a) {
                        Ok(_) => {
                            released.insert(a);
                        }
                        Err(e) => {
                            failed.insert(a);
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
                    Ok((_, r))
                        if valid.contains(&r.attachment) || failed.contains(&r.attachment) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mem::MemStore;
    use crate::store::Record;
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
}
