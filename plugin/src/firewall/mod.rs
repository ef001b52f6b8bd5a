//! nftables state of a network: masquerade and isolation, programmed once per network.
//!
//! The caller runs [`install`] when a network gets its first attachment and [`remove`]
//! when the last one goes; steady-state ADD/DEL never exec `nft`. Each call is one
//! `nft -j -f -` exec, i.e. one atomic transaction, and is idempotent.
//!
//! # Layout
//! ```text
//! table inet vbridge-<net>                      # one per network with firewall state
//!   chain postrouting { type nat hook postrouting priority srcnat; policy accept; }   (ipMasq)
//!     ip saddr S ip daddr != S ip daddr != 224.0.0.0/4 masquerade     # per v4 subnet S
//!     ip6 saddr S ip6 daddr != S ip6 daddr != ff00::/8 masquerade     # per v6 subnet S
//! table inet vbridge                            # shared by all networks
//!   set nets4 { type ipv4_addr; flags interval; }   # subnets of every network with state
//!   set nets6 { type ipv6_addr; flags interval; }
//!   chain isolate-<net> { type filter hook forward priority filter; policy accept; }  (isolate)
//!     ip saddr A ip daddr B return              # every pair of own subnets A, B
//!     ip saddr A ip daddr @nets4 drop           # own -> other vbridge network
//!     ip saddr @nets4 ip daddr A drop           # other vbridge network -> own
//! ```
//! Why this shape: a rule can only use a set of its own table, so the isolation chain
//! of each network lives in the shared table next to the sets; being a base chain of
//! its own, it is created, flushed and deleted without touching any other network's
//! rules (no rule handles, no listing before a change). Traffic to the outside and
//! inside the network passes (policy accept, returns first, also with br_netfilter).
//!
//! # Idempotency and cost
//! `add` of an existing table/chain/set/element is a no-op, `add rule` is not. So
//! [`install`] flushes the per-network table and the isolation chain before adding
//! rules (a re-install with more subnets or other settings is exact; ipMasq turned off
//! leaves at most an empty nat chain), and [`remove`] `add`s each object before
//! deleting it in the same batch so that nothing missing makes it fail. Any deletion
//! makes the kernel's commit wait for an RCU grace period (measured ~3.5 ms per
//! transaction without, ~12 ms with), so [`install`] deletes only when it must: the
//! isolation chain of a network with isolate off.
//!
//! # Limitations
//! - Only networks with firewall state (ipMasq or isolate) are in `nets4`/`nets6`: an
//!   isolated network is not isolated from a vbridge network that has neither.
//! - Subnets of different networks must not overlap: nft rejects an element inside
//!   another ("interval overlaps"), and an identical subnet on two networks leaves the
//!   set when either network is removed. [`remove`] must get the subnets [`install`]
//!   got, and [`reinstall`] the ones the state it replaces was built from. Within one
//!   network a subnet inside another (a resize) is dropped: see `subnets`.
//! - [`remove`] leaves the shared table with its (possibly empty) sets: knowing whether
//!   another network still uses them would take a listing. It hooks nothing.
//! - As in the reference plugin, traffic between two subnets of one network that is
//!   routed by the host is masqueraded (`daddr != S` names only the source's subnet).
//!
//! The exec inherits the netns of the calling thread; the caller runs us in the host's.

mod check;
mod nft;
mod plan;
mod probe;
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
}

impl Error {
    pub fn code(&self) -> conf::ErrorCode {
        match self {
            Error::CheckFailed { .. } => conf::ErrorCode::CheckFailed,
            Error::Unavailable(_) => conf::ErrorCode::NotAvailable,
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
pub fn install(r: &NetworkRules) -> Result<(), Error> {
    reinstall(r, &[])
}

/// [`install`] over a state that was built from `before` and is still there: the set
/// elements of `before` that `r` no longer has are deleted in the same transaction.
pub fn reinstall(r: &NetworkRules, before: &[IpNetwork]) -> Result<(), Error> {
    let plan = Plan::new(r.network, r.subnets, r.masquerade, r.isolate).replacing(before);
    nft::apply(
        &plan::batch(&plan),
        &format!("installing the firewall of network {}", r.network),
    )
}

/// Removes the network's table, isolation chain and set elements; succeeds when
/// nothing is there.
///
/// `subnets` may nest when an install that widened a subnet failed or was killed: the
/// set then holds either the container or what it replaced, and nft refuses to touch
/// the one absent beside the other. So the innermost subnets get a second try.
pub fn remove(network: &str, subnets: &[IpNetwork]) -> Result<(), Error> {
    let outer = collapse(subnets);
    match remove_exactly(network, &outer) {
        Err(Error::Nft { .. }) if subnets::innermost(subnets) != outer => {
            remove_exactly(network, &subnets::innermost(subnets))
        }
        r => r,
    }
}

fn remove_exactly(network: &str, subnets: &[IpNetwork]) -> Result<(), Error> {
    let plan = Plan::new(network, subnets, false, false);
    nft::apply(
        &plan::batch(&plan),
        &format!("removing the firewall of network {network}"),
    )
}

/// Whether the tables [`install`] creates for `network` exist, asked over netlink
/// without an exec: cheap enough for every ADD.
pub fn installed(network: &str) -> std::io::Result<bool> {
    probe::inet_tables_exist(&[&plan::table_name(network), SHARED_TABLE])
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
