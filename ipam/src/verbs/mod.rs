//! The CNI verbs of the `vbridge-ipam` binary: decode the request, call the library,
//! hand the outcome back to `skel` (which alone prints).

mod add;
mod check;
mod del;
mod gc;
mod status;

use conf::ipamconf::IpamConfig;
use conf::netconf::NetConf;
use conf::skel::{Plugin, Request};
use conf::CniError;
use ipam::Error;

pub struct IpamPlugin;

impl Plugin for IpamPlugin {
    fn about(&self) -> String {
        format!(
            "vbridge-ipam {}: host-local compatible IPAM plugin (run `vbridge-ipam --help` for the admin commands)",
            env!("CARGO_PKG_VERSION")
        )
    }

    fn add(&self, req: &Request) -> Result<String, CniError> {
        add::run(req).map_err(CniError::from)
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        del::run(req).map_err(CniError::from)
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        check::run(req).map_err(CniError::from)
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        gc::run(req).map_err(CniError::from)
    }

    fn status(&self, req: &Request) -> Result<(), CniError> {
        status::run(req).map_err(CniError::from)
    }
}

/// The whole plugin config (an IPAM plugin receives all of it) and its `ipam` section.
fn load(req: &Request) -> Result<(NetConf, IpamConfig), Error> {
    let conf: NetConf = conf::netconf::decode(&req.raw, "network config")?;
    let ipam = IpamConfig::from_netconf(&conf, &req.args)?;
    Ok((conf, ipam))
}
