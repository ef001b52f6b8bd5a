//! The shared sets as `nft -j list` shows them (pure, unit tested).
//!
//! What the sets hold is asked before every install and removal, never guessed: a
//! deletion of an absent element fails the whole transaction, and an install that
//! failed or was killed leaves no record of which of its elements made it. Whose an
//! element is, its comment says (see `owners`); one without a comment, written by an
//! earlier build, is a network's only when it is exactly one of the subnets the network
//! may have added. One that merely overlaps them belongs to another network (networks
//! must not overlap, and one that does must not lose its elements to this one's
//! install), so it stays, and nft refuses the install.

use std::net::IpAddr;

use conf::ipamconf::ip_to_u128;
use ipnetwork::IpNetwork;
use serde_json::Value;

use super::owners::Claim;
use super::plan::Family;

/// One listed element: its key in the form nft listed it (what a deletion names;
/// options such as a comment stripped), the inclusive address interval it covers, and
/// whose it is.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Element {
    pub json: Value,
    pub claim: Claim,
    lo: u128,
    hi: u128,
}

impl Element {
    /// Whether the element is exactly `net`.
    pub(super) fn is(&self, net: &IpNetwork) -> bool {
        (self.lo, self.hi) == interval(net)
    }

    /// Whether the network tagged `tag` may delete the element: its comment names the
    /// network, or it has none and is exactly one of `known` (every subnet the network
    /// may have added).
    pub(super) fn claimed_by(&self, tag: &str, known: &[IpNetwork]) -> bool {
        match &self.claim {
            Claim::Owners(o) => o.iter().any(|t| t == tag),
            Claim::Unmarked => known.iter().any(|k| self.is(k)),
            Claim::Foreign => false,
        }
    }
}

/// The elements of the shared sets, per family (index 0 = v4, 1 = v6).
#[derive(Debug, Default)]
pub(super) struct Listed {
    elems: [Vec<Element>; 2],
}

impl Listed {
    /// From `nft -j list table inet vbridge`; no table (`None`) or no set is empty.
    /// Anything unexpected is an error: a misread listing could delete a foreign element
    /// or keep a stale one.
    pub(super) fn parse(listing: Option<&Value>) -> Result<Listed, String> {
        let mut out = Listed::default();
        let Some(listing) = listing else {
            return Ok(out);
        };
        let objects = listing["nftables"]
            .as_array()
            .ok_or("no \"nftables\" array")?;
        for set in objects.iter().filter_map(|o| o.get("set")) {
            let Some(f) = Family::ALL.into_iter().find(|f| set["name"] == f.set()) else {
                continue;
            };
            let elems = match &set["elem"] {
                Value::Null => &[][..],
                Value::Array(a) => a.as_slice(),
                other => return Err(format!("set {}: elements are not a list: {other}", f.set())),
            };
            for e in elems {
                let parsed = element(f, e).map_err(|m| format!("set {}: {m}: {e}", f.set()))?;
                out.elems[f as usize].push(parsed);
            }
        }
        Ok(out)
    }

    /// The listed elements of family `f`.
    pub(super) fn of(&self, f: Family) -> &[Element] {
        &self.elems[f as usize]
    }

    /// The listed element of family `f` that is exactly `net`.
    pub(super) fn exactly(&self, f: Family, net: &IpNetwork) -> Option<&Element> {
        self.of(f).iter().find(|e| e.is(net))
    }
}

/// The inclusive address interval of a subnet.
fn interval(net: &IpNetwork) -> (u128, u128) {
    (ip_to_u128(net.network()), ip_to_u128(net.broadcast()))
}

/// An element in any form nft lists one: a bare address, `{"prefix": ...}`,
/// `{"range": [a, b]}`, or wrapped with options as `{"elem": {"val": ...}}`.
pub(super) fn element(f: Family, v: &Value) -> Result<Element, String> {
    let (lo, hi) = match v {
        Value::String(s) => {
            let a = address(f, s)?;
            (a, a)
        }
        Value::Object(o) if o.len() == 1 => {
            let (kind, body) = o.iter().next().ok_or("empty element")?;
            match kind.as_str() {
                "prefix" => prefix(f, body)?,
                "range" => range(f, body)?,
                "elem" => return commented(f, body),
                _ => return Err(format!("unknown element kind {kind:?}")),
            }
        }
        _ => return Err("unknown element form".to_string()),
    };
    Ok(Element {
        json: v.clone(),
        claim: Claim::Unmarked,
        lo,
        hi,
    })
}

