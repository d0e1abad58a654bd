//! Query plans before the swap (`--verify-queries FILE`): the
//! application's important queries are EXPLAINed against the original and
//! against the new table (its name put in the table's place), and what
//! changed is reported: the index chosen, rows examined, a new full scan,
//! filesort or temporary table. Before the copy (and in a dry run) the new
//! table is empty, so only what its definition decides is checked then: an
//! index a query uses on the original that the new table lacks. Right
//! before the cut-over, on the filled and analyzed new table, the whole
//! plans are compared. `--postpone-on-worse-plan` holds the swap while a
//! plan is worse, until the operator unpostpones.

use std::collections::BTreeSet;
use std::path::Path;

use mysql_async::prelude::*;
use mysql_async::{Conn, Row};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::shadow::ShadowNames;

/// One query's plan, summarized.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// Indexes the plan uses.
    pub keys: BTreeSet<String>,
    /// Tables (as EXPLAIN labels them) read by a full scan.
    pub full_scans: BTreeSet<String>,
    /// The plan sorts with a filesort.
    pub filesort: bool,
    /// The plan builds a temporary table.
    pub temporary: bool,
    /// Rows examined, as the optimizer estimates them (summed over the
    /// plan's tables).
    pub rows: u64,
}

/// What changed for one query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanCheck {
    /// The query, as given.
    pub query: String,
    /// Its plan on the original.
    pub before: PlanSummary,
    /// Its plan on the new table; `None` when only the definition was
    /// checked (the new table was still empty).
    pub after: Option<PlanSummary>,
    /// What changed, in words.
    pub findings: Vec<String>,
    /// True when the plan got worse.
    pub worse: bool,
}

/// A plan is worse when the estimated rows grow past this factor (and
/// past [`ROWS_FLOOR`]).
const ROWS_FACTOR: u64 = 10;
const ROWS_FLOOR: u64 = 1000;

/// Reads the queries of `--verify-queries`: statements separated by `;`,
/// `--` and `#` comment lines skipped. Only SELECTs are taken: EXPLAIN
/// runs nothing, but the file is the operator's and a SELECT is what a
/// plan check needs.
pub fn read_queries(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        context: format!("--verify-queries: reading {}", path.display()),
        source,
    })?;
    let kept: String = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with("--") && !t.starts_with('#')
        })
        .collect::<Vec<_>>()
        .join("\n");
    let queries: Vec<String> = kept
        .split(';')
        .map(|q| q.trim().to_string())
        .filter(|q| !q.is_empty())
        .collect();
    for q in &queries {
        let first = q.split_whitespace().next().unwrap_or("");
        if !first.eq_ignore_ascii_case("SELECT") && !first.eq_ignore_ascii_case("WITH") {
            return Err(Error::Usage(format!(
                "--verify-queries {}: only SELECT queries are checked, not: {q}",
                path.display()
            )));
        }
    }
    if queries.is_empty() {
        return Err(Error::Usage(format!(
            "--verify-queries {}: no query in the file",
            path.display()
        )));
    }
    Ok(queries)
}

