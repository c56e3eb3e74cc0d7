//! Batched port I/O. AF_PACKET ports read frames in batches, from their receive ring
//! or (without one) with one recvmmsg for up to 32: a burst sent into one end of a
//! veth pair is read from the other end in batches, every frame once, in order, whole,
//! with the VLAN tag the kernel stripped put back — also frames longer than a ring
//! slot, which come through the socket's queue in their place. AF_PACKET ports and VXLAN tunnels send in batches (one sendmmsg for up to
//! 32): every frame arrives once, in order, whole. A port joining another's fanout
//! group (a takeover) reads no frame the other reads too. Root required (namespaces).

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rvs_switch::packet::PacketBuf;
use rvs_switch::types::Vni;
use rvs_sys::udp;
use rvs_testkit::*;
use rvs_vswitchd::port::afpacket::AfPacketPort;
use rvs_vswitchd::port::vxlan::{SendPool, Tunnel, TxSettings};
use rvs_vswitchd::port::{Input, PortIo, Rx, RxScratch};

/// Frame `i` of a test burst: numbered, every third tagged with VLAN 100 + i % 7.
fn numbered(i: u16) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    if i.is_multiple_of(3) {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&(100 + i % 7).to_be_bytes());
    }
    f.extend_from_slice(&[0x88, 0xb5]); // local experimental EtherType
    f.extend_from_slice(&i.to_be_bytes());
    f.resize(f.len() + 60 + usize::from(i % 50), i as u8);
    f
}

/// Reads the test's frames from `rx` until `want` arrived or 5 s passed.
fn read_frames(rx: &AfPacketPort, want: usize) -> (Vec<Vec<u8>>, usize) {
    let mut bufs: Vec<PacketBuf> = (0..32).map(|_| PacketBuf::new()).collect();
    let mut out = [Rx::Empty; 32];
    let (mut got, mut largest) = (Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < want && Instant::now() < deadline {
        let n = rx.recv_batch(0, &mut bufs, &mut out, &mut RxScratch::default()).expect("receive").n;
        largest = largest.max(n);
        for (buf, r) in bufs.iter().zip(out).take(n) {
            // Only the test's frames (the kernel may send IPv6 router solicitations).
            if r == Rx::Frame && buf.frame().get(6..12) == Some(&[0x02, 0, 0, 0, 0, 0x01]) {
                got.push(buf.frame().to_vec());
            }
        }
        if n == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    (got, largest)
}

/// A namespace (needs root) holding a veth pair, both ends up: (namespace, end a, end b).
fn veth_pair(tag: &str) -> (Netns, String, String) {
    require_root();
    let ns = Netns::new(tag);
    let (a, b) = (unique(&format!("{tag}a")), unique(&format!("{tag}b")));
    ns.sh(&format!("ip link add {a} type veth peer name {b} && ip link set {a} up && ip link set {b} up"));
    (ns, a, b)
}

/// A burst of `frames` sent into `a`, read from `b` opened with or without a receive
/// ring: every frame once, in order, whole (tags restored); returns the largest batch.
/// `after_open` (a shell script, may be empty) runs once both ends are open.
fn burst_arrives_whole(ns: &Netns, a: String, b: String, ring: bool, frames: Vec<Vec<u8>>, after_open: String) -> usize {
    ns.run_in(move || {
        let tx = AfPacketPort::open_with(&a, 1, false, None).expect("open the sending end");
        let rx = AfPacketPort::open_with(&b, 1, ring, None).expect("open the receiving end");
        if !after_open.is_empty() {
            sh(&after_open);
        }
        assert!(rx.batch() > 1, "AF_PACKET ports batch");
        assert_eq!(rx.has_ring(0), ring, "receive ring wanted: {ring}");
        for (i, f) in frames.iter().enumerate() {
            assert!(tx.send(&PacketBuf::from_frame(f)).expect("send"), "frame {i} refused");
        }
        let (got, largest) = read_frames(&rx, frames.len());
        assert_eq!(got.len(), frames.len(), "every frame arrived once (ring: {ring})");
        for (i, (g, s)) in got.iter().zip(&frames).enumerate() {
            assert_eq!(g.len(), s.len(), "frame {i}: length (ring: {ring})");
            assert_eq!(g, s, "frame {i} arrived whole, in order, with its tag (ring: {ring})");
        }
        largest
    })
}

#[test]
fn bursts_are_read_in_batches_with_tags_restored() {
    for ring in [true, false] {
        let (ns, a, b) = veth_pair(if ring { "amr" } else { "amm" });
        let largest = burst_arrives_whole(&ns, a, b, ring, (0..200u16).map(numbered).collect(), String::new());
        assert!(largest > 1, "a receive call returned several frames (largest batch: {largest}, ring: {ring})");
    }
}

/// Frames longer than a ring slot (the ring was sized for MTU 1500, the MTU raised
/// afterwards) arrive whole and in their place among short ones, through the socket's
/// queue; so do frames right at the slot's edge. The port was opened while its device
/// was down.
#[test]
fn frames_longer_than_a_ring_slot_keep_their_place() {
    let (ns, a, b) = veth_pair("aml");
    let slot = rvs_vswitchd::port::afpacket::ring_slot_size(1500);
    let sizes: Vec<usize> = (0..120usize)
        .map(|i| match i % 6 {
            0 => 5000 + i,
            1 => slot - 120 + (i % 40) * 4, // around the edge of the slot
            2 => 9000 - i % 3,
            _ => 60 + i,
        })
        .collect();
    let frames: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut f = numbered(i as u16);
            f.truncate(16.min(f.len()));
            f.resize(len, (i * 7) as u8);
            f
        })
        .collect();
    // Open the receiving end while the MTU is 1500 (small slots) and the device is
    // down (a ring set up badly would then never see a frame), then raise the MTU and
    // bring the device up.
    ns.sh(&format!("ip link set {a} mtu 1500 && ip link set {b} mtu 1500 && ip link set {b} down"));
    let raise = format!("ip -n {0} link set {a} mtu 9100 && ip -n {0} link set {b} mtu 9100 up", ns.name);
    burst_arrives_whole(&ns, a, b, true, frames, raise);
}

