//! `assert_compensation_order` reads the order compensations ran in, and
//! fails when it differs from the expected one or cannot be trusted.

use std::sync::LazyLock;
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow_testkit::{Journal, TestEnv, assert_compensation_order};
use serde::{Deserialize, Serialize};

static EFFECTS: LazyLock<Journal> = LazyLock::new(Journal::new);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    sku: String,
    ship_fails: bool,
}

#[step]
async fn reserve_inventory(order: &Order) -> Result<u32, StepError> {
    EFFECTS.record(format!("reserve {}", order.sku));
    Ok(7)
}

#[compensate(reserve_inventory)]
async fn release_inventory(order: &Order, hold: u32) -> Result<(), StepError> {
    EFFECTS.record(format!("release {} hold {hold}", order.sku));
    Ok(())
}

#[step]
async fn charge_payment(order: &Order) -> Result<String, StepError> {
    EFFECTS.record(format!("charge {}", order.sku));
    Ok(format!("ch-{}", order.sku))
}

#[compensate(charge_payment)]
async fn refund_payment(_order: &Order, charge: String) -> Result<(), StepError> {
    EFFECTS.record(format!("refund {charge}"));
    Ok(())
}

#[step(pivot)]
async fn ship(order: &Order) -> Result<(), StepError> {
    if order.ship_fails {
        return Err(StepError::permanent("no carrier"));
    }
    EFFECTS.record(format!("ship {}", order.sku));
    Ok(())
}

#[workflow]
async fn place_order(order: Order) -> Result<(), WorkflowError> {
    reserve_inventory(&order).await?;
    charge_payment(&order).await?;
    ship(&order).await?;
    Ok(())
}

async fn test_env() -> TestEnv {
    TestEnv::builder()
        .register(place_order)
        .register(wait_then_undo)
        .register(book_trip)
        .register(pack)
        .register(ship_parcel)
        .register(reserve_all)
        .build()
        .await
}

fn order(sku: &str, ship_fails: bool) -> Order {
    Order {
        sku: sku.to_owned(),
        ship_fails,
    }
}

