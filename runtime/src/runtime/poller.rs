//! The poller of a worker runtime: finds work through the due index and,
//! on a slower cadence, instances whose owner's lease expired. Where the
//! store has change notification ([`Store::due_changes`]), a due hint
//! written by any process wakes it at once; polling stays the fallback.
//!
//! [`Store::due_changes`]: crate::store::Store::due_changes

use std::sync::atomic::Ordering;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::state::{Claim, CountedTask, Runtime, decode_record};
use crate::error::Error;
use crate::record;
use crate::store::Expect;

/// Keys read per page of a scan.
const PAGE: usize = 256;

/// Records the recovery sweep reads per round: its cost per round stays
/// the same however many instances the store holds (a million parked ones
/// take a few dozen rounds to sweep). Instances are found through the due
/// index (a claimed one has a hint at its lease's expiry); the sweep is for
/// hints lost to a failed write, and records of older builds.
const SWEEP_BUDGET: usize = 16_384;

/// Claims of due instances in flight at once: each is a read and a
/// compare-and-swap, which a store with group commit makes durable together.
const CLAIMS_IN_FLIGHT: usize = 64;

/// Polls until the runtime shuts down: scans the due index (what `build`
/// resumes) every poll interval, at the earliest hint, or when this process
/// writes a hint (a poke with no hint written scans nothing), and at once
/// when the store reports a due hint written by any process; and every
/// recovery interval sweeps the next [`SWEEP_BUDGET`] instance records for
/// due ones whose lease is free or expired.
pub(super) async fn run(runtime: Runtime) {
    // Counted like a driver (when spawned), so `shutdown` waits for it.
    let _running = CountedTask(runtime.clone());
    let inner = &runtime.inner;
    let poll_ms = crate::clock::duration_ms(inner.poll_interval);
    let recovery_ms = crate::clock::duration_ms(inner.recovery_interval);
    let mut shutdown = inner.shutdown.subscribe();
    let mut recover_at = 0;
    // The first pass over the records logs what this runtime cannot run.
    let mut first = true;
    let mut sweep: Option<String> = None;
    let mut scan = true;
    let mut next_hint = None;
    let mut due_changes = inner.store().due_changes();
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if inner.clock.now_ms() >= recover_at {
            match runtime.recover(first, &mut sweep, &mut shutdown).await {
                Ok(()) if sweep.is_none() => first = false,
                Ok(()) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot scan the instances for expired leases");
                }
            }
            recover_at = inner.clock.now_ms().saturating_add(recovery_ms);
        }
        if scan {
            // Cleared before the scan, so a hint written during it scans again.
            inner.hinted.store(false, Ordering::SeqCst);
            if let Some(changes) = &mut due_changes {
                changes.borrow_and_update();
            }
            next_hint = match runtime.scan_due(&mut shutdown).await {
                Ok(next_hint) => next_hint,
                Err(error) => {
                    tracing::warn!(%error, "cannot scan the due index");
                    None
                }
            };
        }
        let now = inner.clock.now_ms();
        let wake = next_hint
            .unwrap_or(u64::MAX)
            .min(now.saturating_add(poll_ms))
            .min(recover_at);
        scan = tokio::select! {
            () = inner.clock.sleep_until(wake) => true,
            () = inner.poke.notified() => inner.hinted.load(Ordering::SeqCst),
            changed = notified(&mut due_changes) => {
                if changed.is_err() {
                    // The store dropped its notifier: poll from now on.
                    due_changes = None;
                }
                true
            }
            _ = shutdown.changed() => true,
        };
    }
}

/// Resolves when the store reports a due hint; never without notification.
async fn notified(
    changes: &mut Option<watch::Receiver<u64>>,
) -> Result<(), watch::error::RecvError> {
    match changes {
        Some(changes) => changes.changed().await,
        None => std::future::pending().await,
    }
}

impl Runtime {
    /// Claims what the due index says is due now, oldest first, waiting for
    /// a free worker before each claim; up to [`CLAIMS_IN_FLIGHT`] claims
    /// run at once, each deleting its hint after it. Returns the time of
    /// the earliest hint still in the future.
    async fn scan_due(&self, shutdown: &mut watch::Receiver<bool>) -> Result<Option<u64>, Error> {
        let mut claims = JoinSet::new();
        let scanned = self.scan_due_into(&mut claims, shutdown).await;
        // Wait for the claims in flight: `shutdown` waits for the poller.
        while claims.join_next().await.is_some() {}
        scanned
    }

