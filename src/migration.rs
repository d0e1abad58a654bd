//! The runner: the stages in order, with the state each passes on made
//! explicit, and the cleanup that leaves the original untouched and the
//! tool's tables removed whenever the run ends before the swap.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mysql_async::prelude::*;
use mysql_async::Conn;
use serde::Serialize;

use crate::apply::Applier;
use crate::checksum::{Checksum, ChecksumReport, Verification};
use crate::control::commands::Live;
use crate::control::listener::{Listeners, ServeConfig};
use crate::control::{Postpone, Stop};
use crate::copy::frontier::CopyFrontier;
use crate::copy::sizer::ChunkSizer;
use crate::copy::{Copier, CopyStart, Pace};
use crate::cutover::CutOver;
use crate::error::{Error, Result, SqlContext};
use crate::failpoint::{self, Failpoints};
use crate::feed::ChangeFeed;
use crate::hooks::{Hooks, StatusHooks, Step};
use crate::index_build::DeferredIndexes;
use crate::inspect::impact::{self, Impact};
use crate::inspect::topology::{self, Topology, TopologyConfig};
use crate::inspect::{self, privileges, Plan, Preflight};
use crate::instant::{self, Native, NativeOutcome, NativeReport, Probe};
use crate::plans::{self, PlanCheck};
use crate::progress::{Output, Reporter, Sources};
use crate::resume::{self, Leftover, RecordedGhost};
use crate::schema;
use crate::server::NativeAlgorithm;
use crate::server::{self, ConnectConfig, Dialect};
use crate::shadow::{self, hint, marker, Heartbeat, Role, RunLock, ShadowNames};
use crate::tail::{Tail, TailConfig};
use crate::throttle::{ThrottleConfig, Throttler};

/// Everything a migration is told.
#[derive(Debug, Clone)]
pub struct Config {
    /// Server.
    pub connect: ConnectConfig,
    /// Database of the table.
    pub database: String,
    /// Table to alter.
    pub table: String,
    /// The ALTER specification (after `ALTER TABLE t`).
    pub alter: String,
    /// Really migrate; otherwise a dry run.
    pub execute: bool,
    /// Run the ALTER natively with `ALGORITHM=INSTANT` when the server
    /// accepts it on an empty copy of the table (and the table itself does),
    /// instead of copying the rows.
    pub prefer_instant: bool,
    /// Rows per copy chunk: the first chunk's size when `chunk_time` is
    /// set, every chunk's otherwise.
    pub chunk_size: u64,
    /// Target time per copy chunk; the chunk size adapts to it. `None`:
    /// every chunk has `chunk_size` rows.
    pub chunk_time: Option<Duration>,
    /// After each chunk the copy and the checksum sleep this many times the
    /// time the chunk took (0: no pause; 1: they take at most half the
    /// time).
    pub nice_ratio: f64,
    /// Chunks copied at once, each on its own connection.
    pub copy_threads: usize,
    /// What holds the copy and the applier back, and what stops the run.
    pub throttle: ThrottleConfig,
    /// Connections applying changed keys at once, over disjoint keys (only
    /// for keys whose rows are distinct by their bytes: integers,
    /// VARBINARY).
    pub apply_threads: usize,
    /// Take the new table's plain secondary indexes off during the copy
    /// and build them after it (the default), instead of keeping them.
    pub build_indexes_after_copy: bool,
    /// The applier re-reads changed rows under share locks even where the
    /// server commits in binlog order and a fence makes locks unnecessary
    /// (MariaDB): writers then wait for those reads, and under a load that
    /// saturates the server the migration finishes sooner.
    pub locking_apply: bool,
    /// Changed keys buffered at most; beyond, the tail stops reading the
    /// binlog until the applier makes room (memory stays bounded while the
    /// applier is paused or slow).
    pub buffered_keys: usize,
    /// Swap without comparing the new table with the original first.
    pub skip_checksum: bool,
    /// Rows per checksum chunk: the checksum reads in consistent snapshots
    /// and writes nothing, so its chunks can be far larger than the copy's
    /// (10,000 compares 1,000,000 rows about a quarter faster than 1,000).
    pub checksum_chunk_size: u64,
    /// Connections comparing chunks in parallel.
    pub checksum_threads: usize,
    /// No cut-over while this file exists.
    pub postpone_cut_over_flag_file: Option<PathBuf>,
    /// Where live commands are served, and the panic flag file.
    pub serve: ServeConfig,
    /// Where to write when the server is a replica.
    pub topology: TopologyConfig,
    /// The application's queries whose plans are compared before the swap
    /// (`--verify-queries`).
    pub verify_queries: Vec<String>,
    /// Hold the swap while one of those plans is worse on the new table.
    pub postpone_on_worse_plan: bool,
    /// Count the rows for the dry run's impact estimate instead of taking
    /// the server's estimate.
    pub exact_rowcount: bool,
    /// Times a lost binlog connection is opened again, with backoff, before
    /// the run fails.
    pub default_retries: u32,
    /// Directory of hook executables (`shadowcut-on-<step>...`).
    pub hooks_path: Option<PathBuf>,
    /// A hook running longer is killed and counts as failed.
    pub hooks_timeout: Duration,
    /// Interval of the `status` hook.
    pub hooks_status_interval: Duration,
    /// Free text handed to every hook as `SHADOWCUT_HOOKS_HINT`.
    pub hooks_hint: Option<String>,
    /// After a failed before-cut-over hook, the swap waits this long
    /// before the hook is run again.
    pub hooks_retry_interval: Duration,
    /// Longest time clients may be blocked by one cut-over attempt.
    pub cut_over_lock_timeout: Duration,
    /// Cut-over attempts before giving up.
    pub cut_over_attempts: u32,
    /// Drop the old table after the swap.
    pub ok_to_drop_table: bool,
    /// Put the time in the old table's name.
    pub timestamp_old_table: bool,
    /// Drop a leftover ghost and changelog of an earlier run first.
    pub initially_drop_ghost_table: bool,
    /// Continue a killed run of the same migration from its checkpoint
    /// (see [`crate::resume`]).
    pub resume: bool,
    /// Drop a leftover old table of an earlier run first.
    pub initially_drop_old_table: bool,
    /// Server id of the binlog connection; derived from the run when unset.
    pub replica_server_id: Option<u32>,
    /// Interval of the changelog heartbeat.
    pub heartbeat_interval: Duration,
    /// How progress is reported.
    pub output: Output,
    /// Interval of status lines when not on a terminal.
    pub status_interval: Duration,
    /// Test-only faults.
    pub failpoints: Failpoints,
    /// Stop requests (signals).
    pub stop: Stop,
}

impl Config {
    /// A configuration with the documented defaults.
    pub fn new(connect: ConnectConfig, database: &str, table: &str, alter: &str) -> Config {
        Config {
            connect,
            database: database.into(),
            table: table.into(),
            alter: alter.into(),
            execute: false,
            prefer_instant: false,
            chunk_size: 1000,
            chunk_time: Some(Duration::from_millis(100)),
            nice_ratio: 0.0,
            copy_threads: 2,
            throttle: ThrottleConfig {
                interval: Duration::from_secs(1),
                max_lag: Duration::from_millis(1500),
                discover_replicas: true,
                ..ThrottleConfig::default()
            },
            apply_threads: 2,
            build_indexes_after_copy: true,
            locking_apply: false,
            buffered_keys: 100_000,
            checksum_chunk_size: 10_000,
            skip_checksum: false,
            checksum_threads: 2,
            postpone_cut_over_flag_file: None,
            serve: ServeConfig::default(),
            topology: TopologyConfig::default(),
            verify_queries: Vec::new(),
            postpone_on_worse_plan: false,
            exact_rowcount: false,
            default_retries: 10,
            hooks_path: None,
            hooks_timeout: Duration::from_secs(60),
            hooks_status_interval: Duration::from_secs(60),
            hooks_hint: None,
            hooks_retry_interval: Duration::from_secs(10),
            cut_over_lock_timeout: Duration::from_secs(3),
            cut_over_attempts: 10,
            ok_to_drop_table: false,
            timestamp_old_table: false,
            initially_drop_ghost_table: false,
            resume: false,
            initially_drop_old_table: false,
            replica_server_id: None,
            heartbeat_interval: Duration::from_millis(500),
            output: Output::Text,
            status_interval: Duration::from_secs(5),
            failpoints: Failpoints::default(),
            stop: Stop::default(),
        }
    }
}

