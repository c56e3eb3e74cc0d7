//! The switching core: frames and time in, decisions out. No I/O.
//!
//! A [`Bridge`] holds its ports' VLAN policies and its MAC table. For each received
//! frame the shell calls [`Bridge::process`] with the ingress port, the frame bytes (with
//! any VLAN tag the kernel stripped already put back) and the current [`Time`]; the core
//! learns the source, decides where the frame goes and fills an [`Actions`] list with one
//! [`Egress`] per output port, each saying whether the copy leaves tagged or untagged.
//! The shell then carries the actions out. Nothing here opens a socket, reads a clock,
//! spawns a thread or allocates per frame.
//!
//! Forwarding rules (Open vSwitch's NORMAL action, ofproto-dpif-xlate.c):
//! * the ingress VLAN comes from the port's policy ([`vlan::PortVlan::input`]); frames
//!   not allowed there are dropped with a counted reason;
//! * the source MAC is learned in that VLAN unless it is multicast;
//! * IEEE reserved group addresses (01:80:c2:00:00:0X) are dropped unless the bridge has
//!   `other_config:forward-bpdu=true`;
//! * a known unicast destination goes to its one port, unless that is the ingress port
//!   (dropped: the frame would be reflected) or both ports are protected;
//! * broadcast, multicast and unknown unicast flood to every other port that carries the
//!   VLAN (protected ports skip other protected ports; frames from a tunnel skip other
//!   tunnels when split horizon is on).
//!
//! Split by concern: [`vlan`] (per-port policy), [`fdb`] (MAC table), [`forward`]
//! (the per-frame decision), [`trace`] (the same decision observed, changing nothing),
//! [`flap`] (addresses that keep moving), [`mirror`] (port mirroring: the copies
//! and the ports that only receive them), [`police`] (ingress token buckets),
//! [`shaper`] (egress rate limits rvs applies itself), [`drops`] (reasons and counters).

pub mod drops;
pub mod fdb;
pub mod flap;
pub mod forward;
pub mod mirror;
pub mod police;
pub mod shaper;
pub mod trace;
pub mod vlan;

pub use drops::{DropCounters, DropReason};
pub use fdb::{FdbEntry, FdbStats, Learned, MacTable, PortIdx, WouldLearn};
pub use flap::{Flap, FlapWatch};
pub use forward::{Actions, Egress, Verdict};
pub use mirror::{MirrorConfig, MirrorOut};
pub use trace::{NoObserver, Observer, Skip, Trace, TraceRecord};
pub use vlan::{PortVlan, VlanMode, VlanSet};

use crate::time::Time;

/// What the core needs to know about a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// Stable identity across reconfigurations (rvs uses the OpenFlow port number), so
    /// learned addresses survive when other ports come and go.
    pub key: u32,
    pub vlan: PortVlan,
    /// Port `protected`: no forwarding between two protected ports.
    pub protected: bool,
    /// A tunnel port (VXLAN): subject to split horizon.
    pub tunnel: bool,
    /// A bond: gratuitous ARPs received on it do not move an address whose entry a
    /// gratuitous ARP from a port that is not a bond locked ([`GRAT_ARP_LOCK_MS`]).
    pub bond: bool,
}

impl PortConfig {
    /// A trunk port that carries every VLAN.
    pub fn trunk(key: u32) -> PortConfig {
        PortConfig { key, vlan: PortVlan::default(), protected: false, tunnel: false, bond: false }
    }

    /// An access port in `vlan`.
    pub fn access(key: u32, vlan: crate::types::VlanId) -> PortConfig {
        PortConfig { key, vlan: PortVlan::access(vlan), protected: false, tunnel: false, bond: false }
    }
}

