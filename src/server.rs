//! Connections, version detection and the MariaDB/MySQL dialect.
//!
//! Every statement that differs between servers is chosen here, so that MySQL
//! 8.4 support stays a small, unit-tested step. Every connection the tool opens
//! goes through [`connect`], which pins the session settings the correctness
//! model depends on (time zone, sql_mode, character set, isolation, lock
//! timeouts) and refuses a session whose writes would not reach the binlog.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use mysql_async::prelude::*;
use mysql_async::{ClientIdentity, Conn, OptsBuilder, SslOpts};

use crate::error::{Error, Result, SqlContext};

/// How to reach the server.
#[derive(Clone)]
pub struct ConnectConfig {
    /// Host name or address (ignored when `socket` is set).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Unix socket path; preferred over TCP when given.
    pub socket: Option<String>,
    /// User name.
    pub user: String,
    /// Password; never printed.
    pub password: Option<String>,
    /// TLS over TCP; `None` talks in the clear. A Unix socket never uses it.
    pub tls: Option<TlsConfig>,
    /// Keep the server's `NO_ZERO_DATE`/`NO_ZERO_IN_DATE` in sessions that
    /// copy rows: set when a native ALTER of the table would copy rows
    /// (ALGORITHM=COPY), which checks every value; otherwise (INPLACE)
    /// values are carried as stored, zero dates included.
    pub zero_date_checks: bool,
}

impl fmt::Debug for ConnectConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("socket", &self.socket)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .field("zero_date_checks", &self.zero_date_checks)
            .finish()
    }
}

impl ConnectConfig {
    /// A short description of the target for messages (no password).
    pub fn target(&self) -> String {
        match &self.socket {
            Some(s) => format!("socket {s}"),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    /// Driver options for this target.
    pub fn opts(&self) -> OptsBuilder {
        let builder = OptsBuilder::default()
            .user(Some(self.user.clone()))
            .pass(self.password.clone())
            .prefer_socket(false)
            .stmt_cache_size(256)
            .tcp_nodelay(true)
            // A peer that vanished (a half-open connection) is noticed
            // instead of hanging a stage for ever.
            .tcp_keepalive(Some(TCP_KEEPALIVE));
        match &self.socket {
            Some(socket) => builder.socket(Some(socket.clone())),
            None => builder
                .ip_or_hostname(self.host.clone())
                .tcp_port(self.port)
                .ssl_opts(self.tls.as_ref().map(TlsConfig::ssl_opts)),
        }
    }
}

/// How far the server's certificate is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TlsVerify {
    /// The chain up to a trusted CA and the host name (the default). The
    /// chain alone (MySQL's `VERIFY_CA`) is not offered: mysql_async 0.37
    /// recognises a name mismatch by the text `NotValidForName`, which
    /// rustls 0.23 no longer prints, so its "skip domain validation" skips
    /// nothing.
    #[default]
    Identity,
    /// Nothing: the traffic is encrypted but the server is not
    /// authenticated (`--ssl-allow-insecure`, `ssl-mode=REQUIRED`).
    Nothing,
}

/// TLS settings for TCP connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of the CAs to trust instead of the built-in web roots.
    pub ca: Option<PathBuf>,
    /// PEM certificate chain presented to the server.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    pub key: Option<PathBuf>,
    /// What is checked of the server's certificate.
    pub verify: TlsVerify,
}

impl TlsConfig {
    /// The driver's TLS options (rustls). A given CA replaces the built-in
    /// roots, as it does for the mysql client: a server certificate signed
    /// by a public CA is then not trusted by accident.
    pub fn ssl_opts(&self) -> SslOpts {
        let mut opts =
            SslOpts::default().with_danger_accept_invalid_certs(self.verify == TlsVerify::Nothing);
        if let Some(ca) = &self.ca {
            opts = opts
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            opts = opts.with_client_identity(Some(ClientIdentity::new(
                cert.clone().into(),
                key.clone().into(),
            )));
        }
        opts
    }
}

/// Silence before TCP keepalive probes start.
const TCP_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(30);

/// The server family, which decides statement variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB (10.x, 11.x).
    MariaDb,
    /// Oracle MySQL (8.0, 8.4) and compatible forks.
    MySql,
}

/// An `ALGORITHM=` clause under which the server changes a table without
/// copying its rows. Which ones a server knows is [`Dialect::native_algorithms`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum NativeAlgorithm {
    /// Only the table's metadata changes (MariaDB ≥ 10.3.7, MySQL ≥ 8.0.12).
    Instant,
    /// No table rebuild, but the server may still read every row, e.g. to
    /// build an index (MariaDB ≥ 10.3.7 only).
    Nocopy,
}

impl NativeAlgorithm {
    /// The keyword after `ALGORITHM=`.
    pub fn keyword(self) -> &'static str {
        match self {
            NativeAlgorithm::Instant => "INSTANT",
            NativeAlgorithm::Nocopy => "NOCOPY",
        }
    }
}

/// Server family and version, and the statements that depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// major, minor, patch
    pub version: (u32, u32, u32),
}

impl Dialect {
    /// Parses `SELECT VERSION()` output such as `10.11.6-MariaDB-0+deb12u1-log`
    /// or `8.4.3`.
    pub fn from_version_string(version: &str) -> Dialect {
        let flavor = if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        let numeric: String = version
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = numeric.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let version = (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        );
        Dialect { flavor, version }
    }

