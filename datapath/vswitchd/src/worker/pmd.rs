//! Polling mode (`Open_vSwitch other_config:pmd-cpu-mask`, OVS-DPDK's PMD threads): a
//! worker pinned to one CPU that never sleeps, and where its cycles go.
//!
//! A polling worker asks epoll for ready inputs without waiting (one system call per
//! turn for all its inputs) and services them; it never blocks, so a frame finds it
//! awake and costs no thread wake-up — the price is the whole CPU, busy even when idle.
//! A turn that found nothing ends with `sched_yield`: alone on its CPU the worker gets
//! it straight back, and a task that shares the CPU (a kernel thread bound to it,
//! another switch's poller) runs at once rather than after the worker's slice.
//! Pinning happens on the worker's own thread when a configuration names its CPU;
//! one without (or a failed pin) gives the thread back the CPUs it had.
//!
//! Cycles ([`rvs_sys::process::cycles`], the time-stamp counter) are counted per turn:
//! a turn that received frames is processing, one that did not is idle; and per
//! receive queue, the cycles spent servicing it, kept for the last six 10-second
//! intervals (`dpif-netdev/pmd-rxq-show`'s "last 60 seconds"), as OVS keeps them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Worker;

/// Length of one interval of per-queue usage.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Intervals kept (OVS's `PMD_INTERVAL_MAX`).
pub const INTERVALS: usize = 6;

/// Where a worker's cycles went since it started or since `pmd-stats-clear`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cycles {
    /// Turns that found no frame.
    pub idle: u64,
    /// Turns that received frames (reading, switching, sending).
    pub processing: u64,
}

/// A queue's row in `pmd-rxq-show`: (port or input, queue, usage percent if known).
pub type QueueUsage = (String, usize, Option<u64>);

/// Per-queue usage over the last intervals.
#[derive(Debug, Default)]
pub struct Usage {
    /// Cycles of the current interval per poll-table token, and in total.
    current: Vec<u64>,
    current_total: u64,
    started: Option<Instant>,
    /// Completed intervals, newest last: (total cycles, cycles per token).
    done: VecDeque<(u64, Vec<u64>)>,
}

impl Usage {
    /// Forgets everything (a new poll table).
    pub fn reset(&mut self, tokens: usize) {
        self.current = vec![0; tokens];
        self.current_total = 0;
        self.started = None;
        self.done.clear();
    }

    /// Adds `cycles` spent on `token`.
    #[inline]
    pub fn queue(&mut self, token: usize, cycles: u64) {
        if let Some(c) = self.current.get_mut(token) {
            *c += cycles;
        }
    }

    /// Adds a turn's `cycles` to the total and closes the interval when it is due.
    #[inline]
    pub fn turn(&mut self, cycles: u64, now: Instant) {
        self.current_total += cycles;
        let started = *self.started.get_or_insert(now);
        if now.duration_since(started) >= INTERVAL {
            let fresh = vec![0; self.current.len()];
            let per = std::mem::replace(&mut self.current, fresh);
            self.done.push_back((std::mem::take(&mut self.current_total), per));
            if self.done.len() > INTERVALS {
                self.done.pop_front();
            }
            self.started = Some(now);
        }
    }

    /// Per token, the share (percent) of the cycles of the last `n` completed
    /// intervals it took, and the share no queue took (overhead); `None` before an
    /// interval has completed.
    pub fn shares(&self, n: usize) -> Option<(Vec<u64>, u64)> {
        let last = || self.done.iter().skip(self.done.len().saturating_sub(n));
        let total: u64 = last().map(|(t, _)| t).sum();
        if total == 0 {
            return None;
        }
        let per: Vec<u64> = (0..self.current.len()).map(|i| last().map(|(_, p)| p.get(i).copied().unwrap_or(0)).sum()).collect();
        let used: u64 = per.iter().sum();
        let pct = |c: u64| c.saturating_mul(100) / total;
        Some((per.iter().map(|&c| pct(c)).collect(), pct(total.saturating_sub(used))))
    }
}

