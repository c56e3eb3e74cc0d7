//! vhost-user ports: rvs as the backend of a guest's virtio-net device, its rings in the
//! guest's memory, which the frontend (QEMU) shares over a unix socket — OVS-DPDK's
//! `dpdkvhostuser` (rvs listens on `RUNDIR/NAME`, QEMU connects) and
//! `dpdkvhostuserclient` (QEMU listens on `options:vhost-server-path`, rvs connects and
//! reconnects), without DPDK.
//!
//! Three pieces: [`virtq`] moves frames between rings and packet buffers (no I/O, the
//! only code that touches guest memory); [`backend`] answers the frontend's vhost-user
//! messages (features, memory table, rings), through the rust-vmm `vhost` crate, which
//! parses the protocol; [`conn`] is the thread that owns the socket, listening or
//! connecting again with backoff, and resets the device when the frontend goes.
//!
//! The datapath side is a port like a tap: queue pair `k`'s transmit ring (vring
//! `2k+1`) is receive queue `k` of the port, polled by one worker. The worker cannot
//! watch the kick eventfd itself, since the frontend replaces it whenever it likes, so
//! each queue pair has an epoll fd of its own ([`Shared::wakes`]) that the worker polls
//! and into which [`backend`] puts the current kick: the worker's fd never changes.
//! Frames to the guest go into the receive ring (vring `2k`) of the first pair no
//! other worker holds. Rings are under a mutex each, taken once per batch; the
//! protocol thread takes it only to change a ring.
//!
//! What the port offers the guest is fixed: mergeable receive buffers, checksum and
//! TSO4/6 (+ECN) both ways, multiqueue up to [`PAIRS`] pairs, indirect descriptors. What
//! the guest took decides [`PortIo::offloads`], read by the workers per configuration:
//! when it changes, [`Device::requeue`] hands the control plane a new handle (its
//! 2-second tick picks it up) and meanwhile frames the guest cannot take are dropped.
//! Live migration (dirty-page logging) is not offered: `LOG_SHMFD` and `VHOST_F_LOG_ALL`
//! are absent, so QEMU refuses to migrate such a guest (QEMU 7.2: "Migration disabled:
//! vhost-user backend lacks VHOST_USER_PROTOCOL_F_LOG_SHMFD feature.").

pub mod backend;
pub mod conn;
pub mod virtq;

#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use rvs_switch::packet::PacketBuf;
use rvs_switch::wire::virtio_net_hdr::VnetHdr;
use rvs_sys::epoll::Epoll;

use super::device::{Device, Presence, Requeue};
use super::{Input, PortIo, Rx, RxBatch, RxScratch};
use virtq::{Pop, Push, Ring};

/// Queue pairs a device may have (`GET_QUEUE_NUM`); QEMU's `queues=` must not exceed it.
pub const PAIRS: usize = 8;

/// Frames taken off a transmit ring per worker call.
const BATCH: usize = 32;

/// virtio feature bits (virtio 1.2, 5.1.3; vhost-user).
pub mod feat {
    pub const CSUM: u64 = 1 << 0;
    pub const GUEST_CSUM: u64 = 1 << 1;
    pub const GUEST_TSO4: u64 = 1 << 7;
    pub const GUEST_TSO6: u64 = 1 << 8;
    pub const GUEST_ECN: u64 = 1 << 9;
    pub const HOST_TSO4: u64 = 1 << 11;
    pub const HOST_TSO6: u64 = 1 << 12;
    pub const HOST_ECN: u64 = 1 << 13;
    pub const MRG_RXBUF: u64 = 1 << 15;
    pub const MQ: u64 = 1 << 22;
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    pub const PROTOCOL_FEATURES: u64 = 1 << 30;
    pub const VERSION_1: u64 = 1 << 32;
    /// Everything rvs offers. Not `VHOST_F_LOG_ALL` (bit 26): no live migration.
    pub const OFFERED: u64 = CSUM
        | GUEST_CSUM
        | GUEST_TSO4
        | GUEST_TSO6
        | GUEST_ECN
        | HOST_TSO4
        | HOST_TSO6
        | HOST_ECN
        | MRG_RXBUF
        | MQ
        | RING_INDIRECT_DESC
        | PROTOCOL_FEATURES
        | VERSION_1;
    /// What a guest must take for rvs to hand it frames with partial checksums and GSO.
    pub const GUEST_OFFLOADS: u64 = GUEST_CSUM | GUEST_TSO4 | GUEST_TSO6;
}

/// Counters of what frontends and drivers did wrong (Interface `statistics`).
#[derive(Debug, Default)]
pub struct VhostCounters {
    /// Chains that were not frames or buffers (bad addresses, wrong direction, too big).
    pub bad_descriptors: AtomicU64,
    /// Rings stopped because the driver broke them.
    pub ring_errors: AtomicU64,
    /// Connections dropped because of a message rvs refused.
    pub protocol_errors: AtomicU64,
    /// Frontends that connected.
    pub connections: AtomicU64,
    /// Frames to the guest dropped for want of posted buffers.
    pub no_buffers: AtomicU64,
}

