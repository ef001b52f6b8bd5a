//! Sysctl writes in the calling thread's netns (`/proc/sys/net` resolves per thread).

use crate::error::{Error, Result};

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

pub fn enable_ipv4_forwarding() -> Result<()> {
    write("/proc/sys/net/ipv4/ip_forward", "1")
}

pub fn enable_ipv6_forwarding() -> Result<()> {
    write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
}
