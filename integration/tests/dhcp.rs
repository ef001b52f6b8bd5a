//! vbridge with the reference `dhcp` IPAM (`"ipam": {"type": "dhcp"}`): the dhcp daemon
//! acquires the lease by DHCP over the container interface itself, so that interface must
//! exist, be on its bridge port and be up before the IPAM runs — where the reference
//! `bridge` runs its IPAM. A dnsmasq inside the test's fake host netns serves DHCP on the
//! test bridge; Debian's dhcp daemon (`/usr/lib/cni/dhcp daemon`) listens on a socket in a
//! temp dir (`-socketpath`, and the `daemonSocketPath` IPAM key), never the machine's
//! default /run/cni/dhcp.sock. Both processes are stopped on drop, panics included.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use integration::result::{cidr_of, gateway_of};
use integration::{ip, Container, Netns, TempDir, TestNet};
use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;

/// Debian's reference dhcp IPAM plugin, which is also its daemon.
const DHCP_PLUGIN: &str = "/usr/lib/cni/dhcp";

/// How long a started process gets to become ready (dnsmasq: its pid file; the dhcp
/// daemon: its socket).
const READY_WITHIN: Duration = Duration::from_secs(10);

/// A long-running process started inside a netns, its stdout and stderr in `log`.
/// On drop: SIGTERM, SIGKILL if it is still there after a few seconds, reaped; its log is
/// printed when the test is panicking.
struct Daemon {
    what: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn spawn(what: &'static str, ns: &Netns, bin: &Path, args: &[String], log: PathBuf) -> Daemon {
        let out = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("dup the log file");
        let netns = File::open(ns.path()).expect("open the test's host netns");
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        // SAFETY: setns and prctl are async-signal-safe syscalls; the closure only uses
        // the fd opened above. The death signal is a backstop for a test process killed
        // outright (no Drop runs then).
        unsafe {
            cmd.pre_exec(move || {
                setns(&netns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what} ({}): {e}", bin.display()));
        Daemon { what, child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready()`; panics with the log if the process exits first or it takes
    /// longer than [`READY_WITHIN`].
    fn wait_ready(&mut self, ready: impl Fn() -> bool) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if ready() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("wait for the daemon") {
                panic!(
                    "{} exited at startup ({status}):\n{}",
                    self.what,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {READY_WITHIN:?}:\n{}",
                self.what,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True once the log holds `needle` (waits up to 5 s: the process writes it
    /// asynchronously).
    fn logged(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.log().contains(needle) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Not reaped yet, so the pid cannot have been reused.
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = Pid::from_raw(self.child.id() as i32);
            let _ignored = kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ignored = self.child.kill();
        }
        let _ignored = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log ({}) ---\n{}",
                self.what,
                self.log.display(),
                self.log()
            );
        }
    }
}

/// `name` in `PATH` or the sbin directories (dnsmasq lives in /usr/sbin).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// dnsmasq serving DHCP (no DNS) on `bridge` from `range`, in the netns `ns`.
fn start_dnsmasq(
    ns: &Netns,
    bridge: &str,
    range: (Ipv4Addr, Ipv4Addr),
    router: Ipv4Addr,
    dir: &Path,
) -> Daemon {
    let bin = find_program("dnsmasq").unwrap_or_else(|| {
        panic!("dnsmasq not found: install the Debian package dnsmasq-base (scripts/install-deps does)")
    });
    let pid_file = dir.join("dnsmasq.pid");
    let args = [
        "--keep-in-foreground".to_string(),
        "--conf-file=/dev/null".to_string(),
        "--port=0".to_string(),
        "--no-resolv".to_string(),
        "--no-hosts".to_string(),
        format!("--interface={bridge}"),
        "--bind-interfaces".to_string(),
        format!("--dhcp-range={},{},255.255.255.0,1h", range.0, range.1),
        format!("--dhcp-option=option:router,{router}"),
        "--dhcp-authoritative".to_string(),
        format!("--dhcp-leasefile={}", dir.join("dnsmasq.leases").display()),
        format!("--pid-file={}", pid_file.display()),
        "--user=root".to_string(),
        "--log-facility=-".to_string(),
        "--log-dhcp".to_string(),
    ];
    let mut d = Daemon::spawn("dnsmasq", ns, &bin, &args, dir.join("dnsmasq.log"));
    // dnsmasq writes its pid file once its sockets are bound.
    d.wait_ready(|| std::fs::read_to_string(&pid_file).is_ok_and(|s| !s.trim().is_empty()));
    let written = std::fs::read_to_string(&pid_file).expect("read dnsmasq's pid file");
    assert_eq!(
        written.trim(),
        d.pid().to_string(),
        "dnsmasq's pid file is not the process we started"
    );
    d
}

/// The reference dhcp daemon on `socket`, started in `ns` (it enters each container netns
/// by its path, which it can open from there).
fn start_dhcp_daemon(ns: &Netns, socket: &Path, dir: &Path) -> Daemon {
    let bin = Path::new(DHCP_PLUGIN);
    assert!(
        bin.is_file(),
        "{DHCP_PLUGIN} not found: install the Debian package containernetworking-plugins"
    );
    let help = Command::new(bin)
        .args(["daemon", "-h"])
        .output()
        .expect("run dhcp daemon -h");
    let help =
        String::from_utf8_lossy(&help.stderr).into_owned() + &String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("-socketpath"),
        "{DHCP_PLUGIN} daemon has no -socketpath flag, so it would need the machine's /run/cni/dhcp.sock:\n{help}"
    );
    let args = [
        "daemon".to_string(),
        "-socketpath".to_string(),
        socket.display().to_string(),
        "-pidfile".to_string(),
        dir.join("dhcp.pid").display().to_string(),
    ];
    let mut d = Daemon::spawn("dhcp daemon", ns, bin, &args, dir.join("dhcp.log"));
    d.wait_ready(|| socket.exists());
    d
}

/// The addresses dnsmasq's leases file lists (`expiry mac ip name client-id` per line).
fn leased(file: &Path) -> Vec<Ipv4Addr> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect()
}

/// ADD takes its address from dnsmasq through the dhcp daemon, over the container's own
/// interface; the container reaches the bridge; DEL (the dhcp plugin stops and releases
/// the lease) removes the veth pair.
#[test]
fn dhcp_ipam_leases_over_the_container_interface() {
    let net = TestNet::new();
    let bridge_addr = net.subnet.host(1);
    let range = (net.subnet.host(100), net.subnet.host(109));
    // vbridge adopts this bridge; dnsmasq serves on it from the start.
    net.bridge_with_address(&format!("{bridge_addr}/{}", net.subnet.prefix));
    ip::must_run_in(&net.host, &["ip", "link", "set", &net.bridge, "up"]);

    // Dropped after the two processes below (locals drop in reverse order).
    let tmp = TempDir::new();
    let _dnsmasq = start_dnsmasq(&net.host, &net.bridge, range, bridge_addr, tmp.path());
    let socket = tmp.path().join("dhcp.sock");
    let daemon = start_dhcp_daemon(&net.host, &socket, tmp.path());

    let plugin = json!({
        "type": "vbridge", "bridge": net.bridge, "stateDir": net.state_dir(),
        "ipam": {"type": "dhcp", "daemonSocketPath": socket.display().to_string()},
    });
    let rt = net.runtime(net.conflist("1.0.0", vec![plugin]));
    let c = Container::new();

    let res = rt
        .add(&c.att)
        .unwrap_or_else(|e| panic!("ADD with the dhcp IPAM: {e}"));
    let (addr, prefix) = cidr_of(&res);
    assert!(
        (u32::from(range.0)..=u32::from(range.1)).contains(&u32::from(addr)),
        "address {addr} is outside dnsmasq's range {}-{}: {res}",
        range.0,
        range.1
    );
    assert_eq!(prefix, net.subnet.prefix, "{res}");
    assert_eq!(
        gateway_of(&res),
        bridge_addr,
        "gateway is not dnsmasq's router: {res}"
    );
    assert!(
        ip::addrs(&c.ns, "eth0").contains(&(addr, prefix)),
        "eth0 lacks {addr}/{prefix}: {:?}",
        ip::addrs(&c.ns, "eth0")
    );
    let leases = tmp.path().join("dnsmasq.leases");
    assert!(
        leased(&leases).contains(&addr),
        "dnsmasq has no lease of {addr}: {:?}",
        std::fs::read_to_string(&leases)
    );
    assert_eq!(
        ip::bridge_ports(&net.host, &net.bridge).len(),
        1,
        "one host veth on the bridge"
    );
    assert!(
        ip::ping(&c.ns, bridge_addr),
        "the container cannot ping the bridge {bridge_addr}"
    );

    rt.del(&c.att)
        .unwrap_or_else(|e| panic!("DEL with the dhcp IPAM: {e}"));
    // The daemon's lease key is `<container id>/<network>/<ifname>`; its DEL stops the
    // lease's renewals and sends a DHCPRELEASE. dnsmasq's leases file is not checked:
    // behind the reference bridge too, dnsmasq logs no DHCPRELEASE from Debian's daemon
    // (1.1.1) and keeps the lease until it expires.
    let released = format!("{}/{}/eth0: releasing lease", c.id(), net.name);
    assert!(
        daemon.logged(&released),
        "the dhcp daemon did not release the lease ({released:?}):\n{}",
        daemon.log()
    );
    net.assert_links_released(&c);
    let left = ip::veths_after(&net.host, &[], Duration::from_secs(10));
    assert!(left.is_empty(), "host veth left after DEL: {left:?}");
}
