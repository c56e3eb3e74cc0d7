//! An in-memory port for tests: frames pushed into its receive queue come out of
//! `recv`; frames sent to it are recorded. Its fd is an eventfd that is readable
//! while the receive queue is not empty, so the real worker loop can drive it.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Mutex;

use super::{PortIo, Rx};
use crate::packet::PacketBuf;
use crate::sys::epoll::EventFd;
use crate::wire::virtio_net_hdr::VnetHdr;

/// A test port.
pub struct MemPort {
    rx: Mutex<VecDeque<(Vec<u8>, VnetHdr)>>,
    tx: Mutex<Vec<(Vec<u8>, VnetHdr)>>,
    bell: EventFd,
    offloads: bool,
}

impl MemPort {
    pub fn new(offloads: bool) -> io::Result<MemPort> {
        Ok(MemPort { rx: Mutex::default(), tx: Mutex::default(), bell: EventFd::new()?, offloads })
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

impl PortIo for MemPort {
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

    fn send(&self, buf: &PacketBuf) -> io::Result<bool> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).push((buf.frame().to_vec(), buf.vnet));
        Ok(true)
    }

    fn queue_fd(&self, q: usize) -> Option<BorrowedFd<'_>> {
        (q == 0).then(|| self.bell.as_fd())
    }

    fn offloads(&self) -> bool {
        self.offloads
    }
}
