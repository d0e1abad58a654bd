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
use crate::option_file::{Defaults, OptionFiles};
use crate::progress::Output;
use crate::server::{ConnectConfig, TlsConfig, TlsVerify};
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
    /// Server host name or address [default: the option files', else
    /// 127.0.0.1].
    #[arg(long, help_heading = "Connection")]
    pub host: Option<String>,
    /// Server TCP port [default: the option files', else 3306].
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
    /// Read this my.cnf-style file only, instead of /etc/my.cnf,
    /// /etc/mysql/my.cnf, $MYSQL_HOME/my.cnf and ~/.my.cnf (their [client],
    /// [client-server], [client-mariadb] and [shadowcut] groups: host,
    /// port, socket, user, password and the ssl settings).
    #[arg(long, help_heading = "Connection", conflicts_with_all = ["no_defaults", "defaults_extra_file"])]
    pub defaults_file: Option<PathBuf>,
    /// Read this option file after the standard ones, before ~/.my.cnf.
    #[arg(long, help_heading = "Connection", conflicts_with = "no_defaults")]
    pub defaults_extra_file: Option<PathBuf>,
    /// Read no option file.
    #[arg(long, help_heading = "Connection")]
    pub no_defaults: bool,
    /// Connect over TLS, checking the server's certificate and host name
    /// (against the built-in public roots, or --ssl-ca). Implied by the
    /// other --ssl flags; never used over a Unix socket.
    #[arg(long, help_heading = "Connection")]
    pub ssl: bool,
    /// PEM file of the CA(s) that signed the server's certificate; only
    /// these are trusted.
    #[arg(long, help_heading = "Connection")]
    pub ssl_ca: Option<PathBuf>,
    /// PEM client certificate (chain), for accounts that REQUIRE X509.
    #[arg(long, help_heading = "Connection", requires = "ssl_key")]
    pub ssl_cert: Option<PathBuf>,
    /// PEM private key of --ssl-cert.
    #[arg(long, help_heading = "Connection", requires = "ssl_cert")]
    pub ssl_key: Option<PathBuf>,
    /// Encrypt without checking the server's certificate or name: open to
    /// a man in the middle.
    #[arg(long, help_heading = "Connection")]
    pub ssl_allow_insecure: bool,

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
    /// rows, when the table accepts that (the dry run asks an empty copy of
    /// it). The ALTER is tried on the table with the clause first, which the
    /// server either runs at once or refuses without touching the table;
    /// if it refuses, the rows are copied. Its metadata-lock wait is bounded
    /// by --cut-over-lock-timeout-seconds and retried up to
    /// --cut-over-attempts times.
    #[arg(long, help_heading = "Migration", conflicts_with = "test_on_replica")]
    pub prefer_instant: bool,
    /// Build the new table's plain secondary indexes after the copy, in one
    /// online ALTER (the default; unique indexes always stay). Kept so that
    /// scripts that asked for it still run.
    #[arg(
        long,
        conflicts_with = "indexes_during_copy",
        help_heading = "Migration"
    )]
    pub build_indexes_after_copy: bool,
    /// Keep the new table's plain secondary indexes while the rows are
    /// copied, instead of taking them off and building them after the copy.
    /// The default build after the copy was faster both idle and under a
    /// write load (docs/performance.md); keeping them avoids the build's
    /// own ALTER (worth it when the build would compete with a busy server
    /// at the end of the copy).
    #[arg(long, help_heading = "Migration")]
    pub indexes_during_copy: bool,
    /// The applier re-reads changed rows of the original under share locks,
    /// also on MariaDB, where by default it commits a fence and reads them
    /// without locks. Writers then wait for those reads (never the other
    /// way round: no deadlock, no error), and under a load that saturates
    /// the server the migration finishes sooner while the application keeps
    /// less of its throughput (docs/performance.md, "The balance"). MySQL
    /// always re-reads this way.
    #[arg(long, help_heading = "Migration")]
    pub locking_apply: bool,
    /// Rows copied per chunk, fixed. Without it the chunk size adapts to
    /// --chunk-time (starting at 1000 rows, between 100 and 200000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1_000_000), help_heading = "Migration")]
    pub chunk_size: Option<u64>,
    /// Target time per copy chunk, e.g. 500ms or 2s: the chunk size adapts
    /// to it (growing at most 1.5x a chunk, cut back at once when a chunk
    /// takes too long). Ignored with --chunk-size.
    #[arg(long, default_value = "100ms", value_parser = parse_chunk_time, help_heading = "Migration")]
    pub chunk_time: Duration,
    /// After each chunk of the copy and of the checksum, sleep this many
    /// times the time the chunk took (e.g. 0.5): gives the server back to
    /// the application at the cost of a longer migration.
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
    /// when they carry shadowcut's marker), and the empty `_<table>_del`
    /// placeholder of a cut-over it was killed in.
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

