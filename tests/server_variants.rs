//! Migrations on servers of their own, started with settings the shared
//! sandbox must not have.
//!
//! - `lower_case_table_names=1`: a table named in another case than it was
//!   created in is found by the server, which writes its name in lower case
//!   to the binlog; the tail must know its row events and the changelog's
//!   as the run's.
//! - A small `max_allowed_packet`: a row longer than it still counts in
//!   the checksum.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::extra_server::ExtraServer;
use common::*;
use mysql_async::prelude::*;
use mysql_async::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_named_in_upper_case_migrates_with_its_concurrent_writes() {
    let server =
        ExtraServer::start(&["--no-replica", "--extra-arg=--lower-case-table-names=1"]).await;
    let mut conn = client(&server.config).await;
    let db = churn_tables(&mut conn, "namecase", 1000).await;
    let alter = "ADD COLUMN extra INT NOT NULL DEFAULT 7";
    let mut config = shadowcut::Config::new(server.config.clone(), &db, "T", alter);
    config.execute = true;
    config.chunk_size = 50;
    config.chunk_time = None;
    config.checksum_chunk_size = 200;
    config.throttle.discover_replicas = false;
    config.failpoints.chunk_delay = Some(Duration::from_millis(20));

    // Mirrored writes on both tables for as long as the migration runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, connect, db) = (Arc::clone(&stop), server.config.clone(), db.clone());
        tokio::spawn(async move {
            let mut conn = client(&connect).await;
            let mut i: i64 = 0;
            while !stop.load(Ordering::Relaxed) && i < 5000 {
                i += 1;
                let id = (i * 37) % 1200 + 1;
                let stmt = match i % 3 {
                    0 => format!("DELETE FROM {{T}} WHERE id = {id}"),
                    1 => format!("REPLACE INTO {{T}} (id, a, b) VALUES ({id}, {i}, 'w{i}')"),
                    _ => format!("UPDATE {{T}} SET a = a + 1 WHERE id = {id}"),
                };
                on_both(&mut conn, &db, &stmt).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            i
        })
    };
    let outcome = tokio::time::timeout(Duration::from_secs(50), shadowcut::run(&config)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    let summary = outcome
        .expect("the migration hung (the tail did not know the changelog's events?)")
        .unwrap_or_else(|e| panic!("the migration failed: {e}"));
    assert!(
        summary.binlog_rows > 0,
        "no row event was read as the table's: {summary:?}"
    );
    assert_clean_checksum(&summary);
    assert!(writes > 10, "too few writes during the run: {writes}");
    assert_t_as_native_alter(&mut conn, &db, alter, "id, a, b, extra", "t vs control").await;
    conn.disconnect().await.unwrap();
}

/// Under lower_case_table_names=1, `T` and `t` are one table, but GET_LOCK
/// compares names exactly: a second run naming the table the other way
/// took a run lock of its own while the first ran. It is now refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_table_under_two_spellings_takes_one_run_lock() {
    let server =
        ExtraServer::start(&["--no-replica", "--extra-arg=--lower-case-table-names=1"]).await;
    let mut conn = client(&server.config).await;
    let db = churn_tables(&mut conn, "lockcase", 200).await;
    let config_for = |table: &str| {
        let mut config = shadowcut::Config::new(
            server.config.clone(),
            &db,
            table,
            "ADD COLUMN extra INT NOT NULL DEFAULT 7",
        );
        config.execute = true;
        config.throttle.discover_replicas = false;
        config
    };
    let first = Postponed::start(&mut conn, &db, config_for("T")).await;
    let second = shadowcut::run(&config_for("t")).await;
    let finished = first.finish().await;
    let err = second.expect_err("a second run of the same table while the first runs");
    assert!(
        err.to_string()
            .contains("another migration of this table is running"),
        "{err}"
    );
    finished.unwrap_or_else(|e| panic!("the first run failed: {e}"));
    conn.disconnect().await.unwrap();
}

