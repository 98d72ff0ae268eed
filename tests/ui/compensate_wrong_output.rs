use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Order {
    id: u32,
}

#[derive(Serialize, Deserialize)]
struct Payment {
    cents: u64,
}

#[step]
async fn charge_payment(order: &Order) -> Result<Payment, StepError> {
    Ok(Payment {
        cents: u64::from(order.id),
    })
}

// The step's output is a `Payment`, not an amount.
#[compensate(charge_payment)]
async fn refund_payment(order: &Order, cents: u64) -> Result<(), StepError> {
    let _ = (order.id, cents);
    Ok(())
}

fn main() {}
