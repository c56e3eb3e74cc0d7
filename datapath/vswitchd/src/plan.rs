//! Planning: from a committed database to the datapath configuration it calls for, as
//! a value ([`Plan`]) — a pure function of the database (and the number of CPUs): no
//! device is opened or queried, nothing is written. Two plans compare with `==`, which
//! is how the control plane tells whether the workers need a new configuration.
//!
//! Control runs plan → save → apply: the plan is made from the new database, the
//! database is saved durably, then [`crate::reconcile`] applies the plan (opens and
//! closes port backends, records per-interface errors and OpenFlow port numbers) and
//! hands the workers their [`crate::worker::DpConfig`].
//!
//! Interface types (Interface `type`):
//! * `internal`, `tap`: a tap rvs creates ([`crate::port::tap`]);
//! * `""`, `system`: an existing netdev via AF_PACKET ([`crate::port::afpacket`]);
//! * `vxlan`: a tunnel ([`crate::tunnel`] checks its options);
//! * `dpdkvhostuser`, `dpdkvhostuserclient`: a guest's virtio-net over vhost-user
//!   ([`crate::port::vhost`]): rvs listens on `RUNDIR/NAME`, or connects to
//!   `options:vhost-server-path`;
//! * anything else: not supported; the interface stays in the database with an `error`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use rvs_ovsdb::view::{Bridge, Interface, Port};
use rvs_ovsdb::{Datum, Db, Uuid};
use rvs_switch::bridge::police::PolicerConfig;
use rvs_switch::bridge::{BridgeConfig, PortConfig, PortVlan, VlanMode, fdb, flap};
use rvs_switch::types::{OfPort, VlanId, Vni};

use crate::tunnel::{self, VxlanSpec};

/// What the datapath should run for one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Worker threads (`n-workers`, or one per CPU of `pmd-cpu-mask`), also the
    /// receive queues per port.
    pub workers: usize,
    /// Polling workers pinned to CPUs (`pmd-cpu-mask`), or why not.
    pub pmd: Pmd,
    /// The bridges that have interfaces, in the order of the Open_vSwitch row.
    pub bridges: Vec<PlannedBridge>,
    /// Every interface the configuration asks for, in bridge/port/interface order.
    pub ifaces: Vec<PlannedIface>,
}

/// A bridge and its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBridge {
    pub uuid: Uuid,
    pub name: String,
    pub cfg: BridgeConfig,
    /// Bridge `flood_vlans`.
    pub flood_vlans: Vec<VlanId>,
    /// The Mirror rows applied ([`crate::mirrors`]), and OVS's messages about them.
    pub mirrors: Vec<crate::mirrors::PlannedMirror>,
    pub mirror_notes: Vec<(Uuid, String)>,
}

/// One interface the configuration asks for, with all the database says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedIface {
    pub bridge: Uuid,
    pub port: Uuid,
    pub iface: Uuid,
    pub name: String,
    /// Interface `type` as configured.
    pub ty: String,
    /// An error of the whole port (QinQ, bond): no backend for any of its interfaces.
    pub port_error: Option<PortError>,
    /// The backend the interface's `type` and `options` call for, or why there is none.
    pub kind: Result<Kind, PortError>,
    /// The port's VLAN configuration; `key` is filled in with the OpenFlow port number
    /// when the datapath configuration is built.
    pub core: PortConfig,
    pub policer: PolicerConfig,
    /// Interface `mtu_request` and `mac`.
    pub link: LinkSettings,
    /// Interface `other_config:pmd-rxq-affinity`: (receive queue, CPU) pairs, or the
    /// text that could not be read.
    pub rxq_affinity: Result<Vec<(usize, usize)>, String>,
    /// The bond this interface is a member of (its Port has several interfaces).
    pub bond: Option<BondSpec>,
    /// The Port's egress QoS ([`crate::qos`]).
    pub qos: Option<crate::qos::QosSpec>,
}

