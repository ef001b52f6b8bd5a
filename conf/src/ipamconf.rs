//! IPAM config: the keys of the reference `host-local` plugin plus `exclude`.
//!
//! The raw section is canonicalized once into `IpamConfig`: every range has its subnet,
//! start, end and gateway filled in and checked, so the allocator never sees an
//! inconsistent range.

use crate::env::CmdArgs;
use crate::error::Error;
use crate::netconf::{decode, NetConf};
use crate::result::{Dns, Route};
use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;

pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// One range as written in the config (`ranges[i][j]` or the legacy top-level keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RangeConf {
    pub subnet: String,
    #[serde(rename = "rangeStart", default)]
    pub range_start: Option<String>,
    #[serde(rename = "rangeEnd", default)]
    pub range_end: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RouteConf {
    pub dst: String,
    #[serde(default)]
    pub gw: Option<String>,
    // CNI 1.1 route options, passed through to the result and installed by vbridge.
    #[serde(default, deserialize_with = "crate::netconf::zero_is_unset")]
    pub mtu: Option<u32>,
    #[serde(default, deserialize_with = "crate::netconf::zero_is_unset")]
    pub advmss: Option<u32>,
    #[serde(default)]
    pub priority: Option<u32>,
    #[serde(default)]
    pub table: Option<u32>,
    #[serde(default)]
    pub scope: Option<u8>,
}

/// The `ipam` object of the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct IpamSection {
    #[serde(rename = "type")]
    pub kind: String,
    pub subnet: Option<String>,
    #[serde(rename = "rangeStart")]
    pub range_start: Option<String>,
    #[serde(rename = "rangeEnd")]
    pub range_end: Option<String>,
    pub gateway: Option<String>,
    pub ranges: Vec<Vec<RangeConf>>,
    pub routes: Vec<RouteConf>,
    #[serde(rename = "dataDir")]
    pub data_dir: Option<String>,
    #[serde(rename = "resolvConf")]
    pub resolv_conf: Option<String>,
    pub exclude: Vec<String>,
}

/// A canonical range: `start..=end` inside `subnet`, `gateway` never handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub subnet: IpNetwork,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: Option<IpAddr>,
}

impl Range {
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4()
            && ip_to_u128(ip) >= ip_to_u128(self.start)
            && ip_to_u128(ip) <= ip_to_u128(self.end)
    }

    /// The address as the result's `address`: the IP with the subnet's prefix.
    pub fn cidr(&self, ip: IpAddr) -> IpNetwork {
        // The prefix comes from a valid network of the same family, so this cannot fail.
        IpNetwork::new(ip, self.subnet.prefix()).unwrap_or(self.subnet)
    }
}

/// One address per range set; within a set the first range with space wins.
pub type RangeSet = Vec<Range>;

#[derive(Debug, Clone)]
pub struct IpamConfig {
    pub network: String,
    pub range_sets: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub data_dir: PathBuf,
    pub exclude: Vec<IpNetwork>,
    /// Addresses the runtime asked for (runtimeConfig.ips, args.cni.ips, CNI_ARGS IP=).
    pub requested: Vec<IpAddr>,
    /// `resolvConf`, read only by ADD (`dns`): DEL, CHECK and GC never need it.
    pub resolv_conf: Option<PathBuf>,
    /// What only an ADD (and STATUS) refuses, found while building the config: a DEL or
    /// GC of a config an ADD refused — or that an older version accepted — must still
    /// find the store and release. (The standalone vbridge-ipam's CHECK refuses it too:
    /// it tells its addresses by the ranges.)
    pub add_problem: Option<String>,
    /// The conflist gives this plugin the `ipRanges` capability: its ranges may come from
    /// the runtime at ADD.
    pub runtime_ranges: bool,
}

const NO_RANGES: &str = "ipam: no \"subnet\" or \"ranges\" configured";

pub fn ip_to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address `n` of the same family as `like`; `None` past the family's end.
pub fn u128_to_ip(n: u128, like: IpAddr) -> Option<IpAddr> {
    match like {
        IpAddr::V4(_) => u32::try_from(n).ok().map(|v| IpAddr::V4(v.into())),
        IpAddr::V6(_) => Some(IpAddr::V6(n.into())),
    }
}