/// `query` with every reference to the table `from` (bare or quoted, not
/// inside a string or comment) replaced by the quoted `to`.
pub fn rename_table(query: &str, from: &str, to: &str, case_insensitive: bool) -> String {
    let same = |name: &str| {
        if case_insensitive {
            name.eq_ignore_ascii_case(from)
        } else {
            name == from
        }
    };
    let replacement = crate::sql::ident(to);
    let chars: Vec<char> = query.chars().collect();
    let mut out = String::with_capacity(query.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => {
                let end = closing(&chars, i, c);
                out.extend(&chars[i..end]);
                i = end;
            }
            '`' => {
                let end = closing(&chars, i, '`');
                let inner: String = chars[i + 1..end.saturating_sub(1).max(i + 1)]
                    .iter()
                    .collect::<String>()
                    .replace("``", "`");
                if same(&inner) {
                    out.push_str(&replacement);
                } else {
                    out.extend(&chars[i..end]);
                }
                i = end;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |p| i + p);
                out.extend(&chars[i..end]);
                i = end;
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                let end = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                    .map_or(chars.len(), |j| j + 2);
                out.extend(&chars[i..end]);
                i = end;
            }
            c if c.is_alphanumeric() || c == '_' || c == '$' => {
                let end = (i..chars.len())
                    .find(|&j| !(chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '$'))
                    .unwrap_or(chars.len());
                let word: String = chars[i..end].iter().collect();
                if same(&word) {
                    out.push_str(&replacement);
                } else {
                    out.push_str(&word);
                }
                i = end;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The index one past the quote closing the one at `start`; a doubled
/// quote (and, in strings, a backslash) escapes it.
fn closing(chars: &[char], start: usize, quote: char) -> usize {
    let mut j = start + 1;
    while j < chars.len() {
        if quote != '`' && chars[j] == '\\' {
            j += 2;
            continue;
        }
        if chars[j] == quote {
            if chars.get(j + 1) == Some(&quote) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    chars.len()
}

/// EXPLAINs `query` (run in the table's database) and summarizes the plan.
async fn explain(
    conn: &mut Conn,
    database: &str,
    query: &str,
) -> std::result::Result<PlanSummary, String> {
    conn.query_drop(format!("USE {}", crate::sql::ident(database)))
        .await
        .map_err(|e| e.to_string())?;
    let rows: Vec<Row> = conn
        .query(format!("EXPLAIN {query}"))
        .await
        .map_err(|e| e.to_string())?;
    let mut summary = PlanSummary::default();
    for row in &rows {
        let text = |name: &str| -> Option<String> {
            let index = row
                .columns_ref()
                .iter()
                .position(|c| c.name_str() == name)?;
            row.get_opt::<Option<String>, _>(index)?.ok()?
        };
        let table = text("table").unwrap_or_default();
        if let Some(key) = text("key") {
            summary.keys.insert(key);
        }
        if text("type").is_some_and(|t| t.eq_ignore_ascii_case("ALL")) {
            summary.full_scans.insert(table);
        }
        let extra = text("Extra").unwrap_or_default().to_ascii_lowercase();
        summary.filesort |= extra.contains("filesort");
        summary.temporary |= extra.contains("temporary");
        summary.rows += text("rows").and_then(|r| r.parse().ok()).unwrap_or(0);
    }
    Ok(summary)
}

/// The new table's index names.
async fn ghost_indexes(conn: &mut Conn, names: &ShadowNames) -> Result<BTreeSet<String>> {
    let rows: Vec<String> = conn
        .exec(
            "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&names.database, &names.ghost),
        )
        .await
        .map_err(|source| Error::Sql {
            context: format!("reading the indexes of {}", names.q(&names.ghost)),
            source,
        })?;
    Ok(rows.into_iter().collect())
}

/// Compares two plans of one query (the new table's labels read as the
/// original's).
fn compare(before: &PlanSummary, after: &PlanSummary, names: &ShadowNames) -> (Vec<String>, bool) {
    let relabel = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.iter()
            .map(|t| {
                if *t == names.ghost {
                    names.original.clone()
                } else {
                    t.clone()
                }
            })
            .collect()
    };
    let (scans_before, scans_after) = (relabel(&before.full_scans), relabel(&after.full_scans));
    let mut findings = Vec::new();
    let mut worse = false;
    if before.keys != after.keys {
        findings.push(format!(
            "indexes used: {} -> {}",
            list(&before.keys),
            list(&after.keys)
        ));
    }
    for table in scans_after.difference(&scans_before) {
        findings.push(format!("new full scan of {table}"));
        worse = true;
    }
    if after.filesort && !before.filesort {
        findings.push("new filesort".into());
        worse = true;
    }
    if after.temporary && !before.temporary {
        findings.push("new temporary table".into());
        worse = true;
    }
    if after.rows > before.rows.max(ROWS_FLOOR / ROWS_FACTOR) * ROWS_FACTOR {
        findings.push(format!("rows examined {} -> {}", before.rows, after.rows));
        worse = true;
    } else if after.rows != before.rows {
        findings.push(format!(
            "rows examined {} -> {} (estimates)",
            before.rows, after.rows
        ));
    }
    (findings, worse)
}

fn list(set: &BTreeSet<String>) -> String {
    if set.is_empty() {
        "none".into()
    } else {
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Checks `queries` on the original and the new table. With `full`, the
/// new table holds the rows and is analyzed: the plans are compared;
/// otherwise only the indexes the original's plans use are looked for in
/// the new table's definition, or among `built_later` (indexes taken off
/// for the copy and built after it). A query that cannot be EXPLAINed on
/// the original is a usage error.
pub async fn check(
    conn: &mut Conn,
    names: &ShadowNames,
    queries: &[String],
    case_insensitive: bool,
    full: bool,
    built_later: &[String],
) -> Result<Vec<PlanCheck>> {
    let mut indexes = ghost_indexes(conn, names).await?;
    indexes.extend(built_later.iter().cloned());
    let mut checks = Vec::with_capacity(queries.len());
    for query in queries {
        let before = explain(conn, &names.database, query).await.map_err(|e| {
            Error::Usage(format!(
                "--verify-queries: this query cannot be EXPLAINed on {} ({e}): {query}",
                names.q(&names.original)
            ))
        })?;
        let mut findings: Vec<String> = before
            .keys
            .iter()
            .filter(|k| !indexes.contains(*k))
            .map(|k| format!("uses index {k}, which the new table lacks"))
            .collect();
        let mut worse = !findings.is_empty();
        let after = if full {
            let renamed = rename_table(query, &names.original, &names.ghost, case_insensitive);
            match explain(conn, &names.database, &renamed).await {
                Ok(after) => {
                    let (more, got_worse) = compare(&before, &after, names);
                    findings.extend(more);
                    worse |= got_worse;
                    Some(after)
                }
                Err(e) => {
                    findings.push(format!("cannot be EXPLAINed on the new table ({e})"));
                    worse = true;
                    None
                }
            }
        } else {
            None
        };
        checks.push(PlanCheck {
            query: query.clone(),
            before,
            after,
            findings,
            worse,
        });
    }
    Ok(checks)
}

/// The reason to postpone the swap, when a plan got worse.
pub fn worse_reason(checks: &[PlanCheck]) -> Option<String> {
    let worse: Vec<String> = checks
        .iter()
        .filter(|c| c.worse)
        .map(|c| {
            let query: String = c.query.chars().take(80).collect();
            format!("{query}: {}", c.findings.join("; "))
        })
        .collect();
    (!worse.is_empty()).then(|| {
        format!(
            "worse query plan on the new table (--postpone-on-worse-plan; unpostpone to swap anyway): {}",
            worse.join(" | ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_renamed_where_it_is_named_and_nowhere_else() {
        let q = "SELECT t.a, 't' AS \"t\", `t`.b FROM t JOIN db.`t` x ON x.id = t.id -- t\nWHERE /* t */ tt = 1";
        assert_eq!(
            rename_table(q, "t", "_t_gho", false),
            "SELECT `_t_gho`.a, 't' AS \"t\", `_t_gho`.b FROM `_t_gho` JOIN db.`_t_gho` x ON x.id = `_t_gho`.id -- t\nWHERE /* t */ tt = 1"
        );
        assert_eq!(
            rename_table("select * from T", "t", "g", true),
            "select * from `g`"
        );
        assert_eq!(
            rename_table("select * from T", "t", "g", false),
            "select * from T"
        );
        assert_eq!(
            rename_table("SELECT 'it''s t' FROM `we``ird`", "we`ird", "g", false),
            "SELECT 'it''s t' FROM `g`"
        );
    }

    #[test]
    fn a_new_full_scan_or_sort_is_worse_and_an_index_change_is_reported() {
        let names = ShadowNames::derive("db", "t", None);
        let by_index = PlanSummary {
            keys: ["a_idx".to_string()].into(),
            rows: 10,
            ..PlanSummary::default()
        };
        let scan = PlanSummary {
            full_scans: ["_t_gho".to_string()].into(),
            filesort: true,
            rows: 5000,
            ..PlanSummary::default()
        };
        let (findings, worse) = compare(&by_index, &scan, &names);
        assert!(worse);
        assert_eq!(
            findings,
            vec![
                "indexes used: a_idx -> none".to_string(),
                "new full scan of t".into(),
                "new filesort".into(),
                "rows examined 10 -> 5000".into()
            ]
        );
        let same = compare(&by_index, &by_index, &names);
        assert_eq!(same, (vec![], false));
    }

    #[test]
    fn only_selects_are_read_from_the_file() {
        let dir = std::env::temp_dir().join(format!("shadowcut-queries-{}", std::process::id()));
        std::fs::write(&dir, "-- the hot ones\nSELECT * FROM t WHERE a = 1;\n\n# by b\nselect b from t order by b;\n").unwrap();
        assert_eq!(
            read_queries(&dir).unwrap(),
            vec!["SELECT * FROM t WHERE a = 1", "select b from t order by b"]
        );
        std::fs::write(&dir, "DELETE FROM t").unwrap();
        assert!(read_queries(&dir).is_err());
        std::fs::remove_file(&dir).unwrap();
    }
}
