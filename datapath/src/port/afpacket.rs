//! An existing netdev (a veth, a physical uplink, a tap that libvirt/QEMU created)
//! attached through an AF_PACKET socket bound to its ifindex.
//!
//! The socket is promiscuous, does not see its own transmissions, and carries a
//! virtio-net header (`PACKET_VNET_HDR`) so GSO frames and partial checksums pass
//! through unchanged. NICs and veths strip the 802.1Q tag on receive and report it as
//! auxiliary data: the tag is put back into the frame here, before the core sees it.
//!
//! With several workers the port opens one socket per worker, joined in a
//! `PACKET_FANOUT` group that spreads received frames by flow hash: each worker reads
//! its own queue, the frames of one flow stay in order on one of them. Frames are sent
//! on the first socket (the kernel serializes concurrent senders).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{PortIo, Rx, RxBatch};
use crate::packet::PacketBuf;
use crate::sys::{netdev, packet};
use crate::wire::virtio_net_hdr::{LEN_LEGACY, VnetHdr};

/// An open AF_PACKET port.
pub struct AfPacketPort {
    /// One socket per receive queue (fanout members); frames are sent on the first.
    fds: Vec<OwnedFd>,
    /// Receive queues asked for at open.
    asked: usize,
    ifindex: u32,
    vnet_hdr: bool,
}

impl AfPacketPort {
    /// Attaches to the device called `name` in this network namespace, with `queues`
    /// receive queues. If the kernel cannot make a fanout group the port has one queue
    /// (and says so in the log): it still works, polled by one worker.
    pub fn open(name: &str, queues: usize) -> io::Result<AfPacketPort> {
        let ifindex = netdev::ifindex(name)?;
        let (fd, info) = packet::open(ifindex, true)?;
        let mut port = AfPacketPort { fds: vec![fd], asked: queues, ifindex, vnet_hdr: info.vnet_hdr };
        if queues > 1 {
            if let Err(e) = port.fan_out(queues) {
                tracing::warn!("{name}: no PACKET_FANOUT ({e}): one receive queue");
                port.fds.truncate(1);
            }
        }
        Ok(port)
    }

    fn fan_out(&mut self, queues: usize) -> io::Result<()> {
        let group = packet::fanout_create(self.fds[0].as_fd())?;
        for _ in 1..queues {
            let (fd, info) = packet::open(self.ifindex, true)?;
            if info.vnet_hdr != self.vnet_hdr {
                return Err(io::Error::other("virtio-net header on one socket but not another"));
            }
            packet::fanout_join(fd.as_fd(), group)?;
            self.fds.push(fd);
        }
        Ok(())
    }

    /// Completes a received frame: length, offload state, the VLAN tag the kernel
    /// stripped put back.
    fn finish(&self, buf: &mut PacketBuf, hdr: &[u8; LEN_LEGACY], r: packet::Received, hlen: usize) -> Rx {
        if r.truncated || r.len < hlen {
            return Rx::Bad;
        }
        buf.set_len(r.len - hlen);
        if self.vnet_hdr {
            buf.vnet = match VnetHdr::parse(hdr) {
                Ok(v) => v,
                Err(_) => return Rx::Bad,
            };
        }
        if let Some((tpid, tci)) = r.vlan {
            if !buf.push_vlan(tpid, tci) {
                return Rx::Bad;
            }
        }
        Rx::Frame
    }

    /// The number of receive queues asked for at open (the port may have fewer).
    pub fn asked_queues(&self) -> usize {
        self.asked
    }

    /// The ifindex the socket is bound to (a device re-created under the same name has
    /// a new one: the port must then be reopened).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }
}

impl PortIo for AfPacketPort {
    fn queues(&self) -> usize {
        self.fds.len()
    }

