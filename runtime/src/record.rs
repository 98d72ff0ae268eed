//! The instance record: what the runtime keeps in the store for one workflow
//! instance, and its on-disk envelope.
//!
//! One key per instance, `instances/{id}`, holding JSON an operator can read
//! with the backend's own tools:
//!
//! ```text
//! {"format":1,"checksum":"xxh3-64:9c1e…","record":{"workflow":"place_order","id":"order-42",…}}
//! ```
//!
//! The checksum covers the exact bytes of `record`, so a torn or hand-edited
//! record is detected instead of being resumed with wrong data.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The envelope's format version; a record with another one is not decoded.
pub const FORMAT: u32 = 1;

/// Events kept in a record's history; older ones are dropped first.
pub const HISTORY_LIMIT: usize = 64;

/// The store key prefix of instance records.
pub const KEY_PREFIX: &str = "instances/";

/// The store key of instance `id`.
pub fn key(id: &str) -> String {
    [KEY_PREFIX, id].concat()
}

/// Where an instance is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Moving forward: the next step is due.
    Running,
    /// Waiting: for a retry after a failed step attempt, for a durable
    /// timer (both until `next_run_at`), or for a signal (`awaiting_signal`,
    /// until one arrives or `next_run_at`, the timeout, passes).
    Waiting,
    /// Rolling back: running the compensation stack, last entry first.
    Compensating,
    /// Terminal: the workflow returned `Ok`.
    Completed,
    /// Terminal: the workflow failed (or was cancelled) and every completed
    /// compensable step was undone.
    Compensated,
    /// Terminal: an operator must look (a failure after the pivot, or a
    /// compensation that could not finish).
    Failed,
}

impl Phase {
    /// Whether the instance has ended and will never change again.
    pub const fn is_terminal(self) -> bool {
        matches!(self, Phase::Completed | Phase::Compensated | Phase::Failed)
    }

    /// The name as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "Running",
            Phase::Waiting => "Waiting",
            Phase::Compensating => "Compensating",
            Phase::Completed => "Completed",
            Phase::Compensated => "Compensated",
            Phase::Failed => "Failed",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an instance did not complete: what [`Outcome::Compensated`] and
/// [`Outcome::Failed`] carry.
///
/// [`Outcome::Compensated`]: crate::runtime::Outcome::Compensated
/// [`Outcome::Failed`]: crate::runtime::Outcome::Failed
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What went wrong.
    pub message: String,
    /// The step whose failure it is, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

impl Failure {
    /// A failure with a message and no step.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            step: None,
        }
    }

    /// The failure of a cancelled instance.
    pub fn cancelled() -> Failure {
        Failure::new(CANCELLED)
    }

    /// Whether the instance failed because it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.step.is_none() && self.message == CANCELLED
    }
}

const CANCELLED: &str = "cancelled";

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step `{step}` failed: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Who may advance an instance: a time-bounded claim that fences stale
/// writers.
///
/// A worker runtime claims an instance with one compare-and-swap of its
/// record that sets `owner` to the runtime's id, `expires_at` to now plus
/// the lease TTL, and increments `epoch`. It then writes every transition as
/// a compare-and-swap on the version it read, and renews the lease while a
/// step runs; a holder whose lease lapsed and was claimed by another (a
/// higher epoch) finds its write rejected and stops. A lease is released
/// (`expires_at` set to the time of release, owner and epoch kept) when the
/// instance waits for a retry, ends, or its runtime shuts down.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The runtime that holds (or last held) the lease.
    pub owner: Option<String>,
    /// Until when (ms since the Unix epoch) the owner holds it; `None` or a
    /// past time: anyone may claim it.
    pub expires_at: Option<u64>,
    /// Incremented on every claim; fences stale writers.
    pub epoch: u64,
}

impl Lease {
    /// Whether someone holds the lease at wall time `now` (ms).
    pub fn is_live(&self, now: u64) -> bool {
        self.owner.is_some() && self.expires_at.is_some_and(|expires_at| expires_at > now)
    }

    /// Whether this lease is the one `owner` claimed with `epoch`.
    pub fn is_held_by(&self, owner: &str, epoch: u64) -> bool {
        self.owner.as_deref() == Some(owner) && self.epoch == epoch
    }
}

/// The last progress a step attempt reported with
/// [`heartbeat`](crate::heartbeat()).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The state (or `compensate/{index}/{step}`) whose attempt reported it.
    pub state: String,
    /// That attempt's number.
    pub attempt: u32,
    /// When it was written (ms since the Unix epoch).
    pub at: u64,
    /// The details, as the step gave them.
    pub details: serde_json::Value,
}

/// The store key prefix of the due index.
pub const DUE_PREFIX: &str = "due/";

/// The due-index key saying instance `id` is due at `at_ms`:
/// `due/{20-digit zero-padded ms}/{id}`, so keys sort by time.
///
/// Due keys are hints, never truth: a worker that finds one re-reads the
/// instance's record and skips it unless the record says it is due and
/// claimable; stale hints are deleted.
pub fn due_key(at_ms: u64, id: &str) -> String {
    format!("{DUE_PREFIX}{at_ms:020}/{id}")
}

/// The time and instance id of a due-index key, `None` if it is not one.
pub fn parse_due_key(key: &str) -> Option<(u64, &str)> {
    let rest = key.strip_prefix(DUE_PREFIX)?;
    let (at, id) = rest.split_once('/')?;
    if at.len() != 20 || id.is_empty() {
        return None;
    }
    Some((at.parse().ok()?, id))
}

