//! A NETLINK_ROUTE socket subscribed to link events, and a parser for the two messages
//! rvs cares about (RTM_NEWLINK, RTM_DELLINK).

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{cvt, cvt_size, owned};

/// Opens a (blocking) netlink socket that receives link add/change/delete events of
/// this network namespace.
pub fn link_monitor() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked and owned at once.
    let fd = owned(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) })?;
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
    let mut sa: libc::sockaddr_nl = unsafe { zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = libc::RTMGRP_LINK as u32;
    // SAFETY: `sa` is a valid sockaddr_nl and the length passed is its size.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (&sa as *const libc::sockaddr_nl).cast(), size_of::<libc::sockaddr_nl>() as u32) })?;
    Ok(fd)
}

/// Waits for and reads one datagram (several messages) from the socket.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is live and writable for its whole length.
    cvt_size(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) })
}

/// A link event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    pub deleted: bool,
    pub ifindex: u32,
    pub name: Option<String>,
}

/// Parses the link messages of one netlink datagram; anything else is skipped.
/// Never panics on malformed input.
pub fn parse_link_events(buf: &[u8]) -> Vec<LinkEvent> {
    const NLMSG_HDR: usize = 16;
    const IFINFO: usize = 16;
    let mut out = Vec::new();
    let mut off = 0;
    while off + NLMSG_HDR <= buf.len() {
        let len = u32::from_ne_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]]) as usize;
        let ty = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
        if len < NLMSG_HDR || off + len > buf.len() {
            break;
        }
        if (ty == libc::RTM_NEWLINK || ty == libc::RTM_DELLINK) && len >= NLMSG_HDR + IFINFO {
            let m = &buf[off + NLMSG_HDR..off + len];
            let ifindex = i32::from_ne_bytes([m[4], m[5], m[6], m[7]]) as u32;
            let mut name = None;
            let mut a = IFINFO;
            while a + 4 <= m.len() {
                let alen = u16::from_ne_bytes([m[a], m[a + 1]]) as usize;
                let aty = u16::from_ne_bytes([m[a + 2], m[a + 3]]);
                if alen < 4 || a + alen > m.len() {
                    break;
                }
                if aty == libc::IFLA_IFNAME {
                    let v = &m[a + 4..a + alen];
                    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                    name = Some(String::from_utf8_lossy(&v[..end]).into_owned());
                }
                a += (alen + 3) & !3;
            }
            out.push(LinkEvent { deleted: ty == libc::RTM_DELLINK, ifindex, name });
        }
        off += (len + 3) & !3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dellink_and_ignores_garbage() {
        let mut m = vec![0u8; 16 + 16];
        let name = b"vm1\0";
        let attr_len = 4 + name.len();
        m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        m.extend_from_slice(&libc::IFLA_IFNAME.to_ne_bytes());
        m.extend_from_slice(name);
        let total = m.len() as u32;
        m[0..4].copy_from_slice(&total.to_ne_bytes());
        m[4..6].copy_from_slice(&libc::RTM_DELLINK.to_ne_bytes());
        m[16 + 4..16 + 8].copy_from_slice(&7i32.to_ne_bytes());
        assert_eq!(parse_link_events(&m), vec![LinkEvent { deleted: true, ifindex: 7, name: Some("vm1".into()) }]);
        assert!(parse_link_events(&m[..20]).is_empty());
        assert!(parse_link_events(&[0xff; 40]).is_empty());
    }
}
