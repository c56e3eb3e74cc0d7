//! Network device queries and settings by name: index, flags, MTU, MAC address.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use std::mem::size_of;

use super::{IfReq, cvt, ioctl_ifreq, owned};

fn ctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked and owned at once.
    owned(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
}

fn ifreq_get(name: &str, req: libc::Ioctl) -> io::Result<IfReq> {
    let s = ctl_socket()?;
    let mut ifr = IfReq::new(name)?;
    ioctl_ifreq(s.as_raw_fd(), req, &mut ifr)?;
    Ok(ifr)
}

/// The ifindex of device `name` in this network namespace (`ENODEV` if none).
pub fn ifindex(name: &str) -> io::Result<u32> {
    Ok(ifreq_get(name, libc::SIOCGIFINDEX)?.int() as u32)
}

/// Device flags (`IFF_UP`, `IFF_RUNNING`, `IFF_LOWER_UP`, …).
pub fn flags(name: &str) -> io::Result<u32> {
    Ok(ifreq_get(name, libc::SIOCGIFFLAGS)?.short() as u16 as u32)
}

/// Sets or clears `IFF_UP`.
pub fn set_up(name: &str, up: bool) -> io::Result<()> {
    let s = ctl_socket()?;
    let mut ifr = IfReq::new(name)?;
    ioctl_ifreq(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr)?;
    let f = ifr.short();
    let nf = if up { f | libc::IFF_UP as i16 } else { f & !(libc::IFF_UP as i16) };
    if nf != f {
        ifr.set_short(nf);
        ioctl_ifreq(s.as_raw_fd(), libc::SIOCSIFFLAGS, &mut ifr)?;
    }
    Ok(())
}

/// The link speed in Mbit/s that ethtool reports (`ETHTOOL_GSET`): `None` when the
/// device does not say (`SPEED_UNKNOWN`, or no ethtool support).
pub fn speed_mbps(name: &str) -> io::Result<Option<u32>> {
    const ETHTOOL_GSET: u32 = 1;
    // struct ethtool_cmd: 44 bytes; speed at 12 (u16), speed_hi at 28 (u16).
    let mut cmd = [0u32; 11];
    cmd[0] = ETHTOOL_GSET;
    let s = ctl_socket()?;
    let mut ifr = IfReq::new(name)?;
    ifr.data[..size_of::<usize>()].copy_from_slice(&(cmd.as_mut_ptr() as usize).to_ne_bytes());
    // SAFETY: `ifr` is a live `struct ifreq` whose data member points at `cmd`, a live,
    // writable 44-byte `struct ethtool_cmd` (u32-aligned), for the duration of the call;
    // SIOCETHTOOL with ETHTOOL_GSET reads and writes only those two.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr as *mut IfReq) })?;
    let b: Vec<u8> = cmd.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let speed = u32::from(u16::from_ne_bytes([b[12], b[13]])) | (u32::from(u16::from_ne_bytes([b[28], b[29]])) << 16);
    Ok((speed != 0 && speed != u32::MAX).then_some(speed))
}

pub fn mtu(name: &str) -> io::Result<u32> {
    Ok(ifreq_get(name, libc::SIOCGIFMTU)?.int() as u32)
}

/// A socket for device queries inside network namespace `ns` (a device moved into a
/// VM's namespace is found by name only there): keep it to query that namespace again.
pub fn ctl_socket_in(ns: std::os::fd::BorrowedFd<'_>) -> io::Result<OwnedFd> {
    super::tun::in_netns(ns, ctl_socket)
}

/// The MTU of device `name` in the namespace of socket `s` ([`ctl_socket_in`]).
pub fn mtu_via(s: std::os::fd::BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut ifr = IfReq::new(name)?;
    ioctl_ifreq(s.as_raw_fd(), libc::SIOCGIFMTU, &mut ifr)?;
    Ok(ifr.int() as u32)
}

pub fn set_mtu(name: &str, mtu: u32) -> io::Result<()> {
    let s = ctl_socket()?;
    let mut ifr = IfReq::new(name)?;
    ifr.set_int(mtu as i32);
    ioctl_ifreq(s.as_raw_fd(), libc::SIOCSIFMTU, &mut ifr)
}

/// The device's MAC address.
pub fn hwaddr(name: &str) -> io::Result<[u8; 6]> {
    let r = ifreq_get(name, libc::SIOCGIFHWADDR)?;
    // struct sockaddr: sa_family (2 bytes), then sa_data with the address.
    let mut m = [0u8; 6];
    m.copy_from_slice(&r.data[2..8]);
    Ok(m)
}

pub fn set_hwaddr(name: &str, mac: [u8; 6]) -> io::Result<()> {
    let s = ctl_socket()?;
    let mut ifr = IfReq::new(name)?;
    ifr.data[..2].copy_from_slice(&(libc::ARPHRD_ETHER).to_ne_bytes());
    ifr.data[2..8].copy_from_slice(&mac);
    ioctl_ifreq(s.as_raw_fd(), libc::SIOCSIFHWADDR, &mut ifr)
}

pub use libc::{IFF_LOWER_UP, IFF_RUNNING, IFF_UP};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_there() {
        // Every network namespace has "lo" with index 1, MTU 65536 and an all-zero MAC.
        assert!(ifindex("lo").unwrap() >= 1);
        assert!(mtu("lo").unwrap() >= 1280);
        assert_eq!(hwaddr("lo").unwrap(), [0; 6]);
        assert_eq!(ifindex("rvs-no-such-if").unwrap_err().raw_os_error(), Some(libc::ENODEV));
        assert!(ifindex("this-name-is-too-long").is_err());
    }
}
