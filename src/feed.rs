//! The change feed: the binlog tail, its keyed buffer of changed keys, and
//! the apply loop that flushes the buffer into the new table. The copy, the
//! checksum and the cut-over all bring the new table up to date through it:
//!
//! - [`ChangeFeed::flush`]: every change committed so far is applied (the
//!   copy before retrying a colliding chunk, the catch-up before the lock);
//! - [`ChangeFeed::pause`] / [`ChangeFeed::resume`]: the apply loop stops and
//!   hands over its connection, for a drain that must be the only writer;
//! - [`ChangeFeed::flush_under_lock`]: with writers held off the original,
//!   every change up to now is applied, on the caller's connection.
//!
//! A flush is proven by a sync marker: a row written into the changelog,
//! which the tail reads after every change committed before it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mysql_async::Conn;

use crate::apply::{self, Applier, ApplyLoop, ApplyStats, DrainFailure, Reconnect};
use crate::checksum::ApplyControl;
use crate::control::Stop;
use crate::copy::CatchUp;
use crate::error::{Error, Result};
use crate::failpoint::Failpoints;
use crate::shadow::{self, hint};
use crate::tail::{Tail, TailPatience};
use crate::throttle::Throttle;

/// How long a flush waits for a tail that reads nothing, and for the apply
/// loop to apply up to the marker.
const TAIL_STALL: Duration = Duration::from_secs(60);
const APPLY_WAIT: Duration = Duration::from_secs(300);

/// What to tell the user when, with every change applied under the lock,
/// the new table still refuses rows ([`LockedFlushFailure::Collision`]).
pub fn refused_rows_message(server_message: &str) -> String {
    format!(
        "the new table refuses rows of the original with every change applied ({server_message}): \
         a unique key the ALTER adds, or a value a changed column cannot hold"
    )
}

/// Why [`ChangeFeed::flush_under_lock`] did not apply everything.
#[derive(Debug)]
pub enum LockedFlushFailure {
    /// With every change applied, the new table refuses rows of the
    /// original (a unique key, or a value; see [`crate::apply::Outcome::Conflict`]):
    /// the data violates the ALTER.
    Collision(String),
    /// The tail stopped: nothing more can be applied.
    TailStopped(Error),
    /// Anything else; worth another attempt.
    Failed(String),
}

/// The tail, the apply loop, and a connection to write sync markers.
pub struct ChangeFeed {
    tail: Tail,
    apply: Option<ApplyLoop>,
    /// The apply loop's helper connections while it is paused.
    idle_helpers: Vec<Conn>,
    applier: Applier,
    apply_stats: Arc<ApplyStats>,
    throttle: Arc<Throttle>,
    marker_conn: Conn,
    next_marker: u64,
    reconnect: Reconnect,
    /// A catch-up ends early when the run is asked to stop.
    stop: Stop,
}

impl ChangeFeed {
    /// Starts the apply loop over what `tail` reads, on its own session
    /// and `helpers` more (for batches in parallel), opened with
    /// `reconnect`'s settings like the one that writes the sync markers of
    /// [`ChangeFeed::flush`]. Nothing is applied while `throttle` holds;
    /// a flush waits no longer once `stop` is raised.
    pub async fn start(
        tail: Tail,
        applier: Applier,
        helpers: usize,
        apply_stats: Arc<ApplyStats>,
        throttle: Arc<Throttle>,
        reconnect: Reconnect,
        stop: Stop,
    ) -> Result<ChangeFeed> {
        let numbered_from = tail.shared().numbered_from;
        let apply_conn = crate::server::connect_session(&reconnect.connect).await?;
        let mut helper_conns = Vec::with_capacity(helpers);
        for _ in 0..helpers {
            helper_conns.push(crate::server::connect_session(&reconnect.connect).await?);
        }
        let marker_conn = crate::server::connect_session(&reconnect.connect).await?;
        let apply = ApplyLoop::start(
            apply_conn,
            helper_conns,
            applier.clone(),
            Arc::clone(tail.shared()),
            Arc::clone(&apply_stats),
            Arc::clone(&throttle),
            reconnect.clone(),
        );
        Ok(ChangeFeed {
            tail,
            apply: Some(apply),
            idle_helpers: Vec::new(),
            applier,
            apply_stats,
            throttle,
            marker_conn,
            next_marker: numbered_from,
            reconnect,
            stop,
        })
    }

    fn table(&self) -> String {
        let names = self.applier.names();
        names.q(&names.original)
    }

    /// The binlog tail.
    pub fn tail(&self) -> &Tail {
        &self.tail
    }

    /// A fresh sync marker number.
    pub fn next_marker(&mut self) -> u64 {
        self.next_marker += 1;
        self.next_marker
    }

    /// Changed keys waiting to be applied.
    pub fn backlog(&self) -> usize {
        apply::lock(&self.tail.shared().buffer).len()
    }

    /// The error of the tail or the apply loop, if one stopped.
    pub fn healthy(&self) -> Result<()> {
        self.tail.check()?;
        if self.apply.as_ref().is_some_and(ApplyLoop::is_finished) {
            return Err(Error::Apply {
                table: self.table(),
                message: "the apply loop stopped".into(),
            });
        }
        Ok(())
    }

    /// Returns once every change committed before the call is applied, or
    /// with [`Error::Interrupted`] once the run is asked to stop (the wait
    /// can be long: the applier may be waiting out a row the new table
    /// refuses).
    pub async fn flush(&mut self) -> Result<()> {
        let stop = self.stop.clone();
        let table = self.table();
        tokio::select! {
            flushed = self.flush_until_applied() => flushed,
            reason = stop.raised() => Err(Error::Interrupted { table, reason }),
        }
    }

