//! The reference `bridge` keys that KubeVirt-style configs use: `macspoofchk` proven with
//! traffic (a container that changes its MAC is cut off, one on a network without the
//! check is not), and `disableContainerInterface` (the container end stays down).

use integration::result::ip_of;
use integration::{ip, Container, TestNet};
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

/// Pings `to` from `from` after `from` took `mac` (both neighbour caches flushed, so the
/// first frame is an ARP request from the new MAC).
fn ping_with_mac(from: &Container, other: &Container, mac: &str, to: std::net::Ipv4Addr) -> bool {
    ip::must_run_in(&from.ns, &["ip", "link", "set", "eth0", "address", mac]);
    for c in [from, other] {
        ip::must_run_in(&c.ns, &["ip", "neigh", "flush", "all"]);
    }
    ip::ping_once(&from.ns, to)
}

fn spoof_checked(net: &TestNet, on: bool) -> integration::runtime::Runtime {
    let mut plugin = net.vbridge_plugin();
    plugin["macspoofchk"] = json!(on);
    net.runtime(net.conflist("1.1.0", vec![plugin]))
}

#[test]
fn macspoofchk_drops_frames_from_any_other_mac() {
    let net = TestNet::new();
    let rt = spoof_checked(&net, true);
    let (a, b) = (Container::new(), Container::new());
    let ra = rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    let rb = rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    let own_mac = ra["interfaces"][2]["mac"]
        .as_str()
        .expect("a's MAC")
        .to_string();
    let veth = host_veth(&ra);
    assert_eq!(port_data(&net, &veth)["locked"], json!(true), "port locked");
    assert!(
        static_macs(&net, &veth).contains(&own_mac),
        "static FDB entry for {own_mac} on {veth}"
    );
    assert!(ip::ping(&a.ns, ip_of(&rb)), "a → b with its own MAC");
    rt.check(&a.att).unwrap_or_else(|e| panic!("CHECK: {e}"));

    assert!(
        !ping_with_mac(&a, &b, SPOOFED, ip_of(&rb)),
        "a → b went through with a spoofed MAC"
    );
    assert!(
        !ip::ping_once(&a.ns, ip_of(&rb)),
        "a → b went through with a spoofed MAC (second try)"
    );
    // Back to its own MAC, a is reachable again: the drop was the check, not a broken port.
    assert!(ping_with_mac(&a, &b, &own_mac, ip_of(&rb)) || ip::ping(&a.ns, ip_of(&rb)));

    // CHECK notices a port that lost its lock.
    ip::must_run_in(
        &net.host,
        &["bridge", "link", "set", "dev", &veth, "locked", "off"],
    );
    let err = rt
        .check(&a.att)
        .expect_err("CHECK of an unlocked port must fail");
    assert_eq!(err.code(), 111, "{err}");
    assert!(err.to_string().contains("macspoofchk"), "{err}");

    for c in [&a, &b] {
        rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
    for c in [&a, &b] {
        net.assert_links_released(c);
    }
}

/// The control for the test above: the same spoof without `macspoofchk` gets through.
#[test]
fn without_macspoofchk_a_changed_mac_still_talks() {
    let net = TestNet::new();
    let rt = spoof_checked(&net, false);
    let (a, b) = (Container::new(), Container::new());
    rt.add(&a.att).unwrap_or_else(|e| panic!("ADD a: {e}"));
    let rb = rt.add(&b.att).unwrap_or_else(|e| panic!("ADD b: {e}"));
    assert!(
        ping_with_mac(&a, &b, SPOOFED, ip_of(&rb)) || ip::ping(&a.ns, ip_of(&rb)),
        "a → b with a changed MAC on an unchecked network"
    );
    for c in [&a, &b] {
        rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
}

fn layer2_down(net: &TestNet, with_ipam: bool) -> integration::runtime::Runtime {
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
    let held = std::path::Path::new(&net.ipam_dir())
        .join(&net.name)
        .join("attachments");
    assert!(
        std::fs::read_dir(&held).map_or(true, |mut d| d.next().is_none()),
        "an address was allocated: {}",
        held.display()
    );
    // DEL of the refused ADD still succeeds, as the spec wants.
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}
