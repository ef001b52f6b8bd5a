//! Privileged tests: apply rules for real, each in a fresh network namespace.
//!
//! They need root and `nft` (the test command runs as root); without them they fail
//! loudly instead of skipping. The netns is unshared by the test thread only, and
//! `nft` inherits it because `Command` spawns from the calling thread.

use super::subnets::nets;
use super::*;
use nix::sched::{unshare, CloneFlags};
use serde_json::Value;

/// Runs `f` on a thread of its own in a new, empty network namespace.
fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let handle = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET) failed: the firewall tests must run as root");
        let out = f();
        // The netns dies with this thread: its lock of the shared sets goes with it.
        if let Ok(ns) = std::fs::metadata("/proc/thread-self/ns/net") {
            use std::os::unix::fs::MetadataExt;
            let _ignored = std::fs::remove_file(super::shared_sets_lock(ns.ino()));
        }
        out
    });
    match handle.join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn listing(table: &str) -> Option<Value> {
    nft::list_table("inet", table).expect("nft list")
}

/// Rules of `chain` in `table`, as their `expr` arrays.
fn rules(table: &str, chain: &str) -> Vec<Value> {
    let Some(l) = listing(table) else {
        return Vec::new();
    };
    l["nftables"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["chain"] == chain)
        .map(|r| r["expr"].clone())
        .collect()
}

fn has_chain(table: &str, chain: &str) -> bool {
    listing(table).is_some_and(|l| {
        l["nftables"]
            .as_array()
            .expect("array")
            .iter()
            .any(|o| o.get("chain").is_some_and(|c| c["name"] == chain))
    })
}

fn set_elems(set: &str) -> Vec<Value> {
    let Some(l) = listing("vbridge") else {
        return Vec::new();
    };
    l["nftables"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|o| o.get("set"))
        .find(|s| s["name"] == set)
        .and_then(|s| s["elem"].as_array().cloned())
        .unwrap_or_default()
}

/// The keys of the set's elements, without their comments.
fn set_keys(set: &str) -> Vec<Value> {
    let key = |e: Value| e.get("elem").map_or(e.clone(), |w| w["val"].clone());
    set_elems(set).into_iter().map(key).collect()
}

fn prefix(addr: &str, len: u8) -> Value {
    serde_json::json!({"prefix": {"addr": addr, "len": len}})
}

/// A listed element with its comment, as `nft -j list` shows it.
fn commented(key: Value, comment: &str) -> Value {
    serde_json::json!({"elem": {"val": key, "comment": comment}})
}

fn rules_of<'a>(network: &'a str, subnets: &'a [IpNetwork]) -> NetworkRules<'a> {
    NetworkRules {
        network,
        subnets,
        masquerade: true,
        isolate: true,
    }
}

fn is_masquerade(expr: &Value) -> bool {
    expr.as_array()
        .is_some_and(|e| e.iter().any(|s| s.get("masquerade").is_some()))
}

fn check_problems(r: &NetworkRules) -> Vec<String> {
    match check(r) {
        Ok(()) => Vec::new(),
        Err(Error::CheckFailed { problems, .. }) => problems,
        Err(e) => panic!("check failed to run: {e}"),
    }
}

#[test]
fn available_in_fresh_netns() {
    in_fresh_netns(|| available().expect("nft usable (apt-get install nftables)"));
}

