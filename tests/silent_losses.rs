//! Regression tests for migrations that once swapped in a table silently
//! different from what the server's own ALTER TABLE gives: each case is
//! compared with the native ALTER on a control copy (run in a session that
//! sets nothing, so in the server's time zone and sql_mode), or must fail
//! before the swap where the native ALTER fails.

mod common;

use std::time::Duration;

use common::mirror::*;
use common::*;
use mysql_async::prelude::*;
use mysql_async::{Conn, Value};

/// Runs `alter` natively on `db`.`control`, as a DBA would.
async fn native_alter(db: &str, alter: &str) -> Result<(), mysql_async::Error> {
    let mut conn = native_session(&primary()).await;
    let result = conn
        .query_drop(format!("ALTER TABLE `{db}`.`control` {alter}"))
        .await;
    let _ = conn.disconnect().await;
    result
}

/// Fails unless `db` holds exactly `t` and `control`.
async fn assert_no_tool_tables(conn: &mut Conn, db: &str) {
    assert_eq!(tables(conn, db).await, vec!["control", "t"]);
}

// ---- 1. a collation change on the shared key --------------------------------

const COLLATED: &str = "CREATE TABLE {T} (name VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB";
const TO_CI: &str = "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collation_change_that_merges_keys_fails_like_the_native_alter() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "colk").await;
    on_both(&mut conn, &db, COLLATED).await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES ('a', 1), ('A', 2), ('b', 3), ('B', 4), ('c', 5)",
    )
    .await;
    let native = native_alter(&db, TO_CI).await.expect_err("native refuses");
    assert!(native.to_string().contains("Duplicate entry"), "{native}");
    let before = rows(&mut conn, &db, "t", "name, v", "v").await;
    let err = shadowcut::run(&config(&db, "t", TO_CI))
        .await
        .expect_err("the new key makes 'a' and 'A' collide");
    assert!(err.to_string().contains("collide"), "{err}");
    assert_eq!(rows(&mut conn, &db, "t", "name, v", "v").await, before);
    assert_no_tool_tables(&mut conn, &db).await;
}

keyed!(lower_seed, lower_txn, |n| Value::from(format!("k{n:05}")));

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_collation_change_on_the_key_under_load_matches_the_native_alter() {
    migrate_under_load(
        Shape {
            name: "colkload",
            create: "CREATE TABLE {T} (k VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, payload INT) ENGINE=InnoDB",
            columns: "k, payload",
            order: "k",
            seed: lower_seed,
            rows: 1200,
            alter: TO_CI,
            migrated_columns: Some("k, payload"),
            control_alter: Some(TO_CI),
            transaction: lower_txn,
        },
        3,
    )
    .await;
}

// An integer key made DECIMAL compares alike: every value converts exactly
// (or fails loudly), and the binlog's integers find their rows. Keys past
// 2^53, where a comparison through DOUBLE would confuse neighbours.
keyed!(big_seed, big_txn, |n| Value::from(
    9_007_199_254_740_993_i64 + n as i64
));

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_integer_key_made_decimal_keeps_every_row() {
    const TO_DECIMAL: &str = "MODIFY k DECIMAL(24,2) NOT NULL";
    migrate_under_load(
        Shape {
            name: "intdec",
            create: "CREATE TABLE {T} (k BIGINT NOT NULL PRIMARY KEY, payload INT) ENGINE=InnoDB",
            columns: "k, payload",
            order: "k",
            seed: big_seed,
            rows: 1200,
            alter: TO_DECIMAL,
            migrated_columns: Some("k, payload"),
            control_alter: Some(TO_DECIMAL),
            transaction: big_txn,
        },
        3,
    )
    .await;
}

// ---- 2. an ENUM key with an explicit collation ------------------------------

fn enum_seed(rows: u64) -> (String, Vec<Vec<Value>>) {
    let colours = ["red", "green", "blue", "orange"];
    let data = (0..rows)
        .map(|n| {
            vec![
                Value::from(n as i64),
                Value::from(colours[(n % 4) as usize]),
                Value::from(n as i64),
            ]
        })
        .collect();
    ("id, e, v".into(), data)
}

