//! What [`Admin`](super::Admin)'s requests return, and [`AdminError`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use sagaflow::error::{Error, StoreError};
use sagaflow::machine::MachineDescription;
use sagaflow::record::{
    self, EventKind, Failure, Heartbeat, HistoryEvent, InstanceRecord, Lease, Phase, SignalMessage,
};
use sagaflow::workflow::CompensationEntry;

/// What went wrong in an operator's request; every message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The store URL names no store this build can open.
    #[error("cannot open store `{url}`: {reason}")]
    StoreUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it, and what would work.
        reason: String,
    },
    /// No store was given.
    #[error(
        "no store given: pass `--store URL` or set SAGAFLOW_STORE \
         (embedded:PATH, postgres://…, redis://…, etcd://host:port)"
    )]
    NoStore,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The runtime refused the operation.
    #[error(transparent)]
    Runtime(Error),
    /// No instance has this id.
    #[error("no instance with id `{0}` (see `sagaflow list`)")]
    NotFound(String),
    /// The record under `key` is not a readable instance record.
    #[error(
        "the record at key `{key}` cannot be decoded: {reason}; it is left as it is in the store"
    )]
    Corrupt {
        /// The store key.
        key: String,
        /// Why it cannot be decoded.
        reason: String,
    },
    /// The tool knows no workflows at all (the bare `sagaflow` binary) and
    /// the store holds no description of this one.
    #[error(
        "this tool knows no workflows and the store holds no description of `{0}`, so it cannot \
         draw it: a runtime that registers `{0}` stores one when it is built; or ship the tool in \
         your binary with `sagaflow_cli::run(Registry::new().register(your_workflow))`"
    )]
    NoWorkflows(String),
    /// The tool knows other workflows, not this one, and the store holds no
    /// description of it.
    #[error(
        "workflow `{name}` is not registered in this tool (registered: {known}), and the store \
         holds no description of it"
    )]
    UnknownWorkflow {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// No machine of the workflow with this fingerprint is registered in
    /// this tool or described in the store.
    #[error(
        "no version of `{workflow}` with fingerprint {fingerprint} is registered in this tool or \
         described in the store (see `sagaflow versions --workflow {workflow}`)"
    )]
    UnknownVersion {
        /// The workflow's name.
        workflow: String,
        /// The fingerprint asked for, 16 hex digits.
        fingerprint: String,
    },
    /// `retry` of an instance that has not failed.
    #[error("instance `{id}` is {phase}, not Failed: only a Failed instance can be retried")]
    NotFailed {
        /// The instance id.
        id: String,
        /// Its phase.
        phase: Phase,
    },
    /// `retry` of a Failed instance that a retry cannot help.
    #[error("instance `{id}` cannot be retried: {reason}")]
    CannotRetry {
        /// The instance id.
        id: String,
        /// Why not.
        reason: String,
    },
    /// A value could not be encoded or decoded (a JSON argument, a record).
    #[error("{0}")]
    Invalid(String),
    /// A schedule could not be read or changed.
    #[error(transparent)]
    Schedule(#[from] sagaflow::ScheduleError),
}

impl From<Error> for AdminError {
    fn from(error: Error) -> AdminError {
        match error {
            Error::Store(error) => AdminError::Store(error),
            Error::NotFound(id) => AdminError::NotFound(id),
            Error::Corrupt { id, reason } => AdminError::Corrupt {
                key: record::key(&id),
                reason,
            },
            error => AdminError::Runtime(error),
        }
    }
}

/// Which instances [`Admin::list`](crate::Admin::list) returns. Instances come newest first
/// (by creation time, then id).
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Only instances of this workflow.
    pub workflow: Option<String>,
    /// Only instances in one of these phases (all when empty).
    pub phases: Vec<Phase>,
    /// Only instances created at or before this time (ms since the epoch).
    pub created_before: Option<u64>,
    /// Only instances created at or after this time (ms since the epoch).
    pub created_after: Option<u64>,
    /// Continue after this instance id (the `next` of the previous page).
    pub after: Option<String>,
    /// At most this many instances; 0: no limit.
    pub limit: usize,
}

