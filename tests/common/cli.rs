//! Running the binary and checking what a refusal leaves behind, for the
//! refusal tests.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row};
use shadowcut::server::ConnectConfig;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_shadowcut");

/// Exit code of a refusal.
pub const REFUSED: i32 = 3;

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// What one run of the binary did.
pub struct Outcome {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
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
    /// The error line the binary prints last (`shadowcut: ...`).
    pub fn error_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| l.starts_with("shadowcut: "))
            .unwrap_or_else(|| panic!("no `shadowcut: ` error line on stderr\n{self}"))
    }

    /// The problem part of a refusal: between the table and the remedy
    /// (privilege remedies always list every privilege, so assertions on
    /// what is missing must look here).
    pub fn problem(&self) -> &str {
        let line = self.error_line();
        let after = line.split_once("`: ").map(|(_, rest)| rest).unwrap_or(line);
        after.split(". Ask for:").next().unwrap_or(after)
    }
}

/// Starts the binary on the primary for `alter` of `db`.`t`, with `args`
/// and `env` added, its stderr piped; killed when dropped.
pub fn spawn_on_t(
    db: &str,
    alter: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> tokio::process::Child {
    let p = super::primary();
    tokio::process::Command::new(BIN)
        .args([
            "--host",
            &p.host,
            "--port",
            &p.port.to_string(),
            "--user",
            &p.user,
        ])
        .args(["--database", db, "--table", "t", "--alter", alter])
        .args(args)
        .env("MYSQL_PWD", p.password.clone().unwrap_or_default())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Runs the binary against `target` and waits for it (at most 60 s).
pub async fn shadowcut(
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

/// The first JSON line of `out`'s stdout whose `event` is `event` (panics
/// when there is none).
pub fn json_event(out: &Outcome, event: &str) -> serde_json::Value {
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == event)
        .unwrap_or_else(|| panic!("no {event} event on stdout\n{out}"))
}

/// `db`.`t`, as the messages quote it.
pub fn q(db: &str, table: &str) -> String {
    format!("`{db}`.`{table}`")
}

/// Asserts a refusal of `db.table` whose message contains every needle.
pub fn assert_refused(out: &Outcome, db: &str, table: &str, needles: &[&str]) {
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

pub fn assert_success(out: &Outcome) {
    assert_eq!(out.code, Some(0), "expected exit code 0\n{out}");
}

// ---------------------------------------------------------------------------
// The schema before and after
// ---------------------------------------------------------------------------

/// Everything a refusal must leave as it was: the tables, their definitions
/// and the triggers of a database.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub tables: Vec<String>,
    pub create: BTreeMap<String, String>,
    pub triggers: Vec<String>,
}

pub async fn snapshot(conn: &mut Conn, db: &str) -> Snapshot {
    let tables = super::tables(conn, db).await;
    let mut create = BTreeMap::new();
    for t in &tables {
        let row: Row = conn
            .query_first(format!("SHOW CREATE TABLE {}", q(db, t)))
            .await
            .unwrap()
            .unwrap();
        let text: String = row.get(1).unwrap();
        create.insert(t.clone(), text);
    }
    let triggers = conn
        .exec(
            "SELECT CONCAT(TRIGGER_NAME, ' ', EVENT_OBJECT_TABLE) FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = ? ORDER BY 1",
            (db,),
        )
        .await
        .unwrap();
    Snapshot {
        tables,
        create,
        triggers,
    }
}

/// Runs statements on a server when dropped, synchronously, on a thread of
/// its own (Drop cannot await): restores and cleanup that must happen even
/// when an assertion fails.
pub struct SqlOnDrop {
    pub config: ConnectConfig,
    pub statements: Vec<String>,
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
