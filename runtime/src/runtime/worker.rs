//! The worker that drives one instance: runs its step attempts and
//! compensations, one compare-and-swap of its record per transition.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tracing::Instrument as _;

use super::erased::{ErasedWorkflow, Moved, ResumeError, ResumeReport};
use super::{Local, Runtime, duration_ms};
use crate::context::{self, StepContext};
use crate::error::{Error, StepError, StoreError};
use crate::record::{self, EventKind, Failure, HistoryEvent, InstanceRecord, Phase};
use crate::step::{RetryPolicy, StepKind};
use crate::store::Expect;
use crate::workflow::StepOutcome;

/// How long a worker's claim on an instance is advertised for.
const LEASE_TTL: Duration = Duration::from_secs(30);
/// Backoff bounds when the store fails under a worker.
const STORE_BACKOFF_MIN: Duration = Duration::from_millis(100);
const STORE_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where an instance is, as far as concurrent writers are concerned: two
/// records with the same position differ only in flags others may set
/// (`cancel_requested`), so a write based on one may be rebased on the other.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Position {
    phase: Phase,
    state_name: String,
    attempt: u32,
    compensations: usize,
}

impl Position {
    fn of(instance: &InstanceRecord) -> Position {
        Position {
            phase: instance.phase,
            state_name: instance.state_name.clone(),
            attempt: instance.attempt,
            compensations: instance.compensation_stack.len(),
        }
    }
}

/// The record a worker works on: possibly ahead of the store after a
/// step-less transition (which is pure, so it is not written).
pub(super) struct Current {
    record: InstanceRecord,
    version: u64,
    persisted: Position,
}

impl Current {
    pub(super) fn new(record: InstanceRecord, version: u64) -> Current {
        Current {
            persisted: Position::of(&record),
            record,
            version,
        }
    }
}

/// What the worker does after a transition.
enum Flow {
    Continue,
    Stop,
}

/// Drives instance `id` until it ends, the runtime shuts down, or it turns
/// out this runtime cannot run it.
pub(super) async fn drive(
    runtime: Runtime,
    id: String,
    local: Arc<Local>,
    loaded: Option<Current>,
) {
    // Releases the in-process claim however the worker ends, even by a panic.
    struct Claim {
        runtime: Runtime,
        id: String,
        local: Option<Arc<Local>>,
    }
    impl Drop for Claim {
        fn drop(&mut self) {
            if let Some(local) = self.local.take() {
                local.driving.store(false, Ordering::SeqCst);
                self.runtime.release_local(&self.id, local);
            }
            self.runtime
                .inner
                .drivers
                .send_modify(|running| *running = running.saturating_sub(1));
        }
    }
    let _claim = Claim {
        runtime: runtime.clone(),
        id: id.clone(),
        local: Some(Arc::clone(&local)),
    };

    let current = match loaded {
        Some(current) => current,
        None => match runtime.load(&id).await {
            Ok(Some((instance, version))) => Current::new(instance, version),
            Ok(None) => return,
            Err(error) => {
                tracing::error!(id, %error, "instance left untouched");
                return;
            }
        },
    };
    let span = tracing::info_span!("workflow", workflow = %current.record.workflow, id = %id);
    let mut worker = Worker {
        runtime,
        id,
        local,
        current,
    };
    worker.run().instrument(span).await;
}

struct Worker {
    runtime: Runtime,
    id: String,
    local: Arc<Local>,
    current: Current,
}

