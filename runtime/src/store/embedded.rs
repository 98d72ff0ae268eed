//! `EmbeddedStore`: the default durable store, a directory on local disk.
//!
//! # Engine
//!
//! [fjall](https://docs.rs/fjall) 3, an LSM-tree with a write-ahead journal,
//! chosen over redb by measurement on a 2-core machine (300-byte values):
//! one fsync'd commit per write, fjall 4.6k–5.5k/s against redb 2.1k–2.8k/s;
//! 64 writes per commit, fjall 105k–113k/s against redb 48k–111k/s.
//!
//! fjall runs one background worker for flushes and compactions, not its
//! default of one per core: with two, fjall 3.1's first worker hands every
//! compaction to the second by re-queueing it, spinning while the second is
//! busy. One fjall thread committing batches of 200 fsync'd 2.3 KB writes
//! spends 5.5–6.1 µs of CPU per write with one worker, 6.2–7.1 µs with two.
//!
//! # Durability and group commit
//!
//! Every successful [`put`](Store::put) and [`delete`](Store::delete) is in
//! the journal and fsync'd before it returns, and becomes visible to readers
//! only then. Writers do not commit themselves; two threads do it for them:
//!
//! - the **sequencer** takes each write as it arrives, checks its
//!   expectation against the latest version of the key (including writes
//!   not yet committed: later writes see earlier ones; one map holds the
//!   latest decided version of every recently written key), gives it the
//!   next version, writes that version into the value's header, and adds it
//!   to the batch being filled (the value arrives already copied into the
//!   buffer fjall keeps, by the writer's thread, which frees its own buffer
//!   where it made it);
//! - the **commit thread** writes a whole batch to the journal atomically,
//!   fsyncs once, applies it, and hands it back to the sequencer, which
//!   answers every writer in it.
//!
//! The sequencer hands over the filled batch the moment the commit thread
//! is free, so everything that arrives during one fsync shares the next
//! one (at most [`MAX_BATCH_OPS`] operations or [`MAX_BATCH_BYTES`] bytes),
//! and checking, encoding and answering overlap the fsync. 2,000
//! concurrent instances cost a handful of fsyncs, not 2,000; a lone writer
//! still gets its own commit at once. A failed expectation fails only its
//! own operation. If a commit fails, its writers get
//! [`StoreError::Backend`]; if the store's threads are gone, callers get
//! [`StoreError::Unavailable`], never a hang.
//!
//! A write whose caller stops waiting (a dropped future, a timeout) is
//! still decided and, if its expectation holds, committed.
//!
//! The store also says it [batches writes](Store::batches_writes), so the
//! runtime sends its transitions through [`GroupCommit`](super::GroupCommit):
//! [`put_batch`](Store::put_batch) queues a whole group in one message and
//! gets one answer for all of it, so the runtime's one flusher task is woken
//! per commit instead of each of 2,000 writers being woken from the
//! sequencer's thread. Measured with the bench's four-step saga, 2,000 at
//! once (`--group-commit on,off`, medians of 5 rounds): 98k–118k durable
//! steps/s one by one, 119k–156k grouped.
//!
//! Reads ([`get`](Store::get), [`scan`](Store::scan)) go straight to fjall
//! on the calling thread; they are short (memtable or block cache) and never
//! wait for a commit.
//!
//! # What a write costs
//!
//! Measured on a 2-core machine shared with other builds (load average
//! 1.8–2.2 during these runs; wall-clock rates vary by ±15% from run to
//! run), before and after the single version map, the single copy of each
//! value and the single fjall worker:
//!
//! - the store alone (`bench --only store`: 2,000 writers, CAS of 2.3 KB
//!   values): 107k, 136k, 123k CAS/s before; 143k, 130k, 143k after. One
//!   writer: 4.5k–4.9k/s before and 3.6k–4.7k/s after (one fsync each);
//! - the four-step saga (`bench --only throughput --workers 2000`, median
//!   of 10 rounds, three runs): 67k, 63k, 63k steps/s before; 66k, 70k,
//!   69k after, with 2–3.5% less CPU time.
//!
//! CPU per write (2,000 writers, 1.3 KB values, at load 3.5) is about
//! 7–8.5 µs, about half of it in fjall's commit: its journal write through
//! the page cache, the memtable insert, flushes, deleting old journals, and
//! the fsync (about 200 µs of CPU per commit, plus its writeback per byte).
//! Tried and not kept:
//!
//! - deciding writes on the callers' threads under a mutex, without the
//!   sequencer thread: the same CPU per write, and the saga 7% slower,
//!   because the work moves onto the runtime's threads;
//! - two fjall databases, keys spread by hash, each with its own journal
//!   and commit thread (so one fsync overlaps the other's journal write):
//!   the store alone 1.5x faster on an idle machine, but 10% more CPU per
//!   write (twice the fsyncs, each half as full) and the saga 15–20% slower;
//! - memtables of 8, 16 or 256 MiB instead of 64 (8 MiB: 15% more CPU per
//!   write), and `fdatasync` instead of `fsync`: no gain.
//!
//! # Layout on disk
//!
//! The keyspace `data` maps each key (its UTF-8 bytes) to an 8-byte
//! big-endian version followed by the value. The keyspace `meta` holds
//! `last_version`, the highest version ever handed out, written in the same
//! atomic batch as the writes that use it: versions come from this one
//! counter, so they are never reused, across deletes and restarts alike.
//!
//! Nothing on disk makes the store panic: a value shorter than its version
//! header or a key that is not UTF-8 is reported as [`StoreError::Backend`]
//! naming the key.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use byteview::ByteView;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use tokio::sync::oneshot;

