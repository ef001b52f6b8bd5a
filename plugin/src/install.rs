//! `vbridge install`: puts vbridge on a node — the job of the init container in
//! deploy/daemonset.yaml, also usable by hand (`--root /`).
//!
//! Binaries (`vbridge`, `vbridge-ipam`, taken from `--from`, default: the directory of the
//! running executable) go to `<root>/<bin-dir>`; the network list goes to
//! `<root>/<conf-dir>/10-vbridge.conflist`. Every file is written ATOMICALLY: a temp file in
//! the same directory, fsync, chmod, rename over the target, fsync of the directory. An
//! existing binary is never opened for writing, so a runtime exec'ing it at that moment runs
//! either the old or the new file, never a torn one ("text file busy" cannot happen either).
//!
//! Version rule for binaries: an identical file is left alone. Otherwise both files are
//! asked `--version` (first line `<name> X.Y.Z[-pre]`); a target whose version is strictly
//! NEWER than ours is kept, so rolling back a DaemonSet image never downgrades a node
//! that something newer already updated. An older or equal version (a rebuild) is replaced,
//! and so is a target that cannot answer `--version` (a truncated or foreign file). A source
//! binary that cannot state its version is an error: we never install what we cannot
//! identify. The conflist has no version: it is rewritten whenever its content differs.

use std::cmp::Ordering;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use conf::env::CmdArgs;
use conf::ipamconf::IpamConfig;
use conf::netconf::NetConf;
use ipnetwork::IpNetwork;
use serde_json::Value;

use crate::error::{Error, Result};

/// `vbridge install --help`.
pub const USAGE: &str = "\
vbridge install - install vbridge on a node (binaries + network config)

USAGE
  vbridge install --root DIR --pod-cidr CIDR[,CIDR] [options]

  --root DIR            the node's root as mounted here, e.g. /host (\"/\" on the node itself)
  --pod-cidr CIDR       this node's pod subnet(s), comma separated (IPv4 and/or IPv6);
                        or --pod-cidr-file FILE, or the environment variable POD_CIDR
  --bin-dir DIR         CNI plugin directory under the root [/opt/cni/bin]
  --conf-dir DIR        CNI config directory under the root [/etc/cni/net.d]
  --name NAME           network name [vbridge]
  --bridge NAME         bridge interface [cni0]
  --no-ip-masq          do not masquerade pod traffic leaving the pod subnet (ipMasq
                        needs the `nft` command on the node)
  --from DIR            where vbridge and vbridge-ipam are taken from
                        [the directory of this executable]

  Writes <bin-dir>/vbridge, <bin-dir>/vbridge-ipam and <conf-dir>/10-vbridge.conflist,
  each atomically (temp file + fsync + rename); identical files are left alone, and a
  binary whose `--version` is newer than ours is never replaced. CRI runtimes
  (containerd, CRI-O) use the first network config in name order: one that sorts before
  10-vbridge.conflist (e.g. 10-calico.conflist) is warned about on stderr.
";

/// The binaries `install` copies.
pub const BINARIES: [&str; 2] = ["vbridge", "vbridge-ipam"];
/// The conflist file name: runtimes use the first list in name order, so `install` warns
/// about any that sorts before it (`configs_before_ours`).
pub const CONFLIST: &str = "10-vbridge.conflist";

const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";
const DEFAULT_NAME: &str = "vbridge";
const DEFAULT_BRIDGE: &str = "cni0";
/// A binary asked for `--version` is killed after this long.
const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// What to install where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub root: PathBuf,
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub name: String,
    pub bridge: String,
    pub ip_masq: bool,
    /// Source directory of the binaries; `None` = the running executable's directory.
    pub from: Option<PathBuf>,
    pub pod_cidrs: Vec<IpNetwork>,
}

/// A parsed `vbridge install` command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Help,
    Install(Options),
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Unchanged,
    /// The installed binary is newer than ours (versions as reported by `--version`).
    KeptNewer {
        installed: String,
        ours: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    pub path: PathBuf,
    pub outcome: Outcome,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = self.path.display();
        match &self.outcome {
            Outcome::Written => write!(f, "wrote {p}"),
            Outcome::Unchanged => write!(f, "unchanged {p}"),
            Outcome::KeptNewer { installed, ours } => {
                write!(f, "kept {p}: installed {installed} is newer than {ours}")
            }
        }
    }
}

