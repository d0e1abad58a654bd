//! The command line: clap definitions, their help text, and turning them
//! into a [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::control::listener::ServeConfig;
use crate::error::{Error, Result};
use crate::failpoint::Failpoints;
use crate::inspect::topology::TopologyConfig;
use crate::migration::Config;
use crate::progress::Output;
use crate::server::ConnectConfig;
use crate::throttle::parse_load_limits;

/// Examples shown at the end of `--help`.
const EXAMPLES: &str = "\
Examples:
  # Check everything and show the plan; nothing is changed:
  MYSQL_PWD=... shadowcut --host db1 --user dba -d shop -t orders \\
      --alter 'ADD COLUMN note VARCHAR(100) NULL'

  # Migrate, holding back while a replica lags or the server is busy, with
  # live commands on a socket (echo help | nc -U /tmp/orders.sock):
  shadowcut --host db1 --user dba --ask-pass -d shop -t orders \\
      --alter 'ADD INDEX created_idx (created_at)' --execute \\
      --throttle-control-replicas db2:3306,db3:3306 --max-lag-millis 1500 \\
      --max-load Threads_running=25 --critical-load Threads_running=200 \\
      --serve-socket-file /tmp/orders.sock

  # Copy now, swap at night: the swap waits while the file exists
  # (or until `echo unpostpone | nc -U /tmp/orders.sock`):
  shadowcut ... --execute --postpone-cut-over-flag-file /tmp/orders.postpone

  # Pointed at a replica, shadowcut writes on its primary and reads the
  # replica's binlog; --migrate-on-replica migrates the replica alone.
  shadowcut --host replica1 ... --execute

  # Run the ALTER natively when the server can do it instantly:
  shadowcut ... --alter 'ADD COLUMN flag TINYINT NULL' --prefer-instant --execute
";

/// Online schema change for MySQL and MariaDB, without triggers.
///
/// shadowcut creates `_<table>_gho` with the new schema, copies the rows in
/// chunks while it replays concurrent writes from the binary log, and swaps
/// the tables atomically once the new one has caught up. Without --execute it
/// only checks everything, shows the plan and removes what it created.
///
/// Exit codes: 0 done, 1 failed (original intact), 2 bad arguments,
/// 3 refused by a pre-flight check (nothing changed), 4 cannot connect,
/// 5 cut-over gave up, 6 critical load, 7 panic (the command or the flag
/// file), 130 interrupted by a signal (the original intact in every case).
#[derive(Debug, Parser)]
#[command(name = "shadowcut", version, max_term_width = 100, after_help = EXAMPLES)]
pub struct Args {
    /// Server host name or address [default: the defaults file's, else
    /// 127.0.0.1].
    #[arg(long, help_heading = "Connection")]
    pub host: Option<String>,
    /// Server TCP port [default: the defaults file's, else 3306].
    #[arg(long, short = 'P', help_heading = "Connection")]
    pub port: Option<u16>,
    /// Unix socket path (used instead of --host/--port).
    #[arg(long, short = 'S', help_heading = "Connection")]
    pub socket: Option<String>,
    /// User name.
    #[arg(long, short = 'u', help_heading = "Connection")]
    pub user: Option<String>,
    /// Password (prefer MYSQL_PWD, --ask-pass or --defaults-file: a password
    /// on the command line is visible to other users of the machine).
    #[arg(long, short = 'p', help_heading = "Connection", hide_env_values = true)]
    pub password: Option<String>,
    /// Prompt for the password on the terminal.
    #[arg(long, help_heading = "Connection")]
    pub ask_pass: bool,
    /// Read host, port, socket, user and password from the [client] section
    /// of this my.cnf-style file.
    #[arg(long, help_heading = "Connection")]
    pub defaults_file: Option<PathBuf>,

