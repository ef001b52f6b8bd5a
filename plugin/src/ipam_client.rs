//! IPAM: `vbridge-ipam` runs in-process (the same library as the standalone binary, no
//! exec); any other type is exec'd from `CNI_PATH` the way libcni's `invoke` does: same
//! stdin, same environment with `CNI_COMMAND` overridden, the delegate's error code kept.

use crate::error::{Error, Result};
use conf::ipamconf::IpamConfig;
use conf::netconf::NetConf;
use conf::skel::Request;
use conf::{Attachment, CniError, CniResult};
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

pub const IN_PROCESS_TYPE: &str = "vbridge-ipam";

/// `ipam.type`; empty for a layer-2 only network.
pub fn ipam_type(conf: &NetConf) -> &str {
    conf.ipam
        .as_ref()
        .and_then(|v| v.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("")
}

pub enum IpamClient<'a> {
    /// `ipam` absent or without a type: a layer-2 only attachment.
    None,
    InProcess(Box<IpamConfig>),
    Delegate {
        plugin: String,
        req: &'a Request,
    },
}

impl<'a> IpamClient<'a> {
    pub fn new(conf: &NetConf, req: &'a Request) -> Result<IpamClient<'a>> {
        Ok(match ipam_type(conf) {
            "" => IpamClient::None,
            IN_PROCESS_TYPE => {
                IpamClient::InProcess(Box::new(IpamConfig::from_netconf(conf, &req.args)?))
            }
            other if other.contains('/') => {
                return Err(conf::Error::config(format!(
                    "ipam.type {other:?} must be a plugin name, not a path"
                ))
                .into())
            }
            other => IpamClient::Delegate {
                plugin: other.to_string(),
                req,
            },
        })
    }

    /// What the in-process IPAM would refuse on ADD, checked before anything else (and
    /// before anything changes), so a bad config is reported as such.
    pub fn validate_for_add(&self) -> Result<()> {
        match self {
            IpamClient::InProcess(cfg) => Ok(cfg.validate_for_add()?),
            _ => Ok(()),
        }
    }

    /// An exec'd plugin, which may need the container interface (dhcp does).
    pub fn is_delegate(&self) -> bool {
        matches!(self, IpamClient::Delegate { .. })
    }

    pub fn add(&self, att: &Attachment) -> Result<CniResult> {
        match self {
            IpamClient::None => Ok(CniResult::default()),
            IpamClient::InProcess(cfg) => Ok(ipam::add(cfg, att)?),
            IpamClient::Delegate { plugin, req } => {
                let out = exec(plugin, req, "ADD")?;
                let parsed = serde_json::from_slice(&out)
                    .map_err(|e| Error::IpamExec {
                        plugin: plugin.clone(),
                        msg: format!("its ADD result is not JSON: {e}"),
                    })
                    .and_then(|v: serde_json::Value| Ok(CniResult::from_value(&v)?))
                    .and_then(|r| {
                        // As the reference: an IPAM that hands out nothing is broken, and a
                        // container without an address is no success.
                        if r.ips.is_empty() {
                            return Err(Error::IpamExec {
                                plugin: plugin.clone(),
                                msg: "its ADD result has no IP addresses (\"ips\" is empty)"
                                    .to_string(),
                            });
                        }
                        Ok(r)
                    });
                if parsed.is_err() {
                    // It succeeded, so it holds an address we cannot use: give it back.
                    if let Err(e) = exec(plugin, req, "DEL") {
                        log::error!("releasing the unusable {plugin} ADD: {e}");
                    }
                }
                parsed
            }
        }
    }

    pub fn del(&self, att: &Attachment) -> Result<()> {
        match self {
            IpamClient::None => Ok(()),
            IpamClient::InProcess(cfg) => Ok(ipam::del(cfg, att)?),
            IpamClient::Delegate { plugin, req } => exec(plugin, req, "DEL").map(|_| ()),
        }
    }

    pub fn check(&self, att: &Attachment, expected: &[IpAddr]) -> Result<()> {
        match self {
            IpamClient::None => Ok(()),
            IpamClient::InProcess(cfg) => Ok(ipam::check(cfg, att, expected)?),
            IpamClient::Delegate { plugin, req } => exec(plugin, req, "CHECK").map(|_| ()),
        }
    }

    pub fn gc(&self, valid: &[Attachment]) -> Result<()> {
        match self {
            IpamClient::None => Ok(()),
            IpamClient::InProcess(cfg) => ipam::gc(cfg, valid).map(|_| ()).map_err(Into::into),
            IpamClient::Delegate { plugin, req } => exec(plugin, req, "GC").map(|_| ()),
        }
    }

    pub fn status(&self) -> Result<()> {
        match self {
            IpamClient::None => Ok(()),
            IpamClient::InProcess(cfg) => Ok(ipam::status(cfg)?),
            // Not found or not runnable: an ADD could not succeed, which STATUS says with
            // the spec's code 50, not our 110. The delegate's own errors pass through.
            IpamClient::Delegate { plugin, req } => match exec(plugin, req, "STATUS") {
                Ok(_) => Ok(()),
                Err(e @ Error::IpamExec { .. }) => Err(Error::NotAvailable(e.to_string())),
                Err(e) => Err(e),
            },
        }
    }
}

fn find(plugin: &str, paths: &[PathBuf]) -> Result<PathBuf> {
    paths
        .iter()
        .map(|d| d.join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::IpamExec {
            plugin: plugin.to_string(),
            msg: format!(
            "not found in CNI_PATH ({}); install it there or use \"type\": \"{IN_PROCESS_TYPE}\"",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
        ),
        })
}

/// Runs the delegate; returns its stdout on success, its own CNI error otherwise.
fn exec(plugin: &str, req: &Request, command: &str) -> Result<Vec<u8>> {
    let path = find(plugin, &req.args.path)?;
    let exec_err = |msg: String| Error::IpamExec {
        plugin: plugin.to_string(),
        msg,
    };
    let mut attempt = 0;
    let mut child = loop {
        match Command::new(&path)
            .env("CNI_COMMAND", command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(c) => break c,
            // The binary may be in the middle of being replaced (libcni retries too).
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(exec_err(format!("failed to start {}: {e}", path.display()))),
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        match stdin.write_all(&req.args.stdin) {
            // A plugin may exit without reading its config: judged by its exit status, as
            // Go's os/exec (so libcni) ignores the broken pipe.
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(exec_err(format!("failed to write its stdin: {e}")));
            }
            _ => {}
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| exec_err(format!("failed to wait for it: {e}")))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(
        match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            Ok(v) if v.get("code").and_then(|c| c.as_u64()).is_some() => {
                Error::Delegate(CniError::with_raw_code(
                    v["code"]
                        .as_u64()
                        .and_then(|c| u32::try_from(c).ok())
                        .unwrap_or(999),
                    format!(
                        "{plugin}: {}",
                        v.get("msg").and_then(|m| m.as_str()).unwrap_or("")
                    ),
                    v.get("details")
                        .and_then(|d| d.as_str())
                        .map(str::to_string),
                ))
            }
            _ => exec_err(format!(
                "{command} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim()
            )),
        },
    )
}
