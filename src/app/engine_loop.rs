//! The engine's loop on the process's main thread, and what ends the process when the engine
//! cannot go on.
//!
//! The engine runs on the main thread, not a thread of its own, because glibc always serves
//! the main thread from its main arena. With `arena_max=2` (`allocator.rs`) the runtime's
//! worker, which allocates first among the other threads (`app::runtime`), gets the second
//! arena, so the two threads that allocate the most never take turns on one heap's lock
//! (BENCHMARKS.md, "The engine on the main thread").

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use super::http::Health;
use crate::engine::{Engine, EngineEvent};

/// Exit status when storage failed (sysexits EX_IOERR): a supervisor restarts the process,
/// which opens on what is durable.
pub const EXIT_STORAGE: i32 = 74;
/// Exit status when the engine, or the thread feeding it chat input, panicked (EX_SOFTWARE).
pub const EXIT_PANIC: i32 = 70;

/// Runs the engine on this thread until it stops cleanly, then tells `stopped` and returns.
/// When storage fails or the engine panics, `/healthz` fails at once and the process exits
/// non-zero from here, so no chat adapter goes on taking input that nothing would act on.
pub fn run(
    mut engine: Engine,
    rx: Receiver<EngineEvent>,
    health: Arc<Health>,
    stopped: tokio::sync::oneshot::Sender<()>,
) {
    let failing = health.clone();
    engine.on_storage_failure(Box::new(move || {
        failing.store_open.store(false, Ordering::SeqCst);
    }));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| engine.run(rx)));
    health.store_open.store(false, Ordering::SeqCst);
    match outcome {
        Ok(Ok(())) => {
            let _ = stopped.send(());
        }
        Ok(Err(e)) => {
            let why = format!("stopping because storage failed: {e}");
            super::logging::line(super::logging::Level::Error, &why);
            std::process::exit(EXIT_STORAGE);
        }
        // The panic hook has printed where it happened.
        Err(_) => exit_after_panic("the engine panicked; stopping"),
    }
}

/// Ends the process after a panic on a thread the engine depends on: left alone, the engine
/// would wait for input or a stop that never comes.
pub fn exit_after_panic(why: &str) -> ! {
    super::logging::line(super::logging::Level::Error, why);
    std::process::exit(EXIT_PANIC);
}
