//! What a statement read from the binlog (a QUERY event: DDL, or DML
//! logged as a statement) does to the migrated table.
//!
//! The tail must stop on anything that changes the original's structure or
//! data behind the row events (ALTER, DROP, RENAME, TRUNCATE, OPTIMIZE,
//! CREATE TRIGGER or CREATE/DROP INDEX on it, statement-based DML writing
//! it), and must not stop on the many statements that merely mention a name
//! like it: `ANALYZE TABLE t` from a cron job, `GRANT ... ON db.t`, an event
//! called `t`, a column called `t` of another table, a table `t_archive`.
//! So statements are tokenized and the tables they *change* are read from
//! the positions the grammar puts them in, database-qualified. A statement
//! whose first word is not known here is left to the caller, which stops
//! when the text names the table.
//!
//! `DROP TRIGGER` names no table; it is harmless here because a table with
//! triggers is refused before the migration starts, and a trigger created
//! on it afterwards stops the tail at its CREATE.

use crate::sql::{split_top_level_commas, tokenize, tokenize_as, Lexing, Token};

/// A table or database a statement changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    /// A table: database (the statement's default when unqualified) and name.
    Table(String, String),
    /// A whole database (DROP DATABASE).
    Database(String),
}

/// The tables whose structure or data `query` changes, with unqualified
/// names resolved in `default_db`, the text read under `lexing` (the
/// sql_mode the statement ran in). `Err` when the text cannot be tokenized,
/// or is not a statement read here (its first word is unknown): the caller
/// then decides from the names the text mentions, and stops rather than
/// miss a change.
pub fn changed_tables(
    query: &str,
    default_db: &str,
    lexing: Lexing,
) -> Result<Vec<Changed>, String> {
    let (tokens, _) = tokenize_as(query, lexing)?;
    let mut p = Parser {
        tokens: &tokens,
        at: 0,
        default_db,
        unreadable: false,
    };
    match p.statement() {
        Some(changed) if !p.unreadable => Ok(changed),
        _ => {
            let first: String = query.trim_start().chars().take(40).collect();
            Err(format!("a statement not read here ({first}...)"))
        }
    }
}

/// [`changed_tables`] for text whose sql_mode is not known (a process
/// list's): every table of its readings with and without ANSI_QUOTES and
/// NO_BACKSLASH_ESCAPES; `Err` when one of them is not read here.
pub fn changed_tables_in_any_mode(query: &str, default_db: &str) -> Result<Vec<Changed>, String> {
    let mut all = Vec::new();
    for ansi_quotes in [false, true] {
        for backslash_escapes in [true, false] {
            let lexing = Lexing {
                ansi_quotes,
                backslash_escapes,
            };
            for changed in changed_tables(query, default_db, lexing)? {
                if !all.contains(&changed) {
                    all.push(changed);
                }
            }
        }
    }
    Ok(all)
}

/// The first word of the statement `query` runs, upper-cased: past
/// MariaDB's `SET STATEMENT ... FOR` and a leading `WITH` clause. `None`
/// when the text cannot be tokenized or holds no word.
pub fn statement_verb(query: &str) -> Option<String> {
    let tokens = tokenize(query).ok()?;
    let mut p = Parser {
        tokens: &tokens,
        at: 0,
        default_db: "",
        unreadable: false,
    };
    p.skip_prefixes();
    match p.peek()? {
        Token::Word(w) => Some(w.to_ascii_uppercase()),
        _ => None,
    }
}

/// First words of statements that change no table's rows or structure
/// (statistics, privileges, caches, transaction control, reads).
const HARMLESS: &[&str] = &[
    "ANALYZE",
    "GRANT",
    "REVOKE",
    "FLUSH",
    "CHECK",
    "CHECKSUM",
    "REPAIR",
    "SAVEPOINT",
    "ROLLBACK",
    "RELEASE",
    "SELECT",
    "DO",
    "CALL",
    "INSTALL",
    "UNINSTALL",
    "SHOW",
    "USE",
    "KILL",
    "PURGE",
    "SET",
];

/// Statement words a CTE (`WITH ... AS (...)`) can lead to.
const AFTER_CTE: &[&str] = &["SELECT", "UPDATE", "DELETE", "INSERT", "REPLACE"];

