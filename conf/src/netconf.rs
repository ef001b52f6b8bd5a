//! The plugin config on stdin: the keys of the reference `bridge` plugin plus ours.
//!
//! Parsing happens in two steps so the error codes are right: the bytes become a JSON
//! value (syntax → 6), the spec's mandatory keys are checked (version → 1, name/type → 7),
//! then the typed struct is decoded with the failing field's path in the message (→ 6),
//! and finally value ranges are validated (→ 7).

use crate::env::Attachment;
use crate::error::Error;
use crate::result::Dns;
use crate::validate::is_valid_id;
use crate::version::Version;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// Parses JSON bytes into a value; invalid JSON, a too deep document, or a non-object
/// are decode errors (code 6).
pub fn parse_value(bytes: &[u8]) -> Result<Value, Error> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| Error::Decode {
        what: "network config".into(),
        msg: e.to_string(),
    })?;
    if !v.is_object() {
        return Err(Error::Decode {
            what: "network config".into(),
            msg: "expected a JSON object".into(),
        });
    }
    let mut v = v;
    for key in [VALID_ATTACHMENTS, ATTACHMENTS] {
        // libcni sends a runtime's empty (Go nil) list as `null`: no attachment is valid.
        if let Some(list) = v.get_mut(key).filter(|l| l.is_null()) {
            *list = Value::Array(Vec::new());
        }
    }
    drop_nulls(&mut v);
    Ok(v)
}

/// A number where `0` means "not set", as the Go zero value does in the reference plugins
/// (`"mtu": 0` is the kernel's default there).
pub fn zero_is_unset<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(Option::<u32>::deserialize(d)?.filter(|v| *v != 0))
}

const VALID_ATTACHMENTS: &str = "cni.dev/valid-attachments";
const ATTACHMENTS: &str = "cni.dev/attachments";

/// Removes every `null` object member. Runtimes and the reference plugins decode with Go's
/// encoding/json, which reads `null` as "keep the default" for any field (`"mtu": null`,
/// `"runtimeConfig": null`, `"hairpinMode": null`); without the member the typed decoding
/// here defaults alike. Depth is bounded by the parser's nesting limit.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Decodes `v` into `T`, naming the offending field on failure.
pub fn decode<T: DeserializeOwned>(v: &Value, what: &str) -> Result<T, Error> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        Error::Decode {
            what: format!("{what} field {path:?}"),
            msg: e.into_inner().to_string(),
        }
    })
}

/// The keys every CNI plugin config has.
#[derive(Debug, Clone)]
pub struct Common {
    pub version: Version,
    pub name: String,
    pub kind: String,
}

impl Common {
    /// The config's `cniVersion`, checked.
    pub fn version_of(v: &Value) -> Result<Version, Error> {
        match v.get("cniVersion") {
            None => Version::parse(""),
            Some(Value::String(s)) => Version::parse(s),
            Some(other) => Err(Error::Version(format!(
                "cniVersion must be a string, got {other}"
            ))),
        }
    }

    /// Checks `cniVersion`, `name` and `type` from a raw config value.
    pub fn from_value(v: &Value) -> Result<Common, Error> {
        let s = |k: &str| v.get(k).and_then(Value::as_str);
        let version = Common::version_of(v)?;
        let name = s("name").unwrap_or_default().to_string();
        if name.is_empty() {
            return Err(Error::config(
                "\"name\" is missing: every network needs a name",
            ));
        }
        if !is_valid_id(&name) {
            return Err(Error::config(format!(
                "\"name\" {name:?} is invalid: it must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ (it becomes a directory name)"
            )));
        }
        let kind = s("type").unwrap_or_default().to_string();
        if kind.is_empty() || kind.contains('/') {
            return Err(Error::config(format!(
                "\"type\" {kind:?} is invalid: it must name the plugin binary, e.g. \"vbridge\""
            )));
        }
        Ok(Common {
            version,
            name,
            kind,
        })
    }
}

/// `runtimeConfig`: capability arguments the runtime fills in. Unknown keys are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RuntimeConfig {
    pub ips: Vec<String>,
    #[serde(rename = "ipRanges")]
    pub ip_ranges: Vec<Vec<crate::ipamconf::RangeConf>>,
    pub mac: Option<String>,
}

