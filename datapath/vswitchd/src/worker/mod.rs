//! The datapath workers: threads running a run-to-completion poll loop each. Every
//! input (a port's receive queue, a VXLAN endpoint's socket: one [`crate::port::Input`]
//! each) is polled by exactly one worker; for each
//! ready input the worker reads up to [`BUDGET`] frames, asks the core
//! ([`rvs_switch::bridge::Bridge::process`]) for each and writes the copies to whichever ports
//! they go to (sending on a port another worker polls is fine: the kernel serializes
//! writers). A worker sleeps in epoll when nothing arrives, waking for input, for the
//! control plane's doorbell, and for the next MAC expiry — unless `pmd-cpu-mask`
//! makes it a polling worker pinned to a CPU of its own, which never sleeps (`pmd`; it
//! yields the CPU after a turn that found nothing, as the spin after traffic does).
//!
//! `Open_vSwitch other_config:n-workers` sets how many workers run (default: one per 4
//! CPUs, 1 to 8, [`crate::reconcile::default_workers`]). Inputs
//! are dealt to workers round-robin. Each worker holds a replica of every bridge's MAC
//! table, so the forwarding decision reads only the worker's own memory: no lock, no
//! shared cache line on the per-frame path. What a worker learns (new address, move,
//! refresh at most once a second per address) goes to the other workers through
//! bounded queues, applied when they next wake, newest news winning. A replica that
//! has not heard yet floods, which is always correct.
//!
//! The control plane never touches a worker's state directly: it sends whole new
//! configurations ([`WorkerMsg::Reconfigure`], applied between batches) and closures
//! that run on the worker thread between batches and send back owned answers
//! ([`WorkerHandle::query`]). So forwarding never waits on a lock held by a command.
//!
//! Per-frame problems are counted (port counters and the bridge's drop reasons); a port
//! whose device broke is taken out of the poll set and reported to the control plane.
//!
//! One [`Worker`] `impl` is spread over files by concern (as smoltcp spreads its
//! interface over `iface/interface/*.rs`):
//!
//! - this file: the worker's state and its run loop (wait, service, age);
//! - `config`: the configuration snapshot the control plane sends;
//! - `rt`: the running configuration: bridges, and per port its capabilities
//!   ([`PortCaps`], read once per configuration) and whether it broke;
//! - `thread`: the control plane's handle on the threads ([`WorkerHandle`]);
//! - `poll`: the inputs and their epoll tokens, the demultiplexer of shared inputs,
//!   installing a configuration, failing a port;
//! - `ingress`: reading an input, whatever it is, and the one "count, police,
//!   forward" step every received frame goes through;
//! - `egress`: the forwarding decision carried out: tagging, checksum completion,
//!   segmentation, sending and counting;
//! - `batch`: the transmit batcher holding frames for ports that send in batches;
//! - `learn`: replicating what one worker learns to the others;
//! - `pmd`: polling mode (pinning, cycles per turn and per receive queue);
//! - `counters`: what a worker counts about itself.
//!
//! No I/O happens outside the [`crate::port`] backends and the epoll calls; on the
//! per-frame path the worker allocates nothing (a test counts it) and takes no lock but
//! a policed port's bucket.

mod batch;
mod config;
mod counters;
mod egress;
mod ingress;
mod learn;
mod pmd;
mod poll;
mod rt;
#[cfg(test)]
mod tests;
mod thread;

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;

use rvs_ovsdb::Uuid;
use rvs_switch::bridge::Actions;
use rvs_switch::packet::PacketBuf;
use rvs_switch::time::{Clock, Time};
use rvs_sys::epoll::{Epoll, EventFd, Ready};

use crate::port::{DemuxKey, RxScratch};

pub use config::{DpBridge, DpConfig, DpPort};
pub use counters::WorkerStats;
pub use learn::Crew;
pub use pmd::Cycles;
pub use rt::{BridgeRt, PortCaps, PortRt};
pub use thread::WorkerHandle;

use batch::TxBatch;
use learn::LearnMsg;
use poll::{BELL, InputRt, Token};
use rt::PortRef;

/// Frames read from one port before the worker looks at the others.
pub const BUDGET: usize = 64;
/// Frames one receive call may return, for inputs that batch (AF_PACKET: recvmmsg).
const RX_BATCH: usize = 32;
/// Most workers `n-workers` may ask for.
pub const MAX_WORKERS: usize = 64;
/// Longest sleep when no MAC entry is due to expire.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// After traffic, keep polling without sleeping for this long: a frame that follows
/// closely (a reply, the next packet of a burst) then finds the worker awake, which
/// saves a thread wakeup (tens of microseconds on a virtual machine) per frame. Long
/// enough to catch the reply to a request forwarded across a VXLAN hop; each empty
/// poll yields the CPU, so the spin never delays the work it waits for. With no
/// traffic the worker sleeps: idle costs nothing.
const SPIN: Duration = Duration::from_micros(200);

/// Something the worker tells the control plane.
#[derive(Debug)]
pub enum WorkerEvent {
    /// The port's device broke (deleted, moved away): it is no longer polled. `io`
    /// identifies the backend that broke (every worker that used it may report it).
    PortFailed { iface: Uuid, name: String, io: usize, error: io::Error },
}