    /// Database of the table.
    #[arg(long, short = 'd', help_heading = "Migration")]
    pub database: String,
    /// Table to alter.
    #[arg(long, short = 't', help_heading = "Migration")]
    pub table: String,
    /// The change, as written after `ALTER TABLE <table>`, e.g.
    /// "ADD COLUMN c INT NOT NULL DEFAULT 0, ADD INDEX (c)".
    #[arg(long, help_heading = "Migration")]
    pub alter: String,
    /// Really migrate. Without it: a dry run that checks, creates and
    /// removes the new table, and prints the plan.
    #[arg(long, help_heading = "Migration")]
    pub execute: bool,
    /// Run the ALTER natively with ALGORITHM=INSTANT instead of copying the
    /// rows, when the server accepts that on an empty copy of the table (the
    /// dry run says whether it does). Its metadata-lock wait is bounded by
    /// --cut-over-lock-timeout-seconds and retried up to --cut-over-attempts
    /// times; if the table itself refuses the clause, the rows are copied.
    #[arg(long, help_heading = "Migration")]
    pub prefer_instant: bool,
    /// Take the new table's plain secondary indexes off while the rows are
    /// copied and build them in one online ALTER after the copy (unique
    /// indexes always stay). Faster for a single copy thread or many wide
    /// indexes; by default they are kept, which was faster with two copy
    /// threads and one small index (docs/performance.md).
    #[arg(long, help_heading = "Migration")]
    pub build_indexes_after_copy: bool,
    /// Rows copied per chunk, fixed. Without it the chunk size adapts to
    /// --chunk-time (starting at 1000 rows, between 100 and 200000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000), help_heading = "Migration")]
    pub chunk_size: Option<u64>,
    /// Target time per copy chunk, e.g. 500ms or 2s: the chunk size adapts
    /// to it (growing at most 1.5x a chunk, cut back at once when a chunk
    /// takes too long). Ignored with --chunk-size.
    #[arg(long, default_value = "100ms", value_parser = parse_chunk_time, help_heading = "Migration")]
    pub chunk_time: Duration,
    /// After each chunk, sleep this many times the time the chunk took
    /// (e.g. 0.5): gives the server back to the application at the cost of
    /// a longer copy.
    #[arg(long, default_value_t = 0.0, value_parser = parse_nice_ratio, help_heading = "Migration")]
    pub nice_ratio: f64,
    /// Chunks copied at once, each on its own connection over its own key
    /// range (the applier keeps priority).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=16), help_heading = "Migration")]
    pub copy_threads: u64,
    /// Connections applying changed rows at once, each over its own keys
    /// (integer and VARBINARY keys only; other keys use one).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=8), help_heading = "Migration")]
    pub apply_threads: u64,
    /// Server id of the binlog connection; must differ from every replica's
    /// (default: derived per run, from 1073741824 up).
    #[arg(long, help_heading = "Migration")]
    pub replica_server_id: Option<u32>,
    /// Swap without first comparing the new table with the original. The
    /// checksum is on by default; the summary says when it was skipped.
    #[arg(long, help_heading = "Migration")]
    pub skip_checksum: bool,
    /// Connections that compare chunks in parallel during the checksum.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64), help_heading = "Migration")]
    pub checksum_threads: u64,
    /// Accepted for gh-ost compatibility: on a primary, shadowcut reads its
    /// binlog and writes there anyway.
    #[arg(long, help_heading = "Topology")]
    pub allow_on_master: bool,
    /// Given a replica, write on this primary (host:port) instead of the
    /// one the replica's status names (the binlog is still read on the
    /// replica).
    #[arg(long, value_name = "HOST:PORT", help_heading = "Topology")]
    pub assume_master_host: Option<String>,
    /// Migrate the given replica alone: its primary and the other replicas
    /// keep the old schema. Without it, a replica is never migrated alone:
    /// shadowcut writes on its primary.
    #[arg(long, help_heading = "Topology")]
    pub migrate_on_replica: bool,
    /// Rehearse on the given replica: migrate it, stop its replication (SQL
    /// thread) before the swap, swap, check, swap back and restart it. The
    /// migrated table stays as `_<table>_gho` for inspection; no schema
    /// changes, on the replica or the primary.
    #[arg(long, conflicts_with = "migrate_on_replica", help_heading = "Topology")]
    pub test_on_replica: bool,

