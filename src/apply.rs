//! Turning binlog changes into statements on the new table.
//!
//! The tail records only the *key* of each changed row (Spirit's design).
//! Applying a set of keys makes the new table's rows for those keys equal to
//! the original's rows *now*: delete them from the new table, then copy them
//! again from the original. That is idempotent and
//! independent of order, so duplicate keys (including keys equal under a
//! case- or accent-insensitive collation) and a buffer that merges many
//! events of one row are harmless, and the tail always wins over the copy.
//! Non-key values are never decoded from the binlog.
//!
//! A change the tail has read may belong to a transaction that is in the
//! binlog but not yet visible (the binlog is written before the engine
//! commits): a plain read would find the row as it was before, and the
//! change would be lost. On a server that commits in binlog order (MariaDB:
//! [`Dialect::commits_in_binlog_order`]) the applier first commits a write
//! of its own to the changelog (the apply fence): every transaction before
//! it in the binlog is then visible, and the re-read is a plain consistent
//! read that takes no lock on the original. Elsewhere (MySQL, or
//! `--locking-apply`) the re-read share-locks the rows and leaves the ones a
//! writer holds for later; writers then wait for those locks (with 16
//! sysbench writers, 9.5–13.9 s of row lock waits over a 3 s run, against
//! 1.8–2.0 s over a 6–7 s run with the fence).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Value};
use tokio::sync::watch;

use crate::copy::frontier::{CopyFrontier, HeldKeys};
use crate::error::{is_connection_lost, is_lock_busy, Error, Result, VALUE_REFUSED_CODES};
use crate::failpoint::{self, Failpoints};
use crate::inspect::keys::ColumnPair;
use crate::schema::{KeyPart, KeyValue, ParallelApply, SharedKey, Side};
use crate::server::{BinlogPosition, Dialect};
use crate::shadow::{self, hint, ShadowNames};
use crate::tail::{TailPatience, TailShared};
use crate::throttle::Throttle;

/// Most keys applied in one statement.
pub const BATCH_KEYS: usize = 500;

/// A changed key, and whether its row exists after the last change the tail
/// read (an insert or the new image of an update) or not (a delete, or the
/// old key of an update that changed the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key, in the original's terms.
    pub key: KeyValue,
    /// The row exists after the key's last change.
    pub exists: bool,
    /// The buffer's epoch when the oldest change of the key not yet applied
    /// was read: sync markers read after it wait for it.
    pub since: u64,
    /// The key's place in the buffer's queue: the arrival number of its
    /// oldest change not yet applied.
    pub order: u64,
}

/// A key's state in the buffer.
#[derive(Debug, Clone, Copy)]
struct Pending {
    exists: bool,
    since: u64,
    order: u64,
    /// The new table refused the key's last batch.
    refused: bool,
    /// A batch in flight took this state to explain a shortfall, and left
    /// it here because a chunk of the copy holds the key: not newer for
    /// that batch again, until another change arrives.
    seen: bool,
}

/// Keys of changed rows waiting to be applied, filled by the tail, and
/// taken in the order their oldest unapplied change arrived, so that no
/// key waits behind keys that came later. A batch the new table refuses
/// goes to the end of the queue ([`ChangeBuffer::requeue_last`]): taken in
/// a hash map's order and put back in place, it was taken again and
/// again, ahead of the waiting key that would free its unique value, for
/// as long as more keys waited than a batch holds, and the run failed
/// after the applier's patience (fuzzer seeds 47052, 47081, 47091, 47110
/// and 47173, with batches of 4 to 7 keys). Once the refused keys are at
/// the front again, they are all taken as one batch: keys that need each
/// other's change (two rows swapping unique values, or a longer rotation)
/// are each refused alone, in whatever order their batches come.
///
/// A sync marker is applied once every key changed before the tail read it
/// is applied. Each marker closes an epoch; a key remembers the epoch of
/// its oldest unapplied change (a newer change does not make an old one
/// younger), so a marker is applied when no key of its epoch or an earlier
/// one is waiting or in flight, however busy the table stays.
#[derive(Debug, Default)]
pub struct ChangeBuffer {
    keys: HashMap<KeyValue, Pending>,
    /// How many of `keys` the new table refused.
    refused: usize,
    /// The keys waiting, by [`Change::order`].
    queue: BTreeMap<u64, KeyValue>,
    next_order: u64,
    /// Keys waiting, per epoch of their oldest unapplied change.
    per_epoch: BTreeMap<u64, usize>,
    epoch: u64,
    /// Markers read, with the epoch they closed, oldest first.
    markers: VecDeque<(u64, u64)>,
    position: Option<BinlogPosition>,
    /// Transaction boundaries read, with the epoch they closed, oldest
    /// first: one at most every [`CHECKPOINT_INTERVAL`].
    checkpoints: VecDeque<(u64, BinlogPosition)>,
    last_checkpoint: Option<Instant>,
    /// The copy's frontier, whose held ranges ([`CopyFrontier::hold`])
    /// stay in the buffer until their chunk is committed.
    frontier: Option<Arc<CopyFrontier>>,
    /// Newer changes the batch in flight took out to explain a shortfall
    /// ([`ChangeBuffer::explain`], [`ChangeBuffer::refresh`]), until the
    /// next batch is taken: a batch put back whole after a lost
    /// connection, as it was taken, gets them back, instead of the older
    /// states it was taken with.
    pulled: HashMap<KeyValue, Pending>,
}

/// How often a transaction boundary becomes a checkpoint: the position a
/// resumed run restarts from once every change read before it is applied,
/// even while the table never leaves the buffer empty.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// A batch taken from the buffer.
#[derive(Debug, Default)]
pub struct Drained {
    /// Keys to apply.
    pub changes: Vec<Change>,
    /// When the buffer is now empty: the binlog position every change up to
    /// which is in this batch or applied before.
    pub position: Option<BinlogPosition>,
    /// Every key the new table refused before, taken together: they are to
    /// be applied in one set, never split over connections.
    pub refused: bool,
}

impl ChangeBuffer {
    /// Records a change of `key`; the latest change of a key wins.
    pub fn insert(&mut self, key: KeyValue, exists: bool) {
        match self.keys.get_mut(&key) {
            Some(pending) => {
                pending.exists = exists;
                pending.seen = false;
            }
            None => {
                let (since, order) = (self.epoch, self.next_order);
                self.next_order += 1;
                self.add(
                    key,
                    Pending {
                        exists,
                        since,
                        order,
                        refused: false,
                        seen: false,
                    },
                );
            }
        }
    }

    fn add(&mut self, key: KeyValue, pending: Pending) {
        *self.per_epoch.entry(pending.since).or_insert(0) += 1;
        self.refused += usize::from(pending.refused);
        self.queue.insert(pending.order, key.clone());
        self.keys.insert(key, pending);
    }

    fn remove(&mut self, key: &KeyValue) -> Option<Pending> {
        let pending = self.keys.remove(key)?;
        self.queue.remove(&pending.order);
        self.refused -= usize::from(pending.refused);
        if let Some(count) = self.per_epoch.get_mut(&pending.since) {
            *count -= 1;
            if *count == 0 {
                self.per_epoch.remove(&pending.since);
            }
        }
        Some(pending)
    }

    /// Records a transaction boundary the tail has read past.
    pub fn mark_position(&mut self, position: BinlogPosition) {
        if self
            .last_checkpoint
            .is_none_or(|at| at.elapsed() >= CHECKPOINT_INTERVAL)
        {
            self.checkpoints.push_back((self.epoch, position.clone()));
            self.epoch += 1;
            self.last_checkpoint = Some(Instant::now());
        }
        self.position = Some(position);
    }

    /// The newest checkpoint every change read before which is applied,
    /// taken out; `None` when no new one is. Only meaningful between
    /// batches, like [`ChangeBuffer::applied_marker`].
    pub fn applied_checkpoint(&mut self) -> Option<BinlogPosition> {
        let oldest_waiting = self.oldest_waiting_epoch();
        let mut applied = None;
        while self
            .checkpoints
            .front()
            .is_some_and(|(epoch, _)| *epoch < oldest_waiting)
        {
            applied = self.checkpoints.pop_front().map(|(_, position)| position);
        }
        applied
    }

    fn oldest_waiting_epoch(&self) -> u64 {
        self.per_epoch.keys().next().copied().unwrap_or(u64::MAX)
    }

    /// Records a sync marker the tail has read: every key changed so far
    /// must be applied before it counts as applied.
    pub fn mark_sync(&mut self, marker: u64) {
        self.markers.push_back((self.epoch, marker));
        self.epoch += 1;
    }

    /// The newest sync marker all of whose changes are applied, taken out;
    /// `None` when no new marker is. Only meaningful between batches: a key
    /// taken and not yet applied or put back holds no epoch.
    pub fn applied_marker(&mut self) -> Option<u64> {
        let oldest_waiting = self.oldest_waiting_epoch();
        let mut applied = None;
        while let Some(&(epoch, marker)) = self.markers.front() {
            if epoch >= oldest_waiting {
                break;
            }
            applied = Some(marker);
            self.markers.pop_front();
        }
        applied
    }

    /// Number of keys waiting.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when no key waits.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Holds back the keys of the chunks `frontier` holds from every
    /// batch taken from now on.
    pub fn hold_back_for(&mut self, frontier: Arc<CopyFrontier>) {
        self.frontier = Some(frontier);
    }

