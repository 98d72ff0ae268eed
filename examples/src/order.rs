//! The order saga: ReserveInventory → ChargePayment → CreateShipment (the
//! pivot) → SendConfirmation. A shipment that fails rolls the order back:
//! RefundPayment, then ReleaseInventory.

use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

use crate::timeline::record;

/// An order placed by a customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id, also the workflow instance's id.
    pub id: String,
    /// What is ordered.
    pub sku: String,
    /// How many.
    pub quantity: u32,
    /// The price in cents.
    pub amount_cents: u64,
    /// Failure injection: the carrier rejects the parcel.
    pub fail_shipment: bool,
}

/// Stock held for an order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    /// The warehouse's reservation id.
    pub id: String,
}

/// A captured payment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    /// The payment provider's transaction id.
    pub transaction: String,
    /// The amount captured, in cents.
    pub amount_cents: u64,
}

/// A parcel handed to the carrier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    /// The carrier's tracking number.
    pub tracking: String,
}

/// What a completed order returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The order's id.
    pub order_id: String,
    /// The payment.
    pub payment: Payment,
    /// The shipment.
    pub shipment: Shipment,
}

/// Holds stock for the order.
#[step]
pub async fn reserve_inventory(order: &Order) -> Result<Reservation, StepError> {
    record(format!(
        "{}: reserve {} x {}",
        order.id, order.quantity, order.sku
    ));
    Ok(Reservation {
        id: format!("res-{}", order.id),
    })
}

/// Gives the held stock back.
#[compensate(reserve_inventory)]
pub async fn release_inventory(order: &Order, reservation: Reservation) -> Result<(), StepError> {
    record(format!(
        "{}: release inventory {}",
        order.id, reservation.id
    ));
    Ok(())
}

/// Captures the payment.
#[step(
    retry(
        max_attempts = 5,
        initial = "100ms",
        backoff = 2.0,
        max_interval = "2s"
    ),
    timeout = "30s"
)]
pub async fn charge_payment(order: &Order) -> Result<Payment, StepError> {
    record(format!("{}: charge {} cents", order.id, order.amount_cents));
    Ok(Payment {
        transaction: format!("txn-{}", order.id),
        amount_cents: order.amount_cents,
    })
}

/// Refunds the captured payment.
#[compensate(charge_payment)]
pub async fn refund_payment(order: &Order, payment: Payment) -> Result<(), StepError> {
    record(format!(
        "{}: refund {} cents ({})",
        order.id, payment.amount_cents, payment.transaction
    ));
    Ok(())
}

/// Hands the parcel to the carrier: the point of no return.
#[step(pivot, retry(max_attempts = 2, initial = "50ms"))]
pub async fn create_shipment(
    order: &Order,
    reservation: &Reservation,
) -> Result<Shipment, StepError> {
    if order.fail_shipment {
        record(format!("{}: shipment rejected by the carrier", order.id));
        return Err(StepError::retryable("the carrier rejected the parcel"));
    }
    record(format!("{}: ship {}", order.id, reservation.id));
    Ok(Shipment {
        tracking: format!("trk-{}", order.id),
    })
}

/// Tells the customer; after the pivot, so it is retried until it succeeds.
#[step(retriable, retry(initial = "50ms", max_interval = "1s"))]
pub async fn send_confirmation(order: &Order, shipment: &Shipment) -> Result<(), StepError> {
    record(format!(
        "{}: confirm, tracking {}",
        order.id, shipment.tracking
    ));
    Ok(())
}

/// The order saga.
#[workflow]
pub async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
    let reservation = reserve_inventory(&order).await?;
    let payment = charge_payment(&order).await?;
    let shipment = create_shipment(&order, &reservation).await?;
    send_confirmation(&order, &shipment).await?;
    Ok(Receipt {
        order_id: order.id,
        payment,
        shipment,
    })
}
