//! FileStore tests in a temp dir: layout, atomicity, crash repair, corruption, locking,
//! and the library verbs end to end. No root needed.

use super::*;
use crate::testutil::TempDir;
use conf::ipamconf::IpamConfig;
use conf::netconf::NetConf;
use conf::{CmdArgs, ErrorCode};
use std::sync::{Arc, Barrier};
use std::time::Instant;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn att(id: &str) -> Attachment {
    Attachment::new(id, "eth0")
}

fn open(d: &TempDir, boot: &str) -> LockedStore {
    FileStore::open(d.path().join("net1"))
        .with_boot_id(Some(boot.to_string()))
        .lock()
        .expect("lock")
}

fn cfg(d: &TempDir, ipam: &str) -> IpamConfig {
    let dir = d.path().display().to_string();
    let ipam = ipam.replacen('{', &format!(r#"{{"dataDir":{dir:?},"#), 1);
    let doc = format!(r#"{{"cniVersion":"1.1.0","name":"net1","type":"vbridge","ipam":{ipam}}}"#);
    let (_, c, _) = NetConf::parse(doc.as_bytes()).expect("netconf");
    IpamConfig::from_netconf(&c, &CmdArgs::default()).expect("ipam config")
}

fn file(d: &TempDir, rel: &str) -> PathBuf {
    d.path().join("net1").join(rel)
}

/// Garbles one name only, as an edit that replaces the file does (writing in place would
/// garble every name of the attachment's one record file).
fn garble(path: &Path, bytes: &[u8]) {
    fs::remove_file(path).expect("unlink");
    fs::write(path, bytes).expect("garble");
}

fn tmp_is_empty(d: &TempDir) -> bool {
    fsio::list(&file(d, "tmp")).expect("list").is_empty()
}

#[test]
fn layout_and_records() {
    let d = TempDir::new("layout");
    let mut st = open(&d, "boot-1");
    st.reserve(&att("c1"), &[ip("10.0.0.2"), ip("fd00::2")])
        .expect("reserve");
    st.set_cursor(0, ip("10.0.0.2")).expect("cursor");
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(file(&d, "meta.json")).expect("meta")).expect("json");
    assert_eq!(meta["format"], 2);
    let rec: serde_json::Value =
        serde_json::from_slice(&fs::read(file(&d, "ips/fd00::2")).expect("record")).expect("json");
    assert_eq!(rec["containerID"], "c1");
    assert_eq!(rec["ifname"], "eth0");
    assert_eq!(rec["boot"], "boot-1");
    assert!(rec["since"].as_u64().is_some_and(|s| s > 1_600_000_000));
    let held: Held =
        serde_json::from_slice(&fs::read(file(&d, "attachments/c1:eth0")).expect("att"))
            .expect("json");
    assert_eq!(held.ips, vec![ip("10.0.0.2"), ip("fd00::2")]);
    assert_eq!(held.record.attachment, att("c1"));
    // One file, fsynced once, under all three names.
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(file(&d, "attachments/c1:eth0")).expect("stat");
    assert_eq!(meta.nlink(), 3);
    assert_eq!(
        fs::metadata(file(&d, "ips/10.0.0.2")).expect("stat").ino(),
        meta.ino()
    );
    assert_eq!(
        fs::read_link(file(&d, "last_reserved.0"))
            .expect("cursor")
            .to_string_lossy(),
        "10.0.0.2"
    );
    assert!(!file(&d, "journal").exists());
    assert!(tmp_is_empty(&d), "no temp file survives a successful write");
    assert_eq!(st.addresses(&att("c1")).expect("addrs").len(), 2);
    assert!(
        st.is_taken(ip("10.0.0.2")).expect("stat") && !st.is_taken(ip("10.0.0.3")).expect("stat")
    );
}

#[test]
fn reserve_refuses_to_overwrite_another_attachment() {
    let d = TempDir::new("overwrite");
    let mut st = open(&d, "b");
    st.reserve(&att("a"), &[ip("10.0.0.2")]).expect("a");
    let e = st
        .reserve(&att("b"), &[ip("10.0.0.3"), ip("10.0.0.2")])
        .expect_err("taken");
    assert_eq!(e.code(), ErrorCode::AddressTaken);
    assert!(
        !st.is_taken(ip("10.0.0.3")).expect("stat"),
        "the failed ADD was rolled back in-process"
    );
    assert!(st.addresses(&att("b")).expect("addrs").is_empty());
    assert_eq!(
        st.record(ip("10.0.0.2"))
            .expect("rec")
            .map(|r| r.attachment),
        Some(att("a"))
    );
    assert!(!file(&d, "journal").exists());
}

fn held(id: &str, ips: &[&str]) -> Held {
    Held {
        record: Record::new(att(id), Some("b")),
        ips: ips.iter().map(|s| ip(s)).collect(),
    }
}

#[test]
fn killed_add_is_rolled_back_by_the_next_lock() {
    let d = TempDir::new("killed-add");
    {
        let st = open(&d, "b");
        let h = held("c1", &["10.0.0.2", "10.0.0.3"]);
        st.begin_add(&h).expect("journal");
        st.link_record(&st.fs.journal_path(), ip("10.0.0.2"), &att("c1"))
            .expect("first name");
        // A temp file as a kill mid-write leaves it.
        fs::write(file(&d, "tmp/journal"), b"{\"contai").expect("partial temp");
        // Dropped here without finishing: the process "died" holding the lock.
    }
    let mut st = open(&d, "b");
    assert!(
        !st.is_taken(ip("10.0.0.2")).expect("stat"),
        "half-done ADD rolled back"
    );
    assert!(st.addresses(&att("c1")).expect("addrs").is_empty());
    assert!(!file(&d, "journal").exists());
    // The next write of that name replaces the stray temp file.
    st.reserve(&att("c2"), &[ip("10.0.0.2")]).expect("reserve");
    assert_eq!(st.addresses(&att("c2")).expect("addrs"), [ip("10.0.0.2")]);
    assert!(tmp_is_empty(&d));
}

#[test]
fn gc_sweeps_stray_temp_files() {
    let d = TempDir::new("gc-sweep");
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/24"}"#);
    crate::add(&c, &att("keep")).expect("add");
    // What an older version, killed mid-write, could leave.
    fs::write(file(&d, "tmp/4242.7"), b"{\"contai").expect("stray temp");
    drop(open(&d, "b"));
    assert!(!tmp_is_empty(&d), "a lock alone does not scan tmp/");
    crate::gc(&c, &[att("keep")]).expect("gc");
    assert!(tmp_is_empty(&d));
    assert_eq!(
        open(&d, "b").addresses(&att("keep")).expect("kept").len(),
        1
    );
}

#[test]
fn killed_add_before_its_commit_is_still_rolled_back() {
    // Every address is linked but the result was never printed, so the runtime does not
    // know these addresses.
    let d = TempDir::new("killed-add-late");
    {
        let st = open(&d, "b");
        let h = held("c1", &["10.0.0.2", "fd00::2"]);
        st.begin_add(&h).expect("journal");
        for a in &h.ips {
            st.link_record(&st.fs.journal_path(), *a, &att("c1"))
                .expect("name");
        }
    }
    let st = open(&d, "b");
    assert!(!st.is_taken(ip("10.0.0.2")).expect("stat"));
    assert!(!st.is_taken(ip("fd00::2")).expect("stat"));
    assert!(!file(&d, "attachments/c1:eth0").exists());
    assert!(!file(&d, "journal").exists());
}

#[test]
fn killed_del_is_rolled_forward() {
    let d = TempDir::new("killed-del");
    {
        let mut st = open(&d, "b");
        st.reserve(&att("c1"), &[ip("10.0.0.2"), ip("10.0.0.3")])
            .expect("reserve");
        st.reserve(&att("c2"), &[ip("10.0.0.4")]).expect("reserve");
        let f = st
            .fs
            .read_attachment(&att("c1"))
            .expect("read")
            .expect("held");
        st.begin_del(&att("c1"), f).expect("journal");
        assert!(
            st.addresses(&att("c1")).expect("addrs").is_empty(),
            "lookups by attachment see nothing once a DEL began"
        );
        fs::remove_file(file(&d, "ips/10.0.0.2")).expect("first removal");
    }
    let st = open(&d, "b");
    assert!(
        !st.is_taken(ip("10.0.0.3")).expect("stat"),
        "half-done DEL finished"
    );
    assert!(!file(&d, "attachments/c1:eth0").exists());
    assert!(!file(&d, "journal").exists());
    assert_eq!(
        st.addresses(&att("c2")).expect("addrs"),
        vec![ip("10.0.0.4")],
        "others untouched"
    );
}

#[test]
fn replay_never_removes_another_attachments_record() {
    let d = TempDir::new("replay-other");
    {
        let mut st = open(&d, "b");
        st.reserve(&att("owner"), &[ip("10.0.0.2")])
            .expect("reserve");
        st.begin_add(&held("c1", &["10.0.0.2"])).expect("journal");
    }
    let st = open(&d, "b");
    assert_eq!(
        st.addresses(&att("owner")).expect("addrs"),
        vec![ip("10.0.0.2")]
    );
    assert!(st.is_taken(ip("10.0.0.2")).expect("stat"));
}

#[test]
fn format_1_store_is_read_and_upgraded() {
    let d = TempDir::new("format-1");
    drop(open(&d, "b"));
    let old_record = r#"{"containerID":"c1","ifname":"eth0","since":1,"boot":"a"}"#;
    fs::write(file(&d, "meta.json"), br#"{"format":1}"#).expect("meta");
    for a in ["10.0.0.2", "10.0.0.3"] {
        fs::write(file(&d, &format!("ips/{a}")), old_record).expect("record");
    }
    fs::write(
        file(&d, "attachments/c1:eth0"),
        br#"["10.0.0.2","10.0.0.3"]"#,
    )
    .expect("list");
    fs::write(file(&d, "ips/10.0.0.9"), old_record.replace("c1", "c9")).expect("record");
    // A format-1 journal of a DEL of c9 killed before its first removal.
    fs::write(
        file(&d, "journal"),
        br#"{"op":"del","attachment":{"containerID":"c9","ifname":"eth0"},"ips":["10.0.0.9"]}"#,
    )
    .expect("journal");
    let mut st = open(&d, "b");
    let meta: serde_json::Value =
        serde_json::from_slice(&fs::read(file(&d, "meta.json")).expect("meta")).expect("json");
    assert_eq!(
        meta["format"], 2,
        "upgraded, so format-1 binaries refuse it"
    );
    assert!(
        !st.is_taken(ip("10.0.0.9")).expect("stat"),
        "journal replayed"
    );
    assert_eq!(
        st.addresses(&att("c1")).expect("addrs"),
        vec![ip("10.0.0.2"), ip("10.0.0.3")]
    );
    assert_eq!(
        st.release(&att("c1")).expect("release"),
        vec![ip("10.0.0.2"), ip("10.0.0.3")]
    );
    assert!(!st.is_taken(ip("10.0.0.2")).expect("stat"));
    assert!(!file(&d, "attachments/c1:eth0").exists());
    assert!(!file(&d, "journal").exists());
}

#[test]
fn corrupt_record_is_107_and_changes_nothing() {
    let d = TempDir::new("corrupt");
    let mut st = open(&d, "b");
    st.reserve(&att("c1"), &[ip("10.0.0.2"), ip("10.0.0.3")])
        .expect("reserve");
    garble(&file(&d, "ips/10.0.0.3"), b"");
    let e = st.release(&att("c1")).expect_err("corrupt");
    assert_eq!(e.code(), ErrorCode::StoreCorrupt);
    let msg = e.to_string();
    assert!(
        msg.contains("ips/10.0.0.3") && msg.contains("empty") && msg.contains("delete the file"),
        "{msg}"
    );
    assert!(
        st.is_taken(ip("10.0.0.2")).expect("stat"),
        "nothing released"
    );
    assert!(file(&d, "attachments/c1:eth0").exists());
    assert!(
        !file(&d, "journal").exists(),
        "validation happens before the journal"
    );
    garble(&file(&d, "attachments/c1:eth0"), b"[\"10.0.0.2\",");
    let e = st
        .addresses(&att("c1"))
        .expect_err("corrupt attachment record");
    assert_eq!(e.code(), ErrorCode::StoreCorrupt);
    assert!(e.to_string().contains("attachments/c1:eth0"), "{e}");
    let listed = st.reservations().expect("scan");
    assert_eq!(listed.iter().filter(|r| r.is_err()).count(), 1);
}

#[test]
fn corrupt_journal_or_meta_stops_the_lock_with_107() {
    let d = TempDir::new("corrupt-journal");
    drop(open(&d, "b"));
    fs::write(file(&d, "journal"), b"{\"op\":").expect("garble");
    let e = FileStore::open(d.path().join("net1"))
        .lock()
        .expect_err("corrupt journal");
    assert_eq!(e.code(), ErrorCode::StoreCorrupt);
    assert!(
        e.to_string().contains("journal") && e.to_string().contains("delete it"),
        "{e}"
    );
    fs::remove_file(file(&d, "journal")).expect("repair");
    fs::write(file(&d, "meta.json"), b"{\"format\":9}").expect("future format");
    let e = FileStore::open(d.path().join("net1"))
        .lock()
        .expect_err("format");
    assert_eq!(e.code(), ErrorCode::StoreCorrupt);
    assert!(e.to_string().contains("format 9"), "{e}");
}

#[test]
fn unreadable_cursor_is_only_a_hint() {
    let d = TempDir::new("cursor");
    let st = open(&d, "b");
    fs::write(file(&d, "last_reserved.0"), b"garbage").expect("write");
    assert_eq!(st.cursor(0), None);
    fs::write(file(&d, "last_reserved.0"), b"10.0.0.5").expect("write");
    assert_eq!(st.cursor(0), Some(ip("10.0.0.5")), "format 1 kept a file");
    fs::remove_file(file(&d, "last_reserved.0")).expect("rm");
    std::os::unix::fs::symlink("garbage", file(&d, "last_reserved.0")).expect("symlink");
    assert_eq!(st.cursor(0), None);
}

#[test]
fn bad_attachment_names_never_become_paths() {
    let d = TempDir::new("names");
    let mut st = open(&d, "b");
    for a in [
        Attachment::new("../x", "eth0"),
        Attachment::new("c", "a/b"),
        Attachment::new("c", "a:b"),
    ] {
        let e = st.reserve(&a, &[ip("10.0.0.2")]).expect_err("invalid");
        assert_eq!(e.code(), ErrorCode::InvalidEnv);
    }
    assert!(
        !file(&d, "journal").exists(),
        "rejected before anything was written"
    );
    assert!(fsio::list(&file(&d, "ips")).expect("list").is_empty());
}

#[test]
fn lock_contention_times_out_with_code_11_then_succeeds() {
    let d = Arc::new(TempDir::new("lock"));
    let holder = open(&d, "b");
    let dir = d.path().join("net1");
    let short = FileStore::open(&dir).with_lock_timeout(Duration::from_millis(50));
    let e = short.lock().expect_err("busy");
    assert_eq!(e.code(), ErrorCode::TryAgainLater);
    let waiter = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let st = FileStore::open(dir)
                .with_lock_timeout(Duration::from_secs(5))
                .lock();
            (st.is_ok(), started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    drop(holder);
    let (ok, waited) = waiter.join().expect("thread");
    assert!(ok, "the lock is handed over once the holder drops it");
    assert!(
        waited >= Duration::from_millis(150),
        "the waiter really waited ({waited:?})"
    );
}

#[test]
fn parallel_adds_get_unique_addresses() {
    let d = Arc::new(TempDir::new("parallel"));
    let c = Arc::new(cfg(&d, r#"{"subnet":"10.0.0.0/24"}"#));
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (c, start) = (Arc::clone(&c), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                (0..15)
                    .map(|i| {
                        crate::add(&c, &att(&format!("t{t}-{i}"))).expect("add").ips[0]
                            .address
                            .ip()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<IpAddr> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 120);
}

#[test]
fn library_verbs_end_to_end() {
    let d = TempDir::new("verbs");
    let c = cfg(
        &d,
        r#"{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/64"}]]}"#,
    );
    crate::del(&c, &att("never")).expect("DEL before any ADD");
    assert!(
        !d.path().join("net1").exists(),
        "DEL does not create a store"
    );
    crate::status(&c).expect("status on a fresh store");
    let r = crate::add(&c, &att("c1")).expect("add");
    let ips: Vec<IpAddr> = r.ips.iter().map(|i| i.address.ip()).collect();
    assert_eq!(crate::add(&c, &att("c1")).expect("retry").ips, r.ips);
    crate::check(&c, &att("c1"), &ips).expect("check");
    let e = crate::check(&c, &att("c1"), &ips[..1]).expect_err("mismatch");
    assert_eq!(e.code(), ErrorCode::CheckFailed);
    crate::del(&c, &att("c1")).expect("del");
    crate::del(&c, &att("c1")).expect("del again");
    assert!(fsio::list(&file(&d, "ips")).expect("list").is_empty());
}

#[test]
fn gc_keeps_exactly_the_listed_and_reports_errors_at_the_end() {
    let d = TempDir::new("gc");
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/24"}"#);
    for id in ["keep1", "keep2", "drop1", "drop2", "broken"] {
        crate::add(&c, &att(id)).expect("add");
    }
    // An orphan record (no attachment record), e.g. from an older version or a manual copy.
    let orphan = encode(&Record::new(att("ghost"), None)).expect("encode");
    fs::write(file(&d, "ips/10.0.0.200"), orphan).expect("orphan");
    let broken = crate::add(&c, &att("broken")).expect("held").ips[0]
        .address
        .ip();
    garble(&file(&d, &format!("ips/{broken}")), b"{");
    let e = crate::gc(&c, &[att("keep1"), att("keep2")]).expect_err("one corrupt record");
    assert_eq!(e.code(), ErrorCode::StoreCorrupt);
    assert!(e.to_string().contains(&broken.to_string()), "{e}");
    let st = open(&d, "b");
    for id in ["keep1", "keep2"] {
        assert_eq!(st.addresses(&att(id)).expect("kept").len(), 1, "{id}");
    }
    for id in ["drop1", "drop2"] {
        assert!(st.addresses(&att(id)).expect("dropped").is_empty(), "{id}");
    }
    assert!(
        !st.is_taken(ip("10.0.0.200")).expect("stat"),
        "orphan released"
    );
    assert!(
        st.is_taken(broken).expect("stat"),
        "the corrupt record is reported, not deleted"
    );
    drop(st);
    fs::remove_file(file(&d, &format!("ips/{broken}"))).expect("operator repair");
    assert_eq!(
        crate::gc(&c, &[att("keep1"), att("keep2")]).expect("clean gc"),
        vec![att("broken")]
    );
}

#[test]
fn previous_boot_reclaim_only_on_exhaustion() {
    let d = TempDir::new("reboot");
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/29"}"#);
    let dir = d.path().join("net1");
    let add = |boot: &str, id: &str| {
        let mut st = FileStore::open(&dir)
            .with_boot_id(Some(boot.into()))
            .lock()
            .expect("lock");
        crate::allocator::assign(&c, &mut st, &att(id))
    };
    for i in 0..4 {
        add("A", &format!("old{i}")).expect("fits");
    }
    assert_eq!(add("B", "new0").expect("free one").len(), 1);
    let ev = FileStore::open(&dir)
        .with_boot_id(Some("B".into()))
        .lock()
        .expect("lock");
    assert_eq!(
        ev.scan_records_from_boot("A"),
        4,
        "nothing reclaimed while a free address existed"
    );
    drop(ev);
    let got = add("B", "new1").expect("reclaims");
    assert_eq!(
        got,
        vec![ip("10.0.0.2")],
        "first stale reservation after the cursor"
    );
    let st = FileStore::open(&dir)
        .with_boot_id(Some("B".into()))
        .lock()
        .expect("lock");
    assert!(st.addresses(&att("old0")).expect("addrs").is_empty());
    assert_eq!(st.scan_records_from_boot("A"), 3);
}

/// A DEL cut short by a power loss: its record of .2 survived, its attachment record did
/// not. Added again in the next boot, `a` gets .3; reclaiming .2 must leave .3 to it.
#[test]
fn reclaim_of_a_leftover_record_keeps_the_attachments_live_address() {
    let d = TempDir::new("reclaim-leftover");
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/29"}"#);
    let add = |boot: &str, id: &str| {
        let mut st = open(&d, boot);
        crate::allocator::assign(&c, &mut st, &att(id))
    };
    assert_eq!(add("A", "a").expect("boot A"), vec![ip("10.0.0.2")]);
    fs::remove_file(file(&d, "attachments/a:eth0")).expect("the DEL's first step");
    assert_eq!(add("B", "a").expect("again"), vec![ip("10.0.0.3")]);
    for id in ["b", "c", "d"] {
        add("B", id).expect("fits");
    }
    assert_eq!(add("B", "late").expect("reclaims"), vec![ip("10.0.0.2")]);
    let st = open(&d, "B");
    assert_eq!(
        st.addresses(&att("a")).expect("addrs"),
        vec![ip("10.0.0.3")]
    );
    assert_eq!(
        st.record(ip("10.0.0.3"))
            .expect("read")
            .map(|r| r.attachment),
        Some(att("a"))
    );
    drop(st);
    let e = add("B", "later").expect_err("nothing stale is left");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
}

impl LockedStore {
    fn scan_records_from_boot(&self, boot: &str) -> usize {
        self.reservations()
            .expect("scan")
            .into_iter()
            .filter_map(Result::ok)
            .filter(|(_, r)| r.boot == boot)
            .count()
    }
}

#[test]
fn status_reports_exhaustion_as_50() {
    let d = TempDir::new("status");
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/30"}"#); // one usable address
    crate::add(&c, &att("a")).expect("add");
    let e = crate::status(&c).expect_err("full");
    assert_eq!(e.code(), ErrorCode::NotAvailable);
    assert!(e.to_string().contains("no free address"), "{e}");
}

#[test]
fn host_local_reservations_are_imported_once() {
    let d = TempDir::new("import");
    let dir = d.path().join("net1");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("10.0.0.2"), "ctr-a\r\neth0").expect("host-local record");
    fs::write(dir.join("10.0.0.3"), "ctr-b").expect("legacy host-local record");
    fs::write(dir.join("last_reserved_ip.0"), "10.0.0.3").expect("host-local cursor");
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/24"}"#);
    let r = crate::add(&c, &att("new")).expect("add");
    assert_eq!(
        r.ips[0].address.ip(),
        ip("10.0.0.4"),
        "imported addresses are taken"
    );
    let st = open(&d, "b");
    assert_eq!(
        st.addresses(&att("ctr-a")).expect("a"),
        vec![ip("10.0.0.2")]
    );
    assert_eq!(
        st.addresses(&att("ctr-b")).expect("b"),
        vec![ip("10.0.0.3")]
    );
    assert_eq!(
        st.record(ip("10.0.0.2")).expect("rec").map(|r| r.boot),
        Some(String::new())
    );
    drop(st);
    crate::del(&c, &att("ctr-a")).expect("del");
    let st = open(&d, "b");
    assert!(
        !st.is_taken(ip("10.0.0.2")).expect("stat"),
        "not re-imported after the store exists"
    );
}

/// An old host-local record names only the container: imported as `eth0`, a guess that
/// GC must not act on while the runtime lists the container under another ifname.
#[test]
fn gc_keeps_an_import_with_a_guessed_ifname_while_its_container_is_valid() {
    let d = TempDir::new("import-guess");
    let dir = d.path().join("net1");
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("10.0.0.3"), "ctr-b").expect("legacy host-local record");
    fs::write(dir.join("10.0.0.4"), "ctr-c\r\neth0").expect("host-local record");
    fs::write(dir.join("10.0.0.5"), "ctr-d").expect("legacy host-local record");
    drop(open(&d, "b"));
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/24"}"#);
    let valid = [
        Attachment::new("ctr-b", "net1"),
        Attachment::new("ctr-c", "net1"),
    ];
    assert_eq!(
        crate::gc(&c, &valid).expect("gc"),
        vec![att("ctr-c"), att("ctr-d")]
    );
    let st = open(&d, "b");
    let rec = st.record(ip("10.0.0.3")).expect("read").expect("kept");
    assert!(rec.ifname_guessed && rec.attachment == att("ctr-b"));
    assert!(!st.is_taken(ip("10.0.0.4")).expect("stat"), "not a guess");
    drop(st);
    assert_eq!(crate::gc(&c, &[]).expect("gc"), vec![att("ctr-b")]);
}

/// `meta.json` lost: the import runs over a store that already holds addresses, and
/// whatever conflicts with it is skipped instead of failing every lock.
#[test]
fn import_over_an_existing_store_skips_conflicts() {
    let d = TempDir::new("import-conflict");
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/24"}"#);
    assert_eq!(
        crate::add(&c, &att("x")).expect("add").ips[0].address.ip(),
        ip("10.0.0.2")
    );
    // A first import killed after it linked x's address: its marker makes the next lock
    // import again, over what is there.
    let dir = d.path().join("net1");
    fs::remove_file(dir.join(META)).expect("cut the import short");
    fs::write(dir.join(IMPORTING), "").expect("marker of the import");
    fs::write(dir.join("10.0.0.2"), "ctr-a\r\neth0").expect("conflicting record");
    fs::write(dir.join("10.0.0.5"), "ctr-a\r\neth0").expect("host-local record");
    fs::write(dir.join("10.0.0.7"), "x\r\neth0").expect("record of x");
    crate::status(&c).expect("status");
    assert!(!dir.join(IMPORTING).exists(), "marker left");
    assert_eq!(
        crate::add(&c, &att("y")).expect("add").ips[0].address.ip(),
        ip("10.0.0.3")
    );
    let st = open(&d, "b");
    assert_eq!(st.addresses(&att("x")).expect("x"), vec![ip("10.0.0.2")]);
    assert_eq!(
        st.record(ip("10.0.0.2"))
            .expect("read")
            .map(|r| r.attachment),
        Some(att("x")),
        "the store's record wins"
    );
    assert_eq!(
        st.addresses(&att("ctr-a")).expect("a"),
        vec![ip("10.0.0.5")]
    );
    assert_eq!(
        st.record(ip("10.0.0.7"))
            .expect("read")
            .map(|r| r.attachment),
        Some(att("x")),
        "imported, not listed by x's own record"
    );
    assert!(tmp_is_empty(&d));
}

/// An established store that lost its meta.json does not take host-local's leftover
/// files in again: their containers are long gone.
#[test]
fn lost_meta_json_does_not_import_host_local_again() {
    let d = TempDir::new("lost-meta");
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/24"}"#);
    crate::add(&c, &att("x")).expect("add");
    let dir = d.path().join("net1");
    fs::remove_file(dir.join(META)).expect("lose meta.json");
    fs::write(dir.join("10.0.0.5"), "gone\r\neth0").expect("host-local leftover");
    crate::status(&c).expect("status");
    assert!(dir.join(META).exists(), "meta.json recreated");
    let st = open(&d, "b");
    assert!(st.addresses(&att("gone")).expect("gone").is_empty());
    assert!(st.record(ip("10.0.0.5")).expect("read").is_none());
    assert_eq!(st.addresses(&att("x")).expect("x"), vec![ip("10.0.0.2")]);
}

#[test]
fn retried_add_never_hands_out_a_corrupt_record() {
    let d = TempDir::new("corrupt-retry");
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/24"}"#);
    let mut st = open(&d, "b");
    let got = crate::allocator::assign(&c, &mut st, &att("c1")).expect("first ADD");
    let rec = file(&d, &format!("ips/{}", got[0]));
    fs::write(&rec, b"{\"cont").expect("truncate");
    let e = crate::allocator::assign(&c, &mut st, &att("c1")).expect_err("retry must fail");
    assert_eq!(e.code(), ErrorCode::StoreCorrupt);
    assert_eq!(
        fs::read(&rec).expect("read"),
        b"{\"cont",
        "the record was rewritten"
    );
}

#[test]
fn empty_journal_from_a_power_loss_is_dropped_not_fatal() {
    let d = TempDir::new("empty-journal");
    {
        let mut st = open(&d, "b");
        st.reserve(&att("c1"), &[ip("10.0.0.2")]).expect("reserve");
    }
    // What an unsynced DEL journal can look like after a power loss.
    fs::write(file(&d, "journal"), b"").expect("empty journal");
    let st = open(&d, "b");
    assert!(!file(&d, "journal").exists());
    assert!(
        st.is_taken(ip("10.0.0.2")).expect("stat"),
        "the reservation is untouched"
    );
}

#[test]
fn only_an_urgent_store_raises_the_lock_holders_priority() {
    use crate::store::fsio::tests::{is_root, nice};
    let d = TempDir::new("urgent");
    let dir = d.path().join("net1");
    std::thread::spawn(move || {
        let before = nice();
        let plain = FileStore::open(&dir).lock().expect("lock");
        assert_eq!(
            nice(),
            before,
            "GC, CHECK, STATUS and the admin view keep theirs"
        );
        drop(plain);
        let urgent = FileStore::open(&dir).urgent().lock().expect("lock");
        if is_root() {
            assert!(
                nice() < before,
                "ADD and DEL hold the lock at a raised priority"
            );
        }
        drop(urgent);
        assert_eq!(nice(), before, "restored with the lock");
    })
    .join()
    .expect("thread");
}

/// A mutation that fails halfway leaves its journal for the next lock holder; in the same
/// lock hold (GC releasing attachment after attachment) no further mutation may start, or
/// its `journal` would replace the unfinished one and leak that attachment's address.
#[test]
fn failed_mutation_blocks_the_rest_of_the_hold_and_is_finished_by_the_next() {
    let d = TempDir::new("unfinished");
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/24"}"#);
    let a = crate::add(&c, &att("a")).expect("add a").ips[0]
        .address
        .ip();
    let b = crate::add(&c, &att("b")).expect("add b").ips[0]
        .address
        .ip();
    let mut st = open(&d, "b");
    // "a"'s DEL got as far as its journal, then failed.
    let file = st
        .fs
        .read_attachment(&att("a"))
        .expect("read")
        .expect("a held");
    st.begin_del(&att("a"), file).expect("begin");
    let failed: Result<(), Error> = Err(Error::Internal("removal failed".into()));
    assert!(st.note_leftover(failed).is_err());
    let e = st
        .release(&att("b"))
        .expect_err("refused while a's journal is pending");
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
    assert!(st.reserve(&att("c"), &[ip("10.0.0.50")]).is_err());
    assert!(st.is_taken(b).expect("stat"), "b untouched");
    drop(st);
    // The next lock holder finishes a's DEL; b is still held.
    let st = open(&d, "b");
    assert!(!st.is_taken(a).expect("stat"), "a's DEL finished");
    assert!(st.addresses(&att("a")).expect("a").is_empty());
    assert_eq!(st.addresses(&att("b")).expect("b"), vec![b]);
}

/// A record of an attachment that its attachment record does not list (an import or a
/// power loss cut it short) does not stop that same attachment from requesting it.
#[test]
fn requested_address_may_be_its_own_orphan_record() {
    let d = TempDir::new("own-orphan");
    let mut c = cfg(&d, r#"{"subnet":"10.0.0.0/24"}"#);
    crate::add(&c, &att("first")).expect("create the store");
    let orphan = encode(&Record::new(att("x"), None)).expect("encode");
    fs::write(file(&d, "ips/10.0.0.9"), orphan).expect("orphan");
    c.requested = vec![ip("10.0.0.9")];
    let got = crate::add(&c, &att("x")).expect("own orphan is claimable");
    assert_eq!(got.ips[0].address.ip(), ip("10.0.0.9"));
    let rec = open(&d, "b")
        .record(ip("10.0.0.9"))
        .expect("read")
        .expect("held");
    assert_eq!(
        Some(rec.boot.as_str()),
        crate::store::boot_id(),
        "the claimed record carries this boot"
    );
    let e = crate::add(&c, &att("y")).expect_err("someone else's");
    assert_eq!(e.code(), ErrorCode::AddressTaken, "{e}");
}

/// A /29 (five addresses) filled by c0..c4, then one ADD refused: `full` is written.
fn exhausted(d: &TempDir) -> IpamConfig {
    let c = cfg(d, r#"{"subnet":"10.0.0.0/29"}"#);
    for i in 0..5 {
        crate::add(&c, &att(&format!("c{i}"))).expect("add");
    }
    let e = crate::add(&c, &att("late")).expect_err("full");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
    assert!(
        !fsio::exists(&file(d, "full")).expect("stat"),
        "remembered though ips/ changed within the last seconds"
    );
    // As if the last ADD was a while ago.
    set_ips_mtime(d, ips_mtime(d) - Duration::from_secs(10));
    let e = crate::add(&c, &att("late")).expect_err("full");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
    assert!(fsio::exists(&file(d, "full")).expect("stat"), "remembered");
    c
}

fn ips_mtime(d: &TempDir) -> std::time::SystemTime {
    fs::metadata(file(d, "ips"))
        .and_then(|m| m.modified())
        .expect("mtime")
}

fn set_ips_mtime(d: &TempDir, t: std::time::SystemTime) {
    File::open(file(d, "ips"))
        .and_then(|f| f.set_modified(t))
        .expect("set mtime");
}

#[test]
fn exhausted_finding_is_kept_and_used_until_a_release() {
    let d = TempDir::new("full");
    let c = exhausted(&d);
    let before = fsio::read_value(&file(&d, "full")).expect("read");
    let e = crate::add(&c, &att("late")).expect_err("still full");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
    let e = crate::status(&c).expect_err("status sees it too");
    assert_eq!(e.code(), ErrorCode::NotAvailable);
    assert_eq!(
        fsio::read_value(&file(&d, "full")).expect("read"),
        before,
        "used, not rewritten"
    );
    // A DEL within the same clock tick as the last change of ips/ leaves its mtime as
    // it was: the release itself must forget the finding.
    let t = ips_mtime(&d);
    crate::del(&c, &att("c3")).expect("del");
    set_ips_mtime(&d, t);
    assert!(!fsio::exists(&file(&d, "full")).expect("stat"));
    crate::status(&c).expect("room again");
    let r = crate::add(&c, &att("late")).expect("the freed address");
    assert_eq!(r.ips[0].address.ip(), ip("10.0.0.5"));
}

#[test]
fn exhausted_finding_is_ignored_after_a_record_is_removed_by_hand() {
    let d = TempDir::new("full-hand");
    let c = exhausted(&d);
    let t = ips_mtime(&d);
    // The admin repair: a record and its attachment name removed without the store.
    fs::remove_file(file(&d, "ips/10.0.0.4")).expect("rm");
    fs::remove_file(file(&d, "attachments/c2:eth0")).expect("rm");
    set_ips_mtime(&d, t + Duration::from_secs(1));
    assert!(
        fsio::exists(&file(&d, "full")).expect("stat"),
        "still there"
    );
    let r = crate::add(&c, &att("late")).expect("the hand-freed address");
    assert_eq!(r.ips[0].address.ip(), ip("10.0.0.4"));
}

#[test]
fn exhausted_finding_is_forgotten_by_a_replayed_journal() {
    let d = TempDir::new("full-replay");
    let c = exhausted(&d);
    let t = ips_mtime(&d);
    // c4's DEL, killed right after its first step (its attachment name became the journal).
    fs::rename(file(&d, "attachments/c4:eth0"), file(&d, "journal")).expect("stage");
    drop(open(&d, "b"));
    set_ips_mtime(&d, t);
    assert!(!fsio::exists(&file(&d, "full")).expect("stat"));
    let r = crate::add(&c, &att("late")).expect("the replayed DEL's address");
    assert_eq!(r.ips[0].address.ip(), ip("10.0.0.6"));
}

#[test]
fn exhausted_finding_is_void_after_a_reboot() {
    let d = TempDir::new("full-reboot");
    let c = cfg(&d, r#"{"subnet":"10.0.0.0/30"}"#); // one usable address
    let mut st = open(&d, "boot-1");
    crate::allocator::assign(&c, &mut st, &att("old")).expect("add");
    set_ips_mtime(&d, ips_mtime(&d) - Duration::from_secs(10));
    let e = crate::allocator::assign(&c, &mut st, &att("new")).expect_err("full");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
    assert!(fsio::exists(&file(&d, "full")).expect("stat"));
    drop(st);
    let mut st = open(&d, "boot-2");
    assert_eq!(
        crate::allocator::assign(&c, &mut st, &att("new")).expect("reclaimed"),
        [ip("10.0.0.2")]
    );
}
