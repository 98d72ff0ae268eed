//! The decisions on records, by value: which ticks fire, are missed or
//! dropped, and what each overlap policy does.

use std::collections::HashSet;
use std::time::Duration;

use super::decide::{self, Started, plan};
use super::stored::{ActionKind, FireCause, ScheduleCounts, ScheduleRecord, ScheduleRequest};
use super::{CatchUp, Overlap, ScheduleSpec};

const MINUTE: u64 = 60_000;

fn record(overlap: Overlap, catch_up: CatchUp, window: u64) -> ScheduleRecord {
    ScheduleRecord {
        format: 1,
        name: "report".into(),
        spec: ScheduleSpec::every(Duration::from_secs(60)),
        workflow: "report".into(),
        version: None,
        input: serde_json::Value::Null,
        overlap,
        catch_up,
        catch_up_window_ms: window,
        paused: false,
        note: None,
        created_at: 0,
        updated_at: 0,
        next_tick: Some(MINUTE),
        last_tick: None,
        running: Vec::new(),
        buffered: None,
        starting: Vec::new(),
        requests: Vec::new(),
        counts: ScheduleCounts::default(),
        recent: Default::default(),
    }
}

fn ids(plan: &decide::Plan) -> Vec<&str> {
    plan.starts
        .iter()
        .map(|start| start.fire.id.as_str())
        .collect()
}

#[test]
fn a_due_tick_starts_once_and_the_next_is_not_due() {
    let mut schedule = record(Overlap::Skip, CatchUp::All, 10 * MINUTE);
    let ticks = schedule.spec.ticks().unwrap();
    let decided = plan(&mut schedule, &ticks, MINUTE + 5, None);
    assert_eq!(ids(&decided), ["report/1970-01-01T00:01:00Z"]);
    assert_eq!(schedule.next_tick, Some(2 * MINUTE));
    assert_eq!(schedule.running, ["report/1970-01-01T00:01:00Z"]);
    // Nothing more before the next tick.
    assert!(!decide::has_work(&schedule, 2 * MINUTE - 1));
    let confirmed = decide::confirm(
        &mut schedule,
        &[("report/1970-01-01T00:01:00Z".into(), Started::Done)],
        MINUTE + 6,
    );
    assert!(confirmed);
    assert!(schedule.starting.is_empty());
    assert_eq!(schedule.counts.started, 1);
}

#[test]
fn missed_ticks_beyond_the_window_are_dropped_and_counted() {
    let mut all = record(Overlap::AllowAll, CatchUp::All, 3 * MINUTE);
    let ticks = all.spec.ticks().unwrap();
    // Down from 0:01 to 0:10: ticks 1..=6 are older than 3 min, 7..=10 fire.
    let decided = plan(&mut all, &ticks, 10 * MINUTE, None);
    assert_eq!(
        ids(&decided),
        [
            "report/1970-01-01T00:07:00Z",
            "report/1970-01-01T00:08:00Z",
            "report/1970-01-01T00:09:00Z",
            "report/1970-01-01T00:10:00Z"
        ]
    );
    assert_eq!(all.counts.missed, 6);
    assert!(all.recent.iter().any(|action| action.kind
        == ActionKind::Missed {
            first: MINUTE,
            last: 6 * MINUTE,
            count: Some(6)
        }));

    let mut last = record(Overlap::AllowAll, CatchUp::Last, 3 * MINUTE);
    let decided = plan(&mut last, &ticks, 10 * MINUTE, None);
    assert_eq!(ids(&decided), ["report/1970-01-01T00:10:00Z"]);
    assert_eq!((last.counts.missed, last.counts.skipped), (6, 3));
    assert_eq!(last.next_tick, Some(11 * MINUTE));
}

