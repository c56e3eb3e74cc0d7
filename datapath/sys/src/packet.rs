//! AF_PACKET sockets bound to one existing netdev: promiscuous, not receiving their own
//! transmissions, with the virtio-net header on every frame and the VLAN tag the kernel
//! stripped handed back as auxiliary data.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::{cvt, cvt_size, owned};

/// Sets a socket option whose value is the plain-old-data struct (or integer) `v`.
fn setsockopt_val<T>(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: passes a pointer to a live `T` and its exact size; the kernel only reads it.
    cvt(unsafe { libc::setsockopt(fd, level, opt, (v as *const T).cast(), size_of::<T>() as libc::socklen_t) }).map(drop)
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    setsockopt_val(fd, level, opt, &v)
}

fn getsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: passes a pointer to a live c_int and its size; the kernel writes at most
    // that many bytes and the length back.
    cvt(unsafe { libc::getsockopt(fd, level, opt, (&mut v as *mut libc::c_int).cast(), &mut len) })?;
    Ok(v)
}

/// What [`open`] could and could not enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSocketInfo {
    pub vnet_hdr: bool,
}

/// Opens an AF_PACKET socket on interface `ifindex`, receiving nothing until
/// [`release`]d (join a fanout group first, if any). With `vnet_hdr`, every frame read
/// or written is preceded by a 10-byte virtio-net header (`PACKET_VNET_HDR`); if the
/// kernel refuses that, the socket works without and says so in the result. With
/// `ring` (slot size, slots), the socket gets an [`RxRing`], or the reason it has none.
pub fn open(ifindex: u32, vnet_hdr: bool, ring: Option<(usize, usize)>) -> io::Result<(OwnedFd, PacketSocketInfo, Option<io::Result<RxRing>>)> {
    // Protocol 0 first: nothing is queued to the socket until bind() below names the
    // interface and ETH_P_ALL, so no frame of another interface slips in.
    // SAFETY: plain socket(2) call; the result is checked and owned at once.
    let fd = owned(unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) })?;
    let raw = fd.as_raw_fd();
    setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_AUXDATA, 1)?;
    // Linux >= 4.20; without it we would see our own transmissions, so it is required.
    setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
    // Best effort: bypassing the qdisc saves a lock per frame; not every kernel has it.
    let _ = setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1);
    let vnet = vnet_hdr && setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1).is_ok();
    for (opt, size) in [(libc::SO_RCVBUF, 4 << 20), (libc::SO_SNDBUF, 4 << 20)] {
        let _ = setsockopt_int(raw, libc::SOL_SOCKET, opt, size);
    }
    // Held until [`release`]: a socket receives from bind() on, and one that is to join
    // a fanout group (which only a bound socket can) would meanwhile get a copy of every
    // frame the group's members get too — forwarded twice. The filter keeps it empty.
    let hold = [libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: 0 }];
    let prog = libc::sock_fprog { len: 1, filter: hold.as_ptr().cast_mut() };
    setsockopt_val(raw, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)?;
    // The ring before bind(): set up on a bound socket whose device is down, the kernel
    // forgets the socket's protocol and never delivers to it once the device comes up.
    let ring = ring.map(|(slot, slots)| RxRing::new(fd.as_fd(), slot, slots));

    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
    cvt(unsafe { libc::bind(raw, (&sll as *const libc::sockaddr_ll).cast(), size_of::<libc::sockaddr_ll>() as libc::socklen_t) })?;

    // SAFETY: packet_mreq is plain old data; all-zero is a valid value.
    let mut mreq: libc::packet_mreq = unsafe { zeroed() };
    mreq.mr_ifindex = ifindex as i32;
    mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
    // The membership is reference counted by the kernel and dropped when the socket
    // closes.
    setsockopt_val(raw, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
    Ok((fd, PacketSocketInfo { vnet_hdr: vnet }, ring))
}

/// Lets a socket from [`open`] receive: removes the filter that held every frame back
/// (after it joined its fanout group, if it is to join one). Once more is harmless.
pub fn release(fd: BorrowedFd<'_>) -> io::Result<()> {
    match setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_DETACH_FILTER, 0) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r,
    }
}

/// Turns `PACKET_QDISC_BYPASS` on or off on an open socket: with it on, frames sent
/// skip the device's qdisc (cheaper); off, they pass it, so a shaping qdisc (QoS)
/// on the device applies to them. The kernel lets it change at any time.
pub fn set_qdisc_bypass(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    setsockopt_int(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, libc::c_int::from(on))
}