    async fn flush_until_applied(&mut self) -> Result<()> {
        let marker = self.next_marker();
        let mut lost = 0;
        while let Err(e) = shadow::write_changelog(
            &mut self.marker_conn,
            self.applier.names(),
            hint::SYNC_MARKER,
            &marker.to_string(),
        )
        .await
        {
            let (connect, retries) = (&self.reconnect.connect, self.reconnect.retries);
            crate::server::recover_lost(
                e,
                &mut lost,
                &mut self.marker_conn,
                connect,
                retries,
                "sync marker",
            )
            .await?;
        }
        self.tail
            .wait_for_marker(marker, TailPatience::WhileReading(TAIL_STALL))
            .await?;
        let Some(apply) = self.apply.as_mut() else {
            return Ok(());
        };
        let mut applied_before = self.apply_stats.keys_applied.load(Ordering::Relaxed);
        loop {
            match tokio::time::timeout(APPLY_WAIT, apply.wait_applied(marker)).await {
                Ok(applied) => return applied,
                // A throttled applier is not stuck: it waits as long as
                // the throttle holds. Nor is one that keeps applying
                // behind a busy table.
                Err(_) if self.throttle.reason().is_some() => {}
                Err(_)
                    if self.apply_stats.keys_applied.load(Ordering::Relaxed) > applied_before =>
                {
                    applied_before = self.apply_stats.keys_applied.load(Ordering::Relaxed);
                }
                Err(_) => {
                    return Err(Error::Apply {
                        table: self.table(),
                        message: format!(
                            "the applier applied nothing for {APPLY_WAIT:?} and did not catch up"
                        ),
                    })
                }
            }
        }
    }

    /// Stops the apply loop and returns its connection, for a drain that
    /// must be the only writer of the new table.
    pub async fn pause(&mut self) -> Result<Conn> {
        let apply = self.apply.take().ok_or_else(|| Error::Apply {
            table: self.table(),
            message: "the apply loop is not running".into(),
        })?;
        let (conn, helpers) = apply.stop().await?;
        self.idle_helpers = helpers;
        Ok(conn)
    }

    /// Restarts the apply loop on `conn`.
    pub fn resume(&mut self, conn: Conn) {
        self.apply = Some(ApplyLoop::start(
            conn,
            std::mem::take(&mut self.idle_helpers),
            self.applier.clone(),
            Arc::clone(self.tail.shared()),
            Arc::clone(&self.apply_stats),
            Arc::clone(&self.throttle),
            self.reconnect.clone(),
        ));
    }

    /// With writers held off the original by the caller, applies every
    /// change committed so far on `drain` (the paused apply loop's
    /// connection): a sync marker written now follows every such change in
    /// the binlog; once the tail has read it, the buffer holds them all and
    /// is drained. `wait` bounds the wait for the tail; `attempt` is the
    /// cut-over attempt, for the test-only stall.
    pub async fn flush_under_lock(
        &self,
        drain: &mut Conn,
        marker: u64,
        wait: Duration,
        failpoints: &Failpoints,
        attempt: Option<u32>,
    ) -> std::result::Result<(), LockedFlushFailure> {
        shadow::write_changelog(
            drain,
            self.applier.names(),
            hint::SYNC_MARKER,
            &marker.to_string(),
        )
        .await
        .map_err(|e| LockedFlushFailure::Failed(e.to_string()))?;
        // The apply loop is paused: the tail must read past the buffer's
        // bound to reach the marker (writers are held off, so what is left
        // is what was committed before the lock).
        let _catching_up = self.tail.shared().catching_up();
        if let Err(e) = self
            .tail
            .wait_for_marker(marker, TailPatience::AtMost(wait))
            .await
        {
            return Err(match self.tail.check() {
                Err(stopped) => LockedFlushFailure::TailStopped(stopped),
                Ok(()) => LockedFlushFailure::Failed(e.to_string()),
            });
        }
        apply::drain_all(
            &self.applier,
            &self.tail.shared().buffer,
            drain,
            failpoints,
            attempt,
        )
        .await
        .map_err(|e| match e {
            DrainFailure::Collision(m) => LockedFlushFailure::Collision(m),
            DrainFailure::Failed(m) => LockedFlushFailure::Failed(m),
        })
    }

    /// Stops everything; returns the apply loop's error if it had failed.
    pub async fn shutdown(self) -> Option<Error> {
        let failure = match self.apply {
            Some(apply) => match apply.stop().await {
                Ok((conn, helpers)) => {
                    for c in std::iter::once(conn).chain(helpers) {
                        let _ = c.disconnect().await;
                    }
                    None
                }
                Err(e) => Some(e),
            },
            None => None,
        };
        self.tail.stop().await;
        let _ = self.marker_conn.disconnect().await;
        failure
    }
}

impl ApplyControl for ChangeFeed {
    async fn pause(&mut self) -> Result<Conn> {
        ChangeFeed::pause(self).await
    }

    fn resume(&mut self, conn: Conn) {
        ChangeFeed::resume(self, conn);
    }

    fn next_marker(&mut self) -> u64 {
        ChangeFeed::next_marker(self)
    }

    async fn flush_under_lock(
        &self,
        drain: &mut Conn,
        marker: u64,
        wait: Duration,
        failpoints: &Failpoints,
    ) -> std::result::Result<(), LockedFlushFailure> {
        ChangeFeed::flush_under_lock(self, drain, marker, wait, failpoints, None).await
    }
}

impl CatchUp for ChangeFeed {
    fn backlog(&self) -> usize {
        ChangeFeed::backlog(self)
    }

    fn healthy(&self) -> Result<()> {
        ChangeFeed::healthy(self)
    }

    async fn catch_up(&mut self) -> Result<()> {
        self.flush().await
    }
}
