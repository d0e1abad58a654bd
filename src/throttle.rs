//! Throttling: while a reason holds, the copy dispatches no chunk and the
//! applier writes nothing (the tail keeps reading, within the buffer's
//! bound, and the binlog keeps the rest). Reasons, checked by a background
//! task on its own connection: the `--throttle-flag-file` exists, a
//! `--max-load` status variable is at or above its threshold, the
//! `--throttle-query` returns more than 0, or a replica of
//! `--throttle-control-replicas` lags more than `--max-lag-millis` (the
//! age of its copy of the heartbeat row). `--critical-load` stops the
//! migration instead, after a second look `--critical-load-interval-millis`
//! later, with the original table untouched.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row};
use tokio::sync::watch;

use crate::control::Stop;
use crate::error::{Error, Result, SqlContext};
use crate::server::ConnectConfig;

/// A status variable and the value at which it counts as crossed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadLimit {
    /// Global status variable, e.g. `Threads_running`.
    pub variable: String,
    /// Crossed at this value or above.
    pub threshold: u64,
}

impl std::fmt::Display for LoadLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.variable, self.threshold)
    }
}

/// Limits as `--max-load` takes them: `Threads_running=25,Threads_connected=500`.
pub fn format_load_limits(limits: &[LoadLimit]) -> String {
    limits
        .iter()
        .map(LoadLimit::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `Threads_running=25,Threads_connected=500` (gh-ost's format).
pub fn parse_load_limits(spec: &str) -> std::result::Result<Vec<LoadLimit>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (variable, threshold) = item
                .split_once('=')
                .ok_or_else(|| format!("'{item}' is not variable=number"))?;
            let variable = variable.trim();
            if variable.is_empty()
                || !variable
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!("'{variable}' is not a status variable name"));
            }
            let threshold = threshold
                .trim()
                .parse()
                .map_err(|_| format!("'{threshold}' is not a whole number (in '{item}')"))?;
            Ok(LoadLimit {
                variable: variable.to_string(),
                threshold,
            })
        })
        .collect()
}

/// What the throttle watches.
#[derive(Debug, Clone, Default)]
pub struct ThrottleConfig {
    /// Throttle while this file exists.
    pub flag_file: Option<PathBuf>,
    /// Throttle while any of these is crossed.
    pub max_load: Vec<LoadLimit>,
    /// Stop the migration when any of these is crossed (twice, `critical_load_interval` apart).
    pub critical_load: Vec<LoadLimit>,
    /// Time between the two looks at a crossed critical load (0: one look).
    pub critical_load_interval: Duration,
    /// Throttle while this query's first column is above 0.
    pub throttle_query: Option<String>,
    /// Replicas whose lag is watched (`--throttle-control-replicas`).
    pub replicas: Vec<ConnectConfig>,
    /// Without `replicas`, watch those registered with the primary.
    pub discover_replicas: bool,
    /// Throttle while a replica's copy of the heartbeat is older than this.
    pub max_lag: Duration,
    /// The changelog table holding the heartbeat, once the run has one.
    pub changelog: Option<String>,
    /// Throttle while the canary query's p95 latency, over the last
    /// [`LATENCY_WINDOW`] looks, exceeds this.
    pub max_query_latency: Option<Duration>,
    /// The canary query timed at each look (the migration sets a
    /// primary-key lookup on the original table unless one is given).
    pub latency_query: Option<String>,
    /// Throttle while the data directory's disk has fewer free bytes.
    pub min_free_disk: Option<u64>,
    /// How often the reasons are checked.
    pub interval: Duration,
}

impl ThrottleConfig {
    fn watches_the_server(&self) -> bool {
        !self.max_load.is_empty()
            || !self.critical_load.is_empty()
            || self.throttle_query.is_some()
            || self.max_query_latency.is_some()
            || self.min_free_disk.is_some()
    }

    fn watches_replicas(&self) -> bool {
        !self.replicas.is_empty() && self.changelog.is_some()
    }
}

/// The limits an operator can change while the migration runs (the live
/// commands `max-load=`, `critical-load=`, `max-lag-millis=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Throttle while any of these is crossed.
    pub max_load: Vec<LoadLimit>,
    /// Stop the migration when any of these is crossed.
    pub critical_load: Vec<LoadLimit>,
    /// Throttle while a replica lags more than this.
    pub max_lag: Duration,
}