#[test]
fn afpacket_sends_batches_in_order() {
    let (ns, a, b) = veth_pair("asm");
    ns.run_in(move || {
        let tx = AfPacketPort::open(&a, 1).expect("open the sending end");
        let rx = AfPacketPort::open(&b, 1).expect("open the receiving end");
        assert!(tx.batches_tx(), "AF_PACKET ports send in batches");
        // One sendmmsg takes up to 32 frames.
        // (Another source MAC: not counted among the frames below.)
        let probe: Vec<Vec<u8>> = (0..40u16)
            .map(|i| {
                let mut f = numbered(i);
                f[11] = 0x09;
                f
            })
            .collect();
        let vnet = [0u8; 10];
        let hdr: &[u8] = if tx.offloads() { &vnet } else { &[] };
        let iov: Vec<std::io::IoSlice<'_>> = probe.iter().flat_map(|f| [std::io::IoSlice::new(hdr), std::io::IoSlice::new(f)]).collect();
        let fd = tx.queue_fd(0).expect("a socket");
        assert_eq!(rvs_sys::packet::send_many(fd, &iov, 2).expect("sendmmsg"), 32, "one sendmmsg, 32 frames");
        // 150 frames in batches of 50: more than one sendmmsg each.
        let frames: Vec<Vec<u8>> = (0..150u16).map(numbered).collect();
        for chunk in frames.chunks(50) {
            let bufs: Vec<PacketBuf> = chunk.iter().map(|f| PacketBuf::from_frame(f)).collect();
            let refs: Vec<&PacketBuf> = bufs.iter().collect();
            let mut sent = vec![false; refs.len()];
            tx.send_batch(&refs, &mut sent).expect("send a batch");
            assert!(sent.iter().all(|&s| s), "every frame of the batch left: {sent:?}");
        }
        let (got, _) = read_frames(&rx, frames.len());
        assert_eq!(got.len(), frames.len(), "every frame arrived once");
        for (i, (g, f)) in got.iter().zip(&frames).enumerate() {
            assert_eq!(g, f, "frame {i} arrived whole, in order");
        }
    });
}