/// The body of `{"elem": {"val": KEY, "comment": ...}}`.
fn commented(f: Family, body: &Value) -> Result<Element, String> {
    let comment = match &body["comment"] {
        Value::Null => None,
        Value::String(c) => Some(c.as_str()),
        other => return Err(format!("comment is not a string: {other}")),
    };
    Ok(Element {
        claim: Claim::parse(comment),
        ..element(f, &body["val"])?
    })
}

fn address(f: Family, s: &str) -> Result<u128, String> {
    let a: IpAddr = s.parse().map_err(|_| format!("bad address {s:?}"))?;
    match (f, a) {
        (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_)) => Ok(ip_to_u128(a)),
        _ => Err(format!("address {s} of the wrong family")),
    }
}

fn prefix(f: Family, body: &Value) -> Result<(u128, u128), String> {
    let addr = body["addr"].as_str().ok_or("prefix without an address")?;
    let len = body["len"].as_u64().ok_or("prefix without a length")?;
    let a: IpAddr = addr.parse().map_err(|_| format!("bad address {addr:?}"))?;
    let len = u8::try_from(len).map_err(|_| format!("bad prefix length {len}"))?;
    let net = IpNetwork::new(a, len).map_err(|e| e.to_string())?;
    address(f, addr)?;
    Ok(interval(&net))
}

fn range_end(f: Family, v: &Value) -> Result<u128, String> {
    address(f, v.as_str().ok_or("range end is not an address")?)
}

