//! Three versions of one order workflow, for the `upgrade` example: how to
//! ship a changed workflow while instances wait in it.
//!
//! - v1 reserves stock, waits for the `"approval"` signal, charges.
//! - v2 adds a notification at the end, with `upgrade = "auto"`: an order
//!   waiting for its approval on v1 may move to v2 by itself (the state it
//!   waits in is the same in both, with the same steps before it).
//! - v3 checks for fraud before the approval. An order already waiting on
//!   v2 never ran the check, so it may not move by itself: it stays on v2
//!   (keep v2's code until v2 drains), or [`v2_to_v3`] migrates it, giving
//!   it a fraud score.
//!
//! Each version is a `#[workflow]` in a module of its own, kept until its
//! instances have drained; they share the steps and the types.

use std::sync::Mutex;

use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

/// An order to reserve, approve and charge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id.
    pub id: String,
    /// What it costs.
    pub amount_cents: u64,
}

/// What a finished order returns: which version finished it, and what ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    /// The version that finished the order.
    pub version: u32,
    /// The stock reservation.
    pub reservation: String,
    /// The payment.
    pub payment: String,
    /// The fraud score (v3 only; `None` before it).
    pub fraud_score: Option<u32>,
}

/// The side effects of the steps, in order, for the example to print.
static EFFECTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn effect(what: String) {
    EFFECTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(what);
}

/// The effects of order `id` so far.
pub fn effects_of(id: &str) -> Vec<String> {
    EFFECTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .filter_map(|line| line.strip_prefix(&format!("{id}: ")).map(str::to_owned))
        .collect()
}

/// Reserves the order's stock.
#[step]
pub async fn reserve_stock(order: &Order) -> Result<String, StepError> {
    effect(format!("{}: reserve", order.id));
    Ok(format!("res-{}", order.id))
}

/// Releases the reservation.
#[compensate(reserve_stock)]
pub async fn release_stock(order: &Order, _reservation: String) -> Result<(), StepError> {
    effect(format!("{}: release", order.id));
    Ok(())
}

/// Charges the customer.
#[step]
pub async fn charge_card(order: &Order) -> Result<String, StepError> {
    effect(format!("{}: charge {}", order.id, order.amount_cents));
    Ok(format!("pay-{}", order.id))
}

/// Refunds the charge.
#[compensate(charge_card)]
pub async fn refund_card(order: &Order, _payment: String) -> Result<(), StepError> {
    effect(format!("{}: refund", order.id));
    Ok(())
}

/// Tells the customer (v2 on).
#[step(retriable)]
pub async fn notify_customer(order: &Order) -> Result<(), StepError> {
    effect(format!("{}: notify", order.id));
    Ok(())
}

/// Scores the order for fraud (v3).
#[step(readonly)]
pub async fn score_fraud(order: &Order) -> Result<u32, StepError> {
    effect(format!("{}: score fraud", order.id));
    Ok(u32::try_from(order.amount_cents % 100).unwrap_or(0))
}

/// The first version.
pub mod v1 {
    use super::*;

    /// Reserves, waits for the approval, charges.
    #[workflow(name = "place_order", version = 1)]
    pub async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve_stock(&order).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("the order was not approved"));
        }
        let payment = charge_card(&order).await?;
        Ok(Receipt {
            version: 1,
            reservation,
            payment,
            fraud_score: None,
        })
    }
}

/// A notification at the end; older instances move here where safe.
pub mod v2 {
    use super::*;

    /// Reserves, waits for the approval, charges, notifies.
    #[workflow(name = "place_order", version = 2, upgrade = "auto")]
    pub async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve_stock(&order).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved {
            return Err(WorkflowError::new("the order was not approved"));
        }
        let payment = charge_card(&order).await?;
        notify_customer(&order).await?;
        Ok(Receipt {
            version: 2,
            reservation,
            payment,
            fraud_score: None,
        })
    }
}

/// A fraud check before the approval.
pub mod v3 {
    use super::*;

    /// Reserves, scores for fraud, waits for the approval, charges, notifies.
    #[workflow(name = "place_order", version = 3, upgrade = "auto")]
    pub async fn place_order(order: Order) -> Result<Receipt, WorkflowError> {
        let reservation = reserve_stock(&order).await?;
        let fraud_score = score_fraud(&order).await?;
        let approved: bool = sagaflow::signal("approval").await;
        if !approved || fraud_score > 90 {
            return Err(WorkflowError::new("the order was not approved"));
        }
        let payment = charge_card(&order).await?;
        notify_customer(&order).await?;
        Ok(Receipt {
            version: 3,
            reservation,
            payment,
            fraud_score: Some(fraud_score),
        })
    }
}

/// Moves v2 orders to v3: those waiting for their approval get a fraud
/// score of 0 (they were placed before the check existed); an order
/// already charging stays on v2 to finish there.
#[migrate(from = v2::place_order, to = v3::place_order)]
pub fn v2_to_v3(old: v2::PlaceOrderState) -> Migration<v3::PlaceOrderState> {
    use v2::PlaceOrderState as Old;
    use v3::PlaceOrderState as New;
    match old {
        Old::Start { order } => Migration::To(New::Start { order }),
        Old::ReserveStock1 { order } => Migration::To(New::ReserveStock1 { order }),
        Old::Signal2 { order, reservation } => Migration::To(New::Signal3 {
            order,
            reservation,
            fraud_score: 0,
        }),
        Old::ChargeCard3 { .. } | Old::NotifyCustomer4 { .. } => {
            Migration::Decline("already charging: it finishes on v2".to_owned())
        }
    }
}
