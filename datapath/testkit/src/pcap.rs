//! Reading pcap files in tests (tcpdump's `-w`, rvs/capture's): the frames, and the
//! ICMP echoes among them.

use std::path::Path;

/// The frames of a pcap file (nanosecond or microsecond, little-endian, Ethernet).
pub fn frames(path: &Path) -> Vec<Vec<u8>> {
    let f = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(f.len() >= 24, "no pcap header in {}", path.display());
    let magic = u32::from_le_bytes(f[0..4].try_into().unwrap());
    assert!(magic == 0xa1b2_3c4d || magic == 0xa1b2_c3d4, "not a pcap file: {magic:#x}");
    assert_eq!(u32::from_le_bytes(f[20..24].try_into().unwrap()), 1, "link type is not Ethernet");
    let (mut at, mut out) = (24, Vec::new());
    while at + 16 <= f.len() {
        let caplen = u32::from_le_bytes(f[at + 8..at + 12].try_into().unwrap()) as usize;
        assert!(at + 16 + caplen <= f.len(), "a truncated record");
        out.push(f[at + 16..at + 16 + caplen].to_vec());
        at += 16 + caplen;
    }
    assert_eq!(at, f.len(), "trailing bytes");
    out
}

/// The VLAN of a frame with one 802.1Q tag, if it has one.
pub fn vlan_of(f: &[u8]) -> Option<u16> {
    (f.len() > 16 && f[12..14] == [0x81, 0x00]).then(|| u16::from_be_bytes([f[14], f[15]]) & 0xfff)
}

/// ICMP echo requests (`kind` 8) or replies (0) among `frames` (IPv4, untagged or one
/// tag).
pub fn icmp(frames: &[Vec<u8>], kind: u8) -> Vec<&Vec<u8>> {
    frames
        .iter()
        .filter(|f| {
            let off = if vlan_of(f).is_some() { 4 } else { 0 };
            f.len() > 14 + off + 21 && f[12 + off..14 + off] == [0x08, 0x00] && f[14 + off + 9] == 1 && f[14 + off + 20] == kind
        })
        .collect()
}
