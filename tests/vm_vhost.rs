//! Real guests on rvs's vhost-user ports (issue 27): QEMU's virtio-net served by rvs
//! over vhost-user, guest memory a shared memfd — no tap, no kernel in the guests' path.
//!
//! * `vhost_user_guests_and_qemu_restarts`: on one bridge, guest 1 on a `dpdkvhostuser`
//!   port (rvs listens on `RUNDIR/NAME`, QEMU connects with `reconnect=1`), guest 2 on a
//!   `dpdkvhostuserclient` port (QEMU listens, rvs connects), guest 3 on a tap as
//!   libvirt makes them. Ping between all, 8 MiB of TCP from guest 1 to guest 2 checked
//!   by SHA-256, the ports' statistics; a guest on a second node across VXLAN: ping
//!   and 8 MiB of TCP each way between it and the vhost-user guests; a frontend that sends garbage dropped while the
//!   guests carry on; then each vhost-user guest's QEMU is killed and
//!   started again and its port carries traffic again.
//! * `libvirt_vhostuser_interface`: a guest libvirt starts with `<interface
//!   type='vhostuser'>` on a `dpdkvhostuser` port added with ovs-vsctl (rvsctl), as an
//!   operator does, pinging a guest on a `dpdkvhostuserclient` port; live migration
//!   refused with QEMU's reason.
//! * `multiqueue_guest_uses_both_pairs`: a 2-CPU guest with two queue pairs and two
//!   workers: each pair polled by its own worker, frames sent from CPU k (transmit
//!   queue k, by the guest's XPS map) reach that queue's worker only, and TCP sent from
//!   each CPU arrives intact.
//!
//! Root required; TCG unless KVM works. Guests are shared between checks to keep the
//! time down. Everything (namespaces, daemons, QEMUs, libvirtd) goes on drop, also on
//! failure. Addresses: 198.18.0.0/15 only.

use std::time::{Duration, Instant};

use rvs_testkit::libvirt::Libvirtd;
use rvs_testkit::vm::{Qemu, accel, image, require_vm_tools, unique_mac};
use rvs_testkit::*;

fn boot() -> Duration {
    Duration::from_secs(if accel() == vm::Accel::Kvm { 60 } else { 240 })
}

/// A number from the port's `statistics` column.
fn stat(n: &Node, port: &str, key: &str) -> u64 {
    let s = n.d.ctl_ok(&["get", "Interface", port, &format!("statistics:{key}")]);
    s.trim().parse().unwrap_or_else(|_| panic!("{port} statistics:{key}: {s}"))
}

/// Sends 8 MiB from `from` to `to_ip` (where `to` listens) over one TCP connection and
/// compares SHA-256 on both ends.
fn tcp_checked(from: &vm::Agent, to: &vm::Agent, to_ip: &str, what: &str) {
    from.ok("dd if=/dev/urandom of=/tmp/d bs=1M count=8 2>/dev/null");
    let sent = from.ok("sha256sum /tmp/d").split_whitespace().next().unwrap_or_default().to_string();
    // busybox nc closes at end of its input: the receiver's stdin must stay open.
    to.ok("rm -f /tmp/r; (sleep 300 | nc -l -p 5001 >/tmp/r) >/dev/null 2>&1 </dev/null &");
    std::thread::sleep(Duration::from_millis(500));
    let o = from.run(&format!("nc -w 30 {to_ip} 5001 </tmp/d"), Duration::from_secs(180));
    wait_until("the receiver to finish", Duration::from_secs(60), || !to.run("pidof nc", Duration::from_secs(10)).ok());
    let got = to.ok("sha256sum /tmp/r; ls -l /tmp/r");
    assert!(got.starts_with(&sent) && !sent.is_empty(), "{what}: sent {sent}, received {got} (nc rc {} {})", o.rc, o.out);
}

