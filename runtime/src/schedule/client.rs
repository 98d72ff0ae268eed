//! [`Schedules`]: create, change and read schedules, from any process.

use std::sync::Arc;

use serde::Serialize;

use super::decide::{self, BACKFILL_LIMIT};
use super::error::ScheduleError;
use super::policy::{Overlap, ScheduleOptions};
use super::scheduler::changed_here;
use super::spec::{ScheduleSpec, instance_id};
use super::stored::{
    ActionKind, SCHEDULE_FORMAT, SCHEDULES_PREFIX, ScheduleCounts, ScheduleRecord, ScheduleRequest,
    schedule_key,
};
use crate::clock::{Clock, SystemClock};
use crate::error::StoreError;
use crate::runtime::Runtime;
use crate::store::{Expect, Store};
use crate::workflow::Workflow;

/// How many upcoming fire times a [`ScheduleDescription`] lists.
pub const NEXT_FIRE_TIMES: usize = 5;

/// The schedules in a store: create, pause, unpause, trigger, backfill,
/// delete, list, describe. Every change is one compare-and-swap of the
/// schedule's record, so it works from any process, with or without
/// workers; the schedulers of the worker runtimes do the firing.
///
/// ```
/// # use sagaflow::prelude::*;
/// use sagaflow::{ScheduleOptions, ScheduleSpec};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # pub struct Report { to: String }
/// # #[workflow]
/// # async fn nightly_report(report: Report) -> Result<String, WorkflowError> { Ok(report.to) }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = Runtime::builder()
///     .store(MemoryStore::new())
///     .register(nightly_report)
///     .build()
///     .await?;
/// rt.schedules()
///     .create(
///         "nightly",
///         ScheduleSpec::cron("0 2 * * *").in_zone("Europe/Paris"),
///         nightly_report,
///         Report { to: "ops@example.com".into() },
///         ScheduleOptions::new(),
///     )
///     .await?;
/// let nightly = rt.schedules().describe("nightly").await?;
/// println!("next at {:?}", nightly.next_fire_times.first());
/// # rt.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Schedules {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// The runtime whose registry checks inputs at `create`, if any.
    runtime: Option<Runtime>,
}

/// A schedule and when it fires next.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ScheduleDescription {
    /// The stored schedule.
    pub schedule: ScheduleRecord,
    /// Its next fire times (ms since the epoch, jitter included), up to
    /// [`NEXT_FIRE_TIMES`] of them; none while paused. A time in the past
    /// means no scheduler has fired it yet (none runs with the workflow
    /// registered, or it is on its way).
    pub next_fire_times: Vec<u64>,
}

impl Runtime {
    /// The schedules in this runtime's store (see [`Schedules`]). A runtime
    /// with workers also fires them: its scheduler starts the instances of
    /// the schedules whose workflow it registers.
    pub fn schedules(&self) -> Schedules {
        Schedules {
            store: self.shared_store(),
            clock: self.shared_clock(),
            runtime: Some(self.clone()),
        }
    }
}

impl Schedules {
    /// The schedules in `store`, for a tool without a runtime (the
    /// `sagaflow` command): it reads and changes them; worker runtimes on
    /// the store fire them. Times are read from the [`SystemClock`].
    pub fn new(store: Arc<dyn Store>) -> Schedules {
        Schedules {
            store,
            clock: Arc::new(SystemClock::new()),
            runtime: None,
        }
    }

    /// The same, reading time from `clock`.
    pub fn with_clock(mut self, clock: impl Clock) -> Schedules {
        self.clock = Arc::new(clock);
        self
    }

    /// Creates schedule `name`: each tick of `spec` starts `workflow` with
    /// `input`, as instance `{name}/{tick}` (`nightly/2025-01-31T01:00:00Z`;
    /// with milliseconds for an interval that needs them). The first tick
    /// is the first after now. `name` may not be empty, hold `/` or
    /// whitespace, or be longer than 128 bytes.
    ///
    /// Starts the newest registered version of the workflow at each tick
    /// (as [`Runtime::start_by_name`] does) unless
    /// [`ScheduleOptions::version`] pins one. Errors: a bad name or spec
    /// ([`ScheduleError::InvalidName`], [`InvalidCron`](ScheduleError::InvalidCron),
    /// [`UnknownZone`](ScheduleError::UnknownZone), [`InvalidSpec`](ScheduleError::InvalidSpec)),
    /// a name taken ([`ScheduleError::AlreadyExists`]).
    pub async fn create<W: Workflow>(
        &self,
        name: &str,
        spec: ScheduleSpec,
        workflow: W,
        input: W::Input,
        options: ScheduleOptions,
    ) -> Result<ScheduleDescription, ScheduleError> {
        drop(workflow);
        let input = serde_json::to_value(input).map_err(|error| ScheduleError::Input {
            name: name.to_owned(),
            workflow: W::NAME.to_owned(),
            reason: error.to_string(),
        })?;
        self.create_record(name, spec, W::NAME, input, options)
            .await
    }

