//! The transmit batcher: frames of one receive batch held for the ports that send in
//! batches ([`crate::port::PortIo::batches_tx`]), so that they leave with one system
//! call per port (one io_uring submission, one `sendmmsg`) instead of one each.
//!
//! The batcher owns the worker's receive slots: an input's receive batch is read into
//! them ([`TxBatch::slots`]). Each frame is forwarded swapped into the worker's
//! frame buffer ([`TxBatch::swap`]); a frame whose one output is a batching port stays
//! in its slot, held ([`TxBatch::hold`]) until the worker flushes the batcher
//! ([`TxBatch::take_group`], one port's frames at a time).
//!
//! Invariants: a held frame's slot is not reused until it was flushed (the worker
//! flushes at the end of every receive call); frames for a
//! port leave in the order they came; and whether a frame may be held is said
//! explicitly to the forwarding step ([`Hold`]), never kept in a mode field.

use rvs_switch::packet::PacketBuf;

use super::{PortRef, RX_BATCH};

/// Whether the frame being forwarded may be held: `Some(k)` when it sits in slot `k`
/// (swapped into the worker's buffer) and is one of a batch, so that a single copy to
/// a batching port can wait in that slot for the flush; `None`: every copy goes out at
/// once (after the frames held before it, to keep their order).
pub(super) type Hold = Option<usize>;

/// The receive slots and the frames held in them.
pub(super) struct TxBatch {
    /// `RX_BATCH` packet buffers.
    slots: Vec<PacketBuf>,
    /// Frames held, in arrival order: where each goes and the slot it is in.
    held: Vec<Held>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    to: PortRef,
    slot: usize,
}

/// The frames held for one port, taken from the batcher to be sent together.
pub(super) struct Group {
    pub(super) to: PortRef,
    slots: [usize; RX_BATCH],
    n: usize,
}

impl Group {
    /// Frames in the group (at least one).
    pub(super) fn len(&self) -> usize {
        self.n
    }
}

impl TxBatch {
    pub(super) fn new() -> TxBatch {
        TxBatch { slots: (0..RX_BATCH).map(|_| PacketBuf::new()).collect(), held: Vec::with_capacity(RX_BATCH) }
    }

    /// The first `n` slots, to receive a batch into.
    #[inline]
    pub(super) fn slots(&mut self, n: usize) -> &mut [PacketBuf] {
        &mut self.slots[..n]
    }

    /// Swaps slot `k` with `buf`: before forwarding the frame in it, and back after.
    #[inline]
    pub(super) fn swap(&mut self, k: usize, buf: &mut PacketBuf) {
        std::mem::swap(buf, &mut self.slots[k]);
    }

    /// Whether nothing is held.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Holds the frame in slot `slot` for port `to`.
    #[inline]
    pub(super) fn hold(&mut self, to: PortRef, slot: usize) {
        self.held.push(Held { to, slot });
    }

    /// Takes the frames held for the port the oldest held frame goes to (up to
    /// `RX_BATCH`, in arrival order); the others stay held. `None` when nothing is.
    pub(super) fn take_group(&mut self) -> Option<Group> {
        let to = self.held.first()?.to;
        let mut g = Group { to, slots: [0; RX_BATCH], n: 0 };
        self.held.retain(|h| {
            let mine = h.to == to && g.n < RX_BATCH;
            if mine {
                g.slots[g.n] = h.slot;
                g.n += 1;
            }
            !mine
        });
        Some(g)
    }

    /// The frames of `g`, in order (the first `g.len()` of the array).
    pub(super) fn frames(&self, g: &Group) -> [&PacketBuf; RX_BATCH] {
        std::array::from_fn(|j| &self.slots[g.slots[j.min(g.n - 1)]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: PortRef = PortRef { bridge: 0, port: 1 };
    const B: PortRef = PortRef { bridge: 0, port: 2 };

    #[test]
    fn groups_come_per_port_in_arrival_order() {
        let mut t = TxBatch::new();
        assert!(t.take_group().is_none());
        for (to, slot) in [(A, 0), (B, 1), (A, 2), (B, 3), (A, 4)] {
            t.hold(to, slot);
        }
        let g = t.take_group().unwrap();
        assert_eq!((g.to, &g.slots[..g.len()]), (A, &[0, 2, 4][..]));
        let g = t.take_group().unwrap();
        assert_eq!((g.to, &g.slots[..g.len()]), (B, &[1, 3][..]));
        assert!(t.take_group().is_none() && t.is_empty());
    }
}
