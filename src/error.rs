//! Typed errors of the library and the exit codes they map to.
//!
//! Every error says what went wrong, on which table, and what the operator can
//! do about it. The binary maps each kind to a distinct exit code so that ops
//! scripts can tell a refusal (nothing was touched) from a failure mid-run.

use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes of the `shadowcut` binary, one per failure kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    /// Migration (or dry run) completed.
    Success = 0,
    /// A failure during the run; the original table is intact and the
    /// artifacts were removed unless the message says otherwise.
    Failed = 1,
    /// The command line was invalid (clap uses 2 as well).
    Usage = 2,
    /// A pre-flight check refused the migration; nothing was changed.
    Refused = 3,
    /// Could not connect or authenticate.
    Connection = 4,
    /// The cut-over could not complete within its retries; original intact.
    CutOver = 5,
    /// `--critical-load` was crossed; original intact.
    CriticalLoad = 6,
    /// An operator's panic (the `panic` command, `--panic-flag-file`);
    /// original intact.
    Panicked = 7,
    /// Stopped by a signal (SIGINT, SIGTERM); original intact.
    Interrupted = 130,
}

/// Why a pre-flight check refused the migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Fully qualified table, as the user named it.
    pub table: String,
    /// What is wrong.
    pub problem: String,
    /// What the operator can do about it.
    pub remedy: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot migrate {}: {}. {}",
            self.table, self.problem, self.remedy
        )
    }
}

/// Every error the library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A pre-flight check said no; nothing was changed.
    #[error("{0}")]
    Refused(Refusal),

    /// Connecting or authenticating failed.
    #[error("cannot connect to {target}: {source}. {}", connect_hint(source))]
    Connect {
        /// host:port or socket path
        target: String,
        /// driver error
        #[source]
        source: mysql_async::Error,
    },

    /// A statement failed while doing `context`.
    #[error("{context}: {source}")]
    Sql {
        /// what the tool was doing, naming the table
        context: String,
        /// driver error
        #[source]
        source: mysql_async::Error,
    },

    /// The binlog stream delivered something the tool cannot apply safely.
    #[error("binlog tail stopped on {table}: {message}. The migration was aborted before any swap; the original table is intact")]
    Tail {
        /// table being migrated
        table: String,
        /// what was seen
        message: String,
    },

    /// The copy found data the new table cannot hold as-is.
    #[error("row copy into the new {table} failed: {message}")]
    Copy {
        /// table being migrated
        table: String,
        /// what the server reported
        message: String,
    },

    /// Applying binlog changes to the ghost failed.
    #[error("applying changes of {table} to the new table failed: {message}")]
    Apply {
        /// table being migrated
        table: String,
        /// what went wrong
        message: String,
    },

    /// The cut-over did not happen; the original table is still in place.
    #[error("cut-over of {table} did not happen: {message}. The original table is intact")]
    CutOver {
        /// table being migrated
        table: String,
        /// why
        message: String,
    },

    /// The RENAME ran when the cut-over had been abandoned, or reported a
    /// result the tables do not show: they need a look before anything
    /// else is done.
    #[error("the swap of {table} needs checking: {message}")]
    SwapInDoubt {
        /// table being migrated
        table: String,
        /// what happened and what to compare
        message: String,
    },

    /// The checksum before the swap found the new table different from the
    /// original, and copying the differing chunks again did not help.
    #[error("checksum of {table} against the new table failed: {message}. Nothing was swapped; the original table is intact")]
    Checksum {
        /// table being migrated
        table: String,
        /// which chunks differ, and why
        message: String,
    },

    /// An operator aborted the run: the `panic` command or the panic flag file.
    #[error(
        "migration of {table} aborted by the operator ({reason}); the original table is intact"
    )]
    Panicked {
        /// table being migrated
        table: String,
        /// command or flag file
        reason: String,
    },

    /// The run was stopped by a signal.
    #[error("migration of {table} interrupted ({reason}); the original table is intact")]
    Interrupted {
        /// table being migrated
        table: String,
        /// signal or flag
        reason: String,
    },

    /// The run was stopped by a signal at a point it can resume from: the
    /// new table and the changelog are kept.
    #[error(
        "migration of {table} stopped ({reason}) at a resumable point; the original table is intact. \
         Run the same command with --resume to continue, or with --initially-drop-ghost-table to start over"
    )]
    Suspended {
        /// table being migrated
        table: String,
        /// signal or flag
        reason: String,
    },

    /// A `--critical-load` limit was crossed (twice, when an interval is
    /// set): the run stopped.
    #[error("migration of {table} stopped: {reason}; the original table is intact. Retry when the server is less loaded, or raise --critical-load")]
    CriticalLoad {
        /// table being migrated
        table: String,
        /// the limit crossed, with its value
        reason: String,
    },

    /// Bad configuration that clap could not catch.
    #[error("{0}")]
    Usage(String),

    /// Reading a file or terminal failed.
    #[error("{context}: {source}")]
    Io {
        /// what was being read
        context: String,
        /// the I/O error
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Refused(_) => ExitCode::Refused,
            Error::Connect { .. } => ExitCode::Connection,
            Error::CutOver { .. } => ExitCode::CutOver,
            Error::Interrupted { .. } | Error::Suspended { .. } => ExitCode::Interrupted,
            Error::CriticalLoad { .. } => ExitCode::CriticalLoad,
            Error::Panicked { .. } => ExitCode::Panicked,
            Error::Usage(_) => ExitCode::Usage,
            _ => ExitCode::Failed,
        }
    }

    /// Builds a refusal.
    pub fn refused(table: &str, problem: impl Into<String>, remedy: impl Into<String>) -> Self {
        Error::Refused(Refusal {
            table: table.to_string(),
            problem: problem.into(),
            remedy: remedy.into(),
        })
    }

    /// True when the connection of the failed statement was lost (see
    /// [`is_connection_lost`]).
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::Sql { source, .. } | Error::Connect { source, .. } => is_connection_lost(source),
            _ => false,
        }
    }

    /// The server error code, when this error wraps a server error.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            Error::Sql { source, .. } | Error::Connect { source, .. } => server_code(source),
            _ => None,
        }
    }
}

