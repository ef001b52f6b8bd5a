//! IPAM types other than `vbridge-ipam` are exec'd from CNI_PATH the way libcni's invoke
//! does: same stdin, CNI_COMMAND overridden, DEL and CHECK forwarded, the delegate's own
//! error code passed through.

use integration::result::{gateway_of, ip_of};
use integration::runtime::cni_env;
use integration::{exec, ip, paths, Container, TestNet};
use serde_json::json;
use std::path::Path;

/// Debian's host-local as the delegate: its reservation file appears on ADD, CHECK is
/// forwarded and passes, DEL removes the file.
#[test]
fn host_local_as_delegate() {
    let net = TestNet::new();
    let mut plugin = net.vbridge_plugin();
    plugin["ipam"] = net.ipam("host-local");
    let rt = net.runtime(net.conflist("1.0.0", vec![plugin]));
    let c = Container::new();
    let res = rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}"));
    let addr = ip_of(&res);
    assert!(net.subnet.contains(addr), "{res}");
    let record = Path::new(&net.ipam_dir())
        .join(&net.name)
        .join(addr.to_string());
    assert!(
        record.exists(),
        "host-local has no reservation file {}",
        record.display()
    );
    assert!(ip::ping(&c.ns, gateway_of(&res)), "no ping to the gateway");
    rt.check(&c.att).unwrap_or_else(|e| panic!("CHECK: {e}"));
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
    assert!(!record.exists(), "DEL was not forwarded to host-local");
}

/// The delegate's error code reaches the runtime unchanged, and the failed ADD leaves
/// nothing behind. The delegate is vbridge-ipam under another name (so it is exec'd), on
/// a /30 whose one address is taken: its code 100 must come through.
#[test]
fn delegate_error_code_is_passed_through() {
    let net = TestNet::with_prefix(30);
    let dir = net.tmp.sub("plugins");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    std::os::unix::fs::symlink(paths::vbridge_ipam(), Path::new(&dir).join("other-ipam"))
        .expect("symlink");
    let mut conf = net.flat_config("1.0.0");
    conf["ipam"]["type"] = json!("other-ipam");
    let stdin = conf.to_string();
    let call = |c: &Container| {
        let mut env = cni_env("ADD", &c.att);
        env.retain(|(k, _)| k != "CNI_PATH");
        env.push(("CNI_PATH".into(), format!("{dir}:{}", paths::cni_path())));
        exec(net.host.path(), &paths::vbridge(), &env, stdin.as_bytes())
    };
    let (a, b) = (Container::new(), Container::new());
    let first = call(&a);
    assert!(first.success(), "first ADD: {first}");
    let ports_before = ip::bridge_ports(&net.host, &net.bridge).len();
    let err = call(&b).expect_error(100);
    assert!(err.msg.contains("other-ipam"), "{}", err.msg);
    assert_eq!(
        ip::bridge_ports(&net.host, &net.bridge).len(),
        ports_before,
        "failed ADD left a port"
    );
    assert!(ip::link(&b.ns, "eth0").is_none(), "failed ADD left eth0");
}

/// A plugin directory holding one executable shell script `name`.
fn script_delegate(net: &TestNet, name: &str, body: &str) -> String {
    let dir = net.tmp.sub("plugins");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    let script = Path::new(&dir).join(name);
    std::fs::write(&script, format!("#!/bin/sh\n{body}")).expect("write the delegate");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    dir
}

/// ADD of `conf` with CNI_PATH = `dir`.
fn add_via(net: &TestNet, dir: &str, conf: &serde_json::Value, c: &Container) -> exec::Output {
    let mut env = cni_env("ADD", &c.att);
    env.retain(|(k, _)| k != "CNI_PATH");
    env.push(("CNI_PATH".into(), dir.to_string()));
    exec(
        net.host.path(),
        &paths::vbridge(),
        &env,
        conf.to_string().as_bytes(),
    )
}

/// A delegate whose ADD succeeds but prints no usable result — not JSON, or a result
/// without addresses (the reference refuses that too): the ADD fails, and the address
/// the delegate reserved is given back (vbridge calls its DEL).
#[test]
fn unusable_delegate_result_is_released() {
    for (printed, says) in [
        ("not json", "not JSON"),
        (r#"{"cniVersion":"1.0.0"}"#, "no IP addresses"),
    ] {
        let net = TestNet::new();
        let dir = script_delegate(
            &net,
            "garbling-ipam",
            &format!(
                "out=$({})\n[ \"$CNI_COMMAND\" = ADD ] && {{ echo '{printed}'; exit 0; }}\nprintf '%s' \"$out\"\n",
                paths::vbridge_ipam().display()
            ),
        );
        let mut conf = net.flat_config("1.0.0");
        conf["ipam"]["type"] = json!("garbling-ipam");
        let c = Container::new();
        let err = add_via(&net, &dir, &conf, &c).expect_error(110);
        assert!(err.msg.contains(says), "{printed}: {}", err.msg);
        let held = integration::ipam_ls::reservations(&net.ipam_dir(), &net.name);
        assert!(
            held.is_empty(),
            "{printed}: the delegate's reservation was kept: {held:?}"
        );
        assert!(
            ip::link(&c.ns, "eth0").is_none(),
            "{printed}: failed ADD left eth0"
        );
    }
}

/// A delegated IPAM runs once the container interface exists, is up and its host end
/// is on the bridge — where the reference bridge runs it, and what dhcp needs (it
/// acquires the lease through that interface). The delegate here refuses unless it
/// finds exactly that, then allocates with vbridge-ipam.
#[test]
fn delegate_runs_with_the_container_interface_up() {
    let net = TestNet::new();
    let dir = script_delegate(
        &net,
        "iface-ipam",
        &format!(
            r#"if [ "$CNI_COMMAND" = ADD ]; then
  link=$(nsenter --net="$CNI_NETNS" ip -o link show dev "$CNI_IFNAME" 2>&1)
  case "$link" in
    *",UP"*|*"<UP"*) ;;
    *) printf '{{"cniVersion":"1.0.0","code":7,"msg":"container interface not up: %s"}}' "$link"; exit 1;;
  esac
  if [ -z "$(ip -o link show master {bridge} 2>/dev/null)" ]; then
    printf '{{"cniVersion":"1.0.0","code":7,"msg":"no port on the bridge"}}'; exit 1
  fi
fi
exec {ipam}
"#,
            bridge = net.bridge,
            ipam = paths::vbridge_ipam().display()
        ),
    );
    let mut conf = net.flat_config("1.0.0");
    conf["ipam"]["type"] = json!("iface-ipam");
    let c = Container::new();
    let out = add_via(&net, &dir, &conf, &c);
    assert!(out.success(), "ADD: {out}");
    let res: serde_json::Value = serde_json::from_str(&out.stdout).expect("result JSON");
    assert!(net.subnet.contains(ip_of(&res)), "{res}");
    assert!(ip::ping(&c.ns, gateway_of(&res)), "no ping to the gateway");
}

