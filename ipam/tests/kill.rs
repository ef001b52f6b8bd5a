//! Crash safety with real kills: runs the `vbridge-ipam` binary the way a runtime does
//! (env + stdin), SIGKILLs it at pseudo-random moments, and then checks that one locked
//! operation leaves a consistent store: every attachment holds both of its addresses,
//! every address record is listed by its attachment, no journal, at most one stray temp
//! file per temp name.
//! No root needed.

use conf::Attachment;
use ipam::store::{FileStore, Store};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("cannot remove {}: {e}", self.0.display());
        }
    }
}

/// Deterministic pseudo-random numbers (no rand crate in the dependency set).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

fn config(dir: &Path) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"k","type":"x","ipam":{{"type":"vbridge-ipam",
            "ranges":[[{{"subnet":"10.77.0.0/24"}}],[{{"subnet":"fd77::/64"}}]],"dataDir":{:?}}}}}"#,
        dir.display().to_string()
    )
}

fn spawn(cmd: &str, id: &str, conf: &str) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vbridge-ipam"))
        .env_clear()
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", "/nonexistent")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn vbridge-ipam");
    if let Some(mut stdin) = child.stdin.take() {
        // The child may already be dead; a broken pipe is part of the test.
        if let Err(e) = stdin.write_all(conf.as_bytes()) {
            eprintln!("stdin: {e}");
        }
    }
    child
}

#[test]
fn killed_processes_never_leave_an_inconsistent_store() {
    let tmp =
        TempDir(std::env::temp_dir().join(format!("vbridge-ipam-kill-{}", std::process::id())));
    let conf = config(&tmp.0);
    let mut rng = Lcg(0x5eed);
    for _ in 0..200 {
        let id = format!("c{}", rng.next(30));
        let cmd = if rng.next(3) == 0 { "DEL" } else { "ADD" };
        let mut child = spawn(cmd, &id, &conf);
        std::thread::sleep(Duration::from_micros(rng.next(6000)));
        if let Err(e) = child.kill() {
            eprintln!("kill: {e} (already exited)");
        }
        child.wait().expect("reap");
    }
    let store = FileStore::open(tmp.0.join("k"))
        .lock()
        .expect("lock repairs");
    assert!(
        !store.store().journal_pending().expect("stat"),
        "the lock holder replayed the journal"
    );
    assert_consistent(&store);
    // A killed writer leaves at most one stray per temp name (the next write of that name
    // replaces it), so tmp/ stays bounded without any scan; GC's sweep empties it.
    let strays: Vec<String> = std::fs::read_dir(tmp.0.join("k/tmp"))
        .expect("tmp")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    let names = ["journal", "meta.json", "last_reserved.0", "last_reserved.1"];
    assert!(
        strays.iter().all(|n| names.contains(&n.as_str())),
        "unexpected temp files {strays:?}"
    );
    store.clean_tmp().expect("sweep");
    assert!(
        std::fs::read_dir(tmp.0.join("k/tmp"))
            .expect("tmp")
            .next()
            .is_none(),
        "GC's sweep empties tmp/"
    );
}

fn assert_consistent(store: &impl Store) {
    let mut listed: HashMap<std::net::IpAddr, Attachment> = HashMap::new();
    for att in store.attachments().expect("list") {
        let att = att.expect("every attachment record name is valid");
        let ips = store
            .addresses(&att)
            .expect("every attachment record parses");
        assert_eq!(
            ips.len(),
            2,
            "{att:?} holds one address per range set, not {ips:?}"
        );
        for ip in ips {
            let rec = store.record(ip).expect("parses").expect("record exists");
            assert_eq!(rec.attachment, att, "{ip}");
            listed.insert(ip, att.clone());
        }
    }
    for rec in store.reservations().expect("scan") {
        let (ip, rec) = rec.expect("every record parses");
        assert_eq!(listed.get(&ip), Some(&rec.attachment), "orphan record {ip}");
    }
}