    /// Hold the copy and the applier back while a global status variable is
    /// at or above its value, e.g. "Threads_running=25,Threads_connected=500"
    /// (checked every second; the binlog keeps what waits).
    #[arg(long, help_heading = "Throttling")]
    pub max_load: Option<String>,
    /// Stop the migration (exit code 6, original untouched) when a global
    /// status variable reaches its value, e.g. "Threads_running=200".
    #[arg(long, help_heading = "Throttling")]
    pub critical_load: Option<String>,
    /// With --critical-load: look again this long after a crossing, and stop
    /// only if it is still crossed (0: stop at once).
    #[arg(long, default_value_t = 0, help_heading = "Throttling")]
    pub critical_load_interval_millis: u64,
    /// Hold the copy and the applier back while this file exists.
    #[arg(long, help_heading = "Throttling")]
    pub throttle_flag_file: Option<PathBuf>,
    /// Replicas whose lag holds the copy and the applier back, as
    /// "host:port,host:port" (same user and password as the primary); lag
    /// is the age of the migration's heartbeat row there.
    #[arg(long, help_heading = "Throttling")]
    pub throttle_control_replicas: Option<String>,
    /// Without --throttle-control-replicas, the replicas registered with the
    /// primary (SHOW SLAVE HOSTS) are watched; this turns that off.
    #[arg(long, help_heading = "Throttling")]
    pub no_discover_replicas: bool,
    /// Most replica lag before throttling, in milliseconds.
    #[arg(long, default_value_t = 1500, help_heading = "Throttling")]
    pub max_lag_millis: u64,
    /// Hold the copy and the applier back while the p95 latency of a
    /// canary query, timed every second over the last 10 looks, exceeds
    /// this many milliseconds (the application's queries slow down too).
    #[arg(long, help_heading = "Throttling")]
    pub max_query_latency_millis: Option<u64>,
    /// Hold the copy and the applier back while the data directory's disk
    /// has less free space than this (bytes, or with K, M, G, T), where the
    /// server shows it (MariaDB: the `disks` plugin).
    #[arg(long, value_parser = crate::inspect::disk::parse_size, help_heading = "Throttling")]
    pub min_free_disk: Option<u64>,
    /// The canary query for --max-query-latency-millis (default: a
    /// primary-key lookup of the first row of the table).
    #[arg(long, help_heading = "Throttling")]
    pub latency_query: Option<String>,
    /// Hold the copy and the applier back while this query's first column
    /// is above 0, e.g. "SELECT HOUR(NOW()) BETWEEN 8 AND 17".
    #[arg(long, help_heading = "Throttling")]
    pub throttle_query: Option<String>,

    /// While this file exists, the migration keeps the new table in sync but
    /// does not swap.
    #[arg(long, help_heading = "Cut-over")]
    pub postpone_cut_over_flag_file: Option<PathBuf>,
    /// Longest time clients may be blocked by one cut-over attempt.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=60), help_heading = "Cut-over")]
    pub cut_over_lock_timeout_seconds: u64,
    /// Cut-over attempts before giving up (the original stays in place).
    #[arg(long, default_value_t = 10, help_heading = "Cut-over")]
    pub cut_over_attempts: u32,
    /// Drop the old table after a successful swap (default: keep it as
    /// `_<table>_del`).
    #[arg(long, help_heading = "Cut-over")]
    pub ok_to_drop_table: bool,
    /// Name the old table `_<table>_<YYYYMMDD_hhmmss>_del`.
    #[arg(long, help_heading = "Cut-over")]
    pub timestamp_old_table: bool,
    /// Drop `_<table>_gho` and `_<table>_ghc` left by an earlier run (only
    /// when they carry shadowcut's marker).
    #[arg(long, help_heading = "Cut-over", conflicts_with = "resume")]
    pub initially_drop_ghost_table: bool,
    /// Continue a migration of the same table with the same ALTER that was
    /// killed (kill -9, a crash, a lost server): the new table and the
    /// changelog it left are checked, rows copied are kept, and the binlog
    /// is read again from the last recorded checkpoint. Needs --execute.
    #[arg(long, help_heading = "Cut-over", requires = "execute")]
    pub resume: bool,
    /// Drop `_<table>_del` left by an earlier run (only when it carries
    /// shadowcut's marker).
    #[arg(long, help_heading = "Cut-over")]
    pub initially_drop_old_table: bool,

