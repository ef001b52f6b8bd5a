//! Per-network bookkeeping, so DEL and GC work without the container netns and
//! firewall state is programmed once per network instead of once per ADD.
//!
//! Layout under `<stateDir>/<network>/`:
//! - `lock`: flock held while attachments are registered/unregistered and while the
//!   firewall is installed or removed, so "first" and "last" attachment are exact;
//! - `attachments/<containerID>:<ifname>`: one JSON record per live attachment (host
//!   veth, bridge, addresses, boot id); O(1) to add and remove. A record of a previous
//!   boot describes links and a netns that died with it (a runtime may never send its
//!   DEL, e.g. Podman after a reboot): the emptiness test removes such records as it
//!   meets them, so a network whose pods all went with a reboot counts as empty;
//! - `firewall.json`: what was installed, stamped with the boot id and the inode of the
//!   host netns. A reboot or a different host netns makes the stamp stale, so the next
//!   ADD reinstalls instead of trusting rules that are gone.
//!
//! Every record is written atomically (temp file in `tmp/`, rename); a temp file a
//! killed writer left is replaced by the next write of its name and swept by GC.

use crate::error::{Error, Result};
use conf::Attachment;
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    #[serde(rename = "hostVeth")]
    pub host_veth: String,
    pub bridge: String,
    pub ips: Vec<IpNetwork>,
    #[serde(default)]
    pub vlan: Option<u16>,
    #[serde(default)]
    pub netns: String,
    /// The boot of the ADD; empty in records of builds before it was kept (or when the
    /// boot id could not be read), which count as this boot's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub boot: String,
}

impl AttachmentRecord {
    /// The current boot id, for a new record.
    pub fn this_boot() -> String {
        ipam::store::boot_id().unwrap_or_default().to_string()
    }

    /// Whether the record is known to be of a previous boot.
    pub fn from_other_boot(&self) -> bool {
        !self.boot.is_empty() && ipam::store::boot_id().is_some_and(|b| b != self.boot)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallStamp {
    #[serde(rename = "bootID")]
    pub boot_id: String,
    #[serde(rename = "netnsInode")]
    pub netns_inode: u64,
    pub subnets: Vec<IpNetwork>,
    pub masquerade: bool,
    pub isolate: bool,
    /// Written before `nft` runs and cleared after it succeeded: a process killed in
    /// between leaves a stamp that makes the next ADD reinstall and DEL/GC remove.
    #[serde(default)]
    pub pending: bool,
}

impl FirewallStamp {
    /// The stamp for the current boot and host netns.
    pub fn current(
        subnets: Vec<IpNetwork>,
        masquerade: bool,
        isolate: bool,
    ) -> Result<FirewallStamp> {
        let boot_id = ipam::store::boot_id()
            .ok_or_else(|| {
                Error::io(
                    "failed to read the boot id",
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )
            })?
            .to_string();
        let netns_inode = std::fs::metadata("/proc/thread-self/ns/net")
            .map_err(|e| Error::io("failed to stat the host netns", e))?
            .ino();
        Ok(FirewallStamp {
            boot_id,
            netns_inode,
            subnets,
            masquerade,
            isolate,
            pending: false,
        })
    }

    /// True when `self` (installed) already covers `want`: same boot, host netns and
    /// settings, each wanted subnet inside an installed one, and not `pending` (an
    /// install that failed or was killed covers nothing).
    pub fn covers(&self, want: &FirewallStamp) -> bool {
        !self.pending
            && self.boot_id == want.boot_id
            && self.netns_inode == want.netns_inode
            && self.masquerade == want.masquerade
            && self.isolate == want.isolate
            && crate::firewall::covers(&self.subnets, &want.subnets)
    }
}

/// The locked state of one network. Dropping it releases the lock.
pub struct NetState {
    dir: PathBuf,
    _lock: File,
}

fn record_name(a: &Attachment) -> String {
    // Container ids never contain ':', interface names never contain ':' or '/'.
    format!("{}:{}", a.container_id, a.ifname)
}

fn parse_record_name(name: &str) -> Option<Attachment> {
    name.split_once(':').map(|(c, i)| Attachment::new(c, i))
}

/// Atomic replace through `<network>/tmp/` (same file system as the target). Not
/// fsynced, unlike the IPAM store: every record here describes this boot only (links,
/// rules) and is stamped or re-derived, and readers tolerate a record a power loss
/// truncated; an fsync would cost the hot path ~0.4 ms for nothing.
fn write_atomic(tmp: &Path, path: &Path, data: &[u8]) -> Result<()> {
    ipam::store::fsio::write_replace(tmp, path, data, false)
        .map_err(|e| Error::io(format!("failed to write {}", path.display()), e))
}

impl NetState {
    /// Creates the network's directories on first use. Only a process that has just made
    /// them creates `lock`, so an existing `lock` means the layout exists and costs no
    /// `mkdir` (two first ADDs racing both make them; `create_dir_all` tolerates that).
    pub fn lock(state_dir: &str, network: &str) -> Result<NetState> {
        let dir = Path::new(state_dir).join(network);
        let lock_path = dir.join("lock");
        let open = |create| {
            File::options()
                .create(create)
                .truncate(false)
                .write(true)
                .open(&lock_path)
        };
        let f = match open(false) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                for sub in ["attachments", "tmp"] {
                    let d = dir.join(sub);
                    std::fs::create_dir_all(&d)
                        .map_err(|e| Error::io(format!("failed to create {}", d.display()), e))?;
                }
                open(true)
            }
            r => r,
        }
        .map_err(|e| Error::io(format!("failed to open {}", lock_path.display()), e))?;
        Self::locked(dir, f)
    }

