//! IPAM and lifecycle, end to end, for both binaries: GC keeps exactly the listed attachments,
//! STATUS, dual stack without a DAD stall, requested addresses, 100 concurrent processes,
//! corrupt records, a full or read-only data dir, the admin view and reboot reclaim.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration::result::{gateway_of, ip_of};
use integration::tmp::unique_name;
use integration::{ip, ipam_ls, paths, Attachment, Container, Output, TestNet};
use serde_json::{json, Value};

const V: &str = "1.1.0";

/// The two binaries under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bin {
    Vbridge,
    Ipam,
}

impl Bin {
    fn path(self) -> PathBuf {
        match self {
            Bin::Vbridge => paths::vbridge(),
            Bin::Ipam => paths::vbridge_ipam(),
        }
    }
}

fn call(net: &TestNet, bin: Bin, command: &str, att: &Attachment, conf: &Value) -> Output {
    net.call(&bin.path(), command, att, conf.to_string().as_bytes())
}

fn add_ok(net: &TestNet, bin: Bin, att: &Attachment, conf: &Value) -> Value {
    let out = call(net, bin, "ADD", att, conf);
    assert!(out.success(), "{bin:?} ADD {}: {out}", att.container_id);
    out.json()
}

fn del_ok(net: &TestNet, bin: Bin, att: &Attachment, conf: &Value) {
    let out = call(net, bin, "DEL", att, conf);
    assert!(out.success(), "{bin:?} DEL {}: {out}", att.container_id);
}

/// An attachment for IPAM-only calls (the IPAM never looks at the netns).
fn ipam_att(net: &TestNet, tag: &str) -> Attachment {
    Attachment::new(&unique_name(tag), &net.host)
}

/// The environment of GC and STATUS: no container.
fn no_att() -> Attachment {
    Attachment {
        container_id: String::new(),
        netns: String::new(),
        ifname: String::new(),
        cni_args: String::new(),
        capability_args: serde_json::Map::new(),
    }
}

/// A second network sharing `net`'s bridge, dataDir and stateDir, with `other`'s unique name
/// and subnet (`other` only lends those).
fn sibling_config(net: &TestNet, other: &TestNet) -> Value {
    let mut conf = net.flat_config(V);
    conf["name"] = json!(other.name);
    conf["ipam"]["subnet"] = json!(other.subnet.to_string());
    conf
}

/// `(container id, ifname, address)` of every reservation of `network` in `net`'s dataDir.
fn holdings(net: &TestNet, network: &str) -> BTreeSet<(String, String, String)> {
    ipam_ls::reservations(&net.ipam_dir(), network)
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (s("containerID"), s("ifname"), s("address"))
        })
        .collect()
}

fn held(att: &Attachment, addr: Ipv4Addr) -> (String, String, String) {
    (
        att.container_id.clone(),
        att.ifname.clone(),
        addr.to_string(),
    )
}

fn store_dir(data_dir: &str, network: &str) -> PathBuf {
    Path::new(data_dir).join(network)
}

/// Asserts a clean `ls` of the network: readable, no journal, and the given reservations.
fn assert_store(data_dir: &str, network: &str, expect: usize) {
    let (view, out) = ipam_ls::view(data_dir, network);
    assert!(out.success(), "ls: {out}");
    assert_eq!(view["corrupt"], json!([]), "{view}");
    assert_eq!(view["interruptedOperation"], false, "{view}");
    let n = view["reservations"].as_array().map_or(0, Vec::len);
    assert_eq!(n, expect, "reservations: {view}");
}

/// Names of the store's files under `ips/`, `attachments/` and `tmp/`, and whether a journal
/// exists: what a failed operation must leave exactly as it was.
fn store_files(data_dir: &str, network: &str) -> (Vec<String>, bool) {
    let dir = store_dir(data_dir, network);
    let mut names = Vec::new();
    for sub in ["ips", "attachments", "tmp"] {
        if let Ok(entries) = fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                names.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    names.sort();
    (names, dir.join("journal").exists())
}

fn gc(net: &TestNet, bin: Bin, conf: &Value, key: &str, valid: &[&Attachment]) -> Output {
    let list: Vec<Value> = valid
        .iter()
        .map(|a| json!({"containerID": a.container_id, "ifname": a.ifname}))
        .collect();
    let mut conf = conf.clone();
    conf[key] = json!(list);
    call(net, bin, "GC", &no_att(), &conf)
}

/// A mount over a test directory, unmounted on drop (also when the test fails).
struct Mount {
    dir: PathBuf,
}

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        fs::create_dir_all(dir).expect("mountpoint");
        let opts = format!("size={size}");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir));
        Mount {
            dir: dir.to_path_buf(),
        }
    }

    /// Bind-mounts `dir` over itself read-only.
    fn read_only(dir: &Path) -> Mount {
        fs::create_dir_all(dir).expect("mountpoint");
        run(Command::new("mount").arg("--bind").arg(dir).arg(dir));
        let m = Mount {
            dir: dir.to_path_buf(),
        };
        run(Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(dir));
        m
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.dir).status();
        if !matches!(ok, Ok(s) if s.success()) {
            let _lazy = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fills the file system of `dir` with one file until ENOSPC; returns the file.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = fs::File::create(&path).expect("create filler");
    let chunk = [0u8; 4096];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "filling {}: {e}", dir.display());
                break;
            }
        }
    }
    path
}

// ---------------------------------------------------------------------------------------
// 1. GC keeps exactly the listed attachments.

