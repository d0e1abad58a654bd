//! The checksum before the swap: an independent check that the new table
//! holds, row for row, what the original holds, taken through the same
//! conversion the copy applies.
//!
//! A consistent view of both tables while the tail keeps running: the
//! original is briefly locked against writes (as at the cut-over), every
//! change up to the lock is applied to the new table, and then several
//! connections open `START TRANSACTION WITH CONSISTENT SNAPSHOT` before the
//! lock is released. In those snapshots the new table must be exactly the
//! converted original. The snapshots are compared chunk by chunk along the
//! shared key, in parallel: row count and the `SUM` of a CRC32 per row over
//! every copied column. One aggregate, so that each row's CRC32 is computed
//! once: a second (`BIT_XOR`) made the server build every row's string
//! twice, or materialize the chunk, for a third more time, and added no
//! defect the sum misses (see `docs/design.md`, "The checksum before the
//! swap"). A chunk that differs is copied again (its rows of the
//! new table deleted, then the range copied as the copy copies any chunk,
//! never waiting for the application's row locks) and checked again in a
//! new snapshot; one that keeps differing stops the run before the swap, with
//! its key range in the error.
//!
//! Each column is compared through an expression that reproduces the
//! copy's conversion: the same value for an unchanged column, the new
//! character set for a converted string, a CAST to the new type otherwise.
//! Where no faithful expression exists (a SET whose members change), the
//! column is left out and the report names it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Value};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::control::Stop;
use crate::copy::chunker::{Chunk, Chunker, KeyWalk};
use crate::copy::{Copier, CopyStats, PaceControl};
use crate::error::{Error, Result, SqlContext};
use crate::failpoint::Failpoints;
use crate::feed::LockedFlushFailure;
use crate::inspect::keys::SourceRead;
use crate::inspect::Plan;
use crate::schema::{Column, SharedKey, Side, TableSchema};
use crate::server::ConnectConfig;
use crate::shadow::ShadowNames;
use crate::sql;
use crate::table_lock::WriteFence;

/// What the checksum found, for progress and the JSON summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChecksumReport {
    /// Chunks compared (each round counts the chunks it compared).
    pub chunks_checked: u64,
    /// Chunks that differed in the first round.
    pub mismatches: u64,
    /// Chunks copied again and then found equal.
    pub repaired: u64,
    /// Rows compared in the first round, on the original's side.
    pub rows_checked: u64,
    /// Columns compared.
    pub columns_compared: usize,
    /// Columns left out, with the reason.
    pub columns_not_compared: Vec<String>,
    /// True when the key does not allow ranges on the new table, and the
    /// whole table is one chunk.
    pub whole_table: bool,
    /// Wall time of the checksum, in seconds.
    pub seconds: f64,
    /// Time writers were blocked while the snapshots were opened, summed
    /// over the rounds, in seconds.
    pub lock_seconds: f64,
}

/// The checksum's progress while it runs, for the status.
#[derive(Debug, Default)]
pub struct ChecksumProgress {
    /// Rows of the original compared so far, over every round.
    pub rows_checked: AtomicU64,
    /// Chunks found differing so far, over every round.
    pub chunks_differing: AtomicU64,
    /// Differing chunks copied again so far.
    pub chunks_copied_again: AtomicU64,
}

/// How many times differing chunks are copied again before the run stops.
const REPAIR_ROUNDS: u32 = 2;

/// How many times opening the snapshots may fail (lock not obtained,
/// drain too slow) before the run stops.
const SNAPSHOT_ATTEMPTS: u32 = 5;