    /// Times a lost binlog connection (a network fault, a KILL) is opened
    /// again, with exponential backoff, before the run fails; the stream
    /// resumes where it stopped, at a transaction boundary.
    #[arg(long, default_value_t = 10, help_heading = "Migration")]
    pub default_retries: u32,
    /// Count the table's rows (SELECT COUNT(*)) for the dry run's impact
    /// estimate instead of taking the server's estimate.
    #[arg(long, help_heading = "Migration")]
    pub exact_rowcount: bool,
    /// A file of the application's important SELECTs (separated by `;`):
    /// each is EXPLAINed against the original and the new table, in the
    /// dry run (indexes the new table lacks) and right before the swap
    /// (the whole plans: index, rows, full scans, filesorts).
    #[arg(long, value_name = "FILE", help_heading = "Cut-over")]
    pub verify_queries: Option<PathBuf>,
    /// With --verify-queries: hold the swap while a plan is worse on the
    /// new table, until `unpostpone` (the reason shows in status).
    #[arg(long, requires = "verify_queries", help_heading = "Cut-over")]
    pub postpone_on_worse_plan: bool,

    /// Serve live commands on this unix socket while the migration runs:
    /// `echo help | nc -U FILE` lists them (status, throttle, chunk-size=N,
    /// unpostpone, panic, ...).
    #[arg(long, help_heading = "Control")]
    pub serve_socket_file: Option<PathBuf>,
    /// Serve the live commands on this TCP port of 127.0.0.1 as well.
    #[arg(long, help_heading = "Control")]
    pub serve_tcp_port: Option<u16>,
    /// Serve the status in Prometheus' text format at http://ADDR/metrics
    /// (a loopback address, e.g. 127.0.0.1:9187).
    #[arg(long, value_name = "ADDR", help_heading = "Control")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Abort the migration (exit code 7, original untouched, new table
    /// dropped) as soon as this file exists.
    #[arg(long, help_heading = "Control")]
    pub panic_flag_file: Option<PathBuf>,

    /// Directory of hooks: executables named for a step
    /// (shadowcut-on-startup, -validated, -before-row-copy,
    /// -row-copy-complete, -begin-postponed, -before-cut-over, -success,
    /// -failure, -status; any suffix allowed), given the migration's facts in
    /// SHADOWCUT_* variables. A failing before-cut-over hook postpones the
    /// swap; other failures are logged.
    #[arg(long, help_heading = "Hooks")]
    pub hooks_path: Option<PathBuf>,
    /// Seconds between runs of the status hooks.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Hooks")]
    pub hooks_status_interval: u64,
    /// A hook running longer than this many seconds is killed and counts
    /// as failed.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Hooks")]
    pub hooks_timeout_seconds: u64,
    /// After a failing before-cut-over hook, the swap waits this many
    /// seconds, then runs the hook again (`unpostpone` cuts over anyway).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..), help_heading = "Hooks")]
    pub hooks_retry_seconds: u64,
    /// Free text handed to every hook as SHADOWCUT_HOOKS_HINT (a ticket
    /// number, say).
    #[arg(long, help_heading = "Hooks")]
    pub hooks_hint: Option<String>,

