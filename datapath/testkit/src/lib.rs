//! Namespaces, daemons and commands for tests (see the crate docs for the rules).

#![forbid(unsafe_code)]

pub mod libvirt;
pub mod overlay;
pub mod pcap;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Fails the test unless running as root, saying why.
pub fn require_root() {
    // SAFETY-free check: /proc/self/status has the effective uid.
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2).unwrap_or("1").to_string()))
        .unwrap_or_else(|| "1".into());
    assert!(euid == "0", "this test builds network namespaces and needs root (CAP_NET_ADMIN); run the test suite as root (`scripts/test.sh`)");
}

/// A short token unique to this process and call: 4 hex digits of pid + a counter.
/// `tag` (at most 6 bytes) makes names readable: `t{pid:04x}{n}{tag}` stays ≤ 15 bytes.
pub fn unique(tag: &str) -> String {
    assert!(tag.len() <= 6, "tag too long for an interface name");
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("r{:04x}{:02}{tag}", std::process::id() & 0xffff, n % 100)
}

/// The directory holding the workspace's built binaries (target/debug or release).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("RVS_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>
    let dir = exe.parent().and_then(Path::parent).expect("test binary has no parent dir").to_path_buf();
    for b in ["rvs-vswitchd", "rvsctl"] {
        assert!(
            dir.join(b).exists(),
            "{} not found: build the binaries first (`cargo build --workspace --bins`, which scripts/test.sh does)",
            dir.join(b).display()
        );
    }
    dir
}

pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Runs a command, returning its output (stdout+stderr captured), bounded by `timeout`.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return child.wait_with_output().expect("wait_with_output"),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait_with_output");
                panic!(
                    "{cmd:?} did not finish within {timeout:?}; stdout: {} stderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("wait {cmd:?}: {e}"),
        }
    }
}

/// Runs `sh -c script`, panicking with the output if it fails.
pub fn sh(script: &str) -> String {
    let out = run_bounded(Command::new("sh").arg("-c").arg(script), Duration::from_secs(60));
    assert!(out.status.success(), "`{script}` failed ({}):\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `sh -c script`, returning whether it succeeded.
pub fn sh_ok(script: &str) -> bool {
    run_bounded(Command::new("sh").arg("-c").arg(script), Duration::from_secs(60)).status.success()
}

/// Polls `f` every 50 ms until it is true or `timeout` passes; panics with `what`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// A network namespace, deleted (with everything in it) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique(tag);
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        Netns { name }
    }

    /// Runs `f` on a thread that has entered this namespace (setns), and returns its
    /// result; panics in `f` fail the caller.
    pub fn run_in<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            rvs_sys::process::enter_netns(std::os::fd::AsFd::as_fd(&file)).unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// Runs a shell script inside the namespace.
    pub fn sh(&self, script: &str) -> String {
        sh(&format!("ip netns exec {} sh -c '{}'", self.name, script.replace('\'', "'\\''")))
    }

    pub fn sh_ok(&self, script: &str) -> bool {
        sh_ok(&format!("ip netns exec {} sh -c '{}'", self.name, script.replace('\'', "'\\''")))
    }

    /// Pings `addr` from this namespace: `count` echoes, 1 s wait each.
    pub fn ping(&self, addr: &str, count: u32) -> bool {
        self.sh_ok(&format!("ping -c {count} -i 0.2 -W 1 {addr}"))
    }

    /// Pings until one echo comes back or `timeout` passes (ARP and learning settle).
    pub fn ping_eventually(&self, addr: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.sh_ok(&format!("ping -c 1 -W 1 {addr}")) {
                return true;
            }
        }
        false
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).stderr(Stdio::null()).status();
    }
}

/// Open vSwitch's own daemons (ovsdb-server and ovs-vswitchd, Debian's
/// openvswitch-switch) on a fresh database in their own directory, run inside namespace
/// `ns`: the peer rvs is compared with and interoperates with. Both are stopped, and the
/// directory removed, on drop.
pub struct OvsDaemons {
    pub dir: PathBuf,
}

