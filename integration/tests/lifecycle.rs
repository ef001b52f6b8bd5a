//! ADD → CHECK → DEL for every result version, plus GC and STATUS (1.1.0).

use integration::result::{cidr_of, gateway_of, has_route};
use integration::runtime::version_at_least;
use integration::{ip, paths, Container, TestNet};
use serde_json::Value;

/// Asserts the vbridge result layout: [bridge, host veth, container iface].
fn assert_result_shape(net: &TestNet, c: &Container, res: &Value, version: &str) {
    assert_eq!(res["cniVersion"], version, "{res}");
    let ifaces = res["interfaces"]
        .as_array()
        .unwrap_or_else(|| panic!("no interfaces: {res}"));
    assert_eq!(ifaces.len(), 3, "{res}");
    assert_eq!(ifaces[0]["name"], net.bridge.as_str());
    assert!(
        ifaces[1]["sandbox"].as_str().unwrap_or("").is_empty(),
        "host veth has a sandbox: {res}"
    );
    assert_eq!(ifaces[2]["name"], "eth0");
    assert_eq!(ifaces[2]["sandbox"], c.ns.path_str().as_str());
    let ip0 = &res["ips"][0];
    assert_eq!(ip0["interface"], 2, "{res}");
    let expect_version = !version_at_least(version, "1.0.0");
    assert_eq!(
        ip0.get("version").is_some(),
        expect_version,
        "ips[].version for {version}: {res}"
    );
    if expect_version {
        assert_eq!(ip0["version"], "4");
    }
    assert!(has_route(res, "0.0.0.0/0"), "no default route: {res}");
}

/// Asserts the kernel state matches the result.
fn assert_plumbed(net: &TestNet, c: &Container, res: &Value) {
    let (addr, prefix) = cidr_of(res);
    let gw = gateway_of(res);
    assert!(net.subnet.contains(addr), "{addr} outside {}", net.subnet);
    assert!(
        ip::addrs(&c.ns, "eth0").contains(&(addr, prefix)),
        "eth0 lacks {addr}/{prefix}"
    );
    assert!(
        ip::addrs(&net.host, &net.bridge)
            .iter()
            .any(|(a, _)| *a == gw),
        "bridge lacks gateway {gw}"
    );
    let host_veth = res["interfaces"][1]["name"].as_str().unwrap_or_default();
    let port = ip::link(&net.host, host_veth).unwrap_or_else(|| panic!("no host veth {host_veth}"));
    assert_eq!(port.master.as_deref(), Some(net.bridge.as_str()));
    let default = ip::routes(&c.ns).into_iter().find(|r| r.dst == "default");
    assert_eq!(default.and_then(|r| r.gateway), Some(gw.to_string()));
}

fn lifecycle(version: &str) {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist(version));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert_result_shape(&net, &c, &res, version);
    assert_plumbed(&net, &c, &res);
    if version_at_least(version, "0.4.0") {
        let outs = rt.check(&c.att).unwrap_or_else(|e| panic!("CHECK: {e}"));
        assert!(
            outs.iter().all(|o| o.stdout.trim().is_empty()),
            "CHECK printed: {outs:?}"
        );
    }
    let outs = rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert!(
        outs.iter().all(|o| o.stdout.trim().is_empty()),
        "DEL printed: {outs:?}"
    );
    net.assert_links_released(&c);
}

#[test]
fn add_check_del_0_3_1() {
    lifecycle("0.3.1");
}

#[test]
fn add_check_del_0_4_0() {
    lifecycle("0.4.0");
}

#[test]
fn add_check_del_1_0_0() {
    lifecycle("1.0.0");
}

#[test]
fn add_check_del_1_1_0() {
    lifecycle("1.1.0");
}

#[test]
fn status_succeeds() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.1.0"));
    rt.status().unwrap_or_else(|e| panic!("STATUS: {e}"));
}