/// The device as the protocol thread and the workers share it.
pub struct Shared {
    pub name: String,
    /// Vring `i`: `2k` receive (to the guest), `2k+1` transmit, of pair `k`.
    pub rings: Vec<Mutex<Ring>>,
    /// Per pair, the epoll fd the worker polls; it watches the transmit ring's kick.
    pub wakes: Vec<Epoll>,
    /// The virtio features the driver accepted.
    pub features: AtomicU64,
    pub counters: VhostCounters,
}

impl Shared {
    pub fn new(name: &str) -> io::Result<Shared> {
        Ok(Shared {
            name: name.to_string(),
            rings: (0..2 * PAIRS).map(|_| Mutex::new(Ring::new())).collect(),
            wakes: (0..PAIRS).map(|_| Epoll::new(1)).collect::<io::Result<_>>()?,
            features: AtomicU64::new(0),
            counters: VhostCounters::default(),
        })
    }

    /// Ring `i`, locked (a worker that panicked with it held left it as it was: the
    /// ring's state is plain data, so it is used on).
    pub fn ring(&self, i: usize) -> MutexGuard<'_, Ring> {
        self.rings[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn acked(&self) -> u64 {
        self.features.load(Relaxed)
    }

    /// The virtio-net header's length: 12 bytes with VERSION_1 or mergeable buffers.
    pub fn hdr_len(&self) -> usize {
        if self.acked() & (feat::VERSION_1 | feat::MRG_RXBUF) != 0 { 12 } else { 10 }
    }

    /// Whether the guest takes partial checksums and TSO frames.
    pub fn guest_offloads(&self) -> bool {
        self.acked() & feat::GUEST_OFFLOADS == feat::GUEST_OFFLOADS
    }

    /// Whether the guest's driver runs: its first transmit ring is live.
    pub fn link_up(&self) -> bool {
        self.ring(1).live().is_some()
    }

    /// A frame the guest did not agree to take (its offloads changed since the
    /// workers' configuration was made).
    fn refused_by_guest(&self, v: &VnetHdr) -> bool {
        let acked = self.acked();
        (v.needs_csum() && acked & feat::GUEST_CSUM == 0) || (v.is_gso() && acked & (feat::GUEST_TSO4 | feat::GUEST_TSO6) == 0)
    }

    /// Sends `bufs` into the receive ring of one pair, one lock and one interrupt for
    /// all; `sent[i]` whether frame `i` went.
    fn send_all(&self, bufs: &[&PacketBuf], sent: &mut [bool]) {
        sent.fill(false);
        let Some(mut ring) = self.free_rx_ring() else { return };
        let (hdr_len, mergeable) = (self.hdr_len(), self.acked() & feat::MRG_RXBUF != 0);
        let mut any = false;
        for (b, s) in bufs.iter().zip(sent.iter_mut()) {
            if self.refused_by_guest(&b.vnet) {
                continue;
            }
            let Some(mem) = ring.mem.clone() else { break };
            match virtq::push_frame(&mut ring.queue, &mem, hdr_len, &b.vnet, b.frame(), mergeable) {
                Push::Sent => {
                    *s = true;
                    any = true;
                }
                Push::NoRoom => {
                    self.counters.no_buffers.fetch_add(1, Relaxed);
                }
                Push::Bad => {
                    any = true;
                    self.counters.bad_descriptors.fetch_add(1, Relaxed);
                }
                Push::Broken => {
                    self.break_ring(&mut ring);
                    break;
                }
            }
        }
        if any {
            ring.notify();
        }
    }

    /// The receive ring of the first live pair no other worker holds now (or, all
    /// held, the first live one, waited for).
    fn free_rx_ring(&self) -> Option<MutexGuard<'_, Ring>> {
        let mut first = None;
        for k in 0..PAIRS {
            match self.rings[2 * k].try_lock() {
                Ok(r) if r.live().is_some() => return Some(r),
                Ok(_) => {}
                Err(std::sync::TryLockError::Poisoned(p)) if p.get_ref().live().is_some() => return Some(p.into_inner()),
                Err(_) => first = first.or(Some(k)),
            }
        }
        let r = self.ring(2 * first?);
        r.live().is_some().then_some(r)
    }

    /// Stops a ring the driver broke, until the frontend sets it up again.
    fn break_ring(&self, ring: &mut Ring) {
        ring.broken = true;
        self.counters.ring_errors.fetch_add(1, Relaxed);
        tracing::warn!("vhost-user port {}: the guest's driver broke a ring; it is stopped until the device is set up again", self.name);
    }

