//! What a driver is handed with the instance it drives: the record it works
//! on ([`Current`], with the [`Position`] last written), its due hints
//! ([`Hints`]), and the typed state `start` made ([`Started`]). Plain data,
//! apart from the worker, so that the backlog can hold it without importing
//! the worker.

use std::sync::Arc;

use super::erased::{ErasedWorkflow, TypedState};
use crate::record::{InstanceRecord, Phase};

/// Where an instance is, as far as concurrent writers are concerned: two
/// records with the same position differ only in flags others may set
/// (`cancel_requested`), so a write based on one may be rebased on the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Position {
    phase: Phase,
    /// The state's name, hashed (64-bit XXH3): taken on every transition,
    /// where a copy of the name would be an allocation.
    state_name: u64,
    attempt: u32,
    compensations: usize,
}

impl Position {
    pub(super) fn of(instance: &InstanceRecord) -> Position {
        Position {
            phase: instance.phase,
            state_name: xxhash_rust::xxh3::xxh3_64(instance.state_name.as_bytes()),
            attempt: instance.attempt,
            compensations: instance.compensation_stack.len(),
        }
    }
}

/// The record a worker works on: possibly ahead of the store after a
/// step-less transition (which is pure, so it is not written). A transition
/// builds the next record in place, neither copying nor moving it (history
/// and all); after a write that failed, it is read back from the store
/// before anything goes on.
pub(super) struct Current {
    pub(super) record: InstanceRecord,
    pub(super) version: u64,
    pub(super) persisted: Position,
}

/// The due hints of an instance a driver is given.
#[derive(Default)]
pub(super) struct Hints {
    /// The instance may have due hints, which the poller skips while it is
    /// driven here: the driver wakes the poller when it is done, to delete
    /// them.
    pub(super) poller: bool,
    /// The key of the hint at the claim's lease expiry: how another runtime
    /// finds the instance if this one dies while driving it. The driver
    /// deletes it once it has released the instance (ended, waiting, or
    /// handed back); one it cannot release keeps it.
    pub(super) lease: Option<String>,
}

/// What `start` knows of the record it created, so that its driver neither
/// checks nor decodes the state it was made from.
pub(super) struct Started {
    /// The registered workflow the record was made for.
    pub(super) workflow: Arc<dyn ErasedWorkflow>,
    /// The record's state as the workflow's type.
    pub(super) typed: TypedState,
}

impl Current {
    pub(super) fn new(record: InstanceRecord, version: u64) -> Current {
        Current {
            persisted: Position::of(&record),
            record,
            version,
        }
    }

    /// The record and its version.
    pub(super) fn into_parts(self) -> (InstanceRecord, u64) {
        (self.record, self.version)
    }
}