    /// Takes up to `max` keys, oldest first, leaving out those the new
    /// table refused; or, when the oldest key is one of those, every one of
    /// them, however many: taken apart, they could be split again. Keys a
    /// chunk of the copy holds stay ([`ChangeBuffer::hold_back_for`]).
    pub fn take(&mut self, max: usize) -> Drained {
        self.pulled.clear();
        let held = self.held();
        let free = |key: &&KeyValue| held.is_empty() || !held.contains(key);
        let is_refused = |key: &KeyValue| self.keys.get(key).is_some_and(|p| p.refused);
        let refused = self.refused > 0 && self.queue.values().find(free).is_some_and(is_refused);
        // Without refused keys, as fast as a plain queue: this is the path
        // of every batch.
        let keys: Vec<KeyValue> = if self.refused == 0 {
            self.queue
                .values()
                .filter(free)
                .take(max)
                .cloned()
                .collect()
        } else {
            self.queue
                .values()
                .filter(free)
                .filter(|k| is_refused(k) == refused)
                .take(if refused { usize::MAX } else { max })
                .cloned()
                .collect()
        };
        let changes = keys
            .into_iter()
            .filter_map(|key| {
                let Pending {
                    exists,
                    since,
                    order,
                    ..
                } = self.remove(&key)?;
                Some(Change {
                    key,
                    exists,
                    since,
                    order,
                })
            })
            .collect();
        let empty = self.keys.is_empty();
        Drained {
            changes,
            position: if empty { self.position.clone() } else { None },
            refused,
        }
    }

    /// Puts keys back after a failed attempt, in their old places; a newer
    /// change of a key that arrived meanwhile wins, and the key keeps the
    /// older epoch and place.
    pub fn requeue(&mut self, changes: Vec<Change>) {
        for c in changes {
            self.put_back(c, false);
        }
    }

    /// Puts keys back at the end of the queue, after a batch the new table
    /// refused (a unique value another waiting key still holds in the new
    /// table, say): every key waiting now is taken before them. The key
    /// that frees the value may have arrived later than the refused keys'
    /// oldest changes (their latest change, the one that needs the value,
    /// is newer), so keeping their places would take them again, ahead of
    /// it, for as long as more keys wait than a batch holds. The keys are
    /// marked refused, to be taken together ([`ChangeBuffer::take`]). A
    /// newer change of a key wins, and the key keeps its older epoch.
    pub fn requeue_last(&mut self, changes: Vec<Change>) {
        for c in changes {
            self.put_back(c, true);
        }
    }

    /// Puts `c` back, merged with a newer change of its key that arrived
    /// meanwhile (the newer state wins, the older epoch is kept): at the
    /// end of the queue and marked refused when `last`, otherwise at the
    /// older of the two places.
    fn put_back(&mut self, mut c: Change, last: bool) {
        if let Some(pulled) = self.pulled.remove(&c.key) {
            c.exists = pulled.exists;
            c.since = c.since.min(pulled.since);
            c.order = c.order.min(pulled.order);
        }
        let newer = self.remove(&c.key);
        let order = if last {
            self.next_order += 1;
            self.next_order - 1
        } else {
            newer.map_or(c.order, |n| c.order.min(n.order))
        };
        let pending = match newer {
            Some(newer) => Pending {
                exists: newer.exists,
                since: c.since.min(newer.since),
                order,
                refused: last,
                seen: false,
            },
            None => Pending {
                exists: c.exists,
                since: c.since,
                order,
                refused: last,
                seen: false,
            },
        };
        self.add(c.key, pending);
    }

    /// Takes the newer changes of `changes`' keys that arrived since they
    /// were taken; true when any key changed again. A change that leaves
    /// the key's state as it was (deleted and inserted again) still
    /// explains a re-read that missed the row in between.
    pub fn refresh(&mut self, changes: &mut [Change]) -> bool {
        let held = self.held();
        let mut changed = false;
        for c in changes {
            changed |= self.take_newer(c, &held);
        }
        changed
    }

    /// Splits `changes` into those whose key changed again since they were
    /// taken (updated to the newer state) and those whose key did not.
    pub fn explain(&mut self, changes: Vec<Change>) -> (Vec<Change>, Vec<Change>) {
        let held = self.held();
        let mut changes = changes;
        let changed: Vec<bool> = changes
            .iter_mut()
            .map(|c| self.take_newer(c, &held))
            .collect();
        let mut changed = changed.into_iter();
        changes
            .into_iter()
            .partition(|_| changed.next().unwrap_or(false))
    }

    /// The key ranges chunks of the copy hold now.
    fn held(&self) -> HeldKeys {
        self.frontier
            .as_ref()
            .map(|frontier| frontier.held())
            .unwrap_or_default()
    }

    /// Takes the newer change of `c`'s key, if the buffer has one. A key a
    /// chunk of the copy holds keeps its newer change in the buffer as well
    /// (applied again once the chunk commits): the chunk may still write
    /// its older copy of the row, and only a change taken after it can set
    /// that right. Such a change counts as newer once, so that a batch that
    /// keeps missing the row strikes out as it would otherwise.
    fn take_newer(&mut self, c: &mut Change, held: &HeldKeys) -> bool {
        let newer = if !held.is_empty() && held.contains(&c.key) {
            self.keys.get_mut(&c.key).filter(|p| !p.seen).map(|p| {
                p.seen = true;
                *p
            })
        } else {
            let newer = self.remove(&c.key);
            if let Some(pending) = newer {
                self.pulled.insert(c.key.clone(), pending);
            }
            newer
        };
        match newer {
            Some(pending) => {
                c.exists = pending.exists;
                c.since = c.since.min(pending.since);
                c.order = c.order.min(pending.order);
                true
            }
            None => false,
        }
    }
}

/// The buffer shared by the tail (producer) and the appliers.
pub type SharedBuffer = Arc<Mutex<ChangeBuffer>>;

/// Locks the buffer; a poisoned lock (a panicked holder) still holds valid keys.
pub fn lock(buffer: &SharedBuffer) -> std::sync::MutexGuard<'_, ChangeBuffer> {
    buffer.lock().unwrap_or_else(|e| e.into_inner())
}

/// Changes taken from the buffer that go back into it when dropped, unless
/// [`Taken::done`] says they were applied: a cancelled or failed apply can
/// never lose them.
pub struct Taken<'a> {
    buffer: &'a SharedBuffer,
    changes: Vec<Change>,
}

impl<'a> Taken<'a> {
    /// Holds `changes` taken from `buffer`.
    pub fn new(buffer: &'a SharedBuffer, changes: Vec<Change>) -> Taken<'a> {
        Taken { buffer, changes }
    }

    /// The changes held.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Adds more changes to hold.
    pub fn extend(&mut self, more: Vec<Change>) {
        self.changes.extend(more);
    }

    /// The changes were applied (or handed on): nothing goes back.
    pub fn done(mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.changes.is_empty() {
            lock(self.buffer).requeue(std::mem::take(&mut self.changes));
        }
    }
}

/// What applying a batch found.
#[derive(Debug)]
pub enum Outcome {
    /// The new table now matches the original for every key of the batch
    /// but `deferred`: their rows were locked by the application, and
    /// [`OnBusy::Defer`] asked to leave them for later.
    Applied {
        /// Keys left for later.
        deferred: Vec<Change>,
        /// Keys the binlog says exist whose rows the re-read did not find:
        /// applied as absent (which is what the original holds now) and
        /// committed, but a later change must explain each, or the
        /// statements do not match the key. A superset of the keys missed
        /// when keys compare by a collation: see `unconfirmed_exact`.
        unconfirmed: Vec<Change>,
        /// `unconfirmed` holds exactly the keys whose rows were missed.
        unconfirmed_exact: bool,
    },
    /// The new table refused a row of the original as it is now: it
    /// collided with another on a unique key the original does not have,
    /// or a value does not fit its new column (see
    /// [`crate::error::VALUE_REFUSED_CODES`]). Often transient (the change
    /// that fixes the row is still in the binlog); persistent under the
    /// cut-over lock.
    Conflict(String),
    /// Fewer rows were found in the original than the binlog says exist
    /// after their last change; rolled back. Either a later change (not yet
    /// read) deleted them, or the statement does not match the key: the
    /// caller must tell which.
    Shortfall {
        /// Keys whose row exists after their last change read.
        expected: u64,
        /// Rows the re-read found.
        found: u64,
    },
}

/// What to do with a key whose row the application holds locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBusy {
    /// Leave it for a later batch (the apply loop: its writer's commit
    /// brings the key back anyway, and other keys need not wait).
    Defer,
    /// Retry it until the row is free (the drain, which must finish).
    Wait,
}

/// What one transaction of a batch ended with, before COMMIT or ROLLBACK.
enum Verdict {
    /// Applied; the keys are those the binlog says exist that no row of
    /// the original has by their bytes, among which is every row the
    /// re-read missed, and the number of rows it missed.
    Good(Vec<Change>, u64),
    Warned(String),
    Short {
        expected: u64,
        found: u64,
    },
}

/// Builds and runs the statements that apply a batch of keys.
#[derive(Debug, Clone)]
pub struct Applier {
    names: ShadowNames,
    key: SharedKey,
    insert_prefix: String,
    dialect: Dialect,
    /// Each batch commits an apply fence and re-reads without locks (see
    /// the module).
    fenced: bool,
    failpoints: Failpoints,
    /// How generations split over connections.
    parallel: ParallelApply,
    /// Set once the equality classes could not be read: generations are
    /// then applied on one connection.
    classes_failed: Arc<std::sync::atomic::AtomicBool>,
}