/// Parses the arguments after `install`. `pod_cidr_env` is `$POD_CIDR`. Usage errors are
/// returned as the message to show.
pub fn parse_args(
    args: &[String],
    pod_cidr_env: Option<String>,
) -> std::result::Result<Invocation, String> {
    let mut root = None;
    let mut cidr_arg = None;
    let mut cidr_file = None;
    let mut opts = Options {
        root: PathBuf::new(),
        bin_dir: PathBuf::from(DEFAULT_BIN_DIR),
        conf_dir: PathBuf::from(DEFAULT_CONF_DIR),
        name: DEFAULT_NAME.to_string(),
        bridge: DEFAULT_BRIDGE.to_string(),
        ip_masq: true,
        from: None,
        pod_cidrs: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        match flag {
            "-h" | "--help" => return Ok(Invocation::Help),
            "--no-ip-masq" => {
                opts.ip_masq = false;
                continue;
            }
            _ => {}
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--root" => root = Some(PathBuf::from(value()?)),
            "--pod-cidr" => cidr_arg = Some(value()?),
            "--pod-cidr-file" => cidr_file = Some(PathBuf::from(value()?)),
            "--bin-dir" => opts.bin_dir = PathBuf::from(value()?),
            "--conf-dir" => opts.conf_dir = PathBuf::from(value()?),
            "--name" => opts.name = value()?,
            "--bridge" => opts.bridge = value()?,
            "--from" => opts.from = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    opts.root = root.ok_or("--root is required (use --root / to install on this machine)")?;
    let text = match (cidr_arg, cidr_file, pod_cidr_env) {
        (Some(c), _, _) => c,
        (None, Some(f), _) => {
            fs::read_to_string(&f).map_err(|e| format!("--pod-cidr-file {}: {e}", f.display()))?
        }
        (None, None, Some(e)) if !e.trim().is_empty() => e,
        _ => return Err("no pod CIDR: give --pod-cidr, --pod-cidr-file or POD_CIDR".into()),
    };
    opts.pod_cidrs = parse_cidrs(&text)?;
    for (flag, dir) in [("--bin-dir", &opts.bin_dir), ("--conf-dir", &opts.conf_dir)] {
        if dir.components().any(|c| c == Component::ParentDir) {
            return Err(format!("{flag} {} must not contain \"..\"", dir.display()));
        }
    }
    Ok(Invocation::Install(opts))
}

/// "10.244.1.0/24,fd00:10:244:1::/64" → networks; host bits and tiny subnets are refused.
fn parse_cidrs(text: &str) -> std::result::Result<Vec<IpNetwork>, String> {
    let mut out: Vec<IpNetwork> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let net: IpNetwork = part
            .parse()
            .map_err(|e| format!("pod CIDR {part:?}: {e}"))?;
        if net.network() != net.ip() {
            return Err(format!(
                "pod CIDR {part:?} has host bits set; did you mean {}/{}?",
                net.network(),
                net.prefix()
            ));
        }
        let max_prefix = if net.is_ipv4() { 30 } else { 126 };
        if net.prefix() > max_prefix {
            return Err(format!(
                "pod CIDR {part:?} is too small: a gateway and at least one pod need /{max_prefix} or larger"
            ));
        }
        if out.iter().any(|o| o.is_ipv4() == net.is_ipv4()) {
            return Err(format!(
                "pod CIDR {part:?}: give at most one IPv4 and one IPv6 subnet"
            ));
        }
        out.push(net);
    }
    if out.is_empty() {
        return Err("the pod CIDR is empty".into());
    }
    Ok(out)
}

/// The network list for the node: vbridge (gateway, default route, masquerade, hairpin
/// for Services that send a pod to itself) + portmap for hostPorts. cniVersion 1.0.0: what
/// containerd 1.6/1.7 and CRI-O speak, and the newest Debian's portmap accepts. Rendered
/// by hand so the keys keep a reader's order ("type" first); validated by parsing it back.
pub fn conflist_text(opts: &Options) -> Result<String> {
    let quote = |s: &str| Value::String(s.to_string()).to_string();
    let ranges: Vec<String> = opts
        .pod_cidrs
        .iter()
        .map(|n| format!("[{{ \"subnet\": {} }}]", quote(&n.to_string())))
        .collect();
    let text = format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": {name},
  "plugins": [
    {{
      "type": "vbridge",
      "bridge": {bridge},
      "isGateway": true,
      "isDefaultGateway": true,
      "ipMasq": {masq},
      "hairpinMode": true,
      "ipam": {{
        "type": "vbridge-ipam",
        "ranges": [{ranges}]
      }}
    }},
    {{ "type": "portmap", "capabilities": {{ "portMappings": true }} }}
  ]
}}
"#,
        name = quote(&opts.name),
        bridge = quote(&opts.bridge),
        masq = opts.ip_masq,
        ranges = ranges.join(", "),
    );
    let list: Value = serde_json::from_str(&text)
        .map_err(|e| conf::Error::config(format!("generated conflist is not JSON: {e}")))?;
    validate(&list)?;
    Ok(text)
}