use super::{DueSignal, Expect, ScanPage, Store, Versioned, WAKE_PREFIX, Write};
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

/// At most this many operations go into one durable commit.
pub const MAX_BATCH_OPS: usize = 8192;

/// A commit stops taking operations once their values add up to this many
/// bytes (32 MiB), so a few large values do not make one huge commit.
pub const MAX_BATCH_BYTES: usize = 32 << 20;

/// How many keys' versions the sequencer keeps before it drops the
/// committed ones (about 100 bytes each); a few in unit tests, so they
/// cross the bound.
const VERSION_CACHE_ENTRIES: usize = if cfg!(test) { 64 } else { 1 << 17 };

/// The runtime's due index (the keys under [`WAKE_PREFIX`]), kept in
/// memory beside the database and answering its scans. Its keys are
/// written and deleted all the time, and a scan of an LSM tree walks every
/// deleted key until a compaction drops it: the poller, which scans the
/// index from its start, would pay for every hint deleted since the last
/// compaction. The copy holds only the live hints (a few dozen bytes
/// each); it is loaded when the store opens and updated by the commit
/// thread after each commit, before the writers learn of it, so a scan
/// sees every write whose answer was given.
type DueIndex = Arc<Mutex<BTreeMap<String, Versioned>>>;

fn lock_due(index: &DueIndex) -> std::sync::MutexGuard<'_, BTreeMap<String, Versioned>> {
    // Changed only by single inserts and removes.
    index
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Bytes of the version header before each stored value.
const HEADER: usize = 8;
/// The key in `meta` holding the highest version handed out.
const LAST_VERSION: &str = "last_version";

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

/// A write's answer, once its commit is over.
async fn answered(answer: Answering) -> Result<Option<u64>, StoreError> {
    // A dropped reply means a store thread died with the operation queued
    // (or the queue was gone): whether it was written is unknown, so say
    // unavailable.
    answer.await.map_err(|_| stopped())?
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

fn stopped() -> StoreError {
    StoreError::Unavailable("the embedded store's commit threads have stopped".into())
}

fn backend(message: String) -> StoreError {
    StoreError::Backend(message.into())
}

/// A fjall error, with what the store was doing.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
struct EngineError {
    context: &'static str,
    source: fjall::Error,
}

fn engine(context: &'static str, source: fjall::Error) -> StoreError {
    StoreError::Backend(Box::new(EngineError { context, source }))
}

/// Splits a stored entry into its version and value.
fn split<'a>(key: &[u8], stored: &'a [u8]) -> Result<(u64, &'a [u8]), StoreError> {
    match stored.split_first_chunk::<HEADER>() {
        Some((version, value)) => Ok((u64::from_be_bytes(*version), value)),
        None => Err(backend(format!(
            "the embedded store is corrupt: the value of key {:?} is {} bytes, shorter than its {HEADER}-byte version header",
            String::from_utf8_lossy(key),
            stored.len()
        ))),
    }
}

