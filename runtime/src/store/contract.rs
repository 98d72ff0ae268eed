//! The [`Store`] trait and the types of its operations: what every backend
//! implements and the runtime relies on. A leaf of the store layer: the
//! backends and [`GroupCommit`](super::GroupCommit) build on it.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::StoreError;

/// The prefix of the keys whose writes [`Store::due_changes`] reports: the
/// runtime's due index (`due/{ms}/{id}`).
pub const WAKE_PREFIX: &str = "due/";

/// Wakes the subscribers of one store object when a key under
/// [`WAKE_PREFIX`] is written: the in-process half of change notification,
/// shared by every backend (a server-backed store bumps it from its
/// listener). Cheap to clone; clones share the subscribers.
#[derive(Clone, Debug)]
pub struct DueSignal {
    sender: Arc<watch::Sender<u64>>,
}

impl Default for DueSignal {
    fn default() -> DueSignal {
        DueSignal::new()
    }
}

impl DueSignal {
    /// A signal nobody subscribes to yet.
    pub fn new() -> DueSignal {
        DueSignal {
            sender: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Whether a write of `key` is one to report.
    pub fn is_due_key(key: &str) -> bool {
        key.starts_with(WAKE_PREFIX)
    }

    /// Wakes every subscriber.
    pub fn notify(&self) {
        self.sender
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// A receiver that changes on every later [`notify`](Self::notify).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }

    /// Whether anyone holds a receiver.
    pub fn has_subscribers(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Resolves once nobody holds a receiver: a listener task stops then.
    pub async fn unsubscribed(&self) {
        self.sender.closed().await;
    }
}

/// One write of a [`Store::put_batch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The key.
    pub key: String,
    /// The bytes to store.
    pub value: Vec<u8>,
    /// The precondition, as for [`Store::put`].
    pub expect: Expect,
}

/// The precondition of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The key must not exist.
    Absent,
    /// The key must exist with exactly this version.
    Version(u64),
    /// No precondition.
    Any,
}

/// A stored value and its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    /// The bytes, as written.
    pub value: Vec<u8>,
    /// Changes on every write of the key; compare it with [`Expect::Version`].
    pub version: u64,
}

/// One page of an ordered prefix scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys and values in ascending key order.
    pub entries: Vec<(String, Versioned)>,
    /// Pass as `after` to read the next page; `None` on the last page.
    pub next: Option<String>,
}

