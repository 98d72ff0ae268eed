//! The runtime: registers workflows, starts instances, runs them on workers.
//!
//! ```ignore
//! let rt = Runtime::builder()
//!     .store(MemoryStore::new())
//!     .register(place_order)
//!     .build()
//!     .await?;
//! let handle = rt.start(place_order, "order-42", order).await?;
//! match handle.outcome().await? {
//!     Outcome::Completed(receipt) => println!("{receipt:?}"),
//!     Outcome::Compensated(failure) => println!("rolled back: {failure}"),
//!     Outcome::Failed(failure) => println!("needs an operator: {failure}"),
//! }
//! ```
//!
//! Every instance is one record in the store (see [`crate::record`]); every
//! step transition is one compare-and-swap of that record.

mod builder;
mod erased;
mod handle;
mod worker;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};

pub use builder::RuntimeBuilder;
pub use handle::{Handle, Outcome};

use crate::error::{Error, StoreError};
use crate::record::{self, InstanceRecord};
pub use crate::record::{EventKind, Failure, HistoryEvent, Phase};
use crate::store::{Expect, Store};
use crate::workflow::{CompensationEntry, Workflow};
use erased::ErasedWorkflow;

/// Runs workflows: starts instances, advances them on worker tasks, answers
/// questions about them. Cheap to clone (an `Arc` inside); every clone is
/// the same runtime.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    workflows: HashMap<&'static str, Arc<dyn ErasedWorkflow>>,
    /// How many step or compensation attempts run at once; 0: client only.
    workers: usize,
    permits: Arc<Semaphore>,
    max_input_bytes: usize,
    poll_interval: Duration,
    clock: Clock,
    /// This runtime's name in leases.
    owner: String,
    /// Per-instance wake-ups between the worker and handles of this process.
    local: Mutex<HashMap<String, Arc<Local>>>,
    shutdown: watch::Sender<bool>,
    /// Number of running instance drivers, so `shutdown` can wait for them.
    drivers: watch::Sender<usize>,
}

/// What this process knows about one instance besides its record.
struct Local {
    /// Bumped after every write of the record by this process.
    changed: watch::Sender<u64>,
    /// Wakes the instance's worker from a backoff sleep (on `cancel`).
    wake: Notify,
    /// Whether a worker of this process drives the instance (the in-process claim).
    driving: AtomicBool,
}

/// Wall-clock milliseconds that advance with tokio's clock, so tests on
/// paused time (`#[tokio::test(start_paused = true)]`) see backoff pass at once.
#[derive(Clone, Copy, Debug)]
struct Clock {
    base_ms: u64,
    base: tokio::time::Instant,
}

