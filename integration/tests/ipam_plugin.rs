//! The standalone `vbridge-ipam` speaks the IPAM protocol (abbreviated results) in every version.

use integration::result::{gateway_of, has_route, ip_of};
use integration::runtime::version_at_least;
use integration::{exec, paths, Attachment, TestNet};
use serde_json::{json, Value};

const VERSIONS: [&str; 4] = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The whole plugin config an IPAM plugin receives, with a default route configured.
fn ipam_config(net: &TestNet, version: &str) -> Value {
    let mut conf = net.flat_config(version);
    conf["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    conf
}

fn ipam_call(net: &TestNet, command: &str, att: &Attachment, conf: &Value) -> integration::Output {
    net.call(
        &paths::vbridge_ipam(),
        command,
        att,
        conf.to_string().as_bytes(),
    )
}

fn assert_abbreviated(net: &TestNet, res: &Value, version: &str) {
    assert_eq!(res["cniVersion"], version, "{res}");
    assert!(
        res["interfaces"].as_array().is_none_or(|v| v.is_empty()),
        "IPAM result has interfaces: {res}"
    );
    let ip0 = &res["ips"][0];
    assert!(
        ip0.get("interface").is_none(),
        "IPAM ips[] has interface: {res}"
    );
    assert_eq!(
        ip0.get("version").is_some(),
        !version_at_least(version, "1.0.0"),
        "{res}"
    );
    assert!(net.subnet.contains(ip_of(res)), "{res}");
    assert!(net.subnet.contains(gateway_of(res)), "{res}");
    assert!(
        has_route(res, "0.0.0.0/0"),
        "configured route missing: {res}"
    );
}

#[test]
fn ipam_protocol_every_version() {
    for version in VERSIONS {
        let net = TestNet::new();
        let att = Attachment::new("ipam-proto", &net.host);
        let mut conf = ipam_config(&net, version);
        let add = ipam_call(&net, "ADD", &att, &conf);
        assert!(add.success(), "{version} ADD: {add}");
        let res = add.json();
        assert_abbreviated(&net, &res, version);
        if version_at_least(version, "0.4.0") {
            conf["prevResult"] = res;
            let check = ipam_call(&net, "CHECK", &att, &conf);
            assert!(
                check.success() && check.stdout.trim().is_empty(),
                "{version} CHECK: {check}"
            );
        }
        let del = ipam_call(&net, "DEL", &att, &conf);
        assert!(
            del.success() && del.stdout.trim().is_empty(),
            "{version} DEL: {del}"
        );
    }
}

#[test]
fn ipam_version_lists_supported_versions() {
    let net = TestNet::new();
    let out = exec(
        net.host.path(),
        &paths::vbridge_ipam(),
        &[("CNI_COMMAND", "VERSION")],
        br#"{"cniVersion":"1.0.0"}"#,
    );
    assert!(out.success(), "{out}");
    assert_eq!(
        out.json()["supportedVersions"],
        json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
    );
}

#[test]
fn ipam_add_retry_returns_same_address() {
    let net = TestNet::with_prefix(30);
    let att = Attachment::new("ipam-retry", &net.host);
    let conf = ipam_config(&net, "1.0.0");
    let first = ipam_call(&net, "ADD", &att, &conf);
    let second = ipam_call(&net, "ADD", &att, &conf);
    assert!(first.success() && second.success(), "{first}\n{second}");
    assert_eq!(
        ip_of(&first.json()),
        ip_of(&second.json()),
        "retried ADD moved the address"
    );
    assert!(
        !net.pool_has_free_address(),
        "retried ADD took a second address"
    );
    let del = ipam_call(&net, "DEL", &att, &conf);
    assert!(del.success(), "{del}");
    assert!(
        net.pool_has_free_address(),
        "DEL did not release the address"
    );
}

/// STATUS on an invalid config is a config error (7, naming the field) for both binaries,
/// not "not available".
#[test]
fn status_with_a_bad_config_is_code_7() {
    let net = TestNet::new();
    let mut conf = ipam_config(&net, "1.1.0");
    conf["ipam"]["subnet"] = json!("10.1.0.5/24");
    let att = Attachment::new("status", &net.host);
    for bin in [paths::vbridge_ipam(), paths::vbridge()] {
        let out = net.call(&bin, "STATUS", &att, conf.to_string().as_bytes());
        let err = out.expect_error(7);
        assert!(err.msg.contains("subnet"), "{}: {}", bin.display(), err.msg);
    }
}

/// CHECK against a config whose ranges no longer parse (changed since the ADD) answers
/// with the config error, not with a mismatch the broken ranges made up.
#[test]
fn check_with_ranges_that_no_longer_parse_is_7() {
    let net = TestNet::new();
    let att = Attachment::new("ipam-check", &net.host);
    let mut conf = ipam_config(&net, "1.1.0");
    let add = ipam_call(&net, "ADD", &att, &conf);
    assert!(add.success(), "ADD: {add}");
    conf["prevResult"] = add.json();
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.255.0.1/24"}]]);
    let check = ipam_call(&net, "CHECK", &att, &conf);
    let err = check.expect_error(7);
    assert!(err.msg.contains("ranges[0]"), "{}", err.msg);
    let del = ipam_call(&net, "DEL", &att, &conf);
    assert!(del.success(), "DEL with that config still releases: {del}");
}
