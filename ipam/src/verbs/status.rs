//! STATUS: code 50 with the reason when an ADD could not succeed. An invalid config is
//! reported as such (code 7, naming the field), as every other verb and `vbridge` do.

use conf::skel::Request;
use ipam::Error;

pub fn run(req: &Request) -> Result<(), Error> {
    let (_, cfg) = super::load(req)?;
    ipam::status(&cfg)
}
