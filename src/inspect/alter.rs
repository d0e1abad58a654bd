//! What the user's ALTER specification does, as far as the tool must know:
//! refusals (renaming the table, adding foreign keys, forcing an algorithm or
//! lock) and the column renames and drops the copy must follow.

use std::collections::HashMap;

use crate::sql::{split_top_level_commas, tokenize_as, Lexing, Token};

/// The parts of an ALTER specification that change how rows are copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlterAnalysis {
    /// Old column name (lower case) to new column name.
    pub renamed_columns: HashMap<String, String>,
    /// Dropped columns, lower case.
    pub dropped_columns: Vec<String>,
    /// Added columns, lower case.
    pub added_columns: Vec<String>,
}

impl AlterAnalysis {
    /// The name a column of the original table has in the new table, or
    /// `None` when the ALTER drops it.
    pub fn new_name_of(&self, column: &str) -> Option<String> {
        let lower = column.to_lowercase();
        if let Some(new) = self.renamed_columns.get(&lower) {
            return Some(new.clone());
        }
        if self.dropped_columns.contains(&lower) {
            return None;
        }
        Some(column.to_string())
    }
}

/// Why an ALTER specification is refused: the problem and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterRefusal {
    /// What is wrong with the ALTER.
    pub problem: String,
    /// What to do instead.
    pub remedy: String,
}

fn refuse(problem: &str, remedy: &str) -> AlterRefusal {
    AlterRefusal {
        problem: problem.to_string(),
        remedy: remedy.to_string(),
    }
}

/// Analyses the text given to `--alter` (the part after `ALTER TABLE t`).
pub fn analyze(alter: &str) -> Result<AlterAnalysis, AlterRefusal> {
    // Read as the server reads it in its default sql_mode: where the
    // server's own mode would read it otherwise (a `"` under ANSI_QUOTES),
    // the pre-flight has refused it (`server::alter_reads_differently`).
    let (tokens, conditional) = tokenize_as(alter, Lexing::DEFAULT).map_err(|e| {
        refuse(
            &format!("the ALTER text cannot be read ({e})"),
            "Check the quoting of --alter",
        )
    })?;
    if conditional {
        // Whether the server runs its content depends on the server; read
        // as run, a DROP COLUMN the server skips would leave the column
        // out of the copy.
        return Err(refuse(
            "the ALTER holds a versioned or MariaDB-only comment (/*!NNNNN ... */, /*M! ... */), which only some servers run",
            "Write the clauses this server should run without the comment",
        ));
    }
    if tokens.is_empty() {
        return Err(refuse(
            "--alter is empty",
            "Give the change, e.g. --alter \"ADD COLUMN c INT\"",
        ));
    }
    // `ALTER COLUMN c SET DEFAULT ...` is a clause; `ALTER TABLE t ...` is a
    // whole statement.
    if tokens[0].is_kw("ALTER")
        && tokens
            .get(1)
            .is_some_and(|t| t.is_kw("TABLE") || t.is_kw("ONLINE") || t.is_kw("IGNORE"))
    {
        return Err(refuse(
            "--alter starts with ALTER",
            "Give only the part after ALTER TABLE <table>, e.g. --alter \"ADD COLUMN c INT\"",
        ));
    }
    let mut tokens = tokens;
    // One `;` ending the text is dropped where the ALTER is sent
    // (`trim_end_matches(';')`); one followed by anything, a comment
    // included, would end a statement the server runs on its own.
    if tokens.last() == Some(&Token::Punct(';')) && alter.trim_end().ends_with(';') {
        tokens.pop();
    }
    if tokens.contains(&Token::Punct(';')) {
        return Err(refuse(
            "--alter contains more than one statement (a ';')",
            "Give a single ALTER specification",
        ));
    }
    let mut analysis = AlterAnalysis::default();
    for clause in split_top_level_commas(&tokens) {
        analyze_clause(clause, &mut analysis)?;
    }
    Ok(analysis)
}

