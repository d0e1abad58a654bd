//! Progress while a migration runs: an indicatif bar on a terminal,
//! otherwise one status line every few seconds (text or JSON), and the
//! final summary.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::apply::{self, ApplyStats};
use crate::checksum::ChecksumProgress;
use crate::control::Postpone;
use crate::copy::{CopyStats, PaceControl};
use crate::tail::TailShared;
use crate::throttle::{format_load_limits, ReplicaLag, Throttle};

/// How the tool reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// Human-readable text (a progress bar on a terminal).
    #[default]
    Text,
    /// One JSON object per line on stdout.
    Json,
}

/// Where the numbers come from; filled in as stages start.
#[derive(Default)]
pub struct Sources {
    /// Stage name.
    pub stage: Mutex<&'static str>,
    /// Estimated rows of the original.
    pub rows_estimate: std::sync::atomic::AtomicU64,
    /// Copy counters.
    pub copy: Arc<CopyStats>,
    /// Checksum counters.
    pub checksum: Arc<ChecksumProgress>,
    /// Apply counters.
    pub apply: Arc<ApplyStats>,
    /// Tail state, once the tail runs.
    pub tail: Mutex<Option<Arc<TailShared>>>,
    /// What the operator should know now (why the last cut-over attempt
    /// failed, say); cleared when it no longer holds.
    pub note: Mutex<Option<String>>,
    /// Whether, and why, writes are held back.
    pub throttle: Arc<Throttle>,
    /// The copy's live pace.
    pub pace: Arc<PaceControl>,
    /// Whether, and why, the cut-over waits.
    pub postpone: Arc<Postpone>,
}

/// One status report.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Stage name.
    pub stage: String,
    /// Seconds since start.
    pub elapsed_s: f64,
    /// Rows copied so far.
    pub rows_copied: u64,
    /// Estimated rows of the original.
    pub rows_estimate: u64,
    /// Copy speed since start.
    pub rows_per_s: f64,
    /// Estimated seconds left for the copy.
    pub eta_s: Option<f64>,
    /// Row changes read from the binlog.
    pub binlog_rows: u64,
    /// Row changes left to the copy: their rows were not copied yet, and
    /// the chunk that copies them reads them as changed.
    pub binlog_rows_left_to_copy: u64,
    /// Changed keys applied to the new table.
    pub keys_applied: u64,
    /// Changed keys waiting to be applied.
    pub backlog: u64,
    /// Most keys waiting at once so far.
    pub backlog_peak: u64,
    /// True while the buffer is full and the tail has stopped reading the
    /// binlog: the backlog is then also in the binlog, and the heartbeat's
    /// age says how far behind the tail is.
    pub buffer_full: bool,
    /// Seconds since the tail last read the heartbeat.
    pub heartbeat_age_s: Option<f64>,
    /// What the operator should know now, if anything.
    pub note: Option<String>,
    /// Why the copy and the applier are held back, when they are.
    pub throttled: Option<String>,
    /// Why the cut-over waits, while it waits.
    pub postponed: Option<String>,
    /// Seconds the cut-over has waited so far, while it waits.
    pub postponed_s: Option<f64>,
    /// Chunks copied again because the new table refused one of their
    /// rows for a moment.
    pub copy_chunks_retried: u64,
    /// Rows of the original the checksum has compared so far (every round).
    pub checksum_rows_checked: u64,
    /// Checksum chunks found differing so far (every round).
    pub checksum_chunks_differing: u64,
    /// Differing checksum chunks copied again so far.
    pub checksum_chunks_copied_again: u64,
    /// Rows asked of the last copy chunk.
    pub chunk_size: u64,
    /// True while the chunk size adapts to the chunk time.
    pub chunk_size_adaptive: bool,
    /// After each chunk, the copy sleeps this many times its time.
    pub nice_ratio: f64,
    /// Replica lag above which the run is throttled.
    pub max_lag_millis: u64,
    /// `--max-load` as in effect.
    pub max_load: String,
    /// `--critical-load` as in effect.
    pub critical_load: String,
    /// The watched replicas' lag.
    pub replica_lags: Vec<ReplicaLag>,
}

impl Sources {
    /// Sets the stage name.
    pub fn set_stage(&self, stage: &'static str) {
        *self.stage.lock().unwrap_or_else(|e| e.into_inner()) = stage;
    }

    /// The stage name.
    pub fn stage(&self) -> &'static str {
        *self.stage.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets or clears the note shown with the status.
    pub fn set_note(&self, note: Option<String>) {
        *self.note.lock().unwrap_or_else(|e| e.into_inner()) = note;
    }