/// The expressions that read one copied column on each side, so that
/// equal data gives equal bytes; `None` when no faithful one exists.
pub fn column_exprs(original: &Column, ghost: &Column) -> Option<(String, String)> {
    let o = sql::ident(&original.name);
    let g = sql::ident(&ghost.name);
    let bytes = |e: String| format!("CAST({e} AS BINARY)");
    let (gt, ot) = (ghost.data_type.as_str(), original.data_type.as_str());
    // A number made a BIT, an ENUM (its position) or a SET (its bits) is
    // assigned as that number, a FLOAT or DOUBLE rounded as the copy reads
    // it (through a signed integer: a negative one keeps its bits).
    let as_number = match SourceRead::for_columns(original, ghost) {
        SourceRead::Rounded => Some(format!("CAST(CAST(ROUND({o}) AS SIGNED) AS UNSIGNED)")),
        _ if original.int_width().is_some() => Some(format!("CAST({o} AS UNSIGNED)")),
        _ => None,
    };
    if gt == "bit" || ot == "bit" {
        if gt == ot {
            return Some((format!("({o} + 0)"), format!("({g} + 0)")));
        }
        if ghost.int_width().is_some() {
            return Some((format!("({o} + 0)"), g));
        }
        return (gt == "bit")
            .then_some(as_number)
            .flatten()
            .map(|expected| (expected, format!("({g} + 0)")));
    }
    if matches!(gt, "enum" | "set") {
        if let Some(expected) = as_number {
            return Some((expected, format!("({g} + 0)")));
        }
    }
    if gt == "float" {
        // A FLOAT reads as text with 6 significant digits, so values that
        // differ in the 7th read alike; as a DOUBLE it reads exactly.
        let exact = |e: String| format!("CAST({e} AS DOUBLE)");
        if same_definition(original, ghost) {
            return Some((exact(o), exact(g)));
        }
        // FLOAT(M,D) rounds to D decimals on assignment, which no CAST does.
        let expected = (!ghost.column_type.contains('(')).then(|| format!("CAST({o} AS FLOAT)"))?;
        return Some((exact(expected), exact(g)));
    }
    if gt == "timestamp" && same_definition(original, ghost) {
        // As text, in a time zone with daylight saving time, the hour the
        // clocks go back reads alike for two different instants.
        return Some((
            format!("UNIX_TIMESTAMP({o})"),
            format!("UNIX_TIMESTAMP({g})"),
        ));
    }
    if same_definition(original, ghost) {
        // A number or a date reads as the same text on both sides: a CAST
        // would only cost (a tenth of the checksum on the bench's table).
        return Some(if reads_as_plain_text(gt) {
            (o, g)
        } else {
            (bytes(o), bytes(g))
        });
    }
    if gt == "set" && ot == "set" {
        // Assignment takes each member by name, and the new list may put it
        // at another bit: each of the original's bits is moved to its
        // member's bit in the new list, and compared with the new value's.
        return set_bits_in_new_order(original, ghost).map(|o| (o, format!("({g} + 0)")));
    }
    if gt == "set" {
        // A text made a SET: its members come out in the list's order.
        return None;
    }
    if gt == "enum" {
        // Assignment takes the label equal to the value in the new column's
        // collation ('paid' becomes 'Paid' under a case-insensitive one),
        // trailing spaces aside; no two labels of a list are equal in it,
        // so equal collation weights mean the same label. A number is taken
        // as a position in the list, which no expression reproduces.
        if !(ot == "enum" || original.is_text()) {
            return None;
        }
        let cs = ghost.charset.as_deref().filter(|c| sql::is_plain_word(c))?;
        let collation = ghost
            .collation
            .as_deref()
            .filter(|c| sql::is_plain_word(c))?;
        let weight =
            |e: String| format!("WEIGHT_STRING(CONVERT({e} USING {cs}) COLLATE {collation})");
        return Some((weight(format!("RTRIM({o})")), weight(g)));
    }
    if ghost.is_text() {
        let cs = ghost.charset.as_deref().filter(|c| sql::is_plain_word(c))?;
        let converted = if original.is_text() {
            format!("CONVERT({o} USING {cs})")
        } else {
            format!("CONVERT(CAST({o} AS CHAR) USING {cs})")
        };
        // CHAR drops trailing spaces when read.
        let converted = if gt == "char" {
            format!("RTRIM({converted})")
        } else {
            converted
        };
        return Some((bytes(converted), bytes(g)));
    }
    let cast = cast_target(ghost)?;
    if let Some(is_integer) = integer_text_test(original, ghost) {
        // Assignment rounds a text with a fraction ('1.4' is 1) without a
        // warning, where a native ALTER refuses it in a strict sql_mode:
        // only a text that is an integer is expected to arrive as one, so
        // that any other differs, and the run stops as the ALTER would
        // (the pre-flight refuses such values already there,
        // `inspect::check_integer_texts`; this catches those written
        // during the run).
        return Some((
            bytes(format!("IF({is_integer}, CAST({o} AS {cast}), NULL)")),
            bytes(g),
        ));
    }
    Some((bytes(format!("CAST({o} AS {cast})")), bytes(g)))
}

/// For a text or binary string made an integer: the test that its value
/// is an integer's text, which alone the native ALTER takes in a strict
/// sql_mode (assignment rounds '1.4' to 1 without a warning). A binary
/// string is read as latin1, which takes every byte (MySQL refuses REGEXP
/// on binary strings).
pub fn integer_text_test(original: &Column, ghost: &Column) -> Option<String> {
    ghost.int_width()?;
    let o = sql::ident(&original.name);
    let text = if original.is_text() {
        o
    } else if original.is_binary_string() {
        format!("CONVERT({o} USING latin1)")
    } else {
        return None;
    };
    Some(format!(
        "{text} REGEXP '^[[:space:]]*[-+]?[0-9]+[[:space:]]*$'"
    ))
}

