//! Packet buffers with headroom.
//!
//! A [`PacketBuf`] is allocated once per worker (never per packet) and reused for every
//! frame it receives. The frame sits at an offset inside the allocation, so headers can
//! be pushed in front of it (an 802.1Q tag, outer VXLAN headers) and popped off without
//! moving the payload: a tag push moves only the 12 MAC bytes.
//!
//! Invariants: `HEADROOM_MIN <= head <= tail <= data.len()` after every operation
//! except that pushes may consume headroom down to 0; operations that would break the
//! bounds return `false`/`None` instead of panicking.

use crate::types::VlanId;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::virtio_net_hdr::VnetHdr;
use crate::wire::vlan;

/// Room kept in front of a received frame: enough for a vnet header (12), an 802.1Q tag
/// (4) and outer IPv6 + UDP + VXLAN + Ethernet (70), rounded up.
pub const HEADROOM: usize = 128;
/// Largest frame a buffer holds: a 64 KiB GSO frame plus its L2 headers.
pub const MAX_FRAME: usize = 65535 + 64;

/// A reusable frame buffer with headroom and the frame's offload metadata.
pub struct PacketBuf {
    data: Box<[u8]>,
    head: usize,
    tail: usize,
    /// Offload state that arrived with the frame (or `default()` for none).
    pub vnet: VnetHdr,
}

impl Default for PacketBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketBuf {
    /// A buffer that can receive a frame of up to [`MAX_FRAME`] bytes.
    pub fn new() -> PacketBuf {
        Self::with_capacity(MAX_FRAME)
    }

    /// A buffer for frames of up to `cap` bytes.
    pub fn with_capacity(cap: usize) -> PacketBuf {
        PacketBuf { data: vec![0u8; HEADROOM + cap].into_boxed_slice(), head: HEADROOM, tail: HEADROOM, vnet: VnetHdr::default() }
    }

    /// A buffer holding a copy of `frame` (tests, slow paths).
    pub fn from_frame(frame: &[u8]) -> PacketBuf {
        let mut p = Self::with_capacity(frame.len().max(64));
        p.tail = p.head + frame.len();
        p.frame_mut().copy_from_slice(frame);
        p
    }

    /// Resets the buffer for a new receive and returns the writable area after the
    /// headroom. Call [`PacketBuf::set_len`] with the number of bytes received.
    #[inline]
    pub fn rx_area(&mut self) -> &mut [u8] {
        self.head = HEADROOM;
        self.tail = HEADROOM;
        self.vnet = VnetHdr::default();
        &mut self.data[HEADROOM..]
    }

    /// Like [`PacketBuf::rx_area`], but the area starts `prefix` bytes early, in the
    /// headroom, so one read fills a header that precedes the frame (a virtio-net
    /// header) and the frame behind it: one buffer, no iovec to import. Call
    /// [`PacketBuf::set_len`] with the bytes received less `prefix`; the header is then
    /// [`PacketBuf::rx_prefix`].
    #[inline]
    pub fn rx_area_after(&mut self, prefix: usize) -> &mut [u8] {
        assert!(prefix <= HEADROOM, "a receive prefix must fit the headroom");
        self.rx_area();
        &mut self.data[HEADROOM - prefix..]
    }

    /// The `prefix` bytes a receive into [`PacketBuf::rx_area_after`] put before the frame.
    #[inline]
    pub fn rx_prefix(&self, prefix: usize) -> &[u8] {
        &self.data[HEADROOM - prefix..HEADROOM]
    }

