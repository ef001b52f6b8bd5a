//! nftables state of a network: masquerade and isolation, programmed once per network.
//!
//! The caller runs [`reinstall`] when a network's recorded state does not cover an ADD
//! (its first attachment, a new subnet, a failed earlier install, rules deleted behind
//! its back) and [`remove`] when the last attachment goes; steady-state ADD/DEL never
//! exec `nft`. Each call lists the
//! shared table (`nft -j list`) and then applies one `nft -j -f -` batch, i.e. one
//! atomic transaction: if nft refuses it, the state before stays as it was. Each call
//! is idempotent.
//!
//! # Layout
//! ```text
//! table inet vbridge-<net>                      # one per network with firewall state
//!   chain postrouting { type nat hook postrouting priority srcnat; policy accept; }   (ipMasq)
//!     ip saddr S ip daddr != S ip daddr != 224.0.0.0/4 masquerade     # per v4 subnet S
//!     ip6 saddr S ip6 daddr != S ip6 daddr != ff00::/8 masquerade     # per v6 subnet S
//! table inet vbridge                            # shared by all networks
//!   set nets4 { type ipv4_addr; flags interval; }   # subnets of every network with state
//!     elements { S comment "vbridge:<net>[,<other net>]" }   # whose the element is
//!   set nets6 { type ipv6_addr; flags interval; }
//!   chain isolate-<net> { type filter hook forward priority filter; policy accept; }  (isolate)
//!     ip saddr A ip daddr B return              # every pair of own subnets A, B
//!     ip saddr A ip daddr @nets4 drop           # own -> other vbridge network
//!     ip saddr @nets4 ip daddr A drop           # other vbridge network -> own
//! ```
//! Why this shape: a rule can only use a set of its own table, so the isolation chain
//! of each network lives in the shared table next to the sets; being a base chain of
//! its own, it is created, flushed and deleted without touching any other network's
//! rules (no rule handles). Traffic to the outside and inside the network passes
//! (policy accept, returns first, also with br_netfilter).
//!
//! # Idempotency and cost
//! `add` of an existing table/chain/set/element is a no-op, `add rule` is not. So
//! [`install`] flushes the per-network table and the isolation chain before adding
//! rules (a re-install with more subnets or other settings is exact; ipMasq turned off
//! leaves at most an empty nat chain), and [`remove`] `add`s the table and chain before
//! deleting them in the same batch so that nothing missing makes it fail. Set elements
//! cannot be treated so: `add` of one nested in a present one fails, and this nft has
//! no `destroy`. So both first list the sets, and delete exactly the listed elements
//! that are the network's: whatever a failed or killed install left. Each element's
//! comment names the networks that need it (see `owners`), so one network's removal
//! never takes an element another needs (an identical subnet, or one it was given while
//! the first network's stamp still names it), and a removal without a stamp still finds
//! the network's elements. Any
//! deletion makes the kernel's commit wait for an RCU grace period (measured ~3.5 ms
//! per transaction without, ~12 ms with), so [`reinstall`] deletes only when it must:
//! the isolation chain of a network with isolate off, elements it no longer has, and an
//! element whose owners change (nft's `add` of an existing element keeps its comment).
//!
//! # Limitations
//! - Only networks with firewall state (ipMasq or isolate) are in `nets4`/`nets6`: an
//!   isolated network is not isolated from a vbridge network that has neither.
//! - Subnets of different networks must not overlap: nft rejects an element inside
//!   another ("interval overlaps"). An identical subnet is one element, owned by both.
//!   Elements written before owners were recorded have no comment: [`remove`] and
//!   [`reinstall`] take one as the network's only if it is exactly one of the subnets
//!   they are given (every subnet an earlier install may have added). Within one
//!   network a subnet inside another (a resize) is dropped: see `subnets`.
//! - Installs and removals of all networks of a host netns are serialized from their
//!   listing to their commit by a flock under /run/vbridge (see `lock_shared_sets`);
//!   where /run/vbridge cannot be written they go on unserialized, and two that change
//!   the same element at once can then drop one network's owner name.
//! - An owner name stays in an element's comment until that network's removal: a
//!   network deleted from the host without its last DEL or a GC (or renamed) keeps its
//!   elements alive; `nft delete element inet vbridge nets4 { <subnet> }` removes one.
//! - [`remove`] leaves the shared table with its (possibly empty) sets: other networks'
//!   chains and elements live there, and the lock that serializes the networks is
//!   best-effort. It hooks nothing.
//! - As in the reference plugin, traffic between two subnets of one network that is
//!   routed by the host is masqueraded (`daddr != S` names only the source's subnet).
//!
//! The exec inherits the netns of the calling thread; the caller runs us in the host's.

