//! Comparing `nft -j list table` output with a [`Plan`] (pure, unit tested).

use std::collections::HashMap;

use serde_json::Value;

use super::owners::Claim;
use super::plan::{Family, Hook, Plan, Rule, FORWARD, POSTROUTING, SHARED_TABLE, SRCNAT};
use super::sets;

/// The parts of one listed table that vbridge cares about.
#[derive(Debug, Default)]
pub(super) struct Listing {
    chains: HashMap<String, Value>,
    rules: HashMap<String, Vec<Value>>,
    sets: HashMap<String, Vec<Value>>,
}

impl Listing {
    pub(super) fn parse(v: &Value) -> Listing {
        let mut l = Listing::default();
        let objects = v["nftables"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        for o in objects {
            if let Some(c) = o.get("chain") {
                l.chains.insert(str_of(c, "name"), c.clone());
            } else if let Some(r) = o.get("rule") {
                l.rules
                    .entry(str_of(r, "chain"))
                    .or_default()
                    .push(r["expr"].clone());
            } else if let Some(s) = o.get("set") {
                let elems = s["elem"].as_array().cloned().unwrap_or_default();
                l.sets.insert(str_of(s, "name"), elems);
            }
        }
        l
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_string()
}

/// What is missing or wrong; empty when the host matches the plan.
/// `None` listings stand for tables that do not exist.
pub(super) fn problems(
    plan: &Plan,
    own: Option<&Listing>,
    shared: Option<&Listing>,
) -> Vec<String> {
    let mut out = Vec::new();
    if !plan.has_state() {
        return out;
    }
    match own {
        None => out.push(format!("table inet {} is missing", plan.table)),
        Some(l) if plan.masquerade => chain_problems(
            &mut out,
            l,
            &plan.table,
            POSTROUTING,
            SRCNAT,
            &plan.masq_rules,
        ),
        Some(l) => stale(&mut out, l, &plan.table, POSTROUTING, "ipMasq"),
    }
    let Some(shared) = shared else {
        out.push(format!("table inet {SHARED_TABLE} is missing"));
        return out;
    };
    for f in Family::ALL {
        element_problems(&mut out, plan, shared, f);
    }
    if plan.isolate {
        chain_problems(
            &mut out,
            shared,
            SHARED_TABLE,
            &plan.isolate_chain,
            FORWARD,
            &plan.isolate_rules,
        );
    } else {
        stale(
            &mut out,
            shared,
            SHARED_TABLE,
            &plan.isolate_chain,
            "isolate",
        );
    }
    out
}

/// Each own subnet must be an element, and one whose comment names owners must name
/// this network too: else the element goes with those owners.
fn element_problems(out: &mut Vec<String>, plan: &Plan, shared: &Listing, f: Family) {
    let set = f.set();
    let listed: Vec<sets::Element> = (shared.sets.get(set).into_iter().flatten())
        .filter_map(|v| sets::element(f, v).ok())
        .collect();
    for net in plan.own(f) {
        match listed.iter().find(|e| e.is(net)).map(|e| &e.claim) {
            None => out.push(format!(
                "subnet {net} is missing from set inet {SHARED_TABLE} {set}"
            )),
            Some(Claim::Owners(o)) if !o.contains(&plan.owner) => out.push(format!(
                "element {net} of set inet {SHARED_TABLE} {set} is recorded for {} only",
                o.join(", ")
            )),
            Some(_) => {}
        }
    }
}

/// Rules of a setting that is off: someone else wrote them, or an older vbridge did.
fn stale(out: &mut Vec<String>, l: &Listing, table: &str, chain: &str, setting: &str) {
    if l.rules.get(chain).is_some_and(|r| !r.is_empty()) {
        out.push(format!(
            "chain inet {table} {chain} has rules although {setting} is off"
        ));
    }
}

fn chain_problems(
    out: &mut Vec<String>,
    l: &Listing,
    table: &str,
    chain: &str,
    hook: Hook,
    expected: &[Rule],
) {
    let name = format!("chain inet {table} {chain}");
    let Some(c) = l.chains.get(chain) else {
        out.push(format!("{name} is missing"));
        return;
    };
    let wanted = (hook.kind, hook.hook, hook.prio, "accept");
    let found = (
        c["type"].as_str().unwrap_or_default(),
        c["hook"].as_str().unwrap_or_default(),
        c["prio"].as_i64().unwrap_or(i64::MIN),
        c["policy"].as_str().unwrap_or_default(),
    );
    if found != wanted {
        out.push(format!(
            "{name} is not type {} hook {} priority {} policy {}",
            wanted.0, wanted.1, wanted.2, wanted.3
        ));
    }
    let listed = l.rules.get(chain).map(Vec::as_slice).unwrap_or(&[]);
    let before = out.len();
    for r in expected {
        if !listed.contains(&r.expr) {
            out.push(format!("rule `{}` is missing from {name}", r.text));
        }
    }
    // Order matters (returns before drops) and duplicates mean something else wrote here.
    let in_order = listed.iter().eq(expected.iter().map(|r| &r.expr));
    if out.len() == before && !in_order {
        out.push(format!(
            "{name} has {} rules where {} are expected, or they are out of order",
            listed.len(),
            expected.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnetwork::IpNetwork;
    use serde_json::json;

    fn plan(masq: bool, iso: bool) -> Plan {
        let nets: Vec<IpNetwork> = ["10.1.0.0/24", "fd00::/64"]
            .iter()
            .map(|s| s.parse().expect("subnet"))
            .collect();
        Plan::new("a", &nets, masq, iso)
    }

    /// What `nft -j list table` would print right after applying `plan`'s batch.
    fn listed(plan: &Plan, table: &str) -> Listing {
        let batch = super::super::plan::batch(plan);
        let mut objects = vec![json!({"metainfo": {"version": "1.0.6"}})];
        let mut elems: HashMap<String, Vec<Value>> = HashMap::new();
        for c in batch["nftables"].as_array().expect("array") {
            if let Some(gone) = c.get("delete").and_then(|d| d.get("chain")) {
                objects.retain(|o| o.get("chain").is_none_or(|c| c["name"] != gone["name"]));
            }
            let Some(add) = c.get("add") else { continue };
            let (kind, body) = add.as_object().expect("obj").iter().next().expect("kind");
            if body["table"] != table {
                continue;
            }
            match kind.as_str() {
                "element" => elems
                    .entry(str_of(body, "name"))
                    .or_default()
                    .extend(body["elem"].as_array().cloned().unwrap_or_default()),
                "chain" if body.get("hook").is_some() => objects.push(json!({ "chain": body })),
                "rule" | "set" => objects.push(json!({ kind.as_str(): body })),
                _ => {}
            }
        }
        for o in objects.iter_mut() {
            if let Some(s) = o.get_mut("set") {
                let name = str_of(s, "name");
                s["elem"] = json!(elems.get(&name).cloned().unwrap_or_default());
            }
        }
        Listing::parse(&json!({ "nftables": objects }))
    }

    #[test]
    fn matching_listing_has_no_problems() {
        for (m, i) in [(true, false), (false, true), (true, true)] {
            let p = plan(m, i);
            let own = listed(&p, "vbridge-a");
            let shared = listed(&p, "vbridge");
            assert_eq!(
                problems(&p, Some(&own), Some(&shared)),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn missing_tables_are_named() {
        let p = plan(true, true);
        assert_eq!(
            problems(&p, None, None),
            [
                "table inet vbridge-a is missing",
                "table inet vbridge is missing"
            ]
        );
        assert!(problems(&plan(false, false), None, None).is_empty());
    }

    #[test]
    fn missing_rule_and_element_are_named() {
        let p = plan(true, true);
        let mut own = listed(&p, "vbridge-a");
        let mut shared = listed(&p, "vbridge");
        own.rules.get_mut("postrouting").expect("chain").remove(1);
        shared.sets.get_mut("nets6").expect("set").clear();
        shared.sets.get_mut("nets4").expect("set")[0]["elem"]["comment"] = json!("vbridge:b");
        let found = problems(&p, Some(&own), Some(&shared));
        assert_eq!(
            found,
            [
                "rule `ip6 saddr fd00::/64 ip6 daddr != fd00::/64 ip6 daddr != ff00::/8 masquerade` \
                 is missing from chain inet vbridge-a postrouting",
                "element 10.1.0.0/24 of set inet vbridge nets4 is recorded for b only",
                "subnet fd00::/64 is missing from set inet vbridge nets6",
            ]
        );
    }

    #[test]
    fn duplicates_and_wrong_hook_are_reported() {
        let p = plan(true, false);
        let mut own = listed(&p, "vbridge-a");
        let shared = listed(&p, "vbridge");
        let rules = own.rules.get_mut("postrouting").expect("chain");
        rules.push(rules[0].clone());
        own.chains.get_mut("postrouting").expect("chain")["prio"] = json!(-100);
        let found = problems(&p, Some(&own), Some(&shared));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("is not type nat hook postrouting priority 100"));
        assert!(found[1].contains("has 3 rules where 2 are expected"));
    }

    #[test]
    fn rules_of_a_setting_now_off_are_reported() {
        let both = plan(true, true);
        let own = listed(&both, "vbridge-a");
        let shared = listed(&both, "vbridge");
        let found = problems(&plan(false, true), Some(&own), Some(&shared));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0]
            .starts_with("chain inet vbridge-a postrouting has rules although ipMasq is off"));
        let found = problems(&plan(true, false), Some(&own), Some(&shared));
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("chain inet vbridge isolate-a has rules although isolate is off")
        );
    }

    /// Elements written before owners were recorded, and one another network's plan
    /// added that names both, are this network's too.
    #[test]
    fn unmarked_and_shared_elements_pass() {
        let p = plan(true, false);
        let own = listed(&p, "vbridge-a");
        let mut shared = listed(&p, "vbridge");
        let v4 = shared.sets.get_mut("nets4").expect("set");
        v4[0] = v4[0]["elem"]["val"].clone();
        let v6 = shared.sets.get_mut("nets6").expect("set");
        v6[0]["elem"]["comment"] = json!("vbridge:b,a");
        assert_eq!(
            problems(&p, Some(&own), Some(&shared)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn missing_isolation_chain_is_named() {
        let p = plan(false, true);
        let own = listed(&p, "vbridge-a");
        let shared = listed(&plan(true, false), "vbridge");
        assert_eq!(
            problems(&p, Some(&own), Some(&shared)),
            ["chain inet vbridge isolate-a is missing"]
        );
    }
}