fn decode(key: &[u8], stored: &[u8]) -> Result<Versioned, StoreError> {
    split(key, stored).map(|(version, value)| Versioned {
        value: value.to_vec(),
        version,
    })
}

/// The stored form of a value before its version is decided: a header to
/// hold the version, then the bytes. Built on the writer's thread, once, in
/// the buffer fjall keeps (its `Slice` is a `ByteView`): the writer's own
/// buffer is freed on the thread that made it, and the sequencer only
/// writes the version in.
fn staged(value: &[u8]) -> ByteView {
    ByteView::fused(&[0; HEADER], value)
}

/// `staged` with its version written in.
fn stamped(mut stored: ByteView, version: u64) -> fjall::Slice {
    let written = match stored.get_mut() {
        Some(mut bytes) => {
            bytes[..HEADER].copy_from_slice(&version.to_be_bytes());
            true
        }
        None => false,
    };
    if written {
        stored.into()
    } else {
        // Shared (never, for a value just staged): a copy of its own.
        ByteView::fused(&version.to_be_bytes(), &stored[HEADER..]).into()
    }
}

fn holds(expect: Expect, current: Option<u64>) -> bool {
    match expect {
        Expect::Any => true,
        Expect::Absent => current.is_none(),
        Expect::Version(version) => current == Some(version),
    }
}

/// The outcome of a write: its new version (`None` for a delete).
type Outcome = Result<Option<u64>, StoreError>;

/// Where a write's outcome goes.
enum Reply {
    /// A lone write's caller (`put`, `delete`).
    One(oneshot::Sender<Outcome>),
    /// Write number `.1` of a `put_batch`, whose caller is answered once,
    /// for all its writes.
    InBatch(Arc<BatchAnswers>, usize),
}

impl Reply {
    fn send(self, outcome: Outcome) {
        match self {
            // A writer that gave up waiting dropped its receiver.
            Reply::One(reply) => {
                let _ = reply.send(outcome);
            }
            Reply::InBatch(batch, index) => batch.answer(index, outcome),
        }
    }
}

/// The outcomes of a `put_batch`'s writes, sent to its caller when the last
/// one is in (or, if the store's threads died with some unanswered, when
/// the last reference is dropped: those are then unavailable).
struct BatchAnswers {
    state: Mutex<BatchState>,
}

struct BatchState {
    outcomes: Vec<Option<Outcome>>,
    missing: usize,
    caller: Option<oneshot::Sender<Vec<Option<Outcome>>>>,
}

impl BatchAnswers {
    /// Answers for `writes` writes, and where the caller waits for them.
    fn new(writes: usize) -> (Arc<BatchAnswers>, oneshot::Receiver<Vec<Option<Outcome>>>) {
        let (caller, answers) = oneshot::channel();
        let state = BatchState {
            outcomes: (0..writes).map(|_| None).collect(),
            missing: writes,
            caller: Some(caller),
        };
        let batch = Arc::new(BatchAnswers {
            state: Mutex::new(state),
        });
        (batch, answers)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState> {
        // Only filled in by `answer`, which cannot panic halfway.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn answer(&self, index: usize, outcome: Outcome) {
        let done = {
            let mut state = self.lock();
            if let Some(slot) = state.outcomes.get_mut(index)
                && slot.is_none()
            {
                *slot = Some(outcome);
                state.missing -= 1;
            }
            if state.missing == 0 {
                state
                    .caller
                    .take()
                    .map(|caller| (caller, std::mem::take(&mut state.outcomes)))
            } else {
                None
            }
        };
        if let Some((caller, outcomes)) = done {
            let _ = caller.send(outcomes);
        }
    }
}

impl Drop for BatchAnswers {
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(caller) = state.caller.take() {
            let _ = caller.send(std::mem::take(&mut state.outcomes));
        }
    }
}

/// Where a caller waits for a write's answer.
type Answering = oneshot::Receiver<Outcome>;

/// A write from a caller: a put, or a delete when `value` is `None`.
struct Op {
    key: String,
    /// The value, [`staged`].
    value: Option<ByteView>,
    expect: Expect,
    reply: Reply,
}

