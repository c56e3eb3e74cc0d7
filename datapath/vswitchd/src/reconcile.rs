//! Applying a [`Plan`] (see [`crate::plan`]): opens and closes port backends so they
//! match it, assigns OpenFlow port numbers, records per-interface errors, and builds
//! the [`DpConfig`] the workers run. This is the only place that opens devices, and
//! the only one that knows which backend an interface type is (`open_port`); what
//! depends on the kind of an open device afterwards is asked of it
//! ([`crate::port::device::Device`]).
//!
//! Called after every commit (once the new database is saved), on link events (a
//! device appeared or went away), when a worker reports a broken port, and
//! periodically to retry ports in error. It is idempotent: a port whose configuration
//! did not change keeps its open backend (and its learned MAC addresses), and the
//! workers get a new configuration only when the plan, an OpenFlow port number, an
//! open backend or a static MAC entry changed (compared with `==`, see [`Applied`]).
//!
//! Its outcome goes into the database's persistent status columns: a port that cannot
//! be opened stays configured, with `error` set as OVS words it (`could not open
//! network device NAME (No such device)`) and `ofport` -1, and is retried when its
//! device appears; [`Outcome::db_changed`] tells the caller to save them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use crate::bonds::Bonds;
pub use crate::plan::{Kind, PortError, default_workers};
use crate::plan::{LinkSettings, Plan, PlannedIface};
use crate::port::PortStats;
use crate::port::afpacket::AfPacketPort;
use crate::port::device::{Device, Presence, Requeue};
use crate::port::tap::TapPort;
use crate::port::taphome::TapHomes;
use crate::port::vhost;
use crate::port::vxlan::{Endpoint, Sockets, Tunnel};
use crate::store::StaticMac;
use crate::worker::{DpBridge, DpConfig, DpPort};
use rvs_ovsdb::view::{Bridge, Interface};
use rvs_ovsdb::{Datum, Db, Uuid};
use rvs_switch::bridge::police::Policer;
use rvs_switch::bridge::shaper::ShapeQueue;
use rvs_switch::types::{MacAddr, OfPort, VlanId, check_ifname};
use rvs_sys::netdev;

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

/// Key of a shared VXLAN receive socket: (local address, UDP port, IPv6).
type EndpointKey = (Option<IpAddr>, u16, bool);

/// One open interface.
pub struct OpenIface {
    pub name: String,
    pub kind: Kind,
    /// The backend: what the control plane asks of it ([`Device`]), and, as a
    /// [`crate::port::PortIo`], what the workers receive from and send to.
    pub device: Arc<dyn Device>,
    pub stats: Arc<PortStats>,
    /// Which opening of a backend this is (counted by `OpenIfaces`): a reopened port,
    /// whose workers' handle must change, gets a new one.
    pub serial: u64,
}