fn enum_txn(rng: &mut Rng, rows: u64) -> Vec<Statement> {
    let colours = ["red", "green", "blue", "orange"];
    let id = Value::from(rng.below(rows * 2) as i64);
    let e = Value::from(colours[rng.below(4) as usize]);
    let e2 = Value::from(colours[rng.below(4) as usize]);
    let v = Value::from(rng.below(1000) as i64);
    match rng.below(4) {
        0 | 1 => vec![(
            "INSERT INTO {T} (id, e, v) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)"
                .into(),
            vec![id, e, v],
        )],
        2 => vec![(
            "UPDATE IGNORE {T} SET e = ? WHERE id = ? AND e = ?".into(),
            vec![e2, id, e],
        )],
        _ => vec![("DELETE FROM {T} WHERE id = ? AND e = ?".into(), vec![id, e])],
    }
}

/// The table of `(id, e ENUM ... COLLATE utf8mb3_bin)` keys under the
/// mirrored load, migrated with `alter` (also run natively on the control
/// when `control_alter`).
fn enum_key_shape(
    name: &'static str,
    alter: &'static str,
    control_alter: Option<&'static str>,
) -> Shape {
    Shape {
        name,
        create: "CREATE TABLE {T} (id INT NOT NULL, \
                 e ENUM('red','green','blue','orange') CHARACTER SET utf8mb3 COLLATE utf8mb3_bin NOT NULL, \
                 v INT, PRIMARY KEY (id, e)) ENGINE=InnoDB",
        columns: "id, e, v",
        order: "id, e",
        seed: enum_seed,
        rows: 1200,
        alter,
        migrated_columns: None,
        control_alter,
        transaction: enum_txn,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enum_key_with_an_explicit_collation_keeps_rows_written_during_the_copy() {
    let shape = enum_key_shape("enumcoll", "ADD COLUMN extra INT NOT NULL DEFAULT 3", None);
    migrate_under_load(shape, 3).await;
}

/// A member added after the last one keeps every value's position, by
/// which an ENUM key travels in the binlog: the same load, through the
/// cut-over, and the table the native ALTER defines.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enum_key_that_gains_a_member_at_the_end_keeps_every_row() {
    const GROWN: &str = "MODIFY e ENUM('red','green','blue','orange','purple') \
                         CHARACTER SET utf8mb3 COLLATE utf8mb3_bin NOT NULL";
    migrate_under_load(enum_key_shape("enumgrow", GROWN, Some(GROWN)), 3).await;
}

// ---- 3. a re-read that finds nothing is not silent --------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_re_read_that_matches_nothing_stops_the_run() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "shortfall").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB",
    )
    .await;
    on_both(&mut conn, &db, "INSERT INTO {T} VALUES (1, 1), (2, 2)").await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT");
    // Every re-read of a changed row matches nothing, as a key bound in the
    // wrong collation once did.
    config.failpoints.reread_mismatch = true;
    let migration = Postponed::start(&mut conn, &db, config).await;
    on_both(&mut conn, &db, "INSERT INTO {T} VALUES (3, 3)").await;
    let err = migration
        .finish()
        .await
        .expect_err("the lost row must stop the run");
    assert!(err.to_string().contains("do not match"), "{err}");
    assert_no_tool_tables(&mut conn, &db).await;
}

// ---- 4. conversions run in the server's time zone ---------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_conversions_happen_in_the_servers_time_zone() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "tzconv").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, dt DATETIME NULL, ts TIMESTAMP NULL, \
         s VARCHAR(30) NULL) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (1, '2024-03-01 10:00:00', '2024-03-01 10:00:00', '2024-03-01 10:00:00'), \
         (2, '1999-12-31 23:30:00', '2000-06-15 12:00:00', '2038-01-01 00:00:00')",
    )
    .await;
    let server_zone: String = native_session(&primary())
        .await
        .query_first("SELECT @@time_zone")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(server_zone, "+00:00", "the sandbox server runs at -07:00");
    const ALTER: &str =
        "MODIFY dt TIMESTAMP NULL, MODIFY ts DATETIME NULL, MODIFY s TIMESTAMP NULL";
    let migration = Postponed::start(&mut conn, &db, config(&db, "t", ALTER)).await;
    // Written after the copy: converted by the apply's re-read.
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (3, '2010-07-04 04:00:00', '2010-07-04 04:00:00', '2010-07-04 04:00:00')",
    )
    .await;
    migration.finish().await.unwrap();
    native_alter(&db, ALTER).await.unwrap();
    let migrated = rows(&mut conn, &db, "t", "id, dt, ts, s", "id").await;
    let control = rows(&mut conn, &db, "control", "id, dt, ts, s", "id").await;
    assert_same_rows(&migrated, &control, "converted values vs the native ALTER");
}

