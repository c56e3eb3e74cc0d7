//! An existing netdev (a veth, a physical uplink, a tap that libvirt/QEMU created)
//! attached through an AF_PACKET socket bound to its ifindex.
//!
//! The socket is promiscuous, does not see its own transmissions, and carries a
//! virtio-net header (`PACKET_VNET_HDR`) so GSO frames and partial checksums pass
//! through unchanged. NICs and veths strip the 802.1Q tag on receive and report it as
//! auxiliary data (or in the ring slot's header): the tag is put back into the frame
//! here, before the core sees it. A device that goes down does not break the port
//! (the socket carries on once it is up again); one that goes away does.
//!
//! Frames are received through a `TPACKET_V2` ring per socket: the kernel copies each
//! frame into a slot of a mapping shared with rvs while it delivers it (in the
//! sender's context), and the worker takes frames from there without a system call —
//! for small frames that is most of the cost of receiving. A frame longer than a slot
//! (a GSO frame, or one beyond the MTU the slots were sized for) comes whole through
//! the socket's receive queue instead, in its place in the order (`recvmmsg`). Where
//! the kernel gives no ring, or with `rvs-vswitchd --plain-io`, every frame comes
//! through `recvmmsg`.
//!
//! With several workers the port opens one socket per worker, joined in a
//! `PACKET_FANOUT` group that spreads received frames by flow hash: each worker reads
//! its own queue, the frames of one flow stay in order on one of them. Frames are sent
//! on the first socket (the kernel serializes concurrent senders).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::device::{Device, Presence, Requeue};
use super::{Input, PortIo, Rx, RxBatch, RxScratch};
use rvs_switch::packet::PacketBuf;
use rvs_switch::wire::virtio_net_hdr::{LEN_LEGACY, VnetHdr};
use rvs_sys::{netdev, packet};

/// An open AF_PACKET port.
pub struct AfPacketPort {
    /// One socket per receive queue (fanout members); frames are sent on the first.
    fds: Vec<OwnedFd>,
    /// The receive ring of each socket, where it has one.
    rings: Vec<Option<packet::RxRing>>,
    /// Receive queues asked for at open.
    asked: usize,
    ifindex: u32,
    vnet_hdr: bool,
    /// The `PACKET_FANOUT` group of the sockets, once there is one (several queues,
    /// or a takeover: see [`crate::takeover`]).
    group: std::sync::Mutex<Option<u16>>,
}

impl AfPacketPort {
    /// Attaches to the device called `name` in this network namespace, with `queues`
    /// receive queues. If the kernel cannot make a fanout group the port has one queue
    /// (and says so in the log): it still works, polled by one worker.
    pub fn open(name: &str, queues: usize) -> io::Result<AfPacketPort> {
        AfPacketPort::open_with(name, queues, !rvs_sys::plain_io(), None)
    }

    /// [`AfPacketPort::open`], with receive rings or (`rings` false) without, its
    /// sockets joining fanout group `join` (a daemon being taken over shares the
    /// device's frames with this one) or a group of their own.
    pub fn open_with(name: &str, queues: usize, rings: bool, join: Option<u16>) -> io::Result<AfPacketPort> {
        let ifindex = netdev::ifindex(name)?;
        // 0: no rings.
        let slot = if rings { netdev::mtu(name).map_or(2048, ring_slot_size) } else { 0 };
        let (fd, info, ring) = packet::open(ifindex, true, ring_size(slot, queues))?;
        let ring = ring_or_log(name, ring);
        let mut port = AfPacketPort { fds: vec![fd], rings: vec![ring], asked: queues, ifindex, vnet_hdr: info.vnet_hdr, group: std::sync::Mutex::new(None) };
        if let Some(id) = join
            && let Err(e) = port.fan_out(name, queues, slot, Some(id))
        {
            tracing::warn!("{name}: cannot join the fanout group {id} of the daemon taken over ({e}): both receive its frames until it exits");
            port.fds.truncate(1);
            port.rings.truncate(1);
        } else if join.is_none()
            && queues > 1
            && let Err(e) = port.fan_out(name, queues, slot, None)
        {
            tracing::warn!("{name}: no PACKET_FANOUT ({e}): one receive queue");
            port.fds.truncate(1);
            port.rings.truncate(1);
        }
        // Every socket receives from here on: those in a group were released as they
        // joined it (released twice is harmless); a lone one, or one left alone when
        // joining failed, now.
        for fd in &port.fds {
            packet::release(fd.as_fd())?;
        }
        Ok(port)
    }