/// How far behind one watched replica is, as last seen.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReplicaLag {
    /// `host:port` of the replica.
    pub replica: String,
    /// Age of its copy of the heartbeat, in seconds; `None` when it could
    /// not be read (the reason is then the throttle's).
    pub lag_s: Option<f64>,
}

/// The throttle's state, shared by the copy, the applier, the status and
/// the live commands.
#[derive(Debug, Default)]
pub struct Throttle {
    /// The reason in effect: the operator's, else the checks'.
    reason: watch::Sender<Option<String>>,
    /// What the last check found.
    checked: std::sync::Mutex<Option<String>>,
    /// Raised by the `throttle` command, lowered by `no-throttle`.
    by_operator: AtomicBool,
    critical: AtomicBool,
    limits: std::sync::Mutex<Limits>,
    replica_lags: std::sync::Mutex<Vec<ReplicaLag>>,
}

fn locked<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Throttle {
    /// A throttle starting with `limits`.
    pub fn new(limits: Limits) -> Throttle {
        Throttle {
            limits: std::sync::Mutex::new(limits),
            ..Throttle::default()
        }
    }

    /// Why writes are held back now, if they are.
    pub fn reason(&self) -> Option<String> {
        self.reason.borrow().clone()
    }

    /// True once a critical load stopped the migration.
    pub fn critical_load_crossed(&self) -> bool {
        self.critical.load(Ordering::Relaxed)
    }

    /// The limits in effect.
    pub fn limits(&self) -> Limits {
        locked(&self.limits).clone()
    }

    /// Replaces the limits; the next check (within a second) applies them.
    pub fn set_limits(&self, change: impl FnOnce(&mut Limits)) {
        change(&mut locked(&self.limits));
    }

    /// The watched replicas' lag, as last seen.
    pub fn replica_lags(&self) -> Vec<ReplicaLag> {
        locked(&self.replica_lags).clone()
    }

    /// Holds the copy and the applier back until [`Throttle::release_by_operator`],
    /// whatever the checks say (the `throttle` command).
    pub fn hold_by_operator(&self) {
        self.by_operator.store(true, Ordering::Relaxed);
        self.publish();
    }

    /// Ends [`Throttle::hold_by_operator`]; the checks' reason, if any, stays.
    pub fn release_by_operator(&self) {
        self.by_operator.store(false, Ordering::Relaxed);
        self.publish();
    }

    fn set(&self, reason: Option<String>) {
        *locked(&self.checked) = reason;
        self.publish();
    }

    fn publish(&self) {
        let reason = if self.by_operator.load(Ordering::Relaxed) {
            Some("throttled by the operator (the throttle command; no-throttle ends it)".into())
        } else {
            locked(&self.checked).clone()
        };
        self.reason.send_if_modified(|current| {
            if *current == reason {
                false
            } else {
                match &reason {
                    Some(r) => {
                        tracing::warn!(reason = %r, "throttled: the copy and the applier wait")
                    }
                    None => tracing::info!("no longer throttled"),
                }
                *current = reason;
                true
            }
        });
    }

    /// Returns once not throttled, or when `stop` is raised (`false`).
    pub async fn wait_until_released(&self, stop: &Stop) -> bool {
        let mut rx = self.reason.subscribe();
        loop {
            if stop.reason().is_some() {
                return false;
            }
            if rx.borrow_and_update().is_none() {
                return true;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return true },
                _ = stop.raised() => return false,
            }
        }
    }
}

/// Refuses limits that name a status variable the server lacks: a
/// misspelt variable would never throttle. Also run by the dry run.
pub async fn check_limits(conn: &mut Conn, limits: &Limits) -> Result<()> {
    if limits.max_load.is_empty() && limits.critical_load.is_empty() {
        return Ok(());
    }
    let status = global_status(conn).await?;
    match unknown_variable(limits, &status) {
        Some(unknown) => Err(Error::Usage(format!(
            "--max-load/--critical-load: the server has no status variable {unknown} (see SHOW GLOBAL STATUS)"
        ))),
        None => Ok(()),
    }
}

