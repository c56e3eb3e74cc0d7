//! The worker run through in-memory ports and VXLAN endpoints on loopback.
//!
//! Most tests drive a [`Worker`] on the test's own thread, turn by turn (`step`, and
//! `drive` until nothing is ready), as quinn's tests drive a connection pair: no
//! thread, no sleeping, and what a batch is does not depend on timing. Those that are
//! about the threads themselves (the run loop, several workers, the allocation count
//! on the worker's own thread) start them with [`WorkerHandle`] and wait.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use rvs_ovsdb::Uuid;
use rvs_switch::bridge::{BridgeConfig, PortConfig};
use rvs_switch::time::Clock;
use rvs_switch::types::{MacAddr, OfPort, VlanId, Vni};

use crate::port::vxlan as port_vxlan;
use crate::port::vxlan::Endpoint;

use super::*;
use crate::port::mem::MemPort;
use rvs_switch::wire::checksum;
use rvs_switch::wire::virtio_net_hdr::VnetHdr;
use rvs_sys::epoll::EventFd;

use rvs_switch::testing::{frame, tag, tagged};

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, n])
}

fn port(n: u16, io: Arc<MemPort>, core: PortConfig) -> DpPort {
    DpPort { iface: Uuid::random(), name: format!("p{n}"), ofport: OfPort::new(n).unwrap(), io, stats: Arc::default(), core, policer: None, shaper: None }
}

/// A configuration of one bridge "br0" of `ports`.
fn br0(ports: Vec<DpPort>) -> DpConfig {
    DpConfig {
        bridges: vec![DpBridge {
            uuid: Uuid::random(),
            name: "br0".into(),
            cfg: BridgeConfig::default(),
            ports,
            statics: vec![],
            flood_vlans: vec![],
            mirrors: vec![],
            mirror_stats: vec![],
        }],
        ..Default::default()
    }
}

/// A worker thread running one bridge "br0" of `ports`.
fn one_bridge(ports: Vec<DpPort>) -> WorkerHandle {
    let mut w = WorkerHandle::spawn(Clock::new(), |_| {}).unwrap();
    w.reconfigure(br0(ports));
    w
}

/// A worker on the test's thread running `cfg` as worker `id` of a crew with learning
/// queues `peers` (to the others) and `inbox` (its own), to be driven with
/// [`Worker::step`].
fn stepped_in_crew(
    cfg: DpConfig,
    id: usize,
    peers: Vec<crossbeam_channel::Sender<learn::LearnMsg>>,
    inbox: crossbeam_channel::Receiver<learn::LearnMsg>,
) -> Worker {
    // The doorbell is not needed: nothing is sent to the worker, the test calls it.
    let bell = EventFd::new().unwrap();
    let mut w = Worker::new(Clock::new(), Arc::new(|_: WorkerEvent| {}), inbox, &bell).unwrap();
    w.crew = Crew { id, n: peers.len() + 1, peers, generation: 1 };
    w.apply(cfg);
    w
}

/// A lone worker on the test's thread running `cfg`.
fn stepped(cfg: DpConfig) -> Worker {
    stepped_in_crew(cfg, 0, Vec::new(), crossbeam_channel::bounded(1).1)
}

impl Worker {
    /// One turn of the loop without waiting: services the inputs ready now, applies
    /// learning notes, ages. Returns how many inputs were ready.
    fn step(&mut self) -> usize {
        self.turn().unwrap()
    }

    /// Turns until a turn finds nothing ready.
    fn drive(&mut self) {
        assert!(self.turn_until_idle(1000).unwrap(), "the worker never ran out of input");
    }

    /// Turns until `done` (for input that arrives through the kernel, as UDP on
    /// loopback, and may come a moment after it was sent), yielding the CPU between
    /// empty turns.
    fn drive_until(&mut self, mut done: impl FnMut() -> bool) {
        for _ in 0..100_000 {
            if done() {
                return;
            }
            if self.step() == 0 {
                std::thread::yield_now();
            }
        }
        panic!("condition not reached");
    }
}

fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("condition not reached within 1 s");
}

