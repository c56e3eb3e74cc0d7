//! VXLAN header (RFC 7348 section 5): the 8 bytes between the outer UDP header and the
//! inner Ethernet frame.
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Send: "the I flag MUST be set to 1 for a valid VXLAN Network ID (VNI). The other 7
//! bits (designated "R") are reserved fields and MUST be set to zero on transmission",
//! and the reserved fields likewise: [`VxlanRepr::emit`] writes flags exactly 0x08 and
//! zeros everywhere else.
//!
//! Receive: [`VxlanRepr::parse`] requires the I flag and ignores the reserved bits, as
//! RFC 7348 says ("ignored on receipt"). Linux's vxlan driver and OVS's userspace
//! tunnel code are stricter: they drop a header with any other bit set (the kernel's
//! `vxlan_rcv` says so in a comment: "This behavior diverges from VXLAN RFC").
//! [`VxlanHeader::reserved_bits_zero`] tells the two apart for a caller that wants to
//! count such frames or behave like them.

use super::Truncated;
use crate::types::Vni;

/// Length of the header.
pub const HEADER_LEN: usize = 8;
/// IANA-assigned destination port (RFC 7348 5: "Well-known UDP port 4789").
pub const UDP_PORT: u16 = 4789;
/// The I flag: "a valid VXLAN Network ID (VNI)".
pub const FLAG_I: u8 = 0x08;
/// Bytes VXLAN adds in front of an inner frame over IPv4: outer IPv4 20 + UDP 8 + VXLAN
/// 8 + inner Ethernet 14 (the inner Ethernet header counts against the underlay MTU).
pub const OVERHEAD_V4: usize = 20 + 8 + HEADER_LEN + 14;
/// The same over IPv6 (outer header 40).
pub const OVERHEAD_V6: usize = 40 + 8 + HEADER_LEN + 14;

mod field {
    pub const FLAGS: usize = 0;
    pub const RESERVED1: std::ops::Range<usize> = 1..4;
    pub const VNI: std::ops::Range<usize> = 4..7;
    pub const RESERVED2: usize = 7;
}

/// Why a received header is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VxlanError {
    #[error("truncated VXLAN header")]
    Truncated,
    #[error("VXLAN flags {0:#04x} without the I flag")]
    NoIFlag(u8),
}

impl From<Truncated> for VxlanError {
    fn from(_: Truncated) -> VxlanError {
        VxlanError::Truncated
    }
}

