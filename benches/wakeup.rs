//! How long this machine takes to wake a thread that sleeps in the kernel waiting for
//! input — the cost a userspace switch pays per frame when traffic is sparse (ping at
//! 100/s), and the kernel's own bridge does not: it forwards in the sender's context.
//!
//! One thread waits in `epoll_wait` on an eventfd, as rvs's workers wait for their
//! ports; another sleeps for the gap, notes the time and signals the eventfd. The delay
//! from the signal to the waiter running again is the wake-up. Printed as median and 90th percentile (µs) for a gap of 10 ms (the e2e
//! benchmark's ping interval: both virtual CPUs have gone idle in between) and of
//! 100 µs (they have not). `cargo bench --bench wakeup`; `benches/e2e.sh` runs it and
//! puts the figures in its report.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rvs_sys::epoll::{Epoll, EventFd};

/// Wake-up delays in µs, sorted, of `count` sends `gap` apart.
fn measure(gap: Duration, count: usize) -> Vec<f64> {
    let bell = Arc::new(EventFd::new().expect("eventfd"));
    let mut epoll = Epoll::new(4).expect("epoll");
    epoll.add(bell.as_fd(), 0).expect("epoll add");
    let rx = Arc::clone(&bell);
    let base = Instant::now();
    let sent_at = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&sent_at);
    // Wake-ups the waiter has taken: the next signal waits for it, so that two signals
    // never merge into one wake-up of the eventfd.
    let taken = Arc::new(AtomicUsize::new(0));
    let took = Arc::clone(&taken);
    let waiter = std::thread::spawn(move || {
        let mut delays = Vec::with_capacity(count);
        while delays.len() < count {
            if epoll.wait(None).expect("epoll_wait").count() == 0 {
                continue;
            }
            let woke = base.elapsed().as_nanos() as u64;
            delays.push(woke.saturating_sub(seen.load(Ordering::Acquire)) as f64 / 1000.0);
            rx.drain();
            took.store(delays.len(), Ordering::Release);
        }
        delays
    });
    for i in 0..count {
        std::thread::sleep(gap);
        sent_at.store(base.elapsed().as_nanos() as u64, Ordering::Release);
        bell.notify();
        // Bounded: a waiter that has not woken within a second has failed.
        let asked = Instant::now();
        while taken.load(Ordering::Acquire) <= i {
            assert!(asked.elapsed() < Duration::from_secs(1), "the waiting thread did not wake within 1 s");
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    let mut delays = waiter.join().expect("waiter");
    delays.sort_by(f64::total_cmp);
    delays
}

fn main() {
    // `cargo bench` passes `--bench`; a number sets the count per gap.
    let count = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200usize);
    for (label, gap) in [("10 ms", Duration::from_millis(10)), ("100 us", Duration::from_micros(100))] {
        let d = measure(gap, count);
        let at = |q: f64| d[((d.len() - 1) as f64 * q) as usize];
        println!("thread wake-up after {label} idle: median {:.1} us, p90 {:.1} us ({count} wake-ups)", at(0.5), at(0.9));
    }
}
