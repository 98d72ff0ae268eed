//! The schedule's record: one JSON value per schedule under
//! `schedules/{name}`, changed only by compare-and-swap on its version.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::error::ScheduleError;
use super::policy::{CatchUp, Overlap};
use super::spec::ScheduleSpec;

/// The key prefix of schedule records.
pub const SCHEDULES_PREFIX: &str = "schedules/";

/// The format this version of sagaflow writes in [`ScheduleRecord::format`].
pub const SCHEDULE_FORMAT: u32 = 1;

/// How many actions [`ScheduleRecord::recent`] keeps.
pub const RECENT_LIMIT: usize = 32;

/// How many instance ids [`ScheduleRecord::running`] keeps.
pub(crate) const RUNNING_LIMIT: usize = 64;

/// The store key of schedule `name`.
pub fn schedule_key(name: &str) -> String {
    format!("{SCHEDULES_PREFIX}{name}")
}

/// A schedule as stored: what it starts and when, its policies, and where
/// it is. Plain JSON, readable with the store's own tools.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduleRecord {
    /// [`SCHEDULE_FORMAT`] when written.
    pub format: u32,
    /// The schedule's name: its key and the first part of its instance ids.
    pub name: String,
    /// When it ticks.
    pub spec: ScheduleSpec,
    /// The workflow each tick starts, by name.
    pub workflow: String,
    /// The workflow version it starts; `None`: the newest registered.
    #[serde(default)]
    pub version: Option<u32>,
    /// The input of every instance it starts.
    pub input: serde_json::Value,
    /// What a tick does while an instance still runs.
    pub overlap: Overlap,
    /// Which missed ticks fire.
    pub catch_up: CatchUp,
    /// How old a missed tick may be and still fire (ms).
    pub catch_up_window_ms: u64,
    /// Whether its ticks are held (triggers and backfills still run).
    #[serde(default)]
    pub paused: bool,
    /// Why it was paused or unpaused, as the operator said.
    #[serde(default)]
    pub note: Option<String>,
    /// When it was created (ms since the epoch).
    pub created_at: u64,
    /// When its record was last written (ms since the epoch).
    pub updated_at: u64,
    /// The next tick not yet handled; `None`: the spec has no more.
    #[serde(default)]
    pub next_tick: Option<u64>,
    /// The last tick handled by the schedule itself (fired, buffered,
    /// skipped or missed).
    #[serde(default)]
    pub last_tick: Option<u64>,
    /// Instances it started that had not ended when last looked at, oldest
    /// first (at most 64; with [`Overlap::AllowAll`] not looked at, so
    /// simply the latest starts).
    #[serde(default)]
    pub running: Vec<String>,
    /// A tick waiting for the running instances to end
    /// ([`Overlap::BufferOne`], [`Overlap::CancelOther`]).
    #[serde(default)]
    pub buffered: Option<Fire>,
    /// Starts decided and recorded, not yet confirmed started: the
    /// scheduler that decided them starts them right after, and any other
    /// one does if that one has not within a few seconds (start is
    /// idempotent per instance id, so a start is never doubled).
    #[serde(default)]
    pub starting: Vec<PendingStart>,
    /// Triggers and backfills asked for, not yet handled.
    #[serde(default)]
    pub requests: Vec<ScheduleRequest>,
    /// What it did so far.
    #[serde(default)]
    pub counts: ScheduleCounts,
    /// Its latest actions, oldest first (at most [`RECENT_LIMIT`]).
    #[serde(default)]
    pub recent: VecDeque<ScheduleAction>,
}

/// Why an instance of a schedule starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FireCause {
    /// A tick of the spec.
    Schedule,
    /// [`Schedules::trigger`](super::Schedules::trigger).
    Trigger,
    /// [`Schedules::backfill`](super::Schedules::backfill).
    Backfill,
}

impl FireCause {
    /// `schedule`, `trigger`, `backfill`.
    pub fn as_str(self) -> &'static str {
        match self {
            FireCause::Schedule => "schedule",
            FireCause::Trigger => "trigger",
            FireCause::Backfill => "backfill",
        }
    }
}

/// One tick to fire: its time and the instance id it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fire {
    /// The tick (ms since the epoch).
    pub tick: u64,
    /// `{schedule}/{tick}`.
    pub id: String,
    /// Why it fires.
    pub cause: FireCause,
}

/// A start recorded before it is made (see [`ScheduleRecord::starting`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingStart {
    /// What starts.
    #[serde(flatten)]
    pub fire: Fire,
    /// When the start was decided (ms since the epoch).
    pub decided_at: u64,
}

