//! Faults a long migration meets on the sandbox. The server's wait_timeout
//! reaps idle connections: the run's own connections (the run lock, the
//! main one, the applier's, all idle while the cut-over is postponed) must
//! outlive it.
//!
//! These tests change the server's globals (wait_timeout, a plugin): they
//! live in their own test binary, and run one at a time.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use mysql_async::prelude::*;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migration_outlives_a_five_second_wait_timeout() {
    let _serial = SERIAL.lock().await;
    let mut conn = client(&primary()).await;
    let db = churn_tables(&mut conn, "waittimeout", 2000).await;
    let old: u64 = conn
        .query_first("SELECT @@GLOBAL.wait_timeout")
        .await
        .unwrap()
        .unwrap();
    let _restore = cli::SqlOnDrop {
        config: primary(),
        statements: vec![format!("SET GLOBAL wait_timeout = {old}")],
    };
    conn.query_drop("SET GLOBAL wait_timeout = 5")
        .await
        .unwrap();
    // The writers never sit idle for 5 s; the run's connections do.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (_stats, writers) = load_t_and_control(&db, 3, &stop, |rng| churn_transaction(rng, 2000));
    let postpone = std::env::temp_dir().join(format!("{db}.postpone"));
    std::fs::write(&postpone, b"").unwrap();
    let alter = "ADD COLUMN extra INT NOT NULL DEFAULT 1";
    let mut config = config(&db, "t", alter);
    config.postpone_cut_over_flag_file = Some(postpone.clone());
    let migration = tokio::spawn(async move { shadowcut::run(&config).await });
    // Twice the timeout with the main connection and the run lock idle.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(!migration.is_finished(), "{:?}", migration.await);
    std::fs::remove_file(&postpone).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(60), migration)
        .await
        .expect("the migration did not end")
        .unwrap();
    stop_load(&stop, writers).await;
    let summary =
        result.unwrap_or_else(|e| panic!("the migration did not outlive wait_timeout=5: {e}"));
    assert_clean_checksum(&summary);
    let what = "migrated under wait_timeout=5 vs control";
    assert_t_as_native_alter(&mut conn, &db, alter, "id, a, b, extra", what).await;
}

