//! Throttling on the sandbox: the flag file and `--max-load` hold the copy
//! back and release it, `--critical-load` stops the run with the original
//! untouched. Load comes from sessions running `SELECT SLEEP(n)`, which
//! count in `Threads_running` while they sleep.
//!
//! The tests share the server's `Threads_running` and its replica, so each
//! holds [`LOAD`] for writing: they run one at a time.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::*;
use mysql_async::Conn;

static LOAD: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

const ROWS: i64 = 2000;

async fn setup(conn: &mut Conn, prefix: &str) -> String {
    simple_table(conn, prefix, ROWS).await
}

fn throttled_config(db: &str) -> shadowcut::Config {
    let mut config = config(db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.throttle.interval = Duration::from_millis(100);
    config
}

/// Rows in the new table, or `None` while it does not exist.
async fn ghost_rows(conn: &mut Conn, db: &str) -> Option<i64> {
    match conn
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.`_t_gho`"))
        .await
    {
        Ok(count) => count,
        Err(mysql_async::Error::Server(e)) if e.code == 1146 => None,
        Err(e) => panic!("counting the new table's rows failed: {e}"),
    }
}

async fn threads_running(conn: &mut Conn) -> u64 {
    let row: Option<(String, u64)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Threads_running'")
        .await
        .unwrap();
    row.unwrap().1
}

/// `n` sessions sleeping `seconds` each, started now.
fn sleepers(n: usize, seconds: u64) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            tokio::spawn(async move {
                let mut c = client(&primary()).await;
                c.query_drop(format!("DO SLEEP({seconds})")).await.unwrap();
            })
        })
        .collect()
}

/// Twelve sleeping sessions for 3 s, running once this returns, and a
/// `Threads_running` value they make the server reach.
async fn busy_server(conn: &mut Conn) -> (u64, Vec<tokio::task::JoinHandle<()>>) {
    let baseline = threads_running(conn).await;
    let busy = sleepers(12, 3);
    while threads_running(conn).await < baseline + 10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (baseline + 8, busy)
}

