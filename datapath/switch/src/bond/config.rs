//! A bond's settings from its Port and Interface columns, read the way Open vSwitch
//! 3.1's vswitchd/bridge.c reads them (port_configure_bond, port_configure_lacp,
//! iface_configure_lacp), so the daemon only hands over the column values:
//! `other_config` is any `key -> value` lookup (the daemon's string map).
//!
//! OVS's readers, reproduced: integers are whole decimal numbers or the default
//! (smap_get_int); booleans are `true` (case-insensitive) or false, or with a true
//! default anything but `false` (smap_get_bool); out-of-range values fall back to the
//! default rather than being refused (OVS logs and carries on).

use super::lacp::{LacpConfig, MemberConfig};
use super::select::{BondConfig, DEFAULT_REBALANCE_MS, Mode};
use crate::types::MacAddr;

/// smap_get_int.
fn int(v: Option<&str>, default: i64) -> i64 {
    v.and_then(|s| s.parse::<i32>().ok()).map_or(default, i64::from)
}

/// smap_get_bool.
fn boolean(v: Option<&str>, default: bool) -> bool {
    match v {
        None => default,
        Some(s) if default => !s.eq_ignore_ascii_case("false"),
        Some(s) => s.eq_ignore_ascii_case("true"),
    }
}

/// The bond settings of Port `name` (its `bond_mode`, `bond_updelay`,
/// `bond_downdelay` and `other_config`). An unknown or missing mode is
/// active-backup, as OVS (which warns).
pub fn bond_config<'a>(name: &str, bond_mode: Option<&str>, updelay: i64, downdelay: i64, oc: impl Fn(&str) -> Option<&'a str>) -> BondConfig {
    let mode = bond_mode.and_then(Mode::parse).unwrap_or_default();
    let mut c = BondConfig::new(name, mode);
    c.updelay_ms = updelay.max(0) as u64;
    c.downdelay_ms = downdelay.max(0) as u64;
    c.basis = int(oc("bond-hash-basis"), 0) as u32;
    let interval = int(oc("bond-rebalance-interval"), DEFAULT_REBALANCE_MS as i64);
    c.rebalance_interval_ms = match interval {
        0 => 0,
        i if i < 1000 => 1000,
        i => i as u64,
    };
    c.lacp_fallback_ab = boolean(oc("lacp-fallback-ab"), false);
    if mode == Mode::ActiveBackup || c.lacp_fallback_ab {
        c.primary = oc("bond-primary").map(String::from);
    }
    c.all_members_active = boolean(oc("all-members-active"), false);
    c.l23 = mode == Mode::BalanceTcp && oc("rvs-bond-hash") == Some("l23");
    // Any mode but "miimon" is carrier (OVS warns about an unknown one).
    if oc("bond-detect-mode") == Some("miimon") {
        c.miimon_ms = match int(oc("bond-miimon-interval"), 0) {
            i if i <= 0 => 200,
            i => i as u64,
        };
    }
    c
}

/// Whether `bond-detect-mode` holds a value OVS does not know (it warns, then uses
/// carrier).
pub fn unknown_detect_mode<'a>(oc: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
    oc("bond-detect-mode").filter(|m| *m != "carrier" && *m != "miimon")
}

/// The LACP settings of a Port with `lacp` = `lacp_col` and `n_ifaces` interfaces on a
/// bridge whose MAC is `bridge_mac`; `None` when LACP is off (or unset, or the
/// system ID is invalid or zero — OVS then runs the bond without LACP).
pub fn lacp_config<'a>(name: &str, lacp_col: Option<&str>, n_ifaces: usize, bridge_mac: MacAddr, oc: impl Fn(&str) -> Option<&'a str>) -> Option<LacpConfig> {
    let active = match lacp_col {
        Some("active") => true,
        Some("passive") => false,
        _ => return None,
    };
    let system_id = match oc("lacp-system-id") {
        Some(s) => s.parse::<MacAddr>().ok()?,
        None => bridge_mac,
    };
    if system_id.is_zero() {
        return None;
    }
    // "Prefer bondable links if unspecified": 65534 for a bond, 65535 for one link.
    let system_priority = match int(oc("lacp-system-priority"), 0) {
        p @ 1..=65535 => p as u16,
        _ => u16::MAX - u16::from(n_ifaces > 1),
    };
    Some(LacpConfig {
        name: name.into(),
        system_id,
        system_priority,
        active,
        fast: oc("lacp-time").is_some_and(|t| t.eq_ignore_ascii_case("fast")),
        fallback_ab: boolean(oc("lacp-fallback-ab"), false),
    })
}

