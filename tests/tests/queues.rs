//! Queues on the memory store, under tokio's paused time: items start by
//! priority then in the order enqueued, an id is enqueued once, and the
//! limits (per partition, across processes, per process, the rate) hold
//! at every transition while every item still runs. The limits across
//! real processes sharing PostgreSQL, with one of them killed, are
//! `queue_processes.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::{Error, QueueHandle, StepError};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One job: which test it belongs to, its name, its customer, how long
/// its step works.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    test: String,
    name: String,
    customer: String,
    work_ms: u64,
}

/// What a step did: began or ended, which job, for whom, when.
#[derive(Clone, Debug)]
struct Event {
    began: bool,
    name: String,
    customer: String,
    at: Instant,
}

/// The events of every test, by test.
static EVENTS: LazyLock<Mutex<HashMap<String, Vec<Event>>>> = LazyLock::new(Default::default);

fn record(job: &Job, began: bool) {
    let event = Event {
        began,
        name: job.name.clone(),
        customer: job.customer.clone(),
        at: Instant::now(),
    };
    EVENTS
        .lock()
        .unwrap()
        .entry(job.test.clone())
        .or_default()
        .push(event);
}

fn events(test: &str) -> Vec<Event> {
    EVENTS
        .lock()
        .unwrap()
        .get(test)
        .cloned()
        .unwrap_or_default()
}

#[step(readonly)]
async fn work(job: &Job) -> Result<String, StepError> {
    record(job, true);
    tokio::time::sleep(Duration::from_millis(job.work_ms)).await;
    record(job, false);
    Ok(job.name.clone())
}

#[workflow]
async fn run_job(job: Job) -> Result<String, WorkflowError> {
    let done = work(&job).await?;
    Ok(done)
}

/// Waits an hour (a durable timer), then works.
#[workflow]
async fn run_late(job: Job) -> Result<String, WorkflowError> {
    sagaflow::sleep(Duration::from_secs(3600)).await;
    let done = work(&job).await?;
    Ok(done)
}

fn job(test: &str, name: &str, customer: &str, work_ms: u64) -> Job {
    Job {
        test: test.to_owned(),
        name: name.to_owned(),
        customer: customer.to_owned(),
        work_ms,
    }
}

/// The names in the order their steps began.
fn begun(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|event| event.began)
        .map(|event| event.name.clone())
        .collect()
}

/// The most jobs running at once (between their step's beginning and
/// end), at every transition, overall and per customer.
fn most_running(events: &[Event]) -> (usize, BTreeMap<String, usize>) {
    let mut running = 0usize;
    let mut most = 0;
    let mut by_customer: HashMap<&str, usize> = HashMap::new();
    let mut most_by_customer = BTreeMap::new();
    for event in events {
        let count = by_customer.entry(&event.customer).or_default();
        if event.began {
            running += 1;
            *count += 1;
        } else {
            running -= 1;
            *count -= 1;
        }
        most = most.max(running);
        let most_here = most_by_customer
            .entry(event.customer.clone())
            .or_insert(0usize);
        *most_here = (*most_here).max(*count);
    }
    (most, most_by_customer)
}

async fn all_completed(handles: Vec<QueueHandle<String>>) {
    for handle in handles {
        let outcome = handle.outcome().await.unwrap();
        assert_eq!(outcome, Outcome::Completed(handle.id().to_owned()));
    }
}

