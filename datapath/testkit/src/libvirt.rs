//! A private libvirtd for the VM tests (issue 24, part 2): libvirt drives rvs as it
//! drives Open vSwitch, through the program `ovs-vsctl` on its PATH, which is rvsctl.
//!
//! Debian's libvirt 9.0 runs as root in "system" mode, whose directories are fixed at
//! build time (`/etc/libvirt`, `/run/libvirt`, `/var/lib/libvirt`, …) — no option moves
//! them. So libvirtd runs inside the node's network namespace through `ip netns exec`,
//! which also gives it a private mount namespace, and there the test's own directories
//! are bind-mounted over libvirt's (a tmpfs over `/run` first, where `/run/libvirt` may
//! not exist). Nothing of the host's libvirt setup is read or changed, and no systemd
//! is needed (these machines do not run it as PID 1): libvirtd is started by hand, in
//! the foreground, the monolithic daemon rather than virtqemud + virtnetworkd, since one
//! process is simpler to start, wait for and stop. `qemu.conf` makes QEMU run as root
//! with no security driver, no cgroups, no private /dev and its output in a file
//! (no virtlogd).
//!
//! `virsh` runs on the host against the daemon's socket in the test's directory. On
//! drop every domain is destroyed, libvirtd stopped (SIGTERM, then SIGKILL after 2 s),
//! any QEMU it left killed, and the directory removed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::vm::{Agent, accel, guest_cmdline, image, unique_mac, wait_console};
use crate::{Daemon, bin, run_bounded, unique};

pub struct Libvirtd {
    pub dir: PathBuf,
    child: Option<Child>,
}

const QEMU_CONF: &str = r#"user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
"#;

const LIBVIRTD_CONF: &str = r#"unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:stderr"
"#;

