//! The structure of a table as information_schema describes it: columns,
//! indexes, and the key values that identify a row.
//!
//! Key values travel between three places (the chunker's boundary reads, the
//! binlog rows and the statements that bind them), so they have one
//! representation, [`KeyPart`], and one way of being written back into SQL,
//! [`KeyColumn::bind_expr`], that compares in the column's own collation.

use mysql_async::prelude::*;
use mysql_async::{Conn, Value};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SqlContext};
use crate::sql;

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Base type, lower case (`int`, `varchar`, `timestamp`, ...).
    pub data_type: String,
    /// Full type (`int(10) unsigned`, `enum('a','b')`).
    pub column_type: String,
    /// NULL allowed.
    pub nullable: bool,
    /// Character set for character types.
    pub charset: Option<String>,
    /// Collation for character types.
    pub collation: Option<String>,
    /// Maximum length in bytes for string types.
    pub octet_length: Option<u64>,
    /// Virtual or stored generated column: never written.
    pub generated: bool,
    /// MariaDB invisible column: not in `SELECT *`, but copied.
    pub invisible: bool,
    /// The column declares a default (`COLUMN_DEFAULT` is set).
    pub has_default: bool,
    /// AUTO_INCREMENT column.
    pub auto_increment: bool,
}

/// The largest value an integer column of `data_type` (`int`,
/// `smallint`, ...) holds; `None` for other types.
pub fn integer_maximum(data_type: &str, unsigned: bool) -> Option<u64> {
    let bits = match data_type.to_ascii_lowercase().as_str() {
        "tinyint" => 8,
        "smallint" => 16,
        "mediumint" => 24,
        "int" | "integer" => 32,
        "bigint" => 64,
        _ => return None,
    };
    Some(if unsigned {
        u64::MAX >> (64 - bits)
    } else {
        u64::MAX >> (65 - bits)
    })
}

impl Column {
    /// The value a native ALTER gives existing rows in this column when it
    /// is added NOT NULL without a default (the type's implicit default),
    /// as SQL; `None` where there is none (spatial types).
    pub fn implicit_default(&self) -> Option<&'static str> {
        Some(match self.data_type.as_str() {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "decimal"
            | "float" | "double" | "bit" | "year" => "0",
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "json"
            | "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" | "set" => {
                "''"
            }
            // The first member.
            "enum" => "1",
            "date" => "'0000-00-00'",
            "datetime" | "timestamp" => "'0000-00-00 00:00:00'",
            "time" => "'00:00:00'",
            // MariaDB's own types, filled with their zero values.
            "uuid" => "'00000000-0000-0000-0000-000000000000'",
            "inet6" => "'::'",
            "inet4" => "'0.0.0.0'",
            _ => return None,
        })
    }
}

impl Column {
    /// True for integer types declared UNSIGNED.
    pub fn is_unsigned(&self) -> bool {
        self.column_type.to_ascii_lowercase().contains("unsigned")
    }

    /// Byte width of integer types.
    pub fn int_width(&self) -> Option<u32> {
        match self.data_type.as_str() {
            "tinyint" => Some(1),
            "smallint" => Some(2),
            "mediumint" => Some(3),
            "int" | "integer" => Some(4),
            "bigint" => Some(8),
            _ => None,
        }
    }

    /// True when values are compared as characters in a collation. ENUM and
    /// SET carry a collation too, but keys hold and compare them by number
    /// (position, bits), whatever their collation.
    pub fn is_text(&self) -> bool {
        matches!(self.charset.as_deref(), Some(cs) if cs != "binary")
            && !matches!(self.data_type.as_str(), "enum" | "set")
    }

    /// True for the binary strings: BINARY, VARBINARY and the BLOBs.
    pub fn is_binary_string(&self) -> bool {
        matches!(
            self.data_type.as_str(),
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
        )
    }

    /// The members of an ENUM or SET, in declaration order, as the server
    /// writes them in its type (`set('a','it''s')`); `None` for another
    /// type or a text not read to its end.
    pub fn members(&self) -> Option<Vec<String>> {
        let list = self
            .column_type
            .strip_prefix(self.data_type.as_str())?
            .strip_prefix('(')?;
        let mut chars = list.chars().peekable();
        let mut members = Vec::new();
        loop {
            if chars.next()? != '\'' {
                return None;
            }
            let mut member = String::new();
            loop {
                match chars.next()? {
                    '\'' if chars.peek() == Some(&'\'') => {
                        chars.next();
                        member.push('\'');
                    }
                    '\'' => break,
                    c => member.push(c),
                }
            }
            members.push(member);
            match chars.next()? {
                ',' => continue,
                ')' if chars.next().is_none() => return Some(members),
                _ => return None,
            }
        }
    }

    /// True for fixed-width binary strings, whose row images lose trailing zero bytes.
    pub fn is_fixed_binary(&self) -> bool {
        self.data_type == "binary"
    }
}

/// One index of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Index name (`PRIMARY` for the primary key).
    pub name: String,
    /// UNIQUE or PRIMARY.
    pub unique: bool,
    /// Column names in index order.
    pub columns: Vec<String>,
    /// True when some column is indexed by a prefix only.
    pub has_prefix: bool,
    /// MariaDB's long UNIQUE (`USING HASH`, over TEXT or long VARCHAR):
    /// it enforces uniqueness through a hidden hash, and no statement can
    /// read the table in its order or look a row up by it.
    pub hashed: bool,
}

/// A table as information_schema describes it.
#[derive(Debug, Clone)]
pub struct TableSchema {
    /// Database.
    pub database: String,
    /// Table name.
    pub name: String,
    /// Columns in ordinal order (the order of binlog row images).
    pub columns: Vec<Column>,
    /// Indexes.
    pub indexes: Vec<Index>,
    /// Storage engine.
    pub engine: String,
    /// `BASE TABLE`, `SYSTEM VERSIONED`, `VIEW`, ...
    pub table_type: String,
    /// The server's estimate of the row count.
    pub rows_estimate: u64,
    /// Next AUTO_INCREMENT value, if the table has one.
    pub auto_increment: Option<u64>,
    /// The table comment.
    pub comment: String,
}

