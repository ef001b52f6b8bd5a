//! Traffic across the bridge and masquerade towards an "outside" namespace.

use integration::result::{gateway_of, ip_of};
use integration::TEARDOWN;
use integration::{ip, Container, TestNet};
use serde_json::json;

#[test]
fn containers_ping_each_other_and_gateway() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let (a, b) = (Container::new(), Container::new());
    let ra = rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    let rb = rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    assert_ne!(ip_of(&ra), ip_of(&rb));
    assert!(ip::ping(&a.ns, gateway_of(&ra)), "a → gateway");
    assert!(ip::ping(&b.ns, gateway_of(&rb)), "b → gateway");
    assert!(ip::ping(&a.ns, ip_of(&rb)), "a → b");
    assert!(ip::ping(&b.ns, ip_of(&ra)), "b → a");
    rt.del(&a.att).unwrap_or_else(|e| panic!("DEL a: {e}"));
    rt.del(&b.att).unwrap_or_else(|e| panic!("DEL b: {e}"));
}

#[test]
fn masquerade_hides_container_address() {
    let net = TestNet::new();
    let out = net.outside();
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert!(
        ip::nft_tables(&net.host).contains(&net.masq_table()),
        "no masquerade table"
    );
    let seen = out.source_seen(&c.ns, 7000);
    assert_eq!(
        seen,
        out.host_addr,
        "outside saw {seen}; container is {}",
        ip_of(&res)
    );
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert!(
        ip::nft_table_gone(&net.host, &net.masq_table(), TEARDOWN),
        "masquerade table survived the last DEL"
    );
}

#[test]
fn masquerade_table_lives_until_last_attachment() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let (a, b) = (Container::new(), Container::new());
    rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    rt.del(&a.att).unwrap_or_else(|e| panic!("DEL a: {e}"));
    assert!(
        ip::nft_tables(&net.host).contains(&net.masq_table()),
        "table gone while b is attached"
    );
    rt.del(&b.att).unwrap_or_else(|e| panic!("DEL b: {e}"));
    assert!(
        ip::nft_table_gone(&net.host, &net.masq_table(), TEARDOWN),
        "table survived the last DEL"
    );
}

/// The firewall is programmed once per network: a later ADD trusts the recorded state
/// once netlink shows its tables exist, and runs no `nft` (which costs milliseconds);
/// CHECK is what notices drift inside them. If ADD ever re-ran nft, the deleted chain
/// would reappear here. (A missing table does make ADD reinstall: see firewall_drift.)
#[test]
fn steady_state_add_runs_no_nft_and_check_catches_drift() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let (a, b) = (Container::new(), Container::new());
    rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    let (family, table) = net.masq_table();
    let chain = (family.clone(), table.clone(), "postrouting".to_string());
    ip::must_run_in(
        &net.host,
        &["nft", "delete", "chain", &family, &table, "postrouting"],
    );
    rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    assert!(
        !ip::nft_chains(&net.host).contains(&chain),
        "the second ADD ran nft"
    );
    let err = rt
        .check(&a.att)
        .expect_err("CHECK must notice the missing table");
    assert_eq!(err.code(), 111, "{err}");
    rt.del(&b.att).unwrap_or_else(|e| panic!("DEL b: {e}"));
    rt.del(&a.att).unwrap_or_else(|e| panic!("DEL a: {e}"));
}

/// A network that is empty only briefly (a pod restart) keeps its rules: the DEL that
/// empties it leaves the removal to a detached process after `firewallTeardownDelayMs`,
/// which an ADD in between makes a no-op. The rules do go once the network stays empty.
#[test]
fn briefly_empty_network_keeps_rules_then_they_go() {
    let net = TestNet::new();
    let mut plugin = net.vbridge_plugin();
    plugin["firewallTeardownDelayMs"] = serde_json::json!(1500);
    let rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
    let (a, b) = (Container::new(), Container::new());
    rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    rt.del(&a.att).unwrap_or_else(|e| panic!("DEL a: {e}"));
    assert!(
        ip::nft_tables(&net.host).contains(&net.masq_table()),
        "rules removed synchronously by the DEL"
    );
    rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    std::thread::sleep(std::time::Duration::from_millis(2000));
    rt.check(&b.att)
        .unwrap_or_else(|e| panic!("rules gone under a live attachment: {e}"));
    rt.del(&b.att).unwrap_or_else(|e| panic!("DEL b: {e}"));
    assert!(
        ip::nft_table_gone(&net.host, &net.masq_table(), TEARDOWN),
        "rules survived the network staying empty"
    );
}

