//! The round-robin order in which a range set's addresses are tried.
//!
//! Starting right after the address reserved last (the set's cursor), the walk runs to
//! the end of that range, through the following ranges of the set, wraps to the first,
//! and ends at the cursor itself — every address exactly once. Gateways and `exclude`d
//! addresses are never yielded. That means the gateway of every range of every set, not
//! just of the walked one: two sets may share a subnet, and a requested address is refused
//! if it is any set's gateway, so the walk must not hand one out either. An excluded block
//! is jumped over in one step, so excluding a /96 of a /64 costs nothing.
//!
//! Host-local uses the same order; as its authors note, it means a container that is
//! recreated in a loop does not get its previous address back until the range has been
//! gone through.

use conf::ipamconf::{ip_to_u128, u128_to_ip, Range, RangeSet};
use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// An inclusive span of addresses of `set[range]`, as integers.
#[derive(Debug, Clone, Copy)]
struct Span {
    range: usize,
    from: u128,
    to: u128,
}

#[derive(Debug)]
pub struct Walk<'a> {
    /// Every range set of the config: their gateways are all skipped.
    sets: &'a [RangeSet],
    set: &'a [Range],
    exclude: &'a [IpNetwork],
    spans: Vec<Span>,
    span: usize,
    /// Next integer to try within `spans[span]`; `None` past the end of the family.
    pos: Option<u128>,
}

impl<'a> Walk<'a> {
    /// The walk of `sets[set]` starting after `last` (from the set's start when `last` is
    /// `None` or no longer inside the set, e.g. after a config change).
    pub fn after(
        sets: &'a [RangeSet],
        set: usize,
        exclude: &'a [IpNetwork],
        last: Option<IpAddr>,
    ) -> Walk<'a> {
        let set = sets.get(set).map_or(&[][..], Vec::as_slice);
        let spans = spans(set, last);
        let pos = spans.first().map(|s| s.from);
        Walk {
            sets,
            set,
            exclude,
            spans,
            span: 0,
            pos,
        }
    }

    fn is_gateway(&self, ip: IpAddr) -> bool {
        conf::ipamconf::is_gateway(self.sets, ip)
    }
}

fn bounds(r: &Range) -> (u128, u128) {
    (ip_to_u128(r.start), ip_to_u128(r.end))
}

fn spans(set: &[Range], last: Option<IpAddr>) -> Vec<Span> {
    let full = |i: usize| {
        let (from, to) = bounds(&set[i]);
        Span { range: i, from, to }
    };
    let Some((i, v)) = last.and_then(|ip| {
        set.iter()
            .position(|r| r.contains(ip))
            .map(|i| (i, ip_to_u128(ip)))
    }) else {
        return (0..set.len()).map(full).collect();
    };
    let (start, end) = bounds(&set[i]);
    let mut out = Vec::with_capacity(set.len() + 1);
    if let Some(from) = v.checked_add(1).filter(|f| *f <= end) {
        out.push(Span {
            range: i,
            from,
            to: end,
        });
    }
    out.extend((1..set.len()).map(|k| full((i + k) % set.len())));
    out.push(Span {
        range: i,
        from: start,
        to: v,
    });
    out
}

impl Iterator for Walk<'_> {
    type Item = IpAddr;

    fn next(&mut self) -> Option<IpAddr> {
        loop {
            let span = *self.spans.get(self.span)?;
            let cur = match self.pos {
                Some(p) if p <= span.to => p,
                _ => {
                    self.span += 1;
                    self.pos = self.spans.get(self.span).map(|s| s.from);
                    continue;
                }
            };
            let ip = u128_to_ip(cur, self.set[span.range].start)?;
            if let Some(net) = self.exclude.iter().find(|n| n.contains(ip)) {
                self.pos = ip_to_u128(net.broadcast()).checked_add(1);
                continue;
            }
            self.pos = cur.checked_add(1);
            if !self.is_gateway(ip) {
                return Some(ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use conf::ipamconf::RangeConf;

    pub(crate) fn range(subnet: &str, start: Option<&str>, end: Option<&str>) -> Range {
        RangeConf {
            subnet: subnet.into(),
            range_start: start.map(Into::into),
            range_end: end.map(Into::into),
            gateway: None,
        }
        .canonicalize("test")
        .expect("range")
    }

    fn alone(set: &RangeSet) -> &[RangeSet] {
        std::slice::from_ref(set)
    }

    fn ips(w: Walk<'_>) -> Vec<String> {
        w.map(|i| i.to_string()).collect()
    }

    #[test]
    fn whole_range_skips_gateway() {
        let set = vec![range("10.0.0.0/29", None, None)];
        assert_eq!(
            ips(Walk::after(alone(&set), 0, &[], None)),
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
    }

    #[test]
    fn skips_the_gateway_of_another_set() {
        let mut other = range("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.19"));
        other.gateway = "10.0.0.21".parse().ok();
        let sets = vec![
            vec![other],
            vec![range("10.0.0.0/24", Some("10.0.0.20"), Some("10.0.0.22"))],
        ];
        assert_eq!(
            ips(Walk::after(&sets, 1, &[], None)),
            ["10.0.0.20", "10.0.0.22"]
        );
    }

    #[test]
    fn starts_after_cursor_and_wraps() {
        let set = vec![range("10.0.0.0/29", None, None)];
        let last = "10.0.0.4".parse().ok();
        assert_eq!(
            ips(Walk::after(alone(&set), 0, &[], last)),
            ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
        );
        let last = "10.0.0.6".parse().ok();
        assert_eq!(ips(Walk::after(alone(&set), 0, &[], last))[0], "10.0.0.2");
    }

    #[test]
    fn crosses_ranges_of_a_set() {
        let set = vec![
            range("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.11")),
            range("10.0.1.0/24", Some("10.0.1.10"), Some("10.0.1.11")),
        ];
        let last = "10.0.0.11".parse().ok();
        assert_eq!(
            ips(Walk::after(alone(&set), 0, &[], last)),
            ["10.0.1.10", "10.0.1.11", "10.0.0.10", "10.0.0.11"]
        );
    }

    #[test]
    fn cursor_outside_the_set_starts_at_the_beginning() {
        let set = vec![range("10.0.0.0/30", None, None)];
        assert_eq!(
            ips(Walk::after(alone(&set), 0, &[], "192.168.0.1".parse().ok())),
            ["10.0.0.2"]
        );
    }

    #[test]
    fn excluded_blocks_are_jumped() {
        let set = vec![range("fd00::/64", None, None)];
        let ex: Vec<IpNetwork> = vec!["fd00::/65".parse().expect("net")];
        let first = Walk::after(alone(&set), 0, &ex, None)
            .next()
            .map(|i| i.to_string());
        assert_eq!(first.as_deref(), Some("fd00::8000:0:0:0"));
        let ex: Vec<IpNetwork> = vec!["10.0.0.3/32".parse().expect("net")];
        let set = vec![range("10.0.0.0/29", None, None)];
        assert_eq!(
            ips(Walk::after(alone(&set), 0, &ex, None)),
            ["10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
    }

    #[test]
    fn top_of_the_v6_space_does_not_overflow() {
        let set = vec![range("ffff:ffff:ffff:ffff::/64", None, None)];
        let last = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().ok();
        let first = Walk::after(alone(&set), 0, &[], last)
            .next()
            .map(|i| i.to_string());
        assert_eq!(first.as_deref(), Some("ffff:ffff:ffff:ffff::2"));
    }
}
