//! The scheduler: the task every runtime with workers runs, which fires the
//! schedules whose workflow it registers.
//!
//! A pass scans `schedules/` (one page of 256 records at a time: a pass
//! costs a read of every schedule, so hundreds are cheap, tens of thousands
//! call for a longer [`schedule_interval`](crate::RuntimeBuilder::schedule_interval)),
//! and for each schedule with something due:
//!
//! 1. makes the starts recorded as pending by this scheduler, or by another
//!    one longer ago than a grace of 5 s (it may have died), and records
//!    how they went;
//! 2. decides the due ticks, triggers and backfills ([`super::decide`]),
//!    reading the phases of the instances still running when the overlap
//!    policy needs them;
//! 3. writes the record by compare-and-swap on the version it read (on a
//!    conflict it reads again and starts over: another scheduler decided);
//! 4. makes the cancels and the starts it decided, and records them.
//!
//! A start is [`Runtime::start_by_name`](crate::Runtime::start_by_name)
//! with the id `{schedule}/{tick}`: idempotent per id, so however many
//! schedulers race and whichever dies when, a tick starts at most one
//! instance; and it is recorded as pending before it is made, so a tick
//! decided is started even if its scheduler dies right after.
//!
//! The task sleeps until the earliest fire time it saw, the end of
//! [`schedule_interval`](crate::RuntimeBuilder::schedule_interval) (to see
//! schedules other processes created, triggered or unpaused, and whether a
//! running instance a buffered tick waits for has ended), or a change made
//! through [`Schedules`](super::Schedules) in this process.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use super::decide::{self, Started};
use super::error::ScheduleError;
use super::stored::{SCHEDULES_PREFIX, ScheduleRecord};
use crate::clock::{Clock, duration_ms};
use crate::error::{Error, StoreError};
use crate::record::Phase;
use crate::store::{Expect, Store};

/// What the scheduler needs of a runtime: to start, look at and cancel
/// instances of the workflows it registers.
pub(crate) trait Launcher: Clone + Send + Sync + 'static {
    /// Whether this runtime can start `workflow` (at `version`, or its newest).
    fn registers(&self, workflow: &str, version: Option<u32>) -> bool;

    /// Starts instance `id` by name; an existing one is attached to.
    fn start(
        &self,
        workflow: &str,
        version: Option<u32>,
        id: &str,
        input: &serde_json::Value,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The phase of instance `id`, `None` if there is none.
    fn phase(&self, id: &str) -> impl Future<Output = Result<Option<Phase>, Error>> + Send;

    /// Asks instance `id` to cancel.
    fn cancel(&self, id: &str) -> impl Future<Output = Result<(), Error>> + Send;
}

/// Changed by [`Schedules`](super::Schedules) after each write, so the
/// schedulers of this process look at once instead of at their next
/// interval. One for the process: a change meant for another store only
/// costs the others a pass.
pub(crate) fn local_changes() -> &'static watch::Sender<u64> {
    static CHANGES: OnceLock<watch::Sender<u64>> = OnceLock::new();
    CHANGES.get_or_init(|| watch::Sender::new(0))
}

/// Tells this process's schedulers that a schedule changed.
pub(crate) fn changed_here() {
    local_changes().send_modify(|generation| *generation = generation.wrapping_add(1));
}

