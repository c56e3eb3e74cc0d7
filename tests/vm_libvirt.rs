//! libvirt drives rvs (issue 24, part 2): the mission's two libvirt networks, verbatim
//! but for the bridge names, on a private libvirtd whose `ovs-vsctl` is rvsctl, and real
//! guests (the image of `scripts/vm-image.sh`) attached with `<interface type='network'>`.
//!
//! * `ovsvl`: `<bridge name='brlv140…'/><vlan><tag id='140'/></vlan>` on the fake bridge
//!   `brlv140…` of `ovsbr0…` (VLAN 140);
//! * `ovsvl2`: `<bridge name='ovsbr0…'/>` with a portgroup `vlan-120`, and one guest on it
//!   with a trunk of VLANs 120 and 140.
//!
//! Bridge names get a unique suffix (7 bytes; `brlv140…` is 14 bytes). Everything runs in
//! a node namespace: rvs-vswitchd, libvirtd (in its own mount namespace, see
//! `rvs_testkit::libvirt`), the taps libvirt makes and the QEMU processes. Root required;
//! KVM when a probe boot works, TCG otherwise. Addresses: 198.18.0.0/15 only.

use std::time::{Duration, Instant};

use rvs_testkit::libvirt::{Libvirtd, start_guest};
use rvs_testkit::vm::{accel, require_vm_tools};
use rvs_testkit::*;

