//! Scenario tests of the core with several ports and virtual time, and property tests of
//! its invariants. (Verdicts are often ignored here: the test checks the actions.)
#![allow(unused_must_use)]

use super::*;
use crate::testing::{frame, tagged};
use crate::types::{MacAddr, VlanId};
use proptest::prelude::*;

fn v(n: u16) -> VlanId {
    VlanId::new(n).unwrap()
}

fn mac(n: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, n])
}

fn outs(a: &Actions) -> Vec<(PortIdx, Option<u16>)> {
    let mut o: Vec<_> = a.iter().map(|e| (e.port, e.tag.map(|t| t.get()))).collect();
    o.sort();
    o
}

/// ports: 0 access 10, 1 access 10, 2 access 20, 3 trunk 10,20
fn two_vlans() -> Bridge {
    Bridge::new(
        BridgeConfig::default(),
        vec![
            PortConfig::access(1, v(10)),
            PortConfig::access(2, v(10)),
            PortConfig::access(3, v(20)),
            PortConfig { vlan: PortVlan::new(None, &[v(10), v(20)], None), ..PortConfig::trunk(4) },
        ],
    )
}

/// With journaling on, what the MAC table learned (new, moved, refreshed) is noted
/// for the other workers' replicas, and a replica applying the notes forwards the way
/// the original does.
#[test]
fn journal_carries_learning_to_a_replica() {
    let (mut b, mut replica) = (two_vlans(), two_vlans());
    b.set_journaling(true);
    let mut a = Actions::default();
    let note = |vlan, m, port, ms| LearnNote { vlan: v(vlan), mac: mac(m), port, seen: Time::from_millis(ms), grat_lock: false };
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    b.process(Time::from_millis(10), 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    b.process(Time::from_millis(20), 1, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    b.process(Time::from_millis(1500), 1, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    b.process(Time::from_millis(1600), 0, &frame(MacAddr::BROADCAST, MacAddr([1, 0, 0x5e, 0, 0, 1])), &mut a);
    let notes: Vec<LearnNote> = b.drain_journal().collect();
    assert_eq!(notes, vec![note(10, 1, 0, 0), note(10, 1, 1, 20), note(10, 1, 1, 1500)], "new, moved, refreshed; not the repeat nor multicast");
    assert_eq!(b.drain_journal().count(), 0);
    for n in notes {
        let key = b.ports()[n.port as usize].key;
        replica.apply_note(key, n);
    }
    replica.process(Time::from_millis(1700), 0, &frame(mac(1), mac(2)), &mut a);
    assert_eq!(outs(&a), vec![(1, None)], "the replica knows where mac 1 is");
    let mut plain = two_vlans();
    plain.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(plain.drain_journal().count(), 0, "no journal unless asked for");
}

#[test]
fn flood_learn_then_unicast() {
    let mut b = two_vlans();
    let mut a = Actions::default();
    let t0 = Time::ZERO;
    // vm1 broadcasts (ARP): VLAN 10 ports only, tagged on the trunk.
    let r = b.process(t0, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(r, Verdict::Forward { vlan: v(10), pcp: 0, flood: true });
    assert_eq!(outs(&a), vec![(1, None), (3, Some(10))]);
    // vm2 answers: known unicast to port 0 only.
    let r = b.process(t0, 1, &frame(mac(1), mac(2)), &mut a);
    assert_eq!(r, Verdict::Forward { vlan: v(10), pcp: 0, flood: false });
    assert_eq!(outs(&a), vec![(0, None)]);
    // VLAN 20 cannot reach vm1's MAC: it is unknown there, flooded in VLAN 20 only.
    b.process(t0, 2, &frame(mac(1), mac(3)), &mut a);
    assert_eq!(outs(&a), vec![(3, Some(20))]);
    assert_eq!(b.fdb().len(), 3);
}

#[test]
fn trunk_ingress_tags() {
    let mut b = two_vlans();
    let mut a = Actions::default();
    b.process(Time::ZERO, 3, &tagged(MacAddr::BROADCAST, mac(9), 20), &mut a);
    assert_eq!(outs(&a), vec![(2, None)]);
    assert_eq!(b.fdb().lookup(v(20), mac(9)), Some(3));
    // VLAN 30 is not trunked; untagged is not either (trunks list without 0).
    assert_eq!(b.process(Time::ZERO, 3, &tagged(mac(1), mac(9), 30), &mut a), Verdict::Drop(DropReason::VlanNotAllowed));
    assert_eq!(b.process(Time::ZERO, 3, &frame(mac(1), mac(9)), &mut a), Verdict::Drop(DropReason::VlanNotAllowed));
    assert!(a.is_empty());
    assert_eq!(b.drops().get(DropReason::VlanNotAllowed), 2);
}

#[test]
fn tagged_frame_on_access_port_is_dropped() {
    let mut b = two_vlans();
    let mut a = Actions::default();
    let r = b.process(Time::ZERO, 0, &tagged(MacAddr::BROADCAST, mac(1), 10), &mut a);
    assert_eq!(r, Verdict::Drop(DropReason::TaggedOnAccess));
    // priority-tagged (VID 0) is accepted as untagged
    let r = b.process(Time::ZERO, 0, &tagged(MacAddr::BROADCAST, mac(1), 0xa000), &mut a);
    assert!(matches!(r, Verdict::Forward { pcp: 5, .. }));
}

#[test]
fn runts_are_counted() {
    let mut b = two_vlans();
    let mut a = Actions::default();
    assert_eq!(b.process(Time::ZERO, 0, &[0u8; 13], &mut a), Verdict::Drop(DropReason::Malformed));
    let mut t = tagged(MacAddr::BROADCAST, mac(1), 10);
    t.truncate(17);
    assert_eq!(b.process(Time::ZERO, 3, &t, &mut a), Verdict::Drop(DropReason::Malformed));
    assert_eq!(b.drops().get(DropReason::Malformed), 2);
}

#[test]
fn reflection_and_reserved() {
    let mut b = two_vlans();
    let mut a = Actions::default();
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    b.process(Time::ZERO, 1, &frame(MacAddr::BROADCAST, mac(2)), &mut a);
    // mac(2) moves to port 0's segment? No: a frame from port 0 to mac(1) (on port 0).
    assert_eq!(b.process(Time::ZERO, 0, &frame(mac(1), mac(5)), &mut a), Verdict::Drop(DropReason::Reflection));
    let bpdu = "01:80:c2:00:00:00".parse().unwrap();
    assert_eq!(b.process(Time::ZERO, 0, &frame(bpdu, mac(1)), &mut a), Verdict::Drop(DropReason::ReservedMulticast));
    let mut cfg = *b.config();
    cfg.forward_bpdu = true;
    let ports = b.ports().to_vec();
    b.reconfigure(cfg, ports);
    assert!(matches!(b.process(Time::ZERO, 0, &frame(bpdu, mac(1)), &mut a), Verdict::Forward { .. }));
}

#[test]
fn protected_ports() {
    let mut p: Vec<PortConfig> = (1..=3).map(PortConfig::trunk).collect();
    p[0].protected = true;
    p[1].protected = true;
    let mut b = Bridge::new(BridgeConfig::default(), p);
    let mut a = Actions::default();
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(2, None)]);
    b.process(Time::ZERO, 1, &frame(MacAddr::BROADCAST, mac(2)), &mut a);
    assert_eq!(b.process(Time::ZERO, 1, &frame(mac(1), mac(2)), &mut a), Verdict::Drop(DropReason::Protected));
    b.process(Time::ZERO, 2, &frame(mac(1), mac(3)), &mut a);
    assert_eq!(outs(&a), vec![(0, None)]);
}

#[test]
fn tunnel_split_horizon() {
    let mut p: Vec<PortConfig> = (1..=4).map(PortConfig::trunk).collect();
    p[2].tunnel = true;
    p[3].tunnel = true;
    let mut b = Bridge::new(BridgeConfig::default(), p.clone());
    let mut a = Actions::default();
    b.process(Time::ZERO, 2, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(0, None), (1, None)]);
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(2)), &mut a);
    assert_eq!(outs(&a), vec![(1, None), (2, None), (3, None)]);
    let cfg = BridgeConfig { tunnel_split_horizon: false, ..BridgeConfig::default() };
    b.reconfigure(cfg, p);
    b.process(Time::ZERO, 2, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(0, None), (1, None), (3, None)]);
}