/// The deferred teardown survives its reaper's PID being reused: the DEL that empties the
/// network again must start a new reaper, not trust the recorded PID's owner to be one.
#[test]
fn teardown_happens_though_the_recorded_reaper_pid_was_reused() {
    teardown_with_an_imposter_recorded(true);
}

/// ... and a reaper that holds the reaper lock but is not the recorded one (it stands down
/// at its deadline) does not count as the recorded one either.
#[test]
fn teardown_happens_though_another_reaper_holds_the_lock() {
    teardown_with_an_imposter_recorded(false);
}

/// Empties a network (its reaper starts), then rewrites the teardown record to name an
/// unrelated live process, which also makes the real reaper stand down at its deadline.
/// `after_reaper_exit`: the next emptying DEL comes after that, else while the real reaper
/// still sleeps holding the reaper lock.
fn teardown_with_an_imposter_recorded(after_reaper_exit: bool) {
    let net = TestNet::new();
    let mut plugin = net.vbridge_plugin();
    let delay_ms = if after_reaper_exit { 300 } else { 3000 };
    plugin["firewallTeardownDelayMs"] = json!(delay_ms);
    let rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
    let a = Container::new();
    rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    rt.del(&a.att).unwrap_or_else(|e| panic!("DEL a: {e}"));

    let mut imposter = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    let dir = net.network_state();
    let path = dir.join("teardown.json");
    let mut t: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("teardown.json")).expect("json");
    t["pid"] = json!(imposter.id());
    let tmp = dir.join("teardown.json.test");
    std::fs::write(&tmp, t.to_string()).expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    if after_reaper_exit {
        std::thread::sleep(std::time::Duration::from_millis(1000));
        assert!(
            ip::nft_tables(&net.host).contains(&net.masq_table()),
            "the staged reaper removed the rules anyway"
        );
    }

    let b = Container::new();
    rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    rt.del(&b.att).unwrap_or_else(|e| panic!("DEL b: {e}"));
    let within = TEARDOWN + std::time::Duration::from_millis(delay_ms);
    let gone = ip::nft_table_gone(&net.host, &net.masq_table(), within);
    let _killed = imposter.kill();
    let _reaped = imposter.wait();
    assert!(
        gone,
        "rules survived: the DEL took the imposter for a reaper"
    );
}

/// A pod that gets the address of one just deleted is reachable from the host at once:
/// the host's neighbour entry still names the old pod's MAC (reachable for up to 45 s),
/// so the new interface announces itself (gratuitous ARP on link up, `arp_notify`, as the
/// reference plugin sets it) instead of leaving the host to find out after ~5 s of probes.
#[test]
fn reused_address_is_reachable_from_the_host_at_once() {
    let net = TestNet::new();
    let mut plugin = net.vbridge_plugin();
    plugin["capabilities"] = json!({"ips": true});
    let rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
    let addr = net.subnet.host(20);
    let with_addr = |c: &Container| {
        c.att
            .clone()
            .with_capability("ips", json!([format!("{addr}/{}", net.subnet.prefix)]))
    };
    // Another pod keeps the bridge's carrier up: with its last port gone the bridge loses
    // carrier and the kernel flushes its neighbour entries anyway.
    let keeper = Container::new();
    rt.add(&keeper.att)
        .unwrap_or_else(|e| panic!("ADD keeper: {e}"));
    let a = Container::new();
    let ra = rt
        .add(&with_addr(&a))
        .unwrap_or_else(|e| panic!("ADD a: {e}"));
    assert_eq!(ip_of(&ra), addr);
    assert!(ip::ping(&net.host, addr), "host → a");
    rt.del(&with_addr(&a))
        .unwrap_or_else(|e| panic!("DEL a: {e}"));

    let b = Container::new();
    let rb = rt
        .add(&with_addr(&b))
        .unwrap_or_else(|e| panic!("ADD b: {e}"));
    assert_eq!(ip_of(&rb), addr);
    assert!(
        ip::ping_once(&net.host, addr),
        "host → b: the host still sends to a's MAC"
    );
    rt.del(&with_addr(&b))
        .unwrap_or_else(|e| panic!("DEL b: {e}"));
    rt.del(&keeper.att)
        .unwrap_or_else(|e| panic!("DEL keeper: {e}"));
}