fn analyze_clause(clause: &[Token], analysis: &mut AlterAnalysis) -> Result<(), AlterRefusal> {
    let Some(first) = clause.first() else {
        return Ok(());
    };
    let kw = |i: usize, k: &str| clause.get(i).is_some_and(|t| t.is_kw(k));
    // A column name the copy must follow; what cannot be read as one is
    // refused, never skipped: a rename or drop read past would put values
    // in the wrong column.
    let name_at = |i: usize| {
        clause
            .get(i)
            .and_then(Token::as_name)
            .map(str::to_string)
            .ok_or_else(|| unreadable(clause))
    };

    if first.is_kw("ALGORITHM") || first.is_kw("LOCK") {
        return Err(refuse(
            "the ALTER carries ALGORITHM= or LOCK=",
            "Remove it: shadowcut copies the table itself; for a native in-place change use ALTER TABLE directly",
        ));
    }
    if first.is_kw("RENAME") {
        if kw(1, "COLUMN") {
            // MariaDB: RENAME COLUMN [IF EXISTS] old TO new.
            let at = if kw(2, "IF") && kw(3, "EXISTS") { 4 } else { 2 };
            let old = name_at(at)?;
            if !kw(at + 1, "TO") {
                return Err(unreadable(clause));
            }
            let new = name_at(at + 2)?;
            analysis.renamed_columns.insert(old.to_lowercase(), new);
            return Ok(());
        }
        if kw(1, "INDEX") || kw(1, "KEY") {
            return Ok(());
        }
        return Err(refuse(
            "the ALTER renames the table",
            "Rename the table with RENAME TABLE outside shadowcut, before or after the migration",
        ));
    }
    if clause
        .windows(2)
        .any(|w| w[0].is_kw("FOREIGN") && w[1].is_kw("KEY"))
        || clause.iter().any(|t| t.is_kw("REFERENCES"))
    {
        if first.is_kw("DROP") {
            return Ok(());
        }
        return Err(refuse(
            "the ALTER adds a foreign key",
            "shadowcut cannot carry foreign keys through the table swap; add the foreign key with a plain ALTER TABLE",
        ));
    }
    if first.is_kw("CHANGE") {
        let at = if kw(1, "COLUMN") { 2 } else { 1 };
        let at = if kw(at, "IF") && kw(at + 1, "EXISTS") {
            at + 2
        } else {
            at
        };
        let (old, new) = (name_at(at)?, name_at(at + 1)?);
        if !old.eq_ignore_ascii_case(&new) {
            analysis.renamed_columns.insert(old.to_lowercase(), new);
        }
        return Ok(());
    }
    if let Some(operation) = partition_data_operation(clause) {
        return Err(refuse(
            &format!("the ALTER's {operation} changes the table's rows, not its definition, and would act on the new, empty table"),
            "Run it as a plain ALTER TABLE on the table itself: it is a quick operation on the partitions alone",
        ));
    }
    if first.is_kw("ADD") {
        analysis.added_columns.extend(added_columns(clause)?);
        return Ok(());
    }
    if first.is_kw("DROP") {
        const NOT_COLUMNS: [&str; 7] = [
            "INDEX",
            "KEY",
            "PRIMARY",
            "FOREIGN",
            "CONSTRAINT",
            "CHECK",
            "PARTITION",
        ];
        if NOT_COLUMNS.iter().any(|k| kw(1, k)) || names_no_column(clause) {
            return Ok(());
        }
        let mut at = if kw(1, "COLUMN") { 2 } else { 1 };
        if kw(at, "IF") && kw(at + 1, "EXISTS") {
            at += 2;
        }
        analysis.dropped_columns.push(name_at(at)?.to_lowercase());
    }
    Ok(())
}

fn unreadable(clause: &[Token]) -> AlterRefusal {
    let shown: Vec<String> = clause
        .iter()
        .take(6)
        .map(|t| match t {
            Token::Word(w) | Token::Number(w) => w.clone(),
            Token::Quoted(q) => crate::sql::ident(q),
            Token::Str(s) => crate::sql::literal(s),
            Token::Punct(c) => c.to_string(),
        })
        .collect();
    refuse(
        &format!(
            "the clause `{} ...` of the ALTER does not name its column where shadowcut expects it",
            shown.join(" ")
        ),
        "Quote the column names with backticks (`name`), one clause per column",
    )
}

/// True for `ADD`/`DROP` clauses led by a word that is not reserved and
/// names no column when the right word follows it: `SYSTEM VERSIONING`,
/// `PERIOD FOR`, MariaDB 11.7's `VECTOR INDEX`. Otherwise the word is a
/// column's name (`DROP period`, `ADD vector INT`).
fn names_no_column(clause: &[Token]) -> bool {
    let kw = |i: usize, k: &str| clause.get(i).is_some_and(|t| t.is_kw(k));
    // MariaDB: DROP PERIOD IF EXISTS FOR p, ADD PERIOD IF NOT EXISTS FOR p.
    let after = if kw(2, "IF") && kw(3, "EXISTS") {
        4
    } else if kw(2, "IF") && kw(3, "NOT") && kw(4, "EXISTS") {
        5
    } else {
        2
    };
    (kw(1, "SYSTEM") && kw(2, "VERSIONING"))
        || (kw(1, "PERIOD") && kw(after, "FOR"))
        || (kw(1, "VECTOR") && (kw(after, "INDEX") || kw(after, "KEY")))
}