    fn mysql_at_least(&self, v: (u32, u32, u32)) -> bool {
        self.flavor == Flavor::MySql && self.version >= v
    }

    /// Statement that reports the current binlog file and position.
    pub fn binlog_status_sql(&self) -> &'static str {
        if self.mysql_at_least((8, 2, 0)) {
            "SHOW BINARY LOG STATUS"
        } else {
            "SHOW MASTER STATUS"
        }
    }

    /// Statement that reports every replication source of a replica, one
    /// row each (none on a primary). MariaDB's plain `SHOW SLAVE STATUS`
    /// shows only the default connection of a multi-source replica.
    pub fn all_replica_status_sql(&self) -> &'static str {
        match self.flavor {
            Flavor::MariaDb => "SHOW ALL SLAVES STATUS",
            Flavor::MySql if self.version >= (8, 0, 22) => "SHOW REPLICA STATUS",
            Flavor::MySql => "SHOW SLAVE STATUS",
        }
    }

    /// Clause appended to the copy's and the applier's reads of the
    /// original: a share lock (so that a read waits out a writer that has
    /// reached the binlog but not yet committed) that never waits. A
    /// statement that never waits for a lock can never close a deadlock
    /// cycle, so the application is never chosen as the victim of one we
    /// cause; a busy row fails our statement at once instead, and we retry
    /// smaller. Servers without NOWAIT (before MariaDB 10.3, MySQL 8.0)
    /// wait, bounded by `innodb_lock_wait_timeout`.
    pub fn share_lock_clause(&self) -> &'static str {
        match self.flavor {
            Flavor::MySql if self.version >= (8, 0, 1) => "FOR SHARE NOWAIT",
            Flavor::MySql => "LOCK IN SHARE MODE",
            Flavor::MariaDb if self.version >= (10, 3, 0) => "LOCK IN SHARE MODE NOWAIT",
            Flavor::MariaDb => "LOCK IN SHARE MODE",
        }
    }

    /// True when transactions always become visible in the order of their
    /// binlog events, so that once a write of ours (a fence) has committed,
    /// every transaction binlogged before it is visible to a snapshot taken
    /// after. MariaDB's group commit orders InnoDB's commits by the binlog;
    /// MySQL does so only with `binlog_order_commits` on, which a session
    /// cannot count on, so its copy and its applier keep locking what they
    /// read.
    pub fn commits_in_binlog_order(&self) -> bool {
        matches!(self.flavor, Flavor::MariaDb)
    }

    /// True when a native ALTER that gives existing rows the zero value of
    /// `data_type` (a column added NOT NULL without a DEFAULT) fails under
    /// a strict sql_mode with NO_ZERO_DATE. MariaDB 10.11, checked by hand:
    /// error 1292 for DATETIME (with or without ALGORITHM=COPY; DATE is
    /// taken to be alike), while a TIMESTAMP gets '0000-00-00 00:00:00' in
    /// every row without a word. MySQL, which cannot be run here, is
    /// assumed to refuse all three.
    pub fn refuses_zero_fill(&self, data_type: &str) -> bool {
        match self.flavor {
            Flavor::MariaDb => matches!(data_type, "date" | "datetime"),
            Flavor::MySql => matches!(data_type, "date" | "datetime" | "timestamp"),
        }
    }

    /// True when the server has window functions (MariaDB 10.2, MySQL
    /// 8.0): the applier numbers the equality classes of collated keys with
    /// `DENSE_RANK()` to apply them in parallel.
    pub fn has_window_functions(&self) -> bool {
        match self.flavor {
            Flavor::MySql => self.version >= (8, 0, 2),
            Flavor::MariaDb => self.version >= (10, 2, 0),
        }
    }

    /// A share lock that skips rows locked by others, where the server has
    /// it (MariaDB 10.6, MySQL 8.0): tells the applier which rows are busy.
    pub fn skip_locked_share_clause(&self) -> Option<&'static str> {
        match self.flavor {
            Flavor::MySql if self.version >= (8, 0, 1) => Some("FOR SHARE SKIP LOCKED"),
            Flavor::MariaDb if self.version >= (10, 6, 0) => Some("LOCK IN SHARE MODE SKIP LOCKED"),
            _ => None,
        }
    }

    /// A share lock that waits (bounded by `innodb_lock_wait_timeout`): only
    /// for a re-read whose rows the transaction already holds, which can
    /// wait for nothing of the application's (see the applier).
    pub fn share_lock_waiting_clause(&self) -> &'static str {
        if self.mysql_at_least((8, 0, 0)) {
            "FOR SHARE"
        } else {
            "LOCK IN SHARE MODE"
        }
    }

    /// Query for the sessions that have held a metadata lock on the table
    /// for at least `?` seconds (a long transaction that touched it):
    /// MariaDB's `METADATA_LOCK_INFO` (a plugin: the query fails without it;
    /// `LOCK_TIME_MS` since 10.5), MySQL's `performance_schema.metadata_locks`
    /// (transaction-long locks, the session's time in its state). Parameters:
    /// schema, table, seconds; columns: connection id, seconds.
    /// `INNODB_TRX.trx_started` is not used: it is the host's local time,
    /// not the session's time zone.
    pub fn long_table_holders_sql(&self) -> &'static str {
        match self.flavor {
            Flavor::MariaDb => {
                "SELECT THREAD_ID, LOCK_TIME_MS DIV 1000 \
                 FROM information_schema.METADATA_LOCK_INFO \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND LOCK_TIME_MS >= ? * 1000"
            }
            Flavor::MySql => {
                "SELECT th.PROCESSLIST_ID, th.PROCESSLIST_TIME \
                 FROM performance_schema.metadata_locks m \
                 JOIN performance_schema.threads th ON th.THREAD_ID = m.OWNER_THREAD_ID \
                 WHERE m.OBJECT_TYPE = 'TABLE' AND m.OBJECT_SCHEMA = ? AND m.OBJECT_NAME = ? \
                 AND m.LOCK_STATUS = 'GRANTED' AND m.LOCK_DURATION = 'TRANSACTION' \
                 AND th.PROCESSLIST_TIME >= ?"
            }
        }
    }

    /// Sessions taking a backup that a RENAME would queue behind (and every
    /// client with it): MariaDB's `BACKUP STAGE` and `FLUSH TABLES WITH
    /// READ LOCK` hold the backup lock in these modes (every DML holds it
    /// too, in `MDL_BACKUP_DML`, which is no backup); MySQL's `LOCK
    /// INSTANCE FOR BACKUP` and `FLUSH TABLES WITH READ LOCK` hold the
    /// backup or the global lock shared. Returns (connection, what).
    pub fn backup_holders_sql(&self) -> &'static str {
        match self.flavor {
            Flavor::MariaDb => {
                "SELECT THREAD_ID, LOCK_MODE FROM information_schema.METADATA_LOCK_INFO \
                 WHERE LOCK_TYPE = 'Backup lock' AND LOCK_MODE IN ('MDL_BACKUP_START', \
                 'MDL_BACKUP_FLUSH', 'MDL_BACKUP_WAIT_FLUSH', 'MDL_BACKUP_WAIT_DDL', \
                 'MDL_BACKUP_WAIT_COMMIT', 'MDL_BACKUP_FTWRL1', 'MDL_BACKUP_FTWRL2', \
                 'MDL_BACKUP_BLOCK_DDL')"
            }
            Flavor::MySql => {
                "SELECT th.PROCESSLIST_ID, m.OBJECT_TYPE \
                 FROM performance_schema.metadata_locks m \
                 JOIN performance_schema.threads th ON th.THREAD_ID = m.OWNER_THREAD_ID \
                 WHERE m.OBJECT_TYPE IN ('BACKUP LOCK', 'GLOBAL') AND m.LOCK_TYPE = 'SHARED' \
                 AND m.LOCK_STATUS = 'GRANTED'"
            }
        }
    }

    /// Statements that stop and start a replica's SQL thread.
    pub fn replica_sql_thread_sql(&self) -> (&'static str, &'static str) {
        if self.mysql_at_least((8, 0, 22)) {
            ("STOP REPLICA SQL_THREAD", "START REPLICA SQL_THREAD")
        } else {
            ("STOP SLAVE SQL_THREAD", "START SLAVE SQL_THREAD")
        }
    }

    /// Statement that lists the replicas registered with a primary.
    pub fn replica_hosts_sql(&self) -> &'static str {
        if self.mysql_at_least((8, 0, 22)) {
            "SHOW REPLICAS"
        } else {
            "SHOW SLAVE HOSTS"
        }
    }

    /// The privileges the binlog tail needs, as this server names them:
    /// reading the binlog, its position, and the replication status (to
    /// tell a replica from a primary).
    pub fn binlog_privileges(&self) -> &'static str {
        match self.flavor {
            Flavor::MariaDb if self.version >= (10, 5, 9) => {
                "REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR"
            }
            Flavor::MariaDb if self.version >= (10, 5, 2) => {
                "REPLICATION SLAVE, BINLOG MONITOR, REPLICATION SLAVE ADMIN"
            }
            _ => "REPLICATION SLAVE, REPLICATION CLIENT",
        }
    }

    /// The privilege that shows a replica's status: the last of
    /// [`Dialect::binlog_privileges`].
    pub fn replica_monitor_privilege(&self) -> &'static str {
        let all = self.binlog_privileges();
        all.rsplit(", ").next().unwrap_or(all)
    }

    /// The native algorithms this server accepts in `ALTER TABLE`, cheapest
    /// first: INSTANT and NOCOPY on MariaDB ≥ 10.3.7, INSTANT alone on MySQL
    /// ≥ 8.0.12 (MySQL has no NOCOPY), none on older servers.
    pub fn native_algorithms(&self) -> &'static [NativeAlgorithm] {
        match self.flavor {
            Flavor::MariaDb if self.version >= (10, 3, 7) => {
                &[NativeAlgorithm::Instant, NativeAlgorithm::Nocopy]
            }
            Flavor::MySql if self.version >= (8, 0, 12) => &[NativeAlgorithm::Instant],
            _ => &[],
        }
    }

    /// True when a server error code means "this ALTER cannot run with the
    /// ALGORITHM= clause given" (the table is unchanged, the statement
    /// could run otherwise): 1845 and 1846 on both servers, and on MySQL
    /// 4092, the table's instant row versions used up (8.0.29 and later).
    pub fn refuses_algorithm(&self, code: u16) -> bool {
        match self.flavor {
            Flavor::MariaDb => matches!(code, 1845 | 1846),
            Flavor::MySql => matches!(code, 1845 | 1846 | 4092),
        }
    }

    /// Session statements every connection runs right after connecting,
    /// given the sql_mode to run with.
    ///
    /// The time zone is the server's own (`@@global.time_zone`, which the
    /// server resolves, SYSTEM included): the copy and the re-reads convert
    /// values (DATETIME to TIMESTAMP, CURRENT_TIMESTAMP defaults) exactly as a
    /// native ALTER on that server would. `autocommit` is pinned, so that a
    /// global `autocommit=0` or an `init_connect` cannot turn the copy into
    /// one long transaction.
    pub fn session_setup(&self, sql_mode: &str) -> Vec<String> {
        let mut stmts = vec![
            "SET NAMES utf8mb4".to_string(),
            "SET SESSION time_zone = @@GLOBAL.time_zone".to_string(),
            format!("SET SESSION sql_mode = {}", crate::sql::literal(sql_mode)),
            "SET SESSION autocommit = 1".to_string(),
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED".to_string(),
            "SET SESSION innodb_lock_wait_timeout = 1".to_string(),
            "SET SESSION lock_wait_timeout = 30".to_string(),
            "SET SESSION max_error_count = 65535".to_string(),
            // Our connections sit idle for long (the run lock, the main one
            // during the copy, all of them while the cut-over is postponed):
            // the server's wait_timeout must not reap them. One year is the
            // largest value both servers take.
            "SET SESSION wait_timeout = 31536000".to_string(),
        ];
        if self.flavor == Flavor::MySql {
            // Without this, information_schema caches AUTO_INCREMENT for a day.
            stmts.push("SET SESSION information_schema_stats_expiry = 0".to_string());
        }
        stmts
    }
}

