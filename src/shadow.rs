//! The tables the tool creates next to the original: the ghost (`_<t>_gho`,
//! the new schema), the changelog (`_<t>_ghc`: heartbeat, sync markers and
//! migration state), during the cut-over, the sentinel (`_<t>_del`), and for
//! a moment, the scratch table (`_<t>_ins`: an empty copy on which
//! [`crate::instant`] asks the server whether the ALTER could run natively).
//!
//! Every table created here carries a COMMENT marker `shadowcut:<role>:<run>`
//! so that cleanup and `--initially-drop-*` never drop a table the tool did
//! not create.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::{Error, Result, SqlContext};
use crate::server::{run_in_alter_mode, ConnectConfig};
use crate::sql;

/// The longest table name MySQL and MariaDB accept.
pub const MAX_TABLE_NAME: usize = 64;

/// Roles of the tables the tool creates, as written in their markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The new table being filled.
    Ghost,
    /// Heartbeat, markers and state.
    Changelog,
    /// The placeholder that keeps the swap from running too early.
    Sentinel,
    /// The original table after a completed swap.
    Old,
    /// The empty copy the INSTANT probe alters.
    Scratch,
}

impl Role {
    fn tag(self) -> &'static str {
        match self {
            Role::Ghost => "ghost",
            Role::Changelog => "changelog",
            Role::Sentinel => "sentinel",
            Role::Old => "old",
            Role::Scratch => "scratch",
        }
    }
}

/// The comment that tags every statement of run `run_id`: the tail knows
/// the run's own statements by it (a resumed run goes on under the killed
/// run's id, so it knows that run's statements too).
pub fn statement_tag(run_id: &str) -> String {
    format!("/* shadowcut:{run_id} */")
}

/// The comment marker for a table of `role` created by run `run_id`.
pub fn marker(role: Role, run_id: &str) -> String {
    format!("shadowcut:{}:{run_id}", role.tag())
}

/// True when `comment` is a marker of `role` from any run.
pub fn is_marked(comment: &str, role: Role) -> bool {
    run_of(comment, role).is_some()
}

/// The run id in `comment` when it is a marker of `role`.
pub fn run_of(comment: &str, role: Role) -> Option<&str> {
    comment
        .strip_prefix("shadowcut:")?
        .strip_prefix(role.tag())?
        .strip_prefix(':')
}

/// The run whose cut-over gave the ghost its final comment (the original's,
/// or the ALTER's) and then ended before it could put the marker back: a
/// kill, a lost server. Without this the ghost would read as a table the
/// tool did not create, and neither `--resume`, nor cleanup, nor
/// `--initially-drop-ghost-table` would take it. Three things of one run
/// must agree, so that a table someone made with `CREATE TABLE ... LIKE t`
/// is never taken for ours: the changelog, still marked, records that
/// comment, and the run's sentinel is still there (an abandoned attempt
/// puts the marker back before it drops the sentinel).
async fn finished_ghost_run(
    conn: &mut Conn,
    names: &ShadowNames,
    ghost_comment: &str,
) -> Result<Option<String>> {
    let changelog = table_comment(conn, &names.database, &names.changelog).await?;
    let Some(run) = changelog
        .as_deref()
        .and_then(|c| run_of(c, Role::Changelog))
    else {
        return Ok(None);
    };
    let final_comment = changelog_value(conn, names, hint::MIGRATION)
        .await?
        .and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok())
        .and_then(|d| {
            d["resume"]["ghost"]["final_comment"]
                .as_str()
                .map(str::to_string)
        });
    if final_comment.as_deref() != Some(ghost_comment) {
        return Ok(None);
    }
    let sentinels: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_COMMENT = ?",
            (&names.database, marker(Role::Sentinel, run)),
        )
        .await
        .context(|| format!("looking for the sentinel of run {run}"))?;
    Ok((sentinels.unwrap_or(0) > 0).then(|| run.to_string()))
}