/// A bond's configuration as its Port and member Interface rows hold it; read into
/// the core's settings ([`rvs_switch::bond::config`]) by [`crate::bonds`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BondSpec {
    pub port_name: String,
    pub bond_mode: Option<String>,
    pub updelay: i64,
    pub downdelay: i64,
    pub lacp: Option<String>,
    /// Port `other_config`.
    pub other_config: BTreeMap<String, String>,
    /// The member Interface's `other_config` (lacp-port-id, …).
    pub member_config: BTreeMap<String, String>,
}

/// Link settings applied to a device rvs has open.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkSettings {
    pub mtu_request: Option<i64>,
    pub mac: Option<String>,
}

/// How the workers wait for input.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Pmd {
    /// Each worker sleeps in epoll when idle (no `pmd-cpu-mask`).
    #[default]
    Off,
    /// One worker per CPU, pinned there, polling without sleeping (OVS-DPDK's PMD
    /// threads): `Open_vSwitch other_config:pmd-cpu-mask`.
    Cpus(Vec<usize>),
    /// A mask that cannot be honoured: the workers run as without it.
    Refused { mask: String, why: String },
}

impl Pmd {
    /// The CPUs of polling workers, in worker order (none when not polling).
    pub fn cpus(&self) -> &[usize] {
        match self {
            Pmd::Cpus(c) => c,
            _ => &[],
        }
    }
}

/// The CPUs this process may run on (for [`plan`]'s default number of workers and
/// the CPUs `pmd-cpu-mask` may name).
pub fn available_cpus() -> Vec<usize> {
    rvs_sys::process::allowed_cpus().ok().filter(|c| !c.is_empty()).unwrap_or_else(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n).collect()
    })
}

/// `pmd-cpu-mask` as OVS reads it (hexadecimal, `0x` optional, bit N = CPU N),
/// checked against the CPUs this process may run on.
pub fn pmd_for(db: &Db, allowed: &[usize]) -> Pmd {
    let oc = db.root_view().map(|r| r.other_config().clone()).unwrap_or_default();
    let Some(mask) = oc.get_str("pmd-cpu-mask").map(str::trim).filter(|m| !m.is_empty()) else { return Pmd::Off };
    let refuse = |why: String| Pmd::Refused { mask: mask.to_string(), why };
    let digits = mask.strip_prefix("0x").or_else(|| mask.strip_prefix("0X")).unwrap_or(mask);
    if digits.is_empty() || digits.len() > 256 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return refuse("not a hexadecimal CPU mask".into());
    }
    let mut cpus = Vec::new();
    for (i, c) in digits.chars().rev().enumerate() {
        let v = c.to_digit(16).unwrap_or(0);
        cpus.extend((0..4).filter(|b| v & (1 << b) != 0).map(|b| i * 4 + b));
    }
    if cpus.is_empty() {
        return refuse("it names no CPU".into());
    }
    if let Some(c) = cpus.iter().find(|c| !allowed.contains(c)) {
        return refuse(format!("CPU {c} is not one rvs-vswitchd may run on ({})", cpu_list(allowed)));
    }
    cpus.truncate(crate::worker::MAX_WORKERS);
    Pmd::Cpus(cpus)
}

/// `pmd-rxq-affinity` as OVS writes it: `QUEUE:CPU` pairs separated by commas.
pub fn rxq_affinity(v: &str) -> Result<Vec<(usize, usize)>, String> {
    v.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (q, c) = p.split_once(':').ok_or_else(|| v.to_string())?;
            Ok((q.trim().parse().map_err(|_| v.to_string())?, c.trim().parse().map_err(|_| v.to_string())?))
        })
        .collect()
}

/// CPUs as a list of ranges (`0-3,6`).
pub fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    out.join(",")
}

