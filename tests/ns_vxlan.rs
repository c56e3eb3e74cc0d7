//! Namespace tests of the VXLAN overlay: "nodes" (namespaces, each with its own
//! rvs-vswitchd) on an underlay (a Linux bridge in its own namespace, joined by veths),
//! VMs on taps. Covers two and three nodes, VLANs across the overlay, broadcast
//! replication without duplicates, interop with the kernel's vxlan, the wire format as
//! tcpdump sees it, MAC moves, and the MTU failure mode. Root required.
//!
//! Underlay addresses: 198.19.0.N/24; overlay (VM) addresses: 198.18.x.y/24.

use std::process::Command;
use std::time::Duration;

use rvs_testkit::overlay::*;
use rvs_testkit::*;

#[test]
fn two_nodes_vlans_over_vxlan() {
    require_tools(&["python3"]);
    let ul = Underlay::new();
    let (n1, n2) = (RvsNode::new(&ul, 1), RvsNode::new(&ul, 2));
    let vx12 = n1.tunnel_to(2, 5000);
    n2.tunnel_to(1, 5000);
    let (a120, pa120) = n1.vm(Some(120), "198.18.120.1/24");
    let (a130, _) = n1.vm(Some(130), "198.18.130.1/24");
    let (_b120, _) = n2.vm(Some(120), "198.18.120.2/24");
    let (_b130, _) = n2.vm(Some(130), "198.18.130.2/24");
    let (_c140, _) = n2.vm(Some(140), "198.18.120.3/24"); // same subnet, other VLAN

    assert!(a120.ping_eventually("198.18.120.2", Duration::from_secs(15)), "VLAN 120 across VXLAN\n{}", n1.d.log());
    assert!(a130.ping_eventually("198.18.130.2", Duration::from_secs(15)), "VLAN 130 across VXLAN");
    assert!(!a120.ping("198.18.120.3", 2), "VLAN 140 must stay isolated from 120");
    // node 2 learned vm a120's MAC on its tunnel port, in VLAN 120.
    let mac = mac_of(&a120, &pa120);
    let (port, vlan) = fdb_row(&n2, &mac).expect("remote MAC learned");
    assert_eq!((port, vlan.as_str()), (n2.ofport("vx1"), "120"));
    let _ = vx12;

    // A TCP transfer of 20 MB across the overlay: VM TSO frames segmented by rvs into
    // UDP GSO trains, received as GRO trains and coalesced back; the receiving stack
    // verifies every checksum and the bytes are compared by hash.
    tcp_transfer(&_b120, &a120, "198.18.120.2", 5301, 20 << 20).expect("TCP across VXLAN");
    tcp_transfer(&a120, &_b120, "198.18.120.1", 5302, 5 << 20).expect("TCP across VXLAN, other way");
}

