//! Bonds over real links: an rvs node whose bond's members are veths cabled to a peer
//! node. The kernel here has no bonding driver, so the peer is Debian's Open vSwitch
//! with its userspace datapath (`datapath_type=netdev`), or a second rvs. Root, and
//! for the OVS peer Open vSwitch, required; the tests fail (not skip) without them.
//!
//! * balance-tcp with LACP (active, fast) against an OVS bond: LACP negotiates on both
//!   sides (`lacp/show`), ping works, UDP flows spread over both members (the members'
//!   kernel counters), a member set down leaves traffic working on the other, and once
//!   it is back, rebalancing (1 s interval) puts load on it again;
//! * active-backup without LACP against an OVS active-backup bond (both with the
//!   member on link 0 as `bond-primary`): failover on carrier down, and back;
//! * balance-slb without LACP against an OVS bridge with two plain ports (the "two
//!   independent switch ports" SLB is made for): two VMs whose MACs hash to different
//!   members use both links; broadcasts flooded back by the peer are not taken in twice;
//!   failover on carrier down;
//! * rvs ⇄ rvs with LACP: negotiates and forwards; a third member cabled to a bond of
//!   another LACP system (a different `lacp-system-id`) stays detached and carries no
//!   traffic.
//!
//! Names: `unique()` (≤ 15 bytes). Addresses: 198.18.0.0/15, in namespaces made here.
//! Everything is in namespaces the test made, removed (daemons first) on drop.

use std::time::{Duration, Instant};

use rvs_testkit::*;

const WAIT: Duration = Duration::from_secs(30);

/// An Open vSwitch node with a netdev bridge br0.
fn ovs_node(tag: &str) -> OvsNode {
    let o = OvsNode::new(tag);
    o.vsctl("add-br br0 -- set bridge br0 datapath_type=netdev");
    o.ns.sh("ip link set br0 up");
    o
}

/// Veth pairs between two namespaces: `(here, there)` names, both up.
fn cables(a: &Netns, b: &Netns, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|_| {
            let (x, y) = (unique("ba"), unique("bb"));
            sh(&format!("ip link add {x} netns {} type veth peer name {y} netns {}", a.name, b.name));
            a.sh(&format!("ip link set {x} up"));
            b.sh(&format!("ip link set {y} up"));
            (x, y)
        })
        .collect()
}

/// The rvs node with bridge br0 and a VM on a tap (transmit offload off, so the OVS
/// side gets full checksums).
fn rvs_node(tag: &str) -> Node {
    let n = Node::new(tag);
    n.d.ctl_ok(&["add-br", "br0"]);
    n
}

fn rvs_vm(n: &Node, addr: &str) -> (Netns, String) {
    let p = unique("vm");
    let vm = n.vm("br0", &p, &[], addr);
    vm.sh(&format!("ethtool -K {p} tx off >/dev/null"));
    (vm, p)
}

fn tx_packets(ns: &Netns, dev: &str) -> u64 {
    ns.sh(&format!("cat /sys/class/net/{dev}/statistics/tx_packets")).trim().parse().unwrap_or(0)
}

/// Sends UDP from `flows` source ports of `vm` to `dst` port 9 for `secs` seconds
/// (1000-byte datagrams, a burst of one per flow every 10 ms).
fn udp_flows(vm: &Netns, dst: &str, flows: u16, secs: f32) {
    let py = format!(
        "import socket,time\n\
ss=[socket.socket(socket.AF_INET,socket.SOCK_DGRAM) for i in range({flows})]\n\
for i,s in enumerate(ss): s.bind(('',20000+i))\n\
end=time.time()+{secs}\n\
while time.time()<end:\n for s in ss:\n  try: s.sendto(b'x'*1000,('{dst}',9))\n  except OSError: pass\n time.sleep(0.01)\n"
    );
    vm.sh(&format!("timeout 60 python3 -c \"{py}\""));
}