impl Worker {
    /// Pins this worker (on its own thread) to `cpu`, or unpins it (`None`): the
    /// configuration's [`super::DpConfig::pmd_cpus`] entry for this worker.
    pub(super) fn set_pmd(&mut self, cpu: Option<usize>) {
        if cpu == self.pmd_cpu {
            return;
        }
        let pinned = match cpu {
            Some(c) => rvs_sys::process::pin_thread(&[c]),
            None => rvs_sys::process::pin_thread(&self.unpinned),
        };
        match (cpu, pinned) {
            (Some(c), Ok(())) => {
                tracing::info!("datapath worker {}: polling on CPU {c}", self.crew.id);
                self.pmd_cpu = Some(c);
                self.pmd_error = None;
            }
            (Some(c), Err(e)) => {
                let e = format!("cannot pin to CPU {c} ({e}): sleeping when idle");
                tracing::error!("datapath worker {}: {e}", self.crew.id);
                self.pmd_error = Some(e);
                self.pmd_cpu = None;
            }
            (None, r) => {
                if let Err(e) = r {
                    tracing::warn!("datapath worker {}: cannot unpin ({e})", self.crew.id);
                }
                tracing::info!("datapath worker {}: no longer polling; sleeping when idle", self.crew.id);
                self.pmd_cpu = None;
                self.pmd_error = None;
            }
        }
        self.cycles = Cycles::default();
    }

    /// The CPU this worker polls on, if it is a polling worker.
    pub fn pmd_cpu(&self) -> Option<usize> {
        self.pmd_cpu
    }

    /// Why this worker does not poll although the configuration asked it to.
    pub fn pmd_error(&self) -> Option<&str> {
        self.pmd_error.as_deref()
    }

    /// Where its cycles went (see [`Cycles`]).
    pub fn cycles(&self) -> Cycles {
        self.cycles
    }

    /// Whether it polls only queues pinned to it (`pmd-rxq-affinity`).
    pub fn isolated(&self) -> bool {
        self.isolated
    }

    /// Forgets the cycles and queue usage counted so far (`pmd-stats-clear`).
    pub fn clear_cycles(&mut self) {
        self.cycles = Cycles::default();
        self.usage.reset(self.tokens.len());
    }

    /// The queues this worker polls with their usage over the last `intervals`
    /// intervals (percent; `None` when no interval has completed yet), and the overhead.
    pub fn queue_usage(&self, intervals: usize) -> (Vec<QueueUsage>, Option<u64>) {
        let shares = self.usage.shares(intervals);
        let rows = self
            .tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| t.mine)
            .map(|(i, t)| (self.input_label(t), t.queue, shares.as_ref().map(|(per, _)| per.get(i).copied().unwrap_or(0))))
            .collect();
        (rows, shares.map(|(_, overhead)| overhead))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_shared_over_completed_intervals() {
        let mut u = Usage::default();
        u.reset(3);
        let t0 = Instant::now();
        u.turn(0, t0);
        u.queue(0, 30);
        u.queue(2, 10);
        u.turn(100, t0 + Duration::from_secs(1));
        assert_eq!(u.shares(INTERVALS), None, "no interval has completed");
        u.turn(0, t0 + INTERVAL);
        assert_eq!(u.shares(INTERVALS), Some((vec![30, 0, 10], 60)));
        // Intervals older than the last six drop out.
        for k in 2..=(INTERVALS as u32 + 1) {
            u.queue(1, 50);
            u.turn(100, t0 + INTERVAL * k);
        }
        assert_eq!(u.shares(INTERVALS), Some((vec![0, 50, 0], 50)));
        assert_eq!(u.shares(1), Some((vec![0, 50, 0], 50)));
        u.queue(7, 1);
    }
}
