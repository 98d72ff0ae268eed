//! The `Workflow` trait `#[workflow]` implements, and the driver its
//! generated resume code talks to.

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, de::DeserializeOwned};

use crate::context::{AttemptContext, run_attempt};
use crate::error::{StepError, WorkflowError};
use crate::machine::StateMachine;
pub use crate::record::CompensationEntry;
use crate::record::RawJson;
pub use crate::step::StepOutcome;
use crate::step::{CompensationFuture, Step, StepKind};

/// A workflow: implemented by `#[workflow]` on the unit struct it generates,
/// so the function's name is both a type and a value.
///
/// ```
/// # use sagaflow::prelude::*;
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # pub struct Order { id: String }
/// # #[step(readonly)]
/// # async fn receipt_for(order: &Order) -> Result<String, StepError> { Ok(order.id.clone()) }
/// #[workflow]
/// async fn place_order(order: Order) -> Result<String, WorkflowError> {
///     let receipt = receipt_for(&order).await?;
///     Ok(receipt)
/// }
///
/// println!("{}", place_order.state_machine().to_mermaid());
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a workflow",
    label = "not a `#[workflow]`",
    note = "a workflow is an `async fn` with `#[workflow]`, whose name is also a unit struct; pass that name: \
            `sagaflow::child(ship_order, input).await?` in a workflow body, or `rt.start(ship_order, id, input)`"
)]
pub trait Workflow: Send + Sync + 'static {
    /// The workflow's name: the function's name.
    const NAME: &'static str;
    /// The input: the single parameter's type, or a tuple of all of them.
    type Input: Serialize + DeserializeOwned + Send + 'static;
    /// The `T` of the workflow's `Result<T, WorkflowError>`.
    type Output: Serialize + DeserializeOwned + Send + 'static;
    /// The generated state enum (`<Name>State`): `Start` holding the
    /// input, then one variant per suspension point, holding the variables
    /// live there. What a migration (`#[migrate]`) maps from and to.
    type State: Serialize + DeserializeOwned + Send + 'static;

    /// The static description of the generated state machine.
    fn state_machine(&self) -> &'static StateMachine;

    /// The state an instance starts in.
    #[doc(hidden)]
    fn begin(input: Self::Input) -> Self::State;

    /// The name of the variant `state` is (for records and diagrams).
    #[doc(hidden)]
    fn state_name(state: &Self::State) -> &'static str;

    /// Runs the step of `state` (one attempt) and the pure code after it, up
    /// to the next suspension point or the end.
    #[doc(hidden)]
    fn resume(
        state: Self::State,
        driver: &mut Driver,
    ) -> impl Future<Output = Transition<Self::State, Self::Output>> + Send + '_;

    /// What `state` waits for before its segment may run: a durable timer
    /// or a signal; `None` for a step's state (and `Start`).
    #[doc(hidden)]
    fn suspension(state: &Self::State) -> Option<Suspension> {
        let _ = state;
        None
    }

    /// Starts the compensation of the step named `step`, or `None` when this
    /// workflow calls no compensable step by that name.
    #[doc(hidden)]
    fn compensate(step: &str, args: RawJson, output: RawJson) -> Option<CompensationFuture>;
}

/// Where one `resume` call left the instance.
#[doc(hidden)]
#[derive(Debug)]
pub enum Transition<S, O> {
    /// At the next suspension point (the step ran and succeeded or failed for
    /// good and the workflow went on, or the `Start` state ran its prefix).
    Next(S),
    /// The workflow returned `Ok`.
    Complete(O),
    /// The workflow returned `Err`: compensate (or fail, after the pivot).
    Fail(WorkflowError),
    /// The step did not finish in this attempt; the driver holds why and when
    /// to try again. The state is unchanged.
    Suspend,
}

/// When a durable timer fires: a delay from the moment the instance enters
/// the timer's state (`sagaflow::sleep`), or a wall-clock time
/// (`sagaflow::sleep_until`). Stored in the state, so the runtime can turn
/// it into the record's `next_run_at` when it commits the state.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum Timer {
    /// This many milliseconds after the state is entered.
    After(u64),
    /// At this time (ms since the Unix epoch).
    At(u64),
}

