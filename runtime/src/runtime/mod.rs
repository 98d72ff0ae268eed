//! The runtime: registers workflows, starts instances, runs them on workers.
//!
//! ```
//! # use sagaflow::prelude::*;
//! # #[step(readonly)]
//! # async fn price(sku: &str) -> Result<u64, StepError> { Ok(sku.len() as u64) }
//! # #[workflow]
//! # async fn place_order(order: String) -> Result<u64, WorkflowError> {
//! #     let cents = price(&order).await?;
//! #     Ok(cents)
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), sagaflow::Error> {
//! # let order = "tea".to_owned();
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
//! # rt.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Every instance is one record in the store (see [`crate::record`]); every
//! step transition is one compare-and-swap of that record.
//!
//! # Durable execution across processes
//!
//! Any number of runtimes (in one process or many, on one machine or many)
//! may share a store. A runtime with workers runs an instance only while it
//! holds the instance's **lease** ([`Lease`]): it claims the lease with one
//! compare-and-swap of the record (its id as owner, an expiry one lease TTL
//! ahead, the epoch incremented), renews it every third of the TTL while a
//! step runs, and writes each transition as a compare-and-swap on the
//! version it read. A holder that stalled past its lease while another
//! runtime claimed the instance finds its next write rejected, discards the
//! step's result and stops: it never overwrites the new holder. Steps are
//! therefore at-least-once (a takeover re-runs the step in flight) and
//! transitions exactly-once.
//!
//! Work is found three ways:
//! - `start` on a runtime with a free worker claims the new instance in the
//!   very write that creates it, and runs it at once;
//! - an instance that is due later (a retry's backoff), started by a
//!   client-only runtime, started while every worker is busy, or cancelled
//!   while waiting gets a **due hint**, a key `due/{ms}/{id}` in the store.
//!   Every worker runtime scans the hints up to now every
//!   [`poll_interval`](RuntimeBuilder::poll_interval) (and at once for its
//!   own hints), re-reads the record and claims it if it is due and its
//!   lease is free. Hints are never truth: stale ones are deleted;
//! - every [`recovery_interval`](RuntimeBuilder::recovery_interval) (and
//!   when it is built) a worker runtime scans all instances for due ones
//!   whose lease expired, so the work of a crashed process is taken over one
//!   lease TTL after its last renewal.
//!
//! A step's transition stays one write: hints are written only for delayed
//! or handed-over work, never per step.

mod backlog;
mod builder;
mod claims;
mod control;
pub(crate) mod erased;
mod handle;
mod layers;
mod poller;
mod upgrade;
pub(crate) mod versions;
mod worker;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};

pub use builder::RuntimeBuilder;
pub use handle::{Handle, Outcome};
pub use upgrade::{
    InstanceUpgrade, UpgradeAction, UpgradeReport, VersionReport, VersionSummary, WorkflowVersions,
};

use crate::FastHashMap;
use crate::clock::Clock;
use crate::error::{Error, StoreError};
use crate::machine::StateMachine;
use crate::record::{self, InstanceRecord, RawJson};
pub use crate::record::{EventKind, Failure, Heartbeat, HistoryEvent, Lease, Phase};
use crate::store::{Expect, Store};
use crate::workflow::{CompensationEntry, Workflow};

/// Runs workflows: starts instances, advances them on worker tasks, answers
/// questions about them. Cheap to clone (an `Arc` inside); every clone is
/// the same runtime.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    /// The registered versions and migrations, and what they make of each
    /// instance.
    registry: versions::Registry,
    /// How many instances this runtime drives at once; 0: client only.
    workers: usize,
    /// One per instance driven; held from its claim to its lease's release.
    permits: Arc<Semaphore>,
    max_input_bytes: usize,
    poll_interval: Duration,
    lease_ttl: Duration,
    recovery_interval: Duration,
    clock: Arc<dyn Clock>,
    /// This runtime's name in leases, unique among all runtimes.
    owner: String,
    /// Per-instance wake-ups between the worker and handles of this process.
    local: Mutex<FastHashMap<String, Arc<Local>>>,
    /// Instances started while every worker was busy, waiting for one.
    backlog: backlog::Backlog,
    /// Wakes the poller: a hint was written here.
    poke: Notify,
    /// Whether this process wrote a hint (or learnt of due work) since the
    /// poller's last scan of the due index: without one, a poke needs no scan.
    hinted: AtomicBool,
    shutdown: watch::Sender<bool>,
    /// The running drivers and pollers, so `shutdown` can wait for them.
    drivers: Running,
    /// What layers built on the runtime keep in it (the queues).
    layers: Vec<Box<dyn Layer>>,
}

