//! Pure construction of the nftables JSON (no I/O, unit tested without root).
//!
//! Every expression is written in the exact form `nft -j list` prints it back, so
//! `check` can compare the listing with the plan by plain JSON equality.

use ipnetwork::IpNetwork;
use serde_json::{json, Value};

use super::owners::{self, Claim};
use super::sets::{Element, Listed};
use super::subnets;

pub(super) const FAMILY: &str = "inet";
pub(super) const SHARED_TABLE: &str = "vbridge";
pub(super) const POSTROUTING: &str = "postrouting";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    pub(super) const ALL: [Family; 2] = [Family::V4, Family::V6];

    fn proto(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    pub(super) fn set(self) -> &'static str {
        match self {
            Family::V4 => "nets4",
            Family::V6 => "nets6",
        }
    }

    fn set_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }

    fn multicast(self) -> Term {
        match self {
            Family::V4 => Term::prefix("224.0.0.0", 4),
            Family::V6 => Term::prefix("ff00::", 8),
        }
    }

    fn of(net: &IpNetwork) -> Family {
        match net {
            IpNetwork::V4(_) => Family::V4,
            IpNetwork::V6(_) => Family::V6,
        }
    }
}

/// A value on the right of a match, in both its nft text and JSON forms.
struct Term {
    text: String,
    json: Value,
}

impl Term {
    fn prefix(addr: &str, len: u8) -> Term {
        Term {
            text: format!("{addr}/{len}"),
            json: json!({"prefix": {"addr": addr, "len": len}}),
        }
    }

    /// nft lists a full-length prefix as a bare address, so we write it that way too.
    fn net(net: &IpNetwork) -> Term {
        let addr = net.network().to_string();
        let full = match net {
            IpNetwork::V4(_) => 32,
            IpNetwork::V6(_) => 128,
        };
        if net.prefix() == full {
            Term {
                text: addr.clone(),
                json: json!(addr),
            }
        } else {
            Term::prefix(&addr, net.prefix())
        }
    }

    fn set_ref(f: Family) -> Term {
        let name = format!("@{}", f.set());
        Term {
            text: name.clone(),
            json: json!(name),
        }
    }
}

/// One rule: `expr` is what `nft -j list` shows, `text` names it in check errors.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Rule {
    pub text: String,
    pub expr: Value,
}

#[derive(Default)]
struct RuleBuilder {
    text: Vec<String>,
    expr: Vec<Value>,
}

impl RuleBuilder {
    fn m(mut self, f: Family, field: &str, negate: bool, right: Term) -> Self {
        let op = if negate { "!=" } else { "==" };
        let shown = if negate { "!= " } else { "" };
        self.text
            .push(format!("{} {field} {shown}{}", f.proto(), right.text));
        self.expr.push(json!({"match": {
            "op": op,
            "left": {"payload": {"protocol": f.proto(), "field": field}},
            "right": right.json,
        }}));
        self
    }

    fn then(mut self, verdict: &str) -> Rule {
        self.text.push(verdict.to_string());
        self.expr.push(json!({ verdict: null }));
        Rule {
            text: self.text.join(" "),
            expr: Value::Array(self.expr),
        }
    }
}

/// A base chain: kind, hook, priority (policy is always accept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hook {
    pub kind: &'static str,
    pub hook: &'static str,
    pub prio: i64,
}

pub(super) const SRCNAT: Hook = Hook {
    kind: "nat",
    hook: "postrouting",
    prio: 100,
};
pub(super) const FORWARD: Hook = Hook {
    kind: "filter",
    hook: "forward",
    prio: 0,
};

/// Everything vbridge programs for one network.
#[derive(Debug)]
pub(super) struct Plan {
    /// Per-network table `inet vbridge-<net>`.
    pub table: String,
    /// Per-network base chain in the shared table.
    pub isolate_chain: String,
    /// How set element comments name the network.
    pub owner: String,
    /// Own subnets per family (index 0 = v4, 1 = v6), normalized, deduplicated and
    /// collapsed (none inside another).
    pub own: [Vec<IpNetwork>; 2],
    /// Listed set elements the plan deletes, per family, in the form nft listed them:
    /// the network's that it drops, and those whose owners change.
    pub deleted: [Vec<Value>; 2],
    /// Set elements the plan adds, per family, with the comment naming their owners.
    pub added: [Vec<Value>; 2],
    pub masquerade: bool,
    pub isolate: bool,
    pub masq_rules: Vec<Rule>,
    pub isolate_rules: Vec<Rule>,
}

