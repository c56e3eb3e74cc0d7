//! TCP header (RFC 9293 section 3.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! |                        Sequence Number                        |
//! |                    Acknowledgment Number                      |
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! |       |       |R|E|G|K|H|T|N|N|                               |
//! |           Checksum            |         Urgent Pointer        |
//! |                           [Options]                           |
//! ```
//!
//! The view covers one whole segment (the IP payload): the checksum "is computed as the
//! 16-bit one's complement of the one's complement sum of all 16-bit words in the header
//! and text" plus the pseudo-header, so [`TcpPacket::verify_checksum`] sums the entire
//! buffer. [`TcpPacket::new_checked`] requires `20 <= data offset * 4 <= buffer`.
//!
//! Options are kept opaque ([`TcpPacket::options`], [`TcpRepr::options`]); the only
//! option rvs looks into is the timestamp ([`only_timestamps`]), because the receive
//! coalescer may merge segments that carry nothing else. The reserved bits "must be zero
//! in generated segments and must be ignored in received segments".

use std::net::IpAddr;

use super::checksum;
use super::ipv6::{IpProtocol, pseudo_header_sum_ip};
use super::{be16, put_be16};

/// Length of the header without options.
pub const HEADER_LEN: usize = 20;
/// Longest header: data offset 15.
pub const MAX_HEADER_LEN: usize = 60;
/// Offset of the checksum in the header (virtio-net `csum_offset` for TCP).
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;
pub const URG: u8 = 0x20;
/// ECN-Echo (RFC 3168).
pub const ECE: u8 = 0x40;
/// Congestion Window Reduced (RFC 3168).
pub const CWR: u8 = 0x80;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: std::ops::Range<usize> = 4..8;
    pub const ACK: std::ops::Range<usize> = 8..12;
    pub const OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// Option kinds (RFC 9293 3.2, RFC 7323).
const OPT_EOL: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_TIMESTAMPS: u8 = 8;
const OPT_TIMESTAMPS_LEN: u8 = 10;

/// Why bytes are not a usable TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    #[error("truncated TCP segment")]
    Truncated,
    #[error("TCP data offset {0} is below 5 or beyond the segment")]
    BadDataOffset(u8),
    #[error("TCP checksum mismatch")]
    Checksum,
}

