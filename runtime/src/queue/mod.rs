//! Queues: named queues a client enqueues instances into
//! ([`Runtime::enqueue`](crate::Runtime::enqueue)), started by the worker
//! runtimes within the queue's limits, across every process that shares
//! the store.
//!
//! A [`Queue`] is defined on the runtime builder, the same in every
//! process, with any of: a limit on the instances running at once
//! across all processes ([`Queue::concurrency`]), in one process
//! ([`Queue::per_process`]), or per partition key
//! ([`Queue::partition_concurrency`]: one running order per customer), and
//! a rate limit ([`Queue::rate_limit`]). Items start by priority, then in
//! the order enqueued ([`Enqueue::priority`]); an id is enqueued once
//! (enqueueing it again attaches to the first).
//!
//! The queues are a layer on the runtime's public API and the [`Store`]
//! contract: items, slots and the rate limit's window are keys under
//! `queues/{queue}/`, changed by compare-and-swap only; slots are leases
//! that the holding process renews while its instance runs and releases
//! when it ends, so a killed process's slots come back once their leases
//! expire (and not before its instances, resumed elsewhere, end). The
//! guide's chapter `docs/queues.md` says how, and what each choice costs.
//!
//! [`Store`]: crate::store::Store

mod definition;
mod dispatcher;
mod enqueue;
mod holder;
mod keys;
mod layer;
mod records;
mod slots;
mod state;

pub use definition::{Queue, RateLimit};
pub use enqueue::{Enqueue, QueueHandle};
