//! The ADD result (spec 1.1.0) and its conversion to every older result version.
//!
//! Results are built once in the 1.1.0 shape and converted on output: 1.0.0 drops the
//! fields 1.1.0 added, 0.3.x/0.4.0 additionally carry `ips[].version`.

use crate::error::Error;
use crate::version::Version;
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub socket_path: String,
    #[serde(rename = "pciID", default, skip_serializing_if = "String::is_empty")]
    pub pci_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    pub address: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNetwork,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// The gateway as the kernel takes it: 0.0.0.0 / `::` means on-link (what dhcp reports
    /// for option 121's router 0.0.0.0), no next hop at all.
    pub fn next_hop(&self) -> Option<IpAddr> {
        self.gw.filter(|g| !g.is_unspecified())
    }

    pub fn new(dst: IpNetwork, gw: Option<IpAddr>) -> Self {
        Route {
            dst,
            gw,
            mtu: None,
            advmss: None,
            priority: None,
            table: None,
            scope: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty()
            && self.domain.is_empty()
            && self.search.is_empty()
            && self.options.is_empty()
    }
}

/// Fields that appeared in 1.1.0 and must not be sent to older consumers.
const IFACE_1_1_FIELDS: [&str; 3] = ["mtu", "socketPath", "pciID"];
const ROUTE_1_1_FIELDS: [&str; 5] = ["mtu", "advmss", "priority", "table", "scope"];

impl CniResult {
    /// Parses a `prevResult` of any supported version (extra fields such as
    /// `ips[].version` are ignored).
    pub fn from_value(v: &Value) -> Result<CniResult, Error> {
        serde_json::from_value(v.clone()).map_err(|e| Error::Decode {
            what: "prevResult".into(),
            msg: e.to_string(),
        })
    }

    /// The result as the JSON object of `version`, `cniVersion` included.
    pub fn to_value(&self, version: Version) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        let Some(obj) = v.as_object_mut() else {
            return v;
        };
        if version < Version::V1_1_0 {
            strip(obj.get_mut("interfaces"), &IFACE_1_1_FIELDS);
            strip(obj.get_mut("routes"), &ROUTE_1_1_FIELDS);
        }
        if version.has_ip_version_field() {
            if let Some(Value::Array(ips)) = obj.get_mut("ips") {
                for (ip, orig) in ips.iter_mut().zip(&self.ips) {
                    let fam = if orig.address.is_ipv4() { "4" } else { "6" };
                    if let Some(o) = ip.as_object_mut() {
                        o.insert("version".into(), Value::String(fam.into()));
                    }
                }
            }
        }
        obj.insert("cniVersion".into(), Value::String(version.as_str().into()));
        v
    }

    pub fn to_json(&self, version: Version) -> String {
        self.to_value(version).to_string()
    }
}

fn strip(list: Option<&mut Value>, fields: &[&str]) {
    if let Some(Value::Array(items)) = list {
        for it in items.iter_mut().filter_map(Value::as_object_mut) {
            for f in fields {
                it.remove(*f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::SUPPORTED;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "cni0".into(),
                    mac: "aa:bb:cc:dd:ee:01".into(),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    mac: "aa:bb:cc:dd:ee:02".into(),
                    mtu: Some(1500),
                    sandbox: "/run/netns/c".into(),
                    ..Default::default()
                },
            ],
            ips: vec![
                IpConfig {
                    interface: Some(1),
                    address: "10.1.0.2/24".parse().expect("net"),
                    gateway: Some("10.1.0.1".parse().expect("ip")),
                },
                IpConfig {
                    interface: Some(1),
                    address: "fd00::2/64".parse().expect("net"),
                    gateway: None,
                },
            ],
            routes: vec![Route {
                priority: Some(10),
                ..Route::new("0.0.0.0/0".parse().expect("net"), None)
            }],
            dns: Dns::default(),
        }
    }

    #[test]
    fn v110_full() {
        let v = sample().to_value(Version::V1_1_0);
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["interfaces"][1]["mtu"], 1500);
        assert_eq!(v["routes"][0]["priority"], 10);
        assert_eq!(v["ips"][0]["address"], "10.1.0.2/24");
        assert!(v["ips"][0].get("version").is_none());
        assert!(v.get("dns").is_none());
    }

    #[test]
    fn v100_drops_new_fields() {
        let v = sample().to_value(Version::V1_0_0);
        assert!(v["interfaces"][1].get("mtu").is_none());
        assert!(v["routes"][0].get("priority").is_none());
        assert!(v["ips"][0].get("version").is_none());
    }

    #[test]
    fn v04_has_ip_version() {
        for ver in [Version::V0_3_0, Version::V0_3_1, Version::V0_4_0] {
            let v = sample().to_value(ver);
            assert_eq!(v["ips"][0]["version"], "4");
            assert_eq!(v["ips"][1]["version"], "6");
            assert_eq!(v["cniVersion"], ver.as_str());
        }
    }

    #[test]
    fn roundtrip_every_version() {
        for s in SUPPORTED {
            let ver = Version::parse(s).expect("v");
            let v = sample().to_value(ver);
            let back = CniResult::from_value(&v).expect("parse");
            assert_eq!(back.ips, sample().ips, "{s}");
            assert_eq!(back.interfaces.len(), 2);
        }
    }

    #[test]
    fn bad_prev_result() {
        let e =
            CniResult::from_value(&serde_json::json!({"ips": [{"address": "nope"}]})).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::Decode);
    }
}
