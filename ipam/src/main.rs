//! `vbridge-ipam`: the CNI IPAM plugin when exec'd by a runtime (no arguments), an admin
//! tool when run by a person (`--help`, `--version`, `ls`).

mod cli;
mod verbs;

/// musl's allocator maps and unmaps small groups as a process allocates and frees: ~36
/// mmap/munmap pairs per vbridge ADD, each with page faults, and with a second thread alive each
/// munmap also interrupts the other CPU (a TLB shootdown, which traps on a VM). dlmalloc
/// carves the same allocations from a few 64 KiB segments. glibc builds (`cargo build`,
/// the unit tests) keep glibc's allocator.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = if args.is_empty() {
        conf::skel::run(&verbs::IpamPlugin, "vbridge-ipam")
    } else {
        cli::run(&args)
    };
    std::process::exit(code);
}
