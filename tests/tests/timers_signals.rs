//! Durable timers, signals, queries and the deterministic helpers, run by
//! the runtime on paused tokio time, and idempotency keys in loops.

use std::sync::Mutex;
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::{Error, Phase};
use serde::{Deserialize, Serialize};

/// What the steps did, in order, across every test in this file; each test
/// filters by its own instance ids.
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

#[step(readonly)]
async fn note(id: String, what: String) -> Result<(), StepError> {
    log(format!("{id} {what}"));
    Ok(())
}

#[step]
async fn hold_seat(id: String) -> Result<String, StepError> {
    log(format!("{id} hold"));
    Ok(format!("seat-{id}"))
}

#[compensate(hold_seat)]
async fn release_seat(id: String, seat: String) -> Result<(), StepError> {
    log(format!("{id} release {seat}"));
    Ok(())
}

/// Notes, sleeps an hour, notes again.
#[workflow]
async fn reminder(id: String) -> Result<u64, WorkflowError> {
    note(id.clone(), "before".to_owned()).await?;
    let slept_at: std::time::SystemTime = sagaflow::now();
    sagaflow::sleep(Duration::from_secs(3600)).await;
    let woke_at = sagaflow::now();
    let waited: u64 = woke_at
        .duration_since(slept_at)
        .map_or(0, |waited| waited.as_secs());
    note(id, format!("after {waited}s")).await?;
    Ok(waited)
}

/// Holds a seat, then waits for an approval for up to a day: approved →
/// done; rejected or timed out → the seat is released.
#[workflow]
async fn approval_flow(id: String) -> Result<String, WorkflowError> {
    let seat = hold_seat(id.clone()).await?;
    sagaflow::set_status("waiting");
    let answer: Option<bool> =
        sagaflow::signal_timeout("approval", Duration::from_secs(24 * 3600)).await;
    match answer {
        Some(true) => {
            sagaflow::set_status("approved");
            Ok(seat)
        }
        Some(false) => {
            sagaflow::set_status("rejected");
            Err(WorkflowError::new("rejected"))
        }
        None => {
            sagaflow::set_status("timed out");
            Err(WorkflowError::new("no answer in time"))
        }
    }
}

