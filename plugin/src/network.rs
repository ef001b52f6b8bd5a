//! Network-level lifecycle: the first attachment of a network installs its firewall
//! state, the last one removes it. Both decisions are made under the network's state
//! lock, and the steady state (firewall already current) costs no `nft` exec: the
//! recorded stamp and a netlink question whether the tables (and the isolation chain)
//! still exist decide.
//!
//! Removal is deferred by `firewallTeardownDelayMs` (default 2 s): the DEL that empties
//! the network records a deadline and starts a detached `vbridge __reap` process, which
//! removes the rules once the deadline has passed if the network is still empty. A
//! network that is empty only briefly (a pod restarting, ADD/DEL pairs in a loop) so
//! pays no `nft` at all, and no DEL waits for one (a removal costs 10–15 ms). With a
//! delay of 0 the DEL removes the rules itself. GC always removes them at once.

use crate::error::{Error, Result};
use crate::firewall::{self, NetworkRules};
use crate::state::{reaper_lock_path, AttachmentRecord, FirewallStamp, NetState, Teardown};
use conf::netconf::NetConf;
use conf::Attachment;
use ipnetwork::IpNetwork;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often a reaper retries the network's lock (10 s each) before it gives up; GC and
/// the next emptying DEL still remove the rules then.
const REAPER_LOCK_TRIES: u32 = 30;