    fn fan_out(&mut self, name: &str, queues: usize, slot: usize, join: Option<u16>) -> io::Result<()> {
        let group = match join {
            Some(id) => packet::fanout_join(self.fds[0].as_fd(), id).map(|()| id)?,
            None => packet::fanout_create(self.fds[0].as_fd())?,
        };
        packet::release(self.fds[0].as_fd())?;
        *self.group.lock().unwrap_or_else(|e| e.into_inner()) = Some(group);
        for _ in 1..queues {
            let (fd, info, ring) = packet::open(self.ifindex, true, ring_size(slot, queues))?;
            if info.vnet_hdr != self.vnet_hdr {
                return Err(io::Error::other("virtio-net header on one socket but not another"));
            }
            let ring = ring_or_log(name, ring);
            packet::fanout_join(fd.as_fd(), group)?;
            packet::release(fd.as_fd())?;
            self.fds.push(fd);
            self.rings.push(ring);
        }
        Ok(())
    }

    /// Whether queue `q` receives through a ring (see the module's documentation).
    pub fn has_ring(&self, q: usize) -> bool {
        self.rings.get(q).is_some_and(|r| r.is_some())
    }

    /// Takes up to `bufs.len()` frames from ring `ring` of queue `q`.
    fn recv_ring(&self, q: usize, ring: &packet::RxRing, bufs: &mut [PacketBuf], out: &mut [Rx]) -> io::Result<RxBatch> {
        // Another thread reading this queue (a worker handing it over): nothing here.
        let Some(mut reader) = ring.reader() else { return Ok(RxBatch::default()) };
        let n = bufs.len().min(out.len());
        // Frames too long for their slot wait whole on the socket's queue: a run of them
        // (bufs[copies_from..k]) is read with one recvmmsg before the next frame.
        // Whether a slot said the kernel dropped frames, or the ring came round (then
        // the socket's drop count is read, so that a burst the ring could not hold is
        // counted even if nothing follows it).
        let (mut k, mut copies_from, mut losing, mut turned, mut dropped) = (0, 0, false, false, 0);
        while k < n {
            let Some(f) = reader.peek() else {
                if k == 0 {
                    // An empty ring: an error the socket holds (its device went down
                    // or away) is taken, as a read without a ring would, so that it
                    // does not keep epoll firing; a device that is gone breaks the port.
                    if let Some(fd) = self.queue_fd(q) {
                        match packet::take_error(fd)? {
                            Some(e) if e.raw_os_error() != Some(libc::ENETDOWN) => return Err(e),
                            _ => {}
                        }
                    }
                }
                break;
            };
            losing |= f.losing;
            if f.copied {
                turned |= reader.release();
                k += 1;
                continue;
            }
            dropped += self.recv_copies(q, &mut bufs[copies_from..k], &mut out[copies_from..k])?;
            out[k] = self.take_slot(&f, &mut bufs[k]);
            turned |= reader.release();
            k += 1;
            copies_from = k;
        }
        dropped += self.recv_copies(q, &mut bufs[copies_from..k], &mut out[copies_from..k])?;
        if losing || turned {
            dropped += self.take_drops(q);
        }
        Ok(RxBatch { dropped, ..RxBatch::of(k, n) })
    }

    /// What the kernel dropped on queue `q` since last asked (0 if it cannot say).
    fn take_drops(&self, q: usize) -> u64 {
        self.queue_fd(q).and_then(|fd| packet::take_drops(fd).ok()).map_or(0, u64::from)
    }

