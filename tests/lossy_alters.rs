//! ALTERs that cannot hold the existing data fail clearly, before the swap,
//! with the original intact and the tool's tables removed: never a silent
//! truncation, a NULL turned into 0, or a row dropped by a new unique key.

mod common;

use common::*;
use mysql_async::prelude::*;
use mysql_async::{Conn, Value};

async fn table_with(prefix: &str, rows: &str) -> (mysql_async::Conn, String, Vec<Vec<Value>>) {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, prefix).await;
    conn.query_drop(format!(
        "CREATE TABLE `{db}`.`t` (id INT NOT NULL PRIMARY KEY, a INT NULL, b VARCHAR(20) NULL) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.`t` VALUES {rows}"))
        .await
        .unwrap();
    let before = rows_all(&mut conn, &db).await;
    (conn, db, before)
}

async fn rows_all(conn: &mut mysql_async::Conn, db: &str) -> Vec<Vec<Value>> {
    rows(conn, db, "t", "*", "id").await
}

async fn assert_fails_cleanly(prefix: &str, data: &str, alter: &str, needle: &str) {
    let (mut conn, db, before) = table_with(prefix, data).await;
    let err = shadowcut::run(&config(&db, "t", alter))
        .await
        .expect_err("the migration should have refused to lose data");
    let text = err.to_string();
    assert!(text.contains(needle), "{alter}: {text}");
    assert!(text.contains(&format!("`{db}`.`t`")), "{text}");
    assert_eq!(
        tables(&mut conn, &db).await,
        vec!["t"],
        "{alter}: tool tables left behind"
    );
    assert_eq!(
        rows_all(&mut conn, &db).await,
        before,
        "{alter}: the original changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowing_a_number_that_does_not_fit_fails() {
    assert_fails_cleanly(
        "narrowint",
        "(1, 5, 'x'), (2, 1000, 'y'), (3, NULL, NULL)",
        "MODIFY a TINYINT",
        "Out of range",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowing_a_string_that_does_not_fit_fails() {
    assert_fails_cleanly(
        "narrowstr",
        "(1, 5, 'ab'), (2, 6, 'abcdef')",
        "MODIFY b VARCHAR(3)",
        "truncated",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_null_over_nulls_fails() {
    assert_fails_cleanly(
        "notnull",
        "(1, 5, 'ab'), (2, NULL, 'c')",
        "MODIFY a INT NOT NULL",
        "cannot be null",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_index_over_duplicates_fails() {
    assert_fails_cleanly(
        "dupunique",
        "(1, 7, 'a'), (2, 8, 'b'), (3, 7, 'c')",
        "ADD UNIQUE INDEX a_uq (a)",
        "collide on a unique key",
    )
    .await;
}

/// `MODIFY a TINYINT` copied and held before the cut-over, then row 2 set
/// to a value the new type cannot hold.
async fn narrowed_then_unfit(prefix: &str) -> (Conn, String, Postponed) {
    let (mut conn, db, _) = table_with(prefix, "(1, 5, 'x'), (2, 6, 'y')").await;
    let migration = Postponed::start(&mut conn, &db, config(&db, "t", "MODIFY a TINYINT")).await;
    conn.query_drop(format!("UPDATE `{db}`.`t` SET a = 1000 WHERE id = 2"))
        .await
        .unwrap();
    (conn, db, migration)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_does_not_fit_after_the_copy_fails() {
    let (mut conn, db, migration) = narrowed_then_unfit("narrowtail").await;
    let err = migration
        .finish()
        .await
        .expect_err("a value the new type cannot hold went through");
    assert!(err.to_string().contains("Out of range"), "{err}");
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
}

/// The class of fuzzer seed 9641: a row that the new table cannot hold for
/// a moment (here out of range; there a character the new character set
/// lacks) and that a later change fixes. The native ALTER, run after the
/// fix, succeeds; so must the migration: the applier waits for the fix as
/// it waits for a colliding unique key, instead of failing at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_does_not_fit_for_a_moment_is_waited_out() {
    let (mut conn, db, migration) = narrowed_then_unfit("narrowfix").await;
    // Long enough for the applier to meet the value (it reads the binlog
    // within milliseconds; the test above fails on the same value).
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    conn.query_drop(format!("UPDATE `{db}`.`t` SET a = 7 WHERE id = 2"))
        .await
        .unwrap();
    migration
        .finish()
        .await
        .expect("a value fixed by a later change must not fail the migration");
    assert_eq!(
        rows_all(&mut conn, &db).await,
        [["1", "5", "x"], ["2", "7", "y"]]
            .map(|row| row.map(|v| Value::Bytes(v.into())).to_vec())
            .to_vec()
    );
    assert!(definition(&mut conn, &db, "t")
        .await
        .contains("`a` tinyint"));
}

/// A row the new table refuses, which a writer keeps locked most of the
/// time: the applier finds it busy and defers it, again and again. That
/// must not restart its 30 s of patience, or the migration waits for as
/// long as the writer writes (fuzzer seed 43016). The writer goes on for
/// up to 90 s; the migration must fail on its own before that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_kept_busy_by_a_writer_still_fails_the_migration() {
    let (mut conn, db, migration) = narrowed_then_unfit("refusedbusy").await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (done, db) = (done.clone(), db.clone());
        tokio::spawn(async move {
            let mut conn = client(&primary()).await;
            let started = std::time::Instant::now();
            let mut n = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if started.elapsed() > std::time::Duration::from_secs(90) {
                    return false;
                }
                n += 1;
                conn.query_drop("START TRANSACTION").await.unwrap();
                conn.query_drop(format!("UPDATE `{db}`.`t` SET b = 'y{n}' WHERE id = 2"))
                    .await
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                conn.query_drop("COMMIT").await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            true
        })
    };
    let err = migration
        .finish()
        .await
        .expect_err("a value the new type cannot hold went through");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        writer.await.unwrap(),
        "the migration waited for as long as the writer wrote"
    );
    assert!(err.to_string().contains("kept refusing"), "{err}");
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
}

/// A row the new table refuses, once nothing else waits and the tail has
/// read everything, is the original's data breaking the ALTER: the run
/// fails after the applier's 5 s for that case, not its 30 s for a refusal
/// a later change may still fix (`a_change_that_does_not_fit_for_a_moment_is_waited_out`
/// fixes the row 1 s later, and passes). Nothing is swapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_row_with_nothing_else_waiting_fails_within_seconds() {
    let (mut conn, db, migration) = narrowed_then_unfit("refusedsettled").await;
    let started = std::time::Instant::now();
    let err = migration
        .finish()
        .await
        .expect_err("a value the new type cannot hold went through");
    assert!(
        err.to_string()
            .contains("with every change up to then applied"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "the refusal took {:?} to end the run",
        started.elapsed()
    );
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
}

/// A catch-up that waits behind a row the new table refuses (the applier
/// waits up to 30 s for the change that fixes it) ends as soon as the run
/// is asked to stop: under fuzzer seed 43016 a stop request went unheard
/// for minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_request_ends_a_catch_up_waiting_behind_a_refused_row() {
    let (mut conn, db, before) = table_with("stopwait", "(1, 5, 'x'), (2, 6, 'y')").await;
    let config = config(&db, "t", "MODIFY a TINYINT");
    let stop = config.stop.clone();
    let migration = Postponed::start(&mut conn, &db, config).await;
    conn.query_drop(format!("UPDATE `{db}`.`t` SET a = 1000 WHERE id = 2"))
        .await
        .unwrap();
    migration.release();
    // The catch-up before the checksum now waits behind row 2, which the
    // applier refuses, for far less than its 30 s of patience.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    stop.raise("the test asks the run to stop");
    let err = migration
        .finish()
        .await
        .expect_err("the run was asked to stop");
    // Stopped, resumable: not the applier's "kept refusing" 30 s later.
    assert!(matches!(err, shadowcut::Error::Suspended { .. }), "{err}");
    let mut after = before;
    after[1][1] = Value::Bytes(b"1000".to_vec());
    assert_eq!(rows_all(&mut conn, &db).await, after);
}

/// The copy's side of the same class (fuzzer seed 11410: a zero date a
/// writer stored for a moment): a row the new table cannot hold when its
/// chunk is copied, which a writer fixes a moment later. Nothing of the
/// refused chunk stays in the new table; the chunk is copied again once
/// the tail has caught up, and the migration ends as a native ALTER run
/// after the fix would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_does_not_fit_when_the_copy_meets_it_is_copied_once_fixed() {
    let (mut conn, db, _) = table_with("copyfix", "(1, 5, 'x'), (2, 1000, 'y'), (3, 7, 'z')").await;
    let socket = std::env::temp_dir().join(format!("{db}.sock"));
    let mut config = config(&db, "t", "MODIFY a TINYINT");
    config.serve.socket_file = Some(socket.clone());
    let mut migration = tokio::spawn(async move { shadowcut::run(&config).await });
    status_until(&socket, &mut migration, "the copy met the unfit row", |s| {
        s["copy_chunks_retried"].as_u64() > Some(0)
    })
    .await;
    conn.query_drop(format!("UPDATE `{db}`.`t` SET a = 6 WHERE id = 2"))
        .await
        .unwrap();
    let summary = migration
        .await
        .unwrap()
        .expect("a row fixed by a later change must not fail the copy");
    assert!(summary.copy_chunks_retried > 0, "{summary:?}");
    assert_clean_checksum(&summary);
    assert_eq!(
        rows_all(&mut conn, &db).await,
        [["1", "5", "x"], ["2", "6", "y"], ["3", "7", "z"]]
            .map(|row| row.map(|v| Value::Bytes(v.into())).to_vec())
            .to_vec()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordering_an_enum_key_is_refused() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "enumkey").await;
    conn.query_drop(format!(
        "CREATE TABLE `{db}`.`t` (k ENUM('a','b','c') NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.`t` VALUES ('a', 1), ('c', 2)"))
        .await
        .unwrap();
    let err = shadowcut::run(&config(&db, "t", "MODIFY k ENUM('c','b','a') NOT NULL"))
        .await
        .expect_err("an enum key whose positions change must be refused");
    assert!(matches!(err, shadowcut::Error::Refused(_)), "{err}");
    assert!(err.to_string().contains("shared key column k"), "{err}");
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
}
