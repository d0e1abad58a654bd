//! Pre-flight refusals caused by the server's binary log settings, end to end
//! through the `shadowcut` binary: binary logging off, a binlog_ignore_db
//! filter on the database (each on a throwaway server of its own), and
//! binlog_format / binlog_row_image changed with SET GLOBAL on the shared
//! sandbox.
//!
//! This is its own test binary because it changes server globals: cargo runs
//! test binaries one after another, so no other binary sees them. Inside
//! this binary the tests that change globals hold [`GLOBALS`], and a guard
//! restores every global, even when an assertion fails.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::process::{Command, Stdio};
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row};
use shadowcut::server::ConnectConfig;

const BIN: &str = env!("CARGO_BIN_EXE_shadowcut");

/// Exit code of a refusal by a pre-flight check.
const REFUSED: i32 = 3;

/// Held by every test that changes a global of the shared sandbox.
static GLOBALS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

struct Outcome {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shadowcut {:?}\n  exit code: {:?}\n  --- stdout ---\n{}\n  --- stderr ---\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

impl Outcome {
    fn error_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("shadowcut: "))
            .unwrap_or_else(|| panic!("no `shadowcut: ` error line on stderr\n{self}"))
    }
}

async fn shadowcut(
    target: &ConnectConfig,
    db: &str,
    table: &str,
    alter: &str,
    extra: &[&str],
) -> Outcome {
    let mut args: Vec<String> = vec![
        "--host".into(),
        target.host.clone(),
        "--port".into(),
        target.port.to_string(),
        "--user".into(),
        target.user.clone(),
    ];
    if let Some(p) = &target.password {
        args.push("--password".into());
        args.push(p.clone());
    }
    for (flag, value) in [("--database", db), ("--table", table), ("--alter", alter)] {
        args.push(flag.into());
        args.push(value.into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(BIN)
            .args(&args)
            .env_remove("MYSQL_PWD")
            .env_remove("SHADOWCUT_FAILPOINTS")
            .env("SHADOWCUT_LOG", "shadowcut=info")
            .env("NO_COLOR", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("shadowcut {args:?} did not finish within 60 s"))
    .expect("running the shadowcut binary");
    Outcome {
        args,
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn q(db: &str, table: &str) -> String {
    format!("`{db}`.`{table}`")
}

fn assert_refused(out: &Outcome, db: &str, table: &str, needles: &[&str]) {
    assert_eq!(out.code, Some(REFUSED), "expected exit code 3\n{out}");
    let line = out.error_line();
    let prefix = format!("shadowcut: cannot migrate {}: ", q(db, table));
    assert!(
        line.starts_with(&prefix),
        "the error does not start with {prefix:?}\n{out}"
    );
    for needle in needles {
        assert!(
            line.contains(needle),
            "the error does not mention {needle:?}\n{out}"
        );
    }
}

fn assert_success(out: &Outcome) {
    assert_eq!(out.code, Some(0), "expected exit code 0\n{out}");
}

// ---------------------------------------------------------------------------
// The schema before and after
// ---------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    tables: Vec<String>,
    create: BTreeMap<String, String>,
}

async fn snapshot(conn: &mut Conn, db: &str) -> Snapshot {
    let tables = common::tables(conn, db).await;
    let mut create = BTreeMap::new();
    for t in &tables {
        let row: Row = conn
            .query_first(format!("SHOW CREATE TABLE {}", q(db, t)))
            .await
            .unwrap()
            .unwrap();
        create.insert(t.clone(), row.get::<String, _>(1).unwrap());
    }
    Snapshot { tables, create }
}

/// Runs a dry run and an --execute run of a valid ALTER on `db`.`t` of
/// `server`; both must be refused with `needles`, leave no tool table and
/// change nothing.
async fn check_refusal(server: &ConnectConfig, conn: &mut Conn, db: &str, needles: &[&str]) {
    let before = snapshot(conn, db).await;
    assert_eq!(before.tables, vec!["t".to_string()], "fixture");
    for extra in [&[][..], &["--execute"][..]] {
        let out = shadowcut(
            server,
            db,
            "t",
            "ADD COLUMN c INT NOT NULL DEFAULT 0",
            extra,
        )
        .await;
        assert_refused(&out, db, "t", needles);
        assert!(
            !out.stdout.contains("Dry run for") && !out.stdout.contains("Migrated "),
            "a refused run reported success\n{out}"
        );
        // Comparing the whole table list also proves that no `_t_gho`,
        // `_t_ghc` or `_t_del` was left behind.
        assert_eq!(
            snapshot(conn, db).await,
            before,
            "{extra:?} changed the schema\n{out}"
        );
    }
}

/// Creates a fresh database on `server` holding `t` with a few rows.
async fn setup(server: &ConnectConfig, name: Option<&str>, prefix: &str) -> (Conn, String) {
    let mut conn = common::client(server).await;
    let db = match name {
        Some(name) => {
            conn.query_drop(format!("CREATE DATABASE `{name}`"))
                .await
                .unwrap();
            name.to_string()
        }
        None => common::fresh_database(&mut conn, prefix).await,
    };
    conn.query_drop(format!(
        "CREATE TABLE {} (id INT NOT NULL PRIMARY KEY, v VARCHAR(20) NOT NULL) ENGINE=InnoDB",
        q(&db, "t")
    ))
    .await
    .unwrap();
    conn.query_drop(format!(
        "INSERT INTO {} VALUES (1, 'a'), (2, 'b'), (3, 'c')",
        q(&db, "t")
    ))
    .await
    .unwrap();
    (conn, db)
}

// ---------------------------------------------------------------------------
// Throwaway servers and restored globals
// ---------------------------------------------------------------------------

fn sandbox_script() -> String {
    std::env::var("SHADOWCUT_SANDBOX_SCRIPT")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sandbox").to_string())
}

/// A server started with `scripts/sandbox start`, stopped (synchronously)
/// when dropped, whatever the test did.
struct ExtraServer {
    dir: String,
    config: ConnectConfig,
}

impl ExtraServer {
    async fn start(args: &[&str]) -> ExtraServer {
        let script = sandbox_script();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(&script)
                .arg("start")
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("running {script} start: {e}"))
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        // Stop whatever started before looking at anything else.
        let dir = value("SHADOWCUT_SANDBOX_DIR");
        let dsn = value("SHADOWCUT_TEST_DSN");
        let (Some(dir), Some(dsn), true) = (dir.clone(), dsn, output.status.success()) else {
            if let Some(dir) = dir {
                stop_sandbox(&dir);
            }
            panic!(
                "scripts/sandbox start failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        };
        ExtraServer {
            config: common::parse_dsn(&dsn),
            dir,
        }
    }
}

fn stop_sandbox(dir: &str) {
    match Command::new(sandbox_script())
        .arg("stop")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        other => eprintln!("warning: scripts/sandbox stop {dir} failed: {other:?}"),
    }
}

impl Drop for ExtraServer {
    fn drop(&mut self) {
        stop_sandbox(&self.dir);
    }
}

/// Runs statements on a server when dropped, synchronously, on a thread of
/// its own (Drop cannot await): restores and cleanup that must happen even
/// when an assertion fails.
struct SqlOnDrop {
    config: ConnectConfig,
    statements: Vec<String>,
}

impl Drop for SqlOnDrop {
    fn drop(&mut self) {
        let config = self.config.clone();
        let statements = std::mem::take(&mut self.statements);
        let what = statements.join("; ");
        let result = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async move {
                let mut conn = Conn::new(config.opts()).await?;
                for stmt in &statements {
                    conn.query_drop(stmt).await?;
                }
                conn.disconnect().await
            })
        })
        .join();
        let failure = match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "the cleanup thread panicked".into(),
        };
        let message = format!("cleanup ({what}) failed: {failure}");
        if std::thread::panicking() {
            eprintln!("{message}");
        } else {
            panic!("{message}");
        }
    }
}