#[test]
fn libvirt_networks_on_rvs_fake_bridge_and_portgroup() {
    require_vm_tools();
    let t0 = Instant::now();
    let n = Node::new("vml");
    let sfx = unique("");
    let (ovsbr0, brlv140) = (format!("ovsbr0{sfx}"), format!("brlv140{sfx}"));
    assert!(brlv140.len() <= 15);
    n.d.ctl_ok(&["add-br", &ovsbr0]);
    n.d.ctl_ok(&["add-br", &brlv140, &ovsbr0, "140"]);

    let lv = Libvirtd::start(&n.ns.name, &n.d);
    // The mission's networks, verbatim but for the bridge names.
    let ovsvl = format!(
        "<network>\n  <name>ovsvl</name>\n  <forward mode='bridge'/>\n  <bridge name='{brlv140}'/>\n  <vlan><tag id='140'/></vlan>\n  <virtualport type='openvswitch'/>\n</network>\n"
    );
    let ovsvl2 = format!(
        "<network>\n  <name>ovsvl2</name>\n  <forward mode='bridge'/>\n  <bridge name='{ovsbr0}'/>\n  <virtualport type='openvswitch'/>\n  <portgroup name='vlan-120'><vlan><tag id='120'/></vlan></portgroup>\n</network>\n"
    );
    for (name, xml) in [("ovsvl", &ovsvl), ("ovsvl2", &ovsvl2)] {
        lv.virsh_xml("net-define", name, xml);
        lv.virsh_ok(&["net-start", name]);
        lv.virsh_ok(&["net-autostart", name]);
    }
    let dumped = lv.virsh_ok(&["net-dumpxml", "ovsvl"]);
    assert!(dumped.contains(&format!("<bridge name='{brlv140}'/>")) && dumped.contains("<tag id='140'/>"), "{dumped}");
    eprintln!("libvirtd and networks up after {:?}", t0.elapsed());

    // One subnet for the access guests, so only VLANs keep them apart.
    let mut g1 = start_guest(&lv, "g140a", "198.18.7.1/24", "ovsvl", None, "");
    let mut g2 = start_guest(&lv, "g140b", "198.18.7.2/24", "ovsvl", None, "");
    let mut g3 = start_guest(&lv, "g120", "198.18.7.3/24", "ovsvl2", Some("vlan-120"), "");
    let trunk = "      <vlan trunk='yes'><tag id='120'/><tag id='140'/></vlan>\n";
    let mut g4 = start_guest(&lv, "gtrunk", "198.18.6.4/24", "ovsvl2", None, trunk);
    let boot = Duration::from_secs(if accel() == vm::Accel::Kvm { 60 } else { 240 });
    for g in [&mut g1, &mut g2, &mut g3, &mut g4] {
        g.wait_ready(&lv, boot);
    }
    eprintln!("four guests up after {:?}", t0.elapsed());

    // What libvirt told rvs: each tap on its bridge with its tag and libvirt's external_ids.
    let (t1, t2, t3, t4) = (g1.tap(&lv), g2.tap(&lv), g3.tap(&lv), g4.tap(&lv));
    let show = n.d.ctl_ok(&["show"]);
    for (t, tag) in [(&t1, "140"), (&t2, "140"), (&t3, "120")] {
        assert!(show.contains(&format!("        Port {t}\n            tag: {tag}\n            Interface {t}\n")), "{t} tag {tag}:\n{show}");
    }
    assert!(show.contains(&format!("        Port {t4}\n            trunks: [120, 140]\n")), "{t4} trunk:\n{show}");
    assert_eq!(n.d.ctl_ok(&["port-to-br", &t1]).trim(), brlv140);
    assert_eq!(n.d.ctl_ok(&["port-to-br", &t3]).trim(), ovsbr0);
    for (g, t) in [(&g1, &t1), (&g3, &t3), (&g4, &t4)] {
        let ids = n.d.ctl_ok(&["get", "Interface", t, "external_ids"]);
        for key in ["attached-mac", "iface-id", "iface-status=active", "vm-id"] {
            assert!(ids.contains(key), "{t}: {key} missing in {ids}");
        }
        assert!(ids.contains(&format!("attached-mac=\"{}\"", g.mac)), "{ids}");
    }
    let dom = lv.virsh_ok(&["dumpxml", &g1.name]);
    assert!(dom.contains("<virtualport type='openvswitch'>") && dom.contains(&format!("<target dev='{t1}'/>")), "{dom}");

    // Traffic: within VLAN 140 and VLAN 120 (the trunk guest on both), not across.
    let (a1, a2, a3, a4) = (g1.agent(), g2.agent(), g3.agent(), g4.agent());
    a4.ok("ip link add link eth0 name eth0.120 type vlan id 120 && ip link set eth0.120 up && ip addr add 198.18.7.4/24 dev eth0.120");
    a4.ok("ip link add link eth0 name eth0.140 type vlan id 140 && ip link set eth0.140 up && ip addr add 198.18.9.4/24 dev eth0.140");
    a1.ok("ip addr add 198.18.9.1/24 dev eth0");
    assert!(a1.ping_eventually("198.18.7.2", Duration::from_secs(30)), "VLAN 140: g1 -> g2\n{}", n.d.log());
    assert!(a2.ping("198.18.7.1", 3), "VLAN 140: g2 -> g1");
    assert!(a3.ping_eventually("198.18.7.4", Duration::from_secs(20)), "VLAN 120: g3 -> trunk guest");
    assert!(a1.ping_eventually("198.18.9.4", Duration::from_secs(20)), "VLAN 140: g1 -> trunk guest");
    assert!(!a3.ping("198.18.7.1", 2), "VLAN 120 must not reach VLAN 140");
    assert!(!a1.ping("198.18.7.3", 2), "VLAN 140 must not reach VLAN 120");

    let table = n.d.ctl_ok(&["fdb/show", &ovsbr0]);
    let of = |p: &str| n.d.ctl_ok(&["get", "Interface", p, "ofport"]).trim().to_string();
    for (g, t, vlan) in [(&g1, &t1, "140"), (&g2, &t2, "140"), (&g3, &t3, "120")] {
        let rows: Vec<&str> = table.lines().filter(|l| l.contains(&g.mac)).collect();
        assert_eq!(rows.len(), 1, "{} once in\n{table}", g.mac);
        let cols: Vec<&str> = rows[0].split_whitespace().collect();
        assert_eq!((cols[0], cols[1]), (of(t).as_str(), vlan), "{}: {}", g.mac, rows[0]);
    }
    // The trunk guest's MAC is learned in both its VLANs, on its one port.
    let trunk_rows: Vec<&str> = table.lines().filter(|l| l.contains(&g4.mac)).collect();
    assert_eq!(trunk_rows.len(), 2, "{table}");

    // virsh domifstat reads the port's counters through ovs-vsctl.
    let st = lv.virsh_ok(&["domifstat", &g1.name, &t1]);
    let rx: u64 = st.lines().find(|l| l.contains("rx_packets")).and_then(|l| l.split_whitespace().last()).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(rx > 0, "domifstat shows no packets:\n{st}");

    // Destroying a guest removes its port.
    lv.virsh_ok(&["destroy", &g2.name]);
    wait_until("libvirt to delete the destroyed guest's port", Duration::from_secs(30), || !n.d.ctl_ok(&["list-ports", &brlv140]).lines().any(|l| l == t2));
    assert!(!n.d.ctl_ok(&["show"]).contains(&t2));
    eprintln!("libvirt_networks_on_rvs_fake_bridge_and_portgroup: {:?} in all", t0.elapsed());
    if std::env::var_os("RVS_VM_VERBOSE").is_some() {
        eprintln!("{}\n{}\n{st}\n--- libvirtd:\n{}", n.d.ctl_ok(&["show"]), n.d.ctl_ok(&["fdb/show", &ovsbr0]), lv.log());
    }
}
