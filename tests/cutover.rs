//! The cut-over under stress, and the lifecycle around it: writes issued
//! during the lock land in the new table (also through server-side prepared
//! statements), a killed lock connection swaps nothing and loses nothing,
//! SIGTERM under the lock releases clients, a dropped binlog event is caught
//! by the comparison, an abort mid-copy cleans up, and the changelog's
//! recorded state matches the new table.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::*;
use mysql_async::{Conn, Value};

const SHAPE: &str = "(id INT NOT NULL PRIMARY KEY, a INT NULL, b VARCHAR(30) NULL) ENGINE=InnoDB";

/// A database with `t` and `control`, both holding `rows` identical rows.
async fn setup(conn: &mut Conn, prefix: &str, rows: i64) -> String {
    let db = fresh_database(conn, prefix).await;
    for table in ["t", "control"] {
        conn.query_drop(format!("CREATE TABLE `{db}`.`{table}` {SHAPE}"))
            .await
            .unwrap();
        for start in (0..rows).step_by(500) {
            let values: Vec<String> = (start..(start + 500).min(rows))
                .map(|i| format!("({i}, {}, 'r{i}')", i % 97))
                .collect();
            if !values.is_empty() {
                conn.query_drop(format!(
                    "INSERT INTO `{db}`.`{table}` VALUES {}",
                    values.join(",")
                ))
                .await
                .unwrap();
            }
        }
    }
    db
}

/// `writers` tasks of mirrored writes on `t` and `control` over `rows` keys,
/// until `stop` (at most two minutes).
fn load(
    db: &str,
    writers: u64,
    stop: &Arc<AtomicBool>,
    rows: u64,
) -> (Arc<LoadStats>, Vec<tokio::task::JoinHandle<()>>) {
    load_t_and_control(db, writers, stop, move |rng| churn_transaction(rng, rows))
}

async fn assert_matches_control(conn: &mut Conn, db: &str) {
    let migrated = rows(conn, db, "t", "id, a, b", "id").await;
    let control = rows(conn, db, "control", "id, a, b", "id").await;
    assert_same_rows(&migrated, &control, "migrated table vs control");
}

/// The checksum ran and had nothing to repair: the applier got every row
/// right by itself.
fn assert_checksum_repaired_nothing(summary: &shadowcut::Summary) {
    assert_clean_checksum(summary);
}

async fn has_column(conn: &mut Conn, db: &str, table: &str, column: &str) -> bool {
    let n: Option<i64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
            (db, table, column),
        )
        .await
        .unwrap();
    n == Some(1)
}

/// The id of the connection whose statement starts with `prefix`.
async fn find_connection(conn: &mut Conn, prefix: &str, within: Duration) -> Option<u64> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let id: Option<u64> = conn
            .exec_first(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND ID <> CONNECTION_ID() LIMIT 1",
                (format!("{prefix}%"),),
            )
            .await
            .unwrap();
        if id.is_some() {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_during_the_lock_land_in_the_new_table_through_prepared_statements() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "lockwin", 3000).await;
    let stop = Arc::new(AtomicBool::new(false));
    // exec_drop uses server-side prepared statements, re-executed across the swap.
    let (stats, writers) = load(&db, 4, &stop, 3000);
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.cut_over_lock_timeout = Duration::from_secs(6);
    config.failpoints.lock_delay = Some(Duration::from_millis(1500));
    config.failpoints.rename_delay = Some(Duration::from_millis(300));
    config.failpoints.apply_delay = Some(Duration::from_millis(5));
    let summary = shadowcut::run(&config)
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("a writer failed across the swap");
    }
    assert!(summary.cut_over_lock_s.unwrap() >= 1.5, "{summary:?}");
    assert!(
        stats.slow_statements.load(Ordering::Relaxed) >= 1,
        "no client statement was held by the cut-over lock"
    );
    assert!(has_column(&mut conn, &db, "t", "extra").await);
    assert_matches_control(&mut conn, &db).await;
    let old_rows: Vec<Vec<Value>> = rows(&mut conn, &db, "_t_del", "id, a, b", "id").await;
    let control = rows(&mut conn, &db, "control", "id, a, b", "id").await;
    assert_ne!(
        old_rows, control,
        "writes after the swap should be only in the new table"
    );
}

/// Writers without pauses keep a transaction open on the table at every
/// instant, more than the server's cores can run. A `LOCK TABLES t READ`
/// never gets through such a load (its pending request does not stop new
/// writers from entering); the write fence queues them and gets the table
/// as soon as the transactions inside commit, for the checksum and for the
/// cut-over alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cut_over_gets_through_a_saturating_write_load() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "saturated", 4000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (stats, writers) = load(&db, 16, &stop, 4000);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.cut_over_lock_timeout = Duration::from_secs(1);
    config.cut_over_attempts = 3;
    let summary = shadowcut::run(&config).await;
    let during = stats.transactions.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let summary = summary.unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert!(during > 500, "the load barely ran ({during} transactions)");
    assert!(summary.checksum.is_some(), "{summary:?}");
    assert!(has_column(&mut conn, &db, "t", "extra").await);
    assert_matches_control(&mut conn, &db).await;
}

/// Writers that hand the table over to each other: each holds a
/// transaction open on it for 150 ms, and the next one enters before the last
/// one leaves, so some transaction holds the table at every instant. A
/// pending `LOCK TABLES t READ` lets every new writer in and waits forever;
/// the write fence makes new writers queue and gets the table within one
/// transaction's time, without the load having to pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checksum_and_cut_over_get_through_writers_that_always_overlap() {
    migrate_under_relay_writers(false).await;
}

/// The same without the checksum, whose lock comes first: the cut-over's
/// own lock must get through as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cut_over_alone_gets_through_writers_that_always_overlap() {
    migrate_under_relay_writers(true).await;
}

