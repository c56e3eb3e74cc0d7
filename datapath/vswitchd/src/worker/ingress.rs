//! Ingress: reading the inputs and handing each frame to the switch.
//!
//! Two kinds of input, one path. A port's receive queue is read in batches
//! (`service_port`); a VXLAN endpoint is read in datagram trains, each datagram
//! demultiplexed to its tunnel port and TCP segments coalesced back into GSO frames
//! (`service_endpoint`). Either way every frame ends in the worker's frame buffer and
//! goes through the same step, [`Worker::ingress`]: count it on the port it came in
//! on, police it, forward it. Malformed and oversized frames are counted drops, never
//! errors; an `Err` from a port's receive means the port broke and takes it out
//! (`fail_port`).
//!
//! Each input gets at most [`BUDGET`] frames per wakeup, so one busy port cannot starve
//! the others. Nothing here allocates or locks (a policed port's bucket aside).

use std::sync::atomic::Ordering::Relaxed;

use rvs_switch::bridge::DropReason;
use rvs_switch::offload::Emit;
use rvs_switch::packet::Area;
use rvs_switch::time::Time;

use super::batch::{Hold, SlotCursor};
use super::poll::Source;
use super::{BUDGET, PortRef, RX_BATCH, RX_TRAINS, TRAIN_ROOM, TunnelKey, Worker};
use crate::port::vxlan as port_vxlan;
use crate::port::{PortStats, Rx};

impl Worker {
    /// Services the input of epoll token `token` (nothing if there is none).
    pub(super) fn service(&mut self, token: usize) {
        match self.tokens.get(token).map(|i| i.source) {
            Some(Source::Port { port, queue }) => self.service_port(token, port, queue),
            Some(Source::Endpoint { endpoint, queue }) => self.service_endpoint(endpoint, queue),
            None => {}
        }
    }

    /// Reads and forwards up to [`BUDGET`] frames from queue `q` of port `at` (epoll
    /// token `token`), in batches where the port reads several frames per call. Frames
    /// of a batch bound for a port that sends in batches go out together at its end. A
    /// port that reads ahead one system call per frame, whose last service found a lone
    /// frame, has its first frame forwarded at once: a request/response exchange does
    /// not wait for the read that finds nothing more.
    fn service_port(&mut self, token: usize, at: PortRef, q: usize) {
        let now = self.clock.now();
        let mut out = [Rx::Empty; RX_BATCH];
        let mut done = 0;
        let caps = self.bridges[at.bridge].ports[at.port].caps;
        let mut first_alone = self.tokens.get(token).is_some_and(|i| i.lone) && caps.reads_ahead;
        while done < BUDGET && !self.bridges[at.bridge].ports[at.port].failed {
            let port = &self.bridges[at.bridge].ports[at.port];
            let want = if first_alone { 1 } else { caps.rx_batch };
            let (n, more) = match port.io.recv_batch(q, self.tx.slots(want), &mut out[..want]) {
                Ok(r) => {
                    if r.dropped > 0 {
                        port.stats.rx_dropped.fetch_add(r.dropped, Relaxed);
                    }
                    (r.n.min(want), r.more)
                }
                Err(e) => {
                    self.fail_port(at, e);
                    break;
                }
            };
            for (i, rx) in out.iter().copied().enumerate().take(n) {
                let hold = (!first_alone).then_some(i);
                self.in_slot(i, |w| w.received(at, rx, now, hold));
            }
            self.flush_tx();
            self.stats.received(n);
            done += n;
            if !more || n == 0 {
                break;
            }
            first_alone = false;
        }
        if let Some(i) = self.tokens.get_mut(token) {
            i.lone = done <= 1;
        }
    }