/// The background task that checks the reasons; it stops when dropped.
pub struct Throttler {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Throttler {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Throttler {
    /// Starts checking `config`'s reasons into `throttle` (whose limits it
    /// sets from `config`); a crossed critical load raises `stop`. The task
    /// runs even when nothing is watched yet: a live command may add a
    /// limit later.
    pub async fn start(
        config: ThrottleConfig,
        connect: &ConnectConfig,
        throttle: Arc<Throttle>,
        stop: Stop,
    ) -> Result<Throttler> {
        throttle.set_limits(|limits| {
            *limits = Limits {
                max_load: config.max_load.clone(),
                critical_load: config.critical_load.clone(),
                max_lag: config.max_lag,
            }
        });
        let mut watcher = Watcher {
            config,
            connect: connect.clone(),
            server: None,
            replicas: Vec::new(),
            latencies: std::collections::VecDeque::with_capacity(LATENCY_WINDOW),
        };
        if watcher.config.watches_the_server() {
            let limits = throttle.limits();
            check_limits(watcher.server().await?, &limits).await?;
        }
        if watcher.config.min_free_disk.is_some()
            && crate::inspect::disk::free_bytes(watcher.server().await?)
                .await
                .is_none()
        {
            tracing::warn!(
                "--min-free-disk cannot be watched: the server does not show its free disk space \
                 (MariaDB: INSTALL SONAME 'disks')"
            );
        }
        if watcher.config.watches_replicas() {
            for replica in &watcher.config.replicas {
                watcher.replicas.push(WatchedReplica {
                    target: replica.target(),
                    conn: Some(crate::server::connect_session(replica).await?),
                    config: replica.clone(),
                });
            }
        }
        // The first look happens before the copy starts: a server already
        // past a limit holds back (or stops) the first chunk.
        if !watcher.tick(&throttle, &stop).await {
            return Ok(Throttler { task: None });
        }
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(watcher.config.interval) => {}
                    _ = stop.raised() => return,
                }
                if !watcher.tick(&throttle, &stop).await {
                    return;
                }
            }
        });
        Ok(Throttler { task: Some(task) })
    }
}

/// Looks over which the canary query's p95 latency is taken.
pub const LATENCY_WINDOW: usize = 10;

/// A replica whose lag is watched, on a connection opened again at the
/// next look when lost (a replica restarted meanwhile).
struct WatchedReplica {
    target: String,
    config: ConnectConfig,
    conn: Option<Conn>,
}

/// The throttler's connections and what it watches.
struct Watcher {
    config: ThrottleConfig,
    connect: ConnectConfig,
    /// Opened when a server-side reason is first watched.
    server: Option<Conn>,
    replicas: Vec<WatchedReplica>,
    /// The canary query's latest latencies, oldest first.
    latencies: std::collections::VecDeque<Duration>,
}

impl Watcher {
    async fn server(&mut self) -> Result<&mut Conn> {
        if self.server.is_none() {
            self.server = Some(crate::server::connect_session(&self.connect).await?);
        }
        // Just set when it was missing.
        self.server
            .as_mut()
            .ok_or_else(|| Error::Usage("no connection".into()))
    }

    /// One look at every reason, recorded in `throttle`; `false` once a
    /// critical load has stopped the run.
    async fn tick(&mut self, throttle: &Throttle, stop: &Stop) -> bool {
        let reason = match self.check(throttle).await {
            Ok(Check::Critical(first)) => {
                tokio::time::sleep(self.config.critical_load_interval).await;
                match self.check(throttle).await {
                    Ok(Check::Critical(again)) => {
                        tracing::error!(first = %first, again = %again, "critical load: stopping the migration");
                        throttle.critical.store(true, Ordering::Relaxed);
                        stop.raise(&format!("critical load {again}"));
                        return false;
                    }
                    Ok(Check::Throttle(reason)) => reason,
                    Err(e) => Some(format!("the throttle check failed ({e})")),
                }
            }
            Ok(Check::Throttle(reason)) => reason,
            // Not knowing the load is a reason to hold back; the
            // connection is opened again on the next look.
            Err(e) => {
                self.server = None;
                Some(format!("the throttle check failed ({e})"))
            }
        };
        throttle.set(reason);
        true
    }

