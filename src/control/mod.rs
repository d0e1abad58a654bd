//! Operator control of a running migration: a stop request (SIGINT,
//! SIGTERM, the `panic` command or `--panic-flag-file`), the postponed
//! cut-over, and the live commands served over a unix socket or loopback
//! TCP ([`commands`], [`listener`]). Every stage's loop checks [`Stop`] so
//! that a stop request takes effect at a safe point.

pub mod commands;
pub mod listener;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// A cloneable stop request: once raised, it stays raised.
#[derive(Clone)]
pub struct Stop {
    tx: Arc<watch::Sender<Option<String>>>,
    rx: watch::Receiver<Option<String>>,
    panicked: Arc<AtomicBool>,
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
            tx: Arc::new(tx),
            rx,
            panicked: Arc::default(),
        }
    }
}

impl Stop {
    /// Raises the stop request with a reason (kept from the first call).
    pub fn raise(&self, reason: &str) {
        self.raise_as(reason, false);
    }

    fn raise_as(&self, reason: &str, panic: bool) {
        self.tx.send_if_modified(|current| {
            if current.is_none() {
                self.panicked.store(panic, Ordering::Relaxed);
                *current = Some(reason.to_string());
                true
            } else {
                false
            }
        });
    }

    /// Raises the stop request as an operator's panic (the `panic` command,
    /// `--panic-flag-file`): the run ends as soon as it can, with the
    /// original untouched, and exits with its own code.
    pub fn panic(&self, reason: &str) {
        self.raise_as(reason, true);
    }

    /// True when the stop request was a panic.
    pub fn is_panic(&self) -> bool {
        self.panicked.load(Ordering::Relaxed)
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

    /// Raises the request on SIGINT, SIGTERM or SIGHUP (a closed SSH
    /// session would otherwise end the process at once, leaving the new
    /// table behind); a second signal ends the process at once. Call once
    /// per process.
    pub fn raise_on_signals(&self) {
        let stop = self.clone();
        tokio::spawn(async move {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::hangup()),
                ) else {
                    return;
                };
                tokio::select! {
                    _ = term.recv() => stop.raise("SIGTERM"),
                    _ = int.recv() => stop.raise("SIGINT"),
                    _ = hup.recv() => stop.raise("SIGHUP"),
                }
                // A second signal stops at once: what is left is resumable
                // (the swap is one atomic RENAME).
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {}
                }
                eprintln!("shadowcut: stopped at once by a second signal; run again with --resume to continue");
                std::process::exit(130);
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

/// Why the cut-over waits: the `--postpone-cut-over-flag-file` exists, or a
/// hold (a failed before-cut-over hook, a worse query plan) is in place.
/// The `unpostpone` command ends every reason at once, for good.
#[derive(Debug, Default)]
pub struct Postpone {
    flag_file: Option<PathBuf>,
    holds: Mutex<Vec<Hold>>,
    unpostponed: AtomicBool,
    since: Mutex<Option<Instant>>,
}

#[derive(Debug, Clone)]
struct Hold {
    source: &'static str,
    reason: String,
    until: Option<Instant>,
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Postpone {
    /// Postponed while `flag_file` exists.
    pub fn new(flag_file: Option<PathBuf>) -> Postpone {
        Postpone {
            flag_file,
            ..Postpone::default()
        }
    }

    /// Holds the cut-over for `reason` until `until` (for ever: `None`) or
    /// until `unpostpone`; a new hold from the same `source` replaces it.
    pub fn hold(&self, source: &'static str, reason: String, until: Option<Instant>) {
        let mut holds = locked(&self.holds);
        holds.retain(|h| h.source != source);
        holds.push(Hold {
            source,
            reason,
            until,
        });
    }

    /// The `unpostpone` command: removes the flag file and every hold; the
    /// cut-over proceeds and is not postponed again. Returns what it ended.
    pub fn unpostpone(&self) -> Option<String> {
        let reason = self.reason();
        self.unpostponed.store(true, Ordering::Relaxed);
        if let Some(flag) = &self.flag_file {
            if let Err(e) = std::fs::remove_file(flag) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(flag = %flag.display(), error = %e, "unpostpone: the flag file could not be removed; it is ignored from now on");
                }
            }
        }
        locked(&self.holds).clear();
        reason
    }

    /// True once `unpostpone` was given.
    pub fn unpostponed(&self) -> bool {
        self.unpostponed.load(Ordering::Relaxed)
    }

    /// Why the cut-over must wait now, if it must.
    pub fn reason(&self) -> Option<String> {
        if self.unpostponed() {
            return None;
        }
        if let Some(flag) = self.flag_file.as_ref().filter(|f| f.exists()) {
            return Some(format!(
                "postpone-cut-over-flag-file {} exists",
                flag.display()
            ));
        }
        let now = Instant::now();
        let mut holds = locked(&self.holds);
        holds.retain(|h| h.until.is_none_or(|until| until > now));
        holds.first().map(|h| h.reason.clone())
    }

    /// How long the cut-over has waited so far, while it waits.
    pub fn postponed_for(&self) -> Option<Duration> {
        locked(&self.since).map(|since| since.elapsed())
    }

    /// Waits while a reason holds, checking `stop` and `healthy` (the
    /// background stages) every poll. Returns `Ok(false)` when stopped.
    pub async fn wait(
        &self,
        stop: &Stop,
        healthy: impl Fn() -> crate::error::Result<()>,
    ) -> crate::error::Result<bool> {
        let mut began = false;
        let outcome = loop {
            let Some(reason) = self.reason() else {
                break Ok(true);
            };
            if let Err(e) = healthy() {
                break Err(e);
            }
            if !began {
                began = true;
                tracing::info!(%reason, "cut-over postponed");
                locked(&self.since).get_or_insert_with(Instant::now);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.raised() => break Ok(false),
            }
        };
        *locked(&self.since) = None;
        outcome
    }
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
        let postpone = Postpone::new(Some(dir.clone()));
        let path = dir.clone();
        let remover = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            std::fs::remove_file(path).unwrap();
        });
        let started = std::time::Instant::now();
        assert!(postpone
            .reason()
            .is_some_and(|r| r.contains("postpone-cut-over-flag-file")));
        assert!(postpone.wait(&stop, || Ok(())).await.unwrap());
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(postpone.postponed_for(), None);
        remover.await.unwrap();
    }

    #[tokio::test]
    async fn holds_expire_and_unpostpone_ends_them_all() {
        let postpone = Postpone::new(None);
        let stop = Stop::default();
        postpone.hold(
            "hook",
            "the hook failed".into(),
            Some(Instant::now() + Duration::from_millis(100)),
        );
        assert_eq!(postpone.reason().as_deref(), Some("the hook failed"));
        let started = Instant::now();
        assert!(postpone.wait(&stop, || Ok(())).await.unwrap());
        assert!(started.elapsed() >= Duration::from_millis(90));
        postpone.hold("plan", "a worse plan".into(), None);
        assert_eq!(postpone.unpostpone().as_deref(), Some("a worse plan"));
        assert_eq!(postpone.reason(), None);
        postpone.hold("plan", "again".into(), None);
        assert_eq!(postpone.reason(), None, "unpostpone is for good");
    }

    #[tokio::test]
    async fn a_panic_is_told_apart_from_a_signal() {
        let stop = Stop::default();
        stop.panic("panic command");
        assert!(stop.is_panic());
        let signalled = Stop::default();
        signalled.raise("SIGTERM");
        signalled.panic("panic command");
        assert!(!signalled.is_panic(), "the first reason wins");
    }
}
