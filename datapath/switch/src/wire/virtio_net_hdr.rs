//! The virtio-net header (`struct virtio_net_hdr_v1`, virtio 1.x spec 5.1.6) that tap
//! devices (`IFF_VNET_HDR`) and AF_PACKET sockets (`PACKET_VNET_HDR`) put before each
//! frame to carry checksum and segmentation offload state.
//!
//! Byte order: these fields are in the host's byte order for the interfaces rvs uses
//! (a tap without `TUNSETVNETBE`, an AF_PACKET socket), not network order.
//!
//! Layout: flags u8, gso_type u8, hdr_len u16, gso_size u16, csum_start u16,
//! csum_offset u16, then (v1 / mergeable buffers only) num_buffers u16.

use super::Truncated;

/// Length with `num_buffers` (what rvs asks taps for with `TUNSETVNETHDRSZ`).
pub const LEN_V1: usize = 12;
/// Length of the legacy header (AF_PACKET's `PACKET_VNET_HDR`).
pub const LEN_LEGACY: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum at csum_start+csum_offset is partial.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the receiver validated the checksum.
pub const F_DATA_VALID: u8 = 2;

/// The `gso_type` field (low 7 bits) and its ECN bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoType {
    None,
    TcpV4,
    Udp,
    TcpV6,
    /// UDP segmentation offload (`VIRTIO_NET_HDR_GSO_UDP_L4`).
    UdpL4,
    Unknown(u8),
}

/// `VIRTIO_NET_HDR_GSO_ECN`
pub const GSO_ECN: u8 = 0x80;

impl From<u8> for GsoType {
    fn from(v: u8) -> GsoType {
        match v & !GSO_ECN {
            0 => GsoType::None,
            1 => GsoType::TcpV4,
            3 => GsoType::Udp,
            4 => GsoType::TcpV6,
            5 => GsoType::UdpL4,
            x => GsoType::Unknown(x),
        }
    }
}

impl From<GsoType> for u8 {
    fn from(v: GsoType) -> u8 {
        match v {
            GsoType::None => 0,
            GsoType::TcpV4 => 1,
            GsoType::Udp => 3,
            GsoType::TcpV6 => 4,
            GsoType::UdpL4 => 5,
            GsoType::Unknown(x) => x,
        }
    }
}

/// The parsed header. `Default` is "no offload": a plain, fully checksummed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    /// Raw gso_type byte, including the ECN bit.
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Reads a header of either length (only the first 10 bytes carry offload state).
    pub fn parse(b: &[u8]) -> Result<VnetHdr, Truncated> {
        if b.len() < LEN_LEGACY {
            return Err(Truncated);
        }
        let u = |at: usize| u16::from_ne_bytes([b[at], b[at + 1]]);
        Ok(VnetHdr { flags: b[0], gso_type: b[1], hdr_len: u(2), gso_size: u(4), csum_start: u(6), csum_offset: u(8) })
    }

    /// Writes the header into `b` (10 or 12 bytes; `num_buffers` is written as 0).
    pub fn emit(&self, b: &mut [u8]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        if b.len() >= LEN_V1 {
            b[10..12].fill(0);
        }
    }

    #[inline]
    pub fn gso(&self) -> GsoType {
        GsoType::from(self.gso_type)
    }

    #[inline]
    pub fn is_gso(&self) -> bool {
        self.gso() != GsoType::None
    }

    #[inline]
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    /// Adjusts the offsets after `delta` bytes were inserted (positive) or removed
    /// (negative) in front of the L3 header, e.g. an 802.1Q tag push (+4) or pop (-4).
    /// Offsets that are not in use (no NEEDS_CSUM, no GSO) are left alone. The offsets
    /// come from the guest: they saturate rather than wrap, so a bogus one stays
    /// bogus (past the frame, or inside the Ethernet header) and is refused where it is
    /// used, never turned into a plausible one.
    #[inline]
    pub fn shift(&mut self, delta: i32) {
        let moved = |v: u16| (i32::from(v) + delta).clamp(0, i32::from(u16::MAX)) as u16;
        if self.needs_csum() {
            self.csum_start = moved(self.csum_start);
        }
        if self.is_gso() && self.hdr_len != 0 {
            self.hdr_len = moved(self.hdr_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = VnetHdr { flags: F_NEEDS_CSUM, gso_type: 1, hdr_len: 66, gso_size: 1448, csum_start: 34, csum_offset: 16 };
        let mut b = [0xffu8; LEN_V1];
        h.emit(&mut b);
        assert_eq!(&b[10..], &[0, 0]);
        assert_eq!(VnetHdr::parse(&b).unwrap(), h);
        assert_eq!(h.gso(), GsoType::TcpV4);
        assert!(VnetHdr::parse(&b[..9]).is_err());
    }

    #[test]
    fn shift_for_vlan() {
        let mut h = VnetHdr { flags: F_NEEDS_CSUM, gso_type: 4, hdr_len: 74, gso_size: 1428, csum_start: 54, csum_offset: 16 };
        h.shift(4);
        assert_eq!((h.csum_start, h.hdr_len), (58, 78));
        h.shift(-4);
        assert_eq!((h.csum_start, h.hdr_len), (54, 74));
        let mut plain = VnetHdr::default();
        plain.shift(4);
        assert_eq!(plain, VnetHdr::default());
    }

    #[test]
    fn gso_types() {
        assert_eq!(GsoType::from(0x81), GsoType::TcpV4);
        assert_eq!(GsoType::from(0x09), GsoType::Unknown(9));
        assert_eq!(u8::from(GsoType::Unknown(9)), 9);
    }
}
