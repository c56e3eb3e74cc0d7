//! The text of `ovs-appctl bond/show [PORT]`, `lacp/show [PORT]` and
//! `lacp/show-stats [PORT]`, as Open vSwitch 3.1 prints one bond (bond_print_details
//! in ofproto/bond.c, lacp_print_details and lacp_print_stats in lib/lacp.c): pure
//! functions of the state, so the daemon only concatenates them (OVS prints every bond
//! when no port is named, in hash order; "no such bond" / "no such lacp object"
//! otherwise) and registers the commands.
//!
//! Where rvs differs: it has no recirculation and no `lb_output` action, so a
//! balance-tcp bond says `bond may use recirculation: no, Recirc-ID : -1` and
//! `lb_output action: disabled, bond-id: -1` where OVS's datapath would say yes.

use std::fmt::Write;

use super::lacp::Lacp;
use super::select::{Bond, Mode};
use crate::time::Time;

/// One bond's `bond/show` text, its blank line at the end included.
pub fn bond_show(b: &Bond, now: Time) -> String {
    let c = b.config();
    let mut s = String::new();
    let _ = writeln!(s, "---- {} ----", c.name);
    let _ = writeln!(s, "bond_mode: {}", c.mode.as_str());
    let _ = writeln!(s, "bond may use recirculation: no, Recirc-ID : -1");
    let _ = writeln!(s, "bond-hash-basis: {}", c.basis);
    let _ = writeln!(s, "lb_output action: disabled, bond-id: -1");
    if c.mode == Mode::BalanceSlb {
        let _ = writeln!(s, "all members active: {}", c.all_members_active);
    }
    let _ = writeln!(s, "updelay: {} ms", c.updelay_ms);
    let _ = writeln!(s, "downdelay: {} ms", c.downdelay_ms);
    if b.is_balanced() {
        let _ = writeln!(s, "next rebalance: {} ms", b.next_rebalance().millis() as i64 - now.millis() as i64);
    }
    let _ = writeln!(s, "lacp_status: {}", b.lacp_status().as_str());
    let _ = writeln!(s, "lacp_fallback_ab: {}", c.lacp_fallback_ab);
    let found_primary = c.primary.as_deref().is_some_and(|p| b.members().iter().any(|m| m.name == p));
    let _ = writeln!(
        s,
        "active-backup primary: {}{}",
        c.primary.as_deref().unwrap_or("<none>"),
        if c.primary.is_some() && !found_primary { " (no such member)" } else { "" }
    );
    let by_mac = b.members().iter().find(|m| m.mac == b.active_mac()).map_or("none", |m| m.name.as_str());
    let _ = writeln!(s, "active member mac: {}({by_mac})", b.active_mac());
    let mut order: Vec<usize> = (0..b.members().len()).collect();
    order.sort_by(|&x, &y| b.members()[x].name.cmp(&b.members()[y].name));
    for id in order {
        let m = &b.members()[id];
        let _ = writeln!(s, "\nmember {}: {}", m.name, if m.enabled { "enabled" } else { "disabled" });
        if b.active() == Some(id) {
            let _ = writeln!(s, "  active member");
        }
        if let Some(t) = m.delay_expires {
            let what = if m.enabled { "downdelay" } else { "updelay" };
            let _ = writeln!(s, "  {what} expires in {} ms", t.millis() as i64 - now.millis() as i64);
        }
        let _ = writeln!(s, "  may_enable: {}", m.may_enable);
        if !b.is_balanced() {
            continue;
        }
        for (i, bk) in b.buckets().iter().enumerate() {
            if bk.member == Some(id) && bk.tx_bytes / 1024 > 0 {
                let _ = writeln!(s, "  hash {i}: {} kB load", bk.tx_bytes / 1024);
            }
        }
    }
    s.push('\n');
    s
}

fn sorted_members(l: &Lacp) -> Vec<usize> {
    let mut order: Vec<usize> = (0..l.members().len()).collect();
    order.sort_by(|&x, &y| l.members()[x].cfg.name.cmp(&l.members()[y].cfg.name));
    order
}

