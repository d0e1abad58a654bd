//! Where the migration writes and where it reads the binlog. Pointed at a
//! replica, shadowcut reads the binlog there (the primary serves only the
//! copy's and the applier's statements) and writes on the replica's
//! primary, found in the replica's status (`--assume-master-host`
//! overrides it): migrating a replica alone, by accident, would leave the
//! primary and its replicas with different schemas. `--migrate-on-replica`
//! asks for exactly that, and nothing else does.
//!
//! A replica is refused when its binlog would not hold the primary's
//! changes (`log_slave_updates`/`log_replica_updates` off, replication
//! stopped), or when its replication filters would treat the new table or
//! the changelog otherwise than the table (it would skip `_t_gho` yet
//! replay the RENAME that puts it in place).

use std::collections::HashMap;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row};

use crate::error::{Error, Result, SqlContext};
use crate::server::{self, ConnectConfig, Dialect};
use crate::shadow::ShadowNames;

/// What the operator said about the topology.
#[derive(Debug, Clone, Default)]
pub struct TopologyConfig {
    /// The primary to write on, instead of the one the replica names.
    pub assume_master: Option<(String, u16)>,
    /// Migrate the given replica alone (its primary keeps the old schema).
    pub migrate_on_replica: bool,
    /// Migrate the given replica, then stop its replication, swap, check,
    /// swap back and restart it: a rehearsal that changes no schema.
    pub test_on_replica: bool,
}

/// One replication source of a replica, as its status shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The primary's host, as the replica reaches it.
    pub primary_host: String,
    /// The primary's port.
    pub primary_port: u16,
    /// The I/O and SQL threads both run.
    pub running: bool,
    /// The replication filters.
    pub filters: Filters,
}

/// Replication filters (`Replicate_*` of the replica status), each a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// `Replicate_Do_DB`.
    pub do_db: Vec<String>,
    /// `Replicate_Ignore_DB`.
    pub ignore_db: Vec<String>,
    /// `Replicate_Do_Table` (`db.table`).
    pub do_table: Vec<String>,
    /// `Replicate_Ignore_Table`.
    pub ignore_table: Vec<String>,
    /// `Replicate_Wild_Do_Table` (LIKE patterns over `db.table`).
    pub wild_do_table: Vec<String>,
    /// `Replicate_Wild_Ignore_Table`.
    pub wild_ignore_table: Vec<String>,
}

impl Filters {
    fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    /// Whether a row change of `database`.`table` is replayed, by the
    /// server's rules for row-based events: database options first, then
    /// table options in the order do, ignore, wild do, wild ignore.
    pub fn replicates(&self, database: &str, table: &str) -> bool {
        if !self.do_db.is_empty() {
            if !self.do_db.iter().any(|d| d == database) {
                return false;
            }
        } else if self.ignore_db.iter().any(|d| d == database) {
            return false;
        }
        let qualified = format!("{database}.{table}");
        let named = |list: &[String]| list.contains(&qualified);
        let wild = |list: &[String]| list.iter().any(|p| like(p, &qualified));
        if self.do_table.is_empty()
            && self.ignore_table.is_empty()
            && self.wild_do_table.is_empty()
            && self.wild_ignore_table.is_empty()
        {
            return true;
        }
        if named(&self.do_table) {
            return true;
        }
        if named(&self.ignore_table) {
            return false;
        }
        if wild(&self.wild_do_table) {
            return true;
        }
        if wild(&self.wild_ignore_table) {
            return false;
        }
        self.do_table.is_empty() && self.wild_do_table.is_empty()
    }
}

/// SQL LIKE: `%` any run, `_` any one character, `\` escapes.
fn like(pattern: &str, text: &str) -> bool {
    fn matches(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|skip| matches(rest, &t[skip..])),
            Some(('_', rest)) => !t.is_empty() && matches(rest, &t[1..]),
            Some(('\\', rest)) if !rest.is_empty() => {
                t.first() == Some(&rest[0]) && matches(&rest[1..], &t[1..])
            }
            Some((c, rest)) => t.first() == Some(c) && matches(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    matches(&p, &t)
}

/// Where the run writes and reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Everything on the given server (a primary, or a replica migrated
    /// alone on request).
    Here,
    /// Read the binlog on the given replica, write on this primary.
    WriteOnPrimary {
        /// The primary's host.
        host: String,
        /// The primary's port.
        port: u16,
    },
}

