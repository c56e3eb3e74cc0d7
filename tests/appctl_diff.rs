//! Differential tests where datapath state matters: the scripts in
//! `tests/appctl/*.txt` run against Open vSwitch 3.1 with its switch running
//! (`ovsdb-server` + `ovs-vswitchd`, userspace datapath, in a namespace of their own)
//! and against rvs, through programs named `ovs-vsctl` and `ovs-appctl`, waiting for
//! the switch to apply each change (no `--no-wait`). Exit codes, stdout and stderr must
//! match after normalization: UUIDs → `<uuid>`, each side's control socket path →
//! `<target>`, the "default log directory" hint → its first words.
//!
//! Line format: `vsctl ARGS` or `appctl ARGS` (shell syntax); `#` comments; one
//! database per file. `dpif/show` stays out: its header names the datapath
//! implementation (`netdev@ovs-netdev` vs rvs's own).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rvs_testkit::*;

struct Side {
    /// Extra PATH entry (rvs's program links) or none (OVS's own programs).
    path: Option<PathBuf>,
    db: String,
    target: String,
}

impl Side {
    fn run(&self, line: &str) -> (i32, String, String) {
        let (verb, args) = line.split_once(' ').unwrap_or((line, ""));
        let cmd = match verb {
            "vsctl" => format!("ovs-vsctl --db={} --timeout=20 {args}", self.db),
            "appctl" => format!("ovs-appctl -t {} {args}", self.target),
            other => panic!("bad line verb {other}"),
        };
        let mut c = Command::new("sh");
        c.arg("-c").arg(&cmd).stdin(Stdio::null());
        if let Some(p) = &self.path {
            c.env("PATH", format!("{}:{}", p.display(), std::env::var("PATH").unwrap_or_default()));
        }
        let out = run_bounded(&mut c, Duration::from_secs(40));
        let norm = |b: &[u8]| {
            let s = String::from_utf8_lossy(b).replace(&self.target, "<target>");
            let s = s
                .lines()
                .map(|l| if l.contains("The default log directory is") { "<log directory hint>".to_string() } else { l.to_string() })
                .filter(|l| !(l.len() > 20 && l.as_bytes()[4] == b'-' && l.contains("Z|")))
                .collect::<Vec<_>>()
                .join("\n");
            uuids_out(&s)
        };
        (out.status.code().unwrap_or(-1), norm(&out.stdout), norm(&out.stderr))
    }
}

fn uuids_out(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        if rest.len() >= 36 && rest.is_char_boundary(36) && rest[..36].parse::<rvs_ovsdb::Uuid>().is_ok() {
            out.push_str("<uuid>");
            rest = &rest[36..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Open vSwitch with its userspace switch in a namespace (the daemons stop before the
/// namespace goes).
struct Ovs {
    _daemons: OvsDaemons,
    _ns: Netns,
}

impl Ovs {
    fn start() -> (Ovs, Side) {
        let ns = Netns::new("ov");
        let daemons = OvsDaemons::start(&ns, "ov");
        let side = Side { path: None, db: daemons.db(), target: daemons.target() };
        (Ovs { _daemons: daemons, _ns: ns }, side)
    }
}

fn rvs_side(d: &Daemon) -> Side {
    let links = d.dir.join("bin");
    std::fs::create_dir_all(&links).unwrap();
    for name in ["ovs-vsctl", "ovs-appctl"] {
        let _ = std::os::unix::fs::symlink(bin("rvsctl"), links.join(name));
    }
    Side { path: Some(links), db: format!("unix:{}", d.socket().display()), target: d.socket().display().to_string() }
}

fn run_script(path: &Path) -> (usize, Vec<String>) {
    let (_ovs, o) = Ovs::start();
    let ns = Netns::new("rv");
    let d = Daemon::start("rv", Some(&ns.name));
    let r = rvs_side(&d);
    let mut bad = Vec::new();
    let mut n = 0;
    for (i, raw) in std::fs::read_to_string(path).unwrap().lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        n += 1;
        let (a, b) = (o.run(line), r.run(line));
        if a != b {
            bad.push(format!(
                "{}:{}: {line}\n  exit: ovs {} rvs {}\n  stdout ovs: {:?}\n  stdout rvs: {:?}\n  stderr ovs: {:?}\n  stderr rvs: {:?}",
                path.display(),
                i + 1,
                a.0,
                b.0,
                a.1,
                b.1,
                a.2,
                b.2
            ));
        }
    }
    (n, bad)
}

#[test]
fn rvs_vswitchd_answers_like_ovs_vswitchd() {
    require_root();
    require_tools(&["ovsdb-server", "ovsdb-tool", "ovs-vsctl", "ovs-vswitchd", "ovs-appctl"]);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/appctl");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "txt")).collect();
    files.sort();
    let (mut cases, mut bad) = (0, Vec::new());
    for f in &files {
        let (n, b) = run_script(f);
        cases += n;
        bad.extend(b);
    }
    assert!(cases > 0);
    assert!(bad.is_empty(), "{} of {cases} cases differ from Open vSwitch:\n{}", bad.len(), bad.join("\n"));
}
