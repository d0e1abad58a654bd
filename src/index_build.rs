//! Secondary indexes built after the copy. InnoDB builds an index from
//! sorted rows far faster than it maintains one row by row during
//! millions of inserts, so the new table is copied without its plain
//! secondary indexes, which one `ALTER TABLE ... ADD KEY ..., ALGORITHM =
//! INPLACE, LOCK = NONE` then builds while the applier keeps writing,
//! before the checksum and the cut-over.
//!
//! Only plain (non-unique, non-fulltext, non-spatial) indexes are
//! deferred. A unique index stays: under a write load, the new table holds
//! transient duplicates (a row re-read before another row's change that
//! frees its value), which the copy and the applier tell from real ones by
//! catching up; an online unique build would fail on them. The shared key
//! is unique, so the applier's lookups never lose their index.
//!
//! The result must be exactly the table the ALTER defines: the indexes are
//! dropped and re-added once on the still empty new table, and deferred
//! only when `SHOW CREATE TABLE` then reads exactly as before; after the
//! build it is compared again.

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::{Error, Result, SqlContext};
use crate::shadow::ShadowNames;
use crate::sql;

/// The plain secondary indexes taken off the new table until the copy is done.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeferredIndexes {
    /// Definitions as `SHOW CREATE TABLE` writes them (`KEY ... (...)`), in order.
    definitions: Vec<String>,
    /// Their names, in the same order.
    names: Vec<String>,
    /// `SHOW CREATE TABLE` of the new table with them, `AUTO_INCREMENT` left out.
    expected: String,
}

impl DeferredIndexes {
    /// Takes the plain secondary indexes off the empty new table, when
    /// adding them back gives exactly the same table; `None` when there
    /// are none or they must stay.
    /// An index whose first column is `key_column` (the shared key's first
    /// column in the new table) stays: the applier's lookups may need it.
    /// So does one that starts with the AUTO_INCREMENT column, which the
    /// server requires to lead some index (fuzzer seed 11335: the ALTER
    /// moved the primary key off it and indexed it in a plain index only).
    /// The server appends added indexes after the existing ones of their
    /// kind, so only the plain indexes after the last one that stays are
    /// deferred.
    pub async fn defer(
        conn: &mut Conn,
        names: &ShadowNames,
        key_column: &str,
        statement_tag: &str,
    ) -> Result<Option<DeferredIndexes>> {
        let expected = show_create(conn, names).await?;
        if expected.contains("FOREIGN KEY") {
            return Ok(None);
        }
        let plain = plain_indexes(&expected);
        let mut leads = vec![key_column.to_string()];
        leads.extend(auto_increment_column(&expected));
        let first_deferred = first_deferrable(&plain, &leads);
        let Some(all) = DeferredIndexes::new(plain, expected) else {
            return Ok(None);
        };
        let deferred = all.from(first_deferred);
        if deferred.is_empty() {
            return Ok(None);
        }
        deferred.drop_all(conn, names, statement_tag).await?;
        deferred.add_all(conn, names, statement_tag).await?;
        if show_create(conn, names).await? == deferred.expected {
            deferred.drop_all(conn, names, statement_tag).await?;
            return Ok(Some(deferred));
        }
        // The table is still empty: every plain index is taken off and
        // added back in its order, which restores the ALTER's table.
        tracing::info!(
            "the new table's indexes do not read the same once added back; they are kept during the copy"
        );
        all.drop_all(conn, names, statement_tag).await?;
        all.build(conn, names, statement_tag).await?;
        Ok(None)
    }

    /// The indexes of `definitions` (as `SHOW CREATE TABLE` writes them) of
    /// a table that reads `expected`; `None` when a name cannot be read.
    fn new(definitions: Vec<String>, expected: String) -> Option<DeferredIndexes> {
        let names = definitions
            .iter()
            .map(|d| index_name(d))
            .collect::<Option<Vec<String>>>()?;
        Some(DeferredIndexes {
            definitions,
            names,
            expected,
        })
    }

    /// The indexes from the `first`-th on.
    fn from(&self, first: usize) -> DeferredIndexes {
        DeferredIndexes {
            definitions: self.definitions[first.min(self.definitions.len())..].to_vec(),
            names: self.names[first.min(self.names.len())..].to_vec(),
            expected: self.expected.clone(),
        }
    }