/// The plan for `db` on a machine where this process may run on `cpus`.
pub fn plan(db: &Db, cpus: &[usize]) -> Plan {
    let unsupported_vlan = ports_with_unsupported_vlan(db);
    let mut bridges: Vec<PlannedBridge> = Vec::new();
    let ifaces = wanted(db)
        .into_iter()
        .map(|w| {
            if !bridges.iter().any(|b| b.uuid == w.bridge) {
                let name = Bridge::get(db, &w.bridge).map(|b| b.name()).unwrap_or_default().to_string();
                let (mirrors, mirror_notes) = crate::mirrors::plan(db, &w.bridge);
                let flood_vlans = crate::mirrors::flood_vlans(db, &w.bridge);
                bridges.push(PlannedBridge { uuid: w.bridge, name, cfg: bridge_config(db, &w.bridge), flood_vlans, mirrors, mirror_notes });
            }
            let i = Interface::get(db, &w.iface);
            PlannedIface {
                port_error: port_level_error(db, &w.port, &unsupported_vlan),
                kind: kind_for(db, &w),
                core: port_config(db, &w.port, OfPort::LOCAL),
                policer: policer_config(db, &w.iface),
                link: LinkSettings { mtu_request: i.and_then(|i| i.mtu_request()), mac: i.and_then(|i| i.mac()).map(String::from) },
                rxq_affinity: i.and_then(|i| i.other_config().get_str("pmd-rxq-affinity")).map_or(Ok(Vec::new()), rxq_affinity),
                bond: bond_spec(db, &w.port, &w.iface),
                qos: crate::qos::spec_for(db, &w.port),
                bridge: w.bridge,
                port: w.port,
                iface: w.iface,
                name: w.name,
                ty: w.ty,
            }
        })
        .collect();
    let pmd = pmd_for(db, cpus);
    let workers = if let Pmd::Cpus(c) = &pmd { c.len() } else { n_workers_for(db, cpus.len()) };
    Plan { workers, pmd, bridges, ifaces }
}

impl Plan {
    /// The planned interface `iface`.
    pub fn iface(&self, iface: &Uuid) -> Option<&PlannedIface> {
        self.ifaces.iter().find(|w| w.iface == *iface)
    }

    /// The planned bridge `uuid`.
    pub fn bridge(&self, uuid: &Uuid) -> Option<&PlannedBridge> {
        self.bridges.iter().find(|b| b.uuid == *uuid)
    }
}

/// Why an interface is not running; the text is the interface's `error` column (OVS's
/// wording where OVS has one), so the OS error is kept as its strerror(3) text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("could not open network device {name} (Invalid argument: {why})")]
    BadName { name: String, why: &'static str },
    #[error("could not open network device {name} ({os})")]
    Open { name: String, os: String },
    #[error("{name}: could not listen on UDP port {port} for VXLAN ({os})")]
    VxlanListen { name: String, port: u16, os: String },
    #[error("{name}: could not open VXLAN send sockets ({os})")]
    VxlanSend { name: String, os: String },
    #[error("{0}: dpdkvhostuserclient needs options:vhost-server-path")]
    VhostNoPath(String),
    #[error("{name}: cannot serve vhost-user socket {path} ({os})")]
    Vhost { name: String, path: String, os: String },
    #[error("interface type \"{0}\" is not supported by rvs")]
    UnsupportedType(String),
    #[error(transparent)]
    Tunnel(#[from] tunnel::TunnelError),
    #[error("vlan_mode dot1q-tunnel (802.1ad QinQ) is not supported by rvs")]
    QinQ,
    #[error("bond {port}: member {name} is of type \"{ty}\"; rvs bonds are made of system devices")]
    BondMember { port: String, name: String, ty: String },
    #[error("{name}: tunnel port {other} already has remote_ip={remote} key={vni} dst_port={dst_port}")]
    TunnelClash { name: String, other: String, remote: IpAddr, vni: Vni, dst_port: u16 },
}

/// What kind of backend an interface needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A tap rvs creates (`internal` or `tap`); the string is the type as configured.
    Tap(String),
    /// An existing netdev (`""` or `system`).
    System,
    /// A VXLAN tunnel with its options.
    Vxlan(VxlanSpec),
    /// `dpdkvhostuser`: a vhost-user socket rvs listens on (`RUNDIR/NAME`).
    VhostServer,
    /// `dpdkvhostuserclient`: the vhost-user socket rvs connects to.
    VhostClient(String),
}