impl Applier {
    /// An applier for one migration.
    pub fn new(
        names: ShadowNames,
        key: SharedKey,
        columns: &[ColumnPair],
        dialect: Dialect,
        fenced: bool,
        failpoints: Failpoints,
    ) -> Applier {
        let insert_prefix = crate::inspect::keys::insert_select(
            "INSERT",
            &names.q(&names.ghost),
            columns,
            &names.q(&names.original),
        );
        let parallel = match key.parallel_apply() {
            ParallelApply::ByEquality if !dialect.has_window_functions() => ParallelApply::Serial,
            parallel => parallel,
        };
        Applier {
            names,
            key,
            insert_prefix,
            dialect,
            fenced,
            failpoints,
            parallel,
            classes_failed: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// True when generations may be applied over several connections.
    pub fn applies_in_parallel(&self) -> bool {
        self.parallel != ParallelApply::Serial
    }

    /// Splits a generation over `workers` connections so that no two parts
    /// touch one row: in even slices when keys are distinct by bytes; along
    /// the server's equality classes when a collation can make two keys one
    /// row (`'a'`, `'A'`: each class whole in one part); in one part
    /// otherwise, or when the classes cannot be read (said once, in a
    /// warning).
    pub async fn partition(
        &self,
        conn: &mut Conn,
        changes: Vec<Change>,
        workers: usize,
    ) -> Result<Vec<Vec<Change>>> {
        let workers = workers.max(1);
        match self.parallel {
            ParallelApply::ByBytes => {
                let per_part = changes.len().div_ceil(workers).max(1);
                Ok(changes.chunks(per_part).map(<[Change]>::to_vec).collect())
            }
            ParallelApply::ByEquality if !self.classes_failed.load(Ordering::Relaxed) => {
                let keys: Vec<KeyValue> = changes.iter().map(|c| c.key.clone()).collect();
                let (stmt, params) = self.key.equality_classes(&keys);
                match conn.exec::<(u64, u64, u64), _, _>(stmt, params).await {
                    Ok(classes) => Ok(split_by_classes(changes, &classes, workers)),
                    Err(source) if is_connection_lost(&source) => Err(Error::Sql {
                        context: format!("grouping changed keys of {} by equality", self.table()),
                        source,
                    }),
                    Err(e) => {
                        tracing::warn!(table = %self.table(), error = %e, "the changed keys' equality classes could not be read; applying on one connection");
                        self.classes_failed.store(true, Ordering::Relaxed);
                        Ok(vec![changes])
                    }
                }
            }
            _ => Ok(vec![changes]),
        }
    }

    fn table(&self) -> String {
        self.names.q(&self.names.original)
    }

    /// The tables this applier works on.
    pub fn names(&self) -> &ShadowNames {
        &self.names
    }

    /// The statements a batch runs, for the dry-run plan.
    pub fn describe(&self) -> Vec<String> {
        let mut statements = Vec::new();
        if self.fenced {
            statements.push(shadow::describe_fence(&self.names, hint::APPLY_FENCE));
        }
        statements.push(format!(
            "DELETE FROM {} WHERE <key> IN (<changed keys>)",
            self.names.q(&self.names.ghost)
        ));
        statements.push(if self.fenced {
            format!(
                "{} WHERE <key> IN (<changed keys>) (a plain read: no lock on the original)",
                self.insert_prefix
            )
        } else {
            format!(
                "{} WHERE <key> IN (<changed keys>) {}",
                self.insert_prefix,
                self.dialect.share_lock_clause()
            )
        });
        statements
    }

    /// Makes the new table's rows for the keys of `changes` equal to the
    /// original's, in one transaction (see [`Applier::statements`]). No
    /// statement waits for a row lock of the application, so none can make
    /// the application the victim of a deadlock: rows the application holds
    /// are deferred ([`OnBusy::Defer`]) or retried after a short pause until
    /// their writer commits ([`OnBusy::Wait`]); a statement that still meets
    /// a busy row fails at once and its set is halved. Re-applying a key is
    /// harmless, so a set that ends in a conflict or a shortfall may have
    /// had parts applied.
    pub async fn apply(
        &self,
        conn: &mut Conn,
        changes: &[Change],
        on_busy: OnBusy,
    ) -> Result<Outcome> {
        failpoint::pause(self.failpoints.apply_delay).await;
        if self.fenced {
            // Every change passed in was read by the tail before now.
            shadow::write_fence(conn, &self.names, hint::APPLY_FENCE).await?;
        }
        let mut parts: Vec<Vec<Change>> = vec![changes.to_vec()];
        let (mut deferred, mut unconfirmed, mut missed) = (Vec::new(), Vec::new(), 0);
        let mut busy = Patience::default();
        while let Some(part) = parts.pop() {
            match self.try_apply(conn, &part).await {
                Ok((Verdict::Good(absent, short), held)) if !held.is_empty() => {
                    unconfirmed.extend(absent);
                    missed += short;
                    match on_busy {
                        OnBusy::Defer => deferred.extend(held),
                        OnBusy::Wait => {
                            busy.wait(|| {
                                self.held_too_long(&held[0].key, "held by another transaction")
                            })
                            .await?;
                            parts.push(held);
                        }
                    }
                }
                Err(e) if is_lock_busy(&e) => {
                    if part.len() > 1 {
                        let second = part[part.len() / 2..].to_vec();
                        parts.push(second);
                        parts.push(part[..part.len() / 2].to_vec());
                    } else if on_busy == OnBusy::Defer {
                        deferred.extend(part);
                    } else {
                        busy.wait(|| self.held_too_long(&part[0].key, &e.to_string()))
                            .await?;
                        parts.push(part);
                    }
                }
                Err(e) => {
                    // The original's row as it is now does not fit the new
                    // table; a change still in the binlog may fix it.
                    if let mysql_async::Error::Server(s) = &e {
                        if s.code == 1062 || VALUE_REFUSED_CODES.contains(&s.code) {
                            return Ok(Outcome::Conflict(s.message.clone()));
                        }
                    }
                    if is_connection_lost(&e) {
                        return Err(Error::Sql {
                            context: format!(
                                "applying changes to {}",
                                self.names.q(&self.names.ghost)
                            ),
                            source: e,
                        });
                    }
                    return Err(Error::Apply {
                        table: self.table(),
                        message: e.to_string(),
                    });
                }
                Ok((Verdict::Warned(warnings), _)) => {
                    return Err(Error::Apply {
                        table: self.table(),
                        message: format!(
                            "the server warned while copying changed rows: {warnings}"
                        ),
                    })
                }
                Ok((Verdict::Short { expected, found }, _)) => {
                    return Ok(Outcome::Shortfall { expected, found })
                }
                Ok((Verdict::Good(absent, short), _)) => {
                    unconfirmed.extend(absent);
                    missed += short;
                    busy = Patience::default();
                }
            }
        }
        Ok(Outcome::Applied {
            deferred,
            unconfirmed_exact: unconfirmed.len() as u64 == missed,
            unconfirmed,
        })
    }

    /// A key whose row the binlog says exists and the re-read never finds,
    /// with no later change to explain it, `times` times over.
    fn unmatched_key(&self, key: &KeyValue, times: u32) -> Error {
        Error::Apply {
            table: self.table(),
            message: format!(
                "the binlog says the row with key {key:?} exists after its last change, but re-reading it \
                 from the original found no row, {times} times, with no later change to explain it: the \
                 statements do not match this key. Nothing was swapped; please report this"
            ),
        }
    }

    fn held_too_long(&self, key: &KeyValue, why: &str) -> Error {
        Error::Apply {
            table: self.table(),
            message: format!(
                "the row with key {key:?} stayed locked by another transaction for {BUSY_PATIENCE:?} \
                 ({why}); find the long transaction holding it and retry"
            ),
        }
    }

    /// One transaction: committed when good, rolled back otherwise (an
    /// error, a warning, a shortfall), so the connection is always clean.
    async fn try_apply(
        &self,
        conn: &mut Conn,
        changes: &[Change],
    ) -> std::result::Result<(Verdict, Vec<Change>), mysql_async::Error> {
        conn.query_drop("START TRANSACTION").await?;
        let verdict = self.statements(conn, changes).await;
        if let Ok((Verdict::Good(..), _)) = verdict {
            conn.query_drop("COMMIT").await?;
        } else {
            let _ = conn.query_drop("ROLLBACK").await;
        }
        verdict
    }

    /// The predicate matching `keys` in the original, and its parameters.
    fn original_match(&self, keys: &[&KeyValue]) -> (String, Vec<Value>) {
        let keys: Vec<KeyValue> = keys.iter().map(|k| (*k).clone()).collect();
        let (mut predicate, params) = self.key.matches_any(Side::Original, &keys);
        if failpoint::on(self.failpoints.reread_mismatch) {
            predicate.push_str(" AND 1 = 0");
        }
        (predicate, params)
    }

    /// Reads the key columns of the original's rows among `keys`, with a
    /// share lock held to the end of the transaction when `lock` is given
    /// (SKIP LOCKED: rows the application holds are left out).
    async fn read_keys(
        &self,
        conn: &mut Conn,
        keys: &[&KeyValue],
        lock: &str,
    ) -> std::result::Result<HashSet<KeyValue>, mysql_async::Error> {
        let (predicate, params) = self.original_match(keys);
        // In the form the binlog gives keys (ENUM numbers, raw bytes, ...).
        let columns = self.key.select_list();
        let rows: Vec<mysql_async::Row> = conn
            .exec(
                format!(
                    "SELECT {columns} FROM {} WHERE {predicate} {lock}",
                    self.table()
                ),
                params,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                row.unwrap()
                    .into_iter()
                    .filter_map(KeyPart::from_value)
                    .collect()
            })
            .collect())
    }