/// Sums `count` numbers sent as signals `n`, in the order they were sent.
#[workflow]
async fn summer(count: u32) -> Result<Vec<u32>, WorkflowError> {
    let mut seen: Vec<u32> = Vec::new();
    for _ in 0..count {
        let value = sagaflow::signal::<u32>("n").await;
        seen.push(value);
    }
    Ok(seen)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ids {
    first: String,
    second: String,
    roll: u64,
}

/// Draws ids in its first segment, passes them to a step.
#[workflow]
async fn draws(id: String) -> Result<Ids, WorkflowError> {
    let ids: Ids = Ids {
        first: sagaflow::uuid(),
        second: sagaflow::uuid(),
        roll: sagaflow::random(),
    };
    note(id, format!("{} {} {}", ids.first, ids.second, ids.roll)).await?;
    Ok(ids)
}

#[step(retry(max_attempts = 3, initial = "1s"))]
async fn charge_line(line: u32) -> Result<u32, StepError> {
    let ctx = sagaflow::context().expect("run by the runtime");
    log(format!(
        "charge {} attempt {}",
        ctx.idempotency_key(),
        ctx.attempt
    ));
    if line == 1 && ctx.attempt == 1 {
        return Err(StepError::retryable("gateway busy"));
    }
    Ok(line)
}

#[compensate(charge_line)]
async fn refund_line(line: u32, charged: u32) -> Result<(), StepError> {
    log(format!("refund {line} {charged}"));
    Ok(())
}

#[step(readonly)]
async fn total(lines: u32) -> Result<u32, StepError> {
    let ctx = sagaflow::context().expect("run by the runtime");
    log(format!("charge {} total {lines}", ctx.idempotency_key()));
    Ok(lines)
}

/// One step per line in a loop, then one step after it.
#[workflow]
async fn charge_lines(lines: u32) -> Result<u32, WorkflowError> {
    for line in 0..lines {
        charge_line(line).await?;
    }
    let sum = total(lines).await?;
    Ok(sum)
}

async fn runtime(store: MemoryStore) -> Runtime {
    Runtime::builder()
        .store(store)
        .register(reminder)
        .register(approval_flow)
        .register(summer)
        .register(draws)
        .register(charge_lines)
        // Handles re-read the store every poll interval: fewer rounds
        // through a paused day.
        .poll_interval(Duration::from_secs(60))
        .build()
        .await
        .expect("the runtime builds")
}

/// Lets the runtime's tasks run without advancing paused time past `by`.
async fn settle(by: Duration) {
    tokio::time::sleep(by).await;
}

#[tokio::test(start_paused = true)]
async fn a_sleep_is_durable_and_holds_no_lease() {
    let rt = runtime(MemoryStore::new()).await;
    let handle = rt
        .start(reminder, "sleep-1", "sleep-1".to_owned())
        .await
        .unwrap();
    settle(Duration::from_secs(60)).await;
    let status = rt.status("sleep-1").await.unwrap().unwrap();
    assert_eq!(status.phase, Phase::Waiting);
    assert_eq!(status.state, "Sleep2");
    let due = status.next_run_at.expect("a wake-up time");
    assert!(
        due >= status.created_at + 3_600_000,
        "{due} vs {}",
        status.created_at
    );
    assert!(
        !status
            .lease
            .is_live(status.updated_at.max(status.created_at) + 1),
        "a sleeping instance holds no lease: {:?}",
        status.lease
    );
    assert_eq!(entries("sleep-1 "), ["sleep-1 before"]);
    assert_eq!(
        handle.outcome().await.unwrap(),
        Outcome::Completed(3600),
        "now() after the sleep is at least an hour later"
    );
    assert_eq!(
        entries("sleep-1 "),
        ["sleep-1 before", "sleep-1 after 3600s"]
    );
    let kinds: Vec<_> = rt
        .status("sleep-1")
        .await
        .unwrap()
        .unwrap()
        .history
        .iter()
        .map(|event| format!("{:?}", event.kind))
        .collect();
    assert!(kinds.contains(&"TimerStarted".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"TimerFired".to_owned()), "{kinds:?}");
}

#[tokio::test(start_paused = true)]
async fn a_sleeping_instance_survives_a_restart() {
    let store = MemoryStore::new();
    let first = runtime(store.clone()).await;
    first
        .start(reminder, "sleep-2", "sleep-2".to_owned())
        .await
        .unwrap();
    settle(Duration::from_secs(10)).await;
    first.shutdown().await;
    assert_eq!(
        first.status("sleep-2").await.unwrap().unwrap().phase,
        Phase::Waiting
    );
    drop(first);
    // A new process on the same store; time passes while it runs.
    let second = runtime(store).await;
    let outcome = second.handle(reminder, "sleep-2").outcome().await.unwrap();
    assert_eq!(outcome, Outcome::Completed(3600));
    assert_eq!(
        entries("sleep-2 "),
        ["sleep-2 before", "sleep-2 after 3600s"]
    );
}

#[tokio::test(start_paused = true)]
async fn an_approval_completes_and_the_status_follows() {
    let rt = runtime(MemoryStore::new()).await;
    let handle = rt
        .start(approval_flow, "appr-1", "appr-1".to_owned())
        .await
        .unwrap();
    settle(Duration::from_secs(5)).await;
    let status = rt.status("appr-1").await.unwrap().unwrap();
    assert_eq!(status.phase, Phase::Waiting);
    assert_eq!(status.state, "SignalTimeout2");
    // The status names the awaited signal and when the wait times out.
    let awaited = status.awaiting_signal.expect("waits for a signal");
    assert_eq!(awaited.name, "approval");
    assert_eq!(
        awaited.timeout_at,
        Some(status.updated_at + 24 * 3600 * 1000)
    );
    assert_eq!(
        rt.query::<String>("appr-1").await.unwrap().as_deref(),
        Some("waiting")
    );
    rt.signal("appr-1", "approval", true).await.unwrap();
    assert_eq!(
        handle.outcome().await.unwrap(),
        Outcome::Completed("seat-appr-1".to_owned())
    );
    let ended = rt.status("appr-1").await.unwrap().unwrap();
    assert_eq!(
        ended.awaiting_signal, None,
        "an ended instance waits for nothing"
    );
    assert_eq!(
        rt.query::<String>("appr-1").await.unwrap().as_deref(),
        Some("approved")
    );
    assert_eq!(entries("appr-1 "), ["appr-1 hold"]);
    // An ended instance takes no more signals.
    assert!(matches!(
        rt.signal("appr-1", "approval", true).await,
        Err(Error::InstanceEnded {
            phase: Phase::Completed,
            ..
        })
    ));
    assert!(matches!(
        rt.signal("nobody", "approval", true).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn an_approval_that_times_out_compensates() {
    let rt = runtime(MemoryStore::new()).await;
    let handle = rt
        .start(approval_flow, "appr-2", "appr-2".to_owned())
        .await
        .unwrap();
    let Outcome::Compensated(failure) = handle.outcome().await.unwrap() else {
        panic!("a timed-out approval compensates")
    };
    assert_eq!(failure.to_string(), "no answer in time");
    assert_eq!(
        entries("appr-2 "),
        ["appr-2 hold", "appr-2 release seat-appr-2"]
    );
    assert_eq!(
        rt.query::<String>("appr-2").await.unwrap().as_deref(),
        Some("timed out")
    );
}

#[tokio::test(start_paused = true)]
async fn a_rejection_sent_with_start_compensates() {
    let rt = runtime(MemoryStore::new()).await;
    let handle = rt
        .signal_with_start(
            approval_flow,
            "appr-3",
            "appr-3".to_owned(),
            "approval",
            false,
        )
        .await
        .unwrap();
    let Outcome::Compensated(failure) = handle.outcome().await.unwrap() else {
        panic!("a rejection compensates")
    };
    assert_eq!(failure.to_string(), "rejected");
    // With start on an existing instance: only the signal.
    let rt2 = rt.clone();
    let again = rt2
        .signal_with_start(
            approval_flow,
            "appr-4",
            "appr-4".to_owned(),
            "approval",
            true,
        )
        .await
        .unwrap();
    assert!(matches!(
        again.outcome().await.unwrap(),
        Outcome::Completed(_)
    ));
    assert!(matches!(
        rt.signal_with_start(
            approval_flow,
            "appr-4",
            "appr-4".to_owned(),
            "approval",
            true
        )
        .await,
        Err(Error::InstanceEnded { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn signals_sent_early_are_kept_in_order_and_consumed_once() {
    let rt = runtime(MemoryStore::new()).await;
    let handle = rt
        .signal_with_start(summer, "sum-1", 4, "n", 10_u32)
        .await
        .unwrap();
    for value in [20_u32, 30] {
        rt.signal("sum-1", "n", value).await.unwrap();
    }
    settle(Duration::from_secs(1)).await;
    let status = rt.status("sum-1").await.unwrap().unwrap();
    assert_eq!(status.phase, Phase::Waiting, "three of four arrived");
    let awaited = status.awaiting_signal.expect("waits for a signal");
    assert_eq!(awaited.name, "n");
    assert_eq!(
        awaited.timeout_at, None,
        "a plain signal wait has no timeout"
    );
    rt.signal("sum-1", "n", 40_u32).await.unwrap();
    rt.signal("sum-1", "other", 1_u32).await.unwrap();
    assert_eq!(
        handle.outcome().await.unwrap(),
        Outcome::Completed(vec![10, 20, 30, 40])
    );
}

#[tokio::test(start_paused = true)]
async fn a_signal_of_the_wrong_type_fails_the_workflow() {
    let rt = runtime(MemoryStore::new()).await;
    let handle = rt
        .signal_with_start(summer, "sum-2", 1, "n", "ten")
        .await
        .unwrap();
    let Outcome::Compensated(failure) = handle.outcome().await.unwrap() else {
        panic!("nothing to undo: compensated")
    };
    assert!(
        failure.to_string().contains("signal `n` carries a value"),
        "{failure}"
    );
}

#[tokio::test(start_paused = true)]
async fn deterministic_helpers_are_fixed_per_instance() {
    let rt = runtime(MemoryStore::new()).await;
    let a = rt
        .start(draws, "draw-1", "draw-1".to_owned())
        .await
        .unwrap();
    let b = rt
        .start(draws, "draw-2", "draw-2".to_owned())
        .await
        .unwrap();
    let (Outcome::Completed(a), Outcome::Completed(b)) =
        (a.outcome().await.unwrap(), b.outcome().await.unwrap())
    else {
        panic!("both complete")
    };
    assert_ne!(a.first, a.second);
    assert_ne!(a.first, b.first);
    assert_eq!(a.first.len(), 36);
    // The same instance, state and transition count give the same values.
    let store = MemoryStore::new();
    let again = runtime(store).await;
    let c = again
        .start(draws, "draw-1", "draw-1".to_owned())
        .await
        .unwrap();
    assert_eq!(c.outcome().await.unwrap(), Outcome::Completed(a));
}

#[tokio::test(start_paused = true)]
async fn each_loop_iteration_has_its_own_idempotency_key() {
    let rt = runtime(MemoryStore::new()).await;
    let handle = rt.start(charge_lines, "lines-1", 3).await.unwrap();
    assert_eq!(handle.outcome().await.unwrap(), Outcome::Completed(3));
    assert_eq!(
        entries("charge lines-1/"),
        [
            // Entering the loop from `Start` is a committed transition (it
            // stores the loop's position), so the first iteration's is 1.
            "charge lines-1/ChargeLine1/1 attempt 1",
            "charge lines-1/ChargeLine1/2 attempt 1",
            "charge lines-1/ChargeLine1/2 attempt 2",
            "charge lines-1/ChargeLine1/3 attempt 1",
            // Not on a cycle: the key has no count.
            "charge lines-1/Total2 total 3",
        ]
    );
}

#[test]
fn approval_flow_mermaid() {
    insta::assert_snapshot!(approval_flow.state_machine().to_mermaid());
}

#[test]
fn reminder_mermaid() {
    insta::assert_snapshot!(reminder.state_machine().to_mermaid());
}

/// The generated code, driven by hand: a signal state suspends without its
/// signal, consumes it when given, and takes the timeout branch when told.
#[tokio::test]
async fn a_signal_state_driven_by_hand() {
    use sagaflow::__private::{Driver, Transition};
    type W = approval_flow;
    let mut state = <W as Workflow>::begin("hand-1".to_owned());
    for _ in 0..2 {
        let mut driver = Driver::new("hand-1", <W as Workflow>::state_name(&state), 1);
        let Transition::Next(next) = <W as Workflow>::resume(state, &mut driver).await else {
            panic!("Start and the step lead on")
        };
        state = next;
    }
    assert_eq!(<W as Workflow>::state_name(&state), "SignalTimeout2");
    let saved = serde_json::to_value(&state).unwrap();
    let reload = || serde_json::from_value(saved.clone()).unwrap();

    let mut waiting = Driver::new("hand-1", "SignalTimeout2", 1);
    assert!(matches!(
        <W as Workflow>::resume(reload(), &mut waiting).await,
        Transition::Suspend
    ));
    assert!(waiting.is_awaiting());

    let mut approved =
        Driver::new("hand-1", "SignalTimeout2", 1).with_signal(7, serde_json::json!(true));
    let Transition::Complete(seat) = <W as Workflow>::resume(reload(), &mut approved).await else {
        panic!("an approval completes")
    };
    assert_eq!(seat, "seat-hand-1");
    assert_eq!(approved.consumed(), Some(7));
    assert_eq!(approved.take_status(), Some(serde_json::json!("approved")));

    let mut late = Driver::new("hand-1", "SignalTimeout2", 1).with_timed_out(true);
    let Transition::Fail(error) = <W as Workflow>::resume(reload(), &mut late).await else {
        panic!("a timeout fails")
    };
    assert_eq!(error.to_string(), "no answer in time");
    assert_eq!(late.consumed(), None);
}

/// The coffee shop answers "status" and obeys "cancel-order" by refunding.
#[tokio::test(start_paused = true)]
async fn a_coffee_order_cancelled_after_payment_is_refunded() {
    use sagaflow_examples::coffee::{CoffeeOrder, CoffeeStatus, coffee_order};
    use sagaflow_examples::timeline::events_for;
    let rt = Runtime::builder()
        .store(MemoryStore::new())
        .register(coffee_order)
        .build()
        .await
        .unwrap();
    let order = CoffeeOrder {
        id: "ts-cup".into(),
        customer: "Eve".into(),
        beverage: "mocha".into(),
        price_cents: 500,
        card_declined: false,
        phone_off: false,
        beans_oversold: false,
    };
    let handle = rt.start(coffee_order, "ts-cup", order).await.unwrap();
    while rt.query::<CoffeeStatus>("ts-cup").await.unwrap() != Some(CoffeeStatus::Paid) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    rt.signal("ts-cup", "cancel-order", true).await.unwrap();
    let Outcome::Compensated(failure) = handle.outcome().await.unwrap() else {
        panic!("a cancelled order is refunded")
    };
    assert_eq!(failure.to_string(), "cancelled by the customer");
    assert_eq!(
        rt.query::<CoffeeStatus>("ts-cup").await.unwrap(),
        Some(CoffeeStatus::Refunded)
    );
    assert_eq!(
        events_for("ts-cup:"),
        [
            "ts-cup: charge 500 cents",
            "ts-cup: refund 500 (auth-ts-cup)"
        ]
    );
}