/// `args.cni`: the conventions' per-attachment metadata. Unknown keys are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ArgsCni {
    pub ips: Vec<String>,
    pub mac: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Args {
    pub cni: ArgsCni,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TrunkEntry {
    pub id: Option<u32>,
    #[serde(rename = "minID")]
    pub min_id: Option<u32>,
    #[serde(rename = "maxID")]
    pub max_id: Option<u32>,
}

/// The whole config of a `vbridge` (or `vbridge-ipam`) invocation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NetConf {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub ipam: Option<Value>,
    pub dns: Option<Dns>,
    #[serde(rename = "runtimeConfig")]
    pub runtime_config: RuntimeConfig,
    pub args: Args,
    #[serde(rename = "prevResult")]
    pub prev_result: Option<Value>,
    /// The conflist's capabilities of this plugin, which libcni passes on. Kept as JSON:
    /// only `capability` reads it.
    pub capabilities: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    #[serde(rename = "cni.dev/attachments")]
    pub attachments: Option<Vec<Attachment>>,
    #[serde(rename = "logFile")]
    pub log_file: Option<String>,
    #[serde(rename = "logLevel")]
    pub log_level: Option<String>,

    // Reference `bridge` keys.
    pub bridge: Option<String>,
    #[serde(rename = "isGateway")]
    pub is_gateway: bool,
    #[serde(rename = "isDefaultGateway")]
    pub is_default_gateway: bool,
    #[serde(rename = "forceAddress")]
    pub force_address: bool,
    #[serde(rename = "ipMasq")]
    pub ip_masq: bool,
    /// The reference chooses iptables or nftables; vbridge always uses nftables.
    #[serde(rename = "ipMasqBackend")]
    pub ip_masq_backend: Option<String>,
    #[serde(deserialize_with = "zero_is_unset")]
    pub mtu: Option<u32>,
    #[serde(rename = "hairpinMode")]
    pub hairpin_mode: bool,
    #[serde(rename = "promiscMode")]
    pub promisc_mode: bool,
    pub vlan: Option<u32>,
    #[serde(rename = "vlanTrunk")]
    pub vlan_trunk: Option<Vec<TrunkEntry>>,
    #[serde(rename = "preserveDefaultVlan")]
    pub preserve_default_vlan: bool,
    pub enabledad: bool,
    #[serde(rename = "portIsolation")]
    pub port_isolation: bool,
    #[serde(rename = "macspoofchk")]
    pub mac_spoof_chk: bool,
    #[serde(rename = "disableContainerInterface")]
    pub disable_container_interface: bool,

    // vbridge's own keys.
    /// Drop traffic routed between this network and other vbridge networks.
    pub isolate: bool,
    /// Where vbridge keeps its per-network attachment bookkeeping.
    #[serde(rename = "stateDir")]
    pub state_dir: Option<String>,
    /// How long the firewall state of a network outlives its last attachment, so a
    /// network that is briefly empty (a pod restart) does not pay for `nft` twice.
    #[serde(rename = "firewallTeardownDelayMs")]
    pub firewall_teardown_delay_ms: Option<u64>,
    /// Rx and tx queues of each veth end; 0 leaves it to the kernel (one per CPU).
    #[serde(rename = "vethQueues")]
    pub veth_queues: Option<u32>,
}

pub const DEFAULT_BRIDGE: &str = "cni0";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/vbridge";
pub const DEFAULT_FIREWALL_TEARDOWN_DELAY_MS: u64 = 2000;
/// One queue per veth end: a container port gains nothing from more unless it runs XDP,
/// and the kernel's default (one per CPU) makes every ADD and DEL register and remove
/// two sysfs queue directories per CPU, under RTNL.
pub const DEFAULT_VETH_QUEUES: u32 = 1;
/// The kernel's limit on a link's queue count.
pub const MAX_VETH_QUEUES: u32 = 4096;

