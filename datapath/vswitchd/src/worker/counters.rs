//! What a worker counts about itself ([`WorkerStats`], shown by `rvs/workers`).
//!
//! Kept by the worker thread alone: plain integers, no atomics, read and cleared by
//! closures the control plane runs on the worker ([`super::WorkerHandle::query_all`]).
//! The per-port and per-bridge counters live with the ports ([`crate::port::PortStats`])
//! and the core (its drop reasons); the worker only increments them.

use std::time::Duration;

/// What a worker has done since it started or since `rvs/workers-clear`: the frames it
/// read, how often it had to be woken for them, and where its time went. Kept by the
/// worker thread alone (no atomics); read with a query.
#[derive(Debug, Clone, Copy)]
pub struct WorkerStats {
    /// Frames read from ports and datagrams from VXLAN endpoints.
    pub frames: u64,
    /// Receive calls that returned at least one frame (a batch, a datagram train).
    pub receive_calls: u64,
    /// Sleeps in `epoll_wait` that ended because input arrived: each is a thread
    /// wake-up the frames had to wait for.
    pub wakeups: u64,
    /// Time reading, switching and sending.
    pub busy: Duration,
    /// Time polling without sleeping after traffic (and yielding the CPU meanwhile).
    pub spinning: Duration,
    /// Time asleep in `epoll_wait`.
    pub sleeping: Duration,
    /// Sends (one frame, or a batch of frames to one port) and the frames they
    /// carried: OVS's "packets per output batch".
    pub out_batches: u64,
    pub out_frames: u64,
    /// Since when.
    pub since: std::time::Instant,
}

impl WorkerStats {
    pub(crate) fn new() -> WorkerStats {
        WorkerStats {
            frames: 0,
            receive_calls: 0,
            wakeups: 0,
            busy: Duration::ZERO,
            spinning: Duration::ZERO,
            sleeping: Duration::ZERO,
            out_batches: 0,
            out_frames: 0,
            since: std::time::Instant::now(),
        }
    }

    /// Counts one send of `n` frames.
    #[inline]
    pub(super) fn output(&mut self, n: usize) {
        self.out_batches += 1;
        self.out_frames += n as u64;
    }

    /// Counts one receive call that returned `n` frames.
    pub(super) fn received(&mut self, n: usize) {
        if n > 0 {
            self.frames += n as u64;
            self.receive_calls += 1;
        }
    }
}
