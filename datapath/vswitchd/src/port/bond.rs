//! A bond (Port with several Interfaces) as one port of the switch: the packet path of
//! [`rvs_switch::bond`]. Its members are existing netdevs, each opened as any other
//! (an [`super::afpacket::AfPacketPort`], kept by the control plane as an open
//! interface with its own counters); the bond reads all their queues and sends each
//! frame out of the one member the bond's selection names.
//!
//! Per received frame: a slow-protocols frame (ethertype 0x8809: LACP, markers) is
//! handed to the control plane through a bounded queue of fixed-size copies
//! ([`BondShared::take_slow`]) and never forwarded; any other frame passes
//! [`rvs_switch::bond::select::Bond::admit_frame`] (a frame the bond refuses is a counted
//! drop, `not_admitted`). Per frame sent: [`rvs_switch::bond::select::Bond::output`]
//! picks the member (none enabled: a transmit drop), and the frame's bytes are added to
//! its hash bucket for rebalancing ([`BondShared::take_bucket_bytes`]).
//!
//! What the packet path reads of the bond (which members are enabled, the active
//! member, the buckets) is a copy the control plane publishes after each of its runs
//! ([`BondShared::publish`]): the write lock is held only to swap in the new copy, so a
//! worker never waits on the control plane's work; nothing here allocates per frame.
//!
//! A member whose socket fails is marked broken ([`BondShared::take_broken`]) and
//! skipped: the control plane takes it as carrier down and reopens it; the bond and its
//! other members carry on. Receive errors are therefore never returned to the worker.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, RwLock};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rvs_switch::bond::admit::Verdict;
use rvs_switch::bond::hash::BUCKETS;
use rvs_switch::bond::select::Bond;
use rvs_switch::packet::PacketBuf;
use rvs_switch::wire::lacp::ETHERTYPE as SLOW_PROTOCOLS;

use super::device::Device;
use super::{Input, PortIo, PortStats, Rx, RxBatch, RxScratch};

/// Bytes of a slow-protocols frame kept (a LACPDU frame is 124).
pub const SLOW_MAX: usize = 128;
/// Slow-protocols frames queued for the control plane; beyond, they are counted drops.
const SLOW_QUEUE: usize = 64;

/// A slow-protocols frame received on a member.
#[derive(Clone, Copy)]
pub struct SlowFrame {
    pub member: usize,
    pub len: usize,
    pub data: [u8; SLOW_MAX],
}

impl SlowFrame {
    /// The payload after the Ethernet header.
    pub fn payload(&self) -> &[u8] {
        self.data.get(14..self.len).unwrap_or(&[])
    }
}

/// Counters of the bond itself (beyond the members' own).
#[derive(Debug, Default)]
pub struct BondCounters {
    /// Frames a member received that the bond refused (backup member, LACP not
    /// negotiated, multicast on a non-active member).
    pub not_admitted: AtomicU64,
    /// Frames to send while no member was enabled.
    pub no_member: AtomicU64,
    /// Slow-protocols frames received (handed to LACP).
    pub slow_rx: AtomicU64,
    /// Slow-protocols frames dropped because the control plane's queue was full.
    pub slow_dropped: AtomicU64,
}

/// What the packet path and the control plane share about one bond.
pub struct BondShared {
    /// The selection as the control plane last published it.
    bond: RwLock<Bond>,
    slow_tx: Sender<SlowFrame>,
    slow_rx: Receiver<SlowFrame>,
    /// Per member: its socket failed.
    broken: Vec<AtomicBool>,
    /// Bytes sent per hash bucket since the control plane last took them.
    buckets: Vec<AtomicU64>,
    pub counters: BondCounters,
    /// Wakes the control plane to run the bonds when a slow-protocols frame arrives
    /// (a LACPDU is taken in at once, not at the next tick); never blocks.
    wake: Arc<tokio::sync::Notify>,
}