/// Gives the ghost run `run_id`'s marker again (after [`finished_ghost_run`]
/// knew it by its final comment), so that every later step knows it too;
/// tagged as the run's, so that its tail, which may read the statement
/// again after a resume, knows it as its own.
pub async fn restore_ghost_marker(
    conn: &mut Conn,
    names: &ShadowNames,
    run_id: &str,
) -> Result<()> {
    let ghost = names.q(&names.ghost);
    conn.query_drop(format!(
        "ALTER TABLE {ghost} COMMENT = {} {}",
        sql::literal(&marker(Role::Ghost, run_id)),
        statement_tag(run_id)
    ))
    .await
    .context(|| format!("restoring the marker of {ghost}"))
}

/// The value of the changelog row `hint`, if it has one.
pub async fn changelog_value(
    conn: &mut Conn,
    names: &ShadowNames,
    hint: &str,
) -> Result<Option<String>> {
    let changelog = names.q(&names.changelog);
    conn.exec_first(
        format!("SELECT value FROM {changelog} WHERE hint = ?"),
        (hint,),
    )
    .await
    .context(|| format!("reading the row {hint:?} of {changelog}"))
}

/// The run that created the table at `table` in `role`, from its comment:
/// its marker, or for the ghost, also [`finished_ghost_run`].
pub async fn run_of_table(
    conn: &mut Conn,
    names: &ShadowNames,
    table: &str,
    role: Role,
) -> Result<Option<String>> {
    match table_comment(conn, &names.database, table).await? {
        Some(comment) => run_of_commented(conn, names, table, role, &comment).await,
        None => Ok(None),
    }
}

/// [`run_of_table`] for a table whose `comment` the caller has read.
pub async fn run_of_commented(
    conn: &mut Conn,
    names: &ShadowNames,
    table: &str,
    role: Role,
    comment: &str,
) -> Result<Option<String>> {
    if let Some(run) = run_of(comment, role) {
        return Ok(Some(run.to_string()));
    }
    if role == Role::Ghost && table == names.ghost {
        return finished_ghost_run(conn, names, comment).await;
    }
    Ok(None)
}

/// Names of everything a migration of one table touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowNames {
    /// Database.
    pub database: String,
    /// The table being migrated.
    pub original: String,
    /// `_<t>_gho`.
    pub ghost: String,
    /// `_<t>_ghc`.
    pub changelog: String,
    /// `_<t>_del` (or `_<t>_<timestamp>_del`): the sentinel, then the old table.
    pub old: String,
    /// `_<t>_ins`: the empty copy the INSTANT probe alters, then drops.
    pub scratch: String,
    /// `_<t>_ghp`: the table the privilege check creates and drops at once.
    pub probe: String,
}

impl ShadowNames {
    /// Derives the names of the tables created next to `table`; where a
    /// name would be longer than the server takes, it is shortened (see
    /// [`derived_name`]).
    pub fn derive(database: &str, table: &str, old_timestamp: Option<&str>) -> Self {
        ShadowNames {
            database: database.to_string(),
            original: table.to_string(),
            ghost: derived_name(table, "gho"),
            changelog: derived_name(table, "ghc"),
            old: match old_timestamp {
                Some(ts) => derived_name(table, &format!("{ts}_del")),
                None => derived_name(table, "del"),
            },
            scratch: derived_name(table, "ins"),
            probe: derived_name(table, "ghp"),
        }
    }

    /// Quoted `db`.`name`.
    pub fn q(&self, name: &str) -> String {
        sql::qualified(&self.database, name)
    }
}

/// `_<table>_<suffix>`, as gh-ost names its tables; when that is longer
/// than [`MAX_TABLE_NAME`] characters, the table's name is cut short and
/// followed by a hash of the whole name, `_<prefix>_<hash>_<suffix>`, so
/// that two long names sharing a prefix still get tables of their own.
/// The hash is of the name as given, letter case included: two tables
/// whose names differ in case only are two tables where the server tells
/// case apart. (Where it does not, `lower_case_table_names`, a run resumed
/// under another spelling of a long name finds nothing to resume, and
/// says so.)
pub fn derived_name(table: &str, suffix: &str) -> String {
    let plain = format!("_{table}_{suffix}");
    if plain.chars().count() <= MAX_TABLE_NAME {
        return plain;
    }
    let hash = format!("{:016x}", fnv1a_64(table.as_bytes()));
    let hash = &hash[..8];
    let room = MAX_TABLE_NAME.saturating_sub(suffix.chars().count() + hash.len() + 3);
    let prefix: String = table.chars().take(room).collect();
    format!("_{prefix}_{hash}_{suffix}")
}