    /// One batch inside a transaction. After an apply fence (see the
    /// module), the new table's rows of the batch's keys are deleted and the
    /// original's re-read into it with a plain consistent read. Otherwise,
    /// first the rows of the batch that no
    /// one else holds are share-locked (SKIP LOCKED, where the server has
    /// it); a key the binlog says exists whose row is visible but held by
    /// the application is left for later (its writer's commit brings it
    /// back through the binlog anyway) and returned. Every other key is
    /// applied: the new table's rows of those keys are deleted and the
    /// original's re-read into it, without waiting for the application
    /// (`NOWAIT`, unless every row the re-read can find is already ours). A
    /// deleted key whose row could not be locked is only deleted, where
    /// keys are distinct by bytes (see `docs/design.md`, "Apply"). Keys are
    /// matched to rows in Rust only to find the
    /// held ones; a key that matches no row by bytes (a case-insensitive
    /// key, say) is re-read like any other, by the server's comparison, so
    /// a mismatch costs a re-read, never a row. A key the binlog says
    /// exists that the re-read does not find shows as a shortfall.
    async fn statements(
        &self,
        conn: &mut Conn,
        changes: &[Change],
    ) -> std::result::Result<(Verdict, Vec<Change>), mysql_async::Error> {
        let keys: Vec<&KeyValue> = changes.iter().map(|c| &c.key).collect();
        let (mut reread, mut held, mut absent) = (Vec::new(), Vec::new(), Vec::new());
        let mut delete_only = Vec::new();
        // True when every row the re-read can find is one this transaction
        // already share-locked.
        let mut reread_held_by_us = false;
        // After a fence nothing is locked, so no row is found busy.
        let skip_locked = if self.fenced {
            None
        } else {
            self.dialect.skip_locked_share_clause()
        };
        match skip_locked {
            None => reread.extend(changes.iter().cloned()),
            Some(skip_locked) => {
                let locked = self.read_keys(conn, &keys, skip_locked).await?;
                let distinct_by_bytes = self.key.rows_are_distinct_by_bytes();
                let mut unlocked_existing = Vec::new();
                let mut reread_locked = 0;
                for c in changes {
                    if locked.contains(&c.key) {
                        reread_locked += 1;
                        reread.push(c.clone());
                    } else if !c.exists && distinct_by_bytes {
                        // Deleted, and no row of it is free to read: it is
                        // gone, or a writer holds it, whose commit brings
                        // the key back through the binlog. Its delete
                        // touches no other key's row, so nothing is re-read.
                        delete_only.push(c.key.clone());
                    } else if !c.exists {
                        reread.push(c.clone());
                    } else {
                        unlocked_existing.push(c.clone());
                    }
                }
                reread_held_by_us = reread.len() == reread_locked;
                if !unlocked_existing.is_empty() {
                    let wanted: Vec<&KeyValue> = unlocked_existing.iter().map(|c| &c.key).collect();
                    let present = self.read_keys(conn, &wanted, "").await?;
                    for c in unlocked_existing {
                        if present.contains(&c.key) {
                            held.push(c);
                        } else {
                            absent.push(c.clone());
                            reread.push(c);
                            reread_held_by_us = false;
                        }
                    }
                }
            }
        }
        if reread.is_empty() && delete_only.is_empty() {
            return Ok((Verdict::Good(Vec::new(), 0), held));
        }
        let mut to_delete = delete_only;
        to_delete.extend(reread.iter().map(|c| c.key.clone()));
        let (ghost_where, ghost_params) = self.key.matches_any(Side::Ghost, &to_delete);
        conn.exec_drop(
            format!(
                "DELETE FROM {} WHERE {ghost_where}",
                self.names.q(&self.names.ghost)
            ),
            ghost_params,
        )
        .await?;
        if reread.is_empty() {
            return Ok((Verdict::Good(Vec::new(), 0), held));
        }
        let reread_keys: Vec<&KeyValue> = reread.iter().map(|c| &c.key).collect();
        let (orig_where, orig_params) = self.original_match(&reread_keys);
        // A re-read of rows we hold cannot wait for the application; it
        // can only meet our own copy on the new table (its AUTO-INC lock,
        // held to the end of every INSERT ... SELECT), which is better
        // waited out (bounded by the session's 1 s lock wait; the copy
        // never waits in the server, so no cycle forms) than failed on:
        // under 16 writers, NOWAIT failed 600 batches a run that way, each
        // rolled back and retried halved.
        let lock = if self.fenced {
            ""
        } else if reread_held_by_us {
            self.dialect.share_lock_waiting_clause()
        } else {
            self.dialect.share_lock_clause()
        };
        conn.exec_drop(
            format!("{} WHERE {orig_where} {lock}", self.insert_prefix),
            orig_params,
        )
        .await?;
        let found = conn.affected_rows();
        if let Some(warnings) = data_warnings(conn).await? {
            return Ok((Verdict::Warned(warnings), held));
        }
        let expected = reread.iter().filter(|c| c.exists).count() as u64;
        if found < expected {
            if self.fenced {
                // Read only now: a batch that finds every row needs no
                // second look.
                let wanted: Vec<&KeyValue> =
                    reread.iter().filter(|c| c.exists).map(|c| &c.key).collect();
                let present = self.read_keys(conn, &wanted, "").await?;
                absent = reread
                    .iter()
                    .filter(|c| c.exists && !present.contains(&c.key))
                    .cloned()
                    .collect();
            }
            // `absent` holds the keys no row has by their bytes: every key
            // missed when keys compare as bytes, more when they compare by
            // a collation. When they account for the shortfall, the rows
            // are gone now (a later change the tail will read deleted
            // them): the batch stands, and those keys wait for their
            // explanation instead of holding back the rest.
            if absent.len() as u64 >= expected - found {
                return Ok((Verdict::Good(absent, expected - found), held));
            }
            return Ok((Verdict::Short { expected, found }, held));
        }
        Ok((Verdict::Good(Vec::new(), 0), held))
    }

    /// Waits until the tail has read every change committed before now, so
    /// that the buffer explains what a re-read just saw: a probe row is
    /// written to the changelog and waited for in the binlog (which may be
    /// a replica's, whose positions say nothing of the primary's).
    async fn wait_for_tail(&self, conn: &mut Conn, tail: &TailShared) -> Result<()> {
        let _catching_up = tail.catching_up();
        let probe = tail.new_probe();
        crate::shadow::write_changelog(
            conn,
            &self.names,
            crate::shadow::hint::TAIL_PROBE,
            &probe.to_string(),
        )
        .await?;
        tail.wait_until(TailPatience::WhileReading(TAIL_STALL), || {
            tail.claim_probe(probe)
        })
        .await
        .map_err(|failure| Error::Tail {
            table: self.table(),
            message: failure.describe(&format!("the applier's probe {probe}")),
        })?;
        Ok(())
    }

    /// Applies `changes`, telling a shortfall that later changes explain
    /// (a row deleted after the event the tail read: its newer change is
    /// then in the buffer) from one they do not, which is a key the
    /// statements fail to match: that stops the migration, loudly. Sets
    /// whose shortfall the buffer does not explain are halved until the key
    /// is found. A set the new table refuses is halved too, down to the
    /// keys it refuses alone, so that the others go through, unless
    /// `on_refusal` keeps it together. Returns the keys deferred because
    /// the application held their rows, and those refused.
    pub async fn apply_explained(
        &self,
        conn: &mut Conn,
        tail: &TailShared,
        changes: Vec<Change>,
        on_refusal: OnRefusal,
    ) -> Result<Applied> {
        let mut work = vec![changes];
        let mut strikes = 0u32;
        let mut unexplained_strikes: HashMap<KeyValue, u32> = HashMap::new();
        let mut applied = Applied::default();
        while let Some(mut set) = work.pop() {
            match self.apply(conn, &set, OnBusy::Defer).await? {
                Outcome::Applied {
                    deferred: busy,
                    unconfirmed,
                    unconfirmed_exact,
                } => {
                    strikes = 0;
                    applied.deferred.extend(busy);
                    if unconfirmed.is_empty() {
                        continue;
                    }
                    self.wait_for_tail(conn, tail).await?;
                    let (explained, mut unexplained) = lock(&tail.buffer).explain(unconfirmed);
                    if !explained.is_empty() {
                        work.push(explained);
                    }
                    if unconfirmed_exact {
                        // These rows were missed, and nothing explains it.
                        for c in &unexplained {
                            let seen = unexplained_strikes.entry(c.key.clone()).or_insert(0);
                            *seen += 1;
                            if *seen >= SHORTFALL_STRIKES {
                                return Err(self.unmatched_key(&c.key, *seen));
                            }
                        }
                    } else if unexplained.len() > 1 {
                        // Keys compared by a collation: which of them were
                        // missed is found by halving, never guessed.
                        work.push(unexplained.split_off(unexplained.len() / 2));
                    }
                    if !unexplained.is_empty() {
                        work.push(unexplained);
                    }
                }
                Outcome::Conflict(message) => {
                    if set.len() > 1 && on_refusal == OnRefusal::Halve {
                        let half = set.split_off(set.len() / 2);
                        work.push(half);
                        work.push(set);
                    } else {
                        applied.refused.extend(set);
                        applied.refusal.get_or_insert(message);
                    }
                }
                Outcome::Shortfall { expected, found } => {
                    // The server cannot say which keys were missed.
                    self.wait_for_tail(conn, tail).await?;
                    let explained = lock(&tail.buffer).refresh(&mut set);
                    if set.len() > 1 {
                        // Halved even when explained: under a busy writer a
                        // large set meets a new change on every retry and
                        // would never apply; a single key always does.
                        let half = set.split_off(set.len() / 2);
                        work.push(half);
                        work.push(set);
                    } else if explained {
                        work.push(set);
                    } else {
                        strikes += 1;
                        if strikes >= SHORTFALL_STRIKES {
                            tracing::debug!(expected, found, "the last re-read's shortfall");
                            return Err(self.unmatched_key(&set[0].key, strikes));
                        }
                        work.push(set);
                    }
                }
            }
        }
        Ok(applied)
    }

