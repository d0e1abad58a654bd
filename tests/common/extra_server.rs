//! Throwaway servers of a test's own, started with `scripts/sandbox`: for
//! what the shared sandbox must not see (another binlog setting, a restart,
//! certificates of the test's).

use std::process::{Command, Stdio};

use shadowcut::server::ConnectConfig;

fn sandbox_script() -> String {
    std::env::var("SHADOWCUT_SANDBOX_SCRIPT")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sandbox").to_string())
}

/// A server started with `scripts/sandbox start`, stopped (synchronously)
/// when dropped, whatever the test did.
pub struct ExtraServer {
    pub dir: String,
    pub config: ConnectConfig,
    pub replica: Option<ConnectConfig>,
}

impl ExtraServer {
    /// Starts a server with `scripts/sandbox start ARGS`.
    pub async fn start(args: &[&str]) -> ExtraServer {
        let script = sandbox_script();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(&script)
                .arg("start")
                .args(&args)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("running {script} start: {e}"))
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let value = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(str::to_string)
        };
        // Stop whatever started before looking at anything else.
        let dir = value("SHADOWCUT_SANDBOX_DIR");
        let dsn = value("SHADOWCUT_TEST_DSN");
        let (Some(dir), Some(dsn), true) = (dir.clone(), dsn, output.status.success()) else {
            if let Some(dir) = dir {
                stop_sandbox(&dir);
            }
            panic!(
                "scripts/sandbox start failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        };
        ExtraServer {
            config: super::parse_dsn(&dsn),
            replica: value("SHADOWCUT_TEST_REPLICA_DSN").map(|d| super::parse_dsn(&d)),
            dir,
        }
    }

    /// Shuts the primary down cleanly, keeps it down for `down`, and starts
    /// it again on the same port with the same data (`scripts/sandbox
    /// restart`).
    pub async fn restart_primary(&self, down: std::time::Duration) {
        let (script, dir) = (sandbox_script(), self.dir.clone());
        let seconds = format!("{:.1}", down.as_secs_f64());
        let output = tokio::task::spawn_blocking(move || {
            Command::new(&script)
                .args(["restart", &dir, "primary", "--down-seconds", &seconds])
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("running {script} restart: {e}"))
        })
        .await
        .unwrap();
        assert!(
            output.status.success(),
            "scripts/sandbox restart failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn stop_sandbox(dir: &str) {
    match Command::new(sandbox_script())
        .arg("stop")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        other => eprintln!("warning: scripts/sandbox stop {dir} failed: {other:?}"),
    }
}

impl Drop for ExtraServer {
    fn drop(&mut self) {
        stop_sandbox(&self.dir);
    }
}
