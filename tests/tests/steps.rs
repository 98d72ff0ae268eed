//! What `#[step]` and `#[compensate]` generate, exercised for real: the
//! constants a workflow reads, compensations that run the user's function on
//! stored JSON, and step functions that stay callable.

use std::sync::Mutex;
use std::time::Duration;

use sagaflow::prelude::*;
use sagaflow::record::RawJson;
use sagaflow::{Compensate, Step, StepOptions};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u32,
    items: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Reservation {
    slot: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Payment {
    cents: u64,
}

/// Side effects of the steps and compensations below, in order. Each test
/// uses its own marker so tests running in parallel do not mix.
static EFFECTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(effect: String) {
    EFFECTS.lock().unwrap().push(effect);
}

fn recorded(marker: &str) -> Vec<String> {
    EFFECTS
        .lock()
        .unwrap()
        .iter()
        .filter(|effect| effect.contains(marker))
        .cloned()
        .collect()
}

#[step]
async fn reserve_inventory(order: &Order, warehouse: &str) -> Result<Reservation, StepError> {
    record(format!("reserve {} in {warehouse}", order.id));
    Ok(Reservation {
        slot: order.id * 10,
    })
}

#[compensate(reserve_inventory)]
async fn release_inventory(
    order: &Order,
    warehouse: &str,
    reservation: Reservation,
) -> Result<(), StepError> {
    record(format!(
        "release {} slot {} in {warehouse}",
        order.id, reservation.slot
    ));
    Ok(())
}

#[step(
    retry(max_attempts = 5, initial = "1s", backoff = 2.0, max_interval = "100s"),
    timeout = "30s"
)]
async fn charge_payment(order: &Order, lines: &[String]) -> Result<Payment, StepError> {
    Ok(Payment {
        cents: u64::from(order.id) * lines.len() as u64,
    })
}

#[compensate(charge_payment)]
async fn refund_payment(
    order: &Order,
    _lines: &[String],
    payment: Payment,
) -> Result<(), StepError> {
    if payment.cents == 0 {
        return Err(StepError::permanent("nothing to refund"));
    }
    record(format!("refund {} cents for {}", payment.cents, order.id));
    Ok(())
}

#[step(pivot, timeout = "1m 30s")]
async fn create_shipment(order: &Order, reservation: Reservation) -> Result<String, StepError> {
    Ok(format!("shipment-{}-{}", order.id, reservation.slot))
}

#[step(retriable, retry(max_attempts = 1000))]
async fn send_confirmation(shipment: &str) -> Result<(), StepError> {
    record(format!("confirm {shipment}"));
    Ok(())
}

#[step(readonly)]
async fn exchange_rate() -> Result<f64, sagaflow::StepError> {
    Ok(1.25)
}

mod billing {
    use super::*;

    #[step]
    pub async fn open_invoice(order_id: u32) -> Result<u32, StepError> {
        Ok(order_id + 1000)
    }
}

// A compensation may live apart from its step, naming it by path.
#[compensate(billing::open_invoice)]
async fn void_invoice(order_id: u32, invoice: u32) -> Result<(), StepError> {
    record(format!("void invoice {invoice} of {order_id}"));
    Ok(())
}

#[test]
fn names_kinds_and_compensation_names() {
    assert_eq!(<reserve_inventory as Step>::NAME, "reserve_inventory");
    assert_eq!(<reserve_inventory as Step>::KIND, StepKind::Compensable);
    assert_eq!(
        <reserve_inventory as Compensate>::COMPENSATION,
        Some("release_inventory")
    );
    assert_eq!(
        <charge_payment as Compensate>::COMPENSATION,
        Some("refund_payment")
    );
    assert_eq!(<create_shipment as Step>::KIND, StepKind::Pivot);
    assert_eq!(<create_shipment as Compensate>::COMPENSATION, None);
    assert_eq!(<send_confirmation as Step>::KIND, StepKind::Retriable);
    assert_eq!(<send_confirmation as Compensate>::COMPENSATION, None);
    assert_eq!(<exchange_rate as Step>::KIND, StepKind::Readonly);
    assert_eq!(<billing::open_invoice as Step>::NAME, "open_invoice");
    assert_eq!(
        <billing::open_invoice as Compensate>::COMPENSATION,
        Some("void_invoice")
    );
}

#[test]
fn options_from_the_attribute() {
    assert_eq!(
        <charge_payment as Step>::OPTIONS,
        StepOptions {
            max_attempts: Some(5),
            initial_interval: Some(Duration::from_secs(1)),
            backoff: Some(2.0),
            max_interval: Some(Duration::from_secs(100)),
            timeout: Some(Duration::from_secs(30)),
        }
    );
    assert_eq!(<reserve_inventory as Step>::OPTIONS, StepOptions::NONE);
    assert_eq!(
        <create_shipment as Step>::OPTIONS,
        StepOptions {
            timeout: Some(Duration::from_secs(90)),
            ..StepOptions::NONE
        }
    );
    let confirmation = <send_confirmation as Step>::OPTIONS;
    assert_eq!(confirmation.max_attempts, Some(1000));
    // Unset fields fall back to the kind's defaults in the effective policy.
    let policy = confirmation.retry_policy(<send_confirmation as Step>::KIND);
    assert_eq!(policy.initial_interval, Duration::from_secs(1));
    assert_eq!(policy.max_attempts, Some(1000));
}

