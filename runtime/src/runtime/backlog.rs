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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::{Local, Runtime, worker};
use crate::record::{self, InstanceRecord};
use crate::store::Expect;

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
    added: Notify,
}

/// One instance waiting for a worker slot.
pub(super) struct Waiting {
    pub(super) id: String,
    /// Marked driven by this process while it waits.
    pub(super) local: Arc<Local>,
    /// The record as written, with its lease, and its version.
    pub(super) current: worker::Current,
    pub(super) started: worker::Started,
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

    fn pop(&self) -> Option<Waiting> {
        let mut queue = self.queue();
        let waiting = queue.pop_front();
        if queue.is_empty() && queue.capacity() > KEPT_ROOM {
            queue.shrink_to(KEPT_ROOM);
        }
        waiting.map(|waiting| *waiting)
    }
}

/// Starts a driver for each backlog entry as worker slots free up, until
/// the runtime shuts down; then releases what still waits, so that another
/// runtime may take it at once.
pub(super) async fn run(runtime: Runtime) {
    // Counted like a driver (when spawned), so `shutdown` waits for it.
    let _running = super::CountedTask(runtime.clone());
    let inner = &runtime.inner;
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let Some(waiting) = next(&runtime, &mut shutdown).await else {
            break;
        };
        let Some(permit) = runtime.permit(&mut shutdown).await else {
            release(&runtime, waiting).await;
            break;
        };
        let Waiting {
            id,
            local,
            current,
            started,
            hint,
        } = waiting;
        // The hint at the lease's expiry stays the driver's lease hint.
        let hints = worker::Hints {
            poller: false,
            lease: Some(hint),
        };
        runtime.spawn_driver(id, local, current, permit, hints, Some(started));
    }
    // Released side by side: a store with group commit makes them durable
    // together.
    let mut releases = tokio::task::JoinSet::new();
    while let Some(waiting) = inner.backlog.pop() {
        while releases.len() >= RELEASES_IN_FLIGHT {
            releases.join_next().await;
        }
        let runtime = runtime.clone();
        releases.spawn(async move { release(&runtime, waiting).await });
    }
    while releases.join_next().await.is_some() {}
}

/// Releases in flight at once on shutdown.
const RELEASES_IN_FLIGHT: usize = 64;

/// The oldest entry, waiting for one; `None` on shutdown.
async fn next(
    runtime: &Runtime,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<Waiting> {
    let backlog = &runtime.inner.backlog;
    loop {
        if *shutdown.borrow_and_update() {
            return None;
        }
        if let Some(waiting) = backlog.pop() {
            return Some(waiting);
        }
        tokio::select! {
            () = backlog.added.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Gives up an entry on shutdown: its lease released with a due hint now,
/// as a worker releases the instance it drives, and its handles told to
/// read the store.
async fn release(runtime: &Runtime, waiting: Waiting) {
    let Waiting {
        id,
        local,
        current,
        hint,
        ..
    } = waiting;
    let now = runtime.inner.clock.now_ms();
    let (mut record, version): (InstanceRecord, u64) = current.into_parts();
    record.lease.expires_at = Some(now);
    record.updated_at = now;
    let store = runtime.inner.store();
    match record::encode(&record) {
        Ok(bytes) => match store
            .put(&record::key(&id), bytes, Expect::Version(version))
            .await
        {
            Ok(_) => {
                runtime.put_hint(now, &id).await;
                if let Err(error) = store.delete(&hint, Expect::Any).await {
                    tracing::debug!(hint, %error, "cannot delete a backlog hint");
                }
            }
            Err(error) => tracing::debug!(id, %error, "lease not released; it will expire"),
        },
        Err(error) => tracing::warn!(id, %error, "cannot encode the instance record"),
    }
    local.stop_driving();
    runtime.release_local(&id, local);
}