    /// The deferred indexes the new table does not have yet: a killed run
    /// may have built some before it stopped. `None` when it has them all.
    pub fn still_missing(&self, ghost: &crate::schema::TableSchema) -> Option<DeferredIndexes> {
        let keep: Vec<usize> = (0..self.names.len())
            .filter(|&i| ghost.index(&self.names[i]).is_none())
            .collect();
        if keep.is_empty() {
            return None;
        }
        Some(DeferredIndexes {
            definitions: keep.iter().map(|&i| self.definitions[i].clone()).collect(),
            names: keep.iter().map(|&i| self.names[i].clone()).collect(),
            expected: self.expected.clone(),
        })
    }

    /// Number of indexes deferred.
    pub fn len(&self) -> usize {
        self.definitions.len()
    }

    /// The names of the indexes taken off, built after the copy.
    pub fn index_names(&self) -> &[String] {
        &self.names
    }

    /// True when no index is deferred.
    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty()
    }

    /// The statement that builds them, for the plan.
    pub fn describe(&self, names: &ShadowNames) -> String {
        self.build_statement(names, "")
    }

    /// Builds the indexes on the filled new table, online, and checks that
    /// the table is now exactly the one the ALTER defined.
    pub async fn build(
        &self,
        conn: &mut Conn,
        names: &ShadowNames,
        statement_tag: &str,
    ) -> Result<()> {
        self.add_all(conn, names, statement_tag).await?;
        let built = show_create(conn, names).await?;
        if built != self.expected {
            return Err(Error::Copy {
                table: names.q(&names.original),
                message: format!(
                    "after building its secondary indexes, the new table reads\n{built}\ninstead of\n{}\n\
                     Nothing was swapped; retry with --indexes-during-copy",
                    self.expected
                ),
            });
        }
        Ok(())
    }

    fn build_statement(&self, names: &ShadowNames, statement_tag: &str) -> String {
        let adds: Vec<String> = self
            .definitions
            .iter()
            .map(|d| format!("ADD {d}"))
            .collect();
        format!(
            "ALTER TABLE {} {}, ALGORITHM = INPLACE, LOCK = NONE {statement_tag}",
            names.q(&names.ghost),
            adds.join(", ")
        )
        .trim_end()
        .to_string()
    }

    async fn add_all(&self, conn: &mut Conn, names: &ShadowNames, tag: &str) -> Result<()> {
        let stmt = self.build_statement(names, tag);
        conn.query_drop(&stmt).await.context(|| {
            format!(
                "building the secondary indexes of {}",
                names.q(&names.ghost)
            )
        })
    }

    async fn drop_all(&self, conn: &mut Conn, names: &ShadowNames, tag: &str) -> Result<()> {
        let drops: Vec<String> = self
            .names
            .iter()
            .map(|n| format!("DROP INDEX {}", sql::ident(n)))
            .collect();
        conn.query_drop(format!(
            "ALTER TABLE {} {} {tag}",
            names.q(&names.ghost),
            drops.join(", ")
        ))
        .await
        .context(|| {
            format!(
                "taking the secondary indexes off {} until the copy is done",
                names.q(&names.ghost)
            )
        })
    }
}

/// `SHOW CREATE TABLE` of the new table, without its `AUTO_INCREMENT=N`
/// (which the copy moves).
async fn show_create(conn: &mut Conn, names: &ShadowNames) -> Result<String> {
    let ghost = names.q(&names.ghost);
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE TABLE {ghost}"))
        .await
        .context(|| format!("reading the definition of {ghost}"))?;
    Ok(without_auto_increment(
        &row.map(|(_, create)| create).unwrap_or_default(),
    ))
}