impl TableSchema {
    /// `db`.`table`, quoted.
    pub fn qualified(&self) -> String {
        sql::qualified(&self.database, &self.name)
    }

    /// Column by name (case-insensitive, as MySQL compares column names).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Ordinal index of a column.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// Index by name.
    pub fn index(&self, name: &str) -> Option<&Index> {
        self.indexes
            .iter()
            .find(|i| i.name.eq_ignore_ascii_case(name))
    }

    /// Unique indexes whose columns are all NOT NULL and fully indexed: the
    /// candidates for identifying a row. The primary key comes first.
    pub fn row_identifying_keys(&self) -> Vec<&Index> {
        let mut keys: Vec<&Index> = self
            .indexes
            .iter()
            .filter(|i| {
                i.unique
                    && !i.has_prefix
                    && !i.hashed
                    && i.columns
                        .iter()
                        .all(|c| self.column(c).is_some_and(|c| !c.nullable && !c.generated))
            })
            .collect();
        keys.sort_by_key(|i| (i.name != "PRIMARY", i.columns.len()));
        keys
    }
}

/// True when `extra` (information_schema.COLUMNS.EXTRA, upper case) says
/// the column's value is computed: `VIRTUAL GENERATED`, `STORED
/// GENERATED`, MariaDB's `PERSISTENT GENERATED`. Not MySQL's
/// `DEFAULT_GENERATED`, which marks a column with an expression default
/// (`DEFAULT CURRENT_TIMESTAMP`) whose stored values must be copied like
/// any other's.
fn is_generated(extra: &str) -> bool {
    let extra = extra.replace("DEFAULT_GENERATED", "");
    extra.contains("GENERATED") || extra.contains("PERSISTENT")
}

/// Reads a table's structure; `None` when the table does not exist.
pub async fn read_table(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<Option<TableSchema>> {
    let what = || {
        format!(
            "reading the structure of {}",
            sql::qualified(database, table)
        )
    };
    type TableRow = (
        String,
        Option<String>,
        Option<u64>,
        Option<u64>,
        Option<String>,
    );
    let row: Option<TableRow> = conn
        .exec_first(
            "SELECT TABLE_TYPE, ENGINE, TABLE_ROWS, AUTO_INCREMENT, TABLE_COMMENT \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (database, table),
        )
        .await
        .context(what)?;
    let Some((table_type, engine, rows, auto_increment, comment)) = row else {
        return Ok(None);
    };
    type ColumnRow = (
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<u64>,
        String,
        Option<String>,
    );
    let column_rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, \
             COLLATION_NAME, CHARACTER_OCTET_LENGTH, EXTRA, COLUMN_DEFAULT \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .context(what)?;
    let columns = column_rows
        .into_iter()
        .map(
            |(
                name,
                data_type,
                column_type,
                nullable,
                charset,
                collation,
                octets,
                extra,
                default,
            )| {
                let extra = extra.to_ascii_uppercase();
                Column {
                    name,
                    data_type: data_type.to_ascii_lowercase(),
                    column_type,
                    nullable: nullable == "YES",
                    charset,
                    collation,
                    octet_length: octets,
                    generated: is_generated(&extra),
                    invisible: extra.contains("INVISIBLE"),
                    // MariaDB shows a nullable column's implicit default as "NULL".
                    has_default: default.is_some(),
                    auto_increment: extra.contains("AUTO_INCREMENT"),
                }
            },
        )
        .collect();
    // INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE.
    type IndexRow = (String, i64, String, Option<i64>, Option<String>);
    let index_rows: Vec<IndexRow> = conn
        .exec(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (database, table),
        )
        .await
        .context(what)?;
    let mut indexes: Vec<Index> = Vec::new();
    for (name, non_unique, column, sub_part, index_type) in index_rows {
        match indexes.last_mut() {
            Some(last) if last.name == name => {
                last.columns.push(column);
                last.has_prefix |= sub_part.is_some();
            }
            _ => indexes.push(Index {
                name,
                unique: non_unique == 0,
                columns: vec![column],
                has_prefix: sub_part.is_some(),
                hashed: index_type.as_deref() == Some("HASH"),
            }),
        }
    }
    Ok(Some(TableSchema {
        database: database.to_string(),
        name: table.to_string(),
        columns,
        indexes,
        engine: engine.unwrap_or_default(),
        table_type,
        rows_estimate: rows.unwrap_or(0),
        auto_increment,
        comment: comment.unwrap_or_default(),
    }))
}

/// One part of a key value, in a form that can be hashed, stored in the
/// changelog, and bound back as a parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyPart {
    /// Signed integer.
    Int(i64),
    /// Unsigned integer.
    UInt(u64),
    /// Raw bytes in the column's own character set (strings, decimals,
    /// binary strings, TIMESTAMP epoch text).
    Bytes(Vec<u8>),
    /// DATE/DATETIME: year, month, day, hour, minute, second, microsecond.
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// TIME: negative, days, hours, minutes, seconds, microseconds.
    Time(bool, u32, u8, u8, u8, u32),
    /// FLOAT/DOUBLE, by bit pattern.
    Float(u64),
}

impl KeyPart {
    /// Converts a driver value; `None` for NULL (never part of a usable key).
    /// A number is `Int` whenever it fits an i64, `UInt` only above: the
    /// driver reads an unsigned column's value as `Int` from a result row
    /// and the tail decodes it as `UInt` from a row event, and the two must
    /// be the same key.
    pub fn from_value(value: Value) -> Option<KeyPart> {
        Some(match value {
            Value::NULL => return None,
            Value::Int(v) => KeyPart::Int(v),
            Value::UInt(v) => i64::try_from(v).map_or(KeyPart::UInt(v), KeyPart::Int),
            Value::Bytes(b) => KeyPart::Bytes(b),
            Value::Float(f) => KeyPart::Float(f64::from(f).to_bits()),
            Value::Double(f) => KeyPart::Float(f.to_bits()),
            Value::Date(y, mo, d, h, mi, s, us) => KeyPart::Date(y, mo, d, h, mi, s, us),
            Value::Time(neg, d, h, mi, s, us) => KeyPart::Time(neg, d, h, mi, s, us),
        })
    }

