//! Podman 4.3 (Debian, CNI backend) runs containers on a vbridge network end to end:
//! addressing, routes, pings, a published port reached from outside, and cleanup on `rm -f`.
//!
//! Needs podman, runc, conmon and busybox-static (scripts/install-deps); a missing podman is
//! a failure with an install hint, not a skip. See `integration::podman` for the isolation.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

use integration::podman::{http_get, require_podman, Podman, IMAGE};
use integration::{ip, ipam_ls, TestNet};
use serde_json::{json, Value};

/// A conflist in the shape `podman network create` writes (cniVersion 0.4.0, portmap,
/// firewall with the default backend, tuning), with vbridge and vbridge-ipam.
fn podman_conflist(net: &TestNet) -> Value {
    json!({
        "cniVersion": "0.4.0",
        "name": net.name,
        "plugins": [
            {
                "type": "vbridge", "bridge": net.bridge, "isGateway": true, "ipMasq": true,
                "hairpinMode": true, "stateDir": net.state_dir(),
                "ipam": {
                    "type": "vbridge-ipam",
                    "ranges": [[{"subnet": net.subnet.to_string(), "gateway": net.subnet.host(1).to_string()}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": net.ipam_dir(),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall", "backend": ""},
            {"type": "tuning"},
        ],
    })
}

fn world() -> Podman {
    // Before any namespace exists, so a missing podman is the first thing reported.
    require_podman();
    let pm = Podman::new(TestNet::new());
    pm.add_network(&podman_conflist(&pm.net));
    pm
}

/// What `podman rm` must clean: identified before the container goes.
struct Traces {
    id: String,
    sandbox: String,
}

impl Traces {
    fn of(pm: &Podman, name: &str) -> Traces {
        Traces {
            id: pm.inspect(name, "{{.Id}}"),
            sandbox: pm.inspect(name, "{{.NetworkSettings.SandboxKey}}"),
        }
    }
}

/// The reservations `vbridge-ipam ls` shows for the world's network.
fn reservations(net: &TestNet) -> Vec<Value> {
    ipam_ls::reservations(&net.ipam_dir(), &net.name)
}

/// After `podman rm -f`: no host veth (the outside link `vbout` aside), no bridge port, no
/// reservation, no per-network nft table, no container netns, no libcni cache entry.
fn assert_nothing_left(pm: &Podman, gone: &[Traces]) {
    let net = &pm.net;
    let veths = ip::veths_after(&net.host, &["vbout"], std::time::Duration::from_secs(10));
    assert!(veths.is_empty(), "host veths left: {veths:?}");
    assert!(ip::bridge_ports(&net.host, &net.bridge).is_empty());
    let held = reservations(net);
    assert!(held.is_empty(), "reservations left: {held:?}");
    let table = net.masq_table();
    // Removed by vbridge's deferred teardown (default firewallTeardownDelayMs 2 s).
    assert!(
        ip::nft_table_gone(&net.host, &table, std::time::Duration::from_secs(8)),
        "nft table {} left",
        table.1
    );
    for t in gone {
        assert!(!Path::new(&t.sandbox).exists(), "netns {} left", t.sandbox);
        let cache = format!("/var/lib/cni/results/{}-{}-eth0", net.name, t.id);
        assert!(!Path::new(&cache).exists(), "libcni cache {cache} left");
    }
}

#[test]
fn run_gets_address_and_route_and_pings_gateway_and_peer() {
    let pm = world();
    let net = &pm.net;
    let gw = net.subnet.host(1);
    pm.must(&[
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        &net.name,
        IMAGE,
        "sleep",
        "600",
    ]);
    let traces = Traces::of(&pm, "peer");
    let addr: Ipv4Addr = pm
        .address("peer", &net.name)
        .parse()
        .expect("podman inspect IPAddress");
    assert!(net.subnet.contains(addr), "{addr} outside {}", net.subnet);
    let shown = pm.must(&["exec", "peer", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(
        shown.stdout.contains(&format!("inet {addr}/24")),
        "eth0 lacks {addr}/24: {shown}"
    );
    let route = pm.must(&["exec", "peer", "ip", "-4", "route", "show", "default"]);
    assert!(
        route.stdout.contains(&format!("default via {gw} dev eth0")),
        "no default route via {gw}: {route}"
    );
    let held = reservations(net);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["containerID"], traces.id.as_str());
    assert_eq!(held[0]["address"], addr.to_string());

    // A second container reaches the gateway and the first one (busybox ping needs NET_RAW).
    let script = format!("ping -c 2 -W 2 {gw} && ping -c 2 -W 2 {addr}");
    pm.must(&[
        "run",
        "--rm",
        "--cap-add",
        "NET_RAW",
        "--network",
        &net.name,
        IMAGE,
        "sh",
        "-c",
        &script,
    ]);

    pm.must(&["rm", "-f", "-t", "0", "peer"]);
    assert_nothing_left(&pm, &[traces]);
}

#[test]
fn published_port_reaches_container_from_outside() {
    let pm = world();
    let net = &pm.net;
    let out = net.outside();
    let server = "echo vbridge-podman > /tmp/index.html; exec httpd -f -p 80 -h /tmp";
    pm.must(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "8080:80",
        "--network",
        &net.name,
        IMAGE,
        "sh",
        "-c",
        server,
    ]);
    let traces = Traces::of(&pm, "web");
    let to = SocketAddr::from((out.host_addr, 8080));
    // httpd starts a moment after `podman run -d` returns.
    let mut got = http_get(&out.ns, to, "/index.html");
    for _ in 0..20 {
        if got.is_ok() {
            break;
        }
        sleep(Duration::from_millis(250));
        got = http_get(&out.ns, to, "/index.html");
    }
    let page = got.unwrap_or_else(|e| panic!("GET http://{to}/index.html from outside: {e}"));
    assert!(page.contains("vbridge-podman"), "unexpected page: {page}");

    pm.must(&["rm", "-f", "-t", "0", "web"]);
    assert_nothing_left(&pm, &[traces]);
    assert!(
        http_get(&out.ns, to, "/index.html").is_err(),
        "host port still answers after rm"
    );
}
