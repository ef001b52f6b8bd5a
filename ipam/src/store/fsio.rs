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
/// The wait blocks in the kernel (whose queue hands the lock over at once) on a helper
/// thread rather than polling with sleeps, which under 40 concurrent ADDs left the lock
/// idle while waiters slept. The helper locks a clone of the same open file description,
/// so the lock it takes is this process's; after a timeout it may still get the lock,
/// which is harmless as the caller then reports code 11 and exits. (fs2 is called fully
/// qualified: std ≥ 1.89 has inherent `File` lock methods with other signatures.)
pub fn lock_exclusive_within(file: &File, timeout: std::time::Duration) -> io::Result<bool> {
    match fs2::FileExt::try_lock_exclusive(file) {
        Ok(()) => return Ok(true),
        Err(e) if e.kind() == fs2::lock_contended_error().kind() => {}
        Err(e) => return Err(e),
    }
    let clone = file.try_clone()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The receiver is gone only after a timeout; nobody is left to tell then.
        tx.send(fs2::FileExt::lock_exclusive(&clone)).ok();
    });
    match rx.recv_timeout(timeout) {
        Ok(r) => r.map(|()| true),
        Err(_) => Ok(false),
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
mod tests {
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
