//! Holding the slots of a running instance: renewed every third of the
//! lease while it runs, released when it ends. What the dispatcher spawns
//! for every instance it starts, and for every slot it adopts.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::slots::{self, HeldSlot};
use super::state::QueueState;
use crate::clock::duration_ms;
use crate::error::Error;
use crate::runtime::Runtime;

/// The longest wait between two reads of an instance that no worker of
/// this process drives, in poll intervals (as a waiting `Handle` does).
const MAX_POLL_BACKOFF: u64 = 8;

/// The slots (and the per-process permit) held for one instance.
pub(crate) struct Run {
    pub(crate) instance: String,
    pub(crate) slots: Vec<HeldSlot>,
    /// For an instance this process started; none for an adopted slot.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
}

/// How the wait for an instance's end stopped.
enum End {
    /// The instance ended (or is gone): its slots are free.
    Ended,
    /// The runtime shut down: the slots stay held until their leases
    /// expire, and then whoever needs one adopts it while the instance
    /// runs elsewhere.
    Shutdown,
}

/// Holds `run`'s slots until its instance ends, then releases them.
pub(crate) fn spawn(runtime: &Runtime, state: Arc<QueueState>, run: Run) {
    let task_runtime = runtime.clone();
    runtime.spawn_counted(async move { hold(task_runtime, state, run).await });
}

pub(crate) async fn hold(runtime: Runtime, state: Arc<QueueState>, mut run: Run) {
    let clock = runtime.shared_clock();
    let ttl = duration_ms(runtime.shared_lease_ttl());
    let every = (ttl / 3).max(1);
    let ended = wait_end(&runtime, &run.instance);
    let mut ended = std::pin::pin!(ended);
    let mut renew_at = clock.now_ms().saturating_add(every);
    let end = loop {
        if run.slots.is_empty() && run.permit.is_none() {
            // Every slot went to another process, and no permit is held.
            return;
        }
        tokio::select! {
            end = &mut ended => break end,
            () = clock.sleep_until(renew_at) => {
                let expires_at = clock.now_ms().saturating_add(ttl);
                let mut kept = Vec::with_capacity(run.slots.len());
                for mut held in std::mem::take(&mut run.slots) {
                    match slots::renew(&*state.store, &mut held, expires_at).await {
                        Ok(true) => kept.push(held),
                        Ok(false) => tracing::warn!(
                            instance = run.instance,
                            slot = held.key,
                            "a queue slot was taken over after its lease lapsed"
                        ),
                        // Tried again at the next renewal, while the lease lasts.
                        Err(error) => {
                            tracing::warn!(slot = held.key, %error, "cannot renew a queue slot");
                            kept.push(held);
                        }
                    }
                }
                run.slots = kept;
                renew_at = clock.now_ms().saturating_add(every);
            }
        }
    };
    if let End::Ended = end {
        for held in &run.slots {
            // A slot not released is adopted or freed once its lease expires.
            if let Err(error) = slots::release(&*state.store, held).await {
                tracing::warn!(slot = held.key, %error, "cannot release a queue slot");
            }
        }
    }
    let exhausted = run.permit.is_some() && state.permits.available_permits() == 0;
    drop(run.permit);
    // A freed slot, or a permit when none was left, may let an item start.
    let limited =
        state.queue.concurrency_limit().is_some() || state.queue.partition_limit().is_some();
    if limited || exhausted {
        state.wake.notify_one();
    }
}

/// Waits until instance `id` ends: told by this process's worker when one
/// drives it, else read every poll interval.
async fn wait_end(runtime: &Runtime, id: &str) -> End {
    let clock = runtime.shared_clock();
    let poll = duration_ms(runtime.shared_poll_interval());
    let mut shutdown = runtime.shutdown_signal();
    let handle = runtime.handle_of::<serde_json::Value>(id.to_owned());
    let outcome = handle.outcome();
    let mut outcome = std::pin::pin!(outcome);
    let mut told = true;
    // Poll intervals to the next read: doubling up to eight while the
    // instance runs elsewhere (or waits), so that long waits cost little.
    let mut backoff = 1;
    loop {
        if *shutdown.borrow_and_update() {
            return End::Shutdown;
        }
        let poll_at = clock.now_ms().saturating_add(poll.saturating_mul(backoff));
        tokio::select! {
            result = &mut outcome, if told => match result {
                Ok(_) | Err(Error::NotFound(_)) => return End::Ended,
                Err(Error::Shutdown) => return End::Shutdown,
                // Not one this runtime can advance, or the store failed:
                // read its status from here on.
                Err(error) => {
                    tracing::debug!(id, %error, "watching a queued instance by its status");
                    told = false;
                }
            },
            () = clock.sleep_until(poll_at) => {
                // Run elsewhere: its handle here reads the store ever less
                // often, and a slot should come back soon after the end.
                if runtime.drives(id) {
                    backoff = 1;
                } else {
                    match runtime.status(id).await {
                        Ok(None) => return End::Ended,
                        Ok(Some(status)) if status.phase.is_terminal() => return End::Ended,
                        Ok(Some(_)) => {}
                        Err(error) => tracing::debug!(id, %error, "cannot read a queued instance"),
                    }
                    backoff = (backoff * 2).min(MAX_POLL_BACKOFF);
                }
            }
            _ = shutdown.changed() => return End::Shutdown,
        }
    }
}
