//! The firewall after the world changed under it: a flushed ruleset, a resized subnet,
//! a network whose range set spans several subnets, an install nft refuses, a deleted
//! isolation chain.

use std::net::Ipv4Addr;

use integration::result::ip_of;
use integration::TEARDOWN;
use integration::{ip, Container, Outside, Runtime, TestNet};
use serde_json::{json, Value};

/// The fixture's plugin with `ranges` as its only range set.
fn plugin_with_ranges(net: &TestNet, ranges: &[&str]) -> Value {
    let mut plugin = net.vbridge_plugin();
    let set: Vec<Value> = ranges.iter().map(|s| json!({ "subnet": s })).collect();
    plugin["ipam"] = json!({
        "type": "vbridge-ipam",
        "ranges": [set],
        "dataDir": net.ipam_dir(),
    });
    plugin
}

/// The runtimes of `net` before and after its /26 is widened to the /25 around it.
fn resized(net: &TestNet) -> (Runtime, Runtime) {
    let wide = format!("{}/25", net.subnet.base);
    let list = |range: &str| net.conflist("1.0.0", vec![plugin_with_ranges(net, &[range])]);
    (
        net.runtime(list(&net.subnet.to_string())),
        net.runtime(list(&wide)),
    )
}

/// Debian's nftables.service reload runs `nft flush ruleset`: the next ADD must put the
/// network's rules back, though its stamp still matches the boot and netns.
#[test]
fn flushed_ruleset_is_reinstalled_by_the_next_add() {
    let net = TestNet::new();
    let out = net.outside();
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let (a, b) = (Container::new(), Container::new());
    rt.add(&a.att).expect("ADD a");
    ip::must_run_in(&net.host, &["nft", "flush", "ruleset"]);
    let res = rt.add(&b.att).expect("ADD b");
    let tables = ip::nft_tables(&net.host);
    assert!(
        tables.contains(&net.masq_table()),
        "masquerade table not reinstalled: {tables:?}"
    );
    assert!(
        tables.contains(&("inet".to_string(), "vbridge".to_string())),
        "shared table not reinstalled: {tables:?}"
    );
    let seen = out.source_seen(&b.ns, 7001);
    assert_eq!(
        seen,
        out.host_addr,
        "outside saw {seen}; container is {}",
        ip_of(&res)
    );
    rt.check(&a.att).expect("CHECK a after the reinstall");
    rt.del(&a.att).expect("DEL a");
    rt.del(&b.att).expect("DEL b");
    assert!(
        ip::nft_table_gone(&net.host, &net.masq_table(), TEARDOWN),
        "masquerade table survived the last DEL"
    );
}

/// An admin widens the subnet (/26 → /25) while a pod of the old size runs: nft refuses
/// a set element inside another, so the ADD after the resize used to fail (108), and so
/// did every later one and the removal after the last DEL.
#[test]
fn resized_subnet_with_old_pods_running() {
    let net = TestNet::with_prefix(26);
    let (old_rt, new_rt) = resized(&net);
    let (a, b, c) = (Container::new(), Container::new(), Container::new());
    old_rt.add(&a.att).expect("ADD a in the /26");
    new_rt.add(&b.att).expect("ADD b after the resize to /25");
    new_rt.add(&c.att).expect("a later ADD");
    old_rt
        .check(&a.att)
        .expect("CHECK of the pod in the old /26");
    new_rt.check(&b.att).expect("CHECK of a pod in the /25");
    old_rt.del(&a.att).expect("DEL a");
    new_rt.del(&b.att).expect("DEL b");
    new_rt.del(&c.att).expect("DEL c");
    assert_all_removed(&net);
}

/// What a resize used to leave: a pending stamp naming both sizes (the install failed)
/// while the sets hold the old element. The next ADD must not keep the failed subnets'
/// conflict alive, and the last DEL must remove everything.
#[test]
fn failed_install_after_a_resize_does_not_wedge_the_network() {
    let net = TestNet::with_prefix(26);
    let wide = format!("{}/25", net.subnet.base);
    let (old_rt, new_rt) = resized(&net);
    let (a, b) = (Container::new(), Container::new());
    old_rt.add(&a.att).expect("ADD a in the /26");
    let stamp_path = net.network_state().join("firewall.json");
    let text = std::fs::read_to_string(&stamp_path).expect("read the firewall stamp");
    let mut stamp: Value = serde_json::from_str(&text).expect("stamp JSON");
    stamp["pending"] = json!(true);
    stamp["subnets"] = json!([wide, net.subnet.to_string()]);
    std::fs::write(&stamp_path, stamp.to_string()).expect("write the firewall stamp");

    new_rt.add(&b.att).expect("ADD b after the failed install");
    old_rt.check(&a.att).expect("CHECK a");
    new_rt.check(&b.att).expect("CHECK b");
    old_rt.del(&a.att).expect("DEL a");
    new_rt.del(&b.att).expect("DEL b");
    assert_all_removed(&net);
}

