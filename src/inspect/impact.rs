//! The impact estimate of the dry run, before anything runs: how many rows
//! (exact with `--exact-rowcount`), how large the new table will be, how
//! many bytes the copy writes to the binlog and whether the binlog is kept
//! long enough to cover the run, free disk where the server shows it, the
//! replicas' lag, and the expected copy time from a short timed sample
//! copied into the dry run's new table.

use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::Conn;
use serde::Serialize;

use crate::copy::Copier;
use crate::error::{Result, SqlContext};
use crate::inspect::disk;
use crate::server::{self, ConnectConfig};
use crate::shadow::ShadowNames;

/// Rows copied by the timed sample at most.
const SAMPLE_ROWS: u64 = 20_000;

/// What the dry run expects the migration to cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Impact {
    /// Rows of the table.
    pub rows: u64,
    /// True when `rows` was counted, not estimated.
    pub rows_exact: bool,
    /// The table's data and index bytes (the new table will be about as
    /// large, more when the ALTER adds columns or indexes).
    pub table_bytes: u64,
    /// Bytes the copy writes to the binlog (row images of every row),
    /// and as much again in the replicas' relay logs.
    pub binlog_bytes: u64,
    /// How long the server keeps binlogs, when it says; 0 means forever.
    pub binlog_retention_s: Option<u64>,
    /// Free bytes of the server's data directory, where the server shows it
    /// (MariaDB's `information_schema.DISKS`); `None`: unknown.
    pub free_disk_bytes: Option<u64>,
    /// Rows the timed sample copied, and in how many seconds.
    pub sample_rows: u64,
    /// Seconds the sample took.
    pub sample_seconds: f64,
    /// The copy's expected duration, idle, from the sample.
    pub estimated_copy_seconds: Option<f64>,
    /// False when the binlog is purged sooner than the copy is expected to
    /// last (the tail would lose its place).
    pub retention_covers_copy: Option<bool>,
    /// The watched replicas' lag as they report it (`Seconds_Behind_Master`);
    /// `None` for one that does not answer or does not replicate.
    pub replica_lags: Vec<(String, Option<u64>)>,
    /// What the operator should look at before running.
    pub warnings: Vec<String>,
}

/// Estimates the migration's impact. `copier` copies the sample into the
/// (dry run's) new table.
#[allow(clippy::too_many_arguments)]
pub async fn estimate(
    conn: &mut Conn,
    names: &ShadowNames,
    copier: &Copier,
    exact_rowcount: bool,
    rows_estimate: u64,
    replicas: &[ConnectConfig],
    dialect: server::Dialect,
) -> Result<Impact> {
    let mut impact = Impact::default();
    let table = names.q(&names.original);
    impact.rows = if exact_rowcount {
        impact.rows_exact = true;
        conn.query_first::<u64, _>(format!("SELECT COUNT(*) FROM {table}"))
            .await
            .context(|| format!("counting the rows of {table}"))?
            .unwrap_or(0)
    } else {
        rows_estimate
    };
    let needed = disk::needed(conn, names).await?;
    impact.table_bytes = needed.table_bytes;
    impact.binlog_bytes = needed.binlog_bytes;
    impact.binlog_retention_s = binlog_retention(conn).await?;
    impact.free_disk_bytes = disk::free_bytes(conn).await;

    let (sample_rows, took) = copier
        .sample(conn, SAMPLE_ROWS.min(impact.rows.max(1)))
        .await?;
    impact.sample_rows = sample_rows;
    impact.sample_seconds = took.as_secs_f64();
    if sample_rows > 0 {
        let per_row = took.as_secs_f64() / sample_rows as f64;
        impact.estimated_copy_seconds = Some(per_row * impact.rows as f64);
    }
    if let (Some(retention), Some(copy)) =
        (impact.binlog_retention_s, impact.estimated_copy_seconds)
    {
        let covers = retention == 0 || retention as f64 > copy * 2.0;
        impact.retention_covers_copy = Some(covers);
        if !covers {
            impact.warnings.push(format!(
                "binlogs are purged after {retention} s, less than twice the expected copy time ({copy:.0} s): raise binlog_expire_logs_seconds for the run"
            ));
        }
    }
    if let Some(free) = impact.free_disk_bytes {
        let needed = needed.total();
        if free < needed {
            impact.warnings.push(format!(
                "the data directory has {free} bytes free; the new table and the binlog need about {needed}"
            ));
        }
    } else {
        impact.warnings.push(
            "free disk space is unknown (the server does not show it): check that the data directory holds another copy of the table and its binlog".into(),
        );
    }
    for replica in replicas {
        impact
            .replica_lags
            .push((replica.target(), replica_lag(replica, dialect).await));
    }
    Ok(impact)
}

