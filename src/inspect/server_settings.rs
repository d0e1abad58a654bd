//! Server-level pre-flight checks: binary log settings, binlog filters,
//! Galera. Pure functions over the variables read once at start, so that
//! settings this machine cannot produce (MySQL-only variables, Galera) are
//! covered by unit tests.

use std::collections::HashMap;

use crate::server::BinlogStatus;

/// Names of the global variables the checks read.
pub const VARIABLES: &[&str] = &[
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "wsrep_on",
    "log_bin_compress",
    "binlog_transaction_compression",
    "binlog_row_value_options",
    "server_id",
    // Not checked: how the server compares table names, for the run lock
    // and the query plans.
    "lower_case_table_names",
];

/// A failed server check: the problem and what to do.
pub type Problem = (String, String);

/// Checks the binary log settings of the server the tool tails.
pub fn check(
    vars: &HashMap<String, String>,
    binlog: Option<&BinlogStatus>,
    database: &str,
) -> Result<(), Problem> {
    let get = |name: &str| {
        vars.get(name)
            .map(|v| v.to_ascii_uppercase())
            .unwrap_or_default()
    };
    if get("wsrep_on") == "ON" {
        return Err((
            "the server is a Galera cluster node (wsrep_on=ON)".into(),
            "shadowcut does not support Galera: its table swap is not certified across nodes"
                .into(),
        ));
    }
    if get("log_bin") != "ON" || binlog.is_none() {
        return Err((
            "binary logging is off on this server (log_bin=OFF)".into(),
            "Start the server with --log-bin, or point shadowcut at a server that writes a binlog"
                .into(),
        ));
    }
    if get("binlog_format") != "ROW" {
        return Err((
            format!("binlog_format is {}, not ROW", get("binlog_format")),
            "SET GLOBAL binlog_format='ROW' (and in my.cnf), then reconnect the writing clients"
                .into(),
        ));
    }
    if get("binlog_row_image") != "FULL" {
        return Err((
            format!("binlog_row_image is {}, not FULL", get("binlog_row_image")),
            "SET GLOBAL binlog_row_image='FULL' (and in my.cnf), then reconnect the writing clients".into(),
        ));
    }
    if get("log_bin_compress") == "ON" {
        return Err((
            "the binlog is compressed (log_bin_compress=ON); compressed row events cannot be decoded".into(),
            "SET GLOBAL log_bin_compress=OFF for the duration of the migration".into(),
        ));
    }
    if get("binlog_transaction_compression") == "ON" {
        return Err((
            "binlog transaction compression is on (binlog_transaction_compression=ON)".into(),
            "SET GLOBAL binlog_transaction_compression=OFF for the duration of the migration"
                .into(),
        ));
    }
    if !get("binlog_row_value_options").is_empty() {
        return Err((
            format!(
                "binlog_row_value_options is {} (partial JSON updates)",
                get("binlog_row_value_options")
            ),
            "SET GLOBAL binlog_row_value_options='' for the duration of the migration".into(),
        ));
    }
    if let Some(status) = binlog {
        let listed = |list: &[String]| list.iter().any(|d| d.eq_ignore_ascii_case(database));
        if !status.do_db.is_empty() && !listed(&status.do_db) {
            return Err((
                format!("binlog_do_db ({}) does not include database {database}", status.do_db.join(",")),
                "Changes to the table would not reach the binlog; remove the filter or add the database".into(),
            ));
        }
        if listed(&status.ignore_db) {
            return Err((
                format!("binlog_ignore_db includes database {database}"),
                "Changes to the table would not reach the binlog; remove the filter".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::BinlogPosition;

    fn good() -> HashMap<String, String> {
        [
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("wsrep_on", "OFF"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn status(do_db: &[&str], ignore_db: &[&str]) -> BinlogStatus {
        BinlogStatus {
            position: BinlogPosition {
                file: "b.000001".into(),
                pos: 4,
            },
            do_db: do_db.iter().map(|s| s.to_string()).collect(),
            ignore_db: ignore_db.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn problem_with(name: &str, value: &str) -> String {
        let mut v = good();
        v.insert(name.into(), value.into());
        check(&v, Some(&status(&[], &[])), "db").unwrap_err().0
    }

    #[test]
    fn accepts_row_full_binlog() {
        assert!(check(&good(), Some(&status(&[], &[])), "db").is_ok());
    }

    #[test]
    fn refuses_each_unsafe_setting() {
        assert!(problem_with("binlog_format", "MIXED").contains("MIXED"));
        assert!(problem_with("binlog_row_image", "MINIMAL").contains("MINIMAL"));
        assert!(problem_with("wsrep_on", "ON").contains("Galera"));
        assert!(problem_with("log_bin", "OFF").contains("off"));
        assert!(problem_with("log_bin_compress", "ON").contains("compressed"));
        assert!(problem_with("binlog_transaction_compression", "ON").contains("compression"));
        assert!(problem_with("binlog_row_value_options", "PARTIAL_JSON").contains("partial JSON"));
    }

    #[test]
    fn refuses_filters_that_hide_the_database() {
        assert!(check(&good(), Some(&status(&["other"], &[])), "db").is_err());
        assert!(check(&good(), Some(&status(&["db"], &[])), "db").is_ok());
        assert!(check(&good(), Some(&status(&[], &["db"])), "db").is_err());
        assert!(check(&good(), Some(&status(&[], &["other"])), "db").is_ok());
    }
}
