//! UDP header (RFC 768).
//!
//! ```text
//!  0      7 8     15 16    23 24    31
//! +--------+--------+--------+--------+
//! |     Source      |   Destination   |
//! |      Port       |      Port       |
//! +--------+--------+--------+--------+
//! |                 |                 |
//! |     Length      |    Checksum     |
//! +--------+--------+--------+--------+
//! ```
//!
//! "Length is the length in octets of this user datagram including this header and the
//! data": [`UdpPacket::new_checked`] requires `8 <= length <= buffer`, and the payload
//! ends at the length (bytes after it are not part of the datagram).
//!
//! Checksum: over the pseudo-header, the header and the data. On IPv4 "an all zero
//! transmitted checksum value means that the transmitter generated no checksum", and a
//! computed zero is sent as all ones. On IPv6 a zero checksum is invalid ("IPv6 receivers
//! must discard UDP packets containing a zero checksum", RFC 8200 8.1); the RFC 6935
//! tunnel exception is a socket option of the receiver, not something this view decides.

use std::net::IpAddr;

use super::checksum;
use super::ipv6::{IpProtocol, pseudo_header_sum_ip};
use super::{Truncated, be16, put_be16};

/// Length of the header.
pub const HEADER_LEN: usize = 8;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Offset of the checksum in the header (virtio-net `csum_offset` for UDP).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

/// Why bytes are not a usable UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UdpError {
    #[error("truncated UDP datagram")]
    Truncated,
    #[error("UDP length {0} disagrees with the header or the buffer")]
    BadLength(u16),
    #[error("UDP checksum mismatch")]
    Checksum,
}

impl From<Truncated> for UdpError {
    fn from(_: Truncated) -> UdpError {
        UdpError::Truncated
    }
}

/// A checked view of a UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after checking `8 <= length field <= buffer length`.
    pub fn new_checked(buffer: T) -> Result<Self, UdpError> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(UdpError::Truncated);
        }
        let len = be16(b, field::LENGTH);
        if usize::from(len) < HEADER_LEN || usize::from(len) > b.len() {
            return Err(UdpError::BadLength(len));
        }
        Ok(UdpPacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// The length field: header plus data.
    #[inline]
    pub fn length(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.length())]
    }

    /// The folded sum of the pseudo-header and the datagram (all ones when valid).
    fn sum(&self, src: IpAddr, dst: IpAddr) -> u16 {
        let len = self.length();
        let pseudo = pseudo_header_sum_ip(src, dst, IpProtocol::Udp, u32::from(len));
        checksum::fold(checksum::sum(&self.buffer.as_ref()[..usize::from(len)], pseudo))
    }

    /// Verifies the checksum. A zero checksum passes on IPv4 (none sent) and fails on
    /// IPv6.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4();
        }
        self.sum(src, dst) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, p: u16) {
        put_be16(self.buffer.as_mut(), field::SRC_PORT, p);
    }

    pub fn set_dst_port(&mut self, p: u16) {
        put_be16(self.buffer.as_mut(), field::DST_PORT, p);
    }

    pub fn set_length(&mut self, len: u16) {
        put_be16(self.buffer.as_mut(), field::LENGTH, len);
    }

    pub fn set_checksum(&mut self, c: u16) {
        put_be16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    /// Computes and stores the checksum over the pseudo-header and the `length()` bytes of
    /// the datagram; a computed zero is stored as all ones (RFC 768).
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let c = !self.sum(src, dst);
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.length());
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }
}

/// The owned, validated form of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Length of the data; `HEADER_LEN + payload_len` must fit a u16 (a larger value is
    /// the caller's bug and is written modulo 2^16).
    pub payload_len: u16,
}