    /// text (a progress bar on a terminal, status lines otherwise) or json
    /// (one JSON object per line on stdout).
    #[arg(long, value_enum, default_value_t = Output::Text, help_heading = "Output")]
    pub output: Output,
    /// Seconds between status lines when not on a terminal.
    #[arg(long, default_value_t = 5, help_heading = "Output")]
    pub status_interval_seconds: u64,
}

/// The `[client]` settings of a my.cnf file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// host=
    pub host: Option<String>,
    /// port=
    pub port: Option<u16>,
    /// socket=
    pub socket: Option<String>,
    /// user=
    pub user: Option<String>,
    /// password=
    pub password: Option<String>,
}

/// Parses the `[client]` (and `[shadowcut]`) sections of a my.cnf file.
pub fn parse_defaults_file(text: &str) -> ClientOptions {
    let mut opts = ClientOptions::default();
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            let name = line
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_ascii_lowercase();
            in_section = name == "client" || name == "shadowcut";
            continue;
        }
        if !in_section {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase().replace('-', "_");
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value)
            .to_string();
        match key.as_str() {
            "host" => opts.host = Some(value),
            "port" => opts.port = value.parse().ok(),
            "socket" => opts.socket = Some(value),
            "user" => opts.user = Some(value),
            "password" => opts.password = Some(value),
            _ => {}
        }
    }
    opts
}