/// Fanout by flow hash (`PACKET_FANOUT_HASH`), group-wide "not our own transmissions"
/// (`PACKET_FANOUT_FLAG_IGNORE_OUTGOING`: in a group the socket option no longer
/// applies), and for the first member a kernel-chosen unused group id
/// (`PACKET_FANOUT_FLAG_UNIQUEID`, not kept in the group's flags).
const FANOUT_HASH: u32 = libc::PACKET_FANOUT_HASH;
const FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
const FANOUT_FLAG_IGNORE_OUTGOING: u32 = 0x4000;

/// Makes `fd` (opened by [`open`]) the first member of a new fanout group that spreads
/// received frames over its members by flow hash, so frames of one flow stay on one
/// socket, in order. Returns the group id for [`fanout_join`].
pub fn fanout_create(fd: BorrowedFd<'_>) -> io::Result<u16> {
    let raw = fd.as_raw_fd();
    setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, ((FANOUT_HASH | FANOUT_FLAG_IGNORE_OUTGOING | FANOUT_FLAG_UNIQUEID) << 16) as libc::c_int)?;
    let v = getsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_FANOUT)?;
    Ok((v as u32 & 0xffff) as u16)
}

/// Adds `fd` (opened by [`open`] on the same device) to fanout group `id`.
pub fn fanout_join(fd: BorrowedFd<'_>, id: u16) -> io::Result<()> {
    setsockopt_int(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_FANOUT, (u32::from(id) | ((FANOUT_HASH | FANOUT_FLAG_IGNORE_OUTGOING) << 16)) as libc::c_int)
}

/// One received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Received {
    /// Bytes placed in the buffers (vnet header included, if any).
    pub len: usize,
    /// The frame did not fit the buffers.
    pub truncated: bool,
    /// The VLAN tag the kernel stripped: (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
}

/// Room for one `tpacket_auxdata` control message.
const CMSG_SPACE: usize = 64;

/// What the kernel said about one frame: `len` bytes (its real length, `MSG_TRUNC`)
/// into buffers of `cap` bytes, and the stripped VLAN tag from the control messages.
fn received(msg: &libc::msghdr, len: usize, cap: usize) -> Received {
    let mut vlan = None;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel just filled, bounded
    // by msg_controllen; the aux data is read unaligned from inside that buffer.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                let aux: libc::tpacket_auxdata = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 { aux.tp_vlan_tpid } else { 0x8100 };
                    vlan = Some((tpid, aux.tp_vlan_tci));
                }
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    Received { len: len.min(cap), truncated: len > cap || msg.msg_flags & libc::MSG_TRUNC != 0, vlan }
}

/// Takes the error the socket holds, if any (`SO_ERROR`, which also clears it).
pub fn take_error(fd: BorrowedFd<'_>) -> io::Result<Option<io::Error>> {
    let v = getsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_ERROR)?;
    Ok((v != 0).then(|| io::Error::from_raw_os_error(v)))
}

/// Frames the kernel dropped on this socket since the last call (its receive queue or
/// ring was full): `PACKET_STATISTICS`, which resets the counters.
pub fn take_drops(fd: BorrowedFd<'_>) -> io::Result<u32> {
    // SAFETY: tpacket_stats is plain old data; all-zero is a valid value.
    let mut st: libc::tpacket_stats = unsafe { zeroed() };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: passes a pointer to a live tpacket_stats and its size; the kernel writes
    // at most that many bytes and the length back.
    cvt(unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_STATISTICS, (&mut st as *mut libc::tpacket_stats).cast(), &mut len) })?;
    Ok(st.tp_drops)
}

/// Most frames one [`recv_many`] call takes.
pub const MAX_BATCH: usize = 32;

