//! Black-box tests of rvs-vswitchd and rvsctl on temporary directories: startup and
//! shutdown, durability, bad input on the control socket, concurrent clients.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use rvs_testkit::*;

#[test]
fn rvsctl_without_daemon_fails_fast_with_one_line() {
    let dir = Daemon::new_dir("nod");
    let sock = dir.join("rvs.sock");
    let start = Instant::now();
    let out = run_bounded(Command::new(bin("rvsctl")).arg(format!("--db=unix:{}", sock.display())).arg("show"), Duration::from_secs(20));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err, format!("rvsctl: unix:{}: database connection failed (No such file or directory)\n", sock.display()));
    assert!(start.elapsed() < Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn socket_is_private_and_removed_on_sigterm() {
    let d = Daemon::start("sock", None);
    let mode = std::fs::metadata(d.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pid = d.pid().expect("pidfile");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    d.stop();
    assert!(!d.socket().exists(), "socket removed on SIGTERM");
    assert!(!d.dir.join("rvs-vswitchd.pid").exists(), "pidfile removed on SIGTERM");
    // A second start on the same directories works (no stale socket trouble)...
    let out = d.try_start();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // ...and a third one while the second runs refuses, naming the socket.
    let out = d.try_start();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("is in use by another rvs-vswitchd (pid {})", d.pid().unwrap())), "{err}");
}

