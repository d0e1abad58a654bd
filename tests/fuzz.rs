//! The differential fuzzer: the oracle is the server's own `ALTER TABLE`.
//!
//! From a seed (generators in `tests/common/fuzz.rs`): a table `t` and a
//! control table with the same DDL and seed rows, an ALTER, and a mirrored
//! write load (every change to `t` and to `control` in one transaction, in
//! random session time zones). shadowcut migrates `t` under the load; when
//! the load has stopped, `control` gets the same ALTER natively in a fresh
//! session that inherits the server's time zone and sql_mode. Outcomes:
//!
//! - both succeed and the tables are equal (columns, indexes, SHOW CREATE,
//!   rows; and the replica's `t` equals the primary's, when there is a
//!   replica): PASS;
//! - both succeed and differ, or only shadowcut succeeds: DEFECT;
//! - shadowcut fails: the original must be intact (equal to the control
//!   before its ALTER) with no tool table left, else DEFECT; then if the
//!   native ALTER fails too: BOTH-REFUSED; if it succeeds: REFUSED (a
//!   refusal, exit code 3: counted, acceptable) or SUSPECT (any other
//!   failure: listed, not fatal), unless the native ALTER fails on a copy
//!   of the seed rows that no load touched (`seeded`): the load had removed
//!   what stopped shadowcut before the control was altered, so BOTH-REFUSED;
//!   or unless the native ALTER with ALGORITHM=COPY fails on the intact
//!   original: the server's own copy refuses the rows (an instant ADD
//!   COLUMN checks no existing row), so BOTH-REFUSED.
//!
//! When the ALTER leaves every column the load writes as it is, the load runs
//! straight through the cut-over; otherwise (and sometimes anyway) it stops
//! before the swap, with the cut-over postponed until then. A load that runs
//! through writes no zero dates (seed rows may hold them): one written to
//! the new table after the swap would fail the control's native ALTER at
//! the end where the migration rightly succeeded (seed 11410).
//!
//! `fuzz_fixed_seeds` runs in `scripts/test`; `scripts/fuzz` runs
//! `fuzz_seeds_from_env` with `SHADOWCUT_FUZZ_SEEDS=1,2,3` or
//! `SHADOWCUT_FUZZ_FROM=S SHADOWCUT_FUZZ_COUNT=N` (optionally
//! `SHADOWCUT_FUZZ_MAX_SECONDS`), which fails if any DEFECT was found.
//! `SHADOWCUT_FUZZ_ALTER` replaces the generated ALTER of every seed run
//! (to shrink a failing case by hand).
//! Seeds are stable only as long as the generators are: a generator change
//! gives every seed a new case.

mod common;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fuzz::{q, Case};
use common::*;
use mysql_async::prelude::*;
use mysql_async::{Conn, Value};
use shadowcut::server::ConnectConfig;

/// Seeds of `fuzz_fixed_seeds`, which pass today: a spread of key shapes,
/// ALTER kinds and both load modes (valid for the generators of this
/// version; a generator change gives them other cases: pick again).
const FIXED_SEEDS: &[u64] = &[
    1048, // PK (TINYINT UNSIGNED, BINARY(16), TIMESTAMP(3)); AUTO_INCREMENT=, ROW_FORMAT=, add and drop columns; load through the cut-over
    1063, // INT AUTO_INCREMENT PK; TINYTEXT latin1 change and PARTITION BY KEY; through, no inserts
    1025, // UNIQUE NOT NULL (TIME(3), INT) without PK; drop it, add it as the PK
    1054, // unique NOT NULL INT; CONVERT TO utf8mb4_unicode_520_ci; through, no inserts
    1112, // PK (VARBINARY(32), INT); ADD COLUMN JSON NOT NULL FIRST; through the cut-over
    1101, // PK (CHAR latin1_swedish_ci, BINARY(4)); drop, index and add DATETIME(2) columns; edge values
    119, // PK (CHAR latin1 nopad, DECIMAL, VARCHAR utf8mb4_turkish_ci); rename a key column and extend the PK
    2334, // partitioned SMALLINT UNSIGNED PK widened to BIGINT UNSIGNED and moved
    2327, // partitioned PK (VARCHAR utf8mb3_bin, DATE, BINARY(8)); ADD BIT(64) FIRST, DROP COLUMN
];

/// Longest a migration may take before it counts as hung: past the 30 s
/// the applier waits for rows that keep colliding on a new unique key
/// before it fails the run (seed 9567 took 36 s to end that way, and was
/// counted hung at 20 s).
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(45);