    async fn check(&mut self, throttle: &Throttle) -> Result<Check> {
        let limits = throttle.limits();
        if !limits.max_load.is_empty() || !limits.critical_load.is_empty() {
            let status = global_status(self.server().await?).await?;
            // A limit set by a live command is checked here, not at start.
            if let Some(unknown) = unknown_variable(&limits, &status) {
                return Ok(Check::Throttle(Some(format!(
                    "max-load/critical-load name {unknown}, which is not a status variable of the server"
                ))));
            }
            if let Some(crossed) = crossed(&limits.critical_load, &status) {
                return Ok(Check::Critical(crossed));
            }
            if let Some(crossed) = crossed(&limits.max_load, &status) {
                return Ok(Check::Throttle(Some(format!("max-load {crossed}"))));
            }
        }
        if let Some(query) = self.config.throttle_query.clone() {
            let value: Option<f64> = self
                .server()
                .await?
                .query_first(&query)
                .await
                .context(|| format!("running the throttle query ({query})"))?;
            if let Some(v) = value.filter(|v| *v > 0.0) {
                return Ok(Check::Throttle(Some(format!(
                    "throttle-query returned {v}"
                ))));
            }
        }
        if let Some(min) = self.config.min_free_disk {
            if let Some(free) = crate::inspect::disk::free_bytes(self.server().await?).await {
                if free < min {
                    return Ok(Check::Throttle(Some(format!(
                        "the data directory's disk has {} MB free (min-free-disk {} MB)",
                        free / 1_048_576,
                        min / 1_048_576
                    ))));
                }
            }
        }
        if let (Some(limit), Some(query)) = (
            self.config.max_query_latency,
            self.config.latency_query.clone(),
        ) {
            let started = std::time::Instant::now();
            self.server()
                .await?
                .query_drop(&query)
                .await
                .context(|| format!("running the latency canary ({query})"))?;
            if self.latencies.len() == LATENCY_WINDOW {
                self.latencies.pop_front();
            }
            self.latencies.push_back(started.elapsed());
            let p95 = p95(&self.latencies);
            if p95 > limit {
                return Ok(Check::Throttle(Some(format!(
                    "query latency p95 {} ms over the last {} looks (max-query-latency-millis {})",
                    p95.as_millis(),
                    self.latencies.len(),
                    limit.as_millis()
                ))));
            }
        }
        if let Some(changelog) = &self.config.changelog {
            let mut lags = Vec::with_capacity(self.replicas.len());
            let mut lagging = None;
            for replica in self.replicas.iter_mut() {
                let lag = replica.lag(changelog).await;
                let target = &replica.target;
                lags.push(ReplicaLag {
                    replica: target.clone(),
                    lag_s: lag.as_ref().ok().map(Duration::as_secs_f64),
                });
                let reason = match lag {
                    Ok(lag) if lag > limits.max_lag => Some(format!(
                        "replica {target} lags {:.1} s (max-lag-millis {})",
                        lag.as_secs_f64(),
                        limits.max_lag.as_millis()
                    )),
                    Ok(_) => None,
                    Err(why) => Some(why),
                };
                lagging = lagging.or(reason);
            }
            *locked(&throttle.replica_lags) = lags;
            if lagging.is_some() {
                return Ok(Check::Throttle(lagging));
            }
        }
        if let Some(flag) = self.config.flag_file.as_ref().filter(|f| f.exists()) {
            return Ok(Check::Throttle(Some(format!(
                "throttle-flag-file {} exists",
                flag.display()
            ))));
        }
        Ok(Check::Throttle(None))
    }
}

enum Check {
    Critical(String),
    Throttle(Option<String>),
}