/// [`conflist_text`] as JSON.
pub fn conflist(opts: &Options) -> Result<Value> {
    let text = conflist_text(opts)?;
    serde_json::from_str(&text)
        .map_err(|e| conf::Error::config(format!("generated conflist is not JSON: {e}")).into())
}

/// Runs the list's vbridge entry through the plugin's own config checks.
fn validate(list: &Value) -> Result<()> {
    let mut flat = list["plugins"][0].clone();
    flat["name"] = list["name"].clone();
    flat["cniVersion"] = list["cniVersion"].clone();
    let (common, conf, _) = NetConf::parse(flat.to_string().as_bytes())?;
    // What an ADD would refuse: the conflist is written for ADDs.
    crate::verbs::addable(&conf)?;
    if let Some(ipam) = &conf.ipam {
        IpamConfig::from_section(&common.name, ipam, &conf, &CmdArgs::default())?
            .validate_for_add()?;
    }
    Ok(())
}

/// Installs the binaries and the conflist; returns what happened to each file.
pub fn install(opts: &Options) -> Result<Vec<Action>> {
    let text = conflist_text(opts)?;
    let from = match &opts.from {
        Some(dir) => dir.clone(),
        None => exe_dir()?,
    };
    let bin_dir = under_root(&opts.root, &opts.bin_dir);
    let conf_dir = under_root(&opts.root, &opts.conf_dir);
    for dir in [&bin_dir, &conf_dir] {
        fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    }
    let _one_at_a_time = lock_dir(&bin_dir, INSTALL_LOCK_WAIT)?;
    let mut actions = Vec::new();
    for name in BINARIES {
        let dest = bin_dir.join(name);
        let outcome = install_binary(&from.join(name), &dest)?;
        actions.push(Action {
            path: dest,
            outcome,
        });
    }
    let dest = conf_dir.join(CONFLIST);
    let outcome = if read_if_exists(&dest)?.as_deref() == Some(text.as_bytes()) {
        Outcome::Unchanged
    } else {
        write_atomic(&dest, text.as_bytes(), 0o644)?;
        Outcome::Written
    };
    actions.push(Action {
        path: dest,
        outcome,
    });
    Ok(actions)
}

/// Network config files in the runtime's config dir that sort before ours: libcni lists
/// `*.conf`, `*.conflist` and `*.json` files in name order and CRI runtimes (containerd,
/// CRI-O) take the first, so any of these leaves vbridge's list unused there.
pub fn configs_before_ours(opts: &Options) -> Vec<String> {
    let dir = under_root(&opts.root, &opts.conf_dir);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_type().ok()?.is_file().then_some(())?;
            e.file_name().into_string().ok()
        })
        .filter(|n| {
            [".conf", ".conflist", ".json"]
                .iter()
                .any(|x| n.ends_with(x))
                && n.as_str() < CONFLIST
        })
        .collect();
    names.sort();
    names
}

/// Longer than any install takes (two `--version` queries of at most 5 s each).
const INSTALL_LOCK_WAIT: Duration = Duration::from_secs(60);

/// Installers writing the same node (a DaemonSet rollout overlapping the old and the new
/// pod's init container) take turns: each compares versions and then writes, and two
/// interleaved could both see the old binary and the older one write last, a downgrade.
/// The flock is on the directory itself, so no lock file appears among the plugins.
fn lock_dir(dir: &Path, wait: Duration) -> Result<File> {
    let f = File::open(dir).map_err(|e| Error::io(format!("cannot open {}", dir.display()), e))?;
    match ipam::store::fsio::lock_exclusive_within(&f, wait) {
        Ok(true) => Ok(f),
        Ok(false) => Err(Error::LockTimeout(format!(
            "another install held {} for {} s",
            dir.display(),
            wait.as_secs()
        ))),
        Err(e) => Err(Error::io(format!("cannot lock {}", dir.display()), e)),
    }
}

