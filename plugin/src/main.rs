//! `vbridge`: the CNI protocol on stdin/env, or help for a person at a terminal.

fn main() {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version" | "-V" | "version") => println!("vbridge {}", env!("CARGO_PKG_VERSION")),
        Some("--help" | "-h" | "help") => print!("{}", plugin::HELP),
        Some(other) => {
            eprintln!("vbridge: unknown argument {other:?}; run `vbridge --help`");
            std::process::exit(2);
        }
        None => std::process::exit(conf::skel::run(&plugin::verbs::VBridge, "vbridge")),
    }
}
