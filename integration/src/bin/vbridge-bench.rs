//! vbridge-bench: vbridge vs the reference `bridge` + `host-local` plugins, side by side, on
//! this machine, printing markdown tables (run it through `scripts/bench`).
//!
//! Every plugin gets its own fake host netns and temp dir; each attachment gets its own
//! container netns, created before any timing starts. Per-op time is the wall time of one
//! plugin process, spawn to exit, as the harness's `exec` sees it (measured with `Instant`
//! around it; the "harness floor" line shows what that path costs for `/bin/true`).
//! A warm-up ADD+DEL runs first, so the once-per-network work (bridge, firewall table) is
//! reported apart as "first ADD". DEL gets the ADD result as `prevResult`, as libcni sends it.
//!
//! Sections: plugin ADD/DEL (sequential and all-at-once batches), IPAM at fill (the IPAM
//! binaries alone with FILL reservations already held), with `MACSPOOF=1` both plugins with
//! `"macspoofchk": true` (the reference programs it with `nft`, vbridge with a port lock)
//! and, with `VLAN=1` / `--vlan`, vbridge ADD on a VLAN network vs without (needs bridge VLAN
//! filtering: run it via `scripts/vm-run`).
//!
//! Environment: `N` sequential ops (50), `M` batch size (40), `FILL` IPAM reservations (5000),
//! `ONLY=vbridge|reference`, `MACSPOOF=1`, `VLAN=1`, `VBRIDGE_BIN_DIR` (where `vbridge`,
//! `vbridge-ipam` are).
//! Needs root. Everything it creates is named `vbt-<pid>-*` and removed on exit, on failure,
//! on Ctrl-C (the run stops at the next op) and on a harness panic (swept by the panic hook).

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use integration::runtime::cni_env;
use integration::tmp::unique_name;
use integration::{exec, ip, paths, Attachment, Container, TestNet};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use serde_json::{json, Value};

/// Subnet of the IPAM-at-fill section (room for the fill plus the timed ops).
const FILL_SUBNET: &str = "10.250.0.0/16";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

type Res<T> = Result<T, String>;

/// A plugin under test: which binary, which IPAM, and the `CNI_PATH` it gets.
struct Plugin {
    label: &'static str,
    bin: PathBuf,
    ipam_bin: PathBuf,
    kind: &'static str,
    ipam: &'static str,
    cni_path: String,
    /// vbridge also takes `stateDir`.
    state_dir: bool,
}

impl Plugin {
    fn reference() -> Plugin {
        let dir = PathBuf::from(paths::REFERENCE_DIR);
        Plugin {
            label: "reference",
            bin: dir.join("bridge"),
            ipam_bin: dir.join("host-local"),
            kind: "bridge",
            ipam: "host-local",
            cni_path: paths::REFERENCE_DIR.to_string(),
            state_dir: false,
        }
    }

    fn vbridge() -> Plugin {
        let dir = paths::bin_dir();
        Plugin {
            label: "vbridge",
            bin: dir.join("vbridge"),
            ipam_bin: dir.join("vbridge-ipam"),
            kind: "vbridge",
            ipam: "vbridge-ipam",
            cni_path: dir.display().to_string(),
            state_dir: true,
        }
    }

    fn check(&self) -> Res<()> {
        match [&self.bin, &self.ipam_bin]
            .into_iter()
            .find(|b| !b.is_file())
        {
            Some(b) => Err(format!(
                "{} not found (build it, or set VBRIDGE_BIN_DIR)",
                b.display()
            )),
            None => Ok(()),
        }
    }
}

/// One timed plugin process.
struct Op {
    start: Instant,
    end: Instant,
    /// stdout as JSON (the ADD result); Null when empty.
    result: Value,
}

impl Op {
    fn took(&self) -> Duration {
        self.end - self.start
    }
}

