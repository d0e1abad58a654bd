//! The mirrored-load harness: a table shape, its seed rows and the
//! transactions that race against its migration; every change goes to the
//! migrated table and to a control table in one transaction.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::Value;

use super::*;

/// A table shape and the load that races against its migration.
pub struct Shape {
    pub name: &'static str,
    /// CREATE TABLE body with `{T}` for the table name.
    pub create: &'static str,
    /// Columns compared with the control table, and the ORDER BY.
    pub columns: &'static str,
    pub order: &'static str,
    /// Initial rows: (column list, rows of values).
    pub seed: fn(u64) -> (String, Vec<Vec<Value>>),
    pub rows: u64,
    pub alter: &'static str,
    /// Columns of the migrated table matching `columns` of the control
    /// (differs when the ALTER renames or drops columns).
    pub migrated_columns: Option<&'static str>,
    /// The same ALTER, run natively on the control after the load ends,
    /// for type-changing ALTERs: the result must be what the server's own
    /// conversion gives.
    pub control_alter: Option<&'static str>,
    pub transaction: fn(&mut Rng, u64) -> Vec<Statement>,
}

pub fn v<T: Into<Value>>(x: T) -> Value {
    x.into()
}

pub fn maybe_null(rng: &mut Rng, value: Value) -> Value {
    if rng.chance(15) {
        Value::NULL
    } else {
        value
    }
}

/// Writes the seed rows of `shape` to `table` and to the control.
pub async fn seed(conn: &mut mysql_async::Conn, db: &str, table: &str, shape: &Shape) {
    let (columns, data) = (shape.seed)(shape.rows);
    for table in [table, "control"] {
        for batch in data.chunks(500) {
            let width = batch[0].len();
            let one = format!("({})", vec!["?"; width].join(", "));
            let stmt = format!(
                "INSERT INTO `{db}`.`{table}` ({columns}) VALUES {}",
                vec![one; batch.len()].join(", ")
            );
            conn.exec_drop(stmt, batch.iter().flatten().cloned().collect::<Vec<_>>())
                .await
                .unwrap();
        }
    }
}

/// Runs the migration of `shape` under the mirrored load and checks the
/// result; returns the summary.
pub async fn migrate_under_load(shape: Shape, writers: u64) -> shadowcut::Summary {
    migrate_under_load_with(shape, writers, |_| {}).await
}

/// [`migrate_under_load`] with `tune` applied to the migration's
/// configuration.
pub async fn migrate_under_load_with(
    shape: Shape,
    writers: u64,
    tune: impl Fn(&mut shadowcut::Config),
) -> shadowcut::Summary {
    migrate_table_under_load(shape, "t", writers, tune).await
}