impl BondShared {
    /// Shared state for `bond` (its members in order); `wake` is notified for each
    /// slow-protocols frame received.
    pub fn new(bond: Bond, wake: Arc<tokio::sync::Notify>) -> BondShared {
        let n = bond.members().len();
        let (slow_tx, slow_rx) = crossbeam_channel::bounded(SLOW_QUEUE);
        BondShared {
            bond: RwLock::new(bond),
            slow_tx,
            slow_rx,
            broken: (0..n).map(|_| AtomicBool::new(false)).collect(),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            counters: BondCounters::default(),
            wake,
        }
    }

    /// Makes `fresh` what the packet path reads; the old copy is dropped after the
    /// lock is released (only a swap happens under it).
    pub fn publish(&self, mut fresh: Bond) {
        let mut w = self.bond.write().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *w, &mut fresh);
        drop(w);
        drop(fresh);
    }

    /// The slow-protocols frames received since the last call.
    pub fn take_slow(&self) -> Vec<SlowFrame> {
        self.slow_rx.try_iter().collect()
    }

    /// Members whose socket failed since the last call.
    pub fn take_broken(&self) -> Vec<usize> {
        (0..self.broken.len()).filter(|&m| self.broken[m].swap(false, Relaxed)).collect()
    }

    /// Bytes sent per bucket since the last call (bucket, bytes), non-zero only.
    pub fn take_bucket_bytes(&self) -> Vec<(u8, u64)> {
        (0..self.buckets.len()).filter_map(|b| Some((b as u8, Some(self.buckets[b].swap(0, Relaxed)).filter(|&n| n > 0)?))).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Bond> {
        self.bond.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// One member of the bond's packet path: its device (`None` while it cannot be
/// opened) and its interface's counters.
#[derive(Clone)]
pub struct MemberIo {
    pub name: String,
    pub device: Option<Arc<dyn Device>>,
    pub stats: Arc<PortStats>,
}

/// The bond as a port of the switch.
pub struct BondPort {
    name: String,
    members: Vec<MemberIo>,
    /// Receive queue `q` of the bond is queue `q - starts[m]` of member `m`.
    starts: Vec<usize>,
    queues: usize,
    offloads: bool,
    /// Every open member sends in batches.
    batches: bool,
    pub shared: Arc<BondShared>,
}

/// The 802.1Q VLAN of a frame as sent (0 untagged): the SLB hash covers it.
fn vlan_of(frame: &[u8]) -> u16 {
    match frame.get(12..16) {
        Some([0x81, 0x00, hi, lo]) => u16::from_be_bytes([*hi, *lo]) & 0x0fff,
        _ => 0,
    }
}

fn is_slow(frame: &[u8]) -> bool {
    frame.get(12..14) == Some(&SLOW_PROTOCOLS.to_be_bytes()[..])
}

impl BondPort {
    pub fn new(name: &str, members: Vec<MemberIo>, shared: Arc<BondShared>) -> BondPort {
        let mut starts = Vec::with_capacity(members.len());
        let mut queues = 0;
        for m in &members {
            starts.push(queues);
            queues += m.device.as_ref().map_or(0, |d| d.queues());
        }
        let open: Vec<&Arc<dyn Device>> = members.iter().filter_map(|m| m.device.as_ref()).collect();
        let offloads = !open.is_empty() && open.iter().all(|d| d.offloads());
        let batches = !open.is_empty() && open.iter().all(|d| d.batches_tx());
        BondPort { name: name.into(), members, starts, queues, offloads, batches, shared }
    }

    /// The member and its queue for bond queue `q`.
    fn locate(&self, q: usize) -> Option<(usize, &Arc<dyn Device>, usize)> {
        let m = self.starts.iter().rposition(|&s| s <= q)?;
        let d = self.members[m].device.as_ref()?;
        (q - self.starts[m] < d.queues()).then_some((m, d, q - self.starts[m]))
    }

    fn member_failed(&self, m: usize, e: &io::Error) {
        if !self.shared.broken[m].swap(true, Relaxed) {
            tracing::warn!("bond {}: member {}: {e}; the member is disabled until it is reopened", self.name, self.members[m].name);
        }
    }

    /// Takes a slow-protocols frame for the control plane.
    fn slow(&self, m: usize, frame: &[u8]) {
        PortStats::inc(&self.shared.counters.slow_rx);
        let len = frame.len().min(SLOW_MAX);
        let mut f = SlowFrame { member: m, len, data: [0; SLOW_MAX] };
        f.data[..len].copy_from_slice(&frame[..len]);
        match self.shared.slow_tx.try_send(f) {
            Ok(()) => self.shared.wake.notify_one(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => PortStats::inc(&self.shared.counters.slow_dropped),
        }
    }
}

impl Input for BondPort {
    fn queue_fd(&self, q: usize) -> Option<BorrowedFd<'_>> {
        let (_, d, mq) = self.locate(q)?;
        d.queue_fd(mq)
    }

    fn queues(&self) -> usize {
        self.queues
    }

    fn batch(&self) -> usize {
        self.members.iter().filter_map(|m| m.device.as_ref()).map(|d| d.batch()).min().unwrap_or(1)
    }

    fn rx_mode(&self, q: usize) -> Option<&'static str> {
        let (_, d, mq) = self.locate(q)?;
        d.rx_mode(mq)
    }

    /// Reads a batch from the member behind queue `q`, then keeps (moved to the front)
    /// only the frames to forward.
    fn recv_batch(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx], scratch: &mut RxScratch) -> io::Result<RxBatch> {
        let Some((m, d, mq)) = self.locate(q) else { return Ok(RxBatch::default()) };
        if self.shared.broken[m].load(Relaxed) {
            return Ok(RxBatch::default());
        }
        let r = match d.recv_batch(mq, bufs, out, scratch) {
            Ok(r) => r,
            Err(e) => {
                self.member_failed(m, &e);
                return Ok(RxBatch::default());
            }
        };
        let stats = &self.members[m].stats;
        if r.dropped > 0 {
            stats.rx_dropped.fetch_add(r.dropped, Relaxed);
        }
        let n = r.n.min(bufs.len()).min(out.len());
        let bond = self.shared.read();
        let mut kept = 0;
        for i in 0..n {
            if out[i] == Rx::Frame {
                // (The worker checks a FrameUnlessMoved against its MAC table.)
                let frame = bufs[i].frame();
                stats.rx(frame.len(), frame.first().is_some_and(|b| b & 1 == 1));
                if is_slow(frame) {
                    self.slow(m, frame);
                    continue;
                }
                match bond.admit_frame(m, frame) {
                    Verdict::Drop => {
                        PortStats::inc(&self.shared.counters.not_admitted);
                        continue;
                    }
                    Verdict::DropIfMoved => out[i] = Rx::FrameUnlessMoved,
                    Verdict::Accept => {}
                }
            }
            bufs.swap(kept, i);
            out.swap(kept, i);
            kept += 1;
        }
        Ok(RxBatch { n: kept, ..r })
    }

    fn label(&self) -> String {
        self.name.clone()
    }
}

