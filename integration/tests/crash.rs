//! `vbridge` ADDs killed with SIGKILL at random instants leave nothing that DEL and GC cannot
//! clean up: afterwards the store is empty and consistent, every address of the pool can be
//! handed out again, and no veth or nftables table of the network is left.
//!
//! The kill instants come from a PRNG seeded from the clock; the seed is printed, and
//! `VBRIDGE_CRASH_SEED=<seed>` replays the same instants.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use integration::result::ip_of;
use integration::runtime::cni_env;
use integration::tmp::unique_name;
use integration::{ip, ipam_ls, paths, Attachment, Container, Output, TestNet};
use nix::sched::{setns, CloneFlags};
use serde_json::json;

const V: &str = "1.1.0";
/// Killed ADDs.
const ADDS: usize = 200;
/// ADDs in flight at once.
const PARALLEL: usize = 4;
/// Each ADD is killed at most this long after spawn, or as long as an ADD takes here when
/// that is longer (debug build, loaded machine): the instants must cover a whole ADD, so
/// that some die in every phase and some complete.
const MIN_WINDOW: Duration = Duration::from_millis(10);

/// xorshift64*: small, and good enough to spread kill instants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn seed() -> u64 {
    if let Some(s) = std::env::var("VBRIDGE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return s;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    nanos | 1
}

/// How one ADD ended.
enum Fate {
    Killed,
    Finished(Output),
}

/// Runs vbridge ADD like a runtime would and SIGKILLs it `delay` after spawn (unless it has
/// finished by then).
fn add_killed_after(net: &TestNet, att: &Attachment, conf: &[u8], delay: Duration) -> Fate {
    let ns = File::open(net.host.path()).expect("open host netns");
    let mut cmd = Command::new(paths::vbridge());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(cni_env("ADD", att))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setns is async-signal-safe; the closure only uses the fd opened above.
    unsafe {
        cmd.pre_exec(move || setns(&ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from));
    }
    let spawned = Instant::now();
    let mut child = cmd.spawn().expect("spawn vbridge");
    if let Some(mut stdin) = child.stdin.take() {
        // Fits the pipe buffer; EPIPE only if the plugin is already gone.
        let _ignored = stdin.write_all(conf);
    }
    std::thread::sleep(delay.saturating_sub(spawned.elapsed()));
    // Already exited (not yet reaped) is fine: the kill is then a no-op.
    let _ignored = child.kill();
    let status = child.wait().expect("wait for vbridge");
    if status.signal() == Some(9) {
        return Fate::Killed;
    }
    let read = |pipe: Option<&mut dyn Read>| {
        let mut s = String::new();
        if let Some(p) = pipe {
            let _ignored = p.read_to_string(&mut s);
        }
        s
    };
    Fate::Finished(Output {
        code: status.code().unwrap_or(-1),
        signal: status.signal(),
        stdout: read(child.stdout.as_mut().map(|p| p as &mut dyn Read)),
        stderr: read(child.stderr.as_mut().map(|p| p as &mut dyn Read)),
    })
}

fn host_veths(net: &TestNet) -> Vec<String> {
    ip::veths_after(&net.host, &[], std::time::Duration::from_secs(10))
}

/// Name, master, alias and state of every host veth, for a failure message.
fn veth_details(net: &TestNet) -> String {
    let links = ip::ip_json(&net.host, &["-d", "link", "show", "type", "veth"]);
    let rows: Vec<String> = links
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            format!(
                "{} master={} alias={} state={} peer-netnsid={}",
                l["ifname"], l["master"], l["ifalias"], l["operstate"], l["link_netnsid"]
            )
        })
        .collect();
    rows.join("; ")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// How long a steady-state vbridge ADD takes here with PARALLEL of them in flight (the
/// slowest), measured on a throwaway network after a first ADD that creates the bridge and
/// the firewall.
fn steady_add_time() -> Duration {
    let net = TestNet::new();
    let conf = net.flat_config(V).to_string();
    let add = |c: &Container| {
        let t = Instant::now();
        let out = net.call(&paths::vbridge(), "ADD", &c.att, conf.as_bytes());
        assert!(out.success(), "calibration ADD: {out}");
        t.elapsed()
    };
    add(&Container::new());
    let containers: Vec<Container> = (0..PARALLEL).map(|_| Container::new()).collect();
    std::thread::scope(|s| {
        let runs: Vec<_> = containers.iter().map(|c| s.spawn(|| add(c))).collect();
        runs.into_iter()
            .map(|r| r.join().expect("calibration thread"))
            .max()
            .unwrap_or(MIN_WINDOW)
    })
}