/// Modes every session adds to the server's: strict for every table, and
/// zero ids kept as zero.
pub const REQUIRED_SQL_MODES: &[&str] = &["STRICT_ALL_TABLES", "NO_AUTO_VALUE_ON_ZERO"];

/// Modes removed from the server's because they change how the tool's own
/// SQL text is read (quoting, escapes, `||`, the Oracle parser) or which
/// engine a CREATE gets. None of them changes what a value converts to.
pub const SQL_TEXT_MODES: &[&str] = &[
    "ANSI",
    "ANSI_QUOTES",
    "NO_BACKSLASH_ESCAPES",
    "PIPES_AS_CONCAT",
    "IGNORE_SPACE",
    "ORACLE",
    "MSSQL",
    "DB2",
    "MAXDB",
    "POSTGRESQL",
    "EMPTY_STRING_IS_NULL",
    "SIMULTANEOUS_ASSIGNMENT",
];

/// Modes that a native ALTER applies to stored rows only when it copies
/// them (ALGORITHM=COPY); an in-place ALTER keeps zero dates as they are.
/// The row sessions drop them unless the table's native ALTER would copy
/// ([`ConnectConfig::zero_date_checks`]); the ALTER on the new table always
/// keeps them ([`ddl_sql_mode`]).
pub const ROW_CHECK_MODES: &[&str] = &["NO_ZERO_DATE", "NO_ZERO_IN_DATE"];

