//! [`EmbeddedStore`]: the handle callers open and clone, what it refuses
//! before queueing a write, and its [`Store`] methods, which read fjall on
//! the caller's thread and send writes to the sequencer (`commit.rs`).
//! Apart from the group commit, which is the store's threads, not its face.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use byteview::ByteView;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};

use super::super::{DueSignal, Expect, ScanPage, Store, Versioned, WAKE_PREFIX, Write};
use super::commit::{Building, Msg, Sequencer, commit_loop, holds};
use super::disk::{LAST_VERSION, backend, decode, engine, staged};
use super::due::{DueIndex, scan_due};
use super::writes::{BatchAnswers, Op, Reply, answered, stopped};
use crate::FastHashMap;
use crate::error::StoreError;

/// The largest value [`EmbeddedStore`] accepts, in bytes (16 MiB); larger
/// ones fail with [`StoreError::TooLarge`]. Instance records are far
/// smaller; the bound keeps one write from stalling a whole group commit.
pub const MAX_VALUE_SIZE: usize = 16 << 20;

/// The longest key [`EmbeddedStore`] accepts, in bytes: fjall's limit.
/// Longer keys fail with [`StoreError::TooLarge`] on `put`; they read as
/// absent.
pub const MAX_KEY_SIZE: usize = u16::MAX as usize;

/// The default store: durable, in one directory on local disk, for one
/// process. Clones share the database and its threads; the database closes
/// when the last clone is dropped (which waits for queued writes to finish).
///
/// ```
/// use sagaflow::EmbeddedStore;
/// use sagaflow::store::{Expect, Store};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sagaflow::StoreError> {
/// # let dir = std::env::temp_dir().join(format!("sagaflow-doc-{}", std::process::id()));
/// let store = EmbeddedStore::open(&dir)?;
/// let version = store.put("greeting", b"hello".to_vec(), Expect::Absent).await?;
/// assert_eq!(store.get("greeting").await?.map(|v| v.version), Some(version));
/// # drop(store);
/// # let _ = std::fs::remove_dir_all(&dir);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Wakes runtimes on this store object when a due hint is written.
    due: DueSignal,
    /// The keys under [`WAKE_PREFIX`], as committed.
    due_index: DueIndex,
    data: Keyspace,
    queue: mpsc::Sender<Msg>,
    sequencer: Mutex<Option<JoinHandle<()>>>,
    // Declared last so it drops after the keyspace handle.
    _db: Database,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The sequencer answers what is queued, stops the commit thread and
        // exits; joining it means the database is closed (its directory
        // unlocked) when the last clone is gone, so it can be reopened at once.
        let _ = self.queue.send(Msg::Shutdown);
        let sequencer = self
            .sequencer
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(sequencer) = sequencer {
            let _ = sequencer.join();
        }
    }
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens the store in the directory `path`, creating the directory and
    /// an empty store if it does not exist. One process at a time: opening
    /// a directory that is already open fails with
    /// [`StoreError::Unavailable`].
    pub fn open(path: impl AsRef<Path>) -> Result<EmbeddedStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        // The journal is persisted only by our explicit fsync per batch,
        // never implicitly after each write. One background worker (flushes
        // and compactions): with two, fjall's first worker leaves every
        // compaction to the other by re-queueing it, and spins doing so while
        // the other is busy; one worker costs 12-15% less CPU per write.
        let db = Database::builder(&path)
            .manual_journal_persist(true)
            .worker_threads(1)
            .open()
            .map_err(|e| match e {
                fjall::Error::Locked => StoreError::Unavailable(format!(
                    "the embedded store at {} is already open (in this or another process)",
                    path.display()
                )),
                e => engine("cannot open the embedded store", e),
            })?;
        let data = db
            .keyspace("data", KeyspaceCreateOptions::default)
            .map_err(|e| engine("cannot open keyspace `data`", e))?;
        let meta = db
            .keyspace("meta", KeyspaceCreateOptions::default)
            .map_err(|e| engine("cannot open keyspace `meta`", e))?;
        let last_version = match meta
            .get(LAST_VERSION)
            .map_err(|e| engine("cannot read the version counter", e))?
        {
            None => 0,
            Some(bytes) => <[u8; 8]>::try_from(&*bytes)
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    backend(format!(
                        "the embedded store at {} is corrupt: its version counter is {} bytes, not 8",
                        path.display(),
                        bytes.len()
                    ))
                })?,
        };
        let mut due = BTreeMap::new();
        for guard in data.prefix(WAKE_PREFIX) {
            let (key, stored) = guard
                .into_inner()
                .map_err(|e| engine("cannot read the due index", e))?;
            let value = decode(&key, &stored)?;
            let key = String::from_utf8(key.to_vec()).map_err(|e| {
                backend(format!(
                    "the embedded store is corrupt: a key is not UTF-8: {:?}",
                    e.as_bytes()
                ))
            })?;
            due.insert(key, value);
        }
        let due_index: DueIndex = Arc::new(Mutex::new(due));
        let (queue, messages) = mpsc::channel();
        let (jobs, job_queue) = mpsc::channel();
        let done = queue.clone();
        let committed_due = Arc::clone(&due_index);
        let committer = std::thread::Builder::new()
            .name("sagaflow-embedded-commit".into())
            .spawn(move || commit_loop(job_queue, done, committed_due))
            .map_err(|e| {
                backend(format!(
                    "cannot start the embedded store's commit thread: {e}"
                ))
            })?;
        let sequencer = Sequencer {
            db: db.clone(),
            data: data.clone(),
            meta,
            last_version,
            known: FastHashMap::default(),
            committed: 0,
            building: Building::new(1, Vec::new()),
            largest: 0,
            spare: Vec::new(),
            waiting: VecDeque::new(),
            busy: false,
            jobs,
            committer,
        };
        let sequencer = std::thread::Builder::new()
            .name("sagaflow-embedded-sequencer".into())
            .spawn(move || sequencer.run(messages))
            .map_err(|e| {
                backend(format!(
                    "cannot start the embedded store's sequencer thread: {e}"
                ))
            })?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                due: DueSignal::new(),
                due_index,
                path,
                data,
                queue,
                sequencer: Mutex::new(Some(sequencer)),
                _db: db,
            }),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues a write for the sequencer and waits for its durable answer.
    async fn submit(
        &self,
        key: &str,
        value: Option<ByteView>,
        expect: Expect,
    ) -> Result<Option<u64>, StoreError> {
        let (op, answer) = Op::new(key.to_owned(), value, expect);
        self.inner.queue.send(Msg::Op(op)).map_err(|_| stopped())?;
        answered(answer).await
    }
}