pub(super) fn table_name(network: &str) -> String {
    format!("vbridge-{network}")
}

pub(super) fn isolate_chain(network: &str) -> String {
    format!("isolate-{network}")
}

impl Plan {
    pub(super) fn new(
        network: &str,
        subnets: &[IpNetwork],
        masquerade: bool,
        isolate: bool,
    ) -> Plan {
        // Host bits would make nft reject (or silently rewrite) the prefix, and a subnet
        // inside another would make it refuse the elements.
        let own = by_family(&subnets::collapse(subnets));
        let (mut masq_rules, mut iso_rules) = (Vec::new(), Vec::new());
        for f in Family::ALL {
            let own = &own[f as usize];
            if masquerade {
                masq_rules.extend(own.iter().map(|s| masq_rule(f, s)));
            }
            if isolate {
                iso_rules.extend(isolate_rules(f, own));
            }
        }
        let mut plan = Plan {
            table: table_name(network),
            isolate_chain: isolate_chain(network),
            owner: owners::tag(network),
            own,
            deleted: [Vec::new(), Vec::new()],
            added: [Vec::new(), Vec::new()],
            masquerade,
            isolate,
            masq_rules,
            isolate_rules: iso_rules,
        };
        plan.settle(&Listed::default(), &[]);
        plan
    }

    /// The plan for sets that hold `listed`; `known` names every subnet an earlier
    /// install may have added (what tells an uncommented element of ours).
    pub(super) fn against(mut self, listed: &Listed, known: &[IpNetwork]) -> Plan {
        self.settle(listed, known);
        self
    }

    /// Sets `deleted` and `added` so that each subnet the plan keeps is in the sets with
    /// a comment naming the network, and no other element does: nft refuses a container
    /// next to a subnet it holds, and a dropped subnet would stay in the sets forever.
    /// `add` of an element the set holds changes nothing, not even its comment, so an
    /// element whose comment changes is deleted and added again; elements already right
    /// are left alone, as any deletion costs the commit an RCU grace period. A removal
    /// plan keeps nothing.
    fn settle(&mut self, listed: &Listed, known: &[IpNetwork]) {
        for f in Family::ALL {
            let keep = if self.has_state() {
                self.own(f).to_vec()
            } else {
                Vec::new()
            };
            let mut changes = Changes::default();
            for net in &keep {
                changes.keep(&self.owner, net, listed.exactly(f, net));
            }
            let dropped = (listed.of(f).iter())
                .filter(|e| !keep.iter().any(|k| e.is(k)))
                .filter(|e| e.claimed_by(&self.owner, known));
            for e in dropped {
                changes.release(&self.owner, e);
            }
            self.deleted[f as usize] = changes.deleted;
            self.added[f as usize] = changes.added;
        }
    }

    pub(super) fn own(&self, f: Family) -> &[IpNetwork] {
        &self.own[f as usize]
    }

    /// Whether the network has any firewall state (and so belongs in the shared sets).
    pub(super) fn has_state(&self) -> bool {
        self.masquerade || self.isolate
    }
}

/// The element commands of one family, as [`Plan::settle`] finds them.
#[derive(Default)]
struct Changes {
    deleted: Vec<Value>,
    added: Vec<Value>,
}

impl Changes {
    /// Subnet `net` stays, where `listed` is the element that is exactly it. Another
    /// network's element for it (an identical subnet, or one that network stopped using
    /// without a reinstall) gets `me` added to its owners: whichever of them goes first
    /// must leave it to the others.
    fn keep(&mut self, me: &str, net: &IpNetwork, listed: Option<&Element>) {
        let others = match listed.map(|e| &e.claim) {
            Some(Claim::Owners(o)) if o.iter().any(|t| t == me) => return,
            Some(Claim::Foreign) => return,
            Some(Claim::Owners(o)) => o.clone(),
            None | Some(Claim::Unmarked) => Vec::new(),
        };
        if let Some(e) = listed {
            self.deleted.push(e.json.clone());
        }
        let mut all = vec![me.to_string()];
        all.extend(others);
        self.added.push(commented(element(net), &all));
    }

