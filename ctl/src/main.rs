//! `rvsctl` (also installed as `ovs-vsctl` and `ovs-appctl`): see the `ctl` crate.
use std::io::Write;

fn main() {
    let out = rvsctl::run(std::env::args().collect());
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    let _ = std::io::stdout().flush();
    std::process::exit(out.code);
}
