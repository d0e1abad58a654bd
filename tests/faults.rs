//! Faults a long migration meets on the sandbox. The server's wait_timeout
//! reaps idle connections: the run's own connections (the run lock, the
//! main one, the applier's, all idle while the cut-over is postponed) must
//! outlive it.
//!
//! These tests change the server's globals: they live in their own test
//! binary, which runs alone.

mod common;

use std::time::Duration;

use common::*;
use mysql_async::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_migration_outlives_a_five_second_wait_timeout() {
    let mut conn = client(&primary()).await;
    let db = simple_table(&mut conn, "waittimeout", 2000).await;
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
    let postpone = std::env::temp_dir().join(format!("{db}.postpone"));
    std::fs::write(&postpone, b"").unwrap();
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.postpone_cut_over_flag_file = Some(postpone.clone());
    let migration = tokio::spawn(async move { shadowcut::run(&config).await });
    // Twice the timeout with every connection of the run idle.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert!(!migration.is_finished(), "{:?}", migration.await);
    std::fs::remove_file(&postpone).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(60), migration)
        .await
        .expect("the migration did not end")
        .unwrap()
        .unwrap_or_else(|e| panic!("the migration did not outlive wait_timeout=5: {e}"));
    assert_eq!(summary.rows_copied, 2000);
    assert_eq!(summary.checksum.as_ref().map(|c| c.mismatches), Some(0));
    let migrated: Option<i64> = conn
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.`t` WHERE extra = 1"))
        .await
        .unwrap();
    assert_eq!(migrated, Some(2000));
}

/// The run lock's connection is killed while the cut-over is postponed:
/// before the swap the run finds it no longer holds the lock (another
/// migration of the table could have started) and stops, the original
/// untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lost_run_lock_stops_the_run_before_the_swap() {
    let mut conn = client(&primary()).await;
    let db = simple_table(&mut conn, "lostlock", 500).await;
    let postpone = std::env::temp_dir().join(format!("{db}.postpone"));
    std::fs::write(&postpone, b"").unwrap();
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 1");
    config.postpone_cut_over_flag_file = Some(postpone.clone());
    let migration = tokio::spawn(async move { shadowcut::run(&config).await });
    let lock = shadowcut::shadow::RunLock::lock_name(&db, "t");
    let holder = loop {
        let holder: Option<Option<u64>> = conn
            .exec_first("SELECT IS_USED_LOCK(?)", (&lock,))
            .await
            .unwrap();
        if let Some(Some(id)) = holder {
            break id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    conn.query_drop(format!("KILL CONNECTION {holder}"))
        .await
        .unwrap();
    std::fs::remove_file(&postpone).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(60), migration)
        .await
        .expect("the migration did not end")
        .unwrap()
        .expect_err("a run without its lock must not swap");
    assert!(
        err.to_string().contains("no longer holds its lock"),
        "{err}"
    );
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);
}