/// What happened to an instance, as kept in its bounded history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The instance was created by `start`.
    Created,
    /// A step attempt began (`at` is when it began).
    StepStarted,
    /// A step attempt succeeded.
    StepSucceeded,
    /// A step attempt failed and another is scheduled.
    StepRetried,
    /// A step failed for good.
    StepFailed,
    /// `cancel` was called.
    CancelRequested,
    /// The saga began rolling back (the error says why).
    Compensating,
    /// One compensation finished.
    Compensated,
    /// A compensation attempt failed and another is scheduled.
    CompensationRetried,
    /// A compensation failed for good.
    CompensationFailed,
    /// The workflow returned `Ok`.
    Completed,
    /// Every compensation finished: the instance is `Compensated`.
    RolledBack,
    /// The instance ended `Failed`.
    Failed,
    /// The workflow entered a durable timer (`sagaflow::sleep`); `error`
    /// is empty, the wake-up time is the record's `next_run_at`.
    TimerStarted,
    /// A durable timer fired and the workflow went on.
    TimerFired,
    /// The workflow began waiting for a signal (`step` holds its name).
    SignalAwaited,
    /// The workflow consumed a signal (`step` holds its name).
    SignalReceived,
    /// A `signal_timeout` wait ended without a signal (`step` holds its name).
    SignalTimedOut,
    /// The workflow began waiting for a child workflow (`step` holds the
    /// child's workflow name, `error` is empty; the record's
    /// `awaiting_child` holds its id).
    ChildStarted,
    /// The awaited child workflow ended (`step` holds the child's id,
    /// `error` its failure, if it did not complete).
    ChildEnded,
    /// The rollback asked a completed child workflow to compensate
    /// (`step` holds the child's id).
    ChildCompensating,
    /// The child workflow's compensation finished (`step` holds its id).
    ChildCompensated,
    /// The instance moved to another version of its workflow at its state
    /// (`state`), as the machines proved safe (`note` says from which
    /// version to which, and what changed compatibly).
    Upgraded,
    /// A migration (`#[migrate]`) moved the instance to another version
    /// (`state` is the new state; `note` names the migration, the versions
    /// and the old state).
    Migrated,
}

impl EventKind {
    /// The name as stored (`step_started`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::StepStarted => "step_started",
            EventKind::StepSucceeded => "step_succeeded",
            EventKind::StepRetried => "step_retried",
            EventKind::StepFailed => "step_failed",
            EventKind::CancelRequested => "cancel_requested",
            EventKind::Compensating => "compensating",
            EventKind::Compensated => "compensated",
            EventKind::CompensationRetried => "compensation_retried",
            EventKind::CompensationFailed => "compensation_failed",
            EventKind::Completed => "completed",
            EventKind::RolledBack => "rolled_back",
            EventKind::Failed => "failed",
            EventKind::TimerStarted => "timer_started",
            EventKind::TimerFired => "timer_fired",
            EventKind::SignalAwaited => "signal_awaited",
            EventKind::SignalReceived => "signal_received",
            EventKind::SignalTimedOut => "signal_timed_out",
            EventKind::ChildStarted => "child_started",
            EventKind::ChildEnded => "child_ended",
            EventKind::ChildCompensating => "child_compensating",
            EventKind::ChildCompensated => "child_compensated",
            EventKind::Upgraded => "upgraded",
            EventKind::Migrated => "migrated",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of an instance's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// When (ms since the Unix epoch).
    pub at: u64,
    /// What happened.
    pub kind: EventKind,
    /// The state the instance was in. (Borrowed from the state machine when
    /// the runtime records it: an event costs no copy of its names.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Cow<'static, str>>,
    /// The step (or, for compensation events, the step being undone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Cow<'static, str>>,
    /// The attempt number, for step and compensation attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The error, for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What else the event records (an upgrade's versions, a migration's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl HistoryEvent {
    /// An event with no state, step, attempt, error or note.
    pub fn new(at: u64, kind: EventKind) -> HistoryEvent {
        HistoryEvent {
            at,
            kind,
            state: None,
            step: None,
            attempt: None,
            error: None,
            note: None,
        }
    }
}

/// One signal waiting in an instance's inbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalMessage {
    /// Its sequence number in the instance (from [`InstanceRecord::signal_seq`]):
    /// increasing in the order signals were recorded, never reused.
    pub seq: u64,
    /// When it was recorded (ms since the Unix epoch).
    pub at: u64,
    /// The value, as JSON.
    pub value: serde_json::Value,
}

/// A completed compensable step: what its compensation needs.
///
/// Arguments and output are kept as the JSON text they are stored as: the
/// record is written on every step, and the stack only grows, so its
/// entries are copied into each write, never built into value trees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CompensationEntry {
    /// The step's name.
    pub step: Cow<'static, str>,
    /// The step's arguments, as the owned tuple `Step::Args` serializes.
    pub args: RawJson,
    /// The step's output.
    pub output: RawJson,
    /// For an entry that stands for a completed child workflow
    /// (`sagaflow::child`): the child's instance id. Undoing it asks the
    /// child to run its own compensation stack; `step` then holds the
    /// child's workflow name and `args`/`output` are `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
}

/// JSON text kept as it was written: an instance's state, stored and handed
/// to the workflow without being built into a [`serde_json::Value`] tree
/// (which cost more than a step on every transition).
///
/// Two values are equal when their texts are: the runtime writes JSON
/// compactly and in one order, so the same state is the same text.
#[derive(Clone)]
pub struct RawJson(
    /// `None`: `null`, which needs no allocation (an emptied record holds it).
    /// The text is always one well-formed JSON value: it is only ever made
    /// by serde_json, writing a value or reading one.
    Option<Box<str>>,
);

thread_local! {
    /// Where [`RawJson::to_json`] writes, so each text is allocated once,
    /// at its size, rather than grown and then shrunk.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The scratch buffer is kept up to this size between uses.
const SCRATCH_KEPT: usize = 64 << 10;

impl RawJson {
    /// `null`.
    pub const fn null() -> RawJson {
        RawJson(None)
    }

    /// The JSON text of `value`.
    pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<RawJson, serde_json::Error> {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buffer) => {
                buffer.clear();
                let written = serde_json::to_writer(&mut *buffer, value)
                    .and_then(|()| RawJson::from_written(&buffer));
                if buffer.capacity() > SCRATCH_KEPT {
                    *buffer = Vec::new();
                }
                written
            }
            // Serializing a value that makes a `RawJson` of its own.
            Err(_) => RawJson::from_written(&serde_json::to_vec(value)?),
        })
    }

    /// The text serde_json wrote (always UTF-8).
    fn from_written(bytes: &[u8]) -> Result<RawJson, serde_json::Error> {
        let text = std::str::from_utf8(bytes).map_err(serde::ser::Error::custom)?;
        Ok(RawJson(Some(Box::from(text))))
    }

    /// The JSON text of `value`.
    pub fn from_value(value: &serde_json::Value) -> RawJson {
        // A `Value` always serializes: its map keys are strings.
        RawJson::to_json(value).unwrap_or_else(|_| RawJson::null())
    }

    /// The text, e.g. `{"Charge1":{"order":42}}`.
    pub fn get(&self) -> &str {
        self.0.as_deref().unwrap_or("null")
    }

    /// Decodes the text into `T`.
    pub fn parse<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.get())
    }

    /// The text as a [`serde_json::Value`] tree.
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        self.parse()
    }
}

