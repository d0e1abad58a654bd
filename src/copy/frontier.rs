//! How far the copy has dispatched its chunks, shared with the tail.
//!
//! A change to a row that no chunk has covered yet needs no applying: the
//! chunk that covers it later reads the row as it is then, with a locking
//! read that waits for any writer still committing, so it sees this change
//! and every one before it. The tail therefore leaves such keys to the
//! copy, which spares the applier most of the work (and all of the share
//! locks) on a busy table during a long copy.
//!
//! Every change above the frontier is skipped, the delete half of a key
//! move too: since no change to an uncovered key is ever applied, the new
//! table holds no row of it, and there is nothing to delete. The frontier
//! only moves up, so a key the applier has seen stays covered.
//!
//! The rule holds only when Rust orders keys exactly as the server does,
//! so it is used for a single integer key column alone; any other key
//! leaves every change to the applier. The frontier is published before
//! the chunk that moves it reads a row, and the copy always ends with an
//! open-ended chunk, so no key above the last bounded chunk is ever left
//! to a copy that will not come.

use std::sync::Mutex;

use crate::schema::{single_integer as integer, KeyValue, SharedKey};

/// The upper bound of the chunks dispatched so far.
#[derive(Debug)]
pub struct CopyFrontier {
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No chunk dispatched yet: every key is still ahead of the copy.
    Pending,
    /// Chunks cover every key up to and including this one.
    UpTo(i128),
    /// Every key is covered, or keys are not ordered by Rust as the server
    /// orders them: every change is applied.
    Everything,
}

impl CopyFrontier {
    /// The frontier of a copy that has not started, along `key`. Only a
    /// single integer column lets changes ahead of the copy be skipped.
    pub fn new(key: &SharedKey) -> CopyFrontier {
        let integer_key =
            matches!(key.columns.as_slice(), [only] if only.column.int_width().is_some());
        CopyFrontier {
            state: Mutex::new(if integer_key {
                State::Pending
            } else {
                State::Everything
            }),
        }
    }

    /// A frontier that leaves every change to the applier (no copy runs).
    pub fn everything() -> CopyFrontier {
        CopyFrontier {
            state: Mutex::new(State::Everything),
        }
    }

    /// True when a change to `key` must be applied: a dispatched chunk
    /// already covers it (or skipping is off).
    pub fn covers(&self, key: &KeyValue) -> bool {
        match *self.lock() {
            State::Everything => true,
            State::Pending => integer(key).is_none(),
            State::UpTo(upper) => integer(key).is_none_or(|k| k <= upper),
        }
    }

    /// Records a chunk about to be read, up to `upper` inclusive (`None`:
    /// open-ended, the last chunk). Must be called before the chunk reads a
    /// row.
    pub fn dispatch(&self, upper: Option<&KeyValue>) {
        let mut state = self.lock();
        *state = match (*state, upper.and_then(|k| integer(k))) {
            (State::Everything, _) | (_, None) => State::Everything,
            (State::UpTo(old), Some(new)) => State::UpTo(old.max(new)),
            (State::Pending, Some(new)) => State::UpTo(new),
        };
    }

    /// Every key is covered from now on: the copy finished or gave up.
    pub fn cover_everything(&self) {
        *self.lock() = State::Everything;
    }

    /// A guard that covers every key when dropped: however the copy ends.
    pub fn covering_everything_on_exit(&self) -> CoverOnExit<'_> {
        CoverOnExit(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Covers every key of its frontier when dropped.
pub struct CoverOnExit<'a>(&'a CopyFrontier);

impl Drop for CoverOnExit<'_> {
    fn drop(&mut self) {
        self.0.cover_everything();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::{col, key};
    use crate::schema::KeyPart;

    fn int(v: i64) -> KeyValue {
        vec![KeyPart::Int(v)]
    }

    #[test]
    fn keys_ahead_of_the_dispatched_chunks_are_left_to_the_copy() {
        let frontier = CopyFrontier::new(&key(&[col("id", "int", None)]));
        assert!(!frontier.covers(&int(-5)), "nothing dispatched yet");
        frontier.dispatch(Some(&int(10)));
        assert!(frontier.covers(&int(-5)));
        assert!(frontier.covers(&int(10)));
        assert!(!frontier.covers(&int(11)));
        // Signed and unsigned values compare as numbers.
        assert!(!frontier.covers(&vec![KeyPart::UInt(u64::MAX)]));
        assert!(frontier.covers(&vec![KeyPart::UInt(3)]));
        frontier.dispatch(Some(&vec![KeyPart::UInt(20)]));
        assert!(frontier.covers(&int(20)) && !frontier.covers(&int(21)));
        // The open-ended last chunk covers everything.
        frontier.dispatch(None);
        assert!(frontier.covers(&vec![KeyPart::UInt(u64::MAX)]));
    }

    #[test]
    fn the_frontier_never_moves_back() {
        let frontier = CopyFrontier::new(&key(&[col("id", "bigint", None)]));
        frontier.dispatch(Some(&int(30)));
        frontier.dispatch(Some(&int(20)));
        assert!(frontier.covers(&int(30)));
        frontier.cover_everything();
        frontier.dispatch(Some(&int(40)));
        assert!(frontier.covers(&int(41)));
    }

    #[test]
    fn only_a_single_integer_key_skips_anything() {
        for k in [
            key(&[col(
                "name",
                "varchar",
                Some(("utf8mb4", "utf8mb4_general_ci")),
            )]),
            key(&[col("a", "int", None), col("b", "int", None)]),
            key(&[col("f", "double", None)]),
        ] {
            let frontier = CopyFrontier::new(&k);
            assert!(frontier.covers(&int(1_000_000)), "{k:?}");
            assert!(frontier.covers(&vec![KeyPart::Bytes(b"zz".to_vec())]));
        }
        // A bound the rule cannot compare turns skipping off.
        let frontier = CopyFrontier::new(&key(&[col("id", "int", None)]));
        frontier.dispatch(Some(&vec![KeyPart::Bytes(b"7".to_vec())]));
        assert!(frontier.covers(&int(1_000_000)));
    }
}
