//! The receive side of VXLAN: [`Endpoint`], one UDP socket per receive queue for
//! every tunnel port with the same local address and UDP port.
//!
//! An endpoint is an [`Input`] that demultiplexes (see [`crate::port`]): it reads
//! datagrams, or GRO trains of them, [`RX_TRAINS`] per system call, checks each header
//! (the I flag must be set; other reserved bits are ignored, as RFC 7348 and Linux
//! do), coalesces consecutive TCP segments of a flow back into GSO frames (software
//! GRO, so a VM's stack gets 64 KiB frames instead of 1.5 KiB ones) and hands out the
//! frames tagged with (outer source, VNI); the worker finds the tunnel port by that
//! key. What one system call brought that does not fit the worker's slots, and the
//! frame being coalesced, wait in the worker's [`RxScratch`] ([`RxState`]) for the
//! next call of the same service.
//!
//! Per-datagram problems are counted in [`EndpointStats`] (`rvs/drops`), never errors:
//! the endpoint is no port, nothing takes it out.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use socket2::{Domain, Protocol, Socket, Type};

use super::parse_header;
use crate::port::{DemuxKey, Input, Rx, RxBatch, RxScratch};
use rvs_switch::offload::{Coalescer, Emit};
use rvs_switch::packet::{Area, PacketBuf};
use rvs_switch::types::Vni;
use rvs_switch::wire::vxlan::HEADER_LEN;
use rvs_sys::udp;

/// Datagrams or GRO trains one receive call may return (recvmmsg), each into its own
/// [`TRAIN_ROOM`] bytes: a kernel peer sends small frames one datagram at a time,
/// which then cost one system call per few frames, not each.
pub const RX_TRAINS: usize = 8;
/// Room for one GRO train: 64 KiB of datagrams and slack.
pub const TRAIN_ROOM: usize = 65_536 + 4096;

/// Counters of a receive endpoint (shown by `rvs/drops`).
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// Receive calls that returned data (datagrams or GRO trains, several per call).
    pub receives: AtomicU64,
    pub received: AtomicU64,
    /// Datagrams too short (empty ones too) or without the I flag.
    pub bad_header: AtomicU64,
    /// Valid datagrams from an address/VNI no tunnel port is configured for.
    pub unknown_tunnel: AtomicU64,
    /// Datagrams larger than the receive buffer.
    pub truncated: AtomicU64,
}

/// A shared receive endpoint: one UDP socket per receive queue, all bound to the same
/// address and port in one `SO_REUSEPORT` group, so the kernel spreads the tunnels'
/// traffic over them by the outer flow (whose source port senders derive from the
/// inner flow): each worker reads its own socket, one flow stays on one.
pub struct Endpoint {
    socks: Vec<Socket>,
    pub local: Option<IpAddr>,
    pub port: u16,
    pub v6: bool,
    gro: bool,
    pub stats: EndpointStats,
}

/// Splits a receive train into its datagrams and checks each header: yields the VNI
/// and the inner frame, or `None` for a datagram that is not valid VXLAN (counted).
pub fn datagrams<'a>(train: &'a [u8], seg: Option<u16>, stats: &'a EndpointStats) -> impl Iterator<Item = Option<(Vni, &'a [u8])>> + 'a {
    let mut off = 0;
    std::iter::from_fn(move || {
        let r = datagram_at(train.len(), seg, off)?;
        off = r.end.max(off + 1);
        Some(check(&train[r], stats))
    })
}

/// Where the datagram that starts at `off` of a train of `len` bytes (datagrams of
/// `seg` bytes, or one) lies; `None` past the last. An empty train is one empty
/// datagram; the next starts at `end`, or one further when that is `off` itself.
fn datagram_at(len: usize, seg: Option<u16>, off: usize) -> Option<Range<usize>> {
    if off > len || (off == len && len > 0) {
        return None;
    }
    let size = seg.map_or(len, usize::from).max(1);
    Some(off..(off + size).min(len))
}