#[test]
fn mac_move_follows_the_vm() {
    let mut b = two_vlans();
    let mut a = Actions::default();
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(b.fdb().lookup(v(10), mac(1)), Some(0));
    // the VM migrates behind the trunk and announces itself (GARP)
    b.process(Time::from_secs(1), 3, &tagged(MacAddr::BROADCAST, mac(1), 10), &mut a);
    assert_eq!(b.fdb().lookup(v(10), mac(1)), Some(3));
    assert_eq!(b.fdb().stats().moved, 1);
    b.process(Time::from_secs(1), 1, &frame(mac(1), mac(2)), &mut a);
    assert_eq!(outs(&a), vec![(3, Some(10))]);
}

#[test]
fn aging_through_the_bridge() {
    let cfg = BridgeConfig { mac_aging_secs: 15, ..BridgeConfig::default() };
    let mut b = Bridge::new(cfg, (1..=3).map(PortConfig::trunk).collect());
    let mut a = Actions::default();
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(b.poll_timeout(), Some(Time::from_secs(15)));
    assert_eq!(b.age(Time::from_secs(14)), 0);
    assert_eq!(b.age(Time::from_secs(15)), 1);
    b.process(Time::from_secs(16), 1, &frame(mac(1), mac(2)), &mut a);
    assert_eq!(outs(&a), vec![(0, None), (2, None)], "unknown again: flooded");
}

