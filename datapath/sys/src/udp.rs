//! UDP sockets for VXLAN: the socket options socket2 does not cover (path MTU
//! discovery / DF, zero IPv4 checksums, GRO), and send/receive with addresses and
//! scatter-gather.

use std::io::{self, IoSlice};
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd};

use super::{cvt, cvt_size};

/// `SOL_UDP` options (linux/udp.h); not in every libc target.
pub const UDP_SEGMENT: libc::c_int = 103;
pub const UDP_GRO: libc::c_int = 104;

fn setsockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size.
    cvt(unsafe { libc::setsockopt(fd.as_raw_fd(), level, opt, (&v as *const libc::c_int).cast(), size_of::<libc::c_int>() as libc::socklen_t) }).map(drop)
}

/// Sets the DF bit on every datagram (and refuses to send datagrams larger than the
/// path MTU with `EMSGSIZE`), or lets the kernel fragment.
pub fn set_dont_fragment(fd: BorrowedFd<'_>, v6: bool, df: bool) -> io::Result<()> {
    if v6 {
        let v = if df { libc::IPV6_PMTUDISC_DO } else { libc::IPV6_PMTUDISC_DONT };
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, v)
    } else {
        let v = if df { libc::IP_PMTUDISC_DO } else { libc::IP_PMTUDISC_DONT };
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, v)
    }
}

/// IPv4 only: send with a zero UDP checksum (`SO_NO_CHECK`).
pub fn set_no_checksum(fd: BorrowedFd<'_>, no_check: bool) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_NO_CHECK, no_check as libc::c_int)
}

/// Receive-side UDP GRO: the kernel may hand over several same-size datagrams at once.
pub fn set_gro(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    setsockopt_int(fd, libc::SOL_UDP, UDP_GRO, on as libc::c_int)
}

/// A socket address as the kernel wants it.
fn raw_addr(a: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn from_raw(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            // An IPv4 peer reaching a dual-stack socket shows up as ::ffff:a.b.c.d.
            let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
            Some(SocketAddr::new(ip, u16::from_be(sin6.sin6_port)))
        }
        _ => None,
    }
}

/// Sends one datagram gathered from `bufs` to `to`.
pub fn send_to(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>], to: &SocketAddr) -> io::Result<usize> {
    let (ss, len) = raw_addr(to);
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&ss as *const libc::sockaddr_storage) as *mut libc::c_void;
    msg.msg_namelen = len;
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len();
    // SAFETY: `msg` points at `ss` and at `bufs` (IoSlice is ABI-compatible with iovec),
    // all live and only read during the call.
    cvt_size(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) })
}

/// Sends up to [`super::MAX_SEND_BATCH`] datagrams to `to` with one sendmmsg(2),
/// datagram `i` gathered from `iovs[i * per..(i + 1) * per]`; see [`super::send_many`].
pub fn send_many_to(fd: BorrowedFd<'_>, iovs: &[IoSlice<'_>], per: usize, to: &SocketAddr) -> io::Result<usize> {
    let (ss, len) = raw_addr(to);
    super::send_many(fd, iovs, per, Some((&ss, len)))
}

/// Sends the bytes gathered from `bufs` as a train of datagrams of `seg` bytes each (the
/// last may be shorter) with one `sendmsg` and the `UDP_SEGMENT` control message (Linux
/// UDP GSO, at most 64 segments). Kernels or devices that cannot do it answer
/// `EIO`/`EINVAL`.
pub fn send_gso(fd: BorrowedFd<'_>, bufs: &[IoSlice<'_>], seg: u16, to: &SocketAddr) -> io::Result<usize> {
    let (ss, len) = raw_addr(to);
    // Room for one cmsg carrying a u16, 8-byte aligned.
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr is plain old data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&ss as *const libc::sockaddr_storage) as *mut libc::c_void;
    msg.msg_namelen = len;
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len();
    msg.msg_control = cbuf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
    // SAFETY: the control buffer is 32 bytes, more than CMSG_SPACE(2) = 24, so the first
    // header and its data lie inside it; the write of the u16 is unaligned-safe.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_UDP;
        (*c).cmsg_type = UDP_SEGMENT;
        (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
    }
    // SAFETY: `msg` points at `ss`, `bufs` (IoSlice is ABI-compatible with iovec) and
    // `cbuf`, all live and only read during the call.
    cvt_size(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, libc::MSG_DONTWAIT) })
}

