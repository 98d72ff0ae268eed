//! A write on its way to the sequencer ([`Op`]) and its answer on the way
//! back: to a lone caller, or gathered for a `put_batch`'s caller
//! ([`BatchAnswers`]). Apart from the sequencer, which decides writes, and
//! from the store's methods, which make them.

use std::sync::{Arc, Mutex};

use byteview::ByteView;
use tokio::sync::oneshot;

use super::super::Expect;
use crate::error::StoreError;

/// A write's answer, once its commit is over.
pub(super) async fn answered(answer: Answering) -> Result<Option<u64>, StoreError> {
    // A dropped reply means a store thread died with the operation queued
    // (or the queue was gone): whether it was written is unknown, so say
    // unavailable.
    answer.await.map_err(|_| stopped())?
}

pub(super) fn stopped() -> StoreError {
    StoreError::Unavailable("the embedded store's commit threads have stopped".into())
}

/// The outcome of a write: its new version (`None` for a delete).
type Outcome = Result<Option<u64>, StoreError>;

/// Where a write's outcome goes.
pub(super) enum Reply {
    /// A lone write's caller (`put`, `delete`).
    One(oneshot::Sender<Outcome>),
    /// Write number `.1` of a `put_batch`, whose caller is answered once,
    /// for all its writes.
    InBatch(Arc<BatchAnswers>, usize),
}

impl Reply {
    pub(super) fn send(self, outcome: Outcome) {
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
pub(super) struct BatchAnswers {
    state: Mutex<BatchState>,
}

struct BatchState {
    outcomes: Vec<Option<Outcome>>,
    missing: usize,
    caller: Option<oneshot::Sender<Vec<Option<Outcome>>>>,
}

impl BatchAnswers {
    /// Answers for `writes` writes, and where the caller waits for them.
    pub(super) fn new(
        writes: usize,
    ) -> (Arc<BatchAnswers>, oneshot::Receiver<Vec<Option<Outcome>>>) {
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
pub(super) struct Op {
    pub(super) key: String,
    /// The value, [`staged`](super::disk::staged).
    pub(super) value: Option<ByteView>,
    pub(super) expect: Expect,
    pub(super) reply: Reply,
}

impl Op {
    /// A write, and where its answer will come.
    pub(super) fn new(key: String, value: Option<ByteView>, expect: Expect) -> (Op, Answering) {
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