mod check;
mod nft;
mod owners;
mod plan;
mod probe;
mod sets;
mod subnets;

pub(crate) use subnets::{collapse, covers};

#[cfg(test)]
mod live_tests;

use std::path::PathBuf;

use ipnetwork::IpNetwork;

use plan::{Plan, FAMILY, SHARED_TABLE};

/// Firewall state wanted for one network.
#[derive(Debug, Clone, Copy)]
pub struct NetworkRules<'a> {
    /// Validated `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
    pub network: &'a str,
    /// The network's subnets (network address/prefix), v4 and/or v6.
    pub subnets: &'a [IpNetwork],
    /// ipMasq.
    pub masquerade: bool,
    /// Drop routed traffic between this network and other vbridge networks.
    pub isolate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "nft not found in /usr/sbin, /sbin or PATH: install nftables (e.g. `apt-get install nftables`)"
    )]
    NftNotFound,
    #[error("cannot run {}: {source}", program.display())]
    Exec {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("nft failed {what}: {stderr}")]
    Nft { what: String, stderr: String },
    #[error("unexpected nft data {what}: {detail}")]
    Output { what: String, detail: String },
    #[error("firewall of network {network}: {}", problems.join("; "))]
    CheckFailed {
        network: String,
        problems: Vec<String>,
    },
    #[error("nftables is not usable: {0}")]
    Unavailable(Box<Error>),
    #[error("timed out after {}s waiting for {}", SHARED_LOCK_WAIT.as_secs(), .0.display())]
    LockTimeout(PathBuf),
}

impl Error {
    pub fn code(&self) -> conf::ErrorCode {
        match self {
            Error::CheckFailed { .. } => conf::ErrorCode::CheckFailed,
            Error::Unavailable(_) => conf::ErrorCode::NotAvailable,
            Error::LockTimeout(_) => conf::ErrorCode::TryAgainLater,
            Error::NftNotFound | Error::Exec { .. } | Error::Nft { .. } | Error::Output { .. } => {
                conf::ErrorCode::Firewall
            }
        }
    }
}

/// `vbridge-<network>`: the per-network table (family inet).
pub fn table_name(network: &str) -> String {
    plan::table_name(network)
}

/// Makes the network's firewall state match `r`, in one transaction; with neither
/// masquerade nor isolate this is [`remove`].
#[cfg(test)]
pub fn install(r: &NetworkRules) -> Result<(), Error> {
    reinstall(r, &[])
}

/// [`install`] over whatever an earlier install left: `previous` names every subnet one
/// may have put in the sets (a failed one's included), which tells the network's
/// elements that carry no owner. Those of its elements the sets hold and `r` no longer
/// has are deleted in the same transaction (or left to the other networks that need
/// them). If nft fails, nothing changed: the rules in place stay.
pub fn reinstall(r: &NetworkRules, previous: &[IpNetwork]) -> Result<(), Error> {
    let _shared = lock_shared_sets()?;
    let known: Vec<IpNetwork> = previous.iter().chain(r.subnets).copied().collect();
    let plan =
        Plan::new(r.network, r.subnets, r.masquerade, r.isolate).against(&listed_sets()?, &known);
    nft::apply(
        &plan::batch(&plan),
        &format!("installing the firewall of network {}", r.network),
    )
}

/// Removes the network's table, isolation chain and set elements (those whose comment
/// names it; of those without one, the ones that are exactly one of `subnets`, every
/// subnet an install may have added), in one transaction; succeeds when nothing is
/// there. Elements other networks also need stay, as theirs.
pub fn remove(network: &str, subnets: &[IpNetwork]) -> Result<(), Error> {
    let _shared = lock_shared_sets()?;
    let plan = Plan::new(network, subnets, false, false).against(&listed_sets()?, subnets);
    nft::apply(
        &plan::batch(&plan),
        &format!("removing the firewall of network {network}"),
    )
}

