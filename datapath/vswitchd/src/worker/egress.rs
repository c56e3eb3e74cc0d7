//! Egress: carrying out the core's decision for the frame in the worker's buffer.
//!
//! For each output the core chose: set the VLAN tag it asked for, complete a partial
//! checksum for a port without offloads, cut a GSO frame for a port that cannot take
//! it (through the port's own cheaper path if it has one), and send — or, when the
//! frame is one of a receive batch and its one output sends in batches, hold it in the
//! transmit batcher until the batch ends ([`Worker::flush_tx`]). What a port can do is
//! read from its [`super::PortCaps`], not asked of the backend per frame. Every frame
//! is counted as sent or as a drop with a reason; only a broken port is an error, and
//! it goes back to the caller to be taken out.

use std::io;
use std::sync::atomic::Ordering::Relaxed;

use rvs_switch::bridge::shaper::Offer;
use rvs_switch::bridge::{Bridge, DropReason, Verdict};
use rvs_switch::offload::{self, Layer, Segmenter};
use rvs_switch::packet::PacketBuf;
use rvs_switch::time::Time;

use super::batch::Hold;
use super::{DpPort, PortRef, RX_BATCH, Worker};
use crate::port::PortStats;

/// Ethernet header bytes before the payload that an MTU measures.
const ETH_HLEN: usize = 14;

impl Worker {
    /// Decides and sends the frame in `self.buf`, received on port `at`; `hold` says
    /// whether it may wait in the transmit batcher. Returns the port that broke while
    /// sending, if any.
    pub(super) fn forward(&mut self, at: PortRef, now: Time, hold: Hold) -> Result<(), (PortRef, io::Error)> {
        let br = &mut self.bridges[at.bridge];
        let verdict = br.core.process(now, at.port as u16, self.buf.frame(), &mut self.actions);
        if self.actions.mirrored() != 0 {
            count_mirrored(br, self.actions.mirrored(), self.buf.len());
        }
        let pcp = match verdict {
            Verdict::Forward { pcp, .. } => pcp,
            Verdict::Drop(_) => {
                PortStats::inc(&br.ports[at.port].stats.rx_dropped);
                if self.actions.is_empty() {
                    return Ok(());
                }
                // Mirror copies of a frame forwarding dropped keep its priority.
                self.buf.vlan_tci().map_or(0, |t| (t >> 13) as u8)
            }
        };
        self.actions.sort_by_tag();
        // A frame with one output to a port that sends in batches is held until the
        // receive batch ends; any other send goes first, after those held (order).
        let hold = hold.filter(|_| self.actions.len() == 1).filter(|_| {
            let caps = br.ports[self.actions.as_slice()[0].port as usize].caps;
            caps.batches_tx && (caps.offloads || !self.buf.vnet.is_gso())
        });
        if hold.is_none() && !self.tx.is_empty() {
            self.flush_tx();
        }
        let br = &mut self.bridges[at.bridge];
        // Whether the frame carries the switch's tag (a tag it came in with is the
        // switch's: the core admitted it as such), changed by each output in turn.
        let mut tagged = self.buf.vlan_tci().is_some();
        for e in self.actions.iter() {
            let out = e.port as usize;
            let port = &br.ports[out];
            if port.failed {
                continue;
            }
            if !self.buf.set_vlan(tagged, e.tag, pcp) {
                br.core.count_drop(DropReason::Malformed);
                PortStats::inc(&port.stats.tx_dropped);
                continue;
            }
            tagged = e.tag.is_some();
            // A mirror copy with a snaplen: copies to cut come last, longest first
            // (`sort_by_tag`), so the frame is cut for them in place.
            if e.snap != 0 && e.snap != u16::MAX && self.buf.len() > usize::from(e.snap) {
                self.buf.truncate(usize::from(e.snap));
                self.buf.vnet = Default::default();
            }
            // A frame longer than the device's MTU (plus its Ethernet header and a tag)
            // is dropped here, as a hardware switch drops it at a port that cannot
            // carry it; a GSO frame is cut to the sender's segment size downstream.
            let mtu = port.stats.mtu.load(Relaxed) as usize;
            if mtu != 0 && !self.buf.vnet.is_gso() && self.buf.len() > mtu + ETH_HLEN + if e.tag.is_some() { 4 } else { 0 } {
                br.core.count_drop(DropReason::Oversize);
                PortStats::inc(&port.stats.tx_dropped);
                continue;
            }
            match port.shape(now, &self.buf) {
                Offer::Send => {}
                // It leaves from `drain_shaped`, complete as it is now.
                Offer::Queued => continue,
                Offer::Dropped => {
                    count_shaped(&mut br.core, port);
                    continue;
                }
            }
            port.stats.capture.frame(self.buf.frame());
            let offloads = port.caps.offloads;
            let sent = if offloads || !self.buf.vnet.is_gso() {
                if !offloads && !complete_csum(&mut self.buf) {
                    br.core.count_drop(DropReason::BadOffload);
                    PortStats::inc(&port.stats.tx_dropped);
                    continue;
                }
                if let Some(k) = hold {
                    self.tx.hold(PortRef { bridge: at.bridge, port: out }, k);
                    continue;
                }
                send_counted(&mut br.core, port, &self.buf)
            } else {
                segment_and_send(&mut br.core, port, &self.buf, &mut self.seg)
            };
            if let Err(err) = sent {
                return Err((PortRef { bridge: at.bridge, port: out }, err));
            }
            self.stats.output(1);
        }
        Ok(())
    }

