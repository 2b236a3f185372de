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
use crate::metrics::Metrics;
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
    let metrics = Arc::new(Metrics::new());
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
                let _ = done_rx.await;
                ended.unwrap_or_else(|e| Err(format!("the Discord task failed: {e}")))
            }
            _ = signals::terminated() => {
                tracing::info!("termination requested; draining");
                discord.stop().await;
                let _ = session.await;
                handle.send(EngineEvent::Drain { timeout: super::DRAIN_TIMEOUT });
                let _ = done_rx.await;
                tracing::info!("stopped cleanly");
                Ok(())
            }
        }
    });
    let _ = engine_thread.join();
    result
}
