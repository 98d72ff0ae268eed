//! The group commit: the sequencer thread, the only one that decides
//! writes, and the commit thread, which writes, fsyncs and applies each
//! batch the sequencer fills (see the module's "Durability and group
//! commit"). Apart from the store's handle, which only queues writes here.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::thread::JoinHandle;

use fjall::{Database, Keyspace, PersistMode};

use super::super::{Expect, Versioned, WAKE_PREFIX};
use super::disk::{HEADER, LAST_VERSION, backend, engine, split, stamped};
use super::due::{DueIndex, lock_due};
use super::writes::{Op, Reply};
use crate::FastHashMap;
use crate::error::StoreError;

/// At most this many operations go into one durable commit.
pub const MAX_BATCH_OPS: usize = 8192;

/// A commit stops taking operations once their values add up to this many
/// bytes (32 MiB), so a few large values do not make one huge commit.
pub const MAX_BATCH_BYTES: usize = 32 << 20;

/// How many keys' versions the sequencer keeps before it drops the
/// committed ones (about 100 bytes each); a few in unit tests, so they
/// cross the bound.
pub(super) const VERSION_CACHE_ENTRIES: usize = if cfg!(test) { 64 } else { 1 << 17 };

pub(super) fn holds(expect: Expect, current: Option<u64>) -> bool {
    match expect {
        Expect::Any => true,
        Expect::Absent => current.is_none(),
        Expect::Version(version) => current == Some(version),
    }
}

/// What the sequencer receives.
pub(super) enum Msg {
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
pub(super) struct Answer {
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
pub(super) struct Building {
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
pub(super) struct Known {
    version: Option<u64>,
    batch: u64,
}

impl Building {
    /// Batch `number`, answering into `answers` (empty; its room is kept
    /// from batch to batch, so a large batch is not regrown write by write).
    pub(super) fn new(number: u64, answers: Vec<Answer>) -> Building {
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
pub(super) struct Job {
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
pub(super) struct Sequencer {
    pub(super) db: Database,
    pub(super) data: Keyspace,
    pub(super) meta: Keyspace,
    pub(super) last_version: u64,
    /// The latest decided version of recently written keys: every key the
    /// batch being filled or the one being committed writes, and recently
    /// committed ones. Exact, because this thread is the only writer; one
    /// lookup per write, and no database read for a hot key.
    pub(super) known: FastHashMap<String, Known>,
    /// The number of the last batch committed successfully: keys written
    /// by it or earlier ones may be dropped from `known`.
    pub(super) committed: u64,
    pub(super) building: Building,
    /// Writes that arrived while `building` was full, in order.
    pub(super) waiting: VecDeque<Op>,
    /// The most writes a batch has held: the room the next one gets.
    pub(super) largest: usize,
    /// The answers of the last batch answered, emptied, for the next batch.
    pub(super) spare: Vec<Answer>,
    /// Whether the commit thread holds a batch.
    pub(super) busy: bool,
    pub(super) jobs: mpsc::Sender<Job>,
    pub(super) committer: JoinHandle<()>,
}

impl Sequencer {
    pub(super) fn run(mut self, messages: mpsc::Receiver<Msg>) {
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
pub(super) fn commit_loop(jobs: mpsc::Receiver<Job>, done: mpsc::Sender<Msg>, due_index: DueIndex) {
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
