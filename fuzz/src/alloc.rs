//! [`CountingAlloc`]: a global allocator that counts live bytes, keeps their peak and
//! refuses requests above a limit, so a fuzz run measures memory per input and an absurd
//! allocation ends the run with a report instead of exhausting the machine.
//!
//! Binaries and tests opt in with `#[global_allocator] static A: CountingAlloc =
//! CountingAlloc;`; without it every reading is 0.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static ON_REFUSE: OnceLock<fn(usize)> = OnceLock::new();

/// The system allocator, counted.
pub struct CountingAlloc;

fn grow(size: usize) -> bool {
    let live = LIVE.fetch_add(size, Ordering::Relaxed).saturating_add(size);
    if live > LIMIT.load(Ordering::Relaxed) {
        LIVE.fetch_sub(size, Ordering::Relaxed);
        if let Some(f) = ON_REFUSE.get() {
            f(size);
        }
        return false;
    }
    PEAK.fetch_max(live, Ordering::Relaxed);
    true
}

// SAFETY: every method forwards to `System` with the caller's layout; the counters only
// decide whether to forward, and a refused request returns null as the trait allows.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller upholds `alloc`'s contract for `layout`.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (we forward every alloc).
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !grow(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                LIVE.fetch_sub(new_size - old, Ordering::Relaxed);
            }
        } else if new_size < old {
            LIVE.fetch_sub(old - new_size, Ordering::Relaxed);
        }
        p
    }
}

/// Bytes allocated and not yet freed.
pub fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// The highest [`live`] since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Starts a new peak measurement at the current live bytes.
pub fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

/// Refuses any request that would take live bytes above `bytes` (the process then aborts
/// with Rust's allocation-failure message), after calling `on_refuse` with the request's
/// size. `on_refuse` must not allocate; it is set once per process.
pub fn set_limit(bytes: usize, on_refuse: fn(usize)) {
    LIMIT.store(bytes, Ordering::Relaxed);
    let _ = ON_REFUSE.set(on_refuse);
}
