//! Hooks: executables in `--hooks-path` that ops scripts put there, run at
//! each step of a migration with its facts in `SHADOWCUT_*` environment
//! variables. A hook for a step is every executable file whose name starts
//! with the step's name (`shadowcut-on-startup`, `shadowcut-on-startup-2`,
//! ...), run one after another in name order.
//!
//! A failing `before-cut-over` hook postpones the swap (it is run again a
//! little later; `unpostpone` overrides it); every other failure is logged
//! and the migration goes on. A hook that runs longer than its timeout is
//! killed and counts as failed. The password is never in a hook's
//! environment: `MYSQL_PWD` is removed from what it inherits.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::progress::{Sources, Status};

/// The steps a hook can be named for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The run starts, before anything is checked.
    Startup,
    /// Every check passed; nothing was changed yet (also in a dry run).
    Validated,
    /// The new table and the changelog exist; the copy starts.
    BeforeRowCopy,
    /// Every row is copied.
    RowCopyComplete,
    /// The cut-over begins to wait (flag file, worse plan, failed hook).
    BeginPostponed,
    /// The swap comes next; a failure postpones it.
    BeforeCutOver,
    /// The tables are swapped.
    Success,
    /// The run failed or was stopped; the original is untouched.
    Failure,
    /// Every `--hooks-status-interval` while the migration runs.
    Status,
}

impl Step {
    /// Every step, in the order a run reaches them.
    pub const ALL: [Step; 9] = [
        Step::Startup,
        Step::Validated,
        Step::BeforeRowCopy,
        Step::RowCopyComplete,
        Step::BeginPostponed,
        Step::BeforeCutOver,
        Step::Success,
        Step::Failure,
        Step::Status,
    ];

    /// The file name prefix of the step's hooks.
    pub fn file_prefix(self) -> &'static str {
        match self {
            Step::Startup => "shadowcut-on-startup",
            Step::Validated => "shadowcut-on-validated",
            Step::BeforeRowCopy => "shadowcut-on-before-row-copy",
            Step::RowCopyComplete => "shadowcut-on-row-copy-complete",
            Step::BeginPostponed => "shadowcut-on-begin-postponed",
            Step::BeforeCutOver => "shadowcut-on-before-cut-over",
            Step::Success => "shadowcut-on-success",
            Step::Failure => "shadowcut-on-failure",
            Step::Status => "shadowcut-on-status",
        }
    }
}

/// Why a hook failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hook {path} {problem}")]
pub struct HookFailure {
    /// The hook's file.
    pub path: String,
    /// Exit status, timeout or start failure, with the end of its stderr.
    pub problem: String,
}

/// The hooks of one run and the facts they are given.
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    dir: Option<PathBuf>,
    timeout: Duration,
    facts: Vec<(String, String)>,
    /// The id of the killed run a `--resume` continues, known once its
    /// tables are found (they keep their markers with that id).
    resumed_run_id: std::sync::OnceLock<String>,
}

impl Hooks {
    /// Hooks from `dir` (none when `None`), each given `facts` (names
    /// without the `SHADOWCUT_` prefix) and killed after `timeout`.
    pub fn new(dir: Option<PathBuf>, timeout: Duration, facts: &[(&str, String)]) -> Hooks {
        Hooks {
            dir,
            timeout,
            facts: facts
                .iter()
                .map(|(name, value)| (format!("SHADOWCUT_{name}"), value.clone()))
                .collect(),
            resumed_run_id: std::sync::OnceLock::new(),
        }
    }

    /// From now on every hook is also given `SHADOWCUT_RESUMED_RUN_ID`: the
    /// id of the killed run this one continues, which its tables' markers
    /// carry (`SHADOWCUT_RUN_ID` stays this process's).
    pub fn resuming(&self, run_id: &str) {
        let _ = self.resumed_run_id.set(run_id.to_string());
    }

    /// True when a hooks directory was given.
    pub fn enabled(&self) -> bool {
        self.dir.is_some()
    }

