//! Schedules: a workflow started on a cron expression or an interval.
//!
//! A schedule is a record in the store (`schedules/{name}`, JSON), so it
//! survives restarts and every process sharing the store sees it. The
//! scheduler of every runtime with workers fires the schedules whose
//! workflow it registers: at each tick it starts the workflow by name as
//! instance `{name}/{tick}` (`nightly/2025-01-31T01:00:00Z`), and since a
//! start is idempotent per id, a tick starts one instance however many
//! processes race for it. Then it advances the schedule by
//! compare-and-swap; nothing here needs more of a store than the runtime
//! does.
//!
//! ```
//! # use sagaflow::prelude::*;
//! use std::time::Duration;
//! use sagaflow::{CatchUp, Overlap, ScheduleOptions, ScheduleSpec};
//! # #[workflow]
//! # async fn nightly_report(to: String) -> Result<String, WorkflowError> { Ok(to) }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let rt = Runtime::builder().store(MemoryStore::new()).register(nightly_report).build().await?;
//! let schedules = rt.schedules();
//! schedules
//!     .create(
//!         "nightly",
//!         ScheduleSpec::cron("0 2 * * *").in_zone("Europe/Paris"),
//!         nightly_report,
//!         "ops@example.com".to_owned(),
//!         ScheduleOptions::new()
//!             .overlap(Overlap::Skip)
//!             .catch_up(CatchUp::Last, Duration::from_secs(6 * 3600)),
//!     )
//!     .await?;
//! schedules.pause("nightly", "the warehouse is closed this week").await?;
//! let instance = schedules.trigger("nightly").await?; // runs once now, paused or not
//! schedules.unpause("nightly", "").await?;
//! # let _ = instance;
//! # rt.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The guide's chapter, `docs/schedules.md`, says what each policy does
//! and what a schedule costs.
//!
//! The parts point one way: `error` and `spec` (when it ticks) are leaves,
//! `policy` the options, `stored` the record; `decide` decides on a record
//! without I/O; `scheduler` is the task (it needs of a runtime only what
//! its `Launcher` trait says, so the runtime can start it without this
//! layer importing the runtime); `client` is [`Schedules`], the API.

mod client;
mod decide;
mod error;
mod policy;
pub(crate) mod scheduler;
mod spec;
mod stored;

pub use client::{NEXT_FIRE_TIMES, ScheduleDescription, Schedules};
pub use decide::BACKFILL_LIMIT;
pub use error::ScheduleError;
pub use policy::{CatchUp, Overlap, ScheduleOptions};
pub use spec::{ScheduleSpec, format_time, parse_time, scheduled_tick};
pub use stored::{
    ActionKind, Fire, FireCause, PendingStart, RECENT_LIMIT, SCHEDULE_FORMAT, SCHEDULES_PREFIX,
    ScheduleAction, ScheduleCounts, ScheduleRecord, ScheduleRequest, schedule_key,
};

#[cfg(test)]
mod tests;
