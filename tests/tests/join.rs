//! Parallel steps (`sagaflow::join!`) run by the runtime, on the memory and
//! the embedded store: each branch's completion is in the store as soon as
//! it happens, a failing branch is retried alone, a branch that fails for
//! good rolls back the completed ones, and a cancel waits for the branches.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::store::Store;
use sagaflow::{EventKind, Phase, record};
use sagaflow_examples::fanout::{Trip, book_trip};
use sagaflow_examples::timeline::events_for;
use tokio::sync::Notify;

/// What the steps did, in order; each test filters by its instance ids.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(entry: String) {
    LOG.lock().unwrap().push(entry);
}

fn entries(prefix: &str) -> Vec<String> {
    LOG.lock()
        .unwrap()
        .iter()
        .filter(|entry| entry.starts_with(prefix))
        .cloned()
        .collect()
}

/// Gates a step waits on, by instance id: the test opens them.
static GATES: LazyLock<Mutex<HashMap<String, Arc<Notify>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn gate(id: &str) -> Arc<Notify> {
    Arc::clone(GATES.lock().unwrap().entry(id.to_owned()).or_default())
}

fn key() -> String {
    sagaflow::context()
        .map(|ctx| ctx.idempotency_key())
        .unwrap_or_default()
}

/// Answers at once.
#[step]
async fn quick(id: String) -> Result<u32, StepError> {
    log(format!("{id} quick {}", key()));
    Ok(1)
}

#[compensate(quick)]
async fn undo_quick(id: String, value: u32) -> Result<(), StepError> {
    log(format!("{id} undo quick {value}"));
    Ok(())
}

/// Answers once the test opens the instance's gate.
#[step]
async fn gated(id: String) -> Result<u32, StepError> {
    gate(&id).notified().await;
    log(format!("{id} gated {}", key()));
    Ok(2)
}

#[compensate(gated)]
async fn undo_gated(id: String, value: u32) -> Result<(), StepError> {
    log(format!("{id} undo gated {value}"));
    Ok(())
}

/// Fails twice (retryably), then succeeds.
#[step(readonly, retry(max_attempts = 5, initial = "1s"))]
async fn flaky(id: String) -> Result<u32, StepError> {
    let ctx = sagaflow::context().expect("run by the runtime");
    log(format!(
        "{id} flaky {} attempt {}",
        ctx.idempotency_key(),
        ctx.attempt
    ));
    if ctx.attempt < 3 {
        return Err(StepError::retryable("not yet"));
    }
    Ok(30)
}

/// Quick and gated at once.
#[workflow]
async fn pair(id: String) -> Result<u32, WorkflowError> {
    let (a, b) = sagaflow::join!(quick(id.clone()), gated(id.clone()))?;
    Ok(a + b)
}

/// Notes that the saga went on past its join.
#[step(readonly)]
async fn went_on(id: String) -> Result<(), StepError> {
    log(format!("{id} went on"));
    Ok(())
}

/// Quick and gated at once, then a step.
#[workflow]
async fn pair_then_more(id: String) -> Result<u32, WorkflowError> {
    let (a, b) = sagaflow::join!(quick(id.clone()), gated(id.clone()))?;
    went_on(id).await?;
    Ok(a + b)
}

/// Quick and flaky at once.
#[workflow]
async fn retried(id: String) -> Result<u32, WorkflowError> {
    let (a, b) = sagaflow::join!(quick(id.clone()), flaky(id.clone()))?;
    Ok(a + b)
}

async fn runtime(store: impl Store) -> Runtime {
    Runtime::builder()
        .store(store)
        .register(pair)
        .register(retried)
        .register(pair_then_more)
        .register(book_trip)
        .build()
        .await
        .expect("the runtime builds")
}

/// The stored state of instance `id`, as JSON.
async fn stored_state(store: &dyn Store, id: &str) -> serde_json::Value {
    let stored = store
        .get(&record::key(id))
        .await
        .expect("read the store")
        .expect("the instance's record");
    record::decode(&stored.value)
        .expect("a record")
        .state
        .to_value()
        .expect("the state is JSON")
}

