//! Ingress policing: a token bucket on received traffic (Interface
//! `ingress_policing_rate` in kbit/s, `ingress_policing_burst` in kbit — 0 meaning
//! OVS's default of 8000 kbit; `ingress_policing_kpkts_rate`/`_burst` in packets).
//! Frames that find the bucket short are dropped (counted as `policed`).
//!
//! Sans-I/O like the rest of the core: time is an argument.

use crate::time::Time;

/// OVS's default burst when `ingress_policing_burst` is 0: 8000 kbit.
pub const DEFAULT_BURST_KBIT: u64 = 8000;

/// One token bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bucket {
    /// Tokens added per second.
    rate: u64,
    /// Bucket depth.
    burst: u64,
    tokens: u64,
    last: Time,
}

impl Bucket {
    fn new(rate: u64, burst: u64) -> Bucket {
        Bucket { rate, burst, tokens: burst, last: Time::ZERO }
    }

    fn admit(&mut self, now: Time, cost: u64) -> bool {
        let ms = now.since(self.last);
        if ms > 0 {
            self.tokens = (self.tokens + self.rate.saturating_mul(ms) / 1000).min(self.burst);
            self.last = now;
        }
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// A port's policer: a bit bucket, a packet bucket, or both.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policer {
    bits: Option<Bucket>,
    packets: Option<Bucket>,
}

/// The Interface columns, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicerConfig {
    pub rate_kbps: u64,
    pub burst_kbit: u64,
    pub rate_kpps: u64,
    pub burst_kpkts: u64,
}

impl Policer {
    /// `None` when policing is off (both rates 0).
    pub fn new(c: PolicerConfig) -> Option<Policer> {
        let bits = (c.rate_kbps > 0).then(|| {
            let burst = if c.burst_kbit == 0 { DEFAULT_BURST_KBIT } else { c.burst_kbit };
            Bucket::new(c.rate_kbps * 1000, burst * 1000)
        });
        let packets = (c.rate_kpps > 0).then(|| {
            let burst = if c.burst_kpkts == 0 { c.rate_kpps } else { c.burst_kpkts };
            Bucket::new(c.rate_kpps * 1000, burst * 1000)
        });
        (bits.is_some() || packets.is_some()).then_some(Policer { bits, packets })
    }

    /// Whether a frame of `bytes` received at `now` conforms (and takes its tokens).
    pub fn admit(&mut self, now: Time, bytes: usize) -> bool {
        let ok_bits = self.bits.as_mut().is_none_or(|b| b.admit(now, bytes as u64 * 8));
        ok_bits && self.packets.as_mut().is_none_or(|b| b.admit(now, 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_when_rates_are_zero() {
        assert!(Policer::new(PolicerConfig::default()).is_none());
    }

    #[test]
    fn rate_and_burst() {
        // 1000 kbit/s with a 100 kbit burst: 100 kbit at once, then 1 kbit per ms.
        let mut p = Policer::new(PolicerConfig { rate_kbps: 1000, burst_kbit: 100, ..Default::default() }).unwrap();
        let t0 = Time::ZERO;
        let frame = 1250; // 10 kbit
        let sent = (0..20).filter(|_| p.admit(t0, frame)).count();
        assert_eq!(sent, 10, "the burst lets 100 kbit through at once");
        assert!(!p.admit(Time::from_millis(5), frame), "5 ms refill only 5 kbit");
        assert!(p.admit(Time::from_millis(10), frame), "10 ms refill 10 kbit");
        // Over one second at line rate, about rate + burst gets through.
        let mut p = Policer::new(PolicerConfig { rate_kbps: 1000, burst_kbit: 100, ..Default::default() }).unwrap();
        let passed: usize = (0..1000u64).map(|ms| (0..10).filter(|_| p.admit(Time::from_millis(ms), frame)).count()).sum();
        let kbit = passed * 10;
        assert!((1000..=1110).contains(&kbit), "{kbit} kbit in 1 s");
    }

    #[test]
    fn default_burst_and_packets() {
        let p = Policer::new(PolicerConfig { rate_kbps: 10, ..Default::default() }).unwrap();
        assert_eq!(p.bits.as_ref().unwrap().burst, 8_000_000);
        let mut p = Policer::new(PolicerConfig { rate_kpps: 1, burst_kpkts: 1, ..Default::default() }).unwrap();
        assert_eq!((0..2000).filter(|_| p.admit(Time::ZERO, 64)).count(), 1000);
    }
}
