//! The datapath workers: threads running a run-to-completion poll loop each. Every
//! input (a port's fd, a VXLAN receive socket) is polled by exactly one worker; for each
//! ready input the worker reads up to [`BUDGET`] frames, asks the core
//! ([`rvs_switch::bridge::Bridge::process`]) for each and writes the copies to whichever ports
//! they go to (sending on a port another worker polls is fine: the kernel serializes
//! writers). A worker sleeps in epoll when nothing arrives (no busy polling), waking
//! for input, for the control plane's doorbell, and for the next MAC expiry.
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

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use rvs_switch::bridge::police::Policer;
use rvs_switch::bridge::{Actions, Bridge, BridgeConfig, DropReason, LearnNote, PortConfig, Verdict};
use rvs_ovsdb::Uuid;
use rvs_switch::offload::{self, Coalescer, Emit, Layer, Segmenter};
use rvs_switch::packet::{Area, PacketBuf};
use crate::port::vxlan as port_vxlan;
use crate::port::vxlan::Endpoint;
use crate::port::{PortIo, PortStats, Rx};
use rvs_sys::epoll::{Epoll, EventFd};
use rvs_switch::time::{Clock, Time};
use rvs_switch::types::{MacAddr, OfPort, VlanId, Vni};

/// Frames read from one port before the worker looks at the others.
pub const BUDGET: usize = 64;
/// Frames one receive call may return, for ports that batch (AF_PACKET: recvmmsg).
const RX_BATCH: usize = 32;
/// Datagrams or GRO trains one receive call on a VXLAN endpoint may return (recvmmsg),
/// each into its own [`TRAIN_ROOM`] bytes: a kernel peer sends small frames one
/// datagram at a time, which then cost one system call per few frames, not each.
const RX_TRAINS: usize = 8;
/// Room for one GRO train: 64 KiB of datagrams and slack.
const TRAIN_ROOM: usize = 65_536 + 4096;
/// Most workers `n-workers` may ask for.
pub const MAX_WORKERS: usize = 64;
/// Learning notes queued for one worker before further ones are dropped (and counted).
const LEARN_QUEUE: usize = 8192;
/// Longest sleep when no MAC entry is due to expire.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// epoll token of the doorbell.
const BELL: u64 = u64::MAX;
/// After traffic, keep polling without sleeping for this long: a frame that follows
/// closely (a reply, the next packet of a burst) then finds the worker awake, which
/// saves a thread wakeup (tens of microseconds on a virtual machine) per frame. Long
/// enough to catch the reply to a request forwarded across a VXLAN hop; each empty
/// poll yields the CPU, so the spin never delays the work it waits for. With no
/// traffic the worker sleeps: idle costs nothing.
const SPIN: Duration = Duration::from_micros(200);

/// A port as the worker sees it.
#[derive(Clone)]
pub struct DpPort {
    pub iface: Uuid,
    pub name: String,
    pub ofport: OfPort,
    pub io: Arc<dyn PortIo>,
    pub stats: Arc<PortStats>,
    /// VLAN policy etc.; `core.key` must be the ofport.
    pub core: PortConfig,
    /// For a tunnel port: where its traffic arrives.
    pub tunnel: Option<TunnelKey>,
    /// Ingress policing, if configured: one bucket, shared by the workers polling the
    /// port's queues (a lock taken only on policed ports).
    pub policer: Option<Arc<Mutex<Policer>>>,
}

impl DpPort {
    /// Whether ingress policing lets a received frame of `len` bytes in.
    #[inline]
    fn admit(&self, now: Time, len: usize) -> bool {
        self.policer.as_ref().is_none_or(|p| p.lock().unwrap_or_else(|e| e.into_inner()).admit(now, len))
    }
}

/// How received VXLAN traffic finds its tunnel port: the endpoint it arrives on (index
/// into [`DpConfig::endpoints`]), the outer source address and the VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TunnelKey {
    pub endpoint: usize,
    pub remote: IpAddr,
    pub vni: Vni,
}

/// A bridge as the worker sees it.
#[derive(Clone)]
pub struct DpBridge {
    pub uuid: Uuid,
    pub name: String,
    pub cfg: BridgeConfig,
    pub ports: Vec<DpPort>,
    /// Static MAC entries (`fdb/add`) to (re)install: (VLAN, MAC, port).
    pub statics: Vec<(VlanId, MacAddr, OfPort)>,
}

/// A whole datapath configuration.
#[derive(Default, Clone)]
pub struct DpConfig {
    pub bridges: Vec<DpBridge>,
    /// Shared VXLAN receive sockets.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Worker threads wanted (`n-workers`); 0 means 1.
    pub workers: usize,
}

/// Something the worker polls: (bridge, port, receive queue) or (VXLAN endpoint,
/// receive queue).
#[derive(Debug, Clone, Copy)]
enum Source {
    Port(usize, usize, usize),
    Endpoint(usize, usize),
}

/// Something the worker tells the control plane.
#[derive(Debug)]
pub enum WorkerEvent {
    /// The port's device broke (deleted, moved away): it is no longer polled. `io`
    /// identifies the backend that broke (every worker that used it may report it).
    PortFailed { iface: Uuid, name: String, io: usize, error: io::Error },
}