    /// Reads the frames whose ring slots said they wait whole on the socket's queue,
    /// one per buffer, in order (a second try when the first only took an error the
    /// socket held; a frame that still does not come is counted bad). Returns the
    /// drops the reads learned of.
    fn recv_copies(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx]) -> io::Result<u64> {
        let (mut done, mut dropped) = (0, 0);
        for _ in 0..2 {
            if done == bufs.len() {
                return Ok(dropped);
            }
            let got = self.recv_plain(q, &mut bufs[done..], &mut out[done..])?;
            done += got.n;
            dropped += got.dropped;
        }
        out[done..].fill(Rx::Bad);
        Ok(dropped)
    }

    /// Copies a frame the ring holds whole into `buf`.
    fn take_slot(&self, f: &packet::RingFrame<'_>, buf: &mut PacketBuf) -> Rx {
        let hlen = if self.vnet_hdr { LEN_LEGACY } else { 0 };
        let area = buf.rx_area();
        if f.data.len() < f.len || f.data.len() > area.len() || f.vnet.len() < hlen {
            return Rx::Bad;
        }
        area[..f.data.len()].copy_from_slice(f.data);
        let mut hdr = [0u8; LEN_LEGACY];
        hdr[..hlen].copy_from_slice(&f.vnet[..hlen]);
        self.finish(buf, &hdr, packet::Received { len: f.data.len() + hlen, truncated: false, vlan: f.vlan }, hlen)
    }

    /// One recvmmsg(2) for up to [`packet::MAX_BATCH`] frames.
    fn recv_plain(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx]) -> io::Result<RxBatch> {
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
                // The device went down (or was down when the socket was bound): the
                // socket carries on once it is up again. (A device that is gone gives
                // ENODEV: a broken port.)
                Err(e) if e.raw_os_error() == Some(libc::ENETDOWN) => 0,
                // Out of memory on the socket is a per-frame problem, not a broken port.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::ENOMEM)) => {
                    out[0] = Rx::Bad;
                    return Ok(RxBatch { more: true, ..RxBatch::of(1, usize::MAX) });
                }
                Err(e) => return Err(e),
            }
        };
        for i in 0..k {
            out[i] = self.finish(&mut bufs[i], &hdrs[i], got[i], hlen);
        }
        // recvmmsg(2) without waiting stops at the first empty read.
        let mut batch = RxBatch::of(k, n);
        // A full batch: the queue may have overflowed meanwhile.
        if batch.more {
            batch.dropped = self.take_drops(q);
        }
        Ok(batch)
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
        if let Some((tpid, tci)) = r.vlan
            && !buf.push_vlan(tpid, tci)
        {
            return Rx::Bad;
        }
        Rx::Frame
    }

    /// Up to [`packet::MAX_BATCH`] frames from queue `q`'s ring, or with one
    /// recvmmsg(2) where it has none.
    fn recv_some(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx]) -> io::Result<RxBatch> {
        let n = bufs.len().min(out.len()).min(packet::MAX_BATCH);
        match self.rings.get(q) {
            Some(Some(ring)) => self.recv_ring(q, ring, &mut bufs[..n], &mut out[..n]),
            _ => self.recv_plain(q, bufs, out),
        }
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

impl Input for AfPacketPort {
    fn queues(&self) -> usize {
        self.fds.len()
    }

    fn queue_fd(&self, q: usize) -> Option<BorrowedFd<'_>> {
        self.fds.get(q).map(|f| f.as_fd())
    }

    fn rx_mode(&self, q: usize) -> Option<&'static str> {
        Some(if self.has_ring(q) { "ring" } else { "recvmmsg" })
    }

    fn recv_queue(&self, q: usize, buf: &mut PacketBuf) -> io::Result<Rx> {
        let mut out = [Rx::Empty];
        self.recv_some(q, std::slice::from_mut(buf), &mut out)?;
        Ok(out[0])
    }

    fn batch(&self) -> usize {
        packet::MAX_BATCH
    }

    /// Up to [`packet::MAX_BATCH`] frames from the queue's ring, or with one
    /// recvmmsg(2) where it has none.
    fn recv_batch(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx], _: &mut RxScratch) -> io::Result<RxBatch> {
        self.recv_some(q, bufs, out)
    }
}

impl PortIo for AfPacketPort {
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

