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

/// A delegate whose ADD succeeds but prints no usable result: the ADD fails, and the
/// address the delegate reserved is given back (vbridge calls its DEL).
#[test]
fn unusable_delegate_result_is_released() {
    let net = TestNet::new();
    let dir = net.tmp.sub("plugins");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    let script = Path::new(&dir).join("garbling-ipam");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nout=$({})\n[ \"$CNI_COMMAND\" = ADD ] && {{ echo 'not json'; exit 0; }}\nprintf '%s' \"$out\"\n",
            paths::vbridge_ipam().display()
        ),
    )
    .expect("write the delegate");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let mut conf = net.flat_config("1.0.0");
    conf["ipam"]["type"] = json!("garbling-ipam");
    let c = Container::new();
    let mut env = cni_env("ADD", &c.att);
    env.retain(|(k, _)| k != "CNI_PATH");
    env.push(("CNI_PATH".into(), dir.clone()));
    let out = exec(
        net.host.path(),
        &paths::vbridge(),
        &env,
        conf.to_string().as_bytes(),
    );
    assert!(!out.success(), "ADD with an unusable IPAM result: {out}");
    let held = integration::ipam_ls::reservations(&net.ipam_dir(), &net.name);
    assert!(
        held.is_empty(),
        "the delegate's reservation was kept: {held:?}"
    );
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
