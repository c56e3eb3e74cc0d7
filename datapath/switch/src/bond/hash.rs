//! Which of a bond's 256 hash buckets a frame falls in, by the bond's policy:
//! * [`Policy::SrcMacVlan`] — balance-slb: source MAC and VLAN, so each MAC leaves by
//!   one member and the upstream switch learns it on one link (OVS's `hash_mac`);
//! * [`Policy::L34`] — balance-tcp: IP protocol, source and destination addresses and,
//!   for TCP, UDP and SCTP (not for later fragments), the ports. Frames that are not IP
//!   all fall in one bucket, as OVS's `flow_hash_5tuple` hashes only those fields;
//! * [`Policy::L23`] — rvs's own (`other_config:rvs-bond-hash=l23` with balance-tcp):
//!   source and destination MAC, VLAN and, for IPv4/IPv6, source and destination
//!   addresses — Linux bonding's `xmit_hash_policy=layer2+3`, which OVS lacks. Frames
//!   of one host pair stay on one member whatever their ports.
//!
//! The numbers differ from OVS's (rvs has its own hash function); only the properties
//! matter: a flow always maps to the same bucket, and different flows spread. The hash
//! is a keyed 64-bit multiply-xorshift mix of the fields with the bond's `basis`; the
//! table is a fixed array of 256 buckets (no chains), so crafted keys cannot make a
//! lookup slower, only put flows on one member, which a sender can do anyway.
//!
//! Reads at most the first headers of the frame through bounds-checked `get`s: never
//! panics, never allocates.

use crate::types::MacAddr;

/// Buckets per bond (OVS's BOND_BUCKETS).
pub const BUCKETS: usize = 256;

/// How frames are spread over a bond's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    SrcMacVlan,
    L34,
    L23,
}

/// The fields a policy may hash, read from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowKey {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub ethertype: u16,
    /// IPv4 addresses in the last 4 bytes, IPv6 in all 16; zero when not IP.
    pub ip_src: [u8; 16],
    pub ip_dst: [u8; 16],
    pub ip_proto: u8,
    pub port_src: u16,
    pub port_dst: u16,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 132)
}

impl FlowKey {
    /// Reads the key from an Ethernet frame (802.1Q/802.1ad tags skipped); what is
    /// missing or truncated stays zero.
    pub fn from_frame(f: &[u8]) -> FlowKey {
        let mut k = FlowKey::default();
        let (Some(dst), Some(src)) = (f.get(0..6), f.get(6..12)) else { return k };
        k.dst = MacAddr::from_slice(dst);
        k.src = MacAddr::from_slice(src);
        let mut off = 12;
        let mut et = be16(f, off).unwrap_or(0);
        while matches!(et, 0x8100 | 0x88a8) {
            off += 4;
            et = be16(f, off).unwrap_or(0);
        }
        k.ethertype = et;
        let l3 = off + 2;
        match et {
            0x0800 => k.ipv4(f, l3),
            0x86dd => k.ipv6(f, l3),
            _ => {}
        }
        k
    }

    fn ipv4(&mut self, f: &[u8], l3: usize) {
        let Some(h) = f.get(l3..l3 + 20) else { return };
        self.ip_proto = h[9];
        self.ip_src[12..].copy_from_slice(&h[12..16]);
        self.ip_dst[12..].copy_from_slice(&h[16..20]);
        let later_fragment = u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0;
        let l4 = l3 + usize::from(h[0] & 0x0f) * 4;
        if has_ports(self.ip_proto) && !later_fragment {
            self.ports(f, l4);
        }
    }

    fn ipv6(&mut self, f: &[u8], l3: usize) {
        let Some(h) = f.get(l3..l3 + 40) else { return };
        self.ip_proto = h[6];
        self.ip_src.copy_from_slice(&h[8..24]);
        self.ip_dst.copy_from_slice(&h[24..40]);
        if has_ports(self.ip_proto) {
            self.ports(f, l3 + 40);
        }
    }

    fn ports(&mut self, f: &[u8], l4: usize) {
        if let (Some(s), Some(d)) = (be16(f, l4), be16(f, l4 + 2)) {
            (self.port_src, self.port_dst) = (s, d);
        }
    }
}

