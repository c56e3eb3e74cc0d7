//! An in-memory port for tests: frames pushed into its receive queue come out of
//! `recv`; frames sent to it are recorded. Its fd is an eventfd that is readable
//! while the receive queue is not empty, so the real worker loop can drive it.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Mutex;

use super::{Input, PortIo, Rx, RxBatch, RxScratch};
use rvs_switch::packet::PacketBuf;
use rvs_switch::wire::virtio_net_hdr::VnetHdr;
use rvs_sys::epoll::EventFd;

/// A test port.
pub struct MemPort {
    rx: Mutex<VecDeque<(Vec<u8>, VnetHdr)>>,
    tx: Mutex<Vec<(Vec<u8>, VnetHdr)>>,
    /// Sizes of the send calls made (1 for [`PortIo::send`]).
    tx_calls: Mutex<Vec<usize>>,
    bell: EventFd,
    offloads: bool,
    /// Frames per receive and per send call (0: one at a time, no batching).
    batch: usize,
    /// What [`Input::reads_ahead`] says.
    reads_ahead: bool,
    /// Frames sent are only counted (in `sunk`), not recorded: sending allocates
    /// nothing.
    sink: bool,
    sunk: std::sync::atomic::AtomicUsize,
}

impl MemPort {
    pub fn new(offloads: bool) -> io::Result<MemPort> {
        Ok(MemPort {
            rx: Mutex::default(),
            tx: Mutex::default(),
            tx_calls: Mutex::default(),
            bell: EventFd::new()?,
            offloads,
            batch: 0,
            reads_ahead: false,
            sink: false,
            sunk: Default::default(),
        })
    }

    /// A port that only counts the frames sent to it ([`MemPort::sunk`]); `batch` as
    /// for [`MemPort::batching`] (0: no batching).
    pub fn sink(offloads: bool, batch: usize) -> io::Result<MemPort> {
        Ok(MemPort { sink: true, batch, ..MemPort::new(offloads)? })
    }

    /// Frames sent to a [`MemPort::sink`] so far.
    pub fn sunk(&self) -> usize {
        self.sunk.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A port that receives up to `n` frames per call and sends in batches.
    pub fn batching(offloads: bool, n: usize) -> io::Result<MemPort> {
        Ok(MemPort { batch: n, ..MemPort::new(offloads)? })
    }

    /// A batching port whose receive batches cost a call per frame, as a tap's.
    pub fn reading_ahead(offloads: bool, n: usize) -> io::Result<MemPort> {
        Ok(MemPort { reads_ahead: true, ..MemPort::batching(offloads, n)? })
    }

    /// Queues several frames to be received, all before the worker is woken.
    pub fn inject_all(&self, frames: &[Vec<u8>]) {
        let mut q = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        q.extend(frames.iter().map(|f| (f.clone(), VnetHdr::default())));
        drop(q);
        self.bell.notify();
    }

    /// Takes the sizes of the send calls made so far.
    pub fn take_tx_calls(&self) -> Vec<usize> {
        std::mem::take(&mut *self.tx_calls.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Queues a frame to be received.
    pub fn inject(&self, frame: &[u8], vnet: VnetHdr) {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).push_back((frame.to_vec(), vnet));
        self.bell.notify();
    }

    /// Takes everything sent so far.
    pub fn take_sent(&self) -> Vec<(Vec<u8>, VnetHdr)> {
        std::mem::take(&mut *self.tx.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Input for MemPort {
    fn recv_queue(&self, _q: usize, buf: &mut PacketBuf) -> io::Result<Rx> {
        let mut q = self.rx.lock().unwrap_or_else(|e| e.into_inner());
        let Some((frame, vnet)) = q.pop_front() else {
            self.bell.drain();
            return Ok(Rx::Empty);
        };
        if q.is_empty() {
            self.bell.drain();
        }
        let area = buf.rx_area();
        if frame.len() > area.len() {
            return Ok(Rx::Bad);
        }
        area[..frame.len()].copy_from_slice(&frame);
        buf.set_len(frame.len());
        buf.vnet = vnet;
        Ok(Rx::Frame)
    }

    fn batch(&self) -> usize {
        self.batch.max(1)
    }

    fn recv_batch(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx], _: &mut RxScratch) -> io::Result<RxBatch> {
        let want = bufs.len().min(self.batch.max(1));
        super::recv_each(self, q, &mut bufs[..want], out, usize::MAX)
    }

    fn reads_ahead(&self) -> bool {
        self.reads_ahead
    }

    fn queue_fd(&self, q: usize) -> Option<BorrowedFd<'_>> {
        (q == 0).then(|| self.bell.as_fd())
    }
}

impl PortIo for MemPort {
    fn send(&self, buf: &PacketBuf) -> io::Result<bool> {
        if self.sink {
            self.sunk.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(true);
        }
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        tx.push((buf.frame().to_vec(), buf.vnet));
        // Under the same lock, so a test that saw the frame sees the call.
        self.tx_calls.lock().unwrap_or_else(|e| e.into_inner()).push(1);
        Ok(true)
    }

    fn batches_tx(&self) -> bool {
        self.batch > 0
    }

    fn send_batch(&self, bufs: &[&PacketBuf], sent: &mut [bool]) -> io::Result<()> {
        if self.sink {
            self.sunk.fetch_add(bufs.len(), std::sync::atomic::Ordering::Relaxed);
            sent.fill(true);
            return Ok(());
        }
        let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        tx.extend(bufs.iter().map(|b| (b.frame().to_vec(), b.vnet)));
        sent.fill(true);
        self.tx_calls.lock().unwrap_or_else(|e| e.into_inner()).push(bufs.len());
        Ok(())
    }

    fn offloads(&self) -> bool {
        self.offloads
    }
}

/// So a test can hand a memory port to what takes open devices (a bond's members).
impl super::device::Device for MemPort {
    fn requeue(&self, _queues: usize) -> super::device::Requeue {
        super::device::Requeue::Keep
    }

    fn presence(&self, _name: &str) -> super::device::Presence {
        super::device::Presence::Virtual
    }

    fn mtu(&self, _name: &str) -> Option<u32> {
        None
    }
}
