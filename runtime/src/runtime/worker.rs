//! The worker that drives one claimed instance: runs its step attempts and
//! compensations while holding the instance's lease, renews the lease while
//! a step runs, and writes each transition with one compare-and-swap.

use std::any::Any;
use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

mod children;
mod compensate;
mod lease;
mod transition;

use tokio::sync::{OwnedSemaphorePermit, watch};
use tracing::Instrument as _;

use super::current::{Current, Hints, Position, Started};
use super::erased::{ErasedWorkflow, Moved, ResumeError, ResumeInput, ResumeReport, TypedState};
use super::local::{Ended, Local};
use super::state::{Runtime, decode_record};
use crate::clock::duration_ms;
use crate::context::{self, AttemptLink};
use crate::error::{Error, StepError, StoreError};
use crate::join::Checkpoint;
use crate::record::{self, EventKind, Failure, Heartbeat, HistoryEvent, InstanceRecord, Phase};
use crate::store::{Expect, Versioned};
use crate::workflow::StepOutcome;
use transition::{
    AttemptPlan, begin_rollback, enter_wait, fail, record_step, record_wait_end,
    schedule_suspended, wait_ended_at,
};

/// Backoff bounds when the store fails under a worker.
const STORE_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// How often a transition is written again after the store failed to
/// answer, before the worker gives its result up (waiting 0.2, 0.4, 0.8,
/// 1.6 s in between).
const COMMIT_RETRIES: u32 = 4;
const STORE_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What the worker does after a transition.
enum Flow {
    Continue,
    Stop,
}

/// Drives instance `id`, whose lease this runtime has just claimed (the
/// claim is in `current`), until it ends, waits for a retry, loses its
/// lease, or the runtime shuts down. `permit` is the worker slot it holds.
/// `hints`: the due hints it has (see [`Hints`]). `started`: the record was just created by this
/// runtime, from that state.
pub(super) fn drive(
    runtime: Runtime,
    id: String,
    local: Arc<Local>,
    current: Current,
    permit: OwnedSemaphorePermit,
    hints: Hints,
    started: Option<Started>,
) -> impl Future<Output = ()> + Send + 'static {
    // Releases the in-process claim however the worker ends, even by a panic.
    struct Claim {
        runtime: Runtime,
        id: String,
        local: Option<Arc<Local>>,
    }
    impl Drop for Claim {
        fn drop(&mut self) {
            if let Some(local) = self.local.take() {
                local.stop_driving();
                self.runtime.release_local(&self.id, local);
            }
            self.runtime.inner.drivers.stopped();
        }
    }
    let claim = Claim {
        runtime: runtime.clone(),
        id: id.clone(),
        local: Some(Arc::clone(&local)),
    };
    let span = tracing::info_span!(
        "workflow",
        workflow = %current.record.workflow,
        id = %id,
        epoch = current.record.lease.epoch
    );
    let now = runtime.inner.clock.now_ms();
    let (checked, typed) = match started {
        Some(Started { workflow, typed }) => (Some(workflow), Some(typed)),
        None => (None, None),
    };
    // Built here and boxed, with its future boxed too: the task `spawn`
    // moves around (several times per instance) is then a few pointers,
    // not the kilobytes of a worker and its record.
    let mut worker = Box::new(Worker {
        epoch: current.record.lease.epoch,
        renew_at: now.saturating_add(runtime.lease_ttl_ms() / 3),
        runtime,
        key: record::key(&id),
        history: record::HistoryCache::default(),
        typed: std::sync::Mutex::new(typed),
        checked,
        id: Arc::from(id),
        local,
        current,
        permit: Some(permit),
        released: false,
    });
    async move {
        let _claim = claim;
        // Step attempts' timeouts run on the runtime's clock; its steps send
        // signals through it.
        let clock = Arc::clone(&worker.runtime.inner.clock);
        let signals: Arc<dyn crate::context::SignalSender> = worker.runtime.inner.clone();
        let driven = crate::context::sending(signals, Box::pin(worker.run()).instrument(span));
        crate::clock::driving(clock, driven).await;
        // The slot is free again; a poller waiting for one gets it.
        drop(worker.permit.take());
        if worker.released
            && let Some(hint) = hints.lease
            && let Err(error) = worker
                .runtime
                .inner
                .store()
                .delete(&hint, Expect::Any)
                .await
        {
            tracing::debug!(hint, %error, "cannot delete a lease hint; the poller will");
        }
        if hints.poller {
            worker.runtime.wake_poller();
        }
    }
}

