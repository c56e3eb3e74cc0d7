//! Scenario tests of mirroring: which copies a frame makes, with OVS's rules.
#![allow(unused_must_use)]

use super::*;
use crate::bridge::{Actions, BridgeConfig, DropReason, PortVlan, Verdict};
use crate::testing::{frame, tagged};
use crate::time::Time;
use crate::types::MacAddr;

fn v(n: u16) -> VlanId {
    VlanId::new(n).unwrap()
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

/// (port, tag, mirror copy?) sorted.
fn outs(a: &Actions) -> Vec<(PortIdx, Option<u16>, bool)> {
    let mut o: Vec<_> = a.iter().map(|e| (e.port, e.tag.map(|t| t.get()), e.is_mirror())).collect();
    o.sort();
    o
}

/// Keys 1, 2: access 10; 3: access 20; 4: trunk of all VLANs; 5: trunk (the mirror
/// port in most tests).
fn bridge() -> Bridge {
    Bridge::new(
        BridgeConfig::default(),
        vec![PortConfig::access(1, v(10)), PortConfig::access(2, v(10)), PortConfig::access(3, v(20)), PortConfig::trunk(4), PortConfig::trunk(5)],
    )
}

fn all_to(out: MirrorOut) -> MirrorConfig {
    let all = vec![1, 2, 3, 4, 5];
    MirrorConfig { srcs: all.clone(), dsts: all, vlans: None, out, snaplen: 0 }
}

fn only(srcs: &[u32], dsts: &[u32], out: MirrorOut) -> MirrorConfig {
    MirrorConfig { srcs: srcs.to_vec(), dsts: dsts.to_vec(), vlans: None, out, snaplen: 0 }
}

/// Learns mac(1) on port 0 and mac(2) on port 1.
fn learned(b: &mut Bridge, a: &mut Actions) {
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), a);
    b.process(Time::ZERO, 1, &frame(MacAddr::BROADCAST, mac(2)), a);
}

#[test]
fn select_all_copies_each_frame_once_tagged_for_a_trunk() {
    let mut b = bridge();
    let mut a = Actions::default();
    b.set_mirrors(vec![all_to(MirrorOut::Port(5))]);
    learned(&mut b, &mut a);
    // Both the ingress (port 0 is a source) and the egress (port 1 a destination)
    // select it: one copy.
    b.process(Time::ZERO, 0, &frame(mac(2), mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(1, None, false), (4, Some(10), true)]);
    assert_eq!(a.mirrored(), 1);
    b.process(Time::ZERO, 1, &frame(mac(1), mac(2)), &mut a);
    assert_eq!(outs(&a), vec![(0, None, false), (4, Some(10), true)], "the other direction too");
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(1, None, false), (3, Some(10), false), (4, Some(10), true)], "a flood leaves the mirror port out, copies once");
}

#[test]
fn mirror_output_port_forwards_nothing_and_its_input_is_dropped() {
    let mut b = bridge();
    let mut a = Actions::default();
    // mac(9) learned on port 4 before it becomes a mirror port.
    b.process(Time::ZERO, 4, &frame(MacAddr::BROADCAST, mac(9)), &mut a);
    b.set_mirrors(vec![only(&[1], &[], MirrorOut::Port(5))]);
    assert_eq!(b.process(Time::ZERO, 4, &frame(MacAddr::BROADCAST, mac(7)), &mut a), Verdict::Drop(DropReason::MirrorPort));
    assert!(a.is_empty(), "its own frames are not mirrored either");
    assert_eq!(b.fdb().lookup(v(0), mac(7)), None, "nothing learned from it");
    assert_eq!(b.drops().get(DropReason::MirrorPort), 1);
    // Known unicast to an address learned there: dropped, but still mirrored on
    // ingress (port 0 is a source).
    b.process(Time::ZERO, 3, &tagged(mac(1), mac(9), 10), &mut a);
    let f = frame(mac(9), mac(1));
    b.set_mirrors(vec![only(&[1], &[], MirrorOut::Port(4))]);
    assert_eq!(b.process(Time::ZERO, 0, &f, &mut a), Verdict::Drop(DropReason::MirrorPort));
    assert_eq!(outs(&a), vec![(3, Some(10), true)]);
}