    /// Like `lock`, but never creates anything: `None` when the network has no state
    /// (the detached reaper must not recreate a directory someone removed).
    pub fn lock_existing(state_dir: &str, network: &str) -> Result<Option<NetState>> {
        let dir = Path::new(state_dir).join(network);
        let lock_path = dir.join("lock");
        match File::options().write(true).open(&lock_path) {
            Ok(f) => Self::locked(dir, f).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(
                format!("failed to open {}", lock_path.display()),
                e,
            )),
        }
    }

    fn locked(dir: PathBuf, f: File) -> Result<NetState> {
        let lock_path = dir.join("lock");
        match ipam::store::fsio::lock_exclusive_within(&f, LOCK_WAIT) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::LockTimeout(format!(
                    "timed out after {}s waiting for {}",
                    LOCK_WAIT.as_secs(),
                    lock_path.display()
                )))
            }
            Err(e) => {
                return Err(Error::io(
                    format!("failed to lock {}", lock_path.display()),
                    e,
                ))
            }
        }
        Ok(NetState { dir, _lock: f })
    }

    /// Removes temp files killed writers left (GC's sweep; see `ipam::store::fsio`).
    pub fn clean_tmp(&self) -> Result<()> {
        let tmp = self.tmp();
        match ipam::store::fsio::clear_dir(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("failed to clean {}", tmp.display()), e))
            }
            _ => Ok(()),
        }
    }

    fn tmp(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    fn att_path(&self, a: &Attachment) -> PathBuf {
        self.dir.join("attachments").join(record_name(a))
    }

    pub fn register(&self, a: &Attachment, rec: &AttachmentRecord) -> Result<()> {
        let data = serde_json::to_vec(rec).map_err(|e| Error::StateCorrupt(e.to_string()))?;
        write_atomic(&self.tmp(), &self.att_path(a), &data)
    }

    pub fn get(&self, a: &Attachment) -> Result<Option<AttachmentRecord>> {
        read_json(&self.att_path(a))
    }

    /// Removes the record; returns it if it existed (a corrupt one is removed too: the
    /// attachment is going away either way).
    pub fn unregister(&self, a: &Attachment) -> Result<Option<AttachmentRecord>> {
        let p = self.att_path(a);
        let rec = read_json(&p).unwrap_or(None);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(rec),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("failed to remove {}", p.display()), e)),
        }
    }

    pub fn list(&self) -> Result<Vec<(Attachment, Option<AttachmentRecord>)>> {
        let dir = self.dir.join("attachments");
        let rd = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("failed to read {}", dir.display()), e))?;
        let mut out = Vec::new();
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if let Some(a) = parse_record_name(&name) {
                out.push((a, read_json(&ent.path()).unwrap_or(None)));
            }
        }
        Ok(out)
    }

    /// True when no attachment of this boot is registered. Reads records until it meets
    /// one of this boot (the first, but after a reboot), removing those of a previous
    /// boot on the way: each is read once, so the work is bounded by what is stale.
    pub fn is_empty(&self) -> Result<bool> {
        let dir = self.dir.join("attachments");
        let rd = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(format!("failed to read {}", dir.display()), e))?;
        for ent in rd.flatten() {
            let p = ent.path();
            // Unreadable or corrupt: counted as live, never removed here (GC names it).
            let Ok(Some(rec)) = read_json::<AttachmentRecord>(&p) else {
                return Ok(false);
            };
            if !rec.from_other_boot() {
                return Ok(false);
            }
            log::info!(
                "removing the record of {} (host veth {}): it is of a previous boot",
                ent.file_name().to_string_lossy(),
                rec.host_veth
            );
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(Error::io(format!("failed to remove {}", p.display()), e));
                }
            }
        }
        Ok(true)
    }

    pub fn firewall(&self) -> Result<Option<FirewallStamp>> {
        read_json(&self.dir.join("firewall.json"))
    }

    pub fn set_firewall(&self, stamp: Option<&FirewallStamp>) -> Result<()> {
        write_opt(&self.tmp(), &self.dir.join("firewall.json"), stamp)
    }

    pub fn teardown(&self) -> Result<Option<Teardown>> {
        read_json(&self.dir.join("teardown.json"))
    }

    pub fn set_teardown(&self, t: Option<&Teardown>) -> Result<()> {
        write_opt(&self.tmp(), &self.dir.join("teardown.json"), t)
    }
}

/// The file the network's running reaper (see `network::reap`) keeps flocked for its
/// whole life: whether one runs is a non-blocking flock away, exact where a PID could be
/// reused (the kernel drops the lock with the process).
pub fn reaper_lock_path(state_dir: &str, network: &str) -> PathBuf {
    Path::new(state_dir).join(network).join("reaper.lock")
}

