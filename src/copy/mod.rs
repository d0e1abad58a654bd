//! The row copy: chunk by chunk along the shared key,
//! `INSERT IGNORE INTO new (...) SELECT ... FROM t FORCE INDEX (key) WHERE
//! <range> LOCK IN SHARE MODE NOWAIT`. A row the tail already wrote wins
//! (IGNORE); the share lock keeps the copy from reading a row whose writer
//! has reached the binlog but not yet committed. NOWAIT: the copy never
//! waits for the application's row locks, so it can never make the
//! application the victim of a deadlock; a chunk that meets a busy row
//! fails at once and is tried again at half the size, down to the busy row
//! alone, which is retried until its writer commits. Every warning other
//! than a duplicate on the shared key fails the chunk: INSERT IGNORE would
//! otherwise truncate values or drop rows silently.

pub mod chunker;
pub mod frontier;
pub mod sizer;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::apply::{show_warnings, Patience, Warning, BUSY_PATIENCE};
use crate::control::Stop;
use crate::error::{is_lock_busy, Error, Result};
use crate::failpoint::{self, Failpoints};
use crate::inspect::keys::ColumnPair;
use crate::schema::{KeyValue, SharedKey, Side};
use crate::server::{ConnectConfig, Dialect};
use crate::shadow::{self, hint, ShadowNames};
use crate::throttle::Throttle;
use chunker::{Chunk, Chunker, KeyWalk};
use frontier::CopyFrontier;
use sizer::ChunkSizer;

/// Counters of the copy, read by progress reporting.
#[derive(Debug, Default)]
pub struct CopyStats {
    /// Rows inserted into the new table by the copy.
    pub rows_copied: AtomicU64,
    /// Chunks copied.
    pub chunks: AtomicU64,
    /// Copy statements that ran after their rows were locked first (while
    /// rows were busy: see [`Copier::copy_chunk`]).
    pub locked_first: AtomicU64,
    /// Chunks copied again after the new table refused one of their rows
    /// (see [`ChunkRefusal`]).
    pub chunks_retried: AtomicU64,
}

/// What the operator may change about the copy while it runs (the
/// `chunk-size=` and `nice-ratio=` commands), and the size in use.
#[derive(Debug, Default)]
pub struct PaceControl {
    /// Rows per chunk set by the operator; 0: none set.
    fixed_rows: AtomicU64,
    /// The nice ratio, as the bits of an f64.
    nice_ratio_bits: AtomicU64,
    /// Rows asked of the last dispatched chunk.
    current_rows: AtomicU64,
    /// True while the size adapts to the chunk time.
    adaptive: std::sync::atomic::AtomicBool,
}

impl PaceControl {
    /// Every chunk from the next one on takes `rows` rows, whatever the
    /// chunk time.
    pub fn set_chunk_size(&self, rows: u64) {
        self.fixed_rows.store(rows.max(1), Ordering::Relaxed);
    }

    /// After each chunk, the copy and the checksum sleep `ratio` times the
    /// time it took.
    pub fn set_nice_ratio(&self, ratio: f64) {
        self.nice_ratio_bits
            .store(ratio.max(0.0).to_bits(), Ordering::Relaxed);
    }

    /// The nice ratio in effect.
    pub fn nice_ratio(&self) -> f64 {
        f64::from_bits(self.nice_ratio_bits.load(Ordering::Relaxed))
    }

    /// Rows asked of the last chunk, and whether the size adapts.
    pub fn chunk_size(&self) -> (u64, bool) {
        (
            self.current_rows.load(Ordering::Relaxed),
            self.adaptive.load(Ordering::Relaxed),
        )
    }
}

/// What a chunk's warnings say.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkVerdict {
    /// No warning, or only duplicates on the shared key (rows the tail wrote).
    Clean,
    /// The new table refused a row: a collision on another unique key
    /// (maybe with a stale row the tail has not refreshed yet), or data
    /// that would change (truncation, NULL into NOT NULL, a CHECK, ...).
    Refused(ChunkRefusal),
    /// A row of the chunk was locked by another transaction: nothing was
    /// copied.
    Busy,
}

/// A CHECK constraint failed: MariaDB's ER_CONSTRAINT_FAILED, MySQL's
/// ER_CHECK_CONSTRAINT_VIOLATED.
const CHECK_FAILED_CODES: [u16; 2] = [4025, 3819];

/// Classifies a chunk's warnings. A duplicate on the shared key is a row
/// the tail already wrote only when the key preserves identity; otherwise
/// it may be two original rows that the new key makes collide.
pub fn judge_warnings(warnings: &[Warning], key: &SharedKey) -> ChunkVerdict {
    let mut conflict = None;
    for w in warnings {
        // Notes (a DATETIME's time dropped on the way to DATE) are what a
        // native ALTER accepts in strict mode too.
        if w.is_note() {
            continue;
        }
        if w.code == 1062 {
            if key.identity_preserved
                && duplicate_key_name(&w.message)
                    .is_some_and(|k| k.eq_ignore_ascii_case(&key.ghost_name))
            {
                continue;
            }
            conflict.get_or_insert_with(|| w.message.clone());
            continue;
        }
        if CHECK_FAILED_CODES.contains(&w.code) {
            return ChunkVerdict::Refused(ChunkRefusal::Check(w.to_string()));
        }
        return ChunkVerdict::Refused(ChunkRefusal::Value(w.to_string()));
    }
    match conflict {
        Some(message) => ChunkVerdict::Refused(ChunkRefusal::UniqueKey(message)),
        None => ChunkVerdict::Clean,
    }
}

