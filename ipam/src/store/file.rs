//! The on-disk store: one directory per network.
//!
//! ```text
//! <dataDir>/<network>/
//!   lock                         flock(2) target; never written, never removed
//!   meta.json                    {"format":1}: store format version
//!   journal                      present only while (or if killed while) a mutation runs
//!   last_reserved.<set>          round-robin hint: the address reserved last in range set <set>
//!   ips/<ip>                     one record per reserved address:
//!                                {"containerID","ifname","since","boot"}
//!   attachments/<id>:<ifname>    JSON list of the attachment's addresses (lookup by attachment)
//!   tmp/                         temp files of in-flight writes; emptied by every lock holder
//!   <ip>, last_reserved_ip.<set>  host-local's files, if the network used it before: imported
//!                                once when the store is created (see `import`), then ignored
//! ```
//!
//! Invariants:
//! - Every mutation happens while holding an exclusive flock on `lock`; `LockedStore` is
//!   the proof and the only type with mutating methods. The lock is released when it is
//!   dropped (closing the file descriptor releases the flock, also when the process dies).
//! - Every file is replaced atomically (see `fsio`): no reader ever sees a partial file.
//! - Multi-file mutations are bracketed by `journal` (see `journal`); taking the lock
//!   replays a journal left by a killed process before anything else happens.
//! - The hot paths touch O(1) files: a candidate address costs one `stat` of
//!   `ips/<ip>`, an attachment's addresses one read of its attachment record. Only GC,
//!   STATUS on an exhausted pool, and the admin listing scan directories.
//!
//! Durability: an ADD's records are fsynced before their names appear and the record
//! directories before the ADD returns, so a reservation the runtime was told about
//! survives a power loss, and every record is either complete or absent. Everything else
//! is kill-safe but not fsynced — the journal, a DEL's removals, the round-robin hint —
//! because after a power loss every reservation belongs to a previous boot anyway: a
//! lost release or a half-done mutation leaves only previous-boot reservations, which
//! GC and a full pool reclaim (an empty journal is dropped with a warning). This keeps
//! an ADD at four syncs and a DEL at none.

use super::fsio;
use super::journal::{Journal, Op};
use super::{Listed, Record, Store};
use crate::Error;
use conf::Attachment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const IPS: &str = "ips";
const ATTACHMENTS: &str = "attachments";
const TMP: &str = "tmp";
const LOCK: &str = "lock";
const META: &str = "meta.json";
const JOURNAL: &str = "journal";
const CURSOR_PREFIX: &str = "last_reserved.";
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// The store format this code reads and writes.
pub const FORMAT: u64 = 1;
/// How long a lock holder may keep others waiting before they give up with code 11.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    format: u64,
}

/// An unlocked handle: knows the paths, can read (for the admin view), cannot mutate.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
    boot: Option<String>,
    lock_timeout: Duration,
}