    /// The step's hook files, in name order.
    fn files(&self, step: Step) -> Vec<PathBuf> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            tracing::warn!(dir = %dir.display(), "the hooks directory cannot be read");
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(step.file_prefix()))
                    && is_executable(p)
            })
            .collect();
        files.sort();
        files
    }

    /// Runs the step's hooks with the run's facts, `status` (when known)
    /// and `extra` variables; the first failure is returned after every
    /// hook of the step ran.
    pub async fn run(
        &self,
        step: Step,
        status: Option<&Status>,
        extra: &[(&str, String)],
    ) -> Result<(), HookFailure> {
        let mut first_failure = None;
        for file in self.files(step) {
            let mut command = tokio::process::Command::new(&file);
            command
                .env_remove("MYSQL_PWD")
                .env("SHADOWCUT_HOOK", step.file_prefix())
                .envs(self.facts.iter().map(|(k, v)| (k, v)))
                .envs(
                    self.resumed_run_id
                        .get()
                        .map(|id| ("SHADOWCUT_RESUMED_RUN_ID", id)),
                )
                .envs(extra.iter().map(|(k, v)| (format!("SHADOWCUT_{k}"), v)))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true);
            if let Some(s) = status {
                command.envs(status_variables(s));
            }
            let outcome = run_one(command, &file, self.timeout).await;
            match &outcome {
                Ok(()) => tracing::info!(hook = %file.display(), "hook ran"),
                Err(failure) => tracing::warn!(%failure, "hook failed"),
            }
            if let Err(failure) = outcome {
                first_failure.get_or_insert(failure);
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}

/// The `status` hooks, run every interval while the migration runs; they
/// stop when dropped.
pub struct StatusHooks {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for StatusHooks {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl StatusHooks {
    /// Starts running the `status` hooks of `hooks` every `interval` with
    /// the status of `sources` (nothing runs without a hooks directory).
    pub fn start(
        hooks: &Hooks,
        sources: Arc<Sources>,
        started: Instant,
        interval: Duration,
    ) -> StatusHooks {
        if !hooks.enabled() || interval.is_zero() {
            return StatusHooks { task: None };
        }
        let hooks = hooks.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let status = sources.status(started);
                let _ = hooks.run(Step::Status, Some(&status), &[]).await;
            }
        });
        StatusHooks { task: Some(task) }
    }
}

async fn run_one(
    mut command: tokio::process::Command,
    file: &Path,
    timeout: Duration,
) -> Result<(), HookFailure> {
    let failure = |problem: String| HookFailure {
        path: file.display().to_string(),
        problem,
    };
    let child = command
        .spawn()
        .map_err(|e| failure(format!("could not start ({e})")))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| {
            failure(format!(
                "ran longer than {} s and was killed",
                timeout.as_secs()
            ))
        })?
        .map_err(|e| failure(format!("could not be waited for ({e})")))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: String = stderr
        .trim()
        .chars()
        .rev()
        .take(300)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    Err(failure(match output.status.code() {
        Some(code) if tail.is_empty() => format!("exited with {code}"),
        Some(code) => format!("exited with {code}: {tail}"),
        None => "was killed by a signal".to_string(),
    }))
}

/// The status as `SHADOWCUT_*` variables.
fn status_variables(s: &Status) -> Vec<(String, String)> {
    let progress = if s.rows_estimate > 0 {
        (s.rows_copied as f64 * 100.0 / s.rows_estimate as f64).min(100.0)
    } else {
        0.0
    };
    [
        ("STAGE", s.stage.clone()),
        ("ELAPSED_SECONDS", format!("{:.0}", s.elapsed_s)),
        ("COPIED_ROWS", s.rows_copied.to_string()),
        ("ESTIMATED_ROWS", s.rows_estimate.to_string()),
        ("PROGRESS", format!("{progress:.1}")),
        ("BACKLOG", s.backlog.to_string()),
        ("THROTTLED", s.throttled.clone().unwrap_or_default()),
        ("POSTPONED", s.postponed.clone().unwrap_or_default()),
        ("STATUS", crate::progress::text_line(s)),
    ]
    .into_iter()
    .map(|(k, v)| (format!("SHADOWCUT_{k}"), v))
    .collect()
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn hooks_run_by_prefix_in_order_with_their_facts_and_fail_clearly() {
        let dir = std::env::temp_dir().join(format!("shadowcut-hooks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let log_s = log.display().to_string();
        script(
            &dir,
            "shadowcut-on-startup-b",
            &format!("echo b $SHADOWCUT_TABLE_NAME >> {log_s}"),
        );
        script(
            &dir,
            "shadowcut-on-startup-a",
            &format!("echo a $SHADOWCUT_HOOK >> {log_s}"),
        );
        std::fs::write(dir.join("shadowcut-on-startup-c"), "not executable").unwrap();
        script(&dir, "shadowcut-on-failure", "echo broken >&2; exit 3");
        script(&dir, "shadowcut-on-success", "sleep 5");
        let hooks = Hooks::new(
            Some(dir.clone()),
            Duration::from_millis(300),
            &[("TABLE_NAME", "t".into())],
        );
        hooks.run(Step::Startup, None, &[]).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "a shadowcut-on-startup\nb t\n"
        );
        let failed = hooks.run(Step::Failure, None, &[]).await.unwrap_err();
        assert!(
            failed.to_string().ends_with("exited with 3: broken"),
            "{failed}"
        );
        let slow = hooks.run(Step::Success, None, &[]).await.unwrap_err();
        assert!(slow.problem.contains("killed"), "{slow}");
        assert!(
            hooks.run(Step::Validated, None, &[]).await.is_ok(),
            "no hook: nothing to fail"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
