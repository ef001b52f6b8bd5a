//! CHECK: the store must hold exactly the prevResult's addresses of this network.

use conf::ipamconf::IpamConfig;
use conf::skel::Request;
use conf::CniResult;
use ipam::Error;
use std::net::IpAddr;

pub fn run(req: &Request) -> Result<(), Error> {
    let (conf, cfg) = super::load(req)?;
    // Which addresses are this store's is read off the ranges: with anything an ADD
    // would refuse (a range set that no longer parses, overlapping sets, a bad
    // exclusion) the answer would be a misleading mismatch, so the config error is it.
    // vbridge's in-process CHECK compares by attachment and needs no ranges.
    if let Some(p) = &cfg.add_problem {
        return Err(conf::Error::config(p.clone()).into());
    }
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        conf::Error::config(
            "CHECK needs \"prevResult\" (the ADD result the runtime cached); none was given",
        )
    })?;
    let result = CniResult::from_value(prev)?;
    let expected = ours(&cfg, result.ips.iter().map(|i| i.address.ip()));
    ipam::check(&cfg, &req.args.attachment(), &expected)
}

/// In a chain the final result may carry addresses other plugins added; only those
/// inside this network's ranges are this store's business.
fn ours(cfg: &IpamConfig, ips: impl Iterator<Item = IpAddr>) -> Vec<IpAddr> {
    ips.filter(|ip| ipam::allocator::range_of(cfg, *ip).is_some())
        .collect()
}