    /// Sets the frame length after a receive into [`PacketBuf::rx_area`].
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        self.tail = (self.head + len).min(self.data.len());
    }

    #[inline]
    pub fn frame(&self) -> &[u8] {
        &self.data[self.head..self.tail]
    }

    #[inline]
    pub fn frame_mut(&mut self) -> &mut [u8] {
        &mut self.data[self.head..self.tail]
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.tail - self.head
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.tail == self.head
    }

    /// Bytes free in front of the frame.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Grows the frame at the front by `n` bytes and returns them, or `None` when the
    /// headroom is too small.
    #[inline]
    pub fn push_front(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.head {
            return None;
        }
        self.head -= n;
        Some(&mut self.data[self.head..self.head + n])
    }

    /// Removes `n` bytes from the front of the frame; `false` if the frame is shorter.
    #[inline]
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.head += n;
        true
    }

    /// Makes the first `len` bytes of the receive area the frame, sent with `vnet`: as
    /// [`PacketBuf::rx_area`] followed by [`PacketBuf::set_len`], for a frame written
    /// into the area while it was lent out as an [`Area`].
    #[inline]
    pub fn set_frame(&mut self, len: usize, vnet: VnetHdr) {
        self.rx_area();
        self.set_len(len);
        self.vnet = vnet;
    }

    /// Shortens the frame to `len` bytes (no-op when it is already shorter).
    #[inline]
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.tail = self.head + len;
        }
    }

    /// The 802.1Q tag of the frame, if its outer EtherType is 0x8100 and the tag is whole.
    #[inline]
    pub fn vlan_tci(&self) -> Option<u16> {
        let f = self.frame();
        if f.len() >= ethernet::HEADER_LEN + vlan::TAG_LEN && crate::wire::be16(f, vlan::TPID_OFFSET) == u16::from(EtherType::Vlan) {
            Some(crate::wire::be16(f, vlan::TPID_OFFSET + 2))
        } else {
            None
        }
    }

    /// Inserts an 802.1Q tag (TPID `tpid`) after the MAC addresses, moving only the 12
    /// MAC bytes into the headroom. Returns `false` (frame unchanged) if the frame is
    /// shorter than an Ethernet header or the headroom is exhausted.
    pub fn push_vlan(&mut self, tpid: u16, tci: u16) -> bool {
        if self.len() < ethernet::HEADER_LEN || self.head < vlan::TAG_LEN {
            return false;
        }
        let old = self.head;
        self.head -= vlan::TAG_LEN;
        self.data.copy_within(old..old + vlan::TPID_OFFSET, self.head);
        let at = self.head + vlan::TPID_OFFSET;
        self.data[at..at + 2].copy_from_slice(&tpid.to_be_bytes());
        self.data[at + 2..at + 4].copy_from_slice(&tci.to_be_bytes());
        self.vnet.shift(vlan::TAG_LEN as i32);
        true
    }

    /// Removes the outer 802.1Q tag, moving only the 12 MAC bytes. Returns the TCI, or
    /// `None` (frame unchanged) when the frame carries no whole tag.
    pub fn pop_vlan(&mut self) -> Option<u16> {
        let tci = self.vlan_tci()?;
        self.data.copy_within(self.head..self.head + vlan::TPID_OFFSET, self.head + vlan::TAG_LEN);
        self.head += vlan::TAG_LEN;
        self.vnet.shift(-(vlan::TAG_LEN as i32));
        Some(tci)
    }

    /// Puts the frame in the tag state `want`: untagged (`None`) or tagged with `vid`,
    /// keeping `pcp` as the tag's priority. `tagged` says whether the frame carries the
    /// switch's tag now — told, not read from the bytes: once that tag is popped, a
    /// second tag behind it (QinQ, or a guest's own) is payload and must stay.
    /// Returns `false` if that was impossible (runt frame, no headroom); the frame is
    /// then unchanged.
    pub fn set_vlan(&mut self, tagged: bool, want: Option<VlanId>, pcp: u8) -> bool {
        match (tagged.then(|| self.vlan_tci()).flatten(), want) {
            (None, None) => !tagged,
            (Some(_), None) => self.pop_vlan().is_some(),
            (None, Some(vid)) => !tagged && self.push_vlan(EtherType::Vlan.into(), vlan::tci(pcp, false, vid)),
            (Some(tci), Some(vid)) => {
                let new = (tci & 0xf000) | vid.get();
                if new != tci {
                    let at = self.head + vlan::TPID_OFFSET + 2;
                    self.data[at..at + 2].copy_from_slice(&new.to_be_bytes());
                }
                true
            }
        }
    }
}

/// A [`PacketBuf`] lent out as a plain byte area — its receive area, after the
/// headroom — for something that builds a frame there (the VXLAN coalescer). The
/// frame becomes the buffer's with [`PacketBuf::set_frame`], without a copy.
pub struct Area(pub PacketBuf);

impl AsRef<[u8]> for Area {
    fn as_ref(&self) -> &[u8] {
        &self.0.data[HEADROOM..]
    }
}

impl AsMut<[u8]> for Area {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0.data[HEADROOM..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::virtio_net_hdr::F_NEEDS_CSUM;

    fn frame() -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        for (i, b) in f[14..].iter_mut().enumerate() {
            *b = i as u8;
        }
        f
    }

