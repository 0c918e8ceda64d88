//! Allocator tuning for training. A training step allocates and frees tensors of
//! a few hundred kilobytes to a few megabytes; glibc's allocator serves each
//! from a fresh `mmap` and unmaps it on free, so every step paid page faults and
//! page zeroing (a fifth of a small CNN's step time, measured with `perf`). Raising
//! the mmap and trim thresholds keeps freed blocks in the heap for the next step:
//! the small CNN of `bench/trainer.sh` went from about 60 to 95 steps/s.
//! The setting is process-wide and only raises how much freed memory the process
//! keeps (at most its peak use); it is applied once, by the first training.

use std::sync::Once;

/// Applies the tuning (once per process; nothing outside Linux with glibc).
pub(crate) fn keep_freed_blocks() {
    static APPLIED: Once = Once::new();
    APPLIED.call_once(|| {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: `mallopt` only sets allocator parameters; it is called once,
        // before this process's training allocates, and its inputs are constants.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        }
    });
}
