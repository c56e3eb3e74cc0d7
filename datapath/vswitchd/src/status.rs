//! Status columns: what the daemon reports in the database for clients to read —
//! Interface `statistics`, `link_state`, `admin_state`, `mtu`, `mac_in_use`, `ifindex`;
//! Port `status`; Open_vSwitch `datapath_types`, `iface_types` (and `cur_cfg`, which
//! [`crate::control`] sets at commit).
//!
//! The Interface and Port ones are ephemeral (never persisted) and are read fresh when
//! a client asks for a snapshot, so `ovs-vsctl get Interface vm1 statistics` is
//! current. Reading and writing are separate: [`read`] asks the open backends and the
//! devices and returns a [`Status`] value without writing anything; [`Status::write`]
//! puts it into a database — the copy a snapshot sends, never the daemon's own. What a
//! column means for a kind of device (a tunnel is always up, a tap in a VM's namespace
//! cannot be seen) is the backend's to say ([`crate::port::device::Device`]).

use crate::port::device::{Device, Presence};
use crate::reconcile::OpenIfaces;
use rvs_ovsdb::view::{Interface, OpenVswitch, Port};
use rvs_ovsdb::{Atom, Col, Datum, Db, Uuid};
use rvs_switch::types::MacAddr;
use rvs_sys::netdev;

/// Interface types rvs implements (Open_vSwitch `iface_types`).
pub const IFACE_TYPES: &[&str] = &["dpdkvhostuser", "dpdkvhostuserclient", "internal", "system", "tap", "vxlan"];
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

/// The status columns of every Interface and Port, as read at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    pub ifaces: Vec<(Uuid, IfaceStatus)>,
    /// Per Port, why its QoS is not applied (see [`crate::qos`]).
    pub qos_notes: Vec<(Uuid, String)>,
}

/// One interface's status; `None` where there is nothing to say (the column is then
/// empty): the interface is not open, or its device cannot be seen from here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IfaceStatus {
    pub admin_state: Option<&'static str>,
    pub link_state: Option<&'static str>,
    pub mtu: Option<i64>,
    pub mac_in_use: Option<String>,
    pub ifindex: Option<i64>,
    /// Counters, in OVS's order; empty when the interface is not open.
    pub statistics: Vec<(&'static str, u64)>,
}

/// Reads the status of every interface of `db` from the open ports and their devices.
/// Writes nothing.
pub fn read(db: &Db, ports: &OpenIfaces) -> Status {
    let mut qos_notes: Vec<(Uuid, String)> = ports.qos_notes.iter().map(|(u, n)| (*u, n.clone())).collect();
    qos_notes.sort();
    Status { ifaces: Interface::all(db).map(|i| (i.uuid, read_iface(i.name(), ports.open.get(&i.uuid).map(|p| (&*p.device, &*p.stats))))).collect(), qos_notes }
}

fn read_iface(name: &str, open: Option<(&dyn Device, &crate::port::PortStats)>) -> IfaceStatus {
    let Some((device, stats)) = open else { return IfaceStatus::default() };
    let s = stats.snapshot();
    let mut statistics = vec![
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
    device.extra_statistics(&mut statistics);
    match device.presence(name) {
        Presence::Netdev => {}
        // A tap moved into a VM's namespace cannot be queried by name from here: its
        // columns are then left empty rather than guessed.
        Presence::Hidden => return IfaceStatus { statistics, ..IfaceStatus::default() },
        // A tunnel has no device: it is up while configured, as in OVS.
        Presence::Virtual => return IfaceStatus { admin_state: Some("up"), link_state: Some("up"), statistics, ..IfaceStatus::default() },
        Presence::Link(up) => {
            let link_state = Some(if up { "up" } else { "down" });
            return IfaceStatus { admin_state: Some("up"), link_state, statistics, ..IfaceStatus::default() };
        }
    }
    let flags = netdev::flags(name).unwrap_or(0);
    let updown = |b: bool| Some(if b { "up" } else { "down" });
    IfaceStatus {
        admin_state: updown(flags & netdev::IFF_UP as u32 != 0),
        link_state: updown(flags & netdev::IFF_RUNNING as u32 != 0),
        mtu: netdev::mtu(name).ok().map(i64::from),
        mac_in_use: netdev::hwaddr(name).ok().map(|m| MacAddr(m).to_string()),
        ifindex: netdev::ifindex(name).ok().map(i64::from),
        statistics,
    }
}

impl Status {
    /// Writes the status columns into `db` (Interface rows it does not cover keep
    /// theirs); also Port `status`, which follows from `db` alone.
    pub fn write(&self, db: &mut Db) {
        for (u, st) in &self.ifaces {
            let Some(row) = db.row_mut(Interface::TABLE, u) else { continue };
            let opt_str = |v: Option<&str>| v.map_or_else(|| Datum::set(vec![]), Datum::string);
            let opt_int = |v: Option<i64>| v.map_or_else(|| Datum::set(vec![]), Datum::integer);
            let cols: [(Col, Datum); 5] = [
                (Interface::ADMIN_STATE, opt_str(st.admin_state)),
                (Interface::LINK_STATE, opt_str(st.link_state)),
                (Interface::MTU, opt_int(st.mtu)),
                (Interface::MAC_IN_USE, opt_str(st.mac_in_use.as_deref())),
                (Interface::IFINDEX, opt_int(st.ifindex)),
            ];
            for (c, d) in cols {
                row.set_col(c, d);
            }
            let stats = st.statistics.iter().map(|(k, v)| (Atom::String(k.to_string()), Atom::Integer(*v as i64)));
            row.set_col(Interface::STATISTICS, Datum::map(stats));
        }
        fill_ports(db, &self.qos_notes);
    }
}

/// Port `status`: says where configuration was accepted but is not carried out: a
/// QoS rvs does not apply on that port (`qos`: why, see [`crate::qos`]). Empty for a
/// QoS applied, as OVS leaves it.
fn fill_ports(db: &mut Db, qos_notes: &[(Uuid, String)]) {
    for (u, row) in db.tables[Port::TABLE].iter_mut() {
        let status = match qos_notes.iter().find(|(p, _)| p == u) {
            Some((_, note)) if !row.col(Port::QOS).is_empty() => Datum::smap([("qos", note.as_str())]),
            _ => Datum::map(vec![]),
        };
        row.set_col(Port::STATUS, status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_writes_nothing_and_write_fills_a_copy() {
        let mut db = Db::default();
        let i = db.insert_new(Interface::TABLE);
        db.set_col(Interface::NAME, &i, Datum::string("p"));
        db.set_col(Interface::MTU, &i, Datum::integer(1500));
        let before = db.clone();
        let st = read(&db, &OpenIfaces::default());
        assert_eq!(db, before, "reading the status changes nothing");
        assert_eq!(st.ifaces, vec![(i, IfaceStatus::default())], "not open: nothing to say");
        let mut copy = db.clone();
        st.write(&mut copy);
        assert_eq!(copy.col(Interface::MTU, &i), Some(&Datum::set(vec![])));
        assert_eq!(copy.col(Interface::STATISTICS, &i), Some(&Datum::map(vec![])));
        let up = IfaceStatus { admin_state: Some("up"), statistics: vec![("rx_packets", 3)], ..IfaceStatus::default() };
        Status { ifaces: vec![(i, up)], qos_notes: vec![] }.write(&mut copy);
        let v = Interface::get(&copy, &i).unwrap();
        assert_eq!((v.admin_state(), v.link_state()), (Some("up"), None));
        assert_eq!(v.statistics(), &Datum::map([(Atom::String("rx_packets".into()), Atom::Integer(3))]));
    }
}
