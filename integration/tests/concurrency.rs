//! Parallel ADD/DEL never hands one address to two live attachments and leaks nothing.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;

use integration::result::ip_of;
use integration::{ip, Container, Runtime, TestNet};

fn assert_bridge_empty(net: &TestNet) {
    let ports = ip::bridge_ports(&net.host, &net.bridge);
    assert!(ports.is_empty(), "ports left on the bridge: {ports:?}");
    let veths = ip::veths_after(&net.host, &[], std::time::Duration::from_secs(10));
    assert!(veths.is_empty(), "veths left in the host netns: {veths:?}");
}

#[test]
fn concurrent_adds_get_distinct_addresses() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let containers: Vec<Container> = (0..20).map(|_| Container::new()).collect();
    let addrs: Vec<Ipv4Addr> = std::thread::scope(|s| {
        let jobs: Vec<_> = containers
            .iter()
            .map(|c| s.spawn(|| rt.add(&c.att).map(|r| ip_of(&r))))
            .collect();
        jobs.into_iter()
            .map(|j| {
                j.join()
                    .expect("thread")
                    .unwrap_or_else(|e| panic!("ADD: {e}"))
            })
            .collect()
    });
    assert_eq!(
        addrs.iter().collect::<HashSet<_>>().len(),
        20,
        "duplicate addresses: {addrs:?}"
    );
    std::thread::scope(|s| {
        let jobs: Vec<_> = containers
            .iter()
            .map(|c| s.spawn(|| rt.del(&c.att)))
            .collect();
        for j in jobs {
            j.join()
                .expect("thread")
                .unwrap_or_else(|e| panic!("DEL: {e}"));
        }
    });
    assert_bridge_empty(&net);
    let fresh = Container::new();
    rt.add(&fresh.att)
        .unwrap_or_else(|e| panic!("fresh ADD: {e}"));
    rt.del(&fresh.att)
        .unwrap_or_else(|e| panic!("fresh DEL: {e}"));
}

/// Addresses currently held by live attachments → container id.
type Live = Mutex<HashMap<Ipv4Addr, String>>;

/// A tiny deterministic PRNG (xorshift), enough to mix ADDs and DELs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn add_one(rt: &Runtime, live: &Live, mine: &mut Vec<(Container, Ipv4Addr)>) {
    let c = Container::new();
    let addr = ip_of(&rt.add(&c.att).unwrap_or_else(|e| panic!("ADD: {e}")));
    let prev = live
        .lock()
        .expect("live set")
        .insert(addr, c.id().to_string());
    assert!(
        prev.is_none(),
        "{addr} given to {} while {prev:?} holds it",
        c.id()
    );
    mine.push((c, addr));
}

fn del_one(rt: &Runtime, live: &Live, mine: &mut Vec<(Container, Ipv4Addr)>, pick: usize) {
    let (c, addr) = mine.swap_remove(pick % mine.len());
    // Leave the live set first: once DEL starts the address may legitimately be reused.
    live.lock().expect("live set").remove(&addr);
    rt.del(&c.att).unwrap_or_else(|e| panic!("DEL: {e}"));
}

fn worker(rt: &Runtime, live: &Live, seed: u64, ops: usize) {
    let mut rng = Rng(seed);
    let mut mine = Vec::new();
    for _ in 0..ops {
        let r = rng.next();
        if !mine.is_empty() && r % 2 == 0 {
            del_one(rt, live, &mut mine, (r >> 8) as usize);
        } else {
            add_one(rt, live, &mut mine);
        }
    }
    while !mine.is_empty() {
        del_one(rt, live, &mut mine, 0);
    }
}

#[test]
fn mixed_add_del_never_double_allocates() {
    let net = TestNet::new();
    let rt = net.runtime(net.vbridge_conflist("1.0.0"));
    let live: Live = Mutex::new(HashMap::new());
    std::thread::scope(|s| {
        for w in 0..8u64 {
            let (rt, live) = (&rt, &live);
            s.spawn(move || worker(rt, live, 0x9e37_79b9_7f4a_7c15 ^ (w + 1), 25));
        }
    });
    assert!(live.lock().expect("live set").is_empty());
    assert_bridge_empty(&net);
}