/// A checked view of a TCP segment.
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn be32(b: &[u8], r: std::ops::Range<usize>) -> u32 {
    let b = &b[r];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after checking `20 <= data offset * 4 <= buffer length`.
    pub fn new_checked(buffer: T) -> Result<Self, TcpError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(TcpError::Truncated);
        }
        let p = TcpPacket { buffer };
        let hl = p.header_len();
        if hl < HEADER_LEN || hl > p.buffer.as_ref().len() {
            return Err(TcpError::BadDataOffset(p.buffer.as_ref()[field::OFFSET] >> 4));
        }
        Ok(p)
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

    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in octets (data offset * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFFSET] >> 4) * 4
    }

    /// The 4 reserved bits between the data offset and CWR.
    #[inline]
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::OFFSET] & 0x0f
    }

    /// The 8 control bits (`CWR` .. `FIN`).
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    #[inline]
    pub fn fin(&self) -> bool {
        self.flags() & FIN != 0
    }

    #[inline]
    pub fn syn(&self) -> bool {
        self.flags() & SYN != 0
    }

    #[inline]
    pub fn rst(&self) -> bool {
        self.flags() & RST != 0
    }

    #[inline]
    pub fn psh(&self) -> bool {
        self.flags() & PSH != 0
    }

    #[inline]
    pub fn ack(&self) -> bool {
        self.flags() & ACK != 0
    }

    #[inline]
    pub fn urg(&self) -> bool {
        self.flags() & URG != 0
    }

    #[inline]
    pub fn ece(&self) -> bool {
        self.flags() & ECE != 0
    }

    #[inline]
    pub fn cwr(&self) -> bool {
        self.flags() & CWR != 0
    }

    #[inline]
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WINDOW)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    #[inline]
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT)
    }

    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// True when the pseudo-header and the whole buffer sum to all ones.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let b = self.buffer.as_ref();
        let pseudo = pseudo_header_sum_ip(src, dst, IpProtocol::Tcp, b.len() as u32);
        checksum::fold(checksum::sum(b, pseudo)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, p: u16) {
        put_be16(self.buffer.as_mut(), field::SRC_PORT, p);
    }

    pub fn set_dst_port(&mut self, p: u16) {
        put_be16(self.buffer.as_mut(), field::DST_PORT, p);
    }

    pub fn set_seq_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_ack_number(&mut self, v: u32) {
        self.buffer.as_mut()[field::ACK].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the data offset from a header length in octets (a multiple of 4, at most 60)
    /// and clears the reserved bits.
    pub fn set_header_len(&mut self, len: usize) {
        self.buffer.as_mut()[field::OFFSET] = ((len / 4) as u8 & 0x0f) << 4;
    }

    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    pub fn set_window_len(&mut self, w: u16) {
        put_be16(self.buffer.as_mut(), field::WINDOW, w);
    }

    pub fn set_checksum(&mut self, c: u16) {
        put_be16(self.buffer.as_mut(), field::CHECKSUM, c);
    }

    pub fn set_urgent_at(&mut self, u: u16) {
        put_be16(self.buffer.as_mut(), field::URGENT, u);
    }

    /// Computes and stores the checksum over the pseudo-header and the whole buffer.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let b = self.buffer.as_ref();
        let pseudo = pseudo_header_sum_ip(src, dst, IpProtocol::Tcp, b.len() as u32);
        let c = !checksum::fold(checksum::sum(b, pseudo));
        self.set_checksum(c);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[HEADER_LEN..hl]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// True when `options` holds nothing but NOP/EOL padding and at most one timestamp
/// option (RFC 7323: kind 8, length 10), the layout every Linux data segment uses.
/// Malformed options answer `false`.
pub fn only_timestamps(options: &[u8]) -> bool {
    let mut i = 0;
    let mut seen = false;
    while i < options.len() {
        match options[i] {
            OPT_EOL => return options[i..].iter().all(|&b| b == 0),
            OPT_NOP => i += 1,
            OPT_TIMESTAMPS if !seen && options.get(i + 1) == Some(&OPT_TIMESTAMPS_LEN) => {
                if i + usize::from(OPT_TIMESTAMPS_LEN) > options.len() {
                    return false;
                }
                seen = true;
                i += usize::from(OPT_TIMESTAMPS_LEN);
            }
            _ => return false,
        }
    }
    true
}

/// The owned, validated form of a TCP header; options are borrowed, opaque bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    /// Control bits (`CWR` .. `FIN`).
    pub flags: u8,
    pub window: u16,
    pub urgent: u16,
    /// Options as on the wire. `emit` pads them with zeros (EOL) to a multiple of 4 and
    /// writes at most 40 bytes of them (the most a data offset can describe).
    pub options: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Validates the checksum against the addresses of the enclosing IP header. A
    /// segment whose checksum is still partial (virtio-net `NEEDS_CSUM`) must be
    /// completed first.
    pub fn parse<T: AsRef<[u8]>>(p: &'a TcpPacket<T>, src: IpAddr, dst: IpAddr) -> Result<TcpRepr<'a>, TcpError> {
        if !p.verify_checksum(src, dst) {
            return Err(TcpError::Checksum);
        }
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq_number(),
            ack: p.ack_number(),
            flags: p.flags(),
            window: p.window_len(),
            urgent: p.urgent_at(),
            options: p.options(),
        })
    }

    /// Header length with the options padded to a multiple of 4.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.len().min(MAX_HEADER_LEN - HEADER_LEN).div_ceil(4) * 4
    }

    /// Writes the header and options with a zero checksum. Once the payload is in place,
    /// call [`TcpPacket::fill_checksum`] on the whole segment.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut TcpPacket<T>) {
        let hl = self.buffer_len();
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq);
        p.set_ack_number(self.ack);
        p.set_header_len(hl);
        p.set_flags(self.flags);
        p.set_window_len(self.window);
        p.set_checksum(0);
        p.set_urgent_at(self.urgent);
        let opts = &self.options[..self.options.len().min(hl - HEADER_LEN)];
        let out = p.options_mut();
        out[..opts.len()].copy_from_slice(opts);
        out[opts.len()..].fill(OPT_EOL);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    // 10.0.0.1:40000 -> 10.0.0.2:5201, seq 0x01020304, ack 0x0a0b0c0d, ACK|PSH,
    // window 502, NOP NOP TS(1, 2), data "hi". Checksum worked out by hand (see test).
    const SEG: [u8; 34] = [
        0x9c, 0x40, 0x14, 0x51, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d, 0x80, 0x18, 0x01, 0xf6, 0x00, 0x00, 0x00,
        0x00, // checksum filled in by `seg()`
        0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 2, b'h', b'i',
    ];

    fn seg() -> [u8; 34] {
        let mut s = SEG;
        let words: u32 = s.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>() + 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 34;
        let c = !checksum::fold(u64::from(words));
        s[16..18].copy_from_slice(&c.to_be_bytes());
        s
    }

    #[test]
    fn parse() {
        let s = seg();
        let p = TcpPacket::new_checked(&s[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (40000, 5201));
        assert_eq!((p.seq_number(), p.ack_number()), (0x0102_0304, 0x0a0b_0c0d));
        assert_eq!((p.header_len(), p.reserved(), p.flags()), (32, 0, ACK | PSH));
        assert!(p.ack() && p.psh() && !p.fin() && !p.syn() && !p.rst() && !p.urg());
        assert!(!p.ece() && !p.cwr());
        assert_eq!((p.window_len(), p.urgent_at()), (502, 0));
        assert_eq!(p.options(), &SEG[20..32]);
        assert_eq!(p.payload(), b"hi");
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, DST));
        let r = TcpRepr::parse(&p, SRC, DST).unwrap();
        assert_eq!(r.options, &SEG[20..32]);
        assert_eq!(TcpRepr::parse(&p, SRC, SRC), Err(TcpError::Checksum));
    }

    #[test]
    fn emit_matches_fixture() {
        let r =
            TcpRepr { src_port: 40000, dst_port: 5201, seq: 0x0102_0304, ack: 0x0a0b_0c0d, flags: ACK | PSH, window: 502, urgent: 0, options: &SEG[20..32] };
        assert_eq!(r.buffer_len(), 32);
        let mut b = [0u8; 34];
        b[32..].copy_from_slice(b"hi");
        let mut p = TcpPacket::new_unchecked(&mut b[..]);
        r.emit(&mut p);
        p.fill_checksum(SRC, DST);
        assert_eq!(b, seg());
    }

    #[test]
    fn options_are_padded() {
        let r = TcpRepr { src_port: 1, dst_port: 2, seq: 3, ack: 4, flags: SYN, window: 5, urgent: 0, options: &[2, 4, 5, 0xb4, 1, 1, 4] };
        assert_eq!(r.buffer_len(), 28);
        let mut b = [0xffu8; 28];
        r.emit(&mut TcpPacket::new_unchecked(&mut b[..]));
        assert_eq!(&b[20..], &[2, 4, 5, 0xb4, 1, 1, 4, 0]);
        assert_eq!(b[12], 0x70);
    }

    #[test]
    fn data_offset_errors() {
        let s = seg();
        assert_eq!(TcpPacket::new_checked(&s[..19]).err(), Some(TcpError::Truncated));
        assert_eq!(TcpPacket::new_checked(&s[..31]).err(), Some(TcpError::BadDataOffset(8)));
        let mut b = s;
        b[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&b[..]).err(), Some(TcpError::BadDataOffset(4)));
    }

    #[test]
    fn timestamp_only_options() {
        assert!(only_timestamps(&[]));
        assert!(only_timestamps(&SEG[20..32]));
        assert!(only_timestamps(&[8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0]));
        assert!(only_timestamps(&[1, 1, 1, 1]));
        assert!(!only_timestamps(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0])); // cut short
        assert!(!only_timestamps(&[2, 4, 5, 0xb4])); // MSS
        assert!(!only_timestamps(&[1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2])); // SACK
        assert!(!only_timestamps(&[0, 1, 0, 0])); // junk after EOL
        let two = [8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        assert!(!only_timestamps(&two));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..80)) {
            let _ = only_timestamps(&b);
            if let Ok(p) = TcpPacket::new_checked(&b[..]) {
                let _ = (p.options(), p.payload(), p.verify_checksum(SRC, DST));
                let _ = TcpRepr::parse(&p, SRC, DST);
            }
        }

        #[test]
        fn emit_parse_round_trip(
            sp: u16, dp: u16, seq: u32, ack: u32, flags: u8, window: u16, urgent: u16,
            words in proptest::collection::vec(proptest::num::u8::ANY, 0..=10),
            data in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            // options whose length is a multiple of 4 come back unchanged
            let opts: Vec<u8> = words.iter().flat_map(|&w| [w, 1, 1, 1]).collect();
            let r = TcpRepr { src_port: sp, dst_port: dp, seq, ack, flags, window, urgent, options: &opts };
            let mut b = vec![0u8; r.buffer_len() + data.len()];
            b[r.buffer_len()..].copy_from_slice(&data);
            let mut p = TcpPacket::new_unchecked(&mut b[..]);
            r.emit(&mut p);
            p.fill_checksum(SRC, DST);
            let p = TcpPacket::new_checked(&b[..]).unwrap();
            proptest::prop_assert_eq!(TcpRepr::parse(&p, SRC, DST), Ok(r));
            proptest::prop_assert_eq!(p.payload(), &data[..]);
        }
    }
}
