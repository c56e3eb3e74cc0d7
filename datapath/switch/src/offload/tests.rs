//! Unit and property tests of the offload module.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use proptest::prelude::*;

use super::layout::{L4, Layout};
use super::*;
use crate::types::{MacAddr, VlanId};
use crate::wire::checksum;
use crate::wire::ethernet::EthernetRepr;
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::ipv4::Ipv4Repr;
use crate::wire::ipv4::{self, IpProtocol, Ipv4Error, Ipv4Packet};
use crate::wire::ipv6::{Ipv6Error, Ipv6Packet};
use crate::wire::ipv6::{Ipv6Repr, pseudo_header_sum_ip};
use crate::wire::tcp::TcpRepr;
use crate::wire::tcp::{self, TcpError, TcpPacket};
use crate::wire::udp::UdpRepr;
use crate::wire::udp::{self, UdpError, UdpPacket};
use crate::wire::virtio_net_hdr::{F_NEEDS_CSUM, GSO_ECN, GsoType, VnetHdr};
use crate::wire::vlan::VlanHeader;
use crate::wire::vlan::VlanRepr;

/// NOP NOP TS(7, 9), as Linux puts on every data segment.
const TS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
const SRC4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const DST4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const SRC6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const DST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

/// A frame as a guest's stack hands it over with TSO/USO: headers for the whole
/// payload, a partial L4 checksum, and the matching vnet header.
#[derive(Debug, Clone)]
struct Spec {
    v6: bool,
    vlan: bool,
    udp: bool,
    flags: u8,
    ts: bool,
    df: bool,
    ident: u16,
    seq: u32,
    mss: u16,
    payload: Vec<u8>,
}

impl Spec {
    fn tcp4(payload_len: usize, mss: u16) -> Spec {
        Spec {
            v6: false,
            vlan: false,
            udp: false,
            flags: tcp::ACK | tcp::PSH,
            ts: true,
            df: true,
            ident: 0x1234,
            seq: 1000,
            mss,
            payload: (0..payload_len).map(|i| (i * 7 + i / 251) as u8).collect(),
        }
    }

    fn l3(&self) -> usize {
        if self.vlan { 18 } else { 14 }
    }

    fn l4(&self) -> usize {
        self.l3() + if self.v6 { 40 } else { 20 }
    }

    fn addrs(&self) -> (IpAddr, IpAddr) {
        if self.v6 { (SRC6.into(), DST6.into()) } else { (SRC4.into(), DST4.into()) }
    }

    fn build(&self) -> (Vec<u8>, VnetHdr) {
        let (l3, l4) = (self.l3(), self.l4());
        let opts: &[u8] = if self.ts && !self.udp { &TS } else { &[] };
        let l4_hdr = if self.udp { udp::HEADER_LEN } else { tcp::HEADER_LEN + opts.len() };
        let l4_len = l4_hdr + self.payload.len();
        let mut f = vec![0u8; l4 + l4_len];
        let ip_type = if self.v6 { EtherType::Ipv6 } else { EtherType::Ipv4 };
        let eth =
            EthernetRepr { dst: MacAddr([2, 0, 0, 0, 0, 2]), src: MacAddr([2, 0, 0, 0, 0, 1]), ethertype: if self.vlan { EtherType::Vlan } else { ip_type } };
        eth.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
        if self.vlan {
            let vid = VlanId::new(120).unwrap();
            let tag = VlanRepr { pcp: 3, dei: false, vid, inner_ethertype: ip_type };
            tag.emit(&mut VlanHeader::new_unchecked(&mut f[14..]));
        }
        let proto = if self.udp { IpProtocol::Udp } else { IpProtocol::Tcp };
        if self.v6 {
            let ip = Ipv6Repr { src: SRC6, dst: DST6, next_header: proto, payload_len: l4_len as u16, hop_limit: 64, traffic_class: 0, flow_label: 0x12345 };
            ip.emit(&mut Ipv6Packet::new_unchecked(&mut f[l3..]));
        } else {
            let ip = Ipv4Repr {
                src: SRC4,
                dst: DST4,
                protocol: proto,
                payload_len: l4_len as u16,
                dscp: 0,
                ecn: 0,
                ident: self.ident,
                dont_frag: self.df,
                more_frags: false,
                frag_offset: 0,
                ttl: 64,
            };
            ip.emit(&mut Ipv4Packet::new_unchecked(&mut f[l3..]));
        }
        if self.udp {
            let u = UdpRepr { src_port: 4000, dst_port: 5000, payload_len: self.payload.len() as u16 };
            u.emit(&mut UdpPacket::new_unchecked(&mut f[l4..]));
        } else {
            let t = TcpRepr { src_port: 40000, dst_port: 5201, seq: self.seq, ack: 0xabcd, flags: self.flags, window: 502, urgent: 0, options: opts };
            t.emit(&mut TcpPacket::new_unchecked(&mut f[l4..]));
        }
        f[l4 + l4_hdr..].copy_from_slice(&self.payload);
        // The partial checksum a stack leaves for NEEDS_CSUM: the folded pseudo-header sum.
        let (s, d) = self.addrs();
        let partial = checksum::fold(u64::from(pseudo_header_sum_ip(s, d, proto, l4_len as u32)));
        let off = if self.udp { udp::CHECKSUM_OFFSET } else { tcp::CHECKSUM_OFFSET };
        f[l4 + off..l4 + off + 2].copy_from_slice(&partial.to_be_bytes());
        let gso = match (self.udp, self.v6) {
            (true, _) => GsoType::UdpL4,
            (false, false) => GsoType::TcpV4,
            (false, true) => GsoType::TcpV6,
        };
        let ecn = if !self.udp && self.flags & tcp::CWR != 0 { GSO_ECN } else { 0 };
        let vnet = VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: u8::from(gso) | ecn,
            hdr_len: (l4 + l4_hdr) as u16,
            gso_size: self.mss,
            csum_start: l4 as u16,
            csum_offset: off as u16,
        };
        (f, vnet)
    }
}

