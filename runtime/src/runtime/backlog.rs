//! The backlog of a worker runtime: instances `start` created while every
//! worker was busy. Each is written already claimed by this runtime (its
//! lease runs one TTL from its start) with a due hint at the lease's expiry,
//! and waits here, in memory, in start order, for a worker slot. When one
//! frees, its driver starts from the state `start` made: no scan of the due
//! index, no read of the record, no second claim, and no handle polls the
//! store meanwhile (the instance counts as driven here).
//!
//! If this process dies, or the instance waits longer than its lease, the
//! hint comes due and any worker runtime claims it as it would any other;
//! a driver that finds its lease lapsed renews it first (or learns that
//! another runtime took the instance over, and stops).
//!
//! This file holds the queue, the data the runtime's state keeps; the
//! dispatcher that starts the drivers of its entries is `dispatch.rs`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::current::{Current, Started};
use super::local::Local;

/// The most instances one runtime keeps in its backlog. A start beyond it
/// is written unclaimed with a due hint, for the poller (of this process or
/// another) to claim: memory stays bounded however many are started at
/// once. An entry holds the new record and its state, about a kilobyte for
/// a small input.
pub(super) const MAX_BACKLOG: usize = 1 << 18;

/// The room the queue keeps when it empties.
const KEPT_ROOM: usize = 1024;

/// The instances waiting for a worker slot, oldest first.
#[derive(Default)]
pub(super) struct Backlog {
    /// Boxed, so that the room a burst made costs a pointer per slot once
    /// it is over (and the room goes when the queue empties).
    queue: Mutex<VecDeque<Box<Waiting>>>,
    /// Wakes the dispatcher: an entry was added.
    pub(super) added: Notify,
}

/// One instance waiting for a worker slot.
pub(super) struct Waiting {
    pub(super) id: String,
    /// Marked driven by this process while it waits.
    pub(super) local: Arc<Local>,
    /// The record as written, with its lease, and its version.
    pub(super) current: Current,
    pub(super) started: Started,
    /// The due hint written beside it, at its lease's expiry.
    pub(super) hint: String,
}

impl Backlog {
    fn queue(&self) -> MutexGuard<'_, VecDeque<Box<Waiting>>> {
        // Changed only by single pushes and pops: a panic elsewhere cannot
        // leave it half-updated.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether another entry fits.
    pub(super) fn has_room(&self) -> bool {
        self.queue().len() < MAX_BACKLOG
    }

    pub(super) fn push(&self, waiting: Waiting) {
        self.queue().push_back(Box::new(waiting));
        self.added.notify_one();
    }

    pub(super) fn pop(&self) -> Option<Waiting> {
        let mut queue = self.queue();
        let waiting = queue.pop_front();
        if queue.is_empty() && queue.capacity() > KEPT_ROOM {
            queue.shrink_to(KEPT_ROOM);
        }
        waiting.map(|waiting| *waiting)
    }
}