/// The key name in "Duplicate entry '...' for key 'name'" (MySQL 8 writes
/// `'table.name'`).
pub fn duplicate_key_name(message: &str) -> Option<&str> {
    let start = message.rfind("for key '")? + "for key '".len();
    let name = message[start..].strip_suffix('\'')?;
    Some(name.rsplit_once('.').map_or(name, |(_, k)| k))
}

/// Something that can bring the new table up to date with every change
/// committed so far.
pub trait CatchUp {
    /// Returns once every change committed before the call is applied.
    fn catch_up(&mut self) -> impl std::future::Future<Output = Result<()>> + Send;

    /// The error of a background stage (tail, applier) that stopped.
    fn healthy(&self) -> Result<()>;

    /// Changed keys waiting to be applied.
    fn backlog(&self) -> usize;
}

/// Whether the copy meets rows the application holds: then each chunk
/// share-locks its rows before copying them (see
/// [`Copier::copy_chunk`]). That costs a second pass over the
/// chunk (a quarter more time on an idle table), so it is on only from
/// the first busy row until [`QUIET_CHUNKS`] chunks in a row met none.
#[derive(Debug, Default)]
struct Contention {
    on: std::sync::atomic::AtomicBool,
    quiet_chunks: AtomicU64,
}

/// Chunks in a row without a busy row that turn [`Contention`] off.
const QUIET_CHUNKS: u64 = 4;

/// How long a chunk whose rows are locked retries its copy while another
/// statement holds the new table's AUTO-INC lock.
const AUTO_INC_PATIENCE: Duration = Duration::from_secs(1);

impl Contention {
    fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    fn met_busy_row(&self) {
        self.quiet_chunks.store(0, Ordering::Relaxed);
        self.on.store(true, Ordering::Relaxed);
    }

    fn chunk_done(&self, disturbed: bool) {
        if !disturbed && self.quiet_chunks.fetch_add(1, Ordering::Relaxed) + 1 >= QUIET_CHUNKS {
            self.on.store(false, Ordering::Relaxed);
        }
    }
}

/// Copies the original table into the new one.
pub struct Copier {
    names: ShadowNames,
    from_original_aliased: String,
    chunker: Chunker,
    key: SharedKey,
    insert_prefix: String,
    lock_prefix: String,
    share_lock: &'static str,
    /// Chunks read the original without locks, holding their range from
    /// the applier instead ([`Read::Plain`]).
    plain_reads: bool,
    contention: Contention,
    pace: Pace,
    control: Arc<PaceControl>,
    failpoints: Failpoints,
}

/// How a chunk reads the original table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Share-locks every row it reads (`NOWAIT`): a row whose writer has
    /// not committed is busy, and the chunk is halved around it.
    Locking,
    /// A consistent read (READ COMMITTED) that locks nothing in the
    /// original: the chunk holds its range from the applier while it runs
    /// ([`frontier::HeldRange`]) and commits a fence before it reads
    /// (`docs/design.md`, "The copy reads without locks").
    Plain,
}

/// How fast the copy goes, at the start.
#[derive(Debug, Clone)]
pub struct Pace {
    /// Rows per chunk.
    pub sizer: ChunkSizer,
    /// After each chunk, sleep this many times the time it took.
    pub nice_ratio: f64,
    /// Chunks copied at once.
    pub threads: usize,
    /// Times a worker's lost connection is opened again, in a row, before
    /// the copy fails (`--default-retries`).
    pub retries: u32,
}

/// A chunk handed back by its worker.
struct RangeDone {
    conn: Conn,
    index: u64,
    chunk: Chunk,
    size: u64,
    outcome: Result<RangeOutcome>,
}

/// How a chunk ended.
enum RangeOutcome {
    /// Every row is in the new table; the time it took when undisturbed,
    /// and the rows it inserted.
    Copied { took: Option<Duration>, rows: u64 },
    /// The new table refused a row: copy the chunk again after a catch-up.
    Refused(ChunkRefusal),
}

/// Why the new table refused a row of a chunk. Either can pass: the row
/// may be a moment's value that a writer is about to change, or a stale
/// row of the new table that the tail is about to refresh. A native ALTER
/// run at that moment would fail as well; one run a moment later would
/// not. So the chunk is copied again after a growing pause
/// ([`refusal_pause`]; for a unique key, once the tail has caught up, for
/// at most [`REFUSAL_CATCH_UP`]), [`REFUSAL_RETRIES`] times before the
/// copy fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkRefusal {
    /// A row collided with another on a unique key of the new table.
    UniqueKey(String),
    /// A value does not fit its new column (the server would change it);
    /// the chunk was rolled back.
    Value(String),
    /// A CHECK constraint of the new table fails for a row (MariaDB's JSON
    /// columns carry one); the chunk was rolled back.
    Check(String),
}

impl ChunkRefusal {
    /// The copy's failure once retries are exhausted.
    fn failure(&self, table: String) -> Error {
        let message = match self {
            ChunkRefusal::UniqueKey(m) => {
                format!("existing rows collide on a unique key of the new table ({m})")
            }
            ChunkRefusal::Value(w) => format!(
                "the server would change data ({w}); the ALTER cannot hold the existing rows as they are"
            ),
            ChunkRefusal::Check(w) => format!(
                "a CHECK constraint of the new table fails for existing rows ({w}), as it does in the \
                 native ALTER TABLE ... ALGORITHM=COPY; fix the rows, or the constraint (a JSON NOT NULL \
                 column added without a DEFAULT holds '', which is not JSON: give it a DEFAULT such as '{{}}')"
            ),
        };
        Error::Copy {
            table,
            message: format!(
                "{message}, still after {REFUSAL_RETRIES} retries over {:?}",
                total_refusal_pause()
            ),
        }
    }
}