#[test]
fn vxlan_tunnels_send_batches_in_order() {
    require_root();
    let ns = Netns::new("vsm");
    ns.sh("ip link set lo up mtu 1280 && ip addr add 198.18.7.1/32 dev lo && ip addr add 198.18.7.2/32 dev lo");
    ns.run_in(|| {
        let local = IpAddr::V4(Ipv4Addr::new(198, 18, 7, 1));
        let sink = UdpSocket::bind("198.18.7.2:0").expect("bind the receiver");
        sink.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let settings = TxSettings { local: Some(local), v6: false, ttl: 64, tos: 0, df: true, csum: false };
        let pool = Arc::new(SendPool::open(&settings).expect("open the send sockets"));
        let vni = Vni::new(4242).unwrap();
        let tunnel = Tunnel::new("vxbatch", sink.local_addr().unwrap(), vni, pool);
        assert!(tunnel.batches_tx(), "VXLAN tunnels send in batches");
        // One flow (same addresses), so one socket: 40 frames, two sendmmsg calls.
        let frames: Vec<Vec<u8>> = (0..40u16).map(numbered).collect();
        let bufs: Vec<PacketBuf> = frames.iter().map(|f| PacketBuf::from_frame(f)).collect();
        let refs: Vec<&PacketBuf> = bufs.iter().collect();
        let mut sent = vec![false; refs.len()];
        tunnel.send_batch(&refs, &mut sent).expect("send a batch");
        assert!(sent.iter().all(|&s| s), "every frame left: {sent:?}");
        let calls = tunnel.stats.sends.load(Relaxed);
        assert!((1..frames.len() as u64).contains(&calls), "{calls} send calls for {} frames", frames.len());
        let mut d = vec![0u8; 2048];
        for (i, f) in frames.iter().enumerate() {
            let (n, from) = sink.recv_from(&mut d).unwrap_or_else(|e| panic!("datagram {i}: {e}"));
            assert_eq!(from.ip(), local);
            assert_eq!(rvs_vswitchd::port::vxlan::parse_header(&d[..n]), Some(vni), "datagram {i}: VXLAN header");
            assert_eq!(&d[8..n], &f[..], "datagram {i} carries frame {i}, whole, in order");
        }

        // Four flows (source MACs) interleaved: grouped by the socket each flow uses,
        // so at most two sendmmsg per socket (48 frames: a batch of 32, one of 16), and
        // every flow arrives in order.
        let flows: Vec<Vec<u8>> = (0..48u16)
            .map(|i| {
                let mut f = numbered(i);
                f[11] = 0x10 + (i % 4) as u8;
                f
            })
            .collect();
        let bufs: Vec<PacketBuf> = flows.iter().map(|f| PacketBuf::from_frame(f)).collect();
        let refs: Vec<&PacketBuf> = bufs.iter().collect();
        let mut sent = vec![false; refs.len()];
        let before = tunnel.stats.sends.load(Relaxed);
        tunnel.send_batch(&refs, &mut sent).expect("send a batch of four flows");
        assert!(sent.iter().all(|&s| s), "every frame left: {sent:?}");
        let calls = tunnel.stats.sends.load(Relaxed) - before;
        assert!(calls <= 8, "{calls} send calls for 48 frames of 4 flows (at most 2 per socket)");
        let mut got: Vec<Vec<u8>> = Vec::new();
        for i in 0..flows.len() {
            let (n, _) = sink.recv_from(&mut d).unwrap_or_else(|e| panic!("datagram {i} of the four flows: {e}"));
            got.push(d[8..n].to_vec());
        }
        for m in 0..4u8 {
            let want: Vec<&Vec<u8>> = flows.iter().filter(|f| f[11] == 0x10 + m).collect();
            let have: Vec<&Vec<u8>> = got.iter().filter(|f| f[11] == 0x10 + m).collect();
            assert_eq!(have, want, "flow {m}: every frame once, in order");
        }

        // Frames of one length (a shorter one last) leave as UDP GSO trains: one send
        // per 32-frame batch, which a receiver with UDP GRO on reads whole (datagrams
        // sent one by one reach it one by one: lo merges nothing), every frame whole
        // and in order.
        let gro_sink = UdpSocket::bind("198.18.7.2:0").expect("bind the GRO receiver");
        udp::set_gro(gro_sink.as_fd(), true).expect("UDP_GRO");
        let pool = tunnel.pool().clone();
        let to_gro = Tunnel::new("vxtrain", gro_sink.local_addr().unwrap(), vni, pool);
        let even: Vec<Vec<u8>> = (0..40u16).map(|i| sized(i, if i == 39 { 100 } else { 120 })).collect();
        let (sent, calls) = send_all(&to_gro, &even);
        assert!(sent.iter().all(|&s| s), "every frame left: {sent:?}");
        assert_eq!(calls, 2, "one UDP GSO send per batch of 32 frames");
        let (mut got, mut trains) = (Vec::new(), Vec::new());
        let mut t = vec![0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(2);
        while got.len() < even.len() && Instant::now() < deadline {
            let Some(r) = udp::recv_train(gro_sink.as_fd(), &mut t).expect("receive") else { continue };
            let seg = r.seg.map_or(r.len, usize::from);
            trains.push(r.len.div_ceil(seg));
            got.extend(t[..r.len].chunks(seg).map(|d| d[8..].to_vec()));
        }
        assert_eq!(got, even, "every frame once, whole, in order");
        assert_eq!(trains, [32, 8], "read as two trains");

        // A train too big for the path (lo's MTU is 1280 here): the kernel refuses it,
        // the frames go one by one and are counted as MTU drops, and UDP GSO stays on.
        let big: Vec<Vec<u8>> = (0..4u16).map(|i| sized(i, 1300)).collect();
        let (sent, _) = send_all(&to_gro, &big);
        assert!(sent.iter().all(|&s| !s), "no frame too big left: {sent:?}");
        assert_eq!(to_gro.stats.mtu_exceeded.load(Relaxed), 4, "each counted as too big for the path");
        assert_eq!(to_gro.stats.gso_fallbacks.load(Relaxed), 0, "UDP GSO still on");
        let (sent, calls) = send_all(&to_gro, &even[..10]);
        assert!(sent.iter().all(|&s| s));
        assert_eq!(calls, 1, "still one train");
        let r = udp::recv_train(gro_sink.as_fd(), &mut t).expect("receive").expect("a train is there");
        assert_eq!(r.seg, Some(128), "as a train");
    });
}

/// Frame `i` of [`numbered`] made `len` bytes long, all of one flow.
fn sized(i: u16, len: usize) -> Vec<u8> {
    let mut f = numbered(i);
    f.resize(len, 0xee);
    f[11] = 0x01;
    f
}

/// Sends `frames` as one batch through `tunnel`: which left, and in how many send calls.
fn send_all(tunnel: &Tunnel, frames: &[Vec<u8>]) -> (Vec<bool>, u64) {
    let bufs: Vec<PacketBuf> = frames.iter().map(|f| PacketBuf::from_frame(f)).collect();
    let refs: Vec<&PacketBuf> = bufs.iter().collect();
    let mut sent = vec![false; refs.len()];
    let before = tunnel.stats.sends.load(Relaxed);
    tunnel.send_batch(&refs, &mut sent).expect("a send problem is a drop, not a broken port");
    (sent, tunnel.stats.sends.load(Relaxed) - before)
}

/// Frames the kernel drops because the worker fell behind (ring or socket queue full)
/// are reported with the next batch, for the port's `rx_dropped`: every frame sent is
/// either read or counted, with and without a ring.
#[test]
fn overruns_are_counted() {
    for ring in [true, false] {
        let (ns, a, b) = veth_pair(if ring { "aor" } else { "aop" });
        let ns_name = ns.name.clone();
        let (sent, got, dropped, dev_dropped) = ns.run_in(move || {
            let tx = AfPacketPort::open_with(&a, 1, false, None).expect("open the sending end");
            let rx = AfPacketPort::open_with(&b, 1, ring, None).expect("open the receiving end");
            // Drops on the way that are not the receiving socket's: the veth's own.
            let stat =
                |dev: &str, what: &str| sh(&format!("ip netns exec {ns_name} cat /sys/class/net/{dev}/statistics/{what}")).trim().parse::<u64>().unwrap_or(0);
            let dev_drops = || stat(&b, "rx_dropped") + stat(&a, "tx_dropped");
            let before = dev_drops();
            // Far more than a ring (512 slots) or a socket queue holds, none read yet.
            let frame = numbered(1);
            let buf = PacketBuf::from_frame(&frame);
            let sent = (0..20_000).filter(|_| tx.send(&buf).unwrap_or(false)).count() as u64;
            let mut bufs: Vec<PacketBuf> = (0..32).map(|_| PacketBuf::new()).collect();
            let mut out = [Rx::Empty; 32];
            let (mut got, mut dropped) = (0u64, 0u64);
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut idle = 0;
            while Instant::now() < deadline && idle < 20 {
                let r = rx.recv_batch(0, &mut bufs, &mut out, &mut RxScratch::default()).expect("receive");
                dropped += r.dropped;
                got += bufs.iter().zip(out).take(r.n).filter(|(b, o)| *o == Rx::Frame && b.frame() == &frame[..]).count() as u64;
                if r.n == 0 {
                    idle += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            (sent, got, dropped, dev_drops() - before)
        });
        assert!(dropped > 0, "some of {sent} frames were dropped and counted (ring: {ring}; read {got})");
        // (The kernel's own frames on the link — an IPv6 router solicitation — may add
        // a few drops.)
        let accounted = got + dropped + dev_dropped;
        assert!(
            (sent..=sent + 10).contains(&accounted),
            "every frame read or counted (ring: {ring}): sent {sent}, read {got}, counted {dropped}, device dropped {dev_dropped}"
        );
    }
}

/// A port that joins another's fanout group (as a daemon taking over does) while
/// frames stream in gets none of them before it has joined: no frame is read by both
/// ports. (A socket receives from the moment it is bound, and only a bound socket may
/// join a group; rvs holds it empty with a filter until it joined.) Ten joins, each
/// during a stream of frames; every frame numbered, each read at most once in all.
#[test]
fn a_port_joining_a_fanout_group_reads_no_frame_twice() {
    use rvs_vswitchd::port::device::Device;
    let (ns, a, b) = veth_pair("amf");
    ns.run_in(move || {
        let tx = Arc::new(AfPacketPort::open_with(&a, 1, false, None).expect("open the sending end"));
        let first = AfPacketPort::open_with(&b, 1, false, None).expect("open the receiving end");
        let group = first.fanout_group().expect("an AF_PACKET port has a fanout group").expect("fanout group");
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sender = {
            let (tx, sent, stop) = (tx.clone(), sent.clone(), stop.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut i = 0u16;
                while !stop.load(Relaxed) && i < 60_000 && Instant::now() < deadline {
                    if tx.send(&PacketBuf::from_frame(&numbered(i))).unwrap_or(false) {
                        i += 1;
                    }
                    if i.is_multiple_of(64) {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                sent.store(usize::from(i), Relaxed);
            })
        };
        let mut seen = vec![0u32; 65536];
        let mut bufs: Vec<PacketBuf> = (0..32).map(|_| PacketBuf::new()).collect();
        let mut out = [Rx::Empty; 32];
        let mut drain = |port: &AfPacketPort, seen: &mut Vec<u32>| loop {
            let n = port.recv_batch(0, &mut bufs, &mut out, &mut RxScratch::default()).expect("receive").n;
            for (buf, r) in bufs.iter().zip(out).take(n) {
                let f = buf.frame();
                if r == Rx::Frame && f.get(6..12) == Some(&[0x02, 0, 0, 0, 0, 0x01]) {
                    // The number sits after the EtherType, which a tag may precede.
                    let at = if f[12..14] == [0x81, 0x00] { 18 } else { 14 };
                    seen[usize::from(u16::from_be_bytes([f[at], f[at + 1]]))] += 1;
                }
            }
            if n == 0 {
                break;
            }
        };
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(30));
            let second = AfPacketPort::open_with(&b, 1, false, Some(group)).expect("open a port joining the group");
            for _ in 0..20 {
                drain(&first, &mut seen);
                drain(&second, &mut seen);
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        stop.store(true, Relaxed);
        sender.join().expect("sender");
        drain(&first, &mut seen);
        let sent = sent.load(Relaxed);
        let twice: Vec<usize> = (0..sent).filter(|&i| seen[i] > 1).collect();
        assert!(sent > 1000, "the stream ran ({sent} frames)");
        assert!(twice.is_empty(), "{} of {sent} frames were read twice, first ones {:?}", twice.len(), &twice[..twice.len().min(10)]);
        let read = seen.iter().filter(|&&c| c > 0).count();
        assert!(read > sent / 2, "most frames were read ({read} of {sent})");
    });
}