#[test]
fn reconfigure_keeps_learned_addresses_of_remaining_ports() {
    let mut b = two_vlans();
    let mut a = Actions::default();
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    b.process(Time::ZERO, 1, &frame(MacAddr::BROADCAST, mac(2)), &mut a);
    // remove the port with key 1 (index 0); key 2 becomes index 0
    let ports: Vec<_> = b.ports()[1..].to_vec();
    b.reconfigure(*b.config(), ports);
    assert_eq!(b.fdb().lookup(v(10), mac(1)), None);
    assert_eq!(b.fdb().lookup(v(10), mac(2)), Some(0));
}

#[test]
fn native_modes_through_the_bridge() {
    let ports = vec![
        PortConfig { vlan: PortVlan::new(Some(v(42)), &[v(47)], Some(VlanMode::NativeUntagged)), ..PortConfig::trunk(1) },
        PortConfig { vlan: PortVlan::new(Some(v(42)), &[], Some(VlanMode::NativeTagged)), ..PortConfig::trunk(2) },
        PortConfig::access(3, v(47)),
    ];
    let mut b = Bridge::new(BridgeConfig::default(), ports);
    let mut a = Actions::default();
    b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(outs(&a), vec![(1, Some(42))]);
    b.process(Time::ZERO, 1, &tagged(MacAddr::BROADCAST, mac(2), 47), &mut a);
    assert_eq!(outs(&a), vec![(0, Some(47)), (2, None)]);
    b.process(Time::ZERO, 1, &frame(MacAddr::BROADCAST, mac(2)), &mut a);
    assert_eq!(outs(&a), vec![(0, None)], "native VLAN leaves native-untagged untagged");
}

#[test]
fn fail_secure_forwards_nothing() {
    let cfg = BridgeConfig { fail_secure: true, ..BridgeConfig::default() };
    let mut b = Bridge::new(cfg, (1..=2).map(PortConfig::trunk).collect());
    let mut a = Actions::default();
    assert_eq!(b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a), Verdict::Drop(DropReason::FailSecure));
    assert!(b.fdb().is_empty());
}

// ---- properties -----------------------------------------------------------------

#[derive(Debug, Clone)]
struct PortSpec {
    tag: Option<u16>,
    trunks: Vec<u16>,
    mode: Option<u8>,
    protected: bool,
    tunnel: bool,
}

fn port_spec() -> impl Strategy<Value = PortSpec> {
    (proptest::option::of(0u16..6), proptest::collection::vec(0u16..6, 0..3), proptest::option::of(0u8..4), any::<bool>(), any::<bool>())
        .prop_map(|(tag, trunks, mode, protected, tunnel)| PortSpec { tag, trunks, mode, protected, tunnel })
}

