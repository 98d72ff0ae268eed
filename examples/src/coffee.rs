//! The coffee shop: ProcessPayment → PrepareBeverage → UpdateInventory →
//! NotifyCustomer. RefundPayment and RestoreInventory undo the payment and
//! the stock update; a customer who cannot be notified still gets the drink.
//!
//! The order answers `rt.query::<CoffeeStatus>(id)` with where it is
//! (PENDING, PAID, PREPARING, READY, COMPLETED, FAILED, REFUNDED), and for
//! [`CANCEL_WINDOW`] after the payment it obeys a `"cancel-order"` signal
//! (`rt.signal(id, "cancel-order", true)`) by refunding the payment.

use std::time::Duration;

use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

use crate::timeline::record;

/// A drink ordered at the counter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoffeeOrder {
    /// The order's id.
    pub id: String,
    /// The customer's name, called out when the drink is ready.
    pub customer: String,
    /// What they ordered.
    pub beverage: String,
    /// The price in cents.
    pub price_cents: u64,
    /// Failure injection: the card is declined.
    pub card_declined: bool,
    /// Failure injection: the customer's phone is off.
    pub phone_off: bool,
    /// Failure injection: the stock update finds the beans oversold.
    pub beans_oversold: bool,
}

/// A card payment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardPayment {
    /// The terminal's authorisation code.
    pub authorisation: String,
}

/// A drink on the counter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Beverage {
    /// The cup's label.
    pub label: String,
}

/// What the stock update did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StockUpdate {
    /// Grams of beans taken from stock.
    pub beans_grams: u32,
    /// Whether stock went below zero.
    pub oversold: bool,
}

/// What a served order returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Served {
    /// The drink.
    pub beverage: Beverage,
    /// Whether the customer was told it is ready.
    pub notified: bool,
}

/// Where an order is, as `Runtime::query` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CoffeeStatus {
    /// Taken, not yet paid.
    Pending,
    /// Paid; the customer may still cancel.
    Paid,
    /// The barista makes the drink.
    Preparing,
    /// The drink is on the counter.
    Ready,
    /// Handed out.
    Completed,
    /// The payment failed: nothing to undo.
    Failed,
    /// Cancelled or not sellable: the payment was refunded.
    Refunded,
}

/// How long after the payment the barista waits for a `"cancel-order"`
/// signal before starting the drink.
pub const CANCEL_WINDOW: Duration = Duration::from_millis(500);

/// Charges the card.
#[step(retry(max_attempts = 3, initial = "50ms"))]
pub async fn process_payment(order: &CoffeeOrder) -> Result<CardPayment, StepError> {
    if order.card_declined {
        record(format!("{}: card declined", order.id));
        return Err(StepError::permanent("card declined"));
    }
    record(format!("{}: charge {} cents", order.id, order.price_cents));
    Ok(CardPayment {
        authorisation: format!("auth-{}", order.id),
    })
}

/// Refunds the card.
#[compensate(process_payment)]
pub async fn refund_payment(order: &CoffeeOrder, payment: CardPayment) -> Result<(), StepError> {
    record(format!(
        "{}: refund {} ({})",
        order.id, order.price_cents, payment.authorisation
    ));
    Ok(())
}

/// Makes the drink.
#[step]
pub async fn prepare_beverage(order: &CoffeeOrder) -> Result<Beverage, StepError> {
    record(format!("{}: prepare {}", order.id, order.beverage));
    Ok(Beverage {
        label: format!("{} for {}", order.beverage, order.customer),
    })
}

/// A drink that is not handed out is poured away.
#[compensate(prepare_beverage)]
pub async fn discard_beverage(order: &CoffeeOrder, beverage: Beverage) -> Result<(), StepError> {
    record(format!("{}: discard {}", order.id, beverage.label));
    Ok(())
}

/// Takes the beans from stock.
#[step]
pub async fn update_inventory(order: &CoffeeOrder) -> Result<StockUpdate, StepError> {
    record(format!("{}: take 18 g of beans from stock", order.id));
    Ok(StockUpdate {
        beans_grams: 18,
        oversold: order.beans_oversold,
    })
}

/// Puts the beans back in stock.
#[compensate(update_inventory)]
pub async fn restore_inventory(order: &CoffeeOrder, update: StockUpdate) -> Result<(), StepError> {
    record(format!(
        "{}: put {} g of beans back",
        order.id, update.beans_grams
    ));
    Ok(())
}

/// Calls the customer's phone.
#[step(retriable, retry(max_attempts = 2, initial = "50ms"))]
pub async fn notify_customer(order: &CoffeeOrder, beverage: &Beverage) -> Result<(), StepError> {
    if order.phone_off {
        record(format!("{}: phone of {} is off", order.id, order.customer));
        return Err(StepError::retryable("the customer's phone is off"));
    }
    record(format!("{}: {} is ready", order.id, beverage.label));
    Ok(())
}

/// The coffee order saga.
#[workflow]
pub async fn coffee_order(order: CoffeeOrder) -> Result<Served, WorkflowError> {
    sagaflow::set_status(CoffeeStatus::Pending);
    let payment = process_payment(&order).await;
    if let Err(error) = payment {
        sagaflow::set_status(CoffeeStatus::Failed);
        return Err(error.into());
    }
    sagaflow::set_status(CoffeeStatus::Paid);
    let cancel: Option<bool> = sagaflow::signal_timeout("cancel-order", CANCEL_WINDOW).await;
    if cancel == Some(true) {
        sagaflow::set_status(CoffeeStatus::Refunded);
        return Err(WorkflowError::new("cancelled by the customer"));
    }
    sagaflow::set_status(CoffeeStatus::Preparing);
    let beverage = prepare_beverage(&order).await?;
    let stock = update_inventory(&order).await?;
    if stock.oversold {
        sagaflow::set_status(CoffeeStatus::Refunded);
        return Err(WorkflowError::new(
            "beans oversold: the drink cannot be sold",
        ));
    }
    sagaflow::set_status(CoffeeStatus::Ready);
    let notified = notify_customer(&order, &beverage).await;
    sagaflow::set_status(CoffeeStatus::Completed);
    Ok(Served {
        beverage,
        notified: notified.is_ok(),
    })
}