#[test]
fn install_twice_is_exact_and_remove_twice_is_ok() {
    in_fresh_netns(|| {
        let subnets = nets(&["10.10.0.0/24", "10.11.0.0/24", "fd00:10::/64"]);
        let r = NetworkRules {
            network: "dup",
            subnets: &subnets,
            masquerade: true,
            isolate: true,
        };
        install(&r).expect("first install");
        install(&r).expect("second install");
        let masq = rules("vbridge-dup", "postrouting");
        assert_eq!(masq.len(), 3, "one masquerade rule per subnet: {masq:?}");
        assert!(masq.iter().all(is_masquerade));
        // v4: 4 pair returns + 2 + 2 drops; v6: 1 + 1 + 1.
        assert_eq!(rules("vbridge", "isolate-dup").len(), 11);
        assert_eq!(set_elems("nets4").len(), 2);
        assert_eq!(set_elems("nets6").len(), 1);
        check(&r).expect("check after install");

        remove("dup", &subnets).expect("first remove");
        remove("dup", &subnets).expect("second remove");
        assert!(listing("vbridge-dup").is_none());
        assert!(!has_chain("vbridge", "isolate-dup"));
        assert!(set_elems("nets4").is_empty() && set_elems("nets6").is_empty());
        let err = check(&r).expect_err("check after remove must fail");
        assert_eq!(err.code(), conf::ErrorCode::CheckFailed);
        let msg = err.to_string();
        assert!(msg.contains("table inet vbridge-dup is missing"), "{msg}");
        assert!(msg.contains("10.10.0.0/24 is missing from set"), "{msg}");
    });
}

#[test]
fn remove_on_a_clean_host_succeeds() {
    in_fresh_netns(|| {
        remove("never", &nets(&["10.20.0.0/16", "fd00:20::/64"])).expect("remove of nothing");
        remove("never", &[]).expect("remove without subnets");
    });
}

#[test]
fn v4_only_and_v6_only_masquerade_check_ok() {
    in_fresh_netns(|| {
        let v4 = nets(&["10.30.0.0/16"]);
        let v6 = nets(&["fd00:30::/64"]);
        let r4 = NetworkRules {
            network: "v4",
            subnets: &v4,
            masquerade: true,
            isolate: false,
        };
        let r6 = NetworkRules {
            network: "v6",
            subnets: &v6,
            ..r4
        };
        install(&r4).expect("install v4");
        install(&r6).expect("install v6");
        check(&r4).expect("check v4");
        check(&r6).expect("check v6");
        assert!(!has_chain("vbridge", "isolate-v4"));
        // Checking for isolation that was never installed names the chain.
        let iso = NetworkRules {
            isolate: true,
            ..r4
        };
        assert_eq!(
            check_problems(&iso),
            ["chain inet vbridge isolate-v4 is missing"]
        );
    });
}

#[test]
fn reinstall_with_other_settings_is_exact() {
    in_fresh_netns(|| {
        let subnets = nets(&["10.40.0.0/24", "fd00:40::/64"]);
        let both = NetworkRules {
            network: "t",
            subnets: &subnets,
            masquerade: true,
            isolate: true,
        };
        let masq_only = NetworkRules {
            isolate: false,
            ..both
        };
        let iso_only = NetworkRules {
            masquerade: false,
            ..both
        };
        install(&both).expect("install both");
        install(&masq_only).expect("install masquerade only");
        assert!(!has_chain("vbridge", "isolate-t"));
        check(&masq_only).expect("check masquerade only");

        // Masquerade off: `flush table` leaves no masquerade rule behind.
        install(&iso_only).expect("install isolate only");
        assert_eq!(rules("vbridge", "isolate-t").len(), 6);
        assert!(rules("vbridge-t", "postrouting").is_empty());
        assert!(
            listing("vbridge-t").is_some(),
            "table kept as the network's marker"
        );
        check(&iso_only).expect("check isolate only");

        let neither = NetworkRules {
            isolate: false,
            ..iso_only
        };
        install(&neither).expect("install with no state = remove");
        assert!(listing("vbridge-t").is_none());
        assert!(!has_chain("vbridge", "isolate-t"));
        assert!(set_elems("nets4").is_empty() && set_elems("nets6").is_empty());
    });
}

#[test]
fn reinstall_with_a_new_subnet_rewrites_the_rules() {
    in_fresh_netns(|| {
        let one = nets(&["10.45.0.0/24"]);
        let two = nets(&["10.45.0.0/24", "fd00:45::/64"]);
        let r = NetworkRules {
            network: "grow",
            subnets: &one,
            masquerade: true,
            isolate: true,
        };
        install(&r).expect("install one subnet");
        let r2 = NetworkRules { subnets: &two, ..r };
        install(&r2).expect("install two subnets");
        assert_eq!(rules("vbridge-grow", "postrouting").len(), 2);
        assert_eq!(rules("vbridge", "isolate-grow").len(), 6);
        check(&r2).expect("check");
    });
}

