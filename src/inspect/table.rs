//! Table-level pre-flight checks: existence, engine, kind, triggers and
//! foreign keys in either direction (from any database).

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::{Error, Result, SqlContext};
use crate::schema::{self, TableSchema};
use crate::sql;

/// Reads the table and refuses what cannot be migrated safely.
pub async fn check(conn: &mut Conn, database: &str, table: &str) -> Result<TableSchema> {
    let name = sql::qualified(database, table);
    let schema_exists: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (database,),
        )
        .await
        .context(|| format!("looking up database {}", sql::ident(database)))?;
    if schema_exists.is_none() {
        return Err(Error::refused(
            &name,
            format!("database {} does not exist", sql::ident(database)),
            "Check --database (names are case-sensitive on most servers)",
        ));
    }
    let Some(schema) = schema::read_table(conn, database, table).await? else {
        return Err(Error::refused(
            &name,
            "the table does not exist",
            "Check --table (names are case-sensitive on most servers)",
        ));
    };
    match schema.table_type.as_str() {
        "BASE TABLE" => {}
        "SYSTEM VERSIONED" => {
            return Err(Error::refused(
                &name,
                "the table is system-versioned (WITH SYSTEM VERSIONING)",
                "shadowcut cannot copy row history; use ALTER TABLE directly",
            ))
        }
        other => {
            return Err(Error::refused(
                &name,
                format!("it is a {other}, not a base table"),
                "Only base tables can be migrated",
            ))
        }
    }
    if !schema.engine.eq_ignore_ascii_case("InnoDB") {
        return Err(Error::refused(
            &name,
            format!("the table uses the {} engine, not InnoDB", schema.engine),
            "shadowcut needs InnoDB's row locks and transactions; convert it with a plain ALTER TABLE ... ENGINE=InnoDB first",
        ));
    }
    let triggers: Vec<String> = conn
        .exec(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS \
             WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?",
            (database, table),
        )
        .await
        .context(|| format!("listing triggers of {name}"))?;
    if !triggers.is_empty() {
        return Err(Error::refused(
            &name,
            format!("the table has triggers ({})", triggers.join(", ")),
            "Triggers would not be carried to the new table; drop them, migrate, and recreate them",
        ));
    }
    let foreign_keys: Vec<(String, String, String)> = conn
        .exec(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME \
             FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) \
                OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)",
            (database, table, database, table),
        )
        .await
        .context(|| format!("listing foreign keys of {name}"))?;
    if !foreign_keys.is_empty() {
        let list: Vec<String> = foreign_keys
            .iter()
            .map(|(db, t, c)| format!("{} on {}", sql::ident(c), sql::qualified(db, t)))
            .collect();
        return Err(Error::refused(
            &name,
            format!("the table takes part in foreign keys ({})", list.join(", ")),
            "The swap would leave them pointing at the old table; drop the foreign keys first",
        ));
    }
    if schema.row_identifying_keys().is_empty() {
        if let Some(hashed) = schema.indexes.iter().find(|i| i.unique && i.hashed) {
            return Err(Error::refused(
                &name,
                format!(
                    "the table has no PRIMARY KEY, and its UNIQUE key {} is a long UNIQUE that MariaDB keeps as a hash (USING HASH): \
                     rows cannot be read in its order nor found by it, so every chunk and every change would scan the whole table",
                    sql::ident(&hashed.name)
                ),
                "Add a primary key first (an AUTO_INCREMENT id will do), or a UNIQUE key on NOT NULL columns short enough for a B-tree",
            ));
        }
        return Err(Error::refused(
            &name,
            "the table has no PRIMARY KEY and no UNIQUE key on NOT NULL columns",
            "Add a primary key first: without one, changes cannot be matched to rows",
        ));
    }
    Ok(schema)
}
