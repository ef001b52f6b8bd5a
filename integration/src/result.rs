//! Reading fields of a CNI ADD result.

use std::net::Ipv4Addr;

use serde_json::Value;

/// The first `ips[]` entry's address and prefix.
pub fn cidr_of(result: &Value) -> (Ipv4Addr, u8) {
    let text = result["ips"][0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no ips[0].address in {result}"));
    parse_cidr(text)
}

/// The first `ips[]` entry's address.
pub fn ip_of(result: &Value) -> Ipv4Addr {
    cidr_of(result).0
}

/// The first `ips[]` entry's gateway.
pub fn gateway_of(result: &Value) -> Ipv4Addr {
    let text = result["ips"][0]["gateway"]
        .as_str()
        .unwrap_or_else(|| panic!("no ips[0].gateway in {result}"));
    text.parse()
        .unwrap_or_else(|e| panic!("gateway {text:?}: {e}"))
}

/// "10.1.2.3/24" → (10.1.2.3, 24).
pub fn parse_cidr(text: &str) -> (Ipv4Addr, u8) {
    let (addr, prefix) = text
        .split_once('/')
        .unwrap_or_else(|| panic!("not a CIDR: {text:?}"));
    let addr = addr
        .parse()
        .unwrap_or_else(|e| panic!("address {addr:?}: {e}"));
    let prefix = prefix
        .parse()
        .unwrap_or_else(|e| panic!("prefix {prefix:?}: {e}"));
    (addr, prefix)
}

/// True if `routes[]` holds a route to `dst` (e.g. "0.0.0.0/0").
pub fn has_route(result: &Value, dst: &str) -> bool {
    let routes = result["routes"].as_array().cloned().unwrap_or_default();
    routes.iter().any(|r| r["dst"].as_str() == Some(dst))
}