/// The identity of a port backend, as carried by [`WorkerEvent::PortFailed`].
pub fn io_id(io: &Arc<dyn PortIo>) -> usize {
    Arc::as_ptr(io) as *const () as usize
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// A learning note on its way to another worker. Bridges are named by index within
/// the configuration of generation `generation`, ports by their stable key.
#[derive(Debug, Clone, Copy)]
struct LearnMsg {
    generation: u64,
    bridge: usize,
    port_key: u32,
    note: LearnNote,
}

/// A worker's place among the others.
#[derive(Clone)]
pub struct Crew {
    id: usize,
    n: usize,
    /// The other workers' learning queues.
    peers: Vec<Sender<LearnMsg>>,
    /// Generation of the configuration this came with.
    generation: u64,
}

impl Crew {
    fn alone() -> Crew {
        Crew { id: 0, n: 1, peers: Vec::new(), generation: 0 }
    }
}

/// Messages from the control plane.
pub enum WorkerMsg {
    Reconfigure(DpConfig, Crew),
    Run(Job),
    Stop,
}

/// One bridge at run time: the core and the I/O of its ports (same index).
pub struct BridgeRt {
    pub uuid: Uuid,
    pub name: String,
    pub core: Bridge,
    pub ports: Vec<DpPort>,
    failed: Vec<bool>,
}

/// The worker's state. Closures sent with [`WorkerHandle::query`] get `&mut Worker`.
pub struct Worker {
    pub bridges: Vec<BridgeRt>,
    pub endpoints: Vec<Arc<Endpoint>>,
    clock: Clock,
    epoll: Epoll,
    /// Token → what to service, and whether this worker polls it.
    tokens: Vec<(Source, bool)>,
    /// Token → whether its last service found at most one frame (see
    /// [`PortIo::reads_ahead`]).
    lone: Vec<bool>,
    /// (endpoint, outer source, VNI) → (bridge, port).
    demux: HashMap<TunnelKey, (usize, usize)>,
    buf: PacketBuf,
    /// Receive buffers for batched ports; each is swapped into `buf` to be forwarded.
    batch: Vec<PacketBuf>,
    /// Which of `batch` is in `buf` now (while a receive batch is forwarded).
    cur: Option<usize>,
    /// While a VXLAN train is forwarded: the slot of `batch` the next frame passed on
    /// as it came is put in, so that it can be held for a batched send.
    slot: Option<usize>,
    /// Frames of the current receive batch held for ports that send in batches:
    /// (bridge, port, index in `batch`), in arrival order; sent when the batch ends.
    pending: Vec<(usize, usize, usize)>,
    /// Scratch buffer for software segmentation.
    seg: PacketBuf,
    /// Receive buffer for VXLAN datagram trains (UDP GRO): [`RX_TRAINS`] pieces of
    /// [`TRAIN_ROOM`] bytes.
    train: Vec<u8>,
    /// Software GRO for decapsulated TCP segments, building in a spare packet buffer
    /// that is swapped with `buf` to forward the frame built.
    coalescer: Option<Coalescer<Area>>,
    actions: Actions,
    events: Arc<dyn Fn(WorkerEvent) + Send + Sync>,
    crew: Crew,
    /// Learning notes from the other workers.
    inbox: Receiver<LearnMsg>,
    /// Learning notes that did not fit a peer's queue.
    pub learn_lost: u64,
    /// What the worker did, for `rvs/workers`.
    pub stats: WorkerStats,
}

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
            since: std::time::Instant::now(),
        }
    }

    /// Counts one receive call that returned `n` frames.
    fn received(&mut self, n: usize) {
        if n > 0 {
            self.frames += n as u64;
            self.receive_calls += 1;
        }
    }
}

/// One worker thread as the control plane holds it.
struct Thread {
    tx: Sender<WorkerMsg>,
    bell: Arc<EventFd>,
    learn: Sender<LearnMsg>,
    join: Option<JoinHandle<()>>,
}

impl Thread {
    fn send(&self, m: WorkerMsg) {
        // The worker only goes away at Stop; a send error then is harmless.
        let _ = self.tx.send(m);
        self.bell.notify();
    }

    fn join(&mut self) {
        if let Some(t) = self.join.take() {
            let _ = t.join();
        }
    }
}

/// The control plane's end: the worker threads.
pub struct WorkerHandle {
    clock: Clock,
    events: Arc<dyn Fn(WorkerEvent) + Send + Sync>,
    threads: Vec<Thread>,
    generation: u64,
}

impl WorkerHandle {
    /// Starts one worker thread (more follow a configuration that asks for them).
    /// `events` is called on the worker threads.
    pub fn spawn(clock: Clock, events: impl Fn(WorkerEvent) + Send + Sync + 'static) -> io::Result<WorkerHandle> {
        let mut h = WorkerHandle { clock, events: Arc::new(events), threads: Vec::new(), generation: 0 };
        let t = h.spawn_one(0)?;
        h.threads.push(t);
        Ok(h)
    }

    fn spawn_one(&self, id: usize) -> io::Result<Thread> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (learn, inbox) = crossbeam_channel::bounded(LEARN_QUEUE);
        let bell = Arc::new(EventFd::new()?);
        let epoll = Epoll::new(256)?;
        epoll.add(bell.as_fd(), BELL)?;
        let mut w = Worker {
            bridges: Vec::new(),
            endpoints: Vec::new(),
            clock: self.clock,
            epoll,
            tokens: Vec::new(),
            lone: Vec::new(),
            demux: HashMap::new(),
            buf: PacketBuf::new(),
            batch: (0..RX_BATCH).map(|_| PacketBuf::new()).collect(),
            cur: None,
            slot: None,
            pending: Vec::with_capacity(RX_BATCH),
            seg: PacketBuf::with_capacity(70 * 1024),
            train: vec![0u8; RX_TRAINS * TRAIN_ROOM],
            coalescer: Some(Coalescer::new(Area(PacketBuf::new()))),
            actions: Actions::with_capacity(256),
            events: self.events.clone(),
            crew: Crew::alone(),
            inbox,
            learn_lost: 0,
            stats: WorkerStats::new(),
        };
        let b = bell.clone();
        let join = std::thread::Builder::new().name(format!("rvs-datapath{id}")).spawn(move || w.run(&rx, &b))?;
        Ok(Thread { tx, bell, learn, join: Some(join) })
    }

    /// Number of worker threads running.
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Replaces the configuration (applied by each worker between batches), starting or
    /// stopping workers first if `cfg.workers` asks for another number.
    pub fn reconfigure(&mut self, cfg: DpConfig) {
        let want = cfg.workers.clamp(1, MAX_WORKERS);
        while self.threads.len() < want {
            match self.spawn_one(self.threads.len()) {
                Ok(t) => self.threads.push(t),
                Err(e) => {
                    tracing::error!("cannot start datapath worker {}: {e}; running {}", self.threads.len(), self.threads.len());
                    break;
                }
            }
        }
        let mut gone: Vec<Thread> = self.threads.drain(want.min(self.threads.len())..).collect();
        for t in &gone {
            t.send(WorkerMsg::Stop);
        }
        for t in &mut gone {
            t.join();
        }
        self.generation += 1;
        let n = self.threads.len();
        let learns: Vec<Sender<LearnMsg>> = self.threads.iter().map(|t| t.learn.clone()).collect();
        for (id, t) in self.threads.iter().enumerate() {
            let peers = learns.iter().enumerate().filter(|&(i, _)| i != id).map(|(_, s)| s.clone()).collect();
            t.send(WorkerMsg::Reconfigure(cfg.clone(), Crew { id, n, peers, generation: self.generation }));
        }
    }

    /// Runs `f` on the first worker between batches; the answer arrives on the
    /// receiver. Every worker holds every bridge and port, so this is the view of the
    /// MAC tables and the configuration `fdb/show` and the like print.
    pub fn query<R: Send + 'static>(&self, f: impl FnOnce(&mut Worker) -> R + Send + 'static) -> tokio::sync::oneshot::Receiver<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.threads[0].send(WorkerMsg::Run(Box::new(move |w| {
            let _ = tx.send(f(w));
        })));
        rx
    }

    /// Runs `f` on every worker (to change every replica, or to sum counters).
    pub fn query_all<R: Send + 'static>(&self, f: impl Fn(&mut Worker) -> R + Send + Sync + 'static) -> Vec<tokio::sync::oneshot::Receiver<R>> {
        let f = Arc::new(f);
        self.threads
            .iter()
            .map(|t| {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let f = f.clone();
                t.send(WorkerMsg::Run(Box::new(move |w| {
                    let _ = tx.send(f(w));
                })));
                rx
            })
            .collect()
    }

    /// Stops the threads and waits for them; the configuration (and every port) is
    /// dropped.
    pub fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for t in &self.threads {
            t.send(WorkerMsg::Stop);
        }
        for t in &mut self.threads {
            t.join();
        }
        self.threads.clear();
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.stop_all();
    }
}