/// Waits until the run lock of `db`.`t` is held and returns its holder.
async fn run_lock_holder(conn: &mut mysql_async::Conn, db: &str) -> u64 {
    let lock = shadowcut::shadow::RunLock::lock_name(db, "t", false);
    loop {
        let holder: Option<Option<u64>> = conn
            .exec_first("SELECT IS_USED_LOCK(?)", (&lock,))
            .await
            .unwrap();
        if let Some(Some(id)) = holder {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The run lock's connection is killed while the cut-over is postponed.
/// Nobody else holds the lock: the run takes it again on a fresh
/// connection and swaps. Another session took it meanwhile (another
/// migration of the table could have started): the run stops before the
/// swap, the original untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_run_lock_is_taken_again_unless_another_holds_it() {
    let _serial = SERIAL.lock().await;
    let mut conn = client(&primary()).await;
    for taken_meanwhile in [false, true] {
        let db = simple_table(&mut conn, "lostlock", 500).await;
        let postpone = std::env::temp_dir().join(format!("{db}.postpone"));
        std::fs::write(&postpone, b"").unwrap();
        let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
        config.postpone_cut_over_flag_file = Some(postpone.clone());
        let migration = tokio::spawn(async move { shadowcut::run(&config).await });
        wait_for_watermark(&mut conn, &db).await;
        let holder = run_lock_holder(&mut conn, &db).await;
        conn.query_drop(format!("KILL CONNECTION {holder}"))
            .await
            .unwrap();
        let mut rival = client(&primary()).await;
        if taken_meanwhile {
            let lock = shadowcut::shadow::RunLock::lock_name(&db, "t", false);
            let got: Option<i64> = rival
                .exec_first("SELECT GET_LOCK(?, 5)", (&lock,))
                .await
                .unwrap();
            assert_eq!(got, Some(1));
        }
        std::fs::remove_file(&postpone).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(60), migration)
            .await
            .expect("the migration did not end")
            .unwrap();
        if taken_meanwhile {
            let err = result.expect_err("a run without its lock must not swap");
            assert!(
                err.to_string()
                    .contains("another connection has taken it since"),
                "{err}"
            );
            assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
        } else {
            let summary = result.unwrap_or_else(|e| panic!("the lock was not taken again: {e}"));
            assert_eq!(summary.rows_copied, 500);
            let migrated: Option<i64> = conn
                .query_first(format!("SELECT COUNT(*) FROM `{db}`.`t` WHERE extra = 1"))
                .await
                .unwrap();
            assert_eq!(migrated, Some(500));
        }
        let _ = rival.disconnect().await;
    }
}

/// A session in a transaction that read `db`.`t` (it keeps the table's
/// metadata lock until it ends), and its connection id.
async fn open_transaction_on(db: &str) -> (mysql_async::Conn, u32) {
    let mut holder = client(&primary()).await;
    holder
        .query_drop(format!(
            "START TRANSACTION; SELECT COUNT(*) FROM `{db}`.`t`"
        ))
        .await
        .unwrap();
    let id = holder.id();
    (holder, id)
}

/// Migrates `db`.`t` (1 s lock timeout, 3 attempts, the cut-over
/// postponed while `postpone` exists) while a client writes every 20 ms;
/// the outcome and the client's longest wait.
async fn cut_over_next_to_a_writer(
    db: &str,
    postpone: Option<std::path::PathBuf>,
) -> (shadowcut::Result<shadowcut::Summary>, Duration) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = write_probe(db, 2, &stop);
    let mut config = config(db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.cut_over_lock_timeout = Duration::from_secs(1);
    config.cut_over_attempts = 3;
    config.postpone_cut_over_flag_file = postpone;
    let result = tokio::time::timeout(Duration::from_secs(90), shadowcut::run(&config))
        .await
        .expect("the cut-over did not give up");
    stop.store(true, Ordering::Relaxed);
    (result, probe.await.unwrap())
}

/// A long transaction holds the table (an open transaction that read it
/// keeps its metadata lock): every cut-over attempt must give up within
/// the lock timeout, so that the application's writes, queued behind it,
/// never wait much longer; the run ends cleanly after its attempts, the
/// original untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_transaction_never_makes_clients_wait_past_the_timeout() {
    let _serial = SERIAL.lock().await;
    let mut conn = client(&primary()).await;
    let db = simple_table(&mut conn, "longtrx", 500).await;
    let (mut holder, _) = open_transaction_on(&db).await;
    let (result, longest) = cut_over_next_to_a_writer(&db, None).await;
    holder.query_drop("ROLLBACK").await.unwrap();
    let err = result.expect_err("the transaction holds the table through every attempt");
    assert_eq!(err.exit_code(), shadowcut::ExitCode::CutOver, "{err}");
    assert!(
        longest <= Duration::from_secs(2),
        "a client waited {longest:?}, past the 1 s lock timeout plus 1 s"
    );
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
    eprintln!("longest client wait: {longest:?}; {err}");
}

/// Where the server shows metadata locks (MariaDB's `metadata_lock_info`
/// plugin, installed here for the test; MySQL's performance_schema), the
/// cut-over sees the long transaction that holds the table and does not
/// lock behind it at all: clients never queue, and the run gives up after
/// its attempts, naming the holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_visible_long_transaction_is_not_locked_behind() {
    let _serial = SERIAL.lock().await;
    let mut conn = client(&primary()).await;
    let _uninstall = show_metadata_locks(&mut conn).await;
    let db = simple_table(&mut conn, "visibletrx", 500).await;
    let (mut holder, holder_id) = open_transaction_on(&db).await;
    // The transaction must be older than the lock timeout to count.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (result, longest) = cut_over_next_to_a_writer(&db, None).await;
    holder.query_drop("ROLLBACK").await.unwrap();
    let reason = format!("connection {holder_id} has held the table");
    assert_gave_up_without_locking(result, longest, &reason, &mut conn, &db).await;
}

/// The cut-over never locked (a client's longest wait stayed short), and
/// gave up after its attempts for `reason`, leaving only the original.
async fn assert_gave_up_without_locking(
    result: shadowcut::Result<shadowcut::Summary>,
    longest: Duration,
    reason: &str,
    conn: &mut mysql_async::Conn,
    db: &str,
) {
    let err = result.expect_err("the holder held the table through every attempt");
    assert_eq!(err.exit_code(), shadowcut::ExitCode::CutOver, "{err}");
    assert!(err.to_string().contains(reason), "{err}");
    assert!(
        longest < Duration::from_millis(500),
        "a client waited {longest:?} although no attempt locked"
    );
    assert_eq!(tables(conn, db).await, vec!["t"]);
}

