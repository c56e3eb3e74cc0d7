//! The MAC learning table (forwarding database) of one bridge.
//!
//! Keyed by (VLAN, MAC). Entries are learned from source addresses, expire after the
//! bridge's aging time without being seen, and the table is bounded: when it is full, a
//! new address evicts the least recently seen entry of the port that holds the most
//! entries (Open vSwitch's policy in lib/mac-learning.c, which keeps one noisy port from
//! flushing everybody else's addresses). Static entries (`fdb/add`) never age and are
//! never evicted.
//!
//! The keys are chosen by whoever sends frames, so the index is a `HashMap` with std's
//! `RandomState` (SipHash with a per-table random key): an attacker cannot aim frames at
//! one hash bucket.
//!
//! Storage is a slab of entries threaded on two intrusive doubly linked lists, one
//! global (ordered by last refresh, so expiry pops from the front) and one per port
//! (ordered the same way, so eviction pops the port's oldest). Refreshing an entry seen
//! again within a second of its last refresh does nothing at all: the hot path for a
//! known source is one hash lookup.
//!
//! Invariant: `len() <= capacity()` after every call.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;

use crate::time::Time;
use crate::types::{MacAddr, VlanId};

/// Index of a port within its bridge (dense, assigned by the core).
pub type PortIdx = u16;

const NIL: u32 = u32::MAX;
/// Refreshes closer together than this are not recorded (age is shown in seconds).
const REFRESH_GRANULARITY_MS: u64 = 1000;

/// Default `other_config:mac-aging-time` (seconds).
pub const DEFAULT_AGING_SECS: u32 = 300;
/// Default `other_config:mac-table-size`.
pub const DEFAULT_CAPACITY: usize = 8192;

/// OVS clamps the aging time to 15..=3600 seconds (lib/mac-learning.c,
/// `normalize_idle_time`); so does rvs.
pub fn normalize_aging_secs(secs: i64) -> u32 {
    secs.clamp(15, 3600) as u32
}

#[inline]
fn key(vlan: VlanId, mac: MacAddr) -> u64 {
    let m = mac.0;
    (u64::from(vlan.get()) << 48) | u64::from_be_bytes([0, 0, m[0], m[1], m[2], m[3], m[4], m[5]])
}

fn unkey(k: u64) -> (VlanId, MacAddr) {
    let b = k.to_be_bytes();
    (VlanId::from_tci((k >> 48) as u16), MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]))
}

#[derive(Clone, Copy)]
struct Links {
    prev: u32,
    next: u32,
}

const UNLINKED: Links = Links { prev: NIL, next: NIL };

#[derive(Clone)]
struct Entry {
    key: u64,
    port: PortIdx,
    last_seen: Time,
    is_static: bool,
    /// Order of the last insert or refresh, over static and dynamic entries alike:
    /// `fdb/show` lists entries in this order, as OVS lists its single LRU list.
    seq: u64,
    /// Until when a gratuitous ARP received on a bond may not move it
    /// ([`MacTable::lock_grat_arp`]); `Time::ZERO` if never locked.
    grat_lock: Time,
    global: Links,
    local: Links,
}

#[derive(Clone, Copy, Default)]
struct List {
    head: u32,
    tail: u32,
    len: u32,
}

const EMPTY: List = List { head: NIL, tail: NIL, len: 0 };

/// Counters shown by `fdb/stats-show`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdbStats {
    pub learned: u64,
    pub expired: u64,
    pub evicted: u64,
    pub moved: u64,
}

/// One row of `fdb/show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdbEntry {
    pub vlan: VlanId,
    pub mac: MacAddr,
    pub port: PortIdx,
    /// Seconds since the entry was last refreshed; `None` for static entries.
    pub age_secs: Option<u64>,
}

/// What `learn` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learned {
    /// Address already known on this port, refreshed recently: nothing changed.
    Known,
    /// Address already known on this port; its age was reset.
    Refreshed,
    New,
    /// Address moved from the given port.
    Moved(PortIdx),
    /// Not learned: the address is static on another port, the source is multicast, or
    /// the table is full of static entries.
    Refused,
    /// Not learned: a gratuitous ARP received on a bond while the address's entry is
    /// locked, because a gratuitous ARP for it came in on a port that is not a bond
    /// moments ago (OVS's lock against such ARPs reflected back over another member).
    GratArpLocked,
}