/// What the dry run shows and the real run did.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    /// The table.
    pub table: String,
    /// The new table's name while it is filled.
    pub ghost_table: String,
    /// The changelog table.
    pub changelog_table: String,
    /// Where the original goes after the swap.
    pub old_table: String,
    /// Shared key name and columns.
    pub shared_key: String,
    /// Columns copied, `source -> target`.
    pub column_mapping: Vec<String>,
    /// Server's row estimate.
    pub estimated_rows: u64,
    /// Server version.
    pub server: String,
    /// Where the run writes and where it reads the binlog.
    pub topology: String,
    /// The statements each stage runs.
    pub statements: Vec<(String, String)>,
    /// What the migration is expected to cost (dry run only).
    pub impact: Option<Impact>,
    /// `--verify-queries` against the empty new table's definition: indexes
    /// the queries use on the original that the new table lacks.
    pub query_plans: Vec<PlanCheck>,
    /// Whether the server can run the ALTER natively (INSTANT, NOCOPY), as
    /// it answered on an empty copy of the table; `None` when it was not
    /// asked (an `--execute` run without `--prefer-instant`).
    pub native: Option<Probe>,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// True for a dry run.
    pub dry_run: bool,
    /// The plan.
    pub plan: PlanReport,
    /// Wall time in seconds.
    pub duration_s: f64,
    /// Rows inserted by the copy.
    pub rows_copied: u64,
    /// Chunks the copy took.
    pub copy_chunks: u64,
    /// Copy statements that ran after locking their rows first, because
    /// rows were busy (`docs/design.md`, "Copy").
    pub copy_locked_first: u64,
    /// Chunks copied again because the new table refused one of their rows
    /// for a moment (a value that did not fit, a unique key collision; see
    /// `docs/design.md`, "Copy").
    pub copy_chunks_retried: u64,
    /// Plain secondary indexes built after the copy instead of during it.
    pub indexes_built_after_copy: usize,
    /// Row changes read from the binlog for the table.
    pub binlog_rows: u64,
    /// Of those, changes to rows the copy had not reached yet, left to it.
    pub binlog_rows_left_to_copy: u64,
    /// Most changed keys buffered at once.
    pub backlog_peak: u64,
    /// Generations of changed keys applied over several connections at once.
    pub parallel_apply_generations: u64,
    /// Changed keys left unapplied when the tables were swapped (the
    /// locked drain applies them all: 0).
    pub backlog_at_swap: u64,
    /// Changed keys applied to the new table.
    pub keys_applied: u64,
    /// `--verify-queries` right before the swap: the plans on the filled
    /// new table against the original's.
    pub query_plans: Vec<PlanCheck>,
    /// Seconds clients were blocked by the successful cut-over.
    pub cut_over_lock_s: Option<f64>,
    /// Cut-over attempts made.
    pub cut_over_attempts: u32,
    /// What the checksum before the swap found; `None` when it was skipped
    /// (`--skip-checksum`) or the run was a dry run.
    pub checksum: Option<ChecksumReport>,
    /// True when `--skip-checksum` turned the checksum off.
    pub checksum_skipped: bool,
    /// Name of the old table kept, if any.
    pub old_table_kept: Option<String>,
    /// What the tidying after the swap could not do, for the operator to
    /// do by hand (the migration itself is complete).
    pub left_to_do: Vec<String>,
    /// True when `--test-on-replica` rehearsed the swap and undid it.
    pub tested_on_replica: bool,
    /// The native path, when `--prefer-instant` took it: the ALTER ran on
    /// the table itself (`applied`, nothing copied), or the table refused
    /// the algorithm clause and the rows were copied.
    pub native: Option<NativeReport>,
}

/// Runs a migration (or a dry run) to the end.
pub async fn run(config: &Config) -> Result<Summary> {
    let started = Instant::now();
    let timestamp = config
        .timestamp_old_table
        .then(|| shadow::utc_timestamp(SystemTime::now()));
    let names = ShadowNames::derive(&config.database, &config.table, timestamp.as_deref());
    let run_id = shadow::new_run_id();
    if config.resume && !config.execute {
        return Err(Error::Usage(
            "--resume continues a migration: it needs --execute".into(),
        ));
    }
    if config.prefer_instant && config.topology.test_on_replica {
        return Err(Error::Usage(
            "--prefer-instant cannot be combined with --test-on-replica: the native ALTER would change \
             the replica's table for good, and the rehearsal changes no schema"
                .into(),
        ));
    }
    if let Some(dir) = config.hooks_path.as_ref().filter(|d| !d.is_dir()) {
        return Err(Error::Usage(format!(
            "--hooks-path {} is not a directory",
            dir.display()
        )));
    }
    let hooks = Hooks::new(
        config.hooks_path.clone(),
        config.hooks_timeout,
        &hook_facts(config, &names, &run_id),
    );
    // Hook failures other than before-cut-over's are logged by the hooks.
    let _ = hooks.run(Step::Startup, None, &[]).await;
    let result = connect_and_run(config, &names, &run_id, &hooks, started).await;
    let _ = match &result {
        Ok(_) => hooks.run(Step::Success, None, &[]).await,
        Err(e) => {
            let code = (e.exit_code() as i32).to_string();
            hooks
                .run(
                    Step::Failure,
                    None,
                    &[("ERROR", e.to_string()), ("EXIT_CODE", code)],
                )
                .await
        }
    };
    result
}

async fn connect_and_run(
    config: &Config,
    names: &ShadowNames,
    run_id: &str,
    hooks: &Hooks,
    started: Instant,
) -> Result<Summary> {
    let (mut inspected, inspected_dialect) = server::connect(&config.connect).await?;
    let topology = topology::discover(
        &mut inspected,
        inspected_dialect,
        &config.connect,
        names,
        &config.topology,
    )
    .await?;
    let (mut conn, dialect, replica_binlog) = if topology.inspected_replica.is_some() {
        // The tail reads the replica's binlog: its settings are checked
        // there, the primary's (which it replicates from) below.
        let (binlog, _) =
            inspect::binlog_settings(&mut inspected, inspected_dialect, names).await?;
        let _ = inspected.disconnect().await;
        let (conn, dialect) = server::connect(&topology.writer).await?;
        (conn, dialect, Some(binlog))
    } else {
        (inspected, inspected_dialect, None)
    };
    let mut preflight = inspect::preflight(&mut conn, dialect, names, &config.alter).await?;
    if let Some(binlog) = replica_binlog {
        preflight.binlog = binlog;
    }
    let mut run_lock = RunLock::acquire(
        &topology.writer,
        names,
        preflight.names_fold,
        config.default_retries,
    )
    .await?;
    let resumed = if config.resume {
        match Leftover::find(&mut conn, names, &config.alter).await {
            Ok(leftover) => Some(leftover),
            Err(e) => {
                run_lock.release().await;
                return Err(e);
            }
        }
    } else {
        None
    };
    if let Some(leftover) = &resumed {
        tracing::info!(run = %leftover.run_id, checkpoint = %leftover.checkpoint, "resuming the killed run");
        hooks.resuming(&leftover.run_id);
    }
    let result = Run {
        config,
        topology: &topology,
        derived_server_id: derive_server_id(preflight.server_id),
        names,
        dialect,
        run_id: resumed.as_ref().map_or(run_id, |r| r.run_id.as_str()),
        preflight: &preflight,
        hooks,
        started,
        resumed: resumed.as_ref(),
        postponement_announced: Default::default(),
        validated_announced: Default::default(),
    }
    .run(&mut conn, &mut run_lock)
    .await;
    run_lock.release().await;
    let _ = conn.disconnect().await;
    result
}

