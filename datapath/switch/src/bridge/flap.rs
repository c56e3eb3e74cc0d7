//! MAC flap detection: an address that moves between ports again and again.
//!
//! One move is normal (a VM migrated, a cable was replugged); a station that keeps
//! moving means a loop or the same MAC on two hosts, and that is what an operator wants
//! to hear about (openvswitch/ovs-issues #332 asks OVS for exactly this). The bridge
//! tells [`FlapWatch`] of every move it learns from a frame; an address that moves
//! `moves` times within `window` becomes a [`Flap`]: counted, kept in a short list of
//! recent flaps (`fdb/flaps`), and queued once per window for the shell to log.
//!
//! Costs nothing until an address moves: nothing here runs for a frame whose source
//! stays where it was. The trackers are bounded ([`MAX_TRACKED`]) and their map is sized
//! once, so a storm of moves allocates nothing; keys come from frames, so the map uses
//! the standard keyed (SipHash) hasher. No I/O: logging is the shell's job.

use std::collections::{HashMap, VecDeque};

use crate::time::Time;
use crate::types::{MacAddr, VlanId};

/// Addresses followed at once; moves of others are not followed until room frees up
/// (trackers whose window has passed are reused first).
pub const MAX_TRACKED: usize = 1024;
/// Recent flaps kept for `fdb/flaps`.
pub const MAX_RECENT: usize = 64;
/// Default threshold: moves within the window that make a flap.
pub const DEFAULT_MOVES: u32 = 5;
/// Default window, seconds.
pub const DEFAULT_WINDOW_SECS: u32 = 10;

/// A flapping address: `moves` moves within the window ending at `last`, the last one
/// from port `from` to port `to`. Ports are named by their stable keys (OpenFlow port
/// numbers in rvs), so the list stays right across reconfigurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flap {
    pub vlan: VlanId,
    pub mac: MacAddr,
    pub moves: u32,
    pub from: u32,
    pub to: u32,
    pub last: Time,
}

#[derive(Debug, Clone, Copy)]
struct Tracker {
    since: Time,
    moves: u32,
    reported: bool,
}

/// Flap detection for one bridge's MAC table.
#[derive(Debug)]
pub struct FlapWatch {
    moves: u32,
    window_ms: u64,
    tracked: HashMap<(VlanId, MacAddr), Tracker>,
    recent: VecDeque<Flap>,
    pending: Vec<Flap>,
    total: u64,
}

impl FlapWatch {
    /// `moves` moves within `window_secs` make a flap; `moves == 0` turns detection off.
    pub fn new(moves: u32, window_secs: u32) -> FlapWatch {
        FlapWatch { moves, window_ms: u64::from(window_secs.max(1)) * 1000, tracked: HashMap::new(), recent: VecDeque::new(), pending: Vec::new(), total: 0 }
    }

    /// Changes the threshold and window; what was followed so far is kept.
    pub fn configure(&mut self, moves: u32, window_secs: u32) {
        self.moves = moves;
        self.window_ms = u64::from(window_secs.max(1)) * 1000;
    }

    /// Flaps detected since the start or the last [`clear_stats`](Self::clear_stats).
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn clear_stats(&mut self) {
        self.total = 0;
    }