/// What [`MacTable::learn`] would do (see [`MacTable::would_learn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WouldLearn {
    pub learned: Learned,
    /// The (VLAN, MAC) a new entry would push out of a full table.
    pub evicts: Option<(VlanId, MacAddr)>,
}

/// The learning decision before it is carried out: entries by slab index.
enum Plan {
    Refuse,
    Known,
    Refresh(u32),
    Move(u32, PortIdx),
    /// A new entry, evicting the given one first.
    Insert(Option<u32>),
}

/// The forwarding database of one bridge.
pub struct MacTable {
    index: HashMap<u64, u32, RandomState>,
    slab: Vec<Entry>,
    free: Vec<u32>,
    lru: List,
    per_port: Vec<List>,
    capacity: usize,
    aging_ms: u64,
    n_static: usize,
    stats: FdbStats,
    seq: u64,
}

impl MacTable {
    pub fn new(capacity: usize, aging_secs: u32) -> MacTable {
        MacTable {
            index: HashMap::with_hasher(RandomState::new()),
            slab: Vec::new(),
            free: Vec::new(),
            lru: EMPTY,
            per_port: Vec::new(),
            capacity: capacity.max(1),
            aging_ms: u64::from(aging_secs) * 1000,
            n_static: 0,
            stats: FdbStats::default(),
            seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn static_count(&self) -> usize {
        self.n_static
    }

    pub fn aging_secs(&self) -> u32 {
        (self.aging_ms / 1000) as u32
    }

    pub fn stats(&self) -> FdbStats {
        self.stats
    }

    pub fn clear_stats(&mut self) {
        self.stats = FdbStats::default();
    }

    /// Bytes of memory per entry (slab entry + index slot), for the benchmarks' report.
    pub fn bytes_per_entry() -> usize {
        std::mem::size_of::<Entry>() + std::mem::size_of::<(u64, u32)>() + 1
    }

    /// Changes capacity and aging. Shrinking evicts (by the usual policy) at once.
    pub fn configure(&mut self, capacity: usize, aging_secs: u32) {
        self.capacity = capacity.max(1);
        self.aging_ms = u64::from(aging_secs) * 1000;
        while self.len() > self.capacity {
            if !self.evict_one() {
                break;
            }
        }
    }

    /// The port `mac` was learned on in `vlan`.
    #[inline]
    pub fn lookup(&self, vlan: VlanId, mac: MacAddr) -> Option<PortIdx> {
        self.index.get(&key(vlan, mac)).map(|&i| self.slab[i as usize].port)
    }

    /// Whether (`vlan`, `mac`) is locked against gratuitous ARPs from bonds at `now`.
    #[inline]
    pub fn grat_arp_locked(&self, vlan: VlanId, mac: MacAddr, now: Time) -> bool {
        self.index.get(&key(vlan, mac)).is_some_and(|&i| now < self.slab[i as usize].grat_lock)
    }

    /// Locks (`vlan`, `mac`)'s entry, if there is one, against gratuitous ARPs received
    /// on a bond until `until` (mac_entry_set_grat_arp_lock).
    pub fn lock_grat_arp(&mut self, vlan: VlanId, mac: MacAddr, until: Time) {
        if let Some(&i) = self.index.get(&key(vlan, mac)) {
            let e = &mut self.slab[i as usize];
            e.grat_lock = e.grat_lock.max(until);
        }
    }

    /// Learns that `mac` in `vlan` is behind `port` at `now`.
    #[inline]
    pub fn learn(&mut self, now: Time, vlan: VlanId, mac: MacAddr, port: PortIdx) -> Learned {
        // One decision ([`MacTable::plan`], also behind `would_learn`), then carried out:
        // a trace predicts exactly what forwarding does.
        match self.plan(now, vlan, mac, port) {
            Plan::Refuse => Learned::Refused,
            Plan::Known => Learned::Known,
            Plan::Refresh(i) => {
                self.touch(i, now);
                Learned::Refreshed
            }
            Plan::Move(i, old) => {
                self.relink(i, port, now);
                self.stats.moved += 1;
                Learned::Moved(old)
            }
            Plan::Insert(victim) => {
                if let Some(v) = victim {
                    self.remove_slot(v);
                    self.stats.evicted += 1;
                }
                self.insert(key(vlan, mac), port, now, false);
                self.stats.learned += 1;
                Learned::New
            }
        }
    }

    /// What [`MacTable::learn`] would do with the same arguments, changing nothing: the
    /// outcome, and the entry a new address would evict from a full table.
    pub fn would_learn(&self, now: Time, vlan: VlanId, mac: MacAddr, port: PortIdx) -> WouldLearn {
        let (learned, evicts) = match self.plan(now, vlan, mac, port) {
            Plan::Refuse => (Learned::Refused, None),
            Plan::Known => (Learned::Known, None),
            Plan::Refresh(_) => (Learned::Refreshed, None),
            Plan::Move(_, old) => (Learned::Moved(old), None),
            Plan::Insert(v) => (Learned::New, v.map(|i| unkey(self.slab[i as usize].key))),
        };
        WouldLearn { learned, evicts }
    }

    /// The learning decision, shared by `learn` and `would_learn`.
    #[inline]
    fn plan(&self, now: Time, vlan: VlanId, mac: MacAddr, port: PortIdx) -> Plan {
        if mac.is_multicast() {
            return Plan::Refuse;
        }
        if let Some(&i) = self.index.get(&key(vlan, mac)) {
            let e = &self.slab[i as usize];
            if e.is_static {
                return Plan::Refuse;
            }
            if e.port == port {
                if now.since(e.last_seen) >= REFRESH_GRANULARITY_MS {
                    return Plan::Refresh(i);
                }
                return Plan::Known;
            }
            return Plan::Move(i, e.port);
        }
        if self.len() >= self.capacity {
            return match self.victim() {
                Some(v) => Plan::Insert(Some(v)),
                None => Plan::Refuse,
            };
        }
        Plan::Insert(None)
    }

    /// Applies what another worker's replica of this table learned: `mac` in `vlan`
    /// was seen behind `port` at `seen`. Newer news wins (ties by the higher port
    /// index, so two replicas that learned a move at the same moment agree); static
    /// entries and multicast addresses are left alone. Not counted in the statistics
    /// (the worker that learned it counted it). Returns whether anything changed.
    pub fn apply_remote(&mut self, vlan: VlanId, mac: MacAddr, port: PortIdx, seen: Time) -> bool {
        if mac.is_multicast() {
            return false;
        }
        let k = key(vlan, mac);
        if let Some(&i) = self.index.get(&k) {
            let e = &self.slab[i as usize];
            if e.is_static || (seen, port) <= (e.last_seen, e.port) {
                return false;
            }
            self.relink(i, port, seen);
            return true;
        }
        if self.len() >= self.capacity && !self.evict_one() {
            return false;
        }
        self.insert(k, port, seen, false);
        true
    }

    /// Adds or replaces a static entry. Returns `false` when the table is full of static
    /// entries and nothing can be evicted.
    pub fn add_static(&mut self, vlan: VlanId, mac: MacAddr, port: PortIdx) -> bool {
        let k = key(vlan, mac);
        if let Some(&i) = self.index.get(&k) {
            self.remove_slot(i);
        } else if self.len() >= self.capacity && !self.evict_one() {
            return false;
        }
        self.insert(k, port, Time::ZERO, true);
        true
    }

    /// Removes the entry for (`vlan`, `mac`), static or not. Returns whether one existed.
    pub fn remove(&mut self, vlan: VlanId, mac: MacAddr) -> bool {
        match self.index.get(&key(vlan, mac)) {
            Some(&i) => {
                self.remove_slot(i);
                true
            }
            None => false,
        }
    }

    /// Removes every dynamic entry (`fdb/flush`). Static entries stay.
    pub fn flush(&mut self) {
        while self.lru.head != NIL {
            self.remove_slot(self.lru.head);
        }
    }

    /// Removes every entry, static ones too, that points at `port`.
    pub fn flush_port(&mut self, port: PortIdx) {
        let victims: Vec<u32> = self.index.values().copied().filter(|&i| self.slab[i as usize].port == port).collect();
        for i in victims {
            self.remove_slot(i);
        }
    }

    /// Renumbers ports after a reconfiguration: `map[old]` is the new index, or `None`
    /// when the port is gone (its entries are removed).
    pub fn remap_ports(&mut self, map: &[Option<PortIdx>]) {
        let victims: Vec<u32> = self.index.values().copied().filter(|&i| map.get(self.slab[i as usize].port as usize).copied().flatten().is_none()).collect();
        for i in victims {
            self.remove_slot(i);
        }
        let mut new_lists = vec![EMPTY; map.iter().flatten().map(|&p| p as usize + 1).max().unwrap_or(0)];
        for (old, list) in self.per_port.iter().enumerate() {
            if let Some(Some(new)) = map.get(old) {
                new_lists[*new as usize] = *list;
            }
        }
        for e in self.slab.iter_mut() {
            if let Some(Some(new)) = map.get(e.port as usize) {
                e.port = *new;
            }
        }
        self.per_port = new_lists;
    }

    /// Removes entries not seen for the aging time. Returns how many expired.
    pub fn age(&mut self, now: Time) -> usize {
        let mut n = 0;
        while self.lru.head != NIL {
            let i = self.lru.head;
            if now.since(self.slab[i as usize].last_seen) < self.aging_ms {
                break;
            }
            self.remove_slot(i);
            self.stats.expired += 1;
            n += 1;
        }
        n
    }

    /// When the next entry expires, if any.
    pub fn next_expiry(&self) -> Option<Time> {
        (self.lru.head != NIL).then(|| self.slab[self.lru.head as usize].last_seen + self.aging_ms)
    }

    /// All entries, for `fdb/show`, from least to most recently inserted or refreshed
    /// (static entries by when they were added), the order OVS lists them in.
    pub fn entries(&self, now: Time) -> Vec<FdbEntry> {
        let mut slots: Vec<u32> = self.index.values().copied().collect();
        slots.sort_by_key(|&i| self.slab[i as usize].seq);
        slots
            .into_iter()
            .map(|i| {
                let e = &self.slab[i as usize];
                let (vlan, mac) = unkey(e.key);
                FdbEntry { vlan, mac, port: e.port, age_secs: (!e.is_static).then(|| now.since(e.last_seen) / 1000) }
            })
            .collect()
    }

    /// Number of entries on `port`, static entries included.
    pub fn port_len(&self, port: PortIdx) -> usize {
        let dynamic = self.per_port.get(port as usize).map_or(0, |l| l.len as usize);
        dynamic + self.slab_static_on(port)
    }

    fn slab_static_on(&self, port: PortIdx) -> usize {
        if self.n_static == 0 {
            return 0;
        }
        self.index
            .values()
            .filter(|&&i| {
                let e = &self.slab[i as usize];
                e.is_static && e.port == port
            })
            .count()
    }

    // ---- internals -------------------------------------------------------------

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn insert(&mut self, k: u64, port: PortIdx, now: Time, is_static: bool) {
        let seq = self.next_seq();
        let e = Entry { key: k, port, last_seen: now, is_static, seq, grat_lock: Time::ZERO, global: UNLINKED, local: UNLINKED };
        let i = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = e;
                i
            }
            None => {
                self.slab.push(e);
                (self.slab.len() - 1) as u32
            }
        };
        self.index.insert(k, i);
        if is_static {
            self.n_static += 1;
        } else {
            self.link(i);
        }
    }