#[test]
fn skip_buffer_and_cancel_while_one_runs() {
    let ticks = ScheduleSpec::every(Duration::from_secs(60))
        .ticks()
        .unwrap();
    let running = "report/1970-01-01T00:00:00Z".to_owned();
    let alive: HashSet<String> = [running.clone()].into();

    let mut skip = record(Overlap::Skip, CatchUp::All, 10 * MINUTE);
    skip.running = vec![running.clone()];
    let decided = plan(&mut skip, &ticks, MINUTE, Some(&alive));
    assert!(decided.starts.is_empty());
    assert_eq!(skip.counts.skipped, 1);

    let mut buffer = record(Overlap::BufferOne, CatchUp::All, 10 * MINUTE);
    buffer.running = vec![running.clone()];
    let decided = plan(&mut buffer, &ticks, 3 * MINUTE, Some(&alive));
    assert!(decided.starts.is_empty());
    assert_eq!(buffer.buffered.as_ref().map(|fire| fire.tick), Some(MINUTE));
    assert_eq!(buffer.counts.skipped, 2, "ticks 2 and 3 while one waits");
    // The running one ended: the buffered tick starts.
    let decided = plan(&mut buffer, &ticks, 3 * MINUTE + 1, Some(&HashSet::new()));
    assert_eq!(ids(&decided), ["report/1970-01-01T00:01:00Z"]);
    assert!(buffer.buffered.is_none());

    let mut cancel = record(Overlap::CancelOther, CatchUp::All, 10 * MINUTE);
    cancel.running = vec![running.clone()];
    let decided = plan(&mut cancel, &ticks, MINUTE, Some(&alive));
    assert_eq!(decided.cancels, vec![running.clone()]);
    assert!(decided.starts.is_empty());
    assert_eq!(cancel.buffered.as_ref().map(|fire| fire.tick), Some(MINUTE));

    let mut allow = record(Overlap::AllowAll, CatchUp::All, 10 * MINUTE);
    allow.running = vec![running];
    let decided = plan(&mut allow, &ticks, MINUTE, None);
    assert_eq!(ids(&decided), ["report/1970-01-01T00:01:00Z"]);
}

#[test]
fn paused_schedules_fire_only_requests() {
    let mut schedule = record(Overlap::Skip, CatchUp::All, 10 * MINUTE);
    schedule.paused = true;
    schedule.requests.push(ScheduleRequest::Trigger {
        tick: 90_000,
        overlap: None,
    });
    let ticks = schedule.spec.ticks().unwrap();
    let decided = plan(&mut schedule, &ticks, 5 * MINUTE, None);
    assert_eq!(ids(&decided), ["report/1970-01-01T00:01:30Z"]);
    assert_eq!(decided.starts[0].fire.cause, FireCause::Trigger);
    assert_eq!(schedule.next_tick, Some(MINUTE), "ticks held while paused");
}

#[test]
fn a_backfill_fires_its_range_in_chunks() {
    let mut schedule = record(Overlap::Skip, CatchUp::All, 10 * MINUTE);
    schedule.next_tick = Some(1_000 * MINUTE);
    schedule.requests.push(ScheduleRequest::Backfill {
        from: 0,
        to: 150 * MINUTE,
        next: 0,
        overlap: Overlap::AllowAll,
    });
    let ticks = schedule.spec.ticks().unwrap();
    let first = plan(&mut schedule, &ticks, 500 * MINUTE, None);
    assert_eq!(first.starts.len(), decide::FIRES_PER_PASS);
    assert!(first.more);
    assert_eq!(first.starts[0].fire.tick, MINUTE);
    let second = plan(&mut schedule, &ticks, 500 * MINUTE, None);
    assert_eq!(second.starts.len(), 49);
    assert_eq!(second.starts[48].fire.tick, 149 * MINUTE);
    assert!(schedule.requests.is_empty());
}

#[test]
fn a_refused_start_is_recorded_and_leaves_the_running_list() {
    let mut schedule = record(Overlap::Skip, CatchUp::All, 10 * MINUTE);
    let ticks = schedule.spec.ticks().unwrap();
    let decided = plan(&mut schedule, &ticks, MINUTE, None);
    let id = decided.starts[0].fire.id.clone();
    decide::confirm(
        &mut schedule,
        &[(id.clone(), Started::Refused("bad input".into()))],
        MINUTE,
    );
    assert!(schedule.running.is_empty());
    assert_eq!(schedule.counts.failed, 1);
    assert!(matches!(
        schedule.recent.back().map(|action| &action.kind),
        Some(ActionKind::Failed { id: failed, error }) if failed == &id && error == "bad input"
    ));
}

#[test]
fn a_buffered_tick_with_nothing_left_running_starts_without_a_look() {
    let mut schedule = record(Overlap::BufferOne, CatchUp::All, 10 * MINUTE);
    schedule.next_tick = Some(10 * MINUTE);
    schedule.buffered = Some(super::stored::Fire {
        tick: MINUTE,
        id: "report/1970-01-01T00:01:00Z".into(),
        cause: FireCause::Schedule,
    });
    let ticks = schedule.spec.ticks().unwrap();
    assert!(!decide::needs_phases(&schedule));
    let decided = plan(&mut schedule, &ticks, 2 * MINUTE, None);
    assert_eq!(ids(&decided), ["report/1970-01-01T00:01:00Z"]);
    assert!(schedule.buffered.is_none());
}
