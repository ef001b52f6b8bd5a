//! The IPAM store as `vbridge-ipam ls --json` shows it (read-only, no lock).

use std::process::Command;

use serde_json::Value;

use crate::paths;

/// The reservations of `network` under `data_dir`; empty when the store does not exist yet.
pub fn reservations(data_dir: &str, network: &str) -> Vec<Value> {
    if !std::path::Path::new(data_dir).join(network).exists() {
        return Vec::new();
    }
    let out = Command::new(paths::vbridge_ipam())
        .args(["ls", "--data-dir", data_dir, network, "--json"])
        .output()
        .expect("spawn vbridge-ipam ls");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "vbridge-ipam ls: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("ls --json ({e}): {text}"));
    v["networks"][0]["reservations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The container ids holding a reservation of `network`.
pub fn holders(data_dir: &str, network: &str) -> Vec<String> {
    let mut ids: Vec<String> = reservations(data_dir, network)
        .iter()
        .filter_map(|r| r["containerID"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// `vbridge-ipam ARGS` in admin mode (`ls`, `--help`), whatever its exit status.
pub fn admin(args: &[&str]) -> crate::Output {
    let out = Command::new(paths::vbridge_ipam())
        .args(args)
        .output()
        .expect("spawn vbridge-ipam");
    crate::Output {
        code: out.status.code().unwrap_or(-1),
        signal: std::os::unix::process::ExitStatusExt::signal(&out.status),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The whole `ls --json` view of one network (`reservations`, `corrupt`,
/// `interruptedOperation`) and the `ls` output it came from. Unlike [`reservations`] this
/// does not insist on a clean store: `ls` exits 1 when it lists corrupt files.
pub fn view(data_dir: &str, network: &str) -> (Value, crate::Output) {
    let out = admin(&["ls", "--data-dir", data_dir, network, "--json"]);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("ls --json is not JSON ({e}): {out}"));
    (v["networks"][0].clone(), out)
}
