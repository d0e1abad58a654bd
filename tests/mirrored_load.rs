//! Migrations under a mirrored write load: every change goes to the migrated
//! table and to a control table in the same transaction; afterwards the
//! migrated table, projected on the control's columns, must equal the
//! control row for row, and the replica must equal the primary.

mod common;

use common::mirror::*;
use common::*;
use mysql_async::prelude::*;
use mysql_async::Value;
use std::time::{Duration, Instant};

// ---- integer primary key -------------------------------------------------

fn int_seed(rows: u64) -> (String, Vec<Vec<Value>>) {
    let data = (0..rows)
        .map(|id| {
            vec![
                v(id as i64),
                if id % 7 == 0 {
                    Value::NULL
                } else {
                    v((id as i64 * 31) % 100_000 - 50_000)
                },
                v(format!("row-{id}")),
                Value::Date(
                    2024,
                    1 + (id % 12) as u8,
                    1 + (id % 28) as u8,
                    (id % 24) as u8,
                    0,
                    0,
                    123_000,
                ),
                if id % 11 == 0 { v(u64::MAX) } else { v(id) },
            ]
        })
        .collect();
    ("id, a, b, c, u".into(), data)
}

fn int_transaction(rng: &mut Rng, rows: u64) -> Vec<Statement> {
    let ops = 1 + rng.below(4);
    let mut stmts = Vec::new();
    let id = |rng: &mut Rng| -> i64 {
        if rng.chance(30) {
            rng.below(40) as i64 // hot keys, including id 0
        } else {
            rng.below(rows + rows / 10) as i64 // a tenth beyond the initial end
        }
    };
    for _ in 0..ops {
        let a = {
            let x = v(rng.below(200_000) as i64 - 100_000);
            maybe_null(rng, x)
        };
        let b = {
            let x = v(format!("w{}", rng.below(1_000_000)));
            maybe_null(rng, x)
        };
        let u = {
            let x = if rng.chance(10) {
                v(u64::MAX)
            } else {
                v(rng.next())
            };
            maybe_null(rng, x)
        };
        match rng.below(100) {
            0..=29 => {
                let i = id(rng);
                stmts.push((
                    "INSERT INTO {T} (id, a, b, c, u) VALUES (?, ?, ?, ?, ?) \
                     ON DUPLICATE KEY UPDATE a = VALUES(a), b = VALUES(b), c = VALUES(c), u = VALUES(u)"
                        .into(),
                    vec![v(i), a, b, Value::Date(2025, 6, 30, 23, 59, 59, rng.below(1000) as u32 * 1000), u],
                ));
            }
            30..=49 => stmts.push((
                "UPDATE {T} SET a = ?, b = ? WHERE id = ?".into(),
                vec![a, b, v(id(rng))],
            )),
            50..=59 => {
                // Move a key across the copy cursor, in either direction.
                let (from, to) = if rng.chance(50) {
                    (
                        rng.below(rows / 10) as i64,
                        (rows - rng.below(rows / 10)) as i64,
                    )
                } else {
                    (
                        (rows - rng.below(rows / 10)) as i64,
                        rng.below(rows / 10) as i64,
                    )
                };
                stmts.push((
                    "UPDATE IGNORE {T} SET id = ? WHERE id = ?".into(),
                    vec![v(to), v(from)],
                ));
            }
            60..=69 => stmts.push(("DELETE FROM {T} WHERE id = ?".into(), vec![v(id(rng))])),
            70..=79 => {
                // Delete and re-insert one key in one transaction.
                let i = id(rng);
                stmts.push(("DELETE FROM {T} WHERE id = ?".into(), vec![v(i)]));
                stmts.push((
                    "INSERT INTO {T} (id, a, b, c, u) VALUES (?, ?, ?, NULL, ?)".into(),
                    vec![v(i), a, b, u],
                ));
            }
            80..=89 => {
                let lo = rng.below(rows) as i64;
                stmts.push((
                    "UPDATE {T} SET a = COALESCE(a, 0) + 1, c = NULL WHERE id BETWEEN ? AND ?"
                        .into(),
                    vec![v(lo), v(lo + 1 + rng.below(20) as i64)],
                ));
            }
            _ => stmts.push((
                "UPDATE {T} SET b = NULL, a = ? WHERE id = ?".into(),
                vec![v(i32::MIN), v(id(rng))],
            )),
        }
    }
    stmts
}