impl Args {
    /// Resolves credentials and builds the migration config. A value given
    /// on the command line wins over the defaults file, even when it equals
    /// the default; the password comes from --password, then the prompt of
    /// --ask-pass (asked for, so it wins over the environment), then
    /// MYSQL_PWD, then the file.
    pub fn into_config(self) -> Result<Config> {
        let file = match &self.defaults_file {
            Some(path) => {
                parse_defaults_file(&std::fs::read_to_string(path).map_err(|source| Error::Io {
                    context: format!("reading --defaults-file {}", path.display()),
                    source,
                })?)
            }
            None => ClientOptions::default(),
        };
        let password =
            match (self.password.clone(), self.ask_pass) {
                (Some(p), _) => Some(p),
                (None, true) => Some(rpassword::prompt_password("Password: ").map_err(
                    |source| Error::Io {
                        context: "reading the password from the terminal".into(),
                        source,
                    },
                )?),
                (None, false) => std::env::var("MYSQL_PWD").ok().or(file.password.clone()),
            };
        let connect = ConnectConfig {
            host: self
                .host
                .clone()
                .or(file.host.clone())
                .unwrap_or_else(|| "127.0.0.1".into()),
            port: self.port.or(file.port).unwrap_or(3306),
            socket: self.socket.clone().or(file.socket.clone()),
            user: self
                .user
                .clone()
                .or(file.user.clone())
                .unwrap_or_else(|| "root".into()),
            password,
            zero_date_checks: false,
        };
        let failpoints = Failpoints::from_env().map_err(Error::Usage)?;
        let mut config = Config::new(connect, &self.database, &self.table, &self.alter);
        config.execute = self.execute;
        config.prefer_instant = self.prefer_instant;
        config.build_indexes_after_copy = self.build_indexes_after_copy;
        match self.chunk_size {
            Some(rows) => {
                config.chunk_size = rows;
                config.chunk_time = None;
            }
            None => config.chunk_time = Some(self.chunk_time),
        }
        config.nice_ratio = self.nice_ratio;
        config.copy_threads = self.copy_threads as usize;
        config.apply_threads = self.apply_threads as usize;
        config.skip_checksum = self.skip_checksum;
        config.checksum_threads = self.checksum_threads as usize;
        config.postpone_cut_over_flag_file = self.postpone_cut_over_flag_file;
        config.topology = TopologyConfig {
            assume_master: match self.assume_master_host.as_deref() {
                None => None,
                Some(spec) => {
                    let primary = parse_replicas(spec, &config.connect).map_err(|problem| {
                        Error::Usage(format!("--assume-master-host: {problem}"))
                    })?;
                    match primary.as_slice() {
                        [one] => Some((one.host.clone(), one.port)),
                        _ => {
                            return Err(Error::Usage(
                                "--assume-master-host takes one host:port".into(),
                            ))
                        }
                    }
                }
            },
            migrate_on_replica: self.migrate_on_replica,
            test_on_replica: self.test_on_replica,
        };
        if let Some(file) = &self.verify_queries {
            config.verify_queries = crate::plans::read_queries(file)?;
        }
        config.postpone_on_worse_plan = self.postpone_on_worse_plan;
        config.exact_rowcount = self.exact_rowcount;
        config.default_retries = self.default_retries;
        config.hooks_path = self.hooks_path;
        config.hooks_status_interval = Duration::from_secs(self.hooks_status_interval);
        config.hooks_timeout = Duration::from_secs(self.hooks_timeout_seconds);
        config.hooks_hint = self.hooks_hint;
        config.hooks_retry_interval = Duration::from_secs(self.hooks_retry_seconds);
        config.serve = ServeConfig {
            socket_file: self.serve_socket_file,
            tcp_port: self.serve_tcp_port,
            panic_flag_file: self.panic_flag_file,
            metrics_addr: self.metrics_addr,
        };
        let limits = |flag: &str, spec: Option<&str>| {
            parse_load_limits(spec.unwrap_or_default())
                .map_err(|problem| Error::Usage(format!("--{flag}: {problem}")))
        };
        config.throttle.max_load = limits("max-load", self.max_load.as_deref())?;
        config.throttle.critical_load = limits("critical-load", self.critical_load.as_deref())?;
        config.throttle.critical_load_interval =
            Duration::from_millis(self.critical_load_interval_millis);
        config.throttle.flag_file = self.throttle_flag_file;
        config.throttle.max_lag = Duration::from_millis(self.max_lag_millis);
        config.throttle.replicas = match self.throttle_control_replicas.as_deref() {
            None => Vec::new(),
            Some(list) => parse_replicas(list, &config.connect).map_err(|problem| {
                Error::Usage(format!("--throttle-control-replicas: {problem}"))
            })?,
        };
        config.throttle.throttle_query = self.throttle_query;
        config.throttle.discover_replicas = !self.no_discover_replicas;
        config.throttle.max_query_latency =
            self.max_query_latency_millis.map(Duration::from_millis);
        config.throttle.min_free_disk = self.min_free_disk;
        config.throttle.latency_query = self.latency_query;
        config.cut_over_lock_timeout = Duration::from_secs(self.cut_over_lock_timeout_seconds);
        config.cut_over_attempts = self.cut_over_attempts.max(1);
        config.ok_to_drop_table = self.ok_to_drop_table;
        config.timestamp_old_table = self.timestamp_old_table;
        config.initially_drop_ghost_table = self.initially_drop_ghost_table;
        config.resume = self.resume;
        config.initially_drop_old_table = self.initially_drop_old_table;
        config.replica_server_id = self.replica_server_id;
        config.output = self.output;
        config.status_interval = Duration::from_secs(self.status_interval_seconds.max(1));
        config.failpoints = failpoints;
        Ok(config)
    }
}

/// A number from 0 to 100.
fn parse_nice_ratio(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=100.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "'{text}' is not a ratio from 0 to 100, such as 0.5"
        )),
    }
}

