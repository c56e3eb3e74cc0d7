//! The configuration snapshot a worker runs: bridges, their ports and the VXLAN
//! endpoints, as the control plane built them ([`crate::reconcile`]).
//!
//! Plain data, built whole by the control plane and sent to every worker
//! ([`super::WorkerHandle::reconfigure`]); a worker never changes it, only installs it
//! between batches ([`super::Worker`]'s `apply`). What a worker derives from it for the
//! packet path (the poll table, the tunnel demultiplexer, each port's
//! [`super::PortCaps`]) is made there, once per configuration.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use rvs_ovsdb::Uuid;
use rvs_switch::bridge::police::Policer;
use rvs_switch::bridge::{BridgeConfig, PortConfig};
use rvs_switch::time::Time;
use rvs_switch::types::{MacAddr, OfPort, VlanId, Vni};

use crate::port::vxlan::Endpoint;
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
    /// For a tunnel port: where its traffic arrives.
    pub tunnel: Option<TunnelKey>,
    /// Ingress policing, if configured: one bucket, shared by the workers polling the
    /// port's queues (a lock taken only on policed ports).
    pub policer: Option<Arc<Mutex<Policer>>>,
}

impl DpPort {
    /// Whether ingress policing lets a received frame of `len` bytes in.
    #[inline]
    pub(super) fn admit(&self, now: Time, len: usize) -> bool {
        self.policer.as_ref().is_none_or(|p| p.lock().unwrap_or_else(|e| e.into_inner()).admit(now, len))
    }
}

/// How received VXLAN traffic finds its tunnel port: the endpoint it arrives on (index
/// into [`DpConfig::endpoints`]), the outer source address and the VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelKey {
    pub endpoint: usize,
    pub remote: IpAddr,
    pub vni: Vni,
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
}

/// A whole datapath configuration.
#[derive(Default, Clone)]
pub struct DpConfig {
    pub bridges: Vec<DpBridge>,
    /// Shared VXLAN receive sockets.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Worker threads wanted (`n-workers`); 0 means 1.
    pub workers: usize,
}
