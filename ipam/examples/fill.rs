//! Scale check: fills a /16 (65,534 reservations) through the library in a temp dir and
//! prints the cost of every 1,000 ADDs, then the first/last ratio. A flat ratio (≈1)
//! shows ADD cost does not depend on how many addresses are taken.
//!
//! Run: `cargo run --release -p ipam --example fill` (optionally `-- DIR` to fill a store
//! under DIR, e.g. a tmpfs, instead of the system temp dir).

use conf::ipamconf::IpamConfig;
use conf::netconf::NetConf;
use conf::{Attachment, CmdArgs, ErrorCode};
use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const BLOCK: usize = 1000;

fn config(data_dir: &str) -> Result<IpamConfig, Box<dyn Error>> {
    let doc = format!(
        r#"{{"cniVersion":"1.1.0","name":"fill","type":"vbridge-ipam",
            "ipam":{{"type":"vbridge-ipam","subnet":"10.200.0.0/16","dataDir":{data_dir:?}}}}}"#
    );
    let (_, conf, _) = NetConf::parse(doc.as_bytes())?;
    Ok(IpamConfig::from_netconf(&conf, &CmdArgs::default())?)
}

fn per_op(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1000.0 / n as f64
}

fn main() -> Result<(), Box<dyn Error>> {
    let base = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("vbridge-ipam-fill-{}", std::process::id()));
    let cfg = config(&dir.display().to_string())?;
    println!("filling 10.200.0.0/16 in {}", dir.display());
    let mut blocks = Vec::new();
    let (mut n, mut t) = (0usize, Instant::now());
    loop {
        let att = Attachment::new(format!("ctr{n}"), "eth0");
        let op = Instant::now();
        match ipam::add(&cfg, &att) {
            Ok(_) => n += 1,
            Err(e) if e.code() == ErrorCode::PoolExhausted => {
                println!(
                    "ADD that found the pool full: code {} in {:.1} ms (walks the range)",
                    e.code().as_u32(),
                    op.elapsed().as_secs_f64() * 1000.0
                );
                break;
            }
            Err(e) => return Err(e.into()),
        }
        if n % BLOCK == 0 {
            let ms = per_op(t.elapsed(), BLOCK);
            println!("ADD {:>6}-{:>6}: {ms:.3} ms/op", n - BLOCK, n - 1);
            blocks.push(ms);
            t = Instant::now();
        }
    }
    println!("reserved {n} addresses");
    // The ADD that found the pool full walked the whole range (and read every record,
    // looking for a previous boot's); the ones after it use that finding.
    for what in ["ADD", "ADD", "STATUS"] {
        let t = Instant::now();
        let att = Attachment::new("one-more", "eth0");
        let refused = match what {
            "ADD" => ipam::add(&cfg, &att).err(),
            _ => ipam::status(&cfg).err(),
        };
        println!(
            "{what} on the full pool: code {:?} in {:.3} ms",
            refused.map(|e| e.code().as_u32()),
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    let t = Instant::now();
    for i in 0..BLOCK {
        ipam::del(&cfg, &Attachment::new(format!("ctr{i}"), "eth0"))?;
    }
    println!(
        "DEL of {BLOCK} on the full store: {:.3} ms/op",
        per_op(t.elapsed(), BLOCK)
    );
    if let (Some(first), Some(last)) = (blocks.first(), blocks.last()) {
        println!(
            "first 1,000: {first:.3} ms/op, last 1,000: {last:.3} ms/op, last/first = {:.2}",
            last / first
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
