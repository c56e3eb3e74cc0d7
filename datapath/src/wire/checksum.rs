//! The Internet checksum (RFC 1071) and completion of partial checksums that a sender
//! left to offload (virtio-net `NEEDS_CSUM`).

/// One's-complement sum of `data` as big-endian 16-bit words, added to `initial`,
/// not folded.
pub fn sum(data: &[u8], initial: u32) -> u64 {
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for w in &mut rest {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [b] = rest.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
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
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01,
            0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(fold(sum(&h, 0)), 0xffff);
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
