//! Privilege checks by trying what the tool needs (roles, wildcards and
//! partial revokes make parsing grants unreliable). Each failure is reported
//! with the server's own message and the privileges named as this server
//! version names them.

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::{server_code, Error, Result};
use crate::inspect::keys::ColumnPair;
use crate::server::{BinlogPosition, ConnectConfig, Dialect};
use crate::shadow::ShadowNames;

/// Server errors that mean "not allowed".
const ACCESS_DENIED: [u16; 6] = [1044, 1045, 1142, 1143, 1227, 1370];

/// True when the error is a privilege error.
pub fn is_access_denied(e: &Error) -> bool {
    e.server_code().is_some_and(|c| ACCESS_DENIED.contains(&c))
}

/// The privileges a migration needs, as this server names them.
pub fn required(dialect: Dialect, database: &str) -> String {
    format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, LOCK TABLES ON `{database}`.* and RELOAD, {} ON *.*",
        dialect.binlog_privileges()
    )
}

/// A refusal for a privilege error met while doing `what`.
pub fn refusal(table: &str, dialect: Dialect, e: &Error, what: &str, privileges: &str) -> Error {
    let database = table
        .split('.')
        .next()
        .unwrap_or("")
        .trim_matches('`')
        .to_string();
    let message = match e {
        Error::Sql {
            source: mysql_async::Error::Server(s),
            ..
        } => s.message.clone(),
        other => other.to_string(),
    };
    Error::refused(
        table,
        format!("the user may not {what}: missing {privileges} (the server said: {message})"),
        format!("Ask for: {}", required(dialect, &database)),
    )
}

async fn attempt(conn: &mut Conn, stmt: String) -> Result<()> {
    conn.query_drop(&stmt).await.map_err(|source| Error::Sql {
        context: stmt,
        source,
    })
}

/// Tries every privileged action on the new (still empty) table, and opens
/// the binlog stream once.
#[allow(clippy::too_many_arguments)]
pub async fn check(
    conn: &mut Conn,
    dialect: Dialect,
    names: &ShadowNames,
    connect: &ConnectConfig,
    replica_server_id: u32,
    position: &BinlogPosition,
    columns: &[ColumnPair],
    statement_tag: &str,
) -> Result<()> {
    let table = names.q(&names.original);
    let ghost = names.q(&names.ghost);
    let original = names.q(&names.original);
    let probe = names.q(&names.probe);
    let tries: Vec<(&str, &str, Vec<String>)> = vec![
        (
            "read the table",
            "SELECT",
            vec![format!("SELECT 1 FROM {original} LIMIT 0")],
        ),
        (
            "write the new table",
            "INSERT, DELETE",
            vec![
                super::keys::insert_select(
                    "INSERT",
                    &ghost,
                    columns,
                    &format!("{original} WHERE 1 = 0"),
                ),
                format!("DELETE FROM {ghost} WHERE 1 = 0"),
            ],
        ),
        (
            "lock tables for the cut-over",
            "LOCK TABLES",
            vec![format!("LOCK TABLES {ghost} WRITE"), "UNLOCK TABLES".into()],
        ),
        (
            "hold writers off the table for the checksum and the cut-over",
            "RELOAD",
            vec![
                format!("FLUSH TABLES {ghost} WITH READ LOCK"),
                "UNLOCK TABLES".into(),
            ],
        ),
        (
            "rename tables for the swap",
            "ALTER, DROP, CREATE, INSERT",
            vec![
                format!("RENAME TABLE {ghost} TO {probe}"),
                format!("RENAME TABLE {probe} TO {ghost}"),
            ],
        ),
    ];
    for (what, privileges, statements) in tries {
        for stmt in statements {
            // Tagged: a resumed run's tail reads these, and must know them
            // for the run's own.
            if let Err(e) = attempt(conn, format!("{stmt} {statement_tag}")).await {
                let _ = conn.query_drop("UNLOCK TABLES").await;
                if is_access_denied(&e) {
                    return Err(refusal(&table, dialect, &e, what, privileges));
                }
                return Err(e);
            }
        }
    }
    if let Err(e) = crate::tail::probe(connect, replica_server_id, position).await {
        if server_code(&e).is_some_and(|c| ACCESS_DENIED.contains(&c)) {
            let e = Error::Sql {
                context: "opening the binlog stream".into(),
                source: e,
            };
            return Err(refusal(
                &table,
                dialect,
                &e,
                "read the binlog (replication)",
                "REPLICATION SLAVE",
            ));
        }
        return Err(Error::Sql {
            context: format!("opening the binlog stream for {table}"),
            source: e,
        });
    }
    Ok(())
}
