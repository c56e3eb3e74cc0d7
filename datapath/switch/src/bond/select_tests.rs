//! Scenario and property tests of member selection, rebalancing and admission, in
//! virtual time.

use proptest::prelude::*;

use super::admit::{Verdict, is_gratuitous_arp, slb_accept};
use super::hash::BUCKETS;
use super::lacp::LacpStatus;
use super::select::*;
use crate::testing;
use crate::time::Time;
use crate::types::MacAddr;

fn mac(i: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0xbb, i])
}

fn bond(cfg: BondConfig, n: u8, lacp: LacpStatus) -> Bond {
    let names: Vec<String> = (0..n).map(|i| format!("eth{i}")).collect();
    let members: Vec<(&str, MacAddr)> = names.iter().enumerate().map(|(i, s)| (s.as_str(), mac(i as u8))).collect();
    let mut b = Bond::new(Time::ZERO, cfg, &members, lacp, MacAddr::ZERO);
    for i in 0..n as usize {
        b.set_carrier(i, true);
        b.set_may_enable(i, true);
    }
    let _ = b.run(Time::ZERO, lacp);
    b
}

fn from(src: u8) -> Vec<u8> {
    testing::frame(MacAddr([2, 0, 0, 0, 0, 0xdd]), MacAddr([2, 0, 0, 0, 1, src]))
}

