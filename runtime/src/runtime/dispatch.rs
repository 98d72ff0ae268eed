//! The backlog's dispatcher: the task of a worker runtime that starts a
//! driver for each instance waiting in the backlog ([`super::backlog`]) as
//! worker slots free up, and on shutdown releases what still waits.

use super::backlog::Waiting;
use super::current::Hints;
use super::state::{CountedTask, Runtime};
use crate::record::{self, InstanceRecord};
use crate::store::Expect;

/// Starts a driver for each backlog entry as worker slots free up, until
/// the runtime shuts down; then releases what still waits, so that another
/// runtime may take it at once.
pub(super) async fn run(runtime: Runtime) {
    // Counted like a driver (when spawned), so `shutdown` waits for it.
    let _running = CountedTask(runtime.clone());
    let inner = &runtime.inner;
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let Some(waiting) = next(&runtime, &mut shutdown).await else {
            break;
        };
        let Some(permit) = runtime.permit(&mut shutdown).await else {
            release(&runtime, waiting).await;
            break;
        };
        let Waiting {
            id,
            local,
            current,
            started,
            hint,
        } = waiting;
        // The hint at the lease's expiry stays the driver's lease hint.
        let hints = Hints {
            poller: false,
            lease: Some(hint),
        };
        runtime.spawn_driver(id, local, current, permit, hints, Some(started));
    }
    // Released side by side: a store with group commit makes them durable
    // together.
    let mut releases = tokio::task::JoinSet::new();
    while let Some(waiting) = inner.backlog.pop() {
        while releases.len() >= RELEASES_IN_FLIGHT {
            releases.join_next().await;
        }
        let runtime = runtime.clone();
        releases.spawn(async move { release(&runtime, waiting).await });
    }
    while releases.join_next().await.is_some() {}
}

/// Releases in flight at once on shutdown.
const RELEASES_IN_FLIGHT: usize = 64;

/// The oldest entry, waiting for one; `None` on shutdown.
async fn next(
    runtime: &Runtime,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<Waiting> {
    let backlog = &runtime.inner.backlog;
    loop {
        if *shutdown.borrow_and_update() {
            return None;
        }
        if let Some(waiting) = backlog.pop() {
            return Some(waiting);
        }
        tokio::select! {
            () = backlog.added.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Gives up an entry on shutdown: its lease released with a due hint now,
/// as a worker releases the instance it drives, and its handles told to
/// read the store.
async fn release(runtime: &Runtime, waiting: Waiting) {
    let Waiting {
        id,
        local,
        current,
        hint,
        ..
    } = waiting;
    let now = runtime.inner.clock.now_ms();
    let (mut record, version): (InstanceRecord, u64) = current.into_parts();
    record.lease.expires_at = Some(now);
    record.updated_at = now;
    let store = runtime.inner.store();
    match record::encode(&record) {
        Ok(bytes) => match store
            .put(&record::key(&id), bytes, Expect::Version(version))
            .await
        {
            Ok(_) => {
                runtime.put_hint(now, &id).await;
                if let Err(error) = store.delete(&hint, Expect::Any).await {
                    tracing::debug!(hint, %error, "cannot delete a backlog hint");
                }
            }
            Err(error) => tracing::debug!(id, %error, "lease not released; it will expire"),
        },
        Err(error) => tracing::warn!(id, %error, "cannot encode the instance record"),
    }
    local.stop_driving();
    runtime.release_local(&id, local);
}
