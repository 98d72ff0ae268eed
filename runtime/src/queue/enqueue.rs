//! [`Runtime::enqueue`] and [`QueueHandle`]: putting an instance in a
//! queue, and waiting for it to start and end.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::layer::Queues;
use super::records::{self, Item, Waiting};
use super::state::QueueState;
use crate::clock::duration_ms;
use crate::error::{Error, StoreError};
use crate::record;
use crate::runtime::{Handle, Outcome, Runtime};
use crate::store::Expect;
use crate::workflow::Workflow;

/// The longest wait between two reads of a [`QueueHandle`] waiting for a
/// start in another process, in poll intervals.
const MAX_POLL_BACKOFF: u64 = 8;

/// Tries at writing an item while other enqueues of the same id race.
const ENQUEUE_TRIES: usize = 8;

/// Which queue an item goes to, with its priority and partition key: the
/// first argument of [`Runtime::enqueue`]. A queue's name alone (`"orders"`)
/// converts into one with the defaults.
///
/// ```
/// use sagaflow::Enqueue;
///
/// let to = Enqueue::new("orders").priority(1).partition("customer-7");
/// assert_eq!(to.queue(), "orders");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enqueue {
    queue: String,
    priority: u32,
    partition: Option<String>,
}

impl Enqueue {
    /// Into queue `queue`, at priority 0, without a partition key.
    pub fn new(queue: impl Into<String>) -> Enqueue {
        Enqueue {
            queue: queue.into(),
            priority: 0,
            partition: None,
        }
    }

    /// The item's priority: items start in ascending priority, and in the
    /// order they were enqueued within one priority. 0, the default, goes
    /// first (as in DBOS: an item given no priority is not held back).
    pub fn priority(mut self, priority: u32) -> Enqueue {
        self.priority = priority;
        self
    }

    /// The item's partition key (a customer id, say), required by a queue
    /// with [`partition_concurrency`](crate::Queue::partition_concurrency)
    /// and refused by any other.
    pub fn partition(mut self, key: impl Into<String>) -> Enqueue {
        self.partition = Some(key.into());
        self
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }
}

impl From<&str> for Enqueue {
    fn from(queue: &str) -> Enqueue {
        Enqueue::new(queue)
    }
}

impl From<String> for Enqueue {
    fn from(queue: String) -> Enqueue {
        Enqueue::new(queue)
    }
}

impl From<&String> for Enqueue {
    fn from(queue: &String) -> Enqueue {
        Enqueue::new(queue.as_str())
    }
}

