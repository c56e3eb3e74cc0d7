//! The Internet checksum (RFC 1071) and completion of partial checksums that a sender
//! left to offload (virtio-net `NEEDS_CSUM`).

/// One's-complement sum of `data` as big-endian 16-bit words, added to `initial`,
/// not folded.
///
/// The words are summed as native 64-bit loads with end-around carry in two
/// independent chains (one's-complement addition does not care about byte order as
/// long as the result is swapped back at the end, RFC 1071 section 2(B)), which is
/// several times faster than adding 16-bit words.
pub fn sum(data: &[u8], initial: u32) -> u64 {
    #[inline(always)]
    fn add(acc: u64, v: u64) -> u64 {
        let (s, carry) = acc.overflowing_add(v);
        // With a carry, s <= 2^64 - 2, so adding it back cannot overflow.
        s + u64::from(carry)
    }
    #[inline(always)]
    fn load(c: &[u8]) -> u64 {
        u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
    }
    let (mut a, mut b) = (0u64, 0u64);
    let mut blocks = data.chunks_exact(32);
    for c in &mut blocks {
        a = add(a, load(&c[0..8]));
        b = add(b, load(&c[8..16]));
        a = add(a, load(&c[16..24]));
        b = add(b, load(&c[24..32]));
    }
    let mut acc = add(a, b);
    let rest = blocks.remainder();
    let mut words = rest.chunks_exact(8);
    for c in &mut words {
        acc = add(acc, load(c));
    }
    // The tail (< 8 bytes) zero-padded to a full native word: the padding adds nothing
    // and every byte keeps its position within its 16-bit word.
    let tail = words.remainder();
    let mut last = [0u8; 8];
    last[..tail.len()].copy_from_slice(tail);
    acc = add(acc, u64::from_ne_bytes(last));
    // Fold the native sum to 16 bits, then back to big-endian word order.
    let mut s = (acc >> 32) + (acc & 0xffff_ffff);
    s = (s >> 32) + (s & 0xffff_ffff);
    s = (s >> 16) + (s & 0xffff);
    s = (s >> 16) + (s & 0xffff);
    s = (s >> 16) + (s & 0xffff);
    u64::from(u16::from_be(s as u16)) + u64::from(initial)
}

/// Folds a sum to 16 bits (not complemented).
pub fn fold(mut s: u64) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum of `data`: the complement of its folded sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Completes a partial checksum in place: the 16-bit field at `start + offset` holds the
/// pseudo-header sum the sender put there; the checksum covers `frame[start..]`.
/// Returns `false` (frame unchanged) when the offsets do not fit the frame.
pub fn complete(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let at = start.saturating_add(offset);
    if start >= frame.len() || at + 2 > frame.len() {
        return false;
    }
    let mut c = !fold(sum(&frame[start..], 0));
    // RFC 768: a UDP checksum that computes to zero is sent as all ones. For TCP 0 and
    // 0xffff are the same value in one's complement, so this is always safe.
    if c == 0 {
        c = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2 (folded).
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&d, 0)), 0xddf2);
        assert_eq!(checksum(&d), !0xddf2);
        assert_eq!(fold(sum(&d[..7], 0)), fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0x00], 0)));
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        // A real IPv4 header with its checksum (0xb861) in place sums to 0xffff.
        let h = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7];
        assert_eq!(fold(sum(&h, 0)), 0xffff);
    }

    /// RFC 1071's definition, word by word.
    fn reference(data: &[u8], initial: u32) -> u16 {
        let mut acc = u64::from(initial);
        for w in data.chunks(2) {
            acc += u64::from(w[0]) << 8 | u64::from(*w.get(1).unwrap_or(&0));
        }
        fold(acc)
    }

    proptest::proptest! {
        #[test]
        fn matches_the_word_by_word_definition(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300), initial: u32, skip in 0usize..8) {
            // also at every alignment of the slice
            let d = &data[skip.min(data.len())..];
            proptest::prop_assert_eq!(fold(sum(d, initial)), reference(d, initial));
        }
    }

    #[test]
    fn all_ones_and_carries() {
        for len in [0, 1, 2, 7, 8, 9, 31, 32, 33, 64, 1500, 65536] {
            let d = vec![0xffu8; len];
            assert_eq!(fold(sum(&d, 0)), reference(&d, 0), "len {len}");
            let d = vec![0x80u8; len];
            assert_eq!(fold(sum(&d, 0xffff_ffff)), reference(&d, 0xffff_ffff), "len {len}");
        }
    }

    #[test]
    fn complete_bounds() {
        let mut f = [0u8; 10];
        assert!(!complete(&mut f, 10, 0));
        assert!(!complete(&mut f, 8, 2));
        assert!(complete(&mut f, 4, 2));
        // the field now makes the covered range sum to all ones
        assert_eq!(fold(sum(&f[4..], 0)), 0xffff);
    }
}