/// Whatever is left of the queues in the store.
async fn queue_keys(store: &MemoryStore) -> Vec<String> {
    let page = sagaflow::Store::scan(store, "queues/", None, 1000)
        .await
        .unwrap();
    page.entries
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| !key.ends_with("/rate"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn items_start_by_priority_then_in_the_order_enqueued() {
    let test = "priority";
    let store = MemoryStore::new();
    let queue = || Queue::new("jobs").concurrency(1);
    // A client enqueues them all before any worker runs.
    let client = Runtime::builder()
        .store(store.clone())
        .register(run_job)
        .queue(queue())
        .workers(0)
        .build()
        .await
        .unwrap();
    let mut handles = Vec::new();
    for (name, priority) in [("a", 2), ("b", 0), ("c", 1), ("d", 0), ("e", 2), ("f", 1)] {
        let to = Enqueue::new("jobs").priority(priority);
        let handle = client
            .enqueue(to, run_job, name, job(test, name, "-", 10))
            .await
            .unwrap();
        handles.push(handle);
    }
    let worker = Runtime::builder()
        .store(store.clone())
        .register(run_job)
        .queue(queue())
        .build()
        .await
        .unwrap();
    all_completed(handles).await;
    assert_eq!(begun(&events(test)), ["b", "d", "c", "f", "a", "e"]);
    // Every slot went back, every item and id left the queue.
    let mut left = queue_keys(&store).await;
    for _ in 0..10 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        left = queue_keys(&store).await;
    }
    assert_eq!(left, Vec::<String>::new());
    worker.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn enqueueing_an_id_twice_attaches_to_the_first() {
    let test = "dedup";
    let store = MemoryStore::new();
    let client = Runtime::builder()
        .store(store.clone())
        .register(run_job)
        .queue(Queue::new("jobs"))
        .workers(0)
        .build()
        .await
        .unwrap();
    let first = client
        .enqueue("jobs", run_job, "x", job(test, "first", "-", 10))
        .await
        .unwrap();
    let second = client
        .enqueue("jobs", run_job, "x", job(test, "second", "-", 10))
        .await
        .unwrap();
    let worker = Runtime::builder()
        .store(store.clone())
        .register(run_job)
        .register(run_late)
        .queue(Queue::new("jobs"))
        .build()
        .await
        .unwrap();
    assert_eq!(
        first.outcome().await.unwrap(),
        Outcome::Completed("first".to_owned())
    );
    assert_eq!(
        second.outcome().await.unwrap(),
        Outcome::Completed("first".to_owned())
    );
    // After it ran, enqueueing it again attaches to the instance.
    let third = worker
        .enqueue("jobs", run_job, "x", job(test, "third", "-", 10))
        .await
        .unwrap();
    assert_eq!(
        third.outcome().await.unwrap(),
        Outcome::Completed("first".to_owned())
    );
    assert_eq!(begun(&events(test)), ["first"]);
    // An id a plain `start` used, for another workflow, is refused.
    worker
        .start(run_late, "y", job(test, "late", "-", 0))
        .await
        .unwrap();
    let refused = worker
        .enqueue("jobs", run_job, "y", job(test, "y", "-", 0))
        .await
        .unwrap_err();
    assert!(matches!(refused, Error::IdInUse { .. }), "{refused}");
    worker.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn one_order_runs_per_customer_while_customers_run_side_by_side() {
    let test = "partition";
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(run_job)
        .queue(
            Queue::new("orders")
                .concurrency(10)
                .partition_concurrency(1),
        )
        .build()
        .await
        .unwrap();
    let mut handles = Vec::new();
    let orders = [
        ("a1", "ann"),
        ("a2", "ann"),
        ("b1", "bob"),
        ("a3", "ann"),
        ("b2", "bob"),
        ("c1", "cid"),
        ("b3", "bob"),
        ("c2", "cid"),
    ];
    for (name, customer) in orders {
        let to = Enqueue::new("orders").partition(customer);
        let handle = rt
            .enqueue(to, run_job, name, job(test, name, customer, 100))
            .await
            .unwrap();
        handles.push(handle);
    }
    all_completed(handles).await;
    let events = events(test);
    let (most, by_customer) = most_running(&events);
    assert_eq!(
        by_customer.values().copied().max(),
        Some(1),
        "{by_customer:?}"
    );
    assert_eq!(most, 3, "the three customers' orders ran side by side");
    // Each customer's orders ran in the order they were enqueued.
    let begun = begun(&events);
    for customer in ["a", "b", "c"] {
        let theirs: Vec<&String> = begun.iter().filter(|n| n.starts_with(customer)).collect();
        let mut sorted = theirs.clone();
        sorted.sort();
        assert_eq!(theirs, sorted);
    }
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn at_most_the_queues_concurrency_runs_at_once() {
    let test = "concurrency";
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(run_job)
        .queue(Queue::new("jobs").concurrency(3))
        .build()
        .await
        .unwrap();
    let mut handles = Vec::new();
    for index in 0..10 {
        let name = format!("j{index}");
        let handle = rt
            .enqueue("jobs", run_job, &name, job(test, &name, "-", 50))
            .await
            .unwrap();
        handles.push(handle);
    }
    all_completed(handles).await;
    let events = events(test);
    assert_eq!(most_running(&events).0, 3);
    assert_eq!(begun(&events).len(), 10, "every job ran once");
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn at_most_per_process_run_in_one_process() {
    let test = "per_process";
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(run_job)
        .queue(Queue::new("jobs").per_process(2))
        .build()
        .await
        .unwrap();
    let mut handles = Vec::new();
    for index in 0..6 {
        let name = format!("j{index}");
        let handle = rt
            .enqueue("jobs", run_job, &name, job(test, &name, "-", 50))
            .await
            .unwrap();
        handles.push(handle);
    }
    all_completed(handles).await;
    assert_eq!(most_running(&events(test)).0, 2);
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_spreads_starts_over_its_window() {
    let test = "rate";
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(run_job)
        .queue(Queue::new("jobs").rate_limit(2, Duration::from_secs(1)))
        .build()
        .await
        .unwrap();
    let mut handles = Vec::new();
    for index in 0..7 {
        let name = format!("j{index}");
        let handle = rt
            .enqueue("jobs", run_job, &name, job(test, &name, "-", 0))
            .await
            .unwrap();
        handles.push(handle);
    }
    all_completed(handles).await;
    let starts: Vec<Instant> = events(test)
        .iter()
        .filter(|event| event.began)
        .map(|event| event.at)
        .collect();
    assert_eq!(starts.len(), 7);
    // No window of a second holds a third start.
    for pair in starts.windows(3) {
        assert!(
            pair[2] - pair[0] >= Duration::from_secs(1),
            "three starts within a second: {starts:?}"
        );
    }
    // Seven at two a second take three seconds, and not much more.
    let spread = starts[6] - starts[0];
    assert!(
        spread >= Duration::from_secs(3) && spread < Duration::from_secs(4),
        "{spread:?}"
    );
    rt.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_stopped_processs_slot_waits_for_its_instance_then_comes_back() {
    let test = "stopped";
    let store = MemoryStore::new();
    let queue = || Queue::new("jobs").concurrency(1);
    let first = Runtime::builder()
        .store(store.clone())
        .register(run_late)
        .queue(queue())
        .build()
        .await
        .unwrap();
    let late = first
        .enqueue("jobs", run_late, "late", job(test, "late", "-", 10))
        .await
        .unwrap();
    late.started().await.unwrap();
    // The process stops while its instance waits on an hour's timer: it
    // keeps the queue's only slot until its lease expires.
    first.shutdown().await;
    let second = Runtime::builder()
        .store(store.clone())
        .register(run_late)
        .queue(queue())
        .build()
        .await
        .unwrap();
    let next = second
        .enqueue("jobs", run_late, "next", job(test, "next", "-", 10))
        .await
        .unwrap();
    assert_eq!(
        next.outcome().await.unwrap(),
        Outcome::Completed("next".to_owned())
    );
    let late = second.handle(run_late, "late");
    assert_eq!(
        late.outcome().await.unwrap(),
        Outcome::Completed("late".to_owned())
    );
    // The slot was adopted while the first instance ran on, not freed
    // with the lease: the next one started only once it had ended.
    let events = events(test);
    let names: Vec<(bool, &str)> = events
        .iter()
        .map(|event| (event.began, event.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (true, "late"),
            (false, "late"),
            (true, "next"),
            (false, "next")
        ]
    );
    second.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn what_enqueue_refuses() {
    let test = "refused";
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(run_job)
        .queue(Queue::new("plain"))
        .queue(Queue::new("orders").partition_concurrency(1))
        .build()
        .await
        .unwrap();
    let input = || job(test, "x", "-", 0);
    let unknown = rt.enqueue("nope", run_job, "x", input()).await.unwrap_err();
    assert!(matches!(&unknown, Error::UnknownQueue(name) if name == "nope"));
    assert!(unknown.to_string().contains(".queue(Queue::new(\"nope\"))"));
    let unkeyed = rt
        .enqueue("orders", run_job, "x", input())
        .await
        .unwrap_err();
    assert!(matches!(
        unkeyed,
        Error::PartitionKey {
            partitioned: true,
            ..
        }
    ));
    let keyed = rt
        .enqueue(Enqueue::new("plain").partition("c"), run_job, "x", input())
        .await
        .unwrap_err();
    assert!(matches!(
        keyed,
        Error::PartitionKey {
            partitioned: false,
            ..
        }
    ));
    let unregistered = rt
        .enqueue("plain", run_late, "x", input())
        .await
        .unwrap_err();
    assert!(matches!(unregistered, Error::UnknownWorkflow(_)));
    // Nothing of them was enqueued: the id is free.
    assert!(rt.status("x").await.unwrap().is_none());
    rt.shutdown().await;

    let twice = Runtime::builder()
        .store(MemoryStore::new())
        .register(run_job)
        .queue(Queue::new("jobs"))
        .queue(Queue::new("jobs").concurrency(2))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(twice, Error::DuplicateQueue(name) if name == "jobs"));
}
