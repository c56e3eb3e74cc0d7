//! Interop with Open vSwitch over VXLAN: an rvs node and a node running Debian's
//! Open vSwitch with its userspace datapath (`datapath_type=netdev`, no kernel module),
//! joined by unicast VXLAN (VNI 5000, UDP 4789). Ping and TCP both ways; each side
//! learns the other's VM behind its tunnel port. Root and Open vSwitch required.
//!
//! OVS's userspace tunnels need the underlay address on an OVS bridge (`br-phy`) that
//! holds the uplink; its VM's veth needs transmit checksum offload off (OVS userspace
//! cannot complete partial checksums). On the rvs side, the underlay veth's transmit
//! checksum offload is off too: on an all-virtual underlay no NIC ever completes the
//! outer UDP checksum the kernel leaves to offload, and OVS (reading the uplink through
//! a raw socket) would see it incomplete. A real NIC fills it in.

use std::time::Duration;

use rvs_testkit::overlay::*;
use rvs_testkit::*;

fn ovs_node(ul: &Underlay, n: u8, remote: u8, key: u32) -> OvsNode {
    let o = OvsNode::new("ovn");
    let uplink = ul.attach(&o.ns, n);
    // The underlay address moves to br-phy below.
    o.ns.sh(&format!("ip addr flush dev {uplink}"));
    o.vsctl(&format!("add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy {uplink}"));
    o.ns.sh(&format!("ip addr add 198.19.0.{n}/24 dev br-phy && ip link set br-phy up"));
    o.vsctl("add-br br-int -- set bridge br-int datapath_type=netdev");
    o.vsctl(&format!("add-port br-int vx{remote} -- set Interface vx{remote} type=vxlan options:remote_ip=198.19.0.{remote} options:key={key}"));
    o
}

#[test]
fn rvs_and_open_vswitch_over_vxlan() {
    require_root();
    require_tools(&["ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-appctl", "ethtool", "python3"]);
    let ul = Underlay::new();
    let rvs = RvsNode::new(&ul, 1);
    rvs.ns.sh(&format!("ethtool -K {} tx off >/dev/null", rvs.uplink));
    rvs.tunnel_to(2, 5000);
    let (vm1, p1) = rvs.vm(None, "198.18.44.1/24");

    let ovs = ovs_node(&ul, 2, 1, 5000);
    let vm2 = ovs.vm("br-int", "198.18.44.2/24");
    let p = vm2.sh("ls /sys/class/net | grep -v '^lo$'").trim().to_string();

    assert!(vm1.ping_eventually("198.18.44.2", Duration::from_secs(20)), "rvs -> OVS\n{}", rvs.d.log());
    assert!(vm2.ping("198.18.44.1", 3), "OVS -> rvs");
    tcp_transfer(&vm2, &vm1, "198.18.44.2", 5501, 5 << 20).expect("TCP rvs -> OVS");
    tcp_transfer(&vm1, &vm2, "198.18.44.1", 5502, 5 << 20).expect("TCP OVS -> rvs");

    // Each side learned the other's VM behind its tunnel port.
    let mac2 = mac_of(&vm2, &p);
    assert_eq!(fdb_row(&rvs, &mac2).map(|r| r.0), Some(rvs.ofport("vx2")));
    let mac1 = mac_of(&vm1, &p1);
    let ovs_port = ovs.vsctl("get Interface vx1 ofport").trim().to_string();
    let table = ovs.appctl("fdb/show br-int");
    assert!(table.lines().any(|l| l.contains(&mac1) && l.split_whitespace().next() == Some(ovs_port.as_str())), "{table}");
}
