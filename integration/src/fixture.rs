//! Per-test worlds: a fake host netns, temp dirs, unique names/subnets, config builders.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::{json, Value};

use crate::exec::{exec, Output};
use crate::ip;
use crate::netns::{run_ip, Netns};
use crate::paths;
use crate::runtime::{cni_env, Attachment, Runtime};
use crate::tmp::{unique, unique_name, TempDir};

/// An IPv4 subnet `base/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// The `n`-th address of the subnet (1 = the usual gateway).
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + n)
    }

    /// True if `addr` lies inside the subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(addr) & mask == u32::from(self.base)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// A container: its netns and the attachment parameters (`eth0`, unique container id).
pub struct Container {
    pub ns: Netns,
    pub att: Attachment,
}

impl Container {
    pub fn new() -> Container {
        let ns = Netns::new();
        let att = Attachment::new(&unique_name("ctr"), &ns);
        Container { ns, att }
    }

    pub fn id(&self) -> &str {
        &self.att.container_id
    }
}

impl Default for Container {
    fn default() -> Self {
        Container::new()
    }
}

/// How long a test waits for a network's nftables state to go after its last DEL: the
/// fixtures' `firewallTeardownDelayMs` (100 ms) plus slack for a loaded machine.
pub const TEARDOWN: std::time::Duration = std::time::Duration::from_secs(5);

/// An "outside" netns linked to the fake host by a veth pair on its own /30.
pub struct Outside {
    pub ns: Netns,
    /// The host's address on the link (what masquerade must show).
    pub host_addr: Ipv4Addr,
    /// The outside namespace's own address.
    pub addr: Ipv4Addr,
}

impl Outside {
    /// Connects from `from` (a container netns) to this outside namespace on `port` and
    /// returns the source address the outside saw: the host's own when masquerade works.
    pub fn source_seen(&self, from: &Netns, port: u16) -> std::net::IpAddr {
        let target = std::net::SocketAddr::from((self.addr, port));
        let listener = crate::probe::Listener::spawn(&self.ns, target).expect("listen outside");
        crate::probe::connect(from, target).expect("connect from the container");
        listener.peer().expect("accept").ip()
    }
}

/// One test's world: fake host netns, temp dir, and unique network name, bridge and subnet.
pub struct TestNet {
    pub host: Netns,
    pub tmp: TempDir,
    pub id: u32,
    pub name: String,
    pub bridge: String,
    pub subnet: Subnet,
}

impl TestNet {
    /// A world with a /24 subnet.
    pub fn new() -> TestNet {
        TestNet::with_prefix(24)
    }

    /// A world whose subnet is `10.<200+pid%51>.<n>.0/prefix` (prefix >= 24).
    pub fn with_prefix(prefix: u8) -> TestNet {
        let id = unique();
        let pid = std::process::id();
        let base = Ipv4Addr::new(10, 200 + (pid % 51) as u8, (id % 256) as u8, 0);
        TestNet {
            host: Netns::new(),
            tmp: TempDir::new(),
            id,
            name: format!("vbt-{pid}-{id}"),
            bridge: format!("vb{:x}x{}", pid & 0xff_ffff, id % 1000),
            subnet: Subnet { base, prefix },
        }
    }

    /// IPAM `dataDir`; nested two levels deep so a name like "../../etc" would still land in
    /// the temp dir (see [`TestNet::escape_probe`]).
    pub fn ipam_dir(&self) -> String {
        self.tmp.sub("a/b/ipam")
    }

    /// Where an IPAM store for network "../../etc" would land if names were not validated.
    pub fn escape_probe(&self) -> std::path::PathBuf {
        self.tmp.path().join("a/etc")
    }

    /// vbridge `stateDir`.
    pub fn state_dir(&self) -> String {
        self.tmp.sub("state")
    }

    /// vbridge's state of this world's network: `<stateDir>/<network>`.
    pub fn network_state(&self) -> std::path::PathBuf {
        Path::new(&self.state_dir()).join(&self.name)
    }

    /// The network's masquerade table, as `ip::nft_tables` lists it.
    pub fn masq_table(&self) -> (String, String) {
        ("inet".to_string(), format!("vbridge-{}", self.name))
    }

    /// An `ipam` section of the given type for this world's subnet and dataDir.
    pub fn ipam(&self, kind: &str) -> Value {
        json!({"type": kind, "subnet": self.subnet.to_string(), "dataDir": self.ipam_dir()})
    }

