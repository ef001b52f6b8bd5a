//! The CNI entry point: reads env and stdin, gates verbs by version, dispatches to the
//! plugin, and prints exactly one JSON document (result or error) on stdout.
//!
//! This is the only place that prints protocol output or chooses the exit code.

use crate::env::{CmdArgs, Command};
use crate::error::{CniError, ErrorCode};
use crate::netconf::{parse_value, Common};
use crate::version::{version_reply, Version, SUPPORTED};
use serde_json::Value;
use std::io::{IsTerminal, Read, Write};

/// One parsed invocation.
pub struct Request {
    pub command: Command,
    pub args: CmdArgs,
    pub common: Common,
    /// The whole config as JSON, for plugins that re-parse or delegate it.
    pub raw: Value,
}

/// A CNI plugin. ADD returns the result JSON to print; the others print nothing.
pub trait Plugin {
    fn about(&self) -> String;
    fn add(&self, req: &Request) -> Result<String, CniError>;
    fn del(&self, req: &Request) -> Result<(), CniError>;
    fn check(&self, req: &Request) -> Result<(), CniError>;
    fn gc(&self, req: &Request) -> Result<(), CniError>;
    fn status(&self, req: &Request) -> Result<(), CniError>;
}

/// The process's I/O, injectable for tests.
pub struct Io<'a> {
    pub getenv: &'a dyn Fn(&str) -> Option<String>,
    pub stdin: &'a mut dyn Read,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// Runs the plugin against the real process environment; returns the exit code.
pub fn run(plugin: &dyn Plugin, log_prefix: &'static str) -> i32 {
    install_panic_hook();
    let getenv = |k: &str| std::env::var(k).ok();
    let (mut stdin, mut stdout, mut stderr) =
        (std::io::stdin(), std::io::stdout(), std::io::stderr());
    // VERSION typed at a shell must not wait for a config nobody sends (the reference
    // never reads stdin for it); runtimes pipe one and close it.
    let mut nothing = std::io::empty();
    let stdin: &mut dyn Read =
        if stdin.is_terminal() && getenv("CNI_COMMAND").as_deref() == Some("VERSION") {
            &mut nothing
        } else {
            &mut stdin
        };
    let code = run_with(
        plugin,
        log_prefix,
        Io {
            getenv: &getenv,
            stdin,
            stdout: &mut stdout,
            stderr: &mut stderr,
        },
    );
    // The runtime reads the result from stdout: if it cannot get it, the call failed.
    match stdout.flush() {
        Ok(()) => code,
        Err(_) => 1,
    }
}

/// A panic is a bug, but the runtime still deserves a CNI error instead of garbage.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let e = CniError::new(ErrorCode::Internal, format!("internal error: {info}"));
        // Best effort from inside a panic: nothing else can be reported.
        writeln!(std::io::stdout(), "{}", e.to_json()).ok();
        std::io::stdout().flush().ok();
    }));
}

pub fn run_with(plugin: &dyn Plugin, log_prefix: &'static str, io: Io<'_>) -> i32 {
    // Empty is unset, as for Go's os.Getenv in the reference skel.
    let cmd = match (io.getenv)("CNI_COMMAND").filter(|c| !c.is_empty()) {
        None => {
            let shown = writeln!(
                io.stderr,
                "{}\nCNI protocol versions supported: {}",
                plugin.about(),
                SUPPORTED.join(", ")
            );
            return i32::from(shown.is_err());
        }
        Some(c) => c,
    };
    let mut version = None;
    let outcome = dispatch(plugin, log_prefix, &cmd, &io.getenv, io.stdin, &mut version);
    match outcome {
        Ok(out) => {
            if !out.is_empty() && writeln!(io.stdout, "{out}").is_err() {
                return 1;
            }
            0
        }
        Err(mut e) => {
            if let Some(v) = version {
                e.cni_version = v.as_str().to_string();
            }
            log::error!("{} failed: {e}", cmd);
            // Exit 1 either way; a failed write leaves only the exit code to tell.
            writeln!(io.stdout, "{}", e.to_json()).ok();
            1
        }
    }
}