/// The sql_mode of the sessions that copy and apply rows: [`ddl_sql_mode`]
/// minus [`ROW_CHECK_MODES`].
pub fn session_sql_mode(global: &str) -> String {
    ddl_sql_mode(global)
        .split(',')
        .filter(|m| !ROW_CHECK_MODES.contains(m))
        .collect::<Vec<_>>()
        .join(",")
}

/// The sql_mode of the sessions that check stored values as a copying
/// native ALTER does (the INSTANT probe's and the native run's): the
/// server's global mode, so that its restrictions (`NO_ZERO_DATE`, ...)
/// are kept, plus [`REQUIRED_SQL_MODES`], minus [`SQL_TEXT_MODES`], which
/// would change how the tool's own SQL reads. The user's ALTER itself runs
/// in [`alter_sql_mode`].
pub fn ddl_sql_mode(global: &str) -> String {
    alter_sql_mode(global)
        .split(',')
        .filter(|m| !SQL_TEXT_MODES.contains(m))
        .collect::<Vec<_>>()
        .join(",")
}

/// The sql_mode of the user's ALTER, wherever it runs (on the new table,
/// on the INSTANT probe's copy, natively): the server's global mode, which
/// a native ALTER runs in, with its text modes too (under PIPES_AS_CONCAT
/// `a || 'x'` concatenates, under EMPTY_STRING_IS_NULL `DEFAULT ''` is
/// NULL), plus [`REQUIRED_SQL_MODES`]. Only that one statement runs in it:
/// the tool's own SQL reads in [`ddl_sql_mode`].
pub fn alter_sql_mode(global: &str) -> String {
    let mut modes: Vec<String> = Vec::new();
    let required = REQUIRED_SQL_MODES.iter().map(|m| m.to_string());
    for mode in global
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .chain(required)
    {
        if !mode.is_empty() && !modes.contains(&mode) {
            modes.push(mode);
        }
    }
    modes.join(",")
}