/// Segments `frame` at L2 and checks every segment with etherparse and our views;
/// returns the segments.
fn segment_and_check(s: &Spec, frame: &[u8], vnet: &VnetHdr) -> Vec<Vec<u8>> {
    let mut seg = Segmenter::new(frame, vnet).unwrap();
    let count = seg.segments();
    let full = seg.segment_len(Layer::L2);
    let mut out = vec![0u8; full];
    let (mut segs, mut payload) = (Vec::new(), Vec::new());
    while let Some(n) = seg.next_into(&mut out, 0, Layer::L2).unwrap() {
        let (i, b) = (segs.len(), &out[..n]);
        assert_eq!(seg.remaining(), count - i - 1);
        let p = SlicedPacket::from_ethernet(b).unwrap();
        let l4_len = match &p.net {
            Some(NetSlice::Ipv4(ip)) => {
                let h = ip.header();
                assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                assert_eq!(usize::from(h.total_len()), n - s.l3());
                assert_eq!(h.identification(), s.ident.wrapping_add(i as u16));
                usize::from(h.total_len()) - 20
            }
            Some(NetSlice::Ipv6(ip)) => usize::from(ip.header().payload_length()),
            other => panic!("not IP: {other:?}"),
        };
        assert_eq!(l4_len, n - s.l4());
        let (src, dst) = s.addrs();
        let first = i == 0;
        let last = i + 1 == count;
        let data = match &p.transport {
            Some(TransportSlice::Tcp(t)) => {
                let want = match (src, dst) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => t.calc_checksum_ipv4(a.octets(), b.octets()),
                    (IpAddr::V6(a), IpAddr::V6(b)) => t.calc_checksum_ipv6(a.octets(), b.octets()),
                    _ => unreachable!(),
                };
                assert_eq!(t.checksum(), want.unwrap());
                assert_eq!(t.sequence_number(), s.seq.wrapping_add(payload.len() as u32));
                assert_eq!(t.fin(), last && s.flags & tcp::FIN != 0);
                assert_eq!(t.psh(), last && s.flags & tcp::PSH != 0);
                assert_eq!(t.cwr(), first && s.flags & tcp::CWR != 0);
                assert_eq!(t.ece(), s.flags & tcp::ECE != 0);
                t.payload()
            }
            Some(TransportSlice::Udp(u)) => {
                assert_eq!(usize::from(u.length()), l4_len);
                let h = u.to_header();
                let want = match (src, dst) {
                    (IpAddr::V4(a), IpAddr::V4(b)) => h.calc_checksum_ipv4_raw(a.octets(), b.octets(), u.payload()),
                    (IpAddr::V6(a), IpAddr::V6(b)) => h.calc_checksum_ipv6_raw(a.octets(), b.octets(), u.payload()),
                    _ => unreachable!(),
                };
                assert_eq!(u.checksum(), want.unwrap());
                u.payload()
            }
            other => panic!("not TCP/UDP: {other:?}"),
        };
        // our own views agree
        if s.udp {
            assert!(UdpPacket::new_checked(&b[s.l4()..]).unwrap().verify_checksum(src, dst));
        } else {
            assert!(TcpPacket::new_checked(&b[s.l4()..]).unwrap().verify_checksum(src, dst));
        }
        assert!(data.len() <= usize::from(s.mss));
        if !last {
            assert_eq!(data.len(), usize::from(s.mss));
            assert_eq!(n, full);
        }
        assert_eq!(b[..s.l3()], frame[..s.l3()]);
        payload.extend_from_slice(data);
        segs.push(b.to_vec());
    }
    assert_eq!(segs.len(), count);
    assert_eq!(payload, s.payload);
    segs
}

fn coalesce(segs: &[Vec<u8>]) -> Vec<(Vec<u8>, VnetHdr)> {
    let mut co = Coalescer::new(vec![0u8; MAX_COALESCED]);
    let mut out = Vec::new();
    for s in segs {
        co.push(s, |e| out.push((e.frame().to_vec(), e.vnet())));
    }
    co.flush_with(|e| out.push((e.frame().to_vec(), e.vnet())));
    assert!(co.is_empty());
    out
}