    /// A snapshot of the counters.
    pub fn status(&self, started: Instant) -> Status {
        let elapsed = started.elapsed().as_secs_f64();
        let rows_copied = self.copy.rows_copied.load(Ordering::Relaxed);
        let rows_estimate = self.rows_estimate.load(Ordering::Relaxed);
        let rows_per_s = if elapsed > 0.0 {
            rows_copied as f64 / elapsed
        } else {
            0.0
        };
        let eta_s = (rows_per_s > 0.0 && rows_estimate > rows_copied)
            .then(|| (rows_estimate - rows_copied) as f64 / rows_per_s);
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (
            binlog_rows,
            binlog_rows_left_to_copy,
            backlog,
            backlog_peak,
            buffer_full,
            heartbeat_age_s,
        ) = match &tail {
            Some(t) => (
                t.rows.load(Ordering::Relaxed),
                t.skipped.load(Ordering::Relaxed),
                apply::lock(&t.buffer).len() as u64,
                t.peak_backlog.load(Ordering::Relaxed),
                t.waiting_for_room.load(Ordering::Relaxed),
                t.last_heartbeat
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .map(|at| at.elapsed().as_secs_f64()),
            ),
            None => (0, 0, 0, 0, false, None),
        };
        let (chunk_size, chunk_size_adaptive) = self.pace.chunk_size();
        let limits = self.throttle.limits();
        Status {
            stage: self
                .stage
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .to_string(),
            elapsed_s: elapsed,
            rows_copied,
            rows_estimate,
            rows_per_s,
            eta_s,
            binlog_rows,
            binlog_rows_left_to_copy,
            keys_applied: self.apply.keys_applied.load(Ordering::Relaxed),
            backlog,
            backlog_peak,
            buffer_full,
            heartbeat_age_s,
            note: self.note.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            throttled: self.throttle.reason(),
            postponed: self.postpone.postponed_for().and(self.postpone.reason()),
            postponed_s: self.postpone.postponed_for().map(|d| d.as_secs_f64()),
            copy_chunks_retried: self.copy.chunks_retried.load(Ordering::Relaxed),
            checksum_rows_checked: self.checksum.rows_checked.load(Ordering::Relaxed),
            checksum_chunks_differing: self.checksum.chunks_differing.load(Ordering::Relaxed),
            checksum_chunks_copied_again: self.checksum.chunks_copied_again.load(Ordering::Relaxed),
            chunk_size,
            chunk_size_adaptive,
            nice_ratio: self.pace.nice_ratio(),
            max_lag_millis: limits.max_lag.as_millis() as u64,
            max_load: format_load_limits(&limits.max_load),
            critical_load: format_load_limits(&limits.critical_load),
            replica_lags: self.throttle.replica_lags(),
        }
    }
}

/// A running reporter; stops when dropped or finished.
pub struct Reporter {
    task: tokio::task::JoinHandle<()>,
}

impl Reporter {
    /// Starts reporting `sources` in the given mode.
    pub fn start(sources: Arc<Sources>, output: Output, interval: Duration) -> Reporter {
        let started = Instant::now();
        let bar = (output == Output::Text && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(sources.rows_estimate.load(Ordering::Relaxed).max(1));
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rows ({per_sec}, ETA {eta}) {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            crate::output::set_active_bar(Some(bar.clone()));
            bar
        });
        let task = tokio::spawn(async move {
            let tick = if bar.is_some() {
                Duration::from_millis(200)
            } else {
                interval
            };
            loop {
                tokio::time::sleep(tick).await;
                let s = sources.status(started);
                match (&bar, output) {
                    (Some(bar), _) => {
                        bar.set_length(s.rows_estimate.max(s.rows_copied).max(1));
                        bar.set_position(s.rows_copied);
                        let note = notes(&s, " · ");
                        bar.set_message(format!(
                            "{} · binlog rows {} · backlog {}{}{note}",
                            s.stage,
                            s.binlog_rows,
                            s.backlog,
                            backlog_behind(&s)
                        ));
                    }
                    (None, Output::Json) => {
                        let line =
                            crate::output::json_line("status", serde_json::json!({ "status": s }));
                        println!("{line}");
                    }
                    (None, Output::Text) => eprintln!("{}", text_line(&s)),
                }
            }
        });
        Reporter { task }
    }

    /// Stops reporting.
    pub fn stop(self) {
        self.task.abort();
        crate::output::set_active_bar(None);
    }
}

/// One human-readable status line.
pub fn text_line(s: &Status) -> String {
    let eta = s.eta_s.map_or("-".to_string(), |e| format!("{e:.0}s"));
    let note = notes(s, "; ");
    let percent = if s.rows_estimate > 0 {
        (s.rows_copied as f64 * 100.0 / s.rows_estimate as f64).min(100.0)
    } else {
        0.0
    };
    format!(
        "[{:>7.1}s] {:<9} copied {}/{} rows ({percent:.0}%, {:.0} rows/s, ETA {eta}); binlog rows {}, applied keys {}, backlog {}{}{note}",
        s.elapsed_s, s.stage, s.rows_copied, s.rows_estimate, s.rows_per_s, s.binlog_rows, s.keys_applied, s.backlog,
        backlog_behind(s)
    )
}

