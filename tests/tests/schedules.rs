//! Schedules on tokio's paused time: each tick fires exactly once, the
//! overlap and catch-up policies, jitter, pause / unpause / trigger /
//! backfill / delete, typed errors, and a new runtime on the same store
//! going on where the last one stopped without firing a tick twice.
//!
//! Every runtime here reads time from `SystemClock::starting_at(T0)`, a
//! fixed Monday, and tokio's paused clock moves it: `sleep` in the test
//! lets the schedulers run through the time it covers, in no real time.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::record::Phase;
use sagaflow::schedule::{
    ActionKind, ScheduleDescription, format_time, parse_time, scheduled_tick,
};
use sagaflow::{
    CatchUp, Overlap, ScheduleError, ScheduleOptions, ScheduleSpec, Schedules, SystemClock,
};

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;

/// 2025-01-06T00:00:00Z, a Monday.
fn t0() -> u64 {
    parse_time("2025-01-06T00:00:00Z").expect("a time")
}

/// What the steps did: `(kind, instance id)`, in order.
static EFFECTS: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn effect(kind: &str) {
    let id = sagaflow::context().map_or_else(String::new, |context| context.workflow_id);
    EFFECTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push((kind.to_owned(), id));
}

/// The instances of schedule `name` whose step `kind` ran, with how often.
fn ran(kind: &str, name: &str) -> BTreeMap<String, usize> {
    let prefix = format!("{name}/");
    let mut runs = BTreeMap::new();
    for (done, id) in EFFECTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
    {
        if done == kind && id.starts_with(&prefix) {
            *runs.entry(id.clone()).or_insert(0) += 1;
        }
    }
    runs
}

#[step(readonly)]
async fn write_report(title: &str) -> Result<String, StepError> {
    effect("report");
    Ok(format!("{title} done"))
}

/// A job that ends at once.
#[workflow]
async fn report(title: String) -> Result<String, WorkflowError> {
    let done = write_report(&title).await?;
    Ok(done)
}

#[step]
async fn begin_work(minutes: &u64) -> Result<u64, StepError> {
    effect("begin");
    Ok(*minutes)
}

#[compensate(begin_work)]
async fn undo_work(_minutes: &u64, _begun: u64) -> Result<(), StepError> {
    effect("undo");
    Ok(())
}

#[step(readonly)]
async fn finish_work(minutes: &u64) -> Result<u64, StepError> {
    effect("finish");
    Ok(*minutes)
}

/// A job that runs for `minutes` (a durable timer between two steps).
#[workflow]
async fn long_job(minutes: u64) -> Result<u64, WorkflowError> {
    begin_work(&minutes).await?;
    sagaflow::sleep(Duration::from_secs(minutes * 60)).await;
    let done = finish_work(&minutes).await?;
    Ok(done)
}

/// A worker runtime on `store`, its clock at `now`. Its poller and
/// scheduler look every 10 s (besides when something is due): paused time
/// then passes days in a few thousand wake-ups.
async fn runtime_at(store: &MemoryStore, now: u64) -> Runtime {
    Runtime::builder()
        .store(store.clone())
        .register(report)
        .register(long_job)
        .clock(SystemClock::starting_at(now))
        .poll_interval(Duration::from_secs(10))
        .schedule_interval(Duration::from_secs(10))
        .build()
        .await
        .expect("the runtime builds")
}

async fn runtime(store: &MemoryStore) -> Runtime {
    runtime_at(store, t0()).await
}

/// The instances in the store whose id starts with `{name}/`, by id.
async fn instances(rt: &Runtime, name: &str) -> BTreeMap<String, Phase> {
    let page = rt.list(None, 10_000).await.expect("list");
    page.instances
        .into_iter()
        .map(|status| status.expect("a record decodes"))
        .filter(|status| status.id.starts_with(&format!("{name}/")))
        .map(|status| (status.id, status.phase))
        .collect()
}

fn at(ms: u64) -> String {
    format_time(ms, 1000)
}

