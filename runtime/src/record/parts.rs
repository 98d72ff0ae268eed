//! The values an instance record is made of: its [`Phase`], the
//! [`Failure`] it ended with, the [`Lease`] that says who drives it, a step's
//! [`Heartbeat`], its history's events, the signals in its inbox and its
//! compensation stack's entries. Apart from the record itself, which holds
//! them and the rules over them (`instance.rs`).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::raw::RawJson;

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Moving forward: the next step is due.
    Running,
    /// Waiting: for a retry after a failed step attempt, for a durable
    /// timer (both until `next_run_at`), or for a signal (`awaiting_signal`,
    /// until one arrives or `next_run_at`, the timeout, passes).
    Waiting,
    /// Rolling back: running the compensation stack, last entry first.
    Compensating,
    /// Terminal: the workflow returned `Ok`.
    Completed,
    /// Terminal: the workflow failed (or was cancelled) and every completed
    /// compensable step was undone.
    Compensated,
    /// Terminal: an operator must look (a failure after the pivot, or a
    /// compensation that could not finish).
    Failed,
}

impl Phase {
    /// Whether the instance has ended and will never change again.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Compensated | Phase::Failed)
    }

    /// The name as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "Running",
            Phase::Waiting => "Waiting",
            Phase::Compensating => "Compensating",
            Phase::Completed => "Completed",
            Phase::Compensated => "Compensated",
            Phase::Failed => "Failed",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an instance did not complete: what [`Outcome::Compensated`] and
/// [`Outcome::Failed`] carry.
///
/// [`Outcome::Compensated`]: crate::runtime::Outcome::Compensated
/// [`Outcome::Failed`]: crate::runtime::Outcome::Failed
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// The step whose failure it is, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

impl Failure {
    /// A failure with a message and no step.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            step: None,
        }
    }

    /// The failure of a cancelled instance.
    pub fn cancelled() -> Failure {
        Failure::new(CANCELLED)
    }

    /// Whether the instance failed because it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.step.is_none() && self.message == CANCELLED
    }
}

const CANCELLED: &str = "cancelled";

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step `{step}` failed: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Who may advance an instance: a time-bounded claim that fences stale
/// writers.
///
/// A worker runtime claims an instance with one compare-and-swap of its
/// record that sets `owner` to the runtime's id, `expires_at` to now plus
/// the lease TTL, and increments `epoch`. It then writes every transition as
/// a compare-and-swap on the version it read, and renews the lease while a
/// step runs; a holder whose lease lapsed and was claimed by another (a
/// higher epoch) finds its write rejected and stops. A lease is released
/// (`expires_at` set to the time of release, owner and epoch kept) when the
/// instance waits for a retry, ends, or its runtime shuts down.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The runtime that holds (or last held) the lease.
    pub owner: Option<String>,
    /// Until when (ms since the Unix epoch) the owner holds it; `None` or a
    /// past time: anyone may claim it.
    pub expires_at: Option<u64>,
    /// Incremented on every claim; fences stale writers.
    pub epoch: u64,
}

impl Lease {
    /// Whether someone holds the lease at wall time `now` (ms).
    pub fn is_live(&self, now: u64) -> bool {
        self.owner.is_some() && self.expires_at.is_some_and(|expires_at| expires_at > now)
    }

    /// Whether this lease is the one `owner` claimed with `epoch`.
    pub fn is_held_by(&self, owner: &str, epoch: u64) -> bool {
        self.owner.as_deref() == Some(owner) && self.epoch == epoch
    }
}

/// The last progress a step attempt reported with
/// [`heartbeat`](crate::heartbeat()).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The state (or `compensate/{index}/{step}`) whose attempt reported it.
    pub state: String,
    /// That attempt's number.
    pub attempt: u32,
    /// When it was written (ms since the Unix epoch).
    pub at: u64,
    /// The details, as the step gave them.
    pub details: serde_json::Value,
}