/// FNV-1a, 64 bits: stable across versions and platforms, which names
/// that a later run must derive again need (std's hasher is not).
fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash: u64, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A run identifier: UTC time, process id and the run's number in this
/// process, e.g. `20261128T033000Z-4242-0`. It tags every statement the run
/// issues, so it must differ between runs started in the same second by one
/// process (a library user, the test suite).
pub fn new_run_id() -> String {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        utc_timestamp(SystemTime::now()).replace('_', "T") + "Z",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// `YYYYMMDD_hhmmss` in UTC, for names and run ids.
pub fn utc_timestamp(at: SystemTime) -> String {
    let u = UtcTime::of(at);
    format!(
        "{:04}{:02}{:02}_{:02}{:02}{:02}",
        u.year, u.month, u.day, u.hour, u.minute, u.second
    )
}

/// A moment in UTC, by calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Year.
    pub year: i64,
    /// Month, 1-12.
    pub month: i64,
    /// Day of the month, 1-31.
    pub day: i64,
    /// Hour, 0-23.
    pub hour: u64,
    /// Minute.
    pub minute: u64,
    /// Second.
    pub second: u64,
    /// Millisecond.
    pub millis: u32,
}

impl UtcTime {
    /// The calendar fields of `at` (the epoch for times before it).
    pub fn of(at: SystemTime) -> UtcTime {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        // Civil-from-days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: (rem / 60) % 60,
            second: rem % 60,
            millis: since.subsec_millis(),
        }
    }

    /// RFC 3339 with milliseconds: `2026-11-29T13:05:09.123Z`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }
}

/// Reads a table's comment; `None` when the table does not exist.
pub async fn table_comment(conn: &mut Conn, database: &str, table: &str) -> Result<Option<String>> {
    conn.exec_first(
        "SELECT TABLE_COMMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (database, table),
    )
    .await
    .context(|| format!("looking up {}", sql::qualified(database, table)))
}

/// Makes sure a table the migration is about to create does not exist. With
/// `drop_if_ours`, a leftover carrying our marker of one of `roles` is dropped;
/// anything else is refused.
pub async fn clear_leftover(
    conn: &mut Conn,
    names: &ShadowNames,
    table: &str,
    roles: &[Role],
    drop_if_ours: bool,
    flag: &str,
) -> Result<()> {
    let Some(comment) = table_comment(conn, &names.database, table).await? else {
        return Ok(());
    };
    let original = names.q(&names.original);
    let mut ours = false;
    for role in roles {
        ours = ours
            || run_of_commented(conn, names, table, *role, &comment)
                .await?
                .is_some();
    }
    if drop_if_ours && ours {
        tracing::info!(table = %names.q(table), "dropping leftover from an earlier run ({flag})");
        return drop_table(conn, names, table).await;
    }
    let remedy = if drop_if_ours {
        format!("It was not created by shadowcut (its comment is {comment:?}); rename or drop it yourself")
    } else {
        format!("Drop it, or pass {flag} to let shadowcut drop a leftover of its own")
    };
    Err(Error::refused(
        &original,
        format!("table {} already exists", names.q(table)),
        remedy,
    ))
}

/// Drops a table if it exists.
pub async fn drop_table(conn: &mut Conn, names: &ShadowNames, table: &str) -> Result<()> {
    let q = names.q(table);
    conn.query_drop(format!("DROP TABLE IF EXISTS {q}"))
        .await
        .context(|| format!("dropping {q}"))
}

