//! [`Segmenter`]: cuts a GSO frame into wire-sized segments (Linux `tcp_gso_segment`).

use crate::wire::checksum;
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::{self, Ipv6Packet};
use crate::wire::tcp::{self, TcpPacket};
use crate::wire::udp::{self, UdpPacket};
use crate::wire::virtio_net_hdr::{GsoType, VnetHdr};

use super::OffloadError;
use super::layout::{L4, Layout};

/// Where each segment starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// With the frame's Ethernet header (and 802.1Q tag): a frame for a port, or the
    /// inner frame of a VXLAN packet.
    L2,
    /// With the IP header: for a sender that puts its own headers in front.
    L3,
}

/// Cuts a GSO frame into segments of at most `gso_size` payload bytes.
///
/// Validation happens once, in [`Segmenter::new`]; after that [`Segmenter::next_into`]
/// only copies and patches. All segments except the last have the same length, as
/// `UDP_SEGMENT` requires of a batch.
///
/// Typical use (the worker sends each `&scratch[..n]`):
///
/// ```text
/// let mut seg = Segmenter::new(frame, &vnet)?;
/// while let Some(n) = seg.next_into(&mut scratch, 0, Layer::L2)? { send(&scratch[..n]) }
/// ```
#[derive(Debug, Clone)]
pub struct Segmenter<'a> {
    frame: &'a [u8],
    lay: Layout,
    mss: usize,
    /// Offset in `frame` of the next payload byte to send.
    next: usize,
    /// Segments written so far.
    done: usize,
    ident: u16,
    seq: u32,
    flags: u8,
    pseudo: u32,
}

