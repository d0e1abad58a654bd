//! The binlog tail: reads the primary's binary log from the position taken
//! before the copy started, keeps the keys of every row change of the
//! migrated table in the [`ChangeBuffer`], reads the tool's own markers from
//! the changelog table, and stops the migration on anything it cannot apply
//! safely (see [`events`]).

pub mod decode;
pub mod events;
pub mod statements;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mysql_async::binlog::events::{Event, RowsEventData, TableMapEvent};
use mysql_async::prelude::*;
use mysql_async::{BinlogStream, BinlogStreamRequest};
use tokio::sync::watch;

use crate::apply::{self, SharedBuffer};
use crate::copy::frontier::CopyFrontier;
use crate::error::{Error, Result, SqlContext};
use crate::failpoint::{self, Failpoints};
use crate::schema::{KeyValue, SharedKey, TableSchema};
use crate::server::{BinlogPosition, ConnectConfig};
use crate::shadow::{hint, ShadowNames};
use crate::sql;
use events::EventKind;

/// How often a tail waiting for room in the buffer looks again.
const ROOM_POLL: Duration = Duration::from_millis(20);

/// Everything the tail needs to know about the migration.
#[derive(Debug, Clone)]
pub struct TailConfig {
    /// Server to read from.
    pub connect: ConnectConfig,
    /// Server id of the binlog connection (must differ from every replica's).
    pub server_id: u32,
    /// Where to start reading.
    pub start: BinlogPosition,
    /// Table names.
    pub names: ShadowNames,
    /// The original table as inspected.
    pub original: TableSchema,
    /// The shared key.
    pub key: SharedKey,
    /// Text in every statement the tool itself issues on the tables, so the
    /// tail can tell them from foreign DDL.
    pub statement_tag: String,
    /// Heartbeat period asked of the server; a silent stream for three
    /// periods is treated as dead.
    pub heartbeat_period: Duration,
    /// Whether the server writes event checksums (`binlog_checksum`).
    pub checksums: bool,
    /// How the server compares table names (`lower_case_table_names`).
    pub name_rule: statements::NameRule,
    /// How far the copy has gone: changes above it are left to the copy.
    pub frontier: Arc<CopyFrontier>,
    /// Changed keys the buffer holds at most: when it is full the tail
    /// stops reading (the binlog is the queue) until the applier makes
    /// room, or until someone waits for the tail to catch up.
    pub buffer_keys: usize,
    /// Times a lost binlog connection is opened again (with backoff)
    /// before the tail gives up; the count starts over after every event.
    pub reconnect_retries: u32,
    /// Sync markers and probes of this run are numbered above this: a
    /// resumed run reads the killed run's again, which must not count.
    pub numbered_from: u64,
    /// Test-only faults.
    pub failpoints: Failpoints,
}

/// State the tail shares with the rest of the migration.
#[derive(Debug)]
pub struct TailShared {
    /// Keys waiting to be applied.
    pub buffer: SharedBuffer,
    /// Row events of the migrated table read so far.
    pub row_events: AtomicU64,
    /// Rows (images) of the migrated table read so far.
    pub rows: AtomicU64,
    /// Row images left to the copy: their key is above every chunk
    /// dispatched so far.
    pub skipped: AtomicU64,
    /// Position of the last event read.
    pub position: Mutex<BinlogPosition>,
    /// Most keys the buffer held at once.
    pub peak_backlog: AtomicU64,
    /// True while the tail waits for room in the buffer.
    pub waiting_for_room: AtomicBool,
    /// Callers waiting for the tail to read up to a point; the buffer's
    /// bound is lifted while there are any, or they could wait forever on
    /// a paused applier.
    catch_up_waiters: AtomicUsize,
    /// When the last heartbeat row was read.
    pub last_heartbeat: Mutex<Option<Instant>>,
    failure: Mutex<Option<String>>,
    /// The highest sync marker read.
    marker_read: AtomicU64,
    /// Markers and probes of this run are numbered above this.
    pub numbered_from: u64,
    /// Probes read and not yet claimed by their writer.
    probes_read: Mutex<std::collections::BTreeSet<u64>>,
    /// Woken whenever a marker or a probe is read.
    signal_read: tokio::sync::Notify,
    next_probe: AtomicU64,
}

/// Lifts the buffer's bound while it lives: see [`TailShared::catching_up`].
pub struct CatchUpGuard<'a>(&'a TailShared);