fn exe_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("cannot find this executable (use --from)", e))?;
    Ok(exe.parent().map(Path::to_path_buf).unwrap_or_default())
}

/// `root` + `dir` with `dir`'s leading `/` dropped (`Path::join` would discard the root).
fn under_root(root: &Path, dir: &Path) -> PathBuf {
    let rel: PathBuf = dir
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    root.join(rel)
}

/// Copies one binary by the version rule of the module doc.
fn install_binary(src: &Path, dest: &Path) -> Result<Outcome> {
    let bytes = fs::read(src).map_err(|e| {
        Error::io(
            format!("cannot read {} (is --from right?)", src.display()),
            e,
        )
    })?;
    if read_if_exists(dest)?.as_deref() == Some(bytes.as_slice()) {
        return Ok(Outcome::Unchanged);
    }
    let ours = binary_version(src).ok_or_else(|| {
        Error::io(
            format!("cannot install {}", src.display()),
            std::io::Error::other("it does not report a version with --version"),
        )
    })?;
    if dest.exists() {
        if let Some(installed) = binary_version(dest) {
            if installed.cmp(&ours) == Ordering::Greater {
                return Ok(Outcome::KeptNewer {
                    installed: installed.to_string(),
                    ours: ours.to_string(),
                });
            }
        }
    }
    write_atomic(dest, &bytes, 0o755)?;
    Ok(Outcome::Written)
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

/// Temp file in the same directory (same filesystem, so the rename is atomic), fsync,
/// chmod, rename, fsync the directory so the new entry survives a crash.
fn write_atomic(dest: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    remove_stale_temps(dir, &name, STALE_TEMP_AGE);
    let tmp = dir.join(temp_name(&name, &unique_suffix()));
    let io = |what: &str, e| Error::io(format!("{what} {}", tmp.display()), e);
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io("cannot create", e))?;
        f.write_all(bytes).map_err(|e| io("cannot write", e))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| io("cannot chmod", e))?;
        f.sync_all().map_err(|e| io("cannot fsync", e))?;
        fs::rename(&tmp, dest).map_err(|e| {
            Error::io(
                format!("cannot rename {} to {}", tmp.display(), dest.display()),
                e,
            )
        })
    })();
    if written.is_err() {
        // Best effort: a leftover is also removed by the next run.
        fs::remove_file(&tmp).ok();
        return written;
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot fsync {}", dir.display()), e))
}

/// `.<name>.vbridge-install.<suffix>`: hidden, and with no `.conf`/`.conflist`/`.json`
/// ending, so neither CNI config loaders nor plugin lookups ever pick it up.
fn temp_name(name: &str, suffix: &str) -> String {
    format!(".{name}.vbridge-install.{suffix}")
}

/// PID and clock: installers in separate containers (a DaemonSet rollout overlaps the old
/// and the new pod's init container) write to the same host directory, and each may be
/// PID 1 of its own namespace.
fn unique_suffix() -> String {
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:x}-{n}", std::process::id())
}

/// An install writes a temp file for well under a second; one this old was left by an
/// install killed before its rename. Younger ones may be a concurrent installer's.
const STALE_TEMP_AGE: Duration = Duration::from_secs(600);

/// Temp files, older than `age`, of installs killed before their rename.
fn remove_stale_temps(dir: &Path, name: &str, age: Duration) {
    let prefix = format!(".{name}.vbridge-install.");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|e| e >= age);
        if old {
            fs::remove_file(entry.path()).ok();
        }
    }
}

