//! Every bad input gets a CNI error JSON on stdout with the right code, a non-zero exit, no
//! crash, and leaves the host untouched: no new links or nftables tables, no IPAM reservation
//! (each world uses a /30, so a leaked reservation would exhaust the pool).

use integration::runtime::cni_env;
use integration::{exec, ip, paths, Attachment, Container, TestNet};
use serde_json::{json, Value};

/// Runs vbridge once with `env` and `stdin`; asserts a clean rejection with `code`.
fn assert_rejected(
    net: &TestNet,
    c: &Container,
    env: &[(String, String)],
    stdin: &[u8],
    code: u32,
) {
    let host_before = ip::snapshot(&net.host);
    let ctr_before = ip::link_names(&c.ns);
    let out = exec(net.host.path(), &paths::vbridge(), env, stdin);
    let err = out.expect_error(code);
    assert!(!err.msg.is_empty(), "empty error message: {out}");
    assert_eq!(
        ip::snapshot(&net.host),
        host_before,
        "host changed after: {out}"
    );
    assert_eq!(
        ip::link_names(&c.ns),
        ctr_before,
        "container changed after: {out}"
    );
    assert!(
        net.pool_has_free_address(),
        "IPAM reservation leaked after: {out}"
    );
}

/// ADD with `conf` as stdin must fail with `code`.
fn reject_conf(net: &TestNet, c: &Container, conf: &Value, code: u32) {
    assert_rejected(
        net,
        c,
        &cni_env("ADD", &c.att),
        conf.to_string().as_bytes(),
        code,
    );
}

/// ADD with a valid config but these attachment parameters must fail with `code`.
fn reject_att(net: &TestNet, c: &Container, att: &Attachment, code: u32) {
    let conf = net.flat_config("1.0.0").to_string();
    assert_rejected(net, c, &cni_env("ADD", att), conf.as_bytes(), code);
}

fn world() -> (TestNet, Container) {
    (TestNet::with_prefix(30), Container::new())
}

#[test]
fn undecodable_input_is_6() {
    let (net, c) = world();
    assert_rejected(&net, &c, &cni_env("ADD", &c.att), b"{not json", 6);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_rejected(&net, &c, &cni_env("ADD", &c.att), deep.as_bytes(), 6);
    let mut big = net.flat_config("1.0.0");
    big["mtu"] = json!("x".repeat(1 << 20));
    reject_conf(&net, &c, &big, 6);
}

#[test]
fn bad_cni_version_is_1() {
    let (net, c) = world();
    let mut conf = net.flat_config("1.0.0");
    conf.as_object_mut().expect("object").remove("cniVersion");
    reject_conf(&net, &c, &conf, 1);
    for v in ["0.2.0", "9.9.9"] {
        reject_conf(&net, &c, &net.flat_config(v), 1);
    }
}

#[test]
fn bad_name_or_type_is_7() {
    let (net, c) = world();
    for key in ["name", "type"] {
        let mut conf = net.flat_config("1.0.0");
        conf.as_object_mut().expect("object").remove(key);
        reject_conf(&net, &c, &conf, 7);
    }
    for (key, bad) in [("name", "bad name!"), ("name", ""), ("type", "")] {
        let mut conf = net.flat_config("1.0.0");
        conf[key] = json!(bad);
        reject_conf(&net, &c, &conf, 7);
    }
}

/// A bridge name the kernel would refuse is refused before anything changes: no link, no
/// reservation (the world's /30 would be exhausted by a leak).
#[test]
fn bad_bridge_name_is_7() {
    let (net, c) = world();
    for bad in ["a-bridge-name-too-long", "../../etc", "br 0", "br/0"] {
        let mut conf = net.flat_config("1.0.0");
        conf["bridge"] = json!(bad);
        reject_conf(&net, &c, &conf, 7);
    }
}

#[test]
fn path_traversal_in_network_name_is_7() {
    let (net, c) = world();
    let mut conf = net.flat_config("1.0.0");
    conf["name"] = json!("../../etc");
    reject_conf(&net, &c, &conf, 7);
    assert!(
        !net.escape_probe().exists(),
        "something was written outside dataDir"
    );
}

#[test]
fn bad_ifname_or_container_id_is_4() {
    let (net, c) = world();
    for bad in ["abcdefghijklmnop", "..", "a/b"] {
        let mut att = c.att.clone();
        att.ifname = bad.to_string();
        reject_att(&net, &c, &att, 4);
    }
    let mut att = c.att.clone();
    att.container_id = "../x".to_string();
    reject_att(&net, &c, &att, 4);
}

#[test]
fn bad_subnet_range_or_gateway_is_7() {
    let (net, c) = world();
    let host_bits = format!("{}/24", net.subnet.host(5));
    let slash32 = format!("{}/32", net.subnet.base);
    for (key, bad) in [
        ("subnet", host_bits.as_str()),
        ("subnet", slash32.as_str()),
        ("subnet", "garbage"),
        ("rangeStart", "192.0.2.10"),
        ("gateway", "192.0.2.1"),
    ] {
        let mut conf = net.flat_config("1.0.0");
        conf["ipam"][key] = json!(bad);
        reject_conf(&net, &c, &conf, 7);
    }
}

#[test]
fn bad_mtu_is_7() {
    let (net, c) = world();
    for mtu in [10, 70000] {
        let mut conf = net.flat_config("1.0.0");
        conf["mtu"] = json!(mtu);
        reject_conf(&net, &c, &conf, 7);
    }
}

