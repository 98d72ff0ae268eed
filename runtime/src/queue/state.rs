//! What one process keeps of a queue: its definition and keys, the
//! per-process permits, and the wake-ups between the dispatcher and the
//! handles of this process.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::{Notify, Semaphore};

use super::definition::Queue;
use super::keys::QueueKeys;
use crate::FastHashMap;
use crate::store::Store;

/// One queue, as this process runs it.
pub(crate) struct QueueState {
    pub(crate) queue: Queue,
    pub(crate) keys: QueueKeys,
    pub(crate) store: Arc<dyn Store>,
    /// One per instance of this queue that this process started and that
    /// has not ended.
    pub(crate) permits: Arc<Semaphore>,
    /// Wakes the dispatcher: an item was enqueued, or a slot or permit
    /// freed, in this process.
    pub(crate) wake: Notify,
    /// Per waiting handle's id, the wake-up for when its item starts here.
    waiters: Mutex<FastHashMap<String, Weak<Notify>>>,
    /// The sequence number of this process's next item key.
    seq: AtomicU64,
    /// Items this process cannot start (an unregistered workflow, an input
    /// that does not decode), left to a process that can.
    unstartable: Mutex<HashSet<String>>,
    /// Items this process claimed and has not deleted yet: a pass skips
    /// them without decoding them.
    in_flight: Mutex<HashSet<String>>,
}

impl QueueState {
    pub(crate) fn new(queue: Queue, store: Arc<dyn Store>, workers: usize) -> QueueState {
        let workers = u32::try_from(workers).unwrap_or(u32::MAX);
        let permits = queue
            .per_process_limit()
            .unwrap_or(workers)
            .clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        QueueState {
            keys: QueueKeys::new(queue.name()),
            queue,
            store,
            permits: Arc::new(Semaphore::new(permits as usize)),
            wake: Notify::new(),
            waiters: Mutex::new(FastHashMap::default()),
            seq: AtomicU64::new(0),
            unstartable: Mutex::new(HashSet::new()),
            in_flight: Mutex::new(HashSet::new()),
        }
    }

    /// The next sequence number for an item key of this process.
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn waiters(&self) -> MutexGuard<'_, FastHashMap<String, Weak<Notify>>> {
        // Only single inserts and removes happen under the lock.
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The wake-up of instance `id`'s start, shared by its handles here.
    pub(crate) fn waiter(&self, id: &str) -> Arc<Notify> {
        let mut waiters = self.waiters();
        if let Some(live) = waiters.get(id).and_then(Weak::upgrade) {
            return live;
        }
        let notify = Arc::new(Notify::new());
        waiters.insert(id.to_owned(), Arc::downgrade(&notify));
        notify
    }

    /// Forgets `ours`, the wake-up of `id`, if no other handle shares it.
    pub(crate) fn forget_waiter(&self, id: &str, ours: Arc<Notify>) {
        let mut waiters = self.waiters();
        let unused = waiters
            .get(id)
            .is_some_and(|entry| std::ptr::eq(entry.as_ptr(), Arc::as_ptr(&ours)))
            && Arc::strong_count(&ours) == 1;
        if unused {
            waiters.remove(id);
        }
    }

    /// Instance `id` was started here: its handles here stop waiting.
    pub(crate) fn started(&self, id: &str) {
        let waiter = self.waiters().remove(id);
        if let Some(waiter) = waiter.and_then(|waiter| waiter.upgrade()) {
            waiter.notify_waiters();
        }
    }

    fn unstartable(&self) -> MutexGuard<'_, HashSet<String>> {
        self.unstartable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn in_flight(&self) -> MutexGuard<'_, HashSet<String>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a pass skips the item at `key`: it failed to start here
    /// before, or this process is starting it.
    pub(crate) fn skips(&self, key: &str) -> bool {
        self.in_flight().contains(key) || self.unstartable().contains(key)
    }

    /// This process is starting the item at `key` (`true`), or is done with
    /// it (`false`).
    pub(crate) fn set_in_flight(&self, key: &str, starting: bool) {
        if starting {
            self.in_flight().insert(key.to_owned());
        } else {
            self.in_flight().remove(key);
        }
    }

    /// Remembers that the item at `key` cannot start here.
    pub(crate) fn mark_unstartable(&self, key: &str) {
        self.unstartable().insert(key.to_owned());
    }
}