    /// Applies `parts` ([`Applier::partition`]) on `conn` and `helpers`,
    /// each part on its own connection at once: no two parts touch one row
    /// of the new table. Returns what [`Applier::apply_explained`] returns,
    /// for the whole.
    pub async fn apply_generation(
        &self,
        conn: &mut Conn,
        helpers: &mut [Conn],
        tail: &TailShared,
        mut parts: Vec<Vec<Change>>,
    ) -> Result<Applied> {
        // Never more parts than connections: extra ones join the last.
        while parts.len() > helpers.len() + 1 {
            let extra = parts.pop().unwrap_or_default();
            if let Some(last) = parts.last_mut() {
                last.extend(extra);
            }
        }
        let mut parts = parts.into_iter();
        let mut work = Vec::with_capacity(helpers.len() + 1);
        for c in std::iter::once(conn).chain(helpers.iter_mut()) {
            if let Some(part) = parts.next() {
                work.push(self.apply_explained(c, tail, part, OnRefusal::Halve));
            }
        }
        let mut applied = Applied::default();
        for outcome in futures_util::future::join_all(work).await {
            let part = outcome?;
            applied.deferred.extend(part.deferred);
            applied.refused.extend(part.refused);
            applied.refusal = applied.refusal.or(part.refusal);
        }
        Ok(applied)
    }
}

/// Splits `changes` into at most `workers` parts, keeping together the
/// keys that share an equality class on either side (`classes`: rows `(i,
/// class in the original's comparison, class in the new table's)` from
/// [`SharedKey::equality_classes`]). Classes go, largest first, to the part
/// with the fewest keys. One part when a key has no class (never split on a
/// guess).
fn split_by_classes(
    changes: Vec<Change>,
    classes: &[(u64, u64, u64)],
    workers: usize,
) -> Vec<Vec<Change>> {
    let n = changes.len();
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let mut classed = vec![false; n];
    let mut first_of: [HashMap<u64, usize>; 2] = [HashMap::new(), HashMap::new()];
    for &(i, original, ghost) in classes {
        let Ok(i) = usize::try_from(i) else { continue };
        if i >= n {
            continue; // padding
        }
        classed[i] = true;
        for (first, class) in first_of.iter_mut().zip([original, ghost]) {
            let j = *first.entry(class).or_insert(i);
            let (a, b) = (root(&mut parent, i), root(&mut parent, j));
            parent[a] = b;
        }
    }
    if classed.contains(&false) {
        return vec![changes];
    }
    let mut groups: HashMap<usize, Vec<Change>> = HashMap::new();
    for (i, c) in changes.into_iter().enumerate() {
        groups.entry(root(&mut parent, i)).or_default().push(c);
    }
    let mut groups: Vec<Vec<Change>> = groups.into_values().collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let mut parts: Vec<Vec<Change>> = vec![Vec::new(); workers.clamp(1, groups.len().max(1))];
    for group in groups {
        if let Some(smallest) = parts.iter_mut().min_by_key(|p| p.len()) {
            smallest.extend(group);
        }
    }
    parts
}

/// How long one row may stay locked by the application before the copy or
/// the applier gives up on it (a transaction holding a row this long is a
/// problem the DBA should see).
pub const BUSY_PATIENCE: Duration = Duration::from_secs(300);

/// Pauses between retries of a statement that found a row locked: from
/// 1 ms, doubling to 100 ms, for at most [`BUSY_PATIENCE`] in all.
#[derive(Debug, Default)]
pub struct Patience {
    since: Option<Instant>,
    retries: u32,
}

impl Patience {
    /// Waits before the next retry, or returns `give_up()` once the row has
    /// been busy for longer than [`BUSY_PATIENCE`].
    pub async fn wait(&mut self, give_up: impl FnOnce() -> Error) -> Result<()> {
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() > BUSY_PATIENCE {
            return Err(give_up());
        }
        self.retries += 1;
        let pause = Duration::from_millis(1 << self.retries.min(7)).min(Duration::from_millis(100));
        tokio::time::sleep(pause).await;
        Ok(())
    }
}

/// How long the applier waits for a tail that reads nothing to read its
/// probe.
const TAIL_STALL: Duration = Duration::from_secs(60);

/// How often a single key may be re-read in vain, each time after the tail
/// has caught up, before the migration stops.
const SHORTFALL_STRIKES: u32 = 3;

/// Why [`drain_all`] did not apply everything.
#[derive(Debug)]
pub enum DrainFailure {
    /// With every change applied, the new table refuses rows of the
    /// original (a unique key, or a value; see [`crate::apply::Outcome::Conflict`]):
    /// the data violates the ALTER.
    Collision(String),
    /// Anything else; worth another attempt.
    Failed(String),
}

/// Applies every change left in the buffer, while the caller holds the
/// original's lock (nothing can change it meanwhile, so a collision or a
/// shortfall cannot be explained by a later change). Taken keys go back
/// into the buffer whenever this ends before they are applied, even when it
/// is cancelled mid-statement. A batch that collides on a new unique key
/// may collide with a row whose own change is in a later batch: it is
/// deferred and applied together with every other deferred key at the end;
/// a collision then is real. `attempt` is the cut-over attempt, for the
/// test-only stall.
pub async fn drain_all(
    applier: &Applier,
    buffer: &SharedBuffer,
    conn: &mut Conn,
    failpoints: &Failpoints,
    attempt: Option<u32>,
) -> std::result::Result<(), DrainFailure> {
    let batch_keys = failpoints
        .drain_batch_keys
        .filter(|_| Failpoints::ENABLED)
        .map_or(BATCH_KEYS, |n| n as usize);
    let mut deferred = Taken::new(buffer, Vec::new());
    let failed = |e: Error| DrainFailure::Failed(e.to_string());
    let short = |expected, found| {
        DrainFailure::Failed(format!(
            "re-reading changed rows under the lock found {found} of {expected}"
        ))
    };
    loop {
        let batch = lock(buffer).take(batch_keys);
        if batch.changes.is_empty() {
            break;
        }
        let taken = Taken::new(buffer, batch.changes);
        if let Some(attempt) = attempt {
            failpoint::stall_in_attempt(failpoints.stall_drain_attempts, attempt).await;
        }
        match applier
            .apply(conn, taken.changes(), OnBusy::Wait)
            .await
            .map_err(failed)?
        {
            Outcome::Applied { unconfirmed, .. } if !unconfirmed.is_empty() => {
                return Err(unconfirmed_under_lock(&unconfirmed))
            }
            Outcome::Applied { .. } => {
                taken.done();
            }
            Outcome::Conflict(_) => deferred.extend(taken.done()),
            Outcome::Shortfall { expected, found } => return Err(short(expected, found)),
        }
    }
    if deferred.changes().is_empty() {
        return Ok(());
    }
    match applier
        .apply(conn, deferred.changes(), OnBusy::Wait)
        .await
        .map_err(failed)?
    {
        Outcome::Applied { unconfirmed, .. } if !unconfirmed.is_empty() => {
            Err(unconfirmed_under_lock(&unconfirmed))
        }
        Outcome::Applied { .. } => {
            deferred.done();
            Ok(())
        }
        Outcome::Conflict(message) => Err(DrainFailure::Collision(message)),
        Outcome::Shortfall { expected, found } => Err(short(expected, found)),
    }
}

/// Under the lock no write can explain a row the binlog says exists and the
/// original lacks: the statements do not match those keys.
fn unconfirmed_under_lock(unconfirmed: &[Change]) -> DrainFailure {
    DrainFailure::Failed(format!(
        "re-reading changed rows under the lock found no row for {} keys the binlog says exist \
         (the first: {:?})",
        unconfirmed.len(),
        unconfirmed[0].key
    ))
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

impl Warning {
    /// A note: information a native ALTER in strict mode accepts (such as
    /// a DATETIME's time dropped on the way to DATE), not a warning.
    pub fn is_note(&self) -> bool {
        self.level.eq_ignore_ascii_case("Note")
    }
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.level, self.code, self.message)
    }
}