/// What happened to an instance, as kept in its bounded history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The instance was created by `start`.
    Created,
    /// A step attempt began (`at` is when it began).
    StepStarted,
    /// A step attempt succeeded.
    StepSucceeded,
    /// A step attempt failed and another is scheduled.
    StepRetried,
    /// A step failed for good.
    StepFailed,
    /// `cancel` was called.
    CancelRequested,
    /// The saga began rolling back (the error says why).
    Compensating,
    /// One compensation finished.
    Compensated,
    /// A compensation attempt failed and another is scheduled.
    CompensationRetried,
    /// A compensation failed for good.
    CompensationFailed,
    /// The workflow returned `Ok`.
    Completed,
    /// Every compensation finished: the instance is `Compensated`.
    RolledBack,
    /// The instance ended `Failed`.
    Failed,
    /// The workflow entered a durable timer (`sagaflow::sleep`); `error`
    /// is empty, the wake-up time is the record's `next_run_at`.
    TimerStarted,
    /// A durable timer fired and the workflow went on.
    TimerFired,
    /// The workflow began waiting for a signal (`step` holds its name).
    SignalAwaited,
    /// The workflow consumed a signal (`step` holds its name).
    SignalReceived,
    /// A `signal_timeout` wait ended without a signal (`step` holds its name).
    SignalTimedOut,
    /// The workflow began waiting for a child workflow (`step` holds the
    /// child's workflow name, `error` is empty; the record's
    /// `awaiting_child` holds its id).
    ChildStarted,
    /// The awaited child workflow ended (`step` holds the child's id,
    /// `error` its failure, if it did not complete).
    ChildEnded,
    /// The rollback asked a completed child workflow to compensate
    /// (`step` holds the child's id).
    ChildCompensating,
    /// The child workflow's compensation finished (`step` holds its id).
    ChildCompensated,
    /// The instance moved to another version of its workflow at its state
    /// (`state`), as the machines proved safe (`note` says from which
    /// version to which, and what changed compatibly).
    Upgraded,
    /// A migration (`#[migrate]`) moved the instance to another version
    /// (`state` is the new state; `note` names the migration, the versions
    /// and the old state).
    Migrated,
}

impl EventKind {
    /// The name as stored (`step_started`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::StepStarted => "step_started",
            EventKind::StepSucceeded => "step_succeeded",
            EventKind::StepRetried => "step_retried",
            EventKind::StepFailed => "step_failed",
            EventKind::CancelRequested => "cancel_requested",
            EventKind::Compensating => "compensating",
            EventKind::Compensated => "compensated",
            EventKind::CompensationRetried => "compensation_retried",
            EventKind::CompensationFailed => "compensation_failed",
            EventKind::Completed => "completed",
            EventKind::RolledBack => "rolled_back",
            EventKind::Failed => "failed",
            EventKind::TimerStarted => "timer_started",
            EventKind::TimerFired => "timer_fired",
            EventKind::SignalAwaited => "signal_awaited",
            EventKind::SignalReceived => "signal_received",
            EventKind::SignalTimedOut => "signal_timed_out",
            EventKind::ChildStarted => "child_started",
            EventKind::ChildEnded => "child_ended",
            EventKind::ChildCompensating => "child_compensating",
            EventKind::ChildCompensated => "child_compensated",
            EventKind::Upgraded => "upgraded",
            EventKind::Migrated => "migrated",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an instance's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// When (ms since the Unix epoch).
    pub at: u64,
    /// What happened.
    pub kind: EventKind,
    /// The state the instance was in. (Borrowed from the state machine when
    /// the runtime records it: an event costs no copy of its names.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Cow<'static, str>>,
    /// The step (or, for compensation events, the step being undone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Cow<'static, str>>,
    /// The attempt number, for step and compensation attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The error, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What else the event records (an upgrade's versions, a migration's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl HistoryEvent {
    /// An event with no state, step, attempt, error or note.
    pub fn new(at: u64, kind: EventKind) -> HistoryEvent {
        HistoryEvent {
            at,
            kind,
            state: None,
            step: None,
            attempt: None,
            error: None,
            note: None,
        }
    }
}

/// One signal waiting in an instance's inbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalMessage {
    /// Its sequence number in the instance (from
    /// [`InstanceRecord::signal_seq`](super::InstanceRecord::signal_seq)):
    /// increasing in the order signals were recorded, never reused.
    pub seq: u64,
    /// When it was recorded (ms since the Unix epoch).
    pub at: u64,
    /// The value, as JSON.
    pub value: serde_json::Value,
}

/// A completed compensable step: what its compensation needs.
///
/// Arguments and output are kept as the JSON text they are stored as: the
/// record is written on every step, and the stack only grows, so its
/// entries are copied into each write, never built into value trees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompensationEntry {
    /// The step's name.
    pub step: Cow<'static, str>,
    /// The step's arguments, as the owned tuple `Step::Args` serializes.
    pub args: RawJson,
    /// The step's output.
    pub output: RawJson,
    /// For an entry that stands for a completed child workflow
    /// (`sagaflow::child`): the child's instance id. Undoing it asks the
    /// child to run its own compensation stack; `step` then holds the
    /// child's workflow name and `args`/`output` are `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_live_until_they_expire() {
        let lease = Lease {
            owner: Some("w".into()),
            expires_at: Some(100),
            epoch: 3,
        };
        assert!(lease.is_live(99));
        assert!(!lease.is_live(100));
        assert!(lease.is_held_by("w", 3));
        assert!(!lease.is_held_by("w", 2));
        assert!(!Lease::default().is_live(0));
    }
}
