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

use std::time::{Duration, SystemTime};

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

/// The pause before lock attempt `attempt + 1`: exponential from 250 ms,
/// capped at 8 s, with jitter (a random half of it left out), so that a
/// retry does not meet the same burst of writers, nor another tool retrying
/// in step.
pub fn retry_delay(attempt: u32) -> Duration {
    let full = Duration::from_millis(250)
        .saturating_mul(1 << attempt.clamp(1, 6).saturating_sub(1))
        .min(Duration::from_secs(8));
    let noise = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let kept = 0.5 + f64::from(noise % 1000) / 2000.0;
    full.mul_f64(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_exponentially_within_bounds_and_jitter() {
        for attempt in 0..20 {
            let d = retry_delay(attempt);
            let full = 250u64 << attempt.clamp(1, 6).saturating_sub(1);
            let full = full.min(8000) as u128;
            assert!(
                d.as_millis() >= full / 2 && d.as_millis() <= full,
                "{attempt}: {d:?}"
            );
        }
        assert!(retry_delay(6) > retry_delay(1) * 4);
        let distinct: std::collections::HashSet<_> = (0..50)
            .map(|_| {
                std::thread::sleep(Duration::from_micros(37));
                retry_delay(3)
            })
            .collect();
        assert!(distinct.len() > 1, "no jitter");
    }
}
