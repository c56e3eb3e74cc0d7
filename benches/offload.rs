//! Micro-benchmarks of software offload completion (criterion, stable Rust).
//!
//! Cases:
//! * `segment/tcp4_64k_mss1448/l2` — a 64 KiB GSO_TCPV4 frame (IP total length 65535,
//!   timestamps) cut into 46 Ethernet frames in one scratch buffer, checksums included;
//! * `segment/tcp4_64k_mss1448/l3_batch` — the same cut at L3, each segment behind 8
//!   bytes of headroom, packed into one buffer as a VXLAN `UDP_SEGMENT` batch would be;
//! * `checksum/1500`, `checksum/65536` — the Internet checksum of 1500 and 65536 bytes;
//! * `checksum/complete_1514` — `offload::complete_checksum` of a 1514-byte TCP frame
//!   with a partial checksum;
//! * `coalesce/tcp4_45x1448` — 45 in-order 1448-byte TCPv4 segments (checksums verified)
//!   merged into one GSO frame.
//! * `vxlan/encap_64k` — VXLAN transmit work for a 64 KiB GSO frame: cut at the MSS and
//!   packed as `[VXLAN header][segment]` datagrams into `UDP_SEGMENT` trains (all but
//!   the system call);
//! * `vxlan/decap_45` — VXLAN receive work for a GRO train of 45 datagrams: headers
//!   checked, inner segments coalesced back into one GSO frame.
//!
//! Throughput is reported in bytes of the input frame(s).

use std::hint::black_box;
use std::net::Ipv4Addr;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rvs_switch::offload::{Coalescer, Layer, MAX_COALESCED, Segmenter, complete_checksum};
use rvs_switch::types::MacAddr;
use rvs_switch::types::Vni;
use rvs_switch::wire::checksum;
use rvs_switch::wire::ethernet::{EtherType, EthernetFrame, EthernetRepr};
use rvs_switch::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr, pseudo_header_sum};
use rvs_switch::wire::tcp::{self, TcpPacket, TcpRepr};
use rvs_switch::wire::virtio_net_hdr::{F_NEEDS_CSUM, VnetHdr};
use rvs_vswitchd::port::vxlan::{self, EndpointStats};

const SRC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const TS: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
const MSS: u16 = 1448;

/// An Ethernet + IPv4 + TCP (timestamps) frame with `payload` bytes and a partial
/// checksum, as a guest hands it over with TSO; the vnet header says GSO at `MSS`.
fn tcp4_frame(payload: usize, seq: u32) -> (Vec<u8>, VnetHdr) {
    let tcp_len = 32 + payload;
    let mut f = vec![0u8; 14 + 20 + tcp_len];
    let eth = EthernetRepr { dst: MacAddr([2, 0, 0, 0, 0, 2]), src: MacAddr([2, 0, 0, 0, 0, 1]), ethertype: EtherType::Ipv4 };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    let ip = Ipv4Repr {
        src: SRC,
        dst: DST,
        protocol: IpProtocol::Tcp,
        payload_len: tcp_len as u16,
        dscp: 0,
        ecn: 0,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        ttl: 64,
    };
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]));
    let t = TcpRepr { src_port: 40000, dst_port: 5201, seq, ack: 1, flags: tcp::ACK, window: 502, urgent: 0, options: &TS };
    t.emit(&mut TcpPacket::new_unchecked(&mut f[34..]));
    for (i, b) in f[66..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let partial = checksum::fold(u64::from(pseudo_header_sum(SRC, DST, IpProtocol::Tcp, tcp_len as u16)));
    f[50..52].copy_from_slice(&partial.to_be_bytes());
    let vnet = VnetHdr { flags: F_NEEDS_CSUM, gso_type: 1, hdr_len: 66, gso_size: MSS, csum_start: 34, csum_offset: 16 };
    (f, vnet)
}

fn segment(c: &mut Criterion) {
    let (frame, vnet) = tcp4_frame(65535 - 20 - 32, 1);
    let segs = Segmenter::new(&frame, &vnet).unwrap().segments();
    let mut g = c.benchmark_group("segment/tcp4_64k_mss1448");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    let mut out = vec![0u8; 14 + 20 + 32 + usize::from(MSS)];
    g.bench_function("l2", |b| {
        b.iter(|| {
            let mut seg = Segmenter::new(black_box(&frame), &vnet).unwrap();
            let mut n = 0;
            while let Some(len) = seg.next_into(&mut out, 0, Layer::L2).unwrap() {
                n += len;
                black_box(&out[..len]);
            }
            n
        })
    });
    let mut batch = vec![0u8; segs * (8 + 20 + 32 + usize::from(MSS))];
    g.bench_function("l3_batch", |b| {
        b.iter(|| {
            let mut seg = Segmenter::new(black_box(&frame), &vnet).unwrap();
            let mut at = 0;
            while let Some(len) = seg.next_into(&mut batch[at..], 8, Layer::L3).unwrap() {
                at += 8 + len;
            }
            black_box(&batch[..at]);
            at
        })
    });
    g.finish();
}

