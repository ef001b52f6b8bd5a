//! A small libcni-like harness that runs CNI plugin binaries the way a container runtime does,
//! confined to throwaway network namespaces.
//!
//! Building blocks:
//! - [`netns::Netns`]: a named namespace (`ip netns add vbt-<pid>-<n>`), emptied and removed on drop;
//!   [`netns::NetnsGuard`] enters one on the current thread and restores on drop.
//! - [`exec::exec`]: one raw plugin call (env cleared except `PATH`, the plugin process `setns`es
//!   into the fake host netns before `exec`), returning [`exec::Output`] with the parsed CNI error.
//! - [`runtime::Runtime`]: conflist ADD/CHECK/DEL/GC/STATUS like libcni: injects `name`,
//!   `cniVersion`, `prevResult` and `runtimeConfig`, strips `capabilities`, caches the final ADD
//!   result per (container id, ifname).
//! - [`ip`]: `ip -j` queries, `ping`, `nft` tables, commands inside a netns; [`frame`]: raw
//!   Ethernet frames with a forged source MAC.
//! - [`probe`]: a one-shot TCP listener and client living in chosen namespaces, to see which source
//!   address a peer really uses (masquerade, port forwarding).
//! - [`vlan`]: bridge port VIDs (`bridge -j vlan show`), a bridge's `vlan_filtering`, and a probe
//!   of the running kernel's VLAN support.
//! - [`podman`]: a private Podman 4 (CNI backend, own config, plugin dir and store) driven
//!   inside a world's fake host netns; [`ipam_ls`]: reservations via `vbridge-ipam ls --json`.
//! - [`fixture`]: per-test worlds (fake host netns, temp dirs, unique names and subnets, an
//!   "outside" netns wired to the host) and vbridge config builders.
//!
//! Binaries come from `VBRIDGE_BIN_DIR` (scripts/test points it at `target/dist`, the shipped
//! build), else `$CARGO_TARGET_DIR/debug`, else `<workspace>/target/debug` — `cargo test -p
//! integration` does not build them: run `scripts/build-release` or `cargo build --workspace`
//! first. The reference plugins come from `/usr/lib/cni`.
//! Everything here needs root; the machine's own network namespace is never modified.

pub mod examples;
pub mod exec;
pub mod fixture;
pub mod frame;
pub mod ip;
pub mod ipam_ls;
pub mod netns;
pub mod paths;
pub mod podman;
pub mod probe;
pub mod result;
pub mod runtime;
pub mod tmp;
pub mod vlan;

pub use exec::{exec, CniError, Output};
pub use fixture::{Container, Outside, Subnet, TestNet, TEARDOWN};
pub use netns::{Netns, NetnsGuard};
pub use runtime::{Attachment, CniFailure, Runtime};
pub use tmp::TempDir;