impl Op {
    /// A write, and where its answer will come.
    fn new(key: String, value: Option<ByteView>, expect: Expect) -> (Op, Answering) {
        let (reply, answer) = oneshot::channel();
        let op = Op {
            key,
            value,
            expect,
            reply: Reply::One(reply),
        };
        (op, answer)
    }
}

/// What the sequencer receives.
enum Msg {
    /// A caller's write.
    Op(Op),
    /// A caller's writes, in order (`put_batch`): one message for all.
    Ops(Vec<Op>),
    /// The commit thread finished batch number `.0`: answer its writers.
    Committed(u64, Result<(), String>, Vec<Answer>),
    /// The last store handle is gone.
    Shutdown,
}

/// A writer waiting for its batch's commit, and the outcome it will get.
struct Answer {
    reply: Reply,
    decision: Decision,
}

/// What the sequencer decided for one operation.
enum Decision {
    /// Written in this batch with this version (`None`: a delete).
    Write(Option<u64>),
    /// Nothing to write: a delete of an absent key.
    Nothing,
    /// Fails without writing.
    Fail(StoreError),
}

/// The batch the sequencer is filling while the commit thread is busy.
struct Building {
    /// Batches are numbered in the order they are filled and committed.
    number: u64,
    batch: Option<fjall::OwnedWriteBatch>,
    answers: Vec<Answer>,
    bytes: usize,
    /// Its writes of due-index keys (`None`: deleted), for [`DueIndex`].
    due: Vec<(String, Option<Versioned>)>,
}

/// The latest decided version of a key (`None`: deleted), and the number
/// of the batch that writes it.
struct Known {
    version: Option<u64>,
    batch: u64,
}

impl Building {
    /// Batch `number`, answering into `answers` (empty; its room is kept
    /// from batch to batch, so a large batch is not regrown write by write).
    fn new(number: u64, answers: Vec<Answer>) -> Building {
        Building {
            number,
            batch: None,
            answers,
            bytes: 0,
            due: Vec::new(),
        }
    }

    fn is_full(&self) -> bool {
        self.answers.len() >= MAX_BATCH_OPS || self.bytes >= MAX_BATCH_BYTES
    }
}

/// One batch for the commit thread.
struct Job {
    number: u64,
    /// `None` when the batch writes nothing (only conflicts).
    batch: Option<fjall::OwnedWriteBatch>,
    answers: Vec<Answer>,
    /// Its writes of due-index keys, applied to [`DueIndex`] once committed.
    due: Vec<(String, Option<Versioned>)>,
}

/// The sequencer thread: the only one that decides writes. It checks each
/// write's expectation as it arrives, against the versions of the batch
/// being filled and of the batch being committed, and hands the filled batch
/// to the commit thread the moment that one is free. So checking, encoding
/// and answering overlap the commit's fsync, and everything that arrives
/// during an fsync shares the next one.
struct Sequencer {
    db: Database,
    data: Keyspace,
    meta: Keyspace,
    last_version: u64,
    /// The latest decided version of recently written keys: every key the
    /// batch being filled or the one being committed writes, and recently
    /// committed ones. Exact, because this thread is the only writer; one
    /// lookup per write, and no database read for a hot key.
    known: FastHashMap<String, Known>,
    /// The number of the last batch committed successfully: keys written
    /// by it or earlier ones may be dropped from `known`.
    committed: u64,
    building: Building,
    /// Writes that arrived while `building` was full, in order.
    waiting: VecDeque<Op>,
    /// The most writes a batch has held: the room the next one gets.
    largest: usize,
    /// The answers of the last batch answered, emptied, for the next batch.
    spare: Vec<Answer>,
    /// Whether the commit thread holds a batch.
    busy: bool,
    jobs: mpsc::Sender<Job>,
    committer: JoinHandle<()>,
}