impl Args {
    /// Which option files the flags ask for.
    fn defaults(&self) -> Defaults {
        match (&self.defaults_file, &self.defaults_extra_file) {
            _ if self.no_defaults => Defaults::Nothing,
            (Some(only), _) => Defaults::Only(only.clone()),
            (None, Some(extra)) => Defaults::StandardAnd(extra.clone()),
            (None, None) => Defaults::Standard,
        }
    }

    /// Where and how to connect, from the command line and the option
    /// files. A value given on the command line wins, even when it equals
    /// the default. The password comes from --password, then the prompt of
    /// --ask-pass (or of a bare `password` in a file), then MYSQL_PWD, then
    /// the files. A socket from a file is used only when the command line
    /// names no host or port and the files' host is absent or `localhost`,
    /// as the clients connect to `localhost` through the socket.
    pub fn connect_config(&self) -> Result<ConnectConfig> {
        let file = OptionFiles::load(&self.defaults())?;
        let file_port = match file.value("port") {
            None => None,
            Some(port) => Some(port.parse::<u16>().map_err(|_| {
                Error::Usage(format!("option file: port={port} is not a TCP port"))
            })?),
        };
        let prompt = |why: &str| {
            rpassword::prompt_password(format!("Password{why}: ")).map_err(|source| Error::Io {
                context: "reading the password from the terminal".into(),
                source,
            })
        };
        let password = match (&self.password, self.ask_pass) {
            (Some(p), _) => Some(p.clone()),
            (None, true) => Some(prompt("")?),
            (None, false) => match std::env::var("MYSQL_PWD") {
                Ok(p) => Some(p),
                Err(_) => match file.get("password") {
                    Some(Some(p)) => Some(p.to_string()),
                    Some(None) => Some(prompt(" (a bare 'password' in the option file asks)")?),
                    None => None,
                },
            },
        };
        let file_host = file.value("host");
        let socket = match &self.socket {
            Some(socket) => Some(socket.clone()),
            None if self.host.is_none()
                && self.port.is_none()
                && file_host.is_none_or(|h| h == "localhost") =>
            {
                file.value("socket").map(str::to_string)
            }
            None => None,
        };
        Ok(ConnectConfig {
            host: self
                .host
                .clone()
                .or(file_host.map(str::to_string))
                .unwrap_or_else(|| "127.0.0.1".into()),
            port: self.port.or(file_port).unwrap_or(3306),
            socket,
            user: self
                .user
                .clone()
                .or(file.value("user").map(str::to_string))
                .unwrap_or_else(|| "root".into()),
            password,
            tls: self.tls_config(&file)?,
            zero_date_checks: false,
        })
    }

