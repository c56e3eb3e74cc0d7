//! The Debian packages as an operator meets them: `scripts/package.sh` builds them
//! (lintian without errors), their file lists are what the README promises, they
//! install on this machine, the unit passes `systemd-analyze verify`, the daemon
//! started as the unit's `ExecStart` (systemd is not PID 1 here) reports READY=1 to
//! `$NOTIFY_SOCKET` once its socket accepts commands, `ovs-vsctl` is rvsctl, a reload
//! as the unit's `ExecReload` starts a daemon that takes over and names itself the
//! main process (`MAINPID=`) while the old one exits quietly, and
//! stop, remove and purge leave nothing behind: no files, no diversion, Open vSwitch's
//! own `ovs-vsctl` back in place when it is installed. Needs root; installs for real.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvs_testkit::*;

const RVS_FILES: &[&str] = &[
    "./usr/sbin/rvs-vswitchd",
    "./usr/bin/rvsctl",
    "./lib/systemd/system/rvs-vswitchd.service",
    "./etc/default/rvs",
    "./etc/logrotate.d/rvs",
    "./etc/NetworkManager/conf.d/90-rvs.conf",
    "./usr/share/man/man8/rvs-vswitchd.8.gz",
    "./usr/share/man/man8/rvsctl.8.gz",
    "./usr/share/bash-completion/completions/rvsctl",
    "./usr/share/doc/rvs/copyright",
    "./usr/share/doc/rvs/changelog.gz",
];

/// What the package puts on the machine or makes at run time, all gone after purge.
const LEFTOVERS: &[&str] = &[
    "/usr/sbin/rvs-vswitchd",
    "/usr/bin/rvsctl",
    "/lib/systemd/system/rvs-vswitchd.service",
    "/etc/default/rvs",
    "/etc/logrotate.d/rvs",
    "/etc/NetworkManager/conf.d/90-rvs.conf",
    "/usr/share/doc/rvs",
    "/var/lib/rvs",
    "/var/log/rvs",
    "/run/rvs",
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command, secs: u64) -> (bool, String) {
    let out = run_bounded(cmd, Duration::from_secs(secs));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Removes both packages and stops the daemon, also when the test fails half-way.
struct Installed {
    daemon: Option<Child>,
    /// Daemons that are not our children (started with --detach).
    detached: Vec<u32>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in &self.detached {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        let _ = run(Command::new("dpkg").args(["--purge", "rvs-ovs-compat", "rvs"]), 120);
    }
}

fn installed(pkg: &str) -> bool {
    run(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]), 30).1.contains("install ok installed")
}