/// The pause before the `attempt`th retry of a refused chunk: 100 ms,
/// doubled each time.
fn refusal_pause(attempt: u32) -> Duration {
    Duration::from_millis(100) * 2u32.pow(attempt.saturating_sub(1).min(10))
}

/// All pauses of a chunk refused every time.
fn total_refusal_pause() -> Duration {
    (1..=REFUSAL_RETRIES).map(refusal_pause).sum()
}

/// The contiguous low watermark: chunks finish out of order, and the
/// watermark is the upper bound of the longest run of finished chunks from
/// the first.
#[derive(Debug, Default)]
struct LowWatermark {
    next: u64,
    finished: BTreeMap<u64, Option<KeyValue>>,
}

impl LowWatermark {
    /// Records chunk `index` (with upper bound `upper`) as finished; the new
    /// watermark when it moved (never for the open-ended last chunk).
    fn finished(&mut self, index: u64, upper: Option<KeyValue>) -> Option<KeyValue> {
        self.finished.insert(index, upper);
        let mut moved = None;
        while let Some(upper) = self.finished.remove(&self.next) {
            self.next += 1;
            moved = upper;
        }
        moved
    }
}

/// Waits for `wait` while the chunks in flight go on: their futures run
/// only while polled, and a chunk whose COMMIT waits to be sent holds its
/// rows (a locking read) or its range of keys (a plain one) for nothing.
/// Chunks that finish meanwhile go to `finished`.
async fn while_copying<S, F>(in_flight: &mut S, finished: &mut Vec<RangeDone>, wait: F) -> F::Output
where
    S: futures_util::Stream<Item = RangeDone> + Unpin,
    F: std::future::Future,
{
    tokio::pin!(wait);
    loop {
        tokio::select! {
            biased;
            out = &mut wait => return out,
            Some(done) = in_flight.next() => finished.push(done),
        }
    }
}

/// Where a copy begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyStart {
    /// At the first row.
    Beginning,
    /// Above this key: a resumed copy, every row up to the key copied.
    After(KeyValue),
    /// Nowhere: a resumed copy that had finished.
    Done,
}

/// The copy's progress is recorded in the changelog at most this often.
const WATERMARK_INTERVAL: Duration = Duration::from_secs(1);

/// Longest wait of one chunk for the applier to work its backlog down.
const APPLIER_PRIORITY: Duration = Duration::from_secs(1);

/// How many times a chunk whose row the new table refuses is retried
/// before the copy fails (see [`ChunkRefusal`]).
const REFUSAL_RETRIES: u32 = 5;

/// How long a chunk refused on a unique key waits for the applier to
/// catch up before it is copied again.
const REFUSAL_CATCH_UP: Duration = Duration::from_secs(5);

impl Copier {
    /// A copier for one migration.
    pub fn new(
        names: &ShadowNames,
        key: SharedKey,
        columns: &[ColumnPair],
        dialect: Dialect,
        pace: Pace,
        failpoints: Failpoints,
    ) -> Copier {
        let chunker = Chunker::new(names, key.clone());
        let insert_prefix = crate::inspect::keys::insert_select(
            "INSERT IGNORE",
            &names.q(&names.ghost),
            columns,
            chunker.from_clause(),
        );
        let lock_prefix = format!("SELECT COUNT(*) FROM {}", chunker.from_clause());
        let from_original_aliased = format!(
            "{} AS o FORCE INDEX ({})",
            names.q(&names.original),
            crate::sql::ident(&key.name)
        );
        let control = Arc::new(PaceControl::default());
        control.set_nice_ratio(pace.nice_ratio);
        let plain_reads = dialect.commits_in_binlog_order()
            && key.is_single_integer()
            && !crate::failpoint::on(failpoints.locking_copy);
        Copier {
            control,
            from_original_aliased,
            names: names.clone(),
            chunker,
            key,
            insert_prefix,
            lock_prefix,
            share_lock: dialect.share_lock_clause(),
            plain_reads,
            contention: Contention::default(),
            pace: Pace {
                threads: pace.threads.max(1),
                ..pace
            },
            failpoints,
        }
    }

    /// Copies the first `rows` rows (in key order) into the new table in
    /// one statement, without locks: the dry run's timed sample. Returns
    /// the rows copied and the time it took.
    pub async fn sample(&self, conn: &mut Conn, rows: u64) -> Result<(u64, Duration)> {
        let stmt = format!(
            "{} ORDER BY {} LIMIT {rows}",
            self.insert_prefix,
            self.key.order_by()
        );
        let started = Instant::now();
        conn.query_drop(&stmt).await.map_err(|source| Error::Sql {
            context: format!(
                "copying a timed sample of {} into {}",
                self.names.q(&self.names.original),
                self.names.q(&self.names.ghost)
            ),
            source,
        })?;
        Ok((conn.affected_rows(), started.elapsed()))
    }

    /// The live pace, shared with the status and the live commands.
    pub fn pace_control(&self) -> Arc<PaceControl> {
        Arc::clone(&self.control)
    }

