//! The tail stops the migration, loudly and before any swap, on changes it
//! cannot apply safely: DDL or TRUNCATE on the table by someone else, and
//! statement-based writes to it.

mod common;

use std::time::Duration;

use common::*;
use mysql_async::prelude::*;

async fn run_with_foreign_statement(
    prefix: &str,
    statements: &[&str],
) -> (shadowcut::Error, Vec<String>) {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, prefix).await;
    conn.query_drop(format!(
        "CREATE TABLE `{db}`.`t` (id INT NOT NULL PRIMARY KEY, a INT) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    let values: Vec<String> = (1..=300).map(|i| format!("({i}, {i})")).collect();
    conn.query_drop(format!(
        "INSERT INTO `{db}`.`t` VALUES {}",
        values.join(",")
    ))
    .await
    .unwrap();
    let migration =
        Postponed::start(&mut conn, &db, config(&db, "t", "ADD COLUMN extra INT")).await;
    conn.query_drop(format!("USE `{db}`")).await.unwrap();
    for stmt in statements {
        conn.query_drop(*stmt).await.unwrap();
    }
    // The flag stays until finish(): the tail alone must stop the run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let result = tokio::time::timeout(Duration::from_secs(30), migration.finish())
        .await
        .expect("the migration did not stop");
    let error = result.expect_err("the migration went on after a foreign statement");
    (error, tables(&mut conn, &db).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_ddl_on_the_table_stops_the_migration() {
    let (error, tables) =
        run_with_foreign_statement("ddl", &["ALTER TABLE t ADD COLUMN sneaky INT"]).await;
    assert!(matches!(error, shadowcut::Error::Tail { .. }), "{error}");
    assert!(
        error.to_string().contains("not issued by shadowcut"),
        "{error}"
    );
    assert_eq!(tables, vec!["t"], "artifacts left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncate_stops_the_migration() {
    let (error, tables) = run_with_foreign_statement("trunc", &["TRUNCATE TABLE t"]).await;
    assert!(error.to_string().contains("TRUNCATE"), "{error}");
    assert_eq!(tables, vec!["t"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_based_writes_stop_the_migration() {
    let (error, tables) = run_with_foreign_statement(
        "stmt",
        &[
            "SET SESSION binlog_format = 'STATEMENT'",
            "UPDATE t SET a = a + 1 WHERE id < 10",
        ],
    )
    .await;
    assert!(error.to_string().contains("statement-based"), "{error}");
    assert_eq!(tables, vec!["t"]);
}

/// A partition exchanged with the table trades all of its rows at once, in
/// one DDL statement that names the table only after `WITH TABLE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_exchanged_with_the_table_stops_the_migration() {
    let (error, tables) = run_with_foreign_statement(
        "exchange",
        &[
            "CREATE TABLE other (id INT NOT NULL PRIMARY KEY, a INT) ENGINE=InnoDB \
             PARTITION BY RANGE (id) (PARTITION p VALUES LESS THAN MAXVALUE)",
            "INSERT INTO other VALUES (1000, 1)",
            "ALTER TABLE other EXCHANGE PARTITION p WITH TABLE t",
        ],
    )
    .await;
    assert!(
        error.to_string().contains("not issued by shadowcut"),
        "{error}"
    );
    assert_eq!(tables, vec!["other", "t"]);
}

/// MariaDB binlogs `SET STATEMENT ... FOR` with its prefix: the statement
/// after `FOR` is the one read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncate_behind_set_statement_stops_the_migration() {
    let (error, tables) = run_with_foreign_statement(
        "setstmt",
        &["SET STATEMENT lock_wait_timeout = 5 FOR TRUNCATE TABLE t"],
    )
    .await;
    assert!(error.to_string().contains("TRUNCATE"), "{error}");
    assert_eq!(tables, vec!["t"]);
}

/// A statement is read in its own session's sql_mode, which its binlog
/// event carries: under ANSI_QUOTES, `"t"` names the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_written_with_ansi_quotes_stops_the_migration() {
    let (error, tables) = run_with_foreign_statement(
        "ansiddl",
        &[
            "SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')",
            r#"ALTER TABLE "t" COMMENT 'it''s \'quoted\'', ADD COLUMN "sneaky" INT"#,
        ],
    )
    .await;
    assert!(
        error.to_string().contains("not issued by shadowcut"),
        "{error}"
    );
    assert_eq!(tables, vec!["t"]);
}