    /// One sendmmsg(2) for up to [`rvs_sys::MAX_SEND_BATCH`] frames.
    fn send_batch(&self, bufs: &[&PacketBuf], sent: &mut [bool]) -> io::Result<()> {
        const MAX: usize = rvs_sys::MAX_SEND_BATCH;
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

impl Device for AfPacketPort {
    /// Still the netdev it was opened on (not gone, not replaced by another of the
    /// same name).
    fn healthy(&self, name: &str) -> bool {
        netdev::ifindex(name).ok() == Some(self.ifindex())
    }

    /// One socket per queue, fanned out: opened again with the new number.
    fn requeue(&self, queues: usize) -> Requeue {
        if self.asked_queues() == queues { Requeue::Keep } else { Requeue::Reopen }
    }

    fn presence(&self, name: &str) -> Presence {
        if self.healthy(name) { Presence::Netdev } else { Presence::Hidden }
    }

    /// The sockets' fanout group; a port with a single socket (one worker) makes one
    /// now, with that socket as its only member.
    fn fanout_group(&self) -> Option<io::Result<u16>> {
        let mut group = self.group.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = *group {
            return Some(Ok(id));
        }
        Some(packet::fanout_create(self.fds[0].as_fd()).inspect(|&id| *group = Some(id)))
    }

    /// Frames sent through the device's qdisc: a QoS there shapes them.
    fn qos_home(&self) -> crate::qos::QosHome {
        crate::qos::QosHome::Kernel
    }

    fn ifindex(&self) -> Option<u32> {
        Some(self.ifindex)
    }

    /// On every socket (frames leave by the first; all are set alike).
    fn pass_qdisc(&self, pass: bool) -> io::Result<()> {
        self.fds.iter().try_for_each(|f| packet::set_qdisc_bypass(f.as_fd(), !pass))
    }
}

/// Bytes per ring slot for a device of MTU `mtu`: the frame with a VLAN tag and the
/// slot's own headers, rounded up to a power of two, 2 KiB to 16 KiB (longer frames
/// take the socket's queue).
pub fn ring_slot_size(mtu: u32) -> usize {
    (mtu as usize + 14 + 4 + packet::RING_SLOT_OVERHEAD).next_power_of_two().clamp(2048, 16 << 10)
}

/// Bytes of receive ring per port, shared out among its sockets (kernel memory that
/// cannot be swapped, mapped into rvs): a node may have a port per VM.
const RING_BYTES: usize = 1 << 20;
/// Fewest slots a socket's ring has.
const RING_MIN_SLOTS: usize = 64;

/// The ring to ask [`packet::open`] for, for one of `queues` sockets: slots of `slot`
/// bytes, [`RING_BYTES`] over all the sockets of the port (at least [`RING_MIN_SLOTS`]
/// each); none for `slot` 0.
fn ring_size(slot: usize, queues: usize) -> Option<(usize, usize)> {
    (slot > 0).then(|| (slot, (RING_BYTES / slot / queues.max(1)).max(RING_MIN_SLOTS)))
}

/// The ring a socket of `name` got, logging why when it got none it asked for.
fn ring_or_log(name: &str, ring: Option<io::Result<packet::RxRing>>) -> Option<packet::RxRing> {
    match ring? {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::info!("{name}: no AF_PACKET receive ring ({e}): one recvmmsg per batch instead");
            None
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_slots_fit_the_mtu_and_rings_share_a_budget() {
        // A tagged 1500-byte frame and the slot's headers fit 2 KiB; jumbo frames 16 KiB.
        assert_eq!(ring_slot_size(1500), 2048);
        assert_eq!(ring_slot_size(576), 2048);
        assert_eq!(ring_slot_size(4000), 8192);
        assert_eq!(ring_slot_size(9000), 16 << 10);
        assert_eq!(ring_slot_size(65535), 16 << 10);
        assert!(1500 + 18 + packet::RING_SLOT_OVERHEAD <= ring_slot_size(1500));
        // 1 MiB per port over its sockets, never fewer than 64 slots each.
        assert_eq!(ring_size(2048, 1), Some((2048, 512)));
        assert_eq!(ring_size(2048, 2), Some((2048, 256)));
        assert_eq!(ring_size(2048, 8), Some((2048, 64)));
        assert_eq!(ring_size(16 << 10, 1), Some((16 << 10, 64)));
        assert_eq!(ring_size(0, 1), None);
    }
}
