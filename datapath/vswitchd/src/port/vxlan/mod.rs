//! VXLAN (RFC 7348) through the host's own IP stack: UDP sockets, so routing,
//! neighbour resolution and the underlay MTU are the kernel's.
//!
//! * [`Endpoint`] (`endpoint`): one receive socket per queue for each (local address,
//!   UDP port), shared by every tunnel port that uses it: an [`crate::port::Input`]
//!   that tags the frames it reads with (outer source IP, VNI), by which the worker
//!   finds the tunnel port (see [`crate::port`]).
//! * [`SendPool`]: a few UDP sockets bound to ephemeral ports (the kernel picks them in
//!   `ip_local_port_range`, 32768–60999 by default), shared by tunnels with the same
//!   socket settings. A hash of the inner flow picks the socket, so the outer source
//!   port follows the flow and receivers can spread load (RSS/ECMP), as OVS and Linux
//!   do.
//! * [`Tunnel`]: a tunnel port (one remote, one VNI): the [`PortIo`] the worker sends
//!   through, receiving through its endpoint ([`PortIo::rx_via`]). Frames leave as `[VXLAN header][inner frame]` gathered in one `sendmsg`,
//!   never copied. An inner frame that no longer fits the path once encapsulated is
//!   refused by the kernel (DF set, `EMSGSIZE`): it is dropped, counted per tunnel port
//!   (`tx_mtu_exceeded` in the interface statistics) and logged with the sizes involved,
//!   at most once every few seconds per port.
//! * [`Sockets`] (`sockets`): the endpoints and send pools open, so that tunnels that
//!   can share them do.

mod endpoint;
mod sockets;

use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

pub use endpoint::{Endpoint, EndpointStats, RX_TRAINS, RxState, TRAIN_ROOM, datagrams};
pub use sockets::Sockets;

use super::device::{Device, Presence, Requeue};
use super::{DemuxKey, GsoSent, Input, PortIo, RxVia};
use rvs_switch::offload::{Layer, OffloadError, Segmenter};
use rvs_switch::packet::PacketBuf;
use rvs_switch::types::Vni;
use rvs_switch::wire::vxlan::{HEADER_LEN, VxlanHeader, VxlanRepr};
use rvs_sys::udp;

/// Encapsulation overhead that counts against the underlay's IP MTU: outer IPv4 (or
/// IPv6) + UDP + VXLAN. (The usual "50/70 bytes" also count the outer Ethernet header,
/// which the MTU does not include.)
pub const OVERHEAD_V4: usize = 20 + 8 + HEADER_LEN;
pub const OVERHEAD_V6: usize = 40 + 8 + HEADER_LEN;
/// Sockets per send pool (distinct outer source ports).
const POOL_SIZE: usize = 8;
/// Minimum time between two MTU log lines of one tunnel.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The 8-byte header for `vni`: flags exactly 0x08, every reserved bit zero.
pub fn header(vni: Vni) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    VxlanRepr { vni }.emit(&mut VxlanHeader::new_unchecked(&mut b[..]));
    b
}

/// The VNI of a received header, or `None` if it is short or lacks the I flag (other
/// reserved bits are ignored, as RFC 7348 section 5 asks of receivers).
pub fn parse_header(b: &[u8]) -> Option<Vni> {
    let h = VxlanHeader::new_checked(b).ok()?;
    VxlanRepr::parse(&h).ok().map(|r| r.vni)
}

/// Socket settings a tunnel needs; tunnels with equal settings share a [`SendPool`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxSettings {
    pub local: Option<IpAddr>,
    pub v6: bool,
    pub ttl: u8,
    /// DSCP/ECN byte for the outer header.
    pub tos: u8,
    /// Set DF on the outer IPv4 header (`df_default`, OVS's default is true).
    pub df: bool,
    /// `csum` as configured (OVS's default is false). rvs computes the outer UDP
    /// checksum in every case (see [`SendPool::open`]).
    pub csum: bool,
}

/// A few UDP sockets on ephemeral ports.
pub struct SendPool {
    socks: Vec<Socket>,
    pub settings: TxSettings,
}