/// `X.Y.Z[-pre][+build]`, ordered like SemVer (a pre-release sorts before its release;
/// pre-release tags compare as text, enough for our own `-rc.N` style).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub core: [u64; 3],
    pub pre: Option<String>,
    text: String,
}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let text = s.trim().trim_start_matches('v');
        let no_build = text.split('+').next().unwrap_or("");
        let (core, pre) = match no_build.split_once('-') {
            Some((c, p)) => (c, Some(p.to_string())),
            None => (no_build, None),
        };
        let parts: Vec<u64> = core
            .split('.')
            .map(|p| p.parse().ok())
            .collect::<Option<_>>()?;
        let core: [u64; 3] = parts.try_into().ok()?;
        Some(Version {
            core,
            pre,
            text: text.to_string(),
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The version a binary reports: runs `BIN --version` with an empty environment (a CNI
/// plugin that ignores arguments then just prints its "about" line and exits) and reads
/// the second word of the first line. `None` if it cannot run or says something else.
pub fn binary_version(bin: &Path) -> Option<Version> {
    let mut child = Command::new(bin)
        .arg("--version")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + VERSION_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) if Instant::now() > deadline => {
                child.kill().ok();
                child.wait().ok();
                return None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    let first = out.lines().next()?;
    let mut words = first.split_whitespace();
    let name = words.next()?;
    let expected = bin.file_name().map(OsString::from);
    // The name must match the file's, so a stray binary's version is never trusted.
    if expected.as_deref() != Some(std::ffi::OsStr::new(name)) {
        return None;
    }
    Version::parse(words.next()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let p = std::env::temp_dir()
                .join(format!("vbridge-install-test-{}-{tag}", std::process::id()));
            fs::remove_dir_all(&p).ok();
            fs::create_dir_all(&p).expect("mkdir");
            Tmp(p)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            fs::remove_dir_all(&self.0).ok();
        }
    }

    /// A fake binary: a shell script answering `--version` with `<name> <version>`.
    fn fake_bin(dir: &Path, name: &str, version: &str) -> PathBuf {
        fs::create_dir_all(dir).expect("mkdir");
        let p = dir.join(name);
        let body = format!("#!/bin/sh\necho \"{name} {version}\"\n");
        fs::write(&p, body).expect("write fake");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    fn source(t: &Tmp, version: &str) -> PathBuf {
        let dir = t.0.join(format!("src-{version}"));
        for b in BINARIES {
            fake_bin(&dir, b, version);
        }
        dir
    }

    fn opts(t: &Tmp, from: &Path) -> Options {
        match parse_args(
            &args(&[
                "--root",
                &t.0.join("root").display().to_string(),
                "--pod-cidr",
                "10.244.1.0/24",
            ]),
            None,
        ) {
            Ok(Invocation::Install(mut o)) => {
                o.from = Some(from.to_path_buf());
                o
            }
            other => panic!("{other:?}"),
        }
    }

    fn outcomes(a: &[Action]) -> Vec<Outcome> {
        a.iter().map(|x| x.outcome.clone()).collect()
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .expect("readdir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    }

    #[test]
    fn parses_flags_defaults_and_cidr_sources() {
        let o = match parse_args(
            &args(&["--root=/host", "--pod-cidr", "10.244.0.0/24"]),
            None,
        ) {
            Ok(Invocation::Install(o)) => o,
            other => panic!("{other:?}"),
        };
        assert_eq!(o.root, PathBuf::from("/host"));
        assert_eq!(o.bin_dir, PathBuf::from("/opt/cni/bin"));
        assert_eq!(o.conf_dir, PathBuf::from("/etc/cni/net.d"));
        assert_eq!((o.name.as_str(), o.bridge.as_str()), ("vbridge", "cni0"));
        assert!(o.ip_masq);
        match parse_args(
            &args(&["--root", "/", "--no-ip-masq", "--pod-cidr", "10.0.0.0/8"]),
            None,
        ) {
            Ok(Invocation::Install(o)) => {
                assert!(!o.ip_masq);
                assert_eq!(conflist(&o).expect("list")["plugins"][0]["ipMasq"], false);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(o.pod_cidrs.len(), 1);
        // Environment as the last resort; flag beats env.
        let env = Some("10.9.0.0/24,fd00:9::/64".to_string());
        match parse_args(&args(&["--root", "/"]), env.clone()) {
            Ok(Invocation::Install(o)) => assert_eq!(o.pod_cidrs.len(), 2),
            other => panic!("{other:?}"),
        }
        match parse_args(&args(&["--root", "/", "--pod-cidr", "10.1.0.0/16"]), env) {
            Ok(Invocation::Install(o)) => assert_eq!(o.pod_cidrs[0].to_string(), "10.1.0.0/16"),
            other => panic!("{other:?}"),
        }
        let t = Tmp::new("cidrfile");
        let f = t.0.join("cidr");
        fs::write(&f, "10.7.0.0/24\n").expect("write");
        match parse_args(
            &args(&["--root", "/", "--pod-cidr-file", &f.display().to_string()]),
            None,
        ) {
            Ok(Invocation::Install(o)) => assert_eq!(o.pod_cidrs[0].to_string(), "10.7.0.0/24"),
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_args(&args(&["--help"]), None), Ok(Invocation::Help));
    }

    #[test]
    fn rejects_bad_usage() {
        for (a, needle) in [
            (vec!["--pod-cidr", "10.0.0.0/24"], "--root"),
            (vec!["--root", "/"], "no pod CIDR"),
            (
                vec!["--root", "/", "--pod-cidr", "10.0.0.5/24"],
                "host bits",
            ),
            (
                vec!["--root", "/", "--pod-cidr", "10.0.0.0/31"],
                "too small",
            ),
            (vec!["--root", "/", "--pod-cidr", "nope"], "nope"),
            (
                vec!["--root", "/", "--pod-cidr", "10.0.0.0/24,10.1.0.0/24"],
                "at most one",
            ),
            (
                vec![
                    "--root",
                    "/",
                    "--pod-cidr",
                    "10.0.0.0/24",
                    "--bin-dir",
                    "/a/../b",
                ],
                "..",
            ),
            (
                vec!["--root", "/", "--pod-cidr", "10.0.0.0/24", "--bogus"],
                "--bogus",
            ),
            (vec!["--root"], "needs a value"),
        ] {
            let e = parse_args(&args(&a), None).expect_err(&format!("{a:?}"));
            assert!(e.contains(needle), "{a:?}: {e}");
        }
    }

    #[test]
    fn bad_name_or_bridge_fail_validation() {
        let t = Tmp::new("validate");
        let mut o = opts(&t, &t.0);
        o.bridge = "a-name-longer-than-15".into();
        assert!(conflist(&o).is_err());
        let mut o = opts(&t, &t.0);
        o.name = "../etc".into();
        assert!(conflist(&o).is_err());
    }

    #[test]
    fn warns_of_configs_the_runtime_would_use_instead() {
        let t = Tmp::new("shadowed");
        let o = opts(&t, &source(&t, "0.1.0"));
        install(&o).expect("install");
        let dir = t.0.join("root/etc/cni/net.d");
        for n in [
            "05-cilium.conflist",
            "10-calico.conflist",
            "99-loopback.conf",
            "00-notes.txt",
        ] {
            fs::write(dir.join(n), "{}").expect("write");
        }
        fs::create_dir(dir.join("01-backup.conf")).expect("a directory libcni skips");
        assert_eq!(
            configs_before_ours(&o),
            ["05-cilium.conflist", "10-calico.conflist"]
        );
    }

    #[test]
    fn installs_files_with_modes_and_valid_conflist() {
        let t = Tmp::new("fresh");
        let src = source(&t, "0.1.0");
        let o = opts(&t, &src);
        let actions = install(&o).expect("install");
        assert_eq!(outcomes(&actions), vec![Outcome::Written; 3]);
        let bin = t.0.join("root/opt/cni/bin");
        for b in BINARIES {
            let meta = fs::metadata(bin.join(b)).expect("installed");
            assert_eq!(meta.mode() & 0o7777, 0o755, "{b}");
            assert_eq!(fs::read(bin.join(b)).ok(), fs::read(src.join(b)).ok());
        }
        let conf = t.0.join("root/etc/cni/net.d").join(CONFLIST);
        assert_eq!(
            fs::metadata(&conf).expect("conflist").mode() & 0o7777,
            0o644
        );
        let v: Value = serde_json::from_slice(&fs::read(&conf).expect("read")).expect("json");
        assert_eq!(v["plugins"][0]["type"], "vbridge");
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.244.1.0/24"
        );
        assert_eq!(v["plugins"][1]["type"], "portmap");
        assert!(leftovers(&bin).is_empty() && leftovers(conf.parent().expect("dir")).is_empty());
    }

    #[test]
    fn idempotent() {
        let t = Tmp::new("idem");
        let src = source(&t, "0.1.0");
        let o = opts(&t, &src);
        install(&o).expect("first");
        let ino = fs::metadata(t.0.join("root/opt/cni/bin/vbridge"))
            .expect("m")
            .ino();
        let again = install(&o).expect("second");
        assert_eq!(outcomes(&again), vec![Outcome::Unchanged; 3]);
        let ino2 = fs::metadata(t.0.join("root/opt/cni/bin/vbridge"))
            .expect("m")
            .ino();
        assert_eq!(ino, ino2, "an identical file must not be rewritten");
    }

    #[test]
    fn replaces_by_rename_never_in_place() {
        let t = Tmp::new("atomic");
        let old = source(&t, "0.1.0");
        install(&opts(&t, &old)).expect("old");
        let dest = t.0.join("root/opt/cni/bin/vbridge");
        // A process that has the old binary open (as a running exec does) keeps its bytes.
        let mut held = File::open(&dest).expect("open old");
        let ino = fs::metadata(&dest).expect("m").ino();
        let new = source(&t, "0.2.0");
        let actions = install(&opts(&t, &new)).expect("new");
        assert_eq!(actions[0].outcome, Outcome::Written);
        assert_ne!(
            fs::metadata(&dest).expect("m").ino(),
            ino,
            "must be a new inode"
        );
        let mut before = String::new();
        held.read_to_string(&mut before).expect("read held");
        assert!(
            before.contains("0.1.0"),
            "old file changed under its reader"
        );
        assert_eq!(
            binary_version(&dest).map(|v| v.to_string()),
            Some("0.2.0".into())
        );
        assert!(leftovers(dest.parent().expect("dir")).is_empty());
    }

    #[test]
    fn never_replaces_a_newer_binary() {
        let t = Tmp::new("newer");
        install(&opts(&t, &source(&t, "0.3.0"))).expect("newer first");
        let actions = install(&opts(&t, &source(&t, "0.2.9"))).expect("older");
        assert_eq!(
            actions[0].outcome,
            Outcome::KeptNewer {
                installed: "0.3.0".into(),
                ours: "0.2.9".into()
            }
        );
        let dest = t.0.join("root/opt/cni/bin/vbridge-ipam");
        assert_eq!(
            binary_version(&dest).map(|v| v.to_string()),
            Some("0.3.0".into())
        );
        // A pre-release of the installed version is older too; the release replaces it.
        let t = Tmp::new("pre");
        install(&opts(&t, &source(&t, "0.3.0-rc.1"))).expect("rc");
        let actions = install(&opts(&t, &source(&t, "0.3.0"))).expect("release");
        assert_eq!(actions[0].outcome, Outcome::Written);
    }

    #[test]
    fn replaces_a_target_without_a_version_but_refuses_such_a_source() {
        let t = Tmp::new("junk");
        let bin = t.0.join("root/opt/cni/bin");
        fs::create_dir_all(&bin).expect("mkdir");
        fs::write(bin.join("vbridge"), b"\x7fELF truncated").expect("junk");
        let actions = install(&opts(&t, &source(&t, "0.1.0"))).expect("install");
        assert_eq!(actions[0].outcome, Outcome::Written);
        let bad = t.0.join("badsrc");
        fake_bin(&bad, "vbridge", "not-a-version");
        fake_bin(&bad, "vbridge-ipam", "0.1.0");
        assert!(install(&opts(&t, &bad)).is_err());
    }

    #[test]
    fn stale_temp_files_are_removed_and_a_concurrent_installers_kept() {
        let t = Tmp::new("stale");
        let bin = t.0.join("root/opt/cni/bin");
        fs::create_dir_all(&bin).expect("mkdir");
        let stale = bin.join(temp_name("vbridge", "1-0"));
        fs::write(&stale, b"half").expect("stale");
        let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&stale)
            .and_then(|f| f.set_modified(hour_ago))
            .expect("age it");
        let busy = bin.join(temp_name("vbridge-ipam", "1-1"));
        fs::write(&busy, b"being written").expect("concurrent");
        install(&opts(&t, &source(&t, "0.1.0"))).expect("install");
        assert_eq!(
            leftovers(&bin),
            [busy
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()],
            "only the fresh temp file stays"
        );
        assert_ne!(
            unique_suffix(),
            unique_suffix(),
            "PID 1 twice still differs"
        );
    }

    #[test]
    fn installs_take_turns() {
        let t = Tmp::new("turns");
        let bin = t.0.join("root/opt/cni/bin");
        fs::create_dir_all(&bin).expect("mkdir");
        let other = lock_dir(&bin, Duration::from_secs(1)).expect("lock");
        let o = opts(&t, &source(&t, "0.1.0"));
        let (tx, rx) = std::sync::mpsc::channel();
        let installer = std::thread::spawn(move || tx.send(install(&o).map(|a| a.len())));
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "installed while another install held the directory"
        );
        drop(other);
        let done = rx.recv_timeout(Duration::from_secs(10)).expect("finished");
        assert_eq!(done.expect("install"), 3);
        installer.join().expect("join").expect("send");
        let e = {
            let _held = lock_dir(&bin, Duration::from_secs(1)).expect("lock");
            lock_dir(&bin, Duration::from_millis(50)).expect_err("times out")
        };
        assert_eq!(e.code(), conf::ErrorCode::TryAgainLater);
    }

    #[test]
    fn versions_order() {
        let v = |s: &str| Version::parse(s).expect(s);
        assert!(v("0.10.0") > v("0.9.9"));
        assert!(v("1.0.0") > v("1.0.0-rc.1"));
        assert_eq!(v("1.2.3+build5").cmp(&v("1.2.3")), Ordering::Equal);
        assert!(Version::parse("1.2").is_none() && Version::parse("x").is_none());
    }

    #[test]
    fn the_real_binary_reports_its_version() {
        // The format `binary_version` relies on is main.rs's `--version` line.
        let line = format!("vbridge {}", env!("CARGO_PKG_VERSION"));
        let v = line.split_whitespace().nth(1).and_then(Version::parse);
        assert_eq!(
            v.map(|v| v.to_string()),
            Some(env!("CARGO_PKG_VERSION").to_string())
        );
    }

    /// The install step of deploy/daemonset.yaml, flags and POD_CIDR as the DaemonSet
    /// gives them, run against a temp root: binaries and the conflist land under it.
    #[test]
    fn daemonset_command_line_installs_under_its_root() {
        let yaml = include_str!("../../deploy/daemonset.yaml");
        let flags: Vec<String> = yaml
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != "- install")
            .skip(1)
            .map_while(|l| l.strip_prefix("- --"))
            .map(|f| format!("--{f}"))
            .collect();
        assert!(flags.iter().any(|f| f == "--root=/host"), "{flags:?}");
        let t = Tmp::new("daemonset");
        let root = t.0.join("host");
        let flags: Vec<String> = flags
            .into_iter()
            .map(|f| match f.as_str() {
                "--root=/host" => format!("--root={}", root.display()),
                _ => f,
            })
            .collect();
        let refs: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut o = match parse_args(&args(&refs), Some("10.244.0.0/24".into())) {
            Ok(Invocation::Install(o)) => o,
            other => panic!("{flags:?}: {other:?}"),
        };
        o.from = Some(source(&t, "9.9.9"));
        install(&o).expect("install");
        for b in BINARIES {
            assert!(root.join("opt/cni/bin").join(b).is_file(), "{b}");
        }
        let written = fs::read_to_string(root.join("etc/cni/net.d").join(CONFLIST))
            .expect("conflist under the root");
        assert!(written.contains("10.244.0.0/24"), "{written}");
    }

    #[test]
    fn kind_example_is_what_install_writes() {
        let t = Tmp::new("kind");
        let mut o = opts(&t, &t.0);
        o.pod_cidrs = parse_cidrs("10.244.0.0/24").expect("cidr");
        let example = include_str!("../../examples/kind.conflist");
        assert_eq!(conflist_text(&o).expect("conflist"), example);
    }

    #[test]
    fn dual_stack_and_odd_names_render_valid_json() {
        let t = Tmp::new("dual");
        let mut o = opts(&t, &t.0);
        o.pod_cidrs = parse_cidrs("10.244.1.0/24, fd00:10:244:1::/64").expect("cidrs");
        o.name = "k8s-pod-network.v1".into();
        let v = conflist(&o).expect("conflist");
        assert_eq!(v["name"], "k8s-pod-network.v1");
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][1][0]["subnet"],
            "fd00:10:244:1::/64"
        );
    }

    #[test]
    fn under_root_keeps_the_root() {
        assert_eq!(
            under_root(Path::new("/host"), Path::new("/opt/cni/bin")),
            PathBuf::from("/host/opt/cni/bin")
        );
    }
}
