//! Tap devices (`/dev/net/tun`): create/attach, more queues for a tap that has moved
//! to another network namespace, virtio-net header size, offloads, persistence, and the
//! "still attached?" check.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use super::{IfReq, cvt, ioctl_ifreq};

/// Offload flags for [`set_offload`] (`TUN_F_*`).
pub use libc::{TUN_F_CSUM, TUN_F_TSO_ECN, TUN_F_TSO4, TUN_F_TSO6, TUN_F_USO4, TUN_F_USO6};

/// Opens `/dev/net/tun` (non-blocking, close-on-exec) and attaches it to tap `name`,
/// creating the device if it does not exist. The device carries frames without packet
/// info and, when `vnet_hdr`, with a virtio-net header in front of each frame. With
/// `multi_queue` the device is (or must already be) a multi-queue tap and each call
/// attaches one more queue. Returns the file and the device's name.
pub fn open_tap(name: &str, vnet_hdr: bool, multi_queue: bool) -> io::Result<(File, String)> {
    let mut ifr = IfReq::new(name)?;
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
    if vnet_hdr {
        flags |= libc::IFF_VNET_HDR;
    }
    if multi_queue {
        flags |= libc::IFF_MULTI_QUEUE;
    }
    ifr.set_short(flags as i16);
    let f = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC).open("/dev/net/tun")?;
    ioctl_ifreq(f.as_raw_fd(), libc::TUNSETIFF, &mut ifr)?;
    Ok((f, ifr.name()))
}

/// `TUNGETDEVNETNS` (`_IO('T', 227)`): a new fd of the network namespace the device
/// is in now.
const TUNGETDEVNETNS: libc::Ioctl = 0x54e3;

/// The network namespace the device `fd` is attached to is in now, as a new fd.
pub fn device_netns(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: TUNGETDEVNETNS takes no argument; it returns a new fd or -1.
    let raw = cvt(unsafe { libc::ioctl(fd.as_raw_fd(), TUNGETDEVNETNS) })?;
    // SAFETY: the ioctl just returned `raw`, a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Identity of a network namespace (device and inode of its nsfs file): equal for two
/// fds or paths of the same namespace, stable while the namespace lives.
pub fn netns_id(ns: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let m = File::from(ns.try_clone_to_owned()?).metadata()?;
    Ok((m.dev(), m.ino()))
}

/// The calling thread's network namespace identity.
pub fn own_netns_id() -> io::Result<(u64, u64)> {
    let m = std::fs::metadata("/proc/thread-self/ns/net")?;
    Ok((m.dev(), m.ino()))
}

/// [`open_tap`] inside network namespace `ns` (an fd from [`device_netns`], or an open
/// `/run/netns/NAME` or `/proc/PID/ns/net`): from a short-lived thread that enters
/// it, unless it is the caller's own. The file works from any thread afterwards. With
/// `existing_only`, a device of that name must already be there (checked first; a tap
/// the call would have to create is refused with `ENODEV`).
pub fn open_tap_in(ns: BorrowedFd<'_>, name: &str, vnet_hdr: bool, multi_queue: bool, existing_only: bool) -> io::Result<(File, String)> {
    let open = || {
        if existing_only {
            super::netdev::ifindex(name)?;
        }
        open_tap(name, vnet_hdr, multi_queue)
    };
    in_netns(ns, open)
}

/// Runs `f` inside network namespace `ns`: at once when it is the caller's own, else
/// on a short-lived thread that enters it (what `f` opens stays in that namespace and
/// works from any thread afterwards).
pub fn in_netns<T: Send>(ns: BorrowedFd<'_>, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    if netns_id(ns)? == own_netns_id()? {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            super::process::enter_netns(ns)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("a thread working in another network namespace panicked")))
    })
}

/// Attaches one more queue to the multi-queue tap that `fd` is attached to, wherever
/// the device is now: it may have been moved into another network namespace (a VM's)
/// and renamed there.
pub fn attach_queue(fd: BorrowedFd<'_>, vnet_hdr: bool) -> io::Result<File> {
    let name = attached_name(fd)?;
    let ns = device_netns(fd)?;
    open_tap_in(ns.as_fd(), &name, vnet_hdr, true, true).map(|(f, _)| f)
}

fn ioctl_int_ptr(fd: RawFd, req: libc::Ioctl, v: &mut libc::c_int) -> io::Result<()> {
    // SAFETY: `v` is a live c_int; the TUN requests passed here read or write one int.
    cvt(unsafe { libc::ioctl(fd, req, v as *mut libc::c_int) }).map(drop)
}

/// Sets the virtio-net header length the tap reads and writes (10 or 12).
pub fn set_vnet_hdr_size(fd: BorrowedFd<'_>, len: i32) -> io::Result<()> {
    let mut v = len;
    ioctl_int_ptr(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &mut v)
}

/// Declares which offloads rvs accepts in frames it reads from the tap (`TUNSETOFFLOAD`).
/// The kernel refuses (EINVAL) flags it does not know; callers probe.
pub fn set_offload(fd: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long), no pointer.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, flags as libc::c_ulong) }).map(drop)
}

/// Makes the device outlive (or not) the last fd attached to it.
pub fn set_persist(fd: BorrowedFd<'_>, persist: bool) -> io::Result<()> {
    // SAFETY: TUNSETPERSIST takes its argument by value.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETPERSIST, persist as libc::c_ulong) }).map(drop)
}

/// The name of the device the fd is attached to. Fails with `EBADFD` once the device
/// has been deleted (the fd is then detached for good).
pub fn attached_name(fd: BorrowedFd<'_>) -> io::Result<String> {
    let mut ifr = IfReq::new("x")?;
    ifr.name = [0; libc::IFNAMSIZ];
    ioctl_ifreq(fd.as_raw_fd(), libc::TUNGETIFF, &mut ifr)?;
    Ok(ifr.name())
}

/// Whether an error from a tap fd means the device is gone.
pub fn is_detached(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBADFD) | Some(libc::ENODEV) | Some(libc::ENXIO))
}
