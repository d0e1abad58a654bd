//! Checkpoint and resume: what a killed run left behind (the new table and
//! the changelog's recorded state), checked and turned into the point a new
//! run continues from with `--resume`.
//!
//! The changelog keeps, at short intervals, the copy's contiguous low
//! watermark (every chunk at or below it is committed to the new table) and
//! a checkpoint: a transaction boundary of the binlog every change read
//! before which is applied to the new table. A resumed run reads the binlog
//! again from the checkpoint with the copy frontier at the watermark, and
//! copies again everything above the watermark after removing it from the
//! new table. Re-applying a change is harmless (a change is applied by
//! re-reading the row), so the two need not have been recorded together.

use mysql_async::prelude::*;
use mysql_async::Conn;
use serde::{Deserialize, Serialize};

use crate::copy::CopyStart;
use crate::error::{Error, Result, SqlContext};
use crate::index_build::DeferredIndexes;
use crate::schema::{SharedKey, Side};
use crate::server::BinlogPosition;
use crate::shadow::{self, hint, Ghost, Role, ShadowNames};

/// What a resumed run needs of the new table beyond its rows, recorded in
/// the changelog's `state:migration` row when the run begins.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedGhost {
    /// Facts of the new table learnt when it was created.
    pub ghost: Ghost,
    /// Secondary indexes taken off the new table until the copy is done.
    pub deferred: Option<DeferredIndexes>,
}

/// A killed run's state, checked and ready to continue from.
#[derive(Debug, Clone)]
pub struct Leftover {
    /// The killed run's id: the markers of its tables carry it, and the
    /// resumed run goes on under it.
    pub run_id: String,
    /// The new table's facts and deferred indexes.
    pub recorded: RecordedGhost,
    /// Where the copy continues.
    pub copied: CopyStart,
    /// Where the binlog is read again from.
    pub checkpoint: BinlogPosition,
    /// The highest sync marker or probe the killed run wrote: the tail
    /// reads them again, so this run numbers its own above.
    pub numbered_up_to: u64,
}

/// Batch size when rows above the watermark are removed.
const TRIM_BATCH: u64 = 10_000;

impl Leftover {
    /// Finds and checks what a killed migration of `names` left: the new
    /// table and changelog with our markers, of one run, for the same
    /// ALTER, with a recorded checkpoint. Anything else is a refusal that
    /// says what was found.
    pub async fn find(conn: &mut Conn, names: &ShadowNames, alter: &str) -> Result<Leftover> {
        let table = names.q(&names.original);
        let refuse = |problem: String, remedy: &str| Error::refused(&table, problem, remedy);
        let ghost_comment = shadow::table_comment(conn, &names.database, &names.ghost).await?;
        let ghost_run = match &ghost_comment {
            Some(c) => shadow::run_of_commented(conn, names, &names.ghost, Role::Ghost, c).await?,
            None => None,
        };
        let Some(run_id) = ghost_run else {
            let old = shadow::table_comment(conn, &names.database, &names.old).await?;
            if old
                .as_deref()
                .is_some_and(|c| shadow::is_marked(c, Role::Old))
            {
                return Err(refuse(
                    format!(
                        "there is nothing to resume: the killed run completed the swap ({table} has the new \
                         schema, the original is kept as {})",
                        names.q(&names.old)
                    ),
                    "Check the table, then drop the old one when you no longer need it",
                ));
            }
            return Err(refuse(
                format!(
                    "there is nothing to resume: {} is not a new table left by a shadowcut run",
                    names.q(&names.ghost)
                ),
                "Run the migration without --resume",
            ));
        };
        let changelog_comment =
            shadow::table_comment(conn, &names.database, &names.changelog).await?;
        if changelog_comment.as_deref() != Some(shadow::marker(Role::Changelog, &run_id).as_str()) {
            return Err(refuse(
                format!(
                    "{} has no changelog {} of the same run: the run was killed before it recorded \
                     anything to resume from",
                    names.q(&names.ghost),
                    names.q(&names.changelog)
                ),
                "Run without --resume and with --initially-drop-ghost-table",
            ));
        }
        if ghost_comment.is_some_and(|c| shadow::run_of(&c, Role::Ghost).is_none()) {
            // Known by its final comment (a cut-over was killed after it
            // set it): marked again, so that every later step knows it.
            shadow::restore_ghost_marker(conn, names, &run_id).await?;
        }
        let rows: Vec<(String, String)> = conn
            .query(format!(
                "SELECT hint, value FROM {}",
                names.q(&names.changelog)
            ))
            .await
            .context(|| {
                format!(
                    "reading the recorded state in {}",
                    names.q(&names.changelog)
                )
            })?;
        let value = |hint: &str| {
            rows.iter()
                .find(|(h, _)| h == hint)
                .map(|(_, v)| v.as_str())
        };
        let description: serde_json::Value = value(hint::MIGRATION)
            .and_then(|v| serde_json::from_str(v).ok())
            .ok_or_else(|| {
                refuse(
                    "the killed run recorded nothing to resume from".into(),
                    "Start over with --initially-drop-ghost-table",
                )
            })?;
        let recorded_alter = description["alter"].as_str().unwrap_or_default();
        if normalized(recorded_alter) != normalized(alter) {
            return Err(refuse(
                format!("the killed run was for the ALTER `{recorded_alter}`, not `{alter}`"),
                "Resume with the same --alter, or start over with --initially-drop-ghost-table",
            ));
        }
        let recorded: RecordedGhost = serde_json::from_value(description["resume"].clone())
            .map_err(|e| {
                refuse(
                    format!("the changelog does not record the new table's state ({e})"),
                    "Start over with --initially-drop-ghost-table",
                )
            })?;
        let checkpoint = value(hint::APPLIED_POSITION)
            .or_else(|| value(hint::START_POSITION))
            .and_then(parse_position)
            .ok_or_else(|| {
                refuse(
                    "the killed run recorded no binlog position to read on from".into(),
                    "Start over with --initially-drop-ghost-table",
                )
            })?;
        let copied = match value(hint::COPY_WATERMARK) {
            None => CopyStart::Beginning,
            Some(v) => parse_watermark(v).ok_or_else(|| {
                refuse(
                    format!("the recorded copy watermark `{v}` cannot be read"),
                    "Start over with --initially-drop-ghost-table",
                )
            })?,
        };
        let numbered_up_to = [hint::SYNC_MARKER, hint::TAIL_PROBE]
            .into_iter()
            .filter_map(|h| value(h).and_then(|v| v.parse::<u64>().ok()))
            .max()
            .unwrap_or(0);
        Ok(Leftover {
            run_id,
            recorded,
            copied,
            checkpoint,
            numbered_up_to,
        })
    }

