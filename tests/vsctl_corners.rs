//! ovs-vsctl in the corners (issue 25), where a line-by-line corpus cannot say it:
//! waits that outlast rvsctl's per-request limit, a daemon that starts after the
//! command, and the `fatal_signal` line OVS prints when `--timeout` fires (its time
//! stamp differs from run to run, so `tests/vsctl_diff.rs` drops such lines; here the
//! line is compared with Open vSwitch's own after the time stamp is masked).

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvs_testkit::*;

/// `2026-12-04T19:00:21Z|00001|` → `<time>|<seq>|`.
fn mask_time(s: &str) -> String {
    s.lines()
        .map(|l| match l.split_once('|') {
            Some((t, rest)) if t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T' => {
                format!("<time>|<seq>|{}\n", rest.split_once('|').map_or(rest, |(_, r)| r))
            }
            _ => format!("{l}\n"),
        })
        .collect()
}

/// A private ovsdb-server and a private rvs-vswitchd, each answering ovs-vsctl's
/// language: `run` gives (stdout, masked stderr, exit code, signal) from both.
struct Both {
    _ns: Netns,
    rvs: Daemon,
    ovs: std::path::PathBuf,
}

impl Both {
    fn start(tag: &str) -> Both {
        require_root();
        require_tools(&["ovsdb-server", "ovsdb-tool", "ovs-vsctl"]);
        let ns = Netns::new(tag);
        let rvs = Daemon::start(tag, Some(&ns.name));
        let ovs = Daemon::new_dir(&format!("{tag}ovs"));
        let o = ovs.display();
        sh(&format!("ovsdb-tool create {o}/conf.db /usr/share/openvswitch/vswitch.ovsschema"));
        sh(&format!("ovsdb-server {o}/conf.db --remote=punix:{o}/db.sock --unixctl={o}/ovsdb.ctl --pidfile={o}/ovsdb.pid --detach --log-file={o}/ovsdb.log"));
        Both { _ns: ns, rvs, ovs }
    }

