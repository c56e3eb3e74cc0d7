//! The poll table: the inputs of a configuration, which epoll token stands for which
//! of their queues, which this worker polls, and installing a configuration (`apply`) —
//! kept apart from what is done with an input once it is ready, as Firecracker keeps a
//! device's event table apart from the device.
//!
//! An input is a [`crate::port::Input`]: a port's own receive queues, or a shared input
//! (a VXLAN endpoint) that ports receive through. Every worker lists the inputs of a
//! configuration alike (ports with queues of their own in bridge and port order, then
//! the shared inputs in the order ports name them), numbers their queues alike, and
//! token `i` is queue `i`: the table holds every queue, each marked whether this worker
//! polls it. The frames of a shared input go to the port whose key they carry
//! (`demux`, built here). A port whose device broke is taken out of the poll set here
//! (`fail_port`) and stays out until the next configuration. The doorbell has the
//! token [`BELL`].

use std::io;
use std::sync::Arc;

use rvs_ovsdb::Uuid;
use rvs_switch::bridge::{Bridge, PortConfig};
use rvs_sys::epoll::Epoll;

use super::{BridgeRt, DpConfig, DpPort, PortRef, PortRt, RX_BATCH, Worker, WorkerEvent, io_id};
use crate::port::{Input, RxVia};

/// epoll token of the doorbell.
pub(super) const BELL: u64 = u64::MAX;

/// Whose frames an input reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// The port's own queues: every frame is the port's.
    Port(PortRef),
    /// A shared input: each frame goes to the port of its key.
    Shared,
}

/// One input of the configuration, with what the worker read of it once.
pub(super) struct InputRt {
    pub(super) io: Arc<dyn Input>,
    pub(super) owner: Owner,
    /// [`Input::reads_ahead`].
    pub(super) reads_ahead: bool,
    /// [`Input::batch`], within 1..=`RX_BATCH`: frames asked of one receive call.
    pub(super) rx_batch: usize,
}

impl InputRt {
    fn new(io: Arc<dyn Input>, owner: Owner) -> InputRt {
        let (reads_ahead, rx_batch) = (io.reads_ahead(), io.batch().clamp(1, RX_BATCH));
        InputRt { io, owner, reads_ahead, rx_batch }
    }
}

/// One row of the poll table (its index is its epoll token): a receive queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct Token {
    /// Index into [`Worker`]'s inputs.
    pub(super) input: usize,
    pub(super) queue: usize,
    /// Whether this worker polls it (another worker does otherwise).
    pub(super) mine: bool,
    /// Whether its last service found at most one frame (see [`Input::reads_ahead`]).
    pub(super) lone: bool,
}

impl Worker {
    /// The inputs this worker polls: port names (`NAME#Q` for queue Q of a port with
    /// several) and shared inputs (`vxlan:PORT`).
    pub fn inputs(&self) -> Vec<String> {
        self.tokens.iter().filter(|t| t.mine).map(|t| self.input_name(t)).collect()
    }

    /// An input queue as `rvs/workers` names it: the port or the shared input's label,
    /// with `#QUEUE` when it has several queues.
    fn input_name(&self, t: &Token) -> String {
        let name = self.input_label(t);
        if self.inputs[t.input].io.queues() > 1 { format!("{name}#{}", t.queue) } else { name }
    }

    /// The port's name, or the shared input's label, of a queue.
    pub(super) fn input_label(&self, t: &Token) -> String {
        let input = &self.inputs[t.input];
        match input.owner {
            Owner::Port(at) => self.bridges[at.bridge].ports[at.port].name.clone(),
            Owner::Shared => input.io.label(),
        }
    }

    /// The inputs whose backend has a say in how they are read, with that way
    /// ([`Input::rx_mode`]).
    pub fn rx_modes(&self) -> Vec<(String, &'static str)> {
        self.tokens.iter().filter(|t| t.mine).filter_map(|t| Some((self.input_name(t), self.inputs[t.input].io.rx_mode(t.queue)?))).collect()
    }