impl<'a> Segmenter<'a> {
    /// Checks `frame` against `vnet`: a supported GSO type matching the headers, a
    /// non-zero `gso_size`, `hdr_len` within the frame, and with `NEEDS_CSUM` a
    /// `csum_start`/`csum_offset` that point at the TCP/UDP checksum. `hdr_len` is only
    /// a hint in virtio 1.x (exact only with `VIRTIO_NET_F_GUEST_HDRLEN`), so the header
    /// length is taken from the headers themselves.
    pub fn new(frame: &'a [u8], vnet: &VnetHdr) -> Result<Segmenter<'a>, OffloadError> {
        let want = match vnet.gso() {
            GsoType::TcpV4 => (Some(false), L4::Tcp),
            GsoType::TcpV6 => (Some(true), L4::Tcp),
            GsoType::UdpL4 => (None, L4::Udp),
            GsoType::None => return Err(OffloadError::NotGso),
            GsoType::Udp | GsoType::Unknown(_) => {
                return Err(OffloadError::UnsupportedGso(vnet.gso_type));
            }
        };
        if vnet.gso_size == 0 {
            return Err(OffloadError::ZeroGsoSize);
        }
        let lay = Layout::of(frame)?;
        if want.1 != lay.proto || want.0.is_some_and(|v6| v6 != lay.v6) {
            return Err(OffloadError::GsoMismatch(vnet.gso_type));
        }
        let csum_offset = match lay.proto {
            L4::Tcp => tcp::CHECKSUM_OFFSET,
            L4::Udp => udp::CHECKSUM_OFFSET,
        };
        if vnet.needs_csum() && (usize::from(vnet.csum_start) != lay.l4 || usize::from(vnet.csum_offset) != csum_offset) {
            return Err(OffloadError::BadCsum { start: vnet.csum_start, offset: vnet.csum_offset });
        }
        if usize::from(vnet.hdr_len) > frame.len() {
            return Err(OffloadError::BadHdrLen { hdr_len: vnet.hdr_len, len: frame.len() });
        }
        let ident = if lay.v6 { 0 } else { Ipv4Packet::new_unchecked(&frame[lay.l3..]).ident() };
        let (seq, flags) = match lay.proto {
            L4::Tcp => {
                let t = TcpPacket::new_unchecked(&frame[lay.l4..]);
                (t.seq_number(), t.flags())
            }
            L4::Udp => (0, 0),
        };
        let pseudo = lay.pseudo_base(frame);
        let mss = usize::from(vnet.gso_size);
        Ok(Segmenter { frame, lay, mss, next: lay.hdrs, done: 0, ident, seq, flags, pseudo })
    }

    /// Payload bytes per segment (`gso_size`).
    pub fn gso_size(&self) -> usize {
        self.mss
    }

    pub fn is_ipv6(&self) -> bool {
        self.lay.v6
    }

    /// How many segments the frame makes in all (at least one, even without payload).
    pub fn segments(&self) -> usize {
        (self.lay.end - self.lay.hdrs).div_ceil(self.mss).max(1)
    }

    /// How many segments are still to come.
    pub fn remaining(&self) -> usize {
        self.segments() - self.done
    }

    /// Length of the headers each segment starts with.
    pub fn header_len(&self, layer: Layer) -> usize {
        self.lay.hdrs - self.start(layer)
    }

    /// Length of a full-sized segment (all but possibly the last), without headroom.
    pub fn segment_len(&self, layer: Layer) -> usize {
        self.header_len(layer) + self.mss.min(self.lay.end - self.lay.hdrs)
    }

    fn start(&self, layer: Layer) -> usize {
        match layer {
            Layer::L2 => 0,
            Layer::L3 => self.lay.l3,
        }
    }

    /// Writes the next segment into `out[headroom..]`, starting at `layer`, and returns
    /// its length (without the headroom), or `None` when all segments have been written.
    /// `out[..headroom]` is not touched. A too small `out` is an error and consumes
    /// nothing, so the call can be repeated with a larger buffer.
    pub fn next_into(&mut self, out: &mut [u8], headroom: usize, layer: Layer) -> Result<Option<usize>, OffloadError> {
        Ok(self.next_segment(out, headroom, layer, true)?.map(|(len, _)| len))
    }

    /// Like [`Segmenter::next_into`], but writes only the next segment's headers (with
    /// their lengths and checksums final) into `out[headroom..]`; returns their length
    /// and the segment's payload, a slice of the frame. The segment is the headers
    /// followed by that payload: for senders that gather the two (an iovec each)
    /// instead of copying the payload.
    pub fn next_headers_into(&mut self, out: &mut [u8], headroom: usize, layer: Layer) -> Result<Option<(usize, &'a [u8])>, OffloadError> {
        self.next_segment(out, headroom, layer, false)
    }

    /// Writes the next segment's headers into `out[headroom..]` and, with `copy`, its
    /// payload after them; returns the bytes written and the payload.
    fn next_segment(&mut self, out: &mut [u8], headroom: usize, layer: Layer, copy: bool) -> Result<Option<(usize, &'a [u8])>, OffloadError> {
        if self.remaining() == 0 {
            return Ok(None);
        }
        let (lay, start) = (self.lay, self.start(layer));
        let hdr = lay.hdrs - start;
        let take = self.mss.min(lay.end - self.next);
        let len = if copy { hdr + take } else { hdr };
        let need = headroom.saturating_add(len);
        if out.len() < need {
            return Err(OffloadError::NoRoom { need, have: out.len() });
        }
        let payload = &self.frame[self.next..self.next + take];
        let seg = &mut out[headroom..need];
        seg[..hdr].copy_from_slice(&self.frame[start..lay.hdrs]);
        if copy {
            seg[hdr..].copy_from_slice(payload);
        }
        self.patch_ip(&mut seg[lay.l3 - start..lay.l4 - start], lay.hdrs - lay.l3 + take);
        let last = self.next + take == lay.end;
        // A copied payload is summed with its headers in one pass.
        self.patch_l4(&mut seg[lay.l4 - start..], if copy { &[] } else { payload }, last);
        self.done += 1;
        self.next += take;
        Ok(Some((len, payload)))
    }

    /// Length, identification and header checksum of the segment's IP header `ip`, for
    /// an IP packet of `len` bytes.
    fn patch_ip(&self, ip: &mut [u8], len: usize) {
        if self.lay.v6 {
            Ipv6Packet::new_unchecked(ip).set_payload_len((len - ipv6::HEADER_LEN) as u16);
        } else {
            let mut p = Ipv4Packet::new_unchecked(ip);
            p.set_total_len(len as u16);
            p.set_ident(self.ident.wrapping_add(self.done as u16));
            p.fill_checksum();
        }
    }

    /// Sequence number, flags, length and full checksum of the segment's TCP/UDP header
    /// at the start of `l4`, which `payload` follows (`l4` may hold the payload itself,
    /// `payload` then being empty). TCP and UDP headers have an even length, so the two
    /// parts can be summed apart.
    fn patch_l4(&self, l4: &mut [u8], payload: &[u8], last: bool) {
        let pseudo = self.pseudo + (l4.len() + payload.len()) as u32;
        let csum = |l4: &[u8]| !checksum::fold(checksum::sum(payload, u32::from(checksum::fold(checksum::sum(l4, pseudo)))));
        match self.lay.proto {
            L4::Tcp => {
                let mut t = TcpPacket::new_unchecked(&mut *l4);
                t.set_seq_number(self.seq.wrapping_add((self.next - self.lay.hdrs) as u32));
                let mut flags = self.flags;
                if !last {
                    flags &= !(tcp::FIN | tcp::PSH);
                }
                if self.done > 0 {
                    flags &= !tcp::CWR;
                }
                t.set_flags(flags);
                t.set_checksum(0);
                let c = csum(l4);
                TcpPacket::new_unchecked(l4).set_checksum(c);
            }
            L4::Udp => {
                let len = (l4.len() + payload.len()) as u16;
                let mut u = UdpPacket::new_unchecked(&mut *l4);
                u.set_length(len);
                u.set_checksum(0);
                let c = csum(l4);
                // RFC 768: a computed zero is transmitted as all ones.
                UdpPacket::new_unchecked(l4).set_checksum(if c == 0 { 0xffff } else { c });
            }
        }
    }
}