/// Written as the JSON it holds (the record's own encoder copies the text;
/// through serde, as in a `Status` printed as JSON, it is checked first).
impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw: &RawValue = serde_json::from_str(self.get()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// Read as the JSON text of one value, kept as it is; `null` needs no text.
impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<RawJson, D::Error> {
        let raw = Option::<Box<RawValue>>::deserialize(deserializer)?;
        Ok(RawJson(raw.map(Box::<str>::from)))
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

/// The record of one workflow instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The workflow's name (`Workflow::NAME`).
    pub workflow: String,
    /// The instance id given to `start`.
    pub id: String,
    /// The state machine's fingerprint, 16 hex digits.
    pub fingerprint: String,
    /// The workflow's version the instance runs on (1 when left out).
    #[serde(default = "first_version", skip_serializing_if = "is_first_version")]
    pub version: u32,
    /// Where the instance is in its life.
    pub phase: Phase,
    /// The name of the state variant (the resume point).
    pub state_name: String,
    /// The serialized state variant: the variables live at the resume point,
    /// as the JSON text stored (`{"ChargePayment1":{"order":…}}`).
    pub state: RawJson,
    /// Completed compensable steps, oldest first; popped from the end.
    pub compensation_stack: Vec<CompensationEntry>,
    /// Whether the saga's pivot step has succeeded (no way back after it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub pivot_passed: bool,
    /// The attempt number of the next step or compensation attempt (1-based).
    pub attempt: u32,
    /// When the next attempt is due (ms since the Unix epoch); `None`: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<u64>,
    /// Whether `cancel` was called; the instance compensates at its next step.
    #[serde(default, skip_serializing_if = "is_false")]
    pub cancel_requested: bool,
    /// Who runs the instance.
    #[serde(default)]
    pub lease: Lease,
    /// The last progress reported by an attempt of the current step (or
    /// compensation); cleared when the instance moves on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Heartbeat>,
    /// The workflow's output, when `Completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// Why it did not complete, when compensating, `Compensated` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The error of the last failed attempt, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The last [`HISTORY_LIMIT`] events, oldest first.
    #[serde(default)]
    pub history: VecDeque<HistoryEvent>,
    /// How many transitions of the state machine have been committed (a
    /// step done, a timer fired, a signal consumed, the end). A step's
    /// idempotency key in a loop and the values of `sagaflow::uuid()` and
    /// `sagaflow::random()` derive from it; it advances only with the
    /// committed write, so a re-run after a crash sees the same number.
    #[serde(default)]
    pub transitions: u64,
    /// When the last transition was committed (ms since the Unix epoch; the
    /// creation time before the first): what `sagaflow::now()` returns in
    /// the workflow body.
    #[serde(default)]
    pub committed_at: u64,
    /// The signal the current state waits for, if it waits for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_signal: Option<String>,
    /// Signals recorded and not yet consumed, per name, oldest first.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inbox: BTreeMap<String, VecDeque<SignalMessage>>,
    /// The sequence number the next signal gets.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub signal_seq: u64,
    /// The id of the workflow instance that started this one as its child
    /// (`sagaflow::child`), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The child workflow instance this one waits for: to end (at a
    /// `sagaflow::child(..).await`), or, while compensating, to finish
    /// its compensation. The child's end makes the instance due (it sets
    /// `next_run_at` to that time); `next_run_at` is otherwise a re-check
    /// time, in case the wake-up was lost to a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_child: Option<String>,
    /// The latest status the workflow body set with `sagaflow::set_status`,
    /// as JSON; read with `Runtime::query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
    /// When the instance was created (ms since the Unix epoch).
    pub created_at: u64,
    /// When the record was last written (ms since the Unix epoch).
    pub updated_at: u64,
}

impl InstanceRecord {
    /// A record with nothing in it (no allocation): a placeholder for one
    /// moved out to be rewritten.
    pub(crate) fn empty() -> InstanceRecord {
        InstanceRecord {
            workflow: String::new(),
            id: String::new(),
            fingerprint: String::new(),
            version: 1,
            phase: Phase::Running,
            state_name: String::new(),
            state: RawJson::null(),
            compensation_stack: Vec::new(),
            pivot_passed: false,
            attempt: 0,
            next_run_at: None,
            cancel_requested: false,
            lease: Lease::default(),
            heartbeat: None,
            output: None,
            failure: None,
            last_error: None,
            history: VecDeque::new(),
            transitions: 0,
            committed_at: 0,
            awaiting_signal: None,
            inbox: BTreeMap::new(),
            signal_seq: 0,
            parent: None,
            awaiting_child: None,
            status: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// Appends an event, dropping the oldest beyond [`HISTORY_LIMIT`].
    pub fn push_event(&mut self, event: HistoryEvent) {
        self.history.push_back(event);
        while self.history.len() > HISTORY_LIMIT {
            self.history.pop_front();
        }
    }

    /// Whether the instance's next step (or compensation) is due at wall
    /// time `now`: it has not ended, and it waits for no retry or timer (or
    /// it is cancelled, which cuts a wait short); a state waiting for a
    /// signal is due once the signal is in the inbox or its timeout passed.
    pub fn is_due(&self, now: u64) -> bool {
        if self.phase.is_terminal() {
            return false;
        }
        // A wait for a child ends when the child's end (or the re-check
        // time) sets `next_run_at`; a cancel reaches the child first.
        if self.awaiting_child.is_some() {
            return self.next_run_at.is_none_or(|due| due <= now);
        }
        if self.cancel_cuts_wait() {
            return true;
        }
        match &self.awaiting_signal {
            Some(name) if self.phase != Phase::Compensating => {
                self.has_signal(name) || self.next_run_at.is_some_and(|due| due <= now)
            }
            _ => self.next_run_at.is_none_or(|due| due <= now),
        }
    }

    /// Whether a signal named `name` waits in the inbox.
    pub fn has_signal(&self, name: &str) -> bool {
        self.inbox.get(name).is_some_and(|queue| !queue.is_empty())
    }

    /// The oldest signal named `name` in the inbox.
    pub fn next_signal(&self, name: &str) -> Option<&SignalMessage> {
        self.inbox.get(name).and_then(VecDeque::front)
    }

    /// Removes the signal with sequence number `seq` from the inbox.
    pub fn remove_signal(&mut self, name: &str, seq: u64) {
        if let Some(queue) = self.inbox.get_mut(name) {
            queue.retain(|message| message.seq != seq);
            if queue.is_empty() {
                self.inbox.remove(name);
            }
        }
    }

    /// Appends a signal to the inbox with the next sequence number.
    pub fn push_signal(&mut self, name: &str, value: serde_json::Value, at: u64) {
        let seq = self.signal_seq;
        self.signal_seq = seq.saturating_add(1);
        self.inbox
            .entry(name.to_owned())
            .or_default()
            .push_back(SignalMessage { seq, at, value });
    }

    /// Takes into `self` the signals another writer recorded in `fresh`
    /// (those numbered from `self.signal_seq` on). Only senders add signals
    /// and only the lease holder removes them, so nothing is lost and a
    /// signal this holder consumed is not added back.
    pub fn merge_signals(&mut self, fresh: &InstanceRecord) {
        if fresh.signal_seq <= self.signal_seq {
            return;
        }
        for (name, queue) in &fresh.inbox {
            for message in queue
                .iter()
                .filter(|message| message.seq >= self.signal_seq)
            {
                self.inbox
                    .entry(name.clone())
                    .or_default()
                    .push_back(message.clone());
            }
        }
        self.signal_seq = fresh.signal_seq;
    }

    /// Whether a `cancel` makes the instance roll back now, before any
    /// retry delay.
    pub fn cancel_cuts_wait(&self) -> bool {
        self.cancel_requested && !self.pivot_passed && self.phase != Phase::Compensating
    }

    /// The fingerprint as a number, `None` if it is not 16 hex digits.
    pub fn fingerprint_value(&self) -> Option<u64> {
        parse_fingerprint(&self.fingerprint)
    }
}

/// `0123456789abcdef`: how fingerprints are written in records.
pub fn format_fingerprint(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

fn first_version() -> u32 {
    1
}

fn is_first_version(version: &u32) -> bool {
    *version == 1
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A fingerprint from its 16 hex digits, `None` if it is not that.
pub fn parse_fingerprint(text: &str) -> Option<u64> {
    if text.len() != 16 {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// Why stored bytes are not a valid record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a JSON envelope.
    #[error("not a record envelope: {0}")]
    Envelope(String),
    /// An envelope of a format this version does not read.
    #[error("record format {0} is not supported (this version reads format {FORMAT})")]
    Format(u32),
    /// The checksum does not match the record's bytes.
    #[error("checksum mismatch: stored {stored}, computed {computed}")]
    Checksum {
        /// The checksum in the envelope.
        stored: String,
        /// The checksum of the bytes found.
        computed: String,
    },
    /// The checksum matches but the record's fields do not.
    #[error("invalid record: {0}")]
    Record(String),
}

#[derive(Deserialize)]
struct EnvelopeIn<'a> {
    format: u32,
    checksum: String,
    #[serde(borrow)]
    record: &'a RawValue,
}

/// The checksum written: XXH3, 64 bits, of the record's bytes. Enough to
/// catch torn writes and stray edits (it is not meant to resist tampering),
/// and fast: FNV-1a, which records were first written with, costs a
/// multiplication per byte in a chain, a microsecond or more per write.
fn checksum(bytes: &[u8]) -> String {
    format!("{XXH3}{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

const XXH3: &str = "xxh3-64:";
const FNV1A: &str = "fnv1a64:";

/// The checksum of `bytes` by the algorithm `stored` names (records written
/// before XXH3 carry FNV-1a's), so both kinds of record read back.
fn checksum_like(stored: &str, bytes: &[u8]) -> String {
    if stored.starts_with(FNV1A) {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{FNV1A}{hash:016x}")
    } else {
        checksum(bytes)
    }
}

/// Serializes a record into its envelope.
pub fn encode(record: &InstanceRecord) -> Result<Vec<u8>, serde_json::Error> {
    encode_into(record, None)
}

/// [`encode`], re-using the encoded events of `cache` that the record's
/// history still holds, and leaving the record's in it.
pub(crate) fn encode_with(
    record: &InstanceRecord,
    cache: &mut HistoryCache,
) -> Result<Vec<u8>, serde_json::Error> {
    encode_into(record, Some(cache))
}

fn encode_into(
    record: &InstanceRecord,
    cache: Option<&mut HistoryCache>,
) -> Result<Vec<u8>, serde_json::Error> {
    // The envelope is written around the record's JSON in one buffer, the
    // checksum filled in after it: through a `RawValue`, serde_json would
    // parse the record's JSON again to validate it, and copy it twice.
    // Sized from what the record holds, so the buffer (which a store may
    // keep) is neither regrown nor mostly empty.
    let history = cache
        .as_ref()
        .map_or(record.history.len() * 128, |cache| cache.bytes.len());
    let mut out = Vec::with_capacity(
        768 + record.state.get().len() + history + 96 * record.compensation_stack.len(),
    );
    out.extend_from_slice(b"{\"format\":");
    write_int(&mut out, FORMAT);
    out.extend_from_slice(b",\"checksum\":\"");
    let checksum_at = out.len();
    out.extend_from_slice(XXH3.as_bytes());
    out.extend_from_slice(&[b'0'; 16]);
    out.extend_from_slice(b"\",\"record\":");
    let record_at = out.len();
    write_record(&mut out, record, cache)?;
    // The hash's 16 hex digits, written in place: no string to format.
    let hash = xxhash_rust::xxh3::xxh3_64(&out[record_at..]);
    let digits_at = checksum_at + XXH3.len();
    for (index, digit) in out[digits_at..digits_at + 16].iter_mut().enumerate() {
        let nibble = (hash >> (60 - 4 * index)) & 0xf;
        *digit = b"0123456789abcdef"[nibble as usize];
    }
    out.push(b'}');
    Ok(out)
}

/// Writes `record` as JSON, byte for byte what its derived `Serialize`
/// writes through `serde_json` (a test holds them equal), but with the field
/// names as constants and the strings copied unless they need escaping:
/// on every transition, serde_json's byte-by-byte escaping of every name and
/// string was most of the cost of a step. The rarely present parts go
/// through serde.
fn write_record(
    out: &mut Vec<u8>,
    record: &InstanceRecord,
    cache: Option<&mut HistoryCache>,
) -> Result<(), serde_json::Error> {
    // Names every field, so a field added to the record without being
    // added here is a compile error rather than a field silently not stored.
    let InstanceRecord {
        workflow: _,
        id: _,
        fingerprint: _,
        version: _,
        phase: _,
        state_name: _,
        state: _,
        compensation_stack: _,
        pivot_passed: _,
        attempt: _,
        next_run_at: _,
        cancel_requested: _,
        lease: _,
        heartbeat: _,
        output: _,
        failure: _,
        last_error: _,
        history: _,
        transitions: _,
        committed_at: _,
        awaiting_signal: _,
        inbox: _,
        signal_seq: _,
        parent: _,
        awaiting_child: _,
        status: _,
        created_at: _,
        updated_at: _,
    } = record;
    out.extend_from_slice(b"{\"workflow\":");
    write_str(out, &record.workflow)?;
    out.extend_from_slice(b",\"id\":");
    write_str(out, &record.id)?;
    out.extend_from_slice(b",\"fingerprint\":");
    write_str(out, &record.fingerprint)?;
    if record.version != 1 {
        out.extend_from_slice(b",\"version\":");
        write_int(out, record.version);
    }
    out.extend_from_slice(b",\"phase\":");
    write_str(out, record.phase.as_str())?;
    out.extend_from_slice(b",\"state_name\":");
    write_str(out, &record.state_name)?;
    out.extend_from_slice(b",\"state\":");
    out.extend_from_slice(record.state.get().as_bytes());
    out.extend_from_slice(b",\"compensation_stack\":[");
    for (index, entry) in record.compensation_stack.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let CompensationEntry {
            step,
            args,
            output,
            child,
        } = entry;
        out.extend_from_slice(b"{\"step\":");
        write_str(out, step)?;
        out.extend_from_slice(b",\"args\":");
        out.extend_from_slice(args.get().as_bytes());
        out.extend_from_slice(b",\"output\":");
        out.extend_from_slice(output.get().as_bytes());
        if let Some(child) = child {
            out.extend_from_slice(b",\"child\":");
            write_str(out, child)?;
        }
        out.push(b'}');
    }
    out.push(b']');
    // The fields at their default are left out, as serde's derive does.
    if record.pivot_passed {
        out.extend_from_slice(b",\"pivot_passed\":true");
    }
    out.extend_from_slice(b",\"attempt\":");
    write_int(out, record.attempt);
    if let Some(at) = record.next_run_at {
        out.extend_from_slice(b",\"next_run_at\":");
        write_int(out, at);
    }
    if record.cancel_requested {
        out.extend_from_slice(b",\"cancel_requested\":true");
    }
    let Lease {
        owner,
        expires_at,
        epoch,
    } = &record.lease;
    out.extend_from_slice(b",\"lease\":{\"owner\":");
    match owner {
        Some(owner) => write_str(out, owner)?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"expires_at\":");
    write_opt_int(out, *expires_at);
    out.extend_from_slice(b",\"epoch\":");
    write_int(out, *epoch);
    out.push(b'}');
    if let Some(heartbeat) = &record.heartbeat {
        out.extend_from_slice(b",\"heartbeat\":");
        serde_json::to_writer(&mut *out, heartbeat)?;
    }
    if let Some(output) = &record.output {
        out.extend_from_slice(b",\"output\":");
        write_value(out, output)?;
    }
    if let Some(failure) = &record.failure {
        out.extend_from_slice(b",\"failure\":");
        serde_json::to_writer(&mut *out, failure)?;
    }
    if let Some(error) = &record.last_error {
        out.extend_from_slice(b",\"last_error\":");
        write_str(out, error)?;
    }
    out.extend_from_slice(b",\"history\":");
    match cache {
        Some(cache) => cache.write(out, &record.history)?,
        None => {
            out.push(b'[');
            for (index, event) in record.history.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_event(out, event)?;
            }
            out.push(b']');
        }
    }
    out.extend_from_slice(b",\"transitions\":");
    write_int(out, record.transitions);
    out.extend_from_slice(b",\"committed_at\":");
    write_int(out, record.committed_at);
    if let Some(name) = &record.awaiting_signal {
        out.extend_from_slice(b",\"awaiting_signal\":");
        write_str(out, name)?;
    }
    if !record.inbox.is_empty() {
        out.extend_from_slice(b",\"inbox\":");
        serde_json::to_writer(&mut *out, &record.inbox)?;
    }
    if record.signal_seq != 0 {
        out.extend_from_slice(b",\"signal_seq\":");
        write_int(out, record.signal_seq);
    }
    if let Some(parent) = &record.parent {
        out.extend_from_slice(b",\"parent\":");
        write_str(out, parent)?;
    }
    if let Some(child) = &record.awaiting_child {
        out.extend_from_slice(b",\"awaiting_child\":");
        write_str(out, child)?;
    }
    if let Some(status) = &record.status {
        out.extend_from_slice(b",\"status\":");
        write_value(out, status)?;
    }
    out.extend_from_slice(b",\"created_at\":");
    write_int(out, record.created_at);
    out.extend_from_slice(b",\"updated_at\":");
    write_int(out, record.updated_at);
    out.push(b'}');
    Ok(())
}

fn write_event(out: &mut Vec<u8>, event: &HistoryEvent) -> Result<(), serde_json::Error> {
    let HistoryEvent {
        at,
        kind,
        state,
        step,
        attempt,
        error,
        note,
    } = event;
    out.extend_from_slice(b"{\"at\":");
    write_int(out, *at);
    out.extend_from_slice(b",\"kind\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.push(b'"');
    if let Some(state) = state {
        out.extend_from_slice(b",\"state\":");
        write_str(out, state)?;
    }
    if let Some(step) = step {
        out.extend_from_slice(b",\"step\":");
        write_str(out, step)?;
    }
    if let Some(attempt) = attempt {
        out.extend_from_slice(b",\"attempt\":");
        write_int(out, *attempt);
    }
    if let Some(error) = error {
        out.extend_from_slice(b",\"error\":");
        write_str(out, error)?;
    }
    if let Some(note) = note {
        out.extend_from_slice(b",\"note\":");
        write_str(out, note)?;
    }
    out.push(b'}');
    Ok(())
}

/// The encoded events of the last record a worker wrote. A history only
/// grows at its end and loses its oldest events at its front, so the next
/// record's encoding re-uses the bytes of the events it still holds and
/// encodes only the new ones: a step costs the same whether the history
/// holds 3 events or [`HISTORY_LIMIT`]. Every cached event is compared with
/// the record's before its bytes are used, so a cache that does not match
/// the record (another record, a reloaded one) costs time, never bytes.
#[derive(Debug)]
pub(crate) struct HistoryCache {
    /// The cached events, oldest first, with the length of their bytes.
    events: VecDeque<(HistoryEvent, usize)>,
    /// Their JSON, each event preceded by a comma.
    bytes: Vec<u8>,
}

impl Default for HistoryCache {
    fn default() -> HistoryCache {
        // Sized for a short saga's history, so it is not regrown event by event.
        HistoryCache {
            events: VecDeque::with_capacity(16),
            bytes: Vec::with_capacity(1_024),
        }
    }
}

impl HistoryCache {
    /// Writes `history` as a JSON array, and keeps it cached.
    fn write(
        &mut self,
        out: &mut Vec<u8>,
        history: &VecDeque<HistoryEvent>,
    ) -> Result<(), serde_json::Error> {
        self.align(history);
        for event in history.iter().skip(self.events.len()) {
            let start = self.bytes.len();
            self.bytes.push(b',');
            if let Err(error) = write_event(&mut self.bytes, event) {
                self.bytes.truncate(start);
                return Err(error);
            }
            self.events
                .push_back((event.clone(), self.bytes.len() - start));
        }
        out.push(b'[');
        out.extend_from_slice(self.bytes.get(1..).unwrap_or_default());
        out.push(b']');
        Ok(())
    }

    /// Keeps only the longest run of cached events that `history` starts
    /// with, after dropping those it lost from its front.
    fn align(&mut self, history: &VecDeque<HistoryEvent>) {
        let lost = history.front().map_or(self.events.len(), |first| {
            self.events
                .iter()
                .position(|(cached, _)| cached == first)
                .unwrap_or(self.events.len())
        });
        if lost > 0 {
            let bytes: usize = self.events.drain(..lost).map(|(_, len)| len).sum();
            self.bytes.drain(..bytes);
        }
        let same = self
            .events
            .iter()
            .zip(history)
            .take_while(|((cached, _), event)| cached == *event)
            .count();
        while self.events.len() > same {
            if let Some((_, len)) = self.events.pop_back() {
                self.bytes.truncate(self.bytes.len() - len);
            }
        }
    }
}

/// A JSON value, as serde_json writes it, with its strings and keys
/// through [`write_str`] and its integers through `itoa`.
fn write_value(out: &mut Vec<u8>, value: &serde_json::Value) -> Result<(), serde_json::Error> {
    use serde_json::Value;
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(value) => write_bool(out, *value),
        Value::Number(number) => match (number.as_u64(), number.as_i64()) {
            (Some(value), _) => write_int(out, value),
            (None, Some(value)) => write_int(out, value),
            (None, None) => serde_json::to_writer(&mut *out, number)?,
        },
        Value::String(text) => write_str(out, text)?,
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (index, (key, item)) in map.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_str(out, key)?;
                out.push(b':');
                write_value(out, item)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// A JSON string: copied as it is when nothing in it needs escaping (the
/// common case: names, ids, states), else escaped by serde_json.
fn write_str(out: &mut Vec<u8>, text: &str) -> Result<(), serde_json::Error> {
    if is_plain(text.as_bytes()) {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, text)
    }
}

/// Whether no byte of `bytes` needs escaping in JSON (a control character,
/// `"` or `\\`): eight bytes at a time, with the classic "has a zero byte"
/// and "has a byte less than n" word tricks.
fn is_plain(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
    let (words, rest) = bytes.as_chunks::<8>();
    let words_plain = words.iter().all(|word| {
        let word = u64::from_le_bytes(*word);
        let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        (below_space
            | has_zero(word ^ (ONES * u64::from(b'"')))
            | has_zero(word ^ (ONES * u64::from(b'\\'))))
            == 0
    });
    words_plain
        && rest
            .iter()
            .all(|&byte| byte >= 0x20 && byte != b'"' && byte != b'\\')
}

fn write_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn write_opt_int(out: &mut Vec<u8>, value: Option<u64>) {
    match value {
        Some(value) => write_int(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

/// Reads a record from its envelope, checking format and checksum.
pub fn decode(bytes: &[u8]) -> Result<InstanceRecord, DecodeError> {
    let envelope: EnvelopeIn<'_> =
        serde_json::from_slice(bytes).map_err(|error| DecodeError::Envelope(error.to_string()))?;
    if envelope.format != FORMAT {
        return Err(DecodeError::Format(envelope.format));
    }
    let computed = checksum_like(&envelope.checksum, envelope.record.get().as_bytes());
    if computed != envelope.checksum {
        return Err(DecodeError::Checksum {
            stored: envelope.checksum,
            computed,
        });
    }
    serde_json::from_str(envelope.record.get())
        .map_err(|error| DecodeError::Record(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InstanceRecord {
        let mut record = InstanceRecord {
            workflow: "place_order".into(),
            id: "order-42".into(),
            fingerprint: format_fingerprint(0x0123_4567_89ab_cdef),
            version: 1,
            phase: Phase::Running,
            state_name: "ChargePayment1".into(),
            state: RawJson::from_value(
                &serde_json::json!({"ChargePayment1": {"order": {"id": 42}, "reservation": "R-1"}}),
            ),
            compensation_stack: vec![CompensationEntry {
                step: "reserve_inventory".into(),
                args: RawJson::from_value(&serde_json::json!([{"id": 42}])),
                output: RawJson::from_value(&serde_json::json!("R-1")),
                child: None,
            }],
            pivot_passed: false,
            attempt: 1,
            next_run_at: None,
            cancel_requested: false,
            lease: Lease {
                owner: Some("worker-1".into()),
                expires_at: Some(1_700_000_030_000),
                epoch: 1,
            },
            heartbeat: None,
            output: None,
            failure: None,
            last_error: None,
            history: VecDeque::new(),
            transitions: 1,
            committed_at: 1_700_000_000_500,
            awaiting_signal: None,
            inbox: BTreeMap::new(),
            signal_seq: 0,
            parent: None,
            awaiting_child: None,
            status: None,
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_500,
        };
        record.push_event(HistoryEvent::new(1_700_000_000_000, EventKind::Created));
        record.push_event(HistoryEvent {
            state: Some("ReserveInventory0".into()),
            step: Some("reserve_inventory".into()),
            attempt: Some(1),
            ..HistoryEvent::new(1_700_000_000_100, EventKind::StepStarted)
        });
        record.push_event(HistoryEvent {
            state: Some("ReserveInventory0".into()),
            step: Some("reserve_inventory".into()),
            attempt: Some(1),
            ..HistoryEvent::new(1_700_000_000_500, EventKind::StepSucceeded)
        });
        record
    }

    #[test]
    fn a_cached_history_encodes_what_a_fresh_one_does() {
        let mut cache = HistoryCache::default();
        let mut record = rich();
        let check = |record: &InstanceRecord, cache: &mut HistoryCache| {
            assert_eq!(
                encode_with(record, cache).expect("encodes"),
                encode(record).expect("encodes")
            );
        };
        check(&record, &mut cache);
        // Events appended, then the oldest ones dropped past the limit.
        for at in 0..(2 * HISTORY_LIMIT as u64) {
            record.push_event(HistoryEvent {
                state: Some(Cow::Borrowed("Charge1")),
                attempt: Some(1),
                ..HistoryEvent::new(at, EventKind::StepStarted)
            });
            check(&record, &mut cache);
        }
        // An event changed in the middle, one removed, the history emptied.
        record.history[10].attempt = Some(7);
        check(&record, &mut cache);
        record.history.remove(20);
        check(&record, &mut cache);
        // Another record altogether, then back.
        check(&sample(), &mut cache);
        check(&record, &mut cache);
        record.history.clear();
        check(&record, &mut cache);
    }

    #[test]
    fn round_trips() {
        let record = sample();
        let bytes = encode(&record).expect("encodes");
        assert_eq!(decode(&bytes), Ok(record));
    }

    /// Every field set, strings that need escaping, every event kind.
    fn rich() -> InstanceRecord {
        let mut record = sample();
        record.id = "order \"42\"\\ \u{1}\n\t é".into();
        record.pivot_passed = true;
        record.next_run_at = Some(7);
        record.cancel_requested = true;
        record.heartbeat = Some(Heartbeat {
            state: "Charge1".into(),
            attempt: 2,
            at: 5,
            details: serde_json::json!({"done": 3}),
        });
        record.output = Some(serde_json::json!({
            "receipt": [1, 2.5, null, "\u{7f}"],
            "numbers": [-5, u64::MAX, i64::MIN, 1e-7, 1e300, -0.0, 0.1],
            "key \"quoted\"\n": {"é": [true, false, [], {}], "": "\u{1f600}"},
        }));
        record.state = RawJson::from_value(
            &serde_json::json!({"Charge1": {"order": {"id": -42, "tags": ["a\\b"]}}}),
        );
        record.failure = Some(Failure {
            message: "boom\r".into(),
            step: Some("charge".into()),
        });
        record.last_error = Some("timed out \u{8}\u{c}".into());
        record.awaiting_signal = Some("approval".into());
        record.push_signal("approval", serde_json::json!(true), 9);
        record.status = Some(serde_json::json!("half way"));
        record.parent = Some("parent \"1\"".into());
        record.awaiting_child = Some("child-1".into());
        record.compensation_stack.push(CompensationEntry {
            step: "child_flow".into(),
            args: RawJson::null(),
            output: RawJson::null(),
            child: Some("child-1".into()),
        });
        record.lease = Lease::default();
        let kinds = [
            EventKind::Created,
            EventKind::StepStarted,
            EventKind::StepSucceeded,
            EventKind::StepRetried,
            EventKind::StepFailed,
            EventKind::CancelRequested,
            EventKind::Compensating,
            EventKind::Compensated,
            EventKind::CompensationRetried,
            EventKind::CompensationFailed,
            EventKind::Completed,
            EventKind::RolledBack,
            EventKind::Failed,
            EventKind::TimerStarted,
            EventKind::TimerFired,
            EventKind::SignalAwaited,
            EventKind::SignalReceived,
            EventKind::SignalTimedOut,
            EventKind::ChildStarted,
            EventKind::ChildEnded,
            EventKind::ChildCompensating,
            EventKind::ChildCompensated,
        ];
        for (at, kind) in kinds.into_iter().enumerate() {
            record.push_event(HistoryEvent {
                error: Some(format!("error \"{at}\"")),
                attempt: Some(u32::MAX),
                ..HistoryEvent::new(u64::MAX - at as u64, kind)
            });
        }
        record
    }

    #[test]
    fn the_hand_written_encoder_writes_what_serde_writes() {
        for record in [sample(), rich(), InstanceRecord::empty()] {
            let mut ours = Vec::new();
            write_record(&mut ours, &record, None).expect("encodes");
            let serde = serde_json::to_vec(&record).expect("encodes");
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&serde)
            );
        }
        let record = rich();
        assert_eq!(decode(&encode(&record).expect("encodes")), Ok(record));
    }

    #[test]
    fn plain_strings_are_told_from_those_that_need_escaping() {
        let simple = |bytes: &[u8]| {
            bytes
                .iter()
                .all(|&byte| byte >= 0x20 && byte != b'"' && byte != b'\\')
        };
        for byte in 0..=u8::MAX {
            for at in 0..19 {
                let mut bytes = b"order-42 step \xc3\xa9 ok".to_vec();
                bytes[at] = byte;
                assert_eq!(is_plain(&bytes), simple(&bytes), "byte {byte:#x} at {at}");
            }
        }
    }

    #[test]
    fn record_json_is_stable() {
        let bytes = encode(&sample()).expect("encodes");
        let text = String::from_utf8(bytes).expect("utf-8");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn detects_a_changed_byte() {
        let bytes = encode(&sample()).expect("encodes");
        let text = String::from_utf8(bytes)
            .expect("utf-8")
            .replace("\"attempt\":1,", "\"attempt\":2,");
        assert!(matches!(
            decode(text.as_bytes()),
            Err(DecodeError::Checksum { .. })
        ));
    }

    #[test]
    fn reads_records_checksummed_with_fnv1a() {
        // An envelope as the first releases wrote it.
        let body =
            String::from_utf8(serde_json::to_vec(&sample()).expect("encodes")).expect("utf-8");
        let envelope = format!(
            r#"{{"format":1,"checksum":"{}","record":{body}}}"#,
            checksum_like(FNV1A, body.as_bytes())
        );
        assert!(envelope.contains("\"checksum\":\"fnv1a64:"));
        assert_eq!(decode(envelope.as_bytes()), Ok(sample()));
        let changed = envelope.replace("\"attempt\":1,", "\"attempt\":2,");
        assert!(matches!(
            decode(changed.as_bytes()),
            Err(DecodeError::Checksum { stored, .. }) if stored.starts_with(FNV1A)
        ));
    }

    #[test]
    fn reads_records_that_spell_out_fields_at_their_default() {
        // `sample()` as the releases before this one wrote it, with
        // `"pivot_passed":false`, `"next_run_at":null` and the like.
        let old = r#"{"format":1,"checksum":"xxh3-64:992a223b9b12cb5c","record":{"workflow":"place_order","id":"order-42","fingerprint":"0123456789abcdef","phase":"Running","state_name":"ChargePayment1","state":{"ChargePayment1":{"order":{"id":42},"reservation":"R-1"}},"compensation_stack":[{"step":"reserve_inventory","args":[{"id":42}],"output":"R-1"}],"pivot_passed":false,"attempt":1,"next_run_at":null,"cancel_requested":false,"lease":{"owner":"worker-1","expires_at":1700000030000,"epoch":1},"output":null,"failure":null,"last_error":null,"history":[{"at":1700000000000,"kind":"created"},{"at":1700000000100,"kind":"step_started","state":"ReserveInventory0","step":"reserve_inventory","attempt":1},{"at":1700000000500,"kind":"step_succeeded","state":"ReserveInventory0","step":"reserve_inventory","attempt":1}],"transitions":1,"committed_at":1700000000500,"created_at":1700000000000,"updated_at":1700000000500}}"#;
        assert!(old.contains("\"next_run_at\":null"));
        assert_eq!(decode(old.as_bytes()), Ok(sample()));
    }

    #[test]
    fn rejects_garbage_and_other_formats() {
        assert!(matches!(
            decode(b"\x00\xffnot json"),
            Err(DecodeError::Envelope(_))
        ));
        assert!(matches!(
            decode(b"{\"format\":1}"),
            Err(DecodeError::Envelope(_))
        ));
        let other = br#"{"format":2,"checksum":"x","record":{}}"#;
        assert_eq!(decode(other), Err(DecodeError::Format(2)));
    }

    #[test]
    fn rejects_a_valid_checksum_over_wrong_fields() {
        let body = r#"{"workflow":"w"}"#;
        let envelope = format!(
            r#"{{"format":1,"checksum":"{}","record":{body}}}"#,
            checksum(body.as_bytes())
        );
        assert!(matches!(
            decode(envelope.as_bytes()),
            Err(DecodeError::Record(_))
        ));
    }

    #[test]
    fn a_waiting_signal_makes_the_instance_due() {
        let mut record = sample();
        record.phase = Phase::Waiting;
        record.awaiting_signal = Some("approval".into());
        assert!(!record.is_due(0), "no signal, no timeout: not due");
        record.next_run_at = Some(10);
        assert!(!record.is_due(9));
        assert!(record.is_due(10), "the timeout passed");
        record.next_run_at = None;
        record.push_signal("other", serde_json::json!(1), 5);
        assert!(!record.is_due(6), "another name does not wake it");
        record.push_signal("approval", serde_json::json!(true), 5);
        assert!(record.is_due(6));
        assert_eq!(record.next_signal("approval").map(|m| m.seq), Some(1));
        record.remove_signal("approval", 1);
        assert!(!record.has_signal("approval"));
        assert_eq!(record.signal_seq, 2);
    }

    #[test]
    fn merged_signals_are_neither_lost_nor_doubled() {
        let mut base = sample();
        base.push_signal("s", serde_json::json!("a"), 1);
        // The holder consumes `a` while a sender records `b`.
        let mut holder = base.clone();
        holder.remove_signal("s", 0);
        let mut fresh = base.clone();
        fresh.push_signal("s", serde_json::json!("b"), 2);
        holder.merge_signals(&fresh);
        let values: Vec<_> = holder.inbox["s"].iter().map(|m| m.value.clone()).collect();
        assert_eq!(values, vec![serde_json::json!("b")]);
        assert_eq!(holder.signal_seq, 2);
        // Merging the same record again adds nothing.
        holder.merge_signals(&fresh);
        assert_eq!(holder.inbox["s"].len(), 1);
    }

    #[test]
    fn history_is_bounded() {
        let mut record = sample();
        for at in 0..(HISTORY_LIMIT as u64 * 2) {
            record.push_event(HistoryEvent::new(at, EventKind::StepRetried));
        }
        assert_eq!(record.history.len(), HISTORY_LIMIT);
        assert_eq!(
            record.history.back().map(|event| event.at),
            Some(HISTORY_LIMIT as u64 * 2 - 1)
        );
    }

    #[test]
    fn due_keys_sort_by_time_and_parse_back() {
        let early = due_key(999, "a/b");
        let late = due_key(1_000, "a");
        assert!(early < late);
        assert_eq!(early, "due/00000000000000000999/a/b");
        assert_eq!(parse_due_key(&early), Some((999, "a/b")));
        assert_eq!(parse_due_key("due/12/x"), None);
        assert_eq!(parse_due_key("instances/x"), None);
    }

    #[test]
    fn leases_are_live_until_they_expire() {
        let lease = Lease {
            owner: Some("w".into()),
            expires_at: Some(100),
            epoch: 3,
        };
        assert!(lease.is_live(99));
        assert!(!lease.is_live(100));
        assert!(lease.is_held_by("w", 3));
        assert!(!lease.is_held_by("w", 2));
        assert!(!Lease::default().is_live(0));
    }

    #[test]
    fn fingerprints_are_sixteen_hex_digits() {
        assert_eq!(format_fingerprint(0xab), "00000000000000ab");
        assert_eq!(parse_fingerprint("00000000000000ab"), Some(0xab));
        assert_eq!(parse_fingerprint("ab"), None);
        assert_eq!(parse_fingerprint("zz000000000000ab"), None);
    }
}