/// One mixing step (a 64-bit multiply and xorshift, after the finalizers of
/// murmur3/splitmix).
fn mix(h: u64, v: u64) -> u64 {
    let x = (h ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (x >> 32)
}

fn mac64(m: MacAddr) -> u64 {
    let o = m.0;
    u64::from_be_bytes([0, 0, o[0], o[1], o[2], o[3], o[4], o[5]])
}

fn addr(a: &[u8; 16]) -> (u64, u64) {
    let (hi, lo) = a.split_at(8);
    (u64::from_be_bytes(hi.try_into().unwrap_or_default()), u64::from_be_bytes(lo.try_into().unwrap_or_default()))
}

fn is_ip(k: &FlowKey) -> bool {
    matches!(k.ethertype, 0x0800 | 0x86dd)
}

/// The 32-bit hash of `key` in `vlan` under `policy`.
pub fn hash(policy: Policy, key: &FlowKey, vlan: u16, basis: u32) -> u32 {
    let mut h = u64::from(basis);
    match policy {
        Policy::SrcMacVlan => h = mix(h, mac64(key.src) | u64::from(vlan) << 48),
        Policy::L34 => {
            if is_ip(key) {
                let ((s1, s2), (d1, d2)) = (addr(&key.ip_src), addr(&key.ip_dst));
                h = mix(mix(mix(mix(h, s1), s2), d1), d2);
                h = mix(h, u64::from(key.ip_proto) << 32 | u64::from(key.port_src) << 16 | u64::from(key.port_dst));
            }
        }
        Policy::L23 => {
            h = mix(mix(h, mac64(key.src) | u64::from(vlan) << 48), mac64(key.dst));
            if is_ip(key) {
                let ((s1, s2), (d1, d2)) = (addr(&key.ip_src), addr(&key.ip_dst));
                h = mix(mix(mix(mix(h, s1), s2), d1), d2);
            }
        }
    }
    (h ^ (h >> 32)) as u32
}

/// The bucket of a frame.
pub fn bucket(policy: Policy, frame: &[u8], vlan: u16, basis: u32) -> u8 {
    hash(policy, &FlowKey::from_frame(frame), vlan, basis) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn tcp4(src_mac: u8, dst_mac: u8, sip: [u8; 4], dip: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, dst_mac]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, src_mac]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&sip);
        f[30..34].copy_from_slice(&dip);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn key_from_frames() {
        let f = tcp4(1, 2, [10, 0, 0, 1], [10, 0, 0, 2], 1234, 80);
        let k = FlowKey::from_frame(&f);
        assert_eq!((k.ip_proto, k.port_src, k.port_dst), (6, 1234, 80));
        assert_eq!(&k.ip_src[12..], &[10, 0, 0, 1]);
        // The same behind an 802.1Q tag.
        let mut t = f[..12].to_vec();
        t.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        t.extend_from_slice(&f[12..]);
        assert_eq!(FlowKey::from_frame(&t), k);
        // A later fragment has no ports.
        let mut g = f.clone();
        g[20] = 0x00;
        g[21] = 0x10;
        assert_eq!(FlowKey::from_frame(&g).port_src, 0);
        // Truncated frames keep what they have.
        assert_eq!(FlowKey::from_frame(&f[..30]).ip_proto, 0);
        assert_eq!(FlowKey::from_frame(&f[..13]).src, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(FlowKey::from_frame(&[]), FlowKey::default());
    }

    #[test]
    fn policies_look_at_their_fields() {
        let a = tcp4(1, 2, [10, 0, 0, 1], [10, 0, 0, 2], 1234, 80);
        let other_port = tcp4(1, 2, [10, 0, 0, 1], [10, 0, 0, 2], 1235, 80);
        let other_dst_mac = tcp4(1, 3, [10, 0, 0, 1], [10, 0, 0, 2], 1234, 80);
        let other_ip = tcp4(1, 2, [10, 0, 0, 1], [10, 0, 0, 3], 1234, 80);
        let h = |p, f: &[u8], vlan| hash(p, &FlowKey::from_frame(f), vlan, 0);
        // SLB: source MAC and VLAN only.
        assert_eq!(h(Policy::SrcMacVlan, &a, 10), h(Policy::SrcMacVlan, &other_ip, 10));
        assert_eq!(h(Policy::SrcMacVlan, &a, 10), h(Policy::SrcMacVlan, &other_dst_mac, 10));
        assert_ne!(h(Policy::SrcMacVlan, &a, 10), h(Policy::SrcMacVlan, &a, 11));
        // L3+L4: ports count, MACs do not.
        assert_ne!(h(Policy::L34, &a, 10), h(Policy::L34, &other_port, 10));
        assert_eq!(h(Policy::L34, &a, 10), h(Policy::L34, &other_dst_mac, 11));
        // L2+L3: addresses and MACs count, ports do not.
        assert_eq!(h(Policy::L23, &a, 10), h(Policy::L23, &other_port, 10));
        assert_ne!(h(Policy::L23, &a, 10), h(Policy::L23, &other_ip, 10));
        assert_ne!(h(Policy::L23, &a, 10), h(Policy::L23, &other_dst_mac, 10));
        // The basis changes the numbers.
        assert_ne!(hash(Policy::L34, &FlowKey::from_frame(&a), 0, 0), hash(Policy::L34, &FlowKey::from_frame(&a), 0, 1));
        // Non-IP frames: L3+L4 has nothing to hash (one bucket), L2+L3 has the MACs.
        let arp_from = |m| {
            let mut f = testing::frame(MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 0, m]));
            f[12..14].copy_from_slice(&[0x08, 0x06]);
            f
        };
        let (arp, arp2) = (arp_from(1), arp_from(7));
        assert_eq!(h(Policy::L34, &arp, 1), h(Policy::L34, &arp2, 1));
        assert_ne!(h(Policy::L23, &arp, 1), h(Policy::L23, &arp2, 1));
    }

    #[test]
    fn flows_spread_over_buckets() {
        for p in [Policy::SrcMacVlan, Policy::L34, Policy::L23] {
            let mut seen = [0u32; BUCKETS];
            for i in 0..4096u32 {
                let b = i.to_be_bytes();
                let f = tcp4(b[3], b[2], [10, 0, b[2], b[3]], [10, 1, 0, 1], 1000 + i as u16, 80);
                seen[usize::from(bucket(p, &f, (i % 7) as u16, 0))] += 1;
            }
            let used = seen.iter().filter(|&&n| n > 0).count();
            assert!(used > 200, "{p:?}: 4096 flows in {used} buckets");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(f in proptest::collection::vec(0u8.., 0..120), vlan: u16, basis: u32) {
            for p in [Policy::SrcMacVlan, Policy::L34, Policy::L23] {
                let _ = bucket(p, &f, vlan, basis);
            }
        }
    }
}