    /// The statements the copy runs, for the dry-run plan.
    pub fn describe(&self) -> Vec<String> {
        if self.plain_reads {
            return vec![
                self.chunker.describe(),
                shadow::describe_fence(&self.names, hint::COPY_FENCE),
                format!(
                    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; {} WHERE <key in (lower, upper]> (no lock on the original; the applier holds back changes to the chunk's keys until it commits)",
                    self.insert_prefix
                ),
            ];
        }
        vec![
            self.chunker.describe(),
            format!(
                "{} WHERE <key in (lower, upper]> {}",
                self.insert_prefix, self.share_lock
            ),
            format!(
                "while rows are busy, first in the same transaction: {} WHERE <key in (lower, upper]> {}",
                self.lock_prefix, self.share_lock
            ),
        ]
    }

    /// Copies every chunk, `threads` chunks at a time over disjoint key
    /// ranges, each on its own connection; `conn` finds the boundaries and
    /// records the progress: the upper bound of the longest run of finished
    /// chunks from the start (the contiguous low watermark), so that a
    /// resumed copy never skips a range. Before a chunk that collided on a
    /// new unique key is copied again, `sync` catches up: every change
    /// committed so far is applied to the new table, refreshing rows that
    /// may be stale. A resumed copy begins above `start`'s watermark.
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &self,
        conn: &mut Conn,
        connect: &ConnectConfig,
        stats: &Arc<CopyStats>,
        frontier: &CopyFrontier,
        throttle: &Throttle,
        stop: &Stop,
        sync: &mut impl CatchUp,
        start: &CopyStart,
    ) -> Result<()> {
        // However the copy ends, no chunk will come for keys left ahead.
        let _cover = frontier.covering_everything_on_exit();
        let mut dispatched_upper = match start {
            CopyStart::Done => return Ok(()),
            CopyStart::Beginning => None,
            CopyStart::After(watermark) => Some(watermark.clone()),
        };
        let table = self.names.q(&self.names.original);
        let mut idle = Vec::with_capacity(self.pace.threads);
        for _ in 0..self.pace.threads {
            idle.push(crate::server::connect_session(connect).await?);
        }
        let mut sizer = self.pace.sizer.clone();
        let mut operator_rows = 0;
        let mut in_flight = FuturesUnordered::new();
        let mut exhausted = false;
        let mut dispatched = 0u64;
        let mut low = LowWatermark::default();
        let mut refusals: HashMap<u64, u32> = HashMap::new();
        let mut watermark_written = Instant::now();
        let mut walk = KeyWalk::new(&self.key);
        // A chunk found ahead, with the size it was found for.
        let mut ahead: Option<(Chunk, u64)> = None;
        // Chunks that finished while the dispatcher waited for something
        // else.
        let mut finished = Vec::new();
        loop {
            while !exhausted && !idle.is_empty() {
                if let Some(reason) = stop.reason() {
                    return Err(Error::Interrupted { table, reason });
                }
                sync.healthy()?;
                let chunk_delay = failpoint::pause(self.failpoints.chunk_delay);
                while_copying(&mut in_flight, &mut finished, chunk_delay).await;
                let released = throttle.wait_until_released(stop);
                if !while_copying(&mut in_flight, &mut finished, released).await {
                    continue;
                }
                let applier_first = self.yield_to_applier(&*sync);
                while_copying(&mut in_flight, &mut finished, applier_first).await;
                let fixed = self.control.fixed_rows.load(Ordering::Relaxed);
                if fixed != operator_rows {
                    tracing::info!(rows = fixed, "chunk size set by the operator");
                    operator_rows = fixed;
                    sizer = ChunkSizer::new(fixed, None);
                }
                let size = sizer.rows();
                self.control.current_rows.store(size, Ordering::Relaxed);
                self.control
                    .adaptive
                    .store(sizer.adapts(), Ordering::Relaxed);
                let (chunk, size) = match ahead.take() {
                    Some(found) => found,
                    None => {
                        let lower = dispatched_upper.as_ref();
                        (
                            self.next_chunk(conn, connect, &mut walk, lower, size)
                                .await?,
                            size,
                        )
                    }
                };
                exhausted = chunk.upper.is_none();
                dispatched_upper = chunk.upper.clone();
                frontier.dispatch(chunk.upper.as_ref());
                if let Some(worker) = idle.pop() {
                    in_flight.push(self.copy_range(
                        worker,
                        connect,
                        frontier,
                        dispatched,
                        chunk,
                        size,
                        Duration::ZERO,
                        stats,
                        stop,
                    ));
                    dispatched += 1;
                }
            }
            // The next boundary is found while the workers copy, so that a
            // worker that finishes gets its next chunk at once.
            let fetch_ahead = !exhausted && ahead.is_none();
            let lower = dispatched_upper.as_ref();
            let size = sizer.rows();
            let (found, done) = tokio::join!(
                async {
                    if fetch_ahead {
                        Some(self.next_chunk(conn, connect, &mut walk, lower, size).await)
                    } else {
                        None
                    }
                },
                async {
                    match finished.pop() {
                        Some(done) => Some(done),
                        None => in_flight.next().await,
                    }
                }
            );
            if let Some(found) = found {
                ahead = Some((found?, size));
            }
            let Some(done) = done else {
                break;
            };
            let RangeDone {
                conn: worker,
                index,
                chunk,
                size,
                outcome,
            } = done;
            match outcome? {
                RangeOutcome::Copied { took, rows } => {
                    walk.observe(&chunk, rows);
                    if let Some(took) = took {
                        sizer.observe(size, took);
                        let nice_ratio = self.control.nice_ratio();
                        if nice_ratio > 0.0 {
                            // Leaves the server to the application for a
                            // share of the time the chunk took.
                            let nice = tokio::time::sleep(took.mul_f64(nice_ratio));
                            while_copying(&mut in_flight, &mut finished, nice).await;
                        }
                    }
                    idle.push(worker);
                    if let Some(upper) = low.finished(index, chunk.upper) {
                        if watermark_written.elapsed() >= WATERMARK_INTERVAL {
                            let watermark = serde_json::to_string(&upper).unwrap_or_default();
                            self.record_watermark(conn, connect, &watermark).await?;
                            watermark_written = Instant::now();
                        }
                    }
                }
                RangeOutcome::Refused(refusal) => {
                    let attempt = refusals.entry(index).or_insert(0);
                    *attempt += 1;
                    if *attempt > REFUSAL_RETRIES {
                        return Err(refusal.failure(table));
                    }
                    let pause = refusal_pause(*attempt);
                    tracing::info!(?refusal, attempt = *attempt, ?pause, "the new table refused a row of a chunk; copying the chunk again after a pause");
                    stats.chunks_retried.fetch_add(1, Ordering::Relaxed);
                    // A value is read again from the original: nothing to
                    // wait for. A row in the way of a unique key may be a
                    // stale one the applier is about to refresh: wait for
                    // it, but not for long, since the applier may itself be
                    // waiting out a refused row (seed 43016).
                    if matches!(refusal, ChunkRefusal::UniqueKey(_)) {
                        let caught_up = tokio::time::timeout(REFUSAL_CATCH_UP, sync.catch_up());
                        match while_copying(&mut in_flight, &mut finished, caught_up).await {
                            Ok(caught_up) => caught_up?,
                            Err(_) => tracing::info!(
                                "the applier did not catch up within {REFUSAL_CATCH_UP:?}; copying the chunk again anyway"
                            ),
                        }
                    }
                    in_flight.push(self.copy_range(
                        worker, connect, frontier, index, chunk, size, pause, stats, stop,
                    ));
                }
            }
        }
        self.record_watermark(conn, connect, "\"complete\"").await
    }

