//! `vlan` / `vlanTrunk` against the running kernel. Without bridge VLAN filtering (the usual
//! case on our CI machines) ADD must refuse with code 105 naming the missing feature and leave
//! nothing behind: no link, no bridge of its own, no IPAM reservation (each world is a /30, so a
//! leak would starve the follow-up ADD). On a kernel that has it, the same tests assert that the
//! port really got its VLAN instead, so they never pass by skipping. Bad VIDs are code 7 on
//! every kernel.

use integration::result::ip_of;
use integration::runtime::cni_env;
use integration::vlan::{self, KernelVlan, PortVlan};
use integration::{exec, ip, paths, Container, TestNet};
use serde_json::{json, Value};

/// The VLAN settings a refused ADD is tried with.
fn vlan_settings() -> [Value; 3] {
    [
        json!({"vlan": 100}),
        json!({"vlanTrunk": [{"id": 100}, {"minID": 200, "maxID": 202}]}),
        json!({"vlan": 100, "vlanTrunk": [{"id": 300}], "preserveDefaultVlan": true}),
    ]
}

/// The world's vbridge config (gateway, masquerade) plus `extra`.
fn conf_with(net: &TestNet, extra: &Value) -> Value {
    let mut conf = net.flat_config("1.0.0");
    for (k, v) in extra.as_object().into_iter().flatten() {
        conf[k] = v.clone();
    }
    conf
}

fn add(net: &TestNet, c: &Container, conf: &Value) -> integration::Output {
    net.vbridge("ADD", &c.att, conf)
}

/// A DEL with the ADD result as prevResult, as a runtime sends it.
fn del(net: &TestNet, c: &Container, conf: &Value, result: &Value) {
    let mut conf = conf.clone();
    conf["prevResult"] = result.clone();
    let out = net.vbridge("DEL", &c.att, &conf);
    assert!(out.success(), "DEL: {out}");
}

/// ADD with `extra` must fail with 105 naming VLAN filtering, changing nothing.
fn assert_refused(net: &TestNet, c: &Container, extra: &Value) {
    let before = ip::snapshot(&net.host);
    let out = add(net, c, &conf_with(net, extra));
    let err = out.expect_error(105);
    assert!(
        err.msg.contains("VLAN filtering"),
        "message does not name the missing kernel feature: {out}"
    );
    assert_eq!(ip::snapshot(&net.host), before, "host changed after: {out}");
    assert_eq!(
        ip::link_names(&c.ns),
        ["lo"],
        "container changed after: {out}"
    );
    assert!(
        net.pool_has_free_address(),
        "IPAM reservation leaked after: {out}"
    );
}

/// On a VLAN-capable kernel: ADD with `extra` works and the port carries exactly its VLANs.
fn assert_applied(net: &TestNet, c: &Container, extra: &Value) {
    let conf = conf_with(net, extra);
    let out = add(net, c, &conf);
    assert!(out.success(), "ADD with {extra}: {out}");
    let res = out.json();
    assert_eq!(
        vlan::vlan_filtering(&net.host, &net.bridge),
        Some(true),
        "bridge without vlan_filtering after ADD with {extra}"
    );
    let port = res["interfaces"][1]["name"].as_str().expect("host veth");
    let got = vlan::port_vlans(&net.host, port);
    let want = expected_port_vlans(extra);
    assert_eq!(got, want, "VLANs of {port} after ADD with {extra}");
    del(net, c, &conf, &res);
}

/// What `bridge vlan show` must list for a port configured with `extra`.
fn expected_port_vlans(extra: &Value) -> Vec<PortVlan> {
    let access = extra["vlan"].as_u64().map(|v| v as u16);
    let mut want: Vec<PortVlan> = Vec::new();
    if extra["preserveDefaultVlan"] == json!(true) {
        // The default PVID entry stays, minus its PVID flag when an access VLAN took it.
        want.push(PortVlan {
            vid: 1,
            pvid: access.is_none(),
            untagged: true,
        });
    }
    for t in extra["vlanTrunk"].as_array().into_iter().flatten() {
        let lo = t["id"].as_u64().or(t["minID"].as_u64()).unwrap_or(0) as u16;
        let hi = t["id"].as_u64().or(t["maxID"].as_u64()).unwrap_or(0) as u16;
        want.extend((lo..=hi).map(|vid| PortVlan {
            vid,
            pvid: false,
            untagged: false,
        }));
    }
    if let Some(vid) = access {
        want.push(PortVlan {
            vid,
            pvid: true,
            untagged: true,
        });
    }
    want.sort_by_key(|p| p.vid);
    want
}

