//! Egress rate limiting that rvs carries out itself, for ports whose frames no kernel
//! qdisc sees: a tap rvs writes directly (its `internal` and `tap` ports), where a QoS
//! row's rate is applied here instead of by the kernel's HTB.
//!
//! [`Shaper`] is one token bucket; [`ShapeQueue`] puts a bounded FIFO in front of it,
//! as a qdisc does: a frame that finds the bucket short waits (in a slot allocated
//! when the queue was made, never per frame) until the bucket has refilled, and only
//! a frame that finds the queue full is dropped (counted by the caller as `shaped`).
//! The caller drains the queue when [`ShapeQueue::wake_at`] says, and sends what
//! [`ShapeQueue::drain`] hands it. A policer (`egress-policer`) is a queue of 0 slots.
//!
//! The bucket counts bytes. A frame larger than the bucket (a 64 KB GSO frame
//! behind a small `burst`) passes when the bucket is full and leaves it in debt,
//! which later frames repay: the long-run rate stays the configured one whatever the
//! frame sizes, and no frame is refused for ever.
//!
//! Sans-I/O like the rest of the core: time is an argument; no allocation.

use crate::packet::{MAX_FRAME, PacketBuf};
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

impl Shaper {
    /// When a frame of `bytes` would pass (`now` if it would now).
    pub fn ready_at(&self, now: Time, bytes: usize) -> Time {
        let elapsed = now.since(self.last);
        let tokens = self.tokens.saturating_add((self.cfg.rate.saturating_mul(elapsed) / 1000).min(i64::MAX as u64) as i64).min(self.cfg.burst as i64);
        let need = (bytes as i64).min(self.cfg.burst as i64) - tokens;
        if need <= 0 { now } else { now + (need as u64 * 1000).div_ceil(self.cfg.rate) }
    }
}

/// What became of a frame offered to a [`ShapeQueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Offer {
    /// Within the rate and nothing waiting: send it now.
    Send,
    /// Copied into the queue: it leaves from [`ShapeQueue::drain`].
    Queued,
    /// The queue is full: dropped.
    Dropped,
}

/// A token bucket with a bounded FIFO of frames in front of it.
pub struct ShapeQueue {
    shaper: Shaper,
    slots: Vec<PacketBuf>,
    /// Index of the oldest waiting frame, and how many wait.
    head: usize,
    len: usize,
}

impl ShapeQueue {
    /// How many frames of up to [`MAX_FRAME`] bytes a queue for `cfg` holds: about
    /// 100 ms at the rate, at least 8 (and 64 at most: each slot is 64 KiB).
    pub fn slots_for(cfg: ShaperConfig) -> usize {
        ((cfg.rate / 10) as usize).div_ceil(MAX_FRAME).clamp(8, 64)
    }

    /// `None` without a rate. `slots` frames may wait (0: a policer, which drops).
    pub fn new(cfg: ShaperConfig, slots: usize) -> Option<ShapeQueue> {
        let shaper = Shaper::new(cfg)?;
        Some(ShapeQueue { shaper, slots: (0..slots).map(|_| PacketBuf::new()).collect(), head: 0, len: 0 })
    }

