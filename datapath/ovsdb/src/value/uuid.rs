//! Row identifiers: RFC 4122 UUIDs in their textual form.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

/// A 128-bit row identifier (RFC 4122 textual form).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// A random (version 4) UUID.
    pub fn random() -> Uuid {
        let mut b = [0u8; 16];
        let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
        if !ok {
            // /dev/urandom is always there on Linux; if it is not, fall back to
            // SipHash with a random key over the time: unique is all we need.
            use std::hash::{BuildHasher, Hasher};
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            for half in 0..2 {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u128(t.as_nanos());
                h.write_u32(std::process::id());
                h.write_usize(half);
                b[half * 8..half * 8 + 8].copy_from_slice(&h.finish().to_le_bytes());
            }
        }
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid(b)
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Uuid {
    type Err = ();
    /// Accepts exactly the 36-character 8-4-4-4-12 hex form (either case).
    fn from_str(s: &str) -> Result<Uuid, ()> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(());
        }
        let mut out = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b[i] != b'-' {
                    return Err(());
                }
                i += 1;
                continue;
            }
            let hex = |c: u8| (c as char).to_digit(16).ok_or(());
            out[n] = (hex(b[i])? * 16 + hex(b[i + 1])?) as u8;
            n += 1;
            i += 2;
        }
        Ok(Uuid(out))
    }
}
