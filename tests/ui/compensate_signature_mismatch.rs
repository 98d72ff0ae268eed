use sagaflow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Order {
    id: u32,
}

#[derive(Serialize, Deserialize)]
struct Reservation {
    slot: u32,
}

#[step]
async fn reserve_inventory(order: &Order) -> Result<Reservation, StepError> {
    Ok(Reservation { slot: order.id })
}

// The step takes `&Order`, not an order id.
#[compensate(reserve_inventory)]
async fn release_inventory(order_id: u32, reservation: Reservation) -> Result<(), StepError> {
    let _ = (order_id, reservation.slot);
    Ok(())
}

fn main() {}