/// Reads the warnings of the last statement (none asked for when it
/// counted none).
pub async fn show_warnings(
    conn: &mut Conn,
) -> std::result::Result<Vec<Warning>, mysql_async::Error> {
    if conn.get_warnings() == 0 {
        return Ok(Vec::new());
    }
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

/// The warnings of the last statement other than notes (which a native
/// ALTER accepts in strict mode too), as one text; `None` when there are
/// none.
pub async fn data_warnings(
    conn: &mut Conn,
) -> std::result::Result<Option<String>, mysql_async::Error> {
    let warnings: Vec<String> = show_warnings(conn)
        .await?
        .into_iter()
        .filter(|w| !w.is_note())
        .map(|w| w.to_string())
        .collect();
    Ok((!warnings.is_empty()).then(|| warnings.join("; ")))
}

/// Counters of the apply loop, read by progress reporting.
#[derive(Debug, Default)]
pub struct ApplyStats {
    /// Keys applied to the new table.
    pub keys_applied: AtomicU64,
    /// Generations applied over several connections at once.
    pub parallel_generations: AtomicU64,
}

/// How the apply loop opens its connections again when one is lost.
#[derive(Debug, Clone)]
pub struct Reconnect {
    /// The session settings of the applier's connections.
    pub connect: crate::server::ConnectConfig,
    /// Times in a row a lost connection is opened again before the loop
    /// fails (`--default-retries`).
    pub retries: u32,
}

impl Reconnect {
    /// Replaces `conn` and every helper with fresh sessions (which of them
    /// was lost is not known); one that cannot be opened stays as it was,
    /// and fails the next try.
    async fn reopen(&self, conn: &mut Conn, helpers: &mut [Conn]) {
        for c in std::iter::once(conn).chain(helpers.iter_mut()) {
            match crate::server::connect_session(&self.connect).await {
                Ok(fresh) => *c = fresh,
                Err(e) => tracing::warn!(error = %e, "reopening an applier connection failed"),
            }
        }
    }
}

/// The background task that keeps applying the buffer to the new table
/// until stopped. The cut-over stops it and drains the rest itself.
pub struct ApplyLoop {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(Conn, Vec<Conn>)>>,
    applied_marker: watch::Receiver<u64>,
}

/// What [`Applier::apply_explained`] does with a set the new table refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRefusal {
    /// Halves it down to the keys refused alone; the others go through.
    Halve,
    /// Refuses it whole: keys refused before, retried together because
    /// some only go through together (rows exchanging unique values). Alone
    /// they were refused already, so halving them again would cost a
    /// statement per key each round, for nothing.
    KeepTogether,
}

/// What applying a set of keys came to ([`Applier::apply_explained`]).
#[derive(Debug, Default)]
pub struct Applied {
    /// Keys whose rows the application held: to be tried again in their
    /// places.
    pub deferred: Vec<Change>,
    /// Keys the new table refused, each on its own (a unique value another
    /// row still holds there, a value a changed column cannot hold).
    pub refused: Vec<Change>,
    /// The server's message for the first refusal.
    pub refusal: Option<String>,
}

/// How long the new table may keep refusing a key's row (a new unique key,
/// a value that does not fit) before the migration fails: long enough for
/// the change that fixes it to arrive.
const CONFLICT_PATIENCE: Duration = Duration::from_secs(30);

/// How long the refusal may last once it is settled: every refused key
/// retried together, nothing else waiting, and the tail caught up with the
/// binlog, so the original's committed rows themselves break the ALTER.
/// Not at once: the application may be between two transactions that
/// move a unique value. A native ALTER would fail on the same rows.
const SETTLED_CONFLICT_PATIENCE: Duration = Duration::from_secs(5);

/// The apply loop's memory of the rows the new table refuses.
#[derive(Debug, Default)]
struct Refusals {
    /// Since when rows are refused, and the keys refused then that have
    /// not been applied since: only their application ends the wait.
    /// Other keys going through do not: under a steady load a refused row
    /// would be retried for ever, and every catch-up would wait behind it
    /// (fuzzer seed 43016).
    since: Option<Instant>,
    keys: HashSet<KeyValue>,
    /// Since when every refusal has been settled
    /// ([`SETTLED_CONFLICT_PATIENCE`]).
    settled_since: Option<Instant>,
}

impl Refusals {
    /// True while refused keys wait.
    fn waiting(&self) -> bool {
        self.since.is_some()
    }

    /// Records a batch of `taken` keys applied but for `deferred` and
    /// `refused`.
    fn applied(&mut self, taken: &[Change], deferred: &[Change], refused: &[Change]) {
        if self.since.is_none() {
            return;
        }
        let not_applied: HashSet<&KeyValue> =
            deferred.iter().chain(refused).map(|c| &c.key).collect();
        for c in taken {
            if !not_applied.contains(&c.key) {
                self.keys.remove(&c.key);
            }
        }
        if self.keys.is_empty() {
            *self = Refusals::default();
        }
    }

    /// Records `refused` keys, `settled` or not; the error that ends the
    /// run once the refusal has outlasted its patience.
    fn refused(&mut self, refused: &[Change], settled: bool, message: &str) -> Option<String> {
        let now = Instant::now();
        if self.since.is_none() {
            self.keys = refused.iter().map(|c| c.key.clone()).collect();
        }
        let since = *self.since.get_or_insert(now);
        let settled_since = if settled {
            *self.settled_since.get_or_insert(now)
        } else {
            self.settled_since = None;
            now
        };
        let (patience, how) = if settled_since.elapsed() > SETTLED_CONFLICT_PATIENCE {
            (
                SETTLED_CONFLICT_PATIENCE,
                " with every change up to then applied",
            )
        } else if since.elapsed() > CONFLICT_PATIENCE {
            (CONFLICT_PATIENCE, "")
        } else {
            return None;
        };
        Some(format!(
            "the new table kept refusing rows of the original for {patience:?}{how} ({message}); \
             the data does not satisfy the ALTER (a unique key it adds, or a value a changed \
             column cannot hold): fix the rows or the ALTER"
        ))
    }
}