/// Waits (at most 10 s of the runtime's clock) until `id`'s compensation
/// stack holds `len` entries.
async fn until_stack(rt: &Runtime, id: &str, len: usize) -> sagaflow::Status {
    for _ in 0..2_000 {
        let status = rt.status(id).await.unwrap().expect("started");
        if status.compensation_stack.len() >= len {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{id}: the compensation stack never reached {len} entries");
}

async fn persisted_per_branch(store: impl Store + Clone, id: &str) {
    let rt = runtime(store.clone()).await;
    let handle = rt.start(pair, id, id.to_owned()).await.unwrap();
    // `quick` is done while `gated` still waits: the store already says so.
    let status = until_stack(&rt, id, 1).await;
    assert_eq!(status.phase, Phase::Running);
    assert_eq!(status.state, "Join1");
    assert_eq!(status.compensation_stack[0].step, "quick");
    assert_eq!(status.compensation_stack[0].output.get(), "1");
    let succeeded: Vec<_> = status
        .history
        .iter()
        .filter(|event| event.kind == EventKind::StepSucceeded)
        .map(|event| event.step.clone().unwrap_or_default())
        .collect();
    assert_eq!(succeeded, ["quick"]);
    assert_eq!(
        stored_state(&store, id).await["Join1"]["__branches"],
        serde_json::json!([{ "done": { "output": 1 } }, { "pending": { "attempt": 1 } }])
    );
    assert_eq!(
        entries(&format!("{id} ")),
        [format!("{id} quick {id}/Join1/0")]
    );

    gate(id).notify_one();
    assert_eq!(handle.outcome().await.unwrap(), Outcome::Completed(3));
    assert_eq!(
        entries(&format!("{id} ")),
        [
            format!("{id} quick {id}/Join1/0"),
            format!("{id} gated {id}/Join1/1"),
        ]
    );
    rt.shutdown().await;
}

#[tokio::test]
async fn each_branch_is_persisted_as_it_finishes_on_the_memory_store() {
    persisted_per_branch(MemoryStore::new(), "mem-pair").await;
}

#[tokio::test]
async fn each_branch_is_persisted_as_it_finishes_on_the_embedded_store() {
    let dir = sagaflow_tests::harness::Scratch::new("join", "persisted");
    let store = EmbeddedStore::open(dir.store()).expect("open the store");
    persisted_per_branch(store, "emb-pair").await;
}

/// The flaky branch is retried through the record (1 s, then 2 s later),
/// alone: the quick branch ran once, and every attempt of a branch has the
/// branch's key.
#[tokio::test(start_paused = true)]
async fn a_failing_branch_is_retried_alone() {
    let rt = runtime(MemoryStore::new()).await;
    let handle = rt
        .start(retried, "retry-1", "retry-1".to_owned())
        .await
        .unwrap();
    assert_eq!(handle.outcome().await.unwrap(), Outcome::Completed(31));
    assert_eq!(
        entries("retry-1 "),
        [
            "retry-1 quick retry-1/Join1/0",
            "retry-1 flaky retry-1/Join1/1 attempt 1",
            "retry-1 flaky retry-1/Join1/1 attempt 2",
            "retry-1 flaky retry-1/Join1/1 attempt 3",
        ]
    );
    let status = rt.status("retry-1").await.unwrap().unwrap();
    let retries = status
        .history
        .iter()
        .filter(|event| event.kind == EventKind::StepRetried)
        .count();
    assert_eq!(retries, 2);
}

/// A cancel that arrives while a branch runs takes effect once it finished
/// (at the next state, as for any step): both branches are then undone, the
/// last completed first, and the step after the join never runs.
#[tokio::test]
async fn a_cancel_during_a_join_waits_for_its_branches_then_undoes_them() {
    let rt = runtime(MemoryStore::new()).await;
    let handle = rt
        .start(pair_then_more, "cancel-1", "cancel-1".to_owned())
        .await
        .unwrap();
    until_stack(&rt, "cancel-1", 1).await;
    rt.cancel("cancel-1").await.unwrap();
    gate("cancel-1").notify_one();
    let Outcome::Compensated(failure) = handle.outcome().await.unwrap() else {
        panic!("the cancelled join should be rolled back");
    };
    assert!(failure.to_string().contains("cancel"), "{failure}");
    assert_eq!(
        entries("cancel-1 "),
        [
            "cancel-1 quick cancel-1/Join1/0",
            "cancel-1 gated cancel-1/Join1/1",
            "cancel-1 undo gated 2",
            "cancel-1 undo quick 1",
        ]
    );
}

fn trip(id: &str, no_cars: bool) -> Trip {
    Trip {
        id: id.into(),
        destination: "Faro".into(),
        nights: 1,
        no_cars,
    }
}

/// The fan-out example on the embedded store: both outcomes, and the
/// bookings undone in the reverse order of their completion.
#[tokio::test]
async fn the_fanout_trip_on_the_embedded_store() {
    let dir = sagaflow_tests::harness::Scratch::new("join", "fanout");
    let rt = runtime(EmbeddedStore::open(dir.store()).expect("open the store")).await;
    let booked = rt
        .start(book_trip, "emb-trip-ok", trip("emb-trip-ok", false))
        .await
        .unwrap();
    let Outcome::Completed(itinerary) = booked.outcome().await.unwrap() else {
        panic!("the trip should be booked");
    };
    assert_eq!(itinerary.car.contract, "car-emb-trip-ok");
    let rolled_back = rt
        .start(book_trip, "emb-trip-nocar", trip("emb-trip-nocar", true))
        .await
        .unwrap();
    assert!(matches!(
        rolled_back.outcome().await.unwrap(),
        Outcome::Compensated(_)
    ));
    // The branches run at once, so the three attempts land in whatever order
    // the machine's timing gives (10, 20 and 30 ms apart when it is idle);
    // what the saga guarantees is that both bookings are undone after the
    // car failed, in the reverse order of their completion.
    let events = events_for("emb-trip-nocar:");
    let mut attempts = events[..3].to_vec();
    attempts.sort();
    assert_eq!(
        attempts,
        [
            "emb-trip-nocar: book flight to Faro",
            "emb-trip-nocar: book hotel in Faro for 1 nights",
            "emb-trip-nocar: no car left in Faro",
        ],
        "{events:#?}"
    );
    let booked_at = |what: &str| events.iter().position(|event| event.contains(what));
    let (Some(hotel), Some(flight)) = (booked_at("book hotel"), booked_at("book flight")) else {
        panic!("both bookings ran: {events:#?}");
    };
    let cancels = if hotel < flight {
        [
            "emb-trip-nocar: cancel flight tkt-emb-trip-nocar",
            "emb-trip-nocar: cancel hotel room-emb-trip-nocar",
        ]
    } else {
        [
            "emb-trip-nocar: cancel hotel room-emb-trip-nocar",
            "emb-trip-nocar: cancel flight tkt-emb-trip-nocar",
        ]
    };
    assert_eq!(events[3..], cancels, "{events:#?}");
    rt.shutdown().await;
}