impl Libvirtd {
    /// Starts libvirtd in the namespace `netns`, with rvsctl as `ovs-vsctl` on its PATH
    /// talking to `rvs` (through `RVS_RUNDIR`, which libvirt passes on to the commands
    /// it runs). Waits (bounded) until `virsh` gets an answer.
    pub fn start(netns: &str, rvs: &Daemon) -> Libvirtd {
        crate::require_tools(&["libvirtd", "virsh"]);
        let dir = std::env::temp_dir().join(format!("rvs-lv-{}", unique("lv")));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["etc/qemu/networks", "etc/nwfilter", "run", "lib", "cache", "log", "bin"] {
            std::fs::create_dir_all(dir.join(d)).expect("libvirt dirs");
        }
        std::fs::write(dir.join("etc/qemu.conf"), QEMU_CONF).expect("qemu.conf");
        // Its own host UUID: libvirt refuses to migrate between daemons with the same one
        // ("the same host"), and every daemon on this machine would read the same DMI.
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let host_uuid = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            std::process::id(),
            nanos & 0xffff,
            (nanos >> 16) & 0xfff,
            (nanos >> 28) & 0xfff,
            (nanos >> 40) & 0xffff_ffff_ffff
        );
        std::fs::write(dir.join("etc/libvirtd.conf"), format!("{LIBVIRTD_CONF}host_uuid = \"{host_uuid}\"\n")).expect("libvirtd.conf");
        std::os::unix::fs::symlink(bin("rvsctl"), dir.join("bin/ovs-vsctl")).expect("ovs-vsctl symlink");
        let d = dir.display();
        let script = format!(
            "set -e; mount -t tmpfs rvs-run /run; mkdir -p /run/libvirt; \
             mount --bind {d}/run /run/libvirt; mount --bind {d}/etc /etc/libvirt; \
             mount --bind {d}/lib /var/lib/libvirt; mount --bind {d}/cache /var/cache/libvirt; \
             mount --bind {d}/log /var/log/libvirt; \
             exec libvirtd --pid-file {d}/libvirtd.pid --config {d}/etc/libvirtd.conf"
        );
        let path = format!("{d}/bin:{}", std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()));
        let log = std::fs::File::create(dir.join("libvirtd.out")).expect("libvirtd.out");
        let child = Command::new("ip")
            .args(["netns", "exec", netns, "sh", "-c", &script])
            .env("PATH", path)
            .env("RVS_RUNDIR", &rvs.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn libvirtd: {e}"));
        let mut l = Libvirtd { dir, child: Some(child) };
        let start = Instant::now();
        loop {
            if l.dir.join("run/libvirt-sock").exists() && l.virsh(&["version"]).status.success() {
                break;
            }
            let exited = l.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            assert!(!exited && start.elapsed() < Duration::from_secs(60), "libvirtd did not come up (exited: {exited}):\n{}", l.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        l
    }

    pub fn uri(&self) -> String {
        format!("qemu:///system?socket={}", self.dir.join("run/libvirt-sock").display())
    }

    /// Runs virsh against this daemon (bounded: 120 s).
    pub fn virsh(&self, args: &[&str]) -> Output {
        run_bounded(Command::new("virsh").arg("-c").arg(self.uri()).args(args), Duration::from_secs(120))
    }

    /// Runs virsh and returns stdout, panicking with its output and libvirtd's log if it fails.
    pub fn virsh_ok(&self, args: &[&str]) -> String {
        let out = self.virsh(args);
        assert!(
            out.status.success(),
            "virsh {args:?} failed ({}): {}{}\n--- libvirtd:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes `xml` to a file and runs `virsh VERB FILE` (net-define, define, create).
    pub fn virsh_xml(&self, verb: &str, name: &str, xml: &str) -> String {
        let f = self.dir.join(format!("{name}.xml"));
        std::fs::write(&f, xml).expect("write xml");
        self.virsh_ok(&[verb, &f.display().to_string()])
    }

    /// libvirtd's own output and the QEMU logs it wrote.
    pub fn log(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir.join("libvirtd.out")).unwrap_or_default();
        if let Ok(rd) = std::fs::read_dir(self.dir.join("log/qemu")) {
            for e in rd.flatten() {
                s += &format!("--- {}:\n{}", e.path().display(), std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        s
    }

    /// The pids of QEMU processes libvirt started (its pid files).
    fn qemu_pids(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.dir.join("run/qemu")) else { return vec![] };
        rd.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    }
}

fn wait_gone(pid: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        let pids = self.qemu_pids();
        if let Some(c) = self.child.as_ref()
            && Path::new(&format!("/proc/{}", c.id())).exists()
        {
            // Each destroy waits for its QEMU to exit: all at once.
            // Plain commands under `timeout`: nothing here may panic while a failed test unwinds.
            let uri = self.uri();
            let virsh =
                |args: &[&str]| Command::new("timeout").args(["60", "virsh", "-c", &uri]).args(args).stdin(Stdio::null()).stderr(Stdio::null()).output();
            let list = virsh(&["list", "--name"]).map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
            std::thread::scope(|s| {
                for dom in list.lines().filter(|l| !l.trim().is_empty()) {
                    s.spawn(|| virsh(&["destroy", dom.trim()]));
                }
            });
        }
        if let Some(mut c) = self.child.take() {
            let pid = c.id().to_string();
            let _ = Command::new("kill").arg(&pid).status();
            // libvirtd takes 10 s to honour SIGTERM here, and keeps nothing the test
            // needs: 2 s, then SIGKILL.
            if !wait_gone(&pid, Duration::from_secs(2)) {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        for p in pids.into_iter().chain(self.qemu_pids()) {
            if Path::new(&format!("/proc/{p}")).exists() {
                let _ = Command::new("kill").args(["-9", &p]).status();
                wait_gone(&p, Duration::from_secs(5));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One libvirt domain: its console file and agent socket live in the test's directory.
pub struct Guest {
    pub name: String,
    pub mac: String,
    pub console: PathBuf,
    agent: Option<Agent>,
}

/// A domain booting the test image (direct kernel boot, no disk) with one interface on
/// libvirt network `net` (optionally a portgroup, and `extra` XML inside the interface:
/// a `<vlan>` trunk, say), its console in `dir/NAME.console` and its agent on
/// `dir/NAME.agent`.
pub fn domain_xml(name: &str, mac: &str, ip: &str, net: &str, portgroup: Option<&str>, extra: &str, dir: &Path) -> String {
    let pg = portgroup.map(|p| format!(" portgroup='{p}'")).unwrap_or_default();
    let iface = format!(
        "    <interface type='network'>\n      <mac address='{mac}'/>\n      <source network='{net}'{pg}/>\n{extra}      <model type='virtio'/>\n    </interface>\n"
    );
    domain_xml_with(name, mac, ip, &iface, "", "", dir)
}

/// The domain of [`domain_xml`] with the interface XML `iface`, `memory` XML after
/// `<vcpu>` (a `<memoryBacking>`) and `qemu` XML at the end (`<qemu:…>` elements).
pub fn domain_xml_with(name: &str, mac: &str, ip: &str, iface: &str, memory: &str, qemu: &str, dir: &Path) -> String {
    let img = image();
    format!(
        "<domain type='{ty}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>\n\
  <name>{name}</name>\n  <memory unit='MiB'>256</memory>\n  <vcpu>1</vcpu>\n{memory}\
  <os><type arch='x86_64' machine='q35'>hvm</type><kernel>{k}</kernel><initrd>{i}</initrd><cmdline>{c}</cmdline></os>\n\
  <on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot><on_crash>destroy</on_crash>\n\
  <devices>\n\
    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n\
{iface}\
    <serial type='file'><source path='{d}/{name}.console'/><target port='0'/></serial>\n\
    <channel type='unix'><source mode='bind' path='{d}/{name}.agent'/><target type='virtio' name='rvs.agent'/></channel>\n\
    <memballoon model='none'/>\n  </devices>\n{qemu}</domain>\n",
        ty = accel().libvirt_type(),
        k = img.kernel.display(),
        i = img.initrd.display(),
        c = guest_cmdline(ip, mac),
        d = dir.display(),
    )
}

pub fn start_guest(lv: &Libvirtd, name: &str, ip: &str, net: &str, portgroup: Option<&str>, extra: &str) -> Guest {
    let mac = unique_mac();
    lv.virsh_xml("create", name, &domain_xml(name, &mac, ip, net, portgroup, extra, &lv.dir));
    Guest::new(lv, name, &mac)
}

impl Guest {
    /// The guest of domain `name` (made with [`domain_xml_with`]) with MAC `mac`.
    pub fn new(lv: &Libvirtd, name: &str, mac: &str) -> Guest {
        Guest { name: name.into(), mac: mac.into(), console: lv.dir.join(format!("{name}.console")), agent: None }
    }

    pub fn wait_ready(&mut self, lv: &Libvirtd, timeout: Duration) {
        let start = Instant::now();
        let diag = |e: String| {
            format!(
                "guest {} not ready: {e}\n--- console:\n{}\n--- libvirtd:\n{}",
                self.name,
                std::fs::read_to_string(&self.console).unwrap_or_default(),
                lv.log()
            )
        };
        wait_console(&self.console, "RVS-READY", timeout, || false).unwrap_or_else(|e| panic!("{}", diag(e)));
        let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_secs(10));
        let sock = lv.dir.join(format!("{}.agent", self.name));
        self.agent = Some(Agent::connect(&sock, left).unwrap_or_else(|e| panic!("{}", diag(e))));
    }

    pub fn agent(&self) -> &Agent {
        self.agent.as_ref().expect("wait_ready first")
    }

    /// The tap libvirt made for the guest (`virsh domiflist`).
    pub fn tap(&self, lv: &Libvirtd) -> String {
        let out = lv.virsh_ok(&["domiflist", &self.name]);
        let row = out.lines().find(|l| l.contains(&self.mac)).unwrap_or_else(|| panic!("{} not in\n{out}", self.mac));
        row.split_whitespace().next().expect("interface column").to_string()
    }
}
