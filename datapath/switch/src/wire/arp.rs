//! ARP (RFC 826) for Ethernet and IPv4, the only combination rvs meets.
//!
//! ```text
//! ar$hrd 16 bits  hardware address space (1, Ethernet)
//! ar$pro 16 bits  protocol address space (0x0800, IPv4)
//! ar$hln  8 bits  byte length of each hardware address (6)
//! ar$pln  8 bits  byte length of each protocol address (4)
//! ar$op  16 bits  opcode (ares_op$REQUEST | ares_op$REPLY)
//! ar$sha  6 bytes hardware address of sender
//! ar$spa  4 bytes protocol address of sender
//! ar$tha  6 bytes hardware address of target
//! ar$tpa  4 bytes protocol address of target
//! ```
//!
//! The view reads the addresses at the offsets of the Ethernet/IPv4 layout whatever the
//! length fields say; [`ArpRepr::parse`] is what checks that the packet really is
//! Ethernet/IPv4. The same format carries RARP (RFC 903, EtherType 0x8035, opcodes 3 and
//! 4), which QEMU sends on behalf of a guest after live migration, so those opcodes are
//! named too. A switch only reads ARP (to learn and to spot announcements); it never
//! answers it.

use std::net::Ipv4Addr;

use super::ethernet::EtherType;
use super::{Truncated, be16, put_be16};
use crate::types::MacAddr;

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// `ar$hrd` for Ethernet (RFC 826: "ares_hrd$Ethernet").
pub const HTYPE_ETHERNET: u16 = 1;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: std::ops::Range<usize> = 8..14;
    pub const SPA: std::ops::Range<usize> = 14..18;
    pub const THA: std::ops::Range<usize> = 18..24;
    pub const TPA: std::ops::Range<usize> = 24..28;
}

/// The opcode; unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Request,
    Reply,
    /// RARP request (RFC 903), 3.
    ReverseRequest,
    /// RARP reply (RFC 903), 4.
    ReverseReply,
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Operation {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            3 => Operation::ReverseRequest,
            4 => Operation::ReverseReply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(v: Operation) -> u16 {
        match v {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::ReverseRequest => 3,
            Operation::ReverseReply => 4,
            Operation::Unknown(v) => v,
        }
    }
}

/// Why bytes are not an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArpError {
    #[error("truncated ARP packet")]
    Truncated,
    #[error("ARP for hardware {htype} / protocol {ptype:#06x} (lengths {hlen}/{plen}), not Ethernet/IPv4")]
    Unsupported { htype: u16, ptype: u16, hlen: u8, plen: u8 },
}

impl From<Truncated> for ArpError {
    fn from(_: Truncated) -> ArpError {
        ArpError::Truncated
    }
}

/// A checked view of an ARP packet in the Ethernet/IPv4 layout.
#[derive(Debug, Clone, Copy)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after checking it holds 28 bytes (Ethernet padding may follow).
    pub fn new_checked(buffer: T) -> Result<Self, Truncated> {
        if buffer.as_ref().len() < PACKET_LEN {
            return Err(Truncated);
        }
        Ok(ArpPacket { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE)
    }

    #[inline]
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), field::PTYPE))
    }

    #[inline]
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    #[inline]
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    #[inline]
    pub fn operation(&self) -> Operation {
        Operation::from(be16(self.buffer.as_ref(), field::OPER))
    }

    #[inline]
    pub fn source_hardware_addr(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[field::SHA])
    }

    #[inline]
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[field::SPA])
    }

    #[inline]
    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr::from_slice(&self.buffer.as_ref()[field::THA])
    }

    #[inline]
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ip(&self.buffer.as_ref()[field::TPA])
    }
}

fn ip(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Writes the four fields that say "Ethernet/IPv4": 1, 0x0800, 6, 4.
    pub fn set_ethernet_ipv4(&mut self) {
        let b = self.buffer.as_mut();
        put_be16(b, field::HTYPE, HTYPE_ETHERNET);
        put_be16(b, field::PTYPE, EtherType::Ipv4.into());
        b[field::HLEN] = 6;
        b[field::PLEN] = 4;
    }

    pub fn set_operation(&mut self, op: Operation) {
        put_be16(self.buffer.as_mut(), field::OPER, op.into());
    }

    pub fn set_source_hardware_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&m.0);
    }

    pub fn set_source_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a.octets());
    }

    pub fn set_target_hardware_addr(&mut self, m: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&m.0);
    }

    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a.octets());
    }
}