/// Waits until the new table is ready, then checks that it stays empty for
/// `hold`: nothing is copied while throttled. A migration that ends
/// meanwhile fails the test with its outcome.
async fn assert_nothing_copied_for(
    conn: &mut Conn,
    db: &str,
    hold: Duration,
    migration: &mut tokio::task::JoinHandle<shadowcut::Result<shadowcut::Summary>>,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let until = loop {
        if migration.is_finished() {
            panic!("the migration ended while throttled: {:?}", migration.await);
        }
        // The changelog comes after the last ALTER of the new table (which
        // may rebuild it, so that it briefly does not exist), and just
        // before the throttle's first look.
        if tables(conn, db).await.iter().any(|t| t == "_t_ghc") {
            break Instant::now() + hold;
        }
        assert!(Instant::now() < deadline, "the new table never appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    while Instant::now() < until {
        if migration.is_finished() {
            panic!("the migration ended while throttled: {:?}", migration.await);
        }
        assert_eq!(
            ghost_rows(conn, db).await,
            Some(0),
            "rows were copied while throttled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn assert_migrated(conn: &mut Conn, db: &str) {
    let count: Option<i64> = conn
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.`t` WHERE extra = 1"))
        .await
        .unwrap();
    assert_eq!(count, Some(ROWS));
}

/// Waits for a migration released from its throttle, and checks it.
async fn finish_released(
    conn: &mut Conn,
    db: &str,
    migration: tokio::task::JoinHandle<shadowcut::Result<shadowcut::Summary>>,
) {
    let summary = tokio::time::timeout(Duration::from_secs(60), migration)
        .await
        .expect("the migration did not end once released")
        .unwrap()
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert_eq!(summary.rows_copied, ROWS as u64);
    assert_migrated(conn, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_flag_file_holds_the_copy_until_removed() {
    let _exclusive = LOAD.write().await;
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "throttleflag").await;
    let flag = std::env::temp_dir().join(format!("{db}.throttle"));
    std::fs::write(&flag, b"").unwrap();
    let mut config = throttled_config(&db);
    config.throttle.flag_file = Some(flag.clone());
    let mut migration = tokio::spawn(async move { shadowcut::run(&config).await });
    assert_nothing_copied_for(&mut conn, &db, Duration::from_millis(1500), &mut migration).await;
    std::fs::remove_file(&flag).unwrap();
    finish_released(&mut conn, &db, migration).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_load_holds_the_copy_while_the_server_is_busy() {
    let _exclusive = LOAD.write().await;
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "throttleload").await;
    let (limit, busy) = busy_server(&mut conn).await;
    let mut config = throttled_config(&db);
    config.throttle.max_load =
        shadowcut::throttle::parse_load_limits(&format!("Threads_running={limit}")).unwrap();
    let mut migration = tokio::spawn(async move { shadowcut::run(&config).await });
    assert_nothing_copied_for(&mut conn, &db, Duration::from_millis(1000), &mut migration).await;
    for s in busy {
        s.await.unwrap();
    }
    finish_released(&mut conn, &db, migration).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn critical_load_stops_the_run_and_leaves_the_original() {
    let _exclusive = LOAD.write().await;
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "throttlecrit").await;
    let (limit, busy) = busy_server(&mut conn).await;
    let mut config = throttled_config(&db);
    config.throttle.critical_load =
        shadowcut::throttle::parse_load_limits(&format!("Threads_running={limit}")).unwrap();
    config.throttle.critical_load_interval = Duration::from_millis(200);
    let err = tokio::time::timeout(Duration::from_secs(60), shadowcut::run(&config))
        .await
        .expect("the migration did not stop")
        .expect_err("a crossed critical load must stop the run");
    assert!(
        matches!(err, shadowcut::Error::CriticalLoad { .. }),
        "{err}"
    );
    assert_eq!(err.exit_code(), shadowcut::ExitCode::CriticalLoad);
    assert!(err.to_string().contains("Threads_running="), "{err}");
    for s in busy {
        s.await.unwrap();
    }
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
    let columns: Option<i64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't'",
            (&db,),
        )
        .await
        .unwrap();
    assert_eq!(columns, Some(2), "the original is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_misspelt_status_variable_is_refused() {
    let _exclusive = LOAD.write().await;
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "throttletypo").await;
    let mut config = throttled_config(&db);
    config.throttle.max_load = shadowcut::throttle::parse_load_limits("Threads_runing=10").unwrap();
    let err = shadowcut::run(&config)
        .await
        .expect_err("an unknown variable never throttles: refuse it");
    assert!(err.to_string().contains("Threads_runing"), "{err}");
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
    // The dry run says so too, before anyone runs --execute.
    config.execute = false;
    let err = shadowcut::run(&config)
        .await
        .expect_err("the dry run checks the limits");
    assert!(err.to_string().contains("Threads_runing"), "{err}");
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_throttle_query_holds_the_copy_while_it_returns_more_than_zero() {
    let _exclusive = LOAD.write().await;
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "throttlequery").await;
    conn.query_drop(format!(
        "CREATE TABLE `{db}`.`hold` (id INT PRIMARY KEY) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    conn.query_drop(format!("INSERT INTO `{db}`.`hold` VALUES (1)"))
        .await
        .unwrap();
    let mut config = throttled_config(&db);
    config.throttle.throttle_query = Some(format!("SELECT COUNT(*) FROM `{db}`.`hold`"));
    let mut migration = tokio::spawn(async move { shadowcut::run(&config).await });
    assert_nothing_copied_for(&mut conn, &db, Duration::from_millis(1000), &mut migration).await;
    conn.query_drop(format!("DELETE FROM `{db}`.`hold`"))
        .await
        .unwrap();
    finish_released(&mut conn, &db, migration).await;
}

/// Stops the replica's SQL thread, runs the migration with `watch` telling
/// it which replicas to watch, checks that nothing is copied while the
/// replica lags, restarts the thread and checks that the run finishes.
async fn held_by_a_stopped_replica(prefix: &str, watch: impl FnOnce(&mut shadowcut::Config)) {
    let _exclusive = LOAD.write().await;
    let replica_config = replica().expect("needs the sandbox replica (SHADOWCUT_TEST_REPLICA_DSN)");
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, prefix).await;
    let mut replica_conn = client(&replica_config).await;
    replica_conn
        .query_drop("STOP SLAVE SQL_THREAD")
        .await
        .unwrap();
    // Whatever happens below, the replica replicates again afterwards.
    let _restart = common::cli::SqlOnDrop {
        config: replica_config.clone(),
        statements: vec!["START SLAVE SQL_THREAD".into()],
    };
    let mut config = throttled_config(&db);
    watch(&mut config);
    config.throttle.max_lag = Duration::from_millis(1000);
    let mut migration = tokio::spawn(async move { shadowcut::run(&config).await });
    assert_nothing_copied_for(&mut conn, &db, Duration::from_millis(2000), &mut migration).await;
    replica_conn
        .query_drop("START SLAVE SQL_THREAD")
        .await
        .unwrap();
    finish_released(&mut conn, &db, migration).await;
}

/// Replica lag made real by stopping the replica's SQL thread: the run is
/// held back (the changelog, then its heartbeat, does not reach the
/// replica) and released once the thread runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_lag_holds_the_copy_until_the_replica_catches_up() {
    let replica_config = replica().expect("needs the sandbox replica (SHADOWCUT_TEST_REPLICA_DSN)");
    held_by_a_stopped_replica("throttlelag", |config| {
        config.throttle.replicas = vec![replica_config];
    })
    .await;
}

/// Without --throttle-control-replicas, the replicas registered with the
/// primary are found and watched: the stopped replica holds the run back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_found_on_the_primary_holds_the_copy_while_it_lags() {
    held_by_a_stopped_replica("throttlefound", |config| {
        config.throttle.discover_replicas = true;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_latency_guard_holds_the_copy_while_the_canary_is_slow() {
    let _exclusive = LOAD.write().await;
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "throttlelatency").await;
    conn.query_drop(format!(
        "CREATE TABLE `{db}`.knob (slow INT NOT NULL); INSERT INTO `{db}`.knob VALUES (1)"
    ))
    .await
    .unwrap();
    let mut config = throttled_config(&db);
    config.throttle.max_query_latency = Some(Duration::from_millis(40));
    // As slow as the knob says: 100 ms a look, then nothing.
    config.throttle.latency_query = Some(format!(
        "SELECT SLEEP(IF((SELECT slow FROM `{db}`.knob) = 1, 0.1, 0))"
    ));
    let mut migration = tokio::spawn(async move { shadowcut::run(&config).await });
    assert_nothing_copied_for(&mut conn, &db, Duration::from_millis(1000), &mut migration).await;
    conn.query_drop(format!("UPDATE `{db}`.knob SET slow = 0"))
        .await
        .unwrap();
    finish_released(&mut conn, &db, migration).await;
}

/// The default canary (a primary-key lookup of the first row) runs on the
/// real table and, on an idle server, throttles nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_latency_canary_runs_and_lets_an_idle_migration_through() {
    let _exclusive = LOAD.write().await;
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "throttlecanary").await;
    let mut config = throttled_config(&db);
    config.throttle.max_query_latency = Some(Duration::from_millis(2000));
    let migration = tokio::spawn(async move { shadowcut::run(&config).await });
    finish_released(&mut conn, &db, migration).await;
}

/// With less free space on the data directory's disk than
/// `--min-free-disk` (here: a terabyte more than there is), the copy waits
/// and the status says why; the disk is seen through MariaDB's `disks`
/// plugin, installed here when missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn min_free_disk_holds_the_copy_while_the_disk_is_short() {
    let _exclusive = LOAD.write().await;
    let mut conn = client(&primary()).await;
    ensure_plugin(&mut conn, "DISKS", "disks").await;
    let datadir: String = conn.query_first("SELECT @@datadir").await.unwrap().unwrap();
    let free: u64 = conn
        .exec_first(
            "SELECT Available * 1024 FROM information_schema.DISKS WHERE ? LIKE CONCAT(Path, '%') ORDER BY LENGTH(Path) DESC LIMIT 1",
            (&datadir,),
        )
        .await
        .unwrap()
        .expect("no disk holds the data directory");
    let db = setup(&mut conn, "minfreedisk").await;
    let socket = std::env::temp_dir().join(format!("{db}.sock"));
    let mut config = throttled_config(&db);
    config.throttle.min_free_disk = Some(free + (1 << 40));
    config.serve.socket_file = Some(socket.clone());
    let stop = config.stop.clone();
    let mut migration = tokio::spawn(async move { shadowcut::run(&config).await });
    assert_nothing_copied_for(&mut conn, &db, Duration::from_millis(1000), &mut migration).await;
    let reason = status(&socket).await["throttled"].to_string();
    assert!(reason.contains("min-free-disk"), "{reason}");
    stop.panic("test done");
    let result = tokio::time::timeout(Duration::from_secs(30), migration)
        .await
        .expect("the run did not stop")
        .unwrap();
    assert!(
        matches!(result, Err(shadowcut::Error::Panicked { .. })),
        "{result:?}"
    );
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
}