/// A checked view of a VXLAN header (and the inner frame after it).
#[derive(Debug, Clone, Copy)]
pub struct VxlanHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanHeader<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanHeader { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, Truncated> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Truncated);
        }
        Ok(VxlanHeader { buffer })
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole flags octet.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    #[inline]
    pub fn i_flag(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// The 24-bit VNI (meaningful only with the I flag).
    #[inline]
    pub fn vni(&self) -> Vni {
        let b = &self.buffer.as_ref()[field::VNI];
        let v = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        // Three bytes never exceed Vni::MAX, so the default is unreachable.
        Vni::new(v).unwrap_or_default()
    }

    /// The 24 reserved bits after the flags.
    #[inline]
    pub fn reserved1(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::RESERVED1];
        u32::from_be_bytes([0, b[0], b[1], b[2]])
    }

    /// The 8 reserved bits after the VNI.
    #[inline]
    pub fn reserved2(&self) -> u8 {
        self.buffer.as_ref()[field::RESERVED2]
    }

    /// True when flags are exactly 0x08 and every reserved bit is zero: what this module
    /// sends, and the only header Linux and OVS accept.
    #[inline]
    pub fn reserved_bits_zero(&self) -> bool {
        self.flags() == FLAG_I && self.reserved1() == 0 && self.reserved2() == 0
    }

    /// The encapsulated Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanHeader<T> {
    pub fn set_flags(&mut self, f: u8) {
        self.buffer.as_mut()[field::FLAGS] = f;
    }

    pub fn set_vni(&mut self, vni: Vni) {
        let b = vni.get().to_be_bytes();
        self.buffer.as_mut()[field::VNI].copy_from_slice(&b[1..]);
    }

    /// Zeroes both reserved fields.
    pub fn clear_reserved(&mut self) {
        let b = self.buffer.as_mut();
        b[field::RESERVED1].fill(0);
        b[field::RESERVED2] = 0;
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The owned form: all a VXLAN header carries is the VNI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanRepr {
    pub vni: Vni,
}

impl VxlanRepr {
    /// Requires the I flag; ignores the reserved bits (RFC 7348).
    pub fn parse<T: AsRef<[u8]>>(h: &VxlanHeader<T>) -> Result<VxlanRepr, VxlanError> {
        if !h.i_flag() {
            return Err(VxlanError::NoIFlag(h.flags()));
        }
        Ok(VxlanRepr { vni: h.vni() })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes flags 0x08, the VNI and zero reserved fields.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, h: &mut VxlanHeader<T>) {
        h.set_flags(FLAG_I);
        h.clear_reserved();
        h.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // VNI 5000 (0x001388), then the first bytes of an inner frame.
    const HDR: [u8; 10] = [0x08, 0, 0, 0, 0x00, 0x13, 0x88, 0x00, 0xff, 0xff];

    #[test]
    fn parse() {
        let h = VxlanHeader::new_checked(&HDR[..]).unwrap();
        assert!(h.i_flag() && h.reserved_bits_zero());
        assert_eq!((h.flags(), h.vni().get()), (0x08, 5000));
        assert_eq!(h.payload(), &[0xff, 0xff]);
        assert_eq!(VxlanRepr::parse(&h).unwrap().vni.get(), 5000);
    }

    #[test]
    fn emit_is_exactly_flags_08_and_zero_reserved() {
        let r = VxlanRepr { vni: Vni::new(0xff_ffff).unwrap() };
        let mut b = [0xffu8; 8];
        r.emit(&mut VxlanHeader::new_unchecked(&mut b[..]));
        assert_eq!(b, [0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]);
        let mut b = [0xaau8; 8];
        VxlanRepr { vni: Vni::new(5000).unwrap() }.emit(&mut VxlanHeader::new_unchecked(&mut b[..]));
        assert_eq!(b, HDR[..8]);
    }

    #[test]
    fn receive_requires_i_and_ignores_reserved() {
        let mut b = HDR;
        b[0] = 0x00;
        let h = VxlanHeader::new_checked(&b[..]).unwrap();
        assert_eq!(VxlanRepr::parse(&h), Err(VxlanError::NoIFlag(0)));
        // G (group policy) flag, reserved bits and the last reserved byte set: accepted,
        // but not "strict".
        let b = [0x88, 0x00, 0x12, 0x34, 0x00, 0x13, 0x88, 0x77];
        let h = VxlanHeader::new_checked(&b[..]).unwrap();
        assert!(!h.reserved_bits_zero());
        assert_eq!((h.reserved1(), h.reserved2()), (0x1234, 0x77));
        assert_eq!(VxlanRepr::parse(&h).unwrap().vni.get(), 5000);
        assert_eq!(VxlanHeader::new_checked(&b[..7]).err(), Some(Truncated));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(proptest::num::u8::ANY, 0..16)) {
            if let Ok(h) = VxlanHeader::new_checked(&b[..]) {
                let _ = (h.payload(), h.reserved_bits_zero(), VxlanRepr::parse(&h));
            }
        }

        #[test]
        fn emit_parse_round_trip(v in 0u32..=Vni::MAX) {
            let r = VxlanRepr { vni: Vni::new(v).unwrap() };
            let mut b = [0xffu8; HEADER_LEN];
            r.emit(&mut VxlanHeader::new_unchecked(&mut b[..]));
            let h = VxlanHeader::new_checked(&b[..]).unwrap();
            proptest::prop_assert!(h.reserved_bits_zero());
            proptest::prop_assert_eq!(VxlanRepr::parse(&h), Ok(r));
        }
    }
}