#[test]
fn one_daemon_per_database_directory() {
    let d = Daemon::start("lock", None);
    let pid = d.pid().expect("pidfile");
    // Another run directory, the same database directory: refused, naming the holder.
    let run = Daemon::new_dir("lockr");
    let out = run_bounded(
        Command::new(bin("rvs-vswitchd"))
            .arg("--rundir")
            .arg(&run)
            .arg("--dbdir")
            .arg(&d.dir)
            .arg("--detach")
            .arg(format!("--log-file={}", run.join("log").display())),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second daemon started on the same database: {err}");
    assert!(err.contains(&format!("{} is in use by another rvs-vswitchd (pid {pid})", d.dir.join("conf.db").display())), "{err}");
    assert!(!run.join("rvs.sock").exists());
    // The first one's changes still reach the file.
    d.ctl_ok(&["add-br", "brlock"]);
    assert!(std::fs::read_to_string(d.dir.join("conf.db")).unwrap().contains("brlock"));
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn database_and_log_are_not_world_readable() {
    let d = Daemon::start("mode", None);
    d.ctl_ok(&["add-br", "brmode"]);
    let mode = |f: &str| std::fs::metadata(d.dir.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("conf.db"), 0o640);
    assert_eq!(mode("rvs-vswitchd.log"), 0o640);
    assert_eq!(mode("conf.db.lock"), 0o640);
    // A file an older rvs wrote 0644 is 0640 after the next save.
    std::fs::set_permissions(d.dir.join("conf.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    d.ctl_ok(&["add-br", "brmode2"]);
    assert_eq!(mode("conf.db"), 0o640);
}

#[test]
fn temporary_files_of_an_interrupted_save_are_removed_at_startup() {
    let dir = Daemon::new_dir("tmpf");
    for f in ["conf.db.tmp", "conf.db.tmp.12345"] {
        std::fs::write(dir.join(f), b"{ half a database").unwrap();
    }
    let d = Daemon::start_in(&dir, None);
    assert!(!dir.join("conf.db.tmp").exists() && !dir.join("conf.db.tmp.12345").exists());
    assert!(d.log().contains("removed 2 temporary file(s)"), "{}", d.log());
}

#[test]
fn corrupt_database_is_a_startup_error_naming_the_file() {
    let dir = Daemon::new_dir("bad");
    let db = dir.join("conf.db");
    std::fs::write(&db, b"{ this is not a database").unwrap();
    let d = Daemon { dir: dir.clone(), netns: None, keep_dirs: false, args: vec![] };
    let out = d.try_start();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&db.display().to_string()) && err.contains("corrupt"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), b"{ this is not a database", "the file is left alone");
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn read_reply(s: &mut UnixStream) -> Option<String> {
    let mut hdr = [0u8; 4];
    s.read_exact(&mut hdr).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(hdr) as usize];
    s.read_exact(&mut body).ok()?;
    Some(String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn garbage_on_the_control_socket_gets_an_error_and_the_daemon_lives() {
    let d = Daemon::start("garb", None);
    let timeout = Some(Duration::from_secs(5));
    // Not JSON.
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(timeout).unwrap();
    s.write_all(&frame(b"\x00\xffgarbage")).unwrap();
    let r = read_reply(&mut s).expect("an error reply");
    assert!(r.contains("\"error\"") && r.contains("protocol error"), "{r}");
    // An unknown request type.
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(timeout).unwrap();
    s.write_all(&frame(br#"{"type":"format_disk"}"#)).unwrap();
    assert!(read_reply(&mut s).expect("reply").contains("protocol error"));
    // A frame header announcing 4 GiB.
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(timeout).unwrap();
    s.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    assert!(read_reply(&mut s).expect("reply").contains("larger than"));
    // A client that connects and hangs up mid-frame.
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.write_all(&[0, 0, 0, 50, b'{']).unwrap();
    drop(s);
    // Still serving.
    let out = d.ctl(&["list-br"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn unknown_appctl_command_is_an_error_not_a_crash() {
    let d = Daemon::start("apc", None);
    let out = d.ctl(&["nosuch/command"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("\"nosuch/command\" is not a valid command"), "{err}");
    let out = d.ctl(&["fdb/show", "nobridge"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("no such bridge\n"));
    assert!(d.ctl_ok(&["list-commands"]).contains("fdb/show"));
}

#[test]
fn configuration_survives_restart_and_is_durable_on_disk() {
    require_root();
    let ns = Netns::new("dur");
    let d = Daemon::start("dur", Some(&ns.name));
    d.ctl_ok(&["add-br", "br0"]);
    d.ctl_ok(&["add-br", "brlv140", "br0", "140"]);
    d.ctl_ok(&["add-port", "br0", "p1", "tag=10", "--", "set", "Interface", "p1", "type=tap"]);
    d.ctl_ok(&["set", "Bridge", "br0", "other_config:mac-table-size=100"]);
    // Written before the command returned: the file already has it.
    let file = std::fs::read_to_string(d.dir.join("conf.db")).unwrap();
    assert!(file.contains("brlv140") && file.contains("mac-table-size"), "{file}");
    let show = d.ctl_ok(&["show"]);
    // Kill -9: no chance to write anything more.
    let pid = d.pid().unwrap();
    sh(&format!("kill -9 {pid}"));
    wait_until("the daemon to die", Duration::from_secs(5), || !std::path::Path::new(&format!("/proc/{pid}")).exists());
    let out = d.try_start();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(d.ctl_ok(&["show"]), show);
    assert_eq!(d.ctl_ok(&["br-to-parent", "brlv140"]), "br0\n");
    assert_eq!(d.ctl_ok(&["br-to-vlan", "brlv140"]), "140\n");
    assert_eq!(d.ctl_ok(&["get", "Bridge", "br0", "other_config:mac-table-size"]), "\"100\"\n");
    assert!(ns.sh_ok("ip link show p1"), "tap re-created at start");
}

#[test]
fn concurrent_clients_lose_no_updates() {
    require_root();
    let ns = Netns::new("conc");
    let d = Daemon::start("conc", Some(&ns.name));
    d.ctl_ok(&["add-br", "br0"]);
    let sock = d.socket();
    // Ten clients at once, like libvirt starting ten VMs.
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let sock = sock.clone();
            std::thread::spawn(move || {
                let p = format!("cp{i}");
                run_bounded(
                    Command::new(bin("rvsctl")).arg(format!("--db=unix:{}", sock.display())).args([
                        "--timeout=20",
                        "--",
                        "--may-exist",
                        "add-port",
                        "br0",
                        &p,
                        &format!("tag={}", 100 + i),
                        "--",
                        "set",
                        "Interface",
                        &p,
                        "type=tap",
                    ]),
                    Duration::from_secs(30),
                )
            })
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let ports = d.ctl_ok(&["list-ports", "br0"]);
    let expected: String = (0..10).map(|i| format!("cp{i}\n")).collect();
    assert_eq!(ports, expected);
    for i in 0..10 {
        assert_eq!(d.ctl_ok(&["get", "Port", &format!("cp{i}"), "tag"]), format!("{}\n", 100 + i));
    }
}

#[test]
fn a_name_linux_cannot_take_stays_configured_with_an_error() {
    require_root();
    let ns = Netns::new("lng");
    let d = Daemon::start("lng", Some(&ns.name));
    d.ctl_ok(&["add-br", "br0"]);
    let long = "averyverylongportname";
    // As ovs-vsctl: the transaction commits (exit 0), the setup error goes to stderr.
    let out = d.ctl(&["add-port", "br0", long, "--", "set", "Interface", long, "type=tap"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expect = format!("could not open network device {long} (Invalid argument: name is longer than 15 bytes)");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("Error detected while setting up '{long}': {expect}")));
    assert_eq!(d.ctl_ok(&["get", "Interface", long, "error"]), format!("\"{expect}\"\n"));
    assert_eq!(d.ctl_ok(&["list-ports", "br0"]), format!("{long}\n"));
    assert!(d.ctl_ok(&["show"]).contains(&format!("error: \"{expect}\"")));
    // The rest of the bridge is unaffected.
    assert!(ns.sh_ok("ip link show br0"));
}