/// One receive with UDP GRO on: `buf` holds one datagram or a train of datagrams of
/// `seg` bytes each (the last may be shorter) from the same sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Train {
    pub len: usize,
    /// Size of each datagram when the kernel coalesced several (`UDP_GRO` cmsg).
    pub seg: Option<u16>,
    pub truncated: bool,
    pub from: SocketAddr,
}

/// Receives one datagram or GRO train; `Ok(None)` when nothing is queued.
pub fn recv_train(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<Train>> {
    let each = buf.len();
    let mut out = [None];
    Ok(if recv_trains(fd, buf, each, &mut out)? == 1 { out[0] } else { None })
}

/// Most messages one [`recv_trains`] call takes.
pub const MAX_RECV_BATCH: usize = 16;

/// Receives up to `out.len()` (at most [`MAX_RECV_BATCH`]) datagrams or GRO trains with
/// one recvmmsg(2): message `i` lands in `buf[i * each..(i + 1) * each]` and is
/// described by `out[i]` (`None` when its sender's address family is unknown). Returns
/// how many arrived, 0 when nothing is queued.
pub fn recv_trains(fd: BorrowedFd<'_>, buf: &mut [u8], each: usize, out: &mut [Option<Train>]) -> io::Result<usize> {
    let n = out.len().min(MAX_RECV_BATCH).min(buf.len().checked_div(each).unwrap_or(0));
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: sockaddr_storage and mmsghdr are plain old data; all-zero is valid.
    let mut addrs: [libc::sockaddr_storage; MAX_RECV_BATCH] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_RECV_BATCH] = unsafe { zeroed() };
    let mut cbufs = [[0u64; 8]; MAX_RECV_BATCH];
    let mut iovs = [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; MAX_RECV_BATCH];
    for (((m, a), c), (iov, b)) in msgs.iter_mut().zip(addrs.iter_mut()).zip(cbufs.iter_mut()).zip(iovs.iter_mut().zip(buf.chunks_exact_mut(each))).take(n) {
        *iov = libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() };
        m.msg_hdr.msg_name = (a as *mut libc::sockaddr_storage).cast();
        m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
        m.msg_hdr.msg_control = c.as_mut_ptr().cast();
        m.msg_hdr.msg_controllen = size_of::<[u64; 8]>();
    }
    // SAFETY: the first `n` headers point at their own address storage, control buffer
    // and iovec, each iovec at a distinct `each`-byte piece of `buf`, all live and
    // writable for the call; the count passed is `n`; no timeout.
    let r = unsafe { libc::recvmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT | libc::MSG_TRUNC, std::ptr::null_mut()) };
    let got = match cvt(r) {
        Ok(k) => (k as usize).min(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(0),
        Err(e) => return Err(e),
    };
    for ((o, m), a) in out.iter_mut().zip(&msgs).zip(&addrs).take(got) {
        *o = from_raw(a).map(|from| {
            let len = m.msg_len as usize;
            Train { len: len.min(each), seg: gro_size(&m.msg_hdr), truncated: len > each || m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0, from }
        });
    }
    Ok(got)
}

/// The datagram size of a GRO train, from the `UDP_GRO` control message.
fn gro_size(msg: &libc::msghdr) -> Option<u16> {
    let mut seg = None;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel just filled,
    // bounded by msg_controllen; the value is read unaligned from inside it.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                // The kernel writes an int; only the low 16 bits are a size.
                let v: libc::c_int = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                seg = u16::try_from(v).ok().filter(|&s| s > 0);
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    seg
}

