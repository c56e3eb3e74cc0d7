//! Software completion of virtio-net offloads, for an egress that cannot take them.
//!
//! A guest behind a tap with `TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6` hands rvs frames whose
//! TCP/UDP checksum is only partial (`NEEDS_CSUM`) and TCP streams as 64 KB GSO frames.
//! Between offload-capable ports they pass unchanged; this module finishes the work for
//! the others (perf-notes lever 1 and 2):
//!
//! * [`complete_checksum`]: fills in a partial checksum;
//! * [`Segmenter`]: cuts a GSO frame (`GSO_TCPV4`, `GSO_TCPV6`, `GSO_UDP_L4`) into
//!   wire-sized segments, each written into a caller's buffer after a headroom of the
//!   caller's choice and starting at L2 or L3, so the VXLAN sender can put its own
//!   headers in front and hand a run of equal-sized segments to `UDP_SEGMENT`;
//! * [`Coalescer`]: the reverse for the VXLAN receive side: consecutive in-order TCP
//!   segments of one flow become one GSO frame for the tap, as Linux GRO does.
//!
//! Split by concern: `layout` (where a frame's headers are, checked once), `segment`
//! ([`Segmenter`]), `coalesce` ([`Coalescer`]).
//!
//! The input is an Ethernet frame with at most one 802.1Q tag (TPID 0x8100). Everything
//! is pure: no I/O, no clock, no allocation. Nothing here panics on any input bytes or
//! header values: every malformed frame is an [`OffloadError`] (a counted drop for the
//! caller) or, for the coalescer, a frame passed through untouched.
//!
//! What segmentation does per segment follows Linux `tcp_gso_segment`/`inet_gso_segment`:
//! the L2+L3+L4 headers are copied, the IPv4 total length and header checksum are
//! rewritten and the identification incremented per segment (virtio has no "fixed ID"
//! GSO type), the IPv6 payload length rewritten, the TCP sequence number advanced,
//! FIN and PSH kept only on the last segment and CWR only on the first, and the TCP/UDP
//! checksum computed in full.

mod coalesce;
mod layout;
mod segment;
#[cfg(test)]
mod tests;

pub use coalesce::{Coalescer, Emit, MAX_COALESCED, Offer};
pub use segment::{Layer, Segmenter};

use crate::wire::Truncated;
use crate::wire::checksum;
use crate::wire::ethernet::EtherType;
use crate::wire::ipv4::{IpProtocol, Ipv4Error};
use crate::wire::ipv6::Ipv6Error;
use crate::wire::tcp::TcpError;
use crate::wire::udp::UdpError;
use crate::wire::virtio_net_hdr::VnetHdr;
use crate::wire::vlan;

/// Why a frame's offload state cannot be completed in software. Each is a counted drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("frame too short for its Ethernet header or 802.1Q tag")]
    Truncated,
    #[error("EtherType {0:#06x} is not IPv4 or IPv6")]
    NotIp(u16),
    #[error(transparent)]
    Ipv4(#[from] Ipv4Error),
    #[error(transparent)]
    Ipv6(#[from] Ipv6Error),
    #[error(transparent)]
    Tcp(#[from] TcpError),
    #[error(transparent)]
    Udp(#[from] UdpError),
    #[error("IPv4 fragment cannot carry a GSO frame")]
    Fragment,
    #[error("IP protocol {0:?} does not directly follow the IP header as TCP or UDP")]
    Transport(IpProtocol),
    #[error("frame is not GSO")]
    NotGso,
    #[error("gso_type {0:#04x} is not supported")]
    UnsupportedGso(u8),
    #[error("gso_type {0:#04x} does not match the frame's headers")]
    GsoMismatch(u8),
    #[error("gso_size is 0")]
    ZeroGsoSize,
    #[error("csum_start {start} / csum_offset {offset} do not point at the L4 checksum")]
    BadCsum { start: u16, offset: u16 },
    #[error("hdr_len {hdr_len} is beyond the {len}-byte frame")]
    BadHdrLen { hdr_len: u16, len: usize },
    #[error("output buffer of {have} bytes, {need} needed")]
    NoRoom { need: usize, have: usize },
}

impl From<Truncated> for OffloadError {
    fn from(_: Truncated) -> OffloadError {
        OffloadError::Truncated
    }
}

/// Completes a partial checksum (`NEEDS_CSUM`) in place: the checksum of
/// `frame[csum_start..]` goes to `csum_start + csum_offset`. A frame without
/// `NEEDS_CSUM` is left alone. Afterwards the frame goes out with `VnetHdr::default()`.
/// A GSO frame needs [`Segmenter`] instead: its checksum is per segment.
pub fn complete_checksum(frame: &mut [u8], vnet: &VnetHdr) -> Result<(), OffloadError> {
    if !vnet.needs_csum() {
        return Ok(());
    }
    let (start, offset) = (vnet.csum_start, vnet.csum_offset);
    // The checksummed part starts after the Ethernet header and its tags: a guest's
    // header pointing inside them would have the switch write over the addresses or a
    // VLAN tag it pushed (a way to hop VLANs), so it is refused.
    if usize::from(start) < l2_len(frame) {
        return Err(OffloadError::BadCsum { start, offset });
    }
    if checksum::complete(frame, usize::from(start), usize::from(offset)) { Ok(()) } else { Err(OffloadError::BadCsum { start, offset }) }
}

/// Bytes of the Ethernet header and the 802.1Q/802.1ad tags after it.
fn l2_len(frame: &[u8]) -> usize {
    let mut at = vlan::TPID_OFFSET;
    while let Some(t) = frame.get(at..at + 2)
        && matches!(EtherType::from(u16::from_be_bytes([t[0], t[1]])), EtherType::Vlan | EtherType::QinQ)
    {
        at += vlan::TAG_LEN;
    }
    at + 2
}
