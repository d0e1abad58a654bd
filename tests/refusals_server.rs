//! Pre-flight refusals caused by the server's binary log settings, end to end
//! through the `shadowcut` binary: binary logging off, a binlog_ignore_db
//! filter on the database (each on a throwaway server of its own), and
//! binlog_format / binlog_row_image changed with SET GLOBAL on the shared
//! sandbox.
//!
//! This is its own test binary because it changes server globals: cargo runs
//! test binaries one after another, so no other binary sees them. Inside
//! this binary the tests that change globals hold [`GLOBALS`], and a guard
//! restores every global, even when an assertion fails.

mod common;

use common::cli::*;
use common::extra_server::ExtraServer;

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;
use shadowcut::server::ConnectConfig;

/// Held by every test that changes a global of the shared sandbox.
static GLOBALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs a dry run and an --execute run of a valid ALTER on `db`.`t` of
/// `server`; both must be refused with `needles`, leave no tool table and
/// change nothing.
async fn check_refusal(server: &ConnectConfig, conn: &mut Conn, db: &str, needles: &[&str]) {
    let before = snapshot(conn, db).await;
    assert_eq!(before.tables, vec!["t".to_string()], "fixture");
    for extra in [&[][..], &["--execute"][..]] {
        let out = shadowcut(
            server,
            db,
            "t",
            "ADD COLUMN c INT NOT NULL DEFAULT 0",
            extra,
        )
        .await;
        assert_refused(&out, db, "t", needles);
        assert!(
            !out.stdout.contains("Dry run for") && !out.stdout.contains("Migrated "),
            "a refused run reported success\n{out}"
        );
        // Comparing the whole table list also proves that no `_t_gho`,
        // `_t_ghc` or `_t_del` was left behind.
        assert_eq!(
            snapshot(conn, db).await,
            before,
            "{extra:?} changed the schema\n{out}"
        );
    }
}

/// Creates a fresh database on `server` holding `t` with a few rows.
async fn setup(server: &ConnectConfig, name: Option<&str>, prefix: &str) -> (Conn, String) {
    let mut conn = common::client(server).await;
    let db = match name {
        Some(name) => {
            conn.query_drop(format!("CREATE DATABASE `{name}`"))
                .await
                .unwrap();
            name.to_string()
        }
        None => common::fresh_database(&mut conn, prefix).await,
    };
    conn.query_drop(format!(
        "CREATE TABLE {} (id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL) ENGINE=InnoDB",
        q(&db, "t")
    ))
    .await
    .unwrap();
    conn.query_drop(format!(
        "INSERT INTO {} VALUES (1, 'a'), (2, 'b'), (3, 'c')",
        q(&db, "t")
    ))
    .await
    .unwrap();
    (conn, db)
}

// ---------------------------------------------------------------------------
// Throwaway servers and restored globals
// ---------------------------------------------------------------------------

/// Sets a global variable of the shared sandbox; the returned guard puts
/// the old value back. Numbers are written bare (boolean variables refuse
/// '0' as a string).
async fn set_global(conn: &mut Conn, name: &str, value: &str) -> SqlOnDrop {
    let old: String = conn
        .query_first(format!("SELECT @@GLOBAL.{name}"))
        .await
        .unwrap()
        .unwrap();
    let sql_value = |v: &str| {
        if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
            v.to_string()
        } else {
            format!("'{v}'")
        }
    };
    let guard = SqlOnDrop {
        config: common::primary(),
        statements: vec![format!("SET GLOBAL {name} = {}", sql_value(&old))],
    };
    conn.query_drop(format!("SET GLOBAL {name} = {}", sql_value(value)))
        .await
        .unwrap();
    guard
}

