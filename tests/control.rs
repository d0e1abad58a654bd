//! Live commands on the sandbox: every command sent over the unix socket of
//! a real migration changes what `status` says, `throttle` and a live
//! `max-load` hold the copy back, `unpostpone` ends a postponed cut-over,
//! and `panic` (the command, or the flag file through the binary) aborts
//! with the original untouched.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use mysql_async::prelude::*;
use mysql_async::Conn;

const ROWS: i64 = 3000;

async fn setup(conn: &mut Conn, prefix: &str) -> String {
    simple_table(conn, prefix, ROWS).await
}

fn scratch(db: &str, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{db}.{name}"))
}

async fn rows_copied(socket: &Path) -> u64 {
    status(socket).await["rows_copied"].as_u64().unwrap()
}

/// Asserts that the copy makes no progress for `hold`.
async fn assert_held(socket: &Path, hold: Duration, why: &str) {
    let before = rows_copied(socket).await;
    tokio::time::sleep(hold).await;
    assert_eq!(
        rows_copied(socket).await,
        before,
        "rows were copied while {why}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_command_over_the_socket_changes_the_status_and_unpostpone_cuts_over() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "ctlcommands").await;
    let socket = scratch(&db, "sock");
    let postpone = scratch(&db, "postpone");
    std::fs::write(&postpone, b"").unwrap();
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.chunk_size = 100;
    config.chunk_time = None;
    config.copy_threads = 1;
    config.throttle.interval = Duration::from_millis(100);
    config.failpoints.chunk_delay = Some(Duration::from_millis(40));
    config.postpone_cut_over_flag_file = Some(postpone.clone());
    config.serve.socket_file = Some(socket.clone());
    let mut migration = tokio::spawn(async move { shadowcut::run(&config).await });

    status_until(&socket, &mut migration, "the copy started", |s| {
        s["rows_copied"].as_u64() > Some(0)
    })
    .await;
    assert!(ask(&socket, "throttle").await.starts_with("throttled"));
    let s = status(&socket).await;
    assert!(s["throttled"].as_str().unwrap().contains("operator"), "{s}");
    assert!(ask(&socket, "status")
        .await
        .contains("# throttled: throttled by the operator"));
    // A chunk already dispatched may still land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_held(
        &socket,
        Duration::from_millis(800),
        "throttled by the operator",
    )
    .await;
    assert_eq!(ask(&socket, "no-throttle").await, "no longer throttled\n");

    // A live max-load the server always crosses (the throttle's own query
    // is a running thread) holds the copy; clearing it releases it.
    ask(&socket, "max-load=Threads_running=1").await;
    let s = status_until(&socket, &mut migration, "max-load throttled", |s| {
        s["throttled"]
            .as_str()
            .is_some_and(|t| t.contains("max-load Threads_running="))
    })
    .await;
    assert_eq!(s["max_load"], "Threads_running=1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_held(
        &socket,
        Duration::from_millis(800),
        "over the live max-load",
    )
    .await;
    ask(&socket, "max-load=").await;
    status_until(&socket, &mut migration, "released from max-load", |s| {
        s["throttled"].is_null()
    })
    .await;

    assert_eq!(
        ask(&socket, "chunk-size=250").await,
        "chunk-size=250 from the next chunk on\n"
    );
    status_until(&socket, &mut migration, "chunks of 250 rows", |s| {
        s["chunk_size"] == 250 && s["chunk_size_adaptive"] == false
    })
    .await;
    for (command, field, value) in [
        ("nice-ratio=0.5", "nice_ratio", serde_json::json!(0.5)),
        (
            "max-lag-millis=2500",
            "max_lag_millis",
            serde_json::json!(2500),
        ),
        (
            "critical-load=Threads_running=5000",
            "critical_load",
            serde_json::json!("Threads_running=5000"),
        ),
    ] {
        let answer = ask(&socket, command).await;
        assert!(!answer.starts_with("ERROR"), "{command}: {answer}");
        assert_eq!(status(&socket).await[field], value, "after {command}");
    }
    ask(&socket, "nice-ratio=0").await;
    assert!(ask(&socket, "chunk-size=0").await.starts_with("ERROR"));
    assert!(ask(&socket, "help").await.contains("unpostpone"));

    let s = status_until(&socket, &mut migration, "the cut-over was postponed", |s| {
        s["stage"] == "postponed" && s["postponed"].is_string()
    })
    .await;
    assert!(
        s["postponed"]
            .as_str()
            .unwrap()
            .contains("postpone-cut-over-flag-file"),
        "{s}"
    );
    assert!(ask(&socket, "status")
        .await
        .contains("# postponed: postpone-cut-over-flag-file"));
    let answer = ask(&socket, "unpostpone").await;
    assert!(answer.starts_with("unpostponed"), "{answer}");
    assert!(!postpone.exists(), "unpostpone removes the flag file");
    let summary = tokio::time::timeout(Duration::from_secs(60), migration)
        .await
        .expect("the migration did not end after unpostpone")
        .unwrap()
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert_eq!(summary.rows_copied, ROWS as u64);
    assert_eq!(summary.checksum.as_ref().map(|c| c.mismatches), Some(0));
    assert!(!socket.exists(), "the socket file is removed at the end");
    let migrated: Option<i64> = conn
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.`t` WHERE extra = 1"))
        .await
        .unwrap();
    assert_eq!(migrated, Some(ROWS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_panic_command_aborts_a_postponed_cut_over_and_leaves_the_original() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "ctlpanic").await;
    let socket = scratch(&db, "sock");
    let postpone = scratch(&db, "postpone");
    std::fs::write(&postpone, b"").unwrap();
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.postpone_cut_over_flag_file = Some(postpone.clone());
    config.serve.socket_file = Some(socket.clone());
    let mut migration = tokio::spawn(async move { shadowcut::run(&config).await });
    status_until(&socket, &mut migration, "the cut-over was postponed", |s| {
        s["stage"] == "postponed"
    })
    .await;
    assert!(ask(&socket, "panic").await.starts_with("panic"));
    let err = tokio::time::timeout(Duration::from_secs(30), migration)
        .await
        .expect("the migration did not stop on panic")
        .unwrap()
        .expect_err("panic must abort the run");
    assert!(matches!(err, shadowcut::Error::Panicked { .. }), "{err}");
    assert_eq!(err.exit_code(), shadowcut::ExitCode::Panicked);
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
    let _ = std::fs::remove_file(&postpone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_panic_flag_file_stops_the_binary_with_its_exit_code() {
    let mut conn = client(&primary()).await;
    let db = setup(&mut conn, "ctlpanicflag").await;
    let postpone = scratch(&db, "postpone");
    let panic_flag = scratch(&db, "panic");
    let socket = scratch(&db, "sock");
    std::fs::write(&postpone, b"").unwrap();
    let creator = {
        let (panic_flag, socket) = (panic_flag.clone(), socket.clone());
        tokio::spawn(async move {
            // Once the migration serves commands it has passed its checks.
            while !socket.exists() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            std::fs::write(&panic_flag, b"").unwrap();
        })
    };
    let out = cli::shadowcut(
        &primary(),
        &db,
        "t",
        "ADD COLUMN extra INT NOT NULL DEFAULT 1",
        &[
            "--execute",
            "--postpone-cut-over-flag-file",
            postpone.to_str().unwrap(),
            "--panic-flag-file",
            panic_flag.to_str().unwrap(),
            "--serve-socket-file",
            socket.to_str().unwrap(),
        ],
    )
    .await;
    creator.await.unwrap();
    assert_eq!(out.code, Some(7), "{out}");
    assert!(
        out.error_line().contains("aborted by the operator"),
        "{out}"
    );
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
    for f in [postpone, panic_flag] {
        let _ = std::fs::remove_file(f);
    }
}
