//! Every pre-flight refusal, end to end through the `shadowcut` binary: the
//! exit code (3), a message naming the table and the problem, no `_<t>_gho`,
//! `_<t>_ghc` or `_<t>_del` left behind, and the original exactly as it was.
//! Privilege refusals use real restricted users.
//!
//! The refusals that need different server settings (binlog off, binlog
//! filters, binlog_format, binlog_row_image) are in `refusals_server.rs`.

mod common;

use common::cli::*;

use std::sync::atomic::{AtomicU64, Ordering};

use mysql_async::prelude::*;
use mysql_async::Conn;
use shadowcut::server::ConnectConfig;

/// The names the tool derives for `table` (its rename probe and the
/// INSTANT probe's scratch table too).
fn artifacts(table: &str) -> [String; 5] {
    let n = shadowcut::shadow::ShadowNames::derive("", table, None);
    [n.ghost, n.changelog, n.old, n.probe, n.scratch]
}

/// Asserts no table of the tool is in `db`, except those in `expected`.
async fn assert_no_artifacts(conn: &mut Conn, db: &str, table: &str, expected: &[&str]) {
    let tables = common::tables(conn, db).await;
    for name in artifacts(table) {
        if expected.contains(&name.as_str()) {
            continue;
        }
        assert!(
            !tables.contains(&name),
            "{} was left behind: {tables:?}",
            q(db, &name)
        );
    }
    let stray: Vec<&String> = tables
        .iter()
        .filter(|t| {
            t.ends_with("_gho") || t.ends_with("_ghc") || t.ends_with("_del") || t.ends_with("_ins")
        })
        .filter(|t| !expected.contains(&t.as_str()))
        .collect();
    assert!(stray.is_empty(), "tool tables left in {db}: {stray:?}");
}

/// Runs the binary twice (dry run, then --execute) with `extra` flags and
/// asserts both are refused with `needles`, leave no artifact and change
/// nothing. Returns the --execute outcome.
async fn check_refusal(
    conn: &mut Conn,
    db: &str,
    table: &str,
    alter: &str,
    extra: &[&str],
    needles: &[&str],
) -> Outcome {
    let before = snapshot(conn, db).await;
    let dry = shadowcut(&common::primary(), db, table, alter, extra).await;
    assert_refused(&dry, db, table, needles);
    assert!(
        !dry.stdout.contains("Dry run for"),
        "a refused dry run printed a plan\n{dry}"
    );
    assert_no_artifacts(conn, db, table, &[]).await;
    assert_eq!(
        snapshot(conn, db).await,
        before,
        "the refused dry run changed the schema"
    );

    let mut with_execute = extra.to_vec();
    with_execute.push("--execute");
    let run = shadowcut(&common::primary(), db, table, alter, &with_execute).await;
    assert_refused(&run, db, table, needles);
    assert!(
        !run.stdout.contains("Migrated "),
        "a refused run claims success\n{run}"
    );
    assert_no_artifacts(conn, db, table, &[]).await;
    assert_eq!(
        snapshot(conn, db).await,
        before,
        "the refused run changed the schema"
    );
    run
}

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// A fresh database on the primary with `ddl` run in it (unqualified names
/// resolve to it), and the guard that drops it again, pass or fail.
async fn setup(prefix: &str, ddl: &[&str]) -> (Conn, String, SqlOnDrop) {
    let mut conn = common::client(&common::primary()).await;
    let db = common::fresh_database(&mut conn, prefix).await;
    let cleanup = drop_database_on_exit(&db);
    conn.query_drop(format!("USE `{db}`")).await.unwrap();
    for stmt in ddl {
        conn.query_drop(*stmt)
            .await
            .unwrap_or_else(|e| panic!("fixture statement {stmt:?} failed: {e}"));
    }
    (conn, db, cleanup)
}

/// The plain table most tests migrate: a primary key and a few rows.
const PLAIN: &[&str] = &[
    "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL) ENGINE=InnoDB",
    "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')",
];

fn drop_database_on_exit(db: &str) -> SqlOnDrop {
    SqlOnDrop {
        config: common::primary(),
        statements: vec![format!("DROP DATABASE IF EXISTS `{db}`")],
    }
}