fn wants_firewall(conf: &NetConf) -> bool {
    conf.ip_masq || conf.isolate
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Registers `att` and makes sure the network's firewall state covers `subnets`.
/// On failure nothing stays registered. The caller holds the network's lock.
pub fn attach(
    st: &NetState,
    conf: &NetConf,
    att: &Attachment,
    rec: &AttachmentRecord,
    subnets: &[IpNetwork],
) -> Result<()> {
    st.register(att, rec)?;
    if let Err(e) = ensure_firewall(conf, st, subnets) {
        // As a DEL would: unregistered, and if that empties the network, whatever nft
        // got to install is torn down like after a last DEL.
        if let Err(u) = detach(st, conf, att) {
            log::error!("rollback: {u}");
        }
        return Err(e);
    }
    Ok(())
}

fn ensure_firewall(conf: &NetConf, st: &NetState, subnets: &[IpNetwork]) -> Result<()> {
    if !wants_firewall(conf) || subnets.is_empty() {
        return Ok(());
    }
    let want = FirewallStamp::current(subnets.to_vec(), conf.ip_masq, conf.isolate)?;
    // A stamp of another boot or host netns describes rules that are gone.
    let have = st
        .firewall()?
        .filter(|h| h.boot_id == want.boot_id && h.netns_inode == want.netns_inode);
    // Rules deleted behind our back (`nft flush ruleset`) are not current either.
    let current = have
        .as_ref()
        .is_some_and(|h| h.covers(&want) && rules_present(conf));
    if current {
        return Ok(());
    }
    install(conf, st, &want, have.as_ref())
}

/// The steady-state check that the recorded rules still exist: a netlink round trip,
/// no `nft`. If the kernel cannot be asked, the stamp is trusted as it always was.
fn rules_present(conf: &NetConf) -> bool {
    firewall::installed(&conf.name, conf.isolate).unwrap_or_else(|e| {
        log::warn!(
            "network {}: cannot ask whether its nftables state exists: {e}",
            conf.name
        );
        true
    })
}

/// Installs rules for the subnets of every registered attachment (the one being added
/// included): not just the ones the last install knew, as a resize or an emptied range
/// must drop subnets. `have`: any stamp of this host and boot, whose subnets the sets
/// may hold. The install replaces whatever is there in one transaction, so a failure
/// leaves the rules in place for the pods that run.
fn install(
    conf: &NetConf,
    st: &NetState,
    want: &FirewallStamp,
    have: Option<&FirewallStamp>,
) -> Result<()> {
    let subnets = live_subnets(st, &want.subnets)?;
    // Recorded first: if nft fails or this process is killed while it runs, the pending
    // stamp names every subnet the sets may hold, for the next ADD, the last DEL or GC.
    let mut maybe = subnets.clone();
    maybe.extend(have.iter().flat_map(|h| h.subnets.iter().copied()));
    // Every failed ADD would add the live subnets again.
    maybe.sort();
    maybe.dedup();
    st.set_firewall(Some(&FirewallStamp {
        subnets: maybe.clone(),
        pending: true,
        ..want.clone()
    }))?;
    firewall::reinstall(
        &NetworkRules {
            network: &conf.name,
            subnets: &subnets,
            masquerade: conf.ip_masq,
            isolate: conf.isolate,
        },
        &maybe,
    )?;
    st.set_firewall(Some(&FirewallStamp {
        subnets,
        ..want.clone()
    }))
}

/// `extra` and the subnets of every registered attachment, collapsed as installed.
fn live_subnets(st: &NetState, extra: &[IpNetwork]) -> Result<Vec<IpNetwork>> {
    let mut all: Vec<IpNetwork> = (st.list()?.into_iter())
        .filter_map(|(_, rec)| rec)
        .filter(|rec| !rec.from_other_boot())
        .flat_map(|rec| rec.ips)
        .chain(extra.iter().copied())
        .filter_map(|n| IpNetwork::new(n.network(), n.prefix()).ok())
        .collect();
    // Listing order is arbitrary; the rule order should not be.
    all.sort();
    Ok(firewall::collapse(&all))
}

/// Unregisters `att`; when it was the network's last attachment, schedules the removal
/// of the firewall state. Returns whether the network is now unused. The caller holds
/// the lock.
pub fn detach(st: &NetState, conf: &NetConf, att: &Attachment) -> Result<bool> {
    st.unregister(att)?;
    if !st.is_empty()? {
        return Ok(false);
    }
    // The rules belong to the network, not to the attachment being deleted: failing to
    // remove them (say, a broken `nft`) or to schedule that (no process could be
    // started) must not fail this DEL, which a runtime would retry forever. The stamp
    // stays, so GC or the next emptying DEL removes them.
    if let Err(e) = schedule_teardown(st, conf) {
        log::error!(
            "network {}: could not remove its nftables state or schedule that: {e}",
            conf.name
        );
    }
    Ok(true)
}

fn schedule_teardown(st: &NetState, conf: &NetConf) -> Result<()> {
    let delay = conf.firewall_teardown_delay();
    if delay.is_zero() {
        return remove_firewall(st, &conf.name, false);
    }
    if matches!(st.firewall(), Ok(None)) {
        return Ok(());
    }
    // Saturating: a DEL may carry a delay ADD would refuse.
    let deadline_ms = now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
    if let Some(t) = st.teardown().ok().flatten() {
        if reaper_running(conf, t.pid) {
            // A reaper is already waiting: just move its deadline.
            return st.set_teardown(Some(&Teardown { deadline_ms, ..t }));
        }
    }
    let pid = spawn_reaper(conf)?;
    st.set_teardown(Some(&Teardown { deadline_ms, pid }))
}

/// Whether reaper `pid` is alive: it holds the network's reaper lock, whose file names
/// it. The recorded PID alone could name an unrelated process that reused it, and the
/// lock alone a reaper that is about to stand down (a newer one is recorded).
fn reaper_running(conf: &NetConf, pid: i32) -> bool {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(reaper_lock_path(conf.state_dir(), &conf.name)) else {
        return false;
    };
    match fs2::FileExt::try_lock_exclusive(&f) {
        Ok(()) => return false, // free: released again when `f` closes
        Err(e) if e.raw_os_error() != fs2::lock_contended_error().raw_os_error() => return false,
        Err(_) => {}
    }
    let mut holder = String::new();
    f.read_to_string(&mut holder).is_ok() && holder.trim().parse() == Ok(pid)
}

/// Starts `vbridge __reap STATE_DIR NETWORK`, detached: no stdio (a runtime reading our
/// stdout must see EOF when we exit), its own process group. Spawned from the thread in
/// the host netns, which it inherits.
fn spawn_reaper(conf: &NetConf) -> Result<i32> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let child = Command::new("/proc/self/exe")
        .args(["__reap", conf.state_dir(), &conf.name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io("failed to start the firewall teardown process", e))?;
    Ok(child.id() as i32)
}

/// The detached reaper: waits for the recorded deadline (which later DELs may move),
/// then removes the firewall state if the network is still empty. Exits early when a
/// newer reaper took over or GC already cleaned up.
pub fn reap(state_dir: &str, network: &str) -> Result<()> {
    let me = std::process::id() as i32;
    let Some(_running) = hold_reaper_lock(state_dir, network)? else {
        return Ok(());
    };
    let mut tries = 0;
    loop {
        // The state dir may be gone (removed with a test's temp dir, say): then there is
        // nothing to do, and nothing may be recreated.
        let st = match NetState::lock_existing(state_dir, network) {
            Ok(Some(st)) => st,
            Ok(None) => return Ok(()),
            Err(Error::LockTimeout(m)) if tries < REAPER_LOCK_TRIES => {
                tries += 1;
                log::warn!("firewall teardown of network {network}: {m}; trying again");
                continue;
            }
            Err(e) => return Err(e),
        };
        let Some(t) = st.teardown()?.filter(|t| t.pid == me) else {
            return Ok(());
        };
        let now = now_ms();
        if now < t.deadline_ms {
            drop(st);
            std::thread::sleep(Duration::from_millis(t.deadline_ms - now));
            continue;
        }
        if st.is_empty()? {
            remove_firewall(&st, network, false)?;
        }
        return st.set_teardown(None);
    }
}

/// The reaper lock, held until the returned file closes and naming this process; `None`
/// when the network's state directory is gone. Waits for a predecessor still holding it
/// (a DEL racing a reaper's start, or finding a reaper that is about to stand down, can
/// spawn another): that one exits at its deadline at the latest, on finding the teardown
/// record names another process.
fn hold_reaper_lock(state_dir: &str, network: &str) -> Result<Option<std::fs::File>> {
    let path = reaper_lock_path(state_dir, network);
    let f = match std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("failed to open {}", path.display()), e)),
    };
    fs2::FileExt::lock_exclusive(&f)
        .map_err(|e| Error::io(format!("failed to lock {}", path.display()), e))?;
    let mut held = &f;
    held.set_len(0)
        .and_then(|()| {
            std::io::Write::write_all(&mut held, std::process::id().to_string().as_bytes())
        })
        .map_err(|e| Error::io(format!("failed to write {}", path.display()), e))?;
    Ok(Some(f))
}