/// Packets each of `devs` (in `ns`) sent while `f` ran.
fn sent_during(ns: &Netns, devs: &[&str], f: impl FnOnce()) -> Vec<u64> {
    let before: Vec<u64> = devs.iter().map(|d| tx_packets(ns, d)).collect();
    f();
    devs.iter().zip(before).map(|(d, b)| tx_packets(ns, d).saturating_sub(b)).collect()
}

/// Waits until `f` returns text containing every one of `want`; panics with the text.
fn wait_text(what: &str, timeout: Duration, f: impl Fn() -> String, want: &[&str]) {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < timeout {
        last = f();
        if want.iter().all(|w| last.contains(w)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {timeout:?} waiting for {what}: want {want:?} in\n{last}");
}

/// An rvs node and an Open vSwitch node (root and OVS required) cabled by two veth
/// pairs: the nodes and the names `[a0, a1, b0, b1]` (aN on rvs, bN its other end).
fn rvs_and_ovs(tag: &str) -> (Node, OvsNode, [String; 4]) {
    require_root();
    require_tools(&["ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl", "ethtool", "python3"]);
    let rvs = rvs_node(&format!("r{tag}"));
    let ovs = ovs_node(&format!("o{tag}"));
    let c = cables(&rvs.ns, &ovs.ns, 2);
    let names = [c[0].0.clone(), c[1].0.clone(), c[0].1.clone(), c[1].1.clone()];
    (rvs, ovs, names)
}

#[test]
fn balance_tcp_with_lacp_against_open_vswitch() {
    let (rvs, ovs, [a0, a1, b0, b1]) = rvs_and_ovs("bt");
    let (a0, a1, b0, b1) = (a0.as_str(), a1.as_str(), b0.as_str(), b1.as_str());
    rvs.d.ctl_ok(&[
        "add-bond",
        "br0",
        "bond0",
        a0,
        a1,
        "bond_mode=balance-tcp",
        "lacp=active",
        "other_config:lacp-time=fast",
        "other_config:bond-rebalance-interval=1000",
    ]);
    ovs.vsctl(&format!("add-bond br0 bond0 {b0} {b1} bond_mode=balance-tcp lacp=active other_config:lacp-time=fast"));
    let (vm1, _) = rvs_vm(&rvs, "198.18.70.1/24");
    let vm2 = ovs.vm("br0", "198.18.70.2/24");

    let rvs_lacp = || rvs.d.ctl(&["lacp/show", "bond0"]).stdout.iter().map(|&b| b as char).collect::<String>();
    wait_text(
        "LACP on rvs",
        WAIT,
        rvs_lacp,
        &["status: active negotiated", &format!("member: {a0}: current attached"), &format!("member: {a1}: current attached")],
    );
    wait_text(
        "LACP on OVS",
        WAIT,
        || ovs.appctl("lacp/show bond0"),
        &["status: active negotiated", &format!("{b0}: current attached"), &format!("{b1}: current attached")],
    );
    // Attached is not yet enabled: a member carries traffic once the partner says it
    // collects and distributes on it (its next LACPDU), at the bond's next step.
    let en0 = format!("member {a0}: enabled");
    let en1 = format!("member {a1}: enabled");
    wait_text("both members enabled", WAIT, || rvs.d.ctl_ok(&["bond/show", "bond0"]), &["lacp_status: negotiated", &en0, &en1]);

    assert!(vm1.ping_eventually("198.18.70.2", WAIT), "rvs VM -> OVS VM over the bond\n{}", rvs.d.log());
    assert!(vm2.ping("198.18.70.1", 3), "OVS VM -> rvs VM");

    // 32 UDP flows: both members carry a share (the chance that 32 flows all hash to
    // one of two members is 2^-31).
    let sent = sent_during(&rvs.ns, &[a0, a1], || udp_flows(&vm1, "198.18.70.2", 32, 1.0));
    assert!(sent[0] > 100 && sent[1] > 100, "flows over both members: {sent:?}\n{}", rvs.d.ctl_ok(&["bond/show", "bond0"]));

    // Member 1 down: traffic goes on over member 0.
    rvs.ns.sh(&format!("ip link set {a1} down"));
    wait_text("member down", WAIT, || rvs.d.ctl_ok(&["bond/show", "bond0"]), &[&format!("member {a1}: disabled")]);
    assert!(vm1.ping("198.18.70.2", 3), "ping after a member went down\n{}", rvs.d.ctl_ok(&["bond/show", "bond0"]));
    let sent = sent_during(&rvs.ns, &[a0], || udp_flows(&vm1, "198.18.70.2", 32, 1.0));
    assert!(sent[0] > 1000, "all flows on the remaining member: {sent:?}");

    // Back up: LACP again, and rebalancing gives it load once more.
    rvs.ns.sh(&format!("ip link set {a1} up"));
    wait_text("member back", WAIT, || rvs.d.ctl_ok(&["bond/show", "bond0"]), &[&format!("member {a1}: enabled")]);
    let sent = sent_during(&rvs.ns, &[a0, a1], || udp_flows(&vm1, "198.18.70.2", 32, 4.0));
    assert!(sent[1] > 100, "member used again after rebalancing: {sent:?}\n{}", rvs.d.ctl_ok(&["bond/show", "bond0"]));
    assert!(vm2.ping("198.18.70.1", 3), "OVS VM -> rvs VM at the end");

    // Per-member counters in the database, LACP counters.
    let stats = rvs.d.ctl_ok(&["lacp/show-stats", "bond0"]);
    assert!(stats.starts_with("---- bond0 statistics ----\n") && stats.contains("RX PDUs:"), "{stats}");
}

#[test]
fn active_backup_fails_over_on_carrier_against_open_vswitch() {
    let (rvs, ovs, [a0, a1, b0, b1]) = rvs_and_ovs("ab");
    let (a0, a1, b0, b1) = (a0.as_str(), a1.as_str(), b0.as_str(), b1.as_str());
    rvs.d.ctl_ok(&["add-bond", "br0", "bond0", a0, a1, "bond_mode=active-backup", &format!("other_config:bond-primary={a0}")]);
    ovs.vsctl(&format!("add-bond br0 bond0 {b0} {b1} bond_mode=active-backup other_config:bond-primary={b0}"));
    let (vm1, _) = rvs_vm(&rvs, "198.18.71.1/24");
    let vm2 = ovs.vm("br0", "198.18.71.2/24");

    assert!(vm1.ping_eventually("198.18.71.2", WAIT), "rvs VM -> OVS VM\n{}\n{}", rvs.d.log(), rvs.d.ctl_ok(&["bond/show"]));
    let show = rvs.d.ctl_ok(&["bond/show", "bond0"]);
    assert!(show.contains("bond_mode: active-backup") && show.contains("lacp_status: off"), "{show}");
    assert!(show.contains(&format!("member {a0}: enabled\n  active member")), "{show}");
    let sent = sent_during(&rvs.ns, &[a0, a1], || udp_flows(&vm1, "198.18.71.2", 8, 1.0));
    assert!(sent[0] > 300 && sent[1] < 20, "the active member carries everything: {sent:?}");

    // The active member's link goes down: the backup takes over.
    rvs.ns.sh(&format!("ip link set {a0} down"));
    wait_text("failover", WAIT, || rvs.d.ctl_ok(&["bond/show", "bond0"]), &[&format!("member {a1}: enabled\n  active member")]);
    assert!(vm1.ping_eventually("198.18.71.2", WAIT), "ping after failover\n{}", rvs.d.ctl_ok(&["bond/show", "bond0"]));
    assert!(vm2.ping("198.18.71.1", 3), "OVS VM -> rvs VM after failover");
    let sent = sent_during(&rvs.ns, &[a1], || udp_flows(&vm1, "198.18.71.2", 8, 1.0));
    assert!(sent[0] > 300, "the backup carries the traffic: {sent:?}");
    let slave = rvs.d.ctl_ok(&["get", "Port", "bond0", "bond_active_slave"]);
    assert_eq!(slave.trim().trim_matches('"'), mac_of(&rvs.ns, a1), "bond_active_slave");

    // Back up: the primary is active again.
    rvs.ns.sh(&format!("ip link set {a0} up"));
    wait_text("primary back", WAIT, || rvs.d.ctl_ok(&["bond/show", "bond0"]), &[&format!("member {a0}: enabled\n  active member")]);
    assert!(vm1.ping_eventually("198.18.71.2", WAIT), "ping with the primary back");

    // The appctl commands that change a bond.
    assert_eq!(rvs.d.ctl_ok(&["bond/set-active-member", "bond0", a0]), "no change\n");
    let out = rvs.d.ctl(&["bond/set-active-slave", "bond0", "nosuch"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no such member"), "{out:?}");
    assert_eq!(rvs.d.ctl_ok(&["bond/disable-member", "bond0", a1]), "disabled\n");
    assert_eq!(rvs.d.ctl_ok(&["bond/enable-slave", "bond0", a1]), "enabled\n");

    // The backup's device goes away: that member is out (its error says why), the bond
    // carries on; the device comes back: the member is reopened and enabled again.
    rvs.ns.sh(&format!("ip link del {a1}"));
    wait_text("member gone", WAIT, || rvs.d.ctl_ok(&["bond/show", "bond0"]), &[&format!("member {a1}: disabled")]);
    let err = rvs.d.ctl_ok(&["get", "Interface", a1, "error"]);
    assert!(err.contains("No such device"), "{err}");
    assert!(vm1.ping("198.18.71.2", 3), "the bond carries on without the member\n{}", rvs.d.ctl_ok(&["bond/show", "bond0"]));
    sh(&format!("ip link add {a1} netns {} type veth peer name {b1} netns {}", rvs.ns.name, ovs.ns.name));
    rvs.ns.sh(&format!("ip link set {a1} up"));
    ovs.ns.sh(&format!("ip link set {b1} up"));
    wait_text("member back", WAIT, || rvs.d.ctl_ok(&["bond/show", "bond0"]), &[&format!("member {a1}: enabled")]);
    assert!(vm1.ping("198.18.71.2", 3), "ping with the member back");
}

#[test]
fn miimon_detects_the_peer_going_down_against_open_vswitch() {
    // bond-detect-mode=miimon on both sides: rvs polls each member's link (veths
    // have no MII: ethtool's link state) every 50 ms; the far end of the primary's
    // cable goes down (the rvs side stays administratively up) and comes back.
    let (rvs, ovs, [a0, a1, b0, b1]) = rvs_and_ovs("mi");
    let (a0, a1, b0, b1) = (a0.as_str(), a1.as_str(), b0.as_str(), b1.as_str());
    let mii = "other_config:bond-detect-mode=miimon";
    rvs.d.ctl_ok(&[
        "add-bond",
        "br0",
        "bond0",
        a0,
        a1,
        "bond_mode=active-backup",
        mii,
        "other_config:bond-miimon-interval=50",
        &format!("other_config:bond-primary={a0}"),
    ]);
    ovs.vsctl(&format!("add-bond br0 bond0 {b0} {b1} bond_mode=active-backup {mii} other_config:bond-primary={b0}"));
    let (vm1, _) = rvs_vm(&rvs, "198.18.73.1/24");
    let _vm2 = ovs.vm("br0", "198.18.73.2/24");
    assert!(vm1.ping_eventually("198.18.73.2", WAIT), "rvs VM -> OVS VM\n{}\n{}", rvs.d.log(), rvs.d.ctl_ok(&["bond/show"]));
    wait_text(
        "both members up",
        WAIT,
        || rvs.d.ctl_ok(&["bond/show", "bond0"]),
        &[&format!("member {a0}: enabled\n  active member"), &format!("member {a1}: enabled")],
    );

    ovs.ns.sh(&format!("ip link set {b0} down"));
    wait_text(
        "failover",
        WAIT,
        || rvs.d.ctl_ok(&["bond/show", "bond0"]),
        &[&format!("member {a0}: disabled"), &format!("member {a1}: enabled\n  active member")],
    );
    assert!(vm1.ping_eventually("198.18.73.2", WAIT), "ping after failover\n{}", rvs.d.ctl_ok(&["bond/show", "bond0"]));
    ovs.ns.sh(&format!("ip link set {b0} up"));
    wait_text("primary back", WAIT, || rvs.d.ctl_ok(&["bond/show", "bond0"]), &[&format!("member {a0}: enabled\n  active member")]);
    assert!(vm1.ping_eventually("198.18.73.2", WAIT), "ping with the primary back");
    // An unknown mode is carrier, with OVS's warning.
    rvs.d.ctl_ok(&["set", "Port", "bond0", "other_config:bond-detect-mode=arp"]);
    wait_text("warning", WAIT, || rvs.d.log(), &["unsupported bond-detect-mode arp, defaulting to carrier"]);
}

/// A MAC (locally administered) whose balance-slb bucket has the given parity, as
/// the daemon's `bond/hash` says.
fn mac_with_parity(n: &Node, odd: bool, seed: u8) -> String {
    for i in 0..=255u8 {
        let mac = format!("02:c6:12:{seed:02x}:{i:02x}:01");
        let h: u32 = n.d.ctl_ok(&["bond/hash", &mac]).trim().parse().expect("bond/hash answers a number");
        if (h % 2 == 1) == odd {
            return mac;
        }
    }
    panic!("no MAC of that parity");
}

#[test]
fn balance_slb_without_lacp_against_two_switch_ports() {
    let (rvs, ovs, [a0, a1, b0, b1]) = rvs_and_ovs("sl");
    let (a0, a1, b0, b1) = (a0.as_str(), a1.as_str(), b0.as_str(), b1.as_str());
    // The peer: a switch with two independent ports (no bond), as SLB expects.
    ovs.vsctl(&format!("add-port br0 {b0} -- add-port br0 {b1}"));
    rvs.d.ctl_ok(&["add-bond", "br0", "bond0", a0, a1, "bond_mode=balance-slb"]);
    let vm = ovs.vm("br0", "198.18.72.10/24");
    // Two VMs whose MACs fall in buckets of different parity: buckets are dealt to the
    // two members in turn when both come up together.
    let (mut vms, mut macs, mut nics) = (Vec::new(), Vec::new(), Vec::new());
    for (i, odd) in [(1, false), (2, true)] {
        let (v, p) = rvs_vm(&rvs, &format!("198.18.72.{i}/24"));
        let mac = mac_with_parity(&rvs, odd, i);
        v.sh(&format!("ip link set {p} address {mac}"));
        vms.push(v);
        macs.push(mac);
        nics.push(p);
    }
    for (i, v) in vms.iter().enumerate() {
        assert!(v.ping_eventually("198.18.72.10", WAIT), "VM {i} -> OVS VM\n{}", rvs.d.ctl_ok(&["bond/show", "bond0"]));
    }
    let sent = sent_during(&rvs.ns, &[a0, a1], || {
        for v in &vms {
            udp_flows(v, "198.18.72.10", 4, 0.5);
        }
    });
    assert!(sent[0] > 100 && sent[1] > 100, "each VM's MAC on its own member: {sent:?}\n{}", rvs.d.ctl_ok(&["bond/show", "bond0"]));
    assert!(vm.ping("198.18.72.1", 3) && vm.ping("198.18.72.2", 3), "OVS VM -> both rvs VMs");

    // bond/list, and bond/migrate of VM 0's bucket to the member it is not on.
    let list = rvs.d.ctl_ok(&["bond/list"]);
    let (m0, m1) = if a0 < a1 { (a0, a1) } else { (a1, a0) };
    assert_eq!(list, format!("bond\ttype\trecircID\tmembers\nbond0\tbalance-slb\t0\t{m0}, {m1}\n"));
    let on = sent_during(&rvs.ns, &[a0, a1], || udp_flows(&vms[0], "198.18.72.10", 2, 0.3));
    let (from, to) = if on[0] > on[1] { (a0, a1) } else { (a1, a0) };
    let hash = rvs.d.ctl_ok(&["bond/hash", &macs[0]]);
    let hash = hash.trim();
    let out = rvs.d.ctl(&["bond/migrate", "bond0", "x1", to]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("bad hash"), "{out:?}");
    assert_eq!(rvs.d.ctl_ok(&["bond/migrate", "bond0", hash, to]), "migrated\n");
    let moved = sent_during(&rvs.ns, &[from, to], || udp_flows(&vms[0], "198.18.72.10", 2, 0.3));
    assert!(
        moved[1] > 20 && moved[0] < moved[1] / 4,
        "VM 0's flows moved from {from} to {to}: before {on:?}, after {moved:?}\n{}",
        rvs.d.ctl_ok(&["bond/show", "bond0"])
    );
    // The peer floods the VMs' broadcasts back over the other link: never learned on
    // the bond (the VMs stay on their taps).
    let fdb = rvs.d.ctl_ok(&["fdb/show", "br0"]);
    let ofport = |i: &str| rvs.d.ctl_ok(&["get", "Interface", i, "ofport"]).trim().parse::<u32>().unwrap_or(0);
    let bond_port = ofport(a0).min(ofport(a1)).to_string();
    for mac in &macs {
        let row = fdb.lines().find(|l| l.contains(mac.as_str())).unwrap_or_default();
        assert!(!row.is_empty() && row.split_whitespace().next() != Some(bond_port.as_str()), "{mac} learned on the bond?\n{fdb}");
    }

    // Each VM announces itself (gratuitous ARP); the peer floods it back over the other
    // link, where one of them arrives on the active member. The gratuitous-ARP lock
    // (5 s, as OVS) keeps both MACs on their taps.
    for (i, (v, p)) in vms.iter().zip(&nics).enumerate() {
        v.sh(&format!("arping -q -U -c 2 -w 3 -I {p} 198.18.72.{}", i + 1));
    }
    std::thread::sleep(Duration::from_millis(300));
    let fdb = rvs.d.ctl_ok(&["fdb/show", "br0"]);
    for mac in &macs {
        let row = fdb.lines().find(|l| l.contains(mac.as_str())).unwrap_or_default();
        assert!(!row.is_empty() && row.split_whitespace().next() != Some(bond_port.as_str()), "{mac} moved onto the bond by its own gratuitous ARP\n{fdb}");
    }

    // Failover: the member with a VM's bucket goes down; the bond sends a RARP from
    // each VM's MAC through the remaining member (as OVS does), so the peer switch can
    // move both MACs to that link before the VMs send anything. Seen on the peer's
    // side of that link (the peer's MAC table is not asked: OVS may flush it on the
    // link change, before or after the RARPs arrive); then both VMs reach the peer.
    let rarps = std::process::Command::new("ip")
        .args(["netns", "exec", &ovs.ns.name, "timeout", "6", "tcpdump", "-l", "-i", b0, "-c", "16", "-nn", "-e", "ether", "proto", "0x8035"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcpdump");
    std::thread::sleep(Duration::from_secs(1));
    rvs.ns.sh(&format!("ip link set {a1} down"));
    wait_text("member down", WAIT, || rvs.d.ctl_ok(&["bond/show", "bond0"]), &[&format!("member {a1}: disabled")]);
    let seen = String::from_utf8_lossy(&rarps.wait_with_output().expect("tcpdump output").stdout).into_owned();
    for m in &macs {
        assert!(
            seen.lines().any(|l| l.starts_with(&format!("{m} > ff:ff:ff:ff:ff:ff")) || l.contains(&format!(" {m} > ff:ff:ff:ff:ff:ff"))),
            "no RARP from {m} on {b0}:\n{seen}"
        );
    }
    for (i, v) in vms.iter().enumerate() {
        assert!(v.ping_eventually("198.18.72.10", WAIT), "VM {i} after failover\n{}", rvs.d.ctl_ok(&["bond/show", "bond0"]));
    }
}

#[test]
fn rvs_to_rvs_with_lacp_and_a_member_to_another_system() {
    require_root();
    require_tools(&["python3", "ethtool"]);
    let a = rvs_node("rra");
    let b = rvs_node("rrb");
    let c = cables(&a.ns, &b.ns, 3);
    let (a0, a1, a2) = (c[0].0.as_str(), c[1].0.as_str(), c[2].0.as_str());
    let (b0, b1, b2) = (c[0].1.as_str(), c[1].1.as_str(), c[2].1.as_str());
    // A third cable on B to nowhere, so B's second bond has two members.
    let nowhere = Netns::new("nw");
    let d = cables(&b.ns, &nowhere, 1);
    let b3 = d[0].0.as_str();
    a.d.ctl_ok(&["add-bond", "br0", "bond0", a0, a1, a2, "bond_mode=balance-tcp", "lacp=active", "other_config:lacp-time=fast"]);
    // B's bond0 gets the better system priority (a lead member's priority is that of
    // the better end, 802.1AX selection as OVS does it).
    b.d.ctl_ok(&[
        "add-bond",
        "br0",
        "bond0",
        b0,
        b1,
        "bond_mode=balance-tcp",
        "lacp=active",
        "other_config:lacp-time=fast",
        "other_config:lacp-system-priority=100",
    ]);
    // Selection sticks to the partner of a member already working (OVS's
    // lacp_update_attached, followed by rvs): whichever system A hears first keeps A's
    // aggregation. So B's bond0 negotiates with A first, and only then does the other
    // system come up on A2 — which A must then keep detached.
    let lacp = |n: &Node| n.d.ctl_ok(&["lacp/show", "bond0"]);
    wait_text("LACP on A with B's bond0", WAIT, || lacp(&a), &[&format!("member: {a0}: current attached"), &format!("member: {a1}: current attached")]);
    // A2 is cabled to another LACP system (B's second bond, its own system ID).
    b.d.ctl_ok(&[
        "add-bond",
        "br0",
        "bond1",
        b2,
        b3,
        "lacp=active",
        "other_config:lacp-time=fast",
        "other_config:lacp-system-id=02:00:00:00:00:99",
        "other_config:lacp-system-priority=65535",
    ]);
    let (vm1, _) = rvs_vm(&a, "198.18.73.1/24");
    let (vm2, _) = rvs_vm(&b, "198.18.73.2/24");

    wait_text(
        "LACP on A",
        WAIT,
        || lacp(&a),
        &[
            "status: active negotiated",
            &format!("member: {a0}: current attached"),
            &format!("member: {a1}: current attached"),
            &format!("member: {a2}: current detached"),
        ],
    );
    wait_text(
        "LACP on B",
        WAIT,
        || lacp(&b),
        &["status: active negotiated", &format!("member: {b0}: current attached"), &format!("member: {b1}: current attached")],
    );
    assert!(vm1.ping_eventually("198.18.73.2", WAIT), "A -> B over the bond\n{}", a.d.log());
    assert!(vm2.ping("198.18.73.1", 3), "B -> A");
    let sent = sent_during(&a.ns, &[a0, a1, a2], || udp_flows(&vm1, "198.18.73.2", 32, 1.0));
    assert!(sent[0] > 100 && sent[1] > 100, "both attached members carry flows: {sent:?}");
    // LACPDUs only (fast: one a second) on the member cabled elsewhere.
    assert!(sent[2] < 10, "the member to another system carries no traffic: {sent:?}\n{}", a.d.ctl_ok(&["bond/show", "bond0"]));
    let show = a.d.ctl_ok(&["bond/show", "bond0"]);
    assert!(show.contains(&format!("member {a2}: disabled")), "{show}");
}

/// `rvs-vswitchd --takeover` with a LACP bond (slow rate, the default: a PDU every
/// 30 s) to Open vSwitch: the old daemon hands each member's last LACPDU from the
/// partner over, so the new one's bond is negotiated from its first moment and
/// forwarding goes on while both run and after; OVS never sees the bond go.
#[test]
fn takeover_keeps_a_lacp_bond_negotiated() {
    let (rvs, ovs, [a0, a1, b0, b1]) = rvs_and_ovs("tk");
    let (a0, a1, b0, b1) = (a0.as_str(), a1.as_str(), b0.as_str(), b1.as_str());
    rvs.d.ctl_ok(&["add-bond", "br0", "bond0", a0, a1, "bond_mode=balance-tcp", "lacp=active"]);
    ovs.vsctl(&format!("add-bond br0 bond0 {b0} {b1} bond_mode=balance-tcp lacp=active"));
    let (vm1, _) = rvs_vm(&rvs, "198.18.74.1/24");
    let _vm2 = ovs.vm("br0", "198.18.74.2/24");
    let both = [format!("member {a0}: enabled"), format!("member {a1}: enabled")];
    wait_text("both members enabled", WAIT, || rvs.d.ctl_ok(&["bond/show", "bond0"]), &["lacp_status: negotiated", &both[0], &both[1]]);
    assert!(vm1.ping_eventually("198.18.74.2", WAIT), "rvs VM -> OVS VM over the bond\n{}", rvs.d.log());
    let old = rvs.d.pid().expect("pid");

    let pinger = std::process::Command::new("ip")
        .args(["netns", "exec", &vm1.name, "ping", "-i", "0.01", "-c", "300", "-W", "1", "198.18.74.2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("ping");
    std::thread::sleep(Duration::from_millis(1000));
    let out = rvs.d.try_start_with(&["--takeover"]);
    assert!(out.status.success(), "takeover: {}\n{}", String::from_utf8_lossy(&out.stderr), rvs.d.log());
    assert_ne!(rvs.d.pid().expect("pid after takeover"), old);
    let o = String::from_utf8_lossy(&pinger.wait_with_output().expect("ping output").stdout).into_owned();
    let replies = o.lines().filter(|l| l.contains("bytes from") && !l.contains("DUP!")).count();
    let dups = o.lines().filter(|l| l.contains("DUP!")).count();
    let show = rvs.d.ctl_ok(&["bond/show", "bond0"]);
    assert_eq!(dups, 0, "frames delivered twice:\n{o}");
    // Counted, not timed: a handful lost in the old daemon's queues at most.
    assert!(replies >= 280, "{replies} of 300 pings answered across the takeover:\n{o}\n{show}\n{}", rvs.d.log());
    for want in ["lacp_status: negotiated", &both[0], &both[1]] {
        assert!(show.contains(want), "after the takeover, {want:?} missing:\n{show}");
    }
    let theirs = ovs.appctl("lacp/show bond0");
    for want in ["status: active negotiated".to_string(), format!("{b0}: current attached"), format!("{b1}: current attached")] {
        assert!(theirs.contains(&want), "OVS after the takeover, {want:?} missing:\n{theirs}");
    }
    // The new daemon's bond carried traffic before the old daemon was told to go: its
    // members were enabled from the LACPDUs handed over, not after a new exchange.
    let log = rvs.d.log();
    let handing = log.find("takeover: handing over").expect("handing over logged");
    let gone = log.find("took over from pid").expect("took over logged");
    for m in [a0, a1] {
        let enabled = log[handing..].find(&format!("member {m}: enabled")).map(|p| p + handing);
        assert!(enabled.is_some_and(|p| p < gone), "{m} not enabled in the new daemon before the old one ended:\n{log}");
    }
}
