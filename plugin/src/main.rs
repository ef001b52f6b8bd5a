//! `vbridge`: the CNI protocol on stdin/env, `vbridge install` for node setup, or help for a
//! person at a terminal.

use plugin::install::{self, Invocation};

/// musl's allocator maps and unmaps small groups as a process allocates and frees: ~36
/// mmap/munmap pairs per ADD, each with page faults, and with a second thread alive each
/// munmap also interrupts the other CPU (a TLB shootdown, which traps on a VM). dlmalloc
/// carves the same allocations from a few 64 KiB segments. glibc builds (`cargo build`,
/// the unit tests) keep glibc's allocator.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version" | "-V" | "version") => println!("vbridge {}", env!("CARGO_PKG_VERSION")),
        // The detached firewall teardown started by a DEL (see `plugin::network`).
        Some("__reap") => {
            let a: Vec<String> = std::env::args().skip(2).collect();
            let code = match a.as_slice() {
                [state_dir, network] => i32::from(plugin::network::reap(state_dir, network).is_err()),
                _ => 2,
            };
            std::process::exit(code);
        }
        // The deferred link deletion started by a DEL (see `plugin::verbs::del`).
        Some("__unlink") => {
            let a: Vec<String> = std::env::args().skip(2).collect();
            let code = match (a.first().and_then(|i| i.parse().ok()), a.get(1)) {
                (Some(index), Some(name)) => i32::from(plugin::verbs::del::unlink(index, name).is_err()),
                _ => 2,
            };
            std::process::exit(code);
        }
        Some("--help" | "-h" | "help") => print!(
            "{}\nNODE SETUP\n  vbridge install ...  copy the binaries and write a conflist (vbridge install --help)\n",
            plugin::HELP
        ),
        Some("install") => std::process::exit(run_install(&args[1..])),
        Some(other) => {
            eprintln!("vbridge: unknown argument {other:?}; run `vbridge --help`");
            std::process::exit(2);
        }
        None => std::process::exit(conf::skel::run(&plugin::verbs::VBridge, "vbridge")),
    }
}

/// `vbridge install ...`: 0 done, 1 failed, 2 bad usage.
fn run_install(args: &[String]) -> i32 {
    let opts = match install::parse_args(args, std::env::var("POD_CIDR").ok()) {
        Ok(Invocation::Help) => {
            print!("{}", install::USAGE);
            return 0;
        }
        Ok(Invocation::Install(opts)) => opts,
        Err(msg) => {
            eprintln!("vbridge install: {msg}\nrun `vbridge install --help`");
            return 2;
        }
    };
    match install::install(&opts) {
        Ok(actions) => {
            for a in actions {
                println!("vbridge install: {a}");
            }
            for other in install::configs_before_ours(&opts) {
                eprintln!(
                    "vbridge install: warning: {other} sorts before {} in {}: CRI runtimes (containerd, CRI-O) use the first network config, so not vbridge's (remove or rename it)",
                    install::CONFLIST,
                    opts.conf_dir.display()
                );
            }
            0
        }
        Err(e) => {
            eprintln!("vbridge install: {e}");
            1
        }
    }
}
