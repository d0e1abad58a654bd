//! A migration killed with SIGKILL at a dangerous point (mid-copy, while the
//! applier works the backlog, with the cut-over's lock held) under the
//! mirrored write load, then `--resume`d. The result must read as the
//! server's own ALTER of the control table, and the checksum must find
//! nothing to repair.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::*;
use mysql_async::Conn;

/// Widens the key too: a key that compares alike keeps the watermark.
const ALTER: &str =
    "ADD COLUMN extra INT NOT NULL DEFAULT 7, ADD INDEX a_b (a, b), MODIFY id BIGINT NOT NULL";

/// Starts the binary on `t` with `failpoints` and `extra` arguments.
fn start_binary(db: &str, failpoints: &str, extra: &[&str]) -> tokio::process::Child {
    let mut args = vec!["--execute", "--chunk-size", "50", "--no-discover-replicas"];
    args.extend_from_slice(extra);
    cli::spawn_on_t(db, ALTER, &args, &[("SHADOWCUT_FAILPOINTS", failpoints)])
}

/// Starts the binary with the cut-over postponed and kills it once the
/// copy is complete and, with `applied`, a checkpoint is recorded.
async fn kill_after_the_copy(conn: &mut Conn, db: &str, failpoints: &str, applied: bool) {
    let postpone = std::env::temp_dir().join(format!("{db}.postpone"));
    std::fs::write(&postpone, b"").unwrap();
    let mut child = start_binary(
        db,
        failpoints,
        &["--postpone-cut-over-flag-file", postpone.to_str().unwrap()],
    );
    let table = db.to_string();
    kill_when(&mut child, conn, "the end of the copy", async |c| {
        changelog_value(c, &table, "t", "state:copy-watermark")
            .await
            .is_some_and(|w| w == "\"complete\"")
            && (!applied
                || changelog_value(c, &table, "t", "state:applied-position")
                    .await
                    .is_some())
    })
    .await;
    let _ = std::fs::remove_file(&postpone);
}

/// Polls until `ready` holds (at most 60 s), then sends `signal` (`KILL`,
/// `TERM`, ...) to `child` and waits for it; returns its exit code and
/// stderr.
async fn signal_when(
    child: &mut tokio::process::Child,
    conn: &mut Conn,
    what: &str,
    signal: &str,
    mut ready: impl AsyncFnMut(&mut Conn) -> bool,
) -> (Option<i32>, String) {
    use tokio::io::AsyncReadExt;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stderr = String::new();
    while !ready(conn).await {
        if let Some(status) = child.try_wait().unwrap() {
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut stderr).await;
            }
            panic!("the run ended ({status}) before {what}:\n{stderr}");
        }
        assert!(Instant::now() < deadline, "the run never reached {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args([format!("-{signal}"), pid])
        .status()
        .unwrap();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr).await;
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the run did not end after the signal")
        .unwrap();
    (status.code(), stderr)
}

/// [`signal_when`] with SIGKILL.
async fn kill_when(
    child: &mut tokio::process::Child,
    conn: &mut Conn,
    what: &str,
    ready: impl AsyncFnMut(&mut Conn) -> bool,
) {
    let (code, stderr) = signal_when(child, conn, what, "KILL", ready).await;
    assert_eq!(code, None, "not killed by the signal: {stderr}");
}

/// Resumes the killed run while the load goes on, then checks the result
/// against the control table altered natively. Returns the summary.
async fn resume_and_check(
    conn: &mut Conn,
    db: &str,
    stop: Arc<AtomicBool>,
    writers: Vec<tokio::task::JoinHandle<()>>,
) -> shadowcut::Summary {
    // The killed run's id, from its changelog's marker.
    let comment = shadowcut::shadow::table_comment(conn, db, "_t_ghc")
        .await
        .unwrap();
    let killed_run = comment
        .and_then(|c| c.rsplit(':').next().map(str::to_string))
        .expect("the killed run left its changelog");
    let hooks = std::env::temp_dir().join(format!("{db}-hooks"));
    std::fs::create_dir_all(&hooks).unwrap();
    let hook = hooks.join("shadowcut-on-success");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\nenv > {}/success.env\n", hooks.display()),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut resumed = config(db, "t", ALTER);
    resumed.resume = true;
    resumed.hooks_path = Some(hooks.clone());
    let outcome = tokio::time::timeout(Duration::from_secs(120), shadowcut::run(&resumed)).await;
    stop_load(&stop, writers).await;
    let summary = outcome
        .expect("the resumed run did not end")
        .unwrap_or_else(|e| panic!("the resumed run failed: {e}"));
    assert_clean_checksum(&summary);
    let env = std::fs::read_to_string(hooks.join("success.env")).unwrap_or_default();
    assert!(
        env.lines()
            .any(|l| l == format!("SHADOWCUT_RESUMED_RUN_ID={killed_run}")),
        "the hooks were not told which run was resumed ({killed_run}):\n{env}"
    );
    let _ = std::fs::remove_dir_all(&hooks);
    assert_t_as_native_alter(
        conn,
        db,
        ALTER,
        "id, a, b, extra",
        "resumed table vs control",
    )
    .await;
    assert_eq!(
        definition(conn, db, "t").await.replace("`t`", "`x`"),
        definition(conn, db, "control")
            .await
            .replace("`control`", "`x`"),
        "the resumed table reads as the native ALTER"
    );
    summary
}

