//! VM-to-VM benchmark (issue 24, part 5): two QEMU guests (Debian's kernel, the busybox
//! image of `scripts/vm-image.sh`, virtio-net on a tap made the way libvirt makes it)
//! talking through each switch in turn, measured from inside the guests:
//!
//! * one node: the Linux bridge, rvs (the taps as existing netdevs, AF_PACKET), rvs
//!   with the guests on vhost-user ports (its worker sleeping, or polling on CPU 0:
//!   `rvs-vhost-pmd`), and Open vSwitch's userspace datapath
//!   (`datapath_type=netdev`);
//! * two nodes (namespaces joined by a veth underlay): the kernel's vxlan + bridge, and
//!   rvs with a VXLAN port on each node, guests on taps or on vhost-user ports.
//!
//! Per row: a single TCP stream (iperf3, 5 s, guest to guest), 64-byte UDP datagrams
//! delivered per second (iperf3 `-u -l 64 -b 0`, counted by the receiving guest), and
//! ping's round trip (median of 20 at 5/s), each as a ratio to the kernel row of its
//! class, and the CPU the switch's daemons used meanwhile. On taps QEMU's own virtio-net
//! backend carries every frame (no vhost-net here); on vhost-user rvs reads and writes
//! the guests' rings itself. Without KVM the guests are emulated (TCG): then the guests, not the switches, bound
//! every row — the report says which accelerator ran. rvs's own taps are not a row: a
//! QEMU guest and rvs would both be the user-space end of such a tap; guests reach rvs
//! through libvirt's taps, or over vhost-user (the `rvs-vhost` rows: `dpdkvhostuser`
//! ports, guest memory shared with rvs, no tap and no QEMU backend in the path).
//!
//! As root: `cargo build --release --workspace --bins && cargo bench --bench vm`
//! (`VM_ROWS="rvs linux-bridge"` for some rows only; the
//! guest image is built on first use; QEMU,
//! iperf3, busybox-static and Open vSwitch from `scripts/prereqs.sh test`). Output: a
//! table on stdout and in `bench-results/vm-DATE.txt`. Addresses: 198.18.0.0/15 only,
//! inside namespaces made here; everything is removed on exit.

use std::time::Duration;

use rvs_testkit::vm::{Accel, Qemu, accel, image, require_vm_tools, unique_mac};
use rvs_testkit::*;

/// A tap made the way libvirt makes one (persistent, virtio-net header), up, in `ns`.
fn libvirt_tap(ns: &Netns) -> String {
    let tap = unique("bt");
    ns.sh(&format!("ip tuntap add dev {tap} mode tap vnet_hdr && ip link set {tap} up"));
    tap
}

/// Two guests whose NICs are the taps `t1` (in `ns1`) and `t2` (in `ns2`), up, with
/// addresses .1 and .2 of 198.18.210.0/24.
fn guests(ns1: &Netns, t1: &str, ns2: &Netns, t2: &str) -> (Qemu, Qemu) {
    let mut g1 = Qemu::on_tap(Some(&ns1.name), t1, &unique_mac(), "198.18.210.1/24");
    let mut g2 = Qemu::on_tap(Some(&ns2.name), t2, &unique_mac(), "198.18.210.2/24");
    let boot = Duration::from_secs(if accel() == Accel::Kvm { 60 } else { 240 });
    g1.wait_ready(boot);
    g2.wait_ready(boot);
    (g1, g2)
}

/// One row's figures: TCP Mbit/s, 64-byte datagrams/s, median ping RTT in µs, and the
/// CPU the switch's processes used while measured (% of one CPU; none for the kernel's
/// rows, whose work runs in the guests' QEMU threads and softirqs).
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    tcp_mbps: Option<f64>,
    pps64: Option<f64>,
    rtt_us: Option<f64>,
    switch_cpu: Option<f64>,
}