// ---- composite key, low-cardinality first column ---------------------------

fn composite_seed(rows: u64) -> (String, Vec<Vec<Value>>) {
    let data = (0..rows)
        .map(|i| vec![v((i % 3) as i64), v((i / 3) as i64), v(format!("p{i}"))])
        .collect();
    ("tenant, id, payload".into(), data)
}

fn composite_transaction(rng: &mut Rng, rows: u64) -> Vec<Statement> {
    let per = (rows / 3).max(1);
    let mut stmts = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let tenant = rng.below(3) as i64;
        let id = rng.below(per + per / 10) as i64;
        let payload = {
            let x = v(format!("x{}", rng.below(1_000_000)));
            maybe_null(rng, x)
        };
        match rng.below(5) {
            0 => stmts.push((
                "INSERT INTO {T} (tenant, id, payload) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE payload = VALUES(payload)".into(),
                vec![v(tenant), v(id), payload],
            )),
            1 => stmts.push(("DELETE FROM {T} WHERE tenant = ? AND id = ?".into(), vec![v(tenant), v(id)])),
            2 => stmts.push((
                "UPDATE IGNORE {T} SET tenant = ? WHERE tenant = ? AND id = ?".into(),
                vec![v((tenant + 1) % 3), v(tenant), v(id)],
            )),
            _ => stmts.push(("UPDATE {T} SET payload = ? WHERE tenant = ? AND id = ?".into(), vec![payload, v(tenant), v(id)])),
        }
    }
    stmts
}

// ---- VARCHAR key in a case- and accent-insensitive PAD SPACE collation -----

const SPELLINGS: [&str; 6] = ["a", "A", "á", "Á", "a ", "à"];

fn name_for(n: u64, spelling: u64) -> String {
    format!(
        "{}{n}",
        SPELLINGS[(spelling % SPELLINGS.len() as u64) as usize]
    )
    .replacen(' ', "", 0)
}

fn varchar_seed(rows: u64) -> (String, Vec<Vec<Value>>) {
    let data = (0..rows)
        .map(|i| {
            let name = if i % 5 == 0 {
                format!("key{i} ")
            } else {
                name_for(i, i)
            };
            vec![v(name), v(i as i64)]
        })
        .collect();
    ("name, n".into(), data)
}

fn varchar_transaction(rng: &mut Rng, rows: u64) -> Vec<Statement> {
    let mut stmts = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let n = rng.below(rows);
        let name = name_for(n, rng.below(6));
        let other = name_for(n, rng.below(6));
        match rng.below(4) {
            // Switch between spellings that the collation treats as equal.
            0 => stmts.push(("UPDATE IGNORE {T} SET name = ? WHERE name = ?".into(), vec![v(other), v(name)])),
            1 => stmts.push((
                "INSERT INTO {T} (name, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = VALUES(n), name = VALUES(name)".into(),
                vec![v(name), v(rng.below(1000) as i64)],
            )),
            2 => stmts.push(("DELETE FROM {T} WHERE name = ?".into(), vec![v(name)])),
            _ => stmts.push(("UPDATE {T} SET n = n + 1 WHERE name = ?".into(), vec![v(name)])),
        }
    }
    stmts
}