impl SendPool {
    pub fn open(s: &TxSettings) -> io::Result<SendPool> {
        let mut socks = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            let domain = if s.v6 { Domain::IPV6 } else { Domain::IPV4 };
            let sock = Socket::new(domain, Type::DGRAM.nonblocking().cloexec(), Some(Protocol::UDP))?;
            let ip = s.local.unwrap_or(if s.v6 { IpAddr::V6(Ipv6Addr::UNSPECIFIED) } else { IpAddr::V4(Ipv4Addr::UNSPECIFIED) });
            if s.v6 {
                sock.set_only_v6(true)?;
                sock.set_unicast_hops_v6(u32::from(s.ttl))?;
                let _ = sock.set_tclass_v6(u32::from(s.tos));
            } else {
                sock.set_ttl_v4(u32::from(s.ttl))?;
                sock.set_tos_v4(u32::from(s.tos))?;
                // The outer UDP checksum is always computed: Linux's UDP segmentation
                // offload refuses sockets with SO_NO_CHECK, and every receiver accepts
                // a checksum. (On virtual and most real devices it costs nothing: it
                // is left partial and offloaded.) `csum=false` is therefore accepted
                // but has no effect.
                udp::set_no_checksum(sock.as_fd(), false)?;
            }
            udp::set_dont_fragment(sock.as_fd(), s.v6, s.df)?;
            let _ = sock.set_send_buffer_size(4 << 20);
            sock.bind(&SocketAddr::new(ip, 0).into())?;
            socks.push(sock);
        }
        Ok(SendPool { socks, settings: s.clone() })
    }

    fn pick(&self, hash: u32) -> BorrowedFd<'_> {
        self.socks[hash as usize % self.socks.len()].as_fd()
    }
}

/// Per-tunnel counters beyond the common port statistics.
#[derive(Debug, Default)]
pub struct TunnelStats {
    /// Frames dropped because they do not fit the underlay path once encapsulated.
    pub mtu_exceeded: AtomicU64,
    /// UDP GSO sends the kernel refused (EIO/EINVAL), after which the tunnel sends
    /// one datagram per segment.
    pub gso_fallbacks: AtomicU64,
    /// Send system calls made (a UDP GSO train or a sendmmsg batch counts once).
    pub sends: AtomicU64,
}

/// Linux accepts at most this many segments in one UDP GSO send (UDP_MAX_SEGMENTS).
const UDP_MAX_SEGMENTS: usize = 64;
/// Fewest frames of a batch sent as one UDP GSO train (shorter runs go with the
/// batch's sendmmsg).
const MIN_TRAIN: usize = 4;
/// Largest UDP payload in one GSO send (the UDP length field is 16 bits).
const UDP_GSO_MAX_BYTES: usize = 65_000;

/// A tunnel port.
pub struct Tunnel {
    pub name: String,
    pub remote: SocketAddr,
    pub vni: Vni,
    pool: Arc<SendPool>,
    /// Where its traffic arrives (none: the tunnel only sends, as in some tests).
    endpoint: Option<Arc<Endpoint>>,
    pub stats: TunnelStats,
    last_log: Mutex<Option<Instant>>,
    /// Cleared when the kernel refuses UDP GSO.
    gso: std::sync::atomic::AtomicBool,
}

