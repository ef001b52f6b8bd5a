//! Crash-safe file primitives.
//!
//! Every file of the store is written the same way: a temp file in the store's `tmp/`
//! directory (same file system, so the final step is atomic), write, optionally fsync,
//! then `rename` (replace) or `link` (a further name, failing if it exists). A process
//! killed at any point leaves either the old name/content or the new one — never a
//! half-written file under a real name.
//!
//! A temp file is named after its destination (`tmp/journal`, `tmp/last_reserved.0`):
//! writers hold the directory's lock, so one name never has two writers at once. What a
//! killed writer leaves is at most one stray file per name, which the next write of that
//! name replaces — so no operation has to scan `tmp/` (GC sweeps it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes `bytes` to the temp file `tmp_dir/name` and returns its path.
pub fn write_tmp(tmp_dir: &Path, name: &str, bytes: &[u8], durable: bool) -> io::Result<PathBuf> {
    let path = tmp_dir.join(name);
    let written = (|| {
        let mut f = create_fresh(&path)?;
        f.write_all(bytes)?;
        if durable {
            // Data must be on disk before a name points at it, or a power loss can leave
            // an empty record behind a valid name.
            f.sync_data()?;
        }
        Ok(())
    })();
    match written {
        Ok(()) => Ok(path),
        Err(e) => {
            discard(&path);
            Err(e)
        }
    }
}

/// A new empty file at `path`, replacing a stray one a killed writer left.
fn create_fresh(path: &Path) -> io::Result<File> {
    let open = || OpenOptions::new().write(true).create_new(true).open(path);
    match open() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            log::debug!(
                "replacing temp file {} left by a killed writer",
                path.display()
            );
            remove_opt(path)?;
            open()
        }
        r => r,
    }
}

/// The temp name for a write to `dest`.
fn tmp_name(dest: &Path) -> io::Result<&str> {
    dest.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", dest.display()),
        )
    })
}

fn discard(tmp: &Path) {
    if let Err(e) = fs::remove_file(tmp) {
        log::debug!(
            "leaving temp file {} for the next writer: {e}",
            tmp.display()
        );
    }
}

/// Atomically replaces (or creates) `dest`.
pub fn write_replace(tmp_dir: &Path, dest: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    let tmp = write_tmp(tmp_dir, tmp_name(dest)?, bytes, durable)?;
    fs::rename(&tmp, dest).inspect_err(|_| discard(&tmp))
}

/// Atomically replaces (or creates) `dest` with a symlink to `value`: a small value kept in
/// the link itself. Replacing it by rename costs no data block: renaming over a regular
/// file whose data is not yet allocated makes ext4 allocate and flush it first (about as
/// slow as the rest of an IPAM ADD), and freeing a file's block on unlink costs too.
pub fn replace_symlink(tmp_dir: &Path, dest: &Path, value: &str) -> io::Result<()> {
    let tmp = tmp_dir.join(tmp_name(dest)?);
    let link = || std::os::unix::fs::symlink(value, &tmp);
    match link() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            remove_opt(&tmp)?;
            link()?;
        }
        r => r?,
    }
    fs::rename(&tmp, dest).inspect_err(|_| discard(&tmp))
}

