//! Real guests for the VM tests (issue 24): the guest image, the choice between KVM and
//! TCG, a QEMU launcher and the guest agent.
//!
//! * [`image`] builds (once, cached under `target/vm/`) the kernel and initramfs of
//!   `scripts/vm-image.sh` from Debian's packages.
//! * [`accel`] says whether KVM really works here: a short probe boot with `-accel kvm`
//!   under a strict timeout (on virtual machines whose vCPU lacks svm/vmx, `/dev/kvm`
//!   exists but a guest hangs), else TCG. `RVS_VM_ACCEL=kvm|tcg` forces one.
//! * [`Qemu`] is one guest process: its NIC on an existing tap (`-netdev tap,ifname=…,
//!   script=no,downscript=no`, as libvirt hands QEMU a tap it made), its console in a
//!   file, its agent on a virtio-serial port. Killed, and its files removed, on drop.
//! * [`Agent`] runs shell commands in a guest through that port (the guest's `/init`
//!   serves it; protocol in `scripts/vm-image.sh`); libvirt's guests use it too.
//!
//! Every wait here is bounded; nothing sleeps without a deadline.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{bin_dir, run_bounded, sh_ok, unique};

/// The guest kernel and initramfs.
#[derive(Debug, Clone)]
pub struct GuestImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The package versions the image was built from (`versions` beside them).
    pub versions: String,
}

/// The repository's root (where `scripts/` is).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

/// The cache directory: `target/` (the parent of the binaries' profile directory).
fn target_dir() -> PathBuf {
    bin_dir().parent().expect("target dir").to_path_buf()
}

/// Builds the guest image once per process (the script itself caches across runs by
/// package versions) and returns it.
pub fn image() -> &'static GuestImage {
    static IMG: OnceLock<GuestImage> = OnceLock::new();
    IMG.get_or_init(|| {
        let script = repo_root().join("scripts/vm-image.sh");
        let out = run_bounded(Command::new("bash").arg(&script).arg(target_dir()), Duration::from_secs(600));
        assert!(out.status.success(), "{} failed ({}): {}", script.display(), out.status, String::from_utf8_lossy(&out.stderr));
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        GuestImage { kernel: dir.join("vmlinuz"), initrd: dir.join("initrd.img"), versions: std::fs::read_to_string(dir.join("versions")).unwrap_or_default() }
    })
}

/// How QEMU runs guests here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// QEMU's `-accel` value.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// libvirt's `<domain type=…>`.
    pub fn libvirt_type(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "qemu",
        }
    }
}

/// KVM when a probe boot with it reaches the guest's init within 15 s, TCG otherwise;
/// printed once per process. The answer is cached in `target/vm/` for this boot of the
/// machine (keyed by the kernel's boot id), so each test binary does not probe again.
pub fn accel() -> Accel {
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    *ACCEL.get_or_init(|| {
        let a = match std::env::var("RVS_VM_ACCEL").as_deref() {
            Ok("kvm") => Accel::Kvm,
            Ok("tcg") => Accel::Tcg,
            _ => probe_cached(),
        };
        eprintln!("VM tests: guests run under {} (QEMU accelerator {})", if a == Accel::Kvm { "KVM" } else { "TCG, software emulation" }, a.qemu_name());
        a
    })
}

fn probe_cached() -> Accel {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let cache = target_dir().join("vm").join(format!("accel-{}", boot.trim()));
    match std::fs::read_to_string(&cache).as_deref() {
        Ok("kvm") => return Accel::Kvm,
        Ok("tcg") => return Accel::Tcg,
        _ => {}
    }
    let a = probe_kvm();
    let _ = std::fs::write(&cache, a.qemu_name());
    a
}

