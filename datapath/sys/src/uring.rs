//! io_uring for writing batches of frames to one fd (a tap) in one system call.
//!
//! Each worker thread gets its own ring the first time it writes a batch: a ring is a
//! per-thread resource and needs no lock that way. Every write is submitted, then the
//! call waits for all of their completions before it returns, so the buffers handed in
//! are only borrowed for the call — no frame is referenced after it. A tap write never
//! blocks (a full queue drops), so the writes complete while they are submitted.
//!
//! Where io_uring is missing or refused (an old kernel, `kernel.io_uring_disabled`, a
//! seccomp filter), [`write_batch`] says so and the caller writes frame by frame.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};

use io_uring::{IoUring, opcode, types};

/// Writes in flight per submission (a batch is split into chunks of this many).
const DEPTH: usize = 64;

thread_local! {
    /// This thread's ring; `None` until first used, `Some(None)` when io_uring is
    /// unavailable here.
    static RING: RefCell<Option<Option<IoUring>>> = const { RefCell::new(None) };
}

/// How this thread writes batches to taps, for `rvs/workers`.
pub fn status() -> &'static str {
    if super::plain_io() {
        return "one write per frame (--plain-io)";
    }
    RING.with(|cell| match &*cell.borrow() {
        None => "io_uring (not used yet)",
        Some(Some(_)) => "io_uring, one submission per batch",
        Some(None) => "one write per frame (io_uring unavailable or failed, see the log)",
    })
}

/// Writes each frame — its slices gathered, as `writev(2)` would — to `fd`, one
/// io_uring submission per up to [`DEPTH`] frames. `results[i]` gets frame `i`'s
/// outcome: bytes written, or the negated errno. Returns `Ok(false)` without writing
/// anything when io_uring cannot be used on this thread; `Err` when the submission
/// itself failed (nothing is left in flight either way).
pub fn write_batch(fd: BorrowedFd<'_>, frames: &[[IoSlice<'_>; 2]], results: &mut [i32]) -> io::Result<bool> {
    assert_eq!(frames.len(), results.len(), "a result slot per frame");
    if super::plain_io() {
        return Ok(false);
    }
    RING.with(|cell| {
        let mut slot = cell.borrow_mut();
        let ring = slot.get_or_insert_with(|| match IoUring::new(DEPTH as u32) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::info!("io_uring unavailable ({e}): taps are written one frame per system call");
                None
            }
        });
        let Some(ring) = ring.as_mut() else { return Ok(false) };
        let Err(e) = submit_all(ring, fd, frames, results) else { return Ok(true) };
        // The ring is unusable. Entries it may still hold must never reach the kernel
        // once their buffers are gone: keep it mapped and never enter it again; this
        // thread writes frame by frame from now on.
        tracing::warn!("io_uring failed ({e}): this worker writes taps one frame per system call from now on");
        if let Some(r) = slot.take().flatten() {
            std::mem::forget(r);
        }
        *slot = Some(None);
        Err(e)
    })
}

/// Submits the writes and waits for all of them; `Err` only when the ring kept
/// refusing to submit.
fn submit_all(ring: &mut IoUring, fd: BorrowedFd<'_>, frames: &[[IoSlice<'_>; 2]], results: &mut [i32]) -> io::Result<()> {
    for (at, chunk) in frames.chunks(DEPTH).enumerate() {
        let base = at * DEPTH;
        for (i, iov) in chunk.iter().enumerate() {
            // `IoSlice` is ABI-compatible with `struct iovec` (std guarantees it on Unix).
            let e = opcode::Writev::new(types::Fd(fd.as_raw_fd()), iov.as_ptr().cast::<libc::iovec>(), iov.len() as u32).build().user_data((base + i) as u64);
            // SAFETY: the iovecs and the memory they point to are borrowed for the whole
            // of `write_batch`, which waits below for every entry pushed here to complete
            // (or, if the ring fails, never enters it again); the queue has room for
            // `DEPTH` entries and holds none between calls.
            unsafe { ring.submission().push(&e) }.map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        let (mut done, mut tries) = (0, 0);
        while done < chunk.len() {
            if let Err(e) = ring.submit_and_wait(chunk.len() - done) {
                tries += 1;
                if tries > 100 {
                    return Err(e);
                }
                std::thread::yield_now();
            }
            for c in ring.completion() {
                if let Some(r) = results.get_mut(c.user_data() as usize) {
                    *r = c.result();
                }
                done += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};

    #[test]
    fn frames_arrive_whole_and_in_order() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: pipe(2) just returned these two open descriptors, owned by nobody else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let frames: Vec<(Vec<u8>, Vec<u8>)> = (0..100u8).map(|i| (vec![i; 3], vec![i.wrapping_add(1); i as usize % 7])).collect();
        let slices: Vec<[IoSlice<'_>; 2]> = frames.iter().map(|(h, f)| [IoSlice::new(h), IoSlice::new(f)]).collect();
        let mut results = vec![0; frames.len()];
        if !write_batch(w.as_fd(), &slices, &mut results).expect("submission") {
            eprintln!("io_uring unavailable here: nothing to test");
            return;
        }
        let want: Vec<u8> = frames.iter().flat_map(|(h, f)| h.iter().chain(f).copied()).collect();
        for (i, (h, f)) in frames.iter().enumerate() {
            assert_eq!(results[i], (h.len() + f.len()) as i32, "frame {i}");
        }
        drop(w);
        let mut got = Vec::new();
        std::fs::File::from(r).read_to_end(&mut got).unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn errors_come_back_per_frame() {
        let mut fds = [0; 2];
        // SAFETY: as above.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: as above.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        drop(r);
        let data = [1u8; 4];
        let slices = [[IoSlice::new(&data), IoSlice::new(&data)]];
        let mut results = [0];
        // (Rust's runtime ignores SIGPIPE: the write fails with EPIPE.)
        if write_batch(w.as_fd(), &slices, &mut results).expect("submission") {
            assert_eq!(results[0], -libc::EPIPE);
        }
    }
}