impl FileStore {
    /// Opens (creating if needed) the store directory `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileStore, Error> {
        let store = FileStore::read_only(dir);
        for sub in [IPS, ATTACHMENTS, TMP] {
            let p = store.dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| Error::io("create directory", p, e))?;
        }
        Ok(store)
    }

    /// A handle that creates nothing: for listing an existing store.
    pub fn read_only(dir: impl Into<PathBuf>) -> FileStore {
        FileStore {
            dir: dir.into(),
            boot: read_boot_id(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// Overrides the boot id (tests simulate a reboot with it).
    pub fn with_boot_id(mut self, boot: Option<String>) -> FileStore {
        self.boot = boot;
        self
    }

    pub fn with_lock_timeout(mut self, timeout: Duration) -> FileStore {
        self.lock_timeout = timeout;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn boot_id(&self) -> Option<&str> {
        self.boot.as_deref()
    }

    /// Whether `dir` holds a store written by vbridge-ipam.
    pub fn is_store(dir: &Path) -> bool {
        dir.join(META).is_file()
    }

    /// Takes the exclusive lock (waiting up to the lock timeout), then repairs whatever
    /// a killed process left behind. The lock is held until the result is dropped.
    pub fn lock(self) -> Result<LockedStore, Error> {
        let path = self.dir.join(LOCK);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        acquire(&file, &path, self.lock_timeout)?;
        let locked = LockedStore {
            fs: self,
            _lock: file,
            unsynced: std::cell::RefCell::new(Vec::new()),
        };
        locked.prepare()?;
        Ok(locked)
    }

    fn ip_path(&self, ip: IpAddr) -> PathBuf {
        self.dir.join(IPS).join(ip.to_string())
    }

    fn att_path(&self, att: &Attachment) -> Result<PathBuf, Error> {
        Ok(self.dir.join(ATTACHMENTS).join(attachment_file_name(att)?))
    }

    fn cursor_path(&self, set: usize) -> PathBuf {
        self.dir.join(format!("{CURSOR_PREFIX}{set}"))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join(TMP)
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL)
    }

    pub fn journal_pending(&self) -> Result<bool, Error> {
        let p = self.journal_path();
        fsio::exists(&p).map_err(|e| Error::io("stat", p, e))
    }

    pub fn read_record(&self, ip: IpAddr) -> Result<Option<Record>, Error> {
        let path = self.ip_path(ip);
        let bytes = fsio::read_opt(&path).map_err(|e| Error::io("read", &path, e))?;
        bytes.map(|b| parse_json(&path, &b)).transpose()
    }

    /// `None` when the attachment has no record at all.
    fn read_addresses(&self, att: &Attachment) -> Result<Option<Vec<IpAddr>>, Error> {
        let path = self.att_path(att)?;
        let bytes = fsio::read_opt(&path).map_err(|e| Error::io("read", &path, e))?;
        bytes.map(|b| parse_json(&path, &b)).transpose()
    }

    /// Every address record; unreadable ones are listed as errors, not skipped.
    pub fn scan_records(&self) -> Result<Vec<Listed<(IpAddr, Record)>>, Error> {
        let dir = self.dir.join(IPS);
        let names = fsio::list(&dir).map_err(|e| Error::io("list", &dir, e))?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let Ok(ip) = name.parse::<IpAddr>() else {
                out.push(Err(Error::corrupt(
                    &dir.join(&name),
                    "the file name is not an IP address",
                )));
                continue;
            };
            match self.read_record(ip) {
                Ok(Some(rec)) => out.push(Ok((ip, rec))),
                Ok(None) => {} // released between listing and reading (unlocked readers only)
                Err(e) => out.push(Err(e)),
            }
        }
        Ok(out)
    }

    pub fn scan_attachments(&self) -> Result<Vec<Listed<Attachment>>, Error> {
        let dir = self.dir.join(ATTACHMENTS);
        let names = fsio::list(&dir).map_err(|e| Error::io("list", &dir, e))?;
        Ok(names
            .iter()
            .map(|n| {
                parse_attachment_file_name(n).ok_or_else(|| {
                    Error::corrupt(&dir.join(n), "the file name is not <containerID>:<ifname>")
                })
            })
            .collect())
    }
}

fn read_boot_id() -> Option<String> {
    let id = fs::read_to_string(BOOT_ID).ok()?;
    Some(id.trim().to_string()).filter(|s| !s.is_empty())
}

/// Waits for the store's flock; a stuck holder turns into code 11 instead of a hang.
fn acquire(file: &File, path: &Path, timeout: Duration) -> Result<(), Error> {
    match fsio::lock_exclusive_within(file, timeout) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::LockTimeout {
            path: path.to_path_buf(),
            secs: timeout.as_secs(),
        }),
        Err(e) => Err(Error::io("lock", path, e)),
    }
}

/// `<containerID>:<ifname>`. Both parts become a file name, so they are checked here even
/// though the CNI layer validated them: the library is also called with GC lists.
fn attachment_file_name(att: &Attachment) -> Result<String, Error> {
    let bad = |reason| Error::InvalidAttachment {
        container_id: att.container_id.clone(),
        ifname: att.ifname.clone(),
        reason,
    };
    if !conf::validate::is_valid_id(&att.container_id) {
        return Err(bad(
            "the container id must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
        ));
    }
    let i = &att.ifname;
    if i.is_empty() || i == "." || i == ".." || i.contains(['/', ':', '\0']) {
        return Err(bad(
            "the ifname must be non-empty, not '.'/'..', without '/', ':' or NUL",
        ));
    }
    Ok(format!("{}:{}", att.container_id, att.ifname))
}