fn load(db: &str, stop: &Arc<AtomicBool>, rows: u64) -> Vec<tokio::task::JoinHandle<()>> {
    load_t_and_control(db, 3, stop, move |rng| churn_transaction(rng, rows)).1
}

/// Stops the binary with `signal` once the copy has recorded a watermark,
/// under the mirrored load; the tables stay, and the resumed run finishes
/// ([`resume_and_check`]) without copying everything again. Returns the
/// stopped run's exit code and stderr.
async fn stopped_mid_copy_and_resumed(signal: &str) -> (Option<i32>, String) {
    let mut conn = client(&primary()).await;
    let prefix = format!("resume{}", signal.to_lowercase());
    let db = churn_tables(&mut conn, &prefix, 4000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = load(&db, &stop, 4000);
    let mut child = start_binary(&db, "chunk_delay_ms=15", &[]);
    let table = db.clone();
    // The watermark past id 1500 (of 4,000), so that a copy started over
    // reads apart from one continued.
    let past = |w: &str| {
        let digits: String = w.chars().filter(char::is_ascii_digit).collect();
        w != "\"complete\"" && digits.parse::<u64>().is_ok_and(|id| id >= 1500)
    };
    let (code, stderr) = signal_when(
        &mut child,
        &mut conn,
        "a recorded watermark past id 1500",
        signal,
        async |c| {
            changelog_value(c, &table, "t", "state:copy-watermark")
                .await
                .is_some_and(|w| past(&w))
        },
    )
    .await;
    assert!(tables(&mut conn, &db).await.contains(&"_t_gho".to_string()));
    let summary = resume_and_check(&mut conn, &db, stop, writers).await;
    // Below the watermark lies more than a third of the keys.
    let rows = summary.checksum.as_ref().map_or(0, |c| c.rows_checked);
    assert!(
        summary.rows_copied * 10 < rows * 8,
        "the resumed run copied {} of {rows} rows again after SIG{signal}: {summary:?}",
        summary.rows_copied
    );
    (code, stderr)
}

/// Killed mid-copy: the resumed run keeps what was copied below the
/// watermark and copies only the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_mid_copy_and_resumed() {
    let (code, stderr) = stopped_mid_copy_and_resumed("KILL").await;
    assert_eq!(code, None, "not killed by the signal: {stderr}");
}

/// SIGTERM (a redeploy) and SIGHUP (a closed SSH session) mid-copy, under
/// the mirrored load, stop at a resumable point: exit code 130, the tables
/// kept, the message names the signal and says how to continue;
/// `--resume` finishes without copying everything again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_and_sighup_mid_copy_then_resumed() {
    for signal in ["TERM", "HUP"] {
        let (code, stderr) = stopped_mid_copy_and_resumed(signal).await;
        assert_eq!(code, Some(130), "SIG{signal}: {stderr}");
        assert!(stderr.contains(&format!("SIG{signal}")), "{stderr}");
        assert!(stderr.contains("--resume"), "{stderr}");
    }
}

/// Killed after the copy, while postponed with the applier working the
/// backlog: the resumed run copies nothing and reads the binlog on from the
/// recorded checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_after_the_copy_and_resumed() {
    let mut conn = client(&primary()).await;
    let db = churn_tables(&mut conn, "resumeapply", 1500).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = load(&db, &stop, 1500);
    kill_after_the_copy(&mut conn, &db, "apply_delay_ms=5", true).await;
    let summary = resume_and_check(&mut conn, &db, stop, writers).await;
    assert_eq!(summary.rows_copied, 0, "{summary:?}");
}

/// Killed with the cut-over's lock held: the connections die, the server
/// releases the lock, nothing was swapped; the resumed run swaps.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_during_the_cut_over_and_resumed() {
    let mut conn = client(&primary()).await;
    let db = churn_tables(&mut conn, "resumecut", 1000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = load(&db, &stop, 1000);
    let mut child = start_binary(&db, "lock_delay_ms=3000", &[]);
    let table = db.clone();
    kill_when(&mut child, &mut conn, "the cut-over", async |c| {
        tables(c, &table).await.contains(&"_t_del".to_string())
    })
    .await;
    let left = tables(&mut conn, &db).await;
    assert!(
        left.contains(&"_t_gho".to_string()),
        "nothing may be swapped yet: {left:?}"
    );
    resume_and_check(&mut conn, &db, stop, writers).await;
    assert_eq!(tables(&mut conn, &db).await, vec!["control", "t", "_t_del"]);
}