// A GSO_TCPV4 frame, byte by byte: 198.18.0.1:40000 -> 198.18.0.2:5201, id 0x1234,
// DF, seq 1000, ACK|PSH, no options, payload "abcdefghij", mss 4.
const GSO_FRAME: [u8; 64] = [
    0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00, // Ethernet
    0x45, 0x00, 0x00, 0x32, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, // IPv4 ...
    198, 18, 0, 1, 198, 18, 0, 2, // ... (checksum fixed up by `fixture`)
    0x9c, 0x40, 0x14, 0x51, 0, 0, 0x03, 0xe8, 0, 0, 0xab, 0xcd, // TCP ports, seq, ack
    0x50, 0x18, 0x01, 0xf6, 0x00, 0x00, 0x00, 0x00, // offset, flags, window, csum, urg
    b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h', b'i', b'j',
];

fn fixture() -> (Vec<u8>, VnetHdr) {
    let mut f = GSO_FRAME.to_vec();
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    let vnet = VnetHdr { flags: F_NEEDS_CSUM, gso_type: 1, hdr_len: 54, gso_size: 4, csum_start: 34, csum_offset: 16 };
    (f, vnet)
}

#[test]
fn fixture_matches_spec_builder() {
    let (mut f, vnet) = fixture();
    let mut s = Spec::tcp4(10, 4);
    s.ts = false;
    s.payload = b"abcdefghij".to_vec();
    let (built, built_vnet) = s.build();
    assert_eq!(vnet, built_vnet);
    // the builder also writes the partial checksum
    f[50..52].copy_from_slice(&built[50..52]);
    assert_eq!(f, built);
}

/// The three segments of [`GSO_FRAME`] at mss 4 (IPv4 and TCP checksums worked out
/// independently of this code): total length 44/44/42, identification +1 each,
/// sequence +4 each, PSH only on the last.
const SEGMENTS: [&[u8]; 3] = [
    &[
        0x45, 0x00, 0x00, 0x2c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x9c, 0x70, 198, 18, 0, 1, 198, 18, 0, 2, // IPv4
        0x9c, 0x40, 0x14, 0x51, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0xab, 0xcd, 0x50, 0x10, 0x01, 0xf6, 0xfc, 0xa4, 0x00, 0x00, b'a', b'b', b'c', b'd',
    ],
    &[
        0x45, 0x00, 0x00, 0x2c, 0x12, 0x35, 0x40, 0x00, 0x40, 0x06, 0x9c, 0x6f, 198, 18, 0, 1, 198, 18, 0, 2, // IPv4
        0x9c, 0x40, 0x14, 0x51, 0x00, 0x00, 0x03, 0xec, 0x00, 0x00, 0xab, 0xcd, 0x50, 0x10, 0x01, 0xf6, 0xf4, 0x98, 0x00, 0x00, b'e', b'f', b'g', b'h',
    ],
    &[
        0x45, 0x00, 0x00, 0x2a, 0x12, 0x36, 0x40, 0x00, 0x40, 0x06, 0x9c, 0x70, 198, 18, 0, 1, 198, 18, 0, 2, // IPv4
        0x9c, 0x40, 0x14, 0x51, 0x00, 0x00, 0x03, 0xf0, 0x00, 0x00, 0xab, 0xcd, 0x50, 0x18, 0x01, 0xf6, 0x57, 0xf3, 0x00, 0x00, b'i', b'j',
    ],
];

#[test]
fn segments_of_the_fixture() {
    let (f, vnet) = fixture();
    let mut seg = Segmenter::new(&f, &vnet).unwrap();
    assert_eq!((seg.segments(), seg.gso_size(), seg.is_ipv6()), (3, 4, false));
    assert_eq!((seg.header_len(Layer::L2), seg.header_len(Layer::L3)), (54, 40));
    assert_eq!((seg.segment_len(Layer::L2), seg.segment_len(Layer::L3)), (58, 44));
    let mut out = [0u8; 58];
    for want in SEGMENTS {
        let n = seg.next_into(&mut out, 0, Layer::L2).unwrap().unwrap();
        assert_eq!(out[..14], f[..14]);
        assert_eq!(&out[14..n], want);
    }
    assert_eq!(seg.next_into(&mut out, 0, Layer::L2), Ok(None));
    assert_eq!(seg.remaining(), 0);
    // the same at L3, one after another in one buffer behind 8 bytes of headroom each
    let mut seg = Segmenter::new(&f, &vnet).unwrap();
    let mut batch = [0u8; 3 * (8 + 44)];
    let mut at = 0;
    while let Some(n) = seg.next_into(&mut batch[at..], 8, Layer::L3).unwrap() {
        at += 8 + n;
    }
    assert_eq!(at, 8 + 44 + 8 + 44 + 8 + 42);
    assert_eq!(&batch[8..52], SEGMENTS[0]);
    assert_eq!(&batch[60..104], SEGMENTS[1]);
    assert_eq!(&batch[112..154], SEGMENTS[2]);
    // and coalesced again: the fixture with the partial checksum it came with
    let frames: Vec<Vec<u8>> = SEGMENTS.iter().map(|s| [&f[..14], s].concat()).collect();
    let (mut want, _) = fixture();
    let partial = ipv4::pseudo_header_sum(SRC4, DST4, IpProtocol::Tcp, 30);
    want[50..52].copy_from_slice(&checksum::fold(u64::from(partial)).to_be_bytes());
    assert_eq!(coalesce(&frames), vec![(want, vnet)]);
}

