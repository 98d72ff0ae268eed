//! Child workflows (`sagaflow::child`), run by the runtime on the memory
//! store (paused time) and the embedded store (real time, a file): the
//! outcome the parent sees, the records of parent and child, and the exact
//! order of the side effects of both, forward and rolling back.

use std::sync::Mutex;
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::{Error, Phase, Store};
use sagaflow_tests::harness::Scratch;
use serde::{Deserialize, Serialize};

/// What the steps did, in order, across every test in this file; each test
/// filters by its own instance ids.
static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(id: &str, what: &str) {
    LOG.lock().unwrap().push(format!("{id} {what}"));
}

fn entries(id: &str) -> Vec<String> {
    let prefix = format!("{id} ");
    LOG.lock()
        .unwrap()
        .iter()
        .filter_map(|entry| entry.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    id: String,
    /// The child's second step fails for good.
    child_fails: bool,
    /// The parent's step after the child fails for good.
    parent_fails: bool,
}

fn job(id: &str) -> Job {
    Job {
        id: id.to_owned(),
        child_fails: false,
        parent_fails: false,
    }
}

#[step]
async fn open_account(job: &Job) -> Result<String, StepError> {
    log(&job.id, "open");
    Ok(format!("acct-{}", job.id))
}

#[compensate(open_account)]
async fn close_account(job: &Job, account: String) -> Result<(), StepError> {
    log(&job.id, &format!("close {account}"));
    Ok(())
}

#[step]
async fn pack(job: &Job) -> Result<u32, StepError> {
    log(&job.id, "pack");
    Ok(7)
}

#[compensate(pack)]
async fn unpack(job: &Job, parcel: u32) -> Result<(), StepError> {
    log(&job.id, &format!("unpack {parcel}"));
    Ok(())
}

#[step]
async fn book(job: &Job, parcel: &u32) -> Result<String, StepError> {
    if job.child_fails {
        log(&job.id, "book refused");
        return Err(StepError::permanent("no carrier"));
    }
    log(&job.id, &format!("book {parcel}"));
    Ok(format!("trk-{parcel}"))
}

#[compensate(book)]
async fn unbook(job: &Job, parcel: &u32, tracking: String) -> Result<(), StepError> {
    log(&job.id, &format!("unbook {tracking} {parcel}"));
    Ok(())
}

#[step]
async fn bill(job: &Job, tracking: &str) -> Result<String, StepError> {
    if job.parent_fails {
        log(&job.id, "bill refused");
        return Err(StepError::permanent("billing is down"));
    }
    log(&job.id, &format!("bill {tracking}"));
    Ok("inv-1".to_owned())
}

#[compensate(bill)]
async fn unbill(job: &Job, tracking: &str, invoice: String) -> Result<(), StepError> {
    log(&job.id, &format!("unbill {invoice} {tracking}"));
    Ok(())
}

#[step(readonly)]
async fn note(job: &Job, what: String) -> Result<(), StepError> {
    log(&job.id, &what);
    Ok(())
}

/// The child: two compensable steps.
#[workflow]
async fn ship(job: Job) -> Result<String, WorkflowError> {
    let parcel = pack(&job).await?;
    let tracking = book(&job, &parcel).await?;
    Ok(tracking)
}

/// The parent: a step, the child, a step.
#[workflow]
async fn order(job: Job) -> Result<String, WorkflowError> {
    let account = open_account(&job).await?;
    let tracking = sagaflow::child(ship, job.clone()).await?;
    let invoice = bill(&job, &tracking).await?;
    Ok(format!("{account} {tracking} {invoice}"))
}

/// A parent that keeps the child's result and handles it itself.
#[workflow]
async fn tolerant(job: Job) -> Result<String, WorkflowError> {
    let shipped = sagaflow::child(ship, job.clone()).await;
    let text: String = match shipped {
        Ok(tracking) => tracking,
        Err(error) => format!("not shipped: {error}"),
    };
    note(&job, text.clone()).await?;
    Ok(text)
}

/// A child per round of a loop: each its own id, with the iteration.
#[workflow]
async fn rounds(job: Job) -> Result<Vec<String>, WorkflowError> {
    let mut shipped: Vec<String> = Vec::new();
    for round in 0..2u32 {
        let mut round_job: Job = job.clone();
        round_job.id = format!("{}-r{round}", job.id);
        let tracking = sagaflow::child(ship, round_job).await?;
        shipped.push(tracking);
    }
    Ok(shipped)
}

/// A child that waits for a signal between its steps.
#[workflow]
async fn slow_ship(job: Job) -> Result<String, WorkflowError> {
    let parcel = pack(&job).await?;
    let go: bool = sagaflow::signal("go").await;
    note(&job, format!("go {go}")).await?;
    let tracking = book(&job, &parcel).await?;
    Ok(tracking)
}

/// A parent of `slow_ship`.
#[workflow]
async fn slow_order(job: Job) -> Result<String, WorkflowError> {
    let account = open_account(&job).await?;
    let tracking = sagaflow::child(slow_ship, job.clone()).await?;
    Ok(format!("{account} {tracking}"))
}

#[step(pivot)]
async fn commit_shipment(job: &Job) -> Result<(), StepError> {
    log(&job.id, "commit");
    Ok(())
}

/// A child with a pivot: once it completed, it cannot be undone.
#[workflow]
async fn final_ship(job: Job) -> Result<String, WorkflowError> {
    let parcel = pack(&job).await?;
    commit_shipment(&job).await?;
    Ok(format!("final-{parcel}"))
}

/// A parent of `final_ship` whose last step may fail.
#[workflow]
async fn final_order(job: Job) -> Result<String, WorkflowError> {
    let account = open_account(&job).await?;
    let shipped = sagaflow::child(final_ship, job.clone()).await?;
    let invoice = bill(&job, &shipped).await?;
    Ok(format!("{account} {invoice}"))
}

async fn runtime(store: impl Store) -> Runtime {
    Runtime::builder()
        .store(store)
        .register(order)
        .register(ship)
        .register(tolerant)
        .register(rounds)
        .register(slow_order)
        .register(slow_ship)
        .register(final_order)
        .register(final_ship)
        .build()
        .await
        .expect("the runtime builds")
}

/// A runtime on a fresh embedded store in `scratch`.
async fn embedded(scratch: &Scratch) -> Runtime {
    runtime(EmbeddedStore::open(scratch.store()).expect("open the store")).await
}

/// Runs each scenario on the memory store with paused time and on the
/// embedded store with real time.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(start_paused = true)]
                async fn $name() {
                    super::$name(super::runtime(super::MemoryStore::new()).await, "mem").await;
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let scratch = super::Scratch::new("child", stringify!($name));
                    super::$name(super::embedded(&scratch).await, "emb").await;
                }
            )*
        }
    };
}