/// The daemon's open ports and per-interface state, keyed by Interface UUID.
#[derive(Default)]
pub struct OpenIfaces {
    pub open: HashMap<Uuid, OpenIface>,
    /// Interfaces whose backend broke since the last reconcile (reported by the worker).
    broken: Vec<Uuid>,
    /// What the last configuration sent to the workers was made of.
    last_sent: Option<Applied>,
    /// Counts backends opened, for [`OpenIface::serial`].
    serial: u64,
    /// The last error logged per interface, so a port retried every few seconds is
    /// logged when its state changes, not every time.
    logged: HashMap<Uuid, String>,
    /// Ports and bridges already warned about configuration rvs does not carry out.
    warned: std::collections::HashSet<(Uuid, &'static str)>,
    /// Shared VXLAN receive sockets and send pools.
    vxlan: Sockets,
    /// Receive queues to open on AF_PACKET ports: one per worker.
    queues: usize,
    /// Where the taps are (they outlive the daemon and may be in VMs' namespaces).
    pub taps: TapHomes,
    /// The daemon's run directory, where `dpdkvhostuser` ports' sockets are made.
    pub rundir: Option<std::path::PathBuf>,
    /// During a takeover, the fanout groups of the daemon taken over, by interface
    /// name: its AF_PACKET ports are opened into them (see [`crate::takeover`]).
    pub join_groups: HashMap<String, u16>,
    /// How the workers wait (`pmd-cpu-mask`), as last planned.
    pub pmd: crate::plan::Pmd,
    /// The last `pmd-rxq-affinity` problem logged per interface.
    affinity_warned: HashMap<Uuid, String>,
    /// The bonds (ports with several interfaces) over the open member interfaces.
    pub bonds: Bonds,
    /// The QoS qdiscs installed on AF_PACKET ports' devices.
    pub qos: crate::qos::kernel::KernelQos,
    /// Per Port, why its QoS is not applied (Port `status:qos`).
    pub qos_notes: HashMap<Uuid, String>,
    /// rvs's own egress shapers by interface, with the settings and slots they were
    /// made for: kept (with what waits in them) while those do not change.
    shapers: HashMap<Uuid, ShaperEntry>,
    /// The mirrors' counters and what was logged about Mirror rows.
    pub mirrors: crate::mirrors::MirrorState,
}

/// An egress shaper: its settings, its queue's slots, the shared queue.
type ShaperEntry = (rvs_switch::bridge::shaper::ShaperConfig, usize, Arc<std::sync::Mutex<ShapeQueue>>);

/// A static MAC entry as the workers get it: (VLAN, MAC, port).
type StaticEntry = (VlanId, MacAddr, OfPort);

/// What a datapath configuration is made of, to tell whether the workers need a new
/// one: the plan, and per port its OpenFlow number and which backend is open; static
/// MAC entries per bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    plan: Plan,
    ports: Vec<(Uuid, OfPort, u64)>,
    statics: Vec<(Uuid, Vec<StaticEntry>)>,
}

/// What a reconcile pass produced.
pub struct Outcome {
    /// A new worker configuration, when it differs from the last one sent.
    pub config: Option<DpConfig>,
    /// Persistent columns (ofport, error) changed: the database should be saved.
    pub db_changed: bool,
}

impl OpenIfaces {
    /// Marks an interface whose backend broke; the next reconcile reopens it.
    pub fn mark_broken(&mut self, iface: Uuid) {
        self.broken.push(iface);
    }

    /// Whether `io` (see [`crate::worker::io_id`]) is the backend open for
    /// `iface` now, and not already marked broken.
    pub fn is_current(&self, iface: Uuid, io: usize) -> bool {
        !self.broken.contains(&iface) && self.open.get(&iface).is_some_and(|p| crate::worker::io_id(&p.device) == io)
    }

    /// The VXLAN receive sockets in use, by address and port.
    pub fn vxlan_endpoints(&self) -> Vec<Arc<Endpoint>> {
        self.vxlan.endpoints()
    }

    /// Closes everything (shutdown). Taps stay (persistent), their places noted.
    pub fn close_all(&mut self) {
        self.note_tap_homes();
        self.last_sent = None;
        // The kernel closes each AF_PACKET socket and tap queue after an RCU grace
        // period; one after another, a node's ports would keep the daemon — and the
        // restart that waits for it — for as many. Dropped side by side (the workers
        // have stopped, so these are the last references), the waits overlap.
        // (The VXLAN sockets go with the last tunnel that holds them.)
        let mut held: Vec<OpenIface> = self.open.drain().map(|(_, p)| p).collect();
        const THREADS: usize = 32;
        let per = held.len().div_ceil(THREADS).max(1);
        std::thread::scope(|s| {
            while !held.is_empty() {
                let chunk: Vec<OpenIface> = held.drain(..per.min(held.len())).collect();
                // Should no thread be had, the chunk is dropped here, as before.
                let _ = std::thread::Builder::new().spawn_scoped(s, move || drop(chunk));
            }
        });
    }

