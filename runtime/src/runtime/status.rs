//! What the runtime reports about instances: [`Status`] (with the
//! [`AwaitedSignal`] it may wait for) and the [`ListPage`]s of
//! `Runtime::list`.

use crate::error::Error;
use crate::record::{Failure, Heartbeat, HistoryEvent, Lease, Phase};
use crate::workflow::CompensationEntry;

/// The signal an instance waits for: [`Status::awaiting_signal`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwaitedSignal {
    /// The signal's name, as the workflow waits for it
    /// (`sagaflow::signal("approval")`).
    pub name: String,
    /// When the wait times out (ms since the Unix epoch), for a
    /// [`signal_timeout`](crate::signal_timeout()) wait; `None`: it waits
    /// until the signal comes.
    pub timeout_at: Option<u64>,
}

/// What [`Runtime::status`](super::Runtime::status) reports about an instance.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Status {
    /// The instance id.
    pub id: String,
    /// The workflow's name.
    pub workflow: String,
    /// The version of the workflow it runs on.
    pub version: u32,
    /// Where the instance is in its life.
    pub phase: Phase,
    /// The current state (resume point), e.g. `ChargePayment1`.
    pub state: String,
    /// The attempt number of the next step or compensation attempt.
    pub attempt: u32,
    /// When the next attempt is due (ms since the Unix epoch), if later than now.
    pub next_run_at: Option<u64>,
    /// The signal the instance waits for, and until when, if it waits for
    /// one (a signal already in its inbox is consumed at its next run).
    pub awaiting_signal: Option<AwaitedSignal>,
    /// The error of the last failed attempt.
    pub last_error: Option<String>,
    /// Why the instance is rolling back or ended without completing.
    pub failure: Option<Failure>,
    /// Completed compensable steps, oldest first (undone last to first).
    pub compensation_stack: Vec<CompensationEntry>,
    /// Whether the pivot step has succeeded.
    pub pivot_passed: bool,
    /// Whether `cancel` was called.
    pub cancel_requested: bool,
    /// The most recent events, oldest first.
    pub history: Vec<HistoryEvent>,
    /// The fingerprint of the state machine the instance was started on.
    pub fingerprint: u64,
    /// Who runs (or last ran) the instance, until when, and the claim's epoch.
    pub lease: Lease,
    /// The last progress the current step's attempts reported with
    /// [`heartbeat`](crate::heartbeat()).
    pub heartbeat: Option<Heartbeat>,
    /// Why this runtime will not advance the instance (an unregistered
    /// workflow, another fingerprint, an undecodable state), if it will not.
    pub blocked: Option<String>,
    /// The instance that started this one as its child workflow, if any.
    pub parent: Option<String>,
    /// The child workflow instances this one started and keeps: the child
    /// it waits for, then the completed ones on its compensation stack.
    pub children: Vec<String>,
    /// When the instance was created (ms since the Unix epoch).
    pub created_at: u64,
    /// When its record was last written (ms since the Unix epoch).
    pub updated_at: u64,
}

/// One page of [`Runtime::list`](super::Runtime::list).
#[derive(Debug)]
#[non_exhaustive]
pub struct ListPage {
    /// Instances in id order; a record that cannot be decoded is an
    /// [`Error::Corrupt`] naming it, so one bad record hides no others.
    pub instances: Vec<Result<Status, Error>>,
    /// Pass as `after` to read the next page; `None` on the last page.
    pub next: Option<String>,
}
