//! The `CNI_*` environment, parsed and validated the way the reference `skel` does.

use crate::error::Error;
use crate::validate::{interface_name_problem, is_valid_id};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Result<Command, Error> {
        match s {
            "ADD" => Ok(Command::Add),
            "DEL" => Ok(Command::Del),
            "CHECK" => Ok(Command::Check),
            "GC" => Ok(Command::Gc),
            "STATUS" => Ok(Command::Status),
            "VERSION" => Ok(Command::Version),
            other => Err(Error::Env(format!(
                "unknown CNI_COMMAND: {other:?} (expected ADD, DEL, CHECK, GC, STATUS or VERSION)"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }
}

/// One attachment of a container to a network: the key of every piece of state we keep.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl Attachment {
    pub fn new(container_id: impl Into<String>, ifname: impl Into<String>) -> Self {
        Attachment {
            container_id: container_id.into(),
            ifname: ifname.into(),
        }
    }
}

/// `CNI_ARGS`: `K=V;K=V`. Only the keys vbridge uses are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub ip: Vec<String>,
    pub mac: Option<String>,
    pub pairs: Vec<(String, String)>,
}

/// Keys we accept in CNI_ARGS even without `IgnoreUnknown` (what Kubernetes runtimes send).
const KNOWN_ARGS: [&str; 7] = [
    "IgnoreUnknown",
    "IP",
    "MAC",
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

impl CniArgs {
    pub fn parse(s: &str) -> Result<CniArgs, Error> {
        let mut out = CniArgs::default();
        let mut unknown = Vec::new();
        let mut ignore_unknown = false;
        for part in s.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                Error::Env(format!(
                    "CNI_ARGS: invalid pair {part:?}, expected KEY=VALUE"
                ))
            })?;
            match k {
                "IgnoreUnknown" => {
                    ignore_unknown = matches!(v.to_ascii_lowercase().as_str(), "1" | "true")
                }
                "IP" => out
                    .ip
                    .extend(v.split(',').filter(|s| !s.is_empty()).map(str::to_string)),
                "MAC" => out.mac = Some(v.to_string()),
                _ if KNOWN_ARGS.contains(&k) => {}
                _ => unknown.push(k.to_string()),
            }
            out.pairs.push((k.to_string(), v.to_string()));
        }
        if !unknown.is_empty() && !ignore_unknown {
            return Err(Error::Env(format!(
                "CNI_ARGS: unknown key(s) {} (add IgnoreUnknown=1 to ignore them)",
                unknown.join(", ")
            )));
        }
        Ok(out)
    }
}

/// Everything a verb gets from the runtime.
#[derive(Debug, Clone, Default)]
pub struct CmdArgs {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: CniArgs,
    pub path: Vec<PathBuf>,
    pub stdin: Vec<u8>,
}

impl CmdArgs {
    pub fn attachment(&self) -> Attachment {
        Attachment::new(&self.container_id, &self.ifname)
    }

    /// Reads and validates the variables `cmd` needs, as skel does: missing ones are
    /// reported together (code 4), a bad container id or ifname names the variable.
    /// The variables `cmd` needs, checked only for presence — what the reference skel
    /// checks before it reads stdin.
    pub fn present(
        cmd: Command,
        getenv: &dyn Fn(&str) -> Option<String>,
        stdin: Vec<u8>,
    ) -> Result<CmdArgs, Error> {
        use Command::*;
        let get = |k: &str| getenv(k).unwrap_or_default();
        let needs_container = matches!(cmd, Add | Del | Check);
        let needs_netns = matches!(cmd, Add | Check);
        let needs_path = matches!(cmd, Add | Del | Check | Gc);

        let mut missing = Vec::new();
        let a = CmdArgs {
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            args: CniArgs::default(),
            path: std::env::split_paths(&get("CNI_PATH"))
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            stdin,
        };
        if needs_container && a.container_id.is_empty() {
            missing.push("CNI_CONTAINERID");
        }
        if needs_netns && a.netns.is_empty() {
            missing.push("CNI_NETNS");
        }
        if needs_container && a.ifname.is_empty() {
            missing.push("CNI_IFNAME");
        }
        if needs_path && getenv("CNI_PATH").is_none() {
            missing.push("CNI_PATH");
        }
        if !missing.is_empty() {
            return Err(Error::Env(format!(
                "required env variables [{}] missing",
                missing.join(",")
            )));
        }
        Ok(a)
    }

