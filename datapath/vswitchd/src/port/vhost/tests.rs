//! A vhost-user port driven by a frontend in the test (the `vhost` crate's), over a
//! real socket, with guest memory in a shared file: the protocol, both directions of
//! frames (split headers, mergeable buffers), a driver's lies, refused requests and
//! reconnection. No root needed.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use rvs_switch::packet::PacketBuf;
use rvs_switch::wire::virtio_net_hdr::VnetHdr;
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use super::{Mode, VhostPort, feat};
use crate::port::{Input, PortIo, Rx, RxScratch};

/// Guest memory size and where the frontend pretends to have it mapped.
const MEM: u64 = 1 << 20;
const VA: u64 = 0x7f00_0000_0000;
/// Ring size and where each vring lives in the guest.
const QSZ: u16 = 16;
fn ring_base(i: u64) -> u64 {
    i * 0x4000
}
/// Buffers from here on.
const BUFS: u64 = 0x80000;

/// A driver: the guest's memory and its view of two rings (rx = vring 0, tx = 1).
struct Driver {
    fe: Frontend,
    mem: GuestMemoryMmap<()>,
    _file: File,
    kick: [EventFd; 2],
    call: [EventFd; 2],
    /// Next descriptor and next avail index, per ring.
    next_desc: [u16; 2],
    avail: [u16; 2],
}