// ---- 5. a generated column made a plain one --------------------------------

/// `MODIFY g INT` on a STORED generated column makes it a plain column that
/// keeps its values. The copy left generated columns of the original out
/// altogether, so g came out NULL in every row, and the checksum, which
/// compares the copied columns, did not see it (found by a review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_column_made_plain_keeps_its_values() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "genplain").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, a INT NULL, \
         g INT AS (a + 1) STORED, v INT AS (a * 2) VIRTUAL) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} (id, a) VALUES (1, 10), (2, 20), (3, NULL)",
    )
    .await;
    const ALTER: &str = "MODIFY g INT NULL";
    let migration = Postponed::start(&mut conn, &db, config(&db, "t", ALTER)).await;
    // Written after the copy: carried by the apply's re-read.
    on_both(&mut conn, &db, "INSERT INTO {T} (id, a) VALUES (4, 40)").await;
    on_both(&mut conn, &db, "UPDATE {T} SET a = 11 WHERE id = 1").await;
    migration.finish().await.unwrap();
    native_alter(&db, ALTER).await.unwrap();
    let migrated = rows(&mut conn, &db, "t", "id, a, g, v", "id").await;
    let control = rows(&mut conn, &db, "control", "id, a, g, v", "id").await;
    assert_same_rows(
        &migrated,
        &control,
        "a generated column made plain vs the native ALTER",
    );
    assert_eq!(
        definition(&mut conn, &db, "t").await,
        definition(&mut conn, &db, "control").await
    );
}

/// A number made an ENUM takes the label at that position: the checksum
/// expected the number's text, found the label, and stopped a migration
/// the native ALTER makes. Such a column was then left out of the
/// checksum; it is now compared by position (a review found it exposed to
/// races).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_made_an_enum_migrates_as_the_native_alter() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "numenum").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, s TINYINT NULL) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (1, 1), (2, 2), (3, NULL)",
    )
    .await;
    const ALTER: &str = "MODIFY s ENUM('new', 'done') NULL";
    let summary = shadowcut::run(&config(&db, "t", ALTER))
        .await
        .unwrap_or_else(|e| panic!("the migration failed: {e}"));
    let not_compared = summary
        .checksum
        .expect("the checksum ran")
        .columns_not_compared;
    assert!(not_compared.is_empty(), "{not_compared:?}");
    native_alter(&db, ALTER).await.unwrap();
    let migrated = rows(&mut conn, &db, "t", "id, s", "id").await;
    let control = rows(&mut conn, &db, "control", "id, s", "id").await;
    assert_same_rows(
        &migrated,
        &control,
        "a number made an ENUM vs the native ALTER",
    );
}

/// A value made an ENUM takes the label equal to it in the new column's
/// collation: 'paid ' and 'PAID' become 'Paid', 'ñew' becomes 'New' under
/// utf8mb4_general_ci, as the labels' case changes. The checksum compared
/// the texts, found every such row differing, and stopped a migration the
/// native ALTER makes; it now compares collation weights, which differ
/// between any two labels of one list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_made_enum_labels_of_another_case_migrate_as_the_native_alter() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "enumcase").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, \
         s VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL, \
         e ENUM('red', 'green') CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (1, 'paid', 'red'), (2, 'PAID', 'green'), (3, 'paid ', 'red'), \
         (4, 'ñew', 'green'), (5, NULL, 'red'), (6, 'New', 'green')",
    )
    .await;
    const ALTER: &str = "MODIFY s ENUM('Paid', 'New') CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL, \
         MODIFY e ENUM('RED', 'GREEN', 'BLUE') CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL";
    migrate_with_every_column_compared(&mut conn, &db, ALTER, "id, s, e").await;
}

