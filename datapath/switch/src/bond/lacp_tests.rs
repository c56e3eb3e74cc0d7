//! Scenario tests of [`super::lacp`]: two LACP instances (or one and a stranger)
//! cabled member to member, driven in virtual time (100 ms steps), never sleeping.

use super::lacp::*;
use crate::time::Time;
use crate::types::MacAddr;
use crate::wire::lacp::{PDU_LEN, State};

fn cfg(name: &str, sys: u8, active: bool, fast: bool) -> LacpConfig {
    LacpConfig { name: name.into(), system_id: MacAddr([2, 0, 0, 0, 0, sys]), system_priority: 65534, active, fast, fallback_ab: false }
}

fn bond(c: LacpConfig, n: u16) -> Lacp {
    let mut l = Lacp::new(c);
    for i in 0..n {
        let id = l.register(Time::ZERO, None, MemberConfig { name: format!("m{i}"), port_id: i + 1, port_priority: 65535, key: 0 });
        l.carrier(Time::ZERO, id, true);
    }
    l
}

/// One end of a link: (bond, member).
type End = (usize, MemberId);

/// Ends joined by links (member of side 0, member of side 1, link up).
struct Net {
    ends: Vec<Lacp>,
    /// (end, member) <-> (end, member), up.
    links: Vec<(End, End, bool)>,
    now: Time,
    /// PDUs sent per (end, member).
    sent: std::collections::HashMap<(usize, MemberId), u32>,
}

impl Net {
    fn new(ends: Vec<Lacp>, links: &[(End, End)]) -> Net {
        Net { ends, links: links.iter().map(|&(a, b)| (a, b, true)).collect(), now: Time::ZERO, sent: Default::default() }
    }

    fn peer(&self, from: End) -> Option<End> {
        self.links.iter().find_map(|&(a, b, up)| match up {
            true if a == from => Some(b),
            true if b == from => Some(a),
            _ => None,
        })
    }

    fn step(&mut self) {
        self.now = self.now + 100;
        for e in 0..self.ends.len() {
            let out = self.ends[e].tick(self.now);
            for t in out {
                *self.sent.entry((e, t.member)).or_default() += 1;
                let mut b = [0; PDU_LEN];
                t.pdu.emit(&mut b).unwrap();
                if let Some((pe, pm)) = self.peer((e, t.member)) {
                    let _ = self.ends[pe].rx(self.now, pm, &b);
                }
            }
        }
    }

    fn run_ms(&mut self, ms: u64) {
        for _ in 0..ms / 100 {
            self.step();
        }
    }

    fn cut(&mut self, i: usize) {
        self.links[i].2 = false;
    }
}

fn enabled(l: &Lacp) -> Vec<bool> {
    (0..l.members().len()).map(|i| l.may_enable(i)).collect()
}

#[test]
fn two_active_bonds_negotiate() {
    let mut n = Net::new(vec![bond(cfg("a", 1, true, true), 2), bond(cfg("b", 2, true, true), 2)], &[((0, 0), (1, 0)), ((0, 1), (1, 1))]);
    n.run_ms(3000);
    for e in &n.ends {
        assert_eq!(e.status(), LacpStatus::Negotiated);
        assert_eq!(enabled(e), vec![true, true]);
        for m in e.members() {
            assert_eq!(m.status, Status::Current);
            assert!(m.partner.state.has(State::SYNCHRONIZATION | State::COLLECTING));
        }
    }
    // The key is the first member's port id; each side sees the other's system.
    assert_eq!(n.ends[0].members()[1].partner.system, MacAddr([2, 0, 0, 0, 0, 2]));
    assert_eq!(n.ends[0].members()[1].partner.key, 1);
    assert_eq!(n.ends[0].actor(0).state, State(0x3f));
}