/// What a seed's run came to, from good to bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Both succeeded with equal results.
    Pass,
    /// Both failed.
    BothRefused,
    /// shadowcut refused (exit code 3), the native ALTER succeeded.
    Refused,
    /// shadowcut failed otherwise, the native ALTER succeeded.
    Suspect,
    /// A wrong result, a lost original, or success where the server fails.
    Defect,
    /// The fuzzer itself failed (setup, a writer's connection).
    Harness,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::Pass,
        Outcome::BothRefused,
        Outcome::Refused,
        Outcome::Suspect,
        Outcome::Defect,
        Outcome::Harness,
    ];

    fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::BothRefused => "BOTH-REFUSED",
            Outcome::Refused => "REFUSED (native ok)",
            Outcome::Suspect => "SUSPECT (native ok)",
            Outcome::Defect => "DEFECT",
            Outcome::Harness => "HARNESS",
        }
    }
}

/// One seed's result.
struct Report {
    seed: u64,
    outcome: Outcome,
    /// The first line of what went wrong (empty on PASS).
    headline: String,
}

/// The writers' counters.
#[derive(Default)]
struct Load {
    stats: LoadStats,
    /// Transactions rolled back on an error other than a deadlock/lock wait
    /// (e.g. a duplicate key, or a value the new table refuses).
    rejected: AtomicU64,
    /// Errors that were not the server's (connection lost...).
    broken: Mutex<Vec<String>>,
}

