//! The running configuration: each bridge's core with its ports, and for each port
//! what the worker derived from the snapshot when it was applied (`poll`'s `apply`):
//! the backend's capabilities and whether the port broke since.
//!
//! One record per port ([`PortRt`]) rather than vectors kept in step beside the ports:
//! a port's index in [`BridgeRt::ports`] is the core's port index, and [`PortRef`]
//! names a port by its place. Apart from the core's own state (the MAC table, drop
//! counters), only `failed` changes after `apply`: set once, when the port breaks.

use std::ops::Deref;

use rvs_ovsdb::Uuid;
use rvs_switch::bridge::Bridge;

use super::{DpPort, RX_BATCH};
use crate::port::PortIo;

/// A port by its place in the running configuration: its bridge's index in
/// [`super::Worker::bridges`] and its own in that bridge's [`BridgeRt::ports`] (which is also
/// the core's port index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PortRef {
    pub(super) bridge: usize,
    pub(super) port: usize,
}

/// What a port's backend can do, read once when a configuration is applied rather
/// than asked of the backend (a virtual call) per frame and egress — as smoltcp's
/// `Device::capabilities()`. A backend fixes these when it opens, so a snapshot taken
/// at `apply` stays true for the port's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortCaps {
    /// [`PortIo::offloads`]: takes partial checksums and GSO frames.
    pub offloads: bool,
    /// [`PortIo::batches_tx`]: frames for it are held to the end of a receive batch.
    pub batches_tx: bool,
    /// [`PortIo::reads_ahead`]: a frame that came alone is forwarded before reading on.
    pub reads_ahead: bool,
    /// [`PortIo::batch`], within 1..=`RX_BATCH`: frames asked of one receive call.
    pub rx_batch: usize,
}

impl PortCaps {
    /// Asks `io` once.
    pub fn of(io: &dyn PortIo) -> PortCaps {
        PortCaps { offloads: io.offloads(), batches_tx: io.batches_tx(), reads_ahead: io.reads_ahead(), rx_batch: io.batch().clamp(1, RX_BATCH) }
    }
}

/// One port at run time: the port as configured, what its backend can do, and whether
/// it broke (then it is neither polled nor sent to until the next configuration).
/// Derefs to its [`DpPort`], so `bridge.ports[i].name` reads as it did when the ports
/// were plain [`DpPort`]s.
pub struct PortRt {
    pub dp: DpPort,
    pub(super) caps: PortCaps,
    pub(super) failed: bool,
}

impl PortRt {
    pub(super) fn new(dp: DpPort) -> PortRt {
        PortRt { caps: PortCaps::of(&*dp.io), failed: false, dp }
    }

    /// What the backend can do (as read when the configuration was applied).
    pub fn caps(&self) -> PortCaps {
        self.caps
    }

    /// Whether the port broke since the configuration was applied.
    pub fn failed(&self) -> bool {
        self.failed
    }
}

impl Deref for PortRt {
    type Target = DpPort;

    #[inline]
    fn deref(&self) -> &DpPort {
        &self.dp
    }
}

/// One bridge at run time: the core and its ports (same index).
pub struct BridgeRt {
    pub uuid: Uuid,
    pub name: String,
    pub core: Bridge,
    pub ports: Vec<PortRt>,
    /// Counters of the core's mirrors, by mirror index ([`rvs_switch::bridge::Actions::mirrored`]).
    pub mirror_stats: Vec<std::sync::Arc<crate::mirrors::MirrorStats>>,
}
