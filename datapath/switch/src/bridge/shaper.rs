//! Egress rate limiting that rvs carries out itself, for ports whose frames no kernel
//! qdisc sees: a tap rvs writes directly (its `internal` and `tap` ports), where a QoS
//! row's rate is applied here instead of by the kernel's HTB. The policy is to drop:
//! a frame that finds the bucket short is not sent and is counted (`shaped`); TCP
//! backs off as it does at a policer. Nothing is queued, so nothing needs a timer.
//!
//! One token bucket in bytes. A frame larger than the bucket (a 64 KB GSO frame
//! behind a small `burst`) passes when the bucket is full and leaves it in debt,
//! which later frames repay: the long-run rate stays the configured one whatever the
//! frame sizes, and no frame is refused for ever.
//!
//! Sans-I/O like the rest of the core: time is an argument; no allocation.

use crate::time::Time;

/// The smallest bucket in bytes: a full-sized frame and then some. The bucket also
/// holds at least two milliseconds of the rate: time comes in milliseconds, and a
/// bucket smaller than one millisecond's refill would cap the rate below the one set.
pub const MIN_BURST: u64 = 1600;

/// A shaper's settings: `rate` in bytes per second, `burst` in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShaperConfig {
    pub rate: u64,
    pub burst: u64,
}

/// One egress token bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaper {
    cfg: ShaperConfig,
    /// Bytes that may be sent now; negative while repaying an oversized frame.
    tokens: i64,
    last: Time,
}

impl Shaper {
    /// `None` when there is no rate to keep (0).
    pub fn new(cfg: ShaperConfig) -> Option<Shaper> {
        let floor = MIN_BURST.max(cfg.rate / 500);
        let cfg = ShaperConfig { rate: cfg.rate, burst: cfg.burst.max(floor).min(i64::MAX as u64 / 2) };
        (cfg.rate > 0).then_some(Shaper { cfg, tokens: cfg.burst as i64, last: Time::ZERO })
    }

    /// The settings in force (the burst raised to its floor, see [`MIN_BURST`]).
    pub fn config(&self) -> ShaperConfig {
        self.cfg
    }

    /// Whether a frame of `bytes` may leave at `now` (and takes its tokens).
    #[inline]
    pub fn admit(&mut self, now: Time, bytes: usize) -> bool {
        let ms = now.since(self.last);
        if ms > 0 {
            let add = self.cfg.rate.saturating_mul(ms) / 1000;
            self.tokens = self.tokens.saturating_add(add.min(i64::MAX as u64) as i64).min(self.cfg.burst as i64);
            self.last = now;
        }
        let bytes = bytes as i64;
        if self.tokens >= bytes.min(self.cfg.burst as i64) {
            self.tokens -= bytes;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn off_without_rate_and_burst_floor() {
        assert!(Shaper::new(ShaperConfig { rate: 0, burst: 1000 }).is_none());
        assert_eq!(Shaper::new(ShaperConfig { rate: 1, burst: 0 }).unwrap().config().burst, MIN_BURST);
    }

    #[test]
    fn rate_burst_and_debt() {
        // 1 MB/s, 10 kB bucket: 10 frames of 1 kB at once, then 1 kB per ms.
        let mut s = Shaper::new(ShaperConfig { rate: 1_000_000, burst: 10_000 }).unwrap();
        assert_eq!((0..20).filter(|_| s.admit(Time::ZERO, 1000)).count(), 10);
        assert!(s.admit(Time::from_millis(1), 1000));
        assert!(!s.admit(Time::from_millis(1), 1000));
        // A 64 kB frame passes a full bucket, and the debt holds the next ones back.
        let t = Time::from_millis(100);
        assert!(s.admit(t, 65_536));
        assert!(!s.admit(t + 50, 100), "55 ms repaid 50 kB of 55.5 kB of debt");
        assert!(s.admit(t + 56, 100));
    }

    /// A frame size and the milliseconds since the previous frame.
    fn arrivals() -> impl Strategy<Value = Vec<(usize, u64)>> {
        prop::collection::vec((1usize..70_000, 0u64..5), 1..400)
    }

    proptest! {
        /// Over any arrivals, what passes is at most the bucket plus the refill plus
        /// one frame of debt.
        #[test]
        fn never_above_rate(rate in 1_000u64..20_000_000, burst in 0u64..200_000, a in arrivals()) {
            let mut s = Shaper::new(ShaperConfig { rate, burst }).unwrap();
            let burst = s.config().burst;
            let (mut now, mut passed, mut biggest) = (0u64, 0u64, 0u64);
            for (bytes, gap) in a {
                now += gap;
                if s.admit(Time::from_millis(now), bytes) {
                    passed += bytes as u64;
                    biggest = biggest.max(bytes as u64);
                }
            }
            prop_assert!(passed <= burst + rate * now / 1000 + biggest, "{passed} bytes in {now} ms");
        }

        /// A frame no larger than the bucket always passes once the bucket had time to
        /// fill, whatever came before (no frame is refused for ever).
        #[test]
        fn refills(rate in 1_000u64..20_000_000, burst in 0u64..200_000, a in arrivals(), bytes in 1usize..70_000) {
            let mut s = Shaper::new(ShaperConfig { rate, burst }).unwrap();
            let mut now = 0u64;
            for (b, gap) in a {
                now += gap;
                s.admit(Time::from_millis(now), b);
            }
            let cfg = s.config();
            // Debt is at most one frame (< 70 kB); then the whole bucket.
            let wait = (70_000 + cfg.burst) * 1000 / rate + 1;
            prop_assert!(s.admit(Time::from_millis(now + wait), bytes));
        }

        /// Offered more than the rate, the shaper lets the rate through (within one
        /// millisecond's rounding per frame time).
        #[test]
        fn keeps_the_rate_busy(rate in 100_000u64..20_000_000, burst in 0u64..200_000, bytes in 64usize..9000) {
            let mut s = Shaper::new(ShaperConfig { rate, burst }).unwrap();
            let per_ms = (rate / 1000) as usize / bytes + 2;
            let mut passed = 0u64;
            for ms in 0..2000u64 {
                passed += (0..per_ms).filter(|_| s.admit(Time::from_millis(ms), bytes)).count() as u64 * bytes as u64;
            }
            let want = rate * 1999 / 1000;
            prop_assert!(passed + 2000 * bytes as u64 >= want, "{passed} of {want}");
        }
    }
}