#[test]
fn source_and_destination_select_one_direction_each() {
    let mut b = bridge();
    let mut a = Actions::default();
    learned(&mut b, &mut a);
    b.set_mirrors(vec![only(&[1], &[], MirrorOut::Port(5))]);
    b.process(Time::ZERO, 0, &frame(mac(2), mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(1, None, false), (4, Some(10), true)], "received on the source");
    b.process(Time::ZERO, 1, &frame(mac(1), mac(2)), &mut a);
    assert_eq!(outs(&a), vec![(0, None, false)], "sent out of the source: not selected");
    b.set_mirrors(vec![only(&[], &[1], MirrorOut::Port(5))]);
    b.process(Time::ZERO, 0, &frame(mac(2), mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(1, None, false)]);
    b.process(Time::ZERO, 1, &frame(mac(1), mac(2)), &mut a);
    assert_eq!(outs(&a), vec![(0, None, false), (4, Some(10), true)], "sent out of the destination");
}

#[test]
fn select_vlan_filters_and_access_output_untags() {
    let mut b = bridge();
    let mut a = Actions::default();
    let mut m = all_to(MirrorOut::Port(3));
    m.vlans = Some(Box::new(VlanSet::from_ids([v(20)])));
    b.set_mirrors(vec![m]);
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(1, None, false), (3, Some(10), false), (4, Some(10), false)], "VLAN 10 not selected");
    b.process(Time::ZERO, 3, &tagged(MacAddr::BROADCAST, mac(5), 20), &mut a);
    // Port 2 (access 20) is the output: the copy leaves untagged, as OVS's
    // output_normal tags for the port's mode.
    assert_eq!(outs(&a), vec![(2, None, true), (4, Some(20), false)]);
}

#[test]
fn rspan_floods_copies_in_the_output_vlan() {
    let mut b = Bridge::new(
        BridgeConfig::default(),
        vec![
            PortConfig::access(1, v(10)),
            PortConfig::access(2, v(10)),
            PortConfig::access(3, v(99)),
            PortConfig { vlan: PortVlan::new(None, &[v(10), v(99)], None), ..PortConfig::trunk(4) },
            PortConfig::trunk(5),
        ],
    );
    let mut a = Actions::default();
    b.set_flood_vlans([v(99)]);
    b.set_mirrors(vec![only(&[1], &[], MirrorOut::Vlan(v(99))), only(&[], &[], MirrorOut::Port(5))]);
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(
        outs(&a),
        vec![(1, None, false), (2, None, true), (3, Some(10), false), (3, Some(99), true)],
        "to every port in VLAN 99 but the mirror output port (4)"
    );
    // A frame already in VLAN 99 is not copied into it again; nor is one to a
    // reserved group address.
    b.process(Time::ZERO, 0, &frame(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]), mac(1)), &mut a);
    assert!(outs(&a).is_empty());
    b.set_mirrors(vec![only(&[3], &[], MirrorOut::Vlan(v(99)))]);
    b.process(Time::ZERO, 2, &frame(MacAddr::BROADCAST, mac(3)), &mut a);
    assert!(outs(&a).iter().all(|o| !o.2), "{:?}", outs(&a));
    assert_eq!(b.fdb().lookup(v(99), mac(3)), None, "flood VLANs learn nothing");
}

#[test]
fn mirrors_with_one_output_copy_once_and_the_first_counts() {
    let mut b = bridge();
    let mut a = Actions::default();
    learned(&mut b, &mut a);
    b.set_mirrors(vec![only(&[], &[2], MirrorOut::Port(5)), only(&[1], &[], MirrorOut::Port(5)), only(&[1], &[], MirrorOut::Port(4))]);
    b.process(Time::ZERO, 0, &frame(mac(2), mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(1, None, false), (3, Some(10), true), (4, Some(10), true)]);
    assert_eq!(a.mirrored(), 0b110, "ingress mirrors go first; mirror 0 was a duplicate by then");
}