    /// TLS from the --ssl flags, else from the files' ssl keys: `ssl`,
    /// `ssl-ca`, `ssl-cert`, `ssl-key` (each implies TLS, as in the mariadb
    /// client), `ssl-mode` (MySQL: DISABLED and PREFERRED talk in the clear,
    /// REQUIRED checks nothing, VERIFY_IDENTITY the chain and the name;
    /// VERIFY_CA is checked as VERIFY_IDENTITY, see [`TlsVerify`]) and
    /// `ssl-verify-server-cert=0` (checks nothing). Unlike the clients, a
    /// certificate is checked unless told otherwise.
    fn tls_config(&self, file: &OptionFiles) -> Result<Option<TlsConfig>> {
        let path =
            |flag: &Option<PathBuf>, key: &str| flag.clone().or(file.value(key).map(PathBuf::from));
        let ca = path(&self.ssl_ca, "ssl-ca");
        let cert = path(&self.ssl_cert, "ssl-cert");
        let key = path(&self.ssl_key, "ssl-key");
        let on_command_line =
            self.ssl || self.ssl_allow_insecure || self.ssl_ca.is_some() || self.ssl_cert.is_some();
        let mode = file.value("ssl-mode").map(str::to_ascii_uppercase);
        let file_verify = match mode.as_deref() {
            None => None,
            Some("DISABLED" | "PREFERRED") => None,
            Some("REQUIRED") => Some(TlsVerify::Nothing),
            Some("VERIFY_CA") => {
                tracing::warn!("option file: ssl-mode=VERIFY_CA is checked as VERIFY_IDENTITY (the server's certificate must name the host connected to)");
                Some(TlsVerify::Identity)
            }
            Some("VERIFY_IDENTITY") => Some(TlsVerify::Identity),
            Some(other) => {
                return Err(Error::Usage(format!(
                    "option file: ssl-mode={other} is not DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
                )))
            }
        };
        let in_files = match file.flag("ssl")? {
            Some(false) => false,
            _ if matches!(mode.as_deref(), Some("DISABLED" | "PREFERRED")) => false,
            Some(true) => true,
            None => file_verify.is_some() || ca.is_some() || cert.is_some(),
        };
        if !on_command_line && !in_files {
            return Ok(None);
        }
        if cert.is_some() != key.is_some() {
            return Err(Error::Usage(
                "ssl-cert and ssl-key go together: give both or neither".into(),
            ));
        }
        let verify =
            if self.ssl_allow_insecure || file.flag("ssl-verify-server-cert")? == Some(false) {
                TlsVerify::Nothing
            } else {
                file_verify.unwrap_or_default()
            };
        Ok(Some(TlsConfig {
            ca,
            cert,
            key,
            verify,
        }))
    }

    /// Builds the migration config.
    pub fn into_config(self) -> Result<Config> {
        let connect = self.connect_config()?;
        let failpoints = Failpoints::from_env().map_err(Error::Usage)?;
        let mut config = Config::new(connect, &self.database, &self.table, &self.alter);
        config.execute = self.execute;
        config.prefer_instant = self.prefer_instant;
        config.build_indexes_after_copy = !self.indexes_during_copy;
        config.locking_apply = self.locking_apply;
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
            tls: None,
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
        assert!(
            config.build_indexes_after_copy,
            "indexes are built after the copy by default"
        );
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
        let bare = Args::parse_from(base.iter().chain(&["--no-defaults"]))
            .into_config()
            .unwrap();
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

    /// Connection settings from `file` as an option file and `flags`.
    fn connect_with(file: &str, flags: &[&str]) -> Result<ConnectConfig> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "shadowcut-cnf-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, file).unwrap();
        let base = ["shadowcut", "-d", "db", "-t", "t", "--alter", "ADD c INT"];
        let defaults = ["--defaults-file", path.to_str().unwrap()];
        let args = Args::parse_from(base.iter().chain(&defaults).chain(flags));
        let config = args.connect_config();
        std::fs::remove_file(&path).unwrap();
        config
    }

    #[test]
    fn a_socket_from_the_file_is_used_only_for_localhost() {
        let socket = |file: &str, flags: &[&str]| connect_with(file, flags).unwrap().socket;
        let file = "[client-server]\nsocket=/run/s.sock\n";
        assert_eq!(socket(file, &[]).as_deref(), Some("/run/s.sock"));
        assert_eq!(socket(file, &["--host", "127.0.0.1"]), None);
        assert_eq!(socket(file, &["--port", "3307"]), None);
        assert_eq!(socket(&format!("{file}host=db1\n"), &[]), None);
        assert_eq!(
            socket(&format!("{file}host=localhost\n"), &[]).as_deref(),
            Some("/run/s.sock")
        );
        assert_eq!(
            socket(file, &["--host", "h", "--socket", "/x.sock"]).as_deref(),
            Some("/x.sock")
        );
    }