impl Sequencer {
    fn run(mut self, messages: mpsc::Receiver<Msg>) {
        let mut closing = false;
        loop {
            if !self.busy && !self.building.answers.is_empty() {
                self.hand_off();
            }
            if closing && !self.busy && self.building.answers.is_empty() && self.waiting.is_empty()
            {
                break;
            }
            match messages.recv() {
                Ok(Msg::Op(op)) => self.arrive(op),
                Ok(Msg::Ops(ops)) => {
                    for op in ops {
                        self.arrive(op);
                    }
                }
                Ok(Msg::Committed(number, result, answers)) => {
                    self.busy = false;
                    self.committed(number, &result);
                    // Keep the commit thread busy first: answering a large
                    // batch takes a while, and the next one is ready.
                    if !self.building.answers.is_empty() {
                        self.hand_off();
                    }
                    let mut answers = answers;
                    answer(&mut answers, &result);
                    if answers.capacity() > self.spare.capacity() {
                        self.spare = answers;
                    }
                    while !self.building.is_full() {
                        match self.waiting.pop_front() {
                            Some(op) => self.add(op),
                            None => break,
                        }
                    }
                }
                Ok(Msg::Shutdown) => closing = true,
                // Every sender is gone: nobody is left to answer.
                Err(_) => break,
            }
        }
        // Closing the job queue stops the commit thread.
        drop(self.jobs);
        let _ = self.committer.join();
    }

    /// Takes a write as it arrives: into the batch being filled, or behind
    /// the writes waiting for room.
    fn arrive(&mut self, op: Op) {
        if self.building.is_full() || !self.waiting.is_empty() {
            self.waiting.push_back(op);
        } else {
            self.add(op);
        }
    }

    fn hand_off(&mut self) {
        self.largest = self
            .largest
            .max(self.building.answers.len())
            .min(MAX_BATCH_OPS);
        let next = self.next_building();
        let building = std::mem::replace(&mut self.building, next);
        let batch = building.batch.map(|mut batch| {
            // The counter goes in the same atomic batch as the versions it
            // handed out. On failure it is not rolled back: part of the
            // batch may be on disk, and a gap in versions is harmless.
            batch.insert(
                &self.meta,
                LAST_VERSION,
                self.last_version.to_be_bytes().to_vec(),
            );
            batch
        });
        let job = Job {
            number: building.number,
            batch,
            answers: building.answers,
            due: building.due,
        };
        match self.jobs.send(job) {
            Ok(()) => self.busy = true,
            // The commit thread is gone; the job comes back undone.
            Err(mpsc::SendError(job)) => {
                self.committed(job.number, &Err("the commit thread has stopped".into()));
                let mut answers = job.answers;
                answer(&mut answers, &Err("the commit thread has stopped".into()));
            }
        }
    }

    /// The batch after the one being filled, with room for the largest.
    fn next_building(&mut self) -> Building {
        let mut answers = std::mem::take(&mut self.spare);
        answers.reserve(self.largest);
        Building::new(self.building.number + 1, answers)
    }

    /// The current version of `key`: the latest decided one, else the
    /// database's.
    fn current(&self, key: &str) -> Result<Option<u64>, StoreError> {
        if let Some(known) = self.known.get(key) {
            return Ok(known.version);
        }
        match self
            .data
            .get(key)
            .map_err(|e| engine("cannot read a key", e))?
        {
            None => Ok(None),
            Some(stored) => split(key.as_bytes(), &stored).map(|(version, _)| Some(version)),
        }
    }

    /// Records the end of batch `number`'s commit.
    fn committed(&mut self, number: u64, result: &Result<(), String>) {
        if let Err(e) = result {
            // The known versions cannot be trusted now, nor the batch being
            // filled, whose writes were decided against them: fail it
            // whole. Writes still waiting are decided afresh against the
            // database.
            self.known.clear();
            let next = self.next_building();
            let building = std::mem::replace(&mut self.building, next);
            for Answer { reply, .. } in building.answers {
                reply.send(Err(backend(format!(
                    "the embedded store could not commit an earlier batch, nothing was written: {e}"
                ))));
            }
            return;
        }
        self.committed = number;
        if self.known.len() >= VERSION_CACHE_ENTRIES {
            // Dropping every committed key now and then is simpler than an
            // LRU and costs one database read per key afterwards.
            let committed = self.committed;
            self.known.retain(|_, known| known.batch > committed);
        }
    }

    /// Records `version` as the latest decided one of `key`.
    fn know(&mut self, key: String, version: Option<u64>) {
        let known = Known {
            version,
            batch: self.building.number,
        };
        self.known.insert(key, known);
    }

