//! Keeping the server's memory to what it holds, across reloads of many keys.
//!
//! A start or reload of 100,000 keys allocates on several threads (the readers, the
//! reload's own) and, once the new set is in, frees the previous one. glibc keeps what was
//! freed in its arenas, and after the first large block is freed it raises the size from
//! which blocks get their own mapping (up to 32 MiB), so the next key set's tables land in
//! the arenas too: the process grew with each reload (30,000 keys: 40.6 → 53.6 MB over four
//! reloads, measured) and kept the peak. Two settings prevent it: the mapping threshold
//! stays fixed ([`fix_large_blocks`]), so a key set's large tables are mapped and unmapped
//! whole, and `malloc_trim(0)` after the keys are in ([`give_back`]) returns the free pages
//! of every arena. No crate offers these glibc calls, hence the `libc` calls below;
//! elsewhere (musl, other systems) both do nothing.
// Two calls into the C library, with no pointer passed.
#![allow(unsafe_code)]

/// Blocks from this size on get a mapping of their own (glibc's starting value, kept).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MAP_FROM: libc::c_int = 128 * 1024;

/// Keeps the size from which blocks are mapped on their own fixed (call once, early).
pub(crate) fn fix_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt takes two integers and changes only the allocator's settings,
        // which it locks.
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MAP_FROM) };
    }
}

/// Returns the allocator's free memory to the kernel, where the C library can.
pub(crate) fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a size and touches only the allocator's own state,
        // which it locks.
        let _ = unsafe { libc::malloc_trim(0) };
    }
}