/// User + system CPU time of the processes `pids`, in clock ticks (`/proc/PID/stat`).
fn cpu_ticks(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .filter_map(|st| {
            // Fields after the command name (which may hold spaces): utime is the 12th.
            let rest = st.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// The number before `unit` on iperf3's receiver line.
fn receiver_value(out: &str, unit: &str) -> Option<f64> {
    let line = out.lines().rev().find(|l| l.contains("receiver"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words.iter().position(|w| *w == unit)?;
    words.get(i.checked_sub(1)?)?.parse().ok()
}

/// Datagrams the receiver got per second, from iperf3's UDP receiver line
/// (`… LOST/TOTAL (P%)  receiver`) over `secs`.
fn udp_pps(out: &str, secs: f64) -> Option<f64> {
    let line = out.lines().rev().find(|l| l.contains("receiver"))?;
    let (lost, total) = line.split_whitespace().find_map(|w| {
        let (a, b) = w.split_once('/')?;
        Some((a.parse::<f64>().ok()?, b.parse::<f64>().ok()?))
    })?;
    Some((total - lost) / secs)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Measures guest 1 → guest 2; `switch` are the switch's processes (empty for the
/// kernel).
fn measure(g1: &Qemu, g2: &Qemu, switch: &[i32]) -> Figures {
    let (a1, a2) = (g1.agent(), g2.agent());
    let (t0, c0) = (std::time::Instant::now(), cpu_ticks(switch));
    if !a1.ping_eventually("198.18.210.2", Duration::from_secs(60)) {
        eprintln!("  no connectivity:\n{}\n{}", g1.diagnostics(), g2.diagnostics());
        return Figures::default();
    }
    let ping = a1.run("ping -c 20 -i 0.2 198.18.210.2", Duration::from_secs(60));
    let rtts: Vec<f64> = ping.out.split("time=").skip(1).filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok()).map(|ms| ms * 1000.0).collect();
    // Each iperf3 bounded inside the guest too: an emulated guest flooded with small
    // datagrams may not get its final report across (then that figure is missing).
    let iperf = |args: &str| {
        let _ = a2.try_run("pkill iperf3; iperf3 -s -D -1", Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(500));
        a1.try_run(&format!("timeout 40 iperf3 -c 198.18.210.2 {args}"), Duration::from_secs(60)).map(|o| o.out).unwrap_or_else(|e| {
            eprintln!("  iperf3 {args}: {e}");
            String::new()
        })
    };
    let tcp = iperf("-t 5 -f m");
    let udp = iperf("-u -l 64 -b 500M -t 5");
    let hz = sh("getconf CLK_TCK").trim().parse::<f64>().unwrap_or(100.0);
    let switch_cpu = (!switch.is_empty()).then(|| (cpu_ticks(switch) - c0) as f64 / hz / t0.elapsed().as_secs_f64() * 100.0);
    Figures { tcp_mbps: receiver_value(&tcp, "Mbits/sec"), pps64: udp_pps(&udp, 5.0), rtt_us: median(rtts), switch_cpu }
}

fn row_linux_bridge() -> Figures {
    let ns = Netns::new("bvl");
    ns.sh("ip link add br0 type bridge && ip link set br0 up");
    let (t1, t2) = (libvirt_tap(&ns), libvirt_tap(&ns));
    ns.sh(&format!("ip link set {t1} master br0 && ip link set {t2} master br0"));
    let (g1, g2) = guests(&ns, &t1, &ns, &t2);
    measure(&g1, &g2, &[])
}

fn row_rvs() -> Figures {
    let n = Node::new("bvr");
    n.d.ctl_ok(&["add-br", "br0"]);
    let (t1, t2) = (libvirt_tap(&n.ns), libvirt_tap(&n.ns));
    n.d.ctl_ok(&["add-port", "br0", &t1, "--", "add-port", "br0", &t2]);
    let (g1, g2) = guests(&n.ns, &t1, &n.ns, &t2);
    measure(&g1, &g2, &n.d.pid().into_iter().collect::<Vec<_>>())
}

/// Two guests on vhost-user ports of one rvs bridge (`dpdkvhostuser`: rvs listens,
/// QEMU connects), the guests' memory shared with rvs: no tap, no QEMU backend thread
/// in the path.
fn row_rvs_vhost() -> Figures {
    vhost_one_node("bvh", None)
}

/// As `rvs-vhost`, rvs's worker polling on CPU 0 (`pmd-cpu-mask=0x1`, as OVS-DPDK is
/// run): the row issue 23's and 27's round-trip targets are about. On the 2-CPU machine
/// the two guests then share the other CPU.
fn row_rvs_vhost_pmd() -> Figures {
    vhost_one_node("bvp", Some("0x1"))
}

/// One rvs node with ports `vh1` and `vh2` (`dpdkvhostuser`) and a guest on each;
/// `pmd_mask` sets `pmd-cpu-mask`.
fn vhost_one_node(tag: &str, pmd_mask: Option<&str>) -> Figures {
    let n = Node::new(tag);
    if let Some(m) = pmd_mask {
        n.d.ctl_ok(&["set", "Open_vSwitch", ".", &format!("other_config:pmd-cpu-mask={m}")]);
    }
    n.d.ctl_ok(&["add-br", "br0"]);
    for p in ["vh1", "vh2"] {
        n.d.ctl_ok(&["add-port", "br0", p, "--", "set", "Interface", p, "type=dpdkvhostuser"]);
    }
    let (g1, g2) = vhost_guests(&n, &n);
    measure(&g1, &g2, &n.d.pid().into_iter().collect::<Vec<_>>())
}

/// Guests on the `vh1` port of `n1` and the `vh2` port of `n2`.
fn vhost_guests(n1: &Node, n2: &Node) -> (Qemu, Qemu) {
    let mut g1 = Qemu::on_vhost_user(&n1.d.dir.join("vh1"), false, &unique_mac(), "198.18.210.1/24");
    let mut g2 = Qemu::on_vhost_user(&n2.d.dir.join("vh2"), false, &unique_mac(), "198.18.210.2/24");
    let boot = Duration::from_secs(if accel() == Accel::Kvm { 60 } else { 240 });
    g1.wait_ready(boot);
    g2.wait_ready(boot);
    (g1, g2)
}

fn row_ovs() -> Figures {
    let ns = Netns::new("bvo");
    let ovs = OvsDaemons::start(&ns, "bvo");
    let (t1, t2) = (libvirt_tap(&ns), libvirt_tap(&ns));
    // Without userspace TSO, OVS reads the taps without their virtio-net headers and
    // forwards the guests' partially checksummed TCP as it is: no TCP connection
    // (iperf3's included) comes up. With it (read at ovs-vswitchd's start, hence the
    // restart), OVS takes and completes them.
    sh(&format!("ovs-vsctl --db={} --timeout=20 set Open_vSwitch . other_config:userspace-tso-enable=true", ovs.db()));
    sh(&format!("ovs-appctl -t {} exit && sleep 1", ovs.target()));
    ovs.start_vswitchd(&ns);
    sh(&format!("ovs-vsctl --db={} --timeout=20 add-br br0 -- set bridge br0 datapath_type=netdev -- add-port br0 {t1} -- add-port br0 {t2}", ovs.db()));
    let (g1, g2) = guests(&ns, &t1, &ns, &t2);
    let pids: Vec<i32> = std::fs::read_to_string(ovs.dir.join("vs.pid")).ok().and_then(|p| p.trim().parse().ok()).into_iter().collect();
    measure(&g1, &g2, &pids)
}

/// Two node namespaces joined by a veth underlay (MTU 1600), 198.19.61.1 and .2.
fn two_nodes(n1: &Netns, n2: &Netns) {
    let (u1, u2) = (unique("bu"), unique("bu"));
    sh(&format!("ip link add {u1} netns {} mtu 1600 type veth peer name {u2} netns {} mtu 1600", n1.name, n2.name));
    n1.sh(&format!("ip addr add 198.19.61.1/24 dev {u1} && ip link set {u1} up"));
    n2.sh(&format!("ip addr add 198.19.61.2/24 dev {u2} && ip link set {u2} up"));
}

fn row_kernel_vxlan() -> Figures {
    let (n1, n2) = (Netns::new("bk1"), Netns::new("bk2"));
    two_nodes(&n1, &n2);
    let mut taps = Vec::new();
    for (ns, me, peer) in [(&n1, 1, 2), (&n2, 2, 1)] {
        ns.sh(&format!("ip link add vx type vxlan id 5100 dstport 4789 remote 198.19.61.{peer} local 198.19.61.{me} && ip link add kbr type bridge"));
        ns.sh("ip link set vx master kbr && ip link set vx up && ip link set kbr up");
        let t = libvirt_tap(ns);
        ns.sh(&format!("ip link set {t} master kbr"));
        taps.push(t);
    }
    let (g1, g2) = guests(&n1, &taps[0], &n2, &taps[1]);
    measure(&g1, &g2, &[])
}

/// Bridge br0's VXLAN port `vx` towards node `peer`'s underlay address.
fn add_vxlan(n: &Node, peer: u8) {
    let remote = format!("options:remote_ip=198.19.61.{peer}");
    n.d.ctl_ok(&["add-port", "br0", "vx", "--", "set", "Interface", "vx", "type=vxlan", &remote, "options:key=5100"]);
}

fn row_rvs_vxlan() -> Figures {
    let (n1, n2) = (Node::new("br1"), Node::new("br2"));
    two_nodes(&n1.ns, &n2.ns);
    let mut taps = Vec::new();
    for (n, peer) in [(&n1, 2), (&n2, 1)] {
        n.d.ctl_ok(&["add-br", "br0"]);
        add_vxlan(n, peer);
        let t = libvirt_tap(&n.ns);
        n.d.ctl_ok(&["add-port", "br0", &t]);
        taps.push(t);
    }
    let (g1, g2) = guests(&n1.ns, &taps[0], &n2.ns, &taps[1]);
    measure(&g1, &g2, &[n1.d.pid(), n2.d.pid()].into_iter().flatten().collect::<Vec<_>>())
}

fn row_rvs_vhost_vxlan() -> Figures {
    let (n1, n2) = (Node::new("bh1"), Node::new("bh2"));
    two_nodes(&n1.ns, &n2.ns);
    for (n, peer, port) in [(&n1, 2, "vh1"), (&n2, 1, "vh2")] {
        n.d.ctl_ok(&["add-br", "br0"]);
        add_vxlan(n, peer);
        n.d.ctl_ok(&["add-port", "br0", port, "--", "set", "Interface", port, "type=dpdkvhostuser"]);
    }
    let (g1, g2) = vhost_guests(&n1, &n2);
    measure(&g1, &g2, &[n1.d.pid(), n2.d.pid()].into_iter().flatten().collect::<Vec<_>>())
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass other flags:
    // this benchmark only runs when asked for.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    require_vm_tools();
    let have_ovs = sh_ok("command -v ovs-vswitchd >/dev/null && command -v ovsdb-server >/dev/null");
    eprintln!("guest image: {}", image().versions.trim());
    let accel = accel();
    type Row = (&'static str, &'static str, fn() -> Figures);
    let mut rows: Vec<Row> = vec![
        ("linux-bridge", "linux-bridge", row_linux_bridge),
        ("rvs", "linux-bridge", row_rvs),
        ("rvs-vhost", "linux-bridge", row_rvs_vhost),
        ("rvs-vhost-pmd", "linux-bridge", row_rvs_vhost_pmd),
    ];
    if have_ovs {
        rows.push(("ovs-netdev", "linux-bridge", row_ovs));
    }
    rows.push(("kernel-vxlan", "kernel-vxlan", row_kernel_vxlan));
    rows.push(("rvs-vxlan", "kernel-vxlan", row_rvs_vxlan));
    rows.push(("rvs-vhost-vxlan", "kernel-vxlan", row_rvs_vhost_vxlan));
    // VM_ROWS="rvs linux-bridge": only these rows.
    let only = std::env::var("VM_ROWS").ok().filter(|v| !v.trim().is_empty());
    let mut results: Vec<(&str, &str, Figures)> = Vec::new();
    for (name, base, f) in rows {
        if only.as_ref().is_some_and(|o| !o.split_whitespace().any(|r| r == name)) {
            continue;
        }
        eprintln!("== {name}");
        let fig = f();
        eprintln!("  {fig:?}");
        results.push((name, base, fig));
    }
    let find = |n: &str| results.iter().find(|(r, ..)| *r == n).map(|(_, _, f)| *f).unwrap_or_default();
    let cell = |v: Option<f64>, b: Option<f64>, higher: bool, digits: usize| match (v, b) {
        (Some(v), Some(b)) if v > 0.0 && b > 0.0 => format!("{v:.digits$} ({:.2}x)", if higher { v / b } else { b / v }),
        (Some(v), _) => format!("{v:.digits$}"),
        _ => "-".to_string(),
    };
    let mut report = String::new();
    report.push_str(&format!(
        "rvs VM-to-VM benchmark: two QEMU guests, virtio-net on libvirt-style taps (QEMU's own virtio-net backend, no vhost-net) or on rvs's vhost-user ports (rvs-vhost rows), accelerator {} ({})\n",
        accel.qemu_name(),
        if accel == Accel::Kvm { "hardware virtualization" } else { "emulated guests: the guests, not the switches, bound every row" }
    ));
    report.push_str(&format!("guest image: {}\n", image().versions.trim().replace('\n', "; ")));
    report.push_str(&format!("{:<16}{:>22}{:>22}{:>22}{:>14}\n", "row", "TCP Mbit/s", "64B datagrams/s", "ping RTT us", "switch CPU %"));
    for (name, base, f) in &results {
        let b = find(base);
        let cpu = f.switch_cpu.map(|c| format!("{c:.0}")).unwrap_or_else(|| "-".into());
        report.push_str(&format!(
            "{name:<16}{:>22}{:>22}{:>22}{cpu:>14}\n",
            cell(f.tcp_mbps, b.tcp_mbps, true, 0),
            cell(f.pps64, b.pps64, true, 0),
            cell(f.rtt_us, b.rtt_us, false, 0)
        ));
    }
    report.push_str("ratio: to the kernel row of its class (one node: linux-bridge; two nodes: kernel-vxlan), above 1 is better\n");
    report.push_str("switch CPU: user+system time of rvs-vswitchd (both nodes' over VXLAN) or ovs-vswitchd while measured, % of one CPU; '-' for the kernel's rows (their work runs in QEMU's threads and softirqs)\n");
    print!("{report}");
    let _ = std::fs::create_dir_all("bench-results");
    let stamp = sh("date -u +%Y%m%d-%H%M%S").trim().to_string();
    let _ = std::fs::write(format!("bench-results/vm-{stamp}.txt"), &report);
}
