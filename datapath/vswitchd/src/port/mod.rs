//! Port backends: thin I/O shells behind one pair of traits.
//!
//! A backend moves frames (with their virtio-net offload state, see
//! [`rvs_switch::packet::PacketBuf::vnet`]) between one device and a packet buffer. It does
//! not switch or queue: the worker reads a frame, asks the core, and writes the
//! copies. Every backend is non-blocking; "nothing to read" and "cannot write now" are
//! outcomes, not errors. Errors are returned only when the port itself is broken (the
//! tap was deleted, the netdev went away) so the control plane can reopen it.
//!
//! ## Inputs and ports
//!
//! What the worker polls and what the switch forwards between are not always the same
//! thing, so there are two traits, one the other's supertrait:
//!
//! * [`Input`]: receive queues with an fd each, which the worker polls and reads in
//!   batches. Every input the worker has — a tap's queue, an AF_PACKET socket, a VXLAN
//!   endpoint's UDP socket — is read through [`Input::recv_batch`], one way for all.
//! * [`PortIo`] (`: Input`): a port of the switch, which frames are sent to.
//!
//! Most ports receive on queues of their own: the port *is* its input, and every
//! frame read from it ([`Rx::Frame`]) is the port's. A VXLAN tunnel port has no queue:
//! one endpoint (a UDP socket per queue) receives for every tunnel with its local
//! address and UDP port, and tells them apart by (outer source, VNI). Such a port
//! names the shared input it receives through and the [`DemuxKey`] that is its own
//! ([`PortIo::rx_via`]); the input tags each frame it reads with the key it came with
//! ([`Rx::For`]) and the worker finds the port by (input, key), once per
//! configuration's table. So an endpoint is an input that demultiplexes, not a port:
//! it sends nothing and forwards nothing, and the ports it serves send through
//! [`PortIo`] like any other — a tunnel's egress goes through the same trait as a
//! tap's. (The alternative, tunnels as ports with a receive queue each, would need
//! one UDP socket per tunnel or a lock-protected hand-over between them.)
//!
//! An input that reads more per system call than the worker's slots hold (a VXLAN
//! endpoint: up to 8 GRO trains of 64 KiB) keeps the rest in the worker's
//! [`RxScratch`] between the calls of one service, says so ([`RxBatch::pending`]),
//! and hands it all out before the worker leaves it; no backend keeps per-worker
//! state of its own, so backends are shared between workers without a lock.
//!
//! Dispatch is dynamic (`Arc<dyn PortIo>`) per receive call and per send call, not per
//! frame where a backend batches; what a backend can do is read once per configuration
//! ([`crate::worker::PortCaps`]). The control plane asks its own questions of an open
//! port (status, health, requeueing, deletion) through [`device::Device`].
//!
//! Backends: [`tap`] (a tap rvs creates: `type=tap` and `type=internal`), [`afpacket`]
//! (an existing netdev: `type=""`/`system`), [`vxlan`] (tunnels over UDP), [`vhost`]
//! (a guest's virtio rings over vhost-user: `dpdkvhostuser`, `dpdkvhostuserclient`), [`mem`]
//! (in-memory, for tests).

pub mod afpacket;
pub mod bond;
pub mod device;
pub mod mem;
pub mod tap;
pub mod taphome;
pub mod vhost;
pub mod vxlan;

use std::io;
use std::net::IpAddr;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use rvs_switch::packet::PacketBuf;

/// The result of one receive attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rx {
    /// A frame of this port is in the buffer.
    Frame,
    /// A frame a shared input read for the port whose key is `key` (see
    /// [`PortIo::rx_via`]). `alone`: forward it at once rather than hold it for a
    /// batched send (it came alone, or it is a frame the input built that a receiver's
    /// TCP is waiting for).
    For { key: DemuxKey, alone: bool },
    /// A frame of this port (a balance-slb bond's) to forward only if its source MAC
    /// is not learned on another port ([`rvs_switch::bond::admit::slb_accept`]).
    FrameUnlessMoved,
    /// A frame arrived but was unusable (truncated, bad header); it was consumed.
    Bad,
    /// Nothing queued.
    Empty,
}

/// How a shared input tells its ports apart: the sender's address and an identifier
/// (VXLAN: the outer source address and the VNI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DemuxKey {
    pub from: IpAddr,
    pub id: u32,
}

