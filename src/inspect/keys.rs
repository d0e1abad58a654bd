//! Matching the original and the new table: which columns are copied under
//! which name, and which unique key both tables share.

use crate::inspect::alter::AlterAnalysis;
use crate::schema::{Column, KeyChange, KeyColumn, SharedKey, TableSchema};

/// A column copied from the original to the new table, or (with `fill`) a
/// new column that needs a value a native ALTER would give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPair {
    /// Name in the original table (empty for a filled column).
    pub source: String,
    /// Name in the new table.
    pub target: String,
    /// For a column the ALTER adds NOT NULL without a default: its type's
    /// implicit default, as SQL (strict mode refuses to leave it out).
    pub fill: Option<&'static str>,
    /// How the source is read, where a plain read would be assigned
    /// otherwise than a native ALTER converts it.
    pub read: SourceRead,
}

/// How the copy reads a source column so that its assignment to the new
/// column gives what a native ALTER gives: `INSERT ... SELECT` and the
/// ALTER's own copy convert some pairs of types differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceRead {
    /// The column itself.
    Plain,
    /// `CAST(c AS CHAR)`: a YEAR assigned to a string column gives '0'
    /// for 0000, where a native ALTER gives '0000' (the checksum found it).
    AsText,
    /// `ROUND(c)`: a FLOAT or DOUBLE assigned to a BIT, ENUM or SET is cut
    /// to an integer (2.6 is 2, ENUM member 'b'), where a native ALTER
    /// rounds it, half to even (3, 'c'), as ROUND does for such numbers.
    Rounded,
}

impl SourceRead {
    /// How `source` is read for `target`.
    pub fn for_columns(source: &Column, target: &Column) -> SourceRead {
        let approximate = matches!(source.data_type.as_str(), "float" | "double");
        if source.data_type == "year" && target.is_text() {
            SourceRead::AsText
        } else if approximate && matches!(target.data_type.as_str(), "bit" | "enum" | "set") {
            SourceRead::Rounded
        } else {
            SourceRead::Plain
        }
    }
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
    let sources = columns
        .iter()
        .map(|c| match (c.fill, c.read) {
            (Some(literal), _) => literal.to_string(),
            (None, SourceRead::Plain) => crate::sql::ident(&c.source),
            (None, SourceRead::AsText) => format!("CAST({} AS CHAR)", crate::sql::ident(&c.source)),
            (None, SourceRead::Rounded) => format!("ROUND({})", crate::sql::ident(&c.source)),
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{verb} INTO {ghost} ({}) SELECT {sources} FROM {from}",
        list(|c| &c.target),
    )
}

/// True when `pairs` write the new table's column `column`.
pub fn writes(pairs: &[ColumnPair], column: &str) -> bool {
    pairs.iter().any(|p| p.target.eq_ignore_ascii_case(column))
}

/// Columns copied, in the original's order. Generated columns of the new
/// table are never written; a generated column of the original that the
/// ALTER makes a plain one is copied (its values read from the original,
/// as the native ALTER keeps them); columns the ALTER drops are left
/// behind; renamed columns follow their new name. New NOT NULL columns without a default (and not
/// AUTO_INCREMENT) follow, filled with their type's implicit default, as a
/// native ALTER fills them.
pub fn column_mapping(
    original: &TableSchema,
    ghost: &TableSchema,
    alter: &AlterAnalysis,
) -> Vec<ColumnPair> {
    let mut pairs: Vec<ColumnPair> = original
        .columns
        .iter()
        .filter_map(|c| {
            let target = alter.new_name_of(&c.name)?;
            let ghost_col = ghost.column(&target)?;
            (!ghost_col.generated).then(|| ColumnPair {
                source: c.name.clone(),
                target: ghost_col.name.clone(),
                fill: None,
                read: SourceRead::for_columns(c, ghost_col),
            })
        })
        .collect();
    let filled: Vec<ColumnPair> = ghost
        .columns
        .iter()
        .filter(|g| {
            !g.generated
                && !g.nullable
                && !g.has_default
                && !g.auto_increment
                && !writes(&pairs, &g.name)
        })
        .filter_map(|g| {
            Some(ColumnPair {
                source: String::new(),
                target: g.name.clone(),
                fill: Some(g.implicit_default()?),
                read: SourceRead::Plain,
            })
        })
        .collect();
    pairs.extend(filled);
    pairs
}

/// A copied column whose conversion `INSERT ... SELECT` makes otherwise
/// than a native ALTER, with no read of the source that mends it
/// ([`SourceRead`]): a string or a temporal value made a BIT is stored as
/// its text's bytes ('5' as 0x35), where the ALTER stores the number (5).
pub fn converted_unlike_the_native_alter<'a>(
    original: &'a TableSchema,
    ghost: &'a TableSchema,
    pairs: &[ColumnPair],
) -> Option<(&'a Column, &'a Column)> {
    pairs.iter().filter(|p| p.fill.is_none()).find_map(|p| {
        let source = original.column(&p.source)?;
        let target = ghost.column(&p.target)?;
        let textual = source.charset.is_some()
            || source.is_binary_string()
            || matches!(
                source.data_type.as_str(),
                "date" | "datetime" | "timestamp" | "time"
            );
        let enum_or_set = matches!(source.data_type.as_str(), "enum" | "set");
        (target.data_type == "bit" && textual && !enum_or_set).then_some((source, target))
    })
}

