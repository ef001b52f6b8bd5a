//! One-time import of reference `host-local` reservations.
//!
//! host-local keeps its records in the same place — `<dataDir>/<network>/<ip>`, content
//! `<containerID>\r\n<ifname>` (or just `<containerID>` in old versions) — so switching a
//! network's `ipam.type` to vbridge-ipam while containers run would otherwise hand out
//! their addresses again. When a store is created (no `meta.json` yet) those files are
//! imported as reservations with an unknown boot id (never reclaimed automatically;
//! GC or DEL releases them). They are left in place; switching back is not safe once
//! vbridge-ipam has reserved addresses of its own (host-local never reads `ips/`).
//! `meta.json` is written only after the import, so an import killed half-way simply
//! runs again: creating a record that already names the same attachment is a no-op.

use super::{encode, fsio, Held, LockedStore, Record};
use crate::Error;
use conf::Attachment;
use std::collections::BTreeMap;
use std::net::IpAddr;

impl LockedStore {
    pub(super) fn import_host_local(&self) -> Result<usize, Error> {
        let dir = &self.fs.dir;
        let names = fsio::list(dir).map_err(|e| Error::io("list", dir, e))?;
        let mut found: BTreeMap<Attachment, Vec<IpAddr>> = BTreeMap::new();
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
                Some(att) => found.entry(att).or_default().push(ip),
                None => log::warn!(
                    "not importing host-local record {}: unrecognised content",
                    path.display()
                ),
            }
        }
        let count = found.values().map(Vec::len).sum();
        for (att, ips) in &found {
            self.import_one(att, ips)?;
        }
        if count > 0 {
            log::warn!(
                "imported {count} host-local reservation(s) from {}",
                dir.display()
            );
        }
        Ok(count)
    }

    fn import_one(&self, att: &Attachment, ips: &[IpAddr]) -> Result<(), Error> {
        if self.fs.att_path(att).is_err() {
            log::warn!("not importing host-local records of {att:?}: the name cannot be stored");
            return Ok(());
        }
        let held = Held {
            record: Record::new(att.clone(), None),
            ips: ips.to_vec(),
        };
        let tmp_dir = self.fs.tmp_dir();
        let tmp = fsio::write_tmp(&tmp_dir, "import", &encode(&held)?, true)
            .map_err(|e| Error::io("write", &tmp_dir, e))?;
        for ip in ips {
            self.link_record(&tmp, *ip, att)?;
        }
        self.publish(&tmp, att)
    }
}

/// `<containerID>\r\n<ifname>`; a bare `<containerID>` predates per-interface records
/// and meant the default interface.
fn parse_host_local(text: &str) -> Option<Attachment> {
    let mut lines = text.lines().map(str::trim);
    let id = lines.next().filter(|s| !s.is_empty())?;
    let ifname = lines.next().filter(|s| !s.is_empty()).unwrap_or("eth0");
    Some(Attachment::new(id, ifname))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_local_formats() {
        assert_eq!(
            parse_host_local("abc\r\neth1"),
            Some(Attachment::new("abc", "eth1"))
        );
        assert_eq!(
            parse_host_local("abc"),
            Some(Attachment::new("abc", "eth0"))
        );
        assert_eq!(parse_host_local(""), None);
    }
}