/// CONCAT_WS gives NULL for a result longer than max_allowed_packet, and
/// the chunk's SUM of row checksums skipped such a row: a difference in it
/// went unseen. Two 600 KB values make a row of 1.2 MB on a server whose
/// max_allowed_packet is 1 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_checksum_sees_a_difference_in_a_row_longer_than_max_allowed_packet() {
    let server = ExtraServer::start(&["--no-replica", "--extra-arg=--max-allowed-packet=1M"]).await;
    let mut conn = client(&server.config).await;
    let db = fresh_database(&mut conn, "longrow").await;
    for table in ["t", "control"] {
        conn.query_drop(format!(
            "CREATE TABLE `{db}`.`{table}` (id INT NOT NULL PRIMARY KEY, a MEDIUMBLOB, b MEDIUMBLOB) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
        conn.query_drop(format!(
            "INSERT INTO `{db}`.`{table}` SELECT seq, 'x', 'y' FROM `{db}`.seq_1_to_20"
        ))
        .await
        .unwrap();
        for column in ["a", "b"] {
            conn.query_drop(format!(
                "UPDATE `{db}`.`{table}` SET {column} = REPEAT('{column}', 600000) WHERE id = 7"
            ))
            .await
            .unwrap();
        }
    }
    let mut config =
        shadowcut::Config::new(server.config.clone(), &db, "t", "ADD COLUMN extra INT");
    config.execute = true;
    config.chunk_size = 5;
    config.chunk_time = None;
    config.checksum_chunk_size = 5;
    config.throttle.discover_replicas = false;
    let migration = Postponed::start(&mut conn, &db, config).await;
    conn.query_drop(format!(
        "UPDATE `{db}`.`_t_gho` SET b = CONCAT('B', SUBSTRING(b, 2)) WHERE id = 7"
    ))
    .await
    .unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(60), migration.finish())
        .await
        .expect("the migration hung")
        .unwrap_or_else(|e| panic!("the migration failed: {e}"));
    let report = summary.checksum.expect("the checksum ran");
    assert_eq!((report.mismatches, report.repaired), (1, 1), "{report:?}");
    let same: Option<i64> = conn
        .query_first(format!(
            "SELECT COUNT(*) FROM `{db}`.`t` JOIN `{db}`.`control` USING (id) \
             WHERE t.a = control.a AND t.b = control.b"
        ))
        .await
        .unwrap();
    assert_eq!(same, Some(20));
    conn.disconnect().await.unwrap();
}

/// The ALTER runs in the server's own sql_mode, its text modes included:
/// under PIPES_AS_CONCAT `||` concatenates and under EMPTY_STRING_IS_NULL
/// `DEFAULT ''` is NULL, as in a DBA's native ALTER (the run took those
/// modes out, and gave a generated column `s OR '-x'`), by the copy and by
/// the INSTANT path alike. Where the mode would read the text otherwise
/// than shadowcut reads it (a `"` under ANSI_QUOTES, a `\` under
/// NO_BACKSLASH_ESCAPES), the run is refused before anything is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alter_runs_in_the_servers_text_modes() {
    let server = ExtraServer::start(&[
        "--no-replica",
        "--extra-arg=--sql-mode=STRICT_TRANS_TABLES,PIPES_AS_CONCAT,EMPTY_STRING_IS_NULL,ANSI_QUOTES,NO_BACKSLASH_ESCAPES",
    ])
    .await;
    let mut conn = client(&server.config).await;
    let db = fresh_database(&mut conn, "textmodes").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, s VARCHAR(20) NOT NULL) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (1, 'one'), (2, 'two')",
    )
    .await;
    let config_for = |alter: &str, prefer_instant: bool| {
        let mut config = shadowcut::Config::new(server.config.clone(), &db, "t", alter);
        config.execute = true;
        config.prefer_instant = prefer_instant;
        config.ok_to_drop_table = true;
        config.throttle.discover_replicas = false;
        config
    };
    let mut native = native_session(&server.config).await;
    for (alter, prefer_instant) in [
        (
            "ADD COLUMN g VARCHAR(40) AS (s || '-x') STORED, ADD COLUMN e VARCHAR(5) DEFAULT ''",
            false,
        ),
        ("ADD COLUMN e2 VARCHAR(5) DEFAULT ''", true),
    ] {
        let summary = shadowcut::run(&config_for(alter, prefer_instant))
            .await
            .unwrap_or_else(|e| panic!("{alter}: {e}"));
        assert_eq!(summary.native.is_some(), prefer_instant, "{alter}");
        native
            .query_drop(format!("ALTER TABLE `{db}`.`control` {alter}"))
            .await
            .unwrap();
        assert_eq!(
            definition(&mut conn, &db, "t").await,
            definition(&mut conn, &db, "control").await,
            "{alter}"
        );
        assert_eq!(
            rows(&mut conn, &db, "t", "*", "id").await,
            rows(&mut conn, &db, "control", "*", "id").await,
            "{alter}"
        );
    }
    assert_eq!(
        rows(&mut conn, &db, "t", "g, e", "id").await,
        vec![
            vec![Value::from("one-x"), Value::NULL],
            vec![Value::from("two-x"), Value::NULL]
        ]
    );
    for alter in [
        r#"CHANGE "s" "s2" VARCHAR(20) NOT NULL"#,
        r"ADD COLUMN p VARCHAR(9) DEFAULT 'C:\new'",
    ] {
        let err = shadowcut::run(&config_for(alter, false))
            .await
            .expect_err(alter);
        assert!(err.to_string().contains("reads differently"), "{err}");
        assert_eq!(tables(&mut conn, &db).await, vec!["control", "t"]);
    }
}