/// Migrates `db.t` with `alter`, its checksum comparing every column and
/// finding no difference, and checks `columns` against the same ALTER run
/// natively on the control.
async fn migrate_with_every_column_compared(conn: &mut Conn, db: &str, alter: &str, columns: &str) {
    let summary = shadowcut::run(&config(db, "t", alter))
        .await
        .unwrap_or_else(|e| panic!("the migration failed: {e}"));
    let checksum = summary.checksum.expect("the checksum ran");
    assert!(checksum.columns_not_compared.is_empty(), "{checksum:?}");
    assert_eq!(checksum.mismatches, 0, "{checksum:?}");
    native_alter(db, alter).await.unwrap();
    let migrated = rows(conn, db, "t", columns, "id").await;
    let control = rows(conn, db, "control", columns, "id").await;
    assert_same_rows(
        &migrated,
        &control,
        &format!("{alter}: vs the native ALTER"),
    );
}

/// A SET whose member list the ALTER reorders and extends: assignment
/// takes each member by name, so its bit moves. The checksum compared no
/// such column (a change to it lost in a race would have passed); it now
/// moves each of the original's bits to its member's new bit. An ENUM
/// whose labels only change case stores the new labels: compared as
/// text, every row differed and the run stopped before the swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reordered_set_and_recased_enum_labels_are_compared_as_stored() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "setorder").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, \
         s SET('a','b','c') CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL, \
         e ENUM('red','green') CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (1, 'a,b', 'red'), (2, 'c', 'green'), (3, '', 'red'), \
         (4, NULL, 'green'), (5, 'a,c', 'red'), (6, 'a,b,c', 'green')",
    )
    .await;
    conn.query_drop(format!(
        "CREATE TABLE `{db}`.`orig` LIKE `{db}`.`t`; INSERT INTO `{db}`.`orig` SELECT * FROM `{db}`.`t`"
    ))
    .await
    .unwrap();
    const ALTER: &str =
        "MODIFY s SET('c','a','d','b') CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL, \
         MODIFY e ENUM('RED','GREEN') CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL";
    migrate_with_every_column_compared(&mut conn, &db, ALTER, "id, s, e").await;

    // The expressions the checksum compares: equal on every row, and apart
    // once a row of the new table loses a member.
    let schema = |table: &'static str| {
        let db = db.clone();
        async move {
            let mut conn = client(&primary()).await;
            shadowcut::schema::read_table(&mut conn, &db, table)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let (orig, migrated) = (schema("orig").await, schema("t").await);
    let (o, g) =
        shadowcut::checksum::column_exprs(orig.column("s").unwrap(), migrated.column("s").unwrap())
            .expect("the SET is compared");
    let read = |table: &'static str, expr: String| {
        let db = db.clone();
        async move {
            let mut conn = client(&primary()).await;
            let values: Vec<(i64, Option<u64>)> = conn
                .query(format!(
                    "SELECT id, {expr} FROM `{db}`.`{table}` ORDER BY id"
                ))
                .await
                .unwrap();
            values
        }
    };
    assert_eq!(read("orig", o.clone()).await, read("t", g.clone()).await);
    conn.query_drop(format!("UPDATE `{db}`.`t` SET s = 'a' WHERE id = 6"))
        .await
        .unwrap();
    assert_ne!(read("orig", o).await, read("t", g).await);
}

/// MariaDB's `RENAME COLUMN IF EXISTS a TO b` was read as a rename of a
/// column named `if`: `a` had no place in the new table, was left out of
/// the copy, and `b` came out NULL in every row, unseen by the checksum,
/// which compares the copied columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_renamed_if_it_exists_keeps_its_values() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "renifex").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, a VARCHAR(10) NULL, c INT NOT NULL) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (1, 'x', 10), (2, 'y', 20), (3, NULL, 30)",
    )
    .await;
    const ALTER: &str =
        "RENAME COLUMN IF EXISTS a TO b, CHANGE COLUMN IF EXISTS c d BIGINT NOT NULL";
    shadowcut::run(&config(&db, "t", ALTER))
        .await
        .unwrap_or_else(|e| panic!("the migration failed: {e}"));
    native_alter(&db, ALTER).await.unwrap();
    let migrated = rows(&mut conn, &db, "t", "id, b, d", "id").await;
    let control = rows(&mut conn, &db, "control", "id, b, d", "id").await;
    assert_same_rows(
        &migrated,
        &control,
        "renamed if it exists vs the native ALTER",
    );
    assert_eq!(
        definition(&mut conn, &db, "t").await,
        definition(&mut conn, &db, "control").await
    );
}