/// One plugin's network: fake host netns, temp dir, config.
struct World<'p> {
    net: TestNet,
    plugin: &'p Plugin,
    conf: Value,
}

impl<'p> World<'p> {
    fn new(plugin: &'p Plugin, extra: Option<(&str, Value)>) -> World<'p> {
        let net = TestNet::new();
        let mut conf = json!({
            "cniVersion": "1.0.0", "name": net.name, "type": plugin.kind, "bridge": net.bridge,
            "isGateway": true, "ipMasq": true, "ipam": net.ipam(plugin.ipam),
        });
        if plugin.state_dir {
            conf["stateDir"] = json!(net.state_dir());
        }
        if let Some((key, value)) = extra {
            conf[key] = value;
        }
        World { net, plugin, conf }
    }

    fn add(&self, att: &Attachment) -> Res<Op> {
        let op = self.run(&self.plugin.bin, "ADD", att, &self.conf)?;
        if !op.result.is_object() {
            return Err(format!(
                "{} ADD of {}: no JSON result",
                self.plugin.label, att.container_id
            ));
        }
        Ok(op)
    }

    fn del(&self, att: &Attachment, prev: &Value) -> Res<Op> {
        let mut conf = self.conf.clone();
        conf["prevResult"] = prev.clone();
        self.run(&self.plugin.bin, "DEL", att, &conf)
    }

    /// One plugin process in the host netns; any failure is an error carrying its output.
    fn run(&self, bin: &std::path::Path, verb: &str, att: &Attachment, conf: &Value) -> Res<Op> {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        let mut env = cni_env(verb, att);
        for (k, v) in env.iter_mut() {
            if k == "CNI_PATH" {
                v.clone_from(&self.plugin.cni_path);
            }
        }
        let stdin = conf.to_string();
        let start = Instant::now();
        let out = exec(self.net.host.path(), bin, &env, stdin.as_bytes());
        let end = Instant::now();
        if !out.success() {
            let (label, id) = (self.plugin.label, &att.container_id);
            return Err(format!(
                "{label}: {} {verb} (container {id}) failed: {out}",
                bin.display()
            ));
        }
        let result = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        Ok(Op { start, end, result })
    }

    /// What an IPAM plugin gets from a main plugin, with the big subnet of the fill test.
    fn ipam_conf(&self) -> Value {
        let mut ipam = self.net.ipam(self.plugin.ipam);
        ipam["subnet"] = json!(FILL_SUBNET);
        json!({"cniVersion": "1.0.0", "name": self.net.name, "type": self.plugin.kind, "ipam": ipam})
    }

    /// veth links still in the host netns (there should be none after the DELs).
    fn leftover_veths(&self) -> usize {
        ip::links(&self.net.host)
            .iter()
            .filter(|l| l.kind() == Some("veth"))
            .count()
    }
}

/// Runs `f` on every item from its own thread, all released at once; results in item order.
fn all_at_once<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> Res<R> + Sync) -> Res<Vec<R>> {
    let barrier = Barrier::new(items.len());
    thread::scope(|s| {
        let workers: Vec<_> = items
            .iter()
            .map(|item| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(item)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| "worker panicked".to_string())?)
            .collect()
    })
}

/// Timings of one plugin on one network.
#[derive(Default)]
struct Run {
    first_add: Duration,
    seq_add: Vec<Duration>,
    seq_del: Vec<Duration>,
    /// The all-at-once batches (empty when M = 0).
    batch_add: Vec<Op>,
    batch_del: Vec<Op>,
    leftover_veths: usize,
}

/// Timings of one IPAM binary on a filled pool.
#[derive(Default)]
struct IpamRun {
    adds: Vec<Duration>,
    dels: Vec<Duration>,
    fill_time: Duration,
}

/// One side of a comparison: its network, its containers, what it measured so far, and its
/// first failure, which stops this side only.
struct Side<'p, R> {
    w: World<'p>,
    /// Sequential attachments; [0] is the warm-up.
    seq: Vec<Container>,
    par: Vec<Container>,
    run: R,
    err: Option<String>,
}

