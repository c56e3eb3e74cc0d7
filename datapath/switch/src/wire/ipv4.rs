//! IPv4 header (RFC 791 section 3.1), and the IP protocol numbers shared with IPv6.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! |         Identification        |Flags|      Fragment Offset    |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! |                    Options                    |    Padding    |
//! ```
//!
//! The view covers one datagram: [`Ipv4Packet::new_checked`] checks that the header length
//! (IHL, "the length of the internet header in 32 bit words") and the total length ("the
//! length of the datagram, measured in octets, including internet header and data") are
//! consistent with each other and with the buffer, so [`Ipv4Packet::options`] and
//! [`Ipv4Packet::payload`] never panic. Bytes after the total length (Ethernet padding)
//! are outside the payload.
//!
//! The type of service octet is read both as a whole and as DSCP (RFC 2474) + ECN
//! (RFC 3168). The fragment offset is returned in octets, not in the 8-octet units of
//! the wire. Options are kept opaque: [`Ipv4Repr`] represents the fixed header only, and
//! code that must keep options (the segmenter in [`crate::offload`]) copies the header
//! bytes instead.

use std::net::Ipv4Addr;

use super::checksum;
use super::{Truncated, be16, put_be16};

/// Length of the header without options.
pub const HEADER_LEN: usize = 20;
/// Longest header: IHL 15.
pub const MAX_HEADER_LEN: usize = 60;

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: std::ops::Range<usize> = 12..16;
    pub const DST: std::ops::Range<usize> = 16..20;
}

/// "Don't Fragment" (RFC 791: bit 1 of the flags).
const FLAG_DF: u16 = 0x4000;
/// "More Fragments" (bit 2).
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers"): the IPv4 Protocol
/// field and the IPv6 Next Header field. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// IPv6 Hop-by-Hop Options (0).
    HopByHop,
    Icmp,
    Igmp,
    Tcp,
    Udp,
    /// IPv6 Routing header (43).
    Ipv6Route,
    /// IPv6 Fragment header (44).
    Ipv6Frag,
    Gre,
    Esp,
    Icmpv6,
    /// IPv6 "No Next Header" (59).
    Ipv6NoNxt,
    /// IPv6 Destination Options (60).
    Ipv6Opts,
    Sctp,
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> IpProtocol {
        match v {
            0 => IpProtocol::HopByHop,
            1 => IpProtocol::Icmp,
            2 => IpProtocol::Igmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            43 => IpProtocol::Ipv6Route,
            44 => IpProtocol::Ipv6Frag,
            47 => IpProtocol::Gre,
            50 => IpProtocol::Esp,
            58 => IpProtocol::Icmpv6,
            59 => IpProtocol::Ipv6NoNxt,
            60 => IpProtocol::Ipv6Opts,
            132 => IpProtocol::Sctp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> u8 {
        match v {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Igmp => 2,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Gre => 47,
            IpProtocol::Esp => 50,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6NoNxt => 59,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Sctp => 132,
            IpProtocol::Unknown(v) => v,
        }
    }
}

/// Why bytes are not a usable IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ipv4Error {
    #[error("truncated IPv4 header")]
    Truncated,
    #[error("IPv4 IHL {0} is below the minimum of 5")]
    BadHeaderLen(u8),
    #[error("IPv4 total length {0} disagrees with the header length or the buffer")]
    BadTotalLen(u16),
    #[error("IP version {0} in an IPv4 header")]
    Version(u8),
    #[error("IPv4 header checksum mismatch")]
    Checksum,
}

impl From<Truncated> for Ipv4Error {
    fn from(_: Truncated) -> Ipv4Error {
        Ipv4Error::Truncated
    }
}

/// The sum (RFC 1071, not folded) of the pseudo-header that TCP and UDP checksums over
/// IPv4 cover (RFC 9293 3.1, RFC 768): source, destination, zero + protocol, and the
/// length of the TCP/UDP header and data.
#[inline]
pub fn pseudo_header_sum(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, len: u16) -> u32 {
    let (s, d) = (src.octets(), dst.octets());
    let words = [
        u16::from_be_bytes([s[0], s[1]]),
        u16::from_be_bytes([s[2], s[3]]),
        u16::from_be_bytes([d[0], d[1]]),
        u16::from_be_bytes([d[2], d[3]]),
        u16::from(u8::from(protocol)),
        len,
    ];
    words.iter().map(|&w| u32::from(w)).sum()
}