#[test]
fn two_isolated_networks_remove_one_keeps_the_other() {
    in_fresh_netns(|| {
        let sa = nets(&["10.50.0.0/24", "fd00:50::/64"]);
        let sb = nets(&["10.51.0.0/24"]);
        let a = NetworkRules {
            network: "a",
            subnets: &sa,
            masquerade: true,
            isolate: true,
        };
        let b = NetworkRules {
            network: "b",
            subnets: &sb,
            ..a
        };
        install(&a).expect("install a");
        install(&b).expect("install b");
        assert!(listing("vbridge-a").is_some() && listing("vbridge-b").is_some());
        assert_eq!(set_elems("nets4").len(), 2);
        check(&a).expect("check a");
        check(&b).expect("check b");

        remove("a", &sa).expect("remove a");
        check(&b).expect("b intact after removing a");
        assert!(listing("vbridge-a").is_none());
        assert!(!has_chain("vbridge", "isolate-a"));
        assert_eq!(rules("vbridge-b", "postrouting").len(), 1);
        assert_eq!(set_elems("nets4").len(), 1);
        assert!(set_elems("nets6").is_empty());
    });
}

#[test]
fn overlapping_subnets_fail_with_nft_message() {
    in_fresh_netns(|| {
        let wide = nets(&["10.60.0.0/16"]);
        let narrow = nets(&["10.60.1.0/24"]);
        let a = NetworkRules {
            network: "wide",
            subnets: &wide,
            masquerade: true,
            isolate: false,
        };
        install(&a).expect("install wide");
        let err = install(&NetworkRules {
            network: "narrow",
            subnets: &narrow,
            ..a
        })
        .expect_err("overlap must be refused");
        assert_eq!(err.code(), conf::ErrorCode::Firewall);
        assert!(err.to_string().contains("overlap"), "{err}");
        // The failed transaction left nothing behind.
        assert!(listing("vbridge-narrow").is_none());
        check(&a).expect("wide untouched");
    });
}

#[test]
fn state_stays_in_the_thread_netns() {
    fn rules_of(subnets: &[IpNetwork]) -> NetworkRules<'_> {
        NetworkRules {
            network: "here",
            subnets,
            masquerade: true,
            isolate: false,
        }
    }
    in_fresh_netns(|| {
        let subnets = nets(&["10.70.0.0/24"]);
        install(&rules_of(&subnets)).expect("install");
        check(&rules_of(&subnets)).expect("check in the same netns");
    });
    let problems = in_fresh_netns(|| check_problems(&rules_of(&nets(&["10.70.0.0/24"]))));
    assert_eq!(
        problems,
        [
            "table inet vbridge-here is missing",
            "table inet vbridge is missing"
        ]
    );
}

#[test]
fn installed_follows_the_tables_and_a_flush() {
    in_fresh_netns(|| {
        assert!(!installed("probe", false).expect("probe on a clean host"));
        let subnets = nets(&["10.80.0.0/24"]);
        let r = NetworkRules {
            network: "probe",
            subnets: &subnets,
            masquerade: true,
            isolate: false,
        };
        install(&r).expect("install");
        assert!(installed("probe", false).expect("probe after install"));
        assert!(!installed("other", false).expect("probe of another network"));
        nft::apply(
            &serde_json::json!({"nftables": [{"flush": {"ruleset": null}}]}),
            "flushing the ruleset",
        )
        .expect("flush ruleset");
        assert!(!installed("probe", false).expect("probe after flush"));
    });
}

