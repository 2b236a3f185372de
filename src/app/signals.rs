//! Waiting for the signals that ask the process to stop.

/// Resolves on SIGTERM (systemd, Kubernetes) or Ctrl-C.
pub async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Listens from now on (the handler is in place when this returns, so a SIGTERM that comes
/// at once is not missed and does not kill the process): the receiver turns true on
/// SIGTERM or Ctrl-C, for whichever phase of the process is running then (standing by,
/// leading).
pub fn listen(rt: &tokio::runtime::Runtime) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let _context = rt.enter();
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    rt.spawn(async move {
        #[cfg(unix)]
        match term {
            Some(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        let _ = tx.send(true);
    });
    rx
}

/// Resolves once [`listen`]'s receiver says termination was asked for.
pub async fn requested(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|asked| *asked).await;
}