/// The value `replace_symlink` stored, or the content of a regular file written by an
/// older version; `None` if `path` does not exist.
pub fn read_value(path: &Path) -> io::Result<Option<String>> {
    match fs::read_link(path) {
        Ok(target) => Ok(Some(target.to_string_lossy().into_owned())),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            Ok(read_opt(path)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes every file of `dir`: temp files left by killed writers (GC's sweep). Only call
/// it while holding the lock that every writer of `dir` holds.
pub fn clear_dir(dir: &Path) -> io::Result<()> {
    for name in list(dir)? {
        let p = dir.join(name);
        log::debug!("removing temp file {} left by a killed writer", p.display());
        remove_opt(&p)?;
    }
    Ok(())
}

/// Takes an exclusive flock on `file`, waiting at most `timeout`; `Ok(false)` on timeout.
///
/// The wait blocks in the kernel (whose queue hands the lock over at once), on this
/// thread: a timer aimed at this thread alone interrupts the `flock` once the time is up.
/// (Polling with sleeps left the lock idle while waiters slept; a helper thread per wait
/// cost a batch of concurrent ADDs ~6% of its wall time on a VM.) fs2 is called fully
/// qualified: std ≥ 1.89 has inherent `File` lock methods with other signatures.
pub fn lock_exclusive_within(file: &File, timeout: std::time::Duration) -> io::Result<bool> {
    match fs2::FileExt::try_lock_exclusive(file) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == fs2::lock_contended_error().kind() => {}
        Err(e) => return Err(e),
    }
    let deadline = std::time::Instant::now() + timeout;
    let _alarm = alarm::Alarm::arm(timeout)?;
    loop {
        match fs2::FileExt::lock_exclusive(file) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if std::time::Instant::now() >= deadline {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// While alive, the calling thread runs at nice `BOOST_NICE` (unless it already runs at
/// that or higher), restored on drop. flock has no priority inheritance: in a burst of
/// concurrent ADDs every lock holder competes for the CPU with dozens of starting plugin
/// processes, and each preemption of the holder stalls all the waiters queued behind it
/// (40 ADDs at once on 2 CPUs: the lock wait went from a median of 17–37 ms to 2.6–5 ms).
/// Without the privilege to raise it (not root) nothing changes.
#[derive(Debug)]
pub struct Boost(Option<i32>);

const BOOST_NICE: i32 = -15;

impl Boost {
    pub fn raise() -> Boost {
        use nix::errno::Errno;
        use nix::libc;
        Errno::clear();
        // SAFETY: plain syscalls on the calling thread; -1 is a valid nice, hence errno.
        let old = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        if (old == -1 && Errno::last_raw() != 0) || old <= BOOST_NICE {
            return Boost(None);
        }
        // SAFETY: as above.
        let raised = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BOOST_NICE) } == 0;
        Boost(raised.then_some(old))
    }
}

impl Drop for Boost {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            // SAFETY: as above; lowering the priority again cannot fail for lack of rights.
            unsafe { nix::libc::setpriority(nix::libc::PRIO_PROCESS, 0, old) };
        }
    }
}

/// A POSIX timer that sends SIGALRM to the calling thread alone (`SIGEV_THREAD_ID`) at
/// the timeout and every few milliseconds after it, until dropped. The repeats close the
/// race of a signal that lands just before the blocking call starts. SIGALRM gets a
/// handler that does nothing and is installed without `SA_RESTART`, so the interrupted
/// call fails with `EINTR`; std retries its own calls on `EINTR`, and no code of ours uses
/// SIGALRM otherwise. Raw syscalls: libc's `timer_create` hides `SIGEV_THREAD_ID` on musl.
mod alarm {
    use nix::libc;
    use std::io;
    use std::time::Duration;

    const REPEAT: Duration = Duration::from_millis(5);

    /// The kernel's `struct sigevent`: 64 bytes on every Linux ABI.
    #[repr(C)]
    struct SigEvent {
        value: usize,
        signo: libc::c_int,
        notify: libc::c_int,
        tid: libc::c_int,
        _pad: [libc::c_int; PAD],
    }

    const PAD: usize = (64 - std::mem::size_of::<usize>() - 12) / 4;

    pub struct Alarm(libc::c_int);

    extern "C" fn ignore(_: libc::c_int) {}

    impl Alarm {
        pub fn arm(after: Duration) -> io::Result<Alarm> {
            install_handler()?;
            let mut ev = SigEvent {
                value: 0,
                signo: libc::SIGALRM,
                notify: libc::SIGEV_THREAD_ID,
                // SAFETY: gettid has no preconditions.
                tid: unsafe { libc::syscall(libc::SYS_gettid) } as libc::c_int,
                _pad: [0; PAD],
            };
            let mut id: libc::c_int = 0;
            // SAFETY: `ev` is a complete kernel sigevent and `id` receives the timer id;
            // both outlive the call.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_timer_create,
                    libc::CLOCK_MONOTONIC,
                    &mut ev as *mut SigEvent,
                    &mut id as *mut libc::c_int,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            let alarm = Alarm(id);
            let spec = libc::itimerspec {
                it_interval: timespec(REPEAT),
                // A zero value would disarm the timer instead.
                it_value: timespec(after.max(Duration::from_nanos(1))),
            };
            // SAFETY: `spec` is a valid itimerspec; a null old value is allowed.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_timer_settime,
                    alarm.0,
                    0,
                    &spec as *const libc::itimerspec,
                    std::ptr::null_mut::<libc::itimerspec>(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(alarm)
        }
    }

    impl Drop for Alarm {
        fn drop(&mut self) {
            // SAFETY: the id came from timer_create and is deleted once.
            unsafe { libc::syscall(libc::SYS_timer_delete, self.0) };
        }
    }

    /// Also unblocks SIGALRM on this thread: a signal mask (and an ignored disposition)
    /// survives exec, so the runtime that started us may have left it blocked.
    fn install_handler() -> io::Result<()> {
        use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
        let act = SigAction::new(
            SigHandler::Handler(ignore),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler does nothing, so it is async-signal-safe.
        unsafe { sigaction(Signal::SIGALRM, &act) }.map_err(io::Error::from)?;
        SigSet::from(Signal::SIGALRM)
            .thread_unblock()
            .map_err(io::Error::from)
    }

    fn timespec(d: Duration) -> libc::timespec {
        libc::timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        }
    }
}

/// Makes the directory entries of `dir` (renames, links, unlinks) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The file's content, `None` if it does not exist.
pub fn read_opt(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `path`; a missing file is fine (every removal must be replayable).
pub fn remove_opt(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

pub fn exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Names of the entries of `dir` (non-UTF-8 names are returned lossily; they can only
/// come from outside tampering and are then reported as unparsable).
pub fn list(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::TempDir;

    /// A temp dir with its `tmp/`.
    fn store_dir(name: &str) -> (TempDir, PathBuf) {
        let d = TempDir::new(name);
        let tmp = d.path().join("tmp");
        fs::create_dir(&tmp).expect("mkdir");
        (d, tmp)
    }

    #[test]
    fn replace() {
        let (d, tmp) = store_dir("fsio");
        let dest = d.path().join("f");
        write_replace(&tmp, &dest, b"one", true).expect("new");
        assert_eq!(fs::read(&dest).expect("read"), b"one");
        write_replace(&tmp, &dest, b"three", false).expect("replace");
        assert_eq!(fs::read(&dest).expect("read"), b"three");
        assert_eq!(read_value(&dest).expect("file value"), Some("three".into()));
        replace_symlink(&tmp, &dest, "10.0.0.2").expect("symlink");
        replace_symlink(&tmp, &dest, "fd00::2").expect("symlink again");
        assert_eq!(read_value(&dest).expect("value"), Some("fd00::2".into()));
        assert_eq!(read_value(&d.path().join("nope")).expect("missing"), None);
        assert!(
            list(&tmp).expect("list").is_empty(),
            "temp files must not be left behind"
        );
        assert_eq!(read_opt(&d.path().join("nope")).expect("read"), None);
        remove_opt(&d.path().join("nope")).expect("missing is fine");
    }

    /// The POSIX timers aimed at this thread, as the kernel lists them (other tests run
    /// in parallel threads of this process).
    fn timers_of_this_thread() -> usize {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { nix::libc::syscall(nix::libc::SYS_gettid) };
        let aimed = format!("notify: signal/tid.{tid}");
        fs::read_to_string("/proc/self/timers")
            .map(|t| t.lines().filter(|l| l.trim() == aimed).count())
            .unwrap_or(0)
    }

    #[test]
    fn a_held_lock_times_out_on_time_every_time_and_leaves_no_timer() {
        use nix::sys::signal::{SigSet, Signal};
        use std::time::{Duration, Instant};
        let d = TempDir::new("fsio-lock");
        let path = d.path().join("lock");
        let holder = File::create(&path).expect("create");
        fs2::FileExt::lock_exclusive(&holder).expect("hold");
        // Another open file description: its flock conflicts with the holder's.
        let waiter = File::open(&path).expect("open");
        // On a thread of its own, so that a wait that never ends fails this test instead
        // of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // As a runtime may leave it for us: the wait must not depend on it.
            SigSet::from(Signal::SIGALRM)
                .thread_block()
                .expect("block SIGALRM");
            assert_eq!(timers_of_this_thread(), 0);
            for timeout in [0, 1, 2, 5, 20].map(Duration::from_millis).repeat(20) {
                let started = Instant::now();
                let got = lock_exclusive_within(&waiter, timeout).expect("a timeout is no error");
                tx.send((got, timeout, started.elapsed())).expect("send");
            }
            tx.send((false, Duration::ZERO, Duration::ZERO))
                .expect("send");
            assert_eq!(timers_of_this_thread(), 0, "every wait deletes its timer");
            let got = lock_exclusive_within(&waiter, Duration::from_secs(10)).expect("lock");
            tx.send((got, Duration::ZERO, Duration::ZERO))
                .expect("send");
        });
        for _ in 0..100 {
            let (got, timeout, waited) = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("a wait that times out must end");
            assert!(!got, "the lock is held");
            assert!(waited >= timeout, "gave up early: {waited:?} < {timeout:?}");
            assert!(
                waited < timeout + Duration::from_secs(1),
                "late: {waited:?}"
            );
        }
        rx.recv_timeout(Duration::from_secs(10))
            .expect("timer check passed");
        std::thread::sleep(Duration::from_millis(100));
        drop(holder);
        let (got, ..) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the lock is handed over once the holder lets go");
        assert!(got);
    }

    pub(crate) fn is_root() -> bool {
        // SAFETY: geteuid cannot fail.
        unsafe { nix::libc::geteuid() == 0 }
    }

    /// This thread's nice value.
    pub(crate) fn nice() -> i32 {
        // SAFETY: a plain syscall on the calling thread.
        unsafe { nix::libc::getpriority(nix::libc::PRIO_PROCESS, 0) }
    }

    #[test]
    fn boost_raises_this_threads_priority_until_dropped() {
        // On a thread of its own: a nice value is per thread.
        std::thread::spawn(|| {
            let before = nice();
            let boost = Boost::raise();
            if is_root() {
                assert_eq!(nice(), BOOST_NICE);
            } else {
                assert_eq!(nice(), before, "only root may raise it");
            }
            drop(boost);
            assert_eq!(nice(), before, "restored");
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_stray_temp_file_of_a_killed_writer_is_replaced() {
        let (d, tmp) = store_dir("fsio-stray");
        let dest = d.path().join("rec");
        fs::write(tmp.join("rec"), b"{\"half").expect("stray file");
        write_replace(&tmp, &dest, b"whole", true).expect("write over a stray file");
        assert_eq!(fs::read(&dest).expect("read"), b"whole");
        std::os::unix::fs::symlink("stale", tmp.join("rec")).expect("stray symlink");
        replace_symlink(&tmp, &dest, "10.0.0.9").expect("symlink over a stray one");
        assert_eq!(read_value(&dest).expect("value"), Some("10.0.0.9".into()));
        assert!(list(&tmp).expect("list").is_empty());
    }
}
