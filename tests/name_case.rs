//! A table named in another case than it was created in, on a server that
//! ignores the case of names (`lower_case_table_names=1`): the server finds
//! it, and writes its name in lower case to the binlog. The tail must
//! know its row events and the changelog's as the run's.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::extra_server::ExtraServer;
use common::*;

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
