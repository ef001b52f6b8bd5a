//! Podman 4 with its CNI backend, confined to a test's world.
//!
//! Everything podman touches is private to one [`Podman`]: its `CONTAINERS_CONF` (runc,
//! cgroupfs, file events, rlimits below this host's hard limits, `network_backend = "cni"`),
//! a CNI plugin dir holding symlinks to the built vbridge binaries and Debian's chained
//! plugins, a network config dir, and the image store (`--root`, `--runroot`, `tmp_dir`), all
//! under the world's temp dir. Podman runs as `nsenter --net=<fake host> podman ...`, so the
//! bridge, host veths, firewall rules and `-p` listeners live in the fake host netns.
//! Left outside: libcni's result cache in /var/lib/cni/results (one file per attachment,
//! removed by `podman rm`), the per-container netns under /run/netns (removed likewise) and
//! containers/image's blob-info cache in /var/lib/containers/cache.
//!
//! The image is a busybox rootfs (Debian's busybox-static, relative applet symlinks) imported
//! into each private store: about 0.5 s, cheaper than sharing a store between tests.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::exec::Output;
use crate::fixture::TestNet;
use crate::ip::to_output;
use crate::netns::{Netns, NetnsGuard};
use crate::paths;

/// The image every test container runs.
pub const IMAGE: &str = "localhost/vbridge-busybox:latest";

/// Debian's static busybox, the only binary inside [`IMAGE`].
const BUSYBOX: &str = "/bin/busybox";

/// Chained plugins linked into the private plugin dir next to vbridge.
const CHAINED: &[&str] = &["portmap", "firewall", "tuning", "bandwidth", "loopback"];

/// Podman commands are killed after this many seconds.
const TIMEOUT_SECS: &str = "180";

