//! The descriptor handling of a virtio-net device's split virtqueues, with no I/O: a
//! frame taken off a transmit ring into a [`PacketBuf`], a frame put into receive
//! buffers (mergeable or not), the guest told. Guest memory is read and written only
//! through vm-memory's checked accessors, and rings are walked by virtio-queue, which
//! bounds chains (`ttl`, indirect tables checked against their size).
//!
//! A driver that lies — a chain that leaves guest memory, a writable buffer where a
//! frame should be read, a frame larger than rvs's buffers, an available index that
//! jumps past the ring — costs it that frame ([`Pop::Bad`], the chain returned with
//! length 0) or the ring ([`Pop::Broken`]/[`Push::Broken`]: the caller stops the ring
//! until the frontend sets it up again). Nothing here panics on what the guest wrote;
//! `fuzz/fuzz_targets/vhost_desc.rs` drives both directions over random memory.

use std::sync::Arc;

use rvs_switch::packet::PacketBuf;
use rvs_switch::wire::virtio_net_hdr::VnetHdr;
use rvs_sys::epoll::EventFd;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Guest memory as the frontend shared it.
pub type Mem = GuestMemoryMmap<()>;

/// The largest ring a frontend may set up (QEMU's virtio-net allows 1024 entries); a
/// larger one is refused.
pub const MAX_RING: u16 = 1024;

/// The shortest frame taken from a guest: an Ethernet header.
const ETH_MIN: usize = 14;

/// Receive buffers one frame may fill with mergeable buffers: more is a driver
/// posting absurdly small buffers, and the frame is dropped.
pub const MAX_BUFFERS: usize = 128;

/// One virtqueue and what the frontend told about it.
pub struct Ring {
    pub queue: Queue,
    /// The guest's memory (the same for every ring of a device).
    pub mem: Option<Arc<Mem>>,
    /// The driver's doorbell (`SET_VRING_KICK`); for a transmit ring it is also watched
    /// by the worker (through the pair's wake epoll).
    pub kick: Option<EventFd>,
    /// How the device interrupts the driver (`SET_VRING_CALL`).
    pub call: Option<EventFd>,
    /// A kick fd was given: the ring runs (vhost-user: "started").
    pub started: bool,
    /// `SET_VRING_ENABLE`'s last word; a ring is enabled until the frontend disables
    /// it. (The protocol has rings start disabled once protocol features are
    /// negotiated, but QEMU 7.2 sends its enabling `SET_VRING_ENABLE` before
    /// `SET_FEATURES`, which the `vhost` crate refuses, and never again: as DPDK,
    /// which takes the early message, rvs has such rings run.)
    pub enabled: bool,
    /// The driver broke the ring; it stays stopped until set up again.
    pub broken: bool,
}

impl Ring {
    pub fn new() -> Ring {
        // MAX_RING is a power of two, which is all Queue::new checks.
        let queue = Queue::new(MAX_RING).unwrap_or_else(|_| unreachable!("MAX_RING is a power of two"));
        Ring { queue, mem: None, kick: None, call: None, started: false, enabled: true, broken: false }
    }

    /// Back to the state before the frontend set it up (a disconnect, a reset).
    pub fn reset(&mut self) {
        *self = Ring::new();
    }

    /// The memory of a ring frames may move on now.
    pub fn live(&self) -> Option<&Mem> {
        let mem = self.mem.as_deref()?;
        (self.started && self.enabled && !self.broken && self.queue.ready()).then_some(mem)
    }

    /// Interrupts the driver if it wants to be (it may have suppressed interrupts).
    pub fn notify(&mut self) {
        let (Some(mem), Some(call)) = (self.mem.as_deref(), self.call.as_ref()) else { return };
        if self.queue.needs_notification(mem).unwrap_or(true) {
            call.notify();
        }
    }
}

impl Default for Ring {
    fn default() -> Ring {
        Ring::new()
    }
}

/// What [`pop_frame`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop {
    /// A frame is in the buffer, its offload state in `buf.vnet`.
    Frame,
    /// A chain that was not a frame (see the module docs); it was returned to the driver.
    Bad,
    /// Nothing offered.
    Empty,
    /// The ring itself is broken.
    Broken,
}