impl Tunnel {
    pub fn new(name: &str, remote: SocketAddr, vni: Vni, pool: Arc<SendPool>) -> Tunnel {
        Tunnel {
            name: name.into(),
            remote,
            vni,
            pool,
            endpoint: None,
            stats: TunnelStats::default(),
            last_log: Mutex::new(None),
            gso: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// The tunnel receiving through `ep`.
    pub fn receiving_on(self, ep: Arc<Endpoint>) -> Tunnel {
        Tunnel { endpoint: Some(ep), ..self }
    }

    pub fn pool(&self) -> &Arc<SendPool> {
        &self.pool
    }

    fn overhead(&self) -> usize {
        if self.remote.is_ipv6() { OVERHEAD_V6 } else { OVERHEAD_V4 }
    }

    /// Logs an MTU drop, at most once per [`LOG_EVERY`].
    fn log_too_big(&self, inner: usize) {
        let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let n = self.stats.mtu_exceeded.load(Relaxed);
        tracing::warn!(
            "{}: dropped a {inner}-byte frame: {} bytes once encapsulated ({}-byte VXLAN/UDP/IP overhead) do not fit the path MTU to {} ({n} such drops so far; raise the underlay MTU to at least {} or lower the VMs' MTU)",
            self.name,
            inner + self.overhead(),
            self.overhead(),
            self.remote.ip(),
            inner + self.overhead()
        );
    }
}

impl Tunnel {
    /// Sends the datagrams gathered in `iov` (each from two slices: headers, payload)
    /// one by one. Returns (sent, dropped).
    fn send_each(&self, sock: BorrowedFd<'_>, iov: &[IoSlice<'_>]) -> io::Result<(usize, usize)> {
        let (mut sent, mut dropped) = (0, 0);
        for d in iov.chunks(2) {
            self.stats.sends.fetch_add(1, Relaxed);
            let len: usize = d.iter().map(|s| s.len()).sum();
            match self.classify(udp::send_to(sock, d, &self.remote), len - HEADER_LEN)? {
                true => sent += 1,
                false => dropped += 1,
            }
        }
        Ok((sent, dropped))
    }

    /// Maps a send result: `Ok(true)` sent, `Ok(false)` dropped (counted here when it is
    /// an MTU problem), `Err` a broken socket.
    fn classify(&self, r: io::Result<usize>, inner_len: usize) -> io::Result<bool> {
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                self.stats.mtu_exceeded.fetch_add(1, Relaxed);
                self.log_too_big(inner_len);
                Ok(false)
            }
            // Unreachable/refused peers, full queues, routes not yet there: drops.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) | Some(libc::ECONNREFUSED) | Some(libc::EADDRNOTAVAIL) | Some(libc::EPERM)
                ) || super::is_transient_tx(&e) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Sends the frames `bufs[ids]` (all of one length but the last, which may be
    /// shorter) as one UDP GSO train. `Some(true)` sent, `Some(false)` dropped (counted
    /// as a single send would be), `Err` with the kernel's answer when it refused the
    /// train or found it too big for the path (then the caller sends the frames one by
    /// one, see [`Self::refused_gso`]).
    fn send_train(&self, sock: BorrowedFd<'_>, bufs: &[&PacketBuf], ids: &[usize]) -> io::Result<Result<bool, io::Error>> {
        let hdr = header(self.vni);
        let iov = gather(&hdr, bufs, ids);
        let inner = bufs[ids[0]].len();
        self.stats.sends.fetch_add(1, Relaxed);
        match udp::send_gso(sock, &iov[..2 * ids.len()], (HEADER_LEN + inner) as u16, &self.remote) {
            // Too big for the path (`EMSGSIZE` here, or `EINVAL`) or no GSO: one by
            // one, so that each frame is judged and counted as it would be alone.
            Err(e) if refusal(&e) || e.raw_os_error() == Some(libc::EMSGSIZE) => Ok(Err(e)),
            r => self.classify(r, inner).map(Ok),
        }
    }

    /// After the kernel answered a UDP GSO send with `e` and its datagrams were sent one
    /// by one: if any of them left, the kernel (or the route's device) cannot do UDP
    /// GSO and the tunnel stops asking, for good (counted in `gso_fallbacks`). If none
    /// did, the datagrams were too big for the path (which some kernels report for a
    /// train as `EINVAL`), and UDP GSO stays on for when the MTU has been fixed.
    fn refused_gso(&self, e: &io::Error, any_sent: bool) {
        if any_sent && self.gso.swap(false, Relaxed) {
            self.stats.gso_fallbacks.fetch_add(1, Relaxed);
            tracing::warn!("{}: the kernel refused UDP GSO ({e}); sending one datagram per segment", self.name);
        }
    }

    /// Sends the frames `bufs[ids]` with sendmmsg(2), one datagram each, and fills
    /// `sent` for them.
    fn send_each_batched(&self, sock: BorrowedFd<'_>, bufs: &[&PacketBuf], ids: &[usize], sent: &mut [bool]) -> io::Result<()> {
        const MAX: usize = rvs_sys::MAX_SEND_BATCH;
        let hdr = header(self.vni);
        let many = |from: usize| {
            let iov = gather(&hdr, bufs, &ids[from..]);
            self.stats.sends.fetch_add(1, Relaxed);
            udp::send_many_to(sock, &iov[..2 * (ids.len() - from)], 2, &self.remote)
        };
        let mut ok = [false; MAX];
        let r = super::send_batched(&mut ok[..ids.len()], many, |i| self.send(bufs[ids[i]]), |i, e| self.classify(Err(e), bufs[ids[i]].len()));
        for (&j, &o) in ids.iter().zip(&ok) {
            sent[j] = o;
        }
        r
    }
}

/// The iovecs of the datagrams `[hdr][bufs[j]]` for `j` in `ids` (at most
/// [`rvs_sys::MAX_SEND_BATCH`]), two per datagram, empty ones after them.
fn gather<'a>(hdr: &'a [u8; HEADER_LEN], bufs: &[&'a PacketBuf], ids: &[usize]) -> [IoSlice<'a>; 2 * rvs_sys::MAX_SEND_BATCH] {
    let mut slices = ids.iter().flat_map(|&j| [IoSlice::new(hdr), IoSlice::new(bufs[j].frame())]);
    std::array::from_fn(|_| slices.next().unwrap_or_else(|| IoSlice::new(&[])))
}

/// Whether a UDP GSO send's error is the kernel refusing the train: `EIO` (the device
/// cannot), `EINVAL` (no UDP GSO, or a segment bigger than the path MTU).
fn refusal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL))
}