#[test]
fn l3_segments_after_headroom() {
    let mut s = Spec::tcp4(3000, 1448);
    s.vlan = true;
    let (f, vnet) = s.build();
    let mut seg = Segmenter::new(&f, &vnet).unwrap();
    assert_eq!(seg.header_len(Layer::L3), 20 + 32);
    let headroom = 8 + 14; // e.g. a VXLAN header and a new inner Ethernet header
    let mut out = vec![0xeeu8; headroom + seg.segment_len(Layer::L3)];
    let mut data = Vec::new();
    while let Some(n) = seg.next_into(&mut out, headroom, Layer::L3).unwrap() {
        assert!(out[..headroom].iter().all(|&b| b == 0xee), "headroom untouched");
        let ip = Ipv4Packet::new_checked(&out[headroom..headroom + n]).unwrap();
        assert_eq!(usize::from(ip.total_len()), n);
        assert!(ip.verify_checksum());
        let t = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(t.verify_checksum(SRC4.into(), DST4.into()));
        data.extend_from_slice(t.payload());
    }
    assert_eq!(data, s.payload);
}

#[test]
fn no_room_consumes_nothing() {
    let (f, vnet) = fixture();
    let mut seg = Segmenter::new(&f, &vnet).unwrap();
    let mut small = [0u8; 57];
    assert_eq!(seg.next_into(&mut small, 0, Layer::L2), Err(OffloadError::NoRoom { need: 58, have: 57 }));
    assert_eq!(seg.next_into(&mut small, usize::MAX, Layer::L3), Err(OffloadError::NoRoom { need: usize::MAX, have: 57 }));
    let mut out = [0u8; 58];
    assert_eq!(seg.next_into(&mut out, 0, Layer::L2), Ok(Some(58)));
    assert_eq!(&out[54..], b"abcd");
}

#[test]
fn payload_within_one_segment() {
    for len in [0, 1, 1448] {
        let s = Spec::tcp4(len, 1448);
        let (f, vnet) = s.build();
        let segs = segment_and_check(&s, &f, &vnet);
        assert_eq!(segs.len(), 1);
        assert_eq!(segs[0].len(), f.len());
    }
}

#[test]
fn flags_cwr_first_fin_last() {
    let mut s = Spec::tcp4(5000, 1000);
    s.flags = tcp::ACK | tcp::PSH | tcp::FIN | tcp::CWR | tcp::ECE;
    let (f, vnet) = s.build();
    assert_eq!(vnet.gso_type, 0x81);
    segment_and_check(&s, &f, &vnet);
}

#[test]
fn udp_l4_segmentation() {
    for v6 in [false, true] {
        let mut s = Spec::tcp4(4000, 1400);
        (s.udp, s.v6, s.vlan) = (true, v6, v6);
        let (f, vnet) = s.build();
        assert_eq!(segment_and_check(&s, &f, &vnet).len(), 3);
    }
}