#[test]
fn bad_veth_queues_is_7_or_6() {
    let (net, c) = world();
    for (q, code) in [(json!(4097), 7), (json!(-1), 6), (json!("many"), 6)] {
        let mut conf = net.flat_config("1.0.0");
        conf["vethQueues"] = q;
        reject_conf(&net, &c, &conf, code);
    }
}

#[test]
fn missing_netns_is_104() {
    let (net, c) = world();
    let mut att = c.att.clone();
    att.netns = format!("/run/netns/vbt-missing-{}", std::process::id());
    reject_att(&net, &c, &att, 104);
}

#[test]
fn unknown_command_is_4() {
    let (net, c) = world();
    let conf = net.flat_config("1.0.0").to_string();
    assert_rejected(&net, &c, &cni_env("BOGUS", &c.att), conf.as_bytes(), 4);
}

#[test]
fn pool_exhausted_is_100() {
    let (net, a) = world();
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    rt.add(&a.att).unwrap_or_else(|e| panic!("first ADD: {e}"));
    let b = Container::new();
    let before = ip::snapshot(&net.host);
    let conf = net.flat_config("1.0.0").to_string();
    let out = net.call(&paths::vbridge(), "ADD", &b.att, conf.as_bytes());
    out.expect_error(100);
    assert_eq!(
        ip::snapshot(&net.host),
        before,
        "host changed by the failed ADD"
    );
    assert_eq!(
        ip::link_names(&b.ns),
        ["lo"],
        "container changed by the failed ADD"
    );
    rt.del(&a.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert!(net.pool_has_free_address());
}

#[test]
fn missing_command_prints_about() {
    let net = TestNet::new();
    let out = exec(
        net.host.path(),
        &paths::vbridge(),
        &[("CNI_PATH", paths::cni_path())],
        b"",
    );
    assert!(
        out.signal.is_none() && !out.stderr.contains("panicked at"),
        "{out}"
    );
    assert!(
        !out.stderr.trim().is_empty(),
        "no about text on stderr: {out}"
    );
    assert!(out.stderr.len() < 2000, "about text is not short: {out}");
}

#[test]
fn version_lists_supported_versions() {
    let net = TestNet::new();
    let expected = json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    for stdin in [&br#"{"cniVersion":"1.0.0"}"#[..], b"", b"garbage"] {
        let out = exec(
            net.host.path(),
            &paths::vbridge(),
            &[("CNI_COMMAND", "VERSION")],
            stdin,
        );
        assert!(out.success(), "{out}");
        assert_eq!(out.json()["supportedVersions"], expected, "{out}");
    }
}

/// CNI_NETNS naming the namespace the plugin runs in (the host) is refused: the container
/// end would land in the host. Code 8 is libcni's `ErrInvalidNetNS`, which its skel uses.
#[test]
fn own_netns_as_cni_netns_is_8() {
    let (net, c) = world();
    let mut att = c.att.clone();
    att.netns = net.host.path_str();
    reject_att(&net, &c, &att, 8);
}

/// `bridge` naming an existing link that is not a bridge: 106, that link untouched.
#[test]
fn bridge_name_of_a_non_bridge_link_is_106() {
    let (net, c) = world();
    let h = net.host.name();
    for args in [
        vec![
            "-n",
            h,
            "link",
            "add",
            &net.bridge,
            "type",
            "veth",
            "peer",
            "name",
            "vbpeer0",
        ],
        vec!["-n", h, "link", "set", &net.bridge, "up"],
    ] {
        let out = std::process::Command::new("ip")
            .args(&args)
            .output()
            .expect("ip");
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    }
    let conf = net.flat_config("1.0.0");
    reject_conf(&net, &c, &conf, 106);
    let kind = ip::link(&net.host, &net.bridge).and_then(|l| l.kind().map(str::to_string));
    assert_eq!(kind.as_deref(), Some("veth"));
}

/// A repeated ADD of a live attachment: its interface exists, so 103 — and the address the
/// first ADD reserved stays reserved and configured (a failed ADD's rollback must not
/// release what the IPAM hands back to a retry).
#[test]
fn repeated_add_of_a_live_attachment_keeps_its_address() {
    let (net, c) = world();
    let conf = net.flat_config("1.0.0").to_string();
    let first = exec(
        net.host.path(),
        &paths::vbridge(),
        &cni_env("ADD", &c.att),
        conf.as_bytes(),
    );
    assert!(first.success(), "first ADD: {first}");
    let held = ip::addrs(&c.ns, "eth0");
    assert_eq!(held.len(), 1, "eth0 addresses: {held:?}");
    let again = exec(
        net.host.path(),
        &paths::vbridge(),
        &cni_env("ADD", &c.att),
        conf.as_bytes(),
    );
    again.expect_error(103);
    assert!(
        !net.pool_has_free_address(),
        "the repeated ADD released the live attachment's address: {again}"
    );
    assert_eq!(ip::addrs(&c.ns, "eth0"), held, "eth0 changed: {again}");
}

/// CNI_IFNAME already present in the container: 103, and the address is not taken.
#[test]
fn existing_ifname_in_the_container_is_103() {
    let (net, c) = world();
    let out = std::process::Command::new("ip")
        .args([
            "-n",
            c.ns.name(),
            "link",
            "add",
            "eth0",
            "type",
            "veth",
            "peer",
            "name",
            "other0",
        ])
        .output()
        .expect("ip");
    assert!(out.status.success(), "{out:?}");
    reject_att(&net, &c, &c.att, 103);
}