fn range(f: Family, body: &Value) -> Result<(u128, u128), String> {
    let ends = body.as_array().ok_or("range is not a pair")?;
    let [lo, hi] = ends.as_slice() else {
        return Err("range is not a pair".to_string());
    };
    let (lo, hi) = (range_end(f, lo)?, range_end(f, hi)?);
    if lo > hi {
        return Err("range ends are reversed".to_string());
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn net(s: &str) -> IpNetwork {
        s.parse().expect("test subnet")
    }

    fn listing(v4: Value, v6: Value) -> Value {
        json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "inet", "name": "vbridge"}},
            {"set": {"family": "inet", "name": "nets4", "table": "vbridge", "elem": v4}},
            {"set": {"family": "inet", "name": "nets6", "table": "vbridge", "elem": v6}},
            {"chain": {"family": "inet", "table": "vbridge", "name": "isolate-a"}},
        ]})
    }

    /// The keys of the elements network `a` may delete.
    fn ours(l: &Listed, f: Family, known: &[&str]) -> Vec<Value> {
        let known: Vec<IpNetwork> = known.iter().map(|s| net(s)).collect();
        (l.of(f).iter())
            .filter(|e| e.claimed_by("a", &known))
            .map(|e| e.json.clone())
            .collect()
    }

    #[test]
    fn every_listed_form_is_understood() {
        let v4 = json!([
            {"prefix": {"addr": "10.0.0.0", "len": 24}},
            "10.0.3.5",
            {"range": ["10.0.4.0", "10.0.4.255"]},
            {"elem": {"val": {"prefix": {"addr": "10.0.5.0", "len": 24}}}},
        ]);
        let mut keys = v4.as_array().expect("array").clone();
        keys[3] = json!({"prefix": {"addr": "10.0.5.0", "len": 24}});
        let v6 = json!([{"prefix": {"addr": "fd00::", "len": 64}}]);
        let l = Listed::parse(Some(&listing(v4.clone(), v6))).expect("parse");
        let all = ["10.0.0.0/24", "10.0.3.5/32", "10.0.4.0/24", "10.0.5.0/24"];
        assert_eq!(ours(&l, Family::V4, &all), keys);
        assert_eq!(ours(&l, Family::V6, &["fd00::/64"]).len(), 1);
        // Families never mix.
        assert!(ours(&l, Family::V6, &all).is_empty());
    }

    #[test]
    fn only_exact_matches_are_ours() {
        let v4 = json!([
            {"prefix": {"addr": "10.0.0.0", "len": 24}},
            {"prefix": {"addr": "10.0.1.0", "len": 24}},
            {"prefix": {"addr": "10.0.2.0", "len": 23}},
        ]);
        let l = Listed::parse(Some(&listing(v4, Value::Null))).expect("parse");
        // A resize in both directions: the /24 grew to a /23, the /23 shrank to a /24.
        assert_eq!(
            ours(
                &l,
                Family::V4,
                &["10.0.0.0/23", "10.0.0.0/24", "10.0.2.0/23", "10.0.2.0/24"]
            ),
            [
                json!({"prefix": {"addr": "10.0.0.0", "len": 24}}),
                json!({"prefix": {"addr": "10.0.2.0", "len": 23}}),
            ]
        );
        // Another network's subnet inside ours, or around it, is not ours.
        assert!(ours(&l, Family::V4, &["10.0.0.0/16", "10.0.3.0/24"]).is_empty());
    }

    #[test]
    fn the_comment_decides_whose_an_element_is() {
        let commented = |addr: &str, comment: &str| json!({"elem": {"val": {"prefix": {"addr": addr, "len": 24}}, "comment": comment}});
        let v4 = json!([
            commented("10.0.0.0", "vbridge:a"),
            commented("10.0.1.0", "vbridge:b,a"),
            commented("10.0.2.0", "vbridge:b"),
            commented("10.0.3.0", "admin's"),
            {"prefix": {"addr": "10.0.4.0", "len": 24}},
        ]);
        let l = Listed::parse(Some(&listing(v4, Value::Null))).expect("parse");
        let key = |addr: &str| json!({"prefix": {"addr": addr, "len": 24}});
        // Without known subnets (a lost stamp), exactly the commented ones.
        assert_eq!(
            ours(&l, Family::V4, &[]),
            [key("10.0.0.0"), key("10.0.1.0")]
        );
        // Knowing a subnet claims an uncommented element, never one another network's
        // comment names, nor a foreign one.
        let all = ["10.0.2.0/24", "10.0.3.0/24", "10.0.4.0/24"];
        assert_eq!(
            ours(&l, Family::V4, &all),
            [key("10.0.0.0"), key("10.0.1.0"), key("10.0.4.0")]
        );
        let shared = l.exactly(Family::V4, &net("10.0.1.0/24")).expect("listed");
        assert_eq!(
            shared.claim,
            Claim::Owners(vec!["b".to_string(), "a".to_string()])
        );
        let bad = json!([{"elem": {"val": "10.0.0.1", "comment": 7}}]);
        assert!(Listed::parse(Some(&listing(bad, Value::Null))).is_err());
    }

    #[test]
    fn no_table_or_no_elements_is_empty() {
        let none = Listed::parse(None).expect("no table");
        assert_eq!(ours(&none, Family::V4, &["10.0.0.0/24"]).len(), 0);
        let empty = Listed::parse(Some(&listing(Value::Null, Value::Null))).expect("no elements");
        assert_eq!(ours(&empty, Family::V4, &["10.0.0.0/24"]).len(), 0);
        let no_sets = json!({"nftables": [{"table": {"family": "inet", "name": "vbridge"}}]});
        assert!(Listed::parse(Some(&no_sets)).is_ok());
    }

    #[test]
    fn unknown_shapes_are_errors_not_panics() {
        for bad in [
            json!([{"set": ["10.0.0.0"]}]),
            json!([{"prefix": {"addr": "10.0.0.0"}}]),
            json!([{"prefix": {"addr": "10.0.0.0", "len": 33}}]),
            json!([{"prefix": {"addr": "x", "len": 8}}]),
            json!([{"range": ["10.0.0.9"]}]),
            json!([{"range": ["10.0.0.9", "10.0.0.1"]}]),
            json!([{"range": [1, 2]}]),
            json!(["fd00::1"]),
            json!([42]),
            json!([{}]),
            json!([{"elem": {}}]),
            json!({"prefix": {"addr": "10.0.0.0", "len": 8}}),
        ] {
            let l = listing(bad.clone(), Value::Null);
            assert!(Listed::parse(Some(&l)).is_err(), "{bad}");
        }
        assert!(Listed::parse(Some(&json!({"x": 1}))).is_err());
    }
}
