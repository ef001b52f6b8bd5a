//! The reference `bridge` keys that KubeVirt-style configs use: `macspoofchk` proven with
//! traffic (a container that changes its MAC is cut off, one on a network without the
//! check is not), and `disableContainerInterface` (the container end stays down).

use std::net::Ipv4Addr;

use integration::result::{gateway_of, ip_of};
use integration::{frame, ip, Container, Runtime, TestNet};
use serde_json::{json, Value};

const SPOOFED: &str = "02:5b:00:00:00:99";

fn host_veth(res: &Value) -> String {
    res["interfaces"][1]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("no host veth in {res}"))
        .to_string()
}

/// `ip -d -j link show <veth>`'s bridge-port data.
fn port_data(net: &TestNet, veth: &str) -> Value {
    let v = ip::ip_json(&net.host, &["-d", "link", "show", "dev", veth]);
    v[0]["linkinfo"]["info_slave_data"].clone()
}

/// Static FDB entries (as `bridge fdb` shows them) on `veth`.
fn static_macs(net: &TestNet, veth: &str) -> Vec<String> {
    let out = ip::must_run_in(&net.host, &["bridge", "-j", "fdb", "show", "dev", veth]);
    let v = out.json();
    v.as_array()
        .expect("bridge -j fdb: an array")
        .iter()
        .filter(|e| e["state"] == "static")
        .filter_map(|e| e["mac"].as_str().map(str::to_string))
        .collect()
}

/// Whether `from` reaches `to` after `from` took `mac` (both neighbour caches flushed, so
/// the first frame is an ARP request from that MAC). The same tries for the pings that
/// must fail as for those that must not, so the control validates the negatives.
fn reaches_with_mac(from: &Container, other: &Container, mac: &str, to: Ipv4Addr) -> bool {
    set_mac(from, mac);
    for c in [from, other] {
        ip::must_run_in(&c.ns, &["ip", "neigh", "flush", "all"]);
    }
    ip::ping(&from.ns, to)
}

fn set_mac(c: &Container, mac: &str) {
    ip::must_run_in(&c.ns, &["ip", "link", "set", "eth0", "address", mac]);
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    let v: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex MAC byte"))
        .collect();
    v.try_into().expect("six MAC bytes")
}

fn spoof_checked(net: &TestNet, on: bool) -> Runtime {
    let mut plugin = net.vbridge_plugin();
    plugin["macspoofchk"] = json!(on);
    net.runtime(net.conflist("1.1.0", vec![plugin]))
}

fn mac_of(res: &Value) -> String {
    res["interfaces"][2]["mac"]
        .as_str()
        .unwrap_or_else(|| panic!("no container MAC in {res}"))
        .to_string()
}

