//! Whether nftables tables and chains exist, asked over a raw `NETLINK_NETFILTER`
//! socket.
//!
//! Asking for a network's two tables and its chain takes ~10 µs (measured for the
//! tables) where `nft list` costs an exec (3–8 ms), so a steady-state ADD can afford it:
//! a ruleset flushed behind our back (Debian's nftables.service reload does `flush
//! ruleset`) must not go unnoticed. The socket lives in the netns of the calling thread.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::libc;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFPROTO_INET: u8 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// A kernel that answers nothing must not hang an ADD.
const RECV_TIMEOUT: libc::timeval = libc::timeval {
    tv_sec: 1,
    tv_usec: 0,
};

/// An object whose existence is asked for.
#[derive(Debug, Clone, Copy)]
pub(super) enum Object<'a> {
    Table(&'a str),
    Chain { table: &'a str, name: &'a str },
}

impl Object<'_> {
    fn request(&self, seq: u32) -> io::Result<Vec<u8>> {
        match *self {
            Object::Table(name) => get(
                seq,
                NFT_MSG_GETTABLE,
                NFPROTO_INET,
                &[(NFTA_TABLE_NAME, name)],
            ),
            Object::Chain { table, name } => get(
                seq,
                NFT_MSG_GETCHAIN,
                NFPROTO_INET,
                &[(NFTA_CHAIN_TABLE, table), (NFTA_CHAIN_NAME, name)],
            ),
        }
    }
}

/// Whether every object of family inet in `objects` exists.
pub(super) fn inet_objects_exist(objects: &[Object]) -> io::Result<bool> {
    let sock = open()?;
    for (seq, object) in (1u32..).zip(objects) {
        send(&sock, &object.request(seq)?)?;
        if !answer(&sock, seq)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn open() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the descriptor is owned (and closed) by the OwnedFd.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: SO_RCVTIMEO reads one `timeval` from the pointer, of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&RECV_TIMEOUT as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sock)
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A get request (`NFT_MSG_GETTABLE`, `NFT_MSG_GETCHAIN`) naming its object by string
/// attributes, acknowledged (`NLM_F_ACK`) so that both outcomes end in an
/// `NLMSG_ERROR`: 0 when it exists, `-ENOENT` when it (or its table) does not.
fn get(seq: u32, kind: u16, family: u8, attrs: &[(u16, &str)]) -> io::Result<Vec<u8>> {
    let mut payload = Vec::new();
    for &(kind, value) in attrs {
        push_str_attr(&mut payload, kind, value)?;
    }
    let total = NLMSG_HDRLEN + NFGENMSG_LEN + payload.len();
    let Ok(total32) = u32::try_from(total) else {
        return Err(invalid("request too long"));
    };
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    let mut m = Vec::with_capacity(total);
    m.extend_from_slice(&total32.to_ne_bytes());
    m.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | kind).to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family, NFNETLINK_V0, res_id (big endian, unused here).
    m.extend_from_slice(&[family, 0, 0, 0]);
    m.extend_from_slice(&payload);
    Ok(m)
}

/// A NUL-terminated string attribute, padded to 4 bytes.
fn push_str_attr(out: &mut Vec<u8>, kind: u16, value: &str) -> io::Result<()> {
    if value.is_empty() || value.contains('\0') {
        return Err(invalid("bad object name"));
    }
    let Ok(len) = u16::try_from(4 + value.len() + 1) else {
        return Err(invalid("object name too long"));
    };
    let end = out.len() + align4(usize::from(len));
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value.as_bytes());
    out.resize(end, 0);
    Ok(())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

fn send(sock: &OwnedFd, msg: &[u8]) -> io::Result<()> {
    // SAFETY: the kernel reads `msg.len()` bytes from a live slice; an unconnected
    // netlink socket sends to the kernel.
    let n = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    match usize::try_from(n) {
        Ok(n) if n == msg.len() => Ok(()),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short netlink send",
        )),
        Err(_) => Err(io::Error::last_os_error()),
    }
}

