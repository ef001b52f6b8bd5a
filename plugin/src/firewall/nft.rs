//! Running the `nft` binary: one exec per call, stdout and stderr captured.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::Error;

/// CNI plugins run with a minimal environment, so look at the usual places first.
const CANDIDATES: [&str; 2] = ["/usr/sbin/nft", "/sbin/nft"];

/// nft's message for a missing table/chain/set; a missing table reads as empty.
const ENOENT: &str = "No such file or directory";

fn executable(p: &Path) -> bool {
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub(super) fn binary() -> Result<PathBuf, Error> {
    let path_dirs = std::env::var_os("PATH").unwrap_or_default();
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path_dirs).map(|d| d.join("nft")))
        .find(|p| p.is_absolute() && executable(p))
        .ok_or(Error::NftNotFound)
}

fn run(args: &[&str], stdin: Option<&[u8]>, what: &str) -> Result<Output, Error> {
    let program = binary()?;
    let exec_err = |source| Error::Exec {
        program: program.clone(),
        source,
    };
    let mut cmd = Command::new(&program);
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent. If
    // vbridge is killed while nft runs (the runtime gave up on it), nft must not go on and
    // change rules after the next DEL or GC has cleaned up.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(exec_err)?;
    // nft reads its whole input before it writes anything, so no reader thread is needed.
    let written = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => pipe.write_all(data),
        _ => Ok(()),
    };
    let out = child.wait_with_output().map_err(exec_err)?;
    if !out.status.success() {
        return Err(Error::Nft {
            what: what.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    // A write error with a successful exit cannot really happen; report it if it does.
    written.map_err(exec_err)?;
    Ok(out)
}

/// Applies a JSON batch as one transaction (`nft -j -f -`).
pub(super) fn apply(batch: &Value, what: &str) -> Result<(), Error> {
    let payload = serde_json::to_vec(batch).map_err(|e| Error::Output {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    run(&["-j", "-f", "-"], Some(&payload), what).map(drop)
}

/// `nft -j list table inet <name>`; `None` when the table does not exist.
pub(super) fn list_table(family: &str, name: &str) -> Result<Option<Value>, Error> {
    let what = format!("listing table {family} {name}");
    match run(&["-j", "list", "table", family, name], None, &what) {
        Ok(out) => serde_json::from_slice(&out.stdout)
            .map(Some)
            .map_err(|e| Error::Output {
                what,
                detail: e.to_string(),
            }),
        Err(Error::Nft { stderr, .. }) if stderr.contains(ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Proves the binary runs, speaks JSON and reaches nf_tables in the kernel.
pub(super) fn probe() -> Result<(), Error> {
    run(&["-j", "list", "tables"], None, "listing tables").map(drop)
}