/// Installs MariaDB's `metadata_lock_info` plugin for the test's length
/// when it is missing (the guard uninstalls it).
async fn show_metadata_locks(conn: &mut mysql_async::Conn) -> Option<cli::SqlOnDrop> {
    let installed: Option<String> = conn
        .query_first("SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'METADATA_LOCK_INFO'")
        .await
        .unwrap();
    if installed.is_some() {
        return None;
    }
    conn.query_drop("INSTALL SONAME 'metadata_lock_info'")
        .await
        .unwrap();
    Some(cli::SqlOnDrop {
        config: primary(),
        statements: vec!["UNINSTALL SONAME 'metadata_lock_info'".into()],
    })
}

/// A backup in progress (`BACKUP STAGE`) would hold the swap's RENAME and
/// every client behind it: where the server shows metadata locks, the
/// cut-over does not lock while it runs, clients never queue, and the run
/// gives up after its attempts naming the backup, the original untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_backup_is_not_locked_behind() {
    let _serial = SERIAL.lock().await;
    let mut conn = client(&primary()).await;
    let _uninstall = show_metadata_locks(&mut conn).await;
    let db = simple_table(&mut conn, "backup", 500).await;
    let postpone = std::env::temp_dir().join(format!("{db}.postpone"));
    std::fs::write(&postpone, b"").unwrap();
    // The backup starts once the copy is done (a later stage would block
    // the run's own DDL as well), then the cut-over is released.
    let backup = {
        let (db, postpone) = (db.clone(), postpone.clone());
        tokio::spawn(async move {
            let mut c = client(&primary()).await;
            wait_for_copy_complete(&mut c, &db, "t").await;
            c.query_drop("BACKUP STAGE START").await.unwrap();
            std::fs::remove_file(&postpone).unwrap();
            c
        })
    };
    let (result, longest) = cut_over_next_to_a_writer(&db, Some(postpone)).await;
    let mut backup = backup.await.unwrap();
    let backup_id = backup.id();
    backup.query_drop("BACKUP STAGE END").await.unwrap();
    let reason = format!("connection {backup_id} is taking a backup");
    assert_gave_up_without_locking(result, longest, &reason, &mut conn, &db).await;
}

/// Writes mirrored on `t` and `control` (`id`, `a`).
fn mirrored_write(rng: &mut Rng, rows: u64) -> Vec<Statement> {
    let id = mysql_async::Value::from(rng.below(rows + 50) as i64);
    let a = mysql_async::Value::from(rng.below(1000) as i64);
    match rng.below(3) {
        0 => vec![(
            "INSERT INTO {T} (id, a) VALUES (?, ?) ON DUPLICATE KEY UPDATE a = VALUES(a)".into(),
            vec![id, a],
        )],
        1 => vec![("UPDATE {T} SET a = ? WHERE id = ?".into(), vec![a, id])],
        _ => vec![("DELETE FROM {T} WHERE id = ?".into(), vec![id])],
    }
}

