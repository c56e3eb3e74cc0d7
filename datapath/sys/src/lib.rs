//! Every `unsafe` line of rvs: ioctls, socket options, epoll, eventfd, netlink sockets,
//! io_uring, fork. Each function here is a safe wrapper whose `unsafe` block carries a
//! `// SAFETY:` line (enforced by `clippy::undocumented_unsafe_blocks`).
//!
//! Rules: raw fds become `OwnedFd` the moment a syscall returns them; everything is
//! opened with `O_CLOEXEC` and, where it carries packets, `O_NONBLOCK`; interface names
//! are checked against IFNAMSIZ before they reach the kernel. Errors come back as
//! `std::io::Error` from `errno`; callers add the operation and its argument.

pub mod alloc_count;
pub mod epoll;
pub mod netdev;
pub mod netlink;
pub mod packet;
pub mod process;
pub mod tc;
pub mod tun;
pub mod udp;
pub mod uring;

use std::io::{self, IoSlice};
use std::mem::zeroed;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// The text of an OS error as strerror(3) gives it, without Rust's " (os error N)"
/// suffix: what OVS prints, and so what rvs's messages say.
pub fn strerror(e: &io::Error) -> String {
    let msg = e.to_string();
    match msg.find(" (os error") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    }
}

/// Bytes of `struct virtio_net_hdr` without `num_buffers` (the header a tap or an
/// AF_PACKET socket with PACKET_VNET_HDR puts before each frame).
pub const VIRTIO_NET_HDR_LEN: usize = 10;

/// Turns a `-1` return into the current `errno`.
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// Same for `ssize_t` returns.
fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r as usize) }
}

static PLAIN_IO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes ports opened from now on use plain system calls only: no io_uring for tap
/// writes, no receive rings on AF_PACKET sockets (`rvs-vswitchd --plain-io`).
pub fn set_plain_io(on: bool) {
    PLAIN_IO.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`set_plain_io`] is on.
pub fn plain_io() -> bool {
    PLAIN_IO.load(std::sync::atomic::Ordering::Relaxed)
}

/// Most messages one [`send_many`] call takes.
pub const MAX_SEND_BATCH: usize = 32;

/// Sends up to [`MAX_SEND_BATCH`] messages with one sendmmsg(2), without blocking:
/// message `i` is gathered from `iovs[i * per..(i + 1) * per]` and goes to `to` (a raw
/// socket address and its length) or, without one, where the socket is bound. Returns
/// how many left, in order. When that is fewer than asked, the next message failed and
/// the kernel dropped its error: send it alone to learn it. `Err` when the first failed.
fn send_many(fd: BorrowedFd<'_>, iovs: &[IoSlice<'_>], per: usize, to: Option<(&libc::sockaddr_storage, libc::socklen_t)>) -> io::Result<usize> {
    let n = iovs.len().checked_div(per).unwrap_or(0).min(MAX_SEND_BATCH);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
    let mut msgs: [libc::mmsghdr; MAX_SEND_BATCH] = unsafe { zeroed() };
    for (i, m) in msgs.iter_mut().take(n).enumerate() {
        m.msg_hdr.msg_iov = iovs[i * per..(i + 1) * per].as_ptr() as *mut libc::iovec;
        m.msg_hdr.msg_iovlen = per;
        if let Some((ss, len)) = to {
            m.msg_hdr.msg_name = (ss as *const libc::sockaddr_storage) as *mut libc::c_void;
            m.msg_hdr.msg_namelen = len;
        }
    }
    // SAFETY: the first `n` headers point at distinct live iovec runs of `iovs` (IoSlice
    // is ABI-compatible with iovec) and at `to`, all only read during the call; the
    // count passed is `n`.
    let r = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
    Ok((cvt(r)? as usize).min(n))
}

/// Takes ownership of a fd a syscall just returned.
fn owned(fd: RawFd) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: `fd` was just returned by a successful syscall that creates a new
    // descriptor, so nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct ifreq` with only the members rvs uses: the name and 24 bytes of union.
#[repr(C)]
#[derive(Clone, Copy)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> io::Result<IfReq> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut r = IfReq { name: [0; libc::IFNAMSIZ], data: [0; 24] };
        r.name[..b.len()].copy_from_slice(b);
        Ok(r)
    }

    fn name(&self) -> String {
        let end = self.name.iter().position(|&c| c == 0).unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }

    fn short(&self) -> i16 {
        i16::from_ne_bytes([self.data[0], self.data[1]])
    }

    fn set_short(&mut self, v: i16) {
        self.data[..2].copy_from_slice(&v.to_ne_bytes());
    }

    fn int(&self) -> i32 {
        i32::from_ne_bytes([self.data[0], self.data[1], self.data[2], self.data[3]])
    }

    fn set_int(&mut self, v: i32) {
        self.data[..4].copy_from_slice(&v.to_ne_bytes());
    }
}

/// ioctl(fd, req, &mut ifreq)
fn ioctl_ifreq(fd: RawFd, req: libc::Ioctl, ifr: &mut IfReq) -> io::Result<()> {
    // SAFETY: `ifr` points to a live, properly sized `struct ifreq` (40 bytes, the
    // kernel's layout: 16-byte name, 24-byte union) for the duration of the call;
    // every request passed here reads and/or writes only that struct.
    cvt(unsafe { libc::ioctl(fd, req, ifr as *mut IfReq) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_layout_and_names() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        assert!(IfReq::new("").is_err());
        assert!(IfReq::new("0123456789abcdef").is_err());
        assert_eq!(IfReq::new("vm1").unwrap().name(), "vm1");
        let mut r = IfReq::new("x").unwrap();
        r.set_short(-2);
        assert_eq!(r.short(), -2);
        r.set_int(1500);
        assert_eq!(r.int(), 1500);
    }
}