    /// The most recent flaps, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &Flap> {
        self.recent.iter()
    }

    /// Whether flaps wait to be logged.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the flaps to log: each address at most once per window.
    pub fn drain_pending(&mut self) -> std::vec::Drain<'_, Flap> {
        self.pending.drain(..)
    }

    /// `mac` in `vlan` moved from port `from` to `to` (stable keys) at `now`.
    pub fn moved(&mut self, now: Time, vlan: VlanId, mac: MacAddr, from: u32, to: u32) {
        if self.moves == 0 {
            return;
        }
        if self.tracked.capacity() == 0 {
            self.tracked.reserve(MAX_TRACKED);
            self.recent.reserve(MAX_RECENT);
            self.pending.reserve(MAX_RECENT);
        }
        let window = self.window_ms;
        if !self.tracked.contains_key(&(vlan, mac)) && self.tracked.len() >= MAX_TRACKED {
            self.tracked.retain(|_, t| now.since(t.since) < window);
            if self.tracked.len() >= MAX_TRACKED {
                return;
            }
        }
        let t = self.tracked.entry((vlan, mac)).or_insert(Tracker { since: now, moves: 0, reported: false });
        if now.since(t.since) >= window {
            *t = Tracker { since: now, moves: 0, reported: false };
        }
        t.moves += 1;
        if t.moves < self.moves {
            return;
        }
        let flap = Flap { vlan, mac, moves: t.moves, from, to, last: now };
        match self.recent.iter_mut().find(|f| f.vlan == vlan && f.mac == mac) {
            Some(f) => *f = flap,
            None => {
                if self.recent.len() == MAX_RECENT {
                    self.recent.pop_front();
                }
                self.recent.push_back(flap);
            }
        }
        if !t.reported {
            t.reported = true;
            self.total += 1;
            if self.pending.len() < MAX_RECENT {
                self.pending.push(flap);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }

    fn v(n: u16) -> VlanId {
        VlanId::new(n).unwrap()
    }

    fn bounce(w: &mut FlapWatch, from_ms: u64, every_ms: u64, times: u32, m: MacAddr) {
        for i in 0..times {
            let (a, b) = if i % 2 == 0 { (1, 2) } else { (2, 1) };
            w.moved(Time::from_millis(from_ms + u64::from(i) * every_ms), v(10), m, a, b);
        }
    }

    #[test]
    fn a_single_move_is_not_a_flap() {
        let mut w = FlapWatch::new(DEFAULT_MOVES, DEFAULT_WINDOW_SECS);
        w.moved(Time::from_secs(1), v(10), mac(1), 1, 2);
        assert_eq!(w.total(), 0);
        assert!(!w.has_pending() && w.recent().next().is_none());
    }

    #[test]
    fn moves_within_the_window_make_one_flap_logged_once() {
        let mut w = FlapWatch::new(5, 10);
        bounce(&mut w, 0, 100, 4, mac(1));
        assert_eq!(w.total(), 0, "four moves are below the threshold");
        bounce(&mut w, 400, 100, 20, mac(1));
        assert_eq!(w.total(), 1);
        let logged: Vec<Flap> = w.drain_pending().collect();
        assert_eq!(logged.len(), 1, "logged once per window");
        assert_eq!((logged[0].vlan, logged[0].mac, logged[0].moves), (v(10), mac(1), 5));
        // The recent list follows the count.
        let r: Vec<&Flap> = w.recent().collect();
        assert_eq!((r.len(), r[0].moves), (1, 24));
        // The next window reports again.
        bounce(&mut w, 20_000, 100, 5, mac(1));
        assert_eq!(w.total(), 2);
        assert_eq!(w.drain_pending().count(), 1);
    }

    #[test]
    fn slow_moves_never_flap() {
        let mut w = FlapWatch::new(5, 10);
        bounce(&mut w, 0, 3_000, 50, mac(1));
        assert_eq!(w.total(), 0);
    }

    #[test]
    fn off_when_moves_is_zero() {
        let mut w = FlapWatch::new(0, 10);
        bounce(&mut w, 0, 1, 100, mac(1));
        assert_eq!(w.total(), 0);
    }

    #[test]
    fn bounded_whatever_moves() {
        let mut w = FlapWatch::new(2, 10);
        for n in 0..(MAX_TRACKED as u32 * 3) {
            let m = MacAddr([2, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8, 1]);
            bounce(&mut w, 0, 1, 3, m);
        }
        assert!(w.tracked.len() <= MAX_TRACKED);
        assert!(w.recent().count() <= MAX_RECENT);
        assert!(w.drain_pending().count() <= MAX_RECENT);
        // Once the window has passed, new addresses are followed again.
        bounce(&mut w, 60_000, 1, 3, mac(7));
        assert!(w.recent().any(|f| f.mac == mac(7)));
    }
}
