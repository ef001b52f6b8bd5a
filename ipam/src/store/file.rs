//! The on-disk store: one directory per network.
//!
//! ```text
//! <dataDir>/<network>/
//!   lock                         flock(2) target; never written, never removed
//!   meta.json                    {"format":2}: store format version
//!   journal                      present only while (or if killed while) a mutation runs
//!   last_reserved.<set>          round-robin hint: the address reserved last in range set
//!                                <set>, kept as a symlink's target (no data block to write)
//!   importing                    present only while (or if killed while) a new store
//!                                imports host-local's files (see `ensure_meta`)
//!   full                         "<set> <walk key> <boot> <mtime of ips/>", a symlink's
//!                                target: range set <set> had no free or reclaimable
//!                                address (see `allocator::room`); removed by every release
//!   ips/<ip>                     one name per reserved address          } one file per
//!   attachments/<id>:<ifname>    one name per attachment (lookup by it) } attachment:
//!                                {"containerID","ifname","since","boot","ips":[...]}
//!   tmp/                         temp files of in-flight writes, named after their
//!                                destination (see `fsio`); GC sweeps strays
//!   <ip>, last_reserved_ip.<set>  host-local's files, if the network used it before: imported
//!                                once when the store is created (see `import`), then ignored
//! ```
//!
//! Invariants:
//! - Every mutation happens while holding an exclusive flock on `lock`; `LockedStore` is
//!   the proof and the only type with mutating methods. The lock is released when it is
//!   dropped (closing the file descriptor releases the flock, also when the process dies).
//! - Every file is complete before any name points at it (see `fsio`): no reader ever
//!   sees a partial file.
//! - Multi-name mutations are bracketed by `journal` (see `journal`); taking the lock
//!   replays a journal left by a killed process before anything else happens.
//! - The hot paths touch O(1) files: a candidate address costs one `stat` of
//!   `ips/<ip>`, an attachment's addresses one read of its attachment name. Only GC,
//!   the admin listing, and the first ADD or STATUS to find a pool exhausted (`full`
//!   spares the ones after it) scan directories or walk a range.
//!
//! Durability: an ADD writes its one record file and fsyncs it before any name points at
//! it, so after a power loss every record is complete or absent — never empty, never
//! torn (the failure the reference host-local has, plugins#498). That is the one fsync
//! of an ADD. Names (links, renames, unlinks) are not fsynced, and neither is a DEL:
//! a power loss ends every container of the boot, so every reservation it could lose or
//! resurrect belongs to a previous boot, which GC and a full pool reclaim; a mutation it
//! cuts short leaves a journal (or its leftovers), replayed like a killed process's.

use super::fsio;
use super::journal::{self, AttachmentFile, Held, JournalFile};
use super::{FullStamp, Listed, Record, Store};
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
const FULL: &str = "full";
/// Present while the first lock of a new store imports host-local's files.
const IMPORTING: &str = "importing";
/// See `FileStore::full_stamp`.
const FULL_STAMP_SETTLE: Duration = Duration::from_secs(2);

/// The store format this code writes. It also reads format 1 (attachment names held a
/// list of addresses, journals were separate files) and upgrades `meta.json` on the
/// first lock, so a binary that knows only format 1 refuses the store instead of
/// misreading it.
pub const FORMAT: u64 = 2;
const FORMAT_1: u64 = 1;
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
    urgent: bool,
}

impl FileStore {
    /// The store in directory `dir`. Touches nothing: `lock` creates the store if it does
    /// not exist yet (its subdirectories come with `meta.json`, so an existing store
    /// costs no `mkdir`); the admin view only reads.
    pub fn open(dir: impl Into<PathBuf>) -> FileStore {
        FileStore {
            dir: dir.into(),
            boot: super::boot_id().map(str::to_string),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            urgent: false,
        }
    }