impl OvsDaemons {
    pub fn start(ns: &Netns, tag: &str) -> OvsDaemons {
        let dir = Daemon::new_dir(tag);
        let d = dir.display();
        sh(&format!("ovsdb-tool create {d}/conf.db /usr/share/openvswitch/vswitch.ovsschema"));
        sh(&format!(
            "ip netns exec {} ovsdb-server {d}/conf.db --remote=punix:{d}/db.sock --unixctl={d}/ovsdb.ctl --pidfile={d}/ovsdb.pid --detach --log-file={d}/ovsdb.log",
            ns.name
        ));
        sh(&format!("ovs-vsctl --db=unix:{d}/db.sock --no-wait init"));
        let o = OvsDaemons { dir };
        o.start_vswitchd(ns);
        o
    }

    /// Starts ovs-vswitchd (again, after `exit`: settings read only at its start).
    pub fn start_vswitchd(&self, ns: &Netns) {
        let d = self.dir.display();
        sh(&format!(
            "ip netns exec {} env OVS_RUNDIR={d} ovs-vswitchd unix:{d}/db.sock --pidfile={d}/vs.pid --unixctl={d}/vs.ctl --detach --log-file={d}/vs.log",
            ns.name
        ));
    }

    /// The database as `ovs-vsctl --db` takes it.
    pub fn db(&self) -> String {
        format!("unix:{}/db.sock", self.dir.display())
    }

    /// ovs-vswitchd's control socket, as `ovs-appctl -t` takes it.
    pub fn target(&self) -> String {
        format!("{}/vs.ctl", self.dir.display())
    }
}