    /// Copies `chunk` again from scratch, for the checksum's repair of a
    /// range that differs: the new table's rows in the range are deleted,
    /// then the range is copied as any chunk is, so it never waits for the
    /// application's row locks (a busy row is waited out in halves, with no
    /// lock held between tries), and a change the tail applies meanwhile
    /// wins, as during the copy. A refused row is retried as the copy
    /// retries it. The rows go to `stats`, kept apart from the copy's.
    pub async fn copy_again(
        &self,
        conn: &mut Conn,
        chunk: &Chunk,
        stats: &Arc<CopyStats>,
        stop: &Stop,
    ) -> Result<()> {
        let table = self.names.q(&self.names.original);
        let (predicate, params) = chunk.predicate_on(&self.key, Side::Ghost);
        let filter = if predicate.is_empty() {
            String::new()
        } else {
            format!("WHERE {predicate}")
        };
        let delete = format!("DELETE FROM {} {filter}", self.names.q(&self.names.ghost));
        // Only the applier's short transactions lock rows of the new table.
        let mut busy = Patience::default();
        loop {
            match conn.exec_drop(&delete, params.clone()).await {
                Ok(()) => break,
                Err(e) if is_lock_busy(&e) => {
                    busy.wait(|| Error::Copy {
                        table: table.clone(),
                        message: format!(
                            "the new table's rows of a range to copy again stayed locked for {BUSY_PATIENCE:?}"
                        ),
                    })
                    .await?
                }
                Err(source) => {
                    return Err(Error::Sql {
                        context: format!("deleting a differing range of the new table of {table}"),
                        source,
                    })
                }
            }
        }
        // Halved from the copy's last chunk size when a row is busy.
        let size = match self.control.chunk_size().0 {
            0 => self.pace.sizer.rows(),
            rows => rows,
        };
        let mut refusals = 0;
        loop {
            match self
                .copy_parts(conn, chunk, size, stats, stop, Read::Locking)
                .await?
            {
                RangeOutcome::Copied { .. } => return Ok(()),
                RangeOutcome::Refused(refusal) => {
                    refusals += 1;
                    if refusals > REFUSAL_RETRIES {
                        return Err(refusal.failure(table));
                    }
                    stats.chunks_retried.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(refusal_pause(refusals)).await;
                }
            }
        }
    }

    /// The next chunk above `lower`, holding at most `size` rows. The last
    /// chunk is always open-ended, even when the boundary query saw no row
    /// left: a row whose writer is still committing is invisible to it, and
    /// its change may have been left to the copy. The chunk's locking read
    /// waits for it; a plain read sees it after the chunk's fence.
    async fn next_chunk(
        &self,
        conn: &mut Conn,
        connect: &ConnectConfig,
        walk: &mut KeyWalk,
        lower: Option<&KeyValue>,
        size: u64,
    ) -> Result<Chunk> {
        let mut lost = 0;
        let next = loop {
            match walk.next_chunk(&self.chunker, conn, lower, size).await {
                Ok(next) => break next,
                Err(e) => {
                    let retries = self.pace.retries;
                    crate::server::recover_lost(e, &mut lost, conn, connect, retries, "copy")
                        .await?
                }
            }
        };
        Ok(next.unwrap_or(Chunk {
            lower: lower.cloned(),
            upper: None,
        }))
    }

    /// Writes the copy's low watermark to the changelog.
    async fn record_watermark(
        &self,
        conn: &mut Conn,
        connect: &ConnectConfig,
        watermark: &str,
    ) -> Result<()> {
        let mut lost = 0;
        while let Err(e) =
            shadow::write_changelog(conn, &self.names, hint::COPY_WATERMARK, watermark).await
        {
            crate::server::recover_lost(e, &mut lost, conn, connect, self.pace.retries, "copy")
                .await?;
        }
        Ok(())
    }