/// Sends 8 MiB from guest `from` to namespace `to` (listening on `to_ip`) over one TCP
/// connection and compares SHA-256 on both ends; the guest sends with `nc` (e.g.
/// `taskset 2 nc` to send from CPU 1).
fn tcp_to_ns_with(from: &vm::Agent, nc: &str, to: &Netns, to_ip: &str, what: &str) {
    let out = std::env::temp_dir().join(format!("{}.sha", unique("vt")));
    let py = format!(
        "import socket,hashlib\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('{to_ip}',5003));s.listen(1);s.settimeout(100)\nc,_=s.accept();c.settimeout(100);h=hashlib.sha256()\nwhile True:\n d=c.recv(1<<16)\n if not d: break\n h.update(d)\nprint(h.hexdigest())\n"
    );
    to.sh(&format!("(timeout 120 python3 -c \"{py}\" > {} 2>&1 &)", out.display()));
    std::thread::sleep(Duration::from_millis(500));
    from.ok("dd if=/dev/urandom of=/tmp/d bs=1M count=8 2>/dev/null");
    let sent = from.ok("sha256sum /tmp/d").split_whitespace().next().unwrap_or_default().to_string();
    let o = from.run(&format!("{nc} -w 30 {to_ip} 5003 </tmp/d"), Duration::from_secs(180));
    let mut got = String::new();
    wait_until("the receiver to finish", Duration::from_secs(60), || {
        got = std::fs::read_to_string(&out).unwrap_or_default();
        got.trim().len() >= 64 || got.contains("Error")
    });
    let _ = std::fs::remove_file(&out);
    assert!(got.trim() == sent && !sent.is_empty(), "{what}: sent {sent}, received {got} (nc rc {} {})", o.rc, o.out);
}

