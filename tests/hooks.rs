//! Hooks through the binary on the sandbox: every step's hook runs with the
//! migration's facts and never sees the password, a failing before-cut-over
//! hook postpones the swap until it passes, and a failed run calls the
//! failure hook with the error and the exit code.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use mysql_async::prelude::*;

const ROWS: i64 = 2000;

/// A hook that records its `SHADOWCUT_*` variables in `<dir>/<name>.env`
/// and its whole environment in `<dir>/<name>.all` (one run's worth each;
/// `.runs` counts the runs).
fn recording_hook(dir: &Path, name: &str, then: &str) {
    use std::os::unix::fs::PermissionsExt;
    let d = dir.display();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nenv | grep '^SHADOWCUT_' | sort > {d}/{name}.env\nenv > {d}/{name}.all\necho run >> {d}/{name}.runs\n{then}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn recorded(dir: &Path, name: &str, what: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.{what}"))).unwrap_or_default()
}

/// The sandbox's own password ("sandbox") is part of ordinary paths
/// (`/tmp/shadowcut-sandbox.XXXX`): the hooks run as a user whose password
/// appears nowhere else.
const PASSWORD: &str = "hk-7Qz2-unmistakable";

/// A user with every privilege and [`PASSWORD`], dropped afterwards.
async fn hooks_user(
    conn: &mut mysql_async::Conn,
) -> (shadowcut::server::ConnectConfig, cli::SqlOnDrop) {
    static USERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let user = format!(
        "hooks_{}_{}",
        std::process::id(),
        USERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    conn.query_drop(format!(
        "CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    let mut target = primary();
    target.user = user.clone();
    target.password = Some(PASSWORD.into());
    let guard = cli::SqlOnDrop {
        config: primary(),
        statements: vec![format!("DROP USER IF EXISTS '{user}'@'%'")],
    };
    (target, guard)
}

/// Runs the binary with the password in `MYSQL_PWD` only.
async fn run_with_hooks(
    target: &shadowcut::server::ConnectConfig,
    db: &str,
    alter: &str,
    hooks: &Path,
    extra: &[&str],
) -> cli::Outcome {
    let mut args: Vec<String> = [
        "--host",
        &target.host,
        "--port",
        &target.port.to_string(),
        "--user",
        &target.user,
        "--database",
        db,
        "--table",
        "t",
        "--alter",
        alter,
        "--execute",
        "--hooks-path",
        &hooks.display().to_string(),
        "--hooks-hint",
        "ticket-42",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(cli::BIN)
            .args(&args)
            .env("MYSQL_PWD", target.password.clone().unwrap_or_default())
            // The test's own DSNs hold the password: a hook inheriting them
            // would prove nothing.
            .env_remove("SHADOWCUT_TEST_DSN")
            .env_remove("SHADOWCUT_TEST_REPLICA_DSN")
            .env_remove("SHADOWCUT_FAILPOINTS")
            .env("SHADOWCUT_LOG", "shadowcut=info")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("shadowcut did not finish within 90 s")
    .expect("running shadowcut");
    cli::Outcome {
        args,
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn hooks_dir(db: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{db}.hooks"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_step_runs_its_hook_and_a_failing_before_cut_over_hook_postpones_the_swap() {
    let mut conn = client(&primary()).await;
    let db = simple_table(&mut conn, "hooksteps", ROWS).await;
    let (user, _drop_user) = hooks_user(&mut conn).await;
    let dir = hooks_dir(&db);
    let steps = [
        "startup",
        "validated",
        "before-row-copy",
        "row-copy-complete",
        "begin-postponed",
        "success",
        "status",
    ];
    for step in steps {
        recording_hook(&dir, &format!("shadowcut-on-{step}"), "exit 0");
    }
    recording_hook(&dir, "shadowcut-on-failure", "exit 0");
    // Fails on its first two runs: the swap waits for the third.
    recording_hook(
        &dir,
        "shadowcut-on-before-cut-over",
        &format!(
            "[ $(wc -l < {}/shadowcut-on-before-cut-over.runs) -ge 3 ] || {{ echo not yet >&2; exit 1; }}",
            dir.display()
        ),
    );
    let out = run_with_hooks(
        &user,
        &db,
        "ADD COLUMN extra INT NOT NULL DEFAULT 1",
        &dir,
        &["--hooks-retry-seconds", "1", "--hooks-status-interval", "1"],
    )
    .await;
    cli::assert_success(&out);
    assert!(out.stderr.contains("hook failed"), "{out}");

    let password = PASSWORD;
    for step in steps.iter().chain(&["before-cut-over"]) {
        let name = format!("shadowcut-on-{step}");
        let env = recorded(&dir, &name, "env");
        assert!(!env.is_empty(), "hook {name} did not run\n{out}");
        for fact in [
            format!("SHADOWCUT_DATABASE_NAME={db}"),
            "SHADOWCUT_TABLE_NAME=t".into(),
            "SHADOWCUT_GHOST_TABLE_NAME=_t_gho".into(),
            "SHADOWCUT_OLD_TABLE_NAME=_t_del".into(),
            "SHADOWCUT_DDL=ADD COLUMN extra INT NOT NULL DEFAULT 1".into(),
            "SHADOWCUT_HOOKS_HINT=ticket-42".into(),
            "SHADOWCUT_DRY_RUN=false".into(),
            format!("SHADOWCUT_HOOK={name}"),
        ] {
            assert!(
                env.lines().any(|l| l == fact),
                "{name} lacks {fact}:\n{env}"
            );
        }
        let all = recorded(&dir, &name, "all");
        assert!(
            !all.contains(password),
            "{name}'s environment holds the password"
        );
    }
    assert!(!out.stdout.contains(password) && !out.stderr.contains(password));
    assert_eq!(
        recorded(&dir, "shadowcut-on-begin-postponed", "runs")
            .lines()
            .count(),
        1,
        "the postponement begins once, however often the hook fails"
    );
    assert_eq!(
        recorded(&dir, "shadowcut-on-before-cut-over", "runs")
            .lines()
            .count(),
        3
    );
    assert!(
        recorded(&dir, "shadowcut-on-begin-postponed", "env")
            .contains("SHADOWCUT_POSTPONED_REASON=the before-cut-over hook"),
        "{}",
        recorded(&dir, "shadowcut-on-begin-postponed", "env")
    );
    assert!(recorded(&dir, "shadowcut-on-row-copy-complete", "env")
        .contains(&format!("SHADOWCUT_COPIED_ROWS={ROWS}")));
    assert_eq!(
        recorded(&dir, "shadowcut-on-failure", "runs"),
        "",
        "no failure, no failure hook"
    );
    let migrated: Option<i64> = conn
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.`t` WHERE extra = 1"))
        .await
        .unwrap();
    assert_eq!(migrated, Some(ROWS));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_run_calls_the_failure_hook_with_the_error() {
    let mut conn = client(&primary()).await;
    let db = simple_table(&mut conn, "hookfail", 10).await;
    let dir = hooks_dir(&db);
    recording_hook(&dir, "shadowcut-on-failure", "exit 0");
    recording_hook(&dir, "shadowcut-on-success", "exit 0");
    let (user, _drop_user) = hooks_user(&mut conn).await;
    let out = run_with_hooks(&user, &db, "ADD COLUMN a INT", &dir, &[]).await;
    assert_eq!(out.code, Some(cli::REFUSED), "{out}");
    let env = recorded(&dir, "shadowcut-on-failure", "env");
    assert!(env.contains("SHADOWCUT_EXIT_CODE=3"), "{env}");
    assert!(env.contains("SHADOWCUT_ERROR=cannot migrate"), "{env}");
    assert_eq!(recorded(&dir, "shadowcut-on-success", "runs"), "");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A password given with `--password` is overwritten in the process's own
/// arguments (`/proc/<pid>/cmdline`, what `ps` shows) with a warning, and
/// appears nowhere else: not in the JSON output, the logs, the status the
/// socket serves, or the hooks' environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_password_on_the_command_line_is_hidden_and_never_shown() {
    let mut conn = client(&primary()).await;
    let db = simple_table(&mut conn, "hidepass", 500).await;
    let (user, _drop_user) = hooks_user(&mut conn).await;
    let dir = hooks_dir(&db);
    for step in ["startup", "before-row-copy", "status", "success"] {
        recording_hook(&dir, &format!("shadowcut-on-{step}"), "exit 0");
    }
    let postpone = dir.join("postpone");
    let socket = dir.join("control.sock");
    std::fs::write(&postpone, b"").unwrap();
    let child = tokio::process::Command::new(cli::BIN)
        .args(["--host", &user.host, "--port", &user.port.to_string()])
        .args(["--user", &user.user, "--password", PASSWORD])
        .args([
            "--database",
            &db,
            "--table",
            "t",
            "--alter",
            "ADD COLUMN extra INT",
        ])
        .args(["--execute", "--output", "json", "--no-discover-replicas"])
        .args(["--hooks-path", &dir.display().to_string()])
        .args(["--hooks-status-interval", "1"])
        .args([
            "--postpone-cut-over-flag-file",
            &postpone.display().to_string(),
        ])
        .args(["--serve-socket-file", &socket.display().to_string()])
        .env_remove("MYSQL_PWD")
        .env_remove("SHADOWCUT_TEST_DSN")
        .env_remove("SHADOWCUT_TEST_REPLICA_DSN")
        .env("SHADOWCUT_LOG", "shadowcut=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    wait_for_copy_complete(&mut conn, &db, "t").await;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("--password"), "{cmdline}");
    assert!(
        !cmdline.contains(PASSWORD),
        "the process list shows the password: {cmdline}"
    );
    let status = status(&socket).await.to_string();
    assert!(!status.contains(PASSWORD), "{status}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    std::fs::remove_file(&postpone).unwrap();
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the run did not end")
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("the password was given on the command line"),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains(PASSWORD) && !stderr.contains(PASSWORD));
    for step in ["startup", "before-row-copy", "status", "success"] {
        let all = recorded(&dir, &format!("shadowcut-on-{step}"), "all");
        assert!(!all.is_empty(), "hook {step} did not run");
        assert!(
            !all.contains(PASSWORD),
            "{step}'s environment holds the password"
        );
    }
}
