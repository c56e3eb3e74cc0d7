//! From configuration to datapath: opens and closes port backends so they match the
//! database, assigns OpenFlow port numbers, records per-interface errors, and builds the
//! [`DpConfig`] the workers run (and how many: `n-workers`).
//!
//! Called after every commit, on link events (a device appeared or went away), when
//! a worker reports a broken port, and periodically to retry ports in error. It is
//! idempotent: a port whose configuration did not change keeps its open backend (and
//! its learned MAC addresses).
//!
//! Interface types (Interface `type`):
//! * `internal`, `tap`: a tap rvs creates ([`crate::port::tap`]);
//! * `""`, `system`: an existing netdev via AF_PACKET ([`crate::port::afpacket`]);
//! * anything else: not supported; the interface stays in the database with an `error`.
//!
//! A port that cannot be opened stays configured, with `error` set as OVS words it
//! (`could not open network device NAME (No such device)`) and `ofport` -1, and is
//! retried when its device appears.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crate::port::afpacket::AfPacketPort;
use crate::port::tap::TapPort;
use crate::port::vxlan::{Endpoint, SendPool, Tunnel, TxSettings};
use crate::port::{PortIo, PortStats};
use crate::store::StaticMac;
use crate::tunnel::{self, VxlanSpec};
use crate::worker::{DpBridge, DpConfig, DpPort, TunnelKey};
use rvs_ovsdb::view::{Bridge, Interface, Port};
use rvs_ovsdb::{Datum, Db, Uuid};
use rvs_switch::bridge::police::{Policer, PolicerConfig};
use rvs_switch::bridge::{BridgeConfig, PortConfig, PortVlan, VlanMode, fdb};
use rvs_switch::types::{MacAddr, OfPort, VlanId, Vni, check_ifname};
use rvs_sys::netdev;

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
    #[error("interface type \"{0}\" is not supported by rvs")]
    UnsupportedType(String),
    #[error(transparent)]
    Tunnel(#[from] tunnel::TunnelError),
    #[error("vlan_mode dot1q-tunnel (802.1ad QinQ) is not supported by rvs")]
    QinQ,
    #[error("port {port} has {n} interfaces: bonds are not supported by rvs")]
    Bond { port: String, n: usize },
    #[error("{name}: tunnel port {other} already has remote_ip={remote} key={vni} dst_port={dst_port}")]
    TunnelClash { name: String, other: String, remote: IpAddr, vni: Vni, dst_port: u16 },
}

/// A failed MTU or MAC setting: logged, the port keeps working (as in OVS).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("could not set MTU {mtu} on {name} ({os})")]
    Mtu { mtu: i64, name: String, os: String },
    #[error("{name}: invalid mac {mac}")]
    BadMac { name: String, mac: String },
    #[error("could not set MAC {mac} on {name} ({os})")]
    Mac { mac: String, name: String, os: String },
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
}

/// An open backend.
pub enum Backend {
    Tap(Arc<TapPort>),
    AfPacket(Arc<AfPacketPort>),
    Vxlan(Arc<Tunnel>, Arc<Endpoint>),
}

impl Backend {
    fn io(&self) -> Arc<dyn PortIo> {
        match self {
            Backend::Tap(t) => t.clone(),
            Backend::AfPacket(a) => a.clone(),
            Backend::Vxlan(t, _) => t.clone(),
        }
    }

    /// Whether the device behind the backend is still the one it was opened on.
    fn healthy(&self, name: &str) -> bool {
        match self {
            Backend::Tap(t) => t.is_attached(),
            Backend::AfPacket(a) => netdev::ifindex(name).ok() == Some(a.ifindex()),
            Backend::Vxlan(..) => true,
        }
    }
}

/// Key of a shared VXLAN receive socket: (local address, UDP port, IPv6).
type EndpointKey = (Option<IpAddr>, u16, bool);

/// One open interface.
pub struct OpenPort {
    pub name: String,
    pub kind: Kind,
    pub backend: Backend,
    pub stats: Arc<PortStats>,
}