#[test]
fn validation_errors() {
    let (f, vnet) = fixture();
    let err = |f: &[u8], v: VnetHdr| Segmenter::new(f, &v).err();
    assert_eq!(err(&f, VnetHdr { gso_type: 0, ..vnet }), Some(OffloadError::NotGso));
    assert_eq!(err(&f, VnetHdr { gso_type: 3, ..vnet }), Some(OffloadError::UnsupportedGso(3)));
    assert_eq!(err(&f, VnetHdr { gso_type: 9, ..vnet }), Some(OffloadError::UnsupportedGso(9)));
    assert_eq!(err(&f, VnetHdr { gso_type: 4, ..vnet }), Some(OffloadError::GsoMismatch(4)));
    assert_eq!(err(&f, VnetHdr { gso_type: 5, ..vnet }), Some(OffloadError::GsoMismatch(5)));
    assert_eq!(err(&f, VnetHdr { gso_size: 0, ..vnet }), Some(OffloadError::ZeroGsoSize));
    let bad = OffloadError::BadCsum { start: 34, offset: 6 };
    assert_eq!(err(&f, VnetHdr { csum_offset: 6, ..vnet }), Some(bad));
    assert_eq!(err(&f, VnetHdr { csum_start: 14, ..vnet }), Some(OffloadError::BadCsum { start: 14, offset: 16 }));
    assert!(err(&f, VnetHdr { flags: 0, csum_start: 0, ..vnet }).is_none(), "offsets unused without NEEDS_CSUM");
    assert_eq!(err(&f, VnetHdr { hdr_len: 65, ..vnet }), Some(OffloadError::BadHdrLen { hdr_len: 65, len: 64 }));
    assert!(err(&f, VnetHdr { hdr_len: 0, ..vnet }).is_none(), "hdr_len is a hint");
    assert_eq!(err(&f, VnetHdr { gso_type: 0x81, ..vnet }), None, "ECN bit accepted");

    assert_eq!(err(&f[..13], vnet), Some(OffloadError::Truncated));
    let mut g = f.clone();
    g[12..14].copy_from_slice(&[0x81, 0x00]);
    assert_eq!(err(&g[..17], vnet), Some(OffloadError::Truncated));
    g[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(err(&g, vnet), Some(OffloadError::NotIp(0x0806)));
    let mut g = f.clone();
    g[14] = 0x65;
    assert_eq!(err(&g, vnet), Some(OffloadError::Ipv4(Ipv4Error::Version(6))));
    g[14] = 0x44;
    assert_eq!(err(&g, vnet), Some(OffloadError::Ipv4(Ipv4Error::BadHeaderLen(4))));
    let mut g = f.clone();
    g[17] = 0x40; // total length 64 > 50 bytes available
    assert_eq!(err(&g, vnet), Some(OffloadError::Ipv4(Ipv4Error::BadTotalLen(64))));
    let mut g = f.clone();
    g[20] = 0x20; // MF
    assert_eq!(err(&g, vnet), Some(OffloadError::Fragment));
    let mut g = f.clone();
    g[23] = 1; // ICMP
    assert_eq!(err(&g, vnet), Some(OffloadError::Transport(IpProtocol::Icmp)));
    let mut g = f.clone();
    g[46] = 0xf0; // data offset 60 > 30 bytes of segment
    assert_eq!(err(&g, vnet), Some(OffloadError::Tcp(TcpError::BadDataOffset(15))));
    let mut g = f.clone();
    g[23] = 17; // UDP whose length field (0x9c40) is wrong
    assert_eq!(err(&g, VnetHdr { gso_type: 5, csum_offset: 6, ..vnet }), Some(OffloadError::Udp(UdpError::BadLength(0))));

    let mut s = Spec::tcp4(100, 10);
    s.v6 = true;
    let (g, v6hdr) = s.build();
    assert_eq!(err(&g, VnetHdr { gso_type: 1, ..v6hdr }), Some(OffloadError::GsoMismatch(1)));
    let mut g6 = g.clone();
    g6[14] = 0x40;
    assert_eq!(err(&g6, v6hdr), Some(OffloadError::Ipv6(Ipv6Error::Version(4))));
    assert_eq!(err(&g[..g.len() - 1], v6hdr), Some(OffloadError::Ipv6(Ipv6Error::Truncated)));
    let mut g6 = g;
    g6[20] = 0; // next header: hop-by-hop options are not walked
    assert_eq!(err(&g6, v6hdr), Some(OffloadError::Transport(IpProtocol::HopByHop)));
}

#[test]
fn errors_read_well() {
    let e = OffloadError::BadCsum { start: 34, offset: 6 };
    assert_eq!(e.to_string(), "csum_start 34 / csum_offset 6 do not point at the L4 checksum");
    assert_eq!(OffloadError::Ipv4(Ipv4Error::Checksum).to_string(), "IPv4 header checksum mismatch");
}

#[test]
fn complete_checksum_fills_in_partial() {
    let (mut f, vnet) = fixture();
    // one segment's worth: make it a plain non-GSO frame with a partial checksum
    let mut seg = Segmenter::new(&f, &vnet).unwrap();
    let mut out = [0u8; 58];
    let n = seg.next_into(&mut out, 0, Layer::L2).unwrap().unwrap();
    let good = out[..n].to_vec();
    let pseudo = ipv4::pseudo_header_sum(SRC4, DST4, IpProtocol::Tcp, 24);
    out[50..52].copy_from_slice(&checksum::fold(u64::from(pseudo)).to_be_bytes());
    let partial = VnetHdr { gso_type: 0, gso_size: 0, ..vnet };
    assert_eq!(complete_checksum(&mut out[..n], &partial), Ok(()));
    assert_eq!(out[..n], good[..]);
    // without NEEDS_CSUM nothing changes
    let before = f.clone();
    assert_eq!(complete_checksum(&mut f, &VnetHdr::default()), Ok(()));
    assert_eq!(f, before);
    let bad = VnetHdr { csum_start: 60, csum_offset: 16, ..partial };
    assert_eq!(complete_checksum(&mut f, &bad), Err(OffloadError::BadCsum { start: 60, offset: 16 }));
    assert_eq!(f, before);
    let bad = VnetHdr { csum_start: 64, csum_offset: 0, ..partial };
    assert!(complete_checksum(&mut f, &bad).is_err());
}

#[test]
fn coalesce_gives_back_the_gso_frame() {
    for (v6, vlan) in [(false, false), (false, true), (true, false), (true, true)] {
        let mut s = Spec::tcp4(65000 - 80, 1448);
        (s.v6, s.vlan, s.df) = (v6, vlan, false);
        let (f, vnet) = s.build();
        let segs = segment_and_check(&s, &f, &vnet);
        assert_eq!(coalesce(&segs), vec![(f, vnet)]);
    }
}

#[test]
fn coalescer_flow_boundaries() {
    let s = Spec::tcp4(4000, 1000);
    let (f, vnet) = s.build();
    let segs = segment_and_check(&s, &f, &vnet);
    let mut co = Coalescer::new(vec![0u8; MAX_COALESCED]);
    assert_eq!(co.offer(&segs[0]), Offer::Merged);
    // out of order (a gap) does not continue it
    assert_eq!(co.offer(&segs[2]), Offer::FlushFirst);
    // another flow (other port) does not either
    let mut other = segs[1].clone();
    other[35] ^= 1;
    TcpPacket::new_unchecked(&mut other[34..]).fill_checksum(SRC4.into(), DST4.into());
    assert_eq!(co.offer(&other), Offer::FlushFirst);
    // another VLAN / MAC neither
    let mut mac = segs[1].clone();
    mac[0] = 4;
    assert_eq!(co.offer(&mac), Offer::FlushFirst);
    // a corrupted segment is never merged
    let mut bad = segs[1].clone();
    bad[100] ^= 0xff;
    assert_eq!(co.offer(&bad), Offer::Bypass);
    // a different ack
    let mut ack = segs[1].clone();
    ack[45] ^= 1;
    TcpPacket::new_unchecked(&mut ack[34..]).fill_checksum(SRC4.into(), DST4.into());
    assert_eq!(co.offer(&ack), Offer::FlushFirst);
    assert_eq!(co.offer(&segs[1]), Offer::Merged);
    let (b, v) = co.flush().unwrap();
    assert_eq!(v.gso_size, 1000);
    assert_eq!(b.len(), 14 + 20 + 32 + 2000);
    assert!(co.is_empty() && co.flush().is_none());
}

#[test]
fn coalescer_bypasses() {
    let s = Spec::tcp4(100, 1000);
    let (f, vnet) = s.build();
    let seg = segment_and_check(&s, &f, &vnet).remove(0);
    let mut co = Coalescer::new(vec![0u8; MAX_COALESCED]);
    let refill = |b: &mut Vec<u8>| {
        let l4 = b.len() - 100 - 32;
        TcpPacket::new_unchecked(&mut b[l4..]).fill_checksum(SRC4.into(), DST4.into());
    };
    for flags in [tcp::SYN | tcp::ACK, tcp::RST | tcp::ACK, tcp::URG | tcp::ACK, tcp::PSH] {
        let mut b = seg.clone();
        b[47] = flags;
        refill(&mut b);
        assert_eq!(co.offer(&b), Offer::Bypass, "flags {flags:#x}");
    }
    let mut sack = seg.clone();
    sack[54..58].copy_from_slice(&[1, 1, 4, 2]); // SACK-permitted in place of two NOPs
    refill(&mut sack);
    assert_eq!(co.offer(&sack), Offer::Bypass);
    let mut s2 = Spec::tcp4(0, 1000);
    s2.flags = tcp::ACK;
    let (pure_ack, v) = s2.build();
    let pure_ack = segment_and_check(&s2, &pure_ack, &v).remove(0);
    assert_eq!(co.offer(&pure_ack), Offer::Bypass, "no payload");
    let mut u = Spec::tcp4(100, 1000);
    u.udp = true;
    let (uf, uv) = u.build();
    assert_eq!(co.offer(&segment_and_check(&u, &uf, &uv)[0]), Offer::Bypass, "UDP");
    // IPv4 options
    let mut opt = vec![0u8; seg.len() + 4];
    opt[..34].copy_from_slice(&seg[..34]);
    opt[38..].copy_from_slice(&seg[34..]);
    opt[14] = 0x46;
    opt[16..18].copy_from_slice(&((seg.len() - 14 + 4) as u16).to_be_bytes());
    Ipv4Packet::new_unchecked(&mut opt[14..]).fill_checksum();
    assert!(Layout::of(&opt).is_ok());
    assert_eq!(co.offer(&opt), Offer::Bypass, "IP options");
    let mut bad_ip = seg.clone();
    bad_ip[22] = 1; // TTL changed, header checksum now wrong
    assert_eq!(co.offer(&bad_ip), Offer::Bypass);
    // a buffer too small for the frame
    let mut tiny = Coalescer::new([0u8; 64]);
    assert_eq!(tiny.offer(&seg), Offer::Bypass);
    assert!(co.is_empty());
    // push() passes bypassed frames through, unchanged
    let mut out = Vec::new();
    co.push(&pure_ack, |e| out.push((e.frame().to_vec(), e.vnet())));
    assert_eq!(out, vec![(pure_ack.clone(), VnetHdr::default())]);
}

#[test]
fn coalescer_closes_on_psh_and_short_segments() {
    let mut s = Spec::tcp4(2500, 1000);
    s.flags = tcp::ACK;
    let (f, vnet) = s.build();
    let segs = segment_and_check(&s, &f, &vnet);
    let mut co = Coalescer::new(vec![0u8; MAX_COALESCED]);
    for seg in &segs {
        assert_eq!(co.offer(seg), Offer::Merged);
    }
    // the short last segment closed it: the next (in sequence) starts anew
    let mut next = Spec::tcp4(1000, 1000);
    (next.flags, next.seq, next.ident) = (tcp::ACK, 1000 + 2500, 0x1234 + 3);
    let (nf, nv) = next.build();
    let nseg = segment_and_check(&next, &nf, &nv).remove(0);
    assert_eq!(co.offer(&nseg), Offer::FlushFirst);
    let (b, v) = co.flush().unwrap();
    assert_eq!((b, v), (&f[..], vnet));
    assert_eq!(co.offer(&nseg), Offer::Merged);
}

#[test]
fn coalescer_checks_ipv4_ident_without_df() {
    let mut s = Spec::tcp4(2000, 1000);
    s.df = false;
    let (f, vnet) = s.build();
    let segs = segment_and_check(&s, &f, &vnet);
    let mut second = segs[1].clone();
    let mut ip = Ipv4Packet::new_unchecked(&mut second[14..]);
    ip.set_ident(0x1234 + 5);
    ip.fill_checksum();
    let mut co = Coalescer::new(vec![0u8; MAX_COALESCED]);
    assert_eq!(co.offer(&segs[0]), Offer::Merged);
    assert_eq!(co.offer(&second), Offer::FlushFirst);
    assert_eq!(co.offer(&segs[1]), Offer::Merged);
}

#[test]
fn coalescer_stops_at_64k() {
    // 100 segments of 1000 bytes: the first 65 fit one IPv4 datagram.
    let mut s = Spec::tcp4(100_000, 1000);
    s.flags = tcp::ACK;
    let mut out = Vec::new();
    let mut co = Coalescer::new(vec![0u8; MAX_COALESCED]);
    for i in 0..100u32 {
        let mut one = s.clone();
        one.payload = s.payload[i as usize * 1000..][..1000].to_vec();
        (one.seq, one.ident) = (s.seq + i * 1000, s.ident.wrapping_add(i as u16));
        let (f, v) = one.build();
        let seg = segment_and_check(&one, &f, &v).remove(0);
        co.push(&seg, |e| out.push((e.frame().len(), e.vnet())));
    }
    co.flush_with(|e| out.push((e.frame().len(), e.vnet())));
    let ip_max = (65535 - 20 - 32) / 1000;
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].0, 14 + 20 + 32 + ip_max * 1000);
    assert_eq!(out[1].0, 14 + 20 + 32 + (100 - ip_max) * 1000);
    assert_eq!(out[0].1.gso_size, 1000);
}