/// Drops `table` only when it carries the marker of this run.
pub async fn drop_if_marked(
    conn: &mut Conn,
    names: &ShadowNames,
    table: &str,
    role: Role,
    run_id: &str,
) -> Result<()> {
    let Some(comment) = table_comment(conn, &names.database, table).await? else {
        return Ok(());
    };
    if run_of_commented(conn, names, table, role, &comment)
        .await?
        .as_deref()
        == Some(run_id)
    {
        return drop_table(conn, names, table).await;
    }
    tracing::warn!(table = %names.q(table), "not dropping: it was not created by this run");
    Ok(())
}

/// The ghost after the user's ALTER, and the comment it must carry once it
/// replaces the original.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Ghost {
    /// The comment the new table must end up with (the original's, or the
    /// one the ALTER sets).
    pub final_comment: String,
    /// The ghost's AUTO_INCREMENT right after the ALTER: the counter an
    /// `AUTO_INCREMENT=N` in the ALTER asks for (1 when it asks for none).
    pub requested_auto_increment: Option<u64>,
    /// A native ALTER of the table would copy its rows (the server refused
    /// `ALGORITHM=INPLACE` for it), checking every stored value.
    pub native_copies_rows: bool,
}

/// Refuses an `AUTO_INCREMENT = N` beyond what the new table's
/// AUTO_INCREMENT column holds. A native ALTER that copies the table
/// records such a counter (and the table's next insert fails), but InnoDB
/// drops it on any later ALTER of a table, so the swap could not carry it:
/// found by the differential fuzzer (seed 30003).
async fn check_auto_increment_range(
    conn: &mut Conn,
    names: &ShadowNames,
    requested: Option<u64>,
) -> Result<()> {
    let Some(requested) = requested else {
        return Ok(());
    };
    let ghost = crate::schema::read_table(conn, &names.database, &names.ghost).await?;
    let Some(column) = ghost
        .as_ref()
        .and_then(|g| g.columns.iter().find(|c| c.auto_increment))
    else {
        return Ok(());
    };
    let (name, data_type, column_type) = (&column.name, &column.data_type, &column.column_type);
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    match crate::schema::integer_maximum(data_type, unsigned) {
        Some(max) if requested > max => Err(Error::refused(
            &names.q(&names.original),
            format!(
                "the ALTER sets AUTO_INCREMENT = {requested}, beyond the largest value of the AUTO_INCREMENT column {} ({column_type}: {max}); \
                 a native ALTER would record it and every later insert would fail, and the server drops such a counter on the swap",
                sql::ident(name)
            ),
            "Give an AUTO_INCREMENT within the column's range, or widen the column in the same ALTER; nothing was changed",
        )),
        _ => Ok(()),
    }
}