/// The daemon's open ports and per-interface state, keyed by Interface UUID.
#[derive(Default)]
pub struct Ports {
    pub open: HashMap<Uuid, OpenPort>,
    /// Interfaces whose backend broke since the last reconcile (reported by the worker).
    broken: Vec<Uuid>,
    /// Signature of the last configuration sent to the worker.
    last_sig: Option<String>,
    /// The last error logged per interface, so a port retried every few seconds is
    /// logged when its state changes, not every time.
    logged: HashMap<Uuid, String>,
    /// Ports and bridges already warned about configuration rvs does not carry out.
    warned: std::collections::HashSet<(Uuid, &'static str)>,
    /// Shared VXLAN receive sockets and send pools, kept while a tunnel uses them.
    endpoints: HashMap<EndpointKey, Arc<Endpoint>>,
    pools: HashMap<TxSettings, Arc<SendPool>>,
    /// Receive queues to open on AF_PACKET ports: one per worker.
    queues: usize,
}

/// One interface the configuration asks for.
struct Wanted {
    bridge: Uuid,
    port: Uuid,
    iface: Uuid,
    name: String,
    ty: String,
}

/// What a reconcile pass produced.
pub struct Outcome {
    /// A new worker configuration, when it differs from the last one sent.
    pub config: Option<DpConfig>,
    /// Persistent columns (ofport, error) changed: the database should be saved.
    pub db_changed: bool,
}

impl Ports {
    /// Marks an interface whose backend broke; the next reconcile reopens it.
    pub fn mark_broken(&mut self, iface: Uuid) {
        self.broken.push(iface);
    }

    /// Whether `io` (see [`crate::worker::io_id`]) is the backend open for
    /// `iface` now, and not already marked broken.
    pub fn is_current(&self, iface: Uuid, io: usize) -> bool {
        !self.broken.contains(&iface) && self.open.get(&iface).is_some_and(|p| crate::worker::io_id(&p.backend.io()) == io)
    }

    /// Closes everything (shutdown).
    pub fn close_all(&mut self) {
        self.open.clear();
        self.last_sig = None;
    }

