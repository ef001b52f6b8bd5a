//! ADD: reserve one address per range set (or return the ones already held).

use crate::allocator::{self, range_of};
use crate::Error;
use conf::ipamconf::IpamConfig;
use conf::result::{Dns, IpConfig};
use conf::{Attachment, CniResult};
use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// Reserves addresses for `att` and returns the abbreviated IPAM result.
pub fn add(cfg: &IpamConfig, att: &Attachment) -> Result<CniResult, Error> {
    cfg.validate_for_add()?;
    // Before anything is reserved: an unreadable resolvConf fails the ADD with nothing done.
    let dns = cfg.dns()?;
    let mut store = super::lock(cfg, true)?;
    let ips = allocator::assign(cfg, &mut store, att)?;
    log::info!(
        "network {}: {}/{} got {}",
        cfg.network,
        att.container_id,
        att.ifname,
        join(&ips)
    );
    Ok(result(cfg, &ips, dns))
}

/// The abbreviated result an IPAM plugin returns: no interfaces, each address with its
/// range's prefix and gateway, the configured routes and `dns`.
pub fn result(cfg: &IpamConfig, ips: &[IpAddr], dns: Dns) -> CniResult {
    let ips = ips
        .iter()
        .map(|ip| {
            let range = range_of(cfg, *ip);
            IpConfig {
                interface: None,
                // `assign` only returns addresses inside a range; a host route is the
                // honest fallback should that ever change.
                address: range.map_or_else(|| IpNetwork::from(*ip), |r| r.cidr(*ip)),
                gateway: range.and_then(|r| r.gateway),
            }
        })
        .collect();
    CniResult {
        interfaces: Vec::new(),
        ips,
        routes: cfg.routes.clone(),
        dns,
    }
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