/// An admin widens the subnet while pods of the old one still run: the re-install holds
/// both, and the old element must go before the container can be added.
#[test]
fn resized_subnet_reinstalls_and_removes() {
    in_fresh_netns(|| {
        let old = nets(&["10.90.0.0/24"]);
        let both = nets(&["10.90.0.0/23", "10.90.0.0/24"]);
        let r = NetworkRules {
            network: "resize",
            subnets: &old,
            masquerade: true,
            isolate: true,
        };
        install(&r).expect("install /24");
        let wide = NetworkRules {
            subnets: &both,
            ..r
        };
        reinstall(&wide, &old).expect("re-install with /23 and /24");
        assert_eq!(set_keys("nets4"), [prefix("10.90.0.0", 23)]);
        assert_eq!(rules("vbridge-resize", "postrouting").len(), 1);
        check(&wide).expect("check the widened network");
        remove("resize", &both).expect("remove");
        assert!(listing("vbridge-resize").is_none());
        assert!(set_elems("nets4").is_empty());
    });
}

/// A re-install that widened a subnet failed (or was killed) before nft ran: the set
/// still holds the old element, while the stamp names both.
#[test]
fn removal_after_an_interrupted_resize() {
    in_fresh_netns(|| {
        let old = nets(&["10.91.0.0/24", "10.92.0.0/24"]);
        let r = NetworkRules {
            network: "cut",
            subnets: &old,
            masquerade: true,
            isolate: true,
        };
        install(&r).expect("install");
        let stamp = nets(&["10.91.0.0/23", "10.91.0.0/24", "10.92.0.0/24"]);
        remove("cut", &stamp).expect("remove");
        assert!(listing("vbridge-cut").is_none());
        assert!(set_elems("nets4").is_empty(), "{:?}", set_elems("nets4"));
    });
}

/// A failed install grew one subnet and shrank another: the stamp names both sizes of
/// each while the sets hold one size of each. Removal used to try all outer, then all
/// inner subnets, and wedged; it now deletes what the sets hold.
#[test]
fn removal_after_a_failed_install_that_nested_both_ways() {
    in_fresh_netns(|| {
        let old = nets(&["10.93.0.0/24", "10.94.0.0/23"]);
        let r = NetworkRules {
            network: "both",
            subnets: &old,
            masquerade: true,
            isolate: true,
        };
        install(&r).expect("install");
        let stamp = nets(&[
            "10.93.0.0/23",
            "10.93.0.0/24",
            "10.94.0.0/23",
            "10.94.0.0/24",
        ]);
        remove("both", &stamp).expect("remove");
        assert!(listing("vbridge-both").is_none());
        assert!(set_elems("nets4").is_empty(), "{:?}", set_elems("nets4"));
    });
}

/// The install the failed one replaced left its elements; the next install (told every
/// subnet an earlier one may have added) replaces them, dropped and resized ones alike,
/// and keeps another network's.
#[test]
fn reinstall_after_a_failed_one_drops_and_resizes_exactly() {
    in_fresh_netns(|| {
        let other = nets(&["10.97.0.0/24"]);
        install(&NetworkRules {
            network: "other",
            subnets: &other,
            masquerade: true,
            isolate: false,
        })
        .expect("install the other network");
        let old = nets(&["10.95.0.0/24", "10.96.0.0/24"]);
        let r = NetworkRules {
            network: "mine",
            subnets: &old,
            masquerade: true,
            isolate: true,
        };
        install(&r).expect("install");
        let new = nets(&["10.95.0.0/23"]);
        let stamp = nets(&["10.95.0.0/23", "10.95.0.0/24", "10.96.0.0/24"]);
        reinstall(&NetworkRules { subnets: &new, ..r }, &stamp).expect("reinstall");
        assert_eq!(
            set_keys("nets4"),
            [prefix("10.95.0.0", 23), prefix("10.97.0.0", 24)]
        );
    });
}