/// A key-value store the runtime keeps its instances in.
///
/// # The contract
///
/// What the runtime relies on, and what
/// [`conformance::run`](crate::store::conformance::run) checks (a store of your own passes it in one test):
///
/// - **Versions.** Each key has a version, a `u64` returned by every
///   successful write, that strictly increases with every write of that key
///   and is **never reused, even after a delete**: a key deleted at version 7
///   and created again gets a version above 7. A counter per row that
///   restarts at 1 breaks this (a handle holding version 1 of the old key
///   would then match the new one); a counter per store, or per key kept
///   beside a tombstone, keeps it.
/// - **Expectations.** [`Expect::Absent`] holds when the key does not
///   exist, [`Expect::Version`] when it exists with exactly that version,
///   [`Expect::Any`] always. A write or delete whose expectation does not
///   hold fails with [`StoreError::Conflict`] and changes nothing. Deleting
///   an absent key succeeds with `Expect::Absent` and `Expect::Any`, and
///   conflicts with `Expect::Version`.
/// - **Order.** Keys are UTF-8 strings compared as bytes: "ascending" is
///   byte order (`"a/é"` sorts after `"a/z"`), not a collation.
/// - **Scans.** [`scan`](Self::scan) returns the keys that start with
///   `prefix` (byte-wise; not keys the prefix merely shares a start with,
///   nor the keys it is a prefix of), ascending, strictly after `after` when
///   given (`after` need not exist; one sorting before the prefix reads from
///   its start, one past it reads nothing), at most `limit` of them. A page
///   that may not be the last sets [`ScanPage::next`] to the last key it
///   returned; the last page sets `None`. A page may hold fewer than
///   `limit` entries and still have a `next`, but a page with no entries
///   has no `next`. A `limit` of 0 (a user's `Runtime::list(.., 0)`)
///   gets an empty last page.
/// - **Errors.** Return [`StoreError::Timeout`] when the answer did not
///   come in time and the write may have applied, and
///   [`StoreError::Unavailable`] when the backend cannot be reached: the
///   runtime retries a step's commit on these two (a few times, with
///   backoff) and, for a write whose answer was lost, reads the key to see
///   whether it landed. Every other error ([`StoreError::TooLarge`],
///   [`StoreError::Backend`]) fails the operation at once.
/// - **Blocking.** Methods are called on tokio's worker threads: they must
///   not block them for long. Run blocking I/O on a thread of its own
///   (`tokio::task::spawn_blocking`, or a channel to a writer thread, as
///   [`EmbeddedStore`](crate::EmbeddedStore) does).
/// - **Batches.** [`put_batch`](Self::put_batch) answers each write on its
///   own; a backend that cannot commit a batch at all answers every write
///   with the same error (nothing written), which the runtime treats as
///   each write failing.
/// - **Notification.** [`due_changes`](Self::due_changes) reports writes,
///   including deletes, of keys under [`WAKE_PREFIX`]; it is optional and
///   best effort.
///
/// # Writing one
///
/// A store over a `BTreeMap` behind a mutex, with versions from one
/// counter for the whole store (so never reused), checked by the suite:
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
///
/// use sagaflow::StoreError;
/// use sagaflow::store::{Expect, ScanPage, Store, Versioned, async_trait};
///
/// #[derive(Default)]
/// struct MapStore {
///     /// The keys and their versions, and the last version given out.
///     inner: Mutex<(BTreeMap<String, Versioned>, u64)>,
/// }
///
/// fn holds(current: Option<&Versioned>, expect: Expect) -> bool {
///     match expect {
///         Expect::Any => true,
///         Expect::Absent => current.is_none(),
///         Expect::Version(v) => current.is_some_and(|c| c.version == v),
///     }
/// }
///
/// #[async_trait]
/// impl Store for MapStore {
///     async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
///         let inner = self.inner.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
///         Ok(inner.0.get(key).cloned())
///     }
///
///     async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
///         let mut inner = self.inner.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
///         if !holds(inner.0.get(key), expect) {
///             return Err(StoreError::Conflict);
///         }
///         inner.1 += 1;
///         let version = inner.1;
///         inner.0.insert(key.to_owned(), Versioned { value, version });
///         Ok(version)
///     }
///
///     async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
///         let mut inner = self.inner.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
///         // An absent key holds `Absent` and `Any`: deleting it succeeds.
///         if !holds(inner.0.get(key), expect) {
///             return Err(StoreError::Conflict);
///         }
///         inner.0.remove(key);
///         Ok(())
///     }
///
///     async fn scan(
///         &self,
///         prefix: &str,
///         after: Option<&str>,
///         limit: usize,
///     ) -> Result<ScanPage, StoreError> {
///         let inner = self.inner.lock().map_err(|_| StoreError::Unavailable("poisoned".into()))?;
///         let mut entries: Vec<(String, Versioned)> = inner
///             .0
///             .range(prefix.to_owned()..)
///             .take_while(|(key, _)| key.starts_with(prefix))
///             .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
///             .take(limit.saturating_add(1))
///             .map(|(key, value)| (key.clone(), value.clone()))
///             .collect();
///         // One more than asked for says whether this page is the last.
///         let next = if entries.len() > limit {
///             entries.truncate(limit);
///             entries.last().map(|(key, _)| key.clone())
///         } else {
///             None
///         };
///         Ok(ScanPage { entries, next })
///     }
///
///     fn name(&self) -> &'static str {
///         "map"
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// sagaflow::store::conformance::run(Arc::new(MapStore::default())).await;
/// # }
/// ```
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads a key.
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError>;

    /// Writes a key if `expect` holds, returning the new version; fails with
    /// [`StoreError::Conflict`] (and writes nothing) if it does not.
    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError>;

    /// Deletes a key if `expect` holds; [`StoreError::Conflict`] if it does
    /// not. Deleting an absent key with [`Expect::Any`] succeeds.
    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError>;

    /// Keys starting with `prefix`, ascending, strictly after `after` if
    /// given, at most `limit` of them.
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError>;

    /// A short name for logs and errors (`memory`, `embedded`, `postgres`).
    fn name(&self) -> &'static str;

    /// Change notification, where the backend has it: a receiver whose
    /// value changes after a key under [`WAKE_PREFIX`] is written, by this
    /// process or any other sharing the store (see [`DueSignal`]). Best
    /// effort: a notification may be lost (a dropped connection), so a
    /// subscriber still polls, less often. `None`, the default: the
    /// backend has none and the runtime only polls.
    ///
    /// Called from within a tokio runtime; a backend may start its
    /// listener then, and stop it when every receiver is dropped.
    fn due_changes(&self) -> Option<watch::Receiver<u64>> {
        None
    }

    /// Writes each of `writes` as [`put`](Self::put) would, independently
    /// (one failing expectation fails only its own write), and returns
    /// their results in order. A backend that can send them in one round
    /// trip and make them durable together overrides this and
    /// [`batches_writes`](Self::batches_writes); the default writes them
    /// one after another.
    async fn put_batch(&self, writes: Vec<Write>) -> Vec<Result<u64, StoreError>> {
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            results.push(self.put(&write.key, write.value, write.expect).await);
        }
        results
    }

    /// Whether [`put_batch`](Self::put_batch) is cheaper than separate
    /// puts, so the runtime should group concurrent writes
    /// ([`GroupCommit`](crate::store::GroupCommit)). Default `false`.
    fn batches_writes(&self) -> bool {
        false
    }
}

#[async_trait]
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        (**self).get(key).await
    }
    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        (**self).put(key, value, expect).await
    }
    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        (**self).delete(key, expect).await
    }
    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        (**self).scan(prefix, after, limit).await
    }
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn due_changes(&self) -> Option<watch::Receiver<u64>> {
        (**self).due_changes()
    }
    async fn put_batch(&self, writes: Vec<Write>) -> Vec<Result<u64, StoreError>> {
        (**self).put_batch(writes).await
    }
    fn batches_writes(&self) -> bool {
        (**self).batches_writes()
    }
}