    /// Reads up to [`BUDGET`] datagrams (or GRO trains of datagrams) from VXLAN
    /// endpoint `e`, [`RX_TRAINS`] per system call, demultiplexes each to its tunnel
    /// port, coalesces consecutive TCP segments of a flow back into GSO frames
    /// (software GRO, so the VM's stack gets 64 KiB frames instead of 1.5 KiB ones),
    /// and forwards them.
    fn service_endpoint(&mut self, e: usize, q: usize) {
        let now = self.clock.now();
        let ep = self.endpoints[e].clone();
        let mut train = std::mem::take(&mut self.train);
        let Some(mut co) = self.coalescer.take() else { return };
        let mut target: Option<PortRef> = None;
        // The datagrams of a train share their sender and mostly their VNI: the last
        // lookup is kept, so a train costs one hash lookup, not one per datagram.
        let mut last: Option<(TunnelKey, Option<PortRef>)> = None;
        let mut got = [None; RX_TRAINS];
        let mut read = 0;
        while read < BUDGET {
            let n = match ep.recv_trains(q, &mut train, TRAIN_ROOM, &mut got) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) => {
                    tracing::debug!("VXLAN port {}: receive failed: {err}", ep.port);
                    break;
                }
            };
            read += n;
            let frames = got[..n].iter().flatten().map(|t| t.seg.map_or(1, |seg| t.len.div_ceil(usize::from(seg).max(1)))).sum();
            self.stats.received(frames);
            // Small frames (not those the coalescer builds, which go out at once: a
            // VM's TCP waits for them) are held for a batched send when several came
            // in this call.
            let mut slots = SlotCursor::for_call(frames);
            for (t, room) in got[..n].iter().zip(train.chunks_exact(TRAIN_ROOM)) {
                let Some(t) = t.filter(|t| !t.truncated) else { continue };
                for d in port_vxlan::datagrams(&room[..t.len], t.seg, &ep.stats) {
                    let Some((vni, inner)) = d else { continue };
                    let key = TunnelKey { endpoint: e, remote: t.from.ip(), vni };
                    let found = match last {
                        Some((k, v)) if k == key => v,
                        _ => {
                            let v = self.demux.get(&key).copied();
                            last = Some((key, v));
                            v
                        }
                    };
                    let Some(at) = found else {
                        ep.stats.unknown_tunnel.fetch_add(1, Relaxed);
                        continue;
                    };
                    if target != Some(at) {
                        if let Some(prev) = target {
                            co.flush_with(|f| self.deliver(prev, f, now, &mut slots));
                        }
                        target = Some(at);
                    }
                    co.push(inner, |f| self.deliver(at, f, now, &mut slots));
                }
            }
            // The frames held from this call leave together; the frame the coalescer
            // is building may go on with the next call's datagrams.
            self.flush_tx();
        }
        if let Some(prev) = target {
            // Everything held has left: the frame built last is not held either.
            co.flush_with(|f| self.deliver(prev, f, now, &mut SlotCursor::off()));
        }
        self.train = train;
        self.coalescer = Some(co);
    }

    /// Hands one decapsulated frame to the switch as received on tunnel port `at`. A
    /// frame passed on as it came, from a train of datagrams, goes into the next slot
    /// `slots` hands out, so that it can be held for a port that sends in batches (one
    /// io_uring submission or `sendmmsg` for a train's small frames instead of a system
    /// call each); the held frames leave when the slots run out or the train ends.
    fn deliver(&mut self, at: PortRef, frame: Emit<'_, Area>, now: Time, slots: &mut SlotCursor) {
        let slot = match frame {
            Emit::AsIs(_) => slots.next(),
            Emit::Built { .. } => None,
        };
        let Some((k, full)) = slot else { return self.deliver_in_buf(at, frame, now, None) };
        if full {
            self.flush_tx();
        }
        self.in_slot(k, |w| w.deliver_in_buf(at, frame, now, Some(k)));
    }

    /// Runs `f` with receive slot `k` swapped into `buf`.
    #[inline]
    fn in_slot(&mut self, k: usize, f: impl FnOnce(&mut Self)) {
        self.tx.swap(k, &mut self.buf);
        f(self);
        self.tx.swap(k, &mut self.buf);
    }

    /// [`Self::deliver`] with the frame put in `self.buf`. A frame the coalescer built
    /// is not copied: its buffer is swapped with `self.buf`.
    fn deliver_in_buf(&mut self, at: PortRef, frame: Emit<'_, Area>, now: Time, hold: Hold) {
        if self.bridges[at.bridge].ports[at.port].failed {
            return;
        }
        match frame {
            Emit::Built { buf, len, vnet } => {
                std::mem::swap(&mut self.buf, &mut buf.0);
                self.buf.set_frame(len, vnet);
            }
            Emit::AsIs(frame) => {
                let area = self.buf.rx_area();
                if frame.len() > area.len() {
                    let br = &mut self.bridges[at.bridge];
                    PortStats::inc(&br.ports[at.port].stats.rx_errors);
                    br.core.count_drop(DropReason::Oversize);
                    return;
                }
                area[..frame.len()].copy_from_slice(frame);
                self.buf.set_len(frame.len());
            }
        }
        self.ingress(at, now, hold);
    }

    /// One receive outcome of port `at` (the frame, if any, in `self.buf`).
    fn received(&mut self, at: PortRef, rx: Rx, now: Time, hold: Hold) {
        match rx {
            Rx::Empty => {}
            Rx::Bad => {
                let br = &mut self.bridges[at.bridge];
                PortStats::inc(&br.ports[at.port].stats.rx_errors);
                br.core.count_drop(DropReason::Malformed);
            }
            Rx::Frame => self.ingress(at, now, hold),
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
