//! Status columns: what the daemon writes into the database for clients to read —
//! Interface `statistics`, `link_state`, `admin_state`, `mtu`, `mac_in_use`, `ifindex`;
//! Open_vSwitch `datapath_types`, `iface_types`, `cur_cfg`.
//!
//! These are ephemeral (never persisted) except `cur_cfg`, and are refreshed when a
//! client asks for a snapshot, so `ovs-vsctl get Interface vm1 statistics` is current.

use crate::reconcile::{Backend, Ports};
use rvs_ovsdb::{Atom, Datum, Db, TABLES, tables};
use rvs_sys::netdev;
use rvs_switch::types::MacAddr;

/// Interface types rvs implements (Open_vSwitch `iface_types`).
pub const IFACE_TYPES: &[&str] = &["internal", "system", "tap", "vxlan"];
/// Datapath types rvs accepts (Open_vSwitch `datapath_types`); both mean rvs's own.
pub const DATAPATH_TYPES: &[&str] = &["netdev", "system"];

fn strings(v: &[&str]) -> Datum {
    Datum::set(v.iter().map(|s| Atom::String(s.to_string())).collect())
}

/// Writes the Open_vSwitch row's capability columns.
pub fn fill_root(db: &mut Db) {
    let root = db.ensure_root();
    db.set(tables::OPEN_VSWITCH, &root, "datapath_types", strings(DATAPATH_TYPES));
    db.set(tables::OPEN_VSWITCH, &root, "iface_types", strings(IFACE_TYPES));
}

/// Port `status`: says where configuration was accepted but is not carried out.
/// QoS (egress shaping, Port `qos`) is stored but not applied by rvs; ingress policing
/// (Interface `ingress_policing_rate`) is.
pub fn fill_ports(db: &mut Db) {
    let t = &TABLES[tables::PORT];
    for row in db.tables[tables::PORT].values_mut() {
        let status =
            if row.get(t, "qos").is_empty() { Datum::map(vec![]) } else { Datum::smap([("qos", "not applied: egress shaping (QoS) is not supported by rvs")]) };
        row.set(t, "status", status);
    }
}

/// Refreshes every Interface row's status columns from the open ports.
pub fn fill_interfaces(db: &mut Db, ports: &Ports) {
    let t = &TABLES[tables::INTERFACE];
    let uuids: Vec<_> = db.tables[tables::INTERFACE].keys().copied().collect();
    for u in uuids {
        let Some(row) = db.row_mut(tables::INTERFACE, &u) else { continue };
        let name = row.get(t, "name").as_str().unwrap_or_default().to_string();
        let none = Datum::set(vec![]);
        let Some(p) = ports.open.get(&u) else {
            for c in ["admin_state", "link_state", "mtu", "mac_in_use", "ifindex"] {
                row.set(t, c, none.clone());
            }
            row.set(t, "statistics", Datum::map(vec![]));
            continue;
        };
        let s = p.stats.snapshot();
        let stats = [
            ("collisions", 0),
            ("rx_bytes", s.rx_bytes),
            ("rx_crc_err", 0),
            ("rx_dropped", s.rx_dropped),
            ("rx_errors", s.rx_errors),
            ("rx_frame_err", 0),
            ("rx_missed_errors", 0),
            ("rx_multicast_packets", s.rx_multicast),
            ("rx_over_err", 0),
            ("rx_packets", s.rx_packets),
            ("tx_bytes", s.tx_bytes),
            ("tx_dropped", s.tx_dropped),
            ("tx_errors", s.tx_errors),
            ("tx_packets", s.tx_packets),
        ];
        let mut stats: Vec<(&str, u64)> = stats.to_vec();
        if let Backend::Vxlan(tun, _) = &p.backend {
            stats.push(("tx_mtu_exceeded", tun.stats.mtu_exceeded.load(std::sync::atomic::Ordering::Relaxed)));
        }
        row.set(t, "statistics", Datum::map(stats.iter().map(|(k, v)| (Atom::String(k.to_string()), Atom::Integer(*v as i64)))));
        // A tap that was moved into a VM's namespace cannot be queried by name from
        // here: its columns are then left empty rather than guessed.
        let visible = match &p.backend {
            Backend::AfPacket(a) => netdev::ifindex(&name).ok() == Some(a.ifindex()),
            Backend::Tap(_) => netdev::ifindex(&name).is_ok(),
            Backend::Vxlan(..) => {
                // A tunnel has no device: it is up while configured, as in OVS.
                row.set(t, "admin_state", Datum::string("up"));
                row.set(t, "link_state", Datum::string("up"));
                for c in ["mtu", "mac_in_use", "ifindex"] {
                    row.set(t, c, none.clone());
                }
                continue;
            }
        };
        if !visible {
            for c in ["admin_state", "link_state", "mtu", "mac_in_use", "ifindex"] {
                row.set(t, c, none.clone());
            }
            continue;
        }
        let flags = netdev::flags(&name).unwrap_or(0);
        let updown = |b: bool| Datum::string(if b { "up" } else { "down" });
        row.set(t, "admin_state", updown(flags & netdev::IFF_UP as u32 != 0));
        row.set(t, "link_state", updown(flags & netdev::IFF_RUNNING as u32 != 0));
        row.set(t, "mtu", netdev::mtu(&name).map_or(none.clone(), |m| Datum::integer(i64::from(m))));
        row.set(t, "mac_in_use", netdev::hwaddr(&name).map_or(none.clone(), |m| Datum::string(&MacAddr(m).to_string())));
        row.set(t, "ifindex", netdev::ifindex(&name).map_or(none.clone(), |i| Datum::integer(i64::from(i))));
    }
}