/// The owned, validated form of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRepr {
    pub operation: Operation,
    pub source_hardware_addr: MacAddr,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: MacAddr,
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Accepts only hardware type 1 / protocol 0x0800 with lengths 6 and 4.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<ArpRepr, ArpError> {
        let (htype, ptype) = (p.hardware_type(), u16::from(p.protocol_type()));
        let (hlen, plen) = (p.hardware_len(), p.protocol_len());
        if htype != HTYPE_ETHERNET || ptype != u16::from(EtherType::Ipv4) || hlen != 6 || plen != 4 {
            return Err(ArpError::Unsupported { htype, ptype, hlen, plen });
        }
        Ok(ArpRepr {
            operation: p.operation(),
            source_hardware_addr: p.source_hardware_addr(),
            source_protocol_addr: p.source_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        p.set_ethernet_ipv4();
        p.set_operation(self.operation);
        p.set_source_hardware_addr(self.source_hardware_addr);
        p.set_source_protocol_addr(self.source_protocol_addr);
        p.set_target_hardware_addr(self.target_hardware_addr);
        p.set_target_protocol_addr(self.target_protocol_addr);
    }

    /// A gratuitous ARP: "the ARP Sender Protocol Address and ARP Target Protocol
    /// Address are both set to the IP address of the cache entry to be updated"
    /// (RFC 5944 4.6), as a request (an RFC 5227 "ARP Announcement") or a reply. An ARP
    /// Probe (sender address 0.0.0.0, RFC 5227 2.1.1) is not one.
    pub fn is_gratuitous(&self) -> bool {
        matches!(self.operation, Operation::Request | Operation::Reply)
            && self.source_protocol_addr == self.target_protocol_addr
            && !self.source_protocol_addr.is_unspecified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Who has 192.0.2.2? Tell 192.0.2.1 (02:00:00:00:00:01), then 18 bytes of padding
    // as it arrives in a 60-byte Ethernet frame.
    const REQUEST: [u8; 46] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 0, 2, 1, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 2, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn parse() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!((p.hardware_type(), p.protocol_type()), (1, EtherType::Ipv4));
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(r.operation, Operation::Request);
        assert_eq!(r.source_hardware_addr.to_string(), "02:00:00:00:00:01");
        assert_eq!(r.source_protocol_addr, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(r.target_hardware_addr, MacAddr::ZERO);
        assert_eq!(r.target_protocol_addr, Ipv4Addr::new(192, 0, 2, 2));
        assert!(!r.is_gratuitous());
    }

    #[test]
    fn emit_matches_fixture() {
        let r = ArpRepr::parse(&ArpPacket::new_checked(&REQUEST[..]).unwrap()).unwrap();
        let mut b = [0xeeu8; PACKET_LEN];
        r.emit(&mut ArpPacket::new_unchecked(&mut b[..]));
        assert_eq!(b[..], REQUEST[..PACKET_LEN]);
    }

    #[test]
    fn gratuitous() {
        let mut r = ArpRepr::parse(&ArpPacket::new_checked(&REQUEST[..]).unwrap()).unwrap();
        r.target_protocol_addr = r.source_protocol_addr;
        assert!(r.is_gratuitous(), "announcement");
        r.operation = Operation::Reply;
        assert!(r.is_gratuitous(), "gratuitous reply");
        r.operation = Operation::ReverseRequest;
        assert!(!r.is_gratuitous());
        r.operation = Operation::Request;
        r.source_protocol_addr = Ipv4Addr::UNSPECIFIED;
        r.target_protocol_addr = Ipv4Addr::UNSPECIFIED;
        assert!(!r.is_gratuitous(), "probe-like");
    }

    #[test]
    fn errors_and_unknown_opcodes() {
        assert_eq!(ArpPacket::new_checked(&REQUEST[..27]).err(), Some(Truncated));
        let mut b = REQUEST;
        b[1] = 6; // IEEE 802 hardware type
        assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()), Err(ArpError::Unsupported { htype: 6, ptype: 0x0800, hlen: 6, plen: 4 }));
        let mut b = REQUEST;
        b[4] = 8;
        assert!(ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()).is_err());
        let mut b = REQUEST;
        b[7] = 9;
        let r = ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(r.operation, Operation::Unknown(9));
        for v in 0..10u16 {
            assert_eq!(u16::from(Operation::from(v)), v);
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            if let Ok(p) = ArpPacket::new_checked(&b[..])
                && let Ok(r) = ArpRepr::parse(&p) {
                    let _ = r.is_gratuitous();
                }
        }

        #[test]
        fn emit_parse_round_trip(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) {
            let r = ArpRepr {
                operation: op.into(),
                source_hardware_addr: MacAddr(sha),
                source_protocol_addr: spa.into(),
                target_hardware_addr: MacAddr(tha),
                target_protocol_addr: tpa.into(),
            };
            let mut b = [0u8; PACKET_LEN];
            r.emit(&mut ArpPacket::new_unchecked(&mut b[..]));
            proptest::prop_assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&b[..]).unwrap()), Ok(r));
        }
    }
}