/// After the network's last DEL: its table and its set elements are gone.
fn assert_all_removed(net: &TestNet) {
    assert!(
        ip::nft_table_gone(&net.host, &net.masq_table(), TEARDOWN),
        "masquerade table survived the last DEL"
    );
    assert_eq!(nets4(net), json!([]), "set elements left behind");
}

/// The elements of the shared IPv4 set as listed, each with its comment (null when
/// empty).
fn nets4_listed(net: &TestNet) -> Value {
    let args = ["nft", "-j", "list", "set", "inet", "vbridge", "nets4"];
    let listed = ip::must_run_in(&net.host, &args).json();
    listed["nftables"][1]["set"]["elem"].clone()
}

/// The keys of the shared IPv4 set's elements, without their comments.
fn nets4(net: &TestNet) -> Value {
    let elems = nets4_listed(net).as_array().cloned().unwrap_or_default();
    let key = |e: Value| e.get("elem").map_or(e.clone(), |w| w["val"].clone());
    Value::Array(elems.into_iter().map(key).collect())
}

/// Two ranges in one range set: pods land in different subnets, and the network's rules
/// cover both. CHECK of either pod must accept the rules of the other's subnet.
#[test]
fn check_accepts_the_rules_of_another_range() {
    // A /30 holds one pod: the second one lands in the next range.
    let net = TestNet::with_prefix(30);
    let second = format!("{}/25", net.subnet.host(128));
    let plugin = plugin_with_ranges(&net, &[&net.subnet.to_string(), &second]);
    let rt = net.runtime(net.conflist("1.0.0", vec![plugin]));
    let (a, b) = (Container::new(), Container::new());
    let ra = rt.add(&a.att).expect("ADD a");
    let rb = rt.add(&b.att).expect("ADD b");
    assert!(net.subnet.contains(ip_of(&ra)), "a is not in the /30: {ra}");
    assert!(!net.subnet.contains(ip_of(&rb)), "b is in the /30: {rb}");
    rt.check(&a.att).expect("CHECK a");
    rt.check(&b.att).expect("CHECK b");
    rt.del(&a.att).expect("DEL a");
    rt.del(&b.att).expect("DEL b");
}

/// A second vbridge network `name` in `net`'s host netns, on a bridge of its own, with
/// `subnet` as its only range (stateDir and dataDir are shared, as on a real host).
fn sibling(net: &TestNet, suffix: &str, subnet: &str, settings: Value) -> Runtime {
    let mut plugin = plugin_with_ranges(net, &[subnet]);
    plugin["bridge"] = json!(format!("{}{suffix}", net.bridge));
    for (k, v) in settings.as_object().into_iter().flatten() {
        plugin[k] = v.clone();
    }
    let name = format!("{}-{suffix}", net.name);
    net.runtime(json!({"cniVersion": "1.0.0", "name": name, "plugins": [plugin]}))
}

/// The two /24 halves of the /23 around `net`'s subnet, and the /23.
fn halves(net: &TestNet) -> (String, String, String) {
    let base = u32::from(net.subnet.base) & !0x1ff;
    let lower = Ipv4Addr::from(base);
    let upper = Ipv4Addr::from(base + 0x100);
    (
        format!("{lower}/24"),
        format!("{upper}/24"),
        format!("{lower}/23"),
    )
}

fn assert_masqueraded(out: &Outside, c: &Container, port: u16) {
    let seen = out.source_seen(&c.ns, port);
    assert_eq!(seen, out.host_addr, "outside saw {seen}: not masqueraded");
}