#[test]
fn active_and_passive_negotiate_passive_pair_never_does() {
    let mut n = Net::new(vec![bond(cfg("a", 1, true, false), 2), bond(cfg("b", 2, false, false), 2)], &[((0, 0), (1, 0)), ((0, 1), (1, 1))]);
    n.run_ms(3000);
    assert_eq!(enabled(&n.ends[0]), vec![true, true]);
    assert_eq!(enabled(&n.ends[1]), vec![true, true]);

    let mut p = Net::new(vec![bond(cfg("a", 1, false, true), 2), bond(cfg("b", 2, false, true), 2)], &[((0, 0), (1, 0)), ((0, 1), (1, 1))]);
    p.run_ms(120_000);
    assert!(p.sent.is_empty(), "a passive end never speaks first: {:?}", p.sent);
    for e in &p.ends {
        assert_eq!(enabled(e), vec![false, false]);
        assert_eq!(e.status(), LacpStatus::Configured);
        assert_eq!(e.poll_timeout(), None, "nothing to wait for");
    }
}

#[test]
fn partner_timeout_expires_then_defaults() {
    // Fast: expired 3 s after the last PDU (PDUs come every second, so 2-3 s after
    // the cut), defaulted 3 s later.
    let mut n = Net::new(vec![bond(cfg("a", 1, true, true), 2), bond(cfg("b", 2, true, true), 2)], &[((0, 0), (1, 0)), ((0, 1), (1, 1))]);
    n.run_ms(3000);
    n.cut(1);
    let cut_at = n.now;
    while n.ends[0].members()[1].status == Status::Current {
        n.step();
    }
    let t = n.now.since(cut_at);
    assert!((2000..=3000).contains(&t), "expired after {t} ms");
    let expired_at = n.now;
    assert!(!n.ends[0].may_enable(1));
    assert!(n.ends[0].may_enable(0), "the other member keeps working");
    while n.ends[0].members()[1].status == Status::Expired {
        n.step();
    }
    assert_eq!(n.now.since(expired_at), 3000);
    assert_eq!(n.ends[0].members()[1].status, Status::Defaulted);
    assert_eq!(n.ends[0].members()[1].partner, Default::default());
    let s = n.ends[0].members()[1].stats;
    assert_eq!((s.link_expired, s.link_defaulted), (1, 1));
    // Back without a carrier event: a defaulted partner asked for nothing, so the next
    // PDU comes within the slow interval (30 s), as with OVS; then current again.
    n.links[1].2 = true;
    n.run_ms(31_000);
    assert_eq!(enabled(&n.ends[0]), vec![true, true]);
}

#[test]
fn slow_timeout_is_ninety_seconds() {
    let mut n = Net::new(vec![bond(cfg("a", 1, true, false), 2), bond(cfg("b", 2, true, false), 2)], &[((0, 0), (1, 0)), ((0, 1), (1, 1))]);
    n.run_ms(5000);
    assert_eq!(enabled(&n.ends[0]), vec![true, true]);
    n.cut(0);
    let cut_at = n.now;
    while n.ends[0].members()[0].status == Status::Current {
        n.step();
    }
    let t = n.now.since(cut_at);
    assert!((60_000..=90_100).contains(&t), "slow expiry after {t} ms (3 x 30 s after the last PDU)");
}

#[test]
fn fast_and_slow_transmit_intervals() {
    // The interval follows what the partner asks for: b is fast, so a sends every 1 s;
    // a is slow, so b sends every 30 s once settled.
    let mut n = Net::new(vec![bond(cfg("a", 1, true, false), 2), bond(cfg("b", 2, true, true), 2)], &[((0, 0), (1, 0)), ((0, 1), (1, 1))]);
    n.run_ms(10_000);
    n.sent.clear();
    n.run_ms(60_000);
    let a = n.sent[&(0, 0)];
    let b = n.sent[&(1, 0)];
    assert!((59..=61).contains(&a), "a sent {a} PDUs in 60 s (fast partner)");
    assert!((2..=3).contains(&b), "b sent {b} PDUs in 60 s (slow partner)");
    // poll_timeout says when the next is due, never later than it is.
    let next = n.ends[0].poll_timeout().unwrap();
    assert!(next > n.now && next <= n.now + FAST_TX_MS);
}

