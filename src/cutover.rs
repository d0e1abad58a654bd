//! The atomic swap, with the sentinel algorithm (it works on MariaDB,
//! which refuses RENAME under LOCK TABLES). Three connections take part:
//! S holds the sentinel, the fence holds writers off the original
//! ([`WriteFence`]: readers go on) and B runs the RENAME.
//!
//! 1. S creates the sentinel `_<t>_del` and takes `LOCK TABLES _<t>_del
//!    WRITE`; the fence takes `FLUSH TABLES t WITH READ LOCK`, which new
//!    writers queue behind as soon as it is requested, so it gets through
//!    a saturating write load. Every write to `t` committed before the
//!    lock is in the binlog.
//! 2. The drain connection writes a sync marker into the changelog; once
//!    the tail has read it, every change of `t` is in the buffer, and the
//!    drain connection applies the rest (it may still read `t`).
//! 3. It carries AUTO_INCREMENT over and restores the table comment.
//! 4. B issues `RENAME TABLE t TO _<t>_del, ghost TO t`, which waits on the
//!    sentinel (or on `t`, whichever sorts first).
//! 5. S confirms B is waiting on a metadata lock and drops the sentinel.
//!    The server takes a statement's table locks in sorted name order, so
//!    B may still wait for the ghost (held by a reader) rather than for
//!    `t`. The drain connection waits until a read of `t` that may not wait
//!    times out: the fence lets reads through, and so does every queued
//!    write; only a pending exclusive request does that, and no other
//!    session's DDL waits on `t`, so it is B's. B is now queued on `t`'s
//!    lock, ahead of every queued write.
//! 6. The fence checks its lock is still held and unlocks: the RENAME runs
//!    before any queued write, which then lands in the new table.
//!
//! If S or the fence dies before step 5, the RENAME fails on the existing
//! sentinel (or never starts): nothing is swapped. On any failure before
//! step 5, B's RENAME is killed before the fence lets go, so it can never
//! run on an undrained table.

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;
use tokio::sync::oneshot;

use crate::control::Stop;
use crate::error::{Error, Result, SqlContext};
use crate::failpoint::{self, Failpoints};
use crate::feed::{ChangeFeed, LockedFlushFailure};
use crate::server::ConnectConfig;
use crate::shadow::{self, marker, Role, ShadowNames};
use crate::sql;
use crate::table_lock::WriteFence;
use crate::tail::statements::{self, NameRule};

/// The statements of an attempt, by connection, for the dry-run plan.
pub fn describe(names: &ShadowNames) -> Vec<String> {
    let (t, old, ghost) = (
        names.q(&names.original),
        names.q(&names.old),
        names.q(&names.ghost),
    );
    vec![
        format!("S: CREATE TABLE {old} (sentinel); LOCK TABLES {old} WRITE"),
        format!("fence: FLUSH TABLES {t} WITH READ LOCK (writers wait, readers go on)"),
        format!("drain: the last changes into {ghost}; ALTER TABLE {ghost} AUTO_INCREMENT = <original's>, COMMENT = <original's>"),
        format!("B: RENAME TABLE {t} TO {old}, {ghost} TO {t} (waits)"),
        format!("S: DROP TABLE {old}; fence: UNLOCK TABLES (the RENAME runs first)"),
    ]
}

/// How much longer than the lock timeout an attempt may hold clients up.
const CLIENT_WAIT_MARGIN: Duration = Duration::from_millis(700);

/// Everything one cut-over attempt needs.
pub struct CutOver<'a> {
    /// Server.
    pub connect: &'a ConnectConfig,
    /// Table names.
    pub names: &'a ShadowNames,
    /// This run's id (for markers).
    pub run_id: &'a str,
    /// Comment that tags the tool's own statements.
    pub statement_tag: &'a str,
    /// How long clients may be blocked.
    pub lock_timeout: Duration,
    /// The server's dialect (where metadata locks show).
    pub dialect: crate::server::Dialect,
    /// The comment the new table must carry after the swap.
    pub final_comment: &'a str,
    /// Whether the original has an AUTO_INCREMENT counter to carry over.
    pub has_auto_increment: bool,
    /// The counter the ALTER asked for, if any: the new table's next value
    /// is the larger of it and the original's.
    pub requested_auto_increment: Option<u64>,
    /// Stop requests.
    pub stop: &'a Stop,
    /// Test-only delays.
    pub failpoints: &'a Failpoints,
    /// How the server compares table names.
    pub name_rule: NameRule,
    /// Attempts before giving up.
    pub attempts: u32,
}