/// A column of the original that the ALTER, as far as it was read,
/// neither drops nor renames, and that the new table lacks: the ALTER does
/// something to it that was not understood (a spelling the reader does
/// not know), and a copy without it would leave its values behind.
pub fn column_left_behind<'a>(
    original: &'a TableSchema,
    ghost: &TableSchema,
    alter: &AlterAnalysis,
) -> Option<&'a Column> {
    original.columns.iter().find(|c| {
        alter
            .new_name_of(&c.name)
            .is_some_and(|target| ghost.column(&target).is_none())
    })
}

/// A column of the original that the ALTER, as read, drops without adding
/// it again or renaming another column to its name, and that the new table
/// still has: the ALTER was misread (the server did not drop it), and a
/// copy that leaves it out would fill it with its default.
pub fn column_dropped_but_kept<'a>(
    original: &'a TableSchema,
    ghost: &TableSchema,
    alter: &AlterAnalysis,
) -> Option<&'a Column> {
    original.columns.iter().find(|c| {
        let lower = c.name.to_lowercase();
        alter.dropped_columns.contains(&lower)
            && ghost.column(&c.name).is_some()
            && !alter.added_columns.contains(&lower)
            && !alter
                .renamed_columns
                .values()
                .any(|new| new.eq_ignore_ascii_case(&c.name))
    })
}

/// The key along which rows are copied and changes applied: a
/// row-identifying key of the original whose columns, under the mapping,
/// relate to a row-identifying key of the new table.
///
/// In order of preference: the same columns in the same order; the same
/// columns reordered (`PRIMARY KEY (b, a)` over `(a, b)`); a new key that
/// extends it (`(id, i)` over `(id)`), when some index of the new table
/// starts with its columns; a new key that is a subset of it (`(id)` over
/// `(id, i)`). The original's PRIMARY KEY wins ties. The chunks follow the
/// original's index. Where the new key does not contain all of the shared
/// key's columns, or a column compares differently, the key is marked as
/// not preserving identity: duplicates in the new table then need proof.
pub fn shared_key(
    original: &TableSchema,
    ghost: &TableSchema,
    mapping: &[ColumnPair],
) -> Option<SharedKey> {
    let ghost_keys = ghost.row_identifying_keys();
    let lower = |names: &[String]| -> Vec<String> {
        names.iter().map(|n| n.to_lowercase()).collect::<Vec<_>>()
    };
    let mut best: Option<(u8, SharedKey)> = None;
    for key in original.row_identifying_keys() {
        let mapped: Option<Vec<&ColumnPair>> = key
            .columns
            .iter()
            .map(|c| mapping.iter().find(|p| p.source.eq_ignore_ascii_case(c)))
            .collect();
        let Some(mapped) = mapped else { continue };
        let targets: Vec<String> = mapped.iter().map(|p| p.target.to_lowercase()).collect();
        let mut sorted_targets = targets.clone();
        sorted_targets.sort();
        for ghost_key in &ghost_keys {
            let ghost_columns = lower(&ghost_key.columns);
            let mut sorted_ghost = ghost_columns.clone();
            sorted_ghost.sort();
            let contains_all = targets.iter().all(|t| ghost_columns.contains(t));
            let rank = if ghost_columns == targets {
                0
            } else if sorted_ghost == sorted_targets {
                1
            } else if contains_all && index_starts_with(ghost, &sorted_targets) {
                2
            } else if ghost_columns.iter().all(|g| targets.contains(g)) {
                3
            } else {
                continue;
            };
            if best.as_ref().is_some_and(|(r, _)| *r <= rank) {
                continue;
            }
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
            let identity_preserved =
                contains_all && columns.iter().all(|k| k.change() == KeyChange::Alike);
            best = Some((
                rank,
                SharedKey {
                    name: key.name.clone(),
                    ghost_name: ghost_key.name.clone(),
                    columns,
                    identity_preserved,
                },
            ));
        }
    }
    best.map(|(_, key)| key)
}

