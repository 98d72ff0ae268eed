//! The instances this process drives: which registered version runs a
//! record, the per-instance local state, worker permits, leases and claims,
//! and the hints that wake the poller.

use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, watch};

use super::current::{Current, Hints, Started};
use super::erased::ErasedWorkflow;
use super::local::Local;
use super::state::{Claim, Runtime, codec, decode_record};
use super::status::{AwaitedSignal, Status};
use super::{versions, worker};
use crate::FastHashMap;
use crate::clock::duration_ms;
use crate::error::{Error, StoreError};
use crate::record::{self, InstanceRecord, Lease, Phase};
use crate::store::Expect;
use crate::workflow::Workflow;

impl Runtime {
    /// The registered version `workflow` is (its name and fingerprint).
    pub(super) fn registered<W: Workflow>(
        &self,
        workflow: &W,
    ) -> Result<Arc<dyn ErasedWorkflow>, Error> {
        let fingerprint = workflow.state_machine().fingerprint();
        self.inner
            .registry
            .versions(W::NAME)
            .iter()
            .find(|registered| registered.fingerprint() == fingerprint)
            .cloned()
            .ok_or_else(|| Error::UnknownWorkflow(W::NAME.to_owned()))
    }

    /// Reads and decodes the record of `id`.
    pub(super) async fn load(&self, id: &str) -> Result<Option<(InstanceRecord, u64)>, Error> {
        match self.inner.store().get(&record::key(id)).await? {
            None => Ok(None),
            Some(stored) => Ok(Some((decode_record(id, &stored.value)?, stored.version))),
        }
    }

    /// How this runtime would run `instance` (as it is, moved to another
    /// version, migrated), or why it cannot.
    pub(super) fn plan(&self, instance: &InstanceRecord) -> Result<versions::Plan, Error> {
        self.inner.registry.plan(instance)
    }

    /// Whether this runtime can run `instance`, as it is or after moving it
    /// to another version; why not if it cannot.
    pub(super) fn runnable(&self, instance: &InstanceRecord) -> Result<(), Error> {
        self.plan(instance).map(drop)
    }

    /// The registered machine of `instance`'s own fingerprint, whose state
    /// decodes: what a worker drives a claimed instance on (its claim moved
    /// or migrated it first where its plan said so).
    pub(super) fn exact(
        &self,
        instance: &InstanceRecord,
    ) -> Result<Arc<dyn ErasedWorkflow>, Error> {
        let fingerprint = instance.fingerprint_value().unwrap_or_default();
        let Some(workflow) = self
            .inner
            .registry
            .versions(&instance.workflow)
            .iter()
            .find(|workflow| workflow.fingerprint() == fingerprint)
        else {
            // Why it cannot run here, as the plan says it.
            return Err(match self.plan(instance) {
                Err(error) => error,
                Ok(_) => Error::FingerprintMismatch {
                    id: instance.id.clone(),
                    workflow: instance.workflow.clone(),
                    stored: fingerprint,
                    registered: self
                        .inner
                        .registry
                        .newest(&instance.workflow)
                        .map_or(0, |newest| newest.fingerprint()),
                    reason: "it must move to another version first, which its next claim does"
                        .to_owned(),
                },
            });
        };
        if !instance.phase.is_terminal() {
            workflow
                .check_state(&instance.state)
                .map_err(|reason| Error::Corrupt {
                    id: instance.id.clone(),
                    reason,
                })?;
        }
        Ok(Arc::clone(workflow))
    }

    /// Applies what the plan of `instance` changes before it runs here:
    /// moves it to another version or migrates it, in place (the claim's
    /// write stores it). `Err` with why when it cannot run here.
    pub(super) fn prepare(&self, instance: &mut InstanceRecord, now: u64) -> Result<(), String> {
        if !self.inner.registry.may_move(instance) {
            return Ok(());
        }
        match self.plan(instance).map_err(|error| error.to_string())? {
            versions::Plan::Run => Ok(()),
            versions::Plan::Move {
                to,
                kind,
                from_version,
                notes,
            } => {
                versions::apply_move(instance, &*to, kind, from_version, &notes, now);
                tracing::info!(
                    id = %instance.id,
                    version = to.version(),
                    "instance moved to another version"
                );
                Ok(())
            }
            versions::Plan::Migrate {
                migration,
                to,
                fallback,
            } => match versions::apply_migration(instance, &*migration, &*to, now) {
                Ok(()) => {
                    tracing::info!(
                        id = %instance.id,
                        migration = migration.name(),
                        version = to.version(),
                        "instance migrated"
                    );
                    Ok(())
                }
                Err(reason) => {
                    tracing::warn!(id = %instance.id, reason, "instance not migrated");
                    match fallback {
                        Some(_) => Ok(()),
                        None => Err(reason),
                    }
                }
            },
        }
    }