/// A refusal: the problem and what to do.
pub type Problem = (String, String);

/// Decides where the run writes, from what the given server reported:
/// its replication sources and whether it writes what it replays to its
/// own binlog.
pub fn decide(
    sources: &[ReplicaStatus],
    logs_replica_updates: bool,
    names: &ShadowNames,
    config: &TopologyConfig,
) -> std::result::Result<Placement, Problem> {
    let on_replica_flag = if config.test_on_replica {
        Some("--test-on-replica")
    } else if config.migrate_on_replica {
        Some("--migrate-on-replica")
    } else {
        None
    };
    if sources.is_empty() {
        if let Some(flag) = on_replica_flag {
            return Err((
                format!("{flag} was given, but the server is not a replica"),
                format!("Point shadowcut at a replica, or drop {flag}"),
            ));
        }
        return Ok(Placement::Here);
    }
    let to_primary = "or point shadowcut at the primary itself";
    let alone = "--migrate-on-replica migrates this replica alone";
    // Whoever writes, the tail reads this replica's binlog: what the
    // replica replays must be in it.
    if !logs_replica_updates {
        return Err((
            "the server is a replica whose binlog does not hold what it replays (log_slave_updates is OFF): shadowcut reads the binlog there and would miss every replicated change".into(),
            match on_replica_flag {
                Some(flag) => format!("Enable log_slave_updates (log_replica_updates on MySQL) on the replica before {flag}"),
                None => format!("Enable log_slave_updates (log_replica_updates on MySQL) on the replica, {to_primary}"),
            },
        ));
    }
    if on_replica_flag.is_some() {
        // The tool's tables live on this replica alone: the filters, which
        // act on replicated events, do not touch them.
        return Ok(Placement::Here);
    }
    let source = match (sources, &config.assume_master) {
        ([source], _) => source,
        (_, Some(_)) => &sources[0],
        (_, None) => {
            return Err((
                format!("the server replicates from {} primaries", sources.len()),
                format!("Name the one that holds the table with --assume-master-host host:port, {to_primary}; {alone}"),
            ))
        }
    };
    for source in sources {
        if !source.running {
            return Err((
                format!(
                    "the server is a replica whose replication from {}:{} is stopped: the primary's changes would not reach its binlog",
                    source.primary_host, source.primary_port
                ),
                format!("Start replication (START SLAVE / START REPLICA), {to_primary}"),
            ));
        }
        if source.filters.is_empty() {
            continue;
        }
        let replicates = |table: &str| source.filters.replicates(&names.database, table);
        let table = replicates(&names.original);
        for (role, name) in [("new table", &names.ghost), ("changelog", &names.changelog)] {
            if replicates(name) != table {
                return Err((
                    format!(
                        "the replica's replication filters treat the {role} `{}`.`{name}` otherwise than the table `{}`.`{}`: it would {} the swap's RENAME",
                        names.database,
                        names.database,
                        names.original,
                        if table { "skip the new table yet replay" } else { "replay the new table yet skip" }
                    ),
                    "Adjust the Replicate_* filters so that the tool's tables (_<table>_gho, _<table>_ghc, _<table>_del) replicate like the table".into(),
                ));
            }
        }
    }
    Ok(match &config.assume_master {
        Some((host, port)) => Placement::WriteOnPrimary {
            host: host.clone(),
            port: *port,
        },
        None => Placement::WriteOnPrimary {
            host: source.primary_host.clone(),
            port: source.primary_port,
        },
    })
}

/// The replication sources of the server on `conn` (none on a primary).
pub async fn replica_status(conn: &mut Conn, dialect: Dialect) -> Result<Vec<ReplicaStatus>> {
    let sql = dialect.all_replica_status_sql();
    let rows: Vec<Row> = conn
        .query(sql)
        .await
        .context(|| format!("reading the replication status ({sql})"))?;
    Ok(rows.iter().map(parse_status).collect())
}