impl ListQuery {
    pub(super) fn matches(&self, instance: &InstanceRecord) -> bool {
        self.workflow
            .as_deref()
            .is_none_or(|workflow| instance.workflow == workflow)
            && (self.phases.is_empty() || self.phases.contains(&instance.phase))
            && self
                .created_before
                .is_none_or(|before| instance.created_at <= before)
            && self
                .created_after
                .is_none_or(|after| instance.created_at >= after)
    }
}

/// One line of [`Admin::list`](crate::Admin::list): where an instance is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct InstanceSummary {
    /// The instance id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The version of the workflow it runs on.
    pub version: u32,
    /// Where the instance is in its life.
    pub phase: Phase,
    /// The current state (resume point), e.g. `ChargePayment1`.
    pub state: String,
    /// The step that state runs, when the workflow is registered.
    pub step: Option<String>,
    /// The attempt number of the next step or compensation attempt.
    pub attempt: u32,
    /// When the next attempt is due (ms since the Unix epoch), if it waits.
    pub next_run_at: Option<u64>,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// Why the instance is rolling back or ended without completing.
    pub failure: Option<Failure>,
    /// Whether the pivot step has succeeded.
    pub pivot_passed: bool,
    /// Whether `cancel` was called.
    pub cancel_requested: bool,
    /// The signal the instance waits for, if it waits for one (until
    /// `next_run_at`, when the wait has a timeout).
    pub awaiting_signal: Option<String>,
    /// The instance that started this one as its child workflow, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The child workflow instance this one waits for (to end, or, while
    /// compensating, to finish its compensation), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_child: Option<String>,
    /// The completed child workflow instances on the compensation stack.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// When the instance was created (ms since the Unix epoch).
    pub created_at: u64,
    /// When its record was last written (ms since the Unix epoch).
    pub updated_at: u64,
}

/// A record [`Admin::list`](crate::Admin::list) could not decode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Undecodable {
    /// The store key.
    pub key: String,
    /// Why it cannot be decoded.
    pub reason: String,
}

/// What [`Admin::list`](crate::Admin::list) found.
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct InstanceList {
    /// The matching instances of this page, newest first.
    pub instances: Vec<InstanceSummary>,
    /// Every record that cannot be decoded (whatever the filters), so one
    /// bad record hides nothing.
    pub undecodable: Vec<Undecodable>,
    /// Pass as [`ListQuery::after`] for the next page; `None` on the last.
    pub next: Option<String>,
    /// How many instances match the filters in all (every page).
    pub matched: usize,
    /// How many records were read.
    pub scanned: usize,
}

/// A variable stored in an instance's current state.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredVariable {
    /// The variable's name.
    pub name: String,
    /// Its type as written in the workflow, when the workflow is registered.
    pub ty: Option<String>,
    /// Its value, as stored.
    pub value: Value,
}

/// One line of an instance's timeline: a step attempt (its start and end
/// events joined), a compensation, or another event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelineEntry {
    /// When it began (ms since the Unix epoch).
    pub at: u64,
    /// What happened: for a step attempt, how it ended
    /// (`step_succeeded`, `step_retried`, `step_failed`).
    pub kind: EventKind,
    /// The state the instance was in.
    pub state: Option<String>,
    /// The step (or the step being undone).
    pub step: Option<String>,
    /// The attempt number.
    pub attempt: Option<u32>,
    /// How long the attempt took, when its start is known.
    pub duration_ms: Option<u64>,
    /// The error, for failures.
    pub error: Option<String>,
    /// What else the event records: an upgrade's or a migration's versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Where the machine an operator's tool draws comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineSource {
    /// The workflow is registered in this tool.
    Registered,
    /// The description a runtime wrote to the store when it was built.
    Stored,
}

/// A state machine an operator's tool can draw: [`Admin::machine`](crate::Admin::machine).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct KnownMachine {
    /// The machine.
    pub machine: MachineDescription,
    /// Where it comes from.
    pub source: MachineSource,
    /// When a runtime registering it stored its description (ms since the
    /// Unix epoch), for a stored machine.
    pub registered_at: Option<u64>,
}