/// Seconds binlogs are kept: `binlog_expire_logs_seconds`, else
/// `expire_logs_days`; 0 means never purged.
async fn binlog_retention(conn: &mut Conn) -> Result<Option<u64>> {
    let vars =
        server::global_variables(conn, &["binlog_expire_logs_seconds", "expire_logs_days"]).await?;
    let seconds = vars
        .get("binlog_expire_logs_seconds")
        .and_then(|v| v.parse::<u64>().ok());
    let days = vars
        .get("expire_logs_days")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|d| (d * 86_400.0) as u64);
    Ok(match (seconds, days) {
        (Some(s), _) if s > 0 => Some(s),
        (_, Some(d)) => Some(d),
        (s, None) => s,
    })
}

async fn replica_lag(replica: &ConnectConfig, dialect: server::Dialect) -> Option<u64> {
    let (mut conn, _) = server::connect(replica).await.ok()?;
    let row: Option<mysql_async::Row> = conn
        .query_first(dialect.all_replica_status_sql())
        .await
        .ok()?;
    let _ = conn.disconnect().await;
    let row = row?;
    ["Seconds_Behind_Master", "Seconds_Behind_Source"]
        .iter()
        .find_map(|name| row.get_opt::<Option<u64>, _>(*name)?.ok()?)
}

/// The estimate as text lines for the dry run's output.
pub fn describe(impact: &Impact) -> Vec<String> {
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1_048_576.0);
    let mut lines = vec![format!(
        "rows: {} ({}); table {}; the copy writes about {} to the binlog (and the replicas' relay logs)",
        impact.rows,
        if impact.rows_exact { "counted" } else { "estimated; --exact-rowcount counts them" },
        mb(impact.table_bytes),
        mb(impact.binlog_bytes)
    )];
    lines.push(match impact.estimated_copy_seconds {
        Some(seconds) => format!(
            "copy: about {} idle (a sample of {} rows took {:.3} s)",
            human(Duration::from_secs_f64(seconds)),
            impact.sample_rows,
            impact.sample_seconds
        ),
        None => "copy: no row to sample".into(),
    });
    lines.push(match impact.binlog_retention_s {
        Some(0) => "binlog retention: binlogs are never purged".into(),
        Some(s) => format!("binlog retention: {}", human(Duration::from_secs(s))),
        None => "binlog retention: unknown".into(),
    });
    if let Some(free) = impact.free_disk_bytes {
        lines.push(format!("free disk in the data directory: {}", mb(free)));
    }
    for (replica, lag) in &impact.replica_lags {
        lines.push(match lag {
            Some(lag) => format!("replica {replica}: {lag} s behind"),
            None => format!("replica {replica}: lag unknown (not replicating, or no answer)"),
        });
    }
    lines.extend(impact.warnings.iter().map(|w| format!("warning: {w}")));
    lines
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_reads_as_a_dba_expects() {
        let impact = Impact {
            rows: 1_000_000,
            table_bytes: 200 * 1_048_576,
            binlog_bytes: 150 * 1_048_576,
            binlog_retention_s: Some(3600),
            sample_rows: 20_000,
            sample_seconds: 0.5,
            estimated_copy_seconds: Some(25.0),
            retention_covers_copy: Some(true),
            replica_lags: vec![("db2:3306".into(), Some(3)), ("db3:3306".into(), None)],
            ..Impact::default()
        };
        let lines = describe(&impact);
        assert!(
            lines[0].contains("1000000 (estimated; --exact-rowcount counts them)"),
            "{lines:?}"
        );
        assert!(
            lines[0].contains("200.0 MB") && lines[0].contains("150.0 MB"),
            "{lines:?}"
        );
        assert_eq!(
            lines[1],
            "copy: about 25.0 s idle (a sample of 20000 rows took 0.500 s)"
        );
        assert_eq!(lines[2], "binlog retention: 60.0 min");
        assert_eq!(lines[3], "replica db2:3306: 3 s behind");
        assert!(lines[4].contains("lag unknown"));
    }
}