fn parse_status(row: &Row) -> ReplicaStatus {
    let columns = row.columns_ref();
    let text = |names: &[&str]| -> String {
        names
            .iter()
            .find_map(|name| {
                let index = columns.iter().position(|c| c.name_str() == *name)?;
                row.get_opt::<Option<String>, _>(index)?.ok()?
            })
            .unwrap_or_default()
    };
    let list = |name: &str| -> Vec<String> {
        text(&[name])
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    ReplicaStatus {
        primary_host: text(&["Master_Host", "Source_Host"]),
        primary_port: text(&["Master_Port", "Source_Port"])
            .parse()
            .unwrap_or(3306),
        running: text(&["Slave_IO_Running", "Replica_IO_Running"]) == "Yes"
            && text(&["Slave_SQL_Running", "Replica_SQL_Running"]) == "Yes",
        filters: Filters {
            do_db: list("Replicate_Do_DB"),
            ignore_db: list("Replicate_Ignore_DB"),
            do_table: list("Replicate_Do_Table"),
            ignore_table: list("Replicate_Ignore_Table"),
            wild_do_table: list("Replicate_Wild_Do_Table"),
            wild_ignore_table: list("Replicate_Wild_Ignore_Table"),
        },
    }
}

/// Where a run writes and reads its binlog, found out.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The server the run writes on (and copies from).
    pub writer: ConnectConfig,
    /// The server whose binlog the tail reads.
    pub binlog_source: ConnectConfig,
    /// The replica the operator pointed at, when the run writes on its
    /// primary: its lag throttles the run.
    pub inspected_replica: Option<ConnectConfig>,
    /// `--test-on-replica` on a replica: the swap is rehearsed and undone.
    pub test_on_replica: bool,
}

impl Topology {
    /// Where the run writes and reads, in a line.
    pub fn describe(&self) -> String {
        match &self.inspected_replica {
            Some(replica) => format!(
                "writes on the primary {}; reads the binlog of its replica {}",
                self.writer.target(),
                replica.target()
            ),
            None => format!("writes on and reads the binlog of {}", self.writer.target()),
        }
    }
}

/// How many primaries up a chain of replicas is followed.
const MAX_CHAIN: usize = 5;