impl<'p, R: Default> Side<'p, R> {
    /// Every container netns is created here, before the first timed op.
    fn new(p: &'p Plugin, extra: Option<(&str, Value)>, seq: usize, par: usize) -> Self {
        let err = p.check().err();
        let containers = |k: usize| match err {
            Some(_) => Vec::new(),
            None => (0..k).map(|_| Container::new()).collect(),
        };
        let (seq, par) = (containers(seq), containers(par));
        Side {
            w: World::new(p, extra),
            seq,
            par,
            run: R::default(),
            err,
        }
    }

    /// Runs `f` unless this side already failed.
    fn step(&mut self, f: impl FnOnce(&mut Self) -> Res<()>) {
        if self.err.is_none() {
            if let Err(e) = f(self) {
                self.err = Some(e);
            }
        }
    }

    fn finish(self) -> Res<R> {
        match self.err {
            Some(e) => Err(e),
            None => Ok(self.run),
        }
    }
}

/// Benchmarks the plugins side by side, interleaved op by op so that machine noise hits
/// them alike: first ADD, `n` sequential ADD+DEL, then `m` ADDs and `m` DELs at once.
fn bench_plugins(
    plugins: &[(&Plugin, Option<(&str, Value)>)],
    n: usize,
    m: usize,
) -> Vec<Res<Run>> {
    let mut sides: Vec<Side<Run>> = plugins
        .iter()
        .map(|(p, extra)| Side::new(p, extra.clone(), n + 1, m))
        .collect();
    for i in 0..=n {
        for s in &mut sides {
            s.step(|s| {
                let att = &s.seq[i].att;
                let add = s.w.add(att)?;
                let del = s.w.del(att, &add.result)?;
                match i {
                    0 => s.run.first_add = add.took(),
                    _ => {
                        s.run.seq_add.push(add.took());
                        s.run.seq_del.push(del.took());
                    }
                }
                Ok(())
            });
        }
    }
    for s in sides.iter_mut().filter(|_| m > 0) {
        s.step(|s| {
            s.run.batch_add = all_at_once(&s.par, |c| s.w.add(&c.att))?;
            let pairs: Vec<_> = s.par.iter().zip(&s.run.batch_add).collect();
            s.run.batch_del = all_at_once(&pairs, |(c, add)| s.w.del(&c.att, &add.result))?;
            Ok(())
        });
    }
    for s in &mut sides {
        s.step(|s| {
            s.run.leftover_veths = s.w.leftover_veths();
            Ok(())
        });
    }
    sides.into_iter().map(Side::finish).collect()
}

/// The IPAM binaries alone, side by side: `fill` reservations held, then `n` timed ADD+DEL
/// pairs, interleaved.
fn bench_ipam(plugins: &[&Plugin], fill: usize, n: usize) -> Vec<Res<IpamRun>> {
    let mut sides: Vec<Side<IpamRun>> = plugins.iter().map(|p| Side::new(p, None, 0, 0)).collect();
    for s in &mut sides {
        s.step(|s| {
            let started = Instant::now();
            match s.w.plugin.ipam {
                "host-local" => host_local_prefill(&s.w.net.ipam_dir(), &s.w.net.name, fill)?,
                _ => binary_prefill(&s.w, fill)?,
            }
            s.run.fill_time = started.elapsed();
            Ok(())
        });
    }
    for _ in 0..n {
        for s in &mut sides {
            s.step(|s| {
                let att = Attachment::new(&unique_name("ctr"), &s.w.net.host);
                let (bin, conf) = (&s.w.plugin.ipam_bin, s.w.ipam_conf());
                s.run.adds.push(s.w.run(bin, "ADD", &att, &conf)?.took());
                s.run.dels.push(s.w.run(bin, "DEL", &att, &conf)?.took());
                Ok(())
            });
        }
    }
    sides.into_iter().map(Side::finish).collect()
}