    /// The bucket's settings in force.
    pub fn config(&self) -> ShaperConfig {
        self.shaper.config()
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offers the frame in `buf` at `now`: it may leave now, waits (copied), or is
    /// dropped. Frames leave in the order offered.
    pub fn offer(&mut self, now: Time, buf: &PacketBuf) -> Offer {
        if self.len == 0 && self.shaper.admit(now, buf.len()) {
            return Offer::Send;
        }
        if self.len == self.slots.len() || buf.len() > MAX_FRAME {
            return Offer::Dropped;
        }
        let at = (self.head + self.len) % self.slots.len();
        let slot = &mut self.slots[at];
        slot.rx_area()[..buf.len()].copy_from_slice(buf.frame());
        slot.set_len(buf.len());
        slot.vnet = buf.vnet;
        self.len += 1;
        Offer::Queued
    }

    /// Hands `send` each waiting frame the bucket lets out at `now`, oldest first;
    /// returns how many.
    pub fn drain(&mut self, now: Time, mut send: impl FnMut(&mut PacketBuf)) -> usize {
        let mut n = 0;
        while self.len > 0 {
            let slot = &mut self.slots[self.head];
            if !self.shaper.admit(now, slot.len()) {
                break;
            }
            send(slot);
            self.head = (self.head + 1) % self.slots.len();
            self.len -= 1;
            n += 1;
        }
        n
    }

    /// When the oldest waiting frame may leave; `None` when none waits.
    pub fn wake_at(&self, now: Time) -> Option<Time> {
        (self.len > 0).then(|| self.shaper.ready_at(now, self.slots[self.head].len()))
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

    #[test]
    fn queue_holds_what_the_bucket_cannot_take_and_keeps_order() {
        let cfg = ShaperConfig { rate: 1_000_000, burst: 3000 };
        let mut q = ShapeQueue::new(cfg, 2).unwrap();
        let frame = |b: u8| PacketBuf::from_frame(&[b; 1000]);
        let t = Time::ZERO;
        for b in 0..3 {
            assert_eq!(q.offer(t, &frame(b)), Offer::Send);
        }
        assert_eq!(q.offer(t, &frame(3)), Offer::Queued);
        assert_eq!(q.offer(t, &frame(4)), Offer::Queued);
        assert_eq!(q.offer(t, &frame(5)), Offer::Dropped, "two slots");
        assert_eq!(q.wake_at(t), Some(Time::from_millis(1)));
        let mut out = Vec::new();
        assert_eq!(q.drain(t, |b| out.push(b.frame()[0])), 0);
        assert_eq!(q.drain(Time::from_millis(1), |b| out.push(b.frame()[0])), 1);
        // A newcomer waits behind the queue even when the bucket has room.
        assert_eq!(q.offer(Time::from_millis(5), &frame(6)), Offer::Queued);
        assert_eq!(q.drain(Time::from_millis(5), |b| out.push(b.frame()[0])), 2);
        assert_eq!(out, vec![3, 4, 6]);
        assert_eq!(q.wake_at(Time::from_millis(5)), None);
        // A policer: no slots, everything above the rate dropped.
        let mut p = ShapeQueue::new(cfg, 0).unwrap();
        assert_eq!((0..5).filter(|_| p.offer(t, &frame(0)) == Offer::Dropped).count(), 2);
        assert_eq!(ShapeQueue::slots_for(ShaperConfig { rate: 12_500_000, burst: 0 }), 20);
    }

    proptest! {
        /// Whatever is offered, frames leave (now or from the queue) in the order
        /// offered, none twice, at most the bucket allows, and the queue never holds
        /// more than its slots.
        #[test]
        fn queue_is_a_bounded_fifo_at_the_rate(rate in 10_000u64..5_000_000, slots in 0usize..6, a in arrivals()) {
            let cfg = ShaperConfig { rate, burst: 0 };
            let mut q = ShapeQueue::new(cfg, slots).unwrap();
            let burst = q.config().burst;
            let (mut now, mut sent, mut bytes, mut biggest) = (0u64, Vec::new(), 0u64, 0u64);
            for (i, (len, gap)) in a.iter().enumerate() {
                now += gap;
                let t = Time::from_millis(now);
                q.drain(t, |b| { sent.push(u32::from_ne_bytes(b.frame()[..4].try_into().unwrap())); bytes += b.len() as u64; biggest = biggest.max(b.len() as u64); });
                let mut f = vec![0u8; (*len).max(4)];
                f[..4].copy_from_slice(&(i as u32).to_ne_bytes());
                if q.offer(t, &PacketBuf::from_frame(&f)) == Offer::Send {
                    sent.push(i as u32);
                    bytes += f.len() as u64;
                    biggest = biggest.max(f.len() as u64);
                }
                prop_assert!(q.len() <= slots);
                if let Some(w) = q.wake_at(t) { prop_assert!(w >= t); }
            }
            prop_assert!(sent.windows(2).all(|w| w[0] < w[1]), "in order, once: {sent:?}");
            prop_assert!(bytes <= burst + rate * now / 1000 + biggest);
        }
    }
}