/// A part built on the runtime's public API (the queues, `crate::queue`)
/// that the runtime keeps: configured on the builder
/// (`RuntimeBuilder::layer_mut`), found again by its own methods
/// (`Runtime::layer`), started once the runtime is built.
pub(crate) trait Layer: std::any::Any + Send + Sync {
    /// What the layer is, for `Debug` output.
    fn name(&self) -> &'static str;

    /// Checks its configuration and starts its tasks on the built runtime;
    /// an error fails `build`.
    fn start(&self, runtime: &Runtime) -> Result<(), Error>;
}

/// How many drivers and pollers run: counted on every instance's start and
/// end, so an atomic counter, with a wake-up only when the last one stops.
#[derive(Default)]
struct Running {
    count: AtomicUsize,
    none: Notify,
}

impl Inner {
    /// The store, called as itself: through the `Arc` it is kept in, each
    /// call would box a future of its own around the store's.
    fn store(&self) -> &dyn Store {
        &*self.store
    }
}

impl Running {
    fn started(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    fn stopped(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.none.notify_waiters();
        }
    }

    /// Waits until none runs.
    async fn all_stopped(&self) {
        loop {
            let none = self.none.notified();
            let mut none = std::pin::pin!(none);
            // Registered before the count is read: a stop in between wakes it.
            none.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            none.await;
        }
    }
}

/// Held by a task counted in [`Inner::drivers`] (the poller, the backlog's
/// dispatcher) for as long as it runs: its drop counts the task stopped,
/// however it ends, so `shutdown` waits for it and no longer.
struct CountedTask(Runtime);

impl Drop for CountedTask {
    fn drop(&mut self) {
        self.0.inner.drivers.stopped();
    }
}

/// What this process knows about one instance besides its record.
struct Local {
    /// Changed after every write of the record by this process; carries
    /// the outcome once a worker here has written the instance's end, so
    /// handles need not read the store to learn it.
    changed: Changes,
    /// Whether a worker of this process drives the instance.
    driving: AtomicBool,
}

impl Local {
    fn new() -> Local {
        Local {
            changed: Changes {
                written: Mutex::new(Written::default()),
                notify: Notify::new(),
            },
            driving: AtomicBool::new(false),
        }
    }

    /// No worker of this process drives the instance any more. Handles
    /// waiting on it without polling the store (a worker here would tell
    /// them its end) learn that they must read it: it waits, failed to be
    /// claimed, or went to another process.
    fn stop_driving(&self) {
        self.driving.store(false, Ordering::SeqCst);
        self.changed.send_if_modified(|written| {
            if written.ended.is_some() {
                return false;
            }
            written.bump();
            true
        });
    }
}

/// The latest write of an instance by this process, and the wake-up of the
/// handles waiting on it: one per instance, so a mutex and a `Notify`
/// rather than a channel.
struct Changes {
    written: Mutex<Written>,
    notify: Notify,
}

impl Changes {
    /// Applies `change`, and wakes the waiting handles if it returns true.
    fn send_if_modified(&self, change: impl FnOnce(&mut Written) -> bool) {
        let wake = {
            // Only ever changed by the closures here, which cannot panic
            // halfway through.
            let mut written = self
                .written
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            change(&mut written)
        };
        if wake {
            self.notify.notify_waiters();
        }
    }

    /// Applies `change` and wakes the waiting handles.
    fn send_modify(&self, change: impl FnOnce(&mut Written)) {
        self.send_if_modified(|written| {
            change(written);
            true
        });
    }

