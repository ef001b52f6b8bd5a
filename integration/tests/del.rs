//! DEL is idempotent and best-effort: repeated, after the netns is gone, without a netns.

use integration::{ip, Container, TestNet};
use serde_json::json;
use std::time::{Duration, Instant};

/// Nothing on the bridge at once, and no veth left in the host netns shortly after: DEL
/// takes the port off the bridge itself and leaves the (slow) deletion to a detached
/// process.
fn assert_no_host_veth(net: &TestNet) {
    assert!(ip::bridge_ports(&net.host, &net.bridge).is_empty());
    let veths = || -> Vec<_> {
        ip::links(&net.host)
            .into_iter()
            .filter(|l| l.kind() == Some("veth"))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !veths().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(veths().is_empty(), "veths left in host: {:?}", veths());
}

/// The container end goes too, while the container netns still exists (a runtime may
/// keep it, e.g. when a network is disconnected from a running container).
#[test]
fn del_removes_the_container_interface_from_a_live_netns() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.1.0"));
    let c = Container::new();
    rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert_no_host_veth(&net);
    assert!(
        ip::link(&c.ns, "eth0").is_none(),
        "eth0 left in the container"
    );
}

#[test]
fn del_twice_succeeds() {
    let net = TestNet::with_prefix(30);
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL 1: {e}"));
    rt.del(&c.att)
        .unwrap_or_else(|e| panic!("DEL 2 (no prevResult): {e}"));
    let mut conf = net.flat_config("1.0.0");
    conf["prevResult"] = json!(res);
    let out = net.vbridge("DEL", &c.att, &conf);
    assert!(
        out.success() && out.stdout.trim().is_empty(),
        "DEL 3 (stale prevResult): {out}"
    );
    assert_no_host_veth(&net);
    assert!(net.pool_has_free_address(), "address not released");
}

#[test]
fn del_after_netns_deleted_cleans_up() {
    let net = TestNet::with_prefix(30);
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let c = Container::new();
    rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let att = c.att.clone();
    c.ns.delete();
    rt.del(&att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert_no_host_veth(&net);
    assert!(net.pool_has_free_address(), "address not released");
}

#[test]
fn del_with_empty_netns_succeeds() {
    let net = TestNet::with_prefix(30);
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let c = Container::new();
    rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let mut att = c.att.clone();
    att.netns = String::new();
    rt.del(&att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert!(net.pool_has_free_address(), "address not released");
}

/// Reconnecting right after a DEL (same container, same ifname, same netns) works even
/// when the DEL's background deletion of the veth has not run yet: the pair is retired
/// (down, off the bridge) but its container end still exists. That state is made by
/// hand here (the retire half of a DEL), so the test does not depend on winning a race.
#[test]
fn add_over_a_retired_pair_of_the_same_attachment() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.1.0"));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let host_veth = res["interfaces"][1]["name"]
        .as_str()
        .expect("host veth")
        .to_string();
    ip::must_run_in(&net.host, &["ip", "link", "set", &host_veth, "nomaster"]);
    ip::must_run_in(&net.host, &["ip", "link", "set", &host_veth, "down"]);
    let res = rt
        .add(&c.att)
        .unwrap_or_else(|e| panic!("ADD over a retired pair: {e}"));
    rt.check(&c.att).unwrap_or_else(|e| panic!("CHECK: {e}"));
    assert!(
        ip::ping(&c.ns, integration::result::gateway_of(&res)),
        "no ping after the re-ADD"
    );
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert_no_host_veth(&net);
}

/// The last DEL of a network schedules the removal of the network's nftables state; when
/// that fails (here: its record cannot be written), the DEL still succeeds — the rules are
/// the network's, not the attachment's — and GC removes them.
#[test]
fn del_succeeds_when_the_firewall_teardown_cannot_be_scheduled() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.1.0"));
    let c = Container::new();
    rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let record = net.network_state().join("teardown.json");
    std::fs::create_dir_all(record.join("blocker")).expect("block the teardown record");
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert_no_host_veth(&net);
    let table = net.masq_table();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        ip::nft_tables(&net.host).contains(&table),
        "the teardown was not blocked: the test proves nothing"
    );
    std::fs::remove_dir_all(&record).expect("unblock");
    let mut gc = net.flat_config("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    let out = net.vbridge("GC", &c.att, &gc);
    assert!(out.success(), "GC: {out}");
    assert!(
        !ip::nft_tables(&net.host).contains(&table),
        "GC left the masquerade table"
    );
}

/// After a reboot a runtime may never DEL the pods that died with it (Podman does not):
/// their state records, of a previous boot, must not keep the network alive. Here one
/// record is made a previous boot's; the DEL of the other attachment empties the network,
/// so its nftables state goes (teardown delay 0) and the stale record is swept.
#[test]
fn records_of_a_previous_boot_do_not_keep_the_network() {
    let net = TestNet::new();
    let mut list = net.vbridge_conflist("1.1.0");
    list["plugins"][0]["firewallTeardownDelayMs"] = json!(0);
    let rt = net.runtime(list);
    let (a, b) = (Container::new(), Container::new());
    rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    let record = net
        .network_state()
        .join("attachments")
        .join(format!("{}:{}", a.att.container_id, a.att.ifname));
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).expect("a's record")).expect("JSON");
    rec["boot"] = json!("00000000-0000-0000-0000-000000000000");
    std::fs::write(&record, rec.to_string()).expect("rewrite");
    rt.del(&b.att).unwrap_or_else(|e| panic!("DEL b: {e}"));
    let table = net.masq_table();
    assert!(
        !ip::nft_tables(&net.host).contains(&table),
        "a previous boot's record kept the masquerade table"
    );
    assert!(!record.exists(), "the stale record was not swept");
}