#[test]
fn vhost_user_guests_and_qemu_restarts() {
    require_vm_tools();
    let t0 = Instant::now();
    eprintln!("guest image: {}", image().versions.trim());
    let n = Node::new("vmvu");
    let br = unique("br");
    n.d.ctl_ok(&["add-br", &br]);
    let (p1, p2) = (unique("vhu"), unique("vhc"));
    let qsock = n.d.dir.join(format!("{p2}.qemu"));
    n.d.ctl_ok(&["add-port", &br, &p1, "--", "set", "Interface", &p1, "type=dpdkvhostuser"]);
    let server_path = format!("options:vhost-server-path={}", qsock.display());
    n.d.ctl_ok(&["add-port", &br, &p2, "--", "set", "Interface", &p2, "type=dpdkvhostuserclient", &server_path]);
    let sock1 = n.d.dir.join(&p1);
    assert!(sock1.exists(), "rvs listens on RUNDIR/{p1}");
    let tap = unique("vt");
    n.ns.sh(&format!("ip tuntap add dev {tap} mode tap vnet_hdr && ip link set {tap} up"));
    n.d.ctl_ok(&["add-port", &br, &tap]);

    let (m1, m2, m3) = (unique_mac(), unique_mac(), unique_mac());
    let mut g1 = Qemu::on_vhost_user(&sock1, false, &m1, "198.18.8.1/24");
    let mut g2 = Qemu::on_vhost_user(&qsock, true, &m2, "198.18.8.2/24");
    let mut g3 = Qemu::on_tap(Some(&n.ns.name), &tap, &m3, "198.18.8.3/24");
    g1.wait_ready(boot());
    g2.wait_ready(boot());
    g3.wait_ready(boot());
    eprintln!("three guests up after {:?}", t0.elapsed());
    for p in [&p1, &p2] {
        wait_until(&format!("{p}'s link up"), Duration::from_secs(30), || n.d.ctl_ok(&["get", "Interface", p, "link_state"]).trim() == "up");
    }

    {
        let (a1, a2, a3) = (g1.agent(), g2.agent(), g3.agent());
        assert!(a1.ping_eventually("198.18.8.2", Duration::from_secs(30)), "vhost-user guest 1 -> 2\n{}\n{}", n.d.log(), g1.diagnostics());
        assert!(a2.ping("198.18.8.1", 3), "vhost-user guest 2 -> 1");
        assert!(a1.ping_eventually("198.18.8.3", Duration::from_secs(30)), "vhost-user guest -> tap guest\n{}", n.d.log());
        assert!(a3.ping("198.18.8.2", 3), "tap guest -> vhost-user guest");
        assert!(a1.ping("-s 1472 198.18.8.2", 2), "1500-byte packets");
        let t = Instant::now();
        tcp_checked(a1, a2, "198.18.8.2", "vhost-user -> vhost-user");
        eprintln!("8 MiB vhost-user -> vhost-user in {:?}", t.elapsed());
        tcp_checked(a3, a1, "198.18.8.1", "tap -> vhost-user");
    }
    for p in [&p1, &p2] {
        // 8 MiB crossed each (in TSO frames of up to 64 KiB: few packets, many bytes).
        let bytes = stat(&n, p, "rx_bytes") + stat(&n, p, "tx_bytes");
        assert!(bytes > 8 << 20 && stat(&n, p, "rx_packets") > 10 && stat(&n, p, "tx_packets") > 10, "{p} counts its frames: {bytes} bytes");
        assert_eq!(stat(&n, p, "vhost_bad_descriptors") + stat(&n, p, "vhost_ring_errors"), 0, "{p}: a real driver breaks no rule");
    }
    let table = n.d.ctl_ok(&["fdb/show", &br]);
    let ofport = n.d.ctl_ok(&["get", "Interface", &p1, "ofport"]).trim().to_string();
    assert!(table.lines().any(|l| l.contains(&m1) && l.split_whitespace().next() == Some(ofport.as_str())), "{m1} learned on {p1}:\n{table}");
    eprintln!("traffic checked after {:?}", t0.elapsed());

    // A second node across VXLAN (rvs in its own namespace, a guest on a tap there):
    // the vhost-user guests' frames, TSO segments included, go through the tunnel and
    // back.
    let ul = rvs_testkit::overlay::Underlay::new();
    ul.attach(&n.ns, 1);
    let n2 = Node::new("vmv2");
    ul.attach(&n2.ns, 2);
    let br2 = unique("br");
    n2.d.ctl_ok(&["add-br", &br2]);
    for (node, b, peer) in [(&n, &br, 2), (&n2, &br2, 1)] {
        let remote = format!("options:remote_ip=198.19.0.{peer}");
        node.d.ctl_ok(&["add-port", b, "vx0", "--", "set", "Interface", "vx0", "type=vxlan", &remote, "options:key=27"]);
    }
    let tap2 = unique("vt");
    n2.ns.sh(&format!("ip tuntap add dev {tap2} mode tap vnet_hdr && ip link set {tap2} up"));
    n2.d.ctl_ok(&["add-port", &br2, &tap2]);
    let mut g4 = Qemu::on_tap(Some(&n2.ns.name), &tap2, &unique_mac(), "198.18.8.4/24");
    g4.wait_ready(boot());
    {
        let (a1, a2, a4) = (g1.agent(), g2.agent(), g4.agent());
        assert!(a1.ping_eventually("198.18.8.4", Duration::from_secs(30)), "vhost-user guest -> guest across VXLAN\n{}\n{}", n.d.log(), n2.d.log());
        assert!(a4.ping("198.18.8.2", 3), "guest across VXLAN -> dpdkvhostuserclient guest");
        assert!(a1.ping("-s 1472 198.18.8.4", 2), "1500-byte packets through the tunnel");
        tcp_checked(a4, a1, "198.18.8.1", "guest across VXLAN -> vhost-user");
        tcp_checked(a2, a4, "198.18.8.4", "vhost-user -> guest across VXLAN");
    }
    eprintln!("VXLAN checked after {:?}", t0.elapsed());

    // A frontend that speaks no vhost-user on a third port: a header announcing a huge
    // body, then garbage. Its connection is dropped and counted; the daemon and the
    // guests carry on.
    let p3 = unique("vhx");
    n.d.ctl_ok(&["add-port", &br, &p3, "--", "set", "Interface", &p3, "type=dpdkvhostuser"]);
    {
        use std::io::Write;
        let mut s = std::os::unix::net::UnixStream::connect(n.d.dir.join(&p3)).expect("connect to rvs's socket");
        let mut junk = vec![5u8, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f];
        junk.extend((0..4096u32).map(|i| (i * 37) as u8));
        let _ = s.write_all(&junk);
        wait_until("the bad frontend to be counted", Duration::from_secs(10), || stat(&n, &p3, "vhost_protocol_errors") > 0);
    }
    assert!(g1.agent().ping("198.18.8.2", 2), "guests unaffected by the bad frontend\n{}", n.d.log());
    assert_eq!(n.d.ctl_ok(&["get", "Interface", &p3, "link_state"]).trim(), "down");

    // QEMU killed and started again: as the server (rvs reconnects to it) and as the
    // client (it reconnects to rvs). The port recovers without being touched.
    for (i, g) in [(1, &mut g1), (2, &mut g2)] {
        let conns = stat(&n, if i == 1 { &p1 } else { &p2 }, "vhost_connections");
        let (p, sock, listens, mac, ip) = if i == 1 { (&p1, &sock1, false, &m1, "198.18.8.1/24") } else { (&p2, &qsock, true, &m2, "198.18.8.2/24") };
        g.kill();
        wait_until(&format!("{p}'s link down"), Duration::from_secs(30), || n.d.ctl_ok(&["get", "Interface", p, "link_state"]).trim() == "down");
        if listens {
            let _ = std::fs::remove_file(sock);
        }
        *g = Qemu::on_vhost_user(sock, listens, mac, ip);
        g.wait_ready(boot());
        wait_until(&format!("{p} to reconnect"), Duration::from_secs(30), || stat(&n, p, "vhost_connections") > conns);
        let peer = if i == 1 { "198.18.8.2" } else { "198.18.8.1" };
        assert!(g.agent().ping_eventually(peer, Duration::from_secs(30)), "guest {i} after its QEMU restarted\n{}", n.d.log());
        assert!(g.agent().ping("198.18.8.3", 2), "guest {i} -> tap guest after the restart");
    }
    assert!(n.d.ctl_ok(&["get", "Interface", &p1, "error"]).trim() == "[]");
    eprintln!("vhost_user_guests_and_qemu_restarts: {:?} in all", t0.elapsed());
}