/// Boots the image with KVM, no NIC, running `true` and powering off; KVM only if the
/// guest said it ran within the deadline. A hung probe is killed.
fn probe_kvm() -> Accel {
    if !Path::new("/dev/kvm").exists() {
        return Accel::Tcg;
    }
    let img = image();
    let dir = std::env::temp_dir().join(format!("rvs-vm-{}", unique("probe")));
    std::fs::create_dir_all(&dir).expect("probe dir");
    let console = dir.join("console.log");
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-machine", "q35", "-accel", "kvm", "-m", "256", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(&img.kernel)
        .arg("-initrd")
        .arg(&img.initrd)
        .args(["-append", "console=ttyS0 quiet rvs.run=true rvs.poweroff=1"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let ok = match c.spawn() {
        Ok(child) => {
            let mut g = KillOnDrop(child);
            let start = Instant::now();
            let mut ok = false;
            while start.elapsed() < Duration::from_secs(15) {
                if std::fs::read_to_string(&console).unwrap_or_default().contains("RVS-RUN-RC 0") {
                    ok = true;
                    break;
                }
                if let Ok(Some(_)) = g.0.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = g.0.kill();
            let _ = g.0.wait();
            ok
        }
        Err(_) => false,
    };
    let _ = std::fs::remove_dir_all(&dir);
    if ok { Accel::Kvm } else { Accel::Tcg }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fails the test unless QEMU and the image's tools are installed, naming the packages.
pub fn require_vm_tools() {
    crate::require_root();
    for (t, pkg) in [("qemu-system-x86_64", "qemu-system-x86"), ("busybox", "busybox-static"), ("iperf3", "iperf3"), ("apt-get", "apt")] {
        assert!(sh_ok(&format!("command -v {t} >/dev/null")), "the VM tests need `{t}` (package {pkg}; scripts/prereqs.sh test installs it)");
    }
}

/// The kernel command line of a guest with address `ip` (with prefix) and MAC `mac`.
pub fn guest_cmdline(ip: &str, mac: &str) -> String {
    format!("console=ttyS0 quiet panic=-1 rvs.ip={ip} rvs.mac={mac}")
}

/// A locally administered MAC, unique to this process and call: 52:54:00 is QEMU's
/// prefix; the rest is the pid and a counter.
pub fn unique_mac() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::process::id();
    format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", (p >> 8) & 0xff, p & 0xff, (n >> 8) & 0xff, n & 0xff)
}

/// One QEMU guest with its NIC on an existing tap. Killed on drop, its directory (console
/// log, agent socket) removed.
pub struct Qemu {
    pub name: String,
    pub mac: String,
    pub dir: PathBuf,
    child: Option<Child>,
    agent: Option<Agent>,
}

impl Qemu {
    /// Starts a guest (inside namespace `netns` when given, where the tap is) whose NIC
    /// is the existing tap `tap`, with MAC `mac` and address `ip`.
    pub fn on_tap(netns: Option<&str>, tap: &str, mac: &str, ip: &str) -> Qemu {
        let netdev = format!("tap,id=n0,ifname={tap},script=no,downscript=no");
        Qemu::launch(netns, 1, &[], &netdev, &format!("virtio-net-pci,netdev=n0,mac={mac}"), mac, ip)
    }

    /// Starts a guest whose NIC is a vhost-user device on socket `sock`: QEMU listens
    /// there when `qemu_listens` (rvs's `dpdkvhostuserclient`), else it connects and
    /// reconnects every second (rvs's `dpdkvhostuser`). Its memory is a shared memfd, as
    /// vhost-user needs; `vectors=0` (legacy interrupts) because QEMU 7.2 under TCG
    /// brings no vhost-user device up with MSI-X.
    pub fn on_vhost_user(sock: &Path, qemu_listens: bool, mac: &str, ip: &str) -> Qemu {
        Qemu::on_vhost_user_queues(sock, qemu_listens, mac, ip, 1)
    }

    /// As [`Qemu::on_vhost_user`], with `pairs` queue pairs (`queues=`, `mq=on`) and as
    /// many guest CPUs, so that the guest's driver enables every pair and maps CPU `k`
    /// to transmit queue `k`.
    pub fn on_vhost_user_queues(sock: &Path, qemu_listens: bool, mac: &str, ip: &str, pairs: u8) -> Qemu {
        let chardev = format!("socket,id=c0,path={}{}", sock.display(), if qemu_listens { ",server=on,wait=off" } else { ",reconnect=1" });
        let mem = ["-object", "memory-backend-memfd,id=mem,size=256M,share=on", "-numa", "node,memdev=mem", "-chardev", &chardev];
        let (netdev, mq) =
            if pairs > 1 { (format!("vhost-user,id=n0,chardev=c0,queues={pairs}"), ",mq=on") } else { ("vhost-user,id=n0,chardev=c0".to_string(), "") };
        Qemu::launch(None, pairs, &mem, &netdev, &format!("virtio-net-pci,netdev=n0,mac={mac},vectors=0{mq}"), mac, ip)
    }

    /// Starts a guest with `smp` CPUs, `extra` arguments, NIC backend `netdev` and NIC
    /// `device`.
    fn launch(netns: Option<&str>, smp: u8, extra: &[&str], netdev: &str, device: &str, mac: &str, ip: &str) -> Qemu {
        let img = image();
        let name = unique("q");
        let dir = std::env::temp_dir().join(format!("rvs-vm-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("guest dir");
        let mut c = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "qemu-system-x86_64"]);
                c
            }
            None => Command::new("qemu-system-x86_64"),
        };
        c.args(["-name", &name, "-machine", "q35", "-accel", accel().qemu_name(), "-m", "256", "-smp", &smp.to_string()])
            .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
            .args(extra)
            .arg("-kernel")
            .arg(&img.kernel)
            .arg("-initrd")
            .arg(&img.initrd)
            .args(["-append", &guest_cmdline(ip, mac)])
            .arg("-serial")
            .arg(format!("file:{}", dir.join("console.log").display()))
            .args(["-netdev", netdev])
            .args(["-device", device])
            .args(["-device", "virtio-serial-pci,id=vs0"])
            .arg("-chardev")
            .arg(format!("socket,id=ag,path={},server=on,wait=off", dir.join("agent.sock").display()))
            .args(["-device", "virtserialport,bus=vs0.0,chardev=ag,name=rvs.agent"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("qemu.err")).expect("qemu.err"));
        let child = c.spawn().unwrap_or_else(|e| panic!("spawn qemu-system-x86_64: {e}"));
        Qemu { name, mac: mac.to_string(), dir, child: Some(child), agent: None }
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join("console.log")).unwrap_or_default()
    }

    /// What QEMU printed on stderr, and the console: for failure messages.
    pub fn diagnostics(&self) -> String {
        format!("--- {} qemu stderr:\n{}--- console:\n{}", self.name, std::fs::read_to_string(self.dir.join("qemu.err")).unwrap_or_default(), self.console())
    }

    /// Waits (bounded) until the guest's init reports its NIC up and its agent answers.
    pub fn wait_ready(&mut self, timeout: Duration) -> &Agent {
        let start = Instant::now();
        wait_console(&self.dir.join("console.log"), "RVS-READY", timeout, || self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_)))))
            .unwrap_or_else(|e| panic!("guest {} not ready: {e}\n{}", self.name, self.diagnostics()));
        let c = self.console();
        assert!(!c.contains("RVS-ERROR"), "guest {} reported an error:\n{}", self.name, self.diagnostics());
        let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_secs(10));
        let agent = Agent::connect(&self.dir.join("agent.sock"), left).unwrap_or_else(|e| panic!("guest {} agent: {e}\n{}", self.name, self.diagnostics()));
        self.agent = Some(agent);
        self.agent.as_ref().expect("agent")
    }

    /// Kills the QEMU process (SIGKILL, as a crash would) and waits for it; the guest's
    /// files stay until drop.
    pub fn kill(&mut self) {
        self.agent = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The agent (after [`Qemu::wait_ready`]).
    pub fn agent(&self) -> &Agent {
        self.agent.as_ref().expect("call wait_ready first")
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.agent = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until file `path` contains `pat`, at most `timeout`; `dead` says the guest is gone.
pub fn wait_console(path: &Path, pat: &str, timeout: Duration, mut dead: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::fs::read_to_string(path).unwrap_or_default().contains(pat) {
            return Ok(());
        }
        if dead() {
            return Err(format!("the guest exited before printing {pat:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("no {pat:?} on the console within {timeout:?}"))
}

/// The host's end of a guest's agent: a connection to the virtio-serial port's socket.
/// Each command is one line `ID COMMAND`; the guest answers with its output and
/// `@@RVS-END ID RC`.
pub struct Agent {
    reader: std::sync::Mutex<BufReader<UnixStream>>,
    next: AtomicU32,
}

/// What a command printed (stdout and stderr together) and its exit status.
#[derive(Debug, Clone)]
pub struct AgentOutput {
    pub rc: i32,
    pub out: String,
}

impl AgentOutput {
    pub fn ok(&self) -> bool {
        self.rc == 0
    }
}

impl Agent {
    /// Connects to the socket at `path` and waits (bounded) until the guest answers.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Agent, String> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > timeout => return Err(format!("connect {}: {e}", path.display())),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let a = Agent { reader: std::sync::Mutex::new(BufReader::new(stream)), next: AtomicU32::new(1) };
        // Until the guest opens its port, what is written may be lost: ask until it answers.
        while start.elapsed() < timeout {
            if let Ok(o) = a.try_run("echo agent-up", Duration::from_secs(2))
                && o.out.contains("agent-up")
            {
                return Ok(a);
            }
        }
        Err(format!("the guest agent at {} did not answer within {timeout:?}", path.display()))
    }

    /// Runs `cmd` (one line of shell) in the guest; panics if it does not finish within
    /// `timeout`.
    pub fn run(&self, cmd: &str, timeout: Duration) -> AgentOutput {
        self.try_run(cmd, timeout).unwrap_or_else(|e| panic!("guest command `{cmd}`: {e}"))
    }

    /// Runs `cmd` in the guest and panics unless it succeeds; returns its output.
    pub fn ok(&self, cmd: &str) -> String {
        let o = self.run(cmd, Duration::from_secs(60));
        assert!(o.ok(), "guest command `{cmd}` failed ({}):\n{}", o.rc, o.out);
        o.out
    }

    pub fn try_run(&self, cmd: &str, timeout: Duration) -> Result<AgentOutput, String> {
        assert!(!cmd.contains('\n'), "one line per command");
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut r = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        r.get_mut().write_all(format!("{id} {cmd}\n").as_bytes()).map_err(|e| format!("write: {e}"))?;
        let deadline = Instant::now() + timeout;
        let end = format!("@@RVS-END {id} ");
        let mut out = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no answer within {timeout:?}; so far: {out}"));
            }
            r.get_ref().set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) => return Err("the guest's agent socket closed".into()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Err(format!("no answer within {timeout:?}; so far: {out}"));
                }
                Err(e) => return Err(format!("read: {e}")),
            }
            if let Some(rc) = line.strip_prefix(&end) {
                return Ok(AgentOutput { rc: rc.trim().parse().unwrap_or(-1), out });
            }
            // Answers to earlier commands that timed out are skipped.
            if line.starts_with("@@RVS-END ") {
                out.clear();
                continue;
            }
            out.push_str(&line);
        }
    }

    /// Pings `addr` from the guest: `count` echoes, one per 0.2 s, 1 s wait each.
    pub fn ping(&self, addr: &str, count: u32) -> bool {
        self.run(&format!("ping -c {count} -i 0.2 -W 1 {addr}"), Duration::from_secs(u64::from(count) + 15)).ok()
    }

    /// Pings until one echo comes back or `timeout` passes (ARP and learning settle).
    pub fn ping_eventually(&self, addr: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.run(&format!("ping -c 1 -W 1 {addr}"), Duration::from_secs(15)).ok() {
                return true;
            }
        }
        false
    }
}
