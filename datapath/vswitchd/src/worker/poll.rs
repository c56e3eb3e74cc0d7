//! The poll table: which epoll token stands for which input, which inputs this worker
//! polls, and installing a configuration (`apply`) — kept apart from what is done
//! with an input once it is ready, as Firecracker keeps a device's event table apart
//! from the device.
//!
//! Every worker numbers the inputs of a configuration alike (ports' receive queues in
//! bridge and port order, then the VXLAN endpoints' queues), and token `i` is input
//! `i`: the table holds every input, each marked whether this worker polls it. A
//! port whose device broke is taken out of the poll set here (`fail_port`) and stays
//! out until the next configuration. The doorbell has the token [`BELL`].

use std::io;

use rvs_switch::bridge::{Bridge, PortConfig};
use rvs_sys::epoll::Epoll;

use super::{BridgeRt, DpConfig, DpPort, PortRef, PortRt, Worker, WorkerEvent, io_id};

/// epoll token of the doorbell.
pub(super) const BELL: u64 = u64::MAX;

/// Something the worker polls.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source {
    /// Receive queue `queue` of a port.
    Port { port: PortRef, queue: usize },
    /// Receive queue `queue` of VXLAN endpoint `endpoint` (index into
    /// [`Worker::endpoints`]).
    Endpoint { endpoint: usize, queue: usize },
}

/// One row of the poll table (its index is its epoll token).
#[derive(Debug, Clone, Copy)]
pub(super) struct Input {
    pub(super) source: Source,
    /// Whether this worker polls it (another worker does otherwise).
    pub(super) mine: bool,
    /// Whether its last service found at most one frame (see [`crate::port::PortIo::reads_ahead`]).
    pub(super) lone: bool,
}

impl Worker {
    /// The inputs this worker polls: port names (`NAME#Q` for queue Q of a port with
    /// several) and VXLAN endpoints (`vxlan:PORT`).
    pub fn inputs(&self) -> Vec<String> {
        self.tokens.iter().filter(|i| i.mine).map(|i| self.input_name(i.source)).collect()
    }

    /// An input as `rvs/workers` names it: the port or `vxlan:PORT`, with `#QUEUE` when
    /// it has several queues.
    fn input_name(&self, src: Source) -> String {
        match src {
            Source::Port { port, queue } => {
                let port = &self.bridges[port.bridge].ports[port.port];
                if port.io.queues() > 1 { format!("{}#{queue}", port.name) } else { port.name.clone() }
            }
            Source::Endpoint { endpoint, queue } => {
                let ep = &self.endpoints[endpoint];
                if ep.queues() > 1 { format!("vxlan:{}#{queue}", ep.port) } else { format!("vxlan:{}", ep.port) }
            }
        }
    }

    /// The inputs whose backend has a say in how they are read, with that way
    /// ([`crate::port::PortIo::rx_mode`]).
    pub fn rx_modes(&self) -> Vec<(String, &'static str)> {
        let mode = |src| match src {
            Source::Port { port, queue } => self.bridges[port.bridge].ports[port.port].io.rx_mode(queue),
            Source::Endpoint { .. } => None,
        };
        self.tokens.iter().filter(|i| i.mine).filter_map(|i| Some((self.input_name(i.source), mode(i.source)?))).collect()
    }

    /// Installs a new configuration, keeping the learned state of bridges and ports
    /// that stay.
    pub(super) fn apply(&mut self, cfg: DpConfig) {
        for b in &self.bridges {
            for p in &b.ports {
                if !p.failed {
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
            let ports = nb.ports.into_iter().map(PortRt::new).collect();
            let mut rt = BridgeRt { uuid: nb.uuid, name: nb.name, core, ports };
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
            for (pi, p) in b.ports.iter_mut().enumerate() {
                let at = PortRef { bridge: bi, port: pi };
                if let Some(k) = p.tunnel {
                    self.demux.insert(k, at);
                }
                let queues = p.io.queues();
                for q in 0..queues {
                    let Some(fd) = p.dp.io.queue_fd(q) else { continue };
                    let token = self.tokens.len();
                    let mine = deal(queues, q);
                    self.tokens.push(Input { source: Source::Port { port: at, queue: q }, mine, lone: true });
                    if mine && let Err(e) = self.epoll.add(fd, token as u64) {
                        tracing::error!("datapath: cannot poll port {}: {e}", p.dp.name);
                        p.failed = true;
                    }
                }
            }
        }
        for (ei, e) in self.endpoints.iter().enumerate() {
            let queues = e.queues();
            for q in 0..queues {
                let token = self.tokens.len();
                let mine = deal(queues, q);
                self.tokens.push(Input { source: Source::Endpoint { endpoint: ei, queue: q }, mine, lone: true });
                if mine && let Err(err) = self.epoll.add(e.fd(q), token as u64) {
                    tracing::error!("datapath: cannot poll VXLAN port {}: {err}", e.port);
                }
            }
        }
        // `old` (bridges that are gone) and the replaced ports drop here, closing fds.
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
