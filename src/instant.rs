//! The native path: can the server run the ALTER itself without copying the
//! table (`ALGORITHM=INSTANT`, or `NOCOPY` on MariaDB), and, with
//! `--prefer-instant`, running it so.
//!
//! The answer comes from the server, never from reading the ALTER text: the
//! probe creates an empty copy of the table (`CREATE TABLE _<t>_ins LIKE t`,
//! with the original's row format), runs the ALTER on it with
//! `ALGORITHM=INSTANT` (then `NOCOPY` where the server has it and INSTANT
//! was refused), records what the server said, and drops the copy again,
//! whatever happened.
//!
//! An empty copy is not the table. `CREATE TABLE ... LIKE` does not carry
//! everything that decides the algorithm: a hidden `FTS_DOC_ID` left by a
//! dropped FULLTEXT index, the instant-ALTER metadata of earlier changes
//! (MariaDB's `innodb_instant_alter_column_allowed=add_last` then refuses
//! what the copy accepts; MySQL counts row versions per table). So the
//! probe can over-promise, and the native run keeps the ALGORITHM clause:
//! the server then refuses the statement instead of quietly copying the
//! table under a lock, and shadowcut copies the rows as it would have
//! without `--prefer-instant`. On MariaDB 10.11 the probe and a filled
//! table agreed on every other ALTER tried (see `docs/design.md`).
//!
//! Only INSTANT runs natively. NOCOPY is reported, not run: it spares the
//! rebuild but may still read every row (an index build), and replicas
//! apply the statement only after the primary has finished it.

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::Conn;
use serde::Serialize;

use crate::control::Stop;
use crate::error::{Error, Result, SqlContext, LOCK_BUSY_CODES};
use crate::server::{self, ConnectConfig, Dialect, Flavor, NativeAlgorithm};
use crate::shadow::{marker, Role, ShadowNames};
use crate::sql::{self, split_top_level_commas, tokenize, Token};

/// `ALTER TABLE <table> <alter>, ALGORITHM=<algorithm>`, or why it cannot be
/// built. `table` is already quoted.
///
/// The clause goes on a line of its own, so that a `--` or `#` comment
/// ending the ALTER cannot swallow it; the statement is then read back with
/// the tokenizer, and refused unless its last clause is exactly the one
/// appended (an ALTER that already carries `ALGORITHM=` or `LOCK=` is
/// refused too: `inspect::alter` refuses those before this is reached).
pub fn statement(
    table: &str,
    alter: &str,
    algorithm: NativeAlgorithm,
) -> std::result::Result<String, String> {
    let alter = alter.trim().trim_end_matches(';').trim_end();
    let tokens = tokenize(alter).map_err(|e| format!("the ALTER text cannot be read ({e})"))?;
    if tokens.is_empty() {
        return Err("the ALTER is empty".into());
    }
    let sets_algorithm = |clause: &[Token]| {
        clause
            .first()
            .is_some_and(|t| t.is_kw("ALGORITHM") || t.is_kw("LOCK"))
    };
    if split_top_level_commas(&tokens)
        .into_iter()
        .any(sets_algorithm)
    {
        return Err("the ALTER already carries ALGORITHM= or LOCK=".into());
    }
    let keyword = algorithm.keyword();
    let text = format!("ALTER TABLE {table} {alter}\n, ALGORITHM={keyword}");
    let read_back = tokenize(&text).map_err(|e| format!("the statement cannot be read ({e})"))?;
    let clauses = split_top_level_commas(&read_back);
    if read_back.contains(&Token::Punct(';')) {
        return Err("the ALTER holds a ';', which would end the statement".into());
    }
    let last_is_ours = clauses.last().is_some_and(|c| {
        c.len() == 3 && c[0].is_kw("ALGORITHM") && c[1] == Token::Punct('=') && c[2].is_kw(keyword)
    });
    if !last_is_ours || clauses.into_iter().filter(|c| sets_algorithm(c)).count() != 1 {
        return Err(format!(
            "ALGORITHM={keyword} appended to the ALTER would not be read as its own clause"
        ));
    }
    Ok(text)
}