impl Worker {
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

    fn run(&mut self, rx: &Receiver<WorkerMsg>, bell: &EventFd) {
        let mut ready = Vec::with_capacity(256);
        let mut last_traffic: Option<std::time::Instant> = None;
        // Where the time since `mark` goes: see `WorkerStats`.
        let mut mark = std::time::Instant::now();
        loop {
            let polled = std::time::Instant::now();
            self.stats.busy += polled - mark;
            let spinning = last_traffic.is_some_and(|t| polled - t < SPIN);
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
                // waits for.
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
            self.receive_notes();
            for r in ready.drain(..) {
                if r.token == BELL {
                    bell.drain();
                    if !self.handle_messages(rx) {
                        return;
                    }
                } else {
                    match self.tokens.get(r.token as usize) {
                        Some(&(Source::Port(b, p, q), _)) => self.service_port(r.token as usize, b, p, q),
                        Some(&(Source::Endpoint(e, q), _)) => self.service_endpoint(e, q),
                        None => {}
                    }
                    self.publish_notes();
                }
            }
            let now = self.clock.now();
            for b in &mut self.bridges {
                if b.core.poll_timeout().is_some_and(|t| t <= now) {
                    b.core.age(now);
                }
            }
        }
    }

    fn sleep_time(&self) -> Duration {
        let now = self.clock.now();
        let next = self.bridges.iter().filter_map(|b| b.core.poll_timeout()).min();
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

    /// This worker's number (0-based).
    pub fn id(&self) -> usize {
        self.crew.id
    }

    /// The inputs this worker polls: port names (`NAME#Q` for queue Q of a port with
    /// several) and VXLAN endpoints (`vxlan:PORT`).
    pub fn inputs(&self) -> Vec<String> {
        self.tokens.iter().filter(|&&(_, mine)| mine).map(|&(src, _)| self.input_name(src)).collect()
    }

    /// An input as `rvs/workers` names it: the port or `vxlan:PORT`, with `#QUEUE` when
    /// it has several queues.
    fn input_name(&self, src: Source) -> String {
        match src {
            Source::Port(b, p, q) => {
                let port = &self.bridges[b].ports[p];
                if port.io.queues() > 1 { format!("{}#{q}", port.name) } else { port.name.clone() }
            }
            Source::Endpoint(e, q) => {
                let ep = &self.endpoints[e];
                if ep.queues() > 1 { format!("vxlan:{}#{q}", ep.port) } else { format!("vxlan:{}", ep.port) }
            }
        }
    }

    /// The inputs whose backend has a say in how they are read, with that way
    /// ([`PortIo::rx_mode`]).
    pub fn rx_modes(&self) -> Vec<(String, &'static str)> {
        let mode = |src| match src {
            Source::Port(b, p, q) => self.bridges[b].ports[p].io.rx_mode(q),
            Source::Endpoint(..) => None,
        };
        self.tokens.iter().filter(|&&(_, mine)| mine).filter_map(|&(src, _)| Some((self.input_name(src), mode(src)?))).collect()
    }

    /// Applies the learning notes other workers sent.
    fn receive_notes(&mut self) {
        while let Ok(m) = self.inbox.try_recv() {
            if m.generation != self.crew.generation {
                continue;
            }
            if let Some(b) = self.bridges.get_mut(m.bridge) {
                b.core.apply_note(m.port_key, m.note);
            }
        }
    }

    /// Sends what this worker learned to the others.
    fn publish_notes(&mut self) {
        if self.crew.peers.is_empty() {
            return;
        }
        let generation = self.crew.generation;
        for (bi, b) in self.bridges.iter_mut().enumerate() {
            let ports = &b.ports;
            for note in b.core.drain_journal() {
                let Some(p) = ports.get(note.port as usize) else { continue };
                let m = LearnMsg { generation, bridge: bi, port_key: p.core.key, note };
                for peer in &self.crew.peers {
                    if peer.try_send(m).is_err() {
                        self.learn_lost += 1;
                    }
                }
            }
        }
    }

    /// Installs a new configuration, keeping the learned state of bridges and ports
    /// that stay.
    fn apply(&mut self, cfg: DpConfig) {
        for b in &self.bridges {
            for (p, failed) in b.ports.iter().zip(&b.failed) {
                if !failed {
                    unpoll(&self.epoll, p);
                }
            }
        }
        for e in &self.endpoints {
            for q in 0..e.queues() {
                let _ = self.epoll.delete(e.fd(q));
            }
        }
        let mut old: Vec<BridgeRt> = std::mem::take(&mut self.bridges);
        for nb in cfg.bridges {
            let cores: Vec<PortConfig> = nb.ports.iter().map(|p| p.core.clone()).collect();
            let core = match old.iter().position(|o| o.uuid == nb.uuid) {
                Some(i) => {
                    let mut c = old.swap_remove(i).core;
                    c.reconfigure(nb.cfg, cores);
                    c
                }
                None => Bridge::new(nb.cfg, cores),
            };
            let n = nb.ports.len();
            let mut rt = BridgeRt { uuid: nb.uuid, name: nb.name, core, ports: nb.ports, failed: vec![false; n] };
            rt.core.set_journaling(self.crew.n > 1);
            for (vlan, mac, ofport) in nb.statics {
                if let Some(i) = rt.core.port_index(u32::from(ofport.get())) {
                    rt.core.fdb_mut().add_static(vlan, mac, i);
                }
            }
            self.bridges.push(rt);
        }
        self.endpoints = cfg.endpoints;
        self.tokens.clear();
        self.demux.clear();
        // Every worker numbers the inputs alike; queue Q of a port with several goes
        // to worker Q, inputs with one queue are dealt round-robin.
        let (id, n) = (self.crew.id, self.crew.n);
        let mut dealt = 0usize;
        let mut deal = |queues: usize, q: usize| {
            let w = if queues > 1 {
                q
            } else {
                dealt += 1;
                dealt - 1
            };
            w % n == id
        };
        for (bi, b) in self.bridges.iter_mut().enumerate() {
            for (pi, p) in b.ports.iter().enumerate() {
                if let Some(k) = p.tunnel {
                    self.demux.insert(k, (bi, pi));
                }
                let queues = p.io.queues();
                for q in 0..queues {
                    let Some(fd) = p.io.queue_fd(q) else { continue };
                    let token = self.tokens.len();
                    let mine = deal(queues, q);
                    self.tokens.push((Source::Port(bi, pi, q), mine));
                    if mine {
                        if let Err(e) = self.epoll.add(fd, token as u64) {
                            tracing::error!("datapath: cannot poll port {}: {e}", p.name);
                            b.failed[pi] = true;
                        }
                    }
                }
            }
        }
        for (ei, e) in self.endpoints.iter().enumerate() {
            let queues = e.queues();
            for q in 0..queues {
                let token = self.tokens.len();
                let mine = deal(queues, q);
                self.tokens.push((Source::Endpoint(ei, q), mine));
                if mine {
                    if let Err(err) = self.epoll.add(e.fd(q), token as u64) {
                        tracing::error!("datapath: cannot poll VXLAN port {}: {err}", e.port);
                    }
                }
            }
        }
        self.lone = vec![true; self.tokens.len()];
        // `old` (bridges that are gone) and the replaced ports drop here, closing fds.
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
        let mut target: Option<(usize, usize)> = None;
        // The datagrams of a train share their sender and mostly their VNI: the last
        // lookup is kept, so a train costs one hash lookup, not one per datagram.
        let mut last: Option<(TunnelKey, Option<(usize, usize)>)> = None;
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
            self.slot = (frames > 1).then_some(0);
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
                    let Some((b, p)) = found else {
                        ep.stats.unknown_tunnel.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        continue;
                    };
                    if target != Some((b, p)) {
                        if let Some((tb, tp)) = target {
                            co.flush_with(|f| self.deliver(tb, tp, f, now));
                        }
                        target = Some((b, p));
                    }
                    co.push(inner, |f| self.deliver(b, p, f, now));
                }
            }
            // The frames held from this call leave together; the frame the coalescer
            // is building may go on with the next call's datagrams.
            self.flush_tx();
        }
        if let Some((tb, tp)) = target {
            co.flush_with(|f| self.deliver(tb, tp, f, now));
        }
        self.slot = None;
        self.train = train;
        self.coalescer = Some(co);
    }

    /// Hands one decapsulated frame to the switch as received on tunnel port `p` of
    /// bridge `b`. A frame passed on as it came, from a train of datagrams, goes into
    /// the next slot of `batch`, so that it can be held for a port that sends in
    /// batches (one io_uring submission or `sendmmsg` for a train's small frames
    /// instead of a system call each); the held frames leave when the slots run out
    /// or the train ends.
    fn deliver(&mut self, b: usize, p: usize, frame: Emit<'_, Area>, now: Time) {
        let Some(mut k) = self.slot.filter(|_| matches!(frame, Emit::AsIs(_))) else { return self.deliver_in_buf(b, p, frame, now) };
        if k == RX_BATCH {
            self.flush_tx();
            k = 0;
        }
        self.in_slot(k, true, |w| w.deliver_in_buf(b, p, frame, now));
        self.slot = Some(k + 1);
    }

    /// Runs `f` with `batch[k]` swapped into `buf`; with `hold`, a frame `f` forwards
    /// to a port that sends in batches is held in that slot until [`Self::flush_tx`].
    fn in_slot(&mut self, k: usize, hold: bool, f: impl FnOnce(&mut Self)) {
        std::mem::swap(&mut self.buf, &mut self.batch[k]);
        self.cur = hold.then_some(k);
        f(self);
        self.cur = None;
        std::mem::swap(&mut self.buf, &mut self.batch[k]);
    }

    /// [`Self::deliver`] with the frame put in `self.buf`. A frame the coalescer built
    /// is not copied: its buffer is swapped with `self.buf`.
    fn deliver_in_buf(&mut self, b: usize, p: usize, frame: Emit<'_, Area>, now: Time) {
        if self.bridges[b].failed[p] {
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
                    let br = &mut self.bridges[b];
                    PortStats::inc(&br.ports[p].stats.rx_errors);
                    br.core.count_drop(DropReason::Oversize);
                    return;
                }
                area[..frame.len()].copy_from_slice(frame);
                self.buf.set_len(frame.len());
            }
        }
        let br = &mut self.bridges[b];
        let port = &mut br.ports[p];
        let len = self.buf.len();
        port.stats.rx(len, self.buf.frame().first().is_some_and(|b| b & 1 == 1));
        if !port.admit(now, len) {
            PortStats::inc(&port.stats.rx_dropped);
            br.core.count_drop(DropReason::Policed);
            return;
        }
        if let Err((fb, fp, err)) = self.forward(b, p, now) {
            self.fail_port(fb, fp, err);
        }
    }

    /// Takes a broken port out of the poll set and tells the control plane.
    fn fail_port(&mut self, b: usize, p: usize, error: io::Error) {
        let br = &mut self.bridges[b];
        if br.failed[p] {
            return;
        }
        br.failed[p] = true;
        let port = &br.ports[p];
        unpoll(&self.epoll, port);
        (self.events)(WorkerEvent::PortFailed { iface: port.iface, name: port.name.clone(), io: io_id(&port.io), error });
    }

    /// Reads and forwards up to [`BUDGET`] frames from queue `q` of port `p` of
    /// bridge `b` (epoll token `token`), in batches where the port reads several frames
    /// per call. Frames of a batch bound for a port that sends in batches go out
    /// together at its end. A port that reads ahead one system call per frame, whose
    /// last service found a lone frame, has its first frame forwarded at once: a
    /// request/response exchange does not wait for the read that finds nothing more.
    fn service_port(&mut self, token: usize, b: usize, p: usize, q: usize) {
        let now = self.clock.now();
        let mut out = [Rx::Empty; RX_BATCH];
        let mut done = 0;
        let mut first_alone = self.lone.get(token).copied().unwrap_or(false) && self.bridges[b].ports[p].io.reads_ahead();
        while done < BUDGET && !self.bridges[b].failed[p] {
            let io = &self.bridges[b].ports[p].io;
            let want = if first_alone { 1 } else { io.batch().clamp(1, RX_BATCH) };
            let (n, more) = match io.recv_batch(q, &mut self.batch[..want], &mut out[..want]) {
                Ok(r) => {
                    if r.dropped > 0 {
                        self.bridges[b].ports[p].stats.rx_dropped.fetch_add(r.dropped, std::sync::atomic::Ordering::Relaxed);
                    }
                    (r.n.min(want), r.more)
                }
                Err(e) => {
                    self.fail_port(b, p, e);
                    break;
                }
            };
            for (i, rx) in out.iter().copied().enumerate().take(n) {
                self.in_slot(i, !first_alone, |w| w.received(b, p, rx, now));
            }
            self.flush_tx();
            self.stats.received(n);
            done += n;
            if !more || n == 0 {
                break;
            }
            first_alone = false;
        }
        if let Some(l) = self.lone.get_mut(token) {
            *l = done <= 1;
        }
    }

    /// Sends the frames held in `pending`, one [`PortIo::send_batch`] per port, each
    /// port's frames in the order they arrived.
    fn flush_tx(&mut self) {
        let mut sent = [false; RX_BATCH];
        while let Some(&(b, out, _)) = self.pending.first() {
            let mut idx = [0usize; RX_BATCH];
            let mut n = 0;
            self.pending.retain(|&(pb, po, i)| {
                let mine = (pb, po) == (b, out) && n < RX_BATCH;
                if mine {
                    idx[n] = i;
                    n += 1;
                }
                !mine
            });
            let br = &mut self.bridges[b];
            if br.failed[out] {
                continue;
            }
            let port = &br.ports[out];
            let bufs: [&PacketBuf; RX_BATCH] = std::array::from_fn(|j| &self.batch[idx[j.min(n - 1)]]);
            sent[..n].fill(false);
            let r = port.io.send_batch(&bufs[..n], &mut sent[..n]);
            for (buf, &ok) in bufs.iter().zip(&sent).take(n) {
                // After an error, the frames that did not leave went with the port.
                if ok || r.is_ok() {
                    count_sent(&mut br.core, port, buf.len(), ok);
                }
            }
            if let Err(e) = r {
                self.fail_port(b, out, e);
            }
        }
    }

    /// Counts, polices and forwards one frame read from port `p` of bridge `b` (in
    /// `self.buf`).
    fn received(&mut self, b: usize, p: usize, rx: Rx, now: Time) {
        let br = &mut self.bridges[b];
        let port = &br.ports[p];
        match rx {
            Rx::Empty => {}
            Rx::Bad => {
                PortStats::inc(&port.stats.rx_errors);
                br.core.count_drop(DropReason::Malformed);
            }
            Rx::Frame => {
                let multicast = self.buf.frame().first().is_some_and(|b| b & 1 == 1);
                port.stats.rx(self.buf.len(), multicast);
                if !port.admit(now, self.buf.len()) {
                    PortStats::inc(&port.stats.rx_dropped);
                    br.core.count_drop(DropReason::Policed);
                    return;
                }
                if let Err((fb, fp, err)) = self.forward(b, p, now) {
                    self.fail_port(fb, fp, err);
                }
            }
        }
    }

    /// Decides and sends one frame. Returns the port that broke while sending, if any.
    fn forward(&mut self, b: usize, p: usize, now: Time) -> Result<(), (usize, usize, io::Error)> {
        let br = &mut self.bridges[b];
        let verdict = br.core.process(now, p as u16, self.buf.frame(), &mut self.actions);
        let Verdict::Forward { pcp, .. } = verdict else {
            PortStats::inc(&br.ports[p].stats.rx_dropped);
            return Ok(());
        };
        self.actions.sort_by_tag();
        // A frame with one output to a port that sends in batches is held until the
        // receive batch ends; any other send goes first, after those held (order).
        let hold = self.cur.filter(|_| self.actions.len() == 1).filter(|_| {
            let port = &br.ports[self.actions.as_slice()[0].port as usize];
            port.io.batches_tx() && (port.io.offloads() || !self.buf.vnet.is_gso())
        });
        if hold.is_none() && !self.pending.is_empty() {
            self.flush_tx();
        }
        let br = &mut self.bridges[b];
        for e in self.actions.iter() {
            let out = e.port as usize;
            if br.failed[out] {
                continue;
            }
            let port = &br.ports[out];
            if !self.buf.set_vlan(e.tag, pcp) {
                br.core.count_drop(DropReason::Malformed);
                PortStats::inc(&port.stats.tx_dropped);
                continue;
            }
            let sent = if port.io.offloads() || !self.buf.vnet.is_gso() {
                if !port.io.offloads() && !complete_csum(&mut self.buf) {
                    br.core.count_drop(DropReason::BadOffload);
                    PortStats::inc(&port.stats.tx_dropped);
                    continue;
                }
                if let Some(i) = hold {
                    self.pending.push((b, out, i));
                    continue;
                }
                send_counted(&mut br.core, port, &self.buf)
            } else {
                segment_and_send(&mut br.core, port, &self.buf, &mut self.seg)
            };
            if let Err(err) = sent {
                return Err((b, out, err));
            }
        }
        Ok(())
    }
}