    /// Where the copy continues, given how the new table's key compares:
    /// rows above the watermark are found with the new table's own
    /// comparison, so when the ALTER changes how the key compares the copy
    /// starts over.
    pub fn copy_start(&self, key: &SharedKey) -> CopyStart {
        // A widened integer, more digits after the point, an ENUM with a
        // member appended: the key compares alike, the watermark holds.
        let compares_alike = key
            .columns
            .iter()
            .all(|k| k.change() == crate::schema::KeyChange::Alike);
        match &self.copied {
            CopyStart::After(_) if !compares_alike => {
                tracing::warn!("the ALTER changes how the key compares: the copy starts over");
                CopyStart::Beginning
            }
            other => other.clone(),
        }
    }
}

/// Refuses a checkpoint whose binlog file the server no longer has.
pub async fn check_binlog_kept(
    conn: &mut Conn,
    names: &ShadowNames,
    checkpoint: &BinlogPosition,
) -> Result<()> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .context(|| "listing the binary logs".to_string())?;
    let kept = rows
        .into_iter()
        .filter_map(|row| row.get::<String, _>(0))
        .any(|file| file == checkpoint.file);
    if kept {
        return Ok(());
    }
    Err(Error::refused(
        &names.q(&names.original),
        format!(
            "the binlog file {} the run must read on from has been purged",
            checkpoint.file
        ),
        "Start over with --initially-drop-ghost-table, and keep binlogs longer \
         (binlog_expire_logs_seconds) than a migration may stay stopped",
    ))
}

/// Removes the new table's rows the copy will copy again: everything above
/// the watermark, or everything when the copy starts over.
pub async fn trim_ghost(
    conn: &mut Conn,
    names: &ShadowNames,
    key: &SharedKey,
    start: &CopyStart,
) -> Result<u64> {
    let (predicate, params) = match start {
        CopyStart::Done => return Ok(0),
        CopyStart::Beginning => ("1 = 1".to_string(), Vec::new()),
        CopyStart::After(watermark) => key.greater_than(Side::Ghost, watermark),
    };
    let ghost = names.q(&names.ghost);
    let mut removed = 0;
    loop {
        conn.exec_drop(
            format!("DELETE FROM {ghost} WHERE {predicate} LIMIT {TRIM_BATCH}"),
            params.clone(),
        )
        .await
        .context(|| format!("removing rows above the copy watermark from {ghost}"))?;
        let affected = conn.affected_rows();
        removed += affected;
        if affected < TRIM_BATCH {
            return Ok(removed);
        }
    }
}

/// An ALTER as compared between runs: trimmed, without a final `;`.
fn normalized(alter: &str) -> &str {
    alter.trim().trim_end_matches(';').trim_end()
}

/// `file:pos`.
fn parse_position(text: &str) -> Option<BinlogPosition> {
    let (file, pos) = text.rsplit_once(':')?;
    Some(BinlogPosition {
        file: file.to_string(),
        pos: pos.parse().ok()?,
    })
}

/// `"complete"`, or the JSON of the last key of the contiguous copied run.
fn parse_watermark(text: &str) -> Option<CopyStart> {
    if text == "\"complete\"" {
        return Some(CopyStart::Done);
    }
    serde_json::from_str(text).ok().map(CopyStart::After)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::KeyPart;

    #[test]
    fn reads_positions_and_watermarks() {
        assert_eq!(
            parse_position("binlog.000012:4711"),
            Some(BinlogPosition {
                file: "binlog.000012".into(),
                pos: 4711
            })
        );
        assert_eq!(parse_position("binlog.000012"), None);
        assert_eq!(parse_watermark("\"complete\""), Some(CopyStart::Done));
        let key = vec![KeyPart::Int(42)];
        let written = serde_json::to_string(&key).unwrap();
        assert_eq!(parse_watermark(&written), Some(CopyStart::After(key)));
        assert_eq!(parse_watermark("{broken"), None);
    }

    #[test]
    fn compares_alters_without_the_final_semicolon() {
        assert_eq!(normalized(" ADD COLUMN c INT; "), "ADD COLUMN c INT");
    }
}
