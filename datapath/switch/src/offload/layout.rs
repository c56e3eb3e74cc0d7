//! Where the headers of a TCP or UDP over IPv4/IPv6 frame are, validated once and
//! shared by the segmenter and the coalescer.

use std::net::IpAddr;

use crate::wire::ethernet::{self, EtherType, EthernetFrame};
use crate::wire::ipv4::{self, IpProtocol, Ipv4Error, Ipv4Packet};
use crate::wire::ipv6::{self, Ipv6Error, Ipv6Packet};
use crate::wire::tcp::TcpPacket;
use crate::wire::udp::{self, UdpError, UdpPacket};
use crate::wire::vlan::{self, VlanHeader};

use super::OffloadError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum L4 {
    Tcp,
    Udp,
}

/// Where the headers of a TCP or UDP over IPv4/IPv6 frame are. Invariant (checked by
/// [`Layout::of`]): `l3 < l4 <= hdrs <= end <= frame.len()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layout {
    /// Start of the IP header: 14, or 18 behind an 802.1Q tag.
    pub(super) l3: usize,
    /// Start of the TCP/UDP header.
    pub(super) l4: usize,
    /// End of the TCP/UDP header: where the payload starts.
    pub(super) hdrs: usize,
    /// End of the IP datagram (Ethernet padding after it is not part of it).
    pub(super) end: usize,
    pub(super) v6: bool,
    pub(super) proto: L4,
}

impl Layout {
    pub(super) fn of(frame: &[u8]) -> Result<Layout, OffloadError> {
        let eth = EthernetFrame::new_checked(frame)?;
        let (l3, ethertype) = match eth.ethertype() {
            EtherType::Vlan => {
                let tag = VlanHeader::new_checked(eth.payload())?;
                (ethernet::HEADER_LEN + vlan::TAG_LEN, tag.inner_ethertype())
            }
            t => (ethernet::HEADER_LEN, t),
        };
        let (v6, l4, end, protocol) = match ethertype {
            EtherType::Ipv4 => {
                let ip = Ipv4Packet::new_checked(&frame[l3..])?;
                if ip.version() != 4 {
                    return Err(Ipv4Error::Version(ip.version()).into());
                }
                if ip.is_fragment() {
                    return Err(OffloadError::Fragment);
                }
                (false, l3 + ip.header_len(), l3 + usize::from(ip.total_len()), ip.protocol())
            }
            EtherType::Ipv6 => {
                let ip = Ipv6Packet::new_checked(&frame[l3..]).map_err(Ipv6Error::from)?;
                if ip.version() != 6 {
                    return Err(Ipv6Error::Version(ip.version()).into());
                }
                let l4 = l3 + ipv6::HEADER_LEN;
                (true, l4, l4 + usize::from(ip.payload_len()), ip.next_header())
            }
            t => return Err(OffloadError::NotIp(t.into())),
        };
        let seg = &frame[l4..end];
        let (proto, hdrs) = match protocol {
            IpProtocol::Tcp => (L4::Tcp, l4 + TcpPacket::new_checked(seg)?.header_len()),
            IpProtocol::Udp => {
                let u = UdpPacket::new_checked(seg)?;
                if usize::from(u.length()) != seg.len() {
                    return Err(UdpError::BadLength(u.length()).into());
                }
                (L4::Udp, l4 + udp::HEADER_LEN)
            }
            p => return Err(OffloadError::Transport(p)),
        };
        Ok(Layout { l3, l4, hdrs, end, v6, proto })
    }

    pub(super) fn protocol(&self) -> IpProtocol {
        match self.proto {
            L4::Tcp => IpProtocol::Tcp,
            L4::Udp => IpProtocol::Udp,
        }
    }

    /// The pseudo-header sum with a zero length (the length is added per segment).
    pub(super) fn pseudo_base(&self, frame: &[u8]) -> u32 {
        let (ip, proto) = (&frame[self.l3..], self.protocol());
        if self.v6 {
            let ip = Ipv6Packet::new_unchecked(ip);
            ipv6::pseudo_header_sum(&ip.src_addr(), &ip.dst_addr(), proto, 0)
        } else {
            let ip = Ipv4Packet::new_unchecked(ip);
            ipv4::pseudo_header_sum(ip.src_addr(), ip.dst_addr(), proto, 0)
        }
    }

    /// The IP addresses of the frame, for the checksum helpers of the wire views.
    pub(super) fn addrs(&self, frame: &[u8]) -> (IpAddr, IpAddr) {
        let ip = &frame[self.l3..];
        if self.v6 {
            let ip = Ipv6Packet::new_unchecked(ip);
            (ip.src_addr().into(), ip.dst_addr().into())
        } else {
            let ip = Ipv4Packet::new_unchecked(ip);
            (ip.src_addr().into(), ip.dst_addr().into())
        }
    }

    /// The largest datagram the IP length field can describe for this frame.
    pub(super) fn max_end(&self) -> usize {
        let max_ip = if self.v6 { ipv6::HEADER_LEN + 65535 } else { 65535 };
        self.l3 + max_ip
    }
}