/// What every hook is told about the run (never the password).
fn hook_facts(config: &Config, names: &ShadowNames, run_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_NAME", names.database.clone()),
        ("TABLE_NAME", names.original.clone()),
        ("GHOST_TABLE_NAME", names.ghost.clone()),
        ("OLD_TABLE_NAME", names.old.clone()),
        ("CHANGELOG_TABLE_NAME", names.changelog.clone()),
        ("DDL", config.alter.clone()),
        ("INSPECTED_HOST", config.connect.target()),
        ("USER", config.connect.user.clone()),
        ("DRY_RUN", (!config.execute).to_string()),
        ("RUN_ID", run_id.to_string()),
        ("HOOKS_HINT", config.hooks_hint.clone().unwrap_or_default()),
    ]
}

/// A binlog server id for this run: high (real replicas use small ids),
/// different for every run of this process and, through the process id,
/// for concurrent processes; never the primary's own id. The server drops
/// an older binlog connection that uses the same id.
fn derive_server_id(primary_server_id: u32) -> u32 {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed) & 0xFFF;
    let id = 0x4000_0000 | ((std::process::id() & 0x3_FFFF) << 12) | run;
    if id == primary_server_id {
        id ^ 1
    } else {
        id
    }
}

/// Longest wait for the replica to replay the run's first writes.
const REPLICA_SYNC_WAIT: Duration = Duration::from_secs(120);

struct Run<'a> {
    config: &'a Config,
    derived_server_id: u32,
    names: &'a ShadowNames,
    dialect: Dialect,
    run_id: &'a str,
    preflight: &'a Preflight,
    topology: &'a Topology,
    hooks: &'a Hooks,
    started: Instant,
    /// What the killed run this one resumes left behind.
    resumed: Option<&'a Leftover>,
    /// The begin-postponed hooks ran.
    postponement_announced: std::sync::atomic::AtomicBool,
    /// The validated hooks ran.
    validated_announced: std::sync::atomic::AtomicBool,
}

/// True when the server refused the ALTER statement itself (a column that
/// exists, a syntax error): the copy path then reports it as it would
/// without `--prefer-instant`. Not when the statement was stopped (a DBA's
/// `KILL QUERY`, a statement timeout), whose run stops as before, nor when
/// the connection failed.
fn statement_refused(e: &Error) -> bool {
    /// ER_QUERY_INTERRUPTED, ER_STATEMENT_TIMEOUT (MariaDB), ER_QUERY_TIMEOUT (MySQL).
    const STOPPED: [u16; 3] = [1317, 1969, 3024];
    matches!(e, Error::Sql { .. })
        && !e.is_connection_lost()
        && e.server_code().is_some_and(|code| !STOPPED.contains(&code))
}

/// What `--prefer-instant`'s attempt on the table itself came to.
enum InstantFirst {
    /// Not attempted: the copy path decides (with the probe, as before).
    NotTried,
    /// The server altered the table; the run is done.
    Applied(Box<Summary>),
    /// The table refused the algorithm; the rows are copied.
    Refused(NativeReport),
}

