//! Registered workflows with their types erased, so one runtime (not generic
//! over anything) can hold many and work on their records as JSON.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{StepError, WorkflowError};
use crate::machine::StateMachine;
use crate::record::RawJson;
use crate::step::CompensationFuture;
use crate::workflow::{Driver, StepOutcome, Suspension, Transition, Workflow};

/// A workflow's state as its own type (`W::State`), erased: kept by the
/// worker that made it, so the next resume needs no decoding of its JSON.
pub(crate) type TypedState = Box<dyn std::any::Any + Send>;

/// A boxed, `Send`, `'static` future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Where one resume left the instance, with state and output as JSON.
#[derive(Debug)]
pub(crate) enum Moved {
    Next {
        state: RawJson,
        state_name: &'static str,
        /// What the new state waits for (a timer or a signal), if anything.
        wait: Option<Suspension>,
    },
    Complete(Value),
    Fail(WorkflowError),
    Suspend,
}

/// Why a resume produced no usable transition.
#[derive(Debug)]
pub(crate) enum ResumeError {
    /// The stored state does not decode into the workflow's state type: the
    /// record is left as it is.
    Corrupt(String),
    /// The new state or the output could not be serialized.
    Encode(String),
}

/// What one resume (one step attempt plus the pure code after it) did.
#[derive(Debug)]
pub(crate) struct ResumeReport {
    pub moved: Result<Moved, ResumeError>,
    pub outcome: Option<StepOutcome>,
    pub encode_error: Option<String>,
    /// The number of the signal the resume consumed.
    pub consumed: Option<u64>,
    /// The status the segment set.
    pub status: Option<Value>,
    /// The state's signal has not arrived: the resume suspended for it.
    pub awaiting: bool,
    /// A join waits to retry some branch after this delay.
    pub join_retry: Option<std::time::Duration>,
    /// The step of the branch that failed a join.
    pub join_failed: Option<String>,
    /// For [`Moved::Next`]: the new state as its type (its JSON is in `moved`).
    pub typed: Option<TypedState>,
}

impl ResumeReport {
    pub(crate) fn failed(moved: Result<Moved, ResumeError>) -> ResumeReport {
        ResumeReport {
            moved,
            outcome: None,
            encode_error: None,
            consumed: None,
            status: None,
            awaiting: false,
            join_retry: None,
            join_failed: None,
            typed: None,
        }
    }
}

/// What the runtime gives one resume besides the state.
#[derive(Debug)]
pub(crate) struct ResumeInput {
    pub id: Arc<str>,
    pub state_name: Cow<'static, str>,
    pub attempt: u32,
    /// Committed transitions so far.
    pub transitions: u64,
    /// Whether the state is on a cycle of the machine.
    pub on_cycle: bool,
    /// The time of the last committed transition (`sagaflow::now()`).
    pub now_ms: u64,
    /// The oldest signal the state waits for: number and value.
    pub signal: Option<(u64, Value)>,
    /// Whether the state's signal wait timed out.
    pub timed_out: bool,
    /// For a join's state: where its branches report their ends.
    pub checkpoints: Option<tokio::sync::mpsc::UnboundedSender<crate::join::Checkpoint>>,
    /// For a child workflow's state: how the child ended.
    pub child: Option<Result<Value, StepError>>,
}

