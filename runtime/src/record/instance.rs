//! [`InstanceRecord`]: everything the runtime knows about one instance,
//! and the rules over it (a bounded history, when it is due, its signal
//! inbox), with the fingerprint's written form. Apart from its parts
//! (`parts.rs`) and from how it is written (`envelope.rs`, `write.rs`).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::parts::{
    CompensationEntry, Failure, Heartbeat, HistoryEvent, Lease, Phase, SignalMessage,
};
use super::raw::RawJson;

/// Events kept in a record's history; older ones are dropped first.
pub const HISTORY_LIMIT: usize = 64;

/// How many delivery keys of keyed signals a record remembers: a sender
/// that runs again after a crash repeats its send long before this many
/// other keyed signals reach the same instance.
pub const SIGNAL_KEYS_KEPT: usize = 256;

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
    /// The delivery keys of the signals sent with one (by
    /// `sagaflow::send_signal`, whose key is its step's idempotency key),
    /// the newest [`SIGNAL_KEYS_KEPT`]: a send with a key in this list is a
    /// repeat of a delivered one (the sender ran again after a crash) and is
    /// not recorded again.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    pub signal_keys: VecDeque<String>,
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
            signal_keys: VecDeque::new(),
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

    /// Whether a signal with delivery key `key` was recorded (among the
    /// newest [`SIGNAL_KEYS_KEPT`] keys).
    pub fn has_signal_key(&self, key: &str) -> bool {
        self.signal_keys.iter().any(|known| known == key)
    }

    /// Appends a signal to the inbox, as [`push_signal`](Self::push_signal),
    /// and remembers its delivery key.
    pub fn push_keyed_signal(&mut self, name: &str, value: serde_json::Value, at: u64, key: &str) {
        self.push_signal(name, value, at);
        if self.signal_keys.len() >= SIGNAL_KEYS_KEPT {
            self.signal_keys.pop_front();
        }
        self.signal_keys.push_back(key.to_owned());
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
        // Only senders add keys, with their signals: the fresher list holds
        // every key this one does.
        self.signal_keys.clone_from(&fresh.signal_keys);
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::sample;
    use super::super::parts::EventKind;
    use super::*;

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
    fn fingerprints_are_sixteen_hex_digits() {
        assert_eq!(format_fingerprint(0xab), "00000000000000ab");
        assert_eq!(parse_fingerprint("00000000000000ab"), Some(0xab));
        assert_eq!(parse_fingerprint("ab"), None);
        assert_eq!(parse_fingerprint("zz000000000000ab"), None);
    }
}
