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
//! (the per-frame decision), [`drops`] (reasons and counters).

pub mod drops;
pub mod fdb;
pub mod forward;
pub mod police;
pub mod vlan;

pub use drops::{DropCounters, DropReason};
pub use fdb::{FdbEntry, FdbStats, Learned, MacTable, PortIdx};
pub use forward::{Actions, Egress, Verdict};
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
}

impl PortConfig {
    /// A trunk port that carries every VLAN.
    pub fn trunk(key: u32) -> PortConfig {
        PortConfig { key, vlan: PortVlan::default(), protected: false, tunnel: false }
    }

    /// An access port in `vlan`.
    pub fn access(key: u32, vlan: crate::types::VlanId) -> PortConfig {
        PortConfig { key, vlan: PortVlan::access(vlan), protected: false, tunnel: false }
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
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            mac_aging_secs: fdb::DEFAULT_AGING_SECS,
            mac_table_size: fdb::DEFAULT_CAPACITY,
            forward_bpdu: false,
            tunnel_split_horizon: true,
            fail_secure: false,
        }
    }
}

/// One bridge's switching state.
pub struct Bridge {
    cfg: BridgeConfig,
    ports: Vec<PortConfig>,
    fdb: MacTable,
    drops: DropCounters,
}

impl Bridge {
    pub fn new(cfg: BridgeConfig, ports: Vec<PortConfig>) -> Bridge {
        let mut b = Bridge {
            cfg,
            ports: Vec::new(),
            fdb: MacTable::new(cfg.mac_table_size, cfg.mac_aging_secs),
            drops: DropCounters::default(),
        };
        b.reconfigure(cfg, ports);
        b
    }

    /// Replaces the configuration. Ports are matched by `key`: addresses learned on a
    /// port that stays are kept (and renumbered if its index changed), those on a port
    /// that is gone are forgotten.
    pub fn reconfigure(&mut self, cfg: BridgeConfig, ports: Vec<PortConfig>) {
        assert!(ports.len() <= usize::from(PortIdx::MAX), "too many ports on one bridge");
        let map: Vec<Option<PortIdx>> = self
            .ports
            .iter()
            .map(|old| ports.iter().position(|p| p.key == old.key).map(|i| i as PortIdx))
            .collect();
        self.fdb.remap_ports(&map);
        self.fdb.configure(cfg.mac_table_size, cfg.mac_aging_secs);
        self.cfg = cfg;
        self.ports = ports;
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

    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Counts a drop the shell decided on (e.g. a frame it could not even read whole).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops.add(reason);
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