/// Why `alter` would read differently under the server's global sql_mode
/// than the tool reads it (the default reading, [`crate::sql::Lexing::DEFAULT`]):
/// a `"` under ANSI_QUOTES (an identifier's quote there, a string's here),
/// a `\` under NO_BACKSLASH_ESCAPES (a character there, an escape here).
/// `None` when the text reads the same either way.
pub fn alter_reads_differently(global: &str, alter: &str) -> Option<&'static str> {
    let modes: Vec<String> = global
        .split(',')
        .map(|m| m.trim().to_ascii_uppercase())
        .collect();
    let has = |names: &[&str]| modes.iter().any(|m| names.contains(&m.as_str()));
    // The composite modes that include ANSI_QUOTES, should a server list
    // them without their parts.
    const ANSI_QUOTES: [&str; 7] = [
        "ANSI_QUOTES",
        "ANSI",
        "ORACLE",
        "MSSQL",
        "DB2",
        "MAXDB",
        "POSTGRESQL",
    ];
    if has(&ANSI_QUOTES) && alter.contains('"') {
        return Some("ANSI_QUOTES");
    }
    if has(&["NO_BACKSLASH_ESCAPES"]) && alter.contains('\\') {
        return Some("NO_BACKSLASH_ESCAPES");
    }
    None
}

/// Runs `stmt`, which carries the user's ALTER text, in [`alter_sql_mode`],
/// and puts the session's own mode back. The outer error is the mode's
/// (including a global mode that now reads the text otherwise than the
/// pre-flight checked), the inner result the statement's own, whose error
/// code callers read: a failure to put the mode back after the statement
/// is only logged, as the statement's outcome is what counts (a lost
/// connection must still read as "ran or not, unknown").
pub async fn run_in_alter_mode(
    conn: &mut Conn,
    table: &str,
    stmt: &str,
) -> Result<std::result::Result<(), mysql_async::Error>> {
    let (session, global): (String, String) = conn
        .query_first("SELECT @@SESSION.sql_mode, @@GLOBAL.sql_mode")
        .await
        .context(|| "reading the sql_mode".to_string())?
        .unwrap_or_default();
    if let Some(mode) = alter_reads_differently(&global, stmt) {
        return Err(Error::refused(
            table,
            format!("the server's sql_mode now has {mode}, under which the ALTER reads differently from how it was checked"),
            "Quote identifiers with backticks and strings with single quotes, without backslashes",
        ));
    }
    let set = |mode: &str| format!("SET SESSION sql_mode = {}", crate::sql::literal(mode));
    conn.query_drop(set(&alter_sql_mode(&global)))
        .await
        .context(|| "setting the sql_mode of the ALTER".to_string())?;
    let result = conn.query_drop(stmt).await;
    if let Err(e) = conn.query_drop(set(&session)).await {
        tracing::warn!(error = %e, "putting the session's sql_mode back after the ALTER failed");
    }
    Ok(result)
}

/// A position in the primary's binary log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct BinlogPosition {
    /// Binlog file name, e.g. `binlog.000012`.
    pub file: String,
    /// Byte offset in that file.
    pub pos: u64,
}

impl fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// Opens a bare connection. An "access denied" is asked again twice:
/// mysql_common drops a final zero byte of the nonce an `ed25519` account's
/// server sends (`AuthSwitchRequest::plugin_data`), so one login in 256
/// signs the wrong nonce and is refused; the next nonce is fresh. A wrong
/// password is refused three times, which costs nothing.
pub async fn open(config: &ConnectConfig) -> std::result::Result<Conn, mysql_async::Error> {
    open_with(config, |opts| opts).await
}

/// [`open`], with connection options adjusted by `adjust`.
pub async fn open_with(
    config: &ConnectConfig,
    adjust: impl Fn(OptsBuilder) -> OptsBuilder,
) -> std::result::Result<Conn, mysql_async::Error> {
    let mut refused = 0;
    loop {
        match Conn::new(adjust(config.opts())).await {
            Err(e) if crate::error::server_code(&e) == Some(ACCESS_DENIED) && refused < 2 => {
                refused += 1
            }
            other => return other,
        }
    }
}

/// The server's "access denied" error.
const ACCESS_DENIED: u16 = 1045;

/// The server's global sql_mode: what a native ALTER runs under.
pub async fn global_sql_mode(conn: &mut Conn) -> Result<String> {
    Ok(conn
        .query_first("SELECT @@GLOBAL.sql_mode")
        .await
        .context(|| "reading the server's sql_mode".to_string())?
        .unwrap_or_default())
}

