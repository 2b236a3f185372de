//! `opsgate run`: the bot in Discord.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::engine_thread;
use super::http::{self, Health};
use super::signals;
use crate::chat::discord::Discord;
use crate::cloud::Registry;
use crate::config::Config;
use crate::engine::{Engine, EngineEvent};
use crate::store::Store;

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
    let store = Store::open(&data).map_err(|e| e.to_string())?;
    let reader = store.clone();
    let config = Arc::new(config);
    let discord = Arc::new(Discord::new(config.clone(), rt.handle().clone())?);
    let registry = Arc::new(Registry::from_config(&config));
    let (mut engine, handle, rx) = Engine::new(
        config.clone(),
        store,
        registry,
        discord.chat(),
        None,
        rt.handle().clone(),
    )
    .map_err(|e| e.to_string())?;
    // One registry: the adapter's Discord counters and the engine's.
    let metrics = discord.metrics();
    engine.set_metrics(metrics.clone());

    let health = Arc::new(Health::default());
    health.store_open.store(true, Ordering::Relaxed);
    if let Some(addr) = http_listen.or(config.http_listen) {
        let probe = discord.clone();
        let server = rt
            .block_on(http::serve(
                addr,
                health.clone(),
                metrics,
                reader,
                Some(Arc::new(move || probe.connected())),
                config.api_token.value.clone(),
            ))
            .map_err(|e| format!("cannot listen on {addr} for health and metrics: {e}"))?;
        http::announce(server.addr);
    }

    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let engine_thread = engine_thread::spawn(engine, rx, health.clone(), done_tx)?;
    tracing::info!(data = %data.display(), "connecting to Discord");

    let result = rt.block_on(async {
        let gateway = discord.clone();
        let feed = handle.clone();
        let mut session = tokio::spawn(async move { gateway.run(feed).await });
        tokio::select! {
            ended = &mut session => {
                // The gateway ended by itself: a fatal error (bad token, missing intent).
                handle.send(EngineEvent::Shutdown);
                stopped(done_rx, STOP_WAIT).await?;
                ended.unwrap_or_else(|e| Err(format!("the Discord task failed: {e}")))
            }
            _ = signals::terminated() => {
                tracing::info!("termination requested; draining");
                // Nothing here waits on the gateway without a bound: it may be retrying a
                // Discord that does not answer.
                discord.stop().await;
                if tokio::time::timeout(STOP_WAIT, &mut session).await.is_err() {
                    tracing::warn!("the Discord connection did not stop in time; leaving it");
                    session.abort();
                }
                handle.send(EngineEvent::Drain { timeout: super::DRAIN_TIMEOUT });
                stopped(done_rx, super::DRAIN_TIMEOUT + STOP_WAIT).await?;
                tracing::info!("stopped cleanly");
                Ok(())
            }
        }
    });
    if result.as_ref().is_err_and(|e| e.starts_with(ENGINE_STUCK)) {
        // Do not join a thread that did not stop; the process ends without it.
        return result;
    }
    let _ = engine_thread.join();
    result
}

/// How long stopping waits for the gateway and, beyond the drain, for the engine.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

const ENGINE_STUCK: &str = "the engine did not stop";

/// Waits (bounded) for the engine thread to say it stopped.
async fn stopped(
    done: tokio::sync::oneshot::Receiver<()>,
    wait: std::time::Duration,
) -> Result<(), String> {
    match tokio::time::timeout(wait, done).await {
        Err(_) => Err(format!("{ENGINE_STUCK} within {}s", wait.as_secs())),
        Ok(_) => Ok(()),
    }
}