/// Where a port's frames arrive.
pub enum RxVia {
    /// On the port's own receive queues: the port is its own [`Input`].
    Own,
    /// Through `input`, shared with other ports, tagged with `key`.
    Shared { input: Arc<dyn Input>, key: DemuxKey },
}

/// Receive queues the worker polls (see the module docs).
///
/// What it can do ([`Input::batch`], [`Input::reads_ahead`]) is fixed when it opens:
/// the worker reads it once per configuration, not per frame.
pub trait Input: Send + Sync {
    /// The fd to wait on for input on receive queue `q`; `None` past the last queue.
    fn queue_fd(&self, q: usize) -> Option<BorrowedFd<'_>>;

    /// Receive queues: each has its own fd and is polled by one worker, and the device
    /// keeps the frames of one flow on one queue. Most backends have one.
    fn queues(&self) -> usize {
        1
    }

    /// Receives at most one frame from receive queue `q` into `buf`. `Err` only when
    /// the port is broken. (The default [`Input::recv_batch`] is made of these.)
    fn recv_queue(&self, _q: usize, _buf: &mut PacketBuf) -> io::Result<Rx> {
        Ok(Rx::Empty)
    }

    /// Frames one [`Input::recv_batch`] call may return (1 without batching).
    fn batch(&self) -> usize {
        1
    }

    /// Receives up to `bufs.len()` frames from queue `q` (frame `i` into `bufs[i]`,
    /// its outcome in `out[i]`, which must be as long): how many, 0 when nothing is
    /// queued, and whether more may be waiting. `scratch` is the worker's, for inputs
    /// that read ahead of the slots (see [`RxScratch`]). `Err` only when the port is
    /// broken.
    fn recv_batch(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx], _scratch: &mut RxScratch) -> io::Result<RxBatch> {
        let one = bufs.len().min(1);
        recv_each(self, q, &mut bufs[..one], out, usize::MAX)
    }

    /// How receive queue `q` is read, where a backend has more than one way (shown by
    /// `rvs/workers`): AF_PACKET sockets say `ring` or `recvmmsg`.
    fn rx_mode(&self, _q: usize) -> Option<&'static str> {
        None
    }

    /// Whether [`Input::recv_batch`] costs a system call per frame (a tap: one `read`
    /// each), so that finding the end of a batch costs one more. Then a frame that came
    /// alone last time is forwarded before the port is read again.
    fn reads_ahead(&self) -> bool {
        false
    }

    /// What `rvs/workers` calls a shared input (a port's own queues go by the port's
    /// name).
    fn label(&self) -> String {
        String::new()
    }

    /// A frame this shared input read (in `buf`) carries a key no port has: counted
    /// by the input (VXLAN: `unknown_tunnel`).
    fn unclaimed(&self, _buf: &PacketBuf) {}
}

/// A port backend: an [`Input`] (its own, or none when it receives through a shared
/// one) that frames can be sent to.
///
/// What it can do ([`PortIo::offloads`], [`PortIo::batches_tx`]) is fixed when it
/// opens: the worker reads it once per configuration ([`crate::worker::PortCaps`]),
/// not per frame.
pub trait PortIo: Input {
    /// Where this port's frames arrive: its own queues, or a shared input.
    fn rx_via(&self) -> RxVia {
        RxVia::Own
    }

    /// Sends the frame in `buf` (with `buf.vnet`). `Ok(false)` when the device refused
    /// it for now (queue full, link down): a counted drop, not a broken port.
    fn send(&self, buf: &PacketBuf) -> io::Result<bool>;

    /// Whether the device takes frames with partial checksums and GSO (virtio-net
    /// header) — if not, the worker completes them in software first.
    fn offloads(&self) -> bool;

    /// Whether [`PortIo::send_batch`] sends several frames per system call (then the
    /// worker collects a receive batch's frames for the port and sends them together).
    fn batches_tx(&self) -> bool {
        false
    }

    /// Sends `bufs` in order, each as [`PortIo::send`] would; `sent[i]` (as long as
    /// `bufs`) says whether frame `i` left, `false` being a counted drop. `Err` when the
    /// port broke; `sent` then still tells which frames had left.
    fn send_batch(&self, bufs: &[&PacketBuf], sent: &mut [bool]) -> io::Result<()> {
        for (b, s) in bufs.iter().zip(sent.iter_mut()) {
            *s = self.send(b)?;
        }
        Ok(())
    }