    /// The driver value to bind.
    pub fn to_value(&self) -> Value {
        match self {
            KeyPart::Int(v) => Value::Int(*v),
            KeyPart::UInt(v) => Value::UInt(*v),
            KeyPart::Bytes(b) => Value::Bytes(b.clone()),
            KeyPart::Float(bits) => Value::Double(f64::from_bits(*bits)),
            KeyPart::Date(y, mo, d, h, mi, s, us) => Value::Date(*y, *mo, *d, *h, *mi, *s, *us),
            KeyPart::Time(neg, d, h, mi, s, us) => Value::Time(*neg, *d, *h, *mi, *s, *us),
        }
    }
}

/// A full key value: one part per key column.
pub type KeyValue = Vec<KeyPart>;

/// A key of one integer column as a number that signed and unsigned values
/// both fit, so that Rust compares them as the server does; `None` for any
/// other key.
pub fn single_integer(key: &[KeyPart]) -> Option<i128> {
    match key {
        [KeyPart::Int(v)] => Some(i128::from(*v)),
        [KeyPart::UInt(v)] => Some(i128::from(*v)),
        _ => None,
    }
}

/// The one-column key holding `value`; `None` outside the range of a
/// BIGINT (signed or unsigned).
pub fn integer_key(value: i128) -> Option<KeyValue> {
    let part = match i64::try_from(value) {
        Ok(v) => KeyPart::Int(v),
        Err(_) => KeyPart::UInt(u64::try_from(value).ok()?),
    };
    Some(vec![part])
}

/// A column of the shared key, as seen from both tables.
#[derive(Debug, Clone)]
pub struct KeyColumn {
    /// Name in the original table.
    pub name: String,
    /// Name in the new table (differs after a rename).
    pub ghost_name: String,
    /// Ordinal position in the original table (binlog image index).
    pub ordinal: usize,
    /// The original column.
    pub column: Column,
    /// The column as the new table defines it.
    pub ghost_column: Column,
}

impl KeyColumn {
    /// Expression that reads this column of the original table in the form
    /// [`KeyPart`] holds: raw bytes for character columns, epoch text for
    /// TIMESTAMP, numbers for ENUM, SET and BIT, the value itself otherwise.
    pub fn select_expr(&self) -> String {
        let col = sql::ident(&self.name);
        if matches!(self.column.data_type.as_str(), "enum" | "set" | "bit") {
            // Numbers, as the binlog gives them (ENUM position, SET and BIT
            // bits); compared as numbers they also sort as ORDER BY does.
            format!("({col} + 0)")
        } else if self.column.is_text() {
            format!("CAST({col} AS BINARY)")
        } else if self.column.data_type == "timestamp" {
            format!("UNIX_TIMESTAMP({col})")
        } else {
            col
        }
    }

    /// How the ALTER changes this column's comparison.
    pub fn change(&self) -> KeyChange {
        let (old, new) = (&self.column, &self.ghost_column);
        let same_text_semantics = old.charset == new.charset && old.collation == new.collation;
        if old.is_text() || new.is_text() {
            if old.is_text() && new.is_text() {
                return if same_text_semantics && old.data_type == new.data_type {
                    KeyChange::Alike
                } else {
                    KeyChange::Recollated
                };
            }
            return KeyChange::Unsupported(format!(
                "{} changes from {} to {}",
                self.name, old.column_type, new.column_type
            ));
        }
        // An ENUM's or SET's members are compared as written: under a binary
        // collation, enum('a','A') and enum('A','a') order them apart.
        let members = matches!(old.data_type.as_str(), "enum" | "set");
        if old.column_type == new.column_type
            || (!members && old.column_type.eq_ignore_ascii_case(&new.column_type))
        {
            return KeyChange::Alike;
        }
        let alike = match (old.data_type.as_str(), new.data_type.as_str()) {
            (a, b) if integer_kind(a) && integer_kind(b) => true,
            // An integer is a DECIMAL exactly (or fails to fit, loudly), and
            // an integer parameter compares with a DECIMAL column exactly. Not
            // the other way: a DECIMAL key travels as text, which an integer
            // column compares as a DOUBLE, inexact past 2^53.
            (a, "decimal") if integer_kind(a) => true,
            // Fewer digits after the point round a key (with a note, not a
            // failure): two keys may become one, and a key bound as the
            // original holds it no longer finds its row (fuzzer seed 48273).
            ("decimal", "decimal") => {
                decimal_scale(&new.column_type) >= decimal_scale(&old.column_type)
            }
            (a @ ("datetime" | "timestamp" | "time"), b) if a == b => {
                fraction_digits(&new.column_type) >= fraction_digits(&old.column_type)
            }
            (a @ ("enum" | "set"), b) if a == b => appends_members(old, new),
            _ => false,
        };
        if alike {
            KeyChange::Alike
        } else {
            KeyChange::Unsupported(format!(
                "{} changes from {} to {}, which compares differently",
                self.name, old.column_type, new.column_type
            ))
        }
    }

    /// The expression that reads ghost column `alias.ghost_name` in the
    /// original column's comparison (charset and collation).
    fn ghost_in_original_terms(&self, ghost_column: &str) -> String {
        match (&self.column.charset, &self.column.collation) {
            (Some(cs), Some(coll))
                if self.column.is_text() && sql::is_plain_word(cs) && sql::is_plain_word(coll) =>
            {
                format!("CONVERT({ghost_column} USING {cs}) COLLATE {coll}")
            }
            _ => ghost_column.to_string(),
        }
    }

    /// The expression that reads original column `original_column` in the
    /// ghost column's comparison.
    fn original_in_ghost_terms(&self, original_column: &str) -> String {
        match (&self.ghost_column.charset, &self.ghost_column.collation) {
            (Some(cs), Some(coll))
                if self.ghost_column.is_text()
                    && sql::is_plain_word(cs)
                    && sql::is_plain_word(coll) =>
            {
                format!("CONVERT({original_column} USING {cs}) COLLATE {coll}")
            }
            _ => original_column.to_string(),
        }
    }

