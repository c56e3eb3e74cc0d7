//! Micro-benchmarks of the switching core (criterion, stable Rust).
//!
//! Cases:
//! * `decide/known_unicast` — one frame between two learned MACs on access ports;
//! * `decide/flood/N` — a broadcast flooded to N ports (N = 4, 16, 64);
//! * `vlan/push_pop` — 802.1Q tag pushed then popped in buffer headroom;
//! * `fdb/lookup/N`, `fdb/learn_refresh/N` — MAC table lookup and refresh of a known
//!   address with N entries (1 k, 64 k, 1 M); `fdb/learn_new_evict` — learning a new
//!   address into a full 1 M table (eviction path). The bytes-per-entry figure is
//!   printed once.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rvs_switch::bridge::{Actions, Bridge, BridgeConfig, MacTable, PortConfig};
use rvs_switch::packet::PacketBuf;
use rvs_switch::testing::frame;
use rvs_switch::time::Time;
use rvs_switch::types::{MacAddr, VlanId};

fn mac(n: u32) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([0x02, 0x00, b[0], b[1], b[2], b[3]])
}

fn decide(c: &mut Criterion) {
    let v = VlanId::new(10).unwrap();
    let mut g = c.benchmark_group("decide");
    let mut b = Bridge::new(BridgeConfig::default(), (1..=4).map(|k| PortConfig::access(k, v)).collect());
    let mut a = Actions::with_capacity(64);
    let _ = b.process(Time::ZERO, 0, &frame(MacAddr::BROADCAST, mac(1)), &mut a);
    let _ = b.process(Time::ZERO, 1, &frame(MacAddr::BROADCAST, mac(2)), &mut a);
    let f = frame(mac(2), mac(1));
    g.bench_function("known_unicast", |bch| bch.iter(|| black_box(b.process(Time::ZERO, 0, black_box(&f), &mut a))));
    for n in [4u32, 16, 64] {
        let mut b = Bridge::new(BridgeConfig::default(), (1..=n).map(|k| PortConfig::access(k, v)).collect());
        let f = frame(MacAddr::BROADCAST, mac(1));
        g.bench_with_input(BenchmarkId::new("flood", n), &n, |bch, _| bch.iter(|| black_box(b.process(Time::ZERO, 0, black_box(&f), &mut a))));
    }
    g.finish();
}

fn vlan(c: &mut Criterion) {
    let mut p = PacketBuf::from_frame(&frame(mac(1), mac(2)));
    c.bench_function("vlan/push_pop", |b| {
        b.iter(|| {
            p.push_vlan(0x8100, 10);
            black_box(p.pop_vlan())
        })
    });
}

fn fdb(c: &mut Criterion) {
    println!("fdb: {} bytes per entry (slab entry + index slot)", MacTable::bytes_per_entry());
    let v = VlanId::new(1).unwrap();
    let mut g = c.benchmark_group("fdb");
    for n in [1_000u32, 65_536, 1_000_000] {
        let mut t = MacTable::new(n as usize, 300);
        for i in 0..n {
            t.learn(Time::ZERO, v, mac(i), (i % 64) as u16);
        }
        let mut k = 0u32;
        g.bench_with_input(BenchmarkId::new("lookup", n), &n, |b, &n| {
            b.iter(|| {
                k = (k + 7919) % n;
                black_box(t.lookup(v, mac(k)))
            })
        });
        g.bench_with_input(BenchmarkId::new("learn_refresh", n), &n, |b, &n| {
            b.iter(|| {
                k = (k + 7919) % n;
                black_box(t.learn(Time::ZERO, v, mac(k), (k % 64) as u16))
            })
        });
        if n == 1_000_000 {
            let mut fresh = n;
            g.bench_function("learn_new_evict", |b| {
                b.iter(|| {
                    fresh += 1;
                    black_box(t.learn(Time::ZERO, v, mac(fresh), (fresh % 64) as u16))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, decide, vlan, fdb);
criterion_main!(benches);