/// Refuses a put the store cannot hold, before it is queued.
fn admit(key: &str, value: &[u8]) -> Result<(), StoreError> {
    if value.len() > MAX_VALUE_SIZE {
        return Err(StoreError::TooLarge {
            size: value.len(),
            limit: MAX_VALUE_SIZE,
        });
    }
    if key.len() > MAX_KEY_SIZE {
        return Err(backend(format!(
            "a key of {} bytes exceeds the embedded store's key limit of {MAX_KEY_SIZE} bytes",
            key.len()
        )));
    }
    Ok(())
}

/// A put's version, which its answer always carries.
fn put_version(version: Option<u64>) -> Result<u64, StoreError> {
    version.ok_or_else(|| backend("the embedded store wrote a put without a version".into()))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        if key.len() > MAX_KEY_SIZE {
            return Ok(None);
        }
        match self
            .inner
            .data
            .get(key)
            .map_err(|e| engine("cannot read a key", e))?
        {
            None => Ok(None),
            Some(stored) => decode(key.as_bytes(), &stored).map(Some),
        }
    }

    async fn put(&self, key: &str, value: Vec<u8>, expect: Expect) -> Result<u64, StoreError> {
        admit(key, &value)?;
        let version = self
            .submit(key, Some(staged(&value)), expect)
            .await
            .and_then(put_version)?;
        if DueSignal::is_due_key(key) {
            self.inner.due.notify();
        }
        Ok(version)
    }

    /// Queues every write at once, then collects the answers: the writes
    /// share commits, and the caller (the runtime's [`GroupCommit`]) is woken
    /// once per commit rather than each of its writers from this store's
    /// thread.
    ///
    /// [`GroupCommit`]: super::super::GroupCommit
    async fn put_batch(&self, writes: Vec<Write>) -> Vec<Result<u64, StoreError>> {
        // Writes the store refuses are answered here, the others share one
        // answer. Refusals and due hints are rare: no vector for them
        // unless there are some.
        let mut refused: Vec<(usize, StoreError)> = Vec::new();
        let mut due: Vec<usize> = Vec::new();
        for (index, write) in writes.iter().enumerate() {
            if let Err(error) = admit(&write.key, &write.value) {
                refused.push((index, error));
            } else if DueSignal::is_due_key(&write.key) {
                due.push(index);
            }
        }
        let count = writes.len();
        let (batch, answers) = BatchAnswers::new(count - refused.len());
        let mut ops = Vec::with_capacity(count - refused.len());
        let mut next_refused = refused.iter().map(|(index, _)| *index);
        let mut skip = next_refused.next();
        for (index, Write { key, value, expect }) in writes.into_iter().enumerate() {
            if skip == Some(index) {
                skip = next_refused.next();
                continue;
            }
            let reply = Reply::InBatch(Arc::clone(&batch), ops.len());
            ops.push(Op {
                key,
                value: Some(staged(&value)),
                expect,
                reply,
            });
        }
        drop(next_refused);
        drop(batch);
        // A failed send drops the replies: their answers say unavailable.
        let _ = self.inner.queue.send(Msg::Ops(ops));
        let mut outcomes = answers.await.unwrap_or_default().into_iter();
        let mut refused = refused.into_iter().peekable();
        let results: Vec<Result<u64, StoreError>> = (0..count)
            .map(|index| match refused.next_if(|(at, _)| *at == index) {
                Some((_, error)) => Err(error),
                // Unanswered: a store thread died with it queued, so whether
                // it was written is unknown.
                None => outcomes
                    .next()
                    .flatten()
                    .unwrap_or_else(|| Err(stopped()))
                    .and_then(put_version),
            })
            .collect();
        if due.iter().any(|&index| results[index].is_ok()) {
            self.inner.due.notify();
        }
        results
    }

    fn batches_writes(&self) -> bool {
        true
    }

    async fn delete(&self, key: &str, expect: Expect) -> Result<(), StoreError> {
        if key.len() > MAX_KEY_SIZE {
            // No such key can exist: it is absent.
            return if holds(expect, None) {
                Ok(())
            } else {
                Err(StoreError::Conflict)
            };
        }
        self.submit(key, None, expect).await.map(|_| ())
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ScanPage, StoreError> {
        if prefix.len() > MAX_KEY_SIZE {
            return Ok(ScanPage::default());
        }
        // Start at `after` when it is inside or past the prefix; an `after`
        // longer than any key is cut, and keys up to it skipped below.
        let start = match after {
            Some(after) if after >= prefix => &after.as_bytes()[..after.len().min(MAX_KEY_SIZE)],
            _ => prefix.as_bytes(),
        };
        if prefix.starts_with(WAKE_PREFIX) {
            return Ok(scan_due(&self.inner.due_index, prefix, after, limit));
        }
        let mut entries = Vec::new();
        for guard in self.inner.data.range::<&[u8], _>(start..) {
            let (key, stored) = guard.into_inner().map_err(|e| engine("cannot scan", e))?;
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            if after.is_some_and(|after| &*key <= after.as_bytes()) {
                continue;
            }
            let value = decode(&key, &stored)?;
            let key = String::from_utf8(key.to_vec()).map_err(|e| {
                backend(format!(
                    "the embedded store is corrupt: a key is not UTF-8: {:?}",
                    e.as_bytes()
                ))
            })?;
            entries.push((key, value));
            // One more than asked tells whether there is a next page.
            if entries.len() > limit {
                break;
            }
        }
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|(key, _)| key.clone())
        } else {
            None
        };
        Ok(ScanPage { entries, next })
    }

    fn name(&self) -> &'static str {
        "embedded"
    }

    fn due_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.inner.due.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use fjall::PersistMode;

    use super::super::commit::VERSION_CACHE_ENTRIES;
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "sagaflow-embedded-unit-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A value on disk shorter than the version header is an error, not a panic.
    #[tokio::test]
    async fn corrupt_value_is_a_backend_error() {
        let dir = temp_dir("corrupt");
        let store = EmbeddedStore::open(&dir).expect("open");
        store
            .put("ok", b"fine".to_vec(), Expect::Absent)
            .await
            .expect("put");
        store
            .inner
            .data
            .insert("bad", vec![1u8, 2, 3])
            .expect("raw insert");
        let err = store
            .get("bad")
            .await
            .expect_err("a 3-byte value is corrupt");
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("\"bad\" is 3 bytes, shorter than its 8-byte version header"),
            "{err}"
        );
        let err = store
            .scan("", None, 10)
            .await
            .expect_err("scan reads the corrupt value");
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        // A write over it fails on its own, without stopping the store.
        let err = store
            .put("bad", b"x".to_vec(), Expect::Any)
            .await
            .expect_err("cannot read the version");
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        assert_eq!(
            store
                .put("ok", b"still".to_vec(), Expect::Any)
                .await
                .ok()
                .map(|v| v > 1),
            Some(true)
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// With the store's threads gone, writes fail at once, never hang;
    /// reads still work.
    #[tokio::test]
    async fn stopped_threads_make_writes_unavailable() {
        let dir = temp_dir("stopped");
        let store = EmbeddedStore::open(&dir).expect("open");
        store
            .put("k", b"v".to_vec(), Expect::Absent)
            .await
            .expect("put");
        store.inner.queue.send(Msg::Shutdown).expect("send");
        let sequencer = store.inner.sequencer.lock().expect("lock").take();
        sequencer.expect("running").join().expect("clean exit");
        let err = store
            .put("k", b"w".to_vec(), Expect::Any)
            .await
            .expect_err("stopped");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        let err = store.delete("k", Expect::Any).await.expect_err("stopped");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert_eq!(
            store.get("k").await.expect("get").map(|v| v.value),
            Some(b"v".to_vec())
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Past the version map's bound, every expectation is still checked
    /// exactly: against the map for keys written recently or not yet
    /// committed, against the database for the keys dropped from it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expectations_stay_exact_past_the_version_map_bound() {
        let dir = temp_dir("bound");
        let store = EmbeddedStore::open(&dir).expect("open");
        let writers = (0..VERSION_CACHE_ENTRIES * 4).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("k/{i:04}");
                // Two creates decided before either is committed: exactly
                // one wins, the other sees it.
                let (one, other) = tokio::join!(
                    store.put(&key, b"1".to_vec(), Expect::Absent),
                    store.put(&key, b"1".to_vec(), Expect::Absent)
                );
                let first = match (one, other) {
                    (Ok(first), Err(StoreError::Conflict))
                    | (Err(StoreError::Conflict), Ok(first)) => first,
                    outcomes => panic!("{key}: two creates gave {outcomes:?}"),
                };
                let second = store
                    .put(&key, b"2".to_vec(), Expect::Version(first))
                    .await?;
                let stale = store
                    .put(&key, b"stale".to_vec(), Expect::Version(first))
                    .await;
                let third = store
                    .put(&key, b"3".to_vec(), Expect::Version(second))
                    .await?;
                Ok::<_, StoreError>((key, stale.err(), third))
            })
        });
        let writers: Vec<_> = writers.collect();
        for writer in writers {
            let (key, stale, third) = writer.await.expect("a writer").expect("its writes");
            assert!(
                matches!(stale, Some(StoreError::Conflict)),
                "{key}: {stale:?}"
            );
            let stored = store.get(&key).await.expect("get").expect("present");
            assert_eq!((stored.value, stored.version), (b"3".to_vec(), third));
        }
        // Long after: every key's version comes from the database again.
        let page = store.scan("k/", None, usize::MAX).await.expect("scan");
        for (key, stored) in page.entries {
            let next = store
                .put(&key, b"4".to_vec(), Expect::Version(stored.version))
                .await
                .expect("the stored version holds");
            assert!(next > stored.version, "{key}");
            let err = store
                .put(&key, b"x".to_vec(), Expect::Version(stored.version))
                .await
                .expect_err("the old version no longer holds");
            assert!(matches!(err, StoreError::Conflict), "{key}: {err:?}");
        }
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn corrupt_counter_fails_open() {
        let dir = temp_dir("counter");
        let store = EmbeddedStore::open(&dir).expect("open");
        let meta = store
            .inner
            ._db
            .keyspace("meta", KeyspaceCreateOptions::default)
            .expect("meta");
        meta.insert(LAST_VERSION, vec![1u8]).expect("raw insert");
        store
            .inner
            ._db
            .persist(PersistMode::SyncAll)
            .expect("persist");
        drop(meta);
        drop(store);
        let err = EmbeddedStore::open(&dir).expect_err("the counter is corrupt");
        assert!(
            err.to_string().contains("version counter is 1 bytes"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
