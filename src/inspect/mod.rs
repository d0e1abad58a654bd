//! Pre-flight checks: connect, check the server and the table, and refuse
//! clearly what cannot be done safely, before anything is changed. The checks
//! that need the new table (the ALTER itself, the shared key, privileges to
//! lock and rename) run right after it is created, and the runner drops it
//! again when they refuse.

pub mod alter;
pub mod disk;
pub mod impact;
pub mod keys;
pub mod privileges;
pub mod server_settings;
pub mod table;
pub mod topology;

use mysql_async::Conn;

use crate::error::{Error, Result, SqlContext};
use crate::schema::{SharedKey, TableSchema};
use crate::server::{self, BinlogStatus, Dialect};
use crate::shadow::ShadowNames;
use alter::AlterAnalysis;
use keys::ColumnPair;

/// What the checks before creating anything established.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// The original table.
    pub original: TableSchema,
    /// What the ALTER does to columns.
    pub alter: AlterAnalysis,
    /// Binlog position and filters at inspection time.
    pub binlog: BinlogStatus,
    /// The server's own server_id.
    pub server_id: u32,
    /// The server's time zone observes daylight saving time.
    pub time_zone_has_dst: bool,
    /// The server folds table names (`lower_case_table_names` 1 or 2).
    pub names_fold: bool,
    /// The server's global sql_mode, read once here.
    pub global_sql_mode: String,
}

/// Checks the ALTER text, the server settings and the table.
pub async fn preflight(
    conn: &mut Conn,
    dialect: Dialect,
    names: &ShadowNames,
    alter_text: &str,
) -> Result<Preflight> {
    let table = names.q(&names.original);
    // The ALTER runs in the server's sql_mode; the tool reads it in the
    // default one, which reads the same text alike but for these two.
    let global_mode = server::global_sql_mode(conn).await?;
    if let Some(mode) = server::alter_reads_differently(&global_mode, alter_text) {
        return Err(Error::refused(
            &table,
            format!(
                "the server's sql_mode has {mode}, under which the ALTER text reads differently from how shadowcut reads it (a \" or a \\ in it)"
            ),
            "Quote identifiers with backticks and strings with single quotes, without backslashes",
        ));
    }
    let alter =
        alter::analyze(alter_text).map_err(|r| Error::refused(&table, r.problem, r.remedy))?;
    let (binlog, vars) = binlog_settings(conn, dialect, names).await?;
    let original = table::check(conn, &names.database, &names.original).await?;
    let server_id = vars
        .get("server_id")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let time_zone_has_dst = server::time_zone_has_dst(conn).await?;
    let names_fold = vars.get("lower_case_table_names").is_some_and(|v| v != "0");
    Ok(Preflight {
        original,
        alter,
        binlog,
        server_id,
        time_zone_has_dst,
        names_fold,
        global_sql_mode: global_mode,
    })
}

/// Checks the binary log settings of the server on `conn` (the one the
/// tail reads); its binlog position and the variables read.
pub async fn binlog_settings(
    conn: &mut Conn,
    dialect: Dialect,
    names: &ShadowNames,
) -> Result<(BinlogStatus, std::collections::HashMap<String, String>)> {
    let table = names.q(&names.original);
    let vars = server::global_variables(conn, server_settings::VARIABLES).await?;
    let binlog = match server::binlog_status(conn, dialect).await {
        Ok(status) => status,
        Err(e) if privileges::is_access_denied(&e) => {
            return Err(privileges::refusal(
                &table,
                dialect,
                &e,
                "read the binlog position",
                dialect
                    .binlog_privileges()
                    .split(", ")
                    .nth(1)
                    .unwrap_or("REPLICATION CLIENT"),
            ))
        }
        Err(e) => return Err(e),
    };
    server_settings::check(&vars, binlog.as_ref(), &names.database)
        .map_err(|(problem, remedy)| Error::refused(&table, problem, remedy))?;
    let binlog =
        binlog.ok_or_else(|| Error::refused(&table, "binary logging is off", "Enable log_bin"))?;
    Ok((binlog, vars))
}

/// Key column types whose binlog decoding is known to be wrong: negative
/// TIME(1)/TIME(2) overflow in mysql_common's `my_time_packed_from_binary`.
fn decoded_wrongly(column: &crate::schema::Column) -> bool {
    let t = column.column_type.to_ascii_lowercase();
    t == "time(1)" || t == "time(2)"
}

/// How rows move from the original to the new table.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The new table as created.
    pub ghost: TableSchema,
    /// Columns copied and their new names.
    pub columns: Vec<ColumnPair>,
    /// The unique key both tables share.
    pub key: SharedKey,
}