/// The status in Prometheus' text format (version 0.0.4), labelled with
/// the table.
pub fn prometheus(s: &Status, table: &str) -> String {
    fn label(value: &str) -> String {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    }
    let table = label(table);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, f64)>| {
        out.push_str(&format!(
            "# HELP shadowcut_{name} {help}\n# TYPE shadowcut_{name} {kind}\n"
        ));
        for (labels, value) in samples {
            out.push_str(&format!(
                "shadowcut_{name}{{table=\"{table}\"{labels}}} {value}\n"
            ));
        }
    };
    let one = |v: f64| vec![(String::new(), v)];
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    metric(
        "elapsed_seconds",
        "gauge",
        "Seconds since the migration started.",
        one(s.elapsed_s),
    );
    metric(
        "stage",
        "gauge",
        "The stage the migration is in (1 for the current one).",
        vec![(format!(",stage=\"{}\"", label(&s.stage)), 1.0)],
    );
    metric(
        "rows_copied_total",
        "counter",
        "Rows the copy inserted into the new table.",
        one(s.rows_copied as f64),
    );
    metric(
        "copy_chunks_retried_total",
        "counter",
        "Copy chunks copied again because the new table refused one of their rows for a moment.",
        one(s.copy_chunks_retried as f64),
    );
    metric(
        "checksum_rows_checked_total",
        "counter",
        "Rows of the original the checksum before the swap has compared.",
        one(s.checksum_rows_checked as f64),
    );
    metric(
        "checksum_chunks_differing_total",
        "counter",
        "Checksum chunks found differing between the new table and the original.",
        one(s.checksum_chunks_differing as f64),
    );
    metric(
        "rows_estimate",
        "gauge",
        "The server's estimate of the table's rows.",
        one(s.rows_estimate as f64),
    );
    metric(
        "rows_per_second",
        "gauge",
        "Rows copied per second since the start.",
        one(s.rows_per_s),
    );
    if let Some(eta) = s.eta_s {
        metric(
            "eta_seconds",
            "gauge",
            "Estimated seconds until the copy ends.",
            one(eta),
        );
    }
    metric(
        "binlog_rows_total",
        "counter",
        "Row changes of the table read from the binlog.",
        one(s.binlog_rows as f64),
    );
    metric(
        "keys_applied_total",
        "counter",
        "Changed keys applied to the new table.",
        one(s.keys_applied as f64),
    );
    metric(
        "backlog_keys",
        "gauge",
        "Changed keys waiting to be applied.",
        one(s.backlog as f64),
    );
    metric(
        "backlog_peak_keys",
        "gauge",
        "Most changed keys waiting at once so far.",
        one(s.backlog_peak as f64),
    );
    metric(
        "buffer_full",
        "gauge",
        "1 while the binlog read waits for room in the buffer.",
        one(flag(s.buffer_full)),
    );
    if let Some(age) = s.heartbeat_age_s {
        metric(
            "heartbeat_age_seconds",
            "gauge",
            "Seconds since the tail read the heartbeat.",
            one(age),
        );
    }
    metric(
        "throttled",
        "gauge",
        "1 while the copy and the applier are held back.",
        one(flag(s.throttled.is_some())),
    );
    metric(
        "postponed",
        "gauge",
        "1 while the cut-over is postponed.",
        one(flag(s.postponed.is_some())),
    );
    metric(
        "postponed_seconds",
        "gauge",
        "Seconds the cut-over has waited so far.",
        one(s.postponed_s.unwrap_or(0.0)),
    );
    metric(
        "chunk_size_rows",
        "gauge",
        "Rows asked of the last copy chunk.",
        one(s.chunk_size as f64),
    );
    metric(
        "nice_ratio",
        "gauge",
        "Sleep after each chunk, as a multiple of its time.",
        one(s.nice_ratio),
    );
    metric(
        "max_lag_seconds",
        "gauge",
        "Replica lag above which the run is throttled.",
        one(s.max_lag_millis as f64 / 1000.0),
    );
    let lags: Vec<(String, f64)> = s
        .replica_lags
        .iter()
        .filter_map(|l| Some((format!(",replica=\"{}\"", label(&l.replica)), l.lag_s?)))
        .collect();
    if !lags.is_empty() {
        metric(
            "replica_lag_seconds",
            "gauge",
            "Age of the heartbeat on each watched replica.",
            lags,
        );
    }
    out
}