impl Timer {
    /// A timer `duration` after the state is entered.
    pub fn after(duration: Duration) -> Timer {
        Timer::After(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    /// A timer at wall-clock time `time` (at once if it has passed).
    pub fn at(time: SystemTime) -> Timer {
        let ms = time.duration_since(UNIX_EPOCH).map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
        Timer::At(ms)
    }

    /// The time it fires (ms since the Unix epoch), for a state entered at `now`.
    pub fn deadline(self, now: u64) -> u64 {
        match self {
            Timer::After(ms) => now.saturating_add(ms),
            Timer::At(ms) => ms,
        }
    }
}

/// What a state waits for before its segment may run.
#[doc(hidden)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Suspension {
    /// A durable timer (`sagaflow::sleep`, `sagaflow::sleep_until`).
    Timer(Timer),
    /// A signal (`sagaflow::signal`), with a timeout (`sagaflow::signal_timeout`).
    Signal {
        /// The signal's name.
        name: &'static str,
        /// When to stop waiting, if ever.
        timeout: Option<Timer>,
    },
    /// A child workflow (`sagaflow::child`): the runtime starts it (once)
    /// and resumes the state when it has ended.
    Child {
        /// The child's workflow name (`Workflow::NAME`).
        workflow: &'static str,
        /// The child's input, as JSON.
        input: serde_json::Value,
    },
}

/// What a step attempt came to, as the generated code sees it.
#[doc(hidden)]
#[derive(Debug)]
pub enum Attempt<T> {
    /// Final: the step's output, or its error after the last attempt.
    Done(Result<T, StepError>),
    /// Not final: the attempt failed and another is scheduled.
    Suspend,
}

/// Runs one step attempt for the generated resume code and records what
/// happened, so the runtime can persist it in the same write as the new state.
#[doc(hidden)]
#[derive(Debug)]
pub struct Driver {
    workflow_id: Arc<str>,
    state: Cow<'static, str>,
    attempt: u32,
    outcome: Option<StepOutcome>,
    encode_error: Option<String>,
    /// Committed transitions so far (the record's `transitions`).
    transitions: u64,
    /// Whether the state is on a cycle of the machine (inside a loop).
    on_cycle: bool,
    /// What `sagaflow::now()` returns (the record's `committed_at`).
    now_ms: u64,
    /// The oldest signal of the name the state waits for: its number and value.
    signal: Option<(u64, serde_json::Value)>,
    /// Whether the state's signal wait has timed out.
    timed_out: bool,
    /// The number of the signal this resume consumed.
    consumed: Option<u64>,
    /// The status the segment set with `sagaflow::set_status`.
    status: Option<serde_json::Value>,
    /// Whether the state's signal has not arrived (the resume suspended for it).
    awaiting: bool,
    /// Where a join's branches report their ends, to be persisted one by one.
    checkpoints: Option<tokio::sync::mpsc::UnboundedSender<crate::join::Checkpoint>>,
    /// A join that waits for a retry of some branch: after this delay.
    join_retry: Option<Duration>,
    /// The step of the branch that failed a join, if one did.
    join_failed: Option<String>,
    /// For a child workflow's state: how the child ended (its output, or
    /// why it did not complete).
    child: Option<Result<serde_json::Value, StepError>>,
}

impl Driver {
    /// A driver for attempt `attempt` (1-based) of the step at `state`.
    pub fn new(workflow_id: impl Into<String>, state: impl Into<String>, attempt: u32) -> Driver {
        Driver::resuming(
            Arc::from(workflow_id.into()),
            Cow::Owned(state.into()),
            attempt,
        )
    }

    /// [`Driver::new`] with the id and state name shared rather than copied.
    pub(crate) fn resuming(
        workflow_id: Arc<str>,
        state: Cow<'static, str>,
        attempt: u32,
    ) -> Driver {
        Driver {
            workflow_id,
            state,
            attempt: attempt.max(1),
            outcome: None,
            encode_error: None,
            transitions: 0,
            on_cycle: false,
            now_ms: 0,
            signal: None,
            timed_out: false,
            consumed: None,
            status: None,
            awaiting: false,
            checkpoints: None,
            join_retry: None,
            join_failed: None,
            child: None,
        }
    }

    /// Gives a join's state the channel its branches report their ends on;
    /// without one, a join runs and keeps its slots in memory only.
    pub fn with_checkpoints(
        mut self,
        checkpoints: tokio::sync::mpsc::UnboundedSender<crate::join::Checkpoint>,
    ) -> Driver {
        self.checkpoints = Some(checkpoints);
        self
    }

