//! The one error type of the `ipam` crate and its mapping onto CNI error codes.
//!
//! `Error::code` is the single place where a variant becomes a code; `From<Error> for
//! CniError` is the single place where it becomes the wire object. Every message says
//! what to change, because it ends up in a runtime's event log read by an operator.

use conf::{Attachment, CniError, ErrorCode};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Linux errno values worth a hint (std's `ErrorKind`s for them need Rust ≥ 1.83).
const ENOSPC: i32 = 28;
const EROFS: i32 = 30;
const EDQUOT: i32 = 122;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "network {network:?}: no free address left in range set {set} ({ranges}); widen the range, add a \
         range to the set, or release unused reservations (`vbridge-ipam ls {network}` lists them)"
    )]
    PoolExhausted {
        network: String,
        set: usize,
        ranges: String,
    },

    #[error(
        "requested address {ip} is already reserved for container {:?} interface {:?}; request a free \
         address or DEL that attachment first",
        .holder.container_id, .holder.ifname
    )]
    AddressTaken { ip: IpAddr, holder: Attachment },

    #[error(
        "container {:?} interface {:?} already holds {held}; DEL it before requesting {requested}",
        .attachment.container_id, .attachment.ifname
    )]
    AlreadyHolds {
        attachment: Attachment,
        held: String,
        requested: String,
    },

    /// A requested (or previously held) address lies outside what the config allows.
    #[error("{0}")]
    AddressOutOfRange(String),

    #[error("IPAM store file {} is corrupt: {reason}. To repair: {fix}", .path.display())]
    StoreCorrupt {
        path: PathBuf,
        reason: String,
        fix: String,
    },

    #[error(
        "IPAM store {} has format {found}, this vbridge-ipam reads format {supported}; upgrade \
         vbridge-ipam or point ipam.dataDir elsewhere",
        .path.display()
    )]
    UnsupportedFormat {
        path: PathBuf,
        found: u64,
        supported: u64,
    },

    #[error("cannot {op} {}: {source}{}", .path.display(), io_hint(.source))]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },

    #[error(
        "the IPAM store lock {} is still held by another process after {secs}s; retry later (a stuck \
         process holding it can be found with `fuser {}`)",
        .path.display(), .path.display()
    )]
    LockTimeout { path: PathBuf, secs: u64 },

    #[error(
        "container id {container_id:?} / ifname {ifname:?} cannot name a store record: {reason}"
    )]
    InvalidAttachment {
        container_id: String,
        ifname: String,
        reason: &'static str,
    },

    #[error("IPAM is not available: {0}")]
    NotAvailable(String),

    #[error("IPAM CHECK failed: {0}")]
    CheckFailed(String),

    #[error("GC released {released} attachment(s) but hit {} error(s): {}", .errors.len(), join(.errors))]
    Gc { released: usize, errors: Vec<Error> },

    #[error("internal error: {0}")]
    Internal(String),

    #[error(transparent)]
    Conf(#[from] conf::Error),
}

fn io_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(ENOSPC) | Some(EDQUOT) => {
            " (the disk is full: free space on the file system of ipam.dataDir)"
        }
        Some(EROFS) => " (read-only file system: ipam.dataDir must be writable)",
        _ if e.kind() == io::ErrorKind::PermissionDenied => {
            " (run as root or fix the permissions of ipam.dataDir)"
        }
        _ => "",
    }
}

fn join(errors: &[Error]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::PoolExhausted { .. } => ErrorCode::PoolExhausted,
            Error::AddressTaken { .. } | Error::AlreadyHolds { .. } => ErrorCode::AddressTaken,
            Error::AddressOutOfRange(_) => ErrorCode::AddressOutOfRange,
            Error::StoreCorrupt { .. } | Error::UnsupportedFormat { .. } => ErrorCode::StoreCorrupt,
            Error::Io { .. } => ErrorCode::Io,
            Error::LockTimeout { .. } => ErrorCode::TryAgainLater,
            Error::InvalidAttachment { .. } => ErrorCode::InvalidEnv,
            Error::NotAvailable(_) => ErrorCode::NotAvailable,
            Error::CheckFailed(_) => ErrorCode::CheckFailed,
            // GC reports everything; the first failure decides the code.
            Error::Gc { errors, .. } => errors.first().map_or(ErrorCode::Internal, Error::code),
            Error::Internal(_) => ErrorCode::Internal,
            Error::Conf(e) => e.code(),
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// A file that exists but cannot be parsed. The fix depends on what the file is, so
    /// it is derived from where the file lives in the store layout.
    pub fn corrupt(path: &Path, reason: impl fmt::Display) -> Error {
        Error::StoreCorrupt {
            path: path.to_path_buf(),
            reason: reason.to_string(),
            fix: repair_hint(path),
        }
    }
}

fn repair_hint(path: &Path) -> String {
    let parent = path
        .parent()
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    match (parent, name) {
        ("ips", ip) => format!(
            "if no container uses {ip}, delete the file; otherwise replace it with \
             {{\"containerID\":\"<id>\",\"ifname\":\"<ifname>\",\"since\":0,\"boot\":\"\"}} \
             (see `vbridge-ipam --help`, REPAIR)"
        ),
        ("attachments", _) => "replace it with the JSON list of that attachment's addresses (the ips/ files naming \
             it), or delete it together with those ips/ files if the container is gone (see `vbridge-ipam --help`, REPAIR)"
            .to_string(),
        (_, "journal") => "delete it, then check the addresses it names with `vbridge-ipam ls` \
             (see `vbridge-ipam --help`, REPAIR)"
            .to_string(),
        (_, "meta.json") => "rewrite it as {\"format\":2}".to_string(),
        _ => "delete the file (see `vbridge-ipam --help`, REPAIR)".to_string(),
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> CniError {
        match e {
            // Keep the protocol layer's own mapping (including pass-through CNI errors).
            Error::Conf(inner) => CniError::from(inner),
            other => CniError::new(other.code(), other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let att = Attachment::new("c", "eth0");
        let ip: IpAddr = "10.0.0.2".parse().expect("ip");
        let cases: Vec<(Error, u32)> = vec![
            (
                Error::PoolExhausted {
                    network: "n".into(),
                    set: 0,
                    ranges: "x".into(),
                },
                100,
            ),
            (
                Error::AddressTaken {
                    ip,
                    holder: att.clone(),
                },
                101,
            ),
            (Error::AddressOutOfRange("x".into()), 102),
            (Error::corrupt(Path::new("/d/n/ips/10.0.0.2"), "bad"), 107),
            (
                Error::io("write", "/x", io::Error::from_raw_os_error(ENOSPC)),
                5,
            ),
            (
                Error::LockTimeout {
                    path: "/x".into(),
                    secs: 10,
                },
                11,
            ),
            (Error::NotAvailable("x".into()), 50),
            (Error::CheckFailed("x".into()), 111),
            (Error::Conf(conf::Error::config("x")), 7),
        ];
        for (e, code) in cases {
            assert_eq!(CniError::from(e).code, code);
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = Error::corrupt(Path::new("/d/n/ips/10.0.0.2"), "expected value");
        let m = e.to_string();
        assert!(
            m.contains("/d/n/ips/10.0.0.2") && m.contains("delete the file"),
            "{m}"
        );
        let m = Error::io("write", "/x", io::Error::from_raw_os_error(ENOSPC)).to_string();
        assert!(m.contains("disk is full"), "{m}");
    }
}