/// GC: removes the firewall state at once when the network is unused — for a network
/// that uses a firewall even without a stamp, as GC is the catch-all. Returns whether the
/// network is unused.
pub fn remove_now_if_unused(st: &NetState, conf: &NetConf) -> Result<bool> {
    if !st.is_empty()? {
        return Ok(false);
    }
    remove_firewall(st, &conf.name, wants_firewall(conf))?;
    st.set_teardown(None)?;
    Ok(true)
}

fn remove_firewall(st: &NetState, network: &str, even_without_stamp: bool) -> Result<()> {
    // A corrupt stamp must not keep rules alive forever: treat it as "installed".
    let stamp = st.firewall().unwrap_or_else(|e| {
        log::warn!("{e}");
        Some(FirewallStamp {
            boot_id: String::new(),
            netns_inode: 0,
            subnets: vec![],
            masquerade: true,
            isolate: true,
            pending: true,
        })
    });
    let removed = match stamp {
        Some(s) => firewall::remove(network, &s.subnets),
        None if even_without_stamp => firewall::remove(network, &[]),
        None => return Ok(()),
    };
    match removed {
        Ok(()) => {}
        // Without nft no rule of ours can be programmed or removed (an ADD that wanted one
        // failed with 108); DEL and GC must still succeed.
        Err(firewall::Error::NftNotFound) => {
            log::warn!("nft not found: no nftables state to remove")
        }
        Err(e) => return Err(e.into()),
    }
    st.set_firewall(None)
}
