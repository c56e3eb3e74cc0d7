//! [`Coalescer`]: consecutive in-order TCP segments of one flow become one GSO frame
//! (software GRO, for the VXLAN receive side).

use crate::wire::checksum;
use crate::wire::ethernet::{self};
use crate::wire::ipv4::{self, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::{self, TcpPacket};
use crate::wire::virtio_net_hdr::{F_NEEDS_CSUM, GSO_ECN, GsoType, VnetHdr};
use crate::wire::vlan::{self};

use super::layout::{L4, Layout};

/// Buffer size that lets a [`Coalescer`] build the largest frame it may: an Ethernet
/// header with one 802.1Q tag, an IPv6 header and a 65535-byte payload.
pub const MAX_COALESCED: usize = ethernet::HEADER_LEN + vlan::TAG_LEN + ipv6::HEADER_LEN + 65535;

/// What [`Coalescer::offer`] did with a frame.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// The frame is now part of the held frame (it continued it, or started it).
    Merged,
    /// The frame could start a held frame but does not continue the current one: take
    /// the held frame with [`Coalescer::flush`], then offer this frame again.
    FlushFirst,
    /// The frame can never be coalesced (not TCP, flags, options, bad checksum, ...):
    /// flush the held frame first (it may be of the same flow), then send this frame
    /// as it is.
    Bypass,
}

/// The frame being built.
#[derive(Debug, Clone, Copy)]
struct Held {
    lay: Layout,
    /// Bytes of the buffer in use: `lay.end`, or the whole first frame (with its
    /// Ethernet padding) while only one segment is held.
    len: usize,
    mss: usize,
    segs: usize,
    next_seq: u32,
    last_ident: u16,
    first_flags: u8,
    /// A segment with PSH or FIN, or shorter than `mss`, ended the frame.
    closed: bool,
}

/// Merges consecutive in-order TCP segments of one flow into one GSO frame, the
/// software GRO of the VXLAN receive path.
///
/// A segment continues the held frame when it has the same L2 header (addresses, VLAN
/// tag), the same IP header except lengths and checksum (and, without DF, an
/// identification one above the previous: RFC 6864 lets atomic datagrams reuse IDs),
/// the same ports, ack, window and options (empty or a timestamp only, byte-equal), the
/// next sequence number, at most `mss` payload bytes (the first segment's), and the
/// first segment's flags except that PSH/FIN may appear on the last one and CWR only
/// on the first — the same rules as Linux `tcp_gro_receive`, so that [`Segmenter`] gives
/// back the same segments. Only segments with valid IPv4 header and TCP checksums are
/// merged: the merged frame goes out with `NEEDS_CSUM`, which a receiver trusts, so a
/// corrupted segment must not be hidden inside it.
///
/// The flushed frame carries `GSO_TCPV4`/`GSO_TCPV6` (with the ECN bit when the first
/// segment had CWR), `NEEDS_CSUM` with the pseudo-header sum in the TCP checksum field,
/// `gso_size` = the first segment's payload length and `hdr_len` = all headers. A
/// single held segment is flushed as it came, with `VnetHdr::default()`.
pub struct Coalescer<B: AsRef<[u8]> + AsMut<[u8]>> {
    buf: B,
    held: Option<Held>,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Coalescer<B> {
    /// A coalescer building frames in `buf` (allocated once by the caller; at most
    /// [`MAX_COALESCED`] bytes of it are used).
    pub fn new(buf: B) -> Coalescer<B> {
        Coalescer { buf, held: None }
    }

    /// True when no frame is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_none()
    }