/// One interface the configuration asks for.
struct Wanted {
    bridge: Uuid,
    port: Uuid,
    iface: Uuid,
    name: String,
    ty: String,
}

/// The root's bridges in name order: the order in which a port listed by two bridges
/// is given to the first (the set's own order is that of random UUIDs).
fn bridges_by_name(db: &Db) -> Vec<Bridge<'_>> {
    let Some(root) = db.root_view() else { return Vec::new() };
    let mut v: Vec<Bridge<'_>> = root.bridges().filter_map(|b| Bridge::get(db, &b)).collect();
    v.sort_by(|a, b| a.name().cmp(b.name()));
    v
}

/// The interfaces the database asks for, in bridge/port/interface order. A port that
/// more than one bridge lists (the schema allows it; it makes no sense for a switch)
/// belongs to the one whose name sorts first; the others' references are ignored (and
/// logged, see [`shared_ports`]).
fn wanted(db: &Db) -> Vec<Wanted> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for b in bridges_by_name(db) {
        for p in b.ports().filter_map(|p| Port::get(db, &p)).filter(|p| seen.insert(p.uuid)) {
            for i in p.interfaces().filter_map(|i| Interface::get(db, &i)) {
                out.push(Wanted { bridge: b.uuid, port: p.uuid, iface: i.uuid, name: i.name().to_string(), ty: i.type_().to_string() });
            }
        }
    }
    out
}

/// Ports listed by more than one bridge: (port, the bridge that has it, one that is
/// ignored), in the order [`wanted`] meets them.
pub fn shared_ports(db: &Db) -> Vec<(Uuid, String, String, String)> {
    let mut owner: std::collections::HashMap<Uuid, String> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for b in bridges_by_name(db) {
        for p in b.ports().filter_map(|p| Port::get(db, &p)) {
            match owner.get(&p.uuid) {
                Some(first) => out.push((p.uuid, p.name().to_string(), first.clone(), b.name().to_string())),
                None => {
                    owner.insert(p.uuid, b.name().to_string());
                }
            }
        }
    }
    out
}

/// The backend an interface's `type` and `options` call for.
fn kind_for(db: &Db, w: &Wanted) -> Result<Kind, PortError> {
    match w.ty.as_str() {
        "" | "system" => Ok(Kind::System),
        "internal" | "tap" => Ok(Kind::Tap(w.ty.clone())),
        "vxlan" => {
            let map: BTreeMap<String, String> =
                Interface::get(db, &w.iface).into_iter().flat_map(|i| i.option_pairs()).map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Ok(Kind::Vxlan(tunnel::parse(&w.name, &map)?))
        }
        "dpdkvhostuser" => Ok(Kind::VhostServer),
        "dpdkvhostuserclient" => {
            let path = Interface::get(db, &w.iface).and_then(|i| i.option_pairs().find(|(k, _)| *k == "vhost-server-path").map(|(_, v)| v.to_string()));
            path.filter(|p| !p.is_empty()).map(Kind::VhostClient).ok_or_else(|| PortError::VhostNoPath(w.name.clone()))
        }
        other => Err(PortError::UnsupportedType(other.into())),
    }
}

/// Ports whose VLAN configuration rvs cannot carry out.
fn ports_with_unsupported_vlan(db: &Db) -> Vec<Uuid> {
    Port::all(db).filter(|p| p.vlan_mode() == Some("dot1q-tunnel")).map(|p| p.uuid).collect()
}

/// An error that applies to every interface of a port.
fn port_level_error(db: &Db, port: &Uuid, unsupported_vlan: &[Uuid]) -> Option<PortError> {
    if unsupported_vlan.contains(port) {
        return Some(PortError::QinQ);
    }
    let p = Port::get(db, port)?;
    if p.interfaces().count() > 1 {
        let odd = p.interfaces().filter_map(|i| Interface::get(db, &i)).find(|i| !matches!(i.type_(), "" | "system"));
        if let Some(i) = odd {
            return Some(PortError::BondMember { port: p.name().into(), name: i.name().into(), ty: i.type_().into() });
        }
    }
    None
}

