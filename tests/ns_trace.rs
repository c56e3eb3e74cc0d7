//! Namespace tests of `ovs-appctl ofproto/trace` (issue 26 part 3): for an access
//! port, a trunk, a VXLAN tunnel and drops, the output ports a trace names are compared
//! with where the same frame really goes when it is then sent (the ports' transmit
//! counters, N copies of the frame), and a trace changes nothing. Bad input gets OVS's
//! error text and exit status 2. Root required.
//!
//! Addresses: VMs 198.18.60.0/24, underlay 198.19.0.0/24.

use std::collections::BTreeSet;
use std::time::Duration;

use rvs_testkit::overlay::*;
use rvs_testkit::*;

/// Copies of each frame sent: far more than stray traffic (IPv6 neighbour discovery)
/// could add to a port's counter in the same time.
const N: u64 = 40;

/// The transmit counter of every interface of the node's br0, by name.
fn tx(d: &Daemon, ports: &[&str]) -> Vec<u64> {
    ports.iter().map(|p| d.ctl_ok(&["get", "Interface", p, "statistics:tx_packets"]).trim().parse().unwrap_or(0)).collect()
}

/// Sends `N` copies of `frame` (hex) out of `dev` in `ns` through a raw socket.
fn send(ns: &Netns, dev: &str, frame: &str) {
    let py = format!(
        "import socket\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((\"{dev}\",0))\nf=bytes.fromhex(\"{frame}\")\nfor _ in range({N}): s.send(f)\n"
    );
    assert!(ns.sh_ok(&format!("python3 -c '{}'", py.replace('\'', ""))), "sending from {dev}");
}

/// The OpenFlow port numbers in a trace's "Datapath actions:" line.
fn trace_outputs(trace: &str) -> BTreeSet<u16> {
    let line = trace.lines().find_map(|l| l.strip_prefix("Datapath actions: ")).unwrap_or_else(|| panic!("no datapath actions in {trace}"));
    line.split(',').filter_map(|a| a.parse().ok()).collect()
}

/// Sends the frame and returns the ofports whose transmit counters grew by `N` or more.
fn really(n: &Node, ports: &[(&str, u16)], ns: &Netns, dev: &str, frame: &str) -> BTreeSet<u16> {
    let names: Vec<&str> = ports.iter().map(|p| p.0).collect();
    let before = tx(&n.d, &names);
    send(ns, dev, frame);
    let mut got = BTreeSet::new();
    // Counters are read from the sockets' atomics: wait until the copies are through.
    wait_until("frames forwarded", Duration::from_secs(5), || {
        let after = tx(&n.d, &names);
        got = ports.iter().zip(before.iter().zip(after)).filter(|(_, (b, a))| a - *b >= N).map(|(p, _)| p.1).collect();
        !got.is_empty()
    });
    got
}

fn ofport(d: &Daemon, p: &str) -> u16 {
    d.ctl_ok(&["get", "Interface", p, "ofport"]).trim().parse().unwrap()
}

fn mac_hex(mac: &str) -> String {
    mac.replace(':', "")
}