/// Everything about one instance: [`Admin::show`](crate::Admin::show).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct InstanceDetail {
    /// Where it is.
    #[serde(flatten)]
    pub summary: InstanceSummary,
    /// The kind of the current state's step, when the workflow is registered.
    pub step_kind: Option<String>,
    /// The fingerprint of the machine it was started on, 16 hex digits.
    pub fingerprint: String,
    /// Whether the registered machine has that fingerprint (`None`: the
    /// workflow is not registered in this tool).
    pub fingerprint_matches: Option<bool>,
    /// Where the machine used for step names, variable types and the
    /// drawing comes from (`None`: neither registered nor stored).
    pub machine_source: Option<MachineSource>,
    /// The machine of the instance's workflow: the one with its fingerprint
    /// (registered, else stored), else the registered one.
    #[serde(skip)]
    pub machine: Option<Arc<MachineDescription>>,
    /// Why a runtime with this tool's workflows would not advance it.
    pub blocked: Option<String>,
    /// The variables stored in the current state.
    pub variables: Vec<StoredVariable>,
    /// The workflow's output, when Completed.
    pub output: Option<Value>,
    /// Completed compensable steps, oldest first (undone last to first).
    pub compensation_stack: Vec<CompensationEntry>,
    /// Who runs (or last ran) it.
    pub lease: Lease,
    /// Whether a runtime holds its lease now.
    pub lease_live: bool,
    /// The last progress reported by the current step's attempts.
    pub heartbeat: Option<Heartbeat>,
    /// What the workflow last reported with
    /// [`sagaflow::set_status`](sagaflow::set_status()).
    pub status: Option<Value>,
    /// Signals recorded and not consumed yet, by name, oldest first.
    pub inbox: BTreeMap<String, Vec<SignalMessage>>,
    /// The history as a timeline, oldest first.
    pub timeline: Vec<TimelineEntry>,
    /// The raw history events, oldest first.
    pub history: Vec<HistoryEvent>,
}

/// What [`Admin::cancel`](crate::Admin::cancel) did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum CancelOutcome {
    /// The request is recorded: the instance stops before its next step and
    /// compensates.
    Requested,
    /// It was already requested.
    AlreadyRequested,
    /// The instance already rolls back or has ended: nothing to do.
    NothingToDo {
        /// Its phase.
        phase: Phase,
    },
}

/// What [`Admin::retry`](crate::Admin::retry) did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum RetryOutcome {
    /// The instance is `Running` again at `state`, attempt 1: its step runs
    /// again on the next worker runtime that polls the store.
    Resumed {
        /// The state it resumes at.
        state: String,
        /// The step that runs again, when known.
        step: Option<String>,
    },
    /// The instance is `Compensating` again: its remaining compensations
    /// (`step` first) run on the next worker runtime that polls the store.
    Compensating {
        /// The compensation that failed, run again first.
        step: String,
        /// How many compensations remain.
        remaining: usize,
    },
}

/// How many instances of one workflow sit where: [`Admin::state_counts`](crate::Admin::state_counts).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StateCounts {
    /// Unfinished instances (Running, Waiting, Compensating) by state name,
    /// then by phase.
    pub active: BTreeMap<String, BTreeMap<String, usize>>,
    /// Ended instances by phase (Completed, Compensated, Failed).
    pub ended: BTreeMap<String, usize>,
    /// Failed instances by the state they stopped at.
    pub failed_at: BTreeMap<String, usize>,
    /// Instances of the workflow started on another fingerprint (other code).
    pub other_fingerprint: usize,
}

impl StateCounts {
    /// Unfinished instances at `state`, all phases together.
    pub fn at(&self, state: &str) -> usize {
        self.active
            .get(state)
            .map_or(0, |phases| phases.values().sum())
    }

    /// Ended instances in `phase`.
    pub fn ended(&self, phase: Phase) -> usize {
        self.ended.get(phase.as_str()).copied().unwrap_or(0)
    }
}