/// The scheduler's task: passes until `shutdown`. `task` is held while it
/// runs (the runtime counts it, so `shutdown` waits for it).
pub(crate) async fn run<L: Launcher>(
    launcher: L,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
    task: impl Send + 'static,
) {
    let _task = task;
    let mut changes = local_changes().subscribe();
    let scheduler = Scheduler {
        launcher,
        store,
        clock,
        interval_ms: duration_ms(interval).max(1),
    };
    let mut failures: u32 = 0;
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        changes.borrow_and_update();
        let wake = match scheduler.pass(&shutdown).await {
            Ok(wake) => {
                failures = 0;
                wake.min(
                    scheduler
                        .clock
                        .now_ms()
                        .saturating_add(scheduler.interval_ms),
                )
            }
            Err(error) => {
                // The store: back off from 100 ms, doubling, to the interval.
                failures = failures.saturating_add(1);
                let backoff = 100u64
                    .saturating_mul(1 << failures.min(16))
                    .min(scheduler.interval_ms.max(100));
                tracing::warn!(%error, "the scheduler cannot read the schedules");
                scheduler.clock.now_ms().saturating_add(backoff)
            }
        };
        tokio::select! {
            () = scheduler.clock.sleep_until(wake) => {}
            _ = changes.changed() => {}
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

struct Scheduler<L> {
    launcher: L,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    interval_ms: u64,
}

impl<L: Launcher> Scheduler<L> {
    /// Looks at every schedule; returns when the next one is due. A
    /// schedule that fails is logged and looked at again after the interval.
    async fn pass(&self, shutdown: &watch::Receiver<bool>) -> Result<u64, StoreError> {
        let mut wake = u64::MAX;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .scan(SCHEDULES_PREFIX, after.as_deref(), 256)
                .await?;
            for (key, stored) in page.entries {
                if *shutdown.borrow() {
                    return Ok(wake);
                }
                let record = match ScheduleRecord::decode(&key, &stored.value) {
                    Ok(record) => record,
                    Err(error) => {
                        tracing::warn!(key, %error, "a schedule is left out");
                        continue;
                    }
                };
                let name = record.name.clone();
                match self.tend(&key, record, stored.version).await {
                    Ok(next) => wake = wake.min(next),
                    Err(error) => {
                        tracing::warn!(schedule = name, %error, "cannot fire the schedule now");
                        wake = wake.min(self.clock.now_ms().saturating_add(self.interval_ms));
                    }
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(wake),
            }
        }
    }

    /// Does what schedule `key` has due; returns when it is next due.
    async fn tend(
        &self,
        key: &str,
        record: ScheduleRecord,
        version: u64,
    ) -> Result<u64, ScheduleError> {
        if !self.launcher.registers(&record.workflow, record.version) {
            // Another runtime, with the workflow, fires it.
            return Ok(u64::MAX);
        }
        let ticks = match record.spec.ticks() {
            Ok(ticks) => ticks,
            Err(error) => {
                tracing::warn!(schedule = record.name, %error, "the stored spec cannot tick");
                return Ok(u64::MAX);
            }
        };
        // The starts this scheduler decided and has not seen through.
        let mut mine: HashSet<String> = HashSet::new();
        let (mut record, mut version) = (record, version);
        loop {
            let now = self.clock.now_ms();
            let mut changed = false;
            let to_start: Vec<_> = record
                .starting
                .iter()
                .filter(|pending| {
                    mine.contains(&pending.fire.id)
                        || pending.decided_at.saturating_add(decide::START_GRACE_MS) <= now
                })
                .cloned()
                .collect();
            let mut retry = false;
            if !to_start.is_empty() {
                let mut results = Vec::with_capacity(to_start.len());
                for pending in &to_start {
                    let started = match self
                        .launcher
                        .start(
                            &record.workflow,
                            record.version,
                            &pending.fire.id,
                            &record.input,
                        )
                        .await
                    {
                        Ok(()) => Started::Done,
                        Err(Error::Store(error)) => {
                            tracing::warn!(id = pending.fire.id, %error, "cannot start the scheduled instance yet");
                            retry = true;
                            Started::Retry
                        }
                        Err(error) => {
                            tracing::warn!(id = pending.fire.id, %error, "the scheduled instance cannot start");
                            Started::Refused(error.to_string())
                        }
                    };
                    results.push((pending.fire.id.clone(), started));
                }
                changed |= decide::confirm(&mut record, &results, now);
            }
            let mut plan = decide::Plan::default();
            if decide::has_work(&record, now) {
                let alive = if decide::needs_phases(&record) {
                    Some(self.alive(&record.running).await?)
                } else {
                    None
                };
                plan = decide::plan(&mut record, &ticks, now, alive.as_ref());
                changed |= plan.changed;
            }
            if !changed {
                let wake = decide::next_wake(&record, now);
                return Ok(if retry {
                    wake.min(now.saturating_add(self.interval_ms))
                } else {
                    wake
                });
            }
            match self
                .store
                .put(key, record.encode()?, Expect::Version(version))
                .await
            {
                Ok(written) => {
                    version = written;
                    for id in &plan.cancels {
                        match self.launcher.cancel(id).await {
                            Ok(()) | Err(Error::NotFound(_)) => {}
                            Err(Error::PastPivot { .. }) => tracing::info!(
                                id,
                                "the running instance is past its pivot: the tick waits for its end"
                            ),
                            Err(error) => {
                                tracing::warn!(id, %error, "cannot cancel the running instance yet")
                            }
                        }
                    }
                    mine.extend(plan.starts.iter().map(|start| start.fire.id.clone()));
                    mine.retain(|id| record.starting.iter().any(|start| &start.fire.id == id));
                    if plan.starts.is_empty() && !plan.more && (mine.is_empty() || retry) {
                        let wake = decide::next_wake(&record, now);
                        return Ok(if retry {
                            wake.min(now.saturating_add(self.interval_ms))
                        } else {
                            wake
                        });
                    }
                }
                Err(StoreError::Conflict) => {
                    let Some(stored) = self.store.get(key).await? else {
                        // Deleted meanwhile.
                        return Ok(u64::MAX);
                    };
                    record = ScheduleRecord::decode(key, &stored.value)?;
                    version = stored.version;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The ids of `running` whose instances have not ended. One that cannot
    /// be read for another reason than the store counts as ended.
    async fn alive(&self, running: &[String]) -> Result<HashSet<String>, ScheduleError> {
        let mut alive = HashSet::new();
        for id in running {
            match self.launcher.phase(id).await {
                Ok(Some(phase)) if !phase.is_terminal() => {
                    alive.insert(id.clone());
                }
                Ok(_) => {}
                Err(Error::Store(error)) => return Err(error.into()),
                Err(error) => {
                    tracing::warn!(id, %error, "a scheduled instance cannot be read; taken as ended")
                }
            }
        }
        Ok(alive)
    }
}
