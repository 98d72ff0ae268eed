use sagaflow::prelude::*;

// `#[step]` is missing: a plain function is not a step.
async fn reserve_inventory(order_id: u32) -> Result<u32, StepError> {
    Ok(order_id)
}

#[compensate(reserve_inventory)]
async fn release_inventory(order_id: u32, slot: u32) -> Result<(), StepError> {
    let _ = (order_id, slot);
    Ok(())
}

fn main() {}