/// How long an install or removal waits for another network's to finish with the sets.
const SHARED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serializes the installs and removals of all networks in this host netns from their
/// listing of the shared sets to their commit: each holds only its own network's state
/// lock, and a batch planned on a listing another network's batch has since changed
/// would silently drop that network's owner name or element (an isolation hole no probe
/// sees). One lock file per netns under /run (tmpfs: none outlives a reboot); where it
/// cannot be made, the install goes on unserialized and says so.
fn lock_shared_sets() -> Result<Option<std::fs::File>, Error> {
    use std::os::unix::fs::MetadataExt;
    let opened = std::fs::metadata("/proc/thread-self/ns/net").and_then(|ns| {
        let path = shared_sets_lock(ns.ino());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map(|f| (f, path))
    });
    let (f, path) = match opened {
        Ok(x) => x,
        Err(e) => {
            log::warn!(
                "cannot open the lock of the shared nftables sets: {e}; going on without it"
            );
            return Ok(None);
        }
    };
    match ipam::store::fsio::lock_exclusive_within(&f, SHARED_LOCK_WAIT) {
        Ok(true) => Ok(Some(f)),
        Ok(false) => Err(Error::LockTimeout(path)),
        Err(e) => {
            log::warn!("cannot lock {}: {e}; going on without it", path.display());
            Ok(None)
        }
    }
}

/// The lock file of the shared sets of the netns with inode `netns_inode`.
fn shared_sets_lock(netns_inode: u64) -> PathBuf {
    PathBuf::from(format!("/run/vbridge/shared-sets-{netns_inode}.lock"))
}

/// The elements of the shared sets, asked: one `nft` exec for both sets.
fn listed_sets() -> Result<sets::Listed, Error> {
    let listing = nft::list_table(FAMILY, SHARED_TABLE)?;
    sets::Listed::parse(listing.as_ref()).map_err(|detail| Error::Output {
        what: format!("listing table {FAMILY} {SHARED_TABLE}"),
        detail,
    })
}

/// Whether the tables [`install`] creates for `network` exist, and with `isolate` its
/// isolation chain: asked over netlink without an exec, cheap enough for every ADD. The
/// chain goes with the shared table, which another network's install recreates empty.
pub fn installed(network: &str, isolate: bool) -> std::io::Result<bool> {
    let own = plan::table_name(network);
    let chain = plan::isolate_chain(network);
    let mut objects = vec![
        probe::Object::Table(&own),
        probe::Object::Table(SHARED_TABLE),
    ];
    if isolate {
        objects.push(probe::Object::Chain {
            table: SHARED_TABLE,
            name: &chain,
        });
    }
    probe::inet_objects_exist(&objects)
}

/// Lists vbridge's own tables and verifies that everything [`install`] puts there
/// for `r` exists; the error names what is missing.
pub fn check(r: &NetworkRules) -> Result<(), Error> {
    let plan = Plan::new(r.network, r.subnets, r.masquerade, r.isolate);
    if !plan.has_state() {
        return Ok(());
    }
    let own = nft::list_table(FAMILY, &plan.table)?.map(|v| check::Listing::parse(&v));
    let shared = nft::list_table(FAMILY, SHARED_TABLE)?.map(|v| check::Listing::parse(&v));
    let problems = check::problems(&plan, own.as_ref(), shared.as_ref());
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::CheckFailed {
            network: r.network.to_string(),
            problems,
        })
    }
}

/// Whether the `nft` binary is there (a stat, no exec).
pub fn findable() -> Result<(), Error> {
    nft::binary().map(drop)
}

/// Whether `nft` can be run and reaches nf_tables (for STATUS).
pub fn available() -> Result<(), Error> {
    nft::probe().map_err(|e| Error::Unavailable(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_name_is_prefixed() {
        assert_eq!(table_name("net-1.a"), "vbridge-net-1.a");
    }

    #[test]
    fn codes() {
        let nft = Error::Nft {
            what: "x".into(),
            stderr: "y".into(),
        };
        assert_eq!(nft.code(), conf::ErrorCode::Firewall);
        assert_eq!(Error::NftNotFound.code(), conf::ErrorCode::Firewall);
        assert!(Error::NftNotFound
            .to_string()
            .contains("apt-get install nftables"));
        let check = Error::CheckFailed {
            network: "n".into(),
            problems: vec!["a".into(), "b".into()],
        };
        assert_eq!(check.code(), conf::ErrorCode::CheckFailed);
        assert_eq!(check.to_string(), "firewall of network n: a; b");
        let unavailable = Error::Unavailable(Box::new(Error::NftNotFound));
        assert_eq!(unavailable.code(), conf::ErrorCode::NotAvailable);
    }
}