/// GC keeps an attachment listed as valid: it still works and still holds its address.
#[test]
fn gc_keeps_listed_attachment() {
    let net = TestNet::with_prefix(30);
    let rt = net.runtime(net.vbridge_conflist("1.1.0"));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    // What a writer killed mid-write leaves; no ADD or DEL scans for it, GC sweeps it.
    let stray = std::path::Path::new(&net.state_dir())
        .join(&net.name)
        .join("tmp/stray");
    std::fs::write(&stray, b"{").unwrap_or_else(|e| panic!("{}: {e}", stray.display()));
    rt.gc(&[(c.id(), "eth0")])
        .unwrap_or_else(|e| panic!("GC: {e}"));
    assert!(!stray.exists(), "GC swept the state's temp files");
    assert!(
        ip::ping(&c.ns, gateway_of(&res)),
        "listed attachment broken by GC"
    );
    assert!(
        !net.pool_has_free_address(),
        "GC released a listed attachment's address"
    );
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

/// GC releases the reservation of an attachment the runtime forgot (no DEL ever came).
#[test]
fn gc_releases_unlisted_reservation() {
    let net = TestNet::with_prefix(30);
    let rt = net.runtime(net.vbridge_conflist("1.1.0"));
    let c = Container::new();
    let conf = net.flat_config("1.1.0").to_string();
    let add = net.call(&paths::vbridge(), "ADD", &c.att, conf.as_bytes());
    assert!(add.success(), "raw ADD: {add}");
    c.ns.delete();
    assert!(
        !net.pool_has_free_address(),
        "pool should be held by the leaked attachment"
    );
    rt.gc(&[]).unwrap_or_else(|e| panic!("GC: {e}"));
    assert!(
        net.pool_has_free_address(),
        "GC did not release the unlisted reservation"
    );
}

/// GC keeps going when the network's state cannot be locked: the IPAM, with its own store,
/// still releases what the runtime no longer lists, and the error is reported.
#[test]
fn gc_releases_reservations_even_when_the_state_is_unusable() {
    let net = TestNet::with_prefix(30);
    let c = Container::new();
    let conf = net.flat_config("1.1.0");
    let add = net.call(
        &paths::vbridge(),
        "ADD",
        &c.att,
        conf.to_string().as_bytes(),
    );
    assert!(add.success(), "raw ADD: {add}");
    assert!(!net.pool_has_free_address(), "the pool is held");
    // Its state dir would have to be created under a regular file.
    let blocker = std::path::Path::new(&net.state_dir()).join("not-a-dir");
    std::fs::write(&blocker, b"").expect("blocker file");
    let mut gc = conf.clone();
    gc["stateDir"] = serde_json::json!(blocker.join("state"));
    gc["cni.dev/valid-attachments"] = serde_json::json!([]);
    let out = net.vbridge("GC", &integration::runtime::no_attachment(), &gc);
    assert_eq!(out.cni_error().map(|e| e.code), Some(5), "GC: {out}");
    assert!(
        net.pool_has_free_address(),
        "GC did not release the reservation: {out}"
    );
}

/// A plugin given a `prevResult` on ADD passes it on: vbridge appends its own interfaces
/// and addresses and shifts their interface indexes past the previous ones.
#[test]
fn add_passes_a_prev_result_on() {
    let net = TestNet::new();
    let c = Container::new();
    let mut conf = net.flat_config("1.1.0");
    conf["prevResult"] = serde_json::json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "tap0", "mac": "02:00:00:00:00:01"}],
        "ips": [{"address": "192.0.2.9/24", "interface": 0}]
    });
    let out = net.vbridge("ADD", &c.att, &conf);
    assert!(out.success(), "{out}");
    let res: Value = serde_json::from_str(&out.stdout).expect("result JSON");
    assert_eq!(res["interfaces"][0]["name"], "tap0", "{res}");
    assert_eq!(res["interfaces"].as_array().map(Vec::len), Some(4), "{res}");
    assert_eq!(res["ips"][0]["address"], "192.0.2.9/24", "{res}");
    assert_eq!(res["ips"][1]["interface"], 3, "{res}");
    assert_eq!(res["interfaces"][3]["name"], "eth0", "{res}");
    let del = net.vbridge("DEL", &c.att, &conf);
    assert!(del.success(), "{del}");
}

/// vbridge chained after a plugin that made another interface with its own route: CHECK
/// of the chain's result finds that route (through the other interface) and vbridge's.
/// A route to the network's own subnet via its gateway is the kernel's connected route:
/// ADD keeps it and CHECK accepts it.
#[test]
fn check_of_a_chained_result_and_of_an_own_subnet_route() {
    let net = TestNet::new();
    let c = Container::new();
    for cmd in [
        &[
            "ip", "link", "add", "net9", "type", "veth", "peer", "name", "net9p",
        ][..],
        &["ip", "link", "set", "net9", "up"],
        &["ip", "link", "set", "net9p", "up"],
        &["ip", "addr", "add", "192.0.2.9/24", "dev", "net9"],
        &[
            "ip",
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            "192.0.2.1",
            "dev",
            "net9",
        ],
    ] {
        ip::must_run_in(&c.ns, cmd);
    }
    let mut conf = net.flat_config("1.1.0");
    conf["ipam"]["routes"] = serde_json::json!([
        {"dst": net.subnet.to_string(), "gw": net.subnet.host(1).to_string()}
    ]);
    conf["prevResult"] = serde_json::json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "net9", "sandbox": c.att.netns}],
        "ips": [{"address": "192.0.2.9/24", "interface": 0}],
        "routes": [{"dst": "198.51.100.0/24", "gw": "192.0.2.1"}]
    });
    let out = net.vbridge("ADD", &c.att, &conf);
    assert!(out.success(), "{out}");
    let mut check = conf.clone();
    check["prevResult"] = serde_json::from_str(&out.stdout).expect("result JSON");
    let out = net.vbridge("CHECK", &c.att, &check);
    assert!(out.success(), "CHECK of the chain's result: {out}");
    ip::must_run_in(&c.ns, &["ip", "route", "del", "198.51.100.0/24"]);
    let out = net.vbridge("CHECK", &c.att, &check);
    assert_eq!(out.cni_error().map(|e| e.code), Some(111), "{out}");
    let del = net.vbridge("DEL", &c.att, &check);
    assert!(del.success(), "{del}");
}

