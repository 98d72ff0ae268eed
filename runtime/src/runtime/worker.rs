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

use tokio::sync::{OwnedSemaphorePermit, watch};
use tracing::Instrument as _;

use super::erased::{ErasedWorkflow, Moved, ResumeError, ResumeInput, ResumeReport, TypedState};
use super::{ChildStart, Ended, Local, Runtime};
use crate::clock::duration_ms;
use crate::context::{self, AttemptContext, AttemptLink};
use crate::error::{Error, StepError, StoreError};
use crate::join::{self, Checkpoint};
use crate::record::{
    self, EventKind, Failure, Heartbeat, HistoryEvent, InstanceRecord, Phase, RawJson,
};
use crate::step::{RetryPolicy, StepKind};
use crate::store::{Expect, Versioned};
use crate::workflow::{CompensationEntry, StepOutcome, Suspension};

/// Backoff bounds when the store fails under a worker.
const STORE_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// How often a transition is written again after the store failed to
/// answer, before the worker gives its result up (waiting 0.2, 0.4, 0.8,
/// 1.6 s in between).
const COMMIT_RETRIES: u32 = 4;
const STORE_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Where an instance is, as far as concurrent writers are concerned: two
/// records with the same position differ only in flags others may set
/// (`cancel_requested`), so a write based on one may be rebased on the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    phase: Phase,
    /// The state's name, hashed (64-bit XXH3): taken on every transition,
    /// where a copy of the name would be an allocation.
    state_name: u64,
    attempt: u32,
    compensations: usize,
}

impl Position {
    fn of(instance: &InstanceRecord) -> Position {
        Position {
            phase: instance.phase,
            state_name: xxhash_rust::xxh3::xxh3_64(instance.state_name.as_bytes()),
            attempt: instance.attempt,
            compensations: instance.compensation_stack.len(),
        }
    }
}

/// The record a worker works on: possibly ahead of the store after a
/// step-less transition (which is pure, so it is not written). A transition
/// builds the next record in place, neither copying nor moving it (history
/// and all); after a write that failed, it is read back from the store
/// before anything goes on.
pub(super) struct Current {
    record: InstanceRecord,
    version: u64,
    persisted: Position,
}

/// The due hints of an instance a driver is given.
#[derive(Default)]
pub(super) struct Hints {
    /// The instance may have due hints, which the poller skips while it is
    /// driven here: the driver wakes the poller when it is done, to delete
    /// them.
    pub(super) poller: bool,
    /// The key of the hint at the claim's lease expiry: how another runtime
    /// finds the instance if this one dies while driving it. The driver
    /// deletes it once it has released the instance (ended, waiting, or
    /// handed back); one it cannot release keeps it.
    pub(super) lease: Option<String>,
}

/// What `start` knows of the record it created, so that its driver neither
/// checks nor decodes the state it was made from.
pub(super) struct Started {
    /// The registered workflow the record was made for.
    pub(super) workflow: Arc<dyn ErasedWorkflow>,
    /// The record's state as the workflow's type.
    pub(super) typed: TypedState,
}

impl Current {
    pub(super) fn new(record: InstanceRecord, version: u64) -> Current {
        Current {
            persisted: Position::of(&record),
            record,
            version,
        }
    }

