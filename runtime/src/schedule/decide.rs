//! The scheduler's decisions, as functions of a record and the time: which
//! ticks are due, missed or dropped, what the overlap policy makes of each,
//! and what a confirmed start changes. No I/O here: the scheduler reads the
//! record and the running instances' phases, calls [`plan`], writes the
//! record by compare-and-swap, then makes the starts and cancels.

use std::collections::HashSet;

use super::policy::{CatchUp, Overlap};
use super::spec::{Ticks, instance_id, jitter_of};
use super::stored::{
    ActionKind, Fire, FireCause, PendingStart, RUNNING_LIMIT, ScheduleRecord, ScheduleRequest,
};

/// The most instances one pass decides to start for one schedule; the rest
/// of a long catch-up or backfill follows in the next pass, at once.
pub(crate) const FIRES_PER_PASS: usize = 100;

/// The most ticks one pass looks at one by one (catch-up beyond it jumps).
const TICKS_PER_PASS: usize = 100_000;

/// The most ticks one backfill may cover.
pub const BACKFILL_LIMIT: usize = 10_000;

/// How long a start decided by one scheduler is left to it before another
/// makes it (the first may have died between its decision and the start).
pub(crate) const START_GRACE_MS: u64 = 5_000;

/// What a pass decided beyond the record's own changes.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Instances to start once the record is written.
    pub(crate) starts: Vec<PendingStart>,
    /// Instances to cancel once the record is written ([`Overlap::CancelOther`]).
    pub(crate) cancels: Vec<String>,
    /// Whether the record changed.
    pub(crate) changed: bool,
    /// Whether more is due than one pass decides: pass again at once.
    pub(crate) more: bool,
}

/// How a start went, for [`confirm`].
#[derive(Debug)]
pub(crate) enum Started {
    /// The instance exists (started now or before).
    Done,
    /// The runtime refused it for good (the error's text).
    Refused(String),
    /// It failed in a way a later attempt may not (the store).
    Retry,
}

/// When tick `tick` of `record` fires: the tick plus its jitter.
pub(crate) fn fire_time(record: &ScheduleRecord, tick: u64) -> u64 {
    tick.saturating_add(jitter_of(&record.name, tick, record.spec.jitter_ms()))
}

/// Whether `record` has anything to decide at `now`.
pub(crate) fn has_work(record: &ScheduleRecord, now: u64) -> bool {
    !record.requests.is_empty()
        || record.buffered.is_some()
        || (!record.paused
            && record
                .next_tick
                .is_some_and(|tick| fire_time(record, tick) <= now))
}

/// Whether deciding needs to know which of `record.running` still run.
pub(crate) fn needs_phases(record: &ScheduleRecord) -> bool {
    !record.running.is_empty()
        && (record.buffered.is_some()
            || record.overlap != Overlap::AllowAll
            || record.requests.iter().any(|request| match request {
                ScheduleRequest::Trigger { overlap, .. } => {
                    overlap.unwrap_or(record.overlap) != Overlap::AllowAll
                }
                ScheduleRequest::Backfill { overlap, .. } => *overlap != Overlap::AllowAll,
            }))
}

/// When the scheduler should look at `record` again, for what it knows:
/// its next tick's fire time, the grace of another scheduler's pending
/// starts, at once for requests left over.
pub(crate) fn next_wake(record: &ScheduleRecord, now: u64) -> u64 {
    let mut wake = u64::MAX;
    if !record.paused
        && let Some(tick) = record.next_tick
    {
        wake = fire_time(record, tick);
    }
    for pending in &record.starting {
        wake = wake.min(pending.decided_at.saturating_add(START_GRACE_MS));
    }
    if !record.requests.is_empty() {
        wake = now;
    }
    wake
}

/// Decides what `record` does at `now`, changing it in place. `alive`: the
/// ids of `record.running` that still run, when [`needs_phases`] asked
/// for them (`None`: not looked at).
pub(crate) fn plan(
    record: &mut ScheduleRecord,
    ticks: &Ticks,
    now: u64,
    alive: Option<&HashSet<String>>,
) -> Plan {
    let mut plan = Plan::default();
    if let Some(alive) = alive {
        let pending: HashSet<String> = record
            .starting
            .iter()
            .map(|start| start.fire.id.clone())
            .collect();
        let before = record.running.len();
        record
            .running
            .retain(|id| alive.contains(id) || pending.contains(id));
        plan.changed |= record.running.len() != before;
        if !record.running.is_empty()
            && record.buffered.is_some()
            && record.overlap == Overlap::CancelOther
        {
            // Asked again while the tick waits: a scheduler that died
            // between its decision and the cancel leaves none lost.
            plan.cancels = record.running.clone();
        }
    }
    if record.running.is_empty()
        && let Some(waiting) = record.buffered.take()
    {
        start(record, &mut plan, waiting, now);
    }
    if !record.paused {
        regular_ticks(record, ticks, now, &mut plan);
    }
    requests(record, ticks, now, &mut plan);
    if plan.changed {
        record.updated_at = now;
    }
    plan
}