/// True when some index of `table` has exactly `columns` (lower case, in
/// any order) as its leading columns, so lookups by them use it.
fn index_starts_with(table: &TableSchema, columns: &[String]) -> bool {
    table.indexes.iter().any(|i| {
        if i.columns.len() < columns.len() {
            return false;
        }
        let mut lead: Vec<String> = i.columns[..columns.len()]
            .iter()
            .map(|c| c.to_lowercase())
            .collect();
        lead.sort();
        lead == columns
    })
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
            hashed: false,
        }
    }

    #[test]
    fn reads_are_chosen_to_convert_as_the_native_alter() {
        use crate::schema::tests::col;
        let double = col("d", "double", None);
        for target in ["bit", "enum", "set"] {
            assert_eq!(
                SourceRead::for_columns(&double, &col("d", target, None)),
                SourceRead::Rounded,
                "{target}"
            );
        }
        assert_eq!(
            SourceRead::for_columns(&double, &col("d", "int", None)),
            SourceRead::Plain
        );
        let text = col("s", "varchar", Some(("utf8mb4", "utf8mb4_bin")));
        assert_eq!(
            SourceRead::for_columns(&col("y", "year", None), &text),
            SourceRead::AsText
        );
        let pair = ColumnPair {
            source: "d".into(),
            target: "d".into(),
            fill: None,
            read: SourceRead::Rounded,
        };
        assert_eq!(
            insert_select("INSERT", "`g`", &[pair], "`t`"),
            "INSERT INTO `g` (`d`) SELECT ROUND(`d`) FROM `t`"
        );
    }

    #[test]
    fn a_column_the_alter_was_not_read_to_remove_is_left_behind() {
        let old = table(&["id", "a", "b"], vec![idx("PRIMARY", &["id"])]);
        let new = table(&["id", "x"], vec![idx("PRIMARY", &["id"])]);
        let read = analyze("RENAME COLUMN a TO x, DROP COLUMN b").unwrap();
        assert!(column_left_behind(&old, &new, &read).is_none());
        // As if the reader had missed the rename: `a` has nowhere to go.
        let missed = analyze("DROP COLUMN b").unwrap();
        let lost = column_left_behind(&old, &new, &missed).map(|c| c.name.as_str());
        assert_eq!(lost, Some("a"));
    }

    #[test]
    fn a_column_the_alter_was_read_to_drop_must_be_gone() {
        let old = table(&["id", "a", "b"], vec![idx("PRIMARY", &["id"])]);
        let kept = table(&["id", "a", "b"], vec![idx("PRIMARY", &["id"])]);
        let misread = analyze("DROP COLUMN a").unwrap();
        let found = column_dropped_but_kept(&old, &kept, &misread).map(|c| c.name.as_str());
        assert_eq!(found, Some("a"));
        for text in [
            "DROP COLUMN a, ADD COLUMN a INT",
            "DROP COLUMN a, CHANGE b a INT",
            "DROP COLUMN a, ADD COLUMN (x INT, a INT)",
        ] {
            let read = analyze(text).unwrap();
            assert!(
                column_dropped_but_kept(&old, &kept, &read).is_none(),
                "{text}"
            );
        }
        let dropped = table(&["id", "b"], vec![idx("PRIMARY", &["id"])]);
        assert!(column_dropped_but_kept(&old, &dropped, &misread).is_none());
    }

    #[test]
    fn mapping_follows_renames_and_drops() {
        let old = table(&["id", "a", "b"], vec![idx("PRIMARY", &["id"])]);
        let mut new = table(&["id", "x", "c"], vec![idx("PRIMARY", &["id"])]);
        new.columns[2].nullable = true;
        let alter = analyze("RENAME COLUMN a TO x, DROP COLUMN b, ADD COLUMN c INT").unwrap();
        let m = column_mapping(&old, &new, &alter);
        assert_eq!(
            m,
            vec![
                ColumnPair {
                    source: "id".into(),
                    target: "id".into(),
                    fill: None,
                    read: SourceRead::Plain,
                },
                ColumnPair {
                    source: "a".into(),
                    target: "x".into(),
                    fill: None,
                    read: SourceRead::Plain,
                },
            ]
        );
    }

    #[test]
    fn new_not_null_columns_without_default_get_their_implicit_default() {
        let old = table(&["id"], vec![idx("PRIMARY", &["id"])]);
        let mut new = table(&["id", "n", "d", "auto"], vec![idx("PRIMARY", &["id"])]);
        new.columns[1] = col("n", "varchar", Some(("utf8mb4", "utf8mb4_bin")));
        new.columns[2].has_default = true;
        new.columns[3].auto_increment = true;
        let m = column_mapping(&old, &new, &AlterAnalysis::default());
        assert_eq!(m.len(), 2);
        assert_eq!((m[1].target.as_str(), m[1].fill), ("n", Some("''")));
        assert_eq!(
            insert_select("INSERT", "g", &m, "t"),
            "INSERT INTO g (`id`, `n`) SELECT `id`, '' FROM t"
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
    fn a_reordered_primary_key_is_shared() {
        let old = table(&["a", "b"], vec![idx("PRIMARY", &["a", "b"])]);
        let new = table(&["a", "b"], vec![idx("PRIMARY", &["b", "a"])]);
        let m = column_mapping(&old, &new, &AlterAnalysis::default());
        let key = shared_key(&old, &new, &m).unwrap();
        assert_eq!(key.columns[0].name, "a");
        assert!(key.identity_preserved);
    }

    #[test]
    fn an_extended_primary_key_shares_the_old_one() {
        let old = table(&["id", "i"], vec![idx("PRIMARY", &["id"])]);
        let new = table(&["id", "i"], vec![idx("PRIMARY", &["id", "i"])]);
        let m = column_mapping(&old, &new, &AlterAnalysis::default());
        let key = shared_key(&old, &new, &m).unwrap();
        assert_eq!(key.columns.len(), 1);
        assert!(key.identity_preserved);
        // Extended at the front: no index of the new table starts with id.
        let new = table(&["id", "i"], vec![idx("PRIMARY", &["i", "id"])]);
        assert!(shared_key(&old, &new, &m).is_none());
    }

    #[test]
    fn a_narrowed_primary_key_is_shared_but_does_not_preserve_identity() {
        let old = table(&["id", "i"], vec![idx("PRIMARY", &["id", "i"])]);
        let new = table(&["id", "i"], vec![idx("PRIMARY", &["id"])]);
        let m = column_mapping(&old, &new, &AlterAnalysis::default());
        let key = shared_key(&old, &new, &m).unwrap();
        assert_eq!(key.columns.len(), 2);
        assert!(!key.identity_preserved);
    }

    #[test]
    fn a_recollated_key_does_not_preserve_identity() {
        let mut old = table(&["k"], vec![idx("PRIMARY", &["k"])]);
        old.columns[0] = col("k", "varchar", Some(("utf8mb4", "utf8mb4_bin")));
        let mut new = old.clone();
        new.columns[0] = col("k", "varchar", Some(("utf8mb4", "utf8mb4_general_ci")));
        let m = column_mapping(&old, &new, &AlterAnalysis::default());
        let key = shared_key(&old, &new, &m).unwrap();
        assert!(!key.identity_preserved);
        assert_eq!(key.columns[0].change(), KeyChange::Recollated);
    }

    #[test]
    fn no_shared_key_when_key_columns_differ() {
        let old = table(&["id", "u"], vec![idx("PRIMARY", &["id"])]);
        let new = table(&["id", "u"], vec![idx("PRIMARY", &["u"])]);
        let m = column_mapping(&old, &new, &AlterAnalysis::default());
        assert!(shared_key(&old, &new, &m).is_none());
    }
}