#[test]
fn active_backup_with_delays() {
    let mut c = BondConfig::new("bond0", Mode::ActiveBackup);
    c.updelay_ms = 500;
    c.downdelay_ms = 200;
    let mut b = bond(c, 2, LacpStatus::Off);
    assert_eq!(b.active(), Some(0));
    assert_eq!(b.active_mac(), mac(0));
    assert_eq!(b.output(&from(1), 0), Some(0));
    assert_eq!(b.output(&from(2), 7), Some(0), "every frame on the active member");
    // eth0 loses carrier: still used for the downdelay.
    b.set_carrier(0, false);
    b.send_learning_packets = false;
    let _ = b.run(Time::from_millis(1000), LacpStatus::Off);
    assert_eq!(b.poll_timeout(), Some(Time::from_millis(1200)));
    let _ = b.run(Time::from_millis(1199), LacpStatus::Off);
    assert_eq!(b.active(), Some(0));
    assert!(b.run(Time::from_millis(1200), LacpStatus::Off));
    assert_eq!(b.active(), Some(1));
    assert!(!b.members()[0].enabled);
    assert!(b.send_learning_packets, "the new active member announces the MACs");
    assert_eq!(b.output(&from(1), 0), Some(1));
    // Back up: enabled after the updelay, but eth1 stays active (no primary).
    b.set_carrier(0, true);
    let _ = b.run(Time::from_millis(2000), LacpStatus::Off);
    assert!(!b.members()[0].enabled);
    let _ = b.run(Time::from_millis(2500), LacpStatus::Off);
    assert!(b.members()[0].enabled);
    assert_eq!(b.active(), Some(1));
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn active_backup_primary_and_last_active() {
    let mut c = BondConfig::new("bond0", Mode::ActiveBackup);
    c.primary = Some("eth1".into());
    let mut b = bond(c, 3, LacpStatus::Off);
    assert_eq!(b.active(), Some(1), "the primary when enabled");
    b.set_carrier(1, false);
    let _ = b.run(Time::from_millis(10), LacpStatus::Off);
    assert_eq!(b.active(), Some(0));
    b.set_carrier(1, true);
    let _ = b.run(Time::from_millis(20), LacpStatus::Off);
    assert_eq!(b.active(), Some(1), "back to the primary");
    // Without primary, the last active member (bond_active_slave) is preferred.
    let members = [("eth0", mac(0)), ("eth1", mac(1)), ("eth2", mac(2))];
    let mut b = Bond::new(Time::ZERO, BondConfig::new("b", Mode::ActiveBackup), &members, LacpStatus::Off, mac(2));
    for i in 0..3 {
        b.set_carrier(i, true);
    }
    let _ = b.run(Time::ZERO, LacpStatus::Off);
    assert_eq!(b.active(), Some(2));
    assert!(b.set_active(0).is_ok());
    assert_eq!(b.active_mac(), mac(0));
}

#[test]
fn all_down_takes_the_first_updelay_at_once() {
    let mut c = BondConfig::new("bond0", Mode::ActiveBackup);
    c.updelay_ms = 10_000;
    let members = [("eth0", mac(0)), ("eth1", mac(1))];
    let mut b = Bond::new(Time::ZERO, c, &members, LacpStatus::Off, MacAddr::ZERO);
    assert_eq!(b.output(&from(1), 0), None, "nothing enabled yet");
    b.set_carrier(1, true);
    let _ = b.run(Time::from_millis(5), LacpStatus::Off);
    assert_eq!(b.active(), Some(1), "no member enabled: the updelay is skipped");
    assert!(b.members()[1].enabled);
    b.set_carrier(1, false);
    let _ = b.run(Time::from_millis(6), LacpStatus::Off);
    assert_eq!(b.active(), None);
    assert_eq!(b.active_mac(), MacAddr::ZERO);
    assert_eq!(b.output(&from(1), 0), None);
}

#[test]
fn slb_spreads_by_source_mac_and_moves_on_failure() {
    let mut b = bond(BondConfig::new("bond0", Mode::BalanceSlb), 2, LacpStatus::Off);
    assert_eq!(b.buckets().len(), BUCKETS);
    let on = |b: &Bond, m| (0..=255u8).filter(|&s| b.output(&from(s), 10) == Some(m)).count();
    let (a, c) = (on(&b, 0), on(&b, 1));
    assert_eq!(a + c, 256);
    assert!(a > 60 && c > 60, "256 MACs split {a}/{c}");
    // Sticky: a MAC's frames always leave by the same member.
    let m = b.output(&from(7), 10);
    for _ in 0..10 {
        assert_eq!(b.output(&from(7), 10), m);
    }
    // Frames went through every bucket: eth0 down, everything on eth1; back up,
    // nothing in use moves until a rebalance.
    for bk in 0..=255u8 {
        b.account(bk, 100);
    }
    b.set_carrier(0, false);
    let _ = b.run(Time::from_millis(100), LacpStatus::Off);
    assert_eq!(on(&b, 1), 256);
    b.set_carrier(0, true);
    let _ = b.run(Time::from_millis(200), LacpStatus::Off);
    assert_eq!(on(&b, 1), 256);
    assert!(b.members()[0].enabled);
}

#[test]
fn a_member_enabled_before_traffic_gets_the_unused_buckets_share() {
    // As OVS, which gives a bucket a member at its first frame: eth1 comes up after
    // eth0 but before any traffic, and gets half the buckets at once; a bucket already
    // in use stays on eth0.
    let mut b = bond(BondConfig::new("bond0", Mode::BalanceSlb), 2, LacpStatus::Off);
    b.set_carrier(1, false);
    let _ = b.run(Time::from_millis(1), LacpStatus::Off);
    let busy = b.bucket(&from(3), 0).unwrap();
    b.account(busy, 1000);
    assert!(b.buckets().iter().all(|k| k.member == Some(0)));
    b.set_carrier(1, true);
    let _ = b.run(Time::from_millis(2), LacpStatus::Off);
    let on1 = b.buckets().iter().filter(|k| k.member == Some(1)).count();
    assert!((120..=128).contains(&on1), "{on1} buckets on eth1");
    assert_eq!(b.buckets()[usize::from(busy)].member, Some(0), "a bucket in use keeps its member");
    assert_eq!(b.output(&from(3), 0), Some(0));
}

#[test]
fn rebalance_moves_load_at_the_interval() {
    let mut c = BondConfig::new("bond0", Mode::BalanceSlb);
    c.rebalance_interval_ms = 1000;
    let mut b = bond(c, 2, LacpStatus::Off);
    b.set_carrier(1, false);
    let _ = b.run(Time::from_millis(1), LacpStatus::Off);
    b.set_carrier(1, true);
    let _ = b.run(Time::from_millis(2), LacpStatus::Off);
    // Everything is on eth0; 40 MACs send 1 MB each.
    for s in 0..40u8 {
        let bk = b.bucket(&from(s), 10).unwrap();
        b.account(bk, 1_000_000);
    }
    assert!(!b.rebalance(Time::from_millis(500)), "not before the interval");
    assert!(b.rebalance(Time::from_millis(1000)));
    let (l0, l1) = (b.members()[0].tx_bytes, b.members()[1].tx_bytes);
    let total = l0 + l1;
    assert!(l1 * 10 >= total * 4 && l0 * 10 >= total * 4, "load after rebalance {l0}/{l1}");
    assert_eq!(b.next_rebalance(), Time::from_millis(2000));
    // Loads decay by half per pass; balanced loads move nothing.
    assert!(!b.rebalance(Time::from_millis(2000)));
}

#[test]
fn one_loaded_bucket_is_not_moved() {
    let mut c = BondConfig::new("bond0", Mode::BalanceSlb);
    c.rebalance_interval_ms = 1000;
    let mut b = bond(c, 2, LacpStatus::Off);
    let bk = b.bucket(&from(1), 10).unwrap();
    b.account(bk, 50_000_000);
    assert!(!b.rebalance(Time::from_millis(1000)));
}

#[test]
fn balance_tcp_needs_lacp() {
    let f = from(1);
    let b = bond(BondConfig::new("bond0", Mode::BalanceTcp), 2, LacpStatus::Off);
    assert_eq!(b.output(&f, 0), None);
    let b = bond(BondConfig::new("bond0", Mode::BalanceTcp), 2, LacpStatus::Configured);
    assert_eq!(b.output(&f, 0), None);
    let b = bond(BondConfig::new("bond0", Mode::BalanceTcp), 2, LacpStatus::Negotiated);
    assert!(b.output(&f, 0).is_some());
    // lacp-fallback-ab: not negotiated behaves as active-backup.
    let mut c = BondConfig::new("bond0", Mode::BalanceTcp);
    c.lacp_fallback_ab = true;
    let mut b = bond(c, 2, LacpStatus::Configured);
    assert!(b.falling_back_to_ab() && b.buckets().is_empty());
    assert_eq!(b.output(&f, 0), b.active());
    let _ = b.run(Time::from_millis(1), LacpStatus::Negotiated);
    assert!(!b.falling_back_to_ab() && b.buckets().len() == BUCKETS);
}

#[test]
fn l23_hash_keeps_host_pairs_together() {
    let mut c = BondConfig::new("bond0", Mode::BalanceTcp);
    c.l23 = true;
    let b = bond(c, 2, LacpStatus::Negotiated);
    let tcp = |sport: u16| {
        let mut f = testing::frame(MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        f[14] = 0x45;
        f[23] = 6;
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f
    };
    let m = b.output(&tcp(1), 0);
    assert!((2..200).all(|p| b.output(&tcp(p), 0) == m));
}

#[test]
fn admission() {
    let bcast = MacAddr::BROADCAST;
    let uni = MacAddr([2, 0, 0, 0, 0, 9]);
    let ab = bond(BondConfig::new("b", Mode::ActiveBackup), 2, LacpStatus::Off);
    assert_eq!(ab.admit(0, uni), Verdict::Accept);
    assert_eq!(ab.admit(1, uni), Verdict::Drop, "nothing on a backup member");
    assert_eq!(ab.admit(1, bcast), Verdict::Drop);
    assert_eq!(ab.admit(9, uni), Verdict::Drop);
    let slb = bond(BondConfig::new("b", Mode::BalanceSlb), 2, LacpStatus::Off);
    let active = slb.active().unwrap();
    let other = 1 - active;
    assert_eq!(slb.admit(active, bcast), Verdict::DropIfMoved);
    assert_eq!(slb.admit(other, bcast), Verdict::Drop, "broadcast only on the active member");
    assert_eq!(slb.admit(other, uni), Verdict::DropIfMoved);
    let mut c = BondConfig::new("b", Mode::BalanceSlb);
    c.all_members_active = true;
    assert_eq!(bond(c, 2, LacpStatus::Off).admit(other, bcast), Verdict::DropIfMoved);
    let tcp = bond(BondConfig::new("b", Mode::BalanceTcp), 2, LacpStatus::Negotiated);
    assert_eq!(tcp.admit(1, bcast), Verdict::Accept, "LACP: the partner knows");
    assert_eq!(bond(BondConfig::new("b", Mode::BalanceTcp), 2, LacpStatus::Off).admit(0, uni), Verdict::Drop);
    assert_eq!(bond(BondConfig::new("b", Mode::BalanceSlb), 2, LacpStatus::Configured).admit(0, uni), Verdict::Drop);
    assert_eq!(slb.admit_frame(0, &[1, 2]), Verdict::Drop);
}

#[test]
fn slb_learning_loop_rules() {
    // Learned on the bond, or not at all: accepted.
    assert!(slb_accept(Some(3), 3, false, false));
    assert!(slb_accept(None::<u32>, 3, false, false));
    // Learned elsewhere: our own frame come back; dropped.
    assert!(!slb_accept(Some(1), 3, false, false));
    // Unless a gratuitous ARP (the host moved) and not locked.
    assert!(slb_accept(Some(1), 3, true, false));
    assert!(!slb_accept(Some(1), 3, true, true));
}

fn arp(op: u16, spa: [u8; 4], tpa: [u8; 4], dst: MacAddr) -> Vec<u8> {
    let mut f = testing::frame(dst, MacAddr([2, 0, 0, 0, 0, 1]));
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[20..22].copy_from_slice(&op.to_be_bytes());
    f[28..32].copy_from_slice(&spa);
    f[38..42].copy_from_slice(&tpa);
    f
}

#[test]
fn gratuitous_arp() {
    let b = MacAddr::BROADCAST;
    assert!(is_gratuitous_arp(&arp(2, [10, 0, 0, 1], [10, 0, 0, 2], b)));
    assert!(is_gratuitous_arp(&arp(1, [10, 0, 0, 1], [10, 0, 0, 1], b)));
    assert!(!is_gratuitous_arp(&arp(1, [10, 0, 0, 1], [10, 0, 0, 2], b)));
    assert!(!is_gratuitous_arp(&arp(2, [10, 0, 0, 1], [10, 0, 0, 2], MacAddr([2, 0, 0, 0, 0, 5]))));
    assert!(is_gratuitous_arp(&testing::tag(&arp(2, [1; 4], [2; 4], b), 10)));
    assert!(!is_gratuitous_arp(&testing::frame(b, MacAddr([2, 0, 0, 0, 0, 1]))));
    assert!(!is_gratuitous_arp(&[0xff; 13]));
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::ActiveBackup), Just(Mode::BalanceSlb), Just(Mode::BalanceTcp)]
}

