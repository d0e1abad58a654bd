//! Matching the original and the new table: which columns are copied under
//! which name, and which unique key both tables share.

use crate::inspect::alter::AlterAnalysis;
use crate::schema::{KeyColumn, SharedKey, TableSchema};

/// A column copied from the original to the new table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPair {
    /// Name in the original table.
    pub source: String,
    /// Name in the new table.
    pub target: String,
}

/// `<verb> INTO <ghost> (<targets>) SELECT <sources> FROM <from>`: the one
/// statement shape that moves rows from the original to the new table (the
/// copy, the apply and the privilege check all use it).
pub fn insert_select(verb: &str, ghost: &str, columns: &[ColumnPair], from: &str) -> String {
    let list = |f: fn(&ColumnPair) -> &str| {
        columns
            .iter()
            .map(|c| crate::sql::ident(f(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{verb} INTO {ghost} ({}) SELECT {} FROM {from}",
        list(|c| &c.target),
        list(|c| &c.source)
    )
}

/// Columns copied, in the original's order. Generated columns are never
/// written; columns the ALTER drops are left behind; renamed columns follow
/// their new name.
pub fn column_mapping(
    original: &TableSchema,
    ghost: &TableSchema,
    alter: &AlterAnalysis,
) -> Vec<ColumnPair> {
    original
        .columns
        .iter()
        .filter(|c| !c.generated)
        .filter_map(|c| {
            let target = alter.new_name_of(&c.name)?;
            let ghost_col = ghost.column(&target)?;
            (!ghost_col.generated).then(|| ColumnPair {
                source: c.name.clone(),
                target: ghost_col.name.clone(),
            })
        })
        .collect()
}

/// The first row-identifying key of the original (PRIMARY first) whose
/// columns, under the mapping, form a unique NOT NULL key of the new table
/// in the same order.
pub fn shared_key(
    original: &TableSchema,
    ghost: &TableSchema,
    mapping: &[ColumnPair],
) -> Option<SharedKey> {
    let ghost_keys = ghost.row_identifying_keys();
    for key in original.row_identifying_keys() {
        let mapped: Option<Vec<&ColumnPair>> = key
            .columns
            .iter()
            .map(|c| mapping.iter().find(|p| p.source.eq_ignore_ascii_case(c)))
            .collect();
        let Some(mapped) = mapped else { continue };
        let Some(ghost_key) = ghost_keys.iter().find(|g| {
            g.columns.len() == mapped.len()
                && g.columns
                    .iter()
                    .zip(&mapped)
                    .all(|(a, p)| a.eq_ignore_ascii_case(&p.target))
        }) else {
            continue;
        };
        let columns = mapped
            .iter()
            .filter_map(|p| {
                Some(KeyColumn {
                    name: p.source.clone(),
                    ghost_name: p.target.clone(),
                    ordinal: original.column_index(&p.source)?,
                    column: original.column(&p.source)?.clone(),
                    ghost_column: ghost.column(&p.target)?.clone(),
                })
            })
            .collect::<Vec<_>>();
        if columns.len() != mapped.len() {
            continue;
        }
        return Some(SharedKey {
            name: key.name.clone(),
            ghost_name: ghost_key.name.clone(),
            columns,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::alter::analyze;
    use crate::schema::tests::col;
    use crate::schema::Index;

    fn table(cols: &[&str], indexes: Vec<Index>) -> TableSchema {
        TableSchema {
            database: "d".into(),
            name: "t".into(),
            columns: cols.iter().map(|c| col(c, "int", None)).collect(),
            indexes,
            engine: "InnoDB".into(),
            table_type: "BASE TABLE".into(),
            rows_estimate: 0,
            auto_increment: None,
            comment: String::new(),
        }
    }

    fn idx(name: &str, cols: &[&str]) -> Index {
        Index {
            name: name.into(),
            unique: true,
            columns: cols.iter().map(|c| c.to_string()).collect(),
            has_prefix: false,
        }
    }

    #[test]
    fn mapping_follows_renames_and_drops() {
        let old = table(&["id", "a", "b"], vec![idx("PRIMARY", &["id"])]);
        let new = table(&["id", "x", "c"], vec![idx("PRIMARY", &["id"])]);
        let alter = analyze("RENAME COLUMN a TO x, DROP COLUMN b, ADD COLUMN c INT").unwrap();
        let m = column_mapping(&old, &new, &alter);
        assert_eq!(
            m,
            vec![
                ColumnPair {
                    source: "id".into(),
                    target: "id".into()
                },
                ColumnPair {
                    source: "a".into(),
                    target: "x".into()
                },
            ]
        );
    }

    #[test]
    fn changed_primary_key_falls_back_to_a_shared_unique_key() {
        let old = table(
            &["id", "u"],
            vec![idx("PRIMARY", &["id"]), idx("uq", &["u"])],
        );
        let new = table(
            &["id", "u"],
            vec![idx("PRIMARY", &["id", "u"]), idx("uq", &["u"])],
        );
        let m = column_mapping(&old, &new, &AlterAnalysis::default());
        let key = shared_key(&old, &new, &m).unwrap();
        assert_eq!(key.name, "uq");
        assert_eq!(key.columns[0].ordinal, 1);
    }

    #[test]
    fn no_shared_key_when_key_columns_differ() {
        let old = table(&["id", "u"], vec![idx("PRIMARY", &["id"])]);
        let new = table(&["id", "u"], vec![idx("PRIMARY", &["u"])]);
        let m = column_mapping(&old, &new, &AlterAnalysis::default());
        assert!(shared_key(&old, &new, &m).is_none());
    }
}