    /// The lock holder runs at a raised CPU priority (see `fsio::Boost`): for the short
    /// ADD and DEL, never for a GC that may walk a whole pool.
    pub fn urgent(mut self) -> FileStore {
        self.urgent = true;
        self
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
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
        };
        let file = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(&self.dir)
                    .map_err(|e| Error::io("create directory", &self.dir, e))?;
                open()
            }
            r => r,
        }
        .map_err(|e| Error::io("open", &path, e))?;
        acquire(&file, &path, self.lock_timeout)?;
        let boost = self.urgent.then(fsio::Boost::raise);
        let locked = LockedStore {
            fs: self,
            unfinished: false,
            _lock: file,
            _boost: boost,
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

    fn full_path(&self) -> PathBuf {
        self.dir.join(FULL)
    }

    /// What `full` holds for range set `set` under `key` while `ips/` stays as it is now.
    /// The modification time of `ips/` catches records removed by hand (the admin repair)
    /// or by builds that do not know `full`; `release` does not rely on it, since two
    /// changes within one timestamp tick leave it unchanged.
    fn full_stamp(&self, set: usize, key: &str) -> Result<FullStamp, Error> {
        let ips = self.dir.join(IPS);
        let m = fs::metadata(&ips).map_err(|e| Error::io("stat", &ips, e))?;
        let mtime = m.modified().map_err(|e| Error::io("stat", &ips, e))?;
        let since_epoch = mtime
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let boot = self.boot.as_deref().unwrap_or("-");
        Ok(FullStamp {
            value: format!(
                "{set} {key} {boot} {}.{:09}",
                since_epoch.as_secs(),
                since_epoch.subsec_nanos()
            ),
            // Timestamps may be as coarse as a second (ext3, small ext4 inodes): a
            // stamp is only trusted once no later change can share its timestamp.
            settled: mtime.elapsed().is_ok_and(|age| age >= FULL_STAMP_SETTLE),
        })
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.join(TMP)
    }

    pub fn journal_path(&self) -> PathBuf {
        self.dir.join(JOURNAL)
    }

    /// An unreadable `meta.json`, or a format this build does not know: every ADD, DEL
    /// and GC would stop at its lock (107). For the admin listing, which takes no lock.
    pub fn meta_problem(&self) -> Option<Error> {
        let meta = self.dir.join(META);
        match fsio::read_opt(&meta) {
            Ok(Some(b)) => match parse_json::<Meta>(&meta, &b) {
                Ok(m) if m.format != FORMAT && m.format != FORMAT_1 => {
                    Some(Error::UnsupportedFormat {
                        path: meta,
                        found: m.format,
                        supported: FORMAT,
                    })
                }
                Ok(_) => None,
                Err(e) => Some(e),
            },
            Ok(None) => None,
            Err(e) => Some(Error::io("read", &meta, e)),
        }
    }

    /// A `journal` the next lock holder cannot replay (107 for every operation); an
    /// empty one is replayed (a power loss may leave it so).
    pub fn journal_problem(&self) -> Option<Error> {
        let journal = self.journal_path();
        match fsio::read_opt(&journal) {
            Ok(Some(b)) if !b.is_empty() => parse_json::<JournalFile>(&journal, &b).err(),
            Ok(_) => None,
            Err(e) => Some(Error::io("read", &journal, e)),
        }
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
    fn read_attachment(&self, att: &Attachment) -> Result<Option<AttachmentFile>, Error> {
        let path = self.att_path(att)?;
        let bytes = fsio::read_opt(&path).map_err(|e| Error::io("read", &path, e))?;
        bytes.map(|b| parse_json(&path, &b)).transpose()
    }

    fn read_addresses(&self, att: &Attachment) -> Result<Option<Vec<IpAddr>>, Error> {
        Ok(self.read_attachment(att)?.map(AttachmentFile::into_ips))
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
    /// A mutation of this lock hold failed and left its journal: the next lock holder
    /// finishes it, and until then no other mutation may start (it would overwrite it).
    unfinished: bool,
    /// Holds the flock; closing it (on drop) releases the lock.
    _lock: File,
    /// Dropped after the lock: the priority returns once the lock is free.
    _boost: Option<fsio::Boost>,
}

impl LockedStore {
    pub fn store(&self) -> &FileStore {
        &self.fs
    }

    fn prepare(&self) -> Result<(), Error> {
        self.ensure_meta()?;
        self.recover()
    }

    fn make_dirs(&self) -> Result<(), Error> {
        for sub in [IPS, ATTACHMENTS, TMP] {
            let p = self.fs.dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| Error::io("create directory", p, e))?;
        }
        Ok(())
    }

    fn ensure_meta(&self) -> Result<(), Error> {
        let path = self.fs.dir.join(META);
        match fsio::read_opt(&path).map_err(|e| Error::io("read", &path, e))? {
            None => {
                // host-local's files stay after the import: an established store that lost
                // its meta.json must not take them in again — their containers are long
                // gone, and the unknown-boot records would never be reclaimed. Only a new
                // store (no ips/ yet) imports, or one whose import was cut short: the
                // marker, durable before ips/ exists, says so until the import is done.
                let marker = self.fs.dir.join(IMPORTING);
                let fresh = marker.exists() || !self.fs.dir.join(IPS).exists();
                let sync =
                    || fsio::sync_dir(&self.fs.dir).map_err(|e| Error::io("sync", &self.fs.dir, e));
                if fresh {
                    fs::write(&marker, b"").map_err(|e| Error::io("write", &marker, e))?;
                    sync()?;
                }
                self.make_dirs()?;
                if fresh {
                    self.import_host_local()?;
                    // Before meta.json: a marker that outlived the import would make a
                    // later loss of meta.json import again.
                    match fs::remove_file(&marker) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(Error::io("remove", &marker, e));
                        }
                        _ => {}
                    }
                } else {
                    log::warn!(
                        "store {}: meta.json was missing; recreated without importing host-local files again",
                        self.fs.dir.display()
                    );
                }
                self.write_meta(&path)?;
                sync()
            }
            Some(b) => match parse_json::<Meta>(&path, &b)?.format {
                FORMAT => Ok(()),
                FORMAT_1 => {
                    self.make_dirs()?;
                    log::info!(
                        "store {}: upgrading to format {FORMAT}",
                        self.fs.dir.display()
                    );
                    self.write_meta(&path)
                }
                found => Err(Error::UnsupportedFormat {
                    path,
                    found,
                    supported: FORMAT,
                }),
            },
        }
    }

    fn write_meta(&self, path: &Path) -> Result<(), Error> {
        self.write(path, &encode(&Meta { format: FORMAT })?, true)
    }

    /// Removes what killed writers left in `tmp/` (writers hold the lock, so every file
    /// there is a stray). Only GC calls it: a stray is replaced by the next write of its
    /// name anyway, and scanning `tmp/` on every lock would cost every ADD.
    pub fn clean_tmp(&self) -> Result<(), Error> {
        let dir = self.fs.tmp_dir();
        fsio::clear_dir(&dir).map_err(|e| Error::io("clean", &dir, e))
    }

    fn recover(&self) -> Result<(), Error> {
        let path = self.fs.journal_path();
        let Some(bytes) = fsio::read_opt(&path).map_err(|e| Error::io("read", &path, e))? else {
            return Ok(());
        };
        if bytes.is_empty() {
            // Format 1 did not fsync its journals: a power loss can have left one empty,
            // and the half-done mutation's leftovers are previous-boot reservations.
            log::warn!(
                "removing empty {} (a mutation cut short by a power loss); its reservations are reclaimed as previous-boot ones",
                path.display()
            );
            return fsio::remove_opt(&path).map_err(|e| Error::io("remove", &path, e));
        }
        let (att, ips) = parse_json::<JournalFile>(&path, &bytes)?.target();
        self.undo(&att, &ips)?;
        self.finish_journal()?;
        log::warn!(
            "store {}: {}",
            self.fs.dir.display(),
            journal::describe(&att, &ips)
        );
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

    /// Removes what `att` holds of `ips` plus its attachment name: the state both journal
    /// directions end in (see `journal`). Idempotent.
    fn undo(&self, att: &Attachment, ips: &[IpAddr]) -> Result<(), Error> {
        let owned = self.owned_records(att, ips)?;
        if !owned.is_empty() {
            self.forget_full()?;
        }
        for p in owned {
            fsio::remove_opt(&p).map_err(|e| Error::io("remove", &p, e))?;
        }
        let ap = self.fs.att_path(att)?;
        fsio::remove_opt(&ap).map_err(|e| Error::io("remove", &ap, e))
    }

    /// ADD, first step: the attachment's record, complete and fsynced, named `journal`.
    /// From here on a killed process is rolled back by the next lock holder.
    fn begin_add(&self, held: &Held) -> Result<(), Error> {
        self.write(&self.fs.journal_path(), &encode(held)?, true)
    }

    /// Names `src` as `ips/<ip>`. The link fails if the name exists, so even a bug in the
    /// caller's free check cannot overwrite another attachment's reservation.
    fn link_record(&self, src: &Path, ip: IpAddr, att: &Attachment) -> Result<(), Error> {
        let path = self.fs.ip_path(ip);
        match fs::hard_link(src, &path) {
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

    /// Names `src` as the attachment's record (replacing a stale one); for an ADD this
    /// rename of `journal` is the commit point.
    fn publish(&self, src: &Path, att: &Attachment) -> Result<(), Error> {
        let dest = self.fs.att_path(att)?;
        fs::rename(src, &dest).map_err(|e| Error::io("write", &dest, e))
    }

    fn apply_add(&self, held: &Held) -> Result<(), Error> {
        let journal = self.fs.journal_path();
        for ip in &held.ips {
            self.link_record(&journal, *ip, &held.record.attachment)?;
        }
        self.publish(&journal, &held.record.attachment)
    }

    /// In-process rollback of a failed ADD; if even that fails the journal stays and the
    /// next lock holder finishes the rollback.
    fn abort(&self, held: &Held) {
        if let Err(e) = self
            .undo(&held.record.attachment, &held.ips)
            .and_then(|()| self.finish_journal())
        {
            log::error!("could not roll back a failed ADD yet ({e}); the next operation on this network will");
        }
    }

    /// DEL, first step: the attachment's record becomes the journal (a format-1 list of
    /// addresses cannot serve as one, so a journal is written for it instead).
    fn begin_del(&self, att: &Attachment, file: AttachmentFile) -> Result<(), Error> {
        let path = self.fs.att_path(att)?;
        let journal = self.fs.journal_path();
        match file {
            AttachmentFile::Held(_) => {
                fs::rename(&path, &journal).map_err(|e| Error::io("write", &journal, e))
            }
            AttachmentFile::Addresses(ips) => {
                let held = Held {
                    record: Record::new(att.clone(), self.fs.boot_id()),
                    ips,
                };
                self.write(&journal, &encode(&held)?, false)?;
                fsio::remove_opt(&path).map_err(|e| Error::io("remove", &path, e))
            }
        }
    }

    /// Before any record goes: a process killed right after leaves no `full` claiming a
    /// free address is taken.
    fn forget_full(&self) -> Result<(), Error> {
        let p = self.fs.full_path();
        fsio::remove_opt(&p).map_err(|e| Error::io("remove", p, e))
    }

    /// After a failure, whether the mutation left its journal (checked only then).
    fn note_leftover(&mut self, done: Result<(), Error>) -> Result<(), Error> {
        if done.is_err() && fsio::exists(&self.fs.journal_path()).unwrap_or(true) {
            self.unfinished = true;
        }
        done
    }

    /// GC releases attachment after attachment in one lock hold; one that failed halfway
    /// must not have its journal overwritten by the next.
    fn refuse_if_unfinished(&self) -> Result<(), Error> {
        if !self.unfinished {
            return Ok(());
        }
        Err(Error::io(
            "start a mutation in",
            self.fs.dir.clone(),
            std::io::Error::other(
                "an earlier mutation of this call failed halfway; the next operation on this network finishes it",
            ),
        ))
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

    fn attachment_record(&self, att: &Attachment) -> Result<Option<Record>, Error> {
        Ok(match self.fs.read_attachment(att)? {
            Some(AttachmentFile::Held(h)) => Some(h.record),
            Some(AttachmentFile::Addresses(_)) | None => None,
        })
    }

    fn reserve(&mut self, att: &Attachment, ips: &[IpAddr]) -> Result<(), Error> {
        if ips.is_empty() {
            return Ok(());
        }
        self.refuse_if_unfinished()?;
        // A name that cannot become a path must fail before the journal names it.
        self.fs.att_path(att)?;
        let held = Held {
            record: Record::new(att.clone(), self.fs.boot_id()),
            ips: ips.to_vec(),
        };
        let done = self.begin_add(&held).and_then(|()| {
            let done = self.apply_add(&held);
            if done.is_err() {
                self.abort(&held);
            }
            done
        });
        self.note_leftover(done)
    }

    fn release(&mut self, att: &Attachment) -> Result<Vec<IpAddr>, Error> {
        self.refuse_if_unfinished()?;
        let Some(file) = self.fs.read_attachment(att)? else {
            return Ok(Vec::new());
        };
        let ips = file.ips().to_vec();
        // Validates every record before anything changes.
        let owned = self.owned_records(att, &ips)?;
        if !owned.is_empty() {
            self.forget_full()?;
        }
        let done = self.begin_del(att, file).and_then(|()| {
            // On failure the journal stays behind and the next lock holder finishes the DEL.
            for p in &owned {
                fsio::remove_opt(p).map_err(|e| Error::io("remove", p, e))?;
            }
            self.finish_journal()
        });
        self.note_leftover(done).map(|()| ips)
    }

    fn cursor(&self, set: usize) -> Option<IpAddr> {
        let path = self.fs.cursor_path(set);
        let parsed = match fsio::read_value(&path) {
            Ok(None) => return None,
            Ok(Some(v)) => v.trim().parse().ok(),
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

    /// A symlink whose target is the address (see `fsio::replace_symlink`).
    fn set_cursor(&mut self, set: usize, ip: IpAddr) -> Result<(), Error> {
        let path = self.fs.cursor_path(set);
        fsio::replace_symlink(&self.fs.tmp_dir(), &path, &ip.to_string())
            .map_err(|e| Error::io("write", path, e))
    }

    fn attachments(&self) -> Result<Vec<Listed<Attachment>>, Error> {
        self.fs.scan_attachments()
    }

    fn reservations(&self) -> Result<Vec<Listed<(IpAddr, Record)>>, Error> {
        self.fs.scan_records()
    }

    fn forget_record(&mut self, ip: IpAddr) -> Result<(), Error> {
        self.forget_full()?;
        let p = self.fs.ip_path(ip);
        fsio::remove_opt(&p).map_err(|e| Error::io("remove", &p, e))
    }

    fn full_stamp(&self, set: usize, key: &str) -> Option<FullStamp> {
        self.fs
            .full_stamp(set, key)
            .inspect_err(|e| log::warn!("{e}; walking the range"))
            .ok()
    }

    fn known_full(&self, stamp: &FullStamp) -> bool {
        let path = self.fs.full_path();
        match fsio::read_value(&path) {
            Ok(v) => v.as_deref() == Some(stamp.value.as_str()),
            Err(e) => {
                log::warn!("cannot read {}: {e}; walking the range", path.display());
                false
            }
        }
    }

    fn mark_full(&mut self, stamp: &FullStamp) -> Result<(), Error> {
        let path = self.fs.full_path();
        fsio::replace_symlink(&self.fs.tmp_dir(), &path, &stamp.value)
            .map_err(|e| Error::io("write", path, e))
    }
}

mod import;
#[cfg(test)]
mod tests;