/// `500ms`, `2s`, `1.5s` (10 ms to 60 s).
/// `host:port,host:port` as connections like `primary`'s (user, password).
fn parse_replicas(
    list: &str,
    primary: &ConnectConfig,
) -> std::result::Result<Vec<ConnectConfig>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (host, port) = item.rsplit_once(':').unwrap_or((item, "3306"));
            let port = port
                .parse()
                .map_err(|_| format!("'{port}' is not a port (in '{item}')"))?;
            if host.is_empty() {
                return Err(format!("'{item}' has no host"));
            }
            Ok(ConnectConfig {
                host: host.to_string(),
                port,
                socket: None,
                ..primary.clone()
            })
        })
        .collect()
}

fn parse_chunk_time(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        return Err("give a unit: 500ms or 2s".into());
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a duration such as 500ms or 2s"))?;
    let seconds = value * scale;
    if !(0.01..=60.0).contains(&seconds) {
        return Err("the chunk time must be between 10ms and 60s".into());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Overwrites a password given on the command line in the process's own
/// argument memory, as the mysql client does, so that `ps` and
/// `/proc/<pid>/cmdline` no longer show it. Linux only (through
/// `/proc/self/mem`); returns whether anything was overwritten.
#[cfg(target_os = "linux")]
pub fn hide_password_from_process_list(password: &str) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name, which is in parentheses and may
    // hold spaces: the 3rd field of the line is the first here.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .ok_or_else(|| invalid("no command name in /proc/self/stat"))?;
    let field = |n: usize| -> std::io::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| invalid("no argument bounds in /proc/self/stat"))
    };
    let (arg_start, arg_end) = (field(48)?, field(49)?);
    let mut mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")?;
    let mut args = vec![0u8; arg_end.saturating_sub(arg_start) as usize];
    mem.seek(SeekFrom::Start(arg_start))?;
    mem.read_exact(&mut args)?;
    let spans = password_spans(&args, password.as_bytes());
    for &(from, len) in &spans {
        mem.seek(SeekFrom::Start(arg_start + from as u64))?;
        mem.write_all(&vec![b'x'; len])?;
    }
    Ok(!spans.is_empty())
}