#[test]
fn libvirt_vhostuser_interface() {
    require_vm_tools();
    let t0 = Instant::now();
    let n = Node::new("vmvl");
    let br = unique("br");
    n.d.ctl_ok(&["add-br", &br]);
    let (p1, p2) = (unique("vhl"), unique("vhq"));
    n.d.ctl_ok(&["add-port", &br, &p1, "--", "set", "Interface", &p1, "type=dpdkvhostuser"]);
    let qsock = n.d.dir.join(format!("{p2}.qemu"));
    let server_path = format!("options:vhost-server-path={}", qsock.display());
    n.d.ctl_ok(&["add-port", &br, &p2, "--", "set", "Interface", &p2, "type=dpdkvhostuserclient", &server_path]);
    let made = format!("Socket {} created for vhost-user port {p1}", n.d.dir.join(&p1).display());
    wait_until("OVS-DPDK's socket line in the log", Duration::from_secs(5), || n.d.log().contains(&made));
    assert!(n.d.log().contains("dpdkvhostuser ports are considered deprecated;  please migrate to dpdkvhostuserclient ports."), "{}", n.d.log());
    let lv = Libvirtd::start(&n.ns.name, &n.d);
    let mac = unique_mac();
    // libvirt connects to rvs's socket (mode='client'); QEMU 7.2 under TCG needs legacy
    // interrupts for vhost-user, set through libvirt's QEMU override.
    let iface = format!(
        "    <interface type='vhostuser'>\n      <mac address='{mac}'/>\n      <source type='unix' path='{}' mode='client'>\n        <reconnect enabled='yes' timeout='1'/>\n      </source>\n      <model type='virtio'/>\n    </interface>\n",
        n.d.dir.join(&p1).display()
    );
    let mem = "  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>\n";
    let over = "  <qemu:override><qemu:device alias='net0'><qemu:frontend><qemu:property name='vectors' type='unsigned' value='0'/></qemu:frontend></qemu:device></qemu:override>\n";
    let xml = rvs_testkit::libvirt::domain_xml_with("gvhu", &mac, "198.18.9.1/24", &iface, mem, over, &lv.dir);
    lv.virsh_xml("create", "gvhu", &xml);
    let mut g = rvs_testkit::libvirt::Guest::new(&lv, "gvhu", &mac);
    let mut peer = Qemu::on_vhost_user(&qsock, true, &unique_mac(), "198.18.9.2/24");
    g.wait_ready(&lv, boot());
    peer.wait_ready(boot());
    eprintln!("libvirt guest and its peer up after {:?}", t0.elapsed());
    let dom = lv.virsh_ok(&["dumpxml", "gvhu"]);
    assert!(dom.contains("<interface type='vhostuser'>"), "{dom}");
    assert!(g.agent().ping_eventually("198.18.9.2", Duration::from_secs(30)), "libvirt vhost-user guest -> peer\n{}\n{}", n.d.log(), lv.log());
    assert!(peer.agent().ping("198.18.9.1", 3), "peer -> libvirt guest");
    assert!(stat(&n, &p1, "rx_packets") > 0);
    // Live migration is refused, with QEMU's reason (rvs offers no dirty-page logging),
    // and the guest runs on.
    let mig = lv.virsh(&["qemu-monitor-command", "gvhu", "--hmp", "migrate -d exec:cat>/dev/null"]);
    let said = format!("{}{}", String::from_utf8_lossy(&mig.stdout), String::from_utf8_lossy(&mig.stderr));
    assert!(said.contains("Migration disabled: vhost-user backend lacks VHOST_USER_PROTOCOL_F_LOG_SHMFD feature"), "migration refused with its reason: {said}");
    assert!(g.agent().ping("198.18.9.2", 2), "the guest runs on after the refused migration");
    // virsh destroy: QEMU goes, the port stays (rvs's socket, as with OVS), link down.
    lv.virsh_ok(&["destroy", "gvhu"]);
    wait_until("the port's link down", Duration::from_secs(30), || n.d.ctl_ok(&["get", "Interface", &p1, "link_state"]).trim() == "down");
    eprintln!("libvirt_vhostuser_interface: {:?} in all", t0.elapsed());
}