impl ApplyLoop {
    /// Starts applying the tail's buffer on `conn`, and on `helpers` too
    /// when the key allows batches in parallel
    /// ([`Applier::applies_in_parallel`]): a generation of up to one batch
    /// per connection, split so that no two parts touch one row
    /// ([`Applier::partition`]), applied at once; a key changed meanwhile
    /// waits in the buffer for the next generation.
    /// While `throttle` holds, nothing is written.
    pub fn start(
        mut conn: Conn,
        mut helpers: Vec<Conn>,
        applier: Applier,
        tail: Arc<TailShared>,
        stats: Arc<ApplyStats>,
        throttle: Arc<Throttle>,
        reconnect: Reconnect,
    ) -> ApplyLoop {
        let (stop, mut stopped) = watch::channel(false);
        let (marker_tx, applied_marker) = watch::channel(0u64);
        let task = tokio::spawn(async move {
            let mut refusals = Refusals::default();
            let mut last_position_write = Instant::now();
            let mut unrecorded: Option<BinlogPosition> = None;
            let mut lost = 0u32;
            let batch_keys = applier
                .failpoints
                .apply_batch_keys
                .filter(|_| Failpoints::ENABLED)
                .map_or(BATCH_KEYS, |n| (n as usize).max(1));
            loop {
                if *stopped.borrow() {
                    break;
                }
                if let Some(delay) = applier.failpoints.apply_loop_delay {
                    tokio::select! {
                        _ = failpoint::pause(Some(delay)) => {}
                        _ = stopped.changed() => {}
                    }
                    if *stopped.borrow() {
                        break;
                    }
                }
                if throttle.reason().is_some() {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        _ = stopped.changed() => {}
                    }
                    continue;
                }
                let parallel = !helpers.is_empty() && applier.applies_in_parallel();
                let generation = if parallel {
                    batch_keys * (helpers.len() + 1)
                } else {
                    batch_keys
                };
                let batch = lock(&tail.buffer).take(generation);
                if batch.changes.is_empty() {
                    let applied = lock(&tail.buffer).applied_marker();
                    if let Some(m) = applied {
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
                    let count = batch.changes.len() as u64;
                    // Kept to go back into the buffer if a connection is lost.
                    let taken = batch.changes.clone();
                    let applied = if parallel && !batch.refused && batch.changes.len() > batch_keys
                    {
                        let workers = helpers.len() + 1;
                        match applier.partition(&mut conn, batch.changes, workers).await {
                            Ok(parts) if parts.len() > 1 => {
                                stats.parallel_generations.fetch_add(1, Ordering::Relaxed);
                                applier
                                    .apply_generation(&mut conn, &mut helpers, &tail, parts)
                                    .await
                            }
                            Ok(parts) => {
                                let changes = parts.into_iter().flatten().collect();
                                applier
                                    .apply_explained(&mut conn, &tail, changes, OnRefusal::Halve)
                                    .await
                            }
                            Err(e) => Err(e),
                        }
                    } else {
                        let on_refusal = if batch.refused {
                            OnRefusal::KeepTogether
                        } else {
                            OnRefusal::Halve
                        };
                        applier
                            .apply_explained(&mut conn, &tail, batch.changes, on_refusal)
                            .await
                    };
                    let outcome = match applied {
                        Ok(outcome) => {
                            lost = 0;
                            outcome
                        }
                        Err(e) if e.is_connection_lost() && lost < reconnect.retries => {
                            lost += 1;
                            tracing::warn!(error = %e, attempt = lost, "an applier connection was lost; reconnecting");
                            lock(&tail.buffer).requeue(taken);
                            tokio::time::sleep(crate::table_lock::retry_delay(lost)).await;
                            reconnect.reopen(&mut conn, &mut helpers).await;
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let Applied {
                        deferred,
                        refused,
                        refusal,
                    } = outcome;
                    let not_applied = (deferred.len() + refused.len()) as u64;
                    stats
                        .keys_applied
                        .fetch_add(count - not_applied, Ordering::Relaxed);
                    refusals.applied(&taken, &deferred, &refused);
                    if not_applied == 0 {
                        if batch.position.is_some() {
                            unrecorded = batch.position;
                        }
                    } else if !deferred.is_empty() {
                        // Not applied up to the batch's position: a later
                        // batch that empties the buffer records it.
                        // Deferred and refused keys keep their epoch, so
                        // markers after them wait too.
                        lock(&tail.buffer).requeue(deferred);
                    }
                    if let Some(message) = refusal {
                        // Settled: every refused key was in this set,
                        // nothing else waits, and nothing new has arrived
                        // by the time the tail reads a probe written now.
                        let settled = batch.refused && lock(&tail.buffer).is_empty() && {
                            applier.wait_for_tail(&mut conn, &tail).await?;
                            lock(&tail.buffer).is_empty()
                        };
                        if let Some(message) = refusals.refused(&refused, settled, &message) {
                            return Err(Error::Apply {
                                table: applier.table(),
                                message,
                            });
                        }
                        lock(&tail.buffer).requeue_last(refused);
                    }
                    let (applied, checkpoint) = {
                        let mut buffer = lock(&tail.buffer);
                        (buffer.applied_marker(), buffer.applied_checkpoint())
                    };
                    if let Some(m) = applied {
                        marker_tx.send_if_modified(|v| std::mem::replace(v, m) != m);
                    }
                    unrecorded = unrecorded.max(checkpoint);
                    if not_applied == count {
                        tokio::time::sleep(Duration::from_millis(if refusals.waiting() {
                            50
                        } else {
                            2
                        }))
                        .await;
                    }
                }
                if last_position_write.elapsed() > Duration::from_secs(1) {
                    let position = unrecorded.take();
                    let mut lost = 0;
                    while let Err(e) =
                        record_position(&mut conn, &applier.names, position.clone()).await
                    {
                        crate::server::recover_lost(
                            e,
                            &mut lost,
                            &mut conn,
                            &reconnect.connect,
                            reconnect.retries,
                            "applier",
                        )
                        .await?;
                    }
                    last_position_write = Instant::now();
                }
            }
            record_position(&mut conn, &applier.names, unrecorded.take()).await?;
            Ok((conn, helpers))
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

    /// Stops the loop after its current batch and returns its connection
    /// and its helpers'.
    pub async fn stop(self) -> Result<(Conn, Vec<Conn>)> {
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

    fn changes(n: i64) -> Vec<Change> {
        (0..n)
            .map(|i| Change {
                key: k(i),
                exists: true,
                since: 0,
                order: i as u64,
            })
            .collect()
    }

    fn keys_of(part: &[Change]) -> Vec<i64> {
        let mut keys: Vec<i64> = part
            .iter()
            .map(|c| match c.key[0] {
                KeyPart::Int(i) => i,
                _ => unreachable!(),
            })
            .collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn a_generation_never_splits_an_equality_class() {
        // 0, 1 and 2 chain (0~1 on the original's side, 1~2 on the new
        // table's); 4 and 5 share a class on the new table's side; row 6
        // is padding.
        let classes = [
            (0, 1, 1),
            (1, 1, 2),
            (2, 3, 2),
            (3, 4, 3),
            (4, 5, 4),
            (5, 6, 4),
            (6, 6, 4),
        ];
        let parts = split_by_classes(changes(6), &classes, 2);
        assert_eq!(parts.len(), 2);
        let mut parts: Vec<Vec<i64>> = parts.iter().map(|p| keys_of(p)).collect();
        parts.sort();
        assert_eq!(parts, vec![vec![0, 1, 2], vec![3, 4, 5]]);
        // One class: one part, whatever the workers.
        let one = [(0, 1, 1), (1, 1, 1), (2, 1, 1)];
        assert_eq!(split_by_classes(changes(3), &one, 4).len(), 1);
        // Every key its own class: spread evenly.
        let own: Vec<(u64, u64, u64)> = (0..8).map(|i| (i, i, i)).collect();
        let parts = split_by_classes(changes(8), &own, 3);
        let mut sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, vec![2, 3, 3]);
    }

    #[test]
    fn a_key_without_a_class_keeps_the_generation_whole() {
        let parts = split_by_classes(changes(3), &[(0, 1, 1), (1, 2, 2)], 2);
        assert_eq!(parts.len(), 1);
        assert_eq!(keys_of(&parts[0]), vec![0, 1, 2]);
    }

    fn k(i: i64) -> KeyValue {
        vec![KeyPart::Int(i)]
    }

    #[test]
    fn buffer_dedups_and_reports_position_only_when_drained() {
        let mut b = ChangeBuffer::default();
        b.insert(k(1), true);
        b.insert(k(1), false);
        b.insert(k(2), true);
        b.insert(k(3), true);
        b.mark_position(BinlogPosition {
            file: "f".into(),
            pos: 10,
        });
        b.mark_sync(4);
        assert_eq!(b.len(), 3);
        let first = b.take(2);
        assert_eq!(first.changes.len(), 2);
        assert!(first.position.is_none());
        // Keys read before marker 4 are still in flight.
        assert_eq!(b.applied_marker(), None);
        let rest = b.take(2);
        assert_eq!(rest.changes.len(), 1);
        assert_eq!(rest.position.unwrap().pos, 10);
        assert_eq!(b.applied_marker(), Some(4));
        let mut all = first.changes;
        all.extend(rest.changes);
        assert!(all.contains(&Change {
            key: k(1),
            exists: false,
            since: 0,
            order: 0,
        }));
        b.requeue(all);
        assert_eq!(b.len(), 3);
    }

    /// A buffer that holds back the keys of the chunks its copy frontier
    /// (on one integer column) holds.
    fn held_back_buffer() -> (Arc<CopyFrontier>, ChangeBuffer) {
        let frontier = Arc::new(CopyFrontier::new(&crate::schema::tests::key(&[
            crate::schema::tests::col("id", "int", None),
        ])));
        let mut b = ChangeBuffer::default();
        b.hold_back_for(Arc::clone(&frontier));
        (frontier, b)
    }

    #[test]
    fn keys_a_chunk_holds_stay_until_it_lets_go_and_markers_wait_for_them() {
        let (frontier, mut b) = held_back_buffer();
        for i in 1..=6 {
            b.insert(k(i), i % 2 == 0);
        }
        b.mark_position(BinlogPosition {
            file: "f".into(),
            pos: 10,
        });
        b.mark_sync(3);
        let held = frontier.hold(Some(&k(1)), Some(&k(4)));
        let taken = b.take(10);
        let keys: Vec<KeyValue> = taken.changes.iter().map(|c| c.key.clone()).collect();
        assert_eq!(keys, vec![k(1), k(5), k(6)]);
        assert!(taken.position.is_none(), "held keys wait");
        assert_eq!(b.applied_marker(), None);
        assert!(b.take(10).changes.is_empty());
        drop(held);
        let rest = b.take(10);
        let keys: Vec<KeyValue> = rest.changes.iter().map(|c| c.key.clone()).collect();
        assert_eq!(keys, vec![k(2), k(3), k(4)]);
        assert_eq!(rest.position.map(|p| p.pos), Some(10));
        assert_eq!(b.applied_marker(), Some(3));
    }

    /// A batch taken before a chunk held its range meets a shortfall; the
    /// newer change that explains it is read while the chunk holds the key.
    /// It explains the shortfall, and stays in the buffer for after the
    /// chunk, whose older copy of the row it must overwrite.
    #[test]
    fn a_newer_change_of_a_held_key_explains_and_still_waits_for_the_chunk() {
        let (frontier, mut b) = held_back_buffer();
        b.insert(k(150), true);
        b.insert(k(7), true);
        let taken = b.take(10).changes;
        assert_eq!(taken.len(), 2);
        let held = frontier.hold(Some(&k(100)), Some(&k(200)));
        b.insert(k(150), false);
        b.insert(k(7), false);
        let (explained, unexplained) = b.explain(taken);
        assert!(unexplained.is_empty(), "{unexplained:?}");
        assert!(explained.iter().all(|c| !c.exists), "{explained:?}");
        // 7 is not held: its newer change was taken. 150 waits.
        assert_eq!(b.len(), 1);
        // Asked again, with nothing new since: 150's change is not newer.
        let (again, same) = b.explain(explained.clone());
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(same.len(), 2);
        assert_eq!(b.len(), 1);
        assert!(b.take(10).changes.is_empty());
        drop(held);
        let after = b.take(10).changes;
        assert_eq!(after.len(), 1);
        assert_eq!((after[0].key.clone(), after[0].exists), (k(150), false));
    }

    /// A batch whose shortfall a newer change explained is put back whole
    /// after a lost connection, as it was taken: the key goes back with
    /// the newer state, not with the older one the batch was taken with
    /// (which would re-read a deleted row in vain until the run failed, or
    /// apply a delete over a row inserted since).
    #[test]
    fn a_batch_put_back_after_a_lost_connection_keeps_the_newer_states_it_took() {
        let mut b = ChangeBuffer::default();
        b.insert(k(1), true);
        b.insert(k(2), false);
        b.insert(k(3), true);
        let taken = b.take(10).changes;
        b.insert(k(1), false);
        b.insert(k(2), true);
        let mut in_flight = taken.clone();
        assert!(b.refresh(&mut in_flight));
        assert!(b.is_empty(), "the newer changes went with the batch");
        b.requeue(taken);
        let mut back = b.take(10).changes;
        back.sort_by_key(|c| format!("{:?}", c.key));
        let states: Vec<(KeyValue, bool)> =
            back.iter().map(|c| (c.key.clone(), c.exists)).collect();
        assert_eq!(states, vec![(k(1), false), (k(2), true), (k(3), true)]);
        // Once the next batch is taken, the old batch's newer states are forgotten.
        b.insert(k(1), true);
        b.requeue(vec![Change {
            key: k(2),
            exists: false,
            since: 0,
            order: 1,
        }]);
        assert!(b
            .take(10)
            .changes
            .iter()
            .all(|c| c.key != k(2) || !c.exists));
    }

    #[test]
    fn a_marker_waits_for_every_key_read_before_it_not_for_an_empty_buffer() {
        let mut b = ChangeBuffer::default();
        b.insert(k(1), true);
        b.insert(k(2), true);
        b.mark_sync(7);
        // The table stays busy: keys keep arriving after the marker.
        b.insert(k(3), true);
        b.insert(k(1), false);
        let mut taken = b.take(10).changes;
        taken.sort_by_key(|c| format!("{:?}", c.key));
        // k(1) changed again after the marker, yet its older change is
        // still unapplied: it keeps the older epoch.
        assert_eq!(
            taken.iter().map(|c| c.since).collect::<Vec<_>>(),
            vec![0, 0, 1]
        );
        // k(2) and k(3) applied, k(1) deferred (put back); more arrive.
        b.requeue(vec![taken[0].clone()]);
        b.insert(k(4), true);
        assert_eq!(
            b.applied_marker(),
            None,
            "k(1) from before the marker waits"
        );
        let again = b.take(10).changes;
        assert_eq!(again.len(), 2);
        // Both applied: the marker is, though the table stays busy.
        b.insert(k(5), true);
        assert_eq!(b.applied_marker(), Some(7));
        assert_eq!(b.len(), 1);
        assert_eq!(b.applied_marker(), None, "reported once");
    }

    #[test]
    fn keys_are_taken_in_the_order_their_oldest_change_arrived() {
        let mut b = ChangeBuffer::default();
        for i in [5, 3, 9, 1] {
            b.insert(k(i), true);
        }
        // A newer change of a waiting key keeps its place.
        b.insert(k(3), false);
        let first = b.take(2).changes;
        assert_eq!(keys_of(&first), vec![3, 5]);
        assert_eq!(first[0].key, k(5), "oldest first");
        b.insert(k(7), true);
        // A key changed again while its batch was out keeps the older place.
        b.insert(k(5), false);
        // A batch put back (refused, or a row held) goes back to its
        // places, ahead of the keys that arrived later.
        b.requeue(first);
        let order: Vec<KeyValue> = b.take(10).changes.into_iter().map(|c| c.key).collect();
        assert_eq!(order, vec![k(5), k(3), k(9), k(1), k(7)]);
    }

    #[test]
    fn a_refused_batch_waits_behind_every_key_waiting_now() {
        let mut b = ChangeBuffer::default();
        for i in 1..=4 {
            b.insert(k(i), true);
        }
        b.mark_sync(9);
        let refused = b.take(2).changes;
        b.insert(k(2), false);
        b.requeue_last(refused);
        // They keep their epoch: the marker waits for them.
        assert_eq!(b.applied_marker(), None);
        let order: Vec<KeyValue> = b.take(10).changes.iter().map(|c| c.key.clone()).collect();
        assert_eq!(order, vec![k(3), k(4)]);
        let refused = b.take(10);
        assert!(refused.refused);
        assert_eq!(keys_of(&refused.changes), vec![1, 2]);
        assert_eq!(b.applied_marker(), Some(9));
    }

    #[test]
    fn refused_keys_are_taken_together_once_they_are_first() {
        let mut b = ChangeBuffer::default();
        for i in 1..=5 {
            b.insert(k(i), true);
        }
        // Keys 1 and 2 each need the other's change (a swap) and are
        // refused in separate batches of one.
        let one = b.take(1);
        assert!(!one.refused);
        b.requeue_last(one.changes);
        let two = b.take(1);
        b.requeue_last(two.changes);
        b.insert(k(6), true);
        assert_eq!(b.refused, 2);
        // Keys that waited are taken first, in batches as usual, without
        // the refused keys even when the batch could hold them.
        let waiting = b.take(10);
        assert!(!waiting.refused);
        assert_eq!(keys_of(&waiting.changes), vec![3, 4, 5, 6]);
        b.requeue(waiting.changes);
        assert_eq!(keys_of(&b.take(3).changes), vec![3, 4, 5]);
        b.insert(k(7), true);
        // Key 6 arrived after them: once they are first, both refused keys
        // come in one batch, whatever the batch size.
        let together = b.take(1);
        assert!(together.refused);
        assert_eq!(keys_of(&together.changes), vec![1, 2]);
        assert_eq!(b.refused, 0);
        assert_eq!(keys_of(&b.take(10).changes), vec![6, 7]);
        // Applied, they are plain keys again when they change next.
        b.insert(k(1), true);
        assert!(!b.take(10).refused);
    }

    #[test]
    fn a_refusal_ends_the_run_after_its_patience_only() {
        let ago = |secs| Instant::now().checked_sub(Duration::from_secs(secs));
        let mut r = Refusals::default();
        let all = changes(3);
        let (one, two) = (all[1].clone(), all[2].clone());
        assert_eq!(r.refused(&[one.clone(), two.clone()], false, "dup"), None);
        assert!(r.waiting());
        // Key 1 goes through; key 2 still holds the wait.
        r.applied(std::slice::from_ref(&one), &[], &[]);
        assert!(r.waiting());
        assert_eq!(r.refused(std::slice::from_ref(&two), true, "dup"), None);
        r.settled_since = ago(6);
        let message = r.refused(std::slice::from_ref(&two), true, "dup");
        assert!(
            message.is_some_and(|m| m.contains("5s with every change up to then applied (dup)"))
        );
        // A refusal that is not settled starts the settled clock again.
        assert_eq!(r.refused(std::slice::from_ref(&two), false, "dup"), None);
        assert_eq!(r.settled_since, None);
        r.since = ago(31);
        let message = r.refused(std::slice::from_ref(&two), false, "dup");
        assert!(message.is_some_and(|m| m.contains("for 30s (dup)")));
        // Refused again, or deferred, it still waits; applied, it is over.
        r.applied(std::slice::from_ref(&two), &[], std::slice::from_ref(&two));
        r.applied(std::slice::from_ref(&two), std::slice::from_ref(&two), &[]);
        assert!(r.waiting());
        r.applied(std::slice::from_ref(&two), &[], &[]);
        assert!(!r.waiting());
    }

    #[test]
    fn requeue_never_overrides_a_newer_change() {
        let mut b = ChangeBuffer::default();
        b.insert(k(1), true);
        let taken = b.take(10).changes;
        b.insert(k(1), false);
        b.requeue(taken);
        assert_eq!(
            b.take(10).changes,
            vec![Change {
                key: k(1),
                exists: false,
                since: 0,
                order: 0,
            }]
        );
    }

    #[test]
    fn refresh_takes_newer_states() {
        let mut b = ChangeBuffer::default();
        let mut set = vec![
            Change {
                key: k(1),
                exists: true,
                since: 0,
                order: 100,
            },
            Change {
                key: k(2),
                exists: true,
                since: 0,
                order: 101,
            },
        ];
        b.insert(k(3), true);
        assert!(!b.refresh(&mut set));
        b.insert(k(2), false);
        assert!(b.refresh(&mut set));
        assert!(!set[1].exists);
        assert_eq!(b.len(), 1);
        b.insert(k(1), true);
        assert!(
            b.refresh(&mut set),
            "a change back to the same state is a change"
        );
        assert!(!b.refresh(&mut set));
    }

    #[test]
    fn a_checkpoint_counts_once_every_change_before_it_is_applied() {
        let at = |pos| BinlogPosition {
            file: "binlog.000001".into(),
            pos,
        };
        let mut b = ChangeBuffer::default();
        b.insert(k(1), true);
        b.mark_position(at(10));
        b.insert(k(2), true);
        assert_eq!(b.applied_checkpoint(), None, "key 1 is still waiting");
        let deferred = b.take(10).changes;
        b.requeue(deferred);
        assert_eq!(
            b.applied_checkpoint(),
            None,
            "deferred keys keep their epoch"
        );
        let first = b.take(10).changes;
        assert_eq!(first.len(), 2);
        assert_eq!(b.applied_checkpoint(), Some(at(10)));
        assert_eq!(b.applied_checkpoint(), None, "taken out once");
    }

    #[test]
    fn taken_changes_go_back_unless_done() {
        let buffer: SharedBuffer = Arc::default();
        lock(&buffer).insert(k(1), true);
        let changes = lock(&buffer).take(10).changes;
        drop(Taken::new(&buffer, changes));
        assert_eq!(lock(&buffer).len(), 1);
        let changes = lock(&buffer).take(10).changes;
        let done = Taken::new(&buffer, changes).done();
        assert_eq!(done.len(), 1);
        assert!(lock(&buffer).is_empty());
    }
}