/// The real worker loop, driven through in-memory ports.
#[test]
fn worker_switches_between_mem_ports() {
    let (a, b, c) = (Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(false).unwrap()));
    let v10 = VlanId::new(10).unwrap();
    let w = one_bridge(vec![
        port(1, a.clone(), PortConfig::access(1, v10)),
        port(2, b.clone(), PortConfig::trunk(2)),
        port(3, c.clone(), PortConfig::access(3, v10)),
    ]);
    // a broadcasts: b gets it tagged 10, c untagged.
    a.inject(&frame(MacAddr::BROADCAST, mac(1)), VnetHdr::default());
    wait_for(|| !c.take_sent().is_empty());
    let sent_b = b.take_sent();
    assert_eq!(sent_b.len(), 1);
    assert_eq!(&sent_b[0].0[12..16], &[0x81, 0x00, 0x00, 0x0a]);
    // c answers a with a partial checksum: a (offloads) gets it as is.
    let mut f = frame(mac(1), mac(3));
    f[34..36].copy_from_slice(&[0x12, 0x34]);
    let partial = VnetHdr { flags: 1, csum_start: 14, csum_offset: 20, ..Default::default() };
    c.inject(&f, partial);
    wait_for(|| !a.take_sent().is_empty());
    // b sends to a with a partial checksum; c has no offloads: not involved (known
    // unicast), and a frame flooded to c gets its checksum completed.
    b.inject(&tagged(MacAddr::BROADCAST, mac(2), 10), VnetHdr { flags: 1, csum_start: 18, csum_offset: 20, ..Default::default() });
    let mut got = Vec::new();
    wait_for(|| {
        got.extend(c.take_sent());
        !got.is_empty()
    });
    assert_eq!(got[0].1, VnetHdr::default(), "checksum completed for the port without offloads");
    assert_eq!(checksum::fold(checksum::sum(&got[0].0[14..], 0)), 0xffff);
    let fdb = futures_lite_block(w.query(|w| w.bridge("br0").map(|b| b.core.fdb().len())));
    assert_eq!(fdb, Some(3));
    w.stop();
}

/// The address of a VXLAN endpoint on loopback (UDP GRO on), a peer socket, the VNI,
/// and tunnel port number `n` to that peer (a trunk) receiving through the endpoint.
fn loopback_tunnel(n: u16) -> (std::net::SocketAddr, std::net::UdpSocket, Vni, DpPort) {
    let lo = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    let ep = Arc::new(Endpoint::open(Some(lo), 0, false, 1).unwrap());
    assert!(ep.gro(), "UDP GRO on the endpoint");
    let at = socket2::SockRef::from(&ep.fd(0)).local_addr().unwrap().as_socket().unwrap();
    let peer = std::net::UdpSocket::bind((lo, 0)).unwrap();
    let vni = Vni::new(77).unwrap();
    let settings = port_vxlan::TxSettings { local: Some(lo), v6: false, ttl: 64, tos: 0, df: false, csum: false };
    let pool = Arc::new(port_vxlan::SendPool::open(&settings).unwrap());
    let tunnel = Arc::new(port_vxlan::Tunnel::new("vx", peer.local_addr().unwrap(), vni, pool).receiving_on(ep.clone()));
    let tp = DpPort { io: tunnel, ..port(n, Arc::new(MemPort::new(true).unwrap()), PortConfig::trunk(u32::from(n))) };
    (at, peer, vni, tp)
}

/// Runs a worker with one VXLAN tunnel (from a peer socket on loopback) and one
/// batching VM port on a bridge; `send` queues datagrams at the endpoint before
/// the worker first looks at it. Returns the number byte (20) of each frame the VM
/// port got, in order, and the sizes of its send calls.
fn from_tunnel_to_vm(frames: usize, send: impl FnOnce(&std::net::UdpSocket, std::net::SocketAddr, &[Vec<u8>])) -> (Vec<u8>, Vec<usize>) {
    let (at, peer, vni, tp) = loopback_tunnel(1);
    let vm = Arc::new(MemPort::batching(true, 32).unwrap());
    // Broadcast frames of one length, numbered.
    let datagrams: Vec<Vec<u8>> = (0..frames as u8)
        .map(|i| {
            let mut f = frame(MacAddr::BROADCAST, mac(1));
            f[20] = i;
            [&port_vxlan::header(vni)[..], &f].concat()
        })
        .collect();
    send(&peer, at, &datagrams);
    let mut w = stepped(br0(vec![tp, port(2, vm.clone(), PortConfig::trunk(2))]));
    let mut got = Vec::new();
    w.drive_until(|| {
        got.extend(vm.take_sent().into_iter().map(|(f, _)| f[20]));
        got.len() >= frames
    });
    (got, vm.take_tx_calls())
}

