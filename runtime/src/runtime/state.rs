//! The runtime's shared state: [`Runtime`], the handle every task holds,
//! and what it holds ([`Inner`]: the store, the registry, the worker
//! permits, the per-instance wake-ups, the backlog, the shutdown signal),
//! with the small types and helpers the runtime's files share (`Claim`,
//! `ChildStart`, `codec`, `decode_record`, `new_record`). Its methods live
//! in the files of the tasks that need them; this file imports only leaves.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};

use super::backlog::Backlog;
use super::local::Local;
use super::versions;
use crate::FastHashMap;
use crate::clock::Clock;
use crate::error::Error;
use crate::machine::StateMachine;
use crate::record::{self, EventKind, HistoryEvent, InstanceRecord, RawJson};
use crate::store::Store;

/// Runs workflows: starts instances, advances them on worker tasks, answers
/// questions about them. Cheap to clone (an `Arc` inside); every clone is
/// the same runtime.
#[derive(Clone)]
pub struct Runtime {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) store: Arc<dyn Store>,
    /// The registered versions and migrations, and what they make of each
    /// instance.
    pub(super) registry: versions::Registry,
    /// How many instances this runtime drives at once; 0: client only.
    pub(super) workers: usize,
    /// One per instance driven; held from its claim to its lease's release.
    pub(super) permits: Arc<Semaphore>,
    pub(super) max_input_bytes: usize,
    pub(super) poll_interval: Duration,
    pub(super) lease_ttl: Duration,
    pub(super) recovery_interval: Duration,
    pub(super) clock: Arc<dyn Clock>,
    /// This runtime's name in leases, unique among all runtimes.
    pub(super) owner: String,
    /// Per-instance wake-ups between the worker and handles of this process.
    pub(super) local: Mutex<FastHashMap<String, Arc<Local>>>,
    /// Instances started while every worker was busy, waiting for one.
    pub(super) backlog: Backlog,
    /// Wakes the poller: a hint was written here.
    pub(super) poke: Notify,
    /// Whether this process wrote a hint (or learnt of due work) since the
    /// poller's last scan of the due index: without one, a poke needs no scan.
    pub(super) hinted: AtomicBool,
    pub(super) shutdown: watch::Sender<bool>,
    /// The running drivers and pollers, so `shutdown` can wait for them.
    pub(super) drivers: Running,
    /// What layers built on the runtime keep in it (the queues).
    pub(super) layers: Vec<Box<dyn Layer>>,
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
pub(super) struct Running {
    count: AtomicUsize,
    none: Notify,
}

impl Inner {
    /// The store, called as itself: through the `Arc` it is kept in, each
    /// call would box a future of its own around the store's.
    pub(super) fn store(&self) -> &dyn Store {
        &*self.store
    }
}

impl Running {
    pub(super) fn started(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn stopped(&self) {
        if self.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.none.notify_waiters();
        }
    }

    /// Waits until none runs.
    pub(super) async fn all_stopped(&self) {
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
pub(super) struct CountedTask(pub(super) Runtime);

impl Drop for CountedTask {
    fn drop(&mut self) {
        self.0.inner.drivers.stopped();
    }
}

/// What [`Runtime::start_child`] found.
pub(super) enum ChildStart {
    /// It created the child's record.
    Started,
    /// The child exists (started by an earlier run of the parent's code).
    Exists(Box<InstanceRecord>),
}

/// A boxed future borrowing the runtime (for the recursion of a cancel
/// through a chain of children).
pub(super) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Why a claim did not run an instance, or that it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Claim {
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

/// A new instance's record, in its first state, with its `Created` event.
pub(super) fn new_record(
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
pub(super) fn decode_record(id: &str, bytes: &[u8]) -> Result<InstanceRecord, Error> {
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

pub(super) fn codec(what: &str, error: &serde_json::Error) -> Error {
    Error::Codec {
        what: what.to_owned(),
        reason: error.to_string(),
    }
}
