//! Protocol layer of vbridge: everything a CNI plugin needs that is pure logic.
//!
//! No syscalls live here (apart from reading stdin/env in `skel`), so every rule of
//! the spec — env validation, config parsing, result conversion, error codes — is
//! unit tested without root.

pub mod env;
pub mod error;
pub mod hash;
pub mod ipamconf;
pub mod log;
pub mod mac;
pub mod netconf;
pub mod result;
pub mod skel;
pub mod validate;
pub mod version;

pub use env::{Attachment, CmdArgs, Command};
pub use error::{CniError, Error, ErrorCode};
pub use result::CniResult;
pub use version::Version;

pub type Result<T, E = Error> = std::result::Result<T, E>;
