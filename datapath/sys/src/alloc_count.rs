//! For test builds: an allocator that counts, per thread, the allocations made, so
//! that a test can show that a worker forwards frames without allocating. A crate's
//! test build installs it with `#[cfg(test)] #[global_allocator] static A: Counting =
//! Counting;` (rvs-vswitchd's does); nothing else uses it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // Const-initialized and without a destructor: using it never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting allocations (and reallocations) per thread.
pub struct Counting;

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

/// Allocations (and reallocations) the calling thread has made so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

// SAFETY: every call is passed on unchanged to the system allocator, which upholds
// GlobalAlloc's contract; counting touches only a thread-local Cell.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as this function's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as this function's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as this function's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as this function's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
#[global_allocator]
static COUNTING: Counting = Counting;

#[cfg(test)]
mod tests {
    #[test]
    fn counts_this_threads_allocations_only() {
        let other = std::thread::spawn(|| {
            let v: Vec<u64> = (0..100).collect();
            v.len()
        });
        let before = super::allocations();
        let v = std::hint::black_box(vec![1u8; 100]);
        assert_eq!(super::allocations(), before + 1, "one Vec here");
        drop(v);
        assert_eq!(other.join().unwrap(), 100);
    }
}