fn build(specs: &[PortSpec], cap: usize) -> Bridge {
    let ports = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mode = s.mode.map(|m| [VlanMode::Access, VlanMode::Trunk, VlanMode::NativeTagged, VlanMode::NativeUntagged][m as usize]);
            let trunks: Vec<VlanId> = s.trunks.iter().map(|&t| v(t)).collect();
            PortConfig { key: i as u32 + 1, vlan: PortVlan::new(s.tag.map(v), &trunks, mode), protected: s.protected, tunnel: s.tunnel, bond: false }
        })
        .collect();
    Bridge::new(BridgeConfig { mac_table_size: cap, ..BridgeConfig::default() }, ports)
}

#[derive(Debug, Clone)]
struct Rx {
    port: usize,
    src: u8,
    dst: u8,
    vid: Option<u16>,
    dt: u64,
}

fn rx() -> impl Strategy<Value = Rx> {
    (0usize..8, 0u8..12, 0u8..14, proptest::option::of(0u16..7), 0u64..20_000).prop_map(|(port, src, dst, vid, dt)| Rx { port, src, dst, vid, dt })
}

fn addr(n: u8) -> MacAddr {
    match n {
        12 => MacAddr::BROADCAST,
        13 => "01:00:5e:00:00:01".parse().unwrap(),
        n => mac(n),
    }
}

/// Each frame of a scenario as it arrives: its port, the time, its bytes.
fn arrivals(n_ports: usize, frames: &[Rx]) -> impl Iterator<Item = (PortIdx, Time, Vec<u8>)> + '_ {
    frames.iter().scan(Time::ZERO, move |now, f| {
        *now = *now + f.dt;
        let bytes = match f.vid {
            Some(vid) => tagged(addr(f.dst), addr(f.src), vid),
            None => frame(addr(f.dst), addr(f.src)),
        };
        Some(((f.port % n_ports) as PortIdx, *now, bytes))
    })
}

proptest! {
    /// Never out the ingress port; never into another VLAN; every copy leaves through a
    /// port that carries the frame's VLAN with the tag that port's policy asks for; the
    /// table never exceeds its capacity.
    #[test]
    fn invariants(specs in proptest::collection::vec(port_spec(), 1..8),
                  frames in proptest::collection::vec(rx(), 1..200),
                  cap in 1usize..8) {
        let mut b = build(&specs, cap);
        let mut a = Actions::default();
        for ((in_port, now, bytes), f) in arrivals(specs.len(), &frames).zip(&frames) {
            b.age(now);
            let verdict = b.process(now, in_port, &bytes, &mut a);
            prop_assert!(b.fdb().len() <= cap);
            match verdict {
                Verdict::Drop(_) => prop_assert!(a.is_empty()),
                Verdict::Forward { vlan, flood, .. } => {
                    let inp = &b.ports()[in_port as usize];
                    prop_assert_eq!(inp.vlan.input(VlanId::new(f.vid.unwrap_or(0)).unwrap()), Ok(vlan));
                    if !flood { prop_assert_eq!(a.len(), 1); }
                    let mut seen = std::collections::HashSet::new();
                    for e in a.iter() {
                        prop_assert!(e.port != in_port, "reflected to ingress");
                        prop_assert!(seen.insert(e.port), "duplicate copy");
                        let p = &b.ports()[e.port as usize];
                        prop_assert!(p.vlan.includes(vlan), "leaked into a port without VLAN {}", vlan);
                        prop_assert_eq!(e.tag, p.vlan.output_tag(vlan));
                        prop_assert!(!(inp.protected && p.protected));
                        prop_assert!(!(inp.tunnel && p.tunnel));
                    }
                }
            }
        }
    }

    /// A trace predicts exactly what processing the same frame at the same moment does
    /// (verdict and copies, in order) and changes nothing: not the MAC table, not the
    /// drop counters. Small tables make eviction part of the prediction.
    #[test]
    fn trace_is_what_process_then_does(specs in proptest::collection::vec(port_spec(), 1..8),
                  frames in proptest::collection::vec(rx(), 1..120),
                  cap in 1usize..6) {
        let mut b = build(&specs, cap);
        let mut a = Actions::default();
        for (in_port, now, bytes) in arrivals(specs.len(), &frames) {
            b.age(now);
            let before = (b.fdb().entries(now), b.fdb().stats(), b.drops().clone());
            let t = b.trace(now, in_port, &bytes);
            prop_assert_eq!(&before, &(b.fdb().entries(now), b.fdb().stats(), b.drops().clone()), "a trace changed the bridge");
            let verdict = b.process(now, in_port, &bytes, &mut a);
            prop_assert_eq!(t.verdict, verdict);
            prop_assert_eq!(t.outputs.as_slice(), a.as_slice());
        }
    }

    /// Arbitrary bytes never panic the core.
    #[test]
    fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..80), port in 0u16..4) {
        let mut b = two_vlans();
        let mut a = Actions::default();
        let _ = b.process(Time::ZERO, port, &bytes, &mut a);
    }
}

