//! A failed ADD leaves nothing behind: the address is released and the links are gone.

use integration::{ip, Container, TestNet};
use serde_json::json;

#[test]
fn failure_after_allocation_rolls_everything_back() {
    let net = TestNet::with_prefix(30);
    let mut plugin = net.vbridge_plugin();
    // The route's gateway is unreachable from the container, so the route step fails
    // after the address was allocated and the veth created.
    plugin["ipam"]["routes"] = json!([{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]);
    let rt = net.runtime(net.conflist("1.0.0", vec![plugin]));
    let c = Container::new();
    let err = rt.add(&c.att).expect_err("ADD must fail");
    assert_eq!(err.code(), 109, "{err}");
    assert!(
        ip::bridge_ports(&net.host, &net.bridge).is_empty(),
        "a host veth was left behind"
    );
    assert!(
        ip::link(&c.ns, "eth0").is_none(),
        "the container interface was left behind"
    );
    assert!(net.pool_has_free_address(), "the address was not released");
    // The runtime always follows a failed ADD with DEL; it must succeed too.
    rt.del(&c.att)
        .unwrap_or_else(|e| panic!("DEL after failed ADD: {e}"));
}