    /// Element `e` of the network goes; if other networks need it, it stays theirs.
    fn release(&mut self, me: &str, e: &Element) {
        self.deleted.push(e.json.clone());
        let Claim::Owners(o) = &e.claim else { return };
        let others: Vec<String> = o.iter().filter(|t| *t != me).cloned().collect();
        if !others.is_empty() {
            self.added.push(commented(e.json.clone(), &others));
        }
    }
}

fn by_family(nets: &[IpNetwork]) -> [Vec<IpNetwork>; 2] {
    let mut out: [Vec<IpNetwork>; 2] = [Vec::new(), Vec::new()];
    for n in nets {
        out[Family::of(n) as usize].push(*n);
    }
    out
}

/// `saddr S daddr != S daddr != multicast masquerade`: the reference plugin's rule,
/// once per subnet instead of once per container.
fn masq_rule(f: Family, s: &IpNetwork) -> Rule {
    RuleBuilder::default()
        .m(f, "saddr", false, Term::net(s))
        .m(f, "daddr", true, Term::net(s))
        .m(f, "daddr", true, f.multicast())
        .then("masquerade")
}

/// Traffic among the network's own subnets returns first (so a multi-subnet network
/// is not cut in pieces), then anything from/to another vbridge network is dropped.
fn isolate_rules(f: Family, own: &[IpNetwork]) -> Vec<Rule> {
    let mut rules = Vec::new();
    for a in own {
        for b in own {
            rules.push(
                RuleBuilder::default()
                    .m(f, "saddr", false, Term::net(a))
                    .m(f, "daddr", false, Term::net(b))
                    .then("return"),
            );
        }
    }
    for a in own {
        rules.push(
            RuleBuilder::default()
                .m(f, "saddr", false, Term::net(a))
                .m(f, "daddr", false, Term::set_ref(f))
                .then("drop"),
        );
    }
    for a in own {
        rules.push(
            RuleBuilder::default()
                .m(f, "saddr", false, Term::set_ref(f))
                .m(f, "daddr", false, Term::net(a))
                .then("drop"),
        );
    }
    rules
}

fn cmd(verb: &str, object: &str, body: Value) -> Value {
    json!({ verb: { object: body } })
}

fn table(name: &str) -> Value {
    json!({"family": FAMILY, "name": name})
}

fn chain(table: &str, name: &str, hook: Hook) -> Value {
    json!({
        "family": FAMILY, "table": table, "name": name,
        "type": hook.kind, "hook": hook.hook, "prio": hook.prio, "policy": "accept",
    })
}

fn chain_ref(table: &str, name: &str) -> Value {
    json!({"family": FAMILY, "table": table, "name": name})
}

fn rule(table: &str, chain: &str, r: &Rule) -> Value {
    json!({"family": FAMILY, "table": table, "chain": chain, "expr": r.expr})
}

/// A subnet as a set element's key, in nft's list form.
fn element(net: &IpNetwork) -> Value {
    Term::net(net).json
}

/// An element with the comment naming its owners, as nft also lists it.
fn commented(key: Value, owners: &[String]) -> Value {
    json!({"elem": {"val": key, "comment": owners::comment(owners)}})
}

fn set_elements(f: Family, elem: Vec<Value>) -> Value {
    json!({"family": FAMILY, "table": SHARED_TABLE, "name": f.set(), "elem": elem})
}

/// The install transaction, or the removal one for a plan without state.
pub(super) fn batch(plan: &Plan) -> Value {
    let mut b = Vec::new();
    if plan.has_state() {
        install_cmds(plan, &mut b);
    } else {
        remove_cmds(plan, &mut b);
    }
    json!({ "nftables": b })
}