fn parse_attachment_file_name(name: &str) -> Option<Attachment> {
    let (id, ifname) = name.split_once(':')?;
    let att = Attachment::new(id, ifname);
    attachment_file_name(&att).ok().map(|_| att)
}

fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, Error> {
    if bytes.is_empty() {
        return Err(Error::corrupt(path, "the file is empty"));
    }
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt(path, e))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::Internal(format!("cannot encode a store record: {e}")))
}

/// The locked store: the only type that mutates. Dropping it releases the lock.
#[derive(Debug)]
pub struct LockedStore {
    fs: FileStore,
    /// Holds the flock; closing it (on drop) releases the lock.
    _lock: File,
    /// Directories whose new entries an ADD has not fsynced yet (see `commit`).
    unsynced: std::cell::RefCell<Vec<PathBuf>>,
}

impl LockedStore {
    pub fn store(&self) -> &FileStore {
        &self.fs
    }

    fn prepare(&self) -> Result<(), Error> {
        self.ensure_meta()?;
        self.clean_tmp()?;
        self.recover()
    }

    fn ensure_meta(&self) -> Result<(), Error> {
        let path = self.fs.dir.join(META);
        match fsio::read_opt(&path).map_err(|e| Error::io("read", &path, e))? {
            None => {
                self.import_host_local()?;
                let bytes = encode(&Meta { format: FORMAT })?;
                self.write(&path, &bytes, true)?;
                self.sync(&self.fs.dir)
            }
            Some(b) => {
                let meta: Meta = parse_json(&path, &b)?;
                if meta.format != FORMAT {
                    return Err(Error::UnsupportedFormat {
                        path,
                        found: meta.format,
                        supported: FORMAT,
                    });
                }
                Ok(())
            }
        }
    }

    /// Temp files can only be leftovers of a killed writer: writers hold the lock.
    fn clean_tmp(&self) -> Result<(), Error> {
        let dir = self.fs.tmp_dir();
        fsio::clear_dir(&dir).map_err(|e| Error::io("clean", &dir, e))
    }

    fn recover(&self) -> Result<(), Error> {
        let path = self.fs.journal_path();
        let Some(bytes) = fsio::read_opt(&path).map_err(|e| Error::io("read", &path, e))? else {
            return Ok(());
        };
        if bytes.is_empty() {
            // Journals are not fsynced (see `write_journal`): a power loss can leave one
            // empty, and the half-done mutation's leftovers are previous-boot reservations.
            log::warn!(
                "removing empty {} (a mutation cut short by a power loss); its reservations are reclaimed as previous-boot ones",
                path.display()
            );
            return fsio::remove_opt(&path).map_err(|e| Error::io("remove", &path, e));
        }
        let journal: Journal = parse_json(&path, &bytes)?;
        self.undo_reservations(&journal)?;
        self.finish_journal()?;
        log::warn!("store {}: {}", self.fs.dir.display(), journal.describe());
        Ok(())
    }

    /// Status probe: can this process create and remove a file in the store?
    pub fn probe_writable(&self) -> Result<(), Error> {
        let p = self.fs.tmp_dir().join("status-probe");
        self.write(&p, b"", false)?;
        fsio::remove_opt(&p).map_err(|e| Error::io("remove", p, e))
    }

    fn write(&self, dest: &Path, bytes: &[u8], durable: bool) -> Result<(), Error> {
        fsio::write_replace(&self.fs.tmp_dir(), dest, bytes, durable)
            .map_err(|e| Error::io("write", dest, e))
    }

    fn sync(&self, dir: &Path) -> Result<(), Error> {
        fsio::sync_dir(dir).map_err(|e| Error::io("sync", dir, e))
    }

    fn sync_record_dirs(&self) -> Result<(), Error> {
        self.sync(&self.fs.dir.join(IPS))?;
        self.sync(&self.fs.dir.join(ATTACHMENTS))
    }

