//! AF_PACKET sockets bound to one existing netdev: promiscuous, not receiving their own
//! transmissions, with the virtio-net header on every frame and the VLAN tag the kernel
//! stripped handed back as auxiliary data.

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::{cvt, cvt_size, owned};

fn setsockopt_int(fd: RawFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size.
    cvt(unsafe { libc::setsockopt(fd, level, opt, (&v as *const libc::c_int).cast(), size_of::<libc::c_int>() as libc::socklen_t) }).map(drop)
}

/// What [`open`] could and could not enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSocketInfo {
    pub vnet_hdr: bool,
}

/// Opens an AF_PACKET socket on interface `ifindex`. With `vnet_hdr`, every frame read
/// or written is preceded by a 10-byte virtio-net header (`PACKET_VNET_HDR`); if the
/// kernel refuses that, the socket works without and says so in the result.
pub fn open(ifindex: u32, vnet_hdr: bool) -> io::Result<(OwnedFd, PacketSocketInfo)> {
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
    // SAFETY: passes a pointer to a live packet_mreq and its size. The membership is
    // reference counted by the kernel and dropped when the socket closes.
    cvt(unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            (&mreq as *const libc::packet_mreq).cast(),
            size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    })?;
    Ok((fd, PacketSocketInfo { vnet_hdr: vnet }))
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
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: passes a pointer to a live c_int and its size; the kernel writes at most
    // that many bytes and the length back.
    cvt(unsafe { libc::getsockopt(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, (&mut v as *mut libc::c_int).cast(), &mut len) })?;
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
