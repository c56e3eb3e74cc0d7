//! IEEE 802.1Q VLAN tag: the 4 bytes (TPID 0x8100, TCI) between the source MAC and the
//! EtherType of a tagged frame.
//!
//! The view here covers the TCI and the encapsulated EtherType (`[TCI][EtherType]`, the
//! 4 bytes after the outer TPID), i.e. the payload of an Ethernet header whose EtherType
//! is 0x8100. Pushing and popping tags is done in the packet buffer's headroom by
//! [`crate::packet::PacketBuf`], never by copying the payload.
//!
//! TCI layout (IEEE 802.1Q-2018 9.6): PCP (3 bits), DEI (1 bit), VID (12 bits).

use super::ethernet::EtherType;
use super::{Truncated, be16, put_be16};
use crate::types::VlanId;

/// Length of the tag as it sits in the frame (TPID + TCI).
pub const TAG_LEN: usize = 4;
/// Length of this view: TCI + encapsulated EtherType.
pub const HEADER_LEN: usize = 4;
/// Offset of the TPID in a frame: right after the two MAC addresses.
pub const TPID_OFFSET: usize = 12;

/// A checked view of the TCI and inner EtherType that follow a TPID of 0x8100.
#[derive(Debug, Clone, Copy)]
pub struct VlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanHeader<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanHeader { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Truncated> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(VlanHeader { buffer })
    }

    #[inline]
    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    /// Priority code point (3 bits).
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// Drop eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }

    #[inline]
    pub fn vid(&self) -> VlanId {
        VlanId::from_tci(self.tci())
    }

    /// The EtherType of what the tag encapsulates.
    #[inline]
    pub fn inner_ethertype(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), 2))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanHeader<T> {
    pub fn set_tci(&mut self, tci: u16) {
        put_be16(self.buffer.as_mut(), 0, tci);
    }

    pub fn set_inner_ethertype(&mut self, t: EtherType) {
        put_be16(self.buffer.as_mut(), 2, t.into());
    }
}

/// Builds a TCI from its parts.
#[inline]
pub const fn tci(pcp: u8, dei: bool, vid: VlanId) -> u16 {
    ((pcp as u16 & 7) << 13) | ((dei as u16) << 12) | vid.get()
}

/// The owned form of a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanRepr {
    pub pcp: u8,
    pub dei: bool,
    pub vid: VlanId,
    pub inner_ethertype: EtherType,
}

impl VlanRepr {
    pub fn parse<T: AsRef<[u8]>>(h: &VlanHeader<T>) -> VlanRepr {
        VlanRepr { pcp: h.pcp(), dei: h.dei(), vid: h.vid(), inner_ethertype: h.inner_ethertype() }
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut VlanHeader<T>) {
        h.set_tci(tci(self.pcp, self.dei, self.vid));
        h.set_inner_ethertype(self.inner_ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_fields() {
        // PCP 5, DEI 1, VID 100, inner IPv4
        let b = [0xb0, 0x64, 0x08, 0x00];
        let h = VlanHeader::new_checked(&b[..]).unwrap();
        assert_eq!(h.pcp(), 5);
        assert!(h.dei());
        assert_eq!(h.vid().get(), 100);
        assert_eq!(h.inner_ethertype(), EtherType::Ipv4);
    }

    #[test]
    fn round_trip() {
        let r = VlanRepr { pcp: 7, dei: false, vid: VlanId::new(4094).unwrap(), inner_ethertype: EtherType::Arp };
        let mut b = [0u8; 4];
        r.emit(&mut VlanHeader::new_unchecked(&mut b[..]));
        assert_eq!(b, [0xef, 0xfe, 0x08, 0x06]);
        assert_eq!(VlanRepr::parse(&VlanHeader::new_checked(&b[..]).unwrap()), r);
    }

    #[test]
    fn truncated() {
        assert!(VlanHeader::new_checked(&[0u8; 3][..]).is_err());
    }
}