impl Run<'_> {
    fn tag(&self) -> String {
        shadow::statement_tag(self.run_id)
    }

    fn server_id(&self) -> u32 {
        self.config
            .replica_server_id
            .unwrap_or(self.derived_server_id)
    }

    async fn run(&self, conn: &mut Conn, run_lock: &mut RunLock) -> Result<Summary> {
        if let Some(leftover) = self.resumed {
            // The placeholder of a cut-over attempt the kill interrupted.
            shadow::drop_if_marked(
                conn,
                self.names,
                &self.names.old,
                Role::Sentinel,
                self.run_id,
            )
            .await?;
            let result = self
                .with_ghost(conn, run_lock, &leftover.recorded.ghost, None)
                .await;
            let result = self.suspend_if_resumable(conn, result).await;
            // What the killed run copied stays for another --resume, unless
            // the operator asked to abandon the migration.
            if matches!(result, Err(Error::Panicked { .. })) {
                self.remove_artifacts(conn, run_lock).await;
            }
            return result;
        }
        let names = self.names;
        let drop_ghost = self.config.initially_drop_ghost_table;
        shadow::clear_leftover(
            conn,
            names,
            &names.ghost,
            &[Role::Ghost],
            drop_ghost,
            "--initially-drop-ghost-table",
        )
        .await?;
        shadow::clear_leftover(
            conn,
            names,
            &names.changelog,
            &[Role::Changelog],
            drop_ghost,
            "--initially-drop-ghost-table",
        )
        .await?;
        shadow::clear_leftover(
            conn,
            names,
            &names.scratch,
            &[Role::Scratch],
            drop_ghost,
            "--initially-drop-ghost-table",
        )
        .await?;
        // A killed cut-over's placeholder is empty: it goes with the rest
        // of that run's tables.
        if drop_ghost
            && shadow::run_of_table(conn, names, &names.old, Role::Sentinel)
                .await?
                .is_some()
        {
            shadow::drop_table(conn, names, &names.old).await?;
        }
        shadow::clear_leftover(
            conn,
            names,
            &names.old,
            &[Role::Old, Role::Sentinel],
            self.config.initially_drop_old_table,
            "--initially-drop-old-table",
        )
        .await?;

        // After the leftovers: a foreign `_<t>_gho` (another tool's
        // migration of the table) refuses the run before anything changes.
        let native_refusal = match self.instant_first(conn).await? {
            InstantFirst::Applied(summary) => return Ok(*summary),
            InstantFirst::Refused(report) => Some(report),
            InstantFirst::NotTried => None,
        };
        if self.config.execute {
            crate::inspect::disk::check_room(conn, names).await?;
        }
        let ghost = shadow::create_ghost(conn, names, &self.config.alter, self.run_id).await?;
        let result = self
            .with_ghost(conn, run_lock, &ghost, native_refusal)
            .await;
        let result = self.suspend_if_resumable(conn, result).await;
        let altered_natively = result
            .as_ref()
            .is_ok_and(|s| s.native.as_ref().is_some_and(|n| n.applied));
        let resumable = match &result {
            Err(Error::Suspended { .. }) => true,
            Err(e) if e.is_connection_lost() && self.config.execute => {
                match self.recorded(conn, run_lock).await {
                    Some(true) => {
                        tracing::warn!(
                            "a connection was lost past its retries: the new table and the changelog are kept; \
                             run the same command with --resume to continue"
                        );
                        true
                    }
                    Some(false) => false,
                    None => {
                        tracing::warn!(
                            "the server cannot be reached: the new table and the changelog (if recorded) stay; \
                             once it is back, run the same command with --resume to continue"
                        );
                        true
                    }
                }
            }
            _ => false,
        };
        if (result.is_err() && !resumable) || !self.config.execute || altered_natively {
            self.remove_artifacts(conn, run_lock).await;
        }
        result
    }

    /// A run stopped by a signal once the changelog records its state is
    /// resumable: its tables are kept and the error says how to continue.
    async fn suspend_if_resumable(
        &self,
        conn: &mut Conn,
        result: Result<Summary>,
    ) -> Result<Summary> {
        let Err(Error::Interrupted { table, reason }) = result else {
            return result;
        };
        if self.is_recorded(conn).await && self.config.execute {
            Err(Error::Suspended { table, reason })
        } else {
            Err(Error::Interrupted { table, reason })
        }
    }

    /// The changelog of this run exists: the run recorded what a resumed
    /// run needs.
    async fn is_recorded(&self, conn: &mut Conn) -> bool {
        shadow::table_comment(conn, &self.names.database, &self.names.changelog)
            .await
            .ok()
            .flatten()
            .is_some_and(|c| c == marker(Role::Changelog, self.run_id))
    }

    /// [`Run::is_recorded`], asked on the main connection, else the run
    /// lock's, else a fresh one; `None` when the server answers on none
    /// (restarting, unreachable): nothing can be dropped then anyway.
    async fn recorded(&self, conn: &mut Conn, run_lock: &mut RunLock) -> Option<bool> {
        if self.is_recorded(conn).await || self.is_recorded(run_lock.conn()).await {
            return Some(true);
        }
        let mut fresh = server::connect_session(&self.topology.writer).await.ok()?;
        let recorded = self.is_recorded(&mut fresh).await;
        let _ = fresh.disconnect().await;
        Some(recorded)
    }

    /// Drops what this run created (never a table without this run's marker).
    async fn remove_artifacts(&self, conn: &mut Conn, run_lock: &mut RunLock) {
        let names = self.names;
        for (table, role) in [
            (&names.ghost, Role::Ghost),
            (&names.changelog, Role::Changelog),
            (&names.old, Role::Sentinel),
            (&names.scratch, Role::Scratch),
        ] {
            // The main connection may be broken after an error; fall back to the lock's.
            if shadow::drop_if_marked(conn, names, table, role, self.run_id)
                .await
                .is_err()
            {
                if let Err(e) =
                    shadow::drop_if_marked(run_lock.conn(), names, table, role, self.run_id).await
                {
                    tracing::error!(error = %e, table = %names.q(table), "could not drop a table this run created");
                }
            }
        }
    }

    /// `--prefer-instant` on a server with `ALGORITHM=INSTANT`: the ALTER
    /// runs on the table itself with the clause before anything is created.
    /// The server either changes only the table's definition or refuses the
    /// statement and leaves the table as it was, so the table answers what
    /// the probe of an empty copy would ask, and the new table, the probe
    /// and the checks of the copy are spared when it accepts. Not tried with
    /// `--verify-queries`, whose plans are compared on the empty new table
    /// before the ALTER runs (the probe then asks, as in a dry run). Any
    /// other refusal than the algorithm's (a column that exists already,
    /// say) is left to the copy path, which reports it.
    async fn instant_first(&self, conn: &mut Conn) -> Result<InstantFirst> {
        let algorithm = NativeAlgorithm::Instant;
        if !self.config.execute
            || !self.config.prefer_instant
            || !self.config.verify_queries.is_empty()
            || !self.dialect.native_algorithms().contains(&algorithm)
        {
            return Ok(InstantFirst::NotTried);
        }
        self.announce_validated().await;
        let started = Instant::now();
        let tag = self.tag();
        let native = self.native(algorithm, &tag);
        let outcome = match native.run().await {
            Ok(outcome) => outcome,
            Err(e) if statement_refused(&e) => {
                tracing::debug!(error = %e, "the table refused the ALTER with ALGORITHM=INSTANT; the copy path reports why");
                return Ok(InstantFirst::NotTried);
            }
            Err(e) => return Err(e),
        };
        let report = NativeReport::new(algorithm, &outcome, started.elapsed());
        if let NativeOutcome::Refused { code, message, .. } = &outcome {
            tracing::info!(code, %message, "the table refused ALGORITHM=INSTANT; copying the rows instead");
            return Ok(InstantFirst::Refused(report));
        }
        tracing::info!(
            seconds = report.seconds,
            "the ALTER ran natively with ALGORITHM=INSTANT; nothing was copied"
        );
        let names = self.names;
        // The table is altered: nothing may turn the run into a failure now.
        let server: String = conn
            .query_first("SELECT VERSION()")
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let plan = PlanReport {
            table: names.q(&names.original),
            ghost_table: names.q(&names.ghost),
            changelog_table: names.q(&names.changelog),
            old_table: names.q(&names.old),
            shared_key: String::new(),
            column_mapping: Vec::new(),
            estimated_rows: self.preflight.original.rows_estimate,
            server,
            topology: self.topology.describe(),
            statements: native
                .statement()
                .map(|s| vec![("native".to_string(), s)])
                .unwrap_or_default(),
            impact: None,
            query_plans: Vec::new(),
            native: None,
        };
        let mut summary = self.summary(false, plan, &Sources::default(), None, 0, None, None);
        summary.native = Some(report);
        Ok(InstantFirst::Applied(Box::new(summary)))
    }

    /// The ALTER run on the table itself with `algorithm`, its lock waits
    /// bounded and retried as the cut-over's.
    fn native<'n>(&'n self, algorithm: NativeAlgorithm, statement_tag: &'n str) -> Native<'n> {
        Native {
            connect: &self.topology.writer,
            dialect: self.dialect,
            names: self.names,
            alter: &self.config.alter,
            algorithm,
            lock_timeout: self.config.cut_over_lock_timeout,
            attempts: self.config.cut_over_attempts,
            statement_tag,
            stop: &self.config.stop,
        }
    }

    /// Runs the `validated` hooks, once per run.
    async fn announce_validated(&self) {
        if !self.validated_announced.swap(true, Ordering::Relaxed) {
            let _ = self.hooks.run(Step::Validated, None, &[]).await;
        }
    }

    async fn with_ghost(
        &self,
        conn: &mut Conn,
        run_lock: &mut RunLock,
        ghost: &shadow::Ghost,
        native_refusal: Option<NativeReport>,
    ) -> Result<Summary> {
        let names = self.names;
        let ghost_schema = schema::read_table(conn, &names.database, &names.ghost)
            .await?
            .ok_or_else(|| {
                Error::refused(&names.q(&names.original), "the new table vanished", "Retry")
            })?;
        // A killed run may have built some of its deferred indexes.
        let resumed_deferred = self
            .resumed
            .and_then(|r| r.recorded.deferred.as_ref())
            .and_then(|d| d.still_missing(&ghost_schema));
        let plan = inspect::plan(self.preflight, ghost_schema)?;
        if let Some(numbered) = plan
            .ghost
            .columns
            .iter()
            .find(|g| g.auto_increment && !inspect::keys::writes(&plan.columns, &g.name))
        {
            tracing::warn!(
                column = %numbered.name,
                "the ALTER adds an AUTO_INCREMENT column: the server numbers the rows as the copy and the applier \
                 write them, so the numbers are unique but not in key order as a native ALTER gives them, with gaps, \
                 and a row changed during the migration gets a new number"
            );
        }
        inspect::check_zero_date_fills(conn, self.dialect, self.preflight, &plan).await?;
        inspect::check_integer_texts(conn, &self.preflight.original, &plan).await?;
        privileges::check(
            conn,
            self.dialect,
            names,
            &self.topology.binlog_source,
            self.server_id(),
            &self.preflight.binlog.position,
            &plan.columns,
            &self.tag(),
        )
        .await?;
        // A re-read without locks needs a fence, and a fence orders only
        // where commits follow the binlog.
        let fenced_apply = self.dialect.commits_in_binlog_order() && !self.config.locking_apply;
        let applier = Applier::new(
            names.clone(),
            plan.key.clone(),
            &plan.columns,
            self.dialect,
            fenced_apply,
            self.config.failpoints.clone(),
        );
        let copier = Copier::new(
            names,
            plan.key.clone(),
            &plan.columns,
            self.dialect,
            Pace {
                sizer: ChunkSizer::new(self.config.chunk_size, self.config.chunk_time),
                nice_ratio: self.config.nice_ratio,
                threads: self.config.copy_threads,
                retries: self.config.default_retries,
            },
            self.config.failpoints.clone(),
        );
        // The server is asked about the native path in a dry run, and when
        // --prefer-instant may take it: only after every check above passed.
        let asked_the_table = native_refusal.is_some();
        let probe = if self.resumed.is_none()
            && (!self.config.execute || (self.config.prefer_instant && !asked_the_table))
        {
            Some(
                instant::probe(
                    &self.topology.writer,
                    self.dialect,
                    names,
                    &self.config.alter,
                    self.run_id,
                    conn,
                )
                .await?,
            )
        } else {
            None
        };
        let deferred = if self.resumed.is_some() {
            resumed_deferred
        } else if !self.config.build_indexes_after_copy {
            None
        } else {
            let lead = plan
                .key
                .columns
                .first()
                .map_or("", |k| k.ghost_name.as_str());
            DeferredIndexes::defer(conn, names, lead, &self.tag()).await?
        };
        let report = self
            .plan_report(&plan, &applier, &copier, deferred.as_ref(), probe, conn)
            .await?;
        self.announce_validated().await;
        if !self.config.execute {
            let throttle = &self.config.throttle;
            crate::throttle::check_limits(
                conn,
                &crate::throttle::Limits {
                    max_load: throttle.max_load.clone(),
                    critical_load: throttle.critical_load.clone(),
                    max_lag: throttle.max_lag,
                },
            )
            .await?;
            let mut report = report;
            let replicas = self.watched_replicas(conn).await?;
            report.impact = Some(
                impact::estimate(
                    conn,
                    names,
                    &copier,
                    self.config.exact_rowcount,
                    self.preflight.original.rows_estimate,
                    &replicas,
                    self.dialect,
                )
                .await?,
            );
            return Ok(self.summary(true, report, &Sources::default(), None, 0, None, None));
        }
        let mut native = native_refusal;
        if let Some(algorithm) = report
            .native
            .as_ref()
            .and_then(|p| p.native_algorithm)
            .filter(|_| self.config.prefer_instant && self.resumed.is_none())
        {
            let started = Instant::now();
            let outcome = self.native(algorithm, &self.tag()).run().await?;
            let native_report = NativeReport::new(algorithm, &outcome, started.elapsed());
            match outcome {
                NativeOutcome::Applied { .. } => {
                    tracing::info!(
                        algorithm = algorithm.keyword(),
                        seconds = native_report.seconds,
                        "the ALTER ran natively; nothing was copied"
                    );
                    let mut summary =
                        self.summary(false, report, &Sources::default(), None, 0, None, None);
                    summary.native = Some(native_report);
                    return Ok(summary);
                }
                NativeOutcome::Refused { code, message, .. } => {
                    tracing::warn!(
                        algorithm = algorithm.keyword(),
                        code,
                        %message,
                        "the table refused the algorithm its empty copy accepted; copying the rows instead"
                    );
                    native = Some(native_report);
                }
            }
        }
        if self.resumed.is_none() {
            self.record_migration(conn, ghost, deferred.as_ref(), &report)
                .await?;
        }
        let mut summary = self
            .execute(
                conn,
                run_lock,
                ghost,
                &plan,
                applier,
                copier,
                deferred.as_ref(),
                report,
            )
            .await?;
        summary.native = native;
        Ok(summary)
    }

    /// Creates the changelog and records in it what the migration is and
    /// what a resumed run needs to know of the new table.
    async fn record_migration(
        &self,
        conn: &mut Conn,
        ghost: &shadow::Ghost,
        deferred: Option<&DeferredIndexes>,
        report: &PlanReport,
    ) -> Result<()> {
        let names = self.names;
        shadow::create_changelog(conn, names, self.run_id).await?;
        let recorded = RecordedGhost {
            ghost: ghost.clone(),
            deferred: deferred.cloned(),
        };
        let description = serde_json::json!({
            "run_id": self.run_id,
            "table": names.q(&names.original),
            "alter": self.config.alter,
            "shared_key": report.shared_key,
            "chunk_size": self.config.chunk_size,
            "chunk_time_ms": self.config.chunk_time.map(|t| t.as_millis() as u64),
            "copy_threads": self.config.copy_threads,
            "apply_threads": self.config.apply_threads,
            "resume": recorded,
        });
        shadow::write_changelog(conn, names, hint::MIGRATION, &description.to_string()).await
    }

    async fn plan_report(
        &self,
        plan: &Plan,
        applier: &Applier,
        copier: &Copier,
        deferred: Option<&DeferredIndexes>,
        native: Option<Probe>,
        conn: &mut Conn,
    ) -> Result<PlanReport> {
        let names = self.names;
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await
            .context(|| "reading the version".into())?
            .unwrap_or_default();
        let mut statements = vec![(
            "shadow".to_string(),
            format!(
                "CREATE TABLE {} LIKE {}; ALTER TABLE {} {}",
                names.q(&names.ghost),
                names.q(&names.original),
                names.q(&names.ghost),
                self.config.alter
            ),
        )];
        statements.extend(
            copier
                .describe()
                .into_iter()
                .map(|s| ("copy".to_string(), s)),
        );
        if let Some(deferred) = deferred {
            statements.push(("indexes".to_string(), deferred.describe(names)));
        }
        statements.extend(
            applier
                .describe()
                .into_iter()
                .map(|s| ("apply".to_string(), s)),
        );
        statements.extend(
            crate::cutover::describe(names)
                .into_iter()
                .map(|s| ("cut-over".to_string(), s)),
        );
        if let Some(probe) = &native {
            statements.extend(instant::describe_statements(
                names,
                self.dialect,
                &self.config.alter,
                probe,
            ));
        }
        Ok(PlanReport {
            table: names.q(&names.original),
            ghost_table: names.q(&names.ghost),
            changelog_table: names.q(&names.changelog),
            old_table: names.q(&names.old),
            shared_key: format!(
                "{} ({})",
                plan.key.name,
                plan.key
                    .columns
                    .iter()
                    .map(|k| k.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            column_mapping: plan
                .columns
                .iter()
                .map(|c| match c.fill {
                    Some(literal) => format!("{literal} -> {} (implicit default)", c.target),
                    None => format!("{} -> {}", c.source, c.target),
                })
                .collect(),
            estimated_rows: self.preflight.original.rows_estimate,
            server: version,
            topology: self.topology.describe(),
            query_plans: self
                .check_plans(
                    conn,
                    false,
                    deferred.map_or(&[][..], DeferredIndexes::index_names),
                )
                .await?,
            impact: None,
            statements,
            native,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn summary(
        &self,
        dry_run: bool,
        plan: PlanReport,
        sources: &Sources,
        lock_time: Option<Duration>,
        attempts: u32,
        checksum: Option<ChecksumReport>,
        old: Option<String>,
    ) -> Summary {
        let status = sources.status(self.started);
        Summary {
            dry_run,
            plan,
            duration_s: self.started.elapsed().as_secs_f64(),
            rows_copied: status.rows_copied,
            copy_chunks: sources.copy.chunks.load(Ordering::Relaxed),
            copy_locked_first: sources.copy.locked_first.load(Ordering::Relaxed),
            copy_chunks_retried: sources.copy.chunks_retried.load(Ordering::Relaxed),
            indexes_built_after_copy: 0,
            binlog_rows: status.binlog_rows,
            binlog_rows_left_to_copy: status.binlog_rows_left_to_copy,
            backlog_peak: status.backlog_peak,
            backlog_at_swap: 0,
            parallel_apply_generations: sources.apply.parallel_generations.load(Ordering::Relaxed),
            keys_applied: status.keys_applied,
            cut_over_lock_s: lock_time.map(|d| d.as_secs_f64()),
            cut_over_attempts: attempts,
            checksum,
            query_plans: Vec::new(),
            checksum_skipped: self.config.skip_checksum,
            old_table_kept: old,
            left_to_do: Vec::new(),
            tested_on_replica: false,
            native: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        conn: &mut Conn,
        run_lock: &mut RunLock,
        ghost: &shadow::Ghost,
        plan: &Plan,
        applier: Applier,
        copier: Copier,
        deferred: Option<&DeferredIndexes>,
        report: PlanReport,
    ) -> Result<Summary> {
        let names = self.names;
        let config = self.config;
        let stop = &config.stop;
        // Sessions that copy rows check zero dates exactly when a native
        // ALTER of this table would (it copies rows, not in place).
        let connect = ConnectConfig {
            zero_date_checks: ghost.native_copies_rows,
            ..self.topology.writer.clone()
        };
        if ghost.native_copies_rows {
            tracing::info!("the server would copy the rows for this ALTER: zero dates are checked as it checks them");
        }
        let sources = Arc::new(Sources {
            pace: copier.pace_control(),
            postpone: Arc::new(Postpone::new(config.postpone_cut_over_flag_file.clone())),
            ..Sources::default()
        });
        let _listeners = Listeners::start(
            &config.serve,
            Live {
                table: names.q(&names.original),
                sources: Arc::clone(&sources),
                started: self.started,
                stop: stop.clone(),
            },
        )
        .await?;
        sources
            .rows_estimate
            .store(self.preflight.original.rows_estimate, Ordering::Relaxed);
        sources.set_stage("tail");

        // The tail starts from a position taken before the copy reads a
        // row. On a replica, that position holds every change the primary
        // committed before it, and some after (the replica's lag): those
        // are applied again, which is harmless.
        let mut replica_conn = match &self.topology.inspected_replica {
            Some(replica) => Some(server::connect(replica).await?),
            None => None,
        };
        if let Some((replica, _)) = replica_conn.as_mut() {
            self.wait_for_replica(conn, replica).await?;
        }
        let (binlog_conn, binlog_dialect) = match replica_conn.as_mut() {
            Some((replica, dialect)) => (replica, *dialect),
            None => (&mut *conn, self.dialect),
        };
        let start = match self.resumed {
            Some(leftover) => {
                resume::check_binlog_kept(binlog_conn, names, &leftover.checkpoint).await?;
                leftover.checkpoint.clone()
            }
            None => {
                server::binlog_status(binlog_conn, binlog_dialect)
                    .await?
                    .ok_or_else(|| {
                        Error::refused(
                            &names.q(&names.original),
                            "binary logging is off",
                            "Enable log_bin",
                        )
                    })?
                    .position
            }
        };
        let variables =
            server::global_variables(binlog_conn, &["binlog_checksum", "lower_case_table_names"])
                .await?;
        if let Some((replica, _)) = replica_conn.take() {
            let _ = replica.disconnect().await;
        }
        if self.resumed.is_none() {
            shadow::write_changelog(conn, names, hint::START_POSITION, &start.to_string()).await?;
        }
        let name_rule = crate::tail::statements::NameRule {
            case_insensitive: variables
                .get("lower_case_table_names")
                .is_some_and(|v| v != "0"),
        };
        // Started before anything else runs, so that a misspelt variable or
        // a crossed critical load leaves nothing to stop; dropped on every
        // way out of this function.
        let mut throttle = ThrottleConfig {
            changelog: Some(names.q(&names.changelog)),
            ..config.throttle.clone()
        };
        if throttle.max_query_latency.is_some() && throttle.latency_query.is_none() {
            throttle.latency_query = Some(plan.key.first_row_lookup(&names.q(&names.original)));
        }
        throttle.replicas = self.watched_replicas(conn).await?;
        let throttler = Throttler::start(
            throttle,
            &connect,
            Arc::clone(&sources.throttle),
            stop.clone(),
        )
        .await?;
        // A resumed run reads the binlog again from its checkpoint: changes
        // above the watermark are left to the copy, which copies again
        // everything above it.
        let copy_start = self
            .resumed
            .map_or(CopyStart::Beginning, |r| r.copy_start(&plan.key));
        let frontier = Arc::new(CopyFrontier::new(&plan.key));
        match &copy_start {
            CopyStart::Beginning => {}
            CopyStart::After(watermark) => frontier.dispatch(Some(watermark)),
            CopyStart::Done => frontier.cover_everything(),
        }
        let tail = Tail::start(TailConfig {
            connect: ConnectConfig {
                zero_date_checks: false,
                ..self.topology.binlog_source.clone()
            },
            server_id: self.server_id(),
            start,
            names: names.clone(),
            original: self.preflight.original.clone(),
            key: plan.key.clone(),
            statement_tag: self.tag(),
            heartbeat_period: Duration::from_secs(1),
            checksums: variables
                .get("binlog_checksum")
                .is_some_and(|v| !v.eq_ignore_ascii_case("NONE")),
            name_rule,
            frontier: Arc::clone(&frontier),
            buffer_keys: config.buffered_keys.max(1),
            reconnect_retries: config.default_retries,
            numbered_from: self.resumed.map_or(0, |r| r.numbered_up_to),
            failpoints: config.failpoints.clone(),
        })
        .await?;
        *sources.tail.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(tail.shared()));
        let reporter = Reporter::start(Arc::clone(&sources), config.output, config.status_interval);
        let _status_hooks = StatusHooks::start(
            self.hooks,
            Arc::clone(&sources),
            self.started,
            config.hooks_status_interval,
        );
        let mut heartbeat =
            Some(Heartbeat::start(&connect, names.clone(), config.heartbeat_interval).await?);
        let apply_helpers = if applier.applies_in_parallel() {
            config.apply_threads.max(1) - 1
        } else {
            0
        };
        let mut feed = ChangeFeed::start(
            tail,
            applier.clone(),
            apply_helpers,
            Arc::clone(&sources.apply),
            Arc::clone(&sources.throttle),
            crate::apply::Reconnect {
                connect: connect.clone(),
                retries: config.default_retries,
            },
            config.stop.clone(),
        )
        .await?;

        let mut backlog_at_swap = 0;
        let mut replication_stopped = false;
        let outcome = async {
            let _ = self
                .hooks
                .run(
                    Step::BeforeRowCopy,
                    Some(&sources.status(self.started)),
                    &[],
                )
                .await;
            sources.set_stage("copy");
            if self.resumed.is_some() {
                let removed = resume::trim_ghost(conn, names, &plan.key, &copy_start).await?;
                tracing::info!(rows = removed, from = ?copy_start, "removed the new table's rows the copy copies again");
            }
            let mut copy_conn = server::connect_session(&connect).await?;
            copier
                .run(
                    &mut copy_conn,
                    &connect,
                    &sources.copy,
                    &frontier,
                    &sources.throttle,
                    stop,
                    &mut feed,
                    &copy_start,
                )
                .await?;
            let _ = copy_conn.disconnect().await;
            // The main connection and the run lock sat idle through the
            // copy: a server restart or a network fault meanwhile is
            // repaired here, before they are needed.
            self.revive(conn).await?;
            run_lock.verify(&names.q(&names.original)).await?;
            let _ = self
                .hooks
                .run(
                    Step::RowCopyComplete,
                    Some(&sources.status(self.started)),
                    &[],
                )
                .await;

            if let Some(deferred) = deferred {
                sources.set_stage("indexes");
                let started = Instant::now();
                deferred.build(conn, names, &self.tag()).await?;
                tracing::info!(
                    indexes = deferred.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "secondary indexes built after the copy"
                );
            }

            sources.set_stage("analyze");
            conn.query_drop(format!(
                "ANALYZE TABLE {} {}",
                names.q(&names.ghost),
                self.tag()
            ))
            .await
            .context(|| format!("analyzing {}", names.q(&names.ghost)))?;

            self.wait_while_postponed(&sources, &feed).await?;
            sources.set_stage("catch-up");
            if !crate::failpoint::on(config.failpoints.skip_converge) {
                self.converge(&mut feed).await?;
            }
            let checksum = if config.skip_checksum {
                tracing::warn!("the checksum before the swap is skipped (--skip-checksum)");
                None
            } else {
                sources.set_stage("checksum");
                let checksum = Checksum::new(
                    names,
                    &self.preflight.original,
                    plan,
                    config.checksum_chunk_size.max(1),
                    config.checksum_threads,
                    &config.failpoints,
                );
                let verification = Verification {
                    connect: &connect,
                    checksum: &checksum,
                    copier: &copier,
                    stop,
                    progress: &sources.checksum,
                    lock_timeout: config.cut_over_lock_timeout,
                    statement_tag: &self.tag(),
                    failpoints: &config.failpoints,
                    retries: config.default_retries,
                };
                let report = verification.run(&mut feed).await?;
                tracing::info!(
                    chunks = report.chunks_checked,
                    mismatches = report.mismatches,
                    repaired = report.repaired,
                    seconds = report.seconds,
                    "checksum before the swap: equal"
                );
                Some(report)
            };
            self.revive(conn).await?;
            let query_plans = self.check_plans(conn, true, &[]).await?;
            if let Some(reason) = plans::worse_reason(&query_plans) {
                tracing::warn!(%reason, "a query plan is worse on the new table");
                if config.postpone_on_worse_plan {
                    sources.postpone.hold("plan", reason, None);
                }
            }
            self.run_before_cut_over_hooks(&sources, &feed).await?;
            if !crate::failpoint::on(config.failpoints.skip_converge) {
                sources.set_stage("catch-up");
                self.converge(&mut feed).await?;
            }
            // The heartbeat goes on through the cut-over: without it every
            // watched replica would look lagging, and the throttle would
            // hold the applier that a retried attempt waits for.
            if self.topology.test_on_replica {
                // The swap is rehearsed on a replica that replays nothing
                // meanwhile; it is undone and replication restarted below.
                let (stop_sql, _) = self.dialect.replica_sql_thread_sql();
                conn.query_drop(stop_sql).await.context(|| {
                    format!("stopping replication for --test-on-replica ({stop_sql})")
                })?;
                replication_stopped = true;
                tracing::info!("--test-on-replica: replication stopped for the swap");
            }

            run_lock.verify(&names.q(&names.original)).await?;
            sources.set_stage("cut-over");
            let cut = CutOver {
                connect: &connect,
                names,
                run_id: self.run_id,
                statement_tag: &self.tag(),
                lock_timeout: config.cut_over_lock_timeout,
                dialect: self.dialect,
                final_comment: &ghost.final_comment,
                has_auto_increment: self.preflight.original.auto_increment.is_some(),
                requested_auto_increment: ghost.requested_auto_increment,
                stop,
                failpoints: &config.failpoints,
                name_rule,
                attempts: config.cut_over_attempts,
            };
            let (lock_time, attempts) = cut
                .run(&mut feed, run_lock.conn(), |note| sources.set_note(note))
                .await?;
            // Measured, not assumed: what the locked drain left behind.
            backlog_at_swap = feed.backlog() as u64;
            Ok((lock_time, attempts, checksum, query_plans))
        }
        .await;
        reporter.stop();
        drop(throttler);
        let outcome = match outcome {
            Err(Error::Interrupted { table, reason })
                if sources.throttle.critical_load_crossed() =>
            {
                Err(Error::CriticalLoad { table, reason })
            }
            Err(Error::Interrupted { table, reason }) if stop.is_panic() => {
                Err(Error::Panicked { table, reason })
            }
            other => other,
        };
        if let Some(heartbeat) = heartbeat.take() {
            let _ = heartbeat.stop().await;
        }
        let apply_failure = feed.shutdown().await;
        if replication_stopped && (outcome.is_err() || apply_failure.is_some()) {
            self.restart_replication(conn).await;
        }
        // When the apply loop died, its error is the cause; what the other
        // stages saw ("the apply loop stopped") is only the symptom.
        let (lock_time, attempts, checksum, query_plans) = match (outcome, apply_failure) {
            (Err(_), Some(cause)) => return Err(cause),
            (outcome, _) => outcome?,
        };

        // Swapped: what remains is tidying up.
        sources.set_stage("done");
        let (kept, left_to_do) = if self.topology.test_on_replica {
            self.revive(conn).await?;
            let undone = self.undo_rehearsed_swap(conn).await;
            self.restart_replication(conn).await;
            undone?;
            self.drop_changelog(conn)
                .await
                .map_or_else(|e| (None, vec![e]), |()| (None, Vec::new()))
        } else {
            self.tidy_after_swap(conn).await
        };
        let mut summary = self.summary(
            false,
            report,
            &sources,
            Some(lock_time),
            attempts,
            checksum,
            kept,
        );
        summary.tested_on_replica = self.topology.test_on_replica;
        summary.indexes_built_after_copy = deferred.map_or(0, DeferredIndexes::len);
        summary.backlog_at_swap = backlog_at_swap;
        summary.query_plans = query_plans;
        summary.left_to_do = left_to_do;
        Ok(summary)
    }

    /// After the swap: drops or marks the old table and drops the
    /// changelog. The migration is done whatever happens here, so a failure
    /// is not the run's: it is logged and reported with what is left to do
    /// by hand. Returns the old table's name when it is kept.
    async fn tidy_after_swap(&self, conn: &mut Conn) -> (Option<String>, Vec<String>) {
        let old = self.names.q(&self.names.old);
        let mut left_to_do = Vec::new();
        let kept = if self.config.ok_to_drop_table {
            match self
                .tidy_statement(conn, format!("DROP TABLE IF EXISTS {old}"))
                .await
            {
                Ok(()) => None,
                Err(e) => {
                    left_to_do.push(format!(
                        "the old table {old} was not dropped ({e}): drop it yourself"
                    ));
                    Some(old)
                }
            }
        } else {
            let mark = format!(
                "ALTER TABLE {old} COMMENT = {}",
                crate::sql::literal(&marker(Role::Old, self.run_id))
            );
            if let Err(e) = self.tidy_statement(conn, mark).await {
                left_to_do.push(format!(
                    "the old table {old} was not marked as shadowcut's ({e}): \
                     --initially-drop-old-table will not drop it; drop it yourself when you no longer need it"
                ));
            }
            Some(old)
        };
        if let Err(e) = self.drop_changelog(conn).await {
            left_to_do.push(e);
        }
        for what in &left_to_do {
            tracing::warn!("the swap is done, but {what}");
        }
        (kept, left_to_do)
    }

    /// Drops this run's changelog; on failure, what is left to do.
    async fn drop_changelog(&self, conn: &mut Conn) -> std::result::Result<(), String> {
        let names = self.names;
        let dropped = match self.tidy_failpoint(conn).await {
            Ok(()) => {
                shadow::drop_if_marked(conn, names, &names.changelog, Role::Changelog, self.run_id)
                    .await
            }
            Err(e) => Err(e),
        };
        dropped.map_err(|e| {
            format!(
                "the changelog {} was not dropped ({e}): drop it yourself",
                names.q(&names.changelog)
            )
        })
    }

    /// One statement of the tidying after the swap, on a connection
    /// revived first (the swap may have outlived the old one).
    async fn tidy_statement(&self, conn: &mut Conn, statement: String) -> Result<()> {
        self.tidy_failpoint(conn).await?;
        conn.query_drop(statement).await.context(|| {
            format!(
                "tidying up after the swap of {}",
                self.names.q(&self.names.original)
            )
        })
    }

    /// Revives the connection; the `fail_tidy` failpoint then makes the
    /// server refuse the statement that follows.
    async fn tidy_failpoint(&self, conn: &mut Conn) -> Result<()> {
        self.revive(conn).await?;
        if failpoint::on(self.config.failpoints.fail_tidy) {
            conn.query_drop("SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'failpoint: fail_tidy'")
                .await
                .context(|| "the fail_tidy failpoint".to_string())?;
        }
        Ok(())
    }

    /// Waits until the replica whose binlog the tail reads has replayed
    /// everything this run did on the primary so far (creating and probing
    /// the new table): the tail, which starts at the replica's position
    /// after this, must not read those statements as someone else's DDL.
    async fn wait_for_replica(&self, primary: &mut Conn, replica: &mut Conn) -> Result<()> {
        let names = self.names;
        let token = format!("{}-{}", self.run_id, std::process::id());
        shadow::write_changelog(primary, names, hint::REPLICA_SYNC, &token).await?;
        let deadline = Instant::now() + REPLICA_SYNC_WAIT;
        loop {
            let seen = shadow::changelog_value(replica, names, hint::REPLICA_SYNC)
                .await
                .ok()
                .flatten();
            if seen.as_deref() == Some(token.as_str()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::refused(
                    &names.q(&names.original),
                    format!(
                        "the replica {} did not replay the run's first writes within {} s",
                        self.topology.binlog_source.target(),
                        REPLICA_SYNC_WAIT.as_secs()
                    ),
                    "Check that the replica replicates and does not lag far, then retry",
                ));
            }
            if self.config.stop.reason().is_some() {
                return Err(self.interrupted());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn interrupted(&self) -> Error {
        let table = self.names.q(&self.names.original);
        let stop = &self.config.stop;
        let reason = stop.reason().unwrap_or_else(|| "stopped".into());
        if stop.is_panic() {
            Error::Panicked { table, reason }
        } else {
            Error::Interrupted { table, reason }
        }
    }

    /// `--test-on-replica`, after the swap: checks that the swapped-in table
    /// holds every row of the original, then swaps back (the migrated table
    /// stays as the new table's name, marked as this run's).
    async fn undo_rehearsed_swap(&self, conn: &mut Conn) -> Result<()> {
        let names = self.names;
        let (t, old, ghost) = (
            names.q(&names.original),
            names.q(&names.old),
            names.q(&names.ghost),
        );
        let counts: Option<(u64, u64)> = conn
            .query_first(format!(
                "SELECT (SELECT COUNT(*) FROM {t}), (SELECT COUNT(*) FROM {old})"
            ))
            .await
            .context(|| format!("counting the rows of {t} and {old} after the rehearsed swap"))?;
        conn.query_drop(format!(
            "RENAME TABLE {t} TO {ghost}, {old} TO {t} {}",
            self.tag()
        ))
        .await
        .context(|| format!("swapping {t} back after --test-on-replica"))?;
        conn.query_drop(format!(
            "ALTER TABLE {ghost} COMMENT = {}",
            crate::sql::literal(&marker(Role::Ghost, self.run_id))
        ))
        .await
        .context(|| format!("marking {ghost} as this run's"))?;
        match counts {
            Some((migrated, original)) if migrated == original => {
                tracing::info!(rows = migrated, "--test-on-replica: swapped, checked, swapped back; the migrated table is kept as {ghost}");
                Ok(())
            }
            other => Err(Error::Checksum {
                table: t,
                message: format!(
                    "after the rehearsed swap the migrated table and the original hold different row counts ({other:?}); both are swapped back, the migrated one kept as {ghost}"
                ),
            }),
        }
    }

    /// Starts the replica's SQL thread again after `--test-on-replica`.
    async fn restart_replication(&self, conn: &mut Conn) {
        let (_, start_sql) = self.dialect.replica_sql_thread_sql();
        match conn.query_drop(start_sql).await {
            Ok(()) => tracing::info!("--test-on-replica: replication restarted"),
            Err(e) => {
                tracing::error!(error = %e, "--test-on-replica: replication could not be restarted; run {start_sql} on the replica")
            }
        }
    }

    /// The replicas whose lag holds the run back: `--throttle-control-replicas`,
    /// else those registered with the primary (unless turned off), and the
    /// replica the operator pointed at.
    async fn watched_replicas(&self, conn: &mut Conn) -> Result<Vec<ConnectConfig>> {
        let throttle = &self.config.throttle;
        let mut replicas = throttle.replicas.clone();
        if replicas.is_empty() && throttle.discover_replicas {
            replicas = topology::discover_replicas(
                conn,
                self.dialect,
                &self.topology.writer,
                &[self.server_id()],
            )
            .await?;
        }
        if let Some(replica) = &self.topology.inspected_replica {
            if !replicas.iter().any(|r| r.target() == replica.target()) {
                replicas.push(replica.clone());
            }
        }
        Ok(replicas)
    }

    /// `--verify-queries` on the new table: its definition only, or (`full`,
    /// once it holds the rows) the whole plans.
    /// Opens the main connection again if it was lost while idle.
    async fn revive(&self, conn: &mut Conn) -> Result<()> {
        server::revive(
            conn,
            &self.topology.writer,
            self.config.default_retries,
            "main",
        )
        .await
    }

    async fn check_plans(
        &self,
        conn: &mut Conn,
        full: bool,
        built_later: &[String],
    ) -> Result<Vec<PlanCheck>> {
        if self.config.verify_queries.is_empty() {
            return Ok(Vec::new());
        }
        plans::check(
            conn,
            self.names,
            &self.config.verify_queries,
            self.preflight.names_fold,
            full,
            built_later,
        )
        .await
    }

    /// Waits while the cut-over is postponed (the flag file, a hold),
    /// running the begin-postponed hooks when the wait begins. The applier
    /// keeps the new table in sync meanwhile.
    async fn wait_while_postponed(&self, sources: &Sources, feed: &ChangeFeed) -> Result<()> {
        let Some(reason) = sources.postpone.reason() else {
            return Ok(());
        };
        let stage = sources.stage();
        sources.set_stage("postponed");
        // Once per run, however often a failing hook postpones again.
        if !self.postponement_announced.swap(true, Ordering::Relaxed) {
            let status = sources.status(self.started);
            let _ = self
                .hooks
                .run(
                    Step::BeginPostponed,
                    Some(&status),
                    &[("POSTPONED_REASON", reason)],
                )
                .await;
        }
        if !sources
            .postpone
            .wait(&self.config.stop, || feed.healthy())
            .await?
        {
            return Err(self.interrupted());
        }
        sources.set_stage(stage);
        Ok(())
    }

    /// Runs the before-cut-over hooks, the last step before the swap; while
    /// they fail, the swap is postponed and they are run again after
    /// `hooks_retry_interval`, unless the operator unpostponed.
    async fn run_before_cut_over_hooks(&self, sources: &Sources, feed: &ChangeFeed) -> Result<()> {
        loop {
            self.wait_while_postponed(sources, feed).await?;
            let status = sources.status(self.started);
            match self
                .hooks
                .run(Step::BeforeCutOver, Some(&status), &[])
                .await
            {
                Ok(()) => return Ok(()),
                Err(failure) if sources.postpone.unpostponed() => {
                    tracing::warn!(%failure, "cutting over anyway: the operator unpostponed");
                    return Ok(());
                }
                Err(failure) => sources.postpone.hold(
                    "before-cut-over hook",
                    format!(
                        "the before-cut-over {failure}; run again in {} s",
                        self.config.hooks_retry_interval.as_secs_f64()
                    ),
                    Some(Instant::now() + self.config.hooks_retry_interval),
                ),
            }
        }
    }

    /// Applies changes until a full catch-up is quick, so the locked drain
    /// at cut-over is short.
    async fn converge(&self, feed: &mut ChangeFeed) -> Result<()> {
        for _ in 0..100 {
            if self.config.stop.reason().is_some() {
                return Err(self.interrupted());
            }
            let t0 = Instant::now();
            feed.flush().await?;
            if t0.elapsed() < self.config.cut_over_lock_timeout / 3 {
                return Ok(());
            }
        }
        Err(Error::CutOver {
            table: self.names.q(&self.names.original),
            message:
                "the applier cannot catch up with the write load; try again when the load is lower"
                    .into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: u16) -> Error {
        Error::Sql {
            context: "the native ALTER".into(),
            source: mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: "m".into(),
                state: "HY000".into(),
            }),
        }
    }

    #[test]
    fn only_a_refused_statement_falls_back_to_the_copy() {
        // A column that exists; a syntax error.
        assert!(statement_refused(&server_error(1060)));
        assert!(statement_refused(&server_error(1064)));
        // KILL QUERY, a statement timeout, a lost server: the run stops.
        assert!(!statement_refused(&server_error(1317)));
        assert!(!statement_refused(&server_error(1969)));
        assert!(!statement_refused(&server_error(2013)));
        assert!(!statement_refused(&Error::CutOver {
            table: "t".into(),
            message: "no lock".into()
        }));
    }
}