/// A registered workflow, seen through JSON.
pub(crate) trait ErasedWorkflow: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn machine(&self) -> &'static StateMachine;
    /// Whether state `name` is on a cycle of the machine (precomputed).
    fn on_cycle(&self, name: &str) -> bool;
    /// Whether `state` decodes into the workflow's state type.
    fn check_state(&self, state: &RawJson) -> Result<(), String>;
    /// Runs one resume of `state`: `typed` when it is that state as the
    /// workflow's type (from the resume that made it), else decoded here.
    fn resume(
        &self,
        state: &RawJson,
        typed: Option<TypedState>,
        input: ResumeInput,
    ) -> BoxFuture<ResumeReport>;

    /// Starts the compensation of `step`, if the workflow knows that step.
    fn compensate(&self, step: &str, args: RawJson, output: RawJson) -> Option<CompensationFuture>;

    /// The first state of an instance with `input` (JSON): the state as
    /// JSON and its name.
    fn begin(&self, input: Value) -> Result<(RawJson, &'static str), String>;

    /// For a child workflow's state: the child's workflow name and input.
    fn child_call(&self, state: &RawJson) -> Option<(&'static str, Value)>;
}

impl dyn ErasedWorkflow {
    /// The machine's version.
    pub(crate) fn version(&self) -> u32 {
        self.machine().version
    }

    /// The machine's fingerprint.
    pub(crate) fn fingerprint(&self) -> u64 {
        self.machine().fingerprint()
    }
}

/// A registered migration, seen through JSON.
pub(crate) trait ErasedMigration: Send + Sync + 'static {
    /// The migration function's name.
    fn name(&self) -> &'static str;
    /// The machine it migrates from.
    fn from(&self) -> &'static StateMachine;
    /// The machine it migrates to.
    fn to(&self) -> &'static StateMachine;
    /// Runs the migration on a stored state of the old version: the new
    /// state, or why it is not migrated (declined, undecodable, panicked).
    fn migrate(&self, state: &RawJson) -> Result<Migrated, String>;
}

/// A state a migration made.
#[derive(Debug)]
pub(crate) struct Migrated {
    pub state: RawJson,
    pub state_name: &'static str,
    /// What the new state waits for.
    pub wait: Option<Suspension>,
}

/// The erased form of migration `M`.
pub(crate) struct ErasedMigrate<M>(pub(crate) M);

impl<M: crate::migrate::Migrate> ErasedMigration for ErasedMigrate<M> {
    fn name(&self) -> &'static str {
        M::NAME
    }

    fn from(&self) -> &'static StateMachine {
        self.0.old_machine()
    }

    fn to(&self) -> &'static StateMachine {
        self.0.new_machine()
    }

    fn migrate(&self, state: &RawJson) -> Result<Migrated, String> {
        let old = state
            .parse::<<M::From as Workflow>::State>()
            .map_err(|error| {
                format!("the stored state does not decode as the old version's: {error}")
            })?;
        let migrated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| M::migrate(old)))
            .map_err(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            format!("migration `{}` panicked: {message}", M::NAME)
        })?;
        let new = match migrated {
            crate::migrate::Migration::To(new) => new,
            crate::migrate::Migration::Decline(reason) => {
                return Err(format!("migration `{}` declined: {reason}", M::NAME));
            }
        };
        let state_name = <M::To as Workflow>::state_name(&new);
        let wait = <M::To as Workflow>::suspension(&new);
        let state = RawJson::to_json(&new).map_err(|error| {
            format!("the migrated state `{state_name}` does not encode: {error}")
        })?;
        Ok(Migrated {
            state,
            state_name,
            wait,
        })
    }
}

/// Whether `state` decodes into `W`'s state type; the reason if not.
pub(crate) fn check_state<W: Workflow>(state: &RawJson) -> Result<(), String> {
    state
        .parse::<W::State>()
        .map(drop)
        .map_err(|error| format!("the stored state does not decode: {error}"))
}

/// The erased form of workflow `W`.
pub(crate) struct Erased<W> {
    workflow: W,
    /// Per state (in the machine's order): whether it is on a cycle.
    cycles: Box<[bool]>,
}

impl<W: Workflow> Erased<W> {
    pub(crate) fn new(workflow: W) -> Erased<W> {
        let machine = workflow.state_machine();
        let cycles = (0..machine.states.len())
            .map(|index| machine.is_on_cycle(index))
            .collect();
        Erased { workflow, cycles }
    }
}

