//! `Runtime::builder()`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use tokio::sync::Notify;

use super::backlog::Backlog;
use super::erased::{Erased, ErasedMigrate, ErasedMigration, ErasedWorkflow};
use super::state::{CountedTask, Inner, Layer, Running, Runtime};
use super::versions::Registry;
use super::{dispatch, poller};
use crate::FastHashMap;
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, StoreError};
use crate::machine::{MACHINES_PREFIX, MachineDescription, machine_key};
use crate::migrate::Migrate;
use crate::store::{Expect, GroupCommit, Store};
use crate::workflow::Workflow;

/// Configures a [`Runtime`]; calls may come in any order.
///
/// Defaults: 4,096 workers, a 30 s lease TTL (renewed every 10 s while a step
/// runs), a 1 s poll interval, a recovery scan every lease TTL, a 1 MiB
/// input limit, and the [`SystemClock`].
///
/// ```
/// # use sagaflow::prelude::*;
/// # #[workflow]
/// # async fn place_order(order: String) -> Result<String, WorkflowError> { Ok(order) }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), sagaflow::Error> {
/// let rt = Runtime::builder()
///     .store(MemoryStore::new())
///     .register(place_order)
///     .workers(16)
///     .build()
///     .await?;
/// # rt.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct RuntimeBuilder {
    store: Option<Arc<dyn Store>>,
    workflows: Vec<Arc<dyn ErasedWorkflow>>,
    migrations: Vec<Arc<dyn ErasedMigration>>,
    workers: usize,
    max_input_bytes: usize,
    poll_interval: Duration,
    lease_ttl: Duration,
    recovery_interval: Option<Duration>,
    clock: Option<Arc<dyn Clock>>,
    group_commit: bool,
    schedule_interval: Duration,
    layers: Vec<Box<dyn Layer>>,
}

impl Runtime {
    /// A builder: give it a store and the workflows to run.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::new()
    }
}

