//! The command line for a person: `--help`, `--version`, `ls`. Runtimes never pass
//! arguments, so any argument selects this mode.

use conf::ipamconf::DEFAULT_DATA_DIR;
use ipam::admin::{self, LsOptions};
use std::io::Write;
use std::path::PathBuf;

const USAGE_ERROR: i32 = 2;

const HELP: &str = "\
vbridge-ipam - host-local compatible IPAM plugin for CNI, with a crash-safe store

USAGE
  vbridge-ipam                      CNI plugin mode: CNI_COMMAND etc. in the environment,
                                    network config on stdin (this is how runtimes run it)
  vbridge-ipam ls [--data-dir DIR] [NETWORK] [--json]
                                    list networks and their reservations
  vbridge-ipam --help | --version

CONFIG (\"ipam\" section; the keys of host-local)
  {\"type\": \"vbridge-ipam\", \"subnet\": \"10.88.0.0/16\"}
  or \"ranges\": [[{\"subnet\",\"rangeStart\",\"rangeEnd\",\"gateway\"}, ...], ...] (one address per
  inner list; two lists = dual stack), \"routes\", \"dataDir\" (default /var/lib/cni/networks),
  \"resolvConf\", and \"exclude\": [\"10.88.0.10\", \"10.88.1.0/24\"] (never handed out).
  Requested addresses: runtimeConfig.ips, args.cni.ips, CNI_ARGS IP=.
  Switching a network from host-local: its reservations (same dataDir and network name)
  are imported once, when vbridge-ipam first uses the directory.

LS
  Shows, per network: address, container id, interface, reservation time (UTC) and
  whether the reservation is from a previous boot (its container died with that boot;
  such reservations are reused automatically only when the range is otherwise full,
  and GC releases them when the runtime no longer lists them). ls takes no lock and
  changes nothing. Exit status: 0 clean, 1 an unreadable file was found (listed as
  CORRUPT) or an error, 2 bad usage.

STORE LAYOUT  <dataDir>/<network>/
  lock                        flock target (never delete it)
  meta.json                   {\"format\":2}
  journal                     only while an ADD/DEL runs, or if one was killed
  last_reserved.<N>           round-robin hint of range set N: a symlink to the
                              address reserved last (safe to delete)
  full                        a symlink: this range set was found full (a hint that
                              spares the next calls a walk; safe to delete)
  ips/<address>               one name per reserved address, and
  attachments/<id>:<ifname>   one per attachment, all for one file (hard links):
                              {\"containerID\",\"ifname\",\"since\",\"boot\",\"ips\":[...]}
  tmp/                        temp files of in-flight writes

REPAIR
  Every file is written atomically and multi-file changes are journaled, so a killed
  process or a power loss is repaired automatically by the next ADD/DEL/CHECK/GC/STATUS.
  A file that still cannot be parsed (disk corruption, manual edits) stops the
  operations that need it with error code 107 naming the file. To repair:
  1. Run `vbridge-ipam ls --data-dir DIR NETWORK`; it lists every CORRUPT file.
  2. ips/<address>: if no container uses the address, delete the file. Otherwise
     replace it with {\"containerID\":\"<id>\",\"ifname\":\"<ifname>\",\"since\":0,\"boot\":\"\"}.
  3. attachments/<id>:<ifname>: if the container is gone, delete the file and the
     ips/ files naming that container; otherwise replace it with the JSON list of
     those addresses, e.g. [\"10.88.0.5\",\"fd00::5\"].
     The names of one attachment share one file: delete or replace a name (write a
     new file, e.g. with an editor that renames); writing into it changes every name.
  4. journal: delete it, then check the addresses it names with step 2/3.
  5. meta.json: rewrite it as {\"format\":2}.
  6. last_reserved.<N>, full, tmp/*: safe to delete at any time.
  Edit only while no container of that network is being created or removed, or hold
  the lock while editing: `flock DIR/NETWORK/lock -c 'your edit command'`.
";

pub fn run(args: &[String]) -> i32 {
    match args.first().map(String::as_str) {
        Some("-h" | "--help" | "help") => print(HELP),
        Some("-V" | "--version" | "version") => print(&format!(
            "vbridge-ipam {} (CNI spec versions {})\n",
            env!("CARGO_PKG_VERSION"),
            conf::version::SUPPORTED.join(", ")
        )),
        Some("ls") => match parse_ls(&args[1..]) {
            Ok(opts) => ls(&opts),
            Err(msg) => usage(&msg),
        },
        Some(other) => usage(&format!("unknown command {other:?}")),
        None => usage("no command"),
    }
}

fn print(text: &str) -> i32 {
    let mut out = std::io::stdout();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn usage(msg: &str) -> i32 {
    eprintln!("vbridge-ipam: {msg}\nusage: vbridge-ipam ls [--data-dir DIR] [NETWORK] [--json] | --help | --version");
    USAGE_ERROR
}

fn parse_ls(args: &[String]) -> Result<LsOptions, String> {
    let mut opts = LsOptions {
        data_dir: PathBuf::from(DEFAULT_DATA_DIR),
        network: None,
        json: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => opts.json = true,
            "--data-dir" => {
                opts.data_dir = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--data-dir needs a directory")?;
            }
            s if s.starts_with("--data-dir=") => {
                opts.data_dir = PathBuf::from(&s["--data-dir=".len()..])
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s:?}")),
            s if opts.network.is_none() => opts.network = Some(s.to_string()),
            s => return Err(format!("unexpected argument {s:?} (only one NETWORK)")),
        }
    }
    Ok(opts)
}

fn ls(opts: &LsOptions) -> i32 {
    let mut out = std::io::stdout();
    match admin::ls(opts, &mut out) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("vbridge-ipam: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ls_options() {
        let o = parse_ls(&args(&["--data-dir", "/d", "net1", "--json"])).expect("ok");
        assert_eq!(o.data_dir, PathBuf::from("/d"));
        assert_eq!(o.network.as_deref(), Some("net1"));
        assert!(o.json);
        let o = parse_ls(&args(&["--data-dir=/x"])).expect("ok");
        assert_eq!(o.data_dir, PathBuf::from("/x"));
        assert!(parse_ls(&args(&["--data-dir"])).is_err());
        assert!(parse_ls(&args(&["a", "b"])).is_err());
        assert!(parse_ls(&args(&["--bogus"])).is_err());
    }
}