async fn migrate_under_relay_writers(skip_checksum: bool) {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "relay", 500).await;
    let stop = Arc::new(AtomicBool::new(false));
    let relay: Vec<_> = (0..3i64)
        .map(|w| {
            let (db, stop) = (db.clone(), stop.clone());
            tokio::spawn(async move {
                let mut c = client(&primary()).await;
                tokio::time::sleep(Duration::from_millis(50 * w as u64)).await;
                let started = Instant::now();
                let mut n = 0i64;
                while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(120)
                {
                    n += 1;
                    c.query_drop("START TRANSACTION").await.unwrap();
                    // It matches no row: the table is held, the binlog
                    // gets nothing, and the tool has nothing to re-read
                    // (a re-read's row lock would open gaps in the relay).
                    c.exec_drop(
                        format!("UPDATE `{db}`.`t` SET a = ? WHERE id = ?"),
                        (n, -1 - w),
                    )
                    .await
                    .unwrap();
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    c.query_drop("COMMIT").await.unwrap();
                }
                n
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.cut_over_lock_timeout = Duration::from_secs(1);
    config.cut_over_attempts = 3;
    config.skip_checksum = skip_checksum;
    let summary = shadowcut::run(&config).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut transactions = 0;
    for w in relay {
        transactions += w.await.unwrap();
    }
    let summary = summary.unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert!(transactions > 10, "the writers barely ran");
    assert_eq!(summary.checksum.is_none(), skip_checksum, "{summary:?}");
    assert!(has_column(&mut conn, &db, "t", "extra").await);
    assert_matches_control(&mut conn, &db).await;
}

/// With a target time per chunk, the copy starts small and grows (a
/// hundred rows take far less than the target on any server), and the
/// result is still the control's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_chunk_size_adapts_to_the_target_time_under_load() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "adaptive", 8000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (_stats, writers) = load(&db, 3, &stop, 8000);
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.chunk_size = 100;
    config.chunk_time = Some(Duration::from_millis(200));
    let summary = shadowcut::run(&config).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let summary = summary.unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert!(
        summary.copy_chunks > 0 && summary.copy_chunks < 40,
        "8000 rows in {} chunks: the size did not grow from 100",
        summary.copy_chunks
    );
    assert_matches_control(&mut conn, &db).await;
}

/// A writer holds one row locked while the parallel copy passes it.
///
/// On a composite key the copy locks what it reads: the chunk holding the
/// row copies nothing (NOWAIT), is split down to that row, which waits for
/// the writer's commit; from the busy row on, chunks lock their rows before
/// copying them. On a single integer key (MariaDB) the copy reads without
/// locks and never meets the row; the writer's change comes through the
/// binlog. Either way the writer never waits on us long and gets no error,
/// and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_copy_waits_out_a_row_held_by_a_writer_without_blocking_it() {
    for composite in [true, false] {
        let mut conn = client(&primary()).await;
        let db = setup(&mut conn, "heldrow", 2000).await;
        if composite {
            on_both(
                &mut conn,
                &db,
                "ALTER TABLE {T} DROP PRIMARY KEY, ADD PRIMARY KEY (id, a)",
            )
            .await;
        }
        let mut holder = client(&primary()).await;
        holder.query_drop("START TRANSACTION").await.unwrap();
        for table in ["t", "control"] {
            holder
                .query_drop(format!(
                    "UPDATE `{db}`.`{table}` SET b = 'held' WHERE id = 1000"
                ))
                .await
                .unwrap();
        }
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            holder.query_drop("COMMIT").await.unwrap();
        });
        let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
        config.copy_threads = 3;
        let summary = shadowcut::run(&config)
            .await
            .unwrap_or_else(|e| panic!("migration failed: {e}"));
        release.await.unwrap();
        assert!(summary.copy_chunks >= 40, "{summary:?}");
        if composite {
            assert!(summary.copy_locked_first > 0, "{summary:?}");
        } else {
            assert_eq!(summary.copy_locked_first, 0, "{summary:?}");
        }
        assert_matches_control(&mut conn, &db).await;
        let b: Option<String> = conn
            .query_first(format!("SELECT b FROM `{db}`.`t` WHERE id = 1000"))
            .await
            .unwrap();
        assert_eq!(b.as_deref(), Some("held"), "composite key: {composite}");
    }
}