    /// The record and its version.
    pub(super) fn into_parts(self) -> (InstanceRecord, u64) {
        (self.record, self.version)
    }
}

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
        // Step attempts' timeouts run on the runtime's clock.
        let clock = Arc::clone(&worker.runtime.inner.clock);
        crate::clock::driving(clock, Box::pin(worker.run()).instrument(span)).await;
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
        match super::decode_record(&self.id, &stored.value) {
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

    /// Runs `attempt` (a step or compensation attempt) in this task while
    /// renewing the lease every third of its TTL, with the attempt's latest
    /// heartbeat. A panic in the attempt is its `Err`. `None` when the lease
    /// turned out to be lost: the attempt is dropped, as its result would
    /// have been discarded anyway.
    /// A join's branches send their checkpoints on `checkpoints`: each is
    /// written as it arrives, and a checkpoint that cannot be written stops
    /// the attempt like a lost lease.
    async fn while_leased<T>(
        &mut self,
        attempt_future: impl Future<Output = T>,
        link: &AttemptLink,
        state: &str,
        attempt: u32,
        mut checkpoints: Option<&mut JoinCheckpoints>,
    ) -> Option<Result<T, Panic>> {
        let mut task = pin!(catch_panic(attempt_future));
        // Most attempts end on their first poll: they need no renewal
        // timer (whose registration would cost more than the step).
        if let Poll::Ready(joined) =
            std::future::poll_fn(|cx| Poll::Ready(task.as_mut().poll(cx))).await
        {
            return Some(joined);
        }
        loop {
            let renew = self.runtime.inner.clock.sleep_until(self.renew_at);
            tokio::select! {
                joined = &mut task => return Some(joined),
                checkpoint = next_checkpoint(checkpoints.as_deref_mut()) => {
                    let Some(join) = checkpoints.as_deref() else { continue };
                    let (state_name, started) = (join.state_name.clone(), join.started);
                    match self.checkpoint(checkpoint, &state_name, started).await {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Stop) => {
                            link.mark_lost();
                            return None;
                        }
                        Err(error) => {
                            // Unwritten, the branch's end would be lost: stop as
                            // after a crash; the lease lapses and the unfinished
                            // branches run again from the stored record.
                            tracing::warn!(%error, "cannot write a join checkpoint; stopping");
                            link.mark_lost();
                            return None;
                        }
                    }
                }
                () = renew => match self.renew(link, state, attempt).await {
                    Ok(true) => {}
                    Ok(false) => {
                        link.mark_lost();
                        return None;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot renew the lease; retrying");
                        let retry = (self.runtime.lease_ttl_ms() / 10).max(1);
                        self.renew_at = self.now().saturating_add(retry);
                    }
                },
            }
        }
    }

    /// Extends the lease (and records the latest heartbeat) with one
    /// compare-and-swap. `false` if the lease is no longer this worker's.
    async fn renew(
        &mut self,
        link: &AttemptLink,
        state: &str,
        attempt: u32,
    ) -> Result<bool, Error> {
        loop {
            let now = self.now();
            let mut next = self.current.record.clone();
            next.lease.expires_at = Some(now.saturating_add(self.runtime.lease_ttl_ms()));
            next.updated_at = now;
            if let Some(heartbeat) = heartbeat_of(link, state, attempt, now) {
                next.heartbeat = Some(heartbeat);
            }
            let Ok(bytes) = record::encode(&next) else {
                return Ok(true);
            };
            match self
                .runtime
                .inner
                .store()
                .put(&self.key, bytes, Expect::Version(self.current.version))
                .await
            {
                Ok(version) => {
                    self.current = Current::new(next, version);
                    self.renew_at = now.saturating_add(self.runtime.lease_ttl_ms() / 3);
                    return Ok(true);
                }
                Err(StoreError::Conflict) => {
                    let Some((fresh, version)) = self.read().await? else {
                        return Ok(false);
                    };
                    if !self.holds(&fresh) || Position::of(&fresh) != self.current.persisted {
                        self.fenced(&fresh);
                        return Ok(false);
                    }
                    merge_cancel(&mut self.current.record, &fresh);
                    self.current.record.merge_signals(&fresh);
                    self.current.version = version;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Writes one join branch's end: the join's state with the branch's slot
    /// filled, its history events, its compensation entry, with one
    /// compare-and-swap; then tells the branch it may return.
    async fn checkpoint(
        &mut self,
        checkpoint: Checkpoint,
        state_name: &str,
        started: u64,
    ) -> Result<Flow, Error> {
        let now = self.now();
        let mut next = self.current.record.clone();
        if let Err(reason) = join::set_slot(
            &mut next.state,
            state_name,
            checkpoint.branch,
            &checkpoint.slot,
        ) {
            tracing::error!(reason, "instance left untouched");
            return Ok(Flow::Stop);
        }
        let (step, error) = match &checkpoint.outcome {
            StepOutcome::Succeeded { step, .. } => (*step, None),
            StepOutcome::Retry { step, error, .. } | StepOutcome::Failed { step, error } => {
                (*step, Some(error.to_string()))
            }
        };
        let event = |at, kind| HistoryEvent {
            state: Some(Cow::Owned(state_name.to_owned())),
            step: Some(Cow::Borrowed(step)),
            attempt: Some(checkpoint.attempt),
            ..HistoryEvent::new(at, kind)
        };
        next.push_event(event(started, EventKind::StepStarted));
        match &checkpoint.outcome {
            StepOutcome::Succeeded { compensation, .. } => {
                next.push_event(event(now, EventKind::StepSucceeded));
                if let Some(entry) = compensation {
                    next.compensation_stack.push(entry.clone());
                }
            }
            StepOutcome::Retry { .. } => next.push_event(HistoryEvent {
                error: error.clone(),
                ..event(now, EventKind::StepRetried)
            }),
            StepOutcome::Failed { .. } => next.push_event(HistoryEvent {
                error: error.clone(),
                ..event(now, EventKind::StepFailed)
            }),
        }
        if error.is_some() {
            next.last_error = error;
        }
        let flow = self.commit(next).await?;
        if matches!(flow, Flow::Continue) {
            let _ = checkpoint.persisted.send(());
        }
        Ok(flow)
    }

    /// Runs one step attempt (and the pure code after it) and writes where
    /// it left the instance.
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
        let typed = self.typed_slot().take();
        let instance = &self.current.record;
        if instance.cancel_requested && !instance.pivot_passed {
            let now = self.now();
            begin_rollback(&mut self.current.record, Failure::cancelled(), now);
            return self.commit_at(now).await;
        }
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
        let span = tracing::info_span!("step", step = step_name.unwrap_or(""), attempt);
        // A state waiting for a signal gets the oldest one of its name, and
        // learns whether its timeout passed.
        let awaited = instance.awaiting_signal.clone();
        let message = awaited
            .as_deref()
            .and_then(|name| instance.next_signal(name));
        let signal_at = message.map(|message| message.at);
        let signal = message.map(|message| (message.seq, message.value.clone()));
        let timed_out = awaited.is_some() && instance.next_run_at.is_some_and(|due| due <= started);
        // A timer's or a signal's state: resuming it ends the wait.
        let is_start = workflow
            .machine()
            .states
            .first()
            .is_some_and(|start| start.name == state_name);
        let join_state = state_info.is_some_and(|state| !state.branches.is_empty());
        let fired = step_name.is_none() && !is_start && !join_state;
        let (checkpoint_sender, mut checkpoints) = if join_state {
            let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
            let commits = JoinCheckpoints {
                receiver,
                state_name: state_name.clone().into_owned(),
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
                state_name: state_name.clone(),
                attempt,
                transitions: instance.transitions,
                on_cycle: workflow.on_cycle(&state_name),
                now_ms: wait_ended_at(instance, fired, signal_at, timed_out),
                signal,
                timed_out,
                checkpoints: checkpoint_sender,
                child: child_end,
            },
        );
        let resume = context::attempt_scope(Arc::clone(&link), resume).instrument(span);
        // A panicking step fails the instance instead of the worker, and the
        // lease is renewed while it runs; both without a task of its own.
        let Some(joined) = self
            .while_leased(resume, &link, &state_name, attempt, checkpoints.as_mut())
            .await
        else {
            return Ok(Flow::Stop);
        };
        let mut report = joined.unwrap_or_else(|error| {
            ResumeReport::failed(Err(ResumeError::Encode(format!(
                "the step panicked: {}",
                panic_message(error)
            ))))
        });
        let now = self.now();
        let child_recheck = self.child_recheck_ms();
        // Built in place: the working record becomes the next one.
        let next = &mut self.current.record;
        // Progress is kept for the next attempt of this step only.
        next.heartbeat = match (&report.moved, &report.outcome) {
            (Ok(Moved::Suspend), Some(StepOutcome::Retry { .. })) => {
                heartbeat_of(&link, &state_name, attempt, now).or(next.heartbeat.take())
            }
            _ => None,
        };

        let mut failed_step = None;
        // Moved onto the stack rather than copied.
        let compensation = match &mut report.outcome {
            Some(StepOutcome::Succeeded { compensation, .. }) => compensation.take(),
            _ => None,
        };
        if let Some(outcome) = &report.outcome {
            let (step, error) = match outcome {
                StepOutcome::Succeeded { step, .. } => (*step, None),
                StepOutcome::Retry { step, error, .. } | StepOutcome::Failed { step, error } => {
                    (*step, Some(error.to_string()))
                }
            };
            let event = |at, kind| HistoryEvent {
                state: Some(state_name.clone()),
                step: Some(Cow::Borrowed(step)),
                attempt: Some(attempt),
                ..HistoryEvent::new(at, kind)
            };
            next.push_event(event(started, EventKind::StepStarted));
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
        }
        if let Some(status) = report.status {
            next.status = Some(status);
        }
        if let (Some(name), Some(seq)) = (&awaited, report.consumed) {
            next.remove_signal(name, seq);
            next.push_event(HistoryEvent {
                state: Some(state_name.clone()),
                step: Some(Cow::Owned(name.clone())),
                ..HistoryEvent::new(now, EventKind::SignalReceived)
            });
        } else if let (Some(name), true) = (&awaited, timed_out && !report.awaiting) {
            next.push_event(HistoryEvent {
                state: Some(state_name.clone()),
                step: Some(Cow::Owned(name.clone())),
                ..HistoryEvent::new(now, EventKind::SignalTimedOut)
            });
        } else if fired && awaited.is_none() && !report.awaiting && !is_child {
            next.push_event(HistoryEvent {
                state: Some(state_name.clone()),
                ..HistoryEvent::new(now, EventKind::TimerFired)
            });
        }
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
        let failure_step = failed_step.or(step_name).map(str::to_owned);
        let written = report.outcome.is_some() || fired;
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
                // Entering a timer or a signal wait is always written: the
                // wake-up time and the awaited name must be durable.
                match wait {
                    Suspension::Timer(timer) => {
                        next.next_run_at = Some(timer.deadline(now));
                        next.phase = Phase::Waiting;
                        next.push_event(HistoryEvent {
                            state: Some(Cow::Borrowed(state_name)),
                            ..HistoryEvent::new(now, EventKind::TimerStarted)
                        });
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
                    }
                    Suspension::Child { workflow, input } => {
                        next.phase = Phase::Waiting;
                        next.next_run_at = Some(now.saturating_add(child_recheck));
                        next.push_event(HistoryEvent {
                            state: Some(Cow::Borrowed(state_name)),
                            step: Some(Cow::Borrowed(workflow)),
                            ..HistoryEvent::new(now, EventKind::ChildStarted)
                        });
                        entering_child = Some((workflow, input, state_name));
                    }
                }
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
            Ok(Moved::Suspend) => match report.outcome {
                Some(StepOutcome::Retry { delay, .. }) => {
                    next.attempt = attempt.saturating_add(1);
                    next.next_run_at = Some(now.saturating_add(duration_ms(delay)));
                    next.phase = Phase::Waiting;
                }
                // A join with a branch to retry: its slot holds the attempt.
                None if report.join_retry.is_some() => {
                    let delay = report.join_retry.unwrap_or_default();
                    next.next_run_at = Some(now.saturating_add(duration_ms(delay)));
                    next.phase = Phase::Waiting;
                }
                // Woken with no signal (a stale wake-up): wait on.
                None if report.awaiting => next.phase = Phase::Waiting,
                _ => {
                    let failure = Failure {
                        message: "the workflow suspended without scheduling a retry".to_owned(),
                        step: failure_step,
                    };
                    fail(next, failure, now);
                }
            },
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

    /// How long a parent waits for a child before it reads the child's
    /// record again, in case the child's wake-up was lost to a crash.
    fn child_recheck_ms(&self) -> u64 {
        duration_ms(self.runtime.inner.recovery_interval)
    }

    /// Starts child `child` (once). A failure here is logged: the parent's
    /// re-check starts it later.
    async fn begin_child(&self, child: &str, workflow: &str, input: serde_json::Value) {
        match self
            .runtime
            .start_child(&self.id, child, workflow, input)
            .await
        {
            Ok(ChildStart::Started) => {}
            // Started before (an id reused): if it has ended, go on now.
            Ok(ChildStart::Exists(existing)) => {
                if existing.phase.is_terminal()
                    && let Err(error) = self.runtime.wake_parent(&self.id, child).await
                {
                    tracing::warn!(child, %error, "cannot wake the parent; its re-check will");
                }
            }
            Err(error) => {
                tracing::error!(child, %error, "cannot start the child workflow yet; the parent retries at its re-check");
            }
        }
    }

    /// Reads child `child` of the instance: how it ended, or `None` while it
    /// runs (or when it had to be started). On its end, the working record
    /// stops waiting for it and, if it completed with something to undo,
    /// gets its compensation entry (a child past its pivot makes the parent
    /// pass its pivot instead: nothing in it can be undone).
    async fn child_ended(
        &mut self,
        workflow: &dyn ErasedWorkflow,
        child: &str,
    ) -> Result<Option<Result<serde_json::Value, StepError>>, Error> {
        let found = match self.runtime.load(child).await {
            Ok(found) => found.map(|(record, _)| record),
            Err(Error::Corrupt { reason, .. }) => {
                tracing::error!(child, reason, "the child's record cannot be decoded");
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        let record = match found {
            Some(record) => record,
            // Cancelled before the child was started: it never will be.
            None if self.current.record.cancel_requested => {
                let parent = &mut self.current.record;
                parent.awaiting_child = None;
                return Ok(Some(Err(StepError::permanent(format!(
                    "cancelled before child workflow instance `{child}` started"
                )))));
            }
            // Not started yet (a crash after the parent's write): start it.
            None => {
                let Some((name, input)) = workflow.child_call(&self.current.record.state) else {
                    tracing::error!(child, "the state names no child workflow");
                    return Ok(None);
                };
                match self.runtime.start_child(&self.id, child, name, input).await {
                    Ok(ChildStart::Started) => return Ok(None),
                    Ok(ChildStart::Exists(record)) => *record,
                    Err(error @ Error::IdInUse { .. }) => {
                        return Ok(Some(Err(StepError::permanent(error.to_string()))));
                    }
                    Err(error @ Error::Store(_)) => return Err(error),
                    Err(error) => {
                        tracing::error!(child, %error, "cannot start the child workflow; waiting");
                        return Ok(None);
                    }
                }
            }
        };
        if !record.phase.is_terminal() {
            if self.current.record.cancel_requested && !record.cancel_requested {
                self.runtime.cancel_child(child).await;
            }
            return Ok(None);
        }
        let now = self.now();
        let parent = &mut self.current.record;
        parent.awaiting_child = None;
        parent.push_event(HistoryEvent {
            state: Some(Cow::Owned(parent.state_name.clone())),
            step: Some(Cow::Owned(child.to_owned())),
            error: record.failure.as_ref().map(ToString::to_string),
            ..HistoryEvent::new(now, EventKind::ChildEnded)
        });
        Ok(Some(match record.phase {
            Phase::Completed => {
                if record.pivot_passed {
                    parent.pivot_passed = true;
                } else if !record.compensation_stack.is_empty() {
                    parent.compensation_stack.push(CompensationEntry {
                        step: Cow::Owned(record.workflow.clone()),
                        args: RawJson::null(),
                        output: RawJson::null(),
                        child: Some(child.to_owned()),
                    });
                }
                Ok(record.output.unwrap_or(serde_json::Value::Null))
            }
            phase => Err(StepError::permanent(format!(
                "child workflow `{}` (instance `{child}`) ended {phase}: {}",
                record.workflow,
                record.failure.map_or_else(
                    || "no reason recorded".to_owned(),
                    |failure| failure.to_string()
                )
            ))),
        }))
    }

    /// Waits (on) for child `child`: releases the lease until the child's
    /// end wakes the instance, or until the re-check time.
    async fn wait_for_child(&mut self, child: String) -> Result<Flow, Error> {
        let mut next = self.current.record.clone();
        if next.phase != Phase::Compensating {
            next.phase = Phase::Waiting;
        }
        next.awaiting_child = Some(child);
        next.next_run_at = Some(self.now().saturating_add(self.child_recheck_ms()));
        self.commit(next).await
    }

    /// Undoes a completed child workflow (the compensation entry on top of
    /// the stack stands for it): asks the child to run its own compensation
    /// stack, waits for it without a lease, and pops the entry once the
    /// child is `Compensated`. A child whose compensation failed leaves the
    /// parent `Failed` too, for an operator.
    async fn compensate_child(
        &mut self,
        entry: &CompensationEntry,
        child: &str,
    ) -> Result<Flow, Error> {
        let now = self.now();
        let mut next = self.current.record.clone();
        let Some((record, version)) = self.runtime.load(child).await? else {
            let failure = Failure {
                message: format!(
                    "the record of child workflow instance `{child}` is gone, so it cannot be compensated"
                ),
                step: Some(entry.step.to_string()),
            };
            end_failed(&mut next, failure, self.now());
            return self.commit(next).await;
        };
        match record.phase {
            Phase::Completed => {
                let mut undo = record;
                undo.phase = Phase::Compensating;
                undo.attempt = 1;
                undo.next_run_at = None;
                undo.updated_at = now;
                let failure = Failure::new(format!("its parent `{}` rolls back", self.id));
                undo.push_event(HistoryEvent {
                    error: Some(failure.to_string()),
                    ..HistoryEvent::new(now, EventKind::Compensating)
                });
                undo.failure = Some(failure);
                let bytes = record::encode(&undo).map_err(|error| Error::Codec {
                    what: "the child's record".to_owned(),
                    reason: error.to_string(),
                })?;
                match self
                    .runtime
                    .inner
                    .store()
                    .put(&record::key(child), bytes, Expect::Version(version))
                    .await
                {
                    Ok(_) => self.runtime.hint(now, child).await,
                    // Written meanwhile: read it again at once.
                    Err(StoreError::Conflict) => return Ok(Flow::Continue),
                    Err(error) => return Err(error.into()),
                }
                next.push_event(HistoryEvent {
                    step: Some(Cow::Owned(child.to_owned())),
                    ..HistoryEvent::new(now, EventKind::ChildCompensating)
                });
                self.wait_for_child_in(next, child).await
            }
            Phase::Compensated => {
                next.compensation_stack.pop();
                next.awaiting_child = None;
                next.attempt = 1;
                next.next_run_at = None;
                next.push_event(HistoryEvent {
                    step: Some(Cow::Owned(child.to_owned())),
                    ..HistoryEvent::new(now, EventKind::ChildCompensated)
                });
                if next.compensation_stack.is_empty() {
                    next.phase = Phase::Compensated;
                    next.push_event(HistoryEvent::new(now, EventKind::RolledBack));
                }
                self.commit(next).await
            }
            Phase::Failed => {
                let reason = record.failure.map_or_else(
                    || "no reason recorded".to_owned(),
                    |failure| failure.to_string(),
                );
                let failure = Failure {
                    message: format!(
                        "compensation of child workflow `{}` (instance `{child}`) failed: {reason}",
                        entry.step
                    ),
                    step: Some(entry.step.to_string()),
                };
                end_failed(&mut next, failure, self.now());
                self.commit(next).await
            }
            Phase::Running | Phase::Waiting | Phase::Compensating => {
                self.wait_for_child_in(next, child).await
            }
        }
    }

    /// Commits `next` waiting for child `child` until its end or the re-check.
    async fn wait_for_child_in(
        &mut self,
        mut next: InstanceRecord,
        child: &str,
    ) -> Result<Flow, Error> {
        next.awaiting_child = Some(child.to_owned());
        next.next_run_at = Some(self.now().saturating_add(self.child_recheck_ms()));
        self.commit(next).await
    }

    /// Runs the compensation on top of the stack (one attempt) and writes
    /// the result.
    async fn compensate_next(&mut self, workflow: &dyn ErasedWorkflow) -> Result<Flow, Error> {
        let Some(entry) = self.current.record.compensation_stack.last().cloned() else {
            let now = self.now();
            let next = &mut self.current.record;
            next.phase = Phase::Compensated;
            next.heartbeat = None;
            next.push_event(HistoryEvent::new(now, EventKind::RolledBack));
            return self.commit_at(now).await;
        };
        if let Some(child) = entry.child.clone() {
            return self.compensate_child(&entry, &child).await;
        }
        let attempt = self.current.record.attempt.max(1);
        let index = self.current.record.compensation_stack.len() - 1;
        let state_name = format!("compensate/{index}/{}", entry.step);
        let link = Arc::new(AttemptLink::new(
            self.id.clone(),
            previous_details(&self.current.record, &state_name),
        ));
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
                        .flat_map(|state| state.steps())
                        .find(|step| step.name == entry.step)
                        .map(|step| step.name);
                    let ctx = step.map(|step| AttemptContext {
                        workflow_id: Arc::clone(&self.id),
                        state: Cow::Owned(state_name.clone()),
                        step,
                        attempt,
                        iteration: None,
                    });
                    let run = async move {
                        match ctx {
                            Some(ctx) => context::scope(ctx, compensation).await,
                            None => compensation.await,
                        }
                    };
                    let span = tracing::info_span!("compensate", step = %entry.step, attempt);
                    let task = context::attempt_scope(Arc::clone(&link), run).instrument(span);
                    let Some(joined) = self
                        .while_leased(task, &link, &state_name, attempt, None)
                        .await
                    else {
                        return Ok(Flow::Stop);
                    };
                    joined.unwrap_or_else(|error| {
                        Err(StepError::permanent(format!(
                            "the compensation panicked: {}",
                            panic_message(error)
                        )))
                    })
                }
            };
        let now = self.now();
        let next = &mut self.current.record;
        let previous_heartbeat = next.heartbeat.take();
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
                    next.heartbeat =
                        heartbeat_of(&link, &state_name, attempt, now).or(previous_heartbeat);
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
                        step: Some(entry.step.to_string()),
                    };
                    end_failed(next, failure, now);
                }
            }
        }
        self.commit_at(now).await
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

/// The instance ends `Failed` with `failure`, for an operator: the rollback
/// cannot finish, or the workflow failed after its pivot.
fn end_failed(next: &mut InstanceRecord, failure: Failure, now: u64) {
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
fn fail(next: &mut InstanceRecord, failure: Failure, now: u64) {
    if next.pivot_passed {
        end_failed(next, failure, now);
    } else {
        begin_rollback(next, failure, now);
    }
}

/// Moves the instance to `Compensating` (or straight to `Compensated`
/// when there is nothing to undo).
fn begin_rollback(next: &mut InstanceRecord, failure: Failure, now: u64) {
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
fn wait_ended_at(
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
