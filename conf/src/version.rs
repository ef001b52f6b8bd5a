//! Spec versions vbridge speaks and the VERSION reply.

use crate::error::Error;

/// The spec version results are built in before conversion.
pub const CURRENT: &str = "1.1.0";

/// Every version a config may declare; results are printed in that version.
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl Version {
    pub fn parse(s: &str) -> Result<Version, Error> {
        match s {
            "0.3.0" => Ok(Version::V0_3_0),
            "0.3.1" => Ok(Version::V0_3_1),
            "0.4.0" => Ok(Version::V0_4_0),
            "1.0.0" => Ok(Version::V1_0_0),
            "1.1.0" => Ok(Version::V1_1_0),
            "" => Err(Error::Version(
                "cniVersion is missing; set \"cniVersion\" to one of 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0".into(),
            )),
            other => Err(Error::Version(format!(
                "cniVersion {other:?} is not supported; use one of {}",
                SUPPORTED.join(", ")
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// Results before 1.0.0 carry `ips[].version`.
    pub fn has_ip_version_field(self) -> bool {
        self < Version::V1_0_0
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The VERSION verb's reply.
pub fn version_reply(requested: Option<&str>) -> String {
    let v = requested
        .filter(|r| SUPPORTED.contains(r))
        .unwrap_or(CURRENT);
    serde_json::json!({ "cniVersion": v, "supportedVersions": SUPPORTED }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_all_supported() {
        for s in SUPPORTED {
            assert_eq!(Version::parse(s).expect("supported").as_str(), s);
        }
    }

    #[test]
    fn order() {
        assert!(Version::V0_3_1 < Version::V0_4_0);
        assert!(Version::V1_0_0 < Version::V1_1_0);
        assert!(Version::V0_4_0.has_ip_version_field());
        assert!(!Version::V1_0_0.has_ip_version_field());
    }

    #[test]
    fn rejects_unknown() {
        assert!(Version::parse("0.2.0").is_err());
        assert!(Version::parse("9.9.9").is_err());
        assert!(Version::parse("").is_err());
    }

    #[test]
    fn version_reply_lists_all() {
        let v: serde_json::Value =
            serde_json::from_str(&version_reply(Some("0.4.0"))).expect("json");
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"].as_array().map(|a| a.len()), Some(5));
    }
}
