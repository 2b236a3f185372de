//! `opsgate run`: the bot in Discord.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::backend::{Backend, Leading};
use super::driver_thread;
use super::http::{self, Health};
use super::signals;
use crate::chat::discord::Discord;
use crate::cloud::Registry;
use crate::config::Config;
use crate::driver::{Driver, Seams};
use crate::ports::chat::Outgoing;
use crate::ports::inbox::EngineEvent;

/// Runs until SIGTERM / Ctrl-C (exit 0 after a drain) or a fatal gateway error (Err, which
/// says what to fix).
pub fn run_discord(
    config: Config,
    data: Option<PathBuf>,
    http_listen: Option<SocketAddr>,
    rt: &tokio::runtime::Runtime,
) -> Result<(), String> {
    let data = data
        .or_else(|| config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("opsgate-data"));
    let backend = Backend::open(&config.store, &data)?;
    let place = backend.describe(&data);
    let config = Arc::new(config);
    let discord = Arc::new(Discord::new(config.clone(), rt.handle().clone())?);
    // One registry: the adapter's Discord counters and the engine's.
    let metrics = discord.metrics();

    let health = Arc::new(Health::default());
    health.store_open.store(true, Ordering::Relaxed);
    if let Some(addr) = http_listen.or(config.http_listen) {
        let probe = discord.clone();
        let server = rt
            .block_on(http::serve(
                addr,
                health.clone(),
                metrics.clone(),
                backend.archive(),
                Some(Arc::new(move || probe.connected())),
                config.api_token.value.clone(),
            ))
            .map_err(|e| format!("cannot listen on {addr} for health and metrics: {e}"))?;
        http::announce(server.addr);
    }

    // A standby has nothing to drain: SIGTERM ends it at once. The handler is in place
    // before this replica says it stands by.
    let termination = signals::listen(rt);
    let asked = termination.clone();
    let standing_by = rt.spawn(async move {
        signals::requested(asked).await;
        tracing::info!("termination requested while standing by; stopped");
        std::process::exit(0);
    });
    let leading = backend.lead(&health, &metrics)?;
    standing_by.abort();
    tracing::info!("jobs are kept in the {place}");
    let seams = Seams {
        store: leading.store.clone(),
        history: leading.history.clone(),
        operations: Arc::new(Registry::from_config(&config)),
        chat: discord.chat(),
        observer: None,
        runtime: rt.handle().clone(),
        metrics: metrics.clone(),
        leads: leading.holds.clone(),
    };
    let (driver, handle, rx) = Driver::new(config.clone(), seams).map_err(|e| e.to_string())?;
    discord.speak_only_while(leading.holds.clone());
    // Commands typed while no opsgate read the channels are answered, never run late.
    discord.read_back_from(leading.store.read_marks().map_err(|e| e.to_string())?);
    announce_takeover(&config, &discord, &leading);

    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    tracing::info!(data = %data.display(), "connecting to Discord");
    let session = rt.spawn(async move {
        let gateway = discord.clone();
        let feed = handle.clone();
        let mut session = tokio::spawn(async move { gateway.run(feed).await });
        tokio::select! {
            ended = &mut session => {
                // The gateway ended by itself: a fatal error (bad token, missing intent).
                handle.send(EngineEvent::Shutdown);
                stopped(done_rx, STOP_WAIT).await;
                ended.unwrap_or_else(|e| Err(format!("the Discord task failed: {e}")))
            }
            _ = signals::requested(termination) => {
                tracing::info!("termination requested; draining");
                // Nothing here waits on the gateway without a bound: it may be retrying a
                // Discord that does not answer.
                discord.stop().await;
                if tokio::time::timeout(STOP_WAIT, &mut session).await.is_err() {
                    tracing::warn!("the Discord connection did not stop in time; leaving it");
                    session.abort();
                }
                handle.send(EngineEvent::Drain { timeout: super::DRAIN_TIMEOUT });
                stopped(done_rx, super::DRAIN_TIMEOUT + STOP_WAIT).await;
                tracing::info!("stopped cleanly");
                Ok(())
            }
        }
    });
    let _engine = driver_thread::spawn(driver, rx, health, done_tx)?;
    // Were the session to panic, the engine would wait for a stop that never comes, so the
    // panic ends the process, as in the shell.
    rt.block_on(session).unwrap_or_else(|_| {
        driver_thread::exit_after_panic("the Discord session panicked; stopping")
    })
}

/// Says in the incident channels that this replica took the lead over from another.
fn announce_takeover(config: &Config, discord: &Discord, leading: &Leading) {
    let (Some(epoch), Some(from)) = (leading.epoch, &leading.took_over_from) else {
        return;
    };
    let text = format!(
        "🔁 opsgate switched over: this replica leads now (epoch {epoch}), taking over from \
         {from}. Pending approvals and running jobs carry on; commands typed during the switch \
         are answered in their channels and must be sent again."
    );
    let chat = discord.chat();
    let mut told = Vec::new();
    for channel in config.incidents.all_channels() {
        if !told.contains(channel) {
            told.push(channel.clone());
            chat.send(Outgoing::Notice {
                channel: channel.clone(),
                job: None,
                text: text.clone(),
            });
        }
    }
}

/// How long stopping waits for the gateway and, beyond the drain, for the engine.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits (bounded) for the engine to say it stopped; if it does not stop in time this ends
/// the process (exit 1) rather than wait for it.
async fn stopped(done: tokio::sync::oneshot::Receiver<()>, wait: std::time::Duration) {
    if tokio::time::timeout(wait, done).await.is_err() {
        let why = format!("the engine did not stop within {}s", wait.as_secs());
        super::logging::line(super::logging::Level::Error, &why);
        std::process::exit(1);
    }
}
