//! Parallel steps: what `sagaflow::join!(a(..), b(..))` in a `#[workflow]`
//! body runs on.
//!
//! A join is one suspension point: one state (`Join{n}`) that stores the
//! live variables and one [`BranchSlot`] per branch. Resuming it starts every
//! unfinished branch concurrently, in the worker's task, each with its own
//! step context, timeout and retry policy. Each branch's end (success, a
//! retry scheduled, a failure for good) is persisted as it happens: the
//! branch sends a [`Checkpoint`] to the worker, which writes the record
//! with that slot filled (and, for a compensable step, its compensation
//! entry pushed) in one compare-and-swap, and the branch waits for that
//! write before it returns. After a crash only the unfinished branches run
//! again.

use std::borrow::Cow;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::context::{AttemptContext, run_attempt};
use crate::error::StepError;
use crate::record::{CompensationEntry, RawJson};
use crate::step::{Step, StepKind, StepOutcome};

/// Where one branch of a join stands, as stored in the join's state.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchSlot {
    /// Not finished: the next attempt to run (1-based).
    Pending {
        /// The attempt number.
        attempt: u32,
    },
    /// Succeeded with this output (as JSON).
    Done {
        /// The step's output.
        output: serde_json::Value,
    },
    /// Failed for good.
    Failed {
        /// The step's name.
        step: String,
        /// The last attempt's error.
        error: StepError,
    },
}

/// The slots of a join's branches, in branch order: the `__branches` field
/// of a join's state.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JoinSlots(pub Vec<BranchSlot>);

impl JoinSlots {
    /// `branches` slots, none started.
    pub fn new(branches: usize) -> JoinSlots {
        JoinSlots(vec![BranchSlot::Pending { attempt: 1 }; branches])
    }
}

/// One branch's end, for the worker to persist before the branch returns.
#[doc(hidden)]
#[derive(Debug)]
pub struct Checkpoint {
    /// The branch's index (0-based, in the order written).
    pub(crate) branch: usize,
    /// Its new slot.
    pub(crate) slot: BranchSlot,
    /// The attempt that ended.
    pub(crate) attempt: u32,
    /// What the attempt came to (for the history and the compensation stack).
    pub(crate) outcome: StepOutcome,
    /// Answered once the checkpoint is written.
    pub(crate) persisted: oneshot::Sender<()>,
}

/// Where the branches left the join once all of them returned.
#[doc(hidden)]
#[derive(Debug)]
pub enum JoinEnd {
    /// Every branch succeeded.
    Ok,
    /// A branch failed for good: the first one in branch order.
    Failed(StepError),
    /// No branch failed for good, but some wait for a retry.
    Suspend,
}

/// One resume of a join's state: runs its unfinished branches.
#[doc(hidden)]
#[derive(Debug)]
pub struct JoinRun {
    workflow_id: Arc<str>,
    state: Cow<'static, str>,
    iteration: Option<u64>,
    slots: Mutex<Vec<BranchSlot>>,
    /// The shortest retry delay a branch scheduled in this resume.
    retry: Mutex<Option<Duration>>,
    checkpoints: Option<mpsc::UnboundedSender<Checkpoint>>,
}