/// What to check after a failed connection: the TLS settings when the
/// handshake failed on them, the address and credentials otherwise.
fn connect_hint(err: &mysql_async::Error) -> &'static str {
    let text = err.to_string().to_ascii_lowercase();
    if matches!(
        err,
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer)
    ) {
        "The server does not offer TLS: give it ssl_cert and ssl_key, or connect without --ssl"
    } else if text.contains("certificate") || text.contains("tls") {
        "Check --ssl-ca (the CA that signed the server's certificate), that the certificate names the host connected to, and --ssl-cert/--ssl-key; --ssl-allow-insecure encrypts without checking the server"
    } else {
        "Check --host/--port/--socket, the user and the password"
    }
}

/// The MySQL error number inside a driver error, if it came from the server.
pub fn server_code(err: &mysql_async::Error) -> Option<u16> {
    match err {
        mysql_async::Error::Server(e) => Some(e.code),
        _ => None,
    }
}

/// Errors of a statement that could not get a lock it needed: a lock wait
/// timeout or NOWAIT (MariaDB 1205, MySQL 8's NOWAIT 3572), or a lost
/// deadlock (1213). The statement (and its transaction) rolled back;
/// retrying, smaller or later, is safe.
pub const LOCK_BUSY_CODES: [u16; 3] = [1205, 1213, 3572];

/// Server errors that end the connection: killed (MariaDB 1927, MySQL's
/// `KILL` 1317 arrives as a lost connection), the server shutting down
/// (1053), and the client's "gone away" and "lost" (2006, 2013).
pub const CONNECTION_LOST_CODES: [u16; 4] = [1053, 1927, 2006, 2013];

/// True when a statement failed because its connection went away (a
/// network fault, a `KILL`, a server restart): the statement may or may not
/// have run, and the connection must be opened again.
pub fn is_connection_lost(err: &mysql_async::Error) -> bool {
    match err {
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Driver(d) => matches!(
            d,
            mysql_async::DriverError::ConnectionClosed | mysql_async::DriverError::PoolDisconnected
        ),
        mysql_async::Error::Server(s) => CONNECTION_LOST_CODES.contains(&s.code),
        _ => false,
    }
}

/// Errors (strict mode) that say a row's value cannot be stored in a
/// column of the new table as it is: NULL in a NOT NULL column (1048), out
/// of range (1264, 1690), truncated (1265, 1406), an incorrect value or
/// string, such as a character the new character set lacks (1292, 1366,
/// 1367), a CHECK constraint (MariaDB 4025, MySQL 3819). The row is at
/// fault, not the statement, and a later change may fix the row.
pub const VALUE_REFUSED_CODES: [u16; 10] =
    [1048, 1264, 1265, 1292, 1366, 1367, 1406, 1690, 3819, 4025];

/// True when a statement failed for a lock (see [`LOCK_BUSY_CODES`]).
pub fn is_lock_busy(err: &mysql_async::Error) -> bool {
    server_code(err).is_some_and(|c| LOCK_BUSY_CODES.contains(&c))
}

/// Attaches "what the tool was doing" to driver errors.
pub trait SqlContext<T> {
    /// Wraps a driver error with a lazily built context string.
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SqlContext<T> for std::result::Result<T, mysql_async::Error> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sql {
            context: context(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_names_table_problem_and_remedy() {
        let e = Error::refused("`db`.`t`", "the table has triggers", "Drop them first");
        assert_eq!(e.exit_code(), ExitCode::Refused);
        let text = e.to_string();
        assert!(text.contains("`db`.`t`") && text.contains("triggers") && text.contains("Drop"));
    }
}