/// Counts datagram `d` and checks its header: the VNI and the inner frame, or `None`
/// (counted as a bad header).
fn check<'a>(d: &'a [u8], stats: &EndpointStats) -> Option<(Vni, &'a [u8])> {
    stats.received.fetch_add(1, Relaxed);
    match parse_header(d) {
        Some(vni) => Some((vni, &d[HEADER_LEN..])),
        None => {
            stats.bad_header.fetch_add(1, Relaxed);
            None
        }
    }
}

impl Endpoint {
    /// Binds `queues` sockets to `local` (or the wildcard of the family) : `port`.
    /// They are always opened with `SO_REUSEPORT`, so a new endpoint with another
    /// number of queues can be bound while the old one is still being read. (A socket
    /// bound there without it — the kernel's own vxlan device, say — still makes this
    /// fail, as it should.)
    pub fn open(local: Option<IpAddr>, port: u16, v6: bool, queues: usize) -> io::Result<Endpoint> {
        let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
        let ip = local.unwrap_or(if v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) });
        let mut socks = Vec::new();
        let mut gro = true;
        for _ in 0..queues.max(1) {
            let sock = Socket::new(domain, Type::DGRAM.nonblocking().cloexec(), Some(Protocol::UDP))?;
            if v6 {
                sock.set_only_v6(true)?;
            }
            sock.set_reuse_port(true)?;
            let _ = sock.set_recv_buffer_size(8 << 20);
            // Receive-side UDP GRO: the kernel hands over trains of same-size datagrams
            // of one flow, one system call for up to 64 KiB (best effort; old kernels
            // lack it).
            gro &= udp::set_gro(sock.as_fd(), true).is_ok();
            sock.bind(&SocketAddr::new(ip, port).into())?;
            socks.push(sock);
        }
        Ok(Endpoint { socks, local, port, v6, gro, stats: EndpointStats::default() })
    }

    /// Whether the socket delivers GRO trains.
    pub fn gro(&self) -> bool {
        self.gro
    }

    /// Receives up to `out.len()` datagrams or GRO trains of datagrams with one system
    /// call: message `i` lands in `buf[i * each..(i + 1) * each]` (`each` should hold
    /// 64 KiB) and `out[i]` says how long it is and where it came from (`None`: a sender
    /// address of an unknown family, skipped). Each datagram is `[VXLAN header][inner
    /// frame]`; split them with [`datagrams`]. Returns how many messages arrived.
    pub fn recv_trains(&self, queue: usize, buf: &mut [u8], each: usize, out: &mut [Option<udp::Train>]) -> io::Result<usize> {
        let Some(sock) = self.socks.get(queue) else { return Ok(0) };
        let n = udp::recv_trains(sock.as_fd(), buf, each, out)?;
        if n > 0 {
            self.stats.receives.fetch_add(1, Relaxed);
            let cut = out[..n].iter().flatten().filter(|t| t.truncated).count();
            self.stats.truncated.fetch_add(cut as u64, Relaxed);
        }
        Ok(n)
    }

    /// The socket of receive queue `queue` (< [`Endpoint::queues`]).
    pub fn fd(&self, queue: usize) -> BorrowedFd<'_> {
        self.socks[queue].as_fd()
    }
}

/// What an endpoint keeps in the worker's [`RxScratch`] between the receive calls of
/// one service: the trains the last system call brought, how far they were handed
/// out, and the coalescer with the frame it is building. Empty (and nothing allocated)
/// until an endpoint first uses it.
#[derive(Default)]
pub struct RxState {
    /// [`RX_TRAINS`] pieces of [`TRAIN_ROOM`] bytes.
    buf: Vec<u8>,
    got: [Option<udp::Train>; RX_TRAINS],
    /// Messages in `got`; the one being handed out, and where its next datagram starts.
    trains: usize,
    at: usize,
    off: usize,
    /// Datagrams the last system call brought: a frame that came alone is not held
    /// for a batched send.
    call_frames: usize,
    co: Option<Coalescer<Area>>,
    /// Whose frame the coalescer is building.
    building: Option<DemuxKey>,
}