impl Drop for CatchUpGuard<'_> {
    fn drop(&mut self) {
        self.0.catch_up_waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

impl TailShared {
    /// Lets the tail read past the buffer's bound while the guard lives:
    /// for a caller waiting for the tail to reach a point in the binlog.
    pub fn catching_up(&self) -> CatchUpGuard<'_> {
        self.catch_up_waiters.fetch_add(1, Ordering::SeqCst);
        CatchUpGuard(self)
    }

    /// True when the tail must not read on: the buffer holds `limit` keys
    /// and no one waits for the tail.
    fn must_wait_for_room(&self, limit: usize) -> bool {
        self.catch_up_waiters.load(Ordering::SeqCst) == 0
            && apply::lock(&self.buffer).len() >= limit
    }

    /// The end of the last event read.
    fn read_to(&self) -> BinlogPosition {
        self.position
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_read_to(&self, position: BinlogPosition) {
        *self.position.lock().unwrap_or_else(|e| e.into_inner()) = position;
    }

    /// A fresh probe id, for a changelog row whose reading proves that the
    /// tail has read every change committed before it was written.
    pub fn new_probe(&self) -> u64 {
        self.next_probe.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// True (once) when the tail has read probe `id`.
    pub fn claim_probe(&self, id: u64) -> bool {
        self.probes_read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
    }

    /// Waits until `reached()` holds, within `patience`, or until the tail
    /// fails.
    pub async fn wait_until(
        &self,
        patience: TailPatience,
        mut reached: impl FnMut() -> bool,
    ) -> std::result::Result<(), TailWaitFailure> {
        let started = Instant::now();
        let mut last_position = self.read_to();
        let mut last_progress = started;
        loop {
            let read = self.signal_read.notified();
            tokio::pin!(read);
            read.as_mut().enable();
            if reached() {
                return Ok(());
            }
            if let Some(failure) = self.failure() {
                return Err(TailWaitFailure::Failed(failure));
            }
            let position = self.read_to();
            match patience {
                TailPatience::AtMost(limit) if started.elapsed() > limit => {
                    return Err(TailWaitFailure::TimedOut(limit));
                }
                TailPatience::WhileReading(stall) if position == last_position => {
                    if last_progress.elapsed() > stall {
                        return Err(TailWaitFailure::Stalled { stall, position });
                    }
                }
                _ => {
                    last_position = position;
                    last_progress = Instant::now();
                }
            }
            tokio::select! {
                _ = read => {}
                _ = tokio::time::sleep(WAIT_POLL) => {}
            }
        }
    }

    /// Why the tail stopped, if it failed.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn new(start: BinlogPosition, numbered_from: u64) -> TailShared {
        TailShared {
            buffer: Arc::new(Mutex::new(apply::ChangeBuffer::default())),
            row_events: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            peak_backlog: AtomicU64::new(0),
            waiting_for_room: AtomicBool::new(false),
            catch_up_waiters: AtomicUsize::new(0),
            position: Mutex::new(start),
            last_heartbeat: Mutex::new(None),
            failure: Mutex::new(None),
            marker_read: AtomicU64::new(0),
            probes_read: Mutex::new(std::collections::BTreeSet::new()),
            signal_read: tokio::sync::Notify::new(),
            next_probe: AtomicU64::new(numbered_from),
            numbered_from,
        }
    }
}

/// How long a wait for the tail may last.
#[derive(Debug, Clone, Copy)]
pub enum TailPatience {
    /// As long as the tail keeps reading: a tail far behind a busy binlog
    /// is slow, not broken, and fails the wait only after reading no event
    /// for this long.
    WhileReading(Duration),
    /// This long at most, whatever the tail does: for waits that hold the
    /// application's clients.
    AtMost(Duration),
}

/// Why a wait for the tail ended without what it waited for.
#[derive(Debug, Clone)]
pub enum TailWaitFailure {
    /// The tail stopped on this error.
    Failed(String),
    /// The tail read no event for `stall`; it stands at `position`.
    Stalled {
        stall: Duration,
        position: BinlogPosition,
    },
    /// The time allowed ran out.
    TimedOut(Duration),
}

impl TailWaitFailure {
    /// A sentence on why `what` (a marker, a probe) was not read.
    pub fn describe(&self, what: &str) -> String {
        match self {
            TailWaitFailure::Failed(why) => format!("the binlog tail stopped before reading {what}: {why}"),
            TailWaitFailure::Stalled { stall, position } => format!(
                "the binlog tail read nothing for {stall:?} (it stands at {position}) while waiting for {what}; \
                 check that the server still serves the binlog stream"
            ),
            TailWaitFailure::TimedOut(limit) => {
                format!("{what} was not read from the binlog within {limit:?}")
            }
        }
    }
}

/// How often a wait for the tail looks at its position.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// A running tail.
pub struct Tail {
    shared: Arc<TailShared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    table: String,
}

impl Tail {
    /// Opens the binlog stream at `config.start` and starts reading.
    pub async fn start(config: TailConfig) -> Result<Tail> {
        let stream = open_stream(&config).await?;
        let shared = Arc::new(TailShared::new(config.start.clone(), config.numbered_from));
        apply::lock(&shared.buffer).hold_back_for(Arc::clone(&config.frontier));
        let (stop, stopped) = watch::channel(false);
        let table = config.names.q(&config.names.original);
        let task = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let reader_shared = Arc::clone(&shared);
                // The decoder is third-party code that has panicked on odd
                // values; a panic must become a clear error, not a silent end.
                let reader = tokio::spawn(async move {
                    Reader::new(config, reader_shared)
                        .run(stream, stopped)
                        .await
                });
                let failure = match reader.await {
                    Ok(Ok(())) => None,
                    Ok(Err(message)) => Some(message),
                    Err(e) if e.is_panic() => {
                        let payload = e.into_panic();
                        let text = payload
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        Some(format!("the binlog decoder panicked ({text})"))
                    }
                    Err(e) => Some(format!("the binlog reader was cancelled ({e})")),
                };
                if let Some(message) = failure {
                    tracing::error!(%message, "binlog tail stopped");
                    *shared.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
                }
            })
        };
        Ok(Tail {
            shared,
            stop,
            task,
            table,
        })
    }

    /// Shared state (buffer, counters).
    pub fn shared(&self) -> &Arc<TailShared> {
        &self.shared
    }

    /// The tail's error, if it stopped on one.
    pub fn check(&self) -> Result<()> {
        let failure = self
            .shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match failure {
            Some(message) => Err(Error::Tail {
                table: self.table.clone(),
                message,
            }),
            None if self.task.is_finished() => Err(Error::Tail {
                table: self.table.clone(),
                message: "the binlog stream ended".into(),
            }),
            None => Ok(()),
        }
    }

    /// Waits until the tail has read sync marker `marker` (so every change
    /// committed before it is in the buffer), within `patience`.
    pub async fn wait_for_marker(&self, marker: u64, patience: TailPatience) -> Result<()> {
        let shared = &self.shared;
        shared
            .wait_until(patience, || {
                shared.marker_read.load(Ordering::SeqCst) >= marker
            })
            .await
            .map_err(|failure| Error::Tail {
                table: self.table.clone(),
                message: failure.describe(&format!("sync marker {marker}")),
            })
    }

    /// Stops reading and closes the stream.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn open_stream(config: &TailConfig) -> Result<BinlogStream> {
    let table = config.names.q(&config.names.original);
    let mut conn = open_binlog_connection(&config.connect)
        .await
        .map_err(|source| Error::Connect {
            target: config.connect.target(),
            source,
        })?;
    let period_ns = config
        .heartbeat_period
        .as_nanos()
        .min(u128::from(u32::MAX) * 1_000_000) as u64;
    conn.query_drop(format!("SET @master_heartbeat_period = {period_ns}"))
        .await
        .context(|| format!("setting the binlog heartbeat for {table}"))?;
    // While the buffer is full the tail stops reading and the server's
    // writes to this connection block: for longer than net_write_timeout
    // (60 s by default), and the server would drop the stream.
    conn.query_drop("SET SESSION net_write_timeout = 86400")
        .await
        .context(|| format!("setting net_write_timeout on the binlog connection for {table}"))?;
    let request = BinlogStreamRequest::new(config.server_id)
        .with_filename(config.start.file.as_bytes())
        .with_pos(config.start.pos);
    conn.get_binlog_stream(request)
        .await
        .context(|| format!("opening the binlog stream at {} for {table}", config.start))
}

