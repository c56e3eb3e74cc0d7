//! Rebalancing the buckets of a balance-slb / balance-tcp bond by load, as OVS's
//! bond_rebalance (ofproto/bond.c, 3.1):
//! * each enabled member's load is the sum of its buckets' recent bytes;
//! * while the most loaded member carries more than the least loaded by at least
//!   ~3 % of the latter's load and 100,000 bytes, buckets move from it to the least
//!   loaded one: the heaviest buckets that together stay under half the difference,
//!   stopping when within 10 % of it (or the lightest single bucket if none fits),
//!   and only if that brings the lower load at least 10 % of the way to the middle;
//! * a member with a single loaded bucket is left alone (moving it helps nothing).
//!
//! Runs every rebalance interval, off the packet path; allocates small lists.

use super::lacp::MemberId;
use super::select::{BondMember, Bucket};

/// One rebalancing pass; returns whether any bucket moved.
pub fn run(members: &mut [BondMember], buckets: &mut [Bucket]) -> bool {
    // Each member's loaded buckets, heaviest first (ties in bucket order).
    let mut order: Vec<usize> = (0..buckets.len()).collect();
    order.sort_by(|&a, &b| buckets[b].tx_bytes.cmp(&buckets[a].tx_bytes));
    let mut entries: Vec<Vec<usize>> = vec![Vec::new(); members.len()];
    for m in members.iter_mut() {
        m.tx_bytes = 0;
    }
    for &i in &order {
        if let Some(m) = buckets[i].member
            && buckets[i].tx_bytes > 0
            && m < members.len()
        {
            members[m].tx_bytes += buckets[i].tx_bytes;
            entries[m].push(i);
        }
    }
    // Enabled members, most loaded first.
    let mut bals: Vec<MemberId> = Vec::new();
    for id in (0..members.len()).filter(|&i| members[i].enabled) {
        insert_bal(&mut bals, members, id);
    }
    let mut moved = false;
    while bals.len() >= 2 {
        let (from, to) = (bals[0], bals[bals.len() - 1]);
        let overload = members[from].tx_bytes - members[to].tx_bytes;
        if overload < members[to].tx_bytes >> 5 || overload < 100_000 {
            break;
        }
        let chosen = choose(&entries[from], buckets, members[from].tx_bytes, members[to].tx_bytes);
        if chosen.is_empty() {
            bals.remove(0);
            continue;
        }
        for e in chosen {
            let d = buckets[e].tx_bytes;
            members[from].tx_bytes -= d;
            members[to].tx_bytes += d;
            buckets[e].member = Some(to);
            entries[from].retain(|&x| x != e);
            bals.retain(|&x| x != from && x != to);
            insert_bal(&mut bals, members, from);
            insert_bal(&mut bals, members, to);
        }
        moved = true;
    }
    moved
}

/// Keeps `bals` in descending load; a member goes after those with equal load.
fn insert_bal(bals: &mut Vec<MemberId>, members: &[BondMember], id: MemberId) {
    let pos = bals.iter().position(|&b| members[id].tx_bytes > members[b].tx_bytes).unwrap_or(bals.len());
    bals.insert(pos, id);
}

/// Buckets to move from a member with load `from_tx` (its loaded buckets `entries`,
/// heaviest first) to one with `to_tx` (choose_entries_to_migrate).
fn choose(entries: &[usize], buckets: &[Bucket], from_tx: u64, to_tx: u64) -> Vec<usize> {
    if entries.len() <= 1 {
        return Vec::new();
    }
    let ideal_delta = (from_tx + to_tx) / 2 - to_tx;
    let threshold = ideal_delta / 10;
    let mut delta = 0;
    let mut out = Vec::new();
    for &e in entries {
        if delta + buckets[e].tx_bytes <= ideal_delta {
            out.push(e);
            delta += buckets[e].tx_bytes;
        }
        if ideal_delta - delta < threshold {
            break;
        }
    }
    if out.is_empty() {
        let closest = entries[entries.len() - 1];
        delta = buckets[closest].tx_bytes;
        out.push(closest);
    }
    let new_low = (from_tx - delta).min(to_tx + delta);
    if new_low > to_tx && new_low - to_tx >= threshold { out } else { Vec::new() }
}
