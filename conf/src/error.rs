//! Error codes and the wire error object.
//!
//! `ErrorCode` is the single table of codes vbridge emits. Each crate has one error
//! enum whose `code()` maps every variant onto this table; `CniError` is what `skel`
//! prints on stdout.

use serde::Serialize;

/// CNI error codes: 1–11 and 50/51 from the spec, 100+ ours, 999 for bugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnv = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    /// libcni's `ErrInvalidNetNS`: its skel refuses the plugin's own netns with it.
    InvalidNetns = 8,
    TryAgainLater = 11,
    NotAvailable = 50,
    LimitedConnectivity = 51,
    /// Every address of the pool is reserved.
    PoolExhausted = 100,
    /// A requested address (runtimeConfig.ips, args.cni.ips, CNI_ARGS IP=) is held by another attachment.
    AddressTaken = 101,
    /// A requested address lies in no configured range, or is the gateway/excluded.
    AddressOutOfRange = 102,
    /// The interface to create already exists in the container (or the host veth name is taken).
    InterfaceExists = 103,
    /// The netns path does not exist or is not a network namespace.
    NetnsNotFound = 104,
    /// The running kernel lacks a feature the config asks for (e.g. bridge VLAN filtering).
    KernelFeatureMissing = 105,
    /// A link named by the config exists but has the wrong kind (e.g. `bridge` is a veth).
    WrongLinkKind = 106,
    /// The IPAM store on disk is corrupt; see the README for the repair procedure.
    StoreCorrupt = 107,
    /// nftables could not be programmed (missing `nft`, kernel without nf_tables...).
    Firewall = 108,
    /// A netlink request failed.
    Netlink = 109,
    /// The delegated IPAM plugin could not be found or run.
    IpamExec = 110,
    /// CHECK found the live state differs from prevResult.
    CheckFailed = 111,
    /// With `enabledad`: IPv6 duplicate address detection found the address in use, or
    /// did not finish in time.
    DuplicateAddress = 112,
    Internal = 999,
}

impl ErrorCode {
    pub fn as_u32(self) -> u32 {
        self as u32
    }
}

/// The error object of the spec, as printed on stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CniError {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        CniError {
            cni_version: crate::version::CURRENT.to_string(),
            code: code.as_u32(),
            msg: msg.into(),
            details: None,
        }
    }

    /// A delegate's error keeps the delegate's own code (libcni passes it through too).
    pub fn with_raw_code(code: u32, msg: impl Into<String>, details: Option<String>) -> Self {
        CniError {
            cni_version: crate::version::CURRENT.to_string(),
            code,
            msg: msg.into(),
            details,
        }
    }

    pub fn details(mut self, d: impl Into<String>) -> Self {
        self.details = Some(d.into());
        self
    }

    pub fn to_json(&self) -> String {
        // Serializing a struct of strings and an integer cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                r#"{{"cniVersion":"{}","code":999,"msg":"internal error"}}"#,
                self.cni_version
            )
        })
    }
}

impl std::fmt::Display for CniError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code)?;
        if let Some(d) = &self.details {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// Errors of the protocol layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("incompatible CNI version: {0}")]
    Version(String),
    #[error("invalid CNI_NETNS: {0}")]
    InvalidNetns(String),
    #[error("invalid environment: {0}")]
    Env(String),
    #[error("{0}")]
    Io(String),
    #[error("failed to decode {what}: {msg}")]
    Decode { what: String, msg: String },
    #[error("invalid network config: {0}")]
    Config(String),
}

impl Error {
    /// A config error's own message, without the "invalid network config" prefix, so it
    /// can be reported again later as a config error.
    pub fn message(self) -> String {
        match self {
            Error::Config(m) => m,
            other => other.to_string(),
        }
    }

    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Version(_) => ErrorCode::IncompatibleVersion,
            Error::InvalidNetns(_) => ErrorCode::InvalidNetns,
            Error::Env(_) => ErrorCode::InvalidEnv,
            Error::Io(_) => ErrorCode::Io,
            Error::Decode { .. } => ErrorCode::Decode,
            Error::Config(_) => ErrorCode::InvalidConfig,
        }
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> Self {
        CniError::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_shape() {
        let e = CniError::new(ErrorCode::InvalidConfig, "bad subnet").details("x");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).expect("json");
        assert_eq!(v["code"], 7);
        assert_eq!(v["msg"], "bad subnet");
        assert_eq!(v["details"], "x");
        assert_eq!(v["cniVersion"], "1.1.0");
    }

    #[test]
    fn details_omitted_when_absent() {
        let e = CniError::new(ErrorCode::Io, "x");
        assert!(!e.to_json().contains("details"));
    }

    #[test]
    fn conf_error_codes() {
        assert_eq!(CniError::from(Error::Env("x".into())).code, 4);
        assert_eq!(CniError::from(Error::config("x")).code, 7);
        assert_eq!(CniError::from(Error::Version("x".into())).code, 1);
    }
}