/// A delegated IPAM's address arrives after the container interface went up, which is
/// when the kernel would announce it: vbridge announces it afterwards (gratuitous ARP),
/// so a neighbour still holding a previous pod's MAC for a reused address learns the new
/// one at once instead of losing this pod's traffic until its entry expires.
#[test]
fn delegated_address_is_announced() {
    let net = TestNet::new();
    let dir = script_delegate(
        &net,
        "other-ipam",
        &format!("exec {}\n", paths::vbridge_ipam().display()),
    );
    let mut conf = net.flat_config("1.0.0");
    conf["ipam"]["type"] = json!("other-ipam");
    let add = |n: u32| {
        let mut c = Container::new();
        c.att.cni_args = format!("IgnoreUnknown=1;IP={}", net.subnet.host(n));
        let out = add_via(&net, &dir, &conf, &c);
        assert!(out.success(), "ADD: {out}");
        let res: serde_json::Value = serde_json::from_str(&out.stdout).expect("result JSON");
        (c, res)
    };
    // A pod already there (the bridge exists, with a port); the host still remembers
    // another MAC for the address the next pod gets.
    let _first = add(51);
    let addr = net.subnet.host(50).to_string();
    ip::must_run_in(
        &net.host,
        &[
            "ip",
            "neigh",
            "replace",
            &addr,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            &net.bridge,
            "nud",
            "stale",
        ],
    );
    let (_c, res) = add(50);
    let ctr_mac = res["interfaces"][2]["mac"].as_str().expect("container MAC");
    let neigh = ip::must_run_in(
        &net.host,
        &["ip", "neigh", "show", &addr, "dev", &net.bridge],
    );
    assert!(
        neigh.stdout.contains(ctr_mac),
        "the host still has {:?} for {addr}, not the container's {ctr_mac}: {neigh}",
        neigh.stdout.trim()
    );
}

/// A delegate's /32 lease whose router lies outside it (as some DHCP servers hand out):
/// ADD does not put that gateway on the bridge, and CHECK does not ask for it there.
#[test]
fn check_of_a_gateway_outside_the_lease() {
    let net = TestNet::new();
    let result = json!({
        "cniVersion": "1.0.0",
        "ips": [{"address": format!("{}/32", net.subnet.host(60)), "gateway": net.subnet.host(1).to_string()}],
    });
    let dir = script_delegate(
        &net,
        "lease-ipam",
        &format!("[ \"$CNI_COMMAND\" = ADD ] && echo '{result}'\nexit 0\n"),
    );
    let mut conf = net.flat_config("1.0.0");
    conf["ipam"] = json!({"type": "lease-ipam"});
    conf["isDefaultGateway"] = json!(false);
    let c = Container::new();
    let out = add_via(&net, &dir, &conf, &c);
    assert!(out.success(), "ADD: {out}");
    let bridge = ip::addrs(&net.host, &net.bridge);
    assert!(
        bridge.is_empty(),
        "a gateway outside the lease on the bridge: {bridge:?}"
    );
    conf["prevResult"] = serde_json::from_str(&out.stdout).expect("result JSON");
    let mut env = cni_env("CHECK", &c.att);
    env.retain(|(k, _)| k != "CNI_PATH");
    env.push(("CNI_PATH".into(), dir.clone()));
    let check = exec(
        net.host.path(),
        &paths::vbridge(),
        &env,
        conf.to_string().as_bytes(),
    );
    assert!(check.success(), "CHECK: {check}");
}

/// STATUS of a network whose delegated IPAM is not in CNI_PATH: not ready (50, the
/// spec's STATUS code, naming the plugin), not our exec failure code 110.
#[test]
fn status_with_a_missing_delegate_is_50() {
    let net = TestNet::new();
    let mut conf = net.flat_config("1.1.0");
    conf["ipam"]["type"] = json!("no-such-ipam");
    let c = Container::new();
    let out = net.vbridge("STATUS", &c.att, &conf);
    let err = out.expect_error(50);
    assert!(err.msg.contains("no-such-ipam"), "{}", err.msg);
}
