//! One file per CNI verb; this module wires them into `conf::skel::Plugin`.

mod add;
mod check;
pub mod del;
mod gc;
mod status;

use crate::error::{Error, Result};
use conf::netconf::{decode, NetConf};
use conf::skel::{Plugin, Request};
use conf::CniError;

pub struct VBridge;

impl Plugin for VBridge {
    fn about(&self) -> String {
        format!(
            "vbridge {}: CNI plugin for a VLAN-filtering Linux bridge (run `vbridge --help`)",
            env!("CARGO_PKG_VERSION")
        )
    }
    fn add(&self, req: &Request) -> Result<String, CniError> {
        add::add(req).map_err(Into::into)
    }
    fn del(&self, req: &Request) -> Result<(), CniError> {
        del::del(req).map_err(Into::into)
    }
    fn check(&self, req: &Request) -> Result<(), CniError> {
        check::check(req).map_err(Into::into)
    }
    fn gc(&self, req: &Request) -> Result<(), CniError> {
        gc::gc(req).map_err(Into::into)
    }
    fn status(&self, req: &Request) -> Result<(), CniError> {
        status::status(req).map_err(Into::into)
    }
}

/// The typed config of a request. Its values are checked by `addable`: DEL, CHECK and GC
/// must work with whatever config an ADD refused.
pub(crate) fn load(req: &Request) -> Result<NetConf> {
    Ok(decode(&req.raw, "network config")?)
}

/// What only ADD (and STATUS, which answers whether an ADD could succeed) refuses on top
/// of `load`, as the reference does; DEL must clean up whatever the config says.
pub(crate) fn addable(conf: &NetConf) -> Result<()> {
    conf.validate_for_add()?;
    if conf.disable_container_interface && !crate::ipam_client::ipam_type(conf).is_empty() {
        return Err(conf::Error::config(
            "\"disableContainerInterface\": true leaves the container interface down, so it \
             cannot be used with \"ipam\"; remove one of them",
        )
        .into());
    }
    Ok(())
}

/// A current-thread runtime: no worker threads, so no task can run in a namespace
/// other than the host's.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Error::io("failed to start the netlink runtime", e))
}

/// The gateways gateway mode puts on the bridge, each with the prefix of the container
/// address it falls in — ADD places them so and CHECK looks for them so; one outside
/// every address (a /32 lease's router) is not placed.
pub(crate) fn bridge_gateways(
    gws: &[std::net::IpAddr],
    addrs: &[ipnetwork::IpNetwork],
) -> Vec<(std::net::IpAddr, u8)> {
    (gws.iter())
        .filter_map(|g| {
            let n = addrs.iter().find(|n| n.contains(*g))?;
            Some((*g, n.prefix()))
        })
        .collect()
}

/// The network's subnets as seen in an IPAM result (address with host bits cleared).
pub(crate) fn subnets_of(ips: &[ipnetwork::IpNetwork]) -> Vec<ipnetwork::IpNetwork> {
    let mut out: Vec<ipnetwork::IpNetwork> = ips
        .iter()
        .filter_map(|n| ipnetwork::IpNetwork::new(n.network(), n.prefix()).ok())
        .collect();
    out.sort_by_key(|n| n.to_string());
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_clear_host_bits_and_dedup() {
        let ips: Vec<ipnetwork::IpNetwork> = ["10.0.0.5/24", "10.0.0.9/24", "fd00::5/64"]
            .iter()
            .map(|s| s.parse().expect("cidr"))
            .collect();
        let got: Vec<String> = subnets_of(&ips).iter().map(ToString::to_string).collect();
        assert_eq!(got, ["10.0.0.0/24", "fd00::/64"]);
    }
}