/// The small frames of a VXLAN datagram train (UDP GRO) leave for a batching port in
/// one send call, in order.
#[test]
fn small_frames_of_a_train_are_sent_in_one_batch() {
    // 20 frames in one UDP GSO send: the endpoint reads them as one train.
    let (got, calls) = from_tunnel_to_vm(20, |peer, at, datagrams| {
        let iov: Vec<std::io::IoSlice<'_>> = datagrams.iter().map(|d| std::io::IoSlice::new(d)).collect();
        rvs_sys::udp::send_gso(peer.as_fd(), &iov, datagrams[0].len() as u16, &at).unwrap();
    });
    assert_eq!(got, (0..20u8).collect::<Vec<_>>(), "each frame once, in order");
    assert_eq!(calls, [20], "one send call for the train's frames");
}

/// Single datagrams (a kernel peer's small frames) are read [`port_vxlan::RX_TRAINS`] per
/// receive call and the frames of each call leave in one send call.
#[test]
fn single_datagrams_are_read_and_sent_in_batches() {
    let (got, calls) = from_tunnel_to_vm(20, |peer, at, datagrams| {
        for d in datagrams {
            rvs_sys::udp::send_to(peer.as_fd(), &[std::io::IoSlice::new(d.as_slice())], &at).unwrap();
        }
    });
    assert_eq!(got, (0..20u8).collect::<Vec<_>>(), "each frame once, in order");
    use port_vxlan::RX_TRAINS;
    assert_eq!(calls, [RX_TRAINS, RX_TRAINS, 20 - 2 * RX_TRAINS], "one send call per receive call");
}

/// Frames of one receive batch bound for a batching port leave in one send call,
/// in the order they came, also when floods (sent at once) come between them; a
/// port that does not batch gets one call per frame.
#[test]
fn receive_batches_are_sent_in_batches_in_order() {
    let a = Arc::new(MemPort::batching(true, 32).unwrap());
    let (b, c) = (Arc::new(MemPort::batching(true, 32).unwrap()), Arc::new(MemPort::new(true).unwrap()));
    let mut w =
        stepped(br0(vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2)), port(3, c.clone(), PortConfig::trunk(3))]));
    // b and c make themselves known.
    b.inject(&frame(MacAddr::BROADCAST, mac(2)), VnetHdr::default());
    c.inject(&frame(MacAddr::BROADCAST, mac(3)), VnetHdr::default());
    w.drive();
    assert_eq!(w.bridge("br0").map_or(0, |b| b.core.fdb().len()), 2);
    for p in [&a, &b, &c] {
        p.take_sent();
        p.take_tx_calls();
    }
    // 20 numbered frames from a: to b, with every fifth a broadcast (to b and c) and
    // every seventh to c.
    let frames: Vec<Vec<u8>> = (0..20u8)
        .map(|i| {
            let dst = if i % 5 == 4 {
                MacAddr::BROADCAST
            } else if i % 7 == 6 {
                mac(3)
            } else {
                mac(2)
            };
            let mut f = frame(dst, mac(1));
            f[20] = i;
            f
        })
        .collect();
    let tx_b = |w: &Worker| w.bridge("br0").map_or(0, |b| b.ports[1].stats.snapshot().tx_packets);
    let before = tx_b(&w);
    a.inject_all(&frames);
    w.drive();
    let want_b: Vec<u8> = (0..20u8).filter(|i| i % 7 != 6 || i % 5 == 4).collect();
    let want_c: Vec<u8> = (0..20u8).filter(|i| i % 5 == 4 || i % 7 == 6).collect();
    let got_b: Vec<u8> = b.take_sent().into_iter().map(|(f, _)| f[20]).collect();
    let got_c: Vec<u8> = c.take_sent().into_iter().map(|(f, _)| f[20]).collect();
    assert_eq!(got_b, want_b, "b got its frames once each, in order");
    assert_eq!(got_c, want_c, "c got its frames once each, in order");
    // One receive batch of 20: the frames held for b leave when a frame that is not
    // held (a flood: 4, 9, 14, 19; one to c: 6, 13) comes, then that frame.
    assert_eq!(b.take_tx_calls(), [4, 1, 1, 2, 1, 3, 1, 4, 1], "frames to b went out in batches");
    let calls_c = c.take_tx_calls();
    assert!(calls_c.len() == want_c.len() && calls_c.iter().all(|&n| n == 1), "c does not batch: {calls_c:?}");
    assert_eq!(tx_b(&w) - before, want_b.len() as u64, "every batched frame counted as sent");
}

