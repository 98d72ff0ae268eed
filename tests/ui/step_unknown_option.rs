use sagaflow::prelude::*;

#[step(pivot, retries = 3, idempotent)]
async fn create_shipment(order_id: u32) -> Result<u64, StepError> {
    Ok(u64::from(order_id))
}

fn main() {}