    fn remove_slot(&mut self, i: u32) {
        let e = &self.slab[i as usize];
        let k = e.key;
        if e.is_static {
            self.n_static -= 1;
        } else {
            self.unlink(i);
        }
        self.index.remove(&k);
        self.free.push(i);
    }

    fn touch(&mut self, i: u32, now: Time) {
        let port = self.slab[i as usize].port;
        self.relink(i, port, now);
    }

    /// Puts dynamic entry `i` on `port` (maybe the one it is on), seen at `now`: to
    /// the tail of the global and the port's list.
    fn relink(&mut self, i: u32, port: PortIdx, now: Time) {
        self.unlink(i);
        let seq = self.next_seq();
        let e = &mut self.slab[i as usize];
        e.port = port;
        e.last_seen = now;
        e.seq = seq;
        self.link(i);
    }

    /// Evicts the oldest dynamic entry of the port with the most dynamic entries.
    fn evict_one(&mut self) -> bool {
        match self.victim() {
            Some(i) => {
                self.remove_slot(i);
                self.stats.evicted += 1;
                true
            }
            None => false,
        }
    }

    /// The entry eviction would remove: the oldest dynamic entry of the port with the
    /// most dynamic entries.
    fn victim(&self) -> Option<u32> {
        self.per_port.iter().filter(|l| l.len > 0).max_by_key(|l| l.len).map(|l| l.head)
    }