/// Opens a connection with the fixed session settings, detects the dialect,
/// and checks that the session's writes are binlogged.
pub async fn connect(config: &ConnectConfig) -> Result<(Conn, Dialect)> {
    let mut conn = open(config).await.map_err(|source| Error::Connect {
        target: config.target(),
        source,
    })?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await
        .context(|| "reading the server version".to_string())?
        .unwrap_or_default();
    let dialect = Dialect::from_version_string(&version);
    let global_sql_mode = global_sql_mode(&mut conn).await?;
    let mode = if config.zero_date_checks {
        ddl_sql_mode(&global_sql_mode)
    } else {
        session_sql_mode(&global_sql_mode)
    };
    for stmt in dialect.session_setup(&mode) {
        conn.query_drop(&stmt)
            .await
            .context(|| format!("setting up the session ({stmt})"))?;
    }
    let (log_bin, autocommit): (Option<i64>, Option<i64>) = conn
        .query_first("SELECT @@SESSION.sql_log_bin, @@SESSION.autocommit")
        .await
        .context(|| "reading sql_log_bin".to_string())?
        .unwrap_or((None, None));
    // The server's settings refuse the run (exit code 3), as a pre-flight
    // check would: nothing is wrong with the command line.
    let on_server = format!("any table on {}", config.target());
    if autocommit != Some(1) {
        return Err(Error::refused(
            &on_server,
            format!(
                "sessions of user {} keep autocommit off although shadowcut sets it on",
                config.user
            ),
            "Check init_connect and the user's settings",
        ));
    }
    if log_bin != Some(1) {
        return Err(Error::refused(
            &on_server,
            format!(
                "sessions of user {} start with sql_log_bin=0 (init_connect?): replicas would receive an empty new table and then the swap",
                config.user
            ),
            "Fix init_connect or use another user",
        ));
    }
    Ok((conn, dialect))
}

/// True when the session's time zone (the server's) changes its UTC offset
/// during the year (daylight saving time). Local times then repeat once a
/// year, and a TIMESTAMP compared with a local time is ambiguous in that
/// hour.
pub async fn time_zone_has_dst(conn: &mut Conn) -> Result<bool> {
    let shift: Option<Option<i64>> = conn
        .query_first(
            "SELECT TIMESTAMPDIFF(SECOND, '2025-01-15 12:00:00', '2025-07-15 12:00:00') \
             - (UNIX_TIMESTAMP('2025-07-15 12:00:00') - UNIX_TIMESTAMP('2025-01-15 12:00:00'))",
        )
        .await
        .context(|| "reading the server's time zone offsets".to_string())?;
    Ok(shift.flatten().is_some_and(|s| s != 0))
}

/// Opens one more connection when the dialect is already known.
pub async fn connect_session(config: &ConnectConfig) -> Result<Conn> {
    connect(config).await.map(|(conn, _)| conn)
}

/// Makes sure `conn`, idle for a while, still answers; when it was lost (a
/// server restart, a network fault, a KILL) it is replaced by a fresh
/// session, tried `retries` times with backoff. Any other failure is
/// returned as it is.
pub async fn revive(
    conn: &mut Conn,
    config: &ConnectConfig,
    retries: u32,
    role: &str,
) -> Result<()> {
    match conn.ping().await {
        Ok(()) => return Ok(()),
        Err(e) if !crate::error::is_connection_lost(&e) => {
            return Err(Error::Sql {
                context: format!("checking the {role} connection"),
                source: e,
            })
        }
        Err(e) => tracing::warn!(error = %e, "the {role} connection was lost; opening it again"),
    }
    *conn = reopen(config, retries, role).await?;
    Ok(())
}

/// After `error` on `conn`: when the connection was lost and fewer than
/// `retries` losses in a row were counted in `lost`, opens it again
/// ([`reopen`]) so that the caller may run its statement once more;
/// otherwise returns the error. Only for statements that may run twice:
/// reads, and writes that set a value (the changelog's rows).
pub async fn recover_lost(
    error: Error,
    lost: &mut u32,
    conn: &mut Conn,
    config: &ConnectConfig,
    retries: u32,
    role: &str,
) -> Result<()> {
    if !error.is_connection_lost() || *lost >= retries {
        return Err(error);
    }
    *lost += 1;
    tracing::warn!(error = %error, attempt = *lost, "the {role} connection was lost; opening it again");
    *conn = reopen(config, retries, role).await?;
    Ok(())
}

/// A fresh session after a lost one: tried up to `retries` times, waiting
/// with exponential backoff and jitter before each (the server may be
/// restarting). A refusal other than a lost connection ends the tries.
pub async fn reopen(config: &ConnectConfig, retries: u32, role: &str) -> Result<Conn> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        tokio::time::sleep(crate::table_lock::retry_delay(attempt)).await;
        match connect_session(config).await {
            Ok(conn) => {
                tracing::info!(attempt, "the {role} connection is open again");
                return Ok(conn);
            }
            Err(e) if e.is_connection_lost() && attempt < retries.max(1) => {
                tracing::warn!(attempt, error = %e, "opening the {role} connection again failed; retrying")
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads global variables by name; absent ones are missing from the map.
pub async fn global_variables(conn: &mut Conn, names: &[&str]) -> Result<HashMap<String, String>> {
    let list = names
        .iter()
        .map(|n| crate::sql::literal(n))
        .collect::<Vec<_>>()
        .join(",");
    let rows: Vec<(String, Option<String>)> = conn
        .query(format!(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({list})"
        ))
        .await
        .context(|| "reading server variables".to_string())?;
    Ok(rows
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.unwrap_or_default()))
        .collect())
}

/// What the binlog status statement reports: position and filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogStatus {
    /// Current write position.
    pub position: BinlogPosition,
    /// `Binlog_Do_DB`, split on commas.
    pub do_db: Vec<String>,
    /// `Binlog_Ignore_DB`, split on commas.
    pub ignore_db: Vec<String>,
}