fn int_shape(name: &'static str, rows: u64) -> Shape {
    Shape {
        name,
        create:
            "CREATE TABLE {T} (id BIGINT NOT NULL PRIMARY KEY, a INT NULL, b VARCHAR(40) NULL, \
                 c DATETIME(3) NULL, u BIGINT UNSIGNED NULL) ENGINE=InnoDB",
        columns: "id, a, b, c, u",
        order: "id",
        seed: int_seed,
        rows,
        alter: "ADD COLUMN extra INT NOT NULL DEFAULT 5, ADD INDEX a_idx (a)",
        transaction: int_transaction,
        migrated_columns: None,
        control_alter: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn integer_key_200k_rows_under_load_through_cut_over() {
    let summary = migrate_under_load(int_shape("intkey", 200_000), 4).await;
    assert!(summary.rows_copied > 150_000, "{summary:?}");
    // Changes to rows ahead of the copy were left to it, and none was lost.
    assert!(summary.binlog_rows_left_to_copy > 0, "{summary:?}");
    // MariaDB: both read without locks, after their fences.
    let statements = applied_statements(&summary);
    assert!(statements.contains("'copy-fence'"), "{statements}");
    assert!(statements.contains("'apply-fence'"), "{statements}");
    assert!(!statements.contains("LOCK IN SHARE MODE"), "{statements}");
}

/// A table named with all the 64 characters the server allows: gh-ost's
/// `_<t>_gho` would be 69, so every table the run creates gets a
/// shortened name, and the tail knows the new table's events by it. The
/// old table is kept under its timestamped name, the longest derived one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_named_with_64_characters_migrates_under_load() {
    let table = format!("orders_{}", "x".repeat(57));
    assert_eq!(table.chars().count(), 64);
    let summary = migrate_table_under_load(int_shape("longname", 3_000), &table, 3, |c| {
        c.timestamp_old_table = true;
    })
    .await;
    let plan = &summary.plan;
    let unquoted = |q: &str| q.rsplit('.').next().unwrap().trim_matches('`').to_string();
    let (ghost, changelog, old) = (
        unquoted(&plan.ghost_table),
        unquoted(&plan.changelog_table),
        unquoted(&plan.old_table),
    );
    for name in [&ghost, &changelog, &old] {
        assert!(name.chars().count() <= 64, "{name}");
        assert!(name.starts_with("_orders_xxx"), "{name}");
    }
    assert!(ghost.ends_with("_gho") && changelog.ends_with("_ghc") && old.ends_with("_del"));
    assert_eq!(summary.old_table_kept.as_deref().map(unquoted), Some(old));
}

/// `--locking-apply`: on MariaDB too, the applier share-locks the rows it
/// re-reads (the only way on MySQL, which this machine cannot run), with no
/// fence, while the copy still reads without locks. The same load, the
/// same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locking_apply_keeps_every_row_too() {
    let summary = migrate_under_load_with(int_shape("lockapply", 20_000), 4, |c| {
        c.locking_apply = true;
        c.chunk_size = 500;
    })
    .await;
    assert!(summary.keys_applied > 0, "{summary:?}");
    let statements = applied_statements(&summary);
    assert!(statements.contains("'copy-fence'"), "{statements}");
    assert!(!statements.contains("'apply-fence'"), "{statements}");
    assert!(statements.contains("LOCK IN SHARE MODE"), "{statements}");
}

/// The copy as it reads on MySQL (share-locked NOWAIT reads, no fence; the
/// tail leaves changes ahead of the copy to it), with the applier as on
/// MySQL too: the same load, the same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_copy_and_the_applier_keep_every_row_as_on_mysql() {
    let summary = migrate_under_load_with(int_shape("mysqlpath", 20_000), 4, |c| {
        c.locking_apply = true;
        c.failpoints.locking_copy = true;
        c.chunk_size = 500;
    })
    .await;
    assert!(summary.keys_applied > 0, "{summary:?}");
    let statements = applied_statements(&summary);
    assert!(!statements.contains("-fence'"), "{statements}");
    assert!(
        statements.contains("LOCK IN SHARE MODE NOWAIT"),
        "{statements}"
    );
}

