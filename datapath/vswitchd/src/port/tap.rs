//! A tap device that rvs creates and owns (`type=tap`: a VM vNIC whose backend is rvs;
//! `type=internal`: a host-facing port on the bridge).
//!
//! Opened with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, a 12-byte virtio-net header
//! (`TUNSETVNETHDRSZ`), and the offloads the kernel accepts out of checksum + TSO4/6
//! (+ TSO_ECN) (`TUNSETOFFLOAD`, probed at open): the stack behind the tap then hands rvs
//! frames with partial checksums and up to 64 KiB GSO frames, which the worker forwards
//! intact to other offload-capable ports. The device may be moved into another network
//! namespace (a VM namespace in tests) and keeps working: the fd stays attached.
//!
//! The device is persistent (`TUNSETPERSIST`): it outlives rvs-vswitchd, so a VM on it
//! keeps its link, addresses and routes across a restart of the daemon, which attaches
//! to it again — where it is now, [`TapPort::open`] being told the namespace it was
//! last seen in. It is deleted only when its interface leaves the configuration
//! ([`TapPort::destroy`]). While no rvs holds it, the kernel reports no carrier.
//!
//! The tap is created multi-queue (`IFF_MULTI_QUEUE`) with one queue per worker: the
//! kernel puts the frames the stack behind the tap sends on a queue chosen by flow
//! hash, so each worker reads its own queue and a flow stays in order. When the number
//! of workers changes, [`TapPort::requeued`] attaches more queues (in whatever
//! namespace the device lives by then) or lets the surplus go; the device itself is
//! never closed. Only a pre-existing single-queue tap keeps its one queue.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use super::device::{Device, Presence, Requeue};
use super::{Input, PortIo, Rx, RxBatch, RxScratch};
use rvs_switch::packet::PacketBuf;
use rvs_switch::wire::virtio_net_hdr::{LEN_V1, VnetHdr};
use rvs_sys::{tun, uring};

/// An open tap.
pub struct TapPort {
    /// One file per queue (one for a single-queue tap); the first also for control.
    files: Vec<File>,
    name: String,
    offloads: u32,
    /// Whether the device is multi-queue (queues can be added).
    multi_queue: bool,
    /// Queues asked for (more than `files` when the kernel gave fewer).
    asked: usize,
    /// A socket in the namespace the device was last found in, to read its MTU there
    /// (made once per namespace: entering one takes a thread).
    ns_sock: Mutex<Option<(NetnsId, OwnedFd)>>,
}

/// Identity of a network namespace ([`tun::netns_id`]).
pub type NetnsId = (u64, u64);

/// Frames a tap reads ahead before the worker forwards them.
const READ_AHEAD_FRAMES: usize = 32;
/// Bytes after which a tap stops reading ahead.
const READ_AHEAD_BYTES: usize = 16 * 1024;

/// Offload sets tried in order, most capable first.
const OFFLOAD_SETS: [u32; 3] =
    [tun::TUN_F_CSUM | tun::TUN_F_TSO4 | tun::TUN_F_TSO6 | tun::TUN_F_TSO_ECN, tun::TUN_F_CSUM | tun::TUN_F_TSO4 | tun::TUN_F_TSO6, tun::TUN_F_CSUM];