    /// The latest write.
    fn latest(&self) -> Written {
        self.written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A wake-up for the next change: enable it before reading
    /// [`latest`](Self::latest), so a change in between is not missed.
    fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

/// The latest write of an instance by this process, as its handles see it.
#[derive(Clone, Debug, Default)]
struct Written {
    /// Written by this process's worker, which tells its handles how the
    /// instance ends: nothing but `ended` needs a read of the store.
    by_worker: bool,
    /// How the instance ended, as durably written by a worker here.
    ended: Option<Arc<Ended>>,
}

/// An instance's end, as its terminal record states it.
#[derive(Debug)]
struct Ended {
    phase: Phase,
    output: Option<serde_json::Value>,
    failure: Option<Failure>,
}

impl Written {
    /// A write by `cancel` or `signal`: the handles re-read the record.
    fn bump(&mut self) {
        self.by_worker = false;
    }
}

/// What [`Runtime::start_child`] found.
enum ChildStart {
    /// It created the child's record.
    Started,
    /// The child exists (started by an earlier run of the parent's code).
    Exists(Box<InstanceRecord>),
}

/// A boxed future borrowing the runtime (for the recursion of a cancel
/// through a chain of children).
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Why a claim did not run an instance, or that it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Claim {
    /// Claimed; a driver runs it.
    Claimed,
    /// Gone, ended, or not due: nothing to do here.
    NotReady,
    /// This runtime cannot run it (unregistered, another fingerprint,
    /// undecodable); another runtime might.
    Blocked,
    /// Another runtime holds its lease until this time: a due hint for it
    /// belongs there, so that the instance is found if that runtime dies.
    Leased(u64),
}

/// A name for this runtime in leases: the process id, the time and a
/// counter, so two runtimes never share one.
fn unique_owner() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}-{nanos:x}-{n}", std::process::id())
}

/// The signal an instance waits for: [`Status::awaiting_signal`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwaitedSignal {
    /// The signal's name, as the workflow waits for it
    /// (`sagaflow::signal("approval")`).
    pub name: String,
    /// When the wait times out (ms since the Unix epoch), for a
    /// [`signal_timeout`](crate::signal_timeout()) wait; `None`: it waits
    /// until the signal comes.
    pub timeout_at: Option<u64>,
}

