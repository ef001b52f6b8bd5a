//! A small logger for one-shot plugin processes: stderr, plus the config's `logFile`.
//!
//! stdout belongs to the CNI result, so nothing here ever writes to it.

use log::{LevelFilter, Log, Metadata, Record};
use std::fs::File;
use std::io::Write;
use std::sync::Mutex;

pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s.to_ascii_lowercase().as_str() {
        "off" | "none" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "warn" | "warning" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

struct Logger {
    prefix: &'static str,
    file: Option<Mutex<File>>,
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = format!(
            "{} {}[{}]: {}\n",
            r.level(),
            self.prefix,
            std::process::id(),
            r.args()
        );
        // A failing log write must never fail the CNI operation itself, and there is
        // nowhere left to report it: dropped on purpose.
        std::io::stderr().write_all(line.as_bytes()).ok();
        if let Some(f) = &self.file {
            if let Ok(mut f) = f.lock() {
                f.write_all(line.as_bytes()).ok();
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the logger once. Level: `logLevel` from the config, else `VBRIDGE_LOG`,
/// else warn.
pub fn init(prefix: &'static str, level: Option<&str>, file: Option<&str>) {
    let level = level
        .and_then(parse_level)
        .or_else(|| {
            std::env::var("VBRIDGE_LOG")
                .ok()
                .as_deref()
                .and_then(parse_level)
        })
        .unwrap_or(LevelFilter::Warn);
    let file = file
        .filter(|f| !f.is_empty())
        .and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        })
        .map(Mutex::new);
    // Leaked on purpose: the logger lives as long as this one-shot process.
    if log::set_logger(Box::leak(Box::new(Logger { prefix, file }))).is_ok() {
        log::set_max_level(level);
    }
}