/// Takes every receive queue of `port` out of `epoll` (those it never polled too:
/// the error is ignored).
fn unpoll(epoll: &Epoll, port: &DpPort) {
    for q in 0..port.io.queues() {
        if let Some(fd) = port.io.queue_fd(q) {
            let _ = epoll.delete(fd);
        }
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
        port.stats.tx_packets.fetch_add(r.sent as u64, std::sync::atomic::Ordering::Relaxed);
        port.stats.tx_bytes.fetch_add(r.bytes as u64, std::sync::atomic::Ordering::Relaxed);
        if r.dropped > 0 {
            port.stats.tx_dropped.fetch_add(r.dropped as u64, std::sync::atomic::Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::mem::MemPort;
    use rvs_switch::wire::checksum;
    use rvs_switch::wire::virtio_net_hdr::VnetHdr;

    fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&dst.0);
        f[6..12].copy_from_slice(&src.0);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f
    }

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    fn port(n: u16, io: Arc<MemPort>, core: PortConfig) -> DpPort {
        DpPort { iface: Uuid::random(), name: format!("p{n}"), ofport: OfPort::new(n).unwrap(), io, stats: Arc::default(), core, tunnel: None, policer: None }
    }

    /// A worker running one bridge "br0" of `ports`.
    fn one_bridge(ports: Vec<DpPort>) -> WorkerHandle {
        let mut w = WorkerHandle::spawn(Clock::new(), |_| {}).unwrap();
        w.reconfigure(DpConfig {
            bridges: vec![DpBridge { uuid: Uuid::random(), name: "br0".into(), cfg: BridgeConfig::default(), ports, statics: vec![] }],
            ..Default::default()
        });
        w
    }

    fn wait_for(mut f: impl FnMut() -> bool) {
        for _ in 0..200 {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("condition not reached within 1 s");
    }

    /// The real worker loop, driven through in-memory ports.
    #[test]
    fn worker_switches_between_mem_ports() {
        let (a, b, c) = (Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(false).unwrap()));
        let v10 = VlanId::new(10).unwrap();
        let w = one_bridge(vec![
            port(1, a.clone(), PortConfig::access(1, v10)),
            port(2, b.clone(), PortConfig::trunk(2)),
            port(3, c.clone(), PortConfig::access(3, v10)),
        ]);
        // a broadcasts: b gets it tagged 10, c untagged.
        a.inject(&frame(MacAddr::BROADCAST, mac(1)), VnetHdr::default());
        wait_for(|| !c.take_sent().is_empty());
        let sent_b = b.take_sent();
        assert_eq!(sent_b.len(), 1);
        assert_eq!(&sent_b[0].0[12..16], &[0x81, 0x00, 0x00, 0x0a]);
        // c answers a with a partial checksum: a (offloads) gets it as is.
        let mut f = frame(mac(1), mac(3));
        f[34..36].copy_from_slice(&[0x12, 0x34]);
        let partial = VnetHdr { flags: 1, csum_start: 14, csum_offset: 20, ..Default::default() };
        c.inject(&f, partial);
        wait_for(|| !a.take_sent().is_empty());
        // b sends to a with a partial checksum; c has no offloads: not involved (known
        // unicast), and a frame flooded to c gets its checksum completed.
        b.inject(
            &{
                let mut t = frame(MacAddr::BROADCAST, mac(2));
                t.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
                t
            },
            VnetHdr { flags: 1, csum_start: 18, csum_offset: 20, ..Default::default() },
        );
        let mut got = Vec::new();
        wait_for(|| {
            got.extend(c.take_sent());
            !got.is_empty()
        });
        assert_eq!(got[0].1, VnetHdr::default(), "checksum completed for the port without offloads");
        assert_eq!(checksum::fold(checksum::sum(&got[0].0[14..], 0)), 0xffff);
        let fdb = futures_lite_block(w.query(|w| w.bridge("br0").map(|b| b.core.fdb().len())));
        assert_eq!(fdb, Some(3));
        w.stop();
    }

    /// A VXLAN endpoint on loopback (UDP GRO on), the address it is bound to, a peer
    /// socket, the VNI, and tunnel port number `n` to that peer (a trunk).
    fn loopback_tunnel(n: u16) -> (Arc<Endpoint>, std::net::SocketAddr, std::net::UdpSocket, Vni, DpPort) {
        let lo = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let ep = Arc::new(Endpoint::open(Some(lo), 0, false, 1).unwrap());
        assert!(ep.gro(), "UDP GRO on the endpoint");
        let at = socket2::SockRef::from(&ep.fd(0)).local_addr().unwrap().as_socket().unwrap();
        let peer = std::net::UdpSocket::bind((lo, 0)).unwrap();
        let vni = Vni::new(77).unwrap();
        let settings = port_vxlan::TxSettings { local: Some(lo), v6: false, ttl: 64, tos: 0, df: false, csum: false };
        let pool = Arc::new(port_vxlan::SendPool::open(&settings).unwrap());
        let tunnel = Arc::new(port_vxlan::Tunnel::new("vx", peer.local_addr().unwrap(), vni, pool));
        let mut tp = DpPort { io: tunnel, ..port(n, Arc::new(MemPort::new(true).unwrap()), PortConfig::trunk(u32::from(n))) };
        tp.tunnel = Some(TunnelKey { endpoint: 0, remote: lo, vni });
        (ep, at, peer, vni, tp)
    }

    /// Runs a worker with one VXLAN tunnel (from a peer socket on loopback) and one
    /// batching VM port on a bridge; `send` queues datagrams at the endpoint before
    /// the worker is started on it. Returns the number byte (20) of each frame the VM
    /// port got, in order, and the sizes of its send calls.
    fn from_tunnel_to_vm(frames: usize, send: impl FnOnce(&std::net::UdpSocket, std::net::SocketAddr, &[Vec<u8>])) -> (Vec<u8>, Vec<usize>) {
        let (ep, at, peer, vni, tp) = loopback_tunnel(1);
        let vm = Arc::new(MemPort::batching(true, 32).unwrap());
        // Broadcast frames of one length, numbered.
        let datagrams: Vec<Vec<u8>> = (0..frames as u8)
            .map(|i| {
                let mut f = frame(MacAddr::BROADCAST, mac(1));
                f[20] = i;
                [&port_vxlan::header(vni)[..], &f].concat()
            })
            .collect();
        send(&peer, at, &datagrams);
        let mut w = WorkerHandle::spawn(Clock::new(), |_| {}).unwrap();
        let bridge = DpBridge {
            uuid: Uuid::random(),
            name: "br0".into(),
            cfg: BridgeConfig::default(),
            ports: vec![tp, port(2, vm.clone(), PortConfig::trunk(2))],
            statics: vec![],
        };
        w.reconfigure(DpConfig { bridges: vec![bridge], endpoints: vec![ep], workers: 1 });
        let mut got = Vec::new();
        wait_for(|| {
            got.extend(vm.take_sent().into_iter().map(|(f, _)| f[20]));
            got.len() >= frames
        });
        w.stop();
        (got, vm.take_tx_calls())
    }

    /// The small frames of a VXLAN datagram train (UDP GRO) leave for a batching port in
    /// one send call, in order.
    #[test]
    fn small_frames_of_a_train_are_sent_in_one_batch() {
        // 20 frames in one UDP GSO send: the endpoint reads them as one train.
        let (got, calls) = from_tunnel_to_vm(20, |peer, at, datagrams| {
            let iov: Vec<std::io::IoSlice<'_>> = datagrams.iter().map(|d| std::io::IoSlice::new(d)).collect();
            rvs_sys::udp::send_gso(peer.as_fd(), &iov, datagrams[0].len() as u16, &at).unwrap();
        });
        assert_eq!(got, (0..20u8).collect::<Vec<_>>(), "each frame once, in order");
        assert_eq!(calls, [20], "one send call for the train's frames");
    }

    /// Single datagrams (a kernel peer's small frames) are read [`RX_TRAINS`] per
    /// receive call and the frames of each call leave in one send call.
    #[test]
    fn single_datagrams_are_read_and_sent_in_batches() {
        let (got, calls) = from_tunnel_to_vm(20, |peer, at, datagrams| {
            for d in datagrams {
                rvs_sys::udp::send_to(peer.as_fd(), &[std::io::IoSlice::new(d.as_slice())], &at).unwrap();
            }
        });
        assert_eq!(got, (0..20u8).collect::<Vec<_>>(), "each frame once, in order");
        assert_eq!(calls, [RX_TRAINS, RX_TRAINS, 20 - 2 * RX_TRAINS], "one send call per receive call");
    }

    /// Frames of one receive batch bound for a batching port leave in one send call,
    /// in the order they came, also when floods (sent at once) come between them; a
    /// port that does not batch gets one call per frame.
    #[test]
    fn receive_batches_are_sent_in_batches_in_order() {
        let a = Arc::new(MemPort::batching(true, 32).unwrap());
        let (b, c) = (Arc::new(MemPort::batching(true, 32).unwrap()), Arc::new(MemPort::new(true).unwrap()));
        let w = one_bridge(vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2)), port(3, c.clone(), PortConfig::trunk(3))]);
        // b and c make themselves known.
        b.inject(&frame(MacAddr::BROADCAST, mac(2)), VnetHdr::default());
        c.inject(&frame(MacAddr::BROADCAST, mac(3)), VnetHdr::default());
        wait_for(|| futures_lite_block(w.query(|w| w.bridge("br0").map_or(0, |b| b.core.fdb().len()))) == 2);
        for p in [&a, &b, &c] {
            p.take_sent();
            p.take_tx_calls();
        }
        // 20 numbered frames from a: to b, with every fifth a broadcast (to b and c) and
        // every seventh to c.
        let frames: Vec<Vec<u8>> = (0..20u8)
            .map(|i| {
                let dst = if i % 5 == 4 {
                    MacAddr::BROADCAST
                } else if i % 7 == 6 {
                    mac(3)
                } else {
                    mac(2)
                };
                let mut f = frame(dst, mac(1));
                f[20] = i;
                f
            })
            .collect();
        let tx_b = || futures_lite_block(w.query(|w| w.bridge("br0").map_or(0, |b| b.ports[1].stats.snapshot().tx_packets)));
        let before = tx_b();
        a.inject_all(&frames);
        let want_b: Vec<u8> = (0..20u8).filter(|i| i % 7 != 6 || i % 5 == 4).collect();
        let want_c: Vec<u8> = (0..20u8).filter(|i| i % 5 == 4 || i % 7 == 6).collect();
        let (mut got_b, mut got_c) = (Vec::new(), Vec::new());
        wait_for(|| {
            got_b.extend(b.take_sent().into_iter().map(|(f, _)| f[20]));
            got_c.extend(c.take_sent().into_iter().map(|(f, _)| f[20]));
            got_b.len() >= want_b.len() && got_c.len() >= want_c.len()
        });
        assert_eq!(got_b, want_b, "b got its frames once each, in order");
        assert_eq!(got_c, want_c, "c got its frames once each, in order");
        let calls_b = b.take_tx_calls();
        assert!(calls_b.iter().any(|&n| n > 1), "frames to b went out in batches: {calls_b:?}");
        assert!(calls_b.len() < want_b.len(), "fewer send calls than frames: {calls_b:?}");
        let calls_c = c.take_tx_calls();
        assert!(calls_c.len() == want_c.len() && calls_c.iter().all(|&n| n == 1), "c does not batch: {calls_c:?}");
        assert_eq!(tx_b() - before, want_b.len() as u64, "every batched frame counted as sent");
        w.stop();
    }

    /// From a port that reads ahead one call per frame (a tap), the first frame after
    /// one that came alone is forwarded at once, before the port is read again; in a
    /// burst the rest follow in one batch, and after a burst a burst goes out whole.
    #[test]
    fn a_lone_frame_is_not_held_for_a_batch() {
        let a = Arc::new(MemPort::reading_ahead(true, 32).unwrap());
        let b = Arc::new(MemPort::batching(true, 32).unwrap());
        let w = one_bridge(vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2))]);
        b.inject(&frame(MacAddr::BROADCAST, mac(2)), VnetHdr::default());
        wait_for(|| futures_lite_block(w.query(|w| w.bridge("br0").map_or(0, |b| b.core.fdb().len()))) == 1);
        let burst = |n: usize| -> Vec<usize> {
            a.inject_all(&vec![frame(mac(2), mac(1)); n]);
            let mut got = 0;
            wait_for(|| {
                got += b.take_sent().len();
                got >= n
            });
            b.take_tx_calls()
        };
        assert_eq!(burst(1), [1], "a lone frame");
        assert_eq!(burst(20), [1, 19], "after a lone frame: the first at once, the rest batched");
        assert_eq!(burst(20), [20], "after a burst: all batched");
        assert_eq!(burst(1), [1]);
        assert_eq!(burst(5), [1, 4]);
        w.stop();
    }

    /// A GSO frame flooded to a port without offloads arrives there as MSS-sized frames
    /// with full checksums; the offload-capable port gets it whole.
    #[test]
    fn gso_frames_are_segmented_for_ports_without_offloads() {
        let (a, b, c) = (Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(false).unwrap()));
        let w = one_bridge(vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2)), port(3, c.clone(), PortConfig::trunk(3))]);
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [0xff; 6])
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .tcp(1000, 2000, 7, 65535)
            .write(&mut f, &payload)
            .unwrap();
        let gso = VnetHdr { flags: 1, gso_type: 1, hdr_len: 54, gso_size: 1000, csum_start: 34, csum_offset: 16 };
        a.inject(&f, gso);
        let mut got = Vec::new();
        wait_for(|| {
            got.extend(c.take_sent());
            got.len() >= 3
        });
        assert_eq!(got.len(), 3);
        let mut data = Vec::new();
        for (seg, vnet) in &got {
            assert_eq!(*vnet, VnetHdr::default());
            let p = etherparse::SlicedPacket::from_ethernet(seg).unwrap();
            let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else { panic!("not TCP") };
            data.extend_from_slice(tcp.payload());
        }
        assert_eq!(data, payload);
        let whole = b.take_sent();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].1, gso, "offload-capable ports get the GSO frame as it came");
        w.stop();
    }

    /// Two workers: inputs dealt round-robin, what one learns reaches the other, so a
    /// reply handled by the second worker goes to the one port, not flooded; back to
    /// one worker, everything still forwards.
    #[test]
    fn two_workers_share_what_they_learn() {
        let (a, b, c) = (Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()));
        let mut w = WorkerHandle::spawn(Clock::new(), |_| {}).unwrap();
        let uuid = Uuid::random();
        let cfg = |workers| DpConfig {
            bridges: vec![DpBridge {
                uuid,
                name: "br0".into(),
                cfg: BridgeConfig::default(),
                ports: vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2)), port(3, c.clone(), PortConfig::trunk(3))],
                statics: vec![],
            }],
            endpoints: vec![],
            workers,
        };
        w.reconfigure(cfg(2));
        assert_eq!(w.workers(), 2);
        let inputs: Vec<Vec<String>> = w.query_all(|w| w.inputs()).into_iter().map(futures_lite_block).collect();
        assert_eq!(inputs, vec![vec!["p1".to_string(), "p3".to_string()], vec!["p2".to_string()]]);

        // a (worker 0) broadcasts from mac 1: flooded to b and c, learned on worker 0.
        a.inject(&frame(MacAddr::BROADCAST, mac(1)), VnetHdr::default());
        wait_for(|| !b.take_sent().is_empty());
        wait_for(|| !c.take_sent().is_empty());
        // Worker 1 hears of it when it next wakes: poke it with a frame it drops (to
        // a reserved group address: not learned, not forwarded), then ask it.
        let mut learned_on_1 = false;
        for _ in 0..100 {
            b.inject(&frame(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]), mac(9)), VnetHdr::default());
            let rx = w.query_all(|w| w.bridge("br0").and_then(|b| b.core.fdb().lookup(VlanId::NONE, mac(1))));
            let answers: Vec<_> = rx.into_iter().map(futures_lite_block).collect();
            if answers[1] == Some(0) {
                learned_on_1 = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(learned_on_1, "worker 1 never learned what worker 0 saw");
        a.take_sent();
        c.take_sent();

        // b (worker 1) answers mac 1: only a gets it.
        b.inject(&frame(mac(1), mac(2)), VnetHdr::default());
        wait_for(|| !a.take_sent().is_empty());
        std::thread::sleep(Duration::from_millis(50));
        assert!(c.take_sent().is_empty(), "known unicast was flooded");

        // Learned counts add up over the workers: mac 1 on worker 0, mac 2 on
        // worker 1.
        let learned: u64 = w.query_all(|w| w.bridge("br0").map_or(0, |b| b.core.fdb().stats().learned)).into_iter().map(futures_lite_block).sum();
        assert_eq!(learned, 2);

        w.reconfigure(cfg(1));
        assert_eq!(w.workers(), 1);
        b.inject(&frame(mac(1), mac(2)), VnetHdr::default());
        wait_for(|| !a.take_sent().is_empty());
        w.stop();
    }

    /// Waits for a oneshot from a plain thread (tests have no runtime).
    /// A tagged (VLAN `vid`) TCP segment from `src` to `dst` with `payload`, sequence
    /// number `seq`, checksums right.
    fn tcp_frame(dst: MacAddr, src: MacAddr, vid: Option<u16>, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        etherparse::PacketBuilder::ethernet2(src.0, dst.0)
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .tcp(1000, 2000, seq, 65535)
            .ack(1)
            .write(&mut f, payload)
            .unwrap();
        if let Some(v) = vid {
            f.splice(12..12, [0x81, 0x00, (v >> 8) as u8, v as u8]);
        }
        f
    }

    /// Part 4 of the fast path: once warm, the worker forwards without allocating —
    /// known unicast with a VLAN tag pushed, floods, a GSO frame kept whole for one
    /// port and cut for another and for a VXLAN tunnel (one UDP GSO send), single VXLAN
    /// datagrams decapsulated with the tag popped, and a GRO train of TCP segments
    /// coalesced into one frame. Counted by the test build's allocator, on the worker's
    /// own thread.
    #[test]
    fn forwarding_allocates_nothing_once_warm() {
        let (ep, at, peer, vni, tp) = loopback_tunnel(4);
        peer.set_nonblocking(true).unwrap();
        let vid = VlanId::new(10).unwrap();
        // vm1 on an access port of VLAN 10 (batching, offloads), vm2 on a trunk
        // (batching, offloads), vm3 on a trunk without offloads.
        let vm1 = Arc::new(MemPort::sink(true, 32).unwrap());
        let vm2 = Arc::new(MemPort::sink(true, 32).unwrap());
        let vm3 = Arc::new(MemPort::sink(false, 0).unwrap());
        let mut w = WorkerHandle::spawn(Clock::new(), |_| {}).unwrap();
        let bridge = DpBridge {
            uuid: Uuid::random(),
            name: "br0".into(),
            cfg: BridgeConfig::default(),
            ports: vec![
                port(1, vm1.clone(), PortConfig::access(1, vid)),
                port(2, vm2.clone(), PortConfig::trunk(2)),
                port(3, vm3.clone(), PortConfig::trunk(3)),
                tp,
            ],
            statics: vec![],
        };
        w.reconfigure(DpConfig { bridges: vec![bridge], endpoints: vec![ep], workers: 1 });

        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let gso_frame = tcp_frame(MacAddr::BROADCAST, mac(1), None, 7, &payload);
        let gso = VnetHdr { flags: 1, gso_type: 1, hdr_len: 54, gso_size: 1000, csum_start: 34, csum_offset: 16 };
        // From the tunnel: a tagged frame for vm1, and a train of 8 tagged TCP segments
        // of one flow for vm1 (coalesced into one frame).
        let single = [&port_vxlan::header(vni)[..], &frame(mac(1), mac(4))[..12], &[0x81, 0x00, 0, 10], &frame(mac(1), mac(4))[12..]].concat();
        let segs: Vec<Vec<u8>> =
            (0..8u32).map(|i| [&port_vxlan::header(vni)[..], &tcp_frame(mac(1), mac(4), Some(10), 1 + i * 1000, &payload[..1000])].concat()).collect();
        let train: Vec<std::io::IoSlice<'_>> = segs.iter().map(|d| std::io::IoSlice::new(d)).collect();
        let mut sink = [0u8; 65536];
        let mut datagrams = 0;
        // One round: 3 frames from vm1 (a broadcast, a unicast to vm2, a GSO frame),
        // one from vm2 and two sends from the tunnel's peer.
        let mut round = |datagrams: &mut usize| {
            vm2.inject(&[&frame(mac(1), mac(2))[..12], &[0x81, 0x00, 0, 10], &frame(mac(1), mac(2))[12..]].concat(), VnetHdr::default());
            vm1.inject_all(&[frame(MacAddr::BROADCAST, mac(1)), frame(mac(2), mac(1))]);
            vm1.inject(&gso_frame, gso);
            rvs_sys::udp::send_to(peer.as_fd(), &[std::io::IoSlice::new(&single)], &at).unwrap();
            rvs_sys::udp::send_gso(peer.as_fd(), &train, segs[0].len() as u16, &at).unwrap();
            // What reaches the peer: the broadcast, the GSO frame cut in 3 (and
            // whatever vm2's frames flood before mac(1) is known).
            while let Ok(Some(_)) = rvs_sys::udp::recv_from(peer.as_fd(), &mut sink) {
                *datagrams += 1;
            }
        };
        // Per round: vm1 gets vm2's frame, the single and the coalesced train (3); vm2
        // the broadcast, the unicast and the GSO frame whole (3); vm3 the broadcast and
        // the GSO frame cut in 3 (4); the peer 4 datagrams.
        // First every MAC address is learned: vm1's broadcast floods (vm2, vm3, the
        // peer), vm2's and the peer's frames go to vm1.
        vm1.inject(&frame(MacAddr::BROADCAST, mac(1)), VnetHdr::default());
        wait_for(|| vm3.sunk() == 1);
        vm2.inject(&[&frame(mac(1), mac(2))[..12], &[0x81, 0x00, 0, 10], &frame(mac(1), mac(2))[12..]].concat(), VnetHdr::default());
        rvs_sys::udp::send_to(peer.as_fd(), &[std::io::IoSlice::new(&single)], &at).unwrap();
        wait_for(|| (vm1.sunk(), vm2.sunk(), vm3.sunk()) == (2, 1, 1));
        let expect = |rounds: usize| (2 + 3 * rounds, 1 + 3 * rounds, 1 + 4 * rounds);
        let mut done = 0;
        let mut run = |rounds: usize, datagrams: &mut usize| {
            for _ in 0..rounds {
                round(datagrams);
                done += 1;
                let want = expect(done);
                wait_for(|| (vm1.sunk(), vm2.sunk(), vm3.sunk()) == want);
            }
        };
        run(3, &mut datagrams);
        let before = futures_lite_block(w.query(|_| rvs_sys::alloc_count::allocations()));
        run(50, &mut datagrams);
        let after = futures_lite_block(w.query(|_| rvs_sys::alloc_count::allocations()));
        wait_for(|| {
            while let Ok(Some(_)) = rvs_sys::udp::recv_from(peer.as_fd(), &mut sink) {
                datagrams += 1;
            }
            datagrams > 4 * 53
        });
        assert_eq!(datagrams, 1 + 4 * 53, "the tunnel's datagrams");
        assert_eq!(after - before, 0, "allocations by the worker while forwarding 50 rounds");
        w.stop();
    }

    fn futures_lite_block<T>(mut rx: tokio::sync::oneshot::Receiver<T>) -> T {
        for _ in 0..200 {
            if let Ok(v) = rx.try_recv() {
                return v;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no answer from the worker within 1 s");
    }
}
