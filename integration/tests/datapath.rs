//! Traffic across the bridge and masquerade towards an "outside" namespace.

use std::net::SocketAddr;

use integration::result::{gateway_of, ip_of};
use integration::{ip, probe, Container, TestNet};

/// The fixture's `firewallTeardownDelayMs` plus slack for a loaded machine.
const TEARDOWN: std::time::Duration = std::time::Duration::from_secs(5);

fn masq_table(net: &TestNet) -> (String, String) {
    ("inet".to_string(), format!("vbridge-{}", net.name))
}

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
        ip::nft_tables(&net.host).contains(&masq_table(&net)),
        "no masquerade table"
    );
    let target = SocketAddr::from((out.addr, 7000));
    let listener = probe::Listener::spawn(&out.ns, target).expect("listen outside");
    probe::connect(&c.ns, target).expect("connect from container");
    let peer = listener.peer().expect("accept");
    assert_eq!(
        peer.ip(),
        out.host_addr,
        "outside saw {peer}; container is {}",
        ip_of(&res)
    );
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert!(
        ip::nft_table_gone(&net.host, &masq_table(&net), TEARDOWN),
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
        ip::nft_tables(&net.host).contains(&masq_table(&net)),
        "table gone while b is attached"
    );
    rt.del(&b.att).unwrap_or_else(|e| panic!("DEL b: {e}"));
    assert!(
        ip::nft_table_gone(&net.host, &masq_table(&net), TEARDOWN),
        "table survived the last DEL"
    );
}

/// The firewall is programmed once per network: a later ADD trusts the recorded state
/// and runs no `nft` (which costs milliseconds), and CHECK is what notices drift. If ADD
/// ever re-ran nft, the deleted table would reappear here.
#[test]
fn steady_state_add_runs_no_nft_and_check_catches_drift() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let (a, b) = (Container::new(), Container::new());
    rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    let (family, table) = masq_table(&net);
    ip::must_run_in(&net.host, &["nft", "delete", "table", &family, &table]);
    rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    assert!(
        !ip::nft_tables(&net.host).contains(&masq_table(&net)),
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
        ip::nft_tables(&net.host).contains(&masq_table(&net)),
        "rules removed synchronously by the DEL"
    );
    rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    std::thread::sleep(std::time::Duration::from_millis(2000));
    rt.check(&b.att)
        .unwrap_or_else(|e| panic!("rules gone under a live attachment: {e}"));
    rt.del(&b.att).unwrap_or_else(|e| panic!("DEL b: {e}"));
    assert!(
        ip::nft_table_gone(&net.host, &masq_table(&net), TEARDOWN),
        "rules survived the network staying empty"
    );
}