/// The largest packet the protocol has (1 GiB), as a replica's
/// `slave_max_allowed_packet`.
const BINLOG_MAX_PACKET: usize = 1 << 30;

/// A connection for a binlog stream. The server sends a row event whole,
/// however much larger than its `max_allowed_packet` (a row of large
/// BLOBs, before and after images): a client that kept the server's value
/// as its own limit refused such an event, and the tail reconnected to it
/// again and again.
async fn open_binlog_connection(
    connect: &ConnectConfig,
) -> std::result::Result<mysql_async::Conn, mysql_async::Error> {
    crate::server::open_with(connect, |opts| {
        opts.max_allowed_packet(Some(BINLOG_MAX_PACKET))
    })
    .await
}

/// Opens a binlog stream at `start` and reads its first event, to prove the
/// user may read the binlog. Used by the pre-flight checks.
pub async fn probe(
    connect: &ConnectConfig,
    server_id: u32,
    start: &BinlogPosition,
) -> std::result::Result<(), mysql_async::Error> {
    let conn = open_binlog_connection(connect).await?;
    let request = BinlogStreamRequest::new(server_id)
        .with_filename(start.file.as_bytes())
        .with_pos(start.pos);
    let mut stream = conn.get_binlog_stream(request).await?;
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
    let _ = stream.close().await;
    match first {
        Ok(Some(Err(e))) => Err(e),
        _ => Ok(()),
    }
}

/// Which table a table id maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Original,
    Changelog,
    Other,
}

struct Reader {
    config: TailConfig,
    tables: HashMap<u64, TableMapEvent<'static>>,
    shared: Arc<TailShared>,
    file: String,
    transaction_is_xa: bool,
    transaction_touches_table: bool,
    /// Set once the tool's own RENAME (the swap) is read: every later event
    /// belongs to the new table and is none of the tail's business.
    swapped: bool,
    /// Where the transaction being read began, while one is open: a lost
    /// stream resumes there (the server only starts at an event boundary,
    /// and a rows event needs its table map, read earlier in the
    /// transaction).
    transaction_start: Option<BinlogPosition>,
}