pub fn next_ip(ip: IpAddr) -> Option<IpAddr> {
    ip_to_u128(ip)
        .checked_add(1)
        .and_then(|n| u128_to_ip(n, ip))
}

fn parse_ip(s: &str, field: &str) -> Result<IpAddr, Error> {
    s.parse()
        .map_err(|_| Error::config(format!("{field}: {s:?} is not an IP address")))
}

fn parse_subnet(s: &str, field: &str) -> Result<IpNetwork, Error> {
    let n: IpNetwork = s.parse().map_err(|_| {
        Error::config(format!(
            "{field}: {s:?} is not a CIDR subnet (e.g. 10.88.0.0/16)"
        ))
    })?;
    if n.ip() != n.network() {
        return Err(Error::config(format!(
            "{field}: {s:?} has host bits set; did you mean {}/{}?",
            n.network(),
            n.prefix()
        )));
    }
    let bits = if n.is_ipv4() { 32 } else { 128 };
    if n.prefix() + 2 > bits {
        return Err(Error::config(format!(
            "{field}: {s:?} is too small to allocate from (need /{} or larger)",
            bits - 2
        )));
    }
    Ok(n)
}

impl RangeConf {
    /// Fills defaults the way host-local does: gateway = network+1, start = network+1,
    /// end = broadcast-1 (IPv4) or the last address (IPv6).
    pub fn canonicalize(&self, field: &str) -> Result<Range, Error> {
        let subnet = parse_subnet(&self.subnet, &format!("{field}.subnet"))?;
        let net = ip_to_u128(subnet.network());
        let last = match subnet {
            IpNetwork::V4(n) => u128::from(u32::from(n.broadcast())) - 1,
            IpNetwork::V6(n) => ip_to_u128(IpAddr::V6(n.broadcast())),
        };
        let like = subnet.network();
        let inside = |ip: IpAddr, what: &str| -> Result<IpAddr, Error> {
            if !subnet.contains(ip) {
                return Err(Error::config(format!(
                    "{field}.{what} {ip} is outside subnet {subnet}"
                )));
            }
            Ok(ip)
        };
        let gateway = match &self.gateway {
            Some(g) if !g.is_empty() => Some(inside(
                parse_ip(g, &format!("{field}.gateway"))?,
                "gateway",
            )?),
            _ => u128_to_ip(net + 1, like),
        };
        let start = match &self.range_start {
            Some(s) if !s.is_empty() => {
                inside(parse_ip(s, &format!("{field}.rangeStart"))?, "rangeStart")?
            }
            _ => u128_to_ip(net + 1, like).unwrap_or(like),
        };
        let end = match &self.range_end {
            Some(s) if !s.is_empty() => {
                inside(parse_ip(s, &format!("{field}.rangeEnd"))?, "rangeEnd")?
            }
            _ => u128_to_ip(last, like).unwrap_or(like),
        };
        let (s, e) = (ip_to_u128(start), ip_to_u128(end));
        if s > e {
            return Err(Error::config(format!(
                "{field}: rangeStart {start} is after rangeEnd {end}"
            )));
        }
        if s == net || (subnet.is_ipv4() && e == last + 1) {
            return Err(Error::config(format!(
                "{field}: the range {start}-{end} includes the network or broadcast address of {subnet}"
            )));
        }
        Ok(Range {
            subnet,
            start,
            end,
            gateway,
        })
    }
}

fn overlaps(a: &Range, b: &Range) -> bool {
    a.start.is_ipv4() == b.start.is_ipv4()
        && ip_to_u128(a.start) <= ip_to_u128(b.end)
        && ip_to_u128(b.start) <= ip_to_u128(a.end)
}

/// Overlapping ranges (within or across sets) would hand one address out twice.
fn overlap(sets: &[RangeSet]) -> Option<String> {
    let all: Vec<&Range> = sets.iter().flatten().collect();
    all.iter().enumerate().find_map(|(i, a)| {
        all[i + 1..].iter().find(|b| overlaps(a, b)).map(|b| {
            format!(
                "ipam ranges overlap: {}-{} and {}-{}",
                a.start, a.end, b.start, b.end
            )
        })
    })
}