    fn one(c: &mut Command) -> (String, String, Option<i32>, Option<i32>) {
        let out = run_bounded(c.stdin(Stdio::null()), Duration::from_secs(20));
        let uuids = |s: &[u8]| {
            String::from_utf8_lossy(s)
                .split(|c: char| c.is_whitespace())
                .map(|w| if w.len() == 36 && w.as_bytes()[8] == b'-' { "<uuid>" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        };
        (uuids(&out.stdout), mask_time(&String::from_utf8_lossy(&out.stderr)), out.status.code(), out.status.signal())
    }

    /// Runs `args` on both; panics with both results if they differ.
    fn same(&self, args: &[&str]) -> (String, String) {
        let theirs = Both::one(Command::new("ovs-vsctl").arg(format!("--db=unix:{}/db.sock", self.ovs.display())).arg("--no-wait").args(args));
        let ours = Both::one(Command::new(bin("rvsctl")).arg(format!("--db=unix:{}", self.rvs.socket().display())).arg("--no-wait").args(args));
        assert_eq!(ours, theirs, "ovs-vsctl {args:?}: rvs (left) and OVS (right) differ");
        (theirs.0, theirs.1)
    }
}

impl Drop for Both {
    fn drop(&mut self) {
        let _ = Command::new("sh").arg("-c").arg(format!("kill $(cat {}/ovsdb.pid)", self.ovs.display())).status();
        let _ = std::fs::remove_dir_all(&self.ovs);
    }
}

#[test]
fn timeout_ends_a_wait_with_ovs_fatal_signal_line() {
    let b = Both::start("vc1");
    let (_, err) = b.same(&["--timeout=1", "wait-until", "Bridge", "nosuch"]);
    assert_eq!(err, "<time>|<seq>|fatal_signal|WARN|terminating with signal 14 (Alarm clock)\n");
}

#[test]
fn ovs_warnings_on_stderr() {
    let b = Both::start("vc5");
    b.same(&["init"]);
    let (_, err) = b.same(&["create", "Bridge", "name=x"]);
    assert!(err.contains("without --id option will have no effect"), "{err}");
    let (_, err) = b.same(&["destroy", "Bridge"]);
    assert!(err.contains("either --all or records argument should be specified"), "{err}");
    let (_, err) = b.same(&["--", "--id=@n", "create", "NetFlow", "targets=x"]);
    assert!(err.contains("row id \"@n\" was created but no reference to it was inserted"), "{err}");
    // -v PATTERN for the console, and a row only weakly referred to (a Mirror's
    // output_port): OVS's other wording.
    let pat = "-vPATTERN:console:%c|%p|%m";
    let (_, err) = b.same(&[pat, "--", "create", "Bridge", "name=br9"]);
    assert_eq!(err, "db_ctl_base|WARN|applying \"create\" command to table Bridge without --id option will have no effect\n");
    let (_, err) = b.same(&[
        pat,
        "--",
        "--id=@eth0_iface",
        "create",
        "Interface",
        "name=eth0",
        "--",
        "--id=@eth0",
        "create",
        "Port",
        "name=eth0",
        "interfaces=@eth0_iface",
        "--",
        "--id=@m0",
        "create",
        "Mirror",
        "name=m0",
        "output_port=@eth0",
        "--",
        "--id=@br0",
        "create",
        "Bridge",
        "name=br0",
        "mirrors=@m0",
        "--",
        "set",
        "Open_vSwitch",
        ".",
        "bridges=@br0",
    ]);
    assert!(err.contains("vsctl|WARN|row id \"@eth0\" was created but only a weak reference to it was inserted"), "{err}");
    let (_, err) = b.same(&["-vvsctl:console:err", "--", "--id=@n", "create", "NetFlow", "targets=x"]);
    assert_eq!(err, "", "vsctl's warnings silenced");
    // Controllers and managers are stored without a word, as OVS stores them.
    let (_, err) = b.same(&["set-controller", "br0", "tcp:192.0.2.1:6653", "--", "set-manager", "ptcp:6640"]);
    assert_eq!(err, "");
    let log = b.rvs.log();
    assert!(
        log.contains("bridge br0: controllers are stored but not applied by rvs") && log.contains("managers are stored but not applied by rvs"),
        "rvs-vswitchd says so in its log:\n{log}"
    );
    b.same(&["del-controller", "br0", "--", "del-manager", "--", "del-br", "br0"]);
    // Root tables keep their rows: no warning.
    b.same(&["--", "--id=@q", "create", "QoS", "type=x", "--", "--id=@r", "create", "Queue", "dscp=1"]);
    b.same(&["emer-reset"]);
    b.same(&["list", "Bridge"]);
}

#[test]
fn get_without_columns_warns_only_on_a_terminal() {
    let b = Both::start("vc6");
    b.same(&["init"]);
    b.same(&["add-br", "br0"]);
    // Not a terminal: no warning.
    let (_, err) = b.same(&["get", "Bridge", "br0"]);
    assert_eq!(err, "");
    // On a terminal (script(1) gives the command a pty; its output is the terminal's).
    require_tools(&["script"]);
    let on_tty = |cmd: String| {
        let out = run_bounded(Command::new("script").args(["-qec", &cmd, "/dev/null"]).stdin(Stdio::null()), Duration::from_secs(20));
        mask_time(&String::from_utf8_lossy(&out.stdout).replace('\r', ""))
    };
    let theirs = on_tty(format!("ovs-vsctl --db=unix:{}/db.sock --no-wait get Bridge br0", b.ovs.display()));
    let ours = on_tty(format!("{} --db=unix:{} --no-wait get Bridge br0", bin("rvsctl").display(), b.rvs.socket().display()));
    assert_eq!(theirs, "<time>|<seq>|db_ctl_base|WARN|\"get\" command without row arguments or \"--id\" is possibly erroneous\n");
    assert_eq!(ours, theirs);
    let (theirs, ours) = (
        on_tty(format!("ovs-vsctl --db=unix:{}/db.sock --no-wait get Bridge br0 name", b.ovs.display())),
        on_tty(format!("{} --db=unix:{} --no-wait get Bridge br0 name", bin("rvsctl").display(), b.rvs.socket().display())),
    );
    assert_eq!((ours.as_str(), theirs.as_str()), ("br0\n", "br0\n"), "with a column: no warning");
}

#[test]
fn wait_until_outlasts_the_per_request_limit() {
    require_root();
    let ns = Netns::new("vc2");
    let d = Daemon::start("vc2", Some(&ns.name));
    // Each request may wait 1 s for its answer; the wait itself has no limit.
    let mut waiter = Command::new(bin("rvsctl"));
    waiter.env("RVSCTL_WAIT", "1").arg(format!("--db=unix:{}", d.socket().display()));
    waiter.args(["wait-until", "Open_vSwitch", ".", "external_ids:ready=yes"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let child = waiter.spawn().expect("rvsctl");
    std::thread::sleep(Duration::from_secs(3));
    d.ctl_ok(&["set", "Open_vSwitch", ".", "external_ids:ready=yes"]);
    let out = child.wait_with_output().expect("rvsctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let took = start.elapsed();
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(6), "returned after {took:?}");
}

#[test]
fn retry_waits_for_a_daemon_that_starts_later() {
    require_root();
    let ns = Netns::new("vc3");
    let dir = Daemon::new_dir("vc3");
    let sock = dir.join("rvs.sock");
    let mut early = Command::new(bin("rvsctl"));
    early.arg(format!("--db=unix:{}", sock.display())).args(["--retry", "--timeout=15", "list-br"]);
    let child = early.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("rvsctl");
    std::thread::sleep(Duration::from_secs(2));
    let _d = Daemon::start_in(&dir, Some(&ns.name));
    let out = child.wait_with_output().expect("rvsctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Without --retry, the same race fails at once, as in OVS.
    let missing = dir.join("nosuch.sock");
    let out = run_bounded(Command::new(bin("rvsctl")).arg(format!("--db=unix:{}", missing.display())).arg("list-br"), Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), format!("rvsctl: unix:{}: database connection failed (No such file or directory)\n", missing.display()));
}

#[test]
fn time_stamps_are_masked() {
    assert_eq!(mask_time("2026-12-04T19:00:21Z|00001|fatal_signal|WARN|x\nAlarm clock\n"), "<time>|<seq>|fatal_signal|WARN|x\nAlarm clock\n");
}

#[test]
fn rows_of_tables_rvs_does_not_apply_are_kept_across_a_restart() {
    require_root();
    let ns = Netns::new("vc4");
    let d = Daemon::start("vc4", Some(&ns.name));
    d.ctl_ok(&["add-br", "br0"]);
    d.ctl_ok(&["--", "--id=@nf", "create", "NetFlow", "targets=\"192.0.2.1:5566\"", "--", "set", "Bridge", "br0", "netflow=@nf"]);
    d.ctl_ok(&["--", "--id=@c", "create", "Controller", "target=\"tcp:192.0.2.9:6653\"", "--", "set", "Bridge", "br0", "controller=@c"]);
    d.stop();
    let out = d.try_start();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(d.ctl_ok(&["get", "NetFlow", "br0", "targets"]), "[\"192.0.2.1:5566\"]\n");
    assert_eq!(d.ctl_ok(&["get", "Controller", "br0", "target"]), "\"tcp:192.0.2.9:6653\"\n");
    d.ctl_ok(&["del-br", "br0"]);
    assert_eq!(d.ctl_ok(&["list", "NetFlow"]), "", "garbage-collected with the bridge");
}
