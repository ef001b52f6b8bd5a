//! What ADD sets on the links: the container MAC from each of the three sources, the
//! bridge MAC pinned across attachments, the MTU on both veth ends, `forceAddress`.

use integration::result::gateway_of;
use integration::{ip, Container, Netns, TestNet};
use serde_json::{json, Value};
use std::net::Ipv4Addr;

fn container_mac(res: &Value) -> String {
    res["interfaces"][2]["mac"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn mac_from_runtime_config_args_and_cni_args() {
    let net = TestNet::new();
    let mut plugin = net.vbridge_plugin();
    plugin["capabilities"] = json!({"mac": true});
    let rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
    // (expected MAC, CNI_ARGS MAC=, runtimeConfig.mac): runtimeConfig wins.
    let cases = [
        ("02:aa:00:00:00:01", Some("02:aa:00:00:00:01"), None),
        ("02:aa:00:00:00:02", None, Some("02:aa:00:00:00:02")),
        (
            "02:aa:00:00:00:03",
            Some("02:aa:00:00:00:09"),
            Some("02:aa:00:00:00:03"),
        ),
        // The other forms Go's net.ParseMAC (so the reference) takes.
        ("02:aa:00:00:00:04", Some("02-AA-00-00-00-04"), None),
        ("02:aa:00:00:00:05", None, Some("02aa.0000.0005")),
    ];
    for (want, cni_args_mac, runtime_mac) in cases {
        let c = Container::new();
        let mut att = c.att.clone();
        if let Some(m) = cni_args_mac {
            att.cni_args = format!("IgnoreUnknown=1;MAC={m}");
        }
        if let Some(m) = runtime_mac {
            att.capability_args.insert("mac".into(), json!(m));
        }
        let res = rt.add(&att).unwrap_or_else(|e| panic!("ADD: {e}"));
        assert_eq!(container_mac(&res), want, "{res}");
        let live = ip::link(&c.ns, "eth0")
            .and_then(|l| l.address)
            .unwrap_or_default();
        assert_eq!(live, want, "MAC in the container");
        rt.del(&att).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
}

/// A MAC the kernel would refuse, or no MAC at all, is a config error (7) naming the key
/// it came from — found before anything is allocated or created.
#[test]
fn bad_mac_is_refused_before_anything_changes() {
    let net = TestNet::new();
    for (key, mac) in [
        ("runtimeConfig.mac", "03:00:00:00:00:01"),
        ("args.cni.mac", "00:00:00:00:00:00"),
        ("CNI_ARGS MAC", "02:aa:bb:cc:dd"),
    ] {
        let c = Container::new();
        let mut conf = net.flat_config("1.0.0");
        let mut att = c.att.clone();
        match key {
            "runtimeConfig.mac" => conf["runtimeConfig"] = json!({ "mac": mac }),
            "args.cni.mac" => conf["args"] = json!({"cni": { "mac": mac }}),
            _ => att.cni_args = format!("IgnoreUnknown=1;MAC={mac}"),
        }
        let err = net.vbridge("ADD", &att, &conf).expect_error(7);
        assert!(err.msg.contains(key), "{key}: {}", err.msg);
        assert!(ip::link(&c.ns, "eth0").is_none(), "{key}: eth0 created");
        let held = integration::ipam_ls::reservations(&net.ipam_dir(), &net.name);
        assert!(held.is_empty(), "{key}: allocated {held:?}");
    }
}

#[test]
fn bridge_mac_is_pinned_and_mtu_is_applied() {
    bridge_mac_is_pinned(Made::ByVbridge);
}

/// A bridge someone else made (its MAC random, not set) would take its lowest port's MAC
/// as ports come and go; in gateway mode it is pinned on adoption, and the result names
/// the MAC it has with the port on it.
#[test]
fn adopted_bridge_mac_is_pinned() {
    bridge_mac_is_pinned(Made::Beforehand);
}

/// An unpinned bridge whose ports all left has no MAC at all (00:00:00:00:00:00): it gets
/// one, pinned, and the gateway on it answers.
#[test]
fn emptied_bridge_gets_a_pinned_mac() {
    bridge_mac_is_pinned(Made::AndEmptied);
}

enum Made {
    ByVbridge,
    Beforehand,
    AndEmptied,
}

fn bridge_mac_is_pinned(made: Made) {
    let net = TestNet::new();
    let run = |cmd: &[&str]| ip::must_run_in(&net.host, cmd);
    if !matches!(made, Made::ByVbridge) {
        run(&["ip", "link", "add", &net.bridge, "type", "bridge"]);
        run(&["ip", "link", "set", &net.bridge, "up"]);
    }
    if matches!(made, Made::AndEmptied) {
        run(&[
            "ip", "link", "add", "vbtport", "type", "veth", "peer", "name", "vbtpeer",
        ]);
        run(&["ip", "link", "set", "vbtport", "master", &net.bridge, "up"]);
        run(&["ip", "link", "set", "vbtpeer", "up"]);
        run(&["ip", "link", "del", "vbtport"]);
        let mac = ip::link(&net.host, &net.bridge).and_then(|l| l.address);
        assert_eq!(mac.as_deref(), Some("00:00:00:00:00:00"), "emptied bridge");
    }
    let mut plugin = net.vbridge_plugin();
    plugin["mtu"] = json!(1400);
    let rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
    let cs: Vec<Container> = (0..4).map(|_| Container::new()).collect();
    // The first two at once: racing first ADDs agree on the MAC they pin.
    let add = |c: &Container| rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let (first, second) = std::thread::scope(|s| {
        let a = s.spawn(|| add(&cs[0]));
        let b = add(&cs[1]);
        (a.join().expect("first ADD"), b)
    });
    let bridge_mac = first["interfaces"][0]["mac"].clone();
    assert_eq!(second["interfaces"][0]["mac"], bridge_mac, "racing ADDs");
    // Pinned once: later ADDs leave the bridge's neighbour entries alone (pinning again
    // would flush them).
    let neighbour = net.subnet.host(200).to_string();
    run(&[
        "ip",
        "neigh",
        "replace",
        &neighbour,
        "lladdr",
        "02:00:00:00:00:77",
        "dev",
        &net.bridge,
        "nud",
        "stale",
    ]);
    for c in &cs[2..] {
        let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
        assert_eq!(
            res["interfaces"][0]["mac"], bridge_mac,
            "bridge MAC changed"
        );
    }
    let kept = run(&["ip", "neigh", "show", &neighbour, "dev", &net.bridge]);
    assert!(
        kept.stdout.contains("02:00:00:00:00:77"),
        "neighbours flushed"
    );
    let live = ip::link(&net.host, &net.bridge).and_then(|l| l.address);
    assert_eq!(live.as_deref(), bridge_mac.as_str(), "bridge MAC changed");
    let veth = first["interfaces"][1]["name"].as_str().expect("host veth");
    assert_eq!(ip::link(&net.host, veth).and_then(|l| l.mtu), Some(1400));
    assert_eq!(ip::link(&cs[0].ns, "eth0").and_then(|l| l.mtu), Some(1400));
    for c in &cs {
        rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
    // Emptied and used again: the same address, and it answers.
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_eq!(
        res["interfaces"][0]["mac"], bridge_mac,
        "bridge MAC changed"
    );
    assert!(ip::ping(&c.ns, gateway_of(&res)), "container → gateway");
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

/// The world's bridge, made beforehand (to be adopted) with the kernel's default for a
/// host link: taking router advertisements.
fn bridge_taking_router_advertisements(net: &TestNet) {
    ip::must_run_in(
        &net.host,
        &["ip", "link", "add", &net.bridge, "type", "bridge"],
    );
    ip::sysctl(
        &net.host,
        &format!("net.ipv6.conf.{}.accept_ra", net.bridge),
        "1",
    );
}

/// A pod that sends an IPv6 router advertisement must not become the host's default router
/// (CVE-2020-10749): the bridge — created or adopted — takes none. An adopted bridge also
/// gets `promiscMode`, as the reference gives it.
#[test]
fn bridge_takes_no_router_advertisements_created_or_adopted() {
    let accept_ra = |net: &TestNet| {
        ip::sysctl_value(
            &net.host,
            &format!("net.ipv6.conf.{}.accept_ra", net.bridge),
        )
    };
    let net = TestNet::new();
    let rt = net.runtime(net.conflist("1.1.0", vec![net.vbridge_plugin()]));
    let c = Container::new();
    rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_eq!(accept_ra(&net), "0", "created bridge");
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));

    let net = TestNet::new();
    bridge_taking_router_advertisements(&net);
    let mut plugin = net.vbridge_plugin();
    plugin["promiscMode"] = json!(true);
    let rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
    let c = Container::new();
    rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_eq!(accept_ra(&net), "0", "adopted bridge");
    let flags = ip::link(&net.host, &net.bridge)
        .map(|l| l.flags)
        .unwrap_or_default();
    assert!(flags.iter().any(|f| f == "PROMISC"), "{flags:?}");
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));

    // An adopted bridge of an L2 network (no gateway of ours on it) may be the host's own
    // uplink, configured by router advertisements: left as the host set it.
    let net = TestNet::new();
    bridge_taking_router_advertisements(&net);
    let l2 = json!({"type": "vbridge", "bridge": net.bridge, "stateDir": net.state_dir()});
    let rt = net.runtime(net.conflist("1.1.0", vec![l2]));
    let c = Container::new();
    rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_eq!(accept_ra(&net), "1", "adopted L2 bridge");
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

#[test]
fn host_ends_get_no_ipv6_address_the_container_end_does() {
    let net = TestNet::new();
    let rt = net.runtime(net.conflist("1.1.0", vec![net.vbridge_plugin()]));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let host_veth = res["interfaces"][1]["name"].as_str().unwrap_or_default();
    // The link-local address appears once the veth has carrier (right after ADD);
    // DAD only changes its flags later.
    let inet6 = |ns, dev| ip::addr_infos(ns, &["-6", "addr", "show", "dev", dev]);
    assert!(
        !inet6(&c.ns, "eth0").is_empty(),
        "the container keeps its IPv6 link-local address"
    );
    assert_eq!(
        inet6(&net.host, host_veth),
        Vec::<Value>::new(),
        "a bridge port needs no address: no link-local, no DAD, no router solicitations"
    );
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

/// The kernel's default queue count for a new link: one per possible CPU.
fn possible_cpus() -> u32 {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible").expect("cpu/possible");
    let num = |n: &str| n.parse::<u32>().expect("cpu/possible holds CPU numbers");
    s.trim()
        .split(',')
        .map(|r| r.split_once('-').map_or(1, |(a, b)| num(b) - num(a) + 1))
        .sum()
}

#[test]
fn veth_ends_get_one_queue_unless_configured() {
    let net = TestNet::new();
    // Unset: ours (1). 0: the kernel's (one per possible CPU). Any other: that many.
    for (queues, want) in [(None, 1), (Some(0), possible_cpus()), (Some(3), 3)] {
        let mut plugin = net.vbridge_plugin();
        if let Some(q) = queues {
            plugin["vethQueues"] = json!(q);
        }
        let rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
        let c = Container::new();
        let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
        let host_veth = res["interfaces"][1]["name"].as_str().expect("host veth");
        let want = (Some(want), Some(want));
        let host = ip::link(&net.host, host_veth).map(|l| l.queues());
        let ctr = ip::link(&c.ns, "eth0").map(|l| l.queues());
        assert_eq!(host, Some(want), "host end, vethQueues {queues:?}");
        assert_eq!(ctr, Some(want), "container end, vethQueues {queues:?}");
        rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
}

/// A bridge that still carries the gateway of a network's previous subnet: vbridge adds
/// the new gateway next to it, and with `forceAddress` (as the reference) replaces it.
#[test]
fn force_address_replaces_a_stale_gateway_on_the_bridge() {
    let net = TestNet::new();
    let stale = (Ipv4Addr::new(10, 254, 9, 1), 24);
    net.bridge_with_address("10.254.9.1/24");
    let gateway = |res: &Value| (gateway_of(res), net.subnet.prefix);

    let rt = net.runtime(net.vbridge_conflist("1.1.0"));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let addrs = ip::addrs(&net.host, &net.bridge);
    assert!(
        addrs.contains(&stale) && addrs.contains(&gateway(&res)),
        "without forceAddress both stay: {addrs:?}"
    );
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));

    let mut plugin = net.vbridge_plugin();
    plugin["forceAddress"] = json!(true);
    let rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_eq!(
        ip::addrs(&net.host, &net.bridge),
        [gateway(&res)],
        "forceAddress leaves only the gateway"
    );
    assert!(ip::ping(&c.ns, gateway_of(&res)), "container → gateway");
    // A second ADD finds its own gateway in place and removes nothing.
    let d = Container::new();
    rt.add(&d.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_eq!(ip::addrs(&net.host, &net.bridge), [gateway(&res)]);
    for x in [&c, &d] {
        rt.del(&x.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
}

/// A subnet that changed size keeps its gateway address but not its old prefix: with
/// `forceAddress` the gateway with the stale prefix goes (its connected route with it).
#[test]
fn force_address_replaces_the_gateway_with_a_stale_prefix() {
    let net = TestNet::new();
    let gw = net.subnet.host(1);
    net.bridge_with_address(&format!("{gw}/16"));
    let mut plugin = net.vbridge_plugin();
    plugin["forceAddress"] = json!(true);
    let rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
    let c = Container::new();
    rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_eq!(
        ip::addrs(&net.host, &net.bridge),
        [(gw, net.subnet.prefix)],
        "only the gateway with the network's prefix"
    );
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

/// Two IPv4 range sets give a container two addresses and the bridge two gateways; with
/// `forceAddress` neither gateway may push the other off the bridge.
#[test]
fn force_address_keeps_the_networks_other_gateway() {
    let net = TestNet::new();
    let mut plugin = net.vbridge_plugin();
    plugin["forceAddress"] = json!(true);
    plugin["ipam"] = json!({
        "type": "vbridge-ipam", "dataDir": net.ipam_dir(),
        "ranges": [[{"subnet": net.subnet.to_string()}], [{"subnet": "10.254.10.0/24"}]],
    });
    let rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
    let c = Container::new();
    rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let second = (Ipv4Addr::new(10, 254, 10, 1), 24);
    for _ in 0..2 {
        let addrs = ip::addrs(&net.host, &net.bridge);
        assert!(
            addrs.contains(&(net.subnet.host(1), net.subnet.prefix)) && addrs.contains(&second),
            "both gateways on the bridge: {addrs:?}"
        );
        assert!(ip::ping(&c.ns, second.0), "container → second gateway");
        // Another ADD of the network changes nothing.
        let d = Container::new();
        rt.add(&d.att).unwrap_or_else(|e| panic!("ADD: {e}"));
        rt.del(&d.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    }
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

/// A container interface named like the bridge (Multus's `net1` on a bridge called
/// `net1`): CHECK compares the container end's MAC with the container interface's entry
/// of prevResult, not the bridge's.
#[test]
fn check_with_container_interface_named_like_the_bridge() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let mut c = Container::new();
    c.att.ifname = net.bridge.clone();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_eq!(res["interfaces"][0]["name"], res["interfaces"][2]["name"]);
    rt.check(&c.att).unwrap_or_else(|e| panic!("CHECK: {e}"));
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

/// CHECK notices what stops traffic although every address and route is still listed:
/// the container interface or the host veth down, the gateway gone from the bridge.
#[test]
fn check_fails_on_down_links_and_a_missing_gateway() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let veth = res["interfaces"][1]["name"]
        .as_str()
        .expect("host veth")
        .to_string();
    let gw = format!("{}/{}", gateway_of(&res), net.subnet.prefix);
    fn link<'a>(dev: &'a str, state: &'a str) -> Vec<&'a str> {
        vec!["ip", "link", "set", dev, state]
    }
    let addr = |op: &'static str| vec!["ip", "addr", op, gw.as_str(), "dev", net.bridge.as_str()];
    let breakages: Vec<(&Netns, Vec<&str>, Vec<&str>, &str)> = vec![
        (&net.host, link(&veth, "down"), link(&veth, "up"), "is down"),
        (&net.host, addr("del"), addr("add"), "gateway"),
    ];
    for (ns, cmd, undo, says) in breakages {
        ip::must_run_in(ns, &cmd);
        let err = rt
            .check(&c.att)
            .expect_err(&format!("CHECK passed after {cmd:?}"));
        assert!(err.to_string().contains(says), "{cmd:?}: {err}");
        ip::must_run_in(ns, &undo);
        rt.check(&c.att)
            .unwrap_or_else(|e| panic!("CHECK after {undo:?}: {e}"));
    }
    // Last: taking the container's link down also drops its routes for good.
    ip::must_run_in(&c.ns, &link("eth0", "down"));
    let err = rt.check(&c.att).expect_err("CHECK passed with eth0 down");
    assert!(err.to_string().contains("eth0 is down"), "{err}");
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}