    /// The journal guards against a killed process (the page cache survives a kill, so it
    /// needs no fsync). After a power loss a mutation may be half done without a
    /// readable journal; its reservations are then previous-boot ones, which is what every
    /// reservation is after a power loss, and those are reclaimed (GC, or a full pool).
    /// What an ADD returns is durable all the same: its records are fsynced.
    fn write_journal(&self, j: &Journal) -> Result<(), Error> {
        self.write(&self.fs.journal_path(), &encode(j)?, false)
    }

    fn finish_journal(&self) -> Result<(), Error> {
        let p = self.fs.journal_path();
        fsio::remove_opt(&p).map_err(|e| Error::io("remove", p, e))
    }

    /// Record files among `ips` that `att` owns. Parses them all first, so an unreadable
    /// record stops the operation before anything is changed.
    fn owned_records(&self, att: &Attachment, ips: &[IpAddr]) -> Result<Vec<PathBuf>, Error> {
        let mut owned = Vec::new();
        for ip in ips {
            match self.fs.read_record(*ip)? {
                Some(r) if r.attachment == *att => owned.push(self.fs.ip_path(*ip)),
                Some(r) => log::warn!(
                    "{} belongs to {}/{}, not {}/{}: left in place",
                    self.fs.ip_path(*ip).display(),
                    r.attachment.container_id,
                    r.attachment.ifname,
                    att.container_id,
                    att.ifname
                ),
                None => {}
            }
        }
        Ok(owned)
    }

    /// Removes what `j.attachment` holds of `j.ips` plus its attachment record. Both
    /// journal directions end in this state (see `journal`); it is idempotent.
    fn undo_reservations(&self, j: &Journal) -> Result<(), Error> {
        let owned = self.owned_records(&j.attachment, &j.ips)?;
        self.remove_records(&j.attachment, &owned, true)
    }

    fn remove_records(
        &self,
        att: &Attachment,
        owned: &[PathBuf],
        durable: bool,
    ) -> Result<(), Error> {
        for p in owned {
            fsio::remove_opt(p).map_err(|e| Error::io("remove", p, e))?;
        }
        let ap = self.fs.att_path(att)?;
        fsio::remove_opt(&ap).map_err(|e| Error::io("remove", &ap, e))?;
        if durable {
            self.sync_record_dirs()?;
        }
        Ok(())
    }

    /// Each record's data is fsynced before its name appears (so a power loss never
    /// leaves an empty record under a real name); the directory entries are fsynced by
    /// `commit` after the lock is released, so concurrent ADDs do not queue behind each
    /// other's directory syncs (the file system then commits them together).
    fn apply_add(&self, att: &Attachment, ips: &[IpAddr]) -> Result<(), Error> {
        let record = encode(&Record::new(att.clone(), self.fs.boot_id()))?;
        for ip in ips {
            self.create_record(*ip, &record, att)?;
        }
        self.write(&self.fs.att_path(att)?, &encode(&ips)?, true)?;
        self.unsynced
            .borrow_mut()
            .extend([self.fs.dir.join(IPS), self.fs.dir.join(ATTACHMENTS)]);
        Ok(())
    }

    /// Releases the lock, then makes this ADD's new directory entries durable. Call it
    /// before telling the runtime about the addresses: a power loss before that point
    /// only leaves previous-boot reservations (or none).
    pub fn commit(self) -> Result<(), Error> {
        let dirs = self.unsynced.take();
        drop(self);
        for d in &dirs {
            fsio::sync_dir(d).map_err(|e| Error::io("sync", d, e))?;
        }
        Ok(())
    }