/// `name/{time}` for each of `ticks`.
fn ids(name: &str, ticks: impl IntoIterator<Item = u64>) -> Vec<String> {
    ticks
        .into_iter()
        .map(|tick| format!("{name}/{}", at(tick)))
        .collect()
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn describe(schedules: &Schedules, name: &str) -> ScheduleDescription {
    schedules.describe(name).await.expect("describe")
}

#[tokio::test(start_paused = true)]
async fn each_tick_of_an_interval_starts_one_instance() {
    let store = MemoryStore::new();
    let rt = runtime(&store).await;
    let created = rt
        .schedules()
        .create(
            "every-minute",
            ScheduleSpec::every(Duration::from_secs(60)),
            report,
            "minutely".to_owned(),
            ScheduleOptions::new(),
        )
        .await
        .expect("create");
    let first_ticks: Vec<u64> = (1..=5).map(|k| t0() + k * MINUTE).collect();
    assert_eq!(created.next_fire_times, first_ticks);

    sleep_ms(10 * MINUTE + 30 * SECOND).await;

    let expected = ids("every-minute", (1..=10).map(|k| t0() + k * MINUTE));
    let ran = ran("report", "every-minute");
    assert_eq!(ran.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(ran.values().all(|&runs| runs == 1), "{ran:?}");
    let stored = instances(&rt, "every-minute").await;
    assert_eq!(stored.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(stored.values().all(|phase| *phase == Phase::Completed));
    // The id names its tick, for the workflow to read.
    assert_eq!(
        scheduled_tick(&expected[0]),
        Some(("every-minute", t0() + MINUTE))
    );

    let described = describe(&rt.schedules(), "every-minute").await;
    assert_eq!(described.schedule.counts.started, 10);
    assert_eq!(described.schedule.last_tick, Some(t0() + 10 * MINUTE));
    assert_eq!(described.next_fire_times[0], t0() + 11 * MINUTE);
    assert!(described.schedule.starting.is_empty());
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_cron_schedule_ticks_in_its_time_zone() {
    let store = MemoryStore::new();
    let rt = runtime(&store).await;
    // 02:00 in Paris is 01:00 UTC in January.
    rt.schedules()
        .create(
            "nightly",
            ScheduleSpec::cron("0 2 * * *").in_zone("Europe/Paris"),
            report,
            "nightly".to_owned(),
            ScheduleOptions::new(),
        )
        .await
        .expect("create");
    let described = describe(&rt.schedules(), "nightly").await;
    let hour = 60 * MINUTE;
    assert_eq!(
        described.next_fire_times[..3],
        [t0() + hour, t0() + 25 * hour, t0() + 49 * hour]
    );
    sleep_ms(3 * 24 * hour).await;
    assert_eq!(
        ran("report", "nightly").keys().cloned().collect::<Vec<_>>(),
        [
            "nightly/2025-01-06T01:00:00Z",
            "nightly/2025-01-07T01:00:00Z",
            "nightly/2025-01-08T01:00:00Z"
        ]
    );
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn skip_starts_nothing_while_the_last_instance_runs() {
    let store = MemoryStore::new();
    let rt = runtime(&store).await;
    // Every 10 minutes, a job of 25: ticks 10 and 20 find 0 running.
    rt.schedules()
        .create(
            "skip",
            ScheduleSpec::every(Duration::from_secs(600)),
            long_job,
            25,
            ScheduleOptions::new().overlap(Overlap::Skip),
        )
        .await
        .expect("create");
    sleep_ms(60 * MINUTE + 30 * SECOND).await;
    // Ticks at 10, 40 start (each ends 25 min later); 20, 30, 50, 60 skip.
    let started = ids("skip", [10, 40].map(|m| t0() + m * MINUTE));
    assert_eq!(
        ran("begin", "skip").keys().cloned().collect::<Vec<_>>(),
        started
    );
    let schedule = describe(&rt.schedules(), "skip").await.schedule;
    assert_eq!(
        (schedule.counts.started, schedule.counts.skipped),
        (2, 4),
        "{:#?}",
        schedule.recent
    );
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn buffer_one_starts_the_waiting_tick_when_the_running_one_ends() {
    let store = MemoryStore::new();
    let rt = runtime(&store).await;
    rt.schedules()
        .create(
            "buffer",
            ScheduleSpec::every(Duration::from_secs(600)),
            long_job,
            25,
            ScheduleOptions::new().overlap(Overlap::BufferOne),
        )
        .await
        .expect("create");
    sleep_ms(40 * MINUTE).await;
    // 0:10 starts (ends 0:35); 0:20 waits; 0:30 is skipped (one waits);
    // 0:20's instance starts when 0:10's ends, at 0:35 (within the
    // scheduler's 10 s interval, when it looks again).
    let begun = ran("begin", "buffer");
    assert_eq!(
        begun.keys().cloned().collect::<Vec<_>>(),
        ids("buffer", [10, 20].map(|m| t0() + m * MINUTE))
    );
    let rt_status = rt
        .status(&ids("buffer", [t0() + 20 * MINUTE])[0])
        .await
        .expect("status")
        .expect("started");
    let started_at = rt_status.created_at;
    assert!(
        (t0() + 35 * MINUTE..=t0() + 35 * MINUTE + 10 * SECOND).contains(&started_at),
        "the buffered tick starts as the running one ends: {}",
        at(started_at)
    );
    let schedule = describe(&rt.schedules(), "buffer").await.schedule;
    assert_eq!(schedule.counts.skipped, 1, "{:#?}", schedule.recent);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn allow_all_starts_every_tick_whatever_runs() {
    let store = MemoryStore::new();
    let rt = runtime(&store).await;
    rt.schedules()
        .create(
            "all",
            ScheduleSpec::every(Duration::from_secs(600)),
            long_job,
            25,
            ScheduleOptions::new().overlap(Overlap::AllowAll),
        )
        .await
        .expect("create");
    sleep_ms(30 * MINUTE + 30 * SECOND).await;
    assert_eq!(
        ran("begin", "all").keys().cloned().collect::<Vec<_>>(),
        ids("all", [10, 20, 30].map(|m| t0() + m * MINUTE))
    );
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn cancel_other_rolls_the_running_one_back_then_starts() {
    let store = MemoryStore::new();
    let rt = runtime(&store).await;
    rt.schedules()
        .create(
            "cancel",
            ScheduleSpec::every(Duration::from_secs(600)),
            long_job,
            25,
            ScheduleOptions::new().overlap(Overlap::CancelOther),
        )
        .await
        .expect("create");
    sleep_ms(25 * MINUTE).await;
    let first = ids("cancel", [t0() + 10 * MINUTE]).remove(0);
    let second = ids("cancel", [t0() + 20 * MINUTE]).remove(0);
    // 0:20 cancelled 0:10's instance (it compensated) and then started.
    assert_eq!(ran("undo", "cancel").keys().collect::<Vec<_>>(), [&first]);
    let phases = instances(&rt, "cancel").await;
    assert_eq!(phases.get(&first), Some(&Phase::Compensated));
    assert_eq!(phases.get(&second), Some(&Phase::Waiting));
    assert_eq!(ran("finish", "cancel").len(), 0);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn after_downtime_catch_up_fires_all_or_the_last_tick_in_the_window() {
    for (policy, name) in [(CatchUp::All, "catch-all"), (CatchUp::Last, "catch-last")] {
        let store = MemoryStore::new();
        let rt = runtime(&store).await;
        rt.schedules()
            .create(
                name,
                ScheduleSpec::every(Duration::from_secs(60)),
                report,
                name.to_owned(),
                // Every due tick may start while another runs: with `Skip`,
                // the first late one would skip the others.
                ScheduleOptions::new()
                    .overlap(Overlap::AllowAll)
                    .catch_up(policy, Duration::from_secs(5 * 60)),
            )
            .await
            .expect("create");
        sleep_ms(2 * MINUTE + 30 * SECOND).await;
        rt.shutdown().await;
        // Down from 0:02:30 to 0:12:30: ticks 3..=12 were missed, 8..=12
        // are within the 5-minute window.
        sleep_ms(10 * MINUTE).await;
        let rt = runtime_at(&store, t0() + 12 * MINUTE + 30 * SECOND).await;
        sleep_ms(10 * SECOND).await;
        let fired_late: Vec<u64> = match policy {
            CatchUp::All => (8..=12).collect(),
            CatchUp::Last => vec![12],
        };
        let expected = ids(
            name,
            [1, 2]
                .into_iter()
                .chain(fired_late)
                .map(|m| t0() + m * MINUTE),
        );
        assert_eq!(
            ran("report", name).keys().cloned().collect::<Vec<_>>(),
            expected,
            "{policy:?}"
        );
        let schedule = describe(&rt.schedules(), name).await.schedule;
        assert_eq!(schedule.counts.missed, 5, "{policy:?}: ticks 3..=7");
        let dropped_by_last = if policy == CatchUp::Last { 4 } else { 0 };
        assert_eq!(schedule.counts.skipped, dropped_by_last, "{policy:?}");
        assert!(
            schedule
                .recent
                .iter()
                .any(|action| matches!(action.kind, ActionKind::Missed { count: Some(5), .. }))
        );
        rt.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_each_tick_within_its_bound_the_same_way_every_time() {
    let store = MemoryStore::new();
    let rt = runtime(&store).await;
    let jitter = 20 * SECOND;
    let described = rt
        .schedules()
        .create(
            "jittered",
            ScheduleSpec::every(Duration::from_secs(60)).jitter(Duration::from_millis(jitter)),
            report,
            "jittered".to_owned(),
            ScheduleOptions::new(),
        )
        .await
        .expect("create");
    let planned = described.next_fire_times.clone();
    assert_eq!(planned.len(), 5);
    for (k, fire) in planned.iter().enumerate() {
        let tick = t0() + (k as u64 + 1) * MINUTE;
        assert!((tick..tick + jitter).contains(fire), "{}", at(*fire));
    }
    assert!(
        planned
            .iter()
            .enumerate()
            .any(|(k, fire)| *fire != t0() + (k as u64 + 1) * MINUTE),
        "some tick is jittered"
    );
    // Another handle, another read: the same times.
    assert_eq!(
        Schedules::new(std::sync::Arc::new(store.clone()))
            .describe("jittered")
            .await
            .expect("describe")
            .next_fire_times,
        planned
    );
    sleep_ms(5 * MINUTE + 30 * SECOND).await;
    for (k, fire) in planned.iter().enumerate() {
        let id = &ids("jittered", [t0() + (k as u64 + 1) * MINUTE])[0];
        let status = rt.status(id).await.expect("status").expect("fired");
        // Started at its jittered time (the scheduler wakes for it).
        assert_eq!(status.created_at, *fire, "{id}");
    }
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn pause_unpause_trigger_backfill_and_delete() {
    let store = MemoryStore::new();
    let rt = runtime(&store).await;
    let schedules = rt.schedules();
    schedules
        .create(
            "ops",
            ScheduleSpec::every(Duration::from_secs(3600)),
            report,
            "ops".to_owned(),
            ScheduleOptions::new(),
        )
        .await
        .expect("create");

    schedules
        .pause("ops", "the warehouse is closed")
        .await
        .expect("pause");
    let paused = describe(&schedules, "ops").await;
    assert!(paused.schedule.paused);
    assert_eq!(
        paused.schedule.note.as_deref(),
        Some("the warehouse is closed")
    );
    assert!(paused.next_fire_times.is_empty());
    sleep_ms(150 * MINUTE).await;
    assert!(ran("report", "ops").is_empty(), "paused: no tick fires");

    // A trigger runs while paused.
    let triggered = schedules.trigger("ops").await.expect("trigger");
    assert_eq!(triggered, format!("ops/{}", at(t0() + 150 * MINUTE)));
    sleep_ms(SECOND).await;
    assert_eq!(
        ran("report", "ops").keys().collect::<Vec<_>>(),
        [&triggered]
    );

    // Unpause: the ticks of the pause are not caught up; the next one fires.
    schedules
        .unpause("ops", "open again")
        .await
        .expect("unpause");
    assert_eq!(
        describe(&schedules, "ops").await.next_fire_times[0],
        t0() + 180 * MINUTE
    );
    sleep_ms(31 * MINUTE).await;
    let fired = ran("report", "ops");
    assert!(fired.contains_key(&format!("ops/{}", at(t0() + 180 * MINUTE))));
    assert_eq!(fired.len(), 2);

    // Backfill after midnight to 3:00 included: ticks 1:00, 2:00 and 3:00
    // (which has fired, and is not started again).
    let covered = schedules
        .backfill("ops", t0() + 1, t0() + 180 * MINUTE + 1)
        .await
        .expect("backfill");
    assert_eq!(covered, 3);
    sleep_ms(SECOND).await;
    let fired = ran("report", "ops");
    for hour in [1, 2, 3] {
        assert_eq!(
            fired.get(&format!("ops/{}", at(t0() + hour * 60 * MINUTE))),
            Some(&1),
            "each backfilled tick once, the one that had fired not again: {fired:?}"
        );
    }
    assert_eq!(fired.len(), 4);

    // A backfill too large, or backwards, is refused.
    assert!(matches!(
        schedules
            .backfill("ops", t0(), t0() + 20_000 * 60 * MINUTE)
            .await,
        Err(ScheduleError::BackfillTooLarge { limit: 10_000, .. })
    ));
    assert!(matches!(
        schedules.backfill("ops", t0() + MINUTE, t0()).await,
        Err(ScheduleError::InvalidTime(_))
    ));

    schedules.delete("ops").await.expect("delete");
    assert!(matches!(
        schedules.describe("ops").await,
        Err(ScheduleError::NotFound(name)) if name == "ops"
    ));
    assert!(matches!(
        schedules.delete("ops").await,
        Err(ScheduleError::NotFound(_))
    ));
    sleep_ms(2 * 60 * MINUTE).await;
    assert_eq!(
        ran("report", "ops").len(),
        4,
        "a deleted schedule fires no more"
    );
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn bad_specs_names_and_inputs_are_typed_errors() {
    let store = MemoryStore::new();
    let rt = runtime(&store).await;
    let schedules = rt.schedules();
    let create = |name: &'static str, spec: ScheduleSpec| {
        let schedules = schedules.clone();
        async move {
            schedules
                .create(name, spec, report, "x".to_owned(), ScheduleOptions::new())
                .await
        }
    };
    let error = create("bad-cron", ScheduleSpec::cron("61 * * * *"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ScheduleError::InvalidCron { expression, .. } if expression == "61 * * * *"),
        "{error:?}"
    );
    assert!(error.to_string().contains("`61 * * * *`"), "{error}");
    let error = create(
        "bad-zone",
        ScheduleSpec::cron("0 2 * * *").in_zone("Europe/Pariss"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&error, ScheduleError::UnknownZone { zone, .. } if zone == "Europe/Pariss"),
        "{error:?}"
    );
    assert!(error.to_string().contains("Europe/Pariss"), "{error}");
    let error = create("a/b", ScheduleSpec::every(Duration::from_secs(60)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ScheduleError::InvalidName { .. }),
        "{error:?}"
    );

    create("twice", ScheduleSpec::every(Duration::from_secs(60)))
        .await
        .expect("create");
    let error = create("twice", ScheduleSpec::every(Duration::from_secs(60)))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ScheduleError::AlreadyExists(name) if name == "twice"),
        "{error:?}"
    );

    // By name: an input that is not the workflow's input type.
    let error = schedules
        .create_by_name(
            "wrong-input",
            ScheduleSpec::every(Duration::from_secs(60)),
            "long_job",
            serde_json::json!({"minutes": "many"}),
            ScheduleOptions::new(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ScheduleError::Input { workflow, .. } if workflow == "long_job"),
        "{error:?}"
    );
    assert!(matches!(
        schedules.describe("wrong-input").await,
        Err(ScheduleError::NotFound(_))
    ));
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_runtime_on_the_same_store_goes_on_without_firing_a_tick_twice() {
    let store = MemoryStore::new();
    let rt = runtime(&store).await;
    rt.schedules()
        .create(
            "restart",
            ScheduleSpec::every(Duration::from_secs(60)),
            report,
            "restart".to_owned(),
            ScheduleOptions::new().catch_up(CatchUp::All, Duration::from_secs(3600)),
        )
        .await
        .expect("create");
    sleep_ms(5 * MINUTE + 30 * SECOND).await;
    rt.shutdown().await;
    // A second runtime on the store, built when the first stopped: it
    // finds ticks 1..=5 handled and goes on at 6.
    let rt = runtime_at(&store, t0() + 5 * MINUTE + 30 * SECOND).await;
    sleep_ms(5 * MINUTE).await;
    let ran = ran("report", "restart");
    assert_eq!(
        ran.keys().cloned().collect::<Vec<_>>(),
        ids("restart", (1..=10).map(|m| t0() + m * MINUTE))
    );
    assert!(ran.values().all(|&runs| runs == 1), "{ran:?}");
    assert_eq!(
        describe(&rt.schedules(), "restart")
            .await
            .schedule
            .counts
            .started,
        10
    );
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn two_runtimes_on_one_store_start_each_tick_once() {
    let store = MemoryStore::new();
    let first = runtime(&store).await;
    let second = runtime(&store).await;
    first
        .schedules()
        .create(
            "shared",
            ScheduleSpec::every(Duration::from_millis(250)),
            report,
            "shared".to_owned(),
            ScheduleOptions::new()
                .overlap(Overlap::AllowAll)
                .catch_up(CatchUp::All, Duration::from_secs(60)),
        )
        .await
        .expect("create");
    sleep_ms(100 * 250 + 100).await;
    // The two schedulers race for every tick; each starts once.
    let ran = ran("report", "shared");
    let expected: Vec<String> = (1..=100)
        .map(|k| format!("shared/{}", format_time(t0() + k * 250, 1)))
        .collect();
    assert_eq!(ran.keys().cloned().collect::<Vec<_>>(), expected);
    assert!(ran.values().all(|&runs| runs == 1), "{ran:?}");
    let schedule = describe(&first.schedules(), "shared").await.schedule;
    assert_eq!(schedule.counts.started, 100);
    assert_eq!(schedule.counts.skipped + schedule.counts.missed, 0);
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_only_runtime_creates_and_a_worker_runtime_fires() {
    let store = MemoryStore::new();
    let client = Runtime::builder()
        .store(store.clone())
        .workers(0)
        .clock(SystemClock::starting_at(t0()))
        .build()
        .await
        .expect("a client runtime");
    // The client does not register the workflow: the input is checked at
    // each start, by the worker.
    client
        .schedules()
        .create_by_name(
            "remote",
            ScheduleSpec::every(Duration::from_secs(60)),
            "report",
            serde_json::json!("remote"),
            ScheduleOptions::new(),
        )
        .await
        .expect("create");
    sleep_ms(2 * MINUTE + 30 * SECOND).await;
    assert!(ran("report", "remote").is_empty(), "no worker yet");
    let worker = runtime_at(&store, t0() + 2 * MINUTE + 30 * SECOND).await;
    sleep_ms(MINUTE).await;
    // The default catch-up (the last tick, within a day) fired 0:02 late, then 0:03.
    assert_eq!(
        ran("report", "remote").keys().cloned().collect::<Vec<_>>(),
        ids("remote", [2, 3].map(|m| t0() + m * MINUTE))
    );
    worker.shutdown().await;
    client.shutdown().await;
}