    /// Copies one chunk on `conn`; a lost connection is opened again (at
    /// most [`Pace::retries`] times in a row) and the chunk copied again,
    /// which is harmless: the copy inserts with IGNORE, and a row already
    /// there counts as copied. A chunk read without locks holds its range
    /// in `frontier` until it returns.
    #[allow(clippy::too_many_arguments)]
    async fn copy_range(
        &self,
        mut conn: Conn,
        connect: &ConnectConfig,
        frontier: &CopyFrontier,
        index: u64,
        chunk: Chunk,
        size: u64,
        pause: Duration,
        stats: &Arc<CopyStats>,
        stop: &Stop,
    ) -> RangeDone {
        tokio::time::sleep(pause).await;
        let held = if self.plain_reads {
            frontier.hold(chunk.lower.as_ref(), chunk.upper.as_ref())
        } else {
            None
        };
        let read = if held.is_some() {
            Read::Plain
        } else {
            Read::Locking
        };
        let mut lost = 0;
        let outcome = loop {
            let outcome = async {
                if read == Read::Plain {
                    self.fence(&mut conn).await?;
                }
                self.copy_parts(&mut conn, &chunk, size, stats, stop, read)
                    .await
            }
            .await;
            match outcome {
                Err(e) if e.is_connection_lost() && lost < self.pace.retries => {
                    lost += 1;
                    tracing::warn!(error = %e, attempt = lost, "a copy connection was lost; reconnecting");
                    tokio::time::sleep(crate::table_lock::retry_delay(lost)).await;
                    match crate::server::connect_session(connect).await {
                        Ok(fresh) => conn = fresh,
                        Err(e) => tracing::warn!(error = %e, "reopening a copy connection failed"),
                    }
                }
                outcome => break outcome,
            }
        };
        drop(held);
        RangeDone {
            conn,
            index,
            chunk,
            size,
            outcome,
        }
    }

    /// Commits a new value of the changelog's fence row. Once it is
    /// committed, every transaction binlogged before it is visible to a
    /// snapshot taken after ([`Dialect::commits_in_binlog_order`]): above
    /// all, every change the tail left to this chunk because no chunk
    /// covered its key when it was read ([`shadow::write_fence`]).
    async fn fence(&self, conn: &mut Conn) -> Result<()> {
        shadow::write_fence(conn, &self.names, hint::COPY_FENCE).await
    }

    /// Copies one chunk on `conn`. A part that meets a busy row is tried
    /// again at half the size, down to the busy row alone, which waits out
    /// its writer; the rest of the chunk follows. `took` is the chunk's
    /// time when nothing disturbed it, for the sizer.
    async fn copy_parts(
        &self,
        conn: &mut Conn,
        chunk: &Chunk,
        size: u64,
        stats: &Arc<CopyStats>,
        stop: &Stop,
        read: Read,
    ) -> Result<RangeOutcome> {
        let table = self.names.q(&self.names.original);
        let started = Instant::now();
        let mut part = chunk.clone();
        let mut lower = chunk.lower.clone();
        let mut limit: Option<u64> = None;
        let mut disturbed = false;
        let mut busy = Patience::default();
        let mut rows = 0;
        loop {
            if let Some(reason) = stop.reason() {
                return Err(Error::Interrupted { table, reason });
            }
            let (verdict, inserted) = self.copy_chunk(conn, &part, stats, read).await?;
            rows += inserted;
            let reaches_end = match verdict {
                ChunkVerdict::Refused(refusal) => return Ok(RangeOutcome::Refused(refusal)),
                ChunkVerdict::Busy => {
                    disturbed = true;
                    self.contention.met_busy_row();
                    let current = limit.unwrap_or(size);
                    if current > 1 {
                        limit = Some((current / 2).max(1));
                    } else {
                        busy.wait(|| Error::Copy {
                            table: table.clone(),
                            message: format!(
                                "a row above {} stayed locked by another transaction for {BUSY_PATIENCE:?}; \
                                 find the long transaction holding it and retry",
                                lower.as_ref().map_or("the start".to_string(), |k| format!("{k:?}"))
                            ),
                        })
                        .await?;
                    }
                    false
                }
                ChunkVerdict::Clean => {
                    busy = Patience::default();
                    if part.upper == chunk.upper {
                        true
                    } else {
                        lower = part.upper.clone();
                        limit = limit.map(|l| l.saturating_mul(2));
                        false
                    }
                }
            };
            if reaches_end {
                break;
            }
            let Some(rows) = limit else {
                part = chunk.clone();
                continue;
            };
            // No row visible above `lower` does not end the chunk: a row whose
            // writer is still committing is invisible to the boundary read,
            // and the tail may have left its change to this chunk (binlogged
            // before the chunk was dispatched). The rest of the range is
            // then copied as one more part, whose locking read waits for that
            // writer (a plain read follows the chunk's fence and sees it).
            part = self
                .chunker
                .next_chunk_below(conn, lower.as_ref(), chunk.upper.as_ref(), rows)
                .await?
                .unwrap_or_else(|| Chunk {
                    lower: lower.clone(),
                    upper: chunk.upper.clone(),
                });
        }
        self.contention.chunk_done(disturbed);
        stats.chunks.fetch_add(1, Ordering::Relaxed);
        Ok(RangeOutcome::Copied {
            took: (!disturbed).then(|| started.elapsed()),
            rows,
        })
    }

    /// The applier has priority: while more than two batches of changed
    /// keys wait, the next chunk waits too, for at most [`APPLIER_PRIORITY`]
    /// so that the copy always moves on.
    async fn yield_to_applier(&self, sync: &impl CatchUp) {
        let started = Instant::now();
        let deadline = started + APPLIER_PRIORITY;
        while sync.backlog() > 2 * crate::apply::BATCH_KEYS && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let waited = started.elapsed();
        if waited >= Duration::from_millis(10) {
            tracing::debug!(?waited, "the next chunk waited for the applier");
        }
    }