/// Compares names as the server does: exactly, or case-insensitively when
/// `lower_case_table_names` is 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameRule {
    /// `lower_case_table_names` is not 0.
    pub case_insensitive: bool,
}

impl NameRule {
    /// True when two database or table names denote the same object.
    pub fn same(&self, a: &str, b: &str) -> bool {
        if self.case_insensitive {
            a.to_lowercase() == b.to_lowercase()
        } else {
            a == b
        }
    }

    /// True when `changed` is `database`.`table` or its database.
    pub fn hits(&self, changed: &Changed, database: &str, table: &str) -> bool {
        match changed {
            Changed::Table(db, name) => self.same(db, database) && self.same(name, table),
            Changed::Database(db) => self.same(db, database),
        }
    }
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    default_db: &'a str,
    /// Set when a table name's place held a string or a number: text
    /// read in another sql_mode than it ran in (`"t"` under ANSI_QUOTES),
    /// or a name the lexer takes for a number. The statement is then not
    /// read here.
    unreadable: bool,
}

/// Words that start the next table of a join.
const JOIN_WORDS: &[&str] = &[
    "JOIN",
    "INNER",
    "CROSS",
    "LEFT",
    "RIGHT",
    "NATURAL",
    "STRAIGHT_JOIN",
    "OUTER",
];

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn kw(&self, k: &str) -> bool {
        self.peek().is_some_and(|t| t.is_kw(k))
    }

    fn eat(&mut self, k: &str) -> bool {
        if self.kw(k) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_any(&mut self, words: &[&str]) {
        while words.iter().any(|w| self.kw(w)) {
            self.at += 1;
        }
    }

    /// Skips `DEFINER = user@host` (tokens up to the next keyword we know).
    fn skip_definer(&mut self) {
        if self.eat("DEFINER") {
            self.eat_punct('=');
            while let Some(t) = self.peek() {
                if ["TRIGGER", "VIEW", "EVENT", "PROCEDURE", "FUNCTION", "SQL"]
                    .iter()
                    .any(|k| t.is_kw(k))
                {
                    break;
                }
                self.at += 1;
            }
        }
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if self.peek() == Some(&Token::Punct(c)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// `name` or `db.name`.
    fn table_name(&mut self) -> Option<Changed> {
        let first = self.name()?;
        if self.eat_punct('.') {
            let second = self.name()?;
            return Some(Changed::Table(first, second));
        }
        Some(Changed::Table(self.default_db.to_string(), first))
    }

    fn name(&mut self) -> Option<String> {
        match self.peek()? {
            Token::Word(n) | Token::Quoted(n) => {
                let name = n.clone();
                self.at += 1;
                Some(name)
            }
            Token::Str(_) | Token::Number(_) => {
                self.unreadable = true;
                None
            }
            Token::Punct(_) => None,
        }
    }

    /// The table named at the start of `tokens`, read as [`Self::table_name`].
    fn table_name_in(&mut self, tokens: &[Token]) -> Option<Changed> {
        let mut sub = Parser {
            tokens,
            at: 0,
            default_db: self.default_db,
            unreadable: false,
        };
        let name = sub.table_name();
        self.unreadable |= sub.unreadable;
        name
    }

    /// A comma-separated list of table names (DROP, OPTIMIZE).
    fn name_list(&mut self) -> Vec<Changed> {
        let mut out = Vec::new();
        while let Some(name) = self.table_name() {
            out.push(name);
            if !self.eat_punct(',') {
                break;
            }
        }
        out
    }

    /// Table references of UPDATE and DELETE: every table named, up to the
    /// first of `end` at depth 0; join conditions and subqueries skipped.
    fn references(&mut self, end: &[&str]) -> Vec<Changed> {
        let mut out = Vec::new();
        let mut expect_table = true;
        while let Some(t) = self.peek() {
            if end.iter().any(|k| t.is_kw(k)) {
                break;
            }
            match t {
                Token::Punct('(') => {
                    self.skip_parens();
                    expect_table = false;
                }
                Token::Punct(',') => {
                    self.at += 1;
                    expect_table = true;
                }
                t if t.is_kw("JOIN") || t.is_kw("STRAIGHT_JOIN") => {
                    self.at += 1;
                    expect_table = true;
                }
                t if t.is_kw("ON") || t.is_kw("USING") => {
                    self.at += 1;
                    self.skip_condition(end);
                }
                _ if expect_table && t.as_name().is_some() => {
                    if let Some(name) = self.table_name() {
                        out.push(name);
                    }
                    expect_table = false;
                }
                _ => self.at += 1,
            }
        }
        out
    }

    /// Skips a join condition: up to the next join, comma or end word at
    /// depth 0.
    fn skip_condition(&mut self, end: &[&str]) {
        while let Some(t) = self.peek() {
            if *t == Token::Punct('(') {
                self.skip_parens();
                continue;
            }
            if *t == Token::Punct(',')
                || end.iter().any(|k| t.is_kw(k))
                || JOIN_WORDS.iter().any(|k| t.is_kw(k))
            {
                break;
            }
            self.at += 1;
        }
    }

    fn skip_parens(&mut self) {
        let mut depth = 0i32;
        while let Some(t) = self.peek() {
            match t {
                Token::Punct('(') => depth += 1,
                Token::Punct(')') => depth -= 1,
                _ => {}
            }
            self.at += 1;
            if depth <= 0 {
                break;
            }
        }
    }

    /// The tables the statement at the cursor changes; `None` when its
    /// first word is not one read here.
    fn statement(&mut self) -> Option<Vec<Changed>> {
        self.skip_prefixes();
        let Some(first) = self.peek().cloned() else {
            return Some(Vec::new());
        };
        self.at += 1;
        let word = match &first {
            Token::Word(w) => w.to_ascii_uppercase(),
            _ => return None,
        };
        if HARMLESS.contains(&word.as_str()) {
            return Some(Vec::new());
        }
        Some(match word.as_str() {
            "ALTER" => self.alter(),
            "DROP" => self.drop(),
            "RENAME" => {
                if self.eat("TABLE") || self.eat("TABLES") {
                    self.eat_if_exists();
                    self.rename_pairs()
                } else {
                    Vec::new()
                }
            }
            "TRUNCATE" => {
                self.eat("TABLE");
                self.table_name().into_iter().collect()
            }
            "OPTIMIZE" => {
                self.eat_any(&["NO_WRITE_TO_BINLOG", "LOCAL"]);
                if self.eat("TABLE") {
                    self.name_list()
                } else {
                    Vec::new()
                }
            }
            "CREATE" => self.create(),
            "INSERT" | "REPLACE" => {
                self.eat_any(&["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "INTO"]);
                self.table_name().into_iter().collect()
            }
            "UPDATE" => {
                self.eat_any(&["LOW_PRIORITY", "IGNORE"]);
                self.references(&["SET"])
            }
            "DELETE" => {
                self.eat_any(&["LOW_PRIORITY", "QUICK", "IGNORE"]);
                // Every table of every form (targets, FROM and USING lists):
                // a table only read by a multi-table DELETE is counted too,
                // which errs on the side of stopping.
                let mut out = self.references(&["FROM", "WHERE", "ORDER", "LIMIT", "RETURNING"]);
                if self.eat("FROM") {
                    out.extend(self.references(&["USING", "WHERE", "ORDER", "LIMIT", "RETURNING"]));
                    if self.eat("USING") {
                        out.extend(self.references(&["WHERE", "ORDER", "LIMIT", "RETURNING"]));
                    }
                }
                out
            }
            "LOCK" => {
                // Not binlogged; read for the cut-over's process-list check.
                let mut out = Vec::new();
                if self.eat("TABLE") || self.eat("TABLES") {
                    while let Some(name) = self.table_name() {
                        out.push(name);
                        while self.peek().is_some_and(|t| *t != Token::Punct(',')) {
                            self.at += 1;
                        }
                        if !self.eat_punct(',') {
                            break;
                        }
                    }
                }
                out
            }
            "LOAD" => {
                while let Some(t) = self.peek() {
                    if t.is_kw("INTO") {
                        self.at += 1;
                        self.eat("TABLE");
                        return Some(self.table_name().into_iter().collect());
                    }
                    self.at += 1;
                }
                Vec::new()
            }
            _ => return None,
        })
    }

    /// Moves the cursor past what only qualifies the statement that follows:
    /// MariaDB's `SET STATEMENT var = value [, ...] FOR` and `WITH
    /// [RECURSIVE] name [(columns)] AS (...) [, ...]`.
    fn skip_prefixes(&mut self) {
        loop {
            if self.kw("SET")
                && self
                    .tokens
                    .get(self.at + 1)
                    .is_some_and(|t| t.is_kw("STATEMENT"))
            {
                self.at += 2;
                self.skip_to_top_level(&["FOR"]);
                self.eat("FOR");
            } else if self.eat("WITH") {
                self.skip_to_top_level(AFTER_CTE);
            } else {
                return;
            }
        }
    }

    /// Moves the cursor to the first of `words` outside parentheses (or to
    /// the end).
    fn skip_to_top_level(&mut self, words: &[&str]) {
        while let Some(t) = self.peek() {
            if *t == Token::Punct('(') {
                self.skip_parens();
            } else if words.iter().any(|w| t.is_kw(w)) {
                return;
            } else {
                self.at += 1;
            }
        }
    }

    fn eat_if_exists(&mut self) {
        if self.kw("IF") {
            self.at += 1;
            self.eat("NOT");
            self.eat("EXISTS");
        }
    }

    /// `a TO b, c TO d`: every table on either side.
    fn rename_pairs(&mut self) -> Vec<Changed> {
        let mut out = Vec::new();
        while let Some(from) = self.table_name() {
            out.push(from);
            self.eat_any(&["WAIT", "NOWAIT"]);
            if !self.eat("TO") {
                break;
            }
            let Some(to) = self.table_name() else { break };
            out.push(to);
            if !self.eat_punct(',') {
                break;
            }
        }
        out
    }

    fn alter(&mut self) -> Vec<Changed> {
        self.eat_any(&["ONLINE", "IGNORE"]);
        if !self.eat("TABLE") {
            return Vec::new();
        }
        self.eat_if_exists();
        let Some(table) = self.table_name() else {
            return Vec::new();
        };
        let mut out = vec![table];
        // ALTER TABLE x RENAME TO y changes y as well; so do EXCHANGE
        // PARTITION p WITH TABLE y (y's rows and p's trade places), CONVERT
        // TABLE y TO PARTITION p and CONVERT PARTITION p TO TABLE y.
        let rest = &self.tokens[self.at..];
        for clause in split_top_level_commas(rest) {
            let partition_swap = clause.first().is_some_and(|t| t.is_kw("EXCHANGE"))
                || clause.first().is_some_and(|t| t.is_kw("CONVERT"))
                    && clause
                        .get(1)
                        .is_some_and(|t| t.is_kw("TABLE") || t.is_kw("PARTITION"));
            if partition_swap {
                if let Some(at) = clause.iter().position(|t| t.is_kw("TABLE")) {
                    out.extend(self.table_name_in(&clause[at + 1..]));
                }
                continue;
            }
            if clause.first().is_some_and(|t| t.is_kw("RENAME"))
                && !clause
                    .get(1)
                    .is_some_and(|t| t.is_kw("COLUMN") || t.is_kw("INDEX") || t.is_kw("KEY"))
            {
                let skip = if clause
                    .get(1)
                    .is_some_and(|t| t.is_kw("TO") || t.is_kw("AS"))
                {
                    2
                } else {
                    1
                };
                out.extend(self.table_name_in(&clause[skip..]));
            }
        }
        out
    }

    fn drop(&mut self) -> Vec<Changed> {
        self.eat("TEMPORARY");
        if self.eat("TABLE") || self.eat("TABLES") {
            self.eat_if_exists();
            return self.name_list();
        }
        if self.eat("DATABASE") || self.eat("SCHEMA") {
            self.eat_if_exists();
            return match self.peek().and_then(Token::as_name) {
                Some(db) => vec![Changed::Database(db.to_string())],
                None => Vec::new(),
            };
        }
        self.eat_any(&["ONLINE", "OFFLINE"]);
        if self.eat("INDEX") {
            self.eat_if_exists();
            let _index = self.peek().and_then(Token::as_name);
            self.at += 1;
            if self.eat("ON") {
                return self.table_name().into_iter().collect();
            }
        }
        Vec::new()
    }

    fn create(&mut self) -> Vec<Changed> {
        if self.eat("OR") {
            self.eat("REPLACE");
        }
        self.eat_any(&["TEMPORARY", "ONLINE", "OFFLINE"]);
        self.skip_definer();
        if self.eat("TABLE") {
            // CREATE OR REPLACE TABLE t replaces it; CREATE TABLE t fails
            // while t exists. Either way the name is the one created.
            self.eat_if_exists();
            return self.table_name().into_iter().collect();
        }
        self.eat_any(&["UNIQUE", "FULLTEXT", "SPATIAL"]);
        if self.eat("INDEX") {
            self.eat_if_exists();
            self.at += 1;
            if self.eat("ON") {
                return self.table_name().into_iter().collect();
            }
            return Vec::new();
        }
        if self.eat("TRIGGER") {
            while let Some(t) = self.peek() {
                if t.is_kw("ON") {
                    self.at += 1;
                    return self.table_name().into_iter().collect();
                }
                self.at += 1;
            }
        }
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXACT: NameRule = NameRule {
        case_insensitive: false,
    };

    fn stops(query: &str) -> bool {
        stops_in(query, "shop", EXACT)
    }

    fn stops_in(query: &str, default_db: &str, rule: NameRule) -> bool {
        changed_tables(query, default_db, Lexing::DEFAULT)
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .iter()
            .any(|c| rule.hits(c, "shop", "t") || rule.hits(c, "shop", "_t_gho"))
    }

    #[test]
    fn the_verb_is_read_past_prefixes() {
        assert_eq!(
            statement_verb("alter table t add x int").as_deref(),
            Some("ALTER")
        );
        assert_eq!(
            statement_verb("SET STATEMENT lock_wait_timeout = 5 FOR ALTER TABLE t ADD x INT")
                .as_deref(),
            Some("ALTER")
        );
        assert_eq!(
            statement_verb("WITH c AS (SELECT 1) DELETE FROM t").as_deref(),
            Some("DELETE")
        );
        assert_eq!(statement_verb("SET @a = 1").as_deref(), Some("SET"));
        assert_eq!(statement_verb("/* only a comment */"), None);
    }

    #[test]
    fn statements_not_read_here_are_left_to_the_caller() {
        for q in ["FROBNICATE TABLE t", "HANDLER t OPEN", "(SELECT 1)"] {
            assert!(changed_tables(q, "shop", Lexing::DEFAULT).is_err(), "{q}");
        }
    }

    #[test]
    fn a_name_read_as_a_string_or_number_is_not_read_here() {
        let ansi = r#"ALTER TABLE "t" ADD COLUMN x INT"#;
        assert!(changed_tables(ansi, "shop", Lexing::DEFAULT).is_err());
        let under_ansi = Lexing {
            ansi_quotes: true,
            backslash_escapes: true,
        };
        let t = Changed::Table("shop".into(), "t".into());
        assert_eq!(
            changed_tables(ansi, "shop", under_ansi).unwrap(),
            vec![t.clone()]
        );
        // Of unknown mode (a process list): every reading, or none.
        assert!(changed_tables_in_any_mode(ansi, "shop").is_err());
        assert_eq!(
            changed_tables_in_any_mode("RENAME TABLE t TO u", "shop").unwrap(),
            vec![t, Changed::Table("shop".into(), "u".into())]
        );
        assert_eq!(
            changed_tables("TRUNCATE shop.123", "x", Lexing::DEFAULT).unwrap(),
            vec![Changed::Table("shop".into(), "123".into())]
        );
    }

    #[test]
    fn harmless_statements_that_mention_the_table_are_ignored() {
        for q in [
            "DROP EVENT shop.t",
            "DROP EVENT IF EXISTS `t`",
            "ANALYZE TABLE t",
            "ANALYZE NO_WRITE_TO_BINLOG TABLE `shop`.`t`, u",
            "GRANT SELECT ON shop.t TO 'app'@'%'",
            "REVOKE ALL ON `shop`.`t` FROM app",
            "ALTER TABLE t_archive ADD COLUMN x INT",
            "ALTER TABLE other ADD COLUMN t INT, ADD INDEX t (t)",
            "ALTER TABLE other.t ADD COLUMN x INT",
            "CREATE TABLE t2 LIKE t",
            "CREATE VIEW v AS SELECT * FROM t",
            "CREATE EVENT t ON SCHEDULE EVERY 1 HOUR DO DELETE FROM u",
            "INSERT INTO audit SELECT * FROM t",
            "UPDATE u JOIN v ON u.t = v.t SET u.a = 1",
            "DROP TRIGGER t",
            "FLUSH TABLES t",
            "CHECK TABLE t",
            "SAVEPOINT t",
            "DROP DATABASE other",
            "RENAME USER t TO u",
            "ALTER TABLE other RENAME COLUMN t TO u",
            "ALTER TABLE other RENAME INDEX t TO u",
            "ALTER TABLE other EXCHANGE PARTITION p WITH TABLE t_archive",
            "SET STATEMENT max_statement_time = 5 FOR ANALYZE TABLE t",
            "SET @t = 1",
            "WITH t AS (SELECT 1) UPDATE u SET a = (SELECT * FROM t)",
            "ROLLBACK TO SAVEPOINT t",
            "REPAIR TABLE t",
        ] {
            assert!(!stops(q), "{q}");
        }
    }

    #[test]
    fn statements_that_change_the_table_stop_the_tail() {
        for q in [
            "ALTER TABLE t ADD COLUMN x INT",
            "ALTER ONLINE IGNORE TABLE IF EXISTS `shop`.`t` ENGINE=InnoDB",
            "ALTER TABLE other RENAME TO t",
            "ALTER TABLE other ADD x INT, RENAME AS shop.t",
            "DROP TABLE IF EXISTS x, `t` /* generated by server */",
            "DROP TEMPORARY TABLE t",
            "DROP DATABASE shop",
            "RENAME TABLE a TO b, t TO c",
            "RENAME TABLE x TO _t_gho",
            "TRUNCATE t",
            "TRUNCATE TABLE shop.t",
            "OPTIMIZE TABLE x, t",
            "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.a = 1",
            "CREATE DEFINER=`root`@`localhost` TRIGGER tr AFTER UPDATE ON shop.t FOR EACH ROW SET @a = 1",
            "CREATE OR REPLACE TABLE t (id INT)",
            "CREATE UNIQUE INDEX i ON t (a)",
            "DROP INDEX i ON t",
            "INSERT INTO t VALUES (1)",
            "INSERT IGNORE t (a) SELECT 1",
            "REPLACE INTO shop.t VALUES (1)",
            "UPDATE t SET a = 1",
            "UPDATE x JOIN t ON x.id = t.id SET t.a = x.a",
            "UPDATE x, `t` AS y SET y.a = 1",
            "DELETE FROM t WHERE a = 1",
            "DELETE a FROM a JOIN t USING (id)",
            "DELETE FROM a USING a, t WHERE a.id = t.id",
            "LOAD DATA INFILE 'f' INTO TABLE t",
            "LOCK TABLES x READ, t AS a WRITE",
            "/*!40000 ALTER TABLE `t` DISABLE KEYS */",
            "ALTER TABLE other EXCHANGE PARTITION p WITH TABLE t",
            "ALTER TABLE other EXCHANGE PARTITION p WITH TABLE `shop`.`t` WITHOUT VALIDATION",
            "ALTER TABLE other CONVERT TABLE t TO PARTITION p VALUES LESS THAN (10)",
            "ALTER TABLE other CONVERT PARTITION p TO TABLE t",
            "SET STATEMENT lock_wait_timeout = 5 FOR TRUNCATE TABLE t",
            "SET STATEMENT a = (1), b = 2 FOR ALTER TABLE t ADD x INT",
            "WITH c AS (SELECT id FROM u) UPDATE t JOIN c USING (id) SET t.a = 1",
            "WITH RECURSIVE c (n) AS (SELECT 1 UNION SELECT n + 1 FROM c WHERE n < 3) DELETE FROM t WHERE a IN (SELECT n FROM c)",
        ] {
            assert!(stops(q), "{q}");
        }
    }

    #[test]
    fn names_resolve_in_the_statements_database() {
        assert!(stops_in("ALTER TABLE t ADD x INT", "shop", EXACT));
        assert!(!stops_in("ALTER TABLE t ADD x INT", "other", EXACT));
        assert!(stops_in("ALTER TABLE shop.t ADD x INT", "other", EXACT));
    }

    #[test]
    fn lower_case_table_names_decides_case() {
        let folding = NameRule {
            case_insensitive: true,
        };
        assert!(!stops_in("ALTER TABLE T ADD x INT", "shop", EXACT));
        assert!(stops_in("ALTER TABLE T ADD x INT", "shop", folding));
        assert!(stops_in("ALTER TABLE SHOP.t ADD x INT", "other", folding));
    }
}