/// What the server said to one algorithm on the empty copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// The algorithm asked about.
    pub algorithm: NativeAlgorithm,
    /// The answer.
    #[serde(flatten)]
    pub result: ProbeResult,
}

/// The server's answer to one `ALTER ..., ALGORITHM=...` on the empty copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ProbeResult {
    /// The server ran it.
    Accepted,
    /// The server refused it: its error number and message.
    Refused {
        /// Server error number (1845 and 1846: the algorithm is not
        /// supported for this change).
        code: u16,
        /// Server error message.
        message: String,
    },
    /// Not asked, because a cheaper algorithm was accepted.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// What the probe found: whether the ALTER can run natively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// The empty copy that was altered and dropped again; `None` when the
    /// server has no native algorithm to ask about.
    pub scratch_table: Option<String>,
    /// The server's answers, cheapest algorithm first.
    pub verdicts: Vec<Verdict>,
    /// The algorithm `--prefer-instant` runs the ALTER with: INSTANT, when
    /// the server accepted it on the empty copy.
    pub native_algorithm: Option<NativeAlgorithm>,
    /// The finding in one line, for people.
    pub summary: String,
}

impl Probe {
    /// The probe's result from the server's answers.
    pub fn new(dialect: Dialect, scratch_table: Option<String>, verdicts: Vec<Verdict>) -> Probe {
        let native_algorithm = verdicts
            .iter()
            .find(|v| v.algorithm == NativeAlgorithm::Instant && v.result == ProbeResult::Accepted)
            .map(|v| v.algorithm);
        let summary = describe(dialect, &verdicts);
        Probe {
            scratch_table,
            verdicts,
            native_algorithm,
            summary,
        }
    }
}

/// One line saying what the server answered, with its refusals verbatim.
pub fn describe(dialect: Dialect, verdicts: &[Verdict]) -> String {
    if verdicts.is_empty() {
        return "not asked: this server has no ALGORITHM=INSTANT (MariaDB 10.3.7 and MySQL 8.0.12 brought it)".into();
    }
    let accepted = |a: NativeAlgorithm| {
        verdicts
            .iter()
            .any(|v| v.algorithm == a && v.result == ProbeResult::Accepted)
    };
    let refusals = verdicts
        .iter()
        .filter_map(|v| match &v.result {
            ProbeResult::Refused { code, message } => Some(format!(
                "{} refused (error {code}: {message})",
                v.algorithm.keyword()
            )),
            _ => None,
        })
        .collect::<Vec<_>>();
    let no_nocopy = (dialect.flavor == Flavor::MySql).then_some("MySQL has no NOCOPY");
    if accepted(NativeAlgorithm::Instant) {
        "INSTANT possible (the server said so on an empty copy of the table)".into()
    } else if accepted(NativeAlgorithm::Nocopy) {
        format!(
            "{}; NOCOPY possible (the server said so on an empty copy of the table), \
             but not run natively: it may still read every row (an index build), and replicas \
             apply it only after the primary; the rows are copied",
            refusals.join("; ")
        )
    } else {
        let mut parts = refusals;
        parts.extend(no_nocopy.map(String::from));
        format!("not possible: {}", parts.join("; "))
    }
}

/// Asks the server whether the ALTER runs natively: creates the empty copy
/// `_<t>_ins` (marked as this run's scratch table, with the original's row
/// format), runs the ALTER on it with each of the dialect's algorithms until
/// one is accepted, and drops the copy, whatever happened, through
/// `fallback` when the probe's own connection has failed. The ALTER runs in
/// the server's sql_mode, as on the new table.
pub async fn probe(
    connect: &ConnectConfig,
    dialect: Dialect,
    names: &ShadowNames,
    alter: &str,
    run_id: &str,
    fallback: &mut Conn,
) -> Result<Probe> {
    let algorithms = dialect.native_algorithms();
    if algorithms.is_empty() {
        return Ok(Probe::new(dialect, None, Vec::new()));
    }
    let original = names.q(&names.original);
    let scratch = names.q(&names.scratch);
    let statements = algorithms
        .iter()
        .map(|a| statement(&scratch, alter, *a).map(|s| (*a, s)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|problem| {
            Error::refused(&original, problem, "Fix --alter; nothing was changed")
        })?;
    let mut conn = server::connect_session(&ConnectConfig {
        zero_date_checks: true,
        ..connect.clone()
    })
    .await?;
    conn.query_drop(format!("CREATE TABLE {scratch} LIKE {original}"))
        .await
        .context(|| format!("creating the scratch table {scratch} for the INSTANT probe"))?;
    // From here on the scratch table exists, and is dropped in every case.
    let asked = ask(&mut conn, names, &statements, run_id).await;
    let dropped = match drop_scratch(&mut conn, names).await {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "dropping the scratch table on the probe's connection failed; retrying on another");
            drop_scratch(fallback, names).await
        }
    };
    let _ = conn.disconnect().await;
    let verdicts = asked?;
    dropped?;
    Ok(Probe::new(dialect, Some(scratch), verdicts))
}

