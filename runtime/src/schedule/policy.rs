//! What a schedule does when a tick finds its last instance still running
//! ([`Overlap`]), when ticks were missed ([`CatchUp`]), and the options a
//! schedule is created with ([`ScheduleOptions`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ScheduleError;

/// What a tick does while an instance the schedule started still runs
/// (has not completed, compensated or failed). As Temporal's overlap
/// policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The tick starts nothing (recorded as skipped). The default.
    #[default]
    Skip,
    /// The tick waits and starts once the running instance has ended; while
    /// one tick waits, later ones are skipped.
    BufferOne,
    /// The tick starts its instance whatever runs.
    AllowAll,
    /// The tick cancels the running instances (they compensate, see
    /// [`Runtime::cancel`](crate::Runtime::cancel); one past its pivot
    /// runs to its end) and starts once they have ended; a later tick
    /// replaces a waiting one.
    CancelOther,
}

impl Overlap {
    /// The policy's name on the command line and in JSON: `skip`,
    /// `buffer_one`, `allow_all`, `cancel_other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::BufferOne => "buffer_one",
            Overlap::AllowAll => "allow_all",
            Overlap::CancelOther => "cancel_other",
        }
    }
}

impl fmt::Display for Overlap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Overlap {
    type Err = ScheduleError;

    /// `skip`, `buffer_one`, `allow_all`, `cancel_other` (`-` for `_` too).
    fn from_str(text: &str) -> Result<Overlap, ScheduleError> {
        match text.trim().replace('-', "_").as_str() {
            "skip" => Ok(Overlap::Skip),
            "buffer_one" => Ok(Overlap::BufferOne),
            "allow_all" => Ok(Overlap::AllowAll),
            "cancel_other" => Ok(Overlap::CancelOther),
            _ => Err(ScheduleError::InvalidSpec(format!(
                "`{text}` is not an overlap policy: write skip, buffer_one, allow_all or \
                 cancel_other"
            ))),
        }
    }
}

/// Which of the ticks missed while no scheduler ran (every process down,
/// or the schedule's workflow registered nowhere) fire once one runs again,
/// among those within the catch-up window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Every missed tick within the window, oldest first.
    All,
    /// Only the most recent one; the others are recorded as skipped. The
    /// default: a nightly report missed during an outage runs once.
    #[default]
    Last,
}

/// How a schedule behaves, given at creation.
///
/// Defaults: [`Overlap::Skip`], [`CatchUp::Last`] within a one-day window,
/// the newest registered version of the workflow, not paused.
///
/// ```
/// use std::time::Duration;
/// use sagaflow::{CatchUp, Overlap, ScheduleOptions};
///
/// let options = ScheduleOptions::new()
///     .overlap(Overlap::BufferOne)
///     .catch_up(CatchUp::All, Duration::from_secs(3600));
/// # let _ = options;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleOptions {
    pub(crate) overlap: Overlap,
    pub(crate) catch_up: CatchUp,
    pub(crate) catch_up_window: Duration,
    pub(crate) version: Option<u32>,
    pub(crate) paused: Option<String>,
}

impl ScheduleOptions {
    /// The default catch-up window: one day.
    pub const DEFAULT_CATCH_UP_WINDOW: Duration = Duration::from_secs(86_400);

    /// The defaults.
    pub fn new() -> ScheduleOptions {
        ScheduleOptions {
            overlap: Overlap::default(),
            catch_up: CatchUp::default(),
            catch_up_window: Self::DEFAULT_CATCH_UP_WINDOW,
            version: None,
            paused: None,
        }
    }

    /// What a tick does while the last instance still runs.
    pub fn overlap(mut self, overlap: Overlap) -> ScheduleOptions {
        self.overlap = overlap;
        self
    }

    /// Missed ticks: a tick whose time is more than `window` ago when a
    /// scheduler comes to it is dropped (recorded as missed); of those
    /// within it, `policy` says which fire.
    pub fn catch_up(mut self, policy: CatchUp, window: Duration) -> ScheduleOptions {
        self.catch_up = policy;
        self.catch_up_window = window;
        self
    }

    /// Starts this version of the workflow rather than the newest one
    /// registered (as [`Runtime::start_by_name`](crate::Runtime::start_by_name)'s `version`).
    pub fn version(mut self, version: u32) -> ScheduleOptions {
        self.version = Some(version);
        self
    }

    /// Creates the schedule paused, with a note saying why.
    pub fn paused(mut self, note: impl Into<String>) -> ScheduleOptions {
        self.paused = Some(note.into());
        self
    }
}

impl Default for ScheduleOptions {
    fn default() -> ScheduleOptions {
        ScheduleOptions::new()
    }
}