/// One attempt: the change feed (paused: its connection drains), the
/// attempt's number from 1, and a fresh sync marker.
struct Turn<'f> {
    feed: &'f ChangeFeed,
    number: u32,
    marker: u64,
}

/// How an attempt ended.
#[derive(Debug)]
pub enum Attempt {
    /// The tables are swapped; clients were blocked for this long.
    Swapped {
        /// Time between taking and releasing the lock.
        lock_time: Duration,
    },
    /// Nothing swapped; try again later.
    Retry(String),
}

/// Failure inside the locked section: retry, or give up.
enum Abort {
    Retry(String),
    Fatal(Error),
}

impl From<Error> for Abort {
    fn from(e: Error) -> Self {
        Abort::Retry(e.to_string())
    }
}

impl CutOver<'_> {
    fn tagged(&self, stmt: String) -> String {
        format!("{stmt} {}", self.statement_tag)
    }

    fn table(&self) -> String {
        self.names.q(&self.names.original)
    }

    fn lock_wait_seconds(&self) -> u64 {
        self.lock_timeout.as_secs().max(1)
    }

    /// Swaps the tables: attempts until one succeeds, pausing between them
    /// (exponential backoff with jitter) and catching up again, or gives
    /// up after [`CutOver::attempts`]. `control` is a connection outside the
    /// lock, used to kill the swap connections when an attempt is
    /// abandoned; `note` shows the last failure in the status. Returns how
    /// long clients were blocked, and the attempts made.
    pub async fn run(
        &self,
        feed: &mut ChangeFeed,
        control: &mut Conn,
        note: impl Fn(Option<String>),
    ) -> Result<(Duration, u32)> {
        let mut number = 0;
        loop {
            number += 1;
            // A session that holds the table in a long transaction would
            // keep the RENAME, and every client queued behind it, waiting:
            // the attempt is not made while one does.
            let holder = match self.backup_in_progress(control).await {
                Some(backup) => Some(backup),
                None => self.long_holder(control).await,
            };
            let outcome = match holder {
                Some(holder) => Attempt::Retry(holder),
                None => {
                    let mut drain = feed.pause().await?;
                    let marker = feed.next_marker();
                    let turn = Turn {
                        feed,
                        number,
                        marker,
                    };
                    let outcome = self.attempt(control, &mut drain, &turn).await?;
                    match outcome {
                        Attempt::Swapped { .. } => {
                            let _ = drain.disconnect().await;
                        }
                        Attempt::Retry(_) => feed.resume(drain),
                    }
                    outcome
                }
            };
            match outcome {
                Attempt::Swapped { lock_time } => {
                    note(None);
                    return Ok((lock_time, number));
                }
                Attempt::Retry(reason) => {
                    tracing::warn!(attempt = number, %reason, "cut-over attempt abandoned; the original is intact");
                    if number >= self.attempts {
                        return Err(Error::CutOver {
                            table: self.table(),
                            message: format!("{number} attempts failed, the last because {reason}"),
                        });
                    }
                    let pause = crate::table_lock::retry_delay(number);
                    note(Some(format!(
                        "cut-over attempt {number} of {} abandoned ({reason}); next in {:.1} s",
                        self.attempts,
                        pause.as_secs_f64()
                    )));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        reason = self.stop.raised() => return Err(Error::Interrupted { table: self.table(), reason }),
                    }
                    feed.flush().await?;
                }
            }
        }
    }

    /// A session that has held the table longer than the lock timeout (an
    /// open transaction that touched it), as a reason not to attempt; `None` also when the server
    /// does not show metadata locks (MariaDB without the
    /// `metadata_lock_info` plugin): the attempt's own bound then keeps the
    /// wait short.
    async fn long_holder(&self, control: &mut Conn) -> Option<String> {
        let names = self.names;
        let holders: Vec<(u64, Option<u64>)> = control
            .exec(
                self.dialect.long_table_holders_sql(),
                (&names.database, &names.original, self.lock_wait_seconds()),
            )
            .await
            .ok()?;
        holders.first().map(|(id, seconds)| {
            format!(
                "connection {id} has held the table for {} s (an open transaction?): not locking behind it",
                seconds.unwrap_or(0)
            )
        })
    }

    /// A running backup (`BACKUP STAGE`, `FLUSH TABLES WITH READ LOCK`,
    /// `LOCK INSTANCE FOR BACKUP`) as a reason not to attempt: the RENAME
    /// would wait for it with every client queued behind. `None` also when
    /// the server does not show metadata locks.
    async fn backup_in_progress(&self, control: &mut Conn) -> Option<String> {
        let holders: Vec<(u64, String)> = control
            .query(self.dialect.backup_holders_sql())
            .await
            .ok()?;
        holders.first().map(|(id, what)| {
            format!("connection {id} is taking a backup ({what}): not locking during it")
        })
    }

    /// Runs one attempt; `drain` is the paused apply loop's connection,
    /// which applies the last changes while the fence holds the lock.
    async fn attempt(
        &self,
        control: &mut Conn,
        drain: &mut Conn,
        turn: &Turn<'_>,
    ) -> Result<Attempt> {
        let names = self.names;
        let sentinel = names.q(&names.old);
        shadow::clear_leftover(
            control,
            names,
            &names.old,
            &[Role::Sentinel],
            true,
            "a previous cut-over attempt",
        )
        .await?;

        // S holds the sentinel.
        let mut s_conn = crate::server::connect_session(self.connect).await?;
        let s_id = s_conn.id();
        s_conn
            .query_drop(format!(
                "SET SESSION lock_wait_timeout = {}",
                self.lock_wait_seconds()
            ))
            .await
            .context(|| {
                format!(
                    "setting lock_wait_timeout for the cut-over of {}",
                    self.table()
                )
            })?;
        s_conn
            .query_drop(self.tagged(format!(
                "CREATE TABLE {sentinel} (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB COMMENT={}",
                sql::literal(&marker(Role::Sentinel, self.run_id))
            )))
            .await
            .context(|| format!("creating the sentinel table {sentinel}"))?;

        // B waits for the go signal, so that its handle exists before any lock.
        let mut b = crate::server::connect_session(self.connect).await?;
        let b_id = b.id();
        b.query_drop(format!(
            "SET SESSION lock_wait_timeout = {}",
            self.lock_wait_seconds() * 2 + 5
        ))
        .await
        .context(|| "setting lock_wait_timeout for the swap connection".to_string())?;
        let (go, go_rx) = oneshot::channel::<()>();
        let rename = self.tagged(format!(
            "RENAME TABLE {} TO {sentinel}, {} TO {}",
            self.table(),
            names.q(&names.ghost),
            self.table()
        ));
        let rename_delay = self.failpoints.rename_delay;
        let mut b_task = tokio::spawn(async move {
            if go_rx.await.is_err() {
                return Err("not started".to_string());
            }
            crate::failpoint::pause(rename_delay).await;
            let result = b.query_drop(rename).await.map_err(|e| e.to_string());
            let _ = b.disconnect().await;
            result
        });

        let mut go = Some(go);
        let mut fence: Option<WriteFence> = None;
        let locked_at = Instant::now();
        // Clients queue from the moment the fence is asked for: the whole
        // attempt, the RENAME included, must end within the lock timeout
        // plus a second (the RENAME is killed when it waits past it).
        let clients_free_by = locked_at + self.lock_timeout + CLIENT_WAIT_MARGIN;
        let critical = async {
            tokio::time::timeout(
                self.lock_timeout + CLIENT_WAIT_MARGIN / 2,
                self.locked_steps(&mut s_conn, &mut fence, drain, &mut go, b_id, turn),
            )
            .await
        };
        let outcome = tokio::select! {
            r = critical => match r {
                Ok(r) => r,
                Err(_) => Err(Abort::Retry(format!("the locked section took longer than {:?}", self.lock_timeout))),
            },
            reason = self.stop.raised() => Err(Abort::Fatal(Error::Interrupted { table: self.table(), reason })),
        };
        let wait_for_b = Duration::from_secs(self.lock_wait_seconds() * 2 + 10);
        match (outcome, fence) {
            (Ok(()), Some(fence)) => {
                let fence_id = fence.id();
                if let Err(e) = fence.release().await {
                    // Killing the fence releases its lock just the same; the
                    // sentinel is gone and the drain complete, so the RENAME may run.
                    tracing::warn!(error = %e, "releasing the write fence failed; killing its connection");
                    let _ = control
                        .query_drop(format!("KILL CONNECTION {fence_id}"))
                        .await;
                }
                let lock_time = locked_at.elapsed();
                // The RENAME may still wait behind a session that holds the
                // table (a long transaction that read it): every client
                // queues behind it meanwhile, so it may wait only until the
                // attempt's end.
                let budget = clients_free_by
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(200));
                let renamed = match tokio::time::timeout(budget, &mut b_task).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => {
                        let _ = control.query_drop(format!("KILL CONNECTION {b_id}")).await;
                        match tokio::time::timeout(wait_for_b, &mut b_task).await {
                            Ok(Ok(Ok(()))) => Ok(()),
                            _ => Err(format!(
                                "the RENAME still waited for the table {:.1} s after the lock was asked for (a session holds the table: a long transaction?); it was cancelled",
                                locked_at.elapsed().as_secs_f64()
                            )),
                        }
                    }
                };
                let _ = s_conn.disconnect().await;
                match (renamed, self.swapped(control).await?) {
                    (_, true) => Ok(Attempt::Swapped { lock_time }),
                    (Err(e), false) => {
                        self.recover(control, drain).await?;
                        shadow::drop_if_marked(control, names, &names.old, Role::Sentinel, self.run_id).await?;
                        Ok(Attempt::Retry(format!("the RENAME failed: {e}")))
                    }
                    (Ok(()), false) => Err(Error::SwapInDoubt {
                        table: self.table(),
                        message: "the RENAME reported success but the new table is not in place; inspect the tables before retrying".into(),
                    }),
                }
            }
            (outcome, fence) => {
                let abort = match outcome {
                    Err(abort) => abort,
                    Ok(()) => Abort::Retry("the write fence vanished".into()),
                };
                match go.take() {
                    Some(go) => drop(go),
                    // The connection, not the query: a RENAME not yet sent
                    // would otherwise start after the kill and wait out its
                    // own lock timeout, with the writers held by the fence.
                    None => {
                        let _ = control.query_drop(format!("KILL CONNECTION {b_id}")).await;
                    }
                }
                let b_ended = tokio::time::timeout(wait_for_b, b_task).await;
                // B's own answer, or, when its connection died after the
                // statement ran, the tables themselves.
                let renamed = matches!(b_ended, Ok(Ok(Ok(()))))
                    || self.swapped(control).await.unwrap_or(false);
                if renamed {
                    let why = match &abort {
                        Abort::Retry(reason) => reason.clone(),
                        Abort::Fatal(e) => e.to_string(),
                    };
                    return Err(Error::SwapInDoubt {
                        table: self.table(),
                        message: format!(
                            "the RENAME ran although the cut-over was abandoned ({why}): the new table is \
                             in place, but writes that reached the original after the final drain may be \
                             missing from it. The original is kept as {}: compare the two on the key \
                             before dropping it",
                            names.q(&names.old)
                        ),
                    });
                }
                // Killing a connection releases its locks even mid-statement.
                if let Some(fence) = fence {
                    let _ = control
                        .query_drop(format!("KILL CONNECTION {}", fence.id()))
                        .await;
                }
                let _ = control.query_drop(format!("KILL CONNECTION {s_id}")).await;
                drop(s_conn);
                // The marker first: while the sentinel stays, a ghost left
                // with its final comment is still known as this run's.
                self.recover(control, drain).await?;
                shadow::drop_if_marked(control, names, &names.old, Role::Sentinel, self.run_id)
                    .await?;
                match abort {
                    Abort::Retry(reason) => Ok(Attempt::Retry(reason)),
                    Abort::Fatal(e) => Err(e),
                }
            }
        }
    }

    /// After an abandoned attempt: the ghost, whose comment was already set
    /// for the swap, gets its marker back so that cleanup and later runs
    /// know it as ours; the drain connection may have been cut off
    /// mid-statement (the attempt's timeout), so it is killed (first: it
    /// may hold the ghost) and replaced.
    async fn recover(&self, control: &mut Conn, drain: &mut Conn) -> Result<()> {
        let _ = control
            .query_drop(format!("KILL CONNECTION {}", drain.id()))
            .await;
        shadow::restore_ghost_marker(control, self.names, self.run_id).await?;
        let fresh = crate::server::connect_session(self.connect).await?;
        drop(std::mem::replace(drain, fresh));
        Ok(())
    }

    /// Everything between taking the locks and releasing them: S holds the
    /// sentinel, the fence holds writers off `t` (the drain connection may
    /// still read it); the drain connection applies the rest of the changes
    /// and finishes the new table; B queues its RENAME; S drops the sentinel
    /// once B waits, and the drain connection proves B is queued on `t`.
    async fn locked_steps(
        &self,
        s_conn: &mut Conn,
        fence: &mut Option<WriteFence>,
        drain: &mut Conn,
        go: &mut Option<oneshot::Sender<()>>,
        b_id: u32,
        turn: &Turn<'_>,
    ) -> std::result::Result<(), Abort> {
        let names = self.names;
        s_conn
            .query_drop(self.tagged(format!("LOCK TABLES {} WRITE", names.q(&names.old))))
            .await
            .map_err(|e| Abort::Retry(format!("could not lock the sentinel: {e}")))?;
        let held = fence.insert(
            WriteFence::acquire(
                self.connect,
                &self.table(),
                self.lock_timeout,
                self.statement_tag,
            )
            .await?
            .map_err(Abort::Retry)?,
        );
        if let Some(delay) = self.failpoints.lock_delay.filter(|_| Failpoints::ENABLED) {
            held.sleep_for_test(delay).await.map_err(Abort::Retry)?;
        }
        turn.feed
            .flush_under_lock(
                drain,
                turn.marker,
                self.lock_timeout.max(Duration::from_secs(1)),
                self.failpoints,
                Some(turn.number),
            )
            .await
            .map_err(|e| match e {
                LockedFlushFailure::Collision(message) => Abort::Fatal(Error::CutOver {
                    table: self.table(),
                    message: crate::feed::refused_rows_message(&message),
                }),
                LockedFlushFailure::TailStopped(e) => Abort::Fatal(e),
                LockedFlushFailure::Failed(reason) => Abort::Retry(reason),
            })?;
        // No wait of the drain connection may outlast the lock (a reader of
        // the ghost blocks finishing it).
        drain
            .query_drop(format!(
                "SET SESSION lock_wait_timeout = {}",
                self.lock_wait_seconds()
            ))
            .await
            .map_err(|e| Abort::Retry(format!("bounding the drain's lock waits: {e}")))?;
        self.finish_new_table(drain).await?;
        failpoint::stall_in_attempt(self.failpoints.stall_swap_attempts, turn.number).await;
        if let Some(delay) = self
            .failpoints
            .drained_delay
            .filter(|_| Failpoints::ENABLED)
        {
            let _ = held.sleep_for_test(delay).await;
            // Room for a writer to commit if the fence is gone.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if let Some(go) = go.take() {
            let _ = go.send(());
        }
        self.wait_for_rename_to_block(s_conn, b_id).await?;
        // The sentinel is all that stops the RENAME. Should the fence have
        // died since the marker, writes have reached the original that the
        // drain never saw: the sentinel stays, and the attempt is retried.
        // (After the drop, a fence lost in the few hundred microseconds
        // before the RENAME takes the original is not caught here.)
        held.check_held().await.map_err(Abort::Retry)?;
        s_conn
            .query_drop(self.tagged(format!("DROP TABLE {}", names.q(&names.old))))
            .await
            .map_err(|e| Abort::Retry(format!("dropping the sentinel: {e}")))?;
        self.wait_for_rename_to_queue_on_table(drain, b_id).await?;
        held.check_held().await.map_err(Abort::Retry)
    }

    /// B takes its locks in the server's sorted order of names, so after
    /// the sentinel is gone it may still wait for the ghost (a reader of
    /// the ghost, a dump, holds it) rather than for the original. The fence must
    /// not unlock before B's exclusive request is queued on the original,
    /// or a queued write would reach the old table first.
    ///
    /// The proof: a read of the original that may not wait. The fence lets
    /// reads through, and so does every queued write; only a pending
    /// exclusive request (B's RENAME, or another DDL, which is checked
    /// separately) makes it time out at once.
    async fn wait_for_rename_to_queue_on_table(
        &self,
        probe: &mut Conn,
        b_id: u32,
    ) -> std::result::Result<(), Abort> {
        let table = self.table();
        let deadline = Instant::now() + self.lock_timeout;
        probe
            .query_drop("SET SESSION lock_wait_timeout = 0")
            .await
            .map_err(|e| Abort::Retry(format!("preparing the lock probe: {e}")))?;
        let result = loop {
            match probe
                .query_drop(format!("SELECT 1 FROM {table} LIMIT 0"))
                .await
            {
                Err(mysql_async::Error::Server(e)) if e.code == 1205 => break Ok(()),
                Err(e) => break Err(Abort::Retry(format!("probing the table's lock: {e}"))),
                Ok(()) if Instant::now() > deadline => {
                    break Err(Abort::Retry(
                        "the RENAME did not queue on the table's lock in time (a session holds the new table?)"
                            .into(),
                    ))
                }
                Ok(()) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        };
        let _ = probe.query_drop("SET SESSION lock_wait_timeout = 30").await;
        result?;
        self.refuse_foreign_ddl_waiting(probe, b_id).await
    }

    /// Fails the attempt when another session waits to change the table
    /// (its pending lock would satisfy the probe as well as B's).
    async fn refuse_foreign_ddl_waiting(
        &self,
        conn: &mut Conn,
        b_id: u32,
    ) -> std::result::Result<(), Abort> {
        let waiting: Vec<(u64, Option<String>, Option<String>)> = conn
            .exec(
                "SELECT ID, DB, INFO FROM information_schema.PROCESSLIST \
                 WHERE ID <> ? AND STATE LIKE '%metadata lock%' AND INFO IS NOT NULL",
                (b_id,),
            )
            .await
            .map_err(|e| Abort::Retry(format!("reading the process list: {e}")))?;
        let names = self.names;
        for (id, db, info) in waiting {
            let info = info.unwrap_or_default();
            let exclusive = statements::statement_verb(&info).is_some_and(|verb| {
                [
                    "ALTER", "DROP", "RENAME", "TRUNCATE", "OPTIMIZE", "CREATE", "LOCK",
                ]
                .contains(&verb.as_str())
            });
            // The session's sql_mode is not known here: read both ways,
            // and where that fails, by the names the text mentions.
            let hits =
                match statements::changed_tables_in_any_mode(&info, db.as_deref().unwrap_or("")) {
                    Ok(changed) => changed
                        .iter()
                        .any(|c| self.name_rule.hits(c, &names.database, &names.original)),
                    Err(_) => sql::mentions_identifier(&info, &names.original),
                };
            if exclusive && hits {
                return Err(Abort::Retry(format!(
                    "connection {id} waits to change the table ({})",
                    info.chars().take(80).collect::<String>()
                )));
            }
        }
        Ok(())
    }

    /// Carries AUTO_INCREMENT over and gives the new table its final comment.
    async fn finish_new_table(&self, a: &mut Conn) -> std::result::Result<(), Abort> {
        let names = self.names;
        let mut options = vec![format!("COMMENT = {}", sql::literal(self.final_comment))];
        let mut next = self.requested_auto_increment.unwrap_or(0);
        if self.has_auto_increment {
            let original: Option<Option<u64>> = a
                .exec_first(
                    "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    (&names.database, &names.original),
                )
                .await
                .map_err(|e| Abort::Retry(format!("reading AUTO_INCREMENT: {e}")))?;
            next = next.max(original.flatten().unwrap_or(0));
        }
        if next > 1 {
            options.push(format!("AUTO_INCREMENT = {next}"));
        }
        a.query_drop(self.tagged(format!(
            "ALTER TABLE {} {}",
            names.q(&names.ghost),
            options.join(", ")
        )))
        .await
        .map_err(|e| Abort::Retry(format!("finishing the new table: {e}")))?;
        Ok(())
    }

    /// Waits until B's RENAME is in the process list waiting on a metadata lock.
    async fn wait_for_rename_to_block(
        &self,
        a: &mut Conn,
        b_id: u32,
    ) -> std::result::Result<(), Abort> {
        let deadline = Instant::now() + self.lock_timeout;
        loop {
            let row: Option<(Option<String>, Option<String>)> = a
                .exec_first(
                    "SELECT STATE, INFO FROM information_schema.PROCESSLIST WHERE ID = ?",
                    (b_id,),
                )
                .await
                .map_err(|e| Abort::Retry(format!("reading the process list: {e}")))?;
            match row {
                Some((Some(state), Some(info)))
                    if state.to_ascii_lowercase().contains("metadata lock")
                        && info.trim_start().to_ascii_uppercase().starts_with("RENAME") =>
                {
                    return Ok(())
                }
                None => return Err(Abort::Retry("the swap connection disappeared".into())),
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(Abort::Retry(
                    "the RENAME was not seen waiting on the lock in time".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// True when the original name now holds the new table: the ghost name
    /// is gone and the old name exists. RENAME is atomic, so the names tell.
    async fn swapped(&self, control: &mut Conn) -> Result<bool> {
        let names = self.names;
        let ghost = shadow::table_comment(control, &names.database, &names.ghost).await?;
        let old = shadow::table_comment(control, &names.database, &names.old).await?;
        Ok(ghost.is_none() && old.is_some_and(|c| !shadow::is_marked(&c, Role::Sentinel)))
    }
}