/// Starts a run on a table with a comment and kills it once the cut-over
/// gave the new table its final comment (the original's): the marker is
/// gone from the new table; only the changelog of the same run, which
/// records that comment, tells it is ours.
async fn kill_after_the_final_comment(conn: &mut Conn, db: &str) {
    for table in ["t", "control"] {
        conn.query_drop(format!("ALTER TABLE `{db}`.`{table}` COMMENT = 'orders'"))
            .await
            .unwrap();
    }
    let mut child = start_binary(db, "stall_swap_attempts=1", &[]);
    let table = db.to_string();
    kill_when(&mut child, conn, "the final comment", async |c| {
        tables(c, &table).await.contains(&"_t_del".to_string())
            && shadowcut::shadow::table_comment(c, &table, "_t_gho")
                .await
                .unwrap()
                .is_some_and(|comment| comment == "orders")
    })
    .await;
}

/// `--resume` continues a run killed after the final comment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_after_the_new_table_got_its_final_comment_and_resumed() {
    let mut conn = client(&primary()).await;
    let db = churn_tables(&mut conn, "resumecomment", 1000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = load(&db, &stop, 1000);
    kill_after_the_final_comment(&mut conn, &db).await;
    // Refused for another ALTER, yet known as ours from then on: marked again.
    let mut other = config(&db, "t", "ADD COLUMN other INT");
    other.resume = true;
    assert!(shadowcut::run(&other).await.is_err());
    let comment = shadowcut::shadow::table_comment(&mut conn, &db, "_t_gho")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(comment.starts_with("shadowcut:ghost:"), "{comment}");
    resume_and_check(&mut conn, &db, stop, writers).await;
    assert_eq!(tables(&mut conn, &db).await, vec!["control", "t", "_t_del"]);
}

/// `--initially-drop-ghost-table` drops what a run killed after the final
/// comment left, as its own, and the new run migrates the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_after_the_final_comment_then_started_over() {
    let mut conn = client(&primary()).await;
    let db = churn_tables(&mut conn, "restartcomment", 1000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = load(&db, &stop, 1000);
    kill_after_the_final_comment(&mut conn, &db).await;
    // Known as the killed run's only while its sentinel stays: a table
    // someone made with CREATE TABLE ... LIKE t carries the same comment.
    let names = shadowcut::shadow::ShadowNames::derive(&db, "t", None);
    let ghost_run = async |c: &mut Conn| {
        shadowcut::shadow::run_of_table(c, &names, "_t_gho", shadowcut::shadow::Role::Ghost)
            .await
            .unwrap()
    };
    let killed_run = ghost_run(&mut conn)
        .await
        .expect("the ghost is the killed run's");
    let sentinel = format!("`{db}`.`_t_del`");
    conn.query_drop(format!("ALTER TABLE {sentinel} COMMENT = 'not ours'"))
        .await
        .unwrap();
    assert_eq!(ghost_run(&mut conn).await, None);
    conn.query_drop(format!(
        "ALTER TABLE {sentinel} COMMENT = 'shadowcut:sentinel:{killed_run}'"
    ))
    .await
    .unwrap();
    let mut again = config(&db, "t", ALTER);
    again.initially_drop_ghost_table = true;
    let outcome = tokio::time::timeout(Duration::from_secs(120), shadowcut::run(&again)).await;
    stop_load(&stop, writers).await;
    let summary = outcome
        .expect("the new run did not end")
        .unwrap_or_else(|e| panic!("the new run refused the killed run's tables: {e}"));
    assert_clean_checksum(&summary);
    assert_t_as_native_alter(&mut conn, &db, ALTER, "id, a, b, extra", "t vs control").await;
    assert_eq!(tables(&mut conn, &db).await, vec!["control", "t", "_t_del"]);
}

/// `--resume` refuses what it cannot continue, and leaves it as it was:
/// no leftover at all, and a leftover of another ALTER.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resume_refuses_what_it_cannot_continue() {
    let mut conn = client(&primary()).await;
    let db = churn_tables(&mut conn, "resumerefuse", 300).await;
    let mut dry = config(&db, "t", ALTER);
    dry.resume = true;
    dry.execute = false;
    assert!(
        matches!(shadowcut::run(&dry).await, Err(shadowcut::Error::Usage(_))),
        "--resume without --execute"
    );
    let mut nothing = config(&db, "t", ALTER);
    nothing.resume = true;
    match shadowcut::run(&nothing).await {
        Err(shadowcut::Error::Refused(r)) => {
            assert!(r.problem.contains("nothing to resume"), "{r:?}")
        }
        other => panic!("resumed from nothing: {other:?}"),
    }
    kill_after_the_copy(&mut conn, &db, "", false).await;
    let mut other = config(&db, "t", "ADD COLUMN other INT");
    other.resume = true;
    match shadowcut::run(&other).await {
        Err(shadowcut::Error::Refused(r)) => {
            assert!(r.problem.contains("was for the ALTER"), "{r:?}")
        }
        other => panic!("resumed another ALTER: {other:?}"),
    }
    assert_eq!(
        tables(&mut conn, &db).await,
        vec!["control", "t", "_t_ghc", "_t_gho"],
        "the leftover stays for the right --resume"
    );
}