/// A source MAC bouncing between two ports (a loop, or one MAC on two hosts) is
/// detected as a flap naming both ports by key; a replica applying another worker's
/// notes does not count the moves again; a bridge with detection off never flaps.
#[test]
fn a_mac_bouncing_between_ports_is_a_flap() {
    let mut b = two_vlans();
    let mut a = Actions::default();
    for i in 0..12u64 {
        b.process(Time::from_millis(i * 50), (i % 2) as PortIdx, &frame(MacAddr::BROADCAST, mac(9)), &mut a);
    }
    assert_eq!(b.fdb().stats().moved, 11);
    assert_eq!(b.flaps().total(), 1);
    let logged: Vec<Flap> = b.flaps_mut().drain_pending().collect();
    assert_eq!(logged.len(), 1);
    let f = logged[0];
    assert_eq!((f.vlan, f.mac, f.moves), (v(10), mac(9), flap::DEFAULT_MOVES));
    assert!([(1, 2), (2, 1)].contains(&(f.from, f.to)), "ports by key: {f:?}");
    assert_eq!(b.flaps().recent().next().map(|f| f.moves), Some(11));

    let mut replica = two_vlans();
    for i in 0..12u64 {
        replica.apply_note(
            1 + (i % 2) as u32,
            LearnNote { vlan: v(10), mac: mac(9), port: (i % 2) as PortIdx, seen: Time::from_millis(i * 50), grat_lock: false },
        );
    }
    assert_eq!(replica.flaps().total(), 0);

    let mut off = Bridge::new(BridgeConfig { mac_flap_moves: 0, ..BridgeConfig::default() }, two_vlans().ports().to_vec());
    for i in 0..12u64 {
        off.process(Time::from_millis(i * 50), (i % 2) as PortIdx, &frame(MacAddr::BROADCAST, mac(9)), &mut a);
    }
    assert_eq!(off.flaps().total(), 0);
}

