//! Proves the harness against Debian's reference plugins (bridge, host-local, portmap), which
//! exist today: runtime calls, prevResult/runtimeConfig injection, datapath probes, error parsing.

use std::net::{Ipv4Addr, SocketAddr};

use integration::result::{cidr_of, gateway_of, ip_of};
use integration::{exec, ip, paths, probe, Container, TestNet};
use serde_json::{json, Value};

fn reference_bridge(net: &TestNet) -> Value {
    json!({
        "type": "bridge", "bridge": net.bridge, "isGateway": true, "isDefaultGateway": true,
        "ipMasq": true, "ipam": net.ipam("host-local"),
    })
}

#[test]
fn reference_bridge_add_check_del() {
    let net = TestNet::new();
    let rt = net.runtime(net.conflist("1.0.0", vec![reference_bridge(&net)]));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res["cniVersion"], "1.0.0");
    let (addr, prefix) = cidr_of(&res);
    assert!(net.subnet.contains(addr), "{addr} outside {}", net.subnet);
    assert!(ip::addrs(&c.ns, "eth0").contains(&(addr, prefix)));
    assert!(
        ip::ping(&c.ns, gateway_of(&res)),
        "container cannot ping its gateway"
    );
    // The reference bridge refuses CHECK without prevResult: success proves the cache works.
    let checks = rt.check(&c.att).unwrap_or_else(|e| panic!("{e}"));
    assert!(checks.iter().all(|o| o.stdout.trim().is_empty()));
    rt.del(&c.att).unwrap_or_else(|e| panic!("{e}"));
    rt.del(&c.att)
        .unwrap_or_else(|e| panic!("repeated DEL: {e}"));
    net.assert_links_released(&c);
}

#[test]
fn reference_masquerade_seen_from_outside() {
    let net = TestNet::new();
    let out = net.outside();
    let rt = net.runtime(net.conflist("1.0.0", vec![reference_bridge(&net)]));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("{e}"));
    let listener =
        probe::Listener::spawn(&out.ns, SocketAddr::from((out.addr, 7000))).expect("listen");
    probe::connect(&c.ns, SocketAddr::from((out.addr, 7000))).expect("connect from container");
    let peer = listener.peer().expect("accept");
    assert_eq!(
        peer.ip(),
        out.host_addr,
        "outside saw {peer}, container is {}",
        ip_of(&res)
    );
    rt.del(&c.att).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn reference_portmap_reaches_container() {
    let net = TestNet::new();
    let out = net.outside();
    let portmap = json!({"type": "portmap", "capabilities": {"portMappings": true}});
    let rt = net.runtime(net.conflist("1.0.0", vec![reference_bridge(&net), portmap]));
    let c = Container::new();
    let mapping = json!([{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}]);
    let att = c.att.clone().with_capability("portMappings", mapping);
    rt.add(&att).unwrap_or_else(|e| panic!("{e}"));
    let listener = probe::Listener::spawn(&c.ns, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)))
        .expect("listen");
    probe::connect(&out.ns, SocketAddr::from((out.host_addr, 18080)))
        .expect("connect to host port");
    assert_eq!(listener.peer().expect("accept").ip(), out.addr);
    rt.del(&att).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn reference_errors_are_parsed() {
    let net = TestNet::new();
    let c = Container::new();
    let conf = json!({"cniVersion": "1.0.0", "name": net.name, "type": "bridge", "ipam": net.ipam("host-local")});
    let bridge = paths::find_plugin("bridge");
    net.call(&bridge, "BOGUS", &c.att, conf.to_string().as_bytes())
        .expect_error(4);
    let version = exec(
        net.host.path(),
        &bridge,
        &[("CNI_COMMAND", "VERSION")],
        b"{}",
    );
    assert!(version.success(), "{version}");
    assert!(version.json()["supportedVersions"]
        .as_array()
        .is_some_and(|v| !v.is_empty()));
}
