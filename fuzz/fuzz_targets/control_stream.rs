//! The control socket's framing as the daemon reads it: a byte stream holding several
//! requests, arriving in reads of any size. The first bytes of the input choose the
//! frame limit and the sizes of the reads; the rest is the stream. Whatever the read
//! sizes, the frames taken (and where the stream fails) must be the same as when the
//! whole stream arrives at once, and the same as reading it frame by frame by offsets;
//! every frame body decodes to a request or a clean error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rvs_ovsdb::proto::{self, FrameReader, ProtoError, Request};

/// Frames and the failure (a too-long header) of `stream` read in `pieces`.
fn read_all(stream: &[u8], limit: usize, pieces: &mut dyn Iterator<Item = usize>) -> (Vec<Vec<u8>>, Option<usize>) {
    let mut r = FrameReader::new(limit);
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        loop {
            match r.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(ProtoError::TooLarge(n)) => return (frames, Some(n)),
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        if at == stream.len() {
            assert!(r.buffered() < 4 + r.pending_len().unwrap_or(0), "a whole frame was left behind");
            return (frames, None);
        }
        let n = pieces.next().unwrap_or(1).clamp(1, stream.len() - at);
        r.push(&stream[at..at + n]);
        at += n;
        // Held: at most one incomplete frame and the bytes of one read after it.
        assert!(r.buffered() <= 4 + r.pending_len().unwrap_or(0) + n, "held more than a frame and a read");
    }
}

/// The same by offsets, without the reader.
fn by_offsets(stream: &[u8], limit: usize) -> (Vec<Vec<u8>>, Option<usize>) {
    let mut frames = Vec::new();
    let mut at = 0;
    while stream.len() - at >= 4 {
        let len = u32::from_be_bytes(stream[at..at + 4].try_into().unwrap()) as usize;
        if len > limit {
            return (frames, Some(len));
        }
        if stream.len() - at - 4 < len {
            break;
        }
        frames.push(stream[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // Small limits reach the too-long path; 0xff means the daemon's whole limit.
    let limit = if data[0] == 0xff { proto::MAX_FRAME } else { data[0] as usize * 4 };
    let sizes = &data[1..1 + (data[1] as usize % 16).min(data.len() - 2)];
    let stream = &data[1 + sizes.len()..];
    let want = by_offsets(stream, limit);
    assert_eq!(read_all(stream, limit, &mut std::iter::once(stream.len())), want, "at once");
    let mut pieces = sizes.iter().map(|&b| b as usize).cycle();
    assert_eq!(read_all(stream, limit, &mut pieces), want, "in pieces of {sizes:?}");
    for body in &want.0 {
        if let Ok(req) = proto::decode::<Request>(body) {
            let again = proto::encode(&req).expect("a decoded request encodes");
            assert_eq!(proto::decode::<Request>(&again[4..]).expect("round trip"), req);
        }
    }
});