impl Runtime {
    /// Puts instance `id` of `workflow` with `input` in a queue, to start
    /// when the queue's limits allow (see [`Queue`](crate::Queue)), on
    /// whichever worker runtime's dispatcher gets to it first; returns a
    /// handle to wait for it.
    ///
    /// Idempotent per id, like [`start`](Self::start): if instance `id`
    /// exists, or waits in this queue, this attaches to it and `input` is
    /// ignored. If it exists and runs another workflow,
    /// [`Error::IdInUse`]. A queue the builder did not define is
    /// [`Error::UnknownQueue`]; a partition key missing on a partitioned
    /// queue (or given to another) is [`Error::PartitionKey`]; an
    /// unregistered workflow, [`Error::UnknownWorkflow`]; an input larger
    /// than `max_input_bytes`, [`Error::InputTooLarge`]. On any error,
    /// nothing is enqueued.
    ///
    /// ```
    /// # use sagaflow::prelude::*;
    /// # use sagaflow::{Enqueue, Queue};
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # pub struct Order { id: String, customer: String }
    /// # #[step(readonly)]
    /// # async fn ship(order: &Order) -> Result<String, StepError> { Ok(order.id.clone()) }
    /// # #[workflow]
    /// # async fn place_order(order: Order) -> Result<String, WorkflowError> {
    /// #     let shipped = ship(&order).await?;
    /// #     Ok(shipped)
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), sagaflow::Error> {
    /// let rt = Runtime::builder()
    ///     .store(MemoryStore::new())
    ///     .register(place_order)
    ///     .queue(Queue::new("orders").partition_concurrency(1))
    ///     .build()
    ///     .await?;
    /// let order = Order { id: "order-1".into(), customer: "c-7".into() };
    /// let to = Enqueue::new("orders").partition(order.customer.clone());
    /// let handle = rt.enqueue(to, place_order, "order-1", order).await?;
    /// assert_eq!(handle.outcome().await?, Outcome::Completed("order-1".to_owned()));
    /// # rt.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn enqueue<W: Workflow>(
        &self,
        to: impl Into<Enqueue>,
        workflow: W,
        id: impl Into<String>,
        input: W::Input,
    ) -> Result<QueueHandle<W::Output>, Error> {
        let to = to.into();
        let id = id.into();
        let state = self
            .layer::<Queues>()
            .and_then(|queues| queues.get(&to.queue))
            .ok_or_else(|| Error::UnknownQueue(to.queue.clone()))?;
        let partitioned = state.queue.partition_limit().is_some();
        if partitioned != to.partition.is_some() {
            return Err(Error::PartitionKey {
                queue: to.queue,
                partitioned,
            });
        }
        self.check_registered(&workflow)?;
        let input = serde_json::value::to_raw_value(&input).map_err(|error| Error::Codec {
            what: "the workflow input".to_owned(),
            reason: error.to_string(),
        })?;
        if input.get().len() > self.input_limit() {
            return Err(Error::InputTooLarge {
                size: input.get().len(),
                limit: self.input_limit(),
            });
        }
        let handle = QueueHandle {
            runtime: self.clone(),
            state: Arc::clone(state),
            id: id.clone(),
            output: PhantomData,
        };
        if self.existing(W::NAME, &id).await? {
            return Ok(handle);
        }
        let now = self.shared_clock().now_ms();
        let item_key = state.keys.item(to.priority, now, state.next_seq(), &id);
        let item = Item {
            id: id.clone(),
            workflow: W::NAME.to_owned(),
            version: workflow.state_machine().version,
            partition: to.partition,
            enqueued_at: now,
            claim: None,
            input,
        };
        if self.reserve_id(state, &id, &item_key).await? {
            state
                .store
                .put(&item_key, records::encode(&item)?, Expect::Absent)
                .await?;
            state.wake.notify_one();
            tracing::debug!(queue = state.queue.name(), id, "enqueued");
        }
        Ok(handle)
    }

    /// Whether instance `id` exists (and runs `workflow`: else
    /// [`Error::IdInUse`]).
    async fn existing(&self, workflow: &str, id: &str) -> Result<bool, Error> {
        let store = self.shared_store();
        if store.get(&record::key(id)).await?.is_none() {
            return Ok(false);
        }
        match self.status(id).await? {
            Some(status) if status.workflow != workflow => Err(Error::IdInUse {
                id: id.to_owned(),
                existing: status.workflow,
                requested: workflow.to_owned(),
            }),
            Some(_) => Ok(true),
            None => Ok(false),
        }
    }

    /// Writes `ids/{id}` naming `item_key`: `true` if the item is to be
    /// written, `false` if an earlier enqueue of `id` waits (or started).
    /// An entry whose item and instance are both gone (its enqueue died
    /// between its two writes) is taken over.
    async fn reserve_id(
        &self,
        state: &QueueState,
        id: &str,
        item_key: &str,
    ) -> Result<bool, Error> {
        let store = &*state.store;
        let key = state.keys.id(id);
        let entry = records::encode(&Waiting {
            item: item_key.to_owned(),
        })?;
        for _ in 0..ENQUEUE_TRIES {
            match store.put(&key, entry.clone(), Expect::Absent).await {
                Ok(_) => return Ok(true),
                Err(StoreError::Conflict) => {}
                Err(error) => return Err(error.into()),
            }
            let Some(stored) = store.get(&key).await? else {
                // Started and cleared just now: the instance is what waits.
                if store.get(&record::key(id)).await?.is_some() {
                    return Ok(false);
                }
                continue;
            };
            let waiting = records::decode::<Waiting>(&key, &stored.value)?;
            if store.get(&waiting.item).await?.is_some()
                || store.get(&record::key(id)).await?.is_some()
            {
                return Ok(false);
            }
            match store
                .put(&key, entry.clone(), Expect::Version(stored.version))
                .await
            {
                Ok(_) => return Ok(true),
                Err(StoreError::Conflict) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Err(StoreError::Conflict.into())
    }
}

/// A handle on an instance put in a queue, returned by
/// [`Runtime::enqueue`]: its instance exists once a dispatcher started it,
/// so this waits for the start before it can wait for the end. Cheap to
/// clone.
pub struct QueueHandle<T> {
    runtime: Runtime,
    state: Arc<QueueState>,
    id: String,
    output: PhantomData<fn() -> T>,
}

impl<T> QueueHandle<T> {
    /// The instance id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        self.state.queue.name()
    }

    /// Whether the instance has started (and so left the queue).
    pub async fn is_started(&self) -> Result<bool, Error> {
        Ok(self
            .state
            .store
            .get(&record::key(&self.id))
            .await?
            .is_some())
    }

    /// Waits until the instance has started, and returns its [`Handle`].
    ///
    /// Wakes as soon as a dispatcher of this process starts it; a start by
    /// another process is seen by reading the store, after one poll
    /// interval and then at intervals doubling up to eight. If the item
    /// left the queue without starting, [`Error::NotFound`].
    pub async fn started(&self) -> Result<Handle<T>, Error> {
        let store = &*self.state.store;
        let clock = self.runtime.shared_clock();
        let poll = duration_ms(self.runtime.shared_poll_interval());
        let mut shutdown = self.runtime.shutdown_signal();
        let waiter = self.state.waiter(&self.id);
        let result = async {
            let mut backoff = 1;
            let mut first = true;
            loop {
                let started = waiter.notified();
                let mut started = std::pin::pin!(started);
                started.as_mut().enable();
                if store.get(&record::key(&self.id)).await?.is_some() {
                    return Ok(self.runtime.handle_of(self.id.clone()));
                }
                // The item goes only after its instance was written. (An
                // item just enqueued is there: the first look skips this.)
                if !std::mem::take(&mut first)
                    && store.get(&self.state.keys.id(&self.id)).await?.is_none()
                {
                    if store.get(&record::key(&self.id)).await?.is_some() {
                        return Ok(self.runtime.handle_of(self.id.clone()));
                    }
                    return Err(Error::NotFound(self.id.clone()));
                }
                if *shutdown.borrow_and_update() {
                    return Err(Error::Shutdown);
                }
                let poll_at = clock
                    .now_ms()
                    .saturating_add(poll.saturating_mul(backoff));
                tokio::select! {
                    // Started by this process: its record is written.
                    () = started => return Ok(self.runtime.handle_of(self.id.clone())),
                    () = clock.sleep_until(poll_at) => backoff = (backoff * 2).min(MAX_POLL_BACKOFF),
                    _ = shutdown.changed() => {}
                }
            }
        }
        .await;
        self.state.forget_waiter(&self.id, waiter);
        result
    }
}

impl<T: DeserializeOwned> QueueHandle<T> {
    /// Waits until the instance has started and then ended, and returns
    /// how it ended (see [`Handle::outcome`]).
    pub async fn outcome(&self) -> Result<Outcome<T>, Error> {
        self.started().await?.outcome().await
    }
}

impl<T> Clone for QueueHandle<T> {
    fn clone(&self) -> QueueHandle<T> {
        QueueHandle {
            runtime: self.runtime.clone(),
            state: Arc::clone(&self.state),
            id: self.id.clone(),
            output: PhantomData,
        }
    }
}

impl<T> fmt::Debug for QueueHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueHandle")
            .field("queue", &self.state.queue.name())
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
