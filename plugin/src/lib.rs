//! vbridge: attaches containers to a (VLAN-filtering) Linux bridge.
//!
//! Layout: `verbs/` holds one file per CNI verb; `netlink`, `netns`, `bridge`, `veth`
//! and `sysctl` are the kernel plumbing; `firewall` programs nftables once per network;
//! `state` is the per-network bookkeeping that lets DEL and GC work without the netns;
//! `ipam_client` runs IPAM in-process or execs a delegate.

pub mod bridge;
pub mod error;
pub mod firewall;
pub mod ifreq;
pub mod install;
pub mod ipam_client;
pub mod macspoof;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod network;
pub mod state;
pub mod sysctl;
pub mod timing;
pub mod verbs;

pub use error::Error;

/// `vbridge --help`.
pub const HELP: &str = "\
vbridge - CNI plugin: containers on a (VLAN-filtering) Linux bridge

USAGE
  Container runtimes run vbridge from their CNI plugin directory (e.g. /opt/cni/bin)
  with CNI_COMMAND=ADD|DEL|CHECK|GC|STATUS|VERSION in the environment and the network
  config as JSON on stdin. The result or a CNI error is printed on stdout.

  vbridge --help       this text
  vbridge --version    the version

CONFIG (see README.md for every key)
  {\"cniVersion\": \"1.0.0\", \"name\": \"mynet\", \"type\": \"vbridge\",
   \"bridge\": \"cni0\", \"isGateway\": true, \"isDefaultGateway\": true, \"ipMasq\": true,
   \"ipam\": {\"type\": \"vbridge-ipam\", \"subnet\": \"10.88.0.0/16\"}}

LOGS
  stderr only; set \"logLevel\" (error|warn|info|debug|trace) and \"logFile\" in the config,
  or VBRIDGE_LOG in the environment.
";
