//! The `shadowcut` binary: parse flags, run, print, map errors to exit codes.

use clap::Parser;
use shadowcut::cli::Args;
use shadowcut::output::json_line;
use shadowcut::progress::Output;
use shadowcut::{Error, ExitCode, Summary};

fn print_plans(heading: &str, checks: &[shadowcut::plans::PlanCheck]) {
    if checks.is_empty() {
        return;
    }
    println!("{heading}");
    for check in checks {
        let query: String = check.query.split_whitespace().collect::<Vec<_>>().join(" ");
        let verdict = if check.worse {
            "WORSE"
        } else if check.findings.is_empty() {
            "unchanged"
        } else {
            "changed"
        };
        println!("    [{verdict}] {query}");
        for finding in &check.findings {
            println!("        {finding}");
        }
    }
}

fn print_summary(summary: &Summary, output: Output) {
    if output == Output::Json {
        println!(
            "{}",
            json_line("summary", serde_json::json!({ "summary": summary }))
        );
        return;
    }
    let plan = &summary.plan;
    if summary.dry_run {
        println!(
            "Dry run for {} on {} — nothing was changed.",
            plan.table, plan.server
        );
        println!("  topology:       {}", plan.topology);
        println!("  shared key:     {}", plan.shared_key);
        println!("  estimated rows: {}", plan.estimated_rows);
        println!("  columns:        {}", plan.column_mapping.join(", "));
        if let Some(native) = &plan.native {
            println!("  native ALTER:   {}", native.summary);
            if let Some(algorithm) = native.native_algorithm {
                println!(
                    "                  (--prefer-instant runs it on the table with ALGORITHM={} instead of copying)",
                    algorithm.keyword()
                );
            }
        }
        println!(
            "  new table:      {} (checked and removed again)",
            plan.ghost_table
        );
        if let Some(impact) = &plan.impact {
            println!("  impact:");
            for line in shadowcut::inspect::impact::describe(impact) {
                println!("    {line}");
            }
        }
        print_plans("  query plans (indexes the new table lacks; the whole plans are compared before the swap):", &plan.query_plans);
        println!("  statements:");
        for (stage, stmt) in &plan.statements {
            println!("    [{stage}] {stmt}");
        }
        println!("Run again with --execute to migrate.");
        return;
    }
    match &summary.native {
        Some(native) if native.applied => {
            println!(
                "Altered {} natively with ALGORITHM={} in {:.3} s ({} attempt(s), the ALTER itself {:.3} s); no rows were copied and no table was left behind.",
                plan.table,
                native.algorithm.keyword(),
                native.seconds,
                native.attempts,
                native.statement_seconds.unwrap_or(0.0)
            );
            return;
        }
        Some(native) => println!(
            "The table refused ALGORITHM={} ({}); the rows were copied instead.",
            native.algorithm.keyword(),
            native.refused.as_deref().unwrap_or("no reason given")
        ),
        None => {}
    }
    println!(
        "Migrated {} in {:.1} s: {} rows copied, {} binlog row changes read ({} ahead of the copy, left to it), {} keys applied; cut-over lock held {:.3} s ({} attempt(s)).",
        plan.table,
        summary.duration_s,
        summary.rows_copied,
        summary.binlog_rows,
        summary.binlog_rows_left_to_copy,
        summary.keys_applied,
        summary.cut_over_lock_s.unwrap_or(0.0),
        summary.cut_over_attempts
    );
    match &summary.checksum {
        Some(c) => println!(
            "Checksum before the swap: {} rows in {} chunk(s) compared over {} column(s), {} differed, {} repaired ({:.1} s, writers held {:.3} s){}.",
            c.rows_checked,
            c.chunks_checked,
            c.columns_compared,
            c.mismatches,
            c.repaired,
            c.seconds,
            c.lock_seconds,
            if c.columns_not_compared.is_empty() {
                String::new()
            } else {
                format!("; not compared: {}", c.columns_not_compared.join(", "))
            }
        ),
        None => println!("Checksum before the swap: skipped (--skip-checksum)."),
    }
    print_plans("Query plans before the swap:", &summary.query_plans);
    if !summary.left_to_do.is_empty() {
        println!(
            "The migration is complete, but tidying up after the swap failed; left to do by hand:"
        );
        for what in &summary.left_to_do {
            println!("  - {what}");
        }
    }
    if summary.tested_on_replica {
        println!(
            "--test-on-replica: the swap was rehearsed and undone; {} is unchanged, the migrated table is kept as {} (drop it when done), and replication runs again.",
            plan.table, plan.ghost_table
        );
        return;
    }
    match &summary.old_table_kept {
        Some(old) => {
            println!("The old table is kept as {old}; drop it when you no longer need it.")
        }
        None => println!("The old table was dropped (--ok-to-drop-table)."),
    }
}

fn report_error(e: &Error, output: Output) {
    if output == Output::Json {
        println!(
            "{}",
            json_line(
                "error",
                serde_json::json!({ "exit_code": e.exit_code() as i32, "message": e.to_string() })
            )
        );
    }
    eprintln!("shadowcut: {e}");
}

/// A password given with `--password` is visible to every user of the
/// machine until it is overwritten; say so, and overwrite it where we can.
fn warn_of_password_on_command_line(password: &str) {
    #[cfg(target_os = "linux")]
    let hidden = match shadowcut::cli::hide_password_from_process_list(password) {
        Ok(hidden) => hidden,
        Err(e) => {
            tracing::debug!(error = %e, "could not overwrite the password in the process's arguments");
            false
        }
    };
    #[cfg(not(target_os = "linux"))]
    let hidden = {
        let _ = password;
        false
    };
    let after = if hidden {
        "it was overwritten in the process list just now, but was visible until then and stays in your shell's history"
    } else {
        "it is visible in the process list to every user of this machine"
    };
    tracing::warn!(
        "the password was given on the command line: {after}; prefer MYSQL_PWD, --ask-pass or --defaults-file"
    );
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let output = args.output;
    shadowcut::output::init_logging(output);
    if let Some(password) = &args.password {
        warn_of_password_on_command_line(password);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shadowcut: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(ExitCode::Failed as u8);
        }
    };
    let code = runtime.block_on(async {
        let config = match args.into_config() {
            Ok(c) => c,
            Err(e) => {
                report_error(&e, output);
                return e.exit_code();
            }
        };
        config.stop.raise_on_signals();
        match shadowcut::run(&config).await {
            Ok(summary) => {
                print_summary(&summary, output);
                ExitCode::Success
            }
            Err(e) => {
                report_error(&e, output);
                e.exit_code()
            }
        }
    });
    std::process::ExitCode::from(code as u8)
}
