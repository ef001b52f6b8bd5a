//! One raw plugin invocation.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Deserialize;
use serde_json::Value;

/// A plugin call is killed after this long (a hung plugin must not hang the suite).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// What a plugin process did.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code; `128 + signal` when killed by a signal (as a shell reports it).
    pub code: i32,
    /// Set when the process died from a signal (crash, or our timeout kill).
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The CNI error object printed on stdout.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct CniError {
    #[serde(rename = "cniVersion")]
    pub cni_version: Option<String>,
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    pub details: Option<String>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0 && self.signal.is_none()
    }

    /// stdout parsed as JSON; panics with the whole output when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self}"))
    }

    /// Asserts a clean CNI failure: non-zero exit, no crash, an error object with `code` on
    /// stdout. Returns the error.
    pub fn expect_error(&self, code: u32) -> CniError {
        assert!(self.signal.is_none(), "plugin died from a signal: {self}");
        assert!(
            !self.stderr.contains("panicked at"),
            "plugin panicked: {self}"
        );
        assert_ne!(self.code, 0, "expected failure with code {code}: {self}");
        let err = self
            .cni_error()
            .unwrap_or_else(|| panic!("no CNI error JSON on stdout: {self}"));
        assert_eq!(err.code, code, "wrong CNI error code: {self}");
        err
    }

    /// The CNI error object on stdout, if there is one.
    pub fn cni_error(&self) -> Option<CniError> {
        serde_json::from_str(&self.stdout).ok()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {} signal {:?}\nstdout: {}\nstderr: {}",
            self.code, self.signal, self.stdout, self.stderr
        )
    }
}

/// Runs `bin` with exactly `env` (plus `PATH`) and `stdin`, inside the network namespace at
/// `host_netns` (entered with `setns` between fork and exec, so mounts stay untouched).
pub fn exec<K, V>(host_netns: &Path, bin: &Path, env: &[(K, V)], stdin: &[u8]) -> Output
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let ns =
        File::open(host_netns).unwrap_or_else(|e| panic!("open {}: {e}", host_netns.display()));
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setns is async-signal-safe; the closure only uses the fd opened above.
    unsafe {
        cmd.pre_exec(move || setns(&ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from));
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    collect(child, stdin.to_vec())
}

fn collect(mut child: Child, stdin: Vec<u8>) -> Output {
    let mut input = child.stdin.take().expect("piped stdin");
    // The plugin may exit without reading; the write error (EPIPE) is expected then.
    let writer = thread::spawn(move || {
        let _ignored = input.write_all(&stdin);
    });
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_bounded(child);
    let _ignored = writer.join();
    Output {
        code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        signal: status.signal(),
        stdout: join_text(stdout),
        stderr: join_text(stderr),
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ignored = p.read_to_end(&mut buf);
        }
        buf
    })
}

fn join_text(h: JoinHandle<Vec<u8>>) -> String {
    String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
}

/// Waits for the plugin to exit, killing it after `CALL_TIMEOUT`. A helper thread blocks in
/// `wait`, so the exit is seen at once: per-op timings (scripts/bench) rely on that.
fn wait_bounded(mut child: Child) -> std::process::ExitStatus {
    let pid = Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _sent = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(CALL_TIMEOUT) {
        Ok(status) => status,
        Err(_) => {
            // Not reaped yet (the waiter still blocks), so the pid cannot have been reused.
            let _killed = kill(pid, Signal::SIGKILL);
            rx.recv().expect("waiter thread")
        }
    };
    status.expect("wait for plugin")
}