/// A plain ADD afterwards still gets the pool's only address, then leaves again.
fn assert_plain_add_gets_first_address(net: &TestNet, c: &Container) {
    let conf = net.flat_config("1.0.0");
    let out = add(net, c, &conf);
    assert!(out.success(), "plain ADD after the VLAN attempts: {out}");
    let res = out.json();
    assert_eq!(ip_of(&res), net.subnet.host(2), "first address not free");
    del(net, c, &conf, &res);
}

fn kernel() -> KernelVlan {
    let k = vlan::kernel_vlan();
    eprintln!("kernel VLAN support: {k:?}");
    k
}

#[test]
fn vlan_on_a_bridge_vbridge_creates() {
    let net = TestNet::with_prefix(30);
    let c = Container::new();
    let k = kernel();
    for extra in vlan_settings() {
        if k.filtering {
            assert_applied(&net, &c, &extra);
        } else {
            assert_refused(&net, &c, &extra);
            assert!(
                ip::link(&net.host, &net.bridge).is_none(),
                "refused ADD left bridge {} behind",
                net.bridge
            );
        }
    }
    assert_plain_add_gets_first_address(&net, &c);
}

#[test]
fn vlan_on_an_adopted_bridge_without_filtering() {
    let net = TestNet::with_prefix(30);
    let c = Container::new();
    ip::must_run_in(
        &net.host,
        &["ip", "link", "add", &net.bridge, "type", "bridge"],
    );
    assert_eq!(vlan::vlan_filtering(&net.host, &net.bridge), Some(false));
    let k = kernel();
    for extra in vlan_settings() {
        if k.filtering {
            assert_applied(&net, &c, &extra);
        } else {
            assert_refused(&net, &c, &extra);
            assert_eq!(
                vlan::vlan_filtering(&net.host, &net.bridge),
                Some(false),
                "adopted bridge changed"
            );
            assert!(ip::bridge_ports(&net.host, &net.bridge).is_empty());
        }
    }
    assert_plain_add_gets_first_address(&net, &c);
}

/// Rejected by validation before the kernel is asked: same answer on every kernel.
fn assert_bad_config(net: &TestNet, c: &Container, extra: &Value) {
    let before = ip::snapshot(&net.host);
    let conf = conf_with(net, extra);
    let out = exec(
        net.host.path(),
        &paths::vbridge(),
        &cni_env("ADD", &c.att),
        conf.to_string().as_bytes(),
    );
    let err = out.expect_error(7);
    let field = if extra.get("vlanTrunk").is_some() {
        "vlanTrunk"
    } else {
        "vlan"
    };
    assert!(
        err.msg.contains(field),
        "message does not name {field}: {out}"
    );
    assert_eq!(ip::snapshot(&net.host), before, "host changed after: {out}");
    assert_eq!(ip::link_names(&c.ns), ["lo"], "container changed: {out}");
}

#[test]
fn out_of_range_vids_are_7() {
    let net = TestNet::with_prefix(30);
    let c = Container::new();
    for extra in [
        json!({"vlan": 4095}),
        json!({"vlan": 5000}),
        json!({"vlanTrunk": [{"id": 0}]}),
        json!({"vlanTrunk": [{"id": 4095}]}),
        json!({"vlanTrunk": [{"minID": 10, "maxID": 4095}]}),
        json!({"vlanTrunk": [{"minID": 20, "maxID": 10}]}),
        json!({"vlanTrunk": [{"minID": 20}]}),
        json!({"vlanTrunk": [{"id": 5, "maxID": 9}]}),
    ] {
        assert_bad_config(&net, &c, &extra);
    }
    assert!(net.pool_has_free_address(), "IPAM reservation leaked");
}

#[test]
fn access_vlan_inside_the_trunk_is_7() {
    let net = TestNet::with_prefix(30);
    let c = Container::new();
    for extra in [
        json!({"vlan": 100, "vlanTrunk": [{"id": 100}]}),
        json!({"vlan": 100, "vlanTrunk": [{"id": 5}, {"minID": 50, "maxID": 150}]}),
    ] {
        assert_bad_config(&net, &c, &extra);
    }
    assert!(net.pool_has_free_address(), "IPAM reservation leaked");
}
