//! rvsctl's command line: arbitrary words (split at NUL bytes) run as an ovs-vsctl
//! invocation against an in-memory database with the daemon's commit rules. Must never
//! panic, and whatever it commits must leave a database that passes the schema checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvsctl::backend::Memory;

/// A little state to work on, built once: each input starts from a copy.
fn start() -> Memory {
    static START: std::sync::OnceLock<Memory> = std::sync::OnceLock::new();
    START
        .get_or_init(|| {
            let mut mem = Memory::new();
            for setup in [&["add-br", "br0"][..], &["add-port", "br0", "p1", "tag=10"][..], &["add-br", "fake", "br0", "20"][..]] {
                let args: Vec<String> = setup.iter().map(|s| s.to_string()).collect();
                let out = rvsctl::vsctl("rvsctl", &args, Some(&mut mem));
                assert_eq!(out.code, 0, "{}", out.stderr);
            }
            mem
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut mem = start();
    for line in s.split('\n').take(4) {
        let args: Vec<String> = line.split('\0').map(String::from).collect();
        // wait-until would poll until its deadline: keep the fuzzer fast.
        if args.iter().any(|a| a.starts_with("wait")) {
            continue;
        }
        let _ = rvsctl::vsctl("rvsctl", &args, Some(&mut mem));
        assert!(mem.db.check().is_ok(), "committed an invalid database: {:?}", mem.db.check());
    }
});