#[test]
fn macspoofchk_drops_frames_from_any_other_mac() {
    let net = TestNet::new();
    let rt = spoof_checked(&net, true);
    let (a, b) = (Container::new(), Container::new());
    let ra = rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    let rb = rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    let own_mac = mac_of(&ra);
    let veth = host_veth(&ra);
    let port = port_data(&net, &veth);
    assert_eq!(port["locked"], json!(true), "port locked: {port}");
    assert_eq!(port["learning"], json!(false), "port learns: {port}");
    assert!(
        static_macs(&net, &veth).contains(&own_mac),
        "static FDB entry for {own_mac} on {veth}"
    );
    assert!(ip::ping(&a.ns, ip_of(&rb)), "a → b with its own MAC");
    rt.check(&a.att).unwrap_or_else(|e| panic!("CHECK: {e}"));

    // A link-local frame is never forwarded, but a learning port would learn its source
    // and so open the lock for it.
    frame::send(&a.ns, "eth0", &frame::link_local_from(mac_bytes(SPOOFED)))
        .expect("send a link-local frame");
    assert!(
        !reaches_with_mac(&a, &b, SPOOFED, ip_of(&rb)),
        "a → b went through with a spoofed MAC"
    );
    // Posing as b is refused the same way.
    assert!(
        !reaches_with_mac(&a, &b, &mac_of(&rb), ip_of(&rb)),
        "a → b went through with b's own MAC"
    );
    // Back to its own MAC, a talks again: the drops were the check, not a broken port.
    assert!(reaches_with_mac(&a, &b, &own_mac, ip_of(&rb)), "a → b");

    // CHECK notices a port that learns, lost its lock, or lost the container's entry.
    let check_fails = |why: &str| {
        let err = rt.check(&a.att).expect_err(why);
        assert_eq!(err.code(), 111, "{why}: {err}");
        assert!(err.to_string().contains("macspoofchk"), "{why}: {err}");
    };
    let bridge = |args: &[&str]| {
        let mut cmd = vec!["bridge"];
        cmd.extend_from_slice(args);
        ip::must_run_in(&net.host, &cmd);
    };
    bridge(&["link", "set", "dev", &veth, "learning", "on"]);
    check_fails("CHECK of a learning port");
    bridge(&[
        "link", "set", "dev", &veth, "learning", "off", "locked", "off",
    ]);
    check_fails("CHECK of an unlocked port");
    bridge(&["link", "set", "dev", &veth, "locked", "on"]);
    rt.check(&a.att)
        .unwrap_or_else(|e| panic!("CHECK after repair: {e}"));
    bridge(&["fdb", "del", &own_mac, "dev", &veth, "master"]);
    check_fails("CHECK without the FDB entry");

    for c in [&a, &b] {
        rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
    for c in [&a, &b] {
        net.assert_links_released(c);
    }
}

/// A container on another network of the same bridge, without the check, sends frames
/// from a spoof-checked container's MAC: the bridge must not move that MAC's entry to its
/// port, or the checked container would be cut off for good (its port cannot learn it back).
#[test]
fn macspoofchk_entry_is_not_stolen_by_an_unchecked_port() {
    let net = TestNet::new();
    let rt = spoof_checked(&net, true);
    let (a, b) = (Container::new(), Container::new());
    let ra = rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    let rb = rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    let plain = {
        let mut plugin = net.vbridge_plugin();
        plugin["ipam"]["subnet"] = json!("10.254.77.0/24");
        net.runtime(
            json!({"cniVersion": "1.1.0", "name": format!("{}-plain", net.name),
                           "plugins": [plugin]}),
        )
    };
    let x = Container::new();
    let rx = plain.add(&x.att).unwrap_or_else(|e| panic!("ADD x: {e}"));
    let x_mac = mac_of(&rx);
    set_mac(&x, &mac_of(&ra));
    ip::ping(&x.ns, gateway_of(&rx));
    frame::send(
        &x.ns,
        "eth0",
        &frame::link_local_from(mac_bytes(&mac_of(&ra))),
    )
    .expect("send a link-local frame");
    set_mac(&x, &x_mac);
    assert!(
        reaches_with_mac(&a, &b, &mac_of(&ra), ip_of(&rb)),
        "a was cut off after x used its MAC"
    );
    plain.del(&x.att).unwrap_or_else(|e| panic!("DEL x: {e}"));
    for c in [&a, &b] {
        rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
}

/// The control for the tests above: the same spoof without `macspoofchk` gets through.
#[test]
fn without_macspoofchk_a_changed_mac_still_talks() {
    let net = TestNet::new();
    let rt = spoof_checked(&net, false);
    let (a, b) = (Container::new(), Container::new());
    rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    let rb = rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    assert!(
        reaches_with_mac(&a, &b, SPOOFED, ip_of(&rb)),
        "a → b with a changed MAC on an unchecked network"
    );
    for c in [&a, &b] {
        rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
}

fn layer2_down(net: &TestNet, with_ipam: bool) -> Runtime {
    let mut plugin = net.vbridge_plugin();
    plugin["disableContainerInterface"] = json!(true);
    plugin["macspoofchk"] = json!(true);
    if !with_ipam {
        plugin
            .as_object_mut()
            .expect("plugin object")
            .remove("ipam");
    }
    net.runtime(net.conflist("1.1.0", vec![plugin]))
}

#[test]
fn disable_container_interface_leaves_the_container_end_down() {
    let net = TestNet::new();
    let rt = layer2_down(&net, false);
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_eq!(res["interfaces"].as_array().map(Vec::len), Some(3), "{res}");
    assert!(res["ips"].as_array().is_none_or(Vec::is_empty), "{res}");
    let eth0 = ip::ip_json(&c.ns, &["link", "show", "dev", "eth0"]);
    let flags: Vec<&str> = eth0[0]["flags"]
        .as_array()
        .expect("link flags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!flags.contains(&"UP"), "container end is up: {flags:?}");
    let veth = host_veth(&res);
    let port = ip::link(&net.host, &veth).expect("host veth");
    assert_eq!(port.master.as_deref(), Some(net.bridge.as_str()));
    assert_eq!(
        port_data(&net, &veth)["locked"],
        json!(true),
        "spoof check too"
    );
    rt.check(&c.att).unwrap_or_else(|e| panic!("CHECK: {e}"));
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    net.assert_links_released(&c);
}

#[test]
fn disable_container_interface_with_ipam_is_refused_before_anything_changes() {
    let net = TestNet::new();
    let rt = layer2_down(&net, true);
    let c = Container::new();
    let err = rt
        .add(&c.att)
        .expect_err("ADD with IPAM and a down interface");
    assert_eq!(err.code(), 7, "{err}");
    let msg = err.error().map(|e| e.msg).unwrap_or_default();
    assert!(
        msg.contains("disableContainerInterface") && msg.contains("ipam"),
        "{msg}"
    );
    assert!(ip::link(&c.ns, "eth0").is_none(), "container end created");
    assert!(ip::link(&net.host, &net.bridge).is_none(), "bridge created");
    let held = integration::ipam_ls::reservations(&net.ipam_dir(), &net.name);
    assert!(held.is_empty(), "an address was allocated: {held:?}");
    // STATUS says an ADD cannot succeed, with the same error.
    let status = rt.status().expect_err("STATUS of a config ADD refuses");
    assert_eq!(status.code(), 7, "{status}");
    // DEL of the refused ADD still succeeds, as the spec wants.
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}