// ---- 5b. the ALTER read as the server reads it -------------------------------

/// ALTERs whose renames and drops a reader once saw differently from the
/// server: a double-quoted string with an escaped quote, `--` that is not a
/// comment, names starting with a digit or holding non-ASCII characters (a
/// no-break space among them). Each migrated as the native ALTER does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alters_are_read_as_the_server_reads_them() {
    const CREATE: &str = "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, a INT, b INT, `1x` INT, \
         `a€` INT, `b€` INT, `p\u{a0}1` INT, `q\u{a0}1` INT) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";
    const ROWS: &str = "INSERT INTO {T} VALUES (1, 11, 21, 31, 41, 51, 61, 71), \
         (2, 12, 22, 32, 42, 52, 62, 72), (3, 13, 23, 33, 43, 53, 63, 73)";
    let alters = [
        r#"ADD COLUMN z VARCHAR(200) DEFAULT "\", CHANGE a b INT, CHANGE b a INT, ADD COLUMN w INT COMMENT '" #'"#,
        "ADD COLUMN z INT DEFAULT (5--1), CHANGE a b INT, CHANGE b a INT",
        "ADD COLUMN z INT DEFAULT (5--1), DROP a, ADD a INT DEFAULT 7",
        "CHANGE a 1x INT, CHANGE 1x a INT",
        "DROP 1x, ADD 1x INT DEFAULT 7",
        "CHANGE a€ b€ INT, CHANGE b€ a€ INT",
        "DROP COLUMN b€, ADD COLUMN b€ INT DEFAULT 7",
        "CHANGE p\u{a0}1 q\u{a0}1 INT, CHANGE q\u{a0}1 p\u{a0}1 INT",
    ];
    let mut conn = client(&primary()).await;
    for alter in alters {
        let db = fresh_database(&mut conn, "lexed").await;
        on_both(&mut conn, &db, CREATE).await;
        on_both(&mut conn, &db, ROWS).await;
        shadowcut::run(&config(&db, "t", alter))
            .await
            .unwrap_or_else(|e| panic!("{alter}: the migration failed: {e}"));
        native_alter(&db, alter).await.unwrap();
        assert_eq!(
            definition(&mut conn, &db, "t").await,
            definition(&mut conn, &db, "control").await,
            "{alter}"
        );
        let migrated = rows(&mut conn, &db, "t", "*", "id").await;
        let control = rows(&mut conn, &db, "control", "*", "id").await;
        assert_same_rows(&migrated, &control, alter);
    }
}

/// MariaDB's UUID, INET6 and INET4 added NOT NULL without a default: the
/// existing rows get the type's zero value, as natively (the run refused,
/// saying the type had no value to give them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_types_added_not_null_get_their_zero_values() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "zerotypes").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB",
    )
    .await;
    on_both(&mut conn, &db, "INSERT INTO {T} VALUES (1, 10), (2, 20)").await;
    const ALTER: &str =
        "ADD COLUMN u UUID NOT NULL, ADD COLUMN i6 INET6 NOT NULL, ADD COLUMN i4 INET4 NOT NULL";
    shadowcut::run(&config(&db, "t", ALTER))
        .await
        .unwrap_or_else(|e| panic!("the migration failed: {e}"));
    native_alter(&db, ALTER).await.unwrap();
    assert_eq!(
        definition(&mut conn, &db, "t").await,
        definition(&mut conn, &db, "control").await
    );
    let columns = "id, v, CAST(u AS CHAR), CAST(i6 AS CHAR), CAST(i4 AS CHAR)";
    let migrated = rows(&mut conn, &db, "t", columns, "id").await;
    assert_same_rows(
        &migrated,
        &rows(&mut conn, &db, "control", columns, "id").await,
        "zero values vs the native ALTER",
    );
    assert_eq!(
        migrated[0][2..],
        [
            Value::from("00000000-0000-0000-0000-000000000000"),
            Value::from("::"),
            Value::from("0.0.0.0")
        ]
    );
}