    /// String keys travel as hex: their raw bytes are in the column's own
    /// character set, and a parameter is read in the connection's (utf8mb4),
    /// which rejects latin1 bytes such as 0xE9.
    fn sends_hex(&self) -> bool {
        self.column.charset.is_some() && !matches!(self.column.data_type.as_str(), "enum" | "set")
    }

    /// The parameter for one key part, as [`KeyColumn::bind_expr`] expects it.
    pub fn param(&self, part: &KeyPart) -> Value {
        match part {
            KeyPart::Bytes(b) if self.sends_hex() => Value::Bytes(
                b.iter()
                    .map(|x| format!("{x:02X}"))
                    .collect::<String>()
                    .into_bytes(),
            ),
            other => other.to_value(),
        }
    }

    /// Placeholder expression comparing in `target`'s collation, for a value
    /// produced by [`KeyColumn::select_expr`] or the binlog.
    pub fn bind_expr(&self, target: &Column) -> String {
        let mut expr = if self.sends_hex() { "UNHEX(?)" } else { "?" }.to_string();
        if self.column.data_type == "timestamp" {
            // Epoch 0 is the zero TIMESTAMP, which FROM_UNIXTIME cannot
            // give (and CAST(0 AS DATETIME) is NULL under NO_ZERO_DATE).
            expr = format!("COALESCE(FROM_UNIXTIME(NULLIF({expr}, 0)), '0000-00-00 00:00:00')");
        }
        if let (Some(source_cs), true) = (&self.column.charset, self.column.is_text()) {
            if sql::is_plain_word(source_cs) {
                expr = format!("CONVERT({expr} USING {source_cs})");
            }
        }
        if let (Some(cs), Some(coll), true) = (&target.charset, &target.collation, target.is_text())
        {
            if sql::is_plain_word(cs) && sql::is_plain_word(coll) {
                if target.charset != self.column.charset {
                    expr = format!("CONVERT({expr} USING {cs})");
                }
                expr = format!("{expr} COLLATE {coll}");
            }
        }
        expr
    }
}

/// How the ALTER changes a shared key column's comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Every value that the new column can hold compares in it exactly as in
    /// the original: same type, or a wider or narrower type of the same
    /// kind (a value that does not fit fails the copy loudly).
    Alike,
    /// A character key whose collation, character set or kind (CHAR,
    /// VARCHAR, TEXT) changes: two keys distinct in the original may be
    /// equal in the new table ('a' and 'A' under a case-insensitive
    /// collation), or the other way round.
    Recollated,
    /// Any other change of comparison (precision of a temporal or floating
    /// value, a change of kind): not supported on a shared key; the reason.
    Unsupported(String),
}

fn integer_kind(data_type: &str) -> bool {
    matches!(
        data_type,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
    )
}

/// True when ENUM or SET column `new` lists every member of `old` first,
/// in the same order and spelling, and more after them: every value keeps
/// its number (an ENUM's position, a SET's bits), which is how such keys
/// travel in the binlog and are matched. An appended empty member is not
/// taken: a row holding the error value '' (position 0, written under a
/// lax sql_mode) would be copied as the new member's position while the
/// binlog still gives 0 for it.
fn appends_members(old: &Column, new: &Column) -> bool {
    let (Some(old), Some(new)) = (old.members(), new.members()) else {
        return false;
    };
    new.len() > old.len() && new.starts_with(&old) && !new[old.len()..].iter().any(String::is_empty)
}

/// The digits after the point of a DECIMAL column type (`decimal(17,2)`).
fn decimal_scale(column_type: &str) -> u32 {
    column_type
        .split_once(',')
        .and_then(|(_, rest)| rest.split(')').next()?.trim().parse().ok())
        .unwrap_or(0)
}

/// The fractional-second digits of a temporal column type (`datetime(3)`).
fn fraction_digits(column_type: &str) -> u32 {
    column_type
        .split_once('(')
        .and_then(|(_, rest)| rest.trim_end_matches(')').parse().ok())
        .unwrap_or(0)
}

/// The unique key shared by the original and the new table, along which rows
/// are copied and changes applied.
#[derive(Debug, Clone)]
pub struct SharedKey {
    /// Index name in the original table.
    pub name: String,
    /// Index name in the new table.
    pub ghost_name: String,
    /// Its columns, in index order.
    pub columns: Vec<KeyColumn>,
    /// True when two rows equal on the new table's key are the same row of
    /// the original: the new key's columns include all of these and every
    /// column compares alike. Only then does a duplicate on the new key mean
    /// "already written"; otherwise it may be two rows the ALTER makes
    /// collide, as a new unique constraint would.
    pub identity_preserved: bool,
}

/// `keys` with its last key repeated up to the next power of two, so that
/// a statement over them takes one of a few shapes, which the connection's
/// prepared-statement cache keeps, instead of one per batch size.
fn padded_to_a_power_of_two(keys: &[KeyValue]) -> Vec<&KeyValue> {
    let padding = keys.len().next_power_of_two() - keys.len();
    keys.iter()
        .chain(std::iter::repeat_n(keys.last(), padding).flatten())
        .collect()
}

/// How the applier may split a generation of changed keys over its
/// connections (see [`SharedKey::parallel_apply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParallelApply {
    /// Keys with different bytes are different rows: any split will do.
    ByBytes,
    /// Keys equal under a collation may be one row: the split follows the
    /// server's equality classes ([`SharedKey::equality_classes`]).
    ByEquality,
    /// One connection (floats, dates, decimals and other comparisons the
    /// classes do not cover).
    Serial,
}

/// Which table a key predicate is written against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The original table.
    Original,
    /// The new (ghost) table: its own index, in its own comparison. Where a
    /// column is recollated, a second test in the original's comparison
    /// keeps the predicate to the rows of exactly these original keys.
    Ghost,
}

impl SharedKey {
    /// True when the key is one integer column: Rust then orders and
    /// counts its values exactly as the server does.
    pub fn is_single_integer(&self) -> bool {
        matches!(self.columns.as_slice(), [only] if only.column.int_width().is_some())
    }