#[test]
fn member_cabled_to_another_system_is_not_selected() {
    // a's m0 and m1 go to b; m2 goes to c (another switch, same key).
    let ends = vec![bond(cfg("a", 1, true, true), 3), bond(cfg("b", 2, true, true), 2), bond(cfg("c", 3, true, true), 1)];
    let mut n = Net::new(ends, &[((0, 0), (1, 0)), ((0, 1), (1, 1)), ((0, 2), (2, 0))]);
    n.run_ms(5000);
    assert_eq!(enabled(&n.ends[0]), vec![true, true, false]);
    assert!(!n.ends[0].members()[2].attached);
    assert!(!n.ends[2].may_enable(0), "c sees a member out of sync");
    // When b goes away entirely, c's link takes over.
    n.cut(0);
    n.cut(1);
    n.run_ms(8000);
    assert_eq!(enabled(&n.ends[0]), vec![false, false, true]);
}

#[test]
fn loopback_is_never_attached() {
    let mut n = Net::new(vec![bond(cfg("a", 1, true, true), 2)], &[((0, 0), (0, 1))]);
    n.run_ms(5000);
    assert_eq!(enabled(&n.ends[0]), vec![false, false]);
}

#[test]
fn fallback_active_backup_without_partner() {
    let mut c = cfg("a", 1, true, true);
    c.fallback_ab = true;
    let mut a = bond(c, 2);
    let mut now = Time::ZERO;
    for _ in 0..80 {
        now = now + 100;
        let _ = a.tick(now);
    }
    // No partner at all: defaulted, and with lacp-fallback-ab every member may carry
    // traffic (the bond picks one, as active-backup).
    assert_eq!(a.members()[0].status, Status::Defaulted);
    assert_eq!(enabled(&a), vec![true, true]);
    let mut b = bond(cfg("a", 1, true, true), 2);
    for _ in 0..80 {
        let _ = b.tick(now);
        now = now + 100;
    }
    assert_eq!(enabled(&b), vec![false, false], "without fallback nothing carries traffic");
}

#[test]
fn carrier_down_drops_pdus_and_expires() {
    let mut n = Net::new(vec![bond(cfg("a", 1, true, true), 2), bond(cfg("b", 2, true, true), 2)], &[((0, 0), (1, 0)), ((0, 1), (1, 1))]);
    n.run_ms(3000);
    let now = n.now;
    n.ends[0].carrier(now, 1, false);
    assert_eq!(n.ends[0].members()[1].status, Status::Expired);
    n.run_ms(7000);
    assert!(!n.ends[0].may_enable(1));
    assert_eq!(n.ends[0].members()[1].stats.carrier_changed, 2, "up at the start, then down");
    let rx_before = n.ends[0].members()[1].stats.rx_pdus;
    assert!(rx_before > 0, "PDUs still counted while the carrier is down");
    n.ends[0].carrier(n.now, 1, true);
    n.run_ms(3000);
    assert_eq!(enabled(&n.ends[0]), vec![true, true]);
}

#[test]
fn bad_and_marker_pdus_are_counted() {
    let mut a = bond(cfg("a", 1, true, true), 2);
    assert!(!a.rx(Time::ZERO, 0, &[2, 1, 0]));
    assert!(!a.rx(Time::ZERO, 0, &[1, 1, 9]));
    assert!(!a.rx(Time::ZERO, 0, &[]));
    assert!(!a.rx(Time::ZERO, 7, &[1]), "unknown member ignored");
    let s = a.members()[0].stats;
    assert_eq!((s.rx_pdus, s.rx_marker, s.rx_bad), (3, 1, 2));
}