/// The spec's ticks due at `now`: missed beyond the window, dropped by
/// [`CatchUp::Last`], or fired.
fn regular_ticks(record: &mut ScheduleRecord, ticks: &Ticks, now: u64, plan: &mut Plan) {
    let Some(first) = record.next_tick else {
        return;
    };
    if fire_time(record, first) > now {
        return;
    }
    plan.changed = true;
    let jitter = record.spec.jitter_ms();
    let horizon = now.saturating_sub(record.catch_up_window_ms);
    let mut missed = Span::default();
    let mut next = Some(first);
    // Over a long outage, jump past the ticks certainly older than the window.
    if first.saturating_add(jitter) < horizon {
        let resume = ticks.next_after(horizon.saturating_sub(jitter).saturating_sub(1));
        let until = resume.unwrap_or(u64::MAX);
        let last = ticks.last_before(until).unwrap_or(first).max(first);
        missed.add_range(first, last, ticks.count_from_to(first, last));
        next = resume;
    }
    // With `Last`, jump past the ticks certainly due but not the latest.
    let mut dropped = Span::default();
    if record.catch_up == CatchUp::Last
        && let Some(from) = next
        && let Some(certain) = now.checked_sub(jitter)
        && let Some(latest) = ticks.last_before(certain.saturating_add(1))
        && latest > from
    {
        let before_latest = ticks.last_before(latest).unwrap_or(from).max(from);
        dropped.add_range(
            from,
            before_latest,
            ticks.count_from_to(from, before_latest),
        );
        next = Some(latest);
    }
    let mut due = Vec::new();
    let mut looked = 0;
    while let Some(tick) = next {
        if fire_time(record, tick) > now {
            break;
        }
        if looked == TICKS_PER_PASS
            || (record.catch_up == CatchUp::All && due.len() == FIRES_PER_PASS)
        {
            plan.more = true;
            break;
        }
        looked += 1;
        if fire_time(record, tick) < horizon {
            missed.add(tick);
        } else {
            due.push(tick);
        }
        next = ticks.next_after(tick);
    }
    record.next_tick = next;
    if record.catch_up == CatchUp::Last && !due.is_empty() {
        // With more still due (a pass cut short), none of these is the latest.
        let keep = if plan.more { 0 } else { 1 };
        let fired = due.split_off(due.len() - keep);
        for tick in due.drain(..) {
            dropped.add(tick);
        }
        due = fired;
    }
    if let Some(last) = missed.last {
        record.counts.missed = record
            .counts
            .missed
            .saturating_add(missed.count.unwrap_or(1));
        record.last_tick = Some(record.last_tick.map_or(last, |seen| seen.max(last)));
        record.push_action(
            now,
            ActionKind::Missed {
                first: missed.first,
                last,
                count: missed.count,
            },
        );
    }
    if let Some(last) = dropped.last {
        record.counts.skipped = record
            .counts
            .skipped
            .saturating_add(dropped.count.unwrap_or(1));
        record.last_tick = Some(record.last_tick.map_or(last, |seen| seen.max(last)));
        if let Some(&fired) = due.first() {
            record.push_action(
                now,
                ActionKind::CaughtUp {
                    first: dropped.first,
                    fired,
                    count: dropped.count,
                },
            );
        }
    }
    let precision = record.spec.id_precision_ms();
    for tick in due {
        record.last_tick = Some(record.last_tick.map_or(tick, |seen| seen.max(tick)));
        let fire = Fire {
            tick,
            id: instance_id(&record.name, tick, precision),
            cause: FireCause::Schedule,
        };
        let overlap = record.overlap;
        fire_one(record, plan, fire, overlap, now);
    }
}

/// Triggers and backfills, in the order they were asked.
fn requests(record: &mut ScheduleRecord, ticks: &Ticks, now: u64, plan: &mut Plan) {
    if record.requests.is_empty() {
        return;
    }
    plan.changed = true;
    let precision = record.spec.id_precision_ms();
    let mut left = Vec::new();
    for request in std::mem::take(&mut record.requests) {
        if plan.more || plan.starts.len() >= FIRES_PER_PASS {
            plan.more = true;
            left.push(request);
            continue;
        }
        match request {
            ScheduleRequest::Trigger { tick, overlap } => {
                let fire = Fire {
                    tick,
                    id: instance_id(&record.name, tick, precision),
                    cause: FireCause::Trigger,
                };
                let overlap = overlap.unwrap_or(record.overlap);
                fire_one(record, plan, fire, overlap, now);
            }
            ScheduleRequest::Backfill {
                from,
                to,
                next,
                overlap,
            } => {
                let mut tick = ticks.first_at_or_after(next);
                while let Some(at) = tick.filter(|at| *at < to) {
                    if plan.starts.len() >= FIRES_PER_PASS {
                        plan.more = true;
                        break;
                    }
                    let fire = Fire {
                        tick: at,
                        id: instance_id(&record.name, at, precision),
                        cause: FireCause::Backfill,
                    };
                    fire_one(record, plan, fire, overlap, now);
                    tick = ticks.next_after(at);
                }
                if let Some(at) = tick.filter(|at| *at < to) {
                    left.push(ScheduleRequest::Backfill {
                        from,
                        to,
                        next: at,
                        overlap,
                    });
                }
            }
        }
    }
    record.requests = left;
}