/// Bridge-wide settings (Bridge `other_config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeConfig {
    /// `mac-aging-time`, already normalized to 15..=3600 s.
    pub mac_aging_secs: u32,
    /// `mac-table-size`.
    pub mac_table_size: usize,
    /// `forward-bpdu`: forward IEEE reserved group addresses.
    pub forward_bpdu: bool,
    /// Never flood or forward from one tunnel port to another (rvs's default, see the
    /// VXLAN documentation); `false` restores OVS's behaviour.
    pub tunnel_split_horizon: bool,
    /// `fail_mode=secure` with no OpenFlow controller: OVS installs no NORMAL flow, so
    /// the bridge forwards nothing. rvs does the same (and counts the drops).
    pub fail_secure: bool,
    /// MAC flap detection: this many moves of one address within
    /// `mac_flap_window_secs` are a flap (0: off). rvs's `other_config:rvs-mac-flap-moves`
    /// and `rvs-mac-flap-window`.
    pub mac_flap_moves: u32,
    pub mac_flap_window_secs: u32,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            mac_aging_secs: fdb::DEFAULT_AGING_SECS,
            mac_table_size: fdb::DEFAULT_CAPACITY,
            forward_bpdu: false,
            tunnel_split_horizon: true,
            fail_secure: false,
            mac_flap_moves: flap::DEFAULT_MOVES,
            mac_flap_window_secs: flap::DEFAULT_WINDOW_SECS,
        }
    }
}

/// A change [`Bridge::process`] made to the MAC table (a new address, a move, or a
/// refresh of its age), noted for other replicas of the table when journaling is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnNote {
    pub vlan: crate::types::VlanId,
    pub mac: crate::types::MacAddr,
    pub port: PortIdx,
    pub seen: Time,
    /// A gratuitous ARP from a port that is not a bond locked the entry from `seen`.
    pub grat_lock: bool,
}

/// How long a gratuitous ARP received on a port that is not a bond keeps its
/// address from being moved by gratuitous ARPs received on a bond (OVS's
/// MAC_GRAT_ARP_LOCK_TIME): the same ARP flooded upstream and reflected back over
/// another member must not move the address onto the bond.
pub const GRAT_ARP_LOCK_MS: u64 = 5000;

/// Notes kept between two drains; more are not recorded (the replicas then learn
/// from later frames: at worst they flood a little longer).
const JOURNAL_MAX: usize = 1024;

/// One bridge's switching state.
pub struct Bridge {
    cfg: BridgeConfig,
    ports: Vec<PortConfig>,
    fdb: MacTable,
    flaps: FlapWatch,
    drops: DropCounters,
    journaling: bool,
    journal: Vec<LearnNote>,
    mirrors: mirror::Mirrors,
    /// Bridge `flood_vlans`: VLANs where nothing is learned and every frame floods
    /// (OVS; needed by RSPAN mirrors). `None` when there are none.
    flood_vlans: Option<Box<VlanSet>>,
}

impl Bridge {
    pub fn new(cfg: BridgeConfig, ports: Vec<PortConfig>) -> Bridge {
        let mut b = Bridge {
            cfg,
            ports: Vec::new(),
            fdb: MacTable::new(cfg.mac_table_size, cfg.mac_aging_secs),
            flaps: FlapWatch::new(cfg.mac_flap_moves, cfg.mac_flap_window_secs),
            drops: DropCounters::default(),
            journaling: false,
            journal: Vec::new(),
            mirrors: mirror::Mirrors::default(),
            flood_vlans: None,
        };
        b.reconfigure(cfg, ports);
        b
    }

    /// Replaces the configuration. Ports are matched by `key`: addresses learned on a
    /// port that stays are kept (and renumbered if its index changed), those on a port
    /// that is gone are forgotten.
    pub fn reconfigure(&mut self, cfg: BridgeConfig, ports: Vec<PortConfig>) {
        assert!(ports.len() <= usize::from(PortIdx::MAX), "too many ports on one bridge");
        let map: Vec<Option<PortIdx>> = self.ports.iter().map(|old| ports.iter().position(|p| p.key == old.key).map(|i| i as PortIdx)).collect();
        self.fdb.remap_ports(&map);
        self.fdb.configure(cfg.mac_table_size, cfg.mac_aging_secs);
        self.flaps.configure(cfg.mac_flap_moves, cfg.mac_flap_window_secs);
        self.cfg = cfg;
        self.ports = ports;
        if !self.mirrors.configs().is_empty() {
            self.mirrors = mirror::Mirrors::compile(self.mirrors.configs().to_vec(), &self.ports);
        }
    }