#[test]
fn trace_matches_forwarding_on_access_and_trunk_ports() {
    require_tools(&["python3"]);
    let n = Node::new("trc");
    n.d.ctl_ok(&["add-br", "br0"]);
    // The bridge's own port in a VLAN of its own, out of the way.
    n.d.ctl_ok(&["set", "Port", "br0", "tag=99"]);
    let (p1, p2, p3) = (unique("ta"), unique("tb"), unique("tc"));
    let vm1 = n.vm("br0", &p1, &["tag=10"], "198.18.60.1/24");
    let vm2 = n.vm("br0", &p2, &["tag=10"], "198.18.60.2/24");
    let _vm3 = n.vm("br0", &p3, &["tag=20"], "198.18.60.3/24");
    // A trunk of VLANs 10 and 20 on a veth whose far end is in a peer namespace.
    let tr = unique("tt");
    let peer = Netns::new("trp");
    n.ns.sh(&format!("ip link add {tr} type veth peer name {tr}p && ip link set {tr} up && ip link set {tr}p netns {}", peer.name));
    peer.sh(&format!("ip link set {tr}p up"));
    n.d.ctl_ok(&["add-port", "br0", &tr, "trunks=10,20"]);
    let ports = [(p1.as_str(), ofport(&n.d, &p1)), (p2.as_str(), ofport(&n.d, &p2)), (p3.as_str(), ofport(&n.d, &p3)), (tr.as_str(), ofport(&n.d, &tr))];
    let (o1, o2, o3, ot) = (ports[0].1, ports[1].1, ports[2].1, ports[3].1);
    assert!(vm1.ping_eventually("198.18.60.2", Duration::from_secs(10)), "{}", n.d.log());
    let (m1, m2) = (mac_of(&vm1, &p1), mac_of(&vm2, &p2));

    // Access: a broadcast from vm1 goes to vm2 and the trunk (tagged), not to VLAN 20.
    let bcast = format!("ffffffffffff{}88b5{}", mac_hex(&m1), "00".repeat(46));
    let fdb_before = n.d.ctl_ok(&["fdb/show", "br0"]);
    let t = n.d.ctl_ok(&["ofproto/trace", "br0", &format!("in_port={p1}"), &bcast]);
    assert!(t.starts_with(&format!("Flow: in_port={o1},vlan_tci=0x0000,dl_src={m1},dl_dst=ff:ff:ff:ff:ff:ff,dl_type=0x88b5\n")), "{t}");
    assert!(t.contains("bridge(\"br0\")\n-------------\n") && t.contains("multicast or broadcast destination, flooding"), "{t}");
    assert!(t.contains(&format!("push_vlan(vid=10,pcp=0),{ot}")), "{t}");
    assert_eq!(trace_outputs(&t), BTreeSet::from([o2, ot]), "{t}");
    assert_eq!(really(&n, &ports, &vm1, &p1, &bcast), BTreeSet::from([o2, ot]));
    let _ = o3;

    // A trace changes nothing: tracing a frame from an address never seen leaves the
    // MAC table as it was.
    let t = n.d.ctl_ok(&["ofproto/trace", "br0", &format!("in_port={p1},dl_src=02:00:00:00:99:99,dl_dst=ff:ff:ff:ff:ff:ff")]);
    assert!(t.contains("learned that 02:00:00:00:99:99 is on port"), "{t}");
    let fdb_after = n.d.ctl_ok(&["fdb/show", "br0"]);
    assert!(!fdb_after.contains("02:00:00:00:99:99"), "{fdb_after}");
    assert_eq!(fdb_before.lines().count(), fdb_after.lines().count(), "{fdb_before}\n{fdb_after}");

    // Known unicast vm1 -> vm2: only vm2's port.
    let uni = format!("{}{}88b5{}", mac_hex(&m2), mac_hex(&m1), "00".repeat(46));
    let t = n.d.ctl_ok(&["ofproto/trace", "br0", &format!("in_port={o1}"), &uni]);
    assert!(t.contains("-> forwarding to learned port"), "{t}");
    assert_eq!(trace_outputs(&t), BTreeSet::from([o2]));
    assert_eq!(really(&n, &ports, &vm1, &p1, &uni), BTreeSet::from([o2]));

    // Trunk: a VLAN 20 broadcast from the trunk's far end reaches vm3 only, untagged.
    let tagged = format!("ffffffffffff{}{}{}{}", "020000006001", "81000014", "88b5", "00".repeat(42));
    let t = n.d.ctl_ok(&["ofproto/trace", "br0", &format!("in_port={tr}"), &tagged]);
    assert!(t.contains("vlan_tci=0x1014") && t.contains("VLAN 20 tagged frame admitted"), "{t}");
    assert!(t.contains("Datapath actions: pop_vlan,"), "{t}");
    assert_eq!(trace_outputs(&t), BTreeSet::from([o3]), "{t}");
    assert_eq!(really(&n, &ports, &peer, &format!("{tr}p"), &tagged), BTreeSet::from([o3]));

    // Drop: a frame tagged VLAN 20 on vm1's access port (VLAN 10): the trace says so,
    // and sent for real it goes nowhere and is counted under that reason.
    let bad = format!("ffffffffffff{}{}{}{}", mac_hex(&m1), "81000014", "88b5", "00".repeat(42));
    let t = n.d.ctl_ok(&["ofproto/trace", "br0", &format!("in_port={p1}"), &bad]);
    assert!(t.contains(&format!("-> dropping VLAN 20 tagged packet received on port {p1} configured as VLAN 10 access port")), "{t}");
    assert!(t.ends_with("Datapath actions: drop\n"), "{t}");
    let drops = |d: &Daemon| -> u64 {
        let s = d.ctl_ok(&["rvs/drops", "br0"]);
        s.lines().find(|l| l.trim_start().starts_with("tagged_on_access_port")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()).unwrap_or(0)
    };
    let (d0, before) = (drops(&n.d), tx(&n.d, &ports.iter().map(|p| p.0).collect::<Vec<_>>()));
    send(&vm1, &p1, &bad);
    wait_until("drops counted", Duration::from_secs(5), || drops(&n.d) >= d0 + N);
    let after = tx(&n.d, &ports.iter().map(|p| p.0).collect::<Vec<_>>());
    assert!(before.iter().zip(&after).all(|(b, a)| a - b < N), "no port sent the dropped frames: {before:?} {after:?}");
}