/// One tick under `overlap`: starts, waits, or is skipped.
fn fire_one(record: &mut ScheduleRecord, plan: &mut Plan, fire: Fire, overlap: Overlap, now: u64) {
    if record.running.contains(&fire.id)
        || record.buffered.as_ref().is_some_and(|b| b.id == fire.id)
    {
        record.push_action(
            now,
            ActionKind::Skipped {
                tick: fire.tick,
                reason: format!("`{}` was already started", fire.id),
            },
        );
        return;
    }
    if overlap == Overlap::AllowAll || record.running.is_empty() {
        start(record, plan, fire, now);
        return;
    }
    let running = record.running.last().cloned().unwrap_or_default();
    match overlap {
        Overlap::BufferOne if record.buffered.is_none() => {
            record.push_action(now, ActionKind::Buffered { tick: fire.tick });
            record.buffered = Some(fire);
        }
        Overlap::BufferOne => skip(
            record,
            fire.tick,
            format!("`{running}` still runs and a tick already waits for it"),
            now,
        ),
        Overlap::CancelOther => {
            if plan.cancels.is_empty() {
                plan.cancels = record.running.clone();
                record.push_action(
                    now,
                    ActionKind::Cancelled {
                        ids: record.running.clone(),
                    },
                );
            }
            record.push_action(now, ActionKind::Buffered { tick: fire.tick });
            if let Some(replaced) = record.buffered.replace(fire) {
                skip(
                    record,
                    replaced.tick,
                    "replaced by a later tick while it waited".to_owned(),
                    now,
                );
            }
        }
        Overlap::Skip | Overlap::AllowAll => {
            skip(record, fire.tick, format!("`{running}` still runs"), now)
        }
    }
}

fn skip(record: &mut ScheduleRecord, tick: u64, reason: String, now: u64) {
    record.counts.skipped = record.counts.skipped.saturating_add(1);
    record.push_action(now, ActionKind::Skipped { tick, reason });
}

/// Records a start as decided: pending until [`confirm`], and running.
fn start(record: &mut ScheduleRecord, plan: &mut Plan, fire: Fire, now: u64) {
    plan.changed = true;
    record.running.push(fire.id.clone());
    if record.running.len() > RUNNING_LIMIT {
        let pending: HashSet<&str> = record
            .starting
            .iter()
            .map(|start| start.fire.id.as_str())
            .collect();
        let excess = record.running.len() - RUNNING_LIMIT;
        let mut dropped = 0;
        record.running.retain(|id| {
            if dropped < excess && !pending.contains(id.as_str()) {
                dropped += 1;
                false
            } else {
                true
            }
        });
    }
    let pending = PendingStart {
        fire,
        decided_at: now,
    };
    record.starting.push(pending.clone());
    plan.starts.push(pending);
}

/// Records how the starts of `results` went: a done or refused one leaves
/// [`ScheduleRecord::starting`]; one to retry stays. Returns whether the
/// record changed.
pub(crate) fn confirm(
    record: &mut ScheduleRecord,
    results: &[(String, Started)],
    now: u64,
) -> bool {
    let mut changed = false;
    for (id, started) in results {
        let Some(at) = record
            .starting
            .iter()
            .position(|start| &start.fire.id == id)
        else {
            continue;
        };
        match started {
            Started::Retry => {}
            Started::Done => {
                let start = record.starting.remove(at);
                record.counts.started = record.counts.started.saturating_add(1);
                record.push_action(
                    now,
                    ActionKind::Started {
                        tick: start.fire.tick,
                        id: start.fire.id,
                        cause: start.fire.cause,
                    },
                );
                changed = true;
            }
            Started::Refused(error) => {
                let start = record.starting.remove(at);
                record.running.retain(|running| running != &start.fire.id);
                record.counts.failed = record.counts.failed.saturating_add(1);
                record.push_action(
                    now,
                    ActionKind::Failed {
                        id: start.fire.id,
                        error: error.clone(),
                    },
                );
                changed = true;
            }
        }
    }
    if changed {
        record.updated_at = now;
    }
    changed
}

/// A run of ticks: the first, the last, how many (if known).
#[derive(Default)]
struct Span {
    first: u64,
    last: Option<u64>,
    count: Option<u64>,
}

impl Span {
    fn add(&mut self, tick: u64) {
        if self.last.is_none() {
            self.first = tick;
            self.count = Some(0);
        }
        self.last = Some(tick);
        self.count = self.count.map(|count| count + 1);
    }

    /// Ticks `first..=last`, `count` of them if known.
    fn add_range(&mut self, first: u64, last: u64, count: Option<u64>) {
        if self.last.is_none() {
            self.first = first;
            self.count = Some(0);
        }
        self.last = Some(last);
        self.count = match (self.count, count) {
            (Some(have), Some(more)) => Some(have + more),
            _ => None,
        };
    }
}