fn gc_vbridge(key: &str) {
    let net = TestNet::new();
    let other = TestNet::new();
    let conf = net.flat_config(V);
    let conf_b = sibling_config(&net, &other);
    let (keep, gone, b) = (Container::new(), Container::new(), Container::new());
    let keep_res = add_ok(&net, Bin::Vbridge, &keep.att, &conf);
    let gone_res = add_ok(&net, Bin::Vbridge, &gone.att, &conf);
    let b_res = add_ok(&net, Bin::Vbridge, &b.att, &conf_b);
    let veth = |res: &Value| {
        res["interfaces"][1]["name"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };

    // A link of someone else's that happens to sit in this network's link group (a 32-bit
    // hash) is not one of vbridge's host veths: GC leaves it alone. Made here from a host
    // veth of ours, renamed (iproute2 cannot set a group above 2^31 itself).
    let foreign = Container::new();
    let foreign_res = add_ok(&net, Bin::Vbridge, &foreign.att, &conf);
    for cmd in [
        vec!["ip", "link", "set", "dev", &veth(&foreign_res), "down"],
        vec![
            "ip",
            "link",
            "set",
            "dev",
            &veth(&foreign_res),
            "name",
            "admin0",
        ],
    ] {
        ip::must_run_in(&net.host, &cmd);
    }
    let out = gc(&net, Bin::Vbridge, &conf, key, &[&keep.att]);
    assert!(out.success() && out.stdout.trim().is_empty(), "GC: {out}");
    assert!(
        ip::link(&net.host, "admin0").is_some(),
        "GC deleted a foreign link in the network's link group"
    );

    assert_eq!(
        holdings(&net, &net.name),
        BTreeSet::from([held(&keep.att, ip_of(&keep_res))]),
        "GC kept the wrong reservations"
    );
    assert!(
        ip::link(&net.host, &veth(&keep_res)).is_some(),
        "listed veth removed"
    );
    assert!(
        ip::ping(&keep.ns, gateway_of(&keep_res)),
        "listed attachment broken by GC"
    );
    assert!(
        ip::link(&net.host, &veth(&gone_res)).is_none(),
        "unlisted veth left"
    );
    assert!(
        ip::link(&gone.ns, "eth0").is_none(),
        "unlisted container iface left"
    );

    assert_eq!(
        holdings(&net, &other.name),
        BTreeSet::from([held(&b.att, ip_of(&b_res))]),
        "GC touched another network's reservation"
    );
    assert!(
        ip::link(&net.host, &veth(&b_res)).is_some(),
        "GC removed another network's veth"
    );
    assert!(
        ip::ping(&b.ns, gateway_of(&b_res)),
        "another network broken by GC"
    );

    // The released address can be handed out again (requested explicitly).
    let again = Container::new();
    let mut conf_req = conf.clone();
    conf_req["args"] = json!({"cni": {"ips": [ip_of(&gone_res).to_string()]}});
    let res = add_ok(&net, Bin::Vbridge, &again.att, &conf_req);
    assert_eq!(
        ip_of(&res),
        ip_of(&gone_res),
        "released address not reusable"
    );
}

#[test]
fn gc_vbridge_valid_attachments() {
    gc_vbridge("cni.dev/valid-attachments");
}

#[test]
fn gc_vbridge_attachments_spelling() {
    gc_vbridge("cni.dev/attachments");
}

fn gc_ipam(key: &str) {
    let net = TestNet::new();
    let other = TestNet::new();
    let conf = net.flat_config(V);
    let conf_b = sibling_config(&net, &other);
    let keep = ipam_att(&net, "keep");
    // Same container, other interface: not listed, so it must go.
    let mut keep_eth1 = keep.clone();
    keep_eth1.ifname = "eth1".into();
    let gone = ipam_att(&net, "gone");
    let b = ipam_att(&net, "b");
    let keep_ip = ip_of(&add_ok(&net, Bin::Ipam, &keep, &conf));
    let eth1_ip = ip_of(&add_ok(&net, Bin::Ipam, &keep_eth1, &conf));
    let gone_ip = ip_of(&add_ok(&net, Bin::Ipam, &gone, &conf));
    let b_ip = ip_of(&add_ok(&net, Bin::Ipam, &b, &conf_b));

    let out = gc(&net, Bin::Ipam, &conf, key, &[&keep]);
    assert!(out.success() && out.stdout.trim().is_empty(), "GC: {out}");
    assert_eq!(
        holdings(&net, &net.name),
        BTreeSet::from([held(&keep, keep_ip)])
    );
    assert_eq!(
        holdings(&net, &other.name),
        BTreeSet::from([held(&b, b_ip)])
    );
    assert_store(&net.ipam_dir(), &net.name, 1);

    for addr in [eth1_ip, gone_ip] {
        let att = ipam_att(&net, "reuse");
        let mut req = conf.clone();
        req["args"] = json!({"cni": {"ips": [addr.to_string()]}});
        let got = ip_of(&add_ok(&net, Bin::Ipam, &att, &req));
        assert_eq!(got, addr, "released address not reusable");
    }
}

#[test]
fn gc_ipam_valid_attachments() {
    gc_ipam("cni.dev/valid-attachments");
}

#[test]
fn gc_ipam_attachments_spelling() {
    gc_ipam("cni.dev/attachments");
}

// ---------------------------------------------------------------------------------------
// 2. STATUS.

fn status(net: &TestNet, bin: Bin, conf: &Value) -> Output {
    call(net, bin, "STATUS", &no_att(), conf)
}

fn assert_ready(net: &TestNet, bin: Bin, conf: &Value, what: &str) {
    let out = status(net, bin, conf);
    assert!(
        out.success() && out.stdout.trim().is_empty(),
        "{bin:?} STATUS ({what}): {out}"
    );
}

fn assert_not_ready(net: &TestNet, bin: Bin, conf: &Value, what: &str, needle: &str) {
    let out = status(net, bin, conf);
    let err = out.expect_error(50);
    let text = format!("{} {}", err.msg, err.details.unwrap_or_default());
    assert!(
        text.contains(needle),
        "{bin:?} STATUS ({what}): reason lacks {needle:?}: {out}"
    );
}

fn status_outcomes(bin: Bin) {
    let net = TestNet::with_prefix(30);
    let conf = net.flat_config(V);
    assert_ready(&net, bin, &conf, "fresh /30");

    // Pool exhausted: the /30's one address is taken.
    let holder = ipam_att(&net, "holder");
    add_ok(&net, Bin::Ipam, &holder, &conf);
    assert_not_ready(&net, bin, &conf, "exhausted", "no free address");
    // Once the last change is a few seconds old, the finding is kept in the store (`full`)
    // and answers the next calls; the DEL must void it.
    let store = store_dir(&net.ipam_dir(), &net.name);
    let ips = fs::File::open(store.join("ips")).expect("open ips/");
    let aged = ips.metadata().and_then(|m| m.modified()).expect("mtime")
        - std::time::Duration::from_secs(10);
    ips.set_modified(aged).expect("age ips/");
    assert_not_ready(&net, bin, &conf, "exhausted, settled", "no free address");
    assert!(
        store.join("full").symlink_metadata().is_ok(),
        "no finding kept"
    );
    assert_not_ready(&net, bin, &conf, "exhausted, kept", "no free address");
    del_ok(&net, Bin::Ipam, &holder, &conf);
    assert_ready(&net, bin, &conf, "after DEL");

    // dataDir is a file.
    let file = net.tmp.sub("a-file");
    fs::write(&file, b"x").expect("write file");
    let mut on_file = conf.clone();
    on_file["ipam"]["dataDir"] = json!(file);
    assert_not_ready(&net, bin, &on_file, "dataDir is a file", &file);

    // dataDir under a read-only bind mount, for an existing store and a fresh one.
    let ro = net.tmp.path().join("ro");
    let mut on_ro = conf.clone();
    on_ro["ipam"]["dataDir"] = json!(ro.join("data").display().to_string());
    assert_ready(&net, bin, &on_ro, "before the remount");
    let mut fresh = on_ro.clone();
    fresh["name"] = json!(format!("{}-fresh", net.name));
    {
        let _ro = Mount::read_only(&ro);
        assert_not_ready(&net, bin, &on_ro, "read-only store", "read-only");
        assert_not_ready(&net, bin, &fresh, "read-only, no store", "read-only");
    }
    assert_ready(&net, bin, &on_ro, "after the unmount");
}

#[test]
fn status_vbridge() {
    status_outcomes(Bin::Vbridge);
}

#[test]
fn status_ipam() {
    status_outcomes(Bin::Ipam);
}

// ---------------------------------------------------------------------------------------
// 3. Dual stack.

/// Global IPv6 addresses of `dev` with their flags (`tentative`, `dadfailed`, ...).
fn v6_addrs(ns: &integration::Netns, dev: &str) -> Vec<(String, Vec<String>)> {
    ip::addr_infos(ns, &["-6", "addr", "show", "dev", dev, "scope", "global"])
        .into_iter()
        .filter_map(|a| {
            let flags = ["tentative", "dadfailed", "optimistic", "deprecated"]
                .iter()
                .filter(|f| a[**f] == json!(true))
                .map(|f| f.to_string())
                .collect();
            Some((a["local"].as_str()?.to_string(), flags))
        })
        .collect()
}

fn default_gw(ns: &integration::Netns, family: &str) -> Option<String> {
    let v = ip::ip_json(ns, &[family, "route", "show", "default"]);
    v.as_array()?
        .iter()
        .find_map(|r| r["gateway"].as_str().map(str::to_string))
}

/// The fixture's vbridge plugin with one IPv4 and one IPv6 range set; `tag` makes the
/// IPv6 subnet (`fd<tag>:<pid>:<net>::/64`) differ between tests.
fn dual_stack_plugin(net: &TestNet, tag: u8) -> Value {
    let v6 = format!(
        "fd{tag:02x}:{:x}:{:x}::/64",
        std::process::id() & 0xffff,
        net.id
    );
    let mut plugin = net.vbridge_plugin();
    plugin["ipam"] = json!({
        "type": "vbridge-ipam",
        "ranges": [[{"subnet": net.subnet.to_string()}], [{"subnet": v6}]],
        "dataDir": net.ipam_dir(),
    });
    plugin
}

#[test]
fn dual_stack_no_dad_stall() {
    let net = TestNet::new();
    let plugin = dual_stack_plugin(&net, 0x00);
    let rt = net.runtime(net.conflist(V, vec![plugin]));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let added = Instant::now();

    let (v6_addr, v6_gw) = {
        let ips = res["ips"].as_array().cloned().unwrap_or_default();
        assert_eq!(ips.len(), 2, "want one v4 + one v6 address: {res}");
        let v6 = ips
            .iter()
            .find(|i| i["address"].as_str().is_some_and(|a| a.contains(':')))
            .unwrap_or_else(|| panic!("no v6 address: {res}"));
        let addr = v6["address"].as_str().unwrap_or("");
        let gw = v6["gateway"].as_str().unwrap_or("");
        (
            addr.split('/').next().unwrap_or("").to_string(),
            gw.to_string(),
        )
    };
    // Right after ADD: the address is usable (no DAD running), here and on the gateway side.
    let eth0 = v6_addrs(&c.ns, "eth0");
    assert_eq!(
        eth0,
        vec![(v6_addr.clone(), vec![])],
        "container v6 address/flags"
    );
    let bridge = v6_addrs(&net.host, &net.bridge);
    assert!(
        bridge.iter().any(|(a, f)| *a == v6_gw && f.is_empty()),
        "bridge v6 gateway {v6_gw} missing or not usable: {bridge:?}"
    );
    let mut pinged = false;
    while !pinged && added.elapsed() < Duration::from_secs(3) {
        pinged = ip::run_in(
            &c.ns,
            &["ping", "-6", "-n", "-q", "-c", "1", "-W", "1", &v6_gw],
        )
        .success();
    }
    let took = added.elapsed();
    assert!(pinged, "ping -6 {v6_gw} failed for 3 s after ADD");
    assert!(
        took < Duration::from_millis(1500),
        "ping -6 to the gateway needed {took:?} after ADD (DAD stall?)"
    );

    assert!(net.subnet.contains(ip_of(&res)), "{res}");
    assert!(ip::addrs(&c.ns, "eth0")
        .iter()
        .any(|(a, _)| *a == ip_of(&res)));
    assert_eq!(default_gw(&c.ns, "-4"), Some(gateway_of(&res).to_string()));
    assert_eq!(default_gw(&c.ns, "-6"), Some(v6_gw.clone()));
    assert!(ip::ping(&c.ns, gateway_of(&res)), "v4 gateway unreachable");

    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert_store(&net.ipam_dir(), &net.name, 0);
}

// ---------------------------------------------------------------------------------------
// 4. Requested addresses.

/// Something that can be attached: a container (vbridge) or a bare attachment (IPAM).
struct Subject {
    container: Option<Container>,
    att: Attachment,
}

fn subject(net: &TestNet, bin: Bin) -> Subject {
    match bin {
        Bin::Vbridge => {
            let c = Container::new();
            Subject {
                att: c.att.clone(),
                container: Some(c),
            }
        }
        Bin::Ipam => Subject {
            att: ipam_att(net, "req"),
            container: None,
        },
    }
}

/// What a failed ADD must leave unchanged.
#[derive(Debug, PartialEq, Eq)]
struct World {
    reservations: Vec<Value>,
    /// Record files and whether a journal exists.
    files: (Vec<String>, bool),
    bridge_ports: usize,
}

fn world(net: &TestNet, data_dir: &str) -> World {
    World {
        reservations: ipam_ls::reservations(data_dir, &net.name),
        files: store_files(data_dir, &net.name),
        bridge_ports: ip::bridge_ports(&net.host, &net.bridge).len(),
    }
}

fn requested(bin: Bin) {
    let net = TestNet::new();
    let mut plugin = net.vbridge_plugin();
    plugin["capabilities"] = json!({"ips": true, "ipRanges": true});
    let rt = net.runtime(net.conflist(V, vec![plugin.clone()]));
    let stdin = |att: &Attachment| rt.plugin_config(&plugin, Some(att), None);
    let s = net.subnet;
    let expect_addr = |sub: &Subject, res: &Value, want: Ipv4Addr, how: &str| {
        assert_eq!(ip_of(res), want, "{bin:?} {how}: {res}");
        if let Some(c) = &sub.container {
            assert!(
                ip::addrs(&c.ns, "eth0").iter().any(|(a, _)| *a == want),
                "{how}: eth0 lacks {want}"
            );
        }
    };

    // runtimeConfig.ips, through the `ips` capability.
    let a = subject(&net, bin);
    let att = a
        .att
        .clone()
        .with_capability("ips", json!([format!("{}/24", s.host(10))]));
    let res = add_ok(&net, bin, &att, &stdin(&att));
    expect_addr(&a, &res, s.host(10), "runtimeConfig.ips");

    // args.cni.ips.
    let b = subject(&net, bin);
    let mut conf = stdin(&b.att);
    conf["args"] = json!({"cni": {"ips": [s.host(11).to_string()]}});
    let res = add_ok(&net, bin, &b.att, &conf);
    expect_addr(&b, &res, s.host(11), "args.cni.ips");

    // CNI_ARGS IP= (with IgnoreUnknown).
    let c = subject(&net, bin);
    let mut att = c.att.clone();
    att.cni_args = format!("IgnoreUnknown=1;IP={}", s.host(12));
    let res = add_ok(&net, bin, &att, &stdin(&att));
    expect_addr(&c, &res, s.host(12), "CNI_ARGS IP=");

    // runtimeConfig.ipRanges, through the `ipRanges` capability, with a config that has no
    // ranges of its own (a Kubernetes node's pod CIDR comes this way); as in host-local,
    // runtime range sets come before configured ones, which they must not overlap.
    let d = subject(&net, bin);
    let only = s.host(200).to_string();
    let range = json!([[{"subnet": s.to_string(), "rangeStart": only, "rangeEnd": only}]]);
    let att = d.att.clone().with_capability("ipRanges", range);
    let mut rangeless = plugin.clone();
    if let Some(ipam) = rangeless["ipam"].as_object_mut() {
        ipam.remove("subnet");
    }
    let res = add_ok(
        &net,
        bin,
        &att,
        &rt.plugin_config(&rangeless, Some(&att), None),
    );
    expect_addr(&d, &res, s.host(200), "runtimeConfig.ipRanges");
    let overlapping = call(&net, bin, "ADD", &att, &stdin(&att));
    assert_eq!(
        overlapping.cni_error().map(|e| e.code),
        Some(7),
        "{bin:?} ipRanges overlapping ipam.subnet: {overlapping}"
    );

    // Taken (101) and out of range (102, also the gateway): nothing changes.
    let before = world(&net, &net.ipam_dir());
    let bad = [
        (s.host(10).to_string(), 101),
        ("192.0.2.77".to_string(), 102),
        (s.host(1).to_string(), 102),
    ];
    for (addr, code) in bad {
        let e = subject(&net, bin);
        let att = e
            .att
            .clone()
            .with_capability("ips", json!([format!("{addr}/24")]));
        let out = call(&net, bin, "ADD", &att, &stdin(&att));
        let err = out.expect_error(code);
        assert!(
            err.msg.contains(&addr),
            "message does not name {addr}: {out}"
        );
        let mut att = e.att.clone();
        att.cni_args = format!("IgnoreUnknown=1;IP={addr}");
        call(&net, bin, "ADD", &att, &stdin(&att)).expect_error(code);
        assert_eq!(
            world(&net, &net.ipam_dir()),
            before,
            "{bin:?} failed ADD of {addr} changed the pool"
        );
        if let Some(c) = &e.container {
            assert!(ip::link(&c.ns, "eth0").is_none(), "failed ADD left eth0");
        }
    }
}

#[test]
fn requested_addresses_vbridge() {
    requested(Bin::Vbridge);
}

#[test]
fn requested_addresses_ipam() {
    requested(Bin::Ipam);
}

// ---------------------------------------------------------------------------------------
// 6. 100 concurrent processes: ADD → CHECK → DEL, never two live holders of one address.

#[test]
fn hundred_concurrent_ipam_processes() {
    const WORKERS: usize = 100;
    const ROUNDS: usize = 3;
    let net = TestNet::new();
    let conf = net.flat_config(V);
    let live: Mutex<HashMap<Ipv4Addr, String>> = Mutex::new(HashMap::new());
    let start = Barrier::new(WORKERS);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            let (net, conf, live, start, failures) = (&net, &conf, &live, &start, &failures);
            s.spawn(move || {
                start.wait();
                for _ in 0..ROUNDS {
                    let att = ipam_att(net, "w");
                    let out = call(net, Bin::Ipam, "ADD", &att, conf);
                    if !out.success() {
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("ADD: {out}"));
                        return;
                    }
                    let addr = ip_of(&out.json());
                    let prev = live
                        .lock()
                        .expect("live")
                        .insert(addr, att.container_id.clone());
                    assert!(
                        prev.is_none(),
                        "{addr} given to {} while {prev:?} holds it",
                        att.container_id
                    );
                    // Verify while holding it: CHECK that the store still says it is ours.
                    let mut check = conf.clone();
                    check["prevResult"] = out.json();
                    let verified = call(net, Bin::Ipam, "CHECK", &att, &check);
                    if !verified.success() {
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("CHECK {addr}: {verified}"));
                    }
                    // Leave the live set first: once DEL starts the address may be reused.
                    live.lock().expect("live").remove(&addr);
                    let out = call(net, Bin::Ipam, "DEL", &att, conf);
                    if !out.success() {
                        failures
                            .lock()
                            .expect("failures")
                            .push(format!("DEL: {out}"));
                        return;
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("failures");
    assert!(
        failures.is_empty(),
        "{} calls failed, first: {}",
        failures.len(),
        failures[0]
    );
    assert_store(&net.ipam_dir(), &net.name, 0);
}

// ---------------------------------------------------------------------------------------
// 7. Corruption is reported, never rewritten.

/// A journal that cannot be replayed, or an unreadable meta.json, stops every operation
/// at its lock (107): `ls` lists it as corrupt and exits 1, and does not promise that the
/// next ADD repairs it.
#[test]
fn corrupt_journal_or_meta_is_listed() {
    for (file, junk) in [
        ("journal", "{\"cont"),
        ("meta.json", "{\"cont"),
        ("meta.json", "{\"format\":0}"),
    ] {
        let net = TestNet::new();
        let conf = net.flat_config(V);
        add_ok(&net, Bin::Ipam, &ipam_att(&net, "a"), &conf);
        let path = store_dir(&net.ipam_dir(), &net.name).join(file);
        fs::write(&path, junk).expect("garble");
        let (view, out) = ipam_ls::view(&net.ipam_dir(), &net.name);
        assert_eq!(out.code, 1, "{file}: ls must fail: {out}");
        assert!(view["corrupt"].to_string().contains(file), "{file}: {view}");
        let table = ipam_ls::admin(&["ls", "--data-dir", &net.ipam_dir(), &net.name]);
        assert!(!table.stdout.contains("repairs it"), "{file}: {table}");
        let err = call(&net, Bin::Ipam, "ADD", &ipam_att(&net, "b"), &conf);
        assert_eq!(
            err.cni_error().map(|e| e.code),
            Some(107),
            "{file}: ADD: {err}"
        );
    }
}

#[test]
fn corrupt_record_is_reported_not_rewritten() {
    let net = TestNet::new();
    let conf = net.flat_config(V);
    let a = Container::new();
    let a_ip = ip_of(&add_ok(&net, Bin::Vbridge, &a.att, &conf));
    let b = ipam_att(&net, "b");
    add_ok(&net, Bin::Ipam, &b, &conf);
    let name = format!("ips/{a_ip}");
    let file = store_dir(&net.ipam_dir(), &net.name).join(&name);
    let junk = b"{\"cont";
    // The name is replaced, as an editor or a broken restore does: all of an attachment's
    // names share one file, so writing into it would garble its attachment name too.
    fs::remove_file(&file).expect("unlink record");
    fs::write(&file, junk).expect("garble record");

    let (view, out) = ipam_ls::view(&net.ipam_dir(), &net.name);
    assert_eq!(out.code, 1, "ls must fail on a corrupt store: {out}");
    assert!(
        view["corrupt"].to_string().contains(&name),
        "ls --json: {view}"
    );
    let table = ipam_ls::admin(&["ls", "--data-dir", &net.ipam_dir(), &net.name]);
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("CORRUPT") && l.contains(&name)),
        "ls table: {table}"
    );

    // Every verb that needs the record: 107 naming the file, and the file left as it is.
    let mut check = conf.clone();
    check["prevResult"] = json!({"cniVersion": V, "ips": [{"address": format!("{a_ip}/24")}]});
    let mut request = conf.clone();
    request["args"] = json!({"cni": {"ips": [a_ip.to_string()]}});
    let valid = [&a.att, &b];
    let calls = [
        (
            "vbridge DEL",
            call(&net, Bin::Vbridge, "DEL", &a.att, &conf),
        ),
        ("ipam DEL", call(&net, Bin::Ipam, "DEL", &a.att, &conf)),
        (
            "ipam ADD retry",
            call(&net, Bin::Ipam, "ADD", &a.att, &conf),
        ),
        ("ipam CHECK", call(&net, Bin::Ipam, "CHECK", &a.att, &check)),
        (
            "ipam GC",
            gc(&net, Bin::Ipam, &conf, "cni.dev/valid-attachments", &valid),
        ),
        (
            "vbridge GC",
            gc(&net, Bin::Vbridge, &conf, "cni.dev/valid-attachments", &[]),
        ),
        (
            "ipam ADD of that address",
            call(&net, Bin::Ipam, "ADD", &ipam_att(&net, "c"), &request),
        ),
    ];
    let mut problems = Vec::new();
    for (what, out) in &calls {
        let named = out
            .cni_error()
            .is_some_and(|e| e.code == 107 && e.msg.contains(&name));
        if !named || out.signal.is_some() {
            problems.push(format!("{what}: want 107 naming {name}, got {out}"));
        }
        if fs::read(&file).expect("read record") != junk {
            problems.push(format!("{what} rewrote {name}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------
// 8. Full or read-only data dir: code 5, nothing half written.

fn failing_data_dir(bin: Bin, full: bool) {
    let net = TestNet::new();
    let dir = net.tmp.path().join("mnt");
    let mut conf = net.flat_config(V);
    conf["ipam"]["dataDir"] = json!(dir.display().to_string());
    let data_dir = dir.display().to_string();
    let tmpfs = full.then(|| Mount::tmpfs(&dir, "64k"));
    let first = subject(&net, bin);
    add_ok(&net, bin, &first.att, &conf);
    let before = world(&net, &data_dir);
    let filler = full.then(|| fill(&dir));
    let ro = (!full).then(|| Mount::read_only(&dir));

    let second = subject(&net, bin);
    let out = call(&net, bin, "ADD", &second.att, &conf);
    let err = out.expect_error(5);
    let hint = if full { "disk is full" } else { "read-only" };
    assert!(
        err.msg.contains(hint) && err.msg.contains(&data_dir),
        "unclear message: {out}"
    );
    assert_eq!(
        world(&net, &data_dir),
        before,
        "failed ADD changed the store or the bridge"
    );
    if let Some(c) = &second.container {
        assert!(ip::link(&c.ns, "eth0").is_none(), "failed ADD left eth0");
    }

    // Once the disk has room again, the same ADD works.
    drop(ro);
    if let Some(f) = filler {
        fs::remove_file(f).expect("remove filler");
    }
    add_ok(&net, bin, &second.att, &conf);
    assert_store(&data_dir, &net.name, 2);
    drop(tmpfs);
}

#[test]
fn full_data_dir_vbridge() {
    failing_data_dir(Bin::Vbridge, true);
}

#[test]
fn full_data_dir_ipam() {
    failing_data_dir(Bin::Ipam, true);
}

#[test]
fn read_only_data_dir_vbridge() {
    failing_data_dir(Bin::Vbridge, false);
}

#[test]
fn read_only_data_dir_ipam() {
    failing_data_dir(Bin::Ipam, false);
}

// ---------------------------------------------------------------------------------------
// 9. Admin view.

#[test]
fn admin_ls_lists_reservations() {
    let t0 = now();
    let net = TestNet::new();
    let conf = net.flat_config(V);
    let c = Container::new();
    let c_ip = ip_of(&add_ok(&net, Bin::Vbridge, &c.att, &conf));
    let mut other = ipam_att(&net, "adm");
    other.ifname = "net1".into();
    let o_ip = ip_of(&add_ok(&net, Bin::Ipam, &other, &conf));
    let dir = net.ipam_dir();

    let (view, out) = ipam_ls::view(&dir, &net.name);
    assert!(out.success(), "{out}");
    assert_eq!(view["network"], net.name.as_str());
    let rows = view["reservations"].as_array().cloned().unwrap_or_default();
    for (att, addr) in [(&c.att, c_ip), (&other, o_ip)] {
        let row = rows
            .iter()
            .find(|r| r["address"] == addr.to_string().as_str())
            .unwrap_or_else(|| panic!("{addr} not listed: {view}"));
        assert_eq!(row["containerID"], att.container_id.as_str(), "{row}");
        assert_eq!(row["ifname"], att.ifname.as_str(), "{row}");
        let since = row["since"].as_u64().unwrap_or(0);
        assert!(
            since + 5 >= t0 && since <= now() + 5,
            "since {since}: {row}"
        );
        assert_eq!(row["previousBoot"], false, "{row}");
    }

    let table = ipam_ls::admin(&["ls", "--data-dir", &dir]);
    assert!(table.success(), "{table}");
    let header = table.stdout.lines().next().unwrap_or("");
    for col in ["NETWORK", "ADDRESS", "CONTAINER", "IFNAME", "SINCE"] {
        assert!(header.contains(col), "header lacks {col}: {table}");
    }
    for (att, addr) in [(&c.att, c_ip), (&other, o_ip)] {
        let a = addr.to_string();
        let since = rows
            .iter()
            .find(|r| r["address"] == a.as_str())
            .and_then(|r| r["since"].as_u64())
            .unwrap_or(0);
        let line = table
            .stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(a.as_str()))
            .unwrap_or_else(|| panic!("{addr} not in table: {table}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], net.name, "{line}");
        assert_eq!(cols[2], att.container_id, "{line}");
        assert_eq!(cols[3], att.ifname, "{line}");
        assert_eq!(cols[4..6].join(" "), utc(since), "SINCE column: {line}");
    }

    let help = ipam_ls::admin(&["--help"]);
    assert!(help.success(), "{help}");
    assert!(help.stdout.contains("vbridge-ipam ls"), "{help}");
    assert!(help.stdout.to_lowercase().contains("repair"), "{help}");
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `secs` as `date -u '+%F %T'` prints it.
fn utc(secs: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%F %T"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

// ---------------------------------------------------------------------------------------
// 10. Reboot: a full pool reclaims reservations of a previous boot, and only those.

#[test]
fn previous_boot_reservation_reclaimed_on_full_pool() {
    let net = TestNet::with_prefix(30);
    let conf = net.flat_config(V);
    let (old, new) = (ipam_att(&net, "old"), ipam_att(&net, "new"));
    let addr = ip_of(&add_ok(&net, Bin::Ipam, &old, &conf));
    call(&net, Bin::Ipam, "ADD", &new, &conf).expect_error(100);

    let file = store_dir(&net.ipam_dir(), &net.name).join(format!("ips/{addr}"));
    let mut rec: Value =
        serde_json::from_slice(&fs::read(&file).expect("read record")).expect("record JSON");
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
    assert_eq!(
        rec["boot"],
        boot.trim(),
        "record lacks the current boot id: {rec}"
    );
    rec["boot"] = json!("00000000-0000-4000-8000-000000000000");
    fs::write(&file, rec.to_string()).expect("rewrite record");
    // A real reboot also changes the boot id in the store's `full` finding (if a refused
    // ADD left one), which voids it; this test can only change the record's, so it drops
    // any finding itself (the store's unit tests reboot it for real).
    let full = store_dir(&net.ipam_dir(), &net.name).join("full");
    if full.symlink_metadata().is_ok() {
        fs::remove_file(&full).expect("remove full");
    }
    let (view, _) = ipam_ls::view(&net.ipam_dir(), &net.name);
    assert_eq!(view["reservations"][0]["previousBoot"], true, "{view}");

    let got = ip_of(&add_ok(&net, Bin::Ipam, &new, &conf));
    assert_eq!(got, addr, "the previous boot's address was not reclaimed");
    assert_eq!(
        holdings(&net, &net.name),
        BTreeSet::from([held(&new, addr)])
    );
    // The old container's late DEL must not release the new holder's address.
    del_ok(&net, Bin::Ipam, &old, &conf);
    assert_eq!(
        holdings(&net, &net.name),
        BTreeSet::from([held(&new, addr)])
    );
    assert_store(&net.ipam_dir(), &net.name, 1);
}

/// How `vbridge_without_nft` takes nft away.
#[derive(Clone, Copy, Debug)]
enum NoNft {
    /// /usr/sbin/nft is /bin/false: there, but every call fails.
    Failing,
    /// An empty /usr/sbin (so /sbin too): not installed.
    Absent,
}

/// Runs vbridge like the harness does, but in a private mount namespace without a
/// working nft (nothing outside that namespace changes).
fn vbridge_without_nft(
    net: &TestNet,
    env: &[(String, String)],
    conf: &str,
    how: NoNft,
) -> (bool, Value) {
    let hide = match how {
        NoNft::Failing => "mount --bind /bin/false /usr/sbin/nft",
        NoNft::Absent => "mount -t tmpfs none /usr/sbin",
    };
    let script = format!(
        "{hide} && exec /usr/bin/nsenter --net={} {}",
        net.host.path_str(),
        paths::vbridge().display()
    );
    let mut child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn unshare");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(conf.as_bytes())
        .expect("write config");
    let out = child.wait_with_output().expect("wait");
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), v)
}

/// STATUS of a network that needs nftables is 50 when `nft` cannot run.
#[test]
fn status_without_usable_nft_is_50() {
    let net = TestNet::new();
    let conf = net.flat_config("1.1.0").to_string();
    let env = vec![
        ("CNI_COMMAND".to_string(), "STATUS".to_string()),
        (
            "CNI_PATH".to_string(),
            paths::bin_dir().display().to_string(),
        ),
    ];
    let (ok, err) = vbridge_without_nft(&net, &env, &conf, NoNft::Failing);
    assert!(!ok);
    assert_eq!(err["code"], 50, "{err}");
    assert!(err["msg"].as_str().unwrap_or("").contains("nft"), "{err}");
}

/// Without nft an ipMasq ADD fails (108) — before it changes anything on the host when
/// nft is not installed (no bridge, no forwarding switched on), rolled back when nft
/// fails — and the runtime's DEL that follows still succeeds, with the teardown done by
/// the DEL itself (delay 0).
#[test]
fn add_without_nft_fails_cleanly_and_del_succeeds() {
    for how in [NoNft::Absent, NoNft::Failing] {
        let net = TestNet::with_prefix(30);
        let c = Container::new();
        let mut conf = net.flat_config("1.1.0");
        conf["firewallTeardownDelayMs"] = json!(0);
        let conf = conf.to_string();
        let env = |cmd: &str| integration::runtime::cni_env(cmd, &c.att);
        // A new netns copies the machine's setting; the check below needs it off.
        ip::sysctl(&net.host, "net.ipv4.ip_forward", "0");
        let (ok, err) = vbridge_without_nft(&net, &env("ADD"), &conf, how);
        assert!(!ok);
        assert_eq!(err["code"], 108, "{how:?}: {err}");
        assert!(
            ip::bridge_ports(&net.host, &net.bridge).is_empty(),
            "{how:?}: ADD left a port"
        );
        if let NoNft::Absent = how {
            assert!(
                ip::link(&net.host, &net.bridge).is_none(),
                "ADD left the bridge"
            );
            assert_eq!(
                ip::sysctl_value(&net.host, "net.ipv4.ip_forward"),
                "0",
                "ADD switched forwarding on"
            );
        }
        let (ok, out) = vbridge_without_nft(&net, &env("DEL"), &conf, how);
        assert!(ok, "{how:?}: DEL after the failed ADD: {out}");
        assert!(
            net.pool_has_free_address(),
            "{how:?}: the address was not released"
        );
    }
}

/// libcni sends a runtime's empty list of live attachments (a Go nil slice, e.g. a node
/// with no pods left after a reboot) as `null` under both keys, and no key at all for a
/// GC without arguments (`cnitool gc`, "all network interfaces should be GC'ed"): either
/// way nothing is valid.
#[test]
fn gc_with_null_or_no_lists_releases_every_reservation() {
    for bin in [Bin::Ipam, Bin::Vbridge] {
        for null in [true, false] {
            let net = TestNet::new();
            let conf = net.flat_config("1.1.0");
            for id in ["a", "b"] {
                add_ok(&net, Bin::Ipam, &ipam_att(&net, id), &conf);
            }
            assert_eq!(holdings(&net, &net.name).len(), 2);
            let mut gc = conf.clone();
            if null {
                gc["cni.dev/valid-attachments"] = Value::Null;
                gc["cni.dev/attachments"] = Value::Null;
            }
            let out = call(&net, bin, "GC", &no_att(), &gc);
            assert!(out.success(), "{bin:?} GC (null lists: {null}): {out}");
            assert!(
                holdings(&net, &net.name).is_empty(),
                "{bin:?} GC (null lists: {null}) kept reservations"
            );
        }
    }
}

/// A runtime may have turned IPv6 off in the pod's namespace (`default.disable_ipv6=1`,
/// which a new link inherits): a dual-stack ADD switches it back on for its interface, as
/// the reference does, instead of failing on the IPv6 address.
#[test]
fn dual_stack_add_into_a_namespace_with_ipv6_disabled() {
    let net = TestNet::new();
    let plugin = dual_stack_plugin(&net, 0x01);
    let rt = net.runtime(net.conflist(V, vec![plugin]));
    let c = Container::new();
    ip::sysctl(&c.ns, "net.ipv6.conf.default.disable_ipv6", "1");
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let v6_addr = res["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str())
        .find(|a| a.contains(':'))
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no v6 address: {res}"));
    assert!(
        v6_addrs(&c.ns, "eth0").iter().any(|(a, _)| *a == v6_addr),
        "eth0 lacks {v6_addr}"
    );
    rt.check(&c.att).unwrap_or_else(|e| panic!("CHECK: {e}"));
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

/// `enabledad`: the ADD returns once duplicate address detection is done, so the pod can
/// bind its IPv6 address at once; an address in use on the network fails the ADD (112),
/// which then releases everything.
#[test]
fn enabledad_waits_for_detection_and_fails_on_a_duplicate() {
    let net = TestNet::new();
    let mut plugin = dual_stack_plugin(&net, 0x02);
    let v6_subnet = plugin["ipam"]["ranges"][1][0]["subnet"]
        .as_str()
        .expect("v6 subnet")
        .to_string();
    let prefix = v6_subnet.trim_end_matches("::/64").to_string();
    plugin["enabledad"] = json!(true);
    let rt = net.runtime(net.conflist(V, vec![plugin.clone()]));
    let c = Container::new();
    rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let eth0 = v6_addrs(&c.ns, "eth0");
    assert_eq!(eth0.len(), 1, "{eth0:?}");
    assert!(eth0[0].1.is_empty(), "still tentative after ADD: {eth0:?}");
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));

    // The next address the range hands out (round robin) is already the host's.
    let next: std::net::Ipv6Addr = format!("{prefix}::3").parse().expect("v6");
    let next = next.to_string();
    ip::must_run_in(
        &net.host,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{next}/128"),
            "dev",
            &net.bridge,
            "nodad",
        ],
    );
    let d = Container::new();
    let err = rt.add(&d.att).expect_err("a duplicate IPv6 address");
    assert_eq!(err.code(), 112, "{err}");
    assert!(err.to_string().contains(&next), "{err}");
    assert!(ip::link(&d.ns, "eth0").is_none(), "eth0 left behind");
    assert!(
        holdings(&net, &net.name).is_empty(),
        "the failed ADD kept its reservations"
    );
    rt.del(&d.att)
        .unwrap_or_else(|e| panic!("DEL after the failed ADD: {e}"));
}

/// Two dual-stack networks that both want the container's default routes: the second
/// IPv6 default route joins the first as a multipath route (as with the reference), and
/// CHECK reads multipath routes, so both networks pass it.
#[test]
fn two_dual_stack_networks_share_the_default_routes() {
    let nets = [TestNet::new(), TestNet::new()];
    let c = Container::new();
    let mut done = Vec::new();
    for (i, net) in nets.iter().enumerate() {
        let rt = net.runtime(net.conflist(V, vec![dual_stack_plugin(net, 0x03)]));
        let mut att = c.att.clone();
        att.ifname = format!("net{i}");
        rt.add(&att).unwrap_or_else(|e| panic!("ADD {i}: {e}"));
        done.push((rt, att));
    }
    let v6_defaults = ip::ip_json(&c.ns, &["-6", "route", "show", "default"]);
    let text = v6_defaults.to_string();
    assert!(
        text.contains("net0") && text.contains("net1"),
        "both IPv6 default routes: {text}"
    );
    for (rt, att) in &done {
        rt.check(att)
            .unwrap_or_else(|e| panic!("CHECK {}: {e}", att.ifname));
    }
    for (rt, att) in &done {
        rt.del(att)
            .unwrap_or_else(|e| panic!("DEL {}: {e}", att.ifname));
    }
}

/// `resolvConf` is read by ADD only: the file gone after an ADD (a node's resolver
/// reconfigured) must not stop the DEL from releasing; the next ADD reports it (7).
#[test]
fn resolv_conf_is_read_by_add_only() {
    for bin in [Bin::Ipam, Bin::Vbridge] {
        let net = TestNet::new();
        let file = net.tmp.sub("resolv.conf");
        fs::write(&file, "nameserver 192.0.2.53\nsearch example.test\n").expect("write");
        let mut conf = net.flat_config("1.1.0");
        conf["ipam"]["resolvConf"] = json!(file);
        let sub = subject(&net, bin);
        let att = sub.att.clone();
        let res = add_ok(&net, bin, &att, &conf);
        assert_eq!(res["dns"]["nameservers"][0], "192.0.2.53", "{res}");
        fs::remove_file(&file).expect("rm");
        del_ok(&net, bin, &att, &conf);
        assert!(
            holdings(&net, &net.name).is_empty(),
            "{bin:?} DEL released nothing"
        );
        let out = call(&net, bin, "ADD", &att, &conf);
        assert_eq!(out.cni_error().map(|e| e.code), Some(7), "{bin:?}: {out}");
        assert!(
            holdings(&net, &net.name).is_empty(),
            "{bin:?} refused ADD reserved"
        );
    }
}

/// A network whose ranges all come from the runtime (`ipRanges` capability, as a
/// Kubernetes node's pod CIDR does): libcni sends GC and STATUS without `runtimeConfig`,
/// so neither may require ranges — STATUS answers ready, GC releases what is not valid.
#[test]
fn runtime_ranges_network_takes_gc_and_status() {
    for bin in [Bin::Ipam, Bin::Vbridge] {
        let net = TestNet::new();
        let mut conf = net.flat_config("1.1.0");
        conf["capabilities"] = json!({"ipRanges": true});
        conf["ipam"]
            .as_object_mut()
            .expect("ipam object")
            .remove("subnet")
            .expect("the fixture's subnet");
        let mut add = conf.clone();
        add["runtimeConfig"] = json!({"ipRanges": [[{"subnet": net.subnet.to_string()}]]});
        let (a, b) = (ipam_att(&net, "a"), ipam_att(&net, "b"));
        add_ok(&net, Bin::Ipam, &a, &add);
        add_ok(&net, Bin::Ipam, &b, &add);
        assert_ready(&net, bin, &conf, "ranges from the runtime only");
        let out = gc(&net, bin, &conf, "cni.dev/valid-attachments", &[&a]);
        assert!(out.success(), "{bin:?} GC: {out}");
        let left: Vec<String> = holdings(&net, &net.name)
            .into_iter()
            .map(|(id, _, _)| id)
            .collect();
        assert_eq!(left, vec![a.container_id.clone()], "{bin:?} GC");
    }
}

/// A runtime DELs after every failed ADD: one refused for its IPAM ranges or its bridge
/// name made nothing, and its DEL (and GC) must succeed, or containerd retries the sandbox
/// teardown forever.
#[test]
fn del_and_gc_succeed_after_an_add_refused_for_its_config() {
    let net = TestNet::new();
    let c = Container::new();
    let mut bad_ranges = net.flat_config("1.1.0");
    bad_ranges["ipam"]["subnet"] = json!("10.88.0.1/16");
    let mut bad_bridge = net.flat_config("1.1.0");
    bad_bridge["bridge"] = json!("a-bridge-name-too-long");
    for conf in [bad_ranges, bad_bridge] {
        let out = net.vbridge("ADD", &c.att, &conf);
        assert_eq!(out.cni_error().map(|e| e.code), Some(7), "ADD: {out}");
        let out = net.vbridge("DEL", &c.att, &conf);
        assert!(out.success(), "DEL after the refused ADD of {conf}: {out}");
        let out = gc(&net, Bin::Vbridge, &conf, "cni.dev/valid-attachments", &[]);
        assert!(out.success(), "GC of {conf}: {out}");
    }
}
