//! rvsctl as a program: its personalities (installed as `ovs-vsctl` and
//! `ovs-appctl`), version strings, and how it ends when the daemon does not answer —
//! with `--timeout` by SIGALRM (status 142 in a shell), without it after its own
//! bounded wait, with a one-line message. No root needed.

use std::os::unix::net::UnixListener;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rvs_testkit::*;

/// A directory with `ovs-vsctl` and `ovs-appctl` links to rvsctl.
fn links() -> PathBuf {
    let dir = Daemon::new_dir("lnk");
    for name in ["ovs-vsctl", "ovs-appctl"] {
        std::os::unix::fs::symlink(bin("rvsctl"), dir.join(name)).unwrap();
    }
    dir
}

#[test]
fn personalities_and_versions() {
    let l = links();
    let d = Daemon::start("pers", None);
    let sock = d.socket().display().to_string();
    let out = run_bounded(Command::new(l.join("ovs-vsctl")).arg("--version"), Duration::from_secs(10));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ovs-vsctl (Open vSwitch) 3.1.0\nDB Schema 8.3.1\n");
    let out = run_bounded(Command::new(bin("rvsctl")).arg("--version"), Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("rvsctl (rvs) "));
    // Errors carry the name the program was invoked as.
    let out = run_bounded(Command::new(l.join("ovs-vsctl")).args([&format!("--db=unix:{sock}"), "del-br", "nope"]), Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "ovs-vsctl: no bridge named nope\n");
    // ovs-appctl: -t with a socket path, output as is, errors with status 2.
    let out = run_bounded(Command::new(l.join("ovs-appctl")).args(["-t", &sock, "fdb/show", "nope"]), Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stderr), format!("no such bridge\novs-appctl: {sock}: server returned an error\n"));
    let out = run_bounded(Command::new(l.join("ovs-appctl")).args(["-t", &sock, "fdb/flush"]), Duration::from_secs(10));
    assert_eq!((out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned()), (Some(0), "table successfully flushed\n".into()));
    let out = run_bounded(Command::new(l.join("ovs-appctl")).arg("--version"), Duration::from_secs(10));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ovs-appctl (Open vSwitch) 3.1.0\n");
    // rvsctl's own appctl verbs and its JSON form of fdb/show.
    let out = run_bounded(Command::new(bin("rvsctl")).args([&format!("--db=unix:{sock}"), "list-commands"]), Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&out.stdout).contains("fdb/show"));
    let _ = std::fs::remove_dir_all(&l);
}

/// A socket that accepts connections and never answers, and its directory.
struct SilentServer {
    dir: PathBuf,
    _listener: UnixListener,
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A socket that accepts connections and never answers; its directory goes on drop.
fn silent_server(tag: &str) -> (PathBuf, SilentServer) {
    let dir = Daemon::new_dir(tag);
    let p = dir.join("rvs.sock");
    let l = UnixListener::bind(&p).unwrap();
    (p, SilentServer { dir, _listener: l })
}

#[test]
fn timeout_ends_with_sigalrm_like_ovs_vsctl() {
    let (p, _l) = silent_server("to");
    let start = Instant::now();
    let out = run_bounded(Command::new(bin("rvsctl")).args([&format!("--db=unix:{}", p.display()), "--timeout=1", "show"]), Duration::from_secs(20));
    assert_eq!(out.status.signal(), Some(libc::SIGALRM), "status {:?}", out.status);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn without_timeout_the_wait_is_bounded_and_says_so() {
    let (p, _l) = silent_server("nt");
    let out = run_bounded(Command::new(bin("rvsctl")).env("RVSCTL_WAIT", "2").args([&format!("--db=unix:{}", p.display()), "show"]), Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("rvsctl: unix:{}: no answer from rvs-vswitchd within 2 s (use --timeout=SECS to wait longer)\n", p.display())
    );
}