    /// Offers the next frame received (a plain frame: full checksums, no vnet header).
    pub fn offer(&mut self, frame: &[u8]) -> Offer {
        let Some(lay) = coalescable(frame) else {
            return Offer::Bypass;
        };
        let buf = self.buf.as_mut();
        if lay.end > buf.len() {
            return Offer::Bypass;
        }
        let Some(h) = self.held.as_mut() else {
            let len = frame.len().min(buf.len());
            buf[..len].copy_from_slice(&frame[..len]);
            let t = TcpPacket::new_unchecked(&frame[lay.l4..]);
            let ident = if lay.v6 { 0 } else { Ipv4Packet::new_unchecked(&frame[lay.l3..]).ident() };
            let mss = lay.end - lay.hdrs;
            self.held = Some(Held {
                lay,
                len,
                mss,
                segs: 1,
                next_seq: t.seq_number().wrapping_add(mss as u32),
                last_ident: ident,
                first_flags: t.flags(),
                closed: t.flags() & (tcp::PSH | tcp::FIN) != 0,
            });
            return Offer::Merged;
        };
        if !continues(h, buf, frame, &lay) {
            return Offer::FlushFirst;
        }
        let take = lay.end - lay.hdrs;
        let end = h.lay.end;
        buf[end..end + take].copy_from_slice(&frame[lay.hdrs..lay.end]);
        let flags = TcpPacket::new_unchecked(&frame[lay.l4..]).flags();
        buf[h.lay.l4 + 13] |= flags & (tcp::PSH | tcp::FIN);
        if !lay.v6 {
            h.last_ident = Ipv4Packet::new_unchecked(&frame[lay.l3..]).ident();
        }
        h.lay.end += take;
        h.len = h.lay.end;
        h.segs += 1;
        h.next_seq = h.next_seq.wrapping_add(take as u32);
        h.closed = take < h.mss || flags & (tcp::PSH | tcp::FIN) != 0;
        Offer::Merged
    }

    /// Takes the held frame, if any: its bytes and the vnet header to send it with.
    pub fn flush(&mut self) -> Option<(&[u8], VnetHdr)> {
        let (len, vnet) = self.finish()?;
        Some((&self.buf.as_ref()[..len], vnet))
    }