impl NetConf {
    /// Whether the conflist enables capability `name` (`"capabilities": {name: true}`).
    pub fn capability(&self, name: &str) -> bool {
        self.capabilities
            .as_ref()
            .and_then(|c| c.get(name))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// Parses stdin for the main plugin (values are checked by `validate_for_add`).
    pub fn parse(bytes: &[u8]) -> Result<(Common, NetConf, Value), Error> {
        let v = parse_value(bytes)?;
        let common = Common::from_value(&v)?;
        let conf: NetConf = decode(&v, "network config")?;
        Ok((common, conf, v))
    }

    pub fn bridge_name(&self) -> &str {
        self.bridge
            .as_deref()
            .filter(|b| !b.is_empty())
            .unwrap_or(DEFAULT_BRIDGE)
    }

    pub fn state_dir(&self) -> &str {
        self.state_dir
            .as_deref()
            .filter(|b| !b.is_empty())
            .unwrap_or(DEFAULT_STATE_DIR)
    }

    pub fn firewall_teardown_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.firewall_teardown_delay_ms
                .unwrap_or(DEFAULT_FIREWALL_TEARDOWN_DELAY_MS),
        )
    }

    /// Queues per veth end to ask for; `None`: the kernel's default.
    pub fn veth_queues(&self) -> Option<u32> {
        match self.veth_queues.unwrap_or(DEFAULT_VETH_QUEUES) {
            0 => None,
            n => Some(n),
        }
    }

    /// What only ADD (and STATUS) refuses: values that only matter for building the
    /// attachment, or that older versions accepted. DEL, GC and CHECK of a config an ADD
    /// refused (a runtime cleans up after a failed ADD) must still work.
    pub fn validate_for_add(&self) -> Result<(), Error> {
        self.validate_bridge_name()?;
        self.validate_values()?;
        if let Some(b) = self
            .ip_masq_backend
            .as_deref()
            .filter(|b| !["iptables", "nftables"].contains(b))
        {
            return Err(Error::config(format!(
                "\"ipMasqBackend\" {b:?} is invalid: use \"iptables\" or \"nftables\" (vbridge uses nftables either way)"
            )));
        }
        Ok(())
    }

    /// Gateway mode: `isDefaultGateway` implies `isGateway`, as in the reference.
    pub fn gateway_mode(&self) -> bool {
        self.is_gateway || self.is_default_gateway
    }

    /// Container MAC: `CNI_ARGS MAC=` < `args.cni.mac` < `runtimeConfig.mac` (later wins).
    /// An empty value is no value: it does not hide a lower-priority source.
    pub fn mac<'a>(&'a self, cni_args_mac: Option<&'a str>) -> Option<&'a str> {
        let set = |m: &&str| !m.is_empty();
        (self.runtime_config.mac.as_deref().filter(set))
            .or(self.args.cni.mac.as_deref().filter(set))
            .or(cni_args_mac.filter(set))
    }

    /// The container interface's MAC, if one is asked for (see `mac`), parsed and checked
    /// — before anything is allocated, naming the key it came from.
    pub fn container_mac(&self, cni_args_mac: Option<&str>) -> Result<Option<[u8; 6]>, Error> {
        let Some(s) = self.mac(cni_args_mac) else {
            return Ok(None);
        };
        let key = if self.runtime_config.mac.as_deref() == Some(s) {
            "runtimeConfig.mac"
        } else if self.args.cni.mac.as_deref() == Some(s) {
            "args.cni.mac"
        } else {
            "CNI_ARGS MAC"
        };
        let mac = crate::mac::parse(s).ok_or_else(|| {
            Error::config(format!(
                "{key} {s:?} is invalid: use the form 02:aa:bb:cc:dd:ee"
            ))
        })?;
        match crate::mac::unicast_problem(&mac) {
            Some(p) => Err(Error::config(format!("{key} {s:?} {p}"))),
            None => Ok(Some(mac)),
        }
    }

    /// The attachments a GC keeps. libcni sends both spellings (cni#1101), and neither
    /// when its caller gave no arguments (`cnitool gc`), which it means as "nothing is
    /// valid": it has just DELed every attachment it had cached.
    pub fn gc_keep(&self) -> Vec<Attachment> {
        self.gc_valid_attachments().unwrap_or_else(|| {
            log::warn!(
                "GC of network {:?} without \"cni.dev/valid-attachments\": no attachment is kept (libcni sends none for a GC without arguments)",
                self.name
            );
            Vec::new()
        })
    }

    /// GC's list of live attachments; libcni sends both spellings (cni#1101).
    pub fn gc_valid_attachments(&self) -> Option<Vec<Attachment>> {
        match (&self.valid_attachments, &self.attachments) {
            (None, None) => None,
            (a, b) => {
                let mut all: Vec<Attachment> =
                    a.iter().chain(b.iter()).flatten().cloned().collect();
                all.sort();
                all.dedup();
                Some(all)
            }
        }
    }

    /// All VIDs of `vlanTrunk`, validated (1–4094, min ≤ max) and sorted.
    pub fn trunk_vids(&self) -> Result<Vec<u16>, Error> {
        let mut out = Vec::new();
        for (i, t) in self.vlan_trunk.iter().flatten().enumerate() {
            let field = format!("vlanTrunk[{i}]");
            // As the reference: an entry adds its "id" and/or its minID-maxID range.
            let mut spans = Vec::with_capacity(2);
            match (t.min_id, t.max_id) {
                (Some(a), Some(b)) => spans.push((a, b)),
                (None, None) => {}
                _ => {
                    return Err(Error::config(format!(
                        "{field}: \"minID\" and \"maxID\" go together; give both or neither"
                    )))
                }
            }
            if let Some(id) = t.id {
                spans.push((id, id));
            }
            for (lo, hi) in spans {
                for (k, v) in [("id/minID", lo), ("id/maxID", hi)] {
                    if !(1..=4094).contains(&v) {
                        return Err(Error::config(format!("{field}: {k} {v} is outside 1-4094")));
                    }
                }
                if lo > hi {
                    return Err(Error::config(format!(
                        "{field}: minID {lo} is greater than maxID {hi}"
                    )));
                }
                // Bounded by 1..=4094 above, so the cast is exact.
                out.extend((lo..=hi).map(|v| v as u16));
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// A bridge name the kernel would refuse. Only ADD (and STATUS) refuse it: an ADD
    /// with it made nothing, and DEL, CHECK and GC only hash it into names or look it up.
    fn validate_bridge_name(&self) -> Result<(), Error> {
        if let Some(b) = &self.bridge {
            if let Some(p) = crate::validate::interface_name_problem(b).filter(|_| !b.is_empty()) {
                return Err(Error::config(format!("\"bridge\" {b:?} {p}")));
            }
        }
        Ok(())
    }

    fn validate_values(&self) -> Result<(), Error> {
        if let Some(v) = self.vlan {
            if v > 4094 {
                return Err(Error::config(format!("\"vlan\" {v} is outside 0-4094")));
            }
        }
        if let Some(m) = self.mtu {
            if !(68..=65535).contains(&m) {
                return Err(Error::config(format!("\"mtu\" {m} is outside 68-65535")));
            }
        }
        let trunk = self.trunk_vids()?;
        if let Some(v) = self.vlan.filter(|v| *v != 0) {
            if trunk.iter().any(|t| u32::from(*t) == v) {
                return Err(Error::config(format!(
                    "\"vlanTrunk\" contains {v}, which is already the access \"vlan\""
                )));
            }
        }
        if let Some(d) = self.firewall_teardown_delay_ms {
            if d > 3_600_000 {
                return Err(Error::config(format!(
                    "\"firewallTeardownDelayMs\" {d} is more than an hour"
                )));
            }
        }
        if let Some(q) = self.veth_queues.filter(|q| *q > MAX_VETH_QUEUES) {
            return Err(Error::config(format!(
                "\"vethQueues\" {q} is outside 0-{MAX_VETH_QUEUES}"
            )));
        }
        if self.hairpin_mode && self.promisc_mode {
            return Err(Error::config(
                "\"hairpinMode\" and \"promiscMode\" cannot both be true",
            ));
        }
        if let Some(l) = &self.log_level {
            if crate::log::parse_level(l).is_none() {
                return Err(Error::config(format!(
                    "\"logLevel\" {l:?} is invalid: use error, warn, info, debug or trace"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn parse(s: &str) -> Result<NetConf, Error> {
        NetConf::parse(s.as_bytes()).map(|(_, c, _)| c)
    }

    const OK: &str = r#"{"cniVersion":"1.0.0","name":"net1","type":"vbridge","bridge":"br0",
        "isGateway":true,"ipMasq":true,"mtu":1400,"ipam":{"type":"vbridge-ipam","subnet":"10.1.0.0/24"}}"#;

    #[test]
    fn parses_reference_keys() {
        let c = parse(OK).expect("ok");
        assert_eq!(c.bridge_name(), "br0");
        assert!(c.gateway_mode() && c.ip_masq);
        assert_eq!(c.mtu, Some(1400));
    }

    #[test]
    fn defaults() {
        let c = parse(r#"{"cniVersion":"1.1.0","name":"n","type":"vbridge"}"#).expect("ok");
        assert_eq!(c.bridge_name(), "cni0");
        assert_eq!(c.state_dir(), DEFAULT_STATE_DIR);
    }

    fn code(s: &str) -> ErrorCode {
        parse(s)
            .and_then(|c| c.validate_for_add())
            .expect_err(s)
            .code()
    }

    #[test]
    fn error_codes() {
        assert_eq!(code("{not json"), ErrorCode::Decode);
        assert_eq!(code("[1,2]"), ErrorCode::Decode);
        assert_eq!(
            code(r#"{"name":"n","type":"vbridge"}"#),
            ErrorCode::IncompatibleVersion
        );
        assert_eq!(
            code(r#"{"cniVersion":"0.2.0","name":"n","type":"vbridge"}"#),
            ErrorCode::IncompatibleVersion
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","type":"vbridge"}"#),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"../../etc","type":"vbridge"}"#),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n"}"#),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","mtu":10}"#),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","vlan":5000}"#),
            ErrorCode::InvalidConfig
        );
    }

    #[test]
    fn veth_queues_default_to_one_and_zero_means_the_kernels() {
        let q = |extra: &str| {
            parse(&format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"vbridge"{extra}}}"#
            ))
            .map(|c| c.veth_queues())
        };
        assert_eq!(q("").expect("default"), Some(1));
        assert_eq!(q(r#","vethQueues":0"#).expect("zero"), None);
        assert_eq!(q(r#","vethQueues":4096"#).expect("max"), Some(4096));
        let e = q(r#","vethQueues":4097"#)
            .and_then(|_| {
                parse(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","vethQueues":4097}"#)
            })
            .and_then(|c| c.validate_for_add())
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfig);
        assert!(e.to_string().contains("vethQueues"), "{e}");
    }

    #[test]
    fn nulls_read_as_defaults_and_null_gc_lists_as_empty() {
        let c = parse(
            r#"{"cniVersion":"1.1.0","name":"n","type":"vbridge","mtu":null,"hairpinMode":null,
            "runtimeConfig":null,"args":null,"dns":{"nameservers":null},"vlanTrunk":null,
            "cni.dev/valid-attachments":null,"cni.dev/attachments":null}"#,
        )
        .expect("nulls are defaults");
        assert_eq!(c.mtu, None);
        assert!(!c.hairpin_mode);
        assert_eq!(
            c.gc_valid_attachments(),
            Some(vec![]),
            "null: none is valid"
        );
        let c = parse(r#"{"cniVersion":"1.1.0","name":"n","type":"vbridge"}"#).expect("ok");
        assert_eq!(c.gc_valid_attachments(), None, "missing: no list at all");
    }

    #[test]
    fn mtu_zero_is_unset_and_value_checks_are_for_add_only() {
        let c = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","mtu":0}"#).expect("ok");
        assert_eq!(c.mtu, None);
        c.validate_for_add().expect("0 is the kernel default");
        // DEL, CHECK and GC of a config ADD refused still parse it.
        for extra in [
            r#""mtu":20"#,
            r#""hairpinMode":true,"promiscMode":true"#,
            r#""logLevel":"loud""#,
            r#""vlanTrunk":[{"id":5000}]"#,
            r#""vlan":5000"#,
        ] {
            let doc = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"vbridge",{extra}}}"#);
            let c = parse(&doc).expect(&doc);
            assert_eq!(
                c.validate_for_add().expect_err(&doc).code(),
                ErrorCode::InvalidConfig
            );
        }
    }

    #[test]
    fn empty_mac_does_not_hide_a_lower_source() {
        let c = parse(
            r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","runtimeConfig":{"mac":""},
            "args":{"cni":{"mac":"02:00:00:00:00:02"}}}"#,
        )
        .expect("ok");
        assert_eq!(c.mac(Some("02:00:00:00:00:03")), Some("02:00:00:00:00:02"));
        assert_eq!(c.mac(None), Some("02:00:00:00:00:02"));
        let c = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge"}"#).expect("ok");
        assert_eq!(c.mac(Some("")), None);
    }

    #[test]
    fn trunk_entries_read_as_the_reference_reads_them() {
        let vids = |t: &str| {
            parse(&format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"vbridge","vlanTrunk":{t}}}"#
            ))
            .and_then(|c| c.trunk_vids())
        };
        assert_eq!(
            vids(r#"[{"id":5,"minID":10,"maxID":12},{}]"#).expect("ok"),
            [5, 10, 11, 12]
        );
        assert!(vids(r#"[{"minID":10}]"#).is_err());
        assert!(vids(r#"[{"id":5,"maxID":12}]"#).is_err());
    }

    #[test]
    fn ip_masq_backend_takes_the_references_values() {
        let b = |v: &str| {
            parse(&format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"vbridge","ipMasqBackend":"{v}"}}"#
            ))
        };
        assert!(b("iptables").and_then(|c| c.validate_for_add()).is_ok());
        assert!(b("nftables").and_then(|c| c.validate_for_add()).is_ok());
        let c = b("ebtables").expect("parses: DEL of such a config still works");
        let e = c.validate_for_add().unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidConfig);
        assert!(e.to_string().contains("ipMasqBackend"), "{e}");
    }

    #[test]
    fn type_errors_name_the_field() {
        let e =
            parse(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","mtu":"big"}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::Decode);
        assert!(e.to_string().contains("mtu"), "{e}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let doc = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"vbridge","x":{deep}}}"#);
        assert_eq!(parse(&doc).unwrap_err().code(), ErrorCode::Decode);
    }

    #[test]
    fn big_document() {
        let pad = "x".repeat(1 << 20);
        let doc = format!(r#"{{"cniVersion":"1.0.0","name":"n","type":"vbridge","pad":"{pad}"}}"#);
        assert!(parse(&doc).is_ok());
    }

    #[test]
    fn trunks() {
        let c = parse(
            r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge","vlan":10,
            "vlanTrunk":[{"id":20},{"minID":30,"maxID":32}]}"#,
        )
        .expect("ok");
        assert_eq!(c.trunk_vids().expect("vids"), vec![20, 30, 31, 32]);
        for bad in [
            r#"[{"id":0}]"#,
            r#"[{"id":4095}]"#,
            r#"[{"minID":5,"maxID":3}]"#,
            r#"[{"minID":5}]"#,
            r#"[{"id":10}]"#,
        ] {
            let s = format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"vbridge","vlan":10,"vlanTrunk":{bad}}}"#
            );
            assert_eq!(code(&s), ErrorCode::InvalidConfig, "{bad}");
        }
    }

    #[test]
    fn mac_precedence() {
        let c = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge",
            "args":{"cni":{"mac":"02:00:00:00:00:02"}},"runtimeConfig":{"mac":"02:00:00:00:00:03","portMappings":[]}}"#)
        .expect("ok");
        assert_eq!(c.mac(Some("02:00:00:00:00:01")), Some("02:00:00:00:00:03"));
    }

    #[test]
    fn container_mac_names_its_key() {
        let c = parse(
            r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge",
            "args":{"cni":{"mac":"02-00-00-00-00-02"}}}"#,
        )
        .expect("ok");
        assert_eq!(
            c.container_mac(Some("zz")).expect("args.cni wins"),
            Some([2, 0, 0, 0, 0, 2])
        );
        let c = parse(
            r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge",
            "runtimeConfig":{"mac":"03:00:00:00:00:01"}}"#,
        )
        .expect("ok");
        let e = c.container_mac(None).expect_err("multicast").to_string();
        assert!(
            e.contains("runtimeConfig.mac") && e.contains("multicast"),
            "{e}"
        );
        let c = parse(r#"{"cniVersion":"1.0.0","name":"n","type":"vbridge"}"#).expect("ok");
        let e = c
            .container_mac(Some("02:00:00:00:00"))
            .expect_err("short")
            .to_string();
        assert!(e.contains("CNI_ARGS MAC"), "{e}");
        assert_eq!(c.container_mac(None).expect("none"), None);
    }

    #[test]
    fn gc_lists_merge() {
        let c = parse(r#"{"cniVersion":"1.1.0","name":"n","type":"vbridge",
            "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
            "cni.dev/attachments":[{"containerID":"a","ifname":"eth0"},{"containerID":"b","ifname":"eth0"}]}"#)
        .expect("ok");
        assert_eq!(c.gc_valid_attachments().map(|v| v.len()), Some(2));
    }
}
