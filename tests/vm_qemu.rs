//! Real guests on rvs, started by plain QEMU (issue 24, parts 1 and 2): Debian's kernel
//! and a busybox initramfs (`scripts/vm-image.sh`), each guest's virtio-net NIC on a tap
//! the test made beforehand, as libvirt does (`-netdev tap,ifname=…,script=no`), that tap
//! added to an rvs bridge as an existing netdev (AF_PACKET) on a VLAN access port.
//!
//! Root required; KVM when a probe boot works, TCG otherwise (printed). Everything — the
//! node namespace with its rvs-vswitchd, the taps, the QEMU processes and their files —
//! goes away on drop, also when an assertion fails. Addresses: 198.18.0.0/15 only.

use std::time::{Duration, Instant};

use rvs_testkit::vm::{Qemu, accel, image, require_vm_tools, unique_mac};
use rvs_testkit::*;

/// A persistent tap made in the node's namespace before QEMU opens it (libvirt's way),
/// added to `br` with `args`.
fn libvirt_style_tap(n: &Node, br: &str, args: &[&str]) -> String {
    let tap = unique("vt");
    n.ns.sh(&format!("ip tuntap add dev {tap} mode tap vnet_hdr && ip link set {tap} up"));
    let mut a = vec!["add-port", br, &tap];
    a.extend_from_slice(args);
    n.d.ctl_ok(&a);
    tap
}

#[test]
fn qemu_guests_on_vlan_access_ports() {
    require_vm_tools();
    let t0 = Instant::now();
    eprintln!("guest image: {}", image().versions.trim());
    let accel = accel();
    let n = Node::new("vmq");
    let br = unique("br");
    n.d.ctl_ok(&["add-br", &br]);
    let (t1, t2, t3) = (libvirt_style_tap(&n, &br, &["tag=10"]), libvirt_style_tap(&n, &br, &["tag=10"]), libvirt_style_tap(&n, &br, &["tag=20"]));
    let (m1, m2, m3) = (unique_mac(), unique_mac(), unique_mac());
    let mut g1 = Qemu::on_tap(Some(&n.ns.name), &t1, &m1, "198.18.5.1/24");
    let mut g2 = Qemu::on_tap(Some(&n.ns.name), &t2, &m2, "198.18.5.2/24");
    let mut g3 = Qemu::on_tap(Some(&n.ns.name), &t3, &m3, "198.18.5.3/24");
    let boot = Duration::from_secs(if accel == vm::Accel::Kvm { 60 } else { 180 });
    g1.wait_ready(boot);
    g2.wait_ready(boot);
    g3.wait_ready(boot);
    eprintln!("three guests up after {:?}", t0.elapsed());

    let (a1, a2, a3) = (g1.agent(), g2.agent(), g3.agent());
    assert!(a1.ok("cat /sys/class/net/eth0/address").contains(&m1));
    assert!(a1.ping_eventually("198.18.5.2", Duration::from_secs(30)), "guest 1 -> guest 2 in VLAN 10\n{}\n{}", n.d.log(), g1.diagnostics());
    assert!(a2.ping("198.18.5.1", 3), "guest 2 -> guest 1 in VLAN 10");
    assert!(!a3.ping("198.18.5.1", 2), "VLAN 20 must not reach VLAN 10");
    assert!(!a1.ping("198.18.5.3", 2), "VLAN 10 must not reach VLAN 20");

    // The MAC table: each guest's MAC on its own tap's port, in its VLAN, only there.
    let table = n.d.ctl_ok(&["fdb/show", &br]);
    let of = |p: &str| n.d.ctl_ok(&["get", "Interface", p, "ofport"]).trim().to_string();
    for (mac, tap, vlan) in [(&m1, &t1, "10"), (&m2, &t2, "10"), (&m3, &t3, "20")] {
        let rows: Vec<&str> = table.lines().filter(|l| l.contains(mac.as_str())).collect();
        assert_eq!(rows.len(), 1, "{mac} once in\n{table}");
        let cols: Vec<&str> = rows[0].split_whitespace().collect();
        assert_eq!((cols[0], cols[1]), (of(tap).as_str(), vlan), "{mac} on {tap}: {}", rows[0]);
    }

    // Traffic through the guests' own stacks: a short iperf3 inside VLAN 10.
    a2.ok("iperf3 -s -D -1");
    let ip = a1.run("iperf3 -c 198.18.5.2 -t 2 -f m", Duration::from_secs(60));
    assert!(ip.ok() && ip.out.contains("receiver"), "iperf3 guest 1 -> guest 2:\n{}", ip.out);
    let line = ip.out.lines().find(|l| l.contains("receiver")).unwrap_or_default().to_string();
    eprintln!("iperf3 guest->guest ({}): {line}", accel.qemu_name());

    let show = n.d.ctl_ok(&["show"]);
    assert!(show.contains(&format!("        Port {t1}\n            tag: 10\n            Interface {t1}\n")), "{show}");
    eprintln!("qemu_guests_on_vlan_access_ports: {:?} in all", t0.elapsed());
}