/// Marks the scratch table, gives it the original's row format, and runs
/// the ALTER on it with each algorithm until one is accepted.
async fn ask(
    conn: &mut Conn,
    names: &ShadowNames,
    statements: &[(NativeAlgorithm, String)],
    run_id: &str,
) -> Result<Vec<Verdict>> {
    let scratch = names.q(&names.scratch);
    conn.query_drop(format!(
        "ALTER TABLE {scratch} COMMENT = {}",
        sql::literal(&marker(Role::Scratch, run_id))
    ))
    .await
    .context(|| format!("marking the scratch table {scratch}"))?;
    match_row_format(conn, names).await?;
    let mut verdicts = Vec::new();
    let mut accepted: Option<NativeAlgorithm> = None;
    for (algorithm, stmt) in statements {
        let result = match accepted {
            Some(cheaper) => ProbeResult::Skipped {
                reason: format!("{} was accepted", cheaper.keyword()),
            },
            None => match server::run_in_alter_mode(conn, &scratch, stmt).await? {
                Ok(()) => {
                    accepted = Some(*algorithm);
                    ProbeResult::Accepted
                }
                Err(mysql_async::Error::Server(e)) => ProbeResult::Refused {
                    code: e.code,
                    message: e.message,
                },
                Err(source) => {
                    return Err(Error::Sql {
                        context: format!(
                            "asking the server about ALGORITHM={} on {scratch}",
                            algorithm.keyword()
                        ),
                        source,
                    })
                }
            },
        };
        verdicts.push(Verdict {
            algorithm: *algorithm,
            result,
        });
    }
    Ok(verdicts)
}

/// `CREATE TABLE ... LIKE` gives the copy the server's current default row
/// format when the original's was implicit; a table created under another
/// `innodb_default_row_format` keeps its own, and the row format decides
/// some algorithms (MariaDB makes a column NULL instantly in REDUNDANT
/// only). Best effort: when the copy cannot take it, the probe goes on.
async fn match_row_format(conn: &mut Conn, names: &ShadowNames) -> Result<()> {
    let mut formats = Vec::new();
    for table in [&names.original, &names.scratch] {
        let format: Option<Option<String>> = conn
            .exec_first(
                "SELECT ROW_FORMAT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&names.database, table),
            )
            .await
            .context(|| format!("reading the row format of {}", names.q(table)))?;
        formats.push(format.flatten().unwrap_or_default());
    }
    let (original, scratch) = (&formats[0], &formats[1]);
    if original.eq_ignore_ascii_case(scratch) || !sql::is_plain_word(original) {
        return Ok(());
    }
    let stmt = format!(
        "ALTER TABLE {} ROW_FORMAT = {}",
        names.q(&names.scratch),
        original.to_ascii_uppercase()
    );
    if let Err(e) = conn.query_drop(&stmt).await {
        tracing::warn!(error = %e, original = %original, copy = %scratch, "the probe's empty copy cannot take the table's row format; asking anyway");
    }
    Ok(())
}

/// Drops the scratch table. This run created it (under the run lock, after
/// making sure no table of that name existed), so it goes by name even
/// when the ALTER replaced its marker comment.
async fn drop_scratch(conn: &mut Conn, names: &ShadowNames) -> Result<()> {
    let scratch = names.q(&names.scratch);
    conn.query_drop(format!("DROP TABLE IF EXISTS {scratch}"))
        .await
        .context(|| format!("dropping the scratch table {scratch}"))
}

