//! Turning binlog changes into statements on the new table.
//!
//! The tail records only the *key* of each changed row (Spirit's design).
//! Applying a set of keys makes the new table's rows for those keys equal to
//! the original's rows *now*: delete them from the new table, then copy them
//! again from the original under a share lock. That is idempotent and
//! independent of order, so duplicate keys (including keys equal under a
//! case- or accent-insensitive collation) and a buffer that merges many
//! events of one row are harmless, and the tail always wins over the copy.
//! Non-key values are never decoded from the binlog.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;
use tokio::sync::watch;

use crate::error::{server_code, Error, Result};
use crate::failpoint::{self, Failpoints};
use crate::inspect::keys::ColumnPair;
use crate::schema::{KeyValue, SharedKey, Side};
use crate::server::{BinlogPosition, Dialect};
use crate::shadow::{self, hint, ShadowNames};

/// Most keys applied in one statement.
pub const BATCH_KEYS: usize = 500;

/// Keys of changed rows waiting to be applied, filled by the tail.
#[derive(Debug, Default)]
pub struct ChangeBuffer {
    keys: HashSet<KeyValue>,
    position: Option<BinlogPosition>,
    marker: u64,
}

/// A batch taken from the buffer.
#[derive(Debug, Default)]
pub struct Drained {
    /// Keys to apply.
    pub keys: Vec<KeyValue>,
    /// When the buffer is now empty: the binlog position every change up to
    /// which is in this batch or applied before.
    pub position: Option<BinlogPosition>,
    /// When the buffer is now empty: the last sync marker the tail had read.
    pub marker: Option<u64>,
}

impl ChangeBuffer {
    /// Adds the key of a changed row.
    pub fn insert(&mut self, key: KeyValue) {
        self.keys.insert(key);
    }

    /// Records a transaction boundary the tail has read past.
    pub fn mark_position(&mut self, position: BinlogPosition) {
        self.position = Some(position);
    }

    /// Records a sync marker the tail has read.
    pub fn mark_sync(&mut self, marker: u64) {
        self.marker = self.marker.max(marker);
    }

    /// Number of keys waiting.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key waits.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Takes up to `max` keys.
    pub fn take(&mut self, max: usize) -> Drained {
        let keys: Vec<KeyValue> = if self.keys.len() <= max {
            self.keys.drain().collect()
        } else {
            let some: Vec<KeyValue> = self.keys.iter().take(max).cloned().collect();
            for k in &some {
                self.keys.remove(k);
            }
            some
        };
        let empty = self.keys.is_empty();
        Drained {
            keys,
            position: if empty { self.position.clone() } else { None },
            marker: empty.then_some(self.marker),
        }
    }

    /// Puts keys back after a failed attempt.
    pub fn requeue(&mut self, keys: Vec<KeyValue>) {
        self.keys.extend(keys);
    }
}

/// The buffer shared by the tail (producer) and the appliers.
pub type SharedBuffer = Arc<Mutex<ChangeBuffer>>;

/// Locks the buffer; a poisoned lock (a panicked holder) still holds valid keys.
pub fn lock(buffer: &SharedBuffer) -> std::sync::MutexGuard<'_, ChangeBuffer> {
    buffer.lock().unwrap_or_else(|e| e.into_inner())
}

/// What applying a batch found.
#[derive(Debug)]
pub enum Outcome {
    /// The new table now matches the original for every key of the batch.
    Applied,
    /// A row collided with another on a unique key of the new table that the
    /// original does not have. Often transient (the other row's change is
    /// still in the binlog); persistent under the cut-over lock.
    Conflict(String),
}

/// Builds and runs the statements that apply a batch of keys.
#[derive(Debug, Clone)]
pub struct Applier {
    names: ShadowNames,
    key: SharedKey,
    insert_prefix: String,
    share_lock: &'static str,
    failpoints: Failpoints,
}

impl Applier {
    /// An applier for one migration.
    pub fn new(
        names: ShadowNames,
        key: SharedKey,
        columns: &[ColumnPair],
        dialect: Dialect,
        failpoints: Failpoints,
    ) -> Applier {
        let insert_prefix = crate::inspect::keys::insert_select(
            "INSERT",
            &names.q(&names.ghost),
            columns,
            &names.q(&names.original),
        );
        Applier {
            names,
            key,
            insert_prefix,
            share_lock: dialect.share_lock_clause(),
            failpoints,
        }
    }