    /// Sends what the egress queues of shaped ports let out at `now` (any worker may:
    /// the queue is the port's, shared). A port that breaks is taken out.
    pub(super) fn drain_shaped(&mut self, now: Time) {
        for i in 0..self.shaped.len() {
            let at = self.shaped[i];
            let br = &mut self.bridges[at.bridge];
            let (core, port) = (&mut br.core, &br.ports[at.port]);
            let Some(q) = port.shaper.as_ref().filter(|_| !port.failed) else { continue };
            let mut err = None;
            let seg = &mut self.seg;
            q.lock().unwrap_or_else(|e| e.into_inner()).drain(now, |buf| {
                if err.is_none() {
                    port.stats.capture.frame(buf.frame());
                    err = send_now(core, port, buf, seg).err();
                }
            });
            if let Some(e) = err {
                self.fail_port(at, e);
            }
        }
    }

    /// When the next frame waiting in a shaped port's queue may leave.
    pub(super) fn shaped_wake(&self, now: Time) -> Option<Time> {
        self.shaped
            .iter()
            .filter_map(|at| self.bridges[at.bridge].ports[at.port].shaper.as_ref())
            .filter_map(|q| q.lock().unwrap_or_else(|e| e.into_inner()).wake_at(now))
            .min()
    }

    /// Sends the frames the transmit batcher holds, one [`crate::port::PortIo::send_batch`]
    /// per port, each port's frames in the order they arrived.
    pub(super) fn flush_tx(&mut self) {
        let mut sent = [false; RX_BATCH];
        while let Some(g) = self.tx.take_group() {
            let br = &mut self.bridges[g.to.bridge];
            let port = &br.ports[g.to.port];
            if port.failed {
                continue;
            }
            let n = g.len();
            let bufs = self.tx.frames(&g);
            sent[..n].fill(false);
            let r = port.io.send_batch(&bufs[..n], &mut sent[..n]);
            self.stats.output(n);
            for (buf, &ok) in bufs.iter().zip(&sent).take(n) {
                // After an error, the frames that did not leave went with the port.
                if ok || r.is_ok() {
                    count_sent(&mut br.core, port, buf.len(), ok);
                }
            }
            if let Err(e) = r {
                self.fail_port(g.to, e);
            }
        }
    }
}

