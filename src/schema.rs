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

    /// True when values are compared as characters in a collation.
    pub fn is_text(&self) -> bool {
        matches!(self.charset.as_deref(), Some(cs) if cs != "binary")
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
                    && i.columns
                        .iter()
                        .all(|c| self.column(c).is_some_and(|c| !c.nullable && !c.generated))
            })
            .collect();
        keys.sort_by_key(|i| (i.name != "PRIMARY", i.columns.len()));
        keys
    }
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
    );
    let column_rows: Vec<ColumnRow> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, \
             COLLATION_NAME, CHARACTER_OCTET_LENGTH, EXTRA \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (database, table),
        )
        .await
        .context(what)?;
    let columns = column_rows
        .into_iter()
        .map(
            |(name, data_type, column_type, nullable, charset, collation, octets, extra)| {
                let extra = extra.to_ascii_uppercase();
                Column {
                    name,
                    data_type: data_type.to_ascii_lowercase(),
                    column_type,
                    nullable: nullable == "YES",
                    charset,
                    collation,
                    octet_length: octets,
                    generated: extra.contains("GENERATED") || extra.contains("PERSISTENT"),
                    invisible: extra.contains("INVISIBLE"),
                }
            },
        )
        .collect();
    let index_rows: Vec<(String, i64, String, Option<i64>)> = conn
        .exec(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (database, table),
        )
        .await
        .context(what)?;
    let mut indexes: Vec<Index> = Vec::new();
    for (name, non_unique, column, sub_part) in index_rows {
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
    pub fn from_value(value: Value) -> Option<KeyPart> {
        Some(match value {
            Value::NULL => return None,
            Value::Int(v) => KeyPart::Int(v),
            Value::UInt(v) => KeyPart::UInt(v),
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
            expr = format!("FROM_UNIXTIME({expr})");
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
}

/// Which table a key predicate is written against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The original table.
    Original,
    /// The new (ghost) table.
    Ghost,
}

impl SharedKey {
    fn col_and_expr(&self, side: Side, k: &KeyColumn) -> (String, String) {
        match side {
            Side::Original => (sql::ident(&k.name), k.bind_expr(&k.column)),
            Side::Ghost => (sql::ident(&k.ghost_name), k.bind_expr(&k.ghost_column)),
        }
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
    pub fn matches_any(&self, side: Side, keys: &[KeyValue]) -> (String, Vec<Value>) {
        let mut params = Vec::with_capacity(keys.len() * self.columns.len());
        if self.columns.len() == 1 {
            let (col, expr) = self.col_and_expr(side, &self.columns[0]);
            let list = vec![expr; keys.len()].join(", ");
            params.extend(keys.iter().map(|k| self.columns[0].param(&k[0])));
            return (format!("{col} IN ({list})"), params);
        }
        let one: Vec<String> = self
            .columns
            .iter()
            .map(|k| {
                let (col, expr) = self.col_and_expr(side, k);
                format!("{col} = {expr}")
            })
            .collect();
        let one = format!("({})", one.join(" AND "));
        for key in keys {
            params.extend(key.iter().zip(&self.columns).map(|(part, k)| k.param(part)));
        }
        (format!("({})", vec![one; keys.len()].join(" OR ")), params)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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
    fn converted_charset_compares_in_the_new_collation() {
        let old = col("s", "varchar", Some(("latin1", "latin1_swedish_ci")));
        let new = col("s", "varchar", Some(("utf8mb4", "utf8mb4_unicode_ci")));
        let mut k = key(&[old]);
        k.columns[0].ghost_column = new;
        let (sql, _) = k.matches_any(Side::Ghost, &[vec![KeyPart::Bytes(b"a".to_vec())]]);
        assert_eq!(
            sql,
            "`s` IN (CONVERT(CONVERT(UNHEX(?) USING latin1) USING utf8mb4) COLLATE utf8mb4_unicode_ci)"
        );
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
                },
                Index {
                    name: "n".into(),
                    unique: true,
                    columns: vec!["n".into()],
                    has_prefix: false,
                },
                Index {
                    name: "PRIMARY".into(),
                    unique: true,
                    columns: vec!["id".into()],
                    has_prefix: false,
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