    /// Appends dynamic entry `i` at the tail of the global and its port's list.
    fn link(&mut self, i: u32) {
        let port = self.slab[i as usize].port as usize;
        if self.per_port.len() <= port {
            self.per_port.resize(port + 1, EMPTY);
        }
        let gtail = self.lru.tail;
        self.slab[i as usize].global = Links { prev: gtail, next: NIL };
        if gtail == NIL {
            self.lru.head = i;
        } else {
            self.slab[gtail as usize].global.next = i;
        }
        self.lru.tail = i;
        self.lru.len += 1;

        let ptail = self.per_port[port].tail;
        self.slab[i as usize].local = Links { prev: ptail, next: NIL };
        if ptail == NIL {
            self.per_port[port].head = i;
        } else {
            self.slab[ptail as usize].local.next = i;
        }
        self.per_port[port].tail = i;
        self.per_port[port].len += 1;
    }

    fn unlink(&mut self, i: u32) {
        let Entry { global, local, port, .. } = self.slab[i as usize];
        match global.prev {
            NIL => self.lru.head = global.next,
            p => self.slab[p as usize].global.next = global.next,
        }
        match global.next {
            NIL => self.lru.tail = global.prev,
            n => self.slab[n as usize].global.prev = global.prev,
        }
        self.lru.len -= 1;
        let list = &mut self.per_port[port as usize];
        match local.prev {
            NIL => list.head = local.next,
            p => self.slab[p as usize].local.next = local.next,
        }
        let list = &mut self.per_port[port as usize];
        match local.next {
            NIL => list.tail = local.prev,
            n => self.slab[n as usize].local.prev = local.prev,
        }
        self.per_port[port as usize].len -= 1;
        self.slab[i as usize].global = UNLINKED;
        self.slab[i as usize].local = UNLINKED;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr([0x02, 0, b[0], b[1], b[2], b[3]])
    }
    fn v(n: u16) -> VlanId {
        VlanId::new(n).unwrap()
    }
    fn t(s: u64) -> Time {
        Time::from_secs(s)
    }

