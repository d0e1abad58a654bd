//! Chunk boundaries along the shared key. On a single integer key they are
//! computed (see [`KeyWalk`]); otherwise each boundary is found by an index
//! range scan (`WHERE key > previous ORDER BY key LIMIT 1 OFFSET size-1`),
//! so memory stays constant whatever the table size, and composite and
//! character keys work the same way as integers.

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};

use crate::error::{Result, SqlContext};
use crate::schema::{integer_key, single_integer, KeyPart, KeyValue, SharedKey, Side};
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

    /// The boundary statements, for the dry-run plan.
    pub fn describe(&self) -> String {
        let scan = format!(
            "SELECT {} FROM {} WHERE <key > previous boundary> ORDER BY {} LIMIT 1 OFFSET <chunk size - 1>",
            self.key.select_list(),
            self.from,
            self.key.order_by()
        );
        if self.key.is_single_integer() {
            format!(
                "boundaries computed on the integer key: (lower, lower + chunk size], after SELECT {key} FROM {from} ORDER BY {order} LIMIT 1 and the same DESC \
                 (the lowest and highest key); where the key has gaps: {scan}",
                key = self.key.select_list(),
                from = self.from,
                order = self.key.order_by(),
            )
        } else {
            scan
        }
    }

    /// The lowest (or highest) key of the original, as a number; `None`
    /// when the table is empty or the key is not a single integer.
    async fn edge(&self, conn: &mut Conn, highest: bool) -> Result<Option<i128>> {
        let direction = if highest { " DESC" } else { "" };
        let stmt = format!(
            "SELECT {} FROM {} ORDER BY {}{direction} LIMIT 1",
            self.key.select_list(),
            self.from,
            self.key.order_by()
        );
        let key = self.read_key(conn, stmt, Vec::new()).await?;
        Ok(key.as_deref().and_then(single_integer))
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

/// The copy's walk along the key: where each next chunk ends.
///
/// On a single integer key the next upper bound is computed, `lower +
/// size`, without reading a row: a unique integer key holds at most `size`
/// rows in `size` consecutive values, so a computed chunk never holds more
/// rows than asked, and its boundary costs no statement. Where the keys
/// have gaps a computed chunk holds fewer; once one comes back with less
/// than a quarter of its span, the walk finds boundaries by the index scan,
/// as it does for every other key, until a scanned chunk spans less than
/// twice its rows (dense keys again). The highest key is read
/// again when the walk reaches it, so rows inserted above it meanwhile are
/// walked the same way; the open-ended last chunk comes only when no row is
/// left above.
#[derive(Debug)]
pub struct KeyWalk {
    /// The key is one integer column.
    integer: bool,
    /// Boundaries are computed now (the keys are dense here).
    by_arithmetic: bool,
    /// The value just below the first chunk (the lowest key minus one).
    below_first: Option<i128>,
    /// The highest key when it was last read.
    highest: Option<i128>,
}

impl KeyWalk {
    /// A walk along `key`, by arithmetic when it is one integer column.
    pub fn new(key: &SharedKey) -> KeyWalk {
        let integer = key.is_single_integer();
        KeyWalk {
            integer,
            by_arithmetic: integer,
            below_first: None,
            highest: None,
        }
    }

    /// The next chunk above `lower` holding at most `size` rows, or `None`
    /// when no row is left above `lower`.
    pub async fn next_chunk(
        &mut self,
        chunker: &Chunker,
        conn: &mut Conn,
        lower: Option<&KeyValue>,
        size: u64,
    ) -> Result<Option<Chunk>> {
        if self.by_arithmetic {
            match self.computed_upper(chunker, conn, lower, size).await? {
                Computed::Upper(upper) => {
                    return Ok(Some(Chunk {
                        lower: lower.cloned(),
                        upper: Some(upper),
                    }))
                }
                Computed::NothingLeft => return Ok(None),
                Computed::NotAnInteger => {
                    self.integer = false;
                    self.by_arithmetic = false;
                }
            }
        }
        chunker.next_chunk(conn, lower, size).await
    }

    async fn computed_upper(
        &mut self,
        chunker: &Chunker,
        conn: &mut Conn,
        lower: Option<&KeyValue>,
        size: u64,
    ) -> Result<Computed> {
        let start = match lower {
            Some(lower) => match single_integer(lower) {
                Some(start) => start,
                None => return Ok(Computed::NotAnInteger),
            },
            None => match chunker.edge(conn, false).await? {
                Some(lowest) => {
                    self.below_first = Some(lowest - 1);
                    lowest - 1
                }
                None => return Ok(Computed::NothingLeft),
            },
        };
        let highest = match self.highest {
            Some(highest) if highest > start => highest,
            _ => match chunker.edge(conn, true).await? {
                Some(highest) if highest > start => {
                    self.highest = Some(highest);
                    highest
                }
                _ => return Ok(Computed::NothingLeft),
            },
        };
        Ok(computed_upper(start, size, highest).map_or(Computed::NotAnInteger, Computed::Upper))
    }

    /// Learns from `chunk`, copied with `rows` rows: a computed chunk far
    /// emptier than its span turns the arithmetic off, a scanned one about
    /// as full as its span turns it back on.
    pub fn observe(&mut self, chunk: &Chunk, rows: u64) {
        if !self.integer {
            return;
        }
        let lower = match &chunk.lower {
            Some(lower) => single_integer(lower),
            None => self.below_first,
        };
        let upper = chunk.upper.as_deref().and_then(single_integer);
        let (Some(lower), Some(upper)) = (lower, upper) else {
            return;
        };
        let (span, rows) = (upper - lower, i128::from(rows));
        let dense = if self.by_arithmetic {
            rows * 4 >= span
        } else {
            rows * 2 >= span
        };
        if dense != self.by_arithmetic {
            tracing::debug!(
                span = span as f64,
                rows = rows as f64,
                dense,
                "chunk boundaries are now {}",
                if dense { "computed" } else { "scanned for" }
            );
            self.by_arithmetic = dense;
        }
    }
}

/// The upper bound `size` values above `start`, at most `highest`.
fn computed_upper(start: i128, size: u64, highest: i128) -> Option<KeyValue> {
    integer_key(start.saturating_add(i128::from(size.max(1))).min(highest))
}

/// What the arithmetic found for the next upper bound.
enum Computed {
    Upper(KeyValue),
    NothingLeft,
    NotAnInteger,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::{col, key};

    #[test]
    fn computed_bounds_stay_in_the_key_range_as_the_server_binds_it() {
        let top = i128::from(u64::MAX);
        assert_eq!(computed_upper(-10, 5, 100), Some(vec![KeyPart::Int(-5)]));
        assert_eq!(computed_upper(10, 0, 100), Some(vec![KeyPart::Int(11)]));
        assert_eq!(computed_upper(90, 50, 100), Some(vec![KeyPart::Int(100)]));
        let below_2_63 = i128::from(i64::MAX) - 2;
        assert_eq!(
            computed_upper(below_2_63, 5, top),
            Some(vec![KeyPart::UInt(1 << 63 | 2)])
        );
        assert_eq!(
            computed_upper(top - 3, u64::MAX, top),
            Some(vec![KeyPart::UInt(u64::MAX)])
        );
        let bottom = i128::from(i64::MIN) - 1;
        assert_eq!(
            computed_upper(bottom, 1, 0),
            Some(vec![KeyPart::Int(i64::MIN)])
        );
    }

    #[test]
    fn the_walk_scans_where_keys_have_gaps_and_computes_where_dense() {
        let mut walk = KeyWalk::new(&key(&[col("id", "bigint", None)]));
        assert!(walk.by_arithmetic);
        let chunk = |lower: i64, upper: i64| Chunk {
            lower: Some(vec![KeyPart::Int(lower)]),
            upper: Some(vec![KeyPart::Int(upper)]),
        };
        walk.observe(&chunk(0, 1000), 900);
        assert!(walk.by_arithmetic, "a few missing rows are no gap");
        walk.observe(&chunk(1000, 2000), 240);
        assert!(!walk.by_arithmetic, "a quarter of the span filled");
        walk.observe(&chunk(2000, 3000), 400);
        assert!(!walk.by_arithmetic, "still sparse for a scan");
        walk.observe(&chunk(3000, 4000), 500);
        assert!(walk.by_arithmetic, "dense again");
        // The first chunk's span starts below the lowest key.
        walk.below_first = Some(-1);
        let first = Chunk {
            lower: None,
            upper: Some(vec![KeyPart::Int(99)]),
        };
        walk.observe(&first, 10);
        assert!(!walk.by_arithmetic);

        for other in [
            key(&[col("a", "int", None), col("b", "int", None)]),
            key(&[col("d", "decimal", None)]),
        ] {
            assert!(!KeyWalk::new(&other).by_arithmetic, "{other:?}");
        }
    }

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