struct Worker {
    runtime: Runtime,
    /// The instance's id, shared with each attempt's context.
    id: Arc<str>,
    /// The store key of the instance's record.
    key: String,
    /// The encoded history of the last record written.
    history: record::HistoryCache,
    /// The record's state as the workflow's type, when this worker's last
    /// resume made it: the next resume starts from it without decoding.
    /// Taken by every resume, so it is never older than the record. (In a
    /// mutex only to be `Sync`: it is only reached through `&mut self`.)
    typed: std::sync::Mutex<Option<TypedState>>,
    /// The workflow of a record this runtime created, known to be runnable.
    checked: Option<Arc<dyn ErasedWorkflow>>,
    local: Arc<Local>,
    current: Current,
    /// The epoch of this worker's claim; a record with another is not ours.
    epoch: u64,
    /// When (wall ms) to renew the lease if a step is still running.
    renew_at: u64,
    permit: Option<OwnedSemaphorePermit>,
    /// Whether this worker's last write released the instance (ended it,
    /// left it waiting, or handed it back): its lease hint may go.
    released: bool,
}

impl Worker {
    async fn run(&mut self) {
        let mut shutdown = self.runtime.inner.shutdown.subscribe();
        let mut store_backoff = STORE_BACKOFF_MIN;
        // Checked on a record read from the store; the states this worker
        // writes are its workflow's own, so they need no second decode.
        let mut checked: Option<Arc<dyn ErasedWorkflow>> = self.checked.take();
        loop {
            if self.current.record.phase.is_terminal() {
                return;
            }
            if *shutdown.borrow_and_update() {
                self.release().await;
                return;
            }
            let workflow = match &checked {
                Some(workflow) => Arc::clone(workflow),
                None => match self.runtime.exact(&self.current.record) {
                    Ok(workflow) => Arc::clone(checked.insert(workflow)),
                    Err(error) => {
                        tracing::error!(%error, "instance left untouched");
                        self.release().await;
                        return;
                    }
                },
            };
            let now = self.now();
            // Waiting for a retry: the write that scheduled it released the
            // lease and left a due hint; whoever claims it then runs it.
            if !self.current.record.is_due(now) {
                return;
            }
            // The lease lapsed or is about to (a store outage, a stall, an
            // instance that waited long in the backlog): renew the claim
            // before running anything, so no one else may be running it
            // too, even on a clock a little ahead of this one.
            let margin = self.runtime.lease_ttl_ms() / 3;
            if !self
                .current
                .record
                .lease
                .is_live(now.saturating_add(margin))
            {
                checked = None;
                match self.reclaim().await {
                    Ok(Flow::Continue) => continue,
                    Ok(Flow::Stop) => return,
                    Err(error) => {
                        tracing::warn!(%error, "cannot renew the lease; retrying");
                        if !self.back_off(&mut store_backoff, &mut shutdown).await {
                            return;
                        }
                        continue;
                    }
                }
            }
            let step = match self.current.record.phase {
                Phase::Running | Phase::Waiting => self.advance(&*workflow, now).await,
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
                    checked = None;
                    // The working record is the one that failed to be
                    // written: nothing goes on before the stored one is
                    // read back.
                    loop {
                        match self.reload().await {
                            Ok(Flow::Continue) => break,
                            Ok(Flow::Stop) => return,
                            Err(error) => {
                                tracing::warn!(%error, "cannot read the instance; retrying");
                                if !self.back_off(&mut store_backoff, &mut shutdown).await {
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Waits after a store failure, doubling the wait; false on shutdown.
    async fn back_off(&self, backoff: &mut Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
        let wait = *backoff;
        *backoff = (*backoff * 2).min(STORE_BACKOFF_MAX);
        let clock = &self.runtime.inner.clock;
        tokio::select! {
            () = clock.sleep_until(clock.now_ms().saturating_add(duration_ms(wait))) => true,
            _ = shutdown.changed() => false,
        }
    }

    /// Reads the stored record of the instance.
    async fn read(&self) -> Result<Option<(InstanceRecord, u64)>, Error> {
        let stored: Option<Versioned> = self.runtime.inner.store().get(&self.key).await?;
        let Some(stored) = stored else {
            tracing::warn!("the instance's record was deleted");
            return Ok(None);
        };
        match decode_record(&self.id, &stored.value) {
            Ok(instance) => Ok(Some((instance, stored.version))),
            Err(error) => {
                tracing::error!(%error, "instance left untouched");
                Ok(None)
            }
        }
    }

    /// Replaces the working record with the stored one, if this worker
    /// still holds its lease.
    async fn reload(&mut self) -> Result<Flow, Error> {
        let Some((instance, version)) = self.read().await? else {
            return Ok(Flow::Stop);
        };
        if !self.holds(&instance) {
            self.fenced(&instance);
            return Ok(Flow::Stop);
        }
        self.current = Current::new(instance, version);
        // The stored state is the truth now, whatever this worker last made.
        *self.typed_slot() = None;
        Ok(Flow::Continue)
    }

    /// Whether `stored`'s lease is this worker's claim.
    fn holds(&self, stored: &InstanceRecord) -> bool {
        stored
            .lease
            .is_held_by(&self.runtime.inner.owner, self.epoch)
    }

    fn fenced(&self, stored: &InstanceRecord) {
        tracing::warn!(
            owner = stored.lease.owner.as_deref().unwrap_or(""),
            epoch = stored.lease.epoch,
            "lease lost to another worker; this worker's result is discarded and it stops"
        );
    }

    /// Claims the instance again after this worker's lease lapsed unclaimed.
    async fn reclaim(&mut self) -> Result<Flow, Error> {
        let now = self.now();
        let mut next = self.current.record.clone();
        self.runtime.claim_lease(&mut next, now);
        next.updated_at = now;
        let Ok(bytes) = record::encode(&next) else {
            return Ok(Flow::Stop);
        };
        match self
            .runtime
            .inner
            .store()
            .put(&self.key, bytes, Expect::Version(self.current.version))
            .await
        {
            Ok(version) => {
                self.epoch = next.lease.epoch;
                self.renew_at = now.saturating_add(self.runtime.lease_ttl_ms() / 3);
                let persisted = self.current.persisted;
                self.current = Current {
                    record: next,
                    version,
                    persisted,
                };
                Ok(Flow::Continue)
            }
            // Someone wrote: a claim by another runtime, or a cancel.
            Err(StoreError::Conflict) => self.reload().await,
            Err(error) => Err(error.into()),
        }
    }

    /// Releases the lease (on shutdown, or for an instance this runtime
    /// cannot run), with a due hint so another runtime takes over at once.
    /// Best effort: an unreleased lease simply expires.
    async fn release(&mut self) {
        let now = self.now();
        let instance = &self.current.record;
        if instance.phase.is_terminal() || !instance.lease.is_live(now) {
            return;
        }
        let mut next = instance.clone();
        next.lease.expires_at = Some(now);
        next.updated_at = now;
        let Ok(bytes) = record::encode(&next) else {
            return;
        };
        let released = self
            .runtime
            .inner
            .store()
            .put(&self.key, bytes, Expect::Version(self.current.version))
            .await;
        match released {
            Ok(version) => {
                self.current = Current::new(next, version);
                self.released = true;
                self.runtime.hint(now, &self.id).await;
            }
            Err(error) => tracing::debug!(%error, "lease not released; it will expire"),
        }
    }

    fn typed_slot(&mut self) -> &mut Option<TypedState> {
        self.typed
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> u64 {
        self.runtime.inner.clock.now_ms()
    }

    /// Runs one step attempt (and the pure code after it) and writes where
    /// it left the instance, in four phases: wait for a child or roll back a
    /// cancelled instance ([`advance`](Self::advance) itself), read what the
    /// attempt works with ([`plan_attempt`](Self::plan_attempt)), run it
    /// ([`run_attempt`](Self::run_attempt)), then record its outcome
    /// ([`record_step`], [`record_wait_end`]) and its move
    /// ([`enter_wait`], [`schedule_suspended`]) in the record it commits.
    /// `started`: the clock's time as the worker decided to run it.
    async fn advance(
        &mut self,
        workflow: &dyn ErasedWorkflow,
        started: u64,
    ) -> Result<Flow, Error> {
        // A state waiting for a child workflow resumes once the child ended.
        let mut child_end = None;
        if let Some(child) = self.current.record.awaiting_child.clone() {
            match self.child_ended(workflow, &child).await? {
                Some(end) => child_end = Some(end),
                None => return self.wait_for_child(child).await,
            }
        }
        let is_child = child_end.is_some();
        let instance = &self.current.record;
        if instance.cancel_requested && !instance.pivot_passed {
            let now = self.now();
            begin_rollback(&mut self.current.record, Failure::cancelled(), now);
            return self.commit_at(now).await;
        }
        let plan = self.plan_attempt(workflow, started);
        let Some(mut report) = self.run_attempt(workflow, &plan, started, child_end).await else {
            return Ok(Flow::Stop);
        };
        let now = self.now();
        let child_recheck = self.child_recheck_ms();
        // Built in place: the working record becomes the next one.
        let next = &mut self.current.record;
        // Progress is kept for the next attempt of this step only.
        next.heartbeat = match (&report.moved, &report.outcome) {
            (Ok(Moved::Suspend), Some(StepOutcome::Retry { .. })) => {
                heartbeat_of(&plan.link, &plan.state_name, plan.attempt, now)
                    .or(next.heartbeat.take())
            }
            _ => None,
        };
        let failed_step = record_step(next, &plan, &mut report, started, now);
        if let Some(status) = report.status.take() {
            next.status = Some(status);
        }
        record_wait_end(next, &plan, &report, now, is_child);
        // Every move out of a state but a retry or a wait is a transition.
        let moves = matches!(
            report.moved,
            Ok(Moved::Next { .. } | Moved::Complete(_) | Moved::Fail(_))
        ) || report.moved.is_err();
        if moves {
            next.awaiting_signal = None;
        }

        // The new state as its type, kept once the record holding it is.
        let next_typed = report.typed.take();
        let moved = match (report.moved, report.encode_error) {
            // A value the compensation would need could not be stored: the
            // step cannot be undone later, so roll back what can be now.
            (_, Some(message)) => Err(ResumeError::Encode(message)),
            (moved, None) => moved,
        };
        let failed_step = failed_step.or(report.join_failed.as_deref());
        let failure_step = failed_step.or(plan.step_name).map(str::to_owned);
        let written = report.outcome.is_some() || plan.fired;
        let mut entering_child = None;
        match moved {
            Ok(Moved::Next {
                state,
                state_name,
                wait,
            }) => {
                next.state = state;
                // In the name's own buffer: no allocation per step.
                next.state_name.clear();
                next.state_name.push_str(state_name);
                next.attempt = 1;
                next.next_run_at = None;
                next.phase = Phase::Running;
                let Some(wait) = wait else {
                    let computed = workflow
                        .machine()
                        .state(state_name)
                        .is_some_and(|state| state.commit_on_entry);
                    if !written && !computed {
                        // No step ran and no wait ended: the transition is
                        // pure and runs again after a crash, so it needs no
                        // write of its own. One that computed the next
                        // step's arguments is written, so that a crash
                        // does not give the step other values.
                        *self.typed_slot() = next_typed;
                        return Ok(Flow::Continue);
                    }
                    next.transitions = next.transitions.saturating_add(1);
                    next.committed_at = now;
                    let flow = self.commit_at(now).await?;
                    if matches!(flow, Flow::Continue) {
                        *self.typed_slot() = next_typed;
                    }
                    return Ok(flow);
                };
                entering_child = enter_wait(next, wait, state_name, now, child_recheck);
            }
            Ok(Moved::Complete(output)) => {
                next.phase = Phase::Completed;
                next.output = Some(output);
                next.next_run_at = None;
                next.push_event(HistoryEvent::new(now, EventKind::Completed));
            }
            Ok(Moved::Fail(error)) => {
                let step = error
                    .step()
                    .map(str::to_owned)
                    .or(failed_step.map(str::to_owned));
                let failure = Failure {
                    message: error.message().to_owned(),
                    step,
                };
                fail(next, failure, now);
            }
            Ok(Moved::Suspend) => schedule_suspended(
                next,
                report.outcome,
                report.join_retry,
                report.awaiting,
                plan.attempt,
                failure_step,
                now,
            ),
            Err(ResumeError::Corrupt(reason)) => {
                tracing::error!(reason, "instance left untouched");
                return Ok(Flow::Stop);
            }
            Err(ResumeError::Encode(message)) => {
                let failure = Failure {
                    message,
                    step: failure_step,
                };
                fail(next, failure, now);
            }
        }
        if moves {
            next.transitions = next.transitions.saturating_add(1);
            next.committed_at = now;
        }
        let Some((child_workflow, input, child_state)) = entering_child else {
            return self.commit_at(now).await;
        };
        // The child's id is fixed by the committed record, so code that
        // runs again names the same child; it is created after the parent
        // durably waits for it, so its end always finds the parent waiting.
        let child = if workflow.on_cycle(child_state) {
            format!("{}/{child_state}/{}", self.id, next.transitions)
        } else {
            format!("{}/{child_state}", self.id)
        };
        next.awaiting_child = Some(child.clone());
        let flow = self.commit_at(now).await?;
        if matches!(flow, Flow::Continue) {
            self.begin_child(&child, child_workflow, input).await;
        }
        Ok(flow)
    }

    /// What an attempt of the current state works with, read off the record
    /// and the machine before it runs.
    fn plan_attempt(&self, workflow: &dyn ErasedWorkflow, started: u64) -> AttemptPlan {
        let instance = &self.current.record;
        let attempt = instance.attempt.max(1);
        // The machine's own name for the state: no copy of the record's.
        let state_info = workflow.machine().state(&instance.state_name);
        let state_name: Cow<'static, str> = match state_info {
            Some(state) => Cow::Borrowed(state.name),
            None => Cow::Owned(instance.state_name.clone()),
        };
        let step_name = state_info
            .and_then(|state| state.step.as_ref())
            .map(|step| step.name);
        let previous = previous_details(instance, &state_name);
        let link = Arc::new(AttemptLink::new(self.id.clone(), previous));
        let awaited = instance.awaiting_signal.clone();
        let timed_out = awaited.is_some() && instance.next_run_at.is_some_and(|due| due <= started);
        let is_start = workflow
            .machine()
            .states
            .first()
            .is_some_and(|start| start.name == state_name);
        let join_state = state_info.is_some_and(|state| !state.branches.is_empty());
        AttemptPlan {
            attempt,
            fired: step_name.is_none() && !is_start && !join_state,
            state_name,
            step_name,
            link,
            awaited,
            timed_out,
            join_state,
        }
    }

    /// Runs the attempt `plan` describes, with the lease renewed while it
    /// runs and a join's checkpoints written as they come; a panicking step
    /// fails the instance instead of the worker. `None`: the worker lost
    /// the instance (its lease, or shutdown) and stops.
    async fn run_attempt(
        &mut self,
        workflow: &dyn ErasedWorkflow,
        plan: &AttemptPlan,
        started: u64,
        child: Option<Result<serde_json::Value, StepError>>,
    ) -> Option<ResumeReport> {
        let typed = self.typed_slot().take();
        let instance = &self.current.record;
        let span = tracing::info_span!(
            "step",
            step = plan.step_name.unwrap_or(""),
            attempt = plan.attempt
        );
        // A state waiting for a signal gets the oldest one of its name.
        let message = plan
            .awaited
            .as_deref()
            .and_then(|name| instance.next_signal(name));
        let signal_at = message.map(|message| message.at);
        let signal = message.map(|message| (message.seq, message.value.clone()));
        let (checkpoint_sender, mut checkpoints) = if plan.join_state {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            let commits = JoinCheckpoints {
                receiver,
                state_name: plan.state_name.clone().into_owned(),
                started,
            };
            (Some(sender), Some(commits))
        } else {
            (None, None)
        };
        let resume = workflow.resume(
            &instance.state,
            typed,
            ResumeInput {
                id: Arc::clone(&self.id),
                state_name: plan.state_name.clone(),
                attempt: plan.attempt,
                transitions: instance.transitions,
                on_cycle: workflow.on_cycle(&plan.state_name),
                now_ms: wait_ended_at(instance, plan.fired, signal_at, plan.timed_out),
                signal,
                timed_out: plan.timed_out,
                checkpoints: checkpoint_sender,
                child,
            },
        );
        let resume = context::attempt_scope(Arc::clone(&plan.link), resume).instrument(span);
        let joined = self
            .while_leased(
                resume,
                &plan.link,
                &plan.state_name,
                plan.attempt,
                checkpoints.as_mut(),
            )
            .await?;
        Some(joined.unwrap_or_else(|error| {
            ResumeReport::failed(Err(ResumeError::Encode(format!(
                "the step panicked: {}",
                panic_message(error)
            ))))
        }))
    }

    /// Writes `next` with one compare-and-swap on the version this worker
    /// read, extending the lease, or releasing it when the instance ends or
    /// waits for a retry (whose due hint is written first, so a crash in
    /// between loses nothing). On a conflict with a write that left the
    /// instance where it was and the lease ours (a `cancel`), merges it and
    /// tries again; on any other conflict the lease was lost: the result is
    /// discarded and the worker stops.
    async fn commit(&mut self, next: InstanceRecord) -> Result<Flow, Error> {
        self.current.record = next;
        let now = self.now();
        self.commit_at(now).await
    }

    /// [`commit`](Self::commit) of the working record as it is, at the
    /// clock's time `now`, just read (each read of the clock is a system
    /// call's worth of time). The record is built in place, never moved:
    /// it is the bulk of a worker's state.
    async fn commit_at(&mut self, mut now: u64) -> Result<Flow, Error> {
        let mut hinted = None;
        let mut retries = 0;
        loop {
            let next = &mut self.current.record;
            // Not due: waiting for a retry, a timer or a signal. A due hint
            // for the time it wakes, if it wakes at a time.
            let waiting = !next.phase.is_terminal() && !next.is_due(now);
            let waits_until = next.next_run_at.filter(|due| waiting && *due > now);
            if let Some(due) = waits_until
                && hinted != Some(due)
            {
                self.runtime
                    .inner
                    .store()
                    .put(
                        &record::due_key(due, &self.id),
                        self.id.as_bytes().to_vec(),
                        Expect::Any,
                    )
                    .await?;
                hinted = Some(due);
            }
            let next = &mut self.current.record;
            next.updated_at = now;
            let release = next.phase.is_terminal() || waiting;
            next.lease.expires_at = Some(if release {
                now
            } else {
                now.saturating_add(self.runtime.lease_ttl_ms())
            });
            let bytes = match record::encode_with(next, &mut self.history) {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::error!(%error, "cannot encode the instance record; instance left as stored");
                    return Ok(Flow::Stop);
                }
            };
            let written = self
                .runtime
                .inner
                .store()
                .put(&self.key, bytes, Expect::Version(self.current.version))
                .await;
            // An answer lost after the write applied: carry on from it.
            match self
                .runtime
                .landed(&self.id, &self.current.record, written)
                .await
            {
                Ok(version) => {
                    self.released = release;
                    let next = &self.current.record;
                    let wake_parent = next.parent.clone().filter(|_| next.phase.is_terminal());
                    let ended = next.phase.is_terminal().then(|| {
                        Arc::new(Ended {
                            phase: next.phase,
                            output: next.output.clone(),
                            failure: next.failure.clone(),
                        })
                    });
                    self.current.version = version;
                    self.current.persisted = Position::of(&self.current.record);
                    self.renew_at = now.saturating_add(self.runtime.lease_ttl_ms() / 3);
                    // Handles act on this worker's writes only once one ends
                    // the instance: waking them for every step would cost a
                    // task wake-up per step for nothing.
                    let wakes = ended.is_some();
                    if wakes {
                        // The worker slot is free before anyone learns of the
                        // end: a caller that starts its next instance then
                        // finds it free (else that instance would wait for
                        // the poller).
                        drop(self.permit.take());
                    }
                    self.local.changed.send_if_modified(|written| {
                        written.by_worker = true;
                        written.ended = ended;
                        wakes
                    });
                    if hinted.is_some() {
                        // The poller sleeps until the earliest hint it knows.
                        self.runtime.wake_poller();
                    }
                    // A child's end wakes its parent; if this process dies
                    // first, the parent's re-check finds the end.
                    if let Some(parent) = wake_parent
                        && let Err(error) = self.runtime.wake_parent(&parent, &self.id).await
                    {
                        tracing::warn!(parent, %error, "cannot wake the parent; its re-check will");
                    }
                    return Ok(Flow::Continue);
                }
                Err(StoreError::Conflict) => {
                    let Some((fresh, version)) = self.read().await? else {
                        return Ok(Flow::Stop);
                    };
                    if !self.holds(&fresh) || Position::of(&fresh) != self.current.persisted {
                        self.fenced(&fresh);
                        return Ok(Flow::Stop);
                    }
                    let next = &mut self.current.record;
                    merge_cancel(next, &fresh);
                    next.merge_signals(&fresh);
                    merge_child_wake(next, &fresh);
                    if next
                        .awaiting_signal
                        .as_deref()
                        .is_some_and(|name| next.has_signal(name))
                        && next.phase == Phase::Waiting
                    {
                        // The signal it was about to wait for has arrived.
                        next.phase = Phase::Running;
                    }
                    self.current.version = version;
                }
                // The store is briefly out of reach (a member died, a
                // failover): the same compare-and-swap again keeps the
                // step's result, where giving up would run the step again.
                Err(StoreError::Timeout(_) | StoreError::Unavailable(_))
                    if retries < COMMIT_RETRIES =>
                {
                    retries += 1;
                    let clock = &self.runtime.inner.clock;
                    let wait = duration_ms(STORE_BACKOFF_MIN).saturating_mul(1 << retries);
                    clock.sleep_until(clock.now_ms().saturating_add(wait)).await;
                }
                Err(error) => return Err(error.into()),
            }
            // Written again, at the time it then is.
            now = self.now();
        }
    }
}

/// Where a join's resume sends its branches' checkpoints, and what the
/// worker needs to write them.
struct JoinCheckpoints {
    receiver: tokio::sync::mpsc::UnboundedReceiver<Checkpoint>,
    state_name: String,
    started: u64,
}

/// The next checkpoint of a join's resume; never ready without a join.
async fn next_checkpoint(checkpoints: Option<&mut JoinCheckpoints>) -> Checkpoint {
    match checkpoints {
        Some(join) => match join.receiver.recv().await {
            Some(checkpoint) => checkpoint,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Takes into `next` the wake-up its awaited child wrote meanwhile (an
/// earlier `next_run_at`), so a re-wait does not hide the child's end.
fn merge_child_wake(next: &mut InstanceRecord, fresh: &InstanceRecord) {
    if next.awaiting_child.is_some()
        && next.awaiting_child == fresh.awaiting_child
        && let Some(woken) = fresh.next_run_at
        && next.next_run_at.is_some_and(|due| woken < due)
    {
        next.next_run_at = Some(woken);
    }
}

/// Takes a `cancel` another writer recorded into `next`.
fn merge_cancel(next: &mut InstanceRecord, fresh: &InstanceRecord) {
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
}

/// The details an earlier attempt of `state` heartbeated, if any.
fn previous_details(instance: &InstanceRecord, state: &str) -> Option<serde_json::Value> {
    instance
        .heartbeat
        .as_ref()
        .filter(|heartbeat| heartbeat.state == state)
        .map(|heartbeat| heartbeat.details.clone())
}

/// The attempt's latest heartbeat, as recorded.
fn heartbeat_of(link: &AttemptLink, state: &str, attempt: u32, now: u64) -> Option<Heartbeat> {
    link.latest().map(|details| Heartbeat {
        state: state.to_owned(),
        attempt,
        at: now,
        details,
    })
}

/// What a panicking attempt left: the panic's payload.
type Panic = Box<dyn Any + Send>;

/// Polls `attempt` in place, and ends with its panic's payload if a poll
/// panics, as a task of its own would, without a spawn and its wake-ups.
/// The step is user code that may leave its own state broken by a panic,
/// but it is never polled again after one.
async fn catch_panic<F: Future>(attempt: F) -> Result<F::Output, Panic> {
    let mut attempt = pin!(attempt);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| attempt.as_mut().poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(payload)),
        }
    })
    .await
}

fn panic_message(payload: Panic) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|message| (*message).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".to_owned())
}