/// What [`Runtime::status`] reports about an instance.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Status {
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
    /// The attempt number of the next step or compensation attempt.
    pub attempt: u32,
    /// When the next attempt is due (ms since the Unix epoch), if later than now.
    pub next_run_at: Option<u64>,
    /// The signal the instance waits for, and until when, if it waits for
    /// one (a signal already in its inbox is consumed at its next run).
    pub awaiting_signal: Option<AwaitedSignal>,
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
    /// Who runs (or last ran) the instance, until when, and the claim's epoch.
    pub lease: Lease,
    /// The last progress the current step's attempts reported with
    /// [`heartbeat`](crate::heartbeat()).
    pub heartbeat: Option<Heartbeat>,
    /// Why this runtime will not advance the instance (an unregistered
    /// workflow, another fingerprint, an undecodable state), if it will not.
    pub blocked: Option<String>,
    /// The instance that started this one as its child workflow, if any.
    pub parent: Option<String>,
    /// The child workflow instances this one started and keeps: the child
    /// it waits for, then the completed ones on its compensation stack.
    pub children: Vec<String>,
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
    /// On a runtime with a free worker, the record is created already
    /// claimed by this runtime (one write) and the instance runs at once.
    /// On a client-only runtime (`workers(0)`), or when every worker is
    /// busy, the record is created unclaimed with a due hint, and the first
    /// worker runtime with capacity (this one or another process's) claims it.
    ///
    /// Idempotent per id: if instance `id` exists, this attaches to it and
    /// runs nothing again (`input` is ignored); this runtime runs it only if
    /// it has a free worker and wins the claim on an instance whose lease is
    /// free. If it exists and runs another workflow, [`Error::IdInUse`]. An
    /// input whose JSON exceeds the builder's `max_input_bytes` is
    /// [`Error::InputTooLarge`], and nothing is written.
    pub async fn start<W: Workflow>(
        &self,
        workflow: W,
        id: impl Into<String>,
        input: W::Input,
    ) -> Result<Handle<W::Output>, Error> {
        // Boxed: the caller's future (often a task of its own) then holds
        // a pointer, not the kilobytes of a record being written.
        Box::pin(self.start_with(workflow, id.into(), input, None)).await
    }

    /// Sends signal `name` to instance `id` of `workflow`, starting the
    /// instance with `input` first if it does not exist: the new record is
    /// written with the signal already in its inbox (one write). If the
    /// instance exists, this is [`signal`](Self::signal) (and `input` is
    /// ignored), and the handle attaches to it.
    ///
    /// ```no_run
    /// # use sagaflow::prelude::*;
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # pub struct Request { amount: u64 }
    /// # #[workflow]
    /// # async fn approval(request: Request) -> Result<bool, WorkflowError> {
    /// #     let approved: bool = sagaflow::signal("approval").await;
    /// #     Ok(approved && request.amount > 0)
    /// # }
    /// # async fn demo(rt: Runtime) -> Result<(), sagaflow::Error> {
    /// # let request = Request { amount: 5 };
    /// let handle = rt
    ///     .signal_with_start(approval, "req-7", request, "approval", true)
    ///     .await?;
    /// # let _ = handle;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn signal_with_start<W: Workflow>(
        &self,
        workflow: W,
        id: impl Into<String>,
        input: W::Input,
        name: &str,
        value: impl serde::Serialize,
    ) -> Result<Handle<W::Output>, Error> {
        let value = serde_json::to_value(value)
            .map_err(|error| codec(&format!("signal `{name}`"), &error))?;
        let id = id.into();
        let existed = Arc::new(AtomicBool::new(false));
        let handle = self
            .start_with(
                workflow,
                id.clone(),
                input,
                Some((name, value.clone(), Arc::clone(&existed))),
            )
            .await?;
        if existed.load(Ordering::SeqCst) {
            self.signal(&id, name, value).await?;
        }
        Ok(handle)
    }

    async fn start_with<W: Workflow>(
        &self,
        workflow: W,
        id: String,
        input: W::Input,
        signal: Option<(&str, serde_json::Value, Arc<AtomicBool>)>,
    ) -> Result<Handle<W::Output>, Error> {
        let registered = self.registered(&workflow)?;
        // Measured, not kept: the input is stored inside the first state.
        let mut size = ByteCount(0);
        serde_json::to_writer(&mut size, &input)
            .map_err(|error| codec("the workflow input", &error))?;
        if size.0 > self.inner.max_input_bytes {
            return Err(Error::InputTooLarge {
                size: size.0,
                limit: self.inner.max_input_bytes,
            });
        }
        let state = W::begin(input);
        let state_name = W::state_name(&state);
        let json = RawJson::to_json(&state).map_err(|error| codec("the initial state", &error))?;
        let now = self.inner.clock.now_ms();
        let mut instance = new_record(
            W::NAME,
            workflow.state_machine(),
            &id,
            state_name,
            json,
            now,
        );
        if let Some((name, value, _)) = &signal {
            instance.push_signal(name, value.clone(), now);
        }
        // Claimed in the creating write when a worker is free (no extra
        // write), or when this runtime keeps it in its backlog until one is.
        let permit = self.free_permit();
        let backlogged = permit.is_none() && self.takes_backlog();
        // A claimed record gets a due hint at its lease's expiry, written
        // beside it (nothing reads it before then): the way any runtime
        // finds the instance if this one dies first.
        let lease_hint = if permit.is_some() || backlogged {
            self.claim_lease(&mut instance, now);
            instance
                .lease
                .expires_at
                .map(|expires_at| record::due_key(expires_at, &id))
        } else {
            None
        };
        let bytes =
            record::encode(&instance).map_err(|error| codec("the instance record", &error))?;
        let key = record::key(&id);
        let created = self.inner.store().put(&key, bytes, Expect::Absent);
        let created = match &lease_hint {
            Some(hint) => {
                let hinted = self.write_hint(hint, &id);
                tokio::join!(created, hinted).0
            }
            None => created.await,
        };
        match created {
            Ok(version) => {
                tracing::debug!(workflow = W::NAME, id = %id, "instance started");
                // The driver starts from the state as its type, made here
                // from a registered workflow: nothing to decode or check.
                let started = worker::Started {
                    workflow: registered,
                    typed: Box::new(state),
                };
                let current = worker::Current::new(instance, version);
                match (permit, lease_hint) {
                    (Some(permit), lease) => {
                        let local = self.local(&id);
                        if local.driving.swap(true, Ordering::SeqCst) {
                            // Cannot happen for a record just created; leave
                            // it to its lease's expiry rather than run it twice.
                            self.release_local(&id, local);
                        } else {
                            let hints = worker::Hints {
                                poller: false,
                                lease,
                            };
                            self.spawn_driver(
                                id.clone(),
                                local,
                                current,
                                permit,
                                hints,
                                Some(started),
                            );
                        }
                    }
                    (None, Some(hint)) => {
                        let local = self.local(&id);
                        if local.driving.swap(true, Ordering::SeqCst) {
                            self.release_local(&id, local);
                        } else {
                            self.inner.backlog.push(backlog::Waiting {
                                id: id.clone(),
                                local,
                                current,
                                started,
                                hint,
                            });
                        }
                    }
                    (None, None) => self.hint(now, &id).await,
                }
            }
            Err(StoreError::Conflict) => {
                drop(permit);
                let Some((existing, version)) = self.load(&id).await? else {
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
                if let Some((_, _, existed)) = &signal {
                    existed.store(true, Ordering::SeqCst);
                }
                self.attach(&id, existing, version).await?;
            }
            Err(error) => return Err(error.into()),
        }
        Ok(Handle::new(self.clone(), id))
    }

    /// On `start` of an existing instance: runs it here only if a worker is
    /// free and the instance is due and unclaimed.
    async fn attach(&self, id: &str, existing: InstanceRecord, version: u64) -> Result<(), Error> {
        if self.is_driving(id) || !self.ready(&existing, self.inner.clock.now_ms()) {
            return Ok(());
        }
        match self.free_permit() {
            Some(permit) => {
                self.try_claim(id, existing, version, permit).await?;
            }
            // Every worker is busy: the due index or the recovery scan finds it.
            None => self.wake_poller(),
        }
        Ok(())
    }

    /// Starts instance `id` of the workflow registered as `workflow`, by
    /// name, with `input` as JSON: on the newest registered version, or on
    /// `version` when given (a client pinning a start). For callers that do
    /// not have the workflow's types (an HTTP gateway, an operator's tool);
    /// with them, [`start`](Self::start) of a version's own name does the
    /// same, typed.
    ///
    /// The record is created unclaimed with a due hint, for the first worker
    /// runtime with capacity (this one or another). Idempotent per id like
    /// `start`: an existing instance of the same workflow is attached to
    /// (and `input` ignored); of another workflow, [`Error::IdInUse`]. An
    /// unknown name or version is [`Error::UnknownWorkflow`]; an input that
    /// does not decode as the version's input type is [`Error::Codec`], and
    /// nothing is written.
    ///
    /// ```no_run
    /// # use sagaflow::prelude::*;
    /// # async fn demo(rt: Runtime) -> Result<(), sagaflow::Error> {
    /// let handle = rt
    ///     .start_by_name("place_order", None, "order-9", serde_json::json!({"id": "order-9"}))
    ///     .await?;
    /// # let _ = handle;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn start_by_name(
        &self,
        workflow: &str,
        version: Option<u32>,
        id: impl Into<String>,
        input: serde_json::Value,
    ) -> Result<Handle<serde_json::Value>, Error> {
        let id = id.into();
        let registry = &self.inner.registry;
        let registered = match version {
            None => registry.newest(workflow),
            Some(version) => registry
                .versions(workflow)
                .iter()
                .find(|registered| registered.version() == version),
        };
        let Some(registered) = registered.cloned() else {
            let what = match version {
                Some(version) => format!("{workflow}` version `{version}"),
                None => workflow.to_owned(),
            };
            return Err(Error::UnknownWorkflow(what));
        };
        let size = serde_json::to_vec(&input).map_or(0, |bytes| bytes.len());
        if size > self.inner.max_input_bytes {
            return Err(Error::InputTooLarge {
                size,
                limit: self.inner.max_input_bytes,
            });
        }
        let (state, state_name) = registered.begin(input).map_err(|reason| Error::Codec {
            what: format!("the input of instance `{id}`"),
            reason,
        })?;
        let now = self.inner.clock.now_ms();
        let instance = new_record(
            registered.name(),
            registered.machine(),
            &id,
            state_name,
            state,
            now,
        );
        let bytes =
            record::encode(&instance).map_err(|error| codec("the instance record", &error))?;
        match self
            .inner
            .store()
            .put(&record::key(&id), bytes, Expect::Absent)
            .await
        {
            Ok(_) => self.hint(now, &id).await,
            Err(StoreError::Conflict) => {
                let Some((existing, version)) = self.load(&id).await? else {
                    return Err(Error::NotFound(id));
                };
                if existing.workflow != registered.name() {
                    return Err(Error::IdInUse {
                        id,
                        existing: existing.workflow,
                        requested: registered.name().to_owned(),
                    });
                }
                self.attach(&id, existing, version).await?;
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
    /// ```no_run
    /// # use sagaflow::prelude::*;
    /// # async fn demo(rt: Runtime) -> Result<(), sagaflow::Error> {
    /// let mut after = None;
    /// loop {
    ///     let page = rt.list(after.as_deref(), 100).await?;
    ///     for status in page.instances { println!("{:?}", status?.phase); }
    ///     match page.next { Some(next) => after = Some(next), None => break }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn list(&self, after: Option<&str>, limit: usize) -> Result<ListPage, Error> {
        let after = after.map(record::key);
        let page = self
            .inner
            .store()
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

    /// Stops the workers: each finishes the attempt it runs, writes it,
    /// releases its lease (with a due hint, so another runtime can take the
    /// instance over at once) and stops; waiting handles return
    /// [`Error::Shutdown`]. Instances stay in the store, and any worker
    /// runtime on it resumes them.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        self.inner.drivers.all_stopped().await;
    }

    /// This runtime's id: the owner written in the leases it holds. Unique
    /// among all runtimes, so an operator can tell which process runs what.
    pub fn runtime_id(&self) -> &str {
        &self.inner.owner
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let workflows = self.inner.registry.names();
        f.debug_struct("Runtime")
            .field("store", &self.inner.store().name())
            .field("workflows", &workflows)
            .field("workers", &self.inner.workers)
            .finish_non_exhaustive()
    }
}

/// A writer that only counts the bytes written to it.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(bytes.len());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A new instance's record, in its first state, with its `Created` event.
fn new_record(
    workflow: &str,
    machine: &StateMachine,
    id: &str,
    state_name: &'static str,
    state: RawJson,
    now: u64,
) -> InstanceRecord {
    // Room for the events of a run through every state once (two each, and
    // the first and last), so the history is not regrown step by step.
    let events = (2 * machine.states.len() + 2).min(record::HISTORY_LIMIT);
    let mut instance = InstanceRecord {
        workflow: workflow.to_owned(),
        id: id.to_owned(),
        fingerprint: record::format_fingerprint(machine.fingerprint()),
        version: machine.version,
        history: VecDeque::with_capacity(events),
        state_name: state_name.to_owned(),
        state,
        attempt: 1,
        committed_at: now,
        created_at: now,
        updated_at: now,
        ..InstanceRecord::empty()
    };
    instance.push_event(HistoryEvent {
        state: Some(Cow::Borrowed(state_name)),
        ..HistoryEvent::new(now, EventKind::Created)
    });
    instance
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