/// Another network's subnet inside the one being installed stays where it is: the
/// install fails as a whole and leaves the rules it would have replaced.
#[test]
fn a_failed_install_changes_nothing() {
    in_fresh_netns(|| {
        let b = nets(&["10.98.1.0/24"]);
        let rb = NetworkRules {
            network: "b",
            subnets: &b,
            masquerade: true,
            isolate: false,
        };
        install(&rb).expect("install b");
        let a = nets(&["10.98.0.0/24"]);
        let ra = NetworkRules {
            network: "a",
            subnets: &a,
            ..rb
        };
        install(&ra).expect("install a");
        let wide = nets(&["10.98.0.0/23"]);
        for _ in 0..2 {
            let err = reinstall(
                &NetworkRules {
                    subnets: &wide,
                    ..ra
                },
                &[a[0], wide[0]],
            )
            .expect_err("b's subnet is inside the /23");
            assert!(err.to_string().contains("overlap"), "{err}");
        }
        check(&ra).expect("a's rules are still in place");
        check(&rb).expect("b untouched");
    });
}

#[test]
fn installed_asks_for_the_isolation_chain() {
    in_fresh_netns(|| {
        let subnets = nets(&["10.99.0.0/24"]);
        let r = NetworkRules {
            network: "iso",
            subnets: &subnets,
            masquerade: true,
            isolate: true,
        };
        install(&r).expect("install");
        assert!(installed("iso", true).expect("probe after install"));
        nft::apply(
            &serde_json::json!({"nftables": [
                {"flush": {"chain": {"family": "inet", "table": "vbridge", "name": "isolate-iso"}}},
                {"delete": {"chain": {"family": "inet", "table": "vbridge", "name": "isolate-iso"}}},
            ]}),
            "deleting the isolation chain",
        )
        .expect("delete the chain");
        assert!(!installed("iso", true).expect("probe without the chain"));
        assert!(installed("iso", false).expect("probe of the tables only"));
    });
}

/// nft 1.0.6 takes comments on interval-set elements in the JSON batch and lists them
/// in the `elem` wrapper; adjacent prefixes of two networks stay two elements, each
/// with its own comment (no flag asks nft to merge them).
#[test]
fn element_comments_are_listed_and_adjacent_prefixes_stay_apart() {
    in_fresh_netns(|| {
        let a = nets(&["10.9.0.0/24", "10.9.2.7/32", "fd00:9::/64"]);
        let b = nets(&["10.9.1.0/24", "10.9.2.8/32"]);
        install(&rules_of("a", &a)).expect("install a");
        install(&rules_of("b", &b)).expect("install b");
        let long = "l".repeat(100);
        let c = nets(&["10.9.3.0/24"]);
        install(&rules_of(&long, &c)).expect("install a network with a long name");
        let hashed = format!("vbridge:{}", owners::tag(&long));
        assert_eq!(
            set_elems("nets4"),
            [
                commented(prefix("10.9.0.0", 24), "vbridge:a"),
                commented(prefix("10.9.1.0", 24), "vbridge:b"),
                commented(serde_json::json!("10.9.2.7"), "vbridge:a"),
                commented(serde_json::json!("10.9.2.8"), "vbridge:b"),
                commented(prefix("10.9.3.0", 24), &hashed),
            ]
        );
        assert_eq!(
            set_elems("nets6"),
            [commented(prefix("fd00:9::", 64), "vbridge:a")]
        );
        for (n, s) in [("a", &a), ("b", &b), (long.as_str(), &c)] {
            check(&rules_of(n, s)).expect("check");
        }
        remove("a", &a).expect("remove a");
        assert_eq!(
            set_keys("nets4"),
            [
                prefix("10.9.1.0", 24),
                serde_json::json!("10.9.2.8"),
                prefix("10.9.3.0", 24)
            ]
        );
        check(&rules_of("b", &b)).expect("b intact");
    });
}

/// GC without a stamp (or with a corrupt one) removes with no subnets: the comments
/// still name the network's elements, and no other network's.
#[test]
fn removal_without_subnets_deletes_exactly_the_commented_elements() {
    in_fresh_netns(|| {
        let a = nets(&["10.100.0.0/24", "10.100.2.0/24", "fd00:100::/64"]);
        let b = nets(&["10.100.1.0/24"]);
        install(&rules_of("a", &a)).expect("install a");
        install(&rules_of("b", &b)).expect("install b");
        remove("a", &[]).expect("remove a without subnets");
        assert!(listing("vbridge-a").is_none());
        assert_eq!(set_keys("nets4"), [prefix("10.100.1.0", 24)]);
        assert!(set_elems("nets6").is_empty());
        check(&rules_of("b", &b)).expect("b intact");
        // A wider subnet where A's elements were no longer trips over them.
        let wide = nets(&["10.100.0.0/23"]);
        let err = install(&rules_of("c", &wide)).expect_err("b's /24 is inside");
        assert!(err.to_string().contains("overlap"), "{err}");
        install(&rules_of("c", &nets(&["10.100.2.0/23"]))).expect("install c");
    });
}

