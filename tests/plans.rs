//! `--verify-queries` on the sandbox: the dry run names the index a listed
//! query uses and the ALTER drops; before the swap, the plans on the
//! filled new table show the new full scan, and `--postpone-on-worse-plan`
//! holds the swap (the reason in status) until `unpostpone`.

mod common;

use std::time::Duration;

use common::*;
use mysql_async::prelude::*;

const ROWS: i64 = 2000;
const ALTER: &str = "DROP INDEX a_idx, ADD COLUMN c INT NULL";

async fn setup(conn: &mut mysql_async::Conn, prefix: &str) -> (String, std::path::PathBuf) {
    let db = simple_table(conn, prefix, ROWS).await;
    conn.query_drop(format!("ALTER TABLE `{db}`.`t` ADD INDEX a_idx (a)"))
        .await
        .unwrap();
    conn.query_drop(format!("ANALYZE TABLE `{db}`.`t`"))
        .await
        .unwrap();
    let queries = std::env::temp_dir().join(format!("{db}.queries.sql"));
    std::fs::write(
        &queries,
        "-- by a: the index the ALTER drops\nSELECT id FROM t WHERE a = 3;\n# by the key\nSELECT * FROM `t` WHERE id = 5;\n",
    )
    .unwrap();
    (db, queries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_names_the_index_a_listed_query_loses() {
    let mut conn = client(&primary()).await;
    let (db, queries) = setup(&mut conn, "plansdry").await;
    let out = cli::shadowcut(
        &primary(),
        &db,
        "t",
        ALTER,
        &["--verify-queries", queries.to_str().unwrap()],
    )
    .await;
    cli::assert_success(&out);
    assert!(
        out.stdout.contains("[WORSE] SELECT id FROM t WHERE a = 3"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("uses index a_idx, which the new table lacks"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("[unchanged] SELECT * FROM `t` WHERE id = 5"),
        "{out}"
    );
    assert_eq!(tables(&mut conn, &db).await, vec!["t"]);

    // An index taken off for the copy and built after it is not lost.
    let out = cli::shadowcut(
        &primary(),
        &db,
        "t",
        "ADD COLUMN c INT NULL",
        &[
            "--verify-queries",
            queries.to_str().unwrap(),
            "--build-indexes-after-copy",
        ],
    )
    .await;
    cli::assert_success(&out);
    assert!(
        out.stdout.contains("[indexes] ALTER TABLE"),
        "a_idx is built after the copy\n{out}"
    );
    assert!(
        out.stdout
            .contains("[unchanged] SELECT id FROM t WHERE a = 3"),
        "{out}"
    );
    std::fs::remove_file(queries).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worse_plan_postpones_the_swap_until_unpostpone() {
    let mut conn = client(&primary()).await;
    let (db, queries) = setup(&mut conn, "plansworse").await;
    let socket = std::env::temp_dir().join(format!("{db}.sock"));
    let mut config = config(&db, "t", ALTER);
    config.chunk_size = 500;
    config.verify_queries = shadowcut::plans::read_queries(&queries).unwrap();
    config.postpone_on_worse_plan = true;
    config.serve.socket_file = Some(socket.clone());
    let mut migration = tokio::spawn(async move { shadowcut::run(&config).await });
    let s = status_until(
        &socket,
        &mut migration,
        "the worse plan postponed the swap",
        |s| {
            s["postponed"]
                .as_str()
                .is_some_and(|p| p.contains("worse query plan"))
        },
    )
    .await;
    let reason = s["postponed"].as_str().unwrap();
    assert!(reason.contains("SELECT id FROM t WHERE a = 3"), "{reason}");
    assert!(reason.contains("new full scan of t"), "{reason}");
    assert!(
        !reason.contains("id = 5"),
        "the key lookup kept its plan: {reason}"
    );
    // Held, not just slow: still postponed a while later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(status(&socket).await["postponed"].is_string());
    assert!(ask(&socket, "unpostpone").await.starts_with("unpostponed"));
    let summary = tokio::time::timeout(Duration::from_secs(60), migration)
        .await
        .expect("the migration did not end after unpostpone")
        .unwrap()
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    let by_a = &summary.query_plans[0];
    assert!(by_a.worse, "{by_a:?}");
    assert!(by_a.before.keys.contains("a_idx"), "{by_a:?}");
    assert!(
        by_a.after.as_ref().unwrap().full_scans.contains("_t_gho"),
        "{by_a:?}"
    );
    let by_key = &summary.query_plans[1];
    assert!(!by_key.worse, "{by_key:?}");
    std::fs::remove_file(queries).unwrap();
}