/// A netns with an `unreachable` default route (a runtime's placeholder): vbridge's
/// default route goes beside it and takes over, as with the reference.
#[test]
fn default_route_goes_beside_an_unreachable_one() {
    let net = TestNet::new();
    let c = Container::new();
    ip::must_run_in(&c.ns, &["ip", "route", "add", "unreachable", "default"]);
    let rt = net.runtime(net.vbridge_conflist("1.1.0"));
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let via = ip::ip_json(&c.ns, &["route", "get", "192.0.2.1"]);
    assert_eq!(
        via[0]["gateway"].as_str(),
        Some(integration::result::gateway_of(&res).to_string().as_str()),
        "{via}"
    );
    rt.check(&c.att).unwrap_or_else(|e| panic!("CHECK: {e}"));
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

/// CNI 1.1 route options from the IPAM config reach the result and the container, and
/// CHECK holds the container to them.
#[test]
fn route_options_are_installed_and_checked() {
    let net = TestNet::new();
    let mut plugin = net.vbridge_plugin();
    plugin["ipam"]["routes"] = serde_json::json!([
        {"dst": "192.0.2.0/24", "priority": 300, "mtu": 1300, "advmss": 1200},
        {"dst": "198.51.100.0/24", "table": 100},
        // 0 means "the default" to the kernel: main table, default metric.
        {"dst": "203.0.113.0/24", "table": 0, "priority": 0},
        // A link-scope route gets no gateway.
        {"dst": "192.0.2.128/25", "scope": 253},
        // Host bits in dst (as Go's types.ParseCIDR keeps them): the network is installed.
        {"dst": "198.18.0.1/15"},
    ]);
    let rt = net.runtime(net.conflist("1.1.0", vec![plugin]));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let routes = res["routes"].as_array().cloned().unwrap_or_default();
    assert!(
        routes
            .iter()
            .any(|r| r["dst"] == "192.0.2.0/24" && r["priority"] == 300),
        "{res}"
    );
    let live = ip::ip_json(&c.ns, &["-d", "route", "show", "table", "all"]);
    let find = |dst: &str| {
        live.as_array()
            .expect("ip -j route: an array")
            .iter()
            .find(|r| r["dst"] == dst)
            .cloned()
            .unwrap_or_else(|| panic!("no route to {dst}: {live}"))
    };
    let a = find("192.0.2.0/24");
    assert_eq!(a["metric"], 300, "{a}");
    assert_eq!(a["metrics"][0]["mtu"], 1300, "{a}");
    assert_eq!(a["metrics"][0]["advmss"], 1200, "{a}");
    assert_eq!(find("198.51.100.0/24")["table"], "100");
    assert_eq!(find("192.0.2.128/25")["scope"], "link");
    assert!(find("192.0.2.128/25").get("gateway").is_none());
    find("198.18.0.0/15");
    rt.check(&c.att).unwrap_or_else(|e| panic!("CHECK: {e}"));

    // A chained plugin such as sbr moves routes the result does not pin to a table:
    // CHECK still finds them.
    ip::must_run_in(&c.ns, &["ip", "route", "del", "203.0.113.0/24"]);
    ip::must_run_in(
        &c.ns,
        &[
            "ip",
            "route",
            "add",
            "203.0.113.0/24",
            "dev",
            "eth0",
            "table",
            "200",
        ],
    );
    rt.check(&c.att)
        .unwrap_or_else(|e| panic!("CHECK after the route moved tables: {e}"));

    ip::must_run_in(
        &c.ns,
        &["ip", "route", "del", "198.51.100.0/24", "table", "100"],
    );
    let err = rt
        .check(&c.att)
        .expect_err("CHECK without the table-100 route");
    assert_eq!(err.code(), 111, "{err}");
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

/// A route whose `gw` is 0.0.0.0 is on-link (what the dhcp IPAM reports for DHCP option
/// 121's router 0.0.0.0): installed through the container interface without a next hop
/// — not via the network's gateway — and accepted by CHECK.
#[test]
fn route_with_unspecified_gateway_is_on_link() {
    let net = TestNet::new();
    let mut plugin = net.vbridge_plugin();
    plugin["ipam"]["routes"] = serde_json::json!([{"dst": "192.0.2.0/24", "gw": "0.0.0.0"}]);
    let rt = net.runtime(net.conflist("1.0.0", vec![plugin]));
    let c = Container::new();
    rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let route = ip::routes(&c.ns)
        .into_iter()
        .find(|r| r.dst == "192.0.2.0/24")
        .expect("the route is in the container");
    assert_eq!(
        (route.gateway.as_deref(), route.dev.as_deref()),
        (None, Some("eth0")),
        "{route:?}"
    );
    rt.check(&c.att).unwrap_or_else(|e| panic!("CHECK: {e}"));
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}