/// Writes host-local's own layout directly (what `fill` of its ADDs would leave, minus the
/// O(n²) cost of getting there): `<ip>` = "<id>\r\n<ifname>", cursor at the last one.
fn host_local_prefill(data_dir: &str, network: &str, fill: usize) -> Res<()> {
    let dir = PathBuf::from(data_dir).join(network);
    let io = |e: std::io::Error| format!("host-local prefill in {}: {e}", dir.display());
    fs::create_dir_all(&dir).map_err(io)?;
    let first = u32::from(Ipv4Addr::new(10, 250, 0, 2));
    let mut last = Ipv4Addr::from(first);
    for i in 0..fill {
        last = Ipv4Addr::from(first + i as u32);
        fs::write(dir.join(last.to_string()), format!("fill{i}\r\neth0")).map_err(io)?;
    }
    if fill > 0 {
        fs::write(dir.join("last_reserved_ip.0"), last.to_string()).map_err(io)?;
    }
    Ok(())
}

/// Fills through the IPAM binary itself (its store format is its own business), four
/// callers at a time.
fn binary_prefill(w: &World, fill: usize) -> Res<()> {
    let conf = w.ipam_conf();
    let chunks: Vec<Vec<usize>> = (0..4).map(|k| (k..fill).step_by(4).collect()).collect();
    all_at_once(&chunks, |ids| {
        for i in ids {
            let att = Attachment::new(&format!("fill{i}"), &w.net.host);
            w.run(&w.plugin.ipam_bin, "ADD", &att, &conf)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Median of `/bin/true` through the same exec path: the floor under every per-op number.
fn harness_floor(n: usize) -> Res<Duration> {
    let p = Plugin::reference();
    let w = World::new(&p, None);
    let att = Attachment::new("floor", &w.net.host);
    let bin = PathBuf::from("/bin/true");
    let times: Res<Vec<Duration>> = (0..n)
        .map(|_| Ok(w.run(&bin, "VERSION", &att, &json!({}))?.took()))
        .collect();
    Ok(median(&times?))
}

// ---- statistics and output ----

fn percentile(xs: &[Duration], p: f64) -> Duration {
    let mut v: Vec<f64> = xs.iter().map(Duration::as_secs_f64).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return Duration::ZERO;
    }
    let k = (v.len() - 1) as f64 * p;
    let (lo, hi) = (k.floor() as usize, (k.ceil() as usize).min(v.len() - 1));
    Duration::from_secs_f64(v[lo] + (v[hi] - v[lo]) * (k - lo as f64))
}

fn median(xs: &[Duration]) -> Duration {
    percentile(xs, 0.5)
}

fn p95(xs: &[Duration]) -> Duration {
    percentile(xs, 0.95)
}

/// First spawn to last exit.
fn batch_wall(ops: &[Op]) -> Duration {
    match (
        ops.iter().map(|o| o.start).min(),
        ops.iter().map(|o| o.end).max(),
    ) {
        (Some(a), Some(b)) => b - a,
        _ => Duration::ZERO,
    }
}

fn op_median(ops: &[Op]) -> Duration {
    median(&ops.iter().map(Op::took).collect::<Vec<_>>())
}

fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1e3;
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// The ratio a row should reach (left column / right column).
#[derive(Clone, Copy)]
enum Target {
    None,
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    fn show(self, ratio: Option<f64>) -> String {
        let (text, met) = match self {
            Target::None => return String::new(),
            Target::AtLeast(t) => (format!("≥ {t}×"), ratio.map(|r| r >= t)),
            Target::AtMost(t) => (format!("≤ {t}×"), ratio.map(|r| r <= t)),
        };
        match met {
            Some(true) => format!("{text} met"),
            Some(false) => format!("{text} MISSED"),
            None => text,
        }
    }
}

/// One table row: its label, target, and how to read it from a run.
type Metric<'a, R> = (String, Target, &'a dyn Fn(&R) -> Duration);

/// What a table column shows: not run (ONLY=...), failed, or measured.
type Outcome<R> = Option<Res<R>>;

/// Prints a markdown table comparing two sides, then each side's error verbatim.
fn table<R>(heads: [&str; 3], left: &Outcome<R>, right: &Outcome<R>, metrics: &[Metric<'_, R>]) {
    let cell = |side: &Outcome<R>, read: &dyn Fn(&R) -> Duration| match side {
        None => (None, "–".to_string()),
        Some(Err(_)) => (None, "error".to_string()),
        Some(Ok(run)) => (Some(read(run)), ms(read(run))),
    };
    println!(
        "| {} | {} | {} | ratio | target |\n|---|---:|---:|---:|---|",
        heads[0], heads[1], heads[2]
    );
    for (label, target, read) in metrics {
        let ((a, a_text), (b, b_text)) = (cell(left, read), cell(right, read));
        let ratio = match (a, b) {
            (Some(a), Some(b)) if !b.is_zero() => Some(a.as_secs_f64() / b.as_secs_f64()),
            _ => None,
        };
        let ratio_text = ratio.map_or("–".to_string(), |x| format!("{x:.1}×"));
        let target = target.show(ratio);
        println!("| {label} | {a_text} | {b_text} | {ratio_text} | {target} |");
    }
    println!();
    for (head, side) in [(heads[1], left), (heads[2], right)] {
        if let Some(Err(e)) = side {
            println!("**{head} error:**\n```\n{}\n```\n", e.trim_end());
        }
    }
}

fn plugin_section(reference: &Outcome<Run>, vbridge: &Outcome<Run>, n: usize, m: usize) {
    println!("## Plugin ADD/DEL: bridge + host-local (reference) vs vbridge\n");
    let metrics: [Metric<Run>; 9] = [
        (format!("ADD median (N={n})"), Target::AtLeast(10.0), &|r| {
            median(&r.seq_add)
        }),
        ("ADD p95".into(), Target::None, &|r| p95(&r.seq_add)),
        (format!("DEL median (N={n})"), Target::AtLeast(15.0), &|r| {
            median(&r.seq_del)
        }),
        ("DEL p95".into(), Target::None, &|r| p95(&r.seq_del)),
        (
            format!("{m} ADDs at once: batch wall"),
            Target::AtLeast(10.0),
            &|r| batch_wall(&r.batch_add),
        ),
        (
            format!("{m} ADDs at once: per-op median"),
            Target::None,
            &|r| op_median(&r.batch_add),
        ),
        (
            format!("{m} DELs at once: batch wall"),
            Target::None,
            &|r| batch_wall(&r.batch_del),
        ),
        (
            format!("{m} DELs at once: per-op median"),
            Target::None,
            &|r| op_median(&r.batch_del),
        ),
        (
            "first ADD (creates bridge + firewall)".into(),
            Target::None,
            &|r| r.first_add,
        ),
    ];
    table(["op", "reference", "vbridge"], reference, vbridge, &metrics);
    for (label, side) in [("reference", reference), ("vbridge", vbridge)] {
        if let Some(Ok(run)) = side
            .as_ref()
            .filter(|s| matches!(s, Ok(r) if r.leftover_veths > 0))
        {
            println!(
                "**odd:** {label} left {} veth(s) in its host netns after all DELs\n",
                run.leftover_veths
            );
        }
    }
}

fn ipam_section(reference: &Outcome<IpamRun>, vbridge: &Outcome<IpamRun>, fill: usize, n: usize) {
    println!("## IPAM at fill: {fill} reservations held in {FILL_SUBNET}\n");
    let metrics: [Metric<IpamRun>; 4] = [
        (format!("ADD median (N={n})"), Target::AtLeast(20.0), &|r| {
            median(&r.adds)
        }),
        ("ADD p95".into(), Target::None, &|r| p95(&r.adds)),
        (format!("DEL median (N={n})"), Target::AtLeast(20.0), &|r| {
            median(&r.dels)
        }),
        ("DEL p95".into(), Target::None, &|r| p95(&r.dels)),
    ];
    table(
        ["op", "host-local", "vbridge-ipam"],
        reference,
        vbridge,
        &metrics,
    );
    let fill_time = |o: &Outcome<IpamRun>| match o {
        Some(Ok(r)) => ms(r.fill_time),
        _ => "–".into(),
    };
    println!(
        "Pre-fill (not timed above): host-local's files are written directly in its own format \
         (one `<ip>` file holding `<id>\\r\\n<ifname>` per address, `last_reserved_ip.0` = the \
         last one), the state {fill} of its own ADDs leave ({}); vbridge-ipam is filled by {fill} \
         ADD calls of its binary, 4 callers at a time ({}). Then both run the same {n} timed \
         ADD+DEL pairs, interleaved.\n",
        fill_time(reference),
        fill_time(vbridge)
    );
}

fn spoof_section(reference: &Outcome<Run>, vbridge: &Outcome<Run>, n: usize) {
    println!("## Both plugins with `\"macspoofchk\": true`\n");
    let metrics: [Metric<Run>; 3] = [
        (format!("ADD median (N={n})"), Target::None, &|r| {
            median(&r.seq_add)
        }),
        (format!("DEL median (N={n})"), Target::None, &|r| {
            median(&r.seq_del)
        }),
        ("first ADD".into(), Target::None, &|r| r.first_add),
    ];
    table(["op", "reference", "vbridge"], reference, vbridge, &metrics);
}

fn vlan_section(with_vlan: &Outcome<Run>, plain: &Outcome<Run>, n: usize) {
    println!("## vbridge on a VLAN network (`\"vlan\": 100`) vs without\n");
    let metrics: [Metric<Run>; 3] = [
        (format!("ADD median (N={n})"), Target::AtMost(1.5), &|r| {
            median(&r.seq_add)
        }),
        (format!("DEL median (N={n})"), Target::None, &|r| {
            median(&r.seq_del)
        }),
        ("first ADD".into(), Target::None, &|r| r.first_add),
    ];
    table(["op", "vlan 100", "no vlan"], with_vlan, plain, &metrics);
}

// ---- cleanup ----

extern "C" fn on_signal(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Ctrl-C / SIGTERM stop the run at the next plugin call, so every guard still drops.
fn stop_on_signals() {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            eprintln!("warning: cannot handle {sig}: {e}");
        }
    }
}

/// Removes every namespace and temp dir this process created (`vbt-<pid>-*`); returns how
/// many there were. The release profile aborts on panic, so guards cannot be relied on then.
fn sweep() -> usize {
    let prefix = format!("vbt-{}-", std::process::id());
    let mine = |dir: PathBuf| -> Vec<String> {
        let entries = fs::read_dir(dir).into_iter().flatten().flatten();
        entries
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&prefix))
            .collect()
    };
    let netns = mine(PathBuf::from("/run/netns"));
    for ns in &netns {
        let _status = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
    }
    let tmp = mine(std::env::temp_dir());
    for d in &tmp {
        let _removed = fs::remove_dir_all(std::env::temp_dir().join(d));
    }
    netns.len() + tmp.len()
}