impl BondPort {
    /// The member that sends `frame`, or `None` when no member is enabled (counted).
    fn pick(&self, bond: &Bond, frame: &[u8]) -> Option<usize> {
        let m = bond.output(frame, vlan_of(frame));
        match m {
            Some(_) => self.account(bond, frame),
            None => PortStats::inc(&self.shared.counters.no_member),
        }
        m
    }

    /// Counts `frame`'s bytes in its bucket: it is in use, and its load counts for
    /// rebalancing.
    fn account(&self, bond: &Bond, frame: &[u8]) {
        if let Some(b) = bond.bucket(frame, vlan_of(frame)) {
            self.shared.buckets[usize::from(b)].fetch_add(frame.len() as u64, Relaxed);
        }
    }

    /// Member `m`'s device, unless it is not open or its socket failed.
    fn usable(&self, m: usize) -> Option<&Arc<dyn Device>> {
        self.members[m].device.as_ref().filter(|_| !self.shared.broken[m].load(Relaxed))
    }

    /// Sends `bufs` (all chosen to go out of member `m`) on it, filling `sent` and the
    /// member's counters. A failing socket disables the member; never `Err`.
    fn send_on(&self, m: usize, bufs: &[&PacketBuf], sent: &mut [bool]) {
        let member = &self.members[m];
        let r = match self.usable(m) {
            Some(d) if bufs.len() == 1 => d.send(bufs[0]).map(|ok| sent[0] = ok),
            Some(d) => d.send_batch(bufs, sent),
            None => {
                sent.fill(false);
                Ok(())
            }
        };
        if let Err(e) = r {
            self.member_failed(m, &e);
            PortStats::inc(&member.stats.tx_errors);
        }
        for (b, &ok) in bufs.iter().zip(sent.iter()) {
            if ok { member.stats.tx(b.len()) } else { PortStats::inc(&member.stats.tx_dropped) }
        }
    }
}

