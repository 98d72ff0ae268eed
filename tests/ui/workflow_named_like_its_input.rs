use serde::{Deserialize, Serialize};

use sagaflow::prelude::*;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Order {
    id: u32,
}

#[step]
async fn reserve(id: &u32) -> Result<u32, StepError> {
    Ok(*id)
}

#[compensate(reserve)]
async fn release(id: &u32, reservation: u32) -> Result<(), StepError> {
    let _ = (id, reservation);
    Ok(())
}

#[workflow]
async fn order(order: Order) -> Result<(), WorkflowError> {
    reserve(&order.id).await?;
    Ok(())
}

fn main() {}