    #[test]
    fn remote_updates_newer_wins() {
        let mut f = MacTable::new(16, 300);
        assert!(f.apply_remote(v(10), mac(1), 1, t(5)), "unknown address: inserted");
        assert_eq!(f.lookup(v(10), mac(1)), Some(1));
        assert!(!f.apply_remote(v(10), mac(1), 2, t(4)), "older news of a move is ignored");
        assert_eq!(f.lookup(v(10), mac(1)), Some(1));
        assert!(f.apply_remote(v(10), mac(1), 2, t(6)), "newer news of a move applies");
        assert_eq!(f.lookup(v(10), mac(1)), Some(2));
        assert!(!f.apply_remote(v(10), mac(1), 1, t(6)), "tie: the higher port index wins");
        assert!(f.apply_remote(v(10), mac(1), 2, t(100)), "a refresh");
        assert_eq!(f.entries(t(100))[0].age_secs, Some(0));
        assert_eq!(f.age(t(399)), 0, "the remote refresh reset the age");
        assert!(!f.apply_remote(v(10), MacAddr::BROADCAST, 1, t(7)));
        f.add_static(v(10), mac(9), 3);
        assert!(!f.apply_remote(v(10), mac(9), 1, t(500)), "static entries stay");
        assert_eq!(f.lookup(v(10), mac(9)), Some(3));
        assert_eq!(f.stats(), FdbStats::default(), "remote updates are not counted here");
    }

    #[test]
    fn learn_lookup_move() {
        let mut f = MacTable::new(16, 300);
        assert_eq!(f.learn(t(0), v(10), mac(1), 1), Learned::New);
        assert_eq!(f.lookup(v(10), mac(1)), Some(1));
        assert_eq!(f.lookup(v(20), mac(1)), None, "keyed by VLAN too");
        assert_eq!(f.learn(t(1), v(10), mac(1), 1), Learned::Refreshed);
        assert_eq!(f.learn(Time::from_millis(1500), v(10), mac(1), 1), Learned::Known, "within the refresh granularity");
        assert_eq!(f.learn(t(2), v(10), mac(1), 2), Learned::Moved(1));
        assert_eq!(f.lookup(v(10), mac(1)), Some(2));
        assert_eq!(f.stats(), FdbStats { learned: 1, expired: 0, evicted: 0, moved: 1 });
        assert_eq!(f.port_len(1), 0);
        assert_eq!(f.port_len(2), 1);
    }

