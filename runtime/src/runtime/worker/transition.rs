//! How one resume changes the record it will commit: the history events
//! of a step's attempt and of a wait's end, entering the next wait, and the
//! ends (failed, rolling back). Pure functions on the record.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use super::super::erased::ResumeReport;
use crate::clock::duration_ms;
use crate::context::AttemptLink;
use crate::record::{EventKind, Failure, HistoryEvent, InstanceRecord, Phase};
use crate::step::StepKind;
use crate::workflow::{StepOutcome, Suspension};

/// What one attempt of a state works with, read off the record before it
/// runs (see [`Worker::plan_attempt`]).
pub(super) struct AttemptPlan {
    pub(super) attempt: u32,
    /// The machine's own name for the state (borrowed from the machine).
    pub(super) state_name: Cow<'static, str>,
    /// The step the state runs, if it runs one.
    pub(super) step_name: Option<&'static str>,
    pub(super) link: Arc<AttemptLink>,
    /// The signal the state waits for, if it does.
    pub(super) awaited: Option<String>,
    /// Whether the signal wait's timeout has passed.
    pub(super) timed_out: bool,
    /// A timer's or a signal's state: resuming it ends the wait.
    pub(super) fired: bool,
    /// A `join!` state: its branches' checkpoints are written as they come.
    pub(super) join_state: bool,
}

/// Records what the attempt's step did in the history (started, then
/// succeeded, retried or failed), pushes the compensation of a step that
/// succeeded, and marks a pivot passed. Returns the step that failed.
pub(super) fn record_step(
    next: &mut InstanceRecord,
    plan: &AttemptPlan,
    report: &mut ResumeReport,
    started: u64,
    now: u64,
) -> Option<&'static str> {
    // Moved onto the stack rather than copied.
    let compensation = match &mut report.outcome {
        Some(StepOutcome::Succeeded { compensation, .. }) => compensation.take(),
        _ => None,
    };
    let outcome = report.outcome.as_ref()?;
    let (step, error) = match outcome {
        StepOutcome::Succeeded { step, .. } => (*step, None),
        StepOutcome::Retry { step, error, .. } | StepOutcome::Failed { step, error } => {
            (*step, Some(error.to_string()))
        }
    };
    let event = |at, kind| HistoryEvent {
        state: Some(plan.state_name.clone()),
        step: Some(Cow::Borrowed(step)),
        attempt: Some(plan.attempt),
        ..HistoryEvent::new(at, kind)
    };
    next.push_event(event(started, EventKind::StepStarted));
    let mut failed_step = None;
    match outcome {
        StepOutcome::Succeeded { kind, .. } => {
            next.push_event(event(now, EventKind::StepSucceeded));
            if let Some(entry) = compensation {
                next.compensation_stack.push(entry);
            }
            if *kind == StepKind::Pivot {
                next.pivot_passed = true;
            }
        }
        StepOutcome::Retry { .. } => {
            next.push_event(HistoryEvent {
                error: error.clone(),
                ..event(now, EventKind::StepRetried)
            });
        }
        StepOutcome::Failed { .. } => {
            next.push_event(HistoryEvent {
                error: error.clone(),
                ..event(now, EventKind::StepFailed)
            });
            failed_step = Some(step);
        }
    }
    if error.is_some() {
        next.last_error = error;
    }
    failed_step
}

/// Records the end of a wait in the history: a signal received (and taken
/// off the queue), a signal wait timed out, or a timer fired.
pub(super) fn record_wait_end(
    next: &mut InstanceRecord,
    plan: &AttemptPlan,
    report: &ResumeReport,
    now: u64,
    is_child: bool,
) {
    let awaited = &plan.awaited;
    if let (Some(name), Some(seq)) = (awaited, report.consumed) {
        next.remove_signal(name, seq);
        next.push_event(HistoryEvent {
            state: Some(plan.state_name.clone()),
            step: Some(Cow::Owned(name.clone())),
            ..HistoryEvent::new(now, EventKind::SignalReceived)
        });
    } else if let (Some(name), true) = (awaited, plan.timed_out && !report.awaiting) {
        next.push_event(HistoryEvent {
            state: Some(plan.state_name.clone()),
            step: Some(Cow::Owned(name.clone())),
            ..HistoryEvent::new(now, EventKind::SignalTimedOut)
        });
    } else if plan.fired && awaited.is_none() && !report.awaiting && !is_child {
        next.push_event(HistoryEvent {
            state: Some(plan.state_name.clone()),
            ..HistoryEvent::new(now, EventKind::TimerFired)
        });
    }
}