    /// Creates `ips/<ip>`; the link fails if the name exists, so even a bug in the
    /// caller's free check cannot overwrite another attachment's reservation.
    fn create_record(&self, ip: IpAddr, bytes: &[u8], att: &Attachment) -> Result<(), Error> {
        let path = self.fs.ip_path(ip);
        match fsio::write_new(&self.fs.tmp_dir(), &path, bytes, true) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match self.fs.read_record(ip)? {
                    Some(r) if r.attachment == *att => Ok(()),
                    Some(r) => Err(Error::AddressTaken {
                        ip,
                        holder: r.attachment,
                    }),
                    None => Err(Error::io("create", path, e)),
                }
            }
            Err(e) => Err(Error::io("create", path, e)),
        }
    }

    /// In-process rollback of a failed ADD; if even that fails the journal stays and the
    /// next lock holder finishes the rollback.
    fn abort(&self, j: &Journal) {
        if let Err(e) = self
            .undo_reservations(j)
            .and_then(|()| self.finish_journal())
        {
            log::error!("could not roll back a failed ADD yet ({e}); the next operation on this network will");
        }
    }
}

impl Store for LockedStore {
    fn current_boot(&self) -> Option<&str> {
        self.fs.boot_id()
    }

    fn is_taken(&self, ip: IpAddr) -> Result<bool, Error> {
        let p = self.fs.ip_path(ip);
        fsio::exists(&p).map_err(|e| Error::io("stat", p, e))
    }

    fn record(&self, ip: IpAddr) -> Result<Option<Record>, Error> {
        self.fs.read_record(ip)
    }

    fn addresses(&self, att: &Attachment) -> Result<Vec<IpAddr>, Error> {
        Ok(self.fs.read_addresses(att)?.unwrap_or_default())
    }

    fn reserve(&mut self, att: &Attachment, ips: &[IpAddr]) -> Result<(), Error> {
        if ips.is_empty() {
            return Ok(());
        }
        // A name that cannot become a path must fail before the journal names it.
        self.fs.att_path(att)?;
        let j = Journal {
            op: Op::Add,
            attachment: att.clone(),
            ips: ips.to_vec(),
        };
        self.write_journal(&j)?;
        let done = self
            .apply_add(att, ips)
            .and_then(|()| self.finish_journal());
        if done.is_err() {
            self.abort(&j);
        }
        done
    }

    fn release(&mut self, att: &Attachment) -> Result<Vec<IpAddr>, Error> {
        let Some(ips) = self.fs.read_addresses(att)? else {
            return Ok(Vec::new());
        };
        let owned = self.owned_records(att, &ips)?;
        // A release is not fsynced (it would cost a DEL ~1.5 ms): one lost to a power loss
        // leaves reservations stamped with the previous boot (see `write_journal`).
        self.write_journal(&Journal {
            op: Op::Del,
            attachment: att.clone(),
            ips: ips.clone(),
        })?;
        // On failure the journal stays behind and the next lock holder finishes the DEL.
        self.remove_records(att, &owned, false)?;
        self.finish_journal()?;
        Ok(ips)
    }

    fn cursor(&self, set: usize) -> Option<IpAddr> {
        let path = self.fs.cursor_path(set);
        let parsed = match fsio::read_opt(&path) {
            Ok(None) => return None,
            Ok(Some(b)) => String::from_utf8(b)
                .ok()
                .and_then(|s| s.trim().parse().ok()),
            Err(e) => {
                log::warn!(
                    "cannot read {}: {e}; starting the search at the range start",
                    path.display()
                );
                return None;
            }
        };
        if parsed.is_none() {
            log::warn!(
                "ignoring unreadable round-robin hint {}; it is rewritten by this ADD",
                path.display()
            );
        }
        parsed
    }

    fn set_cursor(&mut self, set: usize, ip: IpAddr) -> Result<(), Error> {
        self.write(&self.fs.cursor_path(set), ip.to_string().as_bytes(), false)
    }

    fn attachments(&self) -> Result<Vec<Listed<Attachment>>, Error> {
        self.fs.scan_attachments()
    }

    fn reservations(&self) -> Result<Vec<Listed<(IpAddr, Record)>>, Error> {
        self.fs.scan_records()
    }

    fn forget_record(&mut self, ip: IpAddr) -> Result<(), Error> {
        let p = self.fs.ip_path(ip);
        fsio::remove_opt(&p).map_err(|e| Error::io("remove", &p, e))?;
        self.sync(&self.fs.dir.join(IPS))
    }
}

mod import;
#[cfg(test)]
mod tests;
