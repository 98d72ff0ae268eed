//! The queues as a layer of the runtime: defined on its builder, kept in
//! it, their dispatchers started with it.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use super::definition::Queue;
use super::dispatcher;
use super::state::QueueState;
use crate::FastHashMap;
use crate::error::Error;
use crate::runtime::{Layer, Runtime, RuntimeBuilder};

/// The queues a runtime was built with.
#[derive(Default)]
pub(crate) struct Queues {
    defined: Vec<Queue>,
    /// Each queue by name, once the runtime is built.
    built: OnceLock<FastHashMap<String, Arc<QueueState>>>,
}

impl Queues {
    /// Queue `name`, if the runtime was built with it.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<QueueState>> {
        self.built.get().and_then(|built| built.get(name))
    }
}

impl Layer for Queues {
    fn name(&self) -> &'static str {
        "queues"
    }

    fn start(&self, runtime: &Runtime) -> Result<(), Error> {
        let mut names = HashSet::new();
        for queue in &self.defined {
            if queue.name().is_empty() || !names.insert(queue.name()) {
                return Err(Error::DuplicateQueue(queue.name().to_owned()));
            }
        }
        let store = runtime.shared_store();
        let built: FastHashMap<String, Arc<QueueState>> = self
            .defined
            .iter()
            .map(|queue| {
                let state =
                    QueueState::new(queue.clone(), Arc::clone(&store), runtime.worker_count());
                (queue.name().to_owned(), Arc::new(state))
            })
            .collect();
        if runtime.worker_count() > 0 {
            for state in built.values() {
                dispatcher::spawn(runtime, Arc::clone(state));
            }
        }
        // A layer is started once, by the `build` that made its runtime.
        let _ = self.built.set(built);
        Ok(())
    }
}

impl RuntimeBuilder {
    /// A queue this runtime can enqueue into ([`Runtime::enqueue`]) and,
    /// with workers, runs the instances of: its dispatcher starts them
    /// within the queue's limits. Define every queue the same way in
    /// every process that shares the store (the limits are enforced
    /// through the store, by each process as it defines them). Two queues
    /// of one name make [`build`](Self::build) fail.
    ///
    /// ```
    /// # use sagaflow::prelude::*;
    /// # use sagaflow::Queue;
    /// # #[workflow]
    /// # async fn place_order(order: String) -> Result<String, WorkflowError> { Ok(order) }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sagaflow::Error> {
    /// let rt = Runtime::builder()
    ///     .store(MemoryStore::new())
    ///     .register(place_order)
    ///     .queue(Queue::new("orders").concurrency(10).partition_concurrency(1))
    ///     .build()
    ///     .await?;
    /// # rt.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn queue(mut self, queue: Queue) -> RuntimeBuilder {
        self.layer_mut::<Queues>().defined.push(queue);
        self
    }
}
