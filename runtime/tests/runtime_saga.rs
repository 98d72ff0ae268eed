//! What a user of the runtime observes when sagas run: outcomes, the order
//! of side effects, retries on (paused) time, and the status.

mod common;

use std::time::Duration;

use common::{
    EACH_STEP_ONCE, Order, Payment, Receipt, Shipment, log_of, ping, place_order, runtime,
};
use sagaflow::{EventKind, Failure, MemoryStore, Outcome, Phase};

fn receipt(key: &str) -> Receipt {
    Receipt {
        order: key.to_owned(),
        payment: Payment { amount: 42 },
        shipment: Shipment {
            tracking: format!("T-R-{key}"),
        },
    }
}

#[tokio::test(start_paused = true)]
async fn a_saga_whose_steps_succeed_completes_with_its_output() {
    let rt = runtime(MemoryStore::new()).await;
    let handle = rt
        .start(place_order, "happy", Order::new("happy"))
        .await
        .expect("starts");
    assert_eq!(
        handle.outcome().await.expect("ends"),
        Outcome::Completed(receipt("happy"))
    );
    assert_eq!(log_of("happy"), EACH_STEP_ONCE);

    let status = rt.status("happy").await.expect("reads").expect("exists");
    assert_eq!(status.phase, Phase::Completed);
    assert_eq!(status.workflow, "place_order");
    assert_eq!(status.state, "SendConfirmation3");
    assert_eq!(
        status.fingerprint,
        common::PLACE_ORDER_MACHINE.fingerprint()
    );
    assert!(status.pivot_passed);
    assert_eq!(
        status.compensation_stack.len(),
        2,
        "reserve and charge are compensable"
    );
    assert_eq!(status.blocked, None);
    let kinds: Vec<EventKind> = status.history.iter().map(|event| event.kind).collect();
    use EventKind::*;
    assert_eq!(
        kinds,
        [
            Created,
            StepStarted,
            StepSucceeded,
            StepStarted,
            StepSucceeded,
            StepStarted,
            StepSucceeded,
            StepStarted,
            StepSucceeded,
            Completed
        ]
    );
    let steps: Vec<&str> = status
        .history
        .iter()
        .filter_map(|event| event.step.as_deref())
        .step_by(2)
        .collect();
    assert_eq!(
        steps,
        [
            "reserve_inventory",
            "charge_payment",
            "create_shipment",
            "send_confirmation"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_failing_for_good_compensates_the_completed_steps_in_reverse_order() {
    let rt = runtime(MemoryStore::new()).await;
    let order = Order::new("pivot-fails").failing_permanently("create_shipment");
    let handle = rt
        .start(place_order, "pivot-fails", order)
        .await
        .expect("starts");
    let outcome = handle.outcome().await.expect("ends");
    let Outcome::Compensated(failure) = outcome else {
        panic!("expected Compensated, got {outcome:?}")
    };
    assert_eq!(failure.step.as_deref(), Some("create_shipment"));
    assert_eq!(
        failure.to_string(),
        "step `create_shipment` failed: create_shipment failed (attempt 1)"
    );
    assert_eq!(
        log_of("pivot-fails"),
        [
            "reserve_inventory#1",
            "charge_payment#1",
            "create_shipment#1",
            "refund_payment(42)#1",
            "release_inventory(R-pivot-fails)#1",
        ]
    );
    let status = rt
        .status("pivot-fails")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.phase, Phase::Compensated);
    assert!(status.compensation_stack.is_empty());
    assert_eq!(status.failure, Some(failure));
}

#[tokio::test(start_paused = true)]
async fn a_failing_step_is_retried_with_backoff_then_succeeds() {
    let rt = runtime(MemoryStore::new()).await;
    let started = tokio::time::Instant::now();
    let order = Order::new("flaky").failing("charge_payment", 2);
    let handle = rt.start(place_order, "flaky", order).await.expect("starts");
    assert_eq!(
        handle.outcome().await.expect("ends"),
        Outcome::Completed(receipt("flaky"))
    );
    assert_eq!(
        log_of("flaky"),
        [
            "reserve_inventory#1",
            "charge_payment#1",
            "charge_payment#2",
            "charge_payment#3",
            "create_shipment#1",
            "send_confirmation#1",
        ]
    );
    // initial = 1s, backoff = 2.0: 1s before attempt 2, 2s before attempt 3.
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
        "waited {waited:?}"
    );

    let status = rt.status("flaky").await.expect("reads").expect("exists");
    let retries: Vec<(Option<u32>, Option<String>)> = status
        .history
        .iter()
        .filter(|event| event.kind == EventKind::StepRetried)
        .map(|event| (event.attempt, event.error.clone()))
        .collect();
    assert_eq!(
        retries,
        [
            (
                Some(1),
                Some("charge_payment failed (attempt 1)".to_owned())
            ),
            (
                Some(2),
                Some("charge_payment failed (attempt 2)".to_owned())
            ),
        ]
    );
    assert_eq!(
        status.last_error.as_deref(),
        Some("charge_payment failed (attempt 2)")
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_out_of_attempts_compensates() {
    let rt = runtime(MemoryStore::new()).await;
    let order = Order::new("broke").failing("charge_payment", u32::MAX);
    let handle = rt.start(place_order, "broke", order).await.expect("starts");
    let outcome = handle.outcome().await.expect("ends");
    assert_eq!(
        outcome,
        Outcome::Compensated(Failure {
            message: "charge_payment failed (attempt 4)".to_owned(),
            step: Some("charge_payment".to_owned()),
        })
    );
    assert_eq!(
        log_of("broke"),
        [
            "reserve_inventory#1",
            "charge_payment#1",
            "charge_payment#2",
            "charge_payment#3",
            "charge_payment#4",
            "release_inventory(R-broke)#1",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_not_retried() {
    let rt = runtime(MemoryStore::new()).await;
    let order = Order::new("declined").failing_permanently("charge_payment");
    let handle = rt
        .start(place_order, "declined", order)
        .await
        .expect("starts");
    assert!(matches!(
        handle.outcome().await.expect("ends"),
        Outcome::Compensated(_)
    ));
    assert_eq!(
        log_of("declined"),
        [
            "reserve_inventory#1",
            "charge_payment#1",
            "release_inventory(R-declined)#1"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_pivot_fails_without_compensating() {
    let rt = runtime(MemoryStore::new()).await;
    let order = Order::new("after-pivot").failing_permanently("send_confirmation");
    let handle = rt
        .start(place_order, "after-pivot", order)
        .await
        .expect("starts");
    let outcome = handle.outcome().await.expect("ends");
    let Outcome::Failed(failure) = outcome else {
        panic!("expected Failed, got {outcome:?}")
    };
    assert_eq!(failure.step.as_deref(), Some("send_confirmation"));
    assert_eq!(log_of("after-pivot"), EACH_STEP_ONCE);
    let status = rt
        .status("after-pivot")
        .await
        .expect("reads")
        .expect("exists");
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(status.compensation_stack.len(), 2, "nothing was undone");
}

#[tokio::test(start_paused = true)]
async fn a_compensation_that_keeps_failing_ends_failed_with_the_reason() {
    // No store polling: the handle must be woken by the worker's writes.
    let rt = sagaflow::Runtime::builder()
        .register(place_order)
        .poll_interval(Duration::from_secs(24 * 3600))
        .store(MemoryStore::new())
        .build()
        .await
        .expect("builds");
    let order = Order::new("stuck")
        .failing_permanently("create_shipment")
        .failing("refund_payment(42)", u32::MAX);
    let handle = rt.start(place_order, "stuck", order).await.expect("starts");
    let outcome = handle.outcome().await.expect("ends");
    let Outcome::Failed(failure) = outcome else {
        panic!("expected Failed, got {outcome:?}")
    };
    assert_eq!(failure.step.as_deref(), Some("charge_payment"));
    let cap = sagaflow::RetryPolicy::RETRY_UNTIL_SUCCESS_CAP;
    assert_eq!(
        failure.message,
        format!(
            "compensation of step `charge_payment` failed after {cap} attempt(s): refund_payment(42) failed \
             (attempt {cap}) (rolling back because step `create_shipment` failed: create_shipment failed (attempt 1))"
        )
    );
    let log = log_of("stuck");
    let refunds = log
        .iter()
        .filter(|entry| entry.starts_with("refund_payment"))
        .count();
    assert_eq!(refunds, cap as usize);
    assert!(
        !log.iter()
            .any(|entry| entry.starts_with("release_inventory")),
        "stops at the failing compensation"
    );
    let status = rt.status("stuck").await.expect("reads").expect("exists");
    assert_eq!(status.phase, Phase::Failed);
    assert_eq!(
        status.compensation_stack.len(),
        2,
        "the stack is kept for an operator"
    );
}

#[tokio::test(start_paused = true)]
async fn starting_an_id_twice_runs_it_once() {
    let rt = runtime(MemoryStore::new()).await;
    let first = rt
        .start(place_order, "twice", Order::new("twice"))
        .await
        .expect("starts");
    let second = rt
        .start(place_order, "twice", Order::new("ignored"))
        .await
        .expect("attaches");
    let (first, second) = tokio::join!(first.outcome(), second.outcome());
    assert_eq!(first.expect("ends"), Outcome::Completed(receipt("twice")));
    assert_eq!(second.expect("ends"), Outcome::Completed(receipt("twice")));
    let third = rt
        .start(place_order, "twice", Order::new("ignored"))
        .await
        .expect("attaches after the end");
    assert_eq!(
        third.outcome().await.expect("ends"),
        Outcome::Completed(receipt("twice"))
    );
    assert_eq!(log_of("twice"), EACH_STEP_ONCE);
    assert!(log_of("ignored").is_empty());
}

#[tokio::test(start_paused = true)]
async fn starting_an_id_of_another_workflow_is_refused() {
    let rt = runtime(MemoryStore::new()).await;
    let echo = rt
        .start(ping, "shared", "hello".to_owned())
        .await
        .expect("starts");
    let error = rt
        .start(place_order, "shared", Order::new("shared"))
        .await
        .expect_err("the id is taken");
    assert!(
        matches!(&error, sagaflow::Error::IdInUse { id, existing, requested }
            if id == "shared" && existing == "ping" && requested == "place_order"),
        "{error:?}"
    );
    assert_eq!(
        echo.outcome().await.expect("ends"),
        Outcome::Completed("hello".to_owned())
    );
    assert!(log_of("shared").is_empty());
}

/// Waits (on paused time, so instantly) until `condition` holds.
async fn until(mut condition: impl AsyncFnMut() -> bool) {
    for _ in 0..10_000 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the condition never held");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_instance_compensates_its_completed_steps() {
    let rt = runtime(MemoryStore::new()).await;
    let order = Order::new("cancel-running").gated("charge_payment");
    let handle = rt
        .start(place_order, "cancel-running", order)
        .await
        .expect("starts");
    until(async || log_of("cancel-running").len() == 2).await;
    rt.cancel("cancel-running").await.expect("cancels");
    // The step in flight finishes; its result is kept, then undone.
    common::release("cancel-running", "charge_payment");
    let outcome = handle.outcome().await.expect("ends");
    let Outcome::Compensated(failure) = outcome else {
        panic!("expected Compensated, got {outcome:?}")
    };
    assert!(failure.is_cancelled());
    assert_eq!(failure.to_string(), "cancelled");
    assert_eq!(
        log_of("cancel-running"),
        [
            "reserve_inventory#1",
            "charge_payment#1",
            "refund_payment(42)#1",
            "release_inventory(R-cancel-running)#1",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_wakes_an_instance_waiting_to_retry() {
    let rt = runtime(MemoryStore::new()).await;
    let order = Order::new("cancel-waiting").failing("charge_payment", u32::MAX);
    let handle = rt
        .start(place_order, "cancel-waiting", order)
        .await
        .expect("starts");
    until(async || {
        let status = rt
            .status("cancel-waiting")
            .await
            .expect("reads")
            .expect("exists");
        status.phase == Phase::Waiting
    })
    .await;
    let before = tokio::time::Instant::now();
    rt.cancel("cancel-waiting").await.expect("cancels");
    assert!(
        matches!(handle.outcome().await.expect("ends"), Outcome::Compensated(failure) if failure.is_cancelled())
    );
    assert!(
        before.elapsed() < Duration::from_millis(500),
        "the backoff sleep was cut short"
    );
    assert_eq!(
        log_of("cancel-waiting"),
        [
            "reserve_inventory#1",
            "charge_payment#1",
            "release_inventory(R-cancel-waiting)#1"
        ]
    );
    let status = rt
        .status("cancel-waiting")
        .await
        .expect("reads")
        .expect("exists");
    assert!(status.cancel_requested);
    assert!(
        status
            .history
            .iter()
            .any(|event| event.kind == EventKind::CancelRequested)
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_of_an_unknown_id_is_not_found() {
    let rt = runtime(MemoryStore::new()).await;
    assert!(
        matches!(rt.cancel("nobody").await, Err(sagaflow::Error::NotFound(id)) if id == "nobody")
    );
    assert!(rt.status("nobody").await.expect("reads").is_none());
}

#[tokio::test(start_paused = true)]
async fn list_pages_through_instances_in_id_order() {
    let rt = runtime(MemoryStore::new()).await;
    let mut handles = Vec::new();
    for id in ["list-c", "list-a", "list-b"] {
        handles.push(rt.start(ping, id, id.to_owned()).await.expect("starts"));
    }
    for handle in handles {
        handle.outcome().await.expect("ends");
    }
    let first = rt.list(None, 2).await.expect("lists");
    let ids: Vec<String> = first
        .instances
        .iter()
        .map(|status| status.as_ref().expect("decodes").id.clone())
        .collect();
    assert_eq!(ids, ["list-a", "list-b"]);
    let next = first.next.expect("a second page");
    let second = rt.list(Some(&next), 2).await.expect("lists");
    let ids: Vec<String> = second
        .instances
        .iter()
        .map(|status| status.as_ref().expect("decodes").id.clone())
        .collect();
    assert_eq!(ids, ["list-c"]);
    assert_eq!(second.next, None);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_step_fails_the_instance_not_the_runtime() {
    let rt = runtime(MemoryStore::new()).await;
    let order = Order::new("panics").panicking("charge_payment");
    let handle = rt
        .start(place_order, "panics", order)
        .await
        .expect("starts");
    let outcome = handle.outcome().await.expect("ends");
    let Outcome::Compensated(failure) = outcome else {
        panic!("expected Compensated, got {outcome:?}")
    };
    assert_eq!(
        failure.to_string(),
        "step `charge_payment` failed: the step panicked: charge_payment panicked"
    );
    assert_eq!(
        log_of("panics"),
        [
            "reserve_inventory#1",
            "charge_payment#1",
            "release_inventory(R-panics)#1"
        ]
    );
    // The runtime still runs other instances.
    let next = rt
        .start(place_order, "after-panic", Order::new("after-panic"))
        .await
        .expect("starts");
    assert_eq!(
        next.outcome().await.expect("ends"),
        Outcome::Completed(receipt("after-panic"))
    );
}