    /// Starts a resume of a join's state with its stored `slots`: branch `i`
    /// gets the idempotency key `{workflow id}/{state}/{i}` (plus the
    /// iteration inside a loop).
    pub fn join(&mut self, slots: crate::join::JoinSlots) -> crate::join::JoinRun {
        crate::join::JoinRun::new(
            Arc::clone(&self.workflow_id),
            self.state.clone(),
            self.iteration(),
            slots,
            self.checkpoints.clone(),
        )
    }

    /// Ends a join's resume once every branch returned.
    pub fn end_join(&mut self, run: crate::join::JoinRun) -> crate::join::JoinEnd {
        let (end, retry, failed) = run.end();
        self.join_retry = retry;
        self.join_failed = failed;
        end
    }

    /// The delay after which a join waits to retry some branch, if it does.
    pub fn join_retry(&self) -> Option<Duration> {
        self.join_retry
    }

    /// The step of the branch that failed the join, if one did.
    pub fn join_failed(&self) -> Option<&str> {
        self.join_failed.as_deref()
    }

    /// Gives a child workflow's state how the child ended: its output as
    /// JSON, or the error the parent sees.
    pub fn with_child(mut self, end: Result<serde_json::Value, StepError>) -> Driver {
        self.child = Some(end);
        self
    }

    /// How the awaited child workflow `W` ended: `Some(Ok(output))`,
    /// `Some(Err(..))` when it did not complete (or its output does not
    /// decode as `W::Output`), `None` when it has not ended (the resume
    /// suspends and waits on).
    pub fn child<W: Workflow>(&mut self) -> Option<Result<W::Output, StepError>> {
        let Some(end) = self.child.take() else {
            self.awaiting = true;
            return None;
        };
        Some(end.and_then(|output| {
            serde_json::from_value(output).map_err(|error| {
                StepError::permanent(format!(
                    "the output of child workflow `{}` does not decode: {error}",
                    W::NAME
                ))
            })
        }))
    }

    /// Sets the number of committed transitions (default 0), and whether the
    /// state is on a cycle of the machine: then its idempotency key ends in
    /// that number, so each iteration of a loop gets its own.
    pub fn with_transitions(mut self, transitions: u64, on_cycle: bool) -> Driver {
        self.transitions = transitions;
        self.on_cycle = on_cycle;
        self
    }

    /// Sets what `sagaflow::now()` returns in the segment (ms since the
    /// Unix epoch; default 0).
    pub fn with_now_ms(mut self, now_ms: u64) -> Driver {
        self.now_ms = now_ms;
        self
    }

    /// Gives a signal state its oldest waiting signal (number and value).
    pub fn with_signal(mut self, seq: u64, value: serde_json::Value) -> Driver {
        self.signal = Some((seq, value));
        self
    }

    /// Tells a `signal_timeout` state that its timeout has passed.
    pub fn with_timed_out(mut self, timed_out: bool) -> Driver {
        self.timed_out = timed_out;
        self
    }

    /// The number of the signal this resume consumed, if it consumed one.
    pub fn consumed(&self) -> Option<u64> {
        self.consumed
    }

    /// The status the segment set last, if it set one.
    pub fn take_status(&mut self) -> Option<serde_json::Value> {
        self.status.take()
    }

    /// Whether the resume suspended because the state's signal has not arrived.
    pub fn is_awaiting(&self) -> bool {
        self.awaiting
    }

    /// The idempotency-key iteration: the transition count on a cycle.
    fn iteration(&self) -> Option<u64> {
        self.on_cycle.then_some(self.transitions)
    }

    /// Takes the oldest signal for a signal state: `Some(Ok(value))` (and the
    /// signal counts as consumed by this transition), `Some(Err(..))` when
    /// it does not decode as `T` (the workflow fails with that error), or
    /// `None` when none has arrived.
    pub fn receive<T: DeserializeOwned>(&mut self, name: &str) -> Option<Result<T, WorkflowError>> {
        let Some((seq, value)) = self.signal.take() else {
            if !self.timed_out {
                self.awaiting = true;
            }
            return None;
        };
        self.consumed = Some(seq);
        Some(serde_json::from_value(value).map_err(|error| {
            WorkflowError::new(format!(
                "signal `{name}` carries a value of another type than the workflow waits for: {error}"
            ))
        }))
    }

