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
    /// Throttle while a replica's copy of the heartbeat is older than this.
    pub max_lag: Duration,
    /// The changelog table holding the heartbeat, once the run has one.
    pub changelog: Option<String>,
    /// How often the reasons are checked.
    pub interval: Duration,
}

impl ThrottleConfig {
    fn watches_the_server(&self) -> bool {
        !self.max_load.is_empty() || !self.critical_load.is_empty() || self.throttle_query.is_some()
    }

    fn watches_anything(&self) -> bool {
        self.watches_the_server() || self.flag_file.is_some() || self.watches_replicas()
    }

    fn watches_replicas(&self) -> bool {
        !self.replicas.is_empty() && self.changelog.is_some()
    }
}

/// The throttle's state, shared by the copy, the applier and the status.
#[derive(Debug)]
pub struct Throttle {
    reason: watch::Sender<Option<String>>,
    critical: AtomicBool,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            reason: watch::channel(None).0,
            critical: AtomicBool::new(false),
        }
    }
}

impl Throttle {
    /// Why writes are held back now, if they are.
    pub fn reason(&self) -> Option<String> {
        self.reason.borrow().clone()
    }

    /// True once a critical load stopped the migration.
    pub fn critical_load_crossed(&self) -> bool {
        self.critical.load(Ordering::Relaxed)
    }

    fn set(&self, reason: Option<String>) {
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
    /// Starts checking `config`'s reasons into `throttle`; a crossed
    /// critical load raises `stop`. Nothing runs when nothing is watched.
    pub async fn start(
        config: ThrottleConfig,
        connect: &ConnectConfig,
        throttle: Arc<Throttle>,
        stop: Stop,
    ) -> Result<Throttler> {
        if !config.watches_anything() {
            return Ok(Throttler { task: None });
        }
        let mut conn = if config.watches_the_server() {
            Some(crate::server::connect_session(connect).await?)
        } else {
            None
        };
        if let Some(conn) = conn.as_mut() {
            // A misspelt variable would never throttle: refuse it now.
            let status = global_status(conn).await?;
            for limit in config.max_load.iter().chain(&config.critical_load) {
                if !status
                    .iter()
                    .any(|(name, _)| name.eq_ignore_ascii_case(&limit.variable))
                {
                    return Err(Error::Usage(format!(
                        "--max-load/--critical-load: the server has no status variable {} (see SHOW GLOBAL STATUS)",
                        limit.variable
                    )));
                }
            }
        }
        // The first look happens before the copy starts: a server already
        // past a limit holds back (or stops) the first chunk.
        let mut replicas = Vec::new();
        if config.watches_replicas() {
            for replica in &config.replicas {
                replicas.push((
                    replica.target(),
                    crate::server::connect_session(replica).await?,
                ));
            }
        }
        if !tick(&config, conn.as_mut(), &mut replicas, &throttle, &stop).await {
            return Ok(Throttler { task: None });
        }
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(config.interval) => {}
                    _ = stop.raised() => return,
                }
                if !tick(&config, conn.as_mut(), &mut replicas, &throttle, &stop).await {
                    return;
                }
            }
        });
        Ok(Throttler { task: Some(task) })
    }
}

/// One look at every reason, recorded in `throttle`; `false` once a
/// critical load has stopped the run.
async fn tick(
    config: &ThrottleConfig,
    mut conn: Option<&mut Conn>,
    replicas: &mut [(String, Conn)],
    throttle: &Throttle,
    stop: &Stop,
) -> bool {
    let reason = match check(config, conn.as_deref_mut(), replicas).await {
        Ok(Check::Critical(first)) => {
            tokio::time::sleep(config.critical_load_interval).await;
            match check(config, conn, replicas).await {
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
        // Not knowing the load is a reason to hold back.
        Err(e) => Some(format!("the throttle check failed ({e})")),
    };
    throttle.set(reason);
    true
}

enum Check {
    Critical(String),
    Throttle(Option<String>),
}

async fn check(
    config: &ThrottleConfig,
    conn: Option<&mut Conn>,
    replicas: &mut [(String, Conn)],
) -> Result<Check> {
    if let Some(conn) = conn {
        if !config.max_load.is_empty() || !config.critical_load.is_empty() {
            let status = global_status(conn).await?;
            if let Some(crossed) = crossed(&config.critical_load, &status) {
                return Ok(Check::Critical(crossed));
            }
            if let Some(crossed) = crossed(&config.max_load, &status) {
                return Ok(Check::Throttle(Some(format!("max-load {crossed}"))));
            }
        }
        if let Some(query) = &config.throttle_query {
            let value: Option<f64> = conn
                .query_first(query)
                .await
                .context(|| format!("running the throttle query ({query})"))?;
            if let Some(v) = value.filter(|v| *v > 0.0) {
                return Ok(Check::Throttle(Some(format!(
                    "throttle-query returned {v}"
                ))));
            }
        }
    }
    if let Some(changelog) = &config.changelog {
        for (target, replica) in replicas.iter_mut() {
            if let Some(reason) = replica_lag(replica, target, changelog, config.max_lag).await {
                return Ok(Check::Throttle(Some(reason)));
            }
        }
    }
    if let Some(flag) = config.flag_file.as_ref().filter(|f| f.exists()) {
        return Ok(Check::Throttle(Some(format!(
            "throttle-flag-file {} exists",
            flag.display()
        ))));
    }
    Ok(Check::Throttle(None))
}

/// Why `replica` counts as lagging: its copy of the heartbeat is older than
/// `max_lag`, missing (the changelog has not reached it), or unreadable.
async fn replica_lag(
    replica: &mut Conn,
    target: &str,
    changelog: &str,
    max_lag: Duration,
) -> Option<String> {
    let read: std::result::Result<Option<String>, _> = replica
        .exec_first(
            format!("SELECT value FROM {changelog} WHERE hint = ?"),
            (crate::shadow::hint::HEARTBEAT,),
        )
        .await;
    let written_ms: u128 = match read {
        Ok(Some(value)) => value.parse().ok()?,
        Ok(None) => return Some(format!("replica {target} has no heartbeat yet")),
        Err(e) => {
            return Some(format!(
                "replica {target}: the heartbeat cannot be read ({e})"
            ))
        }
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let lag = Duration::from_millis(now_ms.saturating_sub(written_ms) as u64);
    (lag > max_lag).then(|| {
        format!(
            "replica {target} lags {:.1} s (max-lag-millis {})",
            lag.as_secs_f64(),
            max_lag.as_millis()
        )
    })
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