    async fn scan_due_into(
        &self,
        claims: &mut JoinSet<()>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<u64>, Error> {
        let store = self.inner.store();
        let mut after: Option<String> = None;
        let mut limit = 1;
        loop {
            let page = store
                .scan(record::DUE_PREFIX, after.as_deref(), limit)
                .await?;
            limit = PAGE;
            for (key, _) in page.entries {
                let Some((at, id)) = record::parse_due_key(&key) else {
                    tracing::warn!(key, "not a due-index key; deleted");
                    store.delete(&key, Expect::Any).await?;
                    continue;
                };
                if at > self.inner.clock.now_ms() {
                    return Ok(Some(at));
                }
                // Its driver deletes nothing; the hint goes once the driver is done.
                if self.is_driving(id) {
                    continue;
                }
                let Some(permit) = self.permit(shutdown).await else {
                    return Ok(None);
                };
                while claims.len() >= CLAIMS_IN_FLIGHT {
                    claims.join_next().await;
                }
                let runtime = self.clone();
                let id = id.to_owned();
                claims.spawn(async move {
                    let claimed = match runtime.claim_if_ready(&id, permit).await {
                        Ok(claimed) => claimed,
                        Err(error) => {
                            tracing::warn!(id, %error, "cannot claim a due instance");
                            return;
                        }
                    };
                    match claimed {
                        // Another runtime may be able to run it: leave the hint.
                        Claim::Blocked => {
                            tracing::debug!(id, "due instance left to a runtime that can run it");
                        }
                        // Moved to the lease's expiry: a hint is how the
                        // instance is found if its holder dies.
                        Claim::Leased(expires_at) => {
                            runtime.put_hint(expires_at, &id).await;
                            if let Err(error) =
                                runtime.inner.store().delete(&key, Expect::Any).await
                            {
                                tracing::warn!(key, %error, "cannot delete a due hint");
                            }
                        }
                        Claim::Claimed | Claim::NotReady => {
                            if let Err(error) =
                                runtime.inner.store().delete(&key, Expect::Any).await
                            {
                                tracing::warn!(key, %error, "cannot delete a due hint");
                            }
                        }
                    }
                });
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(None),
            }
        }
    }

    /// Claims the due instances whose lease is free or expired among the
    /// next [`SWEEP_BUDGET`] records after `cursor` (from the first when it
    /// is `None`), leaving `cursor` where the next round goes on (`None`
    /// once the last record was read): instances whose hint was lost.
    /// `loud` logs the instances this runtime cannot run, once per build
    /// rather than every round.
    async fn recover(
        &self,
        loud: bool,
        cursor: &mut Option<String>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let mut read = 0;
        while read < SWEEP_BUDGET {
            let page = self
                .inner
                .store()
                .scan(record::KEY_PREFIX, cursor.as_deref(), PAGE)
                .await?;
            if page.entries.is_empty() {
                *cursor = None;
                return Ok(());
            }
            read += page.entries.len();
            for (key, stored) in page.entries {
                let id = key.strip_prefix(record::KEY_PREFIX).unwrap_or(&key);
                let instance = match decode_record(id, &stored.value) {
                    Ok(instance) => instance,
                    Err(error) => {
                        if loud {
                            tracing::error!(id, %error, "instance left untouched");
                        }
                        continue;
                    }
                };
                let now = self.inner.clock.now_ms();
                if !instance.is_due(now) || instance.lease.is_live(now) || self.is_driving(id) {
                    continue;
                }
                if let Err(error) = self.runnable(&instance) {
                    if loud {
                        tracing::warn!(id, %error, "instance left untouched");
                    }
                    continue;
                }
                let Some(permit) = self.permit(shutdown).await else {
                    return Ok(());
                };
                if self.claim_if_ready(id, permit).await? == Claim::Claimed
                    && instance.lease.owner.is_some()
                {
                    tracing::info!(
                        id,
                        previous = instance.lease.owner.as_deref().unwrap_or(""),
                        "took over an instance whose lease expired"
                    );
                }
            }
            *cursor = page.next;
            if cursor.is_none() {
                return Ok(());
            }
        }
        Ok(())
    }
}