impl Clock {
    fn new() -> Clock {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        Clock {
            base_ms,
            base: tokio::time::Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.base_ms.saturating_add(elapsed)
    }

    /// The tokio instant of wall time `ms`.
    fn instant_at(&self, ms: u64) -> tokio::time::Instant {
        self.base + Duration::from_millis(ms.saturating_sub(self.base_ms))
    }
}

/// Milliseconds in a duration, saturating, rounded up so a wait is never short.
fn duration_ms(duration: Duration) -> u64 {
    let ms = duration.as_millis() + u128::from(!duration.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// What [`Runtime::status`] reports about an instance.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Status {
    /// The instance id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// Where the instance is in its life.
    pub phase: Phase,
    /// The current state (resume point), e.g. `ChargePayment1`.
    pub state: String,
    /// The attempt number of the next step or compensation attempt.
    pub attempt: u32,
    /// When the next attempt is due (ms since the Unix epoch), if later than now.
    pub next_run_at: Option<u64>,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// Why the instance is rolling back or ended without completing.
    pub failure: Option<Failure>,
    /// Completed compensable steps, oldest first (undone last to first).
    pub compensation_stack: Vec<CompensationEntry>,
    /// Whether the pivot step has succeeded.
    pub pivot_passed: bool,
    /// Whether `cancel` was called.
    pub cancel_requested: bool,
    /// The most recent events, oldest first.
    pub history: Vec<HistoryEvent>,
    /// The fingerprint of the state machine the instance was started on.
    pub fingerprint: u64,
    /// Why this runtime will not advance the instance (an unregistered
    /// workflow, another fingerprint, an undecodable state), if it will not.
    pub blocked: Option<String>,
    /// When the instance was created (ms since the Unix epoch).
    pub created_at: u64,
    /// When its record was last written (ms since the Unix epoch).
    pub updated_at: u64,
}

/// One page of [`Runtime::list`].
#[derive(Debug)]
#[non_exhaustive]
pub struct ListPage {
    /// Instances in id order; a record that cannot be decoded is an
    /// [`Error::Corrupt`] naming it, so one bad record hides no others.
    pub instances: Vec<Result<Status, Error>>,
    /// Pass as `after` to read the next page; `None` on the last page.
    pub next: Option<String>,
}

impl Runtime {
    /// A builder: give it a store and the workflows to run.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }

    /// Starts instance `id` of `workflow` with `input`, and returns a handle
    /// to wait for its outcome.
    ///
    /// Idempotent per id: if instance `id` exists, this attaches to it and
    /// runs nothing again (`input` is ignored). If it exists and runs another
    /// workflow, [`Error::IdInUse`]. An input whose JSON exceeds the
    /// builder's `max_input_bytes` is [`Error::InputTooLarge`], and nothing
    /// is written.
    pub async fn start<W: Workflow>(
        &self,
        workflow: W,
        id: impl Into<String>,
        input: W::Input,
    ) -> Result<Handle<W::Output>, Error> {
        let id = id.into();
        self.registered(&workflow)?;
        let encoded =
            serde_json::to_vec(&input).map_err(|error| codec("the workflow input", &error))?;
        if encoded.len() > self.inner.max_input_bytes {
            return Err(Error::InputTooLarge {
                size: encoded.len(),
                limit: self.inner.max_input_bytes,
            });
        }
        drop(encoded);
        let state = W::begin(input);
        let state_name = W::state_name(&state);
        let state =
            serde_json::to_value(&state).map_err(|error| codec("the initial state", &error))?;
        let now = self.inner.clock.now_ms();
        let mut instance = InstanceRecord {
            workflow: W::NAME.to_owned(),
            id: id.clone(),
            fingerprint: record::format_fingerprint(workflow.state_machine().fingerprint),
            phase: Phase::Running,
            state_name: state_name.to_owned(),
            state,
            compensation_stack: Vec::new(),
            pivot_passed: false,
            attempt: 1,
            next_run_at: None,
            cancel_requested: false,
            lease: record::Lease::default(),
            output: None,
            failure: None,
            last_error: None,
            history: Default::default(),
            created_at: now,
            updated_at: now,
        };
        instance.push_event(HistoryEvent {
            state: Some(state_name.to_owned()),
            ..HistoryEvent::new(now, EventKind::Created)
        });
        let bytes =
            record::encode(&instance).map_err(|error| codec("the instance record", &error))?;
        match self
            .inner
            .store
            .put(&record::key(&id), bytes, Expect::Absent)
            .await
        {
            Ok(version) => {
                tracing::debug!(workflow = W::NAME, id = %id, "instance started");
                self.spawn_worker(&id, Some(worker::Current::new(instance, version)));
            }
            Err(StoreError::Conflict) => {
                let Some((existing, _)) = self.load(&id).await? else {
                    // Deleted between our write and our read: nothing to attach to.
                    return Err(Error::NotFound(id));
                };
                if existing.workflow != W::NAME {
                    return Err(Error::IdInUse {
                        id,
                        existing: existing.workflow,
                        requested: W::NAME.to_owned(),
                    });
                }
                if !existing.phase.is_terminal() {
                    self.spawn_worker(&id, None);
                }
            }
            Err(error) => return Err(error.into()),
        }
        Ok(Handle::new(self.clone(), id))
    }

    /// A handle on existing instance `id` of `workflow`, without starting
    /// anything (for example in another process than the one that started it).
    pub fn handle<W: Workflow>(&self, workflow: W, id: impl Into<String>) -> Handle<W::Output> {
        drop(workflow);
        Handle::new(self.clone(), id.into())
    }

    /// What the runtime knows about instance `id`, `None` if there is none.
    ///
    /// A record that cannot be decoded is [`Error::Corrupt`]; it is left as
    /// it is in the store.
    pub async fn status(&self, id: &str) -> Result<Option<Status>, Error> {
        Ok(self
            .load(id)
            .await?
            .map(|(instance, _)| self.status_of(instance)))
    }

    /// Instances in id order, `limit` at a time, starting after id `after`.
    ///
    /// ```ignore
    /// let mut after = None;
    /// loop {
    ///     let page = rt.list(after.as_deref(), 100).await?;
    ///     for status in page.instances { println!("{:?}", status?.phase); }
    ///     match page.next { Some(next) => after = Some(next), None => break }
    /// }
    /// ```
    pub async fn list(&self, after: Option<&str>, limit: usize) -> Result<ListPage, Error> {
        let after = after.map(record::key);
        let page = self
            .inner
            .store
            .scan(record::KEY_PREFIX, after.as_deref(), limit)
            .await?;
        let instances = page
            .entries
            .into_iter()
            .map(|(key, stored)| {
                let id = key.strip_prefix(record::KEY_PREFIX).unwrap_or(&key);
                decode_record(id, &stored.value).map(|instance| self.status_of(instance))
            })
            .collect();
        let next = page.next.map(|key| {
            key.strip_prefix(record::KEY_PREFIX)
                .map_or(key.clone(), str::to_owned)
        });
        Ok(ListPage { instances, next })
    }

    /// Cancels instance `id`: a running instance stops before its next step,
    /// runs the compensations of the steps it completed, and ends
    /// [`Outcome::Compensated`] with a "cancelled" [`Failure`].
    ///
    /// Returns once the request is recorded. An instance that has ended, is
    /// already compensating, or has passed its pivot (there is no way back)
    /// is left as it is.
    pub async fn cancel(&self, id: &str) -> Result<(), Error> {
        loop {
            let Some((mut instance, version)) = self.load(id).await? else {
                return Err(Error::NotFound(id.to_owned()));
            };
            if instance.phase.is_terminal()
                || instance.phase == Phase::Compensating
                || instance.cancel_requested
            {
                break;
            }
            if instance.pivot_passed {
                tracing::warn!(
                    id,
                    "cancel ignored: the instance has passed its pivot and can only go forward"
                );
                break;
            }
            let now = self.inner.clock.now_ms();
            instance.cancel_requested = true;
            instance.updated_at = now;
            instance.push_event(HistoryEvent::new(now, EventKind::CancelRequested));
            let bytes =
                record::encode(&instance).map_err(|error| codec("the instance record", &error))?;
            match self
                .inner
                .store
                .put(&record::key(id), bytes, Expect::Version(version))
                .await
            {
                Ok(_) => break,
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        let local = self.local(id);
        local.wake.notify_one();
        local.changed.send_modify(|generation| *generation += 1);
        Ok(())
    }

    /// Stops the workers: each finishes the attempt it runs, writes it, and
    /// stops; waiting handles return [`Error::Shutdown`]. Instances stay in
    /// the store, and the next runtime built on it resumes them.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let mut drivers = self.inner.drivers.subscribe();
        // The sender lives in `inner`, which `self` keeps alive.
        let _ = drivers.wait_for(|running| *running == 0).await;
    }

    /// The workflow registered as `workflow`'s name, with its fingerprint.
    fn registered<W: Workflow>(&self, workflow: &W) -> Result<(), Error> {
        match self.inner.workflows.get(W::NAME) {
            Some(registered)
                if registered.machine().fingerprint == workflow.state_machine().fingerprint =>
            {
                Ok(())
            }
            _ => Err(Error::UnknownWorkflow(W::NAME.to_owned())),
        }
    }

    /// Reads and decodes the record of `id`.
    async fn load(&self, id: &str) -> Result<Option<(InstanceRecord, u64)>, Error> {
        match self.inner.store.get(&record::key(id)).await? {
            None => Ok(None),
            Some(stored) => Ok(Some((decode_record(id, &stored.value)?, stored.version))),
        }
    }

    /// The registered workflow that can advance `instance`, or why none can.
    fn runnable(&self, instance: &InstanceRecord) -> Result<Arc<dyn ErasedWorkflow>, Error> {
        let workflow = self
            .inner
            .workflows
            .get(instance.workflow.as_str())
            .ok_or_else(|| Error::UnknownWorkflow(instance.workflow.clone()))?;
        let stored = instance.fingerprint_value().unwrap_or_default();
        let registered = workflow.machine().fingerprint;
        if stored != registered {
            return Err(Error::FingerprintMismatch {
                id: instance.id.clone(),
                workflow: instance.workflow.clone(),
                stored,
                registered,
            });
        }
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

    fn status_of(&self, instance: InstanceRecord) -> Status {
        let blocked = if instance.phase.is_terminal() {
            None
        } else {
            self.runnable(&instance)
                .err()
                .map(|error| error.to_string())
        };
        Status {
            fingerprint: instance.fingerprint_value().unwrap_or_default(),
            id: instance.id,
            workflow: instance.workflow,
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
            blocked,
            created_at: instance.created_at,
            updated_at: instance.updated_at,
        }
    }

    fn locals(&self) -> MutexGuard<'_, HashMap<String, Arc<Local>>> {
        // The map is only ever changed by single inserts and removes, so a
        // panic elsewhere cannot leave it half-updated.
        self.inner
            .local
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The in-process wake-ups of instance `id`, created on first use.
    fn local(&self, id: &str) -> Arc<Local> {
        let mut locals = self.locals();
        Arc::clone(locals.entry(id.to_owned()).or_insert_with(|| {
            Arc::new(Local {
                changed: watch::Sender::new(0),
                wake: Notify::new(),
                driving: AtomicBool::new(false),
            })
        }))
    }

    /// Forgets the wake-ups of `id` once nobody in this process uses them.
    fn release_local(&self, id: &str, ours: Arc<Local>) {
        let mut locals = self.locals();
        let unused = locals
            .get(id)
            .is_some_and(|entry| Arc::ptr_eq(entry, &ours))
            && Arc::strong_count(&ours) == 2
            && !ours.driving.load(Ordering::SeqCst);
        if unused {
            locals.remove(id);
        }
    }

    /// Drives instance `id` on a worker task, unless this process already does
    /// or runs no workers.
    fn spawn_worker(&self, id: &str, loaded: Option<worker::Current>) {
        if self.inner.workers == 0 || *self.inner.shutdown.borrow() {
            return;
        }
        let local = self.local(id);
        if local.driving.swap(true, Ordering::SeqCst) {
            return;
        }
        self.inner.drivers.send_modify(|running| *running += 1);
        tokio::spawn(worker::drive(self.clone(), id.to_owned(), local, loaded));
    }

    /// Resumes every unfinished instance in the store (on `build`).
    async fn resume_unfinished(&self) -> Result<(), Error> {
        let mut after: Option<String> = None;
        loop {
            let page = self
                .inner
                .store
                .scan(record::KEY_PREFIX, after.as_deref(), 256)
                .await?;
            for (key, stored) in page.entries {
                let id = key.strip_prefix(record::KEY_PREFIX).unwrap_or(&key);
                match decode_record(id, &stored.value) {
                    Ok(instance) if instance.phase.is_terminal() => {}
                    Ok(instance) => match self.runnable(&instance) {
                        Ok(_) => self
                            .spawn_worker(id, Some(worker::Current::new(instance, stored.version))),
                        Err(error) => tracing::warn!(id, %error, "instance left untouched"),
                    },
                    Err(error) => tracing::error!(id, %error, "instance left untouched"),
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut workflows: Vec<&str> = self.inner.workflows.keys().copied().collect();
        workflows.sort_unstable();
        f.debug_struct("Runtime")
            .field("store", &self.inner.store.name())
            .field("workflows", &workflows)
            .field("workers", &self.inner.workers)
            .finish_non_exhaustive()
    }
}

/// Decodes the stored bytes of instance `id`.
fn decode_record(id: &str, bytes: &[u8]) -> Result<InstanceRecord, Error> {
    let instance = record::decode(bytes).map_err(|error| Error::Corrupt {
        id: id.to_owned(),
        reason: error.to_string(),
    })?;
    if instance.fingerprint_value().is_none() {
        return Err(Error::Corrupt {
            id: id.to_owned(),
            reason: format!(
                "fingerprint `{}` is not 16 hex digits",
                instance.fingerprint
            ),
        });
    }
    Ok(instance)
}

fn codec(what: &str, error: &serde_json::Error) -> Error {
    Error::Codec {
        what: what.to_owned(),
        reason: error.to_string(),
    }
}