    #[test]
    fn tls_comes_from_the_flags_or_the_files_ssl_keys() {
        let tls = |file: &str, flags: &[&str]| connect_with(file, flags).unwrap().tls;
        let verify = |file: &str, flags: &[&str]| tls(file, flags).map(|t| t.verify);
        assert_eq!(tls("[client]\n", &[]), None);
        assert_eq!(verify("[client]\n", &["--ssl"]), Some(TlsVerify::Identity));
        assert_eq!(
            verify("[client]\n", &["--ssl-allow-insecure"]),
            Some(TlsVerify::Nothing)
        );
        let with_ca = tls("[client]\n", &["--ssl-ca", "/ca.pem"]).unwrap();
        assert_eq!(with_ca.ca.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert_eq!(with_ca.verify, TlsVerify::Identity);

        assert_eq!(verify("[client]\nssl\n", &[]), Some(TlsVerify::Identity));
        assert_eq!(
            verify("[client]\nssl-ca=/ca.pem\n", &[]),
            Some(TlsVerify::Identity)
        );
        assert_eq!(
            verify("[client]\nssl-mode=required\n", &[]),
            Some(TlsVerify::Nothing)
        );
        assert_eq!(
            verify("[client]\nssl-mode=VERIFY_CA\n", &[]),
            Some(TlsVerify::Identity)
        );
        assert_eq!(verify("[client]\nssl-mode=PREFERRED\n", &[]), None);
        assert_eq!(verify("[client]\nssl-ca=/ca.pem\nskip-ssl\n", &[]), None);
        assert_eq!(
            verify("[client]\nssl\nssl-verify-server-cert=0\n", &[]),
            Some(TlsVerify::Nothing)
        );
        // The command line turns TLS on over a file that turns it off.
        assert_eq!(
            verify("[client]\nskip-ssl\n", &["--ssl"]),
            Some(TlsVerify::Identity)
        );
        let client = tls(
            "[client]\nssl-cert=/c.pem\nssl-key=/k.pem\n",
            &["--ssl-ca", "/ca.pem"],
        )
        .unwrap();
        assert_eq!(client.cert.as_deref(), Some(std::path::Path::new("/c.pem")));
        assert_eq!(client.key.as_deref(), Some(std::path::Path::new("/k.pem")));

        let refused = |file: &str| connect_with(file, &[]).unwrap_err().to_string();
        assert!(refused("[client]\nssl-cert=/c.pem\n").contains("ssl-key"));
        assert!(refused("[client]\nssl-mode=sometimes\n").contains("ssl-mode"));
        assert!(refused("[client]\nport=abc\n").contains("port=abc"));
    }

    #[test]
    fn prefer_instant_is_a_flag() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["shadowcut", "-d", "db", "-t", "t", "--alter", "ADD c INT"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv)
        };
        assert!(parse(&["--prefer-instant"]).is_ok_and(|a| a.prefer_instant));
        let both = parse(&["--prefer-instant", "--test-on-replica"]);
        assert!(
            both.is_err(),
            "--prefer-instant would change the rehearsed replica"
        );
    }

    #[test]
    fn locking_apply_is_off_unless_asked_for() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["shadowcut", "-d", "db", "-t", "t", "--alter", "ADD c INT"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv).unwrap().into_config().unwrap()
        };
        assert!(!parse(&[]).locking_apply);
        assert!(parse(&["--locking-apply"]).locking_apply);
    }

    #[test]
    fn indexes_during_copy_turns_the_build_after_the_copy_off() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["shadowcut", "-d", "db", "-t", "t", "--alter", "ADD c INT"];
            argv.extend_from_slice(extra);
            Args::try_parse_from(argv)
        };
        let during = parse(&["--indexes-during-copy"])
            .unwrap()
            .into_config()
            .unwrap();
        assert!(!during.build_indexes_after_copy);
        let after = parse(&["--build-indexes-after-copy"])
            .unwrap()
            .into_config()
            .unwrap();
        assert!(after.build_indexes_after_copy);
        assert!(parse(&["--build-indexes-after-copy", "--indexes-during-copy"]).is_err());
    }
}