/// Finds where the run writes, from the server on `conn` (the one the
/// operator named in `connect`).
pub async fn discover(
    conn: &mut Conn,
    dialect: Dialect,
    connect: &ConnectConfig,
    names: &ShadowNames,
    config: &TopologyConfig,
) -> Result<Topology> {
    let table = names.q(&names.original);
    let sources = match replica_status(conn, dialect).await {
        Ok(sources) => sources,
        Err(e) if super::privileges::is_access_denied(&e) => {
            return Err(super::privileges::refusal(
                &table,
                dialect,
                &e,
                "find out whether the server is a replica",
                dialect.replica_monitor_privilege(),
            ))
        }
        Err(e) => return Err(e),
    };
    let logs_updates = logs_replica_updates(conn).await?;
    let placement = decide(&sources, logs_updates, names, config)
        .map_err(|(problem, remedy)| Error::refused(&table, problem, remedy))?;
    if matches!(placement, Placement::WriteOnPrimary { .. }) {
        let vars = server::global_variables(conn, &COMMIT_ORDER_VARIABLES).await?;
        if let Some((problem, remedy)) = commit_order_problem(&vars) {
            return Err(Error::refused(&table, problem, remedy));
        }
    }
    let (host, port) = match placement {
        Placement::Here => {
            if config.test_on_replica {
                tracing::info!("--test-on-replica: migrating this replica; its replication stops for the swap, which is undone");
            } else if !sources.is_empty() {
                tracing::warn!("--migrate-on-replica: migrating this replica alone; its primary and the other replicas keep the old schema");
            }
            return Ok(Topology {
                writer: connect.clone(),
                binlog_source: connect.clone(),
                inspected_replica: None,
                test_on_replica: config.test_on_replica,
            });
        }
        Placement::WriteOnPrimary { host, port } => (host, port),
    };
    // The replica's primary may itself replicate (a chain): the writes go
    // to the top.
    let mut writer = ConnectConfig {
        host,
        port,
        socket: None,
        ..connect.clone()
    };
    for _ in 0..MAX_CHAIN {
        let (mut primary, primary_dialect) = server::connect(&writer).await.map_err(|e| {
            Error::refused(
                &table,
                format!(
                    "the server is a replica; its primary {} cannot be reached ({e})",
                    writer.target()
                ),
                "Give the primary's address with --assume-master-host host:port, or point shadowcut at the primary",
            )
        })?;
        let upstream = replica_status(&mut primary, primary_dialect).await?;
        let read_only: Option<i64> = primary
            .query_first("SELECT @@GLOBAL.read_only")
            .await
            .context(|| format!("reading read_only on {}", writer.target()))?;
        let _ = primary.disconnect().await;
        match upstream.as_slice() {
            [] if read_only == Some(1) => {
                return Err(Error::refused(
                    &table,
                    format!(
                        "the replica's primary {} is read_only: it is not the server the application writes to",
                        writer.target()
                    ),
                    "Name the writable primary with --assume-master-host host:port, or point shadowcut at it",
                ))
            }
            [] => {
                tracing::info!(
                    replica = %connect.target(),
                    primary = %writer.target(),
                    "the server is a replica: reading its binlog, writing on its primary"
                );
                return Ok(Topology {
                    writer,
                    binlog_source: connect.clone(),
                    inspected_replica: Some(connect.clone()),
                    test_on_replica: false,
                });
            }
            [next] if config.assume_master.is_none() => {
                writer = ConnectConfig {
                    host: next.primary_host.clone(),
                    port: next.primary_port,
                    ..writer
                };
            }
            _ => break,
        }
    }
    Err(Error::refused(
        &table,
        format!(
            "the primary {} is itself a replica, and its top primary could not be found",
            writer.target()
        ),
        "Give the top primary's address with --assume-master-host host:port",
    ))
}

/// The replicas registered with the primary on `conn` (`SHOW SLAVE HOSTS`,
/// `SHOW REPLICAS`), reachable with `template`'s credentials, except
/// binlog readers of this tool (`own_server_ids`). A replica that does not
/// answer is left out with a warning: the operator names replicas that
/// must be watched with `--throttle-control-replicas`.
pub async fn discover_replicas(
    conn: &mut Conn,
    dialect: Dialect,
    template: &ConnectConfig,
    own_server_ids: &[u32],
) -> Result<Vec<ConnectConfig>> {
    let sql = dialect.replica_hosts_sql();
    let rows: Vec<Row> = match conn.query(sql).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "the replicas cannot be listed ({sql}); name them with --throttle-control-replicas");
            return Ok(Vec::new());
        }
    };
    let mut found = Vec::new();
    for row in &rows {
        let columns = row.columns_ref();
        let text = |names: &[&str]| -> Option<String> {
            names.iter().find_map(|name| {
                let index = columns
                    .iter()
                    .position(|c| c.name_str().eq_ignore_ascii_case(name))?;
                row.get_opt::<Option<String>, _>(index)?.ok()?
            })
        };
        let server_id: Option<u32> = text(&["Server_id"]).and_then(|v| v.parse().ok());
        if server_id.is_some_and(|id| own_server_ids.contains(&id)) {
            continue;
        }
        let (Some(host), Some(port)) = (
            text(&["Host"]).filter(|h| !h.is_empty()),
            text(&["Port"]).and_then(|p| p.parse::<u16>().ok()),
        ) else {
            tracing::warn!(?server_id, "a replica registered without host or port; name it with --throttle-control-replicas");
            continue;
        };
        let replica = ConnectConfig {
            host,
            port,
            socket: None,
            ..template.clone()
        };
        match server::connect(&replica).await {
            Ok((c, _)) => {
                let _ = c.disconnect().await;
                tracing::info!(replica = %replica.target(), "watching the lag of a replica found on the primary");
                found.push(replica);
            }
            Err(e) => {
                tracing::warn!(replica = %replica.target(), error = %e, "a replica of the primary does not answer: its lag is not watched")
            }
        }
    }
    Ok(found)
}