impl Worker {
    async fn run(&mut self) {
        let mut shutdown = self.runtime.inner.shutdown.subscribe();
        let mut store_backoff = STORE_BACKOFF_MIN;
        loop {
            if *shutdown.borrow_and_update() || self.current.record.phase.is_terminal() {
                return;
            }
            let workflow = match self.runtime.runnable(&self.current.record) {
                Ok(workflow) => workflow,
                Err(error) => {
                    tracing::error!(%error, "instance left untouched");
                    return;
                }
            };
            let now = self.runtime.inner.clock.now_ms();
            let instance = &self.current.record;
            // A cancelled instance rolls back now, not after its retry delay.
            let cancelling = instance.cancel_requested
                && !instance.pivot_passed
                && instance.phase != Phase::Compensating;
            if let Some(due) = instance.next_run_at.filter(|due| *due > now && !cancelling) {
                if !self.sleep_until(due, &mut shutdown).await {
                    return;
                }
                match self.reload().await {
                    Ok(Flow::Continue) => continue,
                    Ok(Flow::Stop) => return,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the instance; retrying");
                        if !self.back_off(&mut store_backoff, &mut shutdown).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let permits = Arc::clone(&self.runtime.inner.permits);
            let permit = tokio::select! {
                permit = permits.acquire_owned() => permit,
                _ = shutdown.changed() => return,
            };
            let Ok(_permit) = permit else { return };
            let step = match self.current.record.phase {
                Phase::Running | Phase::Waiting => self.advance(&*workflow).await,
                Phase::Compensating => self.compensate_next(&*workflow).await,
                Phase::Completed | Phase::Compensated | Phase::Failed => return,
            };
            match step {
                Ok(Flow::Continue) => store_backoff = STORE_BACKOFF_MIN,
                Ok(Flow::Stop) => return,
                Err(error) => {
                    // The attempt's result is lost; it runs again from the
                    // stored record (steps are at-least-once).
                    tracing::warn!(%error, "cannot write the instance; retrying");
                    if !self.back_off(&mut store_backoff, &mut shutdown).await {
                        return;
                    }
                    if let Err(error) = self.reload().await {
                        tracing::warn!(%error, "cannot read the instance; retrying");
                    }
                }
            }
        }
    }

    /// Sleeps until wall time `due`, `cancel` or shutdown; false on shutdown.
    async fn sleep_until(&self, due: u64, shutdown: &mut watch::Receiver<bool>) -> bool {
        let deadline = self.runtime.inner.clock.instant_at(due);
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => true,
            () = self.local.wake.notified() => true,
            _ = shutdown.changed() => false,
        }
    }

    /// Waits after a store failure, doubling the wait; false on shutdown.
    async fn back_off(&self, backoff: &mut Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(STORE_BACKOFF_MAX);
        tokio::select! {
            () = tokio::time::sleep(wait) => true,
            _ = shutdown.changed() => false,
        }
    }

    /// Replaces the working record with the stored one.
    async fn reload(&mut self) -> Result<Flow, Error> {
        match self.runtime.inner.store.get(&record::key(&self.id)).await? {
            None => {
                tracing::warn!("the instance's record was deleted");
                Ok(Flow::Stop)
            }
            Some(stored) => match super::decode_record(&self.id, &stored.value) {
                Ok(instance) => {
                    self.current = Current::new(instance, stored.version);
                    Ok(Flow::Continue)
                }
                Err(error) => {
                    tracing::error!(%error, "instance left untouched");
                    Ok(Flow::Stop)
                }
            },
        }
    }

    fn now(&self) -> u64 {
        self.runtime.inner.clock.now_ms()
    }

    /// Runs one step attempt (and the pure code after it) and writes where
    /// it left the instance.
    async fn advance(&mut self, workflow: &dyn ErasedWorkflow) -> Result<Flow, Error> {
        let instance = &self.current.record;
        if instance.cancel_requested && !instance.pivot_passed {
            let next = self.begin_rollback(instance.clone(), Failure::cancelled());
            return self.commit(next).await;
        }
        let attempt = instance.attempt.max(1);
        let state_name = instance.state_name.clone();
        let step_name = workflow
            .machine()
            .state(&state_name)
            .and_then(|state| state.step.as_ref())
            .map(|step| step.name);
        let started = self.now();
        let span = tracing::info_span!("step", step = step_name.unwrap_or(""), attempt);
        let resume = workflow
            .resume(
                self.id.clone(),
                instance.state.clone(),
                state_name.clone(),
                attempt,
            )
            .instrument(span);
        // On its own task, so a panicking step fails the instance instead of the worker.
        let report = tokio::spawn(resume)
            .await
            .unwrap_or_else(|error| ResumeReport {
                moved: Err(ResumeError::Encode(format!(
                    "the step panicked: {}",
                    panic_message(error)
                ))),
                outcome: None,
                encode_error: None,
            });
        let now = self.now();
        let mut next = self.current.record.clone();

        let mut failed_step = None;
        if let Some(outcome) = &report.outcome {
            let (step, error) = match outcome {
                StepOutcome::Succeeded { step, .. } => (*step, None),
                StepOutcome::Retry { step, error, .. } | StepOutcome::Failed { step, error } => {
                    (*step, Some(error.to_string()))
                }
            };
            let event = |at, kind| HistoryEvent {
                state: Some(state_name.clone()),
                step: Some(step.to_owned()),
                attempt: Some(attempt),
                ..HistoryEvent::new(at, kind)
            };
            next.push_event(event(started, EventKind::StepStarted));
            match outcome {
                StepOutcome::Succeeded {
                    kind, compensation, ..
                } => {
                    next.push_event(event(now, EventKind::StepSucceeded));
                    if let Some(entry) = compensation {
                        next.compensation_stack.push(entry.clone());
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
        }

        let moved = match (report.moved, report.encode_error) {
            // A value the compensation would need could not be stored: the
            // step cannot be undone later, so roll back what can be now.
            (_, Some(message)) => Err(ResumeError::Encode(message)),
            (moved, None) => moved,
        };
        let failure_step = failed_step.or(step_name).map(str::to_owned);
        let next = match moved {
            Ok(Moved::Next { state, state_name }) => {
                next.state = state;
                next.state_name = state_name.to_owned();
                next.attempt = 1;
                next.next_run_at = None;
                next.phase = Phase::Running;
                if report.outcome.is_none() {
                    // No step ran: the transition is pure and runs again
                    // after a crash, so it needs no write of its own.
                    self.current.record = next;
                    return Ok(Flow::Continue);
                }
                next
            }
            Ok(Moved::Complete(output)) => {
                next.phase = Phase::Completed;
                next.output = Some(output);
                next.next_run_at = None;
                next.push_event(HistoryEvent::new(now, EventKind::Completed));
                next
            }
            Ok(Moved::Fail(error)) => {
                let step = error
                    .step()
                    .map(str::to_owned)
                    .or(failed_step.map(str::to_owned));
                self.fail(
                    next,
                    Failure {
                        message: error.message().to_owned(),
                        step,
                    },
                )
            }
            Ok(Moved::Suspend) => match report.outcome {
                Some(StepOutcome::Retry { delay, .. }) => {
                    next.attempt = attempt.saturating_add(1);
                    next.next_run_at = Some(now.saturating_add(duration_ms(delay)));
                    next.phase = Phase::Waiting;
                    next
                }
                _ => self.fail(
                    next,
                    Failure {
                        message: "the workflow suspended without scheduling a retry".to_owned(),
                        step: failure_step,
                    },
                ),
            },
            Err(ResumeError::Corrupt(reason)) => {
                tracing::error!(reason, "instance left untouched");
                return Ok(Flow::Stop);
            }
            Err(ResumeError::Encode(message)) => self.fail(
                next,
                Failure {
                    message,
                    step: failure_step,
                },
            ),
        };
        self.commit(next).await
    }

    /// The workflow failed: roll back, or, after the pivot, stop for an operator.
    fn fail(&self, mut next: InstanceRecord, failure: Failure) -> InstanceRecord {
        if next.pivot_passed {
            let now = self.now();
            next.push_event(HistoryEvent {
                error: Some(failure.to_string()),
                ..HistoryEvent::new(now, EventKind::Failed)
            });
            next.phase = Phase::Failed;
            next.next_run_at = None;
            next.failure = Some(failure);
            next
        } else {
            self.begin_rollback(next, failure)
        }
    }

    /// Moves the instance to `Compensating` (or straight to `Compensated`
    /// when there is nothing to undo).
    fn begin_rollback(&self, mut next: InstanceRecord, failure: Failure) -> InstanceRecord {
        let now = self.now();
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
        next
    }

    /// Runs the compensation on top of the stack (one attempt) and writes
    /// the result.
    async fn compensate_next(&mut self, workflow: &dyn ErasedWorkflow) -> Result<Flow, Error> {
        let mut next = self.current.record.clone();
        let Some(entry) = next.compensation_stack.last().cloned() else {
            next.phase = Phase::Compensated;
            next.push_event(HistoryEvent::new(self.now(), EventKind::RolledBack));
            return self.commit(next).await;
        };
        let attempt = next.attempt.max(1);
        let index = next.compensation_stack.len() - 1;
        let result =
            match workflow.compensate(&entry.step, entry.args.clone(), entry.output.clone()) {
                None => Err(StepError::permanent(format!(
                    "workflow `{}` has no compensation for step `{}`",
                    workflow.name(),
                    entry.step
                ))),
                Some(compensation) => {
                    // The step's context, with a state of its own, so the
                    // compensation gets a stable idempotency key too.
                    let step = workflow
                        .machine()
                        .states
                        .iter()
                        .filter_map(|state| state.step.as_ref())
                        .find(|step| step.name == entry.step)
                        .map(|step| step.name);
                    let ctx = step.map(|step| StepContext {
                        workflow_id: self.id.clone(),
                        state: format!("compensate/{index}/{step}"),
                        step,
                        attempt,
                    });
                    let run = async move {
                        match ctx {
                            Some(ctx) => context::scope(ctx, compensation).await,
                            None => compensation.await,
                        }
                    };
                    let span = tracing::info_span!("compensate", step = %entry.step, attempt);
                    tokio::spawn(run.instrument(span))
                        .await
                        .unwrap_or_else(|error| {
                            Err(StepError::permanent(format!(
                                "the compensation panicked: {}",
                                panic_message(error)
                            )))
                        })
                }
            };
        let now = self.now();
        let event = |kind| HistoryEvent {
            step: Some(entry.step.clone()),
            attempt: Some(attempt),
            ..HistoryEvent::new(now, kind)
        };
        match result {
            Ok(()) => {
                next.compensation_stack.pop();
                next.push_event(event(EventKind::Compensated));
                next.attempt = 1;
                next.next_run_at = None;
                if next.compensation_stack.is_empty() {
                    next.phase = Phase::Compensated;
                    next.push_event(HistoryEvent::new(now, EventKind::RolledBack));
                }
            }
            Err(error) => {
                let policy = RetryPolicy::compensation();
                next.last_error = Some(error.to_string());
                if error.is_retryable() && policy.allows_another(attempt) {
                    next.push_event(HistoryEvent {
                        error: Some(error.to_string()),
                        ..event(EventKind::CompensationRetried)
                    });
                    next.attempt = attempt.saturating_add(1);
                    next.next_run_at =
                        Some(now.saturating_add(duration_ms(policy.delay_after(attempt))));
                } else {
                    next.push_event(HistoryEvent {
                        error: Some(error.to_string()),
                        ..event(EventKind::CompensationFailed)
                    });
                    let cause = next.failure.as_ref().map_or_else(String::new, |failure| {
                        format!(" (rolling back because {failure})")
                    });
                    let failure = Failure {
                        message: format!(
                            "compensation of step `{}` failed after {attempt} attempt(s): {error}{cause}",
                            entry.step
                        ),
                        step: Some(entry.step.clone()),
                    };
                    next.push_event(HistoryEvent {
                        error: Some(failure.to_string()),
                        ..HistoryEvent::new(now, EventKind::Failed)
                    });
                    next.phase = Phase::Failed;
                    next.next_run_at = None;
                    next.failure = Some(failure);
                }
            }
        }
        self.commit(next).await
    }

    /// Writes `next` with one compare-and-swap on the version this worker
    /// read. On a conflict with a write that left the instance where it was
    /// (a `cancel`), merges it and tries again; otherwise someone else moved
    /// the instance on, and the worker continues from their record.
    async fn commit(&mut self, mut next: InstanceRecord) -> Result<Flow, Error> {
        let key = record::key(&self.id);
        loop {
            let now = self.now();
            next.updated_at = now;
            if next.lease.owner.as_deref() != Some(self.runtime.inner.owner.as_str()) {
                next.lease.owner = Some(self.runtime.inner.owner.clone());
                next.lease.epoch = next.lease.epoch.saturating_add(1);
            }
            next.lease.expires_at = Some(now.saturating_add(duration_ms(LEASE_TTL)));
            let bytes = match record::encode(&next) {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::error!(%error, "cannot encode the instance record; instance left as stored");
                    return Ok(Flow::Stop);
                }
            };
            match self
                .runtime
                .inner
                .store
                .put(&key, bytes, Expect::Version(self.current.version))
                .await
            {
                Ok(version) => {
                    self.current = Current::new(next, version);
                    self.local
                        .changed
                        .send_modify(|generation| *generation += 1);
                    return Ok(Flow::Continue);
                }
                Err(StoreError::Conflict) => {
                    let Some(stored) = self.runtime.inner.store.get(&key).await? else {
                        tracing::warn!("the instance's record was deleted");
                        return Ok(Flow::Stop);
                    };
                    let fresh = match super::decode_record(&self.id, &stored.value) {
                        Ok(fresh) => fresh,
                        Err(error) => {
                            tracing::error!(%error, "instance left untouched");
                            return Ok(Flow::Stop);
                        }
                    };
                    if Position::of(&fresh) != self.current.persisted {
                        tracing::debug!(
                            "another writer advanced the instance; continuing from its record"
                        );
                        self.current = Current::new(fresh, stored.version);
                        return Ok(Flow::Continue);
                    }
                    if fresh.cancel_requested && !next.cancel_requested {
                        next.cancel_requested = true;
                        if let Some(event) = fresh
                            .history
                            .iter()
                            .rev()
                            .find(|event| event.kind == EventKind::CancelRequested)
                        {
                            next.push_event(event.clone());
                        }
                    }
                    self.current.version = stored.version;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|message| (*message).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic".to_owned()),
        Err(error) => error.to_string(),
    }
}
