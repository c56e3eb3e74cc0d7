//! Frames for tests and benchmarks, built with the wire layer's representations rather
//! than byte offsets written by hand. Not used by the switch itself.

use crate::packet::PacketBuf;
use crate::types::MacAddr;
use crate::wire::ethernet::{self, EtherType, EthernetFrame, EthernetRepr};

/// A minimum-size (60-byte) untagged frame from `src` to `dst`, EtherType IPv4, its
/// payload zeros.
pub fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::MIN_FRAME_LEN];
    EthernetRepr { dst, src, ethertype: EtherType::Ipv4 }.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    f
}

/// `f` with an 802.1Q tag (TPID 0x8100, priority 0) for VLAN `vid` after its MAC
/// addresses.
pub fn tag(f: &[u8], vid: u16) -> Vec<u8> {
    let mut p = PacketBuf::from_frame(f);
    assert!(p.push_vlan(u16::from(EtherType::Vlan), vid), "frame too short to tag");
    p.frame().to_vec()
}

/// [`frame`] tagged for VLAN `vid`.
pub fn tagged(dst: MacAddr, src: MacAddr, vid: u16) -> Vec<u8> {
    tag(&frame(dst, src), vid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_what_the_wire_layer_reads() {
        let (a, b) = (MacAddr([2, 0, 0, 0, 0, 1]), MacAddr([2, 0, 0, 0, 0, 2]));
        let f = frame(a, b);
        let e = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!((e.dst(), e.src(), e.ethertype(), f.len()), (a, b, EtherType::Ipv4, 60));
        let t = tagged(a, b, 10);
        assert_eq!(t.len(), 64);
        assert_eq!(PacketBuf::from_frame(&t).vlan_tci(), Some(10));
        assert_eq!(&t[..12], &f[..12]);
    }
}
