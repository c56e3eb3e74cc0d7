//! appctl commands with arbitrary arguments, both ends: rvsctl's ovs-appctl option
//! parsing (up to the failed connection to a socket that does not exist), and the
//! daemon's registry and handlers (`appctl::run`) against a real `Control` — a
//! database with a bridge whose port has no device, a running datapath worker, a store
//! in a temporary directory. Words are split at NUL bytes; the first byte picks a
//! registered command name (or takes the first word as the name). Must never panic;
//! every answer ends in a newline, a refusal is never empty, and a registered name
//! with an allowed argument count never gets "not a valid command".
#![no_main]

use std::cell::RefCell;
use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use rvs_ovsdb::proto::Response;
use rvs_switch::time::Clock;
use rvs_vswitchd::appctl;
use rvs_vswitchd::control::Control;
use rvs_vswitchd::store::{Meta, Store};
use rvs_vswitchd::worker::WorkerHandle;

const NAMES: &[&str] = &[
    "bond/show",
    "dpif/show",
    "exit",
    "fdb/add",
    "fdb/del",
    "fdb/flaps",
    "fdb/flush",
    "fdb/show",
    "fdb/stats-clear",
    "fdb/stats-show",
    "list-commands",
    "rvs/drops",
    "rvs/workers",
    "rvs/workers-clear",
    "version",
    "vlog/list",
    "vlog/set",
    // Appended, so the seeds' first bytes keep naming the commands they were made for.
    "bond/disable-member",
    "bond/disable-slave",
    "bond/enable-member",
    "bond/enable-slave",
    "bond/hash",
    "bond/set-active-member",
    "bond/set-active-slave",
    "lacp/show",
    "lacp/show-stats",
    "rvs/takeover",
    "dpif-netdev/pmd-rxq-show",
    "dpif-netdev/pmd-stats-clear",
    "dpif-netdev/pmd-stats-show",
    "rvs/capture",
    "rvs/capture-stop",
    "ofproto/trace",
    "rvs/metrics",
    "bond/list",
    "bond/migrate",
    "qos/show",
    "qos/show-types",
];

struct Daemon {
    rt: tokio::runtime::Runtime,
    ctl: Control,
}

fn daemon() -> Daemon {
    // One directory per fuzzing process; those of processes gone are removed.
    let tmp = std::env::temp_dir();
    for e in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("rvs-fuzz-appctl-")
            && !std::path::Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let dir = tmp.join(format!("rvs-fuzz-appctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let store = Store::open(&dir).expect("store");
    let mut mem = rvsctl::backend::Memory::new();
    for setup in [&["add-br", "br0"][..], &["add-port", "br0", "rvsfz-nodev", "tag=10"][..]] {
        let args: Vec<String> = setup.iter().map(|s| s.to_string()).collect();
        let out = rvsctl::vsctl("rvsctl", &args, Some(&mut mem));
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let worker = WorkerHandle::spawn(Clock::new(), |_| {}).expect("worker");
    let mut ctl = Control::new(mem.db, Meta::default(), store, worker);
    ctl.reconcile();
    Daemon { rt, ctl }
}

thread_local! {
    static DAEMON: RefCell<Daemon> = RefCell::new(daemon());
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let Ok(s) = std::str::from_utf8(rest) else { return };
    let mut words: Vec<String> = s.split('\0').map(String::from).collect();
    if let Some(name) = NAMES.get(pick as usize) {
        words.insert(0, name.to_string());
    }

    // The client end: options, then a socket that is not there.
    let (out, err, code) = rvsctl::appctl::main("ovs-appctl", &words, PathBuf::from("/nonexistent/rvs-fuzz.sock"), false);
    assert!(code != 0 || words.iter().any(|w| w.starts_with('-')), "a command ran without a daemon: {out:?}");
    assert!(err.is_empty() || err.ends_with('\n'), "{err:?}");

    // The daemon end.
    let name = words.remove(0);
    DAEMON.with(|d| {
        let d = &mut *d.borrow_mut();
        let resp = d.rt.block_on(appctl::run(&mut d.ctl, &name, &words));
        d.ctl.exit_requested = false;
        let Response::Appctl { ok, output } = resp else { panic!("appctl answered {resp:?}") };
        assert!(output.is_empty() || output.ends_with('\n'), "{output:?}");
        assert!(ok || !output.is_empty(), "a refusal without a reason");
        if NAMES.contains(&name.as_str()) {
            // The whole answer, not its start: ofproto/trace's errors begin with the
            // argument they refuse (OVS's texts), which may spell anything.
            let unknown = format!("\"{name}\" is not a valid command (use \"list-commands\" to see a list of valid commands)\n");
            assert_ne!(output, unknown, "{name} registered");
        }
    });
});
