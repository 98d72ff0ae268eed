//! Durable execution across processes: many runtimes on one store, leases
//! that fence a stale holder, the due index, takeover after a crash,
//! heartbeats, and cancel after the pivot. Each `Runtime` stands for a
//! process; time is tokio's paused clock, so lease expiry takes no real time.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Order, Tap, log_of, place_order, release, until};
use sagaflow::record;
use sagaflow::store::Expect;
use sagaflow::{Error, EventKind, MemoryStore, Outcome, Phase, Runtime, Status, Store};

async fn worker(
    store: impl Store,
    configure: impl FnOnce(sagaflow::RuntimeBuilder) -> sagaflow::RuntimeBuilder,
) -> Runtime {
    configure(Runtime::builder().store(store).register(place_order))
        .build()
        .await
        .expect("builds")
}

async fn status(rt: &Runtime, id: &str) -> Status {
    rt.status(id).await.expect("reads").expect("exists")
}

const STEPS: [&str; 4] = [
    "reserve_inventory#1",
    "charge_payment#1",
    "create_shipment#1",
    "send_confirmation#1",
];

/// No state's step succeeded twice in the instance's history.
fn assert_no_duplicate_transitions(status: &Status) {
    let mut seen = BTreeSet::new();
    for event in &status.history {
        if event.kind == EventKind::StepSucceeded {
            let state = event.state.clone().unwrap_or_default();
            assert!(
                seen.insert(state.clone()),
                "{}: {state} succeeded twice",
                status.id
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn two_processes_on_one_store_run_every_step_once() {
    let store = MemoryStore::new();
    let configure = |builder: sagaflow::RuntimeBuilder| {
        builder.workers(4).poll_interval(Duration::from_millis(100))
    };
    let a = worker(store.clone(), configure).await;
    let b = worker(store.clone(), configure).await;
    let mut handles = Vec::new();
    for n in 0..200 {
        let id = format!("shared-{n}");
        let via = if n % 2 == 0 { &a } else { &b };
        handles.push(
            via.start(place_order, id.clone(), Order::new(&id))
                .await
                .expect("starts"),
        );
    }
    let mut owners = BTreeMap::<String, usize>::new();
    for handle in handles {
        let outcome = handle.outcome().await.expect("ends");
        assert!(
            matches!(outcome, Outcome::Completed(_)),
            "{}: {outcome:?}",
            handle.id()
        );
        // Each step ran once: none was committed twice, none re-run.
        assert_eq!(log_of(handle.id()), STEPS, "{}", handle.id());
        let status = status(&a, handle.id()).await;
        assert_no_duplicate_transitions(&status);
        *owners
            .entry(status.lease.owner.unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(
        owners.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([a.runtime_id().to_owned(), b.runtime_id().to_owned()]),
        "both processes ran instances: {owners:?}"
    );
    // A hint whose instance was claimed another way goes at the next poll.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        store
            .scan(record::DUE_PREFIX, None, 10)
            .await
            .expect("scans")
            .entries
            .is_empty(),
        "every due hint was consumed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_holder_is_fenced_and_never_overwrites_the_new_holder() {
    let shared = MemoryStore::new();
    let a_store = Tap::new(shared.clone());
    let ttl = Duration::from_secs(10);
    let a = worker(a_store.clone(), |builder| builder.lease_ttl(ttl)).await;
    let b = worker(shared.clone(), |builder| {
        builder
            .lease_ttl(ttl)
            .recovery_interval(Duration::from_secs(1))
    })
    .await;

    let order = Order::new("fenced").held_once("charge_payment");
    a.start(place_order, "fenced", order).await.expect("starts");
    until(async || log_of("fenced").len() == 2).await;
    let claimed = status(&a, "fenced").await;
    assert_eq!(claimed.lease.owner.as_deref(), Some(a.runtime_id()));
    assert_eq!(claimed.lease.epoch, 1);

    // A is cut off from the store mid-step: it cannot renew its lease.
    a_store.cut(true);
    let taken_over = tokio::time::Instant::now();
    let outcome = b
        .handle(place_order, "fenced")
        .outcome()
        .await
        .expect("ends");
    assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
    let finished = status(&b, "fenced").await;
    let b_started = finished
        .history
        .iter()
        .find(|event| {
            event.kind == EventKind::StepStarted && event.state.as_deref() == Some("ChargePayment1")
        })
        .map(|event| event.at);
    let expired_at = claimed.lease.expires_at.expect("leased");
    assert!(
        b_started.is_some_and(|at| at >= expired_at),
        "B waited for A's lease to expire: {b_started:?} < {expired_at}, after {:?}",
        taken_over.elapsed()
    );
    assert_eq!(finished.lease.owner.as_deref(), Some(b.runtime_id()));
    assert_eq!(finished.lease.epoch, 2, "B's claim has a higher epoch");
    let stored = shared
        .get(&record::key("fenced"))
        .await
        .expect("reads")
        .expect("exists");

    // A comes back, and its step returns: its write is rejected.
    a_store.cut(false);
    let conflicts = a_store.count("conflict instances/");
    release("fenced", "charge_payment");
    a.shutdown().await;
    assert!(
        a_store.count("conflict instances/") > conflicts,
        "A's write was rejected"
    );
    let after = shared
        .get(&record::key("fenced"))
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(after, stored, "A did not overwrite B's record");

    // The step in flight ran twice (at-least-once); its transition once.
    assert_eq!(
        log_of("fenced"),
        [
            "reserve_inventory#1",
            "charge_payment#1",
            "charge_payment#1",
            "create_shipment#1",
            "send_confirmation#1",
        ]
    );
    assert_no_duplicate_transitions(&finished);
}

#[tokio::test(start_paused = true)]
async fn a_worker_built_before_a_client_start_picks_it_up_through_the_due_index() {
    let store = Tap::new(MemoryStore::new());
    let poll = Duration::from_millis(200);
    // The recovery scan is far off: only the due index can find the work.
    let worker = worker(store.clone(), |builder| {
        builder
            .poll_interval(poll)
            .recovery_interval(Duration::from_secs(3600))
    })
    .await;
    // Let the worker's poller finish its first round (a scan of every
    // instance, which would claim them directly) before anything is started:
    // on paused time this sleep ends only once every task is idle.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let client = Runtime::builder()
        .workers(0)
        .store(store.clone())
        .register(place_order)
        .build()
        .await
        .expect("builds");
    let started = tokio::time::Instant::now();
    let mut handles = Vec::new();
    for n in 0..3 {
        let id = format!("client-{n}");
        handles.push(
            client
                .start(place_order, id.clone(), Order::new(&id))
                .await
                .expect("starts"),
        );
    }
    assert_eq!(
        store.count("put due/"),
        3,
        "a client start leaves a due hint"
    );
    for handle in handles {
        let outcome = worker
            .handle(place_order, handle.id())
            .outcome()
            .await
            .expect("ends");
        assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
        assert_eq!(log_of(handle.id()), STEPS);
        assert_eq!(
            status(&client, handle.id()).await.lease.owner.as_deref(),
            Some(worker.runtime_id())
        );
    }
    assert!(
        started.elapsed() <= poll,
        "picked up within a poll interval: {:?}",
        started.elapsed()
    );
    // A claim deletes its hint after it spawned the driver, so the instance
    // may end first; shutdown waits for the poller's claims in flight.
    worker.shutdown().await;
    // Each claim wrote a hint at its lease's expiry, deleted at the end.
    assert_eq!(store.count("put due/"), 6);
    assert_eq!(
        store.count("delete due/"),
        6,
        "the client's hints and the claims' lease hints were consumed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_transition_is_one_write_and_a_claim_adds_one_lease_hint() {
    let store = Tap::new(MemoryStore::new());
    let rt = worker(store.clone(), |builder| builder).await;
    let handle = rt
        .start(place_order, "writes", Order::new("writes"))
        .await
        .expect("starts");
    assert!(matches!(
        handle.outcome().await.expect("ends"),
        Outcome::Completed(_)
    ));
    // The creating write (which also claims), then one per step; beside the
    // claim a hint at its lease's expiry, deleted once the instance ended.
    assert_eq!(store.count("put instances/"), 5);
    assert_eq!(store.count("put due/"), 1);
    assert_eq!(store.count("delete due/"), 1);

    let store = Tap::new(MemoryStore::new());
    let rt = worker(store.clone(), |builder| builder).await;
    let order = Order::new("writes-retry").failing("charge_payment", 1);
    let handle = rt
        .start(place_order, "writes-retry", order)
        .await
        .expect("starts");
    assert!(matches!(
        handle.outcome().await.expect("ends"),
        Outcome::Completed(_)
    ));
    // The retry adds its own transition, one hint, and the claim after the
    // wait, with its own lease hint; the first claim's went when the
    // instance released its lease to wait.
    assert_eq!(store.count("put instances/"), 7);
    assert_eq!(store.count("put due/"), 3);
    assert_eq!(store.count("delete due/"), 3);
    assert_eq!(store.count("conflict instances/"), 0);
}

#[tokio::test(start_paused = true)]
async fn an_instance_of_a_crashed_owner_is_taken_over_after_its_lease_expires() {
    let store = MemoryStore::new();
    let client = Runtime::builder()
        .workers(0)
        .store(store.clone())
        .register(place_order)
        .build()
        .await
        .expect("builds");
    client
        .start(place_order, "orphaned", Order::new("orphaned"))
        .await
        .expect("starts");
    // A process claimed it, then died mid-step: its lease runs 30 s more.
    let stored = store
        .get(&record::key("orphaned"))
        .await
        .expect("reads")
        .expect("exists");
    let mut instance = record::decode(&stored.value).expect("decodes");
    let now = instance.updated_at;
    instance.lease = record::Lease {
        owner: Some("crashed-process".to_owned()),
        expires_at: Some(now + 30_000),
        epoch: 7,
    };
    store
        .put(
            &record::key("orphaned"),
            record::encode(&instance).expect("encodes"),
            Expect::Version(stored.version),
        )
        .await
        .expect("writes");
    let crashed = tokio::time::Instant::now();

    let rt = worker(store.clone(), |builder| {
        builder.recovery_interval(Duration::from_secs(1))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(29)).await;
    let waiting = status(&rt, "orphaned").await;
    assert_eq!(waiting.phase, Phase::Running);
    assert_eq!(waiting.lease.owner.as_deref(), Some("crashed-process"));
    assert!(log_of("orphaned").is_empty(), "a live lease is respected");

    let outcome = rt
        .handle(place_order, "orphaned")
        .outcome()
        .await
        .expect("ends");
    assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
    // Found through its hint, moved to the lease's expiry when the poller
    // saw the lease live. The two runtimes' clocks began at wall times a
    // few milliseconds apart, and the worker judges expiry by its own.
    assert!(
        crashed.elapsed() >= Duration::from_millis(29_900),
        "{:?}",
        crashed.elapsed()
    );
    assert!(
        crashed.elapsed() <= Duration::from_secs(32),
        "{:?}",
        crashed.elapsed()
    );
    assert_eq!(log_of("orphaned"), STEPS);
    let taken = status(&rt, "orphaned").await;
    assert_eq!(taken.lease.owner.as_deref(), Some(rt.runtime_id()));
    assert_eq!(taken.lease.epoch, 8);
}

#[tokio::test(start_paused = true)]
async fn the_next_attempt_of_a_step_reads_the_last_heartbeat() {
    let rt = common::runtime(MemoryStore::new()).await;
    let order = Order::new("heartbeat")
        .heartbeating("charge_payment")
        .failing("charge_payment", 1);
    let handle = rt
        .start(place_order, "heartbeat", order)
        .await
        .expect("starts");
    assert!(matches!(
        handle.outcome().await.expect("ends"),
        Outcome::Completed(_)
    ));
    assert_eq!(
        log_of("heartbeat"),
        [
            "reserve_inventory#1",
            "charge_payment#1",
            "charge_payment saw None",
            "charge_payment#2",
            "charge_payment saw Some(\"charge_payment progress at attempt 1\")",
            "create_shipment#1",
            "send_confirmation#1",
        ]
    );
    assert_eq!(
        status(&rt, "heartbeat").await.heartbeat,
        None,
        "cleared once the step succeeded"
    );

    // Outside a step there is nothing to record.
    assert!(matches!(
        sagaflow::heartbeat(1).await,
        Err(Error::NotInStep)
    ));
}

#[tokio::test(start_paused = true)]
async fn a_long_step_keeps_its_lease_and_its_progress_is_visible() {
    let ttl = Duration::from_secs(3);
    let rt = worker(MemoryStore::new(), |builder| builder.lease_ttl(ttl)).await;
    let order = Order::new("long")
        .heartbeating("charge_payment")
        .gated("charge_payment");
    let handle = rt.start(place_order, "long", order).await.expect("starts");
    until(async || log_of("long").len() == 3).await;
    tokio::time::sleep(ttl * 4).await;
    let running = status(&rt, "long").await;
    let now = running.updated_at;
    assert_eq!(running.phase, Phase::Running);
    assert!(
        running
            .lease
            .expires_at
            .is_some_and(|expires_at| expires_at > now)
    );
    assert_eq!(running.lease.epoch, 1, "renewed, never re-claimed");
    let heartbeat = running.heartbeat.expect("written with a renewal");
    assert_eq!(
        (heartbeat.state.as_str(), heartbeat.attempt),
        ("ChargePayment1", 1)
    );
    assert_eq!(heartbeat.details, "charge_payment progress at attempt 1");

    release("long", "charge_payment");
    assert!(matches!(
        handle.outcome().await.expect("ends"),
        Outcome::Completed(_)
    ));
    assert_eq!(
        log_of("long"),
        [
            "reserve_inventory#1",
            "charge_payment#1",
            "charge_payment saw None",
            "create_shipment#1",
            "send_confirmation#1",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_after_the_pivot_is_refused_and_the_instance_completes() {
    let rt = common::runtime(MemoryStore::new()).await;
    let order = Order::new("past-pivot").gated("send_confirmation");
    let handle = rt
        .start(place_order, "past-pivot", order)
        .await
        .expect("starts");
    until(async || log_of("past-pivot").len() == 4).await;
    let error = rt.cancel("past-pivot").await.expect_err("past the pivot");
    assert!(
        matches!(&error, Error::PastPivot { id } if id == "past-pivot"),
        "{error:?}"
    );
    release("past-pivot", "send_confirmation");
    assert!(matches!(
        handle.outcome().await.expect("ends"),
        Outcome::Completed(_)
    ));
    let status = status(&rt, "past-pivot").await;
    assert!(!status.cancel_requested);
    assert_eq!(log_of("past-pivot"), STEPS);
}

#[tokio::test(start_paused = true)]
async fn starts_beyond_the_workers_wait_in_the_backlog_and_cost_no_reads() {
    let store = Tap::new(MemoryStore::new());
    let rt = worker(store.clone(), |builder| builder.workers(2)).await;
    let mut handles = Vec::new();
    for n in 0..12 {
        let id = format!("backlog-{n}");
        handles.push(
            rt.start(place_order, id.clone(), Order::new(&id))
                .await
                .expect("starts"),
        );
    }
    for handle in &handles {
        let outcome = handle.outcome().await.expect("ends");
        assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
        assert_eq!(log_of(handle.id()), STEPS);
    }
    rt.shutdown().await;
    // Each instance: its creating write (claimed already, queued or not)
    // and one per step; a hint at its lease's expiry, deleted at its end.
    // Nobody read a record: not a claim from the backlog, not a handle
    // waiting on a queued instance.
    assert_eq!(store.count("put instances/"), 12 * 5);
    assert_eq!(store.count("get instances/"), 0);
    assert_eq!(store.count("conflict instances/"), 0);
    assert_eq!(store.count("put due/"), 12);
    assert_eq!(store.count("delete due/"), 12);
}

#[tokio::test(start_paused = true)]
async fn the_backlog_of_a_runtime_whose_workers_are_stuck_is_taken_over_through_its_hints() {
    let store = MemoryStore::new();
    // A runtime whose one worker is stuck: the rest wait in its backlog,
    // claimed by it in their creating writes.
    let stuck = worker(store.clone(), |builder| builder.workers(1)).await;
    let blocker = Order::new("stuck-0").gated("reserve_inventory");
    stuck
        .start(place_order, "stuck-0", blocker)
        .await
        .expect("starts");
    for n in 1..6 {
        let id = format!("stuck-{n}");
        stuck
            .start(place_order, id.clone(), Order::new(&id))
            .await
            .expect("starts");
    }
    let started = tokio::time::Instant::now();
    let rt = worker(store.clone(), |builder| builder).await;
    for n in 1..6 {
        let id = format!("stuck-{n}");
        let outcome = rt
            .handle(place_order, id.clone())
            .outcome()
            .await
            .expect("ends");
        assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
        assert_eq!(
            status(&rt, &id).await.lease.owner.as_deref(),
            Some(rt.runtime_id())
        );
    }
    // Not before the backlog's leases expired (30 s).
    assert!(
        started.elapsed() >= Duration::from_millis(29_900),
        "{:?}",
        started.elapsed()
    );
    // Unstuck, the first runtime gets to its backlog: each driver finds its
    // lease lapsed, cannot renew it, and runs nothing.
    release("stuck-0", "reserve_inventory");
    let outcome = stuck
        .handle(place_order, "stuck-0")
        .outcome()
        .await
        .expect("ends");
    assert!(matches!(outcome, Outcome::Completed(_)), "{outcome:?}");
    stuck.shutdown().await;
    rt.shutdown().await;
    for n in 1..6 {
        assert_eq!(log_of(&format!("stuck-{n}")), STEPS, "each step ran once");
    }
}