fn checksums(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for len in [1500usize, 65536] {
        let data: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(len.to_string(), |b| b.iter(|| checksum::checksum(black_box(&data))));
    }
    let (mut frame, mut vnet) = tcp4_frame(1514 - 66, 1);
    (vnet.gso_type, vnet.gso_size, vnet.hdr_len) = (0, 0, 0);
    let partial: [u8; 2] = frame[50..52].try_into().unwrap();
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("complete_1514", |b| {
        b.iter(|| {
            frame[50..52].copy_from_slice(&partial);
            complete_checksum(black_box(&mut frame), &vnet).unwrap();
        })
    });
    g.finish();
}

fn coalesce(c: &mut Criterion) {
    // 45 full segments, cut by the segmenter from one frame, so checksums are valid.
    let (frame, vnet) = tcp4_frame(45 * usize::from(MSS), 1);
    let mut seg = Segmenter::new(&frame, &vnet).unwrap();
    let mut out = vec![0u8; 2000];
    let mut segs = Vec::new();
    while let Some(n) = seg.next_into(&mut out, 0, Layer::L2).unwrap() {
        segs.push(out[..n].to_vec());
    }
    let mut co = Coalescer::new(vec![0u8; MAX_COALESCED]);
    let mut g = c.benchmark_group("coalesce");
    g.throughput(Throughput::Bytes(segs.iter().map(|s| s.len() as u64).sum()));
    g.bench_function("tcp4_45x1448", |b| {
        b.iter(|| {
            for s in &segs {
                co.push(black_box(s), |e| {
                    black_box(e.frame());
                });
            }
            let (f, v) = co.flush().unwrap();
            assert_eq!(v.gso_size, MSS);
            f.len()
        })
    });
    g.finish();
}

fn vxlan_encap_decap(c: &mut Criterion) {
    let (frame, vnet) = tcp4_frame(45 * usize::from(MSS), 1);
    let hdr = vxlan::header(Vni::new(5000).unwrap());
    let mut scratch = vec![0u8; 128 * 1024];
    let mut g = c.benchmark_group("vxlan");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("encap_64k", |b| {
        b.iter(|| {
            // What the tunnel does before its sendmsg: headers written, payloads
            // gathered from the frame (the kernel copies them into the socket).
            let mut seg = Segmenter::new(black_box(&frame), &vnet).unwrap();
            let mut total = 0;
            while seg.remaining() > 0 {
                let mut payloads: [&[u8]; 64] = [&[]; 64];
                let (n, bytes) = vxlan::gather_train(&mut seg, &hdr, &mut scratch, &mut payloads).unwrap();
                assert!(n > 0);
                black_box((&scratch, &payloads));
                total += bytes;
            }
            total
        })
    });
    // One GRO train as the endpoint receives it: 45 datagrams of equal size.
    let mut seg = Segmenter::new(&frame, &vnet).unwrap();
    let mut payloads: [&[u8]; 64] = [&[]; 64];
    let (n, _) = vxlan::gather_train(&mut seg, &hdr, &mut scratch, &mut payloads).unwrap();
    assert_eq!(n, 45);
    let block = rvs_switch::wire::vxlan::HEADER_LEN + Segmenter::new(&frame, &vnet).unwrap().header_len(Layer::L2);
    let train: Vec<u8> = scratch.chunks_exact(block).zip(&payloads[..n]).flat_map(|(h, p)| [h, *p]).flatten().copied().collect();
    let unit = (block + usize::from(MSS)) as u16;
    let stats = EndpointStats::default();
    let mut co = Coalescer::new(vec![0u8; MAX_COALESCED]);
    g.bench_function("decap_45", |b| {
        b.iter(|| {
            let mut delivered = 0;
            for d in vxlan::datagrams(black_box(&train), Some(unit), &stats) {
                let (_, inner) = d.unwrap();
                co.push(inner, |e| delivered += e.frame().len());
            }
            let (f, v) = co.flush().unwrap();
            assert_eq!(v.gso_size, MSS);
            delivered + f.len()
        })
    });
    g.finish();
}

criterion_group!(benches, segment, checksums, coalesce, vxlan_encap_decap);
criterion_main!(benches);