/// The identity of a backend (a port's, or a shared input's), as carried by
/// [`WorkerEvent::PortFailed`]: the same for every `Arc` of it, whatever trait it is
/// seen through.
pub fn io_id<T: ?Sized>(io: &Arc<T>) -> usize {
    Arc::as_ptr(io) as *const () as usize
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// Messages from the control plane.
pub enum WorkerMsg {
    Reconfigure(DpConfig, Crew),
    Run(Job),
    Stop,
}

/// The worker's state. Closures sent with [`WorkerHandle::query`] get `&mut Worker`.
pub struct Worker {
    pub bridges: Vec<BridgeRt>,
    clock: Clock,
    epoll: Epoll,
    /// The inputs of the configuration (see `poll`).
    inputs: Vec<InputRt>,
    /// The poll table: epoll token → the input queue it stands for.
    tokens: Vec<Token>,
    /// (shared input, key) → the port whose frames these are.
    demux: HashMap<(usize, DemuxKey), PortRef>,
    /// The frame being forwarded.
    buf: PacketBuf,
    /// Receive buffers for batches, and the frames held in them for batched sends.
    tx: TxBatch,
    /// Scratch buffer for software segmentation.
    seg: PacketBuf,
    /// What inputs that read ahead of the slots keep between the calls of one service
    /// (VXLAN datagram trains and the frame being coalesced).
    scratch: RxScratch,
    actions: Actions,
    events: Arc<dyn Fn(WorkerEvent) + Send + Sync>,
    crew: Crew,
    /// Learning notes from the other workers.
    inbox: Receiver<LearnMsg>,
    /// Learning notes that did not fit a peer's queue.
    pub learn_lost: u64,
    /// What the worker did, for `rvs/workers`.
    pub stats: WorkerStats,
    /// The CPU it is pinned to and polls on (`pmd-cpu-mask`), if any.
    pmd_cpu: Option<usize>,
    /// Why it does not poll although asked to.
    pmd_error: Option<String>,
    /// The CPUs the thread had before it was pinned.
    unpinned: Vec<usize>,
    /// Where its cycles went (`dpif-netdev/pmd-stats-show`).
    cycles: pmd::Cycles,
    /// Cycles per receive queue (`dpif-netdev/pmd-rxq-show`).
    usage: pmd::Usage,
    /// It has queues pinned to it (`pmd-rxq-affinity`) and polls only those.
    isolated: bool,
    /// The ports with an egress shaper (rvs's own QoS), whose queues it drains.
    shaped: Vec<PortRef>,
}

impl Worker {
    /// A worker with no configuration, woken by `bell`, hearing from its peers on
    /// `inbox`; `events` is called on its thread.
    fn new(clock: Clock, events: Arc<dyn Fn(WorkerEvent) + Send + Sync>, inbox: Receiver<LearnMsg>, bell: &EventFd) -> io::Result<Worker> {
        let epoll = Epoll::new(256)?;
        epoll.add(bell.as_fd(), BELL)?;
        Ok(Worker {
            bridges: Vec::new(),
            clock,
            epoll,
            inputs: Vec::new(),
            tokens: Vec::new(),
            demux: HashMap::new(),
            buf: PacketBuf::new(),
            tx: TxBatch::new(),
            seg: PacketBuf::with_capacity(70 * 1024),
            scratch: RxScratch::new(),
            actions: Actions::with_capacity(256),
            events,
            crew: Crew::alone(),
            inbox,
            learn_lost: 0,
            stats: WorkerStats::new(),
            pmd_cpu: None,
            pmd_error: None,
            unpinned: rvs_sys::process::allowed_cpus().unwrap_or_default(),
            cycles: pmd::Cycles::default(),
            usage: pmd::Usage::default(),
            isolated: false,
            shaped: Vec::new(),
        })
    }

    /// A lone worker running `cfg` on the caller's thread, driven by
    /// [`Worker::turn`]: for tests and fuzzing, where what a batch is must not depend
    /// on timing. (It has no doorbell: nothing is sent to it.)
    pub fn stepped(clock: Clock, cfg: DpConfig) -> io::Result<Worker> {
        let bell = EventFd::new()?;
        let mut w = Worker::new(clock, Arc::new(|_: WorkerEvent| {}), crossbeam_channel::bounded(1).1, &bell)?;
        w.apply(cfg);
        Ok(w)
    }

    /// Replaces the configuration of a [`Worker::stepped`] worker.
    pub fn reconfigure(&mut self, cfg: DpConfig) {
        self.apply(cfg);
    }

    /// One turn of the loop without waiting: services the inputs ready now, applies
    /// learning notes, ages. Returns how many inputs were ready.
    pub fn turn(&mut self) -> io::Result<usize> {
        let mut ready: Vec<Ready> = self.epoll.wait(Some(std::time::Duration::ZERO))?.collect();
        let n = ready.len();
        self.service_ready(&mut ready, |_| true);
        Ok(n)
    }

    /// Turns until a turn finds nothing ready, at most `max_turns`; whether it got there.
    pub fn turn_until_idle(&mut self, max_turns: usize) -> io::Result<bool> {
        for _ in 0..max_turns {
            if self.turn()? == 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The current time as the core sees it.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    pub fn bridge(&self, name: &str) -> Option<&BridgeRt> {
        self.bridges.iter().find(|b| b.name == name)
    }

    pub fn bridge_mut(&mut self, name: &str) -> Option<&mut BridgeRt> {
        self.bridges.iter_mut().find(|b| b.name == name)
    }

    /// This worker's number (0-based).
    pub fn id(&self) -> usize {
        self.crew.id
    }

    fn run(&mut self, rx: &Receiver<WorkerMsg>, bell: &EventFd) {
        let mut ready = Vec::with_capacity(256);
        let mut last_traffic: Option<std::time::Instant> = None;
        // Where the time since `mark` goes: see `WorkerStats`.
        let mut mark = std::time::Instant::now();
        loop {
            let polled = std::time::Instant::now();
            let polling = self.pmd_cpu.is_some();
            // Cycles are counted for polling workers only (the pmd-* reports show no
            // others): a sleeping worker reads no time-stamp counter.
            let c0 = if polling { rvs_sys::process::cycles() } else { 0 };
            self.stats.busy += polled - mark;
            let spinning = polling || last_traffic.is_some_and(|t| polled - t < SPIN);
            let timeout = if spinning { Duration::ZERO } else { self.sleep_time() };
            match self.epoll.wait(Some(timeout)) {
                Ok(evs) => ready.extend(evs),
                Err(e) => {
                    tracing::error!("datapath: epoll_wait failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if spinning && ready.is_empty() {
                // Let whatever else wants this CPU (the VM's own processing, the
                // peer's switch) run first: spinning must not delay the reply it
                // waits for. A polling worker alone on its CPU gets it straight
                // back (the kernel returns at once when nothing else is runnable);
                // on a CPU it shares — the kernel's per-CPU threads, or another
                // switch's poller on a small test machine — the others get a turn
                // now instead of after a whole scheduler slice (milliseconds).
                std::thread::yield_now();
            }
            mark = std::time::Instant::now();
            let traffic = ready.iter().any(|r| r.token != BELL);
            if spinning {
                self.stats.spinning += mark - polled;
            } else {
                self.stats.sleeping += mark - polled;
                self.stats.wakeups += u64::from(traffic);
            }
            if traffic {
                last_traffic = Some(mark);
            }
            let frames = self.stats.frames;
            let go_on = self.service_ready(&mut ready, |w| {
                bell.drain();
                w.handle_messages(rx)
            });
            if !go_on {
                return;
            }
            if polling && self.pmd_cpu.is_some() {
                let spent = rvs_sys::process::cycles().wrapping_sub(c0);
                if self.stats.frames != frames {
                    self.cycles.processing += spent;
                } else {
                    self.cycles.idle += spent;
                }
                self.usage.turn(spent, mark);
            }
        }
    }

    /// The work of one turn of the loop, after the wait: applies the peers' learning
    /// notes, services the `ready` inputs (calling `on_bell` for the doorbell: `false`
    /// from it stops the turn and the worker) and ages the MAC tables that are due.
    /// Tests drive a worker through this, turn by turn, without its thread.
    fn service_ready(&mut self, ready: &mut Vec<Ready>, mut on_bell: impl FnMut(&mut Worker) -> bool) -> bool {
        self.receive_notes();
        for r in ready.drain(..) {
            if r.token == BELL {
                if !on_bell(self) {
                    return false;
                }
            } else {
                if self.pmd_cpu.is_some() {
                    let c0 = rvs_sys::process::cycles();
                    self.service(r.token as usize);
                    self.usage.queue(r.token as usize, rvs_sys::process::cycles().wrapping_sub(c0));
                } else {
                    self.service(r.token as usize);
                }
                self.publish_notes();
                self.log_flaps();
            }
        }
        let now = self.clock.now();
        for b in &mut self.bridges {
            if b.core.poll_timeout().is_some_and(|t| t <= now) {
                b.core.age(now);
            }
        }
        if !self.shaped.is_empty() {
            self.drain_shaped(now);
        }
        true
    }

    fn sleep_time(&self) -> Duration {
        let now = self.clock.now();
        let shaped = if self.shaped.is_empty() { None } else { self.shaped_wake(now) };
        let next = self.bridges.iter().filter_map(|b| b.core.poll_timeout()).chain(shaped).min();
        match next {
            Some(t) => Duration::from_millis(t.since(now)).min(MAX_SLEEP),
            None => MAX_SLEEP,
        }
    }

    /// Applies queued messages; `false` on Stop.
    fn handle_messages(&mut self, rx: &Receiver<WorkerMsg>) -> bool {
        while let Ok(m) = rx.try_recv() {
            match m {
                WorkerMsg::Reconfigure(cfg, crew) => {
                    self.crew = crew;
                    self.apply(cfg);
                }
                WorkerMsg::Run(job) => job(self),
                WorkerMsg::Stop => {
                    self.apply(DpConfig::default());
                    return false;
                }
            }
        }
        true
    }
}
