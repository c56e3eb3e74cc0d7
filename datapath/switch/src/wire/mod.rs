//! Wire formats: one file per header.
//!
//! Each header has a checked view over a byte buffer (`Frame<T: AsRef<[u8]>>` style, after
//! smoltcp): `new_checked` verifies once that the buffer is long enough for every field
//! the accessors read, after which accessors index without further checks and **never
//! panic**. `new_unchecked` exists for callers that have already checked (and for
//! building headers in place); accessors on an unchecked view may panic if the buffer is
//! short, which is the caller's bug. Where a header has a validated, owned form there is
//! a `Repr` with `parse` (view -> Repr) and `emit` (Repr -> bytes).
//!
//! Wire enums keep unknown values (`EtherType::Unknown(u16)`), so parsing never fails on
//! something new. Multi-byte fields are network byte order unless the file says
//! otherwise (the virtio-net header is host order).

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod lacp;
pub mod tcp;
pub mod udp;
pub mod virtio_net_hdr;
pub mod vlan;
pub mod vxlan;

/// A buffer was too short for the header it was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("truncated header")]
pub struct Truncated;

/// Reads a big-endian u16 at `at`. Callers have checked the length.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Writes a big-endian u16 at `at`. Callers have checked the length.
#[inline]
pub(crate) fn put_be16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}