/// Per worker of `rvs/workers`: its inputs and the frames it received.
fn workers(n: &Node) -> Vec<(Vec<String>, u64)> {
    let out = n.d.ctl_ok(&["rvs/workers"]);
    let mut v: Vec<(Vec<String>, u64)> = Vec::new();
    for l in out.lines() {
        if let Some(rest) = l.strip_prefix("worker ") {
            let inputs = rest.split_once(": ").map(|(_, i)| i.split_whitespace().map(String::from).collect()).unwrap_or_default();
            v.push((inputs, 0));
        } else if let (Some(last), Some(f)) = (v.last_mut(), l.trim().strip_prefix("frames received: ")) {
            last.1 = f.split_whitespace().next().and_then(|x| x.parse().ok()).unwrap_or(0);
        }
    }
    v
}

#[test]
fn multiqueue_guest_uses_both_pairs() {
    require_vm_tools();
    let t0 = Instant::now();
    let n = Node::new("vmvq");
    n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:n-workers=2"]);
    let br = unique("br");
    n.d.ctl_ok(&["add-br", &br]);
    let p = unique("vhm");
    n.d.ctl_ok(&["add-port", &br, &p, "--", "set", "Interface", &p, "type=dpdkvhostuser"]);
    let vq = unique("vq");
    let peer = n.veth_vm(&br, &vq, "198.18.10.2/24");
    // Two queue pairs and two guest CPUs: the driver enables both pairs and sends from
    // CPU k on transmit queue k (XPS).
    let mut g = Qemu::on_vhost_user_queues(&n.d.dir.join(&p), false, &unique_mac(), "198.18.10.1/24", 2);
    g.wait_ready(boot());
    eprintln!("two-CPU guest up after {:?}", t0.elapsed());
    let a = g.agent();
    let queues = a.ok("ls /sys/class/net/eth0/queues");
    assert!(["rx-0", "rx-1", "tx-0", "tx-1"].iter().all(|q| queues.split_whitespace().any(|w| w == *q)), "the guest runs two pairs: {queues}");
    for k in 0..2u32 {
        let xps = a.ok(&format!("cat /sys/class/net/eth0/queues/tx-{k}/xps_cpus"));
        assert_eq!(u64::from_str_radix(xps.trim().replace(',', "").as_str(), 16).ok(), Some(1 << k), "CPU {k} sends on queue {k}: {xps}");
    }
    assert!(a.ping_eventually("198.18.10.2", Duration::from_secs(30)), "multiqueue guest -> peer\n{}", n.d.log());
    // Each of the port's queues is an input of its own worker.
    let ws = workers(&n);
    let holder =
        |q: u32| ws.iter().position(|(i, _)| i.iter().any(|x| *x == format!("{p}#{q}"))).unwrap_or_else(|| panic!("{p}#{q} polled by no worker: {ws:?}"));
    let (w0, w1) = (holder(0), holder(1));
    assert_ne!(w0, w1, "the two queues go to the two workers: {ws:?}");
    // 20 frames sent from CPU k to a neighbour that does not answer (a static entry:
    // no ARP either), so the only frames are the guest's, on queue k: the worker
    // polling queue k receives them, the other worker does not.
    a.ok("arp -s 198.18.10.77 02:00:00:00:00:77");
    for (k, w) in [(0u32, w0), (1, w1)] {
        n.d.ctl_ok(&["rvs/workers-clear"]);
        a.run(&format!("taskset {} ping -c 20 -i 0.05 -w 3 198.18.10.77", 1 << k), Duration::from_secs(60));
        let now = workers(&n);
        eprintln!("20 frames sent from CPU {k}: {now:?}");
        assert!(now[w].1 >= 20, "the worker polling {p}#{k} received the 20 frames sent on queue {k}: {now:?}");
        assert!(now[1 - w].1 < 20, "the other worker did not: {now:?}");
    }
    // 8 MiB from each CPU (so on each queue), checked by SHA-256 in the peer.
    for k in 0..2u32 {
        tcp_to_ns_with(a, &format!("taskset {} nc", 1 << k), &peer, "198.18.10.2", &format!("multiqueue guest, queue {k} -> peer"));
    }
    let bad = n.d.ctl_ok(&["get", "Interface", &p, "statistics:vhost_bad_descriptors"]);
    assert_eq!(bad.trim(), "0");
    eprintln!("multiqueue_guest_uses_both_pairs: {:?} in all", t0.elapsed());
}
