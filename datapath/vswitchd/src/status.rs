//! Status columns: what the daemon writes into the database for clients to read —
//! Interface `statistics`, `link_state`, `admin_state`, `mtu`, `mac_in_use`, `ifindex`;
//! Open_vSwitch `datapath_types`, `iface_types`, `cur_cfg`.
//!
//! These are ephemeral (never persisted) except `cur_cfg`, and are refreshed when a
//! client asks for a snapshot, so `ovs-vsctl get Interface vm1 statistics` is current.

use crate::reconcile::{Backend, Ports};
use rvs_ovsdb::view::{Interface, OpenVswitch, Port};
use rvs_ovsdb::{Atom, Col, Datum, Db};
use rvs_switch::types::MacAddr;
use rvs_sys::netdev;

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
    db.set_col(OpenVswitch::DATAPATH_TYPES, &root, strings(DATAPATH_TYPES));
    db.set_col(OpenVswitch::IFACE_TYPES, &root, strings(IFACE_TYPES));
}

/// Port `status`: says where configuration was accepted but is not carried out.
/// QoS (egress shaping, Port `qos`) is stored but not applied by rvs; ingress policing
/// (Interface `ingress_policing_rate`) is.
pub fn fill_ports(db: &mut Db) {
    for row in db.tables[Port::TABLE].values_mut() {
        let status = if row.col(Port::QOS).is_empty() {
            Datum::map(vec![])
        } else {
            Datum::smap([("qos", "not applied: egress shaping (QoS) is not supported by rvs")])
        };
        row.set_col(Port::STATUS, status);
    }
}

/// Refreshes every Interface row's status columns from the open ports.
pub fn fill_interfaces(db: &mut Db, ports: &Ports) {
    const LINK: [Col; 5] = [Interface::ADMIN_STATE, Interface::LINK_STATE, Interface::MTU, Interface::MAC_IN_USE, Interface::IFINDEX];
    for (u, row) in db.tables[Interface::TABLE].iter_mut() {
        let name = row.col(Interface::NAME).as_str().unwrap_or_default().to_string();
        let none = Datum::set(vec![]);
        let Some(p) = ports.open.get(u) else {
            for c in LINK {
                row.set_col(c, none.clone());
            }
            row.set_col(Interface::STATISTICS, Datum::map(vec![]));
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
        row.set_col(Interface::STATISTICS, Datum::map(stats.iter().map(|(k, v)| (Atom::String(k.to_string()), Atom::Integer(*v as i64)))));
        // A tap that was moved into a VM's namespace cannot be queried by name from
        // here: its columns are then left empty rather than guessed.
        let visible = match &p.backend {
            Backend::AfPacket(a) => netdev::ifindex(&name).ok() == Some(a.ifindex()),
            Backend::Tap(_) => netdev::ifindex(&name).is_ok(),
            Backend::Vxlan(..) => {
                // A tunnel has no device: it is up while configured, as in OVS.
                row.set_col(Interface::ADMIN_STATE, Datum::string("up"));
                row.set_col(Interface::LINK_STATE, Datum::string("up"));
                for c in [Interface::MTU, Interface::MAC_IN_USE, Interface::IFINDEX] {
                    row.set_col(c, none.clone());
                }
                continue;
            }
        };
        if !visible {
            for c in LINK {
                row.set_col(c, none.clone());
            }
            continue;
        }
        let flags = netdev::flags(&name).unwrap_or(0);
        let updown = |b: bool| Datum::string(if b { "up" } else { "down" });
        row.set_col(Interface::ADMIN_STATE, updown(flags & netdev::IFF_UP as u32 != 0));
        row.set_col(Interface::LINK_STATE, updown(flags & netdev::IFF_RUNNING as u32 != 0));
        row.set_col(Interface::MTU, netdev::mtu(&name).map_or(none.clone(), |m| Datum::integer(i64::from(m))));
        row.set_col(Interface::MAC_IN_USE, netdev::hwaddr(&name).map_or(none.clone(), |m| Datum::string(&MacAddr(m).to_string())));
        row.set_col(Interface::IFINDEX, netdev::ifindex(&name).map_or(none.clone(), |i| Datum::integer(i64::from(i))));
    }
}
