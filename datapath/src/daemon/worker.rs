//! The datapath worker: one thread running a run-to-completion poll loop over every
//! port. For each ready port it reads up to [`BUDGET`] frames; for each frame it asks the
//! core ([`crate::core::Bridge::process`]) and writes the copies, then goes on. It sleeps
//! in epoll when nothing arrives (no busy polling), waking for input, for the control
//! plane's doorbell, and for the next MAC expiry.
//!
//! The control plane never touches the worker's state directly: it sends whole new
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
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::core::police::Policer;
use crate::core::{Actions, Bridge, BridgeConfig, DropReason, PortConfig, Verdict};
use crate::db::Uuid;
use crate::packet::PacketBuf;
use crate::port::vxlan::Endpoint;
use crate::port::{PortIo, PortStats, Rx};
use crate::sys::epoll::{Epoll, EventFd};
use crate::time::{Clock, Time};
use crate::types::{MacAddr, OfPort, VlanId, Vni};
use crate::offload::{self, Coalescer, Layer, Segmenter};
use crate::port::vxlan as port_vxlan;
use crate::wire::virtio_net_hdr::VnetHdr;

/// Frames read from one port before the worker looks at the others.
pub const BUDGET: usize = 64;
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
    /// Ingress policing, if configured.
    pub policer: Option<Policer>,
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
pub struct DpBridge {
    pub uuid: Uuid,
    pub name: String,
    pub cfg: BridgeConfig,
    pub ports: Vec<DpPort>,
    /// Static MAC entries (`fdb/add`) to (re)install: (VLAN, MAC, port).
    pub statics: Vec<(VlanId, MacAddr, OfPort)>,
}

/// A whole datapath configuration.
#[derive(Default)]
pub struct DpConfig {
    pub bridges: Vec<DpBridge>,
    /// Shared VXLAN receive sockets.
    pub endpoints: Vec<Arc<Endpoint>>,
}

/// Something the worker polls.
#[derive(Debug, Clone, Copy)]
enum Source {
    Port(usize, usize),
    Endpoint(usize),
}

/// Something the worker tells the control plane.
#[derive(Debug)]
pub enum WorkerEvent {
    /// The port's device broke (deleted, moved away): it is no longer polled.
    PortFailed { iface: Uuid, name: String, error: io::Error },
}

type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// Messages from the control plane.
pub enum WorkerMsg {
    Reconfigure(DpConfig),
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
    /// Token → what to service.
    tokens: Vec<Source>,
    /// (endpoint, outer source, VNI) → (bridge, port).
    demux: HashMap<TunnelKey, (usize, usize)>,
    buf: PacketBuf,
    /// Scratch buffer for software segmentation.
    seg: PacketBuf,
    /// Receive buffer for VXLAN datagram trains (UDP GRO).
    train: Vec<u8>,
    /// Software GRO for decapsulated TCP segments.
    coalescer: Coalescer<Vec<u8>>,
    actions: Actions,
    events: Box<dyn Fn(WorkerEvent) + Send>,
}

/// The control plane's end.
pub struct WorkerHandle {
    tx: Sender<WorkerMsg>,
    bell: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Starts the worker thread. `events` is called on the worker thread.
    pub fn spawn(clock: Clock, events: impl Fn(WorkerEvent) + Send + 'static) -> io::Result<WorkerHandle> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let bell = Arc::new(EventFd::new()?);
        let epoll = Epoll::new(256)?;
        epoll.add(bell.as_fd(), BELL)?;
        let mut w = Worker {
            bridges: Vec::new(),
            endpoints: Vec::new(),
            clock,
            epoll,
            tokens: Vec::new(),
            demux: HashMap::new(),
            buf: PacketBuf::new(),
            seg: PacketBuf::with_capacity(70 * 1024),
            train: vec![0u8; 65_536 + 4096],
            coalescer: Coalescer::new(vec![0u8; offload::MAX_COALESCED]),
            actions: Actions::with_capacity(256),
            events: Box::new(events),
        };
        let b = bell.clone();
        let thread = std::thread::Builder::new().name("rvs-datapath".into()).spawn(move || w.run(&rx, &b))?;
        Ok(WorkerHandle { tx, bell, thread: Some(thread) })
    }

    fn send(&self, m: WorkerMsg) {
        // The worker only goes away at Stop; a send error then is harmless.
        let _ = self.tx.send(m);
        self.bell.notify();
    }

    /// Replaces the configuration (applied between batches).
    pub fn reconfigure(&self, cfg: DpConfig) {
        self.send(WorkerMsg::Reconfigure(cfg));
    }