fn spec() -> impl Strategy<Value = Spec> {
    let sizes = prop_oneof![(0usize..4000, 1u16..1600), (60_000usize..65_400, 500u16..9000)];
    let flags = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    (any::<(bool, bool, bool, bool)>(), flags, any::<(u16, u32)>(), sizes, any::<u8>()).prop_map(
        |((v6, vlan, ts, df), (psh, fin, cwr, ece), (ident, seq), (len, mss), salt)| {
            let mut flags = tcp::ACK;
            for (on, f) in [(psh, tcp::PSH), (fin, tcp::FIN), (cwr, tcp::CWR), (ece, tcp::ECE)] {
                if on {
                    flags |= f;
                }
            }
            let payload = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ salt).collect();
            Spec { v6, vlan, udp: false, flags, ts, df, ident, seq, mss, payload }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn segment_then_coalesce_round_trip(s in spec()) {
        let (f, vnet) = s.build();
        let segs = segment_and_check(&s, &f, &vnet);
        let out = coalesce(&segs);
        prop_assert_eq!(out.len(), 1);
        if s.payload.len() > usize::from(s.mss) {
            prop_assert_eq!(&out[0].0, &f);
            prop_assert_eq!(out[0].1, vnet);
        } else {
            prop_assert_eq!(&out[0].0, &segs[0]);
            prop_assert_eq!(out[0].1, VnetHdr::default());
        }
    }

    #[test]
    fn gathered_segments_equal_copied_ones(s in spec(), udp: bool) {
        let mut s = s;
        s.udp = udp;
        let (f, vnet) = s.build();
        let (mut copied, mut gathered) = (Segmenter::new(&f, &vnet).unwrap(), Segmenter::new(&f, &vnet).unwrap());
        let (mut out, mut hdrs) = (vec![0u8; 70_000], vec![0u8; 200]);
        while let Some(n) = copied.next_into(&mut out, 0, Layer::L2).unwrap() {
            let (h, payload) = gathered.next_headers_into(&mut hdrs, 3, Layer::L2).unwrap().unwrap();
            prop_assert_eq!(&hdrs[3..3 + h], &out[..h]);
            prop_assert_eq!(payload, &out[h..n]);
        }
        prop_assert_eq!(gathered.next_headers_into(&mut hdrs, 0, Layer::L2), Ok(None));
    }

    #[test]
    fn udp_segments_concatenate(v6: bool, vlan: bool, len in 0usize..5000, mss in 1u16..1500) {
        let mut s = Spec::tcp4(len, mss);
        (s.udp, s.v6, s.vlan) = (true, v6, vlan);
        let (f, vnet) = s.build();
        segment_and_check(&s, &f, &vnet);
    }
}

fn vnet_strategy() -> impl Strategy<Value = VnetHdr> {
    (any::<u8>(), prop_oneof![Just(1u8), Just(4), Just(5), Just(0x81), any::<u8>()], any::<[u16; 4]>()).prop_map(
        |(flags, gso_type, [hdr_len, gso_size, csum_start, csum_offset])| VnetHdr {
            flags,
            gso_type,
            hdr_len: hdr_len % 128,
            gso_size: gso_size % 2000,
            csum_start: csum_start % 128,
            csum_offset: csum_offset % 32,
        },
    )
}

/// Drives a segmenter over `frame` with a buffer of `room` bytes; must not panic.
fn drive(frame: &[u8], vnet: &VnetHdr, room: usize, headroom: usize) {
    let mut out = vec![0u8; room];
    let _ = complete_checksum(&mut frame.to_vec(), vnet);
    if let Ok(mut seg) = Segmenter::new(frame, vnet) {
        for layer in [Layer::L2, Layer::L3].into_iter().cycle().take(70_000) {
            match seg.next_into(&mut out, headroom, layer) {
                Ok(Some(n)) => assert!(headroom + n <= room),
                Ok(None) | Err(_) => break,
            }
        }
    }
    let mut co = Coalescer::new(vec![0u8; room]);
    co.push(frame, |_| {});
    co.push(frame, |_| {});
    co.flush_with(|_| {});
}

/// Makes a mutated frame's IPv4 header and TCP checksums valid again, if it parses.
fn fix_checksums(f: &mut [u8]) {
    if let Ok(lay) = Layout::of(f) {
        if !lay.v6 {
            Ipv4Packet::new_unchecked(&mut f[lay.l3..]).fill_checksum();
        }
        let (src, dst) = lay.addrs(f);
        if lay.proto == L4::Tcp {
            TcpPacket::new_unchecked(&mut f[lay.l4..lay.end]).fill_checksum(src, dst);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(
        b in proptest::collection::vec(any::<u8>(), 0..200),
        vnet in vnet_strategy(),
        room in 0usize..300,
        headroom in 0usize..40,
    ) {
        drive(&b, &vnet, room, headroom);
    }

    #[test]
    fn mutated_frames_never_panic(
        s in spec(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        vnet in vnet_strategy(),
        keep_vnet: bool,
        cut in any::<usize>(),
    ) {
        let mut s = s;
        s.payload.truncate(3000);
        let (mut f, good) = s.build();
        for (at, x) in flips {
            let i = at % f.len();
            f[i] ^= x;
        }
        let f = &f[..f.len() - cut % 8];
        let v = if keep_vnet { good } else { vnet };
        drive(f, &v, MAX_COALESCED, 0);
    }

    /// Segments with a mutated header (checksums fixed up or not) go through the
    /// coalescer without panics, and whatever it merges is a GSO frame the segmenter
    /// accepts, whose segments carry valid checksums.
    #[test]
    fn mutated_segments_coalesce_safely(
        s in spec(),
        which: usize,
        flips in proptest::collection::vec((0usize..80, any::<u8>()), 1..4),
        fix: bool,
    ) {
        let mut s = s;
        s.payload.truncate(6000);
        let (f, vnet) = s.build();
        let mut seg = Segmenter::new(&f, &vnet).unwrap();
        let mut out = vec![0u8; seg.segment_len(Layer::L2)];
        let mut segs = Vec::new();
        while let Some(n) = seg.next_into(&mut out, 0, Layer::L2).unwrap() {
            segs.push(out[..n].to_vec());
        }
        let i = which % segs.len();
        for (at, x) in flips {
            let len = segs[i].len();
            segs[i][at % len] ^= x;
        }
        if fix {
            fix_checksums(&mut segs[i]);
        }
        for (frame, v) in coalesce(&segs) {
            if v.is_gso() {
                let mut again = Segmenter::new(&frame, &v).unwrap();
                while let Some(n) = again.next_into(&mut out, 0, Layer::L2).unwrap() {
                    let lay = Layout::of(&out[..n]).unwrap();
                    let (src, dst) = lay.addrs(&out[..n]);
                    prop_assert!(TcpPacket::new_unchecked(&out[lay.l4..n]).verify_checksum(src, dst));
                }
            }
        }
    }
}

/// A guest's checksum pointer into the Ethernet header or its tags is refused, before
/// and after the switch pushes a tag: completing it would write the guest's sum over
/// the addresses or over the VLAN tag the switch set (found by the `worker` fuzz
/// target, where a csum_start of 65535 wrapped to 3 on a tag push).
#[test]
fn a_checksum_pointer_into_the_l2_header_is_refused() {
    let mut f = vec![0u8; 80];
    f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let partial = |start, offset| VnetHdr { flags: F_NEEDS_CSUM, csum_start: start, csum_offset: offset, ..VnetHdr::default() };
    for (start, offset) in [(0, 12), (0, 14), (10, 4), (13, 0)] {
        let mut g = f.clone();
        assert!(complete_checksum(&mut g, &partial(start, offset)).is_err(), "untagged, start {start}");
        assert_eq!(g, f, "nothing written");
    }
    assert!(complete_checksum(&mut f.clone(), &partial(14, 10)).is_ok(), "from the L3 header on is fine");

    let mut p = crate::packet::PacketBuf::from_frame(&f);
    p.vnet = partial(u16::MAX, 9);
    assert!(p.push_vlan(0x8100, 10));
    assert_eq!(p.vnet.csum_start, u16::MAX, "saturates, never wraps to a small offset");
    let (before, vnet) = (p.frame().to_vec(), p.vnet);
    assert!(complete_checksum(p.frame_mut(), &vnet).is_err());
    assert_eq!(p.frame(), &before[..]);

    let mut p = crate::packet::PacketBuf::from_frame(&f);
    p.vnet = partial(10, 4);
    assert!(p.push_vlan(0x8100, 10));
    assert_eq!(p.vnet.csum_start, 14, "moved with the tag…");
    let vnet = p.vnet;
    assert!(complete_checksum(p.frame_mut(), &vnet).is_err(), "…and still inside the tagged header");
}