fn drop_database_on_exit(server: &ConnectConfig, db: &str) -> SqlOnDrop {
    SqlOnDrop {
        config: server.clone(),
        statements: vec![format!("DROP DATABASE IF EXISTS `{db}`")],
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_server_without_binary_log() {
    let server = ExtraServer::start(&["--no-replica", "--no-binlog"]).await;
    let (mut conn, db) = setup(&server.config, None, "ref_nobinlog").await;
    let log_bin: String = conn
        .query_first("SELECT @@GLOBAL.log_bin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log_bin, "0", "the extra server writes a binlog after all");
    check_refusal(
        &server.config,
        &mut conn,
        &db,
        &[
            "binary logging is off on this server (log_bin=OFF)",
            "--log-bin",
        ],
    )
    .await;
    conn.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_database_that_binlog_ignore_db_filters_out() {
    let ignored = format!("ref_ignored_{}", std::process::id());
    let server = ExtraServer::start(&[
        "--no-replica",
        &format!("--extra-arg=--binlog-ignore-db={ignored}"),
    ])
    .await;
    let (mut conn, db) = setup(&server.config, Some(&ignored), "").await;
    check_refusal(
        &server.config,
        &mut conn,
        &db,
        &[&format!("binlog_ignore_db includes database {ignored}")],
    )
    .await;

    // The control: a database the filter does not name passes on the same server.
    let (mut other_conn, other) = setup(&server.config, None, "ref_notignored").await;
    let out = shadowcut(&server.config, &other, "t", "ADD COLUMN c INT", &[]).await;
    assert_success(&out);
    assert_eq!(common::tables(&mut other_conn, &other).await, vec!["t"]);
    other_conn.disconnect().await.unwrap();
    conn.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_binlog_format_other_than_row() {
    let _serial = GLOBALS.lock().await;
    let primary = common::primary();
    let (mut conn, db) = setup(&primary, None, "ref_binlogformat").await;
    let _cleanup = drop_database_on_exit(&primary, &db);
    {
        let _restore = set_global(&mut conn, "binlog_format", "MIXED").await;
        check_refusal(
            &primary,
            &mut conn,
            &db,
            &[
                "binlog_format is MIXED, not ROW",
                "SET GLOBAL binlog_format='ROW'",
            ],
        )
        .await;
    }
    let format: String = conn
        .query_first("SELECT @@GLOBAL.binlog_format")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(format, "ROW", "binlog_format was not restored");
    // Restored, the same dry run passes.
    let out = shadowcut(&primary, &db, "t", "ADD COLUMN c INT", &[]).await;
    assert_success(&out);
    assert_eq!(common::tables(&mut conn, &db).await, vec!["t"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_binlog_row_image_other_than_full() {
    let _serial = GLOBALS.lock().await;
    let primary = common::primary();
    let (mut conn, db) = setup(&primary, None, "ref_rowimage").await;
    let _cleanup = drop_database_on_exit(&primary, &db);
    {
        let _restore = set_global(&mut conn, "binlog_row_image", "MINIMAL").await;
        check_refusal(
            &primary,
            &mut conn,
            &db,
            &[
                "binlog_row_image is MINIMAL, not FULL",
                "SET GLOBAL binlog_row_image='FULL'",
            ],
        )
        .await;
    }
    let image: String = conn
        .query_first("SELECT @@GLOBAL.binlog_row_image")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(image, "FULL", "binlog_row_image was not restored");
    let out = shadowcut(&primary, &db, "t", "ADD COLUMN c INT", &[]).await;
    assert_success(&out);
    assert_eq!(common::tables(&mut conn, &db).await, vec!["t"]);
}

/// A column added NOT NULL without a DEFAULT to a table with rows gets a
/// zero datetime in every row: refused while the server's sql_mode has
/// NO_ZERO_DATE (the native ALTER fails with error 1292 then), accepted
/// otherwise (fuzzer seed 9636). MariaDB gives a TIMESTAMP its zero value
/// even then, and so does the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_date_for_existing_rows_is_refused_under_no_zero_date() {
    let _serial = GLOBALS.lock().await;
    let primary = common::primary();
    let (mut conn, db) = setup(&primary, None, "ref_zerofill").await;
    let _cleanup = drop_database_on_exit(&primary, &db);
    let alter = "ADD COLUMN d DATETIME NOT NULL";
    {
        let mode: String = conn
            .query_first("SELECT @@GLOBAL.sql_mode")
            .await
            .unwrap()
            .unwrap();
        let _restore = set_global(&mut conn, "sql_mode", &format!("{mode},NO_ZERO_DATE")).await;
        let before = snapshot(&mut conn, &db).await;
        let out = shadowcut(&primary, &db, "t", alter, &["--execute"]).await;
        assert_refused(
            &out,
            &db,
            "t",
            &["adds `d` NOT NULL without a DEFAULT", "NO_ZERO_DATE"],
        );
        assert_eq!(snapshot(&mut conn, &db).await, before, "{out}");

        // A TIMESTAMP gets its zero value natively all the same (MariaDB):
        // refused until 2026-12-01 (fuzzer seed 60092), now migrated.
        let out = shadowcut(
            &primary,
            &db,
            "t",
            "ADD COLUMN ts TIMESTAMP(3) NOT NULL",
            &["--execute", "--ok-to-drop-table"],
        )
        .await;
        assert_success(&out);
        let (zeros, rows): (i64, i64) = conn
            .query_first(format!(
                "SELECT SUM(ts = '0000-00-00 00:00:00.000'), COUNT(*) FROM `{db}`.`t`"
            ))
            .await
            .unwrap()
            .unwrap();
        assert!(
            rows > 0 && zeros == rows,
            "{zeros} of {rows} rows got the zero TIMESTAMP"
        );
    }
    let out = shadowcut(&primary, &db, "t", alter, &[]).await;
    assert_success(&out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_sql_mode_restrictions_are_kept() {
    let _serial = GLOBALS.lock().await;
    let server = common::primary();
    let (mut conn, db) = setup(&server, None, "sqlmode").await;
    let _restore = set_global(
        &mut conn,
        "sql_mode",
        "STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION",
    )
    .await;
    let before = snapshot(&mut conn, &db).await;
    // The server itself refuses this default natively.
    let out = shadowcut(
        &server,
        &db,
        "t",
        "ADD COLUMN dt DATETIME NOT NULL DEFAULT '1970-00-00 00:00:00'",
        &["--execute"],
    )
    .await;
    assert_refused(&out, &db, "t", &["Invalid default value"]);
    assert_eq!(snapshot(&mut conn, &db).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_autocommit_off_changes_nothing() {
    let _serial = GLOBALS.lock().await;
    let server = common::primary();
    let (mut conn, db) = setup(&server, None, "autocommit").await;
    conn.query_drop(format!(
        "CREATE TABLE {} LIKE {}",
        q(&db, "control"),
        q(&db, "t")
    ))
    .await
    .unwrap();
    conn.query_drop(format!(
        "INSERT INTO {} SELECT * FROM {}",
        q(&db, "control"),
        q(&db, "t")
    ))
    .await
    .unwrap();
    // This connection keeps autocommit on; every new one gets it off.
    let _restore = set_global(&mut conn, "autocommit", "0").await;
    let mut config = common::config(&db, "t", "ADD COLUMN c INT NOT NULL DEFAULT 0");
    config.chunk_size = 1;
    let migration = common::Postponed::start(&mut conn, &db, config).await;
    common::on_both(&mut conn, &db, "INSERT INTO {T} VALUES (4, 'd')").await;
    common::on_both(&mut conn, &db, "UPDATE {T} SET v = 'x' WHERE id = 1").await;
    migration
        .finish()
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    let migrated = common::rows(&mut conn, &db, "t", "id, v", "id").await;
    let control = common::rows(&mut conn, &db, "control", "id, v", "id").await;
    common::assert_same_rows(&migrated, &control, "migrated table vs control");
}

/// A throwaway primary and replica (`args` for `scripts/sandbox start`),
/// a fresh database `t` on the primary and replayed on the replica: the
/// server (stopped when dropped), the replica's address, a connection to
/// each and the database's name.
async fn extra_primary_and_replica(
    args: &[&str],
    prefix: &str,
) -> (ExtraServer, ConnectConfig, Conn, String, Conn) {
    let server = ExtraServer::start(args).await;
    let replica = server
        .replica
        .clone()
        .expect("the extra sandbox has a replica");
    let (primary_conn, db) = setup(&server.config, None, prefix).await;
    let replica_conn = replicated_table(&replica, &db).await;
    (server, replica, primary_conn, db, replica_conn)
}

/// Waits until `replica` has `db`.`t` (the primary's setup replayed).
async fn replicated_table(replica: &ConnectConfig, db: &str) -> Conn {
    let mut conn = common::client(replica).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while common::tables(&mut conn, db).await != vec!["t".to_string()] {
        assert!(
            Instant::now() < deadline,
            "the replica never replayed {db}.t"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    conn
}

async fn column_count(conn: &mut Conn, db: &str) -> i64 {
    conn.exec_first(
        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't'",
        (db,),
    )
    .await
    .unwrap()
    .unwrap()
}

/// Pointed at a replica whose binlog lacks what it replays
/// (log_slave_updates off), shadowcut would read no change the replica
/// replays, whether it writes on the primary or (`--migrate-on-replica`)
/// on the replica: refused both ways, both servers as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_replica_without_log_slave_updates_even_to_migrate_it_alone() {
    let (_server, replica, mut primary_conn, db, mut replica_conn) =
        extra_primary_and_replica(&["--no-log-replica-updates"], "ref_nologupdates").await;
    let updates: String = replica_conn
        .query_first("SELECT @@GLOBAL.log_slave_updates")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updates, "0",
        "the extra replica logs what it replays after all"
    );
    check_refusal(
        &replica,
        &mut replica_conn,
        &db,
        &["log_slave_updates is OFF", "point shadowcut at the primary"],
    )
    .await;
    let out = shadowcut(
        &replica,
        &db,
        "t",
        "ADD COLUMN c INT NOT NULL DEFAULT 0",
        &["--execute", "--migrate-on-replica"],
    )
    .await;
    assert_refused(
        &out,
        &db,
        "t",
        &["log_slave_updates is OFF", "before --migrate-on-replica"],
    );
    assert_eq!(column_count(&mut replica_conn, &db).await, 2);
    assert_eq!(column_count(&mut primary_conn, &db).await, 2);
}

/// A replica whose replication is stopped would never see the primary's
/// changes in its binlog: refused, both servers untouched; asked with
/// `--migrate-on-replica`, it is migrated alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_replica_whose_replication_is_stopped() {
    let (_server, replica, mut primary_conn, db, mut replica_conn) =
        extra_primary_and_replica(&[], "ref_replstopped").await;
    replica_conn
        .query_drop("STOP SLAVE SQL_THREAD")
        .await
        .unwrap();
    check_refusal(
        &replica,
        &mut replica_conn,
        &db,
        &["replication from", "is stopped", "START SLAVE"],
    )
    .await;
    assert_eq!(column_count(&mut primary_conn, &db).await, 2);

    // Asked to, it migrates the replica alone (nothing replays meanwhile).
    let out = shadowcut(
        &replica,
        &db,
        "t",
        "ADD COLUMN c INT NOT NULL DEFAULT 0",
        &["--execute", "--migrate-on-replica"],
    )
    .await;
    assert_success(&out);
    assert_eq!(column_count(&mut replica_conn, &db).await, 3);
    assert_eq!(
        column_count(&mut primary_conn, &db).await,
        2,
        "--migrate-on-replica changed the primary"
    );
}

/// Sessions that start with `sql_log_bin=0` (here through `init_connect`,
/// which runs for users without CONNECTION ADMIN) would write the new table
/// outside the binlog: a refusal (exit code 3), not a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_sessions_that_start_without_binary_logging() {
    let _serial = GLOBALS.lock().await;
    let primary = common::primary();
    let (mut conn, db) = setup(&primary, None, "ref_nologbin").await;
    let _cleanup = drop_database_on_exit(&primary, &db);
    let user = format!("nologbin_{}", std::process::id());
    conn.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY 'nologbin-pw'; \
         GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'%'; \
         GRANT RELOAD, REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR, BINLOG ADMIN ON *.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    let _drop_user = SqlOnDrop {
        config: primary.clone(),
        statements: vec![format!("DROP USER IF EXISTS '{user}'@'%'")],
    };
    let _restore = set_global(&mut conn, "init_connect", "SET SESSION sql_log_bin = 0").await;
    let mut restricted = primary.clone();
    restricted.user = user;
    restricted.password = Some("nologbin-pw".into());
    let out = shadowcut(&restricted, &db, "t", "ADD COLUMN c INT", &["--execute"]).await;
    assert_eq!(out.code, Some(REFUSED), "{out}");
    assert!(out.error_line().contains("sql_log_bin=0"), "{out}");
    assert_eq!(common::tables(&mut conn, &db).await, vec!["t"]);
}

/// Pointed at a replica whose primary is read_only (the application does
/// not write there: a failed-over or wrongly named primary), shadowcut
/// refuses instead of writing on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_read_only_primary_found_from_a_replica() {
    let (_server, replica, mut primary_conn, db, mut replica_conn) =
        extra_primary_and_replica(&[], "ref_readonly").await;
    primary_conn
        .query_drop("SET GLOBAL read_only = 1")
        .await
        .unwrap();
    check_refusal(
        &replica,
        &mut replica_conn,
        &db,
        &["is read_only", "--assume-master-host"],
    )
    .await;
    assert_eq!(column_count(&mut primary_conn, &db).await, 2);
}