#[test]
fn args_and_output_are_owned_types() {
    fn same<T: 'static, U: 'static>() -> bool {
        std::any::TypeId::of::<T>() == std::any::TypeId::of::<U>()
    }
    assert!(same::<<reserve_inventory as Step>::Args, (Order, String)>());
    assert!(same::<<reserve_inventory as Step>::Output, Reservation>());
    assert!(same::<<charge_payment as Step>::Args, (Order, Vec<String>)>());
    assert!(same::<<create_shipment as Step>::Args, (Order, Reservation)>());
    assert!(same::<<send_confirmation as Step>::Args, (String,)>());
    assert!(same::<<send_confirmation as Step>::Output, ()>());
    assert!(same::<<exchange_rate as Step>::Args, ()>());
    assert!(same::<<exchange_rate as Step>::Output, f64>());
}

#[test]
fn fingerprints_are_stable_and_distinct() {
    let fingerprints = [
        <reserve_inventory as Step>::FINGERPRINT,
        <charge_payment as Step>::FINGERPRINT,
        <create_shipment as Step>::FINGERPRINT,
        <send_confirmation as Step>::FINGERPRINT,
        <exchange_rate as Step>::FINGERPRINT,
        <billing::open_invoice as Step>::FINGERPRINT,
    ];
    for (i, a) in fingerprints.iter().enumerate() {
        for b in &fingerprints[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[tokio::test]
async fn compensation_runs_the_users_function_on_stored_json() {
    let args = json!([{ "id": 7, "items": ["book"] }, "north-7"]);
    let output = json!({ "slot": 70 });
    <reserve_inventory as Compensate>::compensate(raw(args), raw(output))
        .await
        .unwrap();
    assert_eq!(recorded("north-7"), ["release 7 slot 70 in north-7"]);

    let args = json!([{ "id": 8, "items": ["pen", "ink"] }, ["pen", "ink"]]);
    <charge_payment as Compensate>::compensate(raw(args), raw(json!({ "cents": 16 })))
        .await
        .unwrap();
    assert_eq!(recorded("for 8"), ["refund 16 cents for 8"]);

    <billing::open_invoice as Compensate>::compensate(raw(json!([9])), raw(json!(1009)))
        .await
        .unwrap();
    assert_eq!(recorded("invoice 1009"), ["void invoice 1009 of 9"]);
}

#[tokio::test]
async fn the_compensations_own_error_comes_back() {
    let args = json!([{ "id": 10, "items": [] }, []]);
    let error = <charge_payment as Compensate>::compensate(raw(args), raw(json!({ "cents": 0 })))
        .await
        .unwrap_err();
    assert_eq!(error, StepError::permanent("nothing to refund"));
}

#[tokio::test]
async fn undecodable_arguments_or_output_are_permanent_errors() {
    let error = <reserve_inventory as Compensate>::compensate(
        raw(json!({ "id": 1 })),
        raw(json!({ "slot": 1 })),
    )
    .await
    .unwrap_err();
    assert!(!error.is_retryable());
    assert!(
        error
            .message()
            .starts_with("cannot decode the stored arguments of step `reserve_inventory`"),
        "{error:?}"
    );

    let args = json!([{ "id": 11, "items": [] }, "south-11"]);
    let error =
        <reserve_inventory as Compensate>::compensate(raw(args), raw(json!("not a reservation")))
            .await
            .unwrap_err();
    assert!(!error.is_retryable());
    assert!(
        error
            .message()
            .starts_with("cannot decode the stored output of step `reserve_inventory`"),
        "{error:?}"
    );
    assert!(
        recorded("south-11").is_empty(),
        "the compensation did not run"
    );
}

#[tokio::test]
async fn steps_without_compensation_refuse_to_compensate() {
    let error = <create_shipment as Compensate>::compensate(raw(json!([])), raw(json!(null)))
        .await
        .unwrap_err();
    assert!(!error.is_retryable());
    assert_eq!(
        error.message(),
        "step `create_shipment` is a pivot step and has no compensation"
    );
}

#[tokio::test]
async fn step_functions_stay_callable() {
    let order = Order {
        id: 3,
        items: vec!["tea".into()],
    };
    let reservation = reserve_inventory(&order, "east-3").await.unwrap();
    assert_eq!(reservation, Reservation { slot: 30 });
    assert_eq!(recorded("east-3"), ["reserve 3 in east-3"]);
    assert_eq!(
        charge_payment(&order, &order.items).await.unwrap(),
        Payment { cents: 3 }
    );
    assert_eq!(
        create_shipment(&order, reservation).await.unwrap(),
        "shipment-3-30"
    );
    send_confirmation("shipment-3-30").await.unwrap();
    assert_eq!(recorded("confirm shipment-3-30"), ["confirm shipment-3-30"]);
    assert_eq!(exchange_rate().await.unwrap(), 1.25);
    assert_eq!(billing::open_invoice(3).await.unwrap(), 1003);
}

#[test]
fn compensation_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let future = <reserve_inventory as Compensate>::compensate(raw(json!(null)), raw(json!(null)));
    assert_send(&future);
}

/// Stored JSON, as a compensation receives it.
fn raw(value: serde_json::Value) -> RawJson {
    RawJson::from_value(&value)
}