    /// Why this runtime will not advance `instance`, if it will not: no
    /// registered version can run it, its state does not decode, or the
    /// migration registered for it would decline with no old version here
    /// to finish on. `None` for an ended instance, and for one this runtime
    /// would run. What [`Status::blocked`] says, for a record read by hand
    /// (the operator tools read records without going through `status`).
    pub fn blocked(&self, instance: &InstanceRecord) -> Option<String> {
        if instance.phase.is_terminal() {
            return None;
        }
        match self.plan(instance) {
            Err(error) => Some(error.to_string()),
            Ok(versions::Plan::Migrate {
                migration,
                to,
                fallback: None,
            }) => versions::trial_migration(instance, &*migration, &*to, 0)
                .err()
                .map(|reason| format!("it is not migrated: {reason}")),
            Ok(_) => None,
        }
    }

    pub(super) fn status_of(&self, mut instance: InstanceRecord) -> Status {
        let blocked = self.blocked(&instance);
        let waits = matches!(instance.phase, Phase::Running | Phase::Waiting);
        let fingerprint = instance.fingerprint_value().unwrap_or_default();
        let awaiting_signal = instance
            .awaiting_signal
            .take()
            .filter(|_| waits)
            .map(|name| AwaitedSignal {
                name,
                timeout_at: instance.next_run_at,
            });
        // The child a parent waits for, then the completed ones it can
        // still compensate (the one being compensated is both: once).
        let mut children: Vec<String> = Vec::new();
        let stacked = instance
            .compensation_stack
            .iter()
            .filter_map(|entry| entry.child.as_ref());
        for child in instance.awaiting_child.iter().chain(stacked) {
            if !children.contains(child) {
                children.push(child.clone());
            }
        }
        Status {
            awaiting_signal,
            fingerprint,
            parent: instance.parent,
            children,
            id: instance.id,
            workflow: instance.workflow,
            version: instance.version,
            phase: instance.phase,
            state: instance.state_name,
            attempt: instance.attempt,
            next_run_at: instance.next_run_at,
            last_error: instance.last_error,
            failure: instance.failure,
            compensation_stack: instance.compensation_stack,
            pivot_passed: instance.pivot_passed,
            cancel_requested: instance.cancel_requested,
            history: instance.history.into(),
            lease: instance.lease,
            heartbeat: instance.heartbeat,
            blocked,
            created_at: instance.created_at,
            updated_at: instance.updated_at,
        }
    }

    pub(super) fn locals(&self) -> MutexGuard<'_, FastHashMap<String, Arc<Local>>> {
        // The map is only ever changed by single inserts and removes, so a
        // panic elsewhere cannot leave it half-updated.
        self.inner
            .local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The in-process wake-ups of instance `id`, created on first use.
    pub(super) fn local(&self, id: &str) -> Arc<Local> {
        let mut locals = self.locals();
        Arc::clone(
            locals
                .entry(id.to_owned())
                .or_insert_with(|| Arc::new(Local::new())),
        )
    }

    /// Forgets the wake-ups of `id` once nobody in this process uses them.
    pub(super) fn release_local(&self, id: &str, ours: Arc<Local>) {
        let mut locals = self.locals();
        let unused = locals
            .get(id)
            .is_some_and(|entry| Arc::ptr_eq(entry, &ours))
            && Arc::strong_count(&ours) == 2
            && !ours.driving.load(Ordering::SeqCst);
        if unused {
            locals.remove(id);
            // The room a burst made goes once it is over (amortised: the
            // map shrinks to a quarter of its room at most once per
            // three-quarters of it emptied).
            if locals.capacity() > 4096 && locals.len() < locals.capacity() / 8 {
                let room = locals.len() * 2;
                locals.shrink_to(room);
            }
        }
    }