#[test]
fn three_node_full_mesh_broadcasts_arrive_once() {
    require_tools(&["arping", "tcpdump"]);
    let ul = Underlay::new();
    let nodes: Vec<RvsNode> = (1..=3).map(|n| RvsNode::new(&ul, n)).collect();
    for a in &nodes {
        for b in &nodes {
            if a.n != b.n {
                a.tunnel_to(b.n, 77);
            }
        }
    }
    let vms: Vec<(Netns, String)> = nodes.iter().map(|nd| nd.vm(None, &format!("198.18.33.{}/24", nd.n))).collect();
    assert!(vms[0].0.ping_eventually("198.18.33.2", Duration::from_secs(15)), "{}", nodes[0].d.log());
    assert!(vms[0].0.ping_eventually("198.18.33.3", Duration::from_secs(15)));
    assert!(vms[1].0.ping_eventually("198.18.33.3", Duration::from_secs(15)));
    // 5 broadcast ARP requests for an address nobody has; each remote VM must see
    // exactly 5 (no loop, no duplicate through the third node: split horizon).
    let caps: Vec<_> = vms[1..]
        .iter()
        .map(|(vm, dev)| {
            Command::new("ip")
                .args(["netns", "exec", &vm.name, "timeout", "12", "tcpdump", "-i", dev, "-nn", "-l", "arp and host 198.18.33.99"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("tcpdump")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    vms[0].0.sh(&format!("arping -c 5 -w 8 -I {} 198.18.33.99 || true", vms[0].1));
    for c in caps {
        let out = c.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let n = text.lines().filter(|l| l.contains("Request who-has 198.18.33.99")).count();
        assert_eq!(n, 5, "each broadcast arrives exactly once:\n{text}");
    }
}

#[test]
fn interop_with_linux_kernel_vxlan() {
    require_tools(&["ethtool", "python3"]);
    let ul = Underlay::new();
    let n1 = RvsNode::new(&ul, 1);
    n1.tunnel_to(2, 4242);
    let (vm1, _) = n1.vm(None, "198.18.42.1/24");
    // Node 2: kernel vxlan (dstport 4789, VNI 4242) + Linux bridge + a VM on a veth.
    let k = Netns::new("kn");
    ul.attach(&k, 2);
    let (vxd, brd, v_a, v_b) = (unique("kvx"), unique("kbr"), unique("kva"), unique("kvb"));
    k.sh(&format!(
        "ip link add {vxd} type vxlan id 4242 dstport 4789 remote 198.19.0.1 local 198.19.0.2 && \
         ip link add {brd} type bridge && ip link set {vxd} master {brd} && \
         ip link add {v_a} type veth peer name {v_b} && ip link set {v_a} master {brd} && \
         ip link set {vxd} up && ip link set {brd} up && ip link set {v_a} up"
    ));
    let vm2 = Netns::new("kvm");
    plug(Some(&k), &v_b, &vm2, "198.18.42.2/24");
    // On a purely virtual underlay no NIC ever completes the inner TCP checksum that
    // Linux leaves to offload (a kernel vxlan peer would trust the skb's checksum state,
    // which does not travel in the datagram); with a real NIC the inner checksum is
    // filled on the wire. So the kernel-side VM computes its checksums itself, as
    // every real deployment has them.
    vm2.sh(&format!("ethtool -K {v_b} tx off >/dev/null"));
    assert!(vm1.ping_eventually("198.18.42.2", Duration::from_secs(15)), "rvs -> kernel vxlan\n{}", n1.d.log());
    assert!(vm2.ping("198.18.42.1", 2), "kernel vxlan -> rvs");
    // TCP both ways, bytes compared by hash.
    tcp_transfer(&vm2, &vm1, "198.18.42.2", 5303, 5 << 20).expect("TCP rvs -> kernel vxlan");
    tcp_transfer(&vm1, &vm2, "198.18.42.1", 5304, 5 << 20).expect("TCP kernel vxlan -> rvs");
    // Bursts of frames of one length (ping's preload: 32 requests back to back, twice)
    // leave rvs as UDP GSO trains; the kernel's vxlan takes them apart and every
    // request is answered.
    let out = vm1.sh("ping -q -l 32 -c 64 -s 200 -i 0.5 -W 2 198.18.42.2 || true");
    assert!(out.contains("64 packets transmitted, 64 received"), "{out}");
}

#[test]
fn underlay_capture_shows_standard_vxlan() {
    require_tools(&["tcpdump"]);
    let ul = Underlay::new();
    let (n1, n2) = (RvsNode::new(&ul, 1), RvsNode::new(&ul, 2));
    n1.tunnel_to(2, 5000);
    n2.tunnel_to(1, 5000);
    let (vm1, _) = n1.vm(Some(120), "198.18.121.1/24");
    let (_vm2, _) = n2.vm(Some(120), "198.18.121.2/24");
    assert!(vm1.ping_eventually("198.18.121.2", Duration::from_secs(15)));
    let cap = Command::new("ip")
        .args(["netns", "exec", &n1.ns.name, "timeout", "8", "tcpdump", "-i", &n1.uplink, "-nn", "-e", "-v", "-c", "4", "udp port 4789"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    vm1.ping("198.18.121.2", 3);
    let text = String::from_utf8_lossy(&cap.wait_with_output().unwrap().stdout).into_owned();
    assert!(text.contains("198.19.0.1.") && text.contains("> 198.19.0.2.4789"), "UDP to 4789:\n{text}");
    assert!(text.contains("VXLAN, flags [I] (0x08), vni 5000"), "I flag and VNI:\n{text}");
    assert!(text.contains("vlan 120"), "inner 802.1Q tag:\n{text}");
    // Outer source ports come from the kernel's ephemeral range.
    let sport: Vec<u32> = text.split("198.19.0.1.").skip(1).filter_map(|s| s.split(' ').next()?.parse().ok()).collect();
    assert!(!sport.is_empty() && sport.iter().all(|p| (32768..=61000).contains(p)), "source ports {sport:?}");
}

#[test]
fn mac_moves_with_a_migrating_vm() {
    require_tools(&["arping"]);
    let ul = Underlay::new();
    let (n1, n2) = (RvsNode::new(&ul, 1), RvsNode::new(&ul, 2));
    n1.tunnel_to(2, 9);
    n2.tunnel_to(1, 9);
    let (vm, p1) = n1.vm(Some(120), "198.18.122.1/24");
    let (peer, _) = n2.vm(Some(120), "198.18.122.2/24");
    assert!(vm.ping_eventually("198.18.122.2", Duration::from_secs(15)));
    let mac = mac_of(&vm, &p1);
    assert_eq!(fdb_row(&n2, &mac).map(|r| r.0), Some(n2.ofport("vx1")), "behind the tunnel before the move");
    // Live migration: the VM's vNIC reappears on node 2 (same MAC), the old one goes.
    let p2 = unique("mig");
    n2.d.ctl_ok(&["add-port", "br0", &p2, "tag=120", "--", "set", "Interface", &p2, "type=tap"]);
    sh(&format!("ip -n {} link set {p2} netns {}", n2.ns.name, vm.name));
    vm.sh(&format!("ip link del {p1}; ip link set {p2} address {mac} && ip link set {p2} up && ip addr add 198.18.122.1/24 dev {p2}"));
    // The guest announces itself (gratuitous ARP), as QEMU does after migration.
    vm.sh(&format!("arping -c 1 -U -I {p2} 198.18.122.1 || true"));
    wait_until("the MAC to move to the local port", Duration::from_secs(10), || fdb_row(&n2, &mac).map(|r| r.0) == Some(n2.ofport(&p2)));
    let stats = n2.d.ctl_ok(&["fdb/stats-show", "br0"]);
    assert!(!stats.contains("Total number of port moved MAC entries  : 0\n"), "{stats}");
    assert!(peer.ping_eventually("198.18.122.1", Duration::from_secs(10)), "reachable at its new place");
    // And node 1 learns it behind its tunnel now.
    assert!(vm.ping_eventually("198.18.122.2", Duration::from_secs(10)));
}

#[test]
fn oversize_frames_are_counted_until_the_underlay_mtu_is_raised() {
    let ul = Underlay::with_mtu(1500);
    let (n1, n2) = (RvsNode::new(&ul, 1), RvsNode::new(&ul, 2));
    n1.tunnel_to(2, 5);
    n2.tunnel_to(1, 5);
    let (vm1, _) = n1.vm(None, "198.18.123.1/24");
    let (_vm2, _) = n2.vm(None, "198.18.123.2/24");
    assert!(vm1.ping_eventually("198.18.123.2", Duration::from_secs(15)));
    let drops = || -> u64 {
        let s = n1.d.ctl_ok(&["get", "Interface", "vx2", "statistics:tx_mtu_exceeded"]);
        s.trim().parse().unwrap_or(0)
    };
    assert_eq!(drops(), 0);
    // 1500-byte inner frames (1472 bytes of ICMP payload) do not fit a 1500 underlay.
    assert!(!vm1.ping_ok_df(1472), "a full-size frame must not pass a 1500-byte underlay");
    assert!(drops() > 0, "and the drop is counted");
    assert!(n1.d.log().contains("do not fit the path MTU"), "and logged:\n{}", n1.d.log());
    // The operator's fix: underlay MTU 2000 (both ends, and the underlay switch).
    ul.ns.sh(&format!("for d in $(ls /sys/class/net/{}/brif); do ip link set $d mtu 2000; done", ul.br));
    n1.ns.sh(&format!("ip link set {} mtu 2000", n1.uplink));
    n2.ns.sh(&format!("ip link set {} mtu 2000", n2.uplink));
    assert!(vm1.ping_ok_df(1472), "full-size frames pass once the underlay MTU is 2000\n{}", n1.d.log());
}

trait PingDf {
    fn ping_ok_df(&self, size: u32) -> bool;
}

impl PingDf for Netns {
    /// Pings 198.18.123.2 with `size` bytes of payload and DF set, 3 tries.
    fn ping_ok_df(&self, size: u32) -> bool {
        self.sh_ok(&format!("ping -c 3 -i 0.3 -W 1 -M do -s {size} 198.18.123.2"))
    }
}

/// An `rvs/drops` counter of node `node`'s VXLAN receive socket.
fn endpoint_counter(node: &RvsNode, name: &str) -> u64 {
    let t = node.d.ctl_ok(&["rvs/drops"]);
    let sock = t.split("VXLAN receive socket").nth(1).unwrap_or_else(|| panic!("no VXLAN socket in rvs/drops:\n{t}"));
    sock.lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().parse::<u64>().unwrap())).unwrap_or_else(|| panic!("no {name} in rvs/drops:\n{t}"))
}

/// Sends each hex-encoded datagram to 198.19.0.`to`:4789 from namespace `ns`.
fn send_datagrams(ns: &Netns, to: u8, datagrams: &[String]) {
    let list = datagrams.iter().map(|d| format!("'{d}'")).collect::<Vec<_>>().join(",");
    ns.sh(&format!(
        "python3 -c \"import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(bytes.fromhex(d), ('198.19.0.{to}', 4789)) for d in [{list}]]\""
    ));
}

#[test]
fn bad_input_on_4789_is_counted_and_forwarding_goes_on() {
    require_tools(&["python3"]);
    let ul = Underlay::new();
    let (n1, n2) = (RvsNode::new(&ul, 1), RvsNode::new(&ul, 2));
    n1.tunnel_to(2, 5000);
    n2.tunnel_to(1, 5000);
    let (vm1, p1) = n1.vm(None, "198.18.123.1/24");
    let (_vm2, _) = n2.vm(None, "198.18.123.2/24");
    assert!(vm1.ping_eventually("198.18.123.2", Duration::from_secs(15)));
    let rogue = Netns::new("rg");
    ul.attach(&rogue, 9);
    let (bad0, unknown0) = (endpoint_counter(&n1, "bad_header"), endpoint_counter(&n1, "unknown_tunnel"));

    // A broadcast inner frame: were it accepted, it would be flooded to vm1.
    let inner = format!("ffffffffffff02000000aa010800{}", "45".repeat(46));
    let hdr = |flags: &str, vni: u32| format!("{flags}000000{vni:06x}00");
    send_datagrams(
        &n2.ns, // from the real peer's address
        1,
        &[
            "08".into(),                                 // short
            String::new(),                               // empty
            format!("{}{inner}", hdr("00", 5000)),       // I flag missing
            hex(b"GET / HTTP/1.0\r\n\r\n some garbage"), // garbage
            format!("{}{inner}", hdr("08", 77)),         // a VNI no port has
        ],
    );
    send_datagrams(&rogue, 1, &[format!("{}{inner}", hdr("08", 5000))]); // unknown source
    wait_until("the bad datagrams to be counted", Duration::from_secs(10), || {
        endpoint_counter(&n1, "bad_header") >= bad0 + 4 && endpoint_counter(&n1, "unknown_tunnel") >= unknown0 + 2
    });
    assert_eq!(endpoint_counter(&n1, "bad_header"), bad0 + 4);
    assert_eq!(endpoint_counter(&n1, "unknown_tunnel"), unknown0 + 2);
    // Nothing of it reached the bridge, and forwarding goes on.
    assert!(fdb_row(&n1, "02:00:00:00:aa:01").is_none(), "{}", n1.d.ctl_ok(&["fdb/show", "br0"]));
    assert!(vm1.ping("198.18.123.2", 2), "still forwarding\n{}", n1.d.log());

    // Inner frames longer than the VM's tap can carry (MTU 1500, in the VM's own
    // namespace) are dropped at the switch as oversize, not handed to the VM; one that
    // fits still arrives.
    let oversize = || -> u64 {
        let t = n1.d.ctl_ok(&["rvs/drops", "br0"]);
        t.lines().find_map(|l| l.trim().strip_prefix("oversize").map(|v| v.trim().parse().unwrap())).unwrap_or(0)
    };
    let vm_rx = || -> u64 { vm1.sh(&format!("cat /sys/class/net/{p1}/statistics/rx_bytes")).trim().parse().unwrap() };
    let (over0, rx0) = (oversize(), vm_rx());
    let frame = |len: usize| format!("{}ffffffffffff02000000aa020800{}", hdr("08", 5000), "45".repeat(len - 14));
    send_datagrams(&n2.ns, 1, &[frame(9000), frame(8000)]);
    // Broadcasts: each floods to the VM's tap and to the bridge's internal port br0.
    wait_until("four oversize drops", Duration::from_secs(10), || oversize() >= over0 + 4);
    assert_eq!(oversize(), over0 + 4);
    std::thread::sleep(Duration::from_millis(300));
    assert!(vm_rx() < rx0 + 8000, "an oversize frame reached the VM: {} bytes more", vm_rx() - rx0);
    send_datagrams(&n2.ns, 1, &[frame(1400)]);
    wait_until("the 1400-byte frame at the VM", Duration::from_secs(10), || vm_rx() >= rx0 + 1400);
    assert_eq!(oversize(), over0 + 4);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn tunnel_options_change_live() {
    let ul = Underlay::new();
    let (n1, n2, n3) = (RvsNode::new(&ul, 1), RvsNode::new(&ul, 2), RvsNode::new(&ul, 3));
    let vx = n1.tunnel_to(2, 5000);
    n2.tunnel_to(1, 6000); // VNIs differ: nothing gets through
    n3.tunnel_to(1, 7000);
    let (vm1, _) = n1.vm(None, "198.18.124.1/24");
    let (_vm2, _) = n2.vm(None, "198.18.124.2/24");
    let (_vm3, _) = n3.vm(None, "198.18.124.3/24");
    assert!(!vm1.ping("198.18.124.2", 2), "VNI 5000 must not reach a VNI 6000 port");
    // A new key: the same port now talks to node 2.
    n1.d.ctl_ok(&["set", "Interface", &vx, "options:key=6000"]);
    assert_eq!(n1.d.ctl_ok(&["get", "Interface", &vx, "options:key"]), "\"6000\"\n");
    assert!(vm1.ping_eventually("198.18.124.2", Duration::from_secs(10)), "after the key change\n{}", n1.d.log());
    // A new remote and key: node 3 instead of node 2.
    n1.d.ctl_ok(&["set", "Interface", &vx, "options:remote_ip=198.19.0.3", "options:key=7000"]);
    assert!(vm1.ping_eventually("198.18.124.3", Duration::from_secs(10)), "after the remote change\n{}", n1.d.log());
    assert!(!vm1.ping("198.18.124.2", 2), "node 2 is no longer the remote");
    // The port kept its number through the changes.
    assert_eq!(n1.ofport(&vx), "1");
}

/// Two workers per node: the VXLAN receive socket becomes two sockets in a
/// `SO_REUSEPORT` group, one per worker; VMs on both nodes still reach each other and
/// move data intact both ways (several connections, so the outer flows differ), and
/// back to one worker the tunnel works on.
#[test]
fn two_workers_per_node_over_vxlan() {
    require_tools(&["python3"]);
    let ul = Underlay::new();
    let (n1, n2) = (RvsNode::new(&ul, 1), RvsNode::new(&ul, 2));
    for n in [&n1, &n2] {
        n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:n-workers=2"]);
    }
    n1.tunnel_to(2, 5000);
    n2.tunnel_to(1, 5000);
    let (a, _) = n1.vm(Some(120), "198.18.121.1/24");
    let (b, _) = n2.vm(Some(120), "198.18.121.2/24");
    for n in [&n1, &n2] {
        wait_until("the VXLAN socket's two queues on two workers", Duration::from_secs(10), || {
            let s = n.d.ctl_ok(&["rvs/workers"]);
            let line_of = |w: &str| s.lines().position(|l| l.split_whitespace().any(|x| x == w));
            matches!((line_of("vxlan:4789#0"), line_of("vxlan:4789#1")), (Some(x), Some(y)) if x != y)
        });
    }
    assert!(a.ping_eventually("198.18.121.2", Duration::from_secs(15)), "across VXLAN with two workers\n{}", n1.d.log());
    for (i, port) in (5311..5315).enumerate() {
        let (srv, cli, addr) = if i % 2 == 0 { (&b, &a, "198.18.121.2") } else { (&a, &b, "198.18.121.1") };
        tcp_transfer(srv, cli, addr, port, 4 << 20).expect("TCP across VXLAN with two workers");
    }
    for n in [&n1, &n2] {
        n.d.ctl_ok(&["set", "Open_vSwitch", ".", "other_config:n-workers=1"]);
        wait_until("one worker with the whole socket", Duration::from_secs(10), || {
            let s = n.d.ctl_ok(&["rvs/workers"]);
            s.lines().filter(|l| l.starts_with("worker ")).count() == 1 && s.split_whitespace().any(|w| w == "vxlan:4789")
        });
    }
    assert!(a.ping_eventually("198.18.121.2", Duration::from_secs(15)), "across VXLAN with one worker again\n{}", n1.d.log());
    tcp_transfer(&b, &a, "198.18.121.2", 5316, 4 << 20).expect("TCP across VXLAN with one worker again");
}