/// The columns an `ADD` clause adds, lower case: `ADD [COLUMN] [IF NOT
/// EXISTS] c ...` or `ADD [COLUMN] (c1 ..., c2 ...)`; none for an index,
/// a constraint, a partition or a period.
fn added_columns(clause: &[Token]) -> Result<Vec<String>, AlterRefusal> {
    const NOT_COLUMNS: [&str; 10] = [
        "INDEX",
        "KEY",
        "UNIQUE",
        "PRIMARY",
        "FULLTEXT",
        "SPATIAL",
        "CONSTRAINT",
        "FOREIGN",
        "CHECK",
        "PARTITION",
    ];
    let kw = |i: usize, k: &str| clause.get(i).is_some_and(|t| t.is_kw(k));
    if NOT_COLUMNS.iter().any(|k| kw(1, k)) || names_no_column(clause) {
        return Ok(Vec::new());
    }
    let mut at = if kw(1, "COLUMN") { 2 } else { 1 };
    if kw(at, "IF") && kw(at + 1, "NOT") && kw(at + 2, "EXISTS") {
        at += 3;
    }
    let name = |part: &[Token]| {
        part.first()
            .and_then(Token::as_name)
            .map(str::to_lowercase)
            .ok_or_else(|| unreadable(clause))
    };
    if clause.get(at) != Some(&Token::Punct('(')) {
        return Ok(vec![name(&clause[at.min(clause.len())..])?]);
    }
    let inside = &clause[at + 1..];
    let mut depth = 1;
    let end = inside
        .iter()
        .position(|t| {
            match t {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => depth -= 1,
                _ => {}
            }
            depth == 0
        })
        .unwrap_or(inside.len());
    split_top_level_commas(&inside[..end])
        .into_iter()
        .map(name)
        .collect()
}