/// A scheduled removal of the network's firewall state, carried out by the detached
/// process `pid` once `deadline_ms` (Unix ms) has passed and the network is still empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Teardown {
    #[serde(rename = "deadlineMs")]
    pub deadline_ms: u64,
    pub pid: i32,
}

/// Writes `value` atomically, or removes the file for `None`.
fn write_opt<T: Serialize>(tmp: &Path, p: &Path, value: Option<&T>) -> Result<()> {
    match value {
        Some(v) => {
            let data = serde_json::to_vec(v).map_err(|e| Error::StateCorrupt(e.to_string()))?;
            write_atomic(tmp, p, &data)
        }
        None => match std::fs::remove_file(p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("failed to remove {}", p.display()), e)),
        },
    }
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Result<Option<T>> {
    match std::fs::read(p) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::StateCorrupt(format!(
                "state file {} is corrupt ({e}); remove it and run GC",
                p.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("failed to read {}", p.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "vbridge-state-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::remove_dir_all(&d).ok();
        d
    }

    fn rec() -> AttachmentRecord {
        AttachmentRecord {
            host_veth: "vb0".into(),
            bridge: "cni0".into(),
            ips: vec!["10.0.0.2/24".parse().expect("net")],
            vlan: None,
            netns: "/run/netns/x".into(),
            boot: AttachmentRecord::this_boot(),
        }
    }

    /// A record of a previous boot does not keep the network alive and goes on the way;
    /// one of this boot, or without a boot (older builds), does.
    #[test]
    fn records_of_a_previous_boot_do_not_count() {
        let d = tmp();
        let st = NetState::lock(d.to_str().expect("utf8"), "n").expect("lock");
        let old = |id: &str| Attachment {
            container_id: id.into(),
            ifname: "eth0".into(),
        };
        let stale = AttachmentRecord {
            boot: "a-previous-boot".into(),
            ..rec()
        };
        st.register(&old("a"), &stale).expect("register");
        st.register(&old("b"), &stale).expect("register");
        assert!(st.is_empty().expect("empty"), "only stale records");
        assert!(st.list().expect("list").is_empty(), "stale records swept");
        st.register(&old("c"), &stale).expect("register");
        st.register(&old("d"), &rec()).expect("register");
        assert!(!st.is_empty().expect("empty"), "a live record");
        let legacy = AttachmentRecord {
            boot: String::new(),
            ..rec()
        };
        st.unregister(&old("d")).expect("unregister");
        st.register(&old("e"), &legacy).expect("register");
        assert!(!st.is_empty().expect("empty"), "a record without boot");
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn a_lock_taken_while_another_first_add_is_making_the_layout_finds_it_complete() {
        let d = tmp();
        // What a racing first ADD leaves between its two mkdirs: no tmp/, no lock yet.
        std::fs::create_dir_all(d.join("net/attachments")).expect("mkdir");
        let st = NetState::lock(d.to_str().expect("utf8"), "net").expect("lock");
        st.register(&Attachment::new("c1", "eth0"), &rec())
            .expect("register right after the first lock");
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn register_list_unregister() {
        let d = tmp();
        let s = NetState::lock(d.to_str().expect("utf8"), "net").expect("lock");
        let a = Attachment::new("c1", "eth0");
        assert!(s.is_empty().expect("empty"));
        s.register(&a, &rec()).expect("reg");
        assert!(!s.is_empty().expect("empty"));
        assert_eq!(s.get(&a).expect("get"), Some(rec()));
        assert_eq!(s.list().expect("list").len(), 1);
        assert_eq!(s.unregister(&a).expect("unreg"), Some(rec()));
        assert_eq!(s.unregister(&a).expect("unreg twice"), None);
        assert!(s.is_empty().expect("empty"));
        std::fs::remove_dir_all(&d).ok();
    }

    #[test]
    fn stamp_covers() {
        let a = FirewallStamp::current(vec!["10.0.0.0/24".parse().expect("n")], true, false)
            .expect("stamp");
        let mut b = a.clone();
        assert!(a.covers(&b));
        b.subnets.push("10.1.0.0/24".parse().expect("n"));
        assert!(!a.covers(&b));
        assert!(b.covers(&a));
        let mut c = a.clone();
        c.boot_id = "other".into();
        assert!(!c.covers(&a));
        let pending = FirewallStamp {
            pending: true,
            ..a.clone()
        };
        assert!(
            !pending.covers(&a),
            "a stamp whose nft may not have run covers nothing"
        );
    }

    #[test]
    fn corrupt_record_is_reported() {
        let d = tmp();
        let s = NetState::lock(d.to_str().expect("utf8"), "net").expect("lock");
        let a = Attachment::new("c1", "eth0");
        std::fs::write(d.join("net/attachments/c1:eth0"), "{trunc").expect("write");
        assert_eq!(
            s.get(&a).err().map(|e| e.code()),
            Some(conf::ErrorCode::StoreCorrupt)
        );
        std::fs::remove_dir_all(&d).ok();
    }
}