/// Creates the ghost with `CREATE TABLE ... LIKE`, applies the ALTER to it,
/// and marks it. An ALTER the server rejects is a refusal carrying the
/// server's message.
pub async fn create_ghost(
    conn: &mut Conn,
    names: &ShadowNames,
    alter: &str,
    run_id: &str,
) -> Result<Ghost> {
    let ghost = names.q(&names.ghost);
    let original = names.q(&names.original);
    conn.query_drop(format!("CREATE TABLE {ghost} LIKE {original}"))
        .await
        .context(|| format!("creating the new table {ghost}"))?;
    let alter = alter.trim().trim_end_matches(';');
    // The ALTER runs in the server's own sql_mode, as natively: its
    // restrictions, and its reading of the text. Whether the server would
    // run it in place or copy the rows decides how a native ALTER treats
    // stored values (a copy checks zero dates): asked of the server on the
    // empty new table. The clause on a line of its own: a `--` or `#`
    // comment ending the ALTER would swallow it, and every ALTER would pass
    // as in place.
    let in_place = run_in_alter_mode(
        conn,
        &original,
        &format!("ALTER TABLE {ghost} {alter}\n, ALGORITHM=INPLACE"),
    )
    .await?
    .is_ok();
    let altered = if in_place {
        Ok(())
    } else {
        run_in_alter_mode(conn, &original, &format!("ALTER TABLE {ghost} {alter}")).await?
    };
    if let Err(e) = altered {
        let _ = drop_table(conn, names, &names.ghost).await;
        let message = match &e {
            mysql_async::Error::Server(s) => format!("error {}: {}", s.code, s.message),
            other => other.to_string(),
        };
        return Err(Error::refused(
            &original,
            format!("the ALTER fails on a copy of the table ({message})"),
            "Fix --alter; nothing was changed",
        ));
    }
    let (final_comment, requested_auto_increment): (Option<String>, Option<u64>) = conn
        .exec_first(
            "SELECT TABLE_COMMENT, AUTO_INCREMENT FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&names.database, &names.ghost),
        )
        .await
        .context(|| format!("reading the options of {ghost}"))?
        .unwrap_or((None, None));
    let final_comment = final_comment.unwrap_or_default();
    if let Err(refusal) = check_auto_increment_range(conn, names, requested_auto_increment).await {
        let _ = drop_table(conn, names, &names.ghost).await;
        return Err(refusal);
    }
    conn.query_drop(format!(
        "ALTER TABLE {ghost} COMMENT = {}",
        sql::literal(&marker(Role::Ghost, run_id))
    ))
    .await
    .context(|| format!("marking {ghost}"))?;
    Ok(Ghost {
        final_comment,
        requested_auto_increment,
        native_copies_rows: !in_place,
    })
}

/// Creates the changelog table.
pub async fn create_changelog(conn: &mut Conn, names: &ShadowNames, run_id: &str) -> Result<()> {
    let changelog = names.q(&names.changelog);
    conn.query_drop(format!(
        "CREATE TABLE {changelog} (\
           id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, \
           hint VARCHAR(64) CHARACTER SET ascii NOT NULL, \
           value TEXT CHARACTER SET utf8mb4 NOT NULL, \
           updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6), \
           PRIMARY KEY (id), UNIQUE KEY hint (hint)\
         ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT={}",
        sql::literal(&marker(Role::Changelog, run_id))
    ))
    .await
    .context(|| format!("creating the changelog table {changelog}"))
}

/// Hints of the changelog rows. Column 1 of the changelog is the hint and
/// column 2 the value; the tail reads both from the binlog.
pub mod hint {
    /// Heartbeat time (milliseconds since the epoch), written every
    /// heartbeat interval.
    pub const HEARTBEAT: &str = "heartbeat";
    /// A sync marker: a counter the tail reports back once it has read it.
    pub const SYNC_MARKER: &str = "sync-marker";
    /// A probe the applier writes to learn when the tail has read every
    /// change committed before it (binlog positions are no measure when
    /// the binlog read is a replica's).
    pub const TAIL_PROBE: &str = "tail-probe";
    /// A counter the applier writes before it re-reads rows of the
    /// original: committed after the tail read their changes, it makes
    /// them visible to the re-read on a server that commits in binlog
    /// order ([`crate::server::Dialect::commits_in_binlog_order`]).
    pub const APPLY_FENCE: &str = "apply-fence";
    /// Written on the primary and awaited on the replica before the tail
    /// starts there.
    pub const REPLICA_SYNC: &str = "replica-sync";
    /// A counter the copy commits before a chunk reads without locks: once
    /// it is committed, every change binlogged before it is visible.
    pub const COPY_FENCE: &str = "copy-fence";
    /// JSON: the last copied key (every row at or below it is in the ghost).
    pub const COPY_WATERMARK: &str = "state:copy-watermark";
    /// `file:pos` up to which every change has been applied to the ghost.
    pub const APPLIED_POSITION: &str = "state:applied-position";
    /// Position the tail started from (taken before the copy began).
    pub const START_POSITION: &str = "state:start-position";
    /// Stage of the migration.
    pub const STAGE: &str = "state:stage";
    /// JSON description of the migration (table, ALTER, key, run id).
    pub const MIGRATION: &str = "state:migration";
}

