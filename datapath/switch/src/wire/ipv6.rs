//! IPv6 fixed header (RFC 8200 section 3).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |           Flow Label                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                  Source Address (128 bits)                    |
//! |               Destination Address (128 bits)                  |
//! ```
//!
//! Only the fixed header is parsed: extension headers are not walked, `next_header` is
//! exposed as it is, and [`Ipv6Packet::payload`] is everything the Payload Length covers
//! ("the rest of the packet following this IPv6 header ... Any extension headers present
//! are considered part of the payload"). Jumbograms (RFC 2675, Payload Length 0 with a
//! Jumbo Payload option) are not supported: their payload reads as empty.
//!
//! Also here: the pseudo-header sum of RFC 8200 8.1 and [`pseudo_header_sum_ip`], which
//! picks the IPv4 or IPv6 pseudo-header from the address family (used by UDP and TCP).

use std::net::{IpAddr, Ipv6Addr};

pub use super::ipv4::IpProtocol;
use super::{Truncated, be16, ipv4, put_be16};

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

mod field {
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: std::ops::Range<usize> = 8..24;
    pub const DST: std::ops::Range<usize> = 24..40;
}

/// Why bytes are not a usable IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ipv6Error {
    #[error("truncated IPv6 packet")]
    Truncated,
    #[error("IP version {0} in an IPv6 header")]
    Version(u8),
}

impl From<Truncated> for Ipv6Error {
    fn from(_: Truncated) -> Ipv6Error {
        Ipv6Error::Truncated
    }
}

/// The sum (RFC 1071, not folded) of the IPv6 pseudo-header (RFC 8200 8.1): source,
/// destination, the 32-bit upper-layer packet length, and the next header value of the
/// upper-layer protocol.
#[inline]
pub fn pseudo_header_sum(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: IpProtocol, len: u32) -> u32 {
    let words = src.segments().into_iter().chain(dst.segments());
    let addrs: u32 = words.map(u32::from).sum();
    addrs + (len >> 16) + (len & 0xffff) + u32::from(u8::from(next_header))
}

/// The pseudo-header sum for either family: IPv4 (RFC 9293 3.1) for two IPv4 addresses,
/// IPv6 otherwise. A mixed pair is the caller's bug; it is summed as IPv6 with the IPv4
/// address mapped (`::ffff:a.b.c.d`) so that it cannot panic.
#[inline]
pub fn pseudo_header_sum_ip(src: IpAddr, dst: IpAddr, protocol: IpProtocol, len: u32) -> u32 {
    let v6 = |a: IpAddr| match a {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    };
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => ipv4::pseudo_header_sum(s, d, protocol, len as u16),
        _ => pseudo_header_sum(&v6(src), &v6(dst), protocol, len),
    }
}

/// A checked view of an IPv6 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the fixed header and the payload length.
    pub fn new_checked(buffer: T) -> Result<Self, Truncated> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN || HEADER_LEN + usize::from(be16(b, field::LENGTH)) > b.len() {
            return Err(Truncated);
        }
        Ok(Ipv6Packet { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW] >> 4
    }

    #[inline]
    fn first_word(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// DSCP: the upper 6 bits of the traffic class (RFC 2474).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// ECN: the lower 2 bits of the traffic class (RFC 3168).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// The 20-bit flow label.
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::SRC])
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        addr(&self.buffer.as_ref()[field::DST])
    }

    /// The `payload_len` bytes after the fixed header (extension headers included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + usize::from(self.payload_len())]
    }

    /// The pseudo-header sum for an upper-layer packet that directly follows the fixed
    /// header (no extension headers) and fills the payload.
    #[inline]
    pub fn pseudo_header_sum(&self) -> u32 {
        let len = u32::from(self.payload_len());
        pseudo_header_sum(&self.src_addr(), &self.dst_addr(), self.next_header(), len)
    }
}

fn addr(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Writes version 6, the traffic class and the flow label (low 20 bits).
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let w = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[..4].copy_from_slice(&w.to_be_bytes());
    }

    pub fn set_traffic_class(&mut self, tc: u8) {
        let flow = self.flow_label();
        let ver = u32::from(self.version());
        let w = (ver << 28) | (u32::from(tc) << 20) | flow;
        self.buffer.as_mut()[..4].copy_from_slice(&w.to_be_bytes());
    }

    pub fn set_flow_label(&mut self, flow: u32) {
        let keep = self.first_word() & 0xfff0_0000;
        self.buffer.as_mut()[..4].copy_from_slice(&(keep | (flow & 0x000f_ffff)).to_be_bytes());
    }

    pub fn set_payload_len(&mut self, len: u16) {
        put_be16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_next_header(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = p.into();
    }

    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = h;
    }

    pub fn set_src_addr(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: &Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// The owned, validated form of the fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: IpProtocol,
    pub payload_len: u16,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// Flow label; only the low 20 bits are written.
    pub flow_label: u32,
}