/// A checked view of an IPv4 datagram.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking it (for building headers in place).
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after checking `20 <= IHL * 4 <= total length <= buffer length`.
    /// The version is not checked here (see [`Ipv4Repr::parse`]).
    pub fn new_checked(buffer: T) -> Result<Self, Ipv4Error> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Ipv4Error::Truncated);
        }
        let p = Ipv4Packet { buffer };
        let (hl, tl) = (p.header_len(), p.total_len());
        if hl < HEADER_LEN {
            return Err(Ipv4Error::BadHeaderLen(p.buffer.as_ref()[field::VER_IHL] & 0x0f));
        }
        if hl > p.buffer.as_ref().len() {
            return Err(Ipv4Error::Truncated);
        }
        if usize::from(tl) < hl || usize::from(tl) > p.buffer.as_ref().len() {
            return Err(Ipv4Error::BadTotalLen(tl));
        }
        Ok(p)
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in octets (IHL * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole type of service octet.
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Differentiated services code point: the upper 6 bits of the TOS octet (RFC 2474).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// Explicit congestion notification: the lower 2 bits of the TOS octet (RFC 3168).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }

    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    #[inline]
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    #[inline]
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in octets (the wire field counts 8-octet units).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & FRAG_OFFSET_MASK) << 3
    }

    /// True for any fragment of a fragmented datagram (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The options (and padding) between the fixed header and the payload.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The data: from the end of the header to the total length.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// True when the header, options included, sums to all ones (RFC 791: "the 16 bit
    /// one's complement of the one's complement sum of all 16 bit words in the header").
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(&self.buffer.as_ref()[..self.header_len()], 0)) == 0xffff
    }

    /// The pseudo-header sum for the TCP or UDP segment this datagram carries.
    #[inline]
    pub fn pseudo_header_sum(&self) -> u32 {
        let len = self.total_len().wrapping_sub(self.header_len() as u16);
        pseudo_header_sum(self.src_addr(), self.dst_addr(), self.protocol(), len)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in octets (a multiple of 4, at most 60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::TOS] = tos;
    }

    pub fn set_dscp(&mut self, dscp: u8) {
        let ecn = self.ecn();
        self.set_tos((dscp << 2) | ecn);
    }

    pub fn set_ecn(&mut self, ecn: u8) {
        let tos = self.tos();
        self.set_tos((tos & !0x03) | (ecn & 0x03));
    }

    pub fn set_total_len(&mut self, len: u16) {
        put_be16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_ident(&mut self, id: u16) {
        put_be16(self.buffer.as_mut(), field::IDENT, id);
    }

    /// Writes the flags and fragment offset (in octets; the low 3 bits are dropped).
    pub fn set_frag(&mut self, dont_frag: bool, more_frags: bool, offset: u16) {
        let mut v = (offset >> 3) & FRAG_OFFSET_MASK;
        if dont_frag {
            v |= FLAG_DF;
        }
        if more_frags {
            v |= FLAG_MF;
        }
        put_be16(self.buffer.as_mut(), field::FLG_OFF, v);
    }

    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    pub fn set_protocol(&mut self, p: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.into();
    }

    pub fn set_checksum(&mut self, c: u16) {
        put_be16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    /// Computes the header checksum over the header length in the IHL field and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::checksum(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// The owned, validated form of an IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Length of the data after the header. `HEADER_LEN + payload_len` must fit a u16;
    /// a larger value is the caller's bug and is written modulo 2^16.
    pub payload_len: u16,
    /// DSCP (6 bits) and ECN (2 bits).
    pub dscp: u8,
    pub ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// Fragment offset in octets (a multiple of 8).
    pub frag_offset: u16,
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Validates the version and the header checksum. Options are skipped:
    /// `payload_len` counts the data after them.
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Ipv4Repr, Ipv4Error> {
        if p.version() != 4 {
            return Err(Ipv4Error::Version(p.version()));
        }
        if !p.verify_checksum() {
            return Err(Ipv4Error::Checksum);
        }
        Ok(Ipv4Repr {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len().wrapping_sub(p.header_len() as u16),
            dscp: p.dscp(),
            ecn: p.ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
            ttl: p.ttl(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a 20-byte header (IHL 5) with its checksum into the start of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>) {
        p.set_version_and_header_len(HEADER_LEN);
        p.set_tos((self.dscp << 2) | (self.ecn & 0x03));
        p.set_total_len((HEADER_LEN as u16).wrapping_add(self.payload_len));
        p.set_ident(self.ident);
        p.set_frag(self.dont_frag, self.more_frags, self.frag_offset);
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A UDP datagram 192.168.0.1 -> 192.168.0.199, DF, TTL 64, id 0, total length 0x73
    // (the header of the checksum example in checksum.rs), followed by its data and by
    // Ethernet padding that is not part of it.
    const HDR: [u8; 20] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7];

    fn datagram() -> Vec<u8> {
        let mut d = HDR.to_vec();
        d.resize(0x73, 0xaa);
        d.extend_from_slice(&[0, 0, 0]); // padding
        d
    }

    #[test]
    fn parse() {
        let d = datagram();
        let p = Ipv4Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 0x73);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!((p.ttl(), p.protocol()), (64, IpProtocol::Udp));
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert_eq!(p.payload().len(), 0x73 - 20);
        assert!(p.options().is_empty());
        assert!(p.verify_checksum());
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 0x73 - 20);
        assert!(r.dont_frag);
    }

    #[test]
    fn emit_matches_fixture() {
        let r = Ipv4Repr::parse(&Ipv4Packet::new_checked(&datagram()[..]).unwrap()).unwrap();
        let mut b = [0u8; 20];
        r.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
        assert_eq!(b, HDR);
    }

    #[test]
    fn tos_frag_fields() {
        let mut b = HDR;
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_dscp(46);
        p.set_ecn(3);
        assert_eq!((p.tos(), p.dscp(), p.ecn()), (0xbb, 46, 3));
        p.set_frag(false, true, 1480);
        assert_eq!(&p.into_inner()[6..8], &[0x20, 0xb9]);
        let p = Ipv4Packet::new_unchecked(&b[..]);
        assert!(p.more_frags() && !p.dont_frag() && p.is_fragment());
        assert_eq!(p.frag_offset(), 1480);
        assert!(!p.verify_checksum());
    }

    #[test]
    fn options_via_ihl() {
        // IHL 6: one option word (NOP NOP NOP EOL).
        let mut d = HDR.to_vec();
        d[0] = 0x46;
        d[3] = 28;
        d.splice(20..20, [1, 1, 1, 0]);
        d.extend_from_slice(&[9, 9, 9, 9]);
        let mut p = Ipv4Packet::new_checked(&mut d[..]).unwrap();
        p.fill_checksum();
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert_eq!(p.payload(), &[9, 9, 9, 9]);
        assert!(p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p).unwrap().payload_len, 4);
    }

    #[test]
    fn errors() {
        let d = datagram();
        assert_eq!(Ipv4Packet::new_checked(&d[..19]).err(), Some(Ipv4Error::Truncated));
        assert_eq!(Ipv4Packet::new_checked(&d[..0x72]).err(), Some(Ipv4Error::BadTotalLen(0x73)));
        let mut bad = d.clone();
        bad[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&bad[..]).err(), Some(Ipv4Error::BadHeaderLen(4)));
        bad[0] = 0x4f;
        bad[3] = 0x30;
        assert_eq!(Ipv4Packet::new_checked(&bad[..]).err(), Some(Ipv4Error::BadTotalLen(0x30)));
        bad[0] = 0x65;
        bad[3] = 0x73;
        let p = Ipv4Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Err(Ipv4Error::Version(6)));
        let mut bad = d;
        bad[8] = 63;
        let p = Ipv4Packet::new_checked(&bad[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p), Err(Ipv4Error::Checksum));
    }

    #[test]
    fn pseudo_header() {
        let d = datagram();
        let p = Ipv4Packet::new_checked(&d[..]).unwrap();
        let words = [0xc0a8u32, 0x0001, 0xc0a8, 0x00c7, 17, 0x73 - 20];
        assert_eq!(p.pseudo_header_sum(), words.iter().sum::<u32>());
    }

    #[test]
    fn protocol_numbers_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(v)), v);
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(253), IpProtocol::Unknown(253));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            if let Ok(p) = Ipv4Packet::new_checked(&b[..]) {
                let _ = (p.options(), p.payload(), p.verify_checksum(), p.pseudo_header_sum());
                let _ = Ipv4Repr::parse(&p);
            }
        }

        #[test]
        fn emit_parse_round_trip(
            src: [u8; 4], dst: [u8; 4], proto: u8, len in 0u16..=65515, dscp in 0u8..64,
            ecn in 0u8..4, ident: u16, df: bool, mf: bool, off in 0u16..8192, ttl: u8,
        ) {
            let r = Ipv4Repr {
                src: src.into(), dst: dst.into(), protocol: proto.into(), payload_len: len, dscp,
                ecn, ident, dont_frag: df, more_frags: mf, frag_offset: off << 3, ttl,
            };
            let mut b = vec![0u8; HEADER_LEN + usize::from(len)];
            r.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            proptest::prop_assert_eq!(Ipv4Repr::parse(&p), Ok(r));
        }
    }
}
