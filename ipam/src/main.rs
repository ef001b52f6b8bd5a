//! `vbridge-ipam`: the CNI IPAM plugin when exec'd by a runtime (no arguments), an admin
//! tool when run by a person (`--help`, `--version`, `ls`).

mod cli;
mod verbs;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = if args.is_empty() {
        conf::skel::run(&verbs::IpamPlugin, "vbridge-ipam")
    } else {
        cli::run(&args)
    };
    std::process::exit(code);
}
