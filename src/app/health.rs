//! `opsgate health`: asks the running bot's `/healthz`, for a container HEALTHCHECK (the
//! image has no curl). Exit 0 only on a 200.

use std::net::SocketAddr;
use std::time::Duration;

use super::jobs_cli::local;

/// `Ok(answer)` when `/healthz` on `addr` answers 200 within `timeout`; else what went wrong.
pub fn check(
    addr: SocketAddr,
    timeout: Duration,
    rt: &tokio::runtime::Runtime,
) -> Result<String, String> {
    let addr = local(addr);
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .map_err(|e| format!("unhealthy: no answer from http://{addr}/healthz: {e}"))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() {
            Ok(format!("healthy: {}", body.trim()))
        } else {
            Err(format!(
                "unhealthy: /healthz answered {status}: {}",
                body.trim()
            ))
        }
    })
}