/// Commits a new value of the changelog row `hint` (autocommit): a fence,
/// which orders every transaction binlogged before it ahead of a read
/// without locks that starts after it, on a server that commits in binlog
/// order ([`crate::server::Dialect::commits_in_binlog_order`]).
pub async fn write_fence(conn: &mut Conn, names: &ShadowNames, hint: &str) -> Result<()> {
    write_changelog(conn, names, hint, &next_fence_value()).await
}

/// A value no fence of this run or of an earlier one wrote (the time in
/// nanoseconds, and a counter for calls within one tick): a write that
/// changes nothing reaches no binlog and orders nothing, so a fence must
/// never write the value the row already holds, even after a resume.
fn next_fence_value() -> String {
    static FENCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let n = FENCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{since_epoch}.{n}")
}

/// How a fence (a new value of the changelog row `hint`, committed before
/// a read without locks) shows in the dry-run plan.
pub fn describe_fence(names: &ShadowNames, hint: &str) -> String {
    format!(
        "first, committed: INSERT INTO {} (hint, value) VALUES ('{hint}', <new value>) ON DUPLICATE KEY UPDATE value = VALUES(value) (the fence)",
        names.q(&names.changelog)
    )
}

/// Writes one changelog row (insert or replace the value of `hint`).
pub async fn write_changelog(
    conn: &mut Conn,
    names: &ShadowNames,
    hint: &str,
    value: &str,
) -> Result<()> {
    let changelog = names.q(&names.changelog);
    conn.exec_drop(
        format!("INSERT INTO {changelog} (hint, value) VALUES (?, ?) ON DUPLICATE KEY UPDATE value = VALUES(value)"),
        (hint, value),
    )
    .await
    .context(|| format!("writing {hint} to {changelog}"))
}

/// A background task writing the heartbeat row at a fixed interval, until
/// stopped. Later stages read replica lag from it.
pub struct Heartbeat {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Heartbeat {
    /// Starts the heartbeat on its own connection. A lost connection is
    /// opened again at the next beat, for as long as the run lasts: a
    /// missing beat only makes replicas look lagging, which holds the copy
    /// back, never lets it run ahead.
    pub async fn start(
        config: &ConnectConfig,
        names: ShadowNames,
        interval: Duration,
    ) -> Result<Heartbeat> {
        let mut conn = Some(crate::server::connect_session(config).await?);
        let config = config.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                // Milliseconds since the epoch, by this process's clock: a
                // replica's copy of the row says how far behind it is.
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                if conn.is_none() {
                    conn = crate::server::connect_session(&config).await.ok();
                }
                if let Some(session) = conn.as_mut() {
                    match write_changelog(session, &names, hint::HEARTBEAT, &now.to_string()).await
                    {
                        Ok(()) => {}
                        Err(e) if e.is_connection_lost() => {
                            tracing::warn!(error = %e, "the heartbeat's connection was lost; opening it again at the next beat");
                            conn = None;
                        }
                        Err(e) => return Err(e),
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stopped.changed() => break,
                }
            }
            if let Some(session) = conn {
                let _ = session.disconnect().await;
            }
            Ok(())
        });
        Ok(Heartbeat { stop, task })
    }

    /// Stops the heartbeat and waits for its last write to finish.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(Ok(()))
    }
}

/// A server-side lock that keeps two migrations of one table from running
/// at once. Held by its own connection for the whole run.
pub struct RunLock {
    conn: Conn,
    name: String,
    config: ConnectConfig,
    retries: u32,
}

impl RunLock {
    /// The lock name for a table (hashed when too long for the server).
    /// GET_LOCK compares names exactly, so where the server folds table
    /// names (`lower_case_table_names` 1 or 2) the name is folded too: one
    /// table under two spellings takes one lock.
    pub fn lock_name(database: &str, table: &str, names_fold: bool) -> String {
        let plain = if names_fold {
            format!(
                "shadowcut.{}.{}",
                database.to_lowercase(),
                table.to_lowercase()
            )
        } else {
            format!("shadowcut.{database}.{table}")
        };
        if plain.len() <= 64 {
            return plain;
        }
        format!("shadowcut.{:016x}", fnv1a_64(plain.as_bytes()))
    }