/// The ALTER run natively on the original table.
pub struct Native<'a> {
    /// Server.
    pub connect: &'a ConnectConfig,
    /// Server family, for which errors mean "not with this algorithm".
    pub dialect: Dialect,
    /// Table names.
    pub names: &'a ShadowNames,
    /// The user's ALTER specification.
    pub alter: &'a str,
    /// The algorithm clause it runs with.
    pub algorithm: NativeAlgorithm,
    /// The longest one attempt waits for the table's metadata lock (and so
    /// blocks the clients queued behind it): `lock_wait_timeout`.
    pub lock_timeout: Duration,
    /// Attempts before giving up.
    pub attempts: u32,
    /// Comment that tags the tool's own statements.
    pub statement_tag: &'a str,
    /// Stop requests.
    pub stop: &'a Stop,
}

/// How a native run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum NativeOutcome {
    /// The server altered the table.
    Applied {
        /// Time of the statement that succeeded.
        statement_time: Duration,
        /// Attempts made.
        attempts: u32,
    },
    /// The table refused the algorithm clause (the empty copy had
    /// accepted it); the table is unchanged.
    Refused {
        /// Server error number.
        code: u16,
        /// Server error message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
}

impl Native<'_> {
    /// The statement, tagged.
    pub fn statement(&self) -> std::result::Result<String, String> {
        let table = self.names.q(&self.names.original);
        statement(&table, self.alter, self.algorithm).map(|s| format!("{s} {}", self.statement_tag))
    }

    /// Runs the ALTER with the algorithm clause, in the server's sql_mode
    /// and with `lock_wait_timeout` at the lock timeout. A lock wait that
    /// times out is retried after [`backoff`], up to `attempts` times;
    /// then it is a cut-over failure (exit code 5, table unchanged).
    pub async fn run(&self) -> Result<NativeOutcome> {
        let table = self.names.q(&self.names.original);
        let stmt = self.statement().map_err(|problem| {
            Error::refused(&table, problem, "Fix --alter; nothing was changed")
        })?;
        let mut conn = server::connect_session(&ConnectConfig {
            zero_date_checks: true,
            ..self.connect.clone()
        })
        .await?;
        let wait = self.lock_timeout.as_secs().max(1);
        let result = async {
            conn.query_drop(format!("SET SESSION lock_wait_timeout = {wait}"))
                .await
                .context(|| format!("bounding the lock wait of the native ALTER of {table}"))?;
            self.attempt_until_done(&mut conn, &stmt, wait).await
        }
        .await;
        let _ = conn.disconnect().await;
        result
    }

    async fn attempt_until_done(
        &self,
        conn: &mut Conn,
        stmt: &str,
        wait: u64,
    ) -> Result<NativeOutcome> {
        let table = self.names.q(&self.names.original);
        let keyword = self.algorithm.keyword();
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(reason) = self.stop.reason() {
                return Err(Error::Interrupted { table, reason });
            }
            let started = Instant::now();
            match server::run_in_alter_mode(conn, &table, stmt).await? {
                Ok(()) => {
                    return Ok(NativeOutcome::Applied {
                        statement_time: started.elapsed(),
                        attempts: attempt,
                    })
                }
                Err(mysql_async::Error::Server(e)) if self.dialect.refuses_algorithm(e.code) => {
                    return Ok(NativeOutcome::Refused {
                        code: e.code,
                        message: e.message,
                        attempts: attempt,
                    })
                }
                Err(mysql_async::Error::Server(e)) if LOCK_BUSY_CODES.contains(&e.code) => {
                    if attempt >= self.attempts {
                        return Err(Error::CutOver {
                            table,
                            message: format!(
                                "the native ALTER (ALGORITHM={keyword}) did not get the table's metadata lock \
                                 within {wait} s in any of {attempt} attempts (last: error {}: {}); a long \
                                 transaction or another DDL holds the table",
                                e.code, e.message
                            ),
                        });
                    }
                    let pause = crate::table_lock::retry_delay(attempt);
                    tracing::warn!(attempt, code = e.code, pause_ms = pause.as_millis() as u64, "the native ALTER waited too long for the table's lock; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        reason = self.stop.raised() => return Err(Error::Interrupted { table, reason }),
                    }
                }
                Err(source @ mysql_async::Error::Server(_)) => {
                    return Err(Error::Sql {
                        context: format!("the native ALTER (ALGORITHM={keyword}) of {table} failed"),
                        source,
                    })
                }
                Err(source) => {
                    return Err(Error::Sql {
                        context: format!(
                            "the native ALTER (ALGORITHM={keyword}) of {table} lost its connection, so \
                             whether it ran is unknown: compare SHOW CREATE TABLE {table} with the plan"
                        ),
                        source,
                    })
                }
            }
        }
    }
}

