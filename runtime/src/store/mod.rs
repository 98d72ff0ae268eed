//! The key-value contract every backend implements, and the backends.
//!
//! The runtime needs only single-key compare-and-swap and an ordered prefix
//! scan; never a multi-key transaction. A backend is usable as
//! `Arc<dyn Store>`.
//!
//! Two optional methods let a backend offer more, with defaults that keep
//! every other store working:
//! - **change notification** ([`Store::due_changes`]): wakes worker
//!   runtimes when a key under [`WAKE_PREFIX`] (the due index) is written,
//!   by this process or another one, so new work starts within
//!   milliseconds instead of at the next poll. PostgreSQL uses
//!   `LISTEN`/`NOTIFY`, Redis pub/sub, etcd a watch, the in-process stores
//!   a channel. Polling stays the fallback: a lost notification costs
//!   latency, never work;
//! - **batched writes** ([`Store::put_batch`]): many independent
//!   compare-and-swaps in one round trip, each with its own result. When a
//!   store says it batches ([`Store::batches_writes`]), the runtime sends
//!   its writes through [`GroupCommit`], so concurrent transitions of many
//!   workers share round trips and commits.

/// The attribute a [`Store`] implementation is written with
/// (`#[sagaflow::store::async_trait]`), so an implementer needs no
/// dependency of its own for it.
pub use async_trait::async_trait;

pub mod conformance;
mod contract;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "etcd")]
pub mod etcd;
mod group;
#[cfg(any(feature = "postgres", feature = "redis", feature = "etcd"))]
mod listening;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

/// The smallest byte string greater than every one starting with `prefix`,
/// or `None` (an empty prefix, or only `0xFF` bytes) when there is none.
#[cfg_attr(not(any(feature = "redis", feature = "etcd")), allow(dead_code))]
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < u8::MAX {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

pub use contract::{DueSignal, Expect, ScanPage, Store, Versioned, WAKE_PREFIX, Write};
pub use group::GroupCommit;
