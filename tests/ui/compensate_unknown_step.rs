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

// A typo in the step's name.
#[compensate(reserve_inventroy)]
async fn release_inventory(order: &Order, reservation: Reservation) -> Result<(), StepError> {
    let _ = (order.id, reservation.slot);
    Ok(())
}

fn main() {}