/// What the summary says about the native path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NativeReport {
    /// The algorithm clause the ALTER ran with.
    pub algorithm: NativeAlgorithm,
    /// True when the server altered the table natively (nothing copied);
    /// false when the table refused the clause and the rows were copied.
    pub applied: bool,
    /// Wall time of the native step, lock waits and pauses included.
    pub seconds: f64,
    /// Time of the statement that succeeded (clients queued behind its
    /// metadata lock waited at most this long), when it succeeded.
    pub statement_seconds: Option<f64>,
    /// Attempts made.
    pub attempts: u32,
    /// The table's refusal (`error N: message`), when it refused.
    pub refused: Option<String>,
}

impl NativeReport {
    /// The report of a native run that took `elapsed` in all.
    pub fn new(algorithm: NativeAlgorithm, outcome: &NativeOutcome, elapsed: Duration) -> Self {
        match outcome {
            NativeOutcome::Applied {
                statement_time,
                attempts,
            } => NativeReport {
                algorithm,
                applied: true,
                seconds: elapsed.as_secs_f64(),
                statement_seconds: Some(statement_time.as_secs_f64()),
                attempts: *attempts,
                refused: None,
            },
            NativeOutcome::Refused {
                code,
                message,
                attempts,
            } => NativeReport {
                algorithm,
                applied: false,
                seconds: elapsed.as_secs_f64(),
                statement_seconds: None,
                attempts: *attempts,
                refused: Some(format!("error {code}: {message}")),
            },
        }
    }
}

