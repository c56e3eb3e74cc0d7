//! Port mirroring from the database: the Mirror rows a bridge lists, read as OVS 3.1's
//! `bridge.c` (`mirror_configure`) reads them, planned (pure, like [`crate::plan`]),
//! and their `statistics` (the counters the workers add to, written into snapshots as
//! the Interface statistics are: fresh when a client reads).
//!
//! OVS's rules for a Mirror row, each logged as OVS logs it and the row kept:
//! * `output_port` not a port of the bridge: "outputs to port not on bridge", the
//!   mirror is ignored;
//! * both `output_port` and `output_vlan`: the port is used, "ignoring output vlan";
//! * neither: "does not specify output; ignoring";
//! * an output port that is also one of the mirror's sources is accepted (the port's
//!   own frames are dropped, so nothing of it is mirrored); OVS 3.1 says nothing, rvs
//!   logs why (unless `select_all` made it a source);
//! * `select_all` selects every port of the bridge as source and destination;
//!   selected ports not on the bridge are dropped silently;
//! * more than 32 mirrors on a bridge: the rest are not created (logged).
//!
//! `output_vlan` (RSPAN) relies on the bridge's `flood_vlans` (no learning there), which
//! the planned bridge carries too ([`crate::plan::PlannedBridge::flood_vlans`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use rvs_ovsdb::view::{Bridge, Mirror};
use rvs_ovsdb::{Atom, Datum, Db, Uuid};
use rvs_switch::bridge::mirror::MAX_MIRRORS;
use rvs_switch::bridge::{MirrorConfig, MirrorOut, VlanSet};
use rvs_switch::types::VlanId;

/// Where a planned mirror's copies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedOut {
    /// `output_port`: a Port of the bridge.
    Port(Uuid),
    /// `output_vlan`.
    Vlan(VlanId),
}

/// A Mirror row the bridge applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMirror {
    pub uuid: Uuid,
    pub name: String,
    /// Ports of the bridge selected as sources and destinations.
    pub srcs: Vec<Uuid>,
    pub dsts: Vec<Uuid>,
    /// `select_vlan`; empty selects every VLAN.
    pub vlans: Vec<VlanId>,
    pub out: PlannedOut,
    /// `snaplen`; 0 for none.
    pub snaplen: u16,
}

/// The mirrors of `bridge` to apply, in the order of its `mirrors` column, and what to
/// log about the rows (OVS's messages, each once per row and text: see
/// [`MirrorState::log`]).
pub fn plan(db: &Db, bridge: &Uuid) -> (Vec<PlannedMirror>, Vec<(Uuid, String)>) {
    let Some(b) = Bridge::get(db, bridge) else { return (Vec::new(), Vec::new()) };
    let ports: Vec<Uuid> = b.ports().collect();
    let (mut out, mut notes) = (Vec::new(), Vec::new());
    for m in b.mirrors().filter_map(|m| Mirror::get(db, &m)) {
        let what = |s: &str| format!("bridge {}: mirror {} {s}", b.name(), m.name());
        let output = match (m.output_port(), m.output_vlan()) {
            (Some(p), vlan) => {
                if !ports.contains(&p) {
                    notes.push((m.uuid, what("outputs to port not on bridge")));
                    continue;
                }
                if vlan.is_some() {
                    notes.push((m.uuid, what("specifies both output port and output vlan; ignoring output vlan")));
                }
                PlannedOut::Port(p)
            }
            (None, Some(v)) => match u16::try_from(v).ok().and_then(VlanId::new) {
                Some(v) => PlannedOut::Vlan(v),
                None => continue, // the schema allows 1..=4095 only
            },
            (None, None) => {
                notes.push((m.uuid, what("does not specify output; ignoring")));
                continue;
            }
        };
        if out.len() == MAX_MIRRORS {
            notes.push((m.uuid, format!("maximum of {MAX_MIRRORS} port mirrors reached, cannot create {}", m.name())));
            continue;
        }
        let on_bridge = |it: rvs_ovsdb::view::kind::Uuids<'_>| it.filter(|p| ports.contains(p)).collect::<Vec<Uuid>>();
        let (srcs, dsts) = if m.select_all() { (ports.clone(), ports.clone()) } else { (on_bridge(m.select_src_port()), on_bridge(m.select_dst_port())) };
        if let PlannedOut::Port(p) = &output
            && !m.select_all()
            && srcs.contains(p)
        {
            // OVS 3.1 says nothing; rvs says why such a source never shows up.
            let name = rvs_ovsdb::view::Port::get(db, p).map(|p| p.name().to_string()).unwrap_or_default();
            notes.push((
                m.uuid,
                what(&format!("selects its output port {name} as a source: an output port takes no part in forwarding, so nothing it receives is mirrored")),
            ));
        }
        out.push(PlannedMirror {
            uuid: m.uuid,
            name: m.name().to_string(),
            srcs,
            dsts,
            vlans: m.select_vlan().filter_map(|v| u16::try_from(v).ok().and_then(VlanId::new)).collect(),
            out: output,
            snaplen: m.snaplen().and_then(|s| u16::try_from(s).ok()).unwrap_or(0),
        });
    }
    (out, notes)
}