fn string_map(d: &Datum) -> BTreeMap<String, String> {
    d.str_pairs().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The bond settings of interface `iface` of Port `port`, when the port is a bond.
fn bond_spec(db: &Db, port: &Uuid, iface: &Uuid) -> Option<BondSpec> {
    let p = Port::get(db, port)?;
    if p.interfaces().count() < 2 {
        return None;
    }
    Some(BondSpec {
        port_name: p.name().into(),
        bond_mode: p.bond_mode().map(String::from),
        updelay: p.bond_updelay(),
        downdelay: p.bond_downdelay(),
        lacp: p.lacp().map(String::from),
        other_config: string_map(p.other_config()),
        member_config: Interface::get(db, iface).map(|i| string_map(i.other_config())).unwrap_or_default(),
    })
}

/// `smap_get_int`-like: the leading integer of a string map value, 0 when absent or bad.
fn other_config_int(d: &Datum, key: &str) -> i64 {
    let v = d.get_str(key).unwrap_or("").trim_start();
    let end = v.char_indices().find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && (c == '-' || c == '+')))).map_or(v.len(), |(i, _)| i);
    v[..end].parse().unwrap_or(0)
}

/// Bridge `other_config` as the core needs it, with OVS's defaults and clamps.
pub fn bridge_config(db: &Db, bridge: &Uuid) -> BridgeConfig {
    let b = Bridge::get(db, bridge);
    let oc = b.map(|b| b.other_config().clone()).unwrap_or_default();
    let aging = match other_config_int(&oc, "mac-aging-time") {
        0 => i64::from(fdb::DEFAULT_AGING_SECS),
        n => n,
    };
    let size = match other_config_int(&oc, "mac-table-size") {
        0 => fdb::DEFAULT_CAPACITY as i64,
        n => n,
    };
    BridgeConfig {
        mac_aging_secs: fdb::normalize_aging_secs(aging),
        mac_table_size: size.clamp(10, 1_000_000) as usize,
        forward_bpdu: oc.get_str("forward-bpdu") == Some("true"),
        tunnel_split_horizon: oc.get_str("tunnel-split-horizon") != Some("false"),
        fail_secure: b.and_then(|b| b.fail_mode()) == Some("secure"),
        // rvs's own keys; absent or not a number: the defaults. 0 moves turns it off.
        mac_flap_moves: oc.get_str("rvs-mac-flap-moves").and_then(|v| v.parse().ok()).unwrap_or(flap::DEFAULT_MOVES),
        mac_flap_window_secs: oc.get_str("rvs-mac-flap-window").and_then(|v| v.parse().ok()).filter(|&w| w > 0).unwrap_or(flap::DEFAULT_WINDOW_SECS),
    }
}

/// Port `tag`, `trunks`, `vlan_mode`, `protected` as the core needs them.
pub fn port_config(db: &Db, port: &Uuid, ofport: OfPort) -> PortConfig {
    let Some(p) = Port::get(db, port) else { return PortConfig::trunk(u32::from(ofport.get())) };
    let vid = |i: i64| u16::try_from(i).ok().and_then(VlanId::new);
    let tag = p.tag().and_then(vid);
    let trunks: Vec<VlanId> = p.trunks().filter_map(vid).collect();
    let mode = p.vlan_mode().and_then(VlanMode::parse);
    PortConfig {
        key: u32::from(ofport.get()),
        vlan: PortVlan::new(tag, &trunks, mode),
        protected: p.protected(),
        tunnel: false,
        bond: p.interfaces().nth(1).is_some(),
    }
}