impl<W: Workflow> ErasedWorkflow for Erased<W> {
    fn name(&self) -> &'static str {
        W::NAME
    }

    fn machine(&self) -> &'static StateMachine {
        self.workflow.state_machine()
    }

    fn on_cycle(&self, name: &str) -> bool {
        let machine = self.workflow.state_machine();
        machine
            .states
            .iter()
            .position(|state| state.name == name)
            .is_some_and(|index| self.cycles[index])
    }

    fn check_state(&self, state: &RawJson) -> Result<(), String> {
        check_state::<W>(state)
    }

    fn resume(
        &self,
        state: &RawJson,
        typed: Option<TypedState>,
        input: ResumeInput,
    ) -> BoxFuture<ResumeReport> {
        let ResumeInput {
            id,
            state_name,
            attempt,
            transitions,
            on_cycle,
            now_ms,
            signal,
            timed_out,
            checkpoints,
            child,
        } = input;
        let typed = typed.and_then(|typed| typed.downcast::<W::State>().ok());
        let state = match typed.map_or_else(|| state.parse::<W::State>(), |typed| Ok(*typed)) {
            Ok(state) => state,
            Err(error) => {
                let report = ResumeReport::failed(Err(ResumeError::Corrupt(format!(
                    "the stored state `{state_name}` does not decode: {error}"
                ))));
                return Box::pin(std::future::ready(report));
            }
        };
        Box::pin(async move {
            let mut driver = Driver::resuming(id, state_name, attempt)
                .with_transitions(transitions, on_cycle)
                .with_now_ms(now_ms)
                .with_timed_out(timed_out);
            if let Some((seq, value)) = signal {
                driver = driver.with_signal(seq, value);
            }
            if let Some(checkpoints) = checkpoints {
                driver = driver.with_checkpoints(checkpoints);
            }
            if let Some(end) = child {
                driver = driver.with_child(end);
            }
            let mut typed: Option<TypedState> = None;
            let moved = match W::resume(state, &mut driver).await {
                Transition::Next(state) => {
                    let state_name = W::state_name(&state);
                    let wait = W::suspension(&state);
                    let moved = RawJson::to_json(&state)
                        .map(|state| Moved::Next {
                            state,
                            state_name,
                            wait,
                        })
                        .map_err(|error| {
                            ResumeError::Encode(format!("state `{state_name}`: {error}"))
                        });
                    typed = Some(Box::new(state));
                    moved
                }
                Transition::Complete(output) => serde_json::to_value(&output)
                    .map(Moved::Complete)
                    .map_err(|error| {
                        ResumeError::Encode(format!("the workflow's output: {error}"))
                    }),
                Transition::Fail(error) => Ok(Moved::Fail(error)),
                Transition::Suspend => Ok(Moved::Suspend),
            };
            ResumeReport {
                moved,
                encode_error: driver.encode_error().map(str::to_owned),
                consumed: driver.consumed(),
                status: driver.take_status(),
                awaiting: driver.is_awaiting(),
                join_retry: driver.join_retry(),
                join_failed: driver.join_failed().map(str::to_owned),
                outcome: driver.take_outcome(),
                typed,
            }
        })
    }

    fn compensate(&self, step: &str, args: RawJson, output: RawJson) -> Option<CompensationFuture> {
        W::compensate(step, args, output)
    }

    fn begin(&self, input: Value) -> Result<(RawJson, &'static str), String> {
        let input = serde_json::from_value::<W::Input>(input).map_err(|error| {
            format!(
                "the input of workflow `{}` does not decode: {error}",
                W::NAME
            )
        })?;
        let state = W::begin(input);
        let name = W::state_name(&state);
        let state = RawJson::to_json(&state)
            .map_err(|error| format!("the initial state of workflow `{}`: {error}", W::NAME))?;
        Ok((state, name))
    }

    fn child_call(&self, state: &RawJson) -> Option<(&'static str, Value)> {
        let state = state.parse::<W::State>().ok()?;
        match W::suspension(&state) {
            Some(Suspension::Child { workflow, input }) => Some((workflow, input)),
            _ => None,
        }
    }
}