/// Receives up to `out.len()` (at most [`MAX_BATCH`]) frames with one recvmmsg(2):
/// frame `i` is scattered into `iovs[i * per..(i + 1) * per]`. Returns how many arrived,
/// 0 when nothing is queued.
pub fn recv_many(fd: BorrowedFd<'_>, iovs: &mut [IoSliceMut<'_>], per: usize, out: &mut [Received]) -> io::Result<usize> {
    let n = out.len().min(MAX_BATCH).min(iovs.len().checked_div(per).unwrap_or(0));
    if n == 0 {
        return Ok(0);
    }
    let mut cbufs = [[0u64; CMSG_SPACE / 8]; MAX_BATCH];
    // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { zeroed() };
    for (i, (m, c)) in msgs.iter_mut().zip(cbufs.iter_mut()).take(n).enumerate() {
        m.msg_hdr.msg_iov = iovs[i * per..(i + 1) * per].as_mut_ptr().cast();
        m.msg_hdr.msg_iovlen = per;
        m.msg_hdr.msg_control = c.as_mut_ptr().cast();
        m.msg_hdr.msg_controllen = CMSG_SPACE;
    }
    // SAFETY: the first `n` headers point at distinct live iovec runs of `iovs`
    // (IoSliceMut is ABI-compatible with iovec) and at their own control buffers, all
    // writable for the call; the count passed is `n`; no timeout.
    let r = unsafe { libc::recvmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_TRUNC | libc::MSG_DONTWAIT, std::ptr::null_mut()) };
    let got = match cvt(r) {
        Ok(k) => k as usize,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
        Err(e) => return Err(e),
    };
    for i in 0..got.min(n) {
        let cap: usize = iovs[i * per..(i + 1) * per].iter().map(|b| b.len()).sum();
        out[i] = received(&msgs[i].msg_hdr, msgs[i].msg_len as usize, cap);
    }
    Ok(got.min(n))
}

/// Sends up to [`super::MAX_SEND_BATCH`] frames with one sendmmsg(2), frame `i`
/// gathered from `iovs[i * per..(i + 1) * per]`; see [`super::send_many`].
pub fn send_many(fd: BorrowedFd<'_>, iovs: &[IoSlice<'_>], per: usize) -> io::Result<usize> {
    super::send_many(fd, iovs, per, None)
}

/// Sends one frame gathered from `bufs`.
pub fn send(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len();
    // SAFETY: `msg` points at `bufs` (IoSlice is ABI-compatible with iovec), live and
    // only read for the duration of the call.
    cvt_size(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) })
}

/// A `TPACKET_V2` receive ring (`PACKET_RX_RING`) on an AF_PACKET socket: the kernel
/// copies each frame into the next free slot of a shared mapping, in the context of
/// the sender, and the reader takes it from there without a system call.
///
/// A slot belongs to the reader while its status has `TP_STATUS_USER` and goes back
/// to the kernel when the reader stores `TP_STATUS_KERNEL`. A frame too long for a
/// slot arrives cut to the slot with `TP_STATUS_COPY`, and whole on the socket's
/// ordinary receive queue (`PACKET_COPY_THRESH`), from which [`recv_many`] reads it.
pub struct RxRing {
    base: *mut u8,
    map_len: usize,
    frame_size: usize,
    frames: usize,
    /// The next slot to read.
    head: std::sync::atomic::AtomicUsize,
    /// Held by the one reader at a time ([`RxRing::reader`]).
    busy: std::sync::atomic::AtomicBool,
}

// SAFETY: the mapping is owned by the ring and lives until Drop; slots are only read
// by the holder of `busy`, and handed back with an atomic store, so sharing the ring
// between threads is sound.
unsafe impl Send for RxRing {}
// SAFETY: as above.
unsafe impl Sync for RxRing {}

/// Bytes of a slot before the frame: the `tpacket2_hdr`, the `sockaddr_ll`, and room
/// for the link header alignment and the virtio-net header.
pub const RING_SLOT_OVERHEAD: usize = 96;

impl RxRing {
    /// Sets up a ring of `frames` slots of `frame_size` bytes (a power of two, at least
    /// 2048) on `fd`, in [`open`]: after the virtio-net header is set, before bind().
    pub fn new(fd: BorrowedFd<'_>, frame_size: usize, frames: usize) -> io::Result<RxRing> {
        if !frame_size.is_power_of_two() || frame_size < 2048 || frames == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "ring slots must be a power of two of at least 2048 bytes"));
        }
        let raw = fd.as_raw_fd();
        // Blocks of 16 KiB or one slot: contiguous slots, few pages per allocation.
        let block = frame_size.max(16 << 10);
        let per_block = block / frame_size;
        let frames = frames.div_ceil(per_block) * per_block;
        setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_VERSION, libc::tpacket_versions::TPACKET_V2 as libc::c_int)?;
        setsockopt_int(raw, libc::SOL_PACKET, libc::PACKET_COPY_THRESH, 1)?;
        let req = libc::tpacket_req {
            tp_block_size: block as u32,
            tp_block_nr: (frames / per_block) as u32,
            tp_frame_size: frame_size as u32,
            tp_frame_nr: frames as u32,
        };
        setsockopt_val(raw, libc::SOL_PACKET, libc::PACKET_RX_RING, &req)?;
        let map_len = frames * frame_size;
        // SAFETY: maps the ring the kernel just allocated for this socket (offset 0,
        // its exact size), shared and readable/writable as packet_mmap(7) requires; the
        // result is checked before use and unmapped in Drop. (The ring's pages are the
        // kernel's and never swapped: no MAP_LOCKED needed.)
        let base = unsafe { libc::mmap(std::ptr::null_mut(), map_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, raw, 0) };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(RxRing {
            base: base.cast(),
            map_len,
            frame_size,
            frames,
            head: std::sync::atomic::AtomicUsize::new(0),
            busy: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The reader, unless another thread is reading the ring right now.
    pub fn reader(&self) -> Option<RingReader<'_>> {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        self.busy.compare_exchange(false, true, Acquire, Relaxed).ok()?;
        Some(RingReader { ring: self, head: self.head.load(Relaxed) })
    }

    fn status(&self, slot: usize) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: `slot < frames`, so the slot's first 4 bytes (tp_status, aligned: slots
        // are at least 2048-byte aligned in a page-aligned mapping) lie inside the
        // mapping, which outlives the borrow of `self`; the kernel and we only ever
        // access the status word atomically.
        unsafe { std::sync::atomic::AtomicU32::from_ptr(self.base.add(slot * self.frame_size).cast()) }
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reader borrows it now.
        unsafe { libc::munmap(self.base.cast(), self.map_len) };
    }
}