/// Bridge `flood_vlans`.
pub fn flood_vlans(db: &Db, bridge: &Uuid) -> Vec<VlanId> {
    Bridge::get(db, bridge).map(|b| b.flood_vlans().filter_map(|v| u16::try_from(v).ok().and_then(VlanId::new)).collect()).unwrap_or_default()
}

impl PlannedMirror {
    /// The core's configuration, ports named by the stable keys `key` gives (a port
    /// without one, not running now, is left out; an output port without one leaves
    /// the mirror selecting nothing until it runs).
    pub fn core(&self, key: impl Fn(&Uuid) -> Option<u32>) -> MirrorConfig {
        MirrorConfig {
            srcs: self.srcs.iter().filter_map(&key).collect(),
            dsts: self.dsts.iter().filter_map(&key).collect(),
            vlans: (!self.vlans.is_empty()).then(|| Box::new(VlanSet::from_ids(self.vlans.iter().copied()))),
            out: match &self.out {
                PlannedOut::Port(p) => MirrorOut::Port(key(p).unwrap_or(u32::MAX)),
                PlannedOut::Vlan(v) => MirrorOut::Vlan(*v),
            },
            snaplen: self.snaplen,
        }
    }
}

/// A mirror's counters: frames it copied and their bytes (as received), added to by
/// every worker. OVS counts a frame once per mirror that copied it, however many
/// copies (RSPAN) it made.
#[derive(Debug, Default)]
pub struct MirrorStats {
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
}

impl MirrorStats {
    #[inline]
    pub fn add(&self, bytes: usize) {
        self.tx_packets.fetch_add(1, Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Relaxed);
    }
}

/// The control plane's mirrors: counters per Mirror row applied (kept while the row
/// stays applied, as OVS keeps a mirror's counts across reconfigurations), and what was
/// logged per row.
#[derive(Default)]
pub struct MirrorState {
    stats: HashMap<Uuid, Arc<MirrorStats>>,
    logged: HashMap<Uuid, Vec<String>>,
}

impl MirrorState {
    /// Makes the counters of `mirror` when it is first applied.
    pub fn stats_for(&mut self, mirror: Uuid) {
        self.stats.entry(mirror).or_default();
    }

    /// The counters of `mirror` (new ones, counted nowhere, if it is not applied).
    pub fn stats(&self, mirror: &Uuid) -> Arc<MirrorStats> {
        self.stats.get(mirror).cloned().unwrap_or_default()
    }

    /// Forgets the counters of mirrors not in `applied` (a row deleted, or ignored
    /// now: OVS destroys such a mirror, and its counts start again if it comes back).
    pub fn retain(&mut self, applied: &[Uuid]) {
        self.stats.retain(|u, _| applied.contains(u));
    }

    /// Logs `notes` (OVS's error messages about Mirror rows) that were not logged for
    /// their row already; a row whose messages changed is logged again.
    pub fn log(&mut self, notes: &[(Uuid, String)]) {
        let mut now: HashMap<Uuid, Vec<String>> = HashMap::new();
        for (u, text) in notes {
            now.entry(*u).or_default().push(text.clone());
        }
        for (u, texts) in &now {
            if self.logged.get(u) != Some(texts) {
                for t in texts {
                    tracing::error!("{t}");
                }
            }
        }
        self.logged = now;
    }

    /// Writes Mirror `statistics` (`tx_packets`, `tx_bytes`) of the applied mirrors into
    /// `db` (a snapshot's copy: the column is ephemeral).
    pub fn write(&self, db: &mut Db) {
        for (u, s) in &self.stats {
            let d = Datum::map([
                (Atom::String("tx_bytes".into()), Atom::Integer(s.tx_bytes.load(Relaxed) as i64)),
                (Atom::String("tx_packets".into()), Atom::Integer(s.tx_packets.load(Relaxed) as i64)),
            ]);
            db.set_col(Mirror::STATISTICS, u, d);
        }
    }
}

#[cfg(test)]
mod tests;