/// Network A is widened to a /23 that overlaps network B's /24: nft refuses every
/// install, and must leave the rules A's running pods rely on. A failed install used to
/// make the next ADD clear the network's state first, and so leave it with none.
#[test]
fn failed_install_keeps_the_rules_of_running_pods() {
    let net = TestNet::new();
    let out = net.outside();
    let (lower, upper, wide) = halves(&net);
    let a_rt = net.runtime(net.conflist("1.0.0", vec![plugin_with_ranges(&net, &[&lower])]));
    let wide_rt = net.runtime(net.conflist("1.0.0", vec![plugin_with_ranges(&net, &[&wide])]));
    let b_rt = sibling(&net, "b", &upper, json!({}));
    let (a, b, c) = (Container::new(), Container::new(), Container::new());
    a_rt.add(&a.att).expect("ADD a in A's /24");
    b_rt.add(&b.att).expect("ADD b in B's /24");
    for attempt in ["first", "second"] {
        let err = wide_rt
            .add(&c.att)
            .expect_err("A's /23 overlaps B's /24: nft must refuse it");
        assert_eq!(err.code(), 108, "{attempt} ADD after the widening: {err}");
    }
    assert!(
        ip::nft_tables(&net.host).contains(&net.masq_table()),
        "A's table is gone after the failed ADDs"
    );
    assert_masqueraded(&out, &a, 7002);
    b_rt.check(&b.att).expect("CHECK b: B's state untouched");
    a_rt.del(&a.att).expect("DEL a");
    assert!(
        ip::nft_table_gone(&net.host, &net.masq_table(), TEARDOWN),
        "A's table survived its last DEL"
    );
    // A's removal deleted its own element only, although B's lies inside A's /23.
    assert_eq!(
        nets4(&net),
        json!([{"prefix": {"addr": upper.trim_end_matches("/24"), "len": 24}}])
    );
    b_rt.del(&b.att).expect("DEL b");
}

/// The isolate chain of a network lives in the shared table: deleted on its own (or with
/// the table, which the next install of any network recreates), the network's tables
/// are still there, and the next ADD must notice the chain is not.
#[test]
fn deleted_isolation_chain_is_restored_by_the_next_add() {
    let net = TestNet::new();
    let mut plugin = net.vbridge_plugin();
    plugin["isolate"] = json!(true);
    let rt = net.runtime(net.conflist("1.0.0", vec![plugin]));
    let chain = format!("isolate-{}", net.name);
    let listed =
        || ip::nft_chains(&net.host).contains(&("inet".into(), "vbridge".into(), chain.clone()));
    let (a, b) = (Container::new(), Container::new());
    rt.add(&a.att).expect("ADD a");
    assert!(listed(), "no isolate chain after the first ADD");
    // A chain with rules cannot be deleted.
    let delete = format!("flush chain inet vbridge {chain}; delete chain inet vbridge {chain}");
    ip::must_run_in(&net.host, &["nft", &delete]);
    assert!(!listed(), "the isolate chain was not deleted");
    rt.add(&b.att).expect("ADD b");
    assert!(
        listed(),
        "the isolate chain was not restored by the next ADD"
    );
    rt.check(&a.att).expect("CHECK a after the reinstall");
    rt.del(&a.att).expect("DEL a");
    rt.del(&b.att).expect("DEL b");
}

/// The network's table was deleted behind our back while its set element stayed, and
/// the subnet is widened: the reinstall must replace the element it finds (the stamp
/// names it), not trip over it. It used to fail once with 108, and a dropped subnet's
/// element stayed in the set for good.
#[test]
fn resize_after_the_table_was_deleted() {
    let net = TestNet::with_prefix(26);
    let (old_rt, new_rt) = resized(&net);
    let (a, b) = (Container::new(), Container::new());
    old_rt.add(&a.att).expect("ADD a in the /26");
    let (family, table) = net.masq_table();
    ip::must_run_in(&net.host, &["nft", "delete", "table", &family, &table]);
    new_rt.add(&b.att).expect("ADD b after the resize to /25");
    let base = net.subnet.base.to_string();
    assert_eq!(nets4(&net), json!([{"prefix": {"addr": base, "len": 25}}]));
    new_rt.check(&b.att).expect("CHECK b");
    old_rt.del(&a.att).expect("DEL a");
    new_rt.del(&b.att).expect("DEL b");
    assert_all_removed(&net);
}