    /// Takes the lock, or refuses when another run holds it. A lost
    /// connection is opened again up to `retries` times by [`Self::verify`].
    pub async fn acquire(
        config: &ConnectConfig,
        names: &ShadowNames,
        names_fold: bool,
        retries: u32,
    ) -> Result<RunLock> {
        let mut conn = crate::server::connect_session(config).await?;
        let name = Self::lock_name(&names.database, &names.original, names_fold);
        if !Self::take(&mut conn, &name).await? {
            let holder: Option<u64> = conn
                .exec_first("SELECT IS_USED_LOCK(?)", (&name,))
                .await
                .context(|| format!("reading the holder of {name}"))?;
            return Err(Error::refused(
                &names.q(&names.original),
                format!(
                    "another migration of this table is running (it holds the lock {name:?}, connection {})",
                    holder.map_or("unknown".to_string(), |h| h.to_string())
                ),
                "Wait for it to finish, or stop it",
            ));
        }
        Ok(RunLock {
            conn,
            name,
            config: config.clone(),
            retries,
        })
    }

    async fn take(conn: &mut Conn, name: &str) -> Result<bool> {
        let got: Option<i64> = conn
            .exec_first("SELECT GET_LOCK(?, 0)", (name,))
            .await
            .context(|| format!("taking the run lock {name}"))?;
        Ok(got == Some(1))
    }