/// How many of the frames of lengths `lens` (at least one) can leave, from the first,
/// as one UDP GSO train: frames of the first one's length, then at most one shorter,
/// within the kernel's limits on segments and bytes per send.
fn train_len(lens: &[usize]) -> usize {
    let unit = HEADER_LEN + lens[0];
    let most = UDP_MAX_SEGMENTS.min(UDP_GSO_MAX_BYTES / unit).max(1);
    let mut n = 1;
    while n < lens.len() && n < most {
        if lens[n] == lens[0] {
            n += 1;
        } else {
            n += usize::from(lens[n] < lens[0]);
            break;
        }
    }
    n
}

/// A tunnel has no receive queue of its own: it receives through its endpoint.
impl Input for Tunnel {
    fn queues(&self) -> usize {
        0
    }

    fn queue_fd(&self, _q: usize) -> Option<BorrowedFd<'_>> {
        None
    }
}

impl PortIo for Tunnel {
    fn rx_via(&self) -> RxVia {
        match &self.endpoint {
            Some(ep) => RxVia::Shared { input: ep.clone(), key: DemuxKey { from: self.remote.ip(), id: self.vni.get() } },
            None => RxVia::Own,
        }
    }

    fn send(&self, buf: &PacketBuf) -> io::Result<bool> {
        let hdr = header(self.vni);
        let frame = buf.frame();
        let sock = self.pool.pick(flow_hash(frame));
        self.stats.sends.fetch_add(1, Relaxed);
        self.classify(udp::send_to(sock, &[IoSlice::new(&hdr), IoSlice::new(frame)], &self.remote), frame.len())
    }

    fn batches_tx(&self) -> bool {
        true
    }

