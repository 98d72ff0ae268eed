//! [`ScheduleError`]: what the schedule layer returns.

use crate::error::StoreError;

/// Why a schedule could not be created, read or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// The schedule's name cannot be used (it is part of a store key and of
    /// every instance id the schedule starts).
    #[error("`{name}` cannot name a schedule: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The cron expression does not parse, or matches no time at all.
    #[error("the cron expression `{expression}` is invalid: {reason}")]
    InvalidCron {
        /// The expression given.
        expression: String,
        /// The parser's reason, or that no time matches.
        reason: String,
    },
    /// The time zone is not in the IANA time zone database.
    #[error(
        "`{zone}` is not a time zone of the IANA database (write a name such as \
         `Europe/Paris`, `America/New_York` or `UTC`): {reason}"
    )]
    UnknownZone {
        /// The zone given.
        zone: String,
        /// Why the database refused it.
        reason: String,
    },
    /// An interval schedule that cannot tick: a zero interval, an offset not
    /// shorter than the interval, a time zone or offset on the wrong kind.
    #[error("invalid schedule spec: {0}")]
    InvalidSpec(String),
    /// A time that does not parse as RFC 3339 (`2025-01-31T02:00:00Z`), or
    /// a range that ends before it starts.
    #[error("invalid time: {0}")]
    InvalidTime(String),
    /// A backfill over more ticks than one request may start.
    #[error(
        "the backfill covers more than {limit} ticks of schedule `{name}`: backfill a shorter \
         range, in several requests"
    )]
    BackfillTooLarge {
        /// The schedule.
        name: String,
        /// The most ticks one backfill may cover.
        limit: usize,
    },
    /// `create` of a name that is taken.
    #[error("schedule `{0}` already exists: delete it first to create it anew")]
    AlreadyExists(String),
    /// No schedule has this name.
    #[error("no schedule named `{0}`")]
    NotFound(String),
    /// The input does not decode as the workflow's input type, or is too
    /// large, checked at `create` on a runtime that registers the workflow.
    #[error("the input of schedule `{name}` cannot start workflow `{workflow}`: {reason}")]
    Input {
        /// The schedule.
        name: String,
        /// The workflow it starts.
        workflow: String,
        /// Why the input was refused.
        reason: String,
    },
    /// The stored schedule cannot be decoded; it is left as it is.
    #[error("the record of schedule `{name}` cannot be decoded: {reason}")]
    Corrupt {
        /// The schedule's name (or its store key).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}
