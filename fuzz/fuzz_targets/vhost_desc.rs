//! The descriptor handling of rvs's vhost-user port, against a driver that writes
//! anything: guest memory (64 KiB) filled from the input, a ring whose size, table
//! and ring addresses come from the input (in or out of memory, misaligned or not),
//! then frames taken off it as from a transmit ring and frames put into it as into a
//! receive ring (mergeable buffers or not), as many as the input says. Must never
//! panic or spin; a frame taken is no longer than rvs's buffers; the used index moves
//! by at most one entry per chain handled.
//!
//! Input: [log2 ring size (low 3 bits) | mergeable (bit 3) | 12-byte header (bit 4)]
//! [desc addr: 2 bytes] [avail addr: 2] [used addr: 2] [next avail: 2] [ops: 1]
//! [frame length: 2] then the guest memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_switch::packet::{MAX_FRAME, PacketBuf};
use rvs_switch::wire::virtio_net_hdr::VnetHdr;
use rvs_vswitchd::port::vhost::virtq::{self, Mem, Pop, Push};
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

const MEM: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() < 14 {
        return;
    }
    let (h, rest) = data.split_at(14);
    let u16_at = |i: usize| u64::from(u16::from_le_bytes([h[i], h[i + 1]]));
    let Ok(mem) = Mem::from_ranges(&[(GuestAddress(0), MEM)]) else { return };
    let n = rest.len().min(MEM);
    let _ = mem.write_slice(&rest[..n], GuestAddress(0));
    let Ok(mut q) = Queue::new(virtq::MAX_RING) else { return };
    if q.try_set_size(1 << (h[0] & 7)).is_err() {
        return;
    }
    // Addresses anywhere in the first 256 KiB: a quarter of them inside the memory.
    let _ = q.try_set_desc_table_address(GuestAddress(u16_at(1) * 4 & !0xf));
    let _ = q.try_set_avail_ring_address(GuestAddress(u16_at(3) * 4 & !1));
    let _ = q.try_set_used_ring_address(GuestAddress(u16_at(5) * 4 & !3));
    q.set_next_avail(u16_at(7) as u16);
    q.set_next_used(u16_at(7) as u16);
    q.set_ready(true);
    if !q.is_valid(&mem) {
        return;
    }
    let (mergeable, hdr_len) = (h[0] & 8 != 0, if h[0] & 16 != 0 { 12 } else { 10 });
    let ops = h[9];
    let frame: Vec<u8> = (0..u16_at(10) as usize).map(|i| i as u8).collect();
    let vnet = VnetHdr { flags: h[12], gso_type: h[13], ..VnetHdr::default() };
    let mut buf = PacketBuf::new();
    let used_before = q.next_used();
    let mut handled = 0u32;
    for k in 0..ops.min(64) {
        if k % 2 == 0 {
            match virtq::pop_frame(&mut q, &mem, hdr_len, &mut buf) {
                Pop::Frame => {
                    assert!(buf.len() <= MAX_FRAME + 64);
                    handled += 1;
                }
                Pop::Bad => handled += 1,
                Pop::Empty | Pop::Broken => break,
            }
        } else {
            match virtq::push_frame(&mut q, &mem, hdr_len, &vnet, &frame, mergeable) {
                Push::Sent | Push::Bad => handled += virtq::MAX_BUFFERS as u32,
                Push::NoRoom => {}
                // Buffers before the one that broke the ring may have gone back.
                Push::Broken => {
                    handled += virtq::MAX_BUFFERS as u32;
                    break;
                }
            }
        }
    }
    let moved = u32::from(q.next_used().wrapping_sub(used_before));
    assert!(moved <= handled, "used index moved {moved} for {handled}");
});