/// Runs a migration of 2,000 rows under three mirrored writers, with
/// `failpoints` making the write fence sleep server-side (`sleep`, the
/// statement's text) at some step of the cut-over, and kills the fence's
/// connection during its first sleep. Returns, right after the kill, whether
/// the table had been swapped and which tables there were; then the run's
/// summary, once the table has been checked against the control.
async fn kill_the_fence_while_it_sleeps(
    prefix: &str,
    sleep: &'static str,
    failpoints: impl FnOnce(&mut shadowcut::failpoint::Failpoints),
) -> (bool, Vec<String>, shadowcut::Summary) {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, prefix, 2000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (_stats, writers) = load(&db, 3, &stop, 2000);
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.cut_over_lock_timeout = Duration::from_secs(5);
    failpoints(&mut config.failpoints);
    let killer = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut conn = client(&primary()).await;
            let fence = find_connection(&mut conn, sleep, Duration::from_secs(120))
                .await
                .expect("the write fence never slept");
            conn.query_drop(format!("KILL CONNECTION {fence}"))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let tables = tables(&mut conn, &db).await;
            (has_column(&mut conn, &db, "t", "extra").await, tables)
        })
    };
    let summary = shadowcut::run(&config)
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    let (swapped_after_kill, tables_after_kill) = killer.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(summary.cut_over_attempts >= 2, "{summary:?}");
    assert!(has_column(&mut conn, &db, "t", "extra").await);
    assert_matches_control(&mut conn, &db).await;
    (swapped_after_kill, tables_after_kill, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_lock_connection_swaps_nothing_and_loses_nothing() {
    // DO SLEEP(2): the other tests' lock delays differ.
    let (swapped_after_kill, tables_after_kill, _) =
        kill_the_fence_while_it_sleeps("killa", "DO SLEEP(2)", |f| {
            f.lock_delay = Some(Duration::from_millis(2000));
        })
        .await;
    assert!(
        !swapped_after_kill,
        "the table was swapped although connection A died"
    );
    assert!(
        tables_after_kill.contains(&"_t_gho".to_string()),
        "{tables_after_kill:?}"
    );
}

/// The write fence's connection dies after the locked drain, before the
/// swap: writers then reach the original behind the drain's back. The
/// sentinel must stay (the attempt is retried) and nothing may be lost. It
/// once was dropped all the same, and the RENAME swapped in a table that
/// lacked those writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fence_lost_after_the_drain_swaps_nothing_and_loses_nothing() {
    let (swapped_after_kill, _, _) =
        kill_the_fence_while_it_sleeps("killdrained", "DO SLEEP(2.5)", |f| {
            f.drained_delay = Some(Duration::from_millis(2500));
        })
        .await;
    assert!(!swapped_after_kill, "swapped with the fence gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_the_lock_releases_clients_and_keeps_the_original() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "sigterm", 500).await;
    let before: Option<String> = conn
        .query_first(format!("SHOW CREATE TABLE `{db}`.`t`"))
        .await
        .ok()
        .flatten()
        .map(|r: (String, String)| r.1);
    let child = cli::spawn_on_t(
        &db,
        "ADD COLUMN extra INT",
        &[
            "--execute",
            "--cut-over-lock-timeout-seconds",
            "3",
            "--chunk-size",
            "100",
        ],
        &[("SHADOWCUT_FAILPOINTS", "lock_delay_ms=60000")],
    );
    find_connection(&mut conn, "DO SLEEP(60)", Duration::from_secs(60))
        .await
        .expect("the cut-over lock was never taken");
    // A client write queues behind the lock.
    let writer = tokio::spawn(async move {
        let mut c = client(&primary()).await;
        let started = Instant::now();
        c.exec_drop(
            format!("UPDATE `{db}`.`t` SET b = 'during-lock' WHERE id = 7"),
            (),
        )
        .await
        .unwrap();
        (started.elapsed(), db)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    let pid = child.id().unwrap() as i32;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let (waited, db) = writer.await.unwrap();
    let released_after = signalled.elapsed();
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        released_after < Duration::from_secs(3),
        "client blocked {released_after:?} after SIGTERM"
    );
    assert!(
        waited >= Duration::from_millis(250),
        "the write was never blocked ({waited:?})"
    );
    let after: Option<String> = conn
        .query_first(format!("SHOW CREATE TABLE `{db}`.`t`"))
        .await
        .ok()
        .flatten()
        .map(|r: (String, String)| r.1);
    assert_eq!(before, after, "the original table changed");
    let b: Option<String> = conn
        .query_first(format!("SELECT b FROM `{db}`.`t` WHERE id = 7"))
        .await
        .unwrap();
    assert_eq!(b.as_deref(), Some("during-lock"));
    // Stopped at a resumable point: the new table and the changelog stay,
    // the cut-over's placeholder does not.
    assert!(stderr.contains("--resume"), "{stderr}");
    assert_eq!(
        tables(&mut conn, &db).await,
        vec!["control", "t", "_t_ghc", "_t_gho"],
        "{stderr}"
    );
}

/// Runs a migration held before its cut-over by a flag file, applies
/// mirrored writes once the copy is complete, lets `corrupt` damage the new
/// table, then lets it finish.
async fn migrate_with_writes_after_copy(
    prefix: &str,
    drop_row_event: Option<u64>,
    skip_checksum: bool,
    corrupt: Option<&str>,
) -> (Conn, String, shadowcut::Summary) {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, prefix, 400).await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT");
    config.failpoints.drop_row_event = drop_row_event;
    config.skip_checksum = skip_checksum;
    let migration = Postponed::start(&mut conn, &db, config).await;
    for id in [10, 20, 30] {
        on_both(
            &mut conn,
            &db,
            &format!("UPDATE {{T}} SET b = 'after-copy' WHERE id = {id}"),
        )
        .await;
    }
    if let Some(stmt) = corrupt {
        conn.query_drop(stmt.replace("{G}", &format!("`{db}`.`_t_gho`")))
            .await
            .unwrap();
    }
    let summary = migration
        .finish()
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    (conn, db, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_comparison_catches_a_dropped_binlog_event() {
    // Without the checksum, the test's own comparison must see the loss.
    let (mut conn, db, summary) =
        migrate_with_writes_after_copy("dropped", Some(1), true, None).await;
    assert!(
        summary.checksum_skipped && summary.checksum.is_none(),
        "{summary:?}"
    );
    let migrated = rows(&mut conn, &db, "t", "id, a, b", "id").await;
    let control = rows(&mut conn, &db, "control", "id, a, b", "id").await;
    let diff = first_difference(&migrated, &control)
        .expect("a dropped event went unnoticed by the comparison");
    assert!(diff.contains("after-copy"), "{diff}");
    // The same run without the fault matches.
    let (mut conn, db, _) = migrate_with_writes_after_copy("notdropped", None, true, None).await;
    assert_matches_control(&mut conn, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checksum_finds_and_repairs_a_dropped_event_and_a_damaged_row() {
    let (mut conn, db, summary) = migrate_with_writes_after_copy(
        "checksumfix",
        Some(1),
        false,
        Some("UPDATE {G} SET a = a + 1 WHERE id = 300"),
    )
    .await;
    let report = summary.checksum.expect("the checksum ran");
    assert!(!summary.checksum_skipped);
    assert!(report.mismatches >= 1, "{report:?}");
    assert_eq!(report.repaired, report.mismatches, "{report:?}");
    assert_eq!(report.rows_checked, 400, "{report:?}");
    assert_matches_control(&mut conn, &db).await;
}

/// Damages the new table with `corrupt` after the copy; the checksum must
/// find one differing chunk and repair it.
async fn checksum_repairs_one_chunk(prefix: &str, corrupt: &str) {
    let (mut conn, db, summary) =
        migrate_with_writes_after_copy(prefix, None, false, Some(corrupt)).await;
    let report = summary.checksum.expect("the checksum ran");
    assert_eq!((report.mismatches, report.repaired), (1, 1), "{report:?}");
    assert_matches_control(&mut conn, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checksum_tells_a_null_from_a_value_that_reads_alike() {
    // Row 300 is (300, 9, 'r300'). Damaged to (300, NULL, '9<0x1F>r300'),
    // it concatenates to the same bytes unless NULLs are marked.
    checksum_repairs_one_chunk(
        "checksumnull",
        "UPDATE {G} SET a = NULL, b = CONCAT('9', 0x1F, 'r300') WHERE id = 300",
    )
    .await;
}

/// A FLOAT reads as text with 6 significant digits: a new table whose
/// FLOAT differs from the original's in the 7th must not read as equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checksum_sees_a_float_differ_in_its_seventh_digit() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "checksumfloat").await;
    for table in ["t", "control"] {
        conn.query_drop(format!(
            "CREATE TABLE `{db}`.`{table}` (id INT NOT NULL PRIMARY KEY, f FLOAT NULL) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
        conn.query_drop(format!(
            "INSERT INTO `{db}`.`{table}` SELECT seq, 1.0000001 FROM `{db}`.seq_1_to_400"
        ))
        .await
        .unwrap();
    }
    let migration =
        Postponed::start(&mut conn, &db, config(&db, "t", "ADD COLUMN extra INT")).await;
    conn.query_drop(format!(
        "UPDATE `{db}`.`_t_gho` SET f = 1.0000002 WHERE id = 300"
    ))
    .await
    .unwrap();
    let summary = migration
        .finish()
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    let report = summary.checksum.expect("the checksum ran");
    assert_eq!((report.mismatches, report.repaired), (1, 1), "{report:?}");
    let migrated = rows(&mut conn, &db, "t", "id, CAST(f AS DOUBLE)", "id").await;
    let control = rows(&mut conn, &db, "control", "id, CAST(f AS DOUBLE)", "id").await;
    assert_same_rows(&migrated, &control, "migrated table vs control");
}

/// Two rows of one chunk exchange values of equal length in the new table.
/// CRC32 is affine over GF(2): both rows' CRCs change by the same mask, so
/// a `BIT_XOR` of them cannot see it (the checksum once relied on one); the
/// sum does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checksum_sees_two_rows_exchanging_values() {
    checksum_repairs_one_chunk(
        "checksumswap",
        "UPDATE {G} SET b = IF(id = 300, 'r301', 'r300') WHERE id IN (300, 301)",
    )
    .await;
}

/// Two rows of one chunk changed alike: the last character of `b` XORed
/// with the same byte in rows 286 and 336 ('r286' becomes 'r280', 'r336'
/// becomes 'r330'). Their CRC32s change by the same 17-bit mask, under
/// which their bits happen to be complementary: the plain sum of CRC32s
/// stayed the same (4018126407 both ways, checked on the server) and the
/// damaged table was swapped in. The sum of each CRC32's own CRC32 sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checksum_sees_two_rows_changed_alike() {
    checksum_repairs_one_chunk(
        "checksumalike",
        "UPDATE {G} SET b = IF(id = 286, 'r280', 'r330') WHERE id IN (286, 336)",
    )
    .await;
}

/// Rows only the new table holds, below the original's lowest key and above
/// its highest, are compared too. The 400 rows fill exactly two checksum
/// chunks of 200, so a walk that ended at the highest key (as the checksum
/// once did) compared nothing above it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checksum_sees_rows_beyond_both_ends_of_the_original() {
    let (mut conn, db, summary) = migrate_with_writes_after_copy(
        "checksumends",
        None,
        false,
        Some("INSERT INTO {G} (id, a, b) VALUES (-7, 1, 'below'), (100000, 1, 'above')"),
    )
    .await;
    let report = summary.checksum.expect("the checksum ran");
    assert_eq!((report.mismatches, report.repaired), (2, 2), "{report:?}");
    assert_matches_control(&mut conn, &db).await;
}

/// The checksum's repair of a differing chunk never waits for the
/// application's row locks while it holds others. A writer holds row 301
/// of the chunk being copied again, then asks for row 250, which the
/// repair has already read: a repair that share-locked its range and waited
/// for row 301 closed a deadlock cycle, and InnoDB rolled back the writer,
/// the lighter transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repair_never_makes_the_application_a_deadlock_victim() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "repairheld", 400).await;
    let socket = std::env::temp_dir().join(format!("{db}.sock"));
    let flag = std::env::temp_dir().join(format!("{db}.postpone"));
    std::fs::write(&flag, b"").unwrap();
    let mut config = config(&db, "t", "ADD COLUMN extra INT");
    config.serve.socket_file = Some(socket.clone());
    config.postpone_cut_over_flag_file = Some(flag.clone());
    config.failpoints.repair_delay = Some(Duration::from_millis(1000));
    let mut migration = tokio::spawn(async move { shadowcut::run(&config).await });
    wait_for_copy_complete(&mut conn, &db, "t").await;
    // Row 300 differs: the checksum copies the chunk (199, 399] again.
    conn.query_drop(format!(
        "UPDATE `{db}`.`_t_gho` SET a = a + 1 WHERE id = 300"
    ))
    .await
    .unwrap();
    std::fs::remove_file(&flag).unwrap();
    // Once the first round has found it (its snapshots are open no more),
    // and before the repair starts (the failpoint's second), the writer
    // takes row 301.
    status_until(&socket, &mut migration, "the checksum found row 300", |s| {
        s["checksum_chunks_differing"].as_u64() > Some(0)
    })
    .await;
    let mut writer = client(&primary()).await;
    writer.query_drop("START TRANSACTION").await.unwrap();
    writer
        .query_drop(format!(
            "SELECT a FROM `{db}`.`t` WHERE id = 301 FOR UPDATE"
        ))
        .await
        .unwrap();
    // The repair runs meanwhile; the writer then asks for row 250.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for table in ["t", "control"] {
        writer
            .query_drop(format!(
                "UPDATE `{db}`.`{table}` SET b = 'writer' WHERE id = 250"
            ))
            .await
            .unwrap_or_else(|e| panic!("the application's update of {table} failed: {e}"));
    }
    writer.query_drop("COMMIT").await.unwrap();
    let summary = migration
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    let report = summary.checksum.expect("the checksum ran");
    assert_eq!((report.mismatches, report.repaired), (1, 1), "{report:?}");
    assert_matches_control(&mut conn, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_applied_while_a_writer_holds_a_new_row_of_its_key() {
    for (commit, locking_apply) in [(true, false), (false, false), (true, true), (false, true)] {
        let mut conn = client(&primary()).await;
        let prefix = match (commit, locking_apply) {
            (true, false) => "heldcommit",
            (false, false) => "heldrollback",
            (true, true) => "heldcommitlocking",
            (false, true) => "heldrollbacklocking",
        };
        let db = setup(&mut conn, prefix, 400).await;
        let mut config = config(&db, "t", "ADD COLUMN extra INT");
        // With --locking-apply the re-read share-locks, as on MySQL.
        config.locking_apply = locking_apply;
        // The applier reads the delete only once the writer holds row 7.
        config.failpoints.apply_delay = Some(Duration::from_millis(300));
        let migration = Postponed::start(&mut conn, &db, config).await;
        on_both(&mut conn, &db, "DELETE FROM {T} WHERE id = 7").await;
        let mut writer = client(&primary()).await;
        writer.query_drop("START TRANSACTION").await.unwrap();
        on_both(&mut writer, &db, "INSERT INTO {T} VALUES (7, -7, 'held')").await;
        // The delete reaches the new table while the writer holds the row:
        // it is not deferred until the writer ends.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left: Option<i64> = conn
                .query_first(format!("SELECT COUNT(*) FROM `{db}`.`_t_gho` WHERE id = 7"))
                .await
                .unwrap();
            if left == Some(0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the delete of row 7 waited for the writer"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let end = if commit { "COMMIT" } else { "ROLLBACK" };
        writer.query_drop(end).await.unwrap();
        migration
            .finish()
            .await
            .unwrap_or_else(|e| panic!("migration failed ({end}): {e}"));
        let row: Option<(i64, String)> = conn
            .query_first(format!("SELECT a, b FROM `{db}`.`t` WHERE id = 7"))
            .await
            .unwrap();
        assert_eq!(row, commit.then(|| (-7, "held".to_string())), "{end}");
        assert_matches_control(&mut conn, &db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_that_keeps_differing_stops_the_run_before_the_swap() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "checksumfail", 2500).await;
    let before = rows(&mut conn, &db, "t", "id, a, b", "id").await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT");
    config.failpoints.checksum_mismatch = true;
    let err = shadowcut::run(&config)
        .await
        .expect_err("a chunk that never matches must stop the run");
    let text = err.to_string();
    assert!(
        text.contains("still differ after being copied again"),
        "{text}"
    );
    // The first checksum chunk: 200 rows in the tests' configuration.
    assert!(
        text.contains("`id` in (open, (199)]"),
        "the key range: {text}"
    );
    assert!(text.contains("Nothing was swapped"), "{text}");
    assert_eq!(tables(&mut conn, &db).await, vec!["control", "t"]);
    assert_eq!(rows(&mut conn, &db, "t", "id, a, b", "id").await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_checksums_every_row_without_repairs() {
    let (mut conn, db, summary) =
        migrate_with_writes_after_copy("checksumclean", None, false, None).await;
    // No row was busy during the copy: every chunk was one statement.
    assert_eq!(summary.copy_locked_first, 0, "{summary:?}");
    let report = summary.checksum.expect("the checksum ran");
    assert_eq!((report.mismatches, report.repaired), (0, 0), "{report:?}");
    assert_eq!(report.rows_checked, 400);
    assert_eq!(report.columns_compared, 3);
    assert_matches_control(&mut conn, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changelog_state_matches_the_new_table_and_abort_mid_copy_cleans_up() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "state", 3000).await;
    let before: Vec<Vec<Value>> = rows(&mut conn, &db, "t", "*", "id").await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT");
    config.chunk_size = 20;
    config.failpoints.chunk_delay = Some(Duration::from_millis(15));
    let stop = config.stop.clone();
    let migration = tokio::spawn(async move { shadowcut::run(&config).await });

    // Light writes so that the applier records a position.
    let writes = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut c = client(&primary()).await;
            for i in 0..40 {
                c.query_drop(format!(
                    "UPDATE `{db}`.`t` SET a = a + 1 WHERE id = {}",
                    2900 + i
                ))
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (watermark, applied) = loop {
        assert!(Instant::now() < deadline, "no state recorded");
        let w = changelog_value(&mut conn, &db, "t", "state:copy-watermark").await;
        let p = changelog_value(&mut conn, &db, "t", "state:applied-position").await;
        if let (Some(w), Some(p)) = (w, p) {
            if w.starts_with('[') {
                break (w, p);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    writes.await.unwrap();
    // The watermark is the last copied key: every row at or below it is in the new table.
    let parsed: Vec<serde_json::Value> = serde_json::from_str(&watermark).unwrap();
    let upto = parsed[0]["Int"]
        .as_i64()
        .expect("integer key in the watermark");
    let in_ghost: Option<i64> = conn
        .query_first(format!(
            "SELECT COUNT(*) FROM `{db}`.`_t_gho` WHERE id <= {upto}"
        ))
        .await
        .unwrap();
    let in_original: Option<i64> = conn
        .query_first(format!(
            "SELECT COUNT(*) FROM `{db}`.`t` WHERE id <= {upto}"
        ))
        .await
        .unwrap();
    assert!(upto > 0 && upto < 3000, "watermark {upto}");
    assert_eq!(
        in_ghost, in_original,
        "rows at or below the watermark missing from the new table"
    );
    // The applied position is a real binlog position not beyond the current one.
    let (file, pos) = applied.split_once(':').expect("file:pos");
    let pos: u64 = pos.parse().unwrap();
    let logs: Vec<(String, u64)> = conn.query("SHOW BINARY LOGS").await.unwrap();
    let size = logs
        .iter()
        .find(|(f, _)| f == file)
        .unwrap_or_else(|| panic!("{file} is not a binlog"))
        .1;
    assert!(
        pos > 4 && pos <= size,
        "position {pos} outside {file} (size {size})"
    );
    let start = changelog_value(&mut conn, &db, "t", "state:start-position")
        .await
        .expect("start position");
    let (start_file, start_pos) = start.split_once(':').expect("file:pos");
    let start_pos: u64 = start_pos.parse().unwrap();
    assert!(
        start_file < file || (start_file == file && start_pos <= pos),
        "the applied position {applied} is before the start {start}"
    );

    // Abandoned mid-copy (`panic`): the original is untouched and the
    // artifacts are gone. (A signal would keep them for --resume.)
    stop.panic("test abort");
    let result = migration.await.unwrap();
    assert!(
        matches!(result, Err(shadowcut::Error::Panicked { .. })),
        "{result:?}"
    );
    assert_eq!(tables(&mut conn, &db).await, vec!["control", "t"]);
    let after: Vec<Vec<Value>> = rows(&mut conn, &db, "t", "*", "id").await;
    assert_eq!(before.len(), after.len());
    assert!(!has_column(&mut conn, &db, "t", "extra").await);
}

/// Runs `config`'s migration of `db` under a mirrored load that goes on
/// through the cut-over; returns its result once the load has stopped.
async fn migrate_under_cutover_load(
    db: &str,
    rows: u64,
    config: shadowcut::Config,
) -> shadowcut::Result<shadowcut::Summary> {
    let stop = Arc::new(AtomicBool::new(false));
    let (_stats, writers) = load(db, 3, &stop, rows);
    let result = shadowcut::run(&config).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("a writer failed");
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drain_cancelled_mid_batch_loses_no_key() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "draincancel", 2000).await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.cut_over_lock_timeout = Duration::from_secs(1);
    // The first two attempts stall in the drain with a batch taken, until
    // the attempt's timeout cancels them.
    config.failpoints.stall_drain_attempts = Some(2);
    config.failpoints.drain_batch_keys = Some(3);
    let summary = migrate_under_cutover_load(&db, 2000, config)
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert!(summary.cut_over_attempts >= 3, "{summary:?}");
    assert_matches_control(&mut conn, &db).await;
}

/// A failed attempt takes longer than the replica lag limit. The heartbeat
/// goes on through the cut-over, so the watched replica does not look
/// lagging and the catch-up before the next attempt is not throttled for
/// ever (it was, while the heartbeat stopped before the first attempt).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_cut_over_is_not_held_back_by_a_stopped_heartbeat() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "retrylag", 1000).await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.cut_over_lock_timeout = Duration::from_secs(2);
    config.throttle.replicas = vec![replica().expect("the sandbox has a replica")];
    config.throttle.max_lag = Duration::from_millis(1000);
    config.throttle.interval = Duration::from_millis(100);
    config.failpoints.stall_drain_attempts = Some(1);
    let summary = tokio::time::timeout(
        Duration::from_secs(90),
        migrate_under_cutover_load(&db, 1000, config),
    )
    .await
    .expect("the retried cut-over hung")
    .unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert!(summary.cut_over_attempts >= 2, "{summary:?}");
    assert_matches_control(&mut conn, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_attempt_after_the_final_comment_leaves_a_ghost_we_can_drop() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "ghostmark", 500).await;
    conn.query_drop(format!(
        "ALTER TABLE `{db}`.`t` COMMENT = 'orders of the shop'"
    ))
    .await
    .unwrap();
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.cut_over_lock_timeout = Duration::from_secs(1);
    config.cut_over_attempts = 1;
    config.failpoints.stall_swap_attempts = Some(1);
    let err = shadowcut::run(&config)
        .await
        .expect_err("the only attempt stalls");
    assert!(err.to_string().contains("cut-over"), "{err}");
    assert_eq!(
        tables(&mut conn, &db).await,
        vec!["control", "t"],
        "the ghost must carry its marker again, so that cleanup drops it"
    );

    // With retries, the next attempt sets the final comment again.
    let mut config = common::config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.cut_over_lock_timeout = Duration::from_secs(1);
    config.failpoints.stall_swap_attempts = Some(1);
    let summary = shadowcut::run(&config).await.unwrap();
    assert_eq!(summary.cut_over_attempts, 2);
    let comment: Option<String> = conn
        .exec_first(
            "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't'",
            (&db,),
        )
        .await
        .unwrap();
    assert_eq!(comment.as_deref(), Some("orders of the shop"));
}

/// Once the tables are swapped the migration is done: a failure tidying up
/// (marking or dropping the old table, dropping the changelog) is reported
/// with what is left to do by hand, not as a failed run (whose exit code
/// would send a script to migrate the table again).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failure_tidying_up_after_the_swap_is_left_to_do_not_a_failed_run() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "tidyfail", 300).await;
    for drop_old in [false, true] {
        let column = if drop_old { "second" } else { "first" };
        let mut config = config(&db, "t", &format!("ADD COLUMN {column} INT"));
        config.ok_to_drop_table = drop_old;
        config.initially_drop_old_table = true;
        config.failpoints.fail_tidy = true;
        let summary = shadowcut::run(&config)
            .await
            .unwrap_or_else(|e| panic!("the swapped run reported a failure: {e}"));
        assert!(has_column(&mut conn, &db, "t", column).await, "not swapped");
        assert_eq!(summary.left_to_do.len(), 2, "{:?}", summary.left_to_do);
        assert!(
            summary.left_to_do[0].contains("_t_del"),
            "{:?}",
            summary.left_to_do
        );
        assert!(
            summary.left_to_do[1].contains("_t_ghc"),
            "{:?}",
            summary.left_to_do
        );
        assert_eq!(
            summary.old_table_kept.as_deref(),
            Some(format!("`{db}`.`_t_del`").as_str())
        );
        assert_eq!(
            tables(&mut conn, &db).await,
            vec!["control", "t", "_t_del", "_t_ghc"]
        );
        assert_matches_control(&mut conn, &db).await;
        // What the operator is told to do by hand.
        conn.query_drop(format!("DROP TABLE `{db}`.`_t_ghc`"))
            .await
            .unwrap();
        if !drop_old {
            conn.query_drop(format!("DROP TABLE `{db}`.`_t_del`"))
                .await
                .unwrap();
        }
    }
}

/// An attempt abandoned after the swap connection was told to go, but
/// before its RENAME reached the server (here held back 3 s by a failpoint),
/// releases the writers once that connection is dead. Killing only its
/// query did nothing then: the RENAME started afterwards and waited out its
/// own lock timeout (2 × 1 + 5 s) on the sentinel, with every writer held
/// by the fence, about 10 s in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandoned_attempt_releases_writers_before_its_rename_is_sent() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "renamelate", 300).await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.cut_over_lock_timeout = Duration::from_secs(1);
    config.cut_over_attempts = 1;
    config.failpoints.rename_delay = Some(Duration::from_millis(3000));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = write_probe(&db, 7, &stop);
    let err = shadowcut::run(&config)
        .await
        .expect_err("the only attempt is abandoned");
    stop.store(true, Ordering::Relaxed);
    let longest = writer.await.unwrap();
    assert!(err.to_string().contains("cut-over"), "{err}");
    assert!(
        longest < Duration::from_secs(6),
        "a writer was held {longest:?}"
    );
    assert_eq!(tables(&mut conn, &db).await, vec!["control", "t"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_holding_the_ghost_cannot_make_a_waiting_rename_look_queued() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "ghostreader", 1500).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (_stats, writers) = load(&db, 3, &stop, 1500);
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.cut_over_lock_timeout = Duration::from_secs(3);
    config.cut_over_attempts = 30;
    // The RENAME is issued 1.5 s after the new table got its final comment:
    // time for a reader to take the ghost first.
    config.failpoints.rename_delay = Some(Duration::from_millis(1500));
    let migration = Postponed::start(&mut conn, &db, config).await;
    let finished = tokio::spawn(migration.finish());
    // A monitoring query's transaction then holds a shared lock on the
    // ghost, so the RENAME, which locks `_t_del` and `_t_gho` before `t`,
    // waits on the ghost while writers queue on `t`.
    // The checksum runs first, under the writers; a loaded CI machine
    // needs time for it.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let comment: Option<String> = conn
            .exec_first(
                "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = '_t_gho'",
                (&db,),
            )
            .await
            .unwrap();
        if comment.is_some_and(|c| !c.starts_with("shadowcut:ghost:")) {
            break;
        }
        if finished.is_finished() {
            let outcome = finished.await.unwrap();
            panic!("the migration ended before a reader could take the ghost: {outcome:?}");
        }
        assert!(
            Instant::now() < deadline,
            "the cut-over never finished the new table"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut reader = client(&primary()).await;
    reader.query_drop("START TRANSACTION").await.unwrap();
    let _: Option<i64> = reader
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.`_t_gho`"))
        .await
        .unwrap();
    // Longer than the probe's patience (the lock timeout): the first
    // attempt must give up rather than unlock.
    tokio::time::sleep(Duration::from_millis(7000)).await;
    reader.query_drop("COMMIT").await.unwrap();
    let summary = finished
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("a writer failed");
    }
    assert_matches_control(&mut conn, &db).await;
    assert!(summary.cut_over_attempts >= 2, "{summary:?}");
}

/// Under a case-insensitive key, deleting `'a'` and inserting `'A'` leaves
/// two buffered keys for one row. Applied one per batch, in whatever order
/// the buffer yields them, the row must survive: every key is re-read by
/// the server's comparison, never only deleted because no row had its
/// exact bytes. Eight such pairs: an applier that got it wrong would keep
/// all eight rows only once in 256 runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_respelled_under_a_case_insensitive_collation_keep_their_rows() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "respelled").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (k VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL PRIMARY KEY, \
         v INT NOT NULL) ENGINE=InnoDB",
    )
    .await;
    let letters = ["a", "b", "c", "d", "e", "f", "g", "h"];
    for l in letters {
        on_both(
            &mut conn,
            &db,
            &format!("INSERT INTO {{T}} VALUES ('{l}', 1)"),
        )
        .await;
    }
    let mut config = config(&db, "t", "ADD COLUMN extra INT NULL");
    // Both keys of each pair are still buffered when the lock is taken, and
    // the drain applies them one per batch.
    config.failpoints.apply_loop_delay = Some(Duration::from_secs(120));
    config.failpoints.skip_converge = true;
    config.failpoints.drain_batch_keys = Some(1);
    // The checksum would drain (and repair) first; this is about the drain.
    config.skip_checksum = true;
    let migration = Postponed::start(&mut conn, &db, config).await;
    for l in letters {
        let upper = l.to_uppercase();
        on_both(
            &mut conn,
            &db,
            &format!("DELETE FROM {{T}} WHERE k = BINARY '{l}'"),
        )
        .await;
        on_both(
            &mut conn,
            &db,
            &format!("INSERT INTO {{T}} VALUES ('{upper}', 2)"),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    migration
        .finish()
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    let migrated = rows(&mut conn, &db, "t", "k, v", "k").await;
    let control = rows(&mut conn, &db, "control", "k, v", "k").await;
    assert_eq!(migrated.len(), letters.len(), "rows lost: {migrated:?}");
    assert_same_rows(&migrated, &control, "migrated table vs control");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transient_collision_across_drain_batches_is_retried_not_fatal() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "draincollide").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, u INT NOT NULL) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (1, 5), (2, 6), (3, 7)",
    )
    .await;
    let mut config = config(&db, "t", "ADD UNIQUE KEY uu (u)");
    // The apply loop sleeps, so both changed keys are still buffered when
    // the lock is taken, and the drain applies them one per batch.
    config.failpoints.apply_loop_delay = Some(Duration::from_secs(120));
    config.failpoints.skip_converge = true;
    config.failpoints.drain_batch_keys = Some(1);
    // The checksum would drain the keys first; this is about the cut-over's drain.
    config.skip_checksum = true;
    let migration = Postponed::start(&mut conn, &db, config).await;
    // Rows 1 and 2 swap their unique values: applied alone, either collides
    // with the other's stale row in the new table.
    for stmt in [
        "UPDATE {T} SET u = 100 WHERE id = 1",
        "UPDATE {T} SET u = 5 WHERE id = 2",
        "UPDATE {T} SET u = 6 WHERE id = 1",
    ] {
        on_both(&mut conn, &db, stmt).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    migration
        .finish()
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    let migrated = rows(&mut conn, &db, "t", "id, u", "id").await;
    let control = rows(&mut conn, &db, "control", "id, u", "id").await;
    assert_same_rows(&migrated, &control, "migrated table vs control");
}

/// While the applier is held back, the tail stops reading the binlog once
/// the buffer holds its bound of keys (the binlog is the queue), and the
/// migration still ends equal to the control: the keys left in the binlog
/// are read once the applier makes room, and the flushes before the swap
/// (which wait for the tail) lift the bound instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_backlog_stays_bounded_while_the_applier_is_held_back() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "bounded", 4000).await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.buffered_keys = 300;
    // The applier takes one batch (500 keys) every 400 ms: far slower
    // than the writes below.
    config.failpoints.apply_loop_delay = Some(Duration::from_millis(400));
    let migration = Postponed::start(&mut conn, &db, config).await;
    // 4,000 distinct keys changed, 50 rows per statement.
    for round in 0..2 {
        for start in (0..4000).step_by(50) {
            on_both(
                &mut conn,
                &db,
                &format!(
                    "UPDATE {{T}} SET a = a + {} WHERE id >= {start} AND id < {}",
                    round + 1,
                    start + 50
                ),
            )
            .await;
        }
    }
    let summary = migration
        .finish()
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert!(summary.binlog_rows >= 8000, "{summary:?}");
    // The bound, plus at most one rows event read before the tail looked.
    assert!(
        (300..=350).contains(&summary.backlog_peak),
        "peak backlog {} with a bound of 300: {summary:?}",
        summary.backlog_peak
    );
    assert_checksum_repaired_nothing(&summary);
    assert_matches_control(&mut conn, &db).await;
}

/// A backlog of more than one batch is applied in generations over two
/// connections at once (integer key: distinct keys are distinct rows),
/// with writers still changing keys meanwhile; the result equals the
/// control.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_is_applied_in_parallel_generations() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "generations", 3000).await;
    let stop = Arc::new(AtomicBool::new(false));
    // The writers keep to ids below 350; the updates below (on the two
    // tables one after the other, not in one transaction) to ids from
    // 1000 on, so that the two never race for a row.
    let (_stats, writers) = load(&db, 3, &stop, 300);
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.apply_threads = 2;
    // A slow apply loop lets the backlog grow past one batch.
    config.failpoints.apply_loop_delay = Some(Duration::from_millis(300));
    let migration = Postponed::start(&mut conn, &db, config).await;
    for start in (1000..3000).step_by(100) {
        on_both(
            &mut conn,
            &db,
            &format!(
                "UPDATE {{T}} SET b = CONCAT('g', a) WHERE id >= {start} AND id < {}",
                start + 100
            ),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let summary = migration
        .finish()
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("a writer failed");
    }
    assert!(summary.parallel_apply_generations > 0, "{summary:?}");
    assert_checksum_repaired_nothing(&summary);
    assert_matches_control(&mut conn, &db).await;
}

/// Runs `statements` in one transaction on `t` and `control` while an
/// `ADD UNIQUE INDEX ub (b)` migration applies `batch_keys` keys per batch
/// on one connection, and checks the run ends within 20 s (the applier
/// gives up on a refused row after 30 s), equal to the control, with
/// nothing for the checksum to repair.
async fn one_transaction_in_tiny_batches(prefix: &str, batch_keys: u64, statements: &[&str]) {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, prefix, 400).await;
    let mut config = config(&db, "t", "ADD UNIQUE INDEX ub (b)");
    config.apply_threads = 1;
    config.failpoints.apply_batch_keys = Some(batch_keys);
    // The whole transaction is in the buffer before the applier takes keys.
    config.failpoints.apply_loop_delay = Some(Duration::from_millis(300));
    let migration = Postponed::start(&mut conn, &db, config).await;
    conn.query_drop("START TRANSACTION").await.unwrap();
    for stmt in statements {
        on_both(&mut conn, &db, stmt).await;
    }
    conn.query_drop("COMMIT").await.unwrap();
    let started = Instant::now();
    let summary = migration
        .finish()
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the refused keys were retried for {:?}",
        started.elapsed()
    );
    assert_checksum_repaired_nothing(&summary);
    assert_matches_control(&mut conn, &db).await;
}

/// A batch the new table refuses must not be taken again ahead of the
/// waiting key that frees its unique value. Row 1 changes first, five more
/// rows change, row 100 frees the value 'r100' and row 1 takes it, all in
/// one transaction. With batches of two keys, row 1's batch is refused
/// while row 100's stale row still holds 'r100' in the new table; taken
/// again and again in its old place, it kept row 100 waiting until the
/// applier gave up after 30 s (fuzzer seeds 47052, 47110, ...).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_does_not_starve_the_key_that_frees_its_value() {
    one_transaction_in_tiny_batches(
        "refusedrotate",
        2,
        &[
            "UPDATE {T} SET a = -1 WHERE id = 1",
            "UPDATE {T} SET a = -1 WHERE id BETWEEN 2 AND 6",
            "UPDATE {T} SET b = 'freed' WHERE id = 100",
            "UPDATE {T} SET b = 'r100' WHERE id = 1",
        ],
    )
    .await;
}

/// Rows 10 and 20 swap their unique values, and rows 40, 41 and 42 rotate
/// theirs, in one transaction, and the applier takes one key per batch:
/// each key alone collides with another's stale value in the new table,
/// so each batch is refused while the other keys wait, whatever their
/// order in the queue. Each refused batch went to the end of the queue
/// and was refused again, until the applier gave up after 30 s; refused
/// keys are now retried together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_exchanging_unique_values_in_separate_batches_are_applied_together() {
    one_transaction_in_tiny_batches(
        "refusedswap",
        1,
        &[
            "UPDATE {T} SET b = 'moving' WHERE id = 10",
            "UPDATE {T} SET b = 'r10' WHERE id = 20",
            "UPDATE {T} SET b = 'r20' WHERE id = 10",
            "UPDATE {T} SET b = 'moving' WHERE id = 40",
            "UPDATE {T} SET b = 'r40' WHERE id = 42",
            "UPDATE {T} SET b = 'r42' WHERE id = 41",
            "UPDATE {T} SET b = 'r41' WHERE id = 40",
            "UPDATE {T} SET a = -1 WHERE id BETWEEN 30 AND 35",
        ],
    )
    .await;
}

/// The same with a case- and accent-insensitive key, whose generations
/// are split along the server's equality classes: an update of a key's
/// case or trailing spaces (`'k-1'` to `'K-1'`: two keys in the binlog,
/// one row) puts both keys in the buffer, and the split keeps them in one
/// part (`a_generation_never_splits_an_equality_class` in `src/apply.rs`).
/// The result equals the control, byte for byte, with nothing for the
/// checksum to repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collated_backlog_is_applied_in_parallel_generations() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "collgen").await;
    for table in ["t", "control"] {
        conn.query_drop(format!(
            "CREATE TABLE `{db}`.`{table}` (name VARCHAR(32) CHARACTER SET utf8mb4 \
             COLLATE utf8mb4_unicode_ci NOT NULL PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
        conn.query_drop(format!(
            "INSERT INTO `{db}`.`{table}` SELECT CONCAT('k-', seq), seq FROM mysql.seq_1_to_3000"
        ))
        .await
        .unwrap();
    }
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.apply_threads = 2;
    // A slow apply loop lets the backlog grow past one batch.
    config.failpoints.apply_loop_delay = Some(Duration::from_millis(300));
    let migration = Postponed::start(&mut conn, &db, config).await;
    for (start, case) in (1..3000)
        .step_by(100)
        .zip(["UPPER", "LOWER"].iter().cycle())
    {
        on_both(
            &mut conn,
            &db,
            &format!(
                "UPDATE {{T}} SET name = {case}(REPLACE(name, 'k-', 'K-')) WHERE n BETWEEN {start} AND {}",
                start + 149
            ),
        )
        .await;
    }
    on_both(
        &mut conn,
        &db,
        "UPDATE {T} SET name = CONCAT(name, ' ') WHERE n % 3 = 0",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let summary = migration
        .finish()
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert!(summary.parallel_apply_generations > 0, "{summary:?}");
    assert_checksum_repaired_nothing(&summary);
    let bytes = "CAST(name AS BINARY), n";
    let migrated = rows(&mut conn, &db, "t", bytes, "n").await;
    let control = rows(&mut conn, &db, "control", bytes, "n").await;
    assert_same_rows(&migrated, &control, "migrated table vs control");
}

/// Migrates `t` of `db` while four writers change rows among `keys` keys
/// and every apply is slowed by `apply_delay`; the migration must end
/// within `limit` while the load still runs (`stuck` says why it would
/// not). Returns the summary and the transactions the load committed.
async fn migrate_with_slow_apply(
    db: &str,
    keys: u64,
    apply_delay: Duration,
    limit: Duration,
    stuck: &str,
    locking_apply: bool,
) -> (shadowcut::Summary, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let (stats, writers) = load(db, 4, &stop, keys);
    let mut config = config(db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.failpoints.apply_delay = Some(apply_delay);
    config.locking_apply = locking_apply;
    let outcome = tokio::time::timeout(limit, shadowcut::run(&config)).await;
    let transactions = stats.transactions.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("a writer failed");
    }
    let summary = outcome
        .unwrap_or_else(|_| panic!("the migration did not end within {limit:?}: {stuck}"))
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert!(summary.keys_applied > 0, "{summary:?}");
    (summary, transactions)
}

/// Writers delete and re-insert rows of every batch while each batch is
/// applied slowly, so a batch's re-read keeps missing rows the tail saw
/// exist. Each miss is explained by a later change, yet a batch rolled
/// back and retried whole meets a new one on every retry and never
/// applies. The migration must finish while the load still runs, with the
/// re-read after a fence (MariaDB's default) and share-locked
/// (`--locking-apply`, MySQL's only way).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_apply_while_writers_keep_deleting_their_rows() {
    for locking_apply in [false, true] {
        let mut conn = client(&primary()).await;
        let prefix = if locking_apply {
            "churnlocking"
        } else {
            "churn"
        };
        let db = setup(&mut conn, prefix, 2000).await;
        let (summary, transactions) = migrate_with_slow_apply(
            &db,
            2000,
            Duration::from_millis(150),
            Duration::from_secs(75),
            "a batch was retried whole on every shortfall",
            locking_apply,
        )
        .await;
        assert!(transactions > 200, "the load barely ran: {transactions}");
        assert_checksum_repaired_nothing(&summary);
        assert_matches_control(&mut conn, &db).await;
    }
}

/// Writers keep changing a handful of hot rows while every batch is
/// applied slowly, so the buffer is never empty when the applier looks.
/// A flush (the catch-up before the checksum and the cut-over) must still
/// end: its marker counts as applied once every key changed before it is,
/// not when the buffer happens to be empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flush_ends_while_hot_rows_keep_changing() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "hotflush", 30).await;
    let (_, transactions) = migrate_with_slow_apply(
        &db,
        10,
        Duration::from_millis(40),
        Duration::from_secs(90),
        "a flush waited for an empty buffer",
        false,
    )
    .await;
    assert!(transactions > 100, "the load barely ran: {transactions}");
    assert_matches_control(&mut conn, &db).await;
}