    /// The vbridge plugin object of our config conventions.
    pub fn vbridge_plugin(&self) -> Value {
        json!({
            "type": "vbridge", "bridge": self.bridge, "isGateway": true, "isDefaultGateway": true,
            "ipMasq": true, "stateDir": self.state_dir(), "ipam": self.ipam("vbridge-ipam"),
            // Short, but still through the deferred teardown a real deployment uses.
            "firewallTeardownDelayMs": 100,
        })
    }

    /// A conflist of this world's name.
    pub fn conflist(&self, version: &str, plugins: Vec<Value>) -> Value {
        json!({"cniVersion": version, "name": self.name, "plugins": plugins})
    }

    /// A conflist holding only vbridge.
    pub fn vbridge_conflist(&self, version: &str) -> Value {
        self.conflist(version, vec![self.vbridge_plugin()])
    }

    /// The stdin vbridge gets for this world (plugin object + name + cniVersion).
    pub fn flat_config(&self, version: &str) -> Value {
        let mut conf = self.vbridge_plugin();
        conf["name"] = json!(self.name);
        conf["cniVersion"] = json!(version);
        conf
    }

    pub fn runtime(&self, conflist: Value) -> Runtime {
        Runtime::new(conflist, &self.host)
    }

    /// One raw call of `bin` inside the host netns with libcni's env for `att`.
    pub fn call(&self, bin: &Path, command: &str, att: &Attachment, stdin: &[u8]) -> Output {
        exec(self.host.path(), bin, &cni_env(command, att), stdin)
    }

    /// The shipped `vbridge` with `conf` on stdin, as a runtime calls it.
    pub fn vbridge(&self, command: &str, att: &Attachment, conf: &Value) -> Output {
        self.call(&paths::vbridge(), command, att, conf.to_string().as_bytes())
    }

    /// After a DEL: the port is off the bridge at once, and the veth pair (host end and the
    /// container's `eth0`) is gone shortly after — vbridge deletes it from a detached
    /// process, as the kernel takes 10–20 ms for it.
    pub fn assert_links_released(&self, c: &Container) {
        assert!(
            crate::ip::bridge_ports(&self.host, &self.bridge).is_empty(),
            "host veth still on the bridge after DEL"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while crate::ip::link(&c.ns, "eth0").is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            crate::ip::link(&c.ns, "eth0").is_none(),
            "container iface survived DEL"
        );
    }

    /// True if `vbridge-ipam` can still hand out an address of this world's pool (it is then
    /// released again). With a /30 pool this proves no reservation is held.
    pub fn pool_has_free_address(&self) -> bool {
        let att = Attachment::new(&unique_name("probe"), &self.host);
        let conf = self.flat_config("1.0.0").to_string();
        let add = self.call(&paths::vbridge_ipam(), "ADD", &att, conf.as_bytes());
        if add.success() {
            let del = self.call(&paths::vbridge_ipam(), "DEL", &att, conf.as_bytes());
            assert!(del.success(), "IPAM DEL of the probe: {del}");
        }
        add.success()
    }

    /// Creates the world's bridge before vbridge does, holding `addr` (a CIDR): say, the
    /// gateway of a network's previous subnet.
    pub fn bridge_with_address(&self, addr: &str) {
        crate::ip::must_run_in(
            &self.host,
            &["ip", "link", "add", &self.bridge, "type", "bridge"],
        );
        crate::ip::must_run_in(
            &self.host,
            &["ip", "addr", "add", addr, "dev", &self.bridge],
        );
    }

    /// Wires an outside netns to the host (`vbout` ⇄ outside `eth0`) and enables forwarding.
    pub fn outside(&self) -> Outside {
        let ns = Netns::new();
        let net = Ipv4Addr::new(198, 18, (self.id % 256) as u8, 0);
        let host_addr = Ipv4Addr::from(u32::from(net) + 1);
        let addr = Ipv4Addr::from(u32::from(net) + 2);
        let h = self.host.name();
        run_ip(&[
            "-n",
            h,
            "link",
            "add",
            "vbout",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ]);
        run_ip(&[
            "-n",
            h,
            "addr",
            "add",
            &format!("{host_addr}/30"),
            "dev",
            "vbout",
        ]);
        run_ip(&["-n", h, "link", "set", "vbout", "up"]);
        run_ip(&[
            "-n",
            ns.name(),
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            "eth0",
        ]);
        run_ip(&["-n", ns.name(), "link", "set", "eth0", "up"]);
        ip::sysctl(&self.host, "net.ipv4.ip_forward", "1");
        Outside {
            ns,
            host_addr,
            addr,
        }
    }
}

impl Default for TestNet {
    fn default() -> Self {
        TestNet::new()
    }
}
