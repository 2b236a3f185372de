//! The engine's OS thread, and what ends the process when the engine cannot go on.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::http::Health;
use crate::engine::{Engine, EngineEvent};

/// Exit status when storage failed (sysexits EX_IOERR): a supervisor restarts the process,
/// which opens on what is durable.
pub const EXIT_STORAGE: i32 = 74;
/// Exit status when the engine panicked (EX_SOFTWARE).
pub const EXIT_PANIC: i32 = 70;

/// Starts the engine. When it stops cleanly `stopped` is told; when storage fails or it
/// panics, `/healthz` fails at once and the process exits non-zero from this thread, so no
/// chat adapter goes on taking input that nothing would act on.
pub fn spawn(
    mut engine: Engine,
    rx: Receiver<EngineEvent>,
    health: Arc<Health>,
    stopped: tokio::sync::oneshot::Sender<()>,
) -> Result<JoinHandle<()>, String> {
    let failing = health.clone();
    engine.on_storage_failure(Box::new(move || {
        failing.store_open.store(false, Ordering::SeqCst);
    }));
    std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || {
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
                Err(_) => {
                    // The panic hook has printed where it happened.
                    let why = "the engine thread panicked; stopping";
                    super::logging::line(super::logging::Level::Error, why);
                    std::process::exit(EXIT_PANIC);
                }
            }
        })
        .map_err(|e| format!("cannot start the engine thread: {e}"))
}
