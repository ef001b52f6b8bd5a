//! Unique names and per-test temporary directories.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A number unique within this test process.
pub fn unique() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A name unique on this machine for the life of this process: `<prefix>-<pid>-<n>`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), unique())
}

/// A directory under /tmp removed (recursively) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(unique_name("vbt"));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `self/rel` as a string, for config values.
    pub fn sub(&self, rel: &str) -> String {
        self.path.join(rel).display().to_string()
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: removing {}: {e}", self.path.display());
        }
    }
}