/// From a port that reads ahead one call per frame (a tap), the first frame after
/// one that came alone is forwarded at once, before the port is read again; in a
/// burst the rest follow in one batch, and after a burst a burst goes out whole.
#[test]
fn a_lone_frame_is_not_held_for_a_batch() {
    let a = Arc::new(MemPort::reading_ahead(true, 32).unwrap());
    let b = Arc::new(MemPort::batching(true, 32).unwrap());
    let mut w = stepped(br0(vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2))]));
    b.inject(&frame(MacAddr::BROADCAST, mac(2)), VnetHdr::default());
    w.drive();
    assert_eq!(w.bridge("br0").map_or(0, |b| b.core.fdb().len()), 1);
    let mut burst = |n: usize| -> Vec<usize> {
        a.inject_all(&vec![frame(mac(2), mac(1)); n]);
        w.drive();
        assert_eq!(b.take_sent().len(), n);
        b.take_tx_calls()
    };
    assert_eq!(burst(1), [1], "a lone frame");
    assert_eq!(burst(20), [1, 19], "after a lone frame: the first at once, the rest batched");
    assert_eq!(burst(20), [20], "after a burst: all batched");
    assert_eq!(burst(1), [1]);
    assert_eq!(burst(5), [1, 4]);
}

/// A GSO frame flooded to a port without offloads arrives there as MSS-sized frames
/// with full checksums; the offload-capable port gets it whole.
#[test]
fn gso_frames_are_segmented_for_ports_without_offloads() {
    let (a, b, c) = (Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(false).unwrap()));
    let mut w =
        stepped(br0(vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2)), port(3, c.clone(), PortConfig::trunk(3))]));
    let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [0xff; 6])
        .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
        .tcp(1000, 2000, 7, 65535)
        .write(&mut f, &payload)
        .unwrap();
    let gso = VnetHdr { flags: 1, gso_type: 1, hdr_len: 54, gso_size: 1000, csum_start: 34, csum_offset: 16 };
    a.inject(&f, gso);
    w.drive();
    let got = c.take_sent();
    assert_eq!(got.len(), 3);
    let mut data = Vec::new();
    for (seg, vnet) in &got {
        assert_eq!(*vnet, VnetHdr::default());
        let p = etherparse::SlicedPacket::from_ethernet(seg).unwrap();
        let Some(etherparse::TransportSlice::Tcp(tcp)) = p.transport else { panic!("not TCP") };
        data.extend_from_slice(tcp.payload());
    }
    assert_eq!(data, payload);
    let whole = b.take_sent();
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].1, gso, "offload-capable ports get the GSO frame as it came");
}

/// A port whose backend breaks is reported once, taken out of the poll set and no
/// longer sent to; the others go on. Its capabilities were read once, when the
/// configuration was applied.
#[test]
fn a_port_that_breaks_is_taken_out() {
    let (a, b) = (Arc::new(MemPort::batching(false, 8).unwrap()), Arc::new(MemPort::new(true).unwrap()));
    let mut w = stepped(br0(vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2))]));
    let caps: Vec<PortCaps> = w.bridges[0].ports.iter().map(|p| p.caps()).collect();
    assert_eq!(caps[0], PortCaps { offloads: false, batches_tx: true, reads_ahead: false, rx_batch: 8 });
    assert_eq!(caps[1], PortCaps { offloads: true, batches_tx: false, reads_ahead: false, rx_batch: 1 });
    let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
    let f = failed.clone();
    w.events = Arc::new(move |WorkerEvent::PortFailed { name, .. }| f.lock().unwrap().push(name));
    w.fail_port(PortRef { bridge: 0, port: 0 }, std::io::Error::other("gone"));
    w.fail_port(PortRef { bridge: 0, port: 0 }, std::io::Error::other("gone again"));
    assert_eq!(*failed.lock().unwrap(), ["p1"], "reported once");
    assert!(w.bridges[0].ports[0].failed());
    assert_eq!(w.inputs(), ["p1", "p2"], "still in the table, only out of the poll set");
    a.inject(&frame(MacAddr::BROADCAST, mac(1)), VnetHdr::default());
    b.inject(&frame(MacAddr::BROADCAST, mac(2)), VnetHdr::default());
    w.drive();
    assert!(a.take_sent().is_empty(), "nothing sent to the broken port");
    assert_eq!(w.bridges[0].ports[0].stats.snapshot().rx_packets, 0, "the broken port is not read");
    assert_eq!(w.bridges[0].ports[1].stats.snapshot().rx_packets, 1);
    // A new configuration polls it again.
    w.apply(br0(vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2))]));
    w.drive();
    assert_eq!(w.bridges[0].ports[0].stats.snapshot().rx_packets, 1);
}