/// Reads the current binlog position and filters (`SHOW MASTER STATUS` or its
/// MySQL 8.4 name). `None` when binary logging is off.
pub async fn binlog_status(conn: &mut Conn, dialect: Dialect) -> Result<Option<BinlogStatus>> {
    let row: Option<mysql_async::Row> = conn
        .query_first(dialect.binlog_status_sql())
        .await
        .context(|| {
            format!(
                "reading the binlog position ({})",
                dialect.binlog_status_sql()
            )
        })?;
    let Some(row) = row else { return Ok(None) };
    let text = |name: &str| -> String {
        row.get_opt::<Option<String>, _>(name)
            .and_then(|v| v.ok())
            .flatten()
            .unwrap_or_default()
    };
    let split = |s: String| -> Vec<String> {
        s.split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    };
    let pos = text("Position").parse::<u64>().unwrap_or(0);
    Ok(Some(BinlogStatus {
        position: BinlogPosition {
            file: text("File"),
            pos,
        },
        do_db: split(text("Binlog_Do_DB")),
        ignore_db: split(text("Binlog_Ignore_DB")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_fills_refused_as_each_server_refuses_them() {
        let mariadb = Dialect::from_version_string("10.11.6-MariaDB-0+deb12u1-log");
        let mysql = Dialect::from_version_string("8.0.36");
        assert!(mariadb.refuses_zero_fill("datetime") && mariadb.refuses_zero_fill("date"));
        assert!(!mariadb.refuses_zero_fill("timestamp"));
        assert!(mysql.refuses_zero_fill("timestamp"));
        assert!(!mysql.refuses_zero_fill("int"));
    }

    #[test]
    fn detects_mariadb_and_its_statements() {
        let d = Dialect::from_version_string("10.11.6-MariaDB-0+deb12u1-log");
        assert_eq!(d.flavor, Flavor::MariaDb);
        assert_eq!(d.version, (10, 11, 6));
        assert_eq!(d.binlog_status_sql(), "SHOW MASTER STATUS");
        assert_eq!(d.all_replica_status_sql(), "SHOW ALL SLAVES STATUS");
        assert_eq!(d.replica_hosts_sql(), "SHOW SLAVE HOSTS");
        assert!(d.long_table_holders_sql().contains("METADATA_LOCK_INFO"));
        assert!(d.backup_holders_sql().contains("MDL_BACKUP_FTWRL2"));
        assert_eq!(d.share_lock_clause(), "LOCK IN SHARE MODE NOWAIT");
        assert_eq!(d.share_lock_waiting_clause(), "LOCK IN SHARE MODE");
        assert_eq!(
            d.skip_locked_share_clause(),
            Some("LOCK IN SHARE MODE SKIP LOCKED")
        );
        assert_eq!(
            Dialect::from_version_string("10.5.9-MariaDB").skip_locked_share_clause(),
            None
        );
        assert_eq!(
            Dialect::from_version_string("10.2.44-MariaDB").share_lock_clause(),
            "LOCK IN SHARE MODE"
        );
        assert_eq!(
            d.binlog_privileges(),
            "REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR"
        );
        assert_eq!(d.replica_monitor_privilege(), "SLAVE MONITOR");
        assert!(!d
            .session_setup("")
            .iter()
            .any(|s| s.contains("stats_expiry")));
    }

    #[test]
    fn mysql_84_uses_new_statement_names() {
        let d = Dialect::from_version_string("8.4.3");
        assert_eq!(d.flavor, Flavor::MySql);
        assert_eq!(d.binlog_status_sql(), "SHOW BINARY LOG STATUS");
        assert_eq!(d.all_replica_status_sql(), "SHOW REPLICA STATUS");
        assert_eq!(d.replica_hosts_sql(), "SHOW REPLICAS");
        assert_eq!(d.replica_sql_thread_sql().0, "STOP REPLICA SQL_THREAD");
        assert!(d
            .long_table_holders_sql()
            .contains("performance_schema.metadata_locks"));
        assert!(d.backup_holders_sql().contains("'BACKUP LOCK'"));
        assert_eq!(d.share_lock_clause(), "FOR SHARE NOWAIT");
        assert_eq!(d.share_lock_waiting_clause(), "FOR SHARE");
        assert_eq!(d.skip_locked_share_clause(), Some("FOR SHARE SKIP LOCKED"));
        assert!(d.has_window_functions());
        assert!(!Dialect::from_version_string("10.1.48-MariaDB").has_window_functions());
        assert!(Dialect::from_version_string("8.0.36").has_window_functions());
        assert!(!Dialect::from_version_string("5.7.44-log").has_window_functions());
        // The copy locks what it reads on MySQL: binlog_order_commits may be off.
        assert!(!d.commits_in_binlog_order());
        assert!(Dialect::from_version_string("10.11.6-MariaDB").commits_in_binlog_order());
        assert_eq!(
            d.binlog_privileges(),
            "REPLICATION SLAVE, REPLICATION CLIENT"
        );
        assert!(d
            .session_setup("")
            .iter()
            .any(|s| s.contains("stats_expiry = 0")));
    }

    #[test]
    fn the_alter_runs_in_the_servers_mode_and_reads_alike_or_is_refused() {
        let global = "PIPES_AS_CONCAT,ANSI_QUOTES,NO_BACKSLASH_ESCAPES,STRICT_TRANS_TABLES";
        assert_eq!(
            alter_sql_mode(global),
            format!("{global},STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO")
        );
        assert!(!ddl_sql_mode(global).contains("PIPES_AS_CONCAT"));
        let differs = |alter: &str| alter_reads_differently(global, alter);
        assert_eq!(differs("ADD g INT AS (a || 'x')"), None);
        assert_eq!(differs(r#"CHANGE "a" "b" INT"#), Some("ANSI_QUOTES"));
        assert_eq!(
            differs(r"ADD p VARCHAR(9) DEFAULT 'C:\new'"),
            Some("NO_BACKSLASH_ESCAPES")
        );
        assert_eq!(
            alter_reads_differently("STRICT_TRANS_TABLES", r#"DEFAULT "a\"b""#),
            None
        );
        assert_eq!(
            alter_reads_differently("oracle", r#"DEFAULT "x""#),
            Some("ANSI_QUOTES")
        );
    }

    #[test]
    fn mysql_80_early_keeps_master_status() {
        let d = Dialect::from_version_string("8.0.21-log");
        assert_eq!(d.binlog_status_sql(), "SHOW MASTER STATUS");
        assert_eq!(d.all_replica_status_sql(), "SHOW SLAVE STATUS");
        assert_eq!(d.share_lock_clause(), "FOR SHARE NOWAIT");
    }

    #[test]
    fn native_algorithms_by_server() {
        use NativeAlgorithm::{Instant, Nocopy};
        let maria = Dialect::from_version_string("10.11.6-MariaDB-0+deb12u1-log");
        assert_eq!(maria.native_algorithms(), &[Instant, Nocopy]);
        assert_eq!(
            Dialect::from_version_string("10.3.7-MariaDB").native_algorithms(),
            &[Instant, Nocopy]
        );
        assert!(Dialect::from_version_string("10.2.44-MariaDB")
            .native_algorithms()
            .is_empty());
        // MySQL has INSTANT but no NOCOPY.
        assert_eq!(
            Dialect::from_version_string("8.4.3").native_algorithms(),
            &[Instant]
        );
        assert_eq!(
            Dialect::from_version_string("8.0.12").native_algorithms(),
            &[Instant]
        );
        assert!(Dialect::from_version_string("8.0.11")
            .native_algorithms()
            .is_empty());
        assert!(Dialect::from_version_string("5.7.44-log")
            .native_algorithms()
            .is_empty());
        assert_eq!(Instant.keyword(), "INSTANT");
        assert_eq!(Nocopy.keyword(), "NOCOPY");
    }

    #[test]
    fn algorithm_refusals_by_server() {
        let maria = Dialect::from_version_string("10.11.6-MariaDB");
        let mysql = Dialect::from_version_string("8.0.36");
        for d in [maria, mysql] {
            assert!(d.refuses_algorithm(1845) && d.refuses_algorithm(1846));
            assert!(!d.refuses_algorithm(1205) && !d.refuses_algorithm(1064));
        }
        // Row versions used up: MySQL only (MariaDB numbers its own errors there).
        assert!(mysql.refuses_algorithm(4092));
        assert!(!maria.refuses_algorithm(4092));
    }

    #[test]
    fn row_sessions_copy_zero_dates_as_a_native_alter_does() {
        let global = "STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE";
        assert_eq!(
            session_sql_mode(global),
            "STRICT_TRANS_TABLES,STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO"
        );
        assert!(ddl_sql_mode(global).contains("NO_ZERO_DATE"));
    }

    #[test]
    fn ddl_mode_keeps_the_servers_restrictions() {
        let mode = ddl_sql_mode(
            "STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO",
        );
        for kept in [
            "STRICT_TRANS_TABLES",
            "NO_ZERO_DATE",
            "NO_ZERO_IN_DATE",
            "ERROR_FOR_DIVISION_BY_ZERO",
            "STRICT_ALL_TABLES",
            "NO_AUTO_VALUE_ON_ZERO",
        ] {
            assert!(mode.split(',').any(|m| m == kept), "{kept} in {mode}");
        }
    }

    #[test]
    fn session_mode_drops_what_changes_how_sql_text_reads() {
        let mode = session_sql_mode(
            "ansi_quotes,NO_BACKSLASH_ESCAPES,ORACLE,PIPES_AS_CONCAT,ANSI,EMPTY_STRING_IS_NULL",
        );
        assert_eq!(mode, "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO");
        assert_eq!(
            session_sql_mode(""),
            "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO"
        );
        assert_eq!(
            session_sql_mode("STRICT_ALL_TABLES,STRICT_ALL_TABLES"),
            "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO"
        );
    }

    #[test]
    fn sessions_run_in_the_servers_time_zone_with_autocommit() {
        let setup = Dialect::from_version_string("10.11.6-MariaDB").session_setup("");
        assert!(setup.contains(&"SET SESSION time_zone = @@GLOBAL.time_zone".to_string()));
        assert!(setup.contains(&"SET SESSION autocommit = 1".to_string()));
    }

    #[test]
    fn debug_hides_password() {
        let c = ConnectConfig {
            host: "h".into(),
            port: 1,
            socket: None,
            user: "u".into(),
            password: Some("secret".into()),
            tls: None,
            zero_date_checks: false,
        };
        assert!(!format!("{c:?}").contains("secret"));
    }
}