impl Ipv6Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Ipv6Repr, Ipv6Error> {
        if p.version() != 6 {
            return Err(Ipv6Error::Version(p.version()));
        }
        Ok(Ipv6Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) {
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(&self.src);
        p.set_dst_addr(&self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // fd00::1 -> fd00::2, traffic class 0xb8 (DSCP 46), flow label 0x12345, TCP, hop
    // limit 64, 4 payload bytes, 2 bytes of trailing padding.
    const PKT: [u8; 46] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x04, 0x06, 0x40, //
        0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, //
        0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, //
        0xde, 0xad, 0xbe, 0xef, 0, 0,
    ];

    #[test]
    fn parse() {
        let p = Ipv6Packet::new_checked(&PKT[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!((p.traffic_class(), p.dscp(), p.ecn()), (0xb8, 46, 0));
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 4);
        assert_eq!(p.next_header(), IpProtocol::Tcp);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "fd00::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "fd00::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
        let r = Ipv6Repr::parse(&p).unwrap();
        let mut b = [0u8; 40];
        r.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
        assert_eq!(b[..], PKT[..40]);
    }

    #[test]
    fn setters_keep_other_bits() {
        let mut b = PKT;
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_traffic_class(0x01);
        assert_eq!((p.version(), p.traffic_class(), p.flow_label()), (6, 1, 0x12345));
        p.set_flow_label(0xfffff);
        assert_eq!((p.traffic_class(), p.flow_label()), (1, 0xfffff));
    }

    #[test]
    fn errors() {
        assert_eq!(Ipv6Packet::new_checked(&PKT[..39]).err(), Some(Truncated));
        assert_eq!(Ipv6Packet::new_checked(&PKT[..43]).err(), Some(Truncated));
        let mut b = PKT;
        b[0] = 0x4b;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p), Err(Ipv6Error::Version(4)));
    }

    #[test]
    fn pseudo_header() {
        let p = Ipv6Packet::new_checked(&PKT[..]).unwrap();
        // fd00 + 1 + fd00 + 2 + length 4 + next header 6
        assert_eq!(p.pseudo_header_sum(), 0xfd00 * 2 + 1 + 2 + 4 + 6);
        let big = pseudo_header_sum(&p.src_addr(), &p.dst_addr(), IpProtocol::Tcp, 0x1_0002);
        assert_eq!(big, 0xfd00 * 2 + 1 + 2 + 1 + 2 + 6);
        let (s4, d4) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        assert_eq!(pseudo_header_sum_ip(s4, d4, IpProtocol::Udp, 8), 0x0a00 * 2 + 3 + 17 + 8);
        let s6 = IpAddr::V6(p.src_addr());
        assert_eq!(pseudo_header_sum_ip(s6, IpAddr::V6(p.dst_addr()), IpProtocol::Tcp, 4), 0xfd00 * 2 + 13);
        // mixed families do not panic
        let _ = pseudo_header_sum_ip(s4, s6, IpProtocol::Tcp, 4);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..90)) {
            if let Ok(p) = Ipv6Packet::new_checked(&b[..]) {
                let _ = (p.payload(), p.pseudo_header_sum(), p.flow_label(), p.dscp());
                let _ = Ipv6Repr::parse(&p);
            }
        }

        #[test]
        fn emit_parse_round_trip(
            src: [u8; 16], dst: [u8; 16], nh: u8, len in 0u16..2000, hop: u8, tc: u8,
            flow in 0u32..0x10_0000,
        ) {
            let r = Ipv6Repr {
                src: src.into(), dst: dst.into(), next_header: nh.into(), payload_len: len,
                hop_limit: hop, traffic_class: tc, flow_label: flow,
            };
            let mut b = vec![0u8; r.buffer_len() + usize::from(len)];
            r.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
            let p = Ipv6Packet::new_checked(&b[..]).unwrap();
            proptest::prop_assert_eq!(Ipv6Repr::parse(&p), Ok(r));
        }
    }
}