impl Reader {
    fn new(config: TailConfig, shared: Arc<TailShared>) -> Reader {
        let file = config.start.file.clone();
        Reader {
            config,
            tables: HashMap::new(),
            shared,
            file,
            transaction_is_xa: false,
            transaction_touches_table: false,
            swapped: false,
            transaction_start: None,
        }
    }

    /// Where a lost stream resumes: the start of the open transaction, or
    /// the end of the last event read. Reading part of a transaction again
    /// only marks its keys changed again.
    fn resume_position(&self) -> BinlogPosition {
        self.transaction_start
            .clone()
            .unwrap_or_else(|| self.shared.read_to())
    }

    /// Opens the stream again after `why`, with backoff, at most
    /// `reconnect_retries` times in a row.
    async fn reconnect(
        &mut self,
        why: String,
        failures: &mut u32,
        stopped: &mut watch::Receiver<bool>,
    ) -> std::result::Result<Option<BinlogStream>, String> {
        loop {
            *failures += 1;
            if *failures > self.config.reconnect_retries {
                return Err(format!(
                    "{why}; gave up after {} reconnection attempts",
                    self.config.reconnect_retries
                ));
            }
            let pause = crate::table_lock::retry_delay(*failures);
            let resume = self.resume_position();
            tracing::warn!(reason = %why, attempt = *failures, at = %resume, "the binlog stream was lost; reconnecting");
            tokio::select! {
                _ = stopped.changed() => return Ok(None),
                _ = tokio::time::sleep(pause) => {}
            }
            let config = TailConfig {
                start: resume.clone(),
                ..self.config.clone()
            };
            match open_stream(&config).await {
                Ok(stream) => {
                    self.file = resume.file.clone();
                    self.transaction_start = None;
                    self.shared.set_read_to(resume);
                    return Ok(Some(stream));
                }
                Err(e) => tracing::warn!(error = %e, "reopening the binlog stream failed"),
            }
        }
    }

    async fn run(
        &mut self,
        mut stream: BinlogStream,
        mut stopped: watch::Receiver<bool>,
    ) -> std::result::Result<(), String> {
        let silence = self.config.heartbeat_period * 3 + Duration::from_secs(1);
        let mut failures = 0u32;
        // Where the stream was last lost: a reopened stream reads the open
        // transaction again, so only reading past this point is progress
        // (an event the stream always fails on must use up the retries,
        // not reset them on every reconnection).
        let mut lost_at: Option<BinlogPosition> = None;
        loop {
            if self.shared.must_wait_for_room(self.config.buffer_keys) {
                self.shared.waiting_for_room.store(true, Ordering::Relaxed);
                while self.shared.must_wait_for_room(self.config.buffer_keys) {
                    tokio::select! {
                        _ = stopped.changed() => {
                            let _ = stream.close().await;
                            return Ok(());
                        }
                        _ = tokio::time::sleep(ROOM_POLL) => {}
                    }
                }
                self.shared.waiting_for_room.store(false, Ordering::Relaxed);
            }
            let next = tokio::select! {
                _ = stopped.changed() => break,
                next = tokio::time::timeout(silence, stream.next()) => next,
            };
            let lost = match next {
                Err(_) => {
                    format!("the binlog stream was silent for {silence:?} despite heartbeats")
                }
                Ok(None) => "the server closed the binlog stream".into(),
                Ok(Some(Err(e))) => format!("reading the binlog failed: {e}"),
                Ok(Some(Ok(event))) => {
                    self.handle(&event)?;
                    if lost_at
                        .as_ref()
                        .is_none_or(|at| self.shared.read_to() > *at)
                    {
                        failures = 0;
                        lost_at = None;
                    }
                    continue;
                }
            };
            lost_at = lost_at.max(Some(self.shared.read_to()));
            let _ = stream.close().await;
            match self.reconnect(lost, &mut failures, &mut stopped).await? {
                Some(reopened) => stream = reopened,
                None => return Ok(()),
            }
        }
        let _ = stream.close().await;
        Ok(())
    }

    fn target_of(&self, table_id: u64) -> Target {
        self.tables
            .get(&table_id)
            .map_or(Target::Other, |tme| self.target_of_map(tme))
    }

    /// Which of the run's tables a TABLE_MAP names, compared as the server
    /// compares names: with `lower_case_table_names` set, the binlog holds
    /// the names in lower case, whatever case `--table` was given in.
    fn target_of_map(&self, tme: &TableMapEvent<'_>) -> Target {
        let (names, rule) = (&self.config.names, self.config.name_rule);
        if !rule.same(&tme.database_name(), &names.database) {
            return Target::Other;
        }
        let name = tme.table_name();
        if rule.same(&name, &names.original) {
            Target::Original
        } else if rule.same(&name, &names.changelog) {
            Target::Changelog
        } else {
            Target::Other
        }
    }