/// MySQL's parallel replication settings (MariaDB's parallel replication
/// always commits in order within a GTID domain, and has none of them).
const COMMIT_ORDER_VARIABLES: [&str; 4] = [
    "replica_parallel_workers",
    "slave_parallel_workers",
    "replica_preserve_commit_order",
    "slave_preserve_commit_order",
];

/// Why a replica whose binlog the tail would read may log the primary's
/// transactions out of their commit order (MySQL's parallel workers without
/// `replica_preserve_commit_order`): a sync marker written on the primary
/// could then reach the replica's binlog before an earlier write of the
/// application, and a drain that waited for the marker would miss that
/// write. `None` when the order is kept.
pub fn commit_order_problem(vars: &HashMap<String, String>) -> Option<Problem> {
    let value = |names: [&str; 2]| names.iter().find_map(|n| vars.get(*n));
    let workers: u64 = value(["replica_parallel_workers", "slave_parallel_workers"])?
        .parse()
        .unwrap_or(0);
    let preserved = value([
        "replica_preserve_commit_order",
        "slave_preserve_commit_order",
    ])
    .is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1");
    (workers > 1 && !preserved).then(|| {
        (
            format!(
                "the server is a replica that applies transactions on {workers} parallel workers \
                 without replica_preserve_commit_order: its binlog may hold the primary's \
                 transactions out of their commit order, and shadowcut reads that binlog to know \
                 when every change written before its markers has arrived"
            ),
            "SET GLOBAL replica_preserve_commit_order = ON on the replica (with replication \
             stopped), or point shadowcut at the primary itself"
                .into(),
        )
    })
}