fn dispatch(
    plugin: &dyn Plugin,
    log_prefix: &'static str,
    cmd: &str,
    getenv: &dyn Fn(&str) -> Option<String>,
    stdin: &mut dyn Read,
    version: &mut Option<Version>,
) -> Result<String, CniError> {
    let command = Command::parse(cmd)?;
    if command == Command::Version {
        // The reference ignores stdin here; echo a supported requested version if any.
        let mut buf = Vec::new();
        // stdin is optional for VERSION; an unreadable one means "no preference".
        stdin.read_to_end(&mut buf).ok();
        let req: Option<String> = serde_json::from_slice::<Value>(&buf).ok().and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        return Ok(version_reply(req.as_deref()));
    }
    // The environment first, as the reference skel does: a call missing its CNI_*
    // variables is told so (4) whatever stdin holds.
    let mut args = CmdArgs::present(command, getenv, Vec::new())?;
    // Room for any usual config (a prevResult included) up front: std's read_to_end
    // otherwise probes an empty buffer with a few small reads first.
    let mut buf = Vec::with_capacity(16 * 1024);
    stdin.read_to_end(&mut buf).map_err(|e| {
        CniError::new(
            ErrorCode::Io,
            format!("failed to read the network config from stdin: {e}"),
        )
    })?;
    let raw = parse_value(&buf)?;
    let s = |k: &str| raw.get(k).and_then(Value::as_str);
    crate::log::init(log_prefix, s("logLevel"), s("logFile"));
    // Known before name and type are checked, so their errors carry it too.
    *version = Some(Common::version_of(&raw)?);
    let common = Common::from_value(&raw)?;
    gate(command, common.version)?;
    args.validate(command, getenv)?;
    args.stdin = buf;
    log::debug!(
        "{cmd} container={} ifname={} netns={}",
        args.container_id,
        args.ifname,
        args.netns
    );
    let req = Request {
        command,
        args,
        common,
        raw,
    };
    match command {
        Command::Add => plugin.add(&req),
        Command::Del => plugin.del(&req).map(|_| String::new()),
        Command::Check => plugin.check(&req).map(|_| String::new()),
        Command::Gc => plugin.gc(&req).map(|_| String::new()),
        Command::Status => plugin.status(&req).map(|_| String::new()),
        Command::Version => Ok(String::new()),
    }
}