on_both_stores!(
    a_child_runs_with_its_own_record_and_id,
    a_failed_child_rolls_the_parent_back,
    a_parent_that_fails_after_its_child_undoes_the_child_first,
    a_kept_child_result_is_handled_by_the_parent,
    children_in_a_loop_get_an_id_per_iteration,
    cancelling_a_parent_cancels_its_child_then_compensates,
    a_child_past_its_pivot_takes_the_parent_past_its_pivot,
);

async fn a_child_runs_with_its_own_record_and_id(rt: Runtime, store: &str) {
    let id = format!("{store}-ok");
    let handle = rt.start(order, id.clone(), job(&id)).await.unwrap();
    assert_eq!(
        handle.outcome().await.unwrap(),
        Outcome::Completed(format!("acct-{id} trk-7 inv-1"))
    );
    assert_eq!(entries(&id), ["open", "pack", "book 7", "bill trk-7"]);
    let child_id = format!("{id}/Ship2");
    let child = rt
        .status(&child_id)
        .await
        .unwrap()
        .expect("the child's record");
    assert_eq!(child.workflow, "ship");
    assert_eq!(child.phase, Phase::Completed);
    assert_eq!(child.parent.as_deref(), Some(id.as_str()));
    assert_eq!(
        child.compensation_stack.len(),
        2,
        "a completed child keeps its stack"
    );
    let parent = rt.status(&id).await.unwrap().unwrap();
    assert_eq!(parent.parent, None);
    assert_eq!(parent.children, std::slice::from_ref(&child_id));
    let stack: Vec<(&str, Option<&str>)> = parent
        .compensation_stack
        .iter()
        .map(|entry| (entry.step.as_ref(), entry.child.as_deref()))
        .collect();
    assert_eq!(
        stack,
        [
            ("open_account", None),
            ("ship", Some(child_id.as_str())),
            ("bill", None)
        ]
    );
    // Starting the parent again attaches: nothing runs twice.
    let again = rt.start(order, id.clone(), job(&id)).await.unwrap();
    assert!(matches!(
        again.outcome().await.unwrap(),
        Outcome::Completed(_)
    ));
    assert_eq!(entries(&id).len(), 4);
}

