//! AF_PACKET ports read frames in batches (one recvmmsg for up to 32): a burst sent
//! into one end of a veth pair is read from the other end in batches, every frame
//! once, in order, whole, with the VLAN tag the kernel stripped put back. Root
//! required (a namespace and a veth pair).

use std::time::{Duration, Instant};

use datapath::packet::PacketBuf;
use datapath::port::afpacket::AfPacketPort;
use datapath::port::{PortIo, Rx};
use rvs::testkit::*;

#[test]
fn bursts_are_read_in_batches_with_tags_restored() {
    require_root();
    let ns = Netns::new("amm");
    let (a, b) = (unique("ma"), unique("mb"));
    ns.sh(&format!("ip link add {a} type veth peer name {b} && ip link set {a} up && ip link set {b} up"));
    let (largest, frames) = ns.run_in(move || {
        let tx = AfPacketPort::open(&a, 1).expect("open the sending end");
        let rx = AfPacketPort::open(&b, 1).expect("open the receiving end");
        assert!(rx.batch() > 1, "AF_PACKET ports batch");
        // 200 frames, every third tagged with VLAN 100 + i % 7, each numbered.
        let mut sent = Vec::new();
        for i in 0..200u16 {
            let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
            if i % 3 == 0 {
                f.extend_from_slice(&[0x81, 0x00]);
                f.extend_from_slice(&(100 + i % 7).to_be_bytes());
            }
            f.extend_from_slice(&[0x88, 0xb5]); // local experimental EtherType
            f.extend_from_slice(&i.to_be_bytes());
            f.resize(f.len() + 60, i as u8);
            assert!(tx.send(&PacketBuf::from_frame(&f)).expect("send"), "frame {i} refused");
            sent.push(f);
        }
        let mut bufs: Vec<PacketBuf> = (0..32).map(|_| PacketBuf::new()).collect();
        let mut out = [Rx::Empty; 32];
        let (mut got, mut largest) = (Vec::new(), 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < sent.len() && Instant::now() < deadline {
            let n = rx.recv_batch(0, &mut bufs, &mut out).expect("receive");
            largest = largest.max(n);
            for (buf, r) in bufs.iter().zip(out).take(n) {
                if r == Rx::Frame && buf.frame().get(12..14) != Some(&[0x86, 0xdd]) {
                    got.push(buf.frame().to_vec());
                }
            }
            if n == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        // Only the test's frames (the kernel may send IPv6 router solicitations, dropped above).
        got.retain(|f| f.get(6..12) == Some(&[0x02, 0, 0, 0, 0, 0x01]));
        assert_eq!(got.len(), sent.len(), "every frame arrived once");
        for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
            assert_eq!(g, s, "frame {i} arrived whole, in order, with its tag");
        }
        (largest, got.len())
    });
    assert_eq!(frames, 200);
    assert!(largest > 1, "a receive call returned several frames (largest batch: {largest})");
}