impl RxState {
    /// A state with its buffers allocated.
    pub fn new() -> RxState {
        let mut s = RxState::default();
        s.allocate();
        s
    }

    fn allocate(&mut self) {
        if self.buf.is_empty() {
            self.buf = vec![0u8; RX_TRAINS * TRAIN_ROOM];
        }
        if self.co.is_none() {
            self.co = Some(Coalescer::new(Area(PacketBuf::new())));
        }
    }

    /// Takes the `n` messages a receive call put in `got`.
    fn start(&mut self, n: usize) {
        (self.trains, self.at, self.off) = (n, 0, 0);
        self.call_frames = self.got[..n].iter().flatten().map(|t| t.seg.map_or(1, |seg| t.len.div_ceil(usize::from(seg).max(1)))).sum();
    }

    /// The next datagram not handed out yet: its sender and where it lies in `buf`.
    /// Truncated messages are skipped (counted when received).
    fn next(&mut self) -> Option<(IpAddr, Range<usize>)> {
        while self.at < self.trains {
            if let Some(t) = self.got[self.at].filter(|t| !t.truncated)
                && let Some(r) = datagram_at(t.len, t.seg, self.off)
            {
                self.off = r.end.max(self.off + 1);
                let room = self.at * TRAIN_ROOM;
                return Some((t.from.ip(), room + r.start..room + r.end));
            }
            (self.at, self.off) = (self.at + 1, 0);
        }
        None
    }

    /// Whether the coalescer holds a frame.
    fn building(&self) -> bool {
        self.co.as_ref().is_some_and(|c| !c.is_empty())
    }
}

/// Puts frame `f` for the port of `key` into the worker's slot `buf`, its outcome
/// into `out`. A frame the coalescer built is not copied: the slot's buffer and the
/// coalescer's are swapped.
fn put(buf: &mut PacketBuf, out: &mut Rx, key: DemuxKey, alone: bool, f: Emit<'_, Area>, stats: &EndpointStats) {
    match f {
        Emit::Built { buf: area, len, vnet } => {
            std::mem::swap(buf, &mut area.0);
            buf.set_frame(len, vnet);
            // The receiver's TCP waits for it: not held.
            *out = Rx::For { key, alone: true };
        }
        Emit::AsIs(frame) => {
            let room = buf.rx_area();
            // (Never true: a slot holds any UDP payload.)
            if frame.len() > room.len() {
                stats.truncated.fetch_add(1, Relaxed);
                *out = Rx::Bad;
                return;
            }
            room[..frame.len()].copy_from_slice(frame);
            buf.set_len(frame.len());
            *out = Rx::For { key, alone };
        }
    }
}

impl Input for Endpoint {
    fn queues(&self) -> usize {
        self.socks.len()
    }

