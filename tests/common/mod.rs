//! Shared helpers of the integration tests: the server under test (from
//! `SHADOWCUT_TEST_DSN`, set by `scripts/test`), throwaway databases, the
//! mirrored write load and the row-for-row comparisons.
#![allow(dead_code)]

pub mod cli;
pub mod extra_server;
pub mod fuzz;
pub mod mirror;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};
use shadowcut::server::ConnectConfig;

/// Parses `mysql://user:pass@host:port`.
pub fn parse_dsn(dsn: &str) -> ConnectConfig {
    let rest = dsn
        .strip_prefix("mysql://")
        .expect("DSN must start with mysql://");
    let (creds, hostport) = rest.rsplit_once('@').expect("DSN needs user@host");
    let (user, password) = match creds.split_once(':') {
        Some((u, p)) => (u.to_string(), Some(p.to_string())),
        None => (creds.to_string(), None),
    };
    let hostport = hostport.trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "3306"));
    ConnectConfig {
        host: host.into(),
        port: port.parse().expect("port"),
        socket: None,
        user,
        password,
        tls: None,
        zero_date_checks: false,
    }
}

/// The primary under test.
pub fn primary() -> ConnectConfig {
    let dsn = std::env::var("SHADOWCUT_TEST_DSN")
        .expect("SHADOWCUT_TEST_DSN is not set: run the suite with scripts/test, which starts a sandbox server");
    parse_dsn(&dsn)
}

/// The replica of the primary, when the sandbox has one.
pub fn replica() -> Option<ConnectConfig> {
    std::env::var("SHADOWCUT_TEST_REPLICA_DSN")
        .ok()
        .map(|d| parse_dsn(&d))
}

/// A plain client connection, like an application's (no tool session setup
/// beyond a fixed time zone and sql_mode, so results are comparable).
pub async fn client(config: &ConnectConfig) -> Conn {
    let mut conn = Conn::new(config.opts()).await.expect("connect");
    conn.query_drop("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00', NAMES utf8mb4")
        .await
        .expect("session");
    conn
}

/// A connection that sets nothing: it runs in the server's own time zone
/// and sql_mode, as a DBA's native ALTER TABLE would.
pub async fn native_session(config: &ConnectConfig) -> Conn {
    Conn::new(config.opts()).await.expect("connect")
}

/// Creates a fresh database named after the test; returns its name.
pub async fn fresh_database(conn: &mut Conn, prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    conn.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
        .await
        .unwrap();
    conn.query_drop(format!("CREATE DATABASE `{name}`"))
        .await
        .unwrap();
    name
}

/// A fresh database holding `t (id INT PRIMARY KEY, a INT)` with `rows`
/// rows; returns the database's name.
pub async fn simple_table(conn: &mut Conn, prefix: &str, rows: i64) -> String {
    let db = fresh_database(conn, prefix).await;
    conn.query_drop(format!(
        "CREATE TABLE `{db}`.`t` (id INT NOT NULL PRIMARY KEY, a INT NOT NULL) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    conn.query_drop(format!(
        "INSERT INTO `{db}`.`t` SELECT seq, seq % 7 FROM `{db}`.seq_1_to_{rows}"
    ))
    .await
    .unwrap();
    db
}

/// Installs the server plugin `name` from `soname` unless it is there
/// (plugins ship with Debian's mariadb-server; installing one is not
/// replicated).
pub async fn ensure_plugin(conn: &mut Conn, name: &str, soname: &str) {
    let installed: Option<String> = conn
        .exec_first(
            "SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = ?",
            (name,),
        )
        .await
        .unwrap();
    if installed.is_none() {
        conn.query_drop(format!("INSTALL SONAME '{soname}'"))
            .await
            .unwrap();
    }
}

/// Tables of a database.
pub async fn tables(conn: &mut Conn, db: &str) -> Vec<String> {
    conn.exec("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", (db,))
        .await
        .unwrap()
}