fn lacp() -> impl Strategy<Value = LacpStatus> {
    prop_oneof![Just(LacpStatus::Off), Just(LacpStatus::Configured), Just(LacpStatus::Negotiated)]
}

proptest! {
    /// Whatever the links do over time: a frame leaves by an enabled member or not at
    /// all, always the same one while nothing changes; in active-backup (or falling
    /// back) it is the active member; LACP configured but not negotiated sends nothing
    /// without fallback; without LACP, broadcast is accepted on one
    /// member at most.
    #[test]
    fn selection_invariants(
        mode in mode(), lacp in lacp(), fallback: bool, n in 2u8..5,
        events in proptest::collection::vec((0u8..5, any::<bool>(), 0u64..400), 1..40),
        frames in proptest::collection::vec((any::<u8>(), 0u16..4095), 1..20),
    ) {
        let mut c = BondConfig::new("b", mode);
        c.updelay_ms = 100;
        c.downdelay_ms = 50;
        c.lacp_fallback_ab = fallback;
        let mut b = bond(c, n, lacp);
        let mut now = Time::ZERO;
        for (m, up, dt) in events {
            now = now + dt;
            b.set_carrier(usize::from(m % n), up);
            let _ = b.run(now, lacp);
            for &(s, vlan) in &frames {
                let f = from(s);
                let out = b.output(&f, vlan);
                prop_assert_eq!(out, b.output(&f, vlan));
                if let Some(o) = out {
                    prop_assert!(b.members()[o].enabled, "sent on a disabled member");
                }
                if lacp == LacpStatus::Configured && !fallback {
                    // LACP configured but not negotiated: nothing is sent (OVS).
                    prop_assert_eq!(out, None);
                } else if mode == Mode::ActiveBackup || b.falling_back_to_ab() {
                    prop_assert_eq!(out, b.active());
                }
                if mode == Mode::BalanceTcp && lacp != LacpStatus::Negotiated && !b.falling_back_to_ab() {
                    prop_assert_eq!(out, None);
                }
            }
            if lacp != LacpStatus::Negotiated {
                let accepting = (0..usize::from(n)).filter(|&m| b.admit(m, MacAddr::BROADCAST) != Verdict::Drop).count();
                prop_assert!(accepting <= 1, "broadcast accepted on {} members", accepting);
            }
            if let Some(a) = b.active() {
                prop_assert_eq!(b.active_mac(), mac(a as u8));
            }
        }
    }
}