    #[test]
    fn never_learns_multicast() {
        let mut f = MacTable::new(16, 300);
        assert_eq!(f.learn(t(0), v(1), MacAddr::BROADCAST, 1), Learned::Refused);
        assert!(f.is_empty());
    }

    #[test]
    fn aging_with_virtual_time() {
        let mut f = MacTable::new(16, 300);
        f.learn(t(0), v(1), mac(1), 1);
        f.learn(t(100), v(1), mac(2), 1);
        assert_eq!(f.next_expiry(), Some(t(300)));
        assert_eq!(f.age(t(299)), 0);
        f.learn(t(250), v(1), mac(1), 1); // refresh: now expires at 550
        assert_eq!(f.age(t(400)), 1, "mac(2) expired at 400");
        assert_eq!(f.lookup(v(1), mac(2)), None);
        assert_eq!(f.lookup(v(1), mac(1)), Some(1));
        assert_eq!(f.next_expiry(), Some(t(550)));
        let rows = f.entries(t(260));
        assert_eq!(rows[0].age_secs, Some(10));
        assert_eq!(f.age(t(550)), 1);
        assert!(f.is_empty());
        assert_eq!(f.stats().expired, 2);
    }

    #[test]
    fn refresh_within_a_second_is_free() {
        let mut f = MacTable::new(16, 300);
        f.learn(Time::from_millis(0), v(1), mac(1), 1);
        f.learn(Time::from_millis(999), v(1), mac(1), 1);
        assert_eq!(f.next_expiry(), Some(t(300)));
        f.learn(Time::from_millis(1000), v(1), mac(1), 1);
        assert_eq!(f.next_expiry(), Some(Time::from_millis(301_000)));
    }

    #[test]
    fn evicts_from_the_busiest_port() {
        let mut f = MacTable::new(4, 300);
        f.learn(t(0), v(1), mac(1), 1); // port 1: oldest
        f.learn(t(1), v(1), mac(2), 2);
        f.learn(t(2), v(1), mac(3), 2);
        f.learn(t(3), v(1), mac(4), 2);
        // full: port 2 holds the most, its oldest (mac 2) goes
        assert_eq!(f.learn(t(4), v(1), mac(5), 3), Learned::New);
        assert_eq!(f.len(), 4);
        assert_eq!(f.lookup(v(1), mac(2)), None);
        assert_eq!(f.lookup(v(1), mac(1)), Some(1), "the quiet port keeps its address");
        assert_eq!(f.stats().evicted, 1);
    }

    #[test]
    fn static_entries() {
        let mut f = MacTable::new(2, 300);
        assert!(f.add_static(v(1), mac(1), 1));
        assert_eq!(f.learn(t(0), v(1), mac(1), 2), Learned::Refused, "static does not move");
        assert_eq!(f.age(t(10_000)), 0);
        assert_eq!(f.lookup(v(1), mac(1)), Some(1));
        assert!(f.add_static(v(1), mac(2), 1));
        assert_eq!(f.learn(t(0), v(1), mac(3), 2), Learned::Refused, "full of static entries");
        f.flush();
        assert_eq!(f.len(), 2, "flush keeps static entries");
        assert_eq!(f.static_count(), 2);
        assert!(f.remove(v(1), mac(1)));
        assert_eq!(f.static_count(), 1);
        assert_eq!(f.entries(t(5))[0].age_secs, None);
    }

    #[test]
    fn shrink_and_remap() {
        let mut f = MacTable::new(8, 300);
        for n in 0..8 {
            f.learn(t(n as u64), v(1), mac(n), (n % 2) as PortIdx);
        }
        f.configure(4, 300);
        assert_eq!(f.len(), 4);
        // port 0 goes away, port 1 becomes port 0
        f.remap_ports(&[None, Some(0)]);
        assert!(f.entries(t(10)).iter().all(|e| e.port == 0));
        assert_eq!(f.len(), 2);
        assert_eq!(f.port_len(0), 2);
        f.flush_port(0);
        assert!(f.is_empty());
        // the lists are still consistent
        f.learn(t(20), v(1), mac(100), 0);
        assert_eq!(f.age(t(400)), 1);
    }
}