/// The throttle's reason and the note, each after `separator`.
fn notes(s: &Status, separator: &str) -> String {
    let lags = (!s.replica_lags.is_empty()).then(|| {
        let lags: Vec<String> = s
            .replica_lags
            .iter()
            .map(|l| match l.lag_s {
                Some(lag) => format!("{} {lag:.1} s", l.replica),
                None => format!("{} unknown", l.replica),
            })
            .collect();
        format!("replica lag: {}", lags.join(", "))
    });
    [
        s.throttled.as_ref().map(|t| format!("throttled: {t}")),
        s.postponed.as_ref().map(|p| {
            format!(
                "cut-over postponed {:.0} s: {p}",
                s.postponed_s.unwrap_or(0.0)
            )
        }),
        lags,
        (s.copy_chunks_retried > 0).then(|| {
            format!(
                "copy chunks retried: {} (the new table refused a row for a moment)",
                s.copy_chunks_retried
            )
        }),
        (s.stage == "checksum").then(|| {
            format!(
                "checksum: {} rows compared, {} chunk(s) differed, {} copied again",
                s.checksum_rows_checked,
                s.checksum_chunks_differing,
                s.checksum_chunks_copied_again
            )
        }),
        s.note.clone(),
    ]
    .into_iter()
    .flatten()
    .map(|n| format!("{separator}{n}"))
    .collect()
}

/// What the backlog leaves in the binlog while the buffer is full.
/// Otherwise, how far behind the tail reads when it lags (the heartbeat is
/// written every half second).
fn backlog_behind(s: &Status) -> String {
    if !s.buffer_full {
        return match s.heartbeat_age_s {
            Some(age) if age >= 2.0 => format!(" (the tail reads {age:.0} s behind)"),
            _ => String::new(),
        };
    }
    match s.heartbeat_age_s {
        Some(age) => format!(" (buffer full: binlog reading paused, {age:.0} s behind)"),
        None => " (buffer full: binlog reading paused)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_computes_rate_and_eta() {
        let sources = Sources::default();
        sources.rows_estimate.store(1000, Ordering::Relaxed);
        sources.copy.rows_copied.store(500, Ordering::Relaxed);
        sources.set_stage("copy");
        let s = sources.status(Instant::now() - Duration::from_secs(5));
        assert!((s.rows_per_s - 100.0).abs() < 5.0);
        assert!(s.eta_s.unwrap() > 4.0);
        assert!(text_line(&s).contains("copy"));
        assert!(
            text_line(&s).contains("copied 500/1000 rows (50%, "),
            "{}",
            text_line(&s)
        );
        let metrics = prometheus(&s, "`db`.\"t\"");
        assert!(
            metrics.contains("shadowcut_rows_copied_total{table=\"`db`.\\\"t\\\"\"} 500\n"),
            "{metrics}"
        );
        assert!(metrics.contains("shadowcut_stage{table=\"`db`.\\\"t\\\"\",stage=\"copy\"} 1\n"));
        assert!(metrics.contains("# TYPE shadowcut_throttled gauge\n"));
        assert!(
            metrics.contains("shadowcut_copy_chunks_retried_total{table=\"`db`.\\\"t\\\"\"} 0\n")
        );
        sources.copy.chunks_retried.store(2, Ordering::Relaxed);
        assert!(text_line(&sources.status(Instant::now()))
            .ends_with("; copy chunks retried: 2 (the new table refused a row for a moment)"));
        sources.set_note(Some("cut-over attempt 1 abandoned".into()));
        assert!(
            text_line(&sources.status(Instant::now())).ends_with("; cut-over attempt 1 abandoned")
        );
    }

    #[test]
    fn the_checksum_shows_its_progress_while_it_runs() {
        let sources = Sources::default();
        sources
            .checksum
            .rows_checked
            .store(30_000, Ordering::Relaxed);
        sources
            .checksum
            .chunks_differing
            .store(1, Ordering::Relaxed);
        sources.set_stage("copy");
        assert!(!text_line(&sources.status(Instant::now())).contains("checksum:"));
        sources.set_stage("checksum");
        let s = sources.status(Instant::now());
        assert!(
            text_line(&s)
                .ends_with("; checksum: 30000 rows compared, 1 chunk(s) differed, 0 copied again"),
            "{}",
            text_line(&s)
        );
        let metrics = prometheus(&s, "d.t");
        assert!(
            metrics.contains("shadowcut_checksum_rows_checked_total{table=\"d.t\"} 30000\n"),
            "{metrics}"
        );
        assert!(
            metrics.contains("shadowcut_checksum_chunks_differing_total{table=\"d.t\"} 1\n"),
            "{metrics}"
        );
    }
}