/// A migration config against the primary.
pub fn config(db: &str, table: &str, alter: &str) -> shadowcut::Config {
    let mut c = shadowcut::Config::new(primary(), db, table, alter);
    c.execute = true;
    // Fixed tiny chunks make the copy race the tail often.
    c.chunk_size = 50;
    c.chunk_time = None;
    // Several checksum chunks even on small tables.
    c.checksum_chunk_size = 200;
    c.status_interval = Duration::from_secs(60);
    // The shared replica lags under the suites' loads; the tests of replica
    // lag turn watching on.
    c.throttle.discover_replicas = false;
    c
}

/// All rows of `SELECT cols FROM db.table ORDER BY order`.
pub async fn rows(
    conn: &mut Conn,
    db: &str,
    table: &str,
    cols: &str,
    order: &str,
) -> Vec<Vec<Value>> {
    let r: Vec<Row> = conn
        .query(format!(
            "SELECT {cols} FROM `{db}`.`{table}` ORDER BY {order}"
        ))
        .await
        .unwrap();
    r.into_iter().map(|r| r.unwrap()).collect()
}

/// Asserts two row lists are equal, reporting the first difference.
/// Stops a mirrored load and waits for its writers (a writer that failed
/// fails the test).
pub async fn stop_load(stop: &AtomicBool, writers: Vec<tokio::task::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("a writer failed");
    }
}

/// The checksum before the swap ran, found nothing different and
/// repaired nothing.
pub fn assert_clean_checksum(summary: &shadowcut::Summary) {
    let checksum = summary.checksum.as_ref().expect("the checksum ran");
    assert_eq!(
        (checksum.mismatches, checksum.repaired),
        (0, 0),
        "{summary:?}"
    );
}

/// Alters `db`.`control` natively with `alter` and compares `db`.`t`
/// with it, row for row, on `columns` (ordered by `id`).
pub async fn assert_t_as_native_alter(
    conn: &mut Conn,
    db: &str,
    alter: &str,
    columns: &str,
    what: &str,
) {
    conn.query_drop(format!("ALTER TABLE `{db}`.`control` {alter}"))
        .await
        .unwrap();
    let migrated = rows(conn, db, "t", columns, "id").await;
    let control = rows(conn, db, "control", columns, "id").await;
    assert_same_rows(&migrated, &control, what);
}

/// Asserts `db`.`t` equals `db`.`control` on `columns`, ordered by `id`.
pub async fn assert_t_equals_control(conn: &mut Conn, db: &str, columns: &str) {
    let migrated = rows(conn, db, "t", columns, "id").await;
    let control = rows(conn, db, "control", columns, "id").await;
    assert_same_rows(&migrated, &control, "migrated table vs control");
}

pub fn assert_same_rows(left: &[Vec<Value>], right: &[Vec<Value>], what: &str) {
    if let Some(diff) = first_difference(left, right) {
        panic!("{what}: {diff}");
    }
}

/// The first difference between two row lists, if any.
pub fn first_difference(left: &[Vec<Value>], right: &[Vec<Value>]) -> Option<String> {
    for (i, (l, r)) in left.iter().zip(right).enumerate() {
        if l != r {
            let show = |row: &Vec<Value>| {
                row.iter()
                    .map(|v| v.as_sql(false))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Some(format!("row {i} differs: ({}) vs ({})", show(l), show(r)));
        }
    }
    (left.len() != right.len()).then(|| format!("{} rows vs {} rows", left.len(), right.len()))
}

/// Waits until the replica has applied everything the primary has binlogged.
pub async fn wait_for_replica(primary: &mut Conn, replica: &mut Conn) {
    let pos: String = primary
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap_or_default();
    let r: Option<i64> = replica
        .exec_first("SELECT MASTER_GTID_WAIT(?, 60)", (pos,))
        .await
        .unwrap();
    assert_eq!(r, Some(0), "replica did not catch up within 60 s");
}

/// A tiny deterministic PRNG (xorshift64*), so load runs need no crate.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What a load run did.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub transactions: AtomicU64,
    pub retries: AtomicU64,
    /// Statements that waited longer than `slow_threshold` and then succeeded.
    pub slow_statements: AtomicU64,
    /// Connections lost and opened again (only by a load across restarts).
    pub reconnects: AtomicU64,
    /// Transactions that held their rows a moment and rolled back.
    pub rolled_back: AtomicU64,
}