#[test]
fn trace_names_the_tunnel_and_matches_what_crosses_it() {
    require_tools(&["python3"]);
    let ul = Underlay::new();
    let (n1, n2) = (RvsNode::new(&ul, 1), RvsNode::new(&ul, 2));
    let vx = n1.tunnel_to(2, 6000);
    n2.tunnel_to(1, 6000);
    let (a, pa) = n1.vm(Some(160), "198.18.61.1/24");
    let (_b, _) = n2.vm(Some(160), "198.18.61.2/24");
    assert!(a.ping_eventually("198.18.61.2", Duration::from_secs(15)), "{}", n1.d.log());
    let src = "02:00:00:00:61:77";
    let t = n1.d.ctl_ok(&["ofproto/trace", "br0", &format!("in_port={pa},dl_src={src},dl_dst=ff:ff:ff:ff:ff:ff,dl_type=0x88b5")]);
    // The tunnel trunks every VLAN: the copy crosses it tagged.
    assert!(t.contains(&format!("-> output to port {vx} (tagged VLAN 160)\n     -> tunnel: VXLAN to ")) && t.contains("remote_ip=198.19.0.2"), "{t}");
    assert!(t.contains("key=6000"), "{t}");
    assert!(trace_outputs(&t).contains(&n1.ofport(&vx).parse().unwrap()), "{t}");
    // Sent for real, the frame crosses the tunnel: node 2 learns its source there.
    let frame = format!("ffffffffffff{}88b5{}", mac_hex(src), "00".repeat(46));
    send(&a, &pa, &frame);
    wait_until("node 2 learned the source over the tunnel", Duration::from_secs(5), || {
        fdb_row(&n2, src).is_some_and(|(port, vlan)| port == n2.ofport("vx1") && vlan == "160")
    });
    // From the tunnel, split horizon keeps another tunnel out, and the trace says so
    // when there is one (a second, unused tunnel on node 2).
    n2.tunnel_to(3, 6000);
    let t = n2.d.ctl_ok(&["ofproto/trace", "br0", &format!("in_port=vx1,dl_vlan=160,dl_src={src},dl_dst=ff:ff:ff:ff:ff:ff")]);
    assert!(t.contains("-> not flooding to port vx3: split horizon (tunnel to tunnel)"), "{t}");
}

#[test]
fn bad_trace_input_gets_ovs_errors_and_exit_status_2() {
    let n = Node::new("trb");
    n.d.ctl_ok(&["add-br", "br0"]);
    n.d.ctl_ok(&["add-port", "br0", "p1", "--", "set", "Interface", "p1", "type=internal"]);
    let cases: &[(&[&str], &str)] = &[
        (&["ofproto/trace", "br9", "in_port=1"], "br9: unknown bridge"),
        (&["ofproto/trace", "br0", "in_port=nosuch"], "Bad openflow flow syntax: nosuch: port value out of range for in_port"),
        (&["ofproto/trace", "br0", "in_port=p1,dl_src=zz"], "Bad openflow flow syntax: zz: invalid Ethernet address"),
        (&["ofproto/trace", "br0", "in_port=p1,frobnicate=1"], "Bad openflow flow syntax: in_port=p1,frobnicate=1: unknown field frobnicate"),
        (&["ofproto/trace", "br0", "in_port=p1", "0xzz"], "Trace packet must be in hexadecimal format"),
    ];
    for (args, text) in cases {
        let out = n.d.ctl(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.starts_with(text), "{args:?}: {err}");
        assert!(err.contains("server returned an error"), "{err}");
    }
    // The daemon is fine afterwards; OVS's LOCAL names the bridge's own port.
    assert!(n.d.ctl_ok(&["ofproto/trace", "br0", "in_port=p1"]).contains("Datapath actions: drop"));
    let t = n.d.ctl_ok(&["ofproto/trace", "br0", "in_port=LOCAL,dl_dst=ff:ff:ff:ff:ff:ff"]);
    assert!(t.starts_with("Flow: in_port=65534,") && t.contains("output to port p1"), "{t}");
}
