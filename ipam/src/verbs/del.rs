//! DEL: release; succeeds when nothing is reserved.

use conf::skel::Request;
use ipam::Error;

pub fn run(req: &Request) -> Result<(), Error> {
    let (_, cfg) = super::load(req)?;
    ipam::del(&cfg, &req.args.attachment())
}