    /// [`create`](Self::create) by the workflow's name, with the input as
    /// JSON. On a runtime that registers the workflow, an input that does
    /// not decode as its input type is [`ScheduleError::Input`] and nothing
    /// is written; elsewhere it is checked at each start (a refused start
    /// is recorded on the schedule, see [`ScheduleRecord::counts`]).
    pub async fn create_by_name(
        &self,
        name: &str,
        spec: ScheduleSpec,
        workflow: &str,
        input: serde_json::Value,
        options: ScheduleOptions,
    ) -> Result<ScheduleDescription, ScheduleError> {
        if let Some(runtime) = &self.runtime
            && let Some(Err(reason)) = runtime.check_input(workflow, options.version, &input)
        {
            return Err(ScheduleError::Input {
                name: name.to_owned(),
                workflow: workflow.to_owned(),
                reason,
            });
        }
        self.create_record(name, spec, workflow, input, options)
            .await
    }

    async fn create_record(
        &self,
        name: &str,
        spec: ScheduleSpec,
        workflow: &str,
        input: serde_json::Value,
        options: ScheduleOptions,
    ) -> Result<ScheduleDescription, ScheduleError> {
        check_name(name)?;
        let ticks = spec.ticks()?;
        let now = self.clock.now_ms();
        let mut record = ScheduleRecord {
            format: SCHEDULE_FORMAT,
            name: name.to_owned(),
            spec,
            workflow: workflow.to_owned(),
            version: options.version,
            input,
            overlap: options.overlap,
            catch_up: options.catch_up,
            catch_up_window_ms: crate::clock::duration_ms(options.catch_up_window),
            paused: options.paused.is_some(),
            note: options.paused.filter(|note| !note.is_empty()),
            created_at: now,
            updated_at: now,
            next_tick: ticks.next_after(now),
            last_tick: None,
            running: Vec::new(),
            buffered: None,
            starting: Vec::new(),
            requests: Vec::new(),
            counts: ScheduleCounts::default(),
            recent: Default::default(),
        };
        record.push_action(now, ActionKind::Created);
        match self
            .store
            .put(&schedule_key(name), record.encode()?, Expect::Absent)
            .await
        {
            Ok(_) => {}
            Err(StoreError::Conflict) => return Err(ScheduleError::AlreadyExists(name.to_owned())),
            Err(error) => return Err(error.into()),
        }
        changed_here();
        Ok(self.description(record))
    }

    /// Pauses schedule `name`: its ticks start nothing until
    /// [`unpause`](Self::unpause) (they are not caught up then); triggers
    /// and backfills still run. `note` says why, for whoever looks.
    pub async fn pause(&self, name: &str, note: impl Into<String>) -> Result<(), ScheduleError> {
        let note = Some(note.into()).filter(|note| !note.is_empty());
        self.change(name, |record, now| {
            record.paused = true;
            record.note = note.clone();
            record.push_action(now, ActionKind::Paused { note: note.clone() });
            Ok(())
        })
        .await
    }

    /// Unpauses schedule `name`: it ticks again from the first tick after
    /// now (the ticks of the pause are not fired). No change if it is not
    /// paused.
    pub async fn unpause(&self, name: &str, note: impl Into<String>) -> Result<(), ScheduleError> {
        let note = Some(note.into()).filter(|note| !note.is_empty());
        self.change(name, |record, now| {
            if !record.paused {
                return Ok(());
            }
            let ticks = record.spec.ticks()?;
            record.paused = false;
            record.note = note.clone();
            record.next_tick = ticks.next_after(now);
            record.push_action(now, ActionKind::Unpaused { note: note.clone() });
            Ok(())
        })
        .await
    }

    /// Fires schedule `name` now, under its overlap policy, paused or not:
    /// returns the id of the instance it starts (the tick is now, to the
    /// id's precision, so two triggers within that second start one
    /// instance). A worker runtime's scheduler starts it, at once in this
    /// process, within its interval in another.
    pub async fn trigger(&self, name: &str) -> Result<String, ScheduleError> {
        self.trigger_request(name, None).await
    }

    /// [`trigger`](Self::trigger) under `overlap` rather than the
    /// schedule's policy (`Overlap::AllowAll` starts it whatever runs).
    pub async fn trigger_with(
        &self,
        name: &str,
        overlap: Overlap,
    ) -> Result<String, ScheduleError> {
        self.trigger_request(name, Some(overlap)).await
    }

    async fn trigger_request(
        &self,
        name: &str,
        overlap: Option<Overlap>,
    ) -> Result<String, ScheduleError> {
        self.change(name, |record, now| {
            let precision = record.spec.id_precision_ms();
            let tick = now - now % precision;
            record
                .requests
                .push(ScheduleRequest::Trigger { tick, overlap });
            record.push_action(now, ActionKind::TriggerRequested { tick });
            Ok(instance_id(&record.name, tick, precision))
        })
        .await
    }

    /// Fires every tick of schedule `name`'s spec in `[from, to)` (ms since
    /// the epoch), oldest first, paused or not, each as the instance the
    /// tick would have started (`{name}/{tick}`: a tick that already fired
    /// is not started again). Under [`Overlap::AllowAll`]: a backfill's
    /// ticks are past periods, run side by side; see
    /// [`backfill_with`](Self::backfill_with). Returns how many ticks it
    /// covers; more than 10,000 is [`ScheduleError::BackfillTooLarge`].
    pub async fn backfill(&self, name: &str, from: u64, to: u64) -> Result<usize, ScheduleError> {
        self.backfill_with(name, from, to, Overlap::AllowAll).await
    }