/// Adds a frame of `len` bytes to the counters of the mirrors in `mask`.
#[cold]
fn count_mirrored(br: &super::BridgeRt, mask: u32, len: usize) {
    let mut m = mask;
    while m != 0 {
        if let Some(s) = br.mirror_stats.get(m.trailing_zeros() as usize) {
            s.add(len);
        }
        m &= m - 1;
    }
}

/// Counts a frame the port's shaper dropped (its queue was full).
fn count_shaped(core: &mut Bridge, port: &DpPort) {
    core.count_drop(DropReason::Shaped);
    PortStats::inc(&port.stats.tx_dropped);
    PortStats::inc(&port.stats.tx_shaped);
}

/// Sends a frame that waited in a shaper's queue as [`Worker::forward`] would have:
/// checksum completed or GSO frame cut for a port without offloads.
fn send_now(core: &mut Bridge, port: &super::PortRt, buf: &mut PacketBuf, seg: &mut PacketBuf) -> io::Result<()> {
    if port.caps.offloads || !buf.vnet.is_gso() {
        if !port.caps.offloads && !complete_csum(buf) {
            core.count_drop(DropReason::BadOffload);
            PortStats::inc(&port.stats.tx_dropped);
            return Ok(());
        }
        send_counted(core, port, buf)
    } else {
        segment_and_send(core, port, buf, seg)
    }
}

/// Sends one frame, counting it as sent or dropped. `Err` only for a broken port.
fn send_counted(core: &mut Bridge, port: &DpPort, buf: &PacketBuf) -> io::Result<()> {
    count_sent(core, port, buf.len(), port.io.send(buf)?);
    Ok(())
}

/// Counts one frame of `len` bytes as sent on `port`, or as a transmit drop.
fn count_sent(core: &mut Bridge, port: &DpPort, len: usize, sent: bool) {
    if sent {
        port.stats.tx(len);
    } else {
        core.count_drop(DropReason::TxFailed);
        PortStats::inc(&port.stats.tx_dropped);
    }
}

/// Completes a partial checksum in place for a port without offloads; the frame then
/// carries no offload state (which is fine for every later egress too).
fn complete_csum(buf: &mut PacketBuf) -> bool {
    if buf.vnet.needs_csum() {
        let vnet = buf.vnet;
        if offload::complete_checksum(buf.frame_mut(), &vnet).is_err() {
            return false;
        }
        buf.vnet = Default::default();
    }
    true
}

/// Cuts a GSO frame into MSS-sized frames with full checksums for a port that cannot
/// take GSO: through the port's own batched path if it has one, else one segment at a
/// time in the worker's scratch buffer. The original stays intact for other ports.
fn segment_and_send(core: &mut Bridge, port: &DpPort, buf: &PacketBuf, seg: &mut PacketBuf) -> io::Result<()> {
    if let Some(r) = port.io.send_gso(buf, seg.rx_area())? {
        port.stats.tx_packets.fetch_add(r.sent as u64, Relaxed);
        port.stats.tx_bytes.fetch_add(r.bytes as u64, Relaxed);
        if r.dropped > 0 {
            port.stats.tx_dropped.fetch_add(r.dropped as u64, Relaxed);
            core.count_drop(DropReason::TxFailed);
        }
        return Ok(());
    }
    let mut s = match Segmenter::new(buf.frame(), &buf.vnet) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("{}: cannot segment a GSO frame: {e}", port.name);
            core.count_drop(DropReason::BadOffload);
            PortStats::inc(&port.stats.tx_dropped);
            return Ok(());
        }
    };
    loop {
        match s.next_into(seg.rx_area(), 0, Layer::L2) {
            Ok(Some(n)) => {
                seg.set_len(n);
                send_counted(core, port, seg)?;
            }
            Ok(None) => return Ok(()),
            Err(e) => {
                tracing::debug!("{}: segmentation failed: {e}", port.name);
                core.count_drop(DropReason::BadOffload);
                PortStats::inc(&port.stats.tx_dropped);
                return Ok(());
            }
        }
    }
}