#[test]
fn a_copy_sent_is_an_output_its_destination_mirrors_see() {
    let mut b = bridge();
    let mut a = Actions::default();
    learned(&mut b, &mut a);
    // Mirror 0 copies port 0's frames to port 4; mirror 1 copies what port 4 sends to
    // port 3 (OVS's recursion).
    b.set_mirrors(vec![only(&[1], &[], MirrorOut::Port(5)), only(&[], &[5], MirrorOut::Port(4))]);
    b.process(Time::ZERO, 0, &frame(mac(2), mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(1, None, false), (3, Some(10), true), (4, Some(10), true)]);
    assert_eq!(a.mirrored(), 0b11);
}

#[test]
fn output_port_as_its_own_source_mirrors_the_others() {
    // OVS 3.1 accepts it: the output port receives nothing to mirror (its input is
    // dropped) and sends nothing but copies.
    let mut b = bridge();
    let mut a = Actions::default();
    b.set_mirrors(vec![only(&[1, 5], &[5], MirrorOut::Port(5))]);
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(1, None, false), (3, Some(10), false), (4, Some(10), true)]);
}

#[test]
fn dropped_frames_are_mirrored_on_ingress_only_if_admitted() {
    let mut b = bridge();
    let mut a = Actions::default();
    learned(&mut b, &mut a);
    b.set_mirrors(vec![all_to(MirrorOut::Port(5))]);
    assert_eq!(b.process(Time::ZERO, 0, &frame(mac(1), mac(1)), &mut a), Verdict::Drop(DropReason::Reflection));
    assert_eq!(outs(&a), vec![(4, Some(10), true)]);
    assert_eq!(b.process(Time::ZERO, 0, &tagged(mac(2), mac(1), 10), &mut a), Verdict::Drop(DropReason::TaggedOnAccess));
    assert!(a.is_empty());
}

#[test]
fn removing_mirrors_and_renumbering_ports_keep_the_mac_table() {
    let mut b = bridge();
    let mut a = Actions::default();
    learned(&mut b, &mut a);
    b.set_mirrors(vec![all_to(MirrorOut::Port(5))]);
    // Port 1 goes away: the mirror follows the output port to its new index.
    let mut ports = b.ports().to_vec();
    ports.remove(1);
    b.reconfigure(BridgeConfig::default(), ports);
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(2, Some(10), false), (3, Some(10), true)]);
    b.set_mirrors(Vec::new());
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(2, Some(10), false), (3, Some(10), false)]);
    assert_eq!(a.mirrored(), 0);
    assert_eq!(b.fdb().lookup(v(10), mac(1)), Some(0));
}

#[test]
fn snaplen_marks_copies_and_sorts_them_longest_first() {
    let mut b = bridge();
    let mut a = Actions::default();
    let mut m1 = only(&[1], &[], MirrorOut::Port(4));
    m1.snaplen = 64;
    let mut m2 = only(&[1], &[], MirrorOut::Port(5));
    m2.snaplen = 100;
    b.set_mirrors(vec![m1, m2]);
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    a.sort_by_tag();
    let got: Vec<(PortIdx, u16)> = a.iter().map(|e| (e.port, e.snap)).collect();
    assert_eq!(got, vec![(1, 0), (4, 100), (3, 64)], "forwarding first, then the copies, the shortest cut last");
}

#[test]
fn a_trace_shows_the_copies_process_makes() {
    let mut b = bridge();
    let mut a = Actions::default();
    learned(&mut b, &mut a);
    b.set_mirrors(vec![all_to(MirrorOut::Port(5))]);
    let f = frame(mac(2), mac(1));
    let t = b.trace(Time::ZERO, 0, &f);
    assert_eq!(t.record.mirrored.iter().map(|(i, e)| (*i, e.port)).collect::<Vec<_>>(), vec![(0, 4)]);
    b.process(Time::ZERO, 0, &f, &mut a);
    assert_eq!(t.outputs, a.as_slice());
}
