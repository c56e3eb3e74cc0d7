//! Differential tests against the real thing: each script in `tests/vsctl/*.txt` runs
//! line by line against Open vSwitch 3.1 (a private `ovsdb-server`, `ovs-vsctl
//! --no-wait`) and against rvs (a private `rvs-vswitchd` in its own network namespace,
//! `rvsctl` invoked through a link named `ovs-vsctl`), and exit codes, stdout and
//! stderr must be the same after UUIDs are replaced by `<uuid>`.
//!
//! Corpus format: one ovs-vsctl invocation per line (its arguments, in shell syntax);
//! `#` starts a comment line; a line starting with `~ ` compares stdout as a set of
//! lines (for outputs whose row order is hash order in OVS, e.g. `show`, `list`);
//! `~e ` does the same without the `error: …` lines of `show` (for rows the switch
//! cannot run — a bond's member devices do not exist in rvs's namespace, and it says
//! so in each member's `error`, where OVS's side has no ovs-vswitchd to write one); each file starts from an empty database (after `init`). Adding a case is adding a
//! line.
//!
//! What stays out of the corpus, and why: columns only a running switch fills
//! (`statistics`, `error`, `ofport`, `link_state`, … — ovsdb-server alone has no
//! ovs-vswitchd to write them; rvs's are tested in the namespace tests), the
//! Open_vSwitch row's capability columns, `--help` (rvs documents what it supports).
//! ovs-vsctl's timestamped log lines on stderr (warnings) are dropped before comparing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rvs_testkit::*;

/// A private ovsdb-server.
struct Ovs {
    dir: PathBuf,
}

impl Ovs {
    fn start() -> Ovs {
        let dir = Daemon::new_dir("ovs");
        let d = dir.display();
        sh(&format!("ovsdb-tool create {d}/conf.db /usr/share/openvswitch/vswitch.ovsschema"));
        sh(&format!("ovsdb-server {d}/conf.db --remote=punix:{d}/db.sock --unixctl={d}/ovsdb.ctl --pidfile={d}/ovsdb.pid --detach --log-file={d}/ovsdb.log"));
        let o = Ovs { dir };
        let out = o.vsctl("init");
        assert_eq!(out.0, 0, "ovs-vsctl init: {}", out.2);
        o
    }

    fn vsctl(&self, line: &str) -> (i32, String, String) {
        run_line(&format!("ovs-vsctl --db=unix:{}/db.sock --no-wait {line}", self.dir.display()), None)
    }
}

impl Drop for Ovs {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("ovsdb.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
        std::thread::sleep(Duration::from_millis(50));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// rvs-vswitchd in a namespace, rvsctl reachable as `ovs-vsctl`.
struct Rvs {
    _ns: Netns,
    d: Daemon,
    links: PathBuf,
}

impl Rvs {
    fn start() -> Rvs {
        let ns = Netns::new("vd");
        let d = Daemon::start("vd", Some(&ns.name));
        let links = d.dir.join("bin");
        std::fs::create_dir_all(&links).unwrap();
        std::os::unix::fs::symlink(bin("rvsctl"), links.join("ovs-vsctl")).unwrap();
        let r = Rvs { _ns: ns, d, links };
        let out = r.vsctl("init");
        assert_eq!(out.0, 0, "rvsctl init: {}", out.2);
        r
    }

    fn vsctl(&self, line: &str) -> (i32, String, String) {
        run_line(&format!("ovs-vsctl --db=unix:{} --no-wait {line}", self.d.socket().display()), Some(&self.links))
    }
}

fn run_line(cmd: &str, path_first: Option<&Path>) -> (i32, String, String) {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).stdin(Stdio::null());
    if let Some(p) = path_first {
        c.env("PATH", format!("{}:{}", p.display(), std::env::var("PATH").unwrap_or_default()));
    }
    let out = run_bounded(&mut c, Duration::from_secs(30));
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Replaces every UUID (8-4-4-4-12 hex) by `<uuid>`.
fn normalize(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if i + 36 <= b.len() && s.is_char_boundary(i) && s.is_char_boundary(i + 36) && is_uuid(&s[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let ch = s[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Drops ovs-vsctl's own log lines (`2026-…Z|00002|module|WARN|…`): timestamped
/// diagnostics that rvsctl does not print; the error lines that follow are compared.
fn drop_vlog(s: &str) -> String {
    s.lines().filter(|l| !(l.len() > 20 && l.as_bytes()[4] == b'-' && l.as_bytes()[10] == b'T' && l.contains("Z|"))).map(|l| format!("{l}\n")).collect()
}

/// `show` without its `error: …` lines (see `~e ` in the corpus format).
fn drop_error_lines(s: &str) -> String {
    s.lines().filter(|l| !l.trim_start().starts_with("error: ")).map(|l| format!("{l}\n")).collect()
}

fn is_uuid(s: &str) -> bool {
    s.bytes().enumerate().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == b'-' } else { c.is_ascii_hexdigit() })
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(String::from).collect();
    v.sort();
    v
}

/// Runs one script on both; returns the mismatches.
fn run_script(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let (ovs, rvs) = (Ovs::start(), Rvs::start());
    let mut bad = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (unordered, no_errors, args) = match (line.strip_prefix("~ "), line.strip_prefix("~e ")) {
            (Some(a), _) => (true, false, a),
            (_, Some(a)) => (true, true, a),
            _ => (false, false, line),
        };
        let (oc, oo, oe) = ovs.vsctl(args);
        let (rc, ro, re) = rvs.vsctl(args);
        let (mut oo, mut ro) = (normalize(&oo), normalize(&ro));
        if no_errors {
            (oo, ro) = (drop_error_lines(&oo), drop_error_lines(&ro));
        }
        let (oe, re) = (normalize(&drop_vlog(&oe)), normalize(&drop_vlog(&re)));
        let same_out = if unordered { sorted_lines(&oo) == sorted_lines(&ro) } else { oo == ro };
        if oc != rc || !same_out || oe != re {
            bad.push(format!(
                "{}:{}: {args}\n  exit: ovs {oc} rvs {rc}\n  stdout ovs: {oo:?}\n  stdout rvs: {ro:?}\n  stderr ovs: {oe:?}\n  stderr rvs: {re:?}",
                path.display(),
                n + 1
            ));
        }
    }
    bad
}

#[test]
fn rvsctl_matches_ovs_vsctl() {
    require_root();
    require_tools(&["ovsdb-server", "ovsdb-tool", "ovs-vsctl"]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vsctl");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "txt")).collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    let mut bad = Vec::new();
    let mut cases = 0;
    for f in &files {
        cases += std::fs::read_to_string(f).unwrap().lines().filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#')).count();
        bad.extend(run_script(f));
    }
    assert!(bad.is_empty(), "{} of {cases} cases differ from Open vSwitch:\n{}", bad.len(), bad.join("\n"));
    eprintln!("{cases} cases identical to Open vSwitch 3.1");
}

#[test]
fn uuid_normalization() {
    assert_eq!(normalize("a 56a00daa-3c06-4ba8-8428-1f1ce0e6b9d7 b"), "a <uuid> b");
    assert_eq!(normalize("[é]"), "[é]");
}