impl RuntimeBuilder {
    /// Instances driven at once by default: 4,096. A worker is a tokio
    /// task, not a thread, and one waiting for its store costs only memory;
    /// and the instances in flight bound how many writes a store can group
    /// into one commit (the embedded store's fsync), so a few workers would
    /// cap durable throughput. Lower it to bound what a process takes on.
    pub const DEFAULT_WORKERS: usize = 4_096;
    /// How long a claim on an instance lasts without renewal, by default.
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);
    /// The default limit of a workflow input's JSON: 1 MiB.
    pub const DEFAULT_MAX_INPUT_BYTES: usize = 1 << 20;
    /// How often the due index is scanned and a waiting handle re-reads the
    /// store, by default.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
    /// How often a worker runtime's scheduler re-reads the schedules, by default.
    pub const DEFAULT_SCHEDULE_INTERVAL: Duration = Duration::from_secs(1);

    pub(super) fn new() -> RuntimeBuilder {
        RuntimeBuilder {
            store: None,
            workflows: Vec::new(),
            migrations: Vec::new(),
            workers: Self::DEFAULT_WORKERS,
            max_input_bytes: Self::DEFAULT_MAX_INPUT_BYTES,
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
            lease_ttl: Self::DEFAULT_LEASE_TTL,
            recovery_interval: None,
            clock: None,
            group_commit: true,
            schedule_interval: Self::DEFAULT_SCHEDULE_INTERVAL,
            layers: Vec::new(),
        }
    }

    /// The layer of type `L` this builder keeps (the queues), made on first use.
    pub(crate) fn layer_mut<L: Layer + Default>(&mut self) -> &mut L {
        let index = match self.layers.iter().position(|layer| {
            let layer: &dyn std::any::Any = &**layer;
            layer.is::<L>()
        }) {
            Some(index) => index,
            None => {
                self.layers.push(Box::new(L::default()));
                self.layers.len() - 1
            }
        };
        let layer: &mut dyn std::any::Any = &mut *self.layers[index];
        layer
            .downcast_mut::<L>()
            .unwrap_or_else(|| unreachable!("the layer at {index} is an `L`"))
    }

    /// The store instances are kept in (required).
    pub fn store(mut self, store: impl Store) -> RuntimeBuilder {
        self.store = Some(Arc::new(store));
        self
    }

    /// A workflow this runtime can start and run. Every workflow whose
    /// instances are in the store must be registered for them to run.
    ///
    /// Several versions of one workflow (`#[workflow(name = "..", version = N)]`,
    /// each kept in its own module) register side by side: an instance runs
    /// on the version of its fingerprint, `start` of a version starts that
    /// version, and child workflows and starts by name use the newest.
    /// Registering one name and version twice, or one machine twice (one
    /// fingerprint), makes [`build`](Self::build) fail.
    pub fn register<W: Workflow>(mut self, workflow: W) -> RuntimeBuilder {
        self.workflows.push(Arc::new(Erased::new(workflow)));
        self
    }

    /// A migration (`#[migrate(from = old, to = new)]`): instances of the
    /// old version move to the new one through it when they are next
    /// claimed, in the claim's write (see [`mod@crate::migrate`]). The version
    /// it migrates to must be registered; the one it migrates from need
    /// not be (if it is, the instances a migration declines finish on it).
    pub fn migrate<M: Migrate>(mut self, migration: M) -> RuntimeBuilder {
        self.migrations.push(Arc::new(ErasedMigrate(migration)));
        self
    }

    /// How many instances this runtime drives at once: each holds a worker
    /// from its claim until its lease is released (it ends, waits for a
    /// retry, or the runtime shuts down). 0 makes a client-only runtime: it
    /// starts, reads and cancels instances and runs none; worker runtimes
    /// (in this process or others) find them through the due index.
    pub fn workers(mut self, workers: usize) -> RuntimeBuilder {
        self.workers = workers;
        self
    }

    /// The largest workflow input accepted, in bytes of its JSON.
    pub fn max_input_bytes(mut self, limit: usize) -> RuntimeBuilder {
        self.max_input_bytes = limit;
        self
    }

    /// How often a worker runtime scans the due index for work written by
    /// other processes (hints this process writes wake it at once, and so
    /// do other processes' hints on a store with change notification, see
    /// [`Store::due_changes`]: then polling is only the fallback for a lost
    /// notification, and a long interval costs little), and how
    /// often a waiting [`Handle`](super::Handle) re-reads the store to see
    /// instances another process advances (this process's own writes wake it
    /// at once). Default 1 s.
    pub fn poll_interval(mut self, interval: Duration) -> RuntimeBuilder {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// How long a claim on an instance lasts without renewal (default 30 s).
    /// A worker renews it every third of this while a step runs, so this is
    /// how long a crashed or partitioned process keeps its instances before
    /// another runtime may take them over (and re-run the step in flight).
    /// At least 3 ms.
    pub fn lease_ttl(mut self, ttl: Duration) -> RuntimeBuilder {
        self.lease_ttl = ttl.max(Duration::from_millis(3));
        self
    }

    /// How often a worker runtime scans every instance for due ones whose
    /// lease expired (a crashed owner's), besides once when it is built.
    /// Defaults to the lease TTL. Each scan reads every record, so on a large
    /// store prefer a longer interval.
    pub fn recovery_interval(mut self, interval: Duration) -> RuntimeBuilder {
        self.recovery_interval = Some(interval.max(Duration::from_millis(1)));
        self
    }

    /// Whether to group concurrent writes into batches ([`GroupCommit`]) on
    /// a store whose [`Store::batches_writes`] says it gains from it
    /// (PostgreSQL, Redis). Default `true`; `false` sends every write on its
    /// own, e.g. to compare the two.
    pub fn group_commit(mut self, enabled: bool) -> RuntimeBuilder {
        self.group_commit = enabled;
        self
    }

    /// How often a worker runtime's scheduler re-reads the schedules
    /// ([`crate::schedule`]) besides when one is due: to see those other
    /// processes created, triggered or unpaused, and whether an instance a
    /// buffered tick waits for has ended. Each pass reads every schedule.
    /// Default 1 s.
    pub fn schedule_interval(mut self, interval: Duration) -> RuntimeBuilder {
        self.schedule_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The clock for record times, leases, due times, backoff and polling
    /// (default [`SystemClock::new()`], which follows tokio's paused time in
    /// tests). See [`crate::clock`].
    pub fn clock(mut self, clock: impl Clock) -> RuntimeBuilder {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Builds the runtime. It writes the description of each registered
    /// state machine to the store under
    /// [`machines/{workflow}/{fingerprint}`](crate::machine::machine_key)
    /// if none is there yet, so operator tools that do not know the workflow
    /// can draw it (a failed write is logged and the build goes on: the
    /// descriptions serve tools, never the runtime). A runtime with workers
    /// starts its poller, which first claims every unfinished instance in the store that is due and
    /// whose lease is free or expired (instances leased by a live runtime
    /// are left to it), then follows the due index.
    pub async fn build(self) -> Result<Runtime, Error> {
        let mut store = self.store.ok_or(Error::NoStore)?;
        if self.group_commit && store.batches_writes() {
            store = Arc::new(GroupCommit::new(store));
        }
        let mut registry = Registry::new(self.workflows, self.migrations)?;
        for workflow in registry.all() {
            for state in workflow.machine().states {
                if let Some(child) = state.child_workflow()
                    && registry.newest(child).is_none()
                {
                    return Err(Error::UnregisteredChild {
                        parent: workflow.name().to_owned(),
                        child: child.to_owned(),
                    });
                }
            }
        }
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock::new()));
        register_machines(&*store, &registry, clock.now_ms()).await;
        registry.remember(stored_machines(&*store).await);
        let runtime = Runtime {
            inner: Arc::new(Inner {
                store,
                registry,
                workers: self.workers,
                permits: Arc::new(Semaphore::new(
                    self.workers.clamp(1, Semaphore::MAX_PERMITS),
                )),
                max_input_bytes: self.max_input_bytes,
                poll_interval: self.poll_interval,
                lease_ttl: self.lease_ttl,
                recovery_interval: self.recovery_interval.unwrap_or(self.lease_ttl),
                clock,
                owner: unique_owner(),
                local: Mutex::new(FastHashMap::default()),
                backlog: Backlog::default(),
                poke: Notify::new(),
                hinted: AtomicBool::new(false),
                shutdown: watch::Sender::new(false),
                drivers: Running::default(),
                layers: self.layers,
            }),
        };
        for layer in &runtime.inner.layers {
            layer.start(&runtime)?;
        }
        if runtime.inner.workers > 0 {
            runtime.inner.drivers.started();
            tokio::spawn(poller::run(runtime.clone()));
            runtime.inner.drivers.started();
            tokio::spawn(dispatch::run(runtime.clone()));
            // The schedules' task, counted like the poller.
            runtime.inner.drivers.started();
            tokio::spawn(crate::schedule::scheduler::run(
                runtime.clone(),
                Arc::clone(&runtime.inner.store),
                Arc::clone(&runtime.inner.clock),
                self.schedule_interval,
                runtime.inner.shutdown.subscribe(),
                CountedTask(runtime.clone()),
            ));
        }
        Ok(runtime)
    }
}

