//! `MemoryStore`: a store in memory, for tests and examples that need no
//! durability.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use tokio::sync::watch;

use super::{DueSignal, Expect, ScanPage, Store, Versioned};
use crate::FastHashMap;
use crate::error::StoreError;

/// A store in memory: fast, shared by clones, gone when the process exits.
///
/// Runtimes sharing one `MemoryStore` (or clones of it) wake each other
/// when one writes a due hint ([`Store::due_changes`]).
///
/// ```
/// let store = sagaflow::MemoryStore::new();
/// # let _ = store;
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    due: DueSignal,
}

/// Entries by key, and their keys in order: a write to an existing key (most
/// writes: an instance's record, step after step) is one hash lookup, and
/// only creating or deleting a key touches the ordered set scans walk.
#[derive(Debug, Default)]
struct Inner {
    entries: FastHashMap<Arc<str>, Versioned>,
    keys: BTreeSet<Arc<str>>,
    /// Versions come from one counter, so a key re-created after a delete
    /// never gets a version it had before.
    last_version: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied write:
        // an operation's inserts and removes cannot panic (a failed
        // allocation aborts), and nothing else runs between them.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn check(expect: Expect, current: Option<&Versioned>) -> Result<(), StoreError> {
    let holds = match expect {
        Expect::Any => true,
        Expect::Absent => current.is_none(),
        Expect::Version(version) => current.is_some_and(|entry| entry.version == version),
    };
    if holds {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self.lock().entries.get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        let version = {
            let mut inner = self.lock();
            let version = inner.last_version + 1;
            // One lookup, and no key to copy when the key exists.
            match inner.entries.get_mut(key) {
                Some(entry) => {
                    check(expect, Some(entry))?;
                    *entry = Versioned { value, version };
                }
                None => {
                    check(expect, None)?;
                    let key: Arc<str> = Arc::from(key);
                    inner.keys.insert(Arc::clone(&key));
                    inner.entries.insert(key, Versioned { value, version });
                }
            }
            inner.last_version = version;
            version
        };
        if DueSignal::is_due_key(key) {
            self.due.notify();
        }
        Ok(version)
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        let mut inner = self.lock();
        check(expect, inner.entries.get(key))?;
        if inner.entries.remove(key).is_some() {
            inner.keys.remove(key);
        }
        Ok(())
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        let inner = self.lock();
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        let mut entries: Vec<(String, Versioned)> = inner
            .keys
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|key| key.starts_with(prefix))
            .take(limit.saturating_add(1))
            .filter_map(|key| {
                let value = inner.entries.get(key)?;
                Some((key.to_string(), value.clone()))
            })
            .collect();
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|(key, _)| key.clone())
        } else {
            None
        };
        Ok(ScanPage { entries, next })
    }

    fn name(&self) -> &'static str {
        "memory"
    }

    fn due_changes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.due.subscribe())
    }
}