/// Reads until the acknowledgement of `seq`: whether the object exists.
fn answer(sock: &OwnedFd, seq: u32) -> io::Result<bool> {
    let mut buf = vec![0u8; 8192];
    loop {
        // SAFETY: the kernel writes at most `buf.len()` bytes into the live buffer.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        if let Some(errno) = ack_in(&buf[..n], seq)? {
            return match errno {
                0 => Ok(true),
                libc::ENOENT => Ok(false),
                e => Err(io::Error::from_raw_os_error(e)),
            };
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("netlink reply: {what}"))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The positive errno of the `NLMSG_ERROR` answering `seq` in one datagram (0 = ack),
/// `None` if it holds none; other messages (the object itself) are skipped.
fn ack_in(mut b: &[u8], seq: u32) -> io::Result<Option<i32>> {
    while !b.is_empty() {
        let (Some(len), Some(kind), Some(s)) = (u32_at(b, 0), u16_at(b, 4), u32_at(b, 8)) else {
            return Err(bad("truncated header"));
        };
        let len = len as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            return Err(bad("bad message length"));
        }
        if kind == NLMSG_ERROR && s == seq {
            let code = u32_at(b, NLMSG_HDRLEN).ok_or_else(|| bad("truncated error"))?;
            return Ok(Some((code as i32).saturating_neg()));
        }
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align4(m.len()), 0);
        m
    }

    fn error(seq: u32, errno: i32) -> Vec<u8> {
        msg(NLMSG_ERROR, seq, &(-errno).to_ne_bytes())
    }

    fn table(seq: u32, name: &str) -> io::Result<Vec<u8>> {
        Object::Table(name).request(seq)
    }

    #[test]
    fn request_layout() {
        let m = table(7, "vbridge").expect("request");
        assert_eq!(m.len(), 16 + 4 + 12);
        assert_eq!(u32_at(&m, 0), Some(32));
        assert_eq!(u16_at(&m, 4), Some(0x0a01));
        assert_eq!(u32_at(&m, 8), Some(7));
        assert_eq!(&m[16..20], &[1, 0, 0, 0]);
        assert_eq!(u16_at(&m, 20), Some(4 + 8));
        assert_eq!(u16_at(&m, 22), Some(NFTA_TABLE_NAME));
        assert_eq!(&m[24..32], b"vbridge\0");
        assert!(table(1, "").is_err());
        assert!(table(1, "a\0b").is_err());
    }

    #[test]
    fn chain_request_names_table_then_chain() {
        let chain = Object::Chain {
            table: "vbridge",
            name: "isolate-a",
        };
        let m = chain.request(3).expect("request");
        // Header, nfgenmsg, "vbridge\0" (12 with its header), "isolate-a\0" padded (16).
        assert_eq!(m.len(), 16 + 4 + 12 + 16);
        assert_eq!(u32_at(&m, 0), Some(48));
        assert_eq!(u16_at(&m, 4), Some(0x0a04));
        assert_eq!(u16_at(&m, 20), Some(12));
        assert_eq!(u16_at(&m, 22), Some(NFTA_CHAIN_TABLE));
        assert_eq!(&m[24..32], b"vbridge\0");
        assert_eq!(u16_at(&m, 32), Some(4 + 10));
        assert_eq!(u16_at(&m, 34), Some(NFTA_CHAIN_NAME));
        assert_eq!(&m[36..46], b"isolate-a\0");
        assert_eq!(&m[46..48], &[0, 0]);
        let bad = Object::Chain {
            table: "vbridge",
            name: "",
        };
        assert!(bad.request(1).is_err());
    }

    #[test]
    fn acks_are_found_past_other_messages() {
        let mut d = msg(0x0a00, 3, &[1, 0, 0, 0, 9, 9]);
        d.extend(error(2, libc::ENOENT));
        d.extend(error(3, 0));
        assert_eq!(ack_in(&d, 3).expect("parse"), Some(0));
        assert_eq!(ack_in(&d, 2).expect("parse"), Some(libc::ENOENT));
        assert_eq!(ack_in(&d, 4).expect("parse"), None);
        assert_eq!(ack_in(&[], 1).expect("parse"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for d in [
            vec![1u8, 2, 3],
            vec![0u8; 16],
            msg(NLMSG_ERROR, 1, &[])[..16].to_vec(),
            {
                let mut m = error(1, 0);
                m[0] = 200;
                m
            },
        ] {
            assert!(ack_in(&d, 1).is_err(), "{d:?}");
        }
        // i32::MIN must not overflow when negated.
        let d = msg(NLMSG_ERROR, 1, &i32::MIN.to_ne_bytes());
        assert_eq!(ack_in(&d, 1).expect("parse"), Some(i32::MAX));
    }
}