/// Writes each registered machine's description, put-if-absent: a
/// description never changes for a fingerprint, so the first one stays.
async fn register_machines(store: &dyn Store, registry: &Registry, registered_at: u64) {
    for workflow in registry.all() {
        let machine = workflow.machine();
        let key = machine_key(machine.workflow, machine.fingerprint());
        let description = machine.description().to_stored(registered_at);
        match store.put(&key, description, Expect::Absent).await {
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(error) => tracing::warn!(
                workflow = machine.workflow,
                %error,
                "cannot store the state machine's description; tools that do not know the \
                 workflow cannot draw it, and runtimes without its code cannot move its \
                 instances to another version"
            ),
        }
    }
}

/// The machine descriptions in the store (every version any runtime
/// registered), for moving instances of versions whose code is gone. One
/// that cannot be read is logged and left out.
async fn stored_machines(store: &dyn Store) -> Vec<MachineDescription> {
    let mut machines = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = match store.scan(MACHINES_PREFIX, after.as_deref(), 256).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, "cannot read the stored machine descriptions");
                return machines;
            }
        };
        for (key, stored) in page.entries {
            match MachineDescription::from_stored(&stored.value) {
                Ok((machine, _)) => machines.push(machine),
                Err(error) => {
                    tracing::warn!(key, %error, "a stored machine description is left out")
                }
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return machines,
        }
    }
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

impl fmt::Debug for RuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeBuilder")
            .field("store", &self.store.as_ref().map(|store| store.name()))
            .field(
                "workflows",
                &self
                    .workflows
                    .iter()
                    .map(|workflow| workflow.name())
                    .collect::<Vec<_>>(),
            )
            .field(
                "migrations",
                &self
                    .migrations
                    .iter()
                    .map(|migration| migration.name())
                    .collect::<Vec<_>>(),
            )
            .field("workers", &self.workers)
            .field("max_input_bytes", &self.max_input_bytes)
            .field("poll_interval", &self.poll_interval)
            .field("lease_ttl", &self.lease_ttl)
            .field("recovery_interval", &self.recovery_interval)
            .field("clock", &self.clock)
            .field("group_commit", &self.group_commit)
            .field("schedule_interval", &self.schedule_interval)
            .field(
                "layers",
                &self
                    .layers
                    .iter()
                    .map(|layer| layer.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