/// Creates what `plan` needs; `add` is a no-op on existing objects and `flush` empties
/// the chains we rewrite, so running it again never duplicates a rule.
///
/// Deletions are avoided where exactness allows: any deletion makes the kernel commit
/// wait for an RCU grace period (~12 ms instead of ~3.5 ms measured), and the first
/// ADD of a network pays for this call. ipMasq off needs none (`flush table` leaves
/// at most an empty nat chain); isolate off must delete the isolation chain, since an
/// earlier install (the caller re-installs when the settings change) may have left it,
/// and a re-install that drops or resizes a subnet must delete its listed old element.
fn install_cmds(plan: &Plan, b: &mut Vec<Value>) {
    let t = plan.table.as_str();
    b.push(cmd("add", "table", table(t)));
    b.push(cmd("flush", "table", table(t)));
    if plan.masquerade {
        b.push(cmd("add", "chain", chain(t, POSTROUTING, SRCNAT)));
        for r in &plan.masq_rules {
            b.push(cmd("add", "rule", rule(t, POSTROUTING, r)));
        }
    }
    shared_prelude(b);
    let c = plan.isolate_chain.as_str();
    b.push(cmd("add", "chain", chain(SHARED_TABLE, c, FORWARD)));
    b.push(cmd("flush", "chain", chain_ref(SHARED_TABLE, c)));
    if plan.isolate {
        for r in &plan.isolate_rules {
            b.push(cmd("add", "rule", rule(SHARED_TABLE, c, r)));
        }
    } else {
        b.push(cmd("delete", "chain", chain_ref(SHARED_TABLE, c)));
    }
    element_cmds(plan, b);
}

/// Deletes exactly the listed elements the plan names (nft fails the whole transaction
/// on an absent one, so none is guessed), then adds its elements: nft checks each add
/// against the set as the batch left it.
fn element_cmds(plan: &Plan, b: &mut Vec<Value>) {
    for f in Family::ALL {
        for (verb, elems) in [("delete", &plan.deleted), ("add", &plan.added)] {
            let elems = &elems[f as usize];
            if !elems.is_empty() {
                b.push(cmd(verb, "element", set_elements(f, elems.clone())));
            }
        }
    }
}

/// Deletes everything of the network: the table and chain are `add`ed first (a no-op
/// when present) so that their deletion cannot fail on a missing object; the elements
/// deleted are the listed ones of the network (see [`Plan::against`]), and those other
/// networks also need are added back as theirs.
fn remove_cmds(plan: &Plan, b: &mut Vec<Value>) {
    let t = plan.table.as_str();
    b.push(cmd("add", "table", table(t)));
    b.push(cmd("delete", "table", table(t)));
    shared_prelude(b);
    let c = plan.isolate_chain.as_str();
    b.push(cmd("add", "chain", chain(SHARED_TABLE, c, FORWARD)));
    // A chain with rules cannot be deleted.
    b.push(cmd("flush", "chain", chain_ref(SHARED_TABLE, c)));
    b.push(cmd("delete", "chain", chain_ref(SHARED_TABLE, c)));
    // After the chain: its rules reference the sets.
    element_cmds(plan, b);
}