fn without_auto_increment(create: &str) -> String {
    create
        .split(' ')
        .filter(|word| !word.starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The plain secondary index lines of a `SHOW CREATE TABLE`, as written.
fn plain_indexes(create: &str) -> Vec<String> {
    create
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("KEY `"))
        .map(|line| line.trim_end_matches(',').to_string())
        .collect()
}

/// The position of the first of the plain indexes that can be deferred:
/// those after the last one that starts with one of `leads`.
fn first_deferrable(plain: &[String], leads: &[String]) -> usize {
    let leads: Vec<String> = leads
        .iter()
        .map(|c| format!("({}", sql::ident(c)))
        .collect();
    plain
        .iter()
        .rposition(|d| leads.iter().any(|lead| d.contains(lead.as_str())))
        .map_or(0, |kept| kept + 1)
}

/// The AUTO_INCREMENT column of a `SHOW CREATE TABLE`, if any.
fn auto_increment_column(create: &str) -> Option<String> {
    create
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.split(' ')
                .any(|word| word.trim_end_matches(',') == "AUTO_INCREMENT")
        })
        .find_map(|line| backquoted(line.strip_prefix('`')?))
}

/// The name of an index line: `` KEY `a``b` (...) `` is ``a`b``.
fn index_name(definition: &str) -> Option<String> {
    backquoted(definition.strip_prefix("KEY `")?)
}

/// The identifier that `rest` starts with, up to its closing backquote
/// (doubled backquotes are one).
fn backquoted(rest: &str) -> Option<String> {
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
                name.push('`');
            } else {
                return Some(name);
            }
        } else {
            name.push(c);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATE: &str = "CREATE TABLE `_t_gho` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `a` varchar(20) DEFAULT NULL,\n  `b` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `ua` (`a`),\n  KEY `b_idx` (`b`),\n  KEY `we``ird` (`a`(5),`b`) COMMENT 'x, y',\n  FULLTEXT KEY `ft` (`a`)\n) ENGINE=InnoDB AUTO_INCREMENT=17 DEFAULT CHARSET=latin1 COMMENT='c'";

    #[test]
    fn only_plain_secondary_indexes_are_deferred() {
        let plain = plain_indexes(CREATE);
        assert_eq!(
            plain,
            vec![
                "KEY `b_idx` (`b`)".to_string(),
                "KEY `we``ird` (`a`(5),`b`) COMMENT 'x, y'".to_string()
            ]
        );
        let names: Vec<_> = plain.iter().filter_map(|d| index_name(d)).collect();
        assert_eq!(names, vec!["b_idx".to_string(), "we`ird".to_string()]);
    }

    #[test]
    fn indexes_after_the_last_one_the_applier_needs_are_deferred() {
        let plain: Vec<String> = ["KEY `x` (`b`)", "KEY `k` (`id`,`b`)", "KEY `y` (`c`)"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let leads = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(first_deferrable(&plain, &leads(&["id"])), 2);
        assert_eq!(first_deferrable(&plain, &leads(&["other"])), 0);
        assert_eq!(first_deferrable(&plain[..2], &leads(&["id"])), 2);
        assert_eq!(first_deferrable(&plain, &leads(&["other", "c"])), 3);
    }

    #[test]
    fn the_index_the_auto_increment_column_needs_stays() {
        assert_eq!(auto_increment_column(CREATE), Some("id".to_string()));
        let moved = "CREATE TABLE `_t_gho` (\n  `b` year(4) NOT NULL,\n  `id` char(30) DEFAULT 'x',\n  `co``de` bigint(20) NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`b`),\n  KEY `nix` (`co``de`,`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=5";
        assert_eq!(auto_increment_column(moved), Some("co`de".to_string()));
        let plain = plain_indexes(moved);
        let leads = vec!["b".to_string(), "co`de".to_string()];
        assert_eq!(
            first_deferrable(&plain, &leads),
            1,
            "the auto column's index stays"
        );
        let none = "CREATE TABLE `t` (\n  `a` int(11) NOT NULL COMMENT 'AUTO_INCREMENT=3',\n  PRIMARY KEY (`a`)\n)";
        assert_eq!(auto_increment_column(none), None);
    }

    #[test]
    fn the_auto_increment_counter_is_not_part_of_the_definition() {
        let create = without_auto_increment(CREATE);
        assert!(!create.contains("AUTO_INCREMENT=17"), "{create}");
        assert!(create.contains("NOT NULL AUTO_INCREMENT,"), "{create}");
    }
}
