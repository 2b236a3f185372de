//! Settings of the system allocator, made before any thread starts.

/// glibc serves big allocations with `mmap` and gives them back on `free`, but each time one
/// is freed it raises that threshold to the freed size, so after the first few of sled's IO
/// buffers (one 512 KiB log segment each, a new one every time a buffer is written out) they
/// came from the heap and left it fragmented: ~1 MiB more peak RSS in the benchmark's burst
/// (BENCHMARKS.md). A fixed threshold also stops that adjustment.
///
/// Then glibc's per-thread caches are turned off and its arenas limited to two (see
/// [`with_malloc_tunables`]).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        with_malloc_tunables();
        keep_process_name();
        // SAFETY: `mallopt` only changes allocator parameters; it is called from `main`
        // before any other thread exists, and an unsupported value is refused, not acted on.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 64 * 1024);
        }
    }
}

/// glibc's settings for a process whose memory should stay flat, each measured on 10,000
/// jobs followed by a quiet moment (BENCHMARKS.md, "Memory after many jobs"):
///
/// - `tcache_count=0`: glibc's per-thread cache keeps up to 7 freed blocks of each small
///   size for the thread that freed them, whichever arena they came from. sled's seven IO
///   threads never end and run many of sled's deferred frees: after the store was reopened
///   (`Store::reopen`) their caches held ~1.3 MiB of the old tree's blocks, scattered so
///   that they kept ~4 MiB of pages resident.
/// - `arena_max=2`: glibc gives a thread that finds every arena busy an arena of its own
///   and keeps it for good; with its default (8 per core) the engine, sled's IO threads and
///   the runtime's worker each left free pages between live blocks in a different arena:
///   0.5–1 MiB more idle RSS. With one arena the engine and the worker took turns on its
///   lock and a burst of commands ran at half speed. With two, the engine has the main
///   arena (it runs on the main thread, `engine_loop.rs`) and the worker, the first other
///   thread to allocate (`app::runtime`), the second; the other threads share them.
///
/// glibc reads these settings (`GLIBC_TUNABLES`) only when a process starts, so the process
/// replaces itself once, at the first line of `main`, with them added: same PID, arguments
/// and open files. A setting the operator made is kept. If the `exec` fails, the process
/// carries on with glibc's defaults: only memory is at stake. (glibc 2.36 applies every
/// tunable but cuts the original string after the first value, so `/proc/PID/environ`
/// shows only `tcache_count`; gdb's `thread apply all p (void*)thread_arena` shows the two
/// arenas in use.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn with_malloc_tunables() {
    use std::os::unix::process::CommandExt;

    let set = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
    let Some(tunables) = with_wanted_tunables(&set) else {
        return;
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

/// Replacing the process through `/proc/self/exe` names it `exe` (the name `ps`, `top` and
/// `pgrep opsgate` go by); this gives it back the name it was started as.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_process_name() {
    use std::os::unix::ffi::OsStrExt;

    let Some(arg0) = std::env::args_os().next() else {
        return;
    };
    let Some(name) = std::path::Path::new(&arg0).file_name() else {
        return;
    };
    // The kernel keeps 15 bytes and a NUL; an argument never holds a NUL.
    let mut name: Vec<u8> = name.as_bytes().iter().copied().take(15).collect();
    name.push(0);
    // SAFETY: `name` is NUL-terminated and outlives the call, which only copies it.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

/// `set` (the operator's `GLIBC_TUNABLES`) with each wanted setting it does not make added, or
/// `None` when it already makes them all.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn with_wanted_tunables(set: &str) -> Option<String> {
    const WANTED: [(&str, &str); 2] = [
        ("glibc.malloc.tcache_count", "0"),
        ("glibc.malloc.arena_max", "2"),
    ];
    let mut tunables = set.to_string();
    for (name, value) in WANTED {
        if !set.split(':').any(|t| t.split('=').next() == Some(name)) {
            if !tunables.is_empty() {
                tunables.push(':');
            }
            tunables.push_str(&format!("{name}={value}"));
        }
    }
    (tunables != set).then_some(tunables)
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::with_wanted_tunables;

    #[test]
    fn both_settings_are_added_and_the_operators_own_are_kept() {
        assert_eq!(
            with_wanted_tunables("").as_deref(),
            Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=2")
        );
        assert_eq!(
            with_wanted_tunables("glibc.malloc.arena_max=4").as_deref(),
            Some("glibc.malloc.arena_max=4:glibc.malloc.tcache_count=0")
        );
        assert_eq!(
            with_wanted_tunables("glibc.malloc.tcache_count=7:glibc.malloc.arena_max=2"),
            None
        );
        // A longer name that starts with a wanted one is not that setting.
        assert_eq!(
            with_wanted_tunables("glibc.malloc.tcache_count_x=1:glibc.malloc.arena_max=1")
                .as_deref(),
            Some("glibc.malloc.tcache_count_x=1:glibc.malloc.arena_max=1:glibc.malloc.tcache_count=0")
        );
    }
}