/// Conversions that `INSERT ... SELECT` makes otherwise than a native
/// ALTER (a review found them against the native ALTER): a DOUBLE made a
/// BIT, ENUM or SET is rounded half to even, as natively, not cut (2.6 was
/// ENUM 'b' where the ALTER gives 'c'); a text with a fraction made an INT
/// ('1.4' became 1 without a warning) stops the run before the swap, as
/// the native ALTER fails; a text made a BIT (stored as its bytes) is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_follow_the_native_alter_or_stop() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "roundconv").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, d DOUBLE, e DOUBLE, s DOUBLE) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (1, 1.5, 1.5, 4.6), (2, 2.5, 2.6, 1.5), (3, 3.7, 2.5, 2), (4, 254.5, 1, 5.5)",
    )
    .await;
    const ROUNDED: &str = "MODIFY d BIT(8), MODIFY e ENUM('a','b','c'), MODIFY s SET('a','b','c')";
    let summary = shadowcut::run(&config(&db, "t", ROUNDED))
        .await
        .unwrap_or_else(|e| panic!("the migration failed: {e}"));
    let report = summary.checksum.expect("the checksum ran");
    assert!(
        report.columns_not_compared.is_empty() && report.mismatches == 0,
        "{report:?}"
    );
    native_alter(&db, ROUNDED).await.unwrap();
    let columns = "id, d + 0, e, s";
    let migrated = rows(&mut conn, &db, "t", columns, "id").await;
    assert_same_rows(
        &migrated,
        &rows(&mut conn, &db, "control", columns, "id").await,
        "rounded vs the native ALTER",
    );
    assert_eq!(migrated[1][2], Value::from("c"), "2.6 is the third member");

    // A binary string with a fraction is refused alike.
    let db = fresh_database(&mut conn, "binint").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, v VARBINARY(20) NOT NULL) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (1, '7'), (2, '1.4')",
    )
    .await;
    native_alter(&db, "MODIFY v INT NOT NULL")
        .await
        .expect_err("the native ALTER refuses '1.4'");
    let err = shadowcut::run(&config(&db, "t", "MODIFY v INT NOT NULL"))
        .await
        .expect_err("'1.4' must not arrive as 1");
    assert!(
        err.to_string().contains("'1.4', which is not an integer"),
        "{err}"
    );
    assert_no_tool_tables(&mut conn, &db).await;

    let db = fresh_database(&mut conn, "textint").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (1, '7'), (2, ' 12 '), (3, '1.4')",
    )
    .await;
    native_alter(&db, "MODIFY v INT NOT NULL")
        .await
        .expect_err("the native ALTER refuses '1.4'");
    let before = rows(&mut conn, &db, "t", "id, v", "id").await;
    let err = shadowcut::run(&config(&db, "t", "MODIFY v INT NOT NULL"))
        .await
        .expect_err("'1.4' must not arrive as 1");
    assert!(matches!(err, shadowcut::Error::Refused(_)), "{err}");
    assert!(
        err.to_string().contains("'1.4', which is not an integer"),
        "{err}"
    );
    assert_eq!(rows(&mut conn, &db, "t", "id, v", "id").await, before);
    assert_no_tool_tables(&mut conn, &db).await;
    // Without the fraction it migrates, as natively.
    conn.query_drop(format!("UPDATE `{db}`.`t` SET v = '1' WHERE id = 3"))
        .await
        .unwrap();
    let dropping = |alter: &str| {
        let mut config = config(&db, "t", alter);
        config.ok_to_drop_table = true;
        config
    };
    shadowcut::run(&dropping("MODIFY v INT NOT NULL"))
        .await
        .unwrap_or_else(|e| panic!("the migration failed: {e}"));
    assert_eq!(
        rows(&mut conn, &db, "t", "v", "id").await,
        vec![
            vec![Value::from("7")],
            vec![Value::from("12")],
            vec![Value::from("1")]
        ]
    );

    let db = fresh_database(&mut conn, "textbit").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL) ENGINE=InnoDB",
    )
    .await;
    on_both(&mut conn, &db, "INSERT INTO {T} VALUES (1, '5')").await;
    let err = shadowcut::run(&config(&db, "t", "MODIFY v BIT(16) NOT NULL"))
        .await
        .expect_err("a text made a BIT");
    assert!(
        err.to_string().contains("reads the value as a number"),
        "{err}"
    );
    assert_no_tool_tables(&mut conn, &db).await;
}