impl PortIo for BondPort {
    /// Sends on the member the bond's selection names; no member: a counted drop.
    fn send(&self, buf: &PacketBuf) -> io::Result<bool> {
        let Some(m) = self.pick(&self.shared.read(), buf.frame()) else { return Ok(false) };
        let mut sent = [false];
        self.send_on(m, &[buf], &mut sent);
        Ok(sent[0])
    }

    fn offloads(&self) -> bool {
        self.offloads
    }

    fn batches_tx(&self) -> bool {
        self.batches
    }

    /// Runs of consecutive frames bound for the same member go out together (one
    /// `sendmmsg` on an AF_PACKET member).
    fn send_batch(&self, bufs: &[&PacketBuf], sent: &mut [bool]) -> io::Result<()> {
        let bond = self.shared.read();
        let mut i = 0;
        while i < bufs.len() {
            let Some(m) = self.pick(&bond, bufs[i].frame()) else {
                sent[i] = false;
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < bufs.len() && bond.output(bufs[j].frame(), vlan_of(bufs[j].frame())) == Some(m) {
                self.account(&bond, bufs[j].frame());
                j += 1;
            }
            self.send_on(m, &bufs[i..j], &mut sent[i..j]);
            i = j;
        }
        Ok(())
    }
}

/// Sends a control frame (a LACPDU) on member `m` of `port`, counted on the member.
pub fn send_control(port: &BondPort, m: usize, frame: &[u8]) {
    if m < port.members.len() {
        port.send_on(m, &[&PacketBuf::from_frame(frame)], &mut [false]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::mem::MemPort;
    use rvs_switch::bond::lacp::LacpStatus;
    use rvs_switch::bond::select::{BondConfig, Mode};
    use rvs_switch::time::Time;
    use rvs_switch::types::MacAddr;
    use rvs_switch::wire::virtio_net_hdr::VnetHdr;

    /// An active-backup bond (no LACP) over two batching memory ports, both up, the
    /// first active.
    fn ab_bond() -> (BondPort, [Arc<MemPort>; 2]) {
        let mems = [Arc::new(MemPort::batching(false, 8).unwrap()), Arc::new(MemPort::batching(false, 8).unwrap())];
        let macs = [("m0", MacAddr([2, 0, 0, 0, 0, 1])), ("m1", MacAddr([2, 0, 0, 0, 0, 2]))];
        let mut bond = Bond::new(Time::ZERO, BondConfig::new("b", Mode::ActiveBackup), &macs, LacpStatus::Off, MacAddr::ZERO);
        bond.set_carrier(0, true);
        bond.set_carrier(1, true);
        let _ = bond.run(Time::ZERO, LacpStatus::Off);
        assert_eq!(bond.active(), Some(0));
        let members =
            mems.iter().zip(macs).map(|(m, (n, _))| MemberIo { name: n.into(), device: Some(m.clone() as Arc<dyn Device>), stats: Arc::default() }).collect();
        (BondPort::new("b", members, Arc::new(BondShared::new(bond, Default::default()))), mems)
    }

    fn frame(dst: [u8; 6], ethertype: u16) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[0..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 9, 9]);
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        f
    }

    fn recv(port: &BondPort, q: usize) -> usize {
        let mut bufs: Vec<PacketBuf> = (0..8).map(|_| PacketBuf::new()).collect();
        let mut out = [Rx::Empty; 8];
        port.recv_batch(q, &mut bufs, &mut out, &mut RxScratch::new()).unwrap().n
    }

    #[test]
    fn frames_leave_by_the_active_member_and_come_in_by_it_only() {
        let (port, mems) = ab_bond();
        assert_eq!(port.queues(), 2, "one queue per member");
        let f = PacketBuf::from_frame(&frame([2, 0, 0, 0, 7, 7], 0x0800));
        let mut sent = [false; 3];
        port.send_batch(&[&f, &f, &f], &mut sent).unwrap();
        assert_eq!(sent, [true; 3]);
        assert_eq!((mems[0].take_sent().len(), mems[1].take_sent().len()), (3, 0));
        assert_eq!(mems[0].take_tx_calls(), [3], "one batched call");
        // The backup's frames are refused; the active member's pass.
        mems[1].inject(&frame([2, 0, 0, 0, 7, 7], 0x0800), VnetHdr::default());
        assert_eq!(recv(&port, 1), 0);
        assert_eq!(port.shared.counters.not_admitted.load(Relaxed), 1);
        mems[0].inject(&frame([2, 0, 0, 0, 7, 7], 0x0800), VnetHdr::default());
        assert_eq!(recv(&port, 0), 1);
    }

    #[test]
    fn slow_protocols_go_to_the_control_plane_never_forward() {
        let (port, mems) = ab_bond();
        let mut lacpdu = frame([0x01, 0x80, 0xc2, 0, 0, 2], SLOW_PROTOCOLS);
        lacpdu.resize(124, 0);
        mems[1].inject(&lacpdu, VnetHdr::default());
        mems[0].inject(&lacpdu, VnetHdr::default());
        assert_eq!(recv(&port, 1) + recv(&port, 0), 0);
        let slow = port.shared.take_slow();
        assert_eq!(slow.iter().map(|f| (f.member, f.payload().len())).collect::<Vec<_>>(), [(1, 110), (0, 110)]);
    }

    #[test]
    fn no_enabled_member_is_a_counted_drop_and_a_broken_member_is_skipped() {
        let (port, mems) = ab_bond();
        let mut bond = port.shared.read().clone();
        bond.set_carrier(0, false);
        bond.set_carrier(1, false);
        let _ = bond.run(Time::from_millis(1), LacpStatus::Off);
        port.shared.publish(bond);
        let f = PacketBuf::from_frame(&frame([2, 0, 0, 0, 7, 7], 0x0800));
        assert!(!port.send(&f).unwrap());
        assert_eq!(port.shared.counters.no_member.load(Relaxed), 1);
        assert!(mems[0].take_sent().is_empty() && mems[1].take_sent().is_empty());
        // A failed socket: the member is reported once and not read.
        port.member_failed(1, &io::Error::from_raw_os_error(libc::ENODEV));
        mems[1].inject(&frame([2, 0, 0, 0, 7, 7], 0x0800), VnetHdr::default());
        assert_eq!(recv(&port, 1), 0);
        assert_eq!(port.shared.take_broken(), [1]);
        assert!(port.shared.take_broken().is_empty());
    }

    #[test]
    fn vlan_and_slow_protocols_are_read_from_the_frame() {
        let mut f = [0u8; 20];
        f[12..16].copy_from_slice(&[0x81, 0x00, 0x20, 0x0a]);
        assert_eq!(vlan_of(&f), 10);
        assert!(!is_slow(&f));
        f[12..14].copy_from_slice(&[0x88, 0x09]);
        assert_eq!(vlan_of(&f), 0);
        assert!(is_slow(&f));
    }
}