/// Receives one datagram into `buf`: `Ok(None)` when nothing is queued; otherwise the
/// length (clamped to `buf`), whether it was truncated, and the sender.
pub fn recv_from(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<(usize, bool, SocketAddr)>> {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let mut slen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `buf` and `ss` are live and writable for their whole lengths.
    let r = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut slen,
        )
    };
    match cvt_size(r) {
        Ok(n) => Ok(from_raw(&ss).map(|a| (n.min(buf.len()), n > buf.len(), a))),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn gso_send_arrives_as_separate_datagrams() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = b.local_addr().unwrap();
        let data: Vec<u8> = (0..250u8).collect();
        assert_eq!(send_gso(a.as_fd(), &[IoSlice::new(&data[..30]), IoSlice::new(&data[30..])], 100, &to).unwrap(), 250);
        let mut got = Vec::new();
        let mut buf = [0u8; 2000];
        for _ in 0..200 {
            if let Some((n, _, _)) = recv_from(b.as_fd(), &mut buf).unwrap() {
                got.push(buf[..n].to_vec());
                if got.len() == 3 {
                    break;
                }
            } else {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 100, 50]);
        assert_eq!(got.concat(), data);
    }

    #[test]
    fn loopback_round_trip_v4_and_v6() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(a) = std::net::UdpSocket::bind(bind) else { continue };
            let b = std::net::UdpSocket::bind(bind).unwrap();
            let to = b.local_addr().unwrap();
            set_dont_fragment(a.as_fd(), to.is_ipv6(), true).unwrap();
            if to.is_ipv4() {
                set_no_checksum(a.as_fd(), true).unwrap();
            }
            assert_eq!(send_to(a.as_fd(), &[IoSlice::new(b"ab"), IoSlice::new(b"cd")], &to).unwrap(), 4);
            let mut buf = [0u8; 3];
            let mut got = None;
            for _ in 0..100 {
                if let Some(r) = recv_from(b.as_fd(), &mut buf).unwrap() {
                    got = Some(r);
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let (n, trunc, from) = got.expect("datagram");
            assert_eq!((n, trunc, from), (3, true, a.local_addr().unwrap()));
            assert_eq!(&buf, b"abc");
        }
    }

    #[test]
    fn one_call_takes_single_datagrams_and_gro_trains() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(a) = std::net::UdpSocket::bind(bind) else { continue };
            recv_trains_from(a, std::net::UdpSocket::bind(bind).unwrap());
        }
    }

    fn recv_trains_from(a: std::net::UdpSocket, b: std::net::UdpSocket) {
        set_gro(b.as_fd(), true).unwrap();
        let to = b.local_addr().unwrap();
        // Three single datagrams, then a GSO train of 4 x 100 + 20 (stays one skb on
        // loopback, so the GRO socket gets it as one train), then one that is too big.
        for d in [&b"one"[..], b"two!", b"three"] {
            send_to(a.as_fd(), &[IoSlice::new(d)], &to).unwrap();
        }
        let data: Vec<u8> = (0..420u32).map(|i| i as u8).collect();
        assert_eq!(send_gso(a.as_fd(), &[IoSlice::new(&data)], 100, &to).unwrap(), 420);
        send_to(a.as_fd(), &[IoSlice::new(&[7u8; 700])], &to).unwrap();
        let each = 512;
        let mut buf = vec![0u8; 8 * each];
        let mut out = [None; 8];
        let mut n = 0;
        for _ in 0..100 {
            n = recv_trains(b.as_fd(), &mut buf, each, &mut out).unwrap();
            if n > 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(n, 5, "all five messages in one call: {out:?}");
        let from = a.local_addr().unwrap();
        let t: Vec<Train> = out[..n].iter().map(|t| t.expect("an IPv4 sender")).collect();
        assert!(t.iter().all(|t| t.from == from));
        assert_eq!(
            t.iter().map(|t| (t.len, t.seg, t.truncated)).collect::<Vec<_>>(),
            [(3, None, false), (4, None, false), (5, None, false), (420, Some(100), false), (512, None, true)]
        );
        assert_eq!(&buf[..3], b"one");
        assert_eq!(&buf[each..each + 4], b"two!");
        assert_eq!(&buf[2 * each..2 * each + 5], b"three");
        assert_eq!(&buf[3 * each..3 * each + 420], &data[..]);
        assert_eq!(recv_trains(b.as_fd(), &mut buf, each, &mut out).unwrap(), 0, "nothing left");
    }
}
