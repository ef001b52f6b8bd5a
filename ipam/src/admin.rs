//! `vbridge-ipam ls`: the operator's view of the stores under a dataDir.
//!
//! Read-only and lock-free on purpose: it must work while the network is busy, on a
//! store another process is stuck holding, and for a user who can read but not write.
//! Every file is replaced atomically, so each record it shows is complete; a pending
//! journal (an operation killed mid-way, repaired by the next locked operation) is
//! reported. Unreadable files are listed, not skipped, with the same repair hint the
//! plugin gives.

use crate::store::{FileStore, Record};
use crate::Error;
use conf::ipamconf::ip_to_u128;
use serde::Serialize;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct LsOptions {
    pub data_dir: PathBuf,
    pub network: Option<String>,
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct NetworkView {
    pub network: String,
    pub dir: PathBuf,
    pub reservations: Vec<Row>,
    pub corrupt: Vec<Corrupt>,
    /// A journal is present: an ADD/DEL was killed; the next locked operation repairs it.
    #[serde(rename = "interruptedOperation")]
    pub interrupted: bool,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub address: IpAddr,
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub since: u64,
    /// `None` when either boot id is unknown.
    #[serde(rename = "previousBoot")]
    pub previous_boot: Option<bool>,
}

#[derive(Debug, Serialize)]
pub struct Corrupt {
    pub error: String,
}

/// Prints the listing; returns whether the stores are clean (no unreadable file).
pub fn ls(opts: &LsOptions, out: &mut dyn Write) -> Result<bool, Error> {
    let views = collect(opts)?;
    let clean = views.iter().all(|v| v.corrupt.is_empty());
    let written = if opts.json {
        render_json(&views, out)
    } else {
        render_table(&views, &opts.data_dir, out)
    };
    written.map_err(|e| Error::io("write", "stdout", e))?;
    Ok(clean)
}

pub fn collect(opts: &LsOptions) -> Result<Vec<NetworkView>, Error> {
    networks(opts)?
        .into_iter()
        .map(|(name, dir)| view(name, &dir))
        .collect()
}

fn networks(opts: &LsOptions) -> Result<Vec<(String, PathBuf)>, Error> {
    if let Some(name) = &opts.network {
        let dir = opts.data_dir.join(name);
        if !conf::validate::is_valid_id(name) || !FileStore::is_store(&dir) {
            let e = io::Error::new(
                io::ErrorKind::NotFound,
                "no vbridge-ipam store (meta.json) there",
            );
            return Err(Error::io("list network", dir, e));
        }
        return Ok(vec![(name.clone(), dir)]);
    }
    let entries = match std::fs::read_dir(&opts.data_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", &opts.data_dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", &opts.data_dir, e))?;
        let dir = entry.path();
        // Other plugins (host-local) keep their networks in the same dataDir.
        if FileStore::is_store(&dir) {
            out.push((entry.file_name().to_string_lossy().into_owned(), dir));
        }
    }
    out.sort();
    Ok(out)
}

fn view(network: String, dir: &Path) -> Result<NetworkView, Error> {
    let store = FileStore::open(dir);
    let boot = store.boot_id();
    let mut reservations = Vec::new();
    let mut corrupt = Vec::new();
    for item in store.scan_records()? {
        match item {
            Ok((ip, rec)) => reservations.push(row(ip, rec, boot)),
            Err(e) => corrupt.push(Corrupt {
                error: e.to_string(),
            }),
        }
    }
    let journal = store.journal_problem();
    let interrupted = journal.is_none() && store.journal_pending()?;
    let unreadable = store
        .scan_attachments()?
        .into_iter()
        .filter_map(Result::err);
    for e in unreadable.chain(store.meta_problem()).chain(journal) {
        corrupt.push(Corrupt {
            error: e.to_string(),
        });
    }
    reservations.sort_by_key(|r| (r.address.is_ipv6(), ip_to_u128(r.address)));
    Ok(NetworkView {
        network,
        dir: dir.to_path_buf(),
        reservations,
        corrupt,
        interrupted,
    })
}

fn row(address: IpAddr, rec: Record, boot: Option<&str>) -> Row {
    let previous_boot = match boot {
        Some(b) if !rec.boot.is_empty() => Some(rec.boot != b),
        _ => None,
    };
    Row {
        address,
        container_id: rec.attachment.container_id,
        ifname: rec.attachment.ifname,
        since: rec.since,
        previous_boot,
    }
}

fn render_json(views: &[NetworkView], out: &mut dyn Write) -> io::Result<()> {
    let text = serde_json::to_string_pretty(&serde_json::json!({ "networks": views }))?;
    writeln!(out, "{text}")
}

fn render_table(views: &[NetworkView], data_dir: &Path, out: &mut dyn Write) -> io::Result<()> {
    if views.is_empty() {
        return writeln!(out, "no vbridge-ipam networks under {}", data_dir.display());
    }
    let header = [
        "NETWORK",
        "ADDRESS",
        "CONTAINER",
        "IFNAME",
        "SINCE (UTC)",
        "PREVIOUS BOOT",
    ]
    .map(String::from);
    let mut rows = vec![header.to_vec()];
    for v in views {
        for r in &v.reservations {
            let prev = match r.previous_boot {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            };
            rows.push(vec![
                v.network.clone(),
                r.address.to_string(),
                r.container_id.clone(),
                r.ifname.clone(),
                utc(r.since),
                prev.to_string(),
            ]);
        }
    }
    print_columns(&rows, out)?;
    for v in views {
        if v.reservations.is_empty() {
            writeln!(out, "network {}: no reservations", v.network)?;
        }
        if v.interrupted {
            writeln!(
                out,
                "network {}: an interrupted operation is journaled in {}; the next ADD/DEL/GC repairs it",
                v.network,
                v.dir.join("journal").display()
            )?;
        }
        for c in &v.corrupt {
            writeln!(out, "CORRUPT: {}", c.error)?;
        }
    }
    Ok(())
}

fn print_columns(rows: &[Vec<String>], out: &mut dyn Write) -> io::Result<()> {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) without a date crate: the days-to-civil algorithm of
/// H. Hinnant's `chrono`-compatible date library.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
    }
}
