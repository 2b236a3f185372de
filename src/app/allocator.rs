//! Settings of the system allocator, made before any thread starts.

/// glibc serves big allocations with `mmap` and gives them back on `free`, but each time one
/// is freed it raises that threshold to the freed size, so after the first few of sled's IO
/// buffers (one 128 KiB log segment each, a new one every time a buffer is written out) they
/// came from the heap and left it fragmented: ~1 MiB more peak RSS in the benchmark's burst
/// (BENCHMARKS.md). A fixed threshold also stops that adjustment.
///
/// Then glibc's per-thread caches are turned off (see [`without_thread_caches`]).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        without_thread_caches();
        // SAFETY: `mallopt` only changes allocator parameters; it is called from `main`
        // before any other thread exists, and an unsupported value is refused, not acted on.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
        }
    }
}

/// glibc's per-thread cache keeps up to 7 freed blocks of each small size for the thread that
/// freed them, whichever arena they came from. sled's seven IO threads never end, and they
/// run many of sled's deferred frees: after the store was reopened (`Store::reopen`) their
/// caches held ~1.3 MiB of the old tree's blocks, scattered so that they kept ~4 MiB of
/// pages resident (BENCHMARKS.md, "Memory after many jobs").
///
/// glibc reads this setting (`glibc.malloc.tcache_count`) only when a process starts, so the
/// process replaces itself once, at the first line of `main`, with the tunable added: same
/// PID, arguments and open files. A value the operator set is kept. If the `exec` fails, the
/// process carries on with the caches: only memory is at stake.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn without_thread_caches() {
    use std::os::unix::process::CommandExt;

    const NAME: &str = "glibc.malloc.tcache_count";
    let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    if tunables.split(':').any(|t| t.starts_with(NAME)) {
        return;
    }
    let tunables = match tunables.as_str() {
        "" => format!("{NAME}=0"),
        set => format!("{set}:{NAME}=0"),
    };
    let mut args = std::env::args_os();
    let Some(arg0) = args.next() else { return };
    // Returns only if the exec failed.
    let _ = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .exec();
}