    /// The frames are grouped by the pool socket their flow goes out through (so each
    /// flow stays in order). In each group, a run of at least [`MIN_TRAIN`] frames of
    /// one length (the last may be shorter) leaves as one UDP GSO train — one
    /// `sendmsg`, and one pass through the kernel's stacks on both nodes instead of one
    /// per datagram; the other frames go with one sendmmsg(2) per up to
    /// [`rvs_sys::MAX_SEND_BATCH`], so that mixed traffic is not cut into many
    /// small sends.
    fn send_batch(&self, bufs: &[&PacketBuf], sent: &mut [bool]) -> io::Result<()> {
        const MAX: usize = rvs_sys::MAX_SEND_BATCH;
        debug_assert_eq!(bufs.len(), sent.len());
        for (bufs, sent) in bufs.chunks(MAX).zip(sent.chunks_mut(MAX)) {
            let socks: [Option<BorrowedFd<'_>>; MAX] = std::array::from_fn(|i| bufs.get(i).map(|b| self.pool.pick(flow_hash(b.frame()))));
            let mut grouped = [false; MAX];
            for first in 0..bufs.len() {
                let Some(sock) = socks[first].filter(|_| !grouped[first]) else { continue };
                // The frames that go through `sock`, in order.
                let (mut ids, mut k) = ([0usize; MAX], 0);
                for j in first..bufs.len() {
                    if !grouped[j] && socks[j].is_some_and(|s| s.as_raw_fd() == sock.as_raw_fd()) {
                        grouped[j] = true;
                        ids[k] = j;
                        k += 1;
                    }
                }
                let lens: [usize; MAX] = std::array::from_fn(|i| if i < k { bufs[ids[i]].len() } else { 0 });
                let mut from = 0;
                while from < k {
                    let train = |at: usize| if self.gso.load(Relaxed) { train_len(&lens[at..k]) } else { 1 };
                    let run = train(from);
                    let mut end = from + run;
                    if run >= MIN_TRAIN {
                        match self.send_train(sock, bufs, &ids[from..end])? {
                            Ok(ok) => ids[from..end].iter().for_each(|&j| sent[j] = ok),
                            Err(e) => {
                                self.send_each_batched(sock, bufs, &ids[from..end], sent)?;
                                self.refused_gso(&e, ids[from..end].iter().any(|&j| sent[j]));
                            }
                        }
                    } else {
                        while end < k && train(end) < MIN_TRAIN {
                            end += 1;
                        }
                        self.send_each_batched(sock, bufs, &ids[from..end], sent)?;
                    }
                    from = end;
                }
            }
        }
        Ok(())
    }

    /// Cuts a TCP/UDP GSO frame at its MSS into `[VXLAN header][inner segment]`
    /// datagrams and sends up to 64 of them per `sendmsg` with UDP GSO: one system call
    /// instead of one per segment. Only the headers are written (into `scratch`); the
    /// payloads are gathered from the frame where it lies, so the kernel's copy into the
    /// socket is the only one. A train the kernel refuses is sent one datagram at a
    /// time, and the tunnel stops using UDP GSO when that worked (see
    /// [`Tunnel::refused_gso`]).
    fn send_gso(&self, buf: &PacketBuf, scratch: &mut [u8]) -> io::Result<Option<GsoSent>> {
        let mut seg = match Segmenter::new(buf.frame(), &buf.vnet) {
            Ok(s) => s,
            Err(_) => {
                return Ok(Some(GsoSent { dropped: 1, ..GsoSent::default() }));
            }
        };
        let hdr = header(self.vni);
        let block = HEADER_LEN + seg.header_len(Layer::L2);
        let unit = HEADER_LEN + seg.segment_len(Layer::L2);
        let per_call = UDP_MAX_SEGMENTS.min(UDP_GSO_MAX_BYTES / unit).min(scratch.len() / block).max(1);
        let sock = self.pool.pick(flow_hash(buf.frame()));
        let mut out = GsoSent::default();
        while seg.remaining() > 0 {
            let mut payloads: [&[u8]; UDP_MAX_SEGMENTS] = [&[]; UDP_MAX_SEGMENTS];
            let (n, bytes) = match gather_train(&mut seg, &hdr, scratch, &mut payloads[..per_call]) {
                Ok(t) => t,
                Err(_) => {
                    out.dropped += seg.remaining().max(1);
                    return Ok(Some(out));
                }
            };
            out.bytes += bytes;
            if n == 0 {
                out.dropped += seg.remaining();
                break;
            }
            let mut pieces = scratch.chunks_exact(block).zip(&payloads[..n]).flat_map(|(h, p)| [IoSlice::new(h), IoSlice::new(p)]);
            let iov: [IoSlice<'_>; 2 * UDP_MAX_SEGMENTS] = std::array::from_fn(|_| pieces.next().unwrap_or_else(|| IoSlice::new(&[])));
            let iov = &iov[..2 * n];
            if n > 1 && self.gso.load(Relaxed) {
                self.stats.sends.fetch_add(1, Relaxed);
                match udp::send_gso(sock, iov, unit as u16, &self.remote) {
                    Err(e) if refusal(&e) => {
                        let (s, d) = self.send_each(sock, iov)?;
                        self.refused_gso(&e, s > 0);
                        out.sent += s;
                        out.dropped += d;
                        continue;
                    }
                    r => {
                        match self.classify(r, unit - HEADER_LEN)? {
                            true => out.sent += n,
                            false => out.dropped += n,
                        }
                        continue;
                    }
                }
            }
            let (s, d) = self.send_each(sock, iov)?;
            out.sent += s;
            out.dropped += d;
        }
        Ok(Some(out))
    }

    fn offloads(&self) -> bool {
        false
    }
}

impl Device for Tunnel {
    /// A tunnel's limit is the underlay's, met when sending (`tx_mtu_exceeded`).
    fn mtu(&self, _name: &str) -> Option<u32> {
        None
    }

    /// Its endpoint has one socket per queue: the tunnel is opened again, on an
    /// endpoint with the new number.
    fn requeue(&self, queues: usize) -> Requeue {
        match &self.endpoint {
            Some(ep) if ep.queues() != queues => Requeue::Reopen,
            _ => Requeue::Keep,
        }
    }

    fn is_tunnel(&self) -> bool {
        true
    }

    fn presence(&self, _name: &str) -> Presence {
        Presence::Virtual
    }

    fn extra_statistics(&self, out: &mut Vec<(&'static str, u64)>) {
        out.push(("tx_mtu_exceeded", self.stats.mtu_exceeded.load(Relaxed)));
    }
}

/// Writes the headers of the next encapsulated datagrams — each the VXLAN header `hdr`
/// and the headers of the next segment of `seg`, `HEADER_LEN + seg.header_len(L2)`
/// bytes — back to back into `hdrs`, and their payloads (slices of the frame) into
/// `payloads`: datagram `i` is header block `i` followed by `payloads[i]`, ready to be
/// gathered into one `UDP_SEGMENT` send. Stops when `hdrs` or `payloads` is full or the
/// frame is done; returns the datagrams written and the inner bytes among them. `Err`
/// for a frame the segmenter cannot cut.
pub fn gather_train<'a>(seg: &mut Segmenter<'a>, hdr: &[u8; HEADER_LEN], hdrs: &mut [u8], payloads: &mut [&'a [u8]]) -> Result<(usize, usize), OffloadError> {
    let block = HEADER_LEN + seg.header_len(Layer::L2);
    let (mut n, mut bytes) = (0, 0);
    for (room, slot) in hdrs.chunks_exact_mut(block).zip(payloads.iter_mut()) {
        room[..HEADER_LEN].copy_from_slice(hdr);
        let Some((h, payload)) = seg.next_headers_into(room, HEADER_LEN, Layer::L2)? else { break };
        *slot = payload;
        bytes += h + payload.len();
        n += 1;
    }
    Ok((n, bytes))
}

/// A hash of the inner flow (MACs, IP addresses, L4 ports when present), for the choice
/// of the outer source port. Not keyed: it only spreads flows over a few sockets.
pub fn flow_hash(frame: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut mix = |b: &[u8]| {
        for &x in b {
            h = (h ^ u32::from(x)).wrapping_mul(0x0100_0193);
        }
    };
    mix(frame.get(..12).unwrap_or(frame));
    let mut off = 12;
    let mut et = frame.get(off..off + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    if et == Some(0x8100) {
        off += 4;
        et = frame.get(off..off + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    }
    let l3 = off + 2;
    let (addrs, proto, l4) = match et {
        Some(0x0800) => {
            let ihl = frame.get(l3).map_or(20, |b| usize::from(b & 0x0f) * 4);
            (frame.get(l3 + 12..l3 + 20), frame.get(l3 + 9).copied(), l3 + ihl)
        }
        Some(0x86dd) => (frame.get(l3 + 8..l3 + 40), frame.get(l3 + 6).copied(), l3 + 40),
        _ => (None, None, 0),
    };
    if let Some(a) = addrs {
        mix(a);
    }
    if matches!(proto, Some(6) | Some(17))
        && let Some(p) = frame.get(l4..l4 + 4)
    {
        mix(p);
    }
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes() {
        let h = header(Vni::new(5000).unwrap());
        assert_eq!(h, [0x08, 0, 0, 0, 0x00, 0x13, 0x88, 0]);
        assert_eq!(parse_header(&h), Vni::new(5000));
        // Reserved bits are ignored on receive; the I flag is required.
        assert_eq!(parse_header(&[0xff, 0xff, 0xff, 0xff, 0, 0, 7, 0xff]), Vni::new(7));
        assert_eq!(parse_header(&[0x00, 0, 0, 0, 0, 0, 7, 0]), None);
        assert_eq!(parse_header(&[0x08, 0, 0]), None);
    }

    #[test]
    fn trains_are_runs_of_one_length_and_a_shorter_last() {
        assert_eq!(train_len(&[60]), 1);
        assert_eq!(train_len(&[60, 60, 60]), 3);
        assert_eq!(train_len(&[60, 60, 50, 50]), 3, "a shorter frame ends the train");
        assert_eq!(train_len(&[60, 70, 60]), 1, "a longer one cannot follow");
        assert_eq!(train_len(&[60, 50]), 2);
        assert_eq!(train_len(&[60; 100]), UDP_MAX_SEGMENTS, "at most 64 segments");
        let big = 9000 - HEADER_LEN;
        assert_eq!(train_len(&[big; 10]), UDP_GSO_MAX_BYTES / 9000, "at most 65000 bytes");
        assert_eq!(train_len(&[70_000, 70_000]), 1, "a datagram over the limit goes alone");
    }

    #[test]
    fn flow_hash_follows_the_flow() {
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 6;
        f[26..34].copy_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
        f[34..38].copy_from_slice(&[0x30, 0x39, 0x00, 0x50]);
        let a = flow_hash(&f);
        f[40] = 99; // payload byte: same flow
        assert_eq!(flow_hash(&f), a);
        f[35] = 0x3a; // other source port: (almost surely) another hash
        assert_ne!(flow_hash(&f), a);
        let _ = flow_hash(&[]);
        let _ = flow_hash(&[0x81, 0x00]);
    }
}
