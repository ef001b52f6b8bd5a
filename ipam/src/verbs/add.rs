//! ADD: reserve and print the abbreviated result in the config's version.

use conf::skel::Request;
use ipam::Error;

pub fn run(req: &Request) -> Result<String, Error> {
    let (_, cfg) = super::load(req)?;
    let result = ipam::add(&cfg, &req.args.attachment())?;
    Ok(result.to_json(req.common.version))
}