    /// Brings backends, errors and ofports in line with `db`.
    pub fn reconcile(&mut self, db: &mut Db, statics: &[StaticMac]) -> Outcome {
        let wanted = wanted(db);
        let before = persistent_status(db);

        // Close what is no longer wanted, changed type, or broke. AF_PACKET and VXLAN
        // ports are reopened with one receive queue per worker when the number of
        // workers changes; their counters carry over. A tap is not closed (that would
        // delete it, and it may be in a VM's namespace by now): its queues change in
        // place.
        let broken = std::mem::take(&mut self.broken);
        self.queues = n_workers(db);
        let queues = self.queues;
        let mut requeued: HashMap<Uuid, Arc<PortStats>> = HashMap::new();
        self.open.retain(|u, p| {
            let keep = wanted.iter().any(|w| w.iface == *u && w.name == p.name) && !broken.contains(u) && p.backend.healthy(&p.name);
            if !keep {
                tracing::info!("closing port {}", p.name);
            } else {
                let requeue = match &mut p.backend {
                    Backend::AfPacket(a) => a.asked_queues() != queues,
                    Backend::Vxlan(_, ep) => ep.queues() != queues,
                    Backend::Tap(t) => {
                        if t.asked_queues() != queues {
                            match t.requeued(queues) {
                                Ok(n) => {
                                    tracing::info!("port {}: {} receive queue(s)", p.name, n.queues());
                                    *t = Arc::new(n);
                                }
                                Err(e) => tracing::warn!("port {}: cannot change its receive queues: {e}", p.name),
                            }
                        }
                        false
                    }
                };
                if requeue {
                    tracing::info!("reopening port {} with {queues} receive queue(s)", p.name);
                    requeued.insert(*u, p.stats.clone());
                    return false;
                }
            }
            keep
        });

        // Open what is missing; record errors.
        let mut errors: HashMap<Uuid, PortError> = HashMap::new();
        let unsupported_vlan = ports_with_unsupported_vlan(db);
        let kinds: HashMap<Uuid, Result<Kind, PortError>> = wanted.iter().map(|w| (w.iface, kind_for(db, w))).collect();
        self.open.retain(|u, p| kinds.get(u).and_then(|k| k.as_ref().ok()) == Some(&p.kind));
        for w in &wanted {
            if let Some(e) = port_level_error(db, &w.port, &unsupported_vlan) {
                self.open.remove(&w.iface);
                errors.insert(w.iface, e);
                continue;
            }
            if let Some(p) = self.open.get(&w.iface) {
                // Like OVS, a failed MTU/MAC setting is logged; the port keeps working.
                if let Err(e) = apply_link_settings(db, &w.iface, p) {
                    let e = e.to_string();
                    if self.logged.get(&w.iface) != Some(&e) {
                        tracing::warn!("{e}");
                        self.logged.insert(w.iface, e);
                    }
                }
                continue;
            }
            let opened = match &kinds[&w.iface] {
                Ok(k) => self.open_port(&w.name, k),
                Err(e) => Err(e.clone()),
            };
            match opened {
                Ok(mut p) => {
                    if let Some(stats) = requeued.remove(&w.iface) {
                        p.stats = stats;
                    }
                    self.logged.remove(&w.iface);
                    tracing::info!("opened port {} ({})", w.name, if w.ty.is_empty() { "system" } else { &w.ty });
                    if let Err(e) = apply_link_settings(db, &w.iface, &p) {
                        tracing::warn!("{e}");
                    }
                    self.open.insert(w.iface, p);
                }
                Err(e) => {
                    let text = e.to_string();
                    if self.logged.get(&w.iface) != Some(&text) {
                        tracing::warn!("{}: {text}", w.name);
                        self.logged.insert(w.iface, text);
                    }
                    errors.insert(w.iface, e);
                }
            }
        }

        self.logged.retain(|u, _| errors.contains_key(u) || self.open.contains_key(u));
        // Tunnels that clash (same endpoint, remote and VNI) cannot be told apart.
        let mut seen: HashMap<(EndpointKey, IpAddr, u32), String> = HashMap::new();
        for w in &wanted {
            if let Some(OpenPort { kind: Kind::Vxlan(spec), .. }) = self.open.get(&w.iface) {
                let k = ((spec.tx.local, spec.dst_port, spec.tx.v6), spec.remote, spec.vni.get());
                if let Some(other) = seen.get(&k) {
                    let clash =
                        PortError::TunnelClash { name: w.name.clone(), other: other.clone(), remote: spec.remote, vni: spec.vni, dst_port: spec.dst_port };
                    errors.insert(w.iface, clash);
                    self.open.remove(&w.iface);
                } else {
                    seen.insert(k, w.name.clone());
                }
            }
        }
        write_errors_and_ofports(db, &wanted, &errors);
        self.warn_unsupported(db);
        self.release_unused_sockets();
        let config = self.build_config(db, &wanted, statics);
        let sig = signature(&config);
        let config = if self.last_sig.as_ref() == Some(&sig) {
            None
        } else {
            self.last_sig = Some(sig);
            Some(config)
        };
        Outcome { config, db_changed: persistent_status(db) != before }
    }