fn tmp_path(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rvs-vhost-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("sock")
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Driver {
    /// Connects and sets the device up as QEMU would.
    fn connect(path: &std::path::Path) -> Driver {
        let fe = wait_for("the socket", || Frontend::connect(path, 2).ok());
        let file = tempfile_in_shm();
        file.set_len(MEM).unwrap();
        let mem =
            GuestMemoryMmap::<()>::from_ranges_with_files([(GuestAddress(0), MEM as usize, Some(FileOffset::new(file.try_clone().unwrap(), 0)))]).unwrap();
        let mut d = Driver { fe, mem, _file: file, kick: [ev(), ev()], call: [ev(), ev()], next_desc: [0; 2], avail: [0; 2] };
        d.fe.set_owner().unwrap();
        let offered = d.fe.get_features().unwrap();
        assert_eq!(offered & (1 << 26), 0, "VHOST_F_LOG_ALL must not be offered");
        d.fe.set_features(feat::VERSION_1 | feat::MRG_RXBUF | feat::PROTOCOL_FEATURES | feat::GUEST_OFFLOADS | feat::CSUM).unwrap();
        let pf = d.fe.get_protocol_features().unwrap();
        assert!(!pf.contains(VhostUserProtocolFeatures::LOG_SHMFD), "no dirty logging offered");
        d.fe.set_protocol_features(pf & (VhostUserProtocolFeatures::MQ | VhostUserProtocolFeatures::REPLY_ACK)).unwrap();
        // Every request asks for an answer, so a refusal comes back as an error.
        d.fe.set_hdr_flags(vhost::vhost_user::message::VhostUserHeaderFlag::NEED_REPLY);
        let region = VhostUserMemoryRegionInfo { guest_phys_addr: 0, memory_size: MEM, userspace_addr: VA, mmap_offset: 0, mmap_handle: d._file.as_raw_fd() };
        d.fe.set_mem_table(&[region]).unwrap();
        for i in 0..2usize {
            let b = ring_base(i as u64);
            d.fe.set_vring_num(i, QSZ).unwrap();
            let cfg = VringConfigData {
                queue_max_size: QSZ,
                queue_size: QSZ,
                flags: 0,
                desc_table_addr: VA + b,
                avail_ring_addr: VA + b + 0x1000,
                used_ring_addr: VA + b + 0x2000,
                log_addr: None,
            };
            d.fe.set_vring_addr(i, &cfg).unwrap();
            d.fe.set_vring_base(i, 0).unwrap();
            d.fe.set_vring_call(i, &d.call[i]).unwrap();
            d.fe.set_vring_kick(i, &d.kick[i]).unwrap();
            d.fe.set_vring_enable(i, true).unwrap();
        }
        d
    }

    /// Adds a chain of (address, length, device-writable) buffers to ring `r` and
    /// makes it available (without kicking).
    fn offer(&mut self, r: usize, bufs: &[(u64, u32, bool)]) {
        let b = ring_base(r as u64);
        let head = self.next_desc[r];
        for (k, &(addr, len, write)) in bufs.iter().enumerate() {
            let i = (self.next_desc[r] % QSZ) as u64;
            let last = k + 1 == bufs.len();
            let flags: u16 = if last { 0 } else { 1 } | if write { 2 } else { 0 };
            let next = (self.next_desc[r] + 1) % QSZ;
            let at = GuestAddress(b + i * 16);
            self.mem.write_obj(addr, at).unwrap();
            self.mem.write_obj(len, GuestAddress(at.0 + 8)).unwrap();
            self.mem.write_obj(flags, GuestAddress(at.0 + 12)).unwrap();
            self.mem.write_obj(next, GuestAddress(at.0 + 14)).unwrap();
            self.next_desc[r] = self.next_desc[r].wrapping_add(1);
        }
        let slot = (self.avail[r] % QSZ) as u64;
        self.mem.write_obj(head % QSZ, GuestAddress(b + 0x1000 + 4 + slot * 2)).unwrap();
        self.avail[r] = self.avail[r].wrapping_add(1);
        self.mem.write_obj(self.avail[r], GuestAddress(b + 0x1000 + 2)).unwrap();
    }

    /// Sets ring `r`'s available index to `idx` as a lying driver would.
    fn set_avail_idx(&mut self, r: usize, idx: u16) {
        self.mem.write_obj(idx, GuestAddress(ring_base(r as u64) + 0x1000 + 2)).unwrap();
    }

    /// The used ring's index and entry `k` (id, len).
    fn used(&self, r: usize, k: u16) -> (u16, u32, u32) {
        let b = ring_base(r as u64) + 0x2000;
        let idx: u16 = self.mem.read_obj(GuestAddress(b + 2)).unwrap();
        let e = b + 4 + (k % QSZ) as u64 * 8;
        (idx, self.mem.read_obj(GuestAddress(e)).unwrap(), self.mem.read_obj(GuestAddress(e + 4)).unwrap())
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.mem.read_slice(&mut v, GuestAddress(addr)).unwrap();
        v
    }
}

fn ev() -> EventFd {
    EventFd::new(libc::EFD_NONBLOCK).unwrap()
}

/// A file in /dev/shm (as QEMU's memory-backend-file would be), unlinked at once.
fn tempfile_in_shm() -> File {
    let dir = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let p = dir.join(format!("rvs-vhost-mem-{}-{:?}", std::process::id(), std::thread::current().id()));
    let f = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    f
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect();
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f
}

/// Reads what queue 0 has for the worker.
fn recv(port: &VhostPort, n: usize) -> (Vec<PacketBuf>, Vec<Rx>, usize) {
    let mut bufs: Vec<PacketBuf> = (0..n).map(|_| PacketBuf::new()).collect();
    let mut out = vec![Rx::Empty; n];
    let got = port.recv_batch(0, &mut bufs, &mut out, &mut RxScratch::default()).unwrap();
    (bufs, out, got.n)
}

#[test]
fn frames_cross_both_ways_with_split_headers_and_mergeable_buffers() {
    let path = tmp_path("both");
    let port = VhostPort::open("vhu-test", Mode::Server(path.clone())).unwrap();
    assert!(!port.shared().link_up());
    let mut d = Driver::connect(&path);
    wait_for("link up", || port.shared().link_up().then_some(()));
    assert!(port.shared().guest_offloads());

    // Guest → rvs: the header split over two descriptors, the frame over two more.
    let f = frame(300, 1);
    let hdr = VnetHdr { flags: 1, csum_start: 34, csum_offset: 16, ..VnetHdr::default() };
    let mut h = [0u8; 12];
    hdr.emit(&mut h);
    d.mem.write_slice(&h[..5], GuestAddress(BUFS)).unwrap();
    d.mem.write_slice(&h[5..], GuestAddress(BUFS + 0x100)).unwrap();
    d.mem.write_slice(&f[..100], GuestAddress(BUFS + 0x200)).unwrap();
    d.mem.write_slice(&f[100..], GuestAddress(BUFS + 0x400)).unwrap();
    d.offer(1, &[(BUFS, 5, false), (BUFS + 0x100, 7, false), (BUFS + 0x200, 100, false), (BUFS + 0x400, 200, false)]);
    d.kick[1].write(1).unwrap();
    let mut ep = rvs_sys::epoll::Epoll::new(1).unwrap();
    ep.add(port.queue_fd(0).unwrap(), 9).unwrap();
    assert_eq!(ep.wait(Some(Duration::from_secs(2))).unwrap().count(), 1, "the kick wakes the worker's fd");
    let (bufs, out, n) = recv(&port, 4);
    assert_eq!((n, out[0]), (1, Rx::Frame));
    assert_eq!(bufs[0].frame(), &f[..]);
    assert_eq!(bufs[0].vnet, hdr);
    assert_eq!(d.used(1, 0).0, 1, "the chain went back to the driver");
    assert!(d.call[1].read().is_ok(), "and the driver was interrupted");
    assert_eq!(ep.wait(Some(Duration::from_millis(0))).unwrap().count(), 0, "the kick was drained");

    // rvs → guest: 12 + 150 bytes over three 64-byte buffers, num_buffers = 3.
    for k in 0..3 {
        d.offer(0, &[(BUFS + 0x1000 + k * 0x100, 64, true)]);
    }
    let g = frame(150, 9);
    let mut pb = PacketBuf::from_frame(&g);
    pb.vnet = hdr;
    assert!(port.send(&pb).unwrap());
    let used: Vec<_> = (0..3).map(|k| d.used(0, k)).collect();
    assert_eq!(used[2].0, 3);
    assert_eq!(used.iter().map(|u| u.2).collect::<Vec<_>>(), [64, 64, 34]);
    let mut got = Vec::new();
    for (k, u) in used.iter().enumerate() {
        got.extend(d.read(BUFS + 0x1000 + k as u64 * 0x100, u.2 as usize));
    }
    assert_eq!(VnetHdr::parse(&got[..12]).unwrap(), hdr);
    assert_eq!(u16::from_le_bytes([got[10], got[11]]), 3, "num_buffers");
    assert_eq!(&got[12..], &g[..]);
    assert!(d.call[0].read().is_ok());

    // No buffers left: a drop, counted, nothing taken.
    assert!(!port.send(&pb).unwrap());
    assert_eq!(port.shared().counters.no_buffers.load(Relaxed), 1);
    assert_eq!(d.used(0, 0).0, 3);
}

#[test]
fn a_lying_driver_costs_its_frames_or_its_ring_never_the_daemon() {
    let path = tmp_path("lies");
    let port = VhostPort::open("vhu-lies", Mode::Server(path.clone())).unwrap();
    let mut d = Driver::connect(&path);
    wait_for("link up", || port.shared().link_up().then_some(()));
    let c = &port.shared().counters;

    // A buffer outside guest memory; a device-writable buffer in a transmit chain; a
    // frame larger than any buffer of rvs's.
    d.offer(1, &[(MEM - 8, 64, false)]);
    d.offer(1, &[(BUFS, 64, true)]);
    d.offer(1, &[(BUFS, 12, false), (0, u32::MAX, false)]);
    let (_, out, n) = recv(&port, 8);
    assert_eq!(n, 3);
    assert!(out[..3].iter().all(|r| *r == Rx::Bad), "{out:?}");
    assert_eq!(c.bad_descriptors.load(Relaxed), 3);
    assert_eq!(d.used(1, 2).0, 3, "each was given back");

    // A receive buffer that is not writable by the device: given back empty.
    d.offer(0, &[(BUFS, 2048, false)]);
    assert!(!port.send(&PacketBuf::from_frame(&frame(60, 0))).unwrap());
    assert_eq!(d.used(0, 0), (1, 0, 0));

    // An available index far ahead of the ring: the ring stops, the port stays.
    d.set_avail_idx(1, d.avail[1].wrapping_add(QSZ + 5));
    let (_, _, n) = recv(&port, 8);
    assert_eq!(n, 0);
    assert_eq!(c.ring_errors.load(Relaxed), 1);
    assert!(!port.shared().link_up());

    // Requests rvs refuses: a ring larger than allowed, dirty logging (migration).
    let before = c.protocol_errors.load(Relaxed);
    assert!(d.fe.set_vring_num(0, 4096).is_err());
    // (No LOG_SHMFD was offered, so the frontend does not wait for an answer here.)
    let _ = d.fe.set_log_base(0, None);
    wait_for("refusals counted", || (c.protocol_errors.load(Relaxed) >= before + 2).then_some(()));

    // The frontend goes and comes back: the device starts afresh.
    drop(d);
    let d = Driver::connect(&path);
    wait_for("link up again", || port.shared().link_up().then_some(()));
    assert!(c.connections.load(Relaxed) >= 2);
    drop(d);
    wait_for("link down", || (!port.shared().link_up()).then_some(()));
}

#[test]
fn a_client_port_connects_when_the_frontend_comes_and_again_after_it_restarts() {
    use vhost::vhost_user::Listener;
    let path = tmp_path("client");
    let port = VhostPort::open("vhu-client", Mode::Client(path.clone())).unwrap();
    for round in 0..2 {
        let listener = Listener::new(&path, true).unwrap();
        let stream = wait_for("rvs to connect", || listener.accept().ok().flatten());
        let fe = Frontend::from_stream(stream, 1);
        fe.set_owner().unwrap();
        assert_eq!(fe.get_features().unwrap(), feat::OFFERED, "round {round}");
        drop(fe);
        drop(listener);
        let _ = std::fs::remove_file(&path);
    }
    assert!(port.shared().counters.connections.load(Relaxed) >= 2);
}

#[test]
fn a_server_port_removes_its_socket_when_closed() {
    let path = tmp_path("close");
    let port = VhostPort::open("vhu-close", Mode::Server(path.clone())).unwrap();
    assert!(path.exists());
    drop(port);
    assert!(!path.exists());
}

#[test]
fn a_port_replaced_by_another_daemon_leaves_its_socket_alone() {
    // `--takeover`: the new daemon binds the path anew while the old one runs.
    let path = tmp_path("takeover");
    let old = VhostPort::open("vhu-old", Mode::Server(path.clone())).unwrap();
    let new = VhostPort::open("vhu-new", Mode::Server(path.clone())).unwrap();
    drop(old);
    assert!(path.exists(), "the new daemon's socket stays");
    let d = Driver::connect(&path);
    wait_for("the new port to serve", || new.shared().link_up().then_some(()));
    drop(d);
}