/// The original SET's value as the bits the new list gives its members:
/// bit `i` of the original moves to the bit of the member of the same name
/// in the new list. `None` when a member has no namesake there (renamed,
/// or only equal in the collation, which this does not follow).
fn set_bits_in_new_order(original: &Column, ghost: &Column) -> Option<String> {
    let (old, new) = (original.members()?, ghost.members()?);
    let o = sql::ident(&original.name);
    let moved = old
        .iter()
        .enumerate()
        .map(|(from, member)| {
            let to = new.iter().position(|m| m == member)?;
            Some(format!("((({o} + 0) >> {from}) & 1) << {to}"))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(if moved.is_empty() {
        "0".to_string()
    } else {
        format!("({})", moved.join(" | "))
    })
}

/// The expression of one row's checksum over `parts` (each column's
/// expression, and whether its NULLs are marked). CONCAT_WS gives NULL
/// (and a warning) for a row longer than max_allowed_packet, which SUM
/// would skip: such a row is hashed column by column instead. Equal data
/// takes the same branch on both sides, its text being of equal length.
fn row_checksum(parts: &[(String, bool)]) -> String {
    if parts.is_empty() {
        return "0".to_string();
    }
    let render = |hash: bool| {
        parts
            .iter()
            .map(|(e, marked)| {
                let value = if hash {
                    format!("CRC32({e})")
                } else {
                    e.clone()
                };
                if *marked {
                    format!("ISNULL({e}), {value}")
                } else {
                    value
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    // The outer CRC32, of the inner one's decimal text, is not affine: two
    // rows of a chunk changed alike (two rows exchanging values of equal
    // length, or one lost UPDATE of both) change their inner CRCs by the
    // same mask, which a sum misses one time in 2^(bits of the mask).
    format!(
        "CRC32(COALESCE(CRC32(CONCAT_WS(0x1F, {})), CRC32(CONCAT_WS(0x1F, {}))))",
        render(false),
        render(true)
    )
}

/// True when the row checksum must mark this column's NULLs: CONCAT_WS
/// skips NULL arguments, so without a marker the rows (NULL, 'x') and
/// ('x', NULL) read alike. Not needed when neither side can be NULL: both
/// columns NOT NULL and read without conversion (a CAST may give NULL).
/// Each marker left out is a function call less per row and column.
pub fn needs_null_marker(original: &Column, ghost: &Column) -> bool {
    original.nullable || ghost.nullable || !same_definition(original, ghost)
}

fn same_definition(original: &Column, ghost: &Column) -> bool {
    // An ENUM's or SET's members as written: enum('red') and enum('RED')
    // store different labels.
    let same_type = if matches!(ghost.data_type.as_str(), "enum" | "set") {
        original.column_type == ghost.column_type
    } else {
        original
            .column_type
            .eq_ignore_ascii_case(&ghost.column_type)
    };
    same_type && original.charset == ghost.charset && original.collation == ghost.collation
}

/// Types whose values CONCAT_WS turns into one canonical text, with no
/// character set or collation of their own to mix with the others'.
fn reads_as_plain_text(data_type: &str) -> bool {
    matches!(
        data_type,
        "tinyint"
            | "smallint"
            | "mediumint"
            | "int"
            | "integer"
            | "bigint"
            | "decimal"
            | "float"
            | "double"
            | "date"
            | "datetime"
            | "timestamp"
            | "time"
            | "year"
    )
}

/// The CAST target that converts a value as assigning it to `column` does.
fn cast_target(column: &Column) -> Option<String> {
    let t = column.column_type.to_ascii_lowercase();
    let args = t
        .split_once('(')
        .map(|(_, rest)| rest.split(')').next().unwrap_or("").to_string());
    Some(match column.data_type.as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" => {
            if column.is_unsigned() {
                "UNSIGNED".into()
            } else {
                "SIGNED".into()
            }
        }
        "decimal" => format!("DECIMAL({})", args?),
        "float" => "FLOAT".into(),
        "double" => "DOUBLE".into(),
        "date" => "DATE".into(),
        "datetime" | "timestamp" => match args {
            Some(n) => format!("DATETIME({n})"),
            None => "DATETIME".into(),
        },
        "time" => match args {
            Some(n) => format!("TIME({n})"),
            None => "TIME".into(),
        },
        "binary" => format!("BINARY({})", args?),
        "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => "BINARY".into(),
        _ => return None,
    })
}

/// Where the chunks to compare come from.
enum ChunkSource {
    /// Chunks found to differ earlier.
    List(std::vec::IntoIter<Chunk>),
    /// The whole table, chunk after chunk, along the copy's walk (computed
    /// boundaries on a dense integer key).
    Table {
        lower: Option<crate::schema::KeyValue>,
        walk: KeyWalk,
        done: bool,
    },
}

/// What one comparing connection did.
struct WorkerResult {
    differing: Vec<Chunk>,
    rows: u64,
    checked: u64,
    conn: Conn,
}

/// One comparison of a chunk: row count and the sum of its row CRCs
/// (exact: the server sums integers as DECIMAL).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Digest {
    rows: u64,
    sum: String,
}

/// Compares the original and the new table of one migration.
pub struct Checksum {
    names: ShadowNames,
    key: SharedKey,
    chunker: Chunker,
    original_row: String,
    ghost_row: String,
    columns_compared: usize,
    columns_not_compared: Vec<String>,
    whole_table: bool,
    chunk_size: u64,
    threads: usize,
    mismatch_failpoint: bool,
}

impl Checksum {
    /// A checksum of `original` against the new table of `plan`, over the
    /// copied columns.
    pub fn new(
        names: &ShadowNames,
        original: &TableSchema,
        plan: &Plan,
        chunk_size: u64,
        threads: usize,
        failpoints: &Failpoints,
    ) -> Checksum {
        let (ghost, columns, key) = (&plan.ghost, &plan.columns, plan.key.clone());
        let mut original_parts = Vec::new();
        let mut ghost_parts = Vec::new();
        let mut not_compared = Vec::new();
        for pair in columns {
            let (Some(oc), Some(gc)) = (original.column(&pair.source), ghost.column(&pair.target))
            else {
                continue;
            };
            match column_exprs(oc, gc) {
                Some((o, g)) => {
                    let marked = needs_null_marker(oc, gc);
                    original_parts.push((o, marked));
                    ghost_parts.push((g, marked));
                }
                None => not_compared.push(format!(
                    "{} ({} to {})",
                    pair.source, oc.column_type, gc.column_type
                )),
            }
        }
        // Ranges on the new table select the same rows only when its key
        // compares alike and an index of the new table starts with the
        // key's columns in the same order; otherwise one chunk.
        let ordered_index = ghost.indexes.iter().any(|i| {
            i.columns.len() >= key.columns.len()
                && i.columns
                    .iter()
                    .zip(&key.columns)
                    .all(|(c, k)| c.eq_ignore_ascii_case(&k.ghost_name))
        });
        let whole_table = !(key.identity_preserved && ordered_index);
        Checksum {
            names: names.clone(),
            chunker: Chunker::new(names, key.clone()),
            key,
            original_row: row_checksum(&original_parts),
            ghost_row: row_checksum(&ghost_parts),
            columns_compared: original_parts.len(),
            columns_not_compared: not_compared,
            whole_table,
            chunk_size: chunk_size.max(1),
            threads: threads.max(1),
            mismatch_failpoint: crate::failpoint::on(failpoints.checksum_mismatch),
        }
    }

    fn table(&self) -> String {
        self.names.q(&self.names.original)
    }

    fn digest_sql(&self, side: Side, predicate: &str) -> String {
        let (from, row) = match side {
            Side::Original => (
                format!(
                    "{} FORCE INDEX ({})",
                    self.names.q(&self.names.original),
                    sql::ident(&self.key.name)
                ),
                &self.original_row,
            ),
            Side::Ghost => (self.names.q(&self.names.ghost), &self.ghost_row),
        };
        let filter = if predicate.is_empty() {
            String::new()
        } else {
            format!("WHERE {predicate}")
        };
        format!("SELECT COUNT(*), CAST(COALESCE(SUM({row}), 0) AS CHAR) FROM {from} {filter}")
    }

    async fn digest(&self, conn: &mut Conn, side: Side, chunk: &Chunk) -> Result<Digest> {
        let (predicate, params) = chunk.predicate_on(&self.key, side);
        let mut stmt = self.digest_sql(side, &predicate);
        if side == Side::Ghost && self.mismatch_failpoint {
            stmt = stmt.replacen("COUNT(*)", "COUNT(*) + 1", 1);
        }
        let row: Option<(u64, String)> = conn
            .exec_first(&stmt, params)
            .await
            .context(|| format!("checksumming a chunk of {}", self.table()))?;
        let (rows, sum) = row.unwrap_or((0, "0".into()));
        Ok(Digest { rows, sum })
    }

    /// The next chunk to compare: from the list, or the next range of the
    /// whole table read in the snapshot of `conn` (every snapshot sees the
    /// same data, so any worker may read the next boundary). The last range
    /// is open-ended, so that rows of the new table above the original's
    /// highest key are compared too.
    async fn next_chunk(&self, source: &mut ChunkSource, conn: &mut Conn) -> Result<Option<Chunk>> {
        match source {
            ChunkSource::List(chunks) => Ok(chunks.next()),
            ChunkSource::Table { done: true, .. } => Ok(None),
            ChunkSource::Table { lower, walk, done } => {
                if self.whole_table {
                    *done = true;
                    return Ok(Some(Chunk {
                        lower: None,
                        upper: None,
                    }));
                }
                let chunk = walk
                    .next_chunk(&self.chunker, conn, lower.as_ref(), self.chunk_size)
                    .await?;
                Ok(Some(match chunk {
                    Some(c) if c.upper.is_some() => {
                        *lower = c.upper.clone();
                        c
                    }
                    other => {
                        *done = true;
                        other.unwrap_or(Chunk {
                            lower: lower.clone(),
                            upper: None,
                        })
                    }
                }))
            }
        }
    }

    /// Compares `chunks` (the whole table when `None`) in the snapshots, in
    /// parallel; returns the chunks that differ and the rows compared. Each
    /// connection sleeps after each chunk for the copy's nice ratio times
    /// the chunk's time, as the copy does.
    async fn compare(
        &self,
        snapshots: Vec<Conn>,
        chunks: Option<Vec<Chunk>>,
        report: &mut ChecksumReport,
        progress: &ChecksumProgress,
        pace: &PaceControl,
    ) -> Result<(Vec<Chunk>, u64)> {
        let source = Arc::new(Mutex::new(match chunks {
            Some(c) => ChunkSource::List(c.into_iter()),
            None => ChunkSource::Table {
                lower: None,
                walk: KeyWalk::new(&self.key),
                done: false,
            },
        }));
        let results: Vec<Result<WorkerResult>> =
            futures_util::future::join_all(snapshots.into_iter().map(|mut conn| {
                let source = Arc::clone(&source);
                async move {
                    let mut differing = Vec::new();
                    let (mut rows, mut checked) = (0, 0);
                    loop {
                        let next = {
                            let mut source = source.lock().await;
                            self.next_chunk(&mut source, &mut conn).await?
                        };
                        let Some(chunk) = next else { break };
                        checked += 1;
                        let started = Instant::now();
                        let original = self.digest(&mut conn, Side::Original, &chunk).await?;
                        let ghost = self.digest(&mut conn, Side::Ghost, &chunk).await?;
                        rows += original.rows;
                        if let ChunkSource::Table { walk, .. } = &mut *source.lock().await {
                            walk.observe(&chunk, original.rows);
                        }
                        progress
                            .rows_checked
                            .fetch_add(original.rows, Ordering::Relaxed);
                        if original != ghost {
                            progress.chunks_differing.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                table = %self.table(),
                                range = %self.describe(&chunk),
                                original_rows = original.rows,
                                new_rows = ghost.rows,
                                "checksum mismatch"
                            );
                            differing.push(chunk);
                        }
                        let nice_ratio = pace.nice_ratio();
                        if nice_ratio > 0.0 {
                            // Leaves the server to the application; the
                            // snapshots stay open meanwhile.
                            tokio::time::sleep(started.elapsed().mul_f64(nice_ratio)).await;
                        }
                    }
                    Ok(WorkerResult {
                        differing,
                        rows,
                        checked,
                        conn,
                    })
                }
            }))
            .await;
        let mut differing = Vec::new();
        let mut rows = 0;
        for result in results {
            let done = result?;
            differing.extend(done.differing);
            rows += done.rows;
            report.chunks_checked += done.checked;
            let _ = done.conn.disconnect().await;
        }
        Ok((differing, rows))
    }

    /// A chunk's key range, for messages.
    fn describe(&self, chunk: &Chunk) -> String {
        let show = |k: &Option<Vec<crate::schema::KeyPart>>| match k {
            Some(parts) => format!(
                "({})",
                parts
                    .iter()
                    .map(|p| match p.to_value() {
                        Value::Bytes(b) => format!("{:?}", String::from_utf8_lossy(&b)),
                        v => v.as_sql(false),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => "open".into(),
        };
        format!(
            "{} in ({}, {}]",
            self.key.order_by(),
            show(&chunk.lower),
            show(&chunk.upper)
        )
    }
}

/// The running migration's apply loop, as the checksum needs it: paused
/// while the snapshots open (its connection drains the rest under the
/// lock), then resumed.
pub trait ApplyControl {
    /// Stops the apply loop and returns its connection.
    fn pause(&mut self) -> impl std::future::Future<Output = Result<Conn>> + Send;
    /// Restarts the apply loop on `conn`.
    fn resume(&mut self, conn: Conn);
    /// A fresh sync marker number.
    fn next_marker(&mut self) -> u64;
    /// With writers held off, applies every change committed so far on
    /// `drain` (see [`crate::feed::ChangeFeed::flush_under_lock`]).
    fn flush_under_lock(
        &self,
        drain: &mut Conn,
        marker: u64,
        wait: Duration,
        failpoints: &Failpoints,
    ) -> impl std::future::Future<Output = std::result::Result<(), LockedFlushFailure>> + Send;
}

/// What the checksum needs of the running migration: a way to open
/// consistent snapshots while the changes keep flowing.
pub struct Verification<'a> {
    /// Server.
    pub connect: &'a ConnectConfig,
    /// The checksum to run.
    pub checksum: &'a Checksum,
    /// Copies a differing chunk again, as the copy copies any chunk.
    pub copier: &'a Copier,
    /// Asks the repair to stop between statements.
    pub stop: &'a Stop,
    /// Live counters, for the status.
    pub progress: &'a ChecksumProgress,
    /// Longest time writers may be blocked while snapshots open.
    pub lock_timeout: Duration,
    /// Text that tags the tool's own statements.
    pub statement_tag: &'a str,
    /// Test-only faults.
    pub failpoints: &'a Failpoints,
    /// Times in a row a round that lost a connection is started again
    /// (`--default-retries`).
    pub retries: u32,
}

impl Verification<'_> {
    /// Runs the checksum, copying differing chunks again and checking them
    /// in a new snapshot, up to [`REPAIR_ROUNDS`] times.
    pub async fn run(&self, control: &mut impl ApplyControl) -> Result<ChecksumReport> {
        let started = Instant::now();
        let checksum = self.checksum;
        let mut report = ChecksumReport {
            columns_compared: checksum.columns_compared,
            columns_not_compared: checksum.columns_not_compared.clone(),
            whole_table: checksum.whole_table,
            ..ChecksumReport::default()
        };
        let mut pending: Option<Vec<Chunk>> = None;
        let mut round = 0;
        let mut lost = 0;
        loop {
            let mut drain = control.pause().await?;
            let snapshots = self.open_snapshots(&mut drain, control, &mut report).await;
            control.resume(drain);
            let repaired_before = pending.as_ref().map_or(0, Vec::len);
            let counted = report.chunks_checked;
            let compared = match snapshots {
                Ok(snapshots) => {
                    checksum
                        .compare(
                            snapshots,
                            pending.clone(),
                            &mut report,
                            self.progress,
                            &self.copier.pace_control(),
                        )
                        .await
                }
                Err(e) => Err(e),
            };
            // A connection lost mid-round (a server restart, a KILL): the
            // round is taken again in fresh snapshots; comparing is a read.
            let (differing, rows) = match compared {
                Err(e) if e.is_connection_lost() && lost < self.retries => {
                    lost += 1;
                    tracing::warn!(error = %e, attempt = lost, "a checksum connection was lost; comparing again in new snapshots");
                    report.chunks_checked = counted;
                    tokio::time::sleep(crate::table_lock::retry_delay(lost)).await;
                    continue;
                }
                compared => compared?,
            };
            lost = 0;
            if round == 0 {
                report.rows_checked = rows;
                report.mismatches = differing.len() as u64;
            } else {
                report.repaired += repaired_before.saturating_sub(differing.len()) as u64;
            }
            if differing.is_empty() {
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
            if checksum.whole_table {
                return Err(self.failure(
                    &differing,
                    "the key gives the new table no ranges to copy again",
                ));
            }
            if round == REPAIR_ROUNDS {
                return Err(self.failure(&differing, "they still differ after being copied again"));
            }
            let mut conn = crate::server::connect_session(self.connect).await?;
            let copied_again = Arc::new(CopyStats::default());
            for chunk in &differing {
                crate::failpoint::pause(self.failpoints.repair_delay).await;
                let mut lost = 0;
                while let Err(e) = self
                    .copier
                    .copy_again(&mut conn, chunk, &copied_again, self.stop)
                    .await
                {
                    crate::server::recover_lost(
                        e,
                        &mut lost,
                        &mut conn,
                        self.connect,
                        self.retries,
                        "checksum repair",
                    )
                    .await?;
                }
                self.progress
                    .chunks_copied_again
                    .fetch_add(1, Ordering::Relaxed);
            }
            let _ = conn.disconnect().await;
            pending = Some(differing);
            round += 1;
        }
    }

    fn failure(&self, chunks: &[Chunk], why: &str) -> Error {
        let ranges: Vec<String> = chunks
            .iter()
            .take(5)
            .map(|c| self.checksum.describe(c))
            .collect();
        Error::Checksum {
            table: self.checksum.table(),
            message: format!(
                "{} chunk(s) of the new table differ from the original ({}{}); {why}",
                chunks.len(),
                ranges.join("; "),
                if chunks.len() > 5 { "; ..." } else { "" }
            ),
        }
    }

    /// Opens `threads` snapshot connections at one moment where the new
    /// table has caught up with the original: writers are held off by a
    /// [`WriteFence`] for the drain (bounded by the lock timeout), retried when it
    /// cannot be done in time.
    async fn open_snapshots(
        &self,
        drain: &mut Conn,
        control: &mut impl ApplyControl,
        report: &mut ChecksumReport,
    ) -> Result<Vec<Conn>> {
        let mut last = String::new();
        for attempt in 1..=SNAPSHOT_ATTEMPTS {
            let mut snapshots = Vec::with_capacity(self.checksum.threads);
            for _ in 0..self.checksum.threads {
                let mut conn = crate::server::connect_session(self.connect).await?;
                conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    .await
                    .context(|| "preparing a checksum connection".to_string())?;
                snapshots.push(conn);
            }
            let fence = WriteFence::acquire(
                self.connect,
                &self.checksum.table(),
                self.lock_timeout,
                self.statement_tag,
            )
            .await?;
            let fence = match fence {
                Ok(fence) => fence,
                Err(reason) => {
                    last = reason;
                    tokio::time::sleep(crate::table_lock::retry_delay(attempt)).await;
                    continue;
                }
            };
            let locked_at = Instant::now();
            let marker = control.next_marker();
            let opened = tokio::time::timeout(
                self.lock_timeout * 2 + Duration::from_secs(1),
                self.catch_up_and_open(&*control, drain, marker, &mut snapshots),
            )
            .await;
            // The fence is idle whatever happened: its lock goes now.
            let unlocked = fence.release().await;
            report.lock_seconds += locked_at.elapsed().as_secs_f64();
            if let Err(e) = unlocked {
                return Err(Error::Sql {
                    context: format!("unlocking {} after the checksum", self.checksum.table()),
                    source: e,
                });
            }
            match opened {
                Ok(Ok(())) => return Ok(snapshots),
                Ok(Err(e @ Error::Tail { .. })) => return Err(e),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => {
                    last = "catching up under the lock took too long".into();
                    // The drain may have been cut off mid-statement.
                    *drain = crate::server::connect_session(self.connect).await?;
                }
            }
            tracing::warn!(attempt, reason = %last, "checksum snapshot not taken; retrying");
            tokio::time::sleep(crate::table_lock::retry_delay(attempt)).await;
        }
        Err(Error::Checksum {
            table: self.checksum.table(),
            message: format!(
                "no consistent snapshot could be taken in {SNAPSHOT_ATTEMPTS} attempts (the last because {last})"
            ),
        })
    }

    async fn catch_up_and_open(
        &self,
        control: &impl ApplyControl,
        drain: &mut Conn,
        marker: u64,
        snapshots: &mut [Conn],
    ) -> Result<()> {
        let wait = self.lock_timeout.max(Duration::from_secs(1));
        control
            .flush_under_lock(drain, marker, wait, self.failpoints)
            .await
            .map_err(|e| match e {
                LockedFlushFailure::TailStopped(stopped) => stopped,
                LockedFlushFailure::Collision(m) => Error::Checksum {
                    table: self.checksum.table(),
                    message: crate::feed::refused_rows_message(&m),
                },
                LockedFlushFailure::Failed(m) => Error::Checksum {
                    table: self.checksum.table(),
                    message: m,
                },
            })?;
        for conn in snapshots.iter_mut() {
            conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                .await
                .context(|| "opening a checksum snapshot".to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::col;

    fn typed(name: &str, data_type: &str, column_type: &str) -> Column {
        let mut c = col(name, data_type, None);
        c.column_type = column_type.into();
        c
    }

    #[test]
    fn unchanged_columns_compare_as_bytes() {
        let c = col("s", "varchar", Some(("utf8mb4", "utf8mb4_general_ci")));
        assert_eq!(
            column_exprs(&c, &c),
            Some(("CAST(`s` AS BINARY)".into(), "CAST(`s` AS BINARY)".into()))
        );
        let b = typed("j", "blob", "blob");
        assert_eq!(column_exprs(&b, &b).unwrap().0, "CAST(`j` AS BINARY)");
    }

    #[test]
    fn unchanged_numbers_and_dates_compare_as_their_text() {
        for (t, ct) in [
            ("int", "int(11)"),
            ("decimal", "decimal(10,2)"),
            ("datetime", "datetime(6)"),
        ] {
            let c = typed("a", t, ct);
            assert_eq!(
                column_exprs(&c, &c),
                Some(("`a`".into(), "`a`".into())),
                "{t}"
            );
        }
    }

    #[test]
    fn nulls_are_marked_unless_neither_side_can_hold_one() {
        let mut old = typed("a", "int", "int(11)");
        old.nullable = false;
        let mut new = old.clone();
        assert!(!needs_null_marker(&old, &new));
        new.nullable = true;
        assert!(needs_null_marker(&old, &new));
        assert!(needs_null_marker(&new, &old));
        // A conversion may give NULL where the column holds none.
        let mut wider = typed("a", "bigint", "bigint(20)");
        wider.nullable = false;
        assert!(needs_null_marker(&old, &wider));
    }

    #[test]
    fn converted_columns_go_through_the_new_type() {
        let old = typed("a", "int", "int(11)");
        let new = typed("a", "bigint", "bigint(20) unsigned");
        assert_eq!(
            column_exprs(&old, &new).unwrap().0,
            "CAST(CAST(`a` AS UNSIGNED) AS BINARY)"
        );
        let old = typed("d", "datetime", "datetime");
        let new = typed("d", "timestamp", "timestamp(3)");
        assert_eq!(
            column_exprs(&old, &new).unwrap().0,
            "CAST(CAST(`d` AS DATETIME(3)) AS BINARY)"
        );
        let old = col("s", "varchar", Some(("latin1", "latin1_swedish_ci")));
        let new = col("s", "char", Some(("utf8mb4", "utf8mb4_general_ci")));
        assert_eq!(
            column_exprs(&old, &new).unwrap().0,
            "CAST(RTRIM(CONVERT(`s` USING utf8mb4)) AS BINARY)"
        );
        // Only a text that is an integer is expected to arrive as one.
        let old = col("v", "varchar", Some(("utf8mb4", "utf8mb4_general_ci")));
        let new = typed("v", "int", "int(11)");
        assert_eq!(
            column_exprs(&old, &new).unwrap().0,
            "CAST(IF(`v` REGEXP '^[[:space:]]*[-+]?[0-9]+[[:space:]]*$', CAST(`v` AS SIGNED), NULL) AS BINARY)"
        );
        let old = typed("v", "varbinary", "varbinary(9)");
        let new = typed("v", "int", "int(11)");
        assert!(column_exprs(&old, &new)
            .unwrap()
            .0
            .starts_with("CAST(IF(CONVERT(`v` USING latin1) REGEXP"));
        let old = typed("b", "varbinary", "varbinary(4)");
        let new = typed("b", "binary", "binary(8)");
        assert_eq!(
            column_exprs(&old, &new).unwrap().0,
            "CAST(CAST(`b` AS BINARY(8)) AS BINARY)"
        );
    }

    #[test]
    fn a_row_too_long_to_concatenate_is_hashed_column_by_column() {
        let parts = vec![("`a`".to_string(), false), ("`b`".to_string(), true)];
        assert_eq!(
            row_checksum(&parts),
            "CRC32(COALESCE(CRC32(CONCAT_WS(0x1F, `a`, ISNULL(`b`), `b`)), \
             CRC32(CONCAT_WS(0x1F, CRC32(`a`), ISNULL(`b`), CRC32(`b`)))))"
        );
        assert_eq!(row_checksum(&[]), "0");
    }

    #[test]
    fn numbers_made_bit_enum_or_set_compare_as_numbers() {
        let mut e = col("e", "enum", Some(("utf8mb4", "utf8mb4_general_ci")));
        e.column_type = "enum('a','b')".into();
        assert_eq!(
            column_exprs(&typed("e", "tinyint", "tinyint(4)"), &e),
            Some(("CAST(`e` AS UNSIGNED)".into(), "(`e` + 0)".into()))
        );
        let bit = typed("e", "bit", "bit(8)");
        assert_eq!(
            column_exprs(&typed("e", "double", "double"), &bit),
            Some((
                "CAST(CAST(ROUND(`e`) AS SIGNED) AS UNSIGNED)".into(),
                "(`e` + 0)".into()
            ))
        );
        assert_eq!(
            column_exprs(&bit, &typed("e", "int", "int(11)")),
            Some(("(`e` + 0)".into(), "`e`".into()))
        );
        // A DECIMAL made a BIT, a BIT made a text: no faithful expression.
        assert_eq!(
            column_exprs(&typed("e", "decimal", "decimal(5,1)"), &bit),
            None
        );
        let text = col("e", "varchar", Some(("utf8mb4", "utf8mb4_general_ci")));
        assert_eq!(column_exprs(&bit, &text), None);
    }

    #[test]
    fn unchanged_timestamps_compare_as_instants() {
        let ts = typed("t", "timestamp", "timestamp(3)");
        assert_eq!(
            column_exprs(&ts, &ts),
            Some(("UNIX_TIMESTAMP(`t`)".into(), "UNIX_TIMESTAMP(`t`)".into()))
        );
    }

    #[test]
    fn floats_compare_exactly_as_doubles() {
        let f = typed("f", "float", "float");
        assert_eq!(
            column_exprs(&f, &f),
            Some(("CAST(`f` AS DOUBLE)".into(), "CAST(`f` AS DOUBLE)".into()))
        );
        let d = typed("f", "double", "double");
        assert_eq!(
            column_exprs(&d, &f),
            Some((
                "CAST(CAST(`f` AS FLOAT) AS DOUBLE)".into(),
                "CAST(`f` AS DOUBLE)".into()
            ))
        );
        // FLOAT(7,4) rounds on assignment: no faithful expression.
        assert_eq!(column_exprs(&d, &typed("f", "float", "float(7,4)")), None);
    }

    #[test]
    fn enum_labels_compare_in_the_new_collation() {
        let mut old = col("e", "enum", Some(("latin1", "latin1_swedish_ci")));
        old.column_type = "enum('ß')".into();
        let mut new = col("e", "enum", Some(("utf8mb4", "utf8mb4_general_ci")));
        new.column_type = "enum('SS')".into();
        assert_eq!(
            column_exprs(&old, &new),
            Some((
                "WEIGHT_STRING(CONVERT(RTRIM(`e`) USING utf8mb4) COLLATE utf8mb4_general_ci)"
                    .into(),
                "WEIGHT_STRING(CONVERT(`e` USING utf8mb4) COLLATE utf8mb4_general_ci)".into()
            ))
        );
    }

    #[test]
    fn bits_compare_as_numbers_and_changed_sets_are_left_out() {
        let old = typed("b", "bit", "bit(8)");
        let new = typed("b", "bit", "bit(16)");
        assert_eq!(
            column_exprs(&old, &new),
            Some(("(`b` + 0)".into(), "(`b` + 0)".into()))
        );
        let mut old = col("s", "set", Some(("utf8mb4", "utf8mb4_general_ci")));
        old.column_type = "set('a','b')".into();
        let mut new = old.clone();
        new.column_type = "set('b','c','a')".into();
        assert_eq!(
            column_exprs(&old, &new),
            Some((
                "((((`s` + 0) >> 0) & 1) << 2 | (((`s` + 0) >> 1) & 1) << 0)".into(),
                "(`s` + 0)".into()
            ))
        );
        // A member renamed has no namesake: left out.
        new.column_type = "set('A','b')".into();
        assert_eq!(column_exprs(&old, &new), None);
        // A text made a SET comes out in the list's order: left out.
        let text = col("s", "varchar", Some(("utf8mb4", "utf8mb4_general_ci")));
        assert_eq!(column_exprs(&text, &new), None);
    }
}