    /// The values: container id and interface name (which the reference skel checks once
    /// the config's version is known), and `CNI_ARGS`.
    pub fn validate(
        &mut self,
        cmd: Command,
        getenv: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), Error> {
        if matches!(cmd, Command::Add | Command::Del | Command::Check) {
            if !is_valid_id(&self.container_id) {
                return Err(Error::Env(format!(
                    "CNI_CONTAINERID {:?} is invalid: it must match ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
                    self.container_id
                )));
            }
            if let Some(p) = interface_name_problem(&self.ifname) {
                return Err(Error::Env(format!("CNI_IFNAME {:?} {p}", self.ifname)));
            }
        }
        self.args = CniArgs::parse(&getenv("CNI_ARGS").unwrap_or_default())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both halves, as `skel` runs them (with stdin read in between).
    fn from_env(
        cmd: Command,
        getenv: &dyn Fn(&str) -> Option<String>,
        stdin: Vec<u8>,
    ) -> Result<CmdArgs, Error> {
        let mut a = CmdArgs::present(cmd, getenv, stdin)?;
        a.validate(cmd, getenv)?;
        Ok(a)
    }
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| m.get(k).cloned()
    }

    const FULL: [(&str, &str); 4] = [
        ("CNI_CONTAINERID", "ctr1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ];

    #[test]
    fn add_full() {
        let a = from_env(Command::Add, &env(&FULL), vec![]).expect("ok");
        assert_eq!(a.container_id, "ctr1");
        assert_eq!(a.path.len(), 2);
    }

    #[test]
    fn missing_vars_listed() {
        let e = from_env(Command::Add, &env(&[("CNI_PATH", "/x")]), vec![]).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("CNI_CONTAINERID") && m.contains("CNI_NETNS") && m.contains("CNI_IFNAME"),
            "{m}"
        );
        assert_eq!(e.code(), crate::ErrorCode::InvalidEnv);
    }

    #[test]
    fn del_without_netns_is_fine() {
        let e = env(&[
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", ""),
        ]);
        assert!(from_env(Command::Del, &e, vec![]).is_ok());
    }

    #[test]
    fn bad_ids() {
        let mut v = FULL.to_vec();
        v[0] = ("CNI_CONTAINERID", "../x");
        assert!(from_env(Command::Add, &env(&v), vec![]).is_err());
        let mut v = FULL.to_vec();
        v[2] = ("CNI_IFNAME", "a-very-long-interface");
        let e = from_env(Command::Add, &env(&v), vec![]).unwrap_err();
        assert!(e.to_string().contains("CNI_IFNAME"));
    }

    #[test]
    fn cni_args() {
        let a = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=x;FOO=bar;IP=10.0.0.5").expect("ok");
        assert_eq!(a.ip, vec!["10.0.0.5"]);
        assert!(CniArgs::parse("FOO=bar").is_err());
        assert!(CniArgs::parse("K8S_POD_NAME=x;MAC=aa:bb:cc:dd:ee:ff")
            .expect("ok")
            .mac
            .is_some());
        assert!(CniArgs::parse("garbage").is_err());
        assert_eq!(CniArgs::parse("").expect("ok"), CniArgs::default());
    }

    #[test]
    fn commands() {
        assert_eq!(Command::parse("GC").expect("gc"), Command::Gc);
        assert_eq!(
            Command::parse("BOGUS").unwrap_err().code(),
            crate::ErrorCode::InvalidEnv
        );
    }
}
