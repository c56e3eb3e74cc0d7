//! Ingress: reading the inputs and handing each frame to the switch.
//!
//! Every input is read the same way, whatever it is ([`crate::port::Input`]): in
//! batches into the transmit batcher's slots, up to [`BUDGET`] frames per wakeup so
//! that one busy input cannot starve the others, then until the input holds nothing
//! more it read ahead (a VXLAN endpoint's datagram trains: see
//! [`crate::port::RxScratch`]). Each frame belongs to a port: the input's own, or —
//! for a shared input — the port its key names (`demux`, one lookup per run of frames
//! with the same key). Every frame then goes through the same step,
//! [`Worker::ingress`]: count it on its port, police it, forward it. Malformed and
//! oversized frames are counted drops, never errors; an `Err` from a port's receive
//! means the port broke and takes it out (`fail_port`).
//!
//! Nothing here allocates or locks (a policed port's bucket aside).

use std::sync::atomic::Ordering::Relaxed;

use rvs_switch::bridge::DropReason;
use rvs_switch::time::Time;

use super::batch::Hold;
use super::poll::Owner;
use super::{BUDGET, PortRef, RX_BATCH, Worker};
use crate::port::{DemuxKey, PortStats, Rx};

/// The last key a shared input's frames carried and its port: runs of frames with
/// the same key (a train's datagrams) cost one hash lookup, not one each.
type LastKey = Option<(DemuxKey, Option<PortRef>)>;

impl Worker {
    /// Reads and forwards frames from the input queue of epoll token `token` (nothing
    /// if there is none), in batches where the input reads several frames per call.
    /// Frames of a batch bound for a port that sends in batches go out together at its
    /// end. An input that reads ahead one system call per frame, whose last service
    /// found a lone frame, has its first frame forwarded at once: a request/response
    /// exchange does not wait for the read that finds nothing more.
    pub(super) fn service(&mut self, token: usize) {
        let Some(t) = self.tokens.get(token).copied() else { return };
        let (owner, reads_ahead, rx_batch) = {
            let i = &self.inputs[t.input];
            (i.owner, i.reads_ahead, i.rx_batch)
        };
        let now = self.clock.now();
        let mut out = [Rx::Empty; RX_BATCH];
        let (mut done, mut pending) = (0, false);
        let mut last: LastKey = None;
        let mut first_alone = t.lone && reads_ahead;
        loop {
            if let Owner::Port(at) = owner
                && self.bridges[at.bridge].ports[at.port].failed
            {
                break;
            }
            self.scratch.finishing = done >= BUDGET;
            if self.scratch.finishing && !pending {
                break;
            }
            let want = if first_alone { 1 } else { rx_batch };
            let r = match self.inputs[t.input].io.recv_batch(t.queue, self.tx.slots(want), &mut out[..want], &mut self.scratch) {
                Ok(r) => r,
                Err(e) => {
                    match owner {
                        Owner::Port(at) => self.fail_port(at, e),
                        Owner::Shared => tracing::debug!("{}: receive failed: {e}", self.inputs[t.input].io.label()),
                    }
                    break;
                }
            };
            if r.dropped > 0
                && let Owner::Port(at) = owner
            {
                self.bridges[at.bridge].ports[at.port].stats.rx_dropped.fetch_add(r.dropped, Relaxed);
            }
            let n = r.n.min(want);
            for (i, rx) in out.iter().copied().enumerate().take(n) {
                let hold = (!first_alone).then_some(i);
                self.in_slot(i, |w| w.received(t.input, owner, rx, now, hold, &mut last));
            }
            self.flush_tx();
            self.stats.received(r.read);
            // A call that read only datagrams to drop still counts against the budget.
            done += n.max(usize::from(r.read > 0));
            pending = r.pending;
            if !(r.more || pending) || (n == 0 && r.read == 0) {
                break;
            }
            first_alone = false;
        }
        if let Some(t) = self.tokens.get_mut(token) {
            t.lone = done <= 1;
        }
    }

    /// Runs `f` with receive slot `k` swapped into `buf`.
    #[inline]
    fn in_slot(&mut self, k: usize, f: impl FnOnce(&mut Self)) {
        self.tx.swap(k, &mut self.buf);
        f(self);
        self.tx.swap(k, &mut self.buf);
    }

    /// One receive outcome of input `input` (the frame, if any, in `self.buf`): found
    /// its port and taken in. A bad frame is counted on the port it came in on (a shared
    /// input counts its own); a frame whose key no port has, by the input.
    fn received(&mut self, input: usize, owner: Owner, rx: Rx, now: Time, hold: Hold, last: &mut LastKey) {
        match (rx, owner) {
            (Rx::Frame, Owner::Port(at)) => self.ingress(at, now, hold),
            (Rx::FrameUnlessMoved, Owner::Port(at)) => {
                let br = &mut self.bridges[at.bridge];
                if br.core.slb_admits(at.port as u16, self.buf.frame(), now) {
                    self.ingress(at, now, hold);
                } else {
                    PortStats::inc(&br.ports[at.port].stats.rx_dropped);
                    br.core.count_drop(DropReason::BondLoop);
                }
            }
            (Rx::Bad, Owner::Port(at)) => {
                let br = &mut self.bridges[at.bridge];
                PortStats::inc(&br.ports[at.port].stats.rx_errors);
                br.core.count_drop(DropReason::Malformed);
            }
            (Rx::For { key, alone }, _) => {
                let found = match *last {
                    Some((k, v)) if k == key => v,
                    _ => {
                        let v = self.demux.get(&(input, key)).copied();
                        *last = Some((key, v));
                        v
                    }
                };
                match found {
                    None => self.inputs[input].io.unclaimed(&self.buf),
                    Some(at) if self.bridges[at.bridge].ports[at.port].failed => {}
                    Some(at) => self.ingress(at, now, hold.filter(|_| !alone)),
                }
            }
            _ => {}
        }
    }

    /// The step every received frame takes, from a port or out of a tunnel: counts the
    /// frame in `self.buf` as received on port `at`, polices it and forwards it. A port
    /// that breaks while the frame is sent is taken out.
    #[inline]
    fn ingress(&mut self, at: PortRef, now: Time, hold: Hold) {
        let br = &mut self.bridges[at.bridge];
        let port = &br.ports[at.port];
        let len = self.buf.len();
        port.stats.rx(len, self.buf.frame().first().is_some_and(|b| b & 1 == 1));
        port.stats.capture.frame(self.buf.frame());
        if !port.admit(now, len) {
            PortStats::inc(&port.stats.rx_dropped);
            br.core.count_drop(DropReason::Policed);
            return;
        }
        if let Err((to, err)) = self.forward(at, now, hold) {
            self.fail_port(to, err);
        }
    }
}