/// Panics with an install hint unless podman, runc, conmon and a static busybox exist.
pub fn require_podman() {
    for tool in ["podman", "runc", "conmon", "nsenter", "tar", "timeout"] {
        assert!(
            which(tool).is_some(),
            "{tool} not found in PATH: the podman tests need Debian's podman, runc, conmon and \
             busybox-static (run scripts/install-deps as root)"
        );
    }
    assert!(
        Path::new(BUSYBOX).is_file(),
        "{BUSYBOX} not found: install busybox-static (scripts/install-deps)"
    );
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// A private podman inside one [`TestNet`].
pub struct Podman {
    pub net: TestNet,
    root: PathBuf,
}

impl Podman {
    /// Writes the private config and plugin dir and imports [`IMAGE`]. Panics (with an
    /// install hint) when podman is missing.
    pub fn new(net: TestNet) -> Podman {
        require_podman();
        let root = net.tmp.path().join("podman");
        let p = Podman { net, root };
        for dir in ["plugins", "net.d", "store", "run", "tmp"] {
            fs::create_dir_all(p.root.join(dir)).expect("create podman dirs");
        }
        p.link_plugins();
        fs::write(p.containers_conf(), p.containers_conf_text()).expect("write containers.conf");
        p.import_image();
        p
    }

    /// The `CONTAINERS_CONF` file.
    pub fn containers_conf(&self) -> PathBuf {
        self.root.join("containers.conf")
    }

    /// `cni_plugin_dirs` (the only one).
    pub fn plugin_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// `network_config_dir`.
    pub fn conf_dir(&self) -> PathBuf {
        self.root.join("net.d")
    }

    /// Writes `conflist` as `<conf dir>/<name>.conflist`, where podman finds networks.
    pub fn add_network(&self, conflist: &Value) {
        let name = conflist["name"].as_str().expect("conflist name");
        let text = serde_json::to_string_pretty(conflist).expect("serialise conflist");
        fs::write(self.conf_dir().join(format!("{name}.conflist")), text).expect("write conflist");
    }

    fn link_plugins(&self) {
        let dir = self.plugin_dir();
        for bin in [paths::vbridge(), paths::vbridge_ipam()] {
            let name = bin.file_name().expect("binary name");
            let target = fs::canonicalize(&bin).expect("canonicalize binary");
            symlink(target, dir.join(name)).expect("link vbridge binary");
        }
        for name in CHAINED {
            let target = Path::new(paths::REFERENCE_DIR).join(name);
            assert!(
                target.is_file(),
                "{} missing: install containernetworking-plugins (scripts/install-deps)",
                target.display()
            );
            symlink(target, dir.join(name)).expect("link chained plugin");
        }
    }

    fn containers_conf_text(&self) -> String {
        let r = self.root.display();
        format!(
            r#"# Private podman config of one vbridge integration test.
[engine]
cgroup_manager = "cgroupfs"     # no systemd on test hosts
events_logger = "file"
runtime = "runc"                # crun 1.8 refuses hybrid cgroup hosts
tmp_dir = "{r}/tmp"

[network]
network_backend = "cni"
cni_plugin_dirs = ["{r}/plugins"]
network_config_dir = "{r}/net.d"

[containers]
# podman's rootful defaults exceed the hard limits of hosts without CAP_SYS_RESOURCE.
default_ulimits = ["nofile=16384:16384", "nproc=32768:32768"]
"#
        )
    }

    /// Builds the busybox rootfs tar in the temp dir and imports it.
    fn import_image(&self) {
        let rootfs = self.root.join("rootfs");
        let bin = rootfs.join("bin");
        for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
            fs::create_dir_all(rootfs.join(d)).expect("create rootfs");
        }
        fs::copy(BUSYBOX, bin.join("busybox")).expect("copy busybox");
        let list = Command::new(BUSYBOX)
            .arg("--list")
            .output()
            .expect("busybox --list");
        for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
            if applet != "busybox" {
                // Relative: an absolute link would point outside the image.
                symlink("busybox", bin.join(applet)).expect("link applet");
            }
        }
        let tar = self.root.join("rootfs.tar");
        let out = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .expect("spawn tar");
        assert!(out.status.success(), "tar rootfs failed");
        let tar = tar.display().to_string();
        self.must(&[
            "import",
            "--change",
            r#"CMD ["/bin/sh"]"#,
            "--change",
            "ENV PATH=/bin",
            &tar,
            IMAGE,
        ]);
        fs::remove_dir_all(&rootfs).expect("remove rootfs");
    }

    /// `podman ARGS` inside the fake host netns with the private config and store.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("timeout")
            .args(["-k", "5", TIMEOUT_SECS, "nsenter"])
            .arg(format!("--net={}", self.net.host.path_str()))
            .arg("podman")
            .arg("--root")
            .arg(self.root.join("store"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args(args)
            .env("CONTAINERS_CONF", self.containers_conf())
            .output()
            .expect("spawn podman");
        to_output(out)
    }

    /// Like [`Podman::run`] but panics with the output unless podman succeeds.
    pub fn must(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.success(), "podman {}: {out}", args.join(" "));
        out
    }

    /// `podman inspect --format FORMAT NAME`, trimmed.
    pub fn inspect(&self, name: &str, format: &str) -> String {
        self.must(&["inspect", "--format", format, name])
            .stdout
            .trim()
            .to_string()
    }

    /// The container's address on the network `net` (from podman's view of the result).
    pub fn address(&self, name: &str, net: &str) -> String {
        self.inspect(
            name,
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
        )
    }
}

/// `GET path` over HTTP/1.0 from inside `ns`; returns the whole response (status line,
/// headers, body). Host tools are avoided on purpose: Debian's static busybox `wget`
/// crashes outside a container.
pub fn http_get(ns: &Netns, to: SocketAddr, path: &str) -> io::Result<String> {
    let ns_path = ns.path().to_path_buf();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {to}\r\n\r\n");
    let worker = thread::spawn(move || -> io::Result<String> {
        let _guard = NetnsGuard::enter_path(&ns_path)?;
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    });
    worker
        .join()
        .map_err(|_| io::Error::other("http client thread panicked"))?
}

impl Drop for Podman {
    /// Removes every container first: conmon and the container processes would otherwise
    /// outlive the test, holding mounts inside the temp dir.
    fn drop(&mut self) {
        let out = self.run(&["rm", "--all", "--force", "--time", "0"]);
        if !out.success() {
            eprintln!("warning: podman rm --all: {out}");
        }
    }
}