/// A user name unique to this process and test.
fn unique_user(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `'user'@'%'` with `grants` (each a `GRANT ... ON ...` without the
/// `TO` part); the returned guard drops the user.
async fn restricted_user(
    conn: &mut Conn,
    prefix: &str,
    grants: &[String],
) -> (ConnectConfig, SqlOnDrop) {
    let user = unique_user(prefix);
    let password = "restricted-pw";
    let guard = SqlOnDrop {
        config: common::primary(),
        statements: vec![format!("DROP USER IF EXISTS '{user}'@'%'")],
    };
    conn.query_drop(format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
    ))
    .await
    .unwrap();
    for grant in grants {
        conn.query_drop(format!("{grant} TO '{user}'@'%'"))
            .await
            .unwrap_or_else(|e| panic!("{grant}: {e}"));
    }
    let mut config = common::primary();
    config.user = user;
    config.password = Some(password.into());
    (config, guard)
}

/// Table privileges on `db` (everything the tool needs there, minus `without`).
fn db_grant(db: &str, without: &str) -> String {
    let privileges: Vec<&str> = [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "CREATE",
        "DROP",
        "ALTER",
        "INDEX",
        "LOCK TABLES",
    ]
    .into_iter()
    .filter(|p| *p != without)
    .collect();
    format!("GRANT {} ON `{db}`.*", privileges.join(", "))
}

/// A dry run and a refused --execute by a restricted user: the problem
/// (before the remedy) must contain every `problem_needles`, the whole
/// message every `message_needles` (case-insensitive).
async fn check_privilege_refusal(
    conn: &mut Conn,
    db: &str,
    user: &ConnectConfig,
    problem_needles: &[&str],
    message_needles: &[&str],
) {
    let before = snapshot(conn, db).await;
    for extra in [&[][..], &["--execute"][..]] {
        let out = shadowcut(user, db, "t", "ADD COLUMN c INT NULL", extra).await;
        assert_refused(&out, db, "t", &["the user may not", "Ask for: GRANT"]);
        let problem = out.problem().to_ascii_uppercase();
        for needle in problem_needles {
            assert!(
                problem.contains(&needle.to_ascii_uppercase()),
                "the problem {problem:?} does not name {needle:?}\n{out}"
            );
        }
        let message = out.error_line().to_ascii_uppercase();
        for needle in message_needles {
            assert!(
                message.contains(&needle.to_ascii_uppercase()),
                "the message does not name {needle:?}\n{out}"
            );
        }
        assert_no_artifacts(conn, db, "t", &[]).await;
        assert_eq!(
            snapshot(conn, db).await,
            before,
            "{extra:?} changed the schema"
        );
    }
}

// ---------------------------------------------------------------------------
// The table and the database
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_missing_table() {
    let (mut conn, db, _cleanup) = setup("ref_notable", PLAIN).await;
    check_refusal(
        &mut conn,
        &db,
        "nope",
        "ADD COLUMN c INT",
        &[],
        &["the table does not exist", "--table"],
    )
    .await;

    // The JSON output carries the same refusal as an event.
    let out = shadowcut(
        &common::primary(),
        &db,
        "nope",
        "ADD COLUMN c INT",
        &["--output", "json"],
    )
    .await;
    assert_eq!(out.code, Some(REFUSED), "{out}");
    let event: serde_json::Value = json_event(&out, "error");
    assert_eq!(event["exit_code"], REFUSED, "{out}");
    let message = event["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&q(&db, "nope")) && message.contains("does not exist"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_missing_database() {
    let mut conn = common::client(&common::primary()).await;
    let db = format!("ref_nodb_{}_missing", std::process::id());
    conn.query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .await
        .unwrap();
    for extra in [&[][..], &["--execute"][..]] {
        let out = shadowcut(&common::primary(), &db, "t", "ADD COLUMN c INT", extra).await;
        assert_refused(
            &out,
            &db,
            "t",
            &[&format!("database `{db}` does not exist"), "--database"],
        );
        let exists: Option<String> = conn
            .exec_first(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
                (&db,),
            )
            .await
            .unwrap();
        assert_eq!(exists, None, "the refused run created the database");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_table_without_primary_or_not_null_unique_key() {
    let (mut conn, db, _cleanup) = setup(
        "ref_nokey",
        &[
            "CREATE TABLE t (a INT NOT NULL, b INT NOT NULL, KEY (a)) ENGINE=InnoDB",
            "INSERT INTO t VALUES (1, 1), (2, 2)",
        ],
    )
    .await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT",
        &[],
        &["no PRIMARY KEY and no UNIQUE key on NOT NULL columns"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_table_whose_only_unique_key_is_nullable() {
    let (mut conn, db, _cleanup) = setup(
        "ref_nullkey",
        &[
            "CREATE TABLE t (id INT NULL, v INT NOT NULL, UNIQUE KEY uq (id)) ENGINE=InnoDB",
            "INSERT INTO t VALUES (1, 1), (2, 2), (NULL, 3)",
        ],
    )
    .await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT",
        &[],
        &["no PRIMARY KEY and no UNIQUE key on NOT NULL columns"],
    )
    .await;

    // The same key on a NOT NULL column is enough: the refusal is about
    // nullability, not about the missing PRIMARY KEY.
    conn.query_drop("DELETE FROM t WHERE id IS NULL")
        .await
        .unwrap();
    conn.query_drop("ALTER TABLE t MODIFY id INT NOT NULL")
        .await
        .unwrap();
    let out = shadowcut(&common::primary(), &db, "t", "ADD COLUMN c INT", &[]).await;
    assert_success(&out);
    assert!(out.stdout.contains("uq (id)"), "shared key not uq\n{out}");
    assert_no_artifacts(&mut conn, &db, "t", &[]).await;
}

/// MariaDB keeps a UNIQUE over long columns as a hash (`USING HASH`):
/// no statement reads the table in its order or finds a row by it, so
/// every chunk and every change would scan the table. With a primary key
/// beside it, the primary key is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_table_whose_only_unique_key_is_a_long_unique_hash() {
    let (mut conn, db, _cleanup) = setup(
        "ref_hashkey",
        &[
            "CREATE TABLE t (url VARCHAR(3000) NOT NULL, hits INT NOT NULL, UNIQUE KEY u (url)) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            "INSERT INTO t VALUES ('http://a/', 1), ('http://b/', 2)",
        ],
    )
    .await;
    let index_type: String = conn
        .query_first("SELECT INDEX_TYPE FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(index_type, "HASH", "the fixture is not a long UNIQUE");
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT",
        &[],
        &["`u` is a long UNIQUE", "USING HASH", "Add a primary key"],
    )
    .await;

    // A key the ALTER widens past what a B-tree takes becomes such a hash.
    conn.query_drop(
        "ALTER TABLE t DROP KEY u, MODIFY url VARCHAR(700) NOT NULL, ADD UNIQUE KEY u (url)",
    )
    .await
    .unwrap();
    check_refusal(
        &mut conn,
        &db,
        "t",
        "MODIFY url VARCHAR(3000) NOT NULL",
        &[],
        &["share no PRIMARY KEY", "keeps `u` as a long UNIQUE"],
    )
    .await;

    conn.query_drop("ALTER TABLE t ADD COLUMN id INT NOT NULL AUTO_INCREMENT PRIMARY KEY")
        .await
        .unwrap();
    let out = shadowcut(
        &common::primary(),
        &db,
        "t",
        "ADD COLUMN c INT",
        &["--execute"],
    )
    .await;
    assert_success(&out);
    let rows: Vec<(String, i32)> = conn
        .query("SELECT url, hits FROM t ORDER BY url")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![("http://a/".to_string(), 1), ("http://b/".to_string(), 2)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_table_with_a_trigger() {
    let (mut conn, db, _cleanup) = setup(
        "ref_trigger",
        &[
            PLAIN[0],
            PLAIN[1],
            "CREATE TABLE audit (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, t_id INT)",
            "CREATE TRIGGER t_after_insert AFTER INSERT ON t FOR EACH ROW INSERT INTO audit (t_id) VALUES (NEW.id)",
        ],
    )
    .await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT",
        &[],
        &["the table has triggers", "t_after_insert"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_table_that_is_the_child_of_a_foreign_key() {
    let (mut conn, db, _cleanup) = setup(
        "ref_fkchild",
        &[
            "CREATE TABLE p (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB",
            "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, pid INT NOT NULL, \
             CONSTRAINT fk_t_p FOREIGN KEY (pid) REFERENCES p (id)) ENGINE=InnoDB",
            "INSERT INTO p VALUES (1), (2)",
            "INSERT INTO t VALUES (1, 1), (2, 2)",
        ],
    )
    .await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT",
        &[],
        &[
            "the table takes part in foreign keys",
            &format!("`fk_t_p` on {}", q(&db, "t")),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_table_that_is_the_parent_of_a_foreign_key() {
    let (mut conn, db, _cleanup) = setup(
        "ref_fkparent",
        &[
            PLAIN[0],
            PLAIN[1],
            "CREATE TABLE child (id INT NOT NULL PRIMARY KEY, tid INT NOT NULL, \
             CONSTRAINT fk_child_t FOREIGN KEY (tid) REFERENCES t (id)) ENGINE=InnoDB",
            "INSERT INTO child VALUES (10, 1)",
        ],
    )
    .await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT",
        &[],
        &[
            "the table takes part in foreign keys",
            &format!("`fk_child_t` on {}", q(&db, "child")),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_parent_whose_child_table_is_in_another_database() {
    let (mut conn, db, _cleanup) = setup("ref_fkxdb", PLAIN).await;
    let other = common::fresh_database(&mut conn, "ref_fkxdb_child").await;
    let _cleanup_other = drop_database_on_exit(&other);
    conn.query_drop(format!(
        "CREATE TABLE `{other}`.child (id INT NOT NULL PRIMARY KEY, tid INT NOT NULL, \
         CONSTRAINT fk_far FOREIGN KEY (tid) REFERENCES `{db}`.t (id)) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    conn.query_drop(format!("INSERT INTO `{other}`.child VALUES (1, 3)"))
        .await
        .unwrap();
    let other_before = snapshot(&mut conn, &other).await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT",
        &[],
        &[
            "the table takes part in foreign keys",
            &format!("`fk_far` on {}", q(&other, "child")),
        ],
    )
    .await;
    assert_eq!(snapshot(&mut conn, &other).await, other_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_aria_table() {
    let (mut conn, db, _cleanup) = setup(
        "ref_aria",
        &[
            "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT) ENGINE=Aria",
            "INSERT INTO t VALUES (1, 1), (2, 2)",
        ],
    )
    .await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT",
        &[],
        &["the table uses the Aria engine, not InnoDB"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_myisam_table() {
    let (mut conn, db, _cleanup) = setup(
        "ref_myisam",
        &[
            "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT) ENGINE=MyISAM",
            "INSERT INTO t VALUES (1, 1), (2, 2)",
        ],
    )
    .await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT",
        &[],
        &["the table uses the MyISAM engine, not InnoDB"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_system_versioned_table() {
    let (mut conn, db, _cleanup) = setup(
        "ref_versioned",
        &[
            "CREATE TABLE t (id INT NOT NULL PRIMARY KEY, v INT) ENGINE=InnoDB WITH SYSTEM VERSIONING",
            "INSERT INTO t VALUES (1, 1), (2, 2)",
            "UPDATE t SET v = 5 WHERE id = 1",
        ],
    )
    .await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT",
        &[],
        &["system-versioned"],
    )
    .await;
    let history: i64 = conn
        .query_first("SELECT COUNT(*) FROM t FOR SYSTEM_TIME ALL")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(history, 3, "the row history changed");
}

// ---------------------------------------------------------------------------
// Tables in the way
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_ghost_table_it_did_not_create_even_with_initially_drop() {
    let (mut conn, db, _cleanup) = setup(
        "ref_gho_foreign",
        &[
            PLAIN[0],
            PLAIN[1],
            "CREATE TABLE _t_gho (id INT NOT NULL PRIMARY KEY, precious TEXT) COMMENT 'my own table'",
            "INSERT INTO _t_gho VALUES (1, 'keep me')",
        ],
    )
    .await;
    let before = snapshot(&mut conn, &db).await;
    for extra in [
        &["--execute"][..],
        &[][..],
        &["--execute", "--initially-drop-ghost-table"][..],
    ] {
        let out = shadowcut(&common::primary(), &db, "t", "ADD COLUMN c INT", extra).await;
        let mut needles = vec![format!("table {} already exists", q(&db, "_t_gho"))];
        needles.push(if extra.contains(&"--initially-drop-ghost-table") {
            "It was not created by shadowcut".into()
        } else {
            "--initially-drop-ghost-table".into()
        });
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_refused(&out, &db, "t", &needles);
        assert_eq!(snapshot(&mut conn, &db).await, before, "{extra:?}");
        assert_no_artifacts(&mut conn, &db, "t", &["_t_gho"]).await;
    }
    let kept: Option<String> = conn
        .query_first("SELECT precious FROM _t_gho WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("keep me"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_a_marked_ghost_leftover_only_with_initially_drop() {
    let (mut conn, db, _cleanup) = setup(
        "ref_gho_marked",
        &[
            PLAIN[0],
            PLAIN[1],
            "CREATE TABLE _t_gho (id INT NOT NULL PRIMARY KEY) COMMENT 'shadowcut:ghost:someid'",
        ],
    )
    .await;
    let before = snapshot(&mut conn, &db).await;
    let out = shadowcut(
        &common::primary(),
        &db,
        "t",
        "ADD COLUMN c INT",
        &["--execute"],
    )
    .await;
    assert_refused(
        &out,
        &db,
        "t",
        &[
            &format!("table {} already exists", q(&db, "_t_gho")),
            "--initially-drop-ghost-table",
        ],
    );
    assert_eq!(snapshot(&mut conn, &db).await, before);

    let out = shadowcut(
        &common::primary(),
        &db,
        "t",
        "ADD COLUMN c INT",
        &["--initially-drop-ghost-table"],
    )
    .await;
    assert_success(&out);
    assert!(out.stdout.contains("Dry run for"), "{out}");
    assert_eq!(common::tables(&mut conn, &db).await, vec!["t".to_string()]);
    assert_eq!(
        snapshot(&mut conn, &db).await.create.get("t"),
        before.create.get("t"),
        "the dry run changed the original"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_changelog_table_it_did_not_create_even_with_initially_drop() {
    let (mut conn, db, _cleanup) = setup(
        "ref_ghc_foreign",
        &[
            PLAIN[0],
            PLAIN[1],
            "CREATE TABLE _t_ghc (id INT NOT NULL PRIMARY KEY) COMMENT 'not a shadowcut table'",
            // A marker of the wrong role is not a changelog leftover either.
            "CREATE TABLE _u_ghc (id INT NOT NULL PRIMARY KEY) COMMENT 'shadowcut:ghost:someid'",
            "CREATE TABLE u (id INT NOT NULL PRIMARY KEY)",
        ],
    )
    .await;
    let before = snapshot(&mut conn, &db).await;
    for (table, extra) in [
        ("t", &["--execute"][..]),
        ("t", &["--execute", "--initially-drop-ghost-table"][..]),
        ("u", &["--initially-drop-ghost-table"][..]),
    ] {
        let out = shadowcut(&common::primary(), &db, table, "ADD COLUMN c INT", extra).await;
        let leftover = format!("_{table}_ghc");
        let exists = format!("table {} already exists", q(&db, &leftover));
        let needles: Vec<&str> = if extra.contains(&"--initially-drop-ghost-table") {
            vec![&exists, "It was not created by shadowcut"]
        } else {
            vec![&exists, "--initially-drop-ghost-table"]
        };
        assert_refused(&out, &db, table, &needles);
        assert_eq!(snapshot(&mut conn, &db).await, before, "{table} {extra:?}");
        assert_no_artifacts(&mut conn, &db, table, &["_t_ghc", "_u_ghc"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_a_marked_changelog_leftover_only_with_initially_drop() {
    let (mut conn, db, _cleanup) = setup(
        "ref_ghc_marked",
        &[
            PLAIN[0],
            PLAIN[1],
            "CREATE TABLE _t_ghc (id INT NOT NULL PRIMARY KEY) COMMENT 'shadowcut:changelog:someid'",
        ],
    )
    .await;
    let before = snapshot(&mut conn, &db).await;
    let out = shadowcut(&common::primary(), &db, "t", "ADD COLUMN c INT", &[]).await;
    assert_refused(
        &out,
        &db,
        "t",
        &[
            &format!("table {} already exists", q(&db, "_t_ghc")),
            "--initially-drop-ghost-table",
        ],
    );
    assert_eq!(snapshot(&mut conn, &db).await, before);

    let out = shadowcut(
        &common::primary(),
        &db,
        "t",
        "ADD COLUMN c INT",
        &["--initially-drop-ghost-table"],
    )
    .await;
    assert_success(&out);
    assert_eq!(common::tables(&mut conn, &db).await, vec!["t".to_string()]);
    assert_eq!(
        snapshot(&mut conn, &db).await.create.get("t"),
        before.create.get("t")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_old_table_it_did_not_create_even_with_initially_drop() {
    let (mut conn, db, _cleanup) = setup(
        "ref_del_foreign",
        &[
            PLAIN[0],
            PLAIN[1],
            "CREATE TABLE _t_del (id INT NOT NULL PRIMARY KEY) COMMENT 'archive, do not drop'",
            "INSERT INTO _t_del VALUES (7)",
        ],
    )
    .await;
    let before = snapshot(&mut conn, &db).await;
    let exists = format!("table {} already exists", q(&db, "_t_del"));
    for (extra, hint) in [
        (&["--execute"][..], "--initially-drop-old-table"),
        (
            &["--execute", "--initially-drop-old-table"][..],
            "It was not created by shadowcut",
        ),
    ] {
        let out = shadowcut(&common::primary(), &db, "t", "ADD COLUMN c INT", extra).await;
        assert_refused(&out, &db, "t", &[&exists, hint]);
        assert_eq!(snapshot(&mut conn, &db).await, before, "{extra:?}");
        assert_no_artifacts(&mut conn, &db, "t", &["_t_del"]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_a_marked_old_table_only_with_initially_drop_old_table() {
    let (mut conn, db, _cleanup) = setup(
        "ref_del_marked",
        &[
            PLAIN[0],
            PLAIN[1],
            "CREATE TABLE _t_del (id INT NOT NULL PRIMARY KEY) COMMENT 'shadowcut:old:x'",
        ],
    )
    .await;
    let before = snapshot(&mut conn, &db).await;
    let exists = format!("table {} already exists", q(&db, "_t_del"));
    // Neither no flag nor the ghost table's flag drops an old table.
    for extra in [&[][..], &["--initially-drop-ghost-table"][..]] {
        let out = shadowcut(&common::primary(), &db, "t", "ADD COLUMN c INT", extra).await;
        assert_refused(&out, &db, "t", &[&exists, "--initially-drop-old-table"]);
        assert_eq!(snapshot(&mut conn, &db).await, before, "{extra:?}");
    }
    let out = shadowcut(
        &common::primary(),
        &db,
        "t",
        "ADD COLUMN c INT",
        &["--initially-drop-old-table"],
    )
    .await;
    assert_success(&out);
    assert_eq!(common::tables(&mut conn, &db).await, vec!["t".to_string()]);
    assert_eq!(
        snapshot(&mut conn, &db).await.create.get("t"),
        before.create.get("t")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_while_another_migration_holds_the_run_lock() {
    let (mut conn, db, _cleanup) = setup("ref_runlock", PLAIN).await;
    let lock = format!("shadowcut.{db}.t");
    let mut holder = common::client(&common::primary()).await;
    let got: Option<i64> = holder
        .exec_first("SELECT GET_LOCK(?, 0)", (&lock,))
        .await
        .unwrap();
    assert_eq!(got, Some(1));
    let holder_id: u64 = holder
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT",
        &[],
        &[
            "another migration of this table is running",
            &lock,
            &format!("connection {holder_id}"),
        ],
    )
    .await;

    // Released, the same run goes ahead.
    holder
        .exec_drop("DO RELEASE_LOCK(?)", (&lock,))
        .await
        .unwrap();
    let out = shadowcut(&common::primary(), &db, "t", "ADD COLUMN c INT", &[]).await;
    assert_success(&out);
    assert_no_artifacts(&mut conn, &db, "t", &[]).await;
    holder.disconnect().await.unwrap();
}

// ---------------------------------------------------------------------------
// The ALTER
// ---------------------------------------------------------------------------

/// An AUTO_INCREMENT beyond the column's range: the server's own COPY keeps
/// it (and every later insert fails), but it drops such a counter on any
/// later ALTER, so the swap could not carry it (fuzzer seed 30003).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_auto_increment_beyond_the_columns_range() {
    let (mut conn, db, _cleanup) = setup(
        "ref_autoinc",
        &["CREATE TABLE t (id SMALLINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB",
          "INSERT INTO t (v) VALUES (1), (2)"],
    )
    .await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT NULL, AUTO_INCREMENT = 1000565",
        &[],
        &[
            "AUTO_INCREMENT = 1000565",
            "smallint(5) unsigned: 65535",
            "widen the column",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_alter_the_server_rejects_with_the_server_message() {
    let (mut conn, db, _cleanup) = setup("ref_alterfails", PLAIN).await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN id INT",
        &[],
        &[
            "the ALTER fails on a copy of the table",
            "error 1060",
            "Duplicate column name 'id'",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_alter_with_a_syntax_error_with_the_server_message() {
    let (mut conn, db, _cleanup) = setup("ref_altersyntax", PLAIN).await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT NOT NULL DEFAULT",
        &[],
        &[
            "the ALTER fails on a copy of the table",
            "error 1064",
            "You have an error in your SQL syntax",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_alter_that_renames_the_table() {
    let (mut conn, db, _cleanup) = setup("ref_rename", PLAIN).await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT, RENAME TO t2",
        &[],
        &["the ALTER renames the table", "RENAME TABLE"],
    )
    .await;
}

/// Partition operations that remove or move rows would run on the new,
/// empty table: the rows `TRUNCATE PARTITION` should remove would be
/// copied anyway, and `EXCHANGE PARTITION` would take the other table's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_partition_operations_that_remove_or_move_rows() {
    let (mut conn, db, _cleanup) = setup(
        "ref_partops",
        &[
            "CREATE TABLE t (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB \
             PARTITION BY RANGE (id) (PARTITION p0 VALUES LESS THAN (100), PARTITION p1 VALUES LESS THAN MAXVALUE)",
            "INSERT INTO t SELECT seq FROM seq_1_to_200",
            "CREATE TABLE archive (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB",
            "INSERT INTO archive VALUES (5000)",
        ],
    )
    .await;
    for alter in [
        "TRUNCATE PARTITION p0",
        "DROP PARTITION p0",
        "EXCHANGE PARTITION p0 WITH TABLE archive",
    ] {
        check_refusal(
            &mut conn,
            &db,
            "t",
            alter,
            &[],
            &["changes the table's rows", "plain ALTER TABLE"],
        )
        .await;
    }
    let counts: (i64, i64) = conn
        .query_first("SELECT (SELECT COUNT(*) FROM t), (SELECT COUNT(*) FROM archive)")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(counts, (200, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_alter_that_adds_a_foreign_key() {
    let (mut conn, db, _cleanup) = setup(
        "ref_addfk",
        &[
            PLAIN[0],
            PLAIN[1],
            "CREATE TABLE p (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB",
        ],
    )
    .await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD CONSTRAINT fk_new FOREIGN KEY (id) REFERENCES p (id)",
        &[],
        &["the ALTER adds a foreign key"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_alter_with_algorithm_inplace() {
    let (mut conn, db, _cleanup) = setup("ref_algorithm", PLAIN).await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT, ALGORITHM=INPLACE",
        &[],
        &["the ALTER carries ALGORITHM= or LOCK="],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_alter_with_lock_none() {
    let (mut conn, db, _cleanup) = setup("ref_locknone", PLAIN).await;
    check_refusal(
        &mut conn,
        &db,
        "t",
        "ADD COLUMN c INT, LOCK = NONE",
        &[],
        &["the ALTER carries ALGORITHM= or LOCK="],
    )
    .await;
}

/// The ALTER text is appended to `ALTER TABLE _t_gho` and sent as one query
/// on a connection with CLIENT_MULTI_STATEMENTS: a `;` in it runs a second
/// statement of the operator's choice, here against the original, even in
/// a dry run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_an_alter_with_a_second_statement() {
    let (mut conn, db, _cleanup) = setup("ref_multistmt", PLAIN).await;
    let marker = q(&db, "marker");
    for alter in [
        format!("ADD COLUMN c INT; DROP TABLE {}", q(&db, "t")),
        // Once hidden from the reader by `--` read as a comment, and run
        // by the dry run: the schema snapshot would show the new table.
        format!("ADD COLUMN IF NOT EXISTS z INT DEFAULT (5--1); CREATE TABLE {marker} (x INT)"),
    ] {
        check_refusal(&mut conn, &db, "t", &alter, &[], &["--alter"]).await;
    }
}

/// Executable comments (`/*! ... */`) are dropped by the tokenizer that
/// looks for forbidden clauses, but the server runs what is inside them: a
/// foreign key slips through (the dry run exits 0 and --execute would swap
/// in a table with a foreign key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_foreign_key_hidden_in_an_executable_comment() {
    let (mut conn, db, _cleanup) = setup(
        "ref_execfk",
        &[
            PLAIN[0],
            PLAIN[1],
            "CREATE TABLE p (id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB",
            "INSERT INTO p VALUES (1), (2), (3)",
        ],
    )
    .await;
    let alter = format!(
        "ADD COLUMN c INT /*!, ADD CONSTRAINT fk_hidden FOREIGN KEY (id) REFERENCES {} (id) */",
        q(&db, "p")
    );
    check_refusal(
        &mut conn,
        &db,
        "t",
        &alter,
        &[],
        &["the ALTER adds a foreign key"],
    )
    .await;
}

/// The same with a table rename: the ghost is renamed away, the run fails
/// with exit 1 ("marking `_t_gho`: ... doesn't exist") and the renamed
/// ghost is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_table_rename_hidden_in_an_executable_comment() {
    let (mut conn, db, _cleanup) = setup("ref_execrename", PLAIN).await;
    let alter = format!("ADD COLUMN c INT /*!, RENAME TO {} */", q(&db, "t_renamed"));
    check_refusal(&mut conn, &db, "t", &alter, &[], &["renames the table"]).await;
}

/// A versioned comment runs on some servers only: read as run, the DROP
/// inside one that this server skips would leave `v` out of the copy, and
/// the new table's `v` empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_versioned_comment_in_the_alter() {
    let (mut conn, db, _cleanup) = setup("ref_versioned", PLAIN).await;
    for alter in [
        "ADD COLUMN c INT /*M!999999 , DROP COLUMN v */",
        "ADD COLUMN c INT /*!90000 , DROP COLUMN v */",
    ] {
        check_refusal(
            &mut conn,
            &db,
            "t",
            alter,
            &[],
            &["versioned or MariaDB-only comment"],
        )
        .await;
    }
}

// ---------------------------------------------------------------------------
// Privileges, with real restricted users
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_user_without_binlog_privileges_naming_them() {
    let (mut conn, db, _cleanup) = setup("ref_priv_nobinlog", PLAIN).await;
    let (user, _drop_user) = restricted_user(
        &mut conn,
        "sc_nobinlog",
        &[db_grant(&db, ""), "GRANT SLAVE MONITOR ON *.*".into()],
    )
    .await;
    // MariaDB >= 10.5.2 names the right to read the binlog position
    // BINLOG MONITOR (REPLICATION CLIENT is an alias of it).
    check_privilege_refusal(
        &mut conn,
        &db,
        &user,
        &["read the binlog position", "BINLOG MONITOR"],
        &["BINLOG MONITOR, SLAVE MONITOR ON *.*"],
    )
    .await;
}

/// Telling a replica from a primary needs the replication status: MariaDB
/// >= 10.5.9 grants it with SLAVE MONITOR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_user_who_may_not_read_the_replication_status_naming_it() {
    let (mut conn, db, _cleanup) = setup("ref_priv_nomonitor", PLAIN).await;
    let (user, _drop_user) = restricted_user(
        &mut conn,
        "sc_nomonitor",
        &[
            db_grant(&db, ""),
            "GRANT RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.*".into(),
        ],
    )
    .await;
    check_privilege_refusal(
        &mut conn,
        &db,
        &user,
        &["find out whether the server is a replica", "SLAVE MONITOR"],
        &["BINLOG MONITOR, SLAVE MONITOR ON *.*"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_user_without_replication_slave_naming_it() {
    let (mut conn, db, _cleanup) = setup("ref_priv_norepl", PLAIN).await;
    let (user, _drop_user) = restricted_user(
        &mut conn,
        "sc_norepl",
        &[
            db_grant(&db, ""),
            "GRANT RELOAD, BINLOG MONITOR, SLAVE MONITOR ON *.*".into(),
        ],
    )
    .await;
    // This one gets as far as the new table, which must be removed again.
    // MariaDB answers the binlog dump with a plain "Access denied for user"
    // (error 1045) that names no privilege, so only the remedy names it.
    check_privilege_refusal(
        &mut conn,
        &db,
        &user,
        &["read the binlog (replication)"],
        &["REPLICATION SLAVE"],
    )
    .await;
}

/// What the refusal should say: which privilege is missing, not only which
/// action failed (the remedy lists every privilege, missing or not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_the_missing_replication_slave_privilege_in_the_problem() {
    let (mut conn, db, _cleanup) = setup("ref_priv_norepl_strict", PLAIN).await;
    let (user, _drop_user) = restricted_user(
        &mut conn,
        "sc_norepl_strict",
        &[
            db_grant(&db, ""),
            "GRANT RELOAD, BINLOG MONITOR, SLAVE MONITOR ON *.*".into(),
        ],
    )
    .await;
    check_privilege_refusal(&mut conn, &db, &user, &["REPLICATION SLAVE"], &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_user_without_lock_tables_naming_it() {
    let (mut conn, db, _cleanup) = setup("ref_priv_nolock", PLAIN).await;
    let (user, _drop_user) = restricted_user(
        &mut conn,
        "sc_nolock",
        &[
            db_grant(&db, "LOCK TABLES"),
            "GRANT REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR ON *.*".into(),
        ],
    )
    .await;
    check_privilege_refusal(
        &mut conn,
        &db,
        &user,
        &["lock tables for the cut-over"],
        &["LOCK TABLES ON"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_user_without_reload_naming_it() {
    let (mut conn, db, _cleanup) = setup("ref_priv_noreload", PLAIN).await;
    let (user, _drop_user) = restricted_user(
        &mut conn,
        "sc_noreload",
        &[
            db_grant(&db, ""),
            "GRANT REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR ON *.*".into(),
        ],
    )
    .await;
    check_privilege_refusal(
        &mut conn,
        &db,
        &user,
        &["hold writers off the table", "RELOAD"],
        &["RELOAD, REPLICATION SLAVE"],
    )
    .await;
}

/// The control for the privilege refusals: the grants the refusal asks for
/// are enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_a_user_with_exactly_the_privileges_it_asks_for() {
    let (mut conn, db, _cleanup) = setup("ref_priv_enough", PLAIN).await;
    let (user, _drop_user) = restricted_user(
        &mut conn,
        "sc_enough",
        &[
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, LOCK TABLES ON `{db}`.*"
            ),
            "GRANT RELOAD, REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR ON *.*".into(),
        ],
    )
    .await;
    let before = snapshot(&mut conn, &db).await;
    let out = shadowcut(&user, &db, "t", "ADD COLUMN c INT NULL", &[]).await;
    assert_success(&out);
    assert_eq!(snapshot(&mut conn, &db).await, before);
}

// ---------------------------------------------------------------------------
// The dry run
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_of_a_valid_alter_leaves_the_schema_as_it_was() {
    let (mut conn, db, _cleanup) = setup(
        "ref_dryrun",
        &[
            "CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20) NOT NULL, \
             KEY v (v)) ENGINE=InnoDB COMMENT 'the original'",
            "INSERT INTO t (v) VALUES ('a'), ('b'), ('c')",
            "CREATE TABLE neighbour (id INT NOT NULL PRIMARY KEY)",
        ],
    )
    .await;
    let before = snapshot(&mut conn, &db).await;
    let rows_before = common::rows(&mut conn, &db, "t", "*", "id").await;
    let alter = "ADD COLUMN c INT NOT NULL DEFAULT 0, ADD INDEX c (c), COMMENT 'changed'";
    let out = shadowcut(&common::primary(), &db, "t", alter, &[]).await;
    assert_success(&out);
    assert!(
        out.stdout.contains(&format!("Dry run for {}", q(&db, "t")))
            && out.stdout.contains("nothing was changed")
            && out.stdout.contains("PRIMARY (id)"),
        "{out}"
    );
    assert_eq!(snapshot(&mut conn, &db).await, before);
    assert_no_artifacts(&mut conn, &db, "t", &[]).await;
    common::assert_same_rows(
        &rows_before,
        &common::rows(&mut conn, &db, "t", "*", "id").await,
        "rows after the dry run",
    );

    // The JSON summary says it was a dry run.
    let out = shadowcut(&common::primary(), &db, "t", alter, &["--output", "json"]).await;
    assert_success(&out);
    let summary: serde_json::Value = json_event(&out, "summary");
    assert_eq!(summary["summary"]["dry_run"], true, "{out}");
    assert_eq!(snapshot(&mut conn, &db).await, before);
}

/// The dry run's impact estimate, before anything runs: the counted rows,
/// the table's size, a timed sample copied into the dry run's new table
/// (removed again), the binlog's retention, and the watched replica's lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_estimates_the_impact_from_a_timed_sample() {
    let mut conn = common::client(&common::primary()).await;
    let db = common::simple_table(&mut conn, "ref_impact", 3000).await;
    let replica = common::replica().expect("the sandbox has a replica");
    let replica_arg = format!("{}:{}", replica.host, replica.port);
    let out = shadowcut(
        &common::primary(),
        &db,
        "t",
        "ADD COLUMN c INT NULL",
        &[
            "--exact-rowcount",
            "--throttle-control-replicas",
            &replica_arg,
            "--output",
            "json",
        ],
    )
    .await;
    assert_success(&out);
    let summary: serde_json::Value = json_event(&out, "summary");
    let impact = &summary["summary"]["plan"]["impact"];
    assert_eq!(impact["rows"], 3000, "{impact}");
    assert_eq!(impact["rows_exact"], true);
    assert_eq!(
        impact["sample_rows"], 3000,
        "the sample copies up to 20,000 rows"
    );
    assert!(
        impact["estimated_copy_seconds"].as_f64().unwrap() > 0.0,
        "{impact}"
    );
    assert!(impact["table_bytes"].as_u64().unwrap() > 0, "{impact}");
    // MariaDB keeps binlogs for ever by default.
    assert_eq!(impact["binlog_retention_s"], 0, "{impact}");
    assert_eq!(
        impact["replica_lags"][0][0],
        replica_arg.as_str(),
        "{impact}"
    );
    assert_eq!(impact["replica_lags"][0][1], 0, "{impact}");
    assert_eq!(common::tables(&mut conn, &db).await, vec!["t"]);

    let text = shadowcut(&common::primary(), &db, "t", "ADD COLUMN c INT NULL", &[]).await;
    assert_success(&text);
    // The server's estimate, which may be off by a few rows.
    assert!(text.stdout.contains("  impact:\n    rows: "), "{text}");
    assert!(
        text.stdout
            .contains("(estimated; --exact-rowcount counts them)"),
        "{text}"
    );
    assert!(text.stdout.contains("copy: about "), "{text}");
}