async fn a_failed_child_rolls_the_parent_back(rt: Runtime, store: &str) {
    let id = format!("{store}-child-fails");
    let input = Job {
        child_fails: true,
        ..job(&id)
    };
    let handle = rt.start(order, id.clone(), input).await.unwrap();
    let Outcome::Compensated(failure) = handle.outcome().await.unwrap() else {
        panic!("the parent rolls back")
    };
    let text = failure.to_string();
    assert!(
        text.contains(&format!(
            "child workflow `ship` (instance `{id}/Ship2`) ended Compensated"
        )) && text.contains("no carrier"),
        "{text}"
    );
    assert_eq!(
        entries(&id),
        [
            "open",
            "pack",
            "book refused",
            "unpack 7",
            &format!("close acct-{id}")
        ]
    );
    let child = rt.status(&format!("{id}/Ship2")).await.unwrap().unwrap();
    assert_eq!(child.phase, Phase::Compensated);
}

async fn a_parent_that_fails_after_its_child_undoes_the_child_first(rt: Runtime, store: &str) {
    let id = format!("{store}-parent-fails");
    let input = Job {
        parent_fails: true,
        ..job(&id)
    };
    let handle = rt.start(order, id.clone(), input).await.unwrap();
    let Outcome::Compensated(failure) = handle.outcome().await.unwrap() else {
        panic!("the parent rolls back")
    };
    assert!(failure.to_string().contains("billing is down"), "{failure}");
    // The exact reverse of completion, across parent and child.
    assert_eq!(
        entries(&id),
        [
            "open",
            "pack",
            "book 7",
            "bill refused",
            "unbook trk-7 7",
            "unpack 7",
            &format!("close acct-{id}"),
        ]
    );
    let child = rt.status(&format!("{id}/Ship2")).await.unwrap().unwrap();
    assert_eq!(child.phase, Phase::Compensated);
    assert!(child.failure.is_some_and(|failure| {
        failure
            .message
            .contains(&format!("its parent `{id}` rolls back"))
    }),);
    let parent = rt.status(&id).await.unwrap().unwrap();
    assert!(parent.compensation_stack.is_empty());
    assert_eq!(parent.children, Vec::<String>::new());
}

async fn a_kept_child_result_is_handled_by_the_parent(rt: Runtime, store: &str) {
    let id = format!("{store}-kept");
    let input = Job {
        child_fails: true,
        ..job(&id)
    };
    let handle = rt.start(tolerant, id.clone(), input).await.unwrap();
    let Outcome::Completed(text) = handle.outcome().await.unwrap() else {
        panic!("the parent handles the child's error")
    };
    assert!(
        text.starts_with("not shipped: child workflow `ship`"),
        "{text}"
    );
    assert_eq!(
        entries(&id),
        ["pack", "book refused", "unpack 7", text.as_str()]
    );
}