impl UdpRepr {
    /// Validates the checksum against the addresses of the enclosing IP header.
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>, src: IpAddr, dst: IpAddr) -> Result<UdpRepr, UdpError> {
        if !p.verify_checksum(src, dst) {
            return Err(UdpError::Checksum);
        }
        Ok(UdpRepr { src_port: p.src_port(), dst_port: p.dst_port(), payload_len: p.length().wrapping_sub(HEADER_LEN as u16) })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with a zero checksum. Once the payload is in place, call
    /// [`UdpPacket::fill_checksum`] (mandatory on IPv6; on IPv4 zero means "none").
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut UdpPacket<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_length((HEADER_LEN as u16).wrapping_add(self.payload_len));
        p.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const V4: (IpAddr, IpAddr) = (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));

    fn v6() -> (IpAddr, IpAddr) {
        (IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)), IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2)))
    }

    // 192.0.2.1:1234 -> 192.0.2.2:4789, 4 data bytes "abcd", checksum computed by hand:
    // pseudo c000+0201+c000+0202+0011+000c, header 04d2+12b5+000c, data 6162+6364.
    const DGRAM: [u8; 12] = [0x04, 0xd2, 0x12, 0xb5, 0x00, 0x0c, 0x9f, 0x84, b'a', b'b', b'c', b'd'];

    #[test]
    fn parse() {
        let p = UdpPacket::new_checked(&DGRAM[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.length(), p.checksum()), (1234, 4789, 12, 0x9f84));
        assert_eq!(p.payload(), b"abcd");
        assert!(p.verify_checksum(V4.0, V4.1));
        let r = UdpRepr::parse(&p, V4.0, V4.1).unwrap();
        assert_eq!(r, UdpRepr { src_port: 1234, dst_port: 4789, payload_len: 4 });
        assert_eq!(UdpRepr::parse(&p, V4.1, V4.1), Err(UdpError::Checksum));
    }

    #[test]
    fn emit_matches_fixture() {
        let r = UdpRepr { src_port: 1234, dst_port: 4789, payload_len: 4 };
        let mut b = [0u8; 12];
        b[8..].copy_from_slice(b"abcd");
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        r.emit(&mut p);
        p.fill_checksum(V4.0, V4.1);
        assert_eq!(b, DGRAM);
    }

    #[test]
    fn zero_checksum_means_none_on_ipv4_only() {
        let mut b = DGRAM;
        UdpPacket::new_unchecked(&mut b[..]).set_checksum(0);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(V4.0, V4.1));
        let (s, d) = v6();
        assert!(!p.verify_checksum(s, d));
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        p.fill_checksum(s, d);
        assert!(p.verify_checksum(s, d));
        assert!(!p.verify_checksum(V4.0, V4.1));
    }

    #[test]
    fn computed_zero_is_sent_as_ones() {
        // Choose data so that the sum before complementing is 0xffff.
        let mut b = [0u8; 10];
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        UdpRepr { src_port: 0, dst_port: 0, payload_len: 2 }.emit(&mut p);
        let partial = !checksum::fold(checksum::sum(&p.into_inner()[..], pseudo_header_sum_ip(V4.0, V4.1, IpProtocol::Udp, 10)));
        b[8..10].copy_from_slice(&partial.to_be_bytes());
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        p.fill_checksum(V4.0, V4.1);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(V4.0, V4.1));
    }

    #[test]
    fn length_errors() {
        assert_eq!(UdpPacket::new_checked(&DGRAM[..7]).err(), Some(UdpError::Truncated));
        assert_eq!(UdpPacket::new_checked(&DGRAM[..11]).err(), Some(UdpError::BadLength(12)));
        let mut b = DGRAM;
        b[5] = 7;
        assert_eq!(UdpPacket::new_checked(&b[..]).err(), Some(UdpError::BadLength(7)));
        b[5] = 9;
        assert_eq!(UdpPacket::new_checked(&b[..]).unwrap().payload(), b"a");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            if let Ok(p) = UdpPacket::new_checked(&b[..]) {
                let _ = (p.payload(), p.verify_checksum(V4.0, V4.1));
                let (s, d) = v6();
                let _ = UdpRepr::parse(&p, s, d);
            }
        }

        #[test]
        fn emit_parse_round_trip(sp: u16, dp: u16, data in proptest::collection::vec(proptest::num::u8::ANY, 0..100), six: bool) {
            let (s, d) = if six { v6() } else { V4 };
            let r = UdpRepr { src_port: sp, dst_port: dp, payload_len: data.len() as u16 };
            let mut b = vec![0u8; r.buffer_len() + data.len()];
            b[HEADER_LEN..].copy_from_slice(&data);
            let mut p = UdpPacket::new_unchecked(&mut b[..]);
            r.emit(&mut p);
            p.fill_checksum(s, d);
            let p = UdpPacket::new_checked(&b[..]).unwrap();
            proptest::prop_assert_eq!(UdpRepr::parse(&p, s, d), Ok(r));
            proptest::prop_assert_eq!(p.payload(), &data[..]);
        }
    }
}