    /// The statements a batch runs, for the dry-run plan.
    pub fn describe(&self) -> Vec<String> {
        vec![
            format!(
                "DELETE FROM {} WHERE <key> IN (<changed keys>)",
                self.names.q(&self.names.ghost)
            ),
            format!(
                "{} WHERE <key> IN (<changed keys>) {}",
                self.insert_prefix, self.share_lock
            ),
        ]
    }

    /// Makes the new table's rows for `keys` equal to the original's.
    ///
    /// Normally one transaction; `under_table_lock` (the cut-over connection
    /// holds LOCK TABLES, where BEGIN would release the locks) runs the two
    /// statements in autocommit, which is safe because nothing else can
    /// write either table then.
    pub async fn apply(
        &self,
        conn: &mut Conn,
        keys: &[KeyValue],
        under_table_lock: bool,
    ) -> Result<Outcome> {
        failpoint::pause(self.failpoints.apply_delay).await;
        let mut attempt = 0;
        loop {
            match self.try_apply(conn, keys, under_table_lock).await {
                Err(e) if matches!(server_code(&e), Some(1205 | 1213)) && attempt < 20 => {
                    if !under_table_lock {
                        let _ = conn.query_drop("ROLLBACK").await;
                    }
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
                }
                Err(e) => {
                    if !under_table_lock {
                        let _ = conn.query_drop("ROLLBACK").await;
                    }
                    if let (Some(1062), mysql_async::Error::Server(s)) = (server_code(&e), &e) {
                        return Ok(Outcome::Conflict(s.message.clone()));
                    }
                    return Err(Error::Apply {
                        table: self.names.q(&self.names.original),
                        message: e.to_string(),
                    });
                }
                Ok(Some(warnings)) => {
                    return Err(Error::Apply {
                        table: self.names.q(&self.names.original),
                        message: format!(
                            "the server warned while copying changed rows: {warnings}"
                        ),
                    })
                }
                Ok(None) => return Ok(Outcome::Applied),
            }
        }
    }

    /// Runs the batch; `Ok(Some(text))` when the server raised warnings.
    async fn try_apply(
        &self,
        conn: &mut Conn,
        keys: &[KeyValue],
        under_table_lock: bool,
    ) -> std::result::Result<Option<String>, mysql_async::Error> {
        let (ghost_where, ghost_params) = self.key.matches_any(Side::Ghost, keys);
        let (orig_where, orig_params) = self.key.matches_any(Side::Original, keys);
        if !under_table_lock {
            conn.query_drop("START TRANSACTION").await?;
        }
        conn.exec_drop(
            format!(
                "DELETE FROM {} WHERE {ghost_where}",
                self.names.q(&self.names.ghost)
            ),
            ghost_params,
        )
        .await?;
        conn.exec_drop(
            format!(
                "{} WHERE {orig_where} {}",
                self.insert_prefix, self.share_lock
            ),
            orig_params,
        )
        .await?;
        if conn.get_warnings() > 0 {
            let warnings = show_warnings(conn).await?;
            return Ok(Some(
                warnings
                    .iter()
                    .map(|w| w.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ));
        }
        if !under_table_lock {
            conn.query_drop("COMMIT").await?;
        }
        Ok(None)
    }
}

/// Writes the applied position to the changelog, if there is a new one.
async fn record_position(
    conn: &mut Conn,
    names: &ShadowNames,
    position: Option<BinlogPosition>,
) -> Result<()> {
    match position {
        Some(pos) => {
            shadow::write_changelog(conn, names, hint::APPLIED_POSITION, &pos.to_string()).await
        }
        None => Ok(()),
    }
}

/// One row of SHOW WARNINGS.
#[derive(Debug, Clone)]
pub struct Warning {
    /// Note, Warning or Error.
    pub level: String,
    /// Server error number.
    pub code: u16,
    /// Message text.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.level, self.code, self.message)
    }
}

/// Reads the warnings of the last statement.
pub async fn show_warnings(
    conn: &mut Conn,
) -> std::result::Result<Vec<Warning>, mysql_async::Error> {
    let rows: Vec<(String, u16, String)> = conn.query("SHOW WARNINGS").await?;
    Ok(rows
        .into_iter()
        .map(|(level, code, message)| Warning {
            level,
            code,
            message,
        })
        .collect())
}

/// Counters of the apply loop, read by progress reporting.
#[derive(Debug, Default)]
pub struct ApplyStats {
    /// Keys applied to the new table.
    pub keys_applied: AtomicU64,
}