/// The message is the config error's (see `IpamConfig::add_problem`).
fn parse_requested(s: &str, field: &str) -> Result<IpAddr, String> {
    // Runtimes send both "10.1.2.3" and "10.1.2.3/24" (the ips capability uses CIDR).
    let bad = || format!("{field}: {s:?} is not an IP address");
    let (ip, prefix) = match s.split_once('/') {
        Some((ip, p)) => (ip, Some(p)),
        None => (s, None),
    };
    // An IPv4-mapped IPv6 address is the IPv4 one, as host-local reads it.
    let ip: IpAddr = ip.parse::<IpAddr>().map_err(|_| bad())?.to_canonical();
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix.is_some_and(|p| !p.parse::<u8>().is_ok_and(|p| p <= max)) {
        return Err(bad());
    }
    Ok(ip)
}

impl IpamSection {
    /// The range sets that parse, and the first problem of those that do not (see
    /// `IpamConfig::add_problem`: only ADD and STATUS need the ranges).
    fn range_sets(&self, runtime: &[Vec<RangeConf>]) -> (Vec<RangeSet>, Option<String>) {
        let mut raw: Vec<(String, Vec<RangeConf>)> = Vec::new();
        // As host-local: runtimeConfig.ipRanges come first, then the legacy single range,
        // then ipam.ranges; one address per set, and sets must not overlap.
        raw.extend(
            runtime
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("runtimeConfig.ipRanges[{i}]"), s.clone())),
        );
        if let Some(subnet) = self.subnet.as_ref().filter(|s| !s.is_empty()) {
            let legacy = RangeConf {
                subnet: subnet.clone(),
                range_start: self.range_start.clone(),
                range_end: self.range_end.clone(),
                gateway: self.gateway.clone(),
            };
            raw.push(("ipam".into(), vec![legacy]));
        }
        raw.extend(
            self.ranges
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("ipam.ranges[{i}]"), s.clone())),
        );
        let mut sets = Vec::new();
        let mut problem = None;
        for (field, set) in raw {
            if set.is_empty() {
                problem.get_or_insert(format!("{field} is an empty range set"));
                continue;
            }
            // The legacy keys are the set's one range: `ipam.subnet`, not `ipam[0].subnet`.
            let name = |j: usize| match field.as_str() {
                "ipam" => field.clone(),
                _ => format!("{field}[{j}]"),
            };
            let ranges = set
                .iter()
                .enumerate()
                .map(|(j, r)| r.canonicalize(&name(j)))
                .collect::<Result<Vec<Range>, _>>();
            match ranges {
                // One address per set: a set of both families would hand out one or the
                // other depending on how full it is (host-local refuses it too).
                Ok(r)
                    if r.iter()
                        .any(|x| x.subnet.is_ipv4() != r[0].subnet.is_ipv4()) =>
                {
                    problem.get_or_insert(format!(
                        "{field} mixes IPv4 and IPv6 ranges: put each family in its own range set for dual stack"
                    ));
                }
                Ok(r) => sets.push(r),
                Err(e) => {
                    problem.get_or_insert(e.message());
                }
            }
        }
        (sets, problem)
    }

    /// The exclusions that parse, and the first problem of those that do not.
    fn exclusions(&self) -> (Vec<IpNetwork>, Option<String>) {
        let mut out = Vec::new();
        let mut problem = None;
        for (i, e) in self.exclude.iter().enumerate() {
            let f = format!("ipam.exclude[{i}]");
            let parsed = if e.contains('/') {
                e.parse::<IpNetwork>()
                    .map_err(|_| format!("{f}: {e:?} is not a CIDR"))
            } else {
                parse_ip(e, &f).map_err(Error::message).and_then(|ip| {
                    IpNetwork::new(ip, if ip.is_ipv4() { 32 } else { 128 })
                        .map_err(|x| x.to_string())
                })
            };
            match parsed {
                Ok(n) => out.push(n),
                Err(m) => {
                    problem.get_or_insert(m);
                }
            }
        }
        (out, problem)
    }

    fn routes(&self) -> Result<Vec<Route>, Error> {
        self.routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let f = format!("ipam.routes[{i}]");
                let dst: IpNetwork = r
                    .dst
                    .parse()
                    .map_err(|_| Error::config(format!("{f}.dst: {:?} is not a CIDR", r.dst)))?;
                let gw =
                    r.gw.as_deref()
                        .filter(|g| !g.is_empty())
                        .map(|g| parse_ip(g, &format!("{f}.gw")))
                        .transpose()?;
                if let Some(g) = gw.filter(|g| g.is_ipv4() != dst.is_ipv4()) {
                    return Err(Error::config(format!(
                        "{f}.gw: {g} is not of the address family of dst {dst}"
                    )));
                }
                Ok(Route {
                    mtu: r.mtu,
                    advmss: r.advmss,
                    priority: r.priority,
                    table: r.table,
                    scope: r.scope,
                    ..Route::new(dst, gw)
                })
            })
            .collect()
    }
}