    /// Takes up to `bufs.len()` frames off pair `k`'s transmit ring.
    fn recv_all(&self, k: usize, bufs: &mut [PacketBuf], out: &mut [Rx]) -> RxBatch {
        let mut ring = self.ring(2 * k + 1);
        if let Some(kick) = &ring.kick {
            kick.drain();
        }
        let Some(mem) = ring.live().is_some().then(|| ring.mem.clone()).flatten() else { return RxBatch::default() };
        let hdr_len = self.hdr_len();
        let want = bufs.len().min(out.len());
        let mut n = 0;
        while n < want {
            match virtq::pop_frame(&mut ring.queue, &mem, hdr_len, &mut bufs[n]) {
                Pop::Frame => out[n] = Rx::Frame,
                Pop::Bad => {
                    self.counters.bad_descriptors.fetch_add(1, Relaxed);
                    out[n] = Rx::Bad;
                }
                Pop::Empty => break,
                Pop::Broken => {
                    self.break_ring(&mut ring);
                    break;
                }
            }
            n += 1;
        }
        if n > 0 {
            ring.notify();
        }
        RxBatch::of(n, want)
    }

    /// Everything back to the state before a frontend connected.
    pub fn reset(&self) {
        for k in 0..2 * PAIRS {
            let mut r = self.ring(k);
            if k % 2 == 1
                && let Some(kick) = &r.kick
            {
                let _ = self.wakes[k / 2].delete(kick.as_fd());
            }
            r.reset();
        }
        self.features.store(0, Relaxed);
    }
}

/// How a port reaches its frontend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `dpdkvhostuser`: rvs listens here.
    Server(PathBuf),
    /// `dpdkvhostuserclient`: rvs connects here.
    Client(PathBuf),
}

/// An open vhost-user port: the shared device, the connection thread, and the
/// offloads the workers were told.
pub struct VhostPort {
    shared: Arc<Shared>,
    conn: Arc<conn::Conn>,
    offloads: bool,
}

impl VhostPort {
    /// Opens port `name`: makes the device and starts serving its socket.
    pub fn open(name: &str, mode: Mode) -> io::Result<VhostPort> {
        let shared = Arc::new(Shared::new(name)?);
        let conn = Arc::new(conn::Conn::start(shared.clone(), mode)?);
        Ok(VhostPort { shared, conn, offloads: false })
    }

    /// The device (tests look into it).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The socket path and whether rvs is the client.
    pub fn mode(&self) -> &Mode {
        self.conn.mode()
    }
}

impl Input for VhostPort {
    fn queue_fd(&self, q: usize) -> Option<BorrowedFd<'_>> {
        self.shared.wakes.get(q).map(|e| e.as_fd())
    }

    fn queues(&self) -> usize {
        PAIRS
    }

    fn recv_queue(&self, q: usize, buf: &mut PacketBuf) -> io::Result<Rx> {
        let mut out = [Rx::Empty];
        self.shared.recv_all(q, std::slice::from_mut(buf), &mut out);
        Ok(out[0])
    }

    fn batch(&self) -> usize {
        BATCH
    }

    fn recv_batch(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx], _: &mut RxScratch) -> io::Result<RxBatch> {
        if q >= PAIRS {
            return Ok(RxBatch::default());
        }
        Ok(self.shared.recv_all(q, bufs, out))
    }
}

impl PortIo for VhostPort {
    fn send(&self, buf: &PacketBuf) -> io::Result<bool> {
        let mut sent = [false];
        self.shared.send_all(&[buf], &mut sent);
        Ok(sent[0])
    }

    fn offloads(&self) -> bool {
        self.offloads
    }

    fn batches_tx(&self) -> bool {
        true
    }

    fn send_batch(&self, bufs: &[&PacketBuf], sent: &mut [bool]) -> io::Result<()> {
        self.shared.send_all(bufs, sent);
        Ok(())
    }
}

impl Device for VhostPort {
    /// The queues are the device's (its pairs), not the workers'; a handle is
    /// replaced only when the offloads the guest took changed.
    fn requeue(&self, _queues: usize) -> Requeue {
        let now = self.shared.guest_offloads();
        if now == self.offloads {
            return Requeue::Keep;
        }
        Requeue::Replace(Ok(Arc::new(VhostPort { shared: self.shared.clone(), conn: self.conn.clone(), offloads: now })))
    }

    fn presence(&self, _name: &str) -> Presence {
        Presence::Link(self.shared.link_up())
    }

    fn mtu(&self, _name: &str) -> Option<u32> {
        None
    }

    fn extra_statistics(&self, out: &mut Vec<(&'static str, u64)>) {
        let c = &self.shared.counters;
        out.extend([
            ("vhost_bad_descriptors", c.bad_descriptors.load(Relaxed)),
            ("vhost_connections", c.connections.load(Relaxed)),
            ("vhost_no_buffers", c.no_buffers.load(Relaxed)),
            ("vhost_protocol_errors", c.protocol_errors.load(Relaxed)),
            ("vhost_ring_errors", c.ring_errors.load(Relaxed)),
        ]);
    }
}