    /// Rows of the chunk that are not in the new table. A duplicate reported
    /// on another unique key than the shared one can be the very same row
    /// (already written by the tail: the server reports only the first
    /// unique index it checks), so only rows really missing count. "The
    /// same row" compares the key in the original's terms, so that 'A' is
    /// not taken for 'a' when the new key is case-insensitive.
    /// `None` when a row of the chunk is busy.
    async fn rows_missing(
        &self,
        conn: &mut Conn,
        chunk: &Chunk,
        lock: &str,
    ) -> Result<Option<u64>> {
        let (predicate, params) = chunk.predicate(&self.key);
        let filter = if predicate.is_empty() {
            String::new()
        } else {
            format!("{predicate} AND")
        };
        let same_key = self.key.same_row("g", "o");
        let stmt = format!(
            "SELECT COUNT(*) FROM {} WHERE {filter} NOT EXISTS (SELECT 1 FROM {} AS g WHERE {same_key}) {lock}",
            self.from_original_aliased,
            self.names.q(&self.names.ghost),
        );
        let table = self.names.q(&self.names.original);
        match conn.exec_first::<u64, _, _>(&stmt, params).await {
            Ok(missing) => Ok(Some(missing.unwrap_or(0))),
            Err(e) if is_lock_busy(&e) => Ok(None),
            Err(source) => Err(Error::Sql {
                context: format!("checking a chunk of {table} for rows lost to a unique key"),
                source,
            }),
        }
    }