    fn build_config(&self, db: &Db, wanted: &[Wanted], statics: &[StaticMac]) -> DpConfig {
        let mut bridges: Vec<DpBridge> = Vec::new();
        let mut endpoints: Vec<Arc<Endpoint>> = Vec::new();
        for w in wanted {
            let Some(op) = self.open.get(&w.iface) else { continue };
            let Some(ofport) = Interface::get(db, &w.iface).and_then(|i| i.ofport()) else { continue };
            let Some(ofport) = u16::try_from(ofport).ok().and_then(OfPort::new) else { continue };
            let bi = match bridges.iter().position(|b| b.uuid == w.bridge) {
                Some(i) => i,
                None => {
                    let name = Bridge::get(db, &w.bridge).map(|b| b.name()).unwrap_or_default().to_string();
                    bridges.push(DpBridge { uuid: w.bridge, name, cfg: bridge_config(db, &w.bridge), ports: Vec::new(), statics: Vec::new() });
                    bridges.len() - 1
                }
            };
            let mut core = port_config(db, &w.port, ofport);
            let tunnel = match &op.backend {
                Backend::Vxlan(t, ep) => {
                    core.tunnel = true;
                    let idx = match endpoints.iter().position(|e| Arc::ptr_eq(e, ep)) {
                        Some(i) => i,
                        None => {
                            endpoints.push(ep.clone());
                            endpoints.len() - 1
                        }
                    };
                    Some(TunnelKey { endpoint: idx, remote: t.remote.ip(), vni: t.vni })
                }
                _ => None,
            };
            bridges[bi].ports.push(DpPort {
                iface: w.iface,
                name: w.name.clone(),
                ofport,
                io: op.backend.io(),
                stats: op.stats.clone(),
                core,
                tunnel,
                policer: Policer::new(policer_config(db, &w.iface)).map(|p| Arc::new(std::sync::Mutex::new(p))),
            });
        }
        for b in &mut bridges {
            for st in statics.iter().filter(|st| st.bridge == b.name) {
                let port = b.ports.iter().find(|p| p.name == st.port).map(|p| p.ofport);
                let mac = st.mac.parse::<MacAddr>().ok();
                if let (Some(port), Some(mac), Some(vlan)) = (port, mac, VlanId::new(st.vlan)) {
                    b.statics.push((vlan, mac, port));
                }
            }
        }
        DpConfig { bridges, endpoints, workers: n_workers(db) }
    }

    /// Opens the backend for one interface, or says why not (as the `error` column).
    fn open_port(&mut self, name: &str, kind: &Kind) -> Result<OpenPort, PortError> {
        if !matches!(kind, Kind::Vxlan(_)) {
            if let Err(why) = check_ifname(name) {
                return Err(PortError::BadName { name: name.into(), why });
            }
        }
        let dev_err = |e: std::io::Error| PortError::Open { name: name.into(), os: strerror(&e) };
        let backend = match kind {
            Kind::Tap(_) => Backend::Tap(Arc::new(TapPort::open(name, self.queues.max(1)).map_err(dev_err)?)),
            Kind::System => Backend::AfPacket(Arc::new(AfPacketPort::open(name, self.queues.max(1)).map_err(dev_err)?)),
            Kind::Vxlan(spec) => {
                let key = (spec.tx.local, spec.dst_port, spec.tx.v6);
                let queues = self.queues.max(1);
                let ep = match self.endpoints.get(&key) {
                    Some(e) if e.queues() == queues => e.clone(),
                    _ => {
                        let e = Arc::new(Endpoint::open(spec.tx.local, spec.dst_port, spec.tx.v6, queues).map_err(|e| PortError::VxlanListen {
                            name: name.into(),
                            port: spec.dst_port,
                            os: strerror(&e),
                        })?);
                        self.endpoints.insert(key, e.clone());
                        e
                    }
                };
                let pool = match self.pools.get(&spec.tx) {
                    Some(p) => p.clone(),
                    None => {
                        let p = Arc::new(SendPool::open(&spec.tx).map_err(|e| PortError::VxlanSend { name: name.into(), os: strerror(&e) })?);
                        self.pools.insert(spec.tx.clone(), p.clone());
                        p
                    }
                };
                let remote = std::net::SocketAddr::new(spec.remote, spec.dst_port);
                Backend::Vxlan(Arc::new(Tunnel::new(name, remote, spec.vni, pool)), ep)
            }
        };
        Ok(OpenPort { name: name.to_string(), kind: kind.clone(), backend, stats: Arc::default() })
    }

    /// Logs (once) configuration that is stored but not carried out.
    fn warn_unsupported(&mut self, db: &Db) {
        for p in Port::all(db) {
            if p.qos().is_some() && self.warned.insert((p.uuid, "qos")) {
                tracing::warn!("port {}: QoS (egress shaping) is not supported by rvs and is not applied", p.name());
            }
        }
        for b in Bridge::all(db) {
            let name = b.name();
            let dt = b.datapath_type();
            if !matches!(dt, "" | "netdev" | "system") && self.warned.insert((b.uuid, "datapath_type")) {
                tracing::warn!("bridge {name}: datapath_type {dt} is not known; rvs uses its own datapath");
            }
            if b.fail_mode() == Some("secure") && self.warned.insert((b.uuid, "fail_mode")) {
                tracing::warn!("bridge {name}: fail_mode=secure and rvs has no OpenFlow controller: the bridge forwards nothing (as OVS)");
            }
        }
    }