impl IpamConfig {
    /// What only ADD refuses: older versions ignored route options, so DEL, GC and CHECK
    /// of attachments made under such a config must keep working.
    pub fn validate_for_add(&self) -> Result<(), Error> {
        self.validate_for_status()?;
        if self.range_sets.is_empty() {
            return Err(Error::config(NO_RANGES));
        }
        Ok(())
    }

    /// What STATUS refuses: as ADD, except that a config whose ranges all come from the
    /// runtime (`ipRanges` capability) has none yet — libcni sends STATUS and GC without
    /// `runtimeConfig`.
    pub fn validate_for_status(&self) -> Result<(), Error> {
        if let Some(p) = &self.add_problem {
            return Err(Error::config(p.clone()));
        }
        if self.range_sets.is_empty() && !self.runtime_ranges {
            return Err(Error::config(NO_RANGES));
        }
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(m) = r.mtu.filter(|m| !(68..=65535).contains(m)) {
                return Err(Error::config(format!(
                    "ipam.routes[{i}].mtu: {m} is outside 68-65535"
                )));
            }
        }
        Ok(())
    }

    /// Builds the IPAM config from the whole plugin config (the IPAM plugin receives
    /// all of it, per the spec) and the CNI_ARGS of this call.
    pub fn from_netconf(conf: &NetConf, args: &CmdArgs) -> Result<IpamConfig, Error> {
        let raw = conf
            .ipam
            .as_ref()
            .ok_or_else(|| Error::config("\"ipam\" is missing: give e.g. {\"type\":\"vbridge-ipam\",\"subnet\":\"10.88.0.0/16\"}"))?;
        Self::from_section(&conf.name, raw, conf, args)
    }

    pub fn from_section(
        network: &str,
        raw: &Value,
        conf: &NetConf,
        args: &CmdArgs,
    ) -> Result<IpamConfig, Error> {
        let sec: IpamSection = decode(raw, "ipam")?;
        // A DEL, CHECK or GC needs only the store's place: a range, exclusion or route
        // an ADD refused (or an older version accepted) must not stop them releasing.
        let (range_sets, range_problem) = sec.range_sets(&conf.runtime_config.ip_ranges);
        let (exclude, exclude_problem) = sec.exclusions();
        let (routes, routes_problem) = match sec.routes() {
            Ok(r) => (r, None),
            Err(e) => (Vec::new(), Some(e.message())),
        };
        let mut add_problem = range_problem
            .or_else(|| overlap(&range_sets))
            .or(exclude_problem)
            .or(routes_problem);
        let mut requested = Vec::new();
        let asked = (conf.runtime_config.ips.iter().enumerate())
            .map(|(i, s)| (s, format!("runtimeConfig.ips[{i}]")))
            .chain(
                (conf.args.cni.ips.iter().enumerate())
                    .map(|(i, s)| (s, format!("args.cni.ips[{i}]"))),
            )
            .chain(args.args.ip.iter().map(|s| (s, "CNI_ARGS IP".to_string())));
        for (s, field) in asked {
            match parse_requested(s, &field) {
                Ok(ip) => requested.push(ip),
                Err(e) => {
                    add_problem.get_or_insert(e);
                }
            }
        }
        requested.dedup();
        let resolv_conf = sec
            .resolv_conf
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from);
        Ok(IpamConfig {
            network: network.to_string(),
            range_sets,
            runtime_ranges: conf.capability("ipRanges"),
            routes,
            data_dir: PathBuf::from(
                sec.data_dir
                    .as_deref()
                    .filter(|d| !d.is_empty())
                    .unwrap_or(DEFAULT_DATA_DIR),
            ),
            exclude,
            requested,
            resolv_conf,
            add_problem,
        })
    }

    /// The result's DNS: `resolvConf` read now (ADD only; a DEL must not depend on a
    /// file that may be gone since).
    pub fn dns(&self) -> Result<Dns, Error> {
        match &self.resolv_conf {
            Some(p) => parse_resolv_conf(&p.to_string_lossy()).map_err(Error::config),
            None => Ok(Dns::default()),
        }
    }

    pub fn is_excluded(&self, ip: IpAddr) -> bool {
        self.exclude.iter().any(|n| n.contains(ip))
    }

    /// Whether `ip` is the gateway of any range (of any set): never handed out.
    pub fn is_gateway(&self, ip: IpAddr) -> bool {
        is_gateway(&self.range_sets, ip)
    }
}