/// Share of the load's transactions that roll back instead of committing:
/// a writer holding rows it never commits is a case the copy and the
/// applier must get right as much as one that commits.
pub const ROLLBACK_PERCENT: u64 = 10;

/// A transaction of the mirrored load: the same statements, in order, on
/// the migrated table and on the control table.
pub type Statement = (String, Vec<Value>);

/// A database with `t` and `control`, both `(id INT PRIMARY KEY, a INT,
/// b VARCHAR)` holding the same `rows` rows, for [`churn_transaction`].
pub async fn churn_tables(conn: &mut Conn, prefix: &str, rows: i64) -> String {
    let db = fresh_database(conn, prefix).await;
    for table in ["t", "control"] {
        conn.query_drop(format!(
            "CREATE TABLE `{db}`.`{table}` (id INT NOT NULL PRIMARY KEY, a INT NULL, b VARCHAR(30) NULL) ENGINE=InnoDB"
        ))
        .await
        .unwrap();
        conn.query_drop(format!(
            "INSERT INTO `{db}`.`{table}` SELECT seq, seq % 97, CONCAT('r', seq) FROM `{db}`.seq_1_to_{rows}"
        ))
        .await
        .unwrap();
    }
    db
}

/// One transaction of a churning load on `(id INT PRIMARY KEY, a INT,
/// b VARCHAR)` over about `rows` keys: an upsert, an update or a delete.
pub fn churn_transaction(rng: &mut Rng, rows: u64) -> Vec<Statement> {
    let id = Value::from(rng.below(rows + 50) as i64);
    let a = Value::from(rng.below(1000) as i64);
    match rng.below(3) {
        0 => vec![(
            "INSERT INTO {T} (id, a, b) VALUES (?, ?, 'ins') ON DUPLICATE KEY UPDATE a = VALUES(a)"
                .into(),
            vec![id, a],
        )],
        1 => vec![(
            "UPDATE {T} SET a = ?, b = 'upd' WHERE id = ?".into(),
            vec![a, id],
        )],
        _ => vec![("DELETE FROM {T} WHERE id = ?".into(), vec![id])],
    }
}

/// Runs `writers` tasks, each executing transactions built by `make` on
/// both `table` and `control` (the placeholder `{T}` names the table) in
/// one transaction, until `stop` is set or `max` elapses. Deadlocks and
/// lock waits roll back and retry; any other error fails the test.
#[allow(clippy::too_many_arguments)]
pub fn start_mirrored_load<F>(
    config: ConnectConfig,
    db: String,
    table: String,
    control: String,
    writers: u64,
    stop: Arc<AtomicBool>,
    max: Duration,
    make: F,
) -> (Arc<LoadStats>, Vec<tokio::task::JoinHandle<()>>)
where
    F: Fn(&mut Rng) -> Vec<Statement> + Send + Sync + 'static,
{
    let target = LoadTarget {
        config,
        db,
        table,
        control,
        reconnect: false,
    };
    start_load(target, writers, stop, max, make)
}

/// Where a mirrored load writes.
#[derive(Clone)]
pub struct LoadTarget {
    pub config: ConnectConfig,
    pub db: String,
    pub table: String,
    pub control: String,
    /// The writers outlive a server restart: a lost connection is opened
    /// again and the load goes on with its next transaction. The lost one
    /// changed both tables or neither (one transaction), so the mirror
    /// holds whatever became of its COMMIT.
    pub reconnect: bool,
}

impl LoadTarget {
    /// A writer's session: in the database, in a time zone that is neither
    /// the server's (-07:00) nor the tool's (UTC). With `reconnect`, tried
    /// for up to a minute (the server may be restarting).
    async fn session(&self) -> Conn {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let opened = async {
                let mut conn = Conn::new(self.config.opts()).await?;
                conn.query_drop(format!("USE `{}`", self.db)).await?;
                conn.query_drop("SET SESSION innodb_lock_wait_timeout = 10, lock_wait_timeout = 60, time_zone = '+05:30'")
                    .await?;
                Ok::<Conn, mysql_async::Error>(conn)
            }
            .await;
            match opened {
                Ok(conn) => return conn,
                Err(_) if self.reconnect && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("a load writer cannot connect: {e}"),
            }
        }
    }
}