/// The background task that keeps applying the buffer to the new table
/// until stopped. The cut-over stops it and drains the rest itself.
pub struct ApplyLoop {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<Conn>>,
    applied_marker: watch::Receiver<u64>,
}

/// How long a key may keep colliding on a new unique key before the
/// migration fails: long enough for the other row's change to arrive.
const CONFLICT_PATIENCE: Duration = Duration::from_secs(30);

impl ApplyLoop {
    /// Starts applying on `conn`.
    pub fn start(
        mut conn: Conn,
        applier: Applier,
        buffer: SharedBuffer,
        stats: Arc<ApplyStats>,
    ) -> ApplyLoop {
        let (stop, mut stopped) = watch::channel(false);
        let (marker_tx, applied_marker) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            let mut conflict_since: Option<Instant> = None;
            let mut last_position_write = Instant::now();
            let mut unrecorded: Option<BinlogPosition> = None;
            loop {
                if *stopped.borrow() {
                    break;
                }
                let batch = lock(&buffer).take(BATCH_KEYS);
                if batch.keys.is_empty() {
                    if let Some(m) = batch.marker {
                        marker_tx.send_if_modified(|v| std::mem::replace(v, m) != m);
                    }
                    if batch.position.is_some() {
                        unrecorded = batch.position;
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                        _ = stopped.changed() => {}
                    }
                } else {
                    let count = batch.keys.len() as u64;
                    match applier.apply(&mut conn, &batch.keys, false).await? {
                        Outcome::Applied => {
                            conflict_since = None;
                            stats.keys_applied.fetch_add(count, Ordering::Relaxed);
                            if let Some(m) = batch.marker {
                                marker_tx.send_if_modified(|v| std::mem::replace(v, m) != m);
                            }
                            if batch.position.is_some() {
                                unrecorded = batch.position;
                            }
                        }
                        Outcome::Conflict(message) => {
                            let since = *conflict_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > CONFLICT_PATIENCE {
                                return Err(Error::Apply {
                                    table: applier.names.q(&applier.names.original),
                                    message: format!(
                                        "rows keep colliding on a unique key of the new table ({message}); \
                                         the data does not satisfy the ALTER's unique keys"
                                    ),
                                });
                            }
                            lock(&buffer).requeue(batch.keys);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                if last_position_write.elapsed() > Duration::from_secs(1) {
                    record_position(&mut conn, &applier.names, unrecorded.take()).await?;
                    last_position_write = Instant::now();
                }
            }
            record_position(&mut conn, &applier.names, unrecorded.take()).await?;
            Ok(conn)
        });
        ApplyLoop {
            stop,
            task,
            applied_marker,
        }
    }

    /// Waits until every change before sync marker `marker` is applied, or
    /// the loop fails.
    pub async fn wait_applied(&mut self, marker: u64) -> Result<()> {
        loop {
            if *self.applied_marker.borrow_and_update() >= marker {
                return Ok(());
            }
            if self.task.is_finished() || self.applied_marker.changed().await.is_err() {
                return Err(Error::Apply {
                    table: String::from("the migrated table"),
                    message: "the apply loop stopped".into(),
                });
            }
        }
    }

    /// True when the loop ended (with an error: it only ends when stopped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops the loop after its current batch and returns its connection.
    pub async fn stop(self) -> Result<Conn> {
        let _ = self.stop.send(true);
        self.task.await.map_err(|e| Error::Apply {
            table: String::from("the migrated table"),
            message: format!("the apply task panicked: {e}"),
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::KeyPart;

    fn k(i: i64) -> KeyValue {
        vec![KeyPart::Int(i)]
    }

    #[test]
    fn buffer_dedups_and_reports_position_only_when_drained() {
        let mut b = ChangeBuffer::default();
        b.insert(k(1));
        b.insert(k(1));
        b.insert(k(2));
        b.insert(k(3));
        b.mark_position(BinlogPosition {
            file: "f".into(),
            pos: 10,
        });
        b.mark_sync(4);
        assert_eq!(b.len(), 3);
        let first = b.take(2);
        assert_eq!(first.keys.len(), 2);
        assert!(first.position.is_none() && first.marker.is_none());
        let rest = b.take(2);
        assert_eq!(rest.keys.len(), 1);
        assert_eq!(rest.position.unwrap().pos, 10);
        assert_eq!(rest.marker, Some(4));
        b.requeue(rest.keys);
        assert_eq!(b.len(), 1);
    }
}