/// One bond's `lacp/show` text.
pub fn lacp_show(l: &Lacp) -> String {
    let c = l.config();
    let mut s = String::new();
    let _ = writeln!(s, "---- {} ----", c.name);
    let negotiated = l.status() == super::lacp::LacpStatus::Negotiated;
    let _ = writeln!(s, "  status: {}{}", if c.active { "active" } else { "passive" }, if negotiated { " negotiated" } else { "" });
    let _ = writeln!(s, "  sys_id: {}", c.system_id);
    let _ = writeln!(s, "  sys_priority: {}", c.system_priority);
    let _ = writeln!(s, "  aggregation key: {}", l.key().map_or("none".to_string(), |k| k.to_string()));
    let _ = writeln!(s, "  lacp_time: {}", if c.fast { "fast" } else { "slow" });
    for id in sorted_members(l) {
        let m = &l.members()[id];
        let a = l.actor(id);
        let p = &m.partner;
        let _ = writeln!(s, "\nmember: {}: {} {}", m.cfg.name, m.status.as_str(), if m.attached { "attached" } else { "detached" });
        let _ = writeln!(s, "  port_id: {}", m.cfg.port_id);
        let _ = writeln!(s, "  port_priority: {}", m.cfg.port_priority);
        let _ = writeln!(s, "  may_enable: {}", l.may_enable(id));
        for (who, i) in [("actor", &a), ("partner", p)] {
            let _ = writeln!(s, "\n  {who} sys_id: {}", i.system);
            let _ = writeln!(s, "  {who} sys_priority: {}", i.system_priority);
            let _ = writeln!(s, "  {who} port_id: {}", i.port);
            let _ = writeln!(s, "  {who} port_priority: {}", i.port_priority);
            let _ = writeln!(s, "  {who} key: {}", i.key);
            let state = format!("{:?}", i.state);
            let _ = writeln!(s, "  {who} state:{}{state}", if state.is_empty() { "" } else { " " });
        }
        // OVS ends the actor's block with an empty line; putting it before each
        // block prints the same bytes.
    }
    s
}

