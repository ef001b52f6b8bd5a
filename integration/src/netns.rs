//! Throwaway network namespaces.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use nix::sched::{setns, CloneFlags};

/// Serialises `ip netns add/del`: concurrent first-time setup of the /run/netns mount races.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

/// A named network namespace (`/run/netns/<name>`) with `lo` up. On drop every link inside is
/// deleted (so veth peers elsewhere vanish at once) and the namespace is removed.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
}

impl Netns {
    /// Creates `vbt-<pid>-<n>`.
    pub fn new() -> Netns {
        let name = crate::tmp::unique_name("vbt");
        {
            let _lock = NETNS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            run_ip(&["netns", "add", &name]);
        }
        let path = Path::new("/run/netns").join(&name);
        let ns = Netns { name, path };
        run_ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path as a `CNI_NETNS` value.
    pub fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    /// Deletes the namespace now (e.g. to test DEL after the container is gone).
    pub fn delete(self) {
        drop(self)
    }

    fn delete_links(&self) {
        for link in crate::ip::links(self) {
            if link.ifname != "lo" {
                // A veth whose peer was already removed is gone too; ignore failures.
                let _status = Command::new("ip")
                    .args(["-n", &self.name, "link", "del", &link.ifname])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.path.exists() {
            return;
        }
        self.delete_links();
        // vbridge's per-netns lock of the shared nftables sets: one file per netns ever
        // used as a host, so the tests' hundreds would pile up in /run. Removed while the
        // netns still exists: its inode cannot have been reused yet.
        if let Ok(meta) = std::fs::metadata(&self.path) {
            use std::os::unix::fs::MetadataExt;
            let lock = format!("/run/vbridge/shared-sets-{}.lock", meta.ino());
            let _ignored = std::fs::remove_file(lock);
            let pinned = format!("/run/vbridge/pinned-{}", meta.ino());
            let _ignored = std::fs::remove_dir_all(pinned);
        }
        let _lock = NETNS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let ok = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        if !matches!(ok, Ok(s) if s.success()) {
            eprintln!("warning: ip netns del {} failed", self.name);
        }
    }
}

/// Runs `ip ARGS`, panicking with its stderr on failure.
pub(crate) fn run_ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("spawn ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Moves the current thread into a netns; moves it back on drop.
pub struct NetnsGuard {
    orig: File,
}

impl NetnsGuard {
    pub fn enter(ns: &Netns) -> io::Result<NetnsGuard> {
        NetnsGuard::enter_path(ns.path())
    }

    /// Enters the namespace bound at `path` (for threads that cannot borrow the [`Netns`]).
    pub fn enter_path(path: &Path) -> io::Result<NetnsGuard> {
        let orig = File::open("/proc/thread-self/ns/net")?;
        let target = File::open(path)?;
        setns(&target, CloneFlags::CLONE_NEWNET)?;
        Ok(NetnsGuard { orig })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.orig, CloneFlags::CLONE_NEWNET) {
            // A thread stuck in a test netns would send later work to the wrong place.
            eprintln!("fatal: cannot restore netns: {e}");
            std::process::abort();
        }
    }
}