/// Network A's stamp still names subnet X after its pods there went (steady-state
/// DELs do not reinstall); X is given to network B. A's removal must leave X to B.
#[test]
fn a_subnet_reassigned_to_another_network_stays_with_it() {
    in_fresh_netns(|| {
        let a = nets(&["10.101.0.0/24", "10.101.1.0/24"]);
        let x = nets(&["10.101.0.0/24"]);
        install(&rules_of("a", &a)).expect("install a");
        install(&rules_of("b", &x)).expect("install b");
        assert_eq!(
            set_elems("nets4"),
            [
                commented(prefix("10.101.0.0", 24), "vbridge:b,a"),
                commented(prefix("10.101.1.0", 24), "vbridge:a"),
            ]
        );
        check(&rules_of("a", &a)).expect("check a");
        check(&rules_of("b", &x)).expect("check b");
        remove("a", &a).expect("remove a");
        assert_eq!(
            set_elems("nets4"),
            [commented(prefix("10.101.0.0", 24), "vbridge:b")]
        );
        check(&rules_of("b", &x)).expect("b keeps its element");
        remove("b", &x).expect("remove b");
        assert!(set_elems("nets4").is_empty());
    });
}

/// Identical subnets on two networks: one element, gone with the last of them, whichever
/// goes first; the one that stays finds it on its next install unchanged.
#[test]
fn identical_subnets_on_two_networks_share_one_element() {
    in_fresh_netns(|| {
        let x = nets(&["10.102.0.0/24"]);
        install(&rules_of("a", &x)).expect("install a");
        install(&rules_of("b", &x)).expect("install b");
        install(&rules_of("a", &x)).expect("install a again");
        remove("b", &x).expect("remove b");
        assert_eq!(
            set_elems("nets4"),
            [commented(prefix("10.102.0.0", 24), "vbridge:a")]
        );
        check(&rules_of("a", &x)).expect("a keeps its element");
        remove("a", &[]).expect("remove a");
        assert!(set_elems("nets4").is_empty());
    });
}

/// Elements an earlier build wrote carry no comment: an install takes the one that is
/// exactly its subnet over, and a removal deletes those it knows.
#[test]
fn uncommented_elements_are_recognised_by_exact_subnet() {
    in_fresh_netns(|| {
        let x = nets(&["10.103.0.0/24"]);
        install(&rules_of("a", &x)).expect("install a");
        let elems = serde_json::json!({"family": "inet", "table": "vbridge", "name": "nets4",
            "elem": [prefix("10.103.0.0", 24)]});
        let old = serde_json::json!({"family": "inet", "table": "vbridge", "name": "nets4",
            "elem": [prefix("10.103.1.0", 24)]});
        nft::apply(
            &serde_json::json!({"nftables": [
                {"delete": {"element": elems.clone()}},
                {"add": {"element": elems}},
                {"add": {"element": old}},
            ]}),
            "writing elements as the previous build did",
        )
        .expect("uncommented elements");
        assert_eq!(set_elems("nets4")[0], prefix("10.103.0.0", 24));
        check(&rules_of("a", &x)).expect("an uncommented element passes");
        install(&rules_of("a", &x)).expect("install over them");
        assert_eq!(
            set_elems("nets4"),
            [
                commented(prefix("10.103.0.0", 24), "vbridge:a"),
                prefix("10.103.1.0", 24),
            ]
        );
        remove("a", &nets(&["10.103.0.0/24", "10.103.1.0/24"])).expect("remove a");
        assert!(set_elems("nets4").is_empty());
    });
}