/// Reads an [`RxRing`] in order; one at a time per ring.
pub struct RingReader<'a> {
    ring: &'a RxRing,
    head: usize,
}

/// The frame in the slot at the head of the ring.
#[derive(Debug)]
pub struct RingFrame<'a> {
    /// The frame's bytes as far as the slot holds them (from the link header on).
    pub data: &'a [u8],
    /// The frame's real length.
    pub len: usize,
    /// The whole frame waits on the socket's receive queue (it was longer than a slot).
    pub copied: bool,
    /// The virtio-net header the kernel wrote in front of the frame (with
    /// `PACKET_VNET_HDR`).
    pub vnet: &'a [u8],
    /// The VLAN tag the kernel stripped: (TPID, TCI).
    pub vlan: Option<(u16, u16)>,
    /// The kernel has dropped frames (ring full) since the socket's statistics were
    /// last read ([`take_drops`]).
    pub losing: bool,
}

impl RingReader<'_> {
    /// The frame at the head, if the kernel has filled that slot. Hand the slot back
    /// with [`RingReader::release`] once done with the frame.
    pub fn peek(&self) -> Option<RingFrame<'_>> {
        use std::sync::atomic::Ordering::Acquire;
        let ring = self.ring;
        let status = ring.status(self.head).load(Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the slot is ours while its status says TP_STATUS_USER (the kernel
        // published it with a barrier before the status, loaded above with Acquire)
        // and until `release`, which needs `&mut self` and so ends this borrow first;
        // the slot lies inside the mapping.
        let slot = unsafe { std::slice::from_raw_parts(ring.base.add(self.head * ring.frame_size), ring.frame_size) };
        // SAFETY: tpacket2_hdr is plain old data at the start of the slot; read unaligned
        // to be independent of the slot's alignment.
        let h: libc::tpacket2_hdr = unsafe { std::ptr::read_unaligned(slot.as_ptr().cast()) };
        let mac = usize::from(h.tp_mac);
        let snap = (h.tp_snaplen as usize).min(ring.frame_size.saturating_sub(mac));
        let vnet_at = mac.saturating_sub(crate::VIRTIO_NET_HDR_LEN);
        let vlan = (status & libc::TP_STATUS_VLAN_VALID != 0).then(|| {
            let tpid = if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 { h.tp_vlan_tpid } else { 0x8100 };
            (tpid, h.tp_vlan_tci)
        });
        Some(RingFrame {
            data: slot.get(mac..mac + snap).unwrap_or(&[]),
            len: h.tp_len as usize,
            copied: status & libc::TP_STATUS_COPY != 0,
            losing: status & libc::TP_STATUS_LOSING != 0,
            vnet: slot.get(vnet_at..mac).unwrap_or(&[]),
            vlan,
        })
    }

    /// Hands the head slot back to the kernel and moves on to the next. True when that
    /// completed a turn of the ring (the head is back at the first slot).
    pub fn release(&mut self) -> bool {
        use std::sync::atomic::Ordering::Release;
        self.ring.status(self.head).store(libc::TP_STATUS_KERNEL, Release);
        self.head = (self.head + 1) % self.ring.frames;
        self.head == 0
    }
}

impl Drop for RingReader<'_> {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::{Relaxed, Release};
        self.ring.head.store(self.head, Relaxed);
        self.ring.busy.store(false, Release);
    }
}
