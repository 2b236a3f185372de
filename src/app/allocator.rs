//! One setting of the system allocator, made before any thread starts.

/// glibc serves big allocations with `mmap` and gives them back on `free`, but each time one
/// is freed it raises that threshold to the freed size, so after the first few of sled's IO
/// buffers (one 128 KiB log segment each, a new one every time a buffer is written out) they
/// came from the heap and left it fragmented: ~1 MiB more peak RSS in the benchmark's burst
/// (BENCHMARKS.md). A fixed threshold also stops that adjustment.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes allocator parameters; it is called from `main` before
    // any other thread exists, and an unsupported value is refused, not acted on.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
    }
}