/// Two workers stepped in turn: inputs dealt round-robin, and what one learns reaches
/// the other through its queue when it next turns, so a reply read by the second goes
/// to the one port instead of being flooded.
#[test]
fn a_stepped_pair_shares_what_it_learns() {
    let (a, b, c) = (Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()));
    let cfg = br0(vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2)), port(3, c.clone(), PortConfig::trunk(3))]);
    let (to0, inbox0) = crossbeam_channel::bounded(learn::LEARN_QUEUE);
    let (to1, inbox1) = crossbeam_channel::bounded(learn::LEARN_QUEUE);
    let mut w0 = stepped_in_crew(cfg.clone(), 0, vec![to1], inbox0);
    let mut w1 = stepped_in_crew(cfg, 1, vec![to0], inbox1);
    assert_eq!((w0.inputs(), w1.inputs()), (vec!["p1".to_string(), "p3".to_string()], vec!["p2".to_string()]));
    // a (worker 0) broadcasts from mac 1: flooded to b and c, learned by worker 0.
    a.inject(&frame(MacAddr::BROADCAST, mac(1)), VnetHdr::default());
    w0.drive();
    assert_eq!((b.take_sent().len(), c.take_sent().len()), (1, 1));
    let mac1 = |w: &Worker| w.bridges[0].core.fdb().lookup(VlanId::NONE, mac(1));
    assert_eq!((mac1(&w0), mac1(&w1)), (Some(0), None), "worker 1 has not turned yet");
    // b (worker 1) answers mac 1: worker 1 applies the note first, so only a gets it.
    b.inject(&frame(mac(1), mac(2)), VnetHdr::default());
    w1.drive();
    assert_eq!(mac1(&w1), Some(0));
    assert_eq!((a.take_sent().len(), c.take_sent().len()), (1, 0), "known unicast not flooded");
    assert_eq!((w0.learn_lost, w1.learn_lost), (0, 0));
}

