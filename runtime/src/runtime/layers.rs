//! What the layers built on the runtime (schedules, `crate::schedule`;
//! queues, `crate::queue`) reach beyond its public API: the layer they keep
//! in it, the store, the clock and the settings they share with it, tasks
//! that `shutdown` waits for, a start that runs the new instance on this
//! runtime's workers, whether it registers a workflow, and the
//! [`Launcher`] the scheduler drives. Methods only: the runtime itself
//! never calls the layers but to start them.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::handle::Handle;
use super::state::{Claim, CountedTask, Layer, Runtime};
use crate::clock::Clock;
use crate::error::Error;
use crate::record::Phase;
use crate::schedule::scheduler::Launcher;
use crate::store::Store;
use crate::workflow::Workflow;

impl Runtime {
    /// Whether `input` would start `workflow` (at `version`, or its newest):
    /// `None` if this runtime does not register it, else why not.
    pub(crate) fn check_input(
        &self,
        workflow: &str,
        version: Option<u32>,
        input: &serde_json::Value,
    ) -> Option<Result<(), String>> {
        let registered = self.layer_workflow(workflow, version)?;
        let size = serde_json::to_vec(input).map_or(0, |bytes| bytes.len());
        if size > self.inner.max_input_bytes {
            return Some(Err(format!(
                "the input is {size} bytes, more than the limit of {} bytes",
                self.inner.max_input_bytes
            )));
        }
        Some(registered.begin(input.clone()).map(drop))
    }

    fn layer_workflow(
        &self,
        workflow: &str,
        version: Option<u32>,
    ) -> Option<&Arc<dyn super::erased::ErasedWorkflow>> {
        let registry = &self.inner.registry;
        match version {
            None => registry.newest(workflow),
            Some(version) => registry
                .versions(workflow)
                .iter()
                .find(|registered| registered.version() == version),
        }
    }
}

impl Launcher for Runtime {
    fn registers(&self, workflow: &str, version: Option<u32>) -> bool {
        self.layer_workflow(workflow, version).is_some()
    }

    async fn start(
        &self,
        workflow: &str,
        version: Option<u32>,
        id: &str,
        input: &serde_json::Value,
    ) -> Result<(), Error> {
        self.start_by_name(workflow, version, id, input.clone())
            .await
            .map(drop)
    }

    async fn phase(&self, id: &str) -> Result<Option<Phase>, Error> {
        Ok(self.status(id).await?.map(|status| status.phase))
    }

    async fn cancel(&self, id: &str) -> Result<(), Error> {
        Runtime::cancel(self, id).await
    }
}

impl Runtime {
    /// The layer of type `L` kept in this runtime, if its builder made one.
    pub(crate) fn layer<L: Layer>(&self) -> Option<&L> {
        self.inner.layers.iter().find_map(|layer| {
            let layer: &dyn Any = &**layer;
            layer.downcast_ref::<L>()
        })
    }

    /// The store, as the runtime writes to it (through its group commit
    /// where the store batches).
    pub(crate) fn shared_store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.inner.store)
    }

    /// The runtime's clock.
    pub(crate) fn shared_clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.clock)
    }

    /// How long a claim lasts without renewal.
    pub(crate) fn shared_lease_ttl(&self) -> Duration {
        self.inner.lease_ttl
    }

    /// How often the runtime polls for work written by other processes.
    pub(crate) fn shared_poll_interval(&self) -> Duration {
        self.inner.poll_interval
    }

    /// How many instances this runtime drives at once; 0: client only.
    pub(crate) fn worker_count(&self) -> usize {
        self.inner.workers
    }

    /// The largest workflow input accepted, in bytes of its JSON.
    pub(crate) fn input_limit(&self) -> usize {
        self.inner.max_input_bytes
    }

    /// Becomes `true` when the runtime shuts down.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Whether a worker of this process drives instance `id` now (it then
    /// tells its handles how the instance ends, without a read).
    pub(crate) fn drives(&self, id: &str) -> bool {
        self.is_driving(id)
    }

    /// `Err(UnknownWorkflow)` unless `workflow` (its name and machine) is
    /// registered here.
    pub(crate) fn check_registered<W: Workflow>(&self, workflow: &W) -> Result<(), Error> {
        self.registered(workflow).map(drop)
    }

    /// A handle on instance `id`, whose output is a `T`.
    pub(crate) fn handle_of<T>(&self, id: String) -> Handle<T> {
        Handle::new(self.clone(), id)
    }

    /// Runs `task` on tokio, counted with the drivers, so
    /// [`shutdown`](Runtime::shutdown) waits for it to stop (it must stop
    /// soon after [`shutdown_signal`](Self::shutdown_signal) turns).
    pub(crate) fn spawn_counted(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.inner.drivers.started();
        let counted = CountedTask(self.clone());
        tokio::spawn(async move {
            let _counted = counted;
            task.await;
        });
    }

    /// [`start_by_name`](Runtime::start_by_name), then a claim of the new
    /// record for a free worker of this runtime at once, so the instance
    /// runs here rather than on whichever runtime's poller comes first (a
    /// queue's per-process limit counts the instances its process
    /// started). Another runtime may still win the claim; then it runs
    /// there. A failed claim is only logged: the instance is started, and
    /// the due index finds it.
    pub(crate) async fn start_here(
        &self,
        workflow: &str,
        version: u32,
        id: String,
        input: serde_json::Value,
    ) -> Result<(), Error> {
        self.start_by_name(workflow, Some(version), id.clone(), input)
            .await?;
        if let Some(permit) = self.free_permit() {
            match self.claim_if_ready(&id, permit).await {
                Ok(Claim::Claimed | Claim::NotReady | Claim::Leased(_)) => {}
                Ok(Claim::Blocked) => {
                    tracing::debug!(id, "a queued instance is left to a runtime that can run it");
                }
                Err(error) => {
                    tracing::debug!(id, %error, "cannot claim a queued instance here; the due index finds it");
                }
            }
        }
        Ok(())
    }
}