#[test]
fn migrate_moves_one_bucket_in_slb_only() {
    let mut b = bond(BondConfig::new("bond0", Mode::BalanceSlb), 2, LacpStatus::Off);
    let f = from(9);
    let bucket = b.bucket(&f, 0).expect("balance-slb hashes");
    let was = b.output(&f, 0).expect("a member");
    let other = 1 - was;
    assert_eq!(b.migrate(bucket, other), Ok(()));
    assert_eq!(b.output(&f, 0), Some(other), "the frame's bucket moved");
    assert!(b.buckets()[usize::from(bucket)].used);
    // Not undone by the next run while both members stay enabled.
    let _ = b.run(Time::from_millis(10), LacpStatus::Off);
    assert_eq!(b.output(&f, 0), Some(other));
    assert_eq!(b.migrate(bucket, 7), Err("no such member"));
    b.set_enabled(was, false).unwrap();
    assert_eq!(b.migrate(bucket, was), Err("cannot migrate to disabled member"));
    let mut ab = bond(BondConfig::new("bond1", Mode::ActiveBackup), 2, LacpStatus::Off);
    assert_eq!(ab.migrate(0, 1), Err("not an SLB bond"));
    let mut tcp = bond(BondConfig::new("bond2", Mode::BalanceTcp), 2, LacpStatus::Negotiated);
    assert_eq!(tcp.migrate(0, 1), Err("not an SLB bond"));
}