    fn queue_fd(&self, q: usize) -> Option<BorrowedFd<'_>> {
        self.socks.get(q).map(|s| s.as_fd())
    }

    /// As many as the worker's slots.
    fn batch(&self) -> usize {
        usize::MAX
    }

    fn label(&self) -> String {
        format!("vxlan:{}", self.port)
    }

    /// Counted per datagram: a frame coalesced from several counts as those.
    fn unclaimed(&self, buf: &PacketBuf) {
        let v = &buf.vnet;
        let segs = if v.is_gso() && v.gso_size > 0 { buf.len().saturating_sub(usize::from(v.hdr_len)).div_ceil(usize::from(v.gso_size)).max(1) } else { 1 };
        self.stats.unknown_tunnel.fetch_add(segs as u64, Relaxed);
    }

    /// Hands out the datagrams of the last receive call not handed out yet (each
    /// through the coalescer, which is flushed when the key changes); when they are
    /// all out, reads the next call's — at most one system call per call of this, so
    /// that the frames of one system call leave together — unless the worker is
    /// [`RxScratch::finishing`]. When the socket is empty, or the worker finishing,
    /// the frame being built goes out too, and nothing is left pending.
    fn recv_batch(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx], scratch: &mut RxScratch) -> io::Result<RxBatch> {
        let finishing = scratch.finishing;
        let s = &mut scratch.vxlan;
        s.allocate();
        let want = bufs.len().min(out.len());
        let (mut n, mut read) = (0, 0);
        loop {
            // A datagram may hand out two frames: the one built before it, and itself.
            while n + 2 <= want {
                let Some((from, r)) = s.next() else { break };
                let Some((vni, inner)) = check(&s.buf[r], &self.stats) else { continue };
                let key = DemuxKey { from, id: vni.get() };
                let alone = s.call_frames <= 1;
                let Some(co) = s.co.as_mut() else { break };
                if s.building != Some(key) {
                    if let Some(prev) = s.building {
                        co.flush_with(|f| {
                            put(&mut bufs[n], &mut out[n], prev, true, f, &self.stats);
                            n += 1;
                        });
                    }
                    s.building = Some(key);
                }
                co.push(inner, |f| {
                    put(&mut bufs[n], &mut out[n], key, alone, f, &self.stats);
                    n += 1;
                });
            }
            if n + 2 > want {
                return Ok(RxBatch { n, more: true, read, pending: true, dropped: 0 });
            }
            if read > 0 {
                // This call's system call is made: its frames leave before the next.
                return Ok(RxBatch { n, more: true, read, pending: s.building(), dropped: 0 });
            }
            if !finishing {
                match self.recv_trains(q, &mut s.buf, TRAIN_ROOM, &mut s.got) {
                    Ok(0) => {}
                    Ok(k) => {
                        s.start(k);
                        read = s.call_frames;
                        continue;
                    }
                    Err(e) => tracing::debug!("VXLAN port {}: receive failed: {e}", self.port),
                }
            }
            // Nothing more to read now: the frame being built leaves too.
            if let (Some(co), Some(key)) = (s.co.as_mut(), s.building.take()) {
                co.flush_with(|f| {
                    put(&mut bufs[n], &mut out[n], key, true, f, &self.stats);
                    n += 1;
                });
            }
            return Ok(RxBatch { n, more: false, read, pending: false, dropped: 0 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One receive call counts once; a datagram larger than its room is counted as
    /// truncated (and reported so, for the caller to drop), the others come whole.
    #[test]
    fn endpoint_counts_calls_and_truncated_datagrams() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ep = Endpoint::open(Some(lo), 0, false, 1).unwrap();
        let at = socket2::SockRef::from(&ep.fd(0)).local_addr().unwrap().as_socket().unwrap();
        let peer = std::net::UdpSocket::bind((lo, 0)).unwrap();
        for d in [&[1u8; 100][..], &[2u8; 700], &[3u8; 200]] {
            peer.send_to(d, at).unwrap();
        }
        let (each, mut buf, mut out) = (512, vec![0u8; 4 * 512], [None; 4]);
        let mut n = 0;
        for _ in 0..100 {
            n = ep.recv_trains(0, &mut buf, each, &mut out).unwrap();
            if n > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(n, 3);
        let got: Vec<(usize, bool)> = out[..n].iter().map(|t| t.map(|t| (t.len, t.truncated)).unwrap()).collect();
        assert_eq!(got, [(100, false), (512, true), (200, false)]);
        assert_eq!(ep.stats.receives.load(Relaxed), 1);
        assert_eq!(ep.stats.truncated.load(Relaxed), 1);
        assert_eq!(ep.recv_trains(0, &mut buf, each, &mut out).unwrap(), 0);
        assert_eq!(ep.stats.receives.load(Relaxed), 1, "an empty call is not counted");
    }

    #[test]
    fn an_empty_datagram_is_counted_as_a_bad_header() {
        let stats = EndpointStats::default();
        let got: Vec<_> = datagrams(&[], None, &stats).collect();
        assert_eq!(got, [None]);
        assert_eq!((stats.received.load(Relaxed), stats.bad_header.load(Relaxed)), (1, 1));
    }
}