    fn handle(&mut self, event: &Event) -> std::result::Result<(), String> {
        let header = event.header();
        verify_checksum(event)?;
        let before = self.shared.read_to();
        if header.log_pos() > 0 {
            self.shared.set_read_to(BinlogPosition {
                file: self.file.clone(),
                pos: u64::from(header.log_pos()),
            });
        }
        let kind = events::classify(header.event_type_raw());
        if self.swapped && kind != EventKind::Rotate {
            return Ok(());
        }
        match kind {
            EventKind::Ignore => Ok(()),
            EventKind::Refuse(why) => Err(format!(
                "the binlog contains {why} (event type {}) at {}:{}",
                header.event_type_raw(),
                self.file,
                header.log_pos()
            )),
            EventKind::Rotate => {
                self.file = rotate_target(event, self.config.checksums)?;
                Ok(())
            }
            EventKind::MariaGtid => {
                self.transaction_start = Some(before.clone());
                self.transaction_is_xa = events::mariadb_gtid_is_xa(event.data());
                self.transaction_touches_table = false;
                Ok(())
            }
            EventKind::Xid => {
                self.end_transaction();
                Ok(())
            }
            EventKind::XaPrepare => {
                if self.transaction_touches_table {
                    return Err("an XA transaction changed the table; XA is not supported".into());
                }
                Ok(())
            }
            EventKind::Query => self.check_query(event, &before),
            EventKind::TableMap => self.check_table_map(event),
            EventKind::WriteRows
            | EventKind::UpdateRows
            | EventKind::DeleteRows
            | EventKind::PartialUpdateRows => self.handle_rows(event, kind),
        }
    }

    fn end_transaction(&mut self) {
        self.transaction_start = None;
        self.transaction_is_xa = false;
        self.transaction_touches_table = false;
        let position = self.shared.read_to();
        apply::lock(&self.shared.buffer).mark_position(position);
    }

