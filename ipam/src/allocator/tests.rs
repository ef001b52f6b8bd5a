//! Allocator unit tests on `MemStore`: no disk, no root.

use super::*;
use crate::store::mem::MemStore;
use conf::netconf::NetConf;
use conf::{CmdArgs, ErrorCode};

fn cfg_with(ipam: &str, extra: &str) -> IpamConfig {
    let doc =
        format!(r#"{{"cniVersion":"1.1.0","name":"net1","type":"vbridge","ipam":{ipam}{extra}}}"#);
    let (_, c, _) = NetConf::parse(doc.as_bytes()).expect("netconf");
    IpamConfig::from_netconf(&c, &CmdArgs::default()).expect("ipam config")
}

fn cfg(ipam: &str) -> IpamConfig {
    cfg_with(ipam, "")
}

fn requesting(ipam: &str, ips: &[&str]) -> IpamConfig {
    let list: Vec<String> = ips.iter().map(|i| format!("{i:?}")).collect();
    cfg_with(
        ipam,
        &format!(r#","runtimeConfig":{{"ips":[{}]}}"#, list.join(",")),
    )
}

fn att(id: &str) -> Attachment {
    Attachment::new(id, "eth0")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn one(c: &IpamConfig, st: &mut MemStore, id: &str) -> String {
    let got = assign(c, st, &att(id)).expect("assign");
    assert_eq!(got.len(), 1);
    got[0].to_string()
}

const SMALL: &str = r#"{"subnet":"10.0.0.0/29"}"#; // .1 gateway, .2-.6 usable

#[test]
fn round_robin_does_not_reuse_a_released_address_at_once() {
    let c = cfg(SMALL);
    let mut st = MemStore::new("boot1");
    assert_eq!(one(&c, &mut st, "a"), "10.0.0.2");
    assert_eq!(one(&c, &mut st, "b"), "10.0.0.3");
    assert_eq!(one(&c, &mut st, "c"), "10.0.0.4");
    assert_eq!(
        st.release(&att("b")).expect("release"),
        vec![ip("10.0.0.3")]
    );
    assert_eq!(one(&c, &mut st, "d"), "10.0.0.5");
    assert_eq!(one(&c, &mut st, "e"), "10.0.0.6");
    assert_eq!(
        one(&c, &mut st, "f"),
        "10.0.0.3",
        "wraps around to the released address"
    );
}

#[test]
fn gateway_is_skipped_wherever_it_is() {
    let c = cfg(r#"{"subnet":"10.0.0.0/29","gateway":"10.0.0.4"}"#);
    let mut st = MemStore::new("b");
    let got: Vec<String> = (0..5).map(|i| one(&c, &mut st, &format!("c{i}"))).collect();
    assert_eq!(
        got,
        ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6"]
    );
}

/// Two sets sharing a subnet, set 0's gateway inside set 1's range.
const SHARED_SUBNET: &str = r#"{"ranges":[
    [{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.10","rangeEnd":"10.0.0.19","gateway":"10.0.0.21"}],
    [{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.20","rangeEnd":"10.0.0.22"}]]}"#;

#[test]
fn no_sets_gateway_is_handed_out() {
    let c = cfg(SHARED_SUBNET);
    let mut st = MemStore::new("b");
    let mut second: Vec<IpAddr> = Vec::new();
    for id in ["a", "b"] {
        second.push(assign(&c, &mut st, &att(id)).expect("assign")[1]);
    }
    assert_eq!(second, [ip("10.0.0.20"), ip("10.0.0.22")]);
    assert_eq!(
        assign(&c, &mut st, &att("c"))
            .expect_err("set 1 full")
            .code(),
        ErrorCode::PoolExhausted
    );
    assert_eq!(
        requested_per_set(&requesting(SHARED_SUBNET, &["10.0.0.21"]))
            .expect_err("the walk and the request check agree")
            .code(),
        ErrorCode::AddressOutOfRange
    );
}

#[test]
fn exhaustion_is_code_100_and_reserves_nothing() {
    let c = cfg(SMALL);
    let mut st = MemStore::new("b");
    for i in 0..5 {
        one(&c, &mut st, &format!("c{i}"));
    }
    let e = assign(&c, &mut st, &att("late")).expect_err("full");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
    assert!(
        e.to_string().contains("10.0.0.1-10.0.0.6") || e.to_string().contains("10.0.0.2"),
        "{e}"
    );
    assert!(st.addresses(&att("late")).expect("addrs").is_empty());
    assert_eq!(st.len(), 5);
}

#[test]
fn exclusions_are_never_handed_out() {
    let c = cfg(r#"{"subnet":"10.0.0.0/29","exclude":["10.0.0.3","10.0.0.4/31"]}"#);
    let mut st = MemStore::new("b");
    assert_eq!(one(&c, &mut st, "a"), "10.0.0.2");
    assert_eq!(one(&c, &mut st, "b"), "10.0.0.6");
    assert_eq!(
        assign(&c, &mut st, &att("c")).expect_err("full").code(),
        ErrorCode::PoolExhausted
    );
}

#[test]
fn requested_address_ok() {
    let c = requesting(SMALL, &["10.0.0.5/29"]);
    let mut st = MemStore::new("b");
    assert_eq!(
        assign(&c, &mut st, &att("a")).expect("ok"),
        vec![ip("10.0.0.5")]
    );
}

#[test]
fn requested_address_taken_is_101_and_names_the_holder() {
    let mut st = MemStore::new("b");
    st.reserve(&att("owner"), &[ip("10.0.0.5")])
        .expect("reserve");
    let e = assign(&requesting(SMALL, &["10.0.0.5"]), &mut st, &att("a")).expect_err("taken");
    assert_eq!(e.code(), ErrorCode::AddressTaken);
    assert!(e.to_string().contains("owner"), "{e}");
}

#[test]
fn requested_address_out_of_range_gateway_or_excluded_is_102() {
    let mut st = MemStore::new("b");
    let ex = r#"{"subnet":"10.0.0.0/29","exclude":["10.0.0.6"]}"#;
    for (conf, want, word) in [
        (SMALL, "10.9.9.9", "no configured range"),
        (SMALL, "10.0.0.1", "gateway"),
        (ex, "10.0.0.6", "exclude"),
    ] {
        let e = assign(&requesting(conf, &[want]), &mut st, &att("a")).expect_err(want);
        assert_eq!(e.code(), ErrorCode::AddressOutOfRange, "{want}");
        assert!(
            e.to_string().contains(word) && e.to_string().contains(want),
            "{e}"
        );
    }
    let e = assign(
        &requesting(SMALL, &["10.0.0.2", "10.0.0.3"]),
        &mut st,
        &att("a"),
    )
    .expect_err("two in one set");
    assert_eq!(e.code(), ErrorCode::AddressOutOfRange);
    assert!(st.is_empty());
}

#[test]
fn requested_address_held_by_a_previous_boot_is_still_taken() {
    let mut st = MemStore::new("old");
    st.reserve(&att("ghost"), &[ip("10.0.0.5")])
        .expect("reserve");
    st.reboot("new");
    let e = assign(&requesting(SMALL, &["10.0.0.5"]), &mut st, &att("a")).expect_err("taken");
    assert_eq!(e.code(), ErrorCode::AddressTaken);
}

const DUAL: &str = r#"{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00:1::/64"}]]}"#;

#[test]
fn dual_stack_gets_one_address_per_family() {
    let c = cfg(DUAL);
    let mut st = MemStore::new("b");
    let got = assign(&c, &mut st, &att("a")).expect("ok");
    assert_eq!(got, vec![ip("10.0.0.2"), ip("fd00:1::2")]);
    let r = crate::result(&c, &got, c.dns().expect("dns"));
    assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/24");
    assert_eq!(r.ips[0].gateway, Some(ip("10.0.0.1")));
    assert_eq!(r.ips[1].address.to_string(), "fd00:1::2/64");
    assert!(r.ips.iter().all(|i| i.interface.is_none()) && r.interfaces.is_empty());
}

#[test]
fn requested_address_in_one_set_allocates_the_other() {
    let c = requesting(DUAL, &["fd00:1::99"]);
    let mut st = MemStore::new("b");
    assert_eq!(
        assign(&c, &mut st, &att("a")).expect("ok"),
        vec![ip("10.0.0.2"), ip("fd00:1::99")]
    );
}

#[test]
fn failure_in_a_later_set_leaves_nothing_allocated() {
    let c = cfg(
        r#"{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00:1::/64","rangeStart":"fd00:1::2","rangeEnd":"fd00:1::2"}]]}"#,
    );
    let mut st = MemStore::new("b");
    assign(&c, &mut st, &att("a")).expect("first fits");
    let e = assign(&c, &mut st, &att("b")).expect_err("v6 full");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
    assert!(e.to_string().contains("range set 1"), "{e}");
    assert_eq!(
        st.len(),
        2,
        "the v4 address chosen for b must not stay reserved"
    );
}

#[test]
fn multiple_ranges_in_a_set_are_one_pool() {
    let c = cfg(
        r#"{"ranges":[[{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.10","rangeEnd":"10.0.0.11"},
                       {"subnet":"10.0.1.0/24","rangeStart":"10.0.1.10","rangeEnd":"10.0.1.11"}]]}"#,
    );
    let mut st = MemStore::new("b");
    let got: Vec<String> = (0..4).map(|i| one(&c, &mut st, &format!("c{i}"))).collect();
    assert_eq!(got, ["10.0.0.10", "10.0.0.11", "10.0.1.10", "10.0.1.11"]);
    let r = crate::result(&c, &[ip("10.0.1.10")], c.dns().expect("dns"));
    assert_eq!(
        r.ips[0].gateway,
        Some(ip("10.0.1.1")),
        "the gateway of the address's own range"
    );
    assert_eq!(
        assign(&c, &mut st, &att("x")).expect_err("full").code(),
        ErrorCode::PoolExhausted
    );
}

#[test]
fn re_add_returns_the_same_addresses() {
    let c = cfg(DUAL);
    let mut st = MemStore::new("b");
    let first = assign(&c, &mut st, &att("a")).expect("ok");
    assert_eq!(assign(&c, &mut st, &att("a")).expect("retry"), first);
    assert_eq!(st.len(), 2);
    let e = assign(&requesting(DUAL, &["10.0.0.50"]), &mut st, &att("a"))
        .expect_err("different request");
    assert_eq!(e.code(), ErrorCode::AddressTaken);
}

#[test]
fn release_frees_and_is_idempotent() {
    let c = cfg(SMALL);
    let mut st = MemStore::new("b");
    one(&c, &mut st, "a");
    assert_eq!(st.release(&att("a")).expect("del").len(), 1);
    assert!(st.release(&att("a")).expect("del again").is_empty());
    assert!(st.is_empty());
}

#[test]
fn sequential_fill_costs_one_probe_per_add() {
    let c = cfg(r#"{"subnet":"10.0.0.0/22"}"#);
    let mut st = MemStore::new("b");
    for i in 0..1021 {
        let before = st.probes();
        assign(&c, &mut st, &att(&format!("c{i}"))).expect("fits");
        assert_eq!(
            st.probes() - before,
            1,
            "ADD #{i} probed more than one candidate"
        );
    }
    assert_eq!(
        assign(&c, &mut st, &att("x")).expect_err("full").code(),
        ErrorCode::PoolExhausted
    );
}

#[test]
fn previous_boot_reservations_are_reclaimed_only_when_full() {
    let c = cfg(SMALL);
    let mut st = MemStore::new("boot-A");
    for i in 0..5 {
        one(&c, &mut st, &format!("old{i}"));
    }
    st.release(&att("old2")).expect("free .4");
    st.reboot("boot-B");
    assert_eq!(
        one(&c, &mut st, "new0"),
        "10.0.0.4",
        "a free address wins over reclaiming"
    );
    // Full now: the next ADDs reclaim previous-boot reservations in round-robin order.
    assert_eq!(one(&c, &mut st, "new1"), "10.0.0.5");
    assert!(
        st.addresses(&att("old3")).expect("addrs").is_empty(),
        "the stale attachment is released"
    );
    for id in ["new2", "new3", "new4"] {
        one(&c, &mut st, id);
    }
    let e = assign(&c, &mut st, &att("new5")).expect_err("all current");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
}

/// A DEL cut short by a power loss left a boot-1 record of .2 naming `a`; `a` was added
/// again this boot and got .3. Reclaiming .2 must not take .3 from it.
#[test]
fn reclaiming_a_leftover_record_spares_what_its_attachment_holds_now() {
    let c = cfg(SMALL);
    let mut st = MemStore::new("boot2");
    st.plant_orphan(ip("10.0.0.2"), Record::new(att("a"), Some("boot1")));
    assert_eq!(one(&c, &mut st, "a"), "10.0.0.3");
    for id in ["b", "c", "d"] {
        one(&c, &mut st, id);
    }
    assert_eq!(one(&c, &mut st, "late"), "10.0.0.2", "the leftover goes");
    assert_eq!(
        st.addresses(&att("a")).expect("addrs"),
        vec![ip("10.0.0.3")],
        "a keeps its live address"
    );
    let e = assign(&c, &mut st, &att("later")).expect_err("nothing stale is left");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
}

/// An address record older than the attachment record listing it (this boot's): the
/// address is live, whatever its record's boot says.
#[test]
fn an_address_its_attachment_lists_under_this_boot_is_never_reclaimed() {
    let c = cfg(SMALL);
    let mut st = MemStore::new("boot2");
    assert_eq!(one(&c, &mut st, "a"), "10.0.0.2");
    st.plant_orphan(ip("10.0.0.2"), Record::new(att("a"), Some("boot1")));
    for id in ["b", "c", "d", "e"] {
        one(&c, &mut st, id);
    }
    let e = assign(&c, &mut st, &att("late")).expect_err("nothing is stale");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
    assert_eq!(
        st.addresses(&att("a")).expect("addrs"),
        vec![ip("10.0.0.2")]
    );
}

/// A container brought back after a reboot under its old id (Podman) keeps its address,
/// and from then on that reservation belongs to this boot: filling the pool must not
/// reclaim it for someone else.
#[test]
fn re_add_after_a_reboot_makes_the_reservation_current() {
    let c = cfg(SMALL);
    let mut st = MemStore::new("boot-A");
    let kept = one(&c, &mut st, "kept");
    st.reboot("boot-B");
    assert_eq!(one(&c, &mut st, "kept"), kept, "same address back");
    for i in 0..4 {
        one(&c, &mut st, &format!("new{i}"));
    }
    let e = assign(&c, &mut st, &att("late")).expect_err("pool full of current reservations");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
    assert_eq!(
        st.addresses(&att("kept")).expect("addrs"),
        vec![ip(&kept)],
        "the brought-back container lost its address"
    );
}

#[test]
fn unknown_boot_ids_are_never_reclaimed() {
    let c = cfg(SMALL);
    let mut st = MemStore::default(); // boot id unknown
    for i in 0..5 {
        one(&c, &mut st, &format!("c{i}"));
    }
    st.reboot("now-known");
    assert_eq!(
        assign(&c, &mut st, &att("x")).expect_err("full").code(),
        ErrorCode::PoolExhausted
    );
}

/// Fills SMALL's five addresses as c0..c4.
fn filled(c: &IpamConfig, boot: &str) -> MemStore {
    let mut st = MemStore::new(boot);
    for i in 0..5 {
        one(c, &mut st, &format!("c{i}"));
    }
    st
}

#[test]
fn exhausted_set_answers_after_one_probe_until_a_release() {
    let c = cfg(SMALL);
    let mut st = filled(&c, "b");
    let before = st.probes();
    let e = assign(&c, &mut st, &att("late")).expect_err("full");
    assert_eq!(e.code(), ErrorCode::PoolExhausted);
    assert_eq!(st.probes() - before, 5, "the first finding walks the set");
    for _ in 0..3 {
        let before = st.probes();
        let e = assign(&c, &mut st, &att("late")).expect_err("still full");
        assert_eq!(e.code(), ErrorCode::PoolExhausted);
        assert_eq!(
            st.probes() - before,
            1,
            "the remembered finding, not a walk"
        );
    }
    st.release(&att("c2")).expect("release");
    assert_eq!(one(&c, &mut st, "late"), "10.0.0.4", "a release forgets it");
}

#[test]
fn exhausted_finding_is_forgotten_by_forget_record() {
    let c = cfg(SMALL);
    let mut st = filled(&c, "b");
    assign(&c, &mut st, &att("late")).expect_err("full");
    st.forget_record(ip("10.0.0.3")).expect("forget");
    assert_eq!(one(&c, &mut st, "late"), "10.0.0.3");
}

#[test]
fn exhausted_finding_holds_only_for_its_config_and_boot() {
    let c = cfg(SMALL);
    let mut st = filled(&c, "b");
    assign(&c, &mut st, &att("late")).expect_err("full");
    let wider = cfg(r#"{"subnet":"10.0.0.0/28"}"#);
    assert_eq!(one(&wider, &mut st, "late"), "10.0.0.7", "a widened range");
    let c = cfg(r#"{"subnet":"10.0.0.0/28","exclude":["10.0.0.8/29"]}"#);
    assign(&c, &mut st, &att("late2")).expect_err("full again");
    let fewer = cfg(r#"{"subnet":"10.0.0.0/28","exclude":["10.0.0.8/30"]}"#);
    assert_eq!(
        one(&fewer, &mut st, "late2"),
        "10.0.0.12",
        "a smaller exclusion"
    );
    let gw = cfg(
        r#"{"subnet":"10.0.0.0/28","exclude":["10.0.0.1/32","10.0.0.9/32","10.0.0.10/31","10.0.0.13/32","10.0.0.14/32"],"gateway":"10.0.0.8"}"#,
    );
    assign(&gw, &mut st, &att("late3")).expect_err("full again");
    let other_gw = cfg(
        r#"{"subnet":"10.0.0.0/28","exclude":["10.0.0.1/32","10.0.0.9/32","10.0.0.10/31","10.0.0.13/32","10.0.0.14/32"],"gateway":"10.0.0.1"}"#,
    );
    assert_eq!(
        one(&other_gw, &mut st, "late3"),
        "10.0.0.8",
        "another gateway"
    );

    let mut st = filled(&cfg(SMALL), "boot1");
    assign(&cfg(SMALL), &mut st, &att("late")).expect_err("full");
    st.reboot("boot2");
    assert_eq!(
        one(&cfg(SMALL), &mut st, "late"),
        "10.0.0.2",
        "after a reboot the previous boot's reservations are reclaimable"
    );
}

#[test]
fn walk_keys_differ_by_what_the_walk_covers() {
    let k = |ipam: &str| walk_key(&cfg(ipam), 0);
    let base = k(SMALL);
    assert_eq!(base, k(SMALL), "stable");
    assert_ne!(base, k(r#"{"subnet":"10.0.0.0/28"}"#));
    assert_ne!(
        base,
        k(r#"{"subnet":"10.0.0.0/29","rangeStart":"10.0.0.3"}"#)
    );
    assert_ne!(base, k(r#"{"subnet":"10.0.0.0/29","gateway":"10.0.0.6"}"#));
    let set1 = |ipam: &str| walk_key(&cfg(ipam), 1);
    assert_ne!(
        set1(SHARED_SUBNET),
        set1(&SHARED_SUBNET.replace("10.0.0.21", "10.0.0.30")),
        "another set's gateway"
    );
    assert_ne!(
        base,
        k(r#"{"subnet":"10.0.0.0/29","exclude":["10.0.0.3"]}"#)
    );
}

#[test]
fn a_change_during_the_walk_voids_its_finding() {
    let c = cfg(SMALL);
    let mut st = filled(&c, "b");
    st.change_outside_at_probe(3);
    assign(&c, &mut st, &att("late")).expect_err("full");
    let before = st.probes();
    assign(&c, &mut st, &att("late")).expect_err("still full");
    assert_eq!(
        st.probes() - before,
        5,
        "the finding predates the change and must not be trusted"
    );
}
