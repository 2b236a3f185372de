//! Reaching Discord at start-up: ask for the bot's own user until Discord answers, with
//! exponential backoff, so an outage (DNS, a closed port, a 5xx) is visible in the logs,
//! `/readyz` and `opsgate_discord_connect_failures_total` instead of a silent 5 s loop. A
//! token Discord rejects (401) ends the run.

use super::rest::Failure;
use super::Shared;

pub(crate) async fn reach(shared: &Shared) -> Result<(), String> {
    let (first, longest) = shared.tuning.connect_backoff;
    let mut pause = first;
    let mut attempt: u64 = 0;
    loop {
        attempt += 1;
        let error = match shared.http.get_current_user().await {
            Ok(user) => {
                if attempt > 1 {
                    tracing::info!(attempts = attempt, "Discord is reachable again");
                }
                tracing::debug!(user = %user.name, "Discord accepted the token");
                return Ok(());
            }
            Err(e) => e,
        };
        let status = match &error {
            serenity::Error::Http(h) => h.status_code().map(|s| s.as_u16()),
            _ => None,
        };
        if status == Some(401) {
            return Err(super::explain(&error, &shared.config));
        }
        let failure = Failure::of(&error);
        shared.metrics.discord.connect_failures.inc();
        shared.call_failed("gateway_probe", failure);
        tracing::warn!(
            attempt,
            retry_in_s = pause.as_secs_f64(),
            error = %error,
            "cannot reach Discord; retrying"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(longest);
    }
}
