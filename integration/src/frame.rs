//! Raw Ethernet frames sent from inside a namespace: what `ping` cannot forge (a chosen
//! source MAC on a link-local destination, say).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::libc;

use crate::netns::{Netns, NetnsGuard};

/// An LLDP-addressed frame (01:80:c2:00:00:0e, ethertype 0x88cc, zero payload) from `src`:
/// a bridge never forwards it, but may learn its source.
pub fn link_local_from(src: [u8; 6]) -> Vec<u8> {
    let mut f = vec![0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x88, 0xcc]);
    f.resize(60, 0);
    f
}

/// Sends `frame` (destination and source MAC included) out of `ifname` in `ns`.
pub fn send(ns: &Netns, ifname: &str, frame: &[u8]) -> io::Result<()> {
    let _in = NetnsGuard::enter_path(ns.path())?;
    let name = CString::new(ifname).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: a NUL-terminated name; the call only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain socket(2); the descriptor is owned right below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_ifindex =
        i32::try_from(index).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: `frame` and `to` are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&raw const to).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