/// Interface `ingress_policing_*` columns.
fn policer_config(db: &Db, iface: &Uuid) -> PolicerConfig {
    let Some(i) = Interface::get(db, iface) else { return PolicerConfig::default() };
    let n = |v: i64| v.max(0) as u64;
    PolicerConfig {
        rate_kbps: n(i.ingress_policing_rate()),
        burst_kbit: n(i.ingress_policing_burst()),
        rate_kpps: n(i.ingress_policing_kpkts_rate()),
        burst_kpkts: n(i.ingress_policing_kpkts_burst()),
    }
}

fn n_workers_for(db: &Db, cpus: usize) -> usize {
    let oc = db.root_view().map(|r| r.other_config().clone()).unwrap_or_default();
    match other_config_int(&oc, "n-workers") {
        n if n > 0 => (n as usize).min(crate::worker::MAX_WORKERS),
        _ => default_workers(cpus),
    }
}

/// Workers when `n-workers` is not set: one per 4 CPUs the daemon may run on, at
/// least 1 and at most 8 — the rest of a node's cores are its VMs'. An idle worker
/// sleeps, so an unused one costs nothing.
pub fn default_workers(cpus: usize) -> usize {
    (cpus / 4).clamp(1, 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rvs_ovsdb::view::OpenVswitch;

    #[test]
    fn other_config_parsing() {
        let d = Datum::smap([("mac-aging-time", "20"), ("mac-table-size", "5"), ("x", "abc")]);
        assert_eq!(other_config_int(&d, "mac-aging-time"), 20);
        assert_eq!(other_config_int(&d, "x"), 0);
        assert_eq!(other_config_int(&d, "none"), 0);
        let d = Datum::smap([("mac-aging-time", "12abc")]);
        assert_eq!(other_config_int(&d, "mac-aging-time"), 12);
    }

    #[test]
    fn pmd_cpu_mask_is_read_as_ovs_reads_it() {
        let mut db = Db::new();
        let root = db.ensure_root();
        let allowed = [0, 1, 2, 3];
        assert_eq!(pmd_for(&db, &allowed), Pmd::Off);
        for (mask, want) in [("0x6", vec![1, 2]), ("6", vec![1, 2]), ("0XF", vec![0, 1, 2, 3]), ("1", vec![0]), ("00008", vec![3])] {
            db.set_col(OpenVswitch::OTHER_CONFIG, &root, Datum::smap([("pmd-cpu-mask", mask)]));
            assert_eq!(pmd_for(&db, &allowed), Pmd::Cpus(want.clone()), "{mask}");
            assert_eq!(plan(&db, &allowed).workers, want.len(), "one worker per CPU of {mask}");
        }
        for (mask, why) in [
            ("0x10", "CPU 4 is not one rvs-vswitchd may run on (0-3)"),
            ("0", "it names no CPU"),
            ("0xg", "not a hexadecimal CPU mask"),
            ("0x", "not a hexadecimal CPU mask"),
        ] {
            db.set_col(OpenVswitch::OTHER_CONFIG, &root, Datum::smap([("pmd-cpu-mask", mask), ("n-workers", "3")]));
            assert_eq!(pmd_for(&db, &allowed), Pmd::Refused { mask: mask.into(), why: why.into() }, "{mask}");
            assert_eq!(plan(&db, &allowed).workers, 3, "a refused mask leaves n-workers in charge");
        }
        assert_eq!(cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(rxq_affinity("0:3, 1:7"), Ok(vec![(0, 3), (1, 7)]));
        assert_eq!(rxq_affinity(""), Ok(vec![]));
        assert_eq!(rxq_affinity("0:x"), Err("0:x".into()));
        assert_eq!(rxq_affinity("3"), Err("3".into()));
    }

    #[test]
    fn n_workers_is_bounded() {
        let mut db = Db::default();
        assert_eq!(n_workers_for(&db, 2), 1, "no Open_vSwitch row");
        let root = db.ensure_root();
        for (cpus, want) in [(1, 1), (2, 1), (7, 1), (8, 2), (16, 4), (64, 8), (256, 8)] {
            assert_eq!(n_workers_for(&db, cpus), want, "unset, {cpus} CPUs");
        }
        for (v, want) in [("4", 4), ("0", 3), ("-3", 3), ("abc", 3), ("1000", crate::worker::MAX_WORKERS)] {
            db.set_col(OpenVswitch::OTHER_CONFIG, &root, Datum::smap([("n-workers", v)]));
            assert_eq!(n_workers_for(&db, 12), want, "n-workers={v}, 12 CPUs");
        }
    }

    /// A bridge `br` with one port `p` holding one interface of type `ty`.
    fn one_port(ty: &str) -> (Db, Uuid, Uuid) {
        use rvs_ovsdb::Atom;
        let mut db = Db::default();
        let root = db.ensure_root();
        let i = db.insert_new(Interface::TABLE);
        db.set_col(Interface::NAME, &i, Datum::string("p"));
        db.set_col(Interface::TYPE, &i, Datum::string(ty));
        let p = db.insert_new(Port::TABLE);
        db.set_col(Port::NAME, &p, Datum::string("p"));
        db.set_col(Port::INTERFACES, &p, Datum::uuid(i));
        let b = db.insert_new(Bridge::TABLE);
        db.set_col(Bridge::NAME, &b, Datum::string("br"));
        db.set_col(Bridge::PORTS, &b, Datum::uuid(p));
        db.set_col(OpenVswitch::BRIDGES, &root, Datum::set(vec![Atom::Uuid(b)]));
        (db, p, i)
    }

    #[test]
    fn plans_compare_by_value() {
        let (mut db, p, i) = one_port("internal");
        let a = plan(&db, &[0, 1, 2, 3]);
        assert_eq!(a, plan(&db.clone(), &[0, 1, 2, 3]), "the same database, the same plan");
        assert_eq!(a.workers, 1);
        assert_eq!(a.bridges.len(), 1);
        assert_eq!(a.iface(&i).map(|w| w.kind.clone()), Some(Ok(Kind::Tap("internal".into()))));
        db.set_col(Port::TAG, &p, Datum::integer(10));
        let b = plan(&db, &[0, 1, 2, 3]);
        assert_ne!(a, b, "a VLAN change is a different plan");
        assert_eq!(b.iface(&i).unwrap().core.vlan, PortVlan::new(VlanId::new(10), &[], None));
        db.set_col(Port::VLAN_MODE, &p, Datum::string("dot1q-tunnel"));
        assert_eq!(plan(&db, &[0, 1, 2, 3]).iface(&i).unwrap().port_error, Some(PortError::QinQ));
    }

    #[test]
    fn unknown_types_are_errors_in_the_plan() {
        let (db, _, i) = one_port("geneve");
        let e = plan(&db, &[0, 1, 2, 3]).iface(&i).unwrap().kind.clone().unwrap_err();
        assert_eq!(e.to_string(), "interface type \"geneve\" is not supported by rvs");
        let (db, _, i) = one_port("vxlan");
        let e = plan(&db, &[0, 1, 2, 3]).iface(&i).unwrap().kind.clone().unwrap_err();
        assert_eq!(e.to_string(), "p: vxlan type requires valid 'remote_ip' argument");
    }

    #[test]
    fn vhost_user_types_as_ovs_writes_them() {
        let (db, _, i) = one_port("dpdkvhostuser");
        assert_eq!(plan(&db, &[0]).iface(&i).unwrap().kind, Ok(Kind::VhostServer));
        let (mut db, _, i) = one_port("dpdkvhostuserclient");
        let e = plan(&db, &[0]).iface(&i).unwrap().kind.clone().unwrap_err();
        assert_eq!(e.to_string(), "p: dpdkvhostuserclient needs options:vhost-server-path");
        let opts = Datum::map(vec![(rvs_ovsdb::Atom::String("vhost-server-path".into()), rvs_ovsdb::Atom::String("/run/vm1.sock".into()))]);
        db.set_col(Interface::OPTIONS, &i, opts);
        assert_eq!(plan(&db, &[0]).iface(&i).unwrap().kind, Ok(Kind::VhostClient("/run/vm1.sock".into())));
    }
}