/// One bond's `lacp/show-stats` text.
pub fn lacp_show_stats(l: &Lacp) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "---- {} statistics ----", l.config().name);
    for id in sorted_members(l) {
        let m = &l.members()[id];
        let t = &m.stats;
        let _ = writeln!(s, "\nmember: {}:", m.cfg.name);
        let _ = writeln!(s, "  TX PDUs: {}", t.tx_pdus);
        let _ = writeln!(s, "  RX PDUs: {}", t.rx_pdus);
        let _ = writeln!(s, "  RX Bad PDUs: {}", t.rx_bad);
        let _ = writeln!(s, "  RX Marker Request PDUs: {}", t.rx_marker);
        let _ = writeln!(s, "  Link Expired: {}", t.link_expired);
        let _ = writeln!(s, "  Link Defaulted: {}", t.link_defaulted);
        let _ = writeln!(s, "  Carrier Status Changed: {}", t.carrier_changed);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bond::lacp::{LacpConfig, LacpStatus, MemberConfig};
    use crate::bond::select::BondConfig;
    use crate::types::MacAddr;

    fn lacp(active: bool) -> Lacp {
        let mut l = Lacp::new(LacpConfig {
            name: "bond0".into(),
            system_id: MacAddr([0xaa, 0x55, 0xaa, 0x55, 0, 1]),
            system_priority: 65534,
            active,
            fast: false,
            fallback_ab: false,
        });
        for (i, n) in ["eth1", "eth0"].iter().enumerate() {
            let id = l.register(Time::ZERO, None, MemberConfig { name: n.to_string(), port_id: 3 + i as u16, port_priority: 65535, key: 0 });
            l.carrier(Time::ZERO, id, true);
        }
        l
    }

    #[test]
    fn lacp_show_before_any_partner() {
        // An active bond before any PDU: its members are expired with an all-zero
        // partner, which OVS's selection attaches ("negotiated", "attached") while
        // may_enable stays false until the partner is in sync.
        let mut l = lacp(true);
        let _ = l.tick(Time::from_millis(10));
        let member = |name: &str, port: u16| {
            format!(
                "\nmember: {name}: expired attached\n  port_id: {port}\n  port_priority: 65535\n  may_enable: false\n\n  actor sys_id: aa:55:aa:55:00:01\n  actor sys_priority: 65534\n  actor port_id: {port}\n  actor port_priority: 65535\n  actor key: 3\n  actor state: activity aggregation synchronized collecting distributing expired\n\n  partner sys_id: 00:00:00:00:00:00\n  partner sys_priority: 0\n  partner port_id: 0\n  partner port_priority: 0\n  partner key: 0\n  partner state: timeout\n"
            )
        };
        let want = format!(
            "---- bond0 ----\n  status: active negotiated\n  sys_id: aa:55:aa:55:00:01\n  sys_priority: 65534\n  aggregation key: 3\n  lacp_time: slow\n{}{}",
            member("eth0", 4),
            member("eth1", 3)
        );
        assert_eq!(lacp_show(&l), want);
        assert_eq!(
            lacp_show_stats(&l),
            "---- bond0 statistics ----\n\nmember: eth0:\n  TX PDUs: 1\n  RX PDUs: 0\n  RX Bad PDUs: 0\n  RX Marker Request PDUs: 0\n  Link Expired: 0\n  Link Defaulted: 0\n  Carrier Status Changed: 1\n\nmember: eth1:\n  TX PDUs: 1\n  RX PDUs: 0\n  RX Bad PDUs: 0\n  RX Marker Request PDUs: 0\n  Link Expired: 0\n  Link Defaulted: 0\n  Carrier Status Changed: 1\n"
        );
    }

    #[test]
    fn lacp_show_defaulted_passive_has_empty_partner_state() {
        let l = lacp(false);
        let text = lacp_show(&l);
        assert!(text.contains("  status: passive\n"));
        assert!(text.contains("member: eth0: defaulted detached\n"));
        assert!(text.contains("  partner state:\n"), "{text}");
        assert!(text.contains("  actor state: aggregation collecting distributing defaulted\n"), "{text}");
    }

    #[test]
    fn bond_show_active_backup() {
        let mut c = BondConfig::new("bond0", Mode::ActiveBackup);
        c.updelay_ms = 200;
        c.primary = Some("eth9".into());
        let members = [("eth1", MacAddr([2, 0, 0, 0, 0, 1])), ("eth0", MacAddr([2, 0, 0, 0, 0, 2]))];
        let mut b = Bond::new(Time::ZERO, c, &members, LacpStatus::Off, MacAddr::ZERO);
        b.set_carrier(0, true);
        let _ = b.run(Time::ZERO, LacpStatus::Off);
        b.set_carrier(1, true);
        let _ = b.run(Time::from_millis(50), LacpStatus::Off);
        assert_eq!(
            bond_show(&b, Time::from_millis(100)),
            "---- bond0 ----\nbond_mode: active-backup\nbond may use recirculation: no, Recirc-ID : -1\nbond-hash-basis: 0\nlb_output action: disabled, bond-id: -1\nupdelay: 200 ms\ndowndelay: 0 ms\nlacp_status: off\nlacp_fallback_ab: false\nactive-backup primary: eth9 (no such member)\nactive member mac: 02:00:00:00:00:01(eth1)\n\nmember eth0: disabled\n  updelay expires in 150 ms\n  may_enable: true\n\nmember eth1: enabled\n  active member\n  may_enable: true\n\n"
        );
    }

    #[test]
    fn bond_show_balance_slb_with_load() {
        let mut b = Bond::new(Time::ZERO, BondConfig::new("b1", Mode::BalanceSlb), &[("p", MacAddr([2, 0, 0, 0, 0, 1]))], LacpStatus::Off, MacAddr::ZERO);
        b.set_carrier(0, true);
        let _ = b.run(Time::ZERO, LacpStatus::Off);
        b.account(7, 4096);
        b.account(9, 1000);
        let text = bond_show(&b, Time::from_millis(2500));
        assert!(text.contains("\nall members active: false\nupdelay: 0 ms\ndowndelay: 0 ms\nnext rebalance: 7500 ms\nlacp_status: off\n"), "{text}");
        assert!(text.ends_with("member p: enabled\n  active member\n  may_enable: true\n  hash 7: 4 kB load\n\n"), "{text}");
    }
}