/// Starts one writer per time zone of the case, on `t` and `control`.
fn start_load(
    config: &ConnectConfig,
    db: &str,
    case: &Case,
    stop: Arc<AtomicBool>,
) -> (Arc<Load>, Vec<tokio::task::JoinHandle<()>>) {
    let load = Arc::new(Load::default());
    let handles = case
        .time_zones
        .iter()
        .enumerate()
        .map(|(w, tz)| {
            let (config, db, stop, load) = (config.clone(), db.to_string(), stop.clone(), load.clone());
            let workload = case.workload.clone();
            let mut rng = case.writer_rng(w as u64);
            let mut swap_rng = case.swap_rng(w as u64);
            let tz = if tz.is_empty() {
                "@@global.time_zone".to_string()
            } else {
                format!("'{tz}'")
            };
            tokio::spawn(async move {
                let mut conn = client(&config).await;
                conn.query_drop(format!(
                    "USE {}; SET SESSION innodb_lock_wait_timeout = 5, lock_wait_timeout = 30, time_zone = {tz}",
                    q(&db)
                ))
                .await
                .unwrap();
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(90) {
                    let mut stmts = workload.transaction(&mut rng);
                    workload.add_swap(&mut swap_rng, &mut stmts);
                    for _ in 0..5 {
                        match run_mirrored(&mut conn, &stmts, "t", "control", &load.stats).await {
                            Ok(()) => {
                                load.stats.transactions.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(mysql_async::Error::Server(e)) => {
                                let _ = conn.query_drop("ROLLBACK").await;
                                if e.code == 1213 || e.code == 1205 {
                                    load.stats.retries.fetch_add(1, Ordering::Relaxed);
                                    continue;
                                }
                                load.rejected.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(e) => {
                                load.broken.lock().unwrap().push(e.to_string());
                                return;
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2 + rng.below(5))).await;
                }
            })
        })
        .collect();
    (load, handles)
}

/// The tables every case starts with: the one shadowcut migrates, the
/// control the load mirrors, and a copy of the seed rows that nothing
/// writes to (what the copy found at its start, for [`classify`]).
const CASE_TABLES: [&str; 3] = ["t", "control", "seeded"];

/// Creates `t`, `control` and `seeded` and fills them with the same seed
/// rows.
async fn set_up(conn: &mut Conn, db: &str, case: &Case) -> Result<(), String> {
    let ddl = case.table.create_sql();
    for table in CASE_TABLES {
        conn.query_drop(ddl.replace("{T}", &format!("{}.{}", q(db), q(table))))
            .await
            .map_err(|e| format!("CREATE: {e}"))?;
    }
    let tz = case.time_zones[0];
    let tz = if tz.is_empty() {
        "@@global.time_zone".to_string()
    } else {
        format!("'{tz}'")
    };
    conn.query_drop(format!("USE {}; SET time_zone = {tz}", q(db)))
        .await
        .map_err(|e| e.to_string())?;
    let mut rng = case.seed_rng();
    for (sql, params) in case.workload.seed_statements(&mut rng, case.rows) {
        for table in CASE_TABLES {
            conn.exec_drop(sql.replace("{T}", &q(table)), params.clone())
                .await
                .map_err(|e| format!("seed rows: {e}"))?;
        }
    }
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .map_err(|e| e.to_string())?;
    let n: Option<u64> = conn
        .query_first("SELECT COUNT(*) FROM `t`")
        .await
        .map_err(|e| e.to_string())?;
    if n == Some(0) {
        return Err("no seed row went in".into());
    }
    Ok(())
}

/// A value for a message: SQL literal, cut short.
fn show(v: &Value) -> String {
    let s = v.as_sql(false);
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

fn show_row(row: &[Value]) -> String {
    format!("({})", row.iter().map(show).collect::<Vec<_>>().join(", "))
}

/// A row's bytes, for a deterministic order whatever the collations.
fn sort_key(row: &[Value]) -> Vec<Option<Vec<u8>>> {
    row.iter()
        .map(|v| match v {
            Value::NULL => None,
            Value::Bytes(b) => Some(b.clone()),
            other => Some(other.as_sql(false).into_bytes()),
        })
        .collect()
}

/// Rows only in `left` and only in `right`, as multisets.
fn row_difference(mut left: Vec<Vec<Value>>, mut right: Vec<Vec<Value>>) -> Option<String> {
    left.sort_by_cached_key(|r| sort_key(r));
    right.sort_by_cached_key(|r| sort_key(r));
    let (mut i, mut j) = (0, 0);
    let (mut only_left, mut only_right) = (vec![], vec![]);
    while i < left.len() || j < right.len() {
        let order = match (left.get(i), right.get(j)) {
            (Some(l), Some(r)) => sort_key(l).cmp(&sort_key(r)),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                only_left.push(&left[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                only_right.push(&right[j]);
                j += 1;
            }
        }
    }
    if only_left.is_empty() && only_right.is_empty() {
        return None;
    }
    let mut s = format!(
        "rows differ: t {} rows, control {}; {} only in t, {} only in control",
        left.len(),
        right.len(),
        only_left.len(),
        only_right.len()
    );
    for r in only_left.iter().take(3) {
        write!(s, "\n      t only:       {}", show_row(r)).unwrap();
    }
    for r in only_right.iter().take(3) {
        write!(s, "\n      control only: {}", show_row(r)).unwrap();
    }
    Some(s)
}

/// Lines describing a table's definition, comparable between tables.
async fn definition(conn: &mut Conn, db: &str, table: &str) -> Vec<String> {
    let columns: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, CHARACTER_SET_NAME, \
             COLLATION_NAME, EXTRA, GENERATION_EXPRESSION, COLUMN_KEY \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .unwrap();
    let indexes: Vec<mysql_async::Row> = conn
        .exec(
            "SELECT INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, SUB_PART, INDEX_TYPE, COLLATION \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (db, table),
        )
        .await
        .unwrap();
    let line = |prefix: &str, row: mysql_async::Row| {
        let values: Vec<String> = row.unwrap().iter().map(show).collect();
        format!("{prefix} {}", values.join(" | "))
    };
    let mut lines: Vec<String> = columns.into_iter().map(|r| line("column", r)).collect();
    lines.extend(indexes.into_iter().map(|r| line("index", r)));
    let create: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE TABLE {}.{}", q(db), q(table)))
        .await
        .unwrap();
    let create = create.map(|c| c.1).unwrap_or_default();
    for (n, l) in create.lines().enumerate() {
        if n == 0 {
            continue; // CREATE TABLE `name` (
        }
        lines.push(format!("create {}", normalize_options(l)));
    }
    lines
}

/// A SHOW CREATE line without AUTO_INCREMENT=n and COMMENT='...' table
/// options (not compared).
fn normalize_options(line: &str) -> String {
    if !line.starts_with(')') {
        return line.to_string();
    }
    let mut out = String::new();
    let mut rest = line;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(" AUTO_INCREMENT=") {
            rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
        } else if let Some(r) = rest.strip_prefix(" COMMENT='") {
            // Up to the closing quote ('' is an escaped quote).
            let b = r.as_bytes();
            let mut k = 0;
            while k < b.len() {
                if b[k] == b'\'' {
                    if b.get(k + 1) == Some(&b'\'') {
                        k += 2;
                        continue;
                    }
                    break;
                }
                k += 1;
            }
            rest = &r[(k + 1).min(r.len())..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The first difference between `t` and `control`: definition, then rows.
async fn difference(conn: &mut Conn, db: &str) -> Option<String> {
    let (dt, dc) = (
        definition(conn, db, "t").await,
        definition(conn, db, "control").await,
    );
    if dt != dc {
        for k in 0..dt.len().max(dc.len()) {
            let (a, b) = (dt.get(k), dc.get(k));
            if a != b {
                return Some(format!(
                    "definitions differ:\n      t:       {}\n      control: {}",
                    a.map_or("(none)", |s| s.as_str()),
                    b.map_or("(none)", |s| s.as_str())
                ));
            }
        }
    }
    let cols = column_names(conn, db, "control").await;
    let left = rows(conn, db, "t", &cols, "1").await;
    let right = rows(conn, db, "control", &cols, "1").await;
    row_difference(left, right).map(|d| format!("{d}\n      columns: {cols}"))
}

/// Every column of a table (invisible ones too), quoted, comma-separated.
async fn column_names(conn: &mut Conn, db: &str, table: &str) -> String {
    let names: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .unwrap();
    names.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ")
}

/// The tool's tables left in the database.
async fn leftovers(conn: &mut Conn, db: &str) -> Vec<String> {
    tables(conn, db)
        .await
        .into_iter()
        .filter(|t| !CASE_TABLES.contains(&t.as_str()))
        .collect()
}

async fn next_auto_increment(conn: &mut Conn, db: &str, table: &str) -> Option<u64> {
    conn.exec_first(
        "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (db, table),
    )
    .await
    .unwrap()
    .flatten()
}

/// Generates the seed's case and sets it up in a fresh database: the first
/// case the server accepts (CREATE and seed rows), regenerated from a
/// sub-seed otherwise. Returns the case and the database, or the reason
/// none was accepted.
async fn accepted_case(conn: &mut Conn, seed: u64) -> Result<(Case, String), String> {
    let mut last = String::new();
    for attempt in 0..25 {
        let mut case = Case::generate(seed, attempt);
        if let Ok(alter) = std::env::var("SHADOWCUT_FUZZ_ALTER") {
            override_alter(&mut case, &alter);
        }
        let db = fresh_database(conn, &format!("fuzz{seed}")).await;
        match set_up(conn, &db, &case).await {
            Ok(()) => return Ok((case, db)),
            Err(e) => {
                conn.query_drop(format!("DROP DATABASE {}", q(&db)))
                    .await
                    .unwrap();
                if std::env::var_os("SHADOWCUT_FUZZ_VERBOSE").is_some() {
                    println!(
                        "seed {seed}: attempt {attempt} rejected: {e}\n  {}",
                        case.table.create_sql()
                    );
                }
                last = e;
            }
        }
    }
    Err(format!("no case accepted in 25 attempts; last: {last}"))
}

/// How a migration under the load ended: its result (Err: it hung or
/// panicked) and whether it only ended on the fuzzer's stop request.
struct Migrated {
    result: Result<shadowcut::Result<shadowcut::Summary>, String>,
    hung: bool,
}

/// Runs shadowcut on the case while the load runs, and stops the load:
/// right before the swap (the cut-over postponed until then), or shortly
/// after shadowcut returns when the load runs through the cut-over.
async fn migrate_under_load(
    conn: &mut Conn,
    db: &str,
    case: &Case,
    writers: Vec<tokio::task::JoinHandle<()>>,
    stop: &AtomicBool,
) -> Migrated {
    let mut migration = config_for(db, case);
    let flag = std::env::temp_dir().join(format!("{db}.postpone"));
    if !case.through {
        std::fs::write(&flag, b"").unwrap();
        migration.postpone_cut_over_flag_file = Some(flag.clone());
    }
    let stop_migration = migration.stop.clone();
    let handle = tokio::spawn(async move { shadowcut::run(&migration).await });
    let deadline = Instant::now() + MIGRATION_TIMEOUT;
    let mut hung = false;
    while !handle.is_finished() {
        if Instant::now() > deadline {
            // Ask the tool to stop cleanly (it must restore everything).
            hung = true;
            stop_migration.raise("the fuzzer's timeout");
            break;
        }
        if !case.through
            && !stop.load(Ordering::Relaxed)
            && changelog_value(conn, db, "t", "state:copy-watermark")
                .await
                .as_deref()
                == Some("\"complete\"")
        {
            // Copied: let the tail apply the load a little longer, then stop
            // the load and release the cut-over.
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.store(true, Ordering::Relaxed);
            for w in writers.iter() {
                while !w.is_finished() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            let _ = std::fs::remove_file(&flag);
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let _ = std::fs::remove_file(&flag);
    let result = match tokio::time::timeout(Duration::from_secs(60), handle).await {
        // A stop request that interrupted it: a hang. Any other end (an
        // error it was retrying towards, or success) is judged as usual.
        Ok(Ok(Err(
            e @ (shadowcut::Error::Interrupted { .. } | shadowcut::Error::Suspended { .. }),
        ))) if hung => Err(format!(
            "shadowcut hung: no end within {} s ({e})",
            MIGRATION_TIMEOUT.as_secs()
        )),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(format!("shadowcut panicked: {e}")),
        Err(_) => Err("shadowcut did not stop within 60 s of a stop request".to_string()),
    };
    if case.through {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("a writer panicked");
    }
    Migrated { result, hung }
}

/// Runs one seed; prints its line (and details when it is not a pass).
async fn run_seed(seed: u64) -> Report {
    let started = Instant::now();
    let config = primary();
    let mut conn = client(&config).await;
    let (case, db) = match accepted_case(&mut conn, seed).await {
        Ok(c) => c,
        Err(e) => {
            println!("seed {seed}: HARNESS: {e}");
            return Report {
                seed,
                outcome: Outcome::Harness,
                headline: e,
            };
        }
    };
    conn.query_drop(format!("ANALYZE TABLE {}.`t`", q(&db)))
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (load, writers) = start_load(&config, &db, &case, stop.clone());
    let rotator = case.rotate.then(|| {
        let (config, stop) = (config.clone(), stop.clone());
        tokio::spawn(async move {
            let mut conn = client(&config).await;
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(400)).await;
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
            }
        })
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let migrated = migrate_under_load(&mut conn, &db, &case, writers, &stop).await;
    if let Some(r) = rotator {
        r.await.expect("the binlog rotator panicked");
    }

    let generations = match &migrated.result {
        Ok(Ok(summary)) => summary.parallel_apply_generations,
        _ => 0,
    };
    let (outcome, headline, mut detail) =
        classify(&config, &mut conn, &db, &case, migrated.result, &load).await;
    if migrated.hung && outcome != Outcome::Defect {
        detail.push(format!(
            "slow: still running after {} s, it ended on the fuzzer's stop request",
            MIGRATION_TIMEOUT.as_secs()
        ));
    }
    print_case(seed, &case, outcome, started.elapsed(), &load, generations);
    if outcome != Outcome::Pass {
        println!("  {headline}");
        for d in &detail {
            println!("  {d}");
        }
        println!(
            "  CREATE: {}",
            case.table
                .create_sql()
                .replace('\n', " ")
                .replace("{T}", "t")
        );
        println!("  ALTER TABLE t {}", case.alter.sql);
    }
    if matches!(
        outcome,
        Outcome::Defect | Outcome::Suspect | Outcome::Harness
    ) {
        println!("  database kept: {db}");
        println!("  repro: scripts/fuzz --seed {seed}");
    } else {
        conn.query_drop(format!("DROP DATABASE {}", q(&db)))
            .await
            .unwrap();
    }
    Report {
        seed,
        outcome,
        headline,
    }
}

/// The seed's one line: outcome, duration, table, ALTER, load, and the
/// generations the applier ran in parallel.
fn print_case(
    seed: u64,
    case: &Case,
    outcome: Outcome,
    took: Duration,
    load: &Load,
    generations: u64,
) {
    let alter: String = if case.alter.sql.chars().count() > 160 {
        format!("{}…", case.alter.sql.chars().take(160).collect::<String>())
    } else {
        case.alter.sql.clone()
    };
    println!(
        "seed {seed}: {} [{:.1}s] {} | ALTER {alter} | {}, tz {:?}, {} rows{}, chunk {}{}{}, load {} txns ({} rejected){}{}",
        outcome.label(),
        took.as_secs_f64(),
        case.table.summary(),
        match (case.through, case.workload.inserts) {
            (true, true) => "through the cut-over",
            (true, false) => "through the cut-over (no inserts)",
            (false, _) => "stopped before the swap",
        },
        case.time_zones,
        case.rows,
        match (case.valid, case.zero_dates) {
            (true, _) => "",
            (false, false) => " (edge values)",
            (false, true) => " (edge values, zero dates)",
        },
        case.chunk_size,
        case
            .apply_batch_keys
            .map_or(String::new(), |n| format!(", apply batches of {n}")),
        if case.workload.swaps.is_empty() {
            ""
        } else {
            ", rows swap values"
        },
        load.stats.transactions.load(Ordering::Relaxed),
        load.rejected.load(Ordering::Relaxed),
        if case.attempt > 0 {
            format!(", regenerated {}x", case.attempt)
        } else {
            String::new()
        },
        if generations > 0 {
            format!(", {generations} parallel apply generations")
        } else {
            String::new()
        },
    );
}

/// Replaces the case's ALTER (to shrink a failing case by hand): the load
/// then writes every column and stops before the swap.
fn override_alter(case: &mut Case, alter: &str) {
    case.alter.sql = alter.to_string();
    case.alter.sets_auto_increment = alter.to_ascii_uppercase().contains("AUTO_INCREMENT");
    case.through = false;
    case.workload.writable = case.workload.seeded.clone();
    case.workload.rich = true;
    case.workload.inserts = true;
}

/// shadowcut's configuration for the case.
fn config_for(db: &str, case: &Case) -> shadowcut::Config {
    let mut c = config(db, "t", &case.alter.sql);
    c.chunk_size = case.chunk_size;
    c.failpoints.apply_batch_keys = case.apply_batch_keys;
    c.ok_to_drop_table = true;
    c
}

/// Decides the outcome once the load has stopped: (outcome, headline,
/// detail lines).
async fn classify(
    config: &ConnectConfig,
    conn: &mut Conn,
    db: &str,
    case: &Case,
    result: Result<shadowcut::Result<shadowcut::Summary>, String>,
    load: &Load,
) -> (Outcome, String, Vec<String>) {
    let broken = load.broken.lock().unwrap().clone();
    if !broken.is_empty() {
        return (
            Outcome::Harness,
            format!("a writer failed: {}", broken[0]),
            vec![],
        );
    }
    let native_alter = format!("ALTER TABLE {}.`control` {}", q(db), case.alter.sql);
    let migrated = match result {
        Err(hung) => return (Outcome::Defect, hung, vec![]),
        Ok(r) => r,
    };
    match migrated {
        Ok(summary) => {
            let mut detail = vec![format!(
                "shadowcut: copied {} rows, {} binlog rows, {} keys applied, shared key {}",
                summary.rows_copied,
                summary.binlog_rows,
                summary.keys_applied,
                summary.plan.shared_key
            )];
            let left = leftovers(conn, db).await;
            if !left.is_empty() {
                return (
                    Outcome::Defect,
                    format!("shadowcut succeeded but left tables behind: {left:?}"),
                    detail,
                );
            }
            let mut native = native_session(config).await;
            if let Err(e) = native.query_drop(&native_alter).await {
                return (
                    Outcome::Defect,
                    format!("the native ALTER failed but shadowcut succeeded: {e}"),
                    detail,
                );
            }
            if let Some(d) = difference(conn, db).await {
                let headline = d.lines().next().unwrap_or_default().to_string();
                detail.extend(d.lines().skip(1).map(|l| l.trim().to_string()));
                return (Outcome::Defect, headline, detail);
            }
            if let Some(replica_config) = replica() {
                let mut replica = client(&replica_config).await;
                wait_for_replica(conn, &mut replica).await;
                let names = column_names(conn, db, "t").await;
                let on_replica = rows(&mut replica, db, "t", &names, "1").await;
                let on_primary = rows(conn, db, "t", &names, "1").await;
                if let Some(d) = row_difference(on_replica, on_primary) {
                    return (
                        Outcome::Defect,
                        format!(
                            "replica differs from the primary: {}",
                            d.lines().next().unwrap_or_default()
                        ),
                        detail,
                    );
                }
            }
            if case.alter.sets_auto_increment {
                let (t, c) = (
                    next_auto_increment(conn, db, "t").await,
                    next_auto_increment(conn, db, "control").await,
                );
                if t < c {
                    return (
                        Outcome::Defect,
                        format!(
                            "next AUTO_INCREMENT of t is {t:?}, below the native ALTER's {c:?}"
                        ),
                        detail,
                    );
                }
            }
            (Outcome::Pass, String::new(), vec![])
        }
        Err(e) => {
            let refusal = e.exit_code() == shadowcut::ExitCode::Refused;
            let text = format!("shadowcut: {e}");
            let left = leftovers(conn, db).await;
            if !left.is_empty() {
                return (
                    Outcome::Defect,
                    format!("shadowcut failed and left tables behind: {left:?}"),
                    vec![text],
                );
            }
            if let Some(d) = difference(conn, db).await {
                let mut detail = vec![text];
                detail.extend(d.lines().map(|l| l.trim().to_string()));
                return (
                    Outcome::Defect,
                    "shadowcut failed and the original is not intact (differs from the control)"
                        .into(),
                    detail,
                );
            }
            let mut native = native_session(config).await;
            // The load may have removed the rows that stopped the copy
            // before the control is altered: the native ALTER then gets a
            // second chance on the seed rows the copy started from.
            let native_at_start = format!("ALTER TABLE {}.`seeded` {}", q(db), case.alter.sql);
            match native.query_drop(&native_alter).await {
                Err(n) => (
                    Outcome::BothRefused,
                    format!("both refused; native: {n}"),
                    vec![text],
                ),
                Ok(()) if !refusal && native.query_drop(&native_at_start).await.is_err() => (
                    Outcome::BothRefused,
                    "shadowcut failed; the native ALTER fails on the seed rows the copy started from \
                     (the load changed them before the control was altered)"
                        .into(),
                    vec![text],
                ),
                // shadowcut copies rows; a native ALTER that did not (an
                // instant ADD COLUMN checks no existing row against a CHECK
                // constraint) is no oracle for a copy. The intact original
                // gets the native copy (changed only if it succeeds).
                Ok(()) if !refusal => match native_copy_refusal(&mut native, db, &case.alter.sql).await {
                    Some(n) => (
                        Outcome::BothRefused,
                        format!(
                            "shadowcut failed; the native ALTER succeeds only without copying: \
                             with ALGORITHM=COPY it fails too ({n})"
                        ),
                        vec![text],
                    ),
                    None => (
                        Outcome::Suspect,
                        "shadowcut failed, the native ALTER succeeded".into(),
                        vec![text],
                    ),
                },
                Ok(()) => (
                    Outcome::Refused,
                    "shadowcut refused, the native ALTER succeeded".into(),
                    vec![text],
                ),
            }
        }
    }
}

/// The error of the native `ALTER TABLE t <alter>, ALGORITHM=COPY` when the
/// server refuses it for the rows (not for its syntax, nor because the
/// change cannot be copied).
async fn native_copy_refusal(native: &mut Conn, db: &str, alter: &str) -> Option<String> {
    const NOT_ABOUT_ROWS: [u16; 3] = [1064, 1845, 1846];
    let copy = format!("ALTER TABLE {}.`t` {alter}, ALGORITHM=COPY", q(db));
    match native.query_drop(&copy).await {
        Err(mysql_async::Error::Server(e)) if !NOT_ABOUT_ROWS.contains(&e.code) => {
            Some(e.to_string())
        }
        _ => None,
    }
}

/// Runs `seeds` one after the other (until `budget` is spent) and prints the
/// summary; returns the reports.
async fn run_seeds(seeds: Vec<u64>, budget: Option<Duration>) -> Vec<Report> {
    let started = Instant::now();
    let mut reports = vec![];
    println!();
    for seed in seeds {
        if budget.is_some_and(|b| started.elapsed() > b) {
            println!("time budget spent: stopping before seed {seed}");
            break;
        }
        reports.push(run_seed(seed).await);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "\n==== fuzz summary: {} seeds in {elapsed:.0} s ({:.1} s/seed) ====",
        reports.len(),
        elapsed / reports.len().max(1) as f64
    );
    for o in Outcome::ALL {
        let seeds: Vec<u64> = reports
            .iter()
            .filter(|r| r.outcome == o)
            .map(|r| r.seed)
            .collect();
        println!("{:>20}: {}", o.label(), seeds.len());
    }
    for o in [
        Outcome::Defect,
        Outcome::Harness,
        Outcome::Suspect,
        Outcome::Refused,
    ] {
        let hits: Vec<&Report> = reports.iter().filter(|r| r.outcome == o).collect();
        if !hits.is_empty() {
            println!("{}:", o.label());
            for r in hits {
                println!(
                    "  seed {}: {}  (scripts/fuzz --seed {})",
                    r.seed, r.headline, r.seed
                );
            }
        }
    }
    reports
}

fn assert_no_defect(reports: &[Report]) {
    let bad: Vec<u64> = reports
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Defect | Outcome::Harness))
        .map(|r| r.seed)
        .collect();
    assert!(
        bad.is_empty(),
        "defects found with seeds {bad:?} (details above)"
    );
}

/// A handful of seeds that pass, in `scripts/test`: each must still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fuzz_fixed_seeds() {
    let reports = run_seeds(FIXED_SEEDS.to_vec(), None).await;
    assert_no_defect(&reports);
    // They passed when picked: anything else is a regression (or a new
    // refusal by design: then pick a seed that passes instead).
    let other: Vec<String> = reports
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| format!("seed {}: {}", r.seed, r.outcome.label()))
        .collect();
    assert!(
        other.is_empty(),
        "fixed seeds that no longer pass: {other:?}"
    );
}

/// What a regression seed must come to once its defect is fixed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fixed {
    /// The migration succeeds with the native ALTER's result.
    Pass,
    /// Or shadowcut refuses it up front (exit code 3), nothing touched.
    PassOrRefusal,
    /// The native ALTER fails on this data: shadowcut must fail too.
    BothRefuse,
    /// Both succeed with equal results, or both fail: the data the case
    /// was about may be changed by the load before the end.
    Agree,
}

/// Seeds that found a defect (one per class, from `scripts/fuzz --seeds 900
/// --from 2000`, a rerun of its failures on main and `--from 5000` on
/// main), with what they found.
/// They need the server of `scripts/fuzz` (time zone +05:30, NO_ZERO_DATE)
/// and this version of the generators: run them with
/// `scripts/fuzz --regressions`.
const REGRESSION_SEEDS: &[(u64, Fixed, &str)] = &[
    (2181, Fixed::Pass, "ENUM key (no COLLATE): changes applied from the binlog are lost"),
    (2213, Fixed::Pass, "composite key with an ENUM column: the copy never ends"),
    (2262, Fixed::Pass, "YEAR -> VARCHAR(4), non-key: the checksum sees a difference, the run stops"),
    (2135, Fixed::Pass, "signed MEDIUMINT key: changes to rows with negative keys are lost"),
    (2446, Fixed::Pass, "shared key on a TIMESTAMP(6) holding zero dates: its changes are not found again"),
    (2098, Fixed::Pass, "TIMESTAMP DEFAULT literal of the ALTER read in UTC, not the server's time zone"),
    (2882, Fixed::PassOrRefusal, "DATE -> TIMESTAMP key converted in UTC, not the server's time zone"),
    (2794, Fixed::PassOrRefusal, "TIMESTAMP -> DATETIME key converted in UTC, not the server's time zone"),
    // Since the load stopped writing zero dates through the cut-over (seed
    // 11410), the seed rows' zero dates may be overwritten before the end.
    (2190, Fixed::Agree, "global NO_ZERO_DATE ignored: the server refuses zero dates, shadowcut copies them"),
    (2048, Fixed::Pass, "AUTO_INCREMENT = N of the ALTER lost"),
    (2034, Fixed::Pass, "ALTER COLUMN ... SET DEFAULT first in the ALTER: refused as 'starts with ALTER'"),
    (2077, Fixed::Pass, "primary key reordered: refused"),
    (2015, Fixed::Pass, "ADD COLUMN ... NOT NULL without DEFAULT: fails, the server uses the implicit default"),
    (5164, Fixed::PassOrRefusal, "ADD COLUMN ... POINT NOT NULL without DEFAULT: fails, the server adds it"),
    (5320, Fixed::Pass, "non-key ENUM latin1 -> utf8mb4 with 'Ñu', 'ß': the checksum sees a difference, the run stops"),
    (2466, Fixed::PassOrRefusal, "shared key BINARY(4) -> BINARY(8): changes collide, stall, fail"),
    (2700, Fixed::Pass, "DATETIME -> DATE: the server's Note 1265 taken for data loss"),
    (2491, Fixed::Pass, "CONVERT TO another collation of a key column: 'Illegal mix of collations' in the unique-conflict check (only when the copy meets a conflict)"),
    (9636, Fixed::BothRefuse, "ADD COLUMN ... DATETIME NOT NULL without DEFAULT under NO_ZERO_DATE: the native ALTER fails, shadowcut stored zero dates"),
    (11335, Fixed::Pass, "AUTO_INCREMENT column left leading only a plain index: taking the index off until the copy is done fails (1075)"),
    (43016, Fixed::BothRefuse, "a value the new column refuses, under a load through the cut-over: the copy's catch-up waited behind the applier's refused row, a stop request unheard"),
    (47110, Fixed::Pass, "applier batches of 5 keys: a batch refused on a unique value was taken again ahead of the waiting key that frees it, and the run failed after 30 s"),
    (47091, Fixed::Pass, "the same with batches of 4 and a unique key on a LONGTEXT prefix"),
    (48273, Fixed::PassOrRefusal, "DECIMAL(17,2) -> DECIMAL(17,1) on a shared key column: the rounded rows were not found by their original keys, the applier failed after 30 s"),
    (30003, Fixed::PassOrRefusal, "AUTO_INCREMENT = N beyond the SMALLINT column's range: kept by the native copy, dropped by the swap (now refused)"),
];

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

/// The seeds of `SHADOWCUT_FUZZ_SEEDS` (comma-separated) or
/// `SHADOWCUT_FUZZ_FROM` + `SHADOWCUT_FUZZ_COUNT`; see `scripts/fuzz`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "runs the seeds given in the environment: use scripts/fuzz"]
async fn fuzz_seeds_from_env() {
    let seeds: Vec<u64> = if let Ok(list) = std::env::var("SHADOWCUT_FUZZ_SEEDS") {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("SHADOWCUT_FUZZ_SEEDS: numbers, comma-separated")
            })
            .collect()
    } else if let Some(count) = env_u64("SHADOWCUT_FUZZ_COUNT") {
        let from = env_u64("SHADOWCUT_FUZZ_FROM").unwrap_or(1);
        (from..from + count).collect()
    } else {
        println!("neither SHADOWCUT_FUZZ_SEEDS nor SHADOWCUT_FUZZ_COUNT is set: nothing to run");
        return;
    };
    let budget = env_u64("SHADOWCUT_FUZZ_MAX_SECONDS").map(Duration::from_secs);
    let reports = run_seeds(seeds, budget).await;
    assert_no_defect(&reports);
}

/// One seed per class of defect the fuzzer found: each must meet what
/// counts as fixed for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs scripts/fuzz's server (+05:30, NO_ZERO_DATE): scripts/fuzz --regressions"]
async fn fuzz_regression_seeds() {
    let reports = run_seeds(REGRESSION_SEEDS.iter().map(|s| s.0).collect(), None).await;
    let failing: Vec<String> = reports
        .iter()
        .zip(REGRESSION_SEEDS)
        .filter(|(r, (_, fixed, _))| !match fixed {
            Fixed::Pass => r.outcome == Outcome::Pass,
            Fixed::PassOrRefusal => r.outcome == Outcome::Pass || r.outcome == Outcome::Refused,
            Fixed::BothRefuse => r.outcome == Outcome::BothRefused,
            Fixed::Agree => r.outcome == Outcome::Pass || r.outcome == Outcome::BothRefused,
        })
        .map(|(r, (_, _, what))| format!("seed {} ({what}): {}", r.seed, r.outcome.label()))
        .collect();
    assert!(failing.is_empty(), "not fixed yet:\n{}", failing.join("\n"));
}

/// The generators are deterministic, and every case has a row key.
#[test]
fn cases_are_deterministic_from_the_seed() {
    for seed in 0..300 {
        let (a, b) = (Case::generate(seed, 0), Case::generate(seed, 0));
        assert_eq!(a.table.create_sql(), b.table.create_sql());
        assert_eq!(a.alter.sql, b.alter.sql);
        assert!(a.table.row_key().is_some(), "seed {seed}");
        let (mut ra, mut rb) = (a.writer_rng(0), b.writer_rng(0));
        for _ in 0..20 {
            assert_eq!(
                format!("{:?}", a.workload.transaction(&mut ra)),
                format!("{:?}", b.workload.transaction(&mut rb))
            );
        }
        assert_ne!(
            Case::generate(seed, 1).table.create_sql(),
            a.table.create_sql(),
            "a regeneration must give another case"
        );
    }
}