    /// Installs a new configuration, keeping the learned state of bridges and ports
    /// that stay.
    pub(super) fn apply(&mut self, cfg: DpConfig) {
        for t in self.tokens.iter().filter(|t| t.mine) {
            // (A broken port's queues are out already: the error is ignored.)
            if let Some(fd) = self.inputs[t.input].io.queue_fd(t.queue) {
                let _ = self.epoll.delete(fd);
            }
        }
        let mut old: Vec<BridgeRt> = std::mem::take(&mut self.bridges);
        let (pmd_cpus, affinity) = (cfg.pmd_cpus, cfg.rxq_affinity);
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
            let ports = nb.ports.into_iter().map(PortRt::new).collect();
            let mut rt = BridgeRt { uuid: nb.uuid, name: nb.name, core, ports, mirror_stats: nb.mirror_stats };
            rt.core.set_flood_vlans(nb.flood_vlans);
            rt.core.set_mirrors(nb.mirrors);
            rt.core.set_journaling(self.crew.n > 1);
            for (vlan, mac, ofport) in nb.statics {
                if let Some(i) = rt.core.port_index(u32::from(ofport.get())) {
                    rt.core.fdb_mut().add_static(vlan, mac, i);
                }
            }
            self.bridges.push(rt);
        }
        self.shaped = self
            .bridges
            .iter()
            .enumerate()
            .flat_map(|(b, br)| br.ports.iter().enumerate().filter(|(_, p)| p.shaper.is_some()).map(move |(port, _)| PortRef { bridge: b, port }))
            .collect();
        self.list_inputs();
        self.poll_inputs(&pmd_cpus, &affinity);
        self.usage.reset(self.tokens.len());
        self.set_pmd(pmd_cpus.get(self.crew.id).copied());
        // `old` (bridges that are gone) and the replaced ports drop here, closing fds.
    }

    /// Lists the inputs of the running configuration and fills the demultiplexer.
    fn list_inputs(&mut self) {
        self.inputs.clear();
        self.demux.clear();
        let mut shared = Vec::new();
        for (bi, b) in self.bridges.iter().enumerate() {
            for (pi, p) in b.ports.iter().enumerate() {
                let at = PortRef { bridge: bi, port: pi };
                match p.io.rx_via() {
                    RxVia::Own => self.inputs.push(InputRt::new(p.io.clone(), Owner::Port(at))),
                    RxVia::Shared { input, key } => shared.push((input, key, at)),
                }
            }
        }
        for (input, key, at) in shared {
            let i = match self.inputs.iter().position(|i| i.owner == Owner::Shared && io_id(&i.io) == io_id(&input)) {
                Some(i) => i,
                None => {
                    self.inputs.push(InputRt::new(input, Owner::Shared));
                    self.inputs.len() - 1
                }
            };
            self.demux.insert((i, key), at);
        }
    }

    /// Numbers the queues of every input and polls this worker's share: a queue
    /// pinned to a polling worker's CPU (`pmd-rxq-affinity`) goes to that worker, and
    /// a worker with pinned queues polls nothing else (OVS's isolation) unless every
    /// worker has some; of the rest, queue Q of an input with several goes to the Qth
    /// other worker, inputs with one queue are dealt round-robin.
    fn poll_inputs(&mut self, pmd_cpus: &[usize], affinity: &[(Uuid, usize, usize)]) {
        self.tokens.clear();
        let (id, n) = (self.crew.id, self.crew.n);
        let pins: Vec<Vec<Option<usize>>> = self
            .inputs
            .iter()
            .map(|input| {
                (0..input.io.queues())
                    .map(|q| {
                        let Owner::Port(at) = input.owner else { return None };
                        let iface = self.bridges[at.bridge].ports[at.port].iface;
                        let cpu = affinity.iter().find(|&&(u, qq, _)| u == iface && qq == q)?.2;
                        pmd_cpus.iter().position(|&c| c == cpu).filter(|&w| w < n)
                    })
                    .collect()
            })
            .collect();
        let mut isolated = vec![false; n];
        for w in pins.iter().flatten().flatten() {
            isolated[*w] = true;
        }
        let mut free: Vec<usize> = (0..n).filter(|&w| !isolated[w]).collect();
        if free.is_empty() {
            free = (0..n).collect();
        }
        self.isolated = isolated.get(id).copied().unwrap_or(false);
        let mut dealt = 0usize;
        for (ii, input) in self.inputs.iter().enumerate() {
            let queues = input.io.queues();
            for q in 0..queues {
                let Some(fd) = input.io.queue_fd(q) else { continue };
                let w = match pins[ii].get(q).copied().flatten() {
                    Some(w) => w,
                    None if queues > 1 => free[q % free.len()],
                    None => {
                        dealt += 1;
                        free[(dealt - 1) % free.len()]
                    }
                };
                let token = self.tokens.len();
                let mine = w == id;
                self.tokens.push(Token { input: ii, queue: q, mine, lone: true });
                if mine && let Err(e) = self.epoll.add(fd, token as u64) {
                    match input.owner {
                        Owner::Port(at) => {
                            let p = &mut self.bridges[at.bridge].ports[at.port];
                            tracing::error!("datapath: cannot poll port {}: {e}", p.dp.name);
                            p.failed = true;
                        }
                        Owner::Shared => tracing::error!("datapath: cannot poll {}: {e}", input.io.label()),
                    }
                }
            }
        }
    }

    /// Takes a broken port out of the poll set and tells the control plane.
    pub(super) fn fail_port(&mut self, at: PortRef, error: io::Error) {
        let port = &mut self.bridges[at.bridge].ports[at.port];
        if port.failed {
            return;
        }
        port.failed = true;
        unpoll(&self.epoll, port);
        (self.events)(WorkerEvent::PortFailed { iface: port.iface, name: port.name.clone(), io: io_id(&port.io), error });
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