    /// [`backfill`](Self::backfill) under another overlap policy.
    pub async fn backfill_with(
        &self,
        name: &str,
        from: u64,
        to: u64,
        overlap: Overlap,
    ) -> Result<usize, ScheduleError> {
        if from >= to {
            return Err(ScheduleError::InvalidTime(format!(
                "a backfill from {} to {} covers nothing: `to` must be later than `from`",
                super::spec::format_time(from, 1),
                super::spec::format_time(to, 1)
            )));
        }
        self.change(name, |record, now| {
            let ticks = record.spec.ticks()?;
            let mut count = 0;
            let mut tick = ticks.first_at_or_after(from);
            while let Some(at) = tick.filter(|at| *at < to) {
                count += 1;
                if count > BACKFILL_LIMIT {
                    return Err(ScheduleError::BackfillTooLarge {
                        name: record.name.clone(),
                        limit: BACKFILL_LIMIT,
                    });
                }
                tick = ticks.next_after(at);
            }
            if count > 0 {
                record.requests.push(ScheduleRequest::Backfill {
                    from,
                    to,
                    next: from,
                    overlap,
                });
                record.push_action(now, ActionKind::BackfillRequested { from, to });
            }
            Ok(count)
        })
        .await
    }

    /// Deletes schedule `name`. The instances it started run on.
    pub async fn delete(&self, name: &str) -> Result<(), ScheduleError> {
        let key = schedule_key(name);
        loop {
            let Some(stored) = self.store.get(&key).await? else {
                return Err(ScheduleError::NotFound(name.to_owned()));
            };
            match self
                .store
                .delete(&key, Expect::Version(stored.version))
                .await
            {
                Ok(()) => {
                    changed_here();
                    return Ok(());
                }
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Schedule `name` and when it fires next.
    pub async fn describe(&self, name: &str) -> Result<ScheduleDescription, ScheduleError> {
        let (record, _) = self.read(name).await?;
        Ok(self.description(record))
    }

    /// Every schedule, by name; one whose record cannot be decoded is a
    /// [`ScheduleError::Corrupt`] naming it, so it hides no others.
    pub async fn list(
        &self,
    ) -> Result<Vec<Result<ScheduleDescription, ScheduleError>>, ScheduleError> {
        let mut schedules = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .scan(SCHEDULES_PREFIX, after.as_deref(), 256)
                .await?;
            for (key, stored) in page.entries {
                schedules.push(
                    ScheduleRecord::decode(&key, &stored.value)
                        .map(|record| self.description(record)),
                );
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(schedules),
            }
        }
    }

    fn description(&self, record: ScheduleRecord) -> ScheduleDescription {
        let mut next_fire_times = Vec::new();
        if !record.paused
            && let Some(first) = record.next_tick
            && let Ok(ticks) = record.spec.ticks()
        {
            let mut tick = Some(first);
            while let Some(at) = tick {
                if next_fire_times.len() == NEXT_FIRE_TIMES {
                    break;
                }
                next_fire_times.push(decide::fire_time(&record, at));
                tick = ticks.next_after(at);
            }
        }
        ScheduleDescription {
            schedule: record,
            next_fire_times,
        }
    }

    async fn read(&self, name: &str) -> Result<(ScheduleRecord, u64), ScheduleError> {
        let key = schedule_key(name);
        let Some(stored) = self.store.get(&key).await? else {
            return Err(ScheduleError::NotFound(name.to_owned()));
        };
        Ok((ScheduleRecord::decode(&key, &stored.value)?, stored.version))
    }

    /// Applies `edit` to schedule `name` by compare-and-swap, again on a
    /// conflict, and wakes this process's schedulers.
    async fn change<T>(
        &self,
        name: &str,
        mut edit: impl FnMut(&mut ScheduleRecord, u64) -> Result<T, ScheduleError>,
    ) -> Result<T, ScheduleError> {
        let key = schedule_key(name);
        loop {
            let (mut record, version) = self.read(name).await?;
            let now = self.clock.now_ms();
            let result = edit(&mut record, now)?;
            record.updated_at = now;
            match self
                .store
                .put(&key, record.encode()?, Expect::Version(version))
                .await
            {
                Ok(_) => {
                    changed_here();
                    return Ok(result);
                }
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }
}

impl std::fmt::Debug for Schedules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedules")
            .field("store", &self.store.name())
            .finish_non_exhaustive()
    }
}

/// A name that can be a key and the first part of an instance id.
fn check_name(name: &str) -> Result<(), ScheduleError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > 128 {
        "it is longer than 128 bytes"
    } else if name.contains('/') {
        "it holds `/`, which separates the schedule's name from the tick in its instance ids"
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "it holds whitespace or a control character"
    } else {
        return Ok(());
    };
    Err(ScheduleError::InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    })
}