impl TapPort {
    /// Opens tap `name` with `queues` receive queues and makes it persistent: attaches
    /// to the device in namespace `home` under the name it has there (where it was
    /// last seen: a VM's) when it is there, else to the one called `name` here,
    /// creating it if there is none. An existing single-queue tap, or a kernel that
    /// refuses multi-queue, gives one queue.
    pub fn open(name: &str, queues: usize, home: Option<(BorrowedFd<'_>, &str)>) -> io::Result<TapPort> {
        let open_one = |multi_queue: bool| match home {
            Some((ns, there)) => tun::open_tap_in(ns, there, true, multi_queue, true).or_else(|_| tun::open_tap(name, true, multi_queue)),
            None => tun::open_tap(name, true, multi_queue),
        };
        let (file, actual, multi_queue) = match open_one(true) {
            Ok((f, n)) => (f, n, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                let (f, n) = open_one(false)?;
                (f, n, false)
            }
            Err(e) => return Err(e),
        };
        tun::set_persist(file.as_fd(), true)?;
        tun::set_vnet_hdr_size(file.as_fd(), LEN_V1 as i32)?;
        let mut offloads = 0;
        for set in OFFLOAD_SETS {
            if tun::set_offload(file.as_fd(), set).is_ok() {
                offloads = set;
                break;
            }
        }
        let one = TapPort { files: vec![file], name: actual, offloads, multi_queue, asked: 1, ns_sock: Mutex::new(None) };
        one.requeued(queues)
    }

    /// Lets the device go with the last file attached to it: for an interface that
    /// left the configuration (a restart keeps it).
    pub fn destroy(&self) {
        if let Err(e) = tun::set_persist(self.files[0].as_fd(), false)
            && !tun::is_detached(&e)
        {
            tracing::warn!("{}: cannot make the tap non-persistent ({e}); it stays", self.name);
        }
    }

    /// The device's name now (it may have been renamed in a VM's namespace).
    pub fn current_name(&self) -> io::Result<String> {
        tun::attached_name(self.files[0].as_fd())
    }

    /// The network namespace the device is in now.
    pub fn netns(&self) -> io::Result<NetnsId> {
        tun::netns_id(tun::device_netns(self.files[0].as_fd())?.as_fd())
    }

    /// The same tap with `queues` receive queues: the first ones shared with this port
    /// (their files duplicated), more attached where the device is now
    /// ([`tun::attach_queue`]); the queues beyond `queues` are let go when this port is
    /// dropped. A single-queue tap keeps its queue; a queue the kernel refuses is
    /// logged and the tap goes on with fewer.
    pub fn requeued(&self, queues: usize) -> io::Result<TapPort> {
        let asked = queues.max(1);
        let mut files = self.files.iter().take(asked).map(File::try_clone).collect::<io::Result<Vec<_>>>()?;
        while self.multi_queue && files.len() < asked {
            match tun::attach_queue(self.files[0].as_fd(), true) {
                Ok(f) => files.push(f),
                Err(e) => {
                    tracing::warn!("{}: cannot attach another tap queue ({e}): {} queue(s)", self.name, files.len());
                    break;
                }
            }
        }
        Ok(TapPort { files, name: self.name.clone(), offloads: self.offloads, multi_queue: self.multi_queue, asked, ns_sock: Mutex::new(None) })
    }

    /// Queues asked for when the port was opened or requeued.
    pub fn asked_queues(&self) -> usize {
        self.asked
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `TUN_F_*` offloads in effect.
    pub fn offload_flags(&self) -> u32 {
        self.offloads
    }

    /// Whether the device still exists (it may live in another namespace).
    pub fn is_attached(&self) -> bool {
        match tun::attached_name(self.files[0].as_fd()) {
            Ok(_) => true,
            Err(e) => !tun::is_detached(&e),
        }
    }
}

impl Input for TapPort {
    fn queues(&self) -> usize {
        self.files.len()
    }

    fn queue_fd(&self, q: usize) -> Option<BorrowedFd<'_>> {
        self.files.get(q).map(|f| f.as_fd())
    }

    fn recv_queue(&self, q: usize, buf: &mut PacketBuf) -> io::Result<Rx> {
        let Some(file) = self.files.get(q) else { return Ok(Rx::Empty) };
        // The virtio-net header lands in the headroom, right before the frame.
        let n = match (&*file).read(buf.rx_area_after(LEN_V1)) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {
                return Ok(Rx::Empty);
            }
            Err(e) => return Err(e),
        };
        if n < LEN_V1 {
            return Ok(Rx::Bad);
        }
        buf.set_len(n - LEN_V1);
        buf.vnet = match VnetHdr::parse(buf.rx_prefix(LEN_V1)) {
            Ok(v) => v,
            Err(_) => return Ok(Rx::Bad),
        };
        Ok(Rx::Frame)
    }

    fn batch(&self) -> usize {
        READ_AHEAD_FRAMES
    }

    fn reads_ahead(&self) -> bool {
        true
    }

    /// Reads frames one `read` each, up to `bufs.len()` (the worker then sends those
    /// bound for batching ports together), but stops once [`READ_AHEAD_BYTES`] are in:
    /// a large frame goes out while it is still in the cache.
    fn recv_batch(&self, q: usize, bufs: &mut [PacketBuf], out: &mut [Rx], _: &mut RxScratch) -> io::Result<RxBatch> {
        super::recv_each(self, q, bufs, out, READ_AHEAD_BYTES)
    }
}

impl PortIo for TapPort {
    fn send(&self, buf: &PacketBuf) -> io::Result<bool> {
        let mut hdr = [0u8; LEN_V1];
        buf.vnet.emit(&mut hdr);
        write_outcome((&self.files[0]).write_vectored(&[IoSlice::new(&hdr), IoSlice::new(buf.frame())]).map(drop))
    }

