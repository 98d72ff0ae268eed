//! `Runtime::builder()`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

use super::erased::{Erased, ErasedWorkflow};
use super::{Clock, Inner, Runtime};
use crate::error::Error;
use crate::store::Store;
use crate::workflow::Workflow;

/// Configures a [`Runtime`]; calls may come in any order.
///
/// ```ignore
/// let rt = Runtime::builder()
///     .store(MemoryStore::new())
///     .register(place_order)
///     .workers(16)
///     .build()
///     .await?;
/// ```
pub struct RuntimeBuilder {
    store: Option<Arc<dyn Store>>,
    workflows: Vec<Arc<dyn ErasedWorkflow>>,
    workers: usize,
    max_input_bytes: usize,
    poll_interval: Duration,
}

impl RuntimeBuilder {
    /// Step attempts run at once by default.
    pub const DEFAULT_WORKERS: usize = 64;
    /// The default limit of a workflow input's JSON: 1 MiB.
    pub const DEFAULT_MAX_INPUT_BYTES: usize = 1 << 20;
    /// How often a waiting handle re-reads the store by default.
    pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

    pub(super) fn new() -> RuntimeBuilder {
        RuntimeBuilder {
            store: None,
            workflows: Vec::new(),
            workers: Self::DEFAULT_WORKERS,
            max_input_bytes: Self::DEFAULT_MAX_INPUT_BYTES,
            poll_interval: Self::DEFAULT_POLL_INTERVAL,
        }
    }

    /// The store instances are kept in (required).
    pub fn store(mut self, store: impl Store) -> RuntimeBuilder {
        self.store = Some(Arc::new(store));
        self
    }

    /// A workflow this runtime can start and run. Every workflow whose
    /// instances are in the store must be registered for them to run.
    pub fn register<W: Workflow>(mut self, workflow: W) -> RuntimeBuilder {
        self.workflows.push(Arc::new(Erased(workflow)));
        self
    }

    /// How many step (or compensation) attempts run at once. 0 makes a
    /// client-only runtime: it starts instances and reads them, another
    /// process runs them.
    pub fn workers(mut self, workers: usize) -> RuntimeBuilder {
        self.workers = workers;
        self
    }

    /// The largest workflow input accepted, in bytes of its JSON.
    pub fn max_input_bytes(mut self, limit: usize) -> RuntimeBuilder {
        self.max_input_bytes = limit;
        self
    }

    /// How often a waiting [`Handle`](super::Handle) re-reads the store, to
    /// see instances another process advances (this process's own writes
    /// wake it at once).
    pub fn poll_interval(mut self, interval: Duration) -> RuntimeBuilder {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Builds the runtime and, if it has workers, resumes every unfinished
    /// instance found in the store.
    pub async fn build(self) -> Result<Runtime, Error> {
        let store = self.store.ok_or(Error::NoStore)?;
        let mut workflows: HashMap<&'static str, Arc<dyn ErasedWorkflow>> = HashMap::new();
        for workflow in self.workflows {
            let name = workflow.name();
            if workflows.insert(name, workflow).is_some() {
                return Err(Error::DuplicateWorkflow(name.to_owned()));
            }
        }
        let clock = Clock::new();
        let runtime = Runtime {
            inner: Arc::new(Inner {
                store,
                workflows,
                workers: self.workers,
                permits: Arc::new(Semaphore::new(
                    self.workers.clamp(1, Semaphore::MAX_PERMITS),
                )),
                max_input_bytes: self.max_input_bytes,
                poll_interval: self.poll_interval,
                clock,
                owner: format!("{}-{:x}", std::process::id(), clock.base_ms),
                local: Mutex::new(HashMap::new()),
                shutdown: watch::Sender::new(false),
                drivers: watch::Sender::new(0),
            }),
        };
        if runtime.inner.workers > 0 {
            runtime.resume_unfinished().await?;
        }
        Ok(runtime)
    }
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
            .field("workers", &self.workers)
            .field("max_input_bytes", &self.max_input_bytes)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}