// ---- 6. AUTO_INCREMENT in the ALTER ------------------------------------------

async fn next_id_after(db: &str, alter: &str, seed_rows: i64) -> (u64, u64) {
    let mut conn = client(&primary()).await;
    on_both(
        &mut conn,
        db,
        "CREATE TABLE {T} (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
    )
    .await;
    for v in 0..seed_rows {
        on_both(
            &mut conn,
            db,
            &format!("INSERT INTO {{T}} (v) VALUES ({v})"),
        )
        .await;
    }
    shadowcut::run(&config(db, "t", alter)).await.unwrap();
    native_alter(db, alter).await.unwrap();
    let mut next = Vec::new();
    for table in ["t", "control"] {
        conn.query_drop(format!("INSERT INTO `{db}`.`{table}` (v) VALUES (-1)"))
            .await
            .unwrap();
        let id: u64 = conn
            .query_first(format!("SELECT MAX(id) FROM `{db}`.`{table}`"))
            .await
            .unwrap()
            .unwrap();
        next.push(id);
    }
    (next[0], next[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_increment_in_the_alter_is_kept() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "autoinc").await;
    let (migrated, native) = next_id_after(&db, "AUTO_INCREMENT = 1000", 5).await;
    assert_eq!(migrated, 1000);
    assert_eq!(native, 1000);
    // A counter below the original's keeps the original's: ids are never reused.
    let db = fresh_database(&mut conn, "autoinclow").await;
    let (migrated, native) = next_id_after(&db, "AUTO_INCREMENT = 2", 50).await;
    assert_eq!(migrated, 51);
    assert_eq!(native, 51);
}

// ---- 7. harmless statements do not abort the migration ----------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harmless_statements_naming_the_table_do_not_stop_the_run() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "harmless").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB",
    )
    .await;
    on_both(&mut conn, &db, "INSERT INTO {T} VALUES (1, 1), (2, 2)").await;
    let user = format!("probe_{}", db.len() + std::process::id() as usize);
    let _cleanup = cli::SqlOnDrop {
        config: primary(),
        statements: vec![format!("DROP USER IF EXISTS '{user}'@'localhost'")],
    };
    let migration = Postponed::start(&mut conn, &db, config(&db, "t", "ADD COLUMN x INT")).await;
    for stmt in [
        format!(
            "CREATE EVENT `{db}`.`t` ON SCHEDULE AT CURRENT_TIMESTAMP + INTERVAL 1 DAY DO SELECT 1"
        ),
        format!("DROP EVENT `{db}`.`t`"),
        format!("ANALYZE TABLE `{db}`.`t`"),
        format!("CREATE USER '{user}'@'localhost'"),
        format!("GRANT SELECT ON `{db}`.`t` TO '{user}'@'localhost'"),
        format!("CREATE TABLE `{db}`.`t_archive` (id INT PRIMARY KEY, t INT)"),
        format!("ALTER TABLE `{db}`.`t_archive` ADD COLUMN y INT, ADD INDEX t (t)"),
        format!("DROP TABLE `{db}`.`t_archive`"),
    ] {
        conn.query_drop(&stmt).await.unwrap();
    }
    on_both(&mut conn, &db, "INSERT INTO {T} VALUES (3, 3)").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    migration
        .finish()
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    let migrated = rows(&mut conn, &db, "t", "id, v", "id").await;
    let control = rows(&mut conn, &db, "control", "id, v", "id").await;
    assert_same_rows(&migrated, &control, "migrated table vs control");
}

// ---- 8. shared keys found by column set --------------------------------------