    /// Drops shared sockets no tunnel uses any more.
    fn release_unused_sockets(&mut self) {
        let open = &self.open;
        let used_ep = |e: &Arc<Endpoint>| open.values().any(|p| matches!(&p.backend, Backend::Vxlan(_, x) if Arc::ptr_eq(x, e)));
        self.endpoints.retain(|_, e| used_ep(e));
        let used_pool = |s: &TxSettings| open.values().any(|p| matches!(&p.backend, Backend::Vxlan(t, _) if t.pool().settings == *s));
        self.pools.retain(|s, _| used_pool(s));
    }
}

/// The text of an OS error without Rust's " (os error N)" suffix, like strerror(3).
fn strerror(e: &std::io::Error) -> String {
    let msg = e.to_string();
    msg.split(" (os error").next().unwrap_or(&msg).to_string()
}

/// The interfaces the database asks for, in bridge/port/interface order.
fn wanted(db: &Db) -> Vec<Wanted> {
    let mut out = Vec::new();
    let Some(root) = db.root_view() else { return out };
    for b in root.bridges().filter_map(|b| Bridge::get(db, &b)) {
        for p in b.ports().filter_map(|p| Port::get(db, &p)) {
            for i in p.interfaces().filter_map(|i| Interface::get(db, &i)) {
                out.push(Wanted { bridge: b.uuid, port: p.uuid, iface: i.uuid, name: i.name().to_string(), ty: i.type_().to_string() });
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
    let n = p.interfaces().count();
    if n > 1 {
        return Some(PortError::Bond { port: p.name().into(), n });
    }
    None
}

/// The persistent status columns (error, ofport) of every interface, to detect changes.
fn persistent_status(db: &Db) -> Vec<(Uuid, Datum, Datum)> {
    Interface::all(db).map(|i| (i.uuid, i.row.col(Interface::ERROR).clone(), i.row.col(Interface::OFPORT).clone())).collect()
}

/// Writes `error` and assigns `ofport` for every wanted interface.
fn write_errors_and_ofports(db: &mut Db, wanted: &[Wanted], errors: &HashMap<Uuid, PortError>) {
    let mut bridges: Vec<Uuid> = wanted.iter().map(|w| w.bridge).collect();
    bridges.dedup();
    for b in bridges {
        let bname = Bridge::get(db, &b).map(|b| b.name()).unwrap_or_default().to_string();
        let ifaces: Vec<&Wanted> = wanted.iter().filter(|w| w.bridge == b).collect();
        // Three passes: fixed numbers (the bridge's LOCAL port, ofport_request) first,
        // then interfaces keep the number they had, then the rest get the lowest free.
        let healthy: Vec<&&Wanted> = ifaces.iter().filter(|w| !errors.contains_key(&w.iface)).collect();
        let mut used: Vec<u16> = Vec::new();
        let mut assigned: HashMap<Uuid, u16> = HashMap::new();
        for w in &healthy {
            let fixed = if w.name == bname && w.ty == "internal" {
                Some(OfPort::LOCAL.get())
            } else {
                Interface::get(db, &w.iface).and_then(|i| i.ofport_request()).and_then(|r| u16::try_from(r).ok())
            };
            if let Some(n) = fixed.filter(|n| !used.contains(n)) {
                used.push(n);
                assigned.insert(w.iface, n);
            }
        }
        let rest: Vec<&&&Wanted> = healthy.iter().filter(|w| !assigned.contains_key(&w.iface)).collect();
        for w in rest {
            let cur = Interface::get(db, &w.iface).and_then(|i| i.ofport());
            if let Some(n) = cur.and_then(|c| u16::try_from(c).ok()).filter(|&c| OfPort::new(c).is_some() && c != OfPort::LOCAL.get() && !used.contains(&c)) {
                used.push(n);
                assigned.insert(w.iface, n);
            }
        }
        let need: Vec<Uuid> = healthy.iter().map(|w| w.iface).filter(|u| !assigned.contains_key(u)).collect();
        for (u, n) in assigned {
            db.set_col(Interface::OFPORT, &u, Datum::integer(i64::from(n)));
        }
        let mut next = 1u16;
        for u in need {
            while used.contains(&next) {
                next += 1;
            }
            used.push(next);
            db.set_col(Interface::OFPORT, &u, Datum::integer(i64::from(next)));
        }
        for w in &ifaces {
            match errors.get(&w.iface) {
                Some(e) => {
                    db.set_col(Interface::ERROR, &w.iface, Datum::string(&e.to_string()));
                    db.set_col(Interface::OFPORT, &w.iface, Datum::integer(-1));
                }
                None => {
                    db.set_col(Interface::ERROR, &w.iface, Datum::set(vec![]));
                }
            }
        }
    }
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
    }
}

/// Port `tag`, `trunks`, `vlan_mode`, `protected` as the core needs them.
pub fn port_config(db: &Db, port: &Uuid, ofport: OfPort) -> PortConfig {
    let Some(p) = Port::get(db, port) else { return PortConfig::trunk(u32::from(ofport.get())) };
    let vid = |i: i64| u16::try_from(i).ok().and_then(VlanId::new);
    let tag = p.tag().and_then(vid);
    let trunks: Vec<VlanId> = p.trunks().filter_map(vid).collect();
    let mode = p.vlan_mode().and_then(VlanMode::parse);
    PortConfig { key: u32::from(ofport.get()), vlan: PortVlan::new(tag, &trunks, mode), protected: p.protected(), tunnel: false }
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

/// Applies Interface `mtu_request` (taps and system devices) and `mac` (internal and tap
/// devices rvs created) when the device is in this namespace and differs.
fn apply_link_settings(db: &Db, iface: &Uuid, p: &OpenPort) -> Result<(), LinkError> {
    if matches!(p.kind, Kind::Vxlan(_)) || netdev::ifindex(&p.name).is_err() {
        return Ok(());
    }
    let Some(i) = Interface::get(db, iface) else { return Ok(()) };
    if let Some(mtu) = i.mtu_request() {
        if netdev::mtu(&p.name).ok() != Some(mtu as u32) {
            netdev::set_mtu(&p.name, mtu as u32).map_err(|e| LinkError::Mtu { mtu, name: p.name.clone(), os: strerror(&e) })?;
            tracing::info!("{}: MTU set to {mtu}", p.name);
        }
    }
    if let (Kind::Tap(_), Some(mac)) = (&p.kind, i.mac()) {
        let m: MacAddr = mac.parse().map_err(|_| LinkError::BadMac { name: p.name.clone(), mac: mac.into() })?;
        if netdev::hwaddr(&p.name).ok() != Some(m.0) {
            netdev::set_hwaddr(&p.name, m.0).map_err(|e| LinkError::Mac { mac: mac.into(), name: p.name.clone(), os: strerror(&e) })?;
        }
    }
    Ok(())
}

/// `Open_vSwitch other_config:n-workers`: datapath worker threads; when unset or not
/// a positive number, [`default_workers`] for this machine's CPUs; at most
/// [`crate::worker::MAX_WORKERS`].
pub fn n_workers(db: &Db) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    n_workers_for(db, cpus)
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

/// A string that changes whenever the worker's configuration must change.
fn signature(cfg: &DpConfig) -> String {
    let mut s = format!("workers={}|", cfg.workers);
    for b in &cfg.bridges {
        s += &format!("{}|{:?}|", b.uuid, b.cfg);
        for p in &b.ports {
            s += &format!("{}:{}:{:p}:{:?}:{:?};", p.iface, p.ofport.get(), Arc::as_ptr(&p.io) as *const u8, p.core, p.policer);
        }
        s += &format!("{:?}|", b.statics);
    }
    s
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

    #[test]
    fn long_names_are_errors() {
        let e = Ports::default().open_port("a-name-longer-than-15", &Kind::Tap("internal".into())).err().unwrap().to_string();
        assert!(e.starts_with("could not open network device a-name-longer-than-15 (Invalid argument"), "{e}");
    }
}
