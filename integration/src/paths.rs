//! Where plugin binaries are found.

use std::path::{Path, PathBuf};

/// Directory of Debian's reference CNI plugins.
pub const REFERENCE_DIR: &str = "/usr/lib/cni";

/// Directory holding the built `vbridge` and `vbridge-ipam`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VBRIDGE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("debug");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug")
}

/// Plugin search path, in the order the runtime searches it.
pub fn search_dirs() -> Vec<PathBuf> {
    vec![bin_dir(), PathBuf::from(REFERENCE_DIR)]
}

/// `CNI_PATH` as handed to plugins: our binaries first, then the reference plugins.
pub fn cni_path() -> String {
    let dirs: Vec<String> = search_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    dirs.join(":")
}

/// Resolves a plugin `type` through the search path; panics with a hint when it is missing.
pub fn find_plugin(kind: &str) -> PathBuf {
    search_dirs()
        .into_iter()
        .map(|d| d.join(kind))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("plugin {kind:?} not found in {} (run `cargo build --workspace` or set VBRIDGE_BIN_DIR)", cni_path())
        })
}

/// Path of the built `vbridge` binary.
pub fn vbridge() -> PathBuf {
    find_plugin("vbridge")
}

/// Path of the built `vbridge-ipam` binary.
pub fn vbridge_ipam() -> PathBuf {
    find_plugin("vbridge-ipam")
}