    /// Runs `f` on the worker between batches; the answer arrives on the receiver.
    pub fn query<R: Send + 'static>(&self, f: impl FnOnce(&mut Worker) -> R + Send + 'static) -> tokio::sync::oneshot::Receiver<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(WorkerMsg::Run(Box::new(move |w| {
            let _ = tx.send(f(w));
        })));
        rx
    }

    /// Stops the thread and waits for it; the configuration (and every port) is dropped.
    pub fn stop(mut self) {
        self.send(WorkerMsg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.tx.send(WorkerMsg::Stop);
            self.bell.notify();
            let _ = t.join();
        }
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
        loop {
            let spinning = last_traffic.is_some_and(|t| t.elapsed() < SPIN);
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
            if ready.iter().any(|r| r.token != BELL) {
                last_traffic = Some(std::time::Instant::now());
            }
            for r in ready.drain(..) {
                if r.token == BELL {
                    bell.drain();
                    if !self.handle_messages(rx) {
                        return;
                    }
                } else {
                    match self.tokens.get(r.token as usize) {
                        Some(&Source::Port(b, p)) => self.service_port(b, p),
                        Some(&Source::Endpoint(e)) => self.service_endpoint(e),
                        None => {}
                    }
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
                WorkerMsg::Reconfigure(cfg) => self.apply(cfg),
                WorkerMsg::Run(job) => job(self),
                WorkerMsg::Stop => {
                    self.apply(DpConfig::default());
                    return false;
                }
            }
        }
        true
    }

    /// Installs a new configuration, keeping the learned state of bridges and ports
    /// that stay.
    fn apply(&mut self, cfg: DpConfig) {
        for b in &self.bridges {
            for (p, failed) in b.ports.iter().zip(&b.failed) {
                if let (false, Some(fd)) = (failed, p.io.fd()) {
                    let _ = self.epoll.delete(fd);
                }
            }
        }
        for e in &self.endpoints {
            let _ = self.epoll.delete(e.fd());
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
        for (bi, b) in self.bridges.iter_mut().enumerate() {
            for (pi, p) in b.ports.iter().enumerate() {
                if let Some(k) = p.tunnel {
                    self.demux.insert(k, (bi, pi));
                }
                let Some(fd) = p.io.fd() else { continue };
                let token = self.tokens.len() as u64;
                if let Err(e) = self.epoll.add(fd, token) {
                    tracing::error!("datapath: cannot poll port {}: {e}", p.name);
                    b.failed[pi] = true;
                }
                self.tokens.push(Source::Port(bi, pi));
            }
        }
        for (ei, e) in self.endpoints.iter().enumerate() {
            let token = self.tokens.len() as u64;
            if let Err(err) = self.epoll.add(e.fd(), token) {
                tracing::error!("datapath: cannot poll VXLAN port {}: {err}", e.port);
            }
            self.tokens.push(Source::Endpoint(ei));
        }
        // `old` (bridges that are gone) and the replaced ports drop here, closing fds.
    }

    /// Reads up to [`BUDGET`] datagrams (or GRO trains of datagrams) from VXLAN
    /// endpoint `e`, demultiplexes each to its tunnel port, coalesces consecutive TCP
    /// segments of a flow back into GSO frames (software GRO, so the VM's stack gets
    /// 64 KiB frames instead of 1.5 KiB ones), and forwards them.
    fn service_endpoint(&mut self, e: usize) {
        let now = self.clock.now();
        let ep = self.endpoints[e].clone();
        let mut train = std::mem::take(&mut self.train);
        let mut co = std::mem::replace(&mut self.coalescer, Coalescer::new(Vec::new()));
        let mut target: Option<(usize, usize)> = None;
        for _ in 0..BUDGET {
            let t = match ep.recv_train(&mut train) {
                Ok(Some(t)) => t,
                Ok(None) => break,
                Err(err) => {
                    tracing::debug!("VXLAN port {}: receive failed: {err}", ep.port);
                    break;
                }
            };
            if t.truncated {
                continue;
            }
            for d in port_vxlan::datagrams(&train[..t.len], t.seg, &ep.stats) {
                let Some((vni, inner)) = d else { continue };
                let Some(&(b, p)) = self.demux.get(&TunnelKey { endpoint: e, remote: t.from.ip(), vni }) else {
                    ep.stats.unknown_tunnel.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    continue;
                };
                if target != Some((b, p)) {
                    if let Some((tb, tp)) = target {
                        co.flush_with(|f, v| self.deliver(tb, tp, f, v, now));
                    }
                    target = Some((b, p));
                }
                co.push(inner, |f, v| self.deliver(b, p, f, v, now));
            }
        }
        if let Some((tb, tp)) = target {
            co.flush_with(|f, v| self.deliver(tb, tp, f, v, now));
        }
        self.train = train;
        self.coalescer = co;
    }

    /// Hands one decapsulated (possibly coalesced) frame to the switch as received on
    /// tunnel port `p` of bridge `b`.
    fn deliver(&mut self, b: usize, p: usize, frame: &[u8], vnet: &VnetHdr, now: Time) {
        if self.bridges[b].failed[p] {
            return;
        }
        let area = self.buf.rx_area();
        let br = &mut self.bridges[b];
        let port = &mut br.ports[p];
        if frame.len() > area.len() {
            PortStats::inc(&port.stats.rx_errors);
            br.core.count_drop(DropReason::Oversize);
            return;
        }
        area[..frame.len()].copy_from_slice(frame);
        self.buf.set_len(frame.len());
        self.buf.vnet = *vnet;
        port.stats.rx(frame.len(), frame.first().is_some_and(|b| b & 1 == 1));
        if port.policer.as_mut().is_some_and(|pol| !pol.admit(now, frame.len())) {
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
        if let Some(fd) = port.io.fd() {
            let _ = self.epoll.delete(fd);
        }
        (self.events)(WorkerEvent::PortFailed { iface: port.iface, name: port.name.clone(), error });
    }

    /// Reads and forwards up to [`BUDGET`] frames from port `p` of bridge `b`.
    fn service_port(&mut self, b: usize, p: usize) {
        let now = self.clock.now();
        for _ in 0..BUDGET {
            if self.bridges[b].failed[p] {
                return;
            }
            let br = &mut self.bridges[b];
            let port = &mut br.ports[p];
            match port.io.recv(&mut self.buf) {
                Ok(Rx::Empty) => return,
                Ok(Rx::Bad) => {
                    PortStats::inc(&port.stats.rx_errors);
                    br.core.count_drop(DropReason::Malformed);
                }
                Ok(Rx::Frame) => {
                    let multicast = self.buf.frame().first().is_some_and(|b| b & 1 == 1);
                    port.stats.rx(self.buf.len(), multicast);
                    if port.policer.as_mut().is_some_and(|pol| !pol.admit(now, self.buf.len())) {
                        PortStats::inc(&port.stats.rx_dropped);
                        br.core.count_drop(DropReason::Policed);
                        continue;
                    }
                    if let Err(e) = self.forward(b, p, now) {
                        let (fb, fp, err) = e;
                        self.fail_port(fb, fp, err);
                    }
                }
                Err(e) => {
                    self.fail_port(b, p, e);
                    return;
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

/// Sends one frame, counting it as sent or dropped. `Err` only for a broken port.
fn send_counted(core: &mut Bridge, port: &DpPort, buf: &PacketBuf) -> io::Result<()> {
    match port.io.send(buf) {
        Ok(true) => port.stats.tx(buf.len()),
        Ok(false) => {
            core.count_drop(DropReason::TxFailed);
            PortStats::inc(&port.stats.tx_dropped);
        }
        Err(e) => return Err(e),
    }
    Ok(())
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
    use crate::wire::checksum;

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
        DpPort {
            iface: Uuid::random(),
            name: format!("p{n}"),
            ofport: OfPort::new(n).unwrap(),
            io,
            stats: Arc::default(),
            core,
            tunnel: None,
            policer: None,
        }
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
        let w = WorkerHandle::spawn(Clock::new(), |_| {}).unwrap();
        w.reconfigure(DpConfig {
            bridges: vec![DpBridge {
                uuid: Uuid::random(),
                name: "br0".into(),
                cfg: BridgeConfig::default(),
                ports: vec![
                    port(1, a.clone(), PortConfig::access(1, v10)),
                    port(2, b.clone(), PortConfig::trunk(2)),
                    port(3, c.clone(), PortConfig::access(3, v10)),
                ],
                statics: vec![],
            }],
            endpoints: vec![],
        });
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
        b.inject(&{
            let mut t = frame(MacAddr::BROADCAST, mac(2));
            t.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
            t
        }, VnetHdr { flags: 1, csum_start: 18, csum_offset: 20, ..Default::default() });
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

    /// A GSO frame flooded to a port without offloads arrives there as MSS-sized frames
    /// with full checksums; the offload-capable port gets it whole.
    #[test]
    fn gso_frames_are_segmented_for_ports_without_offloads() {
        let (a, b, c) = (Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(false).unwrap()));
        let w = WorkerHandle::spawn(Clock::new(), |_| {}).unwrap();
        w.reconfigure(DpConfig {
            bridges: vec![DpBridge {
                uuid: Uuid::random(),
                name: "br0".into(),
                cfg: BridgeConfig::default(),
                ports: vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2)), port(3, c.clone(), PortConfig::trunk(3))],
                statics: vec![],
            }],
            endpoints: vec![],
        });
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

    /// Waits for a oneshot from a plain thread (tests have no runtime).
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
