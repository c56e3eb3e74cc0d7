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

/// `SIOCETHTOOL` with `cmd` (a `struct ethtool_*` as u32 words, its command first),
/// which the kernel reads and fills in place.
fn ethtool(name: &str, cmd: &mut [u32]) -> io::Result<()> {
    let s = ctl_socket()?;
    let mut ifr = IfReq::new(name)?;
    ifr.data[..size_of::<usize>()].copy_from_slice(&(cmd.as_mut_ptr() as usize).to_ne_bytes());
    // SAFETY: `ifr` is a live `struct ifreq` whose data member points at `cmd`, a live,
    // writable, u32-aligned buffer for the duration of the call; each command rvs
    // passes (ETHTOOL_GLINK: 8 bytes, ETHTOOL_GSET: 44) reads and writes only its own
    // struct, which `cmd` is sized for by its callers.
    cvt(unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCETHTOOL, &mut ifr as *mut IfReq) }).map(drop)
}

/// The link state `bond-detect-mode=miimon` polls, as OVS reads it: the PHY's basic
/// status register (SIOCGMIIPHY, then SIOCGMIIREG of register 1, link bit 0x0004);
/// a device without MII (veths, taps, most virtual NICs) answers through ethtool's
/// ETHTOOL_GLINK (the driver's link state) instead.
pub fn mii_link(name: &str) -> io::Result<bool> {
    const MII_BMSR: u16 = 1;
    const BMSR_LSTATUS: u16 = 0x0004;
    const ETHTOOL_GLINK: u32 = 0x0000_000a;
    let s = ctl_socket()?;
    // struct mii_ioctl_data { phy_id, reg_num, val_in, val_out: u16 } sits in the
    // union; SIOCGMIIPHY fills phy_id for the SIOCGMIIREG that follows.
    let mut ifr = IfReq::new(name)?;
    if ioctl_ifreq(s.as_raw_fd(), libc::SIOCGMIIPHY, &mut ifr).is_ok() {
        ifr.data[2..4].copy_from_slice(&MII_BMSR.to_ne_bytes());
        if ioctl_ifreq(s.as_raw_fd(), libc::SIOCGMIIREG, &mut ifr).is_ok() {
            return Ok(u16::from_ne_bytes([ifr.data[6], ifr.data[7]]) & BMSR_LSTATUS != 0);
        }
    }
    // struct ethtool_value { cmd, data: u32 }.
    let mut value = [ETHTOOL_GLINK, 0u32];
    ethtool(name, &mut value)?;
    Ok(value[1] != 0)
}

/// The link speed in Mbit/s that ethtool reports (`ETHTOOL_GSET`): `None` when the
/// device does not say (`SPEED_UNKNOWN`, or no ethtool support).
pub fn speed_mbps(name: &str) -> io::Result<Option<u32>> {
    const ETHTOOL_GSET: u32 = 1;
    // struct ethtool_cmd: 44 bytes; speed at 12 (u16), speed_hi at 28 (u16).
    let mut cmd = [0u32; 11];
    cmd[0] = ETHTOOL_GSET;
    ethtool(name, &mut cmd)?;
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
