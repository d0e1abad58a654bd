//! The lock that holds writers of the original off while readers go on,
//! taken by the checksum (to open its snapshots) and the cut-over (for the
//! final drain and the swap).
//!
//! It is `FLUSH TABLES t WITH READ LOCK`, not `LOCK TABLES t READ`. Both
//! leave `t` readable and block its writers, but they differ in how they
//! queue: `LOCK TABLES ... READ` asks for a shared-read-only metadata lock,
//! and a *pending* request of that kind does not stop new writers from
//! entering. Under a steady write load some transaction always holds the
//! table, so the request waits until its timeout, attempt after attempt
//! (measured here: 16 sysbench writers, 2 of 3 attempts of 3 s timed out).
//! `FLUSH TABLES t WITH READ LOCK` asks for a shared-no-write lock, which
//! new writers queue behind while it waits: it gets the table as soon as the
//! transactions already in it commit (30–50 ms under the same load) and
//! still lets readers in, so the drain can re-read rows and the cut-over's
//! probe can tell a queued RENAME from a free table. The statement is never
//! written to the binary log. It needs the RELOAD privilege.
//!
//! InnoDB handles it as `FOR EXPORT`: once granted, it writes the table's
//! dirty pages to disk before the statement returns, and the queued writers
//! wait for that too (`docs/design.md`, "Which lock holds writers off").

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::error::Result;
use crate::server::ConnectConfig;

/// A connection holding writers off one table. Dropping it without
/// [`WriteFence::release`] closes the connection, which releases the lock
/// just the same.
pub struct WriteFence {
    conn: Conn,
    table: String,
}

impl WriteFence {
    /// Opens a connection and takes the lock on `table` (quoted), waiting at
    /// most `timeout` for the transactions in the table to finish. Meanwhile
    /// new writers queue behind the request. `Ok(Err(reason))` when the
    /// lock was not obtained: worth another attempt.
    pub async fn acquire(
        connect: &ConnectConfig,
        table: &str,
        timeout: Duration,
        statement_tag: &str,
    ) -> Result<std::result::Result<WriteFence, String>> {
        let mut conn = crate::server::connect_session(connect).await?;
        let seconds = timeout.as_secs().max(1);
        let taken = async {
            conn.query_drop(format!("SET SESSION lock_wait_timeout = {seconds}"))
                .await?;
            conn.query_drop(format!(
                "FLUSH TABLES {table} WITH READ LOCK {statement_tag}"
            ))
            .await
        }
        .await;
        match taken {
            Ok(()) => Ok(Ok(WriteFence {
                conn,
                table: table.to_string(),
            })),
            Err(e) => {
                let _ = conn.disconnect().await;
                Ok(Err(format!("could not lock {table}: {e}")))
            }
        }
    }

    /// The holding connection's id (to kill it from elsewhere).
    pub fn id(&self) -> u32 {
        self.conn.id()
    }

    /// Proves the lock is still held: it is bound to the session, and only
    /// a session holding it may read the table in lock mode.
    pub async fn check_held(&mut self) -> std::result::Result<(), String> {
        self.conn
            .query_drop(format!("SELECT 1 FROM {} LIMIT 0", self.table))
            .await
            .map_err(|e| format!("the connection holding {} lost its lock: {e}", self.table))
    }

    /// A server-side sleep while the lock is held, so that tests can find
    /// the holding connection (its statement) and kill it.
    pub async fn sleep_for_test(&mut self, delay: Duration) -> std::result::Result<(), String> {
        self.conn
            .query_drop(format!("DO SLEEP({})", delay.as_secs_f64()))
            .await
            .map_err(|e| format!("the connection holding {} failed: {e}", self.table))
    }

    /// Releases the lock; writers go on.
    pub async fn release(mut self) -> std::result::Result<(), mysql_async::Error> {
        let unlocked = self.conn.query_drop("UNLOCK TABLES").await;
        let _ = self.conn.disconnect().await;
        unlocked
    }
}

/// The pause after failed lock attempt `attempt` (from 1): 250 ms
/// doubling with every attempt, at most 8 s, half of it fixed and half
/// scaled by `jitter` (in `[0, 1]`), so that a retry does not meet the same
/// burst of writers, nor another client retrying in step.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let full = (250u64 << exponent).min(8_000);
    let half = full / 2;
    let jittered = (half as f64 * jitter.clamp(0.0, 1.0)) as u64;
    Duration::from_millis(half + jittered)
}

/// [`backoff`] with a random jitter.
pub fn retry_delay(attempt: u32) -> Duration {
    backoff(attempt, jitter())
}

/// A random number in `[0, 1)`, from the standard library's per-process
/// random hash keys (no crate for one number per retry).
fn jitter() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_a_cap() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(125));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(250));
        assert_eq!(backoff(2, 0.0), Duration::from_millis(250));
        assert_eq!(backoff(3, 0.5), Duration::from_millis(750));
        assert_eq!(backoff(20, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(u32::MAX, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(0, 0.0), Duration::from_millis(125));
        let delays: std::collections::HashSet<Duration> = (0..20).map(|_| retry_delay(4)).collect();
        assert!(delays.len() > 1, "no jitter");
        assert!(delays
            .iter()
            .all(|d| *d >= backoff(4, 0.0) && *d <= backoff(4, 1.0)));
    }
}
