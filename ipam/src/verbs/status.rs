//! STATUS: code 50 with the reason when an ADD could not succeed.

use conf::skel::Request;
use ipam::Error;

pub fn run(req: &Request) -> Result<(), Error> {
    let (_, cfg) = super::load(req).map_err(|e| Error::NotAvailable(e.to_string()))?;
    ipam::status(&cfg)
}