    /// Whether a `signal_timeout` wait has timed out.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Runs a segment (the pure code after a suspension point) with the
    /// deterministic context `sagaflow::now()`, `uuid()`, `random()` and
    /// `set_status()` read and write, and turns its result into a transition.
    pub fn segment<S, T, E: Into<WorkflowError>>(
        &mut self,
        run: impl FnOnce() -> Result<Transition<S, T>, E>,
    ) -> Transition<S, T> {
        let context = crate::segment::SegmentContext::for_segment(
            Arc::clone(&self.workflow_id),
            self.state.clone(),
            self.transitions,
            self.now_ms,
        );
        let (result, status) = crate::segment::in_segment(context, run);
        if status.is_some() {
            self.status = status;
        }
        segment(result)
    }

    /// What the step attempt of this `resume` came to (`None` if no step ran).
    pub fn outcome(&self) -> Option<&StepOutcome> {
        self.outcome.as_ref()
    }

    /// Takes the outcome out of the driver.
    pub fn take_outcome(&mut self) -> Option<StepOutcome> {
        self.outcome.take()
    }

    /// A value the driver could not serialize (step args or output), which
    /// makes the transition unusable.
    pub fn encode_error(&self) -> Option<&str> {
        self.encode_error.as_deref()
    }

    /// Encodes the arguments of step `S` for its compensation, or `None` when
    /// `S` is not compensable. Called before the step runs, because the
    /// arguments may be moved into it.
    pub fn args<S: Step, A: Serialize + ?Sized>(&mut self, args: &A) -> Option<RawJson> {
        if S::KIND != StepKind::Compensable {
            return None;
        }
        match RawJson::to_json(args) {
            Ok(value) => Some(value),
            Err(error) => {
                self.encode_error = Some(format!("arguments of step `{}`: {error}", S::NAME));
                None
            }
        }
    }

    /// Runs one attempt of step `S` (with its timeout and step context) and
    /// decides, from the step's retry policy, whether a failure is final.
    pub async fn attempt<S, F>(&mut self, args: Option<RawJson>, step: F) -> Attempt<S::Output>
    where
        S: Step,
        F: Future<Output = Result<S::Output, StepError>> + Send,
    {
        let ctx = AttemptContext {
            workflow_id: Arc::clone(&self.workflow_id),
            state: self.state.clone(),
            step: S::NAME,
            attempt: self.attempt,
            iteration: self.iteration(),
        };
        let result = run_attempt::<S, F>(ctx, step).await;
        match result {
            Ok(output) => {
                let compensation = match args {
                    Some(args) => match RawJson::to_json(&output) {
                        Ok(output) => Some(CompensationEntry {
                            step: Cow::Borrowed(S::NAME),
                            args,
                            output,
                            child: None,
                        }),
                        Err(error) => {
                            self.encode_error =
                                Some(format!("output of step `{}`: {error}", S::NAME));
                            None
                        }
                    },
                    None => None,
                };
                self.outcome = Some(StepOutcome::Succeeded {
                    step: S::NAME,
                    kind: S::KIND,
                    compensation,
                });
                Attempt::Done(Ok(output))
            }
            Err(error) => {
                let policy = S::OPTIONS.retry_policy(S::KIND);
                if error.is_retryable() && policy.allows_another(self.attempt) {
                    let delay = policy.delay_after(self.attempt);
                    self.outcome = Some(StepOutcome::Retry {
                        step: S::NAME,
                        error,
                        delay,
                    });
                    Attempt::Suspend
                } else {
                    self.outcome = Some(StepOutcome::Failed {
                        step: S::NAME,
                        error: error.clone(),
                    });
                    Attempt::Done(Err(error))
                }
            }
        }
    }
}

/// Turns the value the workflow body returns into a transition.
/// Generated code wraps every `return e` and the tail expression in it.
#[doc(hidden)]
pub fn complete<S, T, E>(result: Result<T, E>) -> Result<Transition<S, T>, E> {
    result.map(Transition::Complete)
}

/// Turns the result of a continuation segment into a transition: an `Err`
/// the body returned (through `?` or `return Err(..)`) becomes `Fail`.
#[doc(hidden)]
pub fn segment<S, T, E: Into<WorkflowError>>(
    result: Result<Transition<S, T>, E>,
) -> Transition<S, T> {
    match result {
        Ok(transition) => transition,
        Err(error) => Transition::Fail(error.into()),
    }
}

/// Decodes a compensation's stored step arguments or output.
#[doc(hidden)]
pub fn decode<T: DeserializeOwned>(what: &str, value: &RawJson) -> Result<T, StepError> {
    serde_json::from_str(value.get())
        .map_err(|error| StepError::permanent(format!("cannot decode the stored {what}: {error}")))
}
