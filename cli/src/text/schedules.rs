//! The pages of `sagaflow schedule list` and `schedule show`, and the
//! words for a schedule's actions that the web view shares.

use std::fmt::Write as _;

use sagaflow::schedule::{
    ActionKind, ScheduleAction, ScheduleRecord, ScheduleRequest, format_time,
};
use sagaflow::{ScheduleDescription, ScheduleError};

use super::format::{Cell, Style, age, table};

/// `active`, or `paused: NOTE`.
pub(crate) fn schedule_state(schedule: &ScheduleRecord) -> String {
    match (schedule.paused, &schedule.note) {
        (false, _) => "active".to_owned(),
        (true, Some(note)) => format!("paused: {note}"),
        (true, None) => "paused".to_owned(),
    }
}

/// A tick's time as its instance id writes it.
pub(crate) fn tick_time(schedule: &ScheduleRecord, tick: u64) -> String {
    schedule.format_tick(tick)
}

/// `workflow`, or `workflow v2` when the schedule pins a version.
pub(crate) fn schedule_workflow(schedule: &ScheduleRecord) -> String {
    match schedule.version {
        Some(version) => format!("{} v{version}", schedule.workflow),
        None => schedule.workflow.clone(),
    }
}

/// One action, in words.
pub(crate) fn action_text(schedule: &ScheduleRecord, action: &ScheduleAction) -> String {
    let at = |tick: u64| tick_time(schedule, tick);
    match &action.kind {
        ActionKind::Created => "created".to_owned(),
        ActionKind::Started { id, cause, .. } => format!("started {id} ({})", cause.as_str()),
        ActionKind::Skipped { tick, reason } => {
            format!("skipped the tick of {}: {reason}", at(*tick))
        }
        ActionKind::Buffered { tick } => {
            format!(
                "the tick of {} waits for the running instance to end",
                at(*tick)
            )
        }
        ActionKind::Cancelled { ids } => format!("asked {} to cancel", ids.join(", ")),
        ActionKind::Missed { first, last, count } => format!(
            "missed {} from {} to {} (older than the catch-up window)",
            count.map_or_else(|| "ticks".to_owned(), |n| plural(n, "tick")),
            at(*first),
            at(*last)
        ),
        ActionKind::CaughtUp {
            first,
            fired,
            count,
        } => format!(
            "catch-up `last`: dropped {} from {}, fired {}",
            count.map_or_else(|| "the ticks".to_owned(), |n| plural(n, "tick")),
            at(*first),
            at(*fired)
        ),
        ActionKind::Failed { id, error } => format!("could not start {id}: {error}"),
        ActionKind::Paused { note } => match note {
            Some(note) => format!("paused: {note}"),
            None => "paused".to_owned(),
        },
        ActionKind::Unpaused { note } => match note {
            Some(note) => format!("unpaused: {note}"),
            None => "unpaused".to_owned(),
        },
        ActionKind::TriggerRequested { tick } => format!("trigger asked, for {}", at(*tick)),
        ActionKind::BackfillRequested { from, to } => {
            format!("backfill asked, from {} to {}", at(*from), at(*to))
        }
        other => format!("{other:?}"),
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// What waits for a scheduler: triggers and backfills, in words.
pub(crate) fn request_text(schedule: &ScheduleRecord, request: &ScheduleRequest) -> String {
    match request {
        ScheduleRequest::Trigger { tick, overlap } => format!(
            "trigger for {}{}",
            tick_time(schedule, *tick),
            overlap.map_or_else(String::new, |overlap| format!(" ({overlap})"))
        ),
        ScheduleRequest::Backfill {
            to, next, overlap, ..
        } => format!(
            "backfill from {} to {} ({overlap})",
            tick_time(schedule, *next),
            tick_time(schedule, *to)
        ),
    }
}

/// `sagaflow schedule list`.
pub(crate) fn schedule_list(
    style: Style,
    schedules: &[Result<ScheduleDescription, ScheduleError>],
    now: u64,
) -> String {
    if schedules.is_empty() {
        return "no schedules in this store (a program creates them with \
                `rt.schedules().create(..)`)\n"
            .to_owned();
    }
    let mut rows = Vec::new();
    let mut broken = Vec::new();
    for described in schedules {
        let described = match described {
            Ok(described) => described,
            Err(error) => {
                broken.push(error.to_string());
                continue;
            }
        };
        let schedule = &described.schedule;
        let next = described.next_fire_times.first().map_or_else(
            || "-".to_owned(),
            |at| format!("{} ({})", format_time(*at, 1000), age(*at, now)),
        );
        let state = schedule_state(schedule);
        rows.push(vec![
            Cell::plain(schedule.name.clone()),
            Cell::plain(schedule_workflow(schedule)),
            Cell::plain(schedule.spec.describe()),
            if schedule.paused {
                Cell::painted(state, "33")
            } else {
                Cell::plain(state)
            },
            Cell::plain(next),
            Cell::plain(
                schedule
                    .last_tick
                    .map_or_else(|| "-".to_owned(), |tick| tick_time(schedule, tick)),
            ),
            Cell::plain(schedule.counts.started.to_string()),
            Cell::plain(schedule.counts.skipped.to_string()),
        ]);
    }
    let mut out = table(
        style,
        &[
            "NAME",
            "WORKFLOW",
            "SPEC",
            "STATE",
            "NEXT FIRE",
            "LAST TICK",
            "STARTED",
            "SKIPPED",
        ],
        &rows,
    );
    for error in broken {
        let _ = writeln!(out, "{error}");
    }
    out
}

/// `sagaflow schedule show NAME`.
pub(crate) fn schedule_show(style: Style, described: &ScheduleDescription, now: u64) -> String {
    let schedule = &described.schedule;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!("schedule {}", schedule.name))
    );
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "  {label:<12}{value}");
    };
    line(
        "workflow",
        match schedule.version {
            Some(version) => format!("{} (version {version})", schedule.workflow),
            None => format!("{} (its newest version)", schedule.workflow),
        },
    );
    line("spec", schedule.spec.describe());
    line("state", schedule_state(schedule));
    line(
        "policies",
        format!(
            "overlap {}, catch-up {} within {}",
            schedule.overlap,
            match schedule.catch_up {
                sagaflow::CatchUp::All => "all",
                sagaflow::CatchUp::Last => "last",
            },
            humantime::format_duration(std::time::Duration::from_millis(
                schedule.catch_up_window_ms
            ))
        ),
    );
    if described.next_fire_times.is_empty() {
        line("next fires", "-".to_owned());
    }
    for (index, at) in described.next_fire_times.iter().enumerate() {
        line(
            if index == 0 { "next fires" } else { "" },
            format!("{} ({})", format_time(*at, 1000), age(*at, now)),
        );
    }
    line(
        "last tick",
        schedule
            .last_tick
            .map_or_else(|| "-".to_owned(), |tick| tick_time(schedule, tick)),
    );
    line(
        "running",
        if schedule.running.is_empty() {
            "-".to_owned()
        } else {
            schedule.running.join(", ")
        },
    );
    if let Some(waiting) = &schedule.buffered {
        line(
            "waiting",
            format!("{} (starts when the running instance ends)", waiting.id),
        );
    }
    for start in &schedule.starting {
        line(
            "starting",
            format!("{} (decided, not yet confirmed)", start.fire.id),
        );
    }
    for request in &schedule.requests {
        line("asked", request_text(schedule, request));
    }
    line(
        "counts",
        format!(
            "{} started, {} skipped, {} missed, {} failed",
            schedule.counts.started,
            schedule.counts.skipped,
            schedule.counts.missed,
            schedule.counts.failed
        ),
    );
    line("input", schedule.input.to_string());
    line(
        "created",
        format!(
            "{} ({})",
            format_time(schedule.created_at, 1000),
            age(schedule.created_at, now)
        ),
    );
    if !schedule.recent.is_empty() {
        let _ = writeln!(out, "\n{}", style.bold("recent actions"));
        for action in &schedule.recent {
            let _ = writeln!(
                out,
                "  {}  {}",
                format_time(action.at, 1),
                action_text(schedule, action)
            );
        }
    }
    out
}
