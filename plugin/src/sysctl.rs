//! Sysctl writes in the calling thread's netns (`/proc/sys/net` resolves per thread).

use crate::error::{Error, Result};
use crate::netns::{Netns, NetnsGuard};

fn write(path: &str, value: &str) -> Result<()> {
    // Reading first avoids a write (and its netlink notification) on the steady path.
    if std::fs::read_to_string(path)
        .map(|v| v.trim() == value)
        .unwrap_or(false)
    {
        return Ok(());
    }
    std::fs::write(path, value).map_err(|e| Error::io(format!("failed to set {path}"), e))
}

/// A host link facing the pods (a bridge vbridge made or routes for, a VLAN gateway end)
/// takes no router advertisements: a pod sending one would otherwise become the host's
/// IPv6 default router whenever forwarding is off (CVE-2020-10749); the reference sets
/// this on its bridge. A host without IPv6 has nothing to set; a failure (a read-only
/// /proc/sys) is logged, not fatal, as in the reference.
pub fn refuse_router_advertisements(ifname: &str) {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/accept_ra");
    if let Err(e) = write(&path, "0") {
        if !std::path::Path::new("/proc/sys/net/ipv6").exists() {
            return;
        }
        log::warn!("{e}: {ifname} may take router advertisements from pods");
    }
}

/// Lets `ifname` in `ns` hold IPv6 addresses: it inherits `disable_ipv6` from the
/// namespace's default, which a runtime may have set, and adding an address then fails
/// with EACCES. The reference clears it too. From a short-lived thread: the runtime's
/// thread never leaves the host netns.
pub fn enable_ipv6_in(ns: &Netns, ifname: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    std::thread::scope(|s| {
        s.spawn(|| {
            let _inside = NetnsGuard::enter(ns)?;
            write(&path, "0")
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Internal("the sysctl thread panicked".into())))
    })
}

pub fn enable_ipv4_forwarding() -> Result<()> {
    write("/proc/sys/net/ipv4/ip_forward", "1")
}

pub fn enable_ipv6_forwarding() -> Result<()> {
    write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
}