#[test]
fn killed_adds_leave_nothing_behind() {
    let t0 = Instant::now();
    let seed = seed();
    let add_time = steady_add_time();
    let window = MIN_WINDOW.max(add_time);
    println!(
        "crash seed {seed} (VBRIDGE_CRASH_SEED={seed} replays it); an ADD takes {add_time:?}, \
         kills within 0..{window:?} of spawn"
    );
    let mut rng = Rng(seed);
    let window_us = window.as_micros() as u64;
    let delays: Vec<Duration> = (0..ADDS)
        .map(|_| Duration::from_micros(rng.next() % (window_us + 1)))
        .collect();
    let net = TestNet::with_prefix(24);
    let conf_json = net.flat_config(V);
    assert_eq!(conf_json["ipMasq"], true);
    let conf = conf_json.to_string();

    // Phase 1: ADDs killed at random instants, PARALLEL at a time.
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(Container, Fate)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ADDS {
                    break;
                }
                let c = Container::new();
                let fate = add_killed_after(&net, &c.att, conf.as_bytes(), delays[i]);
                done.lock().expect("done").push((c, fate));
            });
        }
    });
    let done = done.into_inner().expect("done");
    let killed = done
        .iter()
        .filter(|(_, f)| matches!(f, Fate::Killed))
        .count();
    let failed: Vec<String> = done
        .iter()
        .filter_map(|(c, f)| match f {
            Fate::Finished(out) if !out.success() => Some(format!("{}: {out}", c.id())),
            _ => None,
        })
        .collect();
    let (view, _) = ipam_ls::view(&net.ipam_dir(), &net.name);
    println!(
        "{ADDS} ADDs: {killed} killed, {} finished ({} failed); left behind: {} reservations, \
         journal {}, {} host veths, nft tables {:?}; {:?}",
        ADDS - killed,
        failed.len(),
        view["reservations"].as_array().map_or(0, Vec::len),
        view["interruptedOperation"],
        host_veths(&net).len(),
        ip::nft_tables(&net.host),
        t0.elapsed()
    );
    assert!(
        failed.is_empty(),
        "ADDs that finished in time failed:\n{}",
        failed.join("\n")
    );

    // Phase 2: DEL half of the attachments (PARALLEL at a time), GC (nothing valid) the rest.
    let to_del: Vec<&Container> = done.iter().step_by(2).map(|(c, _)| c).collect();
    std::thread::scope(|s| {
        for chunk in to_del.chunks(to_del.len().div_ceil(PARALLEL)) {
            let (net, conf) = (&net, &conf);
            s.spawn(move || {
                for c in chunk {
                    let out = net.call(&paths::vbridge(), "DEL", &c.att, conf.as_bytes());
                    assert!(out.success(), "DEL {}: {out}", c.id());
                }
            });
        }
    });
    let mut gc_conf = conf_json.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([]);
    let none = Attachment {
        container_id: String::new(),
        netns: String::new(),
        ifname: String::new(),
        cni_args: String::new(),
        capability_args: serde_json::Map::new(),
    };
    let out = net.vbridge("GC", &none, &gc_conf);
    assert!(out.success(), "GC: {out}");
    println!("DEL + GC done: {:?}", t0.elapsed());

    let problems = leftovers(&net);
    let pool_problem = pool_all_free(&net, &conf).err();
    println!("crash test wall time {:?}", t0.elapsed());
    let all: Vec<String> = problems.into_iter().chain(pool_problem).collect();
    assert!(all.is_empty(), "after DEL + GC:\n{}", all.join("\n"));
}

/// Everything DEL + GC should have removed but did not.
fn leftovers(net: &TestNet) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    // The IPAM store: consistent and empty.
    let (view, out) = ipam_ls::view(&net.ipam_dir(), &net.name);
    let clean = out.success()
        && view["reservations"] == json!([])
        && view["corrupt"] == json!([])
        && view["interruptedOperation"] == false;
    expect(clean, format!("IPAM store not empty/clean: {out}"));
    let store = Path::new(&net.ipam_dir()).join(&net.name);
    for sub in ["ips", "attachments", "tmp"] {
        let left = entries(&store.join(sub));
        expect(left.is_empty(), format!("IPAM {sub}/ left: {left:?}"));
    }
    expect(!store.join("journal").exists(), "IPAM journal left".into());

    // The host: no veth, no firewall table, no state of the network.
    let veths = host_veths(net);
    expect(
        veths.is_empty(),
        format!("{} host veths left: {}", veths.len(), veth_details(net)),
    );
    let tables = ip::nft_tables(&net.host);
    let ours = format!("vbridge-{}", net.name);
    expect(
        !tables.iter().any(|(_, t)| *t == ours),
        format!("nft table {ours} left: {tables:?}"),
    );
    let state = Path::new(&net.state_dir()).join(&net.name);
    let records = entries(&state.join("attachments"));
    expect(
        records.is_empty(),
        format!("stateDir attachments/ left: {records:?}"),
    );
    expect(
        !state.join("firewall.json").exists(),
        "stateDir firewall.json left".into(),
    );
    problems
}

/// Every address is free: the whole pool (.2–.254 of the /24) can be handed out again, one
/// sequential ADD each, and then the pool is full.
fn pool_all_free(net: &TestNet, conf: &str) -> Result<(), String> {
    let pool = (1u32 << (32 - net.subnet.prefix)) - 3;
    let mut got = std::collections::BTreeSet::<Ipv4Addr>::new();
    for n in 1..=pool {
        let att = Attachment::new(&unique_name("fill"), &net.host);
        let out = net.call(&paths::vbridge_ipam(), "ADD", &att, conf.as_bytes());
        if !out.success() {
            return Err(format!("pool ADD #{n} of {pool} failed: {out}"));
        }
        let addr = ip_of(&out.json());
        if !got.insert(addr) {
            return Err(format!("{addr} handed out twice"));
        }
    }
    let att = Attachment::new(&unique_name("fill"), &net.host);
    let out = net.call(&paths::vbridge_ipam(), "ADD", &att, conf.as_bytes());
    match out.cni_error() {
        Some(e) if e.code == 100 => Ok(()),
        _ => Err(format!(
            "ADD #{} should find the pool full: {out}",
            pool + 1
        )),
    }
}
