//! One-time import of reference `host-local` reservations.
//!
//! host-local keeps its records in the same place — `<dataDir>/<network>/<ip>`, content
//! `<containerID>\r\n<ifname>` (or just `<containerID>` in old versions) — so switching a
//! network's `ipam.type` to vbridge-ipam while containers run would otherwise hand out
//! their addresses again. When a store is created (no `meta.json` yet) those files are
//! imported as reservations with an unknown boot id (never reclaimed automatically;
//! GC or DEL releases them). A bare `<containerID>` is imported as interface `eth0`,
//! marked as a guess so that GC keeps it while the container is valid (see `ops::gc`).
//! They are left in place; switching back is not safe once vbridge-ipam has reserved
//! addresses of its own (host-local never reads `ips/`).
//! `meta.json` is written only after the import, so an import killed half-way simply
//! runs again: creating a record that already names the same attachment is a no-op.
//!
//! Only a new store imports, or one whose import was cut short (see
//! `LockedStore::ensure_meta`): a store that lost its `meta.json` later does not take
//! host-local's leftovers in again. An import that runs again meets only what its
//! earlier attempt made, unless host-local's files changed in between: an address
//! another attachment holds is then not imported (logged), and an attachment with a
//! record of its own keeps it (its imported addresses become records it does not list).
//! A conflict never fails the lock, which would fail every operation on the network.

use super::{encode, fsio, Held, LockedStore, Record};
use crate::Error;
use conf::Attachment;
use std::collections::BTreeMap;
use std::net::IpAddr;

impl LockedStore {
    pub(super) fn import_host_local(&self) -> Result<usize, Error> {
        let dir = &self.fs.dir;
        let names = fsio::list(dir).map_err(|e| Error::io("list", dir, e))?;
        let mut found: BTreeMap<Attachment, Found> = BTreeMap::new();
        for name in names {
            let Ok(ip) = name.parse::<IpAddr>() else {
                continue;
            };
            let path = dir.join(&name);
            let Some(bytes) = fsio::read_opt(&path).map_err(|e| Error::io("read", &path, e))?
            else {
                continue;
            };
            match parse_host_local(&String::from_utf8_lossy(&bytes)) {
                Some((att, guessed)) => {
                    let f = found.entry(att).or_default();
                    f.ips.push(ip);
                    f.ifname_guessed |= guessed;
                }
                None => log::warn!(
                    "not importing host-local record {}: unrecognised content",
                    path.display()
                ),
            }
        }
        let count = found.values().map(|f| f.ips.len()).sum();
        for (att, f) in &found {
            self.import_one(att, f)?;
        }
        if count > 0 {
            log::warn!(
                "imported {count} host-local reservation(s) from {}",
                dir.display()
            );
        }
        Ok(count)
    }

    fn import_one(&self, att: &Attachment, found: &Found) -> Result<(), Error> {
        if self.fs.att_path(att).is_err() {
            log::warn!("not importing host-local records of {att:?}: the name cannot be stored");
            return Ok(());
        }
        let ips = self.importable(att, &found.ips);
        if ips.is_empty() {
            return Ok(());
        }
        let held = Held {
            record: Record {
                ifname_guessed: found.ifname_guessed,
                ..Record::new(att.clone(), None)
            },
            ips: ips.clone(),
        };
        let existing = self.fs.read_attachment(att);
        let tmp_dir = self.fs.tmp_dir();
        let tmp = fsio::write_tmp(&tmp_dir, "import", &encode(&held)?, true)
            .map_err(|e| Error::io("write", &tmp_dir, e))?;
        for ip in &ips {
            self.link_record(&tmp, *ip, att)?;
        }
        match existing {
            Ok(None) => return self.publish(&tmp, att),
            // This import, killed after its commit, running again.
            Ok(Some(f)) if ips.iter().all(|ip| f.ips().contains(ip)) => {}
            // The attachment already has a record that does not list these (host-local's
            // files changed between two attempts of the import): replacing it would hide
            // what it lists. The imported addresses stay reserved as records it does not
            // list, which GC keeps while the attachment is valid.
            _ => log::warn!(
                "host-local addresses {} of {}/{} imported as records its vbridge-ipam attachment record does not list",
                list(&ips),
                att.container_id,
                att.ifname
            ),
        }
        fsio::remove_opt(&tmp).map_err(|e| Error::io("remove", &tmp, e))
    }

    /// The addresses of `ips` no other attachment holds. One another attachment holds
    /// (host-local's files changed between two attempts of the import) stays theirs;
    /// failing the import on it would fail every later lock of the network, as
    /// `meta.json` is only written after a complete import.
    fn importable(&self, att: &Attachment, ips: &[IpAddr]) -> Vec<IpAddr> {
        let mut out = Vec::with_capacity(ips.len());
        for ip in ips {
            let file = self.fs.dir.join(ip.to_string());
            match self.fs.read_record(*ip) {
                Ok(Some(r)) if r.attachment != *att => log::warn!(
                    "not importing host-local record {}: {ip} is held by container {:?} interface {:?}",
                    file.display(),
                    r.attachment.container_id,
                    r.attachment.ifname
                ),
                Ok(_) => out.push(*ip),
                Err(e) => log::warn!(
                    "not importing host-local record {}: the address's record is unreadable ({e})",
                    file.display()
                ),
            }
        }
        out
    }
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// An attachment's host-local records.
#[derive(Default)]
struct Found {
    ips: Vec<IpAddr>,
    /// Some record named only the container (see `parse_host_local`).
    ifname_guessed: bool,
}

/// `<containerID>\r\n<ifname>`; a bare `<containerID>` predates per-interface records
/// and most likely meant the default interface, `eth0` — flagged as a guess, since the
/// runtime may have named it otherwise.
fn parse_host_local(text: &str) -> Option<(Attachment, bool)> {
    let mut lines = text.lines().map(str::trim);
    let id = lines.next().filter(|s| !s.is_empty())?;
    Some(match lines.next().filter(|s| !s.is_empty()) {
        Some(ifname) => (Attachment::new(id, ifname), false),
        None => (Attachment::new(id, "eth0"), true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_local_formats() {
        assert_eq!(
            parse_host_local("abc\r\neth1"),
            Some((Attachment::new("abc", "eth1"), false))
        );
        assert_eq!(
            parse_host_local("abc"),
            Some((Attachment::new("abc", "eth0"), true))
        );
        assert_eq!(parse_host_local(""), None);
    }
}
