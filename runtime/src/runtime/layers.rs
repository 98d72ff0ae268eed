//! What the layers built on the runtime (schedules) need of it beyond its
//! public API: its store and clock, whether it registers a workflow, and
//! the [`Launcher`] the scheduler drives. A file of its own, so the
//! runtime's other files carry only the builder's option and the spawn.

use std::sync::Arc;

use super::state::Runtime;
use crate::clock::Clock;
use crate::error::Error;
use crate::record::Phase;
use crate::schedule::scheduler::Launcher;
use crate::store::Store;

impl Runtime {
    /// The store this runtime was built with (behind its group commit).
    pub(crate) fn layer_store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.inner.store)
    }

    /// The runtime's clock.
    pub(crate) fn layer_clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.inner.clock)
    }

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