    fn queue_fd(&self, q: usize) -> Option<BorrowedFd<'_>> {
        self.fds.get(q).map(|f| f.as_fd())
    }

    fn recv_queue(&self, q: usize, buf: &mut PacketBuf) -> io::Result<Rx> {
        let mut out = [Rx::Empty];
        self.recv_batch(q, std::slice::from_mut(buf), &mut out)?;
        Ok(out[0])
    }

    fn batch(&self) -> usize {
        packet::MAX_BATCH
    }

    /// One recvmmsg(2) for up to [`packet::MAX_BATCH`] frames.
    fn recv_batch(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx]) -> io::Result<RxBatch> {
        let Some(fd) = self.queue_fd(q) else { return Ok(RxBatch::default()) };
        let hlen = if self.vnet_hdr { LEN_LEGACY } else { 0 };
        let n = bufs.len().min(out.len()).min(packet::MAX_BATCH);
        let mut hdrs = [[0u8; LEN_LEGACY]; packet::MAX_BATCH];
        let mut got = [packet::Received::default(); packet::MAX_BATCH];
        let k = {
            // Two iovecs per frame: the virtio-net header (empty without one), the frame.
            let mut slices = hdrs.iter_mut().zip(bufs.iter_mut()).take(n).flat_map(|(h, b)| [IoSliceMut::new(&mut h[..hlen]), IoSliceMut::new(b.rx_area())]);
            let mut iov: [IoSliceMut<'_>; 2 * packet::MAX_BATCH] = std::array::from_fn(|_| slices.next().unwrap_or_else(|| IoSliceMut::new(&mut [])));
            match packet::recv_many(fd, &mut iov[..2 * n], 2, &mut got[..n]) {
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                // Out of memory on the socket is a per-frame problem, not a broken port.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::ENOMEM)) => {
                    out[0] = Rx::Bad;
                    return Ok(RxBatch { n: 1, more: true });
                }
                Err(e) => return Err(e),
            }
        };
        for i in 0..k {
            out[i] = self.finish(&mut bufs[i], &hdrs[i], got[i], hlen);
        }
        // recvmmsg(2) without waiting stops at the first empty read.
        Ok(RxBatch::of(k, n))
    }

    fn send(&self, buf: &PacketBuf) -> io::Result<bool> {
        let mut hdr = [0u8; LEN_LEGACY];
        let res = if self.vnet_hdr {
            buf.vnet.emit(&mut hdr);
            packet::send(self.fds[0].as_fd(), &[IoSlice::new(&hdr), IoSlice::new(buf.frame())])
        } else {
            packet::send(self.fds[0].as_fd(), &[IoSlice::new(buf.frame())])
        };
        tx_outcome(res)
    }

    fn offloads(&self) -> bool {
        self.vnet_hdr
    }

    fn batches_tx(&self) -> bool {
        true
    }

    /// One sendmmsg(2) for up to [`crate::sys::MAX_SEND_BATCH`] frames.
    fn send_batch(&self, bufs: &[&PacketBuf], sent: &mut [bool]) -> io::Result<()> {
        const MAX: usize = crate::sys::MAX_SEND_BATCH;
        let fd = self.fds[0].as_fd();
        let hlen = if self.vnet_hdr { LEN_LEGACY } else { 0 };
        let mut hdrs = [[0u8; LEN_LEGACY]; MAX];
        let many = |from: usize| {
            let chunk = &bufs[from..bufs.len().min(from + MAX)];
            for (h, b) in hdrs.iter_mut().zip(chunk) {
                b.vnet.emit(h);
            }
            // Two iovecs per frame: the virtio-net header (empty without one), the frame.
            let mut slices = hdrs.iter().zip(chunk).flat_map(|(h, b)| [IoSlice::new(&h[..hlen]), IoSlice::new(b.frame())]);
            let iov: [IoSlice<'_>; 2 * MAX] = std::array::from_fn(|_| slices.next().unwrap_or_else(|| IoSlice::new(&[])));
            packet::send_many(fd, &iov[..2 * chunk.len()], 2)
        };
        debug_assert_eq!(bufs.len(), sent.len());
        super::send_batched(sent, many, |i| self.send(bufs[i]), |_, e| tx_outcome(Err(e)))
    }
}

/// What a send's result means: `Ok(true)` sent, `Ok(false)` a drop (full queue, link
/// down, frame refused), `Err` a port that is gone.
fn tx_outcome(res: io::Result<usize>) -> io::Result<bool> {
    match res {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO) | Some(libc::ENODEV)) => Err(e),
        Err(e) if super::is_transient_tx(&e) => Ok(false),
        Err(e) => Err(e),
    }
}