/// Takes the next frame the driver offers on transmit ring `q` into `buf`: a
/// `hdr_len`-byte virtio-net header, then the frame, in the chain's readable buffers.
pub fn pop_frame(q: &mut Queue, mem: &Mem, hdr_len: usize, buf: &mut PacketBuf) -> Pop {
    let chain = match q.iter(mem) {
        Ok(mut it) => it.next(),
        Err(_) => return Pop::Broken,
    };
    let Some(chain) = chain else { return Pop::Empty };
    let head = chain.head_index();
    let area = buf.rx_area_after(hdr_len);
    let mut n = 0usize;
    let mut ok = true;
    // virtio-queue ends a chain early, silently, where it cannot go on (a loop, a bad
    // indirect table, 4 GiB in total): a chain whose last descriptor still says
    // "next" was cut short and is not a frame.
    let mut cut = false;
    for d in chain {
        let len = d.len() as usize;
        if d.is_write_only() || len > area.len() - n || mem.read_slice(&mut area[n..n + len], d.addr()).is_err() {
            ok = false;
            break;
        }
        n += len;
        cut = d.has_next();
    }
    if q.add_used(mem, head, 0).is_err() {
        return Pop::Broken;
    }
    if !ok || cut || n < hdr_len + ETH_MIN {
        return Pop::Bad;
    }
    buf.set_len(n - hdr_len);
    match VnetHdr::parse(buf.rx_prefix(hdr_len)) {
        Ok(v) => {
            buf.vnet = v;
            Pop::Frame
        }
        Err(_) => Pop::Bad,
    }
}

/// What [`push_frame`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The frame is in the driver's buffers.
    Sent,
    /// Not enough buffers posted (or a frame too large for one buffer without
    /// mergeable buffers): dropped, nothing taken from the ring.
    NoRoom,
    /// The driver's buffers are bad (not writable, outside its memory); they were
    /// returned empty and the frame dropped.
    Bad,
    /// The ring itself is broken.
    Broken,
}

/// Where the header goes: the first bytes of the first buffer, which may be split
/// over descriptors (at most one per header byte).
struct HdrSpots {
    spots: [(GuestAddress, usize); 12],
    n: usize,
}

/// Puts `frame`, after a `hdr_len`-byte virtio-net header made from `vnet`, into
/// receive ring `q`: in one buffer, or spread over as many as it takes when
/// `mergeable` (the header's `num_buffers` says how many). The header is written last,
/// once the count is known.
pub fn push_frame(q: &mut Queue, mem: &Mem, hdr_len: usize, vnet: &VnetHdr, frame: &[u8], mergeable: bool) -> Push {
    let start = q.next_avail();
    let total = hdr_len + frame.len();
    let mut used = [(0u16, 0u32); MAX_BUFFERS];
    let (mut nbufs, mut off) = (0usize, 0usize);
    let mut hdr = HdrSpots { spots: [(GuestAddress(0), 0); 12], n: 0 };
    let mut bad = false;
    while off < total {
        if nbufs == MAX_BUFFERS || (nbufs == 1 && !mergeable) {
            q.set_next_avail(start);
            return Push::NoRoom;
        }
        let chain = match q.iter(mem) {
            Ok(mut it) => it.next(),
            Err(_) => return Push::Broken,
        };
        let Some(chain) = chain else {
            q.set_next_avail(start);
            return Push::NoRoom;
        };
        let head = chain.head_index();
        let before = off;
        for d in chain {
            if !d.is_write_only() {
                bad = true;
                break;
            }
            let (addr, len) = (d.addr(), d.len() as usize);
            let mut done = 0;
            while done < len && off < total {
                let at = addr.0.checked_add(done as u64).map(GuestAddress);
                let Some(at) = at else {
                    bad = true;
                    break;
                };
                if off < hdr_len {
                    // Header bytes: remember where, write at the end.
                    let k = (hdr_len - off).min(len - done);
                    hdr.spots[hdr.n] = (at, k);
                    hdr.n += 1;
                    off += k;
                    done += k;
                    continue;
                }
                let k = (total - off).min(len - done);
                if mem.write_slice(&frame[off - hdr_len..off - hdr_len + k], at).is_err() {
                    bad = true;
                    break;
                }
                off += k;
                done += k;
            }
            if bad || off == total {
                break;
            }
        }
        used[nbufs] = (head, (off - before) as u32);
        nbufs += 1;
        if bad {
            break;
        }
    }
    let mut h = [0u8; 12];
    vnet.emit(&mut h[..hdr_len]);
    if hdr_len == 12 {
        h[10..12].copy_from_slice(&(nbufs as u16).to_le_bytes());
    }
    let mut at = 0;
    for &(addr, k) in &hdr.spots[..hdr.n] {
        if bad || mem.write_slice(&h[at..at + k], addr).is_err() {
            bad = true;
            break;
        }
        at += k;
    }
    for &(head, len) in &used[..nbufs] {
        if q.add_used(mem, head, if bad { 0 } else { len }).is_err() {
            return Push::Broken;
        }
    }
    if bad { Push::Bad } else { Push::Sent }
}