    /// Sets Bridge `flood_vlans`: no learning and no lookup in those VLANs, every frame
    /// floods. The MAC table is kept (entries in those VLANs age out unused).
    pub fn set_flood_vlans(&mut self, vlans: impl IntoIterator<Item = crate::types::VlanId>) {
        let set = VlanSet::from_ids(vlans);
        self.flood_vlans = (set != VlanSet::default()).then(|| Box::new(set));
    }

    #[inline]
    pub(super) fn is_flood_vlan(&self, vlan: crate::types::VlanId) -> bool {
        self.flood_vlans.as_ref().is_some_and(|s| s.contains(vlan))
    }

    pub fn config(&self) -> &BridgeConfig {
        &self.cfg
    }

    pub fn ports(&self) -> &[PortConfig] {
        &self.ports
    }

    /// Index of the port with stable key `key`.
    pub fn port_index(&self, key: u32) -> Option<PortIdx> {
        self.ports.iter().position(|p| p.key == key).map(|i| i as PortIdx)
    }

    pub fn fdb(&self) -> &MacTable {
        &self.fdb
    }

    pub fn fdb_mut(&mut self) -> &mut MacTable {
        &mut self.fdb
    }

    /// MAC flap detection: recent flaps, their count, those to log.
    pub fn flaps(&self) -> &FlapWatch {
        &self.flaps
    }

    pub fn flaps_mut(&mut self) -> &mut FlapWatch {
        &mut self.flaps
    }

    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Counts a drop the shell decided on (e.g. a frame it could not even read whole).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops.add(reason);
    }

    /// Turns the learning journal on or off. With several workers each holds a
    /// replica of the bridge; what one learns reaches the others through the journal.
    pub fn set_journaling(&mut self, on: bool) {
        self.journaling = on;
        self.journal.clear();
        if on {
            self.journal.reserve(JOURNAL_MAX);
        }
    }

    /// Takes the notes recorded since the last call (empty unless journaling).
    pub fn drain_journal(&mut self) -> std::vec::Drain<'_, LearnNote> {
        self.journal.drain(..)
    }

    /// Applies a note from another replica, if its port still exists here (looked up by
    /// stable key, as port indices may differ while configurations change).
    pub fn apply_note(&mut self, port_key: u32, note: LearnNote) -> bool {
        let Some(p) = self.port_index(port_key) else { return false };
        let changed = self.fdb.apply_remote(note.vlan, note.mac, p, note.seen);
        if note.grat_lock {
            self.fdb.lock_grat_arp(note.vlan, note.mac, note.seen + GRAT_ARP_LOCK_MS);
        }
        changed
    }

    #[inline]
    fn note(&mut self, learned: Learned, vlan: crate::types::VlanId, mac: crate::types::MacAddr, port: PortIdx, now: Time, grat_lock: bool) {
        let news = grat_lock || matches!(learned, Learned::New | Learned::Moved(_) | Learned::Refreshed);
        if self.journaling && news && self.journal.len() < JOURNAL_MAX {
            self.journal.push(LearnNote { vlan, mac, port, seen: now, grat_lock });
        }
    }

    /// Expires old MAC entries.
    pub fn age(&mut self, now: Time) -> usize {
        self.fdb.age(now)
    }

    /// When the shell must call [`Bridge::age`] next, if ever.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.fdb.next_expiry()
    }
}

#[cfg(test)]
mod tests;
