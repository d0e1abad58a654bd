//! How many rows the next copy chunk takes. With a target time per chunk
//! (`--chunk-time`), the size follows the time the last chunk took: chunks
//! long enough that per-statement overhead does not dominate, short enough
//! that the locks a chunk holds (and the replica lag it causes) stay brief
//! whatever the row width and the server's load. A fixed `--chunk-size`
//! turns adaptation off.

use std::time::Duration;

/// Smallest adaptive chunk.
pub const MIN_ROWS: u64 = 100;
/// Largest adaptive chunk.
pub const MAX_ROWS: u64 = 200_000;
/// A chunk may grow by at most this factor from one chunk to the next.
const GROWTH: f64 = 1.5;

/// The chunk size, adapted to a target time per chunk or fixed.
#[derive(Debug, Clone)]
pub struct ChunkSizer {
    rows: u64,
    target: Option<Duration>,
}

impl ChunkSizer {
    /// Starts at `initial` rows; adapts towards `target` per chunk when
    /// given, otherwise stays at `initial`.
    pub fn new(initial: u64, target: Option<Duration>) -> ChunkSizer {
        let rows = match target {
            Some(_) => initial.clamp(MIN_ROWS, MAX_ROWS),
            None => initial.max(1),
        };
        ChunkSizer { rows, target }
    }

    /// True when the size follows a target time per chunk.
    pub fn adapts(&self) -> bool {
        self.target.is_some()
    }

    /// Rows for the next chunk.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Learns from a chunk of `rows` rows (as requested; the last chunk may
    /// hold fewer) that took `took`. Growth is gradual (at most 1.5× a
    /// step), so that one fast chunk over a sparse range cannot make the
    /// next one huge; an overshoot is cut back at once to what the last
    /// chunk's speed says fits the target.
    pub fn observe(&mut self, rows: u64, took: Duration) {
        let Some(target) = self.target else { return };
        if rows == 0 {
            return;
        }
        let per_row = took.as_secs_f64().max(1e-6) / rows as f64;
        let fits = target.as_secs_f64() / per_row;
        let next = fits.min(self.rows as f64 * GROWTH);
        self.rows = (next as u64).clamp(MIN_ROWS, MAX_ROWS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that copies `rows_per_s`, plus a fixed cost per statement.
    fn took(rows: u64, rows_per_s: f64) -> Duration {
        Duration::from_secs_f64(0.002 + rows as f64 / rows_per_s)
    }

    #[test]
    fn converges_to_the_target_time_growing_gradually() {
        let target = Duration::from_millis(500);
        let mut sizer = ChunkSizer::new(1000, Some(target));
        let mut sizes = vec![sizer.rows()];
        for _ in 0..30 {
            let rows = sizer.rows();
            sizer.observe(rows, took(rows, 40_000.0));
            sizes.push(sizer.rows());
        }
        for pair in sizes.windows(2) {
            assert!(pair[1] as f64 <= pair[0] as f64 * 1.5 + 1.0, "{sizes:?}");
        }
        let last = took(sizer.rows(), 40_000.0);
        assert!(
            (last.as_secs_f64() - 0.5).abs() < 0.05,
            "{sizes:?} ends at {last:?}"
        );
    }

    #[test]
    fn an_overshoot_is_cut_back_at_once() {
        let mut sizer = ChunkSizer::new(20_000, Some(Duration::from_millis(500)));
        // The server slows down tenfold (a load starts).
        sizer.observe(20_000, took(20_000, 4_000.0));
        assert!(took(sizer.rows(), 4_000.0) <= Duration::from_millis(510));
        assert!(sizer.rows() < 2_100, "{}", sizer.rows());
    }

    #[test]
    fn stays_within_bounds() {
        let mut sizer = ChunkSizer::new(1000, Some(Duration::from_millis(500)));
        for _ in 0..100 {
            let rows = sizer.rows();
            sizer.observe(rows, Duration::from_nanos(1));
        }
        assert_eq!(sizer.rows(), MAX_ROWS);
        sizer.observe(MAX_ROWS, Duration::from_secs(3600));
        assert_eq!(sizer.rows(), MIN_ROWS);
    }

    #[test]
    fn a_fixed_size_never_changes() {
        let mut sizer = ChunkSizer::new(7, None);
        sizer.observe(7, Duration::from_secs(10));
        sizer.observe(7, Duration::from_nanos(1));
        assert_eq!(sizer.rows(), 7);
    }
}
