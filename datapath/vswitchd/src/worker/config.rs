//! The configuration snapshot a worker runs: bridges and their ports, as the control
//! plane built them ([`crate::reconcile`]). The inputs to poll follow from the ports:
//! each port's own queues, and the shared inputs (VXLAN endpoints) ports receive
//! through ([`crate::port::PortIo::rx_via`]).
//!
//! Plain data, built whole by the control plane and sent to every worker
//! ([`super::WorkerHandle::reconfigure`]); a worker never changes it, only installs it
//! between batches ([`super::Worker`]'s `apply`). What a worker derives from it for the
//! packet path (the poll table, the demultiplexer of shared inputs, each port's
//! [`super::PortCaps`]) is made there, once per configuration.

use std::sync::{Arc, Mutex};

use rvs_ovsdb::Uuid;
use rvs_switch::bridge::police::Policer;
use rvs_switch::bridge::shaper::{Offer, ShapeQueue};
use rvs_switch::bridge::{BridgeConfig, MirrorConfig, PortConfig};
use rvs_switch::packet::PacketBuf;
use rvs_switch::time::Time;
use rvs_switch::types::{MacAddr, OfPort, VlanId};

use crate::mirrors::MirrorStats;
use crate::port::{PortIo, PortStats};

/// A port as the worker sees it.
#[derive(Clone)]
pub struct DpPort {
    pub iface: Uuid,
    pub name: String,
    pub ofport: OfPort,
    pub io: Arc<dyn PortIo>,
    pub stats: Arc<PortStats>,
    /// VLAN policy etc.; `core.key` must be the ofport.
    pub core: PortConfig,
    /// Ingress policing, if configured: one bucket, shared by the workers polling the
    /// port's queues (a lock taken only on policed ports).
    pub policer: Option<Arc<Mutex<Policer>>>,
    /// Egress shaping rvs carries out itself ([`crate::qos`]: QoS on a tap rvs writes,
    /// `egress-policer`): one bucket and its queue, shared by the workers sending to
    /// the port (a lock taken only on shaped ports).
    pub shaper: Option<Arc<Mutex<ShapeQueue>>>,
}

impl DpPort {
    /// What the egress shaper makes of the frame in `buf` now: [`Offer::Send`] on a
    /// port without one (a field test, nothing else).
    #[inline]
    pub(super) fn shape(&self, now: Time, buf: &PacketBuf) -> Offer {
        match &self.shaper {
            None => Offer::Send,
            Some(s) => s.lock().unwrap_or_else(|e| e.into_inner()).offer(now, buf),
        }
    }

    /// Whether ingress policing lets a received frame of `len` bytes in.
    #[inline]
    pub(super) fn admit(&self, now: Time, len: usize) -> bool {
        self.policer.as_ref().is_none_or(|p| p.lock().unwrap_or_else(|e| e.into_inner()).admit(now, len))
    }
}

/// A bridge as the worker sees it.
#[derive(Clone)]
pub struct DpBridge {
    pub uuid: Uuid,
    pub name: String,
    pub cfg: BridgeConfig,
    pub ports: Vec<DpPort>,
    /// Static MAC entries (`fdb/add`) to (re)install: (VLAN, MAC, port).
    pub statics: Vec<(VlanId, MacAddr, OfPort)>,
    /// Bridge `flood_vlans`.
    pub flood_vlans: Vec<VlanId>,
    /// The mirrors (ports by OpenFlow number), and each one's counters (same index).
    pub mirrors: Vec<MirrorConfig>,
    pub mirror_stats: Vec<Arc<MirrorStats>>,
}

/// A whole datapath configuration.
#[derive(Default, Clone)]
pub struct DpConfig {
    pub bridges: Vec<DpBridge>,
    /// Worker threads wanted (`n-workers`); 0 means 1.
    pub workers: usize,
    /// Polling workers (`pmd-cpu-mask`): worker N is pinned to CPU `pmd_cpus[N]` and
    /// polls without sleeping. Empty: every worker sleeps when idle.
    pub pmd_cpus: Vec<usize>,
    /// Receive queues pinned to a polling worker's CPU (`pmd-rxq-affinity`):
    /// (interface, queue, CPU).
    pub rxq_affinity: Vec<(Uuid, usize, usize)>,
}