/// A column the ALTER adds NOT NULL without a DEFAULT gets its type's
/// implicit default in every existing row; for a date or a datetime that
/// is a zero date, which a native ALTER of a table with rows refuses when
/// the server's sql_mode is strict with NO_ZERO_DATE (error 1292; which
/// types, [`Dialect::refuses_zero_fill`] says). The
/// copy, whose sessions leave zero dates alone, would store it: refused
/// here, before anything is copied (found by the differential fuzzer,
/// seed 9636).
/// A text (or binary string) the ALTER makes an integer must hold only
/// integers' texts: a native ALTER in a strict sql_mode refuses '1.4'
/// (error 1292), where the copy's assignment rounds it to 1 without a
/// warning. Refused here, before anything is copied, naming a row; values
/// written during the run are caught by the checksum
/// ([`crate::checksum::integer_text_test`]).
pub async fn check_integer_texts(
    conn: &mut Conn,
    original: &TableSchema,
    plan: &Plan,
) -> Result<()> {
    use mysql_async::prelude::Queryable;
    let table = original.qualified();
    for pair in plan.columns.iter().filter(|p| p.fill.is_none()) {
        let (Some(source), Some(target)) = (
            original.column(&pair.source),
            plan.ghost.column(&pair.target),
        ) else {
            continue;
        };
        let Some(is_integer) = crate::checksum::integer_text_test(source, target) else {
            continue;
        };
        let column = crate::sql::ident(&source.name);
        let found: Option<String> = conn
            .query_first(format!(
                "SELECT CAST(LEFT({column}, 40) AS CHAR) FROM {table} WHERE {column} IS NOT NULL AND NOT ({is_integer}) LIMIT 1"
            ))
            .await
            .context(|| format!("looking for values of {column} that are not integers in {table}"))?;
        if let Some(value) = found {
            return Err(Error::refused(
                &table,
                format!(
                    "the ALTER makes {column} ({}) a {}, and it holds {}, which is not an integer: a native ALTER fails on it (error 1292 in a strict sql_mode), where the copy would round it",
                    source.column_type,
                    target.column_type,
                    crate::sql::literal(&value)
                ),
                "Fix or clear such values first (or convert them with an UPDATE), then migrate",
            ));
        }
    }
    Ok(())
}

pub async fn check_zero_date_fills(
    conn: &mut Conn,
    dialect: Dialect,
    preflight: &Preflight,
    plan: &Plan,
) -> Result<()> {
    use mysql_async::prelude::Queryable;
    let Some(filled) = plan.columns.iter().find(|c| {
        c.fill.is_some_and(|f| f.starts_with("'0000-00-00"))
            && plan
                .ghost
                .column(&c.target)
                .is_some_and(|g| dialect.refuses_zero_fill(&g.data_type))
    }) else {
        return Ok(());
    };
    let table = preflight.original.qualified();
    let mode = preflight.global_sql_mode.to_ascii_uppercase();
    let strict = mode.contains("STRICT_TRANS_TABLES") || mode.contains("STRICT_ALL_TABLES");
    if !strict || !mode.contains("NO_ZERO_DATE") {
        return Ok(());
    }
    let has_rows: Option<i64> = conn
        .query_first(format!("SELECT 1 FROM {table} LIMIT 1"))
        .await
        .context(|| format!("looking for a row in {table}"))?;
    if has_rows.is_none() {
        return Ok(());
    }
    Err(Error::refused(
        &table,
        format!(
            "the ALTER adds {} NOT NULL without a DEFAULT: existing rows would get {}, which the server's sql_mode (NO_ZERO_DATE) refuses, as a native ALTER would",
            crate::sql::ident(&filled.target),
            filled.fill.unwrap_or_default()
        ),
        "Give the column a DEFAULT (or add it NULL, fill it, then make it NOT NULL)",
    ))
}