    fn check_query(
        &mut self,
        event: &Event,
        before: &BinlogPosition,
    ) -> std::result::Result<(), String> {
        let query = event
            .read_event::<mysql_async::binlog::events::QueryEvent<'_>>()
            .map_err(|e| format!("a QUERY event cannot be read: {e}"))?;
        let text = query.query();
        let lexing = query_lexing(&query);
        let changed_tables = |text: &str, schema: &str| match lexing {
            Some(lexing) => statements::changed_tables(text, schema, lexing),
            None => statements::changed_tables_in_any_mode(text, schema),
        };
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("COMMIT") {
            self.end_transaction();
            return Ok(());
        }
        let names = &self.config.names;
        let rule = self.config.name_rule;
        let schema = query.schema();
        if text.contains(&self.config.statement_tag) {
            // The swap is binlogged only once it has happened.
            let is_rename = sql::tokenize(&text)
                .ok()
                .and_then(|t| t.first().cloned())
                .is_some_and(|t| t.is_kw("RENAME"));
            self.swapped |= is_rename
                && changed_tables(&text, &schema)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| rule.hits(c, &names.database, &names.original));
            return Ok(());
        }
        if trimmed.eq_ignore_ascii_case("BEGIN") {
            self.transaction_start.get_or_insert_with(|| before.clone());
            return Ok(());
        }
        let upper = trimmed.to_ascii_uppercase();
        if upper.starts_with("XA ") {
            self.transaction_is_xa = true;
            return Ok(());
        }
        let touches = match changed_tables(&text, &schema) {
            Ok(changed) => changed.iter().any(|c| {
                rule.hits(c, &names.database, &names.original)
                    || rule.hits(c, &names.database, &names.ghost)
            }),
            // Text the tokenizer cannot read: stop when it names the table.
            Err(_) => {
                (rule.same(&schema, &names.database)
                    || sql::mentions_identifier(&text, &names.database))
                    && (sql::mentions_identifier(&text, &names.original)
                        || sql::mentions_identifier(&text, &names.ghost))
            }
        };
        if touches {
            let shown: String = text.chars().take(200).collect();
            return Err(format!(
                "a statement not issued by shadowcut changes the table (DDL, TRUNCATE or statement-based DML): {shown}"
            ));
        }
        Ok(())
    }

    /// Checks a TABLE_MAP of the migrated table against the inspected one,
    /// and remembers every mapping (the stream reader keeps its own, but the
    /// tail must work the same on events it did not read from a stream).
    fn check_table_map(&mut self, event: &Event) -> std::result::Result<(), String> {
        let tme = event
            .read_event::<mysql_async::binlog::events::TableMapEvent<'_>>()
            .map_err(|e| format!("a TABLE_MAP event cannot be read: {e}"))?
            .into_owned();
        if self.target_of_map(&tme) == Target::Original
            && tme.columns_count() != self.config.original.columns.len() as u64
        {
            return Err(format!(
                "the binlog maps the table with {} columns, but it had {} when inspected: the table was altered",
                tme.columns_count(),
                self.config.original.columns.len()
            ));
        }
        self.tables.insert(tme.table_id(), tme);
        Ok(())
    }

    fn handle_rows(&mut self, event: &Event, kind: EventKind) -> std::result::Result<(), String> {
        let data = event
            .read_data()
            .map_err(|e| format!("a rows event cannot be read: {e}"))?;
        let Some(mysql_async::binlog::events::EventData::RowsEvent(rows)) = data else {
            return Err("a rows event cannot be read".into());
        };
        let target = self.target_of(rows.table_id());
        match target {
            Target::Other => Ok(()),
            Target::Changelog => self.read_changelog_rows(&rows),
            Target::Original => {
                if kind == EventKind::PartialUpdateRows {
                    return Err(
                        "a partial JSON update of the table (binlog_row_value_options)".into(),
                    );
                }
                if self.transaction_is_xa {
                    return Err("an XA transaction changed the table; XA is not supported".into());
                }
                self.transaction_touches_table = true;
                let n = self.shared.row_events.fetch_add(1, Ordering::Relaxed) + 1;
                if failpoint::drops_event(self.config.failpoints.drop_row_event, n) {
                    tracing::warn!(n, "failpoint: dropping a row event");
                    return Ok(());
                }
                self.read_keys(&rows)
            }
        }
    }

    fn read_keys(&mut self, rows: &RowsEventData<'_>) -> std::result::Result<(), String> {
        let tme = self
            .tables
            .get(&rows.table_id())
            .ok_or("a rows event has no table map")?;
        for image in [rows.columns_before_image(), rows.columns_after_image()]
            .into_iter()
            .flatten()
        {
            if image.count_ones() != image.len().min(self.config.original.columns.len()) {
                return Err("a row image of the table is not full (binlog_row_image was changed in a session?)".into());
            }
        }
        // Before images are keys whose row is gone after this change unless
        // the after image (read next) brings it back.
        let mut changes: Vec<(KeyValue, bool)> = Vec::new();
        for row in rows.rows(tme) {
            let (before, after) =
                row.map_err(|e| format!("a row of the table cannot be decoded: {e}"))?;
            for (image, exists) in [(before, false), (after, true)] {
                let Some(image) = image else { continue };
                let key = self
                    .config
                    .key
                    .columns
                    .iter()
                    .map(|k| decode::key_part(&k.column, image.as_ref(k.ordinal)))
                    .collect::<std::result::Result<KeyValue, String>>()?;
                changes.push((key, exists));
            }
        }
        self.shared
            .rows
            .fetch_add(changes.len() as u64, Ordering::Relaxed);
        let read = changes.len();
        changes.retain(|(key, _)| self.config.frontier.covers(key));
        self.shared
            .skipped
            .fetch_add((read - changes.len()) as u64, Ordering::Relaxed);
        let mut buffer = apply::lock(&self.shared.buffer);
        for (key, exists) in changes {
            buffer.insert(key, exists);
        }
        self.shared
            .peak_backlog
            .fetch_max(buffer.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn read_changelog_rows(&mut self, rows: &RowsEventData<'_>) -> std::result::Result<(), String> {
        let Some(tme) = self.tables.get(&rows.table_id()) else {
            return Ok(());
        };
        for row in rows.rows(tme) {
            let (_, after) = row.map_err(|e| format!("a changelog row cannot be decoded: {e}"))?;
            let Some(after) = after else { continue };
            let text = |i: usize| match after.as_ref(i) {
                Some(mysql_async::binlog::value::BinlogValue::Value(
                    mysql_async::Value::Bytes(b),
                )) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            };
            match text(1).as_str() {
                hint::SYNC_MARKER => {
                    if let Ok(marker) = text(2).parse::<u64>() {
                        apply::lock(&self.shared.buffer).mark_sync(marker);
                        self.shared.marker_read.fetch_max(marker, Ordering::SeqCst);
                        self.shared.signal_read.notify_waiters();
                    }
                }
                hint::TAIL_PROBE => {
                    if let Ok(id) = text(2).parse::<u64>() {
                        self.shared
                            .probes_read
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id);
                        self.shared.signal_read.notify_waiters();
                    }
                }
                hint::HEARTBEAT => {
                    *self
                        .shared
                        .last_heartbeat
                        .lock()
                        .unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The file a ROTATE event points to. The name is the event body after the
/// 8-byte position; the decoder leaves the checksum on the first (fake)
/// rotate, sent before the format description, so the length comes from
/// the header instead.
fn rotate_target(event: &Event, checksums: bool) -> std::result::Result<String, String> {
    const HEADER: usize = 19;
    const POSITION: usize = 8;
    let size = event.header().event_size() as usize;
    let name_len = size
        .checked_sub(HEADER + POSITION + if checksums { 4 } else { 0 })
        .ok_or("a ROTATE event is too short")?;
    let name = event
        .data()
        .get(POSITION..POSITION + name_len)
        .ok_or("a ROTATE event is truncated")?;
    String::from_utf8(name.to_vec())
        .map_err(|_| "a ROTATE event names a file that is not UTF-8".to_string())
}

/// Verifies the CRC32 of an event, when the stream carries checksums
/// (mysql_common does not).
fn verify_checksum(event: &Event) -> std::result::Result<(), String> {
    let Some(expected) = event.checksum() else {
        return Ok(());
    };
    let Ok(Some(alg)) = event.fde().footer().get_checksum_alg() else {
        return Ok(());
    };
    let actual = event.calc_checksum(alg);
    if actual != u32::from_le_bytes(expected) {
        return Err(format!(
            "event checksum mismatch at {} (type {}): the binlog stream is corrupt",
            event.header().log_pos(),
            event.header().event_type_raw()
        ));
    }
    Ok(())
}

/// How the statement of a QUERY event reads: its session's sql_mode, which
/// the event carries (`None` when it does not).
fn query_lexing(query: &mysql_async::binlog::events::QueryEvent<'_>) -> Option<sql::Lexing> {
    use mysql_async::binlog::events::StatusVarVal;
    use mysql_async::binlog::StatusVarKey;
    query
        .status_vars()
        .get_status_var(StatusVarKey::SqlMode)
        .and_then(|var| match var.get_value() {
            Ok(StatusVarVal::SqlMode(bits)) => Some(sql::Lexing::of_sql_mode_bits(bits.0)),
            _ => None,
        })
}

/// MySQL 8 encodings this machine cannot produce (v2 rows events, binary
/// JSON, GTID events, compressed transactions, partial JSON updates), built
/// byte by byte and fed through the same reader as the live stream.
#[cfg(test)]
mod mysql8_events {
    use super::*;
    use crate::schema::tests::{col, key};
    use crate::schema::KeyPart;
    use mysql_async::binlog::events::FormatDescriptionEvent;
    use mysql_async::binlog::BinlogVersion;

    const TABLE_ID: u64 = 77;

    fn event(event_type: u8, body: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend(0u32.to_le_bytes());
        e.push(event_type);
        e.extend(1u32.to_le_bytes());
        e.extend(((19 + body.len()) as u32).to_le_bytes());
        e.extend(4000u32.to_le_bytes());
        e.extend(0u16.to_le_bytes());
        e.extend(body);
        e
    }

    fn table_id() -> Vec<u8> {
        TABLE_ID.to_le_bytes()[..6].to_vec()
    }

    /// TABLE_MAP of `d`.`t` (id INT, name VARCHAR(100) utf8mb4, doc JSON).
    fn table_map(columns: usize) -> Vec<u8> {
        let mut b = table_id();
        b.extend([0, 0]);
        for name in ["d", "t"] {
            b.push(name.len() as u8);
            b.extend(name.as_bytes());
            b.push(0);
        }
        let (types, meta): (&[u8], &[u8]) = match columns {
            3 => (&[3, 15, 245], &[0x90, 0x01, 4]),
            _ => (&[3, 15], &[0x90, 0x01]),
        };
        b.push(types.len() as u8);
        b.extend(types);
        b.push(meta.len() as u8);
        b.extend(meta);
        b.push(0xFF);
        event(19, &b)
    }

    /// One full row image: id, name, and a binary JSON `true`.
    fn image(id: i32, name: &str) -> Vec<u8> {
        let mut r = vec![0u8]; // no NULLs
        r.extend(id.to_le_bytes());
        r.extend((name.len() as u16).to_le_bytes());
        r.extend(name.as_bytes());
        r.extend(2u32.to_le_bytes());
        r.extend([0x04, 0x01]);
        r
    }

    /// A QUERY event run in database `db`.
    fn query(db: &str, text: &str) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(1u32.to_le_bytes()); // thread id
        b.extend(0u32.to_le_bytes()); // exec time
        b.push(db.len() as u8);
        b.extend(0u16.to_le_bytes()); // error code
        b.extend(0u16.to_le_bytes()); // no status variables
        b.extend(db.as_bytes());
        b.push(0);
        b.extend(text.as_bytes());
        event(2, &b)
    }

    fn rows_v2(event_type: u8, images: &[Vec<u8>]) -> Vec<u8> {
        let mut b = table_id();
        b.extend(1u16.to_le_bytes()); // STMT_END_F
        b.extend(2u16.to_le_bytes()); // no extra data
        b.push(3);
        b.push(0x07); // columns present
        if event_type == 31 || event_type == 39 {
            b.push(0x07);
        }
        for i in images {
            b.extend(i);
        }
        event(event_type, &b)
    }

    fn reader() -> Reader {
        let mut doc = col("doc", "json", None);
        doc.nullable = true;
        let original = TableSchema {
            database: "d".into(),
            name: "t".into(),
            columns: vec![
                col("id", "int", None),
                col("name", "varchar", Some(("utf8mb4", "utf8mb4_general_ci"))),
                doc,
            ],
            indexes: vec![],
            engine: "InnoDB".into(),
            table_type: "BASE TABLE".into(),
            rows_estimate: 0,
            auto_increment: None,
            comment: String::new(),
        };
        let start = BinlogPosition {
            file: "binlog.000001".into(),
            pos: 4,
        };
        let config = TailConfig {
            connect: ConnectConfig {
                host: "127.0.0.1".into(),
                port: 0,
                socket: None,
                user: "u".into(),
                password: None,
                tls: None,
                zero_date_checks: false,
            },
            server_id: 1,
            start: start.clone(),
            names: ShadowNames::derive("d", "t", None),
            key: key(&original.columns[..1]),
            original,
            statement_tag: "/* shadowcut:test */".into(),
            heartbeat_period: Duration::from_secs(1),
            checksums: false,
            name_rule: statements::NameRule {
                case_insensitive: false,
            },
            frontier: Arc::new(CopyFrontier::everything()),
            buffer_keys: 1_000,
            reconnect_retries: 0,
            numbered_from: 0,
            failpoints: Failpoints::default(),
        };
        Reader::new(config, Arc::new(TailShared::new(start, 0)))
    }

    fn feed(reader: &mut Reader, events: &[Vec<u8>]) -> std::result::Result<(), String> {
        // No format description yet: no checksums, MySQL 8 header lengths.
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        for bytes in events {
            let event = Event::read(&fde, &bytes[..]).map_err(|e| e.to_string())?;
            reader.handle(&event)?;
        }
        Ok(())
    }

    fn keys(reader: &Reader) -> Vec<KeyValue> {
        let mut keys: Vec<KeyValue> = apply::lock(&reader.shared.buffer)
            .take(100)
            .changes
            .into_iter()
            .map(|c| c.key)
            .collect();
        keys.sort_by_key(|k| format!("{k:?}"));
        keys
    }

    #[test]
    fn v2_rows_events_with_binary_json_yield_every_key() {
        let mut r = reader();
        feed(
            &mut r,
            &[
                table_map(3),
                rows_v2(30, &[image(5, "five"), image(7, "seven")]),
                rows_v2(31, &[image(7, "seven"), image(9, "nine")]),
                rows_v2(32, &[image(5, "five")]),
                event(16, &42u64.to_le_bytes()),
            ],
        )
        .unwrap();
        let ints: Vec<KeyValue> = [5, 7, 9].iter().map(|i| vec![KeyPart::Int(*i)]).collect();
        assert_eq!(keys(&r), ints);
        assert_eq!(r.shared.rows.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn mysql_gtid_events_are_ignored() {
        let mut r = reader();
        let gtid = event(33, &[0u8; 42]);
        let previous = event(35, &[0u8; 8]);
        feed(
            &mut r,
            &[gtid, previous, table_map(3), rows_v2(30, &[image(1, "x")])],
        )
        .unwrap();
        assert_eq!(keys(&r), vec![vec![KeyPart::Int(1)]]);
    }

    #[test]
    fn compressed_transactions_stop_the_tail() {
        let err = feed(&mut reader(), &[event(40, &[0u8; 16])]).unwrap_err();
        assert!(err.contains("compressed transaction"), "{err}");
    }

    #[test]
    fn partial_json_updates_of_the_table_stop_the_tail() {
        // The after image of a partial update starts with its value options (none here).
        let mut after = vec![0u8];
        after.extend(image(1, "y"));
        let err = feed(
            &mut reader(),
            &[table_map(3), rows_v2(39, &[image(1, "x"), after])],
        )
        .unwrap_err();
        assert!(err.contains("partial JSON update of the table"), "{err}");
    }

    #[test]
    fn harmless_statements_naming_the_table_do_not_stop_the_tail() {
        let mut r = reader();
        feed(
            &mut r,
            &[
                query("d", "DROP EVENT d.t"),
                query("d", "ANALYZE TABLE t"),
                query("other", "GRANT SELECT ON d.t TO app"),
                query("d", "ALTER TABLE t_archive ADD COLUMN x INT"),
            ],
        )
        .unwrap();
        let err = feed(
            &mut r,
            &[query("other", "ALTER TABLE d.t ADD COLUMN x INT")],
        )
        .unwrap_err();
        assert!(err.contains("changes the table"), "{err}");
    }

    #[test]
    fn the_tools_own_rename_detaches_the_tail_from_the_new_table() {
        let mut r = reader();
        feed(
            &mut r,
            &[
                table_map(3),
                query(
                    "d",
                    "RENAME TABLE `d`.`t` TO `d`.`_t_del`, `d`.`_t_gho` TO `d`.`t` /* shadowcut:test */",
                ),
                // The new table, with another column count, and a write to it.
                table_map(2),
                query("d", "ALTER TABLE t ADD COLUMN y INT"),
            ],
        )
        .unwrap();
    }

    #[test]
    fn a_table_map_with_other_columns_stops_the_tail() {
        let err = feed(&mut reader(), &[table_map(2)]).unwrap_err();
        assert!(err.contains("the table was altered"), "{err}");
    }

    #[test]
    fn a_truncated_rows_event_is_an_error_not_a_panic() {
        let mut truncated = rows_v2(30, &[image(5, "five")]);
        truncated.truncate(truncated.len() - 3);
        let size = (truncated.len() as u32).to_le_bytes();
        truncated[9..13].copy_from_slice(&size);
        let err = feed(&mut reader(), &[table_map(3), truncated]).unwrap_err();
        assert!(
            err.contains("cannot be decoded") || err.contains("cannot be read"),
            "{err}"
        );
    }
}
