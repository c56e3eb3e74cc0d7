//! Namespace tests of one node: VMs on taps in VLANs, trunks between bridges over a veth
//! pair (tags the kernel strips on receive), MAC learning and aging, a tap deleted and
//! recreated, restart persistence. Real devices, real traffic; root required.
//!
//! Each test runs its own rvs-vswitchd inside its own "node" namespace; VMs are further
//! namespaces their taps are moved into. Addresses: 198.18.0.0/15 only.

use std::time::Duration;

use rvs_testkit::*;

fn fdb(node: &Node, br: &str) -> String {
    node.d.ctl_ok(&["fdb/show", br])
}

#[test]
fn vlans_isolate_and_fdb_shows_learned_macs() {
    let n = Node::new("vlan");
    n.d.ctl_ok(&["add-br", "br0"]);
    let (p1, p2, p3) = (unique("v1"), unique("v2"), unique("v3"));
    let vm1 = n.vm("br0", &p1, &["tag=10"], "198.18.1.1/24");
    let vm2 = n.vm("br0", &p2, &["tag=10"], "198.18.1.2/24");
    let vm3 = n.vm("br0", &p3, &["tag=20"], "198.18.1.3/24");

    assert!(vm1.ping_eventually("198.18.1.2", Duration::from_secs(10)), "vm1 -> vm2 in VLAN 10\n{}", n.d.log());
    assert!(vm2.ping("198.18.1.1", 2), "vm2 -> vm1");
    assert!(!vm3.ping("198.18.1.1", 2), "VLAN 20 must not reach VLAN 10");
    assert!(!vm1.ping("198.18.1.3", 2), "VLAN 10 must not reach VLAN 20");

    let table = fdb(&n, "br0");
    assert!(table.starts_with(" port  VLAN  MAC                Age\n"), "{table}");
    let of = |p: &str| n.d.ctl_ok(&["get", "Interface", p, "ofport"]).trim().to_string();
    for (vm, port, vlan) in [(&vm1, &p1, "10"), (&vm2, &p2, "10"), (&vm3, &p3, "20")] {
        let mac = mac_of(vm, port);
        let row = table.lines().find(|l| l.contains(&mac)).unwrap_or_else(|| panic!("{mac} not in\n{table}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[0], of(port), "{row}");
        assert_eq!(cols[1], vlan, "{row}");
        assert!(cols[3].parse::<u32>().is_ok(), "age column: {row}");
    }
    // VLAN 20's MAC is learned only in VLAN 20.
    let mac3 = mac_of(&vm3, &p3);
    assert_eq!(table.lines().filter(|l| l.contains(&mac3)).count(), 1);

    let show = n.d.ctl_ok(&["show"]);
    assert!(show.contains("    Bridge br0\n"), "{show}");
    assert!(show.contains(&format!("        Port {p1}\n            tag: 10\n            Interface {p1}\n                type: tap\n")), "{show}");
    assert!(show.contains("        Port br0\n            Interface br0\n                type: internal\n"), "{show}");

    let stats = n.d.ctl_ok(&["fdb/stats-show", "br0"]);
    assert!(stats.contains("Current/maximum MAC entries in the table: 3/8192"), "{stats}");
    assert_eq!(n.d.ctl_ok(&["fdb/flush", "br0"]), "table successfully flushed\n");
    assert!(!fdb(&n, "br0").contains(&mac3));
}

#[test]
fn trunk_between_bridges_over_veth_carries_tags() {
    require_tools(&["tcpdump"]);
    let n = Node::new("trunk");
    let (va, vb, vc, vd) = (unique("ta"), unique("tb"), unique("tc"), unique("td"));
    n.ns.sh(&format!("ip link add {va} type veth peer name {vb} && ip link set {va} up && ip link set {vb} up"));
    // A third leg, a trunk of VLAN 10 only, to look at the tags on the wire.
    n.ns.sh(&format!("ip link add {vc} type veth peer name {vd} && ip link set {vc} up"));
    n.d.ctl_ok(&["add-br", "bra"]);
    n.d.ctl_ok(&["add-br", "brb"]);
    n.d.ctl_ok(&["add-port", "bra", &va, "trunks=10,20"]);
    n.d.ctl_ok(&["add-port", "brb", &vb, "trunks=10,20"]);
    n.d.ctl_ok(&["add-port", "brb", &vc, "trunks=10"]);
    let (a10, a20, b10, b20) = (unique("a10"), unique("a20"), unique("b10"), unique("b20"));
    let vm_a10 = n.vm("bra", &a10, &["tag=10"], "198.18.2.1/24");
    let vm_a20 = n.vm("bra", &a20, &["tag=20"], "198.18.3.1/24");
    let _vm_b10 = n.vm("brb", &b10, &["tag=10"], "198.18.2.2/24");
    let _vm_b20 = n.vm("brb", &b20, &["tag=20"], "198.18.3.2/24");
    // A third leg, trunking only VLAN 10, ends in a namespace where tcpdump shows the
    // 802.1Q tags on the wire. (This kernel has neither 8021q nor bridge VLAN
    // filtering, so no Linux VLAN device can be the peer.)
    let host = Netns::new("host");
    sh(&format!("ip -n {} link set {vd} netns {}", n.ns.name, host.name));
    host.sh(&format!("ip link set {vd} up"));
    let cap = std::process::Command::new("ip")
        .args(["netns", "exec", &host.name, "timeout", "12", "tcpdump", "-i", &vd, "-nn", "-e", "-l", "vlan or arp or icmp"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(vm_a10.ping_eventually("198.18.2.2", Duration::from_secs(10)), "VLAN 10 across the trunk\n{}", n.d.log());
    assert!(vm_a20.ping_eventually("198.18.3.2", Duration::from_secs(10)), "VLAN 20 across the trunk");
    assert!(!vm_a10.ping("198.18.3.2", 2), "no leak from VLAN 10 into VLAN 20");
    // Broadcast/unknown traffic of VLAN 10 reached the third leg tagged with VID 10, and
    // nothing of VLAN 20 did (it trunks VLAN 10 only).
    let text = String::from_utf8_lossy(&cap.wait_with_output().unwrap().stdout).into_owned();
    assert!(text.lines().any(|l| l.contains("vlan 10") && l.contains("198.18.2.")), "tagged VLAN 10 on the trunk:\n{text}");
    assert!(!text.contains("vlan 20") && !text.contains("198.18.3."), "VLAN 20 must not be on a trunk of VLAN 10:\n{text}");
    // Frames arriving on the veths had their tags stripped by the kernel and put back
    // by rvs; the MACs are learned in the right VLAN on the trunk ports.
    let table = fdb(&n, "brb");
    let of_vb = n.d.ctl_ok(&["get", "Interface", &vb, "ofport"]).trim().to_string();
    let mac_a10 = mac_of(&vm_a10, &a10);
    let row = table.lines().find(|l| l.contains(&mac_a10)).unwrap_or_else(|| panic!("{mac_a10} not learned on brb:\n{table}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!((cols[0], cols[1]), (of_vb.as_str(), "10"), "{row}");
    // A frame tagged with VLAN 30 sent into the VLAN-10 trunk is dropped and counted.
    let count = |d: &Daemon| -> u64 {
        let s = d.ctl_ok(&["rvs/drops", "brb"]);
        s.lines().find(|l| l.trim_start().starts_with("vlan_not_allowed")).and_then(|l| l.split_whitespace().nth(1)).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    let before = count(&n.d);
    host.sh(&format!(
        "python3 -c \"import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('{vd}', 0)); \
         s.send(bytes.fromhex('ffffffffffff020000000033' + '8100001e' + '0806' + '00' * 46))\""
    ));
    wait_until("the VLAN 30 frame to be counted", Duration::from_secs(5), || count(&n.d) > before);
}

#[test]
fn aging_removes_idle_macs() {
    let n = Node::new("age");
    n.d.ctl_ok(&["add-br", "br0"]);
    // OVS clamps mac-aging-time to at least 15 s; rvs does the same.
    n.d.ctl_ok(&["set", "Bridge", "br0", "other_config:mac-aging-time=15"]);
    let (p1, p2) = (unique("g1"), unique("g2"));
    let vm1 = n.vm("br0", &p1, &[], "198.18.4.1/24");
    let vm2 = n.vm("br0", &p2, &[], "198.18.4.2/24");
    assert!(vm1.ping_eventually("198.18.4.2", Duration::from_secs(10)));
    let mac1 = mac_of(&vm1, &p1);
    assert!(fdb(&n, "br0").contains(&mac1));
    // Keep the VMs quiet (no IPv6 chatter) so the entry really goes idle.
    for (vm, p) in [(&vm1, &p1), (&vm2, &p2)] {
        vm.sh(&format!("ip link set {p} arp off; sysctl -qw net.ipv6.conf.{p}.disable_ipv6=1 || true"));
    }
    wait_until("the MAC to age out (15 s aging)", Duration::from_secs(40), || !fdb(&n, "br0").contains(&mac1));
    let stats = n.d.ctl_ok(&["fdb/stats-show", "br0"]);
    assert!(!stats.contains("Total number of expired MAC entries     : 0\n"), "{stats}");
}

#[test]
fn restart_restores_bridges_ports_and_traffic() {
    let n = Node::new("rst");
    n.d.ctl_ok(&["add-br", "br0"]);
    let (p1, p2) = (unique("r1"), unique("r2"));
    let vm1 = n.vm("br0", &p1, &["tag=30"], "198.18.5.1/24");
    let _vm2 = n.vm("br0", &p2, &["tag=30"], "198.18.5.2/24");
    assert!(vm1.ping_eventually("198.18.5.2", Duration::from_secs(10)));
    let before = n.d.ctl_ok(&["show"]);

    n.d.stop();
    // The taps stay where they are (persistent), addresses and all.
    assert!(vm1.sh(&format!("ip -o addr show dev {p1}")).contains("198.18.5.1/24"), "tap {p1} lost after SIGTERM");
    let out = n.d.try_start();
    assert!(out.status.success(), "restart: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(n.d.ctl_ok(&["show"]), before, "configuration restored byte for byte");
    // The new daemon attached to them in the VMs' namespaces: nothing to plug again.
    assert!(vm1.ping_eventually("198.18.5.2", Duration::from_secs(10)), "traffic after restart\n{}", n.d.log());
    assert!(!n.ns.sh_ok(&format!("ip link show {p1}")), "a new tap {p1} was made in the node");
}

#[test]
fn system_tap_deleted_and_recreated_comes_back() {
    let n = Node::new("tapr");
    n.d.ctl_ok(&["add-br", "br0"]);
    let vm = Netns::new("vm");
    // Like libvirt/QEMU: a tap that someone else created, attached as a system port.
    let (t1, v2) = (unique("lt"), unique("lv"));
    n.ns.sh(&format!("ip tuntap add {t1} mode tap && ip link set {t1} up"));
    n.d.ctl_ok(&["add-port", "br0", &t1]);
    assert_eq!(n.d.ctl_ok(&["get", "Interface", &t1, "error"]).trim(), "[]");
    // Second VM on a tap of rvs, to have traffic through the recreated device.
    let vm2 = n.vm("br0", &v2, &[], "198.18.6.2/24");
    // A VM restart: the tap goes away...
    n.ns.sh(&format!("ip link del {t1}"));
    wait_until("the error to show", Duration::from_secs(10), || n.d.ctl_ok(&["get", "Interface", &t1, "error"]).contains("No such device"));
    let show = n.d.ctl_ok(&["show"]);
    assert!(show.contains(&format!("error: \"could not open network device {t1} (No such device)\"")), "{show}");
    // ...and comes back: rvs reattaches by itself.
    n.ns.sh(&format!("ip link add {t1}p type veth peer name {t1}")); // same name, new device (a veth end)
    n.ns.sh(&format!("ip link set {t1} up && ip link set {t1}p netns {} ", vm.name));
    vm.sh(&format!("ip link set {t1}p up && ip addr add 198.18.6.1/24 dev {t1}p"));
    wait_until("the port to come back", Duration::from_secs(10), || n.d.ctl_ok(&["get", "Interface", &t1, "error"]).trim() == "[]");
    assert!(vm.ping_eventually("198.18.6.2", Duration::from_secs(10)), "traffic through the re-created device\n{}", n.d.log());
    drop(vm2);
}

#[test]
fn owned_tap_deleted_by_hand_is_recreated() {
    let n = Node::new("own");
    n.d.ctl_ok(&["add-br", "br0"]);
    let (p1, p2) = (unique("o1"), unique("o2"));
    let vm1 = n.vm("br0", &p1, &[], "198.18.7.1/24");
    let vm2 = n.vm("br0", &p2, &[], "198.18.7.2/24");
    assert!(vm1.ping_eventually("198.18.7.2", Duration::from_secs(10)));
    vm1.sh(&format!("ip link del {p1}"));
    // rvs owns type=tap devices: it notices and creates the tap again (in its own
    // namespace), as it would at startup.
    wait_until("rvs to re-create the tap", Duration::from_secs(15), || n.ns.sh_ok(&format!("ip link show {p1}")));
    plug(Some(&n.ns), &p1, &vm1, "198.18.7.1/24");
    assert!(vm1.ping_eventually("198.18.7.2", Duration::from_secs(10)), "{}", n.d.log());
    drop(vm2);
}

/// Two datapath workers (`Open_vSwitch other_config:n-workers=2`): taps created from
/// then on are multi-queue with a queue per worker, the veth (AF_PACKET) port gets two
/// receive queues in a `PACKET_FANOUT` group, the bridge's internal port (created
/// before) keeps one queue, dealt to one worker; VMs on taps and on the veth reach
/// each other and move data intact both ways, the MAC table the first worker shows
/// has every VM's address whichever worker learned it, and back to one worker (the
/// veth reopened with one queue, its counters kept; the taps' two queues both on the
/// one worker) traffic goes on.
#[test]
fn two_workers_forward_and_share_learning() {
    let n = Node::new("wrk");
    n.d.ctl_ok(&["add-br", "br0"]);
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:n-workers=2"]);
    let (p1, p2, v3, v3p) = (unique("w1"), unique("w2"), unique("w3"), unique("w3p"));
    let vm1 = n.vm("br0", &p1, &["tag=10"], "198.18.12.1/24");
    let vm2 = n.vm("br0", &p2, &["tag=10"], "198.18.12.2/24");
    n.ns.sh(&format!("ip link add {v3} type veth peer name {v3p} && ip link set {v3} up"));
    n.d.ctl_ok(&["add-port", "br0", &v3, "tag=10"]);
    let vm3 = Netns::new("vm");
    plug(Some(&n.ns), &v3p, &vm3, "198.18.12.3/24");

    let workers = || n.d.ctl_ok(&["rvs/workers"]);
    // The bridge's internal port (a tap, created before n-workers was set) gets its
    // second queue too.
    let queues: Vec<(String, String)> = ["br0", &p1, &p2, &v3].iter().map(|p| (format!("{p}#0"), format!("{p}#1"))).collect();
    let mut inputs: Vec<&str> = vec![];
    for (a, b) in &queues {
        inputs.push(a);
        inputs.push(b);
    }
    // The inputs are listed on the "worker N:" lines.
    let polled = |s: &str| -> Vec<String> {
        s.lines().filter(|l| l.starts_with("worker ")).flat_map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>()).collect()
    };
    wait_until("eight inputs on two workers", Duration::from_secs(10), || {
        let s = workers();
        s.lines().filter(|l| l.starts_with("worker ")).count() == 2 && polled(&s).iter().filter(|w| inputs.contains(&w.as_str())).count() == inputs.len()
    });
    let s = workers();
    for name in &inputs {
        assert_eq!(polled(&s).iter().filter(|w| w == name).count(), 1, "{name} polled by exactly one worker:\n{s}");
    }
    let line_of = |name: &str| s.lines().position(|l| l.starts_with("worker ") && l.split_whitespace().any(|w| w == name));
    for (q0, q1) in &queues {
        assert_ne!(line_of(q0), line_of(q1), "a port's two queues on different workers:\n{s}");
    }

    assert!(vm1.ping_eventually("198.18.12.2", Duration::from_secs(10)), "tap -> tap\n{}", n.d.log());
    assert!(vm1.ping_eventually("198.18.12.3", Duration::from_secs(10)), "tap -> veth");
    assert!(vm3.ping("198.18.12.2", 2), "veth -> tap");
    tcp_transfer(&vm2, &vm1, "198.18.12.2", 5411, 4 << 20).expect("TCP tap -> tap with two workers");
    tcp_transfer(&vm3, &vm2, "198.18.12.3", 5412, 4 << 20).expect("TCP tap -> veth with two workers");
    tcp_transfer(&vm1, &vm3, "198.18.12.1", 5413, 4 << 20).expect("TCP veth -> tap with two workers");

    // Each worker reports what it did; the transfers went through both.
    let stat = |s: &str, label: &str| -> Vec<u64> {
        s.lines().filter_map(|l| l.trim().strip_prefix(label)).filter_map(|r| r.split_whitespace().next()?.parse().ok()).collect()
    };
    let s = workers();
    let frames = stat(&s, "frames received:");
    assert_eq!(frames.len(), 2, "a frame count per worker:\n{s}");
    assert!(frames.iter().sum::<u64>() > 150, "three 4 MiB transfers and their ACKs were counted:\n{s}");
    assert_eq!(stat(&s, "wake-ups:").len(), 2, "wake-ups per worker:\n{s}");
    let split = s.lines().filter(|l| l.trim().starts_with("time over ") && l.contains("busy") && l.contains("sleeping")).count();
    assert_eq!(split, 2, "time split per worker:\n{s}");
    // How each worker does its I/O: taps written through io_uring (the kernels rvs is
    // tested on have it; a worker whose flows never gave it a batch for a tap has not
    // used its ring yet), each of the veth's two queues read from its own ring.
    let used = s.matches("tap writes: io_uring, one submission per batch").count();
    let unused = s.matches("tap writes: io_uring (not used yet)").count();
    assert!(used >= 1 && used + unused == 2, "the workers write taps through io_uring:\n{s}");
    for q in 0..2 {
        assert!(s.contains(&format!("{v3}#{q} by ring")), "queue {q} of {v3} read from its ring:\n{s}");
    }
    n.d.ctl_ok(&["rvs/workers-clear"]);
    let after = stat(&workers(), "frames received:").iter().sum::<u64>();
    assert!(after < frames.iter().sum::<u64>() / 10, "cleared: {after} frames since");

    // Every VM's address is in the first worker's table, on its own port: a fanout
    // socket that saw rvs's own transmissions on the veth would have moved the tap
    // VMs' addresses there.
    let table = fdb(&n, "br0");
    let of = |p: &str| n.d.ctl_ok(&["get", "Interface", p, "ofport"]).trim().to_string();
    for (vm, dev, port) in [(&vm1, &p1, &p1), (&vm2, &p2, &p2), (&vm3, &v3p, &v3)] {
        let mac = mac_of(vm, dev);
        let row = table.lines().find(|l| l.contains(&mac)).unwrap_or_else(|| panic!("{mac} not in the first worker's table:\n{table}"));
        assert_eq!(row.split_whitespace().next(), Some(of(port).as_str()), "{mac} on {port}:\n{table}");
    }
    let moved = n.d.ctl_ok(&["fdb/stats-show", "br0"]);
    assert!(moved.contains("Total number of port moved MAC entries  : 0"), "no address ever moved:\n{moved}");

    let rx = |d: &Daemon| -> u64 { d.ctl_ok(&["get", "Interface", &v3, "statistics:rx_packets"]).trim().parse().unwrap_or(0) };
    let before = rx(&n.d);
    assert!(before > 50, "the veth port counted the transfers (64 KiB GSO frames): {before}");
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:n-workers=1"]);
    wait_until("one worker, the veth with one queue", Duration::from_secs(10), || {
        let s = workers();
        s.lines().filter(|l| l.starts_with("worker ")).count() == 1 && polled(&s).iter().any(|w| w == &v3)
    });
    assert!(vm3.ping_eventually("198.18.12.1", Duration::from_secs(10)), "veth -> tap with one worker again");
    assert!(rx(&n.d) >= before, "counters kept across the reopen");

    // The taps, which live in the VMs' namespaces, lose their second queue in place
    // and get it back when the workers come back: the device is never closed.
    let tx_queues = |vm: &Netns, dev: &str| vm.sh(&format!("ls /sys/class/net/{dev}/queues | grep -c '^tx-'")).trim().to_string();
    wait_until("every port with one queue", Duration::from_secs(10), || {
        let s = workers();
        [&p1, &p2, &v3].iter().all(|p| polled(&s).iter().any(|w| w == p.as_str()))
    });
    assert_eq!(
        tx_queues(&vm1, &p1),
        "1",
        "{p1}: one queue left
{}",
        n.d.log()
    );
    assert!(vm1.ping_eventually("198.18.12.2", Duration::from_secs(10)), "tap -> tap with one queue each");
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:n-workers=2"]);
    wait_until("two workers, the taps with two queues again", Duration::from_secs(10), || {
        let s = workers();
        s.lines().filter(|l| l.starts_with("worker ")).count() == 2 && polled(&s).iter().filter(|w| inputs.contains(&w.as_str())).count() == inputs.len()
    });
    assert_eq!(
        tx_queues(&vm1, &p1),
        "2",
        "{p1}: a queue attached in the VM's namespace
{}",
        n.d.log()
    );
    assert_eq!(tx_queues(&vm2, &p2), "2", "{p2}: a queue attached in the VM's namespace");
    tcp_transfer(&vm2, &vm1, "198.18.12.2", 5414, 4 << 20).expect("TCP tap -> tap after the taps were requeued");
}

/// `rvs-vswitchd --plain-io` (no io_uring, no AF_PACKET receive rings: for kernels or
/// sandboxes that refuse them) switches the same traffic through the frame-by-frame
/// paths: tap -> tap, tap <-> veth, large (GSO) frames included, checked end to end,
/// and `rvs/workers` says which way it reads and writes.
#[test]
fn plain_io_forwards_the_same_traffic() {
    let n = Node::with_args("pio", &["--plain-io"]);
    n.d.ctl_ok(&["add-br", "br0"]);
    let (p1, p2, v3, v3p) = (unique("pi1"), unique("pi2"), unique("pi3"), unique("pi3p"));
    let vm1 = n.vm("br0", &p1, &[], "198.18.13.1/24");
    let vm2 = n.vm("br0", &p2, &[], "198.18.13.2/24");
    n.ns.sh(&format!("ip link add {v3} type veth peer name {v3p} && ip link set {v3} up"));
    n.d.ctl_ok(&["add-port", "br0", &v3]);
    let vm3 = Netns::new("vm");
    plug(Some(&n.ns), &v3p, &vm3, "198.18.13.3/24");
    assert!(vm1.ping_eventually("198.18.13.2", Duration::from_secs(10)), "tap -> tap\n{}", n.d.log());
    assert!(vm1.ping_eventually("198.18.13.3", Duration::from_secs(10)), "tap -> veth\n{}", n.d.log());
    tcp_transfer(&vm2, &vm1, "198.18.13.2", 5421, 4 << 20).expect("TCP tap -> tap with --plain-io");
    tcp_transfer(&vm3, &vm1, "198.18.13.3", 5422, 4 << 20).expect("TCP tap -> veth with --plain-io");
    tcp_transfer(&vm2, &vm3, "198.18.13.2", 5423, 4 << 20).expect("TCP veth -> tap with --plain-io");
    let s = n.d.ctl_ok(&["rvs/workers"]);
    assert!(s.contains("tap writes: one write per frame (--plain-io)"), "taps written frame by frame:\n{s}");
    assert!(s.contains(&format!("AF_PACKET receive: {v3} by recvmmsg")), "the veth read with recvmmsg:\n{s}");
    assert!(n.d.log().contains("--plain-io"), "the log says so:\n{}", n.d.log());
}