impl JoinRun {
    pub(crate) fn new(
        workflow_id: Arc<str>,
        state: Cow<'static, str>,
        iteration: Option<u64>,
        slots: JoinSlots,
        checkpoints: Option<mpsc::UnboundedSender<Checkpoint>>,
    ) -> JoinRun {
        JoinRun {
            workflow_id,
            state,
            iteration,
            slots: Mutex::new(slots.0),
            retry: Mutex::new(None),
            checkpoints,
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<BranchSlot>> {
        // Slots are only ever replaced whole, so a poisoned lock is usable.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Encodes the arguments of step `S` for its compensation (`None` when
    /// `S` is not compensable); an error when they do not serialize, which
    /// fails the branch: a step that could not be undone is not started.
    pub fn args<S: Step, A: Serialize + ?Sized>(
        &self,
        args: &A,
    ) -> Result<Option<RawJson>, StepError> {
        if S::KIND != StepKind::Compensable {
            return Ok(None);
        }
        RawJson::to_json(args).map(Some).map_err(|error| {
            StepError::permanent(format!("the arguments of step `{}`: {error}", S::NAME))
        })
    }

    /// Runs branch `index` (step `S`): returns its stored output or failure
    /// if it already finished, else runs one attempt (`step`) with the
    /// branch's own step context and the step's timeout, and persists how it
    /// ended before returning.
    pub async fn branch<S, F>(
        &self,
        index: usize,
        args: Result<Option<RawJson>, StepError>,
        step: F,
    ) -> Result<S::Output, StepError>
    where
        S: Step,
        F: Future<Output = Result<S::Output, StepError>> + Send,
    {
        let slot = self.slots().get(index).cloned();
        let attempt = match slot {
            Some(BranchSlot::Done { output }) => {
                return serde_json::from_value(output).map_err(|error| {
                    StepError::permanent(format!(
                        "cannot decode the stored output of step `{}`: {error}",
                        S::NAME
                    ))
                });
            }
            Some(BranchSlot::Failed { error, .. }) => return Err(error),
            Some(BranchSlot::Pending { attempt }) => attempt.max(1),
            None => {
                return Err(StepError::permanent(format!(
                    "the stored join has no slot for branch {index} (step `{}`)",
                    S::NAME
                )));
            }
        };
        let result = match args {
            Err(error) => Err(error),
            Ok(args) => {
                let ctx = AttemptContext {
                    workflow_id: Arc::clone(&self.workflow_id),
                    state: Cow::Owned(format!("{}/{index}", self.state)),
                    step: S::NAME,
                    attempt,
                    iteration: self.iteration,
                };
                run_attempt::<S, F>(ctx, step).await.and_then(|output| {
                    let value = serde_json::to_value(&output).map_err(|error| {
                        StepError::permanent(format!(
                            "the output of step `{}` does not serialize: {error}",
                            S::NAME
                        ))
                    })?;
                    Ok((output, value, args))
                })
            }
        };
        let (slot, outcome, returned) = match result {
            Ok((output, value, args)) => {
                let compensation = args.map(|args| CompensationEntry {
                    step: Cow::Borrowed(S::NAME),
                    args,
                    output: RawJson::from_value(&value),
                    child: None,
                });
                (
                    BranchSlot::Done { output: value },
                    StepOutcome::Succeeded {
                        step: S::NAME,
                        kind: S::KIND,
                        compensation,
                    },
                    Ok(output),
                )
            }
            Err(error) => {
                let policy = S::OPTIONS.retry_policy(S::KIND);
                if error.is_retryable() && policy.allows_another(attempt) {
                    let delay = policy.delay_after(attempt);
                    let mut retry = self
                        .retry
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    *retry = Some(retry.map_or(delay, |shortest| shortest.min(delay)));
                    (
                        BranchSlot::Pending {
                            attempt: attempt.saturating_add(1),
                        },
                        StepOutcome::Retry {
                            step: S::NAME,
                            error: error.clone(),
                            delay,
                        },
                        Err(error),
                    )
                } else {
                    (
                        BranchSlot::Failed {
                            step: S::NAME.to_owned(),
                            error: error.clone(),
                        },
                        StepOutcome::Failed {
                            step: S::NAME,
                            error: error.clone(),
                        },
                        Err(error),
                    )
                }
            }
        };
        if let Some(stored) = self.slots().get_mut(index) {
            *stored = slot.clone();
        }
        if let Some(checkpoints) = &self.checkpoints {
            let (persisted, written) = oneshot::channel();
            let checkpoint = Checkpoint {
                branch: index,
                slot,
                attempt,
                outcome,
                persisted,
            };
            // When the worker is gone (its lease lost), this resume's
            // result is discarded anyway: nothing more to wait for.
            if checkpoints.send(checkpoint).is_ok() {
                let _ = written.await;
            }
        }
        returned
    }

    /// How the join ended, once every branch returned: the first failure
    /// for good in branch order, else a retry if one is scheduled, else `Ok`.
    pub(crate) fn end(self) -> (JoinEnd, Option<Duration>, Option<String>) {
        let retry = self
            .retry
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slots = self
            .slots
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for slot in &slots {
            if let BranchSlot::Failed { step, error } = slot {
                return (JoinEnd::Failed(error.clone()), None, Some(step.clone()));
            }
        }
        if slots
            .iter()
            .any(|slot| matches!(slot, BranchSlot::Pending { .. }))
        {
            // A branch that is pending without a retry scheduled in this
            // resume cannot happen; retry at once rather than stall.
            return (JoinEnd::Suspend, Some(retry.unwrap_or_default()), None);
        }
        (JoinEnd::Ok, None, None)
    }
}

/// Writes `slot` as branch `branch` of the join state `state_name` in the
/// stored state `state` (the state enum serialized: `{"Join1": {.., "__branches": [..]}}`).
pub(crate) fn set_slot(
    stored: &mut RawJson,
    state_name: &str,
    branch: usize,
    slot: &BranchSlot,
) -> Result<(), String> {
    let mut state = stored.to_value().map_err(|error| error.to_string())?;
    let target = state
        .get_mut(state_name)
        .and_then(|fields| fields.get_mut("__branches"))
        .and_then(|slots| slots.get_mut(branch))
        .ok_or_else(|| format!("the stored state `{state_name}` has no join slot {branch}"))?;
    *target = serde_json::to_value(slot).map_err(|error| error.to_string())?;
    *stored = RawJson::from_value(&state);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_written_into_the_stored_state() {
        let mut state = RawJson::from_value(&serde_json::json!({
            "Join1": { "trip": "t", "__branches": serde_json::to_value(JoinSlots::new(2)).unwrap() }
        }));
        let done = BranchSlot::Done {
            output: serde_json::json!(7),
        };
        set_slot(&mut state, "Join1", 1, &done).unwrap();
        assert_eq!(
            state.to_value().unwrap(),
            serde_json::json!({
                "Join1": { "trip": "t", "__branches": [
                    { "pending": { "attempt": 1 } },
                    { "done": { "output": 7 } },
                ] }
            })
        );
        assert!(set_slot(&mut state, "Join1", 2, &done).is_err());
        assert!(set_slot(&mut state, "Other2", 0, &done).is_err());
    }
}
