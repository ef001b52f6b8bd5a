//! An in-memory `Store` for allocator tests: same contract as the file store, no disk.
//! It also counts `is_taken` probes so tests can prove the allocation cost is flat.

use super::{FullStamp, Listed, Record, Store};
use crate::Error;
use conf::Attachment;
use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

#[derive(Debug, Default)]
pub struct MemStore {
    boot: Option<String>,
    records: BTreeMap<IpAddr, Record>,
    /// Each attachment's own record and the addresses it lists.
    attachments: BTreeMap<Attachment, (Record, Vec<IpAddr>)>,
    cursors: HashMap<usize, IpAddr>,
    /// `mark_full`'s finding.
    full: Option<FullStamp>,
    /// Bumped by every removal of a record, like the file store's `ips/` mtime.
    removals: Cell<u64>,
    /// Test hook: at this `is_taken` count, something outside the store changes it.
    outside_change_at_probe: Option<u64>,
    probes: Cell<u64>,
}

impl MemStore {
    pub fn new(boot: &str) -> MemStore {
        MemStore {
            boot: Some(boot.to_string()),
            ..MemStore::default()
        }
    }

    /// Simulates a reboot: same reservations, new boot id.
    pub fn reboot(&mut self, boot: &str) {
        self.boot = Some(boot.to_string());
    }

    /// `is_taken` calls so far.
    pub fn probes(&self) -> u64 {
        self.probes.get()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Makes the `n`-th probe from now coincide with a change made outside the store (a
    /// record removed by hand, which only the file store's `ips/` mtime would show).
    pub fn change_outside_at_probe(&mut self, n: u64) {
        self.outside_change_at_probe = Some(self.probes.get() + n);
    }

    /// Adds a record without an attachment record (an orphan, as a crash could once leave),
    /// or replaces the record of an address an attachment lists.
    pub fn plant_orphan(&mut self, ip: IpAddr, rec: Record) {
        self.records.insert(ip, rec);
    }
}

impl Store for MemStore {
    fn current_boot(&self) -> Option<&str> {
        self.boot.as_deref()
    }

    fn is_taken(&self, ip: IpAddr) -> Result<bool, Error> {
        self.probes.set(self.probes.get() + 1);
        if self.outside_change_at_probe == Some(self.probes.get()) {
            self.removals.set(self.removals.get() + 1);
        }
        Ok(self.records.contains_key(&ip))
    }

    fn record(&self, ip: IpAddr) -> Result<Option<Record>, Error> {
        Ok(self.records.get(&ip).cloned())
    }

    fn addresses(&self, att: &Attachment) -> Result<Vec<IpAddr>, Error> {
        Ok(self
            .attachments
            .get(att)
            .map(|(_, ips)| ips.clone())
            .unwrap_or_default())
    }

    fn attachment_record(&self, att: &Attachment) -> Result<Option<Record>, Error> {
        Ok(self.attachments.get(att).map(|(rec, _)| rec.clone()))
    }

    fn reserve(&mut self, att: &Attachment, ips: &[IpAddr]) -> Result<(), Error> {
        if let Some((ip, r)) = ips
            .iter()
            .find_map(|ip| self.records.get(ip).map(|r| (*ip, r)))
        {
            return Err(Error::AddressTaken {
                ip,
                holder: r.attachment.clone(),
            });
        }
        let rec = Record::new(att.clone(), self.boot.as_deref());
        for ip in ips {
            self.records.insert(*ip, rec.clone());
        }
        if !ips.is_empty() {
            self.attachments.insert(att.clone(), (rec, ips.to_vec()));
        }
        Ok(())
    }

    fn release(&mut self, att: &Attachment) -> Result<Vec<IpAddr>, Error> {
        self.full = None;
        self.removals.set(self.removals.get() + 1);
        let ips = self
            .attachments
            .remove(att)
            .map(|(_, ips)| ips)
            .unwrap_or_default();
        for ip in &ips {
            if self.records.get(ip).is_some_and(|r| r.attachment == *att) {
                self.records.remove(ip);
            }
        }
        Ok(ips)
    }

    fn cursor(&self, set: usize) -> Option<IpAddr> {
        self.cursors.get(&set).copied()
    }

    fn set_cursor(&mut self, set: usize, ip: IpAddr) -> Result<(), Error> {
        self.cursors.insert(set, ip);
        Ok(())
    }

    fn attachments(&self) -> Result<Vec<Listed<Attachment>>, Error> {
        Ok(self.attachments.keys().cloned().map(Ok).collect())
    }

    fn reservations(&self) -> Result<Vec<Listed<(IpAddr, Record)>>, Error> {
        Ok(self
            .records
            .iter()
            .map(|(ip, r)| Ok((*ip, r.clone())))
            .collect())
    }

    fn forget_record(&mut self, ip: IpAddr) -> Result<(), Error> {
        self.full = None;
        self.removals.set(self.removals.get() + 1);
        self.records.remove(&ip);
        Ok(())
    }

    fn full_stamp(&self, set: usize, key: &str) -> Option<FullStamp> {
        Some(FullStamp {
            value: format!("{set} {key} {:?} {}", self.boot, self.removals.get()),
            settled: true,
        })
    }

    fn known_full(&self, stamp: &FullStamp) -> bool {
        self.full.as_ref() == Some(stamp)
    }

    fn mark_full(&mut self, stamp: &FullStamp) -> Result<(), Error> {
        self.full = Some(stamp.clone());
        Ok(())
    }
}