    /// Decides one write and adds it to the batch being filled.
    fn add(&mut self, op: Op) {
        let Op {
            key,
            value,
            expect,
            reply,
        } = op;
        let decision = match self.current(&key) {
            Err(e) => Decision::Fail(e),
            Ok(current) if !holds(expect, current) => Decision::Fail(StoreError::Conflict),
            Ok(current) => {
                let expected = self.building.answers.capacity();
                let batch = self.building.batch.get_or_insert_with(|| {
                    fjall::OwnedWriteBatch::with_capacity(self.db.clone(), expected)
                        .durability(Some(PersistMode::SyncAll))
                });
                match value {
                    Some(value) => {
                        self.last_version += 1;
                        let version = self.last_version;
                        self.building.bytes += key.len() + value.len() - HEADER;
                        if key.starts_with(WAKE_PREFIX) {
                            let versioned = Versioned {
                                value: value[HEADER..].to_vec(),
                                version,
                            };
                            self.building.due.push((key.clone(), Some(versioned)));
                        }
                        batch.insert(&self.data, key.as_str(), stamped(value, version));
                        self.know(key, Some(version));
                        Decision::Write(Some(version))
                    }
                    None if current.is_some() => {
                        self.building.bytes += key.len();
                        if key.starts_with(WAKE_PREFIX) {
                            self.building.due.push((key.clone(), None));
                        }
                        batch.remove(&self.data, key.as_str());
                        self.know(key, None);
                        Decision::Write(None)
                    }
                    None => Decision::Nothing,
                }
            }
        };
        self.building.answers.push(Answer { reply, decision });
    }
}

/// Sends each writer its outcome once its batch's commit is over.
fn answer(answers: &mut Vec<Answer>, committed: &Result<(), String>) {
    for Answer { reply, decision } in answers.drain(..) {
        let outcome = match (decision, committed) {
            (Decision::Fail(e), _) => Err(e),
            (Decision::Nothing, _) => Ok(None),
            (Decision::Write(version), Ok(())) => Ok(version),
            (Decision::Write(_), Err(e)) => Err(backend(format!(
                "the embedded store could not commit (the write may or may not be on disk): {e}"
            ))),
        };
        reply.send(outcome);
    }
}

/// The commit thread: writes each batch to the journal, fsyncs it, applies
/// it (and its due-index writes to `due_index`), and reports back to the
/// sequencer, which answers the writers.
fn commit_loop(jobs: mpsc::Receiver<Job>, done: mpsc::Sender<Msg>, due_index: DueIndex) {
    while let Ok(Job {
        number,
        batch,
        answers,
        due,
    }) = jobs.recv()
    {
        let result = match batch {
            None => Ok(()),
            // fjall's own invariants may panic; the writers must still get an
            // answer rather than wait forever.
            Some(batch) => {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| batch.commit())) {
                    Ok(result) => result.map_err(|e| e.to_string()),
                    Err(_) => Err("the commit panicked".to_owned()),
                }
            }
        };
        // A failed commit may or may not be on disk: its due keys are left
        // out, as hints are (a missing one costs latency until the
        // runtime's recovery scan, a stale one a read); reopening the store
        // reloads the index from disk.
        if result.is_ok() && !due.is_empty() {
            let mut index = lock_due(&due_index);
            for (key, value) in due {
                match value {
                    Some(value) => index.insert(key, value),
                    None => index.remove(&key),
                };
            }
        }
        if done.send(Msg::Committed(number, result, answers)).is_err() {
            break;
        }
    }
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
    /// [`GroupCommit`]: super::GroupCommit
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

/// A scan of the due index, from its copy in memory (see [`DueIndex`]).
fn scan_due(index: &DueIndex, prefix: &str, after: Option<&str>, limit: usize) -> ScanPage {
    let start = match after {
        Some(after) if after >= prefix => after,
        _ => prefix,
    };
    let index = lock_due(index);
    let mut entries: Vec<(String, Versioned)> = index
        .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
        .take_while(|(key, _)| key.starts_with(prefix))
        .filter(|(key, _)| after.is_none_or(|after| key.as_str() > after))
        .take(limit.saturating_add(1))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    drop(index);
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|(key, _)| key.clone())
    } else {
        None
    };
    ScanPage { entries, next }
}

#[cfg(test)]
mod tests {
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