async fn children_in_a_loop_get_an_id_per_iteration(rt: Runtime, store: &str) {
    let id = format!("{store}-rounds");
    let handle = rt.start(rounds, id.clone(), job(&id)).await.unwrap();
    assert_eq!(
        handle.outcome().await.unwrap(),
        Outcome::Completed(vec!["trk-7".to_owned(), "trk-7".to_owned()])
    );
    let page = rt.list(None, 1000).await.unwrap();
    let mut children: Vec<String> = page
        .instances
        .into_iter()
        .map(|status| status.unwrap())
        .filter(|status| status.parent.as_deref() == Some(id.as_str()))
        .map(|status| status.id)
        .collect();
    children.sort();
    assert_eq!(children.len(), 2, "{children:?}");
    assert!(
        children
            .iter()
            .all(|child| child.starts_with(&format!("{id}/Ship1/"))),
        "{children:?}"
    );
    assert_ne!(children[0], children[1]);
    assert_eq!(entries(&format!("{id}-r0")), ["pack", "book 7"]);
    assert_eq!(entries(&format!("{id}-r1")), ["pack", "book 7"]);
}

async fn cancelling_a_parent_cancels_its_child_then_compensates(rt: Runtime, store: &str) {
    let id = format!("{store}-cancel");
    let child_id = format!("{id}/SlowShip2");
    let handle = rt.start(slow_order, id.clone(), job(&id)).await.unwrap();
    // Wait until the child waits for its signal.
    let mut waited = Duration::ZERO;
    loop {
        let child = rt.status(&child_id).await.unwrap();
        if child.is_some_and(|child| child.phase == Phase::Waiting) {
            break;
        }
        assert!(waited < Duration::from_secs(30), "the child never waited");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    let parent = rt.status(&id).await.unwrap().unwrap();
    assert_eq!(parent.phase, Phase::Waiting);
    assert_eq!(parent.children, std::slice::from_ref(&child_id));
    assert!(
        !parent.lease.is_live(parent.updated_at + 1),
        "a parent waiting for its child holds no lease: {:?}",
        parent.lease
    );
    rt.cancel(&id).await.unwrap();
    let Outcome::Compensated(failure) = handle.outcome().await.unwrap() else {
        panic!("the cancelled parent rolls back")
    };
    assert!(failure.is_cancelled(), "{failure}");
    assert_eq!(
        entries(&id),
        ["open", "pack", "unpack 7", &format!("close acct-{id}")]
    );
    let child = rt.status(&child_id).await.unwrap().unwrap();
    assert_eq!(child.phase, Phase::Compensated);
    assert!(child.cancel_requested);
}

async fn a_child_past_its_pivot_takes_the_parent_past_its_pivot(rt: Runtime, store: &str) {
    let id = format!("{store}-final");
    let input = Job {
        parent_fails: true,
        ..job(&id)
    };
    let handle = rt.start(final_order, id.clone(), input).await.unwrap();
    let Outcome::Failed(failure) = handle.outcome().await.unwrap() else {
        panic!("nothing can be undone after the child's pivot: an operator must look")
    };
    assert!(failure.to_string().contains("billing is down"), "{failure}");
    assert_eq!(entries(&id), ["open", "pack", "commit", "bill refused"]);
    let parent = rt.status(&id).await.unwrap().unwrap();
    assert!(parent.pivot_passed);
}

#[tokio::test]
async fn a_child_that_is_not_registered_is_refused_at_build() {
    let built = Runtime::builder()
        .store(MemoryStore::new())
        .register(order)
        .build()
        .await;
    let Err(error) = built else {
        panic!("the runtime must not build")
    };
    assert!(matches!(error, Error::UnregisteredChild { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "workflow `order` runs child workflow `ship`, which is not registered: call `.register(ship)` on the runtime builder"
    );
}

#[tokio::test]
async fn outside_a_workflow_child_is_an_error() {
    let result = sagaflow::child(ship, job("outside")).await;
    let error = result.expect_err("no parent to wait");
    assert!(
        error.to_string().contains("only in a `#[workflow]` body"),
        "{error}"
    );
}

/// Parents and children on a store that fails, times out after applying,
/// and conflicts spuriously: every parent ends as its script says, and the
/// side effects of parent and child come in order (a step or compensation
/// whose write was lost runs again right away, under the same key). No
/// wake-up of a parent is lost for good: a lost one is made up by the
/// parent's re-check.
#[tokio::test(start_paused = true)]
async fn children_finish_on_a_faulty_store() {
    use sagaflow_testkit::{Faults, FaultyStore};
    const FAULTS: Faults = Faults {
        error_before_apply: 0.04,
        timeout_after_apply: 0.03,
        conflict: 0.03,
        max_latency: Duration::from_millis(3),
    };
    let mut injected = 0;
    for seed in 0..4u64 {
        let store = std::sync::Arc::new(FaultyStore::new(MemoryStore::new(), FAULTS, seed));
        let rt = loop {
            match Runtime::builder()
                .store(std::sync::Arc::clone(&store))
                .register(order)
                .register(ship)
                .workers(8)
                .build()
                .await
            {
                Ok(rt) => break rt,
                Err(Error::Store(_)) => continue,
                Err(error) => panic!("build: {error}"),
            }
        };
        let mut handles = Vec::new();
        for n in 0..12u32 {
            let id = format!("faulty-{seed}-{n}");
            let input = Job {
                child_fails: n % 3 == 1,
                parent_fails: n % 3 == 2,
                ..job(&id)
            };
            let handle = loop {
                match rt.start(order, id.clone(), input.clone()).await {
                    Ok(handle) => break handle,
                    Err(Error::Store(_) | Error::NotFound(_)) => continue,
                    Err(error) => panic!("{id}: start: {error}"),
                }
            };
            handles.push((n, id, handle));
        }
        for (n, id, handle) in handles {
            let outcome = loop {
                match tokio::time::timeout(Duration::from_secs(3600), handle.outcome()).await {
                    Ok(Ok(outcome)) => break outcome,
                    Ok(Err(Error::Store(_) | Error::Corrupt { .. })) => continue,
                    Ok(Err(error)) => panic!("{id}: {error}"),
                    Err(_) => panic!("{id}: no outcome within an hour: a lost wake-up"),
                }
            };
            let mut effects = entries(&id);
            effects.dedup();
            let close = format!("close acct-{id}");
            let expected: Vec<&str> = match n % 3 {
                0 => vec!["open", "pack", "book 7", "bill trk-7"],
                1 => vec!["open", "pack", "book refused", "unpack 7", &close],
                _ => vec![
                    "open",
                    "pack",
                    "book 7",
                    "bill refused",
                    "unbook trk-7 7",
                    "unpack 7",
                    &close,
                ],
            };
            assert_eq!(effects, expected, "{id}: {outcome:?}");
            assert_eq!(
                matches!(outcome, Outcome::Completed(_)),
                n % 3 == 0,
                "{id}: {outcome:?}"
            );
        }
        let counts = store.injected();
        injected += counts.errors_before + counts.timeouts_after + counts.conflicts;
        rt.shutdown().await;
    }
    assert!(injected > 50, "faults were injected: {injected}");
}

/// A store that loses, once each, the write that creates a child and the
/// write that wakes its parent, as a crash between the two writes of a
/// hand-over would.
struct LosesHandOvers {
    inner: MemoryStore,
    child_key: String,
    lost_start: std::sync::atomic::AtomicBool,
    lost_wake: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Store for LosesHandOvers {
    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<sagaflow::store::Versioned>, sagaflow::StoreError> {
        self.inner.get(key).await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        expect: sagaflow::store::Expect,
    ) -> Result<u64, sagaflow::StoreError> {
        use std::sync::atomic::Ordering;
        let lost = || sagaflow::StoreError::Unavailable("lost on purpose".into());
        if key == self.child_key && !self.lost_start.swap(true, Ordering::SeqCst) {
            return Err(lost());
        }
        // A wake-up makes the waiting parent due at the time it writes,
        // and, unlike a claim, leaves its lease free.
        if let Ok(record) = sagaflow::record::decode(&value)
            && record.awaiting_child.is_some()
            && record.next_run_at == Some(record.updated_at)
            && !record.lease.is_live(record.updated_at)
            && !self.lost_wake.swap(true, Ordering::SeqCst)
        {
            return Err(lost());
        }
        self.inner.put(key, value, expect).await
    }

    async fn delete(
        &self,
        key: &str,
        expect: sagaflow::store::Expect,
    ) -> Result<(), sagaflow::StoreError> {
        self.inner.delete(key, expect).await
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<sagaflow::store::ScanPage, sagaflow::StoreError> {
        self.inner.scan(prefix, after, limit).await
    }

    fn name(&self) -> &'static str {
        "loses-hand-overs"
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_child_start_and_a_lost_wake_up_are_made_up_by_the_re_check() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let id = "lost-hand-overs";
    let store = std::sync::Arc::new(LosesHandOvers {
        inner: MemoryStore::new(),
        child_key: format!("instances/{id}/Ship2"),
        lost_start: AtomicBool::new(false),
        lost_wake: AtomicBool::new(false),
    });
    let recheck = Duration::from_secs(30);
    let rt = Runtime::builder()
        .store(std::sync::Arc::clone(&store))
        .register(order)
        .register(ship)
        .recovery_interval(recheck)
        .build()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let handle = rt.start(order, id, job(id)).await.unwrap();
    assert_eq!(
        handle.outcome().await.unwrap(),
        Outcome::Completed(format!("acct-{id} trk-7 inv-1"))
    );
    assert!(store.lost_start.load(Ordering::SeqCst) && store.lost_wake.load(Ordering::SeqCst));
    // Two re-checks: one started the child, one found it ended.
    assert!(started.elapsed() >= recheck * 2, "{:?}", started.elapsed());
    assert_eq!(entries(id), ["open", "pack", "book 7", "bill trk-7"]);
}

#[tokio::test(start_paused = true)]
async fn a_parent_cancelled_before_its_lost_child_started_never_starts_it() {
    use std::sync::atomic::AtomicBool;
    let id = "cancel-before-child";
    let child_id = format!("{id}/Ship2");
    let store = std::sync::Arc::new(LosesHandOvers {
        inner: MemoryStore::new(),
        child_key: format!("instances/{child_id}"),
        lost_start: AtomicBool::new(false),
        lost_wake: AtomicBool::new(true),
    });
    let rt = Runtime::builder()
        .store(std::sync::Arc::clone(&store))
        .register(order)
        .register(ship)
        .build()
        .await
        .unwrap();
    let handle = rt.start(order, id, job(id)).await.unwrap();
    // The parent waits for a child whose start was lost.
    loop {
        let parent = rt.status(id).await.unwrap().unwrap();
        if parent.phase == Phase::Waiting {
            assert_eq!(parent.children, std::slice::from_ref(&child_id));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(rt.status(&child_id).await.unwrap().is_none());
    rt.cancel(id).await.unwrap();
    let Outcome::Compensated(failure) = handle.outcome().await.unwrap() else {
        panic!("the cancelled parent rolls back")
    };
    assert!(failure.is_cancelled(), "{failure}");
    assert_eq!(entries(id), ["open", &format!("close acct-{id}")]);
    assert!(
        rt.status(&child_id).await.unwrap().is_none(),
        "the child is never started"
    );
}