/// The panic message of `test`, run as a task of its own.
async fn panic_of<F: Future<Output = ()> + Send + 'static>(test: F) -> String {
    let error = tokio::spawn(test)
        .await
        .expect_err("the assertion must fail");
    let payload = error.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn a_failed_saga_compensates_in_reverse_order_and_the_assertion_sees_it() {
    let env = test_env().await;
    let outcome = env.run(place_order, "reverse-1", order("mug", true)).await;
    assert!(matches!(outcome, Outcome::Compensated(_)), "{outcome:?}");
    assert_compensation_order(
        &env,
        place_order,
        "reverse-1",
        &["refund_payment", "release_inventory"],
    )
    .await;
    assert_eq!(
        EFFECTS.effects_of("reverse-1"),
        [
            "reserve mug",
            "charge mug",
            "refund ch-mug",
            "release mug hold 7"
        ]
    );
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "ran its compensations in another order")]
async fn the_wrong_order_fails_the_assertion() {
    let env = test_env().await;
    env.run(place_order, "wrong-1", order("mug", true)).await;
    assert_compensation_order(
        &env,
        place_order,
        "wrong-1",
        &["release_inventory", "refund_payment"],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_failure_shows_expected_and_actual_and_why() {
    let message = panic_of(async {
        let env = test_env().await;
        env.run(place_order, "message-1", order("mug", true)).await;
        assert_compensation_order(&env, place_order, "message-1", &["refund_payment"]).await;
    })
    .await;
    assert!(
        message.contains(r#"expected: ["refund_payment"]"#),
        "{message}"
    );
    assert!(
        message.contains(r#"actual: ["refund_payment", "release_inventory"]"#),
        "{message}"
    );
    assert!(
        message.contains("rolled back because: step `ship` failed: no carrier"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_completed_saga_ran_no_compensation() {
    let env = test_env().await;
    let outcome = env.run(place_order, "done-1", order("cup", false)).await;
    assert_eq!(outcome, Outcome::Completed(()));
    assert_compensation_order(&env, place_order, "done-1", &[]).await;
    let message = panic_of(async {
        let env = test_env().await;
        env.run(place_order, "done-2", order("cup", false)).await;
        assert_compensation_order(&env, place_order, "done-2", &["release_inventory"]).await;
    })
    .await;
    assert!(message.contains("actual: []"), "{message}");
}

#[step]
async fn hold_seat(n: &u32) -> Result<u32, StepError> {
    Ok(*n)
}

#[compensate(hold_seat)]
async fn free_seat(_n: &u32, _seat: u32) -> Result<(), StepError> {
    Ok(())
}

#[workflow]
async fn wait_then_undo(n: u32) -> Result<u32, WorkflowError> {
    let seat = hold_seat(&n).await?;
    let go: bool = sagaflow::signal("go").await;
    if !go {
        return Err(WorkflowError::new("told to stop"));
    }
    Ok(seat)
}

#[tokio::test(start_paused = true)]
async fn an_instance_still_running_cannot_be_asserted_on() {
    let message = panic_of(async {
        let env = test_env().await;
        env.start(wait_then_undo, "waiting-1", 3)
            .await
            .expect("starts");
        while env
            .status("waiting-1")
            .await
            .expect("status")
            .and_then(|status| status.awaiting_signal)
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_compensation_order(&env, wait_then_undo, "waiting-1", &[]).await;
    })
    .await;
    assert!(
        message.contains("instance `waiting-1` is still Waiting at state `Signal2`"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unknown_instance_or_another_workflow_fails_the_assertion() {
    let message = panic_of(async {
        let env = test_env().await;
        assert_compensation_order(&env, place_order, "nobody", &[]).await;
    })
    .await;
    assert!(message.contains("no instance `nobody`"), "{message}");

    let message = panic_of(async {
        let env = test_env().await;
        env.run(place_order, "other-1", order("mug", true)).await;
        assert_compensation_order(&env, wait_then_undo, "other-1", &[]).await;
    })
    .await;
    assert!(
        message.contains("runs workflow `place_order`, not `wait_then_undo`"),
        "{message}"
    );
}

// A join: the compensations run in the reverse of the order the branches
// completed in, which the history records.

#[step]
async fn book_flight(trip: &u32) -> Result<u32, StepError> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(*trip)
}

#[compensate(book_flight)]
async fn cancel_flight(_trip: &u32, _flight: u32) -> Result<(), StepError> {
    Ok(())
}

#[step]
async fn book_hotel(trip: &u32) -> Result<u32, StepError> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(*trip)
}

#[compensate(book_hotel)]
async fn cancel_hotel(_trip: &u32, _hotel: u32) -> Result<(), StepError> {
    Ok(())
}

#[step]
async fn rent_car(trip: &u32) -> Result<u32, StepError> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(*trip)
}

#[compensate(rent_car)]
async fn return_car(_trip: &u32, _car: u32) -> Result<(), StepError> {
    Ok(())
}

#[step(pivot)]
async fn pay_trip(_trip: &u32) -> Result<(), StepError> {
    Err(StepError::permanent("card declined"))
}

#[workflow]
async fn book_trip(trip: u32) -> Result<(), WorkflowError> {
    sagaflow::join!(book_flight(&trip), book_hotel(&trip), rent_car(&trip))?;
    pay_trip(&trip).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_join_is_undone_in_the_reverse_of_its_completion_order() {
    let env = test_env().await;
    let outcome = env.run(book_trip, "trip-1", 1).await;
    assert!(matches!(outcome, Outcome::Compensated(_)), "{outcome:?}");
    // Completed: hotel (1 s), car (2 s), flight (3 s).
    assert_compensation_order(
        &env,
        book_trip,
        "trip-1",
        &["cancel_flight", "return_car", "cancel_hotel"],
    )
    .await;
}

// A child workflow rolled back by its parent is one entry of the parent's
// order; its own compensations are in its history.

#[step]
async fn pack_box(n: &u32) -> Result<u32, StepError> {
    Ok(*n)
}

#[compensate(pack_box)]
async fn unpack_box(_n: &u32, _box_id: u32) -> Result<(), StepError> {
    Ok(())
}

#[workflow]
async fn pack(n: u32) -> Result<u32, WorkflowError> {
    Ok(pack_box(&n).await?)
}

#[step]
async fn label(n: &u32) -> Result<u32, StepError> {
    Ok(*n)
}

#[compensate(label)]
async fn remove_label(_n: &u32, _label: u32) -> Result<(), StepError> {
    Ok(())
}

#[step(pivot)]
async fn hand_over(_n: &u32) -> Result<(), StepError> {
    Err(StepError::permanent("the carrier is closed"))
}

#[workflow]
async fn ship_parcel(n: u32) -> Result<(), WorkflowError> {
    label(&n).await?;
    sagaflow::child(pack, n).await?;
    hand_over(&n).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_child_rolled_back_by_its_parent_is_named_by_its_id() {
    let env = test_env().await;
    let outcome = env.run(ship_parcel, "parcel-1", 5).await;
    assert!(matches!(outcome, Outcome::Compensated(_)), "{outcome:?}");
    assert_compensation_order(
        &env,
        ship_parcel,
        "parcel-1",
        &["child:parcel-1/Pack2", "remove_label"],
    )
    .await;
    assert_compensation_order(&env, pack, "parcel-1/Pack2", &["unpack_box"]).await;
}

// More compensations than the bounded history keeps: the assertion says it
// cannot tell, instead of answering from a partial history.

#[step]
async fn reserve_seat(seat: &u32) -> Result<u32, StepError> {
    Ok(*seat)
}

#[compensate(reserve_seat)]
async fn release_seat(_seat: &u32, _held: u32) -> Result<(), StepError> {
    Ok(())
}

#[step(pivot)]
async fn confirm_all(seats: &[u32]) -> Result<(), StepError> {
    if seats.contains(&0) {
        return Err(StepError::permanent("seat 0 is the stage"));
    }
    Ok(())
}

#[workflow]
async fn reserve_all(seats: Vec<u32>) -> Result<(), WorkflowError> {
    for seat in seats.clone() {
        reserve_seat(&seat).await?;
    }
    confirm_all(&seats).await?;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_history_cut_before_the_rollback_fails_the_assertion() {
    let message = panic_of(async {
        let env = test_env().await;
        let seats: Vec<u32> = (0..70).collect();
        let outcome = env.run(reserve_all, "seats-1", seats).await;
        assert!(matches!(outcome, Outcome::Compensated(_)), "{outcome:?}");
        assert_compensation_order(&env, reserve_all, "seats-1", &["release_seat"; 70]).await;
    })
    .await;
    assert!(
        message.contains("keeps its last 64 events and no longer shows its rollback's start"),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_completed_saga_with_a_long_history_ran_no_compensation() {
    let env = test_env().await;
    let seats: Vec<u32> = (1..=70).collect();
    let outcome = env.run(reserve_all, "seats-2", seats).await;
    assert_eq!(outcome, Outcome::Completed(()));
    assert_compensation_order(&env, reserve_all, "seats-2", &[]).await;
}