    /// Sends a GSO frame that the port cannot take as it is, cutting it itself in a
    /// cheaper way than one send per segment (VXLAN: one `sendmsg` with UDP GSO).
    /// `scratch` is the worker's buffer for that. `Ok(None)`: the port has no such
    /// path; the worker segments in software and sends each segment.
    fn send_gso(&self, _buf: &PacketBuf, _scratch: &mut [u8]) -> io::Result<Option<GsoSent>> {
        Ok(None)
    }
}

/// The worker's receive scratch, lent to every [`Input::recv_batch`]: room for an
/// input that reads more per system call than the worker's slots hold, and what it
/// keeps between the calls of one service. An input that leaves anything here says
/// so ([`RxBatch::pending`]); the worker calls it again, with
/// [`RxScratch::finishing`] set once its budget for the input is spent, until
/// nothing is pending — so the scratch is empty whenever the worker moves on to
/// another input.
#[derive(Default)]
pub struct RxScratch {
    /// Set by the worker: read nothing more from the device, hand out what is held.
    pub finishing: bool,
    pub(crate) vxlan: vxlan::RxState,
}

impl RxScratch {
    /// A scratch with its buffers allocated (a worker's, so that receiving allocates
    /// nothing later).
    pub fn new() -> RxScratch {
        RxScratch { finishing: false, vxlan: vxlan::RxState::new() }
    }
}

/// What one [`Input::recv_batch`] call read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxBatch {
    /// Frames handed out (into the first `n` buffers).
    pub n: usize,
    /// Whether the input stopped before finding its queue empty (the batch was full,
    /// or a tap had read enough bytes): then the worker reads on.
    pub more: bool,
    /// Frames the kernel dropped on this queue since it last said (the queue was
    /// full: the worker fell behind), counted in the port's `rx_dropped`.
    pub dropped: u64,
    /// Frames taken from the device by this call (`rvs/workers` counts them): `n` for
    /// a port, the datagrams of the trains read for a VXLAN endpoint (before they are
    /// coalesced; 0 when the call only handed out what an earlier one read).
    pub read: usize,
    /// Frames already read are held in the [`RxScratch`]: call again before leaving
    /// the input.
    pub pending: bool,
}

impl RxBatch {
    /// `n` frames of `want` asked for: more may wait when the batch came back full.
    pub fn of(n: usize, want: usize) -> RxBatch {
        RxBatch { n, more: n >= want, read: n, ..RxBatch::default() }
    }
}

/// Reads frames from queue `q` of `port` with one [`PortIo::recv_queue`] each, into
/// `bufs` (outcomes into `out`), until the queue is empty, the buffers are full or
/// `max_bytes` have come in.
pub(crate) fn recv_each<P: Input + ?Sized>(port: &P, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx], max_bytes: usize) -> io::Result<RxBatch> {
    let (mut n, mut bytes) = (0, 0);
    while n < bufs.len().min(out.len()) {
        if bytes >= max_bytes {
            return Ok(RxBatch { more: true, ..RxBatch::of(n, usize::MAX) });
        }
        match port.recv_queue(q, &mut bufs[n])? {
            Rx::Empty => return Ok(RxBatch::of(n, usize::MAX)),
            r => {
                out[n] = r;
                if r == Rx::Frame {
                    bytes += bufs[n].len();
                }
                n += 1;
            }
        }
    }
    Ok(RxBatch { more: true, ..RxBatch::of(n, usize::MAX) })
}