/// A member's LACP settings from its Interface `other_config` and OpenFlow port number.
pub fn member_config<'a>(name: &str, ofport: u16, oc: impl Fn(&str) -> Option<&'a str>) -> MemberConfig {
    let in_u16 = |v: i64| (1..=65535).contains(&v).then_some(v as u16);
    MemberConfig {
        name: name.into(),
        port_id: in_u16(int(oc("lacp-port-id"), 0)).unwrap_or(ofport),
        port_priority: in_u16(int(oc("lacp-port-priority"), 0)).unwrap_or(u16::MAX),
        key: match int(oc("lacp-aggregation-key"), 0) {
            k @ 0..=65535 => k as u16,
            _ => 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<'a>(kv: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |k| kv.iter().find(|(x, _)| *x == k).map(|(_, v)| *v)
    }

    #[test]
    fn bond_defaults_and_clamps() {
        let c = bond_config("b", None, -5, 100, map(&[]));
        assert_eq!((c.mode, c.updelay_ms, c.downdelay_ms, c.rebalance_interval_ms), (Mode::ActiveBackup, 0, 100, 10_000));
        let c =
            bond_config("b", Some("balance-slb"), 0, 0, map(&[("bond-rebalance-interval", "10"), ("bond-primary", "eth0"), ("all-members-active", "TRUE")]));
        assert_eq!(c.rebalance_interval_ms, 1000, "at least 1 s");
        assert_eq!(c.primary, None, "primary only for active-backup or fallback");
        assert!(c.all_members_active);
        let c = bond_config("b", Some("balance-tcp"), 0, 0, map(&[("bond-rebalance-interval", "0"), ("rvs-bond-hash", "l23"), ("lacp-fallback-ab", "yes")]));
        assert_eq!(c.rebalance_interval_ms, 0);
        assert!(c.l23 && !c.lacp_fallback_ab, "only 'true' is true");
        assert!(!bond_config("b", Some("balance-slb"), 0, 0, map(&[("rvs-bond-hash", "l23")])).l23, "l23 is for balance-tcp");
        assert_eq!(bond_config("b", Some("bogus"), 0, 0, map(&[("bond-rebalance-interval", "12x")])).rebalance_interval_ms, 10_000);
        assert_eq!(bond_config("b", None, 0, 0, map(&[("bond-miimon-interval", "50")])).miimon_ms, 0, "carrier mode by default");
        assert_eq!(bond_config("b", None, 0, 0, map(&[("bond-detect-mode", "miimon")])).miimon_ms, 200);
        assert_eq!(bond_config("b", None, 0, 0, map(&[("bond-detect-mode", "miimon"), ("bond-miimon-interval", "-3")])).miimon_ms, 200);
        assert_eq!(bond_config("b", None, 0, 0, map(&[("bond-detect-mode", "miimon"), ("bond-miimon-interval", "50")])).miimon_ms, 50);
        assert_eq!(bond_config("b", None, 0, 0, map(&[("bond-detect-mode", "MIIMON")])).miimon_ms, 0, "OVS compares exactly");
        assert_eq!(unknown_detect_mode(map(&[("bond-detect-mode", "arp")])), Some("arp"));
        assert_eq!(unknown_detect_mode(map(&[("bond-detect-mode", "carrier")])), None);
    }

    #[test]
    fn lacp_settings() {
        let br = MacAddr([2, 0, 0, 0, 0, 1]);
        assert_eq!(lacp_config("b", None, 2, br, map(&[])), None);
        assert_eq!(lacp_config("b", Some("off"), 2, br, map(&[])), None);
        let c = lacp_config("b", Some("passive"), 2, br, map(&[("lacp-time", "FAST")])).unwrap();
        assert_eq!((c.active, c.fast, c.system_id, c.system_priority), (false, true, br, 65534));
        let c = lacp_config("b", Some("active"), 1, br, map(&[("lacp-system-id", "aa:bb:cc:dd:ee:ff"), ("lacp-system-priority", "70000")])).unwrap();
        assert_eq!((c.system_id, c.system_priority), (MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]), 65535));
        assert_eq!(lacp_config("b", Some("active"), 2, br, map(&[("lacp-system-id", "nonsense")])), None);
        assert_eq!(lacp_config("b", Some("active"), 2, MacAddr::ZERO, map(&[])), None);
    }

    #[test]
    fn member_settings() {
        let m = member_config("eth0", 7, map(&[]));
        assert_eq!((m.port_id, m.port_priority, m.key), (7, 65535, 0));
        let m = member_config("eth0", 7, map(&[("lacp-port-id", "12"), ("lacp-port-priority", "0"), ("lacp-aggregation-key", "70000")]));
        assert_eq!((m.port_id, m.port_priority, m.key), (12, 65535, 0));
    }
}