fn shared_prelude(b: &mut Vec<Value>) {
    b.push(cmd("add", "table", table(SHARED_TABLE)));
    for f in Family::ALL {
        b.push(cmd(
            "add",
            "set",
            json!({
                "family": FAMILY, "table": SHARED_TABLE, "name": f.set(),
                "type": f.set_type(), "flags": ["interval"],
            }),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::subnets::nets;
    use super::*;

    /// The batch as `nft` text-like lines, so the tests read like the ruleset.
    fn lines(b: &Value) -> Vec<String> {
        b["nftables"]
            .as_array()
            .expect("nftables array")
            .iter()
            .map(|c| {
                let (verb, inner) = c.as_object().expect("cmd").iter().next().expect("verb");
                let (obj, body) = inner.as_object().expect("obj").iter().next().expect("kind");
                let name = body
                    .get("name")
                    .or_else(|| body.get("chain"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                match obj.as_str() {
                    "table" => format!("{verb} table {name}"),
                    "rule" => format!(
                        "{verb} rule {}/{name}",
                        body["table"].as_str().unwrap_or("")
                    ),
                    "element" => format!("{verb} element {name} {}", elems_text(&body["elem"])),
                    _ => format!(
                        "{verb} {obj} {}/{name}",
                        body["table"].as_str().unwrap_or("")
                    ),
                }
            })
            .collect()
    }

    /// Elements as `10.1.0.0/24 "vbridge:a", 10.2.0.0/24` (key, then the comment).
    fn elems_text(elems: &Value) -> String {
        let key = |k: &Value| match k {
            Value::String(a) => a.clone(),
            _ => format!(
                "{}/{}",
                k["prefix"]["addr"].as_str().expect("addr"),
                k["prefix"]["len"]
            ),
        };
        let one = |e: &Value| match e.get("elem") {
            Some(w) => format!("{} {}", key(&w["val"]), w["comment"]),
            None => key(e),
        };
        let all: Vec<String> = elems
            .as_array()
            .expect("elements")
            .iter()
            .map(one)
            .collect();
        all.join(", ")
    }

    fn rule_texts(b: &Value, chain: &str) -> Vec<Value> {
        b["nftables"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|c| c.get("add").and_then(|a| a.get("rule")))
            .filter(|r| r["chain"] == chain)
            .map(|r| r["expr"].clone())
            .collect()
    }

    #[test]
    fn masq_rule_json_is_nft_list_form() {
        let p = Plan::new("n1", &nets(&["10.1.0.0/24"]), true, false);
        assert_eq!(p.table, "vbridge-n1");
        assert_eq!(
            p.masq_rules[0].text,
            "ip saddr 10.1.0.0/24 ip daddr != 10.1.0.0/24 ip daddr != 224.0.0.0/4 masquerade"
        );
        let expected = json!([
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                       "right": {"prefix": {"addr": "10.1.0.0", "len": 24}}}},
            {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                       "right": {"prefix": {"addr": "10.1.0.0", "len": 24}}}},
            {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                       "right": {"prefix": {"addr": "224.0.0.0", "len": 4}}}},
            {"masquerade": null}
        ]);
        assert_eq!(p.masq_rules[0].expr, expected);
    }

    #[test]
    fn v4_masquerade_only() {
        let p = Plan::new("n1", &nets(&["10.1.0.0/24"]), true, false);
        let b = batch(&p);
        assert_eq!(
            lines(&b),
            [
                "add table vbridge-n1",
                "flush table vbridge-n1",
                "add chain vbridge-n1/postrouting",
                "add rule vbridge-n1/postrouting",
                "add table vbridge",
                "add set vbridge/nets4",
                "add set vbridge/nets6",
                "add chain vbridge/isolate-n1",
                "flush chain vbridge/isolate-n1",
                "delete chain vbridge/isolate-n1",
                r#"add element nets4 10.1.0.0/24 "vbridge:n1""#,
            ]
        );
        let c = &b["nftables"][2]["add"]["chain"];
        assert_eq!(
            (&c["type"], &c["hook"], &c["prio"], &c["policy"]),
            (
                &json!("nat"),
                &json!("postrouting"),
                &json!(100),
                &json!("accept")
            )
        );
    }

    #[test]
    fn v6_only_masquerade_uses_ip6_and_ff00() {
        let p = Plan::new("n6", &nets(&["fd00:1::/64"]), true, false);
        assert_eq!(
            p.masq_rules
                .iter()
                .map(|r| r.text.as_str())
                .collect::<Vec<_>>(),
            ["ip6 saddr fd00:1::/64 ip6 daddr != fd00:1::/64 ip6 daddr != ff00::/8 masquerade"]
        );
        let l = lines(&batch(&p));
        assert!(l.contains(&r#"add element nets6 fd00:1::/64 "vbridge:n6""#.to_string()));
        assert!(!l.iter().any(|x| x.contains("element nets4")));
    }

    #[test]
    fn dual_stack_one_rule_per_subnet() {
        let p = Plan::new(
            "d",
            &nets(&["10.2.0.0/16", "fd00:2::/64", "10.3.0.0/24"]),
            true,
            false,
        );
        let b = batch(&p);
        assert_eq!(rule_texts(&b, "postrouting").len(), 3);
        assert_eq!(p.own(Family::V4).len(), 2);
        assert_eq!(p.own(Family::V6).len(), 1);
    }

    #[test]
    fn host_bits_and_duplicates_are_normalized() {
        let p = Plan::new(
            "n",
            &nets(&["10.1.0.7/24", "10.1.0.0/24", "10.9.9.9/32"]),
            true,
            false,
        );
        assert_eq!(p.own(Family::V4), nets(&["10.1.0.0/24", "10.9.9.9/32"]));
        // A full-length prefix is listed by nft as a bare address.
        assert_eq!(p.masq_rules[1].expr[0]["match"]["right"], json!("10.9.9.9"));
    }

    #[test]
    fn isolate_rules_v4() {
        let p = Plan::new("a", &nets(&["10.1.0.0/24"]), false, true);
        let texts: Vec<&str> = p.isolate_rules.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "ip saddr 10.1.0.0/24 ip daddr 10.1.0.0/24 return",
                "ip saddr 10.1.0.0/24 ip daddr @nets4 drop",
                "ip saddr @nets4 ip daddr 10.1.0.0/24 drop",
            ]
        );
        let l = lines(&batch(&p));
        // No masquerade chain, but the table exists as the network's marker.
        assert_eq!(
            l,
            [
                "add table vbridge-a",
                "flush table vbridge-a",
                "add table vbridge",
                "add set vbridge/nets4",
                "add set vbridge/nets6",
                "add chain vbridge/isolate-a",
                "flush chain vbridge/isolate-a",
                "add rule vbridge/isolate-a",
                "add rule vbridge/isolate-a",
                "add rule vbridge/isolate-a",
                r#"add element nets4 10.1.0.0/24 "vbridge:a""#,
            ]
        );
        let c = &batch(&p)["nftables"][5]["add"]["chain"];
        assert_eq!(
            (&c["type"], &c["hook"], &c["prio"]),
            (&json!("filter"), &json!("forward"), &json!(0))
        );
    }

    #[test]
    fn isolate_dual_stack_multi_subnet_keeps_own_subnets_connected() {
        let p = Plan::new(
            "m",
            &nets(&["10.1.0.0/24", "10.2.0.0/24", "fd00::/64"]),
            true,
            true,
        );
        // v4: 4 returns (pairs) + 2 + 2 drops; v6: 1 + 1 + 1.
        assert_eq!(p.isolate_rules.len(), 8 + 3);
        assert!(p
            .isolate_rules
            .iter()
            .any(|r| r.text == "ip saddr 10.1.0.0/24 ip daddr 10.2.0.0/24 return"));
        assert!(p
            .isolate_rules
            .iter()
            .any(|r| r.text == "ip6 saddr @nets6 ip6 daddr fd00::/64 drop"));
        // Returns precede every drop.
        let first_drop = p
            .isolate_rules
            .iter()
            .position(|r| r.text.ends_with("drop"));
        assert_eq!(first_drop, Some(4));
        assert_eq!(p.masq_rules.len(), 3);
    }

    #[test]
    fn only_a_non_isolated_install_deletes() {
        // Deletions cost the kernel an RCU grace period (~10 ms); see install_cmds.
        for (m, i) in [(true, false), (false, true), (true, true)] {
            let p = Plan::new("x", &nets(&["10.1.0.0/24", "fd00::/64"]), m, i);
            let deletes: Vec<String> = lines(&batch(&p))
                .into_iter()
                .filter(|x| x.starts_with("delete"))
                .collect();
            let expected: &[&str] = if i {
                &[]
            } else {
                &["delete chain vbridge/isolate-x"]
            };
            assert_eq!(deletes, expected);
        }
    }

    /// What `nft -j list table inet vbridge` shows for these set elements, each with
    /// `comment` (none: written before owners were recorded).
    fn listed_with(comment: Option<&str>, v4: &[&str], v6: &[&str]) -> Listed {
        let elem = |n: &IpNetwork| match comment {
            Some(c) => json!({"elem": {"val": element(n), "comment": c}}),
            None => element(n),
        };
        let elems = |l: &[&str]| -> Vec<Value> { nets(l).iter().map(elem).collect() };
        let listing = json!({"nftables": [
            {"set": {"family": "inet", "table": "vbridge", "name": "nets4", "elem": elems(v4)}},
            {"set": {"family": "inet", "table": "vbridge", "name": "nets6", "elem": elems(v6)}},
        ]});
        Listed::parse(Some(&listing)).expect("listing")
    }

    fn listed(owner: &str, v4: &[&str], v6: &[&str]) -> Listed {
        listed_with(Some(&format!("vbridge:{owner}")), v4, v6)
    }

    fn element_lines(p: &Plan) -> Vec<String> {
        lines(&batch(p))
            .into_iter()
            .filter(|l| l.contains("element"))
            .collect()
    }

    #[test]
    fn removal_batch_deletes_everything_listed_of_ours() {
        let ours = nets(&["10.1.0.0/24", "fd00::/64"]);
        let l = listed("r", &["10.1.0.0/24"], &["fd00::/64"]);
        let p = Plan::new("r", &ours, false, false).against(&l, &ours);
        assert!(!p.has_state());
        assert_eq!(
            lines(&batch(&p)),
            [
                "add table vbridge-r",
                "delete table vbridge-r",
                "add table vbridge",
                "add set vbridge/nets4",
                "add set vbridge/nets6",
                "add chain vbridge/isolate-r",
                "flush chain vbridge/isolate-r",
                "delete chain vbridge/isolate-r",
                "delete element nets4 10.1.0.0/24",
                "delete element nets6 fd00::/64",
            ]
        );
    }

    #[test]
    fn removal_deletes_no_element_that_is_not_listed() {
        let ours = nets(&["10.1.0.0/24", "fd00::/64"]);
        let p = Plan::new("r", &ours, false, false).against(&listed("r", &[], &[]), &ours);
        assert!(element_lines(&p).is_empty());
    }

    /// A lost stamp: the comments still tell the network's elements, and only those.
    #[test]
    fn removal_without_subnets_deletes_exactly_the_commented_elements() {
        let mine = listed("r", &["10.1.0.0/24", "10.2.0.0/24"], &["fd00::/64"]);
        let p = Plan::new("r", &[], false, false).against(&mine, &[]);
        assert_eq!(
            element_lines(&p),
            [
                "delete element nets4 10.1.0.0/24, 10.2.0.0/24",
                "delete element nets6 fd00::/64",
            ]
        );
        let others = listed("other", &["10.1.0.0/24"], &[]);
        let unmarked = listed_with(None, &["10.1.0.0/24"], &[]);
        for l in [others, unmarked] {
            let p = Plan::new("r", &[], false, false).against(&l, &[]);
            assert!(element_lines(&p).is_empty());
        }
    }

    #[test]
    fn resized_subnet_yields_one_element_and_one_rule() {
        // Old pods keep the /24 while new ones get the /23: nft refuses both elements.
        let p = Plan::new("z", &nets(&["10.1.0.0/23", "10.1.0.0/24"]), true, true);
        assert_eq!(p.own(Family::V4), nets(&["10.1.0.0/23"]));
        assert_eq!(p.masq_rules.len(), 1);
        assert_eq!(
            element_lines(&p),
            [r#"add element nets4 10.1.0.0/23 "vbridge:z""#]
        );
    }

    #[test]
    fn reinstall_deletes_replaced_elements_before_adding() {
        let known = nets(&["10.1.0.0/23", "10.1.0.0/24", "10.9.0.0/24", "fd00::/64"]);
        let p = Plan::new("z", &nets(&["10.1.0.0/23", "fd00::/64"]), true, false).against(
            &listed("z", &["10.1.0.0/24", "10.9.0.0/24"], &["fd00::/64"]),
            &known,
        );
        assert_eq!(
            element_lines(&p),
            [
                "delete element nets4 10.1.0.0/24, 10.9.0.0/24",
                r#"add element nets4 10.1.0.0/23 "vbridge:z""#,
            ]
        );
        // Nothing replaced: no deletion (it would cost an RCU grace period), no addition.
        let same = Plan::new("z", &nets(&["10.1.0.0/23"]), true, true)
            .against(&listed("z", &["10.1.0.0/23"], &[]), &nets(&["10.1.0.0/23"]));
        assert!(element_lines(&same).is_empty());
    }

    /// A failed install grew one subnet and shrank another: the sets hold one size of
    /// each, and only the listed ones are deleted, whichever they are.
    #[test]
    fn nesting_both_ways_deletes_what_is_listed() {
        let known = nets(&["10.1.0.0/23", "10.1.0.0/24", "10.4.0.0/23", "10.4.0.0/24"]);
        let listed = listed("n", &["10.1.0.0/24", "10.4.0.0/23"], &[]);
        let install = Plan::new("n", &nets(&["10.1.0.0/23", "10.4.0.0/24"]), true, false)
            .against(&listed, &known);
        assert_eq!(
            element_lines(&install),
            [
                "delete element nets4 10.1.0.0/24, 10.4.0.0/23",
                r#"add element nets4 10.1.0.0/23 "vbridge:n", 10.4.0.0/24 "vbridge:n""#,
            ]
        );
        let removal = Plan::new("n", &known, false, false).against(&listed, &known);
        assert_eq!(
            element_lines(&removal),
            ["delete element nets4 10.1.0.0/24, 10.4.0.0/23"]
        );
    }

    /// Another network's subnet inside a wider one of ours stays: nft must refuse the
    /// install rather than take that network's element away.
    #[test]
    fn a_foreign_element_inside_ours_is_not_retired() {
        let ours = nets(&["10.1.0.0/23", "10.1.0.0/24"]);
        let p = Plan::new("a", &ours, true, false).against(
            &listed_with(None, &["10.1.0.0/24", "10.1.1.0/24"], &[]),
            &ours,
        );
        assert_eq!(
            element_lines(&p),
            [
                "delete element nets4 10.1.0.0/24",
                r#"add element nets4 10.1.0.0/23 "vbridge:a""#,
            ]
        );
    }

    /// An element another network's comment names, identical to one of our subnets: it
    /// gets both owners, and whichever network goes first leaves it to the other.
    #[test]
    fn an_element_two_networks_need_is_shared() {
        let x = nets(&["10.1.0.0/24"]);
        let theirs = listed("a", &["10.1.0.0/24"], &[]);
        let b = Plan::new("b", &x, false, true).against(&theirs, &x);
        assert_eq!(
            element_lines(&b),
            [
                "delete element nets4 10.1.0.0/24",
                r#"add element nets4 10.1.0.0/24 "vbridge:b,a""#,
            ]
        );
        let both = listed_with(Some("vbridge:b,a"), &["10.1.0.0/24"], &[]);
        // Neither network's install changes a shared element again.
        for n in ["a", "b"] {
            let p = Plan::new(n, &x, true, false).against(&both, &x);
            assert!(element_lines(&p).is_empty(), "{n}");
        }
        // A (its stamp still names the subnet) goes: the element stays B's.
        let a_gone = Plan::new("a", &x, false, false).against(&both, &x);
        assert_eq!(
            element_lines(&a_gone),
            [
                "delete element nets4 10.1.0.0/24",
                r#"add element nets4 10.1.0.0/24 "vbridge:b""#,
            ]
        );
        // A re-install of A without the subnet drops A's claim the same way.
        let y = nets(&["10.2.0.0/24"]);
        let a_moved = Plan::new("a", &y, true, false).against(&both, &[x[0], y[0]]);
        assert_eq!(
            element_lines(&a_moved),
            [
                "delete element nets4 10.1.0.0/24",
                r#"add element nets4 10.2.0.0/24 "vbridge:a", 10.1.0.0/24 "vbridge:b""#,
            ]
        );
    }

    /// Elements written before owners were recorded: one identical to a kept subnet gets
    /// the network's comment; one that is not stays unless the network knows it.
    #[test]
    fn unmarked_elements_are_taken_over_by_exact_subnet() {
        let x = nets(&["10.1.0.0/24"]);
        let old = listed_with(None, &["10.1.0.0/24", "10.7.0.0/24"], &[]);
        let p = Plan::new("a", &x, true, false).against(&old, &x);
        assert_eq!(
            element_lines(&p),
            [
                "delete element nets4 10.1.0.0/24",
                r#"add element nets4 10.1.0.0/24 "vbridge:a""#,
            ]
        );
        let known = nets(&["10.1.0.0/24", "10.7.0.0/24"]);
        let removal = Plan::new("a", &known, false, false).against(&old, &known);
        assert_eq!(
            element_lines(&removal),
            ["delete element nets4 10.1.0.0/24, 10.7.0.0/24"]
        );
    }

    /// An element with a comment vbridge did not write is never touched.
    #[test]
    fn foreign_elements_are_left_alone() {
        let x = nets(&["10.1.0.0/24"]);
        let admin = listed_with(Some("admin"), &["10.1.0.0/24"], &[]);
        for (m, i) in [(true, false), (false, false)] {
            let p = Plan::new("a", &x, m, i).against(&admin, &x);
            assert!(element_lines(&p).is_empty());
        }
    }

    #[test]
    fn sets_are_interval_sets_of_the_right_type() {
        let b = batch(&Plan::new("s", &nets(&["10.1.0.0/24"]), true, false));
        let sets: Vec<&Value> = b["nftables"]
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|c| c["add"].get("set"))
            .collect();
        assert_eq!(sets[0]["type"], "ipv4_addr");
        assert_eq!(sets[1]["type"], "ipv6_addr");
        assert_eq!(sets[0]["flags"], json!(["interval"]));
    }
}