    /// Brings backends in line with `plan` (made from `db`), then writes the outcome,
    /// errors and ofports, into `db`.
    pub fn apply(&mut self, plan: &Plan, db: &mut Db, statics: &[StaticMac]) -> Outcome {
        let wanted = &plan.ifaces;
        let before = persistent_status(db);

        // Close what is no longer wanted, changed type, or broke. AF_PACKET and VXLAN
        // ports are reopened with one receive queue per worker when the number of
        // workers changes; their counters carry over. A tap is not closed (that would
        // delete it, and it may be in a VM's namespace by now): its queues change in
        // place.
        let broken = std::mem::take(&mut self.broken);
        self.note_pmd(&plan.pmd);
        self.warn_affinity(plan);
        self.queues = plan.workers;
        let queues = self.queues;
        let serial = &mut self.serial;
        let mut requeued: HashMap<Uuid, Arc<PortStats>> = HashMap::new();
        self.open.retain(|u, p| {
            let wanted_still = wanted.iter().any(|w| w.iface == *u && w.name == p.name);
            let keep = wanted_still && !broken.contains(u) && p.device.healthy(&p.name);
            if !keep {
                tracing::info!("closing port {}", p.name);
                if !wanted_still {
                    p.device.destroy();
                }
            } else {
                let requeue = match p.device.requeue(queues) {
                    Requeue::Keep => false,
                    Requeue::Reopen => true,
                    Requeue::Replace(Ok(d)) => {
                        tracing::info!("port {}: {} receive queue(s)", p.name, d.queues());
                        p.device = d;
                        *serial += 1;
                        p.serial = *serial;
                        false
                    }
                    Requeue::Replace(Err(e)) => {
                        tracing::warn!("port {}: cannot change its receive queues: {e}", p.name);
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
        self.open.retain(|u, p| {
            let same = plan.iface(u).and_then(|w| w.kind.as_ref().ok()) == Some(&p.kind);
            if !same {
                p.device.destroy();
            }
            same
        });
        for w in wanted {
            if let Some(e) = &w.port_error {
                self.open.remove(&w.iface);
                errors.insert(w.iface, e.clone());
                continue;
            }
            if let Some(p) = self.open.get(&w.iface) {
                // Like OVS, a failed MTU/MAC setting is logged; the port keeps working.
                if let Err(e) = apply_link_settings(&w.link, p) {
                    let e = e.to_string();
                    if self.logged.get(&w.iface) != Some(&e) {
                        tracing::warn!("{e}");
                        self.logged.insert(w.iface, e);
                    }
                }
                continue;
            }
            let opened = match &w.kind {
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
                    if let Err(e) = apply_link_settings(&w.link, &p) {
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
        self.refresh_mtus();
        // Tunnels that clash (same endpoint, remote and VNI) cannot be told apart.
        let mut seen: HashMap<(EndpointKey, IpAddr, u32), String> = HashMap::new();
        for w in wanted {
            if let Some(OpenIface { kind: Kind::Vxlan(spec), .. }) = self.open.get(&w.iface) {
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
        self.note_tap_homes();
        write_errors_and_ofports(db, wanted, &errors);
        self.bonds.sync(plan, db, &self.open);
        self.bonds.refresh_mtus(&self.open);
        let _ = self.bonds.write_status(db);
        self.warn_unsupported(db);
        self.sync_qos(plan);
        self.sync_mirrors(plan);
        let (config, applied) = self.build_config(db, plan, statics);
        let config = if self.last_sent.as_ref() == Some(&applied) {
            None
        } else {
            self.last_sent = Some(applied);
            Some(config)
        };
        Outcome { config, db_changed: persistent_status(db) != before }
    }

    /// The workers' configuration for `plan` with the backends open now and the
    /// ofports `db` has, and what it is made of.
    fn build_config(&self, db: &Db, plan: &Plan, statics: &[StaticMac]) -> (DpConfig, Applied) {
        let mut bridges: Vec<DpBridge> = Vec::new();
        let mut ports = Vec::new();
        let mut port_keys: HashMap<Uuid, u32> = HashMap::new();
        for w in &plan.ifaces {
            // A bond is one port, made when its first member comes, over its members.
            let bond = match &w.bond {
                Some(_) => match self.bonds.get(&w.port).filter(|b| b.first_iface() == w.iface) {
                    Some(b) => Some(b),
                    None => continue,
                },
                None => None,
            };
            let (io, stats, serial, ofport, name) = match bond {
                Some(b) => {
                    let Some(ofport) = b.ofport() else { continue };
                    (b.io.clone() as Arc<dyn crate::port::PortIo>, b.stats.clone(), b.serial, ofport, b.name.clone())
                }
                None => {
                    let Some(op) = self.open.get(&w.iface) else { continue };
                    let Some(ofport) = Interface::get(db, &w.iface).and_then(|i| i.ofport()) else { continue };
                    let Some(ofport) = u16::try_from(ofport).ok().and_then(OfPort::new) else { continue };
                    (op.device.clone() as Arc<dyn crate::port::PortIo>, op.stats.clone(), op.serial, ofport, w.name.clone())
                }
            };
            let bi = match bridges.iter().position(|b| b.uuid == w.bridge) {
                Some(i) => i,
                None => {
                    let Some(b) = plan.bridge(&w.bridge) else { continue };
                    let mirror_stats = b.mirrors.iter().map(|m| self.mirrors.stats(&m.uuid)).collect();
                    let (flood_vlans, mirrors) = (b.flood_vlans.clone(), Vec::new());
                    bridges.push(DpBridge {
                        uuid: b.uuid,
                        name: b.name.clone(),
                        cfg: b.cfg,
                        ports: Vec::new(),
                        statics: Vec::new(),
                        flood_vlans,
                        mirrors,
                        mirror_stats,
                    });
                    bridges.len() - 1
                }
            };
            let shaper = self.shapers.get(&w.iface).map(|s| s.2.clone());
            let mut core = w.core.clone();
            core.key = u32::from(ofport.get());
            core.tunnel = bond.is_none() && self.open.get(&w.iface).is_some_and(|op| op.device.is_tunnel());
            bridges[bi].ports.push(DpPort {
                iface: w.iface,
                name,
                ofport,
                io,
                stats,
                core,
                policer: Policer::new(w.policer).map(|p| Arc::new(std::sync::Mutex::new(p))),
                shaper,
            });
            ports.push((if bond.is_some() { w.port } else { w.iface }, ofport, serial));
            port_keys.insert(w.port, u32::from(ofport.get()));
        }
        for b in &mut bridges {
            if let Some(pb) = plan.bridge(&b.uuid) {
                b.mirrors = pb.mirrors.iter().map(|m| m.core(|p| port_keys.get(p).copied())).collect();
            }
            for st in statics.iter().filter(|st| st.bridge == b.name) {
                let port = b.ports.iter().find(|p| p.name == st.port).map(|p| p.ofport);
                let mac = st.mac.parse::<MacAddr>().ok();
                if let (Some(port), Some(mac), Some(vlan)) = (port, mac, VlanId::new(st.vlan)) {
                    b.statics.push((vlan, mac, port));
                }
            }
        }
        let statics = bridges.iter().map(|b| (b.uuid, b.statics.clone())).collect();
        let applied = Applied { plan: plan.clone(), ports, statics };
        let rxq_affinity = plan.ifaces.iter().flat_map(|w| w.rxq_affinity.iter().flatten().map(|&(q, c)| (w.iface, q, c))).collect();
        (DpConfig { bridges, workers: plan.workers, pmd_cpus: plan.pmd.cpus().to_vec(), rxq_affinity }, applied)
    }

    /// Opens the backend for one interface, or says why not (as the `error` column).
    fn open_port(&mut self, name: &str, kind: &Kind) -> Result<OpenIface, PortError> {
        if matches!(kind, Kind::Tap(_) | Kind::System)
            && let Err(why) = check_ifname(name)
        {
            return Err(PortError::BadName { name: name.into(), why });
        }
        let dev_err = |e: std::io::Error| PortError::Open { name: name.into(), os: rvs_sys::strerror(&e) };
        // The one place that knows which backend a kind of interface is.
        let device: Arc<dyn Device> = match kind {
            Kind::Tap(_) => {
                let home = self.taps.home_of(name);
                let home = home.as_ref().map(|(ns, there)| (ns.as_fd(), there.as_str()));
                Arc::new(TapPort::open(name, self.queues.max(1), home).map_err(dev_err)?)
            }
            Kind::System => {
                let join = self.join_groups.remove(name);
                Arc::new(AfPacketPort::open_with(name, self.queues.max(1), !rvs_sys::plain_io(), join).map_err(dev_err)?)
            }
            Kind::Vxlan(spec) => {
                let listen = |e: std::io::Error| PortError::VxlanListen { name: name.into(), port: spec.dst_port, os: rvs_sys::strerror(&e) };
                let ep = self.vxlan.endpoint(spec.tx.local, spec.dst_port, spec.tx.v6, self.queues.max(1)).map_err(listen)?;
                let pool = self.vxlan.pool(&spec.tx).map_err(|e| PortError::VxlanSend { name: name.into(), os: rvs_sys::strerror(&e) })?;
                let remote = std::net::SocketAddr::new(spec.remote, spec.dst_port);
                Arc::new(Tunnel::new(name, remote, spec.vni, pool).receiving_on(ep))
            }
            Kind::VhostServer | Kind::VhostClient(_) => {
                let mode = match kind {
                    Kind::VhostClient(path) => vhost::Mode::Client(path.into()),
                    _ => {
                        let at = self.rundir.as_deref().and_then(|d| vhost::conn::server_path(d, name));
                        let at = at.ok_or_else(|| PortError::BadName { name: name.into(), why: "not usable as a socket name in the run directory" })?;
                        vhost::Mode::Server(at)
                    }
                };
                let (vhost::Mode::Server(path) | vhost::Mode::Client(path)) = &mode;
                let path = path.display().to_string();
                let err = |e: std::io::Error| PortError::Vhost { name: name.into(), path: path.clone(), os: rvs_sys::strerror(&e) };
                Arc::new(vhost::VhostPort::open(name, mode.clone()).map_err(err)?)
            }
        };
        self.serial += 1;
        Ok(OpenIface { name: name.to_string(), kind: kind.clone(), device, stats: Arc::default(), serial: self.serial })
    }

    /// The fanout group of every open port that has (or can make) one, by interface
    /// name, for a daemon taking over (see [`crate::takeover`]).
    pub fn fanout_groups(&self) -> HashMap<String, u16> {
        let mut out = HashMap::new();
        for p in self.open.values() {
            match p.device.fanout_group() {
                Some(Ok(id)) => {
                    out.insert(p.name.clone(), id);
                }
                Some(Err(e)) => {
                    tracing::warn!("port {}: no fanout group to share with the new daemon ({e}): both receive its frames until this one exits", p.name)
                }
                None => {}
            }
        }
        out
    }

    /// Reads every open device's MTU again for the workers' egress check (a device's
    /// MTU may change without rvs being told: in a VM's namespace, or by hand).
    pub fn refresh_mtus(&self) {
        for p in self.open.values() {
            p.stats.mtu.store(p.device.mtu(&p.name).unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Logs (once) configuration that is stored but not carried out.
    /// Logs OVS's messages about Mirror rows and keeps counters for the mirrors
    /// applied (only those).
    fn sync_mirrors(&mut self, plan: &Plan) {
        let notes: Vec<(Uuid, String)> = plan.bridges.iter().flat_map(|b| b.mirror_notes.iter().cloned()).collect();
        self.mirrors.log(&notes);
        let applied: Vec<Uuid> = plan.bridges.iter().flat_map(|b| b.mirrors.iter().map(|m| m.uuid)).collect();
        self.mirrors.retain(&applied);
        for u in applied {
            self.mirrors.stats_for(u);
        }
    }

    fn warn_unsupported(&mut self, db: &Db) {
        for (port, name, first, other) in crate::plan::shared_ports(db) {
            if self.warned.insert((port, "shared")) {
                tracing::warn!(
                    "port {name} is listed by bridges {first} and {other}: a port belongs to one bridge; it stays on {first}, {other}'s reference is ignored"
                );
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
            if !b.row.col(Bridge::CONTROLLER).is_empty() && self.warned.insert((b.uuid, "controller")) {
                tracing::warn!("bridge {name}: controllers are stored but not applied by rvs: the bridge stays a standalone learning switch");
            }
        }
        if let Some(root) = db.root_view()
            && !root.row.col(rvs_ovsdb::view::OpenVswitch::MANAGER_OPTIONS).is_empty()
            && self.warned.insert((root.uuid, "manager"))
        {
            tracing::warn!("managers are stored but not applied by rvs: it is configured through its local socket only");
        }
    }

    /// Applies each open port's QoS where the kernel shapes it (a qdisc on an AF_PACKET
    /// port's device, see [`crate::qos::kernel`]), lets its frames pass the qdisc or
    /// bypass it, and notes (and logs, once per text) what is not applied. rvs's own
    /// shapers come with the workers' configuration ([`Self::build_config`]).
    fn sync_qos(&mut self, plan: &Plan) {
        use crate::qos::{Outcome, QosHome, kernel::Want};
        let mut notes: HashMap<Uuid, String> = HashMap::new();
        let mut shapers = HashMap::new();
        for w in &plan.ifaces {
            let Some(p) = self.open.get(&w.iface) else { continue };
            let home = p.device.qos_home();
            let outcome = w.qos.as_ref().map(|q| crate::qos::outcome(q, home));
            if let (Some(q), Some(Outcome::Shaper(c))) = (&w.qos, &outcome) {
                // A QoS rate queues like a qdisc; an egress-policer drops (no slots).
                let slots = if q.ty == "egress-policer" { 0 } else { ShapeQueue::slots_for(*c) };
                let kept = self.shapers.remove(&w.iface).filter(|s| s.0 == *c && s.1 == slots);
                if let Some(s) = kept.or_else(|| ShapeQueue::new(*c, slots).map(|sq| (*c, slots, Arc::new(std::sync::Mutex::new(sq))))) {
                    shapers.insert(w.iface, s);
                }
            }
            if let (Some(q), Some(Outcome::Unsupported)) = (&w.qos, &outcome) {
                notes.insert(w.port, crate::qos::unsupported_note(q, home));
            }
            let (QosHome::Kernel, Some(ifindex)) = (home, p.device.ifindex()) else { continue };
            let spec = w.qos.as_ref().filter(|_| outcome == Some(Outcome::Qdisc));
            let want = Want { iface: w.iface, name: &w.name, ifindex, spec };
            if outcome == Some(Outcome::Noop) {
                self.qos.leave(&w.iface);
            } else if let Err(e) = self.qos.sync(&want, || crate::qos::kernel::facts(&w.name)) {
                notes.insert(w.port, format!("not applied: {e}"));
            }
            // Bypassing again is best effort, as at open; a kernel without the option
            // (ENOPROTOOPT) never bypassed the qdisc in the first place.
            let pass = matches!(outcome, Some(Outcome::Qdisc | Outcome::Noop));
            if let Err(e) = p.device.pass_qdisc(pass)
                && pass
                && e.raw_os_error() != Some(libc::ENOPROTOOPT)
            {
                notes.insert(w.port, format!("not applied: {}: cannot make rvs's frames pass the qdisc ({})", w.name, rvs_sys::strerror(&e)));
            }
        }
        self.shapers = shapers;
        let open = &self.open;
        self.qos.retain(|u| open.contains_key(u));
        for (port, note) in &notes {
            if self.qos_notes.get(port) != Some(note) {
                let name = plan.ifaces.iter().find(|w| w.port == *port).map_or("", |w| w.name.as_str());
                tracing::warn!("port {name}: QoS {note}");
            }
        }
        self.qos_notes = notes;
    }

    /// Logs (once per value) `pmd-rxq-affinity` that cannot be followed.
    fn warn_affinity(&mut self, plan: &Plan) {
        for w in &plan.ifaces {
            let problem = match &w.rxq_affinity {
                Err(v) => Some(format!("invalid pmd-rxq-affinity format for port {}: {v} (ignored)", w.name)),
                Ok(pairs) => pairs.iter().find(|(_, c)| !plan.pmd.cpus().contains(c)).map(|(q, c)| {
                    format!("port {}: queue {q} is pinned to CPU {c}, which has no polling worker (pmd-cpu-mask): it is polled as if unpinned", w.name)
                }),
            };
            match problem {
                Some(p) if self.affinity_warned.get(&w.iface) != Some(&p) => {
                    tracing::warn!("{p}");
                    self.affinity_warned.insert(w.iface, p);
                }
                Some(_) => {}
                None => {
                    self.affinity_warned.remove(&w.iface);
                }
            }
        }
    }

    /// Logs a change of `pmd-cpu-mask`'s outcome.
    fn note_pmd(&mut self, pmd: &crate::plan::Pmd) {
        use crate::plan::{Pmd, cpu_list};
        if *pmd == self.pmd {
            return;
        }
        match pmd {
            Pmd::Cpus(c) => tracing::info!("pmd-cpu-mask: {} polling worker(s) on CPUs {}", c.len(), cpu_list(c)),
            Pmd::Refused { mask, why } => tracing::error!("pmd-cpu-mask={mask} refused: {why}; the workers sleep when idle"),
            Pmd::Off => tracing::info!("no pmd-cpu-mask: the workers sleep when idle"),
        }
        self.pmd = pmd.clone();
    }

    /// Notes where the open taps are now ([`TapHomes`]).
    fn note_tap_homes(&mut self) {
        self.taps.update(self.open.values().map(|p| (p.name.as_str(), &*p.device)));
    }
}

/// The persistent status columns (error, ofport) of every interface, to detect changes.
fn persistent_status(db: &Db) -> Vec<(Uuid, Datum, Datum)> {
    Interface::all(db).map(|i| (i.uuid, i.row.col(Interface::ERROR).clone(), i.row.col(Interface::OFPORT).clone())).collect()
}

/// Writes `error` and assigns `ofport` for every wanted interface.
fn write_errors_and_ofports(db: &mut Db, wanted: &[PlannedIface], errors: &HashMap<Uuid, PortError>) {
    let mut bridges: Vec<Uuid> = wanted.iter().map(|w| w.bridge).collect();
    bridges.dedup();
    for b in bridges {
        let bname = Bridge::get(db, &b).map(|b| b.name()).unwrap_or_default().to_string();
        let ifaces: Vec<&PlannedIface> = wanted.iter().filter(|w| w.bridge == b).collect();
        // Three passes: fixed numbers (the bridge's LOCAL port, ofport_request) first,
        // then interfaces keep the number they had, then the rest get the lowest free.
        let healthy: Vec<&&PlannedIface> = ifaces.iter().filter(|w| !errors.contains_key(&w.iface)).collect();
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
        let rest: Vec<&&&PlannedIface> = healthy.iter().filter(|w| !assigned.contains_key(&w.iface)).collect();
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

/// Applies Interface `mtu_request` (taps and system devices) and `mac` (internal and tap
/// devices rvs created) when the device is in this namespace and differs.
fn apply_link_settings(link: &LinkSettings, p: &OpenIface) -> Result<(), LinkError> {
    if p.device.presence(&p.name) != Presence::Netdev {
        return Ok(());
    }
    if let Some(mtu) = link.mtu_request
        && netdev::mtu(&p.name).ok() != Some(mtu as u32)
    {
        netdev::set_mtu(&p.name, mtu as u32).map_err(|e| LinkError::Mtu { mtu, name: p.name.clone(), os: rvs_sys::strerror(&e) })?;
        tracing::info!("{}: MTU set to {mtu}", p.name);
    }
    if let (true, Some(mac)) = (p.device.takes_mac(), link.mac.as_deref()) {
        let m: MacAddr = mac.parse().map_err(|_| LinkError::BadMac { name: p.name.clone(), mac: mac.into() })?;
        if netdev::hwaddr(&p.name).ok() != Some(m.0) {
            netdev::set_hwaddr(&p.name, m.0).map_err(|e| LinkError::Mac { mac: mac.into(), name: p.name.clone(), os: rvs_sys::strerror(&e) })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_errors() {
        let e = OpenIfaces::default().open_port("a-name-longer-than-15", &Kind::Tap("internal".into())).err().unwrap().to_string();
        assert!(e.starts_with("could not open network device a-name-longer-than-15 (Invalid argument"), "{e}");
    }
}
