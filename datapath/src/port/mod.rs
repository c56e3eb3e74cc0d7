//! Port backends: thin I/O shells behind one trait.
//!
//! A backend moves frames (with their virtio-net offload state, see
//! [`crate::packet::PacketBuf::vnet`]) between one device and a packet buffer. It does
//! not switch, parse or queue: the worker reads a frame, asks the core, and writes the
//! copies. Every backend is non-blocking; "nothing to read" and "cannot write now" are
//! outcomes, not errors. Errors are returned only when the port itself is broken (the
//! tap was deleted, the netdev went away) so the control plane can reopen it.
//!
//! Backends: [`tap`] (a tap rvs creates: `type=tap` and `type=internal`), [`afpacket`]
//! (an existing netdev: `type=""`/`system`), [`vxlan`] (tunnels over UDP), [`mem`]
//! (in-memory, for tests).

pub mod afpacket;
pub mod mem;
pub mod tap;
pub mod vxlan;

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::packet::PacketBuf;

/// The result of one receive attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rx {
    /// A frame is in the buffer.
    Frame,
    /// A frame arrived but was unusable (truncated, bad header); it was consumed.
    Bad,
    /// Nothing queued.
    Empty,
}

/// A port backend.
pub trait PortIo: Send + Sync {
    /// Receives at most one frame from receive queue `q` into `buf`. `Err` only when
    /// the port is broken.
    fn recv_queue(&self, q: usize, buf: &mut PacketBuf) -> io::Result<Rx>;

    /// Sends the frame in `buf` (with `buf.vnet`). `Ok(false)` when the device refused
    /// it for now (queue full, link down): a counted drop, not a broken port.
    fn send(&self, buf: &PacketBuf) -> io::Result<bool>;

    /// The fd to wait on for input on receive queue `q`; `None` past the last queue
    /// and for ports that receive through a shared endpoint (VXLAN tunnels).
    fn queue_fd(&self, q: usize) -> Option<BorrowedFd<'_>>;

    /// Receive queues: each has its own fd and is polled by one worker, and the device
    /// keeps the frames of one flow on one queue. Most backends have one.
    fn queues(&self) -> usize {
        1
    }

    /// Frames one [`PortIo::recv_batch`] call may return (1 without batching).
    fn batch(&self) -> usize {
        1
    }

    /// Receives up to `bufs.len()` frames from queue `q` (frame `i` into `bufs[i]`,
    /// its outcome in `out[i]`, which must be as long); returns how many, 0 when
    /// nothing is queued. `Err` only when the port is broken.
    fn recv_batch(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx]) -> io::Result<usize> {
        let Some(buf) = bufs.first_mut() else { return Ok(0) };
        match self.recv_queue(q, buf)? {
            Rx::Empty => Ok(0),
            r => {
                out[0] = r;
                Ok(1)
            }
        }
    }

    /// Whether the device takes frames with partial checksums and GSO (virtio-net
    /// header) — if not, the worker completes them in software first.
    fn offloads(&self) -> bool;

    /// Sends a GSO frame that the port cannot take as it is, cutting it itself in a
    /// cheaper way than one send per segment (VXLAN: one `sendmsg` with UDP GSO).
    /// `scratch` is the worker's buffer for that. `Ok(None)`: the port has no such
    /// path; the worker segments in software and sends each segment.
    fn send_gso(&self, _buf: &PacketBuf, _scratch: &mut [u8]) -> io::Result<Option<GsoSent>> {
        Ok(None)
    }
}

/// What [`PortIo::send_gso`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GsoSent {
    /// Segments that left.
    pub sent: usize,
    /// Bytes of inner frames that left.
    pub bytes: usize,
    /// Segments dropped (queue full, too big for the path, bad GSO metadata).
    pub dropped: usize,
}

/// Per-port traffic counters, written by the worker, read by the control plane
/// (`Interface.statistics`). Relaxed atomics: counters need no ordering.
#[derive(Debug, Default)]
pub struct PortStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rx_dropped: AtomicU64,
    pub rx_errors: AtomicU64,
    pub rx_multicast: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_dropped: AtomicU64,
    pub tx_errors: AtomicU64,
}

/// A plain copy of [`PortStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub rx_errors: u64,
    pub rx_multicast: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub tx_errors: u64,
}

impl PortStats {
    #[inline]
    pub fn rx(&self, bytes: usize, multicast: bool) {
        self.rx_packets.fetch_add(1, Relaxed);
        self.rx_bytes.fetch_add(bytes as u64, Relaxed);
        if multicast {
            self.rx_multicast.fetch_add(1, Relaxed);
        }
    }

    #[inline]
    pub fn tx(&self, bytes: usize) {
        self.tx_packets.fetch_add(1, Relaxed);
        self.tx_bytes.fetch_add(bytes as u64, Relaxed);
    }

    #[inline]
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            rx_packets: self.rx_packets.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            rx_dropped: self.rx_dropped.load(Relaxed),
            rx_errors: self.rx_errors.load(Relaxed),
            rx_multicast: self.rx_multicast.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            tx_dropped: self.tx_dropped.load(Relaxed),
            tx_errors: self.tx_errors.load(Relaxed),
        }
    }
}

/// Errors that mean "this queue is full / the link is down right now": the frame is
/// dropped and counted, the port stays.
pub(crate) fn is_transient_tx(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN)
            | Some(libc::ENOBUFS)
            | Some(libc::ENETDOWN)
            | Some(libc::EMSGSIZE)
            | Some(libc::EINVAL)
            | Some(libc::EIO)
            | Some(libc::EINTR)
            | Some(libc::ENOMEM)
    )
}