/// Two workers: inputs dealt round-robin, what one learns reaches the other, so a
/// reply handled by the second worker goes to the one port, not flooded; back to
/// one worker, everything still forwards.
#[test]
fn two_workers_share_what_they_learn() {
    let (a, b, c) = (Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()));
    let mut w = WorkerHandle::spawn(Clock::new(), |_| {}).unwrap();
    let uuid = Uuid::random();
    let cfg = |workers| DpConfig {
        bridges: vec![DpBridge {
            uuid,
            name: "br0".into(),
            cfg: BridgeConfig::default(),
            ports: vec![port(1, a.clone(), PortConfig::trunk(1)), port(2, b.clone(), PortConfig::trunk(2)), port(3, c.clone(), PortConfig::trunk(3))],
            statics: vec![],
            flood_vlans: vec![],
            mirrors: vec![],
            mirror_stats: vec![],
        }],
        workers,
        pmd_cpus: vec![],
        rxq_affinity: vec![],
    };
    w.reconfigure(cfg(2));
    assert_eq!(w.workers(), 2);
    let inputs: Vec<Vec<String>> = w.query_all(|w| w.inputs()).into_iter().map(futures_lite_block).collect();
    assert_eq!(inputs, vec![vec!["p1".to_string(), "p3".to_string()], vec!["p2".to_string()]]);

    // a (worker 0) broadcasts from mac 1: flooded to b and c, learned on worker 0.
    a.inject(&frame(MacAddr::BROADCAST, mac(1)), VnetHdr::default());
    wait_for(|| !b.take_sent().is_empty());
    wait_for(|| !c.take_sent().is_empty());
    // Worker 1 hears of it when it next wakes: poke it with a frame it drops (to
    // a reserved group address: not learned, not forwarded), then ask it.
    let mut learned_on_1 = false;
    for _ in 0..100 {
        b.inject(&frame(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]), mac(9)), VnetHdr::default());
        let rx = w.query_all(|w| w.bridge("br0").and_then(|b| b.core.fdb().lookup(VlanId::NONE, mac(1))));
        let answers: Vec<_> = rx.into_iter().map(futures_lite_block).collect();
        if answers[1] == Some(0) {
            learned_on_1 = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(learned_on_1, "worker 1 never learned what worker 0 saw");
    a.take_sent();
    c.take_sent();

    // b (worker 1) answers mac 1: only a gets it.
    b.inject(&frame(mac(1), mac(2)), VnetHdr::default());
    wait_for(|| !a.take_sent().is_empty());
    std::thread::sleep(Duration::from_millis(50));
    assert!(c.take_sent().is_empty(), "known unicast was flooded");

    // Learned counts add up over the workers: mac 1 on worker 0, mac 2 on
    // worker 1.
    let learned: u64 = w.query_all(|w| w.bridge("br0").map_or(0, |b| b.core.fdb().stats().learned)).into_iter().map(futures_lite_block).sum();
    assert_eq!(learned, 2);

    w.reconfigure(cfg(1));
    assert_eq!(w.workers(), 1);
    b.inject(&frame(mac(1), mac(2)), VnetHdr::default());
    wait_for(|| !a.take_sent().is_empty());
    w.stop();
}

/// A tagged (VLAN `vid`) TCP segment from `src` to `dst` with `payload`, sequence
/// number `seq`, checksums right.
fn tcp_frame(dst: MacAddr, src: MacAddr, vid: Option<u16>, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    etherparse::PacketBuilder::ethernet2(src.0, dst.0)
        .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
        .tcp(1000, 2000, seq, 65535)
        .ack(1)
        .write(&mut f, payload)
        .unwrap();
    match vid {
        Some(v) => tag(&f, v),
        None => f,
    }
}