    /// A connection that lives for the whole run, for control statements
    /// (KILL QUERY during the cut-over).
    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }

    /// Checks that this run still holds the lock. When its connection was
    /// lost (a KILL, a network fault, a server restart), the lock went with
    /// it: a fresh connection takes it again if it is free, and the run
    /// goes on, since no other migration can have started meanwhile without
    /// holding it still. When another connection holds it, the run stops.
    /// Asked after the copy and before the swap.
    pub async fn verify(&mut self, table: &str) -> Result<()> {
        let held: std::result::Result<Option<Option<i64>>, _> = self
            .conn
            .exec_first("SELECT IS_USED_LOCK(?) = CONNECTION_ID()", (&self.name,))
            .await;
        let lost = |why: String| {
            Error::refused(
                table,
                format!("this run no longer holds its lock {:?} ({why})", self.name),
                "Nothing was swapped. Make sure no other migration of the table runs, then start again",
            )
        };
        match held {
            Ok(Some(Some(1))) => Ok(()),
            Err(e) if crate::error::is_connection_lost(&e) => {
                tracing::warn!(error = %e, lock = %self.name, "the run lock's connection was lost; taking the lock again");
                let mut fresh = crate::server::reopen(&self.config, self.retries, "run lock")
                    .await
                    .map_err(|e| {
                        lost(format!(
                            "its connection failed and could not be opened again: {e}"
                        ))
                    })?;
                if !Self::take(&mut fresh, &self.name).await? {
                    return Err(lost(
                        "its connection was lost, and another connection has taken it since".into(),
                    ));
                }
                self.conn = fresh;
                tracing::info!(lock = %self.name, "the run lock is held again");
                Ok(())
            }
            Err(e) => Err(lost(format!("its connection failed: {e}"))),
            Ok(_) => Err(lost("another connection holds it, or none".into())),
        }
    }

    /// Releases the lock.
    pub async fn release(mut self) {
        let _ = self
            .conn
            .exec_drop("DO RELEASE_LOCK(?)", (&self.name,))
            .await;
        let _ = self.conn.disconnect().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fence_value_is_new_and_carries_the_time() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let values: Vec<String> = (0..1000).map(|_| next_fence_value()).collect();
        let distinct: std::collections::HashSet<&String> = values.iter().collect();
        assert_eq!(distinct.len(), values.len());
        // The time part: a counter that restarts with the process could
        // write the value a killed run left in the row.
        for v in &values {
            let (time, _) = v.split_once('.').expect("time.counter");
            assert!(time.parse::<u128>().unwrap() >= before, "{v}");
        }
    }

    #[test]
    fn derives_names_and_shortens_long_ones() {
        let n = ShadowNames::derive("d", "orders", None);
        assert_eq!(
            (n.ghost.as_str(), n.changelog.as_str(), n.old.as_str()),
            ("_orders_gho", "_orders_ghc", "_orders_del")
        );
        assert_eq!(
            (n.scratch.as_str(), n.probe.as_str()),
            ("_orders_ins", "_orders_ghp")
        );
        let n = ShadowNames::derive("d", "orders", Some("20261128_031500"));
        assert_eq!(n.old, "_orders_20261128_031500_del");

        // `_<59>_gho` is 64 characters: kept as it is.
        let fits = "y".repeat(59);
        assert_eq!(
            ShadowNames::derive("d", &fits, None).ghost,
            format!("_{fits}_gho")
        );

        // The longest name the server takes, and names that differ only
        // past the cut: every derived name fits, and each table has its own.
        let long = |last: char| format!("{}{last}", "x".repeat(63));
        let (a, b) = (long('a'), long('b'));
        let (na, nb) = (
            ShadowNames::derive("d", &a, Some("20261128_031500")),
            ShadowNames::derive("d", &b, Some("20261128_031500")),
        );
        for n in [&na, &nb] {
            for name in [&n.ghost, &n.changelog, &n.old, &n.scratch, &n.probe] {
                assert!(name.chars().count() <= MAX_TABLE_NAME, "{name}");
                assert!(name.starts_with("_xxxx"), "{name}");
            }
            assert!(n.ghost.ends_with("_gho") && n.old.ends_with("_20261128_031500_del"));
        }
        assert_eq!(na.ghost.chars().count(), MAX_TABLE_NAME);
        assert_ne!(na.ghost, nb.ghost);
        assert_ne!(na.old, nb.old);
        // Counted in characters, as the server counts them.
        let wide = "é".repeat(64);
        let n = ShadowNames::derive("d", &wide, None);
        assert_eq!(n.ghost.chars().count(), MAX_TABLE_NAME, "{}", n.ghost);
        // Names that differ in case only, past the cut: two tables.
        let upper_end = format!("{}A", "x".repeat(63));
        assert_ne!(
            derived_name(&upper_end, "gho").to_lowercase(),
            derived_name(&a, "gho").to_lowercase()
        );
        // Stable across versions: a later run must find these tables.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn markers_name_role_and_run() {
        let m = marker(Role::Ghost, "r1");
        assert!(is_marked(&m, Role::Ghost));
        assert!(!is_marked(&m, Role::Changelog));
        assert!(is_marked(&marker(Role::Scratch, "r1"), Role::Scratch));
        assert!(!is_marked(&marker(Role::Scratch, "r1"), Role::Ghost));
        assert!(!is_marked("a user comment", Role::Ghost));
        let m = marker(Role::Ghost, "20261129_150000_ab12");
        assert_eq!(run_of(&m, Role::Ghost), Some("20261129_150000_ab12"));
        assert_eq!(run_of(&m, Role::Changelog), None);
        assert_eq!(run_of("shadowcut:ghostly:r1", Role::Ghost), None);
    }

    #[test]
    fn formats_utc_timestamps() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_836_930); // 2026-11-28 03:35:30 UTC
        assert_eq!(utc_timestamp(t), "20261128_033530");
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101_000000");
    }

    #[test]
    fn long_lock_names_are_hashed_to_the_server_limit() {
        assert_eq!(RunLock::lock_name("d", "t", false), "shadowcut.d.t");
        assert!(RunLock::lock_name(&"d".repeat(64), "t", false).len() <= 64);
        assert_eq!(
            RunLock::lock_name("D", "Orders", true),
            "shadowcut.d.orders"
        );
        assert_eq!(
            RunLock::lock_name("D", "Orders", false),
            "shadowcut.D.Orders"
        );
    }
}