/// Enters the wait the new state begins with: its wake-up time and what it
/// waits for, durable once the record is written. Returns the child to
/// start, for a child workflow's wait.
pub(super) fn enter_wait(
    next: &mut InstanceRecord,
    wait: Suspension,
    state_name: &'static str,
    now: u64,
    child_recheck: u64,
) -> Option<(&'static str, serde_json::Value, &'static str)> {
    match wait {
        Suspension::Timer(timer) => {
            next.next_run_at = Some(timer.deadline(now));
            next.phase = Phase::Waiting;
            next.push_event(HistoryEvent {
                state: Some(Cow::Borrowed(state_name)),
                ..HistoryEvent::new(now, EventKind::TimerStarted)
            });
            None
        }
        Suspension::Signal { name, timeout } => {
            next.awaiting_signal = Some(name.to_owned());
            next.next_run_at = timeout.map(|timer| timer.deadline(now));
            if !next.has_signal(name) {
                next.phase = Phase::Waiting;
            }
            next.push_event(HistoryEvent {
                state: Some(Cow::Borrowed(state_name)),
                step: Some(Cow::Borrowed(name)),
                ..HistoryEvent::new(now, EventKind::SignalAwaited)
            });
            None
        }
        Suspension::Child { workflow, input } => {
            next.phase = Phase::Waiting;
            next.next_run_at = Some(now.saturating_add(child_recheck));
            next.push_event(HistoryEvent {
                state: Some(Cow::Borrowed(state_name)),
                step: Some(Cow::Borrowed(workflow)),
                ..HistoryEvent::new(now, EventKind::ChildStarted)
            });
            Some((workflow, input, state_name))
        }
    }
}

/// Schedules a state that stays where it is: the step's next attempt after
/// its delay, a join's branch retry, or waiting on (a stale wake-up); any
/// other suspension fails the instance.
pub(super) fn schedule_suspended(
    next: &mut InstanceRecord,
    outcome: Option<StepOutcome>,
    join_retry: Option<Duration>,
    awaiting: bool,
    attempt: u32,
    failure_step: Option<String>,
    now: u64,
) {
    match outcome {
        Some(StepOutcome::Retry { delay, .. }) => {
            next.attempt = attempt.saturating_add(1);
            next.next_run_at = Some(now.saturating_add(duration_ms(delay)));
            next.phase = Phase::Waiting;
        }
        // A join with a branch to retry: its slot holds the attempt.
        None if join_retry.is_some() => {
            let delay = join_retry.unwrap_or_default();
            next.next_run_at = Some(now.saturating_add(duration_ms(delay)));
            next.phase = Phase::Waiting;
        }
        // Woken with no signal (a stale wake-up): wait on.
        None if awaiting => next.phase = Phase::Waiting,
        _ => {
            let failure = Failure {
                message: "the workflow suspended without scheduling a retry".to_owned(),
                step: failure_step,
            };
            fail(next, failure, now);
        }
    }
}

/// The instance ends `Failed` with `failure`, for an operator: the rollback
/// cannot finish, or the workflow failed after its pivot.
pub(super) fn end_failed(next: &mut InstanceRecord, failure: Failure, now: u64) {
    next.push_event(HistoryEvent {
        error: Some(failure.to_string()),
        ..HistoryEvent::new(now, EventKind::Failed)
    });
    next.phase = Phase::Failed;
    next.awaiting_child = None;
    next.next_run_at = None;
    next.failure = Some(failure);
}

/// The workflow failed: roll back, or, after the pivot, stop for an operator.
pub(super) fn fail(next: &mut InstanceRecord, failure: Failure, now: u64) {
    if next.pivot_passed {
        end_failed(next, failure, now);
    } else {
        begin_rollback(next, failure, now);
    }
}

/// Moves the instance to `Compensating` (or straight to `Compensated`
/// when there is nothing to undo).
pub(super) fn begin_rollback(next: &mut InstanceRecord, failure: Failure, now: u64) {
    next.push_event(HistoryEvent {
        error: Some(failure.to_string()),
        ..HistoryEvent::new(now, EventKind::Compensating)
    });
    next.phase = Phase::Compensating;
    next.attempt = 1;
    next.next_run_at = None;
    next.failure = Some(failure);
    if next.compensation_stack.is_empty() {
        next.phase = Phase::Compensated;
        next.push_event(HistoryEvent::new(now, EventKind::RolledBack));
    }
}

/// What `sagaflow::now()` returns in the code a resume runs: the time the
/// current state was reached. That is when its transition was committed,
/// or, for a wait that ends now, when it ended: the timer's (or the
/// timeout's) due time, or when the consumed signal was recorded. Each is
/// read from the record, so code that runs again sees the same time.
pub(super) fn wait_ended_at(
    instance: &InstanceRecord,
    fired: bool,
    signal_at: Option<u64>,
    timed_out: bool,
) -> u64 {
    let committed = if instance.committed_at == 0 {
        instance.created_at
    } else {
        instance.committed_at
    };
    let ended = match signal_at {
        Some(at) => Some(at),
        None if fired && (timed_out || instance.awaiting_signal.is_none()) => instance.next_run_at,
        None => None,
    };
    ended.map_or(committed, |ended| ended.max(committed))
}
