//! How far the copy has dispatched its chunks, shared with the tail.
//!
//! A change to a row that no chunk has covered yet needs no applying: the
//! chunk that covers it later reads the row as it is then, with a locking
//! read that waits for any writer still committing, or with a plain read
//! after a fence that makes every change binlogged before it visible, so
//! it sees this change and every one before it. The tail therefore leaves
//! such keys to the copy, which spares the applier most of the work (and
//! all of the share locks) on a busy table during a long copy.
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
//!
//! A chunk copied by a plain read (no share locks: see `docs/design.md`,
//! "The copy reads without locks") *holds* its key range while it runs:
//! the applier leaves changes to those keys in the buffer until the
//! chunk's rows are committed ([`HeldRange`]). A change committed after
//! the chunk's snapshot then always reaches the new table after the
//! chunk's stale copy of the row, whatever order the two would otherwise
//! take.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::schema::{single_integer as integer, KeyValue, SharedKey};

/// The upper bound of the chunks dispatched so far.
#[derive(Debug)]
pub struct CopyFrontier {
    state: Mutex<State>,
    holds: Mutex<Vec<Hold>>,
    next_hold: AtomicU64,
}

/// A key range held by a chunk: above `above` (exclusive), up to `up_to`
/// (inclusive); `None` is open.
#[derive(Debug, Clone, Copy)]
struct Hold {
    id: u64,
    above: Option<i128>,
    up_to: Option<i128>,
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
        CopyFrontier::with_state(if key.is_single_integer() {
            State::Pending
        } else {
            State::Everything
        })
    }

    /// A frontier that leaves every change to the applier (no copy runs).
    pub fn everything() -> CopyFrontier {
        CopyFrontier::with_state(State::Everything)
    }

    fn with_state(state: State) -> CopyFrontier {
        CopyFrontier {
            state: Mutex::new(state),
            holds: Mutex::new(Vec::new()),
            next_hold: AtomicU64::new(0),
        }
    }

    /// Holds the keys of a chunk from `lower` (exclusive) to `upper`
    /// (inclusive), open where `None`, until the guard is dropped; `None`
    /// when a bound is not a single integer (such a chunk must lock what
    /// it reads instead).
    pub fn hold(
        &self,
        lower: Option<&KeyValue>,
        upper: Option<&KeyValue>,
    ) -> Option<HeldRange<'_>> {
        let bound = |key: Option<&KeyValue>| match key {
            None => Some(None),
            Some(key) => integer(key).map(Some),
        };
        let (above, up_to) = (bound(lower)?, bound(upper)?);
        let id = self.next_hold.fetch_add(1, Ordering::Relaxed);
        self.lock_holds().push(Hold { id, above, up_to });
        Some(HeldRange { frontier: self, id })
    }

    /// The ranges held now, to test many keys against.
    pub fn held(&self) -> HeldKeys {
        HeldKeys(self.lock_holds().clone())
    }

    fn lock_holds(&self) -> std::sync::MutexGuard<'_, Vec<Hold>> {
        self.holds.lock().unwrap_or_else(|e| e.into_inner())
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

/// A chunk's key range, held from the applier until dropped.
#[derive(Debug)]
pub struct HeldRange<'a> {
    frontier: &'a CopyFrontier,
    id: u64,
}

impl Drop for HeldRange<'_> {
    fn drop(&mut self) {
        self.frontier.lock_holds().retain(|h| h.id != self.id);
    }
}

/// The key ranges held at one moment.
#[derive(Debug, Clone, Default)]
pub struct HeldKeys(Vec<Hold>);

impl HeldKeys {
    /// True when `key` is in a held range. Only single integer keys are
    /// ever held.
    pub fn contains(&self, key: &KeyValue) -> bool {
        let Some(key) = integer(key) else {
            return false;
        };
        self.0.iter().any(|h| {
            h.above.is_none_or(|above| key > above) && h.up_to.is_none_or(|up_to| key <= up_to)
        })
    }

    /// True when no range is held.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
    fn held_ranges_hold_their_keys_until_dropped() {
        let frontier = CopyFrontier::new(&key(&[col("id", "bigint", None)]));
        assert!(frontier.held().is_empty());
        let first = frontier.hold(None, Some(&int(10))).expect("integer bounds");
        let middle = frontier.hold(Some(&int(20)), Some(&vec![KeyPart::UInt(30)]));
        let last = frontier.hold(Some(&int(40)), None);
        let held = frontier.held();
        for k in [i64::MIN, 10, 21, 30, 41, i64::MAX] {
            assert!(held.contains(&int(k)), "{k}");
        }
        assert!(held.contains(&vec![KeyPart::UInt(u64::MAX)]));
        for k in [11, 20, 31, 40] {
            assert!(!held.contains(&int(k)), "{k}");
        }
        drop((first, last));
        let held = frontier.held();
        assert!(!held.contains(&int(5)) && !held.contains(&int(50)));
        assert!(held.contains(&int(25)));
        drop(middle);
        assert!(frontier.held().is_empty());
        // A bound the rule cannot compare holds nothing: that chunk locks.
        assert!(frontier
            .hold(Some(&vec![KeyPart::Bytes(b"7".to_vec())]), None)
            .is_none());
        assert!(frontier.held().is_empty());
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