/// The binlog dump connection is killed twice during the copy, under a
/// mirrored write load: the tail reopens the stream where it stopped (at a
/// transaction boundary) and the migrated table ends equal to the control,
/// with a checksum that found nothing to repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_binlog_connection_is_reopened_where_it_stopped() {
    let _serial = SERIAL.lock().await;
    const ROWS: i64 = 3000;
    let mut conn = client(&primary()).await;
    let db = simple_table(&mut conn, "killdump", ROWS).await;
    conn.query_drop(format!(
        "CREATE TABLE `{db}`.control LIKE `{db}`.t; INSERT INTO `{db}`.control SELECT * FROM `{db}`.t"
    ))
    .await
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stats, writers) =
        load_t_and_control(&db, 3, &stop, |rng| mirrored_write(rng, ROWS as u64));
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.failpoints.chunk_delay = Some(Duration::from_millis(40));
    let killer = {
        let db = db.clone();
        tokio::spawn(async move {
            let mut c = client(&primary()).await;
            let mut kills = 0;
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while kills < 2 && std::time::Instant::now() < deadline {
                let copying: Option<i64> = c
                    .query_first(format!("SELECT COUNT(*) FROM `{db}`.`_t_gho`"))
                    .await
                    .unwrap_or(None);
                if copying.unwrap_or(0) > 0 {
                    let dumps: Vec<u64> = c
                        .query("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'shadowcut' AND COMMAND LIKE 'Binlog Dump%'")
                        .await
                        .unwrap();
                    for id in dumps {
                        let _ = c.query_drop(format!("KILL CONNECTION {id}")).await;
                        kills += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(700)).await;
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            kills
        })
    };
    let result = tokio::time::timeout(Duration::from_secs(120), shadowcut::run(&config))
        .await
        .expect("the migration did not end");
    let kills = killer.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop_load(&stop, writers).await;
    let summary = result.unwrap_or_else(|e| panic!("the migration did not survive the kills: {e}"));
    assert!(kills >= 2, "the binlog connection was killed {kills} times");
    assert!(
        stats.transactions.load(Ordering::Relaxed) > 50,
        "the load barely ran"
    );
    assert_clean_checksum(&summary);
    assert_t_equals_control(&mut conn, &db, "id, a").await;
}

/// SIGHUP (a closed SSH session) stops the binary at a safe point like
/// SIGTERM: exit code 130, the original untouched, the new table and the
/// changelog kept, and the message says how to continue (by default
/// SIGHUP would end the process at once). `--resume` then finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_stops_at_a_resumable_point_and_resume_finishes() {
    let _serial = SERIAL.lock().await;
    let mut conn = client(&primary()).await;
    let db = simple_table(&mut conn, "sighup", 500).await;
    let postpone = std::env::temp_dir().join(format!("{db}.postpone"));
    std::fs::write(&postpone, b"").unwrap();
    let child = cli::spawn_on_t(
        &db,
        "ADD COLUMN extra INT",
        &[
            "--execute",
            "--postpone-cut-over-flag-file",
            postpone.to_str().unwrap(),
        ],
        &[],
    );
    // Postponed: the changelog exists and the copy is done.
    wait_for_copy_complete(&mut conn, &db, "t").await;
    std::process::Command::new("kill")
        .args(["-HUP", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("SIGHUP did not stop the run")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("SIGHUP"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    assert_eq!(
        tables(&mut conn, &db).await,
        vec!["t", "_t_ghc", "_t_gho"],
        "{stderr}"
    );
    let _ = std::fs::remove_file(&postpone);
    let mut resumed = config(&db, "t", "ADD COLUMN extra INT");
    resumed.resume = true;
    let summary = shadowcut::run(&resumed)
        .await
        .unwrap_or_else(|e| panic!("the resumed run failed: {e}"));
    assert_eq!(summary.rows_copied, 0, "the copy was complete: {summary:?}");
    assert_eq!(summary.checksum.as_ref().map(|c| c.mismatches), Some(0));
    let migrated: Option<i64> = conn
        .query_first(format!(
            "SELECT COUNT(*) FROM `{db}`.`t` WHERE extra IS NULL"
        ))
        .await
        .unwrap();
    assert_eq!(migrated, Some(500));
}

/// Kills, in turn, a connection seen running a statement that starts with
/// one of each group of `prefixes`, while `run` goes on; returns how many
/// were killed.
async fn kill_statements_of<T>(
    prefixes: &[&[String]],
    run: &tokio::task::JoinHandle<T>,
    within: Duration,
) -> usize {
    let mut conn = client(&primary()).await;
    let deadline = std::time::Instant::now() + within;
    let mut killed = 0;
    for group in prefixes {
        let matches = vec!["INFO LIKE ?"; group.len()].join(" OR ");
        let params: Vec<String> = group.iter().map(|p| format!("{p}%")).collect();
        while std::time::Instant::now() < deadline && !run.is_finished() {
            let id: Option<u64> = conn
                .exec_first(
                    format!("SELECT ID FROM information_schema.PROCESSLIST WHERE ({matches}) AND ID <> CONNECTION_ID() LIMIT 1"),
                    params.clone(),
                )
                .await
                .unwrap();
            if let Some(id) = id {
                if conn
                    .query_drop(format!("KILL CONNECTION {id}"))
                    .await
                    .is_ok()
                {
                    killed += 1;
                }
                break;
            }
        }
    }
    killed
}

/// A copy worker's, the applier's and a checksum snapshot's connections
/// are killed mid-run under the mirrored write load: each is opened again
/// and its work done again (a chunk copied again with IGNORE, a batch's
/// keys put back in the buffer, the checksum round compared again in new
/// snapshots). The table ends equal to the control, the checksum repairs
/// nothing. With `--default-retries 0` the first kill fails the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_worker_connections_are_opened_again() {
    let _serial = SERIAL.lock().await;
    for retries in [10, 0] {
        let mut conn = client(&primary()).await;
        let db = churn_tables(&mut conn, "killworker", 8000).await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (_stats, writers) =
            load_t_and_control(&db, 3, &stop, |rng| churn_transaction(rng, 8000));
        let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 7");
        config.default_retries = retries;
        config.failpoints.chunk_delay = Some(Duration::from_millis(20));
        // Many tiny checksum chunks: one is always running to be killed.
        // (With 100 rows a chunk, the checksum sometimes ended before the
        // killer saw one of its statements once its boundaries were
        // computed rather than read.)
        config.checksum_chunk_size = 10;
        let migration = tokio::spawn(async move { shadowcut::run(&config).await });
        let ghost = format!("`{db}`.`_t_gho`");
        let copy = [format!("INSERT IGNORE INTO {ghost}")];
        let apply = [
            format!("DELETE FROM {ghost}"),
            format!("INSERT INTO {ghost}"),
        ];
        let checksum = ["SELECT COUNT(*), CAST(COALESCE(SUM(".to_string()];
        let killed = kill_statements_of(
            &[&copy, &apply, &checksum],
            &migration,
            Duration::from_secs(30),
        )
        .await;
        let result = tokio::time::timeout(Duration::from_secs(120), migration)
            .await
            .expect("the migration did not end")
            .unwrap();
        stop_load(&stop, writers).await;
        if retries == 0 {
            // The first kill ends the run: nothing is left to kill.
            assert!(killed >= 1, "no connection was found to kill");
            assert!(result.is_err(), "survived the kill without retries");
            continue;
        }
        assert_eq!(killed, 3, "every connection was found and killed");
        let summary =
            result.unwrap_or_else(|e| panic!("the migration did not survive the kills: {e}"));
        assert_clean_checksum(&summary);
        let migrated = rows(&mut conn, &db, "t", "id, a, b", "id").await;
        let control = rows(&mut conn, &db, "control", "id, a, b", "id").await;
        assert_same_rows(&migrated, &control, "migrated table vs control");
    }
}

/// Waits until the copy has recorded a watermark (it is under way).
async fn wait_for_watermark(conn: &mut mysql_async::Conn, db: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while changelog_value(conn, db, "t", "state:copy-watermark")
        .await
        .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "the copy never began");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The main connection is killed mid-copy under the mirrored load (it
/// sits idle there): it is opened again after the copy, and the run
/// finishes equal to the control with a checksum that repairs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_main_connection_is_opened_again() {
    let _serial = SERIAL.lock().await;
    let mut conn = client(&primary()).await;
    let db = churn_tables(&mut conn, "killmain", 8000).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (_stats, writers) = load_t_and_control(&db, 3, &stop, |rng| churn_transaction(rng, 8000));
    let alter = "ADD COLUMN extra INT NOT NULL DEFAULT 7";
    let mut config = config(&db, "t", alter);
    config.failpoints.chunk_delay = Some(Duration::from_millis(20));
    // The run's first connection is its main one: every connection opened
    // after this one is the run's (the tests of this binary run one at a
    // time), but for the writers, which use the database.
    let before: u64 = client(&primary())
        .await
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    let migration = tokio::spawn(async move { shadowcut::run(&config).await });
    wait_for_watermark(&mut conn, &db).await;
    let main: u64 = conn
        .exec_first(
            "SELECT MIN(ID) FROM information_schema.PROCESSLIST WHERE ID > ? AND COMMAND <> 'Binlog Dump' \
             AND (DB IS NULL OR DB <> ?)",
            (before, &db),
        )
        .await
        .unwrap()
        .unwrap();
    conn.query_drop(format!("KILL CONNECTION {main}"))
        .await
        .unwrap();
    let result = tokio::time::timeout(Duration::from_secs(60), migration)
        .await
        .expect("the migration did not end")
        .unwrap();
    stop_load(&stop, writers).await;
    let summary = result.unwrap_or_else(|e| panic!("the lost main connection failed the run: {e}"));
    assert_clean_checksum(&summary);
    let what = "migrated table vs control";
    assert_t_as_native_alter(&mut conn, &db, alter, "id, a, b, extra", what).await;
}

/// A restart of the primary mid-copy, under the mirrored load (on a server
/// of the test's own: a clean shutdown, then the same port and data).
/// Down for a second, the run rides it out: the binlog stream, the copy,
/// the applier, the heartbeat, the main connection and the run lock are
/// opened again, and the result equals the control. Down for longer than
/// `--default-retries` last, the run fails, keeps its tables, and
/// `--resume` finishes once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_primary_is_ridden_out_or_resumed() {
    use common::extra_server::ExtraServer;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    let server = ExtraServer::start(&["--no-replica"]).await;
    let alter = "ADD COLUMN extra INT NOT NULL DEFAULT 7";
    let rows_in = 8000;
    for (down, retries) in [(Duration::from_secs(1), 10), (Duration::from_secs(6), 2)] {
        let mut conn = client(&server.config).await;
        let db = churn_tables(&mut conn, "restart", rows_in).await;
        let stop = Arc::new(AtomicBool::new(false));
        let target = LoadTarget {
            config: server.config.clone(),
            db: db.clone(),
            table: "t".into(),
            control: "control".into(),
            reconnect: true,
        };
        let (stats, writers) = start_load(
            target,
            3,
            stop.clone(),
            Duration::from_secs(150),
            move |rng| churn_transaction(rng, rows_in as u64),
        );
        let mut config = config(&db, "t", alter);
        config.connect = server.config.clone();
        config.chunk_size = 100;
        config.chunk_time = None;
        config.default_retries = retries;
        config.failpoints.chunk_delay = Some(Duration::from_millis(50));
        let first = config.clone();
        let migration = tokio::spawn(async move { shadowcut::run(&first).await });
        wait_for_watermark(&mut conn, &db).await;
        server.restart_primary(down).await;
        let outcome = tokio::time::timeout(Duration::from_secs(120), migration)
            .await
            .expect("the migration did not end")
            .unwrap();
        let mut conn = client(&server.config).await;
        let uptime: Option<(String, u64)> = conn
            .query_first("SHOW GLOBAL STATUS LIKE 'Uptime'")
            .await
            .unwrap();
        let summary = if retries == 10 {
            outcome.unwrap_or_else(|e| panic!("the run did not ride out a restart: {e}"))
        } else {
            let err = outcome.expect_err("the run outlived an outage longer than its retries");
            assert!(err.is_connection_lost(), "{err}");
            assert_eq!(
                tables(&mut conn, &db).await,
                vec!["control", "t", "_t_ghc", "_t_gho"],
                "the failed run kept its tables"
            );
            let mut resumed = config.clone();
            resumed.resume = true;
            tokio::time::timeout(Duration::from_secs(120), shadowcut::run(&resumed))
                .await
                .expect("the resumed run did not end")
                .unwrap_or_else(|e| panic!("the resumed run failed: {e}"))
        };
        stop_load(&stop, writers).await;
        assert!(
            uptime.is_some_and(|(_, seconds)| seconds < 100),
            "the server was not restarted during the run"
        );
        assert!(
            stats.reconnects.load(Ordering::Relaxed) > 0,
            "the writers never saw the restart"
        );
        assert_clean_checksum(&summary);
        let what = "migrated across a restart vs control";
        assert_t_as_native_alter(&mut conn, &db, alter, "id, a, b, extra", what).await;
    }
}

/// The copy statement sleeps at each row it reads, so each chunk's rows are
/// written long after its snapshot, while writers update and delete rows
/// of the chunks in flight.
/// The copy reads without locks: a change committed in that window must
/// reach the new table after the chunk's stale copy of the row, never
/// before it (a delete applied first would leave the chunk's copy of the
/// deleted row behind). The table ends equal to the control, and the
/// checksum finds nothing to repair.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_during_a_chunks_read_reach_the_new_table_after_it() {
    let _serial = SERIAL.lock().await;
    let mut conn = client(&primary()).await;
    let db = churn_tables(&mut conn, "chunkrace", 1500).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stats, writers) = load_t_and_control(&db, 4, &stop, |rng| churn_transaction(rng, 1500));
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 7");
    config.failpoints.copy_row_delay = Some(Duration::from_millis(2));
    let summary = shadowcut::run(&config).await.unwrap();
    stop_load(&stop, writers).await;
    assert!(
        stats.transactions.load(Ordering::Relaxed) > 100,
        "the load ran"
    );
    assert_clean_checksum(&summary);
    assert_t_equals_control(&mut conn, &db, "id, a, b").await;
}