/// The trace's record: admission, learning (new, then known), lookup, the ports
/// flooding left out and why; drops with their reason.
#[test]
fn trace_records_each_step() {
    let mut b = two_vlans();
    let mut a = Actions::default();
    let t0 = Time::ZERO;
    let t = b.trace(t0, 0, &frame(MacAddr::BROADCAST, mac(1)));
    assert_eq!(t.verdict, Verdict::Forward { vlan: v(10), pcp: 0, flood: true });
    assert_eq!(t.record.vlan, Some(v(10)));
    assert_eq!(t.record.learn.map(|w| w.learned), Some(Learned::New));
    assert_eq!(t.record.lookup, Some((true, None)));
    assert_eq!(t.record.skipped, vec![(0, Skip::Ingress), (2, Skip::NotInVlan)]);
    assert_eq!(t.outputs.iter().map(|e| (e.port, e.tag.map(|t| t.get()))).collect::<Vec<_>>(), vec![(1, None), (3, Some(10))]);
    assert!(b.fdb().is_empty(), "the trace learned nothing");
    b.process(t0, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    let t = b.trace(t0, 0, &frame(MacAddr::BROADCAST, mac(1)));
    assert_eq!(t.record.learn.map(|w| w.learned), Some(Learned::Known));
    let t = b.trace(t0, 1, &frame(mac(1), mac(2)));
    assert_eq!(t.record.lookup, Some((false, Some(0))));
    assert_eq!(t.verdict, Verdict::Forward { vlan: v(10), pcp: 0, flood: false });
    // a tagged frame on an access port, a frame to its own sender
    assert_eq!(b.trace(t0, 0, &tagged(mac(2), mac(1), 10)).verdict, Verdict::Drop(DropReason::TaggedOnAccess));
    let t = b.trace(t0, 0, &frame(mac(1), mac(1)));
    assert_eq!(t.verdict, Verdict::Drop(DropReason::Reflection));
    assert!(t.outputs.is_empty());
    assert_eq!(b.drops().total(), 0, "traces count no drops");
}

/// A gratuitous ARP (broadcast reply) from `src`.
fn grat_arp(src: MacAddr) -> Vec<u8> {
    let mut f = frame(MacAddr::BROADCAST, src);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[20..22].copy_from_slice(&2u16.to_be_bytes());
    f
}

/// OVS's gratuitous-ARP lock: a gratuitous ARP received on a port that is not a bond
/// keeps its address from being moved onto a bond by gratuitous ARPs (the same ARP
/// reflected back by the switches upstream) for 5 s; other frames still move it, and
/// the lock reaches the other workers' replicas.
#[test]
fn gratuitous_arp_lock_keeps_an_address_off_the_bond() {
    let ports = || vec![PortConfig::access(1, v(10)), PortConfig { bond: true, ..PortConfig::access(2, v(10)) }];
    let (mut b, mut replica) = (Bridge::new(BridgeConfig::default(), ports()), Bridge::new(BridgeConfig::default(), ports()));
    b.set_journaling(true);
    let mut a = Actions::default();
    let at = Time::from_millis;
    b.process(at(0), 0, &grat_arp(mac(1)), &mut a);
    assert_eq!(b.fdb().lookup(v(10), mac(1)), Some(0));
    let notes: Vec<LearnNote> = b.drain_journal().collect();
    assert!(notes.len() == 1 && notes[0].grat_lock, "{notes:?}");
    // Reflected back over the bond: neither admitted by SLB nor learned.
    assert!(!b.slb_admits(1, &grat_arp(mac(1)), at(100)));
    b.process(at(100), 1, &grat_arp(mac(1)), &mut a);
    assert_eq!(b.fdb().lookup(v(10), mac(1)), Some(0), "locked");
    let t = b.trace(at(200), 1, &grat_arp(mac(1)));
    assert_eq!(t.record.learn.map(|w| w.learned), Some(Learned::GratArpLocked));
    // The replica holds the same lock.
    for n in notes {
        replica.apply_note(b.ports()[n.port as usize].key, n);
    }
    assert!(!replica.slb_admits(1, &grat_arp(mac(1)), at(100)));
    replica.process(at(100), 1, &grat_arp(mac(1)), &mut a);
    assert_eq!(replica.fdb().lookup(v(10), mac(1)), Some(0), "locked in the replica too");
    // Other frames from the bond are not gratuitous ARPs: not admitted by SLB, but a
    // bond of another mode learns them.
    assert!(!b.slb_admits(1, &frame(MacAddr::BROADCAST, mac(1)), at(300)));
    // After 5 s a gratuitous ARP over the bond moves the address (the host moved).
    assert!(b.slb_admits(1, &grat_arp(mac(1)), at(5000)));
    b.process(at(5000), 1, &grat_arp(mac(1)), &mut a);
    assert_eq!(b.fdb().lookup(v(10), mac(1)), Some(1), "moved after the lock");
    // A port that is not a bond is never held back by the lock.
    let mut plain = Bridge::new(BridgeConfig::default(), vec![PortConfig::access(1, v(10)), PortConfig::access(2, v(10))]);
    plain.process(at(0), 0, &grat_arp(mac(1)), &mut a);
    plain.process(at(10), 1, &grat_arp(mac(1)), &mut a);
    assert_eq!(plain.fdb().lookup(v(10), mac(1)), Some(1));
    plain.process(at(20), 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    b.process(at(5100), 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    assert_eq!(b.fdb().lookup(v(10), mac(1)), Some(0), "an ordinary frame moves it back");
}