impl Drop for OvsDaemons {
    fn drop(&mut self) {
        for p in ["vs.pid", "ovsdb.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(p)) {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node running Open vSwitch: a namespace with its own [`OvsDaemons`], which stop
/// (field order) before the namespace goes.
pub struct OvsNode {
    pub ovs: OvsDaemons,
    pub ns: Netns,
}

impl OvsNode {
    /// A new namespace (`tag`: see [`unique`]) with OVS's daemons started in it.
    pub fn new(tag: &str) -> OvsNode {
        let ns = Netns::new(tag);
        OvsNode { ovs: OvsDaemons::start(&ns, tag), ns }
    }

    /// Runs `ovs-vsctl ARGS` (shell words) against this node's database.
    pub fn vsctl(&self, args: &str) -> String {
        sh(&format!("ovs-vsctl --db={} --timeout=20 {args}", self.ovs.db()))
    }

    /// Runs `ovs-appctl ARGS` against this node's ovs-vswitchd (stderr included).
    pub fn appctl(&self, args: &str) -> String {
        sh(&format!("ovs-appctl -t {} {args} 2>&1", self.ovs.target()))
    }

    /// A VM: a new namespace on a veth whose other end is a port of bridge `br`, with
    /// address `addr`. Its transmit checksum offload is off: OVS's userspace datapath
    /// cannot complete partial checksums.
    pub fn vm(&self, br: &str, addr: &str) -> Netns {
        let (v, p) = (unique("ov"), unique("op"));
        let vm = Netns::new("ovm");
        sh(&format!("ip link add {v} netns {} type veth peer name {p} netns {}", self.ns.name, vm.name));
        self.ns.sh(&format!("ip link set {v} up"));
        self.vsctl(&format!("add-port {br} {v}"));
        vm.sh(&format!("ip link set {p} up && ip addr add {addr} dev {p} && ethtool -K {p} tx off >/dev/null"));
        vm
    }
}

/// A running rvs-vswitchd with its own run and database directories, optionally inside
/// a network namespace (a "node"). Stopped with SIGTERM on drop; its directories are
/// removed unless `keep_dirs` is set.
pub struct Daemon {
    pub dir: PathBuf,
    pub netns: Option<String>,
    pub keep_dirs: bool,
    /// Extra command-line flags, passed on every start.
    pub args: Vec<String>,
}

impl Daemon {
    /// A fresh temp directory for a daemon (not started).
    pub fn new_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvs-test-{}", unique(tag)));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create temp dir");
        d
    }

    /// Starts a daemon on `dir` (run and db directory) inside `netns` (or the current
    /// namespace), waiting until it accepts commands.
    pub fn start_in(dir: &Path, netns: Option<&str>) -> Daemon {
        Daemon::start_in_with(dir, netns, &[])
    }

    /// [`Daemon::start_in`] with extra command-line flags.
    pub fn start_in_with(dir: &Path, netns: Option<&str>, args: &[&str]) -> Daemon {
        let d = Daemon { dir: dir.to_path_buf(), netns: netns.map(String::from), keep_dirs: false, args: args.iter().map(|a| a.to_string()).collect() };
        let out = d.try_start();
        assert!(out.status.success(), "rvs-vswitchd failed to start: {}", String::from_utf8_lossy(&out.stderr));
        d
    }

    pub fn start(tag: &str, netns: Option<&str>) -> Daemon {
        Daemon::start_with(tag, netns, &[])
    }

    /// [`Daemon::start`] with extra command-line flags.
    pub fn start_with(tag: &str, netns: Option<&str>, args: &[&str]) -> Daemon {
        let dir = Daemon::new_dir(tag);
        Daemon::start_in_with(&dir, netns, args)
    }

    /// Runs `rvs-vswitchd --detach` once more on the same directories.
    pub fn try_start(&self) -> Output {
        self.try_start_with(&[])
    }

    /// [`Daemon::try_start`] with flags for this start only (e.g. `--takeover`).
    pub fn try_start_with(&self, extra: &[&str]) -> Output {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(bin("rvs-vswitchd"));
                c
            }
            None => Command::new(bin("rvs-vswitchd")),
        };
        c.arg("--rundir").arg(&self.dir).arg("--dbdir").arg(&self.dir).arg("--detach").arg("--pidfile");
        c.arg(format!("--log-file={}", self.dir.join("rvs-vswitchd.log").display()));
        c.args(&self.args).args(extra);
        run_bounded(&mut c, Duration::from_secs(30))
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("rvs.sock")
    }

    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("rvs-vswitchd.pid")).ok()?.trim().parse().ok()
    }

    /// Stops the daemon with SIGTERM and waits (bounded) for it to exit.
    pub fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let start = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }

    /// Runs rvsctl against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        let mut c = Command::new(bin("rvsctl"));
        c.arg(format!("--db=unix:{}", self.socket().display())).args(args);
        run_bounded(&mut c, Duration::from_secs(30))
    }

    /// Runs rvsctl and returns stdout, panicking with stderr if it fails.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "rvsctl {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The daemon's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rvs-vswitchd.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The taps rvs creates (bridges' internal ports included) are persistent: a
        // daemon in the test's own namespace removes them with its configuration
        // first (in a namespace of the test's, they go with the namespace).
        if self.netns.is_none() && self.pid().is_some() {
            let _ = self.ctl(&["--timeout=10", "clear", "Open_vSwitch", ".", "bridges"]);
        }
        self.stop();
        if !self.keep_dirs {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A "node": a namespace with its own rvs-vswitchd, VMs on its taps.
pub struct Node {
    pub ns: Netns,
    pub d: Daemon,
}

impl Node {
    pub fn new(tag: &str) -> Node {
        Node::with_args(tag, &[])
    }

    /// A node whose daemon gets these extra command-line flags.
    pub fn with_args(tag: &str, args: &[&str]) -> Node {
        require_root();
        let ns = Netns::new(tag);
        let d = Daemon::start_with(tag, Some(&ns.name), args);
        Node { ns, d }
    }

    /// Adds a tap port `name` to `br` with extra `col=val` args and moves it into a new
    /// VM namespace with address `addr`.
    pub fn vm(&self, br: &str, name: &str, args: &[&str], addr: &str) -> Netns {
        let mut a = vec!["add-port", br, name];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--", "set", "Interface", name, "type=tap"]);
        self.d.ctl_ok(&a);
        let vm = Netns::new("vm");
        plug(Some(&self.ns), name, &vm, addr);
        vm
    }

    /// A VM on an existing netdev, as libvirt's taps are: a veth pair `name` (in the
    /// node, added to `br` as a `system` port, reached through AF_PACKET) and
    /// `NAMEp`, moved into a new VM namespace with address `addr`.
    pub fn veth_vm(&self, br: &str, name: &str, addr: &str) -> Netns {
        self.ns.sh(&format!("ip link add {name} type veth peer name {name}p && ip link set {name} up"));
        self.d.ctl_ok(&["add-port", br, name]);
        let vm = Netns::new("vm");
        plug(Some(&self.ns), &format!("{name}p"), &vm, addr);
        vm
    }
}

/// The MAC address of `dev` inside namespace `ns`.
pub fn mac_of(ns: &Netns, dev: &str) -> String {
    ns.sh(&format!("cat /sys/class/net/{dev}/address")).trim().to_string()
}

/// Moves tap/veth `dev` from the node namespace (or the current one) into `vm`, brings
/// it up there and gives it `addr` (with prefix).
pub fn plug(node: Option<&Netns>, dev: &str, vm: &Netns, addr: &str) {
    let from = node.map(|n| format!("ip -n {} ", n.name)).unwrap_or_else(|| "ip ".into());
    sh(&format!("{from}link set {dev} netns {}", vm.name));
    vm.sh(&format!("ip link set {dev} up && ip addr add {addr} dev {dev}"));
}

/// Fails the test unless every tool is on the PATH, naming what to install.
pub fn require_tools(tools: &[&str]) {
    for t in tools {
        assert!(sh_ok(&format!("command -v {t} >/dev/null")), "this test needs `{t}` (install it; .ci/run does)");
    }
}

/// Sends `size` bytes of pseudo-random data over one TCP connection from namespace
/// `client` to `addr:port`, served in namespace `server`, and checks that the server
/// received exactly those bytes (length and SHA-256 compared). The receiving stack
/// verified every TCP checksum on the way. Bounded by 60 s.
pub fn tcp_transfer(server: &Netns, client: &Netns, addr: &str, port: u16, size: usize) -> Result<(), String> {
    let srv = format!(
        "import socket,hashlib\n\
s=socket.socket(socket.AF_INET6 if ':' in '{addr}' else socket.AF_INET)\n\
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
s.bind(('',{port}));s.listen(1);s.settimeout(50)\n\
c,_=s.accept();c.settimeout(50);h=hashlib.sha256();n=0\n\
while True:\n d=c.recv(1<<16)\n if not d: break\n h.update(d);n+=len(d)\n\
print(n,h.hexdigest())\n"
    );
    let cli = format!(
        "import socket,hashlib,random,time\n\
data=random.Random(7).randbytes({size})\n\
for i in range(50):\n try:\n  s=socket.create_connection(('{addr}',{port}),timeout=50);break\n except OSError:\n  time.sleep(0.1)\n\
s.sendall(data);s.shutdown(socket.SHUT_WR);s.recv(1)\n\
print(len(data),hashlib.sha256(data).hexdigest())\n"
    );
    let server_proc = Command::new("ip")
        .args(["netns", "exec", &server.name, "timeout", "60", "python3", "-c", &srv])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3 server: {e}"))?;
    std::thread::sleep(Duration::from_millis(300));
    let c = run_bounded(Command::new("ip").args(["netns", "exec", &client.name, "timeout", "60", "python3", "-c", &cli]), Duration::from_secs(70));
    let s = server_proc.wait_with_output().map_err(|e| e.to_string())?;
    let (sent, got) = (String::from_utf8_lossy(&c.stdout).trim().to_string(), String::from_utf8_lossy(&s.stdout).trim().to_string());
    if sent.is_empty() || sent != got {
        return Err(format!(
            "sent [{sent}] received [{got}]; client stderr: {} server stderr: {}",
            String::from_utf8_lossy(&c.stderr),
            String::from_utf8_lossy(&s.stderr)
        ));
    }
    Ok(())
}
