//! A datapath worker end to end, as frames from guests meet it: a bridge of four
//! in-memory ports — access 10 with offloads, access 10 without, a trunk without
//! offloads that sends in batches, a native-untagged 10 / trunk 20 port with offloads
//! that reads ahead, and a fifth, without offloads, that is the output port of a mirror
//! selecting every other port (never injected into) — and frames with arbitrary virtio-net headers (partial checksums,
//! GSO of any kind and size, or garbage) injected on any of them, one record at a
//! time, the worker turned until idle after each. Reaches the core's decision, VLAN
//! push/pop, checksum completion and segmentation for ports without offloads, and the
//! transmit batcher. Must never panic or spin; nothing goes back out of its ingress
//! port; a port without offloads never gets offload state; access ports get untagged
//! frames (unless the frame came in with two tags), the trunk only VLANs 10 and 20,
//! tagged; a frame without offload state leaves every port with the same bytes after
//! the MAC addresses and the switch's tag as it came in with (a second tag is payload),
//! the mirror's copies included.
//!
//! Input: records of [port (low 2 bits) | header given (bit 2)] [len hi] [len lo]
//! [10-byte virtio-net header, when given] [frame of len bytes].
#![no_main]

use std::cell::RefCell;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rvs_ovsdb::Uuid;
use rvs_switch::bridge::{BridgeConfig, MirrorConfig, MirrorOut, PortConfig, PortVlan, VlanMode};
use rvs_switch::time::Clock;
use rvs_switch::types::{OfPort, VlanId};
use rvs_switch::wire::virtio_net_hdr::VnetHdr;
use rvs_vswitchd::port::PortIo;
use rvs_vswitchd::port::mem::MemPort;
use rvs_vswitchd::worker::{DpBridge, DpConfig, DpPort, Worker};

struct Rig {
    worker: Worker,
    ports: Vec<Arc<MemPort>>,
}

fn v(n: u16) -> VlanId {
    VlanId::new(n).unwrap()
}

fn rig() -> Rig {
    let ports = vec![
        Arc::new(MemPort::new(true).unwrap()),
        Arc::new(MemPort::new(false).unwrap()),
        Arc::new(MemPort::batching(false, 8).unwrap()),
        Arc::new(MemPort::reading_ahead(true, 4).unwrap()),
        Arc::new(MemPort::new(false).unwrap()),
    ];
    let cores = [
        PortConfig::access(1, v(10)),
        PortConfig::access(2, v(10)),
        PortConfig::trunk(3),
        PortConfig { vlan: PortVlan::new(Some(v(10)), &[v(20)], Some(VlanMode::NativeUntagged)), ..PortConfig::trunk(4) },
        PortConfig::trunk(5),
    ];
    let dp: Vec<DpPort> = ports
        .iter()
        .zip(cores)
        .enumerate()
        .map(|(i, (io, core))| DpPort {
            iface: Uuid::random(),
            name: format!("p{}", i + 1),
            ofport: OfPort::new(i as u16 + 1).unwrap(),
            io: io.clone(),
            stats: Arc::default(),
            core,
            policer: None,
            shaper: None,
        })
        .collect();
    let cfg = DpConfig {
        bridges: vec![DpBridge {
            uuid: Uuid::random(),
            name: "br0".into(),
            cfg: BridgeConfig::default(),
            ports: dp,
            statics: vec![],
            flood_vlans: vec![],
            mirrors: vec![MirrorConfig { srcs: vec![1, 2, 3, 4], dsts: vec![1, 2, 3, 4], vlans: None, out: MirrorOut::Port(5), snaplen: 0 }],
            mirror_stats: vec![Arc::default()],
        }],
        ..Default::default()
    };
    Rig { worker: Worker::stepped(Clock::new(), cfg).unwrap(), ports }
}

thread_local! {
    static RIG: RefCell<Rig> = RefCell::new(rig());
}

/// The VLAN of an 802.1Q-tagged frame, if it is one.
fn tag_of(f: &[u8]) -> Option<u16> {
    (f.len() >= 16 && f[12..14] == [0x81, 0x00]).then(|| u16::from_be_bytes([f[14], f[15]]) & 0xfff)
}

/// The frame after its MAC addresses and its outer 802.1Q tag, if any.
fn after_tag(f: &[u8]) -> &[u8] {
    if tag_of(f).is_some() { &f[16..] } else { &f[12.min(f.len())..] }
}

fuzz_target!(|data: &[u8]| {
    RIG.with(|r| {
        let r = &mut *r.borrow_mut();
        for b in &mut r.worker.bridges {
            b.core.fdb_mut().flush();
        }
        let mut rest = data;
        for _ in 0..16 {
            let [ctl, hi, lo, tail @ ..] = rest else { break };
            let in_port = usize::from(ctl & 3);
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            let (vnet, tail) = if ctl & 4 != 0 {
                let Some(h) = tail.get(..10) else { break };
                (VnetHdr::parse(h).unwrap_or_default(), &tail[10..])
            } else {
                (VnetHdr::default(), tail)
            };
            let frame = &tail[..len.min(tail.len())];
            rest = &tail[frame.len()..];

            r.ports[in_port].inject(frame, vnet);
            assert!(r.worker.turn_until_idle(64).unwrap(), "the worker kept finding input");
            for (i, p) in r.ports.iter().enumerate() {
                let sent = p.take_sent();
                if i == in_port {
                    assert!(sent.is_empty(), "{} frame(s) sent back out of the ingress port", sent.len());
                }
                for (f, h) in &sent {
                    assert!(f.len() <= 65535 + 4 + 14, "a frame of {} bytes", f.len());
                    if !p.offloads() {
                        assert!(!h.is_gso() && !h.needs_csum(), "offload state {h:?} to a port without offloads");
                    }
                    match i {
                        // One tag is popped; a second (QinQ) one is payload to the switch.
                        0 | 1 if tag_of(frame).is_none() || tag_of(&frame[4..]).is_none() => {
                            assert_eq!(tag_of(f), None, "a tagged frame out of an access port")
                        }
                        0 | 1 | 4 => {}
                        2 => assert!(matches!(tag_of(f), Some(10 | 20)), "the trunk sent VLAN {:?}", tag_of(f)),
                        // Native-untagged 10: VLAN 10 leaves untagged (with its inner tag,
                        // if it came with two), 20 tagged.
                        _ if tag_of(frame).is_none() || tag_of(&frame[4..]).is_none() => {
                            assert!(matches!(tag_of(f), None | Some(20)), "port 4 sent VLAN {:?}", tag_of(f))
                        }
                        _ => {}
                    }
                    // Without offload work, what follows the switch's tag leaves as
                    // it came: a second tag is payload, never popped or rewritten.
                    if vnet == VnetHdr::default() {
                        // Tagged out of the trunk, of port 4 for VLAN 20 only, and of the
                        // mirror's trunk unless the switch's VLAN is 0: untagged or
                        // priority-tagged into the trunk, whose tag (VID 0, priority
                        // 0) is popped, so that a second tag is then the first one in f.
                        let vlan0 = in_port == 2 && matches!(tag_of(frame), None | Some(0));
                        let out_tagged = i == 2 || (i == 3 && tag_of(frame) == Some(20)) || (i == 4 && !vlan0 && tag_of(f).is_some());
                        let out = &f[if out_tagged { 16 } else { 12 }..];
                        assert_eq!(out, after_tag(frame), "port {} got other bytes after the tag", i + 1);
                    }
                }
            }
        }
    });
});
