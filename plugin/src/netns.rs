//! Network namespaces.
//!
//! Invariant: `setns` is per thread, so a namespace is entered only through
//! `NetnsGuard`, which restores the thread's original namespace on drop, and only through
//! `in_netns_here`, which refuses while a runtime is current: on a short-lived side thread
//! (`netlink::connect_in`'s) or on ADD's main thread before it runs the runtime. No task
//! (netlink requests, `nft`) ever runs outside the host namespace; sockets opened in a
//! namespace stay bound to it after the thread leaves.

use crate::error::{Error, Result};
use nix::sched::{setns, CloneFlags};
use std::fs::File;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, RawFd};

const NSFS_MAGIC: i64 = 0x6e73_6673;
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// An open network namespace file.
pub struct Netns {
    file: File,
    path: String,
}

impl Netns {
    /// Opens `path` and checks it is a namespace (nsfs bind mount or /proc/*/ns/net).
    pub fn open(path: &str) -> Result<Netns> {
        let file = File::open(path).map_err(|e| {
            Error::NetnsNotFound(format!("failed to open netns {path:?} (CNI_NETNS): {e}"))
        })?;
        let st = nix::sys::statfs::fstatfs(&file)
            .map_err(|e| Error::NetnsNotFound(format!("failed to statfs netns {path:?}: {e}")))?;
        #[allow(clippy::unnecessary_cast)]
        let magic = st.filesystem_type().0 as i64;
        if magic != NSFS_MAGIC && magic != PROC_SUPER_MAGIC {
            return Err(Error::NetnsNotFound(format!(
                "CNI_NETNS {path:?} is not a network namespace (not an nsfs mount)"
            )));
        }
        Ok(Netns {
            file,
            path: path.to_string(),
        })
    }

    /// Refuses the namespace the plugin itself runs in: the container end would land in
    /// the host, and DEL would then remove a host interface (libcni's skel refuses it
    /// too, unless CNI_NETNS_OVERRIDE is set).
    pub fn ensure_not_own(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let own = std::fs::metadata("/proc/thread-self/ns/net")
            .map_err(|e| Error::io("failed to stat the plugin's netns", e))?;
        let this = self
            .file
            .metadata()
            .map_err(|e| Error::io(format!("failed to stat netns {:?}", self.path), e))?;
        let overridden = std::env::var("CNI_NETNS_OVERRIDE")
            .is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        if own.dev() == this.dev() && own.ino() == this.ino() && !overridden {
            return Err(Error::Conf(conf::Error::InvalidNetns(format!(
                "CNI_NETNS {:?} is the plugin's own network namespace; give the container's",
                self.path
            ))));
        }
        Ok(())
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

/// While alive, the current thread is in the target namespace. Not `Send`: it must be
/// dropped on the thread that created it.
pub struct NetnsGuard {
    orig: File,
    _not_send: PhantomData<*const ()>,
}

impl NetnsGuard {
    pub fn enter(target: &Netns) -> Result<NetnsGuard> {
        let orig = File::open("/proc/thread-self/ns/net")
            .map_err(|e| Error::io("failed to open the current netns", e))?;
        setns(target.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
            Error::NetnsNotFound(format!("failed to enter netns {:?}: {e}", target.path))
        })?;
        Ok(NetnsGuard {
            orig,
            _not_send: PhantomData,
        })
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        if let Err(e) = setns(self.orig.as_fd(), CloneFlags::CLONE_NEWNET) {
            // A thread stranded in the container namespace could program the wrong
            // host; nothing after this point can be trusted.
            log::error!("failed to restore the original netns: {e}; aborting");
            std::process::abort();
        }
    }
}

/// Runs `f` on the calling thread, inside `ns` for the duration of the call. Refused while
/// a tokio runtime is current on the thread (inside `block_on` or `enter`): no task may
/// ever run outside the host namespace.
pub fn in_netns_here<T>(ns: &Netns, f: impl FnOnce() -> Result<T>) -> Result<T> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(Error::Internal(
            "refusing to enter a netns on the runtime thread".into(),
        ));
    }
    let _guard = NetnsGuard::enter(ns)?;
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_path_is_netns_not_found() {
        let e = Netns::open("/nonexistent/netns").err().expect("error");
        assert_eq!(e.code(), conf::ErrorCode::NetnsNotFound);
    }

    #[test]
    fn regular_file_is_not_a_netns() {
        let f = std::env::temp_dir().join(format!("vbridge-not-a-netns-{}", std::process::id()));
        std::fs::write(&f, "x").expect("write");
        let e = Netns::open(f.to_str().expect("utf8")).err().expect("error");
        std::fs::remove_file(&f).ok();
        assert_eq!(e.code(), conf::ErrorCode::NetnsNotFound);
    }

    #[test]
    fn a_proc_netns_path_opens() {
        // Runtimes may pass /proc/<pid>/ns/net instead of a bind mount.
        assert!(Netns::open("/proc/thread-self/ns/net").is_ok());
    }
}
