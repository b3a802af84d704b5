//! `cargo partest ...`: cargo runs `cargo-partest partest ...`; this is
//! partest itself, with that first `partest` dropped.

#[path = "../main.rs"]
#[allow(dead_code)]
mod partest_main;

fn main() {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "partest") {
        args.remove(1);
    }
    std::process::exit(partest_main::entry(args));
}
