//! Operator control of a running migration. For now: a stop request raised by
//! SIGINT/SIGTERM, and the postpone-cut-over flag file. Every stage's loop
//! checks [`Stop`] so that a stop request takes effect at a safe point.

use std::path::Path;
use std::time::Duration;

use tokio::sync::watch;

/// A cloneable stop request: once raised, it stays raised.
#[derive(Clone)]
pub struct Stop {
    tx: std::sync::Arc<watch::Sender<Option<String>>>,
    rx: watch::Receiver<Option<String>>,
}

impl std::fmt::Debug for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stop")
            .field("reason", &self.reason())
            .finish()
    }
}

impl Default for Stop {
    fn default() -> Self {
        let (tx, rx) = watch::channel(None);
        Stop {
            tx: std::sync::Arc::new(tx),
            rx,
        }
    }
}

impl Stop {
    /// Raises the stop request with a reason (kept from the first call).
    pub fn raise(&self, reason: &str) {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason.to_string());
                true
            } else {
                false
            }
        });
    }

    /// The reason, once raised.
    pub fn reason(&self) -> Option<String> {
        self.rx.borrow().clone()
    }

    /// Resolves when the stop request is raised.
    pub async fn raised(&self) -> String {
        let mut rx = self.rx.clone();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Raises the request on SIGINT or SIGTERM. Call once per process.
    pub fn raise_on_signals(&self) {
        let stop = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => stop.raise("SIGTERM"),
                    _ = int.recv() => stop.raise("SIGINT"),
                }
            }
            #[cfg(not(unix))]
            {
                if tokio::signal::ctrl_c().await.is_ok() {
                    stop.raise("Ctrl-C");
                }
            }
        });
    }
}

/// Waits while the postpone flag file exists, checking `stop`, and
/// `healthy` (the background stages) every poll. Returns `Ok(false)` when
/// stopped.
pub async fn wait_while_postponed(
    flag: Option<&Path>,
    stop: &Stop,
    healthy: impl Fn() -> crate::error::Result<()>,
) -> crate::error::Result<bool> {
    let Some(flag) = flag else { return Ok(true) };
    let mut logged = false;
    while flag.exists() {
        healthy()?;
        if !logged {
            tracing::info!(flag = %flag.display(), "cut-over postponed while the flag file exists");
            logged = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.raised() => return Ok(false),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_reason_wins_and_wakes_waiters() {
        let stop = Stop::default();
        let waiter = {
            let s = stop.clone();
            tokio::spawn(async move { s.raised().await })
        };
        stop.raise("SIGTERM");
        stop.raise("SIGINT");
        assert_eq!(waiter.await.unwrap(), "SIGTERM");
        assert_eq!(stop.reason().as_deref(), Some("SIGTERM"));
    }

    #[tokio::test]
    async fn postpone_flag_holds_until_removed() {
        let dir = std::env::temp_dir().join(format!("shadowcut-flag-{}", std::process::id()));
        std::fs::write(&dir, b"").unwrap();
        let stop = Stop::default();
        let path = dir.clone();
        let remover = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            std::fs::remove_file(path).unwrap();
        });
        let started = std::time::Instant::now();
        assert!(wait_while_postponed(Some(&dir), &stop, || Ok(()))
            .await
            .unwrap());
        assert!(started.elapsed() >= Duration::from_millis(250));
        remover.await.unwrap();
    }
}
