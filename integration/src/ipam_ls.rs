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
