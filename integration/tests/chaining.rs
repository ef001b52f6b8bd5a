//! vbridge with reference chained plugins, and the reference bridge with vbridge-ipam.

use std::net::{Ipv4Addr, SocketAddr};

use integration::result::{gateway_of, ip_of};
use integration::{ip, probe, Container, TestNet};
use serde_json::json;

#[test]
fn portmap_forwards_host_port_to_container() {
    let net = TestNet::new();
    let out = net.outside();
    let portmap = json!({"type": "portmap", "capabilities": {"portMappings": true}});
    let rt = net.runtime(net.conflist("1.0.0", vec![net.vbridge_plugin(), portmap]));
    let c = Container::new();
    let mapping = json!([{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp"}]);
    let att = c.att.clone().with_capability("portMappings", mapping);
    rt.add(&att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let listener = probe::Listener::spawn(&c.ns, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)))
        .expect("listen");
    probe::connect(&out.ns, SocketAddr::from((out.host_addr, 18080)))
        .expect("connect to the host port");
    assert_eq!(
        listener.peer().expect("accept").ip(),
        out.addr,
        "DNAT must keep the client's address"
    );
    rt.del(&att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

#[test]
fn reference_bridge_with_vbridge_ipam() {
    let net = TestNet::with_prefix(30);
    let bridge = json!({"type": "bridge", "bridge": net.bridge, "isGateway": true, "ipam": net.ipam("vbridge-ipam")});
    let rt = net.runtime(net.conflist("1.0.0", vec![bridge]));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    assert!(net.subnet.contains(ip_of(&res)), "{res}");
    assert!(
        ip::ping(&c.ns, gateway_of(&res)),
        "container cannot ping its gateway"
    );
    assert!(!net.pool_has_free_address(), "the /30 should be taken");
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert!(
        net.pool_has_free_address(),
        "DEL did not release the address"
    );
}