    fn offloads(&self) -> bool {
        self.offloads & tun::TUN_F_CSUM != 0
    }

    fn batches_tx(&self) -> bool {
        true
    }

    /// The frames of a batch in one io_uring submission (one system call for up to 32
    /// writes); frame by frame where io_uring is unavailable or has failed.
    fn send_batch(&self, bufs: &[&PacketBuf], sent: &mut [bool]) -> io::Result<()> {
        const MAX: usize = rvs_sys::MAX_SEND_BATCH;
        for (c, chunk) in bufs.chunks(MAX).enumerate() {
            let sent = &mut sent[c * MAX..c * MAX + chunk.len()];
            if let [one] = chunk {
                // One frame: a plain write costs less than a submission.
                sent[0] = self.send(one)?;
                continue;
            }
            let mut hdrs = [[0u8; LEN_V1]; MAX];
            for (h, b) in hdrs.iter_mut().zip(chunk) {
                b.vnet.emit(h);
            }
            let mut slices = hdrs.iter().zip(chunk).map(|(h, b)| [IoSlice::new(h), IoSlice::new(b.frame())]);
            let frames: [[IoSlice<'_>; 2]; MAX] = std::array::from_fn(|_| slices.next().unwrap_or([IoSlice::new(&[]), IoSlice::new(&[])]));
            let mut results = [0i32; MAX];
            // A ring that fails is the ring's problem, not the port's: write frame by frame.
            if !uring::write_batch(self.files[0].as_fd(), &frames[..chunk.len()], &mut results[..chunk.len()]).unwrap_or(false) {
                for (s, b) in sent.iter_mut().zip(chunk) {
                    *s = self.send(b)?;
                }
                continue;
            }
            // Every frame's outcome is recorded before a broken port is reported.
            let mut broken = None;
            for (s, &r) in sent.iter_mut().zip(&results[..chunk.len()]) {
                let res = if r < 0 { Err(io::Error::from_raw_os_error(-r)) } else { Ok(()) };
                *s = write_outcome(res).unwrap_or_else(|e| {
                    broken.get_or_insert(e);
                    false
                });
            }
            if let Some(e) = broken {
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Device for TapPort {
    fn healthy(&self, _name: &str) -> bool {
        self.is_attached()
    }

    /// Queues change in place: the device is never closed (that would delete it, and
    /// it may be in a VM's namespace by now).
    fn requeue(&self, queues: usize) -> Requeue {
        if self.asked == queues {
            return Requeue::Keep;
        }
        Requeue::Replace(self.requeued(queues).map(|t| std::sync::Arc::new(t) as std::sync::Arc<dyn Device>))
    }

    fn destroy(&self) {
        TapPort::destroy(self);
    }

    fn presence(&self, name: &str) -> Presence {
        if rvs_sys::netdev::ifindex(name).is_ok() { Presence::Netdev } else { Presence::Hidden }
    }

    fn takes_mac(&self) -> bool {
        true
    }

    /// rvs writes the frames to the tap itself: no qdisc sees them.
    fn qos_home(&self) -> crate::qos::QosHome {
        crate::qos::QosHome::Rvs
    }

    fn home(&self) -> Option<(NetnsId, String)> {
        Some((self.netns().ok()?, self.current_name().ok()?))
    }

    /// Read where the device is now, also in a VM's namespace and under the name it
    /// has there.
    fn mtu(&self, name: &str) -> Option<u32> {
        let ns = tun::device_netns(self.files[0].as_fd()).ok()?;
        let id = tun::netns_id(ns.as_fd()).ok()?;
        if Some(id) == tun::own_netns_id().ok() {
            return rvs_sys::netdev::mtu(name).ok();
        }
        let mut sock = self.ns_sock.lock().unwrap_or_else(|e| e.into_inner());
        if sock.as_ref().is_none_or(|(at, _)| *at != id) {
            *sock = Some((id, rvs_sys::netdev::ctl_socket_in(ns.as_fd()).ok()?));
        }
        let (_, fd) = sock.as_ref()?;
        rvs_sys::netdev::mtu_via(fd.as_fd(), &self.current_name().ok()?).ok()
    }
}

/// What a tap write's result means: `Ok(true)` written, `Ok(false)` a drop (full
/// queue, link down, frame refused), `Err` a tap that is gone or broken.
fn write_outcome(res: io::Result<()>) -> io::Result<bool> {
    match res {
        Ok(()) => Ok(true),
        Err(e) if tun::is_detached(&e) => Err(e),
        Err(e) if super::is_transient_tx(&e) => Ok(false),
        Err(e) => Err(e),
    }
}