/// Whether `ip` is the gateway of any range of `sets`: the walk and the check of
/// requested addresses both ask this, so they agree.
pub fn is_gateway(sets: &[RangeSet], ip: IpAddr) -> bool {
    sets.iter().flatten().any(|r| r.gateway == Some(ip))
}

/// Reads nameserver/domain/search/options lines of a resolv.conf into `dns`.
/// The message is the config error's (see `IpamConfig::add_problem`).
pub fn parse_resolv_conf(path: &str) -> Result<Dns, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("ipam.resolvConf: cannot read {path}: {e}"))?;
    Ok(dns_from_resolv(&text))
}

pub fn dns_from_resolv(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines() {
        // As host-local reads it (so results match the reference's): a keyword without a
        // value is skipped, and every `search` line adds to the list.
        let w: Vec<&str> = line.split_whitespace().collect();
        let [key, first, rest @ ..] = w.as_slice() else {
            continue;
        };
        let all = || std::iter::once(first).chain(rest).map(|s| s.to_string());
        match *key {
            "nameserver" => dns.nameservers.push(first.to_string()),
            "domain" => dns.domain = first.to_string(),
            "search" => dns.search.extend(all()),
            "options" => dns.options.extend(all()),
            _ => {}
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn conf(ipam: &str) -> Result<IpamConfig, Error> {
        let doc = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"vbridge","ipam":{ipam}}}"#);
        let (_, c, _) = NetConf::parse(doc.as_bytes())?;
        IpamConfig::from_netconf(&c, &CmdArgs::default())
    }

    #[test]
    fn legacy_subnet_defaults() {
        let c = conf(r#"{"type":"vbridge-ipam","subnet":"10.1.0.0/24"}"#).expect("ok");
        let r = &c.range_sets[0][0];
        assert_eq!(r.start.to_string(), "10.1.0.1");
        assert_eq!(r.end.to_string(), "10.1.0.254");
        assert_eq!(
            r.gateway.map(|g| g.to_string()).as_deref(),
            Some("10.1.0.1")
        );
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn v6_defaults() {
        let c =
            conf(r#"{"type":"vbridge-ipam","ranges":[[{"subnet":"fd00:1::/64"}]]}"#).expect("ok");
        let r = &c.range_sets[0][0];
        assert_eq!(r.start.to_string(), "fd00:1::1");
        assert_eq!(r.end.to_string(), "fd00:1::ffff:ffff:ffff:ffff");
    }

    #[test]
    fn bad_ranges_are_code_7() {
        for bad in [
            r#"{"subnet":"10.1.0.5/24"}"#,
            r#"{"subnet":"10.1.0.5/32"}"#,
            r#"{"subnet":"10.1.0.4/31"}"#,
            r#"{"subnet":"garbage"}"#,
            r#"{"subnet":"10.1.0.0/24","rangeStart":"10.2.0.1"}"#,
            r#"{"subnet":"10.1.0.0/24","gateway":"10.2.0.1"}"#,
            r#"{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.9","rangeEnd":"10.1.0.3"}"#,
            r#"{"ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.1.0.0/25"}]]}"#,
            r#"{"ranges":[[]]}"#,
            r#"{}"#,
            r#"{"subnet":"10.1.0.0/24","exclude":["nope"]}"#,
        ] {
            // A DEL, CHECK or GC after the refused ADD still finds the store.
            let c = conf(bad).unwrap_or_else(|e| panic!("{bad}: DEL cannot build it: {e}"));
            assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR), "{bad}");
            let e = c.validate_for_add().expect_err(bad);
            assert_eq!(e.code(), ErrorCode::InvalidConfig, "{bad}: {e}");
            assert!(
                !e.to_string().contains("config: invalid network config"),
                "{bad}: prefix repeated: {e}"
            );
        }
    }

    /// libcni sends GC and STATUS without `runtimeConfig`: a network whose ranges all come
    /// from the `ipRanges` capability has none then, which is no config error for them.
    #[test]
    fn runtime_only_ranges_are_for_add_to_require() {
        let doc = |caps: &str| {
            format!(
                r#"{{"cniVersion":"1.1.0","name":"n","type":"vbridge","capabilities":{caps},
                "ipam":{{"type":"vbridge-ipam"}}}}"#
            )
        };
        let build = |caps: &str| {
            let (_, c, _) = NetConf::parse(doc(caps).as_bytes()).expect("parses");
            IpamConfig::from_netconf(&c, &CmdArgs::default()).expect("builds")
        };
        let runtime = build(r#"{"ipRanges":true}"#);
        runtime
            .validate_for_status()
            .expect("STATUS: ranges come at ADD");
        let e = runtime.validate_for_add().expect_err("ADD without ranges");
        assert!(e.to_string().contains("subnet"), "{e}");
        let fixed = build(r#"{"ipRanges":false,"portMappings":true}"#);
        let e = fixed.validate_for_status().expect_err("no ranges at all");
        assert_eq!(e.code(), ErrorCode::InvalidConfig, "{e}");
    }

    #[test]
    fn an_unreadable_resolv_conf_fails_add_only() {
        let c = conf(r#"{"subnet":"10.1.0.0/24","resolvConf":"/nonexistent/resolv.conf"}"#)
            .expect("DEL can build it (and never reads the file)");
        let e = c.dns().expect_err("ADD reads it");
        assert_eq!(e.code(), ErrorCode::InvalidConfig);
        assert!(e.to_string().contains("resolvConf"), "{e}");
    }

    #[test]
    fn overlaps_and_bad_requests_are_for_add_only() {
        // An attachment an older version made (ipRanges used to replace ipam.ranges) or
        // an ADD refused must still be DELetable: the store is found, the ADD refuses.
        let c = conf(r#"{"ranges":[[{"subnet":"10.1.0.0/24"}],[{"subnet":"10.1.0.0/25"}]]}"#)
            .expect("DEL can build it");
        let e = c.validate_for_add().expect_err("ADD refuses it");
        assert!(e.to_string().contains("overlap"), "{e}");
        let doc = r#"{"cniVersion":"1.1.0","name":"n","type":"vbridge","ipam":{"subnet":"10.1.0.0/24"},
            "args":{"cni":{"ips":["10.1.0.5/33"]}}}"#;
        let (_, nc, _) = NetConf::parse(doc.as_bytes()).expect("ok");
        let c = IpamConfig::from_netconf(&nc, &CmdArgs::default()).expect("DEL can build it");
        let e = c.validate_for_add().expect_err("ADD refuses it");
        assert_eq!(e.code(), ErrorCode::InvalidConfig);
        assert_eq!(
            e.to_string().matches("invalid network config").count(),
            1,
            "{e}"
        );
        assert!(e.to_string().contains("args.cni.ips[0]"), "{e}");
    }

    #[test]
    fn route_options_pass_through() {
        let c = conf(
            r#"{"type":"vbridge-ipam","subnet":"10.1.0.0/24","routes":[
                {"dst":"192.0.2.0/24","priority":300,"mtu":1300,"advmss":1200},
                {"dst":"198.51.100.0/24","table":100,"scope":0}]}"#,
        )
        .expect("ok");
        let (a, b) = (&c.routes[0], &c.routes[1]);
        assert_eq!(
            (a.priority, a.mtu, a.advmss),
            (Some(300), Some(1300), Some(1200))
        );
        assert_eq!((b.table, b.scope, b.priority), (Some(100), Some(0), None));
        let bad = conf(r#"{"subnet":"10.1.0.0/24","routes":[{"dst":"192.0.2.0/24","mtu":20}]}"#)
            .expect("parses: DEL of such a config still works");
        let e = bad.validate_for_add().expect_err("mtu 20");
        assert_eq!(e.code(), ErrorCode::InvalidConfig, "{e}");
        assert!(e.to_string().contains("routes[0].mtu"), "{e}");
    }

    #[test]
    fn route_gateway_of_the_other_family_is_refused_on_add() {
        for routes in [
            r#"[{"dst":"fd00:1::/64","gw":"10.1.0.1"}]"#,
            r#"[{"dst":"192.0.2.0/24","gw":"fd00::1"}]"#,
        ] {
            let c = conf(&format!(r#"{{"subnet":"10.1.0.0/24","routes":{routes}}}"#))
                .expect("DEL can build it");
            let e = c.validate_for_add().expect_err("ADD refuses it");
            assert_eq!(e.code(), ErrorCode::InvalidConfig, "{e}");
            assert!(e.to_string().contains("ipam.routes[0].gw"), "{e}");
        }
    }

    #[test]
    fn a_range_set_of_both_families_is_refused_on_add() {
        let c = conf(r#"{"ranges":[[{"subnet":"10.0.0.0/30"},{"subnet":"fd00::/126"}]]}"#)
            .expect("DEL can build it");
        let e = c.validate_for_add().expect_err("mixed families");
        assert!(e.to_string().contains("ipam.ranges[0] mixes"), "{e}");
    }

    #[test]
    fn legacy_keys_are_named_as_written() {
        let e = conf(r#"{"subnet":"10.1.0.0/24","rangeStart":"10.2.0.1"}"#)
            .and_then(|c| c.validate_for_add())
            .expect_err("rangeStart outside the subnet");
        assert!(e.to_string().contains("ipam.rangeStart"), "{e}");
        assert!(!e.to_string().contains("ipam[0]"), "{e}");
    }

    #[test]
    fn ipv4_mapped_request_is_the_ipv4_address() {
        assert_eq!(
            parse_requested("::ffff:10.0.0.5", "IP"),
            Ok("10.0.0.5".parse().expect("ip"))
        );
    }

    #[test]
    fn error_names_field() {
        let e = conf(r#"{"subnet":"10.1.0.0/24","rangeStart":"10.2.0.1"}"#)
            .and_then(|c| c.validate_for_add())
            .expect_err("rangeStart outside the subnet");
        assert!(e.to_string().contains("rangeStart"), "{e}");
    }

    #[test]
    fn requested_from_all_sources() {
        let doc = r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","ipam":{"subnet":"10.1.0.0/24"},
            "runtimeConfig":{"ips":["10.1.0.7/24"]},"args":{"cni":{"ips":["10.1.0.8"]}}}"#;
        let (_, c, _) = NetConf::parse(doc.as_bytes()).expect("ok");
        let args = CmdArgs {
            args: crate::env::CniArgs::parse("IP=10.1.0.9").expect("args"),
            ..Default::default()
        };
        let i = IpamConfig::from_netconf(&c, &args).expect("ok");
        let got: Vec<String> = i.requested.iter().map(|a| a.to_string()).collect();
        assert_eq!(got, ["10.1.0.7", "10.1.0.8", "10.1.0.9"]);
    }

    #[test]
    fn ip_ranges_capability_comes_before_the_configured_ranges() {
        let with = |ipam: &str, runtime: &str| {
            let doc = format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"vbridge","ipam":{ipam},
                "runtimeConfig":{{"ipRanges":{runtime}}}}}"#
            );
            let (_, c, _) = NetConf::parse(doc.as_bytes()).expect("ok");
            IpamConfig::from_netconf(&c, &CmdArgs::default())
        };
        // As host-local: a dual-stack config with a runtime IPv4 range set gets both.
        let i = with(
            r#"{"ranges":[[{"subnet":"fd00::/64"}]]}"#,
            r#"[[{"subnet":"10.9.0.0/24"}]]"#,
        )
        .expect("ok");
        let subnets: Vec<String> = i
            .range_sets
            .iter()
            .map(|s| s[0].subnet.to_string())
            .collect();
        assert_eq!(subnets, ["10.9.0.0/24", "fd00::/64"]);
        let i = with(
            r#"{"subnet":"10.1.0.0/24"}"#,
            r#"[[{"subnet":"10.9.0.0/24"}]]"#,
        )
        .expect("ok");
        assert_eq!(i.range_sets.len(), 2);
        assert_eq!(i.range_sets[0][0].subnet.to_string(), "10.9.0.0/24");
        let e = with(
            r#"{"subnet":"10.9.0.0/24"}"#,
            r#"[[{"subnet":"10.9.0.0/24"}]]"#,
        )
        .and_then(|c| c.validate_for_add())
        .expect_err("overlap, as host-local");
        assert!(e.to_string().contains("overlap"), "{e}");
        let i = with(r#"{}"#, r#"[[{"subnet":"10.9.0.0/24"}]]"#).expect("runtime only");
        assert_eq!(i.range_sets.len(), 1);
    }

    #[test]
    fn zero_route_mtu_is_unset_and_ip_suffix_must_be_a_prefix() {
        let doc = r#"{"cniVersion":"1.1.0","name":"n","type":"vbridge","ipam":{"subnet":"10.1.0.0/24",
            "routes":[{"dst":"0.0.0.0/0","mtu":0,"advmss":0}]}}"#;
        let (_, c, _) = NetConf::parse(doc.as_bytes()).expect("ok");
        let i = IpamConfig::from_netconf(&c, &CmdArgs::default()).expect("ok");
        i.validate_for_add().expect("mtu 0 is no mtu");
        assert_eq!((i.routes[0].mtu, i.routes[0].advmss), (None, None));
        assert!(parse_requested("10.0.0.5/24", "IP").is_ok());
        for bad in ["10.0.0.5/abc", "10.0.0.5/33", "fd00::5/129", "10.0.0.5/"] {
            assert!(parse_requested(bad, "IP").is_err(), "{bad}");
        }
    }

    #[test]
    fn resolv() {
        let d = dns_from_resolv("nameserver 1.1.1.1\nsearch a b\ndomain x\noptions ndots:5\n# c\n");
        assert_eq!(d.nameservers, ["1.1.1.1"]);
        assert_eq!(d.search, ["a", "b"]);
        assert_eq!(d.domain, "x");
        assert_eq!(d.options, ["ndots:5"]);
        // host-local's reading: search lines add up, bare keywords are skipped.
        let d = dns_from_resolv("search a\nsearch b c\nsearch\ndomain x\ndomain\n");
        assert_eq!(d.search, ["a", "b", "c"]);
        assert_eq!(d.domain, "x");
    }

    #[test]
    fn exclude_and_next() {
        let c =
            conf(r#"{"subnet":"10.1.0.0/24","exclude":["10.1.0.5","10.1.0.64/26"]}"#).expect("ok");
        assert!(c.is_excluded("10.1.0.5".parse().expect("ip")));
        assert!(c.is_excluded("10.1.0.100".parse().expect("ip")));
        assert!(!c.is_excluded("10.1.0.6".parse().expect("ip")));
        assert_eq!(
            next_ip("10.0.0.255".parse().expect("ip"))
                .map(|i| i.to_string())
                .as_deref(),
            Some("10.0.1.0")
        );
        assert!(next_ip("255.255.255.255".parse().expect("ip")).is_none());
    }
}