/// The statements of the probe and of the native run, for the plan.
pub fn describe_statements(
    names: &ShadowNames,
    dialect: Dialect,
    alter: &str,
    probe: &Probe,
) -> Vec<(String, String)> {
    let original = names.q(&names.original);
    let scratch = names.q(&names.scratch);
    let mut out = Vec::new();
    if probe.scratch_table.is_some() {
        let asks = dialect
            .native_algorithms()
            .iter()
            .filter_map(|a| statement(&scratch, alter, *a).ok())
            .map(|s| s.replace('\n', " "))
            .collect::<Vec<_>>()
            .join("; then, if refused: ");
        out.push((
            "probe".to_string(),
            format!("CREATE TABLE {scratch} LIKE {original}; {asks}; DROP TABLE {scratch}"),
        ));
    }
    if let Some(algorithm) = probe.native_algorithm {
        if let Ok(s) = statement(&original, alter, algorithm) {
            out.push((
                "native (--prefer-instant)".to_string(),
                s.replace('\n', " "),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maria() -> Dialect {
        Dialect::from_version_string("10.11.6-MariaDB-log")
    }

    fn mysql() -> Dialect {
        Dialect::from_version_string("8.4.3")
    }

    const T: &str = "`d`.`t`";

    #[test]
    fn appends_the_algorithm_on_a_line_of_its_own() {
        assert_eq!(
            statement(T, "ADD COLUMN x INT NULL", NativeAlgorithm::Instant).unwrap(),
            "ALTER TABLE `d`.`t` ADD COLUMN x INT NULL\n, ALGORITHM=INSTANT"
        );
        assert_eq!(
            statement(T, "  ADD INDEX i (a);  ", NativeAlgorithm::Nocopy).unwrap(),
            "ALTER TABLE `d`.`t` ADD INDEX i (a)\n, ALGORITHM=NOCOPY"
        );
    }

    #[test]
    fn a_trailing_line_comment_cannot_swallow_the_clause() {
        for alter in ["ADD COLUMN x INT -- note, more", "ADD COLUMN x INT # note"] {
            let s = statement(T, alter, NativeAlgorithm::Instant).unwrap();
            assert!(s.ends_with("\n, ALGORITHM=INSTANT"), "{s}");
        }
    }

    #[test]
    fn refuses_what_would_hide_or_double_the_clause() {
        // The user's own ALGORITHM= or LOCK= (inspect refuses them earlier).
        for alter in [
            "ADD COLUMN x INT, ALGORITHM=COPY",
            "ADD COLUMN x INT, LOCK = SHARED",
            "ADD COLUMN x INT /*!, ALGORITHM=INPLACE */",
        ] {
            assert!(
                statement(T, alter, NativeAlgorithm::Instant)
                    .unwrap_err()
                    .contains("already carries"),
                "{alter}"
            );
        }
        // Quotes that never close, an unterminated comment.
        assert!(statement(T, "ADD COLUMN `x INT", NativeAlgorithm::Instant).is_err());
        assert!(statement(T, "ADD COLUMN x INT /* c", NativeAlgorithm::Instant).is_err());
        assert!(statement(T, "  ;", NativeAlgorithm::Instant).is_err());
        // A ';' before a comment: the server would run the ALTER alone.
        assert!(
            statement(T, "ADD COLUMN x INT; -- note", NativeAlgorithm::Instant)
                .unwrap_err()
                .contains("';'")
        );
        // An executable comment left open reads the clause as inside it:
        // still the last clause, so the server decides (its syntax error).
        assert!(statement(T, "ADD COLUMN x INT /*!", NativeAlgorithm::Instant).is_ok());
        // A clause that is only mentioned in a string is not a clause.
        assert!(statement(
            T,
            "ADD COLUMN x VARCHAR(20) DEFAULT 'ALGORITHM=COPY'",
            NativeAlgorithm::Instant
        )
        .is_ok());
    }

    fn refused(algorithm: NativeAlgorithm, code: u16, message: &str) -> Verdict {
        Verdict {
            algorithm,
            result: ProbeResult::Refused {
                code,
                message: message.into(),
            },
        }
    }

    fn accepted(algorithm: NativeAlgorithm) -> Verdict {
        Verdict {
            algorithm,
            result: ProbeResult::Accepted,
        }
    }

    #[test]
    fn instant_accepted_is_the_native_algorithm() {
        let p = Probe::new(
            maria(),
            Some("`d`.`_t_ins`".into()),
            vec![
                accepted(NativeAlgorithm::Instant),
                Verdict {
                    algorithm: NativeAlgorithm::Nocopy,
                    result: ProbeResult::Skipped {
                        reason: "INSTANT was accepted".into(),
                    },
                },
            ],
        );
        assert_eq!(p.native_algorithm, Some(NativeAlgorithm::Instant));
        assert!(p.summary.starts_with("INSTANT possible"), "{}", p.summary);
        assert!(p.summary.contains("empty copy"));
    }

    #[test]
    fn nocopy_is_reported_but_not_run() {
        let p = Probe::new(
            maria(),
            Some("`d`.`_t_ins`".into()),
            vec![
                refused(NativeAlgorithm::Instant, 1846, "Reason: ADD INDEX"),
                accepted(NativeAlgorithm::Nocopy),
            ],
        );
        assert_eq!(p.native_algorithm, None);
        assert!(
            p.summary
                .contains("INSTANT refused (error 1846: Reason: ADD INDEX)")
                && p.summary.contains("NOCOPY possible")
                && p.summary.contains("the rows are copied"),
            "{}",
            p.summary
        );
    }

    #[test]
    fn refusals_are_quoted_and_mysql_has_no_nocopy() {
        let p = Probe::new(
            maria(),
            Some("s".into()),
            vec![
                refused(NativeAlgorithm::Instant, 1846, "Cannot change column type"),
                refused(NativeAlgorithm::Nocopy, 1846, "Cannot change column type"),
            ],
        );
        assert_eq!(p.native_algorithm, None);
        assert_eq!(
            p.summary,
            "not possible: INSTANT refused (error 1846: Cannot change column type); \
             NOCOPY refused (error 1846: Cannot change column type)"
        );
        let p = Probe::new(
            mysql(),
            Some("s".into()),
            vec![refused(NativeAlgorithm::Instant, 1845, "not supported")],
        );
        assert_eq!(
            p.summary,
            "not possible: INSTANT refused (error 1845: not supported); MySQL has no NOCOPY"
        );
        let p = Probe::new(
            mysql(),
            Some("s".into()),
            vec![accepted(NativeAlgorithm::Instant)],
        );
        assert_eq!(p.native_algorithm, Some(NativeAlgorithm::Instant));
    }

    #[test]
    fn an_old_server_is_not_asked() {
        let old = Dialect::from_version_string("10.2.44-MariaDB");
        let p = Probe::new(old, None, Vec::new());
        assert_eq!(p.native_algorithm, None);
        assert!(p.summary.starts_with("not asked"), "{}", p.summary);
    }

    #[test]
    fn the_plan_shows_the_probe_and_the_native_statement() {
        let names = ShadowNames::derive("d", "t", None);
        let maria_probe = Probe::new(
            maria(),
            Some(names.q(&names.scratch)),
            vec![accepted(NativeAlgorithm::Instant)],
        );
        let s = describe_statements(&names, maria(), "ADD x INT", &maria_probe);
        assert_eq!(s[0].0, "probe");
        assert_eq!(
            s[0].1,
            "CREATE TABLE `d`.`_t_ins` LIKE `d`.`t`; ALTER TABLE `d`.`_t_ins` ADD x INT , ALGORITHM=INSTANT; \
             then, if refused: ALTER TABLE `d`.`_t_ins` ADD x INT , ALGORITHM=NOCOPY; DROP TABLE `d`.`_t_ins`"
        );
        assert_eq!(
            s[1],
            (
                "native (--prefer-instant)".to_string(),
                "ALTER TABLE `d`.`t` ADD x INT , ALGORITHM=INSTANT".to_string()
            )
        );
        // MySQL: INSTANT only.
        let s = describe_statements(&names, mysql(), "ADD x INT", &maria_probe);
        assert!(!s[0].1.contains("NOCOPY"), "{}", s[0].1);
    }

    #[test]
    fn the_native_statement_carries_the_run_tag() {
        let names = ShadowNames::derive("d", "t", None);
        let stop = Stop::default();
        let connect = ConnectConfig {
            host: "h".into(),
            port: 1,
            socket: None,
            user: "u".into(),
            password: None,
            tls: None,
            zero_date_checks: false,
        };
        let native = Native {
            connect: &connect,
            dialect: mysql(),
            names: &names,
            alter: "ADD COLUMN x INT",
            algorithm: NativeAlgorithm::Instant,
            lock_timeout: Duration::from_secs(3),
            attempts: 3,
            statement_tag: "/* shadowcut:r1 */",
            stop: &stop,
        };
        assert_eq!(
            native.statement().unwrap(),
            "ALTER TABLE `d`.`t` ADD COLUMN x INT\n, ALGORITHM=INSTANT /* shadowcut:r1 */"
        );
    }

    #[test]
    fn reports_say_what_happened() {
        let applied = NativeReport::new(
            NativeAlgorithm::Instant,
            &NativeOutcome::Applied {
                statement_time: Duration::from_millis(20),
                attempts: 2,
            },
            Duration::from_secs(1),
        );
        assert!(applied.applied && applied.refused.is_none());
        assert_eq!(applied.attempts, 2);
        let json = serde_json::to_value(&applied).unwrap();
        assert_eq!(json["algorithm"], "INSTANT");
        let refused = NativeReport::new(
            NativeAlgorithm::Instant,
            &NativeOutcome::Refused {
                code: 1845,
                message: "not supported".into(),
                attempts: 1,
            },
            Duration::from_millis(5),
        );
        assert!(!refused.applied);
        assert_eq!(
            refused.refused.as_deref(),
            Some("error 1845: not supported")
        );
        let verdict = serde_json::to_value(refused_verdict()).unwrap();
        assert_eq!(verdict["algorithm"], "NOCOPY");
        assert_eq!(verdict["result"], "refused");
        assert_eq!(verdict["code"], 1846);
    }

    fn refused_verdict() -> Verdict {
        refused(NativeAlgorithm::Nocopy, 1846, "x")
    }
}