/// `KEY=1` in the environment.
fn env_flag(key: &str) -> bool {
    std::env::var(key).is_ok_and(|v| v == "1")
}

fn env_usize(key: &str, default: usize) -> Res<usize> {
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .map_err(|_| format!("{key}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn main() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        sweep();
    }));
    stop_on_signals();
    let code = match bench() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("vbridge-bench: {e}");
            1
        }
    };
    let left = sweep();
    if left > 0 {
        eprintln!("vbridge-bench: warning: swept {left} leftover namespace(s)/temp dir(s)");
    }
    std::process::exit(if INTERRUPTED.load(Ordering::Relaxed) {
        130
    } else {
        code
    });
}

/// Results come back in the order of the wanted sides; a side not wanted stays None.
fn split<R>(results: Vec<Res<R>>, want_ref: bool, want_vb: bool) -> (Outcome<R>, Outcome<R>) {
    let mut it = results.into_iter();
    let reference = want_ref.then(|| it.next()).flatten();
    (reference, want_vb.then(|| it.next()).flatten())
}

fn bench() -> Res<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { nix::libc::geteuid() } != 0 {
        return Err("needs root (network namespaces)".into());
    }
    let (n, m, fill) = (
        env_usize("N", 50)?,
        env_usize("M", 40)?,
        env_usize("FILL", 5000)?,
    );
    let only = std::env::var("ONLY").unwrap_or_default();
    if !["", "vbridge", "reference"].contains(&only.as_str()) {
        return Err(format!("ONLY={only:?}: use vbridge or reference"));
    }
    let vlan = env_flag("VLAN") || std::env::args().any(|a| a == "--vlan");
    let (want_ref, want_vb) = (only != "vbridge", only != "reference");
    let (reference, vbridge) = (Plugin::reference(), Plugin::vbridge());

    let progress = |what: &str| eprintln!("vbridge-bench: {what}");
    progress("harness floor");
    let floor = harness_floor(n.max(20))?;
    let wanted: Vec<&Plugin> = [(&reference, want_ref), (&vbridge, want_vb)]
        .into_iter()
        .filter_map(|(p, want)| want.then_some(p))
        .collect();
    progress(&format!(
        "plugins: first ADD, {n} sequential ADD+DEL, {m} at once"
    ));
    let sides: Vec<_> = wanted.iter().map(|p| (*p, None)).collect();
    let (ref_run, vb_run) = split(bench_plugins(&sides, n, m), want_ref, want_vb);
    progress(&format!("IPAM at fill: {fill} held, {n} ADD+DEL"));
    let (ref_ipam, vb_ipam) = split(bench_ipam(&wanted, fill, n), want_ref, want_vb);
    let spoof_runs = env_flag("MACSPOOF").then(|| {
        progress(&format!("both with macspoofchk: {n} ADD+DEL"));
        let spoof = Some(("macspoofchk", json!(true)));
        let sides: Vec<_> = wanted.iter().map(|p| (*p, spoof.clone())).collect();
        split(bench_plugins(&sides, n, 0), want_ref, want_vb)
    });
    let vlan_runs = vlan.then(|| {
        progress(&format!("vbridge: {n} ADD+DEL with and without vlan 100"));
        let sides = [(&vbridge, Some(("vlan", json!(100)))), (&vbridge, None)];
        let mut it = bench_plugins(&sides, n, 0).into_iter();
        (it.next(), it.next())
    });

    if INTERRUPTED.load(Ordering::Relaxed) {
        return Err("interrupted".into());
    }
    let cpus = thread::available_parallelism().map_or(0, usize::from);
    println!("# vbridge benchmark\n");
    println!(
        "Same machine ({cpus} CPUs), one run. Per-op = wall time of one plugin process, spawn to exit. \
         Ratio = left column / right column. Harness floor (`/bin/true` through the same exec path): {} median.\n",
        ms(floor)
    );
    plugin_section(&ref_run, &vb_run, n, m);
    ipam_section(&ref_ipam, &vb_ipam, fill, n);
    if let Some((reference, vbridge)) = &spoof_runs {
        spoof_section(reference, vbridge, n);
    }
    if let Some((with_vlan, plain)) = &vlan_runs {
        vlan_section(with_vlan, plain, n);
    }
    Ok(())
}