    /// Whether a worker of this process drives instance `id`.
    pub(super) fn is_driving(&self, id: &str) -> bool {
        self.locals()
            .get(id)
            .is_some_and(|local| local.driving.load(Ordering::SeqCst))
    }

    /// A worker slot, if one is free and the runtime runs.
    pub(super) fn free_permit(&self) -> Option<OwnedSemaphorePermit> {
        if self.inner.workers == 0 || *self.inner.shutdown.borrow() {
            return None;
        }
        Arc::clone(&self.inner.permits).try_acquire_owned().ok()
    }

    /// Waits for a worker slot; `None` on shutdown.
    pub(super) async fn permit(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<OwnedSemaphorePermit> {
        if *shutdown.borrow_and_update() {
            return None;
        }
        tokio::select! {
            permit = Arc::clone(&self.inner.permits).acquire_owned() => permit.ok(),
            _ = shutdown.changed() => None,
        }
    }

    pub(super) fn lease_ttl_ms(&self) -> u64 {
        duration_ms(self.inner.lease_ttl)
    }

    /// Makes `instance`'s lease this runtime's, with a new epoch.
    pub(super) fn claim_lease(&self, instance: &mut InstanceRecord, now: u64) {
        instance.lease = Lease {
            owner: Some(self.inner.owner.clone()),
            expires_at: Some(now.saturating_add(self.lease_ttl_ms())),
            epoch: instance.lease.epoch.saturating_add(1),
        };
    }

    /// Whether a worker may claim `instance` now: due, unleased, runnable here.
    pub(super) fn ready(&self, instance: &InstanceRecord, now: u64) -> bool {
        instance.is_due(now) && !instance.lease.is_live(now) && self.runnable(instance).is_ok()
    }

    /// Claims instance `id` (read at `version`) with one compare-and-swap and
    /// runs it on a driver holding `permit`, moving it to another version or
    /// migrating it in the same write where its plan says so. `NotReady` if
    /// this process already drives it or another writer got there first,
    /// `Blocked` if it cannot run here.
    pub(super) async fn try_claim(
        &self,
        id: &str,
        mut instance: InstanceRecord,
        version: u64,
        permit: OwnedSemaphorePermit,
    ) -> Result<Claim, Error> {
        if *self.inner.shutdown.borrow() {
            return Ok(Claim::NotReady);
        }
        let local = self.local(id);
        if local.driving.swap(true, Ordering::SeqCst) {
            self.release_local(id, local);
            return Ok(Claim::NotReady);
        }
        let now = self.inner.clock.now_ms();
        let previous = instance.lease.owner.clone();
        // Moved to another version or migrated in the claim's own write.
        if let Err(reason) = self.prepare(&mut instance, now) {
            tracing::debug!(id, reason, "instance left to a runtime that can run it");
            local.stop_driving();
            self.release_local(id, local);
            return Ok(Claim::Blocked);
        }
        self.claim_lease(&mut instance, now);
        instance.updated_at = now;
        // The lease hint is written beside the claim (see `start_with`).
        let lease_hint = instance
            .lease
            .expires_at
            .map(|expires_at| record::due_key(expires_at, id));
        let written = match record::encode(&instance) {
            Ok(bytes) => {
                let key = record::key(id);
                let written = self
                    .inner
                    .store()
                    .put(&key, bytes, Expect::Version(version));
                let written = match &lease_hint {
                    Some(hint) => tokio::join!(written, self.write_hint(hint, id)).0,
                    None => written.await,
                };
                self.landed(id, &instance, written).await
            }
            Err(error) => {
                local.stop_driving();
                self.release_local(id, local);
                return Err(codec("the instance record", &error));
            }
        };
        match written {
            Ok(version) => {
                tracing::debug!(
                    id,
                    epoch = instance.lease.epoch,
                    previous = previous.as_deref().unwrap_or("none"),
                    "instance claimed"
                );
                let hints = Hints {
                    poller: true,
                    lease: lease_hint,
                };
                self.spawn_driver(
                    id.to_owned(),
                    local,
                    Current::new(instance, version),
                    permit,
                    hints,
                    None,
                );
                Ok(Claim::Claimed)
            }
            Err(error) => {
                local.stop_driving();
                self.release_local(id, local);
                match error {
                    StoreError::Conflict => Ok(Claim::NotReady),
                    error => Err(error.into()),
                }
            }
        }
    }

    /// A write of `written` whose answer was lost (a timeout, a dropped
    /// connection) may have applied: if the record now is exactly what was
    /// written, it did, and its version is the answer.
    pub(super) async fn landed(
        &self,
        id: &str,
        written: &InstanceRecord,
        result: Result<u64, StoreError>,
    ) -> Result<u64, StoreError> {
        let Err(StoreError::Timeout(_) | StoreError::Unavailable(_)) = &result else {
            return result;
        };
        match self.load(id).await {
            Ok(Some((stored, version))) if stored == *written => {
                tracing::debug!(id, "an unanswered write had landed");
                Ok(version)
            }
            _ => result,
        }
    }

    /// Reads instance `id` and claims it if it is ready, holding `permit`.
    pub(super) async fn claim_if_ready(
        &self,
        id: &str,
        permit: OwnedSemaphorePermit,
    ) -> Result<Claim, Error> {
        if self.is_driving(id) {
            return Ok(Claim::NotReady);
        }
        let (instance, version) = match self.load(id).await {
            Ok(Some(loaded)) => loaded,
            Ok(None) => return Ok(Claim::NotReady),
            Err(Error::Corrupt { .. }) => return Ok(Claim::Blocked),
            Err(error) => return Err(error),
        };
        let now = self.inner.clock.now_ms();
        if instance.lease.is_live(now) && !instance.phase.is_terminal() {
            return Ok(Claim::Leased(instance.lease.expires_at.unwrap_or(now)));
        }
        if !instance.is_due(now) {
            return Ok(Claim::NotReady);
        }
        if self.runnable(&instance).is_err() {
            return Ok(Claim::Blocked);
        }
        self.try_claim(id, instance, version, permit).await
    }

    /// Runs instance `id`, claimed by this runtime, on a worker task,
    /// with its due hints (see [`Hints`]).
    pub(super) fn spawn_driver(
        &self,
        id: String,
        local: Arc<Local>,
        current: Current,
        permit: OwnedSemaphorePermit,
        hints: Hints,
        started: Option<Started>,
    ) {
        self.inner.drivers.started();
        // An end seen in an earlier life (before an operator's retry) is
        // over. Waiting handles are woken without a read: they stop polling
        // the store, as the driver tells them how it ends.
        local.changed.send_modify(|written| {
            written.ended = None;
            written.by_worker = true;
        });
        tokio::spawn(worker::drive(
            self.clone(),
            id,
            local,
            current,
            permit,
            hints,
            started,
        ));
    }

    /// Writes a due hint for instance `id` at `at_ms` and wakes this
    /// process's poller. A failed hint is only logged: the recovery scan
    /// finds the instance anyway, later.
    pub(super) async fn hint(&self, at_ms: u64, id: &str) {
        self.put_hint(at_ms, id).await;
        self.wake_poller();
    }

    /// Writes a due hint for instance `id` at `at_ms`.
    pub(super) async fn put_hint(&self, at_ms: u64, id: &str) {
        self.write_hint(&record::due_key(at_ms, id), id).await;
    }

    /// Writes the due hint `key` of instance `id`. A failed hint is only
    /// logged: the recovery sweep finds the instance anyway, later.
    pub(super) async fn write_hint(&self, key: &str, id: &str) {
        if let Err(error) = self
            .inner
            .store()
            .put(key, id.as_bytes().to_vec(), Expect::Any)
            .await
        {
            tracing::warn!(id, %error, "cannot write a due hint; the recovery sweep will find the instance");
        }
    }

    /// Whether a start without a free worker waits in this runtime's
    /// backlog: it runs workers, is not shutting down, and has room.
    pub(super) fn takes_backlog(&self) -> bool {
        self.inner.workers > 0 && !*self.inner.shutdown.borrow() && self.inner.backlog.has_room()
    }

    /// Makes the poller scan the due index now: this process wrote a hint.
    pub(super) fn wake_poller(&self) {
        self.inner.hinted.store(true, Ordering::SeqCst);
        self.inner.poke.notify_one();
    }
}
