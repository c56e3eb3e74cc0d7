//! What the control plane asks of an open port: the companion of [`PortIo`] for
//! everything that is not the packet path.
//!
//! The daemon keeps each open interface as an `Arc<dyn Device>` ([`crate::reconcile`])
//! and hands the workers the same object as an `Arc<dyn PortIo>`. Whatever depends on
//! the kind of device — whether it still exists, how it follows a change in the number
//! of workers, what the status columns say, whether it is deleted with its interface,
//! where it lives — is answered here, by the backend, so the daemon has no match on
//! port types outside the one place that opens them (`reconcile`'s `open_port`). A
//! new backend (a bond, vhost-user) is one new file implementing [`PortIo`] and
//! [`Device`], and one arm there.
//!
//! None of this is called per frame; a method may make system calls.

use std::io;
use std::sync::Arc;

use super::PortIo;
use super::tap::NetnsId;

/// How a device's status columns are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// A netdev visible here under the interface's name: its flags, MTU, MAC and
    /// ifindex are read by that name, and `mtu_request` is applied to it.
    Netdev,
    /// A netdev that cannot be seen from here (a tap moved into a VM's namespace): its
    /// columns are left empty rather than guessed.
    Hidden,
    /// No netdev at all (a tunnel): up while configured, as in OVS.
    Virtual,
    /// No netdev, a link of its own (a vhost-user port: up while the guest's driver
    /// runs its rings).
    Link(bool),
}

/// What a change in the number of receive queues (workers) does to an open device.
pub enum Requeue {
    /// Nothing to do.
    Keep,
    /// Close it and open it again with the new number (its counters carry over).
    Reopen,
    /// The same device with other queues, to be used from now on (a tap, which is
    /// never closed: it may be in a VM's namespace); `Err` when it could not, then
    /// the device keeps its queues.
    Replace(io::Result<Arc<dyn Device>>),
}

/// An open port as the control plane sees it.
pub trait Device: PortIo {
    /// Whether the device behind the backend is still the one it was opened on
    /// (`false`: the port is closed and opened again). `name` is the interface's.
    fn healthy(&self, _name: &str) -> bool {
        true
    }

    /// Follows a change to `queues` receive queues.
    fn requeue(&self, queues: usize) -> Requeue;

    /// The interface left the configuration: a device rvs created and keeps across
    /// restarts is deleted with it (other devices are rvs's only while open, or not
    /// rvs's at all).
    fn destroy(&self) {}

    /// Whether it is a tunnel port, in the core's sense (split horizon).
    fn is_tunnel(&self) -> bool {
        false
    }

    /// How its status columns are read (`name`: the interface's).
    fn presence(&self, name: &str) -> Presence;

    /// The device's MTU now, if it has one that limits what it can be sent (`name`:
    /// the interface's). By default that of the netdev of that name here.
    fn mtu(&self, name: &str) -> Option<u32> {
        rvs_sys::netdev::mtu(name).ok()
    }

    /// Counters beyond the common ones, appended to Interface `statistics`.
    fn extra_statistics(&self, _out: &mut Vec<(&'static str, u64)>) {}

    /// Whether Interface `mac` applies (a device rvs created).
    fn takes_mac(&self) -> bool {
        false
    }

    /// Where the device is now, for one that may move between namespaces and must be
    /// found there after a restart (a tap, see [`super::taphome`]): its namespace and
    /// its name there.
    fn home(&self) -> Option<(NetnsId, String)> {
        None
    }

    /// For a device whose received frames another daemon may share during a
    /// takeover only through a `PACKET_FANOUT` group (an AF_PACKET port): that group's
    /// id, made if there is none yet. `None` for devices shared otherwise.
    fn fanout_group(&self) -> Option<io::Result<u16>> {
        None
    }

    /// Where egress QoS of this port is carried out ([`crate::qos`]).
    fn qos_home(&self) -> crate::qos::QosHome {
        crate::qos::QosHome::None
    }

    /// The device's index, for a port shaped by a qdisc on it.
    fn ifindex(&self) -> Option<u32> {
        None
    }

    /// Lets the frames rvs sends pass the device's qdisc (`true`: a QoS qdisc shapes
    /// them) or bypass it (cheaper). Only for a [`crate::qos::QosHome::Kernel`] port.
    fn pass_qdisc(&self, _pass: bool) -> io::Result<()> {
        Ok(())
    }
}