/// [`migrate_under_load_with`] on a table named `table`.
pub async fn migrate_table_under_load(
    shape: Shape,
    table: &str,
    writers: u64,
    tune: impl Fn(&mut shadowcut::Config),
) -> shadowcut::Summary {
    let migrated_table = table;
    let migration_config = {
        let tune = &tune;
        move |db: &str| {
            let mut c = config(db, migrated_table, shape.alter);
            tune(&mut c);
            c
        }
    };
    let primary_config = primary();
    let mut conn = client(&primary_config).await;
    let db = fresh_database(&mut conn, shape.name).await;
    for table in [migrated_table, "control"] {
        let create = shape.create.replace("{T}", &format!("`{db}`.`{table}`"));
        conn.query_drop(create).await.unwrap();
    }
    seed(&mut conn, &db, migrated_table, &shape).await;
    conn.query_drop(format!("ANALYZE TABLE `{db}`.`{migrated_table}`"))
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let row_count = shape.rows;
    let make = shape.transaction;
    let (stats, writers) = start_mirrored_load(
        primary_config.clone(),
        db.clone(),
        migrated_table.into(),
        "control".into(),
        writers,
        stop.clone(),
        Duration::from_secs(600),
        move |rng| make(rng, row_count),
    );
    // Rotate the binlog while the migration runs.
    let rotator = {
        let (config, stop) = (primary_config.clone(), stop.clone());
        tokio::spawn(async move {
            let mut conn = client(&config).await;
            let mut rotations = 0;
            while !stop.load(Ordering::Relaxed) && rotations < 200 {
                tokio::time::sleep(Duration::from_millis(700)).await;
                conn.query_drop("FLUSH BINARY LOGS").await.unwrap();
                rotations += 1;
            }
            rotations
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let summary = if shape.migrated_columns.is_none() {
        // The load runs straight through the cut-over.
        let summary = shadowcut::run(&migration_config(&db)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        summary
    } else {
        // The ALTER renames or drops columns the load writes: the load runs
        // through the copy and while the cut-over is postponed, and stops
        // before the swap.
        let migration = Postponed::start(&mut conn, &db, migration_config(&db)).await;
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        migration.finish().await
    };
    stop.store(true, Ordering::Relaxed);
    let rotations = rotator.await.unwrap();
    let summary = summary.unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert!(
        rotations >= 1,
        "the binlog was never rotated during the run"
    );
    assert!(
        stats.transactions.load(Ordering::Relaxed) > 50,
        "the load barely ran"
    );
    assert!(
        summary.binlog_rows > 0 && summary.keys_applied > 0,
        "no change went through the tail: {summary:?}"
    );

    if let Some(alter) = shape.control_alter {
        // The server's own conversion of the final data, in the server's
        // time zone and sql_mode, as a DBA's ALTER TABLE would run.
        native_session(&primary_config)
            .await
            .query_drop(format!("ALTER TABLE `{db}`.`control` {alter}"))
            .await
            .unwrap();
        // The migrated table is the table the ALTER defines, to the letter
        // (but for the AUTO_INCREMENT counter the copy and the load move).
        let without_counter = |create: String| {
            create
                .split(' ')
                .filter(|w| !w.starts_with("AUTO_INCREMENT="))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            without_counter(definition(&mut conn, &db, migrated_table).await),
            without_counter(definition(&mut conn, &db, "control").await),
            "{}: SHOW CREATE TABLE of the migrated table vs the natively altered control",
            shape.name
        );
    }
    let migrated_columns = shape.migrated_columns.unwrap_or(shape.columns);
    let migrated = rows(
        &mut conn,
        &db,
        migrated_table,
        migrated_columns,
        shape.order,
    )
    .await;
    let control = rows(&mut conn, &db, "control", shape.columns, shape.order).await;
    assert_same_rows(
        &migrated,
        &control,
        &format!("{}: migrated table vs control", shape.name),
    );
    assert!(tables(&mut conn, &db)
        .await
        .iter()
        .all(|t| !t.ends_with("_gho") && !t.ends_with("_ghc")));

    if let Some(replica_config) = replica() {
        let mut replica = client(&replica_config).await;
        wait_for_replica(&mut conn, &mut replica).await;
        let on_replica = rows(&mut replica, &db, migrated_table, "*", shape.order).await;
        let on_primary = rows(&mut conn, &db, migrated_table, "*", shape.order).await;
        assert_same_rows(
            &on_replica,
            &on_primary,
            &format!("{}: replica vs primary", shape.name),
        );
    }
    eprintln!(
        "{}: {} load transactions ({} retried, {} more rolled back); copied {} rows, {} binlog rows, {} keys applied, lock {:?} s",
        shape.name,
        stats.transactions.load(Ordering::Relaxed),
        stats.retries.load(Ordering::Relaxed),
        stats.rolled_back.load(Ordering::Relaxed),
        summary.rows_copied,
        summary.binlog_rows,
        summary.keys_applied,
        summary.cut_over_lock_s
    );
    conn.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .unwrap();
    summary
}

/// Defines `$seed` and `$txn` for a table `(k <key type>, payload INT)`
/// whose keys are `$key(n)`: the seed rows, and transactions of inserts,
/// deletes, key changes and updates over a key space a little larger.
#[macro_export]
macro_rules! keyed {
    ($seed:ident, $txn:ident, $key:expr) => {
        fn $seed(rows: u64) -> (String, Vec<Vec<Value>>) {
            let key: fn(u64) -> Value = $key;
            ("k, payload".into(), (0..rows).map(|n| vec![key(n), Value::from(n as i64)]).collect())
        }

        fn $txn(rng: &mut Rng, rows: u64) -> Vec<Statement> {
            let key: fn(u64) -> Value = $key;
            let mut stmts = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let k = key(rng.below(rows + rows / 10));
                let payload = Value::from(rng.below(1_000_000) as i64);
                match rng.below(4) {
                    0 => stmts.push((
                        "INSERT INTO {T} (k, payload) VALUES (?, ?) ON DUPLICATE KEY UPDATE payload = VALUES(payload)".into(),
                        vec![k, payload],
                    )),
                    1 => stmts.push(("DELETE FROM {T} WHERE k = ?".into(), vec![k])),
                    2 => stmts.push((
                        "UPDATE IGNORE {T} SET k = ? WHERE k = ?".into(),
                        vec![key(rng.below(rows + rows / 10)), k],
                    )),
                    _ => stmts.push(("UPDATE {T} SET payload = ? WHERE k = ?".into(), vec![payload, k])),
                }
            }
            stmts
        }
    };
}
