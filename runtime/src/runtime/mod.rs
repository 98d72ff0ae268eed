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
mod client;
mod control;
mod current;
mod dispatch;
pub(crate) mod erased;
mod handle;
// What the schedule layer needs of the runtime (crate::schedule).
mod layers;
mod local;
mod poller;
mod state;
mod status;
mod upgrade;
pub(crate) mod versions;
mod worker;

pub use builder::RuntimeBuilder;
pub use handle::{Handle, Outcome};
pub(crate) use state::Layer;
pub use state::Runtime;
pub use status::{AwaitedSignal, ListPage, Status};
pub use upgrade::{
    InstanceUpgrade, UpgradeAction, UpgradeReport, VersionReport, VersionSummary, WorkflowVersions,
};

pub use crate::record::{EventKind, Failure, Heartbeat, HistoryEvent, Lease, Phase};