/// Network A's stamp still names subnet X after its last pod there went (A lives on in
/// Y; steady-state DELs do not reinstall), and X is given to network B. B's install used
/// to find X's element there and add nothing, and A's removal then deleted it: B lost
/// its isolation, and its probe did not notice.
#[test]
fn a_subnet_given_to_another_network_stays_when_the_first_goes() {
    let net = TestNet::new();
    let (x, y, _) = halves(&net);
    let a_in_x = net.runtime(net.conflist("1.0.0", vec![plugin_with_ranges(&net, &[&x])]));
    let a_in_y = net.runtime(net.conflist("1.0.0", vec![plugin_with_ranges(&net, &[&y])]));
    let b_rt = sibling(&net, "b", &x, json!({"isolate": true}));
    let b_name = format!("{}-b", net.name);
    let (a1, a2, b) = (Container::new(), Container::new(), Container::new());
    a_in_x.add(&a1.att).expect("ADD a1 in X");
    a_in_y.add(&a2.att).expect("ADD a2 in Y");
    a_in_x.del(&a1.att).expect("DEL a1: A keeps a2 in Y");
    b_rt.add(&b.att).expect("ADD b in X, now B's");
    a_in_y.del(&a2.att).expect("A's last DEL");
    assert!(
        ip::nft_table_gone(&net.host, &net.masq_table(), TEARDOWN),
        "A's table survived its last DEL"
    );
    let x_addr = x.trim_end_matches("/24");
    assert_eq!(
        nets4_listed(&net),
        json!([{"elem": {"val": {"prefix": {"addr": x_addr, "len": 24}}, "comment": format!("vbridge:{b_name}")}}]),
        "B's element X is gone or not B's"
    );
    b_rt.check(&b.att).expect("CHECK b after A is gone");
    b_rt.del(&b.att).expect("DEL b");
}

/// GC of a network whose stamp is gone finds its elements by their comment: they used
/// to leak, and a later network's wider subnet then failed every ADD with 108.
#[test]
fn gc_without_a_stamp_removes_the_elements() {
    let net = TestNet::new();
    let (lower, _, wide) = halves(&net);
    let mut plugin = plugin_with_ranges(&net, &[&lower]);
    // The deferred teardown must not run before GC.
    plugin["firewallTeardownDelayMs"] = json!(30_000);
    // GC is CNI 1.1.0.
    let a_rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
    let a = Container::new();
    a_rt.add(&a.att).expect("ADD a");
    a_rt.del(&a.att).expect("DEL a");
    let stamp = net.network_state().join("firewall.json");
    std::fs::remove_file(&stamp).expect("remove the firewall stamp");
    a_rt.gc(&[]).expect("GC");
    assert_eq!(nets4(&net), json!([]), "A's element leaked");
    let c_rt = sibling(&net, "c", &wide, json!({}));
    let c = Container::new();
    c_rt.add(&c.att)
        .expect("ADD c in the /23 around A's old /24");
    c_rt.del(&c.att).expect("DEL c");
}

/// The installs and removals of all networks in one host netns are serialized from their
/// listing of the shared sets to their commit (a flock under /run/vbridge): a batch
/// planned on a listing another network's batch changed since would drop that network's
/// owner name or element. Here the test holds that lock: the first ADD of a network
/// waits for it, and completes once it is released.
#[test]
fn an_install_waits_for_the_shared_sets_lock() {
    use std::os::unix::fs::MetadataExt;
    let net = TestNet::new();
    let ino = std::fs::metadata(net.host.path())
        .expect("host netns")
        .ino();
    std::fs::create_dir_all("/run/vbridge").expect("lock dir");
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("/run/vbridge/shared-sets-{ino}.lock"))
        .expect("lock file");
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .unwrap_or_else(|(_, e)| panic!("flock: {e}"));
    let rt = net.runtime(net.vbridge_conflist("1.1.0"));
    let c = Container::new();
    std::thread::scope(|s| {
        let add = s.spawn(|| rt.add(&c.att));
        std::thread::sleep(std::time::Duration::from_millis(700));
        assert!(
            !add.is_finished(),
            "the first ADD installed while another held the shared sets"
        );
        assert!(
            !ip::nft_tables(&net.host).contains(&net.masq_table()),
            "the table appeared while the lock was held"
        );
        drop(held);
        add.join()
            .expect("ADD thread")
            .unwrap_or_else(|e| panic!("ADD after the release: {e}"));
    });
    assert!(
        ip::nft_tables(&net.host).contains(&net.masq_table()),
        "no masquerade table"
    );
    rt.del(&c.att).expect("DEL");
}