/// CHECK came with 0.4.0, GC and STATUS with 1.1.0.
fn gate(command: Command, v: Version) -> Result<(), CniError> {
    let min = match command {
        Command::Check => Version::V0_4_0,
        Command::Gc | Command::Status => Version::V1_1_0,
        _ => return Ok(()),
    };
    if v < min {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!(
                "config version {v} does not allow {}; it needs cniVersion {min} or later",
                command.as_str()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Fake;
    impl Plugin for Fake {
        fn about(&self) -> String {
            "fake plugin".into()
        }
        fn add(&self, _: &Request) -> Result<String, CniError> {
            Ok("{\"ok\":true}".into())
        }
        fn del(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
        fn check(&self, _: &Request) -> Result<(), CniError> {
            Err(CniError::new(ErrorCode::CheckFailed, "nope"))
        }
        fn gc(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
        fn status(&self, _: &Request) -> Result<(), CniError> {
            Ok(())
        }
    }

    fn go(env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
        let m: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let getenv = move |k: &str| m.get(k).cloned();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut input = stdin.as_bytes();
        let code = run_with(
            &Fake,
            "test",
            Io {
                getenv: &getenv,
                stdin: &mut input,
                stdout: &mut out,
                stderr: &mut err,
            },
        );
        (
            code,
            String::from_utf8_lossy(&out).into(),
            String::from_utf8_lossy(&err).into(),
        )
    }

    const ADD: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin"),
    ];

    fn err_code(out: &str) -> u64 {
        serde_json::from_str::<Value>(out).expect("json")["code"]
            .as_u64()
            .expect("code")
    }

    #[test]
    fn about_without_command() {
        for env in [&[][..], &[("CNI_COMMAND", "")][..]] {
            let (code, out, err) = go(env, "");
            assert_eq!(code, 0);
            assert!(out.is_empty());
            assert!(err.contains("fake plugin") && err.contains("1.1.0"));
        }
    }

    #[test]
    fn version_verb() {
        let (code, out, _) = go(&[("CNI_COMMAND", "VERSION")], "garbage");
        assert_eq!(code, 0);
        assert!(out.contains("supportedVersions"));
    }

    #[test]
    fn add_ok_and_errors() {
        let conf = r#"{"cniVersion":"0.4.0","name":"n","type":"fake"}"#;
        assert_eq!(go(&ADD, conf).0, 0);
        let (code, out, _) = go(&ADD, "{bad");
        assert_eq!((code, err_code(&out)), (1, 6));
        let mut env = ADD.to_vec();
        env[0] = ("CNI_COMMAND", "BOGUS");
        assert_eq!(err_code(&go(&env, conf).1), 4);
        let (_, out, _) = go(&ADD[..1], conf);
        assert_eq!(err_code(&out), 4);
    }

    #[test]
    fn error_uses_config_version() {
        let mut env = ADD.to_vec();
        env[0] = ("CNI_COMMAND", "CHECK");
        let (_, out, _) = go(&env, r#"{"cniVersion":"0.4.0","name":"n","type":"fake"}"#);
        let v: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["code"], 111);
    }

    #[test]
    fn missing_env_is_reported_before_stdin() {
        let add = [("CNI_COMMAND", "ADD")];
        for stdin in [
            "",
            "{bad",
            r#"{"cniVersion":"0.2.0","name":"n","type":"f"}"#,
        ] {
            let (code, out, _) = go(&add, stdin);
            assert_eq!((code, err_code(&out)), (1, 4), "stdin {stdin:?}: {out}");
            assert!(
                out.contains("CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"),
                "{out}"
            );
        }
        // A bad CNI_ARGS does not hide which variables are missing.
        let (_, out, _) = go(&[("CNI_COMMAND", "ADD"), ("CNI_ARGS", "junk")], "");
        assert!(out.contains("required env variables"), "{out}");
        // With everything present, CNI_ARGS is still checked.
        let mut env = ADD.to_vec();
        env.push(("CNI_ARGS", "junk"));
        let (_, out, _) = go(&env, r#"{"cniVersion":"1.0.0","name":"n","type":"f"}"#);
        assert_eq!(err_code(&out), 4, "{out}");
    }

    #[test]
    fn config_errors_carry_the_config_version() {
        let mut env = ADD.to_vec();
        env[3] = ("CNI_IFNAME", "bad/name");
        let (_, out, _) = go(&env, r#"{"cniVersion":"0.4.0","name":"n","type":"fake"}"#);
        let v: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            (v["code"].as_u64(), v["cniVersion"].as_str()),
            (Some(4), Some("0.4.0")),
            "{out}"
        );
        for conf in [
            r#"{"cniVersion":"0.4.0","type":"fake"}"#,
            r#"{"cniVersion":"0.4.0","name":"n"}"#,
            r#"{"cniVersion":"0.4.0","name":"../x","type":"fake"}"#,
        ] {
            let (_, out, _) = go(&ADD, conf);
            let v: Value = serde_json::from_str(&out).expect("json");
            assert_eq!(
                (v["code"].as_u64(), v["cniVersion"].as_str()),
                (Some(7), Some("0.4.0")),
                "{conf}"
            );
        }
    }

    #[test]
    fn version_gates() {
        let mut env = ADD.to_vec();
        env[0] = ("CNI_COMMAND", "CHECK");
        assert_eq!(
            err_code(&go(&env, r#"{"cniVersion":"0.3.1","name":"n","type":"f"}"#).1),
            1
        );
        let gc = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")];
        assert_eq!(
            err_code(&go(&gc, r#"{"cniVersion":"1.0.0","name":"n","type":"f"}"#).1),
            1
        );
        assert_eq!(
            go(&gc, r#"{"cniVersion":"1.1.0","name":"n","type":"f"}"#).0,
            0
        );
        let st = [("CNI_COMMAND", "STATUS")];
        assert_eq!(
            go(&st, r#"{"cniVersion":"1.1.0","name":"n","type":"f"}"#).0,
            0
        );
    }
}