/// [`start_mirrored_load`] on `target`.
pub fn start_load<F>(
    target: LoadTarget,
    writers: u64,
    stop: Arc<AtomicBool>,
    max: Duration,
    make: F,
) -> (Arc<LoadStats>, Vec<tokio::task::JoinHandle<()>>)
where
    F: Fn(&mut Rng) -> Vec<Statement> + Send + Sync + 'static,
{
    let stats = Arc::new(LoadStats::default());
    let make = Arc::new(make);
    let handles = (0..writers)
        .map(|w| {
            let (target, stop, stats, make) = (target.clone(), stop.clone(), stats.clone(), make.clone());
            tokio::spawn(async move {
                let mut conn = target.session().await;
                let mut rng = Rng::new(w + 1 + std::process::id() as u64);
                let started = Instant::now();
                while !stop.load(Ordering::Relaxed) && started.elapsed() < max {
                    let stmts = make(&mut rng);
                    let commit = !rng.chance(ROLLBACK_PERCENT);
                    loop {
                        match run_mirrored_then(&mut conn, &stmts, &target.table, &target.control, &stats, commit).await {
                            Ok(()) => break,
                            Err(e) if matches!(&e, mysql_async::Error::Server(s) if s.code == 1213 || s.code == 1205) => {
                                let _ = conn.query_drop("ROLLBACK").await;
                                stats.retries.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) if target.reconnect && shadowcut::error::is_connection_lost(&e) => {
                                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                                conn = target.session().await;
                                break;
                            }
                            Err(e) => panic!("load writer failed: {e} on {stmts:?}"),
                        }
                    }
                    if commit {
                        stats.transactions.fetch_add(1, Ordering::Relaxed);
                    } else {
                        stats.rolled_back.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    (stats, handles)
}

/// [`start_mirrored_load`] on `t` and `control` of `db` on the primary,
/// for at most two minutes.
pub fn load_t_and_control<F>(
    db: &str,
    writers: u64,
    stop: &Arc<AtomicBool>,
    make: F,
) -> (Arc<LoadStats>, Vec<tokio::task::JoinHandle<()>>)
where
    F: Fn(&mut Rng) -> Vec<Statement> + Send + Sync + 'static,
{
    start_mirrored_load(
        primary(),
        db.to_string(),
        "t".into(),
        "control".into(),
        writers,
        stop.clone(),
        Duration::from_secs(120),
        make,
    )
}

/// Runs `stmts` on `table` and then `control`, statement by statement, in
/// one transaction (left open on error: the caller rolls back).
pub async fn run_mirrored(
    conn: &mut Conn,
    stmts: &[Statement],
    table: &str,
    control: &str,
    stats: &LoadStats,
) -> Result<(), mysql_async::Error> {
    run_mirrored_then(conn, stmts, table, control, stats, true).await
}

/// [`run_mirrored`], ending in COMMIT or, after holding its rows for 2 ms,
/// in ROLLBACK.
pub async fn run_mirrored_then(
    conn: &mut Conn,
    stmts: &[Statement],
    table: &str,
    control: &str,
    stats: &LoadStats,
    commit: bool,
) -> Result<(), mysql_async::Error> {
    conn.query_drop("START TRANSACTION").await?;
    for (sql, params) in stmts {
        for name in [table, control] {
            let started = Instant::now();
            conn.exec_drop(sql.replace("{T}", &format!("`{name}`")), params.clone())
                .await?;
            if started.elapsed() > Duration::from_millis(400) {
                stats.slow_statements.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    if commit {
        conn.query_drop("COMMIT").await
    } else {
        tokio::time::sleep(Duration::from_millis(2)).await;
        conn.query_drop("ROLLBACK").await
    }
}

/// A client that updates row `id` of `db`.`t` every 20 ms until `stop`;
/// it returns the longest of its statements: how long the run held it.
pub fn write_probe(db: &str, id: i64, stop: &Arc<AtomicBool>) -> tokio::task::JoinHandle<Duration> {
    let (db, stop) = (db.to_string(), Arc::clone(stop));
    tokio::spawn(async move {
        let mut c = client(&primary()).await;
        let mut longest = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            c.query_drop(format!("UPDATE `{db}`.`t` SET a = a + 1 WHERE id = {id}"))
                .await
                .unwrap();
            longest = longest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        longest
    })
}

/// Reads a changelog value during a migration (None when absent).
pub async fn changelog_value(conn: &mut Conn, db: &str, table: &str, hint: &str) -> Option<String> {
    let changelog = shadowcut::shadow::ShadowNames::derive(db, table, None).changelog;
    conn.exec_first(
        format!("SELECT value FROM `{db}`.`{changelog}` WHERE hint = ?"),
        (hint,),
    )
    .await
    .ok()
    .flatten()
}

/// Waits (at most 60 s) until the migration of `db.table` has copied every
/// row, as its changelog says.
pub async fn wait_for_copy_complete(conn: &mut Conn, db: &str, table: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while changelog_value(conn, db, table, "state:copy-watermark")
        .await
        .as_deref()
        != Some("\"complete\"")
    {
        assert!(
            Instant::now() < deadline,
            "the copy of {db}.{table} did not complete"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A migration running in the background, held before its cut-over by a
/// postpone flag file, with its copy complete.
pub struct Postponed {
    flag: std::path::PathBuf,
    migration: tokio::task::JoinHandle<shadowcut::Result<shadowcut::Summary>>,
}

impl Postponed {
    /// Starts `config`'s migration of `db`.`t` and waits until it has
    /// copied every row.
    pub async fn start(conn: &mut Conn, db: &str, mut config: shadowcut::Config) -> Postponed {
        let flag = std::env::temp_dir().join(format!("{db}.postpone"));
        std::fs::write(&flag, b"").unwrap();
        config.postpone_cut_over_flag_file = Some(flag.clone());
        let migration = tokio::spawn(async move { shadowcut::run(&config).await });
        wait_for_copy_complete(conn, db, "t").await;
        Postponed { flag, migration }
    }

    /// Removes the flag: the migration goes on towards its cut-over.
    pub fn release(&self) {
        let _ = std::fs::remove_file(&self.flag);
    }

    /// Removes the flag and waits for the migration's end.
    pub async fn finish(self) -> shadowcut::Result<shadowcut::Summary> {
        self.release();
        self.migration.await.expect("the migration task panicked")
    }
}

/// `SHOW CREATE TABLE`, with the table's own name replaced, so that two
/// tables' definitions compare.
pub async fn definition(conn: &mut Conn, db: &str, table: &str) -> String {
    let create: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE TABLE `{db}`.`{table}`"))
        .await
        .unwrap();
    let text = create.expect("the table exists").1;
    text.replacen(&format!("CREATE TABLE `{table}`"), "CREATE TABLE `_`", 1)
}

/// Runs `stmt` (with `{T}` for the table) on `db`.`t` and on `db`.`control`.
pub async fn on_both(conn: &mut Conn, db: &str, stmt: &str) {
    for table in ["t", "control"] {
        conn.query_drop(stmt.replace("{T}", &format!("`{db}`.`{table}`")))
            .await
            .unwrap();
    }
}

// ---------------------------------------------------------------------------
// Live commands
// ---------------------------------------------------------------------------

/// Sends one command over the socket and returns the answer.
pub async fn ask(socket: &std::path::Path, command: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
    stream
        .write_all(format!("{command}\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

pub async fn status(socket: &std::path::Path) -> serde_json::Value {
    let answer = ask(socket, "status json").await;
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("status json: {e}: {answer}"))
}

/// Polls `status json` until `ready` holds (at most 30 s); a migration that
/// ends first fails the test with its outcome.
pub async fn status_until(
    socket: &std::path::Path,
    migration: &mut tokio::task::JoinHandle<shadowcut::Result<shadowcut::Summary>>,
    what: &str,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if migration.is_finished() {
            panic!("the migration ended before {what}: {:?}", migration.await);
        }
        if socket.exists() {
            let s = status(socket).await;
            if ready(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "never {what}; last status {s}");
        }
        assert!(Instant::now() < deadline, "never {what}: no socket");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