/// Matches the original with the new table: columns and shared key.
pub fn plan(preflight: &Preflight, ghost: TableSchema) -> Result<Plan> {
    let table = preflight.original.qualified();
    let columns = keys::column_mapping(&preflight.original, &ghost, &preflight.alter);
    if columns.is_empty() {
        return Err(Error::refused(
            &table,
            "the new table shares no column with the original",
            "Check --alter",
        ));
    }
    if let Some(kept) = keys::column_dropped_but_kept(&preflight.original, &ghost, &preflight.alter)
    {
        return Err(Error::refused(
            &table,
            format!(
                "the ALTER was read as dropping column {}, yet the new table has it: the copy would leave its values behind",
                crate::sql::ident(&kept.name)
            ),
            "Write the change plainly (DROP COLUMN c; ADD COLUMN c ... to re-create it), without comments",
        ));
    }
    if let Some((source, target)) =
        keys::converted_unlike_the_native_alter(&preflight.original, &ghost, &columns)
    {
        return Err(Error::refused(
            &table,
            format!(
                "the ALTER makes {} ({}) a {}: the copy would store its characters' bytes, where a native ALTER reads the value as a number",
                crate::sql::ident(&source.name),
                source.column_type,
                target.column_type
            ),
            "Change it natively, or in two steps: to an integer type first, then to BIT",
        ));
    }
    if let Some(lost) = keys::column_left_behind(&preflight.original, &ghost, &preflight.alter) {
        return Err(Error::refused(
            &table,
            format!(
                "the new table has no column {}, and the ALTER does not drop or rename it in a form shadowcut reads: its values would be lost",
                crate::sql::ident(&lost.name)
            ),
            "Write the change as DROP COLUMN c, CHANGE COLUMN old new <type> or RENAME COLUMN old TO new",
        ));
    }
    if let Some(c) = ghost.columns.iter().find(|g| {
        !g.generated
            && !g.nullable
            && !g.has_default
            && !g.auto_increment
            && g.implicit_default().is_none()
            && !keys::writes(&columns, &g.name)
    }) {
        return Err(Error::refused(
            &table,
            format!(
                "the ALTER adds {} {} NOT NULL without a default: existing rows have no value it accepts",
                c.name, c.column_type
            ),
            "Add the column NULL (or with a DEFAULT) and fill it, then make it NOT NULL",
        ));
    }
    let key = keys::shared_key(&preflight.original, &ghost, &columns).ok_or_else(|| {
        // MariaDB keeps a UNIQUE whose columns grow past what a B-tree
        // takes as a hash, which serves no ordered read nor lookup.
        let hashed = ghost
            .indexes
            .iter()
            .filter(|i| i.unique && i.hashed)
            .map(|i| crate::sql::ident(&i.name))
            .collect::<Vec<_>>();
        let problem = if hashed.is_empty() {
            "the original and the new table share no PRIMARY KEY or UNIQUE key on NOT NULL columns".to_string()
        } else {
            format!(
                "the original and the new table share no PRIMARY KEY or UNIQUE key on NOT NULL columns \
                 (the new table keeps {} as a long UNIQUE, USING HASH, by which rows cannot be read in order nor found)",
                hashed.join(", ")
            )
        };
        Error::refused(
            &table,
            problem,
            "Keep the primary key, or keep another unique NOT NULL key in both, so rows can be matched",
        )
    })?;
    if let Some(k) = key.columns.iter().find(|k| {
        matches!(k.column.data_type.as_str(), "enum" | "set")
            && k.change() != crate::schema::KeyChange::Alike
    }) {
        return Err(Error::refused(
            &table,
            format!(
                "the ALTER changes the values of the shared key column {} ({} to {}); the binlog gives such keys as positions in the old list \
                 (members added after the last one keep their positions and are fine)",
                k.name, k.column.column_type, k.ghost_column.column_type
            ),
            "Change that column in a separate migration that keeps another unique key, or with a plain ALTER TABLE",
        ));
    }
    if let Some(k) = key
        .columns
        .iter()
        .find(|k| preflight.time_zone_has_dst && k.column.data_type == "timestamp")
    {
        return Err(Error::refused(
            &table,
            format!(
                "the shared key column {} is a TIMESTAMP and the server's time zone observes daylight saving time: \
                 shadowcut works in the server's time zone (as a native ALTER converts values), where the \
                 repeated hour makes TIMESTAMP keys ambiguous",
                k.name
            ),
            "Run the server (or SET GLOBAL time_zone) at a fixed UTC offset such as '+00:00', or keep another unique key",
        ));
    }
    if let Some(crate::schema::KeyChange::Unsupported(what)) = key
        .columns
        .iter()
        .map(|k| k.change())
        .find(|c| matches!(c, crate::schema::KeyChange::Unsupported(_)))
    {
        return Err(Error::refused(
            &table,
            format!("the ALTER changes how the shared key {} compares: {what}", key.name),
            "Keep the key column's type (widening it, or changing a character key's collation, is fine), or keep another unique key unchanged",
        ));
    }
    if let Some(k) = key.columns.iter().find(|k| decoded_wrongly(&k.column)) {
        return Err(Error::refused(
            &table,
            format!(
                "the shared key column {} is {}, which the binlog decoder (mysql_common) reads wrongly for negative values",
                k.name, k.column.column_type
            ),
            "Use a table whose key has no TIME(1) or TIME(2) column",
        ));
    }
    Ok(Plan {
        ghost,
        columns,
        key,
    })
}