    /// Completes the held frame, if any, and lets it go: it is `buf[..len]`, to be sent
    /// with the vnet header returned.
    fn finish(&mut self) -> Option<(usize, VnetHdr)> {
        let h = self.held.take()?;
        let buf = self.buf.as_mut();
        if h.segs == 1 {
            return Some((h.len, VnetHdr::default()));
        }
        let lay = h.lay;
        let ip_len = lay.end - lay.l3;
        if lay.v6 {
            Ipv6Packet::new_unchecked(&mut buf[lay.l3..]).set_payload_len((ip_len - ipv6::HEADER_LEN) as u16);
        } else {
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[lay.l3..]);
            ip.set_total_len(ip_len as u16);
            ip.fill_checksum();
        }
        let pseudo = lay.pseudo_base(buf) + (lay.end - lay.l4) as u32;
        TcpPacket::new_unchecked(&mut buf[lay.l4..]).set_checksum(checksum::fold(u64::from(pseudo)));
        let gso = if lay.v6 { GsoType::TcpV6 } else { GsoType::TcpV4 };
        let ecn = if h.first_flags & tcp::CWR != 0 { GSO_ECN } else { 0 };
        let vnet = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: u8::from(gso) | ecn,
            hdr_len: lay.hdrs as u16,
            gso_size: h.mss as u16,
            csum_start: lay.l4 as u16,
            csum_offset: tcp::CHECKSUM_OFFSET as u16,
        };
        Some((lay.end, vnet))
    }

    /// [`Coalescer::offer`] with the follow-up done: whatever must go out before the
    /// frame is merged (the held frame, or the frame itself) is passed to `emit`.
    pub fn push(&mut self, frame: &[u8], mut emit: impl FnMut(Emit<'_, B>)) {
        let offer = self.offer(frame);
        if offer == Offer::Merged {
            return;
        }
        self.flush_with(&mut emit);
        if offer == Offer::Bypass || self.offer(frame) != Offer::Merged {
            emit(Emit::AsIs(frame));
        }
    }

    /// [`Coalescer::flush`] into `emit` (at the end of a receive batch).
    pub fn flush_with(&mut self, mut emit: impl FnMut(Emit<'_, B>)) {
        if let Some((len, vnet)) = self.finish() {
            emit(Emit::Built { buf: &mut self.buf, len, vnet });
        }
    }
}

/// A frame [`Coalescer::push`] or [`Coalescer::flush_with`] hands on.
pub enum Emit<'a, B> {
    /// The frame built in the coalescer's buffer, `buf[..len]`, to be sent with `vnet`.
    /// The coalescer holds nothing at this point, so the receiver may take the buffer
    /// and leave another of the same size in its place instead of copying the frame.
    Built { buf: &'a mut B, len: usize, vnet: VnetHdr },
    /// A frame passed on as it came, with no offload state.
    AsIs(&'a [u8]),
}

impl<B: AsRef<[u8]>> Emit<'_, B> {
    /// The frame's bytes.
    pub fn frame(&self) -> &[u8] {
        match self {
            Emit::Built { buf, len, .. } => &buf.as_ref()[..*len],
            Emit::AsIs(f) => f,
        }
    }

    /// The vnet header to send the frame with.
    pub fn vnet(&self) -> VnetHdr {
        match self {
            Emit::Built { vnet, .. } => *vnet,
            Emit::AsIs(_) => VnetHdr::default(),
        }
    }
}

/// The layout of a frame the coalescer may hold, or `None`: a TCP segment over IPv4
/// without options or IPv6 without extension headers, with ACK and without
/// SYN/RST/URG, timestamp-only options, some payload, and valid checksums.
fn coalescable(frame: &[u8]) -> Option<Layout> {
    let lay = Layout::of(frame).ok()?;
    if lay.proto != L4::Tcp || lay.hdrs == lay.end {
        return None;
    }
    if !lay.v6 {
        let ip = Ipv4Packet::new_unchecked(&frame[lay.l3..]);
        if ip.header_len() != ipv4::HEADER_LEN || !ip.verify_checksum() {
            return None;
        }
    }
    let t = TcpPacket::new_unchecked(&frame[lay.l4..lay.end]);
    if t.flags() & (tcp::SYN | tcp::RST | tcp::URG | tcp::ACK) != tcp::ACK || !tcp::only_timestamps(t.options()) {
        return None;
    }
    let (src, dst) = lay.addrs(frame);
    t.verify_checksum(src, dst).then_some(lay)
}

/// Whether `frame` (already [`coalescable`]) continues the held frame in `buf`.
fn continues(h: &Held, buf: &[u8], frame: &[u8], lay: &Layout) -> bool {
    let hl = &h.lay;
    let take = lay.end - lay.hdrs;
    if h.closed
        || (lay.l3, lay.l4, lay.hdrs, lay.v6) != (hl.l3, hl.l4, hl.hdrs, hl.v6)
        || take > h.mss
        || hl.end + take > buf.len().min(hl.max_end())
        || buf[..hl.l3] != frame[..lay.l3]
    {
        return false;
    }
    let (a, b) = (&buf[hl.l3..hl.l4], &frame[lay.l3..lay.l4]);
    let ip_same = if lay.v6 {
        // version, traffic class, flow label; next header, hop limit, addresses
        a[..4] == b[..4] && a[6..] == b[6..]
    } else {
        let pb = Ipv4Packet::new_unchecked(b);
        // TOS; flags and fragment offset, TTL, protocol; addresses
        let same = a[1] == b[1] && a[6..10] == b[6..10] && a[12..] == b[12..];
        same && (pb.dont_frag() || pb.ident() == h.last_ident.wrapping_add(1))
    };
    let (a, b) = (&buf[hl.l4..hl.hdrs], &frame[lay.l4..lay.hdrs]);
    let tb = TcpPacket::new_unchecked(b);
    // ports; ack and data offset; window; options
    let tcp_same = a[..4] == b[..4] && a[8..13] == b[8..13] && a[14..16] == b[14..16] && a[20..] == b[20..];
    let flags_ok = tb.flags() & !(tcp::PSH | tcp::FIN) == h.first_flags & !tcp::CWR;
    ip_same && tcp_same && flags_ok && tb.seq_number() == h.next_seq
}