/// Whether the server writes what it replays to its own binlog.
async fn logs_replica_updates(conn: &mut Conn) -> Result<bool> {
    let vars: HashMap<String, String> =
        server::global_variables(conn, &["log_slave_updates", "log_replica_updates"]).await?;
    Ok(vars
        .values()
        .any(|v| v.eq_ignore_ascii_case("ON") || v == "1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ShadowNames {
        ShadowNames::derive("shop", "orders", None)
    }

    fn replica() -> ReplicaStatus {
        ReplicaStatus {
            primary_host: "10.0.0.1".into(),
            primary_port: 3306,
            running: true,
            filters: Filters::default(),
        }
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_primary_runs_here_and_a_replica_writes_on_its_primary() {
        let config = TopologyConfig::default();
        assert_eq!(decide(&[], true, &names(), &config), Ok(Placement::Here));
        assert_eq!(
            decide(&[replica()], true, &names(), &config),
            Ok(Placement::WriteOnPrimary {
                host: "10.0.0.1".into(),
                port: 3306
            })
        );
        let assumed = TopologyConfig {
            assume_master: Some(("db-primary".into(), 3307)),
            ..TopologyConfig::default()
        };
        assert_eq!(
            decide(&[replica(), replica()], true, &names(), &assumed),
            Ok(Placement::WriteOnPrimary {
                host: "db-primary".into(),
                port: 3307
            })
        );
    }

    #[test]
    fn a_replica_is_migrated_alone_only_when_asked() {
        let alone = TopologyConfig {
            migrate_on_replica: true,
            ..TopologyConfig::default()
        };
        assert_eq!(
            decide(&[replica()], true, &names(), &alone),
            Ok(Placement::Here)
        );
        assert!(
            decide(&[replica()], false, &names(), &alone)
                .unwrap_err()
                .1
                .contains("before --migrate-on-replica"),
            "the tail reads this replica's binlog: it must hold what the replica replays"
        );
        assert!(decide(&[], true, &names(), &alone)
            .unwrap_err()
            .0
            .contains("not a replica"));
        let rehearsal = TopologyConfig {
            test_on_replica: true,
            ..TopologyConfig::default()
        };
        assert_eq!(
            decide(&[replica()], true, &names(), &rehearsal),
            Ok(Placement::Here)
        );
        assert!(decide(&[], true, &names(), &rehearsal)
            .unwrap_err()
            .0
            .starts_with("--test-on-replica was given"));
    }

    #[test]
    fn a_replica_that_commits_out_of_order_is_refused() {
        let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // MariaDB: no such variables; single-threaded MySQL; in order.
        assert_eq!(commit_order_problem(&vars(&[])), None);
        assert_eq!(
            commit_order_problem(&vars(&[
                ("replica_parallel_workers", "0"),
                ("replica_preserve_commit_order", "OFF")
            ])),
            None
        );
        assert_eq!(
            commit_order_problem(&vars(&[
                ("replica_parallel_workers", "4"),
                ("replica_preserve_commit_order", "ON")
            ])),
            None
        );
        // Out of order: MySQL 8 with the order off, and MySQL 5.6, which
        // has parallel workers but no such setting.
        let (problem, remedy) = commit_order_problem(&vars(&[
            ("replica_parallel_workers", "4"),
            ("replica_preserve_commit_order", "OFF"),
        ]))
        .expect("refused");
        assert!(problem.contains("4 parallel workers"), "{problem}");
        assert!(
            remedy.contains("replica_preserve_commit_order = ON"),
            "{remedy}"
        );
        assert!(commit_order_problem(&vars(&[("slave_parallel_workers", "8")])).is_some());
    }

    #[test]
    fn a_replica_whose_binlog_misses_the_changes_is_refused() {
        let config = TopologyConfig::default();
        let (problem, remedy) = decide(&[replica()], false, &names(), &config).unwrap_err();
        assert!(problem.contains("log_slave_updates is OFF"), "{problem}");
        assert!(
            remedy.contains("point shadowcut at the primary"),
            "{remedy}"
        );
        let stopped = ReplicaStatus {
            running: false,
            ..replica()
        };
        assert!(decide(&[stopped], true, &names(), &config)
            .unwrap_err()
            .0
            .contains("stopped"));
        assert!(decide(&[replica(), replica()], true, &names(), &config)
            .unwrap_err()
            .0
            .contains("2 primaries"));
    }

    #[test]
    fn filters_that_skip_the_tools_tables_but_not_the_table_are_refused() {
        let config = TopologyConfig::default();
        let filtered = |filters: Filters| ReplicaStatus {
            filters,
            ..replica()
        };
        let only_orders = filtered(Filters {
            do_table: list(&["shop.orders"]),
            ..Filters::default()
        });
        let (problem, _) = decide(&[only_orders], true, &names(), &config).unwrap_err();
        assert!(problem.contains("_orders_gho"), "{problem}");
        assert!(
            problem.contains("skip the new table yet replay"),
            "{problem}"
        );
        let wild = filtered(Filters {
            wild_do_table: list(&["shop.%"]),
            ..Filters::default()
        });
        assert!(decide(&[wild], true, &names(), &config).is_ok());
        let ignored_tools = filtered(Filters {
            wild_ignore_table: list(&["shop.\\_%"]),
            ..Filters::default()
        });
        assert!(decide(&[ignored_tools], true, &names(), &config).is_err());
        let other_db = filtered(Filters {
            ignore_db: list(&["shop"]),
            ..Filters::default()
        });
        assert!(
            decide(&[other_db], true, &names(), &config).is_ok(),
            "none of them replicate: consistent"
        );
    }

    #[test]
    fn filter_rules_follow_the_servers_order() {
        let f = Filters {
            do_db: list(&["shop"]),
            ignore_table: list(&["shop.audit"]),
            ..Filters::default()
        };
        assert!(f.replicates("shop", "orders"));
        assert!(!f.replicates("shop", "audit"));
        assert!(!f.replicates("other", "orders"));
        let wild = Filters {
            wild_do_table: list(&["sh_p.ord%"]),
            ..Filters::default()
        };
        assert!(wild.replicates("shop", "orders"));
        assert!(!wild.replicates("shop", "_orders_gho"));
        assert!(like("a\\_b", "a_b") && !like("a\\_b", "axb"));
    }
}
