//! One raw plugin invocation.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::netns::NetnsGuard;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
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
/// `host_netns`.
///
/// The calling thread enters the namespace just for the spawn (the child inherits it), so
/// std can use posix_spawn (vfork) instead of fork + a `setns` hook; output is collected
/// by `poll` on this thread. Both keep the harness's own cost per call, which is in every
/// per-op time scripts/bench reports, small (about 0.2 ms less than fork + four helper
/// threads on the development VM), as the Go runtimes' exec path is.
pub fn exec<K, V>(host_netns: &Path, bin: &Path, env: &[(K, V)], stdin: &[u8]) -> Output
where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = {
        let _in_ns = NetnsGuard::enter_path(host_netns)
            .unwrap_or_else(|e| panic!("enter {}: {e}", host_netns.display()));
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()))
    };
    collect(child, stdin.to_vec())
}

fn collect(mut child: Child, stdin: Vec<u8>) -> Output {
    let writer = feed(child.stdin.take().expect("piped stdin"), stdin);
    let out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    let (stdout, stderr, done) = drain(out.into(), err.into(), Instant::now() + CALL_TIMEOUT);
    if !done {
        // Not reaped yet, so the pid cannot have been reused.
        let _killed = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    }
    let status = child.wait().expect("wait for plugin");
    if let Some(w) = writer {
        let _ignored = w.join();
    }
    Output {
        code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        signal: status.signal(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Writes the plugin's stdin and closes it. What fits the smallest pipe buffer (one page)
/// is written at once; bigger input (the bad-input tests' megabyte) from a thread, so a
/// plugin that writes before reading cannot deadlock with us.
fn feed(mut input: ChildStdin, bytes: Vec<u8>) -> Option<JoinHandle<()>> {
    const SMALLEST_PIPE_BUFFER: usize = 4096;
    // The plugin may exit without reading; the write error (EPIPE) is expected then.
    if bytes.len() <= SMALLEST_PIPE_BUFFER {
        let _ignored = input.write_all(&bytes);
        return None;
    }
    Some(thread::spawn(move || {
        let _ignored = input.write_all(&bytes);
    }))
}

/// Reads stdout and stderr to EOF; `false` if `deadline` passed first.
fn drain(out: OwnedFd, err: OwnedFd, deadline: Instant) -> (Vec<u8>, Vec<u8>, bool) {
    let mut files = [Some(File::from(out)), Some(File::from(err))];
    let mut bufs = [Vec::new(), Vec::new()];
    let mut chunk = vec![0u8; 65536];
    while files.iter().any(Option::is_some) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let [o, e] = bufs;
            return (o, e, false);
        }
        let open: Vec<usize> = (0..2).filter(|i| files[*i].is_some()).collect();
        let mut fds: Vec<PollFd> = open
            .iter()
            .filter_map(|i| files[*i].as_ref())
            .map(|f| PollFd::new(f.as_fd(), PollFlags::POLLIN))
            .collect();
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => panic!("poll plugin output: {e}"),
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.any().unwrap_or(true)).collect();
        drop(fds);
        for (i, r) in open.into_iter().zip(ready) {
            if !r {
                continue;
            }
            let Some(f) = files[i].as_mut() else { continue };
            match f.read(&mut chunk) {
                Ok(0) => files[i] = None,
                Ok(n) => bufs[i].extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("read plugin output: {e}"),
            }
        }
    }
    let [o, e] = bufs;
    (o, e, true)
}