#[test]
fn package_builds_installs_runs_and_purges_cleanly() {
    require_root();
    assert!(
        !installed("rvs") && !installed("rvs-ovs-compat"),
        "an rvs package is already installed on this machine: this test installs and purges its own; remove it first"
    );
    assert!(sh("pidof ovs-vswitchd || true").trim().is_empty(), "an ovs-vswitchd is running: the package refuses to install beside it");

    // Build (the debug binaries the test run has, to keep the test quick).
    let (ok, out) = run(Command::new("bash").arg(repo().join("scripts/package.sh")).env("RVS_PKG_PROFILE", "debug").current_dir(repo()), 600);
    assert!(ok, "scripts/package.sh failed:\n{out}");
    let debs: Vec<String> = out.lines().filter(|l| l.ends_with(".deb")).map(|l| repo().join(l).display().to_string()).collect();
    assert_eq!(debs.len(), 2, "two packages expected:\n{out}");
    let (rvs, compat) = (&debs[0], &debs[1]);
    assert!(rvs.contains("/rvs_") && compat.contains("/rvs-ovs-compat_"), "{debs:?}");
    assert!(!out.contains("\nE: "), "lintian errors:\n{out}");

    let (ok, list) = run(Command::new("dpkg-deb").args(["-c", rvs]), 30);
    assert!(ok, "{list}");
    for f in RVS_FILES {
        assert!(list.lines().any(|l| l.split_whitespace().nth(5) == Some(f)), "{f} missing from the rvs package:\n{list}");
    }
    let (_, list) = run(Command::new("dpkg-deb").args(["-c", compat]), 30);
    for f in ["./usr/bin/ovs-vsctl -> rvsctl", "./usr/bin/ovs-appctl -> rvsctl"] {
        assert!(list.contains(f), "{f} missing from rvs-ovs-compat:\n{list}");
    }
    let (_, conffiles) = run(Command::new("dpkg-deb").args(["-I", rvs, "conffiles"]), 30);
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), ["/etc/NetworkManager/conf.d/90-rvs.conf", "/etc/default/rvs", "/etc/logrotate.d/rvs"]);

    // Install.
    let ovs_vsctl_before = std::fs::symlink_metadata("/usr/bin/ovs-vsctl").ok().map(|m| m.file_type().is_symlink());
    let mut guard = Installed { daemon: None, detached: Vec::new() };
    let (ok, out) = run(Command::new("dpkg").args(["-i", rvs, compat]), 180);
    assert!(ok, "dpkg -i failed:\n{out}");
    assert_eq!(std::fs::read_link("/usr/bin/ovs-vsctl").ok().as_deref(), Some(Path::new("rvsctl")), "ovs-vsctl is not rvsctl after installing rvs-ovs-compat");
    if ovs_vsctl_before == Some(false) {
        assert!(Path::new("/usr/bin/ovs-vsctl.openvswitch").exists(), "Open vSwitch's ovs-vsctl was not kept aside");
    }
    let (ok, out) = run(Command::new("systemd-analyze").args(["verify", "--man=no", "/lib/systemd/system/rvs-vswitchd.service"]), 60);
    let ours: Vec<&str> = out.lines().filter(|l| l.contains("rvs-vswitchd.service")).collect();
    assert!(ok && ours.is_empty(), "systemd-analyze verify:\n{out}");
    let page = sh("zcat /usr/share/man/man8/rvsctl.8.gz");
    assert!(page.contains("add\\-br") && page.contains("fdb/show"), "rvsctl(8) lacks the commands of --help:\n{page}");
    let page = sh("zcat /usr/share/man/man8/rvs-vswitchd.8.gz");
    assert!(page.contains("rundir") && page.contains("plain"), "rvs-vswitchd(8) lacks the flags of --help:\n{page}");

    // Start as the unit's ExecStart would, in a namespace of its own (the daemon makes
    // bridges' internal ports), with a NOTIFY_SOCKET to see READY=1.
    let unit = std::fs::read_to_string("/lib/systemd/system/rvs-vswitchd.service").unwrap();
    let exec = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart").replace("$RVS_VSWITCHD_OPTS", "");
    let argv: Vec<&str> = exec.split_whitespace().collect();
    let ns = Netns::new("pkg");
    let dir = Daemon::new_dir("pkg");
    let notify = dir.join("notify");
    let rx = UnixDatagram::bind(&notify).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(&argv)
        .env("NOTIFY_SOCKET", &notify)
        .env_remove("RVS_RUNDIR")
        .env_remove("RVS_DBDIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rvs-vswitchd");
    guard.daemon = Some(child);
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).expect("no READY=1 from rvs-vswitchd within 20 s");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.starts_with("READY=1\n"), "{msg}");
    // READY=1 means commands are accepted now, with no retry.
    let (ok, out) = run(Command::new("ovs-vsctl").args(["--timeout=5", "add-br", "pkgbr0"]), 20);
    assert!(ok, "ovs-vsctl add-br through the installed package: {out}");
    let (ok, out) = run(Command::new("rvsctl").args(["--timeout=5", "show"]), 20);
    assert!(ok && out.contains("Bridge pkgbr0"), "rvsctl show: {out}");
    assert!(Path::new("/var/lib/rvs/conf.db").exists(), "no /var/lib/rvs/conf.db");
    assert!(Path::new("/var/log/rvs/rvs-vswitchd.log").exists(), "no /var/log/rvs/rvs-vswitchd.log");

    // Reload as the unit's ExecReload would (a package upgrade): a new daemon takes
    // over, tells the service manager it is the main process now (MAINPID= with
    // READY=1), and the old one exits without a STOPPING=1.
    let reload = unit.lines().find_map(|l| l.strip_prefix("ExecReload=")).expect("ExecReload").replace("$RVS_VSWITCHD_OPTS", "");
    let argv: Vec<&str> = reload.split_whitespace().collect();
    let old_pid = guard.daemon.as_ref().unwrap().id();
    let (ok, out) = run(Command::new("ip").args(["netns", "exec", &ns.name]).args(&argv).env("NOTIFY_SOCKET", &notify), 60);
    assert!(ok, "ExecReload failed: {out}");
    let n = rx.recv(&mut buf).expect("no READY=1 from the new daemon within 20 s");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    let new_pid: u32 = msg.lines().find_map(|l| l.strip_prefix("MAINPID=")).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no MAINPID= in {msg:?}"));
    guard.detached.push(new_pid);
    assert!(msg.starts_with("READY=1\n") && new_pid != old_pid, "{msg}");
    let old = guard.daemon.as_mut().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(old.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(old.try_wait().unwrap().is_some_and(|s| s.success()), "the old daemon did not exit after the takeover");
    guard.daemon = None;
    let (ok, out) = run(Command::new("rvsctl").args(["--timeout=5", "show"]), 20);
    assert!(ok && out.contains("Bridge pkgbr0"), "rvsctl show after the reload: {out}");

    // Stop: STOPPING=1, then the process ends.
    let _ = Command::new("kill").arg(new_pid.to_string()).status();
    let n = rx.recv(&mut buf).expect("no STOPPING=1 within 20 s");
    assert_eq!(&buf[..n], b"STOPPING=1", "the old daemon said STOPPING=1 after the takeover, or the new one did not");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{new_pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!Path::new(&format!("/proc/{new_pid}")).exists(), "rvs-vswitchd did not stop on SIGTERM");

    // Purge: nothing left.
    let (ok, out) = run(Command::new("dpkg").args(["--purge", "rvs-ovs-compat", "rvs"]), 120);
    assert!(ok, "dpkg --purge failed:\n{out}");
    for p in LEFTOVERS {
        assert!(!Path::new(p).exists(), "{p} is still there after purge");
    }
    assert!(!run(Command::new("dpkg-divert").arg("--list"), 30).1.contains("rvs-ovs-compat"), "a diversion of rvs-ovs-compat is left");
    match ovs_vsctl_before {
        Some(false) => assert!(
            std::fs::symlink_metadata("/usr/bin/ovs-vsctl").map(|m| m.file_type().is_file()).unwrap_or(false),
            "Open vSwitch's ovs-vsctl did not come back"
        ),
        _ => assert!(std::fs::symlink_metadata("/usr/bin/ovs-vsctl").is_err() || ovs_vsctl_before == Some(true), "an ovs-vsctl is left"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}