/// Part 4 of the fast path: once warm, the worker forwards without allocating —
/// known unicast with a VLAN tag pushed, floods, a GSO frame kept whole for one
/// port and cut for another and for a VXLAN tunnel (one UDP GSO send), single VXLAN
/// datagrams decapsulated with the tag popped, and a GRO train of TCP segments
/// coalesced into one frame. Counted by the test build's allocator, on the worker's
/// own thread.
#[test]
fn forwarding_allocates_nothing_once_warm() {
    let (at, peer, vni, tp) = loopback_tunnel(4);
    peer.set_nonblocking(true).unwrap();
    let vid = VlanId::new(10).unwrap();
    // vm1 on an access port of VLAN 10 (batching, offloads), vm2 on a trunk
    // (batching, offloads), vm3 on a trunk without offloads.
    let vm1 = Arc::new(MemPort::sink(true, 32).unwrap());
    let vm2 = Arc::new(MemPort::sink(true, 32).unwrap());
    let vm3 = Arc::new(MemPort::sink(false, 0).unwrap());
    let mut w = WorkerHandle::spawn(Clock::new(), |_| {}).unwrap();
    let bridge = DpBridge {
        uuid: Uuid::random(),
        name: "br0".into(),
        cfg: BridgeConfig::default(),
        ports: vec![
            port(1, vm1.clone(), PortConfig::access(1, vid)),
            port(2, vm2.clone(), PortConfig::trunk(2)),
            port(3, vm3.clone(), PortConfig::trunk(3)),
            tp,
        ],
        statics: vec![],
        flood_vlans: vec![],
        mirrors: vec![],
        mirror_stats: vec![],
    };
    w.reconfigure(DpConfig { bridges: vec![bridge], workers: 1, ..Default::default() });

    let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let gso_frame = tcp_frame(MacAddr::BROADCAST, mac(1), None, 7, &payload);
    let gso = VnetHdr { flags: 1, gso_type: 1, hdr_len: 54, gso_size: 1000, csum_start: 34, csum_offset: 16 };
    // From the tunnel: a tagged frame for vm1, and a train of 8 tagged TCP segments
    // of one flow for vm1 (coalesced into one frame).
    let single = [&port_vxlan::header(vni)[..], &frame(mac(1), mac(4))[..12], &[0x81, 0x00, 0, 10], &frame(mac(1), mac(4))[12..]].concat();
    let segs: Vec<Vec<u8>> =
        (0..8u32).map(|i| [&port_vxlan::header(vni)[..], &tcp_frame(mac(1), mac(4), Some(10), 1 + i * 1000, &payload[..1000])].concat()).collect();
    let train: Vec<std::io::IoSlice<'_>> = segs.iter().map(|d| std::io::IoSlice::new(d)).collect();
    let mut sink = [0u8; 65536];
    let mut datagrams = 0;
    // One round: 3 frames from vm1 (a broadcast, a unicast to vm2, a GSO frame),
    // one from vm2 and two sends from the tunnel's peer.
    let mut round = |datagrams: &mut usize| {
        vm2.inject(&tagged(mac(1), mac(2), 10), VnetHdr::default());
        vm1.inject_all(&[frame(MacAddr::BROADCAST, mac(1)), frame(mac(2), mac(1))]);
        vm1.inject(&gso_frame, gso);
        rvs_sys::udp::send_to(peer.as_fd(), &[std::io::IoSlice::new(&single)], &at).unwrap();
        rvs_sys::udp::send_gso(peer.as_fd(), &train, segs[0].len() as u16, &at).unwrap();
        // What reaches the peer: the broadcast, the GSO frame cut in 3 (and
        // whatever vm2's frames flood before mac(1) is known).
        while let Ok(Some(_)) = rvs_sys::udp::recv_from(peer.as_fd(), &mut sink) {
            *datagrams += 1;
        }
    };
    // Per round: vm1 gets vm2's frame, the single and the coalesced train (3); vm2
    // the broadcast, the unicast and the GSO frame whole (3); vm3 the broadcast and
    // the GSO frame cut in 3 (4); the peer 4 datagrams.
    // First every MAC address is learned: vm1's broadcast floods (vm2, vm3, the
    // peer), vm2's and the peer's frames go to vm1.
    vm1.inject(&frame(MacAddr::BROADCAST, mac(1)), VnetHdr::default());
    wait_for(|| vm3.sunk() == 1);
    vm2.inject(&tagged(mac(1), mac(2), 10), VnetHdr::default());
    rvs_sys::udp::send_to(peer.as_fd(), &[std::io::IoSlice::new(&single)], &at).unwrap();
    wait_for(|| (vm1.sunk(), vm2.sunk(), vm3.sunk()) == (2, 1, 1));
    let expect = |rounds: usize| (2 + 3 * rounds, 1 + 3 * rounds, 1 + 4 * rounds);
    let mut done = 0;
    let mut run = |rounds: usize, datagrams: &mut usize| {
        for _ in 0..rounds {
            round(datagrams);
            done += 1;
            let want = expect(done);
            wait_for(|| (vm1.sunk(), vm2.sunk(), vm3.sunk()) == want);
        }
    };
    run(3, &mut datagrams);
    let before = futures_lite_block(w.query(|_| rvs_sys::alloc_count::allocations()));
    run(50, &mut datagrams);
    let after = futures_lite_block(w.query(|_| rvs_sys::alloc_count::allocations()));
    wait_for(|| {
        while let Ok(Some(_)) = rvs_sys::udp::recv_from(peer.as_fd(), &mut sink) {
            datagrams += 1;
        }
        datagrams > 4 * 53
    });
    assert_eq!(datagrams, 1 + 4 * 53, "the tunnel's datagrams");
    assert_eq!(after - before, 0, "allocations by the worker while forwarding 50 rounds");
    w.stop();
}