/// Sets a global variable of the shared sandbox; the returned guard puts
/// the old value back.
async fn set_global(conn: &mut Conn, name: &str, value: &str) -> SqlOnDrop {
    let old: String = conn
        .query_first(format!("SELECT @@GLOBAL.{name}"))
        .await
        .unwrap()
        .unwrap();
    let guard = SqlOnDrop {
        config: common::primary(),
        statements: vec![format!("SET GLOBAL {name} = '{old}'")],
    };
    conn.query_drop(format!("SET GLOBAL {name} = '{value}'"))
        .await
        .unwrap();
    guard
}

fn drop_database_on_exit(server: &ConnectConfig, db: &str) -> SqlOnDrop {
    SqlOnDrop {
        config: server.clone(),
        statements: vec![format!("DROP DATABASE IF EXISTS `{db}`")],
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_server_without_binary_log() {
    let server = ExtraServer::start(&["--no-replica", "--no-binlog"]).await;
    let (mut conn, db) = setup(&server.config, None, "ref_nobinlog").await;
    let log_bin: String = conn
        .query_first("SELECT @@GLOBAL.log_bin")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(log_bin, "0", "the extra server writes a binlog after all");
    check_refusal(
        &server.config,
        &mut conn,
        &db,
        &[
            "binary logging is off on this server (log_bin=OFF)",
            "--log-bin",
        ],
    )
    .await;
    conn.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_database_that_binlog_ignore_db_filters_out() {
    let ignored = format!("ref_ignored_{}", std::process::id());
    let server = ExtraServer::start(&[
        "--no-replica",
        &format!("--extra-arg=--binlog-ignore-db={ignored}"),
    ])
    .await;
    let (mut conn, db) = setup(&server.config, Some(&ignored), "").await;
    check_refusal(
        &server.config,
        &mut conn,
        &db,
        &[&format!("binlog_ignore_db includes database {ignored}")],
    )
    .await;

    // The control: a database the filter does not name passes on the same server.
    let (mut other_conn, other) = setup(&server.config, None, "ref_notignored").await;
    let out = shadowcut(&server.config, &other, "t", "ADD COLUMN c INT", &[]).await;
    assert_success(&out);
    assert_eq!(common::tables(&mut other_conn, &other).await, vec!["t"]);
    other_conn.disconnect().await.unwrap();
    conn.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_binlog_format_other_than_row() {
    let _serial = GLOBALS.lock().await;
    let primary = common::primary();
    let (mut conn, db) = setup(&primary, None, "ref_binlogformat").await;
    let _cleanup = drop_database_on_exit(&primary, &db);
    {
        let _restore = set_global(&mut conn, "binlog_format", "MIXED").await;
        check_refusal(
            &primary,
            &mut conn,
            &db,
            &[
                "binlog_format is MIXED, not ROW",
                "SET GLOBAL binlog_format='ROW'",
            ],
        )
        .await;
    }
    let format: String = conn
        .query_first("SELECT @@GLOBAL.binlog_format")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(format, "ROW", "binlog_format was not restored");
    // Restored, the same dry run passes.
    let out = shadowcut(&primary, &db, "t", "ADD COLUMN c INT", &[]).await;
    assert_success(&out);
    assert_eq!(common::tables(&mut conn, &db).await, vec!["t"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_binlog_row_image_other_than_full() {
    let _serial = GLOBALS.lock().await;
    let primary = common::primary();
    let (mut conn, db) = setup(&primary, None, "ref_rowimage").await;
    let _cleanup = drop_database_on_exit(&primary, &db);
    {
        let _restore = set_global(&mut conn, "binlog_row_image", "MINIMAL").await;
        check_refusal(
            &primary,
            &mut conn,
            &db,
            &[
                "binlog_row_image is MINIMAL, not FULL",
                "SET GLOBAL binlog_row_image='FULL'",
            ],
        )
        .await;
    }
    let image: String = conn
        .query_first("SELECT @@GLOBAL.binlog_row_image")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(image, "FULL", "binlog_row_image was not restored");
    let out = shadowcut(&primary, &db, "t", "ADD COLUMN c INT", &[]).await;
    assert_success(&out);
    assert_eq!(common::tables(&mut conn, &db).await, vec!["t"]);
}
