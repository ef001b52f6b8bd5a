//! The conflists under `examples/`, for the tests that prove them (`runtimes.rs` and, for
//! the VLAN ones, `vlan.rs` in a VM).

use crate::TestNet;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Every `*.conflist` under `examples/`, sorted.
pub fn examples() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "conflist") {
                out.push(path);
            }
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out = Vec::new();
    walk(&dir, &mut out);
    out.sort();
    out
}

pub fn load_example(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    assert!(v["name"].is_string(), "{}: no name", path.display());
    assert!(v["plugins"].is_array(), "{}: no plugins", path.display());
    v
}

/// The example with vbridge's state and IPAM store moved into the world's temp dir (the
/// examples use the defaults under /var/lib/cni, which a test must not touch).
pub fn confined(example: &Value, net: &TestNet) -> Value {
    let mut list = example.clone();
    for p in list["plugins"].as_array_mut().expect("plugins") {
        if p["type"] == "vbridge" {
            p["stateDir"] = json!(net.state_dir());
            if p.get("ipam").is_some() {
                p["ipam"]["dataDir"] = json!(net.ipam_dir());
            }
        }
    }
    list
}

pub fn is_vlan_example(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "two-vlans")
}