/// The partition operation of `clause` that moves or removes rows (or
/// whole tablespaces) rather than changing the definition, e.g. `TRUNCATE
/// PARTITION`: run on the new table, it would act on rows the copy has not
/// written yet, or on another table's (`EXCHANGE ... WITH TABLE x`).
/// Reorganizing, adding, coalescing or removing partitioning keep every
/// row and are copied like any other change.
fn partition_data_operation(clause: &[Token]) -> Option<&'static str> {
    const OPERATIONS: [(&str, &str, &str); 7] = [
        ("TRUNCATE", "PARTITION", "TRUNCATE PARTITION"),
        ("DROP", "PARTITION", "DROP PARTITION"),
        ("EXCHANGE", "PARTITION", "EXCHANGE PARTITION"),
        ("CONVERT", "PARTITION", "CONVERT PARTITION ... TO TABLE"),
        // MariaDB: brings another table's rows in.
        ("CONVERT", "TABLE", "CONVERT TABLE ... TO PARTITION"),
        ("DISCARD", "", "DISCARD ... TABLESPACE"),
        ("IMPORT", "", "IMPORT ... TABLESPACE"),
    ];
    let kw = |i: usize, k: &str| clause.get(i).is_some_and(|t| t.is_kw(k));
    OPERATIONS
        .iter()
        .find(|(verb, next, _)| kw(0, verb) && (next.is_empty() || kw(1, next)))
        .map(|(_, _, operation)| *operation)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_changes_pass() {
        let a = analyze("ADD COLUMN c INT NOT NULL DEFAULT 0, ADD INDEX i (c)").unwrap();
        assert!(
            a.renamed_columns.is_empty() && a.dropped_columns.is_empty(),
            "{a:?}"
        );
        assert_eq!(a.added_columns, vec!["c"]);
    }

    #[test]
    fn refuses_table_renames_in_every_spelling() {
        for text in [
            "RENAME TO x",
            "RENAME AS x",
            "RENAME x",
            "ADD c INT, RENAME `x`",
        ] {
            assert!(
                analyze(text)
                    .unwrap_err()
                    .problem
                    .contains("renames the table"),
                "{text}"
            );
        }
    }

    #[test]
    fn column_and_index_renames_are_not_table_renames() {
        let a =
            analyze("RENAME COLUMN a TO b, RENAME INDEX i TO j, CHANGE COLUMN `c` d INT").unwrap();
        assert_eq!(a.renamed_columns.get("a").map(String::as_str), Some("b"));
        assert_eq!(a.renamed_columns.get("c").map(String::as_str), Some("d"));
        assert_eq!(a.new_name_of("A").as_deref(), Some("b"));
    }

    #[test]
    fn reads_renames_written_with_if_exists() {
        let a = analyze("RENAME COLUMN IF EXISTS a TO b, CHANGE COLUMN IF EXISTS c d INT").unwrap();
        assert_eq!(a.renamed_columns.len(), 2, "{a:?}");
        assert_eq!(a.new_name_of("a").as_deref(), Some("b"));
        assert_eq!(a.new_name_of("c").as_deref(), Some("d"));
        assert_eq!(a.new_name_of("if"), Some("if".to_string()));
    }

    #[test]
    fn a_semicolon_is_taken_only_at_the_very_end() {
        assert!(analyze("ADD c INT;").is_ok());
        assert!(analyze("ADD c INT ;  ").is_ok());
        for text in [
            "ADD c INT; -- note",
            "ADD c INT; # note",
            "ADD c INT; /* x */",
        ] {
            let refusal = analyze(text).unwrap_err();
            assert!(
                refusal.problem.contains("more than one statement"),
                "{text}"
            );
        }
    }

    #[test]
    fn names_it_cannot_read_are_refused_not_skipped() {
        for text in [
            "CHANGE 1 b INT",
            "CHANGE a 2 INT",
            "DROP COLUMN 'a'",
            "DROP 12",
            "RENAME COLUMN a b",
            "RENAME COLUMN a TO 'b'",
            "ADD COLUMN 5 INT",
            "ADD COLUMN (a INT, 'b' INT)",
        ] {
            let refusal = analyze(text).unwrap_err();
            assert!(
                refusal.problem.contains("does not name its column"),
                "{text}: {refusal:?}"
            );
        }
    }

    #[test]
    fn reads_what_the_server_runs() {
        // A double-quoted string swallows what looks like clauses.
        let a = analyze(
            r#"ADD z VARCHAR(200) DEFAULT "\", CHANGE a b INT, CHANGE b a INT, ADD w INT COMMENT '" #'"#,
        )
        .unwrap();
        assert!(a.renamed_columns.is_empty(), "{a:?}");
        assert_eq!(a.added_columns, vec!["z"]);
        // `5--1` is arithmetic, not a comment hiding the clauses after it.
        let a = analyze("ADD z INT DEFAULT (5--1), DROP a, ADD a INT DEFAULT 7").unwrap();
        assert_eq!(a.dropped_columns, vec!["a"]);
        assert_eq!(a.added_columns, vec!["z", "a"]);
        let a = analyze("CHANGE 1x a INT, CHANGE a 1x INT").unwrap();
        assert_eq!(a.renamed_columns.get("1x").map(String::as_str), Some("a"));
        assert_eq!(a.renamed_columns.get("a").map(String::as_str), Some("1x"));
        let a = analyze("CHANGE a€ b€ INT, DROP p\u{a0}1").unwrap();
        assert_eq!(a.renamed_columns.get("a€").map(String::as_str), Some("b€"));
        assert_eq!(a.dropped_columns, vec!["p\u{a0}1"]);
    }

    #[test]
    fn unreserved_words_name_columns_unless_their_clause_follows() {
        let a = analyze("DROP period, DROP system, ADD vector INT, ADD period INT").unwrap();
        assert_eq!(a.dropped_columns, vec!["period", "system"]);
        assert_eq!(a.added_columns, vec!["vector", "period"]);
        let a = analyze(
            "DROP PERIOD FOR p, DROP SYSTEM VERSIONING, ADD VECTOR INDEX (v), ADD PERIOD FOR q (s, e), \
             DROP PERIOD IF EXISTS FOR r, ADD PERIOD IF NOT EXISTS FOR t (s, e), ADD VECTOR INDEX IF NOT EXISTS (w)",
        )
        .unwrap();
        assert!(
            a.dropped_columns.is_empty() && a.added_columns.is_empty(),
            "{a:?}"
        );
    }

    #[test]
    fn tracks_added_columns_but_not_added_indexes() {
        let a = analyze(
            "ADD COLUMN a INT, ADD b INT AFTER a, ADD COLUMN IF NOT EXISTS `C` INT, \
             ADD COLUMN (d INT, e DECIMAL(10, 2) DEFAULT 1.5), ADD INDEX i (x), ADD UNIQUE KEY u (y), \
             ADD PRIMARY KEY (z), ADD CONSTRAINT ck CHECK (a > 0), ADD PARTITION (PARTITION p9 VALUES LESS THAN (9))",
        )
        .unwrap();
        assert_eq!(a.added_columns, vec!["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn refuses_partition_operations_that_move_or_remove_rows() {
        for text in [
            "TRUNCATE PARTITION p0",
            "TRUNCATE PARTITION ALL",
            "DROP PARTITION p0, p1",
            "EXCHANGE PARTITION p0 WITH TABLE archive",
            "CONVERT PARTITION p0 TO TABLE archive",
            "CONVERT TABLE archive TO PARTITION p9 VALUES LESS THAN (900)",
            "DISCARD TABLESPACE",
            "IMPORT PARTITION p0 TABLESPACE",
        ] {
            let refusal = analyze(text).unwrap_err();
            assert!(
                refusal.problem.contains("changes the table's rows"),
                "{text}: {refusal:?}"
            );
        }
        for text in [
            "ADD PARTITION (PARTITION p9 VALUES LESS THAN (900))",
            "REORGANIZE PARTITION p1 INTO (PARTITION p1 VALUES LESS THAN (500), PARTITION p2 VALUES LESS THAN MAXVALUE)",
            "COALESCE PARTITION 2",
            "REMOVE PARTITIONING",
            "PARTITION BY HASH (id) PARTITIONS 4",
            "CONVERT TO CHARACTER SET utf8mb4",
        ] {
            assert!(analyze(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn refuses_foreign_keys_algorithm_and_lock() {
        assert!(analyze("ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES p (id)").is_err());
        assert!(analyze("ADD FOREIGN KEY (a) REFERENCES p (id)").is_err());
        assert!(analyze("ADD COLUMN c INT, ALGORITHM=INPLACE").is_err());
        assert!(analyze("ADD COLUMN c INT, LOCK = NONE").is_err());
        assert!(analyze("DROP FOREIGN KEY f").is_ok());
    }

    #[test]
    fn quoted_keywords_are_not_clauses() {
        let a = analyze("ADD COLUMN `rename` VARCHAR(10) DEFAULT 'RENAME TO x'").unwrap();
        assert!(a.renamed_columns.is_empty());
    }

    #[test]
    fn tracks_dropped_columns_but_not_dropped_indexes() {
        let a = analyze(
            "DROP COLUMN a, DROP b, DROP INDEX i, DROP PRIMARY KEY, DROP PERIOD FOR p, DROP CHECK c",
        )
        .unwrap();
        assert_eq!(a.dropped_columns, vec!["a", "b"]);
        assert_eq!(a.new_name_of("a"), None);
    }

    #[test]
    fn refuses_a_second_statement_and_hidden_clauses() {
        assert!(analyze("ADD c INT; DROP TABLE t")
            .unwrap_err()
            .problem
            .contains("more than one statement"));
        assert!(analyze("ADD c INT;").is_ok());
        assert!(analyze("ADD c INT /*!, RENAME TO x */").is_err());
        assert!(analyze("ADD c INT /*!, ADD FOREIGN KEY (c) REFERENCES p (id) */").is_err());
        // A DROP the server may skip must not be read as done.
        for text in [
            "ADD c INT /*!90000 , DROP COLUMN a */",
            "ADD c INT /*M!999999 , DROP COLUMN a */",
        ] {
            assert!(
                analyze(text).unwrap_err().problem.contains("versioned"),
                "{text}"
            );
        }
        assert_eq!(
            analyze("ADD c INT /*! , DROP COLUMN a */")
                .unwrap()
                .dropped_columns,
            vec!["a"]
        );
    }

    #[test]
    fn refuses_full_statement_and_empty_text() {
        assert!(analyze("ALTER TABLE t ADD c INT").is_err());
        assert!(analyze("ALTER ONLINE TABLE t ADD c INT").is_err());
        assert!(analyze("ALTER COLUMN c SET DEFAULT 1, ADD d INT").is_ok());
        assert!(analyze("  ").is_err());
    }
}