/// A trigger or backfill, waiting for a scheduler.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum ScheduleRequest {
    /// Fire once, at `tick` (the time it was asked, to the id's precision).
    Trigger {
        /// The tick.
        tick: u64,
        /// The overlap policy for this start; `None`: the schedule's.
        #[serde(default)]
        overlap: Option<Overlap>,
    },
    /// Fire every tick of the spec in `[from, to)`, from `next` on.
    Backfill {
        /// The range's start, inclusive.
        from: u64,
        /// The range's end, exclusive.
        to: u64,
        /// The first tick at or after which the backfill goes on.
        next: u64,
        /// The overlap policy for these starts.
        overlap: Overlap,
    },
}

/// What a schedule did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleCounts {
    /// Instances started (ticks, triggers, backfills).
    pub started: u64,
    /// Ticks that started nothing because of the overlap or catch-up policy.
    pub skipped: u64,
    /// Ticks dropped as older than the catch-up window.
    pub missed: u64,
    /// Starts the runtime refused (an input that does not decode, an id
    /// taken by another workflow).
    pub failed: u64,
}

/// One thing a schedule did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleAction {
    /// When (ms since the epoch).
    pub at: u64,
    /// What.
    #[serde(flatten)]
    pub kind: ActionKind,
}

/// What a [`ScheduleAction`] was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActionKind {
    /// Created.
    Created,
    /// An instance was started (recorded when decided; see `failed`).
    Started {
        /// The tick.
        tick: u64,
        /// The instance.
        id: String,
        /// Why.
        cause: FireCause,
    },
    /// A tick started nothing.
    Skipped {
        /// The tick.
        tick: u64,
        /// Why.
        reason: String,
    },
    /// A tick waits for the running instances to end.
    Buffered {
        /// The tick.
        tick: u64,
    },
    /// The running instances were asked to cancel ([`Overlap::CancelOther`]).
    Cancelled {
        /// The instances.
        ids: Vec<String>,
    },
    /// Ticks older than the catch-up window were dropped.
    Missed {
        /// The first one.
        first: u64,
        /// The last one.
        last: u64,
        /// How many, where it is known (always for intervals; for cron
        /// unless a jump over a long outage skipped counting).
        count: Option<u64>,
    },
    /// Ticks that came due together, all but the latest dropped by
    /// [`CatchUp::Last`].
    CaughtUp {
        /// The first one dropped.
        first: u64,
        /// The tick that fires instead.
        fired: u64,
        /// How many were dropped, where it is known.
        count: Option<u64>,
    },
    /// The runtime refused a start; the tick is given up.
    Failed {
        /// The instance.
        id: String,
        /// The runtime's error.
        error: String,
    },
    /// Paused.
    Paused {
        /// The note given.
        note: Option<String>,
    },
    /// Unpaused; ticks run again from the next one after now.
    Unpaused {
        /// The note given.
        note: Option<String>,
    },
    /// A trigger was asked for.
    TriggerRequested {
        /// Its tick.
        tick: u64,
    },
    /// A backfill was asked for.
    BackfillRequested {
        /// The range's start.
        from: u64,
        /// The range's end (exclusive).
        to: u64,
    },
}

impl ScheduleRecord {
    /// The instance id of this schedule's `tick`: `{name}/{tick as RFC 3339}`,
    /// in whole seconds unless the spec needs milliseconds.
    pub fn instance_id(&self, tick: u64) -> String {
        super::spec::instance_id(&self.name, tick, self.spec.id_precision_ms())
    }

    /// `tick` as this schedule's instance ids write it.
    pub fn format_tick(&self, tick: u64) -> String {
        super::spec::format_time(tick, self.spec.id_precision_ms())
    }

    /// Appends an action, forgetting the oldest beyond [`RECENT_LIMIT`].
    pub(crate) fn push_action(&mut self, at: u64, kind: ActionKind) {
        if self.recent.len() >= RECENT_LIMIT {
            self.recent.pop_front();
        }
        self.recent.push_back(ScheduleAction { at, kind });
    }

    /// The record as stored.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, ScheduleError> {
        serde_json::to_vec(self).map_err(|error| ScheduleError::Corrupt {
            name: self.name.clone(),
            reason: format!("cannot encode it: {error}"),
        })
    }

    /// Decodes the record stored under `key`.
    pub fn decode(key: &str, bytes: &[u8]) -> Result<ScheduleRecord, ScheduleError> {
        let name = key.strip_prefix(SCHEDULES_PREFIX).unwrap_or(key);
        let record: ScheduleRecord =
            serde_json::from_slice(bytes).map_err(|error| ScheduleError::Corrupt {
                name: name.to_owned(),
                reason: error.to_string(),
            })?;
        if record.format > SCHEDULE_FORMAT {
            return Err(ScheduleError::Corrupt {
                name: name.to_owned(),
                reason: format!(
                    "written in format {}, newer than this version of sagaflow reads ({})",
                    record.format, SCHEDULE_FORMAT
                ),
            });
        }
        Ok(record)
    }
}
