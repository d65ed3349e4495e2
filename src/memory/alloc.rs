//! The counting allocator behind every measured heap figure.
//!
//! Why a counting allocator: `heap_bytes()` is each backend's own account,
//! and an account can be wrong (spare capacity, buffers a crate keeps, boxes
//! forgotten). The bench reports bytes that were actually requested from the
//! allocator while a counter was built, so the numbers are measured, not
//! computed. Counts are per thread (a `Cell` in a `const` thread-local: no
//! allocation, no destructor, no atomics), so concurrent threads — other
//! tests, librdkafka — do not leak into a measurement. The cost is two
//! additions per allocation, low enough to keep installed in the binary.
//!
//! The counters record requested sizes (`Layout::size`), not malloc's chunk
//! overhead or rounding; resident memory ([`crate::memory`]) covers those.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// A `#[global_allocator]` wrapper around [`System`] that counts this
/// thread's live and peak requested bytes. Install it in the binary (as
/// `main.rs`, the benches and the unit tests do) for [`AllocScope`] to see
/// anything; [`is_counting`] tells whether it is installed.
pub struct CountingAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

#[inline(always)]
fn add(delta: isize) {
    // `try_with`: during thread teardown the slots may be gone; skip then.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now);
            }
        });
    });
}

// SAFETY: every method forwards to the system allocator with the caller's
// arguments unchanged and returns its result, so the `GlobalAlloc` contract
// holds as it does for `System`; the counting only touches thread-locals
// and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with
        // this `layout` (the caller's contract).
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's to check.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

fn live() -> isize {
    LIVE.with(Cell::get)
}

/// A measurement on the current thread: bytes allocated and not freed since
/// [`AllocScope::start`], and the highest that got.
#[derive(Debug, Clone, Copy)]
pub struct AllocScope {
    base: isize,
}

impl AllocScope {
    /// Starts measuring (and restarts this thread's peak).
    pub fn start() -> Self {
        let base = live();
        PEAK.with(|p| p.set(base));
        AllocScope { base }
    }

    /// Net bytes allocated since the start (negative if more was freed).
    pub fn live_bytes(&self) -> isize {
        live() - self.base
    }

    /// Highest net bytes since the start (or since the last `start` on this
    /// thread, whichever is later).
    pub fn peak_bytes(&self) -> isize {
        PEAK.with(Cell::get) - self.base
    }
}

/// Net bytes this thread has allocated so far (0 without [`CountingAlloc`]).
/// Unlike [`AllocScope::start`] it leaves the peak alone, so code being
/// measured can read it too (the `roaring` counter's heap account does).
#[inline]
pub fn allocated_on_this_thread() -> isize {
    LIVE.try_with(Cell::get).unwrap_or(0)
}

/// [`is_counting`], probed once per process.
#[inline]
pub fn counting_installed() -> bool {
    static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *INSTALLED.get_or_init(is_counting)
}

/// True when [`CountingAlloc`] is the global allocator (probed with one
/// allocation).
pub fn is_counting() -> bool {
    let scope = AllocScope::start();
    let probe = std::hint::black_box(vec![0u8; 64]);
    let seen = scope.live_bytes() >= 64;
    drop(probe);
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_tests_count_allocations_per_thread() {
        assert!(is_counting());
        let scope = AllocScope::start();
        let v: Vec<u64> = Vec::with_capacity(1000);
        assert_eq!(scope.live_bytes(), 8000);
        drop(v);
        assert_eq!(scope.live_bytes(), 0);
        assert_eq!(scope.peak_bytes(), 8000);
        // A megabyte allocated by another thread is not counted here (the
        // spawn's own bookkeeping is, a few hundred bytes).
        let big = std::thread::spawn(|| vec![0u8; 1 << 20]).join().unwrap();
        assert!(scope.live_bytes().abs() < 4096, "{}", scope.live_bytes());
        drop(big);
    }
}