    /// A lookup of the first row along this key on `table` (quoted): an
    /// index dive as cheap as an application's primary-key read, for the
    /// latency canary.
    pub fn first_row_lookup(&self, table: &str) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|c| crate::sql::ident(&c.name))
            .collect();
        format!(
            "SELECT {} FROM {table} FORCE INDEX ({}) ORDER BY {} LIMIT 1",
            columns.join(", "),
            crate::sql::ident(&self.name),
            columns.join(", ")
        )
    }

    /// True when two keys with different bytes are always two different
    /// rows, in the original and in the new table: integer and VARBINARY
    /// columns, whose comparison is their value's bytes. (Not
    /// collated text, where `'a'` and `'A'` may be one row, nor floats,
    /// where `-0` and `0` are.) Only then may batches of keys be applied
    /// in parallel without two of them touching one row.
    pub fn rows_are_distinct_by_bytes(&self) -> bool {
        self.identity_preserved
            && self.columns.iter().all(|k| {
                [&k.column, &k.ghost_column]
                    .iter()
                    .all(|c| c.int_width().is_some() || c.data_type == "varbinary")
            })
    }

    /// How batches of changed keys may be split over connections so that
    /// no two of them touch one row.
    pub fn parallel_apply(&self) -> ParallelApply {
        if self.rows_are_distinct_by_bytes() {
            return ParallelApply::ByBytes;
        }
        // Each column compares as an integer, as bytes, or under a collation
        // its bound expression names (never the connection's default).
        let comparable = |c: &Column| {
            c.int_width().is_some()
                || c.data_type == "varbinary"
                || (c.is_text()
                    && c.charset.as_deref().is_some_and(sql::is_plain_word)
                    && c.collation.as_deref().is_some_and(sql::is_plain_word))
        };
        if self
            .columns
            .iter()
            .all(|k| comparable(&k.column) && comparable(&k.ghost_column))
        {
            ParallelApply::ByEquality
        } else {
            ParallelApply::Serial
        }
    }

    /// A statement that numbers the equality classes of `keys`: one row per
    /// key, `(i, class in the original's comparison, class in the new
    /// table's)`, where `i` is the key's index in `keys` (rows from `i =
    /// keys.len()` on come from padding). Two keys in one class, on either
    /// side, may match one row. The server compares, with the same bound
    /// expressions as the applier's statements, so a collation's equality
    /// (`'a'`, `'A'`, `'a '`, `'á'`) is the server's, never guessed. Padded
    /// to the next power of two like [`SharedKey::matches_any`].
    pub fn equality_classes(&self, keys: &[KeyValue]) -> (String, Vec<Value>) {
        let keys = padded_to_a_power_of_two(keys);
        let mut params = Vec::new();
        let mut rows = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let mut exprs = Vec::new();
            for (side, prefix) in [(Side::Original, "o"), (Side::Ghost, "g")] {
                for (j, k) in self.columns.iter().enumerate() {
                    let (_, expr) = self.col_and_expr(side, k);
                    exprs.push(if i == 0 {
                        format!("{expr} AS {prefix}{j}")
                    } else {
                        expr
                    });
                    params.push(k.param(&key[j]));
                }
            }
            rows.push(format!(
                "SELECT {i}{} {}",
                if i == 0 { " AS i," } else { "," },
                exprs.join(", ")
            ));
        }
        let order = |prefix: &str| {
            (0..self.columns.len())
                .map(|j| format!("{prefix}{j}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        (
            format!(
                "SELECT i, DENSE_RANK() OVER (ORDER BY {}), DENSE_RANK() OVER (ORDER BY {}) FROM ({}) AS changed_keys",
                order("o"),
                order("g"),
                rows.join(" UNION ALL ")
            ),
            params,
        )
    }

    fn col_and_expr(&self, side: Side, k: &KeyColumn) -> (String, String) {
        match side {
            Side::Original => (sql::ident(&k.name), k.bind_expr(&k.column)),
            Side::Ghost => (sql::ident(&k.ghost_name), k.bind_expr(&k.ghost_column)),
        }
    }

    /// The comparisons (column expression, bound expression) one key column
    /// needs on `side`; see [`Side::Ghost`].
    fn comparisons(&self, side: Side, k: &KeyColumn) -> Vec<(String, String)> {
        let mut out = vec![self.col_and_expr(side, k)];
        if side == Side::Ghost && k.change() == KeyChange::Recollated {
            out.push((
                k.ghost_in_original_terms(&sql::ident(&k.ghost_name)),
                k.bind_expr(&k.column),
            ));
        }
        out
    }

    /// The condition that ghost row `g` holds the same key as original row
    /// `o` (both aliases), comparing in the original's terms where the key
    /// is recollated, and usable by the ghost's index.
    pub fn same_row(&self, ghost_alias: &str, original_alias: &str) -> String {
        self.columns
            .iter()
            .map(|k| {
                let g = format!("{ghost_alias}.{}", sql::ident(&k.ghost_name));
                let o = format!("{original_alias}.{}", sql::ident(&k.name));
                match k.change() {
                    KeyChange::Recollated => format!(
                        "{g} = {} AND {} = {o}",
                        k.original_in_ghost_terms(&o),
                        k.ghost_in_original_terms(&g)
                    ),
                    // By position: the lists are equal (a changed list is
                    // refused), their collations need not be.
                    _ if matches!(k.column.data_type.as_str(), "enum" | "set") => {
                        format!("{g} = ({o} + 0)")
                    }
                    _ => format!("{g} = {o}"),
                }
            })
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Comma-separated key columns of the original table, for ORDER BY.
    pub fn order_by(&self) -> String {
        self.columns
            .iter()
            .map(|k| sql::ident(&k.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Comma-separated [`KeyColumn::select_expr`]s.
    pub fn select_list(&self) -> String {
        self.columns
            .iter()
            .map(KeyColumn::select_expr)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `key > bound` as a disjunction a range optimizer understands, with
    /// its parameters.
    pub fn greater_than(&self, side: Side, bound: &[KeyPart]) -> (String, Vec<Value>) {
        self.compare(side, bound, ">", ">")
    }

    /// `key <= bound`, with its parameters.
    pub fn at_most(&self, side: Side, bound: &[KeyPart]) -> (String, Vec<Value>) {
        self.compare(side, bound, "<", "<=")
    }

    /// Lexicographic comparison expanded to `(a op x) OR (a = x AND b op y)...`.
    fn compare(
        &self,
        side: Side,
        bound: &[KeyPart],
        op: &str,
        last_op: &str,
    ) -> (String, Vec<Value>) {
        let n = self.columns.len();
        let mut disjuncts = Vec::with_capacity(n);
        let mut params = Vec::new();
        for i in 0..n {
            let mut conj = Vec::with_capacity(i + 1);
            for (j, k) in self.columns.iter().enumerate().take(i + 1) {
                let (col, expr) = self.col_and_expr(side, k);
                let this_op = if j < i {
                    "="
                } else if i == n - 1 {
                    last_op
                } else {
                    op
                };
                conj.push(format!("{col} {this_op} {expr}"));
                params.push(k.param(&bound[j]));
            }
            disjuncts.push(format!("({})", conj.join(" AND ")));
        }
        (format!("({})", disjuncts.join(" OR ")), params)
    }

    /// `key IN (values...)`, with its parameters.
    ///
    /// The list is padded to the next power of two by repeating its last
    /// key (harmless in a WHERE clause), so that a statement takes one of
    /// a few shapes, which the connection's prepared-statement cache keeps,
    /// instead of one per batch size.
    pub fn matches_any(&self, side: Side, keys: &[KeyValue]) -> (String, Vec<Value>) {
        let keys = padded_to_a_power_of_two(keys);
        let mut params = Vec::new();
        if self.columns.len() == 1 {
            let k = &self.columns[0];
            let mut tests = Vec::new();
            for (col, expr) in self.comparisons(side, k) {
                tests.push(format!("{col} IN ({})", vec![expr; keys.len()].join(", ")));
                params.extend(keys.iter().map(|key| k.param(&key[0])));
            }
            return (tests.join(" AND "), params);
        }
        let mut one = Vec::new();
        let mut positions = Vec::new();
        for (i, k) in self.columns.iter().enumerate() {
            for (col, expr) in self.comparisons(side, k) {
                one.push(format!("{col} = {expr}"));
                positions.push(i);
            }
        }
        let one = format!("({})", one.join(" AND "));
        for key in &keys {
            params.extend(positions.iter().map(|&i| self.columns[i].param(&key[i])));
        }
        (format!("({})", vec![one; keys.len()].join(" OR ")), params)
    }
}

#[cfg(test)]
pub(crate) mod tests {

    #[test]
    fn expression_defaults_are_not_generated_columns() {
        // MySQL 8's EXTRA for DEFAULT CURRENT_TIMESTAMP, with and without
        // ON UPDATE: copied as any column.
        assert!(!super::is_generated("DEFAULT_GENERATED"));
        assert!(!super::is_generated(
            "DEFAULT_GENERATED ON UPDATE CURRENT_TIMESTAMP"
        ));
        assert!(!super::is_generated("ON UPDATE CURRENT_TIMESTAMP"));
        assert!(!super::is_generated("AUTO_INCREMENT"));
        // Computed columns, as MySQL and MariaDB show them.
        assert!(super::is_generated("VIRTUAL GENERATED"));
        assert!(super::is_generated("STORED GENERATED"));
        assert!(super::is_generated("PERSISTENT GENERATED"));
        assert!(super::is_generated("PERSISTENT"));
    }

    #[test]
    fn a_number_is_one_key_whichever_way_the_driver_gives_it() {
        assert_eq!(
            KeyPart::from_value(Value::UInt(5)),
            KeyPart::from_value(Value::Int(5))
        );
        assert_eq!(
            KeyPart::from_value(Value::UInt(u64::MAX)),
            Some(KeyPart::UInt(u64::MAX))
        );
        assert_eq!(
            KeyPart::from_value(Value::UInt(i64::MAX as u64)),
            Some(KeyPart::Int(i64::MAX))
        );
    }

    use super::*;

    #[test]
    fn integer_maxima_follow_the_type_and_its_sign() {
        assert_eq!(integer_maximum("tinyint", false), Some(127));
        assert_eq!(integer_maximum("TINYINT", true), Some(255));
        assert_eq!(integer_maximum("smallint", true), Some(65_535));
        assert_eq!(integer_maximum("mediumint", false), Some(8_388_607));
        assert_eq!(integer_maximum("int", true), Some(4_294_967_295));
        assert_eq!(integer_maximum("bigint", false), Some(i64::MAX as u64));
        assert_eq!(integer_maximum("bigint", true), Some(u64::MAX));
        assert_eq!(integer_maximum("double", false), None);
    }

    pub fn col(name: &str, data_type: &str, charset: Option<(&str, &str)>) -> Column {
        Column {
            name: name.into(),
            data_type: data_type.into(),
            column_type: data_type.into(),
            nullable: false,
            charset: charset.map(|c| c.0.to_string()),
            collation: charset.map(|c| c.1.to_string()),
            octet_length: None,
            generated: false,
            invisible: false,
            has_default: false,
            auto_increment: false,
        }
    }

    pub fn key(cols: &[Column]) -> SharedKey {
        SharedKey {
            name: "PRIMARY".into(),
            ghost_name: "PRIMARY".into(),
            columns: cols
                .iter()
                .enumerate()
                .map(|(i, c)| KeyColumn {
                    name: c.name.clone(),
                    ghost_name: c.name.clone(),
                    ordinal: i,
                    column: c.clone(),
                    ghost_column: c.clone(),
                })
                .collect(),
            identity_preserved: true,
        }
    }

    #[test]
    fn composite_range_is_expanded_for_the_range_optimizer() {
        let k = key(&[col("a", "int", None), col("b", "int", None)]);
        let (sql, params) = k.greater_than(Side::Original, &[KeyPart::Int(1), KeyPart::Int(2)]);
        assert_eq!(sql, "((`a` > ?) OR (`a` = ? AND `b` > ?))");
        assert_eq!(params.len(), 3);
        let (sql, _) = k.at_most(Side::Original, &[KeyPart::Int(1), KeyPart::Int(2)]);
        assert_eq!(sql, "((`a` < ?) OR (`a` = ? AND `b` <= ?))");
    }

    #[test]
    fn strings_are_bound_in_their_own_collation() {
        let c = col("s", "varchar", Some(("latin1", "latin1_swedish_ci")));
        let k = key(&[c]);
        let (sql, _) = k.matches_any(Side::Original, &[vec![KeyPart::Bytes(b"a".to_vec())]]);
        assert_eq!(
            sql,
            "`s` IN (CONVERT(UNHEX(?) USING latin1) COLLATE latin1_swedish_ci)"
        );
        assert_eq!(k.columns[0].select_expr(), "CAST(`s` AS BINARY)");
    }

    #[test]
    fn enum_keys_are_bound_as_numbers_whatever_their_collation() {
        let mut c = col("e", "enum", Some(("utf8mb3", "utf8mb3_bin")));
        c.column_type = "enum('red','green')".into();
        let k = key(&[c]);
        let (sql, params) = k.matches_any(Side::Original, &[vec![KeyPart::UInt(2)]]);
        assert_eq!(sql, "`e` IN (?)");
        assert_eq!(params, vec![Value::UInt(2)]);
    }

    #[test]
    fn enum_keys_match_rows_by_position_whatever_their_collations() {
        let mut old = col("e", "enum", Some(("latin1", "latin1_swedish_ci")));
        old.column_type = "enum('a','b')".into();
        let mut new = old.clone();
        new.collation = Some("latin1_general_ci".into());
        let mut k = key(&[old]);
        k.columns[0].ghost_column = new;
        assert_eq!(k.same_row("g", "o"), "g.`e` = (o.`e` + 0)");
    }

    #[test]
    fn reads_enum_and_set_members_as_the_server_writes_them() {
        let mut c = col("s", "set", Some(("utf8mb4", "utf8mb4_bin")));
        c.column_type = "set('a','it''s','','x,y')".into();
        assert_eq!(c.members().unwrap(), vec!["a", "it's", "", "x,y"]);
        c.column_type = "set('a'".into();
        assert_eq!(c.members(), None);
        let mut e = col("e", "enum", Some(("utf8mb4", "utf8mb4_bin")));
        e.column_type = "enum('''')".into();
        assert_eq!(e.members().unwrap(), vec!["'"]);
        assert_eq!(col("i", "int", None).members(), None);
    }

    #[test]
    fn enum_and_set_keys_may_gain_members_after_the_last() {
        let change = |data_type: &str, old: &str, new: &str| {
            let mut o = col("e", data_type, Some(("utf8mb4", "utf8mb4_general_ci")));
            o.column_type = old.into();
            let mut n = o.clone();
            n.column_type = new.into();
            let mut k = key(&[o]);
            k.columns[0].ghost_column = n;
            k.columns[0].change() == KeyChange::Alike
        };
        assert!(change("enum", "enum('a','b')", "enum('a','b','c')"));
        assert!(change("set", "set('a','b')", "set('a','b','c','d')"));
        assert!(change("enum", "enum('x''','y')", "enum('x''','y','z''')"));
        assert!(change("enum", "enum('a')", "enum('a','''')"));
        // Under a binary collation these are two members swapped.
        assert!(!change("enum", "enum('a','A')", "enum('A','a')"));
        // The error value '' would move from position 0 to the new member's.
        assert!(!change("enum", "enum('a')", "enum('a','')"));
        assert!(!change("enum", "enum('a')", "enum('a','','b')"));
        // Reordered, inserted before the end, renamed, removed: positions move.
        for new in [
            "enum('b','a')",
            "enum('c','a','b')",
            "enum('a','c')",
            "enum('a')",
            "enum('a','bc')",
        ] {
            assert!(!change("enum", "enum('a','b')", new), "{new}");
        }
        // A quote doubled in the new member is no boundary after 'x'.
        assert!(!change("enum", "enum('x')", "enum('x'',y')"));
    }

    #[test]
    fn converted_charset_compares_in_the_new_collation() {
        let old = col("s", "varchar", Some(("latin1", "latin1_swedish_ci")));
        let new = col("s", "varchar", Some(("utf8mb4", "utf8mb4_unicode_ci")));
        let mut k = key(&[old]);
        k.columns[0].ghost_column = new;
        let (sql, _) = k.matches_any(Side::Ghost, &[vec![KeyPart::Bytes(b"a".to_vec())]]);
        // The ghost's index finds candidates; the second test keeps exactly
        // the rows of these original keys.
        assert_eq!(
            sql,
            "`s` IN (CONVERT(CONVERT(UNHEX(?) USING latin1) USING utf8mb4) COLLATE utf8mb4_unicode_ci) \
             AND CONVERT(`s` USING latin1) COLLATE latin1_swedish_ci IN (CONVERT(UNHEX(?) USING latin1) COLLATE latin1_swedish_ci)"
        );
    }

    #[test]
    fn a_key_keeps_its_comparison_unless_values_round_or_change_kind() {
        let change = |old: &str, new: &str| {
            let data_type = |t: &str| t.split('(').next().unwrap_or(t).to_string();
            let mut k = key(&[col("k", &data_type(old), None)]);
            k.columns[0].column.column_type = old.into();
            k.columns[0].ghost_column = col("k", &data_type(new), None);
            k.columns[0].ghost_column.column_type = new.into();
            k.columns[0].change()
        };
        assert_eq!(change("int", "bigint"), KeyChange::Alike);
        assert_eq!(
            change("bigint", "smallint"),
            KeyChange::Alike,
            "fails loudly"
        );
        assert_eq!(change("decimal(17,2)", "decimal(20,4)"), KeyChange::Alike);
        assert_eq!(
            change("decimal(17,2)", "decimal(9,2)"),
            KeyChange::Alike,
            "fails loudly"
        );
        assert_eq!(change("datetime(3)", "datetime(6)"), KeyChange::Alike);
        assert_eq!(change("int", "decimal(22,0)"), KeyChange::Alike);
        assert_eq!(
            change("bigint(20) unsigned", "decimal(24,4)"),
            KeyChange::Alike
        );
        for (old, new) in [
            ("decimal(20,0)", "bigint"),
            ("int", "double"),
            ("decimal(17,2)", "decimal(17,1)"),
            ("decimal(10,3) unsigned", "decimal(10,0) unsigned"),
            ("datetime(6)", "datetime(3)"),
            ("date", "datetime"),
            ("double", "float"),
        ] {
            assert!(
                matches!(change(old, new), KeyChange::Unsupported(_)),
                "{old} -> {new}"
            );
        }
    }

    #[test]
    fn generations_split_by_bytes_by_equality_or_not_at_all() {
        assert_eq!(
            key(&[col("id", "bigint", None)]).parallel_apply(),
            ParallelApply::ByBytes
        );
        let text = col("s", "varchar", Some(("utf8mb4", "utf8mb4_unicode_ci")));
        assert_eq!(
            key(&[col("tenant", "int", None), text.clone()]).parallel_apply(),
            ParallelApply::ByEquality
        );
        // A collation the bound expression could not name.
        let odd = col("s", "varchar", Some(("utf8mb4", "utf8mb4 bin")));
        assert_eq!(key(&[odd]).parallel_apply(), ParallelApply::Serial);
        for data_type in ["double", "datetime", "decimal", "binary", "timestamp"] {
            assert_eq!(
                key(&[col("k", data_type, None)]).parallel_apply(),
                ParallelApply::Serial,
                "{data_type}"
            );
        }
        // Recollated: both collations are named.
        let mut k = key(&[col("s", "varchar", Some(("latin1", "latin1_swedish_ci")))]);
        k.columns[0].ghost_column = text;
        k.identity_preserved = false;
        assert_eq!(k.parallel_apply(), ParallelApply::ByEquality);
    }

    #[test]
    fn equality_classes_are_ranked_on_both_sides_in_power_of_two_shapes() {
        let k = key(&[
            col("t", "int", None),
            col("s", "varchar", Some(("latin1", "latin1_swedish_ci"))),
        ]);
        let keys: Vec<KeyValue> = (1..=3)
            .map(|i| vec![KeyPart::Int(i), KeyPart::Bytes(b"a".to_vec())])
            .collect();
        let (sql, params) = k.equality_classes(&keys);
        let s = "CONVERT(UNHEX(?) USING latin1) COLLATE latin1_swedish_ci";
        assert_eq!(
            sql,
            format!(
                "SELECT i, DENSE_RANK() OVER (ORDER BY o0, o1), DENSE_RANK() OVER (ORDER BY g0, g1) FROM (\
                 SELECT 0 AS i, ? AS o0, {s} AS o1, ? AS g0, {s} AS g1 \
                 UNION ALL SELECT 1, ?, {s}, ?, {s} \
                 UNION ALL SELECT 2, ?, {s}, ?, {s} \
                 UNION ALL SELECT 3, ?, {s}, ?, {s}) AS changed_keys"
            )
        );
        // Four rows (the last key repeated), two sides, two columns.
        assert_eq!(params.len(), 16);
        assert_eq!(params[12], Value::Int(3));
    }

    #[test]
    fn composite_membership_is_a_disjunction() {
        let k = key(&[col("a", "int", None), col("b", "int", None)]);
        let keys = vec![
            vec![KeyPart::Int(1), KeyPart::Int(2)],
            vec![KeyPart::Int(3), KeyPart::Int(4)],
        ];
        let (sql, params) = k.matches_any(Side::Ghost, &keys);
        assert_eq!(sql, "((`a` = ? AND `b` = ?) OR (`a` = ? AND `b` = ?))");
        assert_eq!(params.len(), 4);
    }

    #[test]
    fn key_lists_take_power_of_two_shapes() {
        let k = key(&[col("id", "int", None)]);
        let keys: Vec<KeyValue> = (1..=3).map(|i| vec![KeyPart::Int(i)]).collect();
        let (sql, params) = k.matches_any(Side::Original, &keys);
        assert_eq!(sql, "`id` IN (?, ?, ?, ?)");
        assert_eq!(
            params,
            vec![Value::Int(1), Value::Int(2), Value::Int(3), Value::Int(3)]
        );
        let (sql, _) = k.matches_any(Side::Original, &keys[..2]);
        assert_eq!(sql, "`id` IN (?, ?)");
    }

    #[test]
    fn primary_key_is_preferred_and_nullable_keys_are_not_candidates() {
        let mut nullable = col("n", "int", None);
        nullable.nullable = true;
        let t = TableSchema {
            database: "d".into(),
            name: "t".into(),
            columns: vec![col("id", "int", None), nullable, col("u", "int", None)],
            indexes: vec![
                Index {
                    name: "u".into(),
                    unique: true,
                    columns: vec!["u".into()],
                    has_prefix: false,
                    hashed: false,
                },
                Index {
                    name: "n".into(),
                    unique: true,
                    columns: vec!["n".into()],
                    has_prefix: false,
                    hashed: false,
                },
                Index {
                    name: "PRIMARY".into(),
                    unique: true,
                    columns: vec!["id".into()],
                    has_prefix: false,
                    hashed: false,
                },
                // MariaDB's long UNIQUE: no order to read, nothing to look up by.
                Index {
                    name: "h".into(),
                    unique: true,
                    columns: vec!["u".into()],
                    has_prefix: false,
                    hashed: true,
                },
            ],
            engine: "InnoDB".into(),
            table_type: "BASE TABLE".into(),
            rows_estimate: 0,
            auto_increment: None,
            comment: String::new(),
        };
        let names: Vec<_> = t
            .row_identifying_keys()
            .iter()
            .map(|i| i.name.clone())
            .collect();
        assert_eq!(names, vec!["PRIMARY", "u"]);
    }
}
