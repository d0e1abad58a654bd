//! Test-only delays and faults at the dangerous points of a migration. They
//! act only in builds with the `failpoints` feature; release builds ignore
//! them. The binary reads them from `SHADOWCUT_FAILPOINTS`
//! (`name=value,...`), tests set them on the config directly.

use std::time::Duration;

/// Faults to inject. All off by default.
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    /// Skip the n-th row event of the migrated table (1-based): proves that
    /// the comparison in the tests can fail.
    pub drop_row_event: Option<u64>,
    /// Pause before each batch applied to the new table.
    pub apply_delay: Option<Duration>,
    /// Pause after the cut-over lock is taken, before the swap is issued.
    pub lock_delay: Option<Duration>,
    /// Pause before the RENAME is issued by the swap connection.
    pub rename_delay: Option<Duration>,
    /// Pause after the locked drain, before the sentinel is dropped: a
    /// server-side sleep on the write fence's connection, which tests find
    /// and kill; its failure is left for the checks that follow to notice.
    pub drained_delay: Option<Duration>,
    /// Pause before each copied chunk.
    pub chunk_delay: Option<Duration>,
    /// Pause of the copy statement at each row it reads (`SLEEP` in its
    /// WHERE clause): a chunk's rows are then written one by one, long
    /// after the statement's snapshot, the window in which a change
    /// committed after the snapshot must not reach the new table before
    /// the chunk's stale copy of the row.
    pub copy_row_delay: Option<Duration>,
    /// Pause of the apply loop before it takes each batch (keys stay in
    /// the buffer meanwhile; a stop request cuts it short).
    pub apply_loop_delay: Option<Duration>,
    /// The re-read of changed rows matches nothing: a key predicate defect,
    /// which the shortfall check must catch.
    pub reread_mismatch: bool,
    /// In the first n cut-over attempts, the locked drain stalls after
    /// taking a batch, until the attempt's timeout cancels it.
    pub stall_drain_attempts: Option<u64>,
    /// In the first n cut-over attempts, stall after the new table got its
    /// final comment, before the RENAME, until the timeout.
    pub stall_swap_attempts: Option<u64>,
    /// Keys per batch of the locked drain.
    pub drain_batch_keys: Option<u64>,
    /// Keys per batch of the apply loop (a generation is one batch per
    /// connection): tiny batches make parallel generations of every kind
    /// of key happen on small tables.
    pub apply_batch_keys: Option<u64>,
    /// Go to the cut-over without first catching up.
    pub skip_converge: bool,
    /// The checksum reads every row of the new table one higher: every
    /// chunk keeps differing, however often it is copied again.
    pub checksum_mismatch: bool,
    /// Pause before the checksum copies a differing chunk again.
    pub repair_delay: Option<Duration>,
    /// The copy reads as it does on MySQL, whose commits are not visible
    /// in binlog order: share-locked NOWAIT reads, no fence, and a single
    /// integer key still leaves the changes ahead of the copy to it.
    pub locking_copy: bool,
    /// The server refuses every statement that tidies up after the swap.
    pub fail_tidy: bool,
}

impl Failpoints {
    /// True when this build acts on failpoints.
    pub const ENABLED: bool = cfg!(feature = "failpoints");

    /// Parses `drop_row_event=5,apply_delay_ms=200,...`.
    pub fn parse(spec: &str) -> Result<Failpoints, String> {
        let mut f = Failpoints::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("failpoint {item:?} needs name=value"))?;
            let n: u64 = value
                .parse()
                .map_err(|_| format!("failpoint {name} needs a number, got {value:?}"))?;
            let ms = Some(Duration::from_millis(n));
            match name {
                "drop_row_event" => f.drop_row_event = Some(n),
                "apply_delay_ms" => f.apply_delay = ms,
                "lock_delay_ms" => f.lock_delay = ms,
                "rename_delay_ms" => f.rename_delay = ms,
                "drained_delay_ms" => f.drained_delay = ms,
                "chunk_delay_ms" => f.chunk_delay = ms,
                "copy_row_delay_ms" => f.copy_row_delay = ms,
                "apply_loop_delay_ms" => f.apply_loop_delay = ms,
                "reread_mismatch" => f.reread_mismatch = n != 0,
                "stall_drain_attempts" => f.stall_drain_attempts = Some(n),
                "stall_swap_attempts" => f.stall_swap_attempts = Some(n),
                "drain_batch_keys" => f.drain_batch_keys = Some(n),
                "apply_batch_keys" => f.apply_batch_keys = Some(n),
                "skip_converge" => f.skip_converge = n != 0,
                "checksum_mismatch" => f.checksum_mismatch = n != 0,
                "repair_delay_ms" => f.repair_delay = ms,
                "locking_copy" => f.locking_copy = n != 0,
                "fail_tidy" => f.fail_tidy = n != 0,
                other => return Err(format!("unknown failpoint {other}")),
            }
        }
        Ok(f)
    }

    /// Reads `SHADOWCUT_FAILPOINTS` in failpoint builds.
    pub fn from_env() -> Result<Failpoints, String> {
        match std::env::var("SHADOWCUT_FAILPOINTS") {
            Ok(spec) if Self::ENABLED => Self::parse(&spec),
            _ => Ok(Failpoints::default()),
        }
    }
}

/// Sleeps for `delay` in failpoint builds; does nothing otherwise.
pub async fn pause(delay: Option<Duration>) {
    if Failpoints::ENABLED {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
    }
}

/// In failpoint builds, stalls (for an hour: until cancelled) when
/// `attempt` is among the first `attempts`.
pub async fn stall_in_attempt(attempts: Option<u64>, attempt: u32) {
    if Failpoints::ENABLED && attempts.is_some_and(|n| u64::from(attempt) <= n) {
        tracing::warn!(attempt, "failpoint: stalling the cut-over attempt");
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

/// True in failpoint builds when `flag` is set.
pub fn on(flag: bool) -> bool {
    Failpoints::ENABLED && flag
}

/// True when the failpoint asks to drop the `n`-th event.
pub fn drops_event(failpoint: Option<u64>, n: u64) -> bool {
    Failpoints::ENABLED && failpoint == Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let f = Failpoints::parse("drop_row_event=7, lock_delay_ms=250").unwrap();
        assert_eq!(f.drop_row_event, Some(7));
        assert_eq!(f.lock_delay, Some(Duration::from_millis(250)));
        let f = Failpoints::parse("apply_batch_keys=3").unwrap();
        assert_eq!(f.apply_batch_keys, Some(3));
        assert!(Failpoints::parse("nope=1").is_err());
        assert!(Failpoints::parse("apply_delay_ms").is_err());
    }
}
