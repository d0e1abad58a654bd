//! Chunk boundaries along the shared key. Each boundary is found by an index
//! range scan (`WHERE key > previous ORDER BY key LIMIT 1 OFFSET size-1`), so
//! memory stays constant whatever the table size, and composite and
//! character keys work the same way as integers.

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};

use crate::error::{Result, SqlContext};
use crate::schema::{KeyPart, KeyValue, SharedKey, Side};
use crate::shadow::ShadowNames;
use crate::sql;

/// A chunk: rows with `lower < key <= upper` (open where `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Exclusive lower bound; `None` for the first chunk.
    pub lower: Option<KeyValue>,
    /// Inclusive upper bound; `None` for the last chunk.
    pub upper: Option<KeyValue>,
}

impl Chunk {
    /// The WHERE clause (without `WHERE`) on the original and its
    /// parameters; empty when the chunk is the whole table.
    pub fn predicate(&self, key: &SharedKey) -> (String, Vec<Value>) {
        self.predicate_on(key, Side::Original)
    }

    /// The same range written against `side`'s key columns.
    pub fn predicate_on(&self, key: &SharedKey, side: Side) -> (String, Vec<Value>) {
        let mut parts = Vec::new();
        let mut params = Vec::new();
        if let Some(lower) = &self.lower {
            let (p, v) = key.greater_than(side, lower);
            parts.push(p);
            params.extend(v);
        }
        if let Some(upper) = &self.upper {
            let (p, v) = key.at_most(side, upper);
            parts.push(p);
            params.extend(v);
        }
        (parts.join(" AND "), params)
    }
}

/// Walks the original table along the shared key.
#[derive(Debug, Clone)]
pub struct Chunker {
    from: String,
    key: SharedKey,
}

impl Chunker {
    /// A chunker over the original table of `names`.
    pub fn new(names: &ShadowNames, key: SharedKey) -> Chunker {
        let from = format!(
            "{} FORCE INDEX ({})",
            names.q(&names.original),
            sql::ident(&key.name)
        );
        Chunker { from, key }
    }

    /// `FROM` clause with the index hint, shared with the copy statement.
    pub fn from_clause(&self) -> &str {
        &self.from
    }

    /// The boundary statement, for the dry-run plan.
    pub fn describe(&self) -> String {
        format!(
            "SELECT {} FROM {} WHERE <key > previous boundary> ORDER BY {} LIMIT 1 OFFSET <chunk size - 1>",
            self.key.select_list(),
            self.from,
            self.key.order_by()
        )
    }

    /// The next chunk after `lower` holding at most `size` rows, or `None`
    /// when no row is left above `lower`.
    pub async fn next_chunk(
        &self,
        conn: &mut Conn,
        lower: Option<&KeyValue>,
        size: u64,
    ) -> Result<Option<Chunk>> {
        self.next_chunk_below(conn, lower, None, size).await
    }

    /// The next chunk after `lower` and at most `ceiling` (open when
    /// `None`), holding at most `size` rows; `None` when no row is left in
    /// the range. Keys are compared by the server only.
    pub async fn next_chunk_below(
        &self,
        conn: &mut Conn,
        lower: Option<&KeyValue>,
        ceiling: Option<&KeyValue>,
        size: u64,
    ) -> Result<Option<Chunk>> {
        let range = Chunk {
            lower: lower.cloned(),
            upper: ceiling.cloned(),
        };
        let (predicate, params) = range.predicate(&self.key);
        let filter = if predicate.is_empty() {
            String::new()
        } else {
            format!("WHERE {predicate}")
        };
        let base = format!(
            "SELECT {} FROM {} {filter} ORDER BY {}",
            self.key.select_list(),
            self.from,
            self.key.order_by()
        );
        let upper = self
            .read_key(
                conn,
                format!("{base} LIMIT 1 OFFSET {}", size.saturating_sub(1)),
                params.clone(),
            )
            .await?;
        if upper.is_some() {
            return Ok(Some(Chunk {
                lower: lower.cloned(),
                upper,
            }));
        }
        // Fewer than `size` rows are left: one chunk up to the ceiling takes
        // them (open-ended at the end of the table: the tail covers rows
        // inserted beyond it from now on).
        let any = self
            .read_key(conn, format!("{base} LIMIT 1"), params)
            .await?;
        Ok(any.map(|_| range))
    }

    async fn read_key(
        &self,
        conn: &mut Conn,
        stmt: String,
        params: Vec<Value>,
    ) -> Result<Option<KeyValue>> {
        let row: Option<Row> = conn
            .exec_first(&stmt, params)
            .await
            .context(|| format!("finding the next chunk boundary ({stmt})"))?;
        Ok(row.map(|row| {
            row.unwrap()
                .into_iter()
                .filter_map(KeyPart::from_value)
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::{col, key};

    #[test]
    fn chunk_predicates_are_half_open_ranges() {
        let k = key(&[col("id", "int", None)]);
        let c = Chunk {
            lower: Some(vec![KeyPart::Int(10)]),
            upper: Some(vec![KeyPart::Int(20)]),
        };
        let (p, v) = c.predicate(&k);
        assert_eq!(p, "((`id` > ?)) AND ((`id` <= ?))");
        assert_eq!(v.len(), 2);
        let whole = Chunk {
            lower: None,
            upper: None,
        };
        assert_eq!(whole.predicate(&k).0, "");
    }
}
