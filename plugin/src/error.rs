//! The plugin's one error type. `From<Error> for CniError` below is the only place a
//! plugin failure becomes a CNI code.

use conf::{CniError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Conf(#[from] conf::Error),
    #[error(transparent)]
    Ipam(#[from] ipam::Error),
    #[error(transparent)]
    Firewall(#[from] crate::firewall::Error),
    /// A delegated IPAM plugin's own error, passed through with its code.
    #[error("{0}")]
    Delegate(CniError),
    #[error("failed to run IPAM plugin {plugin:?}: {msg}")]
    IpamExec { plugin: String, msg: String },
    #[error("{ctx}: {source}")]
    Netlink {
        ctx: String,
        source: rtnetlink::Error,
    },
    #[error("{ctx}: {source}")]
    Io { ctx: String, source: std::io::Error },
    #[error("{0}")]
    NetnsNotFound(String),
    #[error("{0}")]
    InterfaceExists(String),
    #[error("{0}")]
    WrongLinkKind(String),
    #[error("{0}")]
    KernelFeature(String),
    #[error("{0}")]
    StateCorrupt(String),
    #[error("{0}")]
    LockTimeout(String),
    #[error("CHECK failed: {0}")]
    Check(String),
    #[error("{0}")]
    DuplicateAddress(String),
    /// STATUS: an ADD could not succeed now.
    #[error("{0}")]
    NotAvailable(String),
    /// A broken assumption of vbridge itself (a bug), e.g. a helper thread that panicked.
    #[error("internal error: {0}")]
    Internal(String),
    /// DEL and GC keep going and report every failure at the end.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// errno values we react to.
pub const EACCES: i32 = 13;
pub const EADDRNOTAVAIL: i32 = 99;
pub const EAFNOSUPPORT: i32 = 97;
pub const EEXIST: i32 = 17;
pub const ENODEV: i32 = 19;
pub const ENOENT: i32 = 2;
pub const EOPNOTSUPP: i32 = 95;

impl Error {
    pub fn netlink(ctx: impl Into<String>, source: rtnetlink::Error) -> Self {
        Error::Netlink {
            ctx: ctx.into(),
            source,
        }
    }

    pub fn io(ctx: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            ctx: ctx.into(),
            source,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Conf(e) => e.code(),
            Error::Ipam(e) => e.code(),
            Error::Firewall(e) => e.code(),
            Error::Delegate(_) => ErrorCode::Internal,
            Error::IpamExec { .. } => ErrorCode::IpamExec,
            Error::Netlink { .. } => ErrorCode::Netlink,
            Error::Io { .. } => ErrorCode::Io,
            Error::NetnsNotFound(_) => ErrorCode::NetnsNotFound,
            Error::InterfaceExists(_) => ErrorCode::InterfaceExists,
            Error::WrongLinkKind(_) => ErrorCode::WrongLinkKind,
            Error::KernelFeature(_) => ErrorCode::KernelFeatureMissing,
            Error::StateCorrupt(_) => ErrorCode::StoreCorrupt,
            Error::LockTimeout(_) => ErrorCode::TryAgainLater,
            Error::Check(_) => ErrorCode::CheckFailed,
            Error::DuplicateAddress(_) => ErrorCode::DuplicateAddress,
            Error::NotAvailable(_) => ErrorCode::NotAvailable,
            Error::Internal(_) => ErrorCode::Internal,
            Error::Many(v) => v.first().map(Error::code).unwrap_or(ErrorCode::Internal),
        }
    }

    /// The CNI code reported for this error: `code()`, or a delegated plugin's own code,
    /// which `ErrorCode` cannot name.
    fn raw_code(&self) -> u32 {
        match self {
            Error::Delegate(c) => c.code,
            Error::Many(v) => v
                .first()
                .map_or(ErrorCode::Internal.as_u32(), Error::raw_code),
            other => other.code().as_u32(),
        }
    }

    /// Collapses a list of failures: none → Ok, one → itself, more → `Many`.
    pub fn from_list(mut errs: Vec<Error>) -> Result<()> {
        match errs.len() {
            0 => Ok(()),
            1 => Err(errs.remove(0)),
            _ => Err(Error::Many(errs)),
        }
    }
}

impl Error {
    /// The kernel's errno of a failed netlink request.
    pub fn netlink_errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { source, .. } => errno(source),
            _ => None,
        }
    }
}

/// The kernel's errno inside a netlink error, if any.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> Self {
        match e {
            Error::Conf(c) => c.into(),
            Error::Ipam(i) => i.into(),
            Error::Delegate(c) => c,
            Error::Many(mut v) if v.len() == 1 => v.remove(0).into(),
            // The first failure's code, a delegate's own included (`code()` cannot name it).
            many @ Error::Many(_) => {
                CniError::with_raw_code(many.raw_code(), many.to_string(), None)
            }
            other => CniError::new(other.code(), other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_failures_report_the_first_ones_code_a_delegates_included() {
        let delegate = || Error::Delegate(CniError::with_raw_code(11, "busy", None));
        let many = Error::Many(vec![delegate(), Error::LockTimeout("state".into())]);
        let e: CniError = many.into();
        assert_eq!(e.code, 11);
        assert!(
            e.msg.contains("busy") && e.msg.contains("state"),
            "{}",
            e.msg
        );
        let many = Error::Many(vec![Error::LockTimeout("state".into()), delegate()]);
        assert_eq!(CniError::from(many).code, 11);
        let many = Error::Many(vec![Error::Internal("x".into()), delegate()]);
        assert_eq!(CniError::from(many).code, 999);
    }
}