/// Waits for a oneshot from a plain thread (tests have no runtime).
fn futures_lite_block<T>(mut rx: tokio::sync::oneshot::Receiver<T>) -> T {
    for _ in 0..200 {
        if let Ok(v) = rx.try_recv() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no answer from the worker within 1 s");
}

/// A shaped port (rvs's own egress QoS): what the bucket lets out leaves at once,
/// the rest waits in the port's queue in order with a wake-up set for it, and what
/// finds the queue full is dropped and counted (`shaped`, `tx_dropped`). The rate is
/// so low (1 kB/s) that nothing drains while the test runs.
#[test]
fn shaped_port_queues_then_drops() {
    use rvs_switch::bridge::DropReason;
    use rvs_switch::bridge::shaper::{ShapeQueue, ShaperConfig};
    let (a, b) = (Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()));
    let mut pb = port(2, b.clone(), PortConfig::trunk(2));
    pb.shaper = ShapeQueue::new(ShaperConfig { rate: 1000, burst: 0 }, 2).map(|q| Arc::new(std::sync::Mutex::new(q)));
    let mut w = stepped(br0(vec![port(1, a.clone(), PortConfig::trunk(1)), pb]));
    let mut known = frame(mac(1), mac(2));
    known.resize(100, 0);
    b.inject(&known, VnetHdr::default());
    w.drive();
    assert_eq!(a.take_sent().len(), 1, "the other way is not shaped");
    // Five 1000-byte frames to b: the 1600-byte bucket (its floor) lets one out.
    let frames: Vec<Vec<u8>> = (0..5u8)
        .map(|i| {
            let mut f = frame(mac(2), mac(1));
            f.resize(1000, 0);
            f[20] = i;
            f
        })
        .collect();
    a.inject_all(&frames);
    w.drive();
    let got: Vec<u8> = b.take_sent().into_iter().map(|(f, _)| f[20]).collect();
    assert_eq!(got, [0], "one within the rate; two wait, two dropped");
    let br = w.bridge("br0").unwrap();
    let st = &br.ports[1].stats;
    assert_eq!(st.tx_shaped.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(st.snapshot().tx_dropped, 2);
    assert_eq!(br.core.drops().get(DropReason::Shaped), 2);
    assert_eq!(br.ports[1].shaper.as_ref().unwrap().lock().unwrap().len(), 2);
    let now = w.now();
    assert!(w.shaped_wake(now).is_some_and(|t| t > now), "a wake-up for the queue");
}

/// Mirroring carried out: a select-all mirror to a trunk port gets each frame once,
/// tagged with its VLAN, cut to its snaplen after the other outputs got the whole
/// frame; the mirror's counters grow by the frames as received; what the mirror port
/// sends in is dropped and counted.
#[test]
fn mirror_copies_are_tagged_cut_and_counted() {
    use rvs_switch::bridge::{DropReason, MirrorConfig, MirrorOut};
    let vid = VlanId::new(10).unwrap();
    let (a, b, m) = (Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()), Arc::new(MemPort::new(true).unwrap()));
    let mut cfg =
        br0(vec![port(1, a.clone(), PortConfig::access(1, vid)), port(2, b.clone(), PortConfig::access(2, vid)), port(3, m.clone(), PortConfig::trunk(3))]);
    let stats = Arc::new(crate::mirrors::MirrorStats::default());
    cfg.bridges[0].mirrors = vec![MirrorConfig { srcs: vec![1, 2, 3], dsts: vec![1, 2, 3], vlans: None, out: MirrorOut::Port(3), snaplen: 20 }];
    cfg.bridges[0].mirror_stats = vec![stats.clone()];
    let mut w = stepped(cfg);
    let f = [frame(MacAddr::BROADCAST, mac(1)), vec![0xab; 50]].concat();
    a.inject(&f, VnetHdr::default());
    w.drive();
    assert_eq!(b.take_sent().into_iter().map(|(x, _)| x).collect::<Vec<_>>(), vec![f.clone()], "the flood gets the whole frame");
    let copies: Vec<Vec<u8>> = m.take_sent().into_iter().map(|(x, _)| x).collect();
    assert_eq!(copies, vec![tag(&f, 10)[..20].to_vec()], "one copy, tagged VLAN 10, 20 bytes");
    assert_eq!((stats.tx_packets.load(std::sync::atomic::Ordering::Relaxed), stats.tx_bytes.load(std::sync::atomic::Ordering::Relaxed)), (1, f.len() as u64));
    m.inject(&frame(MacAddr::BROADCAST, mac(3)), VnetHdr::default());
    w.drive();
    assert!(a.take_sent().is_empty() && b.take_sent().is_empty());
    assert_eq!(w.bridge("br0").map(|b| b.core.drops().get(DropReason::MirrorPort)), Some(1));
}