impl WatchedReplica {
    /// The age of the replica's copy of the heartbeat, or why it counts as
    /// lagging without one: missing (the changelog has not reached it),
    /// unreadable, or the replica unreachable.
    async fn lag(&mut self, changelog: &str) -> std::result::Result<Duration, String> {
        let target = &self.target;
        let conn = match &mut self.conn {
            Some(conn) => conn,
            slot @ None => slot.insert(
                crate::server::connect_session(&self.config)
                    .await
                    .map_err(|e| format!("replica {target} cannot be reached ({e})"))?,
            ),
        };
        let read: std::result::Result<Option<String>, _> = conn
            .exec_first(
                format!("SELECT value FROM {changelog} WHERE hint = ?"),
                (crate::shadow::hint::HEARTBEAT,),
            )
            .await;
        let written_ms: u128 = match read {
            Ok(Some(value)) => value
                .parse()
                .map_err(|_| format!("replica {target}: the heartbeat reads {value}"))?,
            Ok(None) => return Err(format!("replica {target} has no heartbeat yet")),
            Err(e) => {
                if crate::error::is_connection_lost(&e) {
                    self.conn = None;
                }
                return Err(format!(
                    "replica {target}: the heartbeat cannot be read ({e})"
                ));
            }
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Ok(Duration::from_millis(
            now_ms.saturating_sub(written_ms) as u64
        ))
    }
}

/// The 95th percentile of `samples` (nearest rank).
fn p95(samples: &std::collections::VecDeque<Duration>) -> Duration {
    let mut sorted: Vec<Duration> = samples.iter().copied().collect();
    sorted.sort();
    let rank = (sorted.len() * 95).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// The first variable of `limits` that `status` lacks.
fn unknown_variable(limits: &Limits, status: &[(String, String)]) -> Option<String> {
    limits
        .max_load
        .iter()
        .chain(&limits.critical_load)
        .find(|limit| {
            !status
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(&limit.variable))
        })
        .map(|limit| limit.variable.clone())
}

/// `SHOW GLOBAL STATUS` as name and value pairs.
async fn global_status(conn: &mut Conn) -> Result<Vec<(String, String)>> {
    let rows: Vec<Row> = conn
        .query("SHOW GLOBAL STATUS")
        .await
        .context(|| "reading the server's status for the throttle".to_string())?;
    Ok(rows
        .into_iter()
        .filter_map(|row| row.get_opt(0)?.ok().zip(row.get_opt(1)?.ok()))
        .collect())
}

/// The first limit `status` crosses, as `Variable=value (>= threshold)`.
fn crossed(limits: &[LoadLimit], status: &[(String, String)]) -> Option<String> {
    limits.iter().find_map(|limit| {
        let value: u64 = status
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&limit.variable))?
            .1
            .parse()
            .ok()?;
        (value >= limit.threshold)
            .then(|| format!("{}={value} (>= {})", limit.variable, limit.threshold))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_limits_read_like_gh_osts() {
        assert_eq!(
            parse_load_limits("Threads_running=25, Threads_connected=500").unwrap(),
            vec![
                LoadLimit {
                    variable: "Threads_running".into(),
                    threshold: 25
                },
                LoadLimit {
                    variable: "Threads_connected".into(),
                    threshold: 500
                }
            ]
        );
        assert!(parse_load_limits("Threads_running").is_err());
        assert!(parse_load_limits("Threads_running=x").is_err());
        assert!(parse_load_limits("a;b=1").is_err());
        assert_eq!(parse_load_limits("").unwrap(), vec![]);
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let ms = |v: &[u64]| v.iter().map(|m| Duration::from_millis(*m)).collect();
        assert_eq!(p95(&ms(&[5])), Duration::from_millis(5));
        assert_eq!(
            p95(&ms(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 100])),
            Duration::from_millis(100),
            "of ten looks, the slowest counts"
        );
        let mut twenty: Vec<u64> = (1..=19).collect();
        twenty.push(500);
        assert_eq!(p95(&ms(&twenty)), Duration::from_millis(19));
        assert_eq!(p95(&ms(&[])), Duration::ZERO);
    }

    #[test]
    fn a_limit_is_crossed_at_its_threshold() {
        let limits = parse_load_limits("Threads_running=5").unwrap();
        let status = |v: &str| vec![("THREADS_RUNNING".to_string(), v.to_string())];
        assert_eq!(crossed(&limits, &status("4")), None);
        assert_eq!(
            crossed(&limits, &status("5")).as_deref(),
            Some("Threads_running=5 (>= 5)")
        );
        assert_eq!(
            crossed(&limits, &[]),
            None,
            "an unknown variable never throttles"
        );
    }

    #[tokio::test]
    async fn waiting_ends_on_release_or_stop() {
        let throttle = Arc::new(Throttle::default());
        let stop = Stop::default();
        throttle.set(Some("test".into()));
        let waiter = {
            let (t, s) = (Arc::clone(&throttle), stop.clone());
            tokio::spawn(async move { t.wait_until_released(&s).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        throttle.set(None);
        assert!(waiter.await.unwrap());
        throttle.set(Some("again".into()));
        stop.raise("SIGTERM");
        assert!(!throttle.wait_until_released(&stop).await);
    }
}