    /// Copies one chunk in one transaction. While rows are busy
    /// ([`Contention`]) the transaction share-locks the chunk's rows first
    /// (`lock_first`): a busy row then fails that statement (NOWAIT) before
    /// anything was written, where the copy alone would fail midway and
    /// roll back every row it had inserted. The transaction is committed
    /// unless a row is busy or a value would change: nothing of such a
    /// chunk stays in the new table, so copying it again starts clean.
    /// Returns the verdict and the rows the chunk kept in the new table.
    async fn copy_chunk(
        &self,
        conn: &mut Conn,
        chunk: &Chunk,
        stats: &Arc<CopyStats>,
        read: Read,
    ) -> Result<(ChunkVerdict, u64)> {
        let (predicate, params) = chunk.predicate(&self.key);
        let row_delay = self
            .failpoints
            .copy_row_delay
            .filter(|_| Failpoints::ENABLED)
            .map(|d| format!("SLEEP({}) = 0", d.as_secs_f64()));
        let conditions: Vec<String> = std::iter::once(predicate)
            .chain(row_delay)
            .filter(|c| !c.is_empty())
            .collect();
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let lock = match read {
            Read::Locking => self.share_lock,
            Read::Plain => "",
        };
        let copy = format!("{} {filter} {lock}", self.insert_prefix);
        let lock_first = (read == Read::Locking && self.contention.is_on())
            .then(|| format!("{} {filter} {lock}", self.lock_prefix));
        let sql_error = |source| self.chunk_failed(source);
        if read == Read::Plain {
            // INSERT ... SELECT reads without locks only below REPEATABLE
            // READ.
            conn.query_drop("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                .await
                .map_err(sql_error)?;
        }
        conn.query_drop("START TRANSACTION")
            .await
            .map_err(sql_error)?;
        let judged = self
            .copy_and_judge(conn, chunk, lock_first.as_deref(), &copy, lock, params)
            .await;
        let keep = matches!(
            judged,
            Ok((
                ChunkVerdict::Clean | ChunkVerdict::Refused(ChunkRefusal::UniqueKey(_)),
                _
            ))
        );
        if keep {
            conn.query_drop("COMMIT").await.map_err(sql_error)?;
        } else {
            let _ = conn.query_drop("ROLLBACK").await;
        }
        let (verdict, rows) = judged?;
        if !keep {
            return Ok((verdict, 0));
        }
        stats.rows_copied.fetch_add(rows, Ordering::Relaxed);
        if lock_first.is_some() {
            stats.locked_first.fetch_add(1, Ordering::Relaxed);
        }
        Ok((verdict, rows))
    }

    fn chunk_failed(&self, source: mysql_async::Error) -> Error {
        Error::Sql {
            context: format!("copying a chunk of {}", self.names.q(&self.names.original)),
            source,
        }
    }

    /// The statements of [`Copier::copy_chunk`] inside its transaction, and
    /// the verdict on their warnings (read before the transaction ends,
    /// which clears them), with the rows copied.
    async fn copy_and_judge(
        &self,
        conn: &mut Conn,
        chunk: &Chunk,
        lock_first: Option<&str>,
        copy: &str,
        lock: &str,
        params: Vec<mysql_async::Value>,
    ) -> Result<(ChunkVerdict, u64)> {
        let copied = async {
            if let Some(lock) = lock_first {
                conn.exec_drop(lock, params.clone()).await?;
                // The rows are ours now; what the copy can still meet is the
                // new table's AUTO-INC lock, which every INSERT ... SELECT into
                // it holds to its end (innodb_autoinc_lock_mode 0 and 1): another
                // chunk's, or the applier's. A failed NOWAIT statement is undone
                // alone, so it is tried again, here rather than in a server-side
                // wait, which could close a deadlock cycle.
                let deadline = Instant::now() + AUTO_INC_PATIENCE;
                loop {
                    match conn.exec_drop(copy, params.clone()).await {
                        Err(e) if is_lock_busy(&e) && Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        done => break done?,
                    }
                }
            } else {
                conn.exec_drop(copy, params).await?;
            }
            Ok::<_, mysql_async::Error>((conn.affected_rows(), show_warnings(conn).await?))
        }
        .await;
        let (rows, warnings) = match copied {
            Ok(done) => done,
            Err(e) if is_lock_busy(&e) => return Ok((ChunkVerdict::Busy, 0)),
            Err(source) => return Err(self.chunk_failed(source)),
        };
        if warnings.is_empty() {
            return Ok((ChunkVerdict::Clean, rows));
        }
        let verdict = match judge_warnings(&warnings, &self.key) {
            // A duplicate on another unique key may be the very row (the
            // server reports only the first index it checks): only rows
            // really missing are a conflict.
            ChunkVerdict::Refused(ChunkRefusal::UniqueKey(message)) => {
                match self.rows_missing(conn, chunk, lock).await? {
                    Some(0) => ChunkVerdict::Clean,
                    None => ChunkVerdict::Busy,
                    Some(_) => ChunkVerdict::Refused(ChunkRefusal::UniqueKey(message)),
                }
            }
            other => other,
        };
        Ok((verdict, rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_chunk_waits_100_ms_doubling_for_3_1_s_in_all() {
        let pauses: Vec<u128> = (1..=REFUSAL_RETRIES)
            .map(|a| refusal_pause(a).as_millis())
            .collect();
        assert_eq!(pauses, [100, 200, 400, 800, 1600]);
        assert_eq!(total_refusal_pause(), Duration::from_millis(3100));
        let failure = ChunkRefusal::Value("Warning 1264: Out of range".into())
            .failure("`db`.`t`".into())
            .to_string();
        assert!(failure.contains("Out of range"), "{failure}");
        assert!(failure.contains("5 retries over 3.1s"), "{failure}");
    }

    #[test]
    fn rows_are_locked_first_from_a_busy_row_until_four_quiet_chunks() {
        let contention = Contention::default();
        assert!(!contention.is_on(), "an idle table copies in one statement");
        contention.chunk_done(false);
        assert!(!contention.is_on());
        contention.met_busy_row();
        assert!(contention.is_on());
        for _ in 0..QUIET_CHUNKS - 1 {
            contention.chunk_done(false);
            assert!(contention.is_on());
        }
        contention.chunk_done(true);
        assert!(
            contention.is_on(),
            "a disturbed chunk does not count as quiet"
        );
        contention.met_busy_row();
        for _ in 0..QUIET_CHUNKS {
            contention.chunk_done(false);
        }
        assert!(!contention.is_on());
    }

    fn w(code: u16, message: &str) -> Warning {
        Warning {
            level: "Warning".into(),
            code,
            message: message.into(),
        }
    }

    #[test]
    fn the_low_watermark_moves_only_over_a_contiguous_run() {
        let k = |i: i64| Some(vec![crate::schema::KeyPart::Int(i)]);
        let mut low = LowWatermark::default();
        assert_eq!(low.finished(1, k(20)), None);
        assert_eq!(low.finished(2, k(30)), None);
        assert_eq!(low.finished(0, k(10)), k(30));
        assert_eq!(low.finished(4, k(50)), None);
        assert_eq!(low.finished(3, k(40)), k(50));
        // The open-ended last chunk sets no watermark ("complete" does).
        assert_eq!(low.finished(5, None), None);
    }

    #[test]
    fn reads_key_names_from_duplicate_messages() {
        assert_eq!(
            duplicate_key_name("Duplicate entry '5' for key 'PRIMARY'"),
            Some("PRIMARY")
        );
        assert_eq!(
            duplicate_key_name("Duplicate entry 'x' for key 't.uk'"),
            Some("uk")
        );
        assert_eq!(
            duplicate_key_name("Duplicate entry 'for key 'a'' for key 'b'"),
            Some("b")
        );
    }

    #[test]
    fn only_shared_key_duplicates_are_clean() {
        let key = crate::schema::tests::key(&[crate::schema::tests::col("id", "int", None)]);
        assert_eq!(
            judge_warnings(&[w(1062, "Duplicate entry '1' for key 'PRIMARY'")], &key),
            ChunkVerdict::Clean
        );
        assert!(matches!(
            judge_warnings(&[w(1062, "Duplicate entry 'a' for key 'email'")], &key),
            ChunkVerdict::Refused(ChunkRefusal::UniqueKey(_))
        ));
        assert!(matches!(
            judge_warnings(&[w(1265, "Data truncated for column 'c' at row 1")], &key),
            ChunkVerdict::Refused(ChunkRefusal::Value(_))
        ));
        assert!(matches!(
            judge_warnings(&[w(1048, "Column 'c' cannot be null")], &key),
            ChunkVerdict::Refused(ChunkRefusal::Value(_))
        ));
        for code in [4025, 3819] {
            let verdict = judge_warnings(&[w(code, "CONSTRAINT `t.j` failed for `d`.`t`")], &key);
            let ChunkVerdict::Refused(refusal @ ChunkRefusal::Check(_)) = verdict else {
                panic!("{code}: {verdict:?}");
            };
            let failure = refusal.failure("`d`.`t`".into()).to_string();
            assert!(failure.contains("ALGORITHM=COPY"), "{failure}");
            assert!(failure.contains("CONSTRAINT `t.j` failed"), "{failure}");
        }
    }

    #[test]
    fn notes_are_accepted_as_a_native_alter_accepts_them() {
        let key = crate::schema::tests::key(&[crate::schema::tests::col("id", "int", None)]);
        let note = Warning {
            level: "Note".into(),
            code: 1265,
            message: "Data truncated for column 'd' at row 1".into(),
        };
        assert_eq!(judge_warnings(&[note], &key), ChunkVerdict::Clean);
    }

    #[test]
    fn duplicates_on_a_key_that_changes_identity_need_proof() {
        let mut key = crate::schema::tests::key(&[crate::schema::tests::col(
            "k",
            "varchar",
            Some(("utf8mb4", "utf8mb4_bin")),
        )]);
        key.identity_preserved = false;
        assert!(matches!(
            judge_warnings(&[w(1062, "Duplicate entry 'a' for key 'PRIMARY'")], &key),
            ChunkVerdict::Refused(ChunkRefusal::UniqueKey(_))
        ));
    }
}
