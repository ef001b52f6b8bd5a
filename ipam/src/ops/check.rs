//! CHECK: the store must hold exactly the expected addresses for the attachment, and
//! each of their records must name it.

use crate::store::Store;
use crate::Error;
use conf::ipamconf::IpamConfig;
use conf::Attachment;
use std::net::IpAddr;

pub fn check(cfg: &IpamConfig, att: &Attachment, expected: &[IpAddr]) -> Result<(), Error> {
    match super::lock_existing(cfg, false)? {
        Some(store) => check_in(&store, att, expected),
        None => mismatch(att, expected, &[]),
    }
}

pub(crate) fn check_in<S: Store>(
    store: &S,
    att: &Attachment,
    expected: &[IpAddr],
) -> Result<(), Error> {
    let held = store.addresses(att)?;
    for ip in &held {
        match store.record(*ip)? {
            Some(r) if r.attachment == *att => {}
            other => {
                let owner = other.map_or_else(
                    || "no record".to_string(),
                    |r| {
                        format!(
                            "a record of {}/{}",
                            r.attachment.container_id, r.attachment.ifname
                        )
                    },
                );
                return Err(Error::CheckFailed(format!(
                    "the attachment record of {}/{} lists {ip}, but the store has {owner} for it; DEL and re-ADD \
                     the container",
                    att.container_id, att.ifname
                )));
            }
        }
    }
    mismatch(att, expected, &held)
}

fn mismatch(att: &Attachment, expected: &[IpAddr], held: &[IpAddr]) -> Result<(), Error> {
    let missing: Vec<String> = expected
        .iter()
        .filter(|ip| !held.contains(ip))
        .map(ToString::to_string)
        .collect();
    let extra: Vec<String> = held
        .iter()
        .filter(|ip| !expected.contains(ip))
        .map(ToString::to_string)
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "prevResult lists {} but the store holds no such reservation",
            missing.join(", ")
        ));
    }
    if !extra.is_empty() {
        problems.push(format!(
            "the store holds {} which prevResult does not list",
            extra.join(", ")
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::CheckFailed(format!(
        "container {:?} interface {:?}: {}; DEL and re-ADD the container to resynchronise",
        att.container_id,
        att.ifname,
        problems.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mem::MemStore;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn exact_match_required() {
        let mut st = MemStore::new("b");
        let a = Attachment::new("c1", "eth0");
        st.reserve(&a, &[ip("10.0.0.2"), ip("fd00::2")])
            .expect("reserve");
        check_in(&st, &a, &[ip("fd00::2"), ip("10.0.0.2")]).expect("same set, any order");
        let e = check_in(&st, &a, &[ip("10.0.0.2")]).expect_err("extra");
        assert_eq!(e.code(), conf::ErrorCode::CheckFailed);
        assert!(e.to_string().contains("fd00::2"), "{e}");
        let e = check_in(&st, &a, &[ip("10.0.0.2"), ip("fd00::2"), ip("10.0.0.9")])
            .expect_err("missing");
        assert!(e.to_string().contains("10.0.0.9"), "{e}");
        let e = check_in(&st, &Attachment::new("other", "eth0"), &[ip("10.0.0.2")])
            .expect_err("not ours");
        assert!(e.to_string().contains("10.0.0.2"), "{e}");
    }
}
