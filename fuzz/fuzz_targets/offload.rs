//! The offload code a guest's frames meet: a virtio-net header and a frame, both
//! arbitrary. Checksum completion, segmentation (GSO) and coalescing (GRO) must never
//! panic; segmentation yields at most 64 KiB in segments no longer than the frame's
//! headers plus `gso_size`, and the segments it yields are offered back to a
//! coalescer, which must take or refuse each cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_switch::offload::{self, Coalescer, Layer, MAX_COALESCED, Segmenter};
use rvs_switch::wire::virtio_net_hdr::VnetHdr;

fuzz_target!(|data: &[u8]| {
    if data.len() < 10 {
        return;
    }
    let (hdr, frame) = data.split_at(10);
    let Ok(vnet) = VnetHdr::parse(hdr) else { return };
    let mut copy = frame.to_vec();
    let _ = offload::complete_checksum(&mut copy, &vnet);

    let mut out = vec![0u8; 65536 + 128];
    let mut coalescer = Coalescer::new(vec![0u8; MAX_COALESCED]);
    if let Ok(mut seg) = Segmenter::new(frame, &vnet) {
        let mut total = 0usize;
        // At most 64 KiB of payload in segments of at least one byte.
        for _ in 0..=65536 {
            match seg.next_into(&mut out, 0, Layer::L2) {
                Ok(Some(n)) => {
                    assert!(n <= out.len());
                    total += n;
                    assert!(total <= 64 * (65536 + 128), "segmentation does not end");
                    let _ = coalescer.offer(&out[..n]);
                }
                Ok(None) | Err(_) => break,
            }
        }
    }
    let _ = coalescer.offer(frame);
    let _ = coalescer.flush();
});