/// Drives a batched send of the frames `0..sent.len()`: `many(i)` sends frames from
/// `i` on with one system call (up to [`rvs_sys::MAX_SEND_BATCH`]) and returns how
/// many left. When
/// that call failed on frame `i` itself, `failed(i, error)` judges the error as a
/// single send would (drop or broken port); when it stopped after some frames, the
/// kernel dropped the error of the next (sendmmsg(2)), so `one(i)` sends that frame
/// alone to learn it. The batch goes on after the frame. Fills `sent` as
/// [`PortIo::send_batch`] does.
pub(crate) fn send_batched(
    sent: &mut [bool],
    mut many: impl FnMut(usize) -> io::Result<usize>,
    mut one: impl FnMut(usize) -> io::Result<bool>,
    mut failed: impl FnMut(usize, io::Error) -> io::Result<bool>,
) -> io::Result<()> {
    let n = sent.len();
    let mut i = 0;
    while i < n {
        let want = (n - i).min(rvs_sys::MAX_SEND_BATCH);
        match many(i) {
            Ok(k) if k > 0 => {
                let k = k.min(want);
                sent[i..i + k].fill(true);
                i += k;
                if k < want {
                    sent[i] = one(i)?;
                    i += 1;
                }
            }
            Ok(_) => {
                sent[i] = one(i)?;
                i += 1;
            }
            Err(e) => {
                sent[i] = failed(i, e)?;
                i += 1;
            }
        }
    }
    Ok(())
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
/// (`Interface.statistics`), and the device's MTU the other way round. Relaxed
/// atomics: counters need no ordering.
#[derive(Debug, Default)]
pub struct PortStats {
    /// The device's MTU as the control plane last read it ([`device::Device::mtu`], at each
    /// reconfiguration and status read); 0 when unknown or not applicable (tunnels).
    /// The worker drops a frame too long for it (reason `oversize`) instead of handing
    /// the device a frame the receiving side would not take.
    pub mtu: AtomicU32,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rx_dropped: AtomicU64,
    pub rx_errors: AtomicU64,
    pub rx_multicast: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_dropped: AtomicU64,
    pub tx_errors: AtomicU64,
    /// Frames rvs's own egress shaper dropped (QoS on a tap rvs writes, or
    /// `egress-policer`); each is counted in `tx_dropped` too.
    pub tx_shaped: AtomicU64,
    /// A capture of the port's frames (`rvs/capture`), when one runs.
    pub capture: crate::capture::Slot,
}

impl AsRef<crate::capture::Slot> for PortStats {
    fn as_ref(&self) -> &crate::capture::Slot {
        &self.capture
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    /// Runs [`send_batched`] over `n` frames where `many` answers from `script` in turn
    /// and a frame sent alone fails when it is in `bad`; returns `sent` and the calls
    /// made ("many@i", "one@i", "failed@i").
    fn drive(n: usize, script: Vec<io::Result<usize>>, bad: &[usize]) -> (io::Result<()>, Vec<bool>, Vec<String>) {
        let calls = std::cell::RefCell::new(Vec::new());
        let mut script = script.into_iter();
        let mut sent = vec![false; n];
        let r = send_batched(
            &mut sent,
            |i| {
                calls.borrow_mut().push(format!("many@{i}"));
                script.next().unwrap_or(Ok((n - i).min(rvs_sys::MAX_SEND_BATCH)))
            },
            |i| {
                calls.borrow_mut().push(format!("one@{i}"));
                if bad.contains(&i) { Err(err(libc::ENODEV)) } else { Ok(true) }
            },
            |i, e| {
                calls.borrow_mut().push(format!("failed@{i}"));
                if e.raw_os_error() == Some(libc::EAGAIN) { Ok(false) } else { Err(e) }
            },
        );
        (r, sent, calls.into_inner())
    }

    #[test]
    fn whole_batches_take_one_call_per_32_frames() {
        let (r, sent, calls) = drive(70, vec![], &[]);
        assert!(r.is_ok());
        assert!(sent.iter().all(|&s| s));
        assert_eq!(calls, ["many@0", "many@32", "many@64"]);
    }

    #[test]
    fn a_short_count_sends_the_next_frame_alone_and_goes_on() {
        let (r, sent, calls) = drive(10, vec![Ok(3)], &[]);
        assert!(r.is_ok());
        assert!(sent.iter().all(|&s| s));
        assert_eq!(calls, ["many@0", "one@3", "many@4"]);
    }

    #[test]
    fn an_error_on_the_first_frame_is_judged_without_sending_it_again() {
        let (r, sent, calls) = drive(4, vec![Err(err(libc::EAGAIN)), Ok(3)], &[]);
        assert!(r.is_ok());
        assert_eq!(sent, [false, true, true, true], "the first is a drop");
        assert_eq!(calls, ["many@0", "failed@0", "many@1"]);
    }

    #[test]
    fn a_broken_port_stops_the_batch_with_what_left_marked() {
        let (r, sent, calls) = drive(6, vec![Ok(2)], &[2]);
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ENODEV));
        assert_eq!(sent, [true, true, false, false, false, false]);
        assert_eq!(calls, ["many@0", "one@2"]);
        let (r, sent, _) = drive(3, vec![Err(err(libc::ENXIO))], &[]);
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::ENXIO));
        assert_eq!(sent, [false; 3]);
    }

    #[test]
    fn no_frames_no_calls() {
        let (r, _, calls) = drive(0, vec![], &[]);
        assert!(r.is_ok() && calls.is_empty());
    }
}