/// Where commits are not visible in binlog order (MySQL), the tail can read
/// a row's insert before the row is visible, and leave it to the copy when no
/// chunk covers its key yet. The chunk that then covers it must not end on a
/// boundary read that cannot see the row: its locking read goes over the rest
/// of its range and waits for the row's writer. Here, once every bounded
/// chunk is copied, a writer inserts a row above all others and holds it
/// uncommitted; the copy, reading as on MySQL, meets it busy in its last,
/// open-ended chunk and must not complete before the writer commits (it
/// once did: the boundary read saw no row left, and the chunk ended).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locking_copy_waits_for_a_row_its_boundary_read_cannot_see() {
    let mut conn = client(&primary()).await;
    let db = simple_table(&mut conn, "lockrest", 400).await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT");
    config.failpoints.locking_copy = true;
    config.failpoints.chunk_delay = Some(Duration::from_millis(800));
    config.copy_threads = 1;
    config.chunk_size = 100;
    let migration = tokio::spawn(async move { shadowcut::run(&config).await });
    // The bounded chunks are copied; the open-ended one waits for its delay.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copied: Option<u64> = conn
            .query_first(format!("SELECT COUNT(*) FROM `{db}`.`_t_gho`"))
            .await
            .unwrap_or(None);
        if copied == Some(400) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the copy did not reach its last chunk"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut writer = client(&primary()).await;
    writer.query_drop("START TRANSACTION").await.unwrap();
    writer
        .query_drop(format!("INSERT INTO `{db}`.`t` VALUES (100000, 1)"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let watermark = changelog_value(&mut conn, &db, "t", "state:copy-watermark").await;
    assert_ne!(
        watermark.as_deref(),
        Some("\"complete\""),
        "the copy ended while a row of its last chunk was still being written"
    );
    writer.query_drop("COMMIT").await.unwrap();
    let summary = migration
        .await
        .expect("the migration task panicked")
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    let counted: Option<(u64, u64)> = conn
        .query_first(format!("SELECT COUNT(*), SUM(id = 100000) FROM `{db}`.`t`"))
        .await
        .unwrap();
    assert_eq!(counted, Some((401, 1)), "{summary:?}");
}

/// The copy's and the applier's statements in the summary's plan, as text.
fn applied_statements(summary: &shadowcut::Summary) -> String {
    let plan = serde_json::to_value(summary).expect("the summary serializes")["plan"]["statements"]
        .clone();
    plan.as_array()
        .expect("the plan lists its statements")
        .iter()
        .filter(|s| s[0] == "copy" || s[0] == "apply")
        .map(|s| s[1].as_str().unwrap_or_default().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn composite_shape(name: &'static str) -> Shape {
    Shape {
        name,
        create: "CREATE TABLE {T} (tenant TINYINT UNSIGNED NOT NULL, id INT NOT NULL, payload VARCHAR(40) NULL, \
                 PRIMARY KEY (tenant, id)) ENGINE=InnoDB",
        columns: "tenant, id, payload",
        order: "tenant, id",
        seed: composite_seed,
        rows: 6_000,
        alter: "ADD COLUMN note VARCHAR(10) NOT NULL DEFAULT 'n'",
        transaction: composite_transaction,
        migrated_columns: None,
        control_alter: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn composite_key_with_low_cardinality_first_column() {
    migrate_under_load(composite_shape("compkey"), 3).await;
}

/// With a nice ratio the copy and the checksum pause after each chunk, the
/// checksum with its snapshots open, while the writers go on: the table
/// still ends equal to the control, with nothing for the checksum to
/// repair, in chunks small enough that every chunk is followed by a pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_copy_and_checksum_chunks_lose_nothing() {
    let summary = migrate_under_load_with(composite_shape("nicekey"), 3, |c| {
        c.nice_ratio = 2.0;
        c.checksum_chunk_size = 500;
    })
    .await;
    let checksum = summary.checksum.as_ref().expect("the checksum ran");
    assert!(checksum.chunks_checked >= 8, "{checksum:?}");
    assert_eq!(checksum.mismatches, 0, "{checksum:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn varchar_key_in_case_and_accent_insensitive_collation() {
    migrate_under_load(
        Shape {
            name: "varkey",
            create: "CREATE TABLE {T} (name VARCHAR(32) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL PRIMARY KEY, \
                     n INT NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            columns: "name, n",
            order: "name, CAST(name AS BINARY)",
            seed: varchar_seed,
            rows: 4_000,
            alter: "ADD INDEX n_idx (n)",
            transaction: varchar_transaction,
            migrated_columns: None,
            control_alter: None,
        },
        3,
    )
    .await;
}

// ---- integer keys with gaps and at the ends of their range -----------------
//
// Chunk bounds are computed on an integer key (`lower + size`) while the keys
// are dense, and scanned for once a chunk comes back mostly empty; these
// keys cross from signed to unsigned range, sit at the type's ends and
// leave gaps of up to 2^63, which a walk that kept computing would take
// for ever to cross. The load inserts into the gaps and beyond the highest
// key, deletes, and moves keys between clusters.

/// Clusters of keys, (first key, step between keys), and the column
/// type's highest value.
struct Clusters {
    clusters: [(i128, i128); 4],
    highest: i128,
}

/// Seeded with 1,000 keys each (4,000 rows): dense keys from the lowest
/// value, sparse ones, dense again, and dense up to the highest value.
const SIGNED_CLUSTERS: Clusters = Clusters {
    clusters: [
        (i64::MIN as i128, 1),
        (-1_000_000_000_000, 7),
        (0, 1),
        (i64::MAX as i128 - 999, 1),
    ],
    highest: i64::MAX as i128,
};

/// As [`SIGNED_CLUSTERS`], with dense keys across 2^63.
const UNSIGNED_CLUSTERS: Clusters = Clusters {
    clusters: [
        (0, 1),
        (1_000_000_000, 1_000),
        ((1i128 << 63) - 500, 1),
        (u64::MAX as i128 - 999, 1),
    ],
    highest: u64::MAX as i128,
};

/// The `index`th key of `cluster`, as the column's type binds it; `None`
/// beyond the type's range.
fn cluster_key(keys: &Clusters, cluster: u64, index: u64) -> Option<Value> {
    let (first, step) = keys.clusters[cluster as usize % keys.clusters.len()];
    let key = first + step * index as i128;
    if key > keys.highest {
        return None;
    }
    i64::try_from(key)
        .map(Value::Int)
        .ok()
        .or_else(|| u64::try_from(key).ok().map(Value::UInt))
}

fn clustered_seed(clusters: &Clusters, rows: u64) -> (String, Vec<Vec<Value>>) {
    let data = (0..rows)
        .filter_map(|n| {
            let key = cluster_key(clusters, n % 4, n / 4)?;
            Some(vec![key, v(n as i64)])
        })
        .collect();
    ("id, n".into(), data)
}

fn clustered_transaction(clusters: &Clusters, rng: &mut Rng, rows: u64) -> Vec<Statement> {
    // Up to a tenth beyond each cluster's seeded keys: into its gaps and
    // above its highest key.
    let key = |rng: &mut Rng| loop {
        let index = rng.below(rows / 4 + rows / 40);
        if let Some(key) = cluster_key(clusters, rng.below(4), index) {
            break key;
        }
    };
    let mut stmts = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let n = v(rng.below(1_000_000) as i64);
        match rng.below(10) {
            0..=3 => stmts.push((
                "INSERT INTO {T} (id, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = VALUES(n)"
                    .into(),
                vec![key(rng), n],
            )),
            4..=5 => stmts.push((
                "UPDATE {T} SET n = ? WHERE id = ?".into(),
                vec![n, key(rng)],
            )),
            6..=7 => stmts.push(("DELETE FROM {T} WHERE id = ?".into(), vec![key(rng)])),
            _ => stmts.push((
                "UPDATE IGNORE {T} SET id = ? WHERE id = ?".into(),
                vec![key(rng), key(rng)],
            )),
        }
    }
    stmts
}

fn signed_seed(rows: u64) -> (String, Vec<Vec<Value>>) {
    clustered_seed(&SIGNED_CLUSTERS, rows)
}

fn signed_transaction(rng: &mut Rng, rows: u64) -> Vec<Statement> {
    clustered_transaction(&SIGNED_CLUSTERS, rng, rows)
}

fn unsigned_seed(rows: u64) -> (String, Vec<Vec<Value>>) {
    clustered_seed(&UNSIGNED_CLUSTERS, rows)
}

fn unsigned_transaction(rng: &mut Rng, rows: u64) -> Vec<Statement> {
    clustered_transaction(&UNSIGNED_CLUSTERS, rng, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_integer_key_with_gaps_to_both_ends_of_its_range() {
    migrate_under_load(
        Shape {
            name: "gapsigned",
            create: "CREATE TABLE {T} (id BIGINT NOT NULL PRIMARY KEY, n INT NULL) ENGINE=InnoDB",
            columns: "id, n",
            order: "id",
            seed: signed_seed,
            rows: 4_000,
            alter: "ADD COLUMN extra INT NOT NULL DEFAULT 5",
            transaction: signed_transaction,
            migrated_columns: None,
            control_alter: None,
        },
        3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsigned_integer_key_across_2_63_and_up_to_its_maximum() {
    migrate_under_load(
        Shape {
            name: "gapunsigned",
            create: "CREATE TABLE {T} (id BIGINT UNSIGNED NOT NULL PRIMARY KEY, n INT NULL) ENGINE=InnoDB",
            columns: "id, n",
            order: "id",
            seed: unsigned_seed,
            rows: 4_000,
            alter: "ADD COLUMN extra INT NOT NULL DEFAULT 5",
            transaction: unsigned_transaction,
            migrated_columns: None,
            control_alter: None,
        },
        3,
    )
    .await;
}

// ---- secondary indexes built after the copy ----------------------------------

const INDEXED: &str =
    "CREATE TABLE {T} (id BIGINT NOT NULL PRIMARY KEY, a INT NULL, b VARCHAR(40) NULL, \
     c DATETIME(3) NULL, u BIGINT UNSIGNED NULL, KEY id_first (id, b), \
     KEY b_prefix (b(8), a) COMMENT 'prefix, then a', KEY c_desc (c DESC), KEY `we``ird` (a, u), \
     UNIQUE KEY u_unique (u, id), KEY a_old (a)) ENGINE=InnoDB";
const INDEXED_ALTER: &str =
    "ADD COLUMN extra INT NOT NULL DEFAULT 5, DROP INDEX a_old, ADD INDEX extra_a (extra, a)";

fn indexed_shape(name: &'static str) -> Shape {
    Shape {
        name,
        create: INDEXED,
        columns: "id, a, b, c, u",
        order: "id",
        seed: int_seed,
        rows: 6_000,
        alter: INDEXED_ALTER,
        transaction: int_transaction,
        migrated_columns: None,
        control_alter: Some(INDEXED_ALTER),
    }
}

/// The plain secondary indexes are built after the copy, under the load,
/// and the table reads exactly as the native ALTER leaves the control:
/// `SHOW CREATE TABLE` to the letter (index order, prefix, DESC, comment).
/// The unique index stays during the copy, and so does `id_first`, which
/// starts with the shared key (the applier's lookups may need it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secondary_indexes_built_after_the_copy_read_as_the_native_alter() {
    // The default.
    let summary = migrate_under_load(indexed_shape("idxafter"), 3).await;
    assert_eq!(
        summary.indexes_built_after_copy, 4,
        "b_prefix, c_desc, we`ird and extra_a: {summary:?}"
    );
    let plan: Vec<&String> = summary
        .plan
        .statements
        .iter()
        .filter(|(stage, _)| stage == "indexes")
        .map(|(_, stmt)| stmt)
        .collect();
    assert_eq!(plan.len(), 1, "{:?}", summary.plan.statements);
    assert!(
        !plan[0].contains("u_unique") && !plan[0].contains("id_first"),
        "{}",
        plan[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn indexes_kept_during_the_copy_read_as_the_native_alter_too() {
    let summary = migrate_under_load_with(indexed_shape("idxduring"), 3, |c| {
        c.build_indexes_after_copy = false;
    })
    .await;
    assert_eq!(summary.indexes_built_after_copy, 0, "{summary:?}");
}

/// Fuzzer seed 11335: the ALTER moves the primary key off the
/// AUTO_INCREMENT column, which then leads only a plain index. The server
/// requires that index, so it stays during the copy (taking it off failed
/// with error 1075), and the table reads as the native ALTER leaves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_an_auto_increment_column_needs_stays_during_the_copy() {
    let mut conn = client(&primary()).await;
    let db = fresh_database(&mut conn, "autoidx").await;
    for table in ["t", "control"] {
        conn.query_drop(format!(
            "CREATE TABLE `{db}`.`{table}` (b INT NOT NULL, note CHAR(30) NULL, \
             id BIGINT NOT NULL AUTO_INCREMENT, PRIMARY KEY (id), UNIQUE KEY uq (b)) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
        conn.query_drop(format!(
            "INSERT INTO `{db}`.`{table}` (b, note) SELECT seq, CONCAT('n', seq) FROM `{db}`.seq_1_to_300"
        ))
        .await
        .unwrap();
    }
    let alter =
        "ADD INDEX nix (id, note), ADD INDEX later (note), DROP INDEX uq, DROP PRIMARY KEY, ADD PRIMARY KEY (b)";
    let summary = shadowcut::run(&config(&db, "t", alter))
        .await
        .unwrap_or_else(|e| panic!("migration failed: {e}"));
    assert_eq!(
        summary.indexes_built_after_copy, 1,
        "`other` only: {summary:?}"
    );
    assert_t_as_native_alter(&mut conn, &db, alter, "id, b, note", "autoidx").await;
    assert_eq!(
        definition(&mut conn, &db, "t").await,
        definition(&mut conn, &db, "control").await
    );
}

/// Pointed at the replica, the migration reads the replica's binlog and
/// writes on its primary: the primary's table reads as the native ALTER
/// leaves the control, the replica replays the migration, and the two end
/// equal (the harness compares them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pointed_at_the_replica_it_reads_there_and_writes_on_the_primary() {
    let replica = replica().expect("the sandbox has a replica (scripts/test starts one)");
    let target = replica.target();
    let summary = migrate_under_load_with(indexed_shape("viareplica"), 3, |c| {
        c.connect = replica.clone();
    })
    .await;
    assert_eq!(
        summary.plan.topology,
        format!(
            "writes on the primary {}; reads the binlog of its replica {target}",
            primary().target()
        )
    );
}

/// `--test-on-replica` rehearses the migration on the replica: the swap is
/// done and undone with replication stopped, the replica's table keeps its
/// schema, the migrated copy stays as `_t_gho` with every row, the primary
/// is untouched, and the replica replicates again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_on_replica_rehearses_the_swap_and_leaves_both_schemas_alone() {
    let replica_config = replica().expect("the sandbox has a replica (scripts/test starts one)");
    let mut primary_conn = client(&primary()).await;
    let db = simple_table(&mut primary_conn, "testonreplica", 3000).await;
    let mut replica_conn = client(&replica_config).await;
    wait_for_replica(&mut primary_conn, &mut replica_conn).await;
    let mut config = config(&db, "t", "ADD COLUMN extra INT NOT NULL DEFAULT 7");
    config.connect = replica_config.clone();
    config.topology.test_on_replica = true;
    let summary = shadowcut::run(&config)
        .await
        .unwrap_or_else(|e| panic!("--test-on-replica failed: {e}"));
    assert!(summary.tested_on_replica, "{summary:?}");
    assert_eq!(summary.checksum.as_ref().map(|c| c.mismatches), Some(0));
    let columns = |conn_db: &str, table: &str| {
        format!(
            "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{conn_db}' AND TABLE_NAME = '{table}'"
        )
    };
    let on_replica_t: Option<i64> = replica_conn.query_first(columns(&db, "t")).await.unwrap();
    assert_eq!(on_replica_t, Some(2), "the replica's table changed schema");
    let migrated: Option<i64> = replica_conn
        .query_first(format!(
            "SELECT COUNT(*) FROM `{db}`.`_t_gho` WHERE extra = 7"
        ))
        .await
        .unwrap();
    assert_eq!(migrated, Some(3000));
    assert_eq!(
        tables(&mut primary_conn, &db).await,
        vec!["t"],
        "the primary was touched"
    );
    let on_primary_t: Option<i64> = primary_conn.query_first(columns(&db, "t")).await.unwrap();
    assert_eq!(on_primary_t, Some(2));
    // Replication runs again: a write on the primary reaches the replica.
    primary_conn
        .query_drop(format!("INSERT INTO `{db}`.`t` VALUES (100000, 1)"))
        .await
        .unwrap();
    wait_for_replica(&mut primary_conn, &mut replica_conn).await;
    let replayed: Option<i64> = replica_conn
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.`t` WHERE id = 100000"))
        .await
        .unwrap();
    assert_eq!(replayed, Some(1));
    primary_conn
        .query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .unwrap();
}