    #[test]
    fn one_read_fills_the_header_before_the_frame() {
        let mut p = PacketBuf::with_capacity(64);
        p.push_front(4).unwrap(); // an earlier frame's state must not leak
        let area = p.rx_area_after(12);
        assert_eq!(area.len(), 12 + 64);
        area[..12].copy_from_slice(&[7; 12]);
        area[12..16].copy_from_slice(&[1, 2, 3, 4]);
        p.set_len(4);
        assert_eq!(p.rx_prefix(12), &[7; 12]);
        assert_eq!(p.frame(), &[1, 2, 3, 4]);
        assert_eq!(p.headroom(), HEADROOM);
    }

    #[test]
    fn push_pop_round_trip() {
        let orig = frame();
        let mut p = PacketBuf::from_frame(&orig);
        p.vnet.flags = F_NEEDS_CSUM;
        p.vnet.csum_start = 34;
        assert!(p.push_vlan(0x8100, 0xa00a));
        assert_eq!(p.len(), 64);
        assert_eq!(&p.frame()[12..18], &[0x81, 0x00, 0xa0, 0x0a, 0x08, 0x00]);
        assert_eq!(&p.frame()[..12], &orig[..12]);
        assert_eq!(&p.frame()[16..], &orig[12..]);
        assert_eq!(p.vnet.csum_start, 38);
        assert_eq!(p.pop_vlan(), Some(0xa00a));
        assert_eq!(p.frame(), &orig[..]);
        assert_eq!(p.vnet.csum_start, 34);
        assert_eq!(p.pop_vlan(), None);
    }

    #[test]
    fn set_vlan_states() {
        let orig = frame();
        let mut p = PacketBuf::from_frame(&orig);
        let v10 = VlanId::new(10).unwrap();
        let v20 = VlanId::new(20).unwrap();
        assert!(p.set_vlan(false, Some(v10), 3));
        assert_eq!(p.vlan_tci(), Some(0x600a));
        assert!(p.set_vlan(true, Some(v20), 0));
        assert_eq!(p.vlan_tci(), Some(0x6014), "retag keeps the priority bits");
        assert!(p.set_vlan(true, None, 0));
        assert_eq!(p.frame(), &orig[..]);
        assert!(p.set_vlan(false, None, 0));
    }

    /// Found by the worker fuzz target: a frame with two tags flooded to two access
    /// ports lost its inner tag at the second (the tag state was read from the bytes,
    /// where the inner tag looked like the switch's once the outer one was popped).
    #[test]
    fn an_inner_tag_is_payload_once_the_outer_one_is_popped() {
        let mut f = frame();
        f.splice(12..12, [0x81, 0x00, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x08]);
        let mut p = PacketBuf::from_frame(&f);
        let v10 = VlanId::new(10).unwrap();
        assert!(p.set_vlan(true, None, 0));
        let once = p.frame().to_vec();
        assert_eq!(p.vlan_tci(), Some(8), "the inner tag is now first");
        assert!(p.set_vlan(false, None, 0));
        assert_eq!(p.frame(), &once[..], "popped a second tag");
        assert!(p.set_vlan(false, Some(v10), 0));
        assert_eq!(&p.frame()[12..20], &[0x81, 0x00, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x08]);
        // A frame said to be tagged that is too short for a tag is refused.
        let mut r = PacketBuf::from_frame(&[0u8; 14]);
        assert!(!r.set_vlan(true, None, 0));
    }

    #[test]
    fn runts_and_headroom() {
        let mut p = PacketBuf::from_frame(&[1, 2, 3]);
        assert!(!p.push_vlan(0x8100, 1));
        // Found by fuzzing: 13 bytes (MACs but no whole EtherType) must not be tagged,
        // or the tag could not be popped again.
        let mut r = PacketBuf::from_frame(&[0u8; 13]);
        assert!(!r.push_vlan(0x8100, 10));
        assert_eq!(r.len(), 13);
        assert_eq!(p.frame(), &[1, 2, 3]);
        let mut q = PacketBuf::from_frame(&frame());
        assert!(q.push_front(HEADROOM).is_some());
        assert!(!q.push_vlan(0x8100, 1));
        assert!(q.push_front(1).is_none());
        assert!(q.pull_front(HEADROOM));
        assert!(!q.pull_front(1000));
    }
}