fn pair_seed(rows: u64) -> (String, Vec<Vec<Value>>) {
    let data = (0..rows)
        .map(|n| {
            vec![
                Value::from((n / 10) as i64),
                Value::from((n % 10) as i64),
                Value::from(n as i64),
            ]
        })
        .collect();
    ("a, b, v".into(), data)
}

fn pair_txn(rng: &mut Rng, rows: u64) -> Vec<Statement> {
    let a = Value::from(rng.below(rows / 10 + 20) as i64);
    let b = Value::from(rng.below(12) as i64);
    let b2 = Value::from(rng.below(12) as i64);
    let v = Value::from(rng.below(1000) as i64);
    match rng.below(4) {
        0 | 1 => vec![(
            "INSERT INTO {T} (a, b, v) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)"
                .into(),
            vec![a, b, v],
        )],
        2 => vec![(
            "UPDATE IGNORE {T} SET b = ? WHERE a = ? AND b = ?".into(),
            vec![b2, a, b],
        )],
        _ => vec![("DELETE FROM {T} WHERE a = ? AND b = ?".into(), vec![a, b])],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reordered_primary_key_is_migrated() {
    migrate_under_load(
        Shape {
            name: "pkreorder",
            create: "CREATE TABLE {T} (a INT NOT NULL, b INT NOT NULL, v INT, PRIMARY KEY (a, b)) ENGINE=InnoDB",
            columns: "a, b, v",
            order: "a, b",
            seed: pair_seed,
            rows: 1500,
            alter: "DROP PRIMARY KEY, ADD PRIMARY KEY (b, a)",
            migrated_columns: None,
            control_alter: None,
            transaction: pair_txn,
        },
        3,
    )
    .await;
}

fn single_seed(rows: u64) -> (String, Vec<Vec<Value>>) {
    let data = (0..rows)
        .map(|n| vec![Value::from(n as i64), Value::from((n % 7) as i64)])
        .collect();
    ("id, i".into(), data)
}

fn single_txn(rng: &mut Rng, rows: u64) -> Vec<Statement> {
    let id = Value::from(rng.below(rows + 100) as i64);
    let i = Value::from(rng.below(7) as i64);
    match rng.below(4) {
        0 | 1 => vec![(
            "INSERT INTO {T} (id, i) VALUES (?, ?) ON DUPLICATE KEY UPDATE i = VALUES(i)".into(),
            vec![id, i],
        )],
        2 => vec![("UPDATE {T} SET i = ? WHERE id = ?".into(), vec![i, id])],
        _ => vec![("DELETE FROM {T} WHERE id = ?".into(), vec![id])],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_extended_primary_key_is_migrated() {
    migrate_under_load(
        Shape {
            name: "pkextend",
            create: "CREATE TABLE {T} (id INT NOT NULL PRIMARY KEY, i INT NOT NULL) ENGINE=InnoDB",
            columns: "id, i",
            order: "id",
            seed: single_seed,
            rows: 1500,
            alter: "DROP PRIMARY KEY, ADD PRIMARY KEY (id, i)",
            // The new key accepts rows the old one refused, so the load's
            // upserts would differ after the swap: it stops before it.
            migrated_columns: Some("id, i"),
            control_alter: None,
            transaction: single_txn,
        },
        3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowed_primary_key_over_duplicates_fails_like_the_native_alter() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "pknarrow").await;
    on_both(
        &mut conn,
        &db,
        "CREATE TABLE {T} (id INT NOT NULL, i INT NOT NULL, PRIMARY KEY (id, i)) ENGINE=InnoDB",
    )
    .await;
    on_both(
        &mut conn,
        &db,
        "INSERT INTO {T} VALUES (1, 1), (2, 1), (2, 2), (3, 1)",
    )
    .await;
    const ALTER: &str = "DROP PRIMARY KEY, ADD PRIMARY KEY (id)";
    assert!(native_alter(&db, ALTER).await.is_err());
    let err = shadowcut::run(&config(&db, "t", ALTER))
        .await
        .expect_err("(2, 1) and (2, 2) collide on the new key");
    assert!(err.to_string().contains("collide"), "{err}");
    assert_no_tool_tables(&mut conn, &db).await;
}
