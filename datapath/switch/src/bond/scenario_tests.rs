//! LACP and member selection driven together, as the daemon will drive them (the
//! order in the module docs), over two simulated links in virtual time: a balance-tcp
//! bond negotiates, spreads flows over both members, moves them when a member's
//! partner times out, and takes the member back when it returns.

use super::lacp::{Lacp, LacpConfig, MemberConfig};
use super::select::{Bond, BondConfig, Mode};
use crate::time::Time;
use crate::types::MacAddr;
use crate::wire::lacp::PDU_LEN;

struct Side {
    lacp: Lacp,
    bond: Bond,
}

impl Side {
    fn new(sys: u8) -> Side {
        let cfg =
            LacpConfig { name: "bond0".into(), system_id: MacAddr([2, 0, 0, 0, 0, sys]), system_priority: 65534, active: true, fast: true, fallback_ab: false };
        let mut lacp = Lacp::new(cfg);
        let members = [("eth0", MacAddr([2, 0, 0, 0, sys, 1])), ("eth1", MacAddr([2, 0, 0, 0, sys, 2]))];
        let mut bond = Bond::new(Time::ZERO, BondConfig::new("bond0", Mode::BalanceTcp), &members, lacp.status(), MacAddr::ZERO);
        for (i, (n, _)) in members.iter().enumerate() {
            let id = lacp.register(Time::ZERO, None, MemberConfig { name: n.to_string(), port_id: i as u16 + 1, port_priority: 65535, key: 0 });
            lacp.carrier(Time::ZERO, id, true);
            bond.set_carrier(id, true);
        }
        Side { lacp, bond }
    }

    /// The periodic work: LACP, then its verdicts into the bond, then the bond.
    fn run(&mut self, now: Time) -> Vec<(usize, [u8; PDU_LEN])> {
        let out = self.lacp.tick(now);
        for m in 0..2 {
            self.bond.set_may_enable(m, self.lacp.may_enable(m));
        }
        let _ = self.bond.run(now, self.lacp.status());
        out.into_iter()
            .map(|t| {
                let mut b = [0; PDU_LEN];
                t.pdu.emit(&mut b).unwrap();
                (t.member, b)
            })
            .collect()
    }
}

fn flow(port: u16) -> Vec<u8> {
    let mut f = crate::testing::frame(MacAddr([2, 0, 0, 0, 9, 1]), MacAddr([2, 0, 0, 0, 9, 2]));
    f[14] = 0x45;
    f[23] = 17;
    f[34..36].copy_from_slice(&port.to_be_bytes());
    f
}

#[test]
fn balance_tcp_over_lacp_fails_over_and_back() {
    let (mut a, mut b) = (Side::new(1), Side::new(2));
    let mut up = [true, true];
    let mut now = Time::ZERO;
    let step = |a: &mut Side, b: &mut Side, up: &[bool; 2], now: &mut Time| {
        *now = *now + 100;
        for (m, pdu) in a.run(*now) {
            if up[m] {
                let _ = b.lacp.rx(*now, m, &pdu);
            }
        }
        for (m, pdu) in b.run(*now) {
            if up[m] {
                let _ = a.lacp.rx(*now, m, &pdu);
            }
        }
    };
    assert_eq!(a.bond.output(&flow(1), 0), None, "balance-tcp sends nothing before LACP");
    for _ in 0..30 {
        step(&mut a, &mut b, &up, &mut now);
    }
    let used = |s: &Side| {
        let mut n = [0; 2];
        for p in 0..200 {
            n[s.bond.output(&flow(p), 0).expect("a member")] += 1;
        }
        n
    };
    let n = used(&a);
    assert!(n[0] > 50 && n[1] > 50, "200 flows over both members: {n:?}");
    // The flows send (what the daemon counts per frame): their buckets are in use.
    for p in 0..200 {
        let bk = a.bond.bucket(&flow(p), 0).unwrap();
        a.bond.account(bk, 100);
    }
    // eth1's link goes silent: its partner expires (3 s fast timeout) and every flow
    // moves to eth0; admission drops what would still arrive on eth1.
    up[1] = false;
    for _ in 0..40 {
        step(&mut a, &mut b, &up, &mut now);
    }
    assert_eq!(used(&a), [200, 0]);
    assert_eq!(a.bond.admit(1, MacAddr([2, 0, 0, 0, 9, 1])), super::admit::Verdict::Drop);
    // Back: eth1 carries traffic again (a defaulted partner asked for slow PDUs, so
    // this takes up to 30 s); its old buckets, in use, stay on eth0 until a rebalance.
    up[1] = true;
    for _ in 0..320 {
        step(&mut a, &mut b, &up, &mut now);
    }
    assert!(a.lacp.may_enable(1) && a.bond.members()[1].enabled);
    assert_eq!(used(&a), [200, 0]);
    for p in 0..200 {
        let bk = a.bond.bucket(&flow(p), 0).unwrap();
        a.bond.account(bk, 200_000);
    }
    assert!(a.bond.rebalance(now + 10_000));
    let n = used(&a);
    assert!(n[1] > 40, "rebalanced: {n:?}");
}
