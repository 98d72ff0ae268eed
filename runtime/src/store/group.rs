//! Group commit over [`Store::put_batch`]: concurrent puts share round trips.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::contract::{Expect, ScanPage, Store, Versioned, Write};
use crate::error::StoreError;

/// The most writes sent in one batch.
const MAX_BATCH: usize = 512;

/// Batches in flight at once: while they are, new writes queue up and go
/// together in the next one.
const BATCHES_IN_FLIGHT: usize = 4;

/// A store whose puts are grouped: a put waits in a queue while 4 writes or
/// batches are under way, then goes with every other waiting put (up to
/// 512) in one [`Store::put_batch`]. With a slot free and nothing queued, a
/// put goes straight to the store, as if there were no grouping. Each put
/// gets its own result, `Conflict` included. Other operations go straight to
/// the store.
///
/// The runtime wraps a store in one when [`Store::batches_writes`] says so.
/// Must be created inside a tokio runtime (it spawns its flusher, which
/// stops when the last clone is dropped).
#[derive(Clone)]
pub struct GroupCommit {
    /// Called as `as_ref()`, the store itself: through the `Arc`'s own
    /// `Store` impl, each call would box a second future around the store's.
    store: Arc<dyn Store>,
    queue: mpsc::UnboundedSender<Pending>,
    /// Writes or batches under way, shared with the flusher.
    in_flight: Arc<Semaphore>,
    /// Puts waiting in the queue.
    queued: Arc<AtomicUsize>,
}

struct Pending {
    write: Write,
    reply: oneshot::Sender<Result<u64, StoreError>>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("store", &self.store.as_ref().name())
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    /// Groups the puts of `store`.
    pub fn new(store: Arc<dyn Store>) -> GroupCommit {
        let (queue, pending) = mpsc::unbounded_channel();
        let in_flight = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
        let queued = Arc::new(AtomicUsize::new(0));
        tokio::spawn(flush(
            Arc::downgrade(&store),
            pending,
            Arc::clone(&in_flight),
            Arc::clone(&queued),
        ));
        GroupCommit {
            store,
            queue,
            in_flight,
            queued,
        }
    }
}

/// Sends the queued puts in batches until every [`GroupCommit`] is dropped.
/// It holds the store weakly: once the last `GroupCommit` is gone the store
/// is dropped at once (an embedded store's directory is free to reopen),
/// not whenever this task next runs.
async fn flush(
    store: Weak<dyn Store>,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    in_flight: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(first) = pending.recv().await {
        // The semaphore is never closed.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            return;
        };
        // Whatever queued while the batches in flight were busy goes now,
        // in vectors sized for what queued, not regrown put by put.
        let queued_now = queued.load(Ordering::SeqCst).clamp(1, MAX_BATCH);
        let mut writes = Vec::with_capacity(queued_now);
        let mut replies = Vec::with_capacity(queued_now);
        let mut next = Some(first);
        while let Some(Pending { write, reply }) = next {
            writes.push(write);
            replies.push(reply);
            next = if writes.len() < MAX_BATCH {
                pending.try_recv().ok()
            } else {
                None
            };
        }
        queued.fetch_sub(writes.len(), Ordering::SeqCst);
        // Its writers hold a `GroupCommit`, so the store is there.
        let Some(store) = store.upgrade() else {
            for reply in replies {
                let _ = reply.send(Err(StoreError::Unavailable("the store was dropped".into())));
            }
            continue;
        };
        tokio::spawn(async move {
            let count = writes.len();
            let results = match <[Write; 1]>::try_from(writes) {
                // Alone, a plain put: one round trip without a batch's framing.
                Ok([write]) => vec![
                    store
                        .as_ref()
                        .put(&write.key, write.value, write.expect)
                        .await,
                ],
                Err(writes) => store.as_ref().put_batch(writes).await,
            };
            let mut results = results.into_iter();
            for reply in replies {
                let result = results.next().unwrap_or_else(|| {
                    Err(StoreError::Backend(
                        format!("the store answered fewer than the {count} writes of a batch")
                            .into(),
                    ))
                });
                // The writer may have stopped waiting (a timeout): nothing to tell.
                let _ = reply.send(result);
            }
            drop(permit);
        });
    }
}

#[async_trait]
impl Store for GroupCommit {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.store.as_ref().get(key).await
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        if self.queued.load(Ordering::SeqCst) == 0
            && let Ok(_slot) = Arc::clone(&self.in_flight).try_acquire_owned()
        {
            // Nothing to group with: straight to the store.
            return self.store.as_ref().put(key, value, expect).await;
        }
        let (reply, result) = oneshot::channel();
        let write = Write {
            key: key.to_owned(),
            value,
            expect,
        };
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.queue.send(Pending { write, reply }).is_err() {
            return Err(StoreError::Unavailable(
                "the group commit of the store has stopped".into(),
            ));
        }
        result.await.unwrap_or_else(|_| {
            Err(StoreError::Timeout(
                "the group commit of the store stopped before answering; \
                 the write may or may not have been applied"
                    .into(),
            ))
        })
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        self.store.as_ref().delete(key, expect).await
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        self.store.as_ref().scan(prefix, after, limit).await
    }

    fn name(&self) -> &'static str {
        self.store.as_ref().name()
    }

    fn due_changes(&self) -> Option<watch::Receiver<u64>> {
        self.store.as_ref().due_changes()
    }

    async fn put_batch(&self, writes: Vec<Write>) -> Vec<Result<u64, StoreError>> {
        self.store.as_ref().put_batch(writes).await
    }

    fn batches_writes(&self) -> bool {
        // Already grouped: wrapping it again would only add a hop.
        false
    }
}