/// Where the password is in NUL-separated `args`: an argument that is the
/// password, or its value in `--password=...` or `-p...`.
fn password_spans(args: &[u8], password: &[u8]) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    if password.is_empty() {
        return spans;
    }
    let mut offset = 0;
    for arg in args.split(|b| *b == 0) {
        let value_at = if arg == password {
            Some(0)
        } else {
            [&b"--password="[..], &b"-p"[..]]
                .iter()
                .find(|prefix| {
                    arg.len() == prefix.len() + password.len()
                        && arg.starts_with(prefix)
                        && arg.ends_with(password)
                })
                .map(|prefix| prefix.len())
        };
        if let Some(at) = value_at {
            spans.push((offset + at, password.len()));
        }
        offset += arg.len() + 1;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_password_among_the_arguments() {
        let args =
            b"shadowcut\0--password\0s3cret\0-ps3cret\0--password=s3cret\0--user\0s3cretive\0";
        let spans = password_spans(args, b"s3cret");
        assert_eq!(spans, vec![(21, 6), (30, 6), (48, 6)]);
        for (at, len) in spans {
            assert_eq!(&args[at..at + len], b"s3cret");
        }
        assert!(password_spans(args, b"").is_empty());
    }

    #[test]
    fn replicas_read_as_hosts_and_ports_with_the_primarys_credentials() {
        let primary = ConnectConfig {
            host: "p".into(),
            port: 3306,
            socket: Some("/s".into()),
            user: "u".into(),
            password: Some("pw".into()),
            zero_date_checks: false,
        };
        let replicas = parse_replicas("r1:3307, r2", &primary).unwrap();
        assert_eq!(
            replicas
                .iter()
                .map(|r| (r.host.as_str(), r.port, r.socket.is_none(), r.user.as_str()))
                .collect::<Vec<_>>(),
            vec![("r1", 3307, true, "u"), ("r2", 3306, true, "u")]
        );
        assert_eq!(replicas[0].password.as_deref(), Some("pw"));
        assert!(parse_replicas("r1:x", &primary).is_err());
        assert!(parse_replicas(":3306", &primary).is_err());
    }
    use clap::CommandFactory;

    #[test]
    fn chunk_times_need_a_unit_and_a_sane_range() {
        assert_eq!(parse_chunk_time("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_chunk_time("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_chunk_time("500").is_err());
        assert!(parse_chunk_time("1ms").is_err());
        assert!(parse_chunk_time("2m").is_err());
        assert!(parse_chunk_time("xs").is_err());
        assert_eq!(parse_nice_ratio("0.5"), Ok(0.5));
        assert!(parse_nice_ratio("-1").is_err());
        assert!(parse_nice_ratio("NaN").is_err());
    }

    #[test]
    fn cli_definition_is_valid() {
        Args::command().debug_assert();
    }

    #[test]
    fn reads_the_client_section_only() {
        let text = "[mysqld]\nport=1\n[client]\nuser = dba\npassword=\"s3 cret\"\nport=3307\n# c\nsocket=/tmp/s\n[other]\nuser=x\n";
        let o = parse_defaults_file(text);
        assert_eq!(o.user.as_deref(), Some("dba"));
        assert_eq!(o.password.as_deref(), Some("s3 cret"));
        assert_eq!(o.port, Some(3307));
        assert_eq!(o.socket.as_deref(), Some("/tmp/s"));
    }

    #[test]
    fn command_line_wins_over_file_and_password_is_hidden() {
        let dir = std::env::temp_dir().join(format!("shadowcut-cnf-{}", std::process::id()));
        std::fs::write(
            &dir,
            "[client]\nuser=fromfile\npassword=filepw\nport=3310\n",
        )
        .unwrap();
        let args = Args::parse_from([
            "shadowcut",
            "--defaults-file",
            dir.to_str().unwrap(),
            "--user",
            "cli",
            "-d",
            "db",
            "-t",
            "t",
            "--alter",
            "ADD c INT",
        ]);
        let config = args.into_config().unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(config.connect.user, "cli");
        assert_eq!(config.connect.port, 3310);
        if std::env::var("MYSQL_PWD").is_err() {
            assert_eq!(config.connect.password.as_deref(), Some("filepw"));
        }
        assert!(!format!("{config:?}").contains("filepw"));
        assert!(!config.execute);
        assert!(!config.prefer_instant, "--prefer-instant is off by default");
    }

    #[test]
    fn an_explicit_host_and_port_beat_the_file_even_when_they_are_the_defaults() {
        let dir = std::env::temp_dir().join(format!("shadowcut-cnf2-{}", std::process::id()));
        std::fs::write(&dir, "[client]\nhost=db.example\nport=3310\n").unwrap();
        let base = ["shadowcut", "-d", "db", "-t", "t", "--alter", "ADD c INT"];
        let file = ["--defaults-file", dir.to_str().unwrap()];
        let from_file = Args::parse_from(base.iter().chain(&file))
            .into_config()
            .unwrap();
        let explicit = Args::parse_from(base.iter().chain(&file).chain(&[
            "--host",
            "127.0.0.1",
            "--port",
            "3306",
        ]))
        .into_config()
        .unwrap();
        let bare = Args::parse_from(base).into_config().unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(
            (from_file.connect.host.as_str(), from_file.connect.port),
            ("db.example", 3310)
        );
        assert_eq!(
            (explicit.connect.host.as_str(), explicit.connect.port),
            ("127.0.0.1", 3306)
        );
        assert_eq!(
            (bare.connect.host.as_str(), bare.connect.port),
            ("127.0.0.1", 3306)
        );
    }

    #[test]
    fn prefer_instant_is_a_flag() {
        let args = Args::parse_from([
            "shadowcut",
            "-d",
            "db",
            "-t",
            "t",
            "--alter",
            "ADD c INT",
            "--prefer-instant",
        ]);
        assert!(args.prefer_instant);
    }
}
