//! The driver's thread, and what ends the process when the engine cannot go on.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use super::http::Health;
use crate::driver::Driver;
use crate::ports::inbox::EngineEvent;

/// Exit status when storage failed (sysexits EX_IOERR): a supervisor restarts the process,
/// which opens on what is durable.
pub const EXIT_STORAGE: i32 = 74;
/// Exit status when the engine, or the thread feeding it chat input, panicked (EX_SOFTWARE).
pub const EXIT_PANIC: i32 = 70;

/// Runs the driver (and so the engine) on a thread of its own until it stops cleanly, then
/// tells `stopped`.
/// When storage fails or the engine panics, `/healthz` fails at once and the process exits
/// non-zero from that thread, so no chat adapter goes on taking input that nothing would act
/// on.
pub fn spawn(
    driver: Driver,
    rx: Receiver<EngineEvent>,
    health: Arc<Health>,
    stopped: tokio::sync::oneshot::Sender<()>,
) -> Result<std::thread::JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name("driver".into())
        .spawn(move || run(driver, rx, health, stopped))
        .map_err(|e| format!("cannot start the driver's thread: {e}"))
}

fn run(
    mut driver: Driver,
    rx: Receiver<EngineEvent>,
    health: Arc<Health>,
    stopped: tokio::sync::oneshot::Sender<()>,
) {
    let failing = health.clone();
    driver.on_storage_failure(Box::new(move || {
        failing.store_open.store(false, Ordering::SeqCst);
    }));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| driver.run(rx)));
    health.store_open.store(false, Ordering::SeqCst);
    match outcome {
        Ok(Ok(())) => {
            let _ = stopped.send(());
        }
        Ok(Err(e)) if e.is_lost_lead() => {
            let why = format!("stopping because this replica no longer leads: {e}");
            super::logging::line(super::logging::Level::Error, &why);
            std::process::exit(super::backend::EXIT_LOST_LEAD);
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
